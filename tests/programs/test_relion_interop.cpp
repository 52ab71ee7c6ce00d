// Tessera against RELION 3.1 (Debian's relion package): the same forward
// model as relion_project, the same reconstruction as relion_reconstruct, and
// files RELION reads. Skipped when RELION (or ../shared/data) is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "run_programs.hpp"
#include "tessera/ctf.hpp"
#include "tessera/fft.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/projector.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;

namespace tessera {
namespace {

using test::on_path;
using test::run_command;
using test::run_program;
using test::RunResult;
using test::shell_quote;
using test::TempDir;

// Lowest FSC over shells 1 .. 0.8 * Nyquist.
double min_fsc_to_08_nyquist(const std::vector<double>& curve) {
  const int last = static_cast<int>(0.8 * (static_cast<int>(curve.size()) - 1));
  double m = 1;
  for (int k = 1; k <= last; ++k) m = std::min(m, curve[k]);
  return m;
}

// relion_project made relion_7DDO/Particles from gt_full_x2.mrc with white
// noise of sigma 1: regressing each particle on Tessera's noise-free image
// (projector + CTF + origin) must give slope 1 and residual variance 1 if the
// two forward models agree in scale, CTF, Euler and origin conventions.
TEST(RelionInterop, ForwardModelMatchesRelionProject) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO";
  const ParticleSet set = read_particles_star(dir / "Particles/particles.star", dir);
  const Projector proj(read_mrc(dir / "ground_truth/gt_full_x2.mrc").data);
  const MrcStackReader stack(set.stack_path(set.particles.front()));
  double slope_sum = 0, residual_sum = 0;
  const int n = 200, box = proj.box();
  for (int i = 0; i < n; ++i) {
    const Particle& p = set.particles[i];
    const OpticsGroup& g = set.optics_of(p);
    ComplexGrid f;
    proj.project(euler_to_matrix(p.pose->angles), f);
    const RealGrid ctf = ctf_image(CtfParams::of(p, g), box, box, g.pixel_A);
    for (std::size_t k = 0; k < f.size(); ++k) f[k] *= ctf[k];
    phase_shift_2d(f, box, -p.pose->origin_x_A / g.pixel_A, -p.pose->origin_y_A / g.pixel_A);
    RealGrid model = ifft_2d(f, box);
    corner_to_centre(model, false);
    const RealGrid img = stack.read(p.image.index);
    double xy = 0, xx = 0;
    for (std::size_t k = 0; k < img.size(); ++k) xy += double(model[k]) * img[k], xx += double(model[k]) * model[k];
    const double slope = xy / xx;
    double r2 = 0;
    for (std::size_t k = 0; k < img.size(); ++k) r2 += std::pow(img[k] - slope * model[k], 2);
    slope_sum += slope;
    residual_sum += r2 / static_cast<double>(img.size());
  }
  // Per particle the slope has a standard error of ~1/sqrt(signal energy /
  // noise variance) ~ 0.05 at SNR 0.1 and box 64; over 200 particles ~0.004.
  // A 3% bound catches a wrong scale, CTF sign or shift sign (those give
  // slopes of 0.1-0.6). The noise variance is 1 (relion_project --white_noise 1).
  std::cout << "mean slope " << slope_sum / n << ", residual variance " << residual_sum / n << "\n";
  EXPECT_NEAR(slope_sum / n, 1.0, 0.03);
  EXPECT_NEAR(residual_sum / n, 1.0, 0.02);
}

// tessera_reconstruct and relion_reconstruct on the same particles and poses.
TEST(RelionInterop, ReconstructionAgreesWithRelionReconstruct) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  if (!on_path("relion_reconstruct")) GTEST_SKIP() << "relion_reconstruct is not installed";
  const TempDir tmp;
  const fs::path dir = *data / "relion_7DDO";
  // RELION resolves image names against its working folder.
  RunResult r = run_command(tmp.path(), "cd " + shell_quote(dir.string()) +
                                            " && relion_reconstruct --i Particles/particles.star --o " +
                                            shell_quote((tmp / "relion.mrc").string()) + " --ctf");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Both without a Wiener filter: relion_reconstruct uses none without --fsc.
  r = run_program(tmp, "reconstruct",
                  {"--particles", (dir / "Particles/particles.star").string(), "--out", (tmp / "tessera").string(),
                   "--wiener", "false", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<double> curve = fsc(read_mrc(tmp / "tessera/map.mrc").data, read_mrc(tmp / "relion.mrc").data);
  // Same data, same poses, same estimator: the maps agree where there is
  // signal and where there is only noise (measured >= 0.98 to 0.8 Nyquist).
  std::cout << "min FSC(tessera, relion) to 0.8 Nyquist: " << min_fsc_to_08_nyquist(curve) << "\n";
  EXPECT_GE(min_fsc_to_08_nyquist(curve), 0.95);
}

// RELION reads Tessera's simulated STAR and stack and reconstructs the same map.
TEST(RelionInterop, RelionReadsTesseraSimulation) {
  if (!on_path("relion_reconstruct")) GTEST_SKIP() << "relion_reconstruct is not installed";
  const TempDir tmp;
  const fs::path sim = tmp / "sim";
  RunResult r = run_program(tmp, "simulate",
                            {"--out", sim.string(), "--count", "1000", "--phantom-box-px", "64", "--pixel-A", "3",
                             "--snr", "0.5", "--defocus-min-A", "10000", "--defocus-max-A", "25000",
                             "--astigmatism-max-A", "500", "--origin-sigma-A", "3", "--scale-sigma", "0.1",
                             "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_command(tmp.path(), "cd " + shell_quote(sim.string()) + " && relion_reconstruct --i particles.star --o " +
                                  shell_quote((tmp / "relion.mrc").string()) + " --ctf");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_program(tmp, "reconstruct",
                  {"--particles", (sim / "particles.star").string(), "--out", (tmp / "tessera").string(), "--wiener",
                   "false", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const RealGrid relion = read_mrc(tmp / "relion.mrc").data;
  const std::vector<double> vs_tessera = fsc(read_mrc(tmp / "tessera/map.mrc").data, relion);
  std::cout << "min FSC(tessera, relion) to 0.8 Nyquist: " << min_fsc_to_08_nyquist(vs_tessera) << "\n";
  EXPECT_GE(min_fsc_to_08_nyquist(vs_tessera), 0.95);
  // And RELION's map is the simulated object, not just Tessera's reading of it.
  const std::vector<double> vs_truth = fsc(relion, read_mrc(sim / "truth.mrc").data);
  EXPECT_GE(vs_truth[10], 0.9);
}

}  // namespace
}  // namespace tessera
