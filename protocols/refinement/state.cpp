#include "refinement/state.hpp"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/run_files.hpp"

namespace tessera::protocol {
namespace fs = std::filesystem;
namespace {

namespace key = run_files::iterations::key;

IterationStats stats_from(const nlohmann::json& j) {
  IterationStats s;
  s.iteration = j.at(key::iteration);
  s.global_search = j.at(key::global_search);
  s.aligned = j.at(key::aligned);
  s.resolution_A = j.at(key::resolution_A);
  s.align_res_A = j.at(key::align_res_A);
  s.mean_angle_change_deg = j.at(key::mean_angle_change_deg);
  s.mean_shift_change_px = j.at(key::mean_shift_change_px);
  s.mean_scale = j.at(key::mean_scale);
  s.wall_s = j.at(key::wall_s);
  if (j.contains(key::local_resolution_quantiles_A))
    s.local_resolution_quantiles_A = j.at(key::local_resolution_quantiles_A).get<std::vector<double>>();
  if (j.contains(key::symmetry_mate_changed_fraction) && !j.at(key::symmetry_mate_changed_fraction).is_null())
    s.mate_change_fraction = j.at(key::symmetry_mate_changed_fraction).get<double>();
  if (j.contains(key::median_defocus_change_A) && !j.at(key::median_defocus_change_A).is_null())
    s.median_defocus_change_A = j.at(key::median_defocus_change_A).get<double>();
  if (j.contains(key::defocus_changed)) s.defocus_changed = j.at(key::defocus_changed).get<long>();
  return s;
}

}  // namespace

nlohmann::ordered_json iteration_json(const IterationStats& s) {
  return {{key::iteration, s.iteration},
          {key::global_search, s.global_search},
          {key::aligned, s.aligned},
          {key::resolution_A, s.resolution_A},
          {key::align_res_A, s.align_res_A},
          {key::mean_angle_change_deg, s.mean_angle_change_deg},
          {key::mean_shift_change_px, s.mean_shift_change_px},
          {key::mean_scale, s.mean_scale},
          {key::wall_s, s.wall_s},
          {key::local_resolution_quantiles_A, s.local_resolution_quantiles_A},
          {key::symmetry_mate_changed_fraction,
           s.mate_change_fraction ? nlohmann::ordered_json(*s.mate_change_fraction) : nlohmann::ordered_json()},
          {key::median_defocus_change_A,
           s.median_defocus_change_A ? nlohmann::ordered_json(*s.median_defocus_change_A) : nlohmann::ordered_json()},
          {key::defocus_changed, s.defocus_changed}};
}

// Each iteration's state is one folder, state/iter_NNN, written completely before the
// pointer file state/current (written atomically) names it; the previous folder is removed
// only after that. A kill at any moment leaves `current` naming a complete folder.
void save_state(const fs::path& out_dir, const RefineState& st, double pixel_A) {
  const fs::path root = out_dir / "state";
  const std::string name = fmt::format("iter_{:03}", st.iteration);
  const fs::path dir = root / name;
  fs::remove_all(dir);  // a partial folder of this iteration, left by a kill
  fs::create_directories(dir);
  write_particles_star(dir / "particles.star", st.particles, fs::absolute(dir));
  write_mrc(dir / "half_A.mrc", st.half_a, pixel_A);
  write_mrc(dir / "half_B.mrc", st.half_b, pixel_A);
  write_mrc(dir / "raw_A.mrc", st.raw_a, pixel_A);
  write_mrc(dir / "raw_B.mrc", st.raw_b, pixel_A);
  write_mrc(dir / "mask.mrc", st.mask, pixel_A);
  if (!st.local_cutoff_px.empty()) write_mrc(dir / "local_cutoff_px.mrc", st.local_cutoff_px, pixel_A);
  nlohmann::ordered_json j = {{"iteration", st.iteration},
                      {"fsc", st.fsc},
                      {"resolution_A", st.resolution_A},
                      {"best_resolution_A", st.best_resolution_A},
                      {"iterations_without_gain", st.iterations_without_gain},
                      {"final_passes_left", st.final_passes_left},
                      {"noise_power", st.noise_power},
                      {"done", st.done},
                      {"history", nlohmann::ordered_json::array()}};
  for (const auto& h : st.history) j["history"].push_back(iteration_json(h));
  atomic_write_text(dir / "state.json", j.dump(1) + "\n");
  atomic_write_text(root / "current", name + "\n");
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && entry.path().filename() != name) fs::remove_all(entry.path());
}

std::optional<RefineState> load_state(const fs::path& out_dir) {
  const fs::path root = out_dir / "state";
  std::ifstream current(root / "current");
  std::string name;
  if (!(current >> name)) return std::nullopt;
  const fs::path dir = root / name;
  if (name.find('/') != std::string::npos || !fs::exists(dir / "state.json"))
    throw InputError(fmt::format("{}: names '{}', which holds no saved iteration", (root / "current").string(), name));
  std::ifstream in(dir / "state.json");
  nlohmann::json j;
  try {
    in >> j;
    RefineState st;
    st.particles = read_particles_star(dir / "particles.star", dir);
    st.half_a = read_mrc(dir / "half_A.mrc").data;
    st.half_b = read_mrc(dir / "half_B.mrc").data;
    st.raw_a = read_mrc(dir / "raw_A.mrc").data;
    st.raw_b = read_mrc(dir / "raw_B.mrc").data;
    st.mask = read_mrc(dir / "mask.mrc").data;
    if (fs::exists(dir / "local_cutoff_px.mrc")) st.local_cutoff_px = read_mrc(dir / "local_cutoff_px.mrc").data;
    st.iteration = j.at("iteration");
    st.fsc = j.at("fsc").get<std::vector<double>>();
    st.resolution_A = j.at("resolution_A");
    st.best_resolution_A = j.at("best_resolution_A");
    st.iterations_without_gain = j.at("iterations_without_gain");
    st.final_passes_left = j.at("final_passes_left");
    st.noise_power = j.at("noise_power").get<std::vector<double>>();
    st.done = j.at("done");
    for (const auto& h : j.at("history")) st.history.push_back(stats_from(h));
    return st;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: cannot continue from this state: {}", (dir / "state.json").string(), e.what()));
  }
}

}  // namespace tessera::protocol
