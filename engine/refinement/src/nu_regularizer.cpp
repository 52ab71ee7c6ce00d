// Non-uniform refinement's regularizer (nu_regularizer.hpp): per half set, the
// per-voxel cut-offs chosen by cross-validation between that half's folds,
// applied to the half's unregularized map.
#include "tessera/nu_regularizer.hpp"

#include <fmt/format.h>
#include <stdexcept>
#include <vector>

namespace tessera {
namespace {

class NuRegularizer final : public Regularizer {
 public:
  NuRegularizer(const LocalFilterOptions& filter, int folds) : filter_(filter), folds_(folds) {
    if (folds < 2) throw std::invalid_argument(fmt::format("non-uniform regularizer: needs at least 2 folds, got {}", folds));
  }

  int folds_per_half() const override { return folds_; }

  HalfSetReconstruction reconstruct(const BackProjector& a, const BackProjector& b,
                                    const RegularizerContext& c) const override {
    if (c.folds_a.size() != static_cast<std::size_t>(folds_) || c.folds_b.size() != static_cast<std::size_t>(folds_))
      throw std::logic_error(fmt::format("non-uniform regularizer: given {} and {} folds, asked for {} per half",
                                         c.folds_a.size(), c.folds_b.size(), folds_));
    // The raw maps and FSC exactly as the Wiener regularizer makes them (band-limited as the
    // iteration asks; the fold maps, which serve the choice, likewise).
    HalfSetReconstruction r = reconstruct_halves(a, b, false, false, c.threads, c.band_limit_px);
    LocalFilterOptions o = filter_;
    o.threads = c.threads;
    if (c.band_limit_px) o.highest_cutoff_px = *c.band_limit_px;
    const RealGrid cut_a = choose_cutoffs(c.folds_a, c, o);
    r.half_a = apply_local_filter(r.raw_a, cut_a, o);
    const RealGrid cut_b = choose_cutoffs(c.folds_b, c, o);
    r.half_b = apply_local_filter(r.raw_b, cut_b, o);
    r.local_cutoff_px = cut_a;
    for (std::size_t i = 0; i < cut_a.size(); ++i) r.local_cutoff_px[i] = 0.5f * (cut_a[i] + cut_b[i]);
    return r;
  }

 private:
  // One half's cut-offs from its folds alone.
  static RealGrid choose_cutoffs(std::span<const BackProjector> folds, const RegularizerContext& c,
                                 const LocalFilterOptions& o) {
    ReconstructOptions ro;
    ro.threads = c.threads;
    ro.band_limit_px = c.band_limit_px;
    std::vector<RealGrid> maps;
    maps.reserve(folds.size());
    for (const BackProjector& f : folds) maps.push_back(f.reconstruct(ro));
    std::vector<const RealGrid*> ptrs;
    for (const RealGrid& m : maps) ptrs.push_back(&m);
    const RealGrid* mask = c.mask.size() == maps.front().size() ? &c.mask : nullptr;
    return choose_local_cutoffs(ptrs, mask, o).cutoff_px;
  }

  LocalFilterOptions filter_;
  int folds_;
};

}  // namespace

std::unique_ptr<Regularizer> make_nu_regularizer(const LocalFilterOptions& filter, int folds_per_half) {
  return std::make_unique<NuRegularizer>(filter, folds_per_half);
}

}  // namespace tessera
