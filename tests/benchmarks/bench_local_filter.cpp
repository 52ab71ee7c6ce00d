// bench_local_filter: the cost of non-uniform refinement's local filter (local_filter.hpp) on a
// synthetic half set: K = 2 folds of a map of Gaussian blobs plus independent white noise, a
// spherical mask. Per box, band limit and thread count it prints the wall time of
// choose_local_cutoffs and of apply_local_filter, the transforms each did, and how far the
// band-limited grid's cut-offs are from the full box's (LocalFilterGrid::Full).
//
// A band limit L stands for an iteration of the loop (nu_regularizer.cpp): the folds are
// reconstructed on band_limited_box(N, L) and padded, so they hold nothing beyond that grid, and
// highest_cutoff_px = L. "none" is the last iteration (every candidate, no band limit).
//
// Usage: bench_local_filter [--boxes 128,256] [--limits 21,40,0] [--threads 1,2] [--no-compare]
// (a limit of 0 means none). Figures go to stdout.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/local_filter.hpp"
#include "tessera/projector.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) v.push_back(std::stoi(item));
  return v;
}

// Keeps only the Fourier voxels that a grid of `small` holds (|k| < small / 2 on each axis), as a
// band-limited reconstruction padded to the full box does.
void keep_cube(RealGrid& g, int small) {
  const int n = g.nx();
  ComplexGrid f = fft_3d(g);
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < f.ny(); ++y)
      for (int x = 0; x < f.nx(); ++x)
        if (2 * std::abs(fourier_index(z, n)) >= small || 2 * std::abs(fourier_index(y, n)) >= small || 2 * x >= small)
          f(x, y, z) = 0;
  g = ifft_3d(f, n);
}

struct HalfSet {
  std::vector<RealGrid> folds;
  RealGrid mask;  // 1 inside a sphere of radius 0.35 N, 0 outside
};

// A "molecule": 40 blobs per 64^3 of sphere (sigma 1 to 3 voxels, so a range of resolutions),
// inside radius 0.3 N; each fold adds white noise of standard deviation 0.5 (the blobs peak at 1).
HalfSet make_half_set(int n, std::optional<double> band_limit) {
  Rng rng(7);
  RealGrid signal(n, n, n);
  const int blobs = 40 * (n / 64) * (n / 64) * (n / 64);
  const double r_max = 0.3 * n;
  for (int b = 0; b < blobs; ++b) {
    double p[3];
    do {
      for (double& q : p) q = (2 * uniform01(rng) - 1) * r_max;
    } while (std::hypot(p[0], p[1], p[2]) > r_max);
    const double sigma = 1.0 + 2.0 * uniform01(rng);
    const int reach = static_cast<int>(std::ceil(4 * sigma));
    const int cx = n / 2 + static_cast<int>(p[0]), cy = n / 2 + static_cast<int>(p[1]),
              cz = n / 2 + static_cast<int>(p[2]);
    for (int z = cz - reach; z <= cz + reach; ++z)
      for (int y = cy - reach; y <= cy + reach; ++y)
        for (int x = cx - reach; x <= cx + reach; ++x) {
          const double d2 = double(x - cx) * (x - cx) + double(y - cy) * (y - cy) + double(z - cz) * (z - cz);
          signal(x, y, z) += static_cast<float>(std::exp(-0.5 * d2 / (sigma * sigma)));
        }
  }
  HalfSet h;
  for (int k = 0; k < 2; ++k) {
    RealGrid f = signal;
    for (float& v : f.values()) v += static_cast<float>(0.5 * normal01(rng));
    if (band_limit) keep_cube(f, band_limited_box(n, *band_limit));
    h.folds.push_back(std::move(f));
  }
  h.mask = RealGrid(n, n, n);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x)
        h.mask(x, y, z) = std::hypot(x - n / 2, y - n / 2, z - n / 2) < 0.35 * n ? 1.0f : 0.0f;
  return h;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median and maximum of |a - b| over the voxels where mask is 1, in candidate steps.
std::pair<double, double> difference_in_steps(const RealGrid& a, const RealGrid& b, const RealGrid& mask, double step) {
  std::vector<float> d;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (mask[i] > 0.5f) d.push_back(std::abs(a[i] - b[i]));
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  const double median = d[d.size() / 2];
  return {median / step, *std::max_element(d.begin(), d.end()) / step};
}

void run(int box, std::optional<double> limit, int threads, bool compare) {
  const HalfSet h = make_half_set(box, limit);
  const RealGrid* folds[] = {&h.folds[0], &h.folds[1]};
  LocalFilterOptions o;
  o.threads = threads;
  o.highest_cutoff_px = limit;
  const std::vector<double> c = local_filter_candidates_px(box, o);

  auto t0 = std::chrono::steady_clock::now();
  const LocalFilterChoice choice = choose_local_cutoffs(folds, &h.mask, o);
  const double t_choose = seconds_since(t0);
  RealGrid map = h.folds[0];
  for (std::size_t i = 0; i < map.size(); ++i) map[i] = 0.5f * (h.folds[0][i] + h.folds[1][i]);
  t0 = std::chrono::steady_clock::now();
  const RealGrid filtered = apply_local_filter(map, choice.cutoff_px, o);
  const double t_apply = seconds_since(t0);

  // apply_local_filter's transforms: one forward, one inverse per candidate in use (local_filter.hpp).
  float lo = choice.cutoff_px[0], hi = lo;
  for (float v : choice.cutoff_px.values()) lo = std::min(lo, v), hi = std::max(hi, v);
  const double step = c[1] - c[0];
  const int in_use = static_cast<int>(std::ceil((hi - c[0]) / step - 1e-4) - std::floor((lo - c[0]) / step + 1e-4)) + 1;
  const LocalFilterCost& k = choice.cost;
  const std::string lim = limit ? fmt::format("{:.0f}", *limit) : "none";
  fmt::print(
      "box {:3d} limit {:>4} threads {}  candidates {:2d}  choose {:6.2f} s ({} FFTs of {}^3 + {} of {}^3)  "
      "apply {:5.2f} s ({} FFTs of {}^3)",
      box, lim, threads, c.size(), t_choose, k.transforms_full, box, k.transforms_grid, k.grid_box, t_apply, in_use + 1,
      box);
  if (compare && choice.cost.grid_box < box) {
    LocalFilterOptions full = o;
    full.grid = LocalFilterGrid::Full;
    t0 = std::chrono::steady_clock::now();
    const LocalFilterChoice reference = choose_local_cutoffs(folds, &h.mask, full);
    const double t_full = seconds_since(t0);
    const auto [median, worst] = difference_in_steps(choice.cutoff_px, reference.cutoff_px, h.mask, step);
    fmt::print("  | full box: choose {:.2f} s, |difference| in the mask: median {:.3f}, max {:.2f} steps", t_full,
               median, worst);
  }
  fmt::print("\n");
  std::fflush(stdout);
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  try {
    std::vector<int> boxes{128, 256}, limits{21, 40, 0}, threads{1, 2};
    bool compare = true;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--boxes")
        boxes = tessera::parse_list(value());
      else if (a == "--limits")
        limits = tessera::parse_list(value());
      else if (a == "--threads")
        threads = tessera::parse_list(value());
      else if (a == "--no-compare")
        compare = false;
      else
        throw std::invalid_argument("unknown option " + a);
    }
    for (int box : boxes)
      for (int limit : limits)
        for (int t : threads) tessera::run(box, limit > 0 ? std::optional<double>(limit) : std::nullopt, t, compare);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ERROR: %s\n", e.what());
    return 1;
  }
  return 0;
}
