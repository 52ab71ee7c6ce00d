#pragma once
/// Fourier shell correlation, resolution, low-pass and B-factor filters, phase
/// randomization and the masked-FSC correction, with RELION's conventions
/// (relion_postprocess 3.1: src/postprocessing.cpp, src/fftw.cpp).
///
/// Volumes are cubic (N * N * N); 2D images (N * N, nz == 1) are accepted
/// wherever a volume is. Shells: Fourier voxel (kx, ky, kz), in voxels of
/// frequency (grid.hpp's signed indices), belongs to shell
/// k = round(sqrt(kx^2 + ky^2 + kz^2)); shells run k = 0 .. N/2 (integer
/// division) and the corners beyond N/2 are left out. Shell k stands for the
/// resolution N * voxel_A / k Angstrom (infinite for k = 0).
///
/// Sums over a shell run over the stored half-transform (FFTW r2c layout):
/// each voxel with kx > 0 stands for itself and its Friedel mate but is counted
/// once, as RELION's getFSC and Guinier plot count them.
///
/// Fourier amplitudes reported here (Guinier intercept, shell amplitudes) are
/// those of the normalized transform F(k) = (1 / voxels) sum f(x) exp(-2 pi i k.x / N),
/// as RELION's FourierTransformer gives them, so intercepts compare with RELION's.
///
/// Every filter here is real and radial, so it commutes with translations: no
/// centre_to_corner is needed, and filtered maps keep their centre at N/2.
///
/// Bad parameters (a negative resolution, maps of different shapes, a mask
/// outside [0, 1]) throw InputError with one line naming the parameter.
#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/grid.hpp"

namespace tessera {

/// FSC between two maps of the same shape, one value per shell k = 0 .. N/2:
///   FSC(k) = Re sum F1 conj(F2) / sqrt(sum |F1|^2 sum |F2|^2).
/// A shell where either map has no power gets 0.
std::vector<double> fsc(const RealGrid& a, const RealGrid& b);

/// fsc(a * mask, b * mask), voxel by voxel products. Throws InputError when the shapes differ.
std::vector<double> masked_fsc(const RealGrid& a, const RealGrid& b, const RealGrid& mask);

/// The voxel-wise mean (a + b) / 2 of two maps of the same shape, e.g. the map
/// of two half maps. Throws InputError when the shapes differ.
RealGrid average_maps(const RealGrid& a, const RealGrid& b);

/// Resolution in Angstrom of shells k = 0 .. box/2: box * voxel_A / k, with
/// +infinity for k = 0.
std::vector<double> shell_resolution_A(int box, double voxel_A);

/// RELION's reported resolution (rlnFinalResolution): with k the first shell
/// k >= 1 where curve[k] < threshold, the resolution of shell k - 1 (the last
/// shell still at or above the threshold), so always a shell's resolution.
/// Shell 0 is not examined (its value is the correlation of the means).
/// +infinity when shell 1 is already below the threshold.
/// std::nullopt when the curve never drops below the threshold up to shell
/// box/2: the estimate is limited by Nyquist (2 * voxel_A), and the caller
/// says so rather than reporting Nyquist as a measured resolution.
/// curve.size() must be box/2 + 1 (std::invalid_argument otherwise).
std::optional<double> resolution_at(const std::vector<double>& curve, double threshold, int box,
                                    double voxel_A);

/// As resolution_at, but interpolated linearly in shell index between the
/// last shell at or above the threshold (k - 1) and the first below (k), as
/// relion_postprocess --interpolate does (RELION 4): resolution
/// box * voxel_A / (k - 1 + t), t = (c[k-1] - thr) / (c[k-1] - c[k]).
/// Lies between the resolutions of shells k - 1 and k; +infinity and nullopt
/// in the same cases as resolution_at.
std::optional<double> resolution_at_interpolated(const std::vector<double>& curve, double threshold,
                                                 int box, double voxel_A);

/// Low-pass filter with a raised-cosine edge centred on resolution_A: with
/// c = N * voxel_A / resolution_A (shells, not rounded) and w = soft_edge_shells,
/// Fourier voxels at radius r (voxels) are multiplied by 1 for r <= c - w/2,
/// 0.5 + 0.5 cos(pi (r - c + w/2) / w) up to c + w/2, and 0 beyond (a hard cut
/// at c when w == 0). RELION's lowPassFilterMap does the same with c rounded to
/// a whole shell; its default edge is 2 shells.
RealGrid lowpass(const RealGrid& v, double resolution_A, double voxel_A, double soft_edge_shells = 2);

/// The map with the phases of every Fourier voxel at radius
/// r >= N * voxel_A / beyond_resolution_A (voxels; RELION's randomizePhasesBeyond
/// uses r^2 >= shell^2) replaced by phases drawn uniformly from [0, 2 pi) by a
/// tessera::Rng seeded with `seed`; amplitudes are kept. Hermitian symmetry is
/// kept exactly: on the kx = 0 (and kx = N/2) planes a voxel's mate gets the
/// conjugate phase, and self-conjugate voxels get a random sign, so the result
/// is real and every Fourier amplitude is unchanged.
RealGrid phase_randomize(const RealGrid& v, double beyond_resolution_A, double voxel_A, std::uint64_t seed);

/// FSC curves of a masked gold-standard pair (Chen et al. 2013, Ultramicroscopy
/// 135:24), as relion_postprocess computes them. All curves have box/2 + 1 shells.
struct MaskedFsc {
  std::vector<double> unmasked;           ///< fsc(half_a, half_b)
  std::vector<double> masked;             ///< fsc(half_a * mask, half_b * mask)
  /// FSC of the masked maps after phase randomization (mean over the randomizations)
  std::vector<double> randomized_masked;
  /// masked below shell randomize_from_shell + 2 (RELION moves the start two
  /// shells up to avoid artefacts at the randomization edge), then
  /// (masked - r) / (1 - r) with r = max(0, randomized_masked), and 0 where
  /// r > masked (as RELION; the max is Tessera's: a negative randomized FSC is
  /// noise, and must not lift the corrected FSC above the masked one); shell 0
  /// is set to 1 when masked[0] <= 0, as RELION does.
  std::vector<double> corrected;
  int randomize_from_shell = 0;           ///< phases randomized at radius >= this many voxels
};

/// Masked FSC corrected by phase randomization. Phases are randomized from
/// shell max(1, floor(N * voxel_A / randomize_from_A)) when given (RELION's
/// --randomize_at_A), otherwise from the first shell k >= 1 where the unmasked
/// FSC drops below 0.8 (RELION's default --randomize_at_fsc 0.8). The halves are
/// randomized independently, randomization t (0-based) with generators
/// item_rng(seed, 2t) and (seed, 2t + 1), and the randomized masked FSC is the
/// mean over `randomizations` of them: one (RELION's choice) leaves the
/// correction, and so the resolution and the B-factor, as noisy as a single
/// draw of random phases, which at small boxes moves the resolution by whole
/// shells from seed to seed. Throws InputError when shapes differ, the mask
/// leaves [0, 1], the shell is beyond Nyquist, randomizations < 1, or the
/// unmasked FSC never drops below 0.8 (RELION stops there too: give randomize_from_A).
MaskedFsc corrected_fsc(const RealGrid& half_a, const RealGrid& half_b, const RealGrid& mask, double voxel_A,
                        std::optional<double> randomize_from_A, std::uint64_t seed, int randomizations = 1);

/// The map with every Fourier voxel of shell k (0 .. N/2) multiplied by
/// gains[k]; the corners beyond N/2 are set to 0. gains.size() must be N/2 + 1.
RealGrid shell_weighted(const RealGrid& map, const std::vector<double>& gains);

/// The gains of the Wiener estimate of the signal in one half map, E[S | H] =
/// H SNR / (1 + SNR) per shell, with SNR the half map's signal-to-noise ratio:
/// since the FSC of two halves S + N1 and S + N2 (independent noise of equal
/// power) is SNR / (1 + SNR), the gain of shell k is fsc_curve[k], clamped to
/// [0, 1]. shell_weighted(half, wiener_gains(fsc)) is then the estimate, and
/// what a half map adds to a particle when it is projected and subtracted is
/// least in the mean (signal left plus the map's noise).
std::vector<double> wiener_gains(const std::vector<double>& fsc_curve);

/// Rosenthal & Henderson (2003) weighting as relion_postprocess applies it before
/// fitting the B-factor: Fourier voxels in shell k are multiplied by
/// sqrt(2 f / (1 + f)), f = fsc_curve[k], up to (not including) the first shell
/// where f < 1e-4; that shell, all beyond it and the corners beyond N/2 are
/// set to 0. fsc_curve.size() must be N/2 + 1.
RealGrid fsc_weight(const RealGrid& map, const std::vector<double>& fsc_curve);

/// Mean Fourier amplitude per shell k = 0 .. N/2 (normalized transform, see top).
std::vector<double> shell_mean_amplitude(const RealGrid& map);
/// Mean Fourier power |F|^2 per voxel of shell k = 0 .. N/2 (normalized transform).
std::vector<double> shell_mean_power(const RealGrid& map);

/// Straight-line fit of ln(mean amplitude of shell k) against 1/d_k^2 (A^-2),
/// shells weighted equally, as relion_postprocess --auto_bfac fits its Guinier plot.
struct GuinierFit {
  /// 4 * slope, RELION's sign: a map whose amplitudes fall as exp(-B s^2 / 4)
  /// (s in 1/A) gives bfactor_A2 = -B, negative for real maps (RELION 3.1.3
  /// reported -136.6 for relion_7DDO), and sharpen(map, bfactor_A2) flattens it.
  double bfactor_A2 = 0;
  double intercept = 0;      ///< ln amplitude at 1/d^2 = 0 (rlnFittedInterceptGuinierPlot)
  double fit_min_res_A = 0;  ///< lowest resolution used (largest d, Angstrom)
  double fit_max_res_A = 0;  ///< highest resolution used (smallest d, Angstrom)
  /// Pearson correlation of the fitted points (negative for a decaying
  /// spectrum); RELION's rlnCorrelationFitGuinierPlot is r * r.
  double r = 0;
  int shells_used = 0;
};

/// Fits shells k >= 1 with high_res_A <= d_k <= low_res_A and d_k >= 2 * voxel_A
/// (RELION: --autob_lowres 10, --autob_highres 0 means up to Nyquist); shells
/// with zero amplitude (e.g. removed by fsc_weight) are skipped. To reproduce
/// relion_postprocess --auto_bfac, pass fsc_weight((half1 + half2) / 2, corrected)
/// (the unmasked average). Throws InputError when fewer than 2 shells qualify.
GuinierFit guinier_bfactor(const RealGrid& map, double voxel_A, double low_res_A, double high_res_A);

/// Multiplies Fourier voxels at s = r / (N * voxel_A) (1/A) up to Nyquist by
/// exp(-bfactor_A2 * s^2 / 4) (negative B sharpens) and sets the corners beyond
/// Nyquist to 0, as RELION's applyBFactorToMap; then, when lowpass_A is given,
/// applies lowpass(., *lowpass_A, voxel_A, 2). Shell N/2 thereby loses its
/// voxels beyond r = N/2 (RELION's sharpened Guinier plot drops there too), so
/// fit a sharpened map's Guinier plot up to shell N/2 - 1.
RealGrid sharpen(const RealGrid& map, double voxel_A, double bfactor_A2, std::optional<double> lowpass_A);

}  // namespace tessera
