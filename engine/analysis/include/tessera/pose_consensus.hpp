#pragma once
/// How far apart two pose assignments of the same particle are (pose consensus).
///
/// Poses are RELION's (geometry.hpp): A = euler_to_matrix(rot, tilt, psi) maps
/// volume coordinates to image coordinates, origins are 2D image shifts in A.
///
/// Symmetry. For a map with point group G (symmetry.hpp), a particle at pose A
/// and at A R (R in G) projects alike: the projection at A R samples the map at
/// R^T A^T x, and V(R^T y) = V(y). This is the composition RELION uses
/// (relion_particle_symmetry_expand writes A R, keeping every other column).
/// So the angular distance between poses A and B is
///   min over R in G of angle(A^T B R),
/// the angle of the rotation taking A to the closest symmetry mate of B.
///
/// Shifts. A mate A R is the same particle rotated about the map's centre
/// (the symmetry axes pass through it, symmetrize() in symmetry.hpp): the
/// centre still projects to the same image point, so the 2D origin is the same
/// for every mate. relion_particle_symmetry_expand copies rlnOriginX/YAngst
/// unchanged to every mate (src/apps/particle_symmetry_expand.cpp). The shift
/// distance is therefore |origin_A - origin_B| in the image plane, whatever R.
///
/// View direction. The direction along which the map is projected, in map
/// coordinates, is d = A^T (0, 0, 1) (RELION's Euler_angles2direction of rot
/// and tilt); psi, the in-plane rotation, does not change it. The view
/// distance is min over R in G of the angle between d_A and R^T d_B (the view
/// of B R). It is never larger than the angular distance.
///
/// Hands. A 3D refinement has no mirrors: every pose is a proper rotation. Two
/// refinements against maps of opposite hands give poses that are not related
/// by any rotation: a map mirrored through its xy plane (z -> -z) projects at
/// B as the original map at M B M, M = diag(1, 1, -1) (opposite_hand()). The
/// consensus compares the poses as they are; the program reports the distances
/// with B's hand flipped as a diagnosis, never as the consensus.
///
/// Frames. Two refinements of the same data started from different references
/// may differ by a global rotation Q of their maps (V_B(x) = V_A(Q x)); then
/// B = A R Q for some mate R of each particle. align_frames() finds Q; the
/// poses are then compared as A against B Q^T.
#include <cstdint>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/symmetry.hpp"

namespace tessera {

/// Angle in degrees, in [0, 180], of the rotation a^T b, from its trace and
/// antisymmetric part (atan2 of sine and cosine): about 1e-14 deg near 0 and
/// near 180, where the arc cosine of the trace loses half the digits.
double rotation_angle_deg(const Mat3& a, const Mat3& b);

/// The distance between two poses under a group, and the mate that gives it.
struct MateDistance {
  double angle_deg = 0;  ///< min over R in G of angle(A^T B R), degrees in [0, 180]
  int mate = 0;          ///< index in g.matrices() of that R (0: the identity)
};
MateDistance closest_mate(const Mat3& a, const Mat3& b, const SymmetryGroup& g);

/// closest_mate(a, b, g).angle_deg.
double symmetric_angular_distance_deg(const Mat3& a, const Mat3& b, const SymmetryGroup& g);

/// The projection direction of pose a in map coordinates: a^T (0, 0, 1), a unit vector.
Vec3 view_direction(const Mat3& a);

/// min over R in G of the angle (degrees) between the view directions of A and of B R.
double symmetric_view_distance_deg(const Mat3& a, const Mat3& b, const SymmetryGroup& g);

/// Distance in A between the poses' 2D origins (x and y; the z origin of a 2D
/// particle is ignored). The same for every symmetry mate (see above).
double shift_distance_A(const ProjectionPose& a, const ProjectionPose& b);

/// M a M with M = diag(1, 1, -1): the pose at which the map mirrored through its
/// xy plane projects as the original map at `a` (a proper rotation again).
Mat3 opposite_hand(const Mat3& a);

/// Per-particle distances between two lists of poses of the same particles
/// (same order, same length; std::invalid_argument otherwise). B is taken as
/// b * frame^T (frame: the global rotation from align_frames, identity when none).
struct PoseDistances {
  std::vector<double> angle_deg;  ///< symmetric_angular_distance_deg
  std::vector<double> view_deg;   ///< symmetric_view_distance_deg
  std::vector<double> shift_A;    ///< shift_distance_A
  std::vector<int> mate;          ///< closest_mate's index
};
PoseDistances pose_distances(const std::vector<ProjectionPose>& a, const std::vector<ProjectionPose>& b,
                             const SymmetryGroup& g, const Mat3& frame = identity3());

/// The p-th percentile (0..100) by linear interpolation between order
/// statistics (numpy.percentile's default): position p / 100 * (n - 1).
/// NaN for no values.
double percentile(std::vector<double> values, double p);

/// What unrelated poses give: the median distances between two poses drawn
/// independently and uniformly over SO(3), under the group. C1 has closed forms (the angle of
/// a random rotation has density (1 - cos t) / pi, median 132.35 deg; a random
/// view is at 90 deg median); other groups are estimated from `samples` random
/// rotations drawn from `seed` (deterministic; ~0.4 deg standard error for
/// 20,000 samples).
struct RandomDistances {
  double median_angle_deg = 0;
  double median_view_deg = 0;
};
RandomDistances random_pose_distances(const SymmetryGroup& g, int samples = 20000, std::uint64_t seed = 1);

/// The global rotation Q with B ~ A R Q for every particle (R a mate of G per
/// particle), robustly: each of up to 32 particles, spread over the set, seeds
/// Q = A^T B, scored by the median residual on up to 2,000 particles; from the
/// best, up to 30 rounds choose each particle's mate, keep the particles whose
/// residual is within 3 medians (at least 0.5 deg), and take the chordal mean
/// of their R^T A^T B (the polar factor of the sum) on up to 20,000 particles
/// spread over the set. Q is defined up to a mate (R Q fits as well as Q); the
/// one closest to the identity is returned.
struct FrameAlignment {
  Mat3 rotation = identity3();     ///< Q
  double angle_deg = 0;            ///< its rotation angle
  Vec3 axis{0, 0, 1};              ///< its unit axis (z for the identity)
  double median_residual_deg = 0;  ///< median over the particles used of min_R angle(R Q, A^T B)
  long particles_used = 0;         ///< in the last round's mean
};
FrameAlignment align_frames(const std::vector<Mat3>& a, const std::vector<Mat3>& b, const SymmetryGroup& g);

}  // namespace tessera
