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
// memory (of the largest process, and of the whole process tree: RELION's MPI
// ranks summed), with Tessera / RELION ratios. Not a test: it prints figures.
// What it shares with bench_scale is in bench_common.hpp.
#include <fmt/format.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "bench_common.hpp"

namespace fs = std::filesystem;
using namespace tessera::bench;

namespace {

struct Metrics {
  Quality quality;
  JobCost cost;
};

void print_comparison(const Dataset& d, int threads, const Metrics& t, const std::optional<Metrics>& r) {
  std::cout << fmt::format("\n{} particles, box {} at {} A/px, {} threads (Nyquist {:.2f} A)\n",
                           d.true_poses.particles.size(), d.box(), d.pixel_A(), threads, 2 * d.pixel_A());
  std::cout << fmt::format("{:<36} {:>12} {:>12} {:>8}\n", "", "Tessera", "RELION 3.1", "ratio");
  auto row = [&](const std::string& name, double tv, std::optional<double> rv, const std::string& unit) {
    std::cout << fmt::format("{:<36} {:>9.2f} {:<2} {:>9} {:<2} {:>8}\n", name, tv, unit,
                             rv ? fmt::format("{:.2f}", *rv) : "-", rv ? unit : "", rv ? ratio(tv, *rv) : "-");
  };
  auto quality = [&](double Quality::*f) { return r ? std::optional<double>((*r).quality.*f) : std::nullopt; };
  auto cost = [&](double JobCost::*f) { return r ? std::optional<double>((*r).cost.*f) : std::nullopt; };
  row("resolution vs truth (FSC 0.5)", t.quality.res_vs_truth_A, quality(&Quality::res_vs_truth_A), "A");
  row("GSFSC resolution (0.143, unmasked)", t.quality.gsfsc_A, quality(&Quality::gsfsc_A), "A");
  row("median angular error", t.quality.median_angle_deg, quality(&Quality::median_angle_deg), "deg");
  row("90th percentile angular error", t.quality.p90_angle_deg, quality(&Quality::p90_angle_deg), "deg");
  row("median shift error", t.quality.median_shift_A, quality(&Quality::median_shift_A), "A");
  row("wall time", t.cost.wall_s, cost(&JobCost::wall_s), "s");
  row("peak memory (largest process)", t.cost.peak_process_mb, cost(&JobCost::peak_process_mb), "MB");
  row("peak memory (process tree)", t.cost.peak_tree_mb, cost(&JobCost::peak_tree_mb), "MB");
}

int run_benchmark(int argc, char** argv) {
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
  fs::create_directories(work);
  if (!reuse || !fs::exists(work / "sim/particles.star")) simulate(work, default_volume_option(), count, threads);
  const Dataset d = prepare_refinement(work, RelionGroups::PerMicrograph);

  Metrics t;
  fs::remove_all(work / "tessera");
  t.cost = run_job(tessera_refine_command("tessera", threads, extra), work, work / "tessera.log");
  if (t.cost.status != 0) return std::cerr << "tessera_refine_homo failed, see " << work / "tessera.log" << "\n", 1;
  t.quality = tessera_quality(work / "tessera", d);

  std::optional<Metrics> r;
  if (relion) {
    Metrics m;
    fs::remove_all(work / "relion");
    fs::create_directories(work / "relion");
    m.cost = run_job(relion_refine_command(d.pixel_A()), work / "sim", work / "relion.log");
    if (m.cost.status == 0) {
      m.quality = relion_quality(work / "relion", d);
      r = m;
    } else {
      std::cerr << "relion_refine_mpi failed (see " << work / "relion.log" << "); printing Tessera only\n";
    }
  }
  print_comparison(d, threads, t, r);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tessera::bench::bench_main(argc, argv, run_benchmark); }
