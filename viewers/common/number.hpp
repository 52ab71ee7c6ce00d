#pragma once
/// Numbers typed in options or read from text files by the viewers.
#include <optional>
#include <string>

namespace tessera::viewer {

/// `text` as a number when std::stod reads the whole of it and the value is
/// finite; nullopt otherwise (an empty text, trailing characters, NaN, inf).
std::optional<double> parse_finite(const std::string& text);

}  // namespace tessera::viewer
