// The refinement loop (refine.hpp): one iteration = prepare the step's
// references, process this rank's particles in batches on all threads into one
// shared accumulator, sum the accumulators over ranks, apply every particle's
// outcome in particle order, regularize on the leader and share the new maps.
#include "tessera/refine.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <numeric>
#include <stdexcept>

#include "refine_internal.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/random.hpp"

namespace tessera {

// The maps are the next iteration's references, aligned up to 4 shells beyond the new
// resolution, and the FSC must reach past the new resolution to find it: 10 shells of room
// beyond this iteration's alignment limit (RELION's default increment of the current size), and
// a quarter more while the resolution still jumps (an early iteration can gain 20 shells).
std::optional<double> reconstruction_band_limit(double kmax_px, int box) {
  const double limit = 1.25 * kmax_px + 10;
  if (band_limited_box(box, limit) >= box) return std::nullopt;
  return limit;
}

namespace {

class FscRegularizer final : public Regularizer {
 public:
  HalfSetReconstruction reconstruct(const BackProjector& a, const BackProjector& b,
                                    const RegularizerContext& context) const override {
    return reconstruct_halves(a, b, true, false, context.threads, context.band_limit_px);
  }
};

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

void update_mask(RefineState& st, const RefineOptions& o, double pixel_A, const RealGrid& full) {
  if (st.resolution_A > o.mask_start_res_A) return;
  st.mask = map_mask(full, st.resolution_A, pixel_A, o.mask_threshold, o.mask_near_A, o.mask_far_A);
}

// The likelihood is unchanged by a <- a / m with every map multiplied by m;
// without this the mean scale drifts as the Wiener filter shrinks the maps.
// Returns m; the maps are the caller's to scale.
double normalize_scales(RefineState& st) {
  double sum = 0;
  for (const auto& p : st.particles.particles) sum += p.scale;
  const double m = sum / std::max<std::size_t>(1, st.particles.particles.size());
  if (!(m > 0)) return 1.0;
  for (auto& p : st.particles.particles) p.scale /= m;
  return m;
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

// Quantiles (kLocalResolutionQuantiles) of the local resolution, box * pixel_A / cut-off, over
// the voxels where the mask exceeds 0.5 (all voxels when none does).
std::vector<double> local_resolution_quantiles_A(const RealGrid& cutoff_px, const RealGrid& mask, double pixel_A) {
  const double span_A = cutoff_px.nx() * pixel_A;
  const bool masked = mask.size() == cutoff_px.size() &&
                      std::any_of(mask.values().begin(), mask.values().end(), [](float m) { return m > 0.5f; });
  std::vector<float> res;
  for (std::size_t i = 0; i < cutoff_px.size(); ++i)
    if (!masked || mask[i] > 0.5f) res.push_back(static_cast<float>(span_A / std::max(1e-6, double(cutoff_px[i]))));
  std::sort(res.begin(), res.end());
  std::vector<double> q;
  for (double f : kLocalResolutionQuantiles)
    q.push_back(res[std::min(res.size() - 1, static_cast<std::size_t>(f * double(res.size())))]);
  return q;
}

constexpr long kBatch = 8;  // particles handed to the step at once

// Processes this rank's share of `which` on all threads; returns the share's outcomes.
std::vector<double> process_share(ParticleStep& step, const RefineState& st, const IterationContext& c,
                                  const std::vector<long>& which, Share share, Accumulator& acc,
                                  const RefineCallbacks& cb) {
  const int size = step.outcome_size();
  const long n = share.end - share.begin, nbatch = (n + kBatch - 1) / kBatch;
  std::vector<double> outcomes(static_cast<std::size_t>(n * size));
  std::function<void(long, long)> progress;
  if (cb.progress) progress = [&](long done, long) { cb.progress(std::min(n, done * kBatch), n); };
  for_each_particle(
      nbatch, c.threads,
      [&](int thread, long b) {
        const long first = b * kBatch, count = std::min(kBatch, n - first);
        step.process(std::span<const long>(which.data() + share.begin + first, static_cast<std::size_t>(count)),
                     st.particles, thread, acc,
                     std::span<double>(outcomes.data() + first * size, static_cast<std::size_t>(count * size)));
      },
      progress);
  return outcomes;
}

struct Changes {
  double angle_deg = 0, shift_px = 0, scale = 0;
  long moved = 0, aligned = 0;
  long mate_changes = 0;  // with symmetry relaxation: particles now nearer another mate of their previous pose
  std::vector<double> defocus_changes_A;  // |change of defocus U| of the particles whose defocus changed
};

// Applies the outcomes (all ranks', in particle order) to the particles and sums the changes.
Changes apply_outcomes(const ParticleStep& step, RefineState& st, const std::vector<long>& which,
                       const std::vector<double>& all, const RefineOptions& o) {
  const std::size_t size = static_cast<std::size_t>(step.outcome_size());
  const bool relaxed = o.symmetry_relaxation != SymmetryRelaxation::None;
  Changes ch;
  for (std::size_t k = 0; k < which.size(); ++k) {
    const std::span<const double> out(all.data() + k * size, size);
    Particle& p = st.particles.particles[static_cast<std::size_t>(which[k])];
    const std::optional<ProjectionPose> before = p.pose;
    const double defocus_before = p.defocus_u_A;
    step.apply(out, p);
    if (p.defocus_u_A != defocus_before) ch.defocus_changes_A.push_back(std::abs(p.defocus_u_A - defocus_before));
    if (relaxed && before && p.pose &&
        nearest_mate(euler_to_matrix(before->angles), euler_to_matrix(p.pose->angles), o.symmetry) != 0)
      ++ch.mate_changes;
    if (!std::isnan(out[0])) ch.angle_deg += out[0], ch.shift_px += out[1];
    ch.scale += out[2];
    ++ch.aligned;
  }
  return ch;
}

// The leader's new maps, mask, FSC and resolution, copied to every rank.
void share_maps(RefineState& st, Communicator& comm) {
  if (comm.size() == 1) return;
  for (RealGrid* g : {&st.half_a, &st.half_b, &st.mask}) comm.broadcast(std::span<float>(g->values()));
  std::vector<double> head = {st.resolution_A, static_cast<double>(st.fsc.size())};
  comm.broadcast(std::span<double>(head));
  st.resolution_A = head[0];
  st.fsc.resize(static_cast<std::size_t>(head[1]));
  comm.broadcast(std::span<double>(st.fsc));
}

void run_iteration(RefineState& st, double pixel_A, const RefineOptions& o, ParticleStep& step,
                   const Regularizer& reg, Communicator& comm, const RefineCallbacks& cb) {
  const auto start = std::chrono::steady_clock::now();
  const int box = particle_box(st.particles), t = st.iteration + 1;
  const bool global = t <= o.global_iterations;
  if (t == 1 && cb.log)
    cb.log(fmt::format("reference greyscale: the initial volume x {:.4g} matches the particles",
                       st.reference_greyscale));
  const IterationContext c = iteration_context(st, o, box, pixel_A, global);
  const std::vector<long> which = batch(st, o, t, global);
  // Until the iteration expected to be the last, the maps are needed only up to the band limit:
  // the particles are inserted, and the maps reconstructed, only that far.
  const bool last_expected = st.final_passes_left == 1 || t >= o.max_iterations;
  const std::optional<double> limit = last_expected ? std::nullopt : reconstruction_band_limit(c.kmax_px, box);
  const int folds = reg.folds_per_half();
  // With symmetry relaxation the symmetry names the particles' mates; the maps are in C1.
  const std::vector<Mat3> imposed =
      o.symmetry_relaxation == SymmetryRelaxation::None ? o.symmetry : std::vector<Mat3>();
  auto acc = std::make_unique<Accumulator>(
      box, imposed, st.noise_power,
      folds > 1 ? cross_validation_folds(st.particles, folds) : std::vector<int>(), folds, limit);
  std::vector<double> mine;
  std::exception_ptr failure;
  try {
    step.prepare(st, c);
    mine = process_share(step, st, c, which, share_of(static_cast<long>(which.size()), comm), *acc, cb);
  } catch (...) {
    failure = std::current_exception();
  }
  step.release();
  agree_on_failure(comm, failure);
  acc->reduce(comm);
  st.noise_power = acc->noise_power(st.noise_power);
  const Changes ch = apply_outcomes(step, st, which, comm.gather_all(mine), o);
  const double m = normalize_scales(st);
  // The leader's new maps from the accumulator, band-limited or not.
  auto regularize = [&](std::optional<double> band_limit_px) {
    if (!comm.leader()) return;
    const RegularizerContext rc{st.mask,    pixel_A,       st.resolution_A, t, imposed, c.threads, band_limit_px,
                                acc->folds_a(), acc->folds_b()};
    HalfSetReconstruction r = reg.reconstruct(acc->a(), acc->b(), rc);
    st.local_cutoff_px = std::move(r.local_cutoff_px);
    st.half_a = std::move(r.half_a);
    st.half_b = std::move(r.half_b);
    st.raw_a = std::move(r.raw_a);
    st.raw_b = std::move(r.raw_b);
    for (RealGrid* g : {&st.half_a, &st.half_b, &st.raw_a, &st.raw_b})
      for (float& v : g->values()) v *= static_cast<float>(m);
    st.fsc = masked_fsc(st.raw_a, st.raw_b, st.mask);
    if (band_limit_px)  // a soft mask spreads the maps a few shells beyond the limit
      for (std::size_t s = 0; s < st.fsc.size(); ++s)
        if (double(s) > *band_limit_px) st.fsc[s] = 0;
    st.resolution_A = resolution_at(st.fsc, 0.143, box, pixel_A).value_or(2 * pixel_A);
    if (!std::isfinite(st.resolution_A)) st.resolution_A = o.initial_lowpass_A;
    if (st.resolution_A <= o.mask_start_res_A) update_mask(st, o, pixel_A, average_maps(st.half_a, st.half_b));
  };
  regularize(limit);
  share_maps(st, comm);
  st.iteration = t;
  const long moved = std::max<long>(1, ch.aligned);
  update_convergence(st, o, global, ch.angle_deg / moved);
  if (st.done && limit) {  // converged sooner than expected (--final-passes 0): the outputs need every
    st.done = false;       // frequency, which this iteration did not insert, so one more pass makes them
    st.final_passes_left = 1;
  }
  acc.reset();
  IterationStats is;
  is.iteration = t;
  is.global_search = global;
  is.aligned = ch.aligned;
  is.resolution_A = st.resolution_A;
  is.align_res_A = box * pixel_A / c.kmax_px;
  is.mean_angle_change_deg = ch.angle_deg / moved;
  is.mean_shift_change_px = ch.shift_px / moved;
  is.mean_scale = ch.scale / moved;
  if (o.symmetry_relaxation != SymmetryRelaxation::None) is.mate_change_fraction = double(ch.mate_changes) / moved;
  if (!ch.defocus_changes_A.empty()) {
    std::vector<double> d = ch.defocus_changes_A;
    const auto mid = d.begin() + static_cast<std::ptrdiff_t>(d.size() / 2);
    std::nth_element(d.begin(), mid, d.end());
    is.median_defocus_change_A = *mid;
    is.defocus_changed = static_cast<long>(d.size());
  }
  if (!st.local_cutoff_px.empty())
    is.local_resolution_quantiles_A = local_resolution_quantiles_A(st.local_cutoff_px, st.mask, pixel_A);
  is.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  st.history.push_back(is);
  if (cb.log)
    cb.log(fmt::format("iteration {} ({} search, {} particles, align to {:.1f} A): resolution {:.2f} A, "
                       "mean change {:.2f} deg {:.2f} px, mean scale {:.3f}, {:.1f} s",
                       t, global ? "global" : "local", is.aligned, is.align_res_A, is.resolution_A,
                       is.mean_angle_change_deg, is.mean_shift_change_px, is.mean_scale, is.wall_s));
  if (cb.log && is.mate_change_fraction)
    cb.log(fmt::format("  symmetry relaxation: {:.1f}% of the particles changed mate", 100 * *is.mate_change_fraction));
  if (cb.log && is.median_defocus_change_A)
    cb.log(fmt::format("  defocus refined: {} particles changed, median |change| {:.1f} A", is.defocus_changed,
                       *is.median_defocus_change_A));
  if (cb.log && !is.local_resolution_quantiles_A.empty()) {
    const auto& q = is.local_resolution_quantiles_A;
    cb.log(fmt::format("  local resolution inside the mask (A): 5% {:.2f}, 25% {:.2f}, median {:.2f}, 75% {:.2f}, "
                       "95% {:.2f}",
                       q[0], q[1], q[2], q[3], q[4]));
  }
}

}  // namespace

std::unique_ptr<Regularizer> make_fsc_regularizer() { return std::make_unique<FscRegularizer>(); }

namespace {

// The column in which the step writes each particle's mate posterior (every rank adds it alike),
// holding the prior, 1 / order, until the particle is scored (a mini-batch leaves some unscored).
void add_mate_posterior_column(ParticleSet& set, std::size_t order) {
  if (set.particle_extra_index(kMatePosteriorLabel) >= 0) return;
  set.particle_extra_labels.push_back(kMatePosteriorLabel);
  const std::string prior = fmt::format("{:.4f}", 1.0 / double(order));
  for (Particle& p : set.particles) {
    p.extra.resize(set.particle_extra_labels.size() - 1);
    p.extra.push_back(prior);
  }
}

}  // namespace

std::vector<int> cross_validation_folds(const ParticleSet& set, int folds) {
  if (folds < 1) throw std::invalid_argument("cross_validation_folds: folds must be at least 1");
  std::vector<int> fold(set.particles.size());
  long seen[3] = {0, 0, 0};
  for (std::size_t i = 0; i < fold.size(); ++i) {
    const int h = std::clamp(set.particles[i].half_set, 0, 2);
    fold[i] = static_cast<int>(seen[h]++ % folds);
  }
  return fold;
}

namespace {

std::vector<BackProjector> fold_projectors(int box, const std::vector<Mat3>& symmetry, AccumulationQuanta quanta,
                                           int folds, std::optional<double> max_radius_px) {
  std::vector<BackProjector> v;
  v.reserve(static_cast<std::size_t>(folds));
  for (int k = 0; k < folds; ++k) v.emplace_back(box, 2, max_radius_px, symmetry, quanta);
  return v;
}

}  // namespace

Accumulator::Accumulator(int box, const std::vector<Mat3>& symmetry, const std::vector<double>& noise_power,
                         std::vector<int> fold_of_particle, int folds, std::optional<double> max_radius_px)
    : fold_of_(std::move(fold_of_particle)), residual_quantum_(noise_power.size()), residual_(noise_power.size(), 0),
      count_(noise_power.size(), 0) {
  if (folds < 1 || (folds > 1 && fold_of_.empty()))
    throw std::invalid_argument("Accumulator: more than one fold needs every particle's fold");
  const AccumulationQuanta q =
      AccumulationQuanta::for_power(*std::max_element(noise_power.begin(), noise_power.end()));
  a_ = fold_projectors(box, symmetry, q, folds, max_radius_px);
  b_ = fold_projectors(box, symmetry, q, folds, max_radius_px);
  // One particle's residual in a shell is about (components in the shell) x (its power): 2^-30 of
  // the power leaves 2^33 / (4 box) particles of room (over 10^7 at box 256).
  for (std::size_t s = 0; s < noise_power.size(); ++s)
    residual_quantum_[s] =
        noise_power[s] > 0 && std::isfinite(noise_power[s]) ? std::ldexp(1.0, std::ilogb(noise_power[s]) - 30) : 0x1p-30;
}

void Accumulator::add_residual(const std::vector<double>& power, const std::vector<double>& count) {
  for (std::size_t s = 0; s < residual_.size() && s < power.size(); ++s) {
    std::atomic_ref<std::int64_t>(residual_[s]).fetch_add(std::llrint(power[s] / residual_quantum_[s]),
                                                          std::memory_order_relaxed);
    std::atomic_ref<std::int64_t>(count_[s]).fetch_add(std::llrint(count[s]), std::memory_order_relaxed);
  }
}

BackProjector& Accumulator::target(int half_set, long particle) {
  std::vector<BackProjector>& folds = half_set == 1 ? a_ : b_;
  if (folds.size() == 1) return folds.front();
  return folds[static_cast<std::size_t>(fold_of_.at(static_cast<std::size_t>(particle)))];
}

const BackProjector& Accumulator::sum_of(std::vector<BackProjector>& folds, std::optional<BackProjector>& sum) {
  if (folds.size() == 1) return folds.front();
  if (!sum) {  // integer sums: exactly the back-projector one fold per half would hold
    sum.emplace(folds.front());
    for (std::size_t k = 1; k < folds.size(); ++k) sum->add(folds[k]);
  }
  return *sum;
}

const BackProjector& Accumulator::a() { return sum_of(a_, sum_a_); }
const BackProjector& Accumulator::b() { return sum_of(b_, sum_b_); }

std::span<const BackProjector> Accumulator::folds_a() const {
  return a_.size() > 1 ? std::span<const BackProjector>(a_) : std::span<const BackProjector>();
}

std::span<const BackProjector> Accumulator::folds_b() const {
  return b_.size() > 1 ? std::span<const BackProjector>(b_) : std::span<const BackProjector>();
}

void Accumulator::reduce(Communicator& comm) {
  for (BackProjector& bp : a_) comm.sum_to_leader(bp.sums());
  for (BackProjector& bp : b_) comm.sum_to_leader(bp.sums());
  comm.sum_all(residual_);
  comm.sum_all(count_);
}

std::vector<double> Accumulator::noise_power(const std::vector<double>& previous) const {
  std::vector<double> power = previous;
  for (std::size_t s = 0; s < power.size(); ++s)
    if (count_[s] > 0) power[s] = double(residual_[s]) * residual_quantum_[s] / double(count_[s]);
  return power;
}

void run_refinement(RefineState& st, double pixel_A, const RefineOptions& o, const RefineParts& parts,
                    const RefineCallbacks& callbacks) {
  std::unique_ptr<ParticleStep> own_step;
  std::unique_ptr<Regularizer> own_reg;
  std::unique_ptr<Communicator> own_comm;
  ParticleStep* step = parts.step;
  if (!step) step = (own_step = make_homogeneous_step(o)).get();
  const Regularizer* reg = parts.regularizer;
  if (!reg) reg = (own_reg = make_fsc_regularizer()).get();
  Communicator* comm = parts.communicator;
  if (!comm) comm = (own_comm = make_serial_communicator()).get();
  RefineCallbacks cb = callbacks;
  if (!comm->leader()) cb = {};
  if (o.symmetry_relaxation != SymmetryRelaxation::None) add_mate_posterior_column(st.particles, o.symmetry.size());
  while (!st.done) {
    run_iteration(st, pixel_A, o, *step, *reg, *comm, cb);
    if (cb.iteration_done) cb.iteration_done(st);
  }
}

}  // namespace tessera
