#include "tessera/fsc.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/mask.hpp"
#include "tessera/random.hpp"
#include "test_data.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;

RealGrid gaussian_noise(int nx, int ny, int nz, double sigma, Rng& rng) {
  RealGrid g(nx, ny, nz);
  for (auto& v : g.values()) v = static_cast<float>(sigma * normal01(rng));
  return g;
}

/// Calls fn(x, y, z, r) for every voxel of a half-complex volume transform of
/// an n^3 grid; r is the radius in voxels of frequency.
template <class Fn>
void for_each_voxel(const ComplexGrid& f, Fn&& fn) {
  const int n = f.ny();
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < f.ny(); ++y)
      for (int x = 0; x < f.nx(); ++x) {
        const double ky = fourier_index(y, n), kz = fourier_index(z, f.nz());
        fn(x, y, z, std::sqrt(x * x + ky * ky + kz * kz));
      }
}

/// Voxels of the stored half-transform per shell (as fsc() counts them).
std::vector<double> shell_counts(const ComplexGrid& f, int n) {
  std::vector<double> count(n / 2 + 1, 0.0);
  for_each_voxel(f, [&](int, int, int, double r) {
    if (std::lround(r) <= n / 2) count[std::lround(r)] += 1;
  });
  return count;
}

double rms(const ComplexGrid& f) {
  double s = 0;
  for (const auto& v : f.values()) s += std::norm(std::complex<double>(v));
  return std::sqrt(s / static_cast<double>(f.size()));
}

TEST(Fsc, MapWithItselfIsOneInEveryShell) {
  Rng rng = item_rng(1, 0);
  for (const RealGrid& v : {gaussian_noise(32, 32, 32, 1.0, rng), gaussian_noise(33, 33, 33, 1.0, rng),
                            gaussian_noise(40, 40, 1, 1.0, rng)}) {
    const auto curve = fsc(v, v);
    ASSERT_EQ(curve.size(), static_cast<std::size_t>(v.nx() / 2 + 1));
    for (std::size_t k = 0; k < curve.size(); ++k) EXPECT_NEAR(curve[k], 1.0, 1e-6) << v.nx() << " shell " << k;
  }
}

TEST(Fsc, SignalPlusIndependentNoiseGivesSnrOverOnePlusSnr) {
  // a = s + n1, b = s + n2 with s = white Gaussian (sigma 1) filtered by
  // H(r) = exp(-(r/10)^2) and n1, n2 white with sigma_n. Each Fourier voxel
  // then has E|S|^2 = N^3 H(r)^2 and E|N|^2 = N^3 sigma_n^2, so the expected
  // FSC of shell k is SNR_k / (1 + SNR_k), SNR_k = <H^2>_k / sigma_n^2. A
  // sample correlation of 2 n_k real pairs (real and imaginary parts of n_k
  // stored voxels) has standard deviation (1 - rho^2) / sqrt(2 n_k); we allow 5.
  const int n = 40;
  const double sigma_n = 0.3;
  Rng rng = item_rng(2, 0);
  ComplexGrid fs = fft_3d(gaussian_noise(n, n, n, 1.0, rng));
  std::vector<double> h2_sum(n / 2 + 1, 0.0);
  for_each_voxel(fs, [&](int x, int y, int z, double r) {
    const double h = std::exp(-(r / 10) * (r / 10));
    fs(x, y, z) *= static_cast<float>(h);
    if (std::lround(r) <= n / 2) h2_sum[std::lround(r)] += h * h;
  });
  const RealGrid s = ifft_3d(fs, n);
  RealGrid a = gaussian_noise(n, n, n, sigma_n, rng), b = gaussian_noise(n, n, n, sigma_n, rng);
  for (std::size_t i = 0; i < s.size(); ++i) a[i] += s[i], b[i] += s[i];

  const auto curve = fsc(a, b);
  const auto count = shell_counts(fs, n);
  for (int k = 3; k <= n / 2; ++k) {
    const double snr = h2_sum[k] / count[k] / (sigma_n * sigma_n);
    const double rho = snr / (1 + snr);
    EXPECT_NEAR(curve[k], rho, 5 * (1 - rho * rho) / std::sqrt(2 * count[k])) << "shell " << k;
  }
  EXPECT_GT(curve[3], 0.85);  // the curve spans high and low correlation
  EXPECT_LT(std::fabs(curve[n / 2]), 0.1);
}

TEST(Fsc, RejectsMismatchedOrNonCubicMaps) {
  EXPECT_THROW(fsc(RealGrid(8, 8, 8), RealGrid(8, 8, 4)), InputError);
  EXPECT_THROW(fsc(RealGrid(8, 8, 4), RealGrid(8, 8, 4)), InputError);
}

// Half-integers are exact in float: (a + b) / 2 must come out exactly.
TEST(AverageMaps, VoxelWiseMeanOfTwoMaps) {
  RealGrid a(4, 4, 4), b(4, 4, 4);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(i), b[i] = -3.0f * float(i) + 1.0f;
  const RealGrid m = average_maps(a, b);
  ASSERT_TRUE(m.same_shape(a));
  for (std::size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i], 0.5f - float(i)) << i;
  EXPECT_THROW(average_maps(RealGrid(4, 4, 4), RealGrid(4, 4, 2)), InputError);
}

TEST(ShellResolution, ExactValues) {
  const auto res = shell_resolution_A(64, 3.0);
  ASSERT_EQ(res.size(), 33u);
  EXPECT_TRUE(std::isinf(res[0]));
  EXPECT_DOUBLE_EQ(res[1], 192.0);
  EXPECT_DOUBLE_EQ(res[2], 96.0);
  EXPECT_DOUBLE_EQ(res[11], 192.0 / 11);  // 17.4545: RELION's rlnRandomiseFrom on relion_7DDO
  EXPECT_DOUBLE_EQ(res[31], 192.0 / 31);  // 6.19355: its rlnFinalResolution
  EXPECT_DOUBLE_EQ(res[32], 6.0);         // Nyquist
  const auto odd = shell_resolution_A(45, 1.5);
  ASSERT_EQ(odd.size(), 23u);
  EXPECT_DOUBLE_EQ(odd[22], 45 * 1.5 / 22);
}

TEST(ResolutionAt, SyntheticCurvesWithKnownCrossings) {
  // Linear curve 1 - k/16 on 33 shells (box 64, 2 A): it crosses 0.143 at
  // k* = 16 (1 - 0.143) = 13.712; shell 13 is the last above, 14 the first below.
  std::vector<double> line(33);
  for (int k = 0; k <= 32; ++k) line[k] = 1.0 - k / 16.0;
  EXPECT_DOUBLE_EQ(*resolution_at(line, 0.143, 64, 2.0), 128.0 / 13);
  EXPECT_NEAR(*resolution_at_interpolated(line, 0.143, 64, 2.0), 128.0 / 13.712, 1e-9);
  EXPECT_DOUBLE_EQ(*resolution_at(line, 0.5, 64, 2.0), 128.0 / 8);  // exactly at 0.5 counts as above
  EXPECT_NEAR(*resolution_at_interpolated(line, 0.5, 64, 2.0), 128.0 / 8, 1e-9);

  // The first drop counts, even if the curve comes back up.
  std::vector<double> dip(33, 0.9);
  dip[5] = 0.1;
  EXPECT_DOUBLE_EQ(*resolution_at(dip, 0.143, 64, 2.0), 128.0 / 4);

  // Never below up to Nyquist: no estimate. Shell 0 is not examined.
  std::vector<double> high(33, 0.9);
  high[0] = -1.0;
  EXPECT_FALSE(resolution_at(high, 0.143, 64, 2.0).has_value());
  EXPECT_FALSE(resolution_at_interpolated(high, 0.143, 64, 2.0).has_value());

  // Below from shell 1 on: no resolved shell at all.
  std::vector<double> low(33, 0.0);
  low[0] = 1.0;
  EXPECT_TRUE(std::isinf(*resolution_at(low, 0.143, 64, 2.0)));
  EXPECT_TRUE(std::isinf(*resolution_at_interpolated(low, 0.143, 64, 2.0)));

  EXPECT_THROW(resolution_at(line, 0.143, 62, 2.0), std::invalid_argument);
}

/// Checks F_out = gain(r) F_in for every Fourier voxel, to 1e-4 of the rms
/// amplitude (float FFT round trips are good to ~1e-6 of it).
template <class Gain>
void expect_filter(const RealGrid& in, const RealGrid& out, Gain&& gain) {
  const int n = in.nx();
  const ComplexGrid fi = in.nz() == 1 ? fft_2d(in) : fft_3d(in);
  const ComplexGrid fo = in.nz() == 1 ? fft_2d(out) : fft_3d(out);
  const double tol = 1e-4 * rms(fi);
  int failures = 0;
  for_each_voxel(fi, [&](int x, int y, int z, double r) {
    const std::complex<double> want = gain(r) * std::complex<double>(fi(x, y, z));
    if (std::abs(std::complex<double>(fo(x, y, z)) - want) > tol && ++failures < 5)
      ADD_FAILURE() << "n " << n << " voxel " << x << "," << y << "," << z << " r " << r;
  });
  EXPECT_EQ(failures, 0);
}

TEST(Lowpass, RaisedCosineGainOnEveryFourierVoxel) {
  Rng rng = item_rng(3, 0);
  const RealGrid v = gaussian_noise(40, 40, 40, 1.0, rng);
  // 40 * 2.5 / 9.6 = 10.4167 shells, edge of 3 shells: pass below 8.917, stop above 11.917.
  const double c = 40 * 2.5 / 9.6;
  expect_filter(v, lowpass(v, 9.6, 2.5, 3.0), [&](double r) {
    if (r <= c - 1.5) return 1.0;
    if (r >= c + 1.5) return 0.0;
    return 0.5 + 0.5 * std::cos(kPi * (r - c + 1.5) / 3.0);
  });
  expect_filter(v, lowpass(v, 9.6, 2.5, 0.0), [&](double r) { return r <= c ? 1.0 : 0.0; });
  const RealGrid image = gaussian_noise(33, 33, 1, 1.0, rng);
  expect_filter(image, lowpass(image, 5.0, 1.0, 2.0), [&](double r) {  // c = 6.6
    return r <= 5.6 ? 1.0 : r >= 7.6 ? 0.0 : 0.5 + 0.5 * std::cos(kPi * (r - 5.6) / 2.0);
  });
}

TEST(Lowpass, PowerGoneBeyondTheCutAndKeptBelow) {
  Rng rng = item_rng(4, 0);
  const RealGrid v = gaussian_noise(32, 32, 32, 1.0, rng);
  const auto before = shell_mean_amplitude(v), after = shell_mean_amplitude(lowpass(v, 4.0, 1.0, 2.0));
  // c = 8 shells: shells up to 6 (r < 6.5 <= c - 1) are untouched, shells from
  // 10 (r >= 9.5 >= c + 1) are empty.
  for (int k = 0; k <= 6; ++k) EXPECT_NEAR(after[k] / before[k], 1.0, 1e-4) << k;
  for (int k = 10; k <= 16; ++k) EXPECT_LT(after[k] / before[k], 1e-4) << k;
  EXPECT_THROW(lowpass(v, -4.0, 1.0), InputError);
}

TEST(PhaseRandomize, KeepsAmplitudesAndLowResolutionPhases) {
  const int n = 36;
  const double voxel = 2.0, cut_A = 9.0;  // radius 36 * 2 / 9 = 8 voxels
  Rng rng = item_rng(5, 0);
  const RealGrid v = lowpass(gaussian_noise(n, n, n, 1.0, rng), 4.5, voxel);  // some low-amplitude shells too
  const RealGrid p = phase_randomize(v, cut_A, voxel, 42);
  const ComplexGrid fv = fft_3d(v), fp = fft_3d(p);
  const double tol = 1e-4 * rms(fv);
  int amplitude_errors = 0, phase_errors = 0, randomized = 0;
  for_each_voxel(fv, [&](int x, int y, int z, double r) {
    const std::complex<double> a(fv(x, y, z)), b(fp(x, y, z));
    // Hermitian mates on kx = 0 and N/2 must be conjugate for this to hold after
    // the real round trip: c2r would otherwise average the two mates.
    amplitude_errors += std::fabs(std::abs(b) - std::abs(a)) > std::max(tol, 1e-4 * std::abs(a));
    if (r < 8.0) phase_errors += std::abs(b - a) > tol;
    else randomized += std::abs(b - a) > 0.1 * std::abs(a);
  });
  EXPECT_EQ(amplitude_errors, 0);
  EXPECT_EQ(phase_errors, 0);
  EXPECT_GT(randomized, 10000);  // the high-resolution voxels did change

  // FSC(v, p) is 1 below the cut and, beyond it, that of independent phases:
  // mean 0 and standard deviation 1 / sqrt(2 n_k); we allow 5.
  const auto curve = fsc(v, p);
  const auto count = shell_counts(fv, n);
  for (int k = 0; k <= 7; ++k) EXPECT_NEAR(curve[k], 1.0, 1e-5) << k;
  for (int k = 9; k <= n / 2; ++k) EXPECT_NEAR(curve[k], 0.0, 5 / std::sqrt(2 * count[k])) << k;

  EXPECT_EQ(phase_randomize(v, cut_A, voxel, 42).values(), p.values());  // seeded
  EXPECT_NE(phase_randomize(v, cut_A, voxel, 43).values(), p.values());
}

/// Half maps s + n1, s + n2 in a 48^3 box at 2 A/voxel. The object is white
/// noise inside a sphere (radius 9, edge 3) with its amplitudes damped as
/// exp(-(r/6)^2); with noise sigma 0.02 the unmasked FSC drops below 0.8 at
/// shell 8. With band_limit_shell the signal is also cut hard at that shell.
struct HalfMaps {
  RealGrid signal, a, b;
};

HalfMaps synthetic_half_maps(std::uint64_t seed, std::optional<int> band_limit_shell) {
  const int n = 48;
  Rng rng = item_rng(seed, 0);
  RealGrid object = gaussian_noise(n, n, n, 1.0, rng);
  const RealGrid envelope = soft_sphere_mask(n, 9.0, 3.0);
  for (std::size_t i = 0; i < object.size(); ++i) object[i] *= envelope[i];
  ComplexGrid f = fft_3d(object);
  for_each_voxel(f, [&](int x, int y, int z, double r) {
    const bool cut = band_limit_shell && r > *band_limit_shell;
    f(x, y, z) *= cut ? 0.0f : static_cast<float>(std::exp(-(r / 6) * (r / 6)));
  });
  HalfMaps h{ifft_3d(f, n), gaussian_noise(n, n, n, 0.02, rng), gaussian_noise(n, n, n, 0.02, rng)};
  for (std::size_t i = 0; i < h.signal.size(); ++i) h.a[i] += h.signal[i], h.b[i] += h.signal[i];
  return h;
}

TEST(CorrectedFsc, FollowsRelionsRecipe) {
  const HalfMaps h = synthetic_half_maps(1, std::nullopt);
  const RealGrid mask = soft_sphere_mask(48, 16.0, 3.0);
  const MaskedFsc r = corrected_fsc(h.a, h.b, mask, 2.0, std::nullopt, 7);
  RealGrid ma = h.a, mb = h.b;
  for (std::size_t i = 0; i < ma.size(); ++i) ma[i] *= mask[i], mb[i] *= mask[i];
  EXPECT_EQ(r.unmasked, fsc(h.a, h.b));
  EXPECT_EQ(r.masked, fsc(ma, mb));
  int first_below = 1;
  while (r.unmasked[first_below] >= 0.8) ++first_below;
  EXPECT_EQ(r.randomize_from_shell, first_below);
  for (int k = 1; k < 25; ++k) {
    const double noise_free = std::max(0.0, r.randomized_masked[k]);  // the mask adds correlation only
    const double want = k < first_below + 2      ? r.masked[k]
                        : noise_free > r.masked[k] ? 0.0
                                                   : (r.masked[k] - noise_free) / (1 - noise_free);
    EXPECT_DOUBLE_EQ(r.corrected[k], want) << k;
    EXPECT_LE(r.corrected[k], std::max(r.masked[k], 0.0)) << k;
  }

  // Given in Angstrom: shell floor(96 / 10.5) = 9, and an exact shell resolution is that shell.
  EXPECT_EQ(corrected_fsc(h.a, h.b, mask, 2.0, 10.5, 7).randomize_from_shell, 9);
  EXPECT_EQ(corrected_fsc(h.a, h.b, mask, 2.0, 96.0 / 11, 7).randomize_from_shell, 11);
  EXPECT_THROW(corrected_fsc(h.a, h.b, mask, 2.0, 3.0, 7), InputError);  // beyond Nyquist (4 A)
  RealGrid bad = mask;
  bad[0] = 2.0f;
  EXPECT_THROW(corrected_fsc(h.a, h.b, bad, 2.0, std::nullopt, 7), InputError);
}

TEST(CorrectedFsc, LooseMaskMatchesTheNoiseReducedSnr) {
  // A mask that holds the whole object leaves the signal alone and scales the
  // noise power of every Fourier voxel to sigma^2 sum(m^2). The expected masked
  // FSC is then P_k / (P_k + sigma^2 sum m^2), P_k the mean |FT(m s)|^2 of shell
  // k, and the phase-randomized FSC is ~0, so the corrected curve must follow
  // it. Masking correlates Fourier neighbours, leaving n_k sum(m^2)/N^3
  // independent voxels: sd = (1 - rho^2) / sqrt(2 n_k sum(m^2) / N^3); we allow 4.
  const int n = 48;
  const HalfMaps h = synthetic_half_maps(2, std::nullopt);
  const RealGrid mask = soft_sphere_mask(n, 16.0, 3.0);
  const MaskedFsc r = corrected_fsc(h.a, h.b, mask, 2.0, std::nullopt, 3);
  RealGrid ms = h.signal;
  double sum_m2 = 0;
  for (std::size_t i = 0; i < ms.size(); ++i) ms[i] *= mask[i], sum_m2 += double(mask[i]) * mask[i];
  const ComplexGrid fs = fft_3d(ms);
  std::vector<double> power(n / 2 + 1, 0.0);
  for_each_voxel(fs, [&](int x, int y, int z, double rad) {
    if (std::lround(rad) <= n / 2) power[std::lround(rad)] += std::norm(std::complex<double>(fs(x, y, z)));
  });
  const auto count = shell_counts(fs, n);
  const double noise_power = 0.02 * 0.02 * sum_m2;
  for (int k = r.randomize_from_shell + 2; k <= n / 2; ++k) {
    const double p = power[k] / count[k], rho = p / (p + noise_power);
    const double sd = (1 - rho * rho) / std::sqrt(2 * count[k] * sum_m2 / ms.size());
    EXPECT_NEAR(r.corrected[k], rho, 4 * sd) << "shell " << k;
  }
  EXPECT_GT(r.masked[10], r.unmasked[10] + 0.2);  // the mask did remove noise
}

TEST(CorrectedFsc, TightMaskCorrelationIsRemovedBeyondTheSignal) {
  // The signal stops at shell 9; a hard mask of radius 7 cuts through the
  // object and spreads its strong low-resolution signal to every shell, so the
  // masked FSC beyond the signal is far from 0 (0.46..0.62 over seeds 0-9 for
  // shells 12-24). The correction removes what the unrandomized shells (< 8)
  // cause; what the randomized shells 8-9 spread is left (RELION alike):
  // corrected means over seeds 0-9 were -0.04..0.13.
  const HalfMaps h = synthetic_half_maps(3, 9);
  const RealGrid mask = soft_sphere_mask(48, 7.0, 0.0);
  const MaskedFsc r = corrected_fsc(h.a, h.b, mask, 2.0, std::nullopt, 3);
  EXPECT_EQ(r.randomize_from_shell, 8);
  double masked = 0, corrected = 0;
  for (int k = 12; k <= 24; ++k) masked += r.masked[k] / 13, corrected += r.corrected[k] / 13;
  EXPECT_GT(masked, 0.4);
  EXPECT_LT(std::fabs(corrected), 0.2);
}

/// White Gaussian volume (sigma 1) whose amplitudes are multiplied by exp(-B s^2 / 4).
RealGrid blurred_white(int n, double voxel_A, double b_A2, std::uint64_t seed) {
  Rng rng = item_rng(seed, 0);
  ComplexGrid f = fft_3d(gaussian_noise(n, n, n, 1.0, rng));
  for_each_voxel(f, [&](int x, int y, int z, double r) {
    const double s = r / (n * voxel_A);
    f(x, y, z) *= static_cast<float>(std::exp(-b_A2 * s * s / 4));
  });
  return ifft_3d(f, n);
}

TEST(Guinier, RecoversAnAppliedBFactor) {
  // Amplitudes exp(-B s^2 / 4) with B = 120 give ln|F| = c - 30 s^2: RELION's
  // B = 4 * slope = -120. Per-shell ln(mean |F|) scatters by ~0.52 / sqrt(n_k)
  // (Rayleigh), < 0.02 for shells >= 10, so 5% (6 A^2) is ample.
  const int n = 64;
  const double voxel = 1.5;
  const GuinierFit fit = guinier_bfactor(blurred_white(n, voxel, 120.0, 8), voxel, 10.0, 0.0);
  EXPECT_NEAR(fit.bfactor_A2, -120.0, 6.0);
  EXPECT_LT(fit.r, -0.99);
  EXPECT_EQ(fit.shells_used, 32 - 9);  // d_k <= 10 A from k = 10 (9.6 A) to Nyquist (k = 32, 3 A)
  EXPECT_NEAR(fit.fit_min_res_A, 9.6, 1e-9);
  EXPECT_NEAR(fit.fit_max_res_A, 3.0, 1e-9);
  // Normalized transform of white noise: E|F| = sqrt(pi / 4) / sqrt(N^3).
  EXPECT_NEAR(fit.intercept, std::log(std::sqrt(kPi / 4) / std::pow(n, 1.5)), 0.03);

  // A flat spectrum stays flat: B ~ 0 (the same scatter).
  const RealGrid white = blurred_white(n, voxel, 0.0, 8);
  EXPECT_NEAR(guinier_bfactor(white, voxel, 10.0, 0.0).bfactor_A2, 0.0, 6.0);
  EXPECT_THROW(guinier_bfactor(white, voxel, 10.0, 9.8), InputError);  // no shell between
}

TEST(Sharpen, AppliesExpOfMinusBOverFourAndUndoesABlur) {
  const int n = 40;
  const double voxel = 2.0;
  const RealGrid v = blurred_white(n, voxel, 0.0, 9);
  expect_filter(v, sharpen(v, voxel, -80.0, std::nullopt), [&](double r) {
    const double s = r / (n * voxel);
    return r <= n / 2 ? std::exp(80.0 * s * s / 4) : 0.0;  // corners beyond Nyquist cleared
  });
  expect_filter(v, sharpen(v, voxel, 50.0, 8.0), [&](double r) {  // low-pass at 10 shells, edge 2
    const double s = r / (n * voxel);
    const double lp = r <= 9 ? 1.0 : r >= 11 ? 0.0 : 0.5 + 0.5 * std::cos(kPi * (r - 9) / 2);
    return r <= n / 2 ? std::exp(-50.0 * s * s / 4) * lp : 0.0;
  });
  // Sharpening by the fitted B flattens a blurred map again. The refit stops
  // at shell 31 (3.1 A): sharpen clears the voxels of shell 32 beyond r = 32,
  // as RELION does (its sharpened Guinier column drops by 0.9 at Nyquist).
  const RealGrid blurred = blurred_white(64, 1.5, 150.0, 10);
  const GuinierFit fit = guinier_bfactor(blurred, 1.5, 10.0, 0.0);
  EXPECT_NEAR(fit.bfactor_A2, -150.0, 7.5);
  const RealGrid flat = sharpen(blurred, 1.5, fit.bfactor_A2, std::nullopt);
  EXPECT_NEAR(guinier_bfactor(flat, 1.5, 10.0, 3.1).bfactor_A2, 0.0, 6.0);
}

// Two half maps S + N1 and S + N2 of a signal whose power falls with frequency
// under white noise: the SNR, and so the FSC, fall from near 1 to near 0. The
// Wiener estimate (gain FSC per shell) is closer to S than the raw half, and
// than gains 0.7 FSC and min(1, 1.4 FSC) (its optimality: the error per shell is
// quadratic in the gain with its minimum at SNR / (1 + SNR) = FSC).
TEST(WienerGains, GiveTheLeastSquaresEstimateOfTheSignal) {
  const int n = 48;
  Rng rng = item_rng(5, 0);
  RealGrid signal = gaussian_noise(n, n, n, 1.0, rng);
  std::vector<double> falloff(n / 2 + 1);
  for (int k = 0; k <= n / 2; ++k) falloff[static_cast<std::size_t>(k)] = 4.0 * std::exp(-0.5 * k * k / 36.0);
  signal = shell_weighted(signal, falloff);
  RealGrid a = gaussian_noise(n, n, n, 0.5, rng), b = gaussian_noise(n, n, n, 0.5, rng);
  for (std::size_t i = 0; i < a.size(); ++i) a.values()[i] += signal.values()[i], b.values()[i] += signal.values()[i];
  const std::vector<double> curve = fsc(a, b);
  EXPECT_GT(curve[2], 0.9);
  EXPECT_LT(curve[20], 0.1);
  auto error = [&](const RealGrid& estimate) {
    double e = 0;
    for (std::size_t i = 0; i < estimate.size(); ++i) e += std::pow(estimate.values()[i] - signal.values()[i], 2);
    return e;
  };
  auto scaled = [&](double f) {
    std::vector<double> g(curve.size());
    for (std::size_t k = 0; k < curve.size(); ++k) g[k] = std::clamp(f * curve[k], 0.0, 1.0);
    return shell_weighted(a, g);
  };
  const double wiener = error(shell_weighted(a, wiener_gains(curve))), raw = error(a);
  EXPECT_LT(wiener, 0.5 * raw);
  EXPECT_LT(wiener, error(scaled(0.7)));
  EXPECT_LT(wiener, error(scaled(1.4)));
}

TEST(FscWeight, RosenthalHendersonWeightsPerShell) {
  const int n = 32;
  const RealGrid v = blurred_white(n, 1.0, 0.0, 11);
  std::vector<double> curve(n / 2 + 1);
  for (int k = 0; k <= n / 2; ++k) curve[k] = 1.0 - k / 10.0;  // first below 1e-4 at k = 10
  expect_filter(v, fsc_weight(v, curve), [&](double r) {
    const long k = std::lround(r);
    return k < 10 ? std::sqrt(2 * curve[k] / (1 + curve[k])) : 0.0;
  });
}

// relion_postprocess 3.1.3 on relion_7DDO (see its README):
//   --i Refine3D/run_half1_class001_unfil.mrc --mask ground_truth/mask_full.mrc
//   --angpix 3 --auto_bfac --autob_lowres 10  ->  6.19 A, B = -136.6
RealGrid read_mode2_mrc(const std::filesystem::path& path) {
  // Minimal little-endian mode-2 reader (1024-byte header + nsymbt at byte 92);
  // tessera's MRC module is not used so that this test stands on its own.
  std::ifstream in(path, std::ios::binary);
  char header[1024];
  if (!in.read(header, sizeof header)) throw std::runtime_error("cannot read " + path.string());
  std::int32_t dims[4], nsymbt;
  std::memcpy(dims, header, sizeof dims);
  std::memcpy(&nsymbt, header + 92, sizeof nsymbt);
  if (dims[3] != 2) throw std::runtime_error(path.string() + ": not mode 2");
  RealGrid g(dims[0], dims[1], dims[2]);
  in.seekg(1024 + nsymbt);
  if (!in.read(reinterpret_cast<char*>(g.data()), static_cast<std::streamsize>(g.size() * sizeof(float))))
    throw std::runtime_error(path.string() + ": truncated");
  return g;
}

/// The numeric rows of each data block of a STAR file, and its "_label value" pairs.
struct Star {
  std::map<std::string, std::vector<std::vector<double>>> rows;
  std::map<std::string, double> values;
};

Star read_star(const std::filesystem::path& path) {
  std::ifstream in(path);
  Star star;
  std::string line, block;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first;
    if (!(words >> first)) continue;
    if (first.rfind("data_", 0) == 0) block = first;
    if (first[0] == '_') {
      double value;
      if (words >> value) star.values[first] = value;
      continue;
    }
    std::vector<double> row;
    std::istringstream numbers(line);
    double x;
    while (numbers >> x) row.push_back(x);
    if (!row.empty() && numbers.eof()) star.rows[block].push_back(row);
  }
  return star;
}

class RelionPostprocess : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto root = test::shared_data();
    if (!root) GTEST_SKIP() << "no shared data";
    const auto dir = *root / "relion_7DDO";
    half1 = read_mode2_mrc(dir / "Refine3D" / "run_half1_class001_unfil.mrc");
    half2 = read_mode2_mrc(dir / "Refine3D" / "run_half2_class001_unfil.mrc");
    mask = read_mode2_mrc(dir / "ground_truth" / "mask_full.mrc");
    star = read_star(dir / "PostProcess" / "postprocess.star");
    ASSERT_EQ(star.rows["data_fsc"].size(), 33u);
    ASSERT_EQ(star.rows["data_guinier"].size(), 33u);
    average = half1;
    for (std::size_t i = 0; i < average.size(); ++i) average[i] = 0.5f * (half1[i] + half2[i]);
  }
  /// Column `c` (0-based) of the FSC table: 3 corrected, 5 unmasked, 6 masked, 7 randomized.
  std::vector<double> fsc_column(int c) {
    std::vector<double> out;
    for (const auto& row : star.rows["data_fsc"]) out.push_back(row.at(c));
    return out;
  }
  RealGrid half1, half2, mask, average;
  Star star;
};

TEST_F(RelionPostprocess, CurvesAndResolution) {
  const MaskedFsc r = corrected_fsc(half1, half2, mask, 3.0, std::nullopt, 0);
  const auto unmasked = fsc_column(5), masked = fsc_column(6), randomized = fsc_column(7), corrected = fsc_column(3);
  // Same arithmetic as RELION: differences are its 6 printed decimals and float FFTs.
  for (int k = 0; k <= 32; ++k) {
    EXPECT_NEAR(r.unmasked[k], unmasked[k], 2e-5) << k;
    EXPECT_NEAR(r.masked[k], masked[k], 2e-5) << k;
  }
  EXPECT_EQ(r.randomize_from_shell, 11);
  EXPECT_NEAR(shell_resolution_A(64, 3.0)[11], star.values["_rlnRandomiseFrom"], 1e-5);
  for (int k = 0; k < 13; ++k) EXPECT_NEAR(r.corrected[k], corrected[k], 2e-5) << k;
  // Beyond, both randomized curves are noise around the mask's correlation:
  // ~1/sqrt(2 n_k) inflated by sqrt(N^3 / sum m^2) = 3.7 for this mask, so
  // sd ~0.05 at shell 13 and a difference of two draws sd ~0.07; we allow 0.26.
  for (int k = 13; k <= 32; ++k) EXPECT_NEAR(r.randomized_masked[k], randomized[k], 0.26) << k;
  // RELION: 6.19 A (shell 31; its corrected FSC is 0.1408 at 32). Ours must
  // be within one shell: 30, 31 or 32 (nullopt = still above at Nyquist).
  const auto ours = resolution_at(r.corrected, 0.143, 64, 3.0);
  EXPECT_NEAR(star.values["_rlnFinalResolution"], 192.0 / 31, 1e-5);
  EXPECT_TRUE(!ours || (*ours >= 6.0 - 1e-9 && *ours <= 192.0 / 30 + 1e-9)) << *ours;
}

TEST_F(RelionPostprocess, GuinierFitOnRelionsCorrectedCurveIsExact) {
  // The fit is on the unmasked average, FSC-weighted with the corrected curve.
  const RealGrid weighted = fsc_weight(average, fsc_column(3));
  const GuinierFit fit = guinier_bfactor(weighted, 3.0, 10.0, 0.0);
  EXPECT_NEAR(fit.bfactor_A2, star.values["_rlnBfactorUsedForSharpening"], 0.01);
  EXPECT_NEAR(fit.intercept, star.values["_rlnFittedInterceptGuinierPlot"], 1e-4);
  EXPECT_NEAR(fit.r * fit.r, star.values["_rlnCorrelationFitGuinierPlot"], 1e-5);
  EXPECT_EQ(fit.shells_used, 13);  // shells 20 (9.6 A) to 32 (6 A)
  const auto original = shell_mean_amplitude(average), after = shell_mean_amplitude(weighted);
  for (int k = 0; k <= 32; ++k) {
    const auto& row = star.rows["data_guinier"][k];  // 1/d^2, ln original, ln weighted, ...
    EXPECT_NEAR(row[0], k == 0 ? 0.0 : 1.0 / std::pow(192.0 / k, 2), 1e-6) << k;
    EXPECT_NEAR(std::log(original[k]), row[1], 2e-5) << k;
    EXPECT_NEAR(std::log(after[k]), row[2], 2e-5) << k;
  }
}

TEST_F(RelionPostprocess, BFactorFromOurCorrectedCurveWithinTenPercent) {
  // Our phase randomization draws other phases than RELION's; over seeds 0-7
  // the fitted B ranged -128.5..-147.6 against RELION's -136.6.
  const MaskedFsc r = corrected_fsc(half1, half2, mask, 3.0, std::nullopt, 0);
  const GuinierFit fit = guinier_bfactor(fsc_weight(average, r.corrected), 3.0, 10.0, 0.0);
  EXPECT_NEAR(fit.bfactor_A2, -136.60838, 13.7);
}

}  // namespace
}  // namespace tessera
