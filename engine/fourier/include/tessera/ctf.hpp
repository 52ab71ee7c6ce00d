#pragma once
/// Contrast transfer function in RELION's model (src/ctf.h):
///   CTF(k) = -scale * exp(-B |k|^2 / 4) * sin(chi(k))
///   chi(k) = pi * lambda * dz(k) * |k|^2 + (pi/2) * Cs * lambda^3 * |k|^4 - phase_shift - atan(Q0 / sqrt(1 - Q0^2))
///   dz(k)  = -(dU + dV)/2 - (dU - dV)/2 * cos(2 (angle(k) - defocus_angle))
/// with k in 1/Angstrom, lambda the relativistic electron wavelength in
/// Angstrom, Cs in Angstrom. Positive defocus values mean underfocus, and
/// CTF(0) = +sin(atan(Q0/sqrt(1-Q0^2))) = Q0 for scale 1 and no phase shift.
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/particles.hpp"

namespace tessera {

struct CtfParams {
  double defocus_u_A = 10000, defocus_v_A = 10000, defocus_angle_deg = 0;
  double voltage_kV = 300, cs_mm = 2.7, amplitude_contrast = 0.1;
  double phase_shift_deg = 0, bfactor_A2 = 0, scale = 1;

  static CtfParams of(const Particle& p, const OpticsGroup& g);
};

/// Relativistic electron wavelength in Angstrom for an acceleration voltage in kV.
double electron_wavelength_A(double voltage_kV);

/// chi along one direction of frequency space as a polynomial in s = |k|^2
/// (1/A^2): chi(s) = c0 + c1 s + c2 s^2, in radians. c0 = -phase_shift -
/// atan(Q0 / sqrt(1 - Q0^2)), c1 = pi lambda dz(angle), c2 = (pi/2) Cs lambda^3.
struct RadialPhase {
  double c0 = 0, c1 = 0, c2 = 0;
  double at(double s_invA2) const { return c0 + c1 * s_invA2 + c2 * s_invA2 * s_invA2; }
};

/// Precomputed constants of one CTF; evaluate at frequency (kx, ky) in 1/A.
class Ctf {
 public:
  explicit Ctf(const CtfParams& p);
  float operator()(double kx_invA, double ky_invA) const;
  /// The phase chi(k) of the model above, in radians: CTF = -scale * envelope * sin(chi).
  double phase(double kx_invA, double ky_invA) const;
  /// chi along the direction at `angle_rad` (from +x towards +y); phase(k cos a, k sin a)
  /// equals phase_along(a).at(k^2).
  RadialPhase phase_along(double angle_rad) const;

 private:
  double k1_, k2_, k3_, k4_, k5_, scale_;
  double dz_mean_, dz_dev_, azimuth_rad_;
};

/// The CTF on a half-complex grid of an nx * ny image with pixel size pixel_A:
/// a real (nx/2+1) * ny grid laid out like the image's FFT (grid.hpp).
RealGrid ctf_image(const CtfParams& p, int nx, int ny, double pixel_A);

}  // namespace tessera
