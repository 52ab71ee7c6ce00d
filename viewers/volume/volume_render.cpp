#include "volume/volume_render.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace tessera::viewer {

int axis_size(const RealGrid& v, Axis axis) {
  return axis == Axis::X ? v.nx() : axis == Axis::Y ? v.ny() : v.nz();
}

const char* axis_name(Axis axis) {
  return axis == Axis::X ? "x" : axis == Axis::Y ? "y" : "z";
}

namespace {

// The picture's width and height for a slice or projection along `axis`.
std::pair<int, int> picture_shape(const RealGrid& v, Axis axis) {
  if (axis == Axis::Z) return {v.nx(), v.ny()};
  if (axis == Axis::Y) return {v.nx(), v.nz()};
  return {v.ny(), v.nz()};
}

// The voxel that picture pixel (i, j) shows on the plane `k` along `axis`.
float voxel_at(const RealGrid& v, Axis axis, int i, int j, int k) {
  if (axis == Axis::Z) return v(i, j, k);
  if (axis == Axis::Y) return v(i, k, j);
  return v(k, i, j);
}

// A ray's points c + A^T (x, y, t) = origin + t * dir, in voxels.
struct Ray {
  Vec3 origin, dir;
};

struct ViewFrame {
  Mat3 at;  // A^T: view frame -> volume frame
  Vec3 centre;
  int n;
  Ray ray(double i, double j) const {
    const double x = i - n / 2, y = j - n / 2;
    Ray r;
    for (int a = 0; a < 3; ++a) {
      r.origin[a] = centre[a] + at[a][0] * x + at[a][1] * y;
      r.dir[a] = at[a][2];
    }
    return r;
  }
};

ViewFrame view_frame(const RealGrid& v, const Euler& view) {
  return {transpose(euler_to_matrix(view)),
          {static_cast<double>(v.nx() / 2), static_cast<double>(v.ny() / 2), static_cast<double>(v.nz() / 2)},
          std::max({v.nx(), v.ny(), v.nz()})};
}

bool sample_at(const RealGrid& v, const Ray& r, double t, double& out) {
  return sample_trilinear(v, r.origin[0] + t * r.dir[0], r.origin[1] + t * r.dir[1], r.origin[2] + t * r.dir[2], out);
}

// Central-difference gradient of the trilinear field over +-1 voxel, in the
// volume frame (one-sided at the box's faces).
Vec3 gradient(const RealGrid& v, const Vec3& p) {
  const std::array<int, 3> n{v.nx(), v.ny(), v.nz()};
  Vec3 g{0, 0, 0};
  for (int a = 0; a < 3; ++a) {
    Vec3 lo = p, hi = p;
    lo[a] = std::clamp(p[a] - 1.0, 0.0, n[a] - 1.0);
    hi[a] = std::clamp(p[a] + 1.0, 0.0, n[a] - 1.0);
    double vlo = 0, vhi = 0;
    if (hi[a] > lo[a] && sample_trilinear(v, lo[0], lo[1], lo[2], vlo) && sample_trilinear(v, hi[0], hi[1], hi[2], vhi))
      g[a] = (vhi - vlo) / (hi[a] - lo[a]);
  }
  return g;
}

}  // namespace

RealGrid volume_slice(const RealGrid& v, Axis axis, int index) {
  if (index < 0 || index >= axis_size(v, axis)) throw std::out_of_range("volume_slice: index outside the volume");
  const auto [w, h] = picture_shape(v, axis);
  RealGrid out(w, h);
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < w; ++i) out(i, j) = voxel_at(v, axis, i, j, index);
  return out;
}

RealGrid volume_projection(const RealGrid& v, Axis axis) {
  const auto [w, h] = picture_shape(v, axis);
  RealGrid out(w, h);
  const int depth = axis_size(v, axis);
  for (int j = 0; j < h; ++j)
    for (int i = 0; i < w; ++i) {
      double sum = 0;
      for (int k = 0; k < depth; ++k) sum += voxel_at(v, axis, i, j, k);
      out(i, j) = static_cast<float>(sum);
    }
  return out;
}

bool sample_trilinear(const RealGrid& v, double x, double y, double z, double& out) {
  constexpr double eps = 1e-9;
  if (x < -eps || y < -eps || z < -eps || x > v.nx() - 1 + eps || y > v.ny() - 1 + eps || z > v.nz() - 1 + eps)
    return false;
  const auto base = [](double c, int n) { return std::clamp(static_cast<int>(std::floor(c)), 0, std::max(0, n - 2)); };
  const int x0 = base(x, v.nx()), y0 = base(y, v.ny()), z0 = base(z, v.nz());
  const int x1 = std::min(x0 + 1, v.nx() - 1), y1 = std::min(y0 + 1, v.ny() - 1), z1 = std::min(z0 + 1, v.nz() - 1);
  const double fx = std::clamp(x - x0, 0.0, 1.0), fy = std::clamp(y - y0, 0.0, 1.0), fz = std::clamp(z - z0, 0.0, 1.0);
  const auto lerp = [](double a, double b, double t) { return a + (b - a) * t; };
  const double c00 = lerp(v(x0, y0, z0), v(x1, y0, z0), fx), c10 = lerp(v(x0, y1, z0), v(x1, y1, z0), fx);
  const double c01 = lerp(v(x0, y0, z1), v(x1, y0, z1), fx), c11 = lerp(v(x0, y1, z1), v(x1, y1, z1), fx);
  out = lerp(lerp(c00, c10, fy), lerp(c01, c11, fy), fz);
  return true;
}

RealGrid render_mip(const RealGrid& v, const Euler& view) {
  const ViewFrame f = view_frame(v, view);
  const float background = *std::min_element(v.values().begin(), v.values().end());
  RealGrid out(f.n, f.n);
  for (int j = 0; j < f.n; ++j)
    for (int i = 0; i < f.n; ++i) {
      const Ray r = f.ray(i, j);
      double best = -std::numeric_limits<double>::infinity(), s = 0;
      for (int t = -f.n / 2; t <= f.n / 2; ++t)
        if (sample_at(v, r, t, s)) best = std::max(best, s);
      out(i, j) = std::isfinite(best) ? static_cast<float>(best) : background;
    }
  return out;
}

namespace {

// Walks the ray of every picture pixel (oversample per voxel) to the surface
// (volume_render.hpp) and calls hit(I, J, p, shade) with the surface point p
// (voxels) where it finds one.
template <class Hit>
void march_surface(const RealGrid& v, const Euler& view, double level, int oversample, Hit&& hit) {
  const ViewFrame f = view_frame(v, view);
  const Mat3 a = euler_to_matrix(view);  // volume frame -> view frame
  constexpr double step = 0.25;
  const int size = f.n * oversample;
  const auto point = [](const Ray& r, double t) {
    return Vec3{r.origin[0] + t * r.dir[0], r.origin[1] + t * r.dir[1], r.origin[2] + t * r.dir[2]};
  };
  for (int jj = 0; jj < size; ++jj)
    for (int ii = 0; ii < size; ++ii) {
      const Ray r = f.ray((ii + 0.5) / oversample - 0.5, (jj + 0.5) / oversample - 0.5);
      double s = 0;
      bool have_prev = false;
      for (double t = f.n / 2.0; t >= -f.n / 2.0; t -= step) {
        if (!sample_at(v, r, t, s)) {
          have_prev = false;
          continue;
        }
        if (s < level) {
          have_prev = true;
          continue;
        }
        // Bisection between the last point below the level (t + step) and this one.
        double below = t + step, above = t;
        if (have_prev)
          for (int k = 0; k < 6; ++k) {
            const double mid = 0.5 * (below + above);
            double m = 0;
            (sample_at(v, r, mid, m) && m >= level ? above : below) = mid;
          }
        const Vec3 p = point(r, have_prev ? above : t);
        const Vec3 g = multiply(a, gradient(v, p));
        const double norm = std::sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
        const Vec3 normal = norm > 0 ? Vec3{-g[0] / norm, -g[1] / norm, -g[2] / norm} : Vec3{0, 0, 1};
        hit(ii, jj, p, static_cast<float>(surface_shade(normal)));
        break;
      }
    }
}

}  // namespace

double surface_shade(const Vec3& n) {
  const Vec3& l = kSurfaceLight;
  Vec3 h{l[0], l[1], l[2] + 1};
  const double hn = std::sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
  for (double& c : h) c /= hn;
  const double diffuse = std::max(0.0, n[0] * l[0] + n[1] * l[1] + n[2] * l[2]);
  const double specular = std::pow(std::max(0.0, n[0] * h[0] + n[1] * h[1] + n[2] * h[2]), 24);
  return std::min(1.0, 0.1 + 0.75 * diffuse + 0.3 * specular);
}

RealGrid render_surface(const RealGrid& v, const Euler& view, double level, int oversample) {
  const int n = std::max({v.nx(), v.ny(), v.nz()}) * oversample;
  RealGrid out(n, n);
  march_surface(v, view, level, oversample, [&](int i, int j, const Vec3&, float shade) { out(i, j) = shade; });
  return out;
}

SurfaceRendering render_surface(const RealGrid& v, const Euler& view, double level, const RealGrid& values,
                                int oversample) {
  const int n = std::max({v.nx(), v.ny(), v.nz()}) * oversample;
  SurfaceRendering out{RealGrid(n, n), RealGrid(n, n, 1, std::numeric_limits<float>::quiet_NaN())};
  const auto nearest = [](double c, int size) { return std::clamp(static_cast<int>(std::lround(c)), 0, size - 1); };
  march_surface(v, view, level, oversample, [&](int i, int j, const Vec3& p, float shade) {
    out.shade(i, j) = shade;
    out.values(i, j) = values(nearest(p[0], v.nx()), nearest(p[1], v.ny()), nearest(p[2], v.nz()));
  });
  return out;
}

}  // namespace tessera::viewer
