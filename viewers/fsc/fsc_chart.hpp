#pragma once
/// The charts of tessera_view_fsc (Qt Charts), built the same way for the
/// window and for --export.
///
/// FSC chart: x is spatial frequency in 1/A, linear, from 0 to the highest
/// Nyquist frequency of the curves (or --max-frequency); its ticks sit at round
/// resolutions and are labelled in A ("Resolution (A)"); a second axis on top
/// is labelled in 1/A. y is the FSC, from min(-0.1, lowest value) to 1.05. Every
/// curve is a line through its shells (shell 0 at frequency 0). Dashed grey
/// lines mark the thresholds; where a curve crosses a threshold (fsc_data.hpp
/// find_crossing) a dot in the curve's colour, a dotted line down to the axis and
/// the resolution in A mark it, and the legend says "name (0.143: 6.10 A)".
///
/// Statistics charts: one per statistic of the runs' iteration events, x the
/// iteration, one line with dots per run.
#include <QChart>
#include <QColor>
#include <optional>
#include <string>
#include <vector>

#include "common/figure.hpp"
#include "fsc/fsc_data.hpp"

namespace tessera::viewer {

struct FscPlotOptions {
  std::vector<double> thresholds{0.143, 0.5};  ///< horizontal lines
  enum class Crossings { Own, All, None };
  /// Own: each curve at its own threshold; All: each curve at every line; None.
  Crossings crossings = Crossings::Own;
  std::string title;
  std::string y_label = "FSC";           ///< the y axis's title
  std::optional<double> max_frequency;  ///< x range end, 1/A (default: highest Nyquist)
};

/// The colour of curve i (a fixed palette of 12, then repeating; curves from
/// the 13th on are dashed).
QColor curve_color(std::size_t i);

/// A new chart (the caller owns it) of the curves.
QChart* make_fsc_chart(const std::vector<FscCurveData>& curves, const FscPlotOptions& options);

/// A new chart of one statistic over iterations, one series per run.
QChart* make_stat_chart(const std::string& stat, const std::vector<IterationSeries>& runs);

/// Human axis title for a statistic name: "resolution_A" -> "Resolution (Å)",
/// "_deg" -> (°), "_px" -> (px), "_s" -> (s); underscores become spaces.
QString stat_title(const std::string& stat);

/// A laid-out chart's geometry with (dx, dy) added: "plot_area", "x_range",
/// "y_range", and per visible series its name, colour, kind ("curve",
/// "threshold", "crossing", "stat") and, for crossings, the resolution and
/// threshold.
Json chart_geometry(const QChart& chart, double dx, double dy);

/// Lays out a chart at `size` off screen (in its own scene) and paints it at
/// `target`'s top-left; returns chart_geometry at that offset.
Json paint_chart(QChart& chart, QPainter& painter, const QRect& target);

}  // namespace tessera::viewer
