#pragma once
/// Agreement between two or more classifications of the same particles
/// (Xmipp's consensus of classes; Sorzano et al. 2020 use it on two RELION 3D
/// classifications): each particle's tuple of classes, one per classification,
/// names an intersection; what the classifications agree on are the large
/// intersections, and chance alone explains an intersection whose size is
/// near what independent classifications would give.
///
/// Chance: if the classifications were independent, a particle would fall in
/// the intersection (c_1, ..., c_m) with probability p0 = f_1(c_1) ... f_m(c_m),
/// f_s(c) the fraction of the N particles in class c of classification s. The
/// p-value of an intersection of n particles is P(X >= n) for X ~ Binomial(N,
/// p0): small when the intersection is larger than chance makes it. Computed
/// exactly by summing the binomial terms in log space (no normal
/// approximation), also as log10 so that values far below 1e-308 stay finite.
///
/// Similarity between two classifications: the Jaccard index of every pair
/// of classes, |A_i n B_j| / |A_i u B_j|.
#include <string>
#include <vector>

namespace tessera {

struct ClassIntersection {
  std::vector<std::string> classes;  ///< one class per classification
  long size = 0;                     ///< particles in every one of these classes
  double expected = 0;               ///< N p0, the size chance gives
  double p_value = 1;                ///< P(X >= size) under independence (may underflow to 0)
  double log10_p_value = 0;          ///< its log10 (finite)
};

struct ClassConsensus {
  long particles = 0;
  /// Per classification: its classes (numbers in numeric order, then names)
  /// and their sizes.
  std::vector<std::vector<std::string>> classes;
  std::vector<std::vector<long>> class_sizes;
  /// Every non-empty intersection, largest first (ties: by classes).
  std::vector<ClassIntersection> intersections;
  /// Per particle: its intersection (index into intersections).
  std::vector<int> intersection_of;
};

/// labels[s][i]: the class of particle i in classification s (every
/// classification the same length, at least two, at least one particle).
/// Throws std::invalid_argument otherwise.
ClassConsensus class_consensus(const std::vector<std::vector<std::string>>& labels);

/// Jaccard index of every pair of classes of classifications s and t:
/// result[i][j] for class i of s and class j of t.
std::vector<std::vector<double>> jaccard_matrix(const ClassConsensus& c,
                                                const std::vector<std::vector<std::string>>& labels, int s, int t);

/// log10 P(X >= n) for X ~ Binomial(trials, p), 0 <= n <= trials, 0 <= p <= 1.
double binomial_upper_tail_log10(long n, long trials, double p);

}  // namespace tessera
