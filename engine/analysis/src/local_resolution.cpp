#include "tessera/local_resolution.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <numbers>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/mask.hpp"
#include "tessera/parallel.hpp"

// Why no phase-randomization correction. The global masked FSC multiplies both halves by one mask m:
// the transform of m * a is M convolved with A, so the signal of lower shells, where the halves agree,
// is spread into higher shells in both, and correlates there although the halves' own content at those
// shells does not. Here the halves are band-passed first and only their products are weighted:
//   sum_x w(x) a_k(x) b_k(x) = sum over f, g in the band of g_k(f) g_k(g) A(f) conj(B(g)) W(g - f),
// a sum over pairs of frequencies that both lie in the band. Frequencies outside the band never enter,
// so content the halves share at other shells adds nothing, and where the halves are independent within
// the band (noise, or phases randomized beyond some shell) the expectation is 0. The test
// LocalResolution.IndependentHalvesBeyondAShellAreNotCorrelated measures it.
//
// The grids. The band-passed halves hold frequencies up to r = k + 3 sigma + 1/2, so their products hold up to
// 2r on each axis. Only the products' content within the window's transform (radius L) is kept, so the
// products may be formed on any grid of m > 2r + L: what aliases lands beyond L. For low bands that grid
// is much smaller than the box (cost falls with its cube); at the top it is a little larger. The
// windowed sums are then smooth on the window's scale, and are brought to a coarse grid of the same box
// (holding radius L) by one inverse FFT each; the crossing found there is interpolated back to the box.

namespace tessera {
namespace {

// The window's transform is cut where it has fallen to this fraction of its value at 0.
constexpr double kWindowTail = 1e-4;
// The band's profile is cut this many standard deviations from its centre (amplitude 1e-2, power 1e-4).
constexpr double kBandReach = 3.0;

// The voxels of the box's half-complex transform, grouped by shell round(|f|) = 0 .. n/2.
struct ShellVoxels {
  std::vector<std::size_t> begin;    // shell s: voxels[begin[s] .. begin[s + 1])
  std::vector<std::uint32_t> voxel;  // storage index in the half-complex grid
};

ShellVoxels shell_voxels(int n) {
  const int hx = n / 2 + 1, half = n / 2;
  std::vector<int> shell(static_cast<std::size_t>(hx) * n * n, -1);
  std::vector<std::size_t> count(half + 2, 0);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < hx; ++x) {
        const int kz = fourier_index(z, n), ky = fourier_index(y, n);
        const int s = static_cast<int>(std::lround(std::sqrt(double(x) * x + double(ky) * ky + double(kz) * kz)));
        if (s > half) continue;
        shell[(static_cast<std::size_t>(z) * n + y) * hx + x] = s;
        ++count[s + 1];
      }
  ShellVoxels out;
  out.begin.assign(half + 2, 0);
  for (int s = 0; s <= half; ++s) out.begin[s + 1] = out.begin[s] + count[s + 1];
  out.voxel.resize(out.begin[half + 1]);
  std::vector<std::size_t> next(out.begin.begin(), out.begin.end() - 1);
  for (std::size_t i = 0; i < shell.size(); ++i)
    if (shell[i] >= 0) out.voxel[next[shell[i]]++] = static_cast<std::uint32_t>(i);
  return out;
}

// The box's transform f (of n^3) weighted by the band's profile exp(-(|f| - centre)^2 / (2 sigma^2)) over
// shells lo .. hi, on the half-complex grid of m^3.
void band_on_grid(const ComplexGrid& f, int n, const ShellVoxels& shells, int lo, int hi, double centre, double sigma,
                  int m, ComplexGrid& out) {
  if (out.nx() != m / 2 + 1 || out.ny() != m || out.nz() != m) out = ComplexGrid(m / 2 + 1, m, m);
  out.fill(cfloat(0, 0));
  const std::size_t hx = n / 2 + 1;
  for (std::size_t i = shells.begin[lo]; i < shells.begin[hi + 1]; ++i) {
    const std::size_t v = shells.voxel[i];
    const int x = static_cast<int>(v % hx);
    const int ky = fourier_index(static_cast<int>((v / hx) % n), n);
    const int kz = fourier_index(static_cast<int>(v / (hx * n)), n);
    const double d = std::sqrt(double(x) * x + double(ky) * ky + double(kz) * kz) - centre;
    out(x, fourier_storage(ky, m), fourier_storage(kz, m)) = f[v] * static_cast<float>(std::exp(-d * d / (2 * sigma * sigma)));
  }
}

// Calls f(z) for each section z of an m^3 grid, on `threads` threads.
template <class F>
void for_each_section(int m, int threads, F&& f) {
  for_each_particle(m, std::max(1, threads), [&](int, long z) { f(static_cast<int>(z)); });
}

class LocalSums {
 public:
  LocalSums(int box, double window_px, int threads) : threads_(threads) {
    const double sigma = window_px / (2 * std::sqrt(std::numbers::pi));
    const double per_sigma = box * std::sqrt(std::log(1 / kWindowTail) / (2 * std::numbers::pi * std::numbers::pi));
    radius_ = std::clamp(static_cast<int>(std::ceil(per_sigma / sigma)), 1, box / 2 - 1);
    grid_ = fft_friendly_size(2 * radius_ + 2);
    plan_grid_ = std::make_unique<RealFft>(RealFft::plan_3d(grid_, grid_, grid_, threads));
    window_.resize(radius_ * radius_ + 1);
    for (int r2 = 0; r2 <= radius_ * radius_; ++r2)
      window_[r2] = static_cast<float>(
          std::exp(-2 * std::numbers::pi * std::numbers::pi * sigma * sigma * r2 / (double(box) * box)));
  }
  int radius() const { return radius_; }
  int grid() const { return grid_; }

  // The product's windowed sum on the coarse grid, from its transform on a grid of m^3.
  void window(const ComplexGrid& product_spectrum, int m, RealGrid& out) {
    if (spectrum_.empty()) spectrum_ = ComplexGrid(grid_ / 2 + 1, grid_, grid_);
    spectrum_.fill(cfloat(0, 0));
    const int r = radius_;
    for (int kz = -r; kz <= r; ++kz)
      for (int ky = -r; ky <= r; ++ky)
        for (int kx = 0; kx * kx + ky * ky + kz * kz <= r * r; ++kx)
          spectrum_(kx, fourier_storage(ky, grid_), fourier_storage(kz, grid_)) =
              product_spectrum(kx, fourier_storage(ky, m), fourier_storage(kz, m)) * window_[kx * kx + ky * ky + kz * kz];
    plan_grid_->inverse(spectrum_, out);
  }

  const RealFft& plan(int m) {
    auto it = plans_.find(m);
    if (it == plans_.end()) it = plans_.emplace(m, RealFft::plan_3d(m, m, m, threads_)).first;
    return it->second;
  }

 private:
  int threads_;
  int radius_ = 0, grid_ = 0;
  std::vector<float> window_;
  std::unique_ptr<RealFft> plan_grid_;
  ComplexGrid spectrum_;
  std::map<int, RealFft> plans_;
};

void check(const RealGrid& a, const RealGrid& b, const RealGrid* mask, const LocalResolutionOptions& o) {
  if (a.nx() != a.ny() || a.nx() != a.nz() || a.nx() < 8)
    throw InputError(fmt::format("local resolution: half maps must be cubic and at least 8^3 (got {}x{}x{})", a.nx(),
                                 a.ny(), a.nz()));
  if (!a.same_shape(b))
    throw InputError(fmt::format("local resolution: half maps differ in shape ({}^3 and {}x{}x{})", a.nx(), b.nx(),
                                 b.ny(), b.nz()));
  if (mask) {
    if (!mask->same_shape(a))
      throw InputError(fmt::format("local resolution: the mask is {}x{}x{}, the half maps {}^3", mask->nx(), mask->ny(),
                                   mask->nz(), a.nx()));
    check_mask(*mask, "local resolution: mask");
  }
  if (!(o.voxel_A > 0) || !std::isfinite(o.voxel_A))
    throw InputError(fmt::format("local resolution: voxel size {} A must be > 0", o.voxel_A));
  if (!(o.window_A >= 4 * o.voxel_A) || !std::isfinite(o.window_A))
    throw InputError(fmt::format("local resolution: window {} A must be at least 4 voxels ({} A)", o.window_A,
                                 4 * o.voxel_A));
  if (!(o.threshold > 0 && o.threshold < 1))
    throw InputError(fmt::format("local resolution: FSC threshold {} must lie in (0, 1)", o.threshold));
  if (o.band_sigma_shells && !(*o.band_sigma_shells >= 0.25 && *o.band_sigma_shells <= a.nx() / 8.0))
    throw InputError(fmt::format("local resolution: band width {} shells must lie in [0.25, {}]",
                                 *o.band_sigma_shells, a.nx() / 8.0));
}

// Coarse-grid voxels whose interpolation reaches a voxel of the box with mask > 0.
std::vector<char> needed_on_grid(const RealGrid* mask, int n, int g) {
  std::vector<char> needed(static_cast<std::size_t>(g) * g * g, mask ? 0 : 1);
  if (!mask) return needed;
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        if ((*mask)(x, y, z) <= 0) continue;
        const int gx = x * g / n, gy = y * g / n, gz = z * g / n;
        for (int dz = 0; dz < 2; ++dz)
          for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx)
              needed[((static_cast<std::size_t>((gz + dz) % g) * g) + (gy + dy) % g) * g + (gx + dx) % g] = 1;
      }
  return needed;
}

}  // namespace

LocalResolution local_resolution(const RealGrid& half_a, const RealGrid& half_b, const RealGrid* mask_or_null,
                                 const LocalResolutionOptions& options) {
  check(half_a, half_b, mask_or_null, options);
  const int n = half_a.nx(), half = n / 2;
  const double window_px = options.window_A / options.voxel_A;
  const double sigma = options.band_sigma_shells.value_or(n / (std::sqrt(std::numbers::pi) * window_px));
  const int reach = static_cast<int>(std::ceil(kBandReach * sigma));
  const int threads = std::max(1, options.threads);

  ComplexGrid fa, fb;
  {
    const RealFft plan = RealFft::plan_3d(n, n, n, threads);
    plan.forward(half_a, fa);
    plan.forward(half_b, fb);
  }
  const ShellVoxels shells = shell_voxels(n);
  LocalSums sums(n, window_px, threads);
  const int g = sums.grid();
  const std::size_t coarse = static_cast<std::size_t>(g) * g * g;
  const std::vector<char> needed = needed_on_grid(mask_or_null, n, g);
  std::size_t pending = std::count(needed.begin(), needed.end(), 1);

  // Per coarse voxel: the crossing (negative until found) and the band's FSC one shell below.
  std::vector<float> crossing(coarse, -1.f), previous(coarse, 1.f);
  ComplexGrid band, product_spectrum;
  RealGrid a, b, product, s_ab(g, g, g), s_aa(g, g, g), s_bb(g, g, g);
  LocalResolution out;
  out.band_sigma_shells = sigma;
  out.sums_grid_box = g;
  // The window holds one wavelength of shell first: lower shells cannot be measured in it.
  const int first = std::clamp(static_cast<int>(std::lround(n / window_px)), 1, half);
  out.first_shell = first;
  for (int k = first; k <= half && pending > 0; ++k) {
    const int lo = std::max(1, k - reach), hi = std::min(half, k + reach);
    const int m = fft_friendly_size(std::max(2 * hi + 3 + sums.radius(), 2 * sums.radius() + 2));
    const RealFft& plan = sums.plan(m);
    band_on_grid(fa, n, shells, lo, hi, k, sigma, m, band);
    plan.inverse(band, a);
    band_on_grid(fb, n, shells, lo, hi, k, sigma, m, band);
    plan.inverse(band, b);
    product = RealGrid(m, m, m);
    auto windowed = [&](auto&& value, RealGrid& sum) {
      for_each_section(m, threads, [&](int z) {
        const std::size_t first = static_cast<std::size_t>(z) * m * m;
        for (std::size_t i = first; i < first + static_cast<std::size_t>(m) * m; ++i) product[i] = value(i);
      });
      plan.forward(product, product_spectrum);
      sums.window(product_spectrum, m, sum);
    };
    windowed([&](std::size_t i) { return a[i] * b[i]; }, s_ab);
    windowed([&](std::size_t i) { return a[i] * a[i]; }, s_aa);
    windowed([&](std::size_t i) { return b[i] * b[i]; }, s_bb);
    for (std::size_t i = 0; i < coarse; ++i) {
      if (crossing[i] >= 0) continue;
      const double power = double(s_aa[i]) * s_bb[i];
      const double fsc = power > 0 ? s_ab[i] / std::sqrt(power) : 0.0;
      if (fsc >= options.threshold) {
        previous[i] = static_cast<float>(fsc);
        continue;
      }
      crossing[i] = k == first ? float(first) : static_cast<float>(k - 1 + (previous[i] - options.threshold) / (previous[i] - fsc));
      if (needed[i]) --pending;
    }
    ++out.bands_evaluated;
  }
  RealGrid coarse_crossing(g, g, g);
  for (std::size_t i = 0; i < coarse; ++i) coarse_crossing[i] = crossing[i] >= 0 ? crossing[i] : float(half);
  out.crossing_shell = resample_trilinear(coarse_crossing, n, threads);
  out.resolution_A = RealGrid(n, n, n);
  for (std::size_t i = 0; i < out.resolution_A.size(); ++i) {
    const float c = std::clamp(out.crossing_shell[i], 1.f, float(half));
    out.crossing_shell[i] = c;
    out.resolution_A[i] = static_cast<float>(n * options.voxel_A / c);
    const bool inside = !mask_or_null || (*mask_or_null)[i] >= 0.5f;
    if (inside && c >= half - 1e-3f) ++out.nyquist_limited_voxels;
  }
  return out;
}

LocalResolutionHistogram local_resolution_histogram(const RealGrid& resolution_A, const RealGrid* mask_or_null,
                                                    int bins) {
  if (bins < 1) throw InputError("local resolution histogram: at least 1 bin");
  if (mask_or_null && !mask_or_null->same_shape(resolution_A))
    throw InputError("local resolution histogram: the mask and the map differ in shape");
  std::vector<float> values;
  for (std::size_t i = 0; i < resolution_A.size(); ++i)
    if (!mask_or_null || (*mask_or_null)[i] >= 0.5f) values.push_back(resolution_A[i]);
  LocalResolutionHistogram out;
  out.voxels = static_cast<long>(values.size());
  if (values.empty()) throw InputError("local resolution histogram: no voxel of the mask is at 0.5 or above");
  auto quantile = [&](double q) {
    const std::size_t at = std::min(values.size() - 1, static_cast<std::size_t>(q * (values.size() - 1) + 0.5));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(at), values.end());
    return double(values[at]);
  };
  out.median_A = quantile(0.5);
  out.p05_A = quantile(0.05);
  out.p95_A = quantile(0.95);
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double lo = *lo_it, hi = std::max(double(*hi_it), lo + 1e-6);
  out.bin_edges_A.resize(bins + 1);
  for (int i = 0; i <= bins; ++i) out.bin_edges_A[i] = lo + (hi - lo) * i / bins;
  out.counts.assign(bins, 0);
  for (float v : values) ++out.counts[std::min(bins - 1, static_cast<int>((v - lo) / (hi - lo) * bins))];
  return out;
}

}  // namespace tessera
