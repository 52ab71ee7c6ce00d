#pragma once
/// Gold-standard 3D refinement (homogeneous): the iteration loop with its
/// replaceable parts, a pose-search strategy (pose_search.hpp) and a
/// regularizer (how half maps are made from back-projected data).
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
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/pose_search.hpp"
#include "tessera/projector.hpp"
#include "tessera/reconstruct_set.hpp"

namespace tessera {

/// Makes half maps from two filled back-projectors.
class Regularizer {
 public:
  virtual ~Regularizer() = default;
  virtual HalfSetReconstruction reconstruct(const BackProjector& a, const BackProjector& b) const = 0;
};
/// Homogeneous refinement: Wiener filter with tau^2 from the half-map FSC.
std::unique_ptr<Regularizer> make_fsc_regularizer();

struct RefineOptions {
  int threads = 1;
  std::uint64_t seed = 1;
  std::vector<Mat3> symmetry;          ///< empty: C1
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
};

/// Everything needed to continue from a finished iteration.
struct RefineState {
  int iteration = 0;               ///< iterations finished
  ParticleSet particles;           ///< current poses, half sets, scales
  RealGrid half_a, half_b;         ///< current half maps, regularized: the references
  RealGrid raw_a, raw_b;           ///< the same without regularization: FSC and outputs
  RealGrid mask;                   ///< alignment mask
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

/// Prepares the starting state: half sets (random split with the seed unless
/// every particle has one), the reference low-passed to initial_lowpass_A for
/// both halves, a spherical mask of the particle diameter, the noise model
/// from the images' power spectra. The reference's greyscale (a map from EMDB
/// or another package, any scaling) says nothing about the particles': it is
/// re-estimated, as RELION and cryoSPARC do, from the least-squares contrast of
/// up to 200 particles at their best poses, found by a search that scores each
/// pose at its own best contrast (alignment.hpp), and the reference multiplied
/// by it (RefineState::reference_greyscale). Throws InputError when fewer than
/// half of those particles correlate with the reference at all.
RefineState start_refinement(ParticleSet particles, const RealGrid& reference, double pixel_A,
                             const RefineOptions& options);

/// Runs iterations from `state` until convergence (or max_iterations).
void run_refinement(RefineState& state, double pixel_A, const RefineOptions& options, const Regularizer& regularizer,
                    const RefineCallbacks& callbacks);

}  // namespace tessera
