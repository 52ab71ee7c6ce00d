// Benchmark: how the cost and the result of tessera_refine_homo and of RELION
// 3.1.3's auto-refine grow with box size and particle count (issue:
// "tests/benchmarks/bench_scale"). Not a test: it prints figures.
//
//   bench_scale WORKDIR [--boxes 64,128,256] [--counts 1000,300/1000,300]
//               [--tessera-configs 1t,2t,1r,2r] [--no-relion | --relion-only]
//               [--reuse] [--rerun-tessera] [--truth FILE.mrc] [--tessera-args "..."]
//
// Datasets. The truth (../shared/data/relion_7DDO/ground_truth/gt_full_x2.mrc,
// 64^3 at 3 A/px = 192 A; the built-in phantom without shared data; or
// --truth) is resampled by zero-padding (or cropping) its Fourier transform to
// each box, at pixel size 192 A / box: the same complex in the same physical
// box (64: 3 A/px, 128: 1.5, 192: 1, 256: 0.75). tessera_simulate makes the
// particles as bench_refine_homo does (SNR 0.1 = signal variance / noise
// variance over the box, defocus 1-2.5 um, origins sigma 3 A, seed 42).
// --counts gives one entry per box (or one for all); an entry "300/1000" makes
// one dataset per count. Two consequences of the recipe, to keep in mind when
// reading the figures: gt_full_x2.mrc has no signal beyond its Nyquist (6 A),
// so no box can be refined past 6 A; and with a per-pixel SNR the noise power
// within that band falls as (64 / box)^2, so larger boxes are easier data.
//
// Programs, on the same 2 cores. Tessera configurations: "Nt" = N threads,
// "Nr" = N MPI ranks of 1 thread (mpirun --allow-run-as-root --oversubscribe
// -np N tessera_refine_homo ...); an "Nr" is skipped, with the reason, when
// mpirun is missing, when tessera_refine_homo is not linked to libmpi, or when
// the run fails (with its log). RELION: relion_refine_mpi with the settings of
// ../shared/data/relion_7DDO/README.md, mpirun -np 3 --j 1 (a master and 2
// workers), all particles in one group (bench_common.hpp: RelionGroups). Per
// box: the particle diameter stays 130 A and the angular sampling healpix
// order 2 (7.5 deg with oversampling 1), local searches from order 3 (they
// depend on the particle's size and the resolution, not on the pixel); the
// offset search keeps its physical extent, range 12 A and step 6 A: 4/2 px at
// box 64, 8/4 at 128, 12/6 at 192, 16/8 at 256. Tessera's shift range (12 A)
// and particle diameter (0.8 x box = 154 A) are physical already.
//
// Figures per run: iterations (Tessera: "iteration" events of run.log.jsonl;
// RELION: the last run_itNNN), wall and CPU seconds (user + system of the whole
// process tree), both per particle per iteration (ms; Tessera's mini-batches
// align fewer particles in early iterations, the figure divides by all of
// them), peak memory (the largest sum of the RSS of every process of the job,
// sampled every 100 ms: RELION's 3 ranks summed), resolution of the half-map
// average against the truth (FSC 0.5) and the median angular error to the true
// poses. Then Tessera / RELION ratios per dataset, and growth factors between
// boxes and between particle counts, with the exponent p of figure ~ size^p.
//
// Work folder: WORKDIR/b<box>_n<count>/ holds the simulation (sim/), each
// run's folder (tessera_<config>/, relion/), its log and its result as JSON
// (result_tessera_<config>.json, result_relion.json). --reuse keeps the
// simulations as they are (delete a b<box>_n<count>/ folder to remake it) and
// every result whose command, dataset and, for Tessera, tessera_refine_homo
// binary are unchanged: RELION runs once, Tessera again after a rebuild;
// --rerun-tessera (with --reuse) runs Tessera again anyway. --no-relion and
// --relion-only stop new runs of a program; with --reuse its cached results
// are still printed (Tessera's from another build marked "*").
//
// Tessera's cost per iteration is mostly independent of the particle count at
// these counts (reconstruction, FFTs of padded volumes): its CPU per particle
// per iteration falls with the count, so boxes are compared at one count, and
// the default measures box 128 at two counts (also: memory flat in count).
//
// Time, 2 idle cores, defaults (64 x 1000, 128 x 300 and 1000, 256 x 300;
// Tessera 1t, 2t, 1r, 2r; RELION): about 4 hours, 2-2.5 of them Tessera at box
// 256 (20-45 min a configuration; extrapolated from runs at box 64 and 128
// with 100-1000 particles), RELION about 1 hour in all, 20-30 min at box 256.
// Peak memory at box 192 as well, after the default run:
//   bench_scale W --reuse --boxes 128,192,256 --counts 300
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tessera/fft.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::bench;

namespace {

struct TesseraConfig {
  std::string name;  ///< "2t", "2r"
  int ranks = 0;     ///< MPI ranks; 0: no mpirun
  int threads = 1;
};

struct Options {
  fs::path work;
  std::vector<int> boxes{64, 128, 256};
  std::vector<std::vector<long>> counts;  ///< per box, increasing
  std::vector<TesseraConfig> tessera;
  bool run_tessera = true, run_relion = true, reuse = false, rerun_tessera = false;
  std::optional<fs::path> truth;
  std::string tessera_args;
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) parts.push_back(part);
  return parts;
}

TesseraConfig parse_config(const std::string& name) {
  std::size_t used = 0;
  const int n = std::stoi(name, &used);
  if (n < 1 || used + 1 != name.size() || (name.back() != 't' && name.back() != 'r'))
    throw UsageError("--tessera-configs: '" + name + "' is not Nt (threads) or Nr (MPI ranks)");
  return name.back() == 'r' ? TesseraConfig{name, n, 1} : TesseraConfig{name, 0, n};
}

Options parse_options(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-')
    throw UsageError(
        "usage: bench_scale WORKDIR [--boxes 64,128,256] [--counts 1000,300/1000,300] "
        "[--tessera-configs 1t,2t,1r,2r] [--no-relion | --relion-only] [--reuse] [--rerun-tessera] "
        "[--truth FILE.mrc] [--tessera-args \"...\"]");
  Options o;
  o.work = fs::absolute(argv[1]);
  std::vector<std::string> counts{"1000", "300/1000", "300"};
  std::string configs = "1t,2t,1r,2r";
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--boxes" && has_value) {
      o.boxes.clear();
      for (const auto& b : split(argv[++i], ',')) o.boxes.push_back(std::stoi(b));
    } else if (a == "--counts" && has_value) {
      counts = split(argv[++i], ',');
    } else if (a == "--tessera-configs" && has_value) {
      configs = argv[++i];
    } else if (a == "--no-relion") {
      o.run_relion = false;
    } else if (a == "--relion-only") {
      o.run_tessera = false;
    } else if (a == "--reuse") {
      o.reuse = true;
    } else if (a == "--rerun-tessera") {
      o.rerun_tessera = true;
    } else if (a == "--truth" && has_value) {
      o.truth = fs::absolute(argv[++i]);
    } else if (a == "--tessera-args" && has_value) {
      o.tessera_args = argv[++i];
    } else {
      throw UsageError("unknown option or missing value: " + a);
    }
  }
  for (const auto& c : split(configs, ',')) o.tessera.push_back(parse_config(c));
  if (counts.size() != 1 && counts.size() != o.boxes.size())
    throw UsageError("--counts: give one entry per box, or one for all");
  o.counts.clear();
  for (std::size_t b = 0; b < o.boxes.size(); ++b) {
    if (o.boxes[b] < 16 || o.boxes[b] % 2 != 0) throw UsageError("--boxes: boxes must be even and >= 16");
    o.counts.emplace_back();
    for (const auto& c : split(counts[counts.size() == 1 ? 0 : b], '/')) o.counts.back().push_back(std::stol(c));
    std::sort(o.counts.back().begin(), o.counts.back().end());
  }
  return o;
}

// The map resampled to n_out^3 voxels over the same physical box: its Fourier
// transform zero-padded (or cropped) and scaled by (n_out / n_in)^3, so that the
// values stay those of the map. Padding splits the input's Nyquist planes
// evenly between +n_in/2 and -n_in/2, so the padded map takes the same values
// at the input's voxels (trigonometric interpolation); cropping leaves out the
// output's Nyquist planes.
RealGrid resample_fourier(const RealGrid& v, int n_out) {
  const int n_in = v.nx();
  if (n_out == n_in) return v;
  RealGrid corner = v;
  centre_to_corner(corner, true);
  const ComplexGrid f = fft_3d(corner);
  ComplexGrid g(n_out / 2 + 1, n_out, n_out);
  const bool pad = n_out > n_in;
  const int k_max = pad ? n_in / 2 : n_out / 2 - 1;
  const float scale = static_cast<float>(std::pow(static_cast<double>(n_out) / n_in, 3));
  auto weight = [&](int k) { return pad && std::abs(k) == n_in / 2 ? 0.5f : 1.0f; };
  for (int kz = -k_max; kz <= k_max; ++kz)
    for (int ky = -k_max; ky <= k_max; ++ky)
      for (int kx = 0; kx <= k_max; ++kx)
        g(kx, fourier_storage(ky, n_out), fourier_storage(kz, n_out)) =
            scale * weight(kx) * weight(ky) * weight(kz) * f(kx, fourier_storage(ky, n_in), fourier_storage(kz, n_in));
  RealGrid out = ifft_3d(g, n_out);
  corner_to_centre(out, true);
  return out;
}

// A dataset and the text that says how it was made (a result is reused only for the same text).
struct SimulatedSet {
  Dataset data;
  std::string key;
};

SimulatedSet make_dataset(const Options& o, const MrcMap& base, const std::string& source, int box, long count) {
  const fs::path dir = o.work / fmt::format("b{}_n{}", box, count);
  const std::string key = fmt::format("{} resampled to box {}; {} particles; one RELION group", source, box, count);
  fs::create_directories(dir);
  if (!o.reuse || !simulation_matches(dir, key)) {
    fs::remove(dir / "simulation.key");
    const double px = base.voxel_A * base.data.nx() / box;
    write_mrc(dir / "input_truth.mrc", resample_fourier(base.data, box), px);
    std::cout << fmt::format("simulating {} particles at box {} ({:.3g} A/px)\n", count, box, px) << std::flush;
    simulate(dir, "--volume input_truth.mrc", count, 2);
    mark_simulation(dir, key);
  }
  return {prepare_refinement(dir, RelionGroups::One), key};
}

// Why MPI ranks of tessera_refine_homo can not run here, if they can not.
std::optional<std::string> mpi_missing() {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) return std::string("mpirun not found");
  if (std::system(("ldd " + protocol_path("tessera_refine_homo") + " 2>/dev/null | grep -q libmpi").c_str()) != 0)
    return std::string("tessera_refine_homo is not linked to MPI");
  return std::nullopt;
}

std::vector<Result> run_dataset(const Options& o, const SimulatedSet& s) {
  std::vector<Result> results;
  const std::optional<std::string> no_mpi = mpi_missing();
  const std::string tessera_binary = file_fingerprint(protocol_path("tessera_refine_homo"));
  for (const auto& c : o.tessera) {
    const std::string name = "tessera_" + c.name;
    const std::string mpirun = c.ranks > 0 ? mpirun_prefix(c.ranks) : "";
    const Job job{.program = "Tessera " + c.name,
                  .name = name,
                  .key = {mpirun + tessera_refine_command(name, c.threads, o.tessera_args), tessera_binary},
                  .run_in = s.data.work,
                  .out = s.data.work / name,
                  .quality = tessera_quality,
                  .failure = c.ranks > 0 ? "skipped: failed" : "failed",
                  .may_run = o.run_tessera,
                  .skip = c.ranks > 0 ? no_mpi : std::nullopt};
    results.push_back(run_or_reuse(s.data, s.key, job, o.reuse && !o.rerun_tessera));
  }
  const bool have_relion = std::system("command -v relion_refine_mpi >/dev/null 2>&1") == 0;
  const Job relion{.program = "RELION",
                   .name = "relion",
                   .key = {relion_refine_command(s.data.pixel_A()), ""},
                   .run_in = s.data.work / "sim",
                   .out = s.data.work / "relion",
                   .quality = relion_quality,
                   .failure = "failed",
                   .may_run = o.run_relion,
                   .skip = have_relion ? std::nullopt : std::optional<std::string>("relion_refine_mpi not found")};
  results.push_back(run_or_reuse(s.data, s.key, relion, o.reuse));
  return results;
}

double per_particle_iteration_ms(double seconds, const Result& r) {
  return r.quality.iterations > 0 ? 1e3 * seconds / (static_cast<double>(r.count) * r.quality.iterations) : 0;
}

void print_table(const std::vector<Result>& results) {
  std::cout << fmt::format("\n{:>4} {:>6} {:>9}  {:<12} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}\n", "box",
                           "A/px", "particles", "program", "iter", "wall s", "CPU s", "wall ms", "CPU ms", "peak MB",
                           "res A", "angle");
  std::cout << fmt::format("{:>4} {:>6} {:>9}  {:<12} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}\n", "", "", "",
                           "", "", "", "", "/p/it", "/p/it", "(tree)", "vs true", "med deg");
  for (const auto& r : results) {
    std::cout << fmt::format("{:>4} {:>6.3g} {:>9}  {:<12} ", r.box, r.pixel_A, r.count,
                             r.program + (r.earlier_build ? " *" : ""));
    if (!r.done()) {
      std::cout << r.state << "\n";
      continue;
    }
    std::cout << fmt::format("{:>4} {:>8.1f} {:>8.1f} {:>8.2f} {:>8.2f} {:>8.0f} {:>7.2f} {:>7.2f}\n",
                             r.quality.iterations, r.cost.wall_s, r.cost.cpu_s,
                             per_particle_iteration_ms(r.cost.wall_s, r), per_particle_iteration_ms(r.cost.cpu_s, r),
                             r.cost.peak_tree_mb, r.quality.res_vs_truth_A, r.quality.median_angle_deg);
  }
  if (std::any_of(results.begin(), results.end(), [](const Result& r) { return r.done() && r.earlier_build; }))
    std::cout << "* cached from an earlier build of tessera_refine_homo (not run again: --relion-only)\n";
}

void print_ratios(const std::vector<Result>& results) {
  std::cout << "\nTessera / RELION on the same particles (per particle-iteration, and total CPU: the cost of the "
               "result):\n";
  for (const auto& rel : results) {
    if (!rel.is_relion() || !rel.done()) continue;
    for (const auto& t : results) {
      if (t.is_relion() || !t.done() || t.box != rel.box || t.count != rel.count) continue;
      std::cout << fmt::format(
          "  box {:>3}, {:>5} particles  {:<11} / RELION  CPU/(p it) {}  wall/(p it) {}  total CPU {}  peak memory {}  "
          "resolution {}  angular error {}\n",
          t.box, t.count, t.program,
          ratio(per_particle_iteration_ms(t.cost.cpu_s, t), per_particle_iteration_ms(rel.cost.cpu_s, rel)),
          ratio(per_particle_iteration_ms(t.cost.wall_s, t), per_particle_iteration_ms(rel.cost.wall_s, rel)),
          ratio(t.cost.cpu_s, rel.cost.cpu_s), ratio(t.cost.peak_tree_mb, rel.cost.peak_tree_mb),
          ratio(t.quality.res_vs_truth_A, rel.quality.res_vs_truth_A),
          ratio(t.quality.median_angle_deg, rel.quality.median_angle_deg));
    }
  }
}

// "x 3.85 (p 1.95)": the factor from a to b and its exponent against the size ratio.
std::string growth(double a, double b, double size_ratio) {
  if (a <= 0 || b <= 0) return "-";
  return fmt::format("x {:.2f} (p {:.2f})", b / a, std::log(b / a) / std::log(size_ratio));
}

void print_growth_row(const Result& a, const Result& b, const std::string& step, double size_ratio) {
  std::cout << fmt::format(
      "  {:<12} {:<28} CPU/(p it) {:<18} wall/(p it) {:<18} peak memory {}\n", a.program, step,
      growth(per_particle_iteration_ms(a.cost.cpu_s, a), per_particle_iteration_ms(b.cost.cpu_s, b), size_ratio),
      growth(per_particle_iteration_ms(a.cost.wall_s, a), per_particle_iteration_ms(b.cost.wall_s, b), size_ratio),
      growth(a.cost.peak_tree_mb, b.cost.peak_tree_mb, size_ratio));
}

// The last done result of `program` at `box` with `count` (any count when 0): with counts in
// increasing order, the largest.
const Result* find_result(const std::vector<Result>& results, const std::string& program, int box, long count) {
  const Result* found = nullptr;
  for (const auto& r : results)
    if (r.done() && r.program == program && r.box == box && (count == 0 || r.count == count)) found = &r;
  return found;
}

// Growth from one box to the next (at the largest particle count both have, else at the largest
// count of each) and from one count to another at the same box. Results come in the order of the
// options: by box, then by increasing count.
void print_growth(const std::vector<Result>& results) {
  std::vector<std::string> programs;
  std::vector<int> boxes;
  for (const auto& r : results) {
    if (!r.done()) continue;
    if (std::find(programs.begin(), programs.end(), r.program) == programs.end()) programs.push_back(r.program);
    if (std::find(boxes.begin(), boxes.end(), r.box) == boxes.end()) boxes.push_back(r.box);
  }
  std::cout << "\nGrowth with box size (figure ~ box^p; at the same particle count where both boxes have one):\n";
  for (const auto& p : programs)
    for (std::size_t i = 1; i < boxes.size(); ++i) {
      const Result *a = find_result(results, p, boxes[i - 1], 0), *b = find_result(results, p, boxes[i], 0);
      for (const auto& r : results) {
        const Result* same_count = find_result(results, p, boxes[i], r.count);
        if (r.done() && r.program == p && r.box == boxes[i - 1] && same_count) {
          a = &r;
          b = same_count;
        }
      }
      if (a && b)
        print_growth_row(*a, *b, fmt::format("box {} -> {} ({} -> {})", a->box, b->box, a->count, b->count),
                         static_cast<double>(b->box) / a->box);
    }
  std::cout << "\nGrowth with particle count at one box (figure ~ count^p; flat: p near 0):\n";
  for (std::size_t i = 0; i < results.size(); ++i)
    for (std::size_t j = i + 1; j < results.size(); ++j) {
      const Result &a = results[i], &b = results[j];
      if (a.done() && b.done() && a.program == b.program && a.box == b.box && b.count > a.count)
        print_growth_row(a, b, fmt::format("box {}: {} -> {}", a.box, a.count, b.count),
                         static_cast<double>(b.count) / a.count);
    }
}

int run_benchmark(int argc, char** argv) {
  Options o;
  try {
    o = parse_options(argc, argv);
  } catch (const std::logic_error& e) {  // std::stoi's
    throw UsageError(std::string("bad number in the options (") + e.what() + ")");
  }
  fs::create_directories(o.work);
  const std::optional<fs::path> source = o.truth ? o.truth : truth_7ddo();
  MrcMap base;
  if (source) {
    base = read_mrc(*source);
    if (base.voxel_A <= 0 || base.data.nx() != base.data.ny() || base.data.nx() != base.data.nz())
      throw UsageError("--truth: " + source->string() + " is not a cubic map with a voxel size");
  } else {  // no shared data: the built-in phantom, made once
    fs::create_directories(o.work / "phantom");
    simulate(o.work / "phantom", default_volume_option(), 1, 1);
    base = read_mrc(o.work / "phantom/sim/truth.mrc");
  }
  std::vector<Result> results;
  for (std::size_t b = 0; b < o.boxes.size(); ++b)
    for (const long count : o.counts[b]) {
      const SimulatedSet s = make_dataset(o, base, source ? source->string() : "phantom", o.boxes[b], count);
      for (auto& r : run_dataset(o, s))
        if (r.state != "not run") results.push_back(std::move(r));
    }
  std::cout << fmt::format("\nTruth: {} ({}^3 at {:.3g} A/px: no signal beyond {:.2f} A at any box)\n",
                           source ? source->string() : "built-in phantom", base.data.nx(), base.voxel_A,
                           2 * base.voxel_A);
  print_table(results);
  print_ratios(results);
  print_growth(results);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tessera::bench::bench_main(argc, argv, run_benchmark); }
