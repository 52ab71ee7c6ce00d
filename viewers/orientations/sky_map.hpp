#pragma once
/// The view-direction map of tessera_view_orientations: the sphere of view
/// directions in the Hammer (Hammer-Aitoff) equal-area projection, each pixel
/// coloured by the count of the EqualAreaGrid cell it shows.
///
/// A direction n (unit, map coordinates; orientation_diagnostics.hpp: n =
/// (cos rot sin tilt, sin rot sin tilt, cos tilt)) has longitude
/// lambda = atan2(n_y, n_x) (= rot, in (-180, 180] degrees) and latitude
/// phi = asin(n_z) (= 90 - tilt); the projection puts it at
///   X = 2 sqrt(2) cos(phi) sin(lambda / 2) / sqrt(1 + cos(phi) cos(lambda / 2))
///   Y =   sqrt(2) sin(phi)                 / sqrt(1 + cos(phi) cos(lambda / 2))
/// inside the ellipse (X / 2 sqrt 2)^2 + (Y / sqrt 2)^2 <= 1: rot -180 on the
/// left, 180 on the right, tilt 0 (the +z view) at the top, 180 at the bottom.
/// Equal areas on the sphere have equal areas on the map. In a rectangle
/// [x, y, w, h] (w = 2 h: the ellipse's box) (X, Y) is at pixel
///   (x + (X / (2 sqrt 2) + 1) w / 2,  y + (1 - Y / sqrt 2) h / 2).
///
/// Colours: a cell with no views is light grey (#e0e0e0); a cell with c views
/// has ColorMap::heat (colormap.hpp) at t = c / max (linear scale) or
/// t = ln c / ln max (log scale; t = 1 when max = 1), max the largest count: the
/// densest cell has the map's top colour (#7f0000). Each picture pixel shows the
/// cell of the direction at its centre. Grey graticule lines mark rot every 60
/// degrees and tilt every 30 degrees.
#include <QPointF>
#include <QRect>
#include <optional>

#include "common/figure.hpp"
#include "orientations/orientation_data.hpp"

class QPainter;

namespace tessera::viewer {

enum class CountScale { Linear, Log };

/// (X, Y) of a unit vector.
QPointF hammer(const Vec3& n);
/// The unit vector at (X, Y), or nullopt outside the ellipse.
std::optional<Vec3> hammer_inverse(double X, double Y);
/// (X, Y) -> pixel in the rectangle, as above.
QPointF hammer_to_pixel(const QPointF& xy, const QRectF& rect);

/// Paints the map into `rect` (its height is made half its width, centred
/// vertically) with its graticule, and a colour bar of counts at `bar`. Returns
/// {"rect", "projection", "scale", "max_count", "cells", "empty_cells",
///  "densest": {"cell", "count", "xyz", "pixel"}, "color_bar": {...}}.
Json paint_sky_map(QPainter& painter, const QRect& rect, const QRect& bar, const ViewCounts& views, CountScale scale);

}  // namespace tessera::viewer
