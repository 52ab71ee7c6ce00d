// Euler angles and Scipion transforms against RELION's and Scipion's own
// numbers (shared/data/scipion/README.md: matrices written by real pwem from
// RELION's run_data.star).
#include <gtest/gtest.h>

#include <cmath>

#include "tessera/geometry.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

TEST(Geometry, EulerMatrixIsRelionsForSimpleAngles) {
  // tilt 90 about y: RELION's A maps the volume's z axis onto image -x... check
  // the closed form of Euler_angles2matrix for (0, 90, 0): [[0,0,-1],[0,1,0],[1,0,0]].
  const Mat3 a = euler_to_matrix({0, 90, 0});
  const Mat3 want{{{0, 0, -1}, {0, 1, 0}, {1, 0, 0}}};
  EXPECT_LT(max_abs_diff(a, want), 1e-15);
  // rot 90 alone: a rotation about z, [[0,1,0],[-1,0,0],[0,0,1]].
  const Mat3 r = euler_to_matrix({90, 0, 0});
  EXPECT_LT(max_abs_diff(r, Mat3{{{0, 1, 0}, {-1, 0, 0}, {0, 0, 1}}}), 1e-15);
}

TEST(Geometry, EulerRoundTripOverRandomPoses) {
  Rng rng = item_rng(3, 0);
  for (int i = 0; i < 1000; ++i) {
    const Mat3 a = euler_to_matrix(random_euler(rng));
    const Mat3 b = euler_to_matrix(matrix_to_euler(a));
    ASSERT_LT(max_abs_diff(a, b), 1e-12);
  }
  // The gimbal-lock poles keep the rotation too.
  for (double tilt : {0.0, 180.0}) {
    const Mat3 a = euler_to_matrix({40, tilt, 25});
    EXPECT_LT(max_abs_diff(a, euler_to_matrix(matrix_to_euler(a))), 1e-12);
  }
}

// Tilts near the poles keep their digits: sin(tilt) is taken from the matrix's
// third row, not from sqrt(1 - cos^2(tilt)), which rounds below ~1e-6 deg.
TEST(Geometry, EulerTiltNearThePolesKeepsItsDigits) {
  for (double tilt : {1e-7, 1e-5, 1e-3, 180 - 1e-5}) {
    const Euler e = matrix_to_euler(euler_to_matrix({40, tilt, 25}));
    EXPECT_NEAR(e.tilt, tilt, 1e-9 * std::max(1.0, tilt)) << tilt;
    EXPECT_NEAR(e.rot, 40, 1e-6) << tilt;
    EXPECT_NEAR(e.psi, 25, 1e-6) << tilt;
  }
}

TEST(Geometry, RotationsAreOrthonormal) {
  const Mat3 a = euler_to_matrix({12.5, 77.1, -140.2});
  EXPECT_LT(max_abs_diff(multiply(a, transpose(a)), identity3()), 1e-15);
  EXPECT_NEAR(rotation_distance_deg(a, multiply(a, axis_angle_matrix({1, 2, 3}, 7.0))), 7.0, 1e-9);
}

// Particle 1 of relion_7DDO/Refine3D/run_data.star and the matrix pwem stored for it.
TEST(Geometry, ScipionMatrixMatchesPwem) {
  ProjectionPose p;
  p.angles = {-74.75501, 151.743895, -49.54711};
  p.origin_x_A = 2.114738;
  p.origin_y_A = 4.146488;
  const Mat4 want{{{-0.8844389937516934, 0.44974631697272066, 0.1244825959761637, -0.0018296807989620014},
                   {0.35131117660057476, 0.8172857565087954, -0.45675425493734084, 1.377265558972196},
                   {-0.3071613965442459, -0.3602391463699061, -0.8808402998816924, -0.7144310583194149},
                   {0.0, 0.0, 0.0, 1.0}}};
  const Mat4 m = pose_to_scipion_matrix(p, 3.0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(m[i][j], want[i][j], 1e-12) << i << "," << j;
  const ProjectionPose back = scipion_matrix_to_pose(want, 3.0);
  EXPECT_NEAR(back.angles.rot, p.angles.rot, 1e-9);
  EXPECT_NEAR(back.angles.tilt, p.angles.tilt, 1e-9);
  EXPECT_NEAR(back.angles.psi, p.angles.psi, 1e-9);
  EXPECT_NEAR(back.origin_x_A, p.origin_x_A, 1e-9);
  EXPECT_NEAR(back.origin_y_A, p.origin_y_A, 1e-9);
  EXPECT_EQ(back.origin_z_A, 0.0);  // exactly: a STAR must not get a z column of rounding noise
}

}  // namespace
}  // namespace tessera
