#pragma once
/// Fitting each optics group's anisotropic magnification matrix M (magnification.hpp; the model
/// samples the map and evaluates the CTF at M k, forward_model.hpp) from particles at their poses
/// against a reference, as RELION 3.1's ctf_refine --fit_aniso (Zivanov, Nakane & Scheres 2020,
/// IUCrJ 7:253; src/jaz/single_particle/ctf/magnification_estimator.cpp and
/// src/jaz/optics/magnification_helper.cpp):
///
/// With the current matrix M0 the reference's projection is P(k) = V(A^T M0 k). An image made
/// with M = M0 (I + E) holds P((I + E) k) ~ P(k) + grad P(k) . (E k): at every Fourier pixel the
/// observation is displaced along the projection's gradient by E k. Per particle, with its CTF c
/// (at M0, its current defocus) and its contrast a (least squares, so that the map's greyscale
/// does not matter), the residual X - a c P is fitted by a c grad P . (E k), summed over the
/// particles of the group and the frequencies of [min_res, max_res] with the weights 1/sigma^2 of
/// the shell: a linear least-squares problem in E's four entries (RELION: per-pixel 2x2
/// equations, then a linear fit of the displacement field, solveLinearlyFreq). Then M = M0 (I + E),
/// the defoci are re-expressed for the new frame (reexpress_defocus, RELION's adaptAstigmatism:
/// the CTF the images show is kept), and the fit is repeated with the new M (`passes`).
///
/// The gradient is the projection's central difference at +-0.5 pixel (RELION differentiates its
/// trilinear cell). M is not normalised: its four entries are fitted, so a pixel-size error shows
/// as a mean magnification away from 1 (RELION warns when it exceeds 0.5%).
#include <optional>
#include <span>
#include <vector>

#include "tessera/grid.hpp"
#include "tessera/magnification.hpp"
#include "tessera/particles.hpp"

namespace tessera {

struct MagnificationRefineOptions {
  double min_res_A = 20;            ///< lowest resolution used (Angstrom; RELION's --kmin_mag default)
  std::optional<double> max_res_A;  ///< highest; unset: Nyquist
  int passes = 2;                   ///< fits, each from the previous one's matrix (and defoci)
  bool reexpress_defocus = true;    ///< keep the images' CTF when M changes (RELION: unless --keep_astig)
  int threads = 1;
};

struct MagnificationGroupFit {
  int optics_group = 0;           ///< rlnOpticsGroup
  long particles = 0;             ///< particles used
  Mat2 before = kIdentity2;       ///< the group's matrix before
  std::vector<Mat2> after_pass;   ///< the matrix after each pass (the last is the result)
};

/// Fits every optics group's matrix and writes it (and the re-expressed defoci) into `set`.
/// maps: one map (every particle against it) or two half maps (each half set against its own).
/// Particles need poses and CTFs (half sets 1 or 2 with two maps). Deterministic for any number
/// of threads. Throws InputError when a group's equations are singular (too few particles or
/// frequencies).
std::vector<MagnificationGroupFit> refine_magnification(ParticleSet& set, std::span<const RealGrid* const> maps,
                                                        const MagnificationRefineOptions& options);

}  // namespace tessera
