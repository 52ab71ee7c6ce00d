#include "npy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "tessera/error.hpp"

namespace tessera::detail::npy {
namespace {

static_assert(std::endian::native == std::endian::little, "the .npy reader and writer assume a little-endian machine");

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::string_view kCsdatMagic =
    "\x95"
    "CSDAT";

/// A value of the header's Python literal: a string, an integer, a boolean or
/// None, a tuple or list (items), a dict (pairs).
struct Node {
  enum class Type { string, integer, boolean, none, sequence, dict } type = Type::none;
  std::string text;
  long long integer = 0;
  std::vector<Node> items;  ///< sequence items; dict keys and values alternate
  bool is_tuple = false;
};

/// Recursive-descent parser of the Python literals numpy writes in headers.
class LiteralParser {
 public:
  LiteralParser(std::string_view text, const std::string& file) : s_(text), file_(file) {}

  Node parse_all() {
    Node n = value();
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the header's dict");
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw InputError(fmt::format("{}: bad .npy header at character {}: {}", file_, pos_, problem));
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(fmt::format("expected '{}'", c));
  }

  Node value() {
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end");
    const char c = s_[pos_];
    if (c == '\'' || c == '"') return string();
    if (c == '(' || c == '[') return sequence(c == '(' ? ')' : ']');
    if (c == '{') return dict();
    if (c == '-' || (c >= '0' && c <= '9')) return integer();
    for (const auto& [word, type, truth] :
         {std::tuple{"True", Node::Type::boolean, 1}, {"False", Node::Type::boolean, 0}, {"None", Node::Type::none, 0}})
      if (s_.substr(pos_, std::strlen(word)) == word) {
        pos_ += std::strlen(word);
        Node n;
        n.type = type;
        n.integer = truth;
        return n;
      }
    fail(fmt::format("unexpected character '{}'", printable(std::string_view(&c, 1))));
  }

  Node string() {
    const char quote = s_[pos_++];
    Node n;
    n.type = Node::Type::string;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        n.text += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated string");
      const char e = s_[pos_++];
      if (e == 'n')
        n.text += '\n';
      else if (e == 't')
        n.text += '\t';
      else if (e == 'x' && pos_ + 2 <= s_.size()) {
        unsigned v = 0;
        const auto r = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 2, v, 16);
        if (r.ec != std::errc() || r.ptr != s_.data() + pos_ + 2) fail("bad \\x escape");
        n.text += static_cast<char>(v);
        pos_ += 2;
      } else if (e == '\\' || e == '\'' || e == '"')
        n.text += e;
      else
        fail(fmt::format("unsupported escape \\{}", printable(std::string_view(&e, 1))));
    }
    return n;
  }

  Node integer() {
    Node n;
    n.type = Node::Type::integer;
    const auto r = std::from_chars(s_.data() + pos_, s_.data() + s_.size(), n.integer);
    if (r.ec != std::errc()) fail("bad integer");
    pos_ = static_cast<std::size_t>(r.ptr - s_.data());
    if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long
    return n;
  }

  Node sequence(char close) {
    ++pos_;
    Node n;
    n.type = Node::Type::sequence;
    n.is_tuple = close == ')';
    while (!accept(close)) {
      n.items.push_back(value());
      if (!accept(',')) {
        expect(close);
        break;
      }
    }
    return n;
  }

  Node dict() {
    ++pos_;
    Node n;
    n.type = Node::Type::dict;
    while (!accept('}')) {
      n.items.push_back(value());
      expect(':');
      n.items.push_back(value());
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    return n;
  }

  std::string_view s_;
  const std::string& file_;
  std::size_t pos_ = 0;
};

const Node* dict_get(const Node& dict, std::string_view key) {
  for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2)
    if (dict.items[i].type == Node::Type::string && dict.items[i].text == key) return &dict.items[i + 1];
  return nullptr;
}

/// The field of one descr entry; `padding` is set for an unnamed void field.
Field parse_field(const std::string& file, const Node& entry, bool& padding) {
  const auto bad = [&](const std::string& problem) {
    return InputError(fmt::format("{}: unsupported .npy field {}", file, problem));
  };
  if (entry.type != Node::Type::sequence || entry.items.size() < 2 || entry.items.size() > 3)
    throw bad("description (not a (name, type[, shape]) tuple)");
  const Node& name = entry.items[0];
  if (name.type != Node::Type::string) throw bad("name (a (title, name) pair)");
  Field f;
  f.name = name.text;
  const std::string shown = printable(f.name);
  if (entry.items[1].type != Node::Type::string) throw bad(fmt::format("'{}': a nested record", shown));
  const std::string& t = entry.items[1].text;
  const std::string shown_type = printable(t);
  if (t.size() < 2) throw bad(fmt::format("'{}': type '{}'", shown, shown_type));
  const char order = t[0], kind = t[1];
  int size = 0;
  const auto r = std::from_chars(t.data() + 2, t.data() + t.size(), size);
  const bool sized = r.ec == std::errc() && r.ptr == t.data() + t.size() && size >= 0;
  if (kind == 'O')
    throw InputError(
        fmt::format("{}: field '{}' holds Python objects ('O'), which cannot be read without pickle: "
                    "save the dataset with fixed-length strings (cryosparc-tools' Dataset.save does)",
                    file, shown));
  if (order == '>' && !(sized && size == 1))
    throw InputError(fmt::format("{}: field '{}' is big-endian ('{}'): only little-endian .npy files are read", file,
                                 shown, shown_type));
  if (order != '<' && order != '|' && order != '=' && order != '>')
    throw bad(fmt::format("'{}': type '{}'", shown, shown_type));
  if (!sized) throw bad(fmt::format("'{}': type '{}'", shown, shown_type));
  padding = false;
  if (kind == 'V' && f.name.empty()) {
    padding = true;
    f.kind = Kind::bytes;
  } else if ((kind == 'u' || kind == 'i') && (size == 1 || size == 2 || size == 4 || size == 8)) {
    f.kind = kind == 'u' ? Kind::unsigned_int : Kind::signed_int;
  } else if (kind == 'b' && size == 1) {
    f.kind = Kind::unsigned_int;
  } else if (kind == 'f' && (size == 4 || size == 8)) {
    f.kind = Kind::real;
  } else if (kind == 'S') {
    f.kind = Kind::bytes;
  } else if (kind == 'U') {
    f.kind = Kind::unicode;
    size *= 4;
  } else {
    throw bad(fmt::format("'{}': type '{}' (read: u1-u8, i1-i8, f4, f8, b1, S, U)", shown, shown_type));
  }
  f.size = size;
  if (entry.items.size() == 3) {
    const Node& shape = entry.items[2];
    if (shape.type == Node::Type::integer) {
      f.shape.push_back(static_cast<long>(shape.integer));
    } else if (shape.type == Node::Type::sequence) {
      for (const Node& d : shape.items) {
        if (d.type != Node::Type::integer) throw bad(fmt::format("'{}': shape", shown));
        f.shape.push_back(static_cast<long>(d.integer));
      }
    } else {
      throw bad(fmt::format("'{}': shape", shown));
    }
    for (const long d : f.shape)
      if (d < 0 || d > (1L << 24)) throw bad(fmt::format("'{}': shape", shown));
  }
  return f;
}

std::uint64_t little_endian(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void append_utf8(std::string& out, std::uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string format_double(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (u < 0x20 || u >= 0x7F)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out;
}

long Field::count() const {
  long n = 1;
  for (const long d : shape) n *= d;
  return n;
}

std::string Field::typestr() const {
  switch (kind) {
    case Kind::unsigned_int:
      return fmt::format("{}u{}", size == 1 ? '|' : '<', size);
    case Kind::signed_int:
      return fmt::format("{}i{}", size == 1 ? '|' : '<', size);
    case Kind::real:
      return fmt::format("<f{}", size);
    case Kind::bytes:
      return fmt::format("|S{}", size);
    case Kind::unicode:
      return fmt::format("<U{}", size / 4);
  }
  return "?";
}

std::string format_float(float v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

Table::Table(std::vector<Field> fields, std::size_t row_size, std::size_t rows, std::string data)
    : fields_(std::move(fields)), row_size_(row_size), rows_(rows), data_(std::move(data)) {}

const Field* Table::find(std::string_view name) const {
  for (const auto& f : fields_)
    if (f.name == name) return &f;
  return nullptr;
}

const unsigned char* Table::at(std::size_t row, const Field& f, long i) const {
  if (row >= rows_ || i < 0 || i >= f.count()) throw std::out_of_range("npy::Table: row or element out of range");
  return reinterpret_cast<const unsigned char*>(data_.data()) + row * row_size_ + f.offset +
         static_cast<std::size_t>(i) * static_cast<std::size_t>(f.size);
}

double Table::number(std::size_t row, const Field& f, long i) const {
  const unsigned char* p = at(row, f, i);
  const std::uint64_t bits = little_endian(p, f.size);
  switch (f.kind) {
    case Kind::unsigned_int:
      return static_cast<double>(bits);
    case Kind::signed_int: {
      const int shift = 64 - 8 * f.size;  // sign-extend
      return static_cast<double>(static_cast<std::int64_t>(bits << shift) >> shift);
    }
    case Kind::real:
      if (f.size == 8) return std::bit_cast<double>(bits);
      {
        const float v = std::bit_cast<float>(static_cast<std::uint32_t>(bits));
        if (!std::isfinite(v)) return v;
        const std::string s = fmt::format("{}", v);
        double d = 0;
        std::from_chars(s.data(), s.data() + s.size(), d);
        return d;
      }
    default:
      throw std::invalid_argument(fmt::format("npy field '{}' is not numeric", f.name));
  }
}

std::uint64_t Table::unsigned_number(std::size_t row, const Field& f, long i) const {
  const std::uint64_t bits = little_endian(at(row, f, i), f.size);
  if (f.kind == Kind::unsigned_int) return bits;
  if (f.kind == Kind::signed_int) {
    const int shift = 64 - 8 * f.size;
    const std::int64_t v = static_cast<std::int64_t>(bits << shift) >> shift;
    if (v < 0) throw std::out_of_range(fmt::format("npy field '{}' value {} is negative", f.name, v));
    return static_cast<std::uint64_t>(v);
  }
  throw std::invalid_argument(fmt::format("npy field '{}' is not an integer field", f.name));
}

std::string Table::text(std::size_t row, const Field& f, long i) const {
  const unsigned char* p = at(row, f, i);
  std::string out;
  if (f.kind == Kind::bytes) {
    std::size_t n = static_cast<std::size_t>(f.size);
    while (n > 0 && p[n - 1] == 0) --n;
    out.assign(reinterpret_cast<const char*>(p), n);
  } else if (f.kind == Kind::unicode) {
    for (int k = 0; k + 4 <= f.size; k += 4) {
      const auto c = static_cast<std::uint32_t>(little_endian(p + k, 4));
      if (c == 0) break;
      append_utf8(out, c);
    }
  } else {
    throw std::invalid_argument(fmt::format("npy field '{}' is not a text field", f.name));
  }
  return out;
}

std::string Table::format(std::size_t row, const Field& f) const {
  std::string out;
  for (long i = 0; i < f.count(); ++i) {
    if (i > 0) out += ',';
    if (f.kind == Kind::bytes || f.kind == Kind::unicode) {
      out += text(row, f, i);
    } else if (f.kind == Kind::real) {
      const std::uint64_t bits = little_endian(at(row, f, i), f.size);
      out += f.size == 8 ? format_double(std::bit_cast<double>(bits))
                         : format_float(std::bit_cast<float>(static_cast<std::uint32_t>(bits)));
    } else if (f.kind == Kind::unsigned_int) {
      out += fmt::format("{}", unsigned_number(row, f, i));
    } else {
      out += fmt::format("{}", static_cast<long long>(number(row, f, i)));
    }
  }
  return out;
}

Table read(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw InputError(fmt::format("{}: no such file", name));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open: {}", name, std::strerror(errno)));
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw InputError(fmt::format("{}: cannot read: {}", name, std::strerror(errno)));
  if (bytes.compare(0, kCsdatMagic.size(), kCsdatMagic) == 0)
    throw InputError(
        fmt::format("{}: is in cryosparc-tools' compressed CSDAT format, which is not read: save it with "
                    "Dataset.save(path) (the default NUMPY_FORMAT)",
                    name));
  if (bytes.size() < 10 || bytes.compare(0, kMagic.size(), kMagic) != 0)
    throw InputError(fmt::format("{}: not a NumPy .npy file (no \\x93NUMPY magic)", name));
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3)
    throw InputError(fmt::format("{}: unsupported .npy format version {}.{}", name, major,
                                 static_cast<int>(static_cast<unsigned char>(bytes[7]))));
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_bytes) throw InputError(fmt::format("{}: truncated .npy header", name));
  const auto header_len = static_cast<std::size_t>(
      little_endian(reinterpret_cast<const unsigned char*>(bytes.data()) + 8, static_cast<int>(len_bytes)));
  const std::size_t data_start = 8 + len_bytes + header_len;
  if (bytes.size() < data_start) throw InputError(fmt::format("{}: truncated .npy header", name));
  const Node header = LiteralParser(std::string_view(bytes).substr(8 + len_bytes, header_len), name).parse_all();
  if (header.type != Node::Type::dict) throw InputError(fmt::format("{}: .npy header is not a dict", name));
  const Node* descr = dict_get(header, "descr");
  const Node* shape = dict_get(header, "shape");
  if (descr == nullptr || shape == nullptr)
    throw InputError(fmt::format("{}: .npy header lacks 'descr' or 'shape'", name));
  if (descr->type == Node::Type::string)
    throw InputError(fmt::format("{}: holds a plain array of '{}', not a structured array (a table with named fields)",
                                 name, printable(descr->text)));
  if (descr->type != Node::Type::sequence) throw InputError(fmt::format("{}: bad .npy 'descr'", name));
  if (shape->type != Node::Type::sequence || shape->items.size() != 1 || shape->items[0].type != Node::Type::integer ||
      shape->items[0].integer < 0)
    throw InputError(fmt::format("{}: the array is not one-dimensional (shape must be (N,))", name));
  std::vector<Field> fields;
  std::size_t row_size = 0;
  for (const Node& entry : descr->items) {
    bool padding = false;
    Field f = parse_field(name, entry, padding);
    f.offset = row_size;
    const auto bytes_per_row = static_cast<std::size_t>(f.size) * static_cast<std::size_t>(f.count());
    if (bytes_per_row > (std::size_t{1} << 30))
      throw InputError(fmt::format("{}: field '{}' is too large", name, printable(f.name)));
    row_size += bytes_per_row;
    if (padding) continue;
    if (std::any_of(fields.begin(), fields.end(), [&](const Field& g) { return g.name == f.name; }))
      throw InputError(fmt::format("{}: field '{}' appears twice", name, printable(f.name)));
    fields.push_back(std::move(f));
  }
  const auto rows = static_cast<std::size_t>(shape->items[0].integer);
  const std::size_t available = bytes.size() - data_start;
  if (row_size > 0 && rows > available / row_size)
    throw InputError(fmt::format("{}: truncated: {} rows of {} bytes announced, {} bytes of data present", name, rows,
                                 row_size, available));
  bytes.erase(0, data_start);
  bytes.resize(rows * row_size);
  return Table(std::move(fields), row_size, rows, std::move(bytes));
}

namespace {

std::string python_string(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

void put_le(std::string& out, std::size_t pos, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out[pos + static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

/// Writes one column's values into the packed rows.
void fill(std::string& data, std::size_t row_size, const Field& f, const Column& c, std::size_t rows) {
  const auto n = static_cast<std::size_t>(f.count());
  const auto check = [&](std::size_t have) {
    if (have != rows * n)
      throw std::invalid_argument(fmt::format("npy column '{}' has {} values for {} rows x {}", f.name, have, rows, n));
  };
  const auto pos = [&](std::size_t k) {
    return (k / n) * row_size + f.offset + (k % n) * static_cast<std::size_t>(f.size);
  };
  switch (f.kind) {
    case Kind::real:
      check(c.reals.size());
      for (std::size_t k = 0; k < c.reals.size(); ++k)
        put_le(data, pos(k),
               f.size == 8 ? std::bit_cast<std::uint64_t>(c.reals[k])
                           : std::bit_cast<std::uint32_t>(static_cast<float>(c.reals[k])),
               f.size);
      break;
    case Kind::unsigned_int:
      check(c.unsigned_ints.size());
      for (std::size_t k = 0; k < c.unsigned_ints.size(); ++k) {
        if (f.size < 8 && c.unsigned_ints[k] >> (8 * f.size) != 0)
          throw std::invalid_argument(
              fmt::format("npy column '{}': {} does not fit {}", f.name, c.unsigned_ints[k], f.typestr()));
        put_le(data, pos(k), c.unsigned_ints[k], f.size);
      }
      break;
    case Kind::signed_int:
      check(c.signed_ints.size());
      for (std::size_t k = 0; k < c.signed_ints.size(); ++k) {
        const std::int64_t v = c.signed_ints[k];
        const std::int64_t lim = f.size == 8 ? 0 : std::int64_t{1} << (8 * f.size - 1);
        if (f.size < 8 && (v < -lim || v >= lim))
          throw std::invalid_argument(fmt::format("npy column '{}': {} does not fit {}", f.name, v, f.typestr()));
        put_le(data, pos(k), static_cast<std::uint64_t>(v), f.size);
      }
      break;
    case Kind::bytes:
      check(c.texts.size());
      for (std::size_t k = 0; k < c.texts.size(); ++k) {
        if (c.texts[k].size() > static_cast<std::size_t>(f.size))
          throw std::invalid_argument(
              fmt::format("npy column '{}': '{}' is longer than {}", f.name, c.texts[k], f.typestr()));
        std::memcpy(data.data() + pos(k), c.texts[k].data(), c.texts[k].size());
      }
      break;
    case Kind::unicode:
      throw std::invalid_argument(fmt::format("npy column '{}': unicode is not written", f.name));
  }
}

}  // namespace

std::string encode(const std::vector<Column>& columns, std::size_t rows) {
  std::vector<Field> fields;
  std::size_t row_size = 0;
  std::string descr;
  for (const auto& c : columns) {
    Field f = c.field;
    if (f.kind == Kind::bytes && f.size == 0) {
      std::size_t longest = 1;
      for (const auto& t : c.texts) longest = std::max(longest, t.size());
      f.size = static_cast<int>(longest);
    }
    f.offset = row_size;
    row_size += static_cast<std::size_t>(f.size) * static_cast<std::size_t>(f.count());
    if (!descr.empty()) descr += ", ";
    descr += fmt::format("({}, '{}'", python_string(f.name), f.typestr());
    if (!f.shape.empty()) {
      descr += ", (";
      for (const long d : f.shape) descr += fmt::format("{},", d);
      if (f.shape.size() > 1) descr.pop_back();
      descr += ")";
    }
    descr += ")";
    fields.push_back(std::move(f));
  }
  std::string header = fmt::format("{{'descr': [{}], 'fortran_order': False, 'shape': ({},), }}", descr, rows);
  const std::size_t preamble = header.size() + 1 > 65535 - 64 ? 12 : 10;  // version 2.0 beyond a 2-byte length
  header.append((64 - (preamble + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic);
  out += static_cast<char>(preamble == 10 ? 1 : 2);
  out += '\0';
  out.append(preamble - 8, '\0');
  put_le(out, 8, header.size(), static_cast<int>(preamble - 8));
  out += header;
  std::string data(rows * row_size, '\0');
  for (std::size_t i = 0; i < columns.size(); ++i) fill(data, row_size, fields[i], columns[i], rows);
  return out + data;
}

}  // namespace tessera::detail::npy
