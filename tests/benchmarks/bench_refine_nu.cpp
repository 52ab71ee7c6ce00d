// Benchmark: non-uniform against uniform refinement on a membrane protein in a
// disordered belt (issue: "Non-uniform refinement", section Benchmark). Not a
// test: it prints figures.
//
//   bench_refine_nu WORKDIR [--particles N] [--quick] [--threads T] [--snr X]
//                   [--symmetry C4|C1] [--reuse] [--no-nu] [--refine-args "..."]
//
// Truth. TRPV1 (../shared/data/structures/3J5P_TRPV1_C4.pdb, C4 about the
// model's z axis) made into a map by pdb_to_map.py with gemmi (python3-gemmi:
// electron scattering factors, every atom at B = 20 A^2, the model's own
// B-factors ignored), box 128 at 1.5 A/px (Nyquist 3 A), the model's centre of
// mass on the box centre and its axes kept: the 4-fold axis is the box's z.
//
// The belt. TRPV1's transmembrane domain (residues 430-690: S1-S6 and the pore;
// z from -48 to +2 A about the centre of mass) lies at one end of the long
// axis, the ankyrin repeats at the other. tessera_simulate's built-in belt is
// centred on the box centre, so the belt is given as --disorder-mask instead:
// the built-in cylindrical shell (engine belt_envelope, radius 0-70 A, height
// 40 A: a nanodisc around a ~100 A wide domain) moved along z to the mean z of
// those residues' CA atoms (-23.6 A, rounded to a voxel), less the protein's
// mask (the control simulation's truth_mask.mrc), as tessera_simulate does
// with its own belt. Moving the model instead would put the protein 24 A off
// the box centre and push the ankyrin repeats out of the refinement's
// particle mask (0.8 x box = 154 A). Density: tessera_simulate's defaults,
// mean and RMS 0.5 x the protein's RMS, smooth to 8 A, a new realisation per
// particle.
//
// Datasets (seed 42, defocus 1-2.5 um, astigmatism up to 600 A, origins sigma
// 3 A, SNR 0.05 of the protein's signal): disorder/ (the belt) and control/
// (the same without it). Each is refined by tessera_refine_homo (uniform) and
// tessera_refine_nu (NU) from the truth low-passed to 40 A, with --symmetry C4
// (the protein's own), the same seed and threads. A missing tessera_refine_nu
// is skipped with a message; --no-nu runs no NU refinement (cached NU results
// are still shown with --reuse).
//
// Figures per run: resolution against the truth inside the protein mask (FSC
// 0.5 of the half-map average and the truth, both multiplied by the truth's
// soft mask) and over the whole box, the run's GSFSC (fsc.json corrected@0.143)
// and the unmasked one, median and 90th-percentile angular error (to the
// nearest C4 mate of the true pose), median shift error, iterations, wall and
// CPU seconds, peak memory; then NU / uniform, and the goals (disorder:
// NU at least 10% finer inside the protein, a lower median angular error, at
// most 2x uniform's wall time; control: NU no worse).
//
// Work folder: WORKDIR/truth/ (the map and pdb_to_map.py's report),
// WORKDIR/{disorder,control}/ (sim/, each run's folder homo/ and nu/, logs,
// result_*.json). --reuse keeps a simulation made by the same command from the
// same truth, and every result of the same command, simulation and binary (a
// rebuilt program runs again).
//
// Time, 2 shared cores: --quick (300 particles, at most 3 iterations):
// uniform 2-3 min a dataset; tessera_refine_nu as of this writing about 11 min
// an iteration (its first, global), so about 1 hour for both datasets. The
// default (2,000 particles, up to 20 iterations) takes hours: run it on idle
// cores.
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench_common.hpp"
#include "tessera/simulate.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::bench;

namespace {

constexpr int kBox = 128;
constexpr double kPixelA = 1.5;
constexpr const char* kModel = "structures/3J5P_TRPV1_C4.pdb";
constexpr const char* kTransmembraneResidues = "430-690";  // TRPV1 S1-S6 and the pore, 3J5P numbering
constexpr double kBeltOuterRadiusA = 70, kBeltHeightA = 40;

struct Options {
  fs::path work;
  long particles = 2000;
  bool quick = false, reuse = false, run_nu = true;
  int threads = 2;
  double snr = 0.05;
  std::string symmetry = "C4";
  std::string refine_args;  ///< more options for both programs
};

Options parse_options(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-')
    throw UsageError(
        "usage: bench_refine_nu WORKDIR [--particles N] [--quick] [--threads T] [--snr X] [--symmetry C4|C1] "
        "[--reuse] [--no-nu] [--refine-args \"...\"]");
  Options o;
  o.work = fs::absolute(argv[1]);
  std::optional<long> particles;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--particles" && has_value) particles = std::stol(argv[++i]);
    else if (a == "--quick") o.quick = true;
    else if (a == "--threads" && has_value) o.threads = std::stoi(argv[++i]);
    else if (a == "--snr" && has_value) o.snr = std::stod(argv[++i]);
    else if (a == "--symmetry" && has_value) o.symmetry = argv[++i];
    else if (a == "--reuse") o.reuse = true;
    else if (a == "--no-nu") o.run_nu = false;
    else if (a == "--refine-args" && has_value) o.refine_args = argv[++i];
    else throw UsageError("unknown option or missing value: " + a);
  }
  o.particles = particles.value_or(o.quick ? 300 : 2000);
  if (o.particles < 10 || o.threads < 1 || o.snr <= 0) throw UsageError("--particles >= 10, --threads >= 1, --snr > 0");
  if (o.quick) o.refine_args += " --max-iterations 3";
  return o;
}

// A python3 that imports gemmi: Debian's python3-gemmi is for /usr/bin/python3, which a
// python3 earlier on PATH (a virtual environment, pyenv) may not see.
std::string python_with_gemmi() {
  for (const std::string python : {"/usr/bin/python3", "python3"})
    if (std::system((python + " -c 'import gemmi' >/dev/null 2>&1").c_str()) == 0) return python;
  throw std::runtime_error(
      "gemmi for Python 3 is missing (it makes the truth map from the atomic model): apt-get install python3-gemmi "
      "(scripts/setup.sh test installs it)");
}

struct Truth {
  fs::path map;
  double membrane_z_A = 0;  ///< mean z of the transmembrane CA atoms about the box centre
};

Truth make_truth(const fs::path& work) {
  const auto data = test::shared_data();
  if (!data || !fs::exists(*data / kModel))
    throw std::runtime_error(std::string("the atomic model ../shared/data/") + kModel +
                             " is missing (set TESSERA_SHARED_DATA to the shared data folder)");
  const fs::path dir = work / "truth";
  fs::create_directories(dir);
  const std::string command =
      fmt::format("{} {} {} trpv1.mrc --box {} --pixel-A {} --blur-A2 20 --report report.json --residues {}",
                  python_with_gemmi(), TESSERA_PDB_TO_MAP, (*data / kModel).string(), kBox, kPixelA,
                  kTransmembraneResidues);
  if (run_job(command, dir, dir / "pdb_to_map.log").status != 0)
    throw std::runtime_error("pdb_to_map.py failed: " + read_file(dir / "pdb_to_map.log"));
  const auto report = nlohmann::json::parse(read_file(dir / "report.json"));
  return {dir / "trpv1.mrc", report.at("residues").at("mean_about_centre_A").at(2).get<double>()};
}

// The belt about the z axis at height z_A (rounded to a voxel), less the protein's mask.
RealGrid membrane_belt(const RealGrid& protein_mask, double z_A) {
  const RealGrid centred =
      belt_envelope(kBox, kPixelA, Belt{.outer_radius_A = kBeltOuterRadiusA, .height_A = kBeltHeightA});
  const int dz = static_cast<int>(std::lround(z_A / kPixelA));
  RealGrid belt(kBox, kBox, kBox);
  for (int z = 0; z < kBox; ++z) {
    if (z - dz < 0 || z - dz >= kBox) continue;
    for (int y = 0; y < kBox; ++y)
      for (int x = 0; x < kBox; ++x) belt(x, y, z) = centred(x, y, z - dz) * (1 - protein_mask(x, y, z));
  }
  return belt;
}

struct SimulatedSet {
  Dataset data;
  std::string key;  ///< how it was made: a cached result is reused only for the same text
};

SimulatedSet make_dataset(const Options& o, const fs::path& dir, const Truth& t, const std::string& extra,
                          const std::string& inputs) {
  fs::create_directories(dir);
  const SimulationSettings settings{.snr = o.snr, .extra = extra};
  const std::string volume = "--volume " + t.map.string();
  const std::string key =
      simulate_command(volume, o.particles, o.threads, settings) + "; truth " + file_fingerprint(t.map) + inputs;
  if (!o.reuse || !simulation_matches(dir, key)) {
    fs::remove(dir / "simulation.key");
    std::cout << fmt::format("simulating {} particles in {}\n", o.particles, dir.string()) << std::flush;
    simulate(dir, volume, o.particles, o.threads, settings);
    mark_simulation(dir, key);
  }
  SimulatedSet s{prepare_refinement(dir, RelionGroups::PerMicrograph), key};
  s.data.symmetry = o.symmetry;
  return s;
}

// Uniform and NU refinement of one dataset.
std::vector<Result> refine(const Options& o, const SimulatedSet& s) {
  const std::string args = fmt::format("--symmetry {} --seed 1 {}", o.symmetry, o.refine_args);
  std::vector<Result> results;
  for (const auto& [label, program, name] : {std::tuple{"uniform", "tessera_refine_homo", "homo"},
                                             std::tuple{"NU", "tessera_refine_nu", "nu"}}) {
    const fs::path binary = protocol_path(program);
    const Job job{.program = label,
                  .name = name,
                  .key = {tessera_refine_command(program, name, o.threads, args), file_fingerprint(binary)},
                  .run_in = s.data.work,
                  .out = s.data.work / name,
                  .quality = tessera_quality,
                  .failure = std::string(program) + " failed",
                  .may_run = o.run_nu || std::string(label) != "NU",
                  .skip = fs::exists(binary) ? std::nullopt
                                             : std::optional<std::string>(binary.string() + " is not built")};
    results.push_back(run_or_reuse(s.data, s.key, job, o.reuse));
  }
  return results;
}

struct Comparison {
  std::string name;
  Result uniform, nu;
};

void print_table(const std::vector<Comparison>& sets) {
  std::cout << fmt::format("\n{:<40}", "");
  for (const auto& c : sets) std::cout << fmt::format("| {:^28} ", c.name);
  std::cout << fmt::format("\n{:<40}", "");
  for (std::size_t i = 0; i < sets.size(); ++i) std::cout << fmt::format("| {:>9} {:>9} {:>8} ", "uniform", "NU", "NU/uni");
  std::cout << "\n";
  auto row = [&](const std::string& name, const std::string& unit, auto get, int digits) {
    std::cout << fmt::format("{:<40}", name + (unit.empty() ? "" : " (" + unit + ")"));
    for (const auto& c : sets) {
      auto cell = [&](const Result& r) { return r.done() ? fmt::format("{:.{}f}", double(get(r)), digits) : "-"; };
      const std::string q = c.uniform.done() && c.nu.done() ? ratio(get(c.nu), get(c.uniform)) : "-";
      std::cout << fmt::format("| {:>9} {:>9} {:>8} ", cell(c.uniform), cell(c.nu), q);
    }
    std::cout << "\n";
  };
  row("resolution vs truth, protein mask", "A", [](const Result& r) { return r.quality.res_vs_truth_masked_A; }, 2);
  // With the belt, the map holds its mean density and the truth does not: the whole-box figure is low.
  row("resolution vs truth, whole box", "A", [](const Result& r) { return r.quality.res_vs_truth_A; }, 2);
  row("GSFSC, run's corrected (0.143)", "A", [](const Result& r) { return r.quality.gsfsc_run_A; }, 2);
  row("GSFSC, unmasked halves (0.143)", "A", [](const Result& r) { return r.quality.gsfsc_A; }, 2);
  row("median angular error", "deg", [](const Result& r) { return r.quality.median_angle_deg; }, 2);
  row("90th percentile angular error", "deg", [](const Result& r) { return r.quality.p90_angle_deg; }, 2);
  row("median shift error", "A", [](const Result& r) { return r.quality.median_shift_A; }, 2);
  row("iterations", "", [](const Result& r) { return r.quality.iterations; }, 0);
  row("wall time", "s", [](const Result& r) { return r.cost.wall_s; }, 1);
  row("CPU time", "s", [](const Result& r) { return r.cost.cpu_s; }, 1);
  row("peak memory, process tree", "MB", [](const Result& r) { return r.cost.peak_tree_mb; }, 0);
  for (const auto& c : sets)
    for (const Result* r : {&c.uniform, &c.nu})
      if (!r->done())
        std::cout << fmt::format("{} {}: {}\n", c.name, r->program,
                                 r->state == "not run" ? "not run (--no-nu)" : r->state);
      else if (r->earlier_build)
        std::cout << fmt::format("{} {}: cached from an earlier build of the program\n", c.name, r->program);
}

// The goals, where both runs of a dataset are done.
void print_goals(const Comparison& disorder, const Comparison& control) {
  auto verdict = [](bool ok) { return ok ? "met" : "NOT met"; };
  std::cout << "\nGoals (issue 11):\n";
  if (!(disorder.uniform.done() && disorder.nu.done()) && !(control.uniform.done() && control.nu.done()))
    std::cout << "  not judged: no dataset has both a uniform and an NU result\n";
  if (disorder.uniform.done() && disorder.nu.done()) {
    const Quality &u = disorder.uniform.quality, &n = disorder.nu.quality;
    std::cout << fmt::format("  disorder: NU >= 10% finer inside the protein: {:.2f} vs {:.2f} A, ratio {} <= 0.90: {}\n",
                             n.res_vs_truth_masked_A, u.res_vs_truth_masked_A,
                             ratio(n.res_vs_truth_masked_A, u.res_vs_truth_masked_A),
                             verdict(n.res_vs_truth_masked_A <= 0.9 * u.res_vs_truth_masked_A));
    std::cout << fmt::format("  disorder: lower median angular error: {:.2f} vs {:.2f} deg: {}\n", n.median_angle_deg,
                             u.median_angle_deg, verdict(n.median_angle_deg < u.median_angle_deg));
    std::cout << fmt::format("  disorder: wall time at most 2x uniform's: ratio {}: {}\n",
                             ratio(disorder.nu.cost.wall_s, disorder.uniform.cost.wall_s),
                             verdict(disorder.nu.cost.wall_s <= 2 * disorder.uniform.cost.wall_s));
  }
  if (control.uniform.done() && control.nu.done()) {
    const Quality &u = control.uniform.quality, &n = control.nu.quality;
    std::cout << fmt::format("  control: NU no worse inside the protein: {:.2f} vs {:.2f} A: {}\n",
                             n.res_vs_truth_masked_A, u.res_vs_truth_masked_A,
                             verdict(n.res_vs_truth_masked_A <= u.res_vs_truth_masked_A));
  }
}

int run_benchmark(int argc, char** argv) {
  Options o;
  try {
    o = parse_options(argc, argv);
  } catch (const std::logic_error& e) {  // std::stol's
    throw UsageError(std::string("bad number in the options (") + e.what() + ")");
  }
  fs::create_directories(o.work);
  const Truth truth = make_truth(o.work);
  const SimulatedSet control = make_dataset(o, o.work / "control", truth, "", "");
  const RealGrid belt = membrane_belt(control.data.protein_mask, truth.membrane_z_A);
  const fs::path belt_file = o.work / "truth/membrane_belt.mrc";
  write_mrc(belt_file, belt, kPixelA);
  const SimulatedSet disorder =
      make_dataset(o, o.work / "disorder", truth, "--disorder true --disorder-mask " + belt_file.string(),
                   "; belt " + file_fingerprint(belt_file));
  std::vector<Comparison> sets;
  for (const auto& [name, s] : {std::pair{"disorder belt", &disorder}, std::pair{"control (no disorder)", &control}}) {
    auto r = refine(o, *s);
    sets.push_back({name, r[0], r[1]});
  }
  std::cout << fmt::format(
      "\nTRPV1 ({}), box {} at {} A/px (Nyquist {:.1f} A), {} particles, SNR {}, symmetry {}, {} threads{}\n"
      "belt: radius 0-{} A, height {} A, centred {:.1f} A from the box centre along z (transmembrane residues {})\n",
      kModel, kBox, kPixelA, 2 * kPixelA, o.particles, o.snr, o.symmetry, o.threads,
      o.quick ? ", --quick (at most 3 iterations)" : "", kBeltOuterRadiusA, kBeltHeightA,
      std::lround(truth.membrane_z_A / kPixelA) * kPixelA, kTransmembraneResidues);
  print_table(sets);
  print_goals(sets[0], sets[1]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tessera::bench::bench_main(argc, argv, run_benchmark); }
