// tessera_ctf_refine: per-particle defocus refinement, standalone (as cryoSPARC's
// Local CTF Refinement and RELION's ctf_refine are used): particles with poses
// and a map, or two half maps (each half set against its own half map), give
// each particle (or each micrograph) a new defocus U and V, found by a 1D
// search of one offset scored by the refinement's likelihood under the forward
// model (tessera/ctf_refine.hpp; docs/ctf_refine.md).
#include <algorithm>
#include <array>
#include <cmath>
#include <fmt/format.h>

#include "common/cli.hpp"
#include "common/consensus.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/aberration_fit.hpp"
#include "tessera/ctf_refine.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/optics_aberrations.hpp"
#include "tessera/mag_refine.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/reconstruct_set.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

// Per-optics-group aberrations (tessera/aberration_fit.hpp; docs/ctf_refine.md, "Aberrations").
void add_aberration_schema(tp::Schema& s) {
  s.add_bool("fit_beam_tilt", "Fit beam tilt",
             {.default_value = false,
              .help = "Fit each optics group's beam tilt (rlnBeamTiltX/Y, mrad) from the particles' antisymmetric "
                      "phase errors (as relion_ctf_refine --fit_beamtilt).",
              .section = "Aberrations"});
  s.add_bool("fit_odd", "Fit odd aberrations",
             {.default_value = false,
              .help = "Fit odd Zernike terms up to --odd-order (3: beam tilt and trefoil; rlnOddZernike and "
                      "rlnBeamTiltX/Y as RELION writes them, as --odd_aberr_max_n).",
              .section = "Aberrations"});
  s.add_int("odd_order", "Odd order",
            {.default_value = 3, .min = 1, .max = 9,
             .help = "Highest radial order of the odd Zernike terms (odd: 1, 3, 5, ...).", .section = "Aberrations",
             .condition = "fit_odd"});
  s.add_bool("fit_even", "Fit even aberrations",
             {.default_value = false,
              .help = "Fit even Zernike terms up to --even-order (4: Cs change, tetrafoil, astigmatism-like terms; "
                      "rlnEvenZernike, as relion_ctf_refine --fit_aberr).",
              .section = "Aberrations"});
  s.add_int("even_order", "Even order",
            {.default_value = 4, .min = 2, .max = 10,
             .help = "Highest radial order of the even Zernike terms (even: 2, 4, 6, ...).", .section = "Aberrations",
             .condition = "fit_even"});
  s.add_float("aberrations_min_res_A", "Aberrations: lowest resolution",
              {.default_value = 20.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Frequencies coarser than this are left out of the aberration fits.",
               .section = "Aberrations"});
  s.add_float("aberrations_max_res_A", "Aberrations: highest resolution",
              {.min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Default: the one of the defocus (--max-res-A's value or default).",
               .section = "Aberrations"});
}

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_ctf_refine";
  s.version = "0.1.0";
  s.label = "CTF refinement (per-particle defocus, aberrations)";
  s.description =
      "Refines each particle's defocus (or each micrograph's) at its current pose against a map or two half maps: "
      "one offset added to defocus U and V, searched on a grid over the range and then by golden section, scored "
      "by the refinement's Gaussian likelihood under the forward model with the contrast scale fitted at each "
      "offset. With half maps each half set is scored against its own half map (gold standard). Writes the "
      "particles with the new rlnDefocusU/V and the defocus change per micrograph (JSON) for plots. Optionally "
      "fits each optics group's beam tilt, odd and even Zernike aberrations from the particles' residual phases "
      "first (as relion_ctf_refine --fit_beamtilt, --odd_aberr_max_n, --fit_aberr), written as RELION 3.1's "
      "optics columns, with the phase maps per optics group.";
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
  s.add_bool("refine_defocus", "Refine the defocus",
             {.default_value = true,
              .help = "Search each particle's (or micrograph's) defocus offset. Off: only the fits asked for "
                      "below (e.g. --fit-magnification)."});
  s.add_bool("fit_magnification", "Fit anisotropic magnification",
             {.default_value = false,
              .help = "Before the defocus, fit each optics group's magnification matrix (rlnMagMat00..11, RELION "
                      "3.1's convention: the map and the CTF at M k) from the displacement of the images against "
                      "the map's projections along its gradient, as RELION's ctf_refine --fit_aniso; the defoci "
                      "are re-expressed in the new frame. Written to the optics table and magnification.json.",
              .section = "Magnification"});
  s.add_float("mag_min_res_A", "Lowest resolution of the magnification fit",
              {.default_value = 20.0, .min = 0.0, .min_exclusive = true, .unit = "A",
               .help = "Frequencies from this to --max-res-A are used (RELION's --kmin_mag).",
               .section = "Magnification", .condition = "fit_magnification"});
  s.add_int("mag_passes", "Magnification passes",
            {.default_value = 2, .min = 1, .max = 10,
             .help = "Fits, each with the previous one's matrix applied (the first is RELION's single pass).",
             .section = "Magnification", .level = tp::Level::Advanced, .condition = "fit_magnification"});
  add_aberration_schema(s);
  s.add_bool("fsc_before_after", "FSC before and after",
             {.default_value = true,
              .help = "Reconstruct half maps from the particles with the given CTF parameters and with the refined "
                      "ones (the particles' poses and half sets, C1) and write both FSC curves, inside the mask when "
                      "one is given, to fsc_before_after.json, which tessera_view_fsc draws: what the refinement "
                      "gained. Costs two reconstructions."});
  s.add_output("particles_star", tp::OutputKind::ParticlesStar, "Particles (STAR)");
  s.add_output("particles_sqlite", tp::OutputKind::ParticlesSqlite, "Particles (Scipion)");
  s.add_output("magnification_json", tp::OutputKind::Table, "Magnification fit (JSON)",
               {.help = "Per optics group: the matrix before and after each pass, its mean magnification, "
                        "anisotropy (%) and direction.",
                .optional = true});
  s.add_output("aberration_phases", tp::OutputKind::Table, "Aberration phase maps",
               {.help = "aberration_phases.mrc: per optics group, the residual phase (rad) measured per Fourier "
                        "pixel and fitted (odd, then even; centred, one image each, listed in 'sections'); also "
                        "drawn as heat maps in defocus_change.json's figures.",
                .optional = true});
  s.add_output("fsc_before_after", tp::OutputKind::Table, "FSC before and after (JSON)",
               {.help = "fsc_before_after.json, in fsc.json's shape: curves 'before' and 'after' (the half maps' "
                        "FSC with the given and the refined CTF parameters) and their resolutions at 0.143.",
                .optional = true});
  s.add_output("defocus_json", tp::OutputKind::Table, "Defocus change (JSON)",
               {.help = "Per micrograph: particles, mean and standard deviation of the defocus change (A); the "
                        "median absolute change and the resolution range scored (with --refine-defocus).",
                .optional = true});
  return s;
}

struct Inputs {
  ParticleSet set;
  std::vector<RealGrid> maps;  // one, or the two half maps
  std::optional<RealGrid> mask;
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
  in.mask = std::move(mask);
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

tp::Json matrix_json(const Mat2& m) { return tp::Json::array({m[0], m[1], m[2], m[3]}); }

// --fit-magnification: each optics group's matrix into in.set (and its defoci re-expressed), and
// magnification.json with the fit per group.
void fit_magnification(const tp::Values& v, Inputs& in, std::span<const RealGrid* const> maps, tp::RunContext& ctx) {
  MagnificationRefineOptions o;
  o.min_res_A = v.get<double>("mag_min_res_A");
  o.max_res_A = in.max_res_A;
  o.passes = static_cast<int>(v.get<std::int64_t>("mag_passes"));
  o.threads = ctx.options().threads;
  ctx.info(fmt::format("fitting the anisotropic magnification from {:.3g} A to {:.3g} A, {} pass(es)", o.min_res_A,
                       in.max_res_A, o.passes));
  const std::vector<MagnificationGroupFit> fits = refine_magnification(in.set, maps, o);
  tp::Json groups = tp::Json::array();
  for (const MagnificationGroupFit& f : fits) {
    const Mat2& m = f.after_pass.back();
    const MagnificationSummary s = summarize_magnification(m);
    ctx.info(fmt::format("optics group {}: {} particles, M = [[{:.5f}, {:.5f}], [{:.5f}, {:.5f}]]: anisotropy {:.3f}% "
                         "along {:.1f} deg, mean magnification {:.4f}",
                         f.optics_group, f.particles, m[0], m[1], m[2], m[3], 100 * s.anisotropy,
                         s.major_angle_deg, s.mean));
    if (std::abs(s.mean - 1) > 0.005)
      ctx.warn(fmt::format("optics group {}: the mean magnification differs from 1 by {:.2f}%: the pixel size is off "
                           "by as much (the maps' scale changes with it)",
                           f.optics_group, 100 * (s.mean - 1)));
    tp::Json passes = tp::Json::array();
    for (const Mat2& p : f.after_pass) passes.push_back(matrix_json(p));
    groups.push_back({{"optics_group", f.optics_group}, {"particles", f.particles},
                      {"before", matrix_json(f.before)}, {"after", matrix_json(m)}, {"passes", passes},
                      {"mean_magnification", s.mean}, {"anisotropy_percent", 100 * s.anisotropy},
                      {"major_angle_deg", s.major_angle_deg}});
  }
  const tp::Json out = {{"convention", "rlnMagMat00, 01, 10, 11: image frequency k samples the map and the CTF at M k"},
                        {"min_res_A", o.min_res_A}, {"max_res_A", in.max_res_A}, {"optics_groups", groups}};
  tp::atomic_write_text(ctx.path("magnification.json"), out.dump(2) + "\n");
  ctx.add_output("magnification_json", "magnification.json", {{"optics_groups", fits.size()}});
}

// The aberration fits asked for, checked (nullopt: none).
std::optional<AberrationFitOptions> aberration_options(const tp::Values& v, const Inputs& in, int threads) {
  AberrationFitOptions a;
  a.beam_tilt = v.get<bool>("fit_beam_tilt");
  if (v.get<bool>("fit_odd")) {
    a.odd_order = static_cast<int>(v.get<std::int64_t>("odd_order"));
    if (a.odd_order % 2 == 0) throw InputError(fmt::format("--odd-order: {} is not odd", a.odd_order));
  }
  if (v.get<bool>("fit_even")) {
    a.even_order = static_cast<int>(v.get<std::int64_t>("even_order"));
    if (a.even_order % 2 != 0) throw InputError(fmt::format("--even-order: {} is not even", a.even_order));
  }
  if (!a.beam_tilt && a.odd_order == 0 && a.even_order == 0) return std::nullopt;
  const int box = particle_box(in.set);
  a.min_res_A = v.get<double>("aberrations_min_res_A");
  tp::check_resolution_in_box(a.min_res_A, "--aberrations-min-res-A", box, in.pixel_A);
  const auto max_res = v.get_optional<double>("aberrations_max_res_A");
  tp::check_resolution_in_box(max_res, "--aberrations-max-res-A", box, in.pixel_A);
  a.max_res_A = max_res.value_or(in.max_res_A);
  if (*a.max_res_A >= a.min_res_A)
    throw InputError(fmt::format("--aberrations-max-res-A: the highest resolution fitted ({:.3g} A) is not finer than "
                                 "--aberrations-min-res-A ({:.3g} A)",
                                 *a.max_res_A, a.min_res_A));
  a.threads = threads;
  return a;
}

// Per optics group: what was fitted, the new values and the change.
tp::Json aberrations_json(const AberrationRefinement& fits, const AberrationFitOptions& a) {
  tp::Json groups = tp::Json::array();
  for (const GroupAberrationFit& f : fits.groups) {
    tp::Json g = {{"optics_group", f.group}, {"particles", f.particles}};
    if (f.odd)
      g["odd"] = {{"beam_tilt_x_mrad", f.beam_tilt_x_mrad}, {"beam_tilt_y_mrad", f.beam_tilt_y_mrad},
                  {"beam_tilt_se_mrad", f.beam_tilt_se_mrad}, {"odd_zernike", f.odd_zernike},
                  {"odd_change", f.odd_change}, {"odd_change_se", f.odd_change_se}};
    if (f.even)
      g["even"] = {{"even_zernike", f.even_zernike}, {"even_change", f.even_change},
                   {"even_change_se", f.even_change_se}};
    groups.push_back(std::move(g));
  }
  return {{"beam_tilt", a.beam_tilt}, {"odd_order", a.odd_order}, {"even_order", a.even_order},
          {"min_res_A", a.min_res_A}, {"max_res_A", *a.max_res_A}, {"groups", groups}};
}

// A centred phase map binned to at most kPhaseCells x kPhaseCells cells (mean of the weighted
// pixels) as a heat map; frequencies in 1/A at the cells' centres label rows and columns.
constexpr int kPhaseCells = 48;
tp::Json phase_heatmap(const std::string& name, const std::string& label, const RealGrid& half,
                       const RealGrid& weight, int sign, double pixel_A) {
  const RealGrid img = centred_phase_image(half, sign), w = centred_phase_image(weight, 1);
  const int box = img.nx(), bin = (box + kPhaseCells - 1) / kPhaseCells, cells = box / bin;
  std::vector<std::string> axis;
  for (int c = 0; c < cells; ++c) axis.push_back(fmt::format("{:.3f}", ((c + 0.5) * bin - box / 2) / (box * pixel_A)));
  std::vector<std::vector<double>> values(static_cast<std::size_t>(cells), std::vector<double>(cells, 0.0));
  for (int r = 0; r < cells; ++r)
    for (int c = 0; c < cells; ++c) {
      double sum = 0, n = 0;
      for (int y = r * bin; y < (r + 1) * bin; ++y)
        for (int x = c * bin; x < (c + 1) * bin; ++x)
          if (w(x, y) > 0) sum += img(x, y), n += 1;
      values[static_cast<std::size_t>(cells - 1 - r)][static_cast<std::size_t>(c)] = n > 0 ? sum / n : 0.0;
    }
  std::reverse(axis.begin(), axis.end());
  std::vector<std::string> columns = axis;
  std::reverse(columns.begin(), columns.end());
  return tp::heatmap_json(name, label, axis, columns, values, "ky (1/A)", "kx (1/A)");
}

// Each group's measured and fitted residual phases: heat maps for the figures block, and one MRC
// stack of centred maps (radians), per group: odd measured, odd fitted, even measured, even fitted
// (those fitted), listed in the output's "sections".
tp::Json write_phase_maps(tp::RunContext& ctx, const AberrationRefinement& fits, const ParticleSet& set) {
  tp::Json heatmaps = tp::Json::array(), listed = tp::Json::array();
  std::vector<RealGrid> sections;
  const auto add = [&](const GroupAberrationFit& f, const char* kind, const char* title, const RealGrid& half,
                       const RealGrid& weight, int sign, double pixel_A) {
    heatmaps.push_back(phase_heatmap(fmt::format("{}_{}", kind, f.group),
                                     fmt::format("{} (rad), optics group {}", title, f.group), half, weight, sign,
                                     pixel_A));
    sections.push_back(centred_phase_image(half, sign));
    listed.push_back({{"optics_group", f.group}, {"phase", kind}});
  };
  for (const GroupAberrationFit& f : fits.groups) {
    double pixel_A = 1;
    for (const OpticsGroup& g : set.optics)
      if (g.number == f.group) pixel_A = g.pixel_A;
    if (f.odd) {
      add(f, "odd_measured", "Odd phase, measured", f.odd_measured, f.odd_weight, -1, pixel_A);
      add(f, "odd_fitted", "Odd phase, fitted", f.odd_fitted, f.odd_weight, -1, pixel_A);
    }
    if (f.even) {
      add(f, "even_measured", "Even phase, measured", f.even_measured, f.even_weight, 1, pixel_A);
      add(f, "even_fitted", "Even phase, fitted", f.even_fitted, f.even_weight, 1, pixel_A);
    }
  }
  if (sections.empty()) return heatmaps;
  const int box = sections.front().nx();
  RealGrid stack(box, box, static_cast<int>(sections.size()));
  for (std::size_t z = 0; z < sections.size(); ++z)
    std::copy(sections[z].values().begin(), sections[z].values().end(), stack.section(static_cast<int>(z)));
  const fs::path tmp = ctx.path("aberration_phases.mrc.tmp");
  write_mrc(tmp, stack, 1.0, true);
  fs::rename(tmp, ctx.path("aberration_phases.mrc"));
  ctx.add_output("aberration_phases", "aberration_phases.mrc", {{"sections", listed}});
  return heatmaps;
}

// fsc_before_after.json: the half maps' FSC with the given (`before`) and the refined CTF
// parameters, in fsc.json's shape, so that tessera_view_fsc draws it.
void write_fsc_before_after(tp::RunContext& ctx, const ParticleSet& before, const Inputs& in, int threads) {
  ReconstructSetOptions ro;
  ro.threads = threads;
  ro.wiener = false;
  const int box = particle_box(in.set);
  tp::Json curves = tp::Json::object(), resolution = tp::Json::object();
  std::array<std::optional<double>, 2> at;
  const std::array<std::pair<const char*, const ParticleSet*>, 2> runs{{{"before", &before}, {"after", &in.set}}};
  for (std::size_t k = 0; k < runs.size(); ++k) {
    ctx.info(fmt::format("FSC {}: reconstructing half maps with the {} CTF parameters", runs[k].first,
                         k == 0 ? "given" : "refined"));
    const HalfSetReconstruction r = reconstruct_particles(*runs[k].second, ro);
    const std::vector<double> f = in.mask ? masked_fsc(r.raw_a, r.raw_b, *in.mask) : r.fsc;
    at[k] = resolution_at(f, 0.143, box, in.pixel_A);
    curves[runs[k].first] = f;
    resolution[std::string(runs[k].first) + "@0.143"] = at[k] ? tp::Json(*at[k]) : tp::Json();
  }
  const auto text = [](const std::optional<double>& r) { return r ? fmt::format("{:.2f} A", *r) : std::string("none"); };
  ctx.info(fmt::format("half maps' FSC 0.143 ({}): {} with the given CTF parameters, {} with the refined ones",
                       in.mask ? "inside the mask" : "unmasked", text(at[0]), text(at[1])));
  const tp::Json doc = {{"box", box},
                        {"voxel_A", in.pixel_A},
                        {"shells", tp::fsc_shells_json(box, in.pixel_A)},
                        {"masked", in.mask.has_value()},
                        {"curves", curves},
                        {"resolution_A", resolution}};
  tp::atomic_write_text(ctx.path("fsc_before_after.json"), doc.dump(2) + "\n");
  ctx.add_output("fsc_before_after", "fsc_before_after.json", {{"resolution_A", resolution}});
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  Inputs in = load_inputs(v);
  const bool fsc_before_after = v.get<bool>("fsc_before_after");
  const std::optional<ParticleSet> given = fsc_before_after ? std::optional<ParticleSet>(in.set) : std::nullopt;
  DefocusRefineOptions o;
  o.search.range_A = v.get<double>("defocus_range_A");
  o.search.step_A = v.get<double>("defocus_step_A");
  o.min_res_A = v.get<double>("min_res_A");
  o.max_res_A = in.max_res_A;
  o.per_micrograph = v.get<bool>("per_micrograph");
  o.threads = ctx.options().threads;
  const bool fit_defocus = v.get<bool>("refine_defocus"), fit_mag = v.get<bool>("fit_magnification");
  const std::optional<AberrationFitOptions> aberrations = aberration_options(v, in, o.threads);
  if (!fit_defocus && !fit_mag && !aberrations)
    throw InputError("--refine-defocus: nothing to refine (give --refine-defocus true, --fit-magnification, "
                     "--fit-beam-tilt, --fit-odd or --fit-even)");
  ctx.start();
  std::vector<const RealGrid*> maps;
  for (const RealGrid& m : in.maps) maps.push_back(&m);
  // Order: magnification (the aberrations are evaluated at M k), the aberrations, then the defocus
  // scored with both.
  if (fit_mag) fit_magnification(v, in, maps, ctx);
  AberrationRefinement fits;
  if (aberrations) {  // first, so that the defocus is scored with the new aberrations
    ctx.info(fmt::format("aberrations of {} optics group(s), fitted from {:.3g} A to {:.3g} A", in.set.optics.size(),
                         aberrations->min_res_A, *aberrations->max_res_A));
    fits = refine_aberrations(in.set, maps, *aberrations);
    apply_aberration_fits(in.set, fits);
    for (const GroupAberrationFit& f : fits.groups)
      ctx.info(fmt::format("optics group {} ({} particles): beam tilt ({:.3f}, {:.3f}) mrad, odd {}, even {}", f.group,
                           f.particles, f.beam_tilt_x_mrad, f.beam_tilt_y_mrad, format_coefficient_list(f.odd_zernike),
                           format_coefficient_list(f.even_zernike)));
  }
  DefocusRefinement r;
  r.offset_A.assign(in.set.particles.size(), 0.0);
  if (fit_defocus) {
    ctx.info(fmt::format("{} particles against {}, scored from {:.3g} A to {:.3g} A, offsets within +-{} A",
                         in.set.particles.size(), in.maps.size() == 2 ? "their half maps" : "the map", o.min_res_A,
                         in.max_res_A, o.search.range_A));
    r = refine_defocus(in.set, maps, o);
    apply_defocus_offsets(in.set, r.offset_A);
  }
  const double med = median_abs(r.offset_A);
  if (fit_defocus) ctx.info(fmt::format("median |defocus change| {:.1f} A", med));
  tp::save_particles(ctx, in.set, "particles", "particles_star", "particles_sqlite");
  if (given) write_fsc_before_after(ctx, *given, in, o.threads);
  const std::vector<MicrographDefocusChange> per = defocus_change_per_micrograph(in.set, r.offset_A);
  tp::Json mics = tp::Json::array();
  for (const MicrographDefocusChange& m : per)
    mics.push_back({{"micrograph", m.micrograph}, {"particles", m.particles}, {"mean_change_A", m.mean_A},
                    {"sigma_change_A", m.sigma_A}});
  tp::Json figures = fit_defocus ? defocus_figures(r.offset_A, per)
                                 : tp::Json{{"histograms", tp::Json::array()}, {"heatmaps", tp::Json::array()}};
  if (aberrations)
    for (auto& h : write_phase_maps(ctx, fits, in.set)) figures["heatmaps"].push_back(std::move(h));
  tp::Json out = {{"median_abs_change_A", med},     {"min_res_A", o.min_res_A},
                  {"max_res_A", in.max_res_A},       {"range_A", o.search.range_A},
                  {"step_A", o.search.step_A},       {"per_micrograph", o.per_micrograph},
                  {"defocus_fitted", fit_defocus},   {"micrographs", mics},
                  {"figures", figures}};
  if (aberrations) out["aberrations"] = aberrations_json(fits, *aberrations);
  tp::atomic_write_text(ctx.path("defocus_change.json"), out.dump(2) + "\n");
  ctx.add_output("defocus_json", "defocus_change.json", {{"median_abs_change_A", med}});
}

}  // namespace

int main(int argc, char** argv) { return tp::run_program(make_schema(), argc, argv, work); }
