#pragma once
/// Contrast: how values become grey levels, shared by the volume and particle viewers.
///
/// A contrast maps a value v to the grey level
///   g = round(255 * clamp((v - lo) / (hi - lo), 0, 1))
/// (0 black, 255 white); when hi <= lo every value gets 128. The limits lo, hi
/// come from a ContrastSpec applied to a set of values:
///   "minmax"          lo, hi = smallest and largest value
///   "sigma:K"         lo, hi = mean -/+ K * standard deviation (population), K > 0
///   "percentile:P"    lo, hi = the P-th and (100 - P)-th percentiles, 0 <= P < 50
///                     (nearest rank on the sorted values)
///   "range:LO,HI"     lo, hi as given (the data are not looked at), LO < HI
///
/// Images: row 0 of a grid (y = 0) is the top row of the picture, x runs to the
/// right (as relion_display and Scipion's showj show images). Zoom z > 0 draws
/// each picture pixel (i, j) from grid pixel (min(n - 1, floor((i + 0.5) / z)), ...)
/// (nearest neighbour), in a picture of round(n * z) pixels.
#include <QImage>
#include <cstdint>
#include <string>
#include <utility>

namespace tessera::viewer {

struct ContrastSpec {
  enum class Mode { MinMax, Sigma, Percentile, Range };
  Mode mode = Mode::MinMax;
  double k = 3;           ///< Sigma: K; Percentile: P
  double lo = 0, hi = 1;  ///< Range
  /// Parses the text forms above; throws InputError "<what>: ..." for anything else.
  static ContrastSpec parse(const std::string& text, const std::string& what = "--contrast");
  std::string to_string() const;
};

struct Limits {
  double lo = 0, hi = 1;
};

/// The limits of `spec` over n values (n > 0, or Range).
Limits contrast_limits(const ContrastSpec& spec, const float* values, std::size_t n);

/// The grey level of v under [lo, hi] (see above).
std::uint8_t grey_level(double v, const Limits& l);

/// Size in picture pixels of n grid pixels at zoom z: max(1, round(n * z)).
int zoomed_size(int n, double zoom);
/// The grid pixel that picture pixel i shows at zoom z on an axis of n pixels.
int source_pixel(int i, double zoom, int n);

/// A w x h grid (x fastest, row 0 on top) as an RGB32 grey picture at `zoom`.
QImage grey_image(const float* values, int w, int h, const Limits& l, double zoom);

/// Where each picture pixel of a zoomed w x h grid comes from, for drawing overlays:
/// calls f(picture_x, picture_y, grid_x, grid_y) for every picture pixel.
template <class F>
void for_each_zoomed_pixel(int w, int h, double zoom, F&& f) {
  const int pw = zoomed_size(w, zoom), ph = zoomed_size(h, zoom);
  for (int j = 0; j < ph; ++j) {
    const int y = source_pixel(j, zoom, h);
    for (int i = 0; i < pw; ++i) f(i, j, source_pixel(i, zoom, w), y);
  }
}

}  // namespace tessera::viewer
