// Pose search against ground truth: particles simulated at known poses must
// be found at those poses, to within the final sampling step.
#include <gtest/gtest.h>

#include <cstdio>

#include <algorithm>
#include <cmath>

#include "tessera/ctf.hpp"
#include "tessera/fft.hpp"
#include "tessera/orientations.hpp"
#include "tessera/pose_search.hpp"
#include "tessera/random.hpp"
#include "tessera/simulate.hpp"

namespace tessera {
namespace {

struct Errors {
  double median_deg, max_shift_px;
};

// With prior_offset_deg set, each particle gets a prior centred that far from its true rotation (about a
// fixed axis) at its true origin; the errors are then measured against the prior's centre.
Errors search_errors(PoseSearch& search, bool local, std::optional<double> snr,
                     std::optional<double> prior_offset_deg = std::nullopt) {
  const int box = 48;
  const double px = 3.0;
  const RealGrid vol = phantom_volume(box, px, 21);
  SimulationOptions o;
  o.count = 20;
  o.pixel_A = px;
  o.origin_sigma_A = 3;
  o.snr = snr;
  o.seed = 5;
  const Simulator sim({vol}, o);
  const Projector ref(vol);
  std::vector<double> inv_sigma2(box / 2 + 1, 1.0 / (sim.noise_sigma() > 0 ? std::pow(sim.noise_sigma(), 2) * box * box : 1.0));
  search.prepare(ref, inv_sigma2, box / 2.0 - 1);
  std::vector<double> ang;
  double max_shift = 0;
  for (long i = 0; i < o.count; ++i) {
    RealGrid img;
    const SimulatedParticle sp = sim.make(i, img);
    centre_to_corner(img, false);
    const ComplexGrid f = fft_2d(img);
    CtfParams c = CtfParams::of(sp.particle, sim.optics());
    c.scale = 1;
    const RealGrid ctf = ctf_image(c, box, box, px);
    const Mat3 truth = euler_to_matrix(sp.particle.pose->angles);
    ParticleInput in{&f, &ctf, sp.particle.scale, {}};
    if (local) {
      // Start 4 degrees and 1.5 px away from the truth.
      in.current.rotation = multiply(axis_angle_matrix({1, 2, 0.5}, 4.0), truth);
      in.current.origin_x_px = sp.particle.pose->origin_x_A / px + 1.5;
      in.current.origin_y_px = sp.particle.pose->origin_y_A / px - 1.0;
    }
    Mat3 reference = truth;
    if (prior_offset_deg) {
      reference = multiply(axis_angle_matrix({0.3, -1, 0.8}, *prior_offset_deg), truth);
      in.prior = PosePrior{reference, sp.particle.pose->origin_x_A / px, sp.particle.pose->origin_y_A / px};
    }
    const PoseEstimate e = search.search(in);
    ang.push_back(rotation_distance_deg(e.rotation, reference));
    max_shift = std::max({max_shift, std::abs(e.origin_x_px - sp.particle.pose->origin_x_A / px),
                          std::abs(e.origin_y_px - sp.particle.pose->origin_y_A / px)});
  }
  std::sort(ang.begin(), ang.end());
  return {ang[ang.size() / 2], max_shift};
}

TEST(PoseSearch, GlobalFindsNoiseFreePoses) {
  auto search = make_global_search({});
  const Errors e = search_errors(*search, false, std::nullopt);
  // Final step 1.875 deg: the best grid point lies within ~1 deg of the truth.
  EXPECT_LT(e.median_deg, 1.5);
  EXPECT_LT(e.max_shift_px, 0.5);
}

TEST(PoseSearch, GlobalFindsNoisyPoses) {
  auto search = make_global_search({});
  const Errors e = search_errors(*search, false, 0.5);
  EXPECT_LT(e.median_deg, 3.0);
}

// A Gaussian prior about a centre 3 degrees from the truth, on noisy images (SNR 0.5, the noise model
// their own, so the score is a calibrated log-likelihood): a tight prior (0.05 deg: its log costs 1800
// at the truth) holds the pose near its centre; a wide one (100 deg) leaves the search at the truth,
// 3 degrees from the centre.
TEST(PoseSearch, LocalPriorPullsThePoseTowardsItsCentre) {
  LocalSearchOptions tight;
  tight.prior_rotation_sigma_deg = 0.05;
  tight.prior_shift_sigma_px = 0.05;
  auto held = make_local_search(tight);
  const double near_centre = search_errors(*held, true, 0.5, 3.0).median_deg;
  LocalSearchOptions wide;
  wide.prior_rotation_sigma_deg = 100;
  auto free = make_local_search(wide);
  const double near_truth = search_errors(*free, true, 0.5, 3.0).median_deg;
  std::printf("median distance to the prior's centre: tight prior %.2f deg, wide prior %.2f deg\n", near_centre,
              near_truth);
  EXPECT_LT(near_centre, 0.5);
  EXPECT_NEAR(near_truth, 3.0, 1.0);
}

TEST(PoseSearch, LocalConvergesFromANearbyPose) {
  auto search = make_local_search({});
  const Errors e = search_errors(*search, true, std::nullopt);
  // Final step 0.94 deg.
  EXPECT_LT(e.median_deg, 0.8);
  EXPECT_LT(e.max_shift_px, 0.3);
}

// Noise-free, the score's peak is the true pose: placing the estimate between
// the last level's grid points (0.94 deg, 0.25 px) must bring it well inside
// the grid's own error (a uniform +-step/2 per axis).
TEST(PoseSearch, SubgridPolishPlacesPosesBetweenGridPoints) {
  LocalSearchOptions on, off;
  off.subgrid = false;
  auto polished = make_local_search(on), gridded = make_local_search(off);
  const Errors p = search_errors(*polished, true, std::nullopt), g = search_errors(*gridded, true, std::nullopt);
  std::printf("median angular error: grid %.3f deg, polished %.3f deg; worst offset error %.3f / %.3f px\n",
              g.median_deg, p.median_deg, g.max_shift_px, p.max_shift_px);
  EXPECT_LT(p.median_deg, 0.5 * g.median_deg);
  EXPECT_LT(p.max_shift_px, g.max_shift_px);
}

TEST(Orientations, GlobalGridCoversTheSphereEvenly) {
  const std::vector<Mat3> grid = global_orientation_grid(15);
  // Every random rotation is within ~ step of a grid rotation.
  Rng rng = item_rng(1, 2);
  double worst = 0;
  for (int i = 0; i < 200; ++i) {
    const Mat3 r = euler_to_matrix(random_euler(rng));
    double best = 180;
    for (const Mat3& g : grid) best = std::min(best, rotation_distance_deg(r, g));
    worst = std::max(worst, best);
  }
  EXPECT_LT(worst, 15.0);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(PoseSearch, MarginalizationReturnsTheNormalizedPosterior) {
  const int box = 48;
  const double px = 3.0;
  const RealGrid vol = phantom_volume(box, px, 21);
  SimulationOptions o;
  o.count = 6;
  o.pixel_A = px;
  o.snr = 0.05;
  const Simulator sim({vol}, o);
  const Projector ref(vol);
  LocalSearchOptions lo;
  lo.marginalize = true;
  lo.subgrid = false;  // the posterior's best is then the estimate itself
  auto search = make_local_search(lo);
  const double sigma2 = std::pow(sim.noise_sigma(), 2) * box * box;
  search->prepare(ref, std::vector<double>(box / 2 + 1, 1.0 / sigma2), box / 2.0 - 1);
  for (long i = 0; i < o.count; ++i) {
    RealGrid img;
    const SimulatedParticle sp = sim.make(i, img);
    centre_to_corner(img, false);
    const ComplexGrid f = fft_2d(img);
    const RealGrid ctf = ctf_image(CtfParams::of(sp.particle, sim.optics()), box, box, px);
    ParticleInput in{&f, &ctf, 1.0, {}};
    in.current.rotation = euler_to_matrix(sp.particle.pose->angles);
    in.current.origin_x_px = sp.particle.pose->origin_x_A / px;
    in.current.origin_y_px = sp.particle.pose->origin_y_A / px;
    const PoseEstimate e = search->search(in);
    ASSERT_FALSE(e.posterior.empty());
    double total = 0;
    for (const auto& wp : e.posterior) {
      total += wp.weight;
      // exp(score - best) relative to the best pose, which comes first.
      EXPECT_NEAR(wp.weight / e.posterior.front().weight, std::exp(wp.pose.score - e.score), 1e-9);
    }
    EXPECT_NEAR(total, 1.0, 1e-9);
    EXPECT_EQ(max_abs_diff(e.posterior.front().pose.rotation, e.rotation), 0.0);
    // At SNR 0.05 the posterior is not a single pose.
    EXPECT_GT(e.posterior.size(), 1u);
  }
}

}  // namespace
}  // namespace tessera
