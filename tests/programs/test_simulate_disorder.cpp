// tessera_simulate --disorder run as a user runs it, on the phantom in a
// 32 box at 3 A/px (about 1 s): its envelope and mean are written and
// registered, they are what the option and the recorded parameters say, the
// stack is the engine's Simulator with that disordered component (so the
// program passes the envelope, resolution, RMS and mean as recorded), and a belt
// the box cannot hold is refused with exit code 2 before anything is written.
// The engine-level properties (statistics, projections, forward model) are
// tested in tests/engine/test_disorder.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/mrc.hpp"
#include "tessera/simulate.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::read_text;
using test::run_program;
using test::RunResult;
using test::TempDir;

namespace {

constexpr int kBox = 32;
constexpr double kPixelA = 3.0;
constexpr long kCount = 8;
constexpr std::uint64_t kSeed = 3;

// A nanodisc-like belt the 32 box holds: reaches hypot(36, 12) = 38 A < 48 A.
const std::vector<std::string> kBelt = {"--disorder-belt-inner-radius-A", "0",  "--disorder-belt-outer-radius-A",
                                        "36", "--disorder-belt-height-A",   "24"};

std::vector<std::string> simulation(const fs::path& out, const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"--out",     out.string(), "--count", std::to_string(kCount), "--phantom-box-px",
                                std::to_string(kBox), "--noise", "false", "--ctf", "false", "--seed",
                                std::to_string(kSeed), "--threads", "2", "--quiet", "--disorder", "true"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

const nlohmann::json& registered(const nlohmann::json& manifest, const std::string& name) {
  for (const auto& o : manifest.at("outputs"))
    if (o.at("name") == name) return o;
  throw std::runtime_error(name + " is not in outputs.json");
}

double max_abs_difference(const RealGrid& a, const RealGrid& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - b[i]));
  return d;
}

double peak_abs(const RealGrid& g) {
  double p = 0;
  for (float v : g.values()) p = std::max(p, std::abs(double(v)));
  return p;
}

TEST(SimulateDisorder, WritesTheEnvelopeAndMeanAndTheImagesHoldTheRealisations) {
  TempDir tmp;
  const fs::path sim = tmp / "sim";
  const RunResult r = run_program(tmp, "simulate", simulation(sim, kBelt));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Written and registered, with the parameters the density was made with.
  const auto manifest = nlohmann::json::parse(read_text(sim / "outputs.json"));
  EXPECT_EQ(manifest.at("status"), "done");
  const auto& mask_entry = registered(manifest, "disorder_mask");
  const auto& mean_entry = registered(manifest, "disorder_mean");
  EXPECT_EQ(mask_entry.at("type"), "mask");
  EXPECT_EQ(mask_entry.at("path"), "disorder_mask.mrc");
  EXPECT_EQ(mean_entry.at("type"), "volume");
  EXPECT_EQ(mean_entry.at("path"), "disorder_mean.mrc");
  ASSERT_TRUE(fs::is_regular_file(sim / "disorder_mask.mrc"));
  ASSERT_TRUE(fs::is_regular_file(sim / "disorder_mean.mrc"));
  DisorderOptions d;
  d.resolution_A = mask_entry.at("resolution_A").get<double>();
  d.rms = mask_entry.at("rms").get<double>();
  d.mean = mask_entry.at("mean").get<double>();
  EXPECT_EQ(d.resolution_A, 12.0);  // the default at 3 A/px: 4 pixels (coarser than 8 A)

  // --disorder-amplitude and --disorder-mean (0.5 by default) are fractions of
  // the protein's RMS inside truth_mask.
  const RealGrid truth = read_mrc(sim / "truth.mrc").data, truth_mask = read_mrc(sim / "truth_mask.mrc").data;
  const double protein_rms = masked_rms(truth, truth_mask);
  EXPECT_NEAR(d.rms, 0.5 * protein_rms, 1e-6 * protein_rms);
  EXPECT_NEAR(d.mean, 0.5 * protein_rms, 1e-6 * protein_rms);

  // The envelope: the built-in belt less the protein's mask.
  d.envelope = read_mrc(sim / "disorder_mask.mrc").data;
  RealGrid belt = belt_envelope(kBox, kPixelA, {0, 36, 24, BeltShape::Cylinder});
  for (std::size_t i = 0; i < belt.size(); ++i) belt[i] *= 1 - truth_mask[i];
  EXPECT_LT(max_abs_difference(d.envelope, belt), 1e-6);

  // disorder_mean is the mean over realisations, mu (m * g): Disorder's
  // mean_volume for the recorded parameters, whose envelope-weighted mean is `mean`.
  const RealGrid mean_map = read_mrc(sim / "disorder_mean.mrc").data;
  const Disorder disorder(d, kPixelA);
  EXPECT_LT(max_abs_difference(mean_map, disorder.mean_volume()), 1e-6 * peak_abs(mean_map));
  double s = 0, w = 0;
  for (std::size_t i = 0; i < mean_map.size(); ++i) s += double(d.envelope[i]) * mean_map[i], w += d.envelope[i];
  EXPECT_NEAR(s / w, d.mean, 1e-4 * d.mean);

  // The stack is the engine's simulation of the truth with that component
  // (noise-free, CTF off, seed 3), image for image, to float rounding.
  SimulationOptions o;
  o.count = kCount;
  o.pixel_A = kPixelA;
  o.seed = kSeed;
  o.apply_ctf = false;
  o.disorder = d;
  const Simulator engine({truth}, o);
  const MrcStackReader stack(sim / "particles.mrcs");
  ASSERT_EQ(stack.size(), kCount);
  RealGrid image, sum(kBox, kBox, kBox);
  for (long i = 0; i < kCount; ++i) {
    engine.make(i, image);
    EXPECT_LT(max_abs_difference(stack.read(i + 1), image), 1e-5 * peak_abs(image)) << "particle " << i + 1;
    const RealGrid v = engine.disorder_volume(i);
    for (std::size_t k = 0; k < sum.size(); ++k) sum[k] += v[k] / kCount;
  }
  // And disorder_mean is what those particles' densities average to: their
  // mean differs from it by the random part's RMS / sqrt(8) inside the
  // envelope, in expectation. The envelope (the belt less the protein, soft
  // edges included) weighs 812 voxels, correlated over ~19 (sigma 0.75 px):
  // over 100 other groups of 8 realisations that RMS varied by 7% (its
  // relative standard deviation); 25% allowed, 3.5 standard deviations.
  for (std::size_t k = 0; k < sum.size(); ++k) sum[k] -= mean_map[k];
  const double deviation = masked_rms(sum, d.envelope), expected = d.rms / std::sqrt(double(kCount));
  std::cout << "[ measured ] RMS of (mean of " << kCount << " realisations - disorder_mean): " << deviation
            << ", expected " << expected << "\n";
  EXPECT_NEAR(deviation, expected, 0.25 * expected);
}

TEST(SimulateDisorder, BeltBeyondTheBoxIsRefusedAndNothingWritten) {
  TempDir tmp;
  const fs::path out = tmp / "sim";
  // Outer radius 60 A: beyond the 32 box's inscribed sphere (48 A at 3 A/px).
  const RunResult r = run_program(tmp, "simulate",
                                  simulation(out, {"--disorder-belt-outer-radius-A", "60", "--disorder-belt-height-A",
                                                   "24"}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("ERROR: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--disorder-belt-outer-radius-A"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
