// tessera_local_resolution run as a user runs it: on RELION's own half maps of relion_7DDO, where the
// median local resolution inside the mask must agree with the global resolution, and on half maps
// whose two halves of the box are resolved to different resolutions (the program's outputs, their
// units). Bad inputs are rows of test_bad_inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_programs.hpp"
#include "tessera/fft.hpp"
#include "tessera/mrc.hpp"
#include "tessera/random.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
using namespace tessera;
using test::RunResult;
using test::TempDir;

namespace {

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(test::read_text(p)); }

// relion_postprocess 3.1.3 on these half maps and this mask: 6.19 A (README, step 6), one shell from
// Nyquist (6 A); shell k of the 64-voxel box at 3 A is 192 / k A.
TEST(LocalResolutionProgram, MedianAgreesWithTheGlobalResolutionOnRelion7ddo) {
  const auto data = test::shared_data();
  if (!data) GTEST_SKIP() << "no shared data";
  const fs::path dir = *data / "relion_7DDO";
  TempDir tmp;
  const fs::path out = tmp / "locres";
  const RunResult r = test::run_program(
      tmp, "local_resolution",
      {"--out", out.string(), "--half-map-A", (dir / "Refine3D" / "run_half1_class001_unfil.mrc").string(),
       "--half-map-B", (dir / "Refine3D" / "run_half2_class001_unfil.mrc").string(), "--mask",
       (dir / "ground_truth" / "mask_full.mrc").string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json h = read_json(out / "local_resolution.json");
  const double median = h["median_A"], relion = 6.193548;
  std::cout << "[ measured ] median local resolution " << median << " A; 5-95% " << h["p05_A"] << "-" << h["p95_A"]
            << " A; global masked corrected " << h["global_masked_corrected_fsc_0143_A"] << " A (RELION " << relion
            << " A)\n";
  EXPECT_NEAR(192.0 / median, 192.0 / relion, 1.0);
  EXPECT_NEAR(192.0 / median, 192.0 / double(h["global_masked_corrected_fsc_0143_A"]), 1.0);
  long counted = 0;
  for (const auto& bin : h["bins"]) counted += bin["voxels"].get<long>();
  EXPECT_EQ(counted, h["voxels"].get<long>());

  const MrcMap map = read_mrc(out / "local_resolution.mrc");
  EXPECT_EQ(map.data.nx(), 64);
  EXPECT_NEAR(map.voxel_A, 3.0, 1e-4);
  for (float v : map.data.values()) {
    ASSERT_GE(v, 6.0f - 1e-3f);  // Nyquist
    ASSERT_LE(v, 64 * 3.0f);
  }
  EXPECT_TRUE(fs::exists(out / "locally_filtered.mrc"));
  const nlohmann::json manifest = read_json(out / "outputs.json");
  EXPECT_EQ(manifest["status"], "done");
}

// Half maps whose signal in x < 32 has an FSC falling through 0.143 at shell 8 (16 A at 2 A/voxel) and in
// x >= 32 at shell 20 (6.4 A): the signal's power falls e-fold every 4 shells, against independent unit
// noise, as real maps' FSC curves fall. The local-resolution map says so in each half of the box (within
// 1.5 shells: a 12-voxel window in a 64 box measures few Fourier samples at shell 8).
TEST(LocalResolutionProgram, ResolvesTwoRegionsInAngstrom) {
  constexpr int n = 64;
  Rng rng(21);
  auto noise = [&] {
    RealGrid g(n, n, n);
    for (auto& v : g.values()) v = static_cast<float>(normal01(rng));
    return g;
  };
  // White noise with power spectral density 0.1669 exp((crossing - k) / 4): FSC = S / (S + 1) = 0.143 there.
  auto falling = [&](double crossing) {
    ComplexGrid f = fft_3d(noise());
    for (int z = 0; z < n; ++z)
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n / 2 + 1; ++x) {
          const double ky = fourier_index(y, n), kz = fourier_index(z, n);
          const double k = std::sqrt(x * x + ky * ky + kz * kz);
          f(x, y, z) *= static_cast<float>(std::sqrt(0.1669 * std::exp((crossing - k) / 4)));
        }
    return ifft_3d(f, n);
  };
  const RealGrid coarse = falling(8), fine = falling(20);
  RealGrid signal(n, n, n);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) signal(x, y, z) = x < n / 2 ? coarse(x, y, z) : fine(x, y, z);
  TempDir tmp;
  for (const char* name : {"a.mrc", "b.mrc"}) {
    RealGrid h = noise();
    for (std::size_t i = 0; i < h.size(); ++i) h[i] += signal[i];
    write_mrc(tmp / name, h, 2.0);
  }
  const fs::path out = tmp / "locres";
  const RunResult r = test::run_program(tmp, "local_resolution",
                                        {"--out", out.string(), "--half-map-A", (tmp / "a.mrc").string(),
                                         "--half-map-B", (tmp / "b.mrc").string(), "--window-A", "24", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const RealGrid res = read_mrc(out / "local_resolution.mrc").data;
  // Cores of the two halves, 8 voxels from the boundaries (x = 0 and 32).
  double coarse_shells = 0, fine_shells = 0;
  long count = 0;
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 8; x < 24; ++x) {
        coarse_shells += n * 2.0 / res(x, y, z);
        fine_shells += n * 2.0 / res(x + 32, y, z);
        ++count;
      }
  coarse_shells /= count;
  fine_shells /= count;
  std::cout << "[ measured ] mean crossing " << coarse_shells << " shells (crossing at 8), " << fine_shells
            << " shells (at 20)\n";
  EXPECT_NEAR(coarse_shells, 8, 1.5);
  EXPECT_NEAR(fine_shells, 20, 1.5);
  const nlohmann::json h = read_json(out / "local_resolution.json");
  EXPECT_EQ(h["counted_inside"], "whole box");
  EXPECT_TRUE(h["global_masked_corrected_fsc_0143_A"].is_null());
}

}  // namespace
