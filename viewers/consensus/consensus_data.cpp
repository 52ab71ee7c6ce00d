#include "consensus/consensus_data.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "tessera/error.hpp"

namespace tessera::viewer {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// What each summary is, by its file name.
const std::vector<std::pair<std::string, std::string>>& kinds() {
  static const std::vector<std::pair<std::string, std::string>> k{{"consensus_classes.json", "Class consensus"},
                                                                  {"pose_consensus.json", "Pose consensus"},
                                                                  {"ctf_consensus.json", "CTF consensus"},
                                                                  {"defocus_change.json", "Defocus change"}};
  return k;
}

// A malformed figure: the message says which one and what is wrong.
class BadFigure : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

std::string text(const Json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? std::string() : it->get<std::string>();
}

std::optional<double> number_or_null(const Json& j, const char* key, const std::string& what) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw BadFigure(fmt::format("{}: \"{}\" is not a number", what, key));
  return it->get<double>();
}

Histogram read_histogram(const Json& j, std::size_t index) {
  Histogram h;
  h.name = j.value("name", fmt::format("#{}", index + 1));
  const std::string what = fmt::format("histogram '{}'", h.name);
  h.label = text(j, "label");
  if (h.label.empty()) h.label = h.name;
  h.unit = text(j, "unit");
  const Json& edges = j.at("edges");
  const Json& counts = j.at("counts");
  if (!edges.is_array() || !counts.is_array() || counts.empty())
    throw BadFigure(fmt::format("{}: \"edges\" and \"counts\" must be lists, counts not empty", what));
  if (edges.size() != counts.size() + 1)
    throw BadFigure(
        fmt::format("{}: {} counts need {} edges, not {}", what, counts.size(), counts.size() + 1, edges.size()));
  for (const Json& e : edges) {
    if (!e.is_number()) throw BadFigure(fmt::format("{}: an edge is not a number", what));
    h.edges.push_back(e.get<double>());
    if (h.edges.size() > 1 && !(h.edges.back() > h.edges[h.edges.size() - 2]))
      throw BadFigure(fmt::format("{}: the edges do not increase", what));
  }
  for (const Json& c : counts) {
    if (!c.is_number_integer() || c.get<long>() < 0)
      throw BadFigure(fmt::format("{}: a count is not a whole number >= 0", what));
    h.counts.push_back(c.get<long>());
  }
  h.threshold = number_or_null(j, "threshold", what);
  h.median = number_or_null(j, "median", what);
  h.mean = number_or_null(j, "mean", what);
  long total = 0;
  for (long c : h.counts) total += c;
  h.count = j.contains("count") ? j.at("count").get<long>() : total;
  return h;
}

HeatMap read_heatmap(const Json& j, std::size_t index) {
  HeatMap m;
  m.name = j.value("name", fmt::format("#{}", index + 1));
  const std::string what = fmt::format("heat map '{}'", m.name);
  m.label = text(j, "label");
  if (m.label.empty()) m.label = m.name;
  m.rows = j.at("rows").get<std::vector<std::string>>();
  m.columns = j.at("columns").get<std::vector<std::string>>();
  m.row_title = text(j, "row_title");
  m.column_title = text(j, "column_title");
  if (m.rows.empty() || m.columns.empty()) throw BadFigure(fmt::format("{}: no rows or no columns", what));
  const Json& values = j.at("values");
  if (!values.is_array() || values.size() != m.rows.size())
    throw BadFigure(fmt::format("{}: {} rows of values for {} row labels", what, values.is_array() ? values.size() : 0,
                                m.rows.size()));
  for (std::size_t r = 0; r < values.size(); ++r) {
    const Json& row = values[r];
    if (!row.is_array() || row.size() != m.columns.size())
      throw BadFigure(fmt::format("{}: row {}: {} value(s) for {} columns", what, r + 1,
                                  row.is_array() ? row.size() : 0, m.columns.size()));
    std::vector<double> v;
    for (const Json& x : row) {
      if (!x.is_number()) throw BadFigure(fmt::format("{}: row {} has a value that is not a number", what, r + 1));
      v.push_back(x.get<double>());
    }
    m.values.push_back(std::move(v));
  }
  return m;
}

// A list of figures under `key` (missing: none).
template <class T, class Read>
std::vector<T> read_list(const Json& figures, const char* key, Read read) {
  std::vector<T> out;
  const auto it = figures.find(key);
  if (it == figures.end() || it->is_null()) return out;
  if (!it->is_array()) throw BadFigure(fmt::format("\"{}\" is not a list", key));
  for (std::size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_object()) throw BadFigure(fmt::format("{} #{} is not an object", key, i + 1));
    try {
      out.push_back(read((*it)[i], i));
    } catch (const BadFigure&) {
      throw;
    } catch (const std::exception& e) {  // nlohmann's, for a missing key or a wrong type
      throw BadFigure(fmt::format("{} #{}: {}", key, i + 1, e.what()));
    }
  }
  return out;
}

// The summary of a run folder: the one consensus summary it holds.
fs::path summary_in(const fs::path& folder) {
  std::vector<fs::path> found;
  for (const auto& [name, title] : kinds())
    if (fs::is_regular_file(folder / name)) found.push_back(folder / name);
  if (found.size() == 1) return found.front();
  if (found.empty())
    throw InputError(
        fmt::format("{}: no consensus_classes.json, pose_consensus.json, ctf_consensus.json or "
                    "defocus_change.json (not a tessera_consensus_* or tessera_ctf_refine run folder)",
                    folder.string()));
  throw InputError(fmt::format("{}: holds {} and {}: give the summary to show", folder.string(),
                               found[0].filename().string(), found[1].filename().string()));
}

}  // namespace

const std::vector<std::string>& consensus_summary_files() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, title] : kinds()) n.push_back(name);
    return n;
  }();
  return names;
}

ConsensusFigures load_consensus(const fs::path& path) {
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file or folder", path.string()));
  const fs::path file = fs::is_directory(path) ? summary_in(path) : path;
  std::ifstream in(file);
  if (!in) throw InputError(fmt::format("{}: cannot be read", file.string()));
  ConsensusFigures out;
  out.file = file.filename().string();
  out.label = fs::absolute(file).parent_path().filename().string();
  out.title = "Consensus";
  for (const auto& [name, title] : kinds())
    if (out.file == name) out.title = title;
  Json doc;
  try {
    doc = Json::parse(in);
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not JSON ({})", file.string(), e.what()));
  }
  const auto figures = doc.is_object() ? doc.find("figures") : doc.end();
  if (!doc.is_object() || figures == doc.end() || !figures->is_object())
    throw InputError(fmt::format("{}: no \"figures\" object (not a tessera_consensus_* summary)", file.string()));
  try {
    out.histograms = read_list<Histogram>(*figures, "histograms", read_histogram);
    out.heatmaps = read_list<HeatMap>(*figures, "heatmaps", read_heatmap);
  } catch (const BadFigure& e) {
    throw InputError(fmt::format("{}: malformed figures: {}", file.string(), e.what()));
  }
  if (out.histograms.empty() && out.heatmaps.empty())
    throw InputError(fmt::format("{}: \"figures\" has no histogram and no heat map to draw", file.string()));
  return out;
}

}  // namespace tessera::viewer
