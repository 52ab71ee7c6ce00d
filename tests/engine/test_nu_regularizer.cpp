// Non-uniform refinement's parts of the loop: cross-validation folds in the
// accumulator (each half is the exact sum of its folds) and the NU regularizer
// (per-voxel cut-offs chosen within each half from its folds alone).
#include "tessera/nu_regularizer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/random.hpp"
#include "radial_filter.hpp"

namespace tessera {
namespace {

Mat3 random_rotation(Rng& rng) {
  const double tilt = std::acos(1 - 2 * uniform01(rng)) * 180 / std::numbers::pi;
  return euler_to_matrix({360 * uniform01(rng), tilt, 360 * uniform01(rng)});
}

RealGrid white_noise(int n, Rng& rng) {
  RealGrid g(n, n, n);
  for (auto& v : g.values()) v = static_cast<float>(normal01(rng));
  return g;
}

using test::band_limited;  // a hard low-pass (radial_filter.hpp)

Particle in_half(int half_set) {
  Particle p;
  p.half_set = half_set;
  return p;
}

ComplexGrid random_slice(int box, double sigma, Rng& rng) {
  ComplexGrid g(box / 2 + 1, box, 1);
  for (auto& v : g.values()) v = cfloat(static_cast<float>(sigma * normal01(rng)), static_cast<float>(sigma * normal01(rng)));
  return g;
}

TEST(CrossValidationFolds, FoldIsTheIndexWithinTheHalfModuloK) {
  ParticleSet set;
  const int halves[] = {1, 1, 2, 1, 2, 2, 2, 1, 1};
  for (int h : halves) set.particles.push_back(in_half(h));
  EXPECT_EQ(cross_validation_folds(set, 2), (std::vector<int>{0, 1, 0, 0, 1, 0, 1, 1, 0}));
  EXPECT_EQ(cross_validation_folds(set, 3), (std::vector<int>{0, 1, 0, 2, 1, 2, 0, 0, 1}));
}

// The half's back-projector is the exact (integer) sum of its folds: its reconstruction equals,
// bit for bit, that of one back-projector per half that received the same particles.
TEST(CrossValidationFolds, AHalfIsItsFoldsSumBitForBit) {
  constexpr int box = 24;
  ParticleSet set;
  Rng rng(5);
  for (int i = 0; i < 60; ++i) set.particles.push_back(in_half(uniform01(rng) < 0.5 ? 1 : 2));
  const std::vector<double> noise(box / 2 + 1, 1.0);
  for (int k : {2, 3}) {
    Accumulator folds(box, {}, noise, cross_validation_folds(set, k), k);
    Accumulator one(box, {}, noise);
    ASSERT_EQ(folds.folds_a().size(), static_cast<std::size_t>(k));
    EXPECT_TRUE(one.folds_a().empty());
    const RealGrid weight(box / 2 + 1, box, 1, 1.0f);
    for (std::size_t i = 0; i < set.particles.size(); ++i) {
      const ComplexGrid data = random_slice(box, 1.0, rng);
      const Mat3 r = random_rotation(rng);
      const int h = set.particles[i].half_set;
      folds.target(h, static_cast<long>(i)).insert(data, weight, r);
      one.target(h, static_cast<long>(i)).insert(data, weight, r);
    }
    for (auto [x, y] : {std::pair{&folds.a(), &one.a()}, std::pair{&folds.b(), &one.b()}}) {
      const RealGrid vx = x->reconstruct(), vy = y->reconstruct();
      ASSERT_EQ(vx.size(), vy.size());
      std::size_t differ = 0;
      for (std::size_t i = 0; i < vx.size(); ++i) differ += vx[i] != vy[i];
      EXPECT_EQ(differ, 0u) << k << " folds";
    }
  }
}

// Two regions of known resolution: the left half of the box (x < N/2) holds signal band-limited at
// c_left Fourier voxels, the right half the same signal band-limited at c_right. Each fold of each
// half set is back-projected from its own projections with independent noise. The NU regularizer
// must choose about c_left and c_right there, and its map must be closer to the truth than the
// Wiener filter's (one filter for the whole map, from the FSC that the right region dominates) in
// the poorly resolved left region.
struct TwoRegions {
  static constexpr int kBox = 64;
  static constexpr double c_left = 8, c_right = 20;
  RealGrid truth;
  std::vector<BackProjector> folds_a, folds_b;
  BackProjector sum_a{kBox}, sum_b{kBox};

  TwoRegions() {
    Rng rng(17);
    const RealGrid s = white_noise(kBox, rng);
    const RealGrid left = band_limited(s, c_left), right = band_limited(s, c_right);
    truth = RealGrid(kBox, kBox, kBox);
    for (int z = 0; z < kBox; ++z)
      for (int y = 0; y < kBox; ++y)
        for (int x = 0; x < kBox; ++x) truth(x, y, z) = x < kBox / 2 ? left(x, y, z) : right(x, y, z);
    const Projector projector(truth);
    // Noise per Fourier component as large as the signal's (sqrt(N^3) for unit white noise).
    const double sigma = std::sqrt(double(kBox) * kBox * kBox / 2);
    const RealGrid weight(kBox / 2 + 1, kBox, 1, 1.0f);
    for (auto* folds : {&folds_a, &folds_b})
      for (int k = 0; k < 2; ++k) {
        BackProjector bp(kBox);
        ComplexGrid slice;
        for (int i = 0; i < 300; ++i) {
          const Mat3 r = random_rotation(rng);
          projector.project(r, slice);
          const ComplexGrid noise = random_slice(kBox, sigma, rng);
          for (std::size_t j = 0; j < slice.size(); ++j) slice[j] += noise[j];
          bp.insert(slice, weight, r);
        }
        folds->push_back(std::move(bp));
      }
    sum_a = folds_a[0], sum_b = folds_b[0];
    sum_a.add(folds_a[1]);
    sum_b.add(folds_b[1]);
  }
};

// Interiors of the regions, 8 voxels from their borders (x = 0 and N/2), inside the
// reconstruction's sphere (its corners are masked).
bool inside(int x, int y, int z, bool left) {
  const int n = TwoRegions::kBox;
  if (std::hypot(x - n / 2, y - n / 2, z - n / 2) > n / 2 - 4) return false;
  return left ? x >= 8 && x < n / 2 - 8 : x >= n / 2 + 8 && x < n - 8;
}

double median_where(const RealGrid& g, bool left) {
  std::vector<float> v;
  for (int z = 0; z < g.nz(); ++z)
    for (int y = 0; y < g.ny(); ++y)
      for (int x = 0; x < g.nx(); ++x)
        if (inside(x, y, z, left)) v.push_back(g(x, y, z));
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double rms_error_where(const RealGrid& map, const RealGrid& truth, bool left) {
  double sum = 0;
  long n = 0;
  for (int z = 0; z < map.nz(); ++z)
    for (int y = 0; y < map.ny(); ++y)
      for (int x = 0; x < map.nx(); ++x)
        if (inside(x, y, z, left)) sum += std::pow(double(map(x, y, z)) - truth(x, y, z), 2), ++n;
  return std::sqrt(sum / n);
}

TEST(NuRegularizer, ChoosesEachRegionsResolutionAndBeatsTheWienerFilterWhereItIsPoor) {
  const TwoRegions t;
  const int n = TwoRegions::kBox;
  const RealGrid mask(n, n, n, 1.0f);
  const std::vector<Mat3> c1;
  RegularizerContext c{mask, 1.0, 10.0, 3, c1, 2, std::nullopt};
  const auto wiener = make_fsc_regularizer()->reconstruct(t.sum_a, t.sum_b, c);
  c.folds_a = t.folds_a;
  c.folds_b = t.folds_b;
  const auto nu_reg = make_nu_regularizer(LocalFilterOptions{});
  ASSERT_EQ(nu_reg->folds_per_half(), 2);
  const auto nu = nu_reg->reconstruct(t.sum_a, t.sum_b, c);
  ASSERT_EQ(nu.local_cutoff_px.size(), mask.size());
  // The raw maps and the FSC are the Wiener regularizer's.
  EXPECT_EQ(nu.fsc, wiener.fsc);
  EXPECT_EQ(nu.raw_a.values(), wiener.raw_a.values());

  const double left = median_where(nu.local_cutoff_px, true), right = median_where(nu.local_cutoff_px, false);
  std::cout << "median cut-off: left " << left << " px (band limit " << TwoRegions::c_left << "), right " << right
            << " px (" << TwoRegions::c_right << ")\n";
  EXPECT_NEAR(left, TwoRegions::c_left, 2.5);
  EXPECT_NEAR(right, TwoRegions::c_right, 3.5);

  const double nu_left = rms_error_where(nu.half_a, t.truth, true);
  const double wiener_left = rms_error_where(wiener.half_a, t.truth, true);
  const double nu_right = rms_error_where(nu.half_a, t.truth, false);
  const double wiener_right = rms_error_where(wiener.half_a, t.truth, false);
  const double raw_left = rms_error_where(nu.raw_a, t.truth, true);
  std::cout << "RMS error vs truth, left: NU " << nu_left << ", Wiener " << wiener_left << ", raw " << raw_left
            << "; right: NU " << nu_right << ", Wiener " << wiener_right << "\n";
  EXPECT_LT(nu_left, 0.8 * wiener_left);
  EXPECT_LT(nu_right, 1.25 * wiener_right);

  // Band-limited: candidates beyond the limit are dropped, and the choice stays below it.
  c.band_limit_px = 14.0;
  const auto limited = nu_reg->reconstruct(t.sum_a, t.sum_b, c);
  EXPECT_LE(median_where(limited.local_cutoff_px, false), 14.0 + 30.0 / 49 + 1e-3);
  EXPECT_NEAR(median_where(limited.local_cutoff_px, true), TwoRegions::c_left, 2.5);
  // The band-limited choice runs on a cropped grid (36 instead of 64); on the full box the medians agree
  // within a tenth of a candidate step (30 / 49 px).
  LocalFilterOptions full_box;
  full_box.grid = LocalFilterGrid::Full;
  const auto reference = make_nu_regularizer(full_box)->reconstruct(t.sum_a, t.sum_b, c);
  for (bool in_left : {true, false})
    EXPECT_NEAR(median_where(limited.local_cutoff_px, in_left), median_where(reference.local_cutoff_px, in_left),
                0.1 * 30.0 / 49)
        << (in_left ? "left" : "right");
}

TEST(NuRegularizer, RefusesFewerThanTwoFoldsAndMissingFolds) {
  EXPECT_THROW(make_nu_regularizer(LocalFilterOptions{}, 1), std::invalid_argument);
  const BackProjector a(16), b(16);
  const RealGrid mask(16, 16, 16, 1.0f);
  const std::vector<Mat3> c1;
  const RegularizerContext c{mask, 1.0, 10.0, 1, c1, 1, std::nullopt};
  EXPECT_THROW(make_nu_regularizer(LocalFilterOptions{})->reconstruct(a, b, c), std::logic_error);
}

}  // namespace
}  // namespace tessera
