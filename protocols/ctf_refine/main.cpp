// tessera_ctf_refine: per-particle defocus refinement, standalone (as cryoSPARC's
// Local CTF Refinement and RELION's ctf_refine are used): particles with poses
// and a map, or two half maps (each half set against its own half map), give
// each particle (or each micrograph) a new defocus U and V, found by a 1D
// search of one offset scored by the refinement's likelihood under the forward
// model (tessera/ctf_refine.hpp; docs/ctf_refine.md).
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "common/cli.hpp"
#include "common/consensus.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/ctf_refine.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/particle_images.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_ctf_refine";
  s.version = "0.1.0";
  s.label = "CTF refinement (per-particle defocus)";
  s.description =
      "Refines each particle's defocus (or each micrograph's) at its current pose against a map or two half maps: "
      "one offset added to defocus U and V, searched on a grid over the range and then by golden section, scored "
      "by the refinement's Gaussian likelihood under the forward model with the contrast scale fitted at each "
      "offset. With half maps each half set is scored against its own half map (gold standard). Writes the "
      "particles with the new rlnDefocusU/V and the defocus change per micrograph (JSON) for plots.";
  s.scipion_base_class = "ProtParticles";
  s.support.threads = true;
  s.add_input("particles", tp::InputKind::Particles, "Particles",
              {.help = "Particles with poses and CTF (STAR or sqlite), e.g. a refinement's output."});
  s.add_input("map", tp::InputKind::Volume, "Map",
              {.help = "The map every particle is scored against (any greyscale). Give it or both half maps.",
               .required = false});
  s.add_input("half_map_A", tp::InputKind::Volume, "Half map A",
              {.help = "Half set 1's map (rlnRandomSubset 1); with half map B instead of --map.", .required = false});
  s.add_input("half_map_B", tp::InputKind::Volume, "Half map B",
              {.help = "Half set 2's map.", .required = false});
  s.add_input("mask", tp::InputKind::Mask, "Mask",
              {.help = "Soft mask applied to the map(s) before projecting (solvent flattening); also masks the "
                       "half maps' FSC that sets the default highest resolution.",
               .required = false});
  s.add_float("defocus_range_A", "Defocus search range",
              {.default_value = 1000.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Offsets from -range to +range around each particle's defocus are searched."});
  s.add_float("defocus_step_A", "Defocus search step",
              {.default_value = 50.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Step of the grid; the best grid offset is then refined by golden section to 1 A."});
  s.add_float("min_res_A", "Lowest resolution scored",
              {.default_value = 20.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Frequencies coarser than this carry little defocus information and are left out."});
  s.add_float("max_res_A", "Highest resolution scored",
              {.min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Default: the half maps' FSC 0.143 resolution (inside the mask when given), or Nyquist with "
                       "one map."});
  s.add_bool("per_micrograph", "One defocus change per micrograph",
             {.default_value = false,
              .help = "Sum the scores of the particles of each micrograph (rlnMicrographName) and give them one "
                      "offset; a particle without a micrograph name is its own group."});
  s.add_output("particles_star", tp::OutputKind::ParticlesStar, "Particles (STAR)");
  s.add_output("particles_sqlite", tp::OutputKind::ParticlesSqlite, "Particles (Scipion)");
  s.add_output("defocus_json", tp::OutputKind::Table, "Defocus change (JSON)",
               {.help = "Per micrograph: particles, mean and standard deviation of the defocus change (A); the "
                        "median absolute change and the resolution range scored."});
  return s;
}

struct Inputs {
  ParticleSet set;
  std::vector<RealGrid> maps;  // one, or the two half maps
  double pixel_A = 0;
  double max_res_A = 0;
};

// The particles, checked: poses, CTF, stacks, and half sets when there are half maps.
ParticleSet load_checked_particles(const fs::path& file, bool halves) {
  ParticleSet set = tp::load_particles(file);
  if (set.particles.empty()) throw InputError(fmt::format("{}: no particles", file.string()));
  if (!set.has_poses())
    throw InputError(fmt::format("{}: not every particle has a pose (rlnAngleRot/Tilt/Psi); refine them first",
                                 file.string()));
  tp::check_ctf(set, file, "give particles with CTF estimates (rlnDefocusU/V)");
  tp::check_particle_stacks(set, particle_box(set));
  if (halves) tp::check_half_sets(set, file);
  if (halves)
    for (const Particle& p : set.particles)
      if (p.half_set != 1 && p.half_set != 2)
        throw InputError(fmt::format("{}: particle {} has no half set (rlnRandomSubset 1 or 2), needed with half maps",
                                     file.string(), p.image.to_string()));
  return set;
}

Inputs load_inputs(const tp::Values& v) {
  const auto map = v.input_optional("map"), ha = v.input_optional("half_map_A"), hb = v.input_optional("half_map_B");
  if (map && (ha || hb)) throw InputError("--map: give either a map or two half maps (--half-map-A, --half-map-B)");
  if (!map && !(ha && hb))
    throw InputError(ha || hb ? "--half-map-A, --half-map-B: give both half maps"
                              : "--map: give a map or two half maps (--half-map-A, --half-map-B)");
  Inputs in;
  const fs::path particles = v.input("particles");
  in.set = load_checked_particles(particles, !map);
  const int box = particle_box(in.set);
  in.pixel_A = in.set.optics_of(in.set.particles.front()).pixel_A;
  const tp::LoadedVolume grid{RealGrid(box, box, box), in.pixel_A};
  std::vector<tp::LoadedVolume> loaded;
  if (map) {
    loaded.push_back(tp::load_volume(*map));
    tp::check_same_grid(loaded[0], *map, grid, "the particles");
    tp::check_has_signal(loaded[0], *map);
  } else {
    auto halves = tp::load_half_maps(*ha, *hb);
    tp::check_same_grid(halves[0], *ha, grid, "the particles");
    loaded = {std::move(halves[0]), std::move(halves[1])};
  }
  std::optional<RealGrid> mask;
  if (auto m = v.input_optional("mask")) mask = tp::load_mask(*m, loaded[0], (map ? *map : *ha).string()).data;
  const double min_res = v.get<double>("min_res_A");
  tp::check_resolution_in_box(min_res, "--min-res-A", box, in.pixel_A);
  const auto max_res = v.get_optional<double>("max_res_A");
  tp::check_resolution_in_box(max_res, "--max-res-A", box, in.pixel_A);
  if (map) {
    in.max_res_A = max_res.value_or(2 * in.pixel_A);
  } else {
    const std::vector<double> curve = mask ? masked_fsc(loaded[0].data, loaded[1].data, *mask)
                                           : fsc(loaded[0].data, loaded[1].data);
    in.max_res_A = max_res.value_or(resolution_at(curve, 0.143, box, in.pixel_A).value_or(2 * in.pixel_A));
  }
  if (in.max_res_A >= min_res)
    throw InputError(fmt::format("--max-res-A: the highest resolution scored ({:.3g} A) is not finer than "
                                 "--min-res-A ({:.3g} A)",
                                 in.max_res_A, min_res));
  for (tp::LoadedVolume& l : loaded) {
    if (mask)
      for (std::size_t i = 0; i < l.data.size(); ++i) l.data[i] *= (*mask)[i];
    in.maps.push_back(std::move(l.data));
  }
  return in;
}

double median_abs(const std::vector<double>& v) {
  std::vector<double> a;
  for (double x : v) a.push_back(std::abs(x));
  std::nth_element(a.begin(), a.begin() + a.size() / 2, a.end());
  return a[a.size() / 2];
}

// The figures block tessera_view_consensus draws (common/consensus.hpp): the per-particle |change|,
// each micrograph's |mean change|, and for up to kHeatMapMicrographs micrographs their mean and
// standard deviation side by side.
constexpr std::size_t kHeatMapMicrographs = 60;
tp::Json defocus_figures(const std::vector<double>& offset_A, const std::vector<MicrographDefocusChange>& per) {
  std::vector<double> particle_abs, micrograph_abs;
  for (double d : offset_A) particle_abs.push_back(std::abs(d));
  for (const MicrographDefocusChange& m : per) micrograph_abs.push_back(std::abs(m.mean_A));
  tp::Json heatmaps = tp::Json::array();
  if (per.size() <= kHeatMapMicrographs) {
    std::vector<std::string> names;
    std::vector<std::vector<double>> values(2);
    for (const MicrographDefocusChange& m : per) {
      names.push_back(fs::path(m.micrograph).stem().string());
      values[0].push_back(m.mean_A);
      values[1].push_back(m.sigma_A);
    }
    heatmaps.push_back(tp::heatmap_json("per_micrograph", "Defocus change per micrograph (A)",
                                        {"mean", "std. dev."}, names, values, "", "micrograph"));
  }
  return {{"histograms",
           {tp::histogram_json("particle_abs_change", "|Defocus change| per particle", "A", particle_abs, 40,
                               std::nullopt),
            tp::histogram_json("micrograph_abs_mean_change", "|Mean defocus change| per micrograph", "A",
                               micrograph_abs, 20, std::nullopt)}},
          {"heatmaps", heatmaps}};
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  Inputs in = load_inputs(v);
  DefocusRefineOptions o;
  o.search.range_A = v.get<double>("defocus_range_A");
  o.search.step_A = v.get<double>("defocus_step_A");
  o.min_res_A = v.get<double>("min_res_A");
  o.max_res_A = in.max_res_A;
  o.per_micrograph = v.get<bool>("per_micrograph");
  o.threads = ctx.options().threads;
  ctx.start();
  ctx.info(fmt::format("{} particles against {}, scored from {:.3g} A to {:.3g} A, offsets within +-{} A",
                       in.set.particles.size(), in.maps.size() == 2 ? "their half maps" : "the map", o.min_res_A,
                       in.max_res_A, o.search.range_A));
  std::vector<const RealGrid*> maps;
  for (const RealGrid& m : in.maps) maps.push_back(&m);
  const DefocusRefinement r = refine_defocus(in.set, maps, o);
  apply_defocus_offsets(in.set, r.offset_A);
  const double med = median_abs(r.offset_A);
  ctx.info(fmt::format("median |defocus change| {:.1f} A", med));
  tp::save_particles(ctx, in.set, "particles", "particles_star", "particles_sqlite");
  const std::vector<MicrographDefocusChange> per = defocus_change_per_micrograph(in.set, r.offset_A);
  tp::Json mics = tp::Json::array();
  for (const MicrographDefocusChange& m : per)
    mics.push_back({{"micrograph", m.micrograph}, {"particles", m.particles}, {"mean_change_A", m.mean_A},
                    {"sigma_change_A", m.sigma_A}});
  const tp::Json out = {{"median_abs_change_A", med},     {"min_res_A", o.min_res_A},
                        {"max_res_A", in.max_res_A},       {"range_A", o.search.range_A},
                        {"step_A", o.search.step_A},       {"per_micrograph", o.per_micrograph},
                        {"micrographs", mics},             {"figures", defocus_figures(r.offset_A, per)}};
  tp::atomic_write_text(ctx.path("defocus_change.json"), out.dump(2) + "\n");
  ctx.add_output("defocus_json", "defocus_change.json", {{"median_abs_change_A", med}});
}

}  // namespace

int main(int argc, char** argv) { return tp::run_program(make_schema(), argc, argv, work); }
