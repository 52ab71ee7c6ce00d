#include "tessera/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tessera {
namespace {
constexpr double kDeg = std::numbers::pi / 180.0;
}

Mat3 euler_to_matrix(const Euler& e) {
  const double ca = std::cos(e.rot * kDeg), sa = std::sin(e.rot * kDeg);
  const double cb = std::cos(e.tilt * kDeg), sb = std::sin(e.tilt * kDeg);
  const double cg = std::cos(e.psi * kDeg), sg = std::sin(e.psi * kDeg);
  const double cc = cb * ca, cs = cb * sa, sc = sb * ca, ss = sb * sa;
  return Mat3{{{cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb},
               {-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb},
               {sc, ss, cb}}};
}

Euler matrix_to_euler(const Mat3& a) {
  Euler e;
  // sin(tilt) from the row's other two elements (A[2] = (sin t cos r, sin t sin r, cos t)), not
  // from sqrt(1 - cos^2): near tilt 0 or 180 that loses half the digits (a tilt of 1e-5 deg
  // came back about 0.2% off, one of 1e-7 deg as 0, its rotation moved into rot).
  const double cb = std::clamp(a[2][2], -1.0, 1.0);
  const double sb = std::hypot(a[2][0], a[2][1]);
  if (sb > 1e-9) {
    e.tilt = std::atan2(sb, cb) / kDeg;
    e.rot = std::atan2(a[2][1], a[2][0]) / kDeg;
    e.psi = std::atan2(a[1][2], -a[0][2]) / kDeg;
  } else {
    // Gimbal lock: A = Rz(psi) * Ry(tilt) * Rz(rot) collapses to one z rotation.
    e.tilt = cb > 0 ? 0.0 : 180.0;
    e.psi = 0.0;
    e.rot = cb > 0 ? std::atan2(a[0][1], a[0][0]) / kDeg : std::atan2(-a[0][1], -a[0][0]) / kDeg;
  }
  auto wrap = [](double d) { return d <= -180.0 ? d + 360.0 : d; };
  e.rot = wrap(e.rot);
  e.psi = wrap(e.psi);
  return e;
}

Mat3 transpose(const Mat3& a) {
  Mat3 t{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) t[i][j] = a[j][i];
  return t;
}

Mat3 multiply(const Mat3& a, const Mat3& b) {
  Mat3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) c[i][j] += a[i][k] * b[k][j];
  return c;
}

Vec3 multiply(const Mat3& a, const Vec3& v) {
  Vec3 r{};
  for (int i = 0; i < 3; ++i) r[i] = a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2];
  return r;
}

Mat3 identity3() { return Mat3{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}; }

Mat3 axis_angle_matrix(const Vec3& axis, double angle_deg) {
  const double n = std::sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]);
  const double x = axis[0] / n, y = axis[1] / n, z = axis[2] / n;
  const double c = std::cos(angle_deg * kDeg), s = std::sin(angle_deg * kDeg), t = 1 - c;
  return Mat3{{{t * x * x + c, t * x * y - s * z, t * x * z + s * y},
               {t * x * y + s * z, t * y * y + c, t * y * z - s * x},
               {t * x * z - s * y, t * y * z + s * x, t * z * z + c}}};
}

double rotation_distance_deg(const Mat3& a, const Mat3& b) {
  const Mat3 r = multiply(transpose(a), b);
  const double c = std::clamp((r[0][0] + r[1][1] + r[2][2] - 1.0) / 2.0, -1.0, 1.0);
  return std::acos(c) / kDeg;
}

double max_abs_diff(const Mat3& a, const Mat3& b) {
  double m = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m = std::max(m, std::abs(a[i][j] - b[i][j]));
  return m;
}

Mat4 pose_to_scipion_matrix(const ProjectionPose& pose, double pixel_A) {
  const Mat3 at = transpose(euler_to_matrix(pose.angles));
  const Vec3 s{pose.origin_x_A / pixel_A, pose.origin_y_A / pixel_A, pose.origin_z_A / pixel_A};
  const Vec3 t = multiply(at, s);
  Mat4 m{};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) m[i][j] = at[i][j];
    m[i][3] = t[i];
  }
  m[3] = {0, 0, 0, 1};
  return m;
}

ProjectionPose scipion_matrix_to_pose(const Mat4& m, double pixel_A) {
  Mat3 at{};
  Vec3 t{};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) at[i][j] = m[i][j];
    t[i] = m[i][3];
  }
  const Mat3 a = transpose(at);
  const Vec3 s = multiply(a, t);
  ProjectionPose p;
  p.angles = matrix_to_euler(a);
  p.origin_x_A = s[0] * pixel_A;
  p.origin_y_A = s[1] * pixel_A;
  // A 2D particle's z origin comes back as rounding noise (~1e-16): keep it 0.
  p.origin_z_A = std::abs(s[2]) < 1e-9 ? 0.0 : s[2] * pixel_A;
  return p;
}

}  // namespace tessera
