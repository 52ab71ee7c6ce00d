#pragma once
/// Per-optics-group aberrations beyond defocus and Cs, in RELION 3.1's convention
/// (docs/ctf_refine.md, "Aberrations"), so that sets move between RELION and
/// Tessera with the same meaning. Learned from RELION 3.1.3's source
/// (src/jaz/obs_model.cpp getPhaseCorrection/getGammaOffset, src/jaz/math/Zernike.cpp,
/// src/jaz/ctf/tilt_helper.cpp insertTilt/extractTilt, src/ctf.h getCTF):
///
/// - Zernike polynomials Z_n^m(x, y) = R_n^m(r) cos(m theta) for m >= 0 and
///   R_n^|m|(r) sin(|m| theta) for m < 0, with the usual radial polynomials
///   R_n^m(r) = sum_k (-1)^k (n-k)! / (k! ((n+m)/2-k)! ((n-m)/2-k)!) r^(n-2k),
///   evaluated at the frequency itself in 1/A, NOT normalized to a pupil:
///   (x, y) = M k with k in 1/A and M the group's rlnMagMat (identity by default).
///   A coefficient of an order-n term is thus in radians * A^n.
/// - rlnOddZernike index i: k = floor((sqrt(1 + 4i) - 1) / 2), n = 2k + 1,
///   m = 2 (i - k^2 - k) - n: i = 0..5 are (m, n) = (-1,1) y, (1,1) x,
///   (-3,3) trefoil sin, (-1,3) coma y (3r^2 - 2) y, (1,3) coma x, (3,3) trefoil cos.
/// - rlnEvenZernike index i: k = floor(sqrt(i)), n = 2k, m = 2 (i - k^2 - k):
///   i = 0..8 are (0,0) piston, (-2,2), (0,2) defocus-like 2r^2 - 1, (2,2),
///   (-4,4) tetrafoil sin, (-2,4), (0,4) spherical 6r^4 - 6r^2 + 1, (2,4), (4,4) tetrafoil cos.
/// - The odd phase phi(k) = sum_i odd_i Z_i(M k) multiplies the prediction:
///   X(k) = exp(+i phi(k)) * CTF(k) * P(k) (ObservationModel::predictObservation
///   multiplies by getPhaseCorrection = cos phi + i sin phi).
/// - The even phase adds to the CTF's phase: chi(k) -> chi(k) + sum_i even_i Z_i(M k),
///   CTF = -sin(chi) (ctf.h getCTF's gammaOffset).
/// - Beam tilt (rlnBeamTiltX/Y, mrad) is odd: with S = 2 pi Cs lambda^2 * 1e-3
///   (Cs in A, lambda in A; = 20000 pi Cs_mm lambda^2), RELION's insertTilt puts
///   Z3x = -S tx / 3 into odd[4], Z3y = -S ty / 3 into odd[3] (replacing them) and
///   adds 2 Z3x to odd[1], 2 Z3y to odd[0]; together
///   phi_tilt(k) = -S |k|^2 (k . t) with t = (tx, ty) in mrad (k = M k as above).
///   extractTilt does the reverse, leaving odd[3] = odd[4] = 0.
#include <array>
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/particles.hpp"

namespace tessera {

/// A Zernike term Z_n^m.
struct ZernikeMode {
  int m = 0, n = 0;
};

/// The (m, n) of index i of rlnOddZernike / rlnEvenZernike (above).
ZernikeMode odd_zernike_mode(int i);
ZernikeMode even_zernike_mode(int i);
/// Number of coefficients up to radial order n_max: odd 2 for 1, 6 for 3; even 4 for 2, 9 for 4.
int odd_zernike_count(int n_max);
int even_zernike_count(int n_max);

/// Z_n^m at (x, y), unnormalized radius (above). Throws std::invalid_argument for |m| > n or n - |m| odd.
double zernike(ZernikeMode z, double x, double y);

/// The coefficient of r^(n-2j) in R_n^|m|(r): (-1)^j (n-j)! / (j! ((n+|m|)/2-j)! ((n-|m|)/2-j)!).
double zernike_radial_coefficient(ZernikeMode z, int j);

/// sum_i c_i Z_i(x, y) over odd (even) indices i.
double odd_zernike_sum(const std::vector<double>& c, double x, double y);
double even_zernike_sum(const std::vector<double>& c, double x, double y);

/// S of the header (radians * A^3 per mrad): the beam tilt's phase is -S |k|^2 (k . t).
double beam_tilt_phase_scale(double cs_mm, double voltage_kV);

/// The odd coefficients the model applies for a group (RELION's insertTilt of the
/// group's beam tilt into its rlnOddZernike, above); empty when the group has none.
std::vector<double> effective_odd_zernike(const OpticsGroup& g);

/// Splits total odd coefficients into a beam tilt and the rest, as RELION's
/// extractTilt writes them: tilt from odd[3], odd[4] (mrad); odd[3] = odd[4] = 0
/// and odd[0], odd[1] less the tilt's linear part. Resizes odd to at least 5.
void extract_beam_tilt(std::vector<double>& odd, double cs_mm, double voltage_kV, double& tilt_x_mrad,
                       double& tilt_y_mrad);

/// Whether a group has any odd (beam tilt or odd Zernike) or even aberration.
bool has_odd_aberrations(const OpticsGroup& g);
bool has_even_aberrations(const OpticsGroup& g);

/// The group's odd phase phi(k) in radians at k (1/A) (magnification applied as above).
double odd_phase(const OpticsGroup& g, double kx_invA, double ky_invA);

/// exp(+i phi(k)) on the half-complex grid of a box x box image of g.pixel_A
/// (component (x, y) at k = (x, fourier_index(y, box)) / (box pixel_A), as ctf_image);
/// all ones when the group has no odd aberration, and 1 on the Nyquist column and row
/// (x or y = box/2), whose pairs of mates an odd phase cannot treat consistently.
ComplexGrid odd_phase_factor(const OpticsGroup& g, int box);

/// Multiplies a half-complex transform by the factor (Apply: exp(+i phi), what the
/// microscope does, used by the simulator and by predictions in the image's own
/// frame) or by its conjugate (Remove: what the particle reader does to images).
enum class OddPhase { Apply, Remove };
void multiply_odd_phase(ComplexGrid& transform, const ComplexGrid& factor, OddPhase direction);

}  // namespace tessera
