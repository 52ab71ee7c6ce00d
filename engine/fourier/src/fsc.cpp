#include "tessera/fsc.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/mask.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

constexpr double kPi = std::numbers::pi;

bool is_image(const RealGrid& g) { return g.nz() == 1; }

/// A cubic volume or a square image, at least 2 voxels wide.
void require_box(const RealGrid& g, const char* what) {
  const bool square = g.nx() == g.ny() && g.nx() >= 2;
  if (!square || (g.nz() != 1 && g.nz() != g.nx()))
    throw InputError(fmt::format("{}: needs a cubic volume or a square image, got {}x{}x{}", what, g.nx(),
                                 g.ny(), g.nz()));
}

void require_same_shape(const RealGrid& a, const RealGrid& b, const char* what, const char* names) {
  if (!a.same_shape(b))
    throw InputError(fmt::format("{}: {} differ in shape: {}x{}x{} and {}x{}x{}", what, names, a.nx(), a.ny(),
                                 a.nz(), b.nx(), b.ny(), b.nz()));
}

void require_positive(double value, const char* what) {
  if (!(value > 0) || !std::isfinite(value))
    throw InputError(fmt::format("{} must be a positive number, got {}", what, value));
}

void require_curve_size(const std::vector<double>& curve, int box, const char* what) {
  if (box < 2 || curve.size() != static_cast<std::size_t>(box / 2 + 1))
    throw std::invalid_argument(
        fmt::format("{}: a curve for box {} needs {} shells, got {}", what, box, box / 2 + 1, curve.size()));
}

ComplexGrid forward(const RealGrid& g) { return is_image(g) ? fft_2d(g) : fft_3d(g); }

RealGrid inverse(const ComplexGrid& f, int n) { return f.nz() == 1 ? ifft_2d(f, n) : ifft_3d(f, n); }

/// Calls fn(storage index, squared radius in voxels) for every stored voxel of
/// a half-complex grid (grid.hpp layout; z is 0 for an image).
template <class Fn>
void for_each_frequency(const ComplexGrid& f, Fn&& fn) {
  const int hx = f.nx(), ny = f.ny(), nz = f.nz();
  std::size_t i = 0;
  for (int z = 0; z < nz; ++z) {
    const long kz = fourier_index(z, nz);
    for (int y = 0; y < ny; ++y) {
      const long ky = fourier_index(y, ny);
      const long r2yz = ky * ky + kz * kz;
      for (long x = 0; x < hx; ++x, ++i) fn(i, x * x + r2yz);
    }
  }
}

/// Shell index round(sqrt(r2)); r2 is never a half-integer square, so no ties.
int shell_of(long r2) { return static_cast<int>(std::lround(std::sqrt(static_cast<double>(r2)))); }

std::vector<double> fsc_of_transforms(const ComplexGrid& fa, const ComplexGrid& fb, int box) {
  const int nshell = box / 2 + 1;
  std::vector<double> num(nshell, 0.0), den_a(nshell, 0.0), den_b(nshell, 0.0);
  for_each_frequency(fa, [&](std::size_t i, long r2) {
    const int k = shell_of(r2);
    if (k >= nshell) return;
    const std::complex<double> za(fa[i]), zb(fb[i]);
    num[k] += za.real() * zb.real() + za.imag() * zb.imag();
    den_a[k] += std::norm(za);
    den_b[k] += std::norm(zb);
  });
  std::vector<double> curve(nshell, 0.0);
  for (int k = 0; k < nshell; ++k)
    if (den_a[k] > 0 && den_b[k] > 0) curve[k] = num[k] / std::sqrt(den_a[k] * den_b[k]);
  return curve;
}

/// Replaces the phases of voxels at r2 >= min_r2 with random ones, keeping
/// Hermitian symmetry on the planes kx = 0 and kx = N/2 (N even), where the
/// mate (x, -y, -z) of a stored voxel is stored too. Voxels are visited in
/// storage order, so a mate with a smaller index has already been drawn.
void randomize_phases(ComplexGrid& f, int n, double min_r2, Rng& rng) {
  const int hx = f.nx(), ny = f.ny(), nz = f.nz();
  for (int z = 0; z < nz; ++z) {
    const long kz = fourier_index(z, nz);
    for (int y = 0; y < ny; ++y) {
      const long ky = fourier_index(y, ny);
      for (int x = 0; x < hx; ++x) {
        if (static_cast<double>(long(x) * x + ky * ky + kz * kz) < min_r2) continue;
        cfloat& v = f(x, y, z);
        const bool on_mate_plane = x == 0 || (n % 2 == 0 && x == n / 2);
        if (on_mate_plane) {
          const int my = (ny - y) % ny, mz = (nz - z) % nz;
          const std::size_t self = f.index(x, y, z), mate = f.index(x, my, mz);
          if (mate < self) {
            v = std::conj(f[mate]);
            continue;
          }
          if (mate == self) {  // self-conjugate: must stay real
            v = cfloat(uniform01(rng) < 0.5 ? -std::abs(v) : std::abs(v), 0.0f);
            continue;
          }
        }
        const double phase = 2.0 * kPi * uniform01(rng);
        v = std::polar(std::abs(v), static_cast<float>(phase));
      }
    }
  }
}

RealGrid phase_randomize_from_radius(const RealGrid& v, double min_radius_vox, Rng& rng) {
  ComplexGrid f = forward(v);
  const double r = std::max(0.0, min_radius_vox);
  randomize_phases(f, v.nx(), r * r, rng);
  return inverse(f, v.nx());
}

/// Raised-cosine low-pass gain at radius r (voxels), edge centred on c, width w.
double lowpass_gain(double r, double c, double w) {
  if (w <= 0) return r <= c ? 1.0 : 0.0;
  const double lo = c - 0.5 * w;
  if (r <= lo) return 1.0;
  if (r >= c + 0.5 * w) return 0.0;
  return 0.5 + 0.5 * std::cos(kPi * (r - lo) / w);
}

void apply_lowpass(ComplexGrid& f, double c, double w) {
  for_each_frequency(f, [&](std::size_t i, long r2) {
    f[i] *= static_cast<float>(lowpass_gain(std::sqrt(static_cast<double>(r2)), c, w));
  });
}

RealGrid multiply(const RealGrid& a, const RealGrid& m) {
  RealGrid out = a;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] *= m[i];
  return out;
}

int randomization_shell(const std::vector<double>& unmasked, int box, double voxel_A,
                        std::optional<double> randomize_from_A) {
  if (randomize_from_A) {
    require_positive(*randomize_from_A, "corrected_fsc: randomize_from_A");
    // RELION truncates: (int)(angpix * N / randomize_at_A); the epsilon keeps an
    // exact shell resolution (N * voxel / k) on shell k despite rounding.
    const int shell = static_cast<int>(std::floor(box * voxel_A / *randomize_from_A + 1e-9));
    if (shell > box / 2)
      throw InputError(fmt::format("corrected_fsc: randomize_from_A {} A is beyond Nyquist ({} A)",
                                   *randomize_from_A, 2 * voxel_A));
    return std::max(shell, 1);
  }
  constexpr double kRandomizeAtFsc = 0.8;  // RELION's --randomize_at_fsc default
  for (std::size_t k = 1; k < unmasked.size(); ++k)
    if (unmasked[k] < kRandomizeAtFsc) return static_cast<int>(k);
  throw InputError(
      "corrected_fsc: the unmasked FSC never drops below 0.8 up to Nyquist; give randomize_from_A");
}

}  // namespace

std::vector<double> fsc(const RealGrid& a, const RealGrid& b) {
  require_box(a, "fsc");
  require_same_shape(a, b, "fsc", "the two maps");
  return fsc_of_transforms(forward(a), forward(b), a.nx());
}

std::vector<double> masked_fsc(const RealGrid& a, const RealGrid& b, const RealGrid& mask) {
  require_same_shape(a, mask, "masked_fsc", "the mask and the maps");
  return fsc(multiply(a, mask), multiply(b, mask));
}

RealGrid average_maps(const RealGrid& a, const RealGrid& b) {
  require_same_shape(a, b, "average_maps", "the two maps");
  RealGrid m = a;
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = 0.5f * (a[i] + b[i]);
  return m;
}

std::vector<double> shell_resolution_A(int box, double voxel_A) {
  if (box < 2) throw InputError(fmt::format("shell_resolution_A: box must be at least 2, got {}", box));
  require_positive(voxel_A, "shell_resolution_A: voxel_A");
  std::vector<double> res(box / 2 + 1);
  res[0] = std::numeric_limits<double>::infinity();
  for (int k = 1; k <= box / 2; ++k) res[k] = box * voxel_A / k;
  return res;
}

std::optional<double> resolution_at(const std::vector<double>& curve, double threshold, int box,
                                    double voxel_A) {
  require_curve_size(curve, box, "resolution_at");
  const auto res = shell_resolution_A(box, voxel_A);
  for (std::size_t k = 1; k < curve.size(); ++k)
    if (curve[k] < threshold) return res[k - 1];
  return std::nullopt;
}

std::optional<double> resolution_at_interpolated(const std::vector<double>& curve, double threshold,
                                                 int box, double voxel_A) {
  require_curve_size(curve, box, "resolution_at_interpolated");
  require_positive(voxel_A, "resolution_at_interpolated: voxel_A");
  for (std::size_t k = 1; k < curve.size(); ++k) {
    if (curve[k] >= threshold) continue;
    if (k == 1) return std::numeric_limits<double>::infinity();
    const double above = curve[k - 1] - threshold, below = curve[k] - threshold;
    const double t = above / (above - below);  // in [0, 1): above >= 0 > below
    return box * voxel_A / (static_cast<double>(k - 1) + t);
  }
  return std::nullopt;
}

RealGrid lowpass(const RealGrid& v, double resolution_A, double voxel_A, double soft_edge_shells) {
  require_box(v, "lowpass");
  require_positive(resolution_A, "lowpass: resolution_A");
  require_positive(voxel_A, "lowpass: voxel_A");
  if (!(soft_edge_shells >= 0))
    throw InputError(fmt::format("lowpass: soft_edge_shells must be >= 0, got {}", soft_edge_shells));
  ComplexGrid f = forward(v);
  apply_lowpass(f, v.nx() * voxel_A / resolution_A, soft_edge_shells);
  return inverse(f, v.nx());
}

RealGrid phase_randomize(const RealGrid& v, double beyond_resolution_A, double voxel_A, std::uint64_t seed) {
  require_box(v, "phase_randomize");
  require_positive(beyond_resolution_A, "phase_randomize: beyond_resolution_A");
  require_positive(voxel_A, "phase_randomize: voxel_A");
  Rng rng(seed);
  // The small margin keeps voxels exactly at the requested radius in the set
  // despite rounding (r^2 >= shell^2 in RELION).
  return phase_randomize_from_radius(v, v.nx() * voxel_A / beyond_resolution_A - 1e-9, rng);
}

MaskedFsc corrected_fsc(const RealGrid& half_a, const RealGrid& half_b, const RealGrid& mask, double voxel_A,
                        std::optional<double> randomize_from_A, std::uint64_t seed, int randomizations) {
  require_box(half_a, "corrected_fsc");
  require_same_shape(half_a, half_b, "corrected_fsc", "the half maps");
  require_same_shape(half_a, mask, "corrected_fsc", "the mask and the half maps");
  require_positive(voxel_A, "corrected_fsc: voxel_A");
  check_mask(mask, "corrected_fsc: mask");
  const int box = half_a.nx();

  MaskedFsc out;
  out.unmasked = fsc(half_a, half_b);
  out.masked = masked_fsc(half_a, half_b, mask);
  out.randomize_from_shell = randomization_shell(out.unmasked, box, voxel_A, randomize_from_A);

  if (randomizations < 1)
    throw InputError(fmt::format("corrected_fsc: randomizations must be at least 1, got {}", randomizations));
  const double radius = out.randomize_from_shell;
  out.randomized_masked.assign(out.masked.size(), 0.0);
  for (int t = 0; t < randomizations; ++t) {
    Rng rng_a = item_rng(seed, 2 * static_cast<std::uint64_t>(t)), rng_b = item_rng(seed, 2 * static_cast<std::uint64_t>(t) + 1);
    const RealGrid rand_a = phase_randomize_from_radius(half_a, radius, rng_a);
    const RealGrid rand_b = phase_randomize_from_radius(half_b, radius, rng_b);
    const std::vector<double> r = masked_fsc(rand_a, rand_b, mask);
    for (std::size_t k = 0; k < r.size(); ++k) out.randomized_masked[k] += r[k] / randomizations;
  }

  out.corrected = out.masked;
  if (out.corrected[0] <= 0) out.corrected[0] = 1.0;  // RELION: the origin's FSC can come out -1
  for (std::size_t k = static_cast<std::size_t>(out.randomize_from_shell) + 2; k < out.corrected.size(); ++k) {
    // The mask can only add correlation: a negative randomized FSC is sampling noise, and
    // would lift the corrected FSC above the masked one (at a shell near 0.143 that moved
    // relion_7DDO's resolution between 6.19 A and Nyquist with the seed). As RELION, no
    // correlation is left where the mask's own exceeds the measured one.
    const double m = out.masked[k], r = std::max(0.0, out.randomized_masked[k]);
    out.corrected[k] = r < 1.0 && r <= m ? (m - r) / (1.0 - r) : 0.0;
  }
  return out;
}

RealGrid shell_weighted(const RealGrid& map, const std::vector<double>& gains) {
  require_box(map, "shell_weighted");
  require_curve_size(gains, map.nx(), "shell_weighted");
  std::vector<float> gain(gains.begin(), gains.end());
  gain.push_back(0.0f);  // the corners beyond N/2
  ComplexGrid f = forward(map);
  const std::size_t corner = gains.size();
  for_each_frequency(f, [&](std::size_t i, long r2) {
    f[i] *= gain[std::min(static_cast<std::size_t>(shell_of(r2)), corner)];
  });
  return inverse(f, map.nx());
}

std::vector<double> wiener_gains(const std::vector<double>& fsc_curve) {
  std::vector<double> gains(fsc_curve.size());
  for (std::size_t k = 0; k < fsc_curve.size(); ++k) gains[k] = std::clamp(fsc_curve[k], 0.0, 1.0);
  return gains;
}

RealGrid fsc_weight(const RealGrid& map, const std::vector<double>& fsc_curve) {
  require_box(map, "fsc_weight");
  require_curve_size(fsc_curve, map.nx(), "fsc_weight");
  constexpr double kMinFsc = 1e-4;  // RELION's applyFscWeighting cut
  std::vector<double> gains(fsc_curve.size(), 0.0);
  for (std::size_t k = 0; k < fsc_curve.size() && fsc_curve[k] >= kMinFsc; ++k)
    gains[k] = std::sqrt(2.0 * fsc_curve[k] / (1.0 + fsc_curve[k]));
  return shell_weighted(map, gains);
}

namespace {

// The mean over each shell's voxels of value(|F|) (normalized transform: |F| / N^3).
template <class Value>
std::vector<double> shell_mean(const RealGrid& map, const char* what, Value&& value) {
  require_box(map, what);
  const int nshell = map.nx() / 2 + 1;
  std::vector<double> sum(nshell, 0.0);
  std::vector<long> count(nshell, 0);
  const ComplexGrid f = forward(map);
  const double norm = 1.0 / static_cast<double>(map.size());  // RELION's normalized transform
  for_each_frequency(f, [&](std::size_t i, long r2) {
    const int k = shell_of(r2);
    if (k >= nshell) return;
    sum[k] += value(std::abs(std::complex<double>(f[i])) * norm);
    ++count[k];
  });
  for (int k = 0; k < nshell; ++k) sum[k] = count[k] > 0 ? sum[k] / count[k] : 0.0;
  return sum;
}

}  // namespace

std::vector<double> shell_mean_amplitude(const RealGrid& map) {
  return shell_mean(map, "shell_mean_amplitude", [](double a) { return a; });
}

std::vector<double> shell_mean_power(const RealGrid& map) {
  return shell_mean(map, "shell_mean_power", [](double a) { return a * a; });
}

GuinierFit guinier_bfactor(const RealGrid& map, double voxel_A, double low_res_A, double high_res_A) {
  require_positive(voxel_A, "guinier_bfactor: voxel_A");
  require_positive(low_res_A, "guinier_bfactor: low_res_A");
  if (!(high_res_A >= 0) || high_res_A > low_res_A)
    throw InputError(fmt::format("guinier_bfactor: high_res_A must lie in [0, low_res_A = {}], got {}",
                                 low_res_A, high_res_A));
  const std::vector<double> amplitude = shell_mean_amplitude(map);
  const auto res = shell_resolution_A(map.nx(), voxel_A);
  GuinierFit fit;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (std::size_t k = 1; k < amplitude.size(); ++k) {
    const double d = res[k];
    // The relative margin keeps a shell whose resolution equals a limit exactly.
    const bool outside = d > low_res_A * (1 + 1e-9) || d < high_res_A * (1 - 1e-9);
    if (outside || !(amplitude[k] > 0)) continue;  // k <= N/2 already means d >= 2 voxel_A
    const double x = 1.0 / (d * d), y = std::log(amplitude[k]);
    sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    if (fit.shells_used == 0) fit.fit_min_res_A = d;
    fit.fit_max_res_A = d;
    ++fit.shells_used;
  }
  if (fit.shells_used < 2)
    throw InputError(fmt::format("guinier_bfactor: fewer than 2 shells between {} and {} A (box {}, {} A/voxel)",
                                 low_res_A, high_res_A, map.nx(), voxel_A));
  const double n = fit.shells_used;
  const double cxx = sxx - sx * sx / n, cyy = syy - sy * sy / n, cxy = sxy - sx * sy / n;
  const double slope = cxy / cxx;
  fit.bfactor_A2 = 4.0 * slope;
  fit.intercept = (sy - slope * sx) / n;
  fit.r = cyy > 0 ? cxy / std::sqrt(cxx * cyy) : 0.0;
  return fit;
}

RealGrid sharpen(const RealGrid& map, double voxel_A, double bfactor_A2, std::optional<double> lowpass_A) {
  require_box(map, "sharpen");
  require_positive(voxel_A, "sharpen: voxel_A");
  if (!std::isfinite(bfactor_A2)) throw InputError("sharpen: bfactor_A2 must be a finite number");
  if (lowpass_A) require_positive(*lowpass_A, "sharpen: lowpass_A");
  const int n = map.nx();
  const double nyquist_r = 0.5 * n;  // RELION keeps res <= 1 / (2 voxel_A), i.e. r <= N / 2
  const double s_per_voxel = 1.0 / (n * voxel_A);
  const double c = lowpass_A ? n * voxel_A / *lowpass_A : 0.0;
  ComplexGrid f = forward(map);
  for_each_frequency(f, [&](std::size_t i, long r2) {
    const double r = std::sqrt(static_cast<double>(r2));
    if (r > nyquist_r) {
      f[i] = 0.0f;
      return;
    }
    const double s = r * s_per_voxel;
    double gain = std::exp(-0.25 * bfactor_A2 * s * s);
    if (lowpass_A) gain *= lowpass_gain(r, c, 2.0);
    f[i] *= static_cast<float>(gain);
  });
  return inverse(f, n);
}

}  // namespace tessera
