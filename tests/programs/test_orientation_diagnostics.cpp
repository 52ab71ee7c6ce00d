// tessera_orientation_diagnostics run as a user runs it: on RELION's refinement of
// relion_7DDO (../shared/data), on poses restricted to a cone about z (preferred
// orientation) with half maps missing the matching cone of Fourier space, and on bad inputs (exit 2,
// one line naming the file or parameter, nothing written), as test_bad_inputs does
// for the other programs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/fft.hpp"
#include "tessera/mrc.hpp"
#include "tessera/orientation_diagnostics.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/random.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

constexpr double kDeg = std::numbers::pi / 180.0;

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(test::read_text(p)); }

std::vector<Euler> star_poses(const fs::path& star) {
  std::vector<Euler> poses;
  for (const Particle& p : read_particles_star(star).particles) poses.push_back(p.pose->angles);
  return poses;
}

// The BILD file's cylinders: each starts R = box/2 * voxel A from the map centre
// (box/2 * voxel on each axis) and points outwards; one per non-empty cell.
void check_bild(const fs::path& bild, int box, double voxel_A, long cells_with_views) {
  std::istringstream in(test::read_text(bild));
  std::string line;
  long cylinders = 0, colours = 0;
  const double c = (box / 2) * voxel_A, radius = 0.5 * box * voxel_A;
  while (std::getline(in, line)) {
    if (line.rfind(".color ", 0) == 0) ++colours;
    if (line.rfind(".cylinder ", 0) != 0) continue;
    std::istringstream f(line.substr(10));
    double x1, y1, z1, x2, y2, z2, w;
    ASSERT_TRUE(f >> x1 >> y1 >> z1 >> x2 >> y2 >> z2 >> w) << line;
    const double r1 = std::hypot(x1 - c, y1 - c, z1 - c), r2 = std::hypot(x2 - c, y2 - c, z2 - c);
    EXPECT_NEAR(r1, radius, 0.02) << line;  // written to 0.01 A
    EXPECT_GT(r2, r1) << line;
    EXPECT_GT(w, 0) << line;
    ++cylinders;
  }
  EXPECT_EQ(cylinders, cells_with_views);
  EXPECT_EQ(colours, cylinders);
}

long cells_with_views(const nlohmann::json& counts, long* total) {
  long cells = 0;
  *total = 0;
  for (const auto& cell : counts["cells"]) {
    const long n = cell["count"].get<long>();
    *total += n;
    cells += n > 0 ? 1 : 0;
  }
  return cells;
}

// relion_7DDO: 1000 particles whose views RELION simulated uniformly (its README);
// half maps of RELION's Refine3D.
TEST(OrientationDiagnostics, Relion7DDO) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO" / "Refine3D";
  TempDir tmp;
  const fs::path out = tmp / "out";
  const RunResult r = test::run_program(
      tmp, "orientation_diagnostics",
      {"--out", out.string(), "--particles", (dir / "run_data.star").string(), "--half-map-A",
       (dir / "run_half1_class001_unfil.mrc").string(), "--half-map-B", (dir / "run_half2_class001_unfil.mrc").string(),
       "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto fig = read_json(out / "orientation_diagnostics.json");
  const auto manifest = read_json(out / "outputs.json");
  EXPECT_EQ(manifest["status"], "done");
  EXPECT_EQ(manifest["outputs"].size(), 4u);

  // The program's SCF* is the engine's on the same poses (same subset: all 1000).
  const ScfResult ref = sampling_compensation_factor(star_poses(dir / "run_data.star"), {});
  EXPECT_EQ(fig["views"]["particles"], 1000);
  EXPECT_NEAR(fig["views"]["scf_star"].get<double>(), ref.scf_star, 1e-12);
  // Uniform views: SCF ~ 1 - 0.99 / lambda with lambda = N / (2R) = 10 only (1000
  // particles), i.e. 0.90, and a point or two empty; measured 0.882. Above 0.81: no
  // preferred orientation.
  EXPECT_GT(ref.scf_star, 0.85);
  EXPECT_LT(ref.scf_star, 0.93);

  long total = 0;
  const auto counts = read_json(out / "view_counts.json");
  const long cells = cells_with_views(counts, &total);
  EXPECT_EQ(total, 1000);
  check_bild(out / "angdist.bild", 64, 3.0, cells);

  // Isotropic views, so isotropic half maps: cFAR well above 0.5 (measured 0.80), and
  // the unmasked resolution in every direction near the global unmasked one (7.4 A).
  const auto& cones = fig["conical_fsc"];
  EXPECT_GT(cones["cfar"].get<double>(), 0.6);
  EXPECT_NEAR(cones["global_resolution_A"].get<double>(), 7.38, 0.01);  // 64 * 3 / 26
  EXPECT_GE(cones["worst"]["resolution_A"].get<double>(), cones["best"]["resolution_A"].get<double>() - 1e-9);
  EXPECT_LT(cones["worst"]["resolution_A"].get<double>(), 10.0);
  const auto cfsc = read_json(out / "cfsc.json");
  EXPECT_EQ(cfsc["cones"].size(), 500u);
  EXPECT_EQ(cfsc["cones"][0]["curve"].size(), 33u);
}

// Half maps of box 64 = signal + independent unit white noise, the signal (white, sigma
// 3: FSC ~0.9) kept to shell 24 except within 45 degrees of the k_z axis, where it stops
// at shell 8: Fourier space as a reconstruction from views near z leaves it (no central
// section reaches the k_z axis). Built in Fourier space rather than reconstructed:
// tessera_reconstruct fills the unsampled cone with low-resolution signal leaked
// identically into both halves (their cFSC there is ~1), which would measure that
// leak instead of the diagnostics.
void write_missing_cone_half_maps(const fs::path& a_file, const fs::path& b_file) {
  const int n = 64;
  Rng rng(8);
  RealGrid signal(n, n, n), a(n, n, n), b(n, n, n);
  for (float& v : signal.values()) v = static_cast<float>(3 * normal01(rng));
  ComplexGrid f = fft_3d(signal);
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < f.ny(); ++y)
      for (int x = 0; x < f.nx(); ++x) {
        const double kz = fourier_index(z, n), ky = fourier_index(y, n), r = std::sqrt(x * x + ky * ky + kz * kz);
        const bool top = r > 0 && std::abs(kz) >= r * std::cos(45 * kDeg);
        if (std::lround(r) > (top ? 8 : 24)) f(x, y, z) = 0;
      }
  signal = ifft_3d(f, n);
  for (std::size_t i = 0; i < signal.size(); ++i) {
    a[i] = signal[i] + static_cast<float>(normal01(rng));
    b[i] = signal[i] + static_cast<float>(normal01(rng));
  }
  write_mrc(a_file, a, 3.0);
  write_mrc(b_file, b, 3.0);
}

// Views within 10 degrees of z (tilt <= 10, rot and psi uniform): 1500 particles, poses
// only (the program reads no images), with half maps missing the k_z cone.
TEST(OrientationDiagnostics, PreferredOrientation) {
  TempDir tmp;
  ParticleSet set;
  set.optics.push_back({});
  set.optics[0].pixel_A = 3.0;
  set.optics[0].image_size = 32;
  Rng rng(21);
  const double top_deg = 10;
  for (int i = 0; i < 1500; ++i) {
    Particle p;
    p.image = ImageRef{i + 1, "poses.mrcs"};
    // cos(tilt) uniform in [cos 10, 1]: views uniform over the cap.
    const double z = 1 - (1 - std::cos(top_deg * kDeg)) * uniform01(rng);
    p.pose = ProjectionPose{{360 * uniform01(rng), std::acos(z) / kDeg, 360 * uniform01(rng)}};
    set.particles.push_back(p);
  }
  write_particles_star(tmp / "poses.star", set, tmp.path());
  write_missing_cone_half_maps(tmp / "a.mrc", tmp / "b.mrc");
  const fs::path out = tmp / "od";
  const RunResult r = test::run_program(
      tmp, "orientation_diagnostics",
      {"--out", out.string(), "--particles", (tmp / "poses.star").string(), "--half-map-A", (tmp / "a.mrc").string(),
       "--half-map-B", (tmp / "b.mrc").string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto fig = read_json(out / "orientation_diagnostics.json");

  // SCF*: u is sampled only where some view is perpendicular to it, |u_z| <= sin 10 =
  // 0.174 (plus the section's half-thickness 1/(2R) = 0.01, minus the sparse edge of the
  // cap): f0 ~ 1 - 0.174. Then Q/P ~ 4.7, <S> = N/(2R) = 15, and SCF* = SCF / (1 + 4.7 *
  // 15 * SCF / 2) <= 1 / 36 for any SCF <= 1 of the sampled band (measured 0.029 with
  // SCF ~ 1.04: the few points at the band's edge can lift SCF a little above 1).
  const auto& views = fig["views"];
  EXPECT_NEAR(views["scf_fraction_unsampled"].get<double>(), 1 - std::sin(top_deg * kDeg), 0.02);
  EXPECT_LT(views["scf_star"].get<double>(), 0.035);
  // The densest view cell is one of the cells near z.
  EXPECT_GT(views["view_cell_most"]["direction"]["xyz"][2].get<double>(), std::cos(15 * kDeg));
  long total = 0;
  const long cells = cells_with_views(read_json(out / "view_counts.json"), &total);
  EXPECT_EQ(total, 1500);
  check_bild(out / "angdist.bild", 64, 3.0, cells);  // placed by the half maps

  // cFAR: areas ~ 8 * 0.9 / 32 about z and 24 * 0.9 / 32 about the equator: ~0.33.
  // The worst cone lies about z, the best away from it, and their resolutions are those
  // built, within one shell (noise above 0.143 just beyond can move the crossing out one).
  const auto& cones = fig["conical_fsc"];
  EXPECT_LT(cones["cfar"].get<double>(), 0.5);
  EXPECT_GT(std::abs(cones["worst"]["xyz"][2].get<double>()), std::cos(25 * kDeg));
  EXPECT_LT(std::abs(cones["best"]["xyz"][2].get<double>()), std::sin(45 * kDeg));
  ASSERT_TRUE(cones["worst"]["resolution_A"].is_number() && cones["best"]["resolution_A"].is_number()) << cones.dump();
  const double worst_A = cones["worst"]["resolution_A"].get<double>(), best_A = cones["best"]["resolution_A"].get<double>();
  EXPECT_TRUE(worst_A <= 192.0 / 8 + 1e-9 && worst_A >= 192.0 / 9 - 1e-9) << worst_A;
  EXPECT_TRUE(best_A <= 192.0 / 24 + 1e-9 && best_A >= 192.0 / 25 - 1e-9) << best_A;
}

// ---- bad inputs: exit 2, one line "ERROR: ..." naming the culprit, no --out ------

struct BadRow {
  std::string name;
  std::vector<std::string> args;  // besides --out
  std::string names;              // what the error line must contain
};

TEST(OrientationDiagnostics, BadInputsExitTwoAndWriteNothing) {
  TempDir tmp;
  RealGrid g(16, 16, 16);
  Rng rng(1);
  for (float& v : g.values()) v = static_cast<float>(normal01(rng));
  write_mrc(tmp / "a.mrc", g, 2.0);
  write_mrc(tmp / "b.mrc", g, 2.0);
  write_mrc(tmp / "b24.mrc", RealGrid(24, 24, 24, 1.0f), 2.0);
  test::write_text(tmp / "garbage.star", "this is not a STAR file\n\x01\x02\n");
  ParticleSet no_poses;
  no_poses.optics.push_back({});
  no_poses.particles.push_back({});
  no_poses.particles[0].image = ImageRef{1, "x.mrcs"};
  write_particles_star(tmp / "no_poses.star", no_poses, tmp.path());
  const std::string a = (tmp / "a.mrc").string(), b = (tmp / "b.mrc").string();
  const std::vector<BadRow> rows = {
      {"missing_particles_file", {"--particles", (tmp / "none.star").string()}, "none.star"},
      {"half_map_A_without_B", {"--half-map-A", a}, "--half-map-B"},
      {"half_map_B_without_A", {"--half-map-B", b}, "--half-map-A"},
      {"no_input_at_all", {}, "--particles"},
      {"unreadable_star", {"--particles", (tmp / "garbage.star").string()}, "garbage.star"},
      {"particles_without_poses", {"--particles", (tmp / "no_poses.star").string()}, "no_poses.star"},
      {"half_maps_of_different_boxes", {"--half-map-A", a, "--half-map-B", (tmp / "b24.mrc").string()}, "b24.mrc"},
      {"cone_half_angle_zero", {"--half-map-A", a, "--half-map-B", b, "--cone-half-angle-deg", "0"},
       "cone-half-angle-deg"},
      {"no_directions", {"--half-map-A", a, "--half-map-B", b, "--directions", "0"}, "directions"},
  };
  for (const BadRow& row : rows) {
    SCOPED_TRACE(row.name);
    const fs::path out = tmp / ("out_" + row.name);
    std::vector<std::string> args = {"--out", out.string()};
    args.insert(args.end(), row.args.begin(), row.args.end());
    const RunResult r = test::run_program(tmp, "orientation_diagnostics", args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.rfind("ERROR: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
    EXPECT_NE(r.err.find(row.names), std::string::npos) << "does not name '" << row.names << "': " << r.err;
    EXPECT_FALSE(fs::exists(out)) << "left " << out;
  }
}

// The chain a user runs: particles with a preferred orientation (90% of the views within 15 degrees of z,
// 10% uniform), simulated at SNR 0.1 from the phantom, reconstructed by tessera_reconstruct into gold-standard
// half maps, then diagnosed. The k_z cone is sampled only by the uniform tenth, so its FSC is noisier:
// cFAR below 0.5 (measured 0.40 on relion_7DDO's map with 3000 particles), and SCF* far below 0.81 (about
// 0.1). Unlike the Fourier-built maps above, these hold whatever the reconstruction leaks into the sparse
// cone, as a user's maps do.
TEST(OrientationDiagnostics, PreferredOrientationReconstructionIsAnisotropic) {
  TempDir tmp;
  ParticleSet set;
  set.optics.push_back({});
  set.optics[0].pixel_A = 3.0;
  set.optics[0].image_size = 64;
  Rng rng(33);
  for (int i = 0; i < 3000; ++i) {
    Particle p;
    p.image = ImageRef{i + 1, "poses.mrcs"};
    const double z = uniform01(rng) < 0.9 ? 1 - (1 - std::cos(15 * kDeg)) * uniform01(rng) : 2 * uniform01(rng) - 1;
    p.pose = ProjectionPose{{360 * uniform01(rng), std::acos(z) / kDeg, 360 * uniform01(rng)}};
    set.particles.push_back(p);
  }
  write_particles_star(tmp / "poses.star", set, tmp.path());
  ASSERT_EQ(test::run_program(tmp, "simulate",
                              {"--out", (tmp / "sim").string(), "--poses", (tmp / "poses.star").string(), "--count",
                               "3000", "--snr", "0.1", "--threads", "2", "--quiet"})
                .exit_code,
            0);
  ASSERT_EQ(test::run_program(tmp, "reconstruct",
                              {"--out", (tmp / "rec").string(), "--particles", (tmp / "sim" / "particles.star").string(),
                               "--threads", "2", "--quiet"})
                .exit_code,
            0);
  const fs::path out = tmp / "od";
  const RunResult r = test::run_program(
      tmp, "orientation_diagnostics",
      {"--out", out.string(), "--particles", (tmp / "sim" / "particles.star").string(), "--half-map-A",
       (tmp / "rec" / "map_half_A.mrc").string(), "--half-map-B", (tmp / "rec" / "map_half_B.mrc").string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto fig = read_json(out / "orientation_diagnostics.json");
  std::cout << "[ measured ] SCF* " << fig["views"]["scf_star"] << ", cFAR " << fig["conical_fsc"]["cfar"] << "\n";
  EXPECT_LT(fig["views"]["scf_star"].get<double>(), 0.3);
  EXPECT_LT(fig["conical_fsc"]["cfar"].get<double>(), 0.5);
}

}  // namespace
