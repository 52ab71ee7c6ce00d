// Symmetry relaxation (symmetry_relaxation.hpp): each particle's mates scored
// at its searched pose, their posterior, and the poses it is back-projected at.
#include "tessera/symmetry_relaxation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "tessera/error.hpp"

namespace tessera {
namespace {

// A mate's posterior below this fraction of the best's is not back-projected (as
// the pose posterior's cut, pose_search.cpp).
constexpr double kMateCut = 1e-3;

PoseEstimate at_mate(const PoseEstimate& pose, const Mat3& mate) {
  return {multiply(pose.rotation, mate), pose.origin_x_px, pose.origin_y_px, pose.score, {}};
}

}  // namespace

SymmetryRelaxation parse_symmetry_relaxation(const std::string& name) {
  if (name == "none") return SymmetryRelaxation::None;
  if (name == "maximization") return SymmetryRelaxation::Maximization;
  if (name == "marginalization") return SymmetryRelaxation::Marginalization;
  throw InputError(fmt::format("symmetry relaxation '{}': expected none, maximization or marginalization", name));
}

std::vector<double> mate_posterior(const ParticleInput& particle, const PoseEstimate& pose,
                                   const std::vector<Mat3>& mates, const MateScoring& s) {
  const ParticleOnDisk p = put_on_disk(*particle.transform, *particle.ctf, s.inv_sigma2, s.disk, pose.origin_x_px,
                                       pose.origin_y_px, particle.scale);
  std::vector<cfloat> proj(s.disk.size());
  std::vector<double> score(mates.size());
  for (std::size_t k = 0; k < mates.size(); ++k) {
    s.reference.project_points(projection_matrix(particle, multiply(pose.rotation, mates[k])), s.disk.kx.data(),
                               s.disk.ky.data(), s.disk.size(), proj.data());
    score[k] = score_at(p, proj.data(), s.disk, 0, 0);
  }
  const double best = *std::max_element(score.begin(), score.end());
  double total = 0;
  for (double& v : score) total += (v = std::exp(v - best));
  for (double& v : score) v /= total;
  return score;
}

int relax_to_mates(PoseEstimate& pose, const std::vector<double>& p, const std::vector<Mat3>& mates,
                   SymmetryRelaxation mode) {
  if (mode == SymmetryRelaxation::None || mates.empty()) return 0;
  const int best = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
  // What the search would back-project: its posterior, or the pose alone.
  std::vector<WeightedPose> searched = pose.posterior;
  if (searched.empty()) searched.push_back({at_mate(pose, identity3()), 1.0});
  std::vector<int> taken{best};
  if (mode == SymmetryRelaxation::Marginalization) {
    taken.clear();
    for (std::size_t k = 0; k < p.size(); ++k)
      if (p[k] >= kMateCut * p[static_cast<std::size_t>(best)]) taken.push_back(static_cast<int>(k));
  }
  double total = 0;
  for (int k : taken) total += p[static_cast<std::size_t>(k)];
  std::vector<WeightedPose> relaxed;
  for (int k : taken)
    for (const WeightedPose& wp : searched)
      relaxed.push_back(
          {at_mate(wp.pose, mates[static_cast<std::size_t>(k)]), wp.weight * p[static_cast<std::size_t>(k)] / total});
  const bool one_pose = relaxed.size() == 1 && pose.posterior.empty();
  pose = at_mate(pose, mates[static_cast<std::size_t>(best)]);
  if (!one_pose) pose.posterior = std::move(relaxed);
  return best;
}

int nearest_mate(const Mat3& previous, const Mat3& now, const std::vector<Mat3>& mates) {
  int nearest = 0;
  double closest = 1e9;
  for (std::size_t k = 0; k < mates.size(); ++k) {
    const double d = rotation_distance_deg(multiply(previous, mates[k]), now);
    if (d < closest) closest = d, nearest = static_cast<int>(k);
  }
  return nearest;
}

}  // namespace tessera
