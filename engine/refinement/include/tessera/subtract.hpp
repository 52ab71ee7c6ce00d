#pragma once
/// Particle subtraction at each particle's own contrast.
///
/// Model (simulate.hpp's): a particle image is
///   X = s * CTF * shift(-origin) [P(V_remove, A) + P(V_keep, A)] + noise
/// with s the particle's contrast scale (ice thickness, beam), A its rotation,
/// P the projection (projector.hpp) and the map V split into the region to
/// subtract and the region to keep (V = V_remove + V_keep). Subtraction
/// computes Y = X - s' * CTF * shift(-origin) P(V_remove, A), with s' fitted per
/// particle (or given), so no "shadow" of V_remove is left where s differs
/// from one particle to the next.
///
/// The fit is least squares in real space, on band-passed images: image and
/// model are filtered to the Fourier band [fit_low_res_A, fit_high_res_A] (the
/// zero frequency, which carries the arbitrary background level, is always
/// left out) and compared over the pixels within fit_radius_px of the
/// particle's centre (box centre - origin). Two models:
///   Whole:    X ~ s' M_remove + s' M_keep (+ c): one contrast for the particle
///             (efficient and unbiased when the map describes the particle);
///   Separate: X ~ s' M_remove + b M_keep (+ c): the kept region gets its own
///             free coefficient (unbiased even when the kept region moved or
///             differs from the map, at the cost of more noise in s').
/// M = band-passed CTF * projection (CTF at scale 1), c an optional constant.
///
/// What is left. Independently of how s' was chosen, the Separate fit is also
/// done on the original image (s_j, the reference estimate of s) and on the
/// subtracted one (`left`, the removed region's coefficient still in it).
/// summarize() turns these into an estimate of the fraction of the removed
/// region's signal power left in the particles (see SubtractSummary). Noise
/// variances assume white noise: the per-pixel variance of the band-passed
/// residual divided by the fraction of Fourier pixels in the band.
///
/// Images and volumes are centred at N/2 (DESIGN.md); origins in Angstrom.
#include <array>
#include <optional>
#include <vector>

#include "tessera/fft.hpp"
#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"

namespace tessera {

/// A map split into the region to subtract and the region to keep; remove + keep = map.
struct MapRegions {
  RealGrid remove, keep;
};

/// remove = map * (1 - keep_mask), keep = map * keep_mask (RELION's
/// relion_particle_subtract --mask: the mask of what to keep). Throws InputError
/// when the shapes differ, the mask leaves [0, 1], or it keeps the whole map.
MapRegions split_keep(const RealGrid& map, const RealGrid& keep_mask);
/// remove = map * remove_mask, keep = map * (1 - remove_mask); same checks.
MapRegions split_remove(const RealGrid& map, const RealGrid& remove_mask);

/// How the scale s' is chosen.
enum class ScaleMode {
  Fit,         ///< least squares per particle (FitModel)
  Refinement,  ///< the particle's rlnCtfScalefactor (Particle::scale), as a refinement left it
  Fixed,       ///< one scale for every particle (SubtractOptions::fixed_scale)
};
enum class FitModel { Whole, Separate };

struct SubtractOptions {
  ScaleMode scale_mode = ScaleMode::Fit;
  double fixed_scale = 1.0;  ///< ScaleMode::Fixed
  FitModel fit_model = FitModel::Whole;
  bool fit_offset = false;               ///< also fit a constant c (every fit, not only the one giving s')
  std::optional<double> fit_low_res_A;   ///< lowest resolution fitted, A (default: every shell >= 1)
  std::optional<double> fit_high_res_A;  ///< highest resolution fitted, A (default and at most: Nyquist)
  std::optional<double> fit_radius_px;   ///< fit pixels this close to the particle's centre (default: box/2)
  /// Low-pass both regions (raised cosine, 2 shells, fsc.hpp lowpass) before
  /// projecting: the subtracted reference and the fitted model.
  std::optional<double> lowpass_A;
  /// Per-shell gains (shell k = 0 .. box/2 of the particle's 2D transform; the
  /// corners beyond box/2 get 0) applied to the removed region's expected image
  /// when it is subtracted, not when its scale is fitted: the Wiener filter of a
  /// half map (fsc.hpp wiener_gains), which removes the signal the map holds
  /// without adding its noise, while the fit on the unfiltered projection stays
  /// unbiased (a filtered template fitted to the particle would inflate the
  /// scale by the filter's loss). By the central-section theorem a shell of the
  /// map is the same shell of its projections. Empty: subtract as fitted.
  std::vector<double> subtract_gains;
  bool apply_ctf = true;  ///< false: images without CTF (or CTF-corrected)
  int padding = 2;        ///< projector oversampling
};

/// What was done to one particle. Scales are relative to the map's projection
/// with the CTF at scale 1 (an image equal to the model at contrast s gives s).
struct SubtractResult {
  double scale = 1;           ///< s': the removed region was subtracted at this scale
  double offset = 0;          ///< the constant fitted with s' (0 unless fitted)
  double residual_rms = 0;    ///< rms over the fit region of band-passed image minus the fitted model
  double scale_variance = 0;  ///< estimated noise variance of s' (0 when not fitted)
  double joint_scale = 0;     ///< s_j: Separate fit on the image (with the constant when fit_offset)
  double joint_variance = 0;  ///< its estimated noise variance
  double left = 0;            ///< the same fit on the subtracted image: removed region's coefficient left
  double removed_power = 0;   ///< sum over the fit region of M_remove^2 (scale 1)
};

/// Subtracts one region of a map (or of two half maps) from particle images.
/// subtract() is const and may be called from many threads at once.
class Subtractor {
 public:
  /// regions: one entry, used for every particle, or two, for half sets 1 and 2
  /// (Particle::half_set; each half map is subtracted from its own half set).
  /// All regions must be cubic of one box. Throws InputError on bad options
  /// (a resolution band that is empty, a radius <= 0, a fixed scale not finite).
  Subtractor(const std::vector<MapRegions>& regions, double pixel_A, SubtractOptions options);

  int box() const { return box_; }
  const SubtractOptions& options() const { return opt_; }

  /// Subtracts in place from `image` (box x box, centred) of particle `p` in
  /// optics group `g`. Throws InputError for a particle without pose, an image
  /// of another size or with non-finite values, or (two half maps) a particle
  /// whose half set is not 1 or 2.
  SubtractResult subtract(RealGrid& image, const Particle& p, const OpticsGroup& g) const;

 private:
  struct Half {
    Projector remove, keep;
  };
  struct Models;
  Models model_transforms(const Half& h, const Particle& p, const OpticsGroup& g) const;
  std::vector<double> band_passed(const ComplexGrid& f, const std::vector<std::size_t>& region) const;
  std::vector<std::size_t> fit_region(const ProjectionPose& pose) const;
  const Half& half_for(const Particle& p) const;

  int box_;
  double pixel_A_;
  SubtractOptions opt_;
  std::vector<Half> halves_;
  RealGrid band_;             ///< 0/1 on the half-complex grid
  RealGrid subtract_gain_;    ///< SubtractOptions::subtract_gains on the half-complex grid (empty: none)
  double band_fraction_ = 1;  ///< fraction of the full Fourier plane inside the band
  RealFft fft_;
};

/// The particles' subtraction in numbers. With P_i = removed_power, v_j =
/// joint_variance and v_s = scale_variance, the removed region's signal power
/// left in particle i is estimated as (left_i^2 - v_j + 2 v_s) P_i: unbiased
/// for a fixed scale (v_s = 0), for the Separate fit (left = 0, v_s = v_j) and
/// for the Whole fit (s' efficient, so cov(s_j, s') = v_s). Its signal power
/// is (s_j^2 - v_j) P_i.
struct SubtractSummary {
  long count = 0;
  double scale_mean = 0, scale_sd = 0, scale_min = 0, scale_max = 0;
  double residual_rms_mean = 0;
  /// sum_i (left_i^2 - v_j + 2 v_s) P_i / sum_i (s_j^2 - v_j) P_i: estimated
  /// fraction of the removed region's signal power left (noisy around the
  /// truth; may come out slightly negative when nothing is left).
  double left_fraction = 0;
  /// sum_i v_s P_i / sum_i (s_j^2 - v_j) P_i: the part of it expected from
  /// noise in fitted scales alone.
  double left_fraction_from_noise = 0;
};
SubtractSummary summarize(const std::vector<SubtractResult>& results);

/// What the map leaves of the removed region's signal when half maps are
/// subtracted Wiener-filtered (SubtractOptions::subtract_gains = the halves'
/// FSC f): per shell, a half map holds S + N with |S|^2 / |N|^2 = f / (1 - f),
/// and subtracting f (S + N) leaves (1 - f) S - f N, of power (1 - f)^2 |S|^2 +
/// f^2 |N|^2 = (1 - f) |S|^2: a share 1 - f of the shell's signal (as shadow
/// and added noise). For each resolution d in `up_to_A`, the share of the
/// removed region's signal up to d: shells 1 .. (box voxel / d) weighted by
/// their power in the particles' images, which a central section gives as the
/// map's mean power per voxel at radius k times the 2 pi k pixels of the 2D
/// shell. The removed region's power is taken from `removed` (a half map's
/// removed region, which holds some noise: the share is then underestimated
/// where f is low). Pose and contrast errors are not counted: a lower bound.
std::vector<double> wiener_left_share(const std::vector<double>& fsc_curve, const RealGrid& removed, double voxel_A,
                                      const std::vector<double>& up_to_A);

/// Moving a particle image so that a 3D point of the map lands on its centre.
struct Recentring {
  int shift_x_px = 0, shift_y_px = 0;  ///< whole-pixel shift of the image content (+x moves it to larger x)
  ProjectionPose pose;                 ///< the shifted image's pose against the map re-centred on the point
};
/// point_px: voxels from the map centre (whole numbers, so the re-centred map
/// is the map moved by whole voxels). With A the pose's rotation and o its
/// origin in pixels, the point lies at box centre - o + (A point)_xy; the
/// image moves by round(d), d = o - (A point)_xy, and the new origin is
/// (d - round(d)) * pixel_A. Angles and origin_z_A are kept.
Recentring recentre(const ProjectionPose& pose, const std::array<int, 3>& point_px, double pixel_A);

/// A square image (nz == 1) or a cube, its content moved by whole pixels
/// (wrapping around), then cut (or zero-padded) to new_box around the centre:
/// out(x') = moved(x' + n/2 - new_box/2) on every axis. shift[2] is ignored for an image.
RealGrid shift_and_window(const RealGrid& g, const std::array<int, 3>& shift_px, int new_box);

/// Rounded centre of mass of the positive values of a volume (a mask or a
/// density), voxels from the box centre. Throws InputError when nothing is positive.
std::array<int, 3> rounded_centre_of_mass(const RealGrid& v);

}  // namespace tessera
