#pragma once
/// Resolution against the number of particles, for real particles and for
/// noise aligned to a map (Heymann 2015, "Validation of 3D EM reconstructions";
/// Xmipp's validate-overfitting protocol; Rosenthal & Henderson 2003 for the
/// B-factor of the curve).
///
/// A curve: for each subset size N and each of several repeats, N particles
/// are split into two halves, each half is back-projected at the poses given
/// (no alignment), and the resolution is where the FSC of the two unfiltered
/// half maps crosses a threshold (resolution_at_interpolated, fsc.hpp). One
/// repeat draws one random order of the particles and its subsets are the
/// prefixes of that order: the subsets of a repeat are nested, so one pass over
/// the images fills the back-projectors of every size (a snapshot is taken at
/// each size), and repeats are independent draws.
///
/// The noise reference: Gaussian white noise images, with the particles' CTFs
/// (their parameters, used to align and to back-project; the noise itself is
/// white) and the particles' pixel variance, aligned to a map by the engine's
/// global pose search (pose_search.hpp), then back-projected at those poses.
/// Noise aligned to a map reproduces the map's low resolution ("Einstein from
/// noise"), but its resolution does not improve with N the way real particles'
/// does.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "tessera/forward_model.hpp"
#include "tessera/grid.hpp"
#include "tessera/particles.hpp"
#include "tessera/pose_search.hpp"
#include "tessera/projector.hpp"

namespace tessera {

/// Subset sizes min_size, 2 min_size, 4 min_size, ... below max_size, then
/// max_size. Throws InputError when min_size < 2 or min_size > max_size.
std::vector<long> doubling_sizes(long min_size, long max_size);

/// The order in which one repeat inserts particles: the subset of size N is
/// the first N entries.
struct SubsetOrder {
  std::vector<long> index;  ///< into the set's particles
  std::vector<int> half;    ///< half set (1 or 2) of each entry
};

/// half_sets: each particle's half set (1, 2, or 0 for none). When every
/// particle has one, each half's particles are shuffled and the two lists
/// interleaved (1, 2, 1, 2, ..., the rest of the longer one last), so that a
/// subset of N holds ceil(N/2) and floor(N/2) of the halves while both last.
/// Otherwise all particles are shuffled and dealt 1, 2, 1, 2, ... in that
/// order. The shuffles draw from item_rng(seed, repeat).
SubsetOrder subset_order(const std::vector<int>& half_sets, std::uint64_t seed, int repeat);
/// Whether every particle has a half set (1 or 2): then subset_order keeps them.
bool every_half_given(const std::vector<int>& half_sets);

/// One image ready for back-projection (BackProjector::insert): data = CTF x
/// the image's transform moved by its origin to the box centre, weight = CTF^2.
struct Insertion {
  ComplexGrid data;
  RealGrid weight;
  Mat3 rotation = identity3();  ///< model_matrix(pose): the rotation, with the magnification matrix if any
};

/// The insertion of a centred image's half-complex transform `f` (N x N) at
/// `pose` with `ctf` (a (N/2+1) x N grid, the CTF with the particle's contrast
/// scale, as reconstruct_set.hpp inserts it; nullptr: no CTF, weight 1).
void make_insertion(const ComplexGrid& f, const ModelPose& pose, const RealGrid* ctf, int box, Insertion& out);

/// Fills `out` with the insertion of entry `index` (a particle of the set),
/// called on thread `thread` (0 .. threads - 1) from several threads at once.
using InsertionSource = std::function<void(int thread, long index, Insertion& out)>;

struct CurveOptions {
  std::vector<long> sizes;  ///< ascending, each at most the number of entries
  int repeats = 3;
  std::uint64_t seed = 1;
  int threads = 1;
  double threshold = 0.143;
  std::vector<Mat3> symmetry;  ///< point-group operators; empty = C1
  int padding = 2;
  std::optional<double> max_radius_px;  ///< frequencies back-projected (default: Nyquist)
  const RealGrid* mask = nullptr;       ///< FSC of the masked half maps (no correction); nullptr: unmasked
  AccumulationQuanta quanta;            ///< of the back-projectors (AccumulationQuanta::for_power)
  /// Also make the full map (Wiener filtered, as reconstruct_set.hpp) of the
  /// largest subset of the first repeat: ResolutionCurve::full_map.
  bool want_full_map = false;
};

/// Mean and standard deviation (n - 1 in the denominator; 0 for one value)
/// of the finite values; nullopt for both when there are none.
struct Spread {
  std::optional<double> mean, sd;
};
Spread spread_of(const std::vector<std::optional<double>>& values);

struct ResolutionCurve {
  std::vector<long> sizes;
  /// [size][repeat], Angstrom: nullopt where the FSC stays above the threshold
  /// up to Nyquist; +infinity where it is below from shell 1 on.
  std::vector<std::vector<std::optional<double>>> resolution_A;
  std::vector<std::vector<std::vector<double>>> fsc;  ///< [size][repeat] per shell
  RealGrid full_map;                                  ///< with CurveOptions::want_full_map
};

/// The curve of `entries` entries whose half sets are `half_sets` (size =
/// entries; see subset_order), images of `box` px at pixel_A. progress(done,
/// total) counts insertions over all repeats, from the calling thread. A
/// subset of every entry, each in its given half, is the same in every repeat:
/// it is reconstructed once and its result repeated.
/// Memory: one pair of back-projectors (CurveOptions::max_radius_px bounds
/// them) and one reconstruction at a time.
ResolutionCurve resolution_curve(const std::vector<int>& half_sets, int box, double pixel_A,
                                 const InsertionSource& source, const CurveOptions& options,
                                 const std::function<void(long, long)>& progress = {});

/// The insertions of a set's particles at their own poses with their CTFs
/// (apply_ctf false: weight 1 and the contrast scale only, as reconstruct_set
/// does), read from their stacks by one ParticleImageReader per thread.
/// The returned source refers to `set`, which must outlive it.
InsertionSource particle_insertions(const ParticleSet& set, int box, int threads, bool apply_ctf);

/// Mean over up to max_images particles spread through the set of each image's
/// pixel variance about its own mean (signal included: at the SNR of cryo-EM
/// images it adds a few % to the noise).
double mean_pixel_variance(const ParticleSet& set, int box, long max_images = 500);

/// The centred half-complex transform of noise image `index`: pixels drawn
/// N(0, sd^2) from item_rng(seed, index), so any thread makes the same image.
void noise_transform(std::uint64_t seed, long index, int box, double sd, ComplexGrid& out);

struct NoiseAlignOptions {
  std::uint64_t seed = 1;  ///< of the noise images (noise_transform)
  double pixel_sd = 1;     ///< of the noise images
  double kmax_px = 0;      ///< highest frequency used for alignment (pixels)
  GlobalSearchOptions search;
  int threads = 1;
  bool apply_ctf = true;
};

/// Aligns noise image j (noise_transform(seed, j)) with the CTF (scale 1) of
/// particle particles[j] of the set to `reference` by a global search scoring
/// each pose at its own best contrast (alignment.hpp: the reference's
/// greyscale is not the noise's), with the white noise model of the images.
/// progress(done, total) from the calling thread.
std::vector<ModelPose> align_noise(const ParticleSet& set, const std::vector<long>& particles,
                                   const Projector& reference, const NoiseAlignOptions& options,
                                   const std::function<void(long, long)>& progress = {});

/// The insertions of the aligned noise images: entry j is noise image j at
/// poses[j] with the CTF of particle particles[j] (as particle_insertions).
/// Refers to set, particles and poses, which must outlive it.
InsertionSource noise_insertions(const ParticleSet& set, const std::vector<long>& particles,
                                 const std::vector<ModelPose>& poses, const NoiseAlignOptions& options, int box);

/// The frequency (pixels) up to which noise is aligned to a map resolved to
/// resolution_A: as a refinement at that resolution aligns (4 shells beyond it,
/// never beyond box/2 - 1).
double noise_alignment_kmax(double resolution_A, int box, double pixel_A);

/// Rosenthal & Henderson (2003): ln N = (B / 2) / d^2 + c, fitted as the
/// straight line 1/d^2 = slope ln N + intercept over the sizes whose mean
/// 1/d^2 (over the repeats with a finite resolution) exists, weighted equally.
/// B = 2 / slope, positive when the resolution improves with N (their sign:
/// the B-factor of the signal's fall-off, not RELION's sharpening sign).
struct BfactorFit {
  double bfactor_A2 = 0;
  double slope = 0;      ///< 1/A^2 per unit of ln N
  double intercept = 0;  ///< 1/A^2 at N = 1
  double r = 0;          ///< Pearson correlation of the points
  long from_size = 0, to_size = 0;
  double from_A = 0, to_A = 0;  ///< resolution of the fitted points there: 1 / sqrt(mean 1/d^2)
  int points = 0;
};
/// nullopt with fewer than 2 points or a slope <= 0 (no improvement with N).
std::optional<BfactorFit> rosenthal_henderson_fit(const std::vector<long>& sizes,
                                                  const std::vector<std::vector<std::optional<double>>>& resolution_A);

}  // namespace tessera
