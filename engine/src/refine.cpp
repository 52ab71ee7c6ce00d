#include "tessera/refine.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <numbers>
#include <numeric>

#include "tessera/alignment.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

class FscRegularizer final : public Regularizer {
 public:
  HalfSetReconstruction reconstruct(const BackProjector& a, const BackProjector& b) const override {
    return reconstruct_halves(a, b, true, false);
  }
};

void split_halves(ParticleSet& set, std::uint64_t seed) {
  const bool given = std::all_of(set.particles.begin(), set.particles.end(),
                                 [](const Particle& p) { return p.half_set == 1 || p.half_set == 2; });
  if (given) return;
  std::vector<std::size_t> order(set.particles.size());
  std::iota(order.begin(), order.end(), 0);
  Rng rng = item_rng(seed, 0x68616c66);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[static_cast<std::size_t>(uniform01(rng) * i)]);
  for (std::size_t k = 0; k < order.size(); ++k) set.particles[order[k]].half_set = k < order.size() / 2 ? 1 : 2;
}

// Mean |X(k)|^2 per shell over (up to 500) particles: the initial noise model.
std::vector<double> image_power(const ParticleSet& set, int box, int threads) {
  const long n = std::min<long>(500, static_cast<long>(set.particles.size()));
  const int nthreads = std::max(1, threads);
  std::vector<std::vector<double>> sum(nthreads, std::vector<double>(box / 2 + 1, 0.0)), count = sum;
  std::vector<ParticleImageReader> readers;
  for (int t = 0; t < nthreads; ++t) readers.emplace_back(box);
  for_each_particle(n, nthreads, [&](int t, long i) {
    const ComplexGrid& f = readers[t].transform(set, set.particles[i * set.particles.size() / n]);
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box / 2 + 1; ++x) {
        const int s = static_cast<int>(std::lround(std::hypot(x, fourier_index(y, box))));
        if (s > box / 2) continue;
        sum[t][s] += std::norm(f(x, y));
        count[t][s] += 1;
      }
  });
  std::vector<double> power(box / 2 + 1, 0.0);
  for (int s = 0; s <= box / 2; ++s) {
    double a = 0, c = 0;
    for (int t = 0; t < nthreads; ++t) a += sum[t][s], c += count[t][s];
    power[s] = c > 0 ? a / c : 1.0;
  }
  return power;
}

// Averages the two maps' Fourier components below shell k_share.
void share_low_frequencies(RealGrid& a, RealGrid& b, double k_share) {
  const int n = a.nx();
  centre_to_corner(a, true);
  centre_to_corner(b, true);
  ComplexGrid fa = fft_3d(a), fb = fft_3d(b);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n / 2 + 1; ++x) {
        const double r = std::sqrt(double(x) * x + std::pow(fourier_index(y, n), 2) + std::pow(fourier_index(z, n), 2));
        if (r >= k_share) continue;
        const cfloat m = 0.5f * (fa(x, y, z) + fb(x, y, z));
        fa(x, y, z) = fb(x, y, z) = m;
      }
  a = ifft_3d(fa, n);
  b = ifft_3d(fb, n);
  corner_to_centre(a, true);
  corner_to_centre(b, true);
}

struct Worker {
  Worker(int box, int padding, const std::vector<Mat3>& sym, double inner, double outer)
      : images(box), a(box, padding, {}, sym), b(box, padding, {}, sym), residual(box / 2 + 1, 0.0),
        count(box / 2 + 1, 0.0) {
    images.set_window(inner, outer);
  }
  ParticleImageReader images;
  BackProjector a, b;
  std::vector<double> residual, count;
  double angle_change = 0, shift_change = 0, scale_sum = 0;
  long aligned = 0;
};

struct IterationSetup {
  int box;
  double pixel_A, kmax_px;
  std::vector<double> inv_sigma2;
  FourierDisk full;  // every frequency up to box/2 - 1, for scale and residuals
  const Projector* refs[2];
  const PoseSearch* search[2];
};

// The expected image of a particle at a pose, without its contrast scale: the reference's
// projection, times the CTF, shifted by the pose's origin, on the full disk.
std::vector<cfloat> expected_image(const IterationSetup& s, const RealGrid& ctf, const PoseEstimate& e, int half) {
  std::vector<cfloat> model(s.full.size());
  s.refs[half - 1]->project_points(e.rotation, s.full.kx.data(), s.full.ky.data(), s.full.size(), model.data());
  const double two_pi_n = 2.0 * std::numbers::pi / s.box;
  for (std::size_t j = 0; j < s.full.size(); ++j) {
    const double ph = two_pi_n * (s.full.kx[j] * e.origin_x_px + s.full.ky[j] * e.origin_y_px);
    model[j] *= ctf[s.full.index[j]] * cfloat(static_cast<float>(std::cos(ph)), static_cast<float>(std::sin(ph)));
  }
  return model;
}

// Least-squares contrast scale of image f against a model, noise-weighted, over the
// frequencies up to kmax_px; nullopt when the model does not correlate with the image.
std::optional<double> least_squares_scale(const IterationSetup& s, const ComplexGrid& f,
                                          const std::vector<cfloat>& model, double kmax_px) {
  double xm = 0, mm = 0;
  for (std::size_t j = 0; j < s.full.size(); ++j) {
    if (s.full.shell[j] > kmax_px) continue;
    const double wgt = s.full.multiplicity[j] * s.inv_sigma2[s.full.shell[j]];
    xm += wgt * (f[s.full.index[j]] * std::conj(model[j])).real();
    mm += wgt * std::norm(model[j]);
  }
  if (mm > 0 && xm > 0) return xm / mm;
  return std::nullopt;
}

// Least-squares contrast scale (on k <= kmax) and residual power per shell at a pose.
double fit_scale(const IterationSetup& s, const ComplexGrid& f, const RealGrid& ctf, const PoseEstimate& e,
                 double scale, bool minimize, Worker& w, int half) {
  const std::vector<cfloat> model = expected_image(s, ctf, e, half);
  const double a = minimize ? least_squares_scale(s, f, model, s.kmax_px).value_or(scale) : scale;
  for (std::size_t j = 0; j < s.full.size(); ++j) {
    const int sh = s.full.shell[j];
    w.residual[sh] += s.full.multiplicity[j] * std::norm(f[s.full.index[j]] - static_cast<float>(a) * model[j]);
    w.count[sh] += s.full.multiplicity[j];
  }
  return a;
}

// Back-projects image f at a pose with probability `prob`: data = prob a CTF X
// (centred by the pose's origin), weight = prob a^2 CTF^2.
void insert_at(BackProjector& bp, const ComplexGrid& f, const RealGrid& ctf, const PoseEstimate& e, double a,
               double prob, int box) {
  ComplexGrid data = f;
  phase_shift_2d(data, box, e.origin_x_px, e.origin_y_px);
  RealGrid weight(box / 2 + 1, box);
  for (std::size_t k = 0; k < data.size(); ++k) {
    data[k] *= static_cast<float>(prob * a) * ctf[k];
    weight[k] = static_cast<float>(prob * a * a) * ctf[k] * ctf[k];
  }
  bp.insert(data, weight, e.rotation);
}

// The particle's CTF on its transform's grid, with its contrast scale left out.
RealGrid particle_ctf(const ParticleSet& set, const Particle& p, int box, double pixel_A) {
  CtfParams cp = CtfParams::of(p, set.optics_of(p));
  cp.scale = 1;
  return ctf_image(cp, box, box, pixel_A);
}

// Its pose from the previous iteration (the search centre), in pixels.
PoseEstimate current_pose(const Particle& p, double pixel_A) {
  PoseEstimate e;
  if (p.pose) {
    e.rotation = euler_to_matrix(p.pose->angles);
    e.origin_x_px = p.pose->origin_x_A / pixel_A;
    e.origin_y_px = p.pose->origin_y_A / pixel_A;
  }
  return e;
}

void align_particle(const IterationSetup& s, const RefineOptions& o, ParticleSet& set, long i, Worker& w) {
  Particle& p = set.particles[i];
  const ComplexGrid& f = w.images.transform(set, p);
  const RealGrid ctf = particle_ctf(set, p, s.box, s.pixel_A);
  const int half = p.half_set;
  const ParticleInput in{&f, &ctf, p.scale, current_pose(p, s.pixel_A)};
  const PoseEstimate e = s.search[half - 1]->search(in);
  const double a = fit_scale(s, f, ctf, e, p.scale, o.minimize_scale, w, half);
  if (p.pose) {
    w.angle_change += rotation_distance_deg(in.current.rotation, e.rotation);
    w.shift_change += std::hypot(e.origin_x_px - in.current.origin_x_px, e.origin_y_px - in.current.origin_y_px);
  }
  ProjectionPose pose;
  pose.angles = matrix_to_euler(e.rotation);
  pose.origin_x_A = e.origin_x_px * s.pixel_A;
  pose.origin_y_A = e.origin_y_px * s.pixel_A;
  p.pose = pose;
  p.scale = a;
  w.scale_sum += a;
  ++w.aligned;
  BackProjector& bp = half == 1 ? w.a : w.b;
  if (e.posterior.empty()) {
    insert_at(bp, f, ctf, e, a, 1.0, s.box);
  } else {
    for (const WeightedPose& wp : e.posterior) insert_at(bp, f, ctf, wp.pose, a, wp.weight, s.box);
  }
}


// Which particles are aligned this iteration: a random mini-batch in the
// early global iterations, everyone after.
std::vector<long> batch(const RefineState& st, const RefineOptions& o, int iteration, bool global) {
  const long n = static_cast<long>(st.particles.particles.size());
  std::vector<long> all(n);
  std::iota(all.begin(), all.end(), 0);
  if (!global || iteration >= o.global_iterations || o.minibatch_size <= 0 || o.minibatch_size >= n) return all;
  Rng rng = item_rng(o.seed, 0x6261746368ULL + iteration);
  for (long i = n; i > 1; --i) std::swap(all[i - 1], all[static_cast<long>(uniform01(rng) * i)]);
  all.resize(o.minibatch_size);
  std::sort(all.begin(), all.end());
  return all;
}

std::array<RealGrid, 2> references(const RefineState& st, const RefineOptions& o, double pixel_A) {
  RealGrid a = st.half_a, b = st.half_b;
  for (std::size_t i = 0; i < a.size(); ++i) a[i] *= st.mask[i], b[i] *= st.mask[i];
  share_low_frequencies(a, b, a.nx() * pixel_A / o.gsfsc_split_A);
  return {std::move(a), std::move(b)};
}

double alignment_kmax(const RefineState& st, const RefineOptions& o, int box, double pixel_A) {
  double res = st.resolution_A;
  if (o.max_align_res_A) res = std::max(res, *o.max_align_res_A);
  return std::min(box / 2.0 - 1, box * pixel_A / res + 4);
}

// What aligning particles against the current maps needs: both halves' projectors and pose
// searches (global or local), and the setup that points to them.
struct PreparedReferences {
  std::unique_ptr<Projector> projector[2];
  std::unique_ptr<PoseSearch> search[2];
  IterationSetup setup;
};

std::unique_ptr<PreparedReferences> prepare_references(const RefineState& st, const RefineOptions& o, double pixel_A,
                                                       bool global) {
  const int box = particle_box(st.particles);
  auto r = std::make_unique<PreparedReferences>();
  const std::array<RealGrid, 2> refs = references(st, o, pixel_A);
  IterationSetup& s = r->setup;
  s = {box, pixel_A, alignment_kmax(st, o, box, pixel_A), {}, FourierDisk::make(box, box / 2.0 - 1), {}, {}};
  for (double v : st.noise_power) s.inv_sigma2.push_back(v > 0 ? 1.0 / v : 0.0);
  for (int h = 0; h < 2; ++h) {
    r->projector[h] = std::make_unique<Projector>(refs[h]);
    r->search[h] = global ? make_global_search(o.global) : make_local_search(o.local);
    r->search[h]->prepare(*r->projector[h], s.inv_sigma2, s.kmax_px);
    s.refs[h] = r->projector[h].get();
    s.search[h] = r->search[h].get();
  }
  return r;
}

// The user's reference is on a greyscale that says nothing about the particles' (a map from
// EMDB or another package, any scaling; x25 gave a median angular error of 101 degrees when used
// as is): the factor is the median, over up to 200 particles spread through the set, of the
// least-squares contrast of each particle against the reference at its best pose, found by a
// global search that scores every pose at its own best contrast (alignment.hpp) and so does not
// depend on the greyscale it measures. The contrast is fitted on the frequencies that the
// initial low-pass keeps whole (its edge would otherwise bias it up: 1.15 for the true map).
double reference_greyscale(const RefineState& st, double pixel_A, const RefineOptions& o) {
  RefineOptions probe = o;
  probe.global.marginalize = false;
  const auto parts = prepare_references(st, probe, pixel_A, true);
  const IterationSetup& s = parts->setup;
  const ParticleSet& set = st.particles;
  const long all = static_cast<long>(set.particles.size()), n = std::min<long>(200, all);
  const int nthreads = std::max(1, o.threads);
  std::vector<ParticleImageReader> readers;
  for (int t = 0; t < nthreads; ++t) {
    readers.emplace_back(s.box);
    readers.back().set_window(o.window_inner_frac * s.box / 2.0, o.window_outer_frac * s.box / 2.0);
  }
  const double passband = s.box * pixel_A / o.initial_lowpass_A - 1;  // lowpass(): gain 1 up to c - 1
  const double kfit = passband >= 2 ? std::min(passband, s.kmax_px) : s.kmax_px;
  std::vector<double> contrast(static_cast<std::size_t>(n), 0.0);
  for_each_particle(n, nthreads, [&](int t, long k) {
    const Particle& p = set.particles[static_cast<std::size_t>(k * all / n)];
    const ComplexGrid& f = readers[t].transform(set, p);
    const RealGrid ctf = particle_ctf(set, p, s.box, pixel_A);
    const ParticleInput in{&f, &ctf, std::nullopt, current_pose(p, pixel_A)};
    const PoseEstimate e = s.search[p.half_set - 1]->search(in);
    contrast[k] = least_squares_scale(s, f, expected_image(s, ctf, e, p.half_set), kfit).value_or(0.0) / p.scale;
  });
  std::erase_if(contrast, [](double c) { return !(c > 0); });
  if (contrast.size() < static_cast<std::size_t>(std::max<long>(1, n / 2)))
    throw InputError(fmt::format("the initial volume does not match the particles: {} of {} particles correlate "
                                 "with any of its projections",
                                 contrast.size(), n));
  std::nth_element(contrast.begin(), contrast.begin() + contrast.size() / 2, contrast.end());
  return contrast[contrast.size() / 2];
}

void update_mask(RefineState& st, const RefineOptions& o, double pixel_A, const RealGrid& full) {
  if (st.resolution_A > o.mask_start_res_A) return;
  st.mask = map_mask(full, st.resolution_A, pixel_A, o.mask_threshold, o.mask_near_A, o.mask_far_A);
}

// The likelihood is unchanged by a <- a / m with every map multiplied by m;
// without this the mean scale drifts as the Wiener filter shrinks the maps.
void normalize_scales(RefineState& st) {
  double sum = 0;
  for (const auto& p : st.particles.particles) sum += p.scale;
  const double m = sum / std::max<std::size_t>(1, st.particles.particles.size());
  if (!(m > 0)) return;
  for (auto& p : st.particles.particles) p.scale /= m;
  for (RealGrid* g : {&st.half_a, &st.half_b, &st.raw_a, &st.raw_b})
    for (float& v : g->values()) v *= static_cast<float>(m);
}

// Converged: the resolution has not improved for `patience` iterations of
// local search and the poses have settled (mean change below the finest step).
void update_convergence(RefineState& st, const RefineOptions& o, bool global, double mean_change_deg) {
  if (st.resolution_A < 0.99 * st.best_resolution_A) {
    st.best_resolution_A = st.resolution_A;
    st.iterations_without_gain = 0;
  } else {
    ++st.iterations_without_gain;
  }
  if (st.final_passes_left > 0) {
    --st.final_passes_left;
  } else if (st.final_passes_left < 0 && !global && st.iterations_without_gain >= o.patience &&
             mean_change_deg < o.local.final_step_deg) {
    st.final_passes_left = o.final_passes;
  }
  st.done = st.final_passes_left == 0 || st.iteration >= o.max_iterations;
}

void run_iteration(RefineState& st, double pixel_A, const RefineOptions& o, const Regularizer& reg,
                   const RefineCallbacks& cb) {
  const auto start = std::chrono::steady_clock::now();
  const int box = particle_box(st.particles), t = st.iteration + 1;
  const bool global = t <= o.global_iterations;
  if (t == 1 && cb.log)
    cb.log(fmt::format("reference greyscale: the initial volume x {:.4g} matches the particles",
                       st.reference_greyscale));
  const auto parts = prepare_references(st, o, pixel_A, global);
  const IterationSetup& s = parts->setup;
  const std::vector<long> which = batch(st, o, t, global);
  const int nthreads = std::max(1, o.threads);
  const double radius = box / 2.0;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int k = 0; k < nthreads; ++k)
    workers.push_back(std::make_unique<Worker>(box, 2, o.symmetry, o.window_inner_frac * radius,
                                               o.window_outer_frac * radius));
  for_each_particle(static_cast<long>(which.size()), nthreads,
                    [&](int k, long i) { align_particle(s, o, st.particles, which[i], *workers[k]); }, cb.progress);
  Worker& w = *workers[0];
  for (int k = 1; k < nthreads; ++k) {
    w.a.add(workers[k]->a), w.b.add(workers[k]->b);
    for (std::size_t j = 0; j < w.residual.size(); ++j) w.residual[j] += workers[k]->residual[j], w.count[j] += workers[k]->count[j];
    w.angle_change += workers[k]->angle_change, w.shift_change += workers[k]->shift_change;
    w.scale_sum += workers[k]->scale_sum, w.aligned += workers[k]->aligned;
  }
  for (std::size_t j = 0; j < w.residual.size(); ++j)
    if (w.count[j] > 0) st.noise_power[j] = w.residual[j] / w.count[j];
  HalfSetReconstruction r = reg.reconstruct(w.a, w.b);
  st.half_a = std::move(r.half_a);
  st.half_b = std::move(r.half_b);
  st.raw_a = std::move(r.raw_a);
  st.raw_b = std::move(r.raw_b);
  normalize_scales(st);
  st.fsc = masked_fsc(st.raw_a, st.raw_b, st.mask);
  st.resolution_A = resolution_at(st.fsc, 0.143, box, pixel_A).value_or(2 * pixel_A);
  if (!std::isfinite(st.resolution_A)) st.resolution_A = o.initial_lowpass_A;
  st.iteration = t;
  update_mask(st, o, pixel_A, average_maps(st.half_a, st.half_b));
  update_convergence(st, o, global, w.angle_change / std::max<long>(1, w.aligned));
  IterationStats is;
  is.iteration = t;
  is.global_search = global;
  is.aligned = w.aligned;
  is.resolution_A = st.resolution_A;
  is.align_res_A = box * pixel_A / s.kmax_px;
  const long moved = std::max<long>(1, w.aligned);
  is.mean_angle_change_deg = w.angle_change / moved;
  is.mean_shift_change_px = w.shift_change / moved;
  is.mean_scale = w.scale_sum / moved;
  is.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  st.history.push_back(is);
  if (cb.log)
    cb.log(fmt::format("iteration {} ({} search, {} particles, align to {:.1f} A): resolution {:.2f} A, "
                       "mean change {:.2f} deg {:.2f} px, mean scale {:.3f}, {:.1f} s",
                       t, global ? "global" : "local", is.aligned, is.align_res_A, is.resolution_A,
                       is.mean_angle_change_deg, is.mean_shift_change_px, is.mean_scale, is.wall_s));
}

}  // namespace

std::unique_ptr<Regularizer> make_fsc_regularizer() { return std::make_unique<FscRegularizer>(); }

RefineState start_refinement(ParticleSet particles, const RealGrid& reference, double pixel_A,
                             const RefineOptions& o) {
  RefineState st;
  const int box = particle_box(particles);
  if (reference.nx() != box)
    throw InputError(fmt::format("the reference is {} px, the particles {} px", reference.nx(), box));
  split_halves(particles, o.seed);
  for (auto& p : particles.particles)
    if (o.reset_scale || !(p.scale > 0)) p.scale = 1;
  st.particles = std::move(particles);
  st.half_a = lowpass(reference, o.initial_lowpass_A, pixel_A);
  st.half_b = st.raw_a = st.raw_b = st.half_a;
  const double diameter_px = (o.particle_diameter_A > 0 ? o.particle_diameter_A / pixel_A : 0.8 * box);
  st.mask = soft_sphere_mask(box, diameter_px / 2, 4);
  st.resolution_A = o.initial_lowpass_A;
  st.noise_power = image_power(st.particles, box, o.threads);
  st.reference_greyscale = reference_greyscale(st, pixel_A, o);
  for (RealGrid* g : {&st.half_a, &st.half_b, &st.raw_a, &st.raw_b})
    for (float& v : g->values()) v *= static_cast<float>(st.reference_greyscale);
  return st;
}

}  // namespace tessera

namespace tessera {

void run_refinement(RefineState& st, double pixel_A, const RefineOptions& o, const Regularizer& reg,
                    const RefineCallbacks& cb) {
  while (!st.done) {
    run_iteration(st, pixel_A, o, reg, cb);
    if (cb.iteration_done) cb.iteration_done(st);
  }
}

}  // namespace tessera
