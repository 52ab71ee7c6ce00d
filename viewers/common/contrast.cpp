#include "common/contrast.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/number.hpp"
#include "tessera/error.hpp"

namespace tessera::viewer {

namespace {

double parse_number(const std::string& text, const std::string& what, const std::string& whole) {
  const std::optional<double> v = parse_finite(text);
  if (!v) throw InputError(fmt::format("{}: '{}' is not a number in '{}'", what, text, whole));
  return *v;
}

}  // namespace

ContrastSpec ContrastSpec::parse(const std::string& text, const std::string& what) {
  const auto colon = text.find(':');
  const std::string mode = text.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  ContrastSpec s;
  if (mode == "minmax" && colon == std::string::npos) {
    s.mode = Mode::MinMax;
  } else if (mode == "sigma" && !arg.empty()) {
    s.mode = Mode::Sigma;
    s.k = parse_number(arg, what, text);
    if (!(s.k > 0)) throw InputError(fmt::format("{}: sigma:K needs K > 0, got '{}'", what, text));
  } else if (mode == "percentile" && !arg.empty()) {
    s.mode = Mode::Percentile;
    s.k = parse_number(arg, what, text);
    if (!(s.k >= 0 && s.k < 50))
      throw InputError(fmt::format("{}: percentile:P needs 0 <= P < 50, got '{}'", what, text));
  } else if (mode == "range" && arg.find(',') != std::string::npos) {
    const auto comma = arg.find(',');
    s.mode = Mode::Range;
    s.lo = parse_number(arg.substr(0, comma), what, text);
    s.hi = parse_number(arg.substr(comma + 1), what, text);
    if (!(s.lo < s.hi)) throw InputError(fmt::format("{}: range:LO,HI needs LO < HI, got '{}'", what, text));
  } else {
    throw InputError(fmt::format("{}: '{}' is not one of minmax, sigma:K, percentile:P, range:LO,HI", what, text));
  }
  return s;
}

std::string ContrastSpec::to_string() const {
  switch (mode) {
    case Mode::MinMax:
      return "minmax";
    case Mode::Sigma:
      return fmt::format("sigma:{}", k);
    case Mode::Percentile:
      return fmt::format("percentile:{}", k);
    case Mode::Range:
      return fmt::format("range:{},{}", lo, hi);
  }
  return "minmax";
}

Limits contrast_limits(const ContrastSpec& spec, const float* values, std::size_t n) {
  if (spec.mode == ContrastSpec::Mode::Range) return {spec.lo, spec.hi};
  if (n == 0) return {0, 1};
  if (spec.mode == ContrastSpec::Mode::MinMax) {
    const auto [mn, mx] = std::minmax_element(values, values + n);
    return {*mn, *mx};
  }
  if (spec.mode == ContrastSpec::Mode::Sigma) {
    double mean = 0;
    for (std::size_t i = 0; i < n; ++i) mean += values[i];
    mean /= static_cast<double>(n);
    double var = 0;
    for (std::size_t i = 0; i < n; ++i) var += (values[i] - mean) * (values[i] - mean);
    const double sd = std::sqrt(var / static_cast<double>(n));
    return {mean - spec.k * sd, mean + spec.k * sd};
  }
  std::vector<float> sorted(values, values + n);
  std::sort(sorted.begin(), sorted.end());
  const auto rank = [&](double p) {
    const auto r = static_cast<std::size_t>(std::llround(p / 100.0 * static_cast<double>(n - 1)));
    return static_cast<double>(sorted[std::min(r, n - 1)]);
  };
  return {rank(spec.k), rank(100.0 - spec.k)};
}

std::uint8_t grey_level(double v, const Limits& l) {
  if (!(l.hi > l.lo)) return 128;
  const double t = std::clamp((v - l.lo) / (l.hi - l.lo), 0.0, 1.0);
  return static_cast<std::uint8_t>(std::lround(255.0 * t));
}

int zoomed_size(int n, double zoom) {
  return std::max(1, static_cast<int>(std::lround(n * zoom)));
}

int source_pixel(int i, double zoom, int n) {
  return std::clamp(static_cast<int>(std::floor((i + 0.5) / zoom)), 0, n - 1);
}

QImage grey_image(const float* values, int w, int h, const Limits& l, double zoom) {
  QImage img(zoomed_size(w, zoom), zoomed_size(h, zoom), QImage::Format_RGB32);
  for_each_zoomed_pixel(w, h, zoom, [&](int i, int j, int x, int y) {
    const int g = grey_level(values[static_cast<std::size_t>(y) * w + x], l);
    img.setPixel(i, j, qRgb(g, g, g));
  });
  return img;
}

}  // namespace tessera::viewer
