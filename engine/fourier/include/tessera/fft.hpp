#pragma once
/// FFT plans on FFTW3, single precision, real <-> half-complex (grid.hpp).
///
/// A plan is made once for a shape and executed many times, from any thread:
/// execution uses FFTW's new-array interface on unaligned buffers, and plan
/// creation and destruction are serialized inside this module (FFTW's planner
/// is not thread-safe). Plans use FFTW_ESTIMATE, so results are bit-for-bit
/// reproducible from run to run.
///
/// Normalization: forward is the plain sum F(k) = sum_x f(x) exp(-2 pi i k.x / N);
/// inverse includes 1/N (N = voxels per item), so inverse(forward(f)) == f.
/// The transform's origin is voxel 0: call centre_to_corner on a centred image
/// or volume first (and corner_to_centre after an inverse) to keep the
/// real-space centre at N/2.
#include <memory>

#include "tessera/grid.hpp"

namespace tessera {

class RealFft {
 public:
  /// 2D transforms of a stack of `batch` images of nx * ny (grid nz == batch).
  static RealFft plan_2d(int nx, int ny, int batch = 1);
  /// 3D transform of one nx * ny * nz volume.
  /// threads > 1: the transforms of this plan run on that many threads (large volumes).
  static RealFft plan_3d(int nx, int ny, int nz, int threads = 1);

  RealFft(RealFft&&) noexcept;
  RealFft& operator=(RealFft&&) noexcept;
  ~RealFft();

  /// in: real grid of the planned shape; out is resized to the half-complex shape.
  void forward(const RealGrid& in, ComplexGrid& out) const;
  /// in: half-complex grid; out is resized to the real shape. Input is not modified.
  void inverse(const ComplexGrid& in, RealGrid& out) const;

  int nx() const { return nx_; }
  int ny() const { return ny_; }
  int nz() const { return nz_; }  ///< real z size of the whole grid (batch for 2D)

 private:
  struct Plans;
  RealFft(int nx, int ny, int nz, bool three_d, int threads);
  int nx_, ny_, nz_;
  bool three_d_;
  std::unique_ptr<Plans> plans_;
};

/// One-shot transforms (plan, execute, discard): for tests and setup code.
ComplexGrid fft_2d(const RealGrid& image);
RealGrid ifft_2d(const ComplexGrid& f, int nx);
ComplexGrid fft_3d(const RealGrid& volume);
RealGrid ifft_3d(const ComplexGrid& f, int nx, int threads = 1);

/// Roll so that the centre voxel N/2 moves to index 0 (on x and y of every
/// section for a 2D stack, on x, y and z for a volume).
void centre_to_corner(RealGrid& g, bool three_d);
/// Inverse of centre_to_corner.
void corner_to_centre(RealGrid& g, bool three_d);

/// The half-complex transform of an n_in^3 volume (corner origin) on the grid of
/// an n_out^3 one over the same physical box: the frequencies with |k| < min(n_in,
/// n_out) / 2 on every axis are copied, the rest is zero (both grids' Nyquist
/// planes are left out), and nothing is scaled. Zero-pads when n_out > n_in,
/// crops when n_out < n_in. Throws std::invalid_argument for a grid that is not
/// the half-complex transform of n_in^3.
ComplexGrid resize_spectrum(const ComplexGrid& f, int n_in, int n_out);

/// The smallest even size >= at_least whose prime factors are 2, 3, 5 and 7
/// (sizes FFTW transforms fast).
int fft_friendly_size(int at_least);

/// Trilinear interpolation (periodic) of an m^3 grid onto the n^3 grid over the
/// same box, origins at voxel 0 on both: voxel x of the result lies at x * m / n
/// of the input. For fields that are smooth on the scale of the input's voxels
/// (a resize_spectrum'd coarse grid's local statistics).
RealGrid resample_trilinear(const RealGrid& g, int n, int threads = 1);

/// Multiply the half-complex transform of an nx * ny image (or of each image
/// of a stack) by the phase that shifts the real-space content by (dx, dy)
/// pixels: positive dx moves content towards larger x.
void phase_shift_2d(ComplexGrid& f, int nx, double dx, double dy);

}  // namespace tessera
