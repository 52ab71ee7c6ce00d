// BackProjector::reconstruct: from accumulated CTF-weighted data to a volume.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tessera/fft.hpp"
#include "tessera/projector.hpp"

namespace tessera {
namespace {

// The x = 0 plane of a half-complex grid holds both (0, y, z) and its
// Hermitian partner (0, -y, -z); insertions reach them separately, so pool them.
void pool_hermitian_plane(ComplexGrid& data, RealGrid& weight) {
  const int n = data.ny();
  for (int z = 0; z < n; ++z) {
    const int zp = (n - z) % n;
    for (int y = 0; y < n; ++y) {
      const int yp = (n - y) % n;
      const std::size_t i = data.index(0, y, z), j = data.index(0, yp, zp);
      if (j < i) continue;
      if (i == j) {
        data[i] = cfloat(data[i].real(), 0.0f);
        continue;
      }
      const cfloat d = data[i] + std::conj(data[j]);
      const float w = weight[i] + weight[j];
      data[i] = d, data[j] = std::conj(d);
      weight[i] = w, weight[j] = w;
    }
  }
}

}  // namespace

RealGrid BackProjector::reconstruct(const ReconstructOptions& options) const {
  ComplexGrid f = data_;
  RealGrid w = weight_;
  pool_hermitian_plane(f, w);
  const std::vector<double> mean_w = options.tau2 ? std::vector<double>{} : shell_means(w, box_, pad_);
  const int nshell = box_ / 2 + 1;
  if (options.tau2 && static_cast<int>(options.tau2->size()) < nshell)
    throw std::invalid_argument("reconstruct: tau2 needs one value per Fourier shell");
  for (int z = 0; z < pbox_; ++z) {
    const int kz = fourier_index(z, pbox_);
    for (int y = 0; y < pbox_; ++y) {
      const int ky = fourier_index(y, pbox_);
      for (int x = 0; x < pbox_ / 2 + 1; ++x) {
        const double r = std::sqrt(double(x) * x + double(ky) * ky + double(kz) * kz) / pad_;
        const std::size_t i = f.index(x, y, z);
        if (r > rmax_) {
          f[i] = 0;
          continue;
        }
        const int shell = std::min(nshell - 1, static_cast<int>(std::lround(r)));
        double denom;
        if (options.tau2) {
          const double t = (*options.tau2)[shell];
          denom = w[i] + (t > 0 ? 1.0 / t : 0.0);
        } else {
          denom = std::max<double>(w[i], options.weight_floor * mean_w[shell]);
        }
        f[i] = denom > 0 ? f[i] / static_cast<float>(denom) : cfloat(0, 0);
      }
    }
  }
  RealGrid padded = ifft_3d(f, pbox_);
  corner_to_centre(padded, true);
  RealGrid out(box_, box_, box_);
  const int off = pbox_ / 2 - box_ / 2, c = box_ / 2;
  for (int z = 0; z < box_; ++z)
    for (int y = 0; y < box_; ++y)
      for (int x = 0; x < box_; ++x) {
        float v = padded(x + off, y + off, z + off);
        if (options.gridding_correction) {
          const double r = std::sqrt(double(x - c) * (x - c) + double(y - c) * (y - c) + double(z - c) * (z - c));
          v = static_cast<float>(v / std::max(trilinear_gridding_kernel(r, box_, pad_), 1e-2));
        }
        out(x, y, z) = v;
      }
  return out;
}

}  // namespace tessera
