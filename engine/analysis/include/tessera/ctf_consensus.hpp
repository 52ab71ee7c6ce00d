#pragma once
/// Two CTF estimates of the same micrograph or particle (CTFFIND4 against Gctf,
/// cryoSPARC's per-particle defocus against RELION's): how far apart their
/// defocus, astigmatism and astigmatism axis are, and up to which resolution the
/// two CTFs agree in phase.
///
/// Consensus resolution, the criterion of Xmipp's CTF consensus
/// (XmippProtCTFConsensus in scipion-em-xmipp, whose consensusResolution is
/// xmipp's errorMaxFreqCTFs2D; Marabini et al. 2015, doi:10.1016/j.jsb.2015.04.003):
/// two CTFs agree at a frequency while their phases chi differ by less than 90
/// degrees; beyond, their oscillations are out of step and correcting the images
/// with either one loses the other's signal.
///
/// What is computed here: the lowest |k| (1/A), over all directions, at which
/// |chi_A(k) - chi_B(k)| reaches 90 degrees; the consensus resolution is 1/|k|.
/// chi is Ctf::phase (ctf.hpp, RELION's model), each CTF with its own voltage,
/// Cs, amplitude contrast and phase shift. Along the direction at angle a,
/// chi_A - chi_B = d0 + d1 s + d2 s^2 with s = |k|^2 (Ctf::phase_along), so the
/// first crossing of +-90 degrees is the smallest non-negative root of a
/// quadratic, exact in frequency. d0 (phase shifts and amplitude-contrast phases)
/// is taken modulo 360 degrees into (-180, 180]: phase shifts of 350 and -10
/// degrees are the same CTF. d1 depends on the direction only through the
/// astigmatism terms, a sinusoid of period 180 degrees in a, so directions are
/// sampled every kConsensusAzimuthStepDeg = 0.25 degrees over [0, 180) (Friedel:
/// chi(-k) = chi(k)). The sampled direction nearest the worst one is at most
/// 0.125 degrees (2.2e-3 rad) away, where the sinusoid is below its extreme by
/// 2 (2.2e-3)^2 = 1e-5 of its amplitude: the frequency found is within 1e-5
/// (relative) of the exact worst-direction one.
///
///   not reached up to max_frequency (the Nyquist frequency of the pixel size
///   given): no frequency, reported as "beyond Nyquist": the two CTFs agree as
///   far as the images can show;
///   reached at k = 0 (phase shifts or amplitude contrasts 90 degrees or more
///   apart): frequency 0, an infinite (the worst) consensus resolution.
///
/// Where Xmipp differs: errorMaxFreqCTFs2D counts the pixels of a 256 x 256
/// frequency grid at the first CTF's pixel size (corners beyond Nyquist included)
/// where the phases differ by less than 90 degrees, and turns the count into a
/// frequency as count / (pi 128^2) times Nyquist, capped at Nyquist: an average
/// over directions, linear in the area (an agreeing disc of radius r gives
/// (r/128)^2 of Nyquist rather than r/128), sampled at 1/256 of the frequency
/// range. Its phase (CTFDescription::getValueArgument) leaves out the phase shift
/// and the amplitude contrast. Here the worst direction decides, exactly in
/// frequency, and phase shifts count. Xmipp reports a defocus difference
/// max(|U_A - U_B|, |V_A - V_B|) without a threshold; here the difference of the
/// mean defoci, with an optional threshold (CtfConsensusCriteria).
#include <optional>
#include <vector>

#include "tessera/ctf.hpp"

namespace tessera {

/// The phase difference at which two CTFs stop agreeing (Xmipp's HALFPI).
inline constexpr double kConsensusPhaseDeg = 90;
/// Sampling of the directions, degrees (see above).
inline constexpr double kConsensusAzimuthStepDeg = 0.25;

struct CtfDifference {
  double defocus_A = 0;      ///< |(U_A + V_A)/2 - (U_B + V_B)/2|, mean defoci
  double astigmatism_A = 0;  ///< ||U_A - V_A| - |U_B - V_B||
  /// Angle between the two axes of largest defocus (the defocus angle, plus 90
  /// degrees when V > U), in [0, 90]; meaningless when either CTF is (nearly) not
  /// astigmatic.
  double angle_deg = 0;
  double phase_shift_deg = 0;  ///< |phase shift A - phase shift B| modulo 360, in [0, 180]
};
CtfDifference ctf_difference(const CtfParams& a, const CtfParams& b);

struct PhaseAgreement {
  /// Lowest |k| (1/A) at which the phases differ by 90 degrees; nullopt when
  /// they differ by less up to the maximum frequency searched.
  std::optional<double> frequency_invA;
  double azimuth_deg = 0;  ///< direction where it is reached first, [0, 180) from +x towards +y
  /// 1 / frequency in A: nullopt when not reached, +infinity when reached at k = 0.
  std::optional<double> resolution_A() const;
};

/// The consensus resolution of two CTFs (see above), searched up to
/// max_frequency_invA (> 0; usually 1 / (2 pixel size)).
PhaseAgreement phase_agreement(const CtfParams& a, const CtfParams& b, double max_frequency_invA);

/// The lowest s in [0, max_s] at which |d.at(s)| reaches `limit` (> 0), d.c0
/// taken as it is; nullopt when it stays below. 0 when |d.c0| >= limit.
std::optional<double> first_crossing(const RadialPhase& d, double limit, double max_s);

struct CtfConsensusCriteria {
  /// Reject when the mean defoci differ by more (A); none: no limit.
  std::optional<double> max_defocus_diff_A;
  /// Reject when the consensus resolution is worse (larger) than this (A); 15 is
  /// Xmipp's default (minConsResol). Beyond Nyquist never rejects.
  double min_resolution_A = 15;
};

struct CtfConsensus {
  CtfDifference difference;
  PhaseAgreement agreement;
  double max_frequency_invA = 0;  ///< where the search stopped
  bool defocus_rejected = false;
  bool resolution_rejected = false;
  bool accepted() const { return !defocus_rejected && !resolution_rejected; }
};

/// One item: two estimates and the highest frequency its images hold.
struct CtfPair {
  CtfParams a, b;
  double max_frequency_invA = 0;  ///< > 0, usually 1 / (2 pixel size)
};

CtfConsensus ctf_consensus(const CtfPair& pair, const CtfConsensusCriteria& criteria);
/// Every pair, on `threads` threads (>= 1), in order.
std::vector<CtfConsensus> ctf_consensus(const std::vector<CtfPair>& pairs, const CtfConsensusCriteria& criteria,
                                        int threads);

}  // namespace tessera
