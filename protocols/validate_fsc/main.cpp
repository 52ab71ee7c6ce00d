// tessera_validate_fsc: gold-standard FSC of two half maps, unmasked, masked
// and masked corrected by phase randomization; the resolution at 0.143, a
// B-factor from a Guinier fit and the sharpened map, as relion_postprocess
// makes them (engine/fourier/include/tessera/fsc.hpp).
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <memory>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/postprocess.hpp"
#include "tessera/run_files.hpp"
#include "tessera/star.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

constexpr double kThreshold = 0.143;
constexpr double kReferenceThreshold = 0.5;  // a map against a noise-free reference (Rosenthal & Henderson 2003)
constexpr double kRandomizeAtFsc = 0.8;  // as corrected_fsc (RELION's --randomize_at_fsc)

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_validate_fsc";
  s.version = "0.1.0";
  s.label = "validate FSC";
  s.description =
      "Gold-standard Fourier shell correlation of two independently refined half maps: unmasked, masked, and "
      "masked corrected by phase randomization (Chen et al. 2013); the resolution at FSC 0.143; a B-factor "
      "from a Guinier fit of the FSC-weighted map; and the sharpened (FSC-weighted, B-factor corrected) map. Writes "
      "the curves as a STAR file laid out like relion_postprocess's (data_general, data_fsc, data_guinier) "
      "and as JSON.";
  s.scipion_base_class = "ProtAnalysis3D";
  s.citations = {"10.1016/j.ultramic.2013.06.004", "10.1016/j.jmb.2003.07.013"};
  s.support.threads = false;
  s.add_input("half_map_A", tp::InputKind::Volume, "Half map A", {.help = "First unfiltered half map (MRC)."});
  s.add_input("half_map_B", tp::InputKind::Volume, "Half map B", {.help = "Second unfiltered half map (MRC)."});
  s.add_input("mask", tp::InputKind::Mask, "Mask",
              {.help = "Soft solvent mask, values in [0, 1]. Without one, a mask is made from the half maps.",
               .required = false});
  s.add_input("reference", tp::InputKind::Volume, "Reference map",
              {.help = "A map to compare with: one computed from an atomic model, or a simulation's truth. The "
                       "half maps' average is compared with it unmasked and inside the mask (FSC 0.5: curves "
                       "vs_reference and vs_reference_masked).",
               .required = false});
  s.add_float("voxel_A", "Pixel size override",
              {.min = 0.0, .min_exclusive = true, .unit = "A", .help = "Use this pixel size instead of the maps'."});
  s.add_float("mask_threshold", "Mask threshold",
              {.help = "Density threshold on the low-passed average of the half maps.",
               .section = "Mask",
               .condition = "not mask",
               .required = true});
  s.add_float("mask_lowpass_A", "Mask low-pass",
              {.default_value = 15.0,
               .min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Low-pass the average before thresholding.",
               .section = "Mask",
               .condition = "not mask"});
  s.add_float("mask_extend_px", "Mask extension",
              {.default_value = 2.0,
               .min = 0.0,
               .unit = "px",
               .help = "Dilate the thresholded mask by this much.",
               .section = "Mask",
               .condition = "not mask"});
  s.add_float("mask_soft_edge_px", "Mask soft edge",
              {.default_value = 4.0,
               .min = 0.0,
               .unit = "px",
               .help = "Raised-cosine edge outside the mask.",
               .section = "Mask",
               .condition = "not mask"});
  s.add_float("randomize_from_A", "Randomize phases from",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Randomize phases beyond this resolution; default: from the first shell where the "
                       "unmasked FSC drops below 0.8.",
               .section = "FSC"});
  s.add_int("randomizations", "Phase randomizations",
            {.min = 1,
             .max = 1000,
             .help = "Phase-randomized pairs averaged for the correction; default: 40 at box 48, fewer at larger "
                     "boxes (40 x (48 / box)^2, at least 3). One, as relion_postprocess, moves the resolution by "
                     "whole shells and the B-factor by tens of % from seed to seed at small boxes.",
             .section = "FSC",
             .level = tp::Level::Advanced});
  s.add_float("bfactor_low_res_A", "Guinier fit from",
              {.default_value = 10.0,
               .min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Lowest resolution in the Guinier fit (RELION's --autob_lowres).",
               .section = "Sharpening"});
  s.add_float("bfactor_high_res_A", "Guinier fit up to",
              {.min = 0.0,
               .unit = "A",
               .help = "Highest resolution in the Guinier fit; default: the resolution found (beyond it the "
                       "weighted amplitudes are noise that moves the fit with the random phases); 0: Nyquist, "
                       "as relion_postprocess's default.",
               .section = "Sharpening"});
  s.add_float("bfactor_A2", "Ad-hoc B-factor",
              {.unit = "A^2",
               .help = "Sharpen with this B-factor (negative sharpens) instead of the fitted one.",
               .section = "Sharpening"});
  s.add_float("lowpass_A", "Low-pass",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Also low-pass the sharpened map here (raised cosine, 2 shells); default: none, the FSC "
                       "weighting already removes what lies beyond the resolution (as relion_postprocess 3.1).",
               .section = "Sharpening"});
  s.add_output("postprocess_star", tp::OutputKind::FscStar, "FSC, Guinier plot (STAR)",
               {.help = "data_general, data_fsc and data_guinier, as relion_postprocess writes them."});
  s.add_output("fsc_json", tp::OutputKind::FscJson, "FSC curves (JSON)");
  s.add_output("sharpened", tp::OutputKind::Volume, "Sharpened map");
  s.add_output("sharpened_masked", tp::OutputKind::Volume, "Sharpened map, masked");
  s.add_output("mask", tp::OutputKind::Mask, "Generated mask",
               {.help = "Only when no mask was given.", .optional = true});
  return s;
}

struct Inputs {
  RealGrid half_a, half_b, mask;
  std::optional<RealGrid> reference;
  double voxel_A = 0;
  bool mask_generated = false;
  std::string half_a_name, half_b_name, mask_name;
};

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  auto in = std::make_shared<Inputs>();
  const auto voxel = v.get_optional<double>("voxel_A");
  const fs::path fa = v.input("half_map_A"), fb = v.input("half_map_B");
  auto [a, b] = tp::load_half_maps(fa, fb, voxel);
  in->voxel_A = a.voxel_A;
  in->half_a_name = fa.string();
  in->half_b_name = fb.string();
  if (auto ref_file = v.input_optional("reference")) {
    tp::LoadedVolume ref = tp::load_volume(*ref_file, voxel);
    tp::check_same_grid(ref, *ref_file, a, fa.string());
    in->reference = std::move(ref.data);
  }
  if (auto mask_file = v.input_optional("mask")) {
    in->mask = tp::load_mask(*mask_file, a, fa.string(), voxel).data;
    in->mask_name = mask_file->string();
  } else {
    const RealGrid lp = lowpass(average_maps(a.data, b.data), v.get<double>("mask_lowpass_A"), in->voxel_A);
    in->mask = tp::mask_from_threshold(lp, v.get<double>("mask_threshold"), v.get<double>("mask_extend_px"),
                                       v.get<double>("mask_soft_edge_px"), "--mask-threshold");
    in->mask_generated = true;
    in->mask_name = "mask.mrc";
  }
  in->half_a = std::move(a.data);
  in->half_b = std::move(b.data);
  if (!v.get_optional<double>("randomize_from_A")) {
    const std::vector<double> unmasked = fsc(in->half_a, in->half_b);
    bool drops = false;
    for (std::size_t k = 1; k < unmasked.size(); ++k) drops = drops || unmasked[k] < kRandomizeAtFsc;
    if (!drops)
      throw InputError(
          fmt::format("{} and {}: the unmasked FSC stays above {} up to Nyquist; give "
                      "--randomize-from-A",
                      fa.string(), fb.string(), kRandomizeAtFsc));
  }
  return in;
}

struct Result {
  MaskedFsc curves;
  std::vector<double> particle_fraction;  // RELION's rlnFourierShellCorrelationParticleMaskFraction
  double box_fraction = 0;                // rlnParticleBoxFractionSolventMask
  std::optional<double> resolution_A;     // nullopt: above 0.143 up to Nyquist
  std::optional<GuinierFit> fit;          // absent with an ad-hoc B-factor
  double bfactor_A2 = 0;
  std::vector<double> amp_original, amp_weighted, amp_sharpened;
  RealGrid sharpened;
  std::vector<double> vs_reference, vs_reference_masked;  // empty without --reference
};

// FSC of a map of the particle alone from the unmasked FSC and the share of
// the box the mask's particle fills (the relation RELION 3.1 writes).
std::vector<double> particle_fraction_fsc(const std::vector<double>& unmasked, double box_fraction) {
  std::vector<double> out(unmasked.size());
  for (std::size_t k = 0; k < out.size(); ++k) {
    const double u = unmasked[k];
    const double d = 1 + (box_fraction - 1) * u;
    out[k] = d != 0 ? box_fraction * u / d : 0.0;
  }
  return out;
}

Result compute(const tp::Values& v, const Inputs& in, tp::RunContext& ctx) {
  PostprocessOptions po;
  po.randomize_from_A = v.get_optional<double>("randomize_from_A");
  if (auto n = v.get_optional<std::int64_t>("randomizations")) po.randomizations = static_cast<int>(*n);
  po.seed = static_cast<std::uint64_t>(ctx.options().seed);
  po.bfactor_low_res_A = v.get<double>("bfactor_low_res_A");
  po.bfactor_high_res_A = v.get_optional<double>("bfactor_high_res_A");
  po.bfactor_A2 = v.get_optional<double>("bfactor_A2");
  // relion_postprocess 3.1.3 does not low-pass an FSC-weighted map further
  // (checked: its postprocess.mrc is this map to 4e-7).
  if (auto cut = v.get_optional<double>("lowpass_A")) {
    po.lowpass = PostprocessOptions::Lowpass::Given;
    po.lowpass_A = *cut;
  }
  Postprocessed pp = postprocess(in.half_a, in.half_b, in.mask, in.voxel_A, po);
  for (const std::string& w : pp.warnings) ctx.warn(w);
  Result r;
  r.curves = std::move(pp.curves);
  const MaskStats ms = mask_stats(in.mask);
  constexpr double kRelionSolventFactor = 0.476;  // mask.hpp: rlnParticleBoxFractionSolventMask = 0.476 / fraction
  r.box_fraction = ms.fraction_above_half > 0 ? kRelionSolventFactor / ms.fraction_above_half : 0.0;
  r.particle_fraction = particle_fraction_fsc(r.curves.unmasked, r.box_fraction);
  r.resolution_A = pp.resolution_A;
  r.fit = pp.fit;
  r.bfactor_A2 = pp.bfactor_A2;
  r.amp_original = shell_mean_amplitude(pp.average);
  r.amp_weighted = shell_mean_amplitude(pp.weighted);
  r.amp_sharpened = shell_mean_amplitude(pp.sharpened);
  r.sharpened = std::move(pp.sharpened);
  if (in.reference) {
    r.vs_reference = fsc(pp.average, *in.reference);
    r.vs_reference_masked = masked_fsc(pp.average, *in.reference, in.mask);
  }
  return r;
}

std::string num(double x) {
  return std::isfinite(x) ? fmt::format("{:.6f}", x) : "999.000000";
}

StarTable general_block(const Inputs& in, const Result& r) {
  StarTable t;
  t.name = "general";
  t.is_loop = false;
  const int box = in.half_a.nx();
  const auto res = shell_resolution_A(box, in.voxel_A);
  t.labels = {"rlnFinalResolution",    "rlnBfactorUsedForSharpening",       "rlnUnfilteredMapHalf1",
              "rlnUnfilteredMapHalf2", "rlnParticleBoxFractionSolventMask", "rlnMaskName",
              "rlnRandomiseFrom"};
  std::vector<std::string> row{num(r.resolution_A.value_or(2 * in.voxel_A)),
                               fmt::format("{:.5f}", r.bfactor_A2),
                               in.half_a_name,
                               in.half_b_name,
                               num(r.box_fraction),
                               in.mask_name,
                               num(res[static_cast<std::size_t>(r.curves.randomize_from_shell)])};
  if (r.fit) {
    t.labels.insert(t.labels.end(),
                    {"rlnFittedSlopeGuinierPlot", "rlnFittedInterceptGuinierPlot", "rlnCorrelationFitGuinierPlot"});
    row.insert(row.end(), {fmt::format("{:.5f}", r.fit->bfactor_A2 / 4), fmt::format("{:.5f}", r.fit->intercept),
                           num(r.fit->r * r.fit->r)});
  }
  t.rows.push_back(std::move(row));
  return t;
}

StarTable fsc_block(const Inputs& in, const Result& r) {
  StarTable t;
  t.name = "fsc";
  t.labels = {"rlnSpectralIndex",
              "rlnResolution",
              "rlnAngstromResolution",
              "rlnFourierShellCorrelationCorrected",
              "rlnFourierShellCorrelationParticleMaskFraction",
              "rlnFourierShellCorrelationUnmaskedMaps",
              "rlnFourierShellCorrelationMaskedMaps",
              "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps"};
  const auto res = shell_resolution_A(in.half_a.nx(), in.voxel_A);
  for (std::size_t k = 0; k < res.size(); ++k) {
    const double d = k == 0 ? 999.0 : res[k];  // RELION writes 999 A for shell 0
    t.rows.push_back({fmt::format("{}", k), num(1.0 / d), num(d), num(r.curves.corrected[k]),
                      num(r.particle_fraction[k]), num(r.curves.unmasked[k]), num(r.curves.masked[k]),
                      num(r.curves.randomized_masked[k])});
  }
  return t;
}

StarTable guinier_block(const Inputs& in, const Result& r) {
  StarTable t;
  t.name = "guinier";
  t.labels = {"rlnResolutionSquared", "rlnLogAmplitudesOriginal", "rlnLogAmplitudesWeighted",
              "rlnLogAmplitudesSharpened"};
  if (r.fit) t.labels.push_back("rlnLogAmplitudesIntercept");
  const auto res = shell_resolution_A(in.half_a.nx(), in.voxel_A);
  auto ln = [](double a) { return a > 0 ? num(std::log(a)) : num(-99.0); };  // RELION's -99: no amplitude
  for (std::size_t k = 0; k < res.size(); ++k) {
    std::vector<std::string> row{fmt::format("{:.6g}", k == 0 ? 0.0 : 1.0 / (res[k] * res[k])), ln(r.amp_original[k]),
                                 ln(r.amp_weighted[k]), ln(r.amp_sharpened[k])};
    if (r.fit) row.push_back(num(r.fit->intercept));
    t.rows.push_back(std::move(row));
  }
  return t;
}

tp::Json optional_json(std::optional<double> x) {
  return x && std::isfinite(*x) ? tp::Json(*x) : tp::Json(nullptr);
}

void write_json(tp::RunContext& ctx, const tp::Values& v, const Inputs& in, const Result& r, const std::string& why) {
  namespace fsc_json = run_files::fsc;
  namespace key = fsc_json::key;
  namespace curve = fsc_json::curve;
  const int box = in.half_a.nx();
  const auto res = shell_resolution_A(box, in.voxel_A);
  const auto shell_res = [&](const std::vector<double>& c) {
    return optional_json(resolution_at(c, kThreshold, box, in.voxel_A));
  };
  tp::Json doc = {{key::box, box},
                  {key::voxel_A, in.voxel_A},
                  {key::shells, tp::fsc_shells_json(box, in.voxel_A)},
                  {key::curves,
                   {{curve::corrected, r.curves.corrected},
                    {curve::unmasked, r.curves.unmasked},
                    {curve::masked, r.curves.masked},
                    {curve::randomized_masked, r.curves.randomized_masked},
                    {curve::particle_mask_fraction, r.particle_fraction}}},
                  {key::resolution_A,
                   {{tp::fsc_resolution_key(curve::corrected, kThreshold), optional_json(r.resolution_A)},
                    {tp::fsc_resolution_key(curve::unmasked, kThreshold), shell_res(r.curves.unmasked)},
                    {tp::fsc_resolution_key(curve::masked, kThreshold), shell_res(r.curves.masked)}}},
                  {key::resolution_limited_by_nyquist, !r.resolution_A.has_value()},
                  {key::randomized_from,
                   {{fsc_json::randomized_from_key::shell, r.curves.randomize_from_shell},
                    {fsc_json::randomized_from_key::resolution_A,
                     res[static_cast<std::size_t>(r.curves.randomize_from_shell)]},
                    {fsc_json::randomized_from_key::reason, why}}},
                  {key::phase_randomization_seed, v.run().seed},
                  {key::bfactor_A2, r.bfactor_A2},
                  {key::bfactor_fitted, r.fit.has_value()}};
  if (!r.vs_reference.empty()) {
    doc[key::curves][curve::vs_reference] = r.vs_reference;
    doc[key::curves][curve::vs_reference_masked] = r.vs_reference_masked;
    const auto at_half = [&](const std::vector<double>& c) {
      return optional_json(resolution_at(c, kReferenceThreshold, box, in.voxel_A));
    };
    doc[key::resolution_A][tp::fsc_resolution_key(curve::vs_reference, kReferenceThreshold)] = at_half(r.vs_reference);
    doc[key::resolution_A][tp::fsc_resolution_key(curve::vs_reference_masked, kReferenceThreshold)] =
        at_half(r.vs_reference_masked);
  }
  if (r.fit)
    doc[key::guinier_fit] = {{fsc_json::guinier_fit_key::intercept, r.fit->intercept},
                             {fsc_json::guinier_fit_key::r_squared, r.fit->r * r.fit->r},
                             {fsc_json::guinier_fit_key::from_A, r.fit->fit_min_res_A},
                             {fsc_json::guinier_fit_key::to_A, r.fit->fit_max_res_A},
                             {fsc_json::guinier_fit_key::shells, r.fit->shells_used}};
  tp::atomic_write_text(ctx.path(fsc_json::kName), doc.dump(2) + "\n");
  ctx.add_output("fsc_json", fsc_json::kName);
}

void report(tp::RunContext& ctx, const Inputs& in, const Result& r, const std::string& why) {
  const auto res = shell_resolution_A(in.half_a.nx(), in.voxel_A);
  ctx.info(fmt::format("{:>6} {:>9} {:>10} {:>10} {:>10} {:>10}", "shell", "res (A)", "unmasked", "masked",
                       "randomized", "corrected"));
  for (std::size_t k = 1; k < res.size(); ++k)
    ctx.info(fmt::format("{:>6} {:>9.2f} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f}", k, res[k], r.curves.unmasked[k],
                         r.curves.masked[k], r.curves.randomized_masked[k], r.curves.corrected[k]));
  ctx.info(fmt::format("phases randomized from {:.2f} A (shell {}): {}",
                       res[static_cast<std::size_t>(r.curves.randomize_from_shell)], r.curves.randomize_from_shell,
                       why));
  ctx.event("resolution", {{"corrected_0143_A", optional_json(r.resolution_A)}, {"bfactor_A2", r.bfactor_A2}},
            fmt::format("resolution (corrected FSC 0.143): {}; B-factor {:.1f} A^2 ({})",
                        tp::format_resolution(r.resolution_A, in.voxel_A), r.bfactor_A2,
                        r.fit ? fmt::format("Guinier fit {:.2f}-{:.2f} A, {} shells, r^2 {:.3f}", r.fit->fit_min_res_A,
                                            r.fit->fit_max_res_A, r.fit->shells_used, r.fit->r * r.fit->r)
                              : std::string("given")));
  if (!r.vs_reference.empty()) {
    const int box = in.half_a.nx();
    const auto unmasked = resolution_at(r.vs_reference, kReferenceThreshold, box, in.voxel_A);
    const auto masked = resolution_at(r.vs_reference_masked, kReferenceThreshold, box, in.voxel_A);
    ctx.event("resolution_vs_reference",
              {{"unmasked_05_A", optional_json(unmasked)}, {"masked_05_A", optional_json(masked)}},
              fmt::format("against the reference (FSC 0.5): {} inside the mask, {} unmasked",
                          tp::format_resolution(masked, in.voxel_A), tp::format_resolution(unmasked, in.voxel_A)));
  }
}

void run(const tp::Values& v, tp::RunContext& ctx, const Inputs& in) {
  ctx.info(fmt::format("half maps {}^3 at {} A/px; mask {}", in.half_a.nx(), in.voxel_A,
                       in.mask_generated ? "made from the half maps" : in.mask_name));
  if (in.mask_generated) tp::save_volume(ctx, "mask", "mask.mrc", in.mask, in.voxel_A);
  const Result r = compute(v, in, ctx);
  const std::string why = v.get_optional<double>("randomize_from_A")
                              ? "as asked (--randomize-from-A)"
                              : "the first shell where the unmasked FSC drops below 0.8; beyond it the mask's "
                                "own correlation is measured and removed";
  StarFile star;
  star.version = 30001;
  star.blocks = {general_block(in, r), fsc_block(in, r), guinier_block(in, r)};
  write_star(ctx.path("postprocess.star"), star);
  ctx.add_output("postprocess_star", "postprocess.star", {{"resolution_A", optional_json(r.resolution_A)}});
  write_json(ctx, v, in, r, why);
  tp::save_volume(ctx, "sharpened", "postprocess.mrc", r.sharpened, in.voxel_A, {{"bfactor_A2", r.bfactor_A2}});
  RealGrid masked = r.sharpened;
  for (std::size_t i = 0; i < masked.size(); ++i) masked[i] *= in.mask[i];
  tp::save_volume(ctx, "sharpened_masked", "postprocess_masked.mrc", masked, in.voxel_A);
  report(ctx, in, r, why);
}

// Inputs are read and checked first: an InputError there (exit 2) leaves
// nothing behind, as the output folder is made only by ctx.start().
void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  run(v, ctx, *in);
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
