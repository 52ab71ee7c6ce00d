#include "tessera/local_resolution.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/random.hpp"
#include "radial_filter.hpp"

namespace tessera {
namespace {

constexpr double kThreshold = 0.143;
// Signal-to-noise power ratio at which FSC = S / (S + 1) equals the threshold.
constexpr double kSnrAtThreshold = kThreshold / (1 - kThreshold);

RealGrid white_noise(int n, Rng& rng) {
  RealGrid g(n, n, n);
  for (auto& v : g.values()) v = static_cast<float>(normal01(rng));
  return g;
}

RealGrid plus(const RealGrid& a, const RealGrid& b) {
  RealGrid out = a;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] += b[i];
  return out;
}

double median_where(const RealGrid& g, const std::function<bool(int, int, int)>& keep) {
  std::vector<float> v;
  for (int z = 0; z < g.nz(); ++z)
    for (int y = 0; y < g.ny(); ++y)
      for (int x = 0; x < g.nx(); ++x)
        if (keep(x, y, z)) v.push_back(g(x, y, z));
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Signal power spectral density (relative to white noise of variance 1) falling e-fold every kDecay
// shells and equal to kSnrAtThreshold at shell r: the true FSC S / (S + 1) falls smoothly through the
// threshold at r, as real maps' FSC curves do.
constexpr double kDecay = 4.0;
double snr(double k, double r) { return kSnrAtThreshold * std::exp((r - k) / kDecay); }

// Where the expected FSC of the estimator's band crosses the threshold, for a stationary signal of power
// spectral density snr_of(s) against white noise of 1: the band around shell k weights shell s by its
// Fourier voxels (~ s^2) times the profile's square exp(-(s - k)^2 / sigma^2), and the crossing is
// interpolated between shells as local_resolution does. The oracle of the band's averaging.
double expected_band_crossing(const std::function<double(double)>& snr_of, double sigma, int n) {
  double previous = 1;
  for (int k = 1; k <= n / 2; ++k) {
    double signal = 0, total = 0;
    for (int s = std::max(1, k - int(std::ceil(3 * sigma))); s <= std::min(n / 2, k + int(std::ceil(3 * sigma))); ++s) {
      const double weight = double(s) * s * std::exp(-double(s - k) * (s - k) / (sigma * sigma));
      signal += weight * snr_of(s);
      total += weight * (snr_of(s) + 1);
    }
    const double fsc = signal / total;
    if (fsc < kThreshold) return k - 1 + (previous - kThreshold) / (previous - fsc);
    previous = fsc;
  }
  return n / 2.0;
}

// Two slabs of a 96^3 box (x below 48 and from 48 on, with soft boundaries), each holding a stationary
// signal whose FSC crosses 0.143 at its own shell, 12 (12 A at 1.5 A/voxel) and 28 (5.1 A); both halves
// carry independent white noise of variance 1. In each slab's core, more than 2.5 window sigmas from the
// boundaries, the local resolution is that slab's within one shell of the box.
TEST(LocalResolution, RecoversEachRegionsResolutionWithinOneShell) {
  constexpr int n = 96;
  constexpr double r_low = 12, r_high = 28;
  Rng rng(11);
  const RealGrid s_low = test::radial_filter(white_noise(n, rng), [](double k) { return std::sqrt(snr(k, r_low)); });
  const RealGrid s_high = test::radial_filter(white_noise(n, rng), [](double k) { return std::sqrt(snr(k, r_high)); });
  // Slab weights varying as a raised cosine over 8 voxels around x = 0 (periodic) and x = 48.
  RealGrid signal(n, n, n);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        const double w = 0.5 + 0.5 * std::clamp(std::sin(2 * std::numbers::pi * (x + 0.5) / n) * 3, -1.0, 1.0);
        signal(x, y, z) = static_cast<float>(w * s_low(x, y, z) + (1 - w) * s_high(x, y, z));
      }
  const RealGrid a = plus(signal, white_noise(n, rng)), b = plus(signal, white_noise(n, rng));

  LocalResolutionOptions o;
  o.voxel_A = 1.5;
  o.window_A = 24;  // 16 voxels: sigma 4.5 voxels; the window's own shell is 6 shells of the box
  o.threads = 2;
  const LocalResolution lr = local_resolution(a, b, nullptr, o);
  EXPECT_NEAR(lr.band_sigma_shells, 96 / (std::sqrt(std::numbers::pi) * 16), 1e-9);  // 3.4 shells

  // Slab cores: x in [12, 36) (low) and [60, 84) (high), 12 voxels from the boundaries at 0 and 48.
  const double low = median_where(lr.crossing_shell, [](int x, int, int) { return x >= 12 && x < 36; });
  const double high = median_where(lr.crossing_shell, [](int x, int, int) { return x >= 60 && x < 84; });
  const double low_expected = expected_band_crossing([](double k) { return snr(k, r_low); }, lr.band_sigma_shells, n);
  const double high_expected = expected_band_crossing([](double k) { return snr(k, r_high); }, lr.band_sigma_shells, n);
  // The band's averaging moves this curve's crossing by a fraction of a shell (the oracle says how much;
  // measured medians: 11.8 and 28.0).
  EXPECT_NEAR(low_expected, r_low, 0.5);
  EXPECT_NEAR(high_expected, r_high, 0.5);
  EXPECT_NEAR(low, r_low, 1.0);
  EXPECT_NEAR(high, r_high, 1.0);
  // Resolution in Angstrom is the same crossing: N * voxel / c.
  const double low_A = median_where(lr.resolution_A, [](int x, int, int) { return x >= 12 && x < 36; });
  EXPECT_NEAR(low_A, n * 1.5 / low, 0.05 * low_A);
  EXPECT_EQ(lr.nyquist_limited_voxels, 0);
}

// A stationary map: every window sees the same statistics, so the median local resolution is the global
// FSC's resolution (interpolated at 0.143) within one shell.
TEST(LocalResolution, MedianOfAStationaryMapIsTheGlobalResolution) {
  constexpr int n = 64;
  constexpr double r = 14;
  Rng rng(5);
  const RealGrid s = test::radial_filter(white_noise(n, rng), [](double k) { return std::sqrt(snr(k, r)); });
  const RealGrid a = plus(s, white_noise(n, rng)), b = plus(s, white_noise(n, rng));
  LocalResolutionOptions o;
  o.voxel_A = 2;
  o.window_A = 32;
  const LocalResolution lr = local_resolution(a, b, nullptr, o);
  const LocalResolutionHistogram hist = local_resolution_histogram(lr.resolution_A, nullptr);
  const double global_A = *resolution_at_interpolated(fsc(a, b), kThreshold, n, 2.0);
  const double shell_global = n * 2.0 / global_A, shell_median = n * 2.0 / hist.median_A;
  EXPECT_NEAR(shell_median, shell_global, 1.0) << "median " << hist.median_A << " A, global " << global_A << " A";
  EXPECT_EQ(hist.voxels, long(n) * n * n);
  long counted = 0;
  for (long c : hist.counts) counted += c;
  EXPECT_EQ(counted, hist.voxels);
  EXPECT_LE(hist.p05_A, hist.median_A);
  EXPECT_GE(hist.p95_A, hist.median_A);
}

// Halves that share a signal up to shell 10 and are independent beyond (as after phase randomization beyond
// shell 10), with the shared signal confined to a sphere of radius 10 voxels (local SNR about 9). A global
// FSC of the halves multiplied by a tight mask correlates beyond shell 10 (the mask spreads the shared low
// shells outward: checked below, at shell 11); the windowed band FSC does not. With a narrow band (sigma 0.5 shells,
// whose profile gives shell 10 a power weight of e^-4 at shell 11 and e^-16 at 12) the crossing inside the
// sphere lies between shells 10 and 11.5.
TEST(LocalResolution, IndependentHalvesBeyondAShellAreNotCorrelated) {
  constexpr int n = 64;
  Rng rng(3);
  auto sphere = [](int x, int y, int z, double r2) {
    return double(x - 32) * (x - 32) + double(y - 32) * (y - 32) + double(z - 32) * (z - 32) <= r2;
  };
  RealGrid shared = white_noise(n, rng), mask(n, n, n, 0.f);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        shared(x, y, z) *= sphere(x, y, z, 100) ? 3.f : 0.f;
        mask(x, y, z) = sphere(x, y, z, 144) ? 1.f : 0.f;
      }
  shared = test::band_limited(shared, 10.0);
  const RealGrid a = plus(shared, white_noise(n, rng)), b = plus(shared, white_noise(n, rng));
  const std::vector<double> masked = masked_fsc(a, b, mask);
  EXPECT_GT(masked[11], 0.2) << "shell 11 (radius 10.5 to 11.5) holds nothing the halves share, yet the masked FSC "
                                "correlates there (measured 0.30)";
  LocalResolutionOptions o;
  o.voxel_A = 1;
  o.window_A = 32;  // half the box: about 100 independent Fourier samples in the band at 11, noise FSC +- 0.1
  o.band_sigma_shells = 0.5;
  const LocalResolution lr = local_resolution(a, b, nullptr, o);
  const double c = median_where(lr.crossing_shell, [&](int x, int y, int z) { return sphere(x, y, z, 25); });
  EXPECT_GT(c, 10.0);
  EXPECT_LE(c, 11.5);
}

// A mask says where the answer is needed: the bands stop once every voxel in it has crossed.
TEST(LocalResolution, StopsWhenEveryVoxelOfTheMaskHasCrossed) {
  constexpr int n = 48;
  Rng rng(8);
  const RealGrid s = test::radial_filter(white_noise(n, rng), [](double k) { return std::sqrt(snr(k, 8)); });
  const RealGrid a = plus(s, white_noise(n, rng)), b = plus(s, white_noise(n, rng));
  RealGrid mask(n, n, n, 0.f);
  for (int z = 16; z < 32; ++z)
    for (int y = 16; y < 32; ++y)
      for (int x = 16; x < 32; ++x) mask(x, y, z) = 1;
  LocalResolutionOptions o;
  o.voxel_A = 2;
  o.window_A = 24;
  const LocalResolution masked = local_resolution(a, b, &mask, o);
  EXPECT_LT(masked.bands_evaluated, 16);  // the crossing is near shell 8 of 24
  const LocalResolution whole = local_resolution(a, b, nullptr, o);
  // Inside the mask both runs found the same crossings.
  for (int z = 18; z < 30; ++z)
    for (int y = 18; y < 30; ++y)
      for (int x = 18; x < 30; ++x) EXPECT_FLOAT_EQ(masked.crossing_shell(x, y, z), whole.crossing_shell(x, y, z));
}

TEST(LocalResolution, RejectsBadInput) {
  const RealGrid a(32, 32, 32, 1.f), b(32, 32, 32, 1.f), small(16, 16, 16, 1.f);
  LocalResolutionOptions o;
  o.voxel_A = 1;
  EXPECT_THROW(local_resolution(a, small, nullptr, o), InputError);
  RealGrid bad_mask(32, 32, 32, 2.f);
  EXPECT_THROW(local_resolution(a, b, &bad_mask, o), InputError);
  o.threshold = 1.5;
  EXPECT_THROW(local_resolution(a, b, nullptr, o), InputError);
  o.threshold = 0.143;
  o.window_A = 2;  // under 4 voxels
  EXPECT_THROW(local_resolution(a, b, nullptr, o), InputError);
  o.window_A = 20;
  o.voxel_A = 0;
  EXPECT_THROW(local_resolution(a, b, nullptr, o), InputError);
}

}  // namespace
}  // namespace tessera
