#pragma once
/// Fourier-space projection and back-projection, RELION's numerics: the
/// volume is zero-padded by `padding` (2 by default), sampled with trilinear
/// interpolation, and corrected for the interpolation kernel (gridding
/// correction: sinc^2 in real space for trilinear).
///
/// Geometry (geometry.hpp): the projection at rotation A has 2D Fourier
/// component (kx, ky) equal to the volume's 3D component at A^T (kx, ky, 0).
/// Sizes are in pixels of the un-padded box; a box of N has its real-space
/// centre at N/2 and frequencies up to `max_radius_px` (default N/2) are used.
/// The 2D transforms are half-complex (N/2+1) x N grids with the origin at the
/// corner (fft.hpp), so that ifft + corner_to_centre gives the centred image.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"

namespace tessera {

/// The real-space kernel of trilinear interpolation on a grid padded by
/// `padding`: sinc^2(r / (padding * box)) at distance r pixels from the centre.
double trilinear_gridding_kernel(double r_px, int box, int padding);

/// Holds the padded 3D transform of one volume; project() is const and may be
/// called from many threads at once.
class Projector {
 public:
  /// volume: cubic, centred at N/2. max_radius_px: highest frequency kept.
  explicit Projector(const RealGrid& volume, int padding = 2, std::optional<double> max_radius_px = {});

  /// A projector of the volume's frequencies up to band_limit_px only, held on the grid of
  /// band_limited_box(N, band_limit_px) (the same physical box at a coarser pixel: its transform
  /// is the volume's, cropped) when that is smaller than N: the 3D transform and the memory fall
  /// with the cube of that grid, and projections sample a smaller, cache-friendlier table. It
  /// projects like the full projector (box() is N, frequencies in pixels of N) up to the limit;
  /// max_radius_px() is at most the limit. For a refinement's band-limited iterations, whose
  /// references hold nothing beyond their reconstruction's band limit anyway.
  static Projector band_limited(const RealGrid& volume, double band_limit_px, int padding = 2);

  int box() const { return box_; }
  /// The box of the grid the transform is held on: box(), or smaller for band_limited().
  int grid_box() const { return pbox_ / pad_; }
  int padding() const { return pad_; }
  double max_radius_px() const { return rmax_; }

  /// Central slice at rotation A into out ((N/2+1) x N, resized if needed).
  /// Frequencies beyond max_radius_px are zero.
  void project(const Mat3& a, ComplexGrid& out) const;
  /// The projection on a curved sheet (one sideband of the Ewald sphere, forward_model.hpp):
  /// frequency (kx, ky) sampled at A^T (kx, ky, kz), kz = curvature_px * (kx^2 + ky^2), all in
  /// pixels of the box (curvature_px in 1/px: lambda / (2 box pixel_A) for the sphere). With
  /// curvature_px = 0 it is project().
  void project_curved(const Mat3& a, double curvature_px, ComplexGrid& out) const;
  /// The centred real-space projection (convenience for tests and simulation).
  RealGrid project_image(const Mat3& a) const;
  /// The projection at rotation A at n arbitrary 2D frequencies (kx, ky), in
  /// pixels of the un-padded box (no radius limit is applied).
  void project_points(const Mat3& a, const float* kx, const float* ky, std::size_t n, cfloat* out) const;

 private:
  Projector(const RealGrid& volume, int padding, std::optional<double> max_radius_px, int logical_box);
  cfloat sample(double x, double y, double z) const;  // padded-grid Fourier coordinates
  int box_, pad_, pbox_;  // pbox_: padding x the grid's box (box_, or smaller when band-limited)
  double rmax_;
  ComplexGrid data_;  // half-complex transform of the padded, pre-corrected volume
};

/// Options of BackProjector::reconstruct.
///
/// The estimate at each padded Fourier voxel is data * v, where v are
/// density-compensation weights found by the iteration of Pipe & Menon (1999,
/// Magn. Reson. Med. 41:179): starting from v = 1, v <- v / ((v * W) conv K)
/// with W the accumulated weight (plus 1/tau^2 for a Wiener filter) and K a
/// Kaiser-Bessel blob (radius 1.9 padded voxels, alpha 15). At convergence the
/// compensated sampling density is uniform, so the result is the object times
/// the trilinear kernel, removed by the gridding correction. With zero
/// iterations the plain ratio data / max(W, floor) is used instead.
struct ReconstructOptions {
  /// Per-shell signal power tau^2 (index = Fourier shell of the un-padded box,
  /// same units as the inserted data): adds 1 / tau2 to the weight (Wiener
  /// filter). Shells with tau2 <= 0 get no regularization.
  std::optional<std::vector<double>> tau2;
  int gridding_iterations = 10;
  /// Plain ratio only: weights are floored at this fraction of their shell's mean.
  double weight_floor = 1e-3;
  /// Divide the result by the trilinear gridding kernel.
  bool gridding_correction = true;
  /// Zero the corners of the box: a soft sphere of radius box/2 with a 3-pixel
  /// raised-cosine edge outside it (as RELION's reconstructions). Beyond it
  /// there is only noise, amplified by the gridding correction.
  bool mask_corners = true;
  /// Threads of the 3D transforms and voxel loops.
  int threads = 1;
  /// Only frequencies up to this radius (un-padded Fourier pixels) are needed:
  /// the volume is reconstructed on a smaller grid that holds them (box
  /// band_limited_box(), the same physical extent at a coarser pixel) and
  /// brought back to the full box by zero-padding its transform, so the result
  /// has nothing beyond that grid's Nyquist. Refinement uses it while its
  /// resolution is far from Nyquist: the cost of the 3D transforms falls with
  /// the cube of the grid. Unset, or at least box/2 - 3: the full grid.
  std::optional<double> band_limit_px;
};

/// The box of a band-limited reconstruction (ReconstructOptions::band_limit_px):
/// the smallest even size with prime factors 2, 3, 5, 7 that holds the limit
/// plus 3 shells (the blob's reach and the soft corner mask), or `box` if that
/// is not smaller.
int band_limited_box(int box, double band_limit_px);

/// The value of one unit of a BackProjector's fixed-point sums.
///
/// A back-projector adds its contributions as 64-bit integers (the value
/// divided by the quantum, rounded): integer sums do not depend on the order of
/// the additions, so many threads may insert into one back-projector at once,
/// and MPI ranks reduce their sums exactly: the maps are the same bit for bit
/// whatever the number of threads and ranks. The quanta are powers of two.
/// With data quantum q, one contribution may reach 2^50 q (larger ones throw
/// std::overflow_error) and a voxel's sum 2^63 q; the rounding error of one
/// contribution is at most q / 2.
struct AccumulationQuanta {
  double data = 0x1p-24;
  double weight = 0x1p-30;
  /// For image transforms whose mean power |X|^2 per Fourier shell is at most
  /// `max_shell_power`: the data quantum is 2^-28 of their RMS amplitude, so
  /// a voxel holds 2^35 times that amplitude (10^6 particles x 60 symmetry
  /// operators x 2 samples x 10 times the RMS use 1/30 of it).
  static AccumulationQuanta for_power(double max_shell_power);
  bool operator==(const AccumulationQuanta&) const = default;
};

/// Accumulates CTF-weighted image transforms into a padded 3D Fourier grid,
/// stored only within the ball that insertions reach. insert() may be called
/// from many threads at once (the sums are exact integers, see
/// AccumulationQuanta); add(), reconstruct() and the sums must not run
/// concurrently with it.
class BackProjector {
 public:
  /// symmetry: rotation matrices of a point group (identity included); every
  /// image is inserted once per operator. Empty means C1.
  explicit BackProjector(int box, int padding = 2, std::optional<double> max_radius_px = {},
                         std::vector<Mat3> symmetry = {}, AccumulationQuanta quanta = {});

  int box() const { return box_; }
  const AccumulationQuanta& quanta() const { return quanta_; }

  /// Insert one image: data = CTF * X (the image transform times its CTF) and
  /// weight = CTF^2, both half-complex (N/2+1) x N, at rotation A.
  void insert(const ComplexGrid& data, const RealGrid& weight, const Mat3& a);
  /// Insert on a curved sheet (one Ewald sideband, forward_model.hpp): image frequency
  /// (kx, ky) goes to A^T (kx, ky, curvature_px * (kx^2 + ky^2)), pixels of the box, once
  /// per symmetry operator. curvature_px = 0 is insert() above.
  void insert(const ComplexGrid& data, const RealGrid& weight, const Mat3& a, double curvature_px);
  /// Merge another back-projector of the same shape and quanta.
  void add(const BackProjector& other);
  /// The reconstructed volume, N^3, centred at N/2.
  RealGrid reconstruct(const ReconstructOptions& options = {}) const;

  /// Sum of weights per un-padded Fourier shell divided by the number of padded
  /// voxels in that shell (used to turn an FSC into tau^2).
  std::vector<double> mean_weight_per_shell() const;

  /// The raw fixed-point sums (real, imaginary, weight per stored voxel), for
  /// an exact reduction over processes; the layout is the same for every
  /// back-projector of the same box, padding and radius.
  std::span<std::int64_t> sums() { return sums_; }

 private:
  void insert_one(const ComplexGrid& data, const RealGrid& weight, const Mat3& a, double curvature_px);
  void splat(double x, double y, double z, cfloat value, float weight);
  // The padded half-transform's data and weights as float grids (zero outside the stored ball),
  // on a padded grid of pbox (<= pbox_: only the frequencies that grid holds).
  ComplexGrid expand_data(int pbox) const;
  RealGrid expand_weights(int pbox) const;
  RealGrid reconstruct_on(int box, const ReconstructOptions& options) const;
  template <class F>
  void for_each_stored(F&& f) const;
  static std::vector<double> shell_means(const RealGrid& padded_weight, int box, int padding);
  int box_, pad_, pbox_;
  double rmax_;
  std::vector<Mat3> symmetry_;
  AccumulationQuanta quanta_;
  double inv_data_q_, inv_weight_q_;
  // Row (ys, zs) of the padded half-transform holds x = 0 .. row_length_ - 1,
  // starting at voxel row_start_ (three int64 per voxel).
  std::vector<std::int64_t> row_start_;
  std::vector<int> row_length_;
  std::vector<std::int64_t> sums_;
};

}  // namespace tessera
