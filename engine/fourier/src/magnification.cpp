#include "tessera/magnification.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace tessera {

namespace {
constexpr double kDeg = std::numbers::pi / 180.0;
}  // namespace

Mat2 multiply(const Mat2& a, const Mat2& b) {
  return {a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
          a[2] * b[1] + a[3] * b[3]};
}

Mat2 inverse(const Mat2& a) {
  const double det = a[0] * a[3] - a[1] * a[2];
  if (!(std::abs(det) > 0) || !std::isfinite(det)) throw std::invalid_argument("inverse: singular 2x2 matrix");
  return {a[3] / det, -a[1] / det, -a[2] / det, a[0] / det};
}

Mat2 anisotropic_magnification(double anisotropy_percent, double angle_deg) {
  const double c = std::cos(angle_deg * kDeg), s = std::sin(angle_deg * kDeg);
  const double a = 1 + anisotropy_percent / 200.0, b = 1 - anisotropy_percent / 200.0;
  // R diag(a, b) R^T with R = [[c, -s], [s, c]]
  return {a * c * c + b * s * s, (a - b) * c * s, (a - b) * c * s, a * s * s + b * c * c};
}

MagnificationSummary summarize_magnification(const Mat2& m) {
  // M^T M = [[p, q], [q, r]]: its eigenvalues are the squared singular values, its major
  // eigenvector the direction of the largest stretch.
  const double p = m[0] * m[0] + m[2] * m[2], q = m[0] * m[1] + m[2] * m[3], r = m[1] * m[1] + m[3] * m[3];
  const double half_sum = (p + r) / 2, root = std::sqrt(std::max(0.0, (p - r) * (p - r) / 4 + q * q));
  const double s1 = std::sqrt(half_sum + root), s2 = std::sqrt(std::max(0.0, half_sum - root));
  double angle = 0.5 * std::atan2(2 * q, p - r) / kDeg;
  if (angle < 0) angle += 180;
  return {(s1 + s2) / 2, s1 - s2, angle};
}

void reexpress_defocus(Particle& p, const Mat2& from, const Mat2& to) {
  // RELION's defocus form (CTF::initialise): A = Q^T diag(-dU, -dV) Q, Q = [[c, s], [-s, c]].
  const double phi = p.defocus_angle_deg * kDeg, c = std::cos(phi), s = std::sin(phi);
  const double du = p.defocus_u_A, dv = p.defocus_v_A;
  const Mat2 a{-du * c * c - dv * s * s, -(du - dv) * c * s, -(du - dv) * c * s, -du * s * s - dv * c * c};
  const Mat2 t = multiply(from, inverse(to));
  const Mat2 tt{t[0], t[2], t[1], t[3]};
  const Mat2 b = multiply(multiply(tt, a), t);
  const double axx = b[0], axy = (b[1] + b[2]) / 2, ayy = b[3];
  // Back to U >= V and the angle: Axx - Ayy = -(dU - dV) cos 2phi, 2 Axy = -(dU - dV) sin 2phi.
  const double mean = (axx + ayy) / 2, diff = std::sqrt((axx - ayy) * (axx - ayy) + 4 * axy * axy);
  p.defocus_u_A = -mean + diff / 2;
  p.defocus_v_A = -mean - diff / 2;
  double angle = diff > 0 ? 0.5 * std::atan2(-2 * axy, -(axx - ayy)) / kDeg : p.defocus_angle_deg;
  if (diff > 0 && angle < 0) angle += 180;
  p.defocus_angle_deg = angle;
}

}  // namespace tessera
