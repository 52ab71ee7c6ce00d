// bench_ctf_refine WORKDIR: per-particle defocus refinement against RELION 3.1's
// relion_ctf_refine on the same particles. Not a test: it prints figures.
//
// tessera_simulate makes 1,000 particles of the built-in phantom at box 128,
// 1.5 A/px, SNR 0.1, defocus 1-2.5 um (50 particles per micrograph), with
// per-particle defocus errors of sigma 300 A; particles.star keeps the
// micrographs' (wrong) values, particles_truth.star the true ones. Both
// programs get the true poses and the true map (RELION through a postprocess
// of the truth as both halves, with the truth's mask). Printed: median
// |defocus error| before and after for both, and the resolution against the
// truth (FSC 0.5 of tessera_reconstruct's map) before and after.
//
// bench_ctf_refine WORKDIR magnification: anisotropic magnification against relion_ctf_refine
// --fit_aniso (magnification_case below).
//
// bench_ctf_refine WORKDIR aberrations: beam tilt, trefoil and tetrafoil against relion_ctf_refine
// --fit_beamtilt, --odd_aberr_max_n, --fit_aberr (aberrations_case below).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <array>
#include <numbers>
#include <optional>
#include <string>

#include "bench_common.hpp"
#include "tessera/fsc.hpp"
#include "tessera/magnification.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::bench;

namespace {

double median_abs_error(const fs::path& star, const ParticleSet& truth) {
  const ParticleSet set = read_particles_star(star);
  std::vector<double> e;
  for (std::size_t i = 0; i < set.particles.size(); ++i)
    e.push_back(std::abs(set.particles[i].defocus_u_A - truth.particles[i].defocus_u_A));
  std::nth_element(e.begin(), e.begin() + e.size() / 2, e.end());
  return e[e.size() / 2];
}

// FSC 0.5 against the truth of tessera_reconstruct's map of `star`'s particles.
double resolution_vs_truth(const fs::path& work, const fs::path& star, const std::string& name) {
  const fs::path out = work / ("rec_" + name);
  const JobCost c = run_job(fmt::format("{} --particles {} --out {} --overwrite --threads 2 --quiet",
                                        protocol_path("tessera_reconstruct"), star.string(), out.string()),
                            work, work / ("rec_" + name + ".log"));
  if (c.status != 0) throw std::runtime_error("tessera_reconstruct failed for " + name);
  const MrcMap truth = read_mrc(work / "sim/truth.mrc"), map = read_mrc(out / "map.mrc");
  return resolution_at(fsc(map.data, truth.data), 0.5, map.data.nx(), truth.voxel_A).value_or(2 * truth.voxel_A);
}

// The median over particles of the largest difference, over directions, between `star`'s defocus and the
// truth's: dz(a) = (U + V)/2 + (U - V)/2 cos 2(a - angle), so the largest is |mean difference| +
// |difference of the astigmatism vectors (U - V)/2 (cos 2 angle, sin 2 angle)|. A U/V swap with the angle
// turned by 90 degrees (RELION writes either) is no difference.
double median_defocus_error(const fs::path& star, const ParticleSet& truth) {
  const ParticleSet set = read_particles_star(star);
  const auto astig = [](const Particle& p) {
    const double a = 2 * p.defocus_angle_deg * std::numbers::pi / 180, h = (p.defocus_u_A - p.defocus_v_A) / 2;
    return std::array<double, 2>{h * std::cos(a), h * std::sin(a)};
  };
  std::vector<double> e;
  for (std::size_t i = 0; i < set.particles.size(); ++i) {
    const Particle &p = set.particles[i], &t = truth.particles[i];
    const auto a = astig(p), b = astig(t);
    e.push_back(std::abs((p.defocus_u_A + p.defocus_v_A - t.defocus_u_A - t.defocus_v_A) / 2) +
                std::hypot(a[0] - b[0], a[1] - b[1]));
  }
  std::nth_element(e.begin(), e.begin() + e.size() / 2, e.end());
  return e[e.size() / 2];
}

std::string matrix_text(const Mat2& m) {
  const MagnificationSummary s = summarize_magnification(m);
  return fmt::format("[[{:.5f}, {:.5f}], [{:.5f}, {:.5f}]]: anisotropy {:.3f}% along {:.1f} deg, mean {:.4f}", m[0],
                     m[1], m[2], m[3], 100 * s.anisotropy, s.major_angle_deg, s.mean);
}

double largest_entry_error(const Mat2& a, const Mat2& b) {
  double e = 0;
  for (std::size_t k = 0; k < 4; ++k) e = std::max(e, std::abs(a[k] - b[k]));
  return e;
}

// bench_ctf_refine WORKDIR magnification: 1,000 particles of the built-in phantom, box 128 at
// 1.5 A/px, SNR 0.1, defocus 1-2.5 um, made with a 2% anisotropic magnification along 30 deg;
// particles.star has the identity and the defoci the images show, particles_truth.star the true
// matrix. Both programs get the true map and poses: tessera_ctf_refine --fit-magnification and
// relion_ctf_refine --fit_aniso (its default re-expression of the astigmatism, --kmin_mag 20).
// Printed: the true matrix, each program's, the largest entry error, wall times, and the resolution
// against the truth of tessera_reconstruct's maps with each matrix (FSC 0.5).
int magnification_case(const fs::path& work) {
  fs::create_directories(work);
  simulate(work, "--phantom-box-px 128 --pixel-A 1.5", 1000, 2,
           {.snr = 0.1,
            .extra = "--anisotropic-magnification-percent 2 --anisotropy-angle-deg 30 --particles-per-micrograph 50"});
  const ParticleSet truth = read_particles_star(work / "sim/particles_truth.star");
  const Mat2 t = truth.optics.front().mag_matrix;
  const fs::path given = work / "sim/particles.star";
  const JobCost c = run_job(fmt::format("{} --particles {} --map {} --out tessera_mag --overwrite --threads 2 "
                                        "--fit-magnification true --refine-defocus false",
                                        protocol_path("tessera_ctf_refine"), given.string(),
                                        (work / "sim/truth.mrc").string()),
                            work, work / "tessera_mag.log");
  if (c.status != 0) throw std::runtime_error("tessera_ctf_refine failed, see tessera_mag.log");
  const Mat2 m = read_particles_star(work / "tessera_mag/particles.star").optics.front().mag_matrix;
  std::printf("truth:              %s\n", matrix_text(t).c_str());
  std::printf("tessera_ctf_refine: %s; largest entry error %.5f; %.1f s wall, %.1f s CPU\n", matrix_text(m).c_str(),
              largest_entry_error(m, t), c.wall_s, c.cpu_s);
  std::optional<fs::path> relion_star;
  if (std::system("command -v relion_ctf_refine >/dev/null 2>&1") == 0) {
    fs::copy_file(work / "sim/truth.mrc", work / "sim/truth_half1_unfil.mrc", fs::copy_options::overwrite_existing);
    fs::copy_file(work / "sim/truth.mrc", work / "sim/truth_half2_unfil.mrc", fs::copy_options::overwrite_existing);
    const JobCost r = run_job(
        "mkdir -p PostProcess CtfRefineMag && relion_postprocess --i truth_half1_unfil.mrc --mask truth_mask.mrc "
        "--angpix 1.5 --randomize_at_A 3 --o PostProcess/pp && relion_ctf_refine --i particles.star --f "
        "PostProcess/pp.star --o CtfRefineMag/ --fit_aniso --kmin_mag 20 --j 2",
        work / "sim", work / "relion_mag.log");
    if (r.status == 0) {
      relion_star = work / "sim/CtfRefineMag/particles_ctf_refine.star";
      const Mat2 rm = read_particles_star(*relion_star).optics.front().mag_matrix;
      std::printf("relion_ctf_refine:  %s; largest entry error %.5f; %.1f s wall\n", matrix_text(rm).c_str(),
                  largest_entry_error(rm, t), r.wall_s);
    } else {
      std::printf("relion_ctf_refine failed: see %s\n", (work / "relion_mag.log").c_str());
    }
  }
  // The defoci the programs re-expressed in their fitted frames, against the true ones.
  std::printf("median largest defocus error over directions: given %.1f A, Tessera %.1f A",
              median_defocus_error(given, truth), median_defocus_error(work / "tessera_mag/particles.star", truth));
  if (relion_star) std::printf(", RELION %.1f A", median_defocus_error(*relion_star, truth));
  std::printf("\n");
  std::printf("resolution vs truth (FSC 0.5): identity %.2f A, Tessera's matrix %.2f A, true matrix %.2f A",
              resolution_vs_truth(work, given, "identity"),
              resolution_vs_truth(work, work / "tessera_mag/particles.star", "tessera"),
              resolution_vs_truth(work, work / "sim/particles_truth.star", "truth"));
  if (relion_star) std::printf(", RELION's matrix %.2f A", resolution_vs_truth(work, *relion_star, "relion"));
  std::printf("\n");
  return 0;
}

// The aberrations of an optics group as text: beam tilt, trefoil (odd 2, 5), tetrafoil (even 4, 8).
std::string aberration_text(const OpticsGroup& g) {
  const auto at = [](const std::vector<double>& v, std::size_t i) { return i < v.size() ? v[i] : 0.0; };
  return fmt::format("beam tilt ({:.3f}, {:.3f}) mrad, trefoil ({:.2f}, {:.2f}), tetrafoil ({:.2f}, {:.2f})",
                     g.beam_tilt_x_mrad, g.beam_tilt_y_mrad, at(g.odd_zernike, 2), at(g.odd_zernike, 5),
                     at(g.even_zernike, 4), at(g.even_zernike, 8));
}

// One aberration run: simulate into work/sim with `aberrations`, fit with both programs, print.
void aberration_run(const fs::path& work, const std::string& aberrations, const std::string& tessera_fit,
                    const std::string& relion_fit, bool resolutions) {
  fs::create_directories(work);
  simulate(work, "--phantom-box-px 128 --pixel-A 1.5", 1000, 2,
           {.snr = 0.1, .extra = aberrations + " --particles-per-micrograph 50"});
  const ParticleSet truth = read_particles_star(work / "sim/particles_truth.star");
  const fs::path given = work / "sim/particles.star";
  const JobCost c = run_job(fmt::format("{} --particles {} --map {} --out tessera_ab --overwrite --threads 2 "
                                        "--refine-defocus false {}",
                                        protocol_path("tessera_ctf_refine"), given.string(),
                                        (work / "sim/truth.mrc").string(), tessera_fit),
                            work, work / "tessera_ab.log");
  if (c.status != 0) throw std::runtime_error("tessera_ctf_refine failed, see tessera_ab.log");
  const fs::path tessera_star = work / "tessera_ab/particles.star";
  std::printf("truth:              %s\n", aberration_text(truth.optics.front()).c_str());
  const auto summary = nlohmann::json::parse(read_file(work / "tessera_ab/defocus_change.json"));
  const auto& se = summary["aberrations"]["groups"][0]["odd"]["beam_tilt_se_mrad"];
  std::printf("tessera_ctf_refine: %s; tilt standard error (%.3f, %.3f) mrad; %.1f s wall, %.1f s CPU\n",
              aberration_text(read_particles_star(tessera_star).optics.front()).c_str(), se[0].get<double>(),
              se[1].get<double>(), c.wall_s, c.cpu_s);
  std::optional<fs::path> relion_star;
  if (std::system("command -v relion_ctf_refine >/dev/null 2>&1") == 0) {
    fs::copy_file(work / "sim/truth.mrc", work / "sim/truth_half1_unfil.mrc", fs::copy_options::overwrite_existing);
    fs::copy_file(work / "sim/truth.mrc", work / "sim/truth_half2_unfil.mrc", fs::copy_options::overwrite_existing);
    const JobCost r = run_job(
        "mkdir -p PostProcess CtfRefineAb && relion_postprocess --i truth_half1_unfil.mrc --mask truth_mask.mrc "
        "--angpix 1.5 --randomize_at_A 3 --o PostProcess/pp && relion_ctf_refine --i particles.star --f "
        "PostProcess/pp.star --o CtfRefineAb/ --j 2 " + relion_fit,
        work / "sim", work / "relion_ab.log");
    if (r.status == 0) {
      relion_star = work / "sim/CtfRefineAb/particles_ctf_refine.star";
      std::printf("relion_ctf_refine:  %s; %.1f s wall\n",
                  aberration_text(read_particles_star(*relion_star).optics.front()).c_str(), r.wall_s);
    } else {
      std::printf("relion_ctf_refine failed: see %s\n", (work / "relion_ab.log").c_str());
    }
  }
  if (!resolutions) return;
  // tessera_reconstruct reads each set's aberrations (the reader corrects the odd ones, the CTF has the even).
  // At this SNR and number of particles the maps reach 6 A, where the aberrations' phases are below
  // 0.2 rad: the figure shows that every set reconstructs, not a difference (docs/ctf_refine.md).
  std::printf("resolution vs truth (FSC 0.5): none %.2f A, Tessera's %.2f A, true %.2f A",
              resolution_vs_truth(work, given, "none"), resolution_vs_truth(work, tessera_star, "tessera"),
              resolution_vs_truth(work, work / "sim/particles_truth.star", "truth"));
  if (relion_star) std::printf(", RELION's %.2f A", resolution_vs_truth(work, *relion_star, "relion"));
  std::printf("\n");
}

// bench_ctf_refine WORKDIR aberrations: 1,000 particles of the built-in phantom, box 128 at 1.5 A/px,
// SNR 0.1, defocus 1-2.5 um, true map and poses for both programs. (1) beam tilt (0.5, -0.3) mrad:
// tessera_ctf_refine --fit-beam-tilt against relion_ctf_refine --fit_beamtilt (--kmin_tilt 20);
// (2) the same tilt with trefoil (20, -12 rad A^3) and tetrafoil (-40, 60 rad A^4): --fit-odd
// --fit-even against --fit_beamtilt --odd_aberr_max_n 3 --fit_aberr, and the resolution against the
// truth of tessera_reconstruct's maps with no, Tessera's, RELION's and the true aberrations.
int aberrations_case(const fs::path& work) {
  const std::string tilt = "--beam-tilt-x-mrad 0.5 --beam-tilt-y-mrad -0.3";
  std::printf("beam tilt alone\n");
  aberration_run(work / "tilt", tilt, "--fit-beam-tilt", "--fit_beamtilt --kmin_tilt 20", false);
  std::printf("beam tilt, trefoil and tetrafoil\n");
  aberration_run(work / "odd_even",
                 tilt + " --odd-zernike 0,0,20,0,0,-12 --even-zernike 0,0,0,0,-40,0,0,0,60",
                 "--fit-odd --fit-even", "--fit_beamtilt --kmin_tilt 20 --odd_aberr_max_n 3 --fit_aberr", true);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_ctf_refine WORKDIR [magnification | aberrations]\n");
    return 2;
  }
  try {
    const fs::path work = fs::absolute(argv[1]);
    if (argc > 2 && std::string(argv[2]) == "magnification") return magnification_case(work);
    if (argc > 2 && std::string(argv[2]) == "aberrations") return aberrations_case(work);
    fs::create_directories(work);
    simulate(work, "--phantom-box-px 128 --pixel-A 1.5", 1000, 2,
             {.snr = 0.1, .extra = "--defocus-error-sigma-A 300 --particles-per-micrograph 50"});
    const ParticleSet truth = read_particles_star(work / "sim/particles_truth.star");
    const fs::path given = work / "sim/particles.star";
    const JobCost t = run_job(fmt::format("{} --particles {} --map {} --out tessera_ctf --overwrite --threads 2",
                                          protocol_path("tessera_ctf_refine"), given.string(),
                                          (work / "sim/truth.mrc").string()),
                              work, work / "tessera_ctf.log");
    if (t.status != 0) throw std::runtime_error("tessera_ctf_refine failed, see tessera_ctf.log");
    std::printf("median |defocus error| before: %.1f A\n", median_abs_error(given, truth));
    std::printf("tessera_ctf_refine: median |defocus error| %.1f A, %.1f s wall, %.1f s CPU\n",
                median_abs_error(work / "tessera_ctf/particles.star", truth), t.wall_s, t.cpu_s);
    std::printf("resolution vs truth (FSC 0.5): before %.2f A, Tessera after %.2f A, true defoci %.2f A\n",
                resolution_vs_truth(work, given, "before"),
                resolution_vs_truth(work, work / "tessera_ctf/particles.star", "tessera"),
                resolution_vs_truth(work, work / "sim/particles_truth.star", "truth"));
    if (std::system("command -v relion_ctf_refine >/dev/null 2>&1") == 0) {
      // RELION reads its reference and FSC from a postprocess: the truth as both halves (their FSC is 1
      // everywhere, so the phase randomization is put at Nyquist: --randomize_at_A). Defocus per
      // particle, the rest fixed (--fit_mode fpfff), as tessera_ctf_refine.
      fs::copy_file(work / "sim/truth.mrc", work / "sim/truth_half1_unfil.mrc", fs::copy_options::overwrite_existing);
      fs::copy_file(work / "sim/truth.mrc", work / "sim/truth_half2_unfil.mrc", fs::copy_options::overwrite_existing);
      const JobCost r = run_job(
          "mkdir -p PostProcess CtfRefine && relion_postprocess --i truth_half1_unfil.mrc --mask truth_mask.mrc "
          "--angpix 1.5 --randomize_at_A 3 --o PostProcess/pp && relion_ctf_refine --i particles.star --f PostProcess/pp.star --o CtfRefine/ --fit_defocus "
          "--kmin_defocus 20 --fit_mode fpfff --j 2",
          work / "sim", work / "relion_ctf.log");
      if (r.status == 0)
        std::printf("relion_ctf_refine: median |defocus error| %.1f A, %.1f s wall; resolution vs truth after %.2f A\n",
                    median_abs_error(work / "sim/CtfRefine/particles_ctf_refine.star", truth), r.wall_s,
                    resolution_vs_truth(work, work / "sim/CtfRefine/particles_ctf_refine.star", "relion"));
      else
        std::printf("relion_ctf_refine failed: see %s\n", (work / "relion_ctf.log").c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ERROR: %s\n", e.what());
    return 1;
  }
  return 0;
}
