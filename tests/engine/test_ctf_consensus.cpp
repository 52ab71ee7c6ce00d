// The CTF consensus (tessera/ctf_consensus.hpp) against known answers: identical
// CTFs never reach 90 degrees; CTFs that differ only in defocus by dz reach it
// where pi lambda dz k^2 = pi/2; astigmatic pairs (other Cs, voltage, phase shift)
// against a brute-force scan of both CTFs' phases (Ctf::phase) over directions and
// frequencies, and the answer checked against the phases computed directly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <vector>

#include "tessera/ctf_consensus.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kDeg = kPi / 180;

CtfParams round_ctf(double defocus_A) {
  CtfParams p;
  p.defocus_u_A = p.defocus_v_A = defocus_A;
  return p;
}

CtfParams astigmatic(double u, double v, double angle_deg) {
  CtfParams p;
  p.defocus_u_A = u;
  p.defocus_v_A = v;
  p.defocus_angle_deg = angle_deg;
  return p;
}

// |chi_A - chi_B| at (k, angle), the phase difference taken into (-pi, pi].
double phase_gap(const Ctf& a, const Ctf& b, double k, double angle_rad) {
  const double kx = k * std::cos(angle_rad), ky = k * std::sin(angle_rad);
  return std::abs(std::remainder(a.phase(kx, ky) - b.phase(kx, ky), 2 * kPi));
}

struct Scan {
  std::optional<double> k;
  double angle_deg = 0;
};

// Brute force from the phases alone: per direction (every `step_deg` over 180), march
// outwards in steps of 1e-3 / A until |chi_A - chi_B| reaches 90 degrees, then bisect.
Scan brute_force(const CtfParams& pa, const CtfParams& pb, double max_k, double step_deg = 0.05) {
  const Ctf a(pa), b(pb);
  Scan best;
  const double limit = kPi / 2, dk = 1e-3;
  for (double deg = 0; deg < 180; deg += step_deg) {
    const double t = deg * kDeg;
    if (phase_gap(a, b, 0, t) >= limit) return {0.0, 0};
    for (double k = dk; k <= max_k + dk; k += dk) {
      const double hi = std::min(k, max_k);
      if (phase_gap(a, b, hi, t) < limit) {
        if (hi == max_k) break;
        continue;
      }
      double lo = hi - dk, top = hi;
      for (int i = 0; i < 60; ++i) {
        const double mid = 0.5 * (lo + top);
        (phase_gap(a, b, mid, t) < limit ? lo : top) = mid;
      }
      if (!best.k || top < *best.k) best = {top, deg};
      break;
    }
  }
  return best;
}

TEST(CtfConsensus, IdenticalCtfsNeverReach90Degrees) {
  for (const CtfParams& p : {round_ctf(15000), astigmatic(22000, 19000, 37)}) {
    CtfParams q = p;
    const PhaseAgreement r = phase_agreement(p, q, 1.0 / (2 * 0.5));
    EXPECT_FALSE(r.frequency_invA.has_value());
    EXPECT_FALSE(r.resolution_A().has_value());
    q.phase_shift_deg = p.phase_shift_deg + 360;  // the same CTF
    EXPECT_FALSE(phase_agreement(p, q, 1.0).frequency_invA.has_value());
  }
}

// RELION's chi: pi lambda dz k^2 + (pi/2) Cs lambda^3 k^4 - ...; with the same Cs, a
// defocus difference dz gives pi lambda dz k^2 = pi/2 at k = sqrt(1 / (2 lambda dz)).
TEST(CtfConsensus, DefocusDifferenceAloneMatchesTheClosedForm) {
  for (double kv : {300.0, 200.0}) {
    const double lambda = electron_wavelength_A(kv);
    for (double dz : {250.0, 1000.0, 4000.0, -3000.0}) {
      CtfParams a = astigmatic(18000, 16500, 20), b = astigmatic(18000 + dz, 16500 + dz, 20);
      a.voltage_kV = b.voltage_kV = kv;
      const PhaseAgreement r = phase_agreement(a, b, 1.0);
      ASSERT_TRUE(r.frequency_invA.has_value()) << dz;
      const double expected = std::sqrt(1 / (2 * lambda * std::abs(dz)));
      EXPECT_NEAR(*r.frequency_invA / expected, 1.0, 5e-3) << kv << " kV, dz " << dz;
      EXPECT_NEAR(*r.frequency_invA / expected, 1.0, 1e-9) << "exact in frequency";
      EXPECT_NEAR(*r.resolution_A(), 1 / expected, 1e-6 / expected);
    }
  }
}

TEST(CtfConsensus, BeyondNyquistIsNotReached) {
  // dz = 50 A reaches 90 degrees at 1.4 A; a 2 A pixel shows 4 A at most.
  const PhaseAgreement r = phase_agreement(round_ctf(15000), round_ctf(15050), 1.0 / (2 * 2.0));
  EXPECT_FALSE(r.frequency_invA.has_value());
  const CtfConsensus c = ctf_consensus({round_ctf(15000), round_ctf(15050), 1.0 / 4.0}, {});
  EXPECT_TRUE(c.accepted());
}

struct Pair {
  const char* what;
  CtfParams a, b;
};

std::vector<Pair> astigmatic_pairs() {
  std::vector<Pair> pairs;
  pairs.push_back({"axes 20 deg apart", astigmatic(20000, 18000, 30), astigmatic(20500, 17800, 50)});
  pairs.push_back({"astigmatism only", astigmatic(15000, 15000, 0), astigmatic(15700, 14400, 75)});
  Pair cs{"other Cs", astigmatic(25000, 23500, 110), astigmatic(25300, 23900, 95)};
  cs.b.cs_mm = 0.01;
  pairs.push_back(cs);
  Pair kv{"other voltage", astigmatic(12000, 11000, -40), astigmatic(12400, 11100, -35)};
  kv.b.voltage_kV = 200;
  pairs.push_back(kv);
  Pair plate{"phase plate", astigmatic(6000, 5400, 10), astigmatic(6300, 5500, 170)};
  plate.a.phase_shift_deg = 60;
  plate.b.phase_shift_deg = 95;
  plate.b.amplitude_contrast = 0.07;
  pairs.push_back(plate);
  Pair wrapped{"phase shifts 350 and -15", astigmatic(9000, 8000, 45), astigmatic(9200, 8100, 60)};
  wrapped.a.phase_shift_deg = 350;
  wrapped.b.phase_shift_deg = -15;
  pairs.push_back(wrapped);
  return pairs;
}

TEST(CtfConsensus, AstigmaticPairsMatchABruteForceScanOfThePhases) {
  const double max_k = 1.0 / (2 * 0.8);
  for (const Pair& p : astigmatic_pairs()) {
    SCOPED_TRACE(p.what);
    const PhaseAgreement r = phase_agreement(p.a, p.b, max_k);
    const Scan s = brute_force(p.a, p.b, max_k);
    ASSERT_TRUE(s.k.has_value());
    ASSERT_TRUE(r.frequency_invA.has_value());
    // The scan's own direction step (0.05 deg) costs it < 1e-6; the program's 0.25 deg < 1e-5.
    EXPECT_NEAR(*r.frequency_invA / *s.k, 1.0, 2e-5);
    const double gap = std::abs(std::remainder(r.azimuth_deg - s.angle_deg, 180.0));
    EXPECT_LT(gap, 1.0) << r.azimuth_deg << " against " << s.angle_deg;
    // Directly from the two CTFs' phases: 90 degrees at the point found ...
    const Ctf a(p.a), b(p.b);
    EXPECT_NEAR(phase_gap(a, b, *r.frequency_invA, r.azimuth_deg * kDeg), kPi / 2, 1e-7);
    // ... and less everywhere inside that radius, in every direction.
    double inside = 0;
    for (double deg = 0; deg < 360; deg += 0.5)
      for (double f = 0; f < 0.999; f += 0.01)
        inside = std::max(inside, phase_gap(a, b, f * *r.frequency_invA, deg * kDeg));
    EXPECT_LT(inside, kPi / 2);
  }
}

TEST(CtfConsensus, PhaseShiftsNinetyDegreesApartDisagreeFromZeroFrequency) {
  CtfParams a = round_ctf(8000), b = round_ctf(8000);
  a.phase_shift_deg = 10;
  b.phase_shift_deg = 110;
  const PhaseAgreement r = phase_agreement(a, b, 0.25);
  ASSERT_TRUE(r.frequency_invA.has_value());
  EXPECT_EQ(*r.frequency_invA, 0.0);
  EXPECT_TRUE(std::isinf(*r.resolution_A()));
  const CtfConsensus c = ctf_consensus({a, b, 0.25}, {.max_defocus_diff_A = {}, .min_resolution_A = 1000});
  EXPECT_TRUE(c.resolution_rejected);
  EXPECT_FALSE(c.accepted());
}

TEST(CtfConsensus, FirstCrossingOfAQuadratic) {
  const double L = kPi / 2;
  // Linear: d = 0.1 + 2 s reaches pi/2 at s = (pi/2 - 0.1) / 2.
  EXPECT_NEAR(*first_crossing({0.1, 2, 0}, L, 10), (L - 0.1) / 2, 1e-15);
  // Falling: d = -3 s reaches -pi/2 at s = pi/6.
  EXPECT_NEAR(*first_crossing({0, -3, 0}, L, 10), L / 3, 1e-15);
  // d = s - s^2 peaks at 1/4 < pi/2, then falls to -pi/2 at s = (1 + sqrt(1 + 2 pi)) / 2.
  EXPECT_NEAR(*first_crossing({0, 1, -1}, L, 10), (1 + std::sqrt(1 + 2 * kPi)) / 2, 1e-12);
  // A tiny quadratic term beside a large linear one: no cancellation.
  EXPECT_NEAR(*first_crossing({0, 1e4, 1e-8}, L, 1), L / 1e4, 1e-18);
  EXPECT_FALSE(first_crossing({0, 1, 0}, L, 1.0).has_value());  // reached at pi/2 > 1
  EXPECT_FALSE(first_crossing({0.2, 0, 0}, L, 1e9).has_value());
  EXPECT_EQ(*first_crossing({-2, 5, 0}, L, 1), 0.0);
}

TEST(CtfConsensus, DifferencesOfDefocusAstigmatismAxisAndPhaseShift) {
  const CtfDifference d = ctf_difference(astigmatic(21000, 19000, 30), astigmatic(20100, 19300, 175));
  EXPECT_NEAR(d.defocus_A, 20000 - 19700, 1e-9);
  EXPECT_NEAR(d.astigmatism_A, 2000 - 800, 1e-9);
  EXPECT_NEAR(d.angle_deg, 35, 1e-9);  // 30 and 175 = -5 are 35 degrees apart
  // U and V swapped with the angle turned by 90 degrees: the same CTF.
  const CtfDifference same = ctf_difference(astigmatic(21000, 19000, 30), astigmatic(19000, 21000, 120));
  EXPECT_NEAR(same.defocus_A, 0, 1e-9);
  EXPECT_NEAR(same.astigmatism_A, 0, 1e-9);
  EXPECT_NEAR(same.angle_deg, 0, 1e-9);
  EXPECT_FALSE(phase_agreement(astigmatic(21000, 19000, 30), astigmatic(19000, 21000, 120), 1).frequency_invA);
  CtfParams a = round_ctf(1), b = round_ctf(1);
  a.phase_shift_deg = 350;
  b.phase_shift_deg = 15;
  EXPECT_NEAR(ctf_difference(a, b).phase_shift_deg, 25, 1e-9);
}

TEST(CtfConsensus, ThresholdsAndThreads) {
  const double lambda = electron_wavelength_A(300);
  std::vector<CtfPair> pairs;
  for (double dz : {0.0, 500.0, 2000.0, 5000.0, 9000.0})
    pairs.push_back({round_ctf(20000), round_ctf(20000 + dz), 1.0 / (2 * 1.0)});
  const CtfConsensusCriteria criteria{.max_defocus_diff_A = 4000, .min_resolution_A = 15};
  const std::vector<CtfConsensus> r = ctf_consensus(pairs, criteria, 3);
  ASSERT_EQ(r.size(), pairs.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double dz = pairs[i].b.defocus_u_A - 20000;
    const double resolution = std::sqrt(2 * lambda * dz);  // 1 / sqrt(1 / (2 lambda dz))
    const bool beyond = resolution < 2.0;
    SCOPED_TRACE(dz);
    EXPECT_EQ(r[i].agreement.frequency_invA.has_value(), !beyond);
    EXPECT_EQ(r[i].defocus_rejected, dz > 4000);
    EXPECT_EQ(r[i].resolution_rejected, !beyond && resolution > 15);
    const CtfConsensus one = ctf_consensus(pairs[i], criteria);
    EXPECT_TRUE(one.agreement.frequency_invA == r[i].agreement.frequency_invA);
  }
  // 5,000 A at 300 kV: 14.0 A, accepted by resolution, rejected by defocus; 9,000 A: 18.8 A.
  EXPECT_FALSE(r[3].resolution_rejected);
  EXPECT_TRUE(r[4].resolution_rejected);
}

TEST(CtfConsensus, PhaseIsTheCtfsArgument) {
  CtfParams p = astigmatic(14000, 12500, 63);
  p.phase_shift_deg = 25;
  p.scale = 0.8;
  const Ctf c(p);
  for (double kx : {0.0, 0.05, -0.13})
    for (double ky : {0.0, 0.07, -0.2}) {
      EXPECT_NEAR(c(kx, ky), -0.8 * std::sin(c.phase(kx, ky)), 1e-6);
      const double k = std::hypot(kx, ky);
      EXPECT_NEAR(c.phase_along(std::atan2(ky, kx)).at(k * k), c.phase(kx, ky), 1e-12);
    }
}

}  // namespace
}  // namespace tessera
