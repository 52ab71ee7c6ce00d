// Homogeneous refinement's parts: its particle step (one pose per particle,
// global then local search, least-squares contrast, back-projection) and the
// starting state (half sets, noise model, the reference's greyscale).
#include <algorithm>
#include <array>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <numeric>

#include "refine_internal.hpp"
#include "tessera/alignment.hpp"
#include "tessera/ctf_refine.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/random.hpp"
#include "tessera/symmetry_relaxation.hpp"

namespace tessera {

void assign_half_sets(ParticleSet& set, std::uint64_t seed) {
  const bool given = std::all_of(set.particles.begin(), set.particles.end(),
                                 [](const Particle& p) { return p.half_set == 1 || p.half_set == 2; });
  if (given) return;
  std::vector<std::size_t> order(set.particles.size());
  std::iota(order.begin(), order.end(), 0);
  Rng rng = item_rng(seed, 0x68616c66);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[static_cast<std::size_t>(uniform01(rng) * i)]);
  for (std::size_t k = 0; k < order.size(); ++k) set.particles[order[k]].half_set = k < order.size() / 2 ? 1 : 2;
}

namespace {

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

// The references of an iteration: each half map masked by the current mask, the frequencies
// coarser than the GSFSC split shared.
std::array<RealGrid, 2> references(const RefineState& st, const RefineOptions& o, double pixel_A) {
  RealGrid a = st.half_a, b = st.half_b;
  for (std::size_t i = 0; i < a.size(); ++i) a[i] *= st.mask[i], b[i] *= st.mask[i];
  share_low_frequencies(a, b, a.nx() * pixel_A / o.gsfsc_split_A);
  return {std::move(a), std::move(b)};
}

// Its pose from the previous iteration (the search centre), in pixels.
PoseEstimate current_pose(const Particle& p, double pixel_A) {
  PoseEstimate e;
  if (p.pose) {
    const ModelPose m = model_pose(*p.pose, pixel_A);
    e.rotation = m.rotation;
    e.origin_x_px = m.origin_x_px;
    e.origin_y_px = m.origin_y_px;
  }
  return e;
}

// A search's pose in the image-formation model, with the particle's optics group's magnification.
ModelPose as_model(const PoseEstimate& e, const OpticsGroup& g) {
  return {e.rotation, e.origin_x_px, e.origin_y_px, g.mag_matrix};
}

// Both halves' references and pose searches for one iteration, and what scoring a particle
// against them needs.
struct Prepared {
  int box = 0;
  double pixel_A = 0, kmax_px = 0;
  std::vector<double> inv_sigma2;
  FourierDisk full;  // every frequency up to box/2 - 1, for scale and residuals
  FourierDisk mates;  // with symmetry relaxation: the frequencies the mates are scored on
  std::unique_ptr<Projector> projector[2];
  std::unique_ptr<PoseSearch> search[2];

  Prepared(const RefineState& st, const RefineOptions& o, const IterationContext& c, const SearchFactory& factory)
      : box(c.box), pixel_A(c.pixel_A), kmax_px(c.kmax_px), inv_sigma2(c.inv_sigma2),
        full(FourierDisk::make(c.box, c.box / 2.0 - 1)),
        // at least shell 2, however coarse the relaxation's resolution (a small box)
        mates(FourierDisk::make(c.box,
                                std::min(c.kmax_px, std::max(2.0, c.box * c.pixel_A / o.relaxation_max_res_A)))) {
    const std::array<RealGrid, 2> refs = references(st, o, c.pixel_A);
    // The references come from a reconstruction band-limited at this alignment limit's band (or
    // the initial low-pass): their projectors hold only those frequencies, on the smaller grid.
    const std::optional<double> band = reconstruction_band_limit(c.kmax_px, c.box);
    for (int h = 0; h < 2; ++h) {
      projector[h] = std::make_unique<Projector>(band ? Projector::band_limited(refs[h], *band) : Projector(refs[h]));
      search[h] = factory(c);
      search[h]->prepare(*projector[h], inv_sigma2, kmax_px);
    }
  }

  // The particle's expected image at a pose, without its contrast scale, on the full disk.
  std::vector<cfloat> model(const RealGrid& ctf, const PoseEstimate& e, const OpticsGroup& g, int half) const {
    std::vector<cfloat> m;
    expected_points(*projector[half - 1], as_model(e, g), full, &ctf, 1.0, m);
    return m;
  }

  // Least-squares contrast scale of image f against a model, noise-weighted, over the
  // frequencies up to kfit; nullopt when the model does not correlate with the image.
  std::optional<double> least_squares_scale(const ComplexGrid& f, const std::vector<cfloat>& m, double kfit) const {
    double xm = 0, mm = 0;
    for (std::size_t j = 0; j < full.size(); ++j) {
      if (full.shell[j] > kfit) continue;
      const double wgt = full.multiplicity[j] * inv_sigma2[full.shell[j]];
      xm += wgt * (f[full.index[j]] * std::conj(m[j])).real();
      mm += wgt * std::norm(m[j]);
    }
    if (mm > 0 && xm > 0) return xm / mm;
    return std::nullopt;
  }
};

}  // namespace

IterationContext iteration_context(const RefineState& st, const RefineOptions& o, int box, double pixel_A,
                                   bool global) {
  IterationContext c;
  c.iteration = st.iteration + 1;
  c.global = global;
  c.box = box;
  c.pixel_A = pixel_A;
  c.resolution_A = st.resolution_A;
  c.kmax_px = alignment_kmax(st.resolution_A, o, box, pixel_A);
  c.threads = std::max(1, o.threads);
  for (double v : st.noise_power) c.inv_sigma2.push_back(v > 0 ? 1.0 / v : 0.0);
  return c;
}

namespace {

// Back-projects image f at a pose with probability `prob` (the model's adjoint, forward_model.hpp):
// flat through `ctf`, or on the Ewald sphere when `ewald` is given.
void insert_at(BackProjector& bp, const ComplexGrid& f, const RealGrid& ctf, const EwaldCtf* ewald,
               const PoseEstimate& e, const OpticsGroup& g, double a, double prob) {
  const ModelPose pose = as_model(e, g);
  if (ewald) {
    backproject_ewald(bp, f, pose, *ewald, a, prob);
    return;
  }
  ComplexGrid data;
  RealGrid weight;
  backprojection_terms(f, pose, &ctf, a, prob, data, weight);
  bp.insert(data, weight, model_matrix(pose));
}

class HomogeneousStep final : public ParticleStep {
 public:
  HomogeneousStep(const RefineOptions& o, SearchFactory global, SearchFactory local, StepHooks hooks = {})
      : o_(o), global_(std::move(global)), local_(std::move(local)), hooks_(std::move(hooks)) {
    if (!global_) global_ = [this](const IterationContext&) { return make_global_search(o_.global); };
    if (!local_) local_ = [this](const IterationContext&) { return make_local_search(o_.local); };
  }

  // Outcome: rotation change, shift change, scale, then the pose (rot, tilt, psi, origin x, y in A),
  // then the defocus offset (A; NaN when not refined), then with symmetry relaxation the posterior of
  // the mate taken (NaN without).
  int outcome_size() const override { return 10; }

  void prepare(const RefineState& st, const IterationContext& c) override {
    refs_.reset();
    refs_ = std::make_unique<Prepared>(st, o_, c, c.global ? global_ : local_);
    ensure_readers(c);
    mate_column_ = st.particles.particle_extra_index(kMatePosteriorLabel);
    defocus_disk_.reset();
    if (o_.defocus && !c.global && c.resolution_A <= o_.defocus->start_res_A)
      defocus_disk_ = FourierDisk::make(c.box, c.kmax_px, std::max(1.0, c.box * c.pixel_A / o_.defocus->min_res_A));
  }

  void release() override { refs_.reset(); }

  void process(std::span<const long> batch, const ParticleSet& set, int thread, Accumulator& acc,
               std::span<double> outcomes) override {
    const Prepared& s = *refs_;
    for (std::size_t k = 0; k < batch.size(); ++k) {
      const Particle& p = set.particles[static_cast<std::size_t>(batch[k])];
      const OpticsGroup& g = set.optics_of(p);
      RealGrid ctf = model_ctf(p, g, s.box);
      const ComplexGrid* image = &readers_[thread].transform(set, p);
      if (hooks_.remove_signal) {
        adjusted_[thread] = *image;
        hooks_.remove_signal(p, batch[k], ctf, adjusted_[thread]);
        image = &adjusted_[thread];
      }
      const ComplexGrid& f = *image;
      ParticleInput in{&f, &ctf, p.scale, current_pose(p, s.pixel_A)};
      in.mag_matrix = g.mag_matrix;
      if (hooks_.prior_centre)
        if (const std::optional<ProjectionPose> c = hooks_.prior_centre(batch[k])) {
          const ModelPose m = model_pose(*c, s.pixel_A);
          in.prior = PosePrior{m.rotation, m.origin_x_px, m.origin_y_px};
        }
      PoseEstimate e;
      s.search[p.half_set - 1]->search_batch({&in, 1}, {&e, 1});
      const double mate_posterior_taken = relax_symmetry(in, e, p.half_set);
      const double defocus_offset = refine_defocus_at(set, batch[k], thread, e, ctf);
      const std::vector<cfloat> m = s.model(ctf, e, g, p.half_set);
      const double a = o_.minimize_scale ? s.least_squares_scale(f, m, s.kmax_px).value_or(p.scale) : p.scale;
      add_residual(s, f, m, a, acc);
      BackProjector& bp = acc.target(p.half_set, batch[k]);
      const std::optional<EwaldCtf> ewald = ewald_ctf(set, p, defocus_offset);
      const EwaldCtf* sidebands = ewald ? &*ewald : nullptr;
      if (e.posterior.empty()) {
        insert_at(bp, f, ctf, sidebands, e, g, a, 1.0);
      } else {
        for (const WeightedPose& wp : e.posterior) insert_at(bp, f, ctf, sidebands, wp.pose, g, a, wp.weight);
      }
      double* out = &outcomes[k * outcome_size()];
      out[0] = p.pose ? rotation_distance_deg(in.current.rotation, e.rotation) : std::numeric_limits<double>::quiet_NaN();
      out[1] = std::hypot(e.origin_x_px - in.current.origin_x_px, e.origin_y_px - in.current.origin_y_px);
      out[2] = a;
      const Euler angles = matrix_to_euler(e.rotation);
      out[3] = angles.rot, out[4] = angles.tilt, out[5] = angles.psi;
      out[6] = e.origin_x_px * s.pixel_A, out[7] = e.origin_y_px * s.pixel_A;
      out[8] = defocus_offset;
      out[9] = mate_posterior_taken;
    }
  }

  void apply(std::span<const double> out, Particle& p) const override {
    ProjectionPose pose;
    pose.angles = {out[3], out[4], out[5]};
    pose.origin_x_A = out[6];
    pose.origin_y_A = out[7];
    p.pose = pose;
    p.scale = out[2];
    if (!std::isnan(out[8])) p.defocus_u_A += out[8], p.defocus_v_A += out[8];
    if (mate_column_ >= 0 && !std::isnan(out[9]))
      p.extra[static_cast<std::size_t>(mate_column_)] = fmt::format("{:.4f}", out[9]);
  }

  // The reference's greyscale against the particles (start_refinement).
  double reference_greyscale(const RefineState& st, double pixel_A) {
    RefineOptions probe = o_;
    probe.global.marginalize = false;
    const int box = particle_box(st.particles);
    const IterationContext c = iteration_context(st, probe, box, pixel_A, true);
    ensure_readers(c);
    const Prepared s(st, probe, c, [&](const IterationContext&) { return make_global_search(probe.global); });
    const ParticleSet& set = st.particles;
    const long all = static_cast<long>(set.particles.size()), n = std::min<long>(200, all);
    const double passband = box * pixel_A / o_.initial_lowpass_A - 1;  // lowpass(): gain 1 up to c - 1
    const double kfit = passband >= 2 ? std::min(passband, s.kmax_px) : s.kmax_px;
    std::vector<double> contrast(static_cast<std::size_t>(n), 0.0);
    for_each_particle(n, c.threads, [&](int t, long k) {
      const Particle& p = set.particles[static_cast<std::size_t>(k * all / n)];
      const ComplexGrid& f = readers_[t].transform(set, p);
      const OpticsGroup& g = set.optics_of(p);
      const RealGrid ctf = model_ctf(p, g, box);
      ParticleInput in{&f, &ctf, std::nullopt, current_pose(p, pixel_A)};
      in.mag_matrix = g.mag_matrix;
      const PoseEstimate e = s.search[p.half_set - 1]->search(in);
      contrast[k] = s.least_squares_scale(f, s.model(ctf, e, g, p.half_set), kfit).value_or(0.0) / p.scale;
    });
    std::erase_if(contrast, [](double v) { return !(v > 0); });
    if (contrast.size() < static_cast<std::size_t>(std::max<long>(1, n / 2)))
      throw InputError(fmt::format("the initial volume does not match the particles: {} of {} particles correlate "
                                   "with any of its projections",
                                   contrast.size(), n));
    std::nth_element(contrast.begin(), contrast.begin() + contrast.size() / 2, contrast.end());
    return contrast[contrast.size() / 2];
  }

 private:
  // In an iteration that refines defocus: the particle's best defocus offset at pose e against its
  // half's reference (ctf_refine.hpp), with `ctf` remade at the new defocus; else NaN. Scored on the
  // unwindowed image (less hooks_.remove_signal's signal): the window cuts the signal that the CTF
  // delocalizes and biases the defocus (docs/ctf_refine.md).
  double refine_defocus_at(const ParticleSet& set, long index, int thread, const PoseEstimate& e, RealGrid& ctf) {
    if (!defocus_disk_) return std::numeric_limits<double>::quiet_NaN();
    const Prepared& s = *refs_;
    const Particle& p = set.particles[static_cast<std::size_t>(index)];
    const OpticsGroup& g = set.optics_of(p);
    ComplexGrid adjusted;
    const ComplexGrid* f = &plain_readers_[static_cast<std::size_t>(thread)].transform(set, p);
    if (hooks_.remove_signal) {
      adjusted = *f;
      hooks_.remove_signal(p, index, ctf, adjusted);
      f = &adjusted;
    }
    DefocusScorer scorer(*f, p, g, *s.projector[p.half_set - 1], as_model(e, g), *defocus_disk_, s.inv_sigma2,
                         std::nullopt);
    const DefocusFit fit = search_defocus_offset([&](double d) { return scorer.score(d); }, o_.defocus->search);
    Particle moved = p;
    moved.defocus_u_A += fit.offset_A;
    moved.defocus_v_A += fit.offset_A;
    ctf = model_ctf(moved, g, s.box);
    return fit.offset_A;
  }

  // With Ewald sphere correction: the particle's sidebands at its defocus (moved by this
  // iteration's offset when defocus is refined); else none.
  std::optional<EwaldCtf> ewald_ctf(const ParticleSet& set, const Particle& p, double defocus_offset) const {
    if (o_.ewald_sphere == EwaldSphere::Off) return std::nullopt;
    Particle at = p;
    if (!std::isnan(defocus_offset)) at.defocus_u_A += defocus_offset, at.defocus_v_A += defocus_offset;
    return model_ewald_ctf(at, set.optics_of(p), refs_->box, o_.ewald_sphere);
  }

  // With symmetry relaxation: moves the search's result e to the particle's best symmetry mate (its
  // posterior to the mates' poses, symmetry_relaxation.hpp) and returns that mate's posterior; else NaN.
  double relax_symmetry(const ParticleInput& in, PoseEstimate& e, int half_set) const {
    if (o_.symmetry_relaxation == SymmetryRelaxation::None) return std::numeric_limits<double>::quiet_NaN();
    const Prepared& s = *refs_;
    const std::vector<double> p =
        mate_posterior(in, e, o_.symmetry, {*s.projector[half_set - 1], s.inv_sigma2, s.mates});
    return p[static_cast<std::size_t>(relax_to_mates(e, p, o_.symmetry, o_.symmetry_relaxation))];
  }

  // One image reader per thread, windowed, and one unwindowed for the defocus.
  void ensure_readers(const IterationContext& c) {
    if (static_cast<int>(readers_.size()) == c.threads) return;
    readers_.clear();
    plain_readers_.clear();
    adjusted_.assign(static_cast<std::size_t>(c.threads), ComplexGrid());
    for (int t = 0; t < c.threads; ++t) {
      readers_.emplace_back(c.box);
      readers_.back().set_window(o_.window_inner_frac * c.box / 2.0, o_.window_outer_frac * c.box / 2.0);
      plain_readers_.emplace_back(c.box);
    }
  }

  // The residual power per shell of image f against a * model, over the full disk.
  static void add_residual(const Prepared& s, const ComplexGrid& f, const std::vector<cfloat>& m, double a,
                           Accumulator& acc) {
    std::vector<double> power(s.box / 2 + 1, 0.0), count(s.box / 2 + 1, 0.0);
    for (std::size_t j = 0; j < s.full.size(); ++j) {
      const int sh = s.full.shell[j];
      power[sh] += s.full.multiplicity[j] * std::norm(f[s.full.index[j]] - static_cast<float>(a) * m[j]);
      count[sh] += s.full.multiplicity[j];
    }
    acc.add_residual(power, count);
  }

  RefineOptions o_;
  SearchFactory global_, local_;
  StepHooks hooks_;
  std::unique_ptr<Prepared> refs_;
  int mate_column_ = -1;  // the particles' kMatePosteriorLabel column; -1 without symmetry relaxation
  std::optional<FourierDisk> defocus_disk_;  // this iteration refines defocus on these frequencies
  std::vector<ComplexGrid> adjusted_;  // per thread: the image with hooks_.remove_signal's signal taken out
  std::vector<ParticleImageReader> readers_;
  std::vector<ParticleImageReader> plain_readers_;  // unwindowed, for refine_defocus_at
};

}  // namespace

std::unique_ptr<ParticleStep> make_homogeneous_step(const RefineOptions& options, SearchFactory global_search,
                                                    SearchFactory local_search, StepHooks hooks) {
  return std::make_unique<HomogeneousStep>(options, std::move(global_search), std::move(local_search),
                                           std::move(hooks));
}

double alignment_kmax(double resolution_A, const RefineOptions& o, int box, double pixel_A) {
  double res = resolution_A;
  if (o.max_align_res_A) res = std::max(res, *o.max_align_res_A);
  return std::min(box / 2.0 - 1, box * pixel_A / res + 4);
}

RefineState start_refinement(ParticleSet particles, const RealGrid& reference, double pixel_A,
                             const RefineOptions& o) {
  RefineState st;
  const int box = particle_box(particles);
  if (reference.nx() != box)
    throw InputError(fmt::format("the reference is {} px, the particles {} px", reference.nx(), box));
  assign_half_sets(particles, o.seed);
  for (auto& p : particles.particles)
    if (o.reset_scale || !(p.scale > 0)) p.scale = 1;
  st.particles = std::move(particles);
  st.half_a = lowpass(reference, o.initial_lowpass_A, pixel_A);
  st.half_b = st.raw_a = st.raw_b = st.half_a;
  const double diameter_px = (o.particle_diameter_A > 0 ? o.particle_diameter_A / pixel_A : 0.8 * box);
  st.mask = soft_sphere_mask(box, diameter_px / 2, 4);
  st.resolution_A = o.initial_lowpass_A;
  st.noise_power = mean_image_power(st.particles, box, o.threads);
  HomogeneousStep step(o, {}, {});
  st.reference_greyscale = step.reference_greyscale(st, pixel_A);
  for (RealGrid* g : {&st.half_a, &st.half_b, &st.raw_a, &st.raw_b})
    for (float& v : g->values()) v *= static_cast<float>(st.reference_greyscale);
  return st;
}

}  // namespace tessera
