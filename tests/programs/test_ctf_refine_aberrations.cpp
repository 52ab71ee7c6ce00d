// tessera_ctf_refine's aberration fits run as a user runs them: tessera_simulate makes images with a
// beam tilt (particles.star has none, particles_truth.star has it); refined against the true map at
// the true poses, the tilt comes back into the optics table of the STAR and Scipion outputs, with
// the phase maps and the figures.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "run_programs.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/scipion_set.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

TEST(CtfRefineAberrationsProgram, BeamTiltComesBackIntoTheOpticsTable) {
  // 800 particles of the box-64 phantom at 1.2 A/px, SNR 0.5, beam tilt (0.5, -0.3) mrad: the engine test
  // (AberrationFit.BeamTiltComesBackWithinATenthOfAMilliradian) measures a standard error of 0.02 mrad for
  // 1,000 such particles; 0.1 mrad is the bound.
  TempDir tmp;
  const fs::path sim = tmp / "sim", out = tmp / "refined";
  RunResult r = test::run_program(tmp, "simulate",
                                  {"--out", sim.string(), "--count", "800", "--phantom-box-px", "64", "--pixel-A", "1.2",
                                   "--defocus-min-A", "8000", "--defocus-max-A", "16000", "--snr", "0.5", "--seed", "4",
                                   "--beam-tilt-x-mrad", "0.5", "--beam-tilt-y-mrad", "-0.3", "--threads", "2",
                                   "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ParticleSet given = read_particles_star(sim / "particles.star");
  const ParticleSet truth = read_particles_star(sim / "particles_truth.star");
  EXPECT_EQ(given.optics.front().beam_tilt_x_mrad, 0.0);  // as a set before the fit
  EXPECT_EQ(truth.optics.front().beam_tilt_x_mrad, 0.5);
  EXPECT_EQ(truth.optics.front().beam_tilt_y_mrad, -0.3);
  EXPECT_EQ(truth.particles.front().defocus_u_A, given.particles.front().defocus_u_A);

  r = test::run_program(tmp, "ctf_refine",
                        {"--out", out.string(), "--particles", (sim / "particles.star").string(), "--map",
                         (sim / "truth.mrc").string(), "--refine-defocus", "false", "--fit-beam-tilt", "--threads",
                         "2", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ParticleSet refined = read_particles_star(out / "particles.star");
  const OpticsGroup& g = refined.optics.front();
  std::printf("beam tilt (%.4f, %.4f) mrad\n", g.beam_tilt_x_mrad, g.beam_tilt_y_mrad);
  EXPECT_NEAR(g.beam_tilt_x_mrad, 0.5, 0.1);
  EXPECT_NEAR(g.beam_tilt_y_mrad, -0.3, 0.1);
  EXPECT_EQ(refined.particles.front().defocus_u_A, given.particles.front().defocus_u_A);  // defocus not refined
  const ParticleSet scipion = read_scipion_particles(out / "particles.sqlite");
  EXPECT_EQ(scipion.optics.front().beam_tilt_x_mrad, g.beam_tilt_x_mrad);
  EXPECT_EQ(scipion.optics.front().beam_tilt_y_mrad, g.beam_tilt_y_mrad);

  const auto summary = nlohmann::json::parse(test::read_text(out / "defocus_change.json"));
  const auto& group = summary["aberrations"]["groups"][0];
  EXPECT_EQ(group["particles"], 800);
  EXPECT_DOUBLE_EQ(group["odd"]["beam_tilt_x_mrad"].get<double>(), g.beam_tilt_x_mrad);
  EXPECT_GT(group["odd"]["beam_tilt_se_mrad"][0].get<double>(), 0);
  EXPECT_EQ(summary["defocus_fitted"], false);
  // The phase maps: measured and fitted, as heat maps of the figures block and as two MRC images.
  ASSERT_EQ(summary["figures"]["heatmaps"].size(), 2u);
  EXPECT_EQ(summary["figures"]["heatmaps"][1]["name"], "odd_fitted_1");
  const MrcMap maps = read_mrc(out / "aberration_phases.mrc");
  EXPECT_EQ(maps.data.nz(), 2);
  EXPECT_EQ(maps.data.nx(), 64);
  const auto outputs = nlohmann::json::parse(test::read_text(out / "outputs.json"));
  EXPECT_EQ(outputs["status"], "done");

  // Nothing to refine is a bad parameter (exit 2).
  r = test::run_program(tmp, "ctf_refine",
                        {"--out", (tmp / "nothing").string(), "--particles", (sim / "particles.star").string(),
                         "--map", (sim / "truth.mrc").string(), "--refine-defocus", "false", "--quiet"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nothing to refine"), std::string::npos) << r.err;
}

}  // namespace
