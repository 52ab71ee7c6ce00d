#pragma once
/// Local resolution from two half maps: the Fourier shell correlation
/// measured in a soft window slid over the map, and at each position the
/// resolution where it falls below a threshold (as blocres and RELION's
/// --locres do it with a box or a sphere at each sampled point, but dense and
/// by FFTs). Pure functions of grids: no files.
///
/// Units and conventions as fsc.hpp: cubic maps of N^3, real-space centre at
/// N/2; a shell k is a Fourier radius in voxels of frequency (cycles per box)
/// and stands for the resolution N * voxel_A / k Angstrom.
///
/// The estimator. a_k and b_k are the half maps band-passed around shell k:
/// each Fourier voxel f multiplied by g_k(f) = exp(-(|f| - k)^2 / (2 sigma^2))
/// (cut at 3 sigma), and
///   FSC_k(x) = [w * (a_k b_k)](x) / sqrt([w * a_k^2](x) [w * b_k^2](x)),
/// with w the window (a normalized Gaussian) and * the convolution. Its
/// expectation is the local SNR / (1 + SNR) averaged over the band (shell s
/// weighted by its voxels times g_k(s)^2) at x: the window weights products of
/// the band-passed maps, not the maps, so nothing is multiplied into the
/// halves and no correlation is induced between them (the global masked FSC
/// needs the phase-randomization correction because it multiplies both halves
/// by one mask: local_resolution.cpp shows why this estimator does not, and
/// test_local_resolution measures it).
///
/// Window and band. The window holds as many independent voxels as a cube of
/// side W = window_A (a Gaussian of standard deviation W / (2 sqrt(pi)), as
/// local_filter.hpp's windows). A band-pass is itself a convolution, whose
/// kernel is as wide in real space as the band is narrow in frequency: a band
/// with hard edges has tails that fall only as 1 / distance and carry a
/// neighbouring region's signal far into a window (measured: 2.7 shells too
/// high in a region 24 voxels from a better one). The Gaussian profile's
/// kernel is a Gaussian envelope; by default its width in real space equals
/// the window's, sigma = N / (sqrt(pi) W) shells (W in voxels), which is also
/// about the frequency resolution of a measurement in the window (its own
/// Fourier shell, N / W shells of the box). A narrower band gives the same
/// expectation over a wider region with fewer independent Fourier samples.
/// The band slides one shell of the box at a time, so the crossing is located
/// to a fraction of a shell.
///
/// Cost. Per shell: 2 inverse FFTs (the band-passed halves) and 3 forward FFTs
/// (the products) on a grid just large enough for the products' content near
/// zero frequency not to alias (smaller than N for low shells), and 3 inverse
/// FFTs on the coarse grid of the windowed sums (which are smooth at the
/// window's scale). The bands stop once every voxel inside the mask has
/// crossed the threshold.
#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/grid.hpp"

namespace tessera {

struct LocalResolutionOptions {
  double voxel_A = 0;        ///< voxel size (Angstrom), > 0
  double window_A = 25.0;    ///< window side (Angstrom), as above; at least 4 voxels
  double threshold = 0.143;  ///< FSC threshold, in (0, 1)
  /// Standard deviation of the band's profile in shells of the box, in [0.25, N / 8];
  /// unset: from the window, as above.
  std::optional<double> band_sigma_shells;
  int threads = 1;  ///< threads of the FFTs and voxel loops; results do not depend on it
};

struct LocalResolution {
  /// Per voxel (N^3, same grid as the halves), the resolution (Angstrom) where
  /// the local FSC crosses the threshold: the crossing between the last shell
  /// at or above it (k - 1) and the first below (k) is interpolated linearly in
  /// shell index, c = k - 1 + t, and reported as N * voxel_A / c. The bands
  /// start at the window's own first shell, first_shell = round(N / W) (W in
  /// voxels; a lower shell's wavelength does not fit in the window), and a
  /// voxel already below the threshold there gets that shell's resolution,
  /// about the window's side; one
  /// where it never drops below up to Nyquist gets 2 * voxel_A (and is counted
  /// in nyquist_limited_voxels).
  RealGrid resolution_A;
  /// The same crossing as a Fourier radius c (voxels of frequency): the cut-off
  /// apply_local_filter (local_filter.hpp) takes.
  RealGrid crossing_shell;
  double band_sigma_shells = 0;  ///< the band's standard deviation used (shells)
  int first_shell = 1;           ///< the first band's centre, as above
  int sums_grid_box = 0;           ///< side of the coarse grid of the windowed sums
  int bands_evaluated = 0;         ///< bands computed before every voxel in the mask had crossed
  /// Voxels inside the mask (mask >= 0.5, or all without a mask) still above
  /// the threshold at Nyquist.
  long nyquist_limited_voxels = 0;
};

/// The local resolution of a pair of half maps (same cubic shape, N >= 8).
/// mask_or_null: values in [0, 1]; it only says where the result is needed
/// (the bands stop when every voxel with mask > 0 has crossed); the halves are
/// not multiplied by it. Throws InputError (error.hpp) for shapes that differ,
/// a mask outside [0, 1] or options out of range.
LocalResolution local_resolution(const RealGrid& half_a, const RealGrid& half_b, const RealGrid* mask_or_null,
                                 const LocalResolutionOptions& options);

/// Histogram of a local-resolution map over the voxels with mask >= 0.5 (all
/// voxels without a mask): `bins` equal bins in Angstrom between the smallest
/// and the largest value, with the median and the 5th and 95th percentiles.
struct LocalResolutionHistogram {
  std::vector<double> bin_edges_A;  ///< bins + 1 edges, ascending
  std::vector<long> counts;         ///< bins counts
  double median_A = 0;
  double p05_A = 0;  ///< the best 5% of voxels are at or below this
  double p95_A = 0;
  long voxels = 0;
};
LocalResolutionHistogram local_resolution_histogram(const RealGrid& resolution_A, const RealGrid* mask_or_null,
                                                    int bins = 40);

}  // namespace tessera
