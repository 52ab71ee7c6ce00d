// tessera_simulate: particle images with known poses from one volume, or from
// several module volumes that move rigidly against each other per particle.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <thread>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/aberrations.hpp"
#include "tessera/magnification.hpp"
#include "tessera/mask.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/simulate.hpp"

namespace tp = tessera::protocol;
using namespace tessera;

namespace {

// Ten million: more than any data set, and the particles' parameters (kept in
// memory until the STAR and sqlite are written) still fit in a few GB.
constexpr std::int64_t kMaxCount = 10'000'000;
// The disordered density's default resolution (where 4 pixels are finer).
constexpr double kDisorderResolutionA = 8.0;

// The disordered component (a micelle, a nanodisc, a flexible region): Disorder in tessera/simulate.hpp.
void add_disorder_schema(tp::Schema& s) {
  const std::string belt = "disorder and not disorder_mask";
  s.add_bool("disorder", "Add a disordered component",
             {.default_value = false,
              .help = "Adds to every particle a new realisation of random density inside an envelope (a detergent "
                      "micelle or nanodisc belt, a flexible region), projected at the particle's pose through the "
                      "same CTF, scale and shift: a smooth Gaussian random field with a positive mean. The truth "
                      "map stays the protein alone.",
              .section = "Disorder"});
  s.add_input("disorder_mask", tp::InputKind::Mask, "Disorder envelope",
              {.help = "Where the disordered density lies: a mask (MRC, values in [0, 1], the map's box and voxel "
                       "size) used as given. Leave empty for the built-in belt.",
               .required = false, .section = "Disorder", .condition = "disorder"});
  s.add_choice("disorder_belt_shape", "Belt shape", {"cylinder", "torus"},
               {.default_value = "cylinder",
                .help = "The built-in belt about the map's z axis, less the protein's mask (truth_mask): a "
                        "cylindrical shell (a nanodisc) or a ring of elliptical cross-section (a micelle).",
                .section = "Disorder", .condition = belt});
  s.add_float("disorder_belt_inner_radius_A", "Belt inner radius",
              {.default_value = 0.0, .min = 0.0, .unit = "A",
               .help = "Inner radius of the belt about the z axis; 0 lets it reach the protein's mask.",
               .section = "Disorder", .condition = belt});
  s.add_float("disorder_belt_outer_radius_A", "Belt outer radius",
              {.default_value = 70.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Outer radius of the belt about the z axis.", .section = "Disorder", .condition = belt});
  s.add_float("disorder_belt_height_A", "Belt height",
              {.default_value = 40.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Extent of the belt along z, centred on the box centre (a membrane's thickness).",
               .section = "Disorder", .condition = belt});
  s.add_float("disorder_resolution_A", "Disorder resolution",
              {.min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "The random density is smooth to this resolution: a Gaussian low-pass (sigma = 0.187 x "
                       "this) whose amplitude falls to 1/2 at 1/resolution. At least 4 pixels; default: 8 A, or 4 "
                       "pixels where that is coarser.",
               .section = "Disorder", .condition = "disorder"});
  s.add_float("disorder_amplitude", "Disorder amplitude",
              {.default_value = 0.5, .min = 0.0,
               .help = "RMS of the random part inside the envelope, as a fraction of the protein's RMS density "
                       "inside its mask (truth_mask). 0 leaves only the mean.",
               .section = "Disorder", .condition = "disorder"});
  s.add_float("disorder_mean", "Disorder mean",
              {.default_value = 0.5, .min = 0.0,
               .help = "Mean density inside the envelope, as a fraction of the protein's RMS density inside its "
                       "mask (micelles are denser than the solvent).",
               .section = "Disorder", .condition = "disorder"});
}

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_simulate";
  s.version = "0.1.0";
  s.label = "simulate particles";
  s.description =
      "Simulates particle images with known poses: projections of a volume (or of several module volumes that "
      "move rigidly against each other per particle), CTF per micrograph, contrast scale per particle and "
      "Gaussian noise at a given SNR; optionally a disordered component (a detergent micelle or nanodisc belt), "
      "new for every particle. Writes the stack, a RELION STAR and a Scipion set with the true poses, the "
      "per-module true poses, and the volumes and masks used. Without a volume, a synthetic protein-like "
      "phantom is used. Deterministic for a seed.";
  s.scipion_base_class = "ProtParticles";
  s.add_input("volume", tp::InputKind::Volume, "Volume",
              {.help = "Map to project (MRC). Leave empty for --module-volumes or the built-in phantom.",
               .required = false});
  s.add_string("module_volumes", "Module volumes",
               {.help = "Comma-separated MRC files of the rigid modules (same box and voxel size); their sum is "
                        "the full map. Overrides --volume.",
                .section = "Input"});
  s.add_int("phantom_box_px", "Phantom box", {.default_value = 64, .min = 16, .max = 512, .unit = "px",
                                              .help = "Box of the built-in phantom (used without a volume).",
                                              .section = "Input", .level = tp::Level::Advanced});
  s.add_choice("phantom", "Phantom", {"protein", "complex"},
               {.default_value = "protein",
                .help = "The built-in phantom (used without a volume): a protein-like chain, or that chain as a "
                        "large complex with a small protein bound to its side, simulated as two modules "
                        "(module_1: the complex, module_2: the small protein; their masks are written), as "
                        "subtraction and local refinement need.",
                .section = "Input"});
  s.add_float("pixel_A", "Pixel size",
              {.min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Pixel size; default: the volume's voxel size (3 A for the phantom).", .section = "Input"});
  s.add_int("count", "Particles",
            {.default_value = 1000, .min = 1, .max = kMaxCount,
             .help = "Number of particles (the stack must fit on the disk: count x box^2 x 4 bytes)."});
  s.add_input("poses", tp::InputKind::Particles, "Given poses",
              {.help = "STAR or sqlite whose poses, and each particle's CTF (defocus, astigmatism, phase shift) when it has one, are "
                       "used in turn instead of random ones; voltage, Cs and amplitude contrast are the options'.",
               .required = false, .section = "Orientations"});
  s.add_float("origin_sigma_A", "Origin spread", {.default_value = 0.0, .min = 0.0, .unit = "A",
                                                  .help = "Standard deviation of the random origins, per axis.",
                                                  .section = "Orientations"});
  s.add_bool("ctf", "Apply CTF", {.default_value = true, .section = "CTF"});
  s.add_float("defocus_min_A", "Minimum defocus", {.default_value = 10000.0, .min = 0.0, .unit = "A",
                                                   .section = "CTF", .condition = "ctf"});
  s.add_float("defocus_max_A", "Maximum defocus", {.default_value = 25000.0, .min = 0.0, .unit = "A",
                                                   .section = "CTF", .condition = "ctf"});
  s.add_float("astigmatism_max_A", "Maximum astigmatism",
              {.default_value = 0.0, .min = 0.0, .unit = "A", .help = "dU - dV, uniform in [0, max].",
               .section = "CTF", .condition = "ctf"});
  s.add_float("defocus_error_sigma_A", "Per-particle defocus error",
              {.default_value = 0.0, .min = 0.0, .unit = "A",
               .help = "Each image is made with its micrograph's defocus (U and V) plus an error ~ N(0, sigma), "
                       "while particles.star keeps the micrograph's (wrong) values, as a CTF estimated per "
                       "micrograph is; particles_truth.star holds the true ones (for testing CTF refinement).",
               .section = "CTF", .condition = "ctf"});
  s.add_float("anisotropic_magnification_percent", "Anisotropic magnification",
              {.default_value = 0.0, .min = 0.0, .max = 20.0, .unit = "%",
               .help = "Images made with the magnification matrix M = R(a) diag(1 + p/200, 1 - p/200) R(a)^T "
                       "(p this percentage, a --anisotropy-angle-deg; RELION 3.1's rlnMagMat, docs/ctf_refine.md): "
                       "the projection and the CTF at M k. particles.star has the identity and the defocus the "
                       "images show (re-expressed in the observed frame, as a per-micrograph CTF fit sees it); "
                       "particles_truth.star the true matrix and defocus.",
               .section = "CTF"});
  s.add_float("anisotropy_angle_deg", "Anisotropy direction",
              {.default_value = 0.0, .min = -180.0, .max = 180.0, .unit = "deg",
               .help = "Direction (from +x towards +y) in which frequencies are stretched most by "
                       "--anisotropic-magnification-percent.",
               .section = "CTF"});
  s.add_float("beam_tilt_x_mrad", "Beam tilt X",
              {.default_value = 0.0, .min = -20.0, .max = 20.0, .unit = "mrad",
               .help = "Beam tilt of the images (rlnBeamTiltX, RELION 3.1's convention, docs/ctf_refine.md): an odd "
                       "phase -2 pi Cs lambda^2 |k|^2 (k . t). particles.star has none (as before a fit); "
                       "particles_truth.star has the true aberrations.",
               .section = "CTF", .condition = "ctf"});
  s.add_float("beam_tilt_y_mrad", "Beam tilt Y",
              {.default_value = 0.0, .min = -20.0, .max = 20.0, .unit = "mrad", .help = "rlnBeamTiltY (see X).",
               .section = "CTF", .condition = "ctf"});
  s.add_string("odd_zernike", "Odd Zernike coefficients",
               {.default_value = "",
                .help = "Odd aberrations of the images, comma-separated, in rlnOddZernike's order and units "
                        "(radians at k in 1/A: index 2 and 5 are trefoil, rad A^3); empty: none.",
                .section = "CTF", .condition = "ctf"});
  s.add_string("even_zernike", "Even Zernike coefficients",
               {.default_value = "",
                .help = "Even aberrations added to the CTF's phase, comma-separated, in rlnEvenZernike's order and "
                        "units (index 4 and 8 are tetrafoil, 6 spherical, rad A^4); empty: none.",
                .section = "CTF", .condition = "ctf"});
  s.add_int("particles_per_micrograph", "Particles per micrograph",
            {.default_value = 100, .min = 1, .help = "Particles sharing one defocus.", .section = "CTF"});
  s.add_float("voltage_kV", "Voltage", {.default_value = 300.0, .min = 1.0, .unit = "kV", .section = "CTF"});
  s.add_float("cs_mm", "Spherical aberration", {.default_value = 2.7, .min = 0.0, .unit = "mm", .section = "CTF"});
  s.add_float("amplitude_contrast", "Amplitude contrast",
              {.default_value = 0.1, .min = 0.0, .max = 1.0, .max_exclusive = true, .section = "CTF"});
  s.add_choice("ewald_sphere", "Ewald sphere curvature", {"off", "positive", "negative"},
               {.default_value = "off",
                .help = "Form the protein's images on the Ewald sphere: two sidebands, each from its own sheet of "
                        "the sphere, whose curvature follows from the voltage's wavelength, the box and the pixel "
                        "size (docs/ewald_sphere.md defines the sign). Off: the central slice (flat). Needs --ctf.",
                .section = "CTF"});
  s.add_bool("noise", "Add noise", {.default_value = true, .section = "Noise"});
  s.add_float("snr", "SNR", {.default_value = 0.1, .min = 0.0, .min_exclusive = true,
                             .help = "Signal variance / noise variance over the box; the signal is the protein's "
                                     "alone (without a disordered component), so --disorder leaves the noise as it is.",
                             .section = "Noise", .condition = "noise"});
  s.add_float("scale_sigma", "Contrast spread",
              {.default_value = 0.0, .min = 0.0, .max = 2.0,
               .help = "Per-particle contrast scale 1 + sigma * N(0,1) (ice thickness, beam).", .section = "Noise"});
  s.add_float("module_rotation_sigma_deg", "Module rotation spread",
              {.default_value = 0.0, .min = 0.0, .max = 90.0, .unit = "deg",
               .help = "Rotation of each module about its centre of mass, N(0, sigma) about a random axis.",
               .section = "Modules"});
  s.add_float("module_shift_sigma_px", "Module shift spread",
              {.default_value = 0.0, .min = 0.0, .unit = "px",
               .help = "3D shift of each module, N(0, sigma) per axis.", .section = "Modules"});
  add_disorder_schema(s);
  s.add_output("particles_star", tp::OutputKind::ParticlesStar, "Particles (STAR)");
  s.add_output("particles_sqlite", tp::OutputKind::ParticlesSqlite, "Particles (Scipion)");
  s.add_output("particles_truth", tp::OutputKind::ParticlesStar, "Particles with the true CTF (STAR)",
               {.help = "The particles with the defocus their images were made with (with --defocus-error-sigma-A).",
                .optional = true});
  s.add_output("truth", tp::OutputKind::Volume, "Ground-truth map");
  s.add_output("truth_mask", tp::OutputKind::Mask, "Mask of the map");
  s.add_output("modules", tp::OutputKind::Table, "Modules", {.help = "Per-module volumes, masks and poses (JSON).",
                                                             .optional = true});
  s.add_output("disorder_mask", tp::OutputKind::Mask, "Disorder envelope",
               {.help = "Where the disordered component lies (with --disorder).", .optional = true});
  s.add_output("disorder_mean", tp::OutputKind::Volume, "Mean disordered density",
               {.help = "The disordered component's mean over particles, what a reconstruction shows of it "
                        "(with --disorder; the truth map stays the protein alone).",
                .optional = true});
  return s;
}

struct Volumes {
  std::vector<RealGrid> modules;
  double voxel_A = 3.0;
};

// The stack (count x box^2 floats), the STAR and sqlite files (about 1 KB per
// particle) and the volumes must fit in the free space where --out goes.
void check_disk_space(const tp::Values& v, int box) {
  const std::int64_t count = v.get<std::int64_t>("count");
  const double b = box, need = static_cast<double>(count) * (b * b * 4 + 1024) + 4 * b * b * b * 4;
  std::filesystem::path dir = std::filesystem::absolute(v.run().out);
  std::error_code ec;
  while (!std::filesystem::exists(dir, ec) && dir.has_parent_path() && dir != dir.parent_path())
    dir = dir.parent_path();
  const std::filesystem::space_info space = std::filesystem::space(dir, ec);
  if (!ec && space.capacity > 0 && need > static_cast<double>(space.available))  // capacity 0: /proc and alike
    throw InputError(fmt::format("--count: {} particles of {}x{} px need about {:.3g} GB, and {} has {:.3g} GB free",
                                 count, box, box, need / 1e9, dir.string(),
                                 static_cast<double>(space.available) / 1e9));
}

tp::LoadedVolume load_signal(const std::filesystem::path& file, std::optional<double> pixel_A) {
  tp::LoadedVolume m = tp::load_volume(file, pixel_A);
  tp::check_has_signal(m, file);
  return m;
}

Volumes load_inputs(const tp::Values& v) {
  Volumes out;
  const auto pixel = v.get_optional<double>("pixel_A");
  const auto list = v.get_optional<std::string>("module_volumes");
  if (list && !tp::split_list(*list).empty()) {
    std::optional<tp::LoadedVolume> first;
    std::string first_name;
    for (const auto& f : tp::split_list(*list)) {
      tp::LoadedVolume m = load_signal(f, pixel);
      if (first) tp::check_same_grid(m, f, *first, first_name);
      else first = m, first_name = f;
      out.voxel_A = m.voxel_A;
      out.modules.push_back(std::move(m.data));
    }
  } else if (auto path = v.input_optional("volume")) {
    tp::LoadedVolume m = load_signal(*path, pixel);
    out.voxel_A = m.voxel_A;
    out.modules.push_back(std::move(m.data));
  } else {
    out.voxel_A = pixel.value_or(3.0);
    check_disk_space(v, v.get<int>("phantom_box_px"));  // before making the phantom
    const int box = v.get<int>("phantom_box_px");
    if (v.get<std::string>("phantom") == "complex")
      for (RealGrid& m : phantom_complex(box, out.voxel_A, v.run().seed)) out.modules.push_back(std::move(m));
    else
      out.modules.push_back(phantom_volume(box, out.voxel_A, v.run().seed));
    return out;
  }
  check_disk_space(v, out.modules.front().nx());
  return out;
}

// The map the particles show (the modules' sum) and its mask: what resolution is measured against.
struct Truth {
  RealGrid map, mask;
};

Truth truth_of(const Volumes& vols) {
  const int box = vols.modules.front().nx();
  Truth t{RealGrid(box, box, box), {}};
  for (const auto& m : vols.modules)
    for (std::size_t i = 0; i < t.map.size(); ++i) t.map[i] += m[i];
  const float peak = *std::max_element(t.map.values().begin(), t.map.values().end());
  t.mask = threshold_mask(t.map, 0.05 * peak, 2, 4);
  return t;
}

// The built-in belt less the protein's mask, checked against the box.
RealGrid belt_less_protein(const tp::Values& v, const Truth& truth, double voxel_A) {
  Belt b;
  b.inner_radius_A = v.get<double>("disorder_belt_inner_radius_A");
  b.outer_radius_A = v.get<double>("disorder_belt_outer_radius_A");
  b.height_A = v.get<double>("disorder_belt_height_A");
  b.shape = v.get<std::string>("disorder_belt_shape") == "torus" ? BeltShape::Torus : BeltShape::Cylinder;
  if (b.outer_radius_A <= b.inner_radius_A)
    throw InputError(fmt::format("--disorder-belt-outer-radius-A ({} A) must exceed --disorder-belt-inner-radius-A "
                                 "({} A)",
                                 b.outer_radius_A, b.inner_radius_A));
  // Inside the box's inscribed sphere, every view keeps the whole belt in the image.
  const int box = truth.map.nx();
  const double reach = std::hypot(b.outer_radius_A, b.height_A / 2), limit = box / 2 * voxel_A;
  if (reach > limit)
    throw InputError(fmt::format("--disorder-belt-outer-radius-A, --disorder-belt-height-A: the belt reaches {:.4g} A "
                                 "from the centre, beyond the box's inscribed sphere ({:.4g} A = {} px x {} A)",
                                 reach, limit, box / 2, voxel_A));
  RealGrid m = belt_envelope(box, voxel_A, b);
  for (std::size_t i = 0; i < m.size(); ++i) m[i] *= 1 - truth.mask[i];
  if (*std::max_element(m.values().begin(), m.values().end()) <= 0)
    throw InputError("--disorder-belt-outer-radius-A: the belt lies wholly inside the protein's mask");
  return m;
}

std::optional<DisorderOptions> disorder_options(const tp::Values& v, const Truth& truth, double voxel_A) {
  if (!v.get<bool>("disorder")) return std::nullopt;
  DisorderOptions d;
  d.resolution_A =
      v.get_optional<double>("disorder_resolution_A").value_or(std::max(kDisorderResolutionA, 4 * voxel_A));
  if (d.resolution_A < 4 * voxel_A)
    throw InputError(fmt::format("--disorder-resolution-A: {} A is finer than 4 pixels ({} A at {} A/px)",
                                 d.resolution_A, 4 * voxel_A, voxel_A));
  if (auto path = v.input_optional("disorder_mask"))
    d.envelope =
        tp::load_mask(*path, tp::LoadedVolume{truth.map, voxel_A}, "the map", v.get_optional<double>("pixel_A")).data;
  else
    d.envelope = belt_less_protein(v, truth, voxel_A);
  const double protein_rms = masked_rms(truth.map, truth.mask);
  d.rms = v.get<double>("disorder_amplitude") * protein_rms;
  d.mean = v.get<double>("disorder_mean") * protein_rms;
  return d;
}

// "a,b,c" (blanks allowed; empty: none) as finite numbers.
std::vector<double> coefficient_list(const std::string& text, const char* option) {
  std::vector<double> out;
  if (text.find_first_not_of(" \t") == std::string::npos) return out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    std::size_t used = 0;
    double value = 0;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" \t", used) != std::string::npos || !std::isfinite(value))
      throw InputError(fmt::format("{}: '{}' is not a comma-separated list of numbers ('{}')", option, text, item));
    out.push_back(value);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

SimulationOptions simulation_options(const tp::Values& v, double voxel_A) {
  SimulationOptions o;
  o.count = v.get<std::int64_t>("count");
  o.pixel_A = voxel_A;
  o.seed = static_cast<std::uint64_t>(v.run().seed);
  o.apply_ctf = v.get<bool>("ctf");
  if (o.apply_ctf) {
    o.defocus_min_A = v.get<double>("defocus_min_A");
    o.defocus_max_A = v.get<double>("defocus_max_A");
    o.astigmatism_max_A = v.get<double>("astigmatism_max_A");
    o.defocus_error_sigma_A = v.get<double>("defocus_error_sigma_A");
    if (o.defocus_max_A < o.defocus_min_A)
      throw InputError(fmt::format("--defocus-max-A ({}) is below --defocus-min-A ({})", o.defocus_max_A,
                                   o.defocus_min_A));
  }
  o.particles_per_micrograph = v.get<std::int64_t>("particles_per_micrograph");
  o.voltage_kV = v.get<double>("voltage_kV");
  o.cs_mm = v.get<double>("cs_mm");
  o.amplitude_contrast = v.get<double>("amplitude_contrast");
  o.ewald_sphere = parse_ewald_sphere(v.get<std::string>("ewald_sphere"));
  if (const double mag = v.get<double>("anisotropic_magnification_percent"); mag > 0)
    o.mag_matrix = anisotropic_magnification(mag, v.get<double>("anisotropy_angle_deg"));
  if (o.ewald_sphere != EwaldSphere::Off && !o.apply_ctf)
    throw InputError("--ewald-sphere: the sidebands need the CTF (give --ctf true or --ewald-sphere off)");
  if (o.apply_ctf) {
    o.beam_tilt_x_mrad = v.get<double>("beam_tilt_x_mrad");
    o.beam_tilt_y_mrad = v.get<double>("beam_tilt_y_mrad");
    o.odd_zernike = coefficient_list(v.get<std::string>("odd_zernike"), "--odd-zernike");
    o.even_zernike = coefficient_list(v.get<std::string>("even_zernike"), "--even-zernike");
  }
  if (v.get<bool>("noise")) o.snr = v.get<double>("snr");
  o.scale_sigma = v.get<double>("scale_sigma");
  o.origin_sigma_A = v.get<double>("origin_sigma_A");
  o.module_rotation_sigma_deg = v.get<double>("module_rotation_sigma_deg");
  o.module_shift_sigma_px = v.get<double>("module_shift_sigma_px");
  if (auto poses = v.input_optional("poses")) {
    const ParticleSet given = tp::load_particles(*poses);
    for (const auto& p : given.particles) {
      if (!p.pose) continue;
      o.given_poses.push_back(*p.pose);
      using GivenCtf = SimulationOptions::GivenCtf;
      o.given_ctfs.push_back(has_ctf(p) ? std::optional<GivenCtf>(GivenCtf{p.defocus_u_A, p.defocus_v_A,
                                                                            p.defocus_angle_deg, p.phase_shift_deg})
                                        : std::nullopt);
    }
    if (o.given_poses.empty()) throw InputError(fmt::format("{}: no particle has a pose", poses->string()));
  }
  return o;
}

// Renders particles in chunks on all threads, appending to the stack in order.
std::vector<SimulatedParticle> render_stack(const Simulator& sim, MrcStackWriter& stack, int threads,
                                            tp::RunContext& ctx) {
  const long count = sim.options().count;
  const long chunk = std::max(1, threads) * 32L;
  std::vector<SimulatedParticle> all;
  all.reserve(static_cast<std::size_t>(count));
  std::vector<RealGrid> images(static_cast<std::size_t>(chunk));
  std::vector<SimulatedParticle> params(static_cast<std::size_t>(chunk));
  for (long begin = 0; begin < count; begin += chunk) {
    const long n = std::min(chunk, count - begin);
    auto work = [&](int t) {
      for (long i = t; i < n; i += threads) params[i] = sim.make(begin + i, images[i]);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    for (long i = 0; i < n; ++i) {
      stack.append(images[i]);
      all.push_back(std::move(params[i]));
    }
    ctx.progress("simulate", begin + n, count);
  }
  return all;
}

ParticleSet particle_set(const Simulator& sim, std::vector<Particle> particles) {
  ParticleSet set;
  set.optics.push_back(sim.optics());
  set.particles = std::move(particles);
  return set;
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  const Volumes vols = load_inputs(v);
  const Truth truth = truth_of(vols);
  SimulationOptions options = simulation_options(v, vols.voxel_A);
  options.disorder = disorder_options(v, truth, vols.voxel_A);
  if (options.disorder && options.mag_matrix != kIdentity2)
    throw InputError("--anisotropic-magnification-percent: the disordered component is not magnified; not with "
                     "--disorder");
  const Simulator sim(vols.modules, std::move(options));
  const int box = sim.box();
  ctx.info(fmt::format("{} particles, box {} at {} A/px, {} module(s), noise sigma {:.4g}", sim.options().count, box,
                       vols.voxel_A, vols.modules.size(), sim.noise_sigma()));
  if (const EwaldSphere e = sim.options().ewald_sphere; e != EwaldSphere::Off)
    ctx.info(fmt::format("Ewald sphere ({}): lambda {:.5f} A at {} kV; at Nyquist the sheets lie {:.3f} px off the "
                         "central slice (box {}, {} A/px)",
                         ewald_sphere_name(e), electron_wavelength_A(sim.options().voltage_kV),
                         sim.options().voltage_kV,
                         std::abs(ewald_curvature_px(e, sim.options().voltage_kV, box, vols.voxel_A)) * (box / 2.0) *
                             (box / 2.0),
                         box, vols.voxel_A));
  if (const DisorderOptions* d = sim.options().disorder ? &*sim.options().disorder : nullptr)
    ctx.info(fmt::format("disorder: {} envelope voxels, sigma {:.3g} px, RMS {:.4g} and mean {:.4g} inside the "
                         "envelope (the protein's RMS inside its mask: {:.4g})",
                         sim.disorder()->voxels(), sim.disorder()->sigma_px(), d->rms, d->mean,
                         masked_rms(truth.map, truth.mask)));

  ctx.start();
  MrcStackWriter stack(ctx.path("particles.mrcs"), box, box, vols.voxel_A);
  std::vector<SimulatedParticle> sims = render_stack(sim, stack, ctx.options().threads, ctx);
  stack.finish();

  std::vector<Particle> particles;
  for (std::size_t i = 0; i < sims.size(); ++i) {
    Particle p = sims[i].particle;
    p.image = ImageRef{static_cast<long>(i) + 1, "particles.mrcs"};
    particles.push_back(std::move(p));
  }
  ParticleSet set = particle_set(sim, particles);
  set.base_dir = ctx.out_dir();
  const bool magnified = sim.options().mag_matrix != kIdentity2;
  const bool aberrated = has_odd_aberrations(sim.optics()) || has_even_aberrations(sim.optics());
  if ((magnified || aberrated) && !(sim.options().defocus_error_sigma_A > 0))
    tp::save_particles(ctx, set, "particles_truth", "particles_truth", "");
  if (aberrated) {  // particles.star: no aberrations, as a set before they are fitted
    OpticsGroup& g = set.optics.front();
    g.beam_tilt_x_mrad = g.beam_tilt_y_mrad = 0;
    g.odd_zernike.clear();
    g.even_zernike.clear();
  }
  if (sim.options().defocus_error_sigma_A > 0) {  // the truth apart; particles.star gets the micrographs' defoci
    tp::save_particles(ctx, set, "particles_truth", "particles_truth", "");
    for (std::size_t i = 0; i < sims.size(); ++i) {
      set.particles[i].defocus_u_A -= sims[i].defocus_error_A;
      set.particles[i].defocus_v_A -= sims[i].defocus_error_A;
    }
  }
  if (magnified) {  // as the images show it without the matrix: the identity, the defocus re-expressed
    for (Particle& p : set.particles) reexpress_defocus(p, set.optics.front().mag_matrix, kIdentity2);
    set.optics.front().mag_matrix = kIdentity2;
  }
  tp::save_particles(ctx, set, "particles", "particles_star", "particles_sqlite");

  tp::save_volume(ctx, "truth", "truth.mrc", truth.map, vols.voxel_A);
  tp::save_volume(ctx, "truth_mask", "truth_mask.mrc", truth.mask, vols.voxel_A);
  if (const Disorder* d = sim.disorder()) {
    const DisorderOptions& o = *sim.options().disorder;
    tp::save_volume(ctx, "disorder_mask", "disorder_mask.mrc", d->envelope(), vols.voxel_A,
                    {{"resolution_A", o.resolution_A}, {"rms", o.rms}, {"mean", o.mean}});
    tp::save_volume(ctx, "disorder_mean", "disorder_mean.mrc", d->mean_volume(), vols.voxel_A);
  }

  if (vols.modules.size() > 1) {
    tp::Json modules = tp::Json::array();
    for (std::size_t j = 0; j < vols.modules.size(); ++j) {
      const std::string stem = fmt::format("module_{}", j + 1);
      write_mrc(ctx.path(stem + ".mrc"), vols.modules[j], vols.voxel_A);
      const float mpeak = *std::max_element(vols.modules[j].values().begin(), vols.modules[j].values().end());
      write_mrc(ctx.path(stem + "_mask.mrc"), threshold_mask(vols.modules[j], 0.05 * mpeak, 2, 4), vols.voxel_A);
      ParticleSet mset = set;
      for (std::size_t i = 0; i < sims.size(); ++i) mset.particles[i].pose = sims[i].module_poses[j];
      write_particles_star(ctx.path(stem + "_poses.star"), mset, std::filesystem::absolute(ctx.out_dir()));
      const Vec3 c = sim.module_centres_px()[j];
      modules.push_back({{"volume", stem + ".mrc"}, {"mask", stem + "_mask.mrc"}, {"poses", stem + "_poses.star"},
                         {"centre_px", {c[0], c[1], c[2]}}});
    }
    tp::atomic_write_text(ctx.path("modules.json"), modules.dump(2) + "\n");
    ctx.add_output("modules", "modules.json", {{"count", vols.modules.size()}});
  }
}

}  // namespace

int main(int argc, char** argv) { return tp::run_program(make_schema(), argc, argv, work); }
