#pragma once
/// Local refinement of rigid modules (LO-refinement): each module of a
/// complex gets its own pose per particle, searched locally around its
/// current one, and its own reconstruction; before a module is aligned and
/// inserted, the other modules' expected images (at their own poses, through
/// the particle's CTF and fitted contrast) are subtracted from the image.
/// One mask = a region refined against the rest of the particle (cryoSPARC's
/// local refinement); several = multi-body.
///
/// It runs the one refinement loop (refine.hpp) once per module and round,
/// with homogeneous refinement's step given a SignalRemoval that subtracts
/// the other modules, local search only, and the module's mask as the fixed
/// alignment mask; the regularizer is any (Wiener by default, non-uniform as
/// an option). docs/refine_local.md has the method and the measurements.
///
/// Poses. A module's pose is a ProjectionPose in the particle's frame (RELION
/// conventions): its rotation is A R_m and its origin the particle's origin
/// less the projection of the module's displacement, so the module's
/// expected image is the forward model (forward_model.hpp) of the module's
/// map at that pose, as the simulator makes it (simulate.hpp), and
/// relion_reconstruct rebuilds the module from it.
///
/// Fulcrum. Each module's loop runs in its fulcrum frame: the mask's centre
/// of mass (whole voxels) moved to the box centre, with the maps and mask
/// moved alike and every origin less the fulcrum's projection (a map
/// displaced by c has origin o - (A c)_xy). The local search rotates about
/// the box centre, so in this frame it rotates the module about its fulcrum
/// and a rotation does not also move the module; poses and maps are brought
/// back to the box's frame after each run.
///
/// What is subtracted. The other modules at their current poses (their
/// regularized half maps inside their masks) and the rest of the map at the
/// consensus pose: the consensus half maps FSC-weighted (fsc_weight; a raw
/// half map would add its noise to every image), inside the map's own
/// envelope (map_mask) less the module masks. The other modules and the rest
/// are taken at the particle's consensus contrast.
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tessera/communicator.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/refine.hpp"

namespace tessera {

struct LocalRefineOptions {
  /// The loop's options for each module's refinement. The local search
  /// ranges are options.local, whose prior sigmas (when set) are centred on
  /// each particle's consensus pose; global_iterations is taken as 0, and the
  /// mask is the module's (no dynamic masking).
  RefineOptions refine;
  int rounds = 2;                   ///< every module refined in turn, this many times
  int iterations_per_module = 3;    ///< loop iterations per module and round (its max_iterations)
  bool subtract_other_modules = true;  ///< false: align modules against the whole image (for comparison)
};

struct ModuleRefinement {
  std::vector<ProjectionPose> poses;  ///< per particle of the set, in set order
  std::vector<double> scales;         ///< per particle: the module's fitted contrast
  RealGrid half_a, half_b;            ///< regularized half maps (the references), module's mask applied
  RealGrid raw_a, raw_b;              ///< unregularized half maps: FSC and outputs
  std::vector<double> fsc;            ///< masked by the module's mask
  double resolution_A = 0;            ///< FSC 0.143 of raw_a, raw_b inside the module's mask
  std::vector<IterationStats> history;  ///< the loop's statistics, every round
  std::vector<double> noise_power;    ///< the module's residual power per shell (the next round's noise model)
};

struct LocalRefinement {
  std::vector<ModuleRefinement> modules;
};

struct LocalRefineCallbacks {
  std::function<void(const std::string&)> log;
  std::function<void(long, long)> progress;
};

/// Refines each module of `masks` (values in [0, 1], the maps' grid) from the
/// consensus: particles with poses and half sets (a random split by
/// options.refine.seed for particles without), the consensus half maps
/// (same box as the particles), the regularizer (null: Wiener) and the
/// communicator (null: one process). Throws InputError for masks of another
/// grid, particles without poses, or no mask.
LocalRefinement run_local_refinement(ParticleSet particles, const RealGrid& half_a, const RealGrid& half_b,
                                     std::span<const RealGrid> masks, double pixel_A,
                                     const LocalRefineOptions& options, const Regularizer* regularizer,
                                     Communicator* communicator, const LocalRefineCallbacks& callbacks);

}  // namespace tessera
