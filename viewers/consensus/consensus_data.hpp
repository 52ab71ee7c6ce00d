#pragma once
/// What tessera_view_consensus reads: the JSON summary of a consensus run, whose
/// "figures" block (protocols/common/consensus.hpp, histogram_json and
/// heatmap_json) says what to draw:
///   consensus_classes.json  (tessera_consensus_classes: heat maps of the Jaccard
///                            similarity between two classifications' classes)
///   pose_consensus.json     (tessera_consensus_poses: histograms of the angular,
///                            view-direction and shift distances)
///   ctf_consensus.json      (tessera_consensus_ctf: histograms of defocus and
///                            astigmatism differences and of the consensus resolution)
///   defocus_change.json     (tessera_ctf_refine: histograms of the defocus change per
///                            particle and per micrograph, a heat map of each micrograph's)
///   "figures": {"histograms": [{"name", "label", "unit", "edges": [bins + 1],
///                               "counts": [bins], "threshold": t or null,
///                               "median", "mean" (null when count is 0), "count"}, ...],
///               "heatmaps":   [{"name", "label", "rows": [labels], "columns": [labels],
///                               "values": [[one per column] per row],
///                               "row_title", "column_title"}, ...]}
/// Either list may be missing (it is then empty), not both.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tessera::viewer {

/// One histogram: bin b counts the values in [edges[b], edges[b + 1]), in `unit`
/// ("A", "deg", or another unit's name; empty: none).
struct Histogram {
  std::string name, label, unit;
  std::vector<double> edges;  ///< strictly increasing, counts.size() + 1 of them
  std::vector<long> counts;   ///< >= 0
  std::optional<double> threshold, median, mean;
  long count = 0;  ///< the number of values
};

/// A matrix drawn as a heat map: values[r][c] for row r, column c.
struct HeatMap {
  std::string name, label;
  std::vector<std::string> rows, columns;
  std::vector<std::vector<double>> values;
  std::string row_title, column_title;
};

struct ConsensusFigures {
  std::string label;  ///< the run folder's name
  std::string file;   ///< the summary's file name, e.g. "pose_consensus.json"
  std::string title;  ///< what the summary is: "Pose consensus", ... ("Consensus" for another file name)
  std::vector<Histogram> histograms;
  std::vector<HeatMap> heatmaps;
};

/// The summary file names tessera_view_consensus looks for in a run folder.
const std::vector<std::string>& consensus_summary_files();

/// Reads a run folder's summary (the one of consensus_summary_files() it holds)
/// or a summary file itself. InputError (one line naming the file) when there is
/// no such file, the folder holds none or several of them, the file is not JSON,
/// has no "figures" object or nothing in it to draw, or a figure is malformed
/// (a histogram whose edges are not counts + 1 increasing numbers, negative or
/// fractional counts; a heat map without rows or columns, or whose values are not
/// one number per column in every row).
ConsensusFigures load_consensus(const std::filesystem::path& path);

}  // namespace tessera::viewer
