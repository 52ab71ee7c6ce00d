#pragma once
/// Soft masks for volumes: values in [0, 1], 1 = keep (protein), 0 = solvent,
/// with raised-cosine edges as RELION makes them (src/mask.cpp).
///
/// Distances are in voxels and measured between voxel centres; the centre of a
/// box of size N is voxel N/2 on every axis (DESIGN.md).
#include <string>

#include "tessera/grid.hpp"

namespace tessera {

/// A box^3 sphere centred on voxel (box/2, box/2, box/2): at distance d (voxels)
/// from the centre the value is 1 for d <= radius_px, 0.5 + 0.5 cos(pi (d -
/// radius_px) / soft_edge_px) for radius_px < d < radius_px + soft_edge_px and 0
/// beyond: the soft edge lies outside the radius (RELION's raisedCosineMask with
/// radius_p = radius + edge). soft_edge_px == 0 gives a hard sphere.
RealGrid soft_sphere_mask(int box, double radius_px, double soft_edge_px);

/// A mask from a map's density, as relion_mask_create --ini_threshold
/// --extend_inimask --width_soft_edge makes it (without its --lowpass: low-pass
/// the map first with lowpass() from fsc.hpp):
///  1. voxels with v >= threshold are 1, the rest 0;
///  2. extend_px > 0 sets to 1 every voxel at distance < extend_px from a 1
///     voxel (a spherical dilation; strict '<' as RELION, so 2 px adds the
///     voxels at distance 1, sqrt 2 and sqrt 3); extend_px < 0 sets to 0 every
///     1 voxel at distance < -extend_px from a 0 voxel (erosion);
///  3. a voxel outside at distance d < soft_edge_px from the nearest 1 voxel
///     gets 0.5 + 0.5 cos(pi d / soft_edge_px); the rest stay 0.
/// Distances are exact Euclidean distances within the box (no wrap-around).
/// Works on volumes and on 2D images (nz == 1). Throws InputError when no voxel
/// reaches the threshold or a width is not finite or soft_edge_px < 0.
RealGrid threshold_mask(const RealGrid& v, double threshold, double extend_px, double soft_edge_px);

/// A mask from a reconstruction (dynamic masking): the map low-passed to
/// resolution_A (at least 2.5 voxels), thresholded at threshold_fraction of its
/// maximum, dilated by near_A and given a soft edge of far_A (Angstrom).
RealGrid map_mask(const RealGrid& map, double resolution_A, double voxel_A, double threshold_fraction, double near_A,
                  double far_A);

/// Summary of a mask's values.
struct MaskStats {
  double min = 0, max = 0;
  double sum = 0;                  ///< sum of values (soft volume in voxels)
  /// Fraction of voxels > 0.5; RELION's rlnParticleBoxFractionSolventMask is 0.476 / this.
  double fraction_above_half = 0;
};
MaskStats mask_stats(const RealGrid& mask);

/// Throws InputError "<name>: mask values must lie in [0, 1], found min .. max .."
/// when a value is NaN or outside [-1e-6, 1 + 1e-6] (RELION's tolerance).
void check_mask(const RealGrid& mask, const std::string& name);

}  // namespace tessera
