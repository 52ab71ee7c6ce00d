#include "ctf_batch_cuda.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"

namespace tessera {
namespace {

using cuda::cuda_check;

/// One image's CTF constants, computed on the host in double with the
/// formulas of ctf.cpp's Ctf constructor, plus the defocus azimuth as cos/sin of
/// twice the angle so the device needs no atan2.
struct DeviceCtf {
  double k1;        ///< pi * lambda
  double k2;        ///< pi/2 * Cs * lambda^3 (Cs in A)
  double phase;     ///< phase shift + atan(Q0 / sqrt(1 - Q0^2)), rad
  double bfactor;   ///< -B/4, A^2
  double scale;
  double dz_mean;   ///< -(dU + dV)/2, A
  double dz_dev;    ///< -(dU - dV)/2, A
  double cos2az, sin2az;  ///< cos and sin of 2 * defocus angle
};

DeviceCtf device_ctf(const CtfParams& p) {
  constexpr double pi = std::numbers::pi;
  const double lambda = electron_wavelength_A(p.voltage_kV);
  const double q0 = p.amplitude_contrast;
  const double azimuth = p.defocus_angle_deg * pi / 180.0;
  DeviceCtf c;
  c.k1 = pi * lambda;
  c.k2 = pi / 2.0 * (p.cs_mm * 1e7) * lambda * lambda * lambda;
  c.phase = p.phase_shift_deg * pi / 180.0 + std::atan(q0 / std::sqrt(1.0 - q0 * q0));
  c.bfactor = -p.bfactor_A2 / 4.0;
  c.scale = p.scale;
  c.dz_mean = -(p.defocus_u_A + p.defocus_v_A) / 2.0;
  c.dz_dev = -(p.defocus_u_A - p.defocus_v_A) / 2.0;
  c.cos2az = std::cos(2.0 * azimuth);
  c.sin2az = std::sin(2.0 * azimuth);
  return c;
}

constexpr double kTwoPi = 2.0 * std::numbers::pi;
constexpr double kInvTwoPi = 1.0 / kTwoPi;
constexpr int kBlockSize = 256;
constexpr int kMaxGridY = 65535;

/// One thread per Fourier component (x, y) of the chunk's images; it walks
/// the images z = blockIdx.y, blockIdx.y + gridDim.y, ... so the frequency
/// and direction are computed once per component.
///
/// width_x_A = nx * pixel_A and width_y_A = ny * pixel_A: frequencies are
/// x / width_x_A and fourier_index(y) / width_y_A, the same divisions as on
/// the CPU. chi is computed and reduced to [-pi, pi] in double, then sin and
/// the products are float (precision budget: ctf_batch_cuda.hpp).
__global__ void apply_ctf_kernel(float2* __restrict__ stack, int hx, int ny, int batch,
                                 double width_x_A, double width_y_A,
                                 const DeviceCtf* __restrict__ ctfs, CtfOp op) {
  const long long pixels = static_cast<long long>(hx) * ny;
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= pixels) return;
  const int x = static_cast<int>(i % hx);
  const int y = static_cast<int>(i / hx);
  const int fy = y <= ny / 2 ? y : y - ny;
  const double kx = x / width_x_A, ky = fy / width_y_A;
  const double k2 = kx * kx + ky * ky;
  // cos and sin of twice the direction angle of k: cos(2(a - az)) = c2 cos2az + s2 sin2az.
  const double c2 = k2 > 0 ? (kx * kx - ky * ky) / k2 : 1.0;
  const double s2 = k2 > 0 ? 2.0 * kx * ky / k2 : 0.0;

  for (int z = blockIdx.y; z < batch; z += gridDim.y) {
    const DeviceCtf& c = ctfs[z];
    const double dz = c.dz_mean + c.dz_dev * (c2 * c.cos2az + s2 * c.sin2az);
    const double chi = c.k1 * dz * k2 + c.k2 * k2 * k2 - c.phase;
    const double reduced = chi - kTwoPi * rint(chi * kInvTwoPi);  // in [-pi, pi]
    const double envelope = c.bfactor != 0.0 ? c.scale * exp(c.bfactor * k2) : c.scale;
    const float v = -sinf(static_cast<float>(reduced)) * static_cast<float>(envelope);
    const float f = op == CtfOp::Multiply ? v : op == CtfOp::MultiplyAbs ? fabsf(v) : v * v;
    float2& e = stack[static_cast<long long>(z) * pixels + i];
    e.x *= f;
    e.y *= f;
  }
}

class CudaCtfApplier final : public CtfApplier {
 public:
  CudaCtfApplier(int device, std::size_t max_chunk_bytes)
      : device_(device), max_chunk_bytes_(max_chunk_bytes) {
    const cuda::DeviceScope scope(device_);
    stream_.emplace();
  }

  ~CudaCtfApplier() override {
    // Release on the device that owns the resources; destructors do not throw (cuda_check.hpp).
    int previous = 0;
    const bool restore = cudaGetDevice(&previous) == cudaSuccess;
    static_cast<void>(cudaSetDevice(device_));
    data_ = cuda::DeviceBuffer();
    ctfs_ = cuda::DeviceBuffer();
    stream_.reset();
    if (restore) static_cast<void>(cudaSetDevice(previous));
  }

 private:
  void apply_validated(ComplexGrid& stack, int nx, const std::vector<CtfParams>& params,
                       double pixel_A, CtfOp op) override;
  void reserve(std::size_t data_bytes, std::size_t ctf_bytes) {
    if (data_.bytes() < data_bytes) data_ = cuda::DeviceBuffer(data_bytes);
    if (ctfs_.bytes() < ctf_bytes) ctfs_ = cuda::DeviceBuffer(ctf_bytes);
  }

  int device_;
  std::size_t max_chunk_bytes_;
  std::optional<cuda::Stream> stream_;
  cuda::DeviceBuffer data_, ctfs_;  ///< grown on demand, kept between calls
};

void CudaCtfApplier::apply_validated(ComplexGrid& stack, int nx,
                                     const std::vector<CtfParams>& params, double pixel_A,
                                     CtfOp op) {
  static_assert(sizeof(cfloat) == sizeof(float2));
  // The kernel evaluates defocus, astigmatism, Cs and phase shift only; refuse what it would leave out.
  for (std::size_t z = 0; z < params.size(); ++z)
    for (const double c : params[z].even_zernike)
      if (c != 0)
        throw InputError("CTF parameters of image " + std::to_string(z) +
                         ": the CUDA CTF does not apply even aberrations (rlnEvenZernike) yet; run without --gpu");
  for (std::size_t z = 0; z < params.size(); ++z)
    if (params[z].mag_matrix != std::array<double, 4>{1, 0, 0, 1})
      throw InputError("CTF parameters of image " + std::to_string(z) +
                       ": the CUDA CTF does not apply anisotropic magnification (rlnMagMat) yet; run without --gpu");
  const cuda::DeviceScope scope(device_);
  const int hx = stack.nx(), ny = stack.ny();
  const std::size_t batch = params.size();
  const std::size_t pixels = static_cast<std::size_t>(hx) * ny;
  const std::size_t image_bytes = pixels * sizeof(cfloat);
  const std::size_t chunk = std::min(batch, std::max<std::size_t>(1, max_chunk_bytes_ / image_bytes));
  reserve(chunk * image_bytes, chunk * sizeof(DeviceCtf));

  std::vector<DeviceCtf> constants(batch);
  std::transform(params.begin(), params.end(), constants.begin(), device_ctf);
  const cudaStream_t stream = stream_->get();
  auto* d_data = static_cast<float2*>(data_.get());
  auto* d_ctfs = static_cast<DeviceCtf*>(ctfs_.get());
  const unsigned blocks_x = static_cast<unsigned>((pixels + kBlockSize - 1) / kBlockSize);

  for (std::size_t first = 0; first < batch; first += chunk) {
    const std::size_t n = std::min(chunk, batch - first);
    cfloat* host = stack.section(static_cast<int>(first));
    cuda_check(cudaMemcpyAsync(d_ctfs, constants.data() + first, n * sizeof(DeviceCtf),
                               cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync (CTF constants to device)");
    cuda_check(cudaMemcpyAsync(d_data, host, n * image_bytes, cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync (images to device)");
    const dim3 grid(blocks_x, static_cast<unsigned>(std::min<std::size_t>(n, kMaxGridY)));
    apply_ctf_kernel<<<grid, kBlockSize, 0, stream>>>(d_data, hx, ny, static_cast<int>(n),
                                                      nx * pixel_A, ny * pixel_A, d_ctfs, op);
    cuda_check(cudaGetLastError(), "apply_ctf_kernel launch");
    cuda_check(cudaMemcpyAsync(host, d_data, n * image_bytes, cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync (images to host)");
  }
  cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (apply_ctf_kernel)");
}

}  // namespace

std::unique_ptr<CtfApplier> make_cuda_ctf_applier(int device, std::size_t max_chunk_bytes) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());  // reset the runtime's last-error state
    throw InputError("CUDA device " + std::to_string(device) +
                     " requested but no CUDA device is usable (cudaGetDeviceCount: " +
                     cudaGetErrorName(status) + ", " + cudaGetErrorString(status) + ")");
  }
  if (device < 0 || device >= count)
    throw InputError("CUDA device " + std::to_string(device) + " requested but " +
                     std::to_string(count) + " present (numbered from 0)");
  return std::make_unique<CudaCtfApplier>(device, max_chunk_bytes);
}

}  // namespace tessera
