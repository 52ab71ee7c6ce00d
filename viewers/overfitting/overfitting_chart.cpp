#include "overfitting/overfitting_chart.hpp"

#include <fmt/format.h>

#include <QCategoryAxis>
#include <QLegendMarker>
#include <QLineSeries>
#include <QScatterSeries>
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

#include "fsc/fsc_chart.hpp"

namespace tessera::viewer {

namespace {

constexpr double kCapDecades = 0.012;  // half width of an error bar's caps, in log10 N

double inv_sq(double d_A) {
  return 1.0 / (d_A * d_A);
}

struct Fit {
  double a = 0, b = 0;
  double from_n = 0, to_n = 0;
  const char* source = "viewer";
};

// Least squares of 1/d^2 = a + b ln N over the sizes with a mean.
std::optional<Fit> fit_rosenthal_henderson(const OverfittingRun& run, const OverfittingCurve& c) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < run.sizes.size(); ++i) {
    if (!c.mean_A[i]) continue;
    const double x = std::log(static_cast<double>(run.sizes[i])), y = inv_sq(*c.mean_A[i]);
    n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double det = n * sxx - sx * sx;
  if (n < 3 || !(det > 0)) return std::nullopt;
  const double b = (n * sxy - sx * sy) / det;
  return Fit{(sy - b * sx) / n, b, static_cast<double>(run.sizes.front()), static_cast<double>(run.sizes.back())};
}

void hide_from_legend(QChart* chart, QAbstractSeries* s) {
  for (QLegendMarker* m : chart->legend()->markers(s)) m->setVisible(false);
}

void attach(QChart* chart, QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y) {
  chart->addSeries(s);
  s->attachAxis(x);
  s->attachAxis(y);
}

QCategoryAxis* size_axis(const std::vector<long>& sizes, double lo, double hi) {
  auto* axis = new QCategoryAxis;
  axis->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
  axis->setRange(lo, hi);
  axis->setTitleText("Particles (log scale)");
  double last = -1e300;
  for (long n : sizes) {
    const double x = std::log10(static_cast<double>(n));
    if (x - last < (hi - lo) / 14) continue;  // labels would overlap
    axis->append(QString::number(n), x);
    last = x;
  }
  return axis;
}

QCategoryAxis* resolution_axis(double lo, double hi) {
  static constexpr std::array kRes{2.0, 2.2, 2.5, 2.8,  3.0,  3.3,  3.6,  4.0,  4.5,  5.0,  5.5,  6.0,
                                   7.0, 8.0, 9.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 100.0};
  auto* axis = new QCategoryAxis;
  axis->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
  axis->setRange(lo, hi);
  axis->setTitleText(QString::fromUtf8("Resolution (Å), linear in 1/d²"));
  // From the top (best) down, at least a tenth of the axis apart; a category axis
  // takes its labels in increasing order.
  std::vector<std::pair<double, double>> ticks;  // (1/d^2, d)
  double last = 1e300;
  for (double r : kRes) {
    const double y = inv_sq(r);
    if (y > hi || y < lo || last - y < (hi - lo) / 10) continue;
    ticks.emplace_back(y, r);
    last = y;
  }
  for (auto it = ticks.rbegin(); it != ticks.rend(); ++it)
    axis->append(QString::fromStdString(fmt::format("{:g}", it->second)), it->first);
  return axis;
}

}  // namespace

Json OverfittingFigure::paint(QPainter& painter, QSize size) {
  const OverfittingRun& run = run_;
  const double x0 = std::log10(static_cast<double>(run.sizes.front()));
  const double x1 = std::log10(static_cast<double>(run.sizes.back()));
  const double span = std::max(x1 - x0, 0.3), xlo = x0 - 0.08 * span, xhi = x1 + 0.08 * span;
  // The y range: every dot and bar drawn.
  double ylo = 1e300, yhi = -1e300;
  const auto extend = [&](double y) { ylo = std::min(ylo, y), yhi = std::max(yhi, y); };
  for (const auto& c : run.curves)
    for (std::size_t i = 0; i < run.sizes.size(); ++i) {
      for (double r : c.repeats_A[i]) extend(inv_sq(r));
      if (!c.mean_A[i]) continue;
      const double m = *c.mean_A[i], sd = c.sd_A[i].value_or(0);
      extend(inv_sq(m + sd));
      if (m - sd > 0) extend(inv_sq(m - sd));
      extend(inv_sq(m));
    }
  if (ylo > yhi) ylo = 0, yhi = inv_sq(2 * run.voxel_A);
  const double pad = std::max(0.06 * (yhi - ylo), 1e-4 * yhi);
  ylo = std::max(0.0, ylo - pad), yhi += pad;

  auto chart = std::make_unique<QChart>();
  chart->setAnimationOptions(QChart::NoAnimation);
  chart->setTitle(
      QString::fromStdString(fmt::format("Resolution against particles: {} (FSC {:g})", run.label, run.threshold)));
  QFont tf = chart->titleFont();
  tf.setBold(true);
  tf.setPointSizeF(tf.pointSizeF() * 1.25);
  chart->setTitleFont(tf);
  QCategoryAxis* x = size_axis(run.sizes, xlo, xhi);
  QCategoryAxis* y = resolution_axis(ylo, yhi);
  chart->addAxis(x, Qt::AlignBottom);
  chart->addAxis(y, Qt::AlignLeft);
  chart->legend()->setAlignment(Qt::AlignBottom);

  std::vector<std::pair<QLineSeries*, const OverfittingCurve*>> means;
  Json fit_json;
  for (std::size_t k = 0; k < run.curves.size(); ++k) {
    const OverfittingCurve& c = run.curves[k];
    const QColor color = curve_color(k);
    auto* repeats = new QScatterSeries;
    repeats->setMarkerSize(5);
    repeats->setColor(color.lighter(160));
    repeats->setBorderColor(color.lighter(160));
    repeats->setProperty("tessera_kind", "repeats");
    repeats->setProperty("curve", QString::fromStdString(c.name));
    for (std::size_t i = 0; i < run.sizes.size(); ++i)
      for (double r : c.repeats_A[i]) repeats->append(std::log10(static_cast<double>(run.sizes[i])), inv_sq(r));
    attach(chart.get(), repeats, x, y);
    hide_from_legend(chart.get(), repeats);
    for (std::size_t i = 0; i < run.sizes.size(); ++i) {
      if (!c.mean_A[i] || !c.sd_A[i] || *c.sd_A[i] <= 0) continue;
      const double xs = std::log10(static_cast<double>(run.sizes[i])), m = *c.mean_A[i], sd = *c.sd_A[i];
      const double lo = inv_sq(m + sd), hi = m - sd > 0 ? std::min(yhi, inv_sq(m - sd)) : yhi;
      auto* bar = new QLineSeries;
      for (const auto& [px, py] : std::array<std::pair<double, double>, 6>{{{xs - kCapDecades, lo},
                                                                            {xs + kCapDecades, lo},
                                                                            {xs, lo},
                                                                            {xs, hi},
                                                                            {xs - kCapDecades, hi},
                                                                            {xs + kCapDecades, hi}}})
        bar->append(px, py);
      bar->setPen(QPen(color, 1.3));
      bar->setProperty("tessera_kind", "error_bar");
      bar->setProperty("curve", QString::fromStdString(c.name));
      attach(chart.get(), bar, x, y);
      hide_from_legend(chart.get(), bar);
    }
    auto* line = new QLineSeries;
    for (std::size_t i = 0; i < run.sizes.size(); ++i)
      if (c.mean_A[i]) line->append(std::log10(static_cast<double>(run.sizes[i])), inv_sq(*c.mean_A[i]));
    line->setPen(QPen(color, 2.5));
    line->setPointsVisible(true);
    line->setMarkerSize(7);
    line->setName(QString::fromStdString(c.name + " (mean ± sd)"));
    line->setProperty("tessera_kind", "curve");
    line->setProperty("curve", QString::fromStdString(c.name));
    attach(chart.get(), line, x, y);
    means.emplace_back(line, &c);
    if (c.name != "particles") continue;
    const std::optional<Fit> f = run.fit
                                     ? Fit{run.fit->intercept, run.fit->slope, run.fit->from_n, run.fit->to_n, "file"}
                                     : fit_rosenthal_henderson(run, c);
    if (f) {
      auto* fit = new QLineSeries;
      for (double n : {f->from_n, f->to_n}) fit->append(std::log10(n), f->a + f->b * std::log(n));
      QPen pen(color.darker(140), 1.5, Qt::DashLine);
      fit->setPen(pen);
      fit->setName(f->b > 0 ? QString::fromUtf8(fmt::format("fit: B = {:.0f} Å²", 2 / f->b).c_str())
                            : QString("fit (no B: resolution does not improve)"));
      fit->setProperty("tessera_kind", "fit");
      attach(chart.get(), fit, x, y);
      fit_json = {{"a", f->a}, {"b", f->b}, {"source", f->source}};
      if (f->b > 0) fit_json["B_A2"] = 2 / f->b;
    }
  }
  Json g = paint_chart(*chart, painter, QRect(QPoint(0, 0), size));
  Json points = Json::object();
  for (const auto& [line, c] : means) {
    Json list = Json::array();
    for (std::size_t i = 0; i < run.sizes.size(); ++i) {
      if (!c->mean_A[i]) continue;
      const QPointF p =
          chart->mapToPosition(QPointF(std::log10(static_cast<double>(run.sizes[i])), inv_sq(*c->mean_A[i])), line);
      list.push_back({{"size", run.sizes[i]},
                      {"mean_A", *c->mean_A[i]},
                      {"sd_A", c->sd_A[i] ? Json(*c->sd_A[i]) : Json(nullptr)},
                      {"pixel", {p.x(), p.y()}}});
    }
    points[c->name] = std::move(list);
  }
  g["points"] = std::move(points);
  if (!fit_json.is_null()) g["fit"] = fit_json;
  return g;
}

}  // namespace tessera::viewer
