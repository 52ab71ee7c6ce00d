#include "tessera/ctf.hpp"

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
}

RadialPhase Ctf::phase_along(double angle_rad) const {
  const double dz = dz_mean_ + dz_dev_ * std::cos(2.0 * (angle_rad - azimuth_rad_));
  return {-k5_ - k3_, k1_ * dz, k2_};
}

double Ctf::phase(double kx, double ky) const {
  return phase_along(std::atan2(ky, kx)).at(kx * kx + ky * ky);
}

float Ctf::operator()(double kx, double ky) const {
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
