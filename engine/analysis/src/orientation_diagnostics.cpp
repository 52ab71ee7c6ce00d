#include "tessera/orientation_diagnostics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kDeg = kPi / 180.0;

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// ---- conical FSC accumulation --------------------------------------------------

/// Cell size of the lookup that lists, for each region of the sphere, the cone
/// axes that may hold a voxel there. Candidates are taken within the cone's
/// half-angle plus kLookupMargin of the cell centre (more than any point of an
/// igloo cell is from its centre: about 0.75 cell widths, 1 near the poles),
/// then each voxel is tested exactly, so the lookup only costs time.
constexpr double kLookupDeg = 2.0;
constexpr double kLookupMargin = 1.5 * kLookupDeg;

/// Fewest voxels over which a (cone, shell) correlation is taken: the FSC of n
/// complex voxels of pure noise has a standard deviation of about 1/sqrt(2n) (0.22
/// at n = 10), so fewer make a cone's low shells, and its 0.143 crossing, noise.
constexpr long kMinConeVoxels = 10;

struct ConeLookup {
  EqualAreaGrid grid{kLookupDeg};
  std::vector<std::vector<int>> axes;  ///< per lookup cell: candidate cone axes
};

ConeLookup make_lookup(const std::vector<Vec3>& axes, double half_angle_deg) {
  ConeLookup lookup;
  const double cos_reach = std::cos(std::min(90.0, half_angle_deg + kLookupMargin) * kDeg);
  lookup.axes.resize(static_cast<std::size_t>(lookup.grid.size()));
  for (int c = 0; c < lookup.grid.size(); ++c) {
    const Vec3 centre = lookup.grid.centre(c);
    for (std::size_t d = 0; d < axes.size(); ++d)
      if (std::abs(dot(centre, axes[d])) >= cos_reach) lookup.axes[static_cast<std::size_t>(c)].push_back(static_cast<int>(d));
  }
  return lookup;
}

/// Sums over (cone, shell) bins, and over shells for the global FSC.
struct ConeSums {
  int shells = 0;
  std::vector<double> num, den_a, den_b;  ///< [direction * shells + shell]
  std::vector<long> voxels;
  std::vector<double> g_num, g_a, g_b;    ///< [shell]

  ConeSums(int directions, int nshell)
      : shells(nshell),
        num(static_cast<std::size_t>(directions) * nshell, 0.0),
        den_a(num.size(), 0.0),
        den_b(num.size(), 0.0),
        voxels(num.size(), 0),
        g_num(static_cast<std::size_t>(nshell), 0.0),
        g_a(g_num.size(), 0.0),
        g_b(g_num.size(), 0.0) {}

  void add(const ConeSums& o) {
    for (std::size_t i = 0; i < num.size(); ++i)
      num[i] += o.num[i], den_a[i] += o.den_a[i], den_b[i] += o.den_b[i], voxels[i] += o.voxels[i];
    for (std::size_t i = 0; i < g_num.size(); ++i) g_num[i] += o.g_num[i], g_a[i] += o.g_a[i], g_b[i] += o.g_b[i];
  }
};

/// Accumulates the voxels of z sections [z0, z1) of the half-transforms.
void accumulate(const ComplexGrid& fa, const ComplexGrid& fb, const std::vector<Vec3>& axes, const ConeLookup& lookup,
                double cos_half, int z0, int z1, ConeSums& s) {
  const int hx = fa.nx(), ny = fa.ny(), nz = fa.nz();
  const int nshell = s.shells;
  const std::size_t ndir = axes.size();
  for (int z = z0; z < z1; ++z) {
    const long kz = fourier_index(z, nz);
    for (int y = 0; y < ny; ++y) {
      const long ky = fourier_index(y, ny);
      for (int x = 0; x < hx; ++x) {
        const long r2 = long(x) * x + ky * ky + kz * kz;
        const double r = std::sqrt(static_cast<double>(r2));
        const int k = static_cast<int>(std::lround(r));
        if (k >= nshell) continue;
        const std::size_t i = fa.index(x, y, z);
        const std::complex<double> za(fa[i]), zb(fb[i]);
        const double n = za.real() * zb.real() + za.imag() * zb.imag(), a = std::norm(za), b = std::norm(zb);
        s.g_num[static_cast<std::size_t>(k)] += n, s.g_a[static_cast<std::size_t>(k)] += a,
            s.g_b[static_cast<std::size_t>(k)] += b;
        auto add = [&](std::size_t d) {
          const std::size_t bin = d * static_cast<std::size_t>(nshell) + static_cast<std::size_t>(k);
          s.num[bin] += n, s.den_a[bin] += a, s.den_b[bin] += b, ++s.voxels[bin];
        };
        if (r2 == 0) {
          for (std::size_t d = 0; d < ndir; ++d) add(d);
          continue;
        }
        const Vec3 u{x / r, ky / r, kz / r};
        for (int d : lookup.axes[static_cast<std::size_t>(lookup.grid.cell_of(u))])
          if (std::abs(dot(u, axes[static_cast<std::size_t>(d)])) >= cos_half) add(static_cast<std::size_t>(d));
      }
    }
  }
}

double correlation(double num, double a, double b) { return a > 0 && b > 0 ? num / std::sqrt(a * b) : 0.0; }

void require_pair(const RealGrid& a, const RealGrid& b) {
  const bool cube = a.nx() == a.ny() && a.nx() == a.nz() && a.nx() >= 4;
  if (!cube)
    throw InputError(fmt::format("conical_fsc: needs cubic volumes at least 4 wide, got {}x{}x{}", a.nx(), a.ny(), a.nz()));
  if (!a.same_shape(b))
    throw InputError(fmt::format("conical_fsc: the half maps differ in shape: {}x{}x{} and {}x{}x{}", a.nx(), a.ny(),
                                 a.nz(), b.nx(), b.ny(), b.nz()));
}

/// The indices of `count` of `n` items, drawn without replacement (partial Fisher-Yates).
std::vector<std::size_t> random_subset(std::size_t n, std::size_t count, std::uint64_t seed) {
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  Rng rng(seed);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t j = i + static_cast<std::size_t>(uniform01(rng) * static_cast<double>(n - i));
    std::swap(idx[i], idx[std::min(j, n - 1)]);
  }
  idx.resize(count);
  return idx;
}

}  // namespace

Vec3 view_direction(const Euler& e) {
  const Mat3 a = euler_to_matrix(e);
  return {a[2][0], a[2][1], a[2][2]};  // A^T (0, 0, 1): the third row of A
}

Euler direction_to_euler(const Vec3& n) {
  const double z = std::clamp(n[2], -1.0, 1.0);
  const double rot = (n[0] == 0 && n[1] == 0) ? 0.0 : std::atan2(n[1], n[0]) / kDeg;
  return {rot, std::acos(z) / kDeg, 0.0};
}

EqualAreaGrid::EqualAreaGrid(double bin_deg) {
  if (!(bin_deg > 0 && bin_deg <= 90))
    throw std::invalid_argument(fmt::format("EqualAreaGrid: bin_deg must lie in (0, 90], got {}", bin_deg));
  const int rings = std::max(1, static_cast<int>(std::lround(180.0 / bin_deg)));
  const double step = kPi / rings;
  first_.push_back(0);
  for (int i = 0; i < rings; ++i) {
    const double theta = (i + 0.5) * step;
    const int cells = std::max(1, static_cast<int>(std::lround(2 * kPi * std::sin(theta) / step)));
    first_.push_back(first_.back() + cells);
  }
  const double total = first_.back();
  for (int i = 0; i <= rings; ++i) z_edges_.push_back(1.0 - 2.0 * first_[static_cast<std::size_t>(i)] / total);
  z_edges_.back() = -1.0;
}

int EqualAreaGrid::cell_of(const Vec3& u) const {
  const int rings = static_cast<int>(first_.size()) - 1;
  // The ring whose z range holds u[2]: z_edges_ descends, so find the first edge below it.
  const auto it = std::upper_bound(z_edges_.begin() + 1, z_edges_.end() - 1, u[2], std::greater<double>());
  const int ring = std::clamp(static_cast<int>(it - z_edges_.begin()) - 1, 0, rings - 1);
  const int cells = first_[static_cast<std::size_t>(ring) + 1] - first_[static_cast<std::size_t>(ring)];
  double phi = std::atan2(u[1], u[0]);
  if (phi < 0) phi += 2 * kPi;
  const int j = std::min(cells - 1, static_cast<int>(phi / (2 * kPi) * cells));
  return first_[static_cast<std::size_t>(ring)] + j;
}

Vec3 EqualAreaGrid::centre(int cell) const {
  const auto it = std::upper_bound(first_.begin(), first_.end(), cell);
  const std::size_t ring = static_cast<std::size_t>(it - first_.begin()) - 1;
  const int cells = first_[ring + 1] - first_[ring];
  const double z = 0.5 * (z_edges_[ring] + z_edges_[ring + 1]);
  const double phi = (cell - first_[ring] + 0.5) * 2 * kPi / cells;
  const double s = std::sqrt(std::max(0.0, 1 - z * z));
  return {s * std::cos(phi), s * std::sin(phi), z};
}

double EqualAreaGrid::cell_solid_angle_sr() const { return 4 * kPi / size(); }

ViewDistribution view_distribution(std::span<const Euler> poses, double bin_deg) {
  ViewDistribution out{EqualAreaGrid(bin_deg), {}};
  out.counts.assign(static_cast<std::size_t>(out.grid.size()), 0);
  for (const Euler& e : poses) ++out.counts[static_cast<std::size_t>(out.grid.cell_of(view_direction(e)))];
  return out;
}

std::vector<Vec3> hemisphere_directions(int count) {
  if (count < 1) throw std::invalid_argument(fmt::format("hemisphere_directions: count must be >= 1, got {}", count));
  const double golden = kPi * (3.0 - std::sqrt(5.0));  // 2 pi (1 - 1 / phi)
  std::vector<Vec3> out(static_cast<std::size_t>(count));
  for (int j = 0; j < count; ++j) {
    const double z = (j + 0.5) / count, s = std::sqrt(1 - z * z), phi = golden * j;
    out[static_cast<std::size_t>(j)] = {s * std::cos(phi), s * std::sin(phi), z};
  }
  return out;
}

ScfResult sampling_compensation_factor(std::span<const Euler> poses, const ScfOptions& options) {
  const double radius = options.fourier_radius_px;
  if (poses.empty()) throw std::invalid_argument("sampling_compensation_factor: no poses");
  if (!(radius > 0) || !std::isfinite(radius))
    throw std::invalid_argument(fmt::format("sampling_compensation_factor: fourier_radius_px must be > 0, got {}", radius));
  if (options.max_particles && *options.max_particles < 1)
    throw std::invalid_argument("sampling_compensation_factor: max_particles must be >= 1");
  const int points = options.directions.value_or(
      static_cast<int>(std::min(5000.0, std::round(2 * kPi * radius * radius))));

  std::vector<Vec3> views;
  const std::size_t use = options.max_particles ? std::min(poses.size(), static_cast<std::size_t>(*options.max_particles))
                                                : poses.size();
  if (use < poses.size()) {
    for (std::size_t i : random_subset(poses.size(), use, options.seed)) views.push_back(view_direction(poses[i]));
  } else {
    for (const Euler& e : poses) views.push_back(view_direction(e));
  }

  ScfResult r;
  r.particles_used = static_cast<long>(views.size());
  r.fourier_radius_px = radius;
  r.points = hemisphere_directions(points);
  r.sampling.assign(r.points.size(), 0);
  const double half_width = 0.5 / radius;  // R |u . n| < 1/2
  for (std::size_t j = 0; j < r.points.size(); ++j)
    for (const Vec3& n : views)
      if (std::abs(dot(r.points[j], n)) < half_width) ++r.sampling[j];

  double sum = 0, inv_sum = 0;
  long sampled = 0;
  for (long s : r.sampling) {
    sum += static_cast<double>(s);
    if (s > 0) inv_sum += 1.0 / static_cast<double>(s), ++sampled;
  }
  const double m = static_cast<double>(r.sampling.size());
  r.mean_sampling = sum / m;
  r.fraction_unsampled = 1.0 - sampled / m;
  if (sampled == 0) return r;  // no point sampled (only with a tiny R): SCF and SCF* are 0
  r.scf = 1.0 / (r.mean_sampling * (inv_sum / static_cast<double>(sampled)));
  const double q_over_p = r.fraction_unsampled / (1.0 - r.fraction_unsampled);
  r.scf_star = r.scf / (1.0 + q_over_p * r.mean_sampling * r.scf / 2.0);
  return r;
}

ConicalFsc conical_fsc(const RealGrid& half_a, const RealGrid& half_b, const ConicalFscOptions& options) {
  require_pair(half_a, half_b);
  if (!(options.cone_half_angle_deg > 0 && options.cone_half_angle_deg <= 90))
    throw InputError(fmt::format("conical_fsc: the cone half-angle must lie in (0, 90] degrees, got {}",
                                 options.cone_half_angle_deg));
  if (options.directions < 1)
    throw InputError(fmt::format("conical_fsc: needs at least 1 direction, got {}", options.directions));
  const int n = half_a.nx(), nshell = n / 2 + 1, threads = std::max(1, options.threads);

  // Both transforms with the origin at voxel 0: the FSC needs no centring (a
  // common shift changes both phases alike).
  const RealFft plan = RealFft::plan_3d(n, n, n, threads);
  ComplexGrid fa, fb;
  plan.forward(half_a, fa);
  plan.forward(half_b, fb);

  ConicalFsc out;
  out.cone_half_angle_deg = options.cone_half_angle_deg;
  out.directions = hemisphere_directions(options.directions);
  const ConeLookup lookup = make_lookup(out.directions, options.cone_half_angle_deg);
  const double cos_half = std::cos(options.cone_half_angle_deg * kDeg);

  std::vector<ConeSums> parts(static_cast<std::size_t>(threads), ConeSums(options.directions, nshell));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    const int z0 = n * t / threads, z1 = n * (t + 1) / threads;
    workers.emplace_back([&, t, z0, z1] {
      accumulate(fa, fb, out.directions, lookup, cos_half, z0, z1, parts[static_cast<std::size_t>(t)]);
    });
  }
  for (std::thread& w : workers) w.join();
  ConeSums& s = parts[0];
  for (std::size_t t = 1; t < parts.size(); ++t) s.add(parts[t]);

  out.global.resize(static_cast<std::size_t>(nshell));
  for (std::size_t k = 0; k < out.global.size(); ++k) out.global[k] = correlation(s.g_num[k], s.g_a[k], s.g_b[k]);
  const int top = n / 2;
  for (std::size_t d = 0; d < out.directions.size(); ++d) {
    std::vector<double> curve(static_cast<std::size_t>(nshell));
    std::vector<long> count(static_cast<std::size_t>(nshell));
    double area = 0;
    for (int k = 0; k < nshell; ++k) {
      const std::size_t bin = d * static_cast<std::size_t>(nshell) + static_cast<std::size_t>(k);
      count[static_cast<std::size_t>(k)] = s.voxels[bin];
      curve[static_cast<std::size_t>(k)] =
          s.voxels[bin] >= kMinConeVoxels ? correlation(s.num[bin], s.den_a[bin], s.den_b[bin])
                                          : out.global[static_cast<std::size_t>(k)];
      if (k >= 1) area += curve[static_cast<std::size_t>(k)];
    }
    out.area.push_back(area / top);
    out.curves.push_back(std::move(curve));
    out.voxels.push_back(std::move(count));
  }
  const auto [lo, hi] = std::minmax_element(out.area.begin(), out.area.end());
  out.worst = static_cast<int>(lo - out.area.begin());
  out.best = static_cast<int>(hi - out.area.begin());
  if (*hi > 0) out.cfar = std::max(0.0, *lo) / *hi;
  return out;
}

}  // namespace tessera
