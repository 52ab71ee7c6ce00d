// tessera_reconstruct: a map and two half maps from particles with poses,
// with symmetry, and their FSC (and the FSC against a reference, if given).
#include <fmt/format.h>

#include <cmath>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/reconstruct_set.hpp"
#include "tessera/run_files.hpp"
#include "tessera/symmetry.hpp"

namespace tp = tessera::protocol;
using namespace tessera;

namespace {

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_reconstruct";
  s.version = "0.1.0";
  s.label = "reconstruct";
  s.description =
      "Reconstructs a map and two independent half maps from particles with poses and CTFs (Fourier "
      "back-projection, padding 2, trilinear interpolation, CTF^2 weights, Wiener regularization from the "
      "half-map FSC), with point-group symmetry. Writes the maps and the gold-standard FSC; with a reference, "
      "also the FSC against it.";
  s.scipion_base_class = "ProtReconstruct3D";
  s.add_input("particles", tp::InputKind::Particles, "Particles",
              {.help = "Particles with poses and CTF (RELION STAR or Scipion sqlite).",
               .pointer_condition = "hasAlignmentProj"});
  s.add_input("reference", tp::InputKind::Volume, "Reference map",
              {.help = "Optional: a map (e.g. the ground truth) to compute the FSC against.", .required = false});
  s.add_string("symmetry", "Symmetry",
               {.default_value = "C1", .help = "Point group in RELION's conventions: C<n>, D<n>, T, O, I, I1-I4."});
  s.add_float("max_res_A", "Maximum resolution",
              {.min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Highest resolution used; default: Nyquist."});
  s.add_bool("ctf", "Correct CTF", {.default_value = true, .help = "Weight by the CTF (off: images without CTF)."});
  s.add_bool("wiener", "Wiener filter",
             {.default_value = true, .help = "Regularize with the signal power estimated from the half-map FSC."});
  s.add_choice("ewald_sphere", "Ewald sphere correction", {"off", "positive", "negative"},
               {.default_value = "off",
                .help = "Insert each image as its two sidebands, each on its own sheet of the Ewald sphere "
                        "(both half maps; twice the insertion cost; needs --ctf). For large particles at high "
                        "resolution; the sign depends on the data's hand (docs/ewald_sphere.md)."});
  s.add_int("padding", "Padding", {.default_value = 2, .min = 1, .max = 4, .help = "Oversampling of Fourier space.",
                                   .level = tp::Level::Advanced});
  s.add_float("voxel_A", "Pixel size override",
              {.min = 0.0, .min_exclusive = true, .unit = "A", .help = "Use this pixel size instead of the particles'.",
               .level = tp::Level::Advanced});
  s.add_output("volume", tp::OutputKind::Volume, "Map");
  s.add_output("half_map_A", tp::OutputKind::HalfMap, "Half map A");
  s.add_output("half_map_B", tp::OutputKind::HalfMap, "Half map B");
  s.add_output("fsc_star", tp::OutputKind::FscStar, "FSC (STAR)");
  s.add_output("fsc_json", tp::OutputKind::FscJson, "FSC (JSON)");
  return s;
}

void print_fsc_table(tp::RunContext& ctx, const std::vector<tp::FscCurve>& curves, int box, double voxel_A) {
  const std::vector<double> res = shell_resolution_A(box, voxel_A);
  std::string header = fmt::format("{:>6} {:>9}", "shell", "res (A)");
  for (const auto& c : curves) header += fmt::format(" {:>14}", c.name);
  ctx.info(header);
  for (std::size_t k = 1; k < res.size(); ++k) {
    std::string line = fmt::format("{:>6} {:>9.2f}", k, res[k]);
    for (const auto& c : curves) line += fmt::format(" {:>14.4f}", c.values[k]);
    ctx.info(line);
  }
}

// The particles, checked before any work: poses, stacks, CTF (when corrected)
// and two non-empty half sets.
ParticleSet load_checked_particles(const tp::Values& v) {
  const std::filesystem::path file = v.input("particles");
  ParticleSet set = tp::load_particles(file);
  if (set.particles.empty()) throw InputError(fmt::format("{}: no particles", file.string()));
  for (const Particle& p : set.particles)
    if (!p.pose)
      throw InputError(fmt::format("{}: particle {} has no pose (angles)", file.string(), p.image.to_string()));
  if (auto px = v.get_optional<double>("voxel_A"))
    for (auto& g : set.optics) g.pixel_A = *px;
  tp::check_particle_stacks(set, particle_box(set));
  if (v.get<bool>("ctf")) tp::check_ctf(set, file, "give --ctf false to reconstruct without CTF correction");
  tp::check_half_sets(set, file);
  return set;
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  const ParticleSet set = load_checked_particles(v);
  const double voxel_A = set.optics_of(set.particles.front()).pixel_A;
  const SymmetryGroup sym = tp::load_symmetry(v, "symmetry");
  const int box = particle_box(set);
  tp::check_resolution_in_box(v.get_optional<double>("max_res_A"), "--max-res-A", box, voxel_A);
  std::optional<tp::LoadedVolume> reference;
  if (auto ref = v.input_optional("reference")) {
    reference = tp::load_volume(*ref);
    tp::check_same_grid(*reference, *ref, tp::LoadedVolume{RealGrid(box, box, box), voxel_A}, "the particles");
    tp::check_has_signal(*reference, *ref);
  }

  ReconstructSetOptions o;
  o.threads = ctx.options().threads;
  o.symmetry = sym.matrices();
  o.max_res_A = v.get_optional<double>("max_res_A");
  o.padding = v.get<int>("padding");
  o.apply_ctf = v.get<bool>("ctf");
  o.wiener = v.get<bool>("wiener");
  o.ewald_sphere = parse_ewald_sphere(v.get<std::string>("ewald_sphere"));
  if (o.ewald_sphere != EwaldSphere::Off && !o.apply_ctf)
    throw InputError("--ewald-sphere: the sidebands need the CTF (give --ctf true or --ewald-sphere off)");
  ctx.info(fmt::format("{} particles, {} A/px, symmetry {} (order {})", set.particles.size(), voxel_A, sym.name(),
                       sym.order()));
  if (o.ewald_sphere != EwaldSphere::Off) {
    const OpticsGroup& g = set.optics_of(set.particles.front());
    ctx.info(fmt::format("Ewald sphere correction ({}): lambda {:.5f} A, sheets {:.3f} px off the central slice at "
                         "Nyquist (optics group {})",
                         ewald_sphere_name(o.ewald_sphere), electron_wavelength_A(g.voltage_kV),
                         std::abs(ewald_curvature_px(o.ewald_sphere, g.voltage_kV, box, voxel_A)) * (box / 2.0) *
                             (box / 2.0),
                         g.number));
  }
  ctx.start();
  const HalfSetReconstruction r =
      reconstruct_particles(set, o, [&](long done, long total) { ctx.progress("back-project", done, total); });

  tp::save_volume(ctx, "volume", "map.mrc", r.full, voxel_A);
  tp::save_volume(ctx, "half_map_A", "map_half_A.mrc", r.half_a, voxel_A, {{"particles", r.count_a}});
  tp::save_volume(ctx, "half_map_B", "map_half_B.mrc", r.half_b, voxel_A, {{"particles", r.count_b}});
  namespace curve = run_files::fsc::curve;
  namespace column = run_files::fsc_star::curve_column;
  std::vector<tp::FscCurve> curves{{curve::gold_standard, column::gold_standard, r.fsc, 0.143}};
  if (reference)
    curves.push_back({curve::vs_reference, column::vs_reference, fsc(r.full, reference->data), 0.5});
  const auto res = tp::save_fsc(ctx, "fsc_star", "fsc_json", curves, box, voxel_A);
  print_fsc_table(ctx, curves, box, voxel_A);
  ctx.event("resolution", {{"gold_standard_0143_A", res[0] ? tp::Json(*res[0]) : tp::Json(nullptr)}},
            fmt::format("gold-standard FSC 0.143: {}", tp::format_resolution(res[0], voxel_A)));
  if (reference)
    ctx.event("resolution_vs_reference", {{"fsc_0_5_A", res[1] ? tp::Json(*res[1]) : tp::Json(nullptr)}},
              fmt::format("FSC against the reference at 0.5: {}", tp::format_resolution(res[1], voxel_A)));
}

}  // namespace

int main(int argc, char** argv) { return tp::run_program(make_schema(), argc, argv, work); }
