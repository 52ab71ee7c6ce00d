// tessera_validate_fsc run as a user runs it: against relion_postprocess on
// RELION's own half maps (../shared/data/relion_7DDO), on synthetic half maps
// with a generated mask, and on bad inputs (exit 2, nothing written).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/random.hpp"
#include "tessera/simulate.hpp"
#include "tessera/star.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

const StarTable& block(const StarFile& f, const std::string& name) {
  const StarTable* t = f.find(name);
  if (!t) throw std::runtime_error("no data_" + name);
  return *t;
}

double value(const StarFile& f, const std::string& blk, const std::string& label) {
  const auto v = block(f, blk).value(label);
  if (!v) throw std::runtime_error("no " + label);
  return std::stod(*v);
}

std::vector<double> column(const StarFile& f, const std::string& blk, const std::string& label) {
  const StarTable& t = block(f, blk);
  const int c = t.column(label);
  if (c < 0) throw std::runtime_error("no " + label);
  std::vector<double> out;
  for (const auto& row : t.rows) out.push_back(std::stod(row[static_cast<std::size_t>(c)]));
  return out;
}

std::vector<std::string> block_names(const StarFile& f) {
  std::vector<std::string> names;
  for (const auto& b : f.blocks) names.push_back(b.name);
  return names;
}

double correlation(const RealGrid& a, const RealGrid& b) {
  double ab = 0, aa = 0, bb = 0, ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(a.size()), mb /= static_cast<double>(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb), aa += (a[i] - ma) * (a[i] - ma), bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

// relion_postprocess 3.1.3 on relion_7DDO (its README, step 6): 6.19 A, B -136.6.
TEST(ValidateFsc, AgreesWithRelionPostprocess) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO";
  const fs::path half1 = dir / "Refine3D" / "run_half1_class001_unfil.mrc",
                 half2 = dir / "Refine3D" / "run_half2_class001_unfil.mrc",
                 mask = dir / "ground_truth" / "mask_full.mrc";
  TempDir tmp;
  const RunResult r = test::run_program(tmp, "validate_fsc",
                                        {"--out", (tmp / "ours").string(), "--half-map-A", half1.string(),
                                         "--half-map-B", half2.string(), "--mask", mask.string(), "--quiet",
                                         // RELION's default fit range (to Nyquist); Tessera's stops at the resolution
                                         "--bfactor-high-res-A", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // RELION's numbers: run it when installed, else the file it wrote.
  fs::path relion_dir = dir / "PostProcess";
  if (test::on_path("relion_postprocess")) {
    relion_dir = tmp / "relion";
    fs::create_directories(relion_dir);
    const RunResult rr = test::run_command(tmp.path(), "relion_postprocess --i " + test::shell_quote(half1.string()) +
                                                           " --mask " + test::shell_quote(mask.string()) +
                                                           " --angpix 3 --auto_bfac --autob_lowres 10 --o " +
                                                           test::shell_quote((relion_dir / "postprocess").string()));
    ASSERT_EQ(rr.exit_code, 0) << rr.out << rr.err;
  }
  const StarFile relion = read_star(relion_dir / "postprocess.star");
  const StarFile ours = read_star(tmp / "ours" / "postprocess.star");

  // Laid out like RELION's: the same blocks, labels and rows, in order.
  EXPECT_EQ(block_names(ours), block_names(relion));
  for (const std::string b : {"general", "fsc", "guinier"}) {
    EXPECT_EQ(block(ours, b).labels, block(relion, b).labels) << b;
    EXPECT_EQ(block(ours, b).rows.size(), block(relion, b).rows.size()) << b;
  }

  // Resolution within one Fourier shell (shell k is 192 / k A), B within 10%.
  const double res_ours = value(ours, "general", "rlnFinalResolution"),
               res_relion = value(relion, "general", "rlnFinalResolution");
  const double b_ours = value(ours, "general", "rlnBfactorUsedForSharpening"),
               b_relion = value(relion, "general", "rlnBfactorUsedForSharpening");
  std::cout << "[ measured ] resolution " << res_ours << " A (RELION " << res_relion << "), B " << b_ours << " (RELION "
            << b_relion << ")\n";
  EXPECT_LE(std::abs(192.0 / res_ours - 192.0 / res_relion), 1.0 + 1e-6);
  EXPECT_LE(std::abs(b_ours - b_relion), 0.1 * std::abs(b_relion));

  // The curves that do not depend on the random phases are RELION's, to its
  // six printed decimals and float FFTs (the engine test allows 2e-5 too);
  // below the randomization shell + 2 the corrected curve is the masked one.
  const auto randomize_shell =
      static_cast<std::size_t>(std::lround(192.0 / value(ours, "general", "rlnRandomiseFrom")));
  EXPECT_EQ(randomize_shell, 11u);
  for (const std::string label : {"rlnFourierShellCorrelationUnmaskedMaps", "rlnFourierShellCorrelationMaskedMaps",
                                  "rlnFourierShellCorrelationParticleMaskFraction", "rlnAngstromResolution"}) {
    const auto a = column(ours, "fsc", label), b = column(relion, "fsc", label);
    for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 2e-5) << label << " shell " << k;
  }
  const auto corr_a = column(ours, "fsc", "rlnFourierShellCorrelationCorrected"),
             corr_b = column(relion, "fsc", "rlnFourierShellCorrelationCorrected");
  for (std::size_t k = 0; k < randomize_shell + 2; ++k) EXPECT_NEAR(corr_a[k], corr_b[k], 2e-5) << "shell " << k;
  // ln amplitudes of the unfiltered average: RELION prints 5 decimals.
  const auto ln_a = column(ours, "guinier", "rlnLogAmplitudesOriginal"),
             ln_b = column(relion, "guinier", "rlnLogAmplitudesOriginal");
  for (std::size_t k = 0; k < ln_a.size(); ++k) EXPECT_NEAR(ln_a[k], ln_b[k], 2e-5) << "shell " << k;

  // The sharpened maps differ only by the B-factors (a few %) and the FSC
  // weights beyond 16 A, where the phases are randomized: measured 0.99989
  // (with RELION's B and corrected curve the map is RELION's to 4e-7). A
  // low-pass at the resolution, which 3.1.3 does not apply, gives 0.978.
  const RealGrid mine = read_mrc(tmp / "ours" / "postprocess.mrc").data,
                 theirs = read_mrc(relion_dir / "postprocess.mrc").data;
  const double c = correlation(mine, theirs);
  std::cout << "[ measured ] correlation of the sharpened maps with RELION's: " << c << "\n";
  EXPECT_GT(c, 0.999);

  // The JSON says the same as the STAR.
  const auto doc = nlohmann::json::parse(test::read_text(tmp / "ours" / "fsc.json"));
  EXPECT_NEAR(doc.at("resolution_A").at("corrected@0.143").get<double>(), res_ours, 1e-5);
  EXPECT_NEAR(doc.at("bfactor_A2").get<double>(), b_ours, 1e-4);
  EXPECT_EQ(doc.at("randomized_from").at("shell").get<int>(), 11);
}

// Half maps of a phantom (box 32, 3 A/px) with independent noise.
struct Halves {
  RealGrid truth, a, b;
};

Halves noisy_halves() {
  Halves h;
  h.truth = phantom_volume(32, 3.0, 5);
  h.a = h.truth;
  h.b = h.truth;
  Rng ra = item_rng(11, 0), rb = item_rng(11, 1);
  for (std::size_t i = 0; i < h.a.size(); ++i) {
    h.a[i] += static_cast<float>(0.3 * normal01(ra));
    h.b[i] += static_cast<float>(0.3 * normal01(rb));
  }
  return h;
}

TEST(ValidateFsc, GeneratedMaskCoversTheParticle) {
  TempDir tmp;
  const Halves h = noisy_halves();
  write_mrc(tmp / "a.mrc", h.a, 3.0);
  write_mrc(tmp / "b.mrc", h.b, 3.0);
  // Threshold at 30% of the low-passed average's peak: ~8 sd of its noise
  // (0.3 / sqrt(2) per voxel, 3% of which passes the 15 A low-pass).
  RealGrid avg = h.a;
  for (std::size_t i = 0; i < avg.size(); ++i) avg[i] = 0.5f * (h.a[i] + h.b[i]);
  const RealGrid lp = lowpass(avg, 15.0, 3.0);
  const double threshold = 0.3 * *std::max_element(lp.values().begin(), lp.values().end());
  const fs::path out = tmp / "out";
  const RunResult r =
      test::run_program(tmp, "validate_fsc",
                        {"--out", out.string(), "--half-map-A", (tmp / "a.mrc").string(), "--half-map-B",
                         (tmp / "b.mrc").string(), "--mask-threshold", std::to_string(threshold), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto manifest = nlohmann::json::parse(test::read_text(out / "outputs.json"));
  bool mask_listed = false;
  for (const auto& o : manifest.at("outputs")) mask_listed = mask_listed || o.at("name") == "mask";
  EXPECT_TRUE(mask_listed);
  // The mask (low-pass 15 A, threshold, 2 px extension, 4 px edge) holds
  // every voxel of strong density and leaves the box corners out.
  const RealGrid mask = read_mrc(out / "mask.mrc").data;
  const float peak = *std::max_element(h.truth.values().begin(), h.truth.values().end());
  for (std::size_t i = 0; i < mask.size(); ++i) {
    ASSERT_GE(mask[i], 0.0f);
    ASSERT_LE(mask[i], 1.0f);
    if (h.truth[i] > 0.3f * peak) {
      ASSERT_GE(mask[i], 0.999f) << i;
    }
  }
  EXPECT_EQ(mask(0, 0, 0), 0.0f);
  const StarFile star = read_star(out / "postprocess.star");
  EXPECT_EQ(block_names(star), (std::vector<std::string>{"general", "fsc", "guinier"}));
  EXPECT_EQ(block(star, "fsc").rows.size(), 17u);
}

// --reference: the half maps' average against the truth. With halves = truth + independent noise
// of equal power, the average's FSC against the truth is sqrt(2F / (1 + F)) of the halves' FSC F
// (Rosenthal & Henderson 2003, C_ref), shell by shell; the reference's own scale does not matter.
TEST(ValidateFsc, ReferenceCurveIsTheHalfMapsFscAsCref) {
  TempDir tmp;
  const Halves h = noisy_halves();
  write_mrc(tmp / "a.mrc", h.a, 3.0);
  write_mrc(tmp / "b.mrc", h.b, 3.0);
  RealGrid reference = h.truth;
  for (float& x : reference.values()) x *= 7.0f;
  write_mrc(tmp / "truth.mrc", reference, 3.0);
  const RealGrid lp = lowpass(h.truth, 15.0, 3.0);
  const double threshold = 0.3 * *std::max_element(lp.values().begin(), lp.values().end());
  const fs::path out = tmp / "out";
  const RunResult r = test::run_program(
      tmp, "validate_fsc",
      {"--out", out.string(), "--half-map-A", (tmp / "a.mrc").string(), "--half-map-B", (tmp / "b.mrc").string(),
       "--reference", (tmp / "truth.mrc").string(), "--mask-threshold", std::to_string(threshold), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(test::read_text(out / "fsc.json"));
  const auto halves = doc.at("curves").at("unmasked").get<std::vector<double>>();
  const auto vs_ref = doc.at("curves").at("vs_reference").get<std::vector<double>>();
  ASSERT_EQ(vs_ref.size(), halves.size());
  // Shell k of a 32 box has about 4 pi k^2 independent voxels: above shell 4 an FSC's sampling
  // error is below 1 / sqrt(200) = 0.07; C_ref's slope in F is at most 1 where F > 0.1.
  int checked = 0;
  for (std::size_t k = 4; k < halves.size(); ++k) {
    if (halves[k] < 0.1) continue;
    EXPECT_NEAR(vs_ref[k], std::sqrt(2 * halves[k] / (1 + halves[k])), 0.07) << "shell " << k;
    ++checked;
  }
  EXPECT_GE(checked, 3);
  EXPECT_TRUE(doc.at("curves").contains("vs_reference_masked"));
  EXPECT_TRUE(doc.at("resolution_A").contains("vs_reference@0.5"));
  EXPECT_TRUE(doc.at("resolution_A").contains("vs_reference_masked@0.5"));
}

// Every bad input exits with 2, says which, and writes nothing (not even --out).
TEST(ValidateFsc, BadInputsExitTwoAndWriteNothing) {
  TempDir tmp;
  const Halves h = noisy_halves();
  const std::string a = (tmp / "a.mrc").string(), b = (tmp / "b.mrc").string();
  write_mrc(a, h.a, 3.0);
  write_mrc(b, h.b, 3.0);
  RealGrid mask(32, 32, 32, 1.0f), small(16, 16, 16, 1.0f), over(32, 32, 32, 1.5f), nan_map = h.a;
  nan_map[1000] = std::numeric_limits<float>::quiet_NaN();
  write_mrc(tmp / "mask.mrc", mask, 3.0);
  write_mrc(tmp / "mask_box16.mrc", small, 3.0);
  write_mrc(tmp / "mask_2A.mrc", mask, 2.0);
  write_mrc(tmp / "mask_over.mrc", over, 3.0);
  write_mrc(tmp / "b_2A.mrc", h.b, 2.0);
  write_mrc(tmp / "b_box16.mrc", small, 3.0);
  write_mrc(tmp / "a_nan.mrc", nan_map, 3.0);
  struct Case {
    std::vector<std::string> args;
    std::string names;  // must appear in the message
  };
  const std::vector<Case> cases = {
      {{"--half-map-A", a, "--half-map-B", b, "--mask", (tmp / "mask_box16.mrc").string()}, "mask_box16.mrc"},
      {{"--half-map-A", a, "--half-map-B", b, "--mask", (tmp / "mask_2A.mrc").string()}, "mask_2A.mrc"},
      {{"--half-map-A", a, "--half-map-B", b, "--mask", (tmp / "mask_over.mrc").string()}, "mask_over.mrc"},
      {{"--half-map-A", a, "--half-map-B", (tmp / "b_2A.mrc").string(), "--mask-threshold", "0.05"}, "b_2A.mrc"},
      {{"--half-map-A", a, "--half-map-B", (tmp / "b_box16.mrc").string(), "--mask-threshold", "0.05"}, "b_box16.mrc"},
      {{"--half-map-A", (tmp / "a_nan.mrc").string(), "--half-map-B", b, "--mask-threshold", "0.05"}, "a_nan.mrc"},
      {{"--half-map-A", a, "--half-map-B", b, "--mask-threshold", "1000"}, "--mask-threshold"},
      {{"--half-map-A", a, "--half-map-B", b}, "--mask-threshold"},
      {{"--half-map-A", a, "--half-map-B", a, "--mask", (tmp / "mask.mrc").string()}, "--randomize-from-A"},
  };
  for (const Case& c : cases) {
    const fs::path out = tmp / "out";
    std::vector<std::string> args = {"--out", out.string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const RunResult r = test::run_program(tmp, "validate_fsc", args);
    EXPECT_EQ(r.exit_code, 2) << c.names << ": " << r.err;
    EXPECT_EQ(r.err.rfind("ERROR: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.names << ": wrote " << out;
  }
}

}  // namespace
