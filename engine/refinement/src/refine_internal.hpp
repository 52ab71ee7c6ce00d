#pragma once
// Shared by the refinement loop (refine.cpp) and homogeneous refinement's parts
// (homogeneous_step.cpp); not part of the engine's interface.
#include "tessera/refine.hpp"

namespace tessera {

/// Highest frequency (pixels) used for alignment at the current resolution:
/// 4 shells beyond it, never beyond max_align_res_A or box/2 - 1.
double alignment_kmax(double resolution_A, const RefineOptions& o, int box, double pixel_A);

/// The context of the iteration after st.iteration: noise model, alignment limit, threads.
IterationContext iteration_context(const RefineState& st, const RefineOptions& o, int box, double pixel_A,
                                   bool global);

}  // namespace tessera
