#include "tessera/pose_consensus.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

#include "tessera/random.hpp"

namespace tessera {

namespace {

constexpr double kDeg = std::numbers::pi / 180.0;

// The seeds, the particles that score them and those that refine the frame (align_frames).
constexpr long kFrameSeeds = 32;
constexpr long kFrameScoring = 2000;
constexpr long kFrameParticles = 20000;
constexpr int kFrameRounds = 30;
constexpr double kFrameInlierMedians = 3.0;
constexpr double kFrameInlierFloorDeg = 0.5;

double dot(const Vec3& u, const Vec3& v) {
  return u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
}

double norm(const Vec3& u) {
  return std::sqrt(dot(u, u));
}

Vec3 cross(const Vec3& u, const Vec3& v) {
  return {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
}

double trace(const Mat3& r) {
  return r[0][0] + r[1][1] + r[2][2];
}

// trace(x y) without forming the product.
double trace_of_product(const Mat3& x, const Mat3& y) {
  double t = 0;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) t += x[i][k] * y[k][i];
  return t;
}

// The angle of one rotation matrix: atan2(sin, cos) with 2 sin = |axial vector
// of r - r^T| and 2 cos = trace - 1.
double angle_of_deg(const Mat3& r) {
  const Vec3 axial{r[2][1] - r[1][2], r[0][2] - r[2][0], r[1][0] - r[0][1]};
  return std::atan2(norm(axial), trace(r) - 1.0) / kDeg;
}

// The angle between two directions, accurate near 0 and 180 deg.
double direction_angle_deg(const Vec3& u, const Vec3& v) {
  return std::atan2(norm(cross(u, v)), dot(u, v)) / kDeg;
}

Vec3 axis_of(const Mat3& r) {
  const Vec3 axial{r[2][1] - r[1][2], r[0][2] - r[2][0], r[1][0] - r[0][1]};
  const double n = norm(axial);
  if (n > 1e-6) return {axial[0] / n, axial[1] / n, axial[2] / n};
  if (trace(r) > 0) return {0, 0, 1};  // the identity: no axis
  // A half turn: r + I = 2 u u^T; its largest column is along u.
  Vec3 best{};
  double best_norm = -1;
  for (int j = 0; j < 3; ++j) {
    const Vec3 c{r[0][j] + (j == 0 ? 1.0 : 0.0), r[1][j] + (j == 1 ? 1.0 : 0.0), r[2][j] + (j == 2 ? 1.0 : 0.0)};
    if (norm(c) > best_norm) best = c, best_norm = norm(c);
  }
  return {best[0] / best_norm, best[1] / best_norm, best[2] / best_norm};
}

Mat3 scaled(const Mat3& a, double s) {
  Mat3 r = a;
  for (auto& row : r)
    for (double& x : row) x *= s;
  return r;
}

double determinant(const Mat3& a) {
  return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
         a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
}

// inverse(a)^T: the cofactor matrix over the determinant.
Mat3 inverse_transpose(const Mat3& a) {
  const double d = determinant(a);
  Mat3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3;
      c[i][j] = (a[i1][j1] * a[i2][j2] - a[i1][j2] * a[i2][j1]) / d;
    }
  return c;
}

// The rotation nearest to `s` in the Frobenius norm (its polar factor), by
// Newton's iteration x <- (x + x^-T) / 2. False when s is singular or has a
// negative determinant: its rotations disagree too much to have a mean.
bool polar_rotation(Mat3 s, Mat3* out) {
  if (!(determinant(s) > 0)) return false;
  for (int it = 0; it < 100; ++it) {
    const Mat3 t = inverse_transpose(s);
    Mat3 next{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) next[i][j] = 0.5 * (s[i][j] + t[i][j]);
    const double change = max_abs_diff(next, s);
    s = next;
    if (change < 1e-15) break;
  }
  *out = s;
  return true;
}

// Up to `count` indices spread evenly over [0, n).
std::vector<long> spread(long n, long count) {
  std::vector<long> idx;
  const long k = std::min(n, count);
  for (long i = 0; i < k; ++i) idx.push_back(i * n / k);
  return idx;
}

// For frame q and one particle's m = A^T B: the mate R minimizing angle(R q, m),
// returned as R^T m (q's estimate from this particle) with the residual angle.
double residual_deg(const Mat3& q, const Mat3& m, const SymmetryGroup& g, Mat3* estimate) {
  double best = -std::numeric_limits<double>::infinity();
  Mat3 chosen = m;
  for (const Mat3& r : g.matrices()) {
    const Mat3 x = multiply(transpose(r), m);
    const double t = trace_of_product(transpose(q), x);
    if (t > best) best = t, chosen = x;
  }
  if (estimate) *estimate = chosen;
  return rotation_angle_deg(q, chosen);
}

double median_residual_deg(const Mat3& q, const std::vector<Mat3>& m, const std::vector<long>& idx,
                           const SymmetryGroup& g) {
  std::vector<double> r;
  r.reserve(idx.size());
  for (long i : idx) r.push_back(residual_deg(q, m[static_cast<std::size_t>(i)], g, nullptr));
  return percentile(std::move(r), 50);
}

}  // namespace

double rotation_angle_deg(const Mat3& a, const Mat3& b) {
  return angle_of_deg(multiply(transpose(a), b));
}

MateDistance closest_mate(const Mat3& a, const Mat3& b, const SymmetryGroup& g) {
  const Mat3 c = multiply(transpose(a), b);
  const auto& mates = g.matrices();
  // The angle falls as the trace of c R rises: pick by trace, measure the best once.
  int best = 0;
  double best_trace = -std::numeric_limits<double>::infinity();
  for (std::size_t k = 0; k < mates.size(); ++k) {
    const double t = trace_of_product(c, mates[k]);
    if (t > best_trace) best_trace = t, best = static_cast<int>(k);
  }
  return {angle_of_deg(multiply(c, mates[static_cast<std::size_t>(best)])), best};
}

double symmetric_angular_distance_deg(const Mat3& a, const Mat3& b, const SymmetryGroup& g) {
  return closest_mate(a, b, g).angle_deg;
}

Vec3 view_direction(const Mat3& a) {
  return {a[2][0], a[2][1], a[2][2]};
}

double symmetric_view_distance_deg(const Mat3& a, const Mat3& b, const SymmetryGroup& g) {
  const Vec3 u = view_direction(a), w = view_direction(b);
  Vec3 best{};
  double best_dot = -std::numeric_limits<double>::infinity();
  for (const Mat3& r : g.matrices()) {
    const Vec3 v = multiply(transpose(r), w);  // the view of B R
    if (dot(u, v) > best_dot) best_dot = dot(u, v), best = v;
  }
  return direction_angle_deg(u, best);
}

double shift_distance_A(const ProjectionPose& a, const ProjectionPose& b) {
  return std::hypot(a.origin_x_A - b.origin_x_A, a.origin_y_A - b.origin_y_A);
}

Mat3 opposite_hand(const Mat3& a) {
  Mat3 r = a;
  for (int i = 0; i < 3; ++i) {
    r[i][2] = -r[i][2];
    r[2][i] = -r[2][i];
  }
  return r;  // r[2][2] flipped twice: unchanged, as in M a M
}

PoseDistances pose_distances(const std::vector<ProjectionPose>& a, const std::vector<ProjectionPose>& b,
                             const SymmetryGroup& g, const Mat3& frame) {
  if (a.size() != b.size()) throw std::invalid_argument("pose_distances: lists of different lengths");
  const Mat3 frame_t = transpose(frame);
  PoseDistances d;
  const std::size_t n = a.size();
  d.angle_deg.resize(n);
  d.view_deg.resize(n);
  d.shift_A.resize(n);
  d.mate.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Mat3 ma = euler_to_matrix(a[i].angles), mb = multiply(euler_to_matrix(b[i].angles), frame_t);
    const MateDistance md = closest_mate(ma, mb, g);
    d.angle_deg[i] = md.angle_deg;
    d.mate[i] = md.mate;
    d.view_deg[i] = symmetric_view_distance_deg(ma, mb, g);
    d.shift_A[i] = shift_distance_A(a[i], b[i]);
  }
  return d;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  const double f = pos - static_cast<double>(lo);
  return f == 0 ? values[lo] : values[lo] + f * (values[hi] - values[lo]);
}

RandomDistances random_pose_distances(const SymmetryGroup& g, int samples, std::uint64_t seed) {
  if (g.order() == 1) {
    // (t - sin t) / pi = 1/2 by Newton's method: the median of the angle of a random rotation.
    double t = 2.3;
    for (int it = 0; it < 50; ++it) t -= (t - std::sin(t) - std::numbers::pi / 2) / (1 - std::cos(t));
    return {t / kDeg, 90.0};
  }
  Rng rng(seed);
  std::vector<double> angles, views;
  for (int s = 0; s < samples; ++s) {
    const Mat3 a = euler_to_matrix(random_euler(rng)), b = euler_to_matrix(random_euler(rng));
    angles.push_back(symmetric_angular_distance_deg(a, b, g));
    views.push_back(symmetric_view_distance_deg(a, b, g));
  }
  return {percentile(std::move(angles), 50), percentile(std::move(views), 50)};
}

FrameAlignment align_frames(const std::vector<Mat3>& a, const std::vector<Mat3>& b, const SymmetryGroup& g) {
  if (a.size() != b.size() || a.empty()) throw std::invalid_argument("align_frames: empty or unequal lists");
  const long n = static_cast<long>(a.size());
  std::vector<Mat3> m(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) m[i] = multiply(transpose(a[i]), b[i]);

  const std::vector<long> scoring = spread(n, kFrameScoring), used = spread(n, kFrameParticles);
  Mat3 q = identity3();
  double best = std::numeric_limits<double>::infinity();
  for (long s : spread(n, kFrameSeeds)) {
    const Mat3& seed = m[static_cast<std::size_t>(s)];
    const double score = median_residual_deg(seed, m, scoring, g);
    if (score < best) best = score, q = seed;
  }

  FrameAlignment f;
  std::vector<double> residuals(used.size());
  std::vector<Mat3> estimates(used.size());
  for (int round = 0; round < kFrameRounds; ++round) {
    for (std::size_t k = 0; k < used.size(); ++k)
      residuals[k] = residual_deg(q, m[static_cast<std::size_t>(used[k])], g, &estimates[k]);
    const double cutoff = std::max(kFrameInlierMedians * percentile(residuals, 50), kFrameInlierFloorDeg);
    Mat3 sum{};
    long count = 0;
    for (std::size_t k = 0; k < used.size(); ++k) {
      if (residuals[k] > cutoff) continue;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) sum[i][j] += estimates[k][i][j];
      ++count;
    }
    Mat3 next;
    if (count == 0 || !polar_rotation(scaled(sum, 1.0 / static_cast<double>(count)), &next)) break;
    f.particles_used = count;
    const double change = rotation_angle_deg(q, next);
    q = next;
    if (change < 1e-10) break;
  }
  // Of the equivalent frames R Q, the one nearest the identity.
  double best_trace = -std::numeric_limits<double>::infinity();
  Mat3 nearest = q;
  for (const Mat3& r : g.matrices()) {
    const Mat3 x = multiply(r, q);
    if (trace(x) > best_trace) best_trace = trace(x), nearest = x;
  }
  f.rotation = nearest;
  f.angle_deg = angle_of_deg(nearest);
  f.axis = axis_of(nearest);
  f.median_residual_deg = median_residual_deg(nearest, m, used, g);
  return f;
}

}  // namespace tessera
