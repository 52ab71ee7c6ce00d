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
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <string>

#include "bench_common.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_ctf_refine WORKDIR\n");
    return 2;
  }
  try {
    const fs::path work = fs::absolute(argv[1]);
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
