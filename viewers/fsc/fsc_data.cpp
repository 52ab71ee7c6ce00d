#include "fsc/fsc_data.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/number.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/run_files.hpp"
#include "tessera/star.hpp"

namespace tessera::viewer {

namespace fs = std::filesystem;
using Json = nlohmann::json;
namespace fsc_json = run_files::fsc;
namespace fsc_star = run_files::fsc_star;
namespace run_log = run_files::run_log;

namespace {

double number(const std::string& text, const fs::path& file, const StarTable& t, std::size_t row) {
  const std::optional<double> v = parse_finite(text);
  if (!v) throw InputError(fmt::format("{}:{}: '{}' is not a number", file.string(), t.line_of(row), text));
  return *v;
}

void check_curve(const FscCurveData& c, const fs::path& file) {
  if (c.fsc.size() < 2) throw InputError(fmt::format("{}: curve '{}' has fewer than 2 shells", file.string(), c.name));
  if (!(c.frequency[1] > 0))
    throw InputError(fmt::format("{}: curve '{}': shell 1 is not at a positive frequency", file.string(), c.name));
  for (std::size_t k = 1; k < c.frequency.size(); ++k)
    if (!(c.frequency[k] > c.frequency[k - 1]))
      throw InputError(
          fmt::format("{}: curve '{}': frequencies do not increase at shell {}", file.string(), c.name, k));
}

std::vector<FscCurveData> load_json(const fs::path& path, const std::string& prefix) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot read the file", path.string()));
  Json doc;
  try {
    doc = Json::parse(in);
    const int box = doc.at(fsc_json::key::box).get<int>();
    const double voxel_A = doc.at(fsc_json::key::voxel_A).get<double>();
    if (box < 2 || !(voxel_A > 0)) throw InputError(fmt::format("{}: bad box or voxel_A", path.string()));
    std::map<std::string, double> thresholds;
    if (doc.contains(fsc_json::key::resolution_A))
      for (const auto& [key, value] : doc.at(fsc_json::key::resolution_A).items()) {
        const auto at = key.rfind(fsc_json::separator::threshold);
        if (at != std::string::npos)
          thresholds[key.substr(0, at)] = std::stod(key.substr(at + fsc_json::separator::threshold.size()));
      }
    std::vector<FscCurveData> out;
    for (const auto& [name, values] : doc.at(fsc_json::key::curves).items()) {
      FscCurveData c;
      c.name = prefix + name;
      c.fsc = values.get<std::vector<double>>();
      c.voxel_A = voxel_A;
      if (thresholds.count(name)) c.threshold = thresholds[name];
      for (std::size_t k = 0; k < c.fsc.size(); ++k) c.frequency.push_back(static_cast<double>(k) / (box * voxel_A));
      check_curve(c, path);
      out.push_back(std::move(c));
    }
    return out;
  } catch (const Json::exception& e) {
    throw InputError(fmt::format("{}: not an FSC JSON as tessera programs write it ({})", path.string(), e.what()));
  } catch (const std::invalid_argument&) {
    throw InputError(fmt::format("{}: a threshold in resolution_A is not a number", path.string()));
  }
}

std::string curve_name(const std::string& label) {
  std::string name = label;
  for (const std::string cut : {"rln", "FourierShellCorrelation"}) {
    const auto at = name.find(cut);
    if (at != std::string::npos) name.erase(at, cut.size());
  }
  return name.empty() ? "FSC" : name;
}

std::vector<FscCurveData> load_star(const fs::path& path, const std::string& prefix) {
  const StarFile file = read_star(path);
  const StarTable* t = file.find(std::string(fsc_star::table::fsc));
  if (!t) throw InputError(fmt::format("{}: no data_{} table", path.string(), fsc_star::table::fsc));
  const int res_col = t->column(std::string(fsc_star::column::rlnResolution));
  if (res_col < 0)
    throw InputError(fmt::format("{}: data_{} has no {} column", path.string(), fsc_star::table::fsc,
                                 fsc_star::column::rlnResolution));
  std::vector<FscCurveData> out;
  for (std::size_t col = 0; col < t->labels.size(); ++col) {
    const std::string& label = t->labels[col];
    if (label.find("FourierShellCorrelation") == std::string::npos) continue;
    FscCurveData c;
    c.name = prefix + curve_name(label);
    const auto has = [&](const char* part) { return label.find(part) != std::string::npos; };
    if (!has("PhaseRandomized") && !has("MaskFraction")) c.threshold = has("Reference") ? 0.5 : 0.143;
    for (std::size_t r = 0; r < t->rows.size(); ++r) {
      c.frequency.push_back(r == 0 ? 0.0 : number(t->rows[r][res_col], path, *t, r));
      c.fsc.push_back(number(t->rows[r][col], path, *t, r));
    }
    check_curve(c, path);
    c.voxel_A = 1.0 / (2.0 * c.frequency.back());
    out.push_back(std::move(c));
  }
  if (out.empty()) throw InputError(fmt::format("{}: data_fsc has no FourierShellCorrelation column", path.string()));
  return out;
}

bool is_number(const Json& v) {
  return v.is_number() && std::isfinite(v.get<double>());
}

}  // namespace

Crossing find_crossing(const FscCurveData& curve, double threshold) {
  // Shells are evenly spaced in frequency: a box of 2 (n - 1) whose shell 1 lies
  // at frequency[1] has voxel 1 / (box * frequency[1]), and the engine's
  // resolution box * voxel / s gives the fractional shell s = k - 1 + t of the
  // crossing. The frequency is then interpolated between the listed frequencies
  // of shells k - 1 and k (a STAR file rounds them), so the mark sits on the
  // drawn line.
  const int box = 2 * (static_cast<int>(curve.fsc.size()) - 1);
  const double voxel_A = 1.0 / (box * curve.frequency[1]);
  const std::optional<double> res = resolution_at_interpolated(curve.fsc, threshold, box, voxel_A);
  if (!res || std::isinf(*res)) return {threshold, res, std::nullopt};
  const double s = box * voxel_A / *res;
  const std::size_t k = std::min(static_cast<std::size_t>(std::floor(s)), curve.frequency.size() - 2);
  const double f = curve.frequency[k] + (s - static_cast<double>(k)) * (curve.frequency[k + 1] - curve.frequency[k]);
  return {threshold, 1.0 / f, f};
}

std::optional<fs::path> fsc_in_folder(const fs::path& folder) {
  for (const std::string_view name : {fsc_json::kName, fsc_star::kName})
    if (fs::is_regular_file(folder / name)) return folder / name;
  return std::nullopt;
}

std::vector<FscCurveData> load_fsc(const fs::path& path, const std::string& prefix) {
  if (fs::is_directory(path)) {
    const auto file = fsc_in_folder(path);
    if (!file)
      throw InputError(
          fmt::format("{}: the folder has no {} or {}", path.string(), fsc_json::kName, fsc_star::kName));
    return load_fsc(*file, prefix);
  }
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file", path.string()));
  if (path.extension() == ".json") return load_json(path, prefix);
  if (path.extension() == ".star") return load_star(path, prefix);
  throw InputError(fmt::format("{}: give an {}, a STAR file with data_{}, or a run folder", path.string(),
                               fsc_json::kName, fsc_star::table::fsc));
}

IterationSeries load_iterations(const fs::path& run_log, const std::string& run) {
  std::ifstream in(run_log);
  if (!in) throw InputError(fmt::format("{}: cannot read the file", run_log.string()));
  IterationSeries s;
  s.run = run;
  std::string line;
  int line_no = 0, count = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json e;
    try {
      e = Json::parse(line);
    } catch (const Json::exception&) {
      throw InputError(fmt::format("{}:{}: not a JSON object", run_log.string(), line_no));
    }
    if (!e.is_object() || e.value(run_log::key::event, "") != run_log::event::iteration) continue;
    ++count;
    const auto& number_key = run_files::iterations::key::iteration;
    const double x = e.contains(number_key) && is_number(e[number_key]) ? e[number_key].get<double>() : count;
    s.iteration.push_back(x);
    for (const auto& [key, value] : e.items()) {
      if (key == run_log::key::time || key == run_log::key::elapsed_s || key == number_key ||
          key == run_log::key::event || !is_number(value))
        continue;
      s.stats[key].emplace_back(x, value.get<double>());
    }
  }
  return s;
}

}  // namespace tessera::viewer
