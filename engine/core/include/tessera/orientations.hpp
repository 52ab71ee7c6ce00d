#pragma once
/// Sampling of orientations for pose search.
///
/// Global grids cover SO(3) quasi-uniformly: projection directions on a
/// golden-spiral (Fibonacci) sphere, each with in-plane angles psi in steps of
/// the same size. The projection direction of RELION angles is the third row
/// of their matrix, (cos rot sin tilt, sin rot sin tilt, cos tilt).
/// Local grids perturb a centre rotation A by small rotations R(v) (rotation
/// vector v on a cubic lattice of the given step): A' = R(v) A.
#include <vector>

#include "tessera/geometry.hpp"

namespace tessera {

/// Number of directions for a given step (about 4 pi / step^2, at least 12).
int direction_count(double step_deg);
/// Global grid with angular step step_deg (directions x psi).
std::vector<Mat3> global_orientation_grid(double step_deg);
/// Rotations R(v) A for v in {-half_width..half_width}^3 * step_deg (the
/// centre itself included).
std::vector<Mat3> local_orientation_grid(const Mat3& centre, double step_deg, int half_width);

}  // namespace tessera
