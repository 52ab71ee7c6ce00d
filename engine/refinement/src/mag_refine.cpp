// Fitting the optics groups' anisotropic magnification (mag_refine.hpp): per particle, the normal
// equations of the displacement E k along the projection's gradient; per group their sum, solved.
#include "tessera/mag_refine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <stdexcept>

#include "tessera/alignment.hpp"
#include "tessera/ctf_refine.hpp"  // ctf_fit_disk
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/parallel.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/projector.hpp"

namespace tessera {
namespace {

constexpr float kGradientStepPx = 0.5f;  // central difference of the projection at +-0.5 pixel

// One particle's (or a group's) normal equations in E = (E00, E01, E10, E11).
struct Normal {
  std::array<double, 16> a{};
  std::array<double, 4> b{};
  long particles = 0;
  void add(const Normal& o) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] += o.a[i];
    for (std::size_t i = 0; i < b.size(); ++i) b[i] += o.b[i];
    particles += o.particles;
  }
};

// The disk's frequencies moved by +-h along x and y: where the gradient is sampled.
struct GradientPoints {
  std::vector<float> x_plus, x_minus, y_plus, y_minus;
  explicit GradientPoints(const FourierDisk& d) {
    for (std::size_t j = 0; j < d.size(); ++j) {
      x_plus.push_back(d.kx[j] + kGradientStepPx);
      x_minus.push_back(d.kx[j] - kGradientStepPx);
      y_plus.push_back(d.ky[j] + kGradientStepPx);
      y_minus.push_back(d.ky[j] - kGradientStepPx);
    }
  }
};

struct Scratch {
  std::vector<cfloat> p, xp, xm, yp, ym;
};

Normal particle_equations(const ComplexGrid& image, const Particle& particle, const OpticsGroup& g,
                          const Projector& ref, const FourierDisk& disk, const GradientPoints& at,
                          const std::vector<double>& inv_sigma2, Scratch& s) {
  const ModelPose pose = model_pose(*particle.pose, g);
  const ParticleOnDisk d = put_on_disk(image, model_ctf(particle, g, disk.box), inv_sigma2, disk, pose.origin_x_px,
                                       pose.origin_y_px, std::nullopt);
  const Mat3 b = model_matrix(pose);
  const std::size_t n = disk.size();
  for (auto* v : {&s.p, &s.xp, &s.xm, &s.yp, &s.ym}) v->resize(n);
  ref.project_points(b, disk.kx.data(), disk.ky.data(), n, s.p.data());
  ref.project_points(b, at.x_plus.data(), disk.ky.data(), n, s.xp.data());
  ref.project_points(b, at.x_minus.data(), disk.ky.data(), n, s.xm.data());
  ref.project_points(b, disk.kx.data(), at.y_plus.data(), n, s.yp.data());
  ref.project_points(b, disk.kx.data(), at.y_minus.data(), n, s.ym.data());
  // The contrast a: least squares of X against c P.
  double cross = 0, power = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const std::complex<double> m = double(d.ctf[j]) * std::complex<double>(s.p[j]);
    cross += d.weight[j] * std::real(std::conj(m) * std::complex<double>(d.x[j]));
    power += d.weight[j] * std::norm(m);
  }
  Normal out;
  if (!(power > 0) || !(cross > 0)) return out;
  const double a = cross / power;
  const double inv_2h = 1.0 / (2.0 * kGradientStepPx);
  for (std::size_t j = 0; j < n; ++j) {
    const double q = a * d.ctf[j], w = d.weight[j];
    const std::complex<double> r = std::complex<double>(d.x[j]) - q * std::complex<double>(s.p[j]);
    const std::complex<double> gx = inv_2h * (std::complex<double>(s.xp[j]) - std::complex<double>(s.xm[j]));
    const std::complex<double> gy = inv_2h * (std::complex<double>(s.yp[j]) - std::complex<double>(s.ym[j]));
    const double kx = disk.kx[j], ky = disk.ky[j];
    const std::array<std::complex<double>, 4> jac{q * gx * kx, q * gx * ky, q * gy * kx, q * gy * ky};
    for (std::size_t u = 0; u < 4; ++u) {
      out.b[u] += w * std::real(std::conj(jac[u]) * r);
      for (std::size_t v = u; v < 4; ++v) out.a[u * 4 + v] += w * std::real(std::conj(jac[u]) * jac[v]);
    }
  }
  for (std::size_t u = 0; u < 4; ++u)
    for (std::size_t v = 0; v < u; ++v) out.a[u * 4 + v] = out.a[v * 4 + u];
  out.particles = 1;
  return out;
}

// E from the normal equations (Gaussian elimination with partial pivoting); nullopt when singular.
std::optional<std::array<double, 4>> solve(Normal e) {
  std::array<double, 4> x{};
  double scale = 0;
  for (std::size_t i = 0; i < 4; ++i) scale = std::max(scale, std::abs(e.a[i * 5]));
  if (!(scale > 0)) return std::nullopt;
  for (std::size_t c = 0; c < 4; ++c) {
    std::size_t pivot = c;
    for (std::size_t r = c + 1; r < 4; ++r)
      if (std::abs(e.a[r * 4 + c]) > std::abs(e.a[pivot * 4 + c])) pivot = r;
    if (!(std::abs(e.a[pivot * 4 + c]) > 1e-12 * scale)) return std::nullopt;
    for (std::size_t k = 0; k < 4; ++k) std::swap(e.a[c * 4 + k], e.a[pivot * 4 + k]);
    std::swap(e.b[c], e.b[pivot]);
    for (std::size_t r = c + 1; r < 4; ++r) {
      const double f = e.a[r * 4 + c] / e.a[c * 4 + c];
      for (std::size_t k = c; k < 4; ++k) e.a[r * 4 + k] -= f * e.a[c * 4 + k];
      e.b[r] -= f * e.b[c];
    }
  }
  for (std::size_t c = 4; c-- > 0;) {
    double v = e.b[c];
    for (std::size_t k = c + 1; k < 4; ++k) v -= e.a[c * 4 + k] * x[k];
    x[c] = v / e.a[c * 4 + c];
  }
  return x;
}

void check_particles(const ParticleSet& set, std::size_t maps) {
  for (const Particle& p : set.particles) {
    if (!p.pose)
      throw InputError(fmt::format("particle {} has no pose: the magnification fit needs poses", p.image.to_string()));
    if (!has_ctf(p)) throw InputError(fmt::format("particle {} has no CTF (no rlnDefocusU/V)", p.image.to_string()));
    if (maps == 2 && p.half_set != 1 && p.half_set != 2)
      throw InputError(fmt::format("particle {} has no half set (rlnRandomSubset 1 or 2), needed with two half maps",
                                   p.image.to_string()));
  }
}

}  // namespace

std::vector<MagnificationGroupFit> refine_magnification(ParticleSet& set, std::span<const RealGrid* const> maps,
                                                        const MagnificationRefineOptions& o) {
  if (maps.empty() || maps.size() > 2) throw std::invalid_argument("refine_magnification: one map or two half maps");
  if (o.passes < 1) throw std::invalid_argument("refine_magnification: at least one pass");
  if (set.particles.empty()) throw InputError("the magnification fit needs particles");
  check_particles(set, maps.size());
  const int box = particle_box(set);
  const double pixel_A = set.optics_of(set.particles.front()).pixel_A;
  std::vector<Projector> projectors;
  for (const RealGrid* m : maps) projectors.emplace_back(*m);
  const FourierDisk disk = ctf_fit_disk(box, pixel_A, o.min_res_A, o.max_res_A);
  const GradientPoints at(disk);
  const int threads = std::max(1, o.threads);
  std::vector<ParticleImageReader> readers;
  for (int t = 0; t < threads; ++t) readers.emplace_back(box);
  std::vector<double> inv_sigma2;
  for (double v : mean_image_power(set, box, threads)) inv_sigma2.push_back(v > 0 ? 1.0 / v : 0.0);

  const auto group_of = [&](const Particle& p) {
    return static_cast<std::size_t>(&set.optics_of(p) - set.optics.data());
  };
  std::vector<MagnificationGroupFit> fits(set.optics.size());
  for (std::size_t k = 0; k < fits.size(); ++k) fits[k] = {set.optics[k].number, 0, set.optics[k].mag_matrix, {}};
  const long n = static_cast<long>(set.particles.size());
  std::vector<Normal> per(static_cast<std::size_t>(n));
  std::vector<Scratch> scratch(static_cast<std::size_t>(threads));
  for (int pass = 0; pass < o.passes; ++pass) {
    for_each_particle(n, threads, [&](int t, long i) {
      const Particle& p = set.particles[static_cast<std::size_t>(i)];
      const Projector& ref = projectors[projectors.size() == 2 ? static_cast<std::size_t>(p.half_set - 1) : 0];
      const auto ti = static_cast<std::size_t>(t);
      per[static_cast<std::size_t>(i)] = particle_equations(readers[ti].transform(set, p), p, set.optics_of(p), ref,
                                                            disk, at, inv_sigma2, scratch[ti]);
    });
    std::vector<Normal> sums(set.optics.size());
    for (std::size_t i = 0; i < per.size(); ++i) sums[group_of(set.particles[i])].add(per[i]);
    std::vector<Mat2> next(set.optics.size());
    for (std::size_t k = 0; k < sums.size(); ++k) {
      next[k] = set.optics[k].mag_matrix;
      if (sums[k].particles == 0) continue;
      const auto e = solve(sums[k]);
      if (!e)
        throw InputError(fmt::format("optics group {}: the magnification's equations are singular ({} particles); "
                                     "give more particles or a wider resolution range",
                                     set.optics[k].number, sums[k].particles));
      next[k] = multiply(set.optics[k].mag_matrix, Mat2{1 + (*e)[0], (*e)[1], (*e)[2], 1 + (*e)[3]});
      fits[k].particles = sums[k].particles;
      fits[k].after_pass.push_back(next[k]);
    }
    if (o.reexpress_defocus)
      for (Particle& p : set.particles) {
        const std::size_t k = group_of(p);
        if (sums[k].particles > 0) reexpress_defocus(p, set.optics[k].mag_matrix, next[k]);
      }
    for (std::size_t k = 0; k < sums.size(); ++k) set.optics[k].mag_matrix = next[k];
  }
  std::erase_if(fits, [](const MagnificationGroupFit& f) { return f.particles == 0; });
  return fits;
}

}  // namespace tessera
