// What reading and writing .cs files share: rotation vectors, the names of
// kept fields, and the typing of fields written from text.
#include "tessera/cryosparc_cs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include "cryosparc_cs_schema.hpp"
#include "tessera/error.hpp"

namespace tessera {

Mat3 rotation_vector_to_matrix(const Vec3& v) {
  const double t = std::hypot(v[0], v[1], v[2]);
  if (t == 0) return identity3();
  // R = I + sin t [n]x + (1 - cos t) [n]x^2, with 1 - cos t = 2 sin^2(t/2) (no cancellation at small t).
  const double x = v[0] / t, y = v[1] / t, z = v[2] / t;
  const double s = std::sin(t), h = std::sin(t / 2), c = 2 * h * h;
  return Mat3{{{1 - c * (y * y + z * z), -s * z + c * x * y, s * y + c * x * z},
               {s * z + c * x * y, 1 - c * (x * x + z * z), -s * x + c * y * z},
               {-s * y + c * x * z, s * x + c * y * z, 1 - c * (x * x + y * y)}}};
}

Vec3 matrix_to_rotation_vector(const Mat3& r) {
  // Unit quaternion (w, x, y, z) by Shepperd's method: divide by the largest of
  // 4w^2, 4x^2, 4y^2, 4z^2, so every component is accurate.
  const double tr = r[0][0] + r[1][1] + r[2][2];
  const std::array<double, 4> diagonal{tr, r[0][0], r[1][1], r[2][2]};
  const int big = static_cast<int>(std::max_element(diagonal.begin(), diagonal.end()) - diagonal.begin());
  std::array<double, 4> q{};  // w, x, y, z
  if (big == 0) {
    const double s = std::sqrt(std::max(0.0, 1 + tr)) * 2;  // 4w
    q = {s / 4, (r[2][1] - r[1][2]) / s, (r[0][2] - r[2][0]) / s, (r[1][0] - r[0][1]) / s};
  } else {
    const int i = big - 1, j = (i + 1) % 3, k = (i + 2) % 3;
    const double s = std::sqrt(std::max(0.0, 1 + r[i][i] - r[j][j] - r[k][k])) * 2;  // 4 q_i
    q[0] = (r[k][j] - r[j][k]) / s;
    q[1 + i] = s / 4;
    q[1 + j] = (r[j][i] + r[i][j]) / s;
    q[1 + k] = (r[k][i] + r[i][k]) / s;
  }
  const double n = std::sqrt(q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  if (n == 0) return {0, 0, 0};
  // q and -q are the same rotation: take w >= 0 (angle in [0, pi]); at pi (w ~ 0)
  // make the first clearly non-zero axis component positive.
  double sign = q[0] < 0 ? -1 : 1;
  if (std::abs(q[0]) < 1e-12 * n)
    for (int c = 1; c <= 3; ++c)
      if (std::abs(q[c]) > 1e-12 * n) {
        sign = q[c] > 0 ? 1 : -1;
        break;
      }
  const double angle = 2 * std::atan2(n, std::abs(q[0]));
  const double f = sign * angle / n;
  return {f * q[1], f * q[2], f * q[3]};
}

Euler cryosparc_pose_to_euler(const Vec3& pose) {
  return matrix_to_euler(transpose(rotation_vector_to_matrix(pose)));
}

Vec3 euler_to_cryosparc_pose(const Euler& e) {
  return matrix_to_rotation_vector(transpose(euler_to_matrix(e)));
}

std::optional<std::string> cryosparc_extra_label(std::string_view field) {
  if (field.empty() || field.find("__") != std::string_view::npos) return std::nullopt;
  std::string label = "cs_";
  for (const char c : field) {
    if (c == '/') {
      label += "__";
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      label += c;
    } else {
      return std::nullopt;
    }
  }
  return label;
}

std::optional<std::string> cryosparc_field_of_extra(std::string_view label) {
  if (label.substr(0, 3) != "cs_" || label.size() == 3) return std::nullopt;
  std::string field;
  for (std::size_t i = 3; i < label.size(); ++i) {
    if (label.compare(i, 2, "__") == 0) {
      field += '/';
      ++i;
    } else {
      field += label[i];
    }
  }
  return field;
}

namespace detail::cs {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

bool parse_integer(const std::string& s, long long& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

bool parse_unsigned(const std::string& s, unsigned long long& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

bool parse_real(const std::string& s, double& v) {
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  const auto r = std::from_chars(begin, s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

/// The type cryoSPARC gives a field of this name, when the name tells.
std::optional<npy::Field> type_by_name(std::string_view name) {
  const auto slash = name.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? name : name.substr(slash + 1);
  npy::Field f;
  const auto ends_with = [](std::string_view s, std::string_view end) {
    return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
  };
  if (ends_with(name, "uid") || last == "import_sig") {
    f.kind = npy::Kind::unsigned_int, f.size = 8;
  } else if (last == "split" || last == "class" || last == "idx" || last == "exp_group_id" || last == "template_idx" ||
             ends_with(last, "shape")) {
    f.kind = npy::Kind::unsigned_int, f.size = 4;
  } else if (last == "path" || ends_with(last, "_path") || name == field::ctf_type) {
    f.kind = npy::Kind::bytes, f.size = 0;
  } else {
    return std::nullopt;
  }
  return f;
}

/// The type of values with no known type: integers, numbers, or text.
npy::Field infer_type(const std::vector<std::vector<std::string>>& tokens) {
  npy::Field f;
  bool integers = true, numbers = true, negative = false, big = false, beyond_float = false;
  const std::size_t n = tokens.empty() ? 1 : tokens.front().size();
  for (const auto& row : tokens) {
    if (row.size() != n) numbers = integers = false;
    for (const auto& t : row) {
      long long i = 0;
      unsigned long long u = 0;
      double d = 0;
      if (parse_integer(t, i)) {
        negative = negative || i < 0;
        big = big || i > static_cast<long long>(std::numeric_limits<std::uint32_t>::max());
      } else if (parse_unsigned(t, u)) {
        big = true;  // beyond long long: only a uint64 holds it
      } else {
        integers = false;
        numbers = numbers && parse_real(t, d);
        beyond_float = beyond_float || (std::isfinite(d) && std::abs(d) > std::numeric_limits<float>::max());
      }
    }
  }
  if (integers && numbers) {
    f.kind = negative ? npy::Kind::signed_int : npy::Kind::unsigned_int;
    f.size = negative || big ? 8 : 4;
  } else if (numbers) {
    f.kind = npy::Kind::real, f.size = beyond_float ? 8 : 4;  // float64 only where float32 cannot hold a value
  } else {
    f.kind = npy::Kind::bytes, f.size = 0;
  }
  if (f.kind != npy::Kind::bytes && n > 1) f.shape = {static_cast<long>(n)};
  return f;
}

}  // namespace

npy::Column column_from_texts(const std::string& file, std::string_view name, const std::vector<std::string>& texts,
                              const DefaultField* known) {
  std::vector<std::vector<std::string>> tokens;
  tokens.reserve(texts.size());
  for (const auto& t : texts) tokens.push_back(split_commas(t));
  npy::Column c;
  if (known != nullptr) {
    c.field.kind = known->kind, c.field.size = known->size;
    if (known->count > 1) c.field.shape = {known->count};
  } else if (const auto by_name = type_by_name(name)) {
    c.field = *by_name;
    const std::size_t n = tokens.empty() ? 1 : tokens.front().size();
    if (c.field.kind != npy::Kind::bytes && n > 1) c.field.shape = {static_cast<long>(n)};
  } else {
    c.field = infer_type(tokens);
  }
  c.field.name = std::string(name);
  if (c.field.kind == npy::Kind::bytes) {
    c.texts = texts;
    return c;
  }
  const auto count = static_cast<std::size_t>(c.field.count());
  for (std::size_t r = 0; r < tokens.size(); ++r) {
    const auto fail = [&](const std::string& what) {
      return InputError(fmt::format("{}: particle {} (row {}): {} value '{}' is not {}", file, r + 1, r, name,
                                    npy::printable(texts[r]), what));
    };
    if (tokens[r].size() != count) throw fail(fmt::format("{} comma-separated values", count));
    for (const auto& t : tokens[r]) {
      long long i = 0;
      unsigned long long u = 0;
      double d = 0;
      if (c.field.kind == npy::Kind::real) {
        if (!parse_real(t, d)) throw fail("a number");
        if (c.field.size == 4 && std::isfinite(d) && std::abs(d) > std::numeric_limits<float>::max())
          throw fail("a number a float32 holds");
        c.reals.push_back(d);
      } else if (c.field.kind == npy::Kind::signed_int) {
        if (!parse_integer(t, i)) throw fail("an integer");
        c.signed_ints.push_back(i);
      } else {
        if (!parse_unsigned(t, u) || (c.field.size < 8 && u >> (8 * c.field.size) != 0))
          throw fail(fmt::format("an unsigned integer of {} bytes", c.field.size));
        c.unsigned_ints.push_back(u);
      }
    }
  }
  return c;
}

}  // namespace detail::cs
}  // namespace tessera
