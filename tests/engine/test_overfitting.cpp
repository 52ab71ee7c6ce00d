// Resolution against the number of particles (overfitting.hpp): the subset
// sizes and orders, the insertion's convention against the forward model, the
// curve of a phantom's noisy projections (improves with N, the same on any
// number of threads), the Rosenthal-Henderson fit against an exact line, and
// the noise images' statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>

#include "input_error.hpp"
#include "run_programs.hpp"
#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/mrc.hpp"
#include "tessera/overfitting.hpp"
#include "tessera/random.hpp"
#include "tessera/simulate.hpp"

namespace tessera {
namespace {

TEST(Overfitting, SizesDoubleUpToTheLargest) {
  EXPECT_EQ(doubling_sizes(100, 1000), (std::vector<long>{100, 200, 400, 800, 1000}));
  EXPECT_EQ(doubling_sizes(100, 800), (std::vector<long>{100, 200, 400, 800}));
  EXPECT_EQ(doubling_sizes(2, 2), (std::vector<long>{2}));
  EXPECT_NE(test::input_error([] { doubling_sizes(1, 10); }).find("2 particles"), std::string::npos);
  EXPECT_NE(test::input_error([] { doubling_sizes(20, 10); }).find("larger"), std::string::npos);
}

// Every prefix of N holds ceil(N/2) entries of half 1 while both halves last, each
// entry in its own given half; the order is a permutation, the same for a seed.
TEST(Overfitting, SubsetOrderKeepsGivenHalvesBalancedInEveryPrefix) {
  std::vector<int> halves(101);
  for (std::size_t i = 0; i < halves.size(); ++i) halves[i] = i % 3 == 0 ? 2 : 1;  // 34 in half 2, 67 in half 1
  ASSERT_TRUE(every_half_given(halves));
  const SubsetOrder o = subset_order(halves, 7, 0);
  ASSERT_EQ(o.index.size(), halves.size());
  EXPECT_EQ(std::set<long>(o.index.begin(), o.index.end()).size(), halves.size());
  long ones = 0;
  for (std::size_t k = 0; k < o.index.size(); ++k) {
    EXPECT_EQ(o.half[k], halves[static_cast<std::size_t>(o.index[k])]);
    ones += o.half[k] == 1;
    if (k < 68) {
      EXPECT_EQ(ones, static_cast<long>(k / 2 + 1)) << k;  // both last up to 2 x 34 entries
    }
  }
  EXPECT_EQ(subset_order(halves, 7, 0).index, o.index);
  EXPECT_NE(subset_order(halves, 7, 1).index, o.index);
  EXPECT_NE(subset_order(halves, 8, 0).index, o.index);
}

TEST(Overfitting, SubsetOrderDealsHalvesWhenSomeAreMissing) {
  std::vector<int> halves(50, 1);
  halves[3] = 0;
  ASSERT_FALSE(every_half_given(halves));
  const SubsetOrder o = subset_order(halves, 3, 2);
  ASSERT_EQ(o.index.size(), 50u);
  EXPECT_EQ(std::set<long>(o.index.begin(), o.index.end()).size(), 50u);
  for (std::size_t k = 0; k < o.half.size(); ++k) EXPECT_EQ(o.half[k], k % 2 == 0 ? 1 : 2);
}

// The insertion undoes the forward model's origin: inserting the model's own image
// of a projection P at a pose gives data = CTF^2 P and weight = CTF^2 exactly (to float rounding).
TEST(Overfitting, InsertionUndoesTheForwardModelsOrigin) {
  const int box = 32;
  const Projector proj(phantom_volume(box, 3.0, 4));
  Particle p;
  p.defocus_u_A = p.defocus_v_A = 15000;
  OpticsGroup g;
  g.pixel_A = 3.0;
  const RealGrid ctf = model_ctf(p, g, box);
  const ModelPose pose{euler_to_matrix({30, 70, 110}), 2.5, -1.25};
  ComplexGrid image, centred;
  expected_transform(proj, pose, &ctf, 1.0, image);
  expected_transform(proj, {pose.rotation, 0, 0}, nullptr, 1.0, centred);
  Insertion ins;
  make_insertion(image, pose, &ctf, box, ins);
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < ins.data.size(); ++i) {
    worst = std::max(worst, double(std::abs(ins.data[i] - ctf[i] * ctf[i] * centred[i])));
    scale = std::max(scale, double(std::abs(centred[i])));
    EXPECT_FLOAT_EQ(ins.weight[i], ctf[i] * ctf[i]);
  }
  EXPECT_LT(worst, 1e-5 * scale);
  EXPECT_EQ(ins.rotation, pose.rotation);
}

TEST(Overfitting, SpreadOfTheFiniteValues) {
  const double inf = std::numeric_limits<double>::infinity();
  const Spread s = spread_of({1.0, 2.0, 3.0, std::nullopt, inf});
  ASSERT_TRUE(s.mean && s.sd);
  EXPECT_DOUBLE_EQ(*s.mean, 2.0);
  EXPECT_DOUBLE_EQ(*s.sd, 1.0);  // n - 1
  EXPECT_EQ(*spread_of({4.0}).sd, 0.0);
  EXPECT_FALSE(spread_of({std::nullopt, inf}).mean);
}

// Points exactly on 1/d^2 = (2 / B) ln N + c give B back; repeats enter as the mean of 1/d^2.
TEST(Overfitting, RosenthalHendersonFitRecoversTheBfactorOfALine) {
  const double b = 250, c = -0.02;
  const std::vector<long> sizes{100, 200, 400, 800, 1600};
  std::vector<std::vector<std::optional<double>>> res;
  for (long n : sizes) {
    const double inv_d2 = 2 / b * std::log(double(n)) + c;
    // Two repeats whose 1/d^2 straddle the line by +-10%, and one with no crossing.
    res.push_back({1 / std::sqrt(1.1 * inv_d2), 1 / std::sqrt(0.9 * inv_d2), std::nullopt});
  }
  const auto fit = rosenthal_henderson_fit(sizes, res);
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->bfactor_A2, b, 1e-9 * b);
  EXPECT_NEAR(fit->intercept, c, 1e-12);
  EXPECT_NEAR(fit->r, 1.0, 1e-12);
  EXPECT_EQ(fit->from_size, 100);
  EXPECT_EQ(fit->to_size, 1600);
  EXPECT_EQ(fit->points, 5);
  EXPECT_NEAR(fit->to_A, 1 / std::sqrt(2 / b * std::log(1600.0) + c), 1e-9);
  // A curve that gets worse with N has no B-factor.
  EXPECT_FALSE(rosenthal_henderson_fit({100, 200}, {{5.0}, {6.0}}));
  EXPECT_FALSE(rosenthal_henderson_fit({100}, {{5.0}}));
}

// Noisy projections of a phantom (SNR ~0.1 at box 32) at random poses, held in memory.
struct Dataset {
  static constexpr int box = 32;
  static constexpr double pixel_A = 4.0;
  std::vector<ComplexGrid> images;
  std::vector<ModelPose> poses;
  std::vector<int> halves;
  double power = 0;

  explicit Dataset(int count) {
    const Projector proj(phantom_volume(box, pixel_A, 11));
    Rng rng(5);
    double signal = 0;
    for (int i = 0; i < count; ++i) {
      ModelPose pose{euler_to_matrix(random_euler(rng)), 0, 0};
      RealGrid img = ifft_2d(
          [&] {
            ComplexGrid f;
            expected_transform(proj, pose, nullptr, 1.0, f);
            return f;
          }(),
          box);
      if (i == 0)
        for (float v : img.values()) signal += double(v) * v / img.size();
      const double sd = std::sqrt(signal / 0.1);
      for (float& v : img.values()) v += static_cast<float>(sd * normal01(rng));
      images.push_back(fft_2d(img));  // already corner-origin: the model's transform is
      poses.push_back(pose);
      halves.push_back(i % 2 + 1);
      power = box * box * sd * sd;
    }
  }
  InsertionSource source() const {
    return [this](int, long i, Insertion& out) {
      make_insertion(images[static_cast<std::size_t>(i)], poses[static_cast<std::size_t>(i)], nullptr, box, out);
    };
  }
};

TEST(Overfitting, CurveOfNoisyProjectionsImprovesWithNAndDoesNotDependOnThreads) {
  const Dataset data(400);
  CurveOptions o;
  o.sizes = {50, 100, 200, 400};
  o.repeats = 2;
  o.quanta = AccumulationQuanta::for_power(data.power);
  const ResolutionCurve one = resolution_curve(data.halves, Dataset::box, Dataset::pixel_A, data.source(), o);
  o.threads = 2;
  const ResolutionCurve two = resolution_curve(data.halves, Dataset::box, Dataset::pixel_A, data.source(), o);
  EXPECT_EQ(one.resolution_A, two.resolution_A);  // exact sums: bit for bit
  ASSERT_EQ(one.resolution_A.size(), 4u);
  std::vector<double> mean;
  for (const auto& repeats : one.resolution_A) {
    ASSERT_EQ(repeats.size(), 2u);
    for (const auto& r : repeats) ASSERT_TRUE(r && std::isfinite(*r));
    mean.push_back(*spread_of(repeats).mean);
  }
  // Each doubling gains: the mean of two repeats improves at every step (SNR 0.1, 25 to 200 per half).
  for (std::size_t s = 1; s < mean.size(); ++s) EXPECT_LT(mean[s], mean[s - 1]) << s;
  // The whole set in its own halves is one reconstruction: both repeats agree exactly.
  EXPECT_EQ(one.resolution_A[3][0], one.resolution_A[3][1]);
  EXPECT_EQ(one.fsc[3][0], one.fsc[3][1]);
  // Smaller subsets differ between repeats (independent draws).
  EXPECT_NE(one.fsc[0][0], one.fsc[0][1]);
}

TEST(Overfitting, NoiseImagesAreWhiteWithTheGivenVarianceAndReproducible) {
  const int box = 64;
  ComplexGrid a, b, c;
  noise_transform(9, 17, box, 2.0, a);
  noise_transform(9, 17, box, 2.0, b);
  noise_transform(9, 18, box, 2.0, c);
  EXPECT_EQ(a.values(), b.values());
  EXPECT_NE(a.values(), c.values());
  // Mean |X|^2 away from the kx = 0 and Nyquist columns, over 10 images: box^2 sd^2 (plain-sum
  // FFT), at low and at high frequency alike (white). |X|^2 is exponential (sd = mean): with
  // ~4000 components below box/4 and ~16000 above, relative sds of 1.6% and 0.8%; 4 sd allowed.
  double lo = 0, hi = 0;
  long nlo = 0, nhi = 0;
  for (long i = 0; i < 10; ++i) {
    noise_transform(9, i, box, 2.0, c);
    for (int y = 0; y < box; ++y)
      for (int x = 1; x < box / 2; ++x) {
        const double k = std::hypot(x, fourier_index(y, box));
        (k < box / 4 ? lo : hi) += std::norm(c(x, y));
        (k < box / 4 ? nlo : nhi) += 1;
      }
  }
  EXPECT_NEAR(lo / nlo / (box * box * 4.0), 1.0, 0.065);
  EXPECT_NEAR(hi / nhi / (box * box * 4.0), 1.0, 0.032);
}

TEST(Overfitting, MeanPixelVarianceOfAStack) {
  test::TempDir tmp;
  const int box = 8;
  ParticleSet set;
  set.optics.push_back({});
  set.optics[0].image_size = box;
  set.base_dir = tmp.path();
  {
    MrcStackWriter w(tmp / "s.mrcs", box, box, 1.0);
    for (int i = 0; i < 3; ++i) {
      RealGrid img(box, box);
      // Half the pixels at m + a, half at m - a: variance a^2, whatever the mean m.
      for (std::size_t k = 0; k < img.size(); ++k) img[k] = static_cast<float>(10.0 * i + (k % 2 ? 1 : -1) * (i + 1));
      w.append(img);
      Particle p;
      p.image = ImageRef{i + 1, "s.mrcs"};
      set.particles.push_back(p);
    }
    w.finish();
  }
  EXPECT_NEAR(mean_pixel_variance(set, box), (1.0 + 4.0 + 9.0) / 3, 1e-9);
  EXPECT_NE(test::input_error([&] { mean_pixel_variance(set, 16); }).find("16"), std::string::npos);
}

}  // namespace
}  // namespace tessera
