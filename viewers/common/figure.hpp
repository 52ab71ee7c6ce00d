#pragma once
/// A figure is what a viewer draws: the same code paints it into the window and
/// into an exported PNG/SVG/PDF, so a figure made with --export is what the
/// window shows.
///
/// Every paint() returns its "geometry": a JSON object saying where it drew what,
/// in pixels from the figure's top-left corner (rectangles as [x, y, w, h]), and
/// the values it drew (axis ranges, contrast limits, sort order). --geometry-json
/// writes it next to an export, so a test or a script can check the picture
/// against the data without guessing the layout.
#include <QColor>
#include <QRect>
#include <QRectF>
#include <QSize>
#include <QWidget>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

class QPainter;

namespace tessera::viewer {

using Json = nlohmann::json;

class Figure {
 public:
  virtual ~Figure() = default;
  /// The size the figure is drawn at unless --size says otherwise.
  virtual QSize natural_size() const = 0;
  /// Draws the figure over (0, 0, size) and returns its geometry.
  virtual Json paint(QPainter& painter, QSize size) = 0;
};

Json rect_json(const QRect& r);
Json rect_json(const QRectF& r);
/// "#rrggbb".
std::string color_name(const QColor& c);

/// A widget that shows a Figure at its natural size (put it in a QScrollArea
/// for large ones). It does not own the figure. After each paint, geometry()
/// is what the figure returned.
class FigureWidget : public QWidget {
 public:
  explicit FigureWidget(Figure& figure, QWidget* parent = nullptr);
  /// Call after the figure changed: resizes to its natural size and repaints.
  void figure_changed();
  const Json& figure_geometry() const { return geometry_; }
  /// Called with the figure position of a left click.
  void on_click(std::function<void(QPoint)> f) { on_click_ = std::move(f); }
  QSize sizeHint() const override;

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;

 private:
  Figure& figure_;
  Json geometry_ = Json::object();
  std::function<void(QPoint)> on_click_;
};

/// Adds (dx, dy) to every rectangle ("rect", "plot_area", ... : 4-number arrays
/// under keys ending in "rect" or "area") in a geometry, recursively: the
/// geometry of a figure drawn at an offset.
Json offset_geometry(const Json& geometry, int dx, int dy);

}  // namespace tessera::viewer
