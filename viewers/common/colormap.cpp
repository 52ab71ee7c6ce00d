#include "common/colormap.hpp"

#include <fmt/format.h>

#include <QFontMetrics>
#include <QPainter>
#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tessera::viewer {

ColorMap::ColorMap(std::string name, std::vector<Stop> stops) : name_(std::move(name)), stops_(std::move(stops)) {
  const bool sorted = std::is_sorted(stops_.begin(), stops_.end(), [](auto& a, auto& b) { return a.first < b.first; });
  if (stops_.size() < 2 || !sorted || stops_.front().first != 0 || stops_.back().first != 1)
    throw std::logic_error("ColorMap " + name_ + ": stops must run from 0 to 1 in order");
}

const ColorMap& ColorMap::rainbow() {
  static const ColorMap map("rainbow", {{0.0, QColor(0, 0, 255)},
                                        {0.25, QColor(0, 255, 255)},
                                        {0.5, QColor(0, 255, 0)},
                                        {0.75, QColor(255, 255, 0)},
                                        {1.0, QColor(255, 0, 0)}});
  return map;
}

const ColorMap& ColorMap::heat() {
  static const ColorMap map("heat", {{0.0, QColor(0xff, 0xf7, 0xbc)},
                                     {0.25, QColor(0xfe, 0xc4, 0x4f)},
                                     {0.5, QColor(0xfe, 0x99, 0x29)},
                                     {0.75, QColor(0xd7, 0x30, 0x1f)},
                                     {1.0, QColor(0x7f, 0x00, 0x00)}});
  return map;
}

double ColorMap::position(double v, const Limits& l) {
  if (!(l.hi > l.lo)) return 0.5;
  return std::clamp((v - l.lo) / (l.hi - l.lo), 0.0, 1.0);
}

QColor ColorMap::at(double t) const {
  t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
  std::size_t k = 1;
  while (k + 1 < stops_.size() && stops_[k].first < t) ++k;
  const auto& [t0, c0] = stops_[k - 1];
  const auto& [t1, c1] = stops_[k];
  const double f = (t - t0) / (t1 - t0);
  const auto mix = [f](int a, int b) { return static_cast<int>(std::lround(a + (b - a) * f)); };
  return QColor(mix(c0.red(), c1.red()), mix(c0.green(), c1.green()), mix(c0.blue(), c1.blue()));
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
  std::vector<double> out;
  if (!(hi > lo) || count < 1) return out;
  const double raw = (hi - lo) / count, p = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * p;
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * p >= raw) {
      step = m * p;
      break;
    }
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step)
    out.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return out;
}

Json draw_color_bar(QPainter& painter, const ColorMap& map, const ColorBarSpec& spec,
                    const std::function<std::string(double)>& label) {
  const QRect& r = spec.rect;
  const bool horizontal = spec.orientation == Qt::Horizontal;
  const int length = horizontal ? r.width() : r.height();
  painter.save();
  painter.setRenderHint(QPainter::Antialiasing, false);
  for (int k = 0; k < length; ++k) {
    const QColor c = map.at((k + 0.5) / length);
    if (horizontal)
      painter.fillRect(QRect(r.left() + k, r.top(), 1, r.height()), c);
    else
      painter.fillRect(QRect(r.left(), r.bottom() - k, r.width(), 1), c);
  }
  painter.setPen(Qt::black);
  painter.drawRect(r.adjusted(0, 0, -1, -1));
  const QFontMetrics fm(painter.font());
  Json ticks = Json::array();
  for (double v : spec.ticks) {
    const double t = ColorMap::position(v, spec.limits);
    const QString text = QString::fromStdString(label(v));
    if (horizontal) {
      const double x = r.left() + t * length;
      painter.drawLine(QPointF(x, r.bottom() + 1), QPointF(x, r.bottom() + 5));
      const int w = fm.horizontalAdvance(text);
      painter.drawText(QPointF(x - w / 2.0, r.bottom() + 6 + fm.ascent()), text);
      ticks.push_back({{"value", v}, {"label", label(v)}, {"x", x}});
    } else {
      const double y = r.bottom() + 1 - t * length;
      painter.drawLine(QPointF(r.right() + 1, y), QPointF(r.right() + 5, y));
      painter.drawText(QPointF(r.right() + 8, y + fm.ascent() / 2.0 - 1), text);
      ticks.push_back({{"value", v}, {"label", label(v)}, {"y", y}});
    }
  }
  if (!spec.title.empty()) {
    const QString title = QString::fromStdString(spec.title);
    if (horizontal)
      painter.drawText(QPointF(r.left(), r.top() - 4), title);
    else
      painter.drawText(QPointF(r.left() - 4, r.top() - 6), title);
  }
  painter.restore();
  return {{"rect", rect_json(r)},
          {"limits", {spec.limits.lo, spec.limits.hi}},
          {"map", map.name()},
          {"orientation", horizontal ? "horizontal" : "vertical"},
          {"ticks", std::move(ticks)}};
}

}  // namespace tessera::viewer
