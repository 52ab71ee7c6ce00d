#pragma once
/// Point-group symmetry with RELION's names, orientations and matrices.
///
/// Names (case-insensitive, as RELION reads them):
///   C<n>  n-fold axis along Z (C1 is the trivial group);
///   D<n>  n-fold axis along Z and a 2-fold axis along X. cryoSPARC puts the
///         2-fold on Y instead: the same group for even n, a different one for
///         odd n (a D3 map from cryoSPARC is RELION's D3 rotated by 90 deg
///         about Z);
///   T     3-fold along Z, a 2-fold along (0, sqrt(2/3), sqrt(1/3));
///   O     4-folds along X, Y and Z, 3-folds along (+-1, +-1, +-1);
///   I1    2-folds along X, Y, Z; the 5-folds next to Z lie in the YZ plane
///         (RELION's "no-Crowther 222", Heymann, Chagoyen & Belnap 2005);
///   I2    2-folds along X, Y, Z; the 5-folds next to Z lie in the XZ plane
///         (RELION's "Crowther 222"); I is I2;
///   I3    5-fold along Z, 2-folds along Y and along (-1, 0, phi) (a "52"
///         setting); I4 is I3 mirrored through the YZ plane: its 2-fold next
///         to Z lies along (+1, 0, phi). phi is the golden ratio.
/// The improper groups RELION also knows (Ci, Cs, C<n>v, C<n>h, S<n>, D<n>v,
/// D<n>h, Td, Th, Oh, I*h) are rejected, since macromolecules are chiral, and
/// so is I5, which RELION does not implement.
///
/// What a matrix means: matrices()[k] is RELION's k-th symmetry matrix,
/// R(k+1) in `relion_refine --sym <name> --print_symmetry_ops`, in the same
/// order, identity first. RELION applies it to a projection pose as A' = A R
/// (A = euler_to_matrix of the pose, relion_particle_symmetry_expand): a
/// particle at pose A and at A R gives the same projection of a symmetric
/// map. Acting on coordinates relative to the box centre (voxel N/2), a map V
/// with this symmetry has V(R x) = V(x) for every R; since the set is a group
/// (closed under products and inverses), the same holds with R^T.
#include <string>
#include <utility>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"

namespace tessera {

class SymmetryGroup {
 public:
  /// Parse a RELION symmetry name ("C1", "c7", "D3", "T", "O", "I", "I1".."I4").
  /// C<n> and D<n> take 1 <= n <= 99, RELION's limit (its parser reads at
  /// most two digits). Anything else throws InputError naming the symmetry.
  static SymmetryGroup parse(const std::string& name);

  /// Canonical upper-case name: "c07" -> "C7", "i" -> "I".
  const std::string& name() const { return name_; }
  /// The rotations, identity first, in RELION's order (see above).
  const std::vector<Mat3>& matrices() const { return matrices_; }
  /// Number of rotations in the group (C<n>: n, D<n>: 2n, T: 12, O: 24, I*: 60).
  int order() const { return static_cast<int>(matrices_.size()); }

 private:
  SymmetryGroup(std::string name, std::vector<Mat3> matrices)
      : name_(std::move(name)), matrices_(std::move(matrices)) {}

  std::string name_;
  std::vector<Mat3> matrices_;
};

/// Average of the volume rotated by every operator of the group about voxel
/// N/2 (integer division, per axis), in real space with trilinear
/// interpolation; samples that fall outside the box count as 0 (no wrap).
/// Matches RELION's `relion_image_handler --sym` to ~1% RMS (edge voxels
/// differ slightly; exactly for O on a cube). Output(x) = (1/order) *
/// sum over R of V(c + R (x - c)), c the centre voxel. Values keep their unit.
/// Throws InputError when the volume is not 3D (nz < 2 or empty).
RealGrid symmetrize(const RealGrid& volume, const SymmetryGroup& group);

}  // namespace tessera
