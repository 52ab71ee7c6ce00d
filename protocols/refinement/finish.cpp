#include "refinement/finish.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "common/io.hpp"
#include "refinement/state.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/postprocess.hpp"
#include "tessera/run_files.hpp"

namespace tessera::protocol {
namespace {

Json history_json(const RefineState& st) {
  Json rows = Json::array();
  for (const auto& h : st.history) rows.push_back(iteration_json(h));
  return rows;
}

}  // namespace

void declare_refine_outputs(Schema& s) {
  s.add_output("particles_star", OutputKind::ParticlesStar, "Refined particles (STAR)");
  s.add_output("particles_sqlite", OutputKind::ParticlesSqlite, "Refined particles (Scipion)");
  s.add_output("volume", OutputKind::Volume, "Map", {.help = "FSC-weighted and low-passed at the GSFSC resolution."});
  s.add_output("map_sharp", OutputKind::Volume, "Sharpened map", {.help = "B-factor from a Guinier fit."});
  s.add_output("half_map_A", OutputKind::HalfMap, "Half map A", {.help = "Unfiltered, for validation."});
  s.add_output("half_map_B", OutputKind::HalfMap, "Half map B");
  s.add_output("mask_refine", OutputKind::Mask, "Alignment mask");
  s.add_output("mask_fsc", OutputKind::Mask, "FSC mask (tight)");
  s.add_output("fsc_star", OutputKind::FscStar, "FSC (STAR)");
  s.add_output("fsc_json", OutputKind::FscJson, "FSC (JSON)");
  s.add_output("iterations", OutputKind::Table, "Per-iteration statistics (JSON)");
}

void write_refine_outputs(RunContext& ctx, const RefineState& st, double pixel_A, std::int64_t seed) {
  const int box = st.half_a.nx();
  save_particles(ctx, st.particles, "particles", "particles_star", "particles_sqlite");
  const RealGrid& ha = st.raw_a;
  const RealGrid& hb = st.raw_b;
  save_volume(ctx, "half_map_A", "map_half_A.mrc", ha, pixel_A);
  save_volume(ctx, "half_map_B", "map_half_B.mrc", hb, pixel_A);
  const RealGrid avg = average_maps(ha, hb);

  const RealGrid tight = map_mask(avg, st.resolution_A, pixel_A, 0.2, 3.0, 6.0);
  const RealGrid loose = map_mask(avg, st.resolution_A, pixel_A, 0.2, 9.0, 12.0);
  save_volume(ctx, "mask_refine", "mask_refine.mrc", st.mask, pixel_A);
  save_volume(ctx, "mask_fsc", "mask_fsc.mrc", tight, pixel_A);
  PostprocessOptions po;
  po.seed = static_cast<std::uint64_t>(seed);
  po.lowpass = PostprocessOptions::Lowpass::AtResolution;
  const Postprocessed pp = postprocess(ha, hb, tight, pixel_A, po);
  for (const std::string& w : pp.warnings) ctx.warn(w);
  const std::vector<double> loose_fsc = masked_fsc(ha, hb, loose);
  namespace curve = run_files::fsc::curve;
  namespace column = run_files::fsc_star::curve_column;
  const std::vector<FscCurve> curves{{curve::unmasked, column::unmasked, pp.curves.unmasked, 0.143},
                                     {curve::loose, column::loose, loose_fsc, 0.143},
                                     {curve::tight, column::tight, pp.curves.masked, 0.143},
                                     {curve::corrected, column::corrected, pp.curves.corrected, 0.143}};
  const auto res = save_fsc(ctx, "fsc_star", "fsc_json", curves, box, pixel_A);
  const double final_res = pp.resolution_A && std::isfinite(*pp.resolution_A) ? *pp.resolution_A : 2 * pixel_A;
  save_volume(ctx, "volume", "map.mrc", lowpass(pp.weighted, final_res, pixel_A), pixel_A,
              {{"resolution_A", final_res}});
  const double bfactor = pp.bfactor_A2;
  save_volume(ctx, "map_sharp", "map_sharp.mrc", pp.sharpened, pixel_A, {{"bfactor_A2", bfactor}});
  atomic_write_text(ctx.path(run_files::iterations::kName), history_json(st).dump(2) + "\n");
  ctx.add_output("iterations", run_files::iterations::kName, {{"count", st.history.size()}});
  ctx.event("result",
            {{"resolution_A", final_res}, {"bfactor_A2", bfactor}, {"iterations", st.iteration}},
            fmt::format("final resolution {} (corrected FSC 0.143; unmasked {}, loose {}), B-factor {:.1f} A^2",
                        format_resolution(res[3], pixel_A), format_resolution(res[0], pixel_A),
                        format_resolution(res[1], pixel_A), bfactor));
}

}  // namespace tessera::protocol
