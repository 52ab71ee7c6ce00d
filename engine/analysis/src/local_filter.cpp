#include "tessera/local_filter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/mask.hpp"
#include "tessera/parallel.hpp"
#include "tessera/projector.hpp"        // band_limited_box

// Why the cross-validation error picks the right cut-off. Write held_k = s + n_k and train_k = s + m_k,
// with s the signal and n_k, m_k the noise of disjoint particles: n_k is independent of m_k and has zero
// mean. Then for every filter h
//   E (h * train_k - held_k)^2 = E (h * train_k - s)^2 + E n_k^2 - 2 E[(h * train_k - s) n_k]
// and the last term is 0: the error is the filtered training map's mean squared error against the
// signal plus the held-out noise power, a constant in h. Its minimizer over h is the minimizer of the
// true error, without bias (only with variance, which the window averages down). The training map of
// K folds holds (K - 1) / K of the half set's particles, so the cut-off it picks is, if anything, a little
// conservative for the whole half map.
//
// The window's shape. The error is averaged over a Gaussian window, not a box: a Gaussian has no edges,
// so the chosen cut-off varies smoothly and isotropically with x (a box makes blocky maps, and its sums
// jump when a strong feature enters a corner), and a product with its transform costs the same for any
// width. Its width is set so that it holds as many voxels as a box of side W = awf * N / c (awf
// wavelengths of the cut-off): a normalized window w averages (sum w)^2 / sum w^2 independent voxels,
// which is W per axis for a box and 2 sqrt(pi) sigma for a Gaussian, so sigma = W / (2 sqrt(pi)). The
// window is normalized (sum 1), so errors under windows of different widths compare as local means.
// cryoSPARC's implementation is said to have "no finite local box" either.
//
// The window's scheme (WindowScheme). Taken literally, the paper's objective averages each candidate's
// whole error in that candidate's own window, so a low cut-off is judged over a wide region and a high one
// over a narrow one: at a voxel of a small well-resolved region (a protein core in a box that is mostly
// solvent) the low cut-offs are scored mostly on the solvent around it, where they are right, and win
// there too. The tests show it: the lowest candidate inside a 12-voxel sphere resolved to 20 shells.
// The default scheme measures instead the change of error from each candidate to the next, each change
// in the window of its cut-off, and sums the changes:
//   score_J(x) = sum_{j=1..J} [w_j * (e_j - e_{j-1})](x),   e_j = sum_k (h_{c_j} * train_k - held_k)^2,
// which is the literal objective minus a term common to all candidates whenever the windows are equal.
// Every comparison between neighbouring cut-offs is then made on one region, at the scale of the
// wavelengths in question, and the held-out noise power (the constant above) cancels in each change
// instead of adding a window-dependent fluctuation.
//
// The cropped grid (LocalFilterGrid::BandLimited). When no candidate exceeds c_max (highest_cutoff_px) and
// the folds come from a reconstruction band-limited at or below c_max (nu_regularizer.cpp), the folds hold
// nothing beyond the grid of such a reconstruction (band_limited_box: c_max + 3 shells, the same box at a
// coarser voxel), so the training and held-out maps and every filtered training map are exact on it.
// (Folds with content beyond lose it: the held-out part only adds a term common to all candidates and
// its cross terms, and the training part is what the highest filters pass beyond the grid: a third of the
// amplitude at c_max + 3 for c_max = 21 with Butterworth order 8. The tests measure that case too.) The
// squared error is not exact: its band is twice the maps', so its content beyond the grid's Nyquist
// aliases to low frequencies, which the windows of the highest candidates let through. That content comes
// only from pairs of frequencies near the grid's edge, where the maps are weak; measured, it moves the
// cut-offs by hundredths of a candidate step (bench_local_filter at box 128: median 0.02, max 0.3 steps
// inside the mask; the tests bound it). A grid holding 1.3 c_max lowers that by a third at 1.7 to 2.4
// times the cost. The windows have the same physical width on the grid (in its voxels sigma =
// awf n / (2 sqrt(pi) c) for a grid of n, since c is in cycles per box), and the raw choice, smooth on the
// scale of the narrowest window (0.85 n / c_max voxels), is interpolated trilinearly to the full box,
// where the mask and the smoothing are applied exactly as on the full grid.

namespace tessera {
namespace {

// Calls f(z) for z in [0, n) on `threads` threads, each thread one contiguous run of z.
template <class F>
void for_each_slice(int n, int threads, F&& f) {
  for_each_particle(n, std::max(1, threads), [&](int, long z) { f(static_cast<int>(z)); });
}

void check_options(int box, const LocalFilterOptions& o) {
  if (o.cutoffs < 2)
    throw std::invalid_argument(fmt::format("local filter: cutoffs must be at least 2, got {}", o.cutoffs));
  if (!(o.lowest_cutoff_px > 0) || !(o.lowest_cutoff_px < box / 2))
    throw std::invalid_argument(fmt::format(
        "local filter: lowest_cutoff_px must lie in (0, {}) (Nyquist of box {}), got {}", box / 2, box,
        o.lowest_cutoff_px));
  if (!(o.awf > 0) || !std::isfinite(o.awf))
    throw std::invalid_argument(fmt::format("local filter: awf must be positive, got {}", o.awf));
  if (o.butterworth_order < 1)
    throw std::invalid_argument(
        fmt::format("local filter: butterworth_order must be at least 1, got {}", o.butterworth_order));
  if (!(o.smooth_px >= 0) || !std::isfinite(o.smooth_px))
    throw std::invalid_argument(fmt::format("local filter: smooth_px must be >= 0, got {}", o.smooth_px));
  if (o.threads < 1)
    throw std::invalid_argument(fmt::format("local filter: threads must be at least 1, got {}", o.threads));
  if (o.highest_cutoff_px && !(*o.highest_cutoff_px > 0 && std::isfinite(*o.highest_cutoff_px)))
    throw std::invalid_argument(
        fmt::format("local filter: highest_cutoff_px must be positive, got {}", *o.highest_cutoff_px));
}

void check_volume(const RealGrid& g, const std::string& name) {
  if (g.nx() < 4 || g.nx() != g.ny() || g.nx() != g.nz())
    throw std::invalid_argument(fmt::format("local filter: {} must be a cubic volume of at least 4^3, got {}x{}x{}",
                                            name, g.nx(), g.ny(), g.nz()));
}

void check_same_shape(const RealGrid& g, const RealGrid& reference, const std::string& name) {
  if (!g.same_shape(reference))
    throw std::invalid_argument(fmt::format("local filter: {} is {}x{}x{}, the maps are {}x{}x{}", name, g.nx(),
                                            g.ny(), g.nz(), reference.nx(), reference.ny(), reference.nz()));
}

void check_finite(const RealGrid& g, const std::string& name) {
  for (float v : g.values())
    if (!std::isfinite(v)) throw std::invalid_argument(fmt::format("local filter: {} has non-finite values", name));
}

// Values of a radial function indexed by the squared Fourier radius kx^2 + ky^2 + kz^2 (an integer,
// at most 3 (N/2)^2 for a box of N): a table replaces a pow or exp per Fourier voxel.
template <class F>
std::vector<float> radial_table(int box, F&& value_of_r2) {
  const int half = box / 2;
  std::vector<float> table(static_cast<std::size_t>(3 * half * half + 1));
  for (std::size_t r2 = 0; r2 < table.size(); ++r2) table[r2] = static_cast<float>(value_of_r2(double(r2)));
  return table;
}

std::vector<float> filter_table(int box, const LocalFilterOptions& o, double cutoff_px) {
  return radial_table(box, [&](double r2) {
    return local_filter_response(o.shape, o.butterworth_order, std::sqrt(r2), cutoff_px);
  });
}

// The transform of a normalized periodic Gaussian of standard deviation sigma_px voxels.
std::vector<float> gaussian_table(int box, double sigma_px) {
  const double a = 2.0 * std::numbers::pi * std::numbers::pi * sigma_px * sigma_px / (double(box) * box);
  return radial_table(box, [&](double r2) { return std::exp(-a * r2); });
}

// out(k) = in(k) * table[|k|^2] on a half-complex volume; out may be in.
void multiply_radial(const ComplexGrid& in, const std::vector<float>& table, ComplexGrid& out, int threads) {
  if (!out.same_shape(in)) out = ComplexGrid(in.nx(), in.ny(), in.nz());
  const int hx = in.nx(), n = in.ny();
  for_each_slice(in.nz(), threads, [&](int z) {
    const int kz = fourier_index(z, in.nz());
    for (int y = 0; y < n; ++y) {
      const int ky = fourier_index(y, n);
      const float* t = table.data() + kz * kz + ky * ky;
      const cfloat* src = &in(0, y, z);
      cfloat* dst = &out(0, y, z);
      for (int x = 0; x < hx; ++x) dst[x] = src[x] * t[x * x];
    }
  });
}

// Calls f(begin, end) on contiguous runs of the voxel indices of an N^3 grid, on `threads` threads.
template <class F>
void for_each_voxel_run(const RealGrid& g, int threads, F&& f) {
  const std::size_t per_slice = static_cast<std::size_t>(g.nx()) * g.ny();
  for_each_slice(g.nz(), threads, [&](int z) { f(z * per_slice, (z + 1) * per_slice); });
}

// A 3D plan of n^3 made once per call and executed many times, counting its transforms.
class CountedFft {
 public:
  CountedFft(int n, int threads, int& count) : plan_(RealFft::plan_3d(n, n, n, threads)), count_(count) {}
  void forward(const RealGrid& in, ComplexGrid& out) const {
    plan_.forward(in, out);
    ++count_;
  }
  void inverse(const ComplexGrid& in, RealGrid& out) const {
    plan_.inverse(in, out);
    ++count_;
  }
  int n() const { return plan_.nx(); }

 private:
  RealFft plan_;
  int& count_;
};

// Training spectra from the folds' spectra: for fold k the transform of the mean of the other folds.
std::vector<ComplexGrid> training_spectra(std::vector<ComplexGrid> f) {
  const std::size_t K = f.size();
  if (K == 2) {
    std::swap(f[0], f[1]);
    return f;
  }
  ComplexGrid sum = f[0];
  for (std::size_t k = 1; k < K; ++k)
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += f[k][i];
  const float scale = 1.0f / static_cast<float>(K - 1);
  for (auto& fk : f)
    for (std::size_t i = 0; i < fk.size(); ++i) fk[i] = (sum[i] - fk[i]) * scale;
  return f;
}

// The transform of a volume of n^3 (a corner-origin spectrum) cropped to a grid of m < n
// (resize_spectrum), scaled by (m / n)^3 so that the inverse transform of m^3 samples the same
// band-limited function at the coarse voxels (voxel i of the grid at position i n / m of the box).
ComplexGrid crop_spectrum(const ComplexGrid& f, int n, int m) {
  ComplexGrid out = resize_spectrum(f, n, m);
  const float scale = static_cast<float>(std::pow(double(m) / n, 3));
  for (cfloat& v : out.values()) v *= scale;
  return out;
}

// The grid on which the folds are compared: their training spectra and held-out maps.
struct CrossValidationGrid {
  std::vector<ComplexGrid> train;
  std::vector<RealGrid> cropped_held;  // the held-out folds on a cropped grid (empty on the full box)
  std::vector<const RealGrid*> held;   // the held-out folds on the grid (into cropped_held or the input)
};

CrossValidationGrid cross_validation_grid(const CountedFft& full, const CountedFft* cropped,
                                          std::span<const RealGrid* const> folds) {
  CrossValidationGrid g;
  std::vector<ComplexGrid> spectra(folds.size());
  for (std::size_t k = 0; k < folds.size(); ++k) full.forward(*folds[k], spectra[k]);
  if (!cropped) {
    g.held.assign(folds.begin(), folds.end());
  } else {
    g.cropped_held.resize(folds.size());
    for (std::size_t k = 0; k < folds.size(); ++k) {
      spectra[k] = crop_spectrum(spectra[k], full.n(), cropped->n());
      cropped->inverse(spectra[k], g.cropped_held[k]);
      g.held.push_back(&g.cropped_held[k]);
    }
  }
  g.train = training_spectra(std::move(spectra));
  return g;
}

// The sum over folds of (h_c * train_k - held_k)^2, voxel by voxel, into err.
void fold_errors(const CountedFft& plan, const CrossValidationGrid& cv, const std::vector<float>& table,
                 int threads, ComplexGrid& spectrum, RealGrid& filtered, RealGrid& err) {
  err.fill(0.0f);
  for (std::size_t k = 0; k < cv.train.size(); ++k) {
    multiply_radial(cv.train[k], table, spectrum, threads);
    plan.inverse(spectrum, filtered);
    const float* h = cv.held[k]->data();
    for_each_voxel_run(err, threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        const float d = filtered[i] - h[i];
        err[i] += d * d;
      }
    });
  }
}

// g = w * g with w the normalized periodic Gaussian of standard deviation sigma_px voxels of g.
void window_in_place(const CountedFft& plan, RealGrid& g, double sigma_px, int threads, ComplexGrid& spectrum) {
  plan.forward(g, spectrum);
  multiply_radial(spectrum, gaussian_table(g.nx(), sigma_px), spectrum, threads);
  plan.inverse(spectrum, g);
}

// The arg-min of the windowed scores (WindowScheme) over the candidates at each voxel of the grid,
// before mask and smoothing. Frequencies are in cycles per box on any grid, so the filters are the
// same functions of k, and a window of W = awf n / c voxels of a grid of n is the same physical width
// on every grid.
RealGrid raw_choice(const CountedFft& plan, const CrossValidationGrid& cv, const std::vector<double>& candidates,
                    const LocalFilterOptions& options) {
  const int n = plan.n(), threads = options.threads;
  ComplexGrid spectrum;
  RealGrid scratch, err(n, n, n), previous_err, score(n, n, n);
  // Increments: score = error of the candidate minus the lowest candidate's, so the lowest scores 0.
  const bool increments = options.window == WindowScheme::Increments;
  RealGrid best_score(n, n, n, increments ? 0.0f : std::numeric_limits<float>::infinity());
  RealGrid best(n, n, n, static_cast<float>(candidates.front()));
  for (std::size_t j = 0; j < candidates.size(); ++j) {
    const double c = candidates[j];
    fold_errors(plan, cv, filter_table(n, options, c), threads, spectrum, scratch, err);
    const double sigma = options.awf * n / c / (2.0 * std::sqrt(std::numbers::pi));  // see the top of this file
    if (increments) {
      if (j == 0) {
        previous_err = err;
        continue;
      }
      // scratch = the step's change of error, then windowed; previous_err takes this candidate's error.
      for_each_voxel_run(err, threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) scratch[i] = err[i] - previous_err[i];
      });
      std::swap(previous_err, err);
      window_in_place(plan, scratch, sigma, threads, spectrum);
    } else {
      window_in_place(plan, err, sigma, threads, spectrum);
    }
    const RealGrid& step = increments ? scratch : err;
    const auto cf = static_cast<float>(c);
    for_each_voxel_run(score, threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        score[i] = increments ? score[i] + step[i] : step[i];
        if (score[i] < best_score[i]) {  // strict: on a tie the lower cut-off (the stronger regularizer) stays
          best_score[i] = score[i];
          best[i] = cf;
        }
      }
    });
  }
  return best;
}

// Gaussian smoothing (periodic) of the cut-offs over the voxels where inside is 1, normalized by the
// smoothed inside indicator: a voxel near the mask's edge averages only inside voxels.
void smooth_cutoffs(const CountedFft& plan, RealGrid& cutoff, const RealGrid* inside, double sigma_px,
                    double outside_value, int threads) {
  ComplexGrid spectrum;
  auto smooth = [&](RealGrid& g) { window_in_place(plan, g, sigma_px, threads, spectrum); };
  if (!inside) {
    smooth(cutoff);
    return;
  }
  RealGrid weight = *inside;
  for (std::size_t i = 0; i < cutoff.size(); ++i) cutoff[i] *= (*inside)[i];
  smooth(cutoff);
  smooth(weight);
  for (std::size_t i = 0; i < cutoff.size(); ++i) {
    const bool in = (*inside)[i] > 0.5f && weight[i] > 1e-6f;
    cutoff[i] = in ? cutoff[i] / weight[i] : static_cast<float>(outside_value);
  }
}

}  // namespace

std::vector<double> local_filter_candidates_px(int box, const LocalFilterOptions& options) {
  check_options(box, options);
  const double lo = options.lowest_cutoff_px, hi = box / 2;
  std::vector<double> c(static_cast<std::size_t>(options.cutoffs));
  for (int j = 0; j < options.cutoffs; ++j) c[j] = lo + (hi - lo) * j / (options.cutoffs - 1);
  c.back() = hi;
  if (options.highest_cutoff_px) {
    std::size_t keep = 2;
    while (keep < c.size() && c[keep - 1] < *options.highest_cutoff_px) ++keep;
    c.resize(keep);
  }
  return c;
}

double local_filter_response(FilterShape shape, int butterworth_order, double radius_px, double cutoff_px) {
  const double q = radius_px / cutoff_px;
  switch (shape) {
    case FilterShape::Butterworth: {
      double q2n = 1.0;  // (q^2)^n by repeated multiplication: exact and fast for integer n
      for (int i = 0; i < butterworth_order; ++i) q2n *= q * q;
      return 1.0 / std::sqrt(1.0 + q2n);
    }
    case FilterShape::Rectangular:
      return radius_px <= cutoff_px ? 1.0 : 0.0;
    case FilterShape::Gaussian:
      return std::exp(-0.5 * std::numbers::ln2 * q * q);
  }
  throw std::invalid_argument("local_filter_response: unknown filter shape");
}

int local_filter_grid_box(int box, const LocalFilterOptions& options) {
  const std::vector<double> c = local_filter_candidates_px(box, options);
  if (options.grid == LocalFilterGrid::Full || !options.highest_cutoff_px) return box;
  return band_limited_box(box, c.back());
}

LocalFilterChoice choose_local_cutoffs(std::span<const RealGrid* const> folds, const RealGrid* mask_or_null,
                                       const LocalFilterOptions& options) {
  if (folds.size() < 2)
    throw std::invalid_argument(fmt::format(
        "local filter: cross-validation needs at least 2 folds (maps from disjoint particles), got {}",
        folds.size()));
  for (std::size_t k = 0; k < folds.size(); ++k)
    if (!folds[k]) throw std::invalid_argument(fmt::format("local filter: fold {} is null", k));
  check_volume(*folds[0], "fold 0");
  for (std::size_t k = 0; k < folds.size(); ++k) {
    check_same_shape(*folds[k], *folds[0], fmt::format("fold {}", k));
    check_finite(*folds[k], fmt::format("fold {}", k));
  }
  const int box = folds[0]->nx();
  const std::vector<double> candidates = local_filter_candidates_px(box, options);
  RealGrid inside;
  if (mask_or_null) {
    check_same_shape(*mask_or_null, *folds[0], "the mask");
    check_mask(*mask_or_null, "local filter mask");
    inside = RealGrid(box, box, box);
    for (std::size_t i = 0; i < inside.size(); ++i) inside[i] = (*mask_or_null)[i] > 0.0f ? 1.0f : 0.0f;
  }

  LocalFilterChoice choice;
  LocalFilterCost& cost = choice.cost;
  cost.box = box;
  cost.grid_box = local_filter_grid_box(box, options);
  const CountedFft full(box, options.threads, cost.transforms_full);
  RealGrid& best = choice.cutoff_px;
  if (cost.grid_box < box) {
    const CountedFft cropped(cost.grid_box, options.threads, cost.transforms_grid);
    const RealGrid raw = raw_choice(cropped, cross_validation_grid(full, &cropped, folds), candidates, options);
    best = resample_trilinear(raw, box, options.threads);
  } else {
    best = raw_choice(full, cross_validation_grid(full, nullptr, folds), candidates, options);
  }

  if (mask_or_null)
    for (std::size_t i = 0; i < best.size(); ++i)
      if (inside[i] == 0.0f) best[i] = static_cast<float>(candidates.front());
  if (options.smooth_px > 0)
    smooth_cutoffs(full, best, mask_or_null ? &inside : nullptr, options.smooth_px, candidates.front(),
                   options.threads);
  // Smoothing is an average of candidates, so it stays within their range up to the FFT's rounding.
  for (float& v : best.values())
    v = std::clamp(v, static_cast<float>(candidates.front()), static_cast<float>(candidates.back()));
  return choice;
}

RealGrid apply_local_filter(const RealGrid& map, const RealGrid& cutoff_px, const LocalFilterOptions& options) {
  check_volume(map, "the map");
  check_same_shape(cutoff_px, map, "the cut-off map");
  check_finite(cutoff_px, "the cut-off map");
  const int box = map.nx();
  const std::vector<double> c = local_filter_candidates_px(box, options);
  const int last = static_cast<int>(c.size()) - 1;
  const double step = (c.back() - c.front()) / last;

  // Position of each voxel's cut-off on the candidate axis (candidate j at t = j). Cut-off maps are
  // float: within 1e-4 of a step of a candidate counts as that candidate (no neighbour with weight 1e-7).
  RealGrid t(box, box, box);
  float tmin = static_cast<float>(last), tmax = 0.0f;
  for (std::size_t i = 0; i < t.size(); ++i) {
    double ti = (std::clamp<double>(cutoff_px[i], c.front(), c.back()) - c.front()) / step;
    if (std::abs(ti - std::round(ti)) < 1e-4) ti = std::round(ti);
    t[i] = static_cast<float>(ti);
    tmin = std::min(tmin, t[i]);
    tmax = std::max(tmax, t[i]);
  }

  const RealFft plan = RealFft::plan_3d(box, box, box, options.threads);
  ComplexGrid f, spectrum;
  plan.forward(map, f);
  RealGrid out(box, box, box), filtered;
  const int jlo = static_cast<int>(std::floor(tmin)), jhi = std::min(last, static_cast<int>(std::ceil(tmax)));
  for (int j = jlo; j <= jhi; ++j) {
    multiply_radial(f, filter_table(box, options, c[j]), spectrum, options.threads);
    plan.inverse(spectrum, filtered);
    const auto jf = static_cast<float>(j);
    for_each_voxel_run(out, options.threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        const float w = 1.0f - std::abs(t[i] - jf);  // linear interpolation between neighbouring candidates
        if (w > 0.0f) out[i] += w * filtered[i];
      }
    });
  }
  return out;
}

}  // namespace tessera
