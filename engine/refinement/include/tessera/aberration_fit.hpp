#pragma once
/// Estimating the odd (beam tilt, odd Zernike) and even (even Zernike) aberrations of each
/// optics group from the particles at their poses, as RELION 3.1's ctf_refine does
/// (Zivanov, Nakane & Scheres 2020, IUCrJ 7:253; conventions in aberrations.hpp).
///
/// The images are read through ParticleImageReader, so they arrive corrected for the group's
/// current odd aberrations, and the CTF (model_ctf) holds its current even ones: what is
/// measured is the residual, which is fitted and added to the current values.
///
/// Odd: per Fourier pixel k of the group's box, z(k) = sum over particles conj(a CTF P)(k) X(k)
/// (P the reference's projection at the pose, shifted by the origin; a the contrast scale;
/// X the image). Under white Gaussian noise the log-likelihood of a residual phase phi is
/// sum_k Re(exp(-i phi(k)) z(k)) / sigma^2 + const, so phi is fitted to maximize that sum:
/// first a weighted least-squares fit of the basis to arg z(k) (weights |z(k)|), then
/// Gauss-Newton steps on the likelihood itself (the linear fit alone is biased by wrapped and
/// noisy phases).
/// Even: X = a E P (-sin(chi + d)) + noise is linear in (cos d, sin d), so per pixel RELION's
/// sums A = sum |aEP|^2 [[s^2, s c], [s c, c^2]], b = -sum Re(conj(aEP) X) (s, c), s = sin chi,
/// c = cos chi, give the per-pixel least-squares (cos d, sin d) = A^-1 b, and the cost of a
/// phase d is v^T A v - 2 b^T v with v = (cos d, sin d) (up to a constant); again a weighted
/// linear fit of atan2 (weights sqrt(det A), as RELION) and Gauss-Newton on the cost.
/// No noise weighting (white noise assumed, as RELION).
#include <array>
#include <optional>
#include <span>
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/particles.hpp"

namespace tessera {

struct AberrationFitOptions {
  bool beam_tilt = false;  ///< fit the beam tilt alone (2 parameters; a linear phase, i.e. a shift, as nuisance)
  int odd_order = 0;       ///< fit odd Zernike terms up to this radial order (3: tilt and trefoil); 0: none
  int even_order = 0;      ///< fit even Zernike terms up to this radial order (4); 0: none
  double min_res_A = 20;   ///< lowest resolution used (Angstrom)
  std::optional<double> max_res_A;  ///< highest; unset: Nyquist
  int threads = 1;
};

/// One optics group's result: the new totals, the fitted change, and the per-pixel residual phases.
struct GroupAberrationFit {
  int group = 0;  ///< OpticsGroup::number
  long particles = 0;
  bool odd = false, even = false;  ///< which were fitted
  /// The new values of the group (written by apply_aberration_fits).
  double beam_tilt_x_mrad = 0, beam_tilt_y_mrad = 0;
  std::vector<double> odd_zernike, even_zernike;
  /// The fitted residual: odd Zernike coefficients (with --beam-tilt alone: the tilt's, in
  /// insert form) and even ones, in radians * A^n.
  std::vector<double> odd_change, even_change;
  /// Their standard errors under white Gaussian noise (the inverse Fisher information at the fit,
  /// the noise variance from the residuals |X - a CTF P|^2 at the values before the fit), and the
  /// beam tilt's (x, y), in mrad.
  std::vector<double> odd_change_se, even_change_se;
  std::array<double, 2> beam_tilt_se_mrad{0, 0};
  /// Half-complex (box/2+1) x box grids of the residual phase (radians) measured per pixel and
  /// fitted, and the pixels' weights (0 outside the resolution range).
  RealGrid odd_measured, odd_fitted, odd_weight;
  RealGrid even_measured, even_fitted, even_weight;
};

struct AberrationRefinement {
  std::vector<GroupAberrationFit> groups;  ///< one per optics group that has particles
};

/// Fits the aberrations of every optics group of `set` (particles with poses and CTFs; with
/// two maps each half set against its own map). Odd first; the even fit then reads the images
/// corrected with the new odd values. Deterministic up to the order of floating-point sums
/// across threads.
AberrationRefinement refine_aberrations(const ParticleSet& set, std::span<const RealGrid* const> maps,
                                        const AberrationFitOptions& options);

/// Writes the fits' new values into the set's optics groups.
void apply_aberration_fits(ParticleSet& set, const AberrationRefinement& fits);

/// A half-complex (box/2+1) x box map of a phase as a centred box x box image (for figures):
/// pixel (x, y) of the image is frequency (x - box/2, y - box/2); the half with kx < 0 is
/// filled by symmetry, phase(-k) = sign * phase(k) (sign -1 for odd, +1 for even).
RealGrid centred_phase_image(const RealGrid& half, int sign);

}  // namespace tessera
