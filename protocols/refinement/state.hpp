#pragma once
// Saving and loading a refinement's state after each finished iteration, for
// --continue: <out>/state/iter_NNN/{particles.star, half_A.mrc, half_B.mrc, raw_A.mrc, raw_B.mrc,
// mask.mrc, state.json; local_cutoff_px.mrc from a local filter}, and <out>/state/current naming the last complete folder (written after
// it, atomically, so an iteration's files are one unit whatever moment a kill comes); doubles are
// stored in shortest round-trip form, so a resumed run continues bit for bit. Shared by every
// refinement program (tessera_refinement_protocol).
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "tessera/refine.hpp"

namespace tessera::protocol {

/// One iteration's statistics as JSON (state.json, iterations.json and the
/// "iteration" events of run.log.jsonl use the same fields, declared in
/// tessera/run_files.hpp as run_files::iterations::key).
nlohmann::ordered_json iteration_json(const IterationStats& stats);

void save_state(const std::filesystem::path& out_dir, const RefineState& state, double pixel_A);
/// The state saved in out_dir, or nothing when no iteration has finished there.
std::optional<RefineState> load_state(const std::filesystem::path& out_dir);

}  // namespace tessera::protocol
