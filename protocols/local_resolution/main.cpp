// tessera_local_resolution: the resolution of a pair of half maps voxel by voxel, from the FSC in a
// soft window slid over the map (engine/analysis/include/tessera/local_resolution.hpp); its histogram inside a
// mask, and optionally the average map filtered to its local resolution.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/local_filter.hpp"
#include "tessera/local_resolution.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

constexpr double kGlobalThreshold = 0.143;

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_local_resolution";
  s.version = "0.1.0";
  s.label = "local resolution";
  s.description =
      "Local resolution of two independently refined half maps: the Fourier shell correlation measured in a soft "
      "(Gaussian) window slid over the map, band by band, and at each voxel the resolution where it falls below "
      "the threshold. Writes the local-resolution map in Angstrom (for colouring a map's surface), its histogram "
      "inside the mask, and the average of the halves filtered to its local resolution.";
  s.scipion_base_class = "ProtAnalysis3D";
  s.citations = {"10.1016/j.jsb.2013.08.002"};
  s.add_input("half_map_A", tp::InputKind::Volume, "Half map A", {.help = "First unfiltered half map (MRC)."});
  s.add_input("half_map_B", tp::InputKind::Volume, "Half map B", {.help = "Second unfiltered half map (MRC)."});
  s.add_input("mask", tp::InputKind::Mask, "Mask",
              {.help = "Where the molecule is (values in [0, 1]): the histogram and the median count the voxels at "
                       "0.5 or above, and the computation stops once all of them are resolved. The halves are not "
                       "multiplied by it. Without one, the whole box counts.",
               .required = false});
  s.add_float("voxel_A", "Pixel size override",
              {.min = 0.0, .min_exclusive = true, .unit = "A", .help = "Use this pixel size instead of the maps'."});
  s.add_float("window_A", "Window size",
              {.default_value = 25.0,
               .min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Side of the cube with as many independent voxels as the Gaussian window (standard deviation "
                       "window / 3.5). Larger: less noise, coarser in space; the lowest resolution it can measure "
                       "is about the window itself. RELION's --locres_sampling default is 25 A. At least 4 voxels.",
               .section = "Local FSC"});
  s.add_float("threshold", "FSC threshold",
              {.default_value = kGlobalThreshold,
               .min = 0.0,
               .max = 1.0,
               .min_exclusive = true,
               .help = "Resolution where the local FSC of the half maps falls below this value (0.143 as the "
                       "gold-standard global FSC; 0.5 is more conservative).",
               .section = "Local FSC"});
  s.add_float("band_sigma_shells", "Band width",
              {.min = 0.25,
               .unit = "shells",
               .help = "Standard deviation of the Gaussian band-pass around each shell, in Fourier shells of the "
                       "box; default: the window's own frequency resolution (box / (1.77 x window in voxels)).",
               .section = "Local FSC",
               .level = tp::Level::Advanced});
  s.add_bool("filtered_map", "Write the locally filtered map",
             {.default_value = true,
              .help = "The average of the half maps low-passed voxel by voxel at its local resolution (Butterworth "
                      "filter, as non-uniform refinement's).",
              .section = "Outputs"});
  s.add_output("local_resolution", tp::OutputKind::Volume, "Local resolution map",
               {.help = "Resolution in Angstrom at each voxel; colour a map's surface by it."});
  s.add_output("histogram", tp::OutputKind::Table, "Local resolution histogram (JSON)",
               {.help = "Counts inside the mask, median and 5th and 95th percentiles, with the global FSC "
                        "resolution for comparison."});
  s.add_output("locally_filtered", tp::OutputKind::Volume, "Locally filtered map", {.optional = true});
  return s;
}

struct Inputs {
  RealGrid half_a, half_b;
  std::optional<RealGrid> mask;
  double voxel_A = 0;
};

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  auto in = std::make_shared<Inputs>();
  const auto voxel = v.get_optional<double>("voxel_A");
  const fs::path fa = v.input("half_map_A"), fb = v.input("half_map_B");
  auto [a, b] = tp::load_half_maps(fa, fb, voxel);
  in->voxel_A = a.voxel_A;
  if (auto mask_file = v.input_optional("mask")) in->mask = tp::load_mask(*mask_file, a, fa.string(), voxel).data;
  const double window_A = v.get<double>("window_A");
  if (window_A < 4 * in->voxel_A)
    throw InputError(fmt::format("--window-A {} A is under 4 voxels of {} ({} A/px)", window_A, fa.string(),
                                 in->voxel_A));
  if (auto sigma = v.get_optional<double>("band_sigma_shells"); sigma && *sigma > a.data.nx() / 8.0)
    throw InputError(fmt::format("--band-sigma-shells {} is wider than an eighth of the box ({} shells)", *sigma,
                                 a.data.nx() / 8.0));
  in->half_a = std::move(a.data);
  in->half_b = std::move(b.data);
  return in;
}

// The global resolutions to compare the local ones with: the unmasked FSC's, and with a mask the masked FSC
// corrected by phase randomization (as tessera_validate_fsc computes it, with 3 randomizations).
struct Global {
  std::optional<double> unmasked_A, masked_corrected_A;
};

Global global_resolution(const Inputs& in, tp::RunContext& ctx) {
  const int box = in.half_a.nx();
  Global g;
  g.unmasked_A = resolution_at_interpolated(fsc(in.half_a, in.half_b), kGlobalThreshold, box, in.voxel_A);
  if (!in.mask) return g;
  try {
    const MaskedFsc c = corrected_fsc(in.half_a, in.half_b, *in.mask, in.voxel_A, std::nullopt,
                                      static_cast<std::uint64_t>(ctx.options().seed), 3);
    g.masked_corrected_A = resolution_at_interpolated(c.corrected, kGlobalThreshold, box, in.voxel_A);
  } catch (const InputError& e) {
    ctx.warn(fmt::format("no masked global FSC to compare with: {}", e.what()));
  }
  return g;
}

tp::Json optional_json(std::optional<double> x) { return x ? tp::Json(*x) : tp::Json(nullptr); }

tp::Json histogram_json(const LocalResolutionHistogram& h, const LocalResolution& lr, const Global& global,
                        double voxel_A, bool masked) {
  tp::Json bins = tp::Json::array();
  for (std::size_t i = 0; i < h.counts.size(); ++i)
    bins.push_back({{"from_A", h.bin_edges_A[i]}, {"to_A", h.bin_edges_A[i + 1]}, {"voxels", h.counts[i]}});
  return {{"voxels", h.voxels},
          {"counted_inside", masked ? "mask >= 0.5" : "whole box"},
          {"median_A", h.median_A},
          {"p05_A", h.p05_A},
          {"p95_A", h.p95_A},
          {"global_unmasked_fsc_0143_A", optional_json(global.unmasked_A)},
          {"global_masked_corrected_fsc_0143_A", optional_json(global.masked_corrected_A)},
          {"nyquist_A", 2 * voxel_A},
          {"nyquist_limited_voxels", lr.nyquist_limited_voxels},
          {"band_sigma_shells", lr.band_sigma_shells},
          {"first_shell", lr.first_shell},
          {"bins", bins}};
}

void run(const tp::Values& v, tp::RunContext& ctx, const Inputs& in) {
  const int box = in.half_a.nx();
  LocalResolutionOptions o;
  o.voxel_A = in.voxel_A;
  o.window_A = v.get<double>("window_A");
  o.threshold = v.get<double>("threshold");
  o.band_sigma_shells = v.get_optional<double>("band_sigma_shells");
  o.threads = ctx.options().threads;
  const RealGrid* mask = in.mask ? &*in.mask : nullptr;
  ctx.info(fmt::format("half maps {}^3 at {} A/px; window {} A; threshold {}; {}", box, in.voxel_A, o.window_A,
                       o.threshold, mask ? "mask given" : "no mask: the whole box counts"));
  const LocalResolution lr = local_resolution(in.half_a, in.half_b, mask, o);
  const LocalResolutionHistogram h = local_resolution_histogram(lr.resolution_A, mask);
  const Global global = global_resolution(in, ctx);

  tp::save_volume(ctx, "local_resolution", "local_resolution.mrc", lr.resolution_A, in.voxel_A,
                  {{"median_A", h.median_A}, {"p05_A", h.p05_A}, {"p95_A", h.p95_A}});
  tp::atomic_write_text(ctx.path("local_resolution.json"),
                        histogram_json(h, lr, global, in.voxel_A, mask != nullptr).dump(2) + "\n");
  ctx.add_output("histogram", "local_resolution.json");
  if (v.get<bool>("filtered_map")) {
    LocalFilterOptions lf;
    lf.threads = o.threads;
    const RealGrid filtered = apply_local_filter(average_maps(in.half_a, in.half_b), lr.crossing_shell, lf);
    tp::save_volume(ctx, "locally_filtered", "locally_filtered.mrc", filtered, in.voxel_A);
  }
  ctx.event("local_resolution",
            {{"median_A", h.median_A},
             {"p05_A", h.p05_A},
             {"p95_A", h.p95_A},
             {"global_unmasked_fsc_0143_A", optional_json(global.unmasked_A)},
             {"global_masked_corrected_fsc_0143_A", optional_json(global.masked_corrected_A)}},
            fmt::format("local resolution over {} voxels: median {:.2f} A, 5-95% {:.2f}-{:.2f} A (global FSC 0.143: "
                        "{} unmasked{}); {} bands on a {}^3 grid of window sums{}",
                        h.voxels, h.median_A, h.p05_A, h.p95_A, tp::format_resolution(global.unmasked_A, in.voxel_A),
                        mask ? fmt::format(", {} masked and corrected",
                                           tp::format_resolution(global.masked_corrected_A, in.voxel_A))
                             : std::string(),
                        lr.bands_evaluated, lr.sums_grid_box,
                        lr.nyquist_limited_voxels > 0
                            ? fmt::format("; {} voxels still above the threshold at Nyquist", lr.nyquist_limited_voxels)
                            : std::string()));
}

// Inputs are read and checked first: an InputError there (exit 2) leaves nothing behind, as the output
// folder is made only by ctx.start().
void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  run(v, ctx, *in);
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
