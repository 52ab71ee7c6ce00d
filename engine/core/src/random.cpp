#include "tessera/random.hpp"

#include <cmath>
#include <numbers>

namespace tessera {

double uniform01(Rng& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double normal01(Rng& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

Euler random_euler(Rng& rng) {
  Euler e;
  e.rot = 360.0 * uniform01(rng) - 180.0;
  e.tilt = std::acos(2.0 * uniform01(rng) - 1.0) * 180.0 / std::numbers::pi;
  e.psi = 360.0 * uniform01(rng) - 180.0;
  return e;
}

Rng item_rng(std::uint64_t seed, std::uint64_t index) {
  // splitmix64 of (seed, index): well-mixed, distinct streams per item.
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + index + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return Rng(z);
}

}  // namespace tessera
