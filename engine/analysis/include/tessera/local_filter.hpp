#pragma once
/// The adaptive regularizer of non-uniform refinement (Punjani, Zhang and
/// Fleet, Nature Methods 17, 1214-1221, 2020): a low-pass filter whose cut-off
/// varies from voxel to voxel, each voxel's cut-off chosen by cross-validation
/// between maps reconstructed from disjoint particles of one half set. Pure
/// functions of grids: no files, no refinement state.
///
/// Units and conventions. Volumes are cubic, N * N * N voxels, real-space
/// centre at N/2 (grid.hpp). A cut-off c is a radius in Fourier space in
/// voxels of frequency ("shells", as in fsc.hpp): it stands for the resolution
/// N / c voxels, i.e. N * voxel_A / c Angstrom, and its wavelength is N / c
/// voxels. Nyquist is c = N/2. Every filter here is real and radial, so it
/// commutes with translations and needs no centre_to_corner.
///
/// The method. For each candidate cut-off c_j (local_filter_candidates_px)
/// and voxel x, the cross-validation error of the folds,
///   e_j(x) = sum over folds k of (h_{c_j} * train_k - held_k)^2(x),
/// where held_k is fold k, train_k the mean of the other folds and h_c the
/// low-pass filter at c (FilterShape), is averaged over a Gaussian window
/// w_j whose width follows the cut-off's wavelength (awf * N / c_j voxels).
/// The cut-off of x is the candidate with the least windowed error (by
/// default compared step by step between neighbouring candidates:
/// WindowScheme), and the map of chosen cut-offs is smoothed (smooth_px).
/// Held-out noise is independent of the training map's, so the expected
/// error is the filtered training map's squared error against the true
/// signal plus the held-out noise power, which does not depend on c: the
/// minimizer is unbiased (local_filter.cpp says more).
#include <optional>
#include <span>
#include <vector>

#include "tessera/grid.hpp"

namespace tessera {

/// How the windowed errors of the candidates are compared at a voxel.
enum class WindowScheme {
  /// score_J = sum_{j=1..J} w_j * (e_j - e_{j-1}): each step from one candidate
  /// to the next is measured in the window of its cut-off, so both sides of
  /// every comparison see the same region. Equals the literal objective (up
  /// to a term common to all candidates) when the windows are equal.
  Increments,
  /// score_j = w_j * e_j: the paper's objective taken literally. A low
  /// cut-off's wide window judges it on other regions' data: a small
  /// well-resolved region in a box of solvent gets the lowest cut-off. Kept
  /// for comparison.
  PerCutoff,
};

/// Shape of the low-pass filter h_c, as a function of the Fourier radius r
/// (voxels of frequency) for a cut-off c. The smooth shapes pass half the
/// power at r = c (|h|^2 = 1/2), so c means the same resolution for each.
enum class FilterShape {
  Butterworth,  ///< h = 1 / sqrt(1 + (r / c)^(2 n)), n = butterworth_order (the paper's filter, order 8)
  Rectangular,  ///< h = 1 for r <= c, 0 beyond (a hard cut: rings in real space)
  Gaussian,     ///< h = 2^(-(r / c)^2 / 2) = exp(-ln 2 r^2 / (2 c^2))
};

/// The grid on which choose_local_cutoffs runs the cross-validation.
enum class LocalFilterGrid {
  /// With highest_cutoff_px set: a Fourier-cropped grid, the same physical box
  /// at a coarser voxel (local_filter_grid_box), which holds the highest
  /// candidate plus 3 shells. The folds are cropped to it (frequencies beyond
  /// its Nyquist are dropped: a band-limited reconstruction holds none), the
  /// windows and filters are the same functions of physical position and
  /// frequency, and the raw choice is brought back to the full box by
  /// trilinear interpolation before the mask and the smoothing, which stay on
  /// the full box. The cut-offs differ from Full's by much less than a
  /// candidate step (median over the mask; test_local_filter states the
  /// tolerance); cost falls with the cube of the grid. Without
  /// highest_cutoff_px, or when the grid is not smaller, the same as Full.
  BandLimited,
  /// The full box: (K + 2) FFTs of N^3 per candidate. The reference.
  Full,
};

struct LocalFilterOptions {
  /// Number of candidate cut-offs, equispaced in Fourier radius from
  /// lowest_cutoff_px to Nyquist (N/2) inclusive; at least 2.
  int cutoffs = 50;
  /// Lowest candidate cut-off (voxels of frequency, > 0 and < N/2). The default 2
  /// shells is a resolution of half the box: only a molecule's envelope, the
  /// most a refinement ever filters a region to; its window (awf * N / 2) spans
  /// the whole box, so the choice there is in effect global.
  double lowest_cutoff_px = 2.0;
  /// Drops the candidates beyond this cut-off (voxels of frequency): the
  /// family keeps its spacing (that of `cutoffs` candidates up to Nyquist)
  /// and ends at the first candidate that reaches it (at least 2 are kept).
  /// For maps known to hold nothing beyond some radius (a band-limited
  /// reconstruction), where higher candidates cannot differ: each dropped
  /// candidate saves K + 2 FFTs. Unset: up to Nyquist.
  std::optional<double> highest_cutoff_px;
  /// Adaptive window factor: the window for cut-off c is awf wavelengths wide,
  /// W = awf * N / c voxels, as a Gaussian of standard deviation W / (2 sqrt(pi))
  /// (as many independent voxels as a box of side W). cryoSPARC's default is 3,
  /// and its authors report results insensitive to it.
  double awf = 3.0;
  WindowScheme window = WindowScheme::Increments;
  FilterShape shape = FilterShape::Butterworth;
  int butterworth_order = 8;  ///< n of FilterShape::Butterworth, >= 1
  /// Standard deviation (voxels) of the Gaussian that smooths the chosen
  /// cut-off map, to remove voxel-to-voxel jitter of the arg-min between
  /// neighbouring candidates; 0 leaves the raw choice.
  double smooth_px = 2.0;
  /// Threads for the FFTs and the voxel loops; results do not depend on it
  /// beyond FFTW's rounding.
  int threads = 1;
  LocalFilterGrid grid = LocalFilterGrid::BandLimited;
};

/// The transforms a call did, for benchmarks and tests.
struct LocalFilterCost {
  int box = 0;              ///< the full box N
  int grid_box = 0;         ///< the cross-validation's grid (local_filter_grid_box)
  int transforms_full = 0;  ///< FFTs of N^3
  int transforms_grid = 0;  ///< FFTs of grid_box^3 when grid_box < N
};

struct LocalFilterChoice {
  /// Per voxel, the chosen cut-off in voxels of frequency (resolution N /
  /// cutoff_px voxels), between the lowest and the highest candidate.
  RealGrid cutoff_px;
  LocalFilterCost cost;
};

/// The candidate cut-offs (voxels of frequency) for a box of N: `cutoffs`
/// values equispaced from lowest_cutoff_px to N/2, ascending (fewer with
/// highest_cutoff_px).
/// Throws std::invalid_argument when the options are out of range for N.
std::vector<double> local_filter_candidates_px(int box, const LocalFilterOptions& options);

/// The side of the grid on which choose_local_cutoffs cross-validates
/// (LocalFilterGrid): with BandLimited and highest_cutoff_px set, that of a
/// reconstruction band-limited at the highest candidate (band_limited_box,
/// projector.hpp: it holds c + 3 shells); else N.
int local_filter_grid_box(int box, const LocalFilterOptions& options);

/// The filter's transfer value at Fourier radius radius_px for a cut-off
/// cutoff_px (FilterShape gives the formulas).
double local_filter_response(FilterShape shape, int butterworth_order, double radius_px, double cutoff_px);

/// Chooses each voxel's cut-off by K-fold cross-validation. folds: K >= 2
/// maps of the same cubic shape, each reconstructed from disjoint particles
/// of one half set (same pose, same scale); for K = 2 fold 0 is trained on
/// fold 1 and held out against it, and the other way round.
/// mask_or_null: values in [0, 1] (mask.hpp); voxels where it is 0 get the
/// lowest candidate (solvent), and the smoothing averages only voxels where it
/// is > 0, so solvent does not pull down the cut-offs at the molecule's edge.
/// The errors themselves are measured on the unmasked folds.
/// Throws std::invalid_argument for fewer than 2 folds, a null fold, shapes
/// that differ or are not cubic, non-finite values or options out of range;
/// InputError (error.hpp) for mask values outside [0, 1].
/// Cost: K FFTs of N^3 (the folds' transforms; on a cropped grid K more of
/// the grid for the held-out folds), (K + 2) FFTs of the grid
/// (local_filter_grid_box) per candidate, and 2 of N^3 for the smoothing (4
/// with a mask); LocalFilterChoice::cost counts them. Memory
/// about K + 7 volumes of the grid plus 4 of N^3 (a complex volume counting
/// as one).
LocalFilterChoice choose_local_cutoffs(std::span<const RealGrid* const> folds, const RealGrid* mask_or_null,
                                       const LocalFilterOptions& options);

/// The spatially varying low-pass: out(x) = (h_{c(x)} * map)(x) with c =
/// cutoff_px(x) clamped to the candidate range. The map is filtered once at
/// each candidate that some voxel needs, and each voxel takes the linear
/// interpolation (in c) between the two candidates around c(x): exactly the
/// global filter where c(x) is a candidate. Uses the options' candidates,
/// shape and threads.
/// Throws std::invalid_argument when the shapes differ or are not cubic, a
/// cut-off is not finite, or the options are out of range.
/// Cost: one FFT of N^3 per candidate in use, plus one.
RealGrid apply_local_filter(const RealGrid& map, const RealGrid& cutoff_px, const LocalFilterOptions& options);

}  // namespace tessera
