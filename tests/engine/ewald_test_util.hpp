#pragma once
// Helpers of the Ewald sphere tests (engine and programs): a particle of Gaussian blobs and a
// value-based error against the truth in a band of Fourier shells.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/grid.hpp"
#include "tessera/random.hpp"

namespace tessera::test {

struct Blob {
  double x, y, z, amplitude;  // centre in px from the box centre
};

// Gaussian blobs of standard deviation sigma_px, sampled on a box^3 grid centred at box/2.
inline RealGrid blob_volume(int box, const std::vector<Blob>& blobs, double sigma_px) {
  RealGrid v(box, box, box);
  const int c = box / 2, reach = static_cast<int>(std::ceil(5 * sigma_px));
  for (const Blob& b : blobs) {
    const int bx = static_cast<int>(std::lround(b.x)) + c, by = static_cast<int>(std::lround(b.y)) + c,
              bz = static_cast<int>(std::lround(b.z)) + c;
    for (int z = std::max(0, bz - reach); z <= std::min(box - 1, bz + reach); ++z)
      for (int y = std::max(0, by - reach); y <= std::min(box - 1, by + reach); ++y)
        for (int x = std::max(0, bx - reach); x <= std::min(box - 1, bx + reach); ++x) {
          const double dx = x - c - b.x, dy = y - c - b.y, dz = z - c - b.z;
          const double r2 = dx * dx + dy * dy + dz * dz;
          v(x, y, z) += static_cast<float>(b.amplitude * std::exp(-r2 / (2 * sigma_px * sigma_px)));
        }
  }
  return v;
}

// A large particle: `count` blobs uniform in the ball of radius radius_px about the centre.
inline std::vector<Blob> blobs_in_ball(int count, double radius_px, std::uint64_t seed) {
  Rng rng = item_rng(seed, 0x62616c6c);
  std::vector<Blob> blobs;
  while (static_cast<int>(blobs.size()) < count) {
    const Blob b{radius_px * (2 * uniform01(rng) - 1), radius_px * (2 * uniform01(rng) - 1),
                 radius_px * (2 * uniform01(rng) - 1), 0.5 + uniform01(rng)};
    if (b.x * b.x + b.y * b.y + b.z * b.z <= radius_px * radius_px) blobs.push_back(b);
  }
  return blobs;
}

// sum |R - T|^2 / sum |T|^2 over the Fourier shells lo <= |k| < hi (px): the reconstruction's
// error against the truth, in values, in that band.
inline double band_error(const RealGrid& reconstruction, const RealGrid& truth, double lo, double hi) {
  RealGrid r = reconstruction, t = truth;
  centre_to_corner(r, true);
  centre_to_corner(t, true);
  const ComplexGrid fr = fft_3d(r), ft = fft_3d(t);
  const int n = truth.nx();
  double err = 0, norm = 0;
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n / 2 + 1; ++x) {
        const double k = std::sqrt(double(x) * x + std::pow(fourier_index(y, n), 2) + std::pow(fourier_index(z, n), 2));
        if (k < lo || k >= hi) continue;
        err += std::norm(fr(x, y, z) - ft(x, y, z));
        norm += std::norm(ft(x, y, z));
      }
  return err / norm;
}

}  // namespace tessera::test
