// Ewald sphere curvature (forward_model.hpp, docs/ewald_sphere.md):
//   a) with zero curvature the Ewald model is the flat one (projection and back-projection);
//   a') the two inserts of a half-complex image are the + sideband of every frequency of the
//      full plane (the - sideband of k is the + sideband of -k), bit for bit;
//   b) the simulator's Ewald image of a few Gaussian blobs equals the two-sideband formula
//      computed here independently (analytic transform of the blobs, chi from the CTF's formula),
//      for either sign, and differs from the flat and the other sign's image;
//   c) the "done when": a large particle at 1 A/px, 60 kV, box 128, noise-free images
//      at true poses and many defoci, simulated with positive curvature: reconstructed with
//      positive curvature its high-resolution error against the truth falls well below the
//      uncorrected reconstruction's, with negative curvature it rises far above it.
// About 25 s on 2 cores, nearly all of it test c.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <numbers>
#include <vector>

#include "ewald_test_util.hpp"
#include "tessera/ctf.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/geometry.hpp"
#include "tessera/parallel.hpp"
#include "tessera/projector.hpp"
#include "tessera/random.hpp"
#include "tessera/simulate.hpp"

using namespace tessera;
using namespace tessera::test;

namespace {

constexpr double kPi = std::numbers::pi;

// The blobs' continuous 3D transform at q (px of the box): sum a (2 pi s^2)^{3/2}
// exp(-2 pi^2 s^2 |q/N|^2) exp(-2 pi i q.p / N), the DFT of blob_volume up to aliasing.
std::complex<double> blob_transform(const std::vector<Blob>& blobs, double sigma_px, int box, const Vec3& q) {
  const double f2 = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]) / (double(box) * box);
  const double s2 = sigma_px * sigma_px;
  const double envelope = std::pow(2 * kPi * s2, 1.5) * std::exp(-2 * kPi * kPi * s2 * f2);
  std::complex<double> sum = 0;
  for (const Blob& b : blobs)
    sum += b.amplitude * std::polar(1.0, -2 * kPi * (q[0] * b.x + q[1] * b.y + q[2] * b.z) / box);
  return envelope * sum;
}

ComplexGrid image_transform(RealGrid image) {
  centre_to_corner(image, false);
  return fft_2d(image);
}

Particle particle_with_ctf(double du, double dv, double angle_deg) {
  Particle p;
  p.defocus_u_A = du;
  p.defocus_v_A = dv;
  p.defocus_angle_deg = angle_deg;
  p.scale = 1;
  return p;
}

}  // namespace

TEST(EwaldSphere, ZeroCurvatureIsTheFlatModel) {
  const int box = 48;
  OpticsGroup g;
  g.pixel_A = 1.5;
  g.image_size = box;
  const Projector projector(phantom_volume(box, g.pixel_A, 7));
  const Particle p = particle_with_ctf(9000, 8200, 35);
  const EwaldCtf ewald = model_ewald_ctf(p, g, box, EwaldSphere::Off);
  ASSERT_EQ(ewald.curvature_px, 0.0);
  const ModelPose pose{euler_to_matrix({40, 70, -110}), 1.7, -2.3};
  ComplexGrid flat, curved;
  expected_transform(projector, pose, &ewald.sine, 0.8, flat);
  expected_transform_ewald(projector, pose, ewald, 0.8, curved);
  float peak = 0, worst = 0;
  for (std::size_t i = 0; i < flat.size(); ++i) {
    peak = std::max(peak, std::abs(flat[i]));
    worst = std::max(worst, std::abs(flat[i] - curved[i]));
  }
  EXPECT_LT(worst, 1e-6 * peak) << "peak " << peak;

  // Back-projection of that image: two sidebands with curvature 0 sum to the flat insertion.
  double power = 0;
  for (std::size_t i = 0; i < flat.size(); ++i) power += std::norm(flat[i]);
  const auto quanta = AccumulationQuanta::for_power(power / flat.size());
  BackProjector a(box, 2, {}, {}, quanta), b(box, 2, {}, {}, quanta);
  ComplexGrid data;
  RealGrid weight;
  backprojection_terms(flat, pose, &ewald.sine, 0.8, 0.7, data, weight);
  a.insert(data, weight, pose.rotation);
  backproject_ewald(b, flat, pose, ewald, 0.8, 0.7);
  const auto sa = a.sums(), sb = b.sums();
  ASSERT_EQ(sa.size(), sb.size());
  std::int64_t data_peak = 0, weight_peak = 0, data_diff = 0, weight_diff = 0;
  for (std::size_t i = 0; i < sa.size(); ++i) {
    const bool is_weight = i % 3 == 2;
    std::int64_t& peak_i = is_weight ? weight_peak : data_peak;
    std::int64_t& diff_i = is_weight ? weight_diff : data_diff;
    peak_i = std::max(peak_i, std::abs(sa[i]));
    diff_i = std::max(diff_i, std::abs(sa[i] - sb[i]));
  }
  ASSERT_GT(data_peak, 1 << 20);
  ASSERT_GT(weight_peak, 1 << 20);
  // Float rounding of the products (2^-24 relative) and one quantum per insert.
  EXPECT_LE(data_diff, 4 + data_peak / (1 << 20)) << "data peak " << data_peak;
  EXPECT_LE(weight_diff, 4 + weight_peak / (1 << 20)) << "weight peak " << weight_peak;
}

// The half-complex image holds kx >= 0 only. Its two inserts must be the + sideband of every
// frequency of the full plane: the + sideband of -k (data conj(c+(-k)) X(-k) = c-(k) conj(X(k)) at
// A^T (-k, +kappa |k|^2)) is inserted here as a half-plane image at the rotation with the first
// two rows of A negated, and the sums must equal backproject_ewald's bit for bit.
TEST(EwaldSphere, TheTwoInsertsAreTheFullPlanesPlusSideband) {
  const int box = 48;
  OpticsGroup g;
  g.pixel_A = 1.0;
  g.image_size = box;
  g.voltage_kV = 20;
  const Projector projector(phantom_volume(box, g.pixel_A, 9));
  const Particle p = particle_with_ctf(7000, 6500, 60);
  const EwaldCtf ewald = model_ewald_ctf(p, g, box, EwaldSphere::Positive);
  ASSERT_GT(ewald.curvature_px, 0.0);
  const ModelPose pose{euler_to_matrix({-30, 110, 75}), 0, 0};
  ComplexGrid x;
  expected_transform_ewald(projector, pose, ewald, 1.0, x);
  double power = 0;
  for (const cfloat& v : x.values()) power += std::norm(v);
  const auto quanta = AccumulationQuanta::for_power(power / x.size());
  BackProjector both(box, 2, {}, {}, quanta), full_plus(box, 2, {}, {}, quanta);
  backproject_ewald(both, x, pose, ewald, 1, 1);
  ComplexGrid at_k(x.nx(), x.ny()), at_minus_k(x.nx(), x.ny());
  RealGrid weight(x.nx(), x.ny());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const cfloat c_plus(0.5f * ewald.sine[i], -0.5f * ewald.cosine[i]);
    const cfloat c_minus(0.5f * ewald.sine[i], 0.5f * ewald.cosine[i]);
    at_k[i] = std::conj(c_plus) * x[i];
    at_minus_k[i] = std::conj(std::conj(c_minus) * x[i]);
    weight[i] = 0.5f * ewald.sine[i] * ewald.sine[i];
  }
  Mat3 flipped = pose.rotation;
  for (int j = 0; j < 3; ++j) flipped[0][j] = -flipped[0][j], flipped[1][j] = -flipped[1][j];
  full_plus.insert(at_k, weight, pose.rotation, ewald.curvature_px);
  full_plus.insert(at_minus_k, weight, flipped, ewald.curvature_px);
  const auto a = both.sums(), b = full_plus.sums();
  ASSERT_EQ(a.size(), b.size());
  // The origin (sums 0, 1, 2) is its own Friedel mate: -k = k = 0 is not conjugated there, so its
  // imaginary part (which the reconstruction drops) differs; every other sum must agree.
  std::size_t differ = 0, nonzero = 0;
  for (std::size_t i = 3; i < a.size(); ++i) differ += a[i] != b[i], nonzero += a[i] != 0;
  EXPECT_EQ(differ, 0u);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_EQ(a[2], b[2]);
  EXPECT_GT(nonzero, 10000u);  // one image reaches about 30,000 sums
}

namespace {

// The image of `blobs` by the two-sideband formula, written out here: chi from ctf.hpp's
// formula, c+ = -(i/2) e^{-i chi}, c- = (i/2) e^{i chi}, sheets kz = +-s lambda |k|^2 / 2.
std::complex<double> two_sideband_oracle(const std::vector<Blob>& blobs, double sigma_px, int box, double pixel_A,
                                         const Mat3& a, double origin_x_px, double origin_y_px, const Particle& p,
                                         const OpticsGroup& g, double sign, int kx, int ky) {
  const double lambda = electron_wavelength_A(g.voltage_kV), span = box * pixel_A;
  const double fx = kx / span, fy = ky / span, f2 = fx * fx + fy * fy;
  const double angle = std::atan2(fy, fx), ast = p.defocus_angle_deg * kPi / 180;
  const double dz =
      -(p.defocus_u_A + p.defocus_v_A) / 2 - (p.defocus_u_A - p.defocus_v_A) / 2 * std::cos(2 * (angle - ast));
  const double q0 = g.amplitude_contrast;
  const double chi = kPi * lambda * dz * f2 + kPi / 2 * g.cs_mm * 1e7 * std::pow(lambda, 3) * f2 * f2 -
                     std::atan(q0 / std::sqrt(1 - q0 * q0));
  const std::complex<double> i(0, 1);
  const std::complex<double> c_plus = -0.5 * i * std::exp(-i * chi), c_minus = 0.5 * i * std::exp(i * chi);
  const double kz = sign * lambda * f2 / 2 * span;  // px of the box
  auto at = [&](double z) {
    const Vec3 q{kx * a[0][0] + ky * a[1][0] + z * a[2][0], kx * a[0][1] + ky * a[1][1] + z * a[2][1],
                 kx * a[0][2] + ky * a[1][2] + z * a[2][2]};
    return blob_transform(blobs, sigma_px, box, q);
  };
  const std::complex<double> shift = std::polar(1.0, 2 * kPi * (kx * origin_x_px + ky * origin_y_px) / box);
  return shift * (c_plus * at(kz) + c_minus * at(-kz));
}

}  // namespace

TEST(EwaldSphere, SimulatorImageIsTheTwoSidebandFormula) {
  // Box 64 at 1 A/px and 20 kV (lambda 0.0859 A): at |k| = 24 px the sheets lie 0.39 px off the
  // central slice, so a blob 20 px above the centre turns by 0.77 rad between them and the slice.
  const int box = 64;
  const double pixel_A = 1.0, sigma = 1.2;
  const std::vector<Blob> blobs{{8, -5, 20, 1.0}, {-12, 6, -17, 0.7}, {3, 14, 4, 0.5}, {-6, -15, 12, 0.8}};
  const RealGrid volume = blob_volume(box, blobs, sigma);
  ProjectionPose pose;
  pose.angles = {30, 50, -20};
  pose.origin_x_A = 1.5;
  pose.origin_y_A = -2.0;
  const Mat3 a = euler_to_matrix(pose.angles);
  const Particle truth = particle_with_ctf(8000, 7600, 30);

  for (const EwaldSphere sphere : {EwaldSphere::Positive, EwaldSphere::Negative}) {
    SimulationOptions o;
    o.count = 1;
    o.pixel_A = pixel_A;
    o.voltage_kV = 20;
    o.given_poses = {pose};
    o.given_ctfs = {SimulationOptions::GivenCtf{truth.defocus_u_A, truth.defocus_v_A, truth.defocus_angle_deg, 0}};
    o.ewald_sphere = sphere;
    const Simulator sim({volume}, o);
    RealGrid image;
    const SimulatedParticle sp = sim.make(0, image);
    const ComplexGrid x = image_transform(image);
    const OpticsGroup g = sim.optics();
    const double sign = sphere == EwaldSphere::Positive ? 1 : -1;
    // Frequencies between 12 and 26 px (5.3 to 2.5 A) where the image holds signal.
    double err[3] = {0, 0, 0}, norm = 0;  // against this sign, the other sign, flat
    int points = 0;
    for (int ky = -26; ky <= 26; ky += 7)
      for (int kx = 0; kx <= 26; kx += 5) {
        const double r = std::hypot(kx, ky);
        if (r < 12 || r > 26) continue;
        const std::complex<double> right = two_sideband_oracle(blobs, sigma, box, pixel_A, a, 1.5, -2.0,
                                                               sp.particle, g, sign, kx, ky);
        const std::complex<double> other = two_sideband_oracle(blobs, sigma, box, pixel_A, a, 1.5, -2.0,
                                                               sp.particle, g, -sign, kx, ky);
        const std::complex<double> flat = two_sideband_oracle(blobs, sigma, box, pixel_A, a, 1.5, -2.0,
                                                              sp.particle, g, 0, kx, ky);
        const std::complex<float> sim_value = x(kx, ky < 0 ? ky + box : ky);
        const std::complex<double> s(sim_value.real(), sim_value.imag());
        err[0] += std::norm(s - right);
        err[1] += std::norm(s - other);
        err[2] += std::norm(s - flat);
        norm += std::norm(right);
        ++points;
      }
    ASSERT_GE(points, 20);
    for (double& e : err) e = std::sqrt(e / norm);
    std::printf("%s: relative error against the formula %.4f, the other sign %.4f, flat %.4f (%d frequencies)\n",
                ewald_sphere_name(sphere).c_str(), err[0], err[1], err[2], points);
    // Measured: 0.021 (0.028 for negative) against the formula, the trilinear interpolation's
    // error; 0.31 (0.33) against the other sign, 0.16 (0.17) against the flat image.
    EXPECT_LT(err[0], 0.05);
    EXPECT_GT(err[1], 0.2);
    EXPECT_GT(err[2], 0.1);
  }
}

TEST(EwaldSphere, RightSignImprovesAndWrongSignDoesNot) {
  // Box 128 at 1 A/px and 60 kV (lambda 0.0487 A; lambda x box / pixel = 6.2 A, as box 316 at
  // 300 kV): at 2.5 A (51 px) the sheets lie 0.50 px off the central slice, and a particle of
  // radius 54 A turns by up to 1.3 rad between a sheet and the slice at its top and bottom.
  // Noise-free images at true poses, 10 per defocus (0.5-2 um), simulated with positive curvature.
  // The Ewald insertion's cross terms (c+ conj(c-) V on the other sheet, phase 2 chi) average out
  // only over the images that reach a voxel: its error falls with the count (measured at 1200,
  // 2000, 2400 images: 0.019, 0.0092, 0.0075 in the band below, the flat insertion's 0.031, 0.025,
  // 0.024), so the count is what the test can afford to show the gain with a margin.
  const auto started = std::chrono::steady_clock::now();
  const int box = 128, count = 2000;
  const double pixel_A = 1.0, voltage_kV = 60, band_lo = 38, band_hi = 58;  // 3.4 to 2.2 A
  const RealGrid truth = blob_volume(box, blobs_in_ball(2500, 54, 3), 0.8);
  SimulationOptions o;
  o.count = count;
  o.pixel_A = pixel_A;
  o.voltage_kV = voltage_kV;
  o.defocus_min_A = 5000;
  o.defocus_max_A = 20000;
  o.particles_per_micrograph = 10;
  o.seed = 5;
  o.ewald_sphere = EwaldSphere::Positive;
  const Simulator sim({truth}, o);
  const OpticsGroup g = sim.optics();

  // Quanta from the images' power (as the programs do).
  RealGrid probe;
  sim.make(0, probe);
  const ComplexGrid probe_f = image_transform(probe);
  double power = 0;
  for (const cfloat& v : probe_f.values()) power += std::norm(v);
  const auto quanta = AccumulationQuanta::for_power(20 * power / probe_f.size());
  // Only the frequencies up to the band are inserted.
  BackProjector off_bp(box, 2, band_hi + 2, {}, quanta), right_bp(box, 2, band_hi + 2, {}, quanta),
      wrong_bp(box, 2, band_hi + 2, {}, quanta);
  for_each_particle(count, 2, [&](int, long i) {
    RealGrid image;
    const SimulatedParticle sp = sim.make(i, image);
    const ComplexGrid x = image_transform(image);
    const ModelPose pose = model_pose(*sp.particle.pose, pixel_A);
    const EwaldCtf right = model_ewald_ctf(sp.particle, g, box, EwaldSphere::Positive);
    EwaldCtf wrong = right;
    wrong.curvature_px = -right.curvature_px;
    ComplexGrid data;
    RealGrid weight;
    backprojection_terms(x, pose, &right.sine, 1, 1, data, weight);
    off_bp.insert(data, weight, pose.rotation);
    backproject_ewald(right_bp, x, pose, right, 1, 1);
    backproject_ewald(wrong_bp, x, pose, wrong, 1, 1);
  });
  const auto inserted = std::chrono::steady_clock::now();
  ReconstructOptions ro;
  ro.threads = 2;
  auto error = [&](const BackProjector& bp) { return band_error(bp.reconstruct(ro), truth, band_lo, band_hi); };
  const double off = error(off_bp), right = error(right_bp), wrong = error(wrong_bp);
  std::printf("relative error 3.4-2.2 A against the truth: off %.4f, right sign %.4f, wrong sign %.4f\n", off, right,
              wrong);
  std::printf("simulate and insert %.1f s, reconstruct x3 %.1f s\n",
              std::chrono::duration<double>(inserted - started).count(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - inserted).count());
  // Measured: off 0.0249, right 0.0092, wrong 0.243. The right sign removes most of the error (the
  // rest is the cross terms' and the sampling's, which fall with the count); the wrong sign
  // doubles each sideband's phase error instead of removing it.
  EXPECT_LT(right, 0.6 * off);
  EXPECT_GT(wrong, 3 * off);
}
