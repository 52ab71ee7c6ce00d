// bench_subtract: how much of ACE2 is left after subtracting it from simulated
// 7DDO particles (ACE2 + RBD) whose contrast varies from particle to particle.
//
// Particles: the two module maps of ../shared/data/relion_7DDO/ground_truth
// (64^3, 3 A/px) projected with tessera's Simulator: uniform orientations,
// origins sigma 3 A, defocus 1-2.5 um (100 particles per micrograph), per-
// particle contrast 1 + 0.2 N(0,1), white noise at SNR 0.1. The same
// simulator with ACE2 alone, same seed, gives each particle's noise-free ACE2
// image A_i (contrast, pose and CTF drawn identically), so after subtracting
// R_i from X_i the ACE2 signal left is A_i - R_i, and
//     ACE2 left = sum_i |A_i - R_i|^2 / sum_i |A_i|^2   (whole images).
// The subtracted map is the truth (gt_ACE2 + gt_RBD) split by a keep mask, so
// what is left comes from the contrast and from the mask edges ("true scale"
// shows the edges alone; the fixed scale 1 is the mean contrast, the best
// single scale). Three keep masks:
//   share:     the RBD's share of the density, RBD+ / (ACE2+ + RBD+) (what
//              chain-wise maps of a model give): edges cost ~0.2% of ACE2;
//   tight:     the RBD above 10% of its peak, soft edge 2 px (~0.9%);
//   mask_RBD:  ground_truth/mask_RBD.mrc (README step 4: 2 px extension and a
//              4 px soft edge, 18 A), which holds 13% of ACE2's power.
//
// With relion_refine and relion_particle_subtract on the PATH (Debian's relion
// 3.1.3), the same particles (written without rlnCtfScalefactor, as a
// refinement would leave them: RELION applies that column when present) are
// subtracted by RELION with the same map and masks: relion_refine --skip_align
// --iter 1 makes the optimiser files, its class map is replaced by the truth.
//
// Usage: bench_subtract [--count N] [--seed S] [--snr X] [--threads T]
//                       [--data DIR] [--keep DIR] [--no-relion]
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tessera/mask.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/simulate.hpp"
#include "tessera/subtract.hpp"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Args {
  long count = 1000;
  std::uint64_t seed = 7;
  double snr = 0.1;
  int threads = 2;
  fs::path data;
  std::optional<fs::path> keep;
  bool relion = true;
};

Args parse(int argc, char** argv) {
  Args a;
  if (const char* env = std::getenv("TESSERA_SHARED_DATA"))
    a.data = env;
  else
    a.data = TESSERA_SHARED_DATA_DIR;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(k + " needs a value");
      return argv[++i];
    };
    if (k == "--count")
      a.count = std::stol(next());
    else if (k == "--seed")
      a.seed = std::stoull(next());
    else if (k == "--snr")
      a.snr = std::stod(next());
    else if (k == "--threads")
      a.threads = std::stoi(next());
    else if (k == "--data")
      a.data = next();
    else if (k == "--keep")
      a.keep = fs::path(next());
    else if (k == "--no-relion")
      a.relion = false;
    else
      throw std::invalid_argument("unknown option " + k);
  }
  return a;
}

struct Data {
  std::vector<RealGrid> images, ace2;  // noisy particles; noise-free ACE2 alone
  std::vector<Particle> particles;
  OpticsGroup optics;
  RealGrid full;
  std::vector<std::pair<std::string, RealGrid>> keep_masks;  // name, mask of the RBD
  double pixel_A = 3;
};

// RBD+ / (ACE2+ + RBD+), 0 where neither is positive.
RealGrid density_share(const RealGrid& mine, const RealGrid& other) {
  RealGrid m(mine.nx(), mine.ny(), mine.nz());
  for (std::size_t i = 0; i < m.size(); ++i) {
    const float a = std::max(0.0f, mine[i]), b = std::max(0.0f, other[i]);
    m[i] = a + b > 0 ? a / (a + b) : 0.0f;
  }
  return m;
}

SimulationOptions simulation(const Args& a) {
  SimulationOptions o;
  o.count = a.count;
  o.pixel_A = 3.0;
  o.seed = a.seed;
  o.defocus_min_A = 10000;
  o.defocus_max_A = 25000;
  o.astigmatism_max_A = 600;
  o.scale_sigma = 0.2;
  o.origin_sigma_A = 3;
  o.snr = a.snr;
  return o;
}

template <class F>
void parallel_for(long n, int threads, F&& f) {
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (long i = t; i < n; i += threads) f(i);
    });
  for (long i = 0; i < n; i += threads) f(i);
  for (auto& th : pool) th.join();
}

Data simulate(const Args& a) {
  const fs::path gt = a.data / "relion_7DDO" / "ground_truth";
  const RealGrid ace2 = read_mrc(gt / "gt_ACE2_x2.mrc").data, rbd = read_mrc(gt / "gt_RBD_x2.mrc").data;
  Data d;
  d.full = ace2;
  for (std::size_t i = 0; i < d.full.size(); ++i) d.full[i] += rbd[i];
  const float peak = *std::max_element(rbd.values().begin(), rbd.values().end());
  d.keep_masks = {{"share", density_share(rbd, ace2)},
                  {"tight", threshold_mask(rbd, 0.1 * peak, 0, 2)},
                  {"mask_RBD", read_mrc(gt / "mask_RBD.mrc").data}};
  const SimulationOptions opt = simulation(a);
  SimulationOptions alone = opt;
  alone.snr.reset();
  const Simulator both({ace2, rbd}, opt), only_ace2({ace2}, alone);
  d.optics = both.optics();
  d.images.resize(a.count);
  d.ace2.resize(a.count);
  d.particles.resize(a.count);
  parallel_for(a.count, a.threads, [&](long i) {
    d.particles[i] = both.make(i, d.images[i]).particle;
    only_ace2.make(i, d.ace2[i]);
  });
  return d;
}

double power(const RealGrid& g) {
  double s = 0;
  for (float v : g.values()) s += double(v) * v;
  return s;
}

// sum |A_i - (X_i - Y_i)|^2 / sum |A_i|^2
double ace2_left(const Data& d, const std::vector<RealGrid>& subtracted) {
  double left = 0, total = 0;
  for (std::size_t i = 0; i < subtracted.size(); ++i) {
    for (std::size_t j = 0; j < d.ace2[i].size(); ++j) {
      const double removed = double(d.images[i][j]) - subtracted[i][j];
      left += (d.ace2[i][j] - removed) * (d.ace2[i][j] - removed);
    }
    total += power(d.ace2[i]);
  }
  return left / total;
}

struct Outcome {
  double left = 0;
  SubtractSummary summary;
  double seconds = 0;
};

Outcome run_tessera(const Data& d, const MapRegions& regions, const SubtractOptions& opt, int threads,
                    bool true_scales = false) {
  const auto t0 = std::chrono::steady_clock::now();
  const Subtractor sub({regions}, d.pixel_A, opt);
  std::vector<RealGrid> out = d.images;
  std::vector<SubtractResult> results(out.size());
  parallel_for(static_cast<long>(out.size()), threads, [&](long i) {
    Particle p = d.particles[i];
    if (!true_scales) p.scale = 1;  // what a refinement would know
    results[i] = sub.subtract(out[i], p, d.optics);
  });
  Outcome o;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  o.left = ace2_left(d, out);
  o.summary = summarize(results);
  return o;
}

int shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool on_path(const std::string& program) {
  return shell(fmt::format("command -v {} >/dev/null 2>&1", program)) == 0;
}

// Writes the particles (contrast scale 1, as after a refinement) for RELION.
void write_inputs(const Data& d, const fs::path& dir) {
  fs::create_directories(dir);
  MrcStackWriter stack(dir / "particles.mrcs", d.full.nx(), d.full.nx(), d.pixel_A);
  for (const auto& img : d.images) stack.append(img);
  stack.finish();
  ParticleSet set;
  set.optics.push_back(d.optics);
  set.particles = d.particles;
  for (std::size_t i = 0; i < set.particles.size(); ++i) {
    set.particles[i].image = ImageRef{static_cast<long>(i) + 1, "particles.mrcs"};
    set.particles[i].scale = 1;
  }
  set.base_dir = dir;
  write_particles_star(dir / "particles.star", set, dir);
  write_mrc(dir / "truth.mrc", d.full, d.pixel_A);
  for (const auto& [name, mask] : d.keep_masks) write_mrc(dir / ("keep_" + name + ".mrc"), mask, d.pixel_A);
}

// relion_refine --skip_align --iter 1 on the particles (for the optimiser
// files relion_particle_subtract reads), then the truth as its class map.
bool prepare_relion(const Data& d, const fs::path& dir, int threads) {
  write_inputs(d, dir);
  fs::create_directories(dir / "Refine");
  if (shell(fmt::format("cd '{}' && relion_refine --i particles.star --o Refine/run --ref truth.mrc --firstiter_cc "
                        "--ini_high 60 --iter 1 --K 1 --skip_align --ctf --ctf_corrected_ref "
                        "--particle_diameter 180 --pad 2 --j {} --dont_combine_weights_via_disc "
                        ">Refine/log.txt 2>&1",
                        dir.string(), threads)) != 0)
    return false;
  write_mrc(dir / "Refine" / "run_it001_class001.mrc", d.full, d.pixel_A);
  // RELION projects the class map only up to the model's current image size
  // (26 px after one iteration at 60 A); a converged refinement ends at the
  // full box, so set it to that.
  const fs::path model = dir / "Refine" / "run_it001_model.star";
  std::ifstream in(model);
  std::string text, line;
  while (std::getline(in, line))
    text += (line.rfind("_rlnCurrentImageSize", 0) == 0 ? fmt::format("_rlnCurrentImageSize {}", d.full.nx()) : line) +
            "\n";
  in.close();
  std::ofstream(model) << text;
  return true;
}

// relion_particle_subtract with keep mask keep_<mask>.mrc; nullopt when it fails.
std::optional<Outcome> run_relion(const Data& d, const fs::path& dir, const std::string& mask) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = "Subtract_" + mask;
  if (shell(fmt::format("cd '{}' && relion_particle_subtract --i Refine/run_it001_optimiser.star "
                        "--mask keep_{}.mrc --o {}/ >{}.log 2>&1",
                        dir.string(), mask, out, out)) != 0)
    return std::nullopt;
  Outcome o;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ParticleSet set = read_particles_star(dir / out / "particles_subtracted.star", dir);
  const int original = set.particle_extra_index("rlnImageOriginalName");
  if (original < 0 || set.particles.size() != d.images.size()) return std::nullopt;
  std::vector<RealGrid> subtracted(d.images.size());
  std::map<fs::path, MrcStackReader> readers;
  for (const Particle& p : set.particles) {
    const long i = ImageRef::parse(p.extra[static_cast<std::size_t>(original)]).index - 1;
    const fs::path stack = set.stack_path(p);
    auto it = readers.find(stack);
    if (it == readers.end()) it = readers.emplace(stack, MrcStackReader(stack)).first;
    subtracted[static_cast<std::size_t>(i)] = it->second.read(p.image.index);
  }
  o.left = ace2_left(d, subtracted);
  return o;
}

void print(const std::string& what, const Outcome& o, bool estimate = true) {
  std::string line = fmt::format("  {:<44} ACE2 left {:6.2f} %", what, 100 * o.left);
  if (estimate)
    line += fmt::format("   (its own estimate {:5.2f} %, scale {:.3f} +- {:.3f})", 100 * o.summary.left_fraction,
                        o.summary.scale_mean, o.summary.scale_sd);
  fmt::print("{}   {:.2f} s\n", line, o.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto t0 = std::chrono::steady_clock::now();
    const Data d = simulate(a);
    fmt::print(
        "bench_subtract: {} particles of 7DDO (ACE2 + RBD), 64^3 at 3 A/px, contrast sigma 0.2, SNR {}, "
        "seed {}, {} threads (simulated in {:.1f} s)\n",
        a.count, a.snr, a.seed, a.threads,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    SubtractOptions fit, separate, fixed, oracle;
    separate.fit_model = FitModel::Separate;
    fixed.scale_mode = ScaleMode::Fixed;
    oracle.scale_mode = ScaleMode::Refinement;
    for (const auto& [name, mask] : d.keep_masks) {
      const MapRegions regions = split_keep(d.full, mask);
      fmt::print("keep mask '{}' (subtract map * (1 - mask)):\n", name);
      const Outcome o_fit = run_tessera(d, regions, fit, a.threads);
      print("fitted scale (whole particle)", o_fit);
      if (name == "share") print("fitted scale (kept region free)", run_tessera(d, regions, separate, a.threads));
      const Outcome o_fixed = run_tessera(d, regions, fixed, a.threads);
      print("one fixed scale (1 = mean contrast)", o_fixed);
      print("true scale (mask edges only)", run_tessera(d, regions, oracle, a.threads, true), false);
      fmt::print("  fixed / fitted: {:.1f}x\n", o_fixed.left / o_fit.left);
    }
    if (!a.relion) return 0;
    if (!on_path("relion_refine") || !on_path("relion_particle_subtract")) {
      fmt::print("relion_particle_subtract: not installed, skipped\n");
      return 0;
    }
    const fs::path dir = a.keep ? *a.keep : fs::temp_directory_path() / fmt::format("bench_subtract_{}", ::getpid());
    bool ok = prepare_relion(d, dir, a.threads);
    for (const std::string mask : {"share", "mask_RBD"}) {
      const auto relion = ok ? run_relion(d, dir, mask) : std::nullopt;
      if (relion) print(fmt::format("relion_particle_subtract, keep mask '{}'", mask), *relion, false);
      ok = ok && relion;
    }
    if (!ok) fmt::print("relion_particle_subtract: failed, see {}\n", dir.string());
    if (!a.keep && ok) fs::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << "\n";
    return 1;
  }
}
