// tessera_consensus_ctf run as a user runs it: on particles tessera_simulate made,
// against a copy whose defoci are moved by known amounts (so each particle's
// consensus resolution is known in closed form: the two CTFs' phases differ by
// pi lambda dz k^2, 90 degrees at k = sqrt(1 / (2 lambda dz))), from a STAR and from
// the Scipion set; and on two micrograph CTF tables (RELION's micrographs_ctf.star
// layout) that name their micrographs in different folders and do not hold the
// same ones.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/ctf.hpp"
#include "tessera/micrographs_star.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/star.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

constexpr double kPixelA = 1.5;  // Nyquist 3 A
// Defocus changes of B's particles, in order (U and V alike, so the astigmatism stays).
const std::vector<double> kShiftsA = {0, 100, 600, 1500, 3000, -3000, 5500, 8000, 20000, 2500};

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(test::read_text(p));
}

// The rows of a STAR table as maps label -> text.
std::vector<std::map<std::string, std::string>> rows_of(const fs::path& star, const std::string& block) {
  const StarFile f = read_star(star);
  const StarTable* t = f.find(block);
  EXPECT_NE(t, nullptr) << block;
  std::vector<std::map<std::string, std::string>> out;
  if (!t) return out;
  for (const auto& row : t->rows) {
    std::map<std::string, std::string> m;
    for (std::size_t c = 0; c < t->labels.size(); ++c) m[t->labels[c]] = row[c];
    out.push_back(std::move(m));
  }
  return out;
}

// 1 / sqrt(1 / (2 lambda |dz|)): where the phases of CTFs dz apart differ by 90 degrees.
double closed_form_A(double dz, double kv) {
  return std::sqrt(2 * electron_wavelength_A(kv) * std::abs(dz));
}

struct Simulated {
  TempDir tmp;
  fs::path star, sqlite, moved;
  double voltage_kV = 0;
};

const Simulated& simulated() {
  static Simulated s;
  static const bool made = [] {
    const fs::path dir = s.tmp / "sim";
    const RunResult r = test::run_program(
        s.tmp, "simulate",
        {"--out", dir.string(), "--count", std::to_string(kShiftsA.size()), "--phantom-box-px", "16", "--pixel-A",
         std::to_string(kPixelA), "--astigmatism-max-A", "800", "--seed", "11", "--threads", "1", "--quiet"});
    if (r.exit_code != 0) throw std::runtime_error("tessera_simulate failed: " + r.err);
    s.star = dir / "particles.star";
    s.sqlite = dir / "particles.sqlite";
    ParticleSet set = read_particles_star(s.star);
    s.voltage_kV = set.optics.front().voltage_kV;
    for (std::size_t i = 0; i < set.particles.size(); ++i) {
      set.particles[i].defocus_u_A += kShiftsA[i];
      set.particles[i].defocus_v_A += kShiftsA[i];
    }
    s.moved = s.tmp / "moved.star";
    write_particles_star(s.moved, set, dir);
    return true;
  }();
  EXPECT_TRUE(made);
  return s;
}

// A particle's image as index@file name: the same from a STAR and from the Scipion set.
std::string key(const std::string& image_name) {
  const ImageRef ref = ImageRef::parse(image_name);
  return std::to_string(ref.index) + "@" + fs::path(ref.path).filename().string();
}

// What each particle should give, with `max_defocus_A` as threshold (0: none).
bool expected_accepted(double dz, double kv, double max_defocus_A) {
  const double res = closed_form_A(dz, kv);
  const bool beyond = res < 2 * kPixelA;
  if (max_defocus_A > 0 && std::abs(dz) > max_defocus_A) return false;
  return beyond || res <= 15;
}

void check_particle_run(const fs::path& out, double kv, double max_defocus_A) {
  const auto rows = rows_of(out / "ctf_consensus.star", "ctf_consensus");
  ASSERT_EQ(rows.size(), kShiftsA.size());
  const auto a = read_particles_star(simulated().star);
  std::vector<std::string> accepted, rejected;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double dz = kShiftsA[i], res = closed_form_A(dz, kv);
    auto& row = rows[i];
    SCOPED_TRACE(dz);
    EXPECT_EQ(key(row.at("rlnImageName")), key(a.particles[i].image.to_string()));
    EXPECT_NEAR(std::stod(row.at("tesseraDefocusDiffAngst")), std::abs(dz), 1e-6);
    EXPECT_NEAR(std::stod(row.at("tesseraAstigmatismDiffAngst")), 0, 1e-6);
    const bool beyond = res < 2 * kPixelA;
    EXPECT_EQ(row.at("tesseraCtfConsensusBeyondNyquist"), beyond ? "1" : "0");
    const double shown = std::stod(row.at("tesseraCtfConsensusResolutionAngst"));
    if (beyond)
      EXPECT_NEAR(shown, 2 * kPixelA, 1e-9);
    else
      EXPECT_NEAR(shown / res, 1.0, 5e-3);  // the issue's 0.5%; exact in fact
    const bool ok = expected_accepted(dz, kv, max_defocus_A);
    EXPECT_EQ(row.at("tesseraCtfConsensusAccepted"), ok ? "1" : "0");
    (ok ? accepted : rejected).push_back(key(a.particles[i].image.to_string()));
  }
  const auto names = [](const fs::path& star) {
    std::vector<std::string> v;
    for (const Particle& p : read_particles_star(star).particles) v.push_back(key(p.image.to_string()));
    return v;
  };
  EXPECT_EQ(names(out / "accepted.star"), accepted);
  EXPECT_EQ(names(out / "rejected.star"), rejected);
  EXPECT_TRUE(fs::exists(out / "accepted.sqlite"));

  const auto doc = read_json(out / "ctf_consensus.json");
  EXPECT_EQ(doc["kind"], "particles");
  EXPECT_EQ(doc["matching"]["matched"], kShiftsA.size());
  EXPECT_EQ(doc["counts"]["accepted"], accepted.size());
  EXPECT_EQ(doc["counts"]["rejected"], rejected.size());
  EXPECT_EQ(doc["counts"]["beyond_nyquist"], 2);  // 0 and 100 A
  EXPECT_DOUBLE_EQ(doc["thresholds"]["min_resolution_A"].get<double>(), 15.0);
  EXPECT_DOUBLE_EQ(doc["nyquist_A"]["finest"].get<double>(), 2 * kPixelA);
  const auto& h = doc["figures"]["histograms"];
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0]["name"], "defocus_diff");
  EXPECT_EQ(h[3]["name"], "consensus_resolution");
  EXPECT_EQ(h[3]["count"], kShiftsA.size());
  EXPECT_DOUBLE_EQ(h[3]["threshold"].get<double>(), 15.0);
  // Median of |dz| over the ten particles: (2500 + 3000) / 2.
  EXPECT_NEAR(doc["medians"]["defocus_diff_A"].get<double>(), 2750, 1e-6);
  const auto manifest = read_json(out / "outputs.json");
  EXPECT_EQ(manifest["status"], "done");
  bool summary = false;
  for (const auto& o : manifest["outputs"])
    if (o["name"] == "summary") summary = o["accepted"] == accepted.size();
  EXPECT_TRUE(summary) << manifest.dump();
}

TEST(ConsensusCtf, ParticlesWithKnownDefocusChanges) {
  const Simulated& s = simulated();
  const fs::path out = s.tmp / "run_star";
  const RunResult r = test::run_program(
      s.tmp, "consensus_ctf", {"--ctf-A", s.star.string(), "--ctf-B", s.moved.string(), "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check_particle_run(out, s.voltage_kV, 0);
}

TEST(ConsensusCtf, ScipionSetAgainstStarWithADefocusThreshold) {
  const Simulated& s = simulated();
  const fs::path out = s.tmp / "run_sqlite";
  const RunResult r = test::run_program(s.tmp, "consensus_ctf",
                                        {"--ctf-A", s.sqlite.string(), "--ctf-B", s.moved.string(),
                                         "--max-defocus-diff-A", "2800", "--threads", "2", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check_particle_run(out, s.voltage_kV, 2800);
  EXPECT_EQ(read_json(out / "ctf_consensus.json")["counts"]["rejected_by_defocus"], 5);
}

// CtfFind's layout; micrographs 1-5, pixel 1 A (Nyquist 2 A), 300 kV.
std::string micrographs_star(const std::string& folder, const std::vector<std::string>& rows, bool ctf_image) {
  std::string s =
      "# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n"
      "_rlnMicrographOriginalPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n_rlnAmplitudeContrast #6\n"
      "_rlnMicrographPixelSize #7\nopticsGroup1 1 0.5 300.0 2.7 0.1 1.0\n\n# version 30001\n\ndata_micrographs\n\n"
      "loop_\n_rlnMicrographName #1\n_rlnOpticsGroup #2\n_rlnDefocusU #3\n_rlnDefocusV #4\n_rlnDefocusAngle #5\n"
      "_rlnCtfMaxResolution #6\n";
  if (ctf_image) s += "_rlnCtfImage #7\n";
  for (const std::string& r : rows) {
    const std::string name = r.substr(0, r.find(' '));
    s += folder + r + (ctf_image ? " CtfFind/job003/" + name + "_PS.ctf:mrc" : "") + "\n";
  }
  return s;
}

TEST(ConsensusCtf, MicrographTablesMatchedByFileName) {
  TempDir tmp;
  // mic_1: the same; mic_2: 2,000 A more defocus (8.9 A); mic_3: 9,000 A (18.8 A, rejected);
  // mic_4: only in A; mic_5: astigmatism turned (rows differ by axis only); mic_6: only in B.
  const fs::path a =
      tmp.write("a.star", micrographs_star("MotionCorr/job002/Movies/",
                                           {"mic_1.mrc 1 15000 14000 30 3.5", "mic_2.mrc 1 21000 20500 -10 4.0",
                                            "mic_3.mrc 1 12000 11800 80 3.1", "mic_4.mrc 1 18000 17000 0 3.3",
                                            "mic_5.mrc 1 16000 15000 10 3.0"},
                                           true));
  const fs::path b =
      tmp.write("b.star", micrographs_star("Import/job001/mics/",
                                           {"mic_5.mrc 1 16000 15000 70 3.2", "mic_3.mrc 1 21000 20800 80 5.0",
                                            "mic_2.mrc 1 23000 22500 -10 4.1", "mic_1.mrc 1 15000 14000 30 3.4",
                                            "mic_6.mrc 1 15500 15400 0 3.9"},
                                           false));
  const fs::path out = tmp / "out";
  const RunResult r =
      test::run_program(tmp, "consensus_ctf", {"--ctf-A", a.string(), "--ctf-B", b.string(), "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("1 of 5 micrographs are not in every other file"), std::string::npos) << r.out;

  const auto rows = rows_of(out / "ctf_consensus.star", "ctf_consensus");
  ASSERT_EQ(rows.size(), 4u);
  std::vector<std::string> names;
  for (const auto& row : rows) names.push_back(fs::path(row.at("rlnMicrographName")).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"mic_1.mrc", "mic_2.mrc", "mic_3.mrc", "mic_5.mrc"}));
  EXPECT_EQ(rows[0].at("tesseraCtfConsensusBeyondNyquist"), "1");
  EXPECT_NEAR(std::stod(rows[1].at("tesseraCtfConsensusResolutionAngst")) / closed_form_A(2000, 300), 1, 1e-6);
  EXPECT_NEAR(std::stod(rows[2].at("tesseraCtfConsensusResolutionAngst")) / closed_form_A(9000, 300), 1, 1e-6);
  EXPECT_NEAR(std::stod(rows[3].at("tesseraAstigmatismAxisDiffDeg")), 60, 1e-9);
  EXPECT_NEAR(std::stod(rows[3].at("tesseraDefocusDiffAngst")), 0, 1e-9);
  // 1,000 A of astigmatism turned by 60 deg: the focus differs by up to 866 A in some direction.
  const double axis_res = std::stod(rows[3].at("tesseraCtfConsensusResolutionAngst"));
  EXPECT_NEAR(axis_res / closed_form_A(1000 * std::sin(60 * std::acos(-1) / 180), 300), 1, 1e-4);
  std::vector<std::string> accepted_flags;
  for (const auto& row : rows) accepted_flags.push_back(row.at("tesseraCtfConsensusAccepted"));
  EXPECT_EQ(accepted_flags, (std::vector<std::string>{"1", "1", "0", "1"}));

  // The accepted and rejected micrographs are A's rows, every column kept.
  const MicrographCtfTable kept = read_micrographs_ctf_star(out / "micrographs_accepted.star");
  ASSERT_EQ(kept.micrographs.size(), 3u);
  EXPECT_EQ(kept.micrographs[2].name, "MotionCorr/job002/Movies/mic_5.mrc");
  const auto kept_rows = rows_of(out / "micrographs_accepted.star", "micrographs");
  EXPECT_EQ(kept_rows[0].at("rlnCtfImage"), "CtfFind/job003/mic_1.mrc_PS.ctf:mrc");
  EXPECT_EQ(kept_rows[1].at("rlnCtfMaxResolution"), "4.0");
  const MicrographCtfTable dropped = read_micrographs_ctf_star(out / "micrographs_rejected.star");
  ASSERT_EQ(dropped.micrographs.size(), 1u);
  EXPECT_EQ(dropped.micrographs[0].name, "MotionCorr/job002/Movies/mic_3.mrc");

  const auto doc = read_json(out / "ctf_consensus.json");
  EXPECT_EQ(doc["kind"], "micrographs");
  EXPECT_EQ(doc["matching"]["matched"], 4);
  EXPECT_EQ(doc["matching"]["files"][0]["unmatched"], 1);
  EXPECT_EQ(doc["matching"]["files"][1]["unmatched_examples"][0], "Import/job001/mics/mic_6.mrc");
  EXPECT_EQ(doc["counts"]["rejected_by_resolution"], 1);
  EXPECT_DOUBLE_EQ(doc["nyquist_A"]["coarsest"].get<double>(), 2.0);
}

}  // namespace
