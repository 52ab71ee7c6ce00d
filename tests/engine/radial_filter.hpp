#pragma once
// The filter tests' own radial filter (their oracle), shared by test_local_filter and test_nu_regularizer.
#include <cmath>
#include <functional>

#include "tessera/fft.hpp"
#include "tessera/grid.hpp"

namespace tessera::test {

/// map filtered by transfer(r), r the Fourier radius in voxels.
inline RealGrid radial_filter(const RealGrid& map, const std::function<double(double)>& transfer) {
  ComplexGrid f = fft_3d(map);
  const int n = map.nx();
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < f.ny(); ++y)
      for (int x = 0; x < f.nx(); ++x) {
        const double ky = fourier_index(y, n), kz = fourier_index(z, n);
        f(x, y, z) *= static_cast<float>(transfer(std::sqrt(x * x + ky * ky + kz * kz)));
      }
  return ifft_3d(f, n);
}

/// A hard low-pass at c Fourier voxels.
inline RealGrid band_limited(const RealGrid& map, double c) {
  return radial_filter(map, [c](double r) { return r <= c ? 1.0 : 0.0; });
}

}  // namespace tessera::test
