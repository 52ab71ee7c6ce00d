#pragma once
/// Post-processing of a gold-standard pair of half maps: the one recipe that a
/// refinement's final maps and tessera_validate_fsc both use, so the two never
/// disagree (relion_postprocess 3.1's steps, fsc.hpp for each one):
///  1. FSC unmasked and inside the mask, corrected by phase randomization
///     (corrected_fsc, averaged over several randomizations);
///  2. the resolution where the corrected FSC drops below 0.143;
///  3. the average of the halves weighted per shell by sqrt(2 f / (1 + f)),
///     f the corrected FSC (fsc_weight; Rosenthal & Henderson 2003: the
///     expected correlation of the full map with the truth). f goes in as the
///     FSC of the half maps: fsc_weight converts it to the full map's itself;
///  4. a B-factor from a Guinier fit of the weighted map (or a given one), and
///     the weighted map sharpened by it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tessera/fsc.hpp"
#include "tessera/grid.hpp"

namespace tessera {

struct PostprocessOptions {
  /// Randomize phases from this resolution; default: the first shell where the
  /// unmasked FSC drops below 0.8 (RELION's --randomize_at_fsc 0.8).
  std::optional<double> randomize_from_A;
  /// Phase randomizations averaged (corrected_fsc). Default: auto_randomizations(box),
  /// enough that the resolution and B-factor of one pair of half maps do not
  /// depend on the seed (tests/engine/test_postprocess).
  std::optional<int> randomizations;
  std::uint64_t seed = 1;
  double bfactor_low_res_A = 10;  ///< lowest resolution of the Guinier fit (RELION --autob_lowres)
  /// Highest resolution of the Guinier fit; nullopt: the resolution found in
  /// step 2; 0: Nyquist (relion_postprocess's default, --autob_highres 0).
  /// Beyond the resolution the weighted amplitudes are noise, cut where the
  /// corrected FSC first falls below 1e-4, a shell that moves with the random
  /// phases: fitted to Nyquist, one pair of half maps gave B from -420 to
  /// -4500 A^2 over 8 seeds (test_postprocess), fitted to the resolution a spread of a few %.
  std::optional<double> bfactor_high_res_A;
  std::optional<double> bfactor_A2;  ///< sharpen with this B-factor instead of a fitted one
  /// Low-pass of the sharpened map (raised cosine, 2 shells).
  enum class Lowpass { None, AtResolution, Given };
  Lowpass lowpass = Lowpass::None;
  double lowpass_A = 0;  ///< with Lowpass::Given
};

struct Postprocessed {
  MaskedFsc curves;
  /// False when the unmasked FSC never drops below 0.8 and no randomize_from_A
  /// was given: nothing to randomize, corrected = masked (see warnings).
  bool phase_randomized = true;
  /// Corrected FSC 0.143 (resolution_at); nullopt: still above it at Nyquist.
  std::optional<double> resolution_A;
  RealGrid average;   ///< (half_a + half_b) / 2
  RealGrid weighted;  ///< average, FSC-weighted (step 3)
  std::optional<GuinierFit> fit;  ///< absent with a given B-factor, or when the fit had too few shells
  double bfactor_A2 = 0;          ///< used for sharpening (0 when the fit failed)
  RealGrid sharpened;
  std::vector<std::string> warnings;  ///< one line each: what was left out and why
};

/// The number of phase randomizations that keeps the correction's noise that
/// of 40 at box 48 (the noise of a shell's FSC goes as 1 / sqrt(voxels in the
/// shell), so as 1 / box at a given resolution): ceil(40 (48 / box)^2), at least 3.
int auto_randomizations(int box);

/// Runs steps 1-4 on half maps and a soft mask in [0, 1] of the same cubic
/// shape. Throws InputError for maps of different shapes, a mask outside
/// [0, 1], a bad option (randomize_from_A beyond Nyquist, randomizations < 1).
Postprocessed postprocess(const RealGrid& half_a, const RealGrid& half_b, const RealGrid& mask, double voxel_A,
                          const PostprocessOptions& options);

}  // namespace tessera
