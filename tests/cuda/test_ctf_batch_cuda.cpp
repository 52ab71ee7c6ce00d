// CUDA CtfApplier against the CPU one (itself checked against ctf_image in
// tests/engine/test_ctf_batch.cpp). Skips where no CUDA device is usable.
//
// Parity tolerance (float data, CTF from double constants): both sides compute chi in double
// (|chi| reaches ~4e3 rad below; double error ~1e-12 rad). The GPU reduces chi to [-pi, pi] in
// double, then rounds it to float (<= 1.2e-7 rad), takes sinf (<= 2 ulp, 1.2e-7) and multiplies
// by the float envelope scale * exp(-B k^2 / 4) (0.5 ulp each); the CPU rounds its double CTF to
// float once (0.5 ulp). So |CTF_gpu - CTF_cpu| <= ~4e-7 * R, with R = max |CTF| of the image
// (the value range), and the float product with the data adds 1 ulp. Tolerances:
//   Multiply, MultiplyAbs: |out_gpu - out_cpu| <= 1e-6 * R   * |in|
//   Square:                |out_gpu - out_cpu| <= 2e-6 * R^2 * |in|   (d(f^2) = 2 f df)
// A host emulation of the kernel's arithmetic on these parameters gave 2e-7 * R. Computing chi
// in float instead (float ulp is 2.4e-4 rad near 3e3 rad) gave 5e-4 * R, 500x the tolerance.
#include "ctf_batch_cuda.hpp"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/ctf.hpp"
#include "tessera/error.hpp"

namespace tessera {
namespace {

/// Number of usable CUDA devices; 0 when the runtime reports none or an error.
int usable_devices(std::string& why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    why = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(status);
    return 0;
  }
  if (count == 0) why = "cudaGetDeviceCount reports 0 devices";
  return count;
}

ComplexGrid random_stack(int nx, int ny, int batch, unsigned seed) {
  ComplexGrid g(nx / 2 + 1, ny, batch);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : g.values()) v = cfloat(normal(rng), normal(rng));
  return g;
}

/// High-resolution, large-defocus CTFs (chi up to ~4e3 rad at 0.65 A/pixel), astigmatic, with
/// phase shifts, positive and negative B-factors and scales: every term and the precision limit.
std::vector<CtfParams> demanding_params(int batch) {
  std::vector<CtfParams> ps(batch);
  for (int z = 0; z < batch; ++z) {
    CtfParams& p = ps[z];
    p.defocus_u_A = 5000 + 6000.0 * z;
    p.defocus_v_A = p.defocus_u_A - 1500 + 700.0 * (z % 3);
    p.defocus_angle_deg = -170 + 53.0 * z;
    p.voltage_kV = z % 2 ? 200 : 300;
    p.cs_mm = z % 3 ? 2.7 : 0.01;
    p.amplitude_contrast = 0.07 + 0.02 * (z % 2);
    p.phase_shift_deg = z % 4 == 1 ? 90 : 0;
    p.bfactor_A2 = z % 3 == 0 ? 0 : (z % 3 == 1 ? 60 : -15);
    p.scale = 0.6 + 0.25 * z;
  }
  return ps;
}

/// Checks gpu against cpu output for input `in` with the tolerances stated at the top.
void expect_parity(const ComplexGrid& in, const ComplexGrid& cpu, const ComplexGrid& gpu, int nx,
                   const std::vector<CtfParams>& params, double pixel_A, CtfOp op) {
  ASSERT_TRUE(gpu.same_shape(cpu));
  double worst = 0;  // largest |difference| / tolerance
  for (int z = 0; z < in.nz(); ++z) {
    const RealGrid ctf = ctf_image(params[z], nx, in.ny(), pixel_A);
    double range = 0;
    for (float v : ctf.values()) range = std::max(range, std::fabs(static_cast<double>(v)));
    const double rel = op == CtfOp::Square ? 2e-6 * range * range : 1e-6 * range;
    for (int y = 0; y < in.ny(); ++y)
      for (int x = 0; x < in.nx(); ++x) {
        const double diff = std::abs(gpu(x, y, z) - cpu(x, y, z));
        worst = std::max(worst, diff / (rel * std::abs(in(x, y, z))));
      }
  }
  EXPECT_LE(worst, 1.0) << "op " << static_cast<int>(op) << ", nx " << nx << ", ny " << in.ny();
}

TEST(CtfBatchCuda, MissingDeviceIsAnInputError) {
  std::string why;
  const int count = usable_devices(why);
  // One past the last device: device 0 where none is usable (this test's point on CPU machines).
  EXPECT_THROW(make_cuda_ctf_applier(count), InputError) << why;
  EXPECT_THROW(make_cuda_ctf_applier(-1), InputError);
}

TEST(CtfBatchCuda, MatchesCpu) {
  std::string why;
  if (usable_devices(why) == 0) GTEST_SKIP() << why;
  const double pixel_A = 0.65;
  const auto params = demanding_params(8);
  auto gpu_applier = make_cuda_ctf_applier(0);
  auto cpu_applier = make_cpu_ctf_applier();
  for (auto [nx, ny] : {std::pair{97, 90}, std::pair{128, 128}}) {
    for (CtfOp op : {CtfOp::Multiply, CtfOp::MultiplyAbs, CtfOp::Square}) {
      const ComplexGrid input = random_stack(nx, ny, 8, 5);
      ComplexGrid cpu = input, gpu = input;
      cpu_applier->apply(cpu, nx, params, pixel_A, op);
      gpu_applier->apply(gpu, nx, params, pixel_A, op);
      expect_parity(input, cpu, gpu, nx, params, pixel_A, op);
    }
  }
}

// A plan is reused across calls of different shapes and batch sizes, and a small memory budget
// sends the stack through in chunks (2 images each, the last one partial).
TEST(CtfBatchCuda, ChunkedAndReusedPlanMatchesCpu) {
  std::string why;
  if (usable_devices(why) == 0) GTEST_SKIP() << why;
  const int small = 64, large = 150;
  const std::size_t two_large_images = 2 * sizeof(cfloat) * (large / 2 + 1) * large;
  auto gpu_applier = make_cuda_ctf_applier(0, two_large_images);
  auto cpu_applier = make_cpu_ctf_applier();
  for (auto [n, batch] : {std::pair{small, 3}, std::pair{large, 7}, std::pair{small, 11}}) {
    const auto params = demanding_params(batch);
    const ComplexGrid input = random_stack(n, n, batch, 11 + n);
    ComplexGrid cpu = input, gpu = input;
    cpu_applier->apply(cpu, n, params, 1.0);
    gpu_applier->apply(gpu, n, params, 1.0);
    expect_parity(input, cpu, gpu, n, params, 1.0, CtfOp::Multiply);
  }
  ComplexGrid empty(small / 2 + 1, small, 0);
  EXPECT_NO_THROW(gpu_applier->apply(empty, small, {}, 1.0));
  ComplexGrid wrong(small / 2 + 1, small, 2);
  EXPECT_THROW(gpu_applier->apply(wrong, small, demanding_params(3), 1.0), std::invalid_argument);
}

// The kernel does not evaluate the CTF at M k (ctf.hpp): a magnification matrix is refused, the
// stack left as it was, rather than a CTF the CPU would not give.
TEST(CtfBatchCuda, RefusesAnisotropicMagnification) {
  std::string why;
  if (usable_devices(why) == 0) GTEST_SKIP() << why;
  auto params = demanding_params(2);
  params[1].mag_matrix = {1.01, 0, 0, 0.99};
  const ComplexGrid input = random_stack(64, 64, 2, 3);
  ComplexGrid gpu = input;
  EXPECT_THROW(make_cuda_ctf_applier(0)->apply(gpu, 64, params, 1.0), InputError);
  EXPECT_EQ(gpu.values(), input.values());
}

}  // namespace
}  // namespace tessera
