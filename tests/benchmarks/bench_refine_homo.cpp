// Benchmark: tessera_refine_homo against RELION 3.1's auto-refine on the same
// simulated particles and cores (issue: "beats RELION's auto-refine").
//
//   bench_refine_homo WORKDIR [--count N] [--threads T] [--no-relion] [--reuse] [--tessera-args "..."]
//
// Simulates the 7DDO complex (../shared/data/relion_7DDO/ground_truth/
// gt_full_x2.mrc; the built-in phantom without shared data) as relion_7DDO was
// made (box 64, 3 A/px, SNR 0.1, defocus 1-2.5 um, astigmatism up to 600 A,
// origins sigma 3 A), starts both programs from the truth low-passed to 40 A,
// and prints: resolution by FSC against the truth (0.5) of the half-map
// average, GSFSC resolution (0.143, unmasked), median and 90th-percentile
// angular error and median shift error to the true poses, wall time and peak
// memory, with Tessera / RELION ratios. Not a test: it prints figures.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/simulate.hpp"
#include "tessera/star.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Run {
  double wall_s = 0, peak_mb = 0;
  int status = -1;
};

// Runs `command` with /bin/sh in `dir`, output to `log`; wall time and the
// peak resident memory of its largest descendant (getrusage RUSAGE_CHILDREN).
Run run(const std::string& command, const fs::path& dir, const fs::path& log) {
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    const std::string full = command + " >" + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  Run r;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_mb = usage.ru_maxrss / 1024.0;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

struct Metrics {
  double res_vs_truth_A = 0, gsfsc_A = 0, median_angle_deg = 0, p90_angle_deg = 0, median_shift_A = 0;
  Run run;
};

double resolution_or_nyquist(const std::vector<double>& curve, double threshold, int box, double px) {
  const auto r = resolution_at(curve, threshold, box, px);
  return r && std::isfinite(*r) ? *r : (r ? 999.0 : 2 * px);
}

void pose_errors(const ParticleSet& truth, const ParticleSet& refined, Metrics& m) {
  std::vector<double> ang, shift;
  std::map<long, const Particle*> by_index;
  for (const auto& p : truth.particles) by_index[p.image.index] = &p;
  for (const auto& p : refined.particles) {
    const auto it = by_index.find(p.image.index);
    if (it == by_index.end() || !p.pose) continue;
    const ProjectionPose& t = *it->second->pose;
    ang.push_back(rotation_distance_deg(euler_to_matrix(t.angles), euler_to_matrix(p.pose->angles)));
    shift.push_back(std::hypot(t.origin_x_A - p.pose->origin_x_A, t.origin_y_A - p.pose->origin_y_A));
  }
  std::sort(ang.begin(), ang.end());
  std::sort(shift.begin(), shift.end());
  m.median_angle_deg = ang[ang.size() / 2];
  m.p90_angle_deg = ang[ang.size() * 9 / 10];
  m.median_shift_A = shift[shift.size() / 2];
}

void map_metrics(const fs::path& half1, const fs::path& half2, const RealGrid& truth, double px, Metrics& m) {
  const RealGrid a = read_mrc(half1).data, b = read_mrc(half2).data;
  RealGrid avg = a;
  for (std::size_t i = 0; i < avg.size(); ++i) avg[i] = 0.5f * (a[i] + b[i]);
  m.res_vs_truth_A = resolution_or_nyquist(fsc(avg, truth), 0.5, truth.nx(), px);
  m.gsfsc_A = resolution_or_nyquist(fsc(a, b), 0.143, truth.nx(), px);
}

std::string ratio(double a, double b) { return b > 0 ? fmt::format("{:.2f}", a / b) : "-"; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_refine_homo WORKDIR [--count N] [--threads T] [--no-relion] [--reuse]\n";
    return 2;
  }
  const fs::path work = fs::absolute(argv[1]);
  long count = 1000;
  int threads = 2;
  bool relion = std::system("command -v relion_refine_mpi >/dev/null 2>&1") == 0, reuse = false;
  std::string extra;  // more options for tessera_refine_homo, e.g. --marginalize
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) count = std::stol(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    else if (a == "--no-relion") relion = false;
    else if (a == "--reuse") reuse = true;
    else if (a == "--tessera-args" && i + 1 < argc) extra = argv[++i];
  }
  const std::string bin = std::string(TESSERA_BINARY_DIR) + "/protocols/";
  fs::create_directories(work);
  const auto data = test::shared_data();
  const std::string volume =
      data ? fmt::format("--volume {}", (*data / "relion_7DDO/ground_truth/gt_full_x2.mrc").string()) : "--pixel-A 3";
  if (!reuse || !fs::exists(work / "sim/particles.star")) {
    const Run sim = run(fmt::format("{}tessera_simulate --out sim {} --count {} --snr 0.1 --defocus-min-A 10000 "
                                    "--defocus-max-A 25000 --astigmatism-max-A 600 --origin-sigma-A 3 --seed 42 "
                                    "--threads {}", bin, volume, count, threads),
                        work, work / "sim.log");
    if (sim.status != 0) return std::cerr << "simulation failed, see " << work / "sim.log" << "\n", 1;
  }
  // Both programs start without poses: the simulated STAR holds the truth.
  ParticleSet input = read_particles_star(work / "sim/particles.star", work / "sim");
  for (auto& p : input.particles) p.pose.reset(), p.half_set = 0;
  write_particles_star(work / "sim/particles_input.star", input, work / "sim");
  const MrcMap truth = read_mrc(work / "sim/truth.mrc");
  const double px = truth.voxel_A;
  write_mrc(work / "ref_lp40.mrc", lowpass(truth.data, 40.0, px), px);
  const ParticleSet true_set = read_particles_star(work / "sim/particles.star", work / "sim");

  Metrics t;
  fs::remove_all(work / "tessera");
  t.run = run(fmt::format("{}tessera_refine_homo --out tessera --particles sim/particles_input.star --reference ref_lp40.mrc "
                          "--initial-lowpass-A 40 --threads {} {}", bin, threads, extra),
              work, work / "tessera.log");
  if (t.run.status != 0) return std::cerr << "tessera_refine_homo failed, see " << work / "tessera.log" << "\n", 1;
  map_metrics(work / "tessera/map_half_A.mrc", work / "tessera/map_half_B.mrc", truth.data, px, t);
  pose_errors(true_set, read_particles_star(work / "tessera/particles.star", work / "tessera"), t);

  std::optional<Metrics> r;
  if (relion) {
    Metrics m;
    fs::create_directories(work / "relion");
    // The settings of ../shared/data/relion_7DDO/README.md; MPI: 1 master + 2 workers on 2 cores.
    m.run = run(fmt::format("mpirun --allow-run-as-root --oversubscribe -np 3 relion_refine_mpi --i particles_input.star "
                            "--o ../relion/run --ref ../ref_lp40.mrc --ini_high 40 --ctf_corrected_ref --auto_refine "
                            "--split_random_halves --particle_diameter 130 --ctf --flatten_solvent --zero_mask "
                            "--oversampling 1 --healpix_order 2 --auto_local_healpix_order 3 --offset_range 4 "
                            "--offset_step 2 --sym C1 --low_resol_join_halves 40 --norm --scale --pad 2 --j 1 "
                            "--pool 3 --dont_combine_weights_via_disc --random_seed 1"),
                work / "sim", work / "relion.log");
    if (m.run.status == 0) {
      map_metrics(work / "relion/run_half1_class001_unfil.mrc", work / "relion/run_half2_class001_unfil.mrc",
                  truth.data, px, m);
      pose_errors(true_set, read_particles_star(work / "relion/run_data.star", work / "sim"), m);
      r = m;
    } else {
      std::cerr << "relion_refine_mpi failed (see " << work / "relion.log" << "); printing Tessera only\n";
    }
  }

  std::cout << fmt::format("\n{} particles, box {} at {} A/px, {} threads (Nyquist {:.2f} A)\n", true_set.particles.size(),
                           truth.data.nx(), px, threads, 2 * px);
  std::cout << fmt::format("{:<36} {:>12} {:>12} {:>8}\n", "", "Tessera", "RELION 3.1", "ratio");
  auto row = [&](const std::string& name, double tv, std::optional<double> rv, const std::string& unit) {
    std::cout << fmt::format("{:<36} {:>9.2f} {:<2} {:>9} {:<2} {:>8}\n", name, tv, unit,
                             rv ? fmt::format("{:.2f}", *rv) : "-", rv ? unit : "", rv ? ratio(tv, *rv) : "-");
  };
  auto opt = [&](double Metrics::*f) { return r ? std::optional<double>((*r).*f) : std::nullopt; };
  row("resolution vs truth (FSC 0.5)", t.res_vs_truth_A, opt(&Metrics::res_vs_truth_A), "A");
  row("GSFSC resolution (0.143, unmasked)", t.gsfsc_A, opt(&Metrics::gsfsc_A), "A");
  row("median angular error", t.median_angle_deg, opt(&Metrics::median_angle_deg), "deg");
  row("90th percentile angular error", t.p90_angle_deg, opt(&Metrics::p90_angle_deg), "deg");
  row("median shift error", t.median_shift_A, opt(&Metrics::median_shift_A), "A");
  const auto wall = r ? std::optional<double>(r->run.wall_s) : std::nullopt;
  const auto mem = r ? std::optional<double>(r->run.peak_mb) : std::nullopt;
  row("wall time", t.run.wall_s, wall, "s");
  row("peak memory (largest process)", t.run.peak_mb, mem, "MB");
  return 0;
}
