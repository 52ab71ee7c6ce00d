#include "common/io.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <sstream>

#include "tessera/cryosparc_cs.hpp"
#include "tessera/error.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/run_files.hpp"
#include "tessera/scipion_set.hpp"
#include "tessera/star.hpp"

namespace tessera::protocol {
namespace fs = std::filesystem;

SymmetryGroup load_symmetry(const Values& v, const std::string& name) {
  try {
    return SymmetryGroup::parse(v.get<std::string>(name));
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", option_name(name), e.what()));
  }
}

void check_resolution_in_box(std::optional<double> resolution_A, const std::string& param, int box, double pixel_A) {
  const double coarsest_A = box * pixel_A / 2;
  if (resolution_A && *resolution_A > coarsest_A)
    throw InputError(fmt::format("{}: {} A is coarser than the box holds: {} px at {:.4g} A/px resolve at most {:.4g} "
                                 "A (Fourier shell 2)",
                                 param, *resolution_A, box, pixel_A, coarsest_A));
}

ParticleSet load_particles(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".sqlite") return read_scipion_particles(path);
  if (ext == ".star") return read_particles_star(path);
  if (ext == ".cs") return read_cryosparc_particles(path);
  throw InputError(
      fmt::format("{}: particles must be a RELION .star, a Scipion .sqlite or a cryoSPARC .cs file", path.string()));
}

LoadedVolume load_volume(const fs::path& path, std::optional<double> voxel_override_A) {
  MrcMap m = read_mrc(path);
  LoadedVolume v{std::move(m.data), voxel_override_A.value_or(m.voxel_A)};
  if (v.data.nx() != v.data.ny() || v.data.nx() != v.data.nz())
    throw InputError(fmt::format("{}: volume is {}x{}x{}, expected a cube", path.string(), v.data.nx(),
                                 v.data.ny(), v.data.nz()));
  if (!(v.voxel_A > 0) || !std::isfinite(v.voxel_A))
    throw InputError(fmt::format("{}: the header gives no voxel size; give one explicitly", path.string()));
  for (std::size_t i = 0; i < v.data.size(); ++i)
    if (!std::isfinite(v.data[i]))
      throw InputError(fmt::format("{}: voxel {} is {} (NaN or infinite values)", path.string(), i, v.data[i]));
  return v;
}

void check_same_grid(const LoadedVolume& v, const fs::path& file, const LoadedVolume& ref, const std::string& ref_name) {
  if (v.data.nx() != ref.data.nx() || std::abs(v.voxel_A - ref.voxel_A) > 1e-3 * ref.voxel_A)
    throw InputError(fmt::format("{}: box {} at {:.4g} A/px, expected {} at {:.4g} A/px (from {})", file.string(),
                                 v.data.nx(), v.voxel_A, ref.data.nx(), ref.voxel_A, ref_name));
}

void check_has_signal(const LoadedVolume& v, const fs::path& file) {
  const auto [lo, hi] = std::minmax_element(v.data.values().begin(), v.data.values().end());
  if (lo == v.data.values().end() || *lo == *hi)
    throw InputError(fmt::format("{}: the map is constant ({} everywhere), it holds no signal", file.string(),
                                 lo == v.data.values().end() ? 0.0f : *lo));
}

std::array<LoadedVolume, 2> load_half_maps(const fs::path& half_a, const fs::path& half_b,
                                           std::optional<double> voxel_override_A) {
  std::array<LoadedVolume, 2> halves{load_volume(half_a, voxel_override_A), load_volume(half_b, voxel_override_A)};
  check_same_grid(halves[1], half_b, halves[0], half_a.string());
  check_has_signal(halves[0], half_a);
  check_has_signal(halves[1], half_b);
  return halves;
}

LoadedVolume load_mask(const fs::path& path, const LoadedVolume& ref, const std::string& ref_name,
                       std::optional<double> voxel_override_A) {
  LoadedVolume mask = load_volume(path, voxel_override_A);
  check_same_grid(mask, path, ref, ref_name);
  check_mask(mask.data, path.string());
  if (mask_stats(mask.data).max <= 0) throw InputError(fmt::format("{}: the mask is 0 everywhere", path.string()));
  return mask;
}

RealGrid mask_from_threshold(const RealGrid& map, double threshold, double extend_px, double soft_edge_px,
                             const std::string& param) {
  const auto [lo, hi] = std::minmax_element(map.values().begin(), map.values().end());
  if (lo != map.values().end() && !(threshold > *lo && threshold <= *hi))
    throw InputError(fmt::format("{}: {} selects {} voxel; the map ranges from {:.4g} to {:.4g}", param, threshold,
                                 threshold > *hi ? "no" : "every", *lo, *hi));
  try {
    return threshold_mask(map, threshold, extend_px, soft_edge_px);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", param, e.what()));
  }
}

void check_particle_stacks(const ParticleSet& set, int box) {
  std::map<fs::path, long> last_index;
  for (const Particle& p : set.particles) {
    long& last = last_index[set.stack_path(p)];
    last = std::max(last, p.image.index);
  }
  for (const auto& [stack, last] : last_index) {
    const MrcInfo info = read_mrc_info(stack);
    if (info.nx != box || info.ny != box)
      throw InputError(fmt::format("{}: images are {}x{}, expected {}x{} (the particles' box)", stack.string(),
                                   info.nx, info.ny, box, box));
    if (last > info.nz)
      throw InputError(
          fmt::format("{}: has {} images, the particles refer to image {}", stack.string(), info.nz, last));
  }
}

void check_ctf(const ParticleSet& set, const fs::path& file, const std::string& remedy) {
  const auto missing =
      std::count_if(set.particles.begin(), set.particles.end(), [](const Particle& p) { return !has_ctf(p); });
  if (missing > 0)
    throw InputError(fmt::format("{}: {} of {} particles have no CTF (no rlnDefocusU/V); {}", file.string(), missing,
                                 set.particles.size(), remedy));
}

void check_half_sets(const ParticleSet& set, const fs::path& file) {
  if (set.particles.size() == 1)
    throw InputError(fmt::format("{}: only one particle; the two half sets need at least one each", file.string()));
  const std::array<long, 2> n = half_set_sizes(set);
  for (int h = 0; h < 2; ++h)
    if (n[h] == 0)
      throw InputError(fmt::format("{}: every particle is in half set {} (rlnRandomSubset), half set {} would be empty",
                                   file.string(), 2 - h, h + 1));
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void save_volume(RunContext& ctx, const std::string& output_name, const std::string& file_name, const RealGrid& volume,
                 double voxel_A, const Json& extra) {
  write_mrc(ctx.path(file_name), volume, voxel_A);
  ctx.add_output(output_name, file_name, extra);
}

void save_particles(RunContext& ctx, const ParticleSet& set, const std::string& stem, const std::string& star_output,
                    const std::string& sqlite_output) {
  const fs::path out = fs::absolute(ctx.out_dir());
  if (!star_output.empty()) {
    write_particles_star(out / (stem + ".star"), set, out);
    ctx.add_output(star_output, stem + ".star", {{"count", set.particles.size()}});
  }
  if (!sqlite_output.empty()) {
    const fs::path sqlite = out / (stem + ".sqlite");
    fs::remove(sqlite);  // our own output from an earlier run into this folder
    write_scipion_particles(sqlite, set, out);
    ctx.add_output(sqlite_output, stem + ".sqlite", {{"count", set.particles.size()}});
  }
}

std::string format_resolution(std::optional<double> resolution_A, double voxel_A) {
  if (!resolution_A) return fmt::format("beyond Nyquist ({:.2f} A)", 2 * voxel_A);
  if (std::isinf(*resolution_A)) return "no correlation (below threshold from shell 1)";
  return fmt::format("{:.2f} A", *resolution_A);
}

std::string fsc_resolution_key(std::string_view curve, double threshold) {
  return fmt::format("{}{}{}", curve, run_files::fsc::separator::threshold, threshold);
}

Json fsc_shells_json(int box, double voxel_A) {
  namespace shell_key = run_files::fsc::shell_key;
  const std::vector<double> res = shell_resolution_A(box, voxel_A);
  Json shells = Json::array();
  for (std::size_t k = 0; k < res.size(); ++k)
    shells.push_back({{shell_key::index, k}, {shell_key::resolution_A, k == 0 ? Json(nullptr) : Json(res[k])}});
  return shells;
}

std::vector<std::optional<double>> save_fsc(RunContext& ctx, const std::string& star_output,
                                            const std::string& json_output, const std::vector<FscCurve>& curves,
                                            int box, double voxel_A) {
  namespace key = run_files::fsc::key;
  namespace column = run_files::fsc_star::column;
  const std::vector<double> res = shell_resolution_A(box, voxel_A);
  StarTable t;
  t.name = run_files::fsc_star::table::fsc;
  t.is_loop = true;
  t.labels = {std::string(column::rlnSpectralIndex), std::string(column::rlnResolution),
              std::string(column::rlnAngstromResolution)};
  for (const auto& c : curves) t.labels.emplace_back(c.star_label);
  for (std::size_t k = 0; k < res.size(); ++k) {
    const double inv = k == 0 ? 0.0 : 1.0 / res[k];
    std::vector<std::string> row{fmt::format("{}", k), fmt::format("{:.6f}", inv),
                                 k == 0 ? "999.000000" : fmt::format("{:.6f}", res[k])};
    for (const auto& c : curves) row.push_back(fmt::format("{:.6f}", k < c.values.size() ? c.values[k] : 0.0));
    t.rows.push_back(std::move(row));
  }
  Json jcurves = Json::object(), jres = Json::object();
  std::vector<std::optional<double>> out;
  for (const auto& c : curves) {
    jcurves[c.name] = c.values;
    const auto r = resolution_at(c.values, c.threshold, box, voxel_A);
    out.push_back(r);
    jres[fsc_resolution_key(c.name, c.threshold)] = r && std::isfinite(*r) ? Json(*r) : Json(nullptr);
  }
  StarFile f;
  f.blocks.push_back(std::move(t));
  write_star(ctx.path(run_files::fsc_star::kName), f);
  ctx.add_output(star_output, run_files::fsc_star::kName);
  const Json doc = {{key::box, box},
                    {key::voxel_A, voxel_A},
                    {key::shells, fsc_shells_json(box, voxel_A)},
                    {key::curves, jcurves},
                    {key::resolution_A, jres}};
  atomic_write_text(ctx.path(run_files::fsc::kName), doc.dump(2) + "\n");
  ctx.add_output(json_output, run_files::fsc::kName);
  return out;
}

}  // namespace tessera::protocol
