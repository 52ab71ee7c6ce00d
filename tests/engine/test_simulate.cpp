// The simulator against its own definitions: determinism per seed, the noise
// level an SNR asks for, and the geometry of rigid module motion (a module
// rotated about its centre of mass keeps its projected centroid; a shift t
// moves it by (A t)_xy).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tessera/simulate.hpp"

namespace tessera {
namespace {

RealGrid blob(int n, Vec3 c, double sigma) {
  RealGrid v(n, n, n);
  const int m = n / 2;
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        const double dx = x - m - c[0], dy = y - m - c[1], dz = z - m - c[2];
        v(x, y, z) = static_cast<float>(std::exp(-(dx * dx + dy * dy + dz * dz) / (2 * sigma * sigma)));
      }
  return v;
}

// An elongated module: rotating it changes its projection, not its centroid.
RealGrid rod(int n, Vec3 c) {
  RealGrid v = blob(n, c, 2.0);
  const RealGrid w = blob(n, {c[0] + 4, c[1], c[2]}, 2.0), u = blob(n, {c[0] - 4, c[1], c[2]}, 2.0);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += w[i] + u[i];
  return v;
}

// Centroid of the pixels above 5% of the maximum: the Fourier projector leaves
// a faint positive background (its gridding pre-correction over-weights the
// on-grid zero frequency by ~2%), which would pull a plain centroid to the centre.
std::array<double, 2> centroid(const RealGrid& img) {
  const float cut = 0.05f * *std::max_element(img.values().begin(), img.values().end());
  double m = 0, x = 0, y = 0;
  for (int j = 0; j < img.ny(); ++j)
    for (int i = 0; i < img.nx(); ++i)
      if (img(i, j) > cut) m += img(i, j), x += img(i, j) * i, y += img(i, j) * j;
  return {x / m, y / m};
}

TEST(Simulator, SameSeedSameParticlesInAnyOrder) {
  SimulationOptions o;
  o.count = 10;
  o.pixel_A = 2;
  o.snr = 0.5;
  o.origin_sigma_A = 3;
  o.astigmatism_max_A = 500;
  o.scale_sigma = 0.2;
  const std::vector<RealGrid> vols{phantom_volume(32, 2.0, 5)};
  const Simulator s1(vols, o), s2(vols, o);
  RealGrid a, b;
  const SimulatedParticle p7 = s1.make(7, a);
  s2.make(3, b);
  const SimulatedParticle q7 = s2.make(7, b);
  EXPECT_EQ(a.values(), b.values());
  EXPECT_EQ(p7.particle.pose->angles.rot, q7.particle.pose->angles.rot);
  EXPECT_EQ(p7.particle.defocus_u_A, q7.particle.defocus_u_A);
  o.seed = 2;
  RealGrid c;
  Simulator(vols, o).make(7, c);
  EXPECT_NE(a.values(), c.values());
}

TEST(Simulator, NoiseMatchesTheRequestedSnr) {
  SimulationOptions o;
  o.count = 400;
  o.pixel_A = 2;
  o.snr = 0.1;
  const Simulator s({phantom_volume(32, 2.0, 9)}, o);
  double signal = 0, noise = 0;
  RealGrid img, clean;
  for (long i = 0; i < o.count; ++i) {
    s.make(i, img, &clean);
    double m = 0, m2 = 0, e2 = 0;
    for (std::size_t k = 0; k < img.size(); ++k) {
      m += clean[k], m2 += double(clean[k]) * clean[k];
      e2 += double(img[k] - clean[k]) * (img[k] - clean[k]);
    }
    const double n = static_cast<double>(img.size());
    signal += m2 / n - (m / n) * (m / n);
    noise += e2 / n;
  }
  // 400 x 1024 noise samples: the noise variance is known to 0.3%; the signal
  // variance of 400 views differs from that of the 128 the simulator sampled
  // by a few % (it varies by view and by defocus).
  EXPECT_NEAR(signal / noise, 0.1, 0.008);
}

TEST(Simulator, ModuleRotatesAboutItsCentreAndShiftsBy_AtXY) {
  const int n = 48;
  SimulationOptions o;
  o.count = 20;
  o.pixel_A = 2;
  o.apply_ctf = false;
  o.module_rotation_sigma_deg = 8;
  const Simulator rotating({rod(n, {6, -4, 3})}, o);
  o.module_rotation_sigma_deg = 0;
  const Simulator still({rod(n, {6, -4, 3})}, o);
  o.module_shift_sigma_px = 2;
  const Simulator shifting({rod(n, {6, -4, 3})}, o);
  RealGrid a, b, c;
  double moved = 0;
  for (long i = 0; i < o.count; ++i) {
    const SimulatedParticle pr = rotating.make(i, a);
    const SimulatedParticle ps = still.make(i, b);
    const SimulatedParticle pt = shifting.make(i, c);
    const auto ca = centroid(a), cb = centroid(b), cc = centroid(c);
    // Rotation about the centre of mass: centroid fixed (to interpolation error).
    EXPECT_NEAR(ca[0], cb[0], 0.05);
    EXPECT_NEAR(ca[1], cb[1], 0.05);
    moved += std::abs(pr.module_poses[0].angles.tilt - ps.module_poses[0].angles.tilt);
    // A shift moves the centroid by minus the change of the module's origin.
    const double dx = (pt.module_poses[0].origin_x_A - ps.module_poses[0].origin_x_A) / o.pixel_A;
    const double dy = (pt.module_poses[0].origin_y_A - ps.module_poses[0].origin_y_A) / o.pixel_A;
    EXPECT_NEAR(cc[0] - cb[0], -dx, 0.05);
    EXPECT_NEAR(cc[1] - cb[1], -dy, 0.05);
  }
  EXPECT_GT(moved / o.count, 1.0);  // the modules did rotate
}

TEST(Simulator, ModulesAddUpAndEachRendersAtItsOwnPose) {
  const int n = 32;
  SimulationOptions o;
  o.count = 5;
  o.pixel_A = 2;
  o.origin_sigma_A = 2;
  o.module_rotation_sigma_deg = 5;
  o.module_shift_sigma_px = 1;
  const RealGrid m1 = blob(n, {5, 0, 0}, 2.5), m2 = blob(n, {-5, 2, 0}, 2.0);
  const Simulator both({m1, m2}, o);
  for (long i = 0; i < o.count; ++i) {
    RealGrid img;
    const SimulatedParticle sp = both.make(i, img);
    RealGrid sum(n, n);
    for (int j = 0; j < 2; ++j) {
      SimulationOptions oj = o;
      oj.module_rotation_sigma_deg = oj.module_shift_sigma_px = 0;
      oj.given_poses = {sp.module_poses[j]};
      oj.count = 1;
      Simulator one({j == 0 ? m1 : m2}, oj);
      RealGrid part;
      // Same micrograph defocus: particle 0 of a one-particle run shares micrograph 0 only
      // when i < particles_per_micrograph, which holds here.
      const SimulatedParticle spj = one.make(0, part);
      ASSERT_EQ(spj.particle.defocus_u_A, sp.particle.defocus_u_A);
      // The scale is drawn per particle: undo it.
      for (std::size_t k = 0; k < sum.size(); ++k)
        sum[k] += static_cast<float>(part[k] / spj.particle.scale * sp.particle.scale);
    }
    double err = 0, ref = 0;
    for (std::size_t k = 0; k < sum.size(); ++k) err += std::pow(sum[k] - img[k], 2), ref += std::pow(img[k], 2);
    EXPECT_LT(std::sqrt(err / ref), 1e-5);
  }
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

double sum(const RealGrid& v) {
  double s = 0;
  for (float x : v.values()) s += x;
  return s;
}

// The complex phantom (the demo's and the tutorials' small protein on a large complex): the body
// is phantom_volume itself, the small protein holds 60 of its 300 beads' mass, sits on the +x side
// and touches the body without sinking into it.
TEST(Phantom, ComplexIsTheBodyPlusASmallProteinOnItsSide) {
  const int n = 64;
  const auto [body, small] = phantom_complex(n, 3.0, 4);
  const RealGrid alone = phantom_volume(n, 3.0, 4);
  ASSERT_EQ(body.values().size(), alone.values().size());
  EXPECT_TRUE(std::equal(body.values().begin(), body.values().end(), alone.values().begin()));
  // Every bead has the same integral (none is cut by the box: all lie within 0.45 n of the centre).
  EXPECT_NEAR(sum(small) / sum(body), 60.0 / 300.0, 0.002);
  const Vec3 c = centre_of_mass_px(small);
  EXPECT_GT(c[0], n / 4.0);
  EXPECT_LT(c[0], n / 4.0 + n / 6.0);
  EXPECT_LT(std::hypot(c[1], c[2]), n / 8.0);
  // Touching: some of the small protein's density (above 5% of its peak) lies within 2 px of
  // the body's; sinking in: at most a tenth of it lies inside the body's.
  const float body_peak = *std::max_element(body.values().begin(), body.values().end());
  const float small_peak = *std::max_element(small.values().begin(), small.values().end());
  long inside = 0, near = 0, total = 0;
  for (int z = 2; z < n - 2; ++z)
    for (int y = 2; y < n - 2; ++y)
      for (int x = 2; x < n - 2; ++x) {
        if (small(x, y, z) < 0.05f * small_peak) continue;
        ++total;
        if (body(x, y, z) >= 0.05f * body_peak) ++inside;
        bool close = false;
        for (int dz = -2; dz <= 2 && !close; ++dz)
          for (int dy = -2; dy <= 2 && !close; ++dy)
            for (int dx = -2; dx <= 2 && !close; ++dx) close = body(x + dx, y + dy, z + dz) >= 0.05f * body_peak;
        if (close) ++near;
      }
  ASSERT_GT(total, 0);
  EXPECT_GT(near, 0);
  EXPECT_LT(static_cast<double>(inside) / total, 0.1);
}

}  // namespace
}  // namespace tessera
