#include "orientations/orientation_data.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tessera/error.hpp"

namespace tessera::viewer {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr double kThreshold = 0.143;  // the conical FSCs' threshold, as the program's

Json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw InputError(fmt::format("{}: cannot open", p.string()));
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {
    throw InputError(fmt::format("{}: not JSON ({})", p.string(), e.what()));
  }
}

std::optional<double> optional_number(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_number()) return std::nullopt;
  return j.at(key).get<double>();
}

Vec3 vec3(const Json& j) {
  const auto v = j.get<std::vector<double>>();
  if (v.size() != 3) throw std::invalid_argument("not 3 numbers");
  return {v[0], v[1], v[2]};
}

ViewCounts load_view_counts(const fs::path& p) {
  const Json doc = read_json(p);
  ViewCounts v;
  try {
    v.bin_deg = doc.at("bin_deg").get<double>();
    v.particles = doc.at("particles").get<long>();
    if (!(v.bin_deg > 0 && v.bin_deg <= 90)) throw std::invalid_argument("bin_deg is not in (0, 90]");
    v.grid = EqualAreaGrid(v.bin_deg);
    for (const auto& cell : doc.at("cells")) {
      v.centres.push_back(vec3(cell.at("xyz")));
      v.counts.push_back(cell.at("count").get<long>());
      if (v.counts.back() < 0) throw std::invalid_argument("a negative count");
    }
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not a view count table ({})", p.string(), e.what()));
  }
  if (static_cast<int>(v.centres.size()) != v.grid.size())
    throw InputError(fmt::format("{}: {} cells, the equal-area grid of {} deg has {}", p.string(), v.centres.size(),
                                 v.bin_deg, v.grid.size()));
  for (int c = 0; c < v.grid.size(); ++c) {
    const Vec3 g = v.grid.centre(c), f = v.centres[static_cast<std::size_t>(c)];
    if (std::abs(g[0] - f[0]) + std::abs(g[1] - f[1]) + std::abs(g[2] - f[2]) > 1e-6)
      throw InputError(
          fmt::format("{}: cell {} is centred at ({:.4f}, {:.4f}, {:.4f}), not where the equal-area "
                      "grid of {} deg puts it",
                      p.string(), c, f[0], f[1], f[2], v.bin_deg));
  }
  return v;
}

FscCurveData curve(std::string name, std::vector<double> values, int box, double voxel_A) {
  FscCurveData c{std::move(name), {}, std::move(values), kThreshold, voxel_A};
  for (std::size_t k = 0; k < c.fsc.size(); ++k) c.frequency.push_back(static_cast<double>(k) / (box * voxel_A));
  return c;
}

ConicalCurves load_cones(const fs::path& p) {
  const Json doc = read_json(p);
  ConicalCurves out;
  try {
    const int box = doc.at("box").get<int>();
    const double voxel_A = doc.at("voxel_A").get<double>();
    if (box < 2 || !(voxel_A > 0)) throw std::invalid_argument("box or voxel_A out of range");
    const std::size_t shells = static_cast<std::size_t>(box / 2 + 1);
    const auto values = [&](const Json& j) {
      auto v = j.get<std::vector<double>>();
      if (v.size() != shells)
        throw std::invalid_argument(fmt::format("a curve of {} shells, not {}", v.size(), shells));
      return v;
    };
    out.global = curve("global", values(doc.at("global")), box, voxel_A);
    std::vector<double> area;
    for (const auto& cone : doc.at("cones")) {
      out.cones.push_back(curve("cone", values(cone.at("curve")), box, voxel_A));
      area.push_back(cone.at("area").get<double>());
    }
    if (area.empty()) throw std::invalid_argument("no cones");
    const auto worst = std::min_element(area.begin(), area.end()) - area.begin();
    const auto best = std::max_element(area.begin(), area.end()) - area.begin();
    const auto direction = [&](std::ptrdiff_t d) {
      return direction_to_euler(vec3(doc.at("cones")[static_cast<std::size_t>(d)].at("xyz")));
    };
    out.worst = out.cones[static_cast<std::size_t>(worst)];
    out.worst.name = "worst";
    out.worst_direction = direction(worst);
    out.best = out.cones[static_cast<std::size_t>(best)];
    out.best.name = "best";
    out.best_direction = direction(best);
    out.cfar = optional_number(doc, "cfar");
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not a conical FSC table ({})", p.string(), e.what()));
  }
  return out;
}

}  // namespace

OrientationRun load_orientation_run(const fs::path& path) {
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file or folder", path.string()));
  const fs::path folder = fs::is_directory(path) ? path : path.parent_path().empty() ? "." : path.parent_path();
  OrientationRun run;
  const fs::path abs = fs::absolute(folder).lexically_normal();
  run.label = abs.filename().empty() ? abs.parent_path().filename().string() : abs.filename().string();
  const fs::path counts = folder / "view_counts.json", cfsc = folder / "cfsc.json",
                 diagnostics = folder / "orientation_diagnostics.json";
  if (fs::is_regular_file(counts)) run.views = load_view_counts(counts);
  if (fs::is_regular_file(cfsc)) run.cones = load_cones(cfsc);
  if (fs::is_regular_file(diagnostics)) {
    const Json doc = read_json(diagnostics);
    if (doc.contains("views")) run.scf_star = optional_number(doc.at("views"), "scf_star");
    if (doc.contains("conical_fsc")) run.cfar = optional_number(doc.at("conical_fsc"), "cfar");
  }
  if (!run.cfar && run.cones) run.cfar = run.cones->cfar;
  if (!run.views && !run.cones)
    throw InputError(fmt::format("{}: no view_counts.json or cfsc.json (tessera_orientation_diagnostics' outputs)",
                                 folder.string()));
  return run;
}

}  // namespace tessera::viewer
