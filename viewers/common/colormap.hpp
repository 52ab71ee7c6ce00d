#pragma once
/// Colour maps and colour bars, shared by the viewers that colour data by a value
/// (the volume viewer by local resolution, the orientation viewer by view counts).
///
/// A colour map is a list of stops (t_k, colour_k), t_0 = 0 < t_1 < ... < t_K = 1;
/// the colour at t is the linear interpolation of the two stops around
/// clamp(t, 0, 1), channel by channel, rounded to the nearest integer. A value v
/// under limits [lo, hi] sits at t = (v - lo) / (hi - lo) (0.5 when hi <= lo).
///
/// The maps:
///   rainbow (local resolution, as ResMap, MonoRes and Scipion's ChimeraX
///            viewer colour it; lo = the best resolution, blue):
///            0 #0000ff, 0.25 #00ffff, 0.5 #00ff00, 0.75 #ffff00, 1 #ff0000
///   heat    (counts; near white for few, dark red for the most):
///            0 #fff7bc, 0.25 #fec44f, 0.5 #fe9929, 0.75 #d7301f, 1 #7f0000
#include <QColor>
#include <QRect>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/contrast.hpp"
#include "common/figure.hpp"

class QPainter;

namespace tessera::viewer {

class ColorMap {
 public:
  using Stop = std::pair<double, QColor>;
  /// Stops as above (a programmer's list: std::logic_error unless sorted from 0 to 1).
  ColorMap(std::string name, std::vector<Stop> stops);
  static const ColorMap& rainbow();
  static const ColorMap& heat();

  const std::string& name() const { return name_; }
  QColor at(double t) const;
  QColor at(double v, const Limits& l) const { return at(position(v, l)); }
  static double position(double v, const Limits& l);

 private:
  std::string name_;
  std::vector<Stop> stops_;
};

/// A colour bar: `rect` filled with the map, the low limit on the left
/// (horizontal) or at the bottom (vertical), pixel column (row) k of the bar
/// showing t = (k + 1/2) / length; ticks at `ticks` (values inside the limits)
/// below (horizontal) or right of (vertical) the bar, labelled by `label(value)`;
/// `title` above the bar. Returns its geometry: "rect", "limits", "map",
/// "orientation", and "ticks": each value, its label and its pixel position
/// along the bar (x for horizontal, y for vertical).
struct ColorBarSpec {
  QRect rect;
  Qt::Orientation orientation = Qt::Horizontal;
  Limits limits;
  std::vector<double> ticks;
  std::string title;
};
Json draw_color_bar(QPainter& painter, const ColorMap& map, const ColorBarSpec& spec,
                    const std::function<std::string(double)>& label);

/// About `count` round tick values (1, 2, 2.5 or 5 times a power of ten apart)
/// inside [lo, hi]; the ends are not added.
std::vector<double> nice_ticks(double lo, double hi, int count);

}  // namespace tessera::viewer
