#pragma once
/// The figure of tessera_view_overfitting: resolution against the number of
/// particles (Xmipp's validate overfitting; the Rosenthal & Henderson 2003 plot).
///
/// x: log10 of the number of particles, ticks at the subset sizes labelled with
///    the number; from log10(first size) - 0.08 span to log10(last) + 0.08 span,
///    span = max(log10(last / first), 0.3).
/// y: 1 / d^2 in 1/A^2, linear (for a B-factor B, 1/d^2 grows as (2 / B) ln N),
///    ticks at round resolutions labelled in A; from the lowest to the highest
///    value drawn (error bars included), 6% added at each end, never below 0.
/// Per curve (particles blue, noise red, then fsc_chart.hpp's palette): the
/// mean resolution at each size (mean_A, as a dot; dots joined by a line), an
/// error bar from 1/(mean + sd)^2 to 1/(mean - sd)^2 (to the top of the axis
/// when mean - sd <= 0) with caps, and every repeat as a small faint dot. Sizes
/// with no mean are left out. A dashed line in the particles' colour: the
/// program's fit 1/d^2 = a + b ln N ("bfactor_fit", over the sizes it spans),
/// else the least-squares fit to the particles' means (3 sizes or more, over all
/// sizes), with B = 2 / b in the legend when b > 0.
///
/// Geometry: fsc_chart.hpp's chart_geometry ("plot_area", "x_range" (log10 N),
/// "y_range" (1/A^2), "series") and "points": per curve, per size drawn, its
/// size, mean_A, sd_A and pixel centre; "fit": a, b, B_A2 (when b > 0), source
/// ("file" or "viewer").
#include <QChart>

#include "common/figure.hpp"
#include "overfitting/overfitting_data.hpp"

namespace tessera::viewer {

class OverfittingFigure : public Figure {
 public:
  explicit OverfittingFigure(OverfittingRun run) : run_(std::move(run)) {}
  const OverfittingRun& run() const { return run_; }
  QSize natural_size() const override { return {820, 560}; }
  Json paint(QPainter& painter, QSize size) override;

 private:
  OverfittingRun run_;
};

}  // namespace tessera::viewer
