#include "tessera/star.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "tessera/atomic_file.hpp"
#include "tessera/error.hpp"

namespace tessera {

int StarTable::column(const std::string& label) const {
  const auto it = std::find(labels.begin(), labels.end(), label);
  return it == labels.end() ? -1 : static_cast<int>(it - labels.begin());
}

std::optional<std::string> StarTable::value(const std::string& label) const {
  const int c = column(label);
  if (c < 0 || rows.empty()) return std::nullopt;
  return rows.front().at(static_cast<std::size_t>(c));
}

int StarTable::line_of(std::size_t row) const { return row < row_lines.size() ? row_lines[row] : 0; }

namespace {

std::string strip_data_prefix(const std::string& name) {
  return name.rfind("data_", 0) == 0 ? name.substr(5) : name;
}

}  // namespace

const StarTable* StarFile::find(const std::string& name) const {
  const std::string bare = strip_data_prefix(name);
  for (const auto& b : blocks)
    if (b.name == bare) return &b;
  return nullptr;
}

StarTable* StarFile::find(const std::string& name) {
  return const_cast<StarTable*>(static_cast<const StarFile&>(*this).find(name));
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/// Whether `v` can sit between two `q` quotes: no q may be followed by white
/// space (or end the value), since that would close the quote early.
bool quotable_with(const std::string& v, char q) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] == q && (i + 1 == v.size() || is_space(v[i + 1]))) return false;
  return true;
}

struct Token {
  std::string text;
  bool quoted = false;
};

/// Where a line is being parsed, for messages.
struct Where {
  const std::string& source;
  int line;
  [[noreturn]] void fail(const std::string& problem) const {
    throw InputError(fmt::format("{}:{}: {}", source, line, problem));
  }
};

/// Splits one line into tokens: white-space separated, "..." or '...' quoted
/// (a quote closes only before white space or the end), '#' at the start of a
/// token begins a comment.
std::vector<Token> tokenize(const std::string& line, const Where& where) {
  std::vector<Token> tokens;
  const std::size_t n = line.size();
  std::size_t i = 0;
  while (true) {
    while (i < n && is_space(line[i])) ++i;
    if (i >= n || line[i] == '#') break;
    const char c = line[i];
    if (c == '"' || c == '\'') {
      // A carriage return inside a line is a line break too (old Mac files): a quote cannot span it.
      std::size_t j = i + 1;
      while (j < n && line[j] != '\r' && !(line[j] == c && (j + 1 == n || is_space(line[j + 1])))) ++j;
      if (j >= n || line[j] == '\r') where.fail(fmt::format("unterminated {} quote", c));
      std::string value = line.substr(i + 1, j - i - 1);
      // What is read must be writable (format_star): STAR has no escapes for a value holding both.
      if (!quotable_with(value, '"') && !quotable_with(value, '\''))
        where.fail("a quoted value holds both quote kinds before white space or at its end: it cannot be written back");
      tokens.push_back({std::move(value), true});
      i = j + 1;
    } else {
      std::size_t j = i;
      while (j < n && !is_space(line[j])) ++j;
      tokens.push_back({line.substr(i, j - i), false});
      i = j;
    }
  }
  return tokens;
}

/// The N of a "# version N" comment line, if this is one.
std::optional<int> version_comment(const std::string& line) {
  const auto first = std::find_if_not(line.begin(), line.end(), is_space);
  if (first == line.end() || *first != '#') return std::nullopt;
  std::istringstream in(line);
  std::string hash, word;
  int number = 0;
  if (in >> hash >> word >> number && hash == "#" && word == "version") return number;
  return std::nullopt;
}

/// Parser state: the block being filled and what a new line may be.
class StarParser {
 public:
  explicit StarParser(const std::string& source) : source_(source) {}

  void line(const std::string& raw, int number) {
    const Where where{source_, number};
    std::string text = raw;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (!file_.version) file_.version = version_comment(text);
    const std::vector<Token> tokens = tokenize(text, where);
    if (tokens.empty()) return;
    const Token& first = tokens.front();
    if (!first.quoted && first.text.rfind("data_", 0) == 0) {
      if (tokens.size() > 1) where.fail(fmt::format("unexpected text after {}", first.text));
      file_.blocks.push_back(StarTable{first.text.substr(5), false, {}, {}, {}});
      phase_ = Phase::pairs;
    } else if (!first.quoted && first.text == "loop_") {
      start_loop(tokens, where);
    } else if (!first.quoted && first.text.front() == '_') {
      label(tokens, where);
    } else {
      row(tokens, where);
    }
  }

  StarFile finish() { return std::move(file_); }

 private:
  enum class Phase { pairs, labels, rows };

  StarTable& block(const Where& where) {
    if (file_.blocks.empty()) where.fail("text before the first data_ block");
    return file_.blocks.back();
  }

  void start_loop(const std::vector<Token>& tokens, const Where& where) {
    StarTable& b = block(where);
    if (tokens.size() > 1) where.fail("unexpected text after loop_");
    if (b.is_loop || !b.labels.empty())
      where.fail(fmt::format("data_{} already has {}; one table per block is supported", b.name,
                             b.is_loop ? "a loop_" : "key-value pairs"));
    b.is_loop = true;
    phase_ = Phase::labels;
  }

  void label(const std::vector<Token>& tokens, const Where& where) {
    StarTable& b = block(where);
    const std::string name = tokens.front().text.substr(1);
    if (name.empty()) where.fail("empty label '_'");
    if (phase_ == Phase::rows)
      where.fail(fmt::format("label _{} after the rows of the loop in data_{}", name, b.name));
    if (b.has(name)) where.fail(fmt::format("label _{} appears twice in data_{}", name, b.name));
    if (phase_ == Phase::labels) {
      if (tokens.size() != 1) where.fail(fmt::format("unexpected text after loop label _{}", name));
      b.labels.push_back(name);
      return;
    }
    if (tokens.size() != 2)
      where.fail(fmt::format("_{} in data_{} needs exactly one value, found {}", name, b.name, tokens.size() - 1));
    if (b.rows.empty()) {
      b.rows.emplace_back();
      b.row_lines.push_back(where.line);
    }
    b.labels.push_back(name);
    b.rows.front().push_back(tokens[1].text);
  }

  void row(const std::vector<Token>& tokens, const Where& where) {
    StarTable& b = block(where);
    if (phase_ == Phase::pairs)
      where.fail(fmt::format("value '{}' in data_{} is neither in a loop_ nor after a _label", tokens.front().text,
                             b.name));
    if (tokens.size() != b.labels.size())
      where.fail(fmt::format("row has {} fields but the loop in data_{} has {} columns", tokens.size(), b.name,
                             b.labels.size()));
    std::vector<std::string> values;
    values.reserve(tokens.size());
    for (const auto& t : tokens) values.push_back(t.text);
    b.rows.push_back(std::move(values));
    b.row_lines.push_back(where.line);
    phase_ = Phase::rows;
  }

  const std::string& source_;
  StarFile file_;
  Phase phase_ = Phase::pairs;
};

}  // namespace

StarFile parse_star(const std::string& text, const std::string& source) {
  StarParser parser(source);
  std::size_t start = 0;
  int number = 1;
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) start = 3;  // UTF-8 byte-order mark
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    parser.line(text.substr(start, end - start), number);
    start = end + 1;
    ++number;
  }
  return parser.finish();
}

StarFile read_star(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(fmt::format("{}: no such file", path.string()));
  if (std::filesystem::is_directory(path, ec))
    throw InputError(fmt::format("{}: is a folder, not a STAR file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(fmt::format("{}: read error", path.string()));
  return parse_star(text.str(), path.string());
}

namespace {

bool starts_with_word(const std::string& v, const char* word) {
  const std::size_t n = std::strlen(word);
  if (v.size() < n) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(v[i])) != word[i]) return false;
  return true;
}

bool needs_quotes(const std::string& v) {
  if (v.empty()) return true;
  if (std::any_of(v.begin(), v.end(), is_space)) return true;
  const char c = v.front();
  if (c == '#' || c == '_' || c == '"' || c == '\'') return true;
  for (const char* word : {"data_", "loop_", "save_", "stop_", "global_"})
    if (starts_with_word(v, word)) return true;
  return false;
}

std::string format_value(const std::string& v) {
  if (v.find('\n') != std::string::npos || v.find('\r') != std::string::npos)
    throw std::invalid_argument(fmt::format("STAR value '{}' contains a line break", v));
  if (!needs_quotes(v)) return v;
  for (const char q : {'"', '\''})
    if (quotable_with(v, q)) return fmt::format("{}{}{}", q, v, q);
  throw std::invalid_argument(fmt::format("STAR value '{}' cannot be quoted", v));
}

void check_table(const StarTable& t) {
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    if (t.labels[i].empty() || std::any_of(t.labels[i].begin(), t.labels[i].end(), is_space))
      throw std::invalid_argument(fmt::format("data_{}: bad label '{}'", t.name, t.labels[i]));
    if (std::find(t.labels.begin(), t.labels.begin() + static_cast<long>(i), t.labels[i]) !=
        t.labels.begin() + static_cast<long>(i))
      throw std::invalid_argument(fmt::format("data_{}: label {} appears twice", t.name, t.labels[i]));
  }
  for (const auto& r : t.rows)
    if (r.size() != t.labels.size())
      throw std::invalid_argument(
          fmt::format("data_{}: a row has {} values for {} labels", t.name, r.size(), t.labels.size()));
  if (!t.is_loop && !t.labels.empty() && t.rows.size() != 1)
    throw std::invalid_argument(
        fmt::format("data_{}: a key-value block needs exactly one row, has {}", t.name, t.rows.size()));
}

void format_loop(const StarTable& t, std::string& out) {
  out += "loop_\n";
  for (std::size_t i = 0; i < t.labels.size(); ++i) out += fmt::format("_{} #{}\n", t.labels[i], i + 1);
  std::vector<std::vector<std::string>> cells;
  cells.reserve(t.rows.size());
  std::vector<std::size_t> width(t.labels.size(), 0);
  for (const auto& r : t.rows) {
    std::vector<std::string> formatted;
    formatted.reserve(r.size());
    for (std::size_t c = 0; c < r.size(); ++c) {
      formatted.push_back(format_value(r[c]));
      width[c] = std::max(width[c], formatted.back().size());
    }
    cells.push_back(std::move(formatted));
  }
  for (const auto& r : cells) {
    for (std::size_t c = 0; c < r.size(); ++c) {
      if (c > 0) out += ' ';
      out.append(width[c] - r[c].size(), ' ');
      out += r[c];
    }
    out += '\n';
  }
}

void format_pairs(const StarTable& t, std::string& out) {
  std::size_t width = 0;
  for (const auto& l : t.labels) width = std::max(width, l.size());
  for (std::size_t i = 0; i < t.labels.size(); ++i)
    out += fmt::format("_{:<{}} {}\n", t.labels[i], width, format_value(t.rows.front()[i]));
}

}  // namespace

std::string format_star(const StarFile& file) {
  std::string out;
  for (const auto& t : file.blocks) {
    check_table(t);
    if (file.version) out += fmt::format("\n# version {}\n", *file.version);
    out += fmt::format("\ndata_{}\n\n", t.name);
    if (t.is_loop)
      format_loop(t, out);
    else
      format_pairs(t, out);
    out += '\n';
  }
  return out;
}

void write_star(const std::filesystem::path& path, const StarFile& file) {
  write_file_atomically(path, format_star(file));
}

}  // namespace tessera
