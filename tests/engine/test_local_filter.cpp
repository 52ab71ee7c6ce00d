#include "tessera/local_filter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/projector.hpp"
#include "tessera/random.hpp"
#include "radial_filter.hpp"

namespace tessera {
namespace {

constexpr int kBox = 64;

RealGrid white_noise(int n, double sigma, Rng& rng) {
  RealGrid g(n, n, n);
  for (auto& v : g.values()) v = static_cast<float>(sigma * normal01(rng));
  return g;
}

using test::radial_filter;  // the oracle (radial_filter.hpp)

// The three shapes written out from their definitions (half power at r = c for the smooth ones).
double butterworth8(double r, double c) { return 1.0 / std::sqrt(1.0 + std::pow(r / c, 16)); }
double hard_cut(double r, double c) { return r <= c ? 1.0 : 0.0; }
double gaussian_half_power(double r, double c) { return std::exp(-std::log(2.0) * r * r / (2 * c * c)); }

/// Median of g over the voxels where keep(x, y, z) holds.
double median_where(const RealGrid& g, const std::function<bool(int, int, int)>& keep) {
  std::vector<float> v;
  for (int z = 0; z < g.nz(); ++z)
    for (int y = 0; y < g.ny(); ++y)
      for (int x = 0; x < g.nx(); ++x)
        if (keep(x, y, z)) v.push_back(g(x, y, z));
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double quantile(const RealGrid& g, double q) {
  std::vector<float> v = g.values();
  const auto k = static_cast<std::size_t>(q * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

double max_abs_difference(const RealGrid& a, const RealGrid& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

/// Expected cross-validation error (up to the constant held-out noise) of cut-off c for a stationary
/// region whose signal has a flat spectral density signal_power up to band_limit and none beyond, when the
/// training map has white noise of spectral density train_noise_power: the oracle's risk
///   R(c) = sum_{|k| <= band_limit} (1 - h_c(k))^2 signal_power + sum_k h_c(k)^2 train_noise_power
/// over the box's Fourier voxels k (Butterworth order 8). Returns the candidate with the least risk.
double oracle_cutoff(const std::vector<double>& candidates, double band_limit, double signal_power,
                     double train_noise_power) {
  // Fourier voxels of the box per squared radius |k|^2.
  const int n = kBox;
  std::vector<double> count(3 * (n / 2) * (n / 2) + 1, 0.0);
  for (int z = -n / 2; z < n / 2; ++z)
    for (int y = -n / 2; y < n / 2; ++y)
      for (int x = -n / 2; x < n / 2; ++x) count[x * x + y * y + z * z] += 1;
  double best = candidates.front(), best_risk = std::numeric_limits<double>::infinity();
  for (double c : candidates) {
    double risk = 0;
    for (std::size_t r2 = 0; r2 < count.size(); ++r2) {
      const double r = std::sqrt(double(r2)), h = butterworth8(r, c);
      if (r <= band_limit) risk += count[r2] * (1 - h) * (1 - h) * signal_power;
      risk += count[r2] * h * h * train_noise_power;
    }
    if (risk < best_risk) best_risk = risk, best = c;
  }
  return best;
}

/// Two regions of the box: x < N/2 holds white signal band-limited (hard cut) at c_left, x >= N/2 the same
/// signal band-limited at c_right. Each fold adds independent white noise of standard deviation noise_sigma.
std::vector<RealGrid> two_region_folds(int n_folds, double c_left, double c_right, double noise_sigma,
                                       std::uint64_t seed) {
  Rng rng(seed);
  const RealGrid s = white_noise(kBox, 1.0, rng);
  const RealGrid left = radial_filter(s, [&](double r) { return hard_cut(r, c_left); });
  const RealGrid right = radial_filter(s, [&](double r) { return hard_cut(r, c_right); });
  std::vector<RealGrid> folds;
  for (int k = 0; k < n_folds; ++k) {
    RealGrid f = white_noise(kBox, noise_sigma, rng);
    for (int z = 0; z < kBox; ++z)
      for (int y = 0; y < kBox; ++y)
        for (int x = 0; x < kBox; ++x) f(x, y, z) += x < kBox / 2 ? left(x, y, z) : right(x, y, z);
    folds.push_back(std::move(f));
  }
  return folds;
}

std::vector<const RealGrid*> pointers(const std::vector<RealGrid>& maps) {
  std::vector<const RealGrid*> p;
  for (const auto& m : maps) p.push_back(&m);
  return p;
}

// Interiors of the two regions: at least 8 voxels (more than the widest window's sigma at the left region's
// cut-off, 6.8 voxels) from the boundaries at x = 0 (periodic) and x = N/2.
bool left_interior(int x, int, int) { return x >= 8 && x < kBox / 2 - 8; }
bool right_interior(int x, int, int) { return x >= kBox / 2 + 8 && x < kBox - 8; }

/// Message of the std::invalid_argument that f throws; fails the test when it throws none.
template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no std::invalid_argument thrown";
  return {};
}

TEST(LocalFilter, CandidatesAreEquispacedFromTheLowestToNyquist) {
  LocalFilterOptions o;
  const std::vector<double> c = local_filter_candidates_px(kBox, o);
  ASSERT_EQ(c.size(), 50u);
  EXPECT_DOUBLE_EQ(c.front(), 2.0);
  EXPECT_DOUBLE_EQ(c.back(), 32.0);
  for (std::size_t j = 1; j < c.size(); ++j) EXPECT_NEAR(c[j] - c[j - 1], 30.0 / 49.0, 1e-12);
}

TEST(LocalFilter, ShapesPassHalfThePowerAtTheCutoff) {
  for (double r : {0.0, 3.0, 7.9, 8.0, 8.1, 12.0, 30.0}) {
    EXPECT_NEAR(local_filter_response(FilterShape::Butterworth, 8, r, 8.0), butterworth8(r, 8.0), 1e-12) << r;
    EXPECT_EQ(local_filter_response(FilterShape::Rectangular, 8, r, 8.0), hard_cut(r, 8.0)) << r;
    EXPECT_NEAR(local_filter_response(FilterShape::Gaussian, 8, r, 8.0), gaussian_half_power(r, 8.0), 1e-12) << r;
  }
  EXPECT_NEAR(local_filter_response(FilterShape::Butterworth, 8, 8.0, 8.0), std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(local_filter_response(FilterShape::Gaussian, 8, 8.0, 8.0), std::sqrt(0.5), 1e-12);
}

// The oracle test. Signal spectral density 1 (white, variance 1 before the cut), noise density 0.25 per fold:
// inside the band the signal is 4x the noise, beyond it there is only noise, so the error is least at the
// band limit. With a Butterworth filter (which still lets through 1/sqrt(2) at its cut-off) the expected
// risk's minimizer sits a little above the hard band limit; the oracle computes it from the spectra, and
// is itself checked to lie within 1.5 shells of the band limit. The chosen cut-off's median in each
// region's interior must lie within 2 candidate steps (1.2 shells at box 64) of it: the medians differ
// by 12 shells between the regions, so an inverted, constant or always-extreme choice fails.
TEST(LocalFilter, ChoosesEachRegionsBandLimit) {
  constexpr double c_left = 8, c_right = 20, noise_sigma = 0.5;
  const std::vector<RealGrid> folds = two_region_folds(2, c_left, c_right, noise_sigma, 11);
  const LocalFilterOptions o;
  const std::vector<double> candidates = local_filter_candidates_px(kBox, o);
  const double step = candidates[1] - candidates[0];
  const double noise_power = noise_sigma * noise_sigma;
  const double expect_left = oracle_cutoff(candidates, c_left, 1.0, noise_power);
  const double expect_right = oracle_cutoff(candidates, c_right, 1.0, noise_power);
  EXPECT_NEAR(expect_left, c_left, 1.5);
  EXPECT_NEAR(expect_right, c_right, 1.5);

  const std::vector<const RealGrid*> p = pointers(folds);
  const LocalFilterChoice choice = choose_local_cutoffs(p, nullptr, o);
  const double left = median_where(choice.cutoff_px, left_interior);
  const double right = median_where(choice.cutoff_px, right_interior);
  EXPECT_NEAR(left, expect_left, 2 * step) << "left region (band limit " << c_left << ")";
  EXPECT_NEAR(right, expect_right, 2 * step) << "right region (band limit " << c_right << ")";
}

// K = 3: each training map is the mean of two folds, so its noise density is half a fold's (0.25 / 2);
// the oracle uses that. A training map made by summing (not averaging) the other folds doubles the signal
// against the held-out fold and moves the choice far from the oracle's.
TEST(LocalFilter, ThreeFoldsTrainOnTheMeanOfTheOthers) {
  constexpr double c_left = 8, c_right = 20, noise_sigma = 0.5;
  const std::vector<RealGrid> folds = two_region_folds(3, c_left, c_right, noise_sigma, 12);
  const LocalFilterOptions o;
  const std::vector<double> candidates = local_filter_candidates_px(kBox, o);
  const double step = candidates[1] - candidates[0];
  const double train_noise = noise_sigma * noise_sigma / 2;
  const std::vector<const RealGrid*> p = pointers(folds);
  const LocalFilterChoice choice = choose_local_cutoffs(p, nullptr, o);
  EXPECT_NEAR(median_where(choice.cutoff_px, left_interior), oracle_cutoff(candidates, c_left, 1.0, train_noise),
              2 * step);
  EXPECT_NEAR(median_where(choice.cutoff_px, right_interior),
              oracle_cutoff(candidates, c_right, 1.0, train_noise), 2 * step);
}

/// Folds of a "molecule in solvent": white signal band-limited at band_limit inside a sphere of radius_px
/// about the centre, no signal outside, independent white noise of standard deviation noise_sigma everywhere.
std::vector<RealGrid> sphere_in_solvent_folds(double band_limit, double radius_px, double noise_sigma,
                                              std::uint64_t seed) {
  Rng rng(seed);
  const RealGrid s = radial_filter(white_noise(kBox, 1.0, rng), [&](double r) { return hard_cut(r, band_limit); });
  std::vector<RealGrid> folds;
  for (int k = 0; k < 2; ++k) {
    RealGrid f = white_noise(kBox, noise_sigma, rng);
    for (int z = 0; z < kBox; ++z)
      for (int y = 0; y < kBox; ++y)
        for (int x = 0; x < kBox; ++x)
          if (std::hypot(x - kBox / 2, y - kBox / 2, z - kBox / 2) < radius_px) f(x, y, z) += s(x, y, z);
    folds.push_back(std::move(f));
  }
  return folds;
}

double centre_distance(int x, int y, int z) { return std::hypot(x - kBox / 2, y - kBox / 2, z - kBox / 2); }

// A small well-resolved region in a box of solvent, the case non-uniform refinement is for: a sphere of
// radius 12 resolved to 20 shells in noise. Its core (within 6 voxels of the centre, farther from the
// solvent than the windows of the cut-offs near 20 reach: sigma 2.7) must get the oracle's cut-off within
// 2 steps, and the solvent beyond 22 voxels (10 from the surface) the lowest. The literal per-cut-off
// windows (WindowScheme::PerCutoff) judge the low cut-offs on the surrounding solvent and give the core the
// lowest cut-off: the reason Increments is the default.
TEST(LocalFilter, SmallResolvedRegionInSolventKeepsItsBandLimit) {
  const std::vector<RealGrid> folds = sphere_in_solvent_folds(20, 12, 0.5, 14);
  const std::vector<const RealGrid*> p = pointers(folds);
  LocalFilterOptions o;
  const std::vector<double> c = local_filter_candidates_px(kBox, o);
  const double step = c[1] - c[0];
  const RealGrid chosen = choose_local_cutoffs(p, nullptr, o).cutoff_px;
  auto core = [](int x, int y, int z) { return centre_distance(x, y, z) < 6; };
  auto solvent = [](int x, int y, int z) { return centre_distance(x, y, z) > 22; };
  EXPECT_NEAR(median_where(chosen, core), oracle_cutoff(c, 20, 1.0, 0.25), 2 * step);
  EXPECT_NEAR(median_where(chosen, solvent), c.front(), 1e-3);

  o.window = WindowScheme::PerCutoff;
  const RealGrid literal = choose_local_cutoffs(p, nullptr, o).cutoff_px;
  EXPECT_LT(median_where(literal, core), c.front() + step);
}

// Independent noise in the folds: every filter adds training noise and removes nothing to learn, so the
// lowest candidate wins nearly everywhere.
TEST(LocalFilter, PureNoisePicksTheLowestCutoff) {
  Rng rng(21);
  const RealGrid a = white_noise(kBox, 1.0, rng), b = white_noise(kBox, 1.0, rng);
  const LocalFilterOptions o;
  const std::vector<double> c = local_filter_candidates_px(kBox, o);
  const RealGrid* p[] = {&a, &b};
  const LocalFilterChoice choice = choose_local_cutoffs(p, nullptr, o);
  EXPECT_NEAR(quantile(choice.cutoff_px, 0.5), c.front(), 1e-4);
  EXPECT_LE(quantile(choice.cutoff_px, 0.99), c[2]);
}

// Identical noise-free white folds: the training map is the held-out map, and every cut-off below
// Nyquist removes some of it, so the highest candidate wins everywhere.
TEST(LocalFilter, IdenticalNoiseFreeFoldsPickTheHighestCutoff) {
  Rng rng(22);
  const RealGrid a = white_noise(kBox, 1.0, rng);
  const LocalFilterOptions o;
  const RealGrid* p[] = {&a, &a};
  const LocalFilterChoice choice = choose_local_cutoffs(p, nullptr, o);
  EXPECT_NEAR(quantile(choice.cutoff_px, 0.0), kBox / 2, 1e-3);
  EXPECT_NEAR(quantile(choice.cutoff_px, 1.0), kBox / 2, 1e-3);
}

// Outside the mask (value 0) the cut-off is the lowest candidate; inside, the choice is as without a mask.
TEST(LocalFilter, MaskSetsSolventToTheLowestCutoff) {
  const std::vector<RealGrid> folds = two_region_folds(2, 8, 20, 0.5, 11);
  RealGrid mask(kBox, kBox, kBox, 1.0f);
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x)
        if (z < 8 || z >= kBox - 8) mask(x, y, z) = 0.0f;
  const LocalFilterOptions o;
  const std::vector<double> c = local_filter_candidates_px(kBox, o);
  const std::vector<const RealGrid*> p = pointers(folds);
  const RealGrid masked = choose_local_cutoffs(p, &mask, o).cutoff_px;
  const RealGrid unmasked = choose_local_cutoffs(p, nullptr, o).cutoff_px;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x) {
        if (mask(x, y, z) == 0.0f) {
          ASSERT_FLOAT_EQ(masked(x, y, z), c.front()) << x << " " << y << " " << z;
        }
        // Far from the mask's edge (more than 4 smoothing sigmas) the smoothing sees only inside voxels.
        if (z >= 16 && z < kBox - 16) {
          ASSERT_NEAR(masked(x, y, z), unmasked(x, y, z), 1e-3);
        }
      }
}

TEST(LocalFilter, ThreadsGiveTheSameChoiceAndFilter) {
  const std::vector<RealGrid> folds = two_region_folds(2, 8, 20, 0.5, 13);
  LocalFilterOptions one, three;
  three.threads = 3;
  const std::vector<const RealGrid*> p = pointers(folds);
  const RealGrid a = choose_local_cutoffs(p, nullptr, one).cutoff_px;
  const RealGrid b = choose_local_cutoffs(p, nullptr, three).cutoff_px;
  EXPECT_LT(max_abs_difference(a, b), 1e-3);
  EXPECT_LT(max_abs_difference(apply_local_filter(folds[0], a, one), apply_local_filter(folds[0], a, three)), 1e-5);
}

// Median and maximum of |a - b| over the voxels where keep(x, y, z) holds.
std::pair<double, double> difference_where(const RealGrid& a, const RealGrid& b,
                                           const std::function<bool(int, int, int)>& keep) {
  RealGrid d(a.nx(), a.ny(), a.nz());
  double worst = 0;
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = std::abs(a[i] - b[i]);
  for (int z = 0; z < d.nz(); ++z)
    for (int y = 0; y < d.ny(); ++y)
      for (int x = 0; x < d.nx(); ++x)
        if (keep(x, y, z)) worst = std::max(worst, double(d(x, y, z)));
  return {median_where(d, keep), worst};
}

// Keeps the Fourier voxels that a grid of `small` holds (|k| < small / 2 on each axis), as a
// reconstruction band-limited to that grid and padded to the box does.
RealGrid keep_cube(const RealGrid& g, int small) {
  ComplexGrid f = fft_3d(g);
  const int n = g.nx();
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < f.ny(); ++y)
      for (int x = 0; x < f.nx(); ++x)
        if (2 * std::abs(fourier_index(z, n)) >= small || 2 * std::abs(fourier_index(y, n)) >= small ||
            2 * x >= small)
          f(x, y, z) = 0;
  return ifft_3d(f, n);
}

// With a band limit (highest_cutoff_px 12 at box 64: 18 candidates up to 12.4) the cross-validation runs on
// a grid of 32 (band_limited_box of the highest candidate) instead of 64, and chooses as the full box:
// the two regions are band-limited at 5 and 10 shells, a mask leaves out 8 slices at each end in z.
// Tolerance: inside the mask, the median |difference| is under 0.1 candidate step and the largest under 1
// step (measured: about 0.02 and 0.3), with folds band-limited to the grid of the band limit (as the
// regularizer's) and with folds that hold noise up to Nyquist (which the crop drops from the held-out maps).
// The cropped choice still finds each region's band limit (oracle within 2 steps).
TEST(LocalFilter, BandLimitedGridChoosesAsTheFullBox) {
  const std::vector<RealGrid> white = two_region_folds(2, 5, 10, 0.5, 15);
  std::vector<RealGrid> band_limited;
  for (const RealGrid& f : white) band_limited.push_back(keep_cube(f, band_limited_box(kBox, 12)));
  RealGrid mask(kBox, kBox, kBox, 1.0f);
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x)
        if (z < 8 || z >= kBox - 8) mask(x, y, z) = 0.0f;
  auto inside = [&](int x, int y, int z) { return mask(x, y, z) > 0; };
  LocalFilterOptions cropped;
  cropped.highest_cutoff_px = 12;
  LocalFilterOptions full = cropped;
  full.grid = LocalFilterGrid::Full;
  const std::vector<double> c = local_filter_candidates_px(kBox, cropped);
  ASSERT_EQ(c.size(), 18u);
  const double step = c[1] - c[0];
  ASSERT_EQ(local_filter_grid_box(kBox, cropped), 32);
  ASSERT_EQ(local_filter_grid_box(kBox, full), kBox);

  for (const std::vector<RealGrid>* folds : {&std::as_const(band_limited), &white}) {
    const std::vector<const RealGrid*> p = pointers(*folds);
    const LocalFilterChoice a = choose_local_cutoffs(p, &mask, cropped);
    const LocalFilterChoice b = choose_local_cutoffs(p, &mask, full);
    EXPECT_EQ(a.cost.grid_box, 32);
    EXPECT_EQ(b.cost.grid_box, kBox);
    EXPECT_EQ(b.cost.transforms_grid, 0);
    const auto [median, worst] = difference_where(a.cutoff_px, b.cutoff_px, inside);
    const char* which = folds == &white ? "folds up to Nyquist" : "band-limited folds";
    EXPECT_LT(median, 0.1 * step) << which;
    EXPECT_LT(worst, step) << which;
    std::cout << which << ": |cropped - full| inside the mask, median " << median / step << ", max " << worst / step
              << " candidate steps\n";
    auto left = [&](int x, int y, int z) { return inside(x, y, z) && left_interior(x, y, z); };
    auto right = [&](int x, int y, int z) { return inside(x, y, z) && right_interior(x, y, z); };
    EXPECT_NEAR(median_where(a.cutoff_px, left), oracle_cutoff(c, 5, 1.0, 0.25), 2 * step) << which;
    EXPECT_NEAR(median_where(a.cutoff_px, right), oracle_cutoff(c, 10, 1.0, 0.25), 2 * step) << which;
  }
  // Threads change only FFTW's rounding on the cropped grid too.
  LocalFilterOptions three = cropped;
  three.threads = 3;
  const std::vector<const RealGrid*> p = pointers(band_limited);
  EXPECT_LT(max_abs_difference(choose_local_cutoffs(p, &mask, cropped).cutoff_px,
                               choose_local_cutoffs(p, &mask, three).cutoff_px),
            1e-3);
}

// A constant cut-off map at a candidate gives that global filter, for every shape, against the test's own
// filter (values, not correlations). The map is white noise of standard deviation 1; FFT rounding in
// single precision is about 1e-6 of that.
TEST(LocalFilter, ConstantCutoffEqualsTheGlobalFilter) {
  Rng rng(31);
  const RealGrid map = white_noise(kBox, 1.0, rng);
  struct Case {
    FilterShape shape;
    double (*transfer)(double, double);
  };
  for (const Case& k : {Case{FilterShape::Butterworth, butterworth8}, Case{FilterShape::Rectangular, hard_cut},
                        Case{FilterShape::Gaussian, gaussian_half_power}}) {
    LocalFilterOptions o;
    o.shape = k.shape;
    const std::vector<double> c = local_filter_candidates_px(kBox, o);
    for (int j : {0, 17, 49}) {
      const RealGrid cut(kBox, kBox, kBox, static_cast<float>(c[j]));
      const RealGrid expected = radial_filter(map, [&](double r) { return k.transfer(r, c[j]); });
      EXPECT_LT(max_abs_difference(apply_local_filter(map, cut, o), expected), 1e-5)
          << "shape " << int(k.shape) << " candidate " << j;
    }
  }
}

// Between two candidates the filter is the linear blend of their global filters; cut-offs beyond the
// candidate range are clamped to it.
TEST(LocalFilter, CutoffBetweenCandidatesBlendsTheirFilters) {
  Rng rng(32);
  const RealGrid map = white_noise(kBox, 1.0, rng);
  const LocalFilterOptions o;
  const std::vector<double> c = local_filter_candidates_px(kBox, o);
  const RealGrid g10 = radial_filter(map, [&](double r) { return butterworth8(r, c[10]); });
  const RealGrid g11 = radial_filter(map, [&](double r) { return butterworth8(r, c[11]); });
  const RealGrid between(kBox, kBox, kBox, static_cast<float>(0.3 * c[10] + 0.7 * c[11]));
  RealGrid expected(kBox, kBox, kBox);
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = 0.3f * g10[i] + 0.7f * g11[i];
  EXPECT_LT(max_abs_difference(apply_local_filter(map, between, o), expected), 1e-5);

  const RealGrid beyond(kBox, kBox, kBox, 100.0f);
  const RealGrid nyquist = radial_filter(map, [&](double r) { return butterworth8(r, kBox / 2); });
  EXPECT_LT(max_abs_difference(apply_local_filter(map, beyond, o), nyquist), 1e-5);
}

// A cut-off map with two values: each voxel takes its own cut-off's global filter, voxel by voxel.
TEST(LocalFilter, EachVoxelTakesItsOwnCutoff) {
  Rng rng(33);
  const RealGrid map = white_noise(kBox, 1.0, rng);
  const LocalFilterOptions o;
  const std::vector<double> c = local_filter_candidates_px(kBox, o);
  RealGrid cut(kBox, kBox, kBox);
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x) cut(x, y, z) = static_cast<float>(y < kBox / 2 ? c[5] : c[40]);
  const RealGrid low = radial_filter(map, [&](double r) { return butterworth8(r, c[5]); });
  const RealGrid high = radial_filter(map, [&](double r) { return butterworth8(r, c[40]); });
  const RealGrid out = apply_local_filter(map, cut, o);
  double worst = 0;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x) {
        const float expected = y < kBox / 2 ? low(x, y, z) : high(x, y, z);
        worst = std::max(worst, std::abs(double(out(x, y, z)) - expected));
      }
  EXPECT_LT(worst, 1e-5);
}

TEST(LocalFilter, BadInputsAreRefusedWithAClearMessage) {
  Rng rng(41);
  const RealGrid a = white_noise(32, 1.0, rng), b = white_noise(32, 1.0, rng);
  const RealGrid small = white_noise(16, 1.0, rng);
  const RealGrid flat(32, 32, 1);
  const LocalFilterOptions o;

  const RealGrid* one[] = {&a};
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(one, nullptr, o); }).find("at least 2 folds"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([&] {
              choose_local_cutoffs(std::span<const RealGrid* const>(), nullptr, o);
            }).find("got 0"),
            std::string::npos);
  const RealGrid* with_null[] = {&a, nullptr};
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(with_null, nullptr, o); }).find("fold 1 is null"),
            std::string::npos);
  const RealGrid* mismatched[] = {&a, &small};
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(mismatched, nullptr, o); })
                .find("fold 1 is 16x16x16, the maps are 32x32x32"),
            std::string::npos);
  const RealGrid* not_cubic[] = {&flat, &flat};
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(not_cubic, nullptr, o); }).find("cubic"),
            std::string::npos);
  const RealGrid* pair[] = {&a, &b};
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(pair, &small, o); }).find("the mask is 16x16x16"),
            std::string::npos);
  RealGrid with_nan = a;
  with_nan(3, 4, 5) = std::numeric_limits<float>::quiet_NaN();
  const RealGrid* nan_pair[] = {&a, &with_nan};
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(nan_pair, nullptr, o); })
                .find("fold 1 has non-finite values"),
            std::string::npos);
  RealGrid bad_mask(32, 32, 32, 2.0f);
  EXPECT_THROW(choose_local_cutoffs(pair, &bad_mask, o), InputError);

  LocalFilterOptions few = o;
  few.cutoffs = 1;
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(pair, nullptr, few); }).find("cutoffs must be at least 2"),
            std::string::npos);
  LocalFilterOptions no_window = o;
  no_window.awf = 0;
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(pair, nullptr, no_window); }).find("awf"),
            std::string::npos);
  LocalFilterOptions too_high = o;
  too_high.lowest_cutoff_px = 16;
  EXPECT_NE(invalid_argument_message([&] { choose_local_cutoffs(pair, nullptr, too_high); })
                .find("lowest_cutoff_px must lie in (0, 16)"),
            std::string::npos);

  EXPECT_NE(invalid_argument_message([&] { apply_local_filter(a, small, o); }).find("the cut-off map is 16x16x16"),
            std::string::npos);
  RealGrid nan_cut(32, 32, 32, 4.0f);
  nan_cut(0, 0, 0) = std::numeric_limits<float>::infinity();
  EXPECT_NE(invalid_argument_message([&] { apply_local_filter(a, nan_cut, o); }).find("non-finite"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera
