#pragma once
/// Scoring a particle image against reference projections, the building block
/// of pose search.
///
/// Model of a particle image X (half-complex transform, centred particle):
///   X(k) ~ a * CTF(k) * P_A(k) * exp(+2 pi i k.o / N) + noise(k)
/// with P_A the reference projection at rotation A, o the origin in pixels
/// (RELION's: the particle's centre is at box centre - o), a the particle's
/// contrast scale and Gaussian noise of variance sigma2(|k|). The score of a
/// pose is the log-likelihood up to terms that do not depend on the pose:
///   S(A, o) = sum_k w_k [ a Re(X conj(CTF P_A) e^{-2 pi i k.o/N}) - a^2 CTF^2 |P_A|^2 / 2 ] / sigma2_k
/// over the Fourier pixels of a FourierDisk (w_k = 2 for kx > 0, 1 on the kx = 0
/// column, so that the half plane counts as the full plane).
///
/// When the scale is unknown (a reference on another greyscale than the
/// particles, e.g. a map from EMDB or another package, whose greyscale a
/// refinement measures before it starts: start_refinement in refine.hpp), the
/// score is maximized over a at each pose (profile likelihood):
///   S(A, o) = C^2 / (2 P) for C > 0, else 0, with C = sum_k w_k Re(...) / sigma2_k
/// and P = sum_k w_k CTF^2 |P_A|^2 / sigma2_k, which does not change when the
/// reference is multiplied by any positive factor.
#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/geometry.hpp"
#include "tessera/grid.hpp"
#include "tessera/projector.hpp"

namespace tessera {

/// The Fourier pixels with kmin_px <= |k| <= kmax_px of an N x N image's half plane.
struct FourierDisk {
  int box = 0;
  double kmax_px = 0;
  std::vector<std::uint32_t> index;  ///< into the half-complex (N/2+1) x N grid
  std::vector<float> kx, ky;         ///< signed frequencies, pixels
  std::vector<float> multiplicity;   ///< 2 for kx > 0, 1 for kx == 0
  std::vector<int> shell;            ///< round(|k|)
  std::size_t size() const { return index.size(); }

  static FourierDisk make(int box, double kmax_px, double kmin_px = 1.0);
};

/// One particle on a disk: its transform (already shifted by its current
/// origin, so that search offsets are relative to it), CTF and noise weights.
struct ParticleOnDisk {
  std::vector<cfloat> x;     ///< X(k) * exp(-2 pi i k.o_prev / N)
  std::vector<float> ctf;
  std::vector<float> weight;  ///< multiplicity / sigma2(shell)
  std::optional<double> scale;  ///< contrast scale a; nullopt: unknown, profiled out (see top)
};

/// x: the particle's half-complex transform; ctf: its CTF on the same grid;
/// inv_sigma2: 1 / noise variance per shell; origin_px: the current origin;
/// scale: the contrast scale, or nullopt to profile it out.
ParticleOnDisk put_on_disk(const ComplexGrid& x, const RealGrid& ctf, const std::vector<double>& inv_sigma2,
                           const FourierDisk& disk, double origin_x_px, double origin_y_px,
                           std::optional<double> scale);

/// Offsets (pixels) of a shift search and their phase factors on a disk.
class ShiftTable {
 public:
  /// A square lattice of offsets within a circle of radius range_px, step step_px.
  ShiftTable(const FourierDisk& disk, double range_px, double step_px);
  std::size_t count() const { return dx_.size(); }
  double dx(std::size_t s) const { return dx_[s]; }
  double dy(std::size_t s) const { return dy_[s]; }
  const cfloat* phases(std::size_t s) const { return phase_.data() + s * npx_; }  ///< e^{-2 pi i k.d/N}

 private:
  std::vector<double> dx_, dy_;
  std::vector<cfloat> phase_;
  std::size_t npx_;
};

struct ShiftScore {
  std::size_t shift = 0;
  double score = 0;
};

/// Scores one projection (on the disk) against a particle for every offset of
/// the table; returns the best. `q` is scratch space. log_prior: when given,
/// log_prior[s] is added to offset s's score (a Gaussian prior on the offset).
ShiftScore best_shift(const ParticleOnDisk& p, const cfloat* projection, const ShiftTable& shifts,
                      std::vector<cfloat>& q, const std::vector<double>* log_prior = nullptr);

/// Score at one offset (dx, dy) in pixels, computing the phases directly.
double score_at(const ParticleOnDisk& p, const cfloat* projection, const FourierDisk& disk, double dx, double dy);

}  // namespace tessera
