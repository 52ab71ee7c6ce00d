#pragma once
/// Rotations in RELION's convention.
///
/// Euler angles are ZYZ (rot, tilt, psi) in degrees. euler_to_matrix gives
/// RELION's matrix A (src/euler.cpp Euler_angles2matrix): it maps volume
/// coordinates to image coordinates, so a projection at pose A is
///   p(x, y) = integral of V(A^T (x, y, z)) dz
/// and the 2D Fourier component (kx, ky) of the projection is the volume's
/// 3D Fourier component at A^T (kx, ky, 0) (central-slice theorem).
///
/// Scipion stores a projection pose as a 4x4 transform in pixels:
///   M = [[A^T, A^T s], [0 0 0 1]],  s = origin_A / pixel_A
/// (pwem/relion convert31 Reader.__setParticleTransformProj).
#include <array>

namespace tessera {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<std::array<double, 3>, 3>;
using Mat4 = std::array<std::array<double, 4>, 4>;

struct Euler {
  double rot = 0, tilt = 0, psi = 0;  ///< degrees, ZYZ, RELION convention
};

Mat3 euler_to_matrix(const Euler& e);
/// Inverse of euler_to_matrix; tilt in [0, 180], rot and psi in (-180, 180].
/// At tilt 0 or 180 only rot + psi (or rot - psi) is defined; psi is set to 0.
Euler matrix_to_euler(const Mat3& a);

Mat3 transpose(const Mat3& a);
Mat3 multiply(const Mat3& a, const Mat3& b);
Vec3 multiply(const Mat3& a, const Vec3& v);
Mat3 identity3();
/// Rotation by angle_deg about a unit axis (right-handed, active).
Mat3 axis_angle_matrix(const Vec3& axis, double angle_deg);
/// Angle in degrees of the rotation a^T b (0 for equal rotations).
double rotation_distance_deg(const Mat3& a, const Mat3& b);
/// Largest absolute element difference.
double max_abs_diff(const Mat3& a, const Mat3& b);

/// Pose of one particle: RELION angles plus origin in Angstrom.
struct ProjectionPose {
  Euler angles;
  double origin_x_A = 0, origin_y_A = 0, origin_z_A = 0;
};

/// Scipion's 4x4 projection transform from a pose (shifts in pixels).
Mat4 pose_to_scipion_matrix(const ProjectionPose& pose, double pixel_A);
/// Inverse of pose_to_scipion_matrix. A z shift below 1e-9 px (rounding noise
/// of a 2D particle's matrix) is returned as exactly 0.
ProjectionPose scipion_matrix_to_pose(const Mat4& m, double pixel_A);

}  // namespace tessera
