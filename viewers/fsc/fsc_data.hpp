#pragma once
/// What tessera_view_fsc reads: FSC curves and per-iteration statistics.
///
/// FSC files:
///   - fsc.json as tessera programs write it (protocols/common/io.hpp save_fsc):
///     "box", "voxel_A", "shells" [{index, resolution_A (null for shell 0)}],
///     "curves" {name: [value per shell]}, "resolution_A" {"name@threshold": A}.
///     A curve's threshold is the one in its "resolution_A" key; a curve without
///     one (e.g. tessera_validate_fsc's randomized_masked, particle_mask_fraction)
///     has none.
///   - a STAR file with a data_fsc table (save_fsc's fsc.star, RELION's
///     postprocess.star): rlnResolution (1/A) and every column whose label holds
///     "FourierShellCorrelation" is a curve, named by the label without "rln" and
///     "FourierShellCorrelation" (rlnFourierShellCorrelationCorrected -> "Corrected";
///     save_fsc's rlnFourierShellCorrelation -> "FSC"). Threshold 0.5 when the
///     label holds "Reference", none when it holds "PhaseRandomized" or
///     "MaskFraction" (not resolution curves), 0.143 otherwise.
///   - a run folder: its fsc.json, else its fsc.star.
/// Shell k's position is its spatial frequency in 1/A: k / (box * voxel_A) from
/// fsc.json, rlnResolution from a STAR (shell 0 at 0).
///
/// Statistics: run.log.jsonl (protocols/common/run_context.hpp), the events with
/// "event": "iteration". Every numeric field other than time, elapsed_s and
/// iteration is a statistic (e.g. resolution_A); x is the "iteration" field
/// (else the event's order, from 1). null values (e.g. a resolution beyond
/// Nyquist) are left out.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tessera::viewer {

struct FscCurveData {
  std::string name;                 ///< as shown in the legend
  std::vector<double> frequency;    ///< per shell, 1/A (shell 0 at 0)
  std::vector<double> fsc;          ///< per shell
  std::optional<double> threshold;  ///< the curve's own threshold, if it has one
  double voxel_A = 0;               ///< Nyquist is at 1 / (2 voxel_A)
};

/// Where a curve crosses a threshold: the first shell k >= 1 below it, with the
/// resolution interpolated linearly between shells k - 1 and k (engine fsc.hpp
/// resolution_at_interpolated; linear in shell index is linear in 1/A), i.e.
/// where the line drawn through the shells crosses the threshold.
struct Crossing {
  double threshold = 0;
  /// 1 / frequency, Angstrom; nullopt: never below the threshold up to Nyquist;
  /// +inf: below from shell 1.
  std::optional<double> resolution_A;
  std::optional<double> frequency;  ///< 1/A, when the resolution is finite
};
Crossing find_crossing(const FscCurveData& curve, double threshold);

/// Curves from an fsc.json, a STAR with data_fsc, or a run folder; `prefix`
/// (e.g. "run1: ") goes before every name. InputError naming the file on bad input.
std::vector<FscCurveData> load_fsc(const std::filesystem::path& path, const std::string& prefix = {});

struct IterationSeries {
  std::string run;                                                      ///< label of the run (its folder name)
  std::vector<double> iteration;                                        ///< x of each event
  std::map<std::string, std::vector<std::pair<double, double>>> stats;  ///< name -> (iteration, value)
};

/// The iteration events of a run.log.jsonl (InputError on a line that is not JSON).
IterationSeries load_iterations(const std::filesystem::path& run_log, const std::string& run);

/// The FSC file inside a run folder (fsc.json, else fsc.star), or nullopt.
std::optional<std::filesystem::path> fsc_in_folder(const std::filesystem::path& folder);

}  // namespace tessera::viewer
