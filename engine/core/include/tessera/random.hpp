#pragma once
/// Deterministic random numbers: one std::mt19937_64 seeded by the user's
/// --seed, passed explicitly (no global generator). Distributions are written
/// out here rather than taken from <random>, whose normal and uniform real
/// distributions differ between standard libraries, so a seed gives the same
/// data everywhere.
#include <cstdint>
#include <random>

#include "tessera/geometry.hpp"

namespace tessera {

using Rng = std::mt19937_64;

/// Uniform in [0, 1).
double uniform01(Rng& rng);
/// Standard normal (Box-Muller).
double normal01(Rng& rng);
/// An orientation uniformly distributed over SO(3), as RELION angles.
Euler random_euler(Rng& rng);
/// A generator for item `index` of a run seeded with `seed`, independent of
/// how many numbers earlier items drew (so items can be made in any order).
Rng item_rng(std::uint64_t seed, std::uint64_t index);

}  // namespace tessera
