#pragma once
/// Contrast transfer function in RELION's model (src/ctf.h):
///   CTF(k) = -scale * exp(-B |k|^2 / 4) * sin(chi(k))
///   chi(k) = pi * lambda * dz(k) * |k|^2 + (pi/2) * Cs * lambda^3 * |k|^4 - phase_shift - atan(Q0 / sqrt(1 - Q0^2))
///   dz(k)  = -(dU + dV)/2 - (dU - dV)/2 * cos(2 (angle(k) - defocus_angle))
/// with k in 1/Angstrom, lambda the relativistic electron wavelength in
/// Angstrom, Cs in Angstrom. Positive defocus values mean underfocus, and
/// CTF(0) = +sin(atan(Q0/sqrt(1-Q0^2))) = Q0 for scale 1 and no phase shift.
///
/// Anisotropic magnification (CtfParams::mag_matrix, RELION 3.1's rlnMagMat*): the CTF of image
/// frequency k is the model above at M k, envelope included, as RELION's CTF::getCTF,
/// getLowOrderGamma and getGammaGrad do (src/ctf.h, src/ctf.cpp: X' = M00 X + M01 Y,
/// Y' = M10 X + M11 Y). M maps the observed image's frequency to the undistorted one, the same
/// M that the projection uses (forward_model.hpp); defocus and astigmatism are therefore in the
/// undistorted frame. The identity leaves every value bit for bit as without it.
#include <array>
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/particles.hpp"

namespace tessera {

struct CtfParams {
  double defocus_u_A = 10000, defocus_v_A = 10000, defocus_angle_deg = 0;
  double voltage_kV = 300, cs_mm = 2.7, amplitude_contrast = 0.1;
  double phase_shift_deg = 0, bfactor_A2 = 0, scale = 1;
  /// The optics group's magnification matrix (M00, M01, M10, M11): k is evaluated at M k (above).
  std::array<double, 4> mag_matrix{1, 0, 0, 1};
  /// The optics group's even aberrations (rlnEvenZernike, aberrations.hpp): chi(k) gains
  /// sum_i even_zernike[i] Z_i(M k), k in 1/A, as RELION's gammaOffset.
  std::vector<double> even_zernike;

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
  /// equals phase_along(a).at(k^2), with a magnification matrix too (M u = |M u| (cos b, sin b):
  /// the undistorted phase along b with s scaled by |M u|^2). Even aberrations of order above 4,
  /// not a polynomial of degree 2 in k^2, are left out of it (phase() has them).
  RadialPhase phase_along(double angle_rad) const;

 private:
  RadialPhase undistorted_phase_along(double angle_rad) const;
  std::vector<double> even_;          // rlnEvenZernike up to order 4 (part of phase_along)
  std::vector<double> even_above_4_;  // the higher orders (indices 9 on; phase() adds them)
  bool magnified_ = false;
  std::array<double, 4> mag_{1, 0, 0, 1};
  double k1_, k2_, k3_, k4_, k5_, scale_;
  double dz_mean_, dz_dev_, azimuth_rad_;
};

/// The CTF on a half-complex grid of an nx * ny image with pixel size pixel_A:
/// a real (nx/2+1) * ny grid laid out like the image's FFT (grid.hpp).
RealGrid ctf_image(const CtfParams& p, int nx, int ny, double pixel_A);

}  // namespace tessera
