// The refinement program every refinement shares (program.hpp): schema, options,
// input checks, start or --continue, the loop and the outputs.
#include "refinement/program.hpp"

#include <cmath>
#include <fmt/format.h>

#include "common/io.hpp"
#include "common/processes.hpp"
#include "refinement/finish.hpp"
#include "refinement/state.hpp"
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/run_files.hpp"
#include "tessera/symmetry.hpp"
#include "tessera/symmetry_relaxation.hpp"

namespace tessera::protocol {
namespace {

void declare_search(Schema& s, bool marginalize_by_default) {
  const std::string sec = "Pose search";
  s.add_int("global_iterations", "Global iterations",
            {.default_value = 2, .min = 1, .max = 10,
             .help = "Iterations that search all orientations (no prior); later iterations search locally.",
             .section = sec});
  s.add_float("coarse_step_deg", "Coarse angular step",
              {.default_value = 15.0, .min = 3.0, .max = 30.0, .unit = "deg",
               .help = "Step of the exhaustive grid of the global search (multi-resolution: the best "
                       "candidates are then refined with halved steps at higher frequencies).",
               .section = sec, .level = Level::Advanced});
  s.add_float("global_final_step_deg", "Global final step", {.default_value = 1.875, .min = 0.1, .unit = "deg",
                                                              .section = sec, .level = Level::Advanced});
  s.add_float("local_final_step_deg", "Local final step",
              {.default_value = 0.9375, .min = 0.05, .unit = "deg", .help = "Finest angular step of local searches.",
               .section = sec});
  s.add_float("shift_range_A", "Shift range",
              {.default_value = 12.0, .min = 0.0, .unit = "A", .help = "Global search: offsets within this radius.",
               .section = sec});
  s.add_bool("marginalize", "Adaptive marginalization",
             {.default_value = marginalize_by_default,
              .help = "Back-project each particle at every pose of the last search level whose posterior "
                      "probability is at least 1e-3 of the best's, weighted by it, instead of at the best pose only.",
              .section = sec});
  s.add_int("candidates", "Candidates", {.default_value = 8, .min = 1, .max = 64,
                                         .help = "Poses kept from the exhaustive pass for refinement.",
                                         .section = sec, .level = Level::Advanced});
  s.add_float("max_align_res_A", "Maximum alignment resolution",
              {.min = 0.0, .min_exclusive = true, .unit = "A", .help = "Never align beyond this resolution.",
               .section = sec});
  s.add_bool("minibatch", "Mini-batches",
             {.default_value = true,
              .help = "Align a random subset in the global iterations before the last one.", .section = sec});
  s.add_float("minibatch_snr_factor", "Mini-batch SNR factor",
              {.default_value = 50.0, .min = 1.0,
               .help = "Batch size = factor x 4/3 x k, with k the initial resolution in Fourier pixels: each view "
                       "fills a central slice, so 4/3 k views cover the Fourier ball once; the factor is how many "
                       "times each voxel should be sampled.",
               .section = sec, .level = Level::Advanced, .condition = "minibatch"});
}

void declare_model(Schema& s) {
  s.add_string("symmetry", "Symmetry", {.default_value = "C1", .help = "C<n>, D<n>, T, O, I, I1-I4 (RELION)."});
  s.add_choice("symmetry_relaxation", "Symmetry relaxation", {"none", "maximization", "marginalization"},
               {.default_value = "none",
                .help = "For a pseudo-symmetric particle: the symmetry only names each particle's mates (its pose "
                        "composed with each symmetry operator) and the maps are reconstructed in C1. Every "
                        "iteration scores each particle at its mates; maximization moves it to the best one, "
                        "marginalization back-projects it at every mate weighted by the mates' posterior. Start "
                        "from a symmetric refinement's particles and a C1 reconstruction at their poses "
                        "(docs/symmetry_relaxation.md)."});
  s.add_int("relaxation_extra_passes", "Extra final passes with relaxation",
            {.default_value = 2, .min = 0, .max = 10,
             .help = "Final passes added to --final-passes with symmetry relaxation (cryoSPARC's guide recommends "
                     "extra passes: particles keep changing mate after the resolution has settled).",
             .condition = "symmetry_relaxation != 'none'"});
  s.add_float("relaxation_max_res_A", "Relaxation resolution",
              {.default_value = 20.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "The mates are scored on frequencies up to this resolution (never beyond the alignment "
                       "limit). The default is the GSFSC split's: finer frequencies differ between the half maps, "
                       "and a particle's own noise in its half's map favours the mate it was inserted at.",
               .level = Level::Advanced, .condition = "symmetry_relaxation != 'none'"});
  s.add_choice("ewald_sphere", "Ewald sphere correction", {"off", "positive", "negative"},
               {.default_value = "off",
                .help = "Reconstruct both half maps with the Ewald sphere's curvature: each particle is inserted "
                        "as its two sidebands, each on its own sheet of the sphere (twice the insertion cost). "
                        "Matters for large particles at high resolution (curvature lambda |k|^2 / 2 against the "
                        "particle's size). The sign depends on the data's hand: try both, keep the one that "
                        "improves the resolution. Alignment keeps the flat model (docs/ewald_sphere.md)."});
  s.add_float("initial_lowpass_A", "Initial low-pass", {.default_value = 30.0, .min = 2.0, .unit = "A"});
  s.add_float("gsfsc_split_A", "GSFSC split resolution",
              {.default_value = 20.0, .min = 2.0, .unit = "A",
               .help = "Frequencies coarser than this are shared by the two half sets."});
  s.add_float("particle_diameter_A", "Particle diameter",
              {.min = 0.0, .min_exclusive = true, .unit = "A", .help = "Default: 0.8 x box."});
  s.add_float("window_inner_frac", "Window inner radius",
              {.default_value = 0.85, .min = 0.0, .max = 1.0, .help = "Fraction of box/2.",
               .section = "Parameters", .level = Level::Advanced});
  s.add_float("window_outer_frac", "Window outer radius",
              {.default_value = 0.99, .min = 0.0, .max = 1.0, .min_exclusive = true, .help = "Fraction of box/2.",
               .section = "Parameters", .level = Level::Advanced});
  s.add_bool("minimize_scale", "Minimize per-particle scale", {.default_value = true});
  s.add_bool("reset_scale", "Reset input scales", {.default_value = false});
  const std::string m = "Dynamic mask";
  s.add_float("mask_threshold", "Threshold", {.default_value = 0.2, .min = 0.0, .max = 1.0,
                                              .help = "Fraction of the map's maximum.", .section = m});
  s.add_float("mask_near_A", "Near padding", {.default_value = 6.0, .min = 0.0, .unit = "A", .section = m});
  s.add_float("mask_far_A", "Far padding", {.default_value = 12.0, .min = 0.0, .unit = "A",
                                            .help = "Width of the soft edge.", .section = m});
  s.add_float("mask_start_res_A", "Start resolution", {.default_value = 12.0, .min = 0.0, .unit = "A", .section = m});
  const std::string c = "Convergence";
  s.add_int("final_passes", "Final passes",
            {.default_value = 1, .min = 0, .max = 10,
             .help = "Iterations after convergence. Earlier iterations insert and reconstruct only the frequencies "
                     "the next alignment needs; the last one takes every frequency, so with 0 one more iteration "
                     "runs when convergence comes in a band-limited one.",
             .section = c});
  s.add_int("patience", "Patience", {.default_value = 1, .min = 1, .max = 10,
                                     .help = "Iterations without improvement before the final passes.",
                                     .section = c, .level = Level::Advanced});
  s.add_int("max_iterations", "Maximum iterations", {.default_value = 20, .min = 1, .max = 200, .section = c})
      .may_change_on_continue = true;
}

// Per-particle defocus refinement in the loop (LoopDefocusOptions, tessera/ctf_refine.hpp).
void declare_ctf_refine(Schema& s) {
  const std::string sec = "CTF refinement";
  s.add_bool("ctf_refine_defocus", "Refine per-particle defocus",
             {.default_value = false,
              .help = "In local-search iterations that start from the start resolution or better, search each "
                      "particle's defocus (one offset on U and V) at its new pose against its own half's "
                      "reference before it is inserted; written back as rlnDefocusU/V.",
              .section = sec});
  s.add_float("defocus_range_A", "Defocus search range",
              {.default_value = 1000.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Offsets from -range to +range are searched in every such iteration.", .section = sec,
               .condition = "ctf_refine_defocus"});
  s.add_float("defocus_step_A", "Defocus search step",
              {.default_value = 50.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Grid step; the best grid offset is refined by golden section to 1 A.", .section = sec,
               .condition = "ctf_refine_defocus"});
  s.add_float("ctf_refine_start_res_A", "Start resolution",
              {.default_value = 8.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Refine defocus once the resolution is this or better: a 300 A error shifts the CTF's "
                       "phase by 0.3 rad at 8 A, and the map must hold that detail.",
               .section = sec, .level = Level::Advanced, .condition = "ctf_refine_defocus"});
  s.add_float("ctf_refine_min_res_A", "Lowest resolution scored",
              {.default_value = 20.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Coarser frequencies are left out of the defocus score; the finest is the alignment limit.",
               .section = sec, .level = Level::Advanced, .condition = "ctf_refine_defocus"});
}

}  // namespace

Schema refinement_schema(const RefinementProgram& p) {
  Schema s;
  s.name = p.name;
  s.version = "0.1.0";
  s.label = p.label;
  s.description = p.description;
  s.citations = p.citations;
  s.scipion_base_class = "ProtRefine3D";
  s.support.resume = true;
  s.support.mpi = built_with_mpi();
  s.add_input("particles", InputKind::Particles, "Particles", {.help = "Particles with CTF (STAR or sqlite)."});
  s.add_input("reference", InputKind::Volume, "Initial volume", {.help = "Low-passed before use."});
  s.add_input("mask", InputKind::Mask, "Static mask",
              {.help = "Alignment mask used instead of the dynamic mask (the FSC uses its own masks).",
               .required = false});
  declare_model(s);
  declare_search(s, p.marginalize_by_default);
  declare_ctf_refine(s);
  declare_refine_outputs(s);
  if (p.declare) p.declare(s);
  return s;
}

namespace {

RefineOptions refine_options(const Values& v, int box, double pixel_A) {
  RefineOptions o;
  o.threads = v.run().threads;
  o.seed = static_cast<std::uint64_t>(v.run().seed);
  o.symmetry = load_symmetry(v, "symmetry").matrices();
  o.symmetry_relaxation = parse_symmetry_relaxation(v.get<std::string>("symmetry_relaxation"));
  if (o.symmetry_relaxation != SymmetryRelaxation::None && o.symmetry.size() < 2)
    throw InputError("--symmetry-relaxation: needs a --symmetry other than C1 (its operators name the mates)");
  o.ewald_sphere = parse_ewald_sphere(v.get<std::string>("ewald_sphere"));
  o.initial_lowpass_A = v.get<double>("initial_lowpass_A");
  o.gsfsc_split_A = v.get<double>("gsfsc_split_A");
  o.max_align_res_A = v.get_optional<double>("max_align_res_A");
  o.particle_diameter_A = v.get_optional<double>("particle_diameter_A").value_or(0.8 * box * pixel_A);
  o.window_inner_frac = v.get<double>("window_inner_frac");
  o.window_outer_frac = v.get<double>("window_outer_frac");
  o.minimize_scale = v.get<bool>("minimize_scale");
  o.reset_scale = v.get<bool>("reset_scale");
  o.mask_threshold = v.get<double>("mask_threshold");
  o.mask_near_A = v.get<double>("mask_near_A");
  o.mask_far_A = v.get<double>("mask_far_A");
  o.mask_start_res_A = v.input_optional("mask") ? 0.0 : v.get<double>("mask_start_res_A");
  o.global_iterations = v.get<int>("global_iterations");
  o.final_passes = v.get<int>("final_passes");
  if (o.symmetry_relaxation != SymmetryRelaxation::None) {
    o.final_passes += v.get<int>("relaxation_extra_passes");
    o.relaxation_max_res_A = v.get<double>("relaxation_max_res_A");
  }
  o.patience = v.get<int>("patience");
  o.max_iterations = v.get<int>("max_iterations");
  if (v.get<bool>("minibatch")) {
    const double k = box * pixel_A / o.initial_lowpass_A;
    o.minibatch_size = std::max<long>(200, std::lround(v.get<double>("minibatch_snr_factor") * 4.0 / 3.0 * k));
  }
  o.global.coarse_step_deg = v.get<double>("coarse_step_deg");
  o.global.final_step_deg = v.get<double>("global_final_step_deg");
  o.global.shift_range_px = v.get<double>("shift_range_A") / pixel_A;
  o.global.candidates = v.get<int>("candidates");
  o.global.coarse_shift_step_px = std::max(2.0, box / 32.0);
  o.local.final_step_deg = v.get<double>("local_final_step_deg");
  o.global.marginalize = o.local.marginalize = v.get<bool>("marginalize");
  if (v.get<bool>("ctf_refine_defocus")) {
    o.defocus.emplace();
    o.defocus->search.range_A = v.get<double>("defocus_range_A");
    o.defocus->search.step_A = v.get<double>("defocus_step_A");
    o.defocus->start_res_A = v.get<double>("ctf_refine_start_res_A");
    o.defocus->min_res_A = v.get<double>("ctf_refine_min_res_A");
  }
  return o;
}

// The particles, checked before any work: stacks, CTF and two non-empty half sets.
ParticleSet load_checked_particles(const std::filesystem::path& file) {
  ParticleSet set = load_particles(file);
  if (set.particles.empty()) throw InputError(fmt::format("{}: no particles", file.string()));
  check_particle_stacks(set, particle_box(set));
  check_ctf(set, file, "refinement needs the particles' CTF parameters (run CTF estimation first)");
  check_half_sets(set, file);
  return set;
}

// Parameters that depend on each other or on the box.
void check_geometry(const Values& v, int box, double pixel_A) {
  if (auto d = v.get_optional<double>("particle_diameter_A"); d && *d > box * pixel_A)
    throw InputError(fmt::format("--particle-diameter-A: {} A is larger than the box ({} px x {} A/px = {} A)", *d,
                                 box, pixel_A, box * pixel_A));
  check_resolution_in_box(v.get<double>("initial_lowpass_A"), "--initial-lowpass-A", box, pixel_A);
  check_resolution_in_box(v.get_optional<double>("max_align_res_A"), "--max-align-res-A", box, pixel_A);
  const double inner = v.get<double>("window_inner_frac"), outer = v.get<double>("window_outer_frac");
  if (inner > outer)
    throw InputError(
        fmt::format("--window-inner-frac: {} is larger than --window-outer-frac ({})", inner, outer));
}

// Reads and checks the inputs and prepares the starting state (or the state to continue from).
// Every MPI rank does the same, deterministically, so that all start from the same state.
RefineState prepare(const Values& v, const RunContext& ctx, RefineOptions& o, double& pixel_A) {
  ParticleSet set = load_checked_particles(v.input("particles"));
  pixel_A = set.optics_of(set.particles.front()).pixel_A;
  const int box = particle_box(set);
  check_geometry(v, box, pixel_A);
  const LoadedVolume ref = load_volume(v.input("reference"));
  check_same_grid(ref, v.input("reference"), LoadedVolume{RealGrid(box, box, box), pixel_A}, "the particles");
  check_has_signal(ref, v.input("reference"));
  std::optional<LoadedVolume> mask;
  if (auto m = v.input_optional("mask")) mask = load_mask(*m, ref, v.input("reference").string());
  o = refine_options(v, box, pixel_A);
  if (v.run().resume) {
    std::optional<RefineState> resumed = load_state(ctx.out_dir());
    if (!resumed)
      throw InputError(fmt::format("--continue: {} holds no finished iteration to continue from; start the run "
                                   "again with --overwrite",
                                   ctx.out_dir().string()));
    return std::move(*resumed);
  }
  // Starting reads up to 500 images (noise model) and matches the reference's greyscale to the
  // particles: a bad image or a reference that matches nothing is still found before the folder exists.
  RefineState st = start_refinement(std::move(set), ref.data, pixel_A, o);
  if (mask) st.mask = mask->data;
  return st;
}

void work(const RefinementProgram& p, const Values& v, RunContext& ctx) {
  Communicator& comm = processes();
  RefineOptions o;
  double pixel_A = 0;
  RefineState st;
  std::exception_ptr failure;
  try {
    st = prepare(v, ctx, o, pixel_A);
  } catch (...) {
    failure = std::current_exception();
  }
  agree_on_failure(comm, failure);  // a bad input stops every rank, told once
  ctx.start();
  ctx.info(v.run().resume ? fmt::format("continuing after iteration {}", st.iteration)
                          : fmt::format("{} particles, box {} at {} A/px", st.particles.particles.size(),
                                        particle_box(st.particles), pixel_A));
  if (comm.size() > 1)
    ctx.info(fmt::format("{} MPI processes x {} threads", comm.size(), o.threads));
  RefineCallbacks cb;
  cb.log = [&](const std::string& line) { ctx.info(line); };
  cb.progress = [&](long done, long total) { ctx.progress("align", done, total); };
  cb.iteration_done = [&](const RefineState& s) {
    save_state(ctx.out_dir(), s, pixel_A);
    const IterationStats& h = s.history.back();
    ctx.event(run_files::run_log::event::iteration, iteration_json(h));
  };
  std::unique_ptr<Regularizer> regularizer;
  if (p.regularizer) regularizer = p.regularizer(v);
  RefineParts parts;
  parts.communicator = &comm;
  parts.regularizer = regularizer.get();
  run_refinement(st, pixel_A, o, parts, cb);
  if (!comm.leader()) return;
  write_refine_outputs(ctx, st, pixel_A, v.run().seed);
  if (p.write_outputs) p.write_outputs(ctx, st, pixel_A);
}

}  // namespace

int run_refinement_program(const RefinementProgram& program, int argc, char** argv) {
  return run_program(refinement_schema(program), argc, argv,
                     [&](const Values& v, RunContext& ctx) { work(program, v, ctx); });
}

}  // namespace tessera::protocol
