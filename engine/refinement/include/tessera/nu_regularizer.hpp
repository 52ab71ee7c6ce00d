#pragma once
/// The regularizer of non-uniform refinement (Punjani, Zhang and Fleet, Nature
/// Methods 17, 1214-1221, 2020), a Regularizer of the one refinement loop
/// (refine.hpp; docs/refine_nu.md).
///
/// Per half set, independently of the other half:
///  1. the loop fills K back-projectors per half (folds_per_half() = K): a
///     particle goes to fold (its index within its half set) mod K
///     (cross_validation_folds), and the half's back-projector is their exact
///     sum;
///  2. the K fold maps are reconstructed without regularization (band-limited
///     when RegularizerContext::band_limit_px is set);
///  3. each voxel's cut-off is chosen by K-fold cross-validation between those
///     fold maps only (choose_local_cutoffs, local_filter.hpp, with the
///     alignment mask): the choice never sees the other half set;
///  4. the half's regularized map is the unregularized half map (all its
///     particles) filtered with those cut-offs (apply_local_filter).
/// The unregularized half maps and their FSC are those of the Wiener
/// regularizer, made the same way (the iteration's resolution stays the
/// gold-standard FSC); only the fold maps are band-limited.
/// With a band limit, candidate cut-offs beyond it are dropped
/// (LocalFilterOptions::highest_cutoff_px): the maps hold nothing there, so
/// they could not differ, and each costs K + 2 FFTs; and the cross-validation
/// runs on the grid of a reconstruction band-limited at the highest candidate
/// (LocalFilterGrid::BandLimited, unless the filter options ask for Full).
/// HalfSetReconstruction::local_cutoff_px returns the mean of the two halves'
/// cut-off maps (Fourier pixels).
#include <memory>

#include "tessera/local_filter.hpp"
#include "tessera/refine.hpp"

namespace tessera {

/// filter: the local filter's options (threads are taken from the
/// RegularizerContext). folds_per_half: K >= 2.
/// Throws std::invalid_argument for K < 2.
std::unique_ptr<Regularizer> make_nu_regularizer(const LocalFilterOptions& filter, int folds_per_half = 2);

}  // namespace tessera
