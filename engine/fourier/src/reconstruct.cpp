// BackProjector::reconstruct: from accumulated CTF-weighted data to a volume.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "tessera/fft.hpp"
#include "tessera/mask.hpp"
#include "tessera/parallel.hpp"
#include "tessera/projector.hpp"

namespace tessera {
namespace {

constexpr double kBlobRadius = 1.9, kBlobAlpha = 15.0;

// The x = 0 plane of a half-complex grid holds both (0, y, z) and its
// Hermitian partner (0, -y, -z); insertions reach them separately, so pool
// them: data d(i) + conj(d(j)) (real where i is its own partner), weights w(i) + w(j).
template <class Grid, class Pool>
void pool_hermitian_plane(Grid& g, Pool&& pool) {
  const int n = g.ny();
  for (int z = 0; z < n; ++z) {
    const int zp = (n - z) % n;
    for (int y = 0; y < n; ++y) {
      const int yp = (n - y) % n;
      const std::size_t i = g.index(0, y, z), j = g.index(0, yp, zp);
      if (j >= i) pool(g[i], g[j], i == j);
    }
  }
}

void pool_data(ComplexGrid& data) {
  pool_hermitian_plane(data, [](cfloat& a, cfloat& b, bool self) {
    if (self) {
      a = cfloat(a.real(), 0.0f);
      return;
    }
    const cfloat d = a + std::conj(b);
    a = d, b = std::conj(d);
  });
}

void pool_weights(RealGrid& weight) {
  pool_hermitian_plane(weight, [](float& a, float& b, bool self) {
    if (!self) a = b = a + b;
  });
}

double kaiser_bessel(double r) {
  if (r >= kBlobRadius) return 0.0;
  const double u = r / kBlobRadius;
  return std::cyl_bessel_i(0.0, kBlobAlpha * std::sqrt(1.0 - u * u)) / std::cyl_bessel_i(0.0, kBlobAlpha);
}

// Visits every voxel of a padded half-complex grid with its radius in
// un-padded Fourier pixels.
template <class F>
void for_each_voxel(int pbox, int pad, F&& f) {
  for (int z = 0; z < pbox; ++z) {
    const int kz = fourier_index(z, pbox);
    for (int y = 0; y < pbox; ++y) {
      const int ky = fourier_index(y, pbox);
      for (int x = 0; x < pbox / 2 + 1; ++x)
        f(x, y, z, std::sqrt(double(x) * x + double(ky) * ky + double(kz) * kz) / pad);
    }
  }
}

// Real-space multiplier that convolves a half-complex grid with the blob:
// c conv K = N * fft(ifft(c) * ifft(K)) with the normalizations of fft.hpp.
RealGrid blob_convolution_kernel(int pbox) {
  ComplexGrid k(pbox / 2 + 1, pbox, pbox);
  const int reach = static_cast<int>(std::ceil(kBlobRadius));
  double sum = 0;  // over the full stencil, so that the blob has unit mass
  for (int z = -reach; z <= reach; ++z)
    for (int y = -reach; y <= reach; ++y)
      for (int x = -reach; x <= reach; ++x) sum += kaiser_bessel(std::sqrt(double(x) * x + double(y) * y + double(z) * z));
  for (int z = -reach; z <= reach; ++z)
    for (int y = -reach; y <= reach; ++y)
      for (int x = 0; x <= reach; ++x)
        k(x, fourier_storage(y, pbox), fourier_storage(z, pbox)) =
            static_cast<float>(kaiser_bessel(std::sqrt(double(x) * x + double(y) * y + double(z) * z)) / sum);
  RealGrid real = ifft_3d(k, pbox);
  const float n = static_cast<float>(double(pbox) * pbox * pbox);
  for (float& v : real.values()) v *= n;
  return real;
}

// Calls f(begin, end) on `threads` contiguous chunks of [0, n) at once.
template <class F>
void in_chunks(std::size_t n, int threads, F&& f) {
  const int t = std::max(1, threads);
  for_each_particle(t, t, [&](int, long c) { f(n * c / t, n * (c + 1) / t); });
}

// The blob kernel of a padded box, shared by the reconstructions that run at the same time (the
// two half maps): at box 256 it is 0.5 GB. Freed when the last of them is done.
std::shared_ptr<const RealGrid> shared_blob_kernel(int pbox) {
  static std::mutex mutex;
  static std::map<int, std::weak_ptr<const RealGrid>> cache;
  const std::lock_guard lock(mutex);
  if (auto k = cache[pbox].lock()) return k;
  auto k = std::make_shared<const RealGrid>(blob_convolution_kernel(pbox));
  cache[pbox] = k;
  return k;
}

// Pipe-Menon density compensation weights for the sampling density w.
RealGrid density_compensation(const RealGrid& w, int pbox, int pad, double rmax, int iterations, int threads) {
  const std::shared_ptr<const RealGrid> shared_kernel = shared_blob_kernel(pbox);
  const RealGrid& kernel = *shared_kernel;
  const RealFft plan = RealFft::plan_3d(pbox, pbox, pbox, threads);
  RealGrid v(w.nx(), w.ny(), w.nz(), 0.0f);
  for_each_voxel(pbox, pad, [&](int x, int y, int z, double r) {
    // Voxels without samples hold no data: leaving them out keeps v bounded.
    if (r <= rmax && w(x, y, z) > 0) v(x, y, z) = 1.0f;
  });
  ComplexGrid c(w.nx(), w.ny(), w.nz());
  RealGrid real;
  double total = 0, count = 0;
  for (std::size_t i = 0; i < w.size(); ++i)
    if (v[i] != 0.0f) total += w[i], count += 1;
  const float mean_density = count > 0 ? static_cast<float>(total / count) : 1.0f;
  for (int it = 0; it < iterations; ++it) {
    in_chunks(c.size(), threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) c[i] = cfloat(v[i] * w[i], 0.0f);
    });
    plan.inverse(c, real);
    in_chunks(real.size(), threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) real[i] *= kernel[i];
    });
    plan.forward(real, c);
    // Where no sample lies within the blob the density is ~0: leave those
    // voxels out (their data is 0) rather than let v grow without bound.
    in_chunks(v.size(), threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        if (v[i] == 0.0f) continue;
        const float density = std::abs(c[i]);
        v[i] = density > 1e-6f * mean_density ? v[i] / density : 0.0f;
      }
    });
  }
  return v;
}

}  // namespace

int band_limited_box(int box, double band_limit_px) {
  const int n = fft_friendly_size(2 * static_cast<int>(std::ceil(std::max(0.0, band_limit_px) + 3)));
  return std::min(n, box);
}

RealGrid BackProjector::reconstruct(const ReconstructOptions& options) const {
  const int small = options.band_limit_px ? band_limited_box(box_, *options.band_limit_px) : box_;
  if (small >= box_) return reconstruct_on(box_, options);
  // The same physical box at a coarser pixel, brought back by zero-padding its transform. The
  // small grid's inverse transform divides by (pad small)^3 instead of (pad box)^3, which makes its
  // values (box / small)^3 too large; the padded inverse divides by box^3 instead of small^3,
  // which takes the same factor back: no scaling is needed.
  RealGrid coarse = reconstruct_on(small, options);
  centre_to_corner(coarse, true);
  const ComplexGrid padded = resize_spectrum(fft_3d(coarse), small, box_);
  coarse = RealGrid();
  RealGrid out = ifft_3d(padded, box_, options.threads);
  corner_to_centre(out, true);
  return out;
}

// The reconstruction on a grid of `box` (<= box_) at the same physical extent: box_ itself, or
// a coarser pixel holding the frequencies up to box / 2.
RealGrid BackProjector::reconstruct_on(int box, const ReconstructOptions& options) const {
  const int pbox = pad_ * box;
  const double rmax = box == box_ ? rmax_ : std::min(rmax_, box / 2.0 - 3);
  // Memory at box 256 (padded 512): the weights and the data are expanded to float grids one
  // after the other, so the density compensation's buffers never coexist with the data.
  RealGrid w = expand_weights(pbox);
  pool_weights(w);
  const int nshell = box_ / 2 + 1;
  if (options.tau2 && static_cast<int>(options.tau2->size()) < nshell)
    throw std::invalid_argument("reconstruct: tau2 needs one value per Fourier shell");
  auto shell_of = [&](double r) { return std::min(nshell - 1, static_cast<int>(std::lround(r))); };
  if (options.tau2) {
    for_each_voxel(pbox, pad_, [&](int x, int y, int z, double r) {
      const double t = (*options.tau2)[shell_of(r)];
      if (r <= rmax && t > 0) w(x, y, z) += static_cast<float>(1.0 / t);
    });
  }
  ComplexGrid f;
  if (options.gridding_iterations > 0) {
    const RealGrid v = density_compensation(w, pbox, pad_, rmax, options.gridding_iterations, options.threads);
    w = RealGrid();
    f = expand_data(pbox);
    pool_data(f);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] *= v[i];
  } else {
    f = expand_data(pbox);
    pool_data(f);
    const std::vector<double> mean_w = shell_means(w, box_, pad_);
    for_each_voxel(pbox, pad_, [&](int x, int y, int z, double r) {
      const std::size_t i = f.index(x, y, z);
      const double denom = std::max<double>(w[i], options.weight_floor * mean_w[shell_of(r)]);
      f[i] = r <= rmax && denom > 0 ? f[i] / static_cast<float>(denom) : cfloat(0, 0);
    });
    w = RealGrid();
  }
  RealGrid padded = ifft_3d(f, pbox, options.threads);
  corner_to_centre(padded, true);
  RealGrid out(box, box, box);
  const int off = pbox / 2 - box / 2, c = box / 2;
  for (int z = 0; z < box; ++z)
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box; ++x) {
        float val = padded(x + off, y + off, z + off);
        if (options.gridding_correction) {
          const double r = std::sqrt(double(x - c) * (x - c) + double(y - c) * (y - c) + double(z - c) * (z - c));
          val = static_cast<float>(val / std::max(trilinear_gridding_kernel(r, box, pad_), 1e-2));
        }
        out(x, y, z) = val;
      }
  if (options.mask_corners) {
    const RealGrid mask = soft_sphere_mask(box, box / 2.0, 3.0);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] *= mask[i];
  }
  return out;
}

}  // namespace tessera
