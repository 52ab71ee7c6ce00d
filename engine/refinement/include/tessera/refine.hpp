#pragma once
/// Gold-standard 3D refinement: one iteration loop for every refinement
/// program, with replaceable parts (docs/refinement_loop.md shows how
/// non-uniform, local, CUDA and MPI refinement plug in):
///  - a ParticleStep: prepares references from the current maps once per
///    iteration and processes batches of particles: pose search (any strategy,
///    per particle or per module; PoseSearch::search_batch), contrast, residual
///    power, insertion into the accumulator. make_homogeneous_step() is
///    homogeneous refinement's;
///  - a Regularizer: half maps from the two filled back-projectors, told the
///    mask, pixel size, resolution and iteration (RegularizerContext);
///  - a Communicator (communicator.hpp): one process, or MPI ranks that each
///    process a contiguous share of the particles.
///
/// One iteration:
///  1. references: each half map, masked (solvent flattened) by the current
///     mask, low-passed to the current resolution; Fourier components coarser
///     than the GSFSC split resolution are averaged between the halves;
///  2. each particle is aligned against its own half's reference (global
///     search in the first iterations, local after), its contrast scale fitted
///     by least squares, and its residual power added to the noise model;
///  3. the half maps are reconstructed from the new poses (regularizer), the
///     FSC of the unregularized half maps inside the mask gives the new
///     resolution (0.143); contrast scales are normalized to a mean of 1 (the
///     maps take the common factor, so the model is unchanged);
///  4. the mask is remade from the map (dynamic masking) once the resolution
///     passes its start resolution.
/// The loop stops when the resolution has not improved for `patience`
/// iterations of local search and the mean pose change has fallen below the
/// finest local step, after `final_passes` more.
///
/// Accumulation is exact (integer sums, projector.hpp), every per-particle
/// computation depends only on the particle and the references, and every
/// sum over particles is taken in particle order: the results are the same
/// bit for bit whatever the number of threads and MPI ranks. Memory: one pair
/// of back-projectors per process, shared by its threads (K pairs when the
/// regularizer asks for K cross-validation folds per half).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tessera/communicator.hpp"
#include "tessera/ctf_refine.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/pose_search.hpp"
#include "tessera/projector.hpp"
#include "tessera/reconstruct_set.hpp"
#include "tessera/symmetry_relaxation.hpp"

namespace tessera {

struct RefineOptions {
  int threads = 1;
  std::uint64_t seed = 1;
  std::vector<Mat3> symmetry;          ///< empty: C1
  /// None: the symmetry is imposed on the maps. Otherwise it only names each
  /// particle's mates, and the maps are reconstructed in C1 (symmetry_relaxation.hpp).
  SymmetryRelaxation symmetry_relaxation = SymmetryRelaxation::None;
  /// Relaxation scores the mates on frequencies up to this resolution (never beyond the
  /// alignment limit); symmetry_relaxation.hpp says why the default is the GSFSC split's.
  double relaxation_max_res_A = 20;
  double initial_lowpass_A = 30;
  double gsfsc_split_A = 20;           ///< coarser frequencies are shared by the halves
  std::optional<double> max_align_res_A;
  double particle_diameter_A = 0;      ///< 0: 0.8 x box; sets the spherical mask and window
  double window_inner_frac = 0.85, window_outer_frac = 0.99;  ///< image window radii (fraction of box/2)
  bool minimize_scale = true;          ///< fit each particle's contrast scale
  bool reset_scale = false;            ///< start every scale at 1 instead of the input's
  double mask_threshold = 0.2;         ///< dynamic mask: fraction of the map's maximum
  double mask_near_A = 6, mask_far_A = 12;  ///< dilation and soft edge width
  double mask_start_res_A = 12;        ///< dynamic masking from this resolution on
  int global_iterations = 2;           ///< iterations with global search
  int patience = 1;                    ///< iterations without improvement before stopping
  int final_passes = 1;
  int max_iterations = 20;
  /// Mini-batches: in the global iterations before the last, align (and
  /// reconstruct from) only a random subset of this many particles (0: all).
  long minibatch_size = 0;
  GlobalSearchOptions global;
  LocalSearchOptions local;
  /// Per-particle defocus refinement in homogeneous refinement's step (ctf_refine.hpp); unset: none.
  std::optional<LoopDefocusOptions> defocus;
  /// Ewald sphere correction of the insertion (both half sets; forward_model.hpp, backproject_ewald):
  /// each particle is back-projected as its two sidebands. Alignment keeps the flat model.
  EwaldSphere ewald_sphere = EwaldSphere::Off;
};

struct IterationStats {
  int iteration = 0;
  bool global_search = false;
  long aligned = 0;                 ///< particles aligned this iteration
  double resolution_A = 0;          ///< GSFSC 0.143 inside the soft mask
  double align_res_A = 0;           ///< highest resolution used for alignment
  double mean_angle_change_deg = 0; ///< mean change of the aligned particles' rotations
  double mean_shift_change_px = 0;
  double mean_scale = 1;
  double wall_s = 0;
  /// Regularizers with a local filter (non-uniform refinement): quantiles of
  /// the local resolution (A) inside the mask (> 0.5), at the fractions
  /// kLocalResolutionQuantiles; empty otherwise.
  std::vector<double> local_resolution_quantiles_A;
  /// With symmetry relaxation: the fraction of the aligned particles that
  /// changed mate (nearest_mate of their previous pose is not 0); unset without.
  std::optional<double> mate_change_fraction;
  /// In an iteration that refined per-particle defocus (RefineOptions::defocus): the median
  /// |change| of defocus U (A) over the particles whose defocus it changed, and how many
  /// those were; unset in other iterations.
  std::optional<double> median_defocus_change_A;
  long defocus_changed = 0;
};

/// The fractions at which IterationStats::local_resolution_quantiles_A are taken.
inline constexpr double kLocalResolutionQuantiles[] = {0.05, 0.25, 0.5, 0.75, 0.95};

/// Everything needed to continue from a finished iteration.
struct RefineState {
  int iteration = 0;               ///< iterations finished
  ParticleSet particles;           ///< current poses, half sets, scales
  RealGrid half_a, half_b;         ///< current half maps, regularized: the references
  RealGrid raw_a, raw_b;           ///< the same without regularization: FSC and outputs
  RealGrid mask;                   ///< alignment mask
  /// The last iteration's per-voxel filter cut-off (Fourier pixels, mean of
  /// the halves), from a regularizer with a local filter; empty otherwise.
  RealGrid local_cutoff_px;
  std::vector<double> fsc;         ///< last masked FSC between the halves
  double resolution_A = 0;
  double best_resolution_A = 1e9;
  int iterations_without_gain = 0;
  int final_passes_left = -1;      ///< -1 until convergence
  std::vector<double> noise_power; ///< sigma^2 per shell
  /// The factor the initial volume was multiplied by to match the particles' greyscale.
  double reference_greyscale = 1;
  std::vector<IterationStats> history;
  bool done = false;
};

struct RefineCallbacks {
  std::function<void(const std::string&)> log;
  std::function<void(long, long)> progress;
  std::function<void(const RefineState&)> iteration_done;  ///< e.g. save for --continue
};

/// What the loop's parts know about the iteration they serve.
struct IterationContext {
  int iteration = 0;         ///< 1-based: the iteration being run
  bool global = false;       ///< global search (no prior) this iteration
  int box = 0;
  double pixel_A = 0;
  double resolution_A = 0;   ///< of the previous iteration
  double kmax_px = 0;        ///< highest frequency used for alignment
  int threads = 1;           ///< threads of this process
  std::vector<double> inv_sigma2;  ///< noise model: 1 / sigma^2 per shell
};

/// What a regularizer may use besides the two back-projectors.
struct RegularizerContext {
  const RealGrid& mask;      ///< current alignment mask
  double pixel_A;
  double resolution_A;       ///< of the previous iteration
  int iteration;             ///< the one being finished
  const std::vector<Mat3>& symmetry;
  int threads;               ///< threads of this process
  /// Frequencies beyond this radius (Fourier pixels) are not needed this
  /// iteration (ReconstructOptions::band_limit_px); unset: all, as in the
  /// last iteration, whose maps are the outputs.
  std::optional<double> band_limit_px;
  /// Cross-validation folds of each half (Regularizer::folds_per_half() of
  /// them; empty when that is 1): fold k holds the half's particles whose
  /// index within their half set is k modulo the number of folds, and the
  /// half's back-projector is the exact sum of its folds.
  std::span<const BackProjector> folds_a = {}, folds_b = {};
};

/// Makes half maps from two filled back-projectors (raw and regularized, and
/// the FSC of the raw ones).
class Regularizer {
 public:
  virtual ~Regularizer() = default;
  /// Back-projectors per half set the loop fills for it (>= 1): more than one
  /// for a regularizer that cross-validates within each half.
  virtual int folds_per_half() const { return 1; }
  virtual HalfSetReconstruction reconstruct(const BackProjector& a, const BackProjector& b,
                                            const RegularizerContext& context) const = 0;
};
/// Homogeneous refinement: Wiener filter with tau^2 from the half-map FSC.
std::unique_ptr<Regularizer> make_fsc_regularizer();
/// Non-uniform refinement's regularizer is make_nu_regularizer (nu_regularizer.hpp).

/// The cross-validation fold of every particle of a set: its index within its
/// half set (in set order) modulo `folds`. Depends only on the set's half
/// sets, so every thread and rank agrees, and the folds of a half differ in
/// size by at most one particle.
std::vector<int> cross_validation_folds(const ParticleSet& set, int folds);

/// Where the particles of one process go in an iteration: each half's
/// back-projectors (one per cross-validation fold) and the residual power per
/// shell, in exact fixed-point sums that many threads add to at once
/// (insertions are thread-safe).
class Accumulator {
 public:
  /// fold_of_particle: the fold of each particle of the set (indices as in
  /// ParticleSet::particles, values 0 .. folds - 1); empty: one fold per half.
  /// max_radius_px: frequencies inserted (BackProjector's max_radius_px): the
  /// iteration's band limit, so that a band-limited iteration inserts, stores
  /// and reduces only what its maps need; unset: every frequency.
  Accumulator(int box, const std::vector<Mat3>& symmetry, const std::vector<double>& noise_power,
              std::vector<int> fold_of_particle = {}, int folds = 1, std::optional<double> max_radius_px = {});
  /// The back-projector that particle `particle` (index into the set) of half
  /// set `half_set` (1 or 2) goes into.
  BackProjector& target(int half_set, long particle);
  /// Adds one particle's residual power per shell (sum of |X - model|^2 over its
  /// Fourier components, each counted with its multiplicity) and its component counts.
  void add_residual(const std::vector<double>& power, const std::vector<double>& count);
  /// Exact sums over ranks, into the leader's accumulator.
  void reduce(Communicator& comm);
  /// The residual power per shell per component (sum / count); shells without
  /// components keep `previous`'s value.
  std::vector<double> noise_power(const std::vector<double>& previous) const;
  /// The whole half set: the exact sum of its folds (made once, after the
  /// last insertion; with one fold, the fold itself).
  const BackProjector& a();
  const BackProjector& b();
  /// The folds of each half; empty with one fold per half.
  std::span<const BackProjector> folds_a() const;
  std::span<const BackProjector> folds_b() const;

 private:
  const BackProjector& sum_of(std::vector<BackProjector>& folds, std::optional<BackProjector>& sum);
  std::vector<BackProjector> a_, b_;          // the folds of each half
  std::optional<BackProjector> sum_a_, sum_b_;  // with more than one fold
  std::vector<int> fold_of_;
  std::vector<double> residual_quantum_;
  std::vector<std::int64_t> residual_, count_;
};

/// The per-particle part of an iteration. The loop calls prepare() once per
/// iteration on every rank, then process() on batches of this rank's particles
/// from several threads at once, and apply() on every particle's outcome
/// (gathered from all ranks) in particle order.
class ParticleStep {
 public:
  virtual ~ParticleStep() = default;
  /// Doubles in one particle's outcome. The first three are common to every
  /// step: rotation change (degrees; NaN when the particle had no pose),
  /// shift change (pixels) and contrast scale.
  virtual int outcome_size() const = 0;
  /// References for this iteration from the state's maps (e.g. projectors and pose searches).
  virtual void prepare(const RefineState& state, const IterationContext& context) = 0;
  /// Frees the references once the iteration's particles are done (before reconstruction).
  virtual void release() {}
  /// Processes particles `batch` (indices into set.particles) on thread
  /// `thread` (0 .. context.threads - 1): adds them to `acc` and writes each
  /// one's outcome to outcomes[k * outcome_size() ...]. Must not modify the
  /// set: outcomes are applied once all ranks are done.
  virtual void process(std::span<const long> batch, const ParticleSet& set, int thread, Accumulator& acc,
                       std::span<double> outcomes) = 0;
  /// Writes an outcome into its particle (pose, scale, ...).
  virtual void apply(std::span<const double> outcome, Particle& particle) const = 0;
};

/// Homogeneous refinement's step: one pose per particle, searched by
/// global_search for the first options.global_iterations iterations and by
/// local_search after (defaults: make_global_search(options.global) and
/// make_local_search(options.local)); least-squares contrast; back-projection
/// at the best pose or over the posterior.
///
/// hooks (StepHooks) let another refinement use this step: local refinement
/// takes the other modules out of each image and centres a prior on the
/// consensus pose.
using SearchFactory = std::function<std::unique_ptr<PoseSearch>(const IterationContext&)>;
/// Takes signal out of an image before it is aligned, fitted and inserted:
/// called with the particle, its index in the set, its CTF (scale 1,
/// model_ctf) and its image's half-complex transform, which it may change.
/// Called from many threads at once.
using SignalRemoval = std::function<void(const Particle&, long index, const RealGrid& ctf, ComplexGrid& image)>;
/// The centre of the local search's Gaussian prior for particle `index`
/// (LocalSearchOptions::prior_*), in the loop's frame; nullopt: none for it.
using PriorCentre = std::function<std::optional<ProjectionPose>(long index)>;
struct StepHooks {
  SignalRemoval remove_signal;  ///< empty: the images as read
  PriorCentre prior_centre;     ///< empty: no prior
};
std::unique_ptr<ParticleStep> make_homogeneous_step(const RefineOptions& options, SearchFactory global_search = {},
                                                    SearchFactory local_search = {}, StepHooks hooks = {});

/// Gives every particle a half set (1 or 2) unless all have one: a random
/// split into equal halves drawn with `seed` (as start_refinement does).
void assign_half_sets(ParticleSet& set, std::uint64_t seed);

/// The parts of a refinement (see the file comment). Null members take the
/// homogeneous defaults: make_homogeneous_step, make_fsc_regularizer and the
/// serial communicator.
struct RefineParts {
  ParticleStep* step = nullptr;
  const Regularizer* regularizer = nullptr;
  Communicator* communicator = nullptr;
};

/// Prepares the starting state: half sets (random split with the seed unless
/// every particle has one), the reference low-passed to initial_lowpass_A for
/// both halves, a spherical mask of the particle diameter, the noise model
/// from the images' power spectra. The reference's greyscale (a map from EMDB
/// or another package, any scaling) says nothing about the particles': it is
/// re-estimated, as RELION and cryoSPARC do, from the least-squares contrast of
/// up to 200 particles at their best poses, found by a search that scores each
/// pose at its own best contrast (alignment.hpp), and the reference multiplied
/// by it (RefineState::reference_greyscale). Throws InputError when fewer than
/// half of those particles correlate with the reference at all. Deterministic:
/// every rank of an MPI run computes the same state.
RefineState start_refinement(ParticleSet particles, const RealGrid& reference, double pixel_A,
                             const RefineOptions& options);

/// Runs iterations from `state` until convergence (or max_iterations). Under
/// MPI every rank calls it with the same state; callbacks are called on the
/// leader only, and only the leader's state holds the unregularized maps
/// (raw_a, raw_b); the rest of the state is the same on every rank.
void run_refinement(RefineState& state, double pixel_A, const RefineOptions& options, const RefineParts& parts,
                    const RefineCallbacks& callbacks);

}  // namespace tessera
