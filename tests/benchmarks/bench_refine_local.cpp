// Benchmark: local refinement of two rigid modules (issue "Local refinement of rigid modules",
// section Benchmark). Not a test: it prints figures.
//
//   bench_refine_local WORKDIR [--box 96] [--particles 1000] [--threads 2] [--snr 0.25]
//                      [--rounds 1] [--iterations 3] [--quick]
//
// Truth: the built-in phantom (tessera_simulate's, seed 11) at 192 A across whatever the box (2 A/px
// at box 96: Nyquist 4 A, finer than the 6 A of relion_7DDO's box), cut across x at 5/8 of the box into
// a large module (62%) and a small one; each module's mask is its own map_mask (12 A, threshold 0.1,
// 3 + 6 A). Particles: tessera_simulate's module mode as the paper's simulation, each module rotated
// about its centre of mass by N(0, 1.67 deg) about a random axis and shifted by N(0, 1 px) per axis,
// SNR 0.25, defocus 1-2.5 um. Consensus: the two half maps reconstructed at the particles' common
// poses (tessera_reconstruct): what a consensus refinement that aligned the particle as a whole
// would give at best, without its own pose error.
//
// Runs (tessera_refine_local): subtraction of the other module on and off without priors, and on with
// Gaussian priors of sigma 2 deg, 3 A and of the defaults, 5 deg, 5 A. Figures per module: resolution against its truth (FSC 0.5 of the half-map
// average and the truth, both multiplied by the module's mask), median angular error of its poses
// against its true poses, and per run wall and CPU seconds and peak memory. Then the cost of the
// paper's problem (58,542 particles of 128 px, two modules) from this run's CPU seconds per particle,
// module and iteration, scaled by (128 / box)^2 for the images' area, on 2 cores, for 3 iterations:
// the goal is at most 30 minutes.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tessera/fsc.hpp"
#include "tessera/geometry.hpp"
#include "tessera/mask.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/simulate.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::bench;

namespace {

struct Settings {
  fs::path work;
  int box = 96, threads = 2, rounds = 1, iterations = 3;
  long particles = 1000;
  double snr = 0.25;
};

Settings parse(int argc, char** argv) {
  if (argc < 2) throw UsageError("usage: bench_refine_local WORKDIR [--box N] [--particles N] [--threads T] ...");
  Settings s;
  s.work = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "--box") s.box = std::stoi(next());
    else if (a == "--particles") s.particles = std::stol(next());
    else if (a == "--threads") s.threads = std::stoi(next());
    else if (a == "--snr") s.snr = std::stod(next());
    else if (a == "--rounds") s.rounds = std::stoi(next());
    else if (a == "--iterations") s.iterations = std::stoi(next());
    else if (a == "--quick") s.box = 64, s.particles = 600;
    else throw UsageError("unknown option " + a);
  }
  if (s.box < 32 || s.box % 2) throw UsageError("--box must be even and at least 32");
  return s;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

double median_angle_deg(const fs::path& a, const fs::path& b) {
  const ParticleSet pa = read_particles_star(a), pb = read_particles_star(b);
  std::vector<double> d;
  for (std::size_t i = 0; i < pa.particles.size(); ++i)
    d.push_back(rotation_distance_deg(euler_to_matrix(pa.particles[i].pose->angles),
                                      euler_to_matrix(pb.particles[i].pose->angles)));
  return median(d);
}

double resolution_against_truth(const fs::path& half_a, const fs::path& half_b, const RealGrid& truth,
                                const RealGrid& mask, double pixel_A) {
  const RealGrid avg = average_maps(read_mrc(half_a).data, read_mrc(half_b).data);
  const double r = resolution_at(masked_fsc(avg, truth, mask), 0.5, avg.nx(), pixel_A).value_or(2 * pixel_A);
  return std::isfinite(r) ? r : avg.nx() * pixel_A;
}

void check(const JobCost& c, const std::string& what, const fs::path& log) {
  if (c.status != 0) throw std::runtime_error(fmt::format("{} failed (status {}), see {}", what, c.status, log.string()));
}

int run(int argc, char** argv) {
  const Settings s = parse(argc, argv);
  fs::create_directories(s.work);
  const double pixel_A = 192.0 / s.box;
  // The truth and its two modules.
  const RealGrid phantom = phantom_volume(s.box, pixel_A, 11);
  const int cut = s.box * 5 / 8;
  RealGrid large(s.box, s.box, s.box), small(s.box, s.box, s.box);
  for (int z = 0; z < s.box; ++z)
    for (int y = 0; y < s.box; ++y)
      for (int x = 0; x < s.box; ++x) (x < cut ? large : small)(x, y, z) = phantom(x, y, z);
  const std::vector<RealGrid> truths{large, small};
  std::vector<RealGrid> masks;
  for (int m = 0; m < 2; ++m) {
    masks.push_back(map_mask(truths[static_cast<std::size_t>(m)], 12.0, pixel_A, 0.1, 3.0, 6.0));
    write_mrc(s.work / fmt::format("module_{}.mrc", m + 1), truths[static_cast<std::size_t>(m)], pixel_A);
    write_mrc(s.work / fmt::format("mask_{}.mrc", m + 1), masks.back(), pixel_A);
  }
  const JobCost sim = run_job(
      fmt::format("{} --out sim --overwrite --module-volumes module_1.mrc,module_2.mrc --count {} --snr {} "
                  "--module-rotation-sigma-deg 1.67 --module-shift-sigma-px 1 --threads {} --seed 42 --quiet",
                  protocol_path("tessera_simulate"), s.particles, s.snr, s.threads),
      s.work, s.work / "sim.log");
  check(sim, "tessera_simulate", s.work / "sim.log");
  const JobCost cons = run_job(fmt::format("{} --out cons --overwrite --particles sim/particles.star --threads {} --quiet",
                                           protocol_path("tessera_reconstruct"), s.threads),
                               s.work, s.work / "cons.log");
  check(cons, "tessera_reconstruct", s.work / "cons.log");

  struct Variant {
    std::string name, options;
  };
  const std::vector<Variant> variants{{"subtracted, no priors", "--priors false"},
                                      {"not subtracted, no priors", "--subtract-other-modules false --priors false"},
                                      {"subtracted, priors 2 deg 3 A", "--prior-rotation-sigma-deg 2 --prior-shift-sigma-A 3"},
                                      {"subtracted, priors 5 deg 5 A (default)", ""}};
  fmt::print("bench_refine_local: box {} at {:.2f} A/px (Nyquist {:.2f} A), {} particles, SNR {}, two modules "
             "(62% / 38% of the phantom), motion 1.67 deg / 1 px; {} round(s) x {} iteration(s), {} threads\n\n",
             s.box, pixel_A, 2 * pixel_A, s.particles, s.snr, s.rounds, s.iterations, s.threads);
  fmt::print("{:<32} {:>22} {:>22} {:>8} {:>8} {:>8}\n", "run", "large: res / angle", "small: res / angle", "wall s",
             "CPU s", "peak MB");
  auto figures = [&](const std::string& name, const std::vector<std::array<fs::path, 3>>& files, const JobCost* c) {
    std::string cells;
    for (int m = 0; m < 2; ++m) {
      const auto& f = files[static_cast<std::size_t>(m)];
      const double res = resolution_against_truth(f[0], f[1], truths[static_cast<std::size_t>(m)],
                                                  masks[static_cast<std::size_t>(m)], pixel_A);
      const double angle = median_angle_deg(f[2], s.work / "sim" / fmt::format("module_{}_poses.star", m + 1));
      cells += fmt::format(" {:>13.2f} A {:>5.2f}\u00b0", res, angle);
    }
    fmt::print("{:<32}{} {:>8.0f} {:>8.0f} {:>8.0f}\n", name, cells, c ? c->wall_s : 0.0, c ? c->cpu_s : 0.0,
               c ? c->peak_tree_mb : 0.0);
  };
  const fs::path cons_dir = s.work / "cons", sim_star = s.work / "sim" / "particles.star";
  figures("consensus (common poses)",
          {{cons_dir / "map_half_A.mrc", cons_dir / "map_half_B.mrc", sim_star},
           {cons_dir / "map_half_A.mrc", cons_dir / "map_half_B.mrc", sim_star}},
          &cons);
  double cpu_per_unit = 0;
  for (std::size_t v = 0; v < variants.size(); ++v) {
    const std::string out = fmt::format("local_{}", v + 1);
    const fs::path log = s.work / (out + ".log");
    const JobCost c = run_job(
        fmt::format("{} --out {} --overwrite --particles sim/particles.star --half-map-A cons/map_half_A.mrc "
                    "--half-map-B cons/map_half_B.mrc --mask mask_1.mrc --more-module-masks mask_2.mrc --rounds {} "
                    "--iterations-per-module {} --threads {} --quiet {}",
                    protocol_path("tessera_refine_local"), out, s.rounds, s.iterations, s.threads,
                    variants[v].options),
        s.work, log);
    check(c, "tessera_refine_local", log);
    const fs::path d = s.work / out;
    figures(variants[v].name,
            {{d / "module_1_half_A.mrc", d / "module_1_half_B.mrc", d / "module_1_particles.star"},
             {d / "module_2_half_A.mrc", d / "module_2_half_B.mrc", d / "module_2_particles.star"}},
            &c);
    if (v == 0) cpu_per_unit = c.cpu_s / (double(s.particles) * 2 * s.rounds * s.iterations);
  }
  // The paper's problem: 58,542 particles of 128 px, two modules, 3 iterations, on 2 cores.
  const double scale = std::pow(128.0 / s.box, 2);
  const double paper_cpu_s = cpu_per_unit * scale * 58542.0 * 2 * 3;
  fmt::print("\npaper's problem size (58,542 particles of 128 px, 2 modules, 3 iterations): {:.3f} CPU-s per particle, "
             "module and iteration here, x {:.2f} for 128 px: {:.0f} CPU-s, {:.1f} min on 2 cores (goal: at most "
             "30 min; the paper: 7.8 h separate search, 36.7 h exhaustive, on 84 cores)\n",
             cpu_per_unit, scale, paper_cpu_s, paper_cpu_s / 2 / 60);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main(argc, argv, run); }
