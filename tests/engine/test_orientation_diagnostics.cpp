// Orientation diagnostics (orientation_diagnostics.hpp) against known answers:
// view directions and counts, SCF / SCF* of Baldwin & Lyumkis on distributions
// whose sampling is derived here analytically or by an independent numerical
// integral, and conical FSCs / cFAR of half maps built in Fourier space with
// signal known in each direction.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/fsc.hpp"
#include "tessera/orientation_diagnostics.hpp"
#include "tessera/random.hpp"

using namespace tessera;

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kDeg = kPi / 180.0;

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

std::vector<Euler> uniform_poses(int n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Euler> poses;
  for (int i = 0; i < n; ++i) poses.push_back(random_euler(rng));
  return poses;
}

// Views uniform over the band |n_z| <= sin(delta) (tilt in [90 - delta, 90 + delta],
// cos(tilt) uniform: the sphere's own density restricted to the band), rot and psi uniform.
std::vector<Euler> band_poses(int n, double delta_deg, std::uint64_t seed) {
  Rng rng(seed);
  const double s = std::sin(delta_deg * kDeg);
  std::vector<Euler> poses;
  for (int i = 0; i < n; ++i) {
    const double z = s * (2 * uniform01(rng) - 1);
    poses.push_back({360 * uniform01(rng), std::acos(z) / kDeg, 360 * uniform01(rng)});
  }
  return poses;
}

// The probability that a view drawn as band_poses lies within eps of the plane
// perpendicular to u (|u . n| < eps), u at colatitude acos(uz); by midpoint rule over
// n_z, with the azimuth integrated exactly: for a = sin(theta_u) sqrt(1 - n_z^2) and
// b = cos(theta_u) n_z, |a cos(psi) + b| < eps holds on an arc of psi of length
// arccos(lo) - arccos(hi), lo/hi = (-eps - b)/a, (eps - b)/a clamped to [-1, 1].
double band_sampling(double uz, double eps, double delta_deg) {
  const double s = std::sin(delta_deg * kDeg), su = std::sqrt(std::max(0.0, 1 - uz * uz));
  const int steps = delta_deg > 0 ? 400 : 1;
  double sum = 0;
  for (int i = 0; i < steps; ++i) {
    const double nz = delta_deg > 0 ? s * (2 * (i + 0.5) / steps - 1) : 0.0;
    const double a = su * std::sqrt(1 - nz * nz), b = uz * nz;
    if (a < 1e-15) {
      sum += std::abs(b) < eps ? 1.0 : 0.0;
      continue;
    }
    const double lo = std::clamp((-eps - b) / a, -1.0, 1.0), hi = std::clamp((eps - b) / a, -1.0, 1.0);
    sum += (std::acos(lo) - std::acos(hi)) / kPi;
  }
  return sum / steps;
}

// SCF of the continuous sampling p(u) over the hemisphere (uniform in u_z):
// 1 / (mean p * mean 1/p), as the definition with S = N p and no empty region.
double band_scf_reference(double radius, double delta_deg) {
  const double eps = 0.5 / radius;
  const int steps = 4000;
  double mean = 0, inv = 0;
  for (int i = 0; i < steps; ++i) {
    const double p = band_sampling((i + 0.5) / steps, eps, delta_deg);
    mean += p / steps, inv += 1 / p / steps;
  }
  return 1 / (mean * inv);
}

// ---- view directions and counts ---------------------------------------------

TEST(ViewDirection, IsTheProjectionAxisInMapCoordinates) {
  Rng rng(3);
  for (int i = 0; i < 100; ++i) {
    const Euler e = random_euler(rng);
    const Vec3 n = view_direction(e);
    const double r = e.rot * kDeg, t = e.tilt * kDeg;
    EXPECT_NEAR(n[0], std::cos(r) * std::sin(t), 1e-12);
    EXPECT_NEAR(n[1], std::sin(r) * std::sin(t), 1e-12);
    EXPECT_NEAR(n[2], std::cos(t), 1e-12);
    // The pose maps n onto the image's z axis: the direction integrated over.
    const Vec3 in_image = multiply(euler_to_matrix(e), n);
    EXPECT_NEAR(in_image[2], 1.0, 1e-12);
    const Vec3 back = view_direction(direction_to_euler(n));
    EXPECT_NEAR(dot(back, n), 1.0, 1e-12);
  }
}

TEST(EqualAreaGrid, CellsHaveEqualAreaAndContainTheirCentres) {
  const EqualAreaGrid grid(7.5);
  EXPECT_NEAR(grid.size(), 4 * kPi / std::pow(7.5 * kDeg, 2), 0.05 * grid.size());
  for (int c = 0; c < grid.size(); ++c) ASSERT_EQ(grid.cell_of(grid.centre(c)), c) << c;
  // 2 million points uniform in z and longitude (uniform on the sphere): each
  // cell's share is 1/M with binomial error sqrt(p / n) ~ 2.6% of it at M = 733;
  // 5 standard deviations bound the largest deviation over the cells.
  Rng rng(11);
  const int n = 2'000'000;
  std::vector<long> count(static_cast<std::size_t>(grid.size()), 0);
  for (int i = 0; i < n; ++i) {
    const double z = 2 * uniform01(rng) - 1, phi = 2 * kPi * uniform01(rng), s = std::sqrt(1 - z * z);
    ++count[static_cast<std::size_t>(grid.cell_of({s * std::cos(phi), s * std::sin(phi), z}))];
  }
  const double expected = static_cast<double>(n) / grid.size();
  for (long c : count) EXPECT_NEAR(static_cast<double>(c), expected, 5 * std::sqrt(expected));
}

TEST(ViewDistribution, CountsSumToParticlesAndPeakWherePut) {
  // 3000 uniform views plus 2000 within 2 degrees of (rot 40, tilt 60).
  std::vector<Euler> poses = uniform_poses(3000, 5);
  Rng rng(6);
  for (int i = 0; i < 2000; ++i)
    poses.push_back({40 + 2 * (uniform01(rng) - 0.5), 60 + 2 * (uniform01(rng) - 0.5), 360 * uniform01(rng)});
  const ViewDistribution d = view_distribution(poses, 7.5);
  long total = 0;
  for (long c : d.counts) total += c;
  EXPECT_EQ(total, 5000);
  const auto peak = std::max_element(d.counts.begin(), d.counts.end()) - d.counts.begin();
  // The 2 degree patch may straddle a cell edge: the peak is the cell of the
  // preferred direction or one whose centre lies within a cell width of it.
  const Vec3 preferred = view_direction({40, 60, 0});
  EXPECT_GT(dot(d.grid.centre(static_cast<int>(peak)), preferred), std::cos(7.5 * kDeg));
  EXPECT_GE(d.counts[static_cast<std::size_t>(peak)], 1000);
}

// ---- SCF and SCF* -------------------------------------------------------------

TEST(SamplingCompensationFactor, UniformViewsGiveOneUpToPoissonNoise) {
  // S_j ~ Binomial(N, 1/(2R)): mean lambda = N/(2R) = 100, variance lambda (1 - 1/(2R)),
  // so <1/S> = (1 + 0.99/lambda) / lambda to first order and SCF = SCF* = 0.9901 (no
  // point is empty: P(S = 0) = e^-100). The mean of 1/S over 5000 points has a
  // relative sampling error of about 0.1 / sqrt(5000) = 0.0014: tolerance 0.003.
  const ScfResult r = sampling_compensation_factor(uniform_poses(10000, 1), {});
  EXPECT_EQ(r.particles_used, 10000);
  EXPECT_EQ(r.points.size(), 5000u);
  EXPECT_EQ(r.fraction_unsampled, 0.0);
  EXPECT_NEAR(r.mean_sampling, 100.0, 1.0);  // N / (2R); the mean over 5000 points varies by ~0.14
  EXPECT_NEAR(r.scf, 1 - 0.99 / 100, 0.003);
  EXPECT_DOUBLE_EQ(r.scf_star, r.scf);
}

TEST(SamplingCompensationFactor, AllViewsAlongZSampleOnlyTheEquatorialBand) {
  // All N views along z: S = N where R |u_z| < 1/2, else 0. With R = 50 and 5000
  // points at z_j = (j + 1/2)/5000, exactly j < 50 qualify: P = 1/(2R) = 0.01.
  // SCF = 1 / (<S> <1/S>) = 1 / (P N / N) = 1/P = 100 (no longer bounded by 1);
  // f0 = 1 - P, and SCF* = SCF / (1 + (1-P)/P * P N * SCF / 2) = 2 / (2P + (1-P) N).
  const int n = 1000;
  std::vector<Euler> poses;
  for (int i = 0; i < n; ++i) poses.push_back({0, 0, 360.0 * i / n});
  const ScfResult r = sampling_compensation_factor(poses, {});
  const double p = 0.01;
  EXPECT_NEAR(r.fraction_unsampled, 1 - p, 1e-12);
  EXPECT_NEAR(r.scf, 1 / p, 1e-9);
  EXPECT_NEAR(r.scf_star, 2 / (2 * p + (1 - p) * n), 1e-12);
  EXPECT_LT(r.scf_star, 0.0021);
}

TEST(SamplingCompensationFactor, SideViewsMatchTheIntegral) {
  // Side views (tilt 90, rot uniform): every direction is sampled, with density
  // p(u) = (2/pi) asin(eps / sin theta_u), eps = 1/(2R); SCF -> 8/pi^2 = 0.8106 as
  // R grows (cryoSPARC's 0.81 threshold). The reference is the integral
  // band_scf_reference; the counts carry Poisson noise of relative size
  // 1/sqrt(N p) with N p >= 10000 * 2 eps / pi = 64, which biases <1/S> up by
  // about 1/(N p) averaged over the shell: ~1%, so the tolerance is 2%.
  const ScfResult r = sampling_compensation_factor(band_poses(10000, 0.0, 2), {});
  const double expected = band_scf_reference(50, 0.0);
  EXPECT_NEAR(expected, 8 / (kPi * kPi), 0.01);
  EXPECT_EQ(r.fraction_unsampled, 0.0);
  EXPECT_NEAR(r.scf, expected, 0.02 * expected);
  EXPECT_DOUBLE_EQ(r.scf_star, r.scf);
}

TEST(SamplingCompensationFactor, EquatorialBandMatchesTheIntegral) {
  // Views within 30 degrees of the equator: sampled everywhere, more evenly than side
  // views alone. Reference and tolerance as above (N p is larger here).
  const ScfResult r = sampling_compensation_factor(band_poses(10000, 30.0, 4), {});
  const double expected = band_scf_reference(50, 30.0);
  EXPECT_GT(expected, 8 / (kPi * kPi));
  EXPECT_NEAR(r.scf, expected, 0.02 * expected);
  EXPECT_DOUBLE_EQ(r.scf_star, r.scf);
}

TEST(SamplingCompensationFactor, UsesAtMostMaxParticles) {
  const std::vector<Euler> poses = uniform_poses(12000, 9);
  const ScfResult r = sampling_compensation_factor(poses, {});
  EXPECT_EQ(r.particles_used, 10000);
  ScfOptions all;
  all.max_particles.reset();
  EXPECT_EQ(sampling_compensation_factor(poses, all).particles_used, 12000);
}

// ---- conical FSC and cFAR -------------------------------------------------------

constexpr int kBox = 64;

// Half maps = signal + independent white noise (sigma 1). The signal is white
// noise of sigma 3 (per-voxel SNR 9: FSC 0.9) kept only at Fourier radius <= limit(k),
// limit = top_limit within `top_cone_deg` of the z axis and side_limit elsewhere; the
// filter is real and even in k, so the maps stay real.
struct HalfMaps {
  RealGrid a, b;
};
HalfMaps anisotropic_half_maps(int side_limit, int top_limit, double top_cone_deg, std::uint64_t seed) {
  Rng rng(seed);
  RealGrid signal(kBox, kBox, kBox), a(kBox, kBox, kBox), b(kBox, kBox, kBox);
  for (float& v : signal.values()) v = static_cast<float>(3 * normal01(rng));
  ComplexGrid f = fft_3d(signal);
  const double cos_top = std::cos(top_cone_deg * kDeg);
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < f.ny(); ++y)
      for (int x = 0; x < f.nx(); ++x) {
        const double kz = fourier_index(z, kBox), ky = fourier_index(y, kBox);
        const double r = std::sqrt(x * x + ky * ky + kz * kz);
        const bool top = r > 0 && std::abs(kz) >= r * cos_top;
        if (std::lround(r) > (top ? top_limit : side_limit)) f(x, y, z) = 0;
      }
  signal = ifft_3d(f, kBox);
  for (std::size_t i = 0; i < signal.size(); ++i) {
    a[i] = signal[i] + static_cast<float>(normal01(rng));
    b[i] = signal[i] + static_cast<float>(normal01(rng));
  }
  return {a, b};
}

TEST(ConicalFsc, GlobalCurveIsTheFsc) {
  const HalfMaps m = anisotropic_half_maps(20, 20, 45, 1);
  const ConicalFsc c = conical_fsc(m.a, m.b, {});
  const std::vector<double> ref = fsc(m.a, m.b);
  ASSERT_EQ(c.global.size(), ref.size());
  for (std::size_t k = 0; k < ref.size(); ++k) EXPECT_NEAR(c.global[k], ref[k], 1e-5) << k;  // float transforms
}

TEST(ConicalFsc, ConeMembershipMatchesADirectSum) {
  // The lookup only proposes cone axes; a direct sum over every voxel for a few
  // axes must give the same curve and voxel counts (exactly the same voxels).
  const HalfMaps m = anisotropic_half_maps(12, 6, 45, 2);
  ConicalFscOptions opt;
  opt.directions = 50;
  opt.cone_half_angle_deg = 15;
  const ConicalFsc c = conical_fsc(m.a, m.b, opt);
  const ComplexGrid fa = fft_3d(m.a), fb = fft_3d(m.b);
  for (int d : {0, 17, 49}) {
    const Vec3 axis = c.directions[static_cast<std::size_t>(d)];
    std::vector<double> num(kBox / 2 + 1), da(num.size()), db(num.size());
    std::vector<long> count(num.size());
    for (int z = 0; z < fa.nz(); ++z)
      for (int y = 0; y < fa.ny(); ++y)
        for (int x = 0; x < fa.nx(); ++x) {
          const double kz = fourier_index(z, kBox), ky = fourier_index(y, kBox);
          const double r = std::sqrt(x * x + ky * ky + kz * kz);
          const auto k = static_cast<std::size_t>(std::lround(r));
          if (k >= num.size() || (r > 0 && std::abs(x * axis[0] + ky * axis[1] + kz * axis[2]) < r * std::cos(15 * kDeg)))
            continue;
          const std::complex<double> p(fa(x, y, z)), q(fb(x, y, z));
          num[k] += (p * std::conj(q)).real(), da[k] += std::norm(p), db[k] += std::norm(q), ++count[k];
        }
    for (std::size_t k = 0; k < num.size(); ++k) {
      EXPECT_EQ(c.voxels[static_cast<std::size_t>(d)][k], count[k]) << d << " " << k;
      if (count[k] >= 10) {  // fewer: the global FSC stands in (orientation_diagnostics.hpp)
        EXPECT_NEAR(c.curves[static_cast<std::size_t>(d)][k], num[k] / std::sqrt(da[k] * db[k]), 1e-9) << d << " " << k;
      }
    }
  }
}

TEST(ConicalFsc, IsotropicHalfMapsGiveCfarNearOne) {
  // Signal to shell 20 in every direction: each cone's curve is ~0.9 to shell 20 and
  // noise around 0 beyond. Per-direction areas differ only by that noise (the cone's
  // shells beyond 20 hold 30..300 voxels: FSC noise 0.06..0.2 per shell, ~0.01 on the
  // mean of 32 shells, against an area of ~0.57): min / max over 500 directions stays
  // above 0.85 (measured 0.95).
  const HalfMaps m = anisotropic_half_maps(20, 20, 45, 3);
  const ConicalFsc c = conical_fsc(m.a, m.b, {});
  ASSERT_TRUE(c.cfar.has_value());
  EXPECT_GT(*c.cfar, 0.85);
  EXPECT_LE(*c.cfar, 1.0);
}

TEST(ConicalFsc, MissingTopViewsGiveLowCfarAndTheBuiltResolutions) {
  // Signal to shell 24 except within 45 degrees of z, where it stops at shell 6 (as
  // when views along z are missing: their central sections hold the k_z axis region).
  // The cone about z (20 degrees) lies inside the 45-degree region: its curve is ~0.9
  // to shell 6 then noise; a cone about an equatorial axis lies outside: ~0.9 to
  // shell 24. Areas ~ 6 * 0.9 / 32 and 24 * 0.9 / 32: cFAR ~ 0.25.
  const HalfMaps m = anisotropic_half_maps(24, 6, 45, 4);
  const ConicalFsc c = conical_fsc(m.a, m.b, {});
  ASSERT_TRUE(c.cfar.has_value());
  EXPECT_LT(*c.cfar, 0.5);
  EXPECT_GT(*c.cfar, 0.1);
  const Vec3 worst = c.directions[static_cast<std::size_t>(c.worst)];
  const Vec3 best = c.directions[static_cast<std::size_t>(c.best)];
  EXPECT_GT(std::abs(worst[2]), std::cos(25 * kDeg)) << "worst direction should be near z";
  EXPECT_LT(std::abs(best[2]), std::sin(45 * kDeg)) << "best direction should be away from z";
  // Resolutions at 0.143 within one shell of those built: the last shell with
  // signal, or the next when the noise there happens to exceed 0.143.
  const double voxel_A = 2.0;
  const auto worst_A = resolution_at(c.curves[static_cast<std::size_t>(c.worst)], 0.143, kBox, voxel_A);
  const auto best_A = resolution_at(c.curves[static_cast<std::size_t>(c.best)], 0.143, kBox, voxel_A);
  ASSERT_TRUE(worst_A && best_A);
  EXPECT_GE(*worst_A, kBox * voxel_A / 7 - 1e-9);
  EXPECT_LE(*worst_A, kBox * voxel_A / 6 + 1e-9);
  EXPECT_GE(*best_A, kBox * voxel_A / 25 - 1e-9);
  EXPECT_LE(*best_A, kBox * voxel_A / 24 + 1e-9);
}

TEST(ConicalFsc, RejectsBadInputs) {
  const RealGrid a(16, 16, 16, 1.0f), b(16, 16, 8, 1.0f);
  EXPECT_THROW(conical_fsc(a, b, {}), InputError);
  ConicalFscOptions opt;
  opt.cone_half_angle_deg = 0;
  EXPECT_THROW(conical_fsc(a, a, opt), InputError);
  opt.cone_half_angle_deg = 20;
  opt.directions = 0;
  EXPECT_THROW(conical_fsc(a, a, opt), InputError);
}

}  // namespace
