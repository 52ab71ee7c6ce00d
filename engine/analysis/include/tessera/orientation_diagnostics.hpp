#pragma once
/// Orientation diagnostics: how the particles' views cover the sphere, how
/// evenly that samples Fourier space (SCF*, Baldwin & Lyumkis 2020), and how
/// the half maps' correlation varies with direction (conical FSC and cFAR, as
/// cryoSPARC's Orientation Diagnostics reports them). Pure functions of poses
/// and grids: no files.
///
/// View direction. A pose A (geometry.hpp, RELION's ZYZ rot, tilt, psi)
/// projects the map along n = A^T (0, 0, 1) = (cos rot sin tilt,
/// sin rot sin tilt, cos tilt) in map coordinates; the image's Fourier
/// transform is the central section {k : k . n = 0} of the map's. psi spins
/// the image about n and changes neither. Only C1 is handled: with a point
/// group, symmetry-related copies of each view would have to be added first.
///
/// Fourier conventions as fsc.hpp: voxel (kx, ky, kz) of the half-transform
/// (signed indices, voxels of frequency) lies in shell round(|k|), shells 0 ..
/// N/2, the corners beyond N/2 left out; shell k stands for N * voxel_A / k A.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"

namespace tessera {

/// The projection direction n = A^T (0, 0, 1) of a pose (unit vector, map coordinates).
Vec3 view_direction(const Euler& e);

/// RELION angles (rot, tilt in degrees, psi 0) whose view direction is the unit vector n.
Euler direction_to_euler(const Vec3& n);

/// An exactly equal-area partition of the sphere into cells about bin_deg
/// wide ("igloo" grid): R = round(180 / bin_deg) rings of colatitude, ring i
/// cut into n_i = max(1, round(2 pi sin(theta_i) / bin_rad)) equal longitude
/// cells (theta_i = (i + 1/2) 180 / R degrees); the ring boundaries in z =
/// cos(colatitude) are placed at 1 - 2 c_i / M, c_i the cells before ring i
/// and M the total, so that every cell has solid angle 4 pi / M exactly
/// (Archimedes: area on the sphere is uniform in z).
class EqualAreaGrid {
 public:
  /// bin_deg in (0, 90]; std::invalid_argument otherwise.
  explicit EqualAreaGrid(double bin_deg);
  int size() const { return first_.back(); }
  /// The cell holding the unit vector u.
  int cell_of(const Vec3& u) const;
  /// The cell's centre: mid longitude, and the z midway between its ring's
  /// boundaries (the centroid in z), as a unit vector.
  Vec3 centre(int cell) const;
  double cell_solid_angle_sr() const;  ///< 4 pi / size()

 private:
  std::vector<double> z_edges_;  ///< ring i spans z in [z_edges_[i+1], z_edges_[i]], descending from 1 to -1
  std::vector<int> first_;       ///< first cell of ring i; first_.back() is the total
};

/// Counts of view directions per cell of an EqualAreaGrid over the whole
/// sphere (n and -n are different views: the projections are mirror images).
struct ViewDistribution {
  EqualAreaGrid grid;
  std::vector<long> counts;  ///< per cell; sums to the number of poses
};
ViewDistribution view_distribution(std::span<const Euler> poses, double bin_deg);

/// `count` directions spread evenly over the hemisphere z >= 0 (a Fibonacci
/// spiral: z_j = (j + 1/2) / count, longitude j times the golden angle), each
/// cell of equal area 2 pi / count. count >= 1.
std::vector<Vec3> hemisphere_directions(int count);

// ---- Sampling compensation factor --------------------------------------------

struct ScfOptions {
  /// Radius R (voxels of frequency) of the Fourier shell on which the
  /// sampling is measured; 50 is the reference implementation's default.
  double fourier_radius_px = 50;
  /// Points u_j on the hemisphere (hemisphere_directions); default
  /// min(round(2 pi R^2), 5000): one per voxel of the half shell, at most 5000
  /// (as the reference implementation).
  std::optional<int> directions;
  /// Use a random subset of at most this many poses (drawn with `seed`); the
  /// reference implementation uses 10,000. SCF* depends on the number used
  /// (see ScfResult::scf_star), so values compare only at the same count.
  /// Unset: every pose.
  std::optional<long> max_particles = 10000;
  std::uint64_t seed = 1;
};

/// SCF and SCF* of Baldwin & Lyumkis, Prog Biophys Mol Biol 150:160 (2020),
/// as their reference implementation (LyumkisLab/CommandLineSCF) computes them:
///   S_j = #{particles i : R |u_j . n_i| < 1/2}: the particles whose central
///         section (one voxel thick) passes through the shell voxel at R u_j;
///   <S> = mean of S_j over all j; its expectation is N / (2 R) for any
///         distribution of N views (each section covers 1 / (2 R) of the shell);
///   SCF = 1 / (<S> <1/S>), with <1/S> the mean of 1 / S_j over the j with S_j > 0:
///         the SSNR's attenuation by uneven sampling, 1 for uniform views
///         (AM-HM: SCF <= 1 when no point is empty), 8 / pi^2 = 0.81 for side
///         views only in the limit of large R (cryoSPARC's threshold);
///   f0 = fraction of j with S_j = 0 (Fourier space never sampled);
///   SCF* = SCF / (1 + (f0 / (1 - f0)) <S> SCF / 2), which falls towards 0 as
///         empty regions grow (the reference's form since April 2020).
/// With N random uniform views S_j is about Poisson with mean N / (2 R), so
/// SCF* is 1 - 2 R / N rather than 1 (0.99 at the defaults).
struct ScfResult {
  double scf = 0;
  double scf_star = 0;
  double fraction_unsampled = 0;  ///< f0
  double mean_sampling = 0;       ///< <S>
  long particles_used = 0;        ///< N
  double fourier_radius_px = 0;   ///< R
  std::vector<Vec3> points;       ///< u_j
  std::vector<long> sampling;     ///< S_j
};
/// std::invalid_argument for no poses, R <= 0 or fewer than 1 point.
/// Cost: points x particles dot products (5000 x 10,000 at the defaults).
ScfResult sampling_compensation_factor(std::span<const Euler> poses, const ScfOptions& options);

// ---- Conical FSC and cFAR ------------------------------------------------------

struct ConicalFscOptions {
  /// Half-angle of each cone (degrees, in (0, 90]); 20 as 3DFSC (Tan et al. 2017).
  double cone_half_angle_deg = 20;
  /// Cone axes, spread over the hemisphere (hemisphere_directions): by
  /// Friedel symmetry the cone about d and about -d hold the same voxels.
  int directions = 500;
  int threads = 1;  ///< for the transforms and the voxel loop; results do not depend on it beyond rounding
};

/// FSCs of two half maps restricted to cones of Fourier space, and their area ratio.
/// Voxel k (k != 0) belongs to the cone about unit d when |k . d| >= |k| cos(half_angle)
/// (a double cone: k and -k together); k = 0 belongs to every cone. For cone d and shell s
///   cFSC_d(s) = Re sum F1 conj(F2) / sqrt(sum |F1|^2 sum |F2|^2)
/// over the voxels of shell s in the cone (each voxel of the stored half counted once,
/// as fsc.hpp). A (cone, shell) holding fewer than 10 voxels (low shells of narrow cones)
/// takes the global FSC of that shell: an FSC of n noise voxels scatters by about
/// 1/sqrt(2n), so such shells would put a cone's 0.143 crossing at random low shells.
/// A voxel may belong to several cones; one forward transform of each map serves all.
///   area_d = (1 / K) sum_{s=1..K} cFSC_d(s), K = N/2: the area under the curve in
///            units of Nyquist frequency (shells equally spaced in frequency);
///   cFAR   = min_d area_d / max_d area_d,
/// cryoSPARC's conical FSC area ratio: 1 for isotropic maps, below 0.5 flags
/// anisotropy. Shells beyond a map's resolution hold noise and add about 0 to
/// every area, so the ratio barely depends on the upper limit K.
struct ConicalFsc {
  double cone_half_angle_deg = 0;
  std::vector<Vec3> directions;             ///< cone axes d (unit, z >= 0)
  std::vector<std::vector<double>> curves;  ///< [direction][shell 0 .. N/2]
  std::vector<std::vector<long>> voxels;    ///< [direction][shell]: voxels of the stored half in the cone
  std::vector<double> global;               ///< the FSC over all voxels (fsc.hpp's)
  std::vector<double> area;                 ///< area_d
  /// min area / max area; nullopt when no area is positive (the maps share no signal).
  std::optional<double> cfar;
  int worst = 0;  ///< direction of least area
  int best = 0;   ///< direction of largest area
};
/// Throws InputError (error.hpp) when the maps are not cubes of the same shape
/// (at least 4 wide) or the options are out of range.
/// Cost: 2 FFTs of N^3 and, per voxel, a test of the cone axes near it.
ConicalFsc conical_fsc(const RealGrid& half_a, const RealGrid& half_b, const ConicalFscOptions& options);

}  // namespace tessera
