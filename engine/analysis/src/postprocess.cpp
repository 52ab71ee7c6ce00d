#include "tessera/postprocess.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "tessera/error.hpp"

namespace tessera {
namespace {

constexpr double kThreshold = 0.143;
constexpr double kRandomizeAtFsc = 0.8;  // corrected_fsc's default start

// Step 1: the corrected FSC, or the masked one where there is nothing to randomize.
MaskedFsc fsc_curves(const RealGrid& a, const RealGrid& b, const RealGrid& mask, double voxel_A,
                     const PostprocessOptions& o, Postprocessed& out) {
  const int box = a.nx();
  const std::vector<double> unmasked = fsc(a, b);
  if (o.randomize_from_A || resolution_at(unmasked, kRandomizeAtFsc, box, voxel_A))
    return corrected_fsc(a, b, mask, voxel_A, o.randomize_from_A, o.seed,
                         o.randomizations.value_or(auto_randomizations(box)));
  out.phase_randomized = false;
  out.warnings.push_back(
      "no phase-randomization correction: the unmasked FSC stays above 0.8 up to Nyquist, so the masked FSC "
      "is reported uncorrected");
  MaskedFsc m;
  m.unmasked = unmasked;
  m.masked = masked_fsc(a, b, mask);
  m.randomized_masked.assign(m.masked.size(), 0.0);
  m.corrected = m.masked;
  m.randomize_from_shell = box / 2;
  return m;
}

}  // namespace

int auto_randomizations(int box) {
  const double r = 40.0 * (48.0 / box) * (48.0 / box);
  return std::max(3, static_cast<int>(std::ceil(r)));
}

Postprocessed postprocess(const RealGrid& half_a, const RealGrid& half_b, const RealGrid& mask, double voxel_A,
                          const PostprocessOptions& o) {
  Postprocessed out;
  out.curves = fsc_curves(half_a, half_b, mask, voxel_A, o, out);
  const int box = half_a.nx();
  out.resolution_A = resolution_at(out.curves.corrected, kThreshold, box, voxel_A);
  const double resolution = out.resolution_A && std::isfinite(*out.resolution_A) ? *out.resolution_A : 2 * voxel_A;

  out.average = average_maps(half_a, half_b);
  out.weighted = fsc_weight(out.average, out.curves.corrected);
  if (o.bfactor_A2) {
    out.bfactor_A2 = *o.bfactor_A2;
  } else {
    const double high = o.bfactor_high_res_A.value_or(resolution);
    try {
      out.fit = guinier_bfactor(out.weighted, voxel_A, o.bfactor_low_res_A, high);
      out.bfactor_A2 = out.fit->bfactor_A2;
    } catch (const InputError& e) {  // e.g. a resolution worse than the fit's low end
      out.warnings.push_back(fmt::format("no B-factor fit ({}); the map is not sharpened", e.what()));
    }
  }
  std::optional<double> cut;
  if (o.lowpass == PostprocessOptions::Lowpass::AtResolution) cut = resolution;
  if (o.lowpass == PostprocessOptions::Lowpass::Given) cut = o.lowpass_A;
  out.sharpened = sharpen(out.weighted, voxel_A, out.bfactor_A2, cut);
  return out;
}

}  // namespace tessera
