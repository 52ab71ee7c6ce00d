#include "orientations/orientation_figure.hpp"

#include <fmt/format.h>

#include <QChart>
#include <QFontMetrics>
#include <QGuiApplication>
#include <QPainter>
#include <memory>

#include "fsc/fsc_chart.hpp"

namespace tessera::viewer {

namespace {

constexpr int kMargin = 12, kTitleH = 44, kLabelW = 44, kBarGap = 28, kBarW = 16, kBarLabelsW = 110;
constexpr int kCaptionH = 40, kChartW = 640, kGap = 16;
constexpr double kAnisotropicScf = 0.81, kAnisotropicCfar = 0.5;  // cryoSPARC's flags

int map_height(const OrientationSettings& s) {
  return s.map_width / 2;
}

}  // namespace

OrientationFigure::OrientationFigure(OrientationRun run, OrientationSettings settings)
    : run_(std::move(run)), settings_(settings) {}

QSize OrientationFigure::natural_size() const {
  const int body_h = std::max(map_height(settings_) + kCaptionH, run_.cones ? 420 : 0);
  int w = kMargin;
  if (run_.views) w += kLabelW + settings_.map_width + kBarGap + kBarW + kBarLabelsW;
  if (run_.cones) w += (run_.views ? kGap : 0) + kChartW;
  return {std::max(w + kMargin, 560), kMargin + kTitleH + body_h + kMargin};
}

std::string OrientationFigure::title() const {
  std::string t = "Orientations: " + run_.label;
  if (run_.views)
    t += fmt::format(" — {} particles in {} cells of {:g}°", run_.views->particles, run_.views->counts.size(),
                     run_.views->bin_deg);
  return t;
}

std::string OrientationFigure::subtitle() const {
  std::string s;
  if (run_.scf_star)
    s += fmt::format("SCF* {:.3f}{}", *run_.scf_star, *run_.scf_star < kAnisotropicScf ? " (below 0.81)" : "");
  if (run_.cfar)
    s += fmt::format("{}cFAR {:.3f}{}", s.empty() ? "" : "     ", *run_.cfar,
                     *run_.cfar < kAnisotropicCfar ? " (below 0.5: anisotropic)" : "");
  if (run_.cones)
    s += fmt::format("{}worst cone about (rot {:.0f}°, tilt {:.0f}°), best about (rot {:.0f}°, tilt {:.0f}°)",
                     s.empty() ? "" : "     ", run_.cones->worst_direction.rot, run_.cones->worst_direction.tilt,
                     run_.cones->best_direction.rot, run_.cones->best_direction.tilt);
  return s;
}

Json OrientationFigure::paint(QPainter& painter, QSize size) {
  Json g = Json::object();
  painter.save();
  QFont bold = painter.font();
  bold.setBold(true);
  bold.setPointSizeF(bold.pointSizeF() * 1.2);
  painter.setFont(bold);
  painter.setPen(Qt::black);
  const QString heading = QString::fromStdString(title()), sub = QString::fromStdString(subtitle());
  painter.drawText(QPointF(kMargin, kMargin + QFontMetrics(bold).ascent()), heading);
  painter.restore();
  painter.setPen(Qt::black);
  painter.drawText(QPointF(kMargin, kMargin + kTitleH - 8), sub);
  g["title"] = heading.toStdString();
  g["subtitle"] = sub.toStdString();
  const int top = kMargin + kTitleH;
  int x = kMargin;
  if (run_.views) {
    const int mw = settings_.map_width, mh = map_height(settings_);
    const QRect map(x + kLabelW, top + 8, mw, mh);
    const QRect bar(map.right() + kBarGap, map.top() + 10, kBarW, mh - 40);
    g["sky_map"] = paint_sky_map(painter, map, bar, *run_.views, settings_.scale);
    painter.setPen(Qt::black);
    painter.drawText(QRect(map.left(), map.bottom() + 6, mw, kCaptionH - 6), Qt::AlignHCenter | Qt::TextWordWrap,
                     QString::fromUtf8("Hammer equal-area projection: across, rot (°); down, tilt (°), 0 at the top"));
    x = bar.right() + kBarLabelsW;
  }
  if (run_.cones) {
    if (run_.views) x += kGap;
    const ConicalCurves& c = *run_.cones;
    FscPlotOptions o;
    o.thresholds = {0.143};
    o.title = run_.cfar ? fmt::format("Conical FSCs (cFAR {:.3f})", *run_.cfar) : "Conical FSCs";
    std::unique_ptr<QChart> chart(make_fsc_chart({c.global, c.worst, c.best}, o));
    const int h = size.height() - top - kMargin;
    Json chart_g = paint_chart(*chart, painter, QRect(x, top, std::max(200, size.width() - x - kMargin), h));
    chart_g["name"] = "cfsc";
    g["cfsc_chart"] = std::move(chart_g);
  }
  return g;
}

}  // namespace tessera::viewer
