#include "bench_common.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tessera/fsc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/run_files.hpp"
#include "tessera/symmetry.hpp"
#include "test_data.hpp"

namespace tessera::bench {

namespace fs = std::filesystem;

namespace {

struct ProcEntry {
  pid_t parent = 0;
  double rss_bytes = 0;
};

// ppid (field 4) and rss in pages (field 24) of /proc/PID/stat; nothing when the process is gone.
std::optional<ProcEntry> read_proc_stat(const fs::path& stat_file) {
  std::ifstream in(stat_file);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto close = line.rfind(')');  // the command name (field 2) may hold spaces
  if (close == std::string::npos || close + 2 >= line.size()) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string state, skip;
  ProcEntry e;
  fields >> state >> e.parent;
  for (int field = 5; field < 24; ++field) fields >> skip;
  long pages = 0;
  if (!(fields >> pages)) return std::nullopt;
  e.rss_bytes = static_cast<double>(pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return e;
}

// Summed resident memory of `root` and all its descendants, bytes.
double tree_rss_bytes(pid_t root) {
  std::map<pid_t, ProcEntry> procs;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); }))
      continue;
    if (const auto e = read_proc_stat(it->path() / "stat")) procs[std::stoi(name)] = *e;
  }
  std::vector<pid_t> frontier{root};
  double sum = 0;
  while (!frontier.empty()) {
    const pid_t p = frontier.back();
    frontier.pop_back();
    if (const auto it = procs.find(p); it != procs.end()) sum += it->second.rss_bytes;
    for (const auto& [pid, e] : procs)
      if (e.parent == p) frontier.push_back(pid);
  }
  return sum;
}

double cpu_seconds(const struct rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double resolution_or_nyquist(const std::vector<double>& curve, double threshold, int box, double px) {
  const auto r = resolution_at(curve, threshold, box, px);
  return r && std::isfinite(*r) ? *r : (r ? 999.0 : 2 * px);
}

// Angular error to the nearest symmetry mate: poses A and A R (R in the group) give the same
// projection of a symmetric map (symmetry.hpp).
double symmetric_distance_deg(const Mat3& truth, const Mat3& refined, const SymmetryGroup& group) {
  double best = 180;
  for (const Mat3& r : group.matrices()) best = std::min(best, rotation_distance_deg(truth, multiply(refined, r)));
  return best;
}

void pose_errors(const ParticleSet& truth, const ParticleSet& refined, const SymmetryGroup& group, Quality& q) {
  std::vector<double> ang, shift;
  std::map<long, const Particle*> by_index;
  for (const auto& p : truth.particles) by_index[p.image.index] = &p;
  for (const auto& p : refined.particles) {
    const auto it = by_index.find(p.image.index);
    if (it == by_index.end() || !p.pose) continue;
    const ProjectionPose& t = *it->second->pose;
    ang.push_back(symmetric_distance_deg(euler_to_matrix(t.angles), euler_to_matrix(p.pose->angles), group));
    shift.push_back(std::hypot(t.origin_x_A - p.pose->origin_x_A, t.origin_y_A - p.pose->origin_y_A));
  }
  if (ang.empty()) throw std::runtime_error("no refined particle matches a simulated one");
  std::sort(ang.begin(), ang.end());
  std::sort(shift.begin(), shift.end());
  q.median_angle_deg = ang[ang.size() / 2];
  q.p90_angle_deg = ang[ang.size() * 9 / 10];
  q.median_shift_A = shift[shift.size() / 2];
}

Quality measure(const fs::path& half1, const fs::path& half2, const ParticleSet& refined, const Dataset& d) {
  Quality q;
  const RealGrid a = read_mrc(half1).data, b = read_mrc(half2).data;
  const RealGrid average = average_maps(a, b);
  q.res_vs_truth_A = resolution_or_nyquist(fsc(average, d.truth.data), 0.5, d.box(), d.pixel_A());
  q.res_vs_truth_masked_A =
      resolution_or_nyquist(masked_fsc(average, d.truth.data, d.protein_mask), 0.5, d.box(), d.pixel_A());
  q.gsfsc_A = resolution_or_nyquist(fsc(a, b), 0.143, d.box(), d.pixel_A());
  pose_errors(d.true_poses, refined, SymmetryGroup::parse(d.symmetry), q);
  return q;
}

}  // namespace

JobCost run_job(const std::string& command, const fs::path& dir, const fs::path& log) {
  struct rusage before {};
  getrusage(RUSAGE_CHILDREN, &before);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    const std::string full = command + " >" + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  JobCost cost;
  int status = 0;
  struct rusage usage {};
  for (;;) {
    const pid_t done = wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) throw std::runtime_error("wait4 failed");
    cost.peak_tree_mb = std::max(cost.peak_tree_mb, tree_rss_bytes(pid) / (1024.0 * 1024.0));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  struct rusage after {};
  getrusage(RUSAGE_CHILDREN, &after);
  cost.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cost.cpu_s = cpu_seconds(after) - cpu_seconds(before);
  cost.peak_process_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;
  cost.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return cost;
}

std::string protocol_path(const std::string& program) {
  return fmt::format("{}/protocols/{}", TESSERA_BINARY_DIR, program);
}

std::string mpirun_prefix(int ranks) {
  return fmt::format("mpirun --allow-run-as-root --oversubscribe -np {} ", ranks);
}

std::optional<fs::path> truth_7ddo() {
  const auto data = test::shared_data();
  if (!data) return std::nullopt;
  return *data / "relion_7DDO/ground_truth/gt_full_x2.mrc";
}

std::string default_volume_option() {
  const auto truth = truth_7ddo();
  return truth ? fmt::format("--volume {}", truth->string()) : "--pixel-A 3";
}

std::string simulate_command(const std::string& volume_option, long count, int threads,
                             const SimulationSettings& settings) {
  return fmt::format(
      "{} --out sim {} --count {} --snr {} --defocus-min-A 10000 --defocus-max-A 25000 "
      "--astigmatism-max-A 600 --origin-sigma-A 3 --seed 42 --threads {}{}{}",
      protocol_path("tessera_simulate"), volume_option, count, settings.snr, threads,
      settings.extra.empty() ? "" : " ", settings.extra);
}

void simulate(const fs::path& work, const std::string& volume_option, long count, int threads,
              const SimulationSettings& settings) {
  fs::remove_all(work / "sim");
  const JobCost sim = run_job(simulate_command(volume_option, count, threads, settings), work, work / "sim.log");
  if (sim.status != 0) throw std::runtime_error("simulation failed, see " + (work / "sim.log").string());
}

bool simulation_matches(const fs::path& work, const std::string& key) {
  return read_file(work / "simulation.key") == key && fs::exists(work / "sim/particles.star");
}

void mark_simulation(const fs::path& work, const std::string& key) {
  std::ofstream(work / "simulation.key") << key;
}

Dataset prepare_refinement(const fs::path& work, RelionGroups groups) {
  Dataset d{work, read_mrc(work / "sim/truth.mrc"), read_particles_star(work / "sim/particles.star", work / "sim"),
            read_mrc(work / "sim/truth_mask.mrc").data};
  // Both programs start without poses: the simulated STAR holds the truth.
  ParticleSet input = d.true_poses;
  for (auto& p : input.particles) p.pose.reset(), p.half_set = 0;
  if (groups == RelionGroups::One) {
    input.particle_extra_labels.push_back("rlnGroupName");
    for (auto& p : input.particles) p.extra.push_back("1");
  }
  write_particles_star(work / "sim/particles_input.star", input, work / "sim");
  write_mrc(work / "ref_lp40.mrc", lowpass(d.truth.data, 40.0, d.pixel_A()), d.pixel_A());
  return d;
}

std::string tessera_refine_command(const std::string& out, int threads, const std::string& extra) {
  return tessera_refine_command("tessera_refine_homo", out, threads, extra);
}

std::string tessera_refine_command(const std::string& program, const std::string& out, int threads,
                                   const std::string& extra) {
  return fmt::format(
      "{} --out {} --particles sim/particles_input.star --reference ref_lp40.mrc "
      "--initial-lowpass-A 40 --threads {} {}",
      protocol_path(program), out, threads, extra);
}

std::string relion_refine_command(double pixel_A) {
  const long range_px = std::lround(12.0 / pixel_A), step_px = std::max(1L, std::lround(6.0 / pixel_A));
  return mpirun_prefix(3) +
         fmt::format(
             "relion_refine_mpi --i particles_input.star --o ../relion/run --ref ../ref_lp40.mrc "
             "--ini_high 40 --ctf_corrected_ref --auto_refine --split_random_halves --particle_diameter 130 "
             "--ctf --flatten_solvent --zero_mask --oversampling 1 --healpix_order 2 "
             "--auto_local_healpix_order 3 --offset_range {} --offset_step {} --sym C1 "
             "--low_resol_join_halves 40 --norm --scale --pad 2 --j 1 --pool 3 "
             "--dont_combine_weights_via_disc --random_seed 1",
             range_px, step_px);
}

Quality tessera_quality(const fs::path& out, const Dataset& d) {
  Quality q =
      measure(out / "map_half_A.mrc", out / "map_half_B.mrc", read_particles_star(out / "particles.star", out), d);
  std::ifstream events(out / "run.log.jsonl");
  for (std::string line; std::getline(events, line);) {
    const auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_discarded() && e.value("event", "") == "iteration") ++q.iterations;
  }
  namespace rf = run_files::fsc;
  const auto curves = nlohmann::json::parse(read_file(out / rf::kName), nullptr, false);
  const std::string key = fmt::format("{}{}0.143", rf::curve::corrected, rf::separator::threshold);
  if (curves.is_discarded() || !curves.contains(rf::key::resolution_A) ||
      !curves[rf::key::resolution_A].contains(key))
    throw std::runtime_error(fmt::format("{}: no {} resolution", (out / rf::kName).string(), key));
  const auto& gs = curves[rf::key::resolution_A][key];
  q.gsfsc_run_A = gs.is_null() ? 2 * d.pixel_A() : gs.get<double>();  // null: above 0.143 up to Nyquist
  return q;
}

Quality relion_quality(const fs::path& dir, const Dataset& d) {
  Quality q = measure(dir / "run_half1_class001_unfil.mrc", dir / "run_half2_class001_unfil.mrc",
                      read_particles_star(dir / "run_data.star", d.work / "sim"), d);
  const std::regex name("run_it([0-9]+)_optimiser\\.star");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string file = e.path().filename().string();
    if (std::regex_match(file, m, name)) q.iterations = std::max(q.iterations, std::stoi(m[1].str()));
  }
  return q;
}

std::string ratio(double a, double b) {
  return b > 0 ? fmt::format("{:.2f}", a / b) : "-";
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string file_fingerprint(const fs::path& file) {
  const std::string bytes = read_file(file);
  std::uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ull;
  return fmt::format("{} bytes, fnv1a64 {:016x}", bytes.size(), hash);
}

namespace {

nlohmann::json to_json(const Result& r, const JobKey& key, const std::string& sim_key) {
  return {{"box", r.box},
          {"pixel_A", r.pixel_A},
          {"count", r.count},
          {"program", r.program},
          {"command", key.command},
          {"binary", key.binary},
          {"simulation", sim_key},
          {"iterations", r.quality.iterations},
          {"wall_s", r.cost.wall_s},
          {"cpu_s", r.cost.cpu_s},
          {"peak_tree_mb", r.cost.peak_tree_mb},
          {"peak_process_mb", r.cost.peak_process_mb},
          {"res_vs_truth_A", r.quality.res_vs_truth_A},
          {"res_vs_truth_masked_A", r.quality.res_vs_truth_masked_A},
          {"gsfsc_A", r.quality.gsfsc_A},
          {"gsfsc_run_A", r.quality.gsfsc_run_A},
          {"median_angle_deg", r.quality.median_angle_deg},
          {"p90_angle_deg", r.quality.p90_angle_deg},
          {"median_shift_A", r.quality.median_shift_A}};
}

// A cached result; nothing when the file lacks a figure (written by an older benchmark).
std::optional<Result> from_json(Result r, const nlohmann::json& j) {
  try {
    r.state = "done";
    r.quality.iterations = j.at("iterations");
    r.cost.wall_s = j.at("wall_s");
    r.cost.cpu_s = j.at("cpu_s");
    r.cost.peak_tree_mb = j.at("peak_tree_mb");
    r.cost.peak_process_mb = j.at("peak_process_mb");
    r.cost.status = 0;
    r.quality.res_vs_truth_A = j.at("res_vs_truth_A");
    r.quality.res_vs_truth_masked_A = j.at("res_vs_truth_masked_A");
    r.quality.gsfsc_A = j.at("gsfsc_A");
    r.quality.gsfsc_run_A = j.at("gsfsc_run_A");
    r.quality.median_angle_deg = j.at("median_angle_deg");
    r.quality.p90_angle_deg = j.at("p90_angle_deg");
    r.quality.median_shift_A = j.at("median_shift_A");
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return r;
}

}  // namespace

Result run_or_reuse(const Dataset& d, const std::string& simulation_key, const Job& job, bool may_reuse) {
  Result r{d.box(), d.pixel_A(), static_cast<long>(d.true_poses.particles.size()), job.program, "not run", {}, {}};
  const fs::path cache = d.work / ("result_" + job.name + ".json");
  if (may_reuse && fs::exists(cache)) {
    const auto j = nlohmann::json::parse(read_file(cache), nullptr, false);
    if (!j.is_discarded() && j.value("command", "") == job.key.command &&
        j.value("simulation", "") == simulation_key) {
      if (std::optional<Result> cached = from_json(r, j)) {
        cached->earlier_build = j.value("binary", "") != job.key.binary;
        if (!cached->earlier_build || !job.may_run) return *cached;
      }
    }
  }
  if (!job.may_run) return r;
  if (job.skip) return r.state = "skipped: " + *job.skip, r;
  std::cout << fmt::format("running {} on box {}, {} particles\n", job.program, r.box, r.count) << std::flush;
  fs::remove(cache);
  fs::remove_all(job.out);
  fs::create_directories(job.out);
  const fs::path log = d.work / (job.name + ".log");
  r.cost = run_job(job.key.command, job.run_in, log);
  if (r.cost.status != 0) return r.state = job.failure + ", see " + log.string(), r;
  try {
    r.quality = job.quality(job.out, d);
  } catch (const std::exception& e) {
    return r.state = job.failure + " (" + e.what() + "), see " + log.string(), r;
  }
  r.state = "done";
  std::ofstream(cache) << to_json(r, job.key, simulation_key).dump(2) << "\n";
  return r;
}

int bench_main(int argc, char** argv, int (*run)(int, char**)) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "ERROR: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tessera::bench
