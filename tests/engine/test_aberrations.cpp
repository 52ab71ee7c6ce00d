// Per-optics-group odd and even aberrations (aberrations.hpp, aberration_fit.hpp): RELION 3.1's
// conventions worked out independently, the reader's correction undoing the simulator's
// aberrations, the optics columns' round trip, and the fits against simulated ground truth.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>

#include "tessera/aberration_fit.hpp"
#include "tessera/aberrations.hpp"
#include "tessera/ctf.hpp"
#include "tessera/fft.hpp"
#include "tessera/magnification.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/simulate.hpp"
#include "tessera/subtract.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;

TEST(Zernike, IndicesAreRelions) {
  // rlnOddZernike: y, x, trefoil sin, coma y, coma x, trefoil cos, then order 5 from m = -5.
  const std::vector<std::pair<int, int>> odd{{-1, 1}, {1, 1}, {-3, 3}, {-1, 3}, {1, 3}, {3, 3}, {-5, 5}, {5, 5}};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(std::make_pair(odd_zernike_mode(i).m, odd_zernike_mode(i).n), odd[i]) << i;
  EXPECT_EQ(odd_zernike_mode(6).m, -5);
  EXPECT_EQ(odd_zernike_mode(11).m, 5);
  // rlnEvenZernike: piston, astigmatism sin, defocus, astigmatism cos, tetrafoil sin, ..., spherical, ..., tetrafoil
  // cos.
  const std::vector<std::pair<int, int>> even{{0, 0},  {-2, 2}, {0, 2}, {2, 2}, {-4, 4},
                                              {-2, 4}, {0, 4},  {2, 4}, {4, 4}};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(std::make_pair(even_zernike_mode(i).m, even_zernike_mode(i).n), even[i]) << i;
  EXPECT_EQ(odd_zernike_count(3), 6);
  EXPECT_EQ(odd_zernike_count(1), 2);
  EXPECT_EQ(even_zernike_count(4), 9);
  EXPECT_EQ(even_zernike_count(2), 4);
}

TEST(Zernike, ValuesAreTheTextbookPolynomialsAtUnnormalizedRadius) {
  const double x = 0.21, y = -0.13, r2 = x * x + y * y;
  EXPECT_NEAR(zernike({-1, 1}, x, y), y, 1e-15);
  EXPECT_NEAR(zernike({1, 3}, x, y), (3 * r2 - 2) * x, 1e-15);
  EXPECT_NEAR(zernike({-3, 3}, x, y), 3 * x * x * y - y * y * y, 1e-15);  // r^3 sin 3 theta
  EXPECT_NEAR(zernike({3, 3}, x, y), x * x * x - 3 * x * y * y, 1e-15);   // r^3 cos 3 theta
  EXPECT_NEAR(zernike({0, 2}, x, y), 2 * r2 - 1, 1e-15);
  EXPECT_NEAR(zernike({0, 4}, x, y), 6 * r2 * r2 - 6 * r2 + 1, 1e-15);
  EXPECT_NEAR(zernike({4, 4}, x, y), x * x * x * x - 6 * x * x * y * y + y * y * y * y, 1e-15);
  EXPECT_NEAR(zernike({-2, 4}, x, y), (4 * r2 * r2 - 3 * r2) * 2 * x * y / r2, 1e-15);
  EXPECT_THROW(zernike({2, 3}, x, y), std::invalid_argument);
}

// The wavelength from the physical constants (not the code's formula): lambda = h / sqrt(2 m e V (1 + e V / 2 m c^2)).
double wavelength_A(double kV) {
  const double h = 6.62607015e-34, m = 9.1093837015e-31, e = 1.602176634e-19, c = 299792458.0, v = kV * 1e3;
  return h / std::sqrt(2 * m * e * v * (1 + e * v / (2 * m * c * c))) * 1e10;
}

TEST(BeamTilt, PhaseIsMinusTwoPiCsLambdaSquaredKCubedAlongTheTilt) {
  // RELION 3.1 (tilt_helper.cpp insertTilt, obs_model.cpp getPhaseCorrection): the prediction is multiplied by
  // exp(i phi), phi(k) = -2 pi Cs lambda^2 |k|^2 (k . t), Cs and lambda in A, t in radians, k in 1/A.
  OpticsGroup g;
  g.voltage_kV = 300, g.cs_mm = 2.7, g.pixel_A = 1.2;
  g.beam_tilt_x_mrad = 0.5, g.beam_tilt_y_mrad = -0.3;
  const double lambda = wavelength_A(300), cs_A = 2.7e7;
  for (const auto& [kx, ky] : {std::pair{0.3, 0.0}, {0.0, -0.25}, {0.17, 0.22}}) {
    const double expected = -2 * kPi * cs_A * lambda * lambda * (kx * kx + ky * ky) * (kx * 0.5e-3 + ky * -0.3e-3);
    EXPECT_NEAR(odd_phase(g, kx, ky), expected, 2e-4 * std::abs(expected)) << kx << " " << ky;
  }
  // At 3 A along x, 0.5 mrad: -2 pi 2.7e7 lambda^2 / 27 * 5e-4 = -1.22 rad (lambda = 0.01969 A).
  g.beam_tilt_y_mrad = 0;
  EXPECT_NEAR(odd_phase(g, 1 / 3.0, 0), -1.2174, 1e-3);
}

TEST(BeamTilt, InsertAndExtractAsRelion) {
  OpticsGroup g;
  g.beam_tilt_x_mrad = 0.4, g.beam_tilt_y_mrad = 0.2;
  g.odd_zernike = {0.1, -0.2, 3.0, 7.0, 8.0, -1.0};  // [3], [4] are replaced by the tilt's (RELION's insertTilt)
  const double s = beam_tilt_phase_scale(g.cs_mm, g.voltage_kV);
  const std::vector<double> c = effective_odd_zernike(g);
  ASSERT_EQ(c.size(), 6u);
  EXPECT_NEAR(c[4], -s * 0.4 / 3, 1e-12);
  EXPECT_NEAR(c[3], -s * 0.2 / 3, 1e-12);
  EXPECT_NEAR(c[1], -0.2 + 2 * c[4], 1e-12);
  EXPECT_NEAR(c[0], 0.1 + 2 * c[3], 1e-12);
  EXPECT_EQ(c[2], 3.0);
  std::vector<double> back = c;
  double tx = 0, ty = 0;
  extract_beam_tilt(back, g.cs_mm, g.voltage_kV, tx, ty);
  EXPECT_NEAR(tx, 0.4, 1e-12);
  EXPECT_NEAR(ty, 0.2, 1e-12);
  const std::vector<double> expected{0.1, -0.2, 3.0, 0.0, 0.0, -1.0};
  for (std::size_t i = 0; i < 6; ++i) EXPECT_NEAR(back[i], expected[i], 1e-12) << i;
}

TEST(EvenAberrations, AddToTheCtfPhase) {
  Particle p;
  p.defocus_u_A = 12000, p.defocus_v_A = 11000, p.defocus_angle_deg = 30;
  OpticsGroup g;
  const CtfParams plain = CtfParams::of(p, g);
  g.even_zernike = {0.3, 1, -2, 3, -20, 4, 5, 6, 30, 0, 0, 0, 0, 0, 0, 0, 9};  // index 16: order 8 (phase() only)
  const CtfParams aberrated = CtfParams::of(p, g);
  ASSERT_EQ(aberrated.even_zernike, g.even_zernike);
  const Ctf a(plain), b(aberrated);
  for (const auto& [kx, ky] : {std::pair{0.3, 0.0}, {0.05, -0.25}, {-0.17, 0.22}}) {
    double sum = 0;
    for (int i = 0; i < static_cast<int>(g.even_zernike.size()); ++i)
      sum += g.even_zernike[i] * zernike(even_zernike_mode(i), kx, ky);
    EXPECT_NEAR(b.phase(kx, ky) - a.phase(kx, ky), sum, 1e-9);
    EXPECT_NEAR(b(kx, ky), -std::sin(b.phase(kx, ky)), 1e-6);  // RELION: CTF = -sin(chi + gammaOffset)
  }
  g.even_zernike.resize(9);  // up to order 4 phase_along holds them too
  const Ctf c(CtfParams::of(p, g));
  const double kx = 0.12, ky = -0.21;
  EXPECT_NEAR(c.phase_along(std::atan2(ky, kx)).at(kx * kx + ky * ky), c.phase(kx, ky), 1e-9);
}

SimulationOptions aberrated_options() {
  SimulationOptions o;
  o.pixel_A = 1.2;
  o.seed = 5;
  o.defocus_min_A = 8000, o.defocus_max_A = 16000, o.astigmatism_max_A = 300;
  o.particles_per_micrograph = 50;
  o.origin_sigma_A = 2;
  o.beam_tilt_x_mrad = 0.5, o.beam_tilt_y_mrad = -0.3;
  o.odd_zernike = {0, 0, 10, 0, 0, -6};
  o.even_zernike = {0, 0, 0, 0, -20, 0, 0, 0, 30};
  return o;
}

TEST(OddAberrations, TheReaderUndoesTheSimulator) {
  // The simulator multiplies by exp(+i phi), the reader by exp(-i phi): reading an aberrated image with its
  // group's aberrations gives the transform of the same particle simulated without odd aberrations.
  const std::vector<RealGrid> vol{phantom_volume(32, 1.2, 3, 100)};
  SimulationOptions o = aberrated_options();
  o.count = 4;
  SimulationOptions plain = o;
  plain.beam_tilt_x_mrad = plain.beam_tilt_y_mrad = 0;
  plain.odd_zernike.clear();
  const Simulator with(vol, o), without(vol, plain);
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_reader";
  std::filesystem::create_directories(dir);
  MrcStackWriter stack(dir / "particles.mrcs", 32, 32, 1.2);
  ParticleSet set;
  set.optics.push_back(with.optics());
  set.base_dir = dir;
  std::vector<RealGrid> expected(4);
  RealGrid image;
  for (long i = 0; i < 4; ++i) {
    Particle p = with.make(i, image).particle;
    stack.append(image);
    p.image = ImageRef{i + 1, "particles.mrcs"};
    set.particles.push_back(p);
    without.make(i, expected[static_cast<std::size_t>(i)]);
  }
  stack.finish();
  ParticleImageReader reader(32);
  for (long i = 0; i < 4; ++i) {
    const ComplexGrid got = reader.transform(set, set.particles[static_cast<std::size_t>(i)]);
    RealGrid e = expected[static_cast<std::size_t>(i)];
    centre_to_corner(e, false);
    const ComplexGrid want = fft_2d(e);
    double diff = 0, norm = 0, raw_diff = 0;
    ParticleSet uncorrected = set;
    uncorrected.optics.front().beam_tilt_x_mrad = uncorrected.optics.front().beam_tilt_y_mrad = 0;
    uncorrected.optics.front().odd_zernike.clear();
    ParticleImageReader plain_reader(32);
    const ComplexGrid raw = plain_reader.transform(uncorrected, set.particles[static_cast<std::size_t>(i)]);
    for (std::size_t k = 0; k < want.size(); ++k) {
      diff += std::norm(got[k] - want[k]), norm += std::norm(want[k]), raw_diff += std::norm(raw[k] - want[k]);
    }
    EXPECT_LT(std::sqrt(diff / norm), 1e-5) << i;      // float rounding
    EXPECT_GT(std::sqrt(raw_diff / norm), 1e-2) << i;  // the aberration is there without the correction
  }
  std::filesystem::remove_all(dir);
}

TEST(OpticsAberrations, RelionColumnsRoundTrip) {
  // A RELION 3.1 set (cryoDRGN's test data) with beam tilt, odd and even Zernike and magnification
  // matrices per optics group: read into the typed fields, written and read again, unchanged.
  const std::filesystem::path file =
      std::filesystem::path(TESSERA_SHARED_DATA_DIR) / "star/cryodrgn_relion31.6opticsgroups.star";
  const ParticleSet set = read_particles_star(file);
  ASSERT_EQ(set.optics.size(), 6u);
  const OpticsGroup& g = set.optics.front();  // opticsGroup5
  EXPECT_DOUBLE_EQ(g.beam_tilt_x_mrad, 0.657334);
  EXPECT_DOUBLE_EQ(g.beam_tilt_y_mrad, 0.884982);
  ASSERT_EQ(g.odd_zernike.size(), 6u);
  EXPECT_DOUBLE_EQ(g.odd_zernike[2], 2.54522458134);
  ASSERT_EQ(g.even_zernike.size(), 9u);
  EXPECT_DOUBLE_EQ(g.even_zernike[8], 10.2031413351);
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_star";
  std::filesystem::create_directories(dir);
  write_particles_star(dir / "again.star", set, set.base_dir);
  const ParticleSet again = read_particles_star(dir / "again.star");
  ASSERT_EQ(again.optics.size(), set.optics.size());
  for (std::size_t i = 0; i < set.optics.size(); ++i) {
    EXPECT_EQ(again.optics[i].beam_tilt_x_mrad, set.optics[i].beam_tilt_x_mrad);
    EXPECT_EQ(again.optics[i].beam_tilt_y_mrad, set.optics[i].beam_tilt_y_mrad);
    EXPECT_EQ(again.optics[i].odd_zernike, set.optics[i].odd_zernike);
    EXPECT_EQ(again.optics[i].even_zernike, set.optics[i].even_zernike);
  }
  std::filesystem::remove_all(dir);
}

TEST(OddAberrations, SubtractionKeepsTheImagesFrame) {
  // Subtraction corrects the image, subtracts the removed region's model and gives the result the odd
  // aberration back: an aberrated particle of two regions less the removed one is the aberrated image of
  // the kept one (to float precision, as Subtract.FittedScaleIsTheTrueContrastOnNoiseFreeParticles);
  // without the group's aberrations the model misses the phase and far more is left.
  RealGrid map = phantom_volume(32, 1.2, 4), remove(32, 32, 32), keep(32, 32, 32), keep_mask(32, 32, 32);
  for (int z = 0; z < 32; ++z)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        keep_mask(x, y, z) = x >= 16 ? 1.0f : 0.0f;
        (x >= 16 ? keep : remove)(x, y, z) = map(x, y, z);
      }
  SimulationOptions o = aberrated_options();
  o.count = 4;
  o.beam_tilt_x_mrad = 2, o.beam_tilt_y_mrad = -1.5;  // large phases at this box: 2.4 A Nyquist
  o.even_zernike.clear();
  const Simulator both({remove, keep}, o), kept({keep}, o);
  SubtractOptions opt;
  opt.scale_mode = ScaleMode::Refinement;
  const Subtractor sub({split_keep(map, keep_mask)}, 1.2, opt);
  OpticsGroup plain = both.optics();
  plain.beam_tilt_x_mrad = plain.beam_tilt_y_mrad = 0;
  plain.odd_zernike.clear();
  for (long i = 0; i < o.count; ++i) {
    RealGrid image, expected, uncorrected;
    const Particle p = both.make(i, image).particle;
    kept.make(i, expected);
    uncorrected = image;
    sub.subtract(image, p, both.optics());
    sub.subtract(uncorrected, p, plain);
    double diff = 0, wrong = 0, norm = 0;
    for (std::size_t k = 0; k < image.size(); ++k) {
      diff += (image[k] - expected[k]) * (image[k] - expected[k]);
      wrong += (uncorrected[k] - expected[k]) * (uncorrected[k] - expected[k]);
      norm += expected[k] * expected[k];
    }
    EXPECT_LT(std::sqrt(diff / norm), 1e-4) << i;
    EXPECT_GT(std::sqrt(wrong / norm), 1e-2) << i;
  }
}

// Particles simulated with `o` at box 64 into a stack; the set holds the true poses and CTFs and
// optics without aberrations (as before a fit).
struct Simulated {
  ParticleSet set;
  RealGrid map;
};

Simulated simulate(const std::filesystem::path& dir, SimulationOptions o) {
  Simulated s;
  s.map = phantom_volume(64, 1.2, 7, 400);
  const Simulator sim({s.map}, o);
  std::filesystem::create_directories(dir);
  MrcStackWriter stack(dir / "particles.mrcs", 64, 64, o.pixel_A);
  OpticsGroup g = sim.optics();
  g.beam_tilt_x_mrad = g.beam_tilt_y_mrad = 0;
  g.odd_zernike.clear();
  g.even_zernike.clear();
  s.set.optics.push_back(g);
  s.set.base_dir = dir;
  RealGrid image;
  for (long i = 0; i < o.count; ++i) {
    Particle p = sim.make(i, image).particle;
    stack.append(image);
    p.image = ImageRef{i + 1, "particles.mrcs"};
    s.set.particles.push_back(p);
  }
  stack.finish();
  return s;
}

TEST(AberrationFit, NoiseFreeAberrationsComeBackExactly) {
  // Without noise the fit's optimum is the truth: beam tilt, trefoil and tetrafoil to 1e-4 of their size.
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_exact";
  SimulationOptions o = aberrated_options();
  o.count = 100;
  Simulated s = simulate(dir, o);
  const RealGrid* maps[] = {&s.map};
  AberrationFitOptions a;
  a.odd_order = 3, a.even_order = 4, a.threads = 2;
  const AberrationRefinement r = refine_aberrations(s.set, maps, a);
  ASSERT_EQ(r.groups.size(), 1u);
  const GroupAberrationFit& f = r.groups.front();
  EXPECT_NEAR(f.beam_tilt_x_mrad, 0.5, 5e-5);
  EXPECT_NEAR(f.beam_tilt_y_mrad, -0.3, 5e-5);
  ASSERT_EQ(f.odd_zernike.size(), 6u);
  EXPECT_NEAR(f.odd_zernike[2], 10, 1e-3);
  EXPECT_NEAR(f.odd_zernike[5], -6, 1e-3);
  for (int i : {0, 1, 3, 4}) EXPECT_NEAR(f.odd_zernike[static_cast<std::size_t>(i)], 0, 1e-3) << i;
  ASSERT_EQ(f.even_zernike.size(), 9u);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_NEAR(f.even_zernike[i], o.even_zernike[i], 3e-3) << i;
  apply_aberration_fits(s.set, r);
  EXPECT_EQ(s.set.optics.front().even_zernike, f.even_zernike);
  std::filesystem::remove_all(dir);
}

TEST(AberrationFit, WithAMagnificationMatrixTheyComeBackExactly) {
  // As RELION, the aberrations are evaluated at M k: images made with a 3% anisotropic magnification and
  // aberrations, fitted with the group's true matrix (noise-free), give the aberrations back.
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_mag";
  SimulationOptions o = aberrated_options();
  o.count = 100;
  o.mag_matrix = anisotropic_magnification(3, 30);
  Simulated s = simulate(dir, o);
  ASSERT_EQ(s.set.optics.front().mag_matrix, o.mag_matrix);
  const RealGrid* maps[] = {&s.map};
  AberrationFitOptions a;
  a.odd_order = 3, a.even_order = 4, a.threads = 2;
  const GroupAberrationFit f = refine_aberrations(s.set, maps, a).groups.front();
  EXPECT_NEAR(f.beam_tilt_x_mrad, 0.5, 1e-3);
  EXPECT_NEAR(f.beam_tilt_y_mrad, -0.3, 1e-3);
  EXPECT_NEAR(f.odd_zernike[2], 10, 0.02);
  EXPECT_NEAR(f.odd_zernike[5], -6, 0.02);
  EXPECT_NEAR(f.even_zernike[4], -20, 0.05);
  EXPECT_NEAR(f.even_zernike[8], 30, 0.05);
  std::filesystem::remove_all(dir);
}

TEST(AberrationFit, BeamTiltComesBackWithinATenthOfAMilliradian) {
  // 1,000 particles at SNR 0.5, box 64 at 1.2 A/px, true map and poses; beam tilt (0.5, -0.3) mrad alone.
  // The fit's standard error (inverse Fisher information) is 0.020 mrad here; over five seeds of 600 particles
  // the errors were 0.6 to 2.7 of their standard errors (0.025 mrad). Checked: within 0.1 mrad (the issue's
  // figure, over 5 standard errors) and within 4 standard errors.
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_tilt";
  SimulationOptions o = aberrated_options();
  o.odd_zernike.clear();
  o.even_zernike.clear();
  o.count = 1000;
  o.snr = 0.5;
  Simulated s = simulate(dir, o);
  const RealGrid* maps[] = {&s.map};
  AberrationFitOptions a;
  a.beam_tilt = true, a.threads = 2;
  const GroupAberrationFit f = refine_aberrations(s.set, maps, a).groups.front();
  std::printf("beam tilt (%.4f, %.4f) mrad, standard errors (%.4f, %.4f)\n", f.beam_tilt_x_mrad, f.beam_tilt_y_mrad,
              f.beam_tilt_se_mrad[0], f.beam_tilt_se_mrad[1]);
  EXPECT_NEAR(f.beam_tilt_x_mrad, 0.5, std::min(0.1, 4 * f.beam_tilt_se_mrad[0]));
  EXPECT_NEAR(f.beam_tilt_y_mrad, -0.3, std::min(0.1, 4 * f.beam_tilt_se_mrad[1]));
  EXPECT_GT(f.beam_tilt_se_mrad[0], 0.005);
  EXPECT_LT(f.beam_tilt_se_mrad[0], 0.03);
  EXPECT_TRUE(f.odd_zernike.empty());  // beam tilt alone: the odd Zernike list is left as it was
  std::filesystem::remove_all(dir);
}

TEST(AberrationFit, TrefoilAndTetrafoilComeBack) {
  // Beam tilt, trefoil (10, -6 rad A^3: 0.72 and 0.43 rad at Nyquist, 2.4 A) and tetrafoil (-20, 30 rad A^4:
  // 0.6 and 0.9 rad) at SNR 0.5, 1,000 particles. Each coefficient within 4 of its standard errors (over five
  // seeds of 600 particles the errors were within 2.6 of theirs: trefoil 1.1, tetrafoil 5.5 rad A^n there;
  // the even terms' information is the CTF's cos^2 chi and nine terms share it).
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_odd_even";
  SimulationOptions o = aberrated_options();
  o.count = 1000;
  o.snr = 0.5;
  Simulated s = simulate(dir, o);
  const RealGrid* maps[] = {&s.map};
  AberrationFitOptions a;
  a.odd_order = 3, a.even_order = 4, a.threads = 2;
  const GroupAberrationFit f = refine_aberrations(s.set, maps, a).groups.front();
  std::printf("tilt (%.3f, %.3f) trefoil (%.2f, %.2f) +- (%.2f, %.2f), tetrafoil (%.2f, %.2f) +- (%.2f, %.2f)\n",
              f.beam_tilt_x_mrad, f.beam_tilt_y_mrad, f.odd_zernike[2], f.odd_zernike[5], f.odd_change_se[2],
              f.odd_change_se[5], f.even_zernike[4], f.even_zernike[8], f.even_change_se[4], f.even_change_se[8]);
  EXPECT_NEAR(f.beam_tilt_x_mrad, 0.5, 0.1);
  EXPECT_NEAR(f.beam_tilt_y_mrad, -0.3, 0.1);
  EXPECT_NEAR(f.odd_zernike[2], 10, 4 * f.odd_change_se[2]);
  EXPECT_NEAR(f.odd_zernike[5], -6, 4 * f.odd_change_se[5]);
  EXPECT_NEAR(f.even_zernike[4], -20, 4 * f.even_change_se[4]);
  EXPECT_NEAR(f.even_zernike[8], 30, 4 * f.even_change_se[8]);
  EXPECT_LT(f.odd_change_se[2], 1.5);
  EXPECT_LT(f.even_change_se[8], 7.0);
  std::filesystem::remove_all(dir);
}

TEST(AberrationFit, NoAberrationFitsZero) {
  // The same particles without aberrations (600): every fitted coefficient within 4 standard errors of 0,
  // the beam tilt within 0.1 mrad.
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_aberrations_none";
  SimulationOptions o = aberrated_options();
  o.beam_tilt_x_mrad = o.beam_tilt_y_mrad = 0;
  o.odd_zernike.clear();
  o.even_zernike.clear();
  o.count = 600;
  o.snr = 0.5;
  Simulated s = simulate(dir, o);
  const RealGrid* maps[] = {&s.map};
  AberrationFitOptions a;
  a.odd_order = 3, a.even_order = 4, a.threads = 2;
  const GroupAberrationFit f = refine_aberrations(s.set, maps, a).groups.front();
  std::printf("tilt (%.4f, %.4f) +- (%.4f, %.4f)\n", f.beam_tilt_x_mrad, f.beam_tilt_y_mrad, f.beam_tilt_se_mrad[0],
              f.beam_tilt_se_mrad[1]);
  EXPECT_NEAR(f.beam_tilt_x_mrad, 0, std::min(0.1, 4 * f.beam_tilt_se_mrad[0]));
  EXPECT_NEAR(f.beam_tilt_y_mrad, 0, std::min(0.1, 4 * f.beam_tilt_se_mrad[1]));
  for (std::size_t i = 0; i < f.odd_change.size(); ++i) EXPECT_NEAR(f.odd_change[i], 0, 4 * f.odd_change_se[i]) << i;
  for (std::size_t i = 0; i < f.even_change.size(); ++i) EXPECT_NEAR(f.even_change[i], 0, 4 * f.even_change_se[i]) << i;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tessera
