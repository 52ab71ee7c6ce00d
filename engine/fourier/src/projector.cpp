#include "tessera/projector.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "tessera/fft.hpp"

namespace tessera {
namespace {

// Signed padded frequency -> storage index, or -1 when outside the grid.
inline int storage_or_none(int k, int n) {
  if (k <= -n / 2 || k >= n / 2) return -1;
  return fourier_storage(k, n);
}

double default_radius(int box, std::optional<double> r) {
  const double rmax = r.value_or(box / 2.0);
  if (rmax <= 0 || rmax > box / 2.0) throw std::invalid_argument("max_radius_px must be in (0, box/2]");
  return rmax;
}

// Visit the 2D frequencies of a half-complex box x box image within rmax,
// with their padded 3D coordinates under rotation a: A^T (kx, ky, kz) with
// kz = curvature_px * (kx^2 + ky^2) (0: the central slice; else an Ewald sheet).
template <class F>
void for_each_slice_point(int box, int pad, double rmax, const Mat3& a, double curvature_px, F&& f) {
  const int hx = box / 2 + 1;
  const double r2max = rmax * rmax;
  for (int iy = 0; iy < box; ++iy) {
    const int ky = fourier_index(iy, box);
    for (int ix = 0; ix < hx; ++ix) {
      const double k2 = double(ix) * ix + double(ky) * ky;
      if (k2 > r2max) continue;
      // A^T (kx, ky, kz) = kx * row0(A) + ky * row1(A) + kz * row2(A)
      double x = pad * (ix * a[0][0] + ky * a[1][0]);
      double y = pad * (ix * a[0][1] + ky * a[1][1]);
      double z = pad * (ix * a[0][2] + ky * a[1][2]);
      if (curvature_px != 0) {
        const double kz = pad * curvature_px * k2;
        x += kz * a[2][0], y += kz * a[2][1], z += kz * a[2][2];
      }
      f(ix, iy, x, y, z);
    }
  }
}

// A point (x, y, z) of the padded half-transform (pbox^3, stored for x >= 0)
// as the lower corner of its trilinear cell and the fractions within it; a
// point with x < 0 is taken at its Friedel mate (-x, -y, -z), and `conjugate`
// says so.
struct Cell {
  int x0, y0, z0;
  float fx, fy, fz;
  bool conjugate;
};

Cell cell_of(double x, double y, double z) {
  const bool conjugate = x < 0;
  if (conjugate) x = -x, y = -y, z = -z;
  const int x0 = static_cast<int>(std::floor(x)), y0 = static_cast<int>(std::floor(y)),
            z0 = static_cast<int>(std::floor(z));
  return {x0, y0, z0, static_cast<float>(x - x0), static_cast<float>(y - y0), static_cast<float>(z - z0), conjugate};
}

// Calls f(xs, ys, zs, w) for each of the cell's eight corners that the padded
// half-transform stores, with its storage indices and trilinear weight w; the
// corners outside it are skipped.
template <class F>
void for_each_stored_corner(const Cell& c, int pbox, F&& f) {
  const int hx = pbox / 2 + 1;
  for (int dz = 0; dz < 2; ++dz) {
    const int zs = storage_or_none(c.z0 + dz, pbox);
    if (zs < 0) continue;
    const float wz = dz ? c.fz : 1 - c.fz;
    for (int dy = 0; dy < 2; ++dy) {
      const int ys = storage_or_none(c.y0 + dy, pbox);
      if (ys < 0) continue;
      const float wy = (dy ? c.fy : 1 - c.fy) * wz;
      for (int dx = 0; dx < 2; ++dx) {
        const int xs = c.x0 + dx;
        if (xs >= hx) continue;
        f(xs, ys, zs, (dx ? c.fx : 1 - c.fx) * wy);
      }
    }
  }
}

RealGrid pad_volume(const RealGrid& v, int pbox) {
  const int n = v.nx(), off = pbox / 2 - n / 2;
  RealGrid out(pbox, pbox, pbox);
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) out(x + off, y + off, z + off) = v(x, y, z);
  return out;
}

}  // namespace

double trilinear_gridding_kernel(double r_px, int box, int padding) {
  const double u = r_px / (double(padding) * box);
  if (u == 0.0) return 1.0;
  const double s = std::sin(std::numbers::pi * u) / (std::numbers::pi * u);
  return s * s;
}

Projector::Projector(const RealGrid& volume, int padding, std::optional<double> max_radius_px)
    : Projector(volume, padding, max_radius_px, volume.nx()) {}

// `volume` is on the grid the transform is held on (n^3); the projector serves a box of
// logical_box >= n, whose frequencies (in its pixels) are the grid's up to n / 2.
Projector::Projector(const RealGrid& volume, int padding, std::optional<double> max_radius_px, int logical_box)
    : box_(logical_box), pad_(padding), pbox_(padding * volume.nx()) {
  const int n = volume.nx();
  if (volume.ny() != n || volume.nz() != n || n < 2) throw std::invalid_argument("Projector: the volume must be cubic");
  if (padding < 1) throw std::invalid_argument("Projector: padding must be >= 1");
  rmax_ = std::min(default_radius(box_, max_radius_px), n / 2.0);
  RealGrid corrected = volume;
  const int c = n / 2;
  for (int z = 0; z < n; ++z)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        const double r = std::sqrt(double(x - c) * (x - c) + double(y - c) * (y - c) + double(z - c) * (z - c));
        corrected(x, y, z) = static_cast<float>(volume(x, y, z) / trilinear_gridding_kernel(r, n, pad_));
      }
  RealGrid padded = pad_volume(corrected, pbox_);
  centre_to_corner(padded, true);
  data_ = fft_3d(padded);
}

Projector Projector::band_limited(const RealGrid& volume, double band_limit_px, int padding) {
  const int box = volume.nx(), n = band_limited_box(box, band_limit_px);
  if (n >= box) return Projector(volume, padding);
  // The cropped transform's inverse divides by n^3 where the volume's forward transform summed
  // box^3 voxels, so the coarse grid's transform is the volume's at every kept frequency: the
  // projections agree with the full projector's without scaling.
  RealGrid corner = volume;
  centre_to_corner(corner, true);
  RealGrid coarse = ifft_3d(resize_spectrum(fft_3d(corner), box, n), n);
  corner = RealGrid();
  corner_to_centre(coarse, true);
  return Projector(coarse, padding, band_limit_px, box);
}

cfloat Projector::sample(double x, double y, double z) const {
  const Cell c = cell_of(x, y, z);
  const int x0 = c.x0, y0 = c.y0, z0 = c.z0;
  const float fx = c.fx, fy = c.fy, fz = c.fz;
  const int hx = pbox_ / 2 + 1, half = pbox_ / 2;
  if (x0 + 1 < hx && y0 > -half && y0 + 1 < half && z0 > -half && z0 + 1 < half) {
    // Fast path, all eight neighbours inside the grid: real and imaginary
    // parts accumulated separately.
    const int y1 = fourier_storage(y0 + 1, pbox_), z1 = fourier_storage(z0 + 1, pbox_);
    const int ys[2] = {fourier_storage(y0, pbox_), y1}, zs[2] = {fourier_storage(z0, pbox_), z1};
    const float wx[2] = {1 - fx, fx}, wy[2] = {1 - fy, fy}, wz[2] = {1 - fz, fz};
    float re = 0, im = 0;
    for (int dz = 0; dz < 2; ++dz)
      for (int dy = 0; dy < 2; ++dy) {
        const cfloat* row = &data_(x0, ys[dy], zs[dz]);
        const float w = wy[dy] * wz[dz];
        re += w * (wx[0] * row[0].real() + wx[1] * row[1].real());
        im += w * (wx[0] * row[0].imag() + wx[1] * row[1].imag());
      }
    return cfloat(re, c.conjugate ? -im : im);
  }
  cfloat acc(0, 0);
  for_each_stored_corner(c, pbox_, [&](int xs, int ys, int zs, float w) { acc += data_(xs, ys, zs) * w; });
  return c.conjugate ? std::conj(acc) : acc;
}

void Projector::project(const Mat3& a, ComplexGrid& out) const { project_curved(a, 0.0, out); }

void Projector::project_curved(const Mat3& a, double curvature_px, ComplexGrid& out) const {
  if (out.nx() != box_ / 2 + 1 || out.ny() != box_ || out.nz() != 1) out = ComplexGrid(box_ / 2 + 1, box_);
  out.fill(cfloat(0, 0));
  for_each_slice_point(box_, pad_, rmax_, a, curvature_px,
                       [&](int ix, int iy, double x, double y, double z) { out(ix, iy) = sample(x, y, z); });
}

void Projector::project_points(const Mat3& a, const float* kx, const float* ky, std::size_t n, cfloat* out) const {
  const double p = pad_;
  const double ax = p * a[0][0], ay = p * a[0][1], az = p * a[0][2];
  const double bx = p * a[1][0], by = p * a[1][1], bz = p * a[1][2];
  for (std::size_t j = 0; j < n; ++j)
    out[j] = sample(kx[j] * ax + ky[j] * bx, kx[j] * ay + ky[j] * by, kx[j] * az + ky[j] * bz);
}

RealGrid Projector::project_image(const Mat3& a) const {
  ComplexGrid f;
  project(a, f);
  RealGrid img = ifft_2d(f, box_);
  corner_to_centre(img, false);
  return img;
}

AccumulationQuanta AccumulationQuanta::for_power(double max_shell_power) {
  AccumulationQuanta q;
  if (max_shell_power > 0 && std::isfinite(max_shell_power))
    q.data = std::ldexp(1.0, static_cast<int>(std::floor(std::log2(std::sqrt(max_shell_power)))) - 28);
  return q;
}

namespace {

// A contribution in units of the quantum (see AccumulationQuanta).
inline std::int64_t to_units(double value, double inv_quantum) {
  const double u = value * inv_quantum;
  if (!(std::abs(u) < 0x1p50))
    throw std::overflow_error("back-projection: a contribution exceeds the fixed-point range (image values too large "
                              "for the accumulation quantum, or not finite)");
  return std::llrint(u);
}

inline void add_units(std::int64_t& sum, std::int64_t v) {
  std::atomic_ref<std::int64_t>(sum).fetch_add(v, std::memory_order_relaxed);
}

}  // namespace

BackProjector::BackProjector(int box, int padding, std::optional<double> max_radius_px, std::vector<Mat3> symmetry,
                             AccumulationQuanta quanta)
    : box_(box), pad_(padding), pbox_(padding * box), rmax_(default_radius(box, max_radius_px)),
      symmetry_(std::move(symmetry)), quanta_(quanta), inv_data_q_(1.0 / quanta.data),
      inv_weight_q_(1.0 / quanta.weight) {
  if (padding < 1) throw std::invalid_argument("BackProjector: padding must be >= 1");
  if (!(quanta.data > 0) || !(quanta.weight > 0)) throw std::invalid_argument("BackProjector: quanta must be positive");
  if (symmetry_.empty()) symmetry_.push_back(identity3());
  // Inserted points lie within pad * rmax of the origin, their trilinear corners within sqrt(3) more.
  const double reach = pad_ * rmax_ + 2;
  row_start_.resize(static_cast<std::size_t>(pbox_) * pbox_);
  row_length_.resize(row_start_.size());
  std::int64_t voxels = 0;
  for (int zs = 0; zs < pbox_; ++zs) {
    const double z = fourier_index(zs, pbox_);
    for (int ys = 0; ys < pbox_; ++ys) {
      const double y = fourier_index(ys, pbox_), r2 = reach * reach - y * y - z * z;
      const int len = r2 < 0 ? 0 : std::min(pbox_ / 2 + 1, static_cast<int>(std::floor(std::sqrt(r2))) + 1);
      const std::size_t row = static_cast<std::size_t>(zs) * pbox_ + ys;
      row_start_[row] = voxels;
      row_length_[row] = len;
      voxels += len;
    }
  }
  sums_.assign(static_cast<std::size_t>(voxels) * 3, 0);
}

void BackProjector::splat(double x, double y, double z, cfloat value, float weight) {
  const Cell c = cell_of(x, y, z);
  if (c.conjugate) value = std::conj(value);
  for_each_stored_corner(c, pbox_, [&](int xs, int ys, int zs, float w) {
    const std::size_t row = static_cast<std::size_t>(zs) * pbox_ + ys;
    if (xs >= row_length_[row]) return;
    std::int64_t* v = &sums_[3 * static_cast<std::size_t>(row_start_[row] + xs)];
    add_units(v[0], to_units(double(value.real()) * w, inv_data_q_));
    add_units(v[1], to_units(double(value.imag()) * w, inv_data_q_));
    add_units(v[2], to_units(double(weight) * w, inv_weight_q_));
  });
}

void BackProjector::insert_one(const ComplexGrid& data, const RealGrid& weight, const Mat3& a, double curvature_px) {
  for_each_slice_point(box_, pad_, rmax_, a, curvature_px, [&](int ix, int iy, double x, double y, double z) {
    splat(x, y, z, data(ix, iy), weight(ix, iy));
  });
}

void BackProjector::insert(const ComplexGrid& data, const RealGrid& weight, const Mat3& a) {
  insert(data, weight, a, 0.0);
}

void BackProjector::insert(const ComplexGrid& data, const RealGrid& weight, const Mat3& a, double curvature_px) {
  if (data.nx() != box_ / 2 + 1 || data.ny() != box_ || !weight.same_shape(data))
    throw std::invalid_argument("BackProjector::insert: image transform of the wrong shape");
  for (const Mat3& r : symmetry_) insert_one(data, weight, multiply(a, r), curvature_px);
}

void BackProjector::add(const BackProjector& other) {
  if (other.box_ != box_ || other.pad_ != pad_ || other.rmax_ != rmax_ || !(other.quanta_ == quanta_))
    throw std::invalid_argument("BackProjector::add: shapes or quanta differ");
  for (std::size_t i = 0; i < sums_.size(); ++i) sums_[i] += other.sums_[i];
}

template <class F>
void BackProjector::for_each_stored(F&& f) const {
  for (int zs = 0; zs < pbox_; ++zs)
    for (int ys = 0; ys < pbox_; ++ys) {
      const std::size_t row = static_cast<std::size_t>(zs) * pbox_ + ys;
      const std::int64_t* v = &sums_[3 * static_cast<std::size_t>(row_start_[row])];
      for (int x = 0; x < row_length_[row]; ++x, v += 3) f(x, ys, zs, v);
    }
}

namespace {

// Storage index on an axis of pbox samples of the frequency stored at index i
// on an axis of pbox_full samples; -1 when the smaller axis does not hold it
// (its Nyquist plane, which has no partner, is left out too). The full axis keeps every index.
int restored_index(int i, int pbox_full, int pbox) {
  if (pbox == pbox_full) return i;
  const int k = fourier_index(i, pbox_full);
  return 2 * std::abs(k) < pbox ? fourier_storage(k, pbox) : -1;
}

}  // namespace

ComplexGrid BackProjector::expand_data(int pbox) const {
  ComplexGrid data(pbox / 2 + 1, pbox, pbox);
  for_each_stored([&](int x, int y, int z, const std::int64_t* v) {
    const int ys = restored_index(y, pbox_, pbox), zs = restored_index(z, pbox_, pbox);
    if (ys < 0 || zs < 0 || (pbox < pbox_ && 2 * x >= pbox)) return;
    data(x, ys, zs) = cfloat(static_cast<float>(double(v[0]) * quanta_.data), static_cast<float>(double(v[1]) * quanta_.data));
  });
  return data;
}

RealGrid BackProjector::expand_weights(int pbox) const {
  RealGrid weight(pbox / 2 + 1, pbox, pbox);
  for_each_stored([&](int x, int y, int z, const std::int64_t* v) {
    const int ys = restored_index(y, pbox_, pbox), zs = restored_index(z, pbox_, pbox);
    if (ys < 0 || zs < 0 || (pbox < pbox_ && 2 * x >= pbox)) return;
    weight(x, ys, zs) = static_cast<float>(double(v[2]) * quanta_.weight);
  });
  return weight;
}

std::vector<double> BackProjector::mean_weight_per_shell() const {
  const int nshell = box_ / 2 + 1;
  std::vector<double> sum(nshell, 0.0), count(nshell, 0.0);
  for (int z = 0; z < pbox_; ++z) {
    const int kz = fourier_index(z, pbox_);
    for (int y = 0; y < pbox_; ++y) {
      const int ky = fourier_index(y, pbox_);
      const std::size_t row = static_cast<std::size_t>(z) * pbox_ + y;
      for (int x = 0; x < pbox_ / 2 + 1; ++x) {
        const int shell = static_cast<int>(std::lround(std::sqrt(double(x) * x + double(ky) * ky + double(kz) * kz) / pad_));
        if (shell >= nshell) continue;
        if (x < row_length_[row]) sum[shell] += double(sums_[3 * static_cast<std::size_t>(row_start_[row] + x) + 2]);
        count[shell] += 1;
      }
    }
  }
  for (int s = 0; s < nshell; ++s) sum[s] = count[s] > 0 ? sum[s] * quanta_.weight / count[s] : 0.0;
  return sum;
}

std::vector<double> BackProjector::shell_means(const RealGrid& w, int box, int pad) {
  const int pbox = w.ny(), nshell = box / 2 + 1;
  std::vector<double> sum(nshell, 0.0), count(nshell, 0.0);
  for (int z = 0; z < pbox; ++z) {
    const int kz = fourier_index(z, pbox);
    for (int y = 0; y < pbox; ++y) {
      const int ky = fourier_index(y, pbox);
      for (int x = 0; x < pbox / 2 + 1; ++x) {
        const int shell = static_cast<int>(std::lround(std::sqrt(double(x) * x + double(ky) * ky + double(kz) * kz) / pad));
        if (shell >= nshell) continue;
        sum[shell] += w(x, y, z);
        count[shell] += 1;
      }
    }
  }
  for (int s = 0; s < nshell; ++s) sum[s] = count[s] > 0 ? sum[s] / count[s] : 0.0;
  return sum;
}

}  // namespace tessera
