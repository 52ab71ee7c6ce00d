// tessera_consensus_poses run as a user runs it: RELION's refinement of relion_7DDO
// against the true poses (figures from an independent numpy/scipy computation,
// tests/programs/consensus_poses_check.py), the true poses moved to random symmetry
// mates of C7 and D2 with known perturbations, the true poses of the opposite hand,
// and the true poses in a globally rotated frame (--align-frames).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/cryosparc_cs.hpp"
#include "tessera/geometry.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/random.hpp"
#include "tessera/star.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(test::read_text(p));
}

struct Row {
  double angle = 0, view = 0, shift = 0;
  int mate = 0;
  bool agree = false;
};

// pose_consensus.star by image name of set A.
std::map<std::string, Row> read_table(const fs::path& star) {
  const StarFile f = read_star(star);
  const StarTable* t = f.find("pose_consensus");
  EXPECT_NE(t, nullptr);
  std::map<std::string, Row> rows;
  if (!t) return rows;
  auto col = [&](const char* label) { return static_cast<std::size_t>(t->column(label)); };
  for (const auto& r : t->rows)
    rows[r[col("rlnImageName")]] = {std::stod(r[col("tesseraAngularDistanceDeg")]),
                                    std::stod(r[col("tesseraViewDistanceDeg")]),
                                    std::stod(r[col("tesseraShiftDistanceAngst")]),
                                    std::stoi(r[col("tesseraSymmetryMate")]), r[col("tesseraPoseAgree")] == "1"};
  return rows;
}

RunResult run(const TempDir& tmp, const fs::path& out, const fs::path& a, const fs::path& b,
              const std::vector<std::string>& more = {}) {
  std::vector<std::string> args = {"--out", out.string(), "--particles", a.string(), "--particles-B", b.string()};
  args.insert(args.end(), more.begin(), more.end());
  return test::run_program(tmp, "consensus_poses", args);
}

// The true poses of relion_7DDO (Particles/particles.star: input_gt.star's poses, which
// relion_project copied, with the image names; origins rounded to 1e-5 A).
ParticleSet truth(const fs::path& data) {
  return read_particles_star(data / "relion_7DDO" / "Particles" / "particles.star");
}

// RELION's Refine3D against the truth. The expected figures are those
// consensus_poses_check.py printed (numpy + scipy, no Tessera code):
//   python3 tests/programs/consensus_poses_check.py Refine3D/run_data.star Particles/particles.star
// and the README's (2.23 deg median, 4.33 deg 90th percentile, 0.53 A median shift).
TEST(ConsensusPoses, Relion7DDOAgainstTheTruth) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO";
  TempDir tmp;
  const fs::path out = tmp / "out";
  const RunResult r = run(tmp, out, dir / "Refine3D" / "run_data.star", dir / "Particles" / "particles.star");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("WARNING"), std::string::npos) << r.out;  // the assignments agree

  const auto doc = read_json(out / "pose_consensus.json");
  EXPECT_EQ(doc["matching"]["matched"], 1000);
  EXPECT_EQ(doc["compared"], 1000);
  EXPECT_EQ(doc["symmetry"], "C1");
  EXPECT_EQ(doc["agreeing"], 938);
  EXPECT_NEAR(doc["median_angle_deg"].get<double>(), 2.227936672068058, 1e-9);
  EXPECT_NEAR(doc["p90_angle_deg"].get<double>(), 4.33360420107659, 1e-9);
  EXPECT_NEAR(doc["median_view_deg"].get<double>(), 1.8924971239446629, 1e-9);
  EXPECT_NEAR(doc["p90_view_deg"].get<double>(), 4.10692747780512, 1e-9);
  EXPECT_NEAR(doc["median_shift_A"].get<double>(), 0.5260625309581113, 1e-9);
  EXPECT_NEAR(doc["p90_shift_A"].get<double>(), 0.9599069898634668, 1e-9);
  EXPECT_NEAR(doc["median_angle_deg"].get<double>(), 2.23, 0.005);  // the README, rounded
  EXPECT_NEAR(doc["p90_angle_deg"].get<double>(), 4.33, 0.005);
  EXPECT_NEAR(doc["median_shift_A"].get<double>(), 0.53, 0.005);
  EXPECT_FALSE(doc["diagnosis"]["unrelated"].get<bool>());
  EXPECT_NEAR(doc["diagnosis"]["random_median_angle_deg"].get<double>(), 132.35, 0.01);
  EXPECT_GT(doc["diagnosis"]["opposite_hand"]["median_angle_deg"].get<double>(), 20);
  EXPECT_TRUE(doc["frame"].is_null());

  const auto table = read_table(out / "pose_consensus.star");
  ASSERT_EQ(table.size(), 1000u);
  const std::map<std::string, std::array<double, 3>> expected = {
      {"000001@Particles/particles.mrcs", {3.4536396594378656, 3.218658624070402, 1.3536955934245332}},
      {"000002@Particles/particles.mrcs", {1.6910030421663387, 1.5634318273194483, 0.7674618813231051}},
      {"000003@Particles/particles.mrcs", {3.1493894173171215, 2.6139135495882178, 0.39730220943382666}},
      {"001000@Particles/particles.mrcs", {1.7408580181704223, 1.4535722855628739, 0.12204528989272795}}};
  for (const auto& [name, want] : expected) {
    SCOPED_TRACE(name);
    ASSERT_EQ(table.count(name), 1u);
    const Row& got = table.at(name);
    EXPECT_NEAR(got.angle, want[0], 1e-6);
    EXPECT_NEAR(got.view, want[1], 1e-6);
    EXPECT_NEAR(got.shift, want[2], 1e-6);
    EXPECT_TRUE(got.agree);
    EXPECT_EQ(got.mate, 1);
  }

  // The subsets are set A's particles (RELION's poses), split by the thresholds.
  const ParticleSet agreeing = read_particles_star(out / "agreeing.star");
  const ParticleSet disagreeing = read_particles_star(out / "disagreeing.star");
  EXPECT_EQ(agreeing.particles.size(), 938u);
  EXPECT_EQ(disagreeing.particles.size(), 62u);
  const ParticleSet refined = read_particles_star(dir / "Refine3D" / "run_data.star");
  EXPECT_EQ(agreeing.particles[0].pose->angles.rot, refined.particles[0].pose->angles.rot);
  for (const Particle& p : agreeing.particles) {
    const Row& row = table.at(fmt::format("{:06d}@Particles/particles.mrcs", p.image.index));
    EXPECT_TRUE(row.agree && row.angle <= 5 && row.shift <= 3);
  }
  for (const Particle& p : disagreeing.particles)
    EXPECT_FALSE(table.at(fmt::format("{:06d}@Particles/particles.mrcs", p.image.index)).agree);

  // The figures for the viewer: three histograms over every compared particle.
  const auto& histograms = doc["figures"]["histograms"];
  ASSERT_EQ(histograms.size(), 3u);
  for (const auto& h : histograms) {
    long total = 0;
    for (const auto& c : h["counts"]) total += c.get<long>();
    EXPECT_EQ(total, 1000) << h["name"];
  }
  EXPECT_EQ(histograms[0]["threshold"], 5.0);
  const auto manifest = read_json(out / "outputs.json");
  EXPECT_EQ(manifest["status"], "done");
  EXPECT_EQ(manifest["outputs"].size(), 6u);
  for (const auto& o : manifest["outputs"])
    if (o["name"] == "summary") {
      EXPECT_NEAR(o["median_angle_deg"].get<double>(), 2.227936672068058, 1e-9);
      EXPECT_NEAR(o["agreeing_fraction"].get<double>(), 0.938, 1e-12);
    }

  // The same files the other way round (the subsets then come from the truth) and
  // with B's particles in reverse order: matched by name, the figures are the same.
  ParticleSet reversed = refined;
  std::reverse(reversed.particles.begin(), reversed.particles.end());
  write_particles_star(tmp / "reversed.star", reversed, dir);
  const fs::path swapped = tmp / "swapped";
  ASSERT_EQ(run(tmp, swapped, dir / "Particles" / "particles.star", tmp / "reversed.star").exit_code, 0);
  const auto other = read_json(swapped / "pose_consensus.json");
  for (const char* key : {"median_angle_deg", "p90_angle_deg", "median_view_deg", "median_shift_A"})
    EXPECT_NEAR(other[key].get<double>(), doc[key].get<double>(), 1e-12) << key;
}

// The same refinement imported into Scipion (../shared/data/scipion: a real
// ProtImportParticles set of run_data.star, poses as 4x4 matrices) against the truth:
// the figures of the STAR comparison, to rounding. Its 100-particle subset
// (ProtSubSet) matches 100 of the truth's 1000, and the other 900 are reported. The
// refinement written as a cryoSPARC .cs gives them too.
TEST(ConsensusPoses, ScipionAndCryosparcFilesAgainstTheTruth) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path truth_star = *data / "relion_7DDO" / "Particles" / "particles.star";
  TempDir tmp;
  const RunResult r =
      run(tmp, tmp / "all", *data / "scipion" / "Runs" / "000002_ProtImportParticles" / "particles.sqlite", truth_star);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = read_json(tmp / "all" / "pose_consensus.json");
  EXPECT_EQ(doc["compared"], 1000);
  EXPECT_EQ(doc["agreeing"], 938);
  EXPECT_NEAR(doc["median_angle_deg"].get<double>(), 2.227936672068058, 1e-6);
  EXPECT_NEAR(doc["p90_angle_deg"].get<double>(), 4.33360420107659, 1e-6);
  EXPECT_NEAR(doc["median_shift_A"].get<double>(), 0.5260625309581113, 1e-6);

  const RunResult sub =
      run(tmp, tmp / "subset", *data / "scipion" / "Runs" / "000098_ProtSubSet" / "particles.sqlite", truth_star);
  ASSERT_EQ(sub.exit_code, 0) << sub.err;
  EXPECT_NE(sub.out.find("900 of 1000 particles are not in every other file"), std::string::npos) << sub.out;
  const auto part = read_json(tmp / "subset" / "pose_consensus.json");
  EXPECT_EQ(part["compared"], 100);
  EXPECT_EQ(part["matching"]["files"][1]["unmatched"], 900);
  EXPECT_EQ(read_particles_star(tmp / "subset" / "agreeing.star").particles.size() +
                read_particles_star(tmp / "subset" / "disagreeing.star").particles.size(),
            100u);

  // And as a cryoSPARC .cs (poses as float32 rotation vectors, shifts in float32 pixels):
  // the same figures to float32 rounding.
  write_cryosparc_particles(tmp / "refined.cs",
                            read_particles_star(*data / "relion_7DDO" / "Refine3D" / "run_data.star"),
                            *data / "relion_7DDO");
  const RunResult cs = run(tmp, tmp / "cs", tmp / "refined.cs", truth_star);
  ASSERT_EQ(cs.exit_code, 0) << cs.err;
  const auto from_cs = read_json(tmp / "cs" / "pose_consensus.json");
  EXPECT_EQ(from_cs["compared"], 1000);
  EXPECT_NEAR(from_cs["median_angle_deg"].get<double>(), 2.227936672068058, 1e-4);
  EXPECT_NEAR(from_cs["median_shift_A"].get<double>(), 0.5260625309581113, 1e-4);
}

// The true poses as B = A R_k Rot(u, delta) with R_k a random mate per particle and
// known delta (0-10 deg, about a random axis) and shift (0-5 A): under the group the
// distances are the perturbations; without symmetry (C1) most particles disagree.
// The mates are built here from their axes (C7: z; D2: x, y, z), not taken from Tessera.
TEST(ConsensusPoses, SymmetryMatesWithKnownPerturbations) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const ParticleSet a = truth(*data);
  std::map<std::string, std::vector<Mat3>> groups;
  for (int k = 0; k < 7; ++k) groups["C7"].push_back(axis_angle_matrix({0, 0, 1}, 360.0 * k / 7));
  groups["D2"] = {identity3(), axis_angle_matrix({1, 0, 0}, 180), axis_angle_matrix({0, 1, 0}, 180),
                  axis_angle_matrix({0, 0, 1}, 180)};
  TempDir tmp;
  write_particles_star(tmp / "a.star", a, *data / "relion_7DDO");
  for (const auto& [name, mates] : groups) {
    SCOPED_TRACE(name);
    Rng rng(name == "C7" ? 7 : 2);
    ParticleSet b = a;
    std::map<std::string, std::array<double, 2>> known;  // image -> delta, shift
    for (Particle& p : b.particles) {
      const double delta = 10 * uniform01(rng), shift = 5 * uniform01(rng), phi = 2 * std::numbers::pi * uniform01(rng);
      const double z = 2 * uniform01(rng) - 1, t = 2 * std::numbers::pi * uniform01(rng), s = std::sqrt(1 - z * z);
      const Mat3& mate = mates[static_cast<std::size_t>(uniform01(rng) * static_cast<double>(mates.size()))];
      const Mat3 moved = multiply(multiply(euler_to_matrix(p.pose->angles), mate),
                                  axis_angle_matrix({s * std::cos(t), s * std::sin(t), z}, delta));
      p.pose->angles = matrix_to_euler(moved);
      p.pose->origin_x_A += shift * std::cos(phi);
      p.pose->origin_y_A += shift * std::sin(phi);
      known[p.image.to_string()] = {delta, shift};
    }
    write_particles_star(tmp / "b.star", b, *data / "relion_7DDO");
    const fs::path out = tmp / ("out_" + name);
    const RunResult r = run(tmp, out, tmp / "a.star", tmp / "b.star", {"--symmetry", name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto table = read_table(out / "pose_consensus.star");
    ASSERT_EQ(table.size(), 1000u);
    long agree = 0;
    for (const auto& [image, want] : known) {
      const Row& got = table.at(image);
      EXPECT_NEAR(got.angle, want[0], 1e-6) << image;
      EXPECT_NEAR(got.shift, want[1], 1e-6) << image;
      EXPECT_LE(got.view, got.angle + 1e-9) << image;
      EXPECT_EQ(got.agree, want[0] <= 5 && want[1] <= 3) << image;
      agree += want[0] <= 5 && want[1] <= 3;
    }
    const auto doc = read_json(out / "pose_consensus.json");
    EXPECT_EQ(doc["agreeing"], agree);
    EXPECT_EQ(doc["symmetry_order"], mates.size());
    EXPECT_NEAR(doc["median_angle_deg"].get<double>(), 5, 0.5);  // delta uniform in [0, 10]
    EXPECT_FALSE(doc["diagnosis"]["unrelated"].get<bool>());

    const fs::path plain = tmp / ("c1_" + name);
    ASSERT_EQ(run(tmp, plain, tmp / "a.star", tmp / "b.star").exit_code, 0);
    // Only the particles that drew the identity (1 in 7, 1 in 4) can still agree.
    const double expected_fraction = 1.0 / static_cast<double>(mates.size());
    EXPECT_LT(read_json(plain / "pose_consensus.json")["agreeing"].get<double>(), 1000 * expected_fraction);
  }
}

// B = the true poses against a map of the opposite hand: unrelated to RELION's
// refinement, and the program says so; flipping B's hand back gives the distances of
// the plain comparison.
TEST(ConsensusPoses, OppositeHandIsDiagnosed) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO";
  ParticleSet b = truth(*data);
  for (Particle& p : b.particles) p.pose->angles.tilt = -p.pose->angles.tilt;  // M A M, pose_consensus.hpp
  TempDir tmp;
  write_particles_star(tmp / "mirror.star", b, dir);
  const fs::path out = tmp / "out";
  const RunResult r = run(tmp, out, dir / "Refine3D" / "run_data.star", tmp / "mirror.star");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = read_json(out / "pose_consensus.json");
  std::cout << "[ measured ] opposite hand: median " << doc["median_angle_deg"] << " deg, agreeing " << doc["agreeing"]
            << "\n";
  EXPECT_NEAR(doc["diagnosis"]["opposite_hand"]["median_angle_deg"].get<double>(), 2.227936672068058, 1e-9);
  EXPECT_GT(doc["median_angle_deg"].get<double>(), 30);
  EXPECT_TRUE(doc["diagnosis"]["opposite_hand"]["likely"].get<bool>());
  EXPECT_NE(r.out.find("opposite hand"), std::string::npos) << r.out;
}

// B = the true poses in a frame rotated by Q (30 deg about (1, -1, 2)): without
// --align-frames the poses look unrelated; with it the frame found is F Q, F the
// frame between RELION's refinement and the truth (measured: 0.58 deg, the drift of
// RELION's frame from the truth's), and the distances are those of the aligned
// comparison without Q.
TEST(ConsensusPoses, AlignFramesRecoversAGlobalRotation) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO", refined = dir / "Refine3D" / "run_data.star";
  const Mat3 q = axis_angle_matrix({1, -1, 2}, 30);
  ParticleSet b = truth(*data);
  for (Particle& p : b.particles) p.pose->angles = matrix_to_euler(multiply(euler_to_matrix(p.pose->angles), q));
  TempDir tmp;
  write_particles_star(tmp / "rotated.star", b, dir);
  const fs::path plain = tmp / "plain", aligned = tmp / "aligned", drift = tmp / "drift";
  const RunResult r1 = run(tmp, plain, refined, tmp / "rotated.star");
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_GT(read_json(plain / "pose_consensus.json")["median_angle_deg"].get<double>(), 20);
  EXPECT_NE(r1.out.find("--align-frames"), std::string::npos) << r1.out;  // the diagnosis
  const std::vector<std::string> align = {"--align-frames", "true"};
  ASSERT_EQ(run(tmp, drift, refined, dir / "Particles" / "particles.star", align).exit_code, 0);
  const RunResult r2 = run(tmp, aligned, refined, tmp / "rotated.star", align);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;

  auto frame_of = [](const nlohmann::json& frame) {
    Mat3 m{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) m[i][j] = frame["rotation"][i][j].get<double>();
    return m;
  };
  const auto reference = read_json(drift / "pose_consensus.json"), doc = read_json(aligned / "pose_consensus.json");
  const Mat3 f = frame_of(reference["frame"]);
  std::cout << "[ measured ] RELION's frame against the truth: " << reference["frame"]["angle_deg"] << " deg; median "
            << reference["median_angle_deg"] << " deg aligned, " << reference["frame"]["median_angle_deg_unaligned"]
            << " deg as given\n";
  EXPECT_LT(reference["frame"]["angle_deg"].get<double>(), 1.0);
  EXPECT_LT(reference["median_angle_deg"].get<double>(), 2.227936672068058);
  EXPECT_LT(rotation_distance_deg(frame_of(doc["frame"]), multiply(f, q)), 0.02) << doc["frame"].dump();
  EXPECT_NEAR(doc["median_angle_deg"].get<double>(), reference["median_angle_deg"].get<double>(), 0.01);
  EXPECT_GT(doc["frame"]["median_angle_deg_unaligned"].get<double>(), 20);
}

}  // namespace
