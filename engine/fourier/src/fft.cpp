#include "tessera/fft.hpp"

#include <fftw3.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "tessera/parallel.hpp"

namespace tessera {
namespace {

std::mutex& planner_mutex() {
  static std::mutex m;  // FFTW's planner is process-global and not thread-safe
  return m;
}

struct FftwBuffer {
  explicit FftwBuffer(std::size_t bytes) : p(fftwf_malloc(bytes)) {
    if (!p) throw std::bad_alloc();
  }
  ~FftwBuffer() { fftwf_free(p); }
  void* p;
};

void roll(RealGrid& g, bool three_d, bool forward) {
  const int nx = g.nx(), ny = g.ny(), nz = g.nz();
  const int sx = forward ? nx / 2 : nx - nx / 2;
  const int sy = forward ? ny / 2 : ny - ny / 2;
  const int sz = three_d ? (forward ? nz / 2 : nz - nz / 2) : 0;
  RealGrid out(nx, ny, nz);
  for (int z = 0; z < nz; ++z) {
    const int zs = three_d ? (z + sz) % nz : z;
    for (int y = 0; y < ny; ++y) {
      const int ys = (y + sy) % ny;
      for (int x = 0; x < nx; ++x) out(x, y, z) = g((x + sx) % nx, ys, zs);
    }
  }
  g = std::move(out);
}

}  // namespace

struct RealFft::Plans {
  fftwf_plan fwd = nullptr;
  fftwf_plan inv = nullptr;
  ~Plans() {
    std::lock_guard lock(planner_mutex());
    if (fwd) fftwf_destroy_plan(fwd);
    if (inv) fftwf_destroy_plan(inv);
  }
};

RealFft::RealFft(int nx, int ny, int nz, bool three_d, int threads)
    : nx_(nx), ny_(ny), nz_(nz), three_d_(three_d), plans_(std::make_unique<Plans>()) {
  if (nx < 1 || ny < 1 || nz < 1) throw std::invalid_argument("RealFft: empty shape");
  const int hx = nx / 2 + 1;
  const std::size_t nreal = static_cast<std::size_t>(nx) * ny * nz;
  const std::size_t ncplx = static_cast<std::size_t>(hx) * ny * nz;
  FftwBuffer r(nreal * sizeof(float)), c(ncplx * sizeof(fftwf_complex));
  auto* rp = static_cast<float*>(r.p);
  auto* cp = static_cast<fftwf_complex*>(c.p);
  const unsigned flags = FFTW_ESTIMATE | FFTW_UNALIGNED;
  std::lock_guard lock(planner_mutex());
  static const bool threads_ready = fftwf_init_threads() != 0;
  if (three_d) {
    // The thread count is planner state: set for this plan only.
    if (threads > 1 && threads_ready) fftwf_plan_with_nthreads(threads);
    plans_->fwd = fftwf_plan_dft_r2c_3d(nz, ny, nx, rp, cp, flags);
    plans_->inv = fftwf_plan_dft_c2r_3d(nz, ny, nx, cp, rp, flags);
    if (threads > 1 && threads_ready) fftwf_plan_with_nthreads(1);
  } else {
    const int n[2] = {ny, nx};
    plans_->fwd = fftwf_plan_many_dft_r2c(2, n, nz, rp, nullptr, 1, nx * ny, cp, nullptr, 1, hx * ny, flags);
    plans_->inv = fftwf_plan_many_dft_c2r(2, n, nz, cp, nullptr, 1, hx * ny, rp, nullptr, 1, nx * ny, flags);
  }
  if (!plans_->fwd || !plans_->inv) throw std::runtime_error("FFTW could not create a plan");
}

RealFft RealFft::plan_2d(int nx, int ny, int batch) { return RealFft(nx, ny, batch, false, 1); }
RealFft RealFft::plan_3d(int nx, int ny, int nz, int threads) { return RealFft(nx, ny, nz, true, threads); }
RealFft::RealFft(RealFft&&) noexcept = default;
RealFft& RealFft::operator=(RealFft&&) noexcept = default;
RealFft::~RealFft() = default;

void RealFft::forward(const RealGrid& in, ComplexGrid& out) const {
  if (in.nx() != nx_ || in.ny() != ny_ || in.nz() != nz_)
    throw std::invalid_argument("RealFft::forward: grid shape differs from the plan's");
  if (out.nx() != nx_ / 2 + 1 || out.ny() != ny_ || out.nz() != nz_) out = ComplexGrid(nx_ / 2 + 1, ny_, nz_);
  // r2c does not modify its input with the default flags; FFTW's signature is not const.
  fftwf_execute_dft_r2c(plans_->fwd, const_cast<float*>(in.data()), reinterpret_cast<fftwf_complex*>(out.data()));
}

void RealFft::inverse(const ComplexGrid& in, RealGrid& out) const {
  if (in.nx() != nx_ / 2 + 1 || in.ny() != ny_ || in.nz() != nz_)
    throw std::invalid_argument("RealFft::inverse: grid shape differs from the plan's");
  ComplexGrid scratch = in;  // c2r destroys its input
  if (out.nx() != nx_ || out.ny() != ny_ || out.nz() != nz_)
    out = RealGrid(nx_, ny_, nz_);
  fftwf_execute_dft_c2r(plans_->inv, reinterpret_cast<fftwf_complex*>(scratch.data()), out.data());
  const double per_item = three_d_ ? double(nx_) * ny_ * nz_ : double(nx_) * ny_;
  const float norm = static_cast<float>(1.0 / per_item);
  for (auto& v : out.values()) v *= norm;
}

ComplexGrid fft_2d(const RealGrid& image) {
  ComplexGrid out;
  RealFft::plan_2d(image.nx(), image.ny(), image.nz()).forward(image, out);
  return out;
}

RealGrid ifft_2d(const ComplexGrid& f, int nx) {
  RealGrid out;
  RealFft::plan_2d(nx, f.ny(), f.nz()).inverse(f, out);
  return out;
}

ComplexGrid fft_3d(const RealGrid& volume) {
  ComplexGrid out;
  RealFft::plan_3d(volume.nx(), volume.ny(), volume.nz()).forward(volume, out);
  return out;
}

RealGrid ifft_3d(const ComplexGrid& f, int nx, int threads) {
  RealGrid out;
  RealFft::plan_3d(nx, f.ny(), f.nz(), threads).inverse(f, out);
  return out;
}

void centre_to_corner(RealGrid& g, bool three_d) { roll(g, three_d, true); }
void corner_to_centre(RealGrid& g, bool three_d) { roll(g, three_d, false); }

ComplexGrid resize_spectrum(const ComplexGrid& f, int n_in, int n_out) {
  if (f.nx() != n_in / 2 + 1 || f.ny() != n_in || f.nz() != n_in || n_out < 2)
    throw std::invalid_argument(fmt::format("resize_spectrum: a {}x{}x{} grid is not the transform of {}^3", f.nx(),
                                            f.ny(), f.nz(), n_in));
  const int n = std::min(n_in, n_out);
  ComplexGrid out(n_out / 2 + 1, n_out, n_out);
  for (int z = 0; z < n; ++z) {
    const int kz = fourier_index(z, n);
    if (2 * std::abs(kz) >= n) continue;
    for (int y = 0; y < n; ++y) {
      const int ky = fourier_index(y, n);
      if (2 * std::abs(ky) >= n) continue;
      const cfloat* src = &f(0, fourier_storage(ky, n_in), fourier_storage(kz, n_in));
      cfloat* dst = &out(0, fourier_storage(ky, n_out), fourier_storage(kz, n_out));
      for (int x = 0; 2 * x < n; ++x) dst[x] = src[x];
    }
  }
  return out;
}

int fft_friendly_size(int at_least) {
  auto smooth = [](int n) {
    for (int p : {2, 3, 5, 7})
      while (n % p == 0) n /= p;
    return n == 1;
  };
  int n = std::max(2, at_least + at_least % 2);
  while (!smooth(n)) n += 2;
  return n;
}

RealGrid resample_trilinear(const RealGrid& g, int n, int threads) {
  const int m = g.nx();
  if (g.ny() != m || g.nz() != m || m < 1 || n < 1)
    throw std::invalid_argument("resample_trilinear: the grid is not cubic");
  std::vector<int> i0(n), i1(n);
  std::vector<float> f(n);
  for (int x = 0; x < n; ++x) {
    const double u = double(x) * m / n;
    i0[x] = static_cast<int>(std::floor(u));
    f[x] = static_cast<float>(u - i0[x]);
    i1[x] = (i0[x] + 1) % m;
  }
  RealGrid out(n, n, n);
  for_each_particle(n, std::max(1, threads), [&](int, long zl) {
    const int z = static_cast<int>(zl);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        auto at = [&](int zz, int yy) { return (1 - f[x]) * g(i0[x], yy, zz) + f[x] * g(i1[x], yy, zz); };
        const float lo = (1 - f[y]) * at(i0[z], i0[y]) + f[y] * at(i0[z], i1[y]);
        const float hi = (1 - f[y]) * at(i1[z], i0[y]) + f[y] * at(i1[z], i1[y]);
        out(x, y, z) = (1 - f[z]) * lo + f[z] * hi;
      }
  });
  return out;
}

void phase_shift_2d(ComplexGrid& f, int nx, double dx, double dy) {
  const int hx = f.nx(), ny = f.ny();
  if (hx != nx / 2 + 1) throw std::invalid_argument("phase_shift_2d: nx does not match the grid");
  constexpr double two_pi = 2.0 * std::numbers::pi;
  for (int z = 0; z < f.nz(); ++z)
    for (int y = 0; y < ny; ++y) {
      const double py = fourier_index(y, ny) * dy / ny;
      for (int x = 0; x < hx; ++x) {
        const double phase = -two_pi * (x * dx / nx + py);
        f(x, y, z) *= cfloat(static_cast<float>(std::cos(phase)), static_cast<float>(std::sin(phase)));
      }
    }
}

}  // namespace tessera
