#include "refine_homo/finish.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "common/io.hpp"
#include "refine_homo/state.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"

namespace tessera::protocol {
namespace {

RealGrid times(const RealGrid& a, const RealGrid& m) {
  RealGrid out = a;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] *= m[i];
  return out;
}

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
  const std::vector<double> unmasked = fsc(ha, hb);
  const std::vector<double> loose_fsc = fsc(times(ha, loose), times(hb, loose));
  std::vector<double> corrected;
  std::vector<double> tight_fsc;
  try {
    const MaskedFsc m = corrected_fsc(ha, hb, tight, pixel_A, std::nullopt, static_cast<std::uint64_t>(seed));
    tight_fsc = m.masked;
    corrected = m.corrected;
  } catch (const InputError& e) {  // the FSC never falls below 0.8: nothing to randomize
    tight_fsc = fsc(times(ha, tight), times(hb, tight));
    corrected = tight_fsc;
    ctx.warn(fmt::format("no phase-randomization correction: {}", e.what()));
  }
  const std::vector<FscCurve> curves{
      {"unmasked", "rlnFourierShellCorrelationUnmaskedMaps", unmasked, 0.143},
      {"loose", "rlnFourierShellCorrelationLooseMask", loose_fsc, 0.143},
      {"tight", "rlnFourierShellCorrelationMaskedMaps", tight_fsc, 0.143},
      {"corrected", "rlnFourierShellCorrelationCorrected", corrected, 0.143}};
  const auto res = save_fsc(ctx, "fsc_star", "fsc_json", "fsc", curves, box, pixel_A);
  const double final_res = res[3] && std::isfinite(*res[3]) ? *res[3] : 2 * pixel_A;

  std::vector<double> full(corrected.size());
  for (std::size_t k = 0; k < full.size(); ++k) full[k] = 2 * std::max(corrected[k], 0.0) / (1 + std::max(corrected[k], 0.0));
  const RealGrid weighted = fsc_weight(avg, full);
  save_volume(ctx, "volume", "map.mrc", lowpass(weighted, final_res, pixel_A), pixel_A,
              {{"resolution_A", final_res}});
  double bfactor = 0;
  try {
    bfactor = guinier_bfactor(weighted, pixel_A, 10.0, final_res).bfactor_A2;
  } catch (const InputError& e) {
    ctx.warn(fmt::format("no B-factor fit: {}", e.what()));
  }
  save_volume(ctx, "map_sharp", "map_sharp.mrc", sharpen(weighted, pixel_A, bfactor, final_res), pixel_A,
              {{"bfactor_A2", bfactor}});
  atomic_write_text(ctx.path("iterations.json"), history_json(st).dump(2) + "\n");
  ctx.add_output("iterations", "iterations.json", {{"count", st.history.size()}});
  ctx.event("result",
            {{"resolution_A", final_res}, {"bfactor_A2", bfactor}, {"iterations", st.iteration}},
            fmt::format("final resolution {} (corrected FSC 0.143; unmasked {}, loose {}), B-factor {:.1f} A^2",
                        format_resolution(res[3], pixel_A), format_resolution(res[0], pixel_A),
                        format_resolution(res[1], pixel_A), bfactor));
}

}  // namespace tessera::protocol
