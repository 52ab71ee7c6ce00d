#pragma once
// Shared by the refinement loop (refine.cpp) and homogeneous refinement's parts
// (homogeneous_step.cpp); not part of the engine's interface.
#include <optional>

#include "tessera/refine.hpp"

namespace tessera {

/// Highest frequency (pixels) used for alignment at the current resolution:
/// 4 shells beyond it, never beyond max_align_res_A or box/2 - 1.
double alignment_kmax(double resolution_A, const RefineOptions& o, int box, double pixel_A);

/// The frequencies (Fourier pixels) an iteration's maps need when its alignment limit is kmax_px,
/// or none when that is nearly all of them: the band limit of its reconstruction, and so of the
/// references the next iteration projects (their projectors are held on the grid it implies).
std::optional<double> reconstruction_band_limit(double kmax_px, int box);

/// The context of the iteration after st.iteration: noise model, alignment limit, threads.
IterationContext iteration_context(const RefineState& st, const RefineOptions& o, int box, double pixel_A,
                                   bool global);

}  // namespace tessera
