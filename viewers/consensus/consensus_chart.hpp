#pragma once
/// The figure of tessera_view_consensus: every histogram and heat map of a
/// consensus summary (consensus_data.hpp), in one grid.
///
/// Layout: a title line ("Pose consensus: <run folder> (pose_consensus.json)"),
/// then the panels, histograms first and heat maps after, each in file order, in
/// rows of `columns` (1 for one figure, 2 for up to four, 3 beyond), every panel
/// as large as the largest panel's natural size (histograms 520 x 340, heat maps
/// as heatmap_natural_size), the figure's margins 12 and gaps 16 pixels.
///
/// Histogram (Qt Charts, drawn by fsc_chart.hpp's paint_chart): the chart's
/// title is the histogram's label (up to a note in parentheses at its end, which
/// goes on a second line), with the number of values and the median;
/// bar b fills [edges[b], edges[b + 1]) x [0, counts[b]] (x linear in the unit,
/// "A" shown as Å and "deg" as °, from the first edge to the last, stretched to
/// take in the threshold; y from 0 to 1.08 times the largest count, "Count";
/// fill #6baed6, the legend says the number of values and the mean); the median
/// is a dotted grey vertical line; the threshold a dashed red (#d62728) vertical
/// line from 0 to the top of the axis, with its value written beside its top and
/// in the legend. The geometry's "title" is the chart's (HTML when two lines).
///
/// Heat map (painted here): cell (r, c) is the square of side `cell` at
/// (grid.x + c cell, grid.y + r cell), filled with ColorMap::heat (colormap.hpp)
/// at the value's position in the limits: [0, 1] when every value lies in
/// [0, 1] (similarities, fractions), else the smallest and largest value; so 0
/// is #fff7bc and 1 is #7f0000. cell = min(available width / columns, available
/// height / rows, 64), at least 1. Row labels right of the row title and left of
/// the grid, column labels above it under the column title, thinned to every
/// k-th when they would overlap; the value (two decimals in [0, 1], else three
/// significant digits) written in each cell when the cells are at least as wide
/// as "0.00" plus 6 pixels and as high as a line plus 4, in black on light cells
/// and white on dark ones; white lines between cells of 12 pixels or more; a
/// vertical colour bar of the limits right of the grid.
///
/// Geometry: {"title", "file", "columns", "histograms": [per histogram:
/// chart_geometry ("plot_area", "x_range", "y_range", "series": kinds
/// "histogram", "median", "threshold") and "name", "rect" (its panel),
/// "bar_color", "max_count", "threshold": {"value", "x"} or null, "median":
/// {"value", "x"} or null], "heatmaps": [per heat map: "name", "label", "rect",
/// "grid_rect", "cell_size", "rows", "columns", "limits", "map" ("heat"),
/// "values_written", "row_label_step", "column_label_step", "color_bar"]}.
#include <QRect>
#include <QSize>

#include "common/figure.hpp"
#include "consensus/consensus_data.hpp"

namespace tessera::viewer {

/// The size a heat map's panel is drawn at unless the figure is given another:
/// cells of clamp(480 / max(rows, columns), 10, 56) pixels and their labels.
QSize heatmap_natural_size(const HeatMap& map);

/// Paints one histogram into `rect` and returns its geometry (above).
Json paint_histogram(QPainter& painter, const QRect& rect, const Histogram& h);

/// Paints one heat map into `rect` and returns its geometry (above).
Json paint_heatmap(QPainter& painter, const QRect& rect, const HeatMap& map);

class ConsensusFigure : public Figure {
 public:
  explicit ConsensusFigure(ConsensusFigures data) : data_(std::move(data)) {}
  const ConsensusFigures& data() const { return data_; }
  QSize natural_size() const override;
  Json paint(QPainter& painter, QSize size) override;

 private:
  int panels() const { return static_cast<int>(data_.histograms.size() + data_.heatmaps.size()); }
  std::string title() const;
  int columns() const;
  QSize panel_size() const;
  ConsensusFigures data_;
};

}  // namespace tessera::viewer
