// tessera_refine_local: local refinement of rigid modules (engine/refinement/include/tessera/local_refine.hpp).
// From a consensus refinement (particles with poses, half maps), each module given by a mask gets its
// own pose per particle, searched locally, with the other modules' signal subtracted from the images,
// and its own gold-standard reconstruction; then a composite map.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/processes.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/local_refine.hpp"
#include "tessera/mrc.hpp"
#include "tessera/nu_regularizer.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/postprocess.hpp"
#include "tessera/run_files.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_refine_local";
  s.version = "0.1.0";
  s.label = "local refinement (rigid modules)";
  s.description =
      "Local refinement of rigid modules from a consensus refinement: each module (a mask) gets its own pose per "
      "particle, searched locally around its current pose, with the other modules' expected images (at their own "
      "poses, through the particle's CTF and contrast) subtracted from the image first; each module is "
      "reconstructed from its own poses in gold-standard half sets. One mask refines a region against the rest "
      "(as cryoSPARC's local refinement); several are multi-body refinement.";
  s.scipion_base_class = "ProtRefine3D";
  s.citations = {"10.1016/j.jsb.2011.09.005"};
  s.support.mpi = tp::built_with_mpi();
  s.add_input("particles", tp::InputKind::Particles, "Particles",
              {.help = "Particles with the consensus refinement's poses and half sets (STAR or Scipion sqlite).",
               .pointer_condition = "hasAlignmentProj"});
  s.add_input("half_map_A", tp::InputKind::Volume, "Half map A", {.help = "Consensus half map A (unfiltered)."});
  s.add_input("half_map_B", tp::InputKind::Volume, "Half map B", {.help = "Consensus half map B."});
  s.add_input("mask", tp::InputKind::Mask, "Module mask",
              {.help = "Soft mask of the (first) module, values in [0, 1], on the maps' grid."});
  s.add_string("more_module_masks", "More module masks",
               {.help = "Comma-separated MRC masks of further modules (multi-body refinement). Whatever lies "
                        "outside every mask is subtracted at the consensus pose."});
  s.add_int("rounds", "Rounds",
            {.default_value = 2, .min = 1, .max = 20, .help = "Every module is refined in turn, this many times.",
             .section = "Refinement"});
  s.add_int("iterations_per_module", "Iterations per module",
            {.default_value = 3, .min = 1, .max = 20, .help = "Refinement iterations for a module in each round.",
             .section = "Refinement"});
  s.add_bool("subtract_other_modules", "Subtract the other modules",
             {.default_value = true,
              .help = "Subtract the other modules' (and the rest's) expected images before aligning a module; off: "
                      "align it against the whole image (for comparison).",
              .section = "Refinement"});
  s.add_float("rotation_step_deg", "Rotation search step",
              {.default_value = 3.75, .min = 0.5, .max = 15.0, .unit = "deg",
               .help = "The local search's first step: rotations within one step of the current one, then halved "
                       "steps around the best.",
               .section = "Pose search"});
  s.add_float("final_step_deg", "Final rotation step",
              {.default_value = 0.9375, .min = 0.05, .unit = "deg", .section = "Pose search"});
  s.add_float("shift_range_A", "Shift range",
              {.default_value = 6.0, .min = 0.0, .unit = "A", .help = "Offsets within this of the current origin.",
               .section = "Pose search"});
  s.add_bool("priors", "Gaussian priors",
             {.default_value = true,
              .help = "Gaussian priors on each module's rotation and origin about its consensus pose. A small module, "
                      "whose own signal places it poorly, drifts without them (measured: 17 deg median error against "
                      "1.8 with them; docs/refine_local.md).",
              .section = "Pose search"});
  s.add_float("prior_rotation_sigma_deg", "Rotation prior",
              {.default_value = 5.0, .min = 0.0, .min_exclusive = true, .unit = "deg",
               .help = "Standard deviation of the rotation prior: about the modules' expected motion (cryoSPARC's "
                       "is 15 when on). Measured on a 1.67 deg motion: 2 deg best, 5 deg close.",
               .section = "Pose search", .condition = "priors"});
  s.add_float("prior_shift_sigma_A", "Shift prior",
              {.default_value = 5.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Standard deviation of the origin prior (cryoSPARC's is 7 when on).",
               .section = "Pose search", .condition = "priors"});
  s.add_bool("marginalize", "Adaptive marginalization",
             {.default_value = true,
              .help = "Back-project at every pose of the last search level weighted by its posterior.",
              .section = "Pose search"});
  s.add_bool("nu_regularizer", "Non-uniform regularization",
             {.default_value = false,
              .help = "Regularize each module's half maps with non-uniform refinement's adaptive local filter "
                      "(2 cross-validation folds per half, Butterworth filters, adaptive window factor 3) instead "
                      "of one Wiener filter per module.",
              .section = "Refinement"});
  s.add_choice("ewald_sphere", "Ewald sphere correction", {"off", "positive", "negative"},
               {.default_value = "off",
                .help = "Reconstruct each module's half maps with the Ewald sphere's curvature (each particle "
                        "inserted as its two sidebands; the other modules are still subtracted with the flat "
                        "model). The sign depends on the data's hand (docs/ewald_sphere.md).",
                .section = "Refinement"});
  s.add_float("particle_diameter_A", "Particle diameter",
              {.min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Sets the images' soft circular window; default 0.8 x the box.", .section = "Pose search",
               .level = tp::Level::Advanced});
  s.add_output("volume", tp::OutputKind::Volume, "Composite map",
               {.help = "Each module's FSC-weighted map inside its mask, the consensus map elsewhere."});
  s.add_output("half_map_A", tp::OutputKind::HalfMap, "Module 1 half map A");
  s.add_output("half_map_B", tp::OutputKind::HalfMap, "Module 1 half map B");
  s.add_output("particles_star", tp::OutputKind::ParticlesStar, "Module 1 particles (STAR)",
               {.help = "The particles with module 1's poses (RELION conventions: relion_reconstruct rebuilds it)."});
  s.add_output("particles_sqlite", tp::OutputKind::ParticlesSqlite, "Module 1 particles (Scipion)");
  s.add_output("fsc_star", tp::OutputKind::FscStar, "Module 1 FSC (STAR)");
  s.add_output("fsc_json", tp::OutputKind::FscJson, "Module 1 FSC (JSON)");
  s.add_output("modules", tp::OutputKind::Table, "Modules (JSON)",
               {.help = "Per module: its files (half maps, map, particles, FSC), resolution and iteration statistics."});
  return s;
}

struct Inputs {
  ParticleSet particles;
  RealGrid half_a, half_b;
  std::vector<RealGrid> masks;
  std::vector<std::string> mask_names;
  double pixel_A = 0;
};

Inputs load_inputs(const tp::Values& v) {
  Inputs in;
  const fs::path file = v.input("particles");
  in.particles = tp::load_particles(file);
  const int box = particle_box(in.particles);
  tp::check_particle_stacks(in.particles, box);
  tp::check_ctf(in.particles, file, "local refinement needs the particles' CTF parameters");
  for (const Particle& p : in.particles.particles)
    if (!p.pose)
      throw InputError(fmt::format("{}: particle {} has no pose; local refinement starts from a consensus "
                                   "refinement's poses",
                                   file.string(), p.image.to_string()));
  const fs::path fa = v.input("half_map_A"), fb = v.input("half_map_B");
  auto [a, b] = tp::load_half_maps(fa, fb, std::nullopt);
  if (a.data.nx() != box)
    throw InputError(fmt::format("{}: box {} px, the particles' is {} px", fa.string(), a.data.nx(), box));
  in.pixel_A = a.voxel_A;
  std::vector<fs::path> masks{v.input("mask")};
  if (auto more = v.get_optional<std::string>("more_module_masks"))
    for (const std::string& m : tp::split_list(*more)) masks.emplace_back(m);
  for (const fs::path& m : masks) {
    in.masks.push_back(tp::load_mask(m, a, fa.string(), std::nullopt).data);
    in.mask_names.push_back(m.string());
  }
  in.half_a = std::move(a.data);
  in.half_b = std::move(b.data);
  return in;
}

LocalRefineOptions options(const tp::Values& v, const Inputs& in) {
  LocalRefineOptions o;
  const int box = in.half_a.nx();
  o.refine.threads = v.run().threads;
  o.refine.seed = static_cast<std::uint64_t>(v.run().seed);
  o.refine.particle_diameter_A = v.get_optional<double>("particle_diameter_A").value_or(0.8 * box * in.pixel_A);
  o.refine.local.start_step_deg = v.get<double>("rotation_step_deg");
  o.refine.local.final_step_deg = v.get<double>("final_step_deg");
  o.refine.local.shift_range_px = v.get<double>("shift_range_A") / in.pixel_A;
  o.refine.local.marginalize = v.get<bool>("marginalize");
  o.refine.ewald_sphere = parse_ewald_sphere(v.get<std::string>("ewald_sphere"));
  if (v.get<bool>("priors")) {
    o.refine.local.prior_rotation_sigma_deg = v.get<double>("prior_rotation_sigma_deg");
    o.refine.local.prior_shift_sigma_px = v.get<double>("prior_shift_sigma_A") / in.pixel_A;
  }
  o.rounds = v.get<int>("rounds");
  o.iterations_per_module = v.get<int>("iterations_per_module");
  o.subtract_other_modules = v.get<bool>("subtract_other_modules");
  return o;
}

// A module's outputs through the one post-processing, with its mask as the FSC mask; returns its
// FSC-weighted map and its entry in modules.json.
tp::Json write_module(tp::RunContext& ctx, const Inputs& in, const ModuleRefinement& mod, std::size_t m,
                      std::int64_t seed, RealGrid& weighted) {
  const std::string stem = fmt::format("module_{}", m + 1);
  const bool first = m == 0;
  // Module 1's files are the declared outputs (Scipion registers them); the others are listed in modules.json.
  auto volume = [&](const std::string& output, const std::string& file, const RealGrid& g, const tp::Json& extra) {
    if (output.empty())
      write_mrc(ctx.path(file), g, in.pixel_A);
    else
      tp::save_volume(ctx, output, file, g, in.pixel_A, extra);
  };
  volume(first ? "half_map_A" : "", stem + "_half_A.mrc", mod.raw_a, tp::Json::object());
  volume(first ? "half_map_B" : "", stem + "_half_B.mrc", mod.raw_b, tp::Json::object());
  PostprocessOptions po;
  po.seed = static_cast<std::uint64_t>(seed);
  po.lowpass = PostprocessOptions::Lowpass::AtResolution;
  const Postprocessed pp = postprocess(mod.raw_a, mod.raw_b, in.masks[m], in.pixel_A, po);
  for (const std::string& w : pp.warnings) ctx.warn(fmt::format("module {}: {}", m + 1, w));
  const double res = pp.resolution_A && std::isfinite(*pp.resolution_A) ? *pp.resolution_A : 2 * in.pixel_A;
  weighted = lowpass(pp.weighted, res, in.pixel_A);
  write_mrc(ctx.path(stem + "_map.mrc"), weighted, in.pixel_A);
  ParticleSet set = in.particles;
  for (std::size_t i = 0; i < set.particles.size(); ++i) {
    set.particles[i].pose = mod.poses[i];
    set.particles[i].scale = mod.scales[i];
  }
  if (first)
    tp::save_particles(ctx, set, stem + "_particles", "particles_star", "particles_sqlite");
  else
    write_particles_star(fs::absolute(ctx.out_dir()) / (stem + "_particles.star"), set, fs::absolute(ctx.out_dir()));
  namespace curve = run_files::fsc::curve;
  namespace column = run_files::fsc_star::curve_column;
  const std::vector<tp::FscCurve> curves{{curve::unmasked, column::unmasked, pp.curves.unmasked, 0.143},
                                         {curve::tight, column::tight, pp.curves.masked, 0.143},
                                         {curve::corrected, column::corrected, pp.curves.corrected, 0.143}};
  if (first) tp::save_fsc(ctx, "fsc_star", "fsc_json", curves, in.half_a.nx(), in.pixel_A);
  tp::Json history = tp::Json::array();
  for (const IterationStats& h : mod.history)
    history.push_back({{"iteration", h.iteration},
                       {"resolution_A", h.resolution_A},
                       {"mean_angle_change_deg", h.mean_angle_change_deg},
                       {"mean_shift_change_px", h.mean_shift_change_px},
                       {"wall_s", h.wall_s}});
  ctx.event("module", {{"module", m + 1}, {"resolution_A", res}},
            fmt::format("module {} ({}): {} (corrected FSC 0.143 inside its mask)", m + 1, in.mask_names[m],
                        tp::format_resolution(pp.resolution_A, in.pixel_A)));
  return {{"module", m + 1},
          {"mask", in.mask_names[m]},
          {"resolution_A", res},
          {"half_map_A", stem + "_half_A.mrc"},
          {"half_map_B", stem + "_half_B.mrc"},
          {"map", stem + "_map.mrc"},
          {"particles_star", stem + "_particles.star"},
          {"fsc_corrected", pp.curves.corrected},
          {"iterations", history}};
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  Communicator& comm = tp::processes();
  Inputs in;
  LocalRefineOptions o;
  std::exception_ptr failure;
  try {
    in = load_inputs(v);
    o = options(v, in);
  } catch (...) {
    failure = std::current_exception();
  }
  agree_on_failure(comm, failure);
  ctx.start();
  ctx.info(fmt::format("{} particles, box {} at {} A/px; {} module(s), {} round(s) of {} iteration(s); other modules "
                       "{}",
                       in.particles.particles.size(), in.half_a.nx(), in.pixel_A, in.masks.size(), o.rounds,
                       o.iterations_per_module, o.subtract_other_modules ? "subtracted" : "not subtracted"));
  LocalRefineCallbacks cb;
  cb.log = [&](const std::string& line) { ctx.info(line); };
  cb.progress = [&](long done, long total) { ctx.progress("align", done, total); };
  std::unique_ptr<Regularizer> regularizer;
  if (v.get<bool>("nu_regularizer")) {
    regularizer = make_nu_regularizer(LocalFilterOptions{});
  }
  const LocalRefinement r = run_local_refinement(in.particles, in.half_a, in.half_b, in.masks, in.pixel_A, o,
                                                 regularizer.get(), &comm, cb);
  if (!comm.leader()) return;
  // The composite: each module's map inside its mask, the consensus map where no mask reaches.
  RealGrid composite = average_maps(in.half_a, in.half_b), covered(composite.nx(), composite.ny(), composite.nz(), 0.f);
  for (const RealGrid& m : in.masks)
    for (std::size_t i = 0; i < covered.size(); ++i) covered[i] += m[i];
  for (std::size_t i = 0; i < composite.size(); ++i) composite[i] *= std::clamp(1.f - covered[i], 0.f, 1.f);
  tp::Json modules = tp::Json::array();
  for (std::size_t m = 0; m < r.modules.size(); ++m) {
    RealGrid weighted;
    modules.push_back(write_module(ctx, in, r.modules[m], m, v.run().seed, weighted));
    for (std::size_t i = 0; i < composite.size(); ++i)
      composite[i] += weighted[i] * in.masks[m][i] / std::max(1.f, covered[i]);
  }
  tp::save_volume(ctx, "volume", "composite.mrc", composite, in.pixel_A);
  tp::atomic_write_text(ctx.path("modules.json"), modules.dump(1) + "\n");
  ctx.add_output("modules", "modules.json", {{"count", r.modules.size()}});
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
