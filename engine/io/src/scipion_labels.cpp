#include "scipion_labels.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace tessera::detail {

const MappedLabel* mapped_by_relion(const std::string& relion) {
  for (const auto& m : kMappedLabels)
    if (relion == m.relion) return &m;
  return nullptr;
}

const MappedLabel* mapped_by_scipion(const std::string& scipion) {
  for (const auto& m : kMappedLabels)
    if (scipion == m.scipion) return &m;
  return nullptr;
}

std::string py_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

namespace {

/// from_chars over the whole trimmed text, after an optional leading '+'.
template <typename T>
std::optional<T> parse_whole(const std::string& text) {
  const std::string s = trim(text);
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  T v = 0;
  const auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<double> parse_double(const std::string& text) {
  const auto v = parse_whole<double>(text);
  if (v && !std::isfinite(*v)) return std::nullopt;
  return v;
}

std::optional<long long> parse_integer(const std::string& text) {
  return parse_whole<long long>(text);
}

std::string matrix_json(const Mat4& m) {
  std::vector<std::string> rows;
  for (const auto& r : m)
    rows.push_back(fmt::format("[{}, {}, {}, {}]", py_float(r[0]), py_float(r[1]), py_float(r[2]), py_float(r[3])));
  return fmt::format("[{}]", fmt::join(rows, ", "));
}

Mat4 parse_matrix_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("is not JSON");
  }
  const auto bad = [](const char* why) { throw std::invalid_argument(why); };
  Mat4 m{};
  if (!j.is_array() || j.size() != 4) bad("is not a 4x4 list of rows");
  for (std::size_t i = 0; i < 4; ++i) {
    if (!j[i].is_array() || j[i].size() != 4) bad("is not a 4x4 list of rows");
    for (std::size_t k = 0; k < 4; ++k) {
      if (!j[i][k].is_number()) bad("holds a value that is not a number");
      m[i][k] = j[i][k].get<double>();
      if (!std::isfinite(m[i][k])) bad("holds a value that is not finite");
    }
  }
  // Tolerance 1e-4: far above rounding in any writer (pwem: 1e-15, float32 data: 1e-7),
  // far below what a scaled, sheared or mirrored matrix deviates by.
  constexpr double tol = 1e-4;
  const std::array<double, 4> last{0, 0, 0, 1};
  for (std::size_t k = 0; k < 4; ++k)
    if (std::abs(m[3][k] - last[k]) > tol) bad("has a last row other than [0, 0, 0, 1]");
  for (std::size_t a = 0; a < 3; ++a)
    for (std::size_t b = 0; b < 3; ++b) {
      const double dot = m[a][0] * m[b][0] + m[a][1] * m[b][1] + m[a][2] * m[b][2];
      if (std::abs(dot - (a == b ? 1.0 : 0.0)) > tol) bad("is not a rotation (rows not orthonormal)");
    }
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (det < 0) bad("is a mirror (determinant -1), not a rotation");
  return m;
}

}  // namespace tessera::detail
