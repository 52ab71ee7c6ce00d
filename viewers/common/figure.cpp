#include "common/figure.hpp"

#include <QMouseEvent>
#include <QPainter>
#include <string_view>

namespace tessera::viewer {

Json rect_json(const QRect& r) {
  return Json::array({r.x(), r.y(), r.width(), r.height()});
}
Json rect_json(const QRectF& r) {
  return Json::array({r.x(), r.y(), r.width(), r.height()});
}
std::string color_name(const QColor& c) {
  return c.name(QColor::HexRgb).toStdString();
}

FigureWidget::FigureWidget(Figure& figure, QWidget* parent) : QWidget(parent), figure_(figure) {
  setAttribute(Qt::WA_OpaquePaintEvent);
  setFixedSize(figure_.natural_size());
}

void FigureWidget::figure_changed() {
  setFixedSize(figure_.natural_size());
  update();
}

QSize FigureWidget::sizeHint() const {
  return figure_.natural_size();
}

void FigureWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), Qt::white);
  geometry_ = figure_.paint(p, size());
}

void FigureWidget::mousePressEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton && on_click_) on_click_(event->position().toPoint());
}

namespace {

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

}  // namespace

Json offset_geometry(const Json& geometry, int dx, int dy) {
  if (geometry.is_array()) {
    Json out = Json::array();
    for (const auto& item : geometry) out.push_back(offset_geometry(item, dx, dy));
    return out;
  }
  if (!geometry.is_object()) return geometry;
  Json out = Json::object();
  for (const auto& [key, value] : geometry.items()) {
    const bool is_rect = (ends_with(key, "rect") || ends_with(key, "area")) && value.is_array() && value.size() == 4;
    if (is_rect) {
      Json r = value;
      r[0] = r[0].get<double>() + dx;
      r[1] = r[1].get<double>() + dy;
      out[key] = r;
    } else {
      out[key] = offset_geometry(value, dx, dy);
    }
  }
  return out;
}

}  // namespace tessera::viewer
