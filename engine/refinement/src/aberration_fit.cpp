// Per-optics-group odd and even aberrations from the particles' residual phases
// (aberration_fit.hpp; conventions in aberrations.hpp).
#include "tessera/aberration_fit.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <numbers>
#include <stdexcept>

#include "tessera/aberrations.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/parallel.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/projector.hpp"

namespace tessera {

namespace {

// The pixels of a group's half-complex grid that are fitted: within the resolution range, off
// the Nyquist lines; k in 1/A as the image has it (the CTF's argument) and M k (the Zernike
// polynomials' argument).
struct Pixels {
  std::vector<std::size_t> index;
  std::vector<double> kx, ky, mx, my;
  std::size_t size() const { return index.size(); }
};

Pixels fit_pixels(const OpticsGroup& g, int box, const AberrationFitOptions& o) {
  const double span_A = box * g.pixel_A;
  const double r_lo = span_A / o.min_res_A;
  const double r_hi = o.max_res_A ? std::min(box / 2.0 - 1, span_A / *o.max_res_A) : box / 2.0 - 1;
  const auto& m = g.mag_matrix;
  Pixels px;
  const int hx = box / 2 + 1;
  for (int y = 0; y < box; ++y)
    for (int x = 0; x < hx; ++x) {
      if (2 * x == box || 2 * y == box) continue;
      const double r = std::hypot(x, fourier_index(y, box));
      if (r < r_lo || r > r_hi) continue;
      const double kx = x / span_A, ky = fourier_index(y, box) / span_A;
      px.index.push_back(static_cast<std::size_t>(y) * hx + x);
      px.kx.push_back(kx);
      px.ky.push_back(ky);
      px.mx.push_back(m[0] * kx + m[1] * ky);
      px.my.push_back(m[2] * kx + m[3] * ky);
    }
  return px;
}

// Per pixel of a group: the odd sum z and the even sums (aberration_fit.hpp).
struct Sums {
  long particles = 0;
  double residual = 0, pixels = 0;  // sum |X - a CTF P|^2 over particles and pixels, and their number
  std::vector<std::complex<double>> z;
  std::vector<double> axx, axy, ayy, bx, by;
  void resize(std::size_t n) {
    z.assign(n, 0.0);
    for (auto* v : {&axx, &axy, &ayy, &bx, &by}) v->assign(n, 0.0);
  }
  void add(const Sums& o) {
    particles += o.particles;
    residual += o.residual, pixels += o.pixels;
    for (std::size_t j = 0; j < z.size(); ++j) z[j] += o.z[j];
    for (auto [a, b] : {std::pair{&axx, &o.axx}, {&axy, &o.axy}, {&ayy, &o.ayy}, {&bx, &o.bx}, {&by, &o.by}})
      for (std::size_t j = 0; j < a->size(); ++j) (*a)[j] += (*b)[j];
  }
};

enum class Pass { Odd, Even };

// One particle's terms, at its pose, against its reference.
void accumulate(const ComplexGrid& image, const ComplexGrid& projection, const Particle& p, const OpticsGroup& g,
                const Pixels& px, Pass pass, Sums& s) {
  CtfParams cp = CtfParams::of(p, g);
  cp.scale = 1;
  const Ctf ctf(cp);
  ++s.particles;
  for (std::size_t j = 0; j < px.size(); ++j) {
    const std::complex<double> x = image[px.index[j]], proj = projection[px.index[j]];
    const std::complex<double> m = p.scale * double(ctf(px.kx[j], px.ky[j])) * proj;
    s.residual += std::norm(x - m);
    s.pixels += 1;
    if (pass == Pass::Odd) {
      s.z[j] += std::conj(m) * x;
      continue;
    }
    const double chi = ctf.phase(px.kx[j], px.ky[j]), sn = std::sin(chi), cs = std::cos(chi);
    const double k2 = px.mx[j] * px.mx[j] + px.my[j] * px.my[j];
    const std::complex<double> e = p.scale * std::exp(-cp.bfactor_A2 / 4 * k2) * proj;
    const double zz = std::real(std::conj(e) * x), nr = std::norm(e);
    s.axx[j] += nr * sn * sn;
    s.axy[j] += nr * sn * cs;
    s.ayy[j] += nr * cs * cs;
    s.bx[j] -= zz * sn;
    s.by[j] -= zz * cs;
  }
}

// Sums per optics group (index into set.optics) over all particles.
std::vector<Sums> accumulate_set(const ParticleSet& set, const std::vector<Projector>& refs,
                                 const std::vector<Pixels>& pixels, int box, Pass pass, int threads) {
  std::vector<std::vector<Sums>> per_thread(static_cast<std::size_t>(threads), std::vector<Sums>(set.optics.size()));
  for (auto& t : per_thread)
    for (std::size_t gi = 0; gi < set.optics.size(); ++gi) t[gi].resize(pixels[gi].size());
  std::vector<ParticleImageReader> readers;
  std::vector<ComplexGrid> projections(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) readers.emplace_back(box);
  for_each_particle(static_cast<long>(set.particles.size()), threads, [&](int t, long i) {
    const Particle& p = set.particles[static_cast<std::size_t>(i)];
    const OpticsGroup& g = set.optics_of(p);
    const auto gi = static_cast<std::size_t>(&g - set.optics.data());
    const Projector& ref = refs[refs.size() == 2 ? static_cast<std::size_t>(p.half_set - 1) : 0];
    ComplexGrid& proj = projections[static_cast<std::size_t>(t)];
    expected_transform(ref, model_pose(*p.pose, g), nullptr, 1.0, proj);  // with the group's magnification
    accumulate(readers[static_cast<std::size_t>(t)].transform(set, p), proj, p, g, pixels[gi], pass,
               per_thread[static_cast<std::size_t>(t)][gi]);
  });
  std::vector<Sums> total = std::move(per_thread[0]);
  for (std::size_t t = 1; t < per_thread.size(); ++t)
    for (std::size_t gi = 0; gi < total.size(); ++gi) total[gi].add(per_thread[t][gi]);
  return total;
}

// Solves H c = g (n x n, row-major) with Jacobi scaling and partial pivoting; a direction
// without information gets 0.
std::vector<double> solve(std::vector<double> h, std::vector<double> g) {
  const std::size_t n = g.size();
  std::vector<double> d(n, 1.0);
  for (std::size_t i = 0; i < n; ++i) d[i] = h[i * n + i] > 0 ? 1.0 / std::sqrt(h[i * n + i]) : 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    g[i] *= d[i];
    for (std::size_t k = 0; k < n; ++k) h[i * n + k] *= d[i] * d[k];
  }
  std::vector<std::size_t> perm(n);
  for (std::size_t i = 0; i < n; ++i) perm[i] = i;
  std::vector<bool> dead(n, false);
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t best = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::abs(h[r * n + c]) > std::abs(h[best * n + c])) best = r;
    if (std::abs(h[best * n + c]) < 1e-12) {
      dead[c] = true;
      continue;
    }
    for (std::size_t k = 0; k < n; ++k) std::swap(h[c * n + k], h[best * n + k]);
    std::swap(g[c], g[best]);
    for (std::size_t r = c + 1; r < n; ++r) {
      const double f = h[r * n + c] / h[c * n + c];
      for (std::size_t k = c; k < n; ++k) h[r * n + k] -= f * h[c * n + k];
      g[r] -= f * g[c];
    }
  }
  std::vector<double> x(n, 0.0);
  for (std::size_t c = n; c-- > 0;) {
    if (dead[c]) continue;
    double v = g[c];
    for (std::size_t k = c + 1; k < n; ++k) v -= h[c * n + k] * x[k];
    x[c] = v / h[c * n + c];
  }
  for (std::size_t i = 0; i < n; ++i) x[i] *= d[i];
  return x;
}

// basis[i][j]: basis function i at fitted pixel j.
using Basis = std::vector<std::vector<double>>;

std::vector<double> phases(const Basis& b, const std::vector<double>& c, std::size_t pixels) {
  std::vector<double> phi(pixels, 0.0);
  for (std::size_t i = 0; i < b.size(); ++i)
    for (std::size_t j = 0; j < pixels; ++j) phi[j] += c[i] * b[i][j];
  return phi;
}

// Weighted least squares of the basis to per-pixel phases.
std::vector<double> linear_fit(const Basis& b, const std::vector<double>& phase, const std::vector<double>& w) {
  const std::size_t n = b.size();
  std::vector<double> h(n * n, 0.0), g(n, 0.0);
  for (std::size_t j = 0; j < phase.size(); ++j) {
    if (w[j] <= 0) continue;
    for (std::size_t i = 0; i < n; ++i) {
      g[i] += w[j] * phase[j] * b[i][j];
      for (std::size_t k = 0; k < n; ++k) h[i * n + k] += w[j] * b[i][j] * b[k][j];
    }
  }
  return solve(std::move(h), std::move(g));
}

// A per-pixel cost of the phase: its value, derivative and a non-negative curvature (Gauss-Newton).
using PixelCost = std::function<void(std::size_t j, double phi, double& f, double& d1, double& d2)>;

double total_cost(const PixelCost& cost, const std::vector<double>& phi) {
  double sum = 0, d1 = 0, d2 = 0;
  for (std::size_t j = 0; j < phi.size(); ++j) {
    double f = 0;
    cost(j, phi[j], f, d1, d2);
    sum += f;
  }
  return sum;
}

// Gauss-Newton with step halving on sum_j cost(j, (B c)_j), from the better of c0 and 0.
std::vector<double> polish(const Basis& b, std::vector<double> c, std::size_t pixels, const PixelCost& cost) {
  const std::size_t n = b.size();
  double now = total_cost(cost, phases(b, c, pixels));
  const std::vector<double> zero(n, 0.0);
  if (const double at_zero = total_cost(cost, phases(b, zero, pixels)); at_zero < now) c = zero, now = at_zero;
  for (int iter = 0; iter < 50; ++iter) {
    const std::vector<double> phi = phases(b, c, pixels);
    std::vector<double> h(n * n, 0.0), g(n, 0.0);
    for (std::size_t j = 0; j < pixels; ++j) {
      double f = 0, d1 = 0, d2 = 0;
      cost(j, phi[j], f, d1, d2);
      for (std::size_t i = 0; i < n; ++i) {
        g[i] -= d1 * b[i][j];
        for (std::size_t k = 0; k < n; ++k) h[i * n + k] += d2 * b[i][j] * b[k][j];
      }
    }
    const std::vector<double> step = solve(std::move(h), std::move(g));
    bool accepted = false;
    for (double t = 1; t > 1e-3; t /= 2) {
      std::vector<double> trial = c;
      for (std::size_t i = 0; i < n; ++i) trial[i] += t * step[i];
      const double next = total_cost(cost, phases(b, trial, pixels));
      if (next < now) {
        const double gain = now - next;
        c = std::move(trial), now = next, accepted = true;
        if (gain <= 1e-12 * std::abs(now)) return c;
        break;
      }
    }
    if (!accepted) break;
  }
  return c;
}

// Standard errors of the coefficients: sqrt of the diagonal of factor * H^-1, H the Gauss-Newton
// matrix of the cost at c (aberration_fit.hpp says which factor makes it the inverse Fisher information).
std::vector<double> standard_errors(const Basis& b, const std::vector<double>& c, std::size_t pixels,
                                    const PixelCost& cost, double factor) {
  const std::size_t n = b.size();
  const std::vector<double> phi = phases(b, c, pixels);
  std::vector<double> h(n * n, 0.0);
  for (std::size_t j = 0; j < pixels; ++j) {
    double f = 0, d1 = 0, d2 = 0;
    cost(j, phi[j], f, d1, d2);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < n; ++k) h[i * n + k] += d2 * b[i][j] * b[k][j];
  }
  std::vector<double> se(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> unit(n, 0.0);
    unit[i] = 1;
    se[i] = std::sqrt(std::max(0.0, factor * solve(h, unit)[i]));
  }
  return se;
}

Basis odd_basis(const Pixels& px, const OpticsGroup& g, const AberrationFitOptions& o) {
  Basis b;
  if (o.odd_order > 0) {
    for (int i = 0; i < odd_zernike_count(o.odd_order); ++i) {
      std::vector<double> col(px.size());
      for (std::size_t j = 0; j < px.size(); ++j) col[j] = zernike(odd_zernike_mode(i), px.mx[j], px.my[j]);
      b.push_back(std::move(col));
    }
    return b;
  }
  // Beam tilt alone: a shift (nuisance: kx, ky) and the tilt's -S |k|^2 k.
  const double s = beam_tilt_phase_scale(g.cs_mm, g.voltage_kV);
  b.assign(4, std::vector<double>(px.size()));
  for (std::size_t j = 0; j < px.size(); ++j) {
    const double k2 = px.mx[j] * px.mx[j] + px.my[j] * px.my[j];
    b[0][j] = px.mx[j];
    b[1][j] = px.my[j];
    b[2][j] = -s * k2 * px.mx[j];
    b[3][j] = -s * k2 * px.my[j];
  }
  return b;
}

Basis even_basis(const Pixels& px, int order) {
  Basis b;
  for (int i = 0; i < even_zernike_count(order); ++i) {
    std::vector<double> col(px.size());
    for (std::size_t j = 0; j < px.size(); ++j) col[j] = zernike(even_zernike_mode(i), px.mx[j], px.my[j]);
    b.push_back(std::move(col));
  }
  return b;
}

// The fitted phase on every pixel of the half grid but the Nyquist lines (for figures).
RealGrid fitted_map(const OpticsGroup& g, int box, const std::function<double(double, double)>& phase) {
  const int hx = box / 2 + 1;
  const double span_A = box * g.pixel_A;
  const auto& m = g.mag_matrix;
  RealGrid out(hx, box);
  for (int y = 0; y < box; ++y)
    for (int x = 0; x < hx; ++x) {
      if (2 * x == box || 2 * y == box) continue;
      const double kx = x / span_A, ky = fourier_index(y, box) / span_A;
      out(x, y) = static_cast<float>(phase(m[0] * kx + m[1] * ky, m[2] * kx + m[3] * ky));
    }
  return out;
}

void fit_odd(const Sums& s, const Pixels& px, const OpticsGroup& g, int box, const AberrationFitOptions& o,
             GroupAberrationFit& r) {
  const std::size_t n = px.size();
  std::vector<double> theta(n), w(n);
  r.odd_measured = RealGrid(box / 2 + 1, box);
  r.odd_weight = RealGrid(box / 2 + 1, box);
  for (std::size_t j = 0; j < n; ++j) {
    theta[j] = std::arg(s.z[j]);
    w[j] = std::abs(s.z[j]);
    r.odd_measured[px.index[j]] = static_cast<float>(theta[j]);
    r.odd_weight[px.index[j]] = static_cast<float>(w[j]);
  }
  const Basis b = odd_basis(px, g, o);
  // Cost: -Re(exp(-i phi) z) = -(zr cos phi + zi sin phi).
  const PixelCost cost = [&](std::size_t j, double phi, double& f, double& d1, double& d2) {
    const double zr = s.z[j].real(), zi = s.z[j].imag(), c = std::cos(phi), sn = std::sin(phi);
    f = -(zr * c + zi * sn);
    d1 = zr * sn - zi * c;
    d2 = w[j];
  };
  const std::vector<double> c = polish(b, linear_fit(b, theta, w), n, cost);
  // -log L = (2 cost + const) / sigma^2 (sigma^2 = E|noise|^2 per pixel): Fisher = 2 H / sigma^2.
  const double sigma2 = s.pixels > 0 ? s.residual / s.pixels : 0.0;
  const std::vector<double> se = standard_errors(b, c, n, cost, sigma2 / 2);
  const double tilt_scale = beam_tilt_phase_scale(g.cs_mm, g.voltage_kV);
  r.odd = true;
  r.beam_tilt_x_mrad = g.beam_tilt_x_mrad;
  r.beam_tilt_y_mrad = g.beam_tilt_y_mrad;
  r.odd_zernike = g.odd_zernike;
  if (o.odd_order > 0) {
    r.odd_change = c;
    r.odd_change_se = se;
    if (se.size() >= 5) r.beam_tilt_se_mrad = {3 * se[4] / tilt_scale, 3 * se[3] / tilt_scale};
    std::vector<double> total = effective_odd_zernike(g);
    if (total.size() < c.size()) total.resize(c.size(), 0.0);
    for (std::size_t i = 0; i < c.size(); ++i) total[i] += c[i];
    extract_beam_tilt(total, g.cs_mm, g.voltage_kV, r.beam_tilt_x_mrad, r.beam_tilt_y_mrad);
    r.odd_zernike = std::move(total);
  } else {
    r.beam_tilt_x_mrad += c[2];
    r.beam_tilt_y_mrad += c[3];
    r.beam_tilt_se_mrad = {se[2], se[3]};
    OpticsGroup change = g;
    change.odd_zernike.clear();
    change.beam_tilt_x_mrad = c[2], change.beam_tilt_y_mrad = c[3];
    r.odd_change = effective_odd_zernike(change);
  }
  const std::vector<double> change = r.odd_change;
  r.odd_fitted = fitted_map(g, box, [&](double x, double y) { return odd_zernike_sum(change, x, y); });
}

void fit_even(const Sums& s, const Pixels& px, const OpticsGroup& g, int box, const AberrationFitOptions& o,
              GroupAberrationFit& r) {
  const std::size_t n = px.size();
  std::vector<double> delta(n, 0.0), w(n, 0.0);
  r.even_measured = RealGrid(box / 2 + 1, box);
  r.even_weight = RealGrid(box / 2 + 1, box);
  for (std::size_t j = 0; j < n; ++j) {
    const double det = s.axx[j] * s.ayy[j] - s.axy[j] * s.axy[j];
    if (det == 0) continue;
    const double vx = (s.ayy[j] * s.bx[j] - s.axy[j] * s.by[j]) / det;
    const double vy = (s.axx[j] * s.by[j] - s.axy[j] * s.bx[j]) / det;
    delta[j] = std::atan2(vy, vx);
    w[j] = std::sqrt(std::abs(det));
    r.even_measured[px.index[j]] = static_cast<float>(delta[j]);
    r.even_weight[px.index[j]] = static_cast<float>(w[j]);
  }
  const Basis b = even_basis(px, o.even_order);
  // Cost v^T A v - 2 b^T v, v = (cos phi, sin phi).
  const PixelCost cost = [&](std::size_t j, double phi, double& f, double& d1, double& d2) {
    const double c = std::cos(phi), sn = std::sin(phi);
    const double ax = s.axx[j] * c + s.axy[j] * sn, ay = s.axy[j] * c + s.ayy[j] * sn;  // A v
    f = c * ax + sn * ay - 2 * (s.bx[j] * c + s.by[j] * sn);
    d1 = 2 * (-sn * ax + c * ay) - 2 * (-s.bx[j] * sn + s.by[j] * c);
    d2 = 2 * (sn * sn * s.axx[j] - 2 * sn * c * s.axy[j] + c * c * s.ayy[j]);
  };
  r.even_change = polish(b, linear_fit(b, delta, w), n, cost);
  // The cost is |X - model|^2 summed, up to a constant: -log L = cost / sigma^2, Fisher = H / sigma^2.
  r.even_change_se = standard_errors(b, r.even_change, n, cost, s.pixels > 0 ? s.residual / s.pixels : 0.0);
  r.even = true;
  r.even_zernike = g.even_zernike;
  if (r.even_zernike.size() < r.even_change.size()) r.even_zernike.resize(r.even_change.size(), 0.0);
  for (std::size_t i = 0; i < r.even_change.size(); ++i) r.even_zernike[i] += r.even_change[i];
  const std::vector<double> change = r.even_change;
  r.even_fitted = fitted_map(g, box, [&](double x, double y) { return even_zernike_sum(change, x, y); });
}

void check_fittable(const ParticleSet& set, std::size_t maps, const AberrationFitOptions& o) {
  if (!o.beam_tilt && o.odd_order <= 0 && o.even_order <= 0)
    throw std::invalid_argument("refine_aberrations: nothing to fit");
  if (o.odd_order < 0 || o.odd_order > 9 || o.even_order < 0 || o.even_order > 10)
    throw InputError(
        fmt::format("aberration orders: odd {} and even {} must lie within 0..9 and 0..10", o.odd_order, o.even_order));
  for (const Particle& p : set.particles) {
    if (!p.pose)
      throw InputError(fmt::format("particle {} has no pose: aberration fits need poses", p.image.to_string()));
    if (!has_ctf(p)) throw InputError(fmt::format("particle {} has no CTF (no rlnDefocusU/V)", p.image.to_string()));
    if (maps == 2 && p.half_set != 1 && p.half_set != 2)
      throw InputError(fmt::format("particle {} has no half set (rlnRandomSubset 1 or 2), needed with two half maps",
                                   p.image.to_string()));
  }
}

}  // namespace

AberrationRefinement refine_aberrations(const ParticleSet& set_in, std::span<const RealGrid* const> maps,
                                        const AberrationFitOptions& o) {
  if (maps.empty() || maps.size() > 2) throw std::invalid_argument("refine_aberrations: one map or two half maps");
  check_fittable(set_in, maps.size(), o);
  const int box = particle_box(set_in), threads = std::max(1, o.threads);
  std::vector<Projector> refs;
  for (const RealGrid* m : maps) refs.emplace_back(*m);
  ParticleSet set = set_in;  // its groups take the new odd values before the even pass
  std::vector<Pixels> pixels;
  for (const OpticsGroup& g : set.optics) pixels.push_back(fit_pixels(g, box, o));
  AberrationRefinement out;
  std::vector<long> fit_of(set.optics.size(), -1);  // index into out.groups
  for (const Particle& p : set.particles) {
    const auto gi = static_cast<std::size_t>(&set.optics_of(p) - set.optics.data());
    if (fit_of[gi] >= 0) continue;
    fit_of[gi] = static_cast<long>(out.groups.size());
    GroupAberrationFit f;
    const OpticsGroup& g = set.optics[gi];
    f.group = g.number;
    f.beam_tilt_x_mrad = g.beam_tilt_x_mrad, f.beam_tilt_y_mrad = g.beam_tilt_y_mrad;
    f.odd_zernike = g.odd_zernike, f.even_zernike = g.even_zernike;
    out.groups.push_back(std::move(f));
  }
  if (o.beam_tilt || o.odd_order > 0) {
    const std::vector<Sums> sums = accumulate_set(set, refs, pixels, box, Pass::Odd, threads);
    for (std::size_t gi = 0; gi < set.optics.size(); ++gi) {
      if (fit_of[gi] < 0) continue;
      GroupAberrationFit& r = out.groups[static_cast<std::size_t>(fit_of[gi])];
      r.particles = sums[gi].particles;
      fit_odd(sums[gi], pixels[gi], set.optics[gi], box, o, r);
      set.optics[gi].beam_tilt_x_mrad = r.beam_tilt_x_mrad;
      set.optics[gi].beam_tilt_y_mrad = r.beam_tilt_y_mrad;
      set.optics[gi].odd_zernike = r.odd_zernike;
    }
  }
  if (o.even_order > 0) {
    const std::vector<Sums> sums = accumulate_set(set, refs, pixels, box, Pass::Even, threads);
    for (std::size_t gi = 0; gi < set.optics.size(); ++gi) {
      if (fit_of[gi] < 0) continue;
      GroupAberrationFit& r = out.groups[static_cast<std::size_t>(fit_of[gi])];
      r.particles = sums[gi].particles;
      fit_even(sums[gi], pixels[gi], set.optics[gi], box, o, r);
    }
  }
  return out;
}

void apply_aberration_fits(ParticleSet& set, const AberrationRefinement& fits) {
  for (const GroupAberrationFit& f : fits.groups)
    for (OpticsGroup& g : set.optics) {
      if (g.number != f.group) continue;
      g.beam_tilt_x_mrad = f.beam_tilt_x_mrad;
      g.beam_tilt_y_mrad = f.beam_tilt_y_mrad;
      g.odd_zernike = f.odd_zernike;
      g.even_zernike = f.even_zernike;
    }
}

RealGrid centred_phase_image(const RealGrid& half, int sign) {
  const int box = half.ny(), hx = half.nx();
  if (hx != box / 2 + 1) throw std::invalid_argument("centred_phase_image: not a half-complex grid");
  RealGrid out(box, box);
  for (int y = 0; y < box; ++y)
    for (int x = 0; x < box; ++x) {
      const int kx = x - box / 2, ky = y - box / 2;
      const int hy = ((kx >= 0 ? ky : -ky) + box) % box;
      const float v = half(std::abs(kx) < hx ? std::abs(kx) : hx - 1, hy);
      out(x, y) = kx >= 0 ? v : static_cast<float>(sign) * v;
    }
  return out;
}

}  // namespace tessera
