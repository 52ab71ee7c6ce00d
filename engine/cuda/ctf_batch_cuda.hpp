#pragma once
/// The CUDA implementation of CtfApplier (tessera/ctf_batch.hpp).
///
/// apply() copies the stack to the device in chunks, multiplies each image by
/// its CTF computed on the device, and copies it back; it returns when the
/// stack on the host holds the result. This header needs no CUDA headers.
///
/// Precision: per-image constants are computed on the host in double as in
/// ctf.cpp. On the device the frequency, the defocus and the phase chi are
/// computed in double (chi reaches ~4e3 rad at high resolution and large
/// defocus, where float would lose ~2e-4 rad), chi is reduced to [-pi, pi]
/// in double, and sin, the B-factor exponential and the products are float.
/// The CTF then differs from the CPU's by at most ~4e-7 of the image's CTF
/// range (scale * B-factor envelope); tests/cuda/test_ctf_batch_cuda.cpp
/// allows 1e-6 (2e-6 * range^2 for CtfOp::Square).
#include <cstddef>
#include <memory>

#include "tessera/ctf_batch.hpp"

namespace tessera {

/// Default device memory for image data per transfer: 256 MiB.
inline constexpr std::size_t kCudaCtfDefaultChunkBytes = std::size_t{256} << 20;

/// A CtfApplier on CUDA device `device` (0-based, as --gpu numbers devices).
/// max_chunk_bytes bounds the device memory held for image data: larger stacks
/// go through in chunks of whole images (at least one image per chunk).
/// Throws InputError if `device` is not a usable CUDA device (none present,
/// or out of range), CudaError (cuda_check.hpp) if the runtime fails.
std::unique_ptr<CtfApplier> make_cuda_ctf_applier(
    int device, std::size_t max_chunk_bytes = kCudaCtfDefaultChunkBytes);

}  // namespace tessera
