#pragma once
/// Checked CUDA runtime and cuFFT calls, and small RAII owners of device
/// resources, for the implementations in engine/cuda.
///
/// Every CUDA and cuFFT call goes through cuda_check / cufft_check, which
/// throw tessera::cuda::CudaError naming the call, the error and the source
/// line. Destructors cannot throw: they release without checking, since a
/// failure there means the context is already broken and the next checked
/// call reports it.
#include <cuda_runtime.h>
#include <cufft.h>

#include <cstddef>
#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tessera::cuda {

/// A CUDA or cuFFT call failed (a failure while running, not bad input).
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline std::string call_site(std::string_view what, const std::source_location& where) {
  return std::string(what) + " at " + where.file_name() + ":" + std::to_string(where.line());
}

/// Throws CudaError if `status` is not cudaSuccess; `what` names the call.
inline void cuda_check(cudaError_t status, std::string_view what,
                       const std::source_location& where = std::source_location::current()) {
  if (status == cudaSuccess) return;
  throw CudaError("CUDA: " + call_site(what, where) + " failed: " + cudaGetErrorName(status) +
                  " (" + cudaGetErrorString(status) + ")");
}

inline const char* cufft_result_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cufftResult";
  }
}

/// Throws CudaError if `status` is not CUFFT_SUCCESS; `what` names the call.
inline void cufft_check(cufftResult status, std::string_view what,
                        const std::source_location& where = std::source_location::current()) {
  if (status == CUFFT_SUCCESS) return;
  throw CudaError("cuFFT: " + call_site(what, where) + " failed: " + cufft_result_name(status) +
                  " (" + std::to_string(static_cast<int>(status)) + ")");
}

/// Makes `device` current for its lifetime and restores the previous device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    cuda_check(cudaGetDevice(&previous_), "cudaGetDevice");
    cuda_check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() { static_cast<void>(cudaSetDevice(previous_)); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

/// Device memory of `bytes` bytes, owned (moveable, not copyable).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes > 0) cuda_check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_) static_cast<void>(cudaFree(ptr_));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

/// A non-blocking CUDA stream on the current device, owned.
class Stream {
 public:
  Stream() { cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() {
    if (stream_) static_cast<void>(cudaStreamDestroy(stream_));
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace tessera::cuda
