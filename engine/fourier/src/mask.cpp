#include "tessera/mask.hpp"

#include "tessera/fsc.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "tessera/error.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kFar = std::numeric_limits<double>::max();  // "no feature voxel on this line"

double raised_cosine(double t) { return 0.5 + 0.5 * std::cos(kPi * t); }

/// Exact squared distance transform of one line (Felzenszwalb & Huttenlocher,
/// "Distance transforms of sampled functions", 2012): out[q] = min over p of
/// (q - p)^2 + f[p], skipping samples with f == kFar. Strided in and out.
class LineTransform {
 public:
  explicit LineTransform(int n) : f_(n), v_(n), z_(n + 1) {}

  void run(double* data, int n, std::size_t stride) {
    for (int i = 0; i < n; ++i) f_[i] = data[i * stride];
    int k = -1;
    for (int q = 0; q < n; ++q) {
      if (f_[q] == kFar) continue;
      if (k < 0) {
        k = 0;
        v_[0] = q;
        z_[0] = -kFar;
        z_[1] = kFar;
        continue;
      }
      double s = intersection(q, v_[k]);
      while (s <= z_[k]) s = intersection(q, v_[--k]);  // z_[0] = -inf stops this
      ++k;
      v_[k] = q;
      z_[k] = s;
      z_[k + 1] = kFar;
    }
    if (k < 0) return;  // no feature on this line: leave kFar everywhere
    k = 0;
    for (int q = 0; q < n; ++q) {
      while (z_[k + 1] < q) ++k;
      const double dq = q - v_[k];
      data[q * stride] = dq * dq + f_[v_[k]];
    }
  }

 private:
  /// Abscissa where the parabolas rooted at q and p meet.
  double intersection(int q, int p) const {
    return ((f_[q] + double(q) * q) - (f_[p] + double(p) * p)) / (2.0 * (q - p));
  }
  std::vector<double> f_;
  std::vector<int> v_;
  std::vector<double> z_;
};

/// Squared Euclidean distance (voxels^2) from every voxel to the nearest voxel
/// where feature is true; kFar where there is none.
Grid<double> squared_distance(const std::vector<char>& feature, int nx, int ny, int nz) {
  Grid<double> d(nx, ny, nz, kFar);
  for (std::size_t i = 0; i < d.size(); ++i)
    if (feature[i]) d[i] = 0.0;
  LineTransform line(std::max({nx, ny, nz}));
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y) line.run(&d(0, y, z), nx, 1);
  for (int z = 0; z < nz; ++z)
    for (int x = 0; x < nx; ++x) line.run(&d(x, 0, z), ny, static_cast<std::size_t>(nx));
  if (nz > 1)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) line.run(&d(x, y, 0), nz, static_cast<std::size_t>(nx) * ny);
  return d;
}

void require_finite(double value, const char* what) {
  if (!std::isfinite(value)) throw InputError(fmt::format("threshold_mask: {} must be a finite number", what));
}

/// Step 2 of threshold_mask: dilate (extend_px > 0) or erode (< 0) in place.
void extend_binary(std::vector<char>& inside, int nx, int ny, int nz, double extend_px) {
  const double limit2 = extend_px * extend_px;
  if (extend_px > 0) {
    const Grid<double> d2 = squared_distance(inside, nx, ny, nz);
    for (std::size_t i = 0; i < inside.size(); ++i) inside[i] = d2[i] < limit2;
  } else if (extend_px < 0) {
    std::vector<char> outside(inside.size());
    for (std::size_t i = 0; i < inside.size(); ++i) outside[i] = !inside[i];
    const Grid<double> d2 = squared_distance(outside, nx, ny, nz);
    for (std::size_t i = 0; i < inside.size(); ++i) inside[i] = inside[i] && !(d2[i] < limit2);
  }
}

}  // namespace

RealGrid soft_sphere_mask(int box, double radius_px, double soft_edge_px) {
  if (box < 1) throw InputError(fmt::format("soft_sphere_mask: box must be at least 1, got {}", box));
  if (!(radius_px >= 0) || !std::isfinite(radius_px))
    throw InputError(fmt::format("soft_sphere_mask: radius_px must be >= 0, got {}", radius_px));
  if (!(soft_edge_px >= 0) || !std::isfinite(soft_edge_px))
    throw InputError(fmt::format("soft_sphere_mask: soft_edge_px must be >= 0, got {}", soft_edge_px));
  RealGrid m(box, box, box);
  const int c = box / 2;
  for (int z = 0; z < box; ++z)
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box; ++x) {
        const double d = std::sqrt(double(x - c) * (x - c) + double(y - c) * (y - c) + double(z - c) * (z - c));
        double value = 0.0;
        if (d <= radius_px)
          value = 1.0;
        else if (d < radius_px + soft_edge_px)
          value = raised_cosine((d - radius_px) / soft_edge_px);
        m(x, y, z) = static_cast<float>(value);
      }
  return m;
}

RealGrid threshold_mask(const RealGrid& v, double threshold, double extend_px, double soft_edge_px) {
  require_finite(threshold, "threshold");
  require_finite(extend_px, "extend_px");
  require_finite(soft_edge_px, "soft_edge_px");
  if (soft_edge_px < 0)
    throw InputError(fmt::format("threshold_mask: soft_edge_px must be >= 0, got {}", soft_edge_px));
  const int nx = v.nx(), ny = v.ny(), nz = v.nz();
  std::vector<char> inside(v.size());
  bool any = false;
  float vmax = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < v.size(); ++i) {
    inside[i] = v[i] >= threshold;
    any = any || inside[i];
    vmax = std::max(vmax, v[i]);
  }
  if (!any)
    throw InputError(fmt::format("threshold_mask: no voxel reaches the threshold {} (the map's maximum is {})",
                                 threshold, vmax));
  extend_binary(inside, nx, ny, nz, extend_px);

  RealGrid m(nx, ny, nz);
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = inside[i] ? 1.0f : 0.0f;
  if (soft_edge_px > 0) {
    const Grid<double> d2 = squared_distance(inside, nx, ny, nz);
    const double limit2 = soft_edge_px * soft_edge_px;
    for (std::size_t i = 0; i < m.size(); ++i)
      if (!inside[i] && d2[i] < limit2) m[i] = static_cast<float>(raised_cosine(std::sqrt(d2[i]) / soft_edge_px));
  }
  return m;
}

MaskStats mask_stats(const RealGrid& mask) {
  MaskStats s;
  if (mask.empty()) return s;
  s.min = s.max = mask[0];
  std::size_t above = 0;
  for (float value : mask.values()) {
    s.min = std::min<double>(s.min, value);
    s.max = std::max<double>(s.max, value);
    s.sum += value;
    above += value > 0.5f;
  }
  s.fraction_above_half = static_cast<double>(above) / static_cast<double>(mask.size());
  return s;
}

void check_mask(const RealGrid& mask, const std::string& name) {
  bool has_nan = false;
  for (float value : mask.values()) has_nan = has_nan || std::isnan(value);
  const MaskStats s = mask_stats(mask);
  constexpr double kTolerance = 1e-6;  // RELION's postprocess accepts this much outside [0, 1]
  if (has_nan || s.min < -kTolerance || s.max > 1.0 + kTolerance)
    throw InputError(fmt::format("{}: mask values must lie in [0, 1], found min {} max {}{}", name, s.min, s.max,
                                 has_nan ? " and NaN" : ""));
}

RealGrid map_mask(const RealGrid& map, double resolution_A, double voxel_A, double threshold_fraction, double near_A,
                  double far_A) {
  const RealGrid smooth = lowpass(map, std::max(resolution_A, 2.5 * voxel_A), voxel_A);
  const float peak = *std::max_element(smooth.values().begin(), smooth.values().end());
  return threshold_mask(smooth, threshold_fraction * peak, near_A / voxel_A, far_A / voxel_A);
}

}  // namespace tessera
