#include "tessera/orientations.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tessera {
namespace {
constexpr double kDeg = std::numbers::pi / 180.0;
}

int direction_count(double step_deg) {
  const double step = step_deg * kDeg;
  return std::max(12, static_cast<int>(std::lround(4.0 * std::numbers::pi / (step * step))));
}

std::vector<Mat3> global_orientation_grid(double step_deg) {
  const int n = direction_count(step_deg);
  const int npsi = std::max(4, static_cast<int>(std::lround(360.0 / step_deg)));
  const double golden = std::numbers::pi * (3.0 - std::sqrt(5.0));
  std::vector<Mat3> out;
  out.reserve(static_cast<std::size_t>(n) * npsi);
  for (int i = 0; i < n; ++i) {
    const double z = 1.0 - (2.0 * i + 1.0) / n;
    Euler e;
    e.tilt = std::acos(z) / kDeg;
    e.rot = std::remainder(golden * i, 2 * std::numbers::pi) / kDeg;
    for (int j = 0; j < npsi; ++j) {
      e.psi = -180.0 + 360.0 * j / npsi;
      out.push_back(euler_to_matrix(e));
    }
  }
  return out;
}

std::vector<Mat3> local_orientation_grid(const Mat3& centre, double step_deg, int half_width) {
  std::vector<Mat3> out;
  for (int a = -half_width; a <= half_width; ++a)
    for (int b = -half_width; b <= half_width; ++b)
      for (int c = -half_width; c <= half_width; ++c) {
        if (a == 0 && b == 0 && c == 0) {
          out.push_back(centre);
          continue;
        }
        const Vec3 v{double(a), double(b), double(c)};
        const double len = std::sqrt(double(a * a + b * b + c * c));
        out.push_back(multiply(axis_angle_matrix(v, len * step_deg), centre));
      }
  return out;
}

}  // namespace tessera
