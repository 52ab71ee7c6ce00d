#include "fsc/fsc_chart.hpp"

#include <fmt/format.h>

#include <QCategoryAxis>
#include <QCoreApplication>
#include <QGraphicsLayout>
#include <QGraphicsScene>
#include <QGraphicsSimpleTextItem>
#include <QLegendMarker>
#include <QLineSeries>
#include <QPainter>
#include <QScatterSeries>
#include <QValueAxis>
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

namespace tessera::viewer {

namespace {

constexpr double kYMax = 1.05;

// "6.19 Å", "12.1 Å", "123 Å".
QString angstrom(double res_A) {
  const int decimals = res_A < 10 ? 2 : res_A < 100 ? 1 : 0;
  return QString::fromStdString(fmt::format("{:.{}f}", res_A, decimals)) + QString::fromUtf8(" Å");
}

// "0.143: 6.10 Å", "0.143: beyond Nyquist (6.00 Å)", "0.143: below from shell 1".
QString crossing_text(const Crossing& c, double voxel_A) {
  QString t = QString::number(c.threshold) + ": ";
  if (!c.resolution_A) return t + "beyond Nyquist (" + angstrom(2 * voxel_A) + ")";
  if (std::isinf(*c.resolution_A)) return t + "below from shell 1";
  return t + QString::fromStdString(fmt::format("{:.2f}", *c.resolution_A)) + QString::fromUtf8(" Å");
}

void hide_from_legend(QChart* chart, QAbstractSeries* s) {
  for (QLegendMarker* m : chart->legend()->markers(s)) m->setVisible(false);
}

void attach(QChart* chart, QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y) {
  chart->addSeries(s);
  s->attachAxis(x);
  s->attachAxis(y);
}

// Ticks at round resolutions, at least `gap` apart in frequency, up to xmax.
QCategoryAxis* resolution_axis(double xmax) {
  static constexpr std::array kRes{200.0, 100.0, 50.0, 30.0, 20.0, 15.0, 12.0, 10.0, 9.0, 8.0, 7.0, 6.0,
                                   5.5,   5.0,   4.5,  4.0,  3.5,  3.0,  2.8,  2.6,  2.5, 2.4, 2.2, 2.0,
                                   1.9,   1.8,   1.7,  1.6,  1.5,  1.4,  1.3,  1.2,  1.1, 1.0, 0.9, 0.8};
  auto* axis = new QCategoryAxis;
  axis->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
  axis->setRange(0, xmax);
  axis->setTitleText(QString::fromUtf8("Resolution (Å)"));
  const double gap = xmax / 12.0;
  double last = 0;
  for (double r : kRes) {
    const double f = 1.0 / r;
    if (f > xmax * 1.0001) break;
    if (f - last < gap) continue;
    axis->append(QString::fromStdString(fmt::format("{:g}", r)), f);
    last = f;
  }
  return axis;
}

QValueAxis* value_axis(const QString& title, double lo, double hi) {
  auto* axis = new QValueAxis;
  axis->setRange(lo, hi);
  axis->setTitleText(title);
  return axis;
}

// 1, 2, 2.5 or 5 times a power of ten, at least `x`.
double nice_step(double x) {
  const double p = std::pow(10.0, std::floor(std::log10(x)));
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * p >= x) return m * p;
  return 10 * p;
}

void style_title(QChart* chart) {
  QFont f = chart->titleFont();
  f.setPointSizeF(f.pointSizeF() * 1.25);
  f.setBold(true);
  chart->setTitleFont(f);
}

QPen pen(const QColor& c, double width, Qt::PenStyle style = Qt::SolidLine) {
  QPen p(c, width, style);
  p.setCapStyle(Qt::FlatCap);
  return p;
}

void add_crossing(QChart* chart, const FscCurveData& curve, const Crossing& c, const QColor& color, double ymin,
                  QAbstractAxis* x, QAbstractAxis* y) {
  if (!c.resolution_A || std::isinf(*c.resolution_A)) return;
  const double f = *c.frequency;
  auto* drop = new QLineSeries;
  drop->append(f, ymin);
  drop->append(f, c.threshold);
  drop->setPen(pen(color, 1.2, Qt::DotLine));
  drop->setProperty("tessera_kind", "drop");
  drop->setProperty("curve", QString::fromStdString(curve.name));
  attach(chart, drop, x, y);
  hide_from_legend(chart, drop);
  auto* dot = new QScatterSeries;
  dot->append(f, c.threshold);
  dot->setMarkerSize(10);
  dot->setColor(color);
  dot->setBorderColor(Qt::black);
  dot->setName(QString::fromStdString(curve.name));
  dot->setProperty("tessera_kind", "crossing");
  dot->setProperty("curve", QString::fromStdString(curve.name));
  dot->setProperty("resolution_A", *c.resolution_A);
  dot->setProperty("threshold", c.threshold);
  attach(chart, dot, x, y);
  hide_from_legend(chart, dot);
  // The resolution beside the dot, kept there when the plot area moves.
  auto* label = new QGraphicsSimpleTextItem(angstrom(*c.resolution_A), chart);
  label->setBrush(color.darker(130));
  QFont font = label->font();
  font.setBold(true);
  label->setFont(font);
  label->setZValue(20);
  label->setData(0, QString::fromStdString(curve.name));
  label->setData(1, QPointF(f, c.threshold));
  label->setData(2, QVariant::fromValue(static_cast<QObject*>(dot)));
}

// Puts each crossing's label above and right of its dot, moved up where it
// would cover a label placed before it (crossings close together).
void place_labels(QChart* chart) {
  std::vector<QGraphicsSimpleTextItem*> labels;
  for (QGraphicsItem* item : chart->childItems())
    if (item->data(1).isValid()) labels.push_back(static_cast<QGraphicsSimpleTextItem*>(item));
  std::sort(labels.begin(), labels.end(),
            [](auto* a, auto* b) { return a->data(1).toPointF().x() < b->data(1).toPointF().x(); });
  std::vector<QRectF> placed;
  for (auto* label : labels) {
    auto* dot = qobject_cast<QAbstractSeries*>(label->data(2).value<QObject*>());
    const QSizeF size = label->boundingRect().size();
    QRectF r(chart->mapToPosition(label->data(1).toPointF(), dot) + QPointF(7, -size.height() - 3), size);
    for (bool moved = true; moved;) {
      moved = false;
      for (const QRectF& other : placed)
        if (r.intersects(other)) {
          r.moveBottom(other.top() - 3);
          moved = true;
        }
    }
    label->setPos(r.topLeft());
    placed.push_back(r);
  }
}

}  // namespace

QColor curve_color(std::size_t i) {
  static constexpr std::array<QRgb, 12> kPalette{0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b,
                                                 0xe377c2, 0x17becf, 0xbcbd22, 0x000080, 0x006d2c, 0xe6ab02};
  return QColor::fromRgb(kPalette[i % kPalette.size()]);
}

QChart* make_fsc_chart(const std::vector<FscCurveData>& curves, const FscPlotOptions& options) {
  auto* chart = new QChart;
  chart->setAnimationOptions(QChart::NoAnimation);
  chart->setTitle(QString::fromStdString(options.title.empty() ? "Fourier shell correlation" : options.title));
  style_title(chart);
  double xmax = 0, ymin = -0.1;
  for (const auto& c : curves) {
    xmax = std::max(xmax, c.frequency.back());
    for (double v : c.fsc) ymin = std::min(ymin, std::floor(v * 10) / 10);
  }
  if (options.max_frequency) xmax = *options.max_frequency;
  QCategoryAxis* x = resolution_axis(xmax);
  QValueAxis* top = value_axis(QString::fromUtf8("Spatial frequency (1/Å)"), 0, xmax);
  top->setGridLineVisible(false);
  top->setTickType(QValueAxis::TicksDynamic);
  top->setTickAnchor(0);
  top->setTickInterval(nice_step(xmax / 6));
  top->setLabelFormat(xmax / 6 < 0.01 ? "%.3f" : "%.2f");
  // Labels at multiples of 0.2 written out, so that no rounding shows as "-0.0".
  auto* y = new QCategoryAxis;
  y->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
  y->setRange(ymin, kYMax);
  y->setTitleText(QString::fromStdString(options.y_label));
  for (int tick = static_cast<int>(std::ceil(ymin * 5 - 1e-9)); tick <= 5; ++tick)
    y->append(QString::fromStdString(fmt::format("{:.1f}", tick / 5.0)), tick / 5.0);
  chart->addAxis(x, Qt::AlignBottom);
  chart->addAxis(top, Qt::AlignTop);
  chart->addAxis(y, Qt::AlignLeft);
  for (double t : options.thresholds) {
    auto* line = new QLineSeries;
    line->append(0, t);
    line->append(xmax, t);
    line->setPen(pen(QColor(110, 110, 110), 1.5, Qt::DashLine));
    line->setName(QString("FSC = %1").arg(t));
    line->setProperty("tessera_kind", "threshold");
    line->setProperty("threshold", t);
    attach(chart, line, x, y);
  }
  for (std::size_t i = 0; i < curves.size(); ++i) {
    const FscCurveData& c = curves[i];
    const QColor color = curve_color(i);
    std::vector<Crossing> crossings;
    if (options.crossings == FscPlotOptions::Crossings::Own && c.threshold)
      crossings.push_back(find_crossing(c, *c.threshold));
    if (options.crossings == FscPlotOptions::Crossings::All)
      for (double t : options.thresholds) crossings.push_back(find_crossing(c, t));
    auto* s = new QLineSeries;
    for (std::size_t k = 0; k < c.fsc.size(); ++k) s->append(c.frequency[k], c.fsc[k]);
    s->setPen(pen(color, 2.5, i < 12 ? Qt::SolidLine : Qt::DashLine));  // colours repeat after 12
    QString name = QString::fromStdString(c.name);
    for (const Crossing& cr : crossings) name += "  (" + crossing_text(cr, c.voxel_A) + ")";
    s->setName(name);
    s->setProperty("tessera_kind", "curve");
    s->setProperty("curve", QString::fromStdString(c.name));
    attach(chart, s, x, y);
    for (const Crossing& cr : crossings) add_crossing(chart, c, cr, color, ymin, x, y);
  }
  QObject::connect(chart, &QChart::plotAreaChanged, chart, [chart] { place_labels(chart); });
  chart->legend()->setAlignment(curves.size() > 3 ? Qt::AlignRight : Qt::AlignBottom);
  // The top axis needs a series of its own to be drawn; an invisible one.
  auto* anchor = new QLineSeries;
  anchor->append(0, ymin);
  anchor->setVisible(false);
  attach(chart, anchor, top, y);
  hide_from_legend(chart, anchor);
  return chart;
}

QString stat_title(const std::string& stat) {
  static const std::array<std::pair<const char*, const char*>, 4> kUnits{
      {{"_A", " (Å)"}, {"_deg", " (°)"}, {"_px", " (px)"}, {"_s", " (s)"}}};
  std::string base = stat, unit;
  for (const auto& [suffix, text] : kUnits) {
    const std::string sfx = suffix;
    if (base.size() > sfx.size() && base.compare(base.size() - sfx.size(), sfx.size(), sfx) == 0) {
      base.resize(base.size() - sfx.size());
      unit = text;
      break;
    }
  }
  std::replace(base.begin(), base.end(), '_', ' ');
  if (!base.empty()) base[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(base[0])));
  return QString::fromStdString(base) + QString::fromUtf8(unit.c_str());
}

QChart* make_stat_chart(const std::string& stat, const std::vector<IterationSeries>& runs) {
  auto* chart = new QChart;
  chart->setAnimationOptions(QChart::NoAnimation);
  chart->setTitle(stat_title(stat));
  style_title(chart);
  chart->legend()->setVisible(runs.size() > 1);
  chart->legend()->setAlignment(Qt::AlignBottom);
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& r : runs)
    if (auto it = r.stats.find(stat); it != r.stats.end())
      for (const auto& [xv, yv] : it->second) {
        x0 = std::min(x0, xv), x1 = std::max(x1, xv), y0 = std::min(y0, yv), y1 = std::max(y1, yv);
      }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  const double ypad = y1 > y0 ? 0.08 * (y1 - y0) : std::max(0.5, 0.05 * std::abs(y0));
  QValueAxis* x = value_axis("Iteration", x0 - 0.5, x1 + 0.5);
  x->setLabelFormat("%d");
  x->setTickType(QValueAxis::TicksDynamic);
  x->setTickAnchor(0);
  x->setTickInterval(std::max(1.0, std::ceil((x1 - x0) / 8.0)));
  // Values that are never negative keep the axis at 0 or above.
  QValueAxis* y = value_axis(stat_title(stat), y0 >= 0 ? std::max(0.0, y0 - ypad) : y0 - ypad, y1 + ypad);
  y->applyNiceNumbers();
  chart->addAxis(x, Qt::AlignBottom);
  chart->addAxis(y, Qt::AlignLeft);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    auto it = runs[i].stats.find(stat);
    if (it == runs[i].stats.end()) continue;
    auto* s = new QLineSeries;
    for (const auto& [xv, yv] : it->second) s->append(xv, yv);
    s->setPen(pen(curve_color(i), 2.5));
    s->setPointsVisible(true);
    s->setName(QString::fromStdString(runs[i].run));
    s->setProperty("tessera_kind", "stat");
    attach(chart, s, x, y);
  }
  return chart;
}

Json chart_geometry(const QChart& chart, double dx, double dy) {
  Json g = Json::object();
  g["plot_area"] = rect_json(chart.plotArea().translated(dx, dy));
  g["title"] = chart.title().toStdString();
  for (QAbstractAxis* a : chart.axes()) {
    const auto* v = qobject_cast<QValueAxis*>(a);
    if (!v || a->alignment() == Qt::AlignTop) continue;
    g[a->orientation() == Qt::Horizontal ? "x_range" : "y_range"] = {v->min(), v->max()};
    if (a->orientation() == Qt::Vertical) g["y_label"] = a->titleText().toStdString();
  }
  Json series = Json::array();
  for (QAbstractSeries* s : chart.series()) {
    if (!s->isVisible()) continue;
    Json j{{"name", s->name().toStdString()}, {"kind", s->property("tessera_kind").toString().toStdString()}};
    if (auto* xy = qobject_cast<QXYSeries*>(s)) {
      j["color"] = color_name(s->type() == QAbstractSeries::SeriesTypeScatter ? xy->color() : xy->pen().color());
      if (s->type() == QAbstractSeries::SeriesTypeScatter) {
        const QPointF p = const_cast<QChart&>(chart).mapToPosition(xy->at(0), s);  // not const in Qt
        j["center"] = {p.x() + dx, p.y() + dy};
      }
    }
    for (const char* key : {"curve", "resolution_A", "threshold"})
      if (s->property(key).isValid()) {
        const QVariant v = s->property(key);
        j[key] = v.typeId() == QMetaType::QString ? Json(v.toString().toStdString()) : Json(v.toDouble());
      }
    series.push_back(std::move(j));
  }
  g["series"] = std::move(series);
  return g;
}

Json paint_chart(QChart& chart, QPainter& painter, const QRect& target) {
  QGraphicsScene scene;
  scene.addItem(&chart);
  chart.setGeometry(QRectF(0, 0, target.width(), target.height()));
  QCoreApplication::sendPostedEvents();
  if (chart.layout()) chart.layout()->activate();
  QCoreApplication::sendPostedEvents();
  painter.save();
  painter.setRenderHint(QPainter::Antialiasing);
  painter.setRenderHint(QPainter::TextAntialiasing);
  scene.render(&painter, QRectF(target), QRectF(0, 0, target.width(), target.height()));
  painter.restore();
  Json g = chart_geometry(chart, target.x(), target.y());
  scene.removeItem(&chart);
  return g;
}

}  // namespace tessera::viewer
