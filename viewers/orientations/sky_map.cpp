#include "orientations/sky_map.hpp"

#include <fmt/format.h>

#include <QFontMetrics>
#include <QImage>
#include <QPainter>
#include <QPainterPath>
#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/colormap.hpp"

namespace tessera::viewer {

namespace {

constexpr double kSqrt2 = std::numbers::sqrt2;
constexpr double kDeg = std::numbers::pi / 180.0;
const QColor kNoViews(0xe0, 0xe0, 0xe0);

QPointF hammer_deg(double lambda_deg, double phi_deg) {
  const double l = lambda_deg * kDeg, p = phi_deg * kDeg;
  const double d = std::sqrt(1 + std::cos(p) * std::cos(l / 2));
  return {2 * kSqrt2 * std::cos(p) * std::sin(l / 2) / d, kSqrt2 * std::sin(p) / d};
}

double count_position(long count, long max, CountScale scale) {
  if (count <= 0 || max <= 0) return 0;
  if (scale == CountScale::Linear) return static_cast<double>(count) / static_cast<double>(max);
  return max == 1 ? 1.0 : std::log(static_cast<double>(count)) / std::log(static_cast<double>(max));
}

QImage cell_picture(const QRect& rect, const ViewCounts& v, long max, CountScale scale) {
  QImage img(rect.size(), QImage::Format_ARGB32);
  img.fill(Qt::transparent);
  std::vector<QRgb> colors(v.counts.size());
  for (std::size_t c = 0; c < v.counts.size(); ++c)
    colors[c] = v.counts[c] == 0 ? kNoViews.rgb() : ColorMap::heat().at(count_position(v.counts[c], max, scale)).rgb();
  const QRectF r(0, 0, rect.width(), rect.height());
  for (int j = 0; j < img.height(); ++j)
    for (int i = 0; i < img.width(); ++i) {
      const double X = ((i + 0.5) / r.width() * 2 - 1) * 2 * kSqrt2, Y = (1 - (j + 0.5) / r.height() * 2) * kSqrt2;
      if (const auto n = hammer_inverse(X, Y)) img.setPixel(i, j, colors[static_cast<std::size_t>(v.grid.cell_of(*n))]);
    }
  return img;
}

void draw_graticule(QPainter& painter, const QRectF& r) {
  painter.save();
  painter.setRenderHint(QPainter::Antialiasing);
  painter.setPen(QPen(QColor(80, 80, 80, 120), 1));
  const auto line = [&](auto point, double from, double to) {
    QPainterPath path;
    for (double a = from; a <= to + 1e-9; a += 2) {
      const QPointF p = hammer_to_pixel(point(a), r);
      a == from ? path.moveTo(p) : path.lineTo(p);
    }
    painter.drawPath(path);
  };
  for (int rot = -120; rot <= 120; rot += 60) line([&](double phi) { return hammer_deg(rot, phi); }, -90, 90);
  for (int tilt = 30; tilt <= 150; tilt += 30) line([&](double l) { return hammer_deg(l, 90 - tilt); }, -180, 180);
  painter.setPen(QPen(QColor(60, 60, 60), 1.2));
  painter.setBrush(Qt::NoBrush);
  painter.drawEllipse(r);
  // Labels: rot under the equator, tilt left of the ellipse.
  QFont small = painter.font();
  small.setPointSizeF(small.pointSizeF() * 0.85);
  painter.setFont(small);
  const QFontMetrics fm(small);
  painter.setPen(QColor(40, 40, 40));
  for (int rot = -120; rot <= 120; rot += 60) {
    const QPointF p = hammer_to_pixel(hammer_deg(rot, 0), r);
    painter.drawText(QPointF(p.x() + 3, p.y() + fm.ascent() + 1), QString::fromUtf8(fmt::format("{}°", rot).c_str()));
  }
  for (int tilt = 30; tilt <= 150; tilt += 30) {  // tilt 0 and 180 are the poles, top and bottom
    const QPointF p = hammer_to_pixel(hammer_deg(-180, 90 - tilt), r);
    const QString t = QString::fromUtf8(fmt::format("{}°", tilt).c_str());
    painter.drawText(QPointF(p.x() - fm.horizontalAdvance(t) - 5, p.y() + fm.ascent() / 2.0 - 1), t);
  }
  painter.restore();
}

}  // namespace

QPointF hammer(const Vec3& n) {
  const double phi = std::asin(std::clamp(n[2], -1.0, 1.0)) / kDeg;
  const double lambda = (std::abs(n[0]) + std::abs(n[1]) > 0 ? std::atan2(n[1], n[0]) : 0.0) / kDeg;
  return hammer_deg(lambda, phi);
}

std::optional<Vec3> hammer_inverse(double X, double Y) {
  const double e = (X * X) / 8 + (Y * Y) / 2;
  if (e > 1) return std::nullopt;
  const double z = std::sqrt(std::max(0.0, 1 - X * X / 16 - Y * Y / 4));
  const double lambda = 2 * std::atan2(z * X, 2 * (2 * z * z - 1));
  const double phi = std::asin(std::clamp(z * Y, -1.0, 1.0));
  return Vec3{std::cos(phi) * std::cos(lambda), std::cos(phi) * std::sin(lambda), std::sin(phi)};
}

QPointF hammer_to_pixel(const QPointF& xy, const QRectF& r) {
  return {r.x() + (xy.x() / (2 * kSqrt2) + 1) * r.width() / 2, r.y() + (1 - xy.y() / kSqrt2) * r.height() / 2};
}

Json paint_sky_map(QPainter& painter, const QRect& area, const QRect& bar, const ViewCounts& v, CountScale scale) {
  const int h = std::min(area.height(), area.width() / 2);
  const QRect rect(area.x(), area.y() + (area.height() - h) / 2, 2 * h, h);
  const long max = *std::max_element(v.counts.begin(), v.counts.end());
  painter.drawImage(rect.topLeft(), cell_picture(rect, v, max, scale));
  draw_graticule(painter, QRectF(rect));
  const auto densest = std::max_element(v.counts.begin(), v.counts.end()) - v.counts.begin();
  const Vec3& d = v.centres[static_cast<std::size_t>(densest)];
  const QPointF dp = hammer_to_pixel(hammer(d), QRectF(rect));
  // The colour bar: counts 0 .. max (linear) or 1 .. max on a log axis.
  ColorBarSpec spec{bar, Qt::Vertical, {}, {}, "views per cell"};
  std::function<std::string(double)> label = [](double x) { return fmt::format("{:g}", x); };
  if (scale == CountScale::Linear || max <= 1) {
    spec.limits = {0, static_cast<double>(std::max(1L, max))};
    spec.ticks = nice_ticks(0, spec.limits.hi, 5);
  } else {
    spec.limits = {0, std::log10(static_cast<double>(max))};
    for (double decade = 1; decade <= static_cast<double>(max); decade *= 10)  // 1, 2, 5, 10, 20, ...
      for (double m : {1.0, 2.0, 5.0})
        if (m * decade <= static_cast<double>(max)) spec.ticks.push_back(std::log10(m * decade));
    label = [](double x) { return fmt::format("{:g}", std::round(std::pow(10.0, x))); };
  }
  Json g{{"rect", rect_json(rect)},
         {"projection", "hammer"},
         {"scale", scale == CountScale::Linear ? "linear" : "log"},
         {"max_count", max},
         {"cells", v.counts.size()},
         {"empty_cells", std::count(v.counts.begin(), v.counts.end(), 0L)},
         {"densest", {{"cell", densest}, {"count", max}, {"xyz", {d[0], d[1], d[2]}}, {"pixel", {dp.x(), dp.y()}}}}};
  g["color_bar"] = draw_color_bar(painter, ColorMap::heat(), spec, label);
  // What grey means, under the bar.
  const QRect swatch(bar.x(), bar.bottom() + 12, bar.width(), 12);
  painter.fillRect(swatch, kNoViews);
  painter.setPen(Qt::black);
  painter.drawRect(swatch.adjusted(0, 0, -1, -1));
  painter.drawText(QPointF(swatch.right() + 8, swatch.bottom()), "none");
  g["no_views_rect"] = rect_json(swatch);
  g["no_views_color"] = color_name(kNoViews);
  return g;
}

}  // namespace tessera::viewer
