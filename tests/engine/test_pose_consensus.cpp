// Tests of tessera/pose_consensus.hpp against known answers: symmetry mates of
// D7 and I at distance 0 under their group and at their own rotation angle under
// C1, rotations of known angle about arbitrary axes, in-plane rotations that leave
// the view direction, the hand flip of a projected point cloud, the median angle
// of random rotations, and a global frame recovered from noisy, symmetric poses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <vector>

#include "tessera/pose_consensus.hpp"
#include "tessera/random.hpp"
#include "tessera/symmetry.hpp"

namespace tessera {
namespace {

constexpr double kDeg = std::numbers::pi / 180.0;

std::vector<Mat3> random_poses(int n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Mat3> poses;
  for (int i = 0; i < n; ++i) poses.push_back(euler_to_matrix(random_euler(rng)));
  return poses;
}

Vec3 random_axis(Rng& rng) {
  const double z = 2 * uniform01(rng) - 1, phi = 2 * std::numbers::pi * uniform01(rng), s = std::sqrt(1 - z * z);
  return {s * std::cos(phi), s * std::sin(phi), z};
}

// The index of the inverse of g's k-th matrix.
int inverse_index(const SymmetryGroup& g, int k) {
  for (int j = 0; j < g.order(); ++j)
    if (max_abs_diff(multiply(g.matrices()[static_cast<std::size_t>(k)], g.matrices()[static_cast<std::size_t>(j)]),
                     identity3()) < 1e-9)
      return j;
  return -1;
}

TEST(PoseConsensus, IdenticalPosesAreAtZero) {
  for (const char* name : {"C1", "C7", "D7", "T", "O", "I"}) {
    const SymmetryGroup g = SymmetryGroup::parse(name);
    for (const Mat3& a : random_poses(50, 3)) {
      const MateDistance d = closest_mate(a, a, g);
      EXPECT_LT(d.angle_deg, 1e-12) << name;
      EXPECT_EQ(d.mate, 0) << name;
      EXPECT_LT(symmetric_view_distance_deg(a, a, g), 1e-12) << name;
    }
  }
}

// A and A R_k project a symmetric map alike: 0 under the group, the angle of R_k
// without symmetry. D7: k * 360/7 about z (twice each for k = 1..3) and seven half
// turns. I: 12 rotations by 72 deg, 12 by 144, 20 by 120, 15 half turns and the identity.
TEST(PoseConsensus, SymmetryMatesAreAtZeroUnderTheirGroup) {
  const SymmetryGroup c1 = SymmetryGroup::parse("C1");
  const std::map<std::string, std::map<double, int>> classes = {
      {"D7", {{0, 1}, {360.0 / 7, 2}, {720.0 / 7, 2}, {1080.0 / 7, 2}, {180, 7}}},
      {"I", {{0, 1}, {72, 12}, {144, 12}, {120, 20}, {180, 15}}}};
  for (const auto& [name, expected] : classes) {
    const SymmetryGroup g = SymmetryGroup::parse(name);
    for (const Mat3& a : random_poses(5, 11)) {
      std::map<double, int> found;
      for (int k = 0; k < g.order(); ++k) {
        const Mat3 b = multiply(a, g.matrices()[static_cast<std::size_t>(k)]);
        const MateDistance d = closest_mate(a, b, g);
        EXPECT_LT(d.angle_deg, 1e-9) << name << " mate " << k;
        EXPECT_EQ(d.mate, inverse_index(g, k)) << name;  // B R = A R_k R: R = R_k^-1
        EXPECT_LT(symmetric_view_distance_deg(a, b, g), 1e-9) << name << " mate " << k;
        const double plain = symmetric_angular_distance_deg(a, b, c1);
        for (const auto& [angle, count] : expected)
          if (std::abs(plain - angle) < 1e-9) ++found[angle];
      }
      EXPECT_EQ(found, expected) << name;
    }
  }
}

// B = A Rot(u, delta), B = Rot(u, delta) A and B = A R_k Rot(u, delta): delta, for
// any axis u, on either side, and under D7 as long as delta is below half the
// smallest angle between mates (360/14 deg).
TEST(PoseConsensus, RotationOfKnownAngle) {
  Rng rng(5);
  const SymmetryGroup c1 = SymmetryGroup::parse("C1"), d7 = SymmetryGroup::parse("D7");
  for (const Mat3& a : random_poses(40, 7)) {
    for (double delta : {1e-7, 0.01, 0.5, 3.0, 12.0, 90.0, 179.0}) {
      const Mat3 rot = axis_angle_matrix(random_axis(rng), delta);
      EXPECT_NEAR(symmetric_angular_distance_deg(a, multiply(a, rot), c1), delta, 1e-9);
      EXPECT_NEAR(symmetric_angular_distance_deg(a, multiply(rot, a), c1), delta, 1e-9);
      EXPECT_NEAR(rotation_angle_deg(multiply(a, rot), a), delta, 1e-9);
      if (delta < 12.5) {
        const int k = static_cast<int>(uniform01(rng) * d7.order());
        const Mat3 b = multiply(multiply(a, d7.matrices()[static_cast<std::size_t>(k)]), rot);
        const MateDistance d = closest_mate(a, b, d7);
        EXPECT_NEAR(d.angle_deg, delta, 1e-9);
        EXPECT_EQ(d.mate, inverse_index(d7, k));  // B R = A R_k rot R: R = R_k^-1 cancels R_k
      }
    }
  }
}

// psi turns the image in its plane: the view direction stays; tilt moves it by its change.
TEST(PoseConsensus, ViewDistanceIgnoresPsi) {
  const SymmetryGroup c1 = SymmetryGroup::parse("C1");
  Rng rng(9);
  for (int i = 0; i < 100; ++i) {
    const Euler e = random_euler(rng);
    const double dpsi = 360 * uniform01(rng) - 180;
    const Mat3 a = euler_to_matrix(e), b = euler_to_matrix({e.rot, e.tilt, e.psi + dpsi});
    EXPECT_LT(symmetric_view_distance_deg(a, b, c1), 1e-9);
    EXPECT_NEAR(symmetric_angular_distance_deg(a, b, c1), std::abs(dpsi), 1e-9);
    const double tilt = std::clamp(e.tilt, 10.0, 170.0), dtilt = 7.5;
    EXPECT_NEAR(symmetric_view_distance_deg(euler_to_matrix({e.rot, tilt, e.psi}),
                                            euler_to_matrix({e.rot, tilt + dtilt, e.psi + 40}), c1),
                dtilt, 1e-9);
  }
  // The view direction is RELION's Euler_angles2direction: (cos rot sin tilt, sin rot sin tilt, cos tilt).
  const Vec3 d = view_direction(euler_to_matrix({30, 60, 77}));
  EXPECT_NEAR(d[0], std::cos(30 * kDeg) * std::sin(60 * kDeg), 1e-15);
  EXPECT_NEAR(d[1], std::sin(30 * kDeg) * std::sin(60 * kDeg), 1e-15);
  EXPECT_NEAR(d[2], std::cos(60 * kDeg), 1e-15);
}

TEST(PoseConsensus, ShiftDistanceInThePlane) {
  ProjectionPose a, b;
  a.origin_x_A = 1, a.origin_y_A = -2, a.origin_z_A = 5;
  b.origin_x_A = 4, b.origin_y_A = 2;
  EXPECT_DOUBLE_EQ(shift_distance_A(a, b), 5.0);
  const auto d = pose_distances({a}, {b}, SymmetryGroup::parse("C1"));
  EXPECT_DOUBLE_EQ(d.shift_A[0], 5.0);
  EXPECT_THROW(pose_distances({a}, {}, SymmetryGroup::parse("C1")), std::invalid_argument);
}

// A point x of a map appears at the first two coordinates of A x in the image at
// pose A (geometry.hpp). The map mirrored through its xy plane has the point at
// M x: at pose B it appears where the original shows x at pose M B M.
TEST(PoseConsensus, OppositeHandProjectsTheMirroredMap) {
  Rng rng(13);
  for (const Mat3& b : random_poses(20, 17)) {
    const Mat3 flipped = opposite_hand(b);
    EXPECT_NEAR(flipped[0][0] * (flipped[1][1] * flipped[2][2] - flipped[1][2] * flipped[2][1]) -
                    flipped[0][1] * (flipped[1][0] * flipped[2][2] - flipped[1][2] * flipped[2][0]) +
                    flipped[0][2] * (flipped[1][0] * flipped[2][1] - flipped[1][1] * flipped[2][0]),
                1.0, 1e-12);
    for (int i = 0; i < 5; ++i) {
      const Vec3 x{uniform01(rng) - 0.5, uniform01(rng) - 0.5, uniform01(rng) - 0.5};
      const Vec3 mirrored{x[0], x[1], -x[2]};
      const Vec3 seen = multiply(b, mirrored), original = multiply(flipped, x);
      EXPECT_NEAR(seen[0], original[0], 1e-12);
      EXPECT_NEAR(seen[1], original[1], 1e-12);
    }
  }
  // In angles: (rot, tilt, psi) -> (rot, -tilt, psi).
  EXPECT_LT(max_abs_diff(opposite_hand(euler_to_matrix({20, 50, 80})), euler_to_matrix({20, -50, 80})), 1e-15);
}

TEST(PoseConsensus, PercentileInterpolatesAsNumpy) {
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 90), 3.7);
  EXPECT_DOUBLE_EQ(percentile({7}, 90), 7);
  EXPECT_TRUE(std::isnan(percentile({}, 50)));
}

// Random rotations: the angle has density (1 - cos t) / pi, median t with
// t - sin t = pi / 2 (132.35 deg); measured here on 20,000 draws. Symmetry brings
// random poses closer. With a uniform unit quaternion (w, x, y, z), C2's distance is
// 2 acos(max(|w|, |z|)) and D2's 2 acos(max |component|): medians 102.39 and 78.67 deg
// (numpy, 2,000,000 draws); the estimate from 20,000 draws is within ~0.4 deg.
TEST(PoseConsensus, RandomPoseDistances) {
  const RandomDistances c1 = random_pose_distances(SymmetryGroup::parse("C1"));
  EXPECT_NEAR(c1.median_angle_deg / 180 * std::numbers::pi - std::sin(c1.median_angle_deg * kDeg), std::numbers::pi / 2,
              1e-12);
  EXPECT_NEAR(c1.median_angle_deg, 132.35, 0.01);
  EXPECT_EQ(c1.median_view_deg, 90.0);
  std::vector<double> measured;
  const auto a = random_poses(20000, 21), b = random_poses(20000, 22);
  for (std::size_t i = 0; i < a.size(); ++i) measured.push_back(rotation_angle_deg(a[i], b[i]));
  EXPECT_NEAR(percentile(measured, 50), c1.median_angle_deg, 1.0);

  EXPECT_NEAR(random_pose_distances(SymmetryGroup::parse("C2")).median_angle_deg, 102.39, 1.0);
  EXPECT_NEAR(random_pose_distances(SymmetryGroup::parse("D2")).median_angle_deg, 78.67, 1.0);
  const RandomDistances d7 = random_pose_distances(SymmetryGroup::parse("D7"));
  const RandomDistances ico = random_pose_distances(SymmetryGroup::parse("I"));
  EXPECT_LT(d7.median_angle_deg, c1.median_angle_deg);
  EXPECT_LT(ico.median_angle_deg, d7.median_angle_deg);
  EXPECT_NEAR(ico.median_angle_deg, 31.0, 1.0);  // measured
  EXPECT_LT(d7.median_view_deg, 90);
}

// B = A R_i Q Rot(noise) with a random mate R_i of D7 per particle, Q = 40 deg
// about (1, 2, 3), noise 1 deg, and a fifth of the particles unrelated: Q is found
// (up to a mate) to well within the noise, and A against B Q^T leaves the noise.
TEST(PoseConsensus, AlignFramesFindsTheGlobalRotation) {
  const SymmetryGroup g = SymmetryGroup::parse("D7");
  const Mat3 q = axis_angle_matrix({1, 2, 3}, 40);
  Rng rng(31);
  const auto a = random_poses(3000, 41);
  std::vector<Mat3> b;
  std::vector<ProjectionPose> pa, pb;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Mat3& r = g.matrices()[static_cast<std::size_t>(uniform01(rng) * g.order())];
    const Mat3 noise = axis_angle_matrix(random_axis(rng), 1.0);
    b.push_back(i % 5 == 4 ? euler_to_matrix(random_euler(rng)) : multiply(multiply(multiply(a[i], r), q), noise));
    pa.push_back({matrix_to_euler(a[i])});
    pb.push_back({matrix_to_euler(b.back())});
  }
  const FrameAlignment f = align_frames(a, b, g);
  double error = 180;  // Q is found up to a mate on the left: R Q fits as well
  for (const Mat3& r : g.matrices()) error = std::min(error, rotation_angle_deg(multiply(r, q), f.rotation));
  EXPECT_LT(error, 0.1) << f.angle_deg;
  EXPECT_NEAR(f.median_residual_deg, 1.0, 0.3);
  const PoseDistances d = pose_distances(pa, pb, g, f.rotation);
  for (std::size_t i = 0; i < a.size(); i += 5) {
    for (std::size_t j = i; j < i + 4; ++j) EXPECT_NEAR(d.angle_deg[j], 1.0, 0.15) << j;  // the 5th: unrelated
  }
  // Without the frame, the same poses look unrelated.
  EXPECT_GT(percentile(pose_distances(pa, pb, g).angle_deg, 50), 10);
  // No global rotation: the identity (to the noise).
  const FrameAlignment none = align_frames(a, a, g);
  EXPECT_LT(none.angle_deg, 1e-9);
}

}  // namespace
}  // namespace tessera
