// The forward model (forward_model.hpp) against ground truth: the real-space
// projection moved by whole pixels, closed-form line integrals of Gaussians
// at a fractional origin, the CTF and the scale as exact factors, the disk
// points as samples of the full transform, and the phase of phase_shift_2d.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "tessera/alignment.hpp"
#include "tessera/ctf.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/simulate.hpp"

namespace tessera {
namespace {

// Gaussians (centre in pixels from the box centre, sigma in pixels, peak): band-limited
// well inside Nyquist, asymmetric, with projections known in closed form.
struct Gaussian {
  Vec3 centre;
  double sigma, peak;
};
const std::vector<Gaussian> kGaussians = {{{5, -2, 3}, 2.0, 1.0}, {{-4, 4, -2}, 2.5, 0.6}, {{0, 6, -4}, 2.2, 0.8}};

RealGrid gaussian_volume(int n) {
  RealGrid v(n, n, n);
  for (const Gaussian& g : kGaussians)
    for (int z = 0; z < n; ++z)
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {
          const Vec3 d{x - n / 2 - g.centre[0], y - n / 2 - g.centre[1], z - n / 2 - g.centre[2]};
          v(x, y, z) += static_cast<float>(
              g.peak * std::exp(-(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) / (2 * g.sigma * g.sigma)));
        }
  return v;
}

// The particle image in closed form: each Gaussian projects to a 2D Gaussian of
// weight peak * sqrt(2 pi) sigma at (A c)_xy, and the particle's centre lies at
// n/2 - origin (RELION's origin).
RealGrid gaussian_image(int n, const ModelPose& pose) {
  RealGrid img(n, n);
  for (const Gaussian& g : kGaussians) {
    const Vec3 ac = multiply(pose.rotation, g.centre);
    const double cx = n / 2 + ac[0] - pose.origin_x_px, cy = n / 2 + ac[1] - pose.origin_y_px;
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x)
        img(x, y) +=
            static_cast<float>(g.peak * std::sqrt(2 * std::numbers::pi) * g.sigma *
                               std::exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (2 * g.sigma * g.sigma)));
  }
  return img;
}

RealGrid centred_image(const ComplexGrid& f, int n) {
  RealGrid img = ifft_2d(f, n);
  corner_to_centre(img, false);
  return img;
}

double rms_difference_over_rms(const RealGrid& got, const RealGrid& want) {
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    err += std::pow(double(got[i]) - want[i], 2), ref += std::pow(double(want[i]), 2);
  return std::sqrt(err / ref);
}

float max_abs(const ComplexGrid& f) {
  float m = 0;
  for (const cfloat& v : f.values()) m = std::max(m, std::abs(v));
  return m;
}

CtfParams astigmatic_ctf() {
  CtfParams c;
  c.defocus_u_A = 16000;
  c.defocus_v_A = 14500;
  c.defocus_angle_deg = 35;
  return c;
}

TEST(ForwardModel, OriginPhaseIsPhaseShift2dByMinusTheOrigin) {
  // e^{+2 pi i k.o / N}: at k = (1, 0), o = (2, 0), N = 8 the phase is +pi/2.
  const cfloat quarter = origin_phase(1, 0, 8, 2, 0);
  EXPECT_NEAR(quarter.real(), 0.0, 1e-7);
  EXPECT_NEAR(quarter.imag(), 1.0, 1e-7);
  for (int n : {24, 25}) {
    const double ox = 1.7, oy = -3.2;
    ComplexGrid f(n / 2 + 1, n, 1, cfloat(1, 0));
    phase_shift_2d(f, n, -ox, -oy);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x <= n / 2; ++x)
        ASSERT_LT(std::abs(f(x, y) - origin_phase(x, fourier_index(y, n), n, ox, oy)), 1e-6)
            << n << " " << x << " " << y;
  }
}

TEST(ForwardModel, WholePixelOriginMovesTheProjectionByMinusTheOrigin) {
  const int n = 32;
  const Projector volume(gaussian_volume(n));
  const ModelPose pose{euler_to_matrix({30, 70, -40}), 3, -5};
  const RealGrid projection = volume.project_image(pose.rotation);
  ComplexGrid f;
  expected_transform(volume, pose, nullptr, 1.0, f);
  const RealGrid img = centred_image(f, n);
  float peak = 0;
  for (float v : projection.values()) peak = std::max(peak, std::abs(v));
  // The particle's centre moves from n/2 to n/2 - origin: img(x) = projection(x + origin), wrapping.
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      ASSERT_NEAR(img(x, y), projection((x + 3) % n, (y - 5 + n) % n), 1e-5 * peak) << x << " " << y;
}

TEST(ForwardModel, FractionalOriginMatchesLineIntegralsOfGaussians) {
  const int n = 48;
  const Projector volume(gaussian_volume(n));
  // Views off the grid's axes: on them the slice samples the padded grid exactly, no interpolation
  // undoes the gridding pre-correction, and the projector's error doubles (measured 2%).
  for (const Euler& e : {Euler{30, 70, -40}, Euler{-120, 135, 80}, Euler{75, 20, 160}}) {
    const ModelPose pose{euler_to_matrix(e), 1.3, -2.6};
    ComplexGrid f;
    expected_transform(volume, pose, nullptr, 1.0, f);
    const RealGrid img = centred_image(f, n);
    // The projector's trilinear interpolation alone (measured 0.8-0.9%, the same at origin 0).
    EXPECT_LT(rms_difference_over_rms(img, gaussian_image(n, pose)), 0.015);
    // The opposite sign of the origin is far off: the oracle sees the convention.
    const ModelPose flipped{pose.rotation, -pose.origin_x_px, -pose.origin_y_px};
    EXPECT_GT(rms_difference_over_rms(img, gaussian_image(n, flipped)), 0.3);
  }
}

TEST(ForwardModel, CtfAndScaleMultiplyExactly) {
  const int n = 32;
  const Projector volume(gaussian_volume(n));
  const ModelPose pose{euler_to_matrix({10, 50, 100}), 0.6, 2.3};
  const RealGrid ctf = ctf_image(astigmatic_ctf(), n, n, 2.0);
  const double scale = 0.73;
  ComplexGrid plain, scaled, full;
  expected_transform(volume, pose, nullptr, 1.0, plain);
  expected_transform(volume, pose, nullptr, scale, scaled);
  expected_transform(volume, pose, &ctf, scale, full);
  ASSERT_EQ(full.nx(), n / 2 + 1);
  ASSERT_EQ(full.ny(), n);
  for (std::size_t i = 0; i < plain.size(); ++i) {
    const cfloat s = plain[i] * static_cast<float>(scale), c = s * ctf[i];
    // A few float roundings of each value.
    ASSERT_LE(std::abs(scaled[i] - s), 1e-6f * std::abs(s)) << i;
    ASSERT_LE(std::abs(full[i] - c), 1e-6f * std::abs(c)) << i;
  }
}

TEST(ForwardModel, ModelCtfIsTheParticlesCtfAtScaleOne) {
  Particle p;
  p.defocus_u_A = 21000;
  p.defocus_v_A = 19000;
  p.defocus_angle_deg = 60;
  p.scale = 2.5;
  OpticsGroup g;
  g.pixel_A = 1.7;
  g.amplitude_contrast = 0.07;
  const RealGrid ctf = model_ctf(p, g, 40);
  CtfParams c = CtfParams::of(p, g);
  c.scale = 1;
  EXPECT_EQ(ctf.values(), ctf_image(c, 40, 40, 1.7).values());
  EXPECT_NEAR(ctf[0], 0.07, 1e-6);  // CTF(0) = Q0 at scale 1 (ctf.hpp)
}

TEST(ForwardModel, PointsAreTheTransformAtTheDiskIndices) {
  const int n = 32;
  const Projector volume(gaussian_volume(n));
  const ModelPose pose{euler_to_matrix({-75, 115, 20}), -1.4, 0.9};
  const RealGrid ctf = ctf_image(astigmatic_ctf(), n, n, 2.0);
  const FourierDisk disk = FourierDisk::make(n, n / 2.0, 0.0);  // the projector's whole radius
  ComplexGrid full;
  std::vector<cfloat> points;
  expected_transform(volume, pose, &ctf, 1.8, full);
  expected_points(volume, pose, disk, &ctf, 1.8, points);
  ASSERT_EQ(points.size(), disk.size());
  const float tolerance = 1e-6f * max_abs(full);
  for (std::size_t j = 0; j < disk.size(); ++j)
    ASSERT_LE(std::abs(points[j] - full[disk.index[j]]), tolerance) << disk.kx[j] << " " << disk.ky[j];
}

TEST(ForwardModel, ModelPoseTakesTheOriginInPixels) {
  ProjectionPose p;
  p.angles = {20, 40, 60};
  p.origin_x_A = 6;
  p.origin_y_A = -3;
  p.origin_z_A = 9;
  const ModelPose m = model_pose(p, 1.5);
  EXPECT_EQ(max_abs_diff(m.rotation, euler_to_matrix(p.angles)), 0.0);
  EXPECT_DOUBLE_EQ(m.origin_x_px, 4.0);
  EXPECT_DOUBLE_EQ(m.origin_y_px, -2.0);
}

TEST(ForwardModel, RejectsACtfOrDiskOfAnotherBox) {
  const int n = 16;
  const Projector volume(gaussian_volume(n));
  const RealGrid wrong_ctf(n / 2 + 1, n + 2);
  ComplexGrid f;
  std::vector<cfloat> points;
  EXPECT_THROW(expected_transform(volume, ModelPose{}, &wrong_ctf, 1.0, f), std::invalid_argument);
  EXPECT_THROW(expected_points(volume, ModelPose{}, FourierDisk::make(n + 2, 4), nullptr, 1.0, points),
               std::invalid_argument);
}

// The simulator's noise-free image is the model's, CTF and contrast included.
TEST(ForwardModel, SimulatorRendersTheModel) {
  const int n = 32;
  SimulationOptions o;
  o.count = 3;
  o.pixel_A = 2;
  o.origin_sigma_A = 5;
  o.scale_sigma = 0.3;
  o.astigmatism_max_A = 800;
  const RealGrid map = gaussian_volume(n);
  const Simulator sim({map}, o);
  const Projector volume(map);
  for (long i = 0; i < o.count; ++i) {
    RealGrid img;
    const Particle p = sim.make(i, img).particle;
    const RealGrid ctf = model_ctf(p, sim.optics(), n);
    ComplexGrid f;
    expected_transform(volume, model_pose(*p.pose, o.pixel_A), &ctf, p.scale, f);
    EXPECT_LT(rms_difference_over_rms(img, centred_image(f, n)), 1e-6);
  }
}

}  // namespace
}  // namespace tessera
