#pragma once
/// Pose search strategies: the replaceable part of a refinement that finds
/// each particle's best rotation and origin against a reference
/// (maximization: the single best pose by the score of alignment.hpp), and
/// optionally the posterior over the poses of the last level (adaptive
/// marginalization: the score is a log-likelihood, so exp(score) is the
/// posterior under a uniform prior).
///
/// GlobalSearch (no prior): every orientation of a coarse SO(3) grid and a
/// coarse lattice of offsets is scored on the low frequencies only; the best
/// candidates are then refined coarse-to-fine (angular step and shift step
/// halved at each level, a 3x3x3 neighbourhood of rotations, frequencies up to
/// the alignment limit), keeping fewer candidates at each level.
/// LocalSearch: the same refinement levels starting from the particle's
/// current pose, within a few steps of it.
///
/// A particle's optics group may have an anisotropic magnification M
/// (forward_model.hpp): the reference is then projected at model_matrix, the
/// map sampled at A^T M k, in every refinement level and in the sub-grid
/// polish. The global search's first, coarse level is scored against
/// projections made once per reference for every particle, without M: at its
/// frequencies (coarse_kmax_px, 8 px by default) a 2% anisotropy moves a
/// frequency by at most 0.16 px, far below what that level resolves.
#include <array>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "tessera/alignment.hpp"
#include "tessera/geometry.hpp"
#include "tessera/projector.hpp"

namespace tessera {

struct WeightedPose;

struct PoseEstimate {
  Mat3 rotation = identity3();
  double origin_x_px = 0, origin_y_px = 0;  ///< RELION origin in pixels
  double score = 0;
  /// With marginalization: the poses of the last search level whose
  /// posterior probability exp(score - best) is at least 1e-3 of the best's,
  /// with normalized weights (adaptive: few poses for a sharp posterior, many
  /// for a flat one). Empty with maximization.
  std::vector<WeightedPose> posterior;
};

struct WeightedPose {
  PoseEstimate pose;
  double weight = 0;
};

/// The centre of a local search's Gaussian prior on the pose (LocalSearchOptions::prior_*): e.g.
/// the particle's pose in a consensus refinement, in the search's frame.
struct PosePrior {
  Mat3 rotation = identity3();
  double origin_x_px = 0, origin_y_px = 0;  ///< RELION origin in pixels
};

/// What a search needs to know about one particle.
struct ParticleInput {
  const ComplexGrid* transform;  ///< half-complex transform of the centred image
  const RealGrid* ctf;           ///< CTF (with the particle's scale left out)
  /// Contrast scale; nullopt: unknown (the reference's greyscale is not the
  /// particles'), so each pose is scored at its best scale (alignment.hpp).
  std::optional<double> scale = 1.0;
  PoseEstimate current;          ///< pose from the previous iteration (origin = search centre)
  std::optional<PosePrior> prior = std::nullopt;  ///< the prior's centre (local search with prior sigmas); none: no prior
  /// The optics group's magnification matrix (OpticsGroup::mag_matrix; identity: none).
  std::array<double, 4> mag_matrix{1, 0, 0, 1};
};

/// The matrix the reference is projected at for `particle` at rotation r: model_matrix of the
/// pose with the particle's magnification (r itself without one).
Mat3 projection_matrix(const ParticleInput& particle, const Mat3& r);

class PoseSearch {
 public:
  virtual ~PoseSearch() = default;
  /// Called once per iteration and reference, before search(): the reference,
  /// the noise model (1 / sigma^2 per shell) and the highest frequency used.
  virtual void prepare(const Projector& reference, const std::vector<double>& inv_sigma2, double kmax_px) = 0;
  /// Best pose of one particle; const and thread-safe after prepare().
  virtual PoseEstimate search(const ParticleInput& particle) const = 0;
  /// Best poses of a batch of particles (out.size() == particles.size()):
  /// the refinement loop hands its particles over in batches, so that a search
  /// on a GPU takes many at once. The CPU searches search each in turn.
  virtual void search_batch(std::span<const ParticleInput> particles, std::span<PoseEstimate> out) const {
    for (std::size_t i = 0; i < particles.size(); ++i) out[i] = search(particles[i]);
  }
};

struct GlobalSearchOptions {
  double coarse_step_deg = 15;   ///< step of the exhaustive grid
  /// Frequencies used in the exhaustive pass (capped by kmax), in Fourier pixels: a rotation
  /// by the coarse step moves frequency k by k x step, whatever the box and pixel size.
  double coarse_kmax_px = 8;
  double final_step_deg = 1.875; ///< refinement stops at this step
  double shift_range_px = 4;     ///< offsets searched around the current origin
  /// Offset step of the exhaustive pass. An offset error d shifts the phase at frequency k by
  /// 2 pi k d / box: at the coarse pass's 8 px, box / 32 keeps it below pi / 2.
  double coarse_shift_step_px = 2;
  double final_shift_step_px = 0.5;
  int candidates = 8;            ///< kept after the exhaustive pass
  bool marginalize = false;      ///< also return the posterior (PoseEstimate::posterior)
  /// Place the best pose between the last level's grid points (the peak of a
  /// parabola on each rotation axis and offset); false: on the grid.
  bool subgrid = true;
};

struct LocalSearchOptions {
  double start_step_deg = 3.75;  ///< first level: +-1 step around the current rotation
  double final_step_deg = 0.9375;
  double shift_range_px = 2;     ///< first level: offsets within this of the current origin
  double final_shift_step_px = 0.25;
  bool marginalize = false;
  bool subgrid = true;           ///< as GlobalSearchOptions::subgrid
  /// Gaussian priors about ParticleInput::prior (when the particle has one): the score (a
  /// log-likelihood) gains -theta^2 / (2 sigma_r^2) - d^2 / (2 sigma_s^2), theta the angle
  /// between the rotation and the prior's, d the distance between the origins (pixels). So the
  /// best pose and the posterior (marginalization) are those of likelihood x prior. Unset: none.
  std::optional<double> prior_rotation_sigma_deg;
  std::optional<double> prior_shift_sigma_px;
};

std::unique_ptr<PoseSearch> make_global_search(const GlobalSearchOptions& options);
std::unique_ptr<PoseSearch> make_local_search(const LocalSearchOptions& options);

}  // namespace tessera
