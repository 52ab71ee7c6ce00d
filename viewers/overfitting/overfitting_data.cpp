#include "overfitting/overfitting_data.hpp"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tessera/error.hpp"

namespace tessera::viewer {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kFile = "validate_overfitting.json";

std::optional<double> positive_or_null(const Json& j) {
  if (j.is_null()) return std::nullopt;
  const double v = j.get<double>();
  if (!(v > 0)) throw std::invalid_argument(fmt::format("{} is not a positive resolution", v));
  return v;
}

OverfittingCurve read_curve(const std::string& name, const Json& j, std::size_t sizes) {
  OverfittingCurve c{name, {}, {}, {}};
  const auto& mean = j.at("mean_A");
  const auto& sd = j.at("sd_A");
  const auto& rep = j.at("resolution_A");
  if (mean.size() != sizes || sd.size() != sizes || rep.size() != sizes)
    throw std::invalid_argument(fmt::format("curve '{}' does not have one entry per size ({})", name, sizes));
  for (std::size_t i = 0; i < sizes; ++i) {
    c.mean_A.push_back(positive_or_null(mean[i]));
    c.sd_A.push_back(sd[i].is_null() ? std::nullopt : std::optional<double>(sd[i].get<double>()));
    std::vector<double> r;
    for (const auto& x : rep[i])
      if (auto v = positive_or_null(x)) r.push_back(*v);
    c.repeats_A.push_back(std::move(r));
  }
  return c;
}

}  // namespace

OverfittingRun load_overfitting(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / kFile : path;
  std::ifstream in(file);
  if (!in) throw InputError(fmt::format("{}: no such file (tessera_validate_overfitting's {})", file.string(), kFile));
  OverfittingRun run;
  const fs::path folder = fs::absolute(file).parent_path();
  run.label = folder.filename().string();
  try {
    const Json doc = Json::parse(in);
    run.voxel_A = doc.at("voxel_A").get<double>();
    run.threshold = doc.value("threshold", 0.143);
    run.sizes = doc.at("sizes").get<std::vector<long>>();
    if (run.sizes.empty()) throw std::invalid_argument("no sizes");
    for (std::size_t i = 0; i < run.sizes.size(); ++i)
      if (run.sizes[i] < 1 || (i > 0 && run.sizes[i] <= run.sizes[i - 1]))
        throw std::invalid_argument("sizes are not positive and increasing");
    const Json& curves = doc.at("curves");
    for (const char* name : {"particles", "noise"})
      if (curves.contains(name)) run.curves.push_back(read_curve(name, curves.at(name), run.sizes.size()));
    for (const auto& [name, c] : curves.items())
      if (name != "particles" && name != "noise") run.curves.push_back(read_curve(name, c, run.sizes.size()));
    if (run.curves.empty()) throw std::invalid_argument("no curves");
    if (const auto it = doc.find("bfactor_fit"); it != doc.end() && it->is_object())
      run.fit = BfactorFit{it->at("slope_inv_A2_per_ln_n").get<double>(), it->at("intercept_inv_A2").get<double>(),
                           it->at("from_particles").get<double>(), it->at("to_particles").get<double>()};
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not a validate_overfitting table ({})", file.string(), e.what()));
  }
  return run;
}

}  // namespace tessera::viewer
