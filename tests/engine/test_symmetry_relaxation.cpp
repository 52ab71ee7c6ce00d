// Symmetry relaxation (symmetry_relaxation.hpp) in the refinement loop, against ground truth:
// a C4 phantom with one asymmetric feature (a blob on one subunit), particles simulated in C1
// at known poses. Refined with C4 imposed the feature is averaged over the four subunits (1/4
// of its density on each); refined from that state with relaxation, by maximization and by
// marginalization, the feature comes back whole on one subunit, and the particles take the
// mate that puts it there.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include "run_programs.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/random.hpp"
#include "tessera/reconstruct_set.hpp"
#include "tessera/refine.hpp"
#include "tessera/simulate.hpp"
#include "tessera/symmetry.hpp"
#include "tessera/symmetry_relaxation.hpp"

namespace tessera {
namespace {

constexpr int kBox = 40;
constexpr double kPixel = 3.0;
constexpr long kCount = 300;
// The feature: a Gaussian blob of sigma 2 px on the x axis, 8 px from the C4 axis (z), its peak
// 0.6 of the base's maximum (faint enough that scoring the mates on every aligned frequency
// fails: RefineOptions::relaxation_max_res_A).
constexpr double kFeatureX = 8, kFeatureSigma = 2, kFeaturePeak = 0.6;
// Maps are compared at this resolution, which every refinement here reaches.
constexpr double kCompareA = 15;

RealGrid blob(double cx, double cy, double cz, double sigma, double peak) {
  RealGrid g(kBox, kBox, kBox);
  const int c = kBox / 2;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x) {
        const double d2 = std::pow(x - c - cx, 2) + std::pow(y - c - cy, 2) + std::pow(z - c - cz, 2);
        g(x, y, z) = static_cast<float>(peak * std::exp(-0.5 * d2 / (sigma * sigma)));
      }
  return g;
}

struct Phantom {
  RealGrid base;   // C4-symmetric: four identical subunits about z
  RealGrid truth;  // base + the feature on one subunit
};

Phantom c4_phantom() {
  const SymmetryGroup c4 = SymmetryGroup::parse("C4");
  RealGrid base = symmetrize(phantom_volume(kBox, kPixel, 11, 200), c4);
  const float peak = *std::max_element(base.values().begin(), base.values().end());
  RealGrid truth = blob(kFeatureX, 0, 0, kFeatureSigma, kFeaturePeak * peak);
  for (std::size_t i = 0; i < truth.size(); ++i) truth[i] += base[i];
  return {std::move(base), std::move(truth)};
}

// The feature's region on subunit g (0..3): a sphere of 2 sigma about the blob's centre turned
// by g x 90 degrees about z.
bool in_region(int x, int y, int z, int g) {
  const double a = g * M_PI / 2, c = kBox / 2;
  const double fx = kFeatureX * std::cos(a), fy = kFeatureX * std::sin(a);
  return std::pow(x - c - fx, 2) + std::pow(y - c - fy, 2) + std::pow(z - c, 2) <= 4 * kFeatureSigma * kFeatureSigma;
}

// The feature's density in `map` on each subunit, as a fraction of the truth's: the map
// (low-passed to kCompareA, put on the truth's greyscale by least squares against the
// symmetric base outside the four regions) minus the base, summed over the subunit's region,
// over the same sum of truth minus base on the feature's own subunit. 1: all of it, 1/4:
// averaged over the four subunits, 0: none.
std::vector<double> feature_per_subunit(const RealGrid& map, const Phantom& ph) {
  const RealGrid m = lowpass(map, kCompareA, kPixel), b = lowpass(ph.base, kCompareA, kPixel),
                 t = lowpass(ph.truth, kCompareA, kPixel);
  double mb = 0, mm = 0;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x) {
        bool inside = false;
        for (int g = 0; g < 4; ++g) inside = inside || in_region(x, y, z, g);
        if (inside) continue;
        mb += double(m(x, y, z)) * b(x, y, z);
        mm += double(m(x, y, z)) * m(x, y, z);
      }
  const double s = mb / mm;
  std::vector<double> got(4, 0.0);
  double want = 0;
  for (int z = 0; z < kBox; ++z)
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x)
        for (int g = 0; g < 4; ++g)
          if (in_region(x, y, z, g)) {
            got[g] += s * m(x, y, z) - b(x, y, z);
            if (g == 0) want += t(x, y, z) - b(x, y, z);
          }
  for (double& v : got) v /= want;
  return got;
}

// Which mate of its true pose each particle's pose is (nearest_mate), and the share of the
// particles at the most common one: the data cannot tell the whole map turned by a symmetry
// operator from the map itself, so "right" is the mate most particles agree on.
double right_mate_share(const ParticleSet& refined, const std::vector<Mat3>& truth, const std::vector<Mat3>& mates) {
  std::map<int, long> count;
  for (std::size_t i = 0; i < truth.size(); ++i)
    ++count[nearest_mate(truth[i], euler_to_matrix(refined.particles[i].pose->angles), mates)];
  long most = 0;
  for (const auto& [k, n] : count) most = std::max(most, n);
  return double(most) / double(truth.size());
}

struct Simulated {
  ParticleSet particles;    // at a random mate of their true pose each, half sets unassigned
  std::vector<Mat3> truth;  // true rotations
};

// Simulates the particles (SNR 0.3, CTF, origins sigma 3 A) into dir/particles.mrcs; each is
// given its true pose composed with a random mate, as a C4 refinement leaves them.
Simulated simulate(const test::TempDir& dir, const RealGrid& truth, const std::vector<Mat3>& mates) {
  SimulationOptions o;
  o.count = kCount;
  o.pixel_A = kPixel;
  o.seed = 5;
  o.snr = 0.3;
  o.origin_sigma_A = 3;
  o.astigmatism_max_A = 300;
  const Simulator sim({truth}, o);
  Simulated s;
  s.particles.optics.push_back(sim.optics());
  s.particles.base_dir = dir.path();
  MrcStackWriter stack(dir / "particles.mrcs", kBox, kBox, kPixel);
  RealGrid image;
  for (long i = 0; i < kCount; ++i) {
    Particle p = sim.make(i, image).particle;
    stack.append(image);
    p.image = ImageRef{i + 1, "particles.mrcs"};
    const Mat3 t = euler_to_matrix(p.pose->angles);
    s.truth.push_back(t);
    Rng rng = item_rng(17, static_cast<std::uint64_t>(i));
    const auto k = static_cast<std::size_t>(uniform01(rng) * double(mates.size()));
    p.pose->angles = matrix_to_euler(multiply(t, mates[std::min(k, mates.size() - 1)]));
    p.half_set = 0;
    s.particles.particles.push_back(std::move(p));
  }
  stack.finish();
  return s;
}

RefineOptions options(const std::vector<Mat3>& symmetry) {
  RefineOptions o;
  o.threads = 2;
  o.symmetry = symmetry;
  o.global_iterations = 0;  // local searches from the given poses
  o.max_iterations = 3;
  o.mask_start_res_A = 0;  // the spherical mask throughout
  return o;
}

struct Outcome {
  std::vector<double> feature;
  double right_mates = 0;
};

Outcome outcome(const RefineState& st, const Phantom& ph, const Simulated& sim, const std::vector<Mat3>& mates) {
  return {feature_per_subunit(average_maps(st.raw_a, st.raw_b), ph), right_mate_share(st.particles, sim.truth, mates)};
}

TEST(SymmetryRelaxation, RecoversAnAsymmetricFeatureThatC4Averages) {
  const test::TempDir dir;
  const Phantom ph = c4_phantom();
  const std::vector<Mat3> c4 = SymmetryGroup::parse("C4").matrices();
  const Simulated sim = simulate(dir, ph.truth, c4);

  // C4 imposed, from a C4-symmetric start (the truth symmetrized).
  const RefineOptions o4 = options(c4);
  RefineState st4 = start_refinement(sim.particles, symmetrize(ph.truth, SymmetryGroup::parse("C4")), kPixel, o4);
  run_refinement(st4, kPixel, o4, {}, {});
  const Outcome c4_result = outcome(st4, ph, sim, c4);
  std::cout << fmt::format(
      "C4 imposed: feature per subunit {:.2f} {:.2f} {:.2f} {:.2f}, right mate {:.0f}%, "
      "resolution {:.1f} A\n",
      c4_result.feature[0], c4_result.feature[1], c4_result.feature[2], c4_result.feature[3],
      100 * c4_result.right_mates, st4.resolution_A);
  // Averaged: about 1/4 on every subunit (the noise of 300 particles at 15 A adds a few hundredths),
  // and the particles stay at the random mates they were given (a quarter each, with a spread of
  // 0.025 for 300).
  for (double f : c4_result.feature) EXPECT_NEAR(f, 0.25, 0.1);
  EXPECT_LT(c4_result.right_mates, 0.4);

  for (SymmetryRelaxation mode : {SymmetryRelaxation::Maximization, SymmetryRelaxation::Marginalization}) {
    // From the C4 refinement's state, with its maps reconstructed in C1 at its poses (each
    // particle at the mate its search chose: symmetric but for the particles' uneven spread).
    RefineState st = st4;
    ReconstructSetOptions ro;
    ro.threads = 2;
    HalfSetReconstruction r = reconstruct_particles(st.particles, ro);
    st.half_a = std::move(r.half_a), st.half_b = std::move(r.half_b);
    st.raw_a = std::move(r.raw_a), st.raw_b = std::move(r.raw_b);
    st.done = false;
    st.final_passes_left = -1;
    st.iterations_without_gain = 0;
    RefineOptions o = options(c4);
    o.symmetry_relaxation = mode;
    o.final_passes = 2;
    o.max_iterations = st.iteration + 6;
    run_refinement(st, kPixel, o, {}, {});
    const Outcome relaxed = outcome(st, ph, sim, c4);
    const auto best = std::max_element(relaxed.feature.begin(), relaxed.feature.end());
    double others = 0;
    for (auto f = relaxed.feature.begin(); f != relaxed.feature.end(); ++f)
      if (f != best) others = std::max(others, std::abs(*f));
    const char* name = mode == SymmetryRelaxation::Maximization ? "maximization" : "marginalization";
    std::cout << fmt::format(
        "{}: feature per subunit {:.2f} {:.2f} {:.2f} {:.2f}, right mate {:.0f}%, {} "
        "iterations, mates changed per iteration:",
        name, relaxed.feature[0], relaxed.feature[1], relaxed.feature[2], relaxed.feature[3], 100 * relaxed.right_mates,
        st.iteration - st4.iteration);
    for (std::size_t i = st4.history.size(); i < st.history.size(); ++i)
      std::cout << fmt::format(" {:.2f}", st.history[i].mate_change_fraction.value_or(-1));
    std::cout << "\n";
    SCOPED_TRACE(name);
    // The feature whole on one subunit and absent from the others: within 0.3 of 1 (a share
    // c of the particles at the right mate puts c of the feature there, 0.8 at least, and
    // 300 particles' noise at 15 A moves the sums by a few hundredths), below 0.15 elsewhere.
    EXPECT_NEAR(*best, 1.0, 0.3);
    EXPECT_LT(others, 0.15);
    EXPECT_GT(relaxed.right_mates, 0.8);
    for (std::size_t i = st4.history.size(); i < st.history.size(); ++i)
      EXPECT_TRUE(st.history[i].mate_change_fraction.has_value());
    // The mate each particle took and how sure it was, in its STAR column.
    const int column = st.particles.particle_extra_index(kMatePosteriorLabel);
    ASSERT_GE(column, 0);
    double mean_posterior = 0;
    for (const Particle& p : st.particles.particles) {
      const double v = std::stod(p.extra[static_cast<std::size_t>(column)]);
      EXPECT_GE(v, 0.25 - 1e-4);  // the best of four mates
      EXPECT_LE(v, 1.0);
      mean_posterior += v / double(kCount);
    }
    std::cout << fmt::format("  mean posterior of the mate taken {:.3f}\n", mean_posterior);
  }
}

TEST(SymmetryRelaxation, MatePosteriorAndRelaxedPoses) {
  // relax_to_mates without a search posterior: maximization takes the best mate alone,
  // marginalization every retained mate with its renormalized weight.
  const std::vector<Mat3> c4 = SymmetryGroup::parse("C4").matrices();
  const Mat3 a = euler_to_matrix({30, 60, 90});
  const std::vector<double> p{0.1, 0.6, 0.3, 1e-5};
  PoseEstimate e{a, 1.0, -2.0, 0, {}};
  EXPECT_EQ(relax_to_mates(e, p, c4, SymmetryRelaxation::Maximization), 1);
  EXPECT_LT(max_abs_diff(e.rotation, multiply(a, c4[1])), 1e-12);
  EXPECT_TRUE(e.posterior.empty());
  PoseEstimate m{a, 1.0, -2.0, 0, {}};
  EXPECT_EQ(relax_to_mates(m, p, c4, SymmetryRelaxation::Marginalization), 1);
  ASSERT_EQ(m.posterior.size(), 3u);  // mate 3 is below 1e-3 of the best
  double total = 0;
  for (const WeightedPose& wp : m.posterior) {
    total += wp.weight;
    EXPECT_EQ(wp.pose.origin_x_px, 1.0);
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
  EXPECT_NEAR(m.posterior[1].weight, 0.6 / 1.0, 1e-5);
  EXPECT_LT(max_abs_diff(m.posterior[2].pose.rotation, multiply(a, c4[2])), 1e-12);
  EXPECT_EQ(nearest_mate(a, multiply(a, c4[2]), c4), 2);
  EXPECT_EQ(nearest_mate(a, a, c4), 0);
}

}  // namespace
}  // namespace tessera
