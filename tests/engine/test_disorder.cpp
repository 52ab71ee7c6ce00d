// The simulator's disordered component (Disorder, belt_envelope) against its
// stated definitions: the envelope-weighted mean and RMS of many realisations,
// projections as line integrals (a direct sum along z, and the Fourier
// projector at other rotations), one realisation per (seed, index) whatever the
// order or the threads, the image's extra term as the disorder's projection
// through the forward model (CTF, scale, origin), the noise left as the
// protein's alone, and the belt's geometry.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/simulate.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;

// A nanodisc-like belt in a 32 box at 2 A/px: radii 4..9 px, height 6 px.
// With sigma up to 1.5 px (cut at 6 px) its density stays within 15.5 px of the
// centre, so no rotation carries any of it out of the image.
RealGrid small_belt() { return belt_envelope(32, 2.0, {8.0, 18.0, 12.0, BeltShape::Cylinder}); }

DisorderOptions options(RealGrid envelope, double resolution_A, double rms, double mean) {
  DisorderOptions o;
  o.envelope = std::move(envelope);
  o.resolution_A = resolution_A;
  o.rms = rms;
  o.mean = mean;
  return o;
}

double envelope_mean(const RealGrid& v, const RealGrid& m) {
  double s = 0, w = 0;
  for (std::size_t i = 0; i < m.size(); ++i) s += double(m[i]) * v[i], w += m[i];
  return s / w;
}

struct Stats {
  double mean = 0, standard_error = 0;
};
Stats stats(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  double s = 0, s2 = 0;
  for (double v : x) s += v, s2 += v * v;
  const double mean = s / n, var = (s2 - n * mean * mean) / (n - 1);
  return {mean, std::sqrt(var / n)};
}

double peak_abs(const RealGrid& g) {
  double p = 0;
  for (float v : g.values()) p = std::max(p, std::abs(double(v)));
  return p;
}

double max_abs_difference(const RealGrid& a, const RealGrid& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - b[i]));
  return d;
}

// sqrt(sum (a - b)^2 / sum b^2).
double relative_rms_difference(const RealGrid& a, const RealGrid& b) {
  double e = 0, r = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e += std::pow(double(a[i]) - b[i], 2), r += double(b[i]) * b[i];
  return std::sqrt(e / r);
}

RealGrid difference(const RealGrid& a, const RealGrid& b) {
  RealGrid d = a;
  for (std::size_t i = 0; i < d.size(); ++i) d[i] -= b[i];
  return d;
}

TEST(Disorder, MeanVolumeHasTheStatedMeanInsideTheEnvelope) {
  const RealGrid m = small_belt();
  const Disorder d(options(m, 12.0, 0.3, 0.5), 2.0);
  // mu (m * g), weighted by m: `mean` by construction, to float rounding.
  EXPECT_NEAR(envelope_mean(d.mean_volume(), m), 0.5, 1e-5);
  EXPECT_NEAR(d.sigma_px(), std::sqrt(std::log(2.0) / 2) / kPi * 6.0, 1e-12);  // 12 A = 6 px
}

// Over R independent realisations (each its own item_rng stream), the
// per-realisation envelope means and mean squared deviations from mean_volume()
// are i.i.d.; their averages are normal to within the standard error estimated
// from the same R values. 5 standard errors: a false failure has probability
// below 1e-6. The test also requires those standard errors to be small (< 3% of
// the values tested), so that it could see a wrong mu or a (e.g. by sqrt 2).
TEST(Disorder, RealisationsHaveTheStatedMeanAndRms) {
  const RealGrid m = small_belt();
  const double rms = 0.3, mean = 0.5;
  const Disorder d(options(m, 12.0, rms, mean), 2.0);
  const RealGrid expected = d.mean_volume();
  constexpr int kRealisations = 300;
  std::vector<double> means, squares;
  for (int r = 0; r < kRealisations; ++r) {
    Rng rng = item_rng(42, static_cast<std::uint64_t>(r));
    const RealGrid v = d.volume(d.draw(rng));
    means.push_back(envelope_mean(v, m));
    squares.push_back(std::pow(masked_rms(difference(v, expected), m), 2));
  }
  const Stats sm = stats(means), ss = stats(squares);
  std::cout << "[ measured ] mean " << sm.mean << " +- " << sm.standard_error << " (stated " << mean
            << "), rms^2 " << ss.mean << " +- " << ss.standard_error << " (stated " << rms * rms << ")\n";
  EXPECT_LT(sm.standard_error, 0.03 * mean);
  EXPECT_LT(ss.standard_error, 0.03 * rms * rms);
  EXPECT_NEAR(sm.mean, mean, 5 * sm.standard_error);
  EXPECT_NEAR(ss.mean, rms * rms, 5 * ss.standard_error);
}

TEST(Disorder, ZeroRmsLeavesTheMeanInEveryRealisation) {
  const Disorder d(options(small_belt(), 12.0, 0.0, 0.5), 2.0);
  Rng rng = item_rng(1, 2);
  EXPECT_EQ(d.volume(d.draw(rng)).values(), d.mean_volume().values());
}

// A = identity: the line integral is the sum along z of the voxel-grid density.
// The two differ only where g is cut (at 4 sigma: the projection's square of
// 2D taps against the volume's cube of 1D ones, a relative 1e-4) and by the
// sum of the sampled 1D Gaussian along z, which is 1 to 2 exp(-2 pi^2 sigma^2).
TEST(Disorder, ProjectionAtIdentityIsTheSumAlongZ) {
  for (double resolution_A : {8.0, 16.0}) {  // sigma 0.75 and 1.5 px
    const Disorder d(options(small_belt(), resolution_A, 0.3, 0.5), 2.0);
    Rng rng = item_rng(3, 0);
    const std::vector<float> w = d.draw(rng);
    const RealGrid v = d.volume(w);
    RealGrid sum(32, 32);
    for (int z = 0; z < 32; ++z)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) sum(x, y) += v(x, y, z);
    const RealGrid p = d.projection(w, identity3());
    EXPECT_LT(max_abs_difference(p, sum), 2e-4 * peak_abs(sum)) << "resolution " << resolution_A;
  }
}

// Other rotations: the Fourier projector's projection of volume(), here on a
// 4x padded grid. For a field this smooth (sigma 1.5 px: its spectrum is 1.5e-5
// of its peak at Nyquist) the difference is the projector's own error: its
// gridding pre-correction, 1 / sinc^2(r / (pad N)), is not undone where the
// slice meets grid points, up to (pi r / (pad N))^2 / 3 = 1.6% at the belt's
// r = 12 px (pad 2 would double the radius term: 5%). Measured 0.6-1.2% RMS
// (1.2% at the identity, where our projection is the direct z-sum to 1e-4);
// 2.5% allowed. A's transpose for A, a centre one pixel off or a scale off by
// 10% differ by 10% to 100%.
TEST(Disorder, ProjectionMatchesTheFourierProjectorOfItsVolume) {
  const Disorder d(options(small_belt(), 16.0, 0.3, 0.5), 2.0);
  Rng rng = item_rng(4, 0);
  const std::vector<float> w = d.draw(rng);
  const Projector projector(d.volume(w), 4);
  for (const Euler e : {Euler{0, 0, 0}, Euler{30, 50, -20}, Euler{-100, 90, 45}, Euler{170, 140, 10}}) {
    const Mat3 a = euler_to_matrix(e);
    const RealGrid ours = d.projection(w, a), fourier = projector.project_image(a);
    const double err = relative_rms_difference(ours, fourier);
    std::cout << "[ measured ] (" << e.rot << ", " << e.tilt << ", " << e.psi << "): relative RMS difference "
              << err << "\n";
    EXPECT_LT(err, 0.025);
  }
}

SimulationOptions disordered(double snr = 0) {
  SimulationOptions o;
  o.count = 16;
  o.pixel_A = 2;
  o.seed = 11;
  o.origin_sigma_A = 4;
  o.scale_sigma = 0.2;
  o.astigmatism_max_A = 500;
  if (snr > 0) o.snr = snr;
  o.disorder = options(small_belt(), 16.0, 0.4, 0.6);
  return o;
}

std::vector<RealGrid> phantom() { return {phantom_volume(32, 2.0, 5)}; }

TEST(Disorder, OffByDefault) {
  const Simulator s(phantom(), SimulationOptions{});
  EXPECT_FALSE(SimulationOptions{}.disorder);
  EXPECT_EQ(s.disorder(), nullptr);
  EXPECT_THROW(s.disorder_volume(0), std::logic_error);
}

TEST(Disorder, NewRealisationPerParticleTheSameForTheSameSeedAndIndex) {
  const Simulator s1(phantom(), disordered()), s2(phantom(), disordered());
  const RealGrid v3 = s1.disorder_volume(3);
  EXPECT_EQ(s2.disorder_volume(3).values(), v3.values());
  // Another particle, or another seed: another realisation (not merely another scale).
  const RealGrid expected = s1.disorder()->mean_volume();
  const RealGrid r3 = difference(v3, expected), r4 = difference(s1.disorder_volume(4), expected);
  double c = 0, n3 = 0, n4 = 0;
  for (std::size_t i = 0; i < r3.size(); ++i) c += double(r3[i]) * r4[i], n3 += r3[i] * r3[i], n4 += r4[i] * r4[i];
  EXPECT_LT(std::abs(c) / std::sqrt(n3 * n4), 0.5);  // ~33 independent samples: |r| ~ 0.2 at most
  SimulationOptions other = disordered();
  other.seed = 12;
  EXPECT_NE(Simulator(phantom(), other).disorder_volume(3).values(), v3.values());
}

TEST(Disorder, ImagesAreTheSameInAnyOrderAndOnAnyNumberOfThreads) {
  const Simulator s(phantom(), disordered(0.5));
  const long n = s.options().count;
  std::vector<RealGrid> serial(static_cast<std::size_t>(n)), parallel(static_cast<std::size_t>(n));
  for (long i = n - 1; i >= 0; --i) s.make(i, serial[static_cast<std::size_t>(i)]);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      for (long i = t; i < n; i += 4) s.make(i, parallel[static_cast<std::size_t>(i)]);
    });
  for (auto& th : pool) th.join();
  for (long i = 0; i < n; ++i) EXPECT_EQ(serial[i].values(), parallel[i].values()) << "particle " << i;
}

// Three given poses with origins of whole pixels at 2 A/px (images of 32 px).
std::vector<ProjectionPose> whole_pixel_poses() {
  std::vector<ProjectionPose> poses;
  for (const auto& [e, ox, oy] : {std::tuple{Euler{0, 0, 0}, 4.0, -6.0}, std::tuple{Euler{30, 60, 90}, -2.0, 0.0},
                                   std::tuple{Euler{-120, 150, 10}, 6.0, 8.0}}) {
    ProjectionPose pose;
    pose.angles = e;
    pose.origin_x_A = ox;
    pose.origin_y_A = oy;
    poses.push_back(pose);
  }
  return poses;
}

// The noise-free images of particle i with and without the disordered component.
struct Pair {
  SimulatedParticle sp;
  RealGrid with, without;
};
Pair with_and_without(const SimulationOptions& o, long i) {
  SimulationOptions protein_only = o;
  protein_only.disorder.reset();
  Pair p;
  p.sp = Simulator(phantom(), o).make(i, p.with);
  const SimulatedParticle sq = Simulator(phantom(), protein_only).make(i, p.without);
  EXPECT_EQ(p.sp.particle.scale, sq.particle.scale);  // the protein's draws are unchanged
  EXPECT_EQ(p.sp.particle.pose->angles.rot, sq.particle.pose->angles.rot);
  return p;
}

// CTF off and whole-pixel origins: the image less the protein-only image is
// the disorder's projection at the particle's rotation (Disorder::projection of
// its weights), times its scale, moved by -origin (RELION's convention): an
// oracle in real space, independent of the Fourier path, exact but for the
// FFT's float rounding (1e-6 of the peak; 1e-5 allowed). A shift of the wrong
// sign, a missing scale or another rotation differ by far more.
TEST(Disorder, AddsItsProjectionAtTheParticlesRotationScaleAndOrigin) {
  SimulationOptions o = disordered();
  o.apply_ctf = false;
  o.given_poses = whole_pixel_poses();
  const Simulator sim(phantom(), o);
  for (long i = 0; i < 3; ++i) {
    const Pair p = with_and_without(o, i);
    const ProjectionPose& pose = *p.sp.particle.pose;
    const RealGrid proj = sim.disorder()->projection(sim.disorder_weights(i), euler_to_matrix(pose.angles));
    const int ox = static_cast<int>(std::lround(pose.origin_x_A / o.pixel_A)),
              oy = static_cast<int>(std::lround(pose.origin_y_A / o.pixel_A));
    RealGrid expected(32, 32);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        expected(x, y) = static_cast<float>(p.sp.particle.scale * proj((x + ox + 32) % 32, (y + oy + 32) % 32));
    EXPECT_LT(max_abs_difference(difference(p.with, p.without), expected), 1e-5 * peak_abs(expected))
        << "particle " << i;
  }
}

// CTF on (astigmatic), random origins and scales: the image less the
// protein-only image is the disorder's volume through the protein's own path,
// expected_transform (Fourier projector on a 4x padded grid, CTF, scale,
// origin). They differ by the projector's error only (2.5% allowed, as above;
// measured 0.4-0.6%). Made without the CTF, at the origin 0, at A^T or at
// scale 1 (the spread is 0.2), the images here differ by 7% to 150%.
TEST(Disorder, GoesThroughTheProteinsCtfScaleAndOrigin) {
  const SimulationOptions o = disordered();
  const Simulator sim(phantom(), o);
  for (long i = 0; i < 4; ++i) {
    const Pair p = with_and_without(o, i);
    const Particle& q = p.sp.particle;
    ASSERT_GT(q.defocus_u_A, 0);
    const RealGrid ctf = model_ctf(q, sim.optics(), 32);
    ComplexGrid f;
    expected_transform(Projector(sim.disorder_volume(i), 4), model_pose(*q.pose, o.pixel_A), &ctf, q.scale, f);
    RealGrid expected = ifft_2d(f, 32);
    corner_to_centre(expected, false);
    const double err = relative_rms_difference(difference(p.with, p.without), expected);
    std::cout << "[ measured ] particle " << i << ": relative RMS difference " << err << "\n";
    EXPECT_LT(err, 0.025) << "particle " << i;
  }
}

// The SNR's signal is the protein's alone: the same noise sigma and the same
// noise in every image (to float rounding of image = noise-free + noise).
TEST(Disorder, LeavesTheNoiseAsItIs) {
  SimulationOptions o = disordered(0.1), protein_only = o;
  protein_only.disorder.reset();
  const Simulator with(phantom(), o), without(phantom(), protein_only);
  EXPECT_GT(with.noise_sigma(), 0);
  EXPECT_EQ(with.noise_sigma(), without.noise_sigma());
  for (long i = 0; i < 4; ++i) {
    RealGrid a, a_clean, b, b_clean;
    with.make(i, a, &a_clean);
    without.make(i, b, &b_clean);
    const double tol = 4 * std::ldexp(std::max(peak_abs(a), peak_abs(b)), -24);  // a few float ulps
    EXPECT_LT(max_abs_difference(difference(a, a_clean), difference(b, b_clean)), tol) << "particle " << i;
    EXPECT_NE(a_clean.values(), b_clean.values());
  }
}

// The cylinder and the torus: voxels clearly inside are 1, clearly outside 0,
// on the surface 1/2; the summed envelope is the analytic volume. The linear
// anti-aliasing over one voxel integrates a plane surface exactly, so what is
// left comes from curvature and the cylinder's edges: measured below 1% of the
// volume, and allowed 5% of one voxel layer over the whole surface.
TEST(BeltEnvelope, GeometryAndVolume) {
  const int box = 48;
  const double px = 1.5, inner = 9, outer = 27, height = 21;  // 6, 18 and 14 px
  const int c = box / 2;
  for (BeltShape shape : {BeltShape::Cylinder, BeltShape::Torus}) {
    SCOPED_TRACE(shape == BeltShape::Cylinder ? "cylinder" : "torus");
    const RealGrid m = belt_envelope(box, px, {inner, outer, height, shape});
    EXPECT_EQ(m(c, c, c), 0.0f);           // on the axis
    EXPECT_EQ(m(c + 12, c, c), 1.0f);      // r = 18 A, mid-plane
    EXPECT_EQ(m(c, c - 12, c + 1), 1.0f);  // r = 18 A, z = 1.5 A
    EXPECT_EQ(m(c + 21, c, c), 0.0f);      // r = 31.5 A
    EXPECT_EQ(m(c + 12, c, c + 9), 0.0f);  // z = 13.5 A
    EXPECT_NEAR(m(c + 18, c, c), 0.5f, 1e-6);  // r = outer
    EXPECT_NEAR(m(c - 6, c, c), 0.5f, 1e-6);   // r = inner
    double sum = 0;
    for (float v : m.values()) sum += v;
    const double ri = inner / px, ro = outer / px, h = height / px;
    // The torus by Pappus: its cross-section, the ellipse of semi-axes a and b,
    // swept around the ring's radius; the ellipse's perimeter ~ 2 pi sqrt((a^2 + b^2) / 2).
    const double ring = (ro + ri) / 2, a = (ro - ri) / 2, b = h / 2;
    const double volume = shape == BeltShape::Cylinder ? kPi * (ro * ro - ri * ri) * h : 2 * kPi * ring * kPi * a * b;
    const double layer = shape == BeltShape::Cylinder ? 2 * kPi * (ro + ri) * h + 2 * kPi * (ro * ro - ri * ri)
                                                      : 2 * kPi * ring * 2 * kPi * std::sqrt((a * a + b * b) / 2);
    std::cout << "[ measured ] summed envelope " << sum << " voxels, analytic " << volume << " (one layer: " << layer
              << ")\n";
    EXPECT_NEAR(sum, volume, 0.05 * layer);
  }
  // The cylinder's z extent at r = 18 A: |z| <= 10.5 A = 7 px, half a voxel at 7.
  const RealGrid m = belt_envelope(box, px, {inner, outer, height, BeltShape::Cylinder});
  EXPECT_EQ(m(c + 12, c, c + 6), 1.0f);
  EXPECT_NEAR(m(c + 12, c, c + 7), 0.5f, 1e-6);
  EXPECT_EQ(m(c + 12, c, c - 8), 0.0f);
}

TEST(Disorder, RefusesBadInputs) {
  const RealGrid m = small_belt();
  EXPECT_THROW(Disorder(options(RealGrid(32, 32, 16, 0.5f), 16, 0.3, 0.5), 2.0), std::invalid_argument);
  EXPECT_THROW(Disorder(options(RealGrid(32, 32, 32), 16, 0.3, 0.5), 2.0), std::invalid_argument);  // all 0
  RealGrid above = m;
  above(3, 4, 5) = 1.5f;
  EXPECT_THROW(Disorder(options(above, 16, 0.3, 0.5), 2.0), std::invalid_argument);
  RealGrid negative = m;
  negative(3, 4, 5) = -0.5f;
  EXPECT_THROW(Disorder(options(negative, 16, 0.3, 0.5), 2.0), std::invalid_argument);
  EXPECT_THROW(Disorder(options(m, 7.9, 0.3, 0.5), 2.0), std::invalid_argument);  // finer than 4 px
  EXPECT_NO_THROW(Disorder(options(m, 8.0, 0.3, 0.5), 2.0));
  EXPECT_THROW(Disorder(options(m, std::numeric_limits<double>::infinity(), 0.3, 0.5), 2.0), std::invalid_argument);
  EXPECT_THROW(Disorder(options(m, 16, -0.1, 0.5), 2.0), std::invalid_argument);
  EXPECT_THROW(Disorder(options(m, 16, 0.3, std::numeric_limits<double>::quiet_NaN()), 2.0), std::invalid_argument);
  EXPECT_THROW(Disorder(options(m, 16, 0.3, 0.5), 0.0), std::invalid_argument);
  const Disorder d(options(m, 16, 0.3, 0.5), 2.0);
  EXPECT_THROW(d.volume(std::vector<float>(3)), std::invalid_argument);
  EXPECT_THROW(d.projection(std::vector<float>(d.voxels() + 1), identity3()), std::invalid_argument);

  EXPECT_THROW(belt_envelope(32, 2, {10, 10, 5, BeltShape::Cylinder}), std::invalid_argument);  // outer = inner
  EXPECT_THROW(belt_envelope(32, 2, {-1, 10, 5, BeltShape::Cylinder}), std::invalid_argument);
  EXPECT_THROW(belt_envelope(32, 2, {0, 10, 0, BeltShape::Torus}), std::invalid_argument);
  EXPECT_THROW(belt_envelope(32, 0, {0, 10, 5, BeltShape::Torus}), std::invalid_argument);
  EXPECT_THROW(masked_rms(RealGrid(8, 8, 8), RealGrid(8, 8, 4, 1.0f)), std::invalid_argument);
  EXPECT_THROW(masked_rms(RealGrid(8, 8, 8), RealGrid(8, 8, 8)), std::invalid_argument);

  SimulationOptions o = disordered();
  o.disorder->envelope = belt_envelope(24, 2.0, {4, 16, 10, BeltShape::Cylinder});  // not the volumes' box
  EXPECT_THROW(Simulator(phantom(), o), std::invalid_argument);
  ComplexGrid not_half(32, 32);
  EXPECT_THROW(apply_image_formation(ModelPose{}, nullptr, 1.0, not_half), std::invalid_argument);
}

}  // namespace
}  // namespace tessera
