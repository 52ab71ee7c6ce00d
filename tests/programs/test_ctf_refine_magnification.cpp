// tessera_ctf_refine --fit-magnification run as a user runs it: tessera_simulate makes particles
// with a 2% anisotropic magnification (particles.star: the identity and the defocus the images
// show; particles_truth.star: the true matrix), and the fit against the true map at the true poses
// writes the matrix back into the optics table.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "run_programs.hpp"
#include "tessera/fsc.hpp"
#include "tessera/magnification.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

fs::path simulate(const TempDir& tmp, const std::string& name, const std::string& percent,
                  const std::string& snr = "0.5") {
  const fs::path sim = tmp / name;
  const RunResult r = test::run_program(
      tmp, "simulate",
      {"--out", sim.string(), "--count", "400", "--phantom-box-px", "64", "--pixel-A", "1.2", "--defocus-min-A",
       "8000", "--defocus-max-A", "16000", "--astigmatism-max-A", "300", "--particles-per-micrograph", "50", "--snr",
       snr, "--seed", "5", "--anisotropic-magnification-percent", percent, "--anisotropy-angle-deg", "-50",
       "--threads", "2", "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return sim;
}

Mat2 fit(const TempDir& tmp, const fs::path& sim, const std::string& name) {
  const fs::path out = tmp / name;
  const RunResult r = test::run_program(
      tmp, "ctf_refine",
      {"--out", out.string(), "--particles", (sim / "particles.star").string(), "--map", (sim / "truth.mrc").string(),
       "--fit-magnification", "true", "--refine-defocus", "false", "--threads", "2", "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto json = nlohmann::json::parse(test::read_text(out / "magnification.json"));
  const ParticleSet refined = read_particles_star(out / "particles.star");
  const Mat2 m = refined.optics.front().mag_matrix;
  EXPECT_EQ(json["optics_groups"].size(), 1u);
  for (std::size_t k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(json["optics_groups"][0]["after"][k].get<double>(), m[k]);
  EXPECT_EQ(json["optics_groups"][0]["particles"], 400);
  return m;
}

TEST(CtfRefineMagnificationProgram, TwoPercentAnisotropyComesBackIntoTheOpticsTable) {
  TempDir tmp;
  const fs::path sim = simulate(tmp, "sim", "2");
  const ParticleSet given = read_particles_star(sim / "particles.star");
  const ParticleSet truth = read_particles_star(sim / "particles_truth.star");
  EXPECT_EQ(given.optics.front().mag_matrix, kIdentity2);
  const Mat2 t = truth.optics.front().mag_matrix, expected = anisotropic_magnification(2, -50);
  for (std::size_t k = 0; k < 4; ++k) EXPECT_NEAR(t[k], expected[k], 1e-12);
  const Mat2 m = fit(tmp, sim, "fit");
  std::printf("truth [%.5f %.5f %.5f %.5f], fitted [%.5f %.5f %.5f %.5f]\n", t[0], t[1], t[2], t[3], m[0], m[1], m[2],
              m[3]);
  for (std::size_t k = 0; k < 4; ++k) EXPECT_NEAR(m[k], t[k], 0.003) << k;
  const MagnificationSummary s = summarize_magnification(m);
  EXPECT_NEAR(s.anisotropy, 0.02, 0.003);
  EXPECT_NEAR(s.major_angle_deg, 130, 5);  // -50 deg as a direction in [0, 180)
  // The defoci re-expressed in the fitted frame: back near the true ones (given ones are off by up
  // to 2% of the defocus along the anisotropy, 160-320 A).
  const ParticleSet refined = read_particles_star(tmp / "fit" / "particles.star");
  double worst = 0, worst_given = 0;
  for (std::size_t i = 0; i < truth.particles.size(); ++i) {
    worst = std::max(worst, std::abs(refined.particles[i].defocus_u_A - truth.particles[i].defocus_u_A));
    worst_given = std::max(worst_given, std::abs(given.particles[i].defocus_u_A - truth.particles[i].defocus_u_A));
  }
  std::printf("largest |defocus U error|: %.1f A given, %.1f A after the fit\n", worst_given, worst);
  EXPECT_LT(worst, 0.25 * worst_given);
}

TEST(CtfRefineMagnificationProgram, DataWithoutAnisotropyGiveTheIdentity) {
  TempDir tmp;
  const fs::path sim = simulate(tmp, "sim", "0");
  EXPECT_FALSE(fs::exists(sim / "particles_truth.star"));
  const Mat2 m = fit(tmp, sim, "fit");
  std::printf("fitted [%.5f %.5f %.5f %.5f]\n", m[0], m[1], m[2], m[3]);
  for (std::size_t k = 0; k < 4; ++k) EXPECT_NEAR(m[k], kIdentity2[k], 0.002) << k;
}

// The refinement reads the optics group's matrix and applies it in its pose search and
// reconstruction: the same particles refined with the true matrix (particles_truth.star) agree better
// with the truth than with the identity (particles.star, whose defoci are what the images show in
// that frame, so only the projection's distortion is missing). 8%, more than real data has: at 2% the
// difference is lost in this box's coarse shells (5.49 A either way at SNR 0.5; 4.27 A at SNR 5,
// where 2% moves shell 18 by 0.18 px); the engine's tests check the parts themselves.
TEST(CtfRefineMagnificationProgram, RefinementWithTheMatrixBeatsTheIdentity) {
  TempDir tmp;
  const fs::path sim = simulate(tmp, "sim", "8", "5");
  const RealGrid truth = read_mrc(sim / "truth.mrc").data;
  struct Outcome {
    double resolution_A, mean_fsc;  // FSC 0.5 against the truth; its mean over shells 12-20
  };
  const auto refine = [&](const std::string& star, const std::string& out) {
    const RunResult r = test::run_program(
        tmp, "refine_homo",
        {"--out", (tmp / out).string(), "--particles", (sim / star).string(), "--reference",
         (sim / "truth.mrc").string(), "--initial-lowpass-A", "10", "--global-iterations", "1", "--max-iterations",
         "4", "--threads", "2", "--quiet"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const RealGrid avg = average_maps(read_mrc(tmp / out / "map_half_A.mrc").data,
                                      read_mrc(tmp / out / "map_half_B.mrc").data);
    const std::vector<double> f = fsc(avg, truth);
    double mean = 0;
    for (std::size_t k = 12; k <= 20; ++k) mean += f[k] / 9;
    return Outcome{resolution_at(f, 0.5, truth.nx(), 1.2).value_or(2.4), mean};
  };
  const Outcome identity = refine("particles.star", "identity"), matrix = refine("particles_truth.star", "matrix");
  std::printf("against the truth: identity %.2f A (mean FSC of shells 12-20 %.3f), true matrix %.2f A (%.3f)\n",
              identity.resolution_A, identity.mean_fsc, matrix.resolution_A, matrix.mean_fsc);
  // Measured: identity 4.52 A (0.658), matrix 4.27 A (0.684).
  EXPECT_LE(matrix.resolution_A, identity.resolution_A);
  EXPECT_GT(matrix.mean_fsc, identity.mean_fsc + 0.01);
}

TEST(CtfRefineMagnificationProgram, NothingToDoIsABadParameter) {
  TempDir tmp;
  const fs::path sim = simulate(tmp, "sim", "0");
  const RunResult r = test::run_program(
      tmp, "ctf_refine",
      {"--out", (tmp / "none").string(), "--particles", (sim / "particles.star").string(), "--map",
       (sim / "truth.mrc").string(), "--refine-defocus", "false", "--quiet"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--refine-defocus"), std::string::npos) << r.err;
}

}  // namespace
