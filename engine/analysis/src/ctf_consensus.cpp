#include "tessera/ctf_consensus.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <thread>

namespace tessera {

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kDeg = kPi / 180.0;

// x modulo `period` into (-period/2, period/2].
double centred(double x, double period) {
  double r = std::remainder(x, period);
  if (r <= -period / 2) r += period;
  return r;
}

// Angle of the axis of largest defocus, degrees (an axis: defined modulo 180).
double major_axis_deg(const CtfParams& c) {
  return c.defocus_u_A >= c.defocus_v_A ? c.defocus_angle_deg : c.defocus_angle_deg + 90.0;
}

// Smallest root s >= 0 of a s^2 + b s + c = 0, with the stable form of the
// quadratic formula (no cancellation when a is tiny beside b).
std::optional<double> smallest_nonnegative_root(double a, double b, double c) {
  std::optional<double> best;
  const auto take = [&](double s) {
    if (std::isfinite(s) && s >= 0 && (!best || s < *best)) best = s;
  };
  if (a == 0) {
    if (b != 0) take(-c / b);
    return best;
  }
  const double disc = b * b - 4 * a * c;
  if (disc < 0) return best;
  const double q = -0.5 * (b + std::copysign(std::sqrt(disc), b));
  take(q / a);
  if (q != 0) take(c / q);
  return best;
}

}  // namespace

CtfDifference ctf_difference(const CtfParams& a, const CtfParams& b) {
  CtfDifference d;
  d.defocus_A = std::abs(0.5 * (a.defocus_u_A + a.defocus_v_A) - 0.5 * (b.defocus_u_A + b.defocus_v_A));
  d.astigmatism_A = std::abs(std::abs(a.defocus_u_A - a.defocus_v_A) - std::abs(b.defocus_u_A - b.defocus_v_A));
  d.angle_deg = std::abs(centred(major_axis_deg(a) - major_axis_deg(b), 180.0));
  d.phase_shift_deg = std::abs(centred(a.phase_shift_deg - b.phase_shift_deg, 360.0));
  return d;
}

std::optional<double> PhaseAgreement::resolution_A() const {
  if (!frequency_invA) return std::nullopt;
  return *frequency_invA > 0 ? 1.0 / *frequency_invA : std::numeric_limits<double>::infinity();
}

std::optional<double> first_crossing(const RadialPhase& d, double limit, double max_s) {
  if (!(limit > 0)) throw std::invalid_argument(fmt::format("first_crossing: limit {} is not positive", limit));
  if (std::abs(d.c0) >= limit) return 0.0;
  // d(0) lies strictly between -limit and +limit: the first s where |d| reaches
  // the limit is the smallest root of d = +limit or d = -limit.
  std::optional<double> best;
  for (const double target : {limit, -limit}) {
    const auto s = smallest_nonnegative_root(d.c2, d.c1, d.c0 - target);
    if (s && *s <= max_s && (!best || *s < *best)) best = s;
  }
  return best;
}

PhaseAgreement phase_agreement(const CtfParams& a, const CtfParams& b, double max_frequency_invA) {
  if (!(max_frequency_invA > 0) || !std::isfinite(max_frequency_invA))
    throw std::invalid_argument(fmt::format("phase_agreement: maximum frequency {} 1/A", max_frequency_invA));
  const Ctf ca(a), cb(b);
  const double limit = kConsensusPhaseDeg * kDeg, max_s = max_frequency_invA * max_frequency_invA;
  const int steps = static_cast<int>(std::lround(180.0 / kConsensusAzimuthStepDeg));
  PhaseAgreement out;
  std::optional<double> lowest_s;
  for (int i = 0; i < steps; ++i) {
    const double angle_deg = i * kConsensusAzimuthStepDeg;
    const RadialPhase pa = ca.phase_along(angle_deg * kDeg), pb = cb.phase_along(angle_deg * kDeg);
    const RadialPhase d{centred(pa.c0 - pb.c0, 2 * kPi), pa.c1 - pb.c1, pa.c2 - pb.c2};
    const auto s = first_crossing(d, limit, max_s);
    if (s && (!lowest_s || *s < *lowest_s)) {
      lowest_s = s;
      out.azimuth_deg = angle_deg;
    }
    if (lowest_s && *lowest_s == 0) break;  // the same at k = 0 in every direction
  }
  if (lowest_s) out.frequency_invA = std::sqrt(*lowest_s);
  return out;
}

CtfConsensus ctf_consensus(const CtfPair& pair, const CtfConsensusCriteria& criteria) {
  CtfConsensus c;
  c.difference = ctf_difference(pair.a, pair.b);
  c.agreement = phase_agreement(pair.a, pair.b, pair.max_frequency_invA);
  c.max_frequency_invA = pair.max_frequency_invA;
  c.defocus_rejected = criteria.max_defocus_diff_A && c.difference.defocus_A > *criteria.max_defocus_diff_A;
  const auto resolution = c.agreement.resolution_A();
  c.resolution_rejected = resolution && *resolution > criteria.min_resolution_A;
  return c;
}

std::vector<CtfConsensus> ctf_consensus(const std::vector<CtfPair>& pairs, const CtfConsensusCriteria& criteria,
                                        int threads) {
  if (threads < 1) throw std::invalid_argument(fmt::format("ctf_consensus: {} threads", threads));
  for (const CtfPair& p : pairs)  // checked here: a throw inside a worker would end the program
    if (!(p.max_frequency_invA > 0) || !std::isfinite(p.max_frequency_invA))
      throw std::invalid_argument(fmt::format("ctf_consensus: maximum frequency {} 1/A", p.max_frequency_invA));
  std::vector<CtfConsensus> out(pairs.size());
  const auto n = static_cast<long>(pairs.size());
  const int used = static_cast<int>(std::clamp<long>(n / 256, 1, threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < used; ++t) {
    const long i0 = n * t / used, i1 = n * (t + 1) / used;
    workers.emplace_back([&, i0, i1] {
      for (long i = i0; i < i1; ++i)
        out[static_cast<std::size_t>(i)] = ctf_consensus(pairs[static_cast<std::size_t>(i)], criteria);
    });
  }
  for (std::thread& w : workers) w.join();
  return out;
}

}  // namespace tessera
