// RELION's CTF model against closed forms: the value at zero frequency, the
// first zero of a round CTF, the direction of astigmatism, the envelope and
// the wavelength (the RELION forward-model test checks it against relion_project).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "tessera/ctf.hpp"

namespace tessera {
namespace {

TEST(Ctf, ZeroFrequencyIsTheAmplitudeContrast) {
  CtfParams p;
  p.amplitude_contrast = 0.07;
  p.scale = 1.3;
  EXPECT_NEAR(Ctf(p)(0, 0), 1.3 * 0.07, 1e-7);
}

TEST(Ctf, WavelengthAt300kV) {
  // Relativistic de Broglie wavelength at 300 kV: 0.019687 A.
  EXPECT_NEAR(electron_wavelength_A(300), 0.019687, 2e-6);
}

TEST(Ctf, FirstZeroOfARoundCtf) {
  // With Cs = 0 and Q0 = 0, CTF = sin(pi lambda dz k^2): first zero at k = 1/sqrt(lambda dz).
  CtfParams p;
  p.cs_mm = 0;
  p.amplitude_contrast = 0;
  p.defocus_u_A = p.defocus_v_A = 15000;
  const double k0 = 1 / std::sqrt(electron_wavelength_A(300) * 15000);
  const Ctf c(p);
  EXPECT_NEAR(c(k0, 0), 0.0, 1e-6);
  EXPECT_NEAR(c(0, k0), 0.0, 1e-6);
  EXPECT_GT(c(0.9 * k0, 0), 0.5);  // positive before the zero (underfocus)
  EXPECT_LT(c(1.1 * k0, 0), 0.0);
}

TEST(Ctf, DefocusUIsAlongTheDefocusAngle) {
  // The first zero comes earlier along the direction of the larger defocus (U).
  CtfParams p;
  p.cs_mm = 0;
  p.amplitude_contrast = 0;
  p.defocus_u_A = 20000;
  p.defocus_v_A = 10000;
  p.defocus_angle_deg = 30;
  const double lambda = electron_wavelength_A(300);
  const double ku = 1 / std::sqrt(lambda * 20000), kv = 1 / std::sqrt(lambda * 10000);
  const double a = 30 * std::numbers::pi / 180;
  const Ctf c(p);
  EXPECT_NEAR(c(ku * std::cos(a), ku * std::sin(a)), 0.0, 1e-6);
  EXPECT_NEAR(c(-kv * std::sin(a), kv * std::cos(a)), 0.0, 1e-6);
}

TEST(Ctf, BFactorEnvelope) {
  CtfParams p;
  p.bfactor_A2 = 100;
  CtfParams q = p;
  q.bfactor_A2 = 0;
  const double k = 0.1;
  EXPECT_NEAR(Ctf(p)(k, 0), Ctf(q)(k, 0) * std::exp(-100 * k * k / 4), 1e-6);
}

TEST(Ctf, ImageLayoutFollowsTheHalfComplexGrid) {
  CtfParams p;
  const RealGrid img = ctf_image(p, 32, 32, 2.0);
  ASSERT_EQ(img.nx(), 17);
  const Ctf c(p);
  EXPECT_FLOAT_EQ(img(3, 0), c(3 / 64.0, 0));
  EXPECT_FLOAT_EQ(img(2, 30), c(2 / 64.0, -2 / 64.0));  // row 30 is frequency -2
}

}  // namespace
}  // namespace tessera
