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
#include <functional>
#include <optional>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"

namespace tessera {

struct ReconstructSetOptions {
  int threads = 1;
  std::vector<Mat3> symmetry;        ///< point-group operators; empty = C1
  std::optional<double> max_res_A;   ///< highest resolution used (default: Nyquist)
  int padding = 2;
  bool apply_ctf = true;             ///< false: images have no CTF (or are CTF-corrected)
  bool wiener = true;                ///< regularize with tau^2 from the half-map FSC
};

struct HalfSetReconstruction {
  RealGrid half_a, half_b, full;
  std::vector<double> fsc;  ///< between the unregularized half maps, per Fourier shell
  long count_a = 0, count_b = 0;
};

/// progress(done, total) is called from the calling thread now and then.
/// Particles with half_set 0 are assigned 1, 2, 1, 2, ... in set order.
/// Throws InputError for a particle without pose, an image of the wrong size,
/// or an unreadable stack.
HalfSetReconstruction reconstruct_particles(const ParticleSet& set, const ReconstructSetOptions& options,
                                            const std::function<void(long, long)>& progress = {});

}  // namespace tessera
