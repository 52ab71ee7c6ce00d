// Anisotropic magnification (magnification.hpp, forward_model.hpp, ctf.hpp, mag_refine.hpp):
// the model's distorted projection against a volume stretched in real space (an independent
// calculation), the CTF at M k as RELION evaluates it, the defocus re-expression, the identity
// changing nothing, and the fit bringing a simulated 2% anisotropy back.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/mag_refine.hpp"
#include "tessera/magnification.hpp"
#include "tessera/mrc.hpp"
#include "tessera/pose_search.hpp"
#include "tessera/simulate.hpp"

namespace tessera {
namespace {

// A sum of Gaussian blobs (sigma 3 px) at fixed offsets from the centre, sampled at R (x - c) + c:
// v(R x) for a 3x3 matrix R (rows), an analytic volume whose transform is known up to R.
RealGrid blobs(int box, const Mat3& r) {
  const double c = box / 2, s2 = 2 * 3.0 * 3.0;
  const double at[4][3] = {{0, 0, 0}, {6, -3, 2}, {-5, 4, -1}, {2, 7, -6}};
  RealGrid v(box, box, box);
  for (int z = 0; z < box; ++z)
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box; ++x) {
        const double p[3] = {x - c, y - c, z - c};
        double q[3] = {0, 0, 0};
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) q[i] += r[i][j] * p[j];
        double sum = 0;
        for (const auto& b : at) {
          const double dx = q[0] - b[0], dy = q[1] - b[1], dz = q[2] - b[2];
          sum += std::exp(-(dx * dx + dy * dy + dz * dz) / s2);
        }
        v(x, y, z) = static_cast<float>(sum);
      }
  return v;
}

Mat3 mat3_of(const Mat2& m) { return {{{m[0], m[1], 0}, {m[2], m[3], 0}, {0, 0, 1}}}; }

TEST(Magnification, ProjectionEqualsThatOfTheVolumeStretchedInRealSpace) {
  // The model: X(k) = V(A^T M k). Independently: v'(x) = v(R x) has V'(q) = V(R^-T q) / |det R|, so
  // with R = A^T M3^-T A (M3: M in the xy block), the plain projection of v' at A is
  // V'(A^T k) = V(A^T M k) det M (det R = 1 / det M). A non-symmetric M tells M from its transpose and inverse.
  const int box = 48;
  const Mat2 m{1.04, 0.05, -0.04, 0.97};
  const Mat3 a = euler_to_matrix({37, 71, -112});
  const Mat3 r = multiply(multiply(transpose(a), transpose(mat3_of(inverse(m)))), a);
  const Projector plain(blobs(box, identity3())), stretched(blobs(box, r));
  ComplexGrid model, reference;
  expected_transform(plain, ModelPose{a, 0, 0, m}, nullptr, 1.0, model);
  stretched.project(a, reference);
  const double det = m[0] * m[3] - m[1] * m[2];
  double err2 = 0, ref2 = 0, transposed_err2 = 0, inverse_err2 = 0;
  ComplexGrid transposed, inverted;
  expected_transform(plain, ModelPose{a, 0, 0, Mat2{m[0], m[2], m[1], m[3]}}, nullptr, 1.0, transposed);
  expected_transform(plain, ModelPose{a, 0, 0, inverse(m)}, nullptr, 1.0, inverted);
  for (int y = 0; y < box; ++y)
    for (int x = 0; x <= box / 2; ++x) {
      const int ky = fourier_index(y, box);
      if (x * x + ky * ky > 10 * 10) continue;  // the blobs' transform is below 1e-3 of its peak beyond
      const std::complex<double> want = std::complex<double>(reference(x, y)) / det;
      err2 += std::norm(std::complex<double>(model(x, y)) - want);
      transposed_err2 += std::norm(std::complex<double>(transposed(x, y)) - want);
      inverse_err2 += std::norm(std::complex<double>(inverted(x, y)) - want);
      ref2 += std::norm(want);
    }
  const double rel = std::sqrt(err2 / ref2), rel_t = std::sqrt(transposed_err2 / ref2),
               rel_i = std::sqrt(inverse_err2 / ref2);
  std::printf("relative RMS difference: %.2e (the transpose: %.2e, the inverse: %.2e)\n", rel, rel_t, rel_i);
  EXPECT_LT(rel, 1e-2);  // measured 5.2e-3: the two trilinear interpolations differ by that much
  EXPECT_GT(rel_t, 5 * rel);
  EXPECT_GT(rel_i, 5 * rel);
}

// The pose search projects the reference at the particle's magnification (ParticleInput::mag_matrix):
// a noise-free image made with M is found at its true pose, from a start 2 degrees off, only when the
// search is given M; searched with the identity, the best pose scores lower and lies elsewhere.
TEST(Magnification, PoseSearchAppliesTheParticlesMatrix) {
  const int box = 48;
  const Mat2 m{1.04, 0.05, -0.04, 0.97};
  const Mat3 a = euler_to_matrix({37, 71, -112});
  const Projector reference(blobs(box, identity3()));
  ComplexGrid image;
  expected_transform(reference, ModelPose{a, 0.5, -0.25, m}, nullptr, 1.0, image);
  const RealGrid ctf(box / 2 + 1, box, 1, 1.0f);
  const std::vector<double> inv_sigma2(box / 2 + 1, 1.0);
  LocalSearchOptions o;
  o.final_step_deg = 0.234375;
  o.final_shift_step_px = 0.125;
  const std::unique_ptr<PoseSearch> search = make_local_search(o);
  search->prepare(reference, inv_sigma2, 12);
  const Mat3 start = multiply(axis_angle_matrix({0.6, 0.0, 0.8}, 2.0), a);
  const auto found = [&](const Mat2& given) {
    ParticleInput in{&image, &ctf, 1.0, PoseEstimate{start, 0, 0, 0, {}}};
    in.mag_matrix = given;
    return search->search(in);
  };
  const PoseEstimate with_m = found(m), with_identity = found(kIdentity2);
  // The search's own precision on this smooth object: the same image made without M, searched without.
  ComplexGrid flat;
  expected_transform(reference, ModelPose{a, 0.5, -0.25}, nullptr, 1.0, flat);
  ParticleInput plain{&flat, &ctf, 1.0, PoseEstimate{start, 0, 0, 0, {}}};
  const PoseEstimate baseline = search->search(plain);
  const double err_m = rotation_distance_deg(with_m.rotation, a), err_i = rotation_distance_deg(with_identity.rotation, a),
               err_0 = rotation_distance_deg(baseline.rotation, a);
  std::printf("searched with M: %.3f deg, origin (%.3f, %.3f) px, score %.4g; with the identity: %.3f deg, score %.4g; "
              "no M anywhere: %.3f deg\n",
              err_m, with_m.origin_x_px, with_m.origin_y_px, with_m.score, err_i, with_identity.score, err_0);
  // With M the search does what it does without any magnification (measured 0.690 and 0.684 deg:
  // Gaussian blobs of sigma 3 px leave the score flat at the level of the last step); with the
  // identity it lands 4 degrees away, at a lower score.
  EXPECT_NEAR(err_m, err_0, 0.05);
  EXPECT_NEAR(with_m.origin_x_px, 0.5, 0.1);
  EXPECT_NEAR(with_m.origin_y_px, -0.25, 0.1);
  EXPECT_GT(with_m.score, with_identity.score);
  EXPECT_GT(err_i, err_0 + 2.0);
}

TEST(Magnification, IdentityChangesNothing) {
  const RealGrid vol = phantom_volume(32, 1.2, 5, 80);
  const Projector proj(vol);
  const ModelPose pose{euler_to_matrix({10, 50, 200}), 1.5, -2.25};
  ComplexGrid a, b;
  expected_transform(proj, pose, nullptr, 1.0, a);
  proj.project(pose.rotation, b);
  apply_image_formation(pose, nullptr, 1.0, b);
  EXPECT_EQ(a.values(), b.values());
  EXPECT_EQ(model_matrix(pose), pose.rotation);
  ProjectionPose pp;
  pp.angles = {10, 50, 200};
  OpticsGroup g;
  g.pixel_A = 1.2;
  const ModelPose with_group = model_pose(pp, g), with_pixel = model_pose(pp, 1.2);
  EXPECT_EQ(with_group.rotation, with_pixel.rotation);
  EXPECT_EQ(with_group.mag_matrix, kIdentity2);
}

TEST(Magnification, CtfIsEvaluatedAtMkAsRelionDoes) {
  // RELION's CTF::getCTF: X' = M00 X + M01 Y, Y' = M10 X + M11 Y, then the whole CTF (the B-factor
  // envelope included) at (X', Y').
  CtfParams p;
  p.defocus_u_A = 15200, p.defocus_v_A = 14300, p.defocus_angle_deg = 23, p.bfactor_A2 = 40;
  p.phase_shift_deg = 12;
  CtfParams distorted = p;
  distorted.mag_matrix = {1.012, -0.004, 0.007, 0.991};
  const Ctf plain(p), magnified(distorted);
  const auto& m = distorted.mag_matrix;
  for (double kx = -0.31; kx < 0.32; kx += 0.047)
    for (double ky = -0.29; ky < 0.3; ky += 0.053) {
      const double x = m[0] * kx + m[1] * ky, y = m[2] * kx + m[3] * ky;
      ASSERT_FLOAT_EQ(magnified(kx, ky), plain(x, y));
      ASSERT_NEAR(magnified.phase(kx, ky), plain.phase(x, y), 1e-9);
      const double k = std::hypot(kx, ky);
      ASSERT_NEAR(magnified.phase_along(std::atan2(ky, kx)).at(k * k), magnified.phase(kx, ky), 1e-9);
    }
  OpticsGroup g;
  g.mag_matrix = distorted.mag_matrix;
  EXPECT_EQ(CtfParams::of(Particle{}, g).mag_matrix, distorted.mag_matrix);
}

TEST(Magnification, DefocusReexpressedKeepsTheCtfOfTheObservedFrequency) {
  // Cs 0: the CTF is then the defocus form alone, and re-expressing it from M to the identity (and
  // back) keeps the CTF of every observed frequency.
  Particle p;
  p.defocus_u_A = 16000, p.defocus_v_A = 15100, p.defocus_angle_deg = 64;
  OpticsGroup g;
  g.cs_mm = 0;
  g.mag_matrix = anisotropic_magnification(2, 30);
  Particle seen = p;
  reexpress_defocus(seen, g.mag_matrix, kIdentity2);
  OpticsGroup plain = g;
  plain.mag_matrix = kIdentity2;
  const Ctf truth(CtfParams::of(p, g)), observed(CtfParams::of(seen, plain));
  for (double kx = -0.3; kx < 0.31; kx += 0.05)
    for (double ky = -0.3; ky < 0.31; ky += 0.05) ASSERT_NEAR(truth.phase(kx, ky), observed.phase(kx, ky), 1e-8);
  Particle back = seen;
  reexpress_defocus(back, kIdentity2, g.mag_matrix);
  EXPECT_NEAR(back.defocus_u_A, p.defocus_u_A, 1e-6);
  EXPECT_NEAR(back.defocus_v_A, p.defocus_v_A, 1e-6);
  EXPECT_NEAR(back.defocus_angle_deg, p.defocus_angle_deg, 1e-9);
}

TEST(Magnification, AnisotropicMatrixHasItsAnisotropyAndDirection) {
  const Mat2 m = anisotropic_magnification(2, 30);
  const MagnificationSummary s = summarize_magnification(m);
  EXPECT_NEAR(s.mean, 1, 1e-12);
  EXPECT_NEAR(s.anisotropy, 0.02, 1e-12);
  EXPECT_NEAR(s.major_angle_deg, 30, 1e-9);
  EXPECT_NEAR(m[0] * m[3] - m[1] * m[2], 1 - 1e-4, 1e-12);  // (1 + 0.01)(1 - 0.01)
  const Mat2 i = multiply(m, inverse(m));
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(i[k], kIdentity2[k], 1e-15);
}

// Particles of the box-64 phantom at 1.2 A/px with their true poses, made with matrix `m`; the set
// carries the identity and the defoci the images show (as tessera_simulate writes particles.star).
struct Simulated {
  ParticleSet set;
  RealGrid map;
};

Simulated simulate(const std::filesystem::path& dir, long count, const Mat2& m, double snr) {
  Simulated s;
  s.map = phantom_volume(64, 1.2, 7, 400);
  SimulationOptions o;
  o.pixel_A = 1.2;
  o.seed = 21;
  o.count = count;
  o.defocus_min_A = 8000, o.defocus_max_A = 16000, o.astigmatism_max_A = 400;
  o.particles_per_micrograph = 50;
  o.origin_sigma_A = 2;
  o.snr = snr;
  o.mag_matrix = m;
  const Simulator sim({s.map}, o);
  std::filesystem::create_directories(dir);
  MrcStackWriter stack(dir / "particles.mrcs", 64, 64, o.pixel_A);
  s.set.optics.push_back(sim.optics());
  s.set.optics.front().mag_matrix = kIdentity2;
  s.set.base_dir = dir;
  RealGrid image;
  for (long i = 0; i < count; ++i) {
    Particle p = sim.make(i, image).particle;
    stack.append(image);
    reexpress_defocus(p, m, kIdentity2);
    p.image = ImageRef{i + 1, "particles.mrcs"};
    s.set.particles.push_back(p);
  }
  stack.finish();
  return s;
}

TEST(MagnificationFit, TwoPercentAnisotropyComesBack) {
  // 2% at 30 deg, 600 particles at SNR 0.5, the true map and poses: every entry of the matrix within
  // 0.003 (0.3%) and the anisotropy within 0.3 percentage points; the defoci come back to the truth
  // (re-expressed in the fitted frame). One and two threads give the same matrix, bit for bit.
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_mag_fit";
  const Mat2 truth = anisotropic_magnification(2, 30);
  Simulated s = simulate(dir, 600, truth, 0.5);
  const ParticleSet given = s.set;
  const RealGrid* maps[] = {&s.map};
  MagnificationRefineOptions o;
  o.threads = 2;
  const std::vector<MagnificationGroupFit> fits = refine_magnification(s.set, maps, o);
  ASSERT_EQ(fits.size(), 1u);
  EXPECT_EQ(fits[0].particles, 600);
  ASSERT_EQ(fits[0].after_pass.size(), 2u);
  const Mat2 m = s.set.optics.front().mag_matrix;
  EXPECT_EQ(m, fits[0].after_pass.back());
  std::printf("truth [%.5f %.5f %.5f %.5f], fitted [%.5f %.5f %.5f %.5f]\n", truth[0], truth[1], truth[2], truth[3],
              m[0], m[1], m[2], m[3]);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(m[k], truth[k], 0.003) << k;
  const MagnificationSummary sum = summarize_magnification(m);
  EXPECT_NEAR(sum.anisotropy, 0.02, 0.003);
  EXPECT_NEAR(sum.major_angle_deg, 30, 5);
  // The re-expressed defoci: back to the true ones (in the true frame) to a few Angstrom.
  Particle true_p = given.particles[0];
  reexpress_defocus(true_p, kIdentity2, truth);
  EXPECT_NEAR(s.set.particles[0].defocus_u_A, true_p.defocus_u_A, 40);
  EXPECT_NEAR(s.set.particles[0].defocus_v_A, true_p.defocus_v_A, 40);
  ParticleSet again = given;
  o.threads = 1;
  refine_magnification(again, maps, o);
  EXPECT_EQ(again.optics.front().mag_matrix, m);
  std::filesystem::remove_all(dir);
}

TEST(MagnificationFit, IdentityDataGiveTheIdentity) {
  const auto dir = std::filesystem::temp_directory_path() / "tessera_test_mag_fit_identity";
  Simulated s = simulate(dir, 200, kIdentity2, 0.5);
  const RealGrid* maps[] = {&s.map};
  MagnificationRefineOptions o;
  o.threads = 2;
  refine_magnification(s.set, maps, o);
  const Mat2 m = s.set.optics.front().mag_matrix;
  std::printf("fitted [%.5f %.5f %.5f %.5f]\n", m[0], m[1], m[2], m[3]);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(m[k], kIdentity2[k], 0.002) << k;
  EXPECT_LT(summarize_magnification(m).anisotropy, 0.002);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tessera
