#include "consensus/consensus_chart.hpp"

#include <fmt/format.h>

#include <QAreaSeries>
#include <QChart>
#include <QFontMetrics>
#include <QLineSeries>
#include <QPainter>
#include <QValueAxis>
#include <algorithm>
#include <cmath>
#include <memory>

#include "common/colormap.hpp"
#include "fsc/fsc_chart.hpp"

namespace tessera::viewer {

namespace {

constexpr int kMargin = 12, kGap = 16, kTitleH = 34;
constexpr int kHistogramW = 520, kHistogramH = 340;
constexpr int kMaxCell = 64, kBarGap = 18, kBarW = 14, kBarLabelsW = 52, kPanelTitleH = 26;
const QColor kBarFill(0x6b, 0xae, 0xd6), kBarLine(0x1f, 0x77, 0xb4), kThreshold(0xd6, 0x27, 0x28);
const QColor kMedian(0x40, 0x40, 0x40);

// "Å" for "A", "°" for "deg", other units as they are.
std::string unit_symbol(const std::string& unit) {
  if (unit == "A") return "Å";
  if (unit == "deg") return "°";
  return unit;
}

// About three significant digits, without exponents for the values these figures have.
std::string short_number(double v) {
  const double a = std::abs(v);
  if (a >= 100 || (v == std::round(v) && a < 1e6)) return fmt::format("{:.0f}", v);
  if (a >= 10) return fmt::format("{:.1f}", v);
  if (a >= 1) return fmt::format("{:.2f}", v);
  return fmt::format("{:.3g}", v);
}

// "5°", "88.6 Å", "0.5" (no unit).
std::string with_unit(double v, const std::string& unit) {
  const std::string s = unit_symbol(unit);
  if (s.empty()) return short_number(v);
  return short_number(v) + (s == "°" ? "" : " ") + s;
}

QString qs(const std::string& s) {
  return QString::fromUtf8(s.c_str());
}

// The label up to its first " (": "Consensus resolution (90 deg ...)" -> "Consensus resolution".
std::string short_label(const std::string& label) {
  return label.substr(0, label.find(" ("));
}

void attach(QChart* chart, QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y) {
  chart->addSeries(s);
  s->attachAxis(x);
  s->attachAxis(y);
}

QLineSeries* vertical_line(double x, double top, const QPen& pen, const std::string& name, const char* kind) {
  auto* line = new QLineSeries;
  line->append(x, 0);
  line->append(x, top);
  line->setPen(pen);
  line->setName(qs(name));
  line->setProperty("tessera_kind", kind);
  return line;
}

Json marker_json(const std::optional<double>& v, QChart& chart, QAbstractSeries* s, const QRect& rect) {
  if (!v || !s) return nullptr;
  return {{"value", *v}, {"x", chart.mapToPosition(QPointF(*v, 0), s).x() + rect.x()}};
}

}  // namespace

Json paint_histogram(QPainter& painter, const QRect& rect, const Histogram& h) {
  const std::string unit = unit_symbol(h.unit);
  double xlo = h.edges.front(), xhi = h.edges.back();
  if (h.threshold) {  // stretched to take in the threshold
    const double pad = 0.02 * (xhi - xlo);
    xlo = std::min(xlo, *h.threshold - pad), xhi = std::max(xhi, *h.threshold + pad);
  }
  const long max_count = std::max(1L, *std::max_element(h.counts.begin(), h.counts.end()));
  const std::vector<double> ticks = nice_ticks(0, 1.08 * static_cast<double>(max_count), 5);
  const double ytop = std::max(1.08 * static_cast<double>(max_count), ticks.empty() ? 1.0 : ticks.back());

  auto chart = std::make_unique<QChart>();
  chart->setAnimationOptions(QChart::NoAnimation);
  // The title: the label up to its note in parentheses, the count and the median; the note on a second line.
  std::string title = fmt::format("{}: {} values", short_label(h.label), h.count);
  if (h.median) title += ", median " + with_unit(*h.median, h.unit);
  QString html = qs(title).toHtmlEscaped();
  if (const std::size_t note = h.label.find(" ("); note != std::string::npos && h.label.back() == ')')
    html += "<br><span style=\"font-weight:normal\">" +
            qs(h.label.substr(note + 2, h.label.size() - note - 3)).toHtmlEscaped() + "</span>";
  chart->setTitle(html);
  QFont tf = chart->titleFont();
  tf.setBold(true);
  chart->setTitleFont(tf);
  chart->legend()->setAlignment(Qt::AlignBottom);
  auto* x = new QValueAxis;
  x->setRange(xlo, xhi);
  x->setTitleText(qs(unit.empty() ? short_label(h.label) : short_label(h.label) + " (" + unit + ")"));
  x->setTickType(QValueAxis::TicksDynamic);
  const std::vector<double> xt = nice_ticks(xlo, xhi, 6);
  x->setTickAnchor(xt.empty() ? xlo : xt.front());
  x->setTickInterval(xt.size() > 1 ? xt[1] - xt[0] : xhi - xlo);
  x->setLabelFormat("%g");
  auto* y = new QValueAxis;
  y->setRange(0, ytop);
  y->setTitleText("Count");
  y->setLabelFormat("%.0f");
  y->setTickType(QValueAxis::TicksDynamic);
  y->setTickAnchor(0);
  y->setTickInterval(std::max(1.0, ticks.size() > 1 ? ticks[1] - ticks[0] : ytop));  // whole counts
  chart->addAxis(x, Qt::AlignBottom);
  chart->addAxis(y, Qt::AlignLeft);

  auto* upper = new QLineSeries;
  upper->append(h.edges.front(), 0);
  for (std::size_t b = 0; b < h.counts.size(); ++b) {
    upper->append(h.edges[b], static_cast<double>(h.counts[b]));
    upper->append(h.edges[b + 1], static_cast<double>(h.counts[b]));
  }
  upper->append(h.edges.back(), 0);
  auto* bars = new QAreaSeries(upper);
  bars->setBrush(kBarFill);
  bars->setPen(QPen(kBarLine, 1));
  bars->setName(qs(h.mean ? fmt::format("{} values, mean {}", h.count, with_unit(*h.mean, h.unit))
                          : fmt::format("{} values", h.count)));
  bars->setProperty("tessera_kind", "histogram");
  attach(chart.get(), bars, x, y);
  QLineSeries* median = nullptr;
  if (h.median) {
    median = vertical_line(*h.median, ytop, QPen(kMedian, 1.5, Qt::DotLine), "median " + with_unit(*h.median, h.unit),
                           "median");
    attach(chart.get(), median, x, y);
  }
  QLineSeries* threshold = nullptr;
  if (h.threshold) {
    threshold = vertical_line(*h.threshold, ytop, QPen(kThreshold, 2, Qt::DashLine),
                              "threshold " + with_unit(*h.threshold, h.unit), "threshold");
    threshold->setProperty("threshold", *h.threshold);
    attach(chart.get(), threshold, x, y);
  }

  Json g = paint_chart(*chart, painter, rect);
  g["name"] = h.name;
  g["rect"] = rect_json(rect);
  g["bar_color"] = color_name(kBarFill);
  g["max_count"] = max_count;
  g["median"] = marker_json(h.median, *chart, median, rect);
  g["threshold"] = marker_json(h.threshold, *chart, threshold, rect);
  if (threshold) {  // its value beside the line's top, on the side with room
    const double tx = g["threshold"]["x"].get<double>();
    const QRectF area = chart->plotArea().translated(rect.topLeft());
    const QString text = qs(with_unit(*h.threshold, h.unit));
    const QFontMetrics fm(painter.font());
    const int w = fm.horizontalAdvance(text);
    const double left = tx + w + 6 < area.right() ? tx + 4 : tx - w - 4;
    painter.save();
    painter.setPen(kThreshold);
    painter.drawText(QPointF(left, area.top() + fm.ascent() + 2), text);
    painter.restore();
  }
  return g;
}

namespace {

// Where a heat map's parts go in its panel: the fixed widths and heights around the grid.
struct HeatLayout {
  int left = 0, right = 0, top = 0, bottom = 0;  ///< pixels around the grid
  int row_title_w = 0, label_h = 0;

  HeatLayout(const HeatMap& m, const QFontMetrics& fm) {
    label_h = fm.height();
    int row_label_w = 0;
    for (const auto& r : m.rows) row_label_w = std::max(row_label_w, fm.horizontalAdvance(qs(r)));
    row_title_w = m.row_title.empty() ? 0 : label_h + 6;
    left = row_title_w + std::min(row_label_w, 160) + 8;
    right = kBarGap + kBarW + kBarLabelsW;
    top = kPanelTitleH + (m.column_title.empty() ? 0 : label_h + 4) + label_h + 6;
    bottom = 10;
  }
  int cell(const HeatMap& m, const QSize& panel) const {
    const int rows = static_cast<int>(m.rows.size()), cols = static_cast<int>(m.columns.size());
    return std::max(
        1, std::min({(panel.width() - left - right) / cols, (panel.height() - top - bottom) / rows, kMaxCell}));
  }
};

Limits heat_limits(const HeatMap& m) {
  double lo = m.values[0][0], hi = lo;
  for (const auto& row : m.values)
    for (double v : row) lo = std::min(lo, v), hi = std::max(hi, v);
  if (lo >= 0 && hi <= 1) return {0, 1};
  return {lo, hi};
}

// Every k-th label, k the smallest that keeps labels `size` pixels long apart on cells of `cell`.
int label_step(int size, int cell) {
  return std::max(1, (size + cell - 1) / cell);
}

void draw_labels(QPainter& p, const HeatMap& m, const QRect& grid, int cell, const HeatLayout& l, Json& g) {
  const QFontMetrics fm(p.font());
  int col_label_w = 0;
  for (const auto& c : m.columns) col_label_w = std::max(col_label_w, fm.horizontalAdvance(qs(c)));
  const int row_step = label_step(l.label_h, cell), col_step = label_step(col_label_w + 6, cell);
  p.setPen(Qt::black);
  for (std::size_t r = 0; r < m.rows.size(); r += static_cast<std::size_t>(row_step)) {
    const QRect box(grid.left() - (l.left - l.row_title_w), grid.top() + static_cast<int>(r) * cell,
                    l.left - l.row_title_w - 6, cell);
    p.drawText(box, Qt::AlignRight | Qt::AlignVCenter | Qt::TextDontClip, qs(m.rows[r]));
  }
  const int label_y = grid.top() - 4 - l.label_h;
  for (std::size_t c = 0; c < m.columns.size(); c += static_cast<std::size_t>(col_step)) {
    const QRect box(grid.left() + static_cast<int>(c) * cell, label_y, cell, l.label_h);
    p.drawText(box, Qt::AlignHCenter | Qt::AlignBottom | Qt::TextDontClip, qs(m.columns[c]));
  }
  if (!m.column_title.empty())
    p.drawText(QRect(grid.left(), label_y - l.label_h - 4, std::max(grid.width(), 200), l.label_h),
               Qt::AlignLeft | Qt::AlignBottom | Qt::TextDontClip, qs(m.column_title));
  if (!m.row_title.empty()) {
    p.save();
    p.translate(grid.left() - l.left + l.label_h, grid.center().y());
    p.rotate(-90);
    p.drawText(QRect(-200, -l.label_h, 400, l.label_h), Qt::AlignCenter, qs(m.row_title));
    p.restore();
  }
  g["row_label_step"] = row_step;
  g["column_label_step"] = col_step;
}

}  // namespace

QSize heatmap_natural_size(const HeatMap& m) {
  const HeatLayout l(m, QFontMetrics(QFont()));
  const int cells = static_cast<int>(std::max(m.rows.size(), m.columns.size()));
  const int cell = std::clamp(480 / cells, 10, 56);
  return {std::max(360, l.left + l.right + cell * static_cast<int>(m.columns.size())),
          std::max(300, l.top + l.bottom + cell * static_cast<int>(m.rows.size()))};
}

Json paint_heatmap(QPainter& p, const QRect& rect, const HeatMap& m) {
  p.save();
  const HeatLayout l(m, QFontMetrics(p.font()));
  const int cell = l.cell(m, rect.size());
  const int rows = static_cast<int>(m.rows.size()), cols = static_cast<int>(m.columns.size());
  const QRect grid(rect.left() + l.left, rect.top() + l.top, cell * cols, cell * rows);
  const Limits limits = heat_limits(m);
  const bool unit_range = limits.lo == 0 && limits.hi == 1;
  const auto value_text = [&](double v) { return unit_range ? fmt::format("{:.2f}", v) : short_number(v); };
  const QFontMetrics fm(p.font());
  const bool write = cell >= fm.horizontalAdvance("0.00") + 6 && cell >= fm.height() + 4;
  p.setRenderHint(QPainter::Antialiasing, false);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const double v = m.values[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)];
      const QRect box(grid.left() + c * cell, grid.top() + r * cell, cell, cell);
      const QColor color = ColorMap::heat().at(v, limits);
      p.fillRect(box, color);
      if (!write) continue;
      p.setPen(qGray(color.rgb()) < 128 ? Qt::white : Qt::black);
      p.drawText(box, Qt::AlignCenter, qs(value_text(v)));
    }
  if (cell >= 12) {  // white lines between cells
    p.setPen(QPen(Qt::white, 1));
    for (int c = 1; c < cols; ++c)
      p.drawLine(grid.left() + c * cell, grid.top(), grid.left() + c * cell, grid.bottom());
    for (int r = 1; r < rows; ++r) p.drawLine(grid.left(), grid.top() + r * cell, grid.right(), grid.top() + r * cell);
  }
  const QFont normal = p.font();
  QFont bold = normal;
  bold.setBold(true);
  p.setFont(bold);
  p.setPen(Qt::black);
  p.drawText(QRect(rect.left(), rect.top(), rect.width(), kPanelTitleH), Qt::AlignLeft | Qt::AlignVCenter, qs(m.label));
  p.setFont(normal);
  Json g{{"name", m.name},
         {"label", m.label},
         {"rect", rect_json(rect)},
         {"grid_rect", rect_json(grid)},
         {"cell_size", cell},
         {"rows", m.rows},
         {"columns", m.columns},
         {"limits", {limits.lo, limits.hi}},
         {"map", ColorMap::heat().name()},
         {"values_written", write}};
  draw_labels(p, m, grid, cell, l, g);
  const ColorBarSpec bar{QRect(grid.right() + 1 + kBarGap, grid.top(), kBarW, std::max(grid.height(), 40)),
                         Qt::Vertical, limits, nice_ticks(limits.lo, limits.hi, 4), ""};
  g["color_bar"] = draw_color_bar(p, ColorMap::heat(), bar, [&](double v) { return value_text(v); });
  p.restore();
  return g;
}

namespace {

QFont title_font(QFont f) {
  f.setBold(true);
  f.setPointSizeF(f.pointSizeF() * 1.2);
  return f;
}

}  // namespace

std::string ConsensusFigure::title() const {
  return fmt::format("{}: {} ({})", data_.title, data_.label, data_.file);
}

int ConsensusFigure::columns() const {
  const int n = panels();
  return n <= 1 ? 1 : n <= 4 ? 2 : 3;
}

QSize ConsensusFigure::panel_size() const {
  QSize s(0, 0);
  if (!data_.histograms.empty()) s = QSize(kHistogramW, kHistogramH);
  for (const auto& m : data_.heatmaps) s = s.expandedTo(heatmap_natural_size(m));
  return s;
}

QSize ConsensusFigure::natural_size() const {
  const QSize panel = panel_size();
  const int cols = columns(), rows = (panels() + cols - 1) / cols;
  const int title_w = QFontMetrics(title_font(QFont())).horizontalAdvance(qs(title()));
  return {std::max(title_w, cols * panel.width() + (cols - 1) * kGap) + 2 * kMargin,
          kMargin + kTitleH + rows * panel.height() + (rows - 1) * kGap + kMargin};
}

Json ConsensusFigure::paint(QPainter& painter, QSize size) {
  const int cols = columns(), rows = (panels() + cols - 1) / cols;
  const int top = kMargin + kTitleH;
  const QSize panel(std::max(1, (size.width() - 2 * kMargin - (cols - 1) * kGap) / cols),
                    std::max(1, (size.height() - top - kMargin - (rows - 1) * kGap) / rows));
  const auto slot = [&](int k) {
    return QRect(kMargin + (k % cols) * (panel.width() + kGap), top + (k / cols) * (panel.height() + kGap),
                 panel.width(), panel.height());
  };
  const std::string title = this->title();
  painter.save();
  const QFont bold = title_font(painter.font());
  painter.setFont(bold);
  painter.setPen(Qt::black);
  painter.drawText(QPointF(kMargin, kMargin + QFontMetrics(bold).ascent()), qs(title));
  painter.restore();
  Json g{{"title", title}, {"file", data_.file}, {"columns", cols}};
  Json histograms = Json::array(), heatmaps = Json::array();
  int k = 0;
  for (const auto& h : data_.histograms) histograms.push_back(paint_histogram(painter, slot(k++), h));
  for (const auto& m : data_.heatmaps) heatmaps.push_back(paint_heatmap(painter, slot(k++), m));
  g["histograms"] = std::move(histograms);
  g["heatmaps"] = std::move(heatmaps);
  return g;
}

}  // namespace tessera::viewer
