#pragma once
/// Anisotropic magnification matrices (RELION 3.1's rlnMagMat00, 01, 10, 11 of an optics group):
/// 2x2 matrices stored row by row {M00, M01, M10, M11}. M maps the observed image's frequency k to
/// the undistorted frequency M k at which the model samples the map and evaluates the CTF
/// (forward_model.hpp, ctf.hpp, docs/ctf_refine.md for RELION's sources).
#include <array>

#include "tessera/particles.hpp"

namespace tessera {

using Mat2 = std::array<double, 4>;  ///< row by row: {m00, m01, m10, m11}

inline constexpr Mat2 kIdentity2{1, 0, 0, 1};

Mat2 multiply(const Mat2& a, const Mat2& b);
/// The inverse; throws std::invalid_argument for a singular matrix.
Mat2 inverse(const Mat2& a);

/// The symmetric matrix of a magnification `anisotropy_percent` stronger along `angle_deg` (from +x
/// towards +y) than across it, with mean 1: R(angle) diag(1 + p/200, 1 - p/200) R(angle)^T, p the
/// percentage. Its singular values differ by p / 100 (RELION's "magnification anisotropy").
Mat2 anisotropic_magnification(double anisotropy_percent, double angle_deg);

/// A matrix's singular values s1 >= s2 as RELION's ctf_refine reports them
/// (MagnificationEstimator::parametricFit: anisotropy |s1 - s2|, mean (s1 + s2) / 2), and the
/// direction of the largest stretch (of frequencies, from +x towards +y, in [0, 180)).
struct MagnificationSummary {
  double mean = 1, anisotropy = 0, major_angle_deg = 0;
};
MagnificationSummary summarize_magnification(const Mat2& m);

/// Re-expresses a particle's defocus (U, V, angle) when its optics group's matrix changes from
/// `from` to `to`, so that the CTF stays the same function of the observed frequency: the
/// defocus term k^T M^T D M k (D the astigmatic defocus form of RELION's CTF::initialise) is kept,
/// D' = T^T D T with T = from * to^-1. RELION does this after fitting a matrix
/// (MagnificationHelper::adaptAstigmatism, src/jaz/optics/magnification_helper.cpp: A' =
/// Mi^T A Mi with Mi the inverse of the fitted change). The simulator uses it with from = the
/// true matrix and to = the identity: the defocus the images show when M is not known.
/// Cs's |M k|^4 term is not re-expressed (it is not a defocus form).
void reexpress_defocus(Particle& p, const Mat2& from, const Mat2& to);

}  // namespace tessera
