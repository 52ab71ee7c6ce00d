// CPU CtfApplier against two oracles: ctf_image() (the reference CTF model,
// ctf.hpp) and the CTF's analytic values at k = 0 and at its first zero.
#include "tessera/ctf_batch.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <stdexcept>
#include <vector>

#include "tessera/ctf.hpp"
#include "tessera/error.hpp"

namespace tessera {
namespace {

ComplexGrid random_stack(int nx, int ny, int batch, unsigned seed) {
  ComplexGrid g(nx / 2 + 1, ny, batch);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : g.values()) v = cfloat(normal(rng), normal(rng));
  return g;
}

// Astigmatic, phase-shifted, B-factor-weighted and scaled CTFs: every term of the model is exercised.
std::vector<CtfParams> varied_params() {
  std::vector<CtfParams> ps(4);
  ps[0].defocus_u_A = 12000, ps[0].defocus_v_A = 11000, ps[0].defocus_angle_deg = 30;
  ps[1].defocus_u_A = 25000, ps[1].defocus_v_A = 26500, ps[1].defocus_angle_deg = -75,
  ps[1].bfactor_A2 = 80, ps[1].scale = 0.7;
  ps[2].defocus_u_A = 8000, ps[2].defocus_v_A = 8000, ps[2].voltage_kV = 200, ps[2].cs_mm = 2.0,
  ps[2].amplitude_contrast = 0.07, ps[2].phase_shift_deg = 60;
  ps[3].defocus_u_A = 40000, ps[3].defocus_v_A = 37000, ps[3].defocus_angle_deg = 170,
  ps[3].scale = 1.8, ps[3].bfactor_A2 = -20;
  return ps;
}

float apply_op(float ctf, CtfOp op) {
  if (op == CtfOp::Multiply) return ctf;
  if (op == CtfOp::MultiplyAbs) return std::fabs(ctf);
  return ctf * ctf;
}

// The applier evaluates the same tessera::Ctf at the same frequencies as ctf_image and
// multiplies in float as this oracle does, so the results must agree bit for bit.
TEST(CtfBatch, MatchesCtfImageExactly) {
  const auto params = varied_params();
  const double pixel_A = 1.1;
  for (auto [nx, ny] : {std::pair{37, 32}, std::pair{40, 33}}) {
    for (CtfOp op : {CtfOp::Multiply, CtfOp::MultiplyAbs, CtfOp::Square}) {
      const ComplexGrid input = random_stack(nx, ny, 4, 17);
      ComplexGrid stack = input;
      make_cpu_ctf_applier()->apply(stack, nx, params, pixel_A, op);
      long mismatches = 0;
      for (int z = 0; z < 4; ++z) {
        const RealGrid ctf = ctf_image(params[z], nx, ny, pixel_A);
        ASSERT_EQ(ctf.nx(), stack.nx());
        for (int y = 0; y < ny; ++y)
          for (int x = 0; x < stack.nx(); ++x)
            if (stack(x, y, z) != input(x, y, z) * apply_op(ctf(x, y), op)) ++mismatches;
      }
      EXPECT_EQ(mismatches, 0) << "nx " << nx << " ny " << ny << " op " << static_cast<int>(op);
    }
  }
}

// CTF(0) = -scale sin(-asin(Q0)) = scale * Q0 whatever the defocus, astigmatism or B-factor.
// Tolerance: float rounding of the product, 2 ulp of values below 1.
TEST(CtfBatch, ZeroFrequencyIsAmplitudeContrast) {
  auto params = varied_params();
  params[3].phase_shift_deg = 0;  // only image 2 has a phase shift
  params.erase(params.begin() + 2);
  ComplexGrid stack(33, 32, 3, cfloat(1, 0));
  make_cpu_ctf_applier()->apply(stack, 64, params, 1.3);
  for (int z = 0; z < 3; ++z) {
    const double expected = params[z].scale * params[z].amplitude_contrast;
    EXPECT_NEAR(stack(0, 0, z).real(), expected, 2.5e-7 * params[z].scale) << "image " << z;
    EXPECT_EQ(stack(0, 0, z).imag(), 0.0f);
  }
}

// Without astigmatism, chi(k) = -pi lambda D k^2 + (pi/2) Cs lambda^3 k^4 - asin(Q0) and
// CTF = -sin(chi) is first zero where chi = -pi: the smaller root u = k^2 of
//   (pi/2) Cs lambda^3 u^2 - pi lambda D u + (pi - asin(Q0)) = 0.
// The pixel size puts that radius exactly 10 samples from the origin, which a 64-pixel grid
// samples at (10, 0), (0, 10), (6, 8) and (8, -6).
TEST(CtfBatch, FirstZeroAtAnalyticRadius) {
  CtfParams p;
  p.defocus_u_A = p.defocus_v_A = 15000, p.defocus_angle_deg = 40;
  p.voltage_kV = 300, p.cs_mm = 2.7, p.amplitude_contrast = 0.1;
  // The model's wavelength (RELION's rounded constants) is the one the zero must match;
  // check it against CODATA 2018 physics first: they differ by 6.4e-6 relative at 300 kV.
  const double h = 6.62607015e-34, m = 9.1093837015e-31, e = 1.602176634e-19, c0 = 299792458.0;
  const double volts = 300e3;
  const double codata_A = 1e10 * h / std::sqrt(2 * m * e * volts * (1 + e * volts / (2 * m * c0 * c0)));
  const double lambda = electron_wavelength_A(p.voltage_kV);
  EXPECT_NEAR(lambda / codata_A, 1.0, 1e-5);

  const double pi = std::numbers::pi, cs_A = 2.7e7;
  const double a = pi / 2 * cs_A * std::pow(lambda, 3), b = pi * lambda * p.defocus_u_A;
  const double c = pi - std::asin(p.amplitude_contrast);
  const double u = 2 * c / (b + std::sqrt(b * b - 4 * a * c));  // smaller root, stable form
  const int n = 64;
  const double pixel_A = 10.0 / (n * std::sqrt(u));

  ComplexGrid stack(n / 2 + 1, n, 1, cfloat(1, 0));
  make_cpu_ctf_applier()->apply(stack, n, {p}, pixel_A);
  // At the zero |dCTF/dk| * k is about 6, so double rounding of k and chi leaves |CTF| ~ 1e-14;
  // 1e-6 also absorbs libm differences. A misplaced zero gives |CTF| of 0.1 or more.
  for (auto [x, y] : {std::pair{10, 0}, {0, 10}, {6, 8}, {8, n - 6}})
    EXPECT_NEAR(stack(x, y).real(), 0.0, 1e-6) << x << "," << y;
  // A sign change (not a touch), and no earlier zero: positive from k = 0 up to radius 9.
  for (int x = 0; x < 10; ++x) EXPECT_GT(stack(x, 0).real(), 0.05f) << x;
  EXPECT_LT(stack(11, 0).real(), -0.05f);
}

TEST(CtfBatch, RejectsBadArgumentsAndLeavesStackUntouched) {
  const auto params = varied_params();
  const ComplexGrid input = random_stack(32, 32, 4, 3);
  ComplexGrid stack = input;
  auto applier = make_cpu_ctf_applier();
  EXPECT_THROW(applier->apply(stack, 30, params, 1.0), std::invalid_argument);  // width mismatch
  EXPECT_THROW(applier->apply(stack, 32, {params[0]}, 1.0), std::invalid_argument);  // batch
  EXPECT_THROW(applier->apply(stack, 32, params, 0.0), InputError);
  EXPECT_THROW(applier->apply(stack, 32, params, std::nan("")), InputError);
  auto bad = params;
  bad[2].amplitude_contrast = 1.5;
  EXPECT_THROW(applier->apply(stack, 32, bad, 1.0), InputError);
  bad = params;
  bad[3].defocus_u_A = std::nan("");
  EXPECT_THROW(applier->apply(stack, 32, bad, 1.0), InputError);
  bad = params;
  bad[1].voltage_kV = 0;
  EXPECT_THROW(applier->apply(stack, 32, bad, 1.0), InputError);
  EXPECT_EQ(stack.values(), input.values());

  ComplexGrid empty(17, 32, 0);
  EXPECT_NO_THROW(applier->apply(empty, 32, {}, 1.0));
}

}  // namespace
}  // namespace tessera
