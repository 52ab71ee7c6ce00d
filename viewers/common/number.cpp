#include "common/number.hpp"

#include <cmath>
#include <exception>

namespace tessera::viewer {

std::optional<double> parse_finite(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace tessera::viewer
