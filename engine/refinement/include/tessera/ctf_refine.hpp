#pragma once
/// Per-particle defocus refinement: a 1D search of one defocus offset added to
/// both defocus U and V (the astigmatism and its angle kept) of a particle at
/// its current pose, against a reference map.
///
/// The score of an offset d is the alignment's log-likelihood (alignment.hpp)
/// of the particle's image under the forward model (forward_model.hpp) with the
/// CTF of defocus U + d, V + d (model_ctf_points), over the frequencies of a
/// FourierDisk, weighted by the noise model 1 / sigma^2 per shell: the same
/// image-formation model and the same score that align the particle. The
/// contrast scale is the scorer's: a known scale, or profiled out (the score
/// maximized over it at each offset) when the reference's greyscale is unknown.
///
/// The search: every offset on the grid -range, -range + step, ..., +range
/// (the grid always holds 0), then a golden-section search between the best
/// grid offset's neighbours, down to `tolerance_A`. A group (the particles of
/// one micrograph) sums its particles' scores and gets one offset.
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tessera/alignment.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"

namespace tessera {

struct DefocusSearchOptions {
  double range_A = 1000;     ///< offsets searched from -range to +range (Angstrom)
  double step_A = 50;        ///< grid step (Angstrom)
  double tolerance_A = 1;    ///< the golden-section search stops at this bracket width (Angstrom)
};

/// One particle, ready to score defocus offsets at a fixed pose: its windowed
/// transform on the disk (shifted by the pose's origin), the reference's
/// projection at the pose's rotation, the noise weights. One thread at a time.
class DefocusScorer {
 public:
  /// image: the particle's half-complex transform (ParticleImageReader);
  /// reference: the projector of the map it is scored against; pose: its pose
  /// in pixels; inv_sigma2: 1 / sigma^2 per shell; scale: its contrast scale,
  /// nullopt to profile it out.
  DefocusScorer(const ComplexGrid& image, const Particle& particle, const OpticsGroup& optics,
                const Projector& reference, const ModelPose& pose, const FourierDisk& disk,
                const std::vector<double>& inv_sigma2, std::optional<double> scale);
  /// The log-likelihood (up to a constant) with defocus U + offset_A, V + offset_A.
  double score(double offset_A);
  /// Adds, per shell (round(|k|)) of the disk, the residual power
  /// sum |X - a CTF P|^2 (a: the least-squares contrast scale, at offset 0) to
  /// power[shell] and the number of Fourier pixels (with their multiplicity) to
  /// count[shell]: the noise model's estimate (refine_defocus).
  void add_residual_power(std::vector<double>& power, std::vector<double>& count) const;

 private:
  Particle particle_;
  const OpticsGroup* optics_;
  const FourierDisk* disk_;
  ParticleOnDisk on_disk_;
  std::vector<cfloat> projection_;
};

struct DefocusFit {
  double offset_A = 0;  ///< the best offset, within [-range, +range]
  double score = 0;     ///< its (summed) score
  double gain = 0;      ///< score(best) - score(0): how much the data prefer the new defocus
};

/// The offset maximizing score(offset) (the search above). score is called
/// about 2 range / step + 20 times.
DefocusFit search_defocus_offset(const std::function<double(double)>& score, const DefocusSearchOptions& options);

/// The same for a group: the sum of the scorers' scores.
DefocusFit fit_defocus_offset(std::span<DefocusScorer> group, const DefocusSearchOptions& options);

/// Defocus refinement inside the refinement loop (RefineOptions::defocus):
/// homogeneous refinement's step refines each particle's defocus at its new
/// pose against its own half's reference, before its contrast is fitted and it
/// is inserted, in every local-search iteration that starts from a resolution
/// of start_res_A or better; scored from min_res_A to the iteration's
/// alignment limit, with the contrast profiled out.
struct LoopDefocusOptions {
  DefocusSearchOptions search;
  double min_res_A = 20;
  double start_res_A = 8;
};

/// The frequencies a fit of CTF parameters against a map scores (the defocus here, the
/// magnification in mag_refine.hpp): from min_res_A to max_res_A (unset: Nyquist less one shell)
/// in a box of `box` pixels of pixel_A.
FourierDisk ctf_fit_disk(int box, double pixel_A, double min_res_A, std::optional<double> max_res_A);

/// Refining the defocus of a whole set against a map or two half maps.
struct DefocusRefineOptions {
  DefocusSearchOptions search;
  double min_res_A = 20;                  ///< lowest resolution scored (Angstrom)
  std::optional<double> max_res_A;        ///< highest; unset: Nyquist
  bool per_micrograph = false;            ///< one offset per rlnMicrographName
  /// A soft circular window on the images (radii as fractions of box/2), unset
  /// (the default): none. The CTF delocalizes the signal by lambda dz / d
  /// (131 A at 16,000 A defocus and 2.4 A), beyond the particle and the window:
  /// windowing removes the delocalized part and mixes neighbouring Fourier
  /// pixels, whose CTFs differ, so the window biases the defocus (13 A median,
  /// 30 A at most in a noise-free box of 64 at 1.2 A/px; 0.1 A without).
  struct Window {
    double inner_frac = 0.85, outer_frac = 0.99;
  };
  std::optional<Window> window;
  int threads = 1;
};

struct DefocusRefinement {
  std::vector<double> offset_A;  ///< per particle: new defocus = old + offset (U and V)
  std::vector<double> gain;      ///< per particle (or its group's): score gain over the old defocus
};

/// Every particle scored against `maps[half_set - 1]` (one map: every
/// particle against it; two: each half set against its own) at its current
/// pose, with the contrast scale profiled out (the maps may be on any
/// greyscale). The noise model is the residual's power per shell,
/// |X - a CTF P|^2 at the current defoci, over up to 1,000 particles spread
/// through the set: with the scale profiled out, the score's expected noise
/// term is Var(C) / 2P, which only stays constant over the offset when
/// 1 / sigma^2 is the noise's true variance; the images' power (signal plus
/// noise) would bias every particle the same way, a bias that grouping does
/// not average away. Groups: each micrograph name's particles (a particle
/// without one is its own group). Particles must have poses and CTFs; with two
/// maps, half sets 1 or 2. Deterministic for any number of threads.
DefocusRefinement refine_defocus(const ParticleSet& set, std::span<const RealGrid* const> maps,
                                 const DefocusRefineOptions& options);

/// Writes the offsets into the particles' defocus U and V.
void apply_defocus_offsets(ParticleSet& set, std::span<const double> offset_A);

/// Per-micrograph summary of the offsets (for plots): name, count, mean and
/// standard deviation (Angstrom), in order of first appearance.
struct MicrographDefocusChange {
  std::string micrograph;
  long particles = 0;
  double mean_A = 0, sigma_A = 0;
};
std::vector<MicrographDefocusChange> defocus_change_per_micrograph(const ParticleSet& set,
                                                                   std::span<const double> offset_A);

}  // namespace tessera
