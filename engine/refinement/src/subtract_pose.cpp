// Subtractor's pose: the local refinement before subtracting (PoseRefinement)
// and what the pose's noise leaves per shell (estimate_left's pose term).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numbers>

#include "tessera/forward_model.hpp"
#include "tessera/subtract.hpp"

namespace tessera {
namespace {

constexpr double kDegree = std::numbers::pi / 180;
constexpr int kPoseParameters = 5;  // origin x, y (px); rotations about x, y, z (rad)

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// Residual sum of squares of x ~ sum_j beta_j cols[j] (normal equations by
/// Gauss-Jordan; the 1-3 columns of a pose candidate). A column that is a
/// combination of the others is left out.
double residual(const std::vector<const std::vector<double>*>& cols, const std::vector<double>& x) {
  const std::size_t p = cols.size();
  std::vector<std::vector<double>> m(p, std::vector<double>(p + 1));
  double scale = 0;
  for (std::size_t i = 0; i < p; ++i) {
    for (std::size_t j = 0; j < p; ++j) m[i][j] = dot(*cols[i], *cols[j]);
    m[i][p] = dot(*cols[i], x);
    scale = std::max(scale, m[i][i]);
  }
  // With beta solving the normal equations, rss = x.x - beta . (C^T x).
  std::vector<double> rhs(p);
  for (std::size_t i = 0; i < p; ++i) rhs[i] = m[i][p];
  std::vector<bool> used(p, false);
  for (std::size_t c = 0; c < p; ++c) {
    std::size_t best = c;
    for (std::size_t r = c + 1; r < p; ++r)
      if (std::abs(m[r][c]) > std::abs(m[best][c])) best = r;
    if (!(std::abs(m[best][c]) > 1e-12 * scale)) continue;
    std::swap(m[c], m[best]);
    used[c] = true;
    const double pivot = m[c][c];
    for (double& v : m[c]) v /= pivot;
    for (std::size_t r = 0; r < p; ++r)
      if (r != c && m[r][c] != 0) {
        const double f = m[r][c];
        for (std::size_t k = 0; k <= p; ++k) m[r][k] -= f * m[c][k];
      }
  }
  double explained = 0;
  for (std::size_t c = 0; c < p; ++c)
    if (used[c]) explained += m[c][p] * rhs[c];
  return dot(x, x) - explained;
}

/// Inverse of a symmetric positive definite n x n matrix (row-major) by
/// Gauss-Jordan; false when it is singular.
bool invert(std::vector<double>& a, int n) {
  std::vector<double> inv(static_cast<std::size_t>(n * n), 0.0);
  for (int i = 0; i < n; ++i) inv[static_cast<std::size_t>(i * n + i)] = 1;
  double scale = 0;
  for (int i = 0; i < n; ++i) scale = std::max(scale, std::abs(a[static_cast<std::size_t>(i * n + i)]));
  auto at = [n](std::vector<double>& m, int r, int c) -> double& { return m[static_cast<std::size_t>(r * n + c)]; };
  for (int c = 0; c < n; ++c) {
    int best = c;
    for (int r = c + 1; r < n; ++r)
      if (std::abs(at(a, r, c)) > std::abs(at(a, best, c))) best = r;
    if (!(std::abs(at(a, best, c)) > 1e-12 * scale)) return false;
    for (int k = 0; k < n; ++k) std::swap(at(a, c, k), at(a, best, k)), std::swap(at(inv, c, k), at(inv, best, k));
    const double pivot = at(a, c, c);
    for (int k = 0; k < n; ++k) at(a, c, k) /= pivot, at(inv, c, k) /= pivot;
    for (int r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = at(a, r, c);
      for (int k = 0; k < n; ++k) at(a, r, k) -= f * at(a, c, k), at(inv, r, k) -= f * at(inv, c, k);
    }
  }
  a = std::move(inv);
  return true;
}

/// The rotation about image axis `axis` (0 x, 1 y, 2 z) by angle_deg, applied
/// after the pose's: A' = E A.
ProjectionPose rotated(const ProjectionPose& pose, int axis, double angle_deg) {
  Vec3 u{0, 0, 0};
  u[static_cast<std::size_t>(axis)] = 1;
  ProjectionPose out = pose;
  out.angles = matrix_to_euler(multiply(axis_angle_matrix(u, angle_deg), euler_to_matrix(pose.angles)));
  return out;
}

/// The minimum of the parabola through (-1, lo), (0, mid), (1, hi), in [-0.5, 0.5]; 0 when it opens downwards.
double parabola_step(double lo, double mid, double hi) {
  const double curvature = lo - 2 * mid + hi;
  return curvature > 0 ? std::clamp(0.5 * (lo - hi) / curvature, -0.5, 0.5) : 0.0;
}

}  // namespace

ProjectionPose Subtractor::refine_pose(const Half& h, const ComplexGrid& image, const ProjectionPose& start,
                                       const RealGrid* ctf, const std::array<double, 4>& mag) const {
  const PoseRefinement& r = *opt_.refine_pose;
  const std::vector<std::size_t> region = fit_region(start);  // one region for every candidate
  const std::vector<double> x = band_passed(image, region), ones(region.size(), 1.0);
  const bool whole = opt_.fit_model == FitModel::Whole;
  // With the Separate model the kept region stays at the given pose.
  const std::vector<double> kept_fixed = whole ? std::vector<double>{} : band_passed(model_transforms(h, start, ctf, mag).keep, region);
  const int hx = box_ / 2 + 1;

  // Models at a rotation with the origin left out; a candidate origin is a phase.
  auto unshifted = [&](const ProjectionPose& q) {
    ProjectionPose centred = q;
    centred.origin_x_A = centred.origin_y_A = 0;
    Models m = model_transforms(h, centred, ctf, mag);
    if (whole)
      for (std::size_t i = 0; i < m.remove.size(); ++i) m.remove[i] += m.keep[i];
    return m.remove;  // Whole: both regions; Separate: the removed one
  };
  auto cost = [&](const ComplexGrid& base, double ox_A, double oy_A) {
    ComplexGrid f = base;
    for (int y = 0; y < box_; ++y)
      for (int xk = 0; xk < hx; ++xk)
        f[static_cast<std::size_t>(y) * hx + xk] *=
            origin_phase(xk, fourier_index(y, box_), box_, ox_A / pixel_A_, oy_A / pixel_A_);
    const std::vector<double> model = band_passed(f, region);
    std::vector<const std::vector<double>*> cols{&model};
    if (!whole) cols.push_back(&kept_fixed);
    if (opt_.fit_offset) cols.push_back(&ones);
    return residual(cols, x);
  };

  ProjectionPose pose = start;
  ComplexGrid base = unshifted(pose);
  double best = cost(base, pose.origin_x_A, pose.origin_y_A);
  // The origin on a grid around the current one, then a parabola per axis.
  auto search_shift = [&](double range_A, double step_A) {
    const int n = static_cast<int>(std::floor(range_A / step_A + 1e-9));
    const double ox = pose.origin_x_A, oy = pose.origin_y_A;
    std::map<std::pair<int, int>, double> costs;
    std::pair<int, int> at{0, 0};
    costs[at] = best;
    for (int j = -n; j <= n; ++j)
      for (int i = -n; i <= n; ++i) {
        if (i == 0 && j == 0) continue;
        const double c = cost(base, ox + i * step_A, oy + j * step_A);
        costs[{i, j}] = c;
        if (c < costs[at]) at = {i, j};
      }
    const auto [bi, bj] = at;
    auto c_at = [&](int i, int j) -> double {
      const auto it = costs.find({i, j});
      return it == costs.end() ? INFINITY : it->second;
    };
    double di = 0, dj = 0;
    if (std::isfinite(c_at(bi - 1, bj)) && std::isfinite(c_at(bi + 1, bj)))
      di = parabola_step(c_at(bi - 1, bj), c_at(bi, bj), c_at(bi + 1, bj));
    if (std::isfinite(c_at(bi, bj - 1)) && std::isfinite(c_at(bi, bj + 1)))
      dj = parabola_step(c_at(bi, bj - 1), c_at(bi, bj), c_at(bi, bj + 1));
    double nx = ox + bi * step_A, ny = oy + bj * step_A, c = c_at(bi, bj);
    if (di != 0 || dj != 0) {
      const double c2 = cost(base, nx + di * step_A, ny + dj * step_A);
      if (c2 < c) nx += di * step_A, ny += dj * step_A, c = c2;
    }
    if (c < best) pose.origin_x_A = nx, pose.origin_y_A = ny, best = c;
  };
  search_shift(r.shift_range_A, r.shift_step_A);

  // Rotations about the image's axes: walk downhill up to angle_steps steps, then a parabola;
  // then the origin again. Rotations about x and y move off-centre density as a shift does, so
  // the two are alternated, in rounds of halving steps, until a round changes nothing.
  double angle_step = r.angle_step_deg, shift_step = r.shift_step_A / 2;
  for (int round = 0; round < 3; ++round, angle_step /= 2, shift_step /= 2) {
    const double before = best;
    const int steps = round == 0 ? r.angle_steps : std::min(1, r.angle_steps);
    for (int axis = 0; axis < 3 && steps > 0; ++axis) {
      std::map<int, double> costs{{0, best}};
      auto c_at = [&](int t) -> double {
        if (std::abs(t) > steps) return INFINITY;
        auto it = costs.find(t);
        if (it == costs.end()) {
          const ProjectionPose q = rotated(pose, axis, t * angle_step);
          it = costs.emplace(t, cost(unshifted(q), q.origin_x_A, q.origin_y_A)).first;
        }
        return it->second;
      };
      const int dir = c_at(1) < c_at(-1) ? 1 : -1;
      int t = 0;
      while (std::abs(t) < steps && c_at(t + dir) < c_at(t)) t += dir;
      double step = t;
      if (std::isfinite(c_at(t - 1)) && std::isfinite(c_at(t + 1)))
        step += parabola_step(c_at(t - 1), c_at(t), c_at(t + 1));
      if (step == 0) continue;
      const ProjectionPose q = rotated(pose, axis, step * angle_step);
      const double c = step == t ? c_at(t) : cost(unshifted(q), q.origin_x_A, q.origin_y_A);
      if (c < best) pose = q, best = c;
    }
    base = unshifted(pose);
    search_shift(shift_step, shift_step);
    if (!(best < before)) break;
  }
  return pose;
}

std::vector<double> Subtractor::pose_left_by_shell(const Half& h, const Models& m, const ProjectionPose& pose,
                                                   const RealGrid* ctf, const std::array<double, 4>& mag,
                                                   double noise_variance) const {
  const std::size_t shells = static_cast<std::size_t>(box_ / 2 + 1);
  std::vector<double> left(shells, 0.0);
  const int hx = box_ / 2 + 1;
  const bool whole = opt_.fit_model == FitModel::Whole;
  // Derivatives of the removed (r) and fitted (f) models in the 5 parameters:
  // origin x, y in pixels (the phase's derivative), rotations about the
  // image's x, y, z in radians (forward differences of 0.25 degree).
  constexpr double kAngleDeg = 0.25;
  std::array<ComplexGrid, kPoseParameters> jr, jf;
  for (int axis = 0; axis < 3; ++axis) {
    const Models moved = model_transforms(h, rotated(pose, axis, kAngleDeg), ctf, mag);
    ComplexGrid& dr = jr[static_cast<std::size_t>(2 + axis)];
    ComplexGrid& df = jf[static_cast<std::size_t>(2 + axis)];
    dr = moved.remove, df = moved.remove;
    for (std::size_t i = 0; i < dr.size(); ++i) {
      dr[i] = (moved.remove[i] - m.remove[i]) / static_cast<float>(kAngleDeg * kDegree);
      df[i] = whole ? dr[i] + (moved.keep[i] - m.keep[i]) / static_cast<float>(kAngleDeg * kDegree) : dr[i];
    }
  }
  for (int axis = 0; axis < 2; ++axis) {
    ComplexGrid& dr = jr[static_cast<std::size_t>(axis)];
    ComplexGrid& df = jf[static_cast<std::size_t>(axis)];
    dr = m.remove, df = m.remove;
    for (int y = 0; y < box_; ++y)
      for (int x = 0; x < hx; ++x) {
        const std::size_t i = static_cast<std::size_t>(y) * hx + x;
        const double k = axis == 0 ? x : fourier_index(y, box_);
        const cfloat d{0.0f, static_cast<float>(2 * std::numbers::pi * k / box_)};
        dr[i] = d * m.remove[i];
        df[i] = whole ? d * (m.remove[i] + m.keep[i]) : dr[i];
      }
  }
  // The Fisher matrix of the fitted model over the fit band, the templates'
  // power weighted by their signal's share (the subtract gains).
  auto signal_share = [&](std::size_t i) { return subtract_gain_.size() > 0 ? double(subtract_gain_[i]) : 1.0; };
  std::vector<double> g(kPoseParameters * kPoseParameters, 0.0);
  for (std::size_t i = 0; i < m.remove.size(); ++i) {
    const double w = band_[i] * mates_[i] * signal_share(i);
    if (w == 0) continue;
    for (int a = 0; a < kPoseParameters; ++a)
      for (int b = a; b < kPoseParameters; ++b)
        g[static_cast<std::size_t>(a * kPoseParameters + b)] +=
            w * std::real(std::conj(jf[static_cast<std::size_t>(a)][i]) * jf[static_cast<std::size_t>(b)][i]);
  }
  for (int a = 0; a < kPoseParameters; ++a)
    for (int b = 0; b < a; ++b)
      g[static_cast<std::size_t>(a * kPoseParameters + b)] = g[static_cast<std::size_t>(b * kPoseParameters + a)];
  if (!invert(g, kPoseParameters)) return left;
  // Per pixel J_r^H G^-1 J_r, times box^2 v (the pose's covariance is box^2 v G^-1 / s'^2).
  const double n2v = double(box_) * box_ * noise_variance;
  for (std::size_t i = 0; i < m.remove.size(); ++i) {
    const auto k = static_cast<std::size_t>(shell_[i]);
    if (k >= shells) continue;
    double q = 0;
    for (int a = 0; a < kPoseParameters; ++a)
      for (int b = 0; b < kPoseParameters; ++b)
        q += g[static_cast<std::size_t>(a * kPoseParameters + b)] *
             std::real(std::conj(jr[static_cast<std::size_t>(a)][i]) * jr[static_cast<std::size_t>(b)][i]);
    left[k] += n2v * mates_[i] * signal_share(i) * q;
  }
  return left;
}

}  // namespace tessera
