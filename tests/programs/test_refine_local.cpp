// tessera_refine_local run as a user runs it: two rigid modules moving against each other
// (tessera_simulate's module mode), a consensus reconstruction at the particles' common poses
// (tessera_reconstruct), then local refinement with one mask per module. Each module's map must come
// closer to that module's truth than the consensus map is, and the outputs must be the declared ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/fsc.hpp"
#include "tessera/geometry.hpp"
#include "tessera/mask.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/simulate.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

// Median angle between the poses of two STAR files of the same particles, in order.
double median_angle_deg(const fs::path& a, const fs::path& b) {
  const ParticleSet pa = read_particles_star(a), pb = read_particles_star(b);
  std::vector<double> d;
  for (std::size_t i = 0; i < pa.particles.size(); ++i)
    d.push_back(rotation_distance_deg(euler_to_matrix(pa.particles[i].pose->angles),
                                      euler_to_matrix(pb.particles[i].pose->angles)));
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return d[d.size() / 2];
}

// Resolution (A) at FSC 0.5 between a module's map (the average of two half maps) and its truth, both
// multiplied by the module's mask.
double resolution_against_truth(const fs::path& half_a, const fs::path& half_b, const fs::path& truth,
                                const RealGrid& mask) {
  const RealGrid avg = average_maps(read_mrc(half_a).data, read_mrc(half_b).data);
  const MrcMap t = read_mrc(truth);
  const std::vector<double> curve = masked_fsc(avg, t.data, mask);
  const double r = resolution_at(curve, 0.5, avg.nx(), t.voxel_A).value_or(2 * t.voxel_A);
  return std::isfinite(r) ? r : avg.nx() * t.voxel_A;
}

// The phantom (box 48, 3 A/px) cut in two along x: two modules, each rotated about its centre of mass
// by N(0, 4 deg) about a random axis and shifted by N(0, 1 px) per axis, per particle. 800 particles at
// SNR 1. The consensus half maps are reconstructed at the particles' common poses, so each module is
// blurred by its own motion. One round of 3 local iterations per module must make each module's map
// agree with its truth to a finer resolution (FSC 0.5 inside its mask) than the consensus map does, by
// at least two Fourier shells of the box (measured: see the output).
TEST(RefineLocal, EachModulesMapComesCloserToItsTruth) {
  TempDir tmp;
  constexpr int box = 48;
  const RealGrid phantom = phantom_volume(box, 3.0, 7);
  RealGrid left(box, box, box), right(box, box, box), left_mask(box, box, box), right_mask(box, box, box);
  for (int z = 0; z < box; ++z)
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box; ++x) {
        (x < box / 2 ? left : right)(x, y, z) = phantom(x, y, z);
      }
  const RealGrid lm = map_mask(left, 12.0, 3.0, 0.1, 3.0, 6.0), rm = map_mask(right, 12.0, 3.0, 0.1, 3.0, 6.0);
  write_mrc(tmp / "left.mrc", left, 3.0);
  write_mrc(tmp / "right.mrc", right, 3.0);
  write_mrc(tmp / "left_mask.mrc", lm, 3.0);
  write_mrc(tmp / "right_mask.mrc", rm, 3.0);
  const fs::path sim = tmp / "sim", cons = tmp / "cons", out = tmp / "local";
  RunResult r = test::run_program(
      tmp, "simulate",
      {"--out", sim.string(), "--module-volumes", (tmp / "left.mrc").string() + "," + (tmp / "right.mrc").string(),
       "--count", "800", "--snr", "1", "--module-rotation-sigma-deg", "4", "--module-shift-sigma-px", "1",
       "--threads", "2", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_program(tmp, "reconstruct",
                        {"--out", cons.string(), "--particles", (sim / "particles.star").string(), "--threads", "2",
                         "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_program(
      tmp, "refine_local",
      {"--out", out.string(), "--particles", (sim / "particles.star").string(), "--half-map-A",
       (cons / "map_half_A.mrc").string(), "--half-map-B", (cons / "map_half_B.mrc").string(), "--mask",
       (tmp / "left_mask.mrc").string(), "--more-module-masks", (tmp / "right_mask.mrc").string(), "--rounds", "1",
       "--iterations-per-module", "3", "--threads", "2", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int m = 1; m <= 2; ++m) {
    const std::string k = std::to_string(m);
    const RealGrid mask = read_mrc(tmp / (m == 1 ? "left_mask.mrc" : "right_mask.mrc")).data;
    const fs::path truth = sim / ("module_" + k + ".mrc");
    const double consensus = resolution_against_truth(cons / "map_half_A.mrc", cons / "map_half_B.mrc", truth, mask);
    const double local = resolution_against_truth(out / ("module_" + k + "_half_A.mrc"),
                                                  out / ("module_" + k + "_half_B.mrc"), truth, mask);
    std::cout << "[ measured ] module " << m << ": resolution against its truth (FSC 0.5) " << consensus
              << " A (consensus) -> " << local << " A (local); median angular error "
              << median_angle_deg(sim / "particles.star", sim / ("module_" + k + "_poses.star")) << " -> "
              << median_angle_deg(out / ("module_" + k + "_particles.star"), sim / ("module_" + k + "_poses.star"))
              << " deg\n";
    EXPECT_GE(box * 3.0 / local, box * 3.0 / consensus + 2) << "module " << m;
  }
  const auto modules = nlohmann::json::parse(test::read_text(out / "modules.json"));
  ASSERT_EQ(modules.size(), 2u);
  for (const auto& m : modules) {
    EXPECT_TRUE(fs::exists(out / m["map"].get<std::string>()));
    EXPECT_TRUE(fs::exists(out / m["half_map_A"].get<std::string>()));
    EXPECT_GT(m["resolution_A"].get<double>(), 0);
  }
  EXPECT_TRUE(fs::exists(out / "composite.mrc"));
  const auto manifest = nlohmann::json::parse(test::read_text(out / "outputs.json"));
  EXPECT_EQ(manifest["status"], "done");

  // The same with non-uniform refinement's regularizer for each module's maps (one iteration): the
  // modules' maps improve on the consensus as well.
  const fs::path nu = tmp / "local_nu";
  r = test::run_program(
      tmp, "refine_local",
      {"--out", nu.string(), "--particles", (sim / "particles.star").string(), "--half-map-A",
       (cons / "map_half_A.mrc").string(), "--half-map-B", (cons / "map_half_B.mrc").string(), "--mask",
       (tmp / "left_mask.mrc").string(), "--more-module-masks", (tmp / "right_mask.mrc").string(), "--rounds", "1",
       "--iterations-per-module", "1", "--nu-regularizer", "true", "--threads", "2", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int m = 1; m <= 2; ++m) {
    const std::string k = std::to_string(m);
    const RealGrid mask = read_mrc(tmp / (m == 1 ? "left_mask.mrc" : "right_mask.mrc")).data;
    const fs::path truth = sim / ("module_" + k + ".mrc");
    const double consensus = resolution_against_truth(cons / "map_half_A.mrc", cons / "map_half_B.mrc", truth, mask);
    const double local = resolution_against_truth(nu / ("module_" + k + "_half_A.mrc"),
                                                  nu / ("module_" + k + "_half_B.mrc"), truth, mask);
    std::cout << "[ measured ] module " << m << " with the NU regularizer: " << consensus << " A -> " << local << " A\n";
    EXPECT_GE(box * 3.0 / local, box * 3.0 / consensus + 2) << "module " << m;
  }
}

}  // namespace
