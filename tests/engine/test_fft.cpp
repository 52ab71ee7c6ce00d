// FFT plans against a direct discrete Fourier transform (the oracle), round
// trips, batching, centring and phase shifts, and planning from many threads.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <thread>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

RealGrid random_grid(int nx, int ny, int nz, std::uint64_t seed) {
  RealGrid g(nx, ny, nz);
  Rng rng = item_rng(seed, 0);
  for (float& v : g.values()) v = static_cast<float>(normal01(rng));
  return g;
}

// Direct DFT of one 2D section at half-complex index (kx, ky).
std::complex<double> dft2(const RealGrid& g, int z, int kx, int ky) {
  std::complex<double> s = 0;
  for (int y = 0; y < g.ny(); ++y)
    for (int x = 0; x < g.nx(); ++x) {
      const double ph = -2 * std::numbers::pi * (double(kx) * x / g.nx() + double(ky) * y / g.ny());
      s += double(g(x, y, z)) * std::complex<double>(std::cos(ph), std::sin(ph));
    }
  return s;
}

TEST(Fft, TwoDimensionalMatchesTheDirectSum) {
  for (auto [nx, ny] : {std::pair{8, 8}, std::pair{9, 6}, std::pair{7, 11}}) {
    const RealGrid g = random_grid(nx, ny, 1, nx * 100 + ny);
    const ComplexGrid f = fft_2d(g);
    ASSERT_EQ(f.nx(), nx / 2 + 1);
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx / 2 + 1; ++x) {
        const auto want = dft2(g, 0, x, fourier_index(y, ny));
        // Single precision over <= 77 terms of unit variance: error ~ 1e-5.
        EXPECT_NEAR(f(x, y).real(), want.real(), 1e-4) << nx << "x" << ny << " (" << x << "," << y << ")";
        EXPECT_NEAR(f(x, y).imag(), want.imag(), 1e-4);
      }
  }
}

TEST(Fft, ThreeDimensionalMatchesTheDirectSum) {
  const int n = 6;
  const RealGrid g = random_grid(n, n, n, 3);
  const ComplexGrid f = fft_3d(g);
  for (int kz = 0; kz < n; ++kz)
    for (int ky = 0; ky < n; ++ky)
      for (int kx = 0; kx < n / 2 + 1; ++kx) {
        std::complex<double> s = 0;
        for (int z = 0; z < n; ++z)
          for (int y = 0; y < n; ++y)
            for (int x = 0; x < n; ++x) {
              const double ph = -2 * std::numbers::pi * double(kx * x + ky * y + kz * z) / n;
              s += double(g(x, y, z)) * std::complex<double>(std::cos(ph), std::sin(ph));
            }
        EXPECT_NEAR(f(kx, ky, kz).real(), s.real(), 1e-4);
        EXPECT_NEAR(f(kx, ky, kz).imag(), s.imag(), 1e-4);
      }
}

TEST(Fft, InverseUndoesForward) {
  const RealGrid img = random_grid(64, 48, 1, 5), vol = random_grid(20, 20, 20, 6);
  const RealGrid back2 = ifft_2d(fft_2d(img), 64), back3 = ifft_3d(fft_3d(vol), 20);
  for (std::size_t i = 0; i < img.size(); ++i) ASSERT_NEAR(back2[i], img[i], 1e-5);
  for (std::size_t i = 0; i < vol.size(); ++i) ASSERT_NEAR(back3[i], vol[i], 1e-5);
}

TEST(Fft, BatchedPlanTransformsEachImage) {
  const RealGrid stack = random_grid(16, 16, 5, 7);
  ComplexGrid all;
  RealFft::plan_2d(16, 16, 5).forward(stack, all);
  for (int z = 0; z < 5; ++z) {
    RealGrid one(16, 16);
    std::copy(stack.section(z), stack.section(z) + 256, one.data());
    const ComplexGrid f = fft_2d(one);
    for (int i = 0; i < 9 * 16; ++i) ASSERT_EQ(all.section(z)[i], f[i]);
  }
}

TEST(Fft, CentringRollsTheCentreToTheOrigin) {
  for (int n : {8, 9}) {
    RealGrid g(n, n, n);
    g(n / 2, n / 2, n / 2) = 1;
    RealGrid c = g;
    centre_to_corner(c, true);
    EXPECT_EQ(c(0, 0, 0), 1.0f);
    corner_to_centre(c, true);
    EXPECT_EQ(c.values(), g.values());
  }
}

TEST(Fft, PhaseShiftMovesContentByWholePixels) {
  const RealGrid img = random_grid(16, 12, 1, 9);
  ComplexGrid f = fft_2d(img);
  phase_shift_2d(f, 16, 3, -2);
  const RealGrid moved = ifft_2d(f, 16);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x) ASSERT_NEAR(moved((x + 3) % 16, (y - 2 + 12) % 12), img(x, y), 1e-5);
}

TEST(Fft, PlansCanBeMadeAndUsedFromManyThreads) {
  const RealGrid img = random_grid(32, 32, 1, 11);
  const ComplexGrid want = fft_2d(img);
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 20; ++k) {
        const RealFft plan = RealFft::plan_2d(32, 32);
        ComplexGrid f;
        plan.forward(img, f);
        ok[t] += f.values() == want.values();
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(ok[t], 20);
}

// Oracle: the frequency index. Padding 10 -> 16 puts component (kx, ky, kz) of the small grid at the
// same signed indices of the large one and zeros elsewhere; cropping back returns the original
// except its Nyquist planes (|k| = 5), which the padded grid leaves out.
TEST(Fft, ResizeSpectrumKeepsEachFrequencyAtItsIndex) {
  const ComplexGrid small = fft_3d(random_grid(10, 10, 10, 7));
  const ComplexGrid big = resize_spectrum(small, 10, 16);
  ASSERT_EQ(big.nx(), 9);
  ASSERT_EQ(big.nz(), 16);
  EXPECT_EQ(big(3, fourier_storage(-4, 16), fourier_storage(2, 16)), small(3, fourier_storage(-4, 10), fourier_storage(2, 10)));
  EXPECT_EQ(big(4, fourier_storage(4, 16), fourier_storage(-4, 16)), small(4, fourier_storage(4, 10), fourier_storage(-4, 10)));
  EXPECT_EQ(big(6, 0, 0), cfloat(0, 0));                                // beyond the small grid
  EXPECT_EQ(big(0, fourier_storage(-5, 16), 0), cfloat(0, 0));           // the small grid's Nyquist plane
  const ComplexGrid back = resize_spectrum(big, 16, 10);
  for (int z = 0; z < 10; ++z)
    for (int y = 0; y < 10; ++y)
      for (int x = 0; x < 6; ++x) {
        const bool nyquist = x == 5 || y == 5 || z == 5;
        EXPECT_EQ(back(x, y, z), nyquist ? cfloat(0, 0) : small(x, y, z)) << x << " " << y << " " << z;
      }
  EXPECT_THROW(resize_spectrum(small, 12, 16), std::invalid_argument);
}

TEST(Fft, RejectsGridsOfAnotherShape) {
  const RealFft plan = RealFft::plan_2d(8, 8);
  ComplexGrid f;
  EXPECT_THROW(plan.forward(RealGrid(8, 9), f), std::invalid_argument);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// Even sizes with prime factors 2, 3, 5, 7 only, the smallest at or above the request.
TEST(FftFriendlySize, SmallestEvenSevenSmoothSizeAtOrAbove) {
  EXPECT_EQ(fft_friendly_size(1), 2);
  EXPECT_EQ(fft_friendly_size(11), 12);
  EXPECT_EQ(fft_friendly_size(22), 24);   // 22 = 2 * 11
  EXPECT_EQ(fft_friendly_size(26), 28);   // 26 = 2 * 13
  EXPECT_EQ(fft_friendly_size(98), 98);   // 2 * 7^2
  EXPECT_EQ(fft_friendly_size(118), 120); // 118 = 2 * 59
  EXPECT_EQ(fft_friendly_size(257), 270); // 258 = 2 * 3 * 43, 260 = 4 * 5 * 13, ..., 270 = 2 * 3^3 * 5
}

// Trilinear resampling reproduces a linear ramp between the coarse samples (periodic wrap aside).
TEST(ResampleTrilinear, ReproducesARampBetweenSamples) {
  RealGrid coarse(8, 8, 8);
  for (int z = 0; z < 8; ++z)
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) coarse(x, y, z) = static_cast<float>(x + 2 * y + 3 * z);
  const RealGrid fine = resample_trilinear(coarse, 16);
  for (int z = 0; z < 14; ++z)
    for (int y = 0; y < 14; ++y)
      for (int x = 0; x < 14; ++x) ASSERT_NEAR(fine(x, y, z), 0.5 * (x + 2 * y + 3 * z), 1e-4) << x << y << z;
}

}  // namespace
}  // namespace tessera
