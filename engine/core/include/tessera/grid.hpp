#pragma once
/// Dense 1-3D arrays for images, stacks and volumes, owned by value.
///
/// Layout: x is the fastest axis, then y, then z: element (x, y, z) lives at
/// index (z * ny + y) * nx + x. A 2D image is a grid with nz == 1; a stack of
/// n images is a grid with nz == n (MRC convention).
///
/// Real-space centre: the centre of a box of size N is voxel N/2 (integer
/// division) on every axis, as in RELION and the MRC files Tessera writes.
///
/// Fourier space ("half-complex", FFTW r2c layout): the transform of a real
/// nx * ny * nz grid is a complex (nx/2 + 1) * ny * nz grid. Index 0 on every
/// axis is the zero frequency; along y and z, index i stands for frequency
/// i for i <= n/2 and i - n above (see fourier_index). Negative x frequencies
/// are not stored: F(-k) = conj(F(k)) for real input.
#include <algorithm>
#include <complex>
#include <cstddef>
#include <stdexcept>
#include <vector>

namespace tessera {

using cfloat = std::complex<float>;

template <class T>
class Grid {
 public:
  Grid() = default;
  Grid(int nx, int ny, int nz = 1, T fill = T{})
      : nx_(nx), ny_(ny), nz_(nz) {
    if (nx < 0 || ny < 0 || nz < 0) throw std::invalid_argument("Grid: negative dimension");
    data_.assign(static_cast<std::size_t>(nx) * ny * nz, fill);
  }

  int nx() const { return nx_; }
  int ny() const { return ny_; }
  int nz() const { return nz_; }
  std::size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  bool same_shape(const Grid& o) const { return nx_ == o.nx_ && ny_ == o.ny_ && nz_ == o.nz_; }
  template <class U>
  bool same_shape(const Grid<U>& o) const { return nx_ == o.nx() && ny_ == o.ny() && nz_ == o.nz(); }

  std::size_t index(int x, int y, int z = 0) const {
    return (static_cast<std::size_t>(z) * ny_ + y) * nx_ + x;
  }
  T& operator()(int x, int y, int z = 0) { return data_[index(x, y, z)]; }
  const T& operator()(int x, int y, int z = 0) const { return data_[index(x, y, z)]; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  std::vector<T>& values() { return data_; }
  const std::vector<T>& values() const { return data_; }

  /// Pointer to the first element of section z (image z of a stack).
  T* section(int z) { return data_.data() + static_cast<std::size_t>(z) * nx_ * ny_; }
  const T* section(int z) const { return data_.data() + static_cast<std::size_t>(z) * nx_ * ny_; }

  void fill(T v) { std::fill(data_.begin(), data_.end(), v); }

 private:
  int nx_ = 0, ny_ = 0, nz_ = 0;
  std::vector<T> data_;
};

using RealGrid = Grid<float>;
using ComplexGrid = Grid<cfloat>;

/// Signed frequency of Fourier index i on an axis of n samples (y and z axes
/// of the half-complex layout): i for i <= n/2, i - n above.
inline int fourier_index(int i, int n) { return i <= n / 2 ? i : i - n; }
/// Storage index of signed frequency k on an axis of n samples.
inline int fourier_storage(int k, int n) { return k >= 0 ? k : k + n; }

}  // namespace tessera
