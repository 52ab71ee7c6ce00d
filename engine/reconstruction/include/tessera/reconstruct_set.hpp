#pragma once
/// Gold-standard reconstruction of a particle set from its poses: two
/// independent half maps, their FSC, and the full map.
///
/// Each image X is read from its stack, transformed, shifted by +origin (so the
/// particle sits at the box centre, RELION's convention), and inserted as
/// data = CTF * X with weight CTF^2 (CTF includes the per-particle scale).
/// With `wiener` on, the half maps are regularized with tau^2 from their own
/// FSC (SNR = FSC / (1 - FSC), tau^2 = SNR / mean weight of the shell), and the
/// full map with the FSC of the full set, 2 FSC / (1 + FSC), as RELION does.
/// With `ewald_sphere`, each image is inserted as the Ewald model's two sidebands
/// (backproject_ewald, forward_model.hpp) into its half's back-projector instead.
#include <functional>
#include <optional>
#include <vector>

#include "tessera/forward_model.hpp"
#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"

namespace tessera {

struct ReconstructSetOptions {
  int threads = 1;
  std::vector<Mat3> symmetry;        ///< point-group operators; empty = C1
  std::optional<double> max_res_A;   ///< highest resolution used (default: Nyquist)
  int padding = 2;
  bool apply_ctf = true;             ///< false: images have no CTF (or are CTF-corrected)
  bool wiener = true;                ///< regularize with tau^2 from the half-map FSC
  EwaldSphere ewald_sphere = EwaldSphere::Off;  ///< Ewald sphere correction (needs apply_ctf)
};

struct HalfSetReconstruction {
  RealGrid half_a, half_b, full;  ///< regularized when a Wiener filter was asked for
  RealGrid raw_a, raw_b;          ///< the half maps without regularization
  std::vector<double> fsc;  ///< between the unregularized half maps, per Fourier shell
  long count_a = 0, count_b = 0;
  /// A regularizer with a local filter (non-uniform refinement): the per-voxel
  /// cut-off in Fourier pixels (resolution box * voxel_A / cut-off), the mean
  /// of the two halves' choices; empty otherwise.
  RealGrid local_cutoff_px;
};

/// Half maps, their FSC and the full map from two filled back-projectors
/// (with `wiener`, regularized as described above). Also used by refinement.
/// The maps are made one after the other, each on `threads` threads (so the
/// memory of one reconstruction is needed at a time: about 1.6 GB besides the
/// back-projectors at box 256); `want_full` = false skips the full map (r.full
/// stays empty). `band_limit_px`: only frequencies up to it are needed
/// (ReconstructOptions::band_limit_px); the FSC is 0 beyond it.
HalfSetReconstruction reconstruct_halves(const BackProjector& a, const BackProjector& b, bool wiener,
                                         bool want_full = true, int threads = 1,
                                         std::optional<double> band_limit_px = {});

/// tau^2 per shell from an FSC and the mean weight per shell (0 where the
/// weight is 0); FSC values are clamped to [0.001, 0.999].
std::vector<double> tau2_from_fsc(const std::vector<double>& fsc_curve, const std::vector<double>& mean_weight);

/// progress(done, total) is called from the calling thread now and then.
/// Particles with half_set 0 are assigned 1, 2, 1, 2, ... in set order (deal_half_sets).
/// Throws InputError for a particle without pose, without CTF (has_ctf) while
/// apply_ctf is on, an image of the wrong size or with NaN or infinite values,
/// or an unreadable stack.
HalfSetReconstruction reconstruct_particles(const ParticleSet& set, const ReconstructSetOptions& options,
                                            const std::function<void(long, long)>& progress = {});

}  // namespace tessera
