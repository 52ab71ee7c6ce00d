// tessera_orientation_diagnostics: how the particles' views cover the sphere
// (counts per equal-area cell and a BILD file ChimeraX opens, as RELION's
// _angdist.bild), the sampling compensation factor SCF* of Baldwin & Lyumkis
// (2020) from the poses, and, given half maps, conical FSCs and their area
// ratio cFAR with the resolution in the worst and best directions
// (engine/analysis/include/tessera/orientation_diagnostics.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <sstream>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/orientation_diagnostics.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

constexpr double kThreshold = 0.143;
constexpr double kAnisotropicCfar = 0.5;  // cryoSPARC: cFAR below 0.5 flags anisotropy
constexpr double kAnisotropicScf = 0.81;  // cryoSPARC: SCF* below 0.81 flags preferred orientation

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_orientation_diagnostics";
  s.version = "0.1.0";
  s.label = "orientation diagnostics";
  s.description =
      "Diagnoses preferred orientation. From particles with poses: the distribution of view directions (counts "
      "per equal-area cell, and a BILD file for ChimeraX as RELION's angular distribution) and the sampling "
      "compensation factor SCF* (Baldwin & Lyumkis 2020; below 0.81 flags preferred orientation). From two half "
      "maps: conical FSCs about directions spread over the hemisphere, the conical FSC area ratio cFAR (below "
      "0.5 flags anisotropy) and the resolution at FSC 0.143 in the worst and best directions. C1 only.";
  s.scipion_base_class = "ProtAnalysis3D";
  s.citations = {"10.1016/j.pbiomolbio.2019.09.002", "10.1038/nmeth.4347"};
  s.add_input("particles", tp::InputKind::Particles, "Particles",
              {.help = "Particles with poses (RELION STAR or Scipion sqlite); images are not read. Give particles, "
                       "half maps, or both.",
               .required = false,
               .pointer_condition = "hasAlignmentProj"});
  s.add_input("half_map_A", tp::InputKind::Volume, "Half map A",
              {.help = "First unfiltered half map (MRC); with half map B, the conical FSCs are computed.",
               .required = false});
  s.add_input("half_map_B", tp::InputKind::Volume, "Half map B",
              {.help = "Second unfiltered half map (MRC).", .required = false});
  s.add_float("voxel_A", "Pixel size override",
              {.min = 0.0, .min_exclusive = true, .unit = "A", .help = "Use this pixel size instead of the files'."});
  s.add_float("bin_deg", "View cell size",
              {.default_value = 7.5, .min = 0.5, .max = 45.0, .unit = "deg",
               .help = "Width of the equal-area cells in which view directions are counted.", .section = "Views"});
  s.add_float("scf_fourier_radius_px", "SCF Fourier radius",
              {.default_value = 50.0, .min = 1.0, .unit = "px",
               .help = "Radius (voxels of frequency) of the Fourier shell on which SCF* measures the sampling; 50 as "
                       "Baldwin & Lyumkis' program.",
               .section = "SCF*", .level = tp::Level::Advanced});
  s.add_int("scf_max_particles", "SCF particles",
            {.default_value = 10000, .min = 1,
             .help = "SCF* uses a random subset of at most this many particles, as Baldwin & Lyumkis' program (10,000); "
                     "SCF* depends on the number used, so compare values at the same number.",
             .section = "SCF*", .level = tp::Level::Advanced});
  s.add_float("cone_half_angle_deg", "Cone half-angle",
              {.default_value = 20.0, .min = 1.0, .max = 90.0, .unit = "deg",
               .help = "Half-angle of the Fourier-space cones of the conical FSCs (3DFSC's default 20).",
               .section = "Conical FSC"});
  s.add_int("directions", "Cone directions",
            {.default_value = 500, .min = 1, .max = 20000,
             .help = "Number of cone axes spread over the hemisphere (Friedel symmetry covers the other half).",
             .section = "Conical FSC"});
  s.add_output("diagnostics", tp::OutputKind::Table, "Figures (JSON)",
               {.help = "SCF*, cFAR, worst and best directions and resolutions, counts."});
  s.add_output("view_counts", tp::OutputKind::Table, "View counts (JSON)",
               {.help = "Count of views per equal-area cell, with each cell's centre.", .optional = true});
  s.add_output("angdist_bild", tp::OutputKind::Table, "Angular distribution (BILD)",
               {.help = "Cylinders along each viewed direction, length and colour by count, for ChimeraX.",
                .optional = true});
  s.add_output("cfsc_json", tp::OutputKind::Table, "Conical FSCs (JSON)",
               {.help = "One FSC curve per cone axis, areas and resolutions.", .optional = true});
  return s;
}

struct Inputs {
  std::optional<ParticleSet> particles;
  std::vector<Euler> poses;
  std::optional<std::array<tp::LoadedVolume, 2>> halves;
  int box = 0;         // of the half maps, or the particles' images
  double voxel_A = 0;  // likewise
};

std::vector<Euler> poses_of(const ParticleSet& set, const fs::path& file) {
  if (set.particles.empty()) throw InputError(fmt::format("{}: no particles", file.string()));
  std::vector<Euler> poses;
  for (const Particle& p : set.particles) {
    if (!p.pose)
      throw InputError(fmt::format("{}: particle {} has no pose (angles)", file.string(), p.image.to_string()));
    poses.push_back(p.pose->angles);
  }
  return poses;
}

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  auto in = std::make_shared<Inputs>();
  const auto voxel = v.get_optional<double>("voxel_A");
  const auto file = v.input_optional("particles"), ha = v.input_optional("half_map_A"),
             hb = v.input_optional("half_map_B");
  if (ha.has_value() != hb.has_value())
    throw InputError(fmt::format("--half-map-{}: give both half maps (A and B) for the conical FSCs, or neither",
                                 ha ? "B" : "A"));
  if (!file && !ha) throw InputError("--particles: give particles, or --half-map-A and --half-map-B, or both");
  if (ha) {
    in->halves = tp::load_half_maps(*ha, *hb, voxel);
    in->box = (*in->halves)[0].data.nx();
    in->voxel_A = (*in->halves)[0].voxel_A;
  }
  if (file) {
    in->particles = tp::load_particles(*file);
    in->poses = poses_of(*in->particles, *file);
    if (!ha) {
      const OpticsGroup& g = in->particles->optics_of(in->particles->particles.front());
      if (g.image_size <= 0)
        throw InputError(fmt::format("{}: no rlnImageSize, needed to place the BILD file; give the half maps too",
                                     file->string()));
      in->box = g.image_size;
      in->voxel_A = voxel.value_or(g.pixel_A);
    }
  }
  return in;
}

tp::Json vec_json(const Vec3& u) { return tp::Json::array({u[0], u[1], u[2]}); }

tp::Json direction_json(const Vec3& u) {
  const Euler e = direction_to_euler(u);
  return {{"xyz", vec_json(u)}, {"rot_deg", e.rot}, {"tilt_deg", e.tilt}};
}

tp::Json optional_json(std::optional<double> x) {
  return x && std::isfinite(*x) ? tp::Json(*x) : tp::Json(nullptr);
}

// RELION's _angdist.bild layout: per viewed cell, a cylinder from radius R (half
// the box, A) out along the view, longer and redder with its count; centred on the
// map's centre voxel N/2, in A, as ChimeraX places a map with origin 0.
std::string angdist_bild(const ViewDistribution& d, int box, double voxel_A, double bin_deg) {
  const double centre = (box / 2) * voxel_A, radius = 0.5 * box * voxel_A;
  const double max_length = 0.3 * radius, width = 0.4 * radius * bin_deg * std::numbers::pi / 180.0;
  const long most = *std::max_element(d.counts.begin(), d.counts.end());
  std::ostringstream out;
  out << fmt::format("# tessera_orientation_diagnostics: {} cells of {} deg, most views in one cell {}\n",
                     d.grid.size(), bin_deg, most);
  for (int c = 0; c < d.grid.size(); ++c) {
    const long n = d.counts[static_cast<std::size_t>(c)];
    if (n == 0) continue;
    const double f = static_cast<double>(n) / static_cast<double>(most);
    const Vec3 u = d.grid.centre(c);
    const double r1 = radius, r2 = radius + std::max(0.01, f) * max_length;
    out << fmt::format(".color {:.3f} 0 {:.3f}\n", f, 1 - f);
    out << fmt::format(".cylinder {:.2f} {:.2f} {:.2f} {:.2f} {:.2f} {:.2f} {:.3f}\n", centre + r1 * u[0],
                       centre + r1 * u[1], centre + r1 * u[2], centre + r2 * u[0], centre + r2 * u[1],
                       centre + r2 * u[2], width);
  }
  return out.str();
}

tp::Json views_part(const tp::Values& v, tp::RunContext& ctx, const Inputs& in) {
  const double bin_deg = v.get<double>("bin_deg");
  const ViewDistribution d = view_distribution(in.poses, bin_deg);
  tp::Json cells = tp::Json::array();
  for (int c = 0; c < d.grid.size(); ++c) {
    tp::Json cell = direction_json(d.grid.centre(c));
    cell["count"] = d.counts[static_cast<std::size_t>(c)];
    cells.push_back(std::move(cell));
  }
  const tp::Json table = {{"bin_deg", bin_deg},
                          {"cell_solid_angle_sr", d.grid.cell_solid_angle_sr()},
                          {"particles", in.poses.size()},
                          {"cells", std::move(cells)}};
  tp::atomic_write_text(ctx.path("view_counts.json"), table.dump(1) + "\n");
  ctx.add_output("view_counts", "view_counts.json");
  tp::atomic_write_text(ctx.path("angdist.bild"), angdist_bild(d, in.box, in.voxel_A, bin_deg));
  ctx.add_output("angdist_bild", "angdist.bild", {{"format", "bild"}});

  ScfOptions so;
  so.fourier_radius_px = v.get<double>("scf_fourier_radius_px");
  so.max_particles = v.get<std::int64_t>("scf_max_particles");
  so.seed = static_cast<std::uint64_t>(ctx.options().seed);
  const ScfResult r = sampling_compensation_factor(in.poses, so);
  const auto peak = std::max_element(d.counts.begin(), d.counts.end()) - d.counts.begin();
  const long empty = std::count(d.counts.begin(), d.counts.end(), 0L);
  ctx.event("scf", {{"scf_star", r.scf_star}, {"scf", r.scf}},
            fmt::format("SCF* {:.3f} (SCF {:.3f}, {:.1f}% of the shell at R = {} px never sampled, {} particles used){}",
                        r.scf_star, r.scf, 100 * r.fraction_unsampled, r.fourier_radius_px, r.particles_used,
                        r.scf_star < kAnisotropicScf ? ": below 0.81, preferred orientation" : ""));
  ctx.info(fmt::format("views: {} particles in {} cells of {} deg, {} empty; most ({}) in the cell at {}", in.poses.size(),
                       d.grid.size(), bin_deg, empty, d.counts[static_cast<std::size_t>(peak)],
                       direction_json(d.grid.centre(static_cast<int>(peak))).dump()));
  return {{"particles", in.poses.size()},
          {"scf_star", r.scf_star},
          {"scf", r.scf},
          {"scf_fraction_unsampled", r.fraction_unsampled},
          {"scf_mean_sampling", r.mean_sampling},
          {"scf_particles_used", r.particles_used},
          {"scf_fourier_radius_px", r.fourier_radius_px},
          {"scf_points", r.points.size()},
          {"view_cells", d.grid.size()},
          {"view_cells_empty", empty},
          {"view_cell_most", {{"count", d.counts[static_cast<std::size_t>(peak)]},
                              {"direction", direction_json(d.grid.centre(static_cast<int>(peak)))}}}};
}

tp::Json cones_part(const tp::Values& v, tp::RunContext& ctx, const Inputs& in) {
  const auto& [a, b] = *in.halves;
  ConicalFscOptions o;
  o.cone_half_angle_deg = v.get<double>("cone_half_angle_deg");
  o.directions = static_cast<int>(v.get<std::int64_t>("directions"));
  o.threads = ctx.options().threads;
  const ConicalFsc c = conical_fsc(a.data, b.data, o);
  const int box = in.box;
  auto res = [&](const std::vector<double>& curve) { return resolution_at(curve, kThreshold, box, in.voxel_A); };
  tp::Json cones = tp::Json::array();
  for (std::size_t d = 0; d < c.directions.size(); ++d) {
    tp::Json cone = direction_json(c.directions[d]);
    cone["area"] = c.area[d];
    cone["resolution_A"] = optional_json(res(c.curves[d]));
    cone["curve"] = c.curves[d];
    cone["voxels"] = c.voxels[d];
    cones.push_back(std::move(cone));
  }
  auto side = [&](int d) {
    tp::Json j = direction_json(c.directions[static_cast<std::size_t>(d)]);
    j["area"] = c.area[static_cast<std::size_t>(d)];
    j["resolution_A"] = optional_json(res(c.curves[static_cast<std::size_t>(d)]));
    return j;
  };
  const tp::Json figures = {{"cfar", optional_json(c.cfar)},
                            {"cone_half_angle_deg", c.cone_half_angle_deg},
                            {"directions", c.directions.size()},
                            {"worst", side(c.worst)},
                            {"best", side(c.best)},
                            {"global_resolution_A", optional_json(res(c.global))}};
  tp::Json doc = figures;
  doc["box"] = box;
  doc["voxel_A"] = in.voxel_A;
  doc["shells"] = tp::fsc_shells_json(box, in.voxel_A);
  doc["global"] = c.global;
  doc["cones"] = std::move(cones);
  tp::atomic_write_text(ctx.path("cfsc.json"), doc.dump() + "\n");
  ctx.add_output("cfsc_json", "cfsc.json", {{"cfar", optional_json(c.cfar)}});
  const auto worst_A = res(c.curves[static_cast<std::size_t>(c.worst)]), best_A = res(c.curves[static_cast<std::size_t>(c.best)]);
  ctx.event("cfar", {{"cfar", optional_json(c.cfar)}},
            fmt::format("cFAR {}{}; resolution {} in the worst direction {}, {} in the best {}",
                        c.cfar ? fmt::format("{:.3f}", *c.cfar) : std::string("undefined (no correlation)"),
                        c.cfar && *c.cfar < kAnisotropicCfar ? " (below 0.5: anisotropic)" : "",
                        tp::format_resolution(worst_A, in.voxel_A), side(c.worst)["xyz"].dump(),
                        tp::format_resolution(best_A, in.voxel_A), side(c.best)["xyz"].dump()));
  return figures;
}

// Inputs are read and checked first: an InputError there (exit 2) leaves
// nothing behind, as the output folder is made only by ctx.start().
void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  tp::Json figures = {{"box", in->box}, {"voxel_A", in->voxel_A}};
  if (in->particles) figures["views"] = views_part(v, ctx, *in);
  if (in->halves) figures["conical_fsc"] = cones_part(v, ctx, *in);
  tp::atomic_write_text(ctx.path("orientation_diagnostics.json"), figures.dump(2) + "\n");
  // The headline figures also in outputs.json, where Scipion's summary shows them.
  tp::Json headline = tp::Json::object();
  if (in->particles) headline["scf_star"] = figures["views"]["scf_star"];
  if (in->halves) headline["cfar"] = figures["conical_fsc"]["cfar"];
  ctx.add_output("diagnostics", "orientation_diagnostics.json", headline);
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
