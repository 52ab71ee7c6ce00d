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
/// Beyond one scale (SubtractOptions): the removed region's contrast may vary
/// with frequency, s'(k) = b0 + b1 |k| / k_band (GainModel; Xmipp's
/// subtract-projection fits the same line and chooses by adjusted R^2), with
/// |k| in pixels of the box and k_band the fit band's outer radius; with
/// fit_offset the zero frequency enters the fit with a constant c, which is
/// then the image's additive offset (the k = 0 term the model does not
/// explain; reported, not subtracted). Before fitting, the pose may be refined
/// locally (PoseRefinement), since at high resolution the pose error of a
/// refinement leaves more than its contrast error.
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

/// The molecule's envelope in a map (the average of the half maps, or the
/// map): map_mask (mask.hpp) of the map low-passed to 15 A, thresholded at 0.2
/// of its maximum, dilated by 3 A with a soft edge of 6 A.
RealGrid molecule_envelope(const RealGrid& map, double voxel_A);
/// remove *= envelope, keep unchanged: what a map holds outside the molecule
/// is noise (the solvent's), and split_keep puts all of it in the removed
/// region, whose projection would add it to every particle. Throws InputError
/// when the shapes differ or the envelope leaves [0, 1].
void restrict_removed(MapRegions& regions, const RealGrid& envelope);

/// How the scale s' is chosen.
enum class ScaleMode {
  Fit,         ///< least squares per particle (FitModel)
  Refinement,  ///< the particle's rlnCtfScalefactor (Particle::scale), as a refinement left it
  Fixed,       ///< one scale for every particle (SubtractOptions::fixed_scale)
};
enum class FitModel { Whole, Separate };

/// How the fitted contrast may vary with frequency (ScaleMode::Fit only).
enum class GainModel {
  Constant,  ///< one scale s' at every frequency
  Linear,    ///< s'(k) = b0 + b1 |k| / k_band
  /// Per particle, Linear where its adjusted R^2 is the higher, else Constant.
  /// The R^2 counts the band's independent Fourier samples (pixels in the fit
  /// region times the band's share of the plane), as the noise estimate does.
  Best,
};

/// A local refinement of the pose before subtracting. The pose minimizes the
/// residual of the constant-gain fit (the fit model's columns, with the
/// constant when fit_offset) over the fit region of the given pose: with
/// FitModel::Whole the particle moves as one body (its whole signal locates
/// it), with FitModel::Separate only the removed region moves (the kept one
/// stays at the given pose with its free coefficient). Steps: the origin on a
/// grid of shift_step_A within +-shift_range_A per axis, closed by a parabola
/// through the best point and its neighbours on each axis; rotations about the
/// image's x, y and z axes (A' = E A), up to angle_steps steps of
/// angle_step_deg each way, each axis closed by a parabola; the origin again
/// on a grid of half a step within half a step. A candidate replaces the pose
/// only where its residual is lower.
struct PoseRefinement {
  double shift_range_A = 3;
  double shift_step_A = 1;
  double angle_step_deg = 1;
  int angle_steps = 2;  ///< 0: shifts only
};

struct SubtractOptions {
  ScaleMode scale_mode = ScaleMode::Fit;
  double fixed_scale = 1.0;  ///< ScaleMode::Fixed
  FitModel fit_model = FitModel::Whole;
  GainModel gain_model = GainModel::Constant;
  /// The fitted gain is clamped, frequency by frequency, to [s_c / r, s_c r]
  /// with s_c the constant model's scale and r this ratio (>= 1); a particle
  /// whose s_c is not positive keeps the constant model.
  double max_gain_ratio = 2;
  /// Also fit a constant c with the zero frequency in the fit (every fit, not
  /// only the one giving s'): c is the image's additive offset.
  bool fit_offset = false;
  std::optional<PoseRefinement> refine_pose;  ///< none: subtract at the given pose
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

/// Per-shell terms of one particle (shell k = round |k| = 0 .. box/2, full
/// Fourier plane, unnormalized transforms as fft.hpp's: a pixel's white noise
/// of variance v gives box^2 v per Fourier pixel); summed over particles by
/// estimate_left. M_r is the removed region's expected image at scale 1, g_k
/// the subtract gain (1 without SubtractOptions::subtract_gains), s'_k the
/// fitted gain and V_k its noise variance.
struct ShellTerms {
  std::vector<double> signal;      ///< (s'_k^2 - V_k) g_k |M_r|^2: the removed region's signal power
  std::vector<double> contrast;    ///< V_k g_k |M_r|^2: what noise in the fitted gain leaves
  std::vector<double> pose;        ///< what the pose's noise leaves (see estimate_left)
  std::vector<double> subtracted;  ///< |R|^2, R = s'_k g_k M_r, what was subtracted
  std::vector<double> in_phase;    ///< Re <Y - K, R>: the subtracted image Y less the fitted kept region K, along R
  std::vector<double> kept, cross, in_phase_kept;  ///< |K|^2, Re <R, K>, Re <Y - K, K>
  /// With a contrast that was not fitted (ScaleMode::Fixed, Refinement): the particle's left-over
  /// coefficient c (SubtractResult::left, of variance v = joint_variance) as (c^2 - v) g_k |M_r|^2,
  /// c g_k |M_r|^2 and g_k |M_r|^2, from which estimate_left counts the spread of the particles'
  /// contrasts about the one subtracted; empty when the contrast was fitted.
  std::vector<double> unfitted_square, unfitted_mean, unfitted_power;
};

/// What was done to one particle. Scales are relative to the map's projection
/// with the CTF at scale 1 (an image equal to the model at contrast s gives s).
struct SubtractResult {
  /// s': the removed region was subtracted at this scale; with a linear gain,
  /// the gain's mean over the fit band weighted by the removed region's power.
  double scale = 1;
  double gain_intercept = 1, gain_slope = 0;  ///< s'(k) = intercept + slope |k| / k_band (before clamping)
  bool linear_gain = false;                   ///< the linear model was chosen
  ProjectionPose pose;                        ///< the pose subtracted at (refined, or the particle's)
  double pose_shift_A = 0, pose_angle_deg = 0;  ///< how far the refinement moved it
  double offset = 0;          ///< the constant fitted with s' (0 unless fitted)
  double residual_rms = 0;    ///< rms over the fit region of band-passed image minus the fitted model
  double scale_variance = 0;  ///< estimated noise variance of s' (0 when not fitted)
  double joint_scale = 0;     ///< s_j: Separate fit on the image (with the constant when fit_offset)
  double joint_variance = 0;  ///< its estimated noise variance
  double left = 0;            ///< the same fit on the subtracted image: removed region's coefficient left
  double removed_power = 0;   ///< sum over the fit region of M_remove^2 (scale 1)
  double noise_variance = 0;  ///< white noise variance per pixel, from the fit's residual
  ShellTerms shells;
};

/// Subtracts one region of a map (or of two half maps) from particle images.
/// subtract() is const and may be called from many threads at once.
class Subtractor {
 public:
  /// regions: one entry, used for every particle, or two, for half sets 1 and 2
  /// (Particle::half_set; each half map is subtracted from its own half set).
  /// All regions must be cubic of one box. Throws InputError on bad options
  /// (a resolution band that is empty, a radius <= 0, a fixed scale not finite,
  /// a gain ratio below 1, a pose refinement with a step <= 0 or a negative
  /// range or step count).
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
  struct Models {
    ComplexGrid remove, keep;
  };
  /// The regions' expected transforms at `pose` (forward_model.hpp), with the optics group's
  /// magnification matrix `mag`.
  Models model_transforms(const Half& h, const ProjectionPose& pose, const RealGrid* ctf,
                          const std::array<double, 4>& mag) const;
  std::vector<double> band_passed(const ComplexGrid& f, const std::vector<std::size_t>& region) const;
  std::vector<std::size_t> fit_region(const ProjectionPose& pose) const;
  const Half& half_for(const Particle& p) const;
  // subtract_pose.cpp
  ProjectionPose refine_pose(const Half& h, const ComplexGrid& image, const ProjectionPose& pose,
                             const RealGrid* ctf, const std::array<double, 4>& mag) const;
  std::vector<double> pose_left_by_shell(const Half& h, const Models& m, const ProjectionPose& pose,
                                         const RealGrid* ctf, const std::array<double, 4>& mag,
                                         double noise_variance) const;
  /// Fills res.shells; gain and its noise variance per half-complex pixel, keep
  /// the kept region's own coefficient (FitModel::Separate; else the gain).
  void shell_terms(const Models& m, const ComplexGrid& subtracted, const RealGrid& gain,
                   const RealGrid& gain_variance, const std::optional<double>& keep, SubtractResult& res) const;

  int box_;
  double pixel_A_;
  SubtractOptions opt_;
  std::vector<Half> halves_;
  RealGrid band_;             ///< 0/1 on the half-complex grid
  RealGrid subtract_gain_;    ///< SubtractOptions::subtract_gains on the half-complex grid (empty: none)
  RealGrid kappa_;            ///< |k| / k_band on the half-complex grid
  std::vector<int> shell_;    ///< round |k| on the half-complex grid (box/2 + 1 beyond Nyquist)
  std::vector<float> mates_;  ///< 1 or 2: the pixel's weight in full-plane sums (its Friedel mate)
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

/// The share of the removed region's signal left in the particles, estimated
/// from them, per band "up to d" (shells 1 .. box pixel / d) and per shell:
///   map noise:  (1 - f_k) of the signal, f the half maps' FSC (map_fsc; empty
///               for one map, whose noise is then not counted);
///   contrast:   the fitted gains' noise, V_k g_k |M_r|^2 (ShellTerms);
///   pose:       the pose's noise at its Cramer-Rao bound: with J the
///               derivatives of the expected image in the 5 pose parameters
///               (origin x, y; rotations about x, y, z), weighted by g_k, G
///               the Fisher matrix J^T J of the fitted model over the fit band
///               and G_k that of the removed region in shell k, a pose of
///               covariance box^2 v G^-1 / s'^2 leaves box^2 v tr(G_k G^-1)
///               (v the white noise variance); independent of how the pose is
///               parametrized. The poses of a refinement (or of
///               PoseRefinement) reach it at best: a lower bound where the
///               refinement's poses were worse than the image allows;
///   systematic: what the gain misses on average, shell by shell: a_k, the
///               coefficient of R when Y - K is regressed on R and K over the
///               particles of each half set (half_sets, 1 or 2 per particle;
///               K takes up the kept region's own error), gives a_k^(1)
///               a_k^(2) sum |R|^2: the product of two independent estimates
///               has no noise bias. The signal is then (1 + a_k)^2 sum |R|^2
///               where that is more than the template's (a map whose shells
///               are too weak underestimates it).
/// Shares are sums over particles of the left powers over the signal.
struct LeftEstimate {
  std::vector<double> up_to_A;
  std::vector<double> total, map_noise, contrast, pose, systematic;  ///< per band
  std::vector<double> shell_resolution_A;                            ///< per shell 1 .. box/2
  std::vector<double> shell_total, shell_map_noise, shell_contrast, shell_pose, shell_systematic;
  bool map_noise_counted = false;
};
/// Throws std::invalid_argument when results and half_sets differ in size or
/// a result has no shell terms of the box's size.
LeftEstimate estimate_left(const std::vector<SubtractResult>& results, const std::vector<int>& half_sets,
                           const std::vector<double>& map_fsc, int box, double pixel_A,
                           const std::vector<double>& up_to_A);

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
/// (d - round(d)) * pixel_A. Angles and origin_z_A are kept. With the optics
/// group's magnification matrix M (forward_model.hpp) the point lies at
/// M^T (A point)_xy from the centre instead (the map's phase at A^T M k).
Recentring recentre(const ProjectionPose& pose, const std::array<int, 3>& point_px, double pixel_A,
                    const std::array<double, 4>& mag = {1, 0, 0, 1});

/// A square image (nz == 1) or a cube, its content moved by whole pixels
/// (wrapping around), then cut (or zero-padded) to new_box around the centre:
/// out(x') = moved(x' + n/2 - new_box/2) on every axis. shift[2] is ignored for an image.
RealGrid shift_and_window(const RealGrid& g, const std::array<int, 3>& shift_px, int new_box);

/// Rounded centre of mass of the positive values of a volume (a mask or a
/// density), voxels from the box centre. Throws InputError when nothing is positive.
std::array<int, 3> rounded_centre_of_mass(const RealGrid& v);

}  // namespace tessera
