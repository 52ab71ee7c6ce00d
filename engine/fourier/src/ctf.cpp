#include "tessera/ctf.hpp"

#include <algorithm>

#include "tessera/aberrations.hpp"

#include <cmath>
#include <numbers>

namespace tessera {

CtfParams CtfParams::of(const Particle& p, const OpticsGroup& g) {
  CtfParams c;
  c.defocus_u_A = p.defocus_u_A;
  c.defocus_v_A = p.defocus_v_A;
  c.defocus_angle_deg = p.defocus_angle_deg;
  c.voltage_kV = g.voltage_kV;
  c.cs_mm = g.cs_mm;
  c.amplitude_contrast = g.amplitude_contrast;
  c.phase_shift_deg = p.phase_shift_deg;
  c.bfactor_A2 = p.ctf_bfactor;
  c.scale = p.scale;
  c.mag_matrix = g.mag_matrix;
  c.even_zernike = g.even_zernike;
  return c;
}

double electron_wavelength_A(double voltage_kV) {
  const double v = voltage_kV * 1e3;
  return 12.2643247 / std::sqrt(v * (1.0 + v * 0.978466e-6));
}

Ctf::Ctf(const CtfParams& p) {
  constexpr double pi = std::numbers::pi;
  const double lambda = electron_wavelength_A(p.voltage_kV);
  const double cs_A = p.cs_mm * 1e7;
  k1_ = pi * lambda;
  k2_ = pi / 2.0 * cs_A * lambda * lambda * lambda;
  const double q0 = p.amplitude_contrast;
  k3_ = std::atan(q0 / std::sqrt(1.0 - q0 * q0));
  k4_ = -p.bfactor_A2 / 4.0;
  k5_ = p.phase_shift_deg * pi / 180.0;
  scale_ = p.scale;
  dz_mean_ = -(p.defocus_u_A + p.defocus_v_A) / 2.0;
  dz_dev_ = -(p.defocus_u_A - p.defocus_v_A) / 2.0;
  azimuth_rad_ = p.defocus_angle_deg * pi / 180.0;
  mag_ = p.mag_matrix;
  magnified_ = mag_ != std::array<double, 4>{1, 0, 0, 1};
  constexpr std::size_t kOrder4 = 9;  // even Zernike indices 0..8 are the orders 0, 2 and 4
  even_.assign(p.even_zernike.begin(), p.even_zernike.begin() + std::min(kOrder4, p.even_zernike.size()));
  if (p.even_zernike.size() > kOrder4) {
    even_above_4_ = p.even_zernike;
    std::fill(even_above_4_.begin(), even_above_4_.begin() + kOrder4, 0.0);
  }
}

RadialPhase Ctf::undistorted_phase_along(double angle_rad) const {
  const double dz = dz_mean_ + dz_dev_ * std::cos(2.0 * (angle_rad - azimuth_rad_));
  RadialPhase r{-k5_ - k3_, k1_ * dz, k2_};
  // Even Zernike terms of order <= 4 along the angle: R_n^|m|(r) = sum_j c_j r^(n-2j), a polynomial in s = r^2.
  for (std::size_t i = 0; i < even_.size(); ++i) {
    if (even_[i] == 0) continue;
    const ZernikeMode z = even_zernike_mode(static_cast<int>(i));
    const double angular = z.m >= 0 ? std::cos(z.m * angle_rad) : std::sin(-z.m * angle_rad);
    double* powers[3] = {&r.c0, &r.c1, &r.c2};
    for (int j = 0; j <= (z.n - std::abs(z.m)) / 2; ++j)
      *powers[(z.n - 2 * j) / 2] += even_[i] * angular * zernike_radial_coefficient(z, j);
  }
  return r;
}

RadialPhase Ctf::phase_along(double angle_rad) const {
  if (!magnified_) return undistorted_phase_along(angle_rad);
  const double ux = std::cos(angle_rad), uy = std::sin(angle_rad);
  const double wx = mag_[0] * ux + mag_[1] * uy, wy = mag_[2] * ux + mag_[3] * uy, w2 = wx * wx + wy * wy;
  RadialPhase r = undistorted_phase_along(std::atan2(wy, wx));
  r.c1 *= w2;
  r.c2 *= w2 * w2;
  return r;
}

double Ctf::phase(double kx, double ky) const {
  if (magnified_) {
    const double x = mag_[0] * kx + mag_[1] * ky, y = mag_[2] * kx + mag_[3] * ky;
    kx = x, ky = y;
  }
  const double chi = undistorted_phase_along(std::atan2(ky, kx)).at(kx * kx + ky * ky);
  return even_above_4_.empty() ? chi : chi + even_zernike_sum(even_above_4_, kx, ky);
}

float Ctf::operator()(double kx, double ky) const {
  if (magnified_) {  // the envelope at M k too (RELION's getCTF); phase() distorts its own copy
    const double v = -std::sin(phase(kx, ky)) * scale_;
    const double x = mag_[0] * kx + mag_[1] * ky, y = mag_[2] * kx + mag_[3] * ky;
    return static_cast<float>(k4_ != 0.0 ? v * std::exp(k4_ * (x * x + y * y)) : v);
  }
  double v = -std::sin(phase(kx, ky)) * scale_;
  if (k4_ != 0.0) v *= std::exp(k4_ * (kx * kx + ky * ky));
  return static_cast<float>(v);
}

RealGrid ctf_image(const CtfParams& p, int nx, int ny, double pixel_A) {
  const Ctf ctf(p);
  const int hx = nx / 2 + 1;
  RealGrid out(hx, ny);
  for (int y = 0; y < ny; ++y) {
    const double ky = fourier_index(y, ny) / (ny * pixel_A);
    for (int x = 0; x < hx; ++x) out(x, y) = ctf(x / (nx * pixel_A), ky);
  }
  return out;
}

}  // namespace tessera
