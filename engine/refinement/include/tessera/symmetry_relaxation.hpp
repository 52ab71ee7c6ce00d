#pragma once
/// Symmetry relaxation (cryoSPARC's homogeneous refinement option; RELION's
/// --relax_sym): a pseudo-symmetric particle (a C4 channel with one
/// asymmetric ligand, a D7 complex whose halves differ) is refined without
/// imposing its symmetry on the maps, while the symmetry still names each
/// particle's candidate poses, its mates. After its pose search, a particle
/// at rotation A and origin o is scored at every mate A R_k (R_k:
/// SymmetryGroup::matrices(), identity first; A R_k gives the same projection
/// of a map with the symmetry, symmetry.hpp), at the same origin (the
/// symmetry axes pass through the box centre). The score S is the search's
/// (alignment.hpp: the log-likelihood at the particle's contrast scale and
/// noise model), on the frequencies up to RefineOptions::relaxation_max_res_A
/// (20 A, the GSFSC split's: coarser frequencies are shared by the half maps;
/// finer ones hold each half's own noise, in which a particle's own image,
/// inserted at its current mate, favours that mate: on the C4 phantom of
/// tests/engine/test_symmetry_relaxation.cpp with its feature at 0.4 of the
/// base's peak, scoring up to the alignment limit or to 12 A left 31-40 % of
/// the particles at the right mate, up to 20 A 93-96 %; docs/symmetry_relaxation.md),
/// so the mates' posterior under a uniform prior is
///   P(k) = exp(S(A R_k) - max_j S(A R_j)) / sum_i exp(S(A R_i) - max_j S(A R_j)).
/// Maximization moves the particle to its most probable mate; marginalization
/// also moves its pose there, but back-projects it at every mate whose
/// P(k) is at least 1e-3 of the best's (the cut of the pose posterior,
/// pose_search.hpp), with weight P(k) renormalized over those. When the search
/// marginalizes over poses too, each pose of its posterior is taken to every
/// mate with weight (pose weight) x P(k): the posterior about each mate is
/// taken to have the shape of the one about the searched pose, which holds
/// where the mates differ only in a small feature. The maps are reconstructed
/// in C1.
///
/// An exactly symmetric reference gives every mate the same projection, so
/// P(k) = 1 / order for every particle: marginalization then keeps the maps
/// symmetric, and maximization keeps each particle at its searched pose (the
/// first of equal mates). Start relaxation from maps in which the particles'
/// poses already break the symmetry: the C1 reconstruction at the poses of a
/// symmetric refinement (each particle at the mate its search chose) differs
/// from symmetric by the particles' uneven spread over the mates, and
/// relaxation amplifies that difference where the particles' images tell
/// their mates apart (docs/symmetry_relaxation.md).
#include <string>
#include <vector>

#include "tessera/alignment.hpp"
#include "tessera/geometry.hpp"
#include "tessera/pose_search.hpp"
#include "tessera/projector.hpp"

namespace tessera {

enum class SymmetryRelaxation { None, Maximization, Marginalization };

/// "none", "maximization", "marginalization" (the programs' choices).
SymmetryRelaxation parse_symmetry_relaxation(const std::string& name);

/// The STAR column (a Tessera label) that holds each particle's P(k) of the mate it
/// took in the last iteration: 1 / order when its image cannot tell the mates
/// apart, 1 when it is sure.
inline constexpr const char* kMatePosteriorLabel = "tesseraSymmetryMatePosterior";

/// What scoring a particle's mates needs besides the particle: the search's
/// reference and noise model (1 / sigma^2 per shell), and the frequencies
/// (the search's, up to the relaxation's resolution).
struct MateScoring {
  const Projector& reference;
  const std::vector<double>& inv_sigma2;
  const FourierDisk& disk;
};

/// The mates' posterior P(k) of a particle at `pose` (the search's result),
/// one per matrix of `mates` (a point group, identity first).
std::vector<double> mate_posterior(const ParticleInput& particle, const PoseEstimate& pose,
                                   const std::vector<Mat3>& mates, const MateScoring& scoring);

/// Relaxes a search's result with the mates' posterior `p` (mate_posterior):
/// the pose becomes the most probable mate's (the first of equals), and its
/// posterior (PoseEstimate::posterior: what the step back-projects) is, with
/// maximization, the search's posterior taken to that mate, with
/// marginalization the weighted poses at every retained mate (see the file
/// comment). Returns the index of the mate taken. Mode None leaves the pose.
int relax_to_mates(PoseEstimate& pose, const std::vector<double>& p, const std::vector<Mat3>& mates,
                   SymmetryRelaxation mode);

/// The mate of `previous` nearest to `now`: the k that minimizes the angle
/// between previous R_k and now (0: `now` is nearest `previous` itself). Gives
/// whether a particle changed mate between two iterations.
int nearest_mate(const Mat3& previous, const Mat3& now, const std::vector<Mat3>& mates);

}  // namespace tessera
