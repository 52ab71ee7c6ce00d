// tessera_simulate and tessera_reconstruct with --ewald-sphere, run as a user runs them: a large
// particle (Gaussian blobs within 27 A of the centre, box 64 at 1 A/px, 20 kV: lambda x box /
// pixel = 5.5 A, as box 280 at 300 kV) simulated noise-free with positive curvature, 3000
// particles at 10 per defocus; reconstructed with off, positive and negative. Each half map of
// the positive run is closer to the truth at 3.4-2.2 A (values, not a correlation) than the off
// run's, and the negative run's farther: so both halves were reconstructed with the option.
// About 15 s (measured: off 0.016, positive 0.0050, negative 0.17 for either half).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ewald_test_util.hpp"
#include "run_programs.hpp"
#include "tessera/mrc.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::run_program;
using test::RunResult;
using test::TempDir;

namespace {

constexpr int kBox = 64;
constexpr double kBandLo = 19, kBandHi = 29;  // 0.6 to 0.9 of Nyquist: 3.4 to 2.2 A

struct HalfErrors {
  double a, b;
};

HalfErrors reconstruct_and_measure(const TempDir& tmp, const fs::path& particles, const RealGrid& truth,
                                   const std::string& sphere) {
  const fs::path out = tmp / ("rec_" + sphere);
  const RunResult r = run_program(tmp, "reconstruct",
                                  {"--out", out.string(), "--particles", particles.string(), "--ewald-sphere", sphere,
                                   "--wiener", "false", "--threads", "2", "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return {test::band_error(read_mrc(out / "map_half_A.mrc").data, truth, kBandLo, kBandHi),
          test::band_error(read_mrc(out / "map_half_B.mrc").data, truth, kBandLo, kBandHi)};
}

}  // namespace

TEST(EwaldSpherePrograms, BothHalfMapsAreReconstructedWithTheCurvature) {
  TempDir tmp;
  const RealGrid volume = test::blob_volume(kBox, test::blobs_in_ball(400, 27, 11), 0.8);
  write_mrc(tmp / "particle.mrc", volume, 1.0);
  const fs::path sim = tmp / "sim";
  const RunResult s = run_program(
      tmp, "simulate",
      {"--out", sim.string(), "--volume", (tmp / "particle.mrc").string(), "--count", "3000", "--noise", "false",
       "--voltage-kV", "20", "--defocus-min-A", "5000", "--defocus-max-A", "20000", "--particles-per-micrograph",
       "10", "--ewald-sphere", "positive", "--threads", "2"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("Ewald sphere (positive): lambda 0.0858"), std::string::npos) << s.out;
  const RealGrid truth = read_mrc(sim / "truth.mrc").data;
  const fs::path particles = sim / "particles.star";

  const HalfErrors off = reconstruct_and_measure(tmp, particles, truth, "off");
  const HalfErrors right = reconstruct_and_measure(tmp, particles, truth, "positive");
  const HalfErrors wrong = reconstruct_and_measure(tmp, particles, truth, "negative");
  std::printf("half maps' relative error 3.4-2.2 A: off %.4f %.4f, positive %.4f %.4f, negative %.4f %.4f\n", off.a,
              off.b, right.a, right.b, wrong.a, wrong.b);
  EXPECT_LT(right.a, 0.6 * off.a);
  EXPECT_LT(right.b, 0.6 * off.b);
  EXPECT_GT(wrong.a, 2 * off.a);
  EXPECT_GT(wrong.b, 2 * off.b);
}

TEST(EwaldSpherePrograms, BadUseIsRefused) {
  TempDir tmp;
  const fs::path sim = tmp / "sim";
  // Without the CTF there are no sidebands.
  const RunResult no_ctf = run_program(tmp, "simulate",
                                       {"--out", sim.string(), "--count", "4", "--ctf", "false", "--ewald-sphere",
                                        "positive", "--quiet"});
  EXPECT_EQ(no_ctf.exit_code, 2);
  EXPECT_NE(no_ctf.err.find("--ewald-sphere"), std::string::npos) << no_ctf.err;
  EXPECT_FALSE(fs::exists(sim / "particles.star"));
  const RunResult made = run_program(tmp, "simulate", {"--out", sim.string(), "--count", "4", "--quiet"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const RunResult bad = run_program(tmp, "reconstruct",
                                    {"--out", (tmp / "rec").string(), "--particles", (sim / "particles.star").string(),
                                     "--ewald-sphere", "sideways", "--quiet"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("ewald"), std::string::npos) << bad.err;
  const RunResult uncorrected = run_program(
      tmp, "reconstruct",
      {"--out", (tmp / "rec2").string(), "--particles", (sim / "particles.star").string(), "--ctf", "false",
       "--ewald-sphere", "negative", "--quiet"});
  EXPECT_EQ(uncorrected.exit_code, 2);
  EXPECT_NE(uncorrected.err.find("--ewald-sphere"), std::string::npos) << uncorrected.err;
}

// The refinement loop inserts both half sets with the option: tessera_refine_homo with
// --ewald-sphere positive gives other half maps than with off, and the same bit for bit on 1 and
// 2 threads (the two inserts per particle go into the same exact integer sums). Box 48 at 3 A/px,
// 100 particles, 1 iteration (which inserts every frequency): about 20 s of CPU.
TEST(EwaldSpherePrograms, RefinementReconstructsBothHalvesWithItDeterministically) {
  TempDir tmp;
  const fs::path sim = tmp / "sim";
  const RunResult s = run_program(tmp, "simulate",
                                  {"--out", sim.string(), "--phantom-box-px", "48", "--count", "100", "--snr", "0.3",
                                   "--ewald-sphere", "positive", "--threads", "2", "--quiet"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto refine = [&](const std::string& out, const std::string& sphere, int threads) {
    const RunResult r = run_program(
        tmp, "refine_homo",
        {"--out", (tmp / out).string(), "--particles", (sim / "particles.star").string(), "--reference",
         (sim / "truth.mrc").string(), "--initial-lowpass-A", "30", "--max-iterations", "1", "--ewald-sphere", sphere,
         "--threads", std::to_string(threads), "--quiet"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  refine("ewald1", "positive", 1);
  refine("ewald2", "positive", 2);
  refine("flat2", "off", 2);
  for (const std::string map : {"map_half_A.mrc", "map_half_B.mrc"}) {
    const RealGrid one = read_mrc(tmp / "ewald1" / map).data, two = read_mrc(tmp / "ewald2" / map).data,
                   flat = read_mrc(tmp / "flat2" / map).data;
    EXPECT_EQ(one.values(), two.values()) << map;
    EXPECT_NE(two.values(), flat.values()) << map;
  }
}
