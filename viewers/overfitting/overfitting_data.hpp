#pragma once
/// What tessera_view_overfitting reads: validate_overfitting.json of a
/// tessera_validate_overfitting run (resolution against the number of particles,
/// as Xmipp's validate-overfitting protocol):
///   {"box", "voxel_A", "threshold",
///    "sizes": [particles in each subset, ...],
///    "curves": {"particles": {"resolution_A": [[per repeat], ... per size],
///                             "mean_A": [per size], "sd_A": [per size]},
///               "noise": {...the same...}}}
/// and, when the program fitted it, "bfactor_fit": {"slope_inv_A2_per_ln_n",
/// "intercept_inv_A2", "from_particles", "to_particles", ...} (Rosenthal &
/// Henderson: 1/d^2 = slope ln N + intercept, B = 2 / slope).
/// A resolution, mean or sd may be null (the FSC never crossed the threshold):
/// that repeat or that size is left out. Curves other than "particles" and
/// "noise" are shown too, after them.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tessera::viewer {

struct OverfittingCurve {
  std::string name;
  std::vector<std::optional<double>> mean_A, sd_A;  ///< per size
  std::vector<std::vector<double>> repeats_A;       ///< per size, the non-null repeats
};

struct BfactorFit {
  double slope = 0, intercept = 0;  ///< 1/A^2 per ln N, 1/A^2
  double from_n = 0, to_n = 0;      ///< the sizes it spans
};

struct OverfittingRun {
  std::string label;  ///< the folder's name
  double voxel_A = 0;
  double threshold = 0.143;
  std::vector<long> sizes;
  std::vector<OverfittingCurve> curves;
  std::optional<BfactorFit> fit;  ///< the program's, when the file holds one
};

/// The run folder's validate_overfitting.json, or that file itself. InputError
/// naming the file when it is missing or not as above (sizes not positive and
/// increasing, lists whose lengths differ from sizes').
OverfittingRun load_overfitting(const std::filesystem::path& path);

}  // namespace tessera::viewer
