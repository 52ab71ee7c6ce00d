// estimate_left (subtract.hpp): the share of the removed region's signal left
// in the particles, per band and per shell, from the particles' shell terms.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include "tessera/subtract.hpp"

namespace tessera {
namespace {

/// Sums over particles, per shell.
struct Sums {
  std::vector<double> signal, contrast, pose, subtracted;
  std::vector<double> unfitted_square, unfitted_mean, unfitted_power;  // ShellTerms'; all zero when fitted
  // Per half set: the normal equations of Y - K ~ a R + b K, shell by shell.
  std::array<std::vector<double>, 2> rr, rk, kk, yr, yk;
};

/// a of Y - K ~ a R + b K for half set h in shell k (0 when R carries no power).
double removed_coefficient(const Sums& s, std::size_t h, std::size_t k) {
  const double rr = s.rr[h][k], rk = s.rk[h][k], kk = s.kk[h][k];
  const double det = rr * kk - rk * rk;
  if (!(rr > 0)) return 0.0;
  if (!(det > 1e-9 * rr * kk)) return s.yr[h][k] / rr;  // K absent or parallel to R
  return (s.yr[h][k] * kk - s.yk[h][k] * rk) / det;
}

Sums add_up(const std::vector<SubtractResult>& results, const std::vector<int>& half_sets, std::size_t shells) {
  Sums s;
  for (auto* v : {&s.signal, &s.contrast, &s.pose, &s.subtracted, &s.unfitted_square, &s.unfitted_mean,
                  &s.unfitted_power})
    v->assign(shells, 0.0);
  for (auto* a : {&s.rr, &s.rk, &s.kk, &s.yr, &s.yk})
    for (auto& v : *a) v.assign(shells, 0.0);
  for (std::size_t i = 0; i < results.size(); ++i) {
    const ShellTerms& t = results[i].shells;
    for (const auto* v : {&t.signal, &t.contrast, &t.pose, &t.subtracted, &t.in_phase, &t.kept, &t.cross,
                          &t.in_phase_kept})
      if (v->size() != shells)
        throw std::invalid_argument(
            fmt::format("estimate_left: particle {} has {} shell terms, the box {}", i, v->size(), shells));
    if (half_sets[i] != 1 && half_sets[i] != 2)
      throw std::invalid_argument(fmt::format("estimate_left: particle {} is in half set {}", i, half_sets[i]));
    const auto h = static_cast<std::size_t>(half_sets[i] - 1);
    for (std::size_t k = 0; k < shells; ++k) {
      s.signal[k] += t.signal[k];
      s.contrast[k] += t.contrast[k];
      s.pose[k] += t.pose[k];
      s.subtracted[k] += t.subtracted[k];
      s.rr[h][k] += t.subtracted[k];
      s.rk[h][k] += t.cross[k];
      s.kk[h][k] += t.kept[k];
      s.yr[h][k] += t.in_phase[k];
      s.yk[h][k] += t.in_phase_kept[k];
    }
    if (!t.unfitted_square.empty())
      for (std::size_t k = 0; k < shells; ++k) {
        s.unfitted_square[k] += t.unfitted_square[k];
        s.unfitted_mean[k] += t.unfitted_mean[k];
        s.unfitted_power[k] += t.unfitted_power[k];
      }
  }
  return s;
}

}  // namespace

LeftEstimate estimate_left(const std::vector<SubtractResult>& results, const std::vector<int>& half_sets,
                           const std::vector<double>& map_fsc, int box, double pixel_A,
                           const std::vector<double>& up_to_A) {
  const auto shells = static_cast<std::size_t>(box / 2 + 1);
  if (results.size() != half_sets.size())
    throw std::invalid_argument(
        fmt::format("estimate_left: {} results and {} half sets", results.size(), half_sets.size()));
  if (!map_fsc.empty() && map_fsc.size() != shells)
    throw std::invalid_argument(fmt::format("estimate_left: {} FSC shells for a box of {}", map_fsc.size(), box));
  Sums s = add_up(results, half_sets, shells);
  // A contrast that was not fitted leaves each particle's own misfit c: its spread about the mean
  // (the mean's square is the systematic term below), less the noise of c, counts with the contrast.
  for (std::size_t k = 0; k < shells; ++k)
    if (s.unfitted_power[k] > 0)
      s.contrast[k] += std::max(0.0, s.unfitted_square[k] - s.unfitted_mean[k] * s.unfitted_mean[k] / s.unfitted_power[k]);

  // Left power per shell, by cause.
  std::vector<double> map_noise(shells, 0.0), systematic(shells, 0.0);
  for (std::size_t k = 0; k < shells; ++k) {
    const double a1 = removed_coefficient(s, 0, k), a2 = removed_coefficient(s, 1, k);
    systematic[k] = a1 * a2 * s.subtracted[k];
    const double a = 0.5 * (a1 + a2);
    s.signal[k] = std::max(s.signal[k], (1 + a) * (1 + a) * s.subtracted[k]);
    if (!map_fsc.empty()) map_noise[k] = (1 - std::clamp(map_fsc[k], 0.0, 1.0)) * s.signal[k];
  }
  LeftEstimate e;
  e.up_to_A = up_to_A;
  e.map_noise_counted = !map_fsc.empty();
  auto share = [](double left, double signal) { return signal > 0 ? left / signal : 0.0; };
  for (std::size_t k = 1; k < shells; ++k) {
    e.shell_resolution_A.push_back(box * pixel_A / static_cast<double>(k));
    const double sig = s.signal[k];
    e.shell_map_noise.push_back(share(map_noise[k], sig));
    e.shell_contrast.push_back(share(s.contrast[k], sig));
    e.shell_pose.push_back(share(s.pose[k], sig));
    e.shell_systematic.push_back(share(systematic[k], sig));
    e.shell_total.push_back(share(std::max(0.0, map_noise[k] + s.contrast[k] + s.pose[k] + systematic[k]), sig));
  }
  for (double d : up_to_A) {
    const double last = std::min(static_cast<double>(shells - 1), box * pixel_A / d);
    double sig = 0, noise = 0, contrast = 0, pose = 0, sys = 0;
    for (std::size_t k = 1; k <= static_cast<std::size_t>(last + 1e-9); ++k)
      sig += s.signal[k], noise += map_noise[k], contrast += s.contrast[k], pose += s.pose[k], sys += systematic[k];
    e.map_noise.push_back(share(noise, sig));
    e.contrast.push_back(share(contrast, sig));
    e.pose.push_back(share(pose, sig));
    e.systematic.push_back(share(sys, sig));
    e.total.push_back(share(std::max(0.0, noise + contrast + pose + sys), sig));
  }
  return e;
}

}  // namespace tessera
