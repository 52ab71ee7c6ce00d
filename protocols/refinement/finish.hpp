#pragma once
// The outputs of a refinement: particles with poses, maps, masks, FSC curves
// (unmasked, loose, tight, tight corrected by phase randomization), the
// B-factor-sharpened map and the per-iteration statistics.
#include <cstdint>

#include "common/run_context.hpp"
#include "common/schema.hpp"
#include "tessera/refine.hpp"

namespace tessera::protocol {

void declare_refine_outputs(Schema& schema);
void write_refine_outputs(RunContext& ctx, const RefineState& state, double pixel_A, std::int64_t seed);

}  // namespace tessera::protocol
