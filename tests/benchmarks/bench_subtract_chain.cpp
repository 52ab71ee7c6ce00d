// bench_subtract_chain: subtraction as a user runs it (issue 17): refine, then
// subtract with the refinement's own maps and poses, against RELION 3.1's
// refinement and relion_particle_subtract on the same particles.
//
//   bench_subtract_chain WORKDIR [--count N] [--threads T] [--no-relion] [--reuse]
//                        [--paths TEXT] [--shells]
//
// Particles: the 7DDO modules (../shared/data/relion_7DDO/ground_truth
// gt_ACE2_x2 and gt_RBD_x2, 64^3 at 3 A/px) simulated by tessera_simulate as
// bench_common's simulate() makes them (SNR 0.1, defocus 1-2.5 um, origins
// sigma 3 A, seed 42) with contrast 1 + 0.2 N(0, 1) per particle; the
// refinements get them without poses, scales or half sets. ACE2 is subtracted,
// the RBD kept (keep mask ground_truth/mask_RBD.mrc, as relion_7DDO's README).
//
// The truth: the removed region is what the mask removes of the true map,
// T = truth * (1 - mask); its noise-free image in particle i, T_i, is the
// engine's forward model at the true pose, CTF and contrast. With X_i the
// particle and Y_i the subtracted image, what was removed is X_i - Y_i and
//   left up to d = sum_i sum_{1 <= |k| <= box px / d} |T_i - (X_i - Y_i)|^2 / sum_i sum |T_i|^2
// over the shells of the images' transforms. Printed per path up to 20, 12
// and 8 A, with each Tessera run's own estimate (subtraction.json
// removed_signal_left_by_band) beside it. --paths runs only the Tessera paths
// whose name contains TEXT (=TEXT: is TEXT); --shells prints, per path and shell, the share
// left and what was subtracted against the truth: b = Re<R, T> / |T|^2 (the
// scale of the true signal in what was subtracted, R = X - Y) and the share of
// R not along T (noise and misfit), so left = (1 - b)^2 + rest. Not a test: it
// prints figures.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/projector.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::bench;

namespace {

const std::vector<double> kBands{20.0, 12.0, 8.0};

struct Args {
  fs::path work;
  long count = 1500;
  int threads = 2;
  bool relion = std::system("command -v relion_refine_mpi >/dev/null 2>&1") == 0;
  bool reuse = false;
  std::string only;  ///< run the Tessera paths whose name contains this
  bool shells = false;
};

Args parse(int argc, char** argv) {
  if (argc < 2)
    throw UsageError(
        "usage: bench_subtract_chain WORKDIR [--count N] [--threads T] [--no-relion] [--reuse] [--paths TEXT] "
        "[--shells]");
  Args a;
  a.work = fs::absolute(argv[1]);
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--count" && i + 1 < argc) a.count = std::stol(argv[++i]);
    else if (k == "--threads" && i + 1 < argc) a.threads = std::stoi(argv[++i]);
    else if (k == "--no-relion") a.relion = false;
    else if (k == "--reuse") a.reuse = true;
    else if (k == "--paths" && i + 1 < argc) a.only = argv[++i];
    else if (k == "--shells") a.shells = true;
    else throw UsageError("unknown option " + k);
  }
  return a;
}

fs::path ground_truth() {
  const char* env = std::getenv("TESSERA_SHARED_DATA");
  return fs::path(env ? env : TESSERA_SHARED_DATA_DIR) / "relion_7DDO" / "ground_truth";
}

/// The refinements' input: the simulated particles without poses, half sets or contrast scales
/// (RELION applies rlnCtfScalefactor where the column is present).
void write_refinement_input(const Dataset& d) {
  ParticleSet input = d.true_poses;
  for (auto& p : input.particles) p.pose.reset(), p.half_set = 0, p.scale = 1;
  input.has_scales = false;
  write_particles_star(d.work / "sim/particles_input.star", input, d.work / "sim");
}

/// Per shell k = 0 .. box/2 of the images' transforms: sum over particles.
struct ShellSums {
  std::vector<double> left, truth, along, removed;  ///< |T - R|^2, |T|^2, Re<R, T>, |R|^2
};

/// The truth's removed region in every particle (true pose, CTF, contrast), as half-complex transforms.
std::vector<ComplexGrid> true_removed(const Dataset& d, const RealGrid& keep_mask) {
  RealGrid removed = d.truth.data;
  for (std::size_t i = 0; i < removed.size(); ++i) removed[i] *= 1.0f - keep_mask[i];
  const Projector projector(removed);
  const OpticsGroup& g = d.true_poses.optics.front();
  std::vector<ComplexGrid> out(d.true_poses.particles.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const Particle& p = d.true_poses.particles[i];
    const RealGrid ctf = model_ctf(p, g, d.box());
    expected_transform(projector, model_pose(*p.pose, d.pixel_A()), &ctf, p.scale, out[i]);
  }
  return out;
}

ComplexGrid transform(RealGrid image) {
  centre_to_corner(image, false);
  return fft_2d(image);
}

/// What the subtraction in `star` (images named by rlnImageOriginalName) left of the truth.
ShellSums left_of(const Dataset& d, const std::vector<ComplexGrid>& truth, const std::vector<ComplexGrid>& originals,
                  const fs::path& star, const fs::path& base) {
  const ParticleSet set = read_particles_star(star, base);
  const int original = set.particle_extra_index("rlnImageOriginalName");
  if (original < 0 || set.particles.size() != truth.size())
    throw std::runtime_error(fmt::format("{}: {} particles, rlnImageOriginalName {}", star.string(),
                                         set.particles.size(), original < 0 ? "missing" : "present"));
  const int n = d.box(), hx = n / 2 + 1;
  ShellSums s{std::vector<double>(hx, 0.0), std::vector<double>(hx, 0.0), std::vector<double>(hx, 0.0),
              std::vector<double>(hx, 0.0)};
  std::map<fs::path, MrcStackReader> readers;
  for (const Particle& p : set.particles) {
    const auto i = static_cast<std::size_t>(ImageRef::parse(p.extra[static_cast<std::size_t>(original)]).index - 1);
    const fs::path stack = set.stack_path(p);
    auto it = readers.find(stack);
    if (it == readers.end()) it = readers.emplace(stack, MrcStackReader(stack)).first;
    const ComplexGrid y = transform(it->second.read(p.image.index));
    for (int ky = 0; ky < n; ++ky)
      for (int kx = 0; kx < hx; ++kx) {
        const std::size_t j = static_cast<std::size_t>(ky) * hx + kx;
        const auto k = static_cast<std::size_t>(std::lround(std::hypot(kx, fourier_index(ky, n))));
        if (k >= static_cast<std::size_t>(hx)) continue;
        const double w = (kx == 0 || kx == n / 2) ? 1.0 : 2.0;
        const std::complex<float> r = originals[i][j] - y[j];
        s.left[k] += w * std::norm(truth[i][j] - r);
        s.truth[k] += w * std::norm(truth[i][j]);
        s.along[k] += w * std::real(std::conj(truth[i][j]) * r);
        s.removed[k] += w * std::norm(r);
      }
  }
  return s;
}

std::vector<double> band_shares(const ShellSums& s, const Dataset& d) {
  std::vector<double> out;
  for (double band : kBands) {
    const auto last = static_cast<std::size_t>(d.box() * d.pixel_A() / band + 1e-9);
    double left = 0, total = 0;
    for (std::size_t k = 1; k <= last && k < s.left.size(); ++k) left += s.left[k], total += s.truth[k];
    out.push_back(left / total);
  }
  return out;
}

/// subtraction.json's estimate at kBands (nullopt for RELION or when absent).
std::optional<std::vector<double>> estimate_of(const fs::path& summary) {
  const auto j = nlohmann::json::parse(read_file(summary), nullptr, false);
  if (j.is_discarded() || !j.contains("removed_signal_left_by_band")) return std::nullopt;
  std::vector<double> out;
  for (double band : kBands)
    for (const auto& b : j["removed_signal_left_by_band"])
      if (std::abs(b["up_to_A"].get<double>() - band) < 1e-6) out.push_back(b["share"].get<double>());
  if (out.size() != kBands.size()) return std::nullopt;
  return out;
}

void print_shells(const std::string& name, const ShellSums& s, const Dataset& d) {
  fmt::print("\n{}: per shell, left, b = Re<R,T>/|T|^2, rest = |R - bT|^2/|T|^2\n", name);
  for (std::size_t k = 1; k < s.left.size(); ++k) {
    const double b = s.along[k] / s.truth[k];
    const double rest = (s.removed[k] - b * b * s.truth[k]) / s.truth[k];
    fmt::print("  shell {:>2} ({:>5.1f} A): left {:>7.4f}  b {:>6.3f}  rest {:>7.4f}\n", k,
               d.box() * d.pixel_A() / static_cast<double>(k), s.left[k] / s.truth[k], b, rest);
  }
}

struct Path {
  std::string name;
  std::vector<double> truth;
  std::optional<std::vector<double>> estimate;
  double wall_s = 0;
};

void print(const std::vector<Path>& paths) {
  fmt::print("\nremoved region's true signal left (share of its power up to the resolution)\n");
  fmt::print("{:<46} {:>7} {:>7} {:>7}   {:>7} {:>7} {:>7}   {:>5} {:>5} {:>5} {:>7}\n", "path", "20 A", "12 A", "8 A",
             "est 20", "est 12", "est 8", "e/t20", "e/t12", "e/t8", "wall s");
  for (const Path& p : paths) {
    std::string line = fmt::format("{:<46} {:>6.2f}% {:>6.2f}% {:>6.2f}%", p.name, 100 * p.truth[0],
                                   100 * p.truth[1], 100 * p.truth[2]);
    if (p.estimate) {
      const auto& e = *p.estimate;
      line += fmt::format("   {:>6.2f}% {:>6.2f}% {:>6.2f}%   {:>5.2f} {:>5.2f} {:>5.2f}", 100 * e[0], 100 * e[1],
                          100 * e[2], e[0] / p.truth[0], e[1] / p.truth[1], e[2] / p.truth[2]);
    } else {
      line += fmt::format("   {:>7} {:>7} {:>7}   {:>5} {:>5} {:>5}", "-", "-", "-", "-", "-", "-");
    }
    fmt::print("{} {:>7.1f}\n", line, p.wall_s);
  }
}

/// The highest run_itNNN_optimiser.star of RELION's run in `dir`.
std::optional<fs::path> last_optimiser(const fs::path& dir) {
  std::optional<fs::path> best;
  int best_it = -1;
  const std::regex re("run_it([0-9]+)_optimiser\\.star");
  if (!fs::exists(dir)) return best;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re) && std::stoi(m[1]) > best_it) best_it = std::stoi(m[1]), best = e.path();
  }
  return best;
}

int run_benchmark(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const fs::path gt = ground_truth(), mask = gt / "mask_RBD.mrc";
  fs::create_directories(a.work);
  const std::string key = fmt::format("7DDO modules, {} particles, contrast sigma 0.2", a.count);
  if (!a.reuse || !simulation_matches(a.work, key)) {
    simulate(a.work, fmt::format("--module-volumes {},{}", (gt / "gt_ACE2_x2.mrc").string(), (gt / "gt_RBD_x2.mrc").string()),
             a.count, a.threads, {0.1, "--scale-sigma 0.2"});
    mark_simulation(a.work, key);
  }
  const Dataset d = prepare_refinement(a.work, RelionGroups::PerMicrograph);
  write_refinement_input(d);

  const fs::path tessera = a.work / "tessera";
  if (!a.reuse || !fs::exists(tessera / "map_half_B.mrc")) {
    fs::remove_all(tessera);
    const JobCost c = run_job(tessera_refine_command("tessera", a.threads, ""), a.work, a.work / "tessera.log");
    if (c.status != 0) throw std::runtime_error("tessera_refine_homo failed, see " + (a.work / "tessera.log").string());
    fmt::print("tessera_refine_homo: {:.0f} s\n", c.wall_s);
  }
  const Quality tq = tessera_quality(tessera, d);
  fmt::print("Tessera refinement: median angle error {:.2f} deg, median shift error {:.2f} A, GSFSC {:.2f} A\n",
             tq.median_angle_deg, tq.median_shift_A, tq.gsfsc_A);

  const RealGrid keep_mask = read_mrc(mask).data;
  const std::vector<ComplexGrid> truth = true_removed(d, keep_mask);
  std::vector<ComplexGrid> originals;
  {
    MrcStackReader reader(a.work / "sim/particles.mrcs");
    for (std::size_t i = 0; i < truth.size(); ++i) originals.push_back(transform(reader.read(static_cast<long>(i) + 1)));
  }
  std::vector<Path> paths;

  if (a.relion) {
    const fs::path relion = a.work / "relion";
    if (!a.reuse || !fs::exists(relion / "run_data.star")) {
      fs::remove_all(relion);
      fs::create_directories(relion);
      const JobCost c = run_job(relion_refine_command(d.pixel_A()), a.work / "sim", a.work / "relion.log");
      if (c.status != 0) throw std::runtime_error("relion_refine_mpi failed, see " + (a.work / "relion.log").string());
    }
    const Quality rq = relion_quality(relion, d);
    fmt::print("RELION refinement: median angle error {:.2f} deg, median shift error {:.2f} A, GSFSC {:.2f} A\n",
               rq.median_angle_deg, rq.median_shift_A, rq.gsfsc_A);
    const auto optimiser = last_optimiser(relion);
    if (!optimiser) throw std::runtime_error("no optimiser.star in " + relion.string());
    fs::remove_all(a.work / "relion_subtract");
    const JobCost c = run_job(mpirun_prefix(3) + fmt::format("relion_particle_subtract_mpi --i ../relion/{} --mask {} "
                                                             "--o ../relion_subtract/",
                                                             optimiser->filename().string(), mask.string()),
                              a.work / "sim", a.work / "relion_subtract.log");
    if (c.status != 0)
      throw std::runtime_error("relion_particle_subtract_mpi failed, see " + (a.work / "relion_subtract.log").string());
    const ShellSums s =
        left_of(d, truth, originals, a.work / "relion_subtract/particles_subtracted.star", a.work / "sim");
    const std::string name = "RELION 3.1.3 (its refinement, particle_subtract)";
    if (a.shells) print_shells(name, s, d);
    paths.push_back({name, band_shares(s, d), std::nullopt, c.wall_s});
  }

  const std::string halves = "--half-map-A tessera/map_half_A.mrc --half-map-B tessera/map_half_B.mrc";
  const std::string pose = "--refine-removed-pose";
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"Tessera map.mrc, one fixed scale", "--map tessera/map.mrc --scale fixed"},
      {"Tessera map.mrc, constant gain", "--map tessera/map.mrc --gain-model constant"},
      {"Tessera map.mrc, best gain + pose", "--map tessera/map.mrc --gain-model best " + pose},
      {"Tessera half maps, constant gain", halves + " --gain-model constant"},
      {"Tessera half maps, linear gain", halves + " --gain-model linear"},
      {"Tessera half maps, best gain", halves + " --gain-model best"},
      {"Tessera half maps, constant gain + pose", halves + " --gain-model constant " + pose},
      {"Tessera half maps, best gain + pose", halves + " --gain-model best " + pose},
      {"Tessera half maps, best + offset + pose", halves + " --gain-model best --fit-offset " + pose},
      {"Tessera half maps, defaults", halves},
      {"Tessera map.mrc, constant gain, no envelope", "--map tessera/map.mrc --gain-model constant --envelope none"},
      {"Tessera half maps, constant gain, no envelope", halves + " --gain-model constant --envelope none"},
  };
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const bool exact = !a.only.empty() && a.only.front() == '=';
    if (exact ? runs[r].first != a.only.substr(1) : runs[r].first.find(a.only) == std::string::npos) continue;
    const std::string out = fmt::format("subtract_{}", r);
    fs::remove_all(a.work / out);
    const JobCost c = run_job(fmt::format("{} --out {} --particles tessera/particles.star --mask {} {} --threads {}",
                                          protocol_path("tessera_subtract"), out, mask.string(), runs[r].second,
                                          a.threads),
                              a.work, a.work / (out + ".log"));
    if (c.status != 0) {
      fmt::print("{}: failed, see {}\n", runs[r].first, (a.work / (out + ".log")).string());
      continue;
    }
    const ShellSums s = left_of(d, truth, originals, a.work / out / "particles_subtracted.star", a.work / out);
    if (a.shells) print_shells(runs[r].first, s, d);
    paths.push_back({runs[r].first, band_shares(s, d), estimate_of(a.work / out / "subtraction.json"), c.wall_s});
  }
  fmt::print("\n{} particles, box {} at {} A/px; ACE2 subtracted, keep mask {}\n", d.true_poses.particles.size(),
             d.box(), d.pixel_A(), mask.string());
  print(paths);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main(argc, argv, run_benchmark); }
