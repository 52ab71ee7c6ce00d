#include "tessera/scipion_set.hpp"

#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <variant>

#include "tessera/error.hpp"
#include "tessera/geometry.hpp"
#include "tessera/star.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------ SQLite RAII

/// Reading: a failure means the file is bad (InputError). Writing: a failure
/// is ours or the system's (std::runtime_error).
enum class Mode { read, write };

[[noreturn]] void fail(Mode mode, const std::string& message) {
  if (mode == Mode::read) throw InputError(message);
  throw std::runtime_error(message);
}

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }  // only on error paths; close() checks
};
struct StmtFinalize {
  // finalize repeats the last step()'s result code, which step() already checked
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

using Value = std::variant<std::monostate, long long, double, std::string>;  // NULL, INTEGER, REAL, TEXT

class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, std::string file, Mode mode)
      : db_(db), file_(std::move(file)), mode_(mode) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
    stmt_.reset(raw);
    if (rc != SQLITE_OK) error(rc, sql);
  }
  /// Next row: true when there is one, false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    error(rc, sqlite3_sql(stmt_.get()));
  }
  void reset() {
    const int rc = sqlite3_reset(stmt_.get());
    if (rc != SQLITE_OK) error(rc, "reset");
  }
  void bind(int index, const Value& v) {
    sqlite3_stmt* s = stmt_.get();
    int rc = SQLITE_OK;
    if (std::holds_alternative<std::monostate>(v)) rc = sqlite3_bind_null(s, index);
    if (const auto* i = std::get_if<long long>(&v)) rc = sqlite3_bind_int64(s, index, *i);
    if (const auto* d = std::get_if<double>(&v)) rc = sqlite3_bind_double(s, index, *d);
    if (const auto* t = std::get_if<std::string>(&v))
      rc = sqlite3_bind_text(s, index, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) error(rc, "bind");
  }
  Value column(int col) const {
    sqlite3_stmt* s = stmt_.get();
    switch (sqlite3_column_type(s, col)) {
      case SQLITE_INTEGER: return static_cast<long long>(sqlite3_column_int64(s, col));
      case SQLITE_FLOAT: return sqlite3_column_double(s, col);
      case SQLITE_NULL: return std::monostate{};
      default: {  // TEXT (a BLOB is read as its bytes)
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
        if (p == nullptr && sqlite3_errcode(db_) == SQLITE_NOMEM) fail(mode_, file_ + ": out of memory");
        return std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, col)));
      }
    }
  }
  std::string text(int col) const {
    const Value v = column(col);
    if (const auto* t = std::get_if<std::string>(&v)) return *t;
    if (const auto* i = std::get_if<long long>(&v)) return std::to_string(*i);
    return "";
  }

 private:
  [[noreturn]] void error(int rc, const std::string& what) const {
    if ((rc & 0xff) == SQLITE_NOTADB) fail(mode_, file_ + ": not an SQLite database");
    fail(mode_, fmt::format("{}: SQLite error ({}) in '{}'", file_, sqlite3_errmsg(db_), what));
  }
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, StmtFinalize> stmt_;
  std::string file_;
  Mode mode_;
};

class Database {
 public:
  Database(const fs::path& path, Mode mode) : file_(path.string()), mode_(mode) {
    const int flags = mode == Mode::read ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(file_.c_str(), &raw, flags, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK)
      fail(mode, fmt::format("{}: cannot open: {}", file_, raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  Statement prepare(const std::string& sql) { return Statement(db_.get(), sql, file_, mode_); }
  void exec(const std::string& sql) {
    Statement s = prepare(sql);
    while (s.step()) {
    }
  }
  bool has_table(const std::string& name) {
    Statement s = prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?");
    s.bind(1, name);
    return s.step();
  }
  void close() {
    const int rc = sqlite3_close(db_.get());
    if (rc != SQLITE_OK) fail(mode_, fmt::format("{}: cannot close: {}", file_, sqlite3_errstr(rc)));
    db_.release();
  }
  const std::string& file() const { return file_; }

 private:
  std::unique_ptr<sqlite3, DbClose> db_;
  std::string file_;
  Mode mode_;
};

// ------------------------------------------------------------ text and numbers

/// Python's repr of a float (what json.dumps and str() write): shortest
/// round-trip digits, with ".0" on integral values.
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

/// A value from the file, shortened and on one line, for a message.
std::string shown(const std::string& s) {
  std::string out = s.substr(0, 80);
  std::replace_if(
      out.begin(), out.end(), [](char ch) { return ch == '\n' || ch == '\r'; }, ' ');
  return out.size() < s.size() ? out + "..." : out;
}

std::optional<double> parse_double(const std::string& text) {
  const std::string s = trim(text);
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<long long> parse_integer(const std::string& text) {
  const std::string s = trim(text);
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  long long v = 0;
  const auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

/// An SQL identifier in double quotes (Classes.column_name comes from the file).
std::string quoted(const std::string& name) {
  std::string q = "\"";
  for (const char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + '"';
}

bool is_scalar_class(const std::string& cls) {
  return cls == "Integer" || cls == "Float" || cls == "String" || cls == "Boolean";
}

// ------------------------------------------------------------ labels, declared once

/// Scipion attributes that scipion-em-relion maps to RELION labels; kept as extra columns.
struct MappedLabel {
  const char* scipion;
  const char* relion;
  const char* cls;
};
constexpr std::array<MappedLabel, 7> kMapped{{
    {"_micId", "rlnMicrographId", "Integer"},
    {"_classId", "rlnClassNumber", "Integer"},
    {"_ctfModel._resolution", "rlnCtfMaxResolution", "Float"},
    {"_ctfModel._fitQuality", "rlnCtfFigureOfMerit", "Float"},
    {"_ctfModel._psdFile", "rlnCtfImage", "String"},
    {"_coordinate._x", "rlnCoordinateX", "Integer"},
    {"_coordinate._y", "rlnCoordinateY", "Integer"},
}};

const MappedLabel* mapped_by_relion(const std::string& relion) {
  for (const auto& m : kMapped)
    if (relion == m.relion) return &m;
  return nullptr;
}

/// Attributes read into Particle fields (not extras).
constexpr std::array<const char*, 14> kFieldLabels{
    "_index", "_filename", "_ctfModel._defocusU", "_ctfModel._defocusV", "_ctfModel._defocusAngle",
    "_ctfModel._phaseShift", "_transform._matrix", "_rlnRandomSubset", "_rlnCtfBfactor", "_rlnCtfScalefactor",
    "_rlnOpticsGroup", "_rlnPhaseShift", "_coordinate._micName", "_rlnMicrographName",
};

constexpr double kMagnification = 50000.0;               // pwem ProtImportParticles' default; Tessera does not keep it
constexpr int kStreamClosed = 2;                         // pyworkflow Set.STREAM_CLOSED
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// ------------------------------------------------------------ reading

using Properties = std::map<std::string, std::optional<std::string>>;

Properties read_properties(Database& db) {
  Properties props;
  if (!db.has_table("Properties")) return props;
  Statement s = db.prepare("SELECT key, value FROM Properties");
  while (s.step()) {
    const Value v = s.column(1);
    props[s.text(0)] = std::holds_alternative<std::monostate>(v) ? std::nullopt : std::optional(s.text(1));
  }
  return props;
}

std::optional<std::string> prop(const Properties& props, const std::string& key) {
  const auto it = props.find(key);
  if (it == props.end() || !it->second || trim(*it->second).empty()) return std::nullopt;
  return trim(*it->second);
}

std::optional<double> prop_number(const Properties& props, const std::string& key, const std::string& file) {
  const auto text = prop(props, key);
  if (!text) return std::nullopt;
  const auto v = parse_double(*text);
  if (!v) throw InputError(fmt::format("{}: property {} is not a number: '{}'", file, key, shown(*text)));
  return v;
}

bool prop_bool(const Properties& props, const std::string& key) {
  std::string t = prop(props, key).value_or("");
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return t == "true" || t == "1";
}

struct ClassRow {
  std::string label, column, cls;
};

/// What to do with each Classes row: `col` maps a label to its index in the SELECT.
struct Plan {
  std::vector<ClassRow> rows;
  std::map<std::string, int> col;
  struct Extra {
    std::string name;
    int col;
    std::string cls;
  };
  std::vector<Extra> extras;
  std::vector<std::string> dropped;
  int column(const std::string& label) const {
    const auto it = col.find(label);
    return it == col.end() ? -1 : it->second;
  }
};

Plan make_plan(Database& db) {
  const std::string& file = db.file();
  for (const char* table : {"Classes", "Objects"})
    if (!db.has_table(table)) throw InputError(fmt::format("{}: no {} table: not a Scipion set file", file, table));
  std::set<std::string> objects_cols;
  Statement info = db.prepare("PRAGMA table_info(Objects)");
  while (info.step()) objects_cols.insert(info.text(1));
  Plan plan;
  std::optional<std::string> item_class;
  Statement s = db.prepare("SELECT label_property, column_name, class_name FROM Classes ORDER BY id");
  while (s.step()) {
    ClassRow r{s.text(0), s.text(1), s.text(2)};
    if (r.label == "self") {
      item_class = r.cls;
      continue;
    }
    if (!objects_cols.count(r.column))
      throw InputError(
          fmt::format("{}: Classes maps {} to column '{}', which Objects does not have", file, r.label, r.column));
    plan.col[r.label] = static_cast<int>(plan.rows.size()) + 1;  // column 0 is Objects.id
    plan.rows.push_back(std::move(r));
  }
  if (item_class != "Particle")
    throw InputError(fmt::format("{}: not a set of particles: its items are {}", file,
                                 item_class ? *item_class : "undeclared (no 'self' row in Classes)"));
  std::set<std::string> names;
  for (const auto& r : plan.rows) {
    const bool container = std::any_of(plan.rows.begin(), plan.rows.end(),
                                       [&](const ClassRow& o) { return o.label.rfind(r.label + ".", 0) == 0; });
    const bool field = std::find(kFieldLabels.begin(), kFieldLabels.end(), r.label) != kFieldLabels.end();
    // read at set level, or derived: U/V, and _coordinate._micId (pwem prefers _micId)
    const bool set_level = r.label == "_samplingRate" || r.label == "_ctfModel._defocusRatio" ||
                           r.label == "_coordinate._micId" || r.label.rfind("_acquisition.", 0) == 0;
    if (container || field || set_level) continue;
    std::string name;
    for (const auto& m : kMapped)
      if (r.label == m.scipion) name = m.relion;
    if (name.empty() && r.label.size() > 1 && r.label[0] == '_' && r.label.find('.') == std::string::npos &&
        is_scalar_class(r.cls))
      name = r.label.substr(1);
    if (!name.empty() && names.insert(name).second)
      plan.extras.push_back({name, plan.col[r.label], r.cls});
    else
      plan.dropped.push_back(r.label);
  }
  return plan;
}

/// One Objects row being turned into a Particle; errors name the file and the item id.
class RowReader {
 public:
  RowReader(const Statement& s, const std::string& file) : s_(s), file_(file) {}
  long long id() const { return std::get<long long>(s_.column(0)); }
  [[noreturn]] void fail(const std::string& problem) const {
    throw InputError(fmt::format("{}: item id {}: {}", file_, id(), problem));
  }
  std::optional<double> number(int col, const std::string& label) const {
    if (col < 0) return std::nullopt;
    const Value v = s_.column(col);
    if (const auto* i = std::get_if<long long>(&v)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (std::holds_alternative<std::monostate>(v)) return std::nullopt;
    const auto parsed = parse_double(std::get<std::string>(v));
    if (!parsed) fail(fmt::format("{} is not a number: '{}'", label, shown(std::get<std::string>(v))));
    return parsed;
  }
  /// An integral value (|v| < 2^53), or nullopt for NULL / an absent column.
  std::optional<long long> integer(int col, const std::string& label) const {
    const auto v = number(col, label);
    if (v && (*v != std::floor(*v) || std::abs(*v) > kMaxExactInteger))
      fail(fmt::format("{} {} is not an integer", label, *v));
    return v ? std::optional<long long>(static_cast<long long>(*v)) : std::nullopt;
  }
  double required(int col, const std::string& label) const {
    const auto v = number(col, label);
    if (!v) fail(label + " is NULL");
    return *v;
  }
  std::optional<std::string> text(int col) const {
    if (col < 0 || std::holds_alternative<std::monostate>(s_.column(col))) return std::nullopt;
    return s_.text(col);
  }
  /// Extra column text: integers as integers, reals in Python's repr, NULL as "".
  std::string extra(int col, const std::string& cls) const {
    const Value v = s_.column(col);
    if (const auto* d = std::get_if<double>(&v)) return cls == "Integer" ? fmt::format("{}", *d) : py_float(*d);
    return s_.text(col);
  }

 private:
  const Statement& s_;
  const std::string& file_;
};

Mat4 parse_matrix(const std::string& text, const RowReader& row) {
  Mat4 m{};
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    row.fail(fmt::format("_transform._matrix is not JSON: '{}'", shown(text)));
  }
  const auto bad = [&](const char* why) { row.fail(fmt::format("_transform._matrix {}: '{}'", why, shown(text))); };
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

struct Optics {
  std::vector<OpticsGroup> groups;
  std::vector<std::string> extra_labels;
};

Optics read_optics(const Properties& props, const std::string& file, double pixel_A, int image_size) {
  const auto acq = [&](const char* key) { return prop_number(props, fmt::format("_acquisition.{}", key), file); };
  const auto need = [&](std::optional<double> v, const char* what) {
    if (!v) throw InputError(fmt::format("{}: no {} (neither in opticsGroupInfo nor in _acquisition)", file, what));
    return *v;
  };
  Optics out;
  const auto text = prop(props, "_acquisition.opticsGroupInfo");
  if (!text) {
    OpticsGroup g;
    g.name = "opticsGroup1";
    g.pixel_A = pixel_A;
    g.image_size = image_size;
    g.voltage_kV = need(acq("_voltage"), "voltage");
    g.cs_mm = need(acq("_sphericalAberration"), "spherical aberration");
    g.amplitude_contrast = need(acq("_amplitudeContrast"), "amplitude contrast");
    out.groups.push_back(g);
    return out;
  }
  const std::string source = file + " (_acquisition.opticsGroupInfo)";
  const StarFile star = parse_star(*text, source);
  const StarTable* t = star.find("optics");
  if (t == nullptr || t->rows.empty()) throw InputError(source + ": no data_optics table with rows");
  const std::set<std::string> known{
      "rlnOpticsGroup",       "rlnOpticsGroupName", "rlnVoltage",  "rlnSphericalAberration",
      "rlnAmplitudeContrast", "rlnImagePixelSize",  "rlnImageSize"};
  std::vector<std::size_t> extra_cols;
  for (std::size_t c = 0; c < t->labels.size(); ++c)
    if (!known.count(t->labels[c])) {
      extra_cols.push_back(c);
      out.extra_labels.push_back(t->labels[c]);
    }
  for (std::size_t r = 0; r < t->rows.size(); ++r) {
    const auto get = [&](const char* label) -> std::optional<double> {
      const int c = t->column(label);
      if (c < 0) return std::nullopt;
      const auto v = parse_double(t->rows[r][static_cast<std::size_t>(c)]);
      if (!v) throw InputError(fmt::format("{}: {} of row {} is not a number", source, label, r + 1));
      return v;
    };
    const auto small_int = [&](const char* label, double fallback) {
      const double v = get(label).value_or(fallback);
      if (v != std::floor(v) || v < 0 || v > 1e9) throw InputError(fmt::format("{}: bad {} {}", source, label, v));
      return static_cast<int>(v);
    };
    OpticsGroup g;
    g.number = small_int("rlnOpticsGroup", static_cast<double>(r + 1));
    if (g.number < 1) throw InputError(fmt::format("{}: bad rlnOpticsGroup 0", source));
    for (const auto& other : out.groups)
      if (other.number == g.number) throw InputError(fmt::format("{}: optics group {} twice", source, g.number));
    g.name = t->has("rlnOpticsGroupName") ? t->rows[r][static_cast<std::size_t>(t->column("rlnOpticsGroupName"))]
                                          : fmt::format("opticsGroup{}", g.number);
    g.pixel_A = pixel_A;
    g.image_size = image_size > 0 ? image_size : small_int("rlnImageSize", 0);
    g.voltage_kV = need(get("rlnVoltage") ? get("rlnVoltage") : acq("_voltage"), "voltage");
    g.cs_mm = need(get("rlnSphericalAberration") ? get("rlnSphericalAberration") : acq("_sphericalAberration"),
                   "spherical aberration");
    g.amplitude_contrast = need(get("rlnAmplitudeContrast") ? get("rlnAmplitudeContrast") : acq("_amplitudeContrast"),
                                "amplitude contrast");
    for (const auto c : extra_cols) g.extra.push_back(t->rows[r][c]);
    out.groups.push_back(std::move(g));
  }
  return out;
}

/// The project folder: the sqlite path minus _mapperPath, else the nearest
/// folder above it holding the first stack, else the parent of "Runs".
fs::path find_project_root(const fs::path& sqlite, const Properties& props, const std::optional<std::string>& stack) {
  const fs::path abs = fs::absolute(sqlite).lexically_normal();
  const std::string mapper = prop(props, "_mapperPath").value_or("");
  const fs::path rel = fs::path(trim(mapper.substr(0, mapper.rfind(',')))).lexically_normal();
  if (!rel.empty() && rel.is_relative()) {
    fs::path a = abs, r = rel;
    while (!r.empty() && r.filename() == a.filename()) {
      r = r.parent_path();
      a = a.parent_path();
    }
    if (r.empty()) return a;
  }
  std::error_code ec;
  if (stack && fs::path(*stack).is_relative())
    for (fs::path dir = abs.parent_path(); !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / *stack, ec)) return dir;
      if (dir == dir.parent_path()) break;
    }
  for (fs::path dir = abs.parent_path(); !dir.empty() && dir != dir.parent_path(); dir = dir.parent_path())
    if (dir.filename() == "Runs") return dir.parent_path();
  if (!stack || fs::path(*stack).is_absolute()) return abs.parent_path();
  throw InputError(
      fmt::format("{}: cannot find the Scipion project folder: _mapperPath '{}' is not the end of this "
                  "file's path, no folder above it holds '{}', and it is not under a Runs folder",
                  sqlite.string(), mapper, *stack));
}

Particle read_particle(const RowReader& row, const Plan& plan, const ScipionSetInfo& info,
                       const std::vector<OpticsGroup>& optics) {
  Particle p;
  const auto index = row.integer(plan.column("_index"), "_index");
  if (!index || *index < 1) row.fail("_index is not a 1-based image index");
  p.image.index = static_cast<long>(*index);
  p.image.path = row.text(plan.column("_filename")).value_or("");
  if (p.image.path.empty()) row.fail("_filename is empty");
  if (info.has_ctf) {
    p.defocus_u_A = row.required(plan.column("_ctfModel._defocusU"), "_ctfModel._defocusU");
    p.defocus_v_A = row.required(plan.column("_ctfModel._defocusV"), "_ctfModel._defocusV");
    p.defocus_angle_deg = row.required(plan.column("_ctfModel._defocusAngle"), "_ctfModel._defocusAngle");
    const auto shift = row.number(plan.column("_ctfModel._phaseShift"), "_ctfModel._phaseShift");
    p.phase_shift_deg = shift ? *shift : row.number(plan.column("_rlnPhaseShift"), "_rlnPhaseShift").value_or(0);
  }
  p.ctf_bfactor = row.number(plan.column("_rlnCtfBfactor"), "_rlnCtfBfactor").value_or(0);
  p.scale = row.number(plan.column("_rlnCtfScalefactor"), "_rlnCtfScalefactor").value_or(1);
  const long long half = row.integer(plan.column("_rlnRandomSubset"), "_rlnRandomSubset").value_or(0);
  if (half < 0 || half > 2) row.fail(fmt::format("_rlnRandomSubset {} is not 0, 1 or 2", half));
  p.half_set = static_cast<int>(half);
  const auto* g1 = &optics.front();
  for (const auto& g : optics)
    if (g.number == 1) g1 = &g;
  const long long group = row.integer(plan.column("_rlnOpticsGroup"), "_rlnOpticsGroup").value_or(g1->number);
  if (std::none_of(optics.begin(), optics.end(), [&](const OpticsGroup& g) { return g.number == group; }))
    row.fail(fmt::format("_rlnOpticsGroup {} is not an optics group of opticsGroupInfo", group));
  p.optics_group = static_cast<int>(group);
  p.micrograph =
      row.text(plan.column("_coordinate._micName")).value_or(row.text(plan.column("_rlnMicrographName")).value_or(""));
  if (info.alignment == "Projection")
    if (const auto m = row.text(plan.column("_transform._matrix")))
      p.pose = scipion_matrix_to_pose(parse_matrix(*m, row), info.pixel_A);
  for (const auto& e : plan.extras) p.extra.push_back(row.extra(e.col, e.cls));
  return p;
}

void check_required_labels(const Plan& plan, const ScipionSetInfo& info, const std::string& file) {
  std::vector<std::string> required{"_index", "_filename"};
  if (info.has_ctf)
    required.insert(required.end(), {"_ctfModel._defocusU", "_ctfModel._defocusV", "_ctfModel._defocusAngle"});
  if (info.alignment == "Projection") required.push_back("_transform._matrix");
  for (const auto& label : required)
    if (plan.column(label) < 0)
      throw InputError(fmt::format("{}: no {} attribute in Classes{}", file, label,
                                   label.rfind("_ctf", 0) == 0         ? " although _hasCtf is True"
                                   : label.rfind("_transform", 0) == 0 ? " although _alignment is Projection"
                                                                       : ""));
}

/// Removes extra columns that are NULL in every particle; adds rlnImageId.
void finish_extras(ParticleSet& set, const Plan& plan, const std::vector<bool>& seen,
                   const std::vector<long long>& ids) {
  std::vector<std::size_t> keep;
  for (std::size_t k = 0; k < plan.extras.size(); ++k)
    if (seen[k]) {
      keep.push_back(k);
      set.particle_extra_labels.push_back(plan.extras[k].name);
    }
  const bool add_id = set.particle_extra_index("rlnImageId") < 0;
  if (add_id) set.particle_extra_labels.push_back("rlnImageId");
  for (std::size_t i = 0; i < set.particles.size(); ++i) {
    auto& p = set.particles[i];
    std::vector<std::string> extra;
    for (const auto k : keep) extra.push_back(std::move(p.extra[k]));
    if (add_id) extra.push_back(std::to_string(ids[i]));
    p.extra = std::move(extra);
  }
}

}  // namespace

ParticleSet read_scipion_particles(const fs::path& sqlite, ScipionSetInfo* info_out) {
  const std::string file = sqlite.string();
  std::error_code ec;
  if (!fs::exists(sqlite, ec)) throw InputError(file + ": no such file");
  if (!fs::is_regular_file(sqlite, ec)) throw InputError(file + ": not a regular file");
  Database db(sqlite, Mode::read);
  const Properties props = read_properties(db);
  const Plan plan = make_plan(db);

  ScipionSetInfo info;
  info.alignment = prop(props, "_alignment").value_or("None");
  if (info.alignment != "None" && info.alignment != "2D" && info.alignment != "3D" && info.alignment != "Projection")
    throw InputError(
        fmt::format("{}: unknown _alignment '{}' (None, 2D, 3D or Projection)", file, shown(info.alignment)));
  info.has_ctf = prop_bool(props, "_hasCtf");
  info.phase_flipped = prop_bool(props, "_isPhaseFlipped");
  info.amplitude_corrected = prop_bool(props, "_isAmplitudeCorrected");
  info.dropped_labels = plan.dropped;
  if (info.alignment != "Projection" && plan.column("_transform._matrix") >= 0)
    info.dropped_labels.push_back("_transform._matrix");
  check_required_labels(plan, info, file);

  std::string select = "SELECT id";
  for (const auto& r : plan.rows) select += ", " + quoted(r.column);
  Statement rows = db.prepare(select + " FROM Objects WHERE enabled = 1 ORDER BY id");
  Statement count = db.prepare("SELECT COUNT(*) FROM Objects");
  count.step();
  info.total_items = static_cast<long>(std::get<long long>(count.column(0)));

  // The pixel size: the set's, else the first item's.
  std::optional<double> pixel = prop_number(props, "_samplingRate", file);
  std::optional<std::string> first_stack;
  if (rows.step()) {
    const RowReader row(rows, file);
    if (!pixel) pixel = row.number(plan.column("_samplingRate"), "_samplingRate");
    first_stack = row.text(plan.column("_filename"));
  }
  if (!pixel || *pixel <= 0) throw InputError(fmt::format("{}: no pixel size (_samplingRate)", file));
  info.pixel_A = *pixel;
  info.project_root = find_project_root(sqlite, props, first_stack);

  int image_size = 0;
  if (const auto dim = prop(props, "_firstDim"))
    image_size =
        static_cast<int>(std::clamp(parse_integer(dim->substr(0, dim->find(','))).value_or(0), 0LL, 1LL << 30));
  Optics optics = read_optics(props, file, info.pixel_A, image_size);

  ParticleSet set;
  set.optics = std::move(optics.groups);
  set.optics_extra_labels = std::move(optics.extra_labels);
  set.base_dir = info.project_root;
  std::vector<bool> seen(plan.extras.size(), false);
  std::vector<long long> ids;
  rows.reset();
  while (rows.step()) {
    const RowReader row(rows, file);
    ids.push_back(row.id());
    set.particles.push_back(read_particle(row, plan, info, set.optics));
    for (std::size_t k = 0; k < plan.extras.size(); ++k)
      if (row.text(plan.extras[k].col)) seen[k] = true;
  }
  finish_extras(set, plan, seen, ids);
  if (info_out) *info_out = std::move(info);
  return set;
}

// ------------------------------------------------------------ writing

namespace {

/// One Objects column: its Classes label and class, and its value for particle i.
struct Column {
  std::string label, cls;
  std::function<Value(std::size_t)> value;
};

std::string sql_type(const std::string& cls) {
  if (cls == "Integer" || cls == "Boolean") return "INTEGER";
  return cls == "Float" ? "REAL" : "TEXT";
}

fs::path absolute_normal(const fs::path& p) {
  fs::path out = fs::absolute(p).lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  return out;
}

/// p relative to root when inside it, else nullopt.
std::optional<fs::path> inside(const fs::path& p, const fs::path& root) {
  const fs::path rel = absolute_normal(p).lexically_relative(root);
  if (rel.empty() || rel == "." || *rel.begin() == "..") return std::nullopt;
  return rel;
}

/// Everything the column functions need, computed once.
struct WriteContext {
  const ParticleSet& set;
  std::string file;
  fs::path root;
  std::vector<std::string> paths;
  std::vector<long long> ids;
  std::vector<const OpticsGroup*> groups;  // per particle
  std::string optics_star;
  double pixel_A = 1;
  bool has_ctf = false, has_poses = false, has_coords = false;

  int extra(const std::string& label) const { return set.particle_extra_index(label); }
  const std::string& extra_text(std::size_t i, int k) const {
    return set.particles[i].extra[static_cast<std::size_t>(k)];
  }
  /// The extra value converted to the column's class (NULL when empty or absent).
  Value extra_value(std::size_t i, int k, const std::string& cls) const {
    if (k < 0 || extra_text(i, k).empty()) return std::monostate{};
    const std::string& t = extra_text(i, k);
    if (cls == "String") return t;
    const auto v = parse_double(t);
    if (!v)
      throw InputError(fmt::format("{}: particle {}: {} '{}' is not a number", file, i + 1,
                                   set.particle_extra_labels[static_cast<std::size_t>(k)], t));
    if (cls == "Float") return *v;
    if (std::abs(*v) > kMaxExactInteger)
      throw InputError(fmt::format("{}: particle {}: {} '{}' is too large for an Integer column", file, i + 1,
                                   set.particle_extra_labels[static_cast<std::size_t>(k)], t));
    return static_cast<long long>(std::llround(*v));
  }
};

std::string optics_star_text(const ParticleSet& set) {
  StarTable t;
  t.name = "optics";
  t.labels = {"rlnOpticsGroup",         "rlnOpticsGroupName", "rlnAmplitudeContrast",
              "rlnSphericalAberration", "rlnVoltage",         "rlnImagePixelSize"};
  const bool sizes = std::all_of(set.optics.begin(), set.optics.end(), [](const auto& g) { return g.image_size > 0; });
  if (sizes) t.labels.push_back("rlnImageSize");
  t.labels.insert(t.labels.end(), set.optics_extra_labels.begin(), set.optics_extra_labels.end());
  const bool dimensionality = std::find(t.labels.begin(), t.labels.end(), "rlnImageDimensionality") == t.labels.end();
  if (dimensionality) t.labels.push_back("rlnImageDimensionality");
  for (const auto& g : set.optics) {
    std::vector<std::string> row{
        std::to_string(g.number),       g.name.empty() ? fmt::format("opticsGroup{}", g.number) : g.name,
        py_float(g.amplitude_contrast), py_float(g.cs_mm),
        py_float(g.voltage_kV),         py_float(g.pixel_A)};
    if (sizes) row.push_back(std::to_string(g.image_size));
    if (g.extra.size() != set.optics_extra_labels.size())
      throw std::invalid_argument(fmt::format("optics group {} has {} extra values for {} extra labels", g.number,
                                              g.extra.size(), set.optics_extra_labels.size()));
    row.insert(row.end(), g.extra.begin(), g.extra.end());
    if (dimensionality) row.push_back("2");
    t.rows.push_back(std::move(row));
  }
  StarFile star;
  star.blocks.push_back(std::move(t));
  return format_star(star);
}

WriteContext make_context(const fs::path& sqlite, const ParticleSet& set, const fs::path& root) {
  WriteContext c{set, sqlite.string(), absolute_normal(root), {}, {}, {}, {}, 1, false, false, false};
  if (set.optics.empty()) throw InputError(c.file + ": the particle set has no optics group");
  c.pixel_A = set.optics.front().pixel_A;
  for (const auto& g : set.optics)
    if (g.pixel_A != c.pixel_A || !(g.pixel_A > 0))
      throw InputError(fmt::format("{}: a Scipion set has one pixel size, but the optics groups have {} and {} A/px",
                                   c.file, c.pixel_A, g.pixel_A));
  const std::set<std::string> labels(set.particle_extra_labels.begin(), set.particle_extra_labels.end());
  if (labels.size() != set.particle_extra_labels.size())
    throw std::invalid_argument(c.file + ": duplicate particle extra labels");
  for (const auto& label : labels)
    if (label.empty() ||
        !std::all_of(label.begin(), label.end(), [](unsigned char ch) { return std::isalnum(ch) || ch == '_'; }))
      throw InputError(fmt::format("{}: extra column '{}' is not a valid Scipion attribute name", c.file, label));
  const int id_col = c.extra("rlnImageId");
  std::set<long long> distinct;
  for (std::size_t i = 0; i < set.particles.size(); ++i) {
    const Particle& p = set.particles[i];
    if (p.extra.size() != set.particle_extra_labels.size())
      throw std::invalid_argument(fmt::format("{}: particle {} has {} extra values for {} extra labels", c.file, i + 1,
                                              p.extra.size(), set.particle_extra_labels.size()));
    const auto g = std::find_if(set.optics.begin(), set.optics.end(),
                                [&](const OpticsGroup& o) { return o.number == p.optics_group; });
    if (g == set.optics.end())
      throw InputError(
          fmt::format("{}: particle {} is in optics group {}, which is not defined", c.file, i + 1, p.optics_group));
    c.groups.push_back(&*g);
    const fs::path stack = set.stack_path(p);
    c.paths.push_back(inside(stack, c.root).value_or(absolute_normal(stack)).string());
    const auto id =
        id_col < 0 ? std::optional<long long>(static_cast<long long>(i) + 1) : parse_integer(c.extra_text(i, id_col));
    if (!id || *id < 1 || !distinct.insert(*id).second)
      throw InputError(fmt::format("{}: particle {}: rlnImageId '{}' is not a new positive integer", c.file, i + 1,
                                   c.extra_text(i, id_col)));
    c.ids.push_back(*id);
    if (p.pose) {
      const auto& a = *p.pose;
      for (const double v : {a.angles.rot, a.angles.tilt, a.angles.psi, a.origin_x_A, a.origin_y_A, a.origin_z_A})
        if (!std::isfinite(v))
          throw InputError(fmt::format("{}: particle {} has a pose that is not finite", c.file, i + 1));
    }
    c.has_ctf = c.has_ctf || p.defocus_u_A != 0 || p.defocus_v_A != 0;
  }
  c.has_poses = set.has_poses();
  c.has_coords = c.extra("rlnCoordinateX") >= 0 && c.extra("rlnCoordinateY") >= 0;
  c.optics_star = optics_star_text(set);
  return c;
}

std::string matrix_json(const Mat4& m) {
  std::vector<std::string> rows;
  for (const auto& r : m)
    rows.push_back(fmt::format("[{}, {}, {}, {}]", py_float(r[0]), py_float(r[1]), py_float(r[2]), py_float(r[3])));
  return fmt::format("[{}]", fmt::join(rows, ", "));
}

void add_ctf_and_acquisition(std::vector<Column>& cols, const WriteContext& c) {
  const auto& ps = c.set.particles;
  if (c.has_ctf) {
    cols.push_back({"_ctfModel", "CTFModel", [](std::size_t) { return Value{}; }});
    cols.push_back({"_ctfModel._defocusU", "Float", [&ps](std::size_t i) { return Value{ps[i].defocus_u_A}; }});
    cols.push_back({"_ctfModel._defocusV", "Float", [&ps](std::size_t i) { return Value{ps[i].defocus_v_A}; }});
    cols.push_back(
        {"_ctfModel._defocusAngle", "Float", [&ps](std::size_t i) { return Value{ps[i].defocus_angle_deg}; }});
    cols.push_back({"_ctfModel._defocusRatio", "Float", [&ps](std::size_t i) {
                      const auto& p = ps[i];  // pwem CTFModel.standardize()
                      return Value{p.defocus_v_A > 0.1 ? p.defocus_u_A / p.defocus_v_A : -1.0};
                    }});
    cols.push_back({"_ctfModel._phaseShift", "Float", [&ps](std::size_t i) { return Value{ps[i].phase_shift_deg}; }});
    for (const char* label : {"_ctfModel._psdFile", "_ctfModel._resolution", "_ctfModel._fitQuality"}) {
      const auto* m =
          std::find_if(kMapped.begin(), kMapped.end(), [&](const auto& x) { return x.scipion == std::string(label); });
      const int k = c.extra(m->relion);
      const std::string cls = m->cls;
      cols.push_back({label, cls, [&c, k, cls](std::size_t i) { return c.extra_value(i, k, cls); }});
    }
  }
  const auto& g = c.groups;
  cols.push_back({"_acquisition", "Acquisition", [](std::size_t) { return Value{}; }});
  cols.push_back({"_acquisition._magnification", "Float", [](std::size_t) { return Value{kMagnification}; }});
  cols.push_back({"_acquisition._voltage", "Float", [&g](std::size_t i) { return Value{g[i]->voltage_kV}; }});
  cols.push_back({"_acquisition._sphericalAberration", "Float", [&g](std::size_t i) { return Value{g[i]->cs_mm}; }});
  cols.push_back(
      {"_acquisition._amplitudeContrast", "Float", [&g](std::size_t i) { return Value{g[i]->amplitude_contrast}; }});
  cols.push_back({"_acquisition._doseInitial", "Float", [](std::size_t) { return Value{0.0}; }});
  cols.push_back({"_acquisition._dosePerFrame", "Float", [](std::size_t) { return Value{}; }});
  cols.push_back({"_acquisition.opticsGroupInfo", "String", [&c](std::size_t) { return Value{c.optics_star}; }});
}

std::vector<Column> make_columns(const WriteContext& c) {
  const auto& ps = c.set.particles;
  std::vector<Column> cols;
  cols.push_back(
      {"_index", "Integer", [&ps](std::size_t i) { return Value{static_cast<long long>(ps[i].image.index)}; }});
  cols.push_back({"_filename", "String", [&c](std::size_t i) { return Value{c.paths[i]}; }});
  cols.push_back({"_samplingRate", "Float", [&c](std::size_t) { return Value{c.pixel_A}; }});
  add_ctf_and_acquisition(cols, c);
  if (c.has_poses) {
    cols.push_back({"_transform", "Transform", [](std::size_t) { return Value{}; }});
    cols.push_back({"_transform._matrix", "Matrix", [&c, &ps](std::size_t i) {
                      return Value{matrix_json(pose_to_scipion_matrix(*ps[i].pose, c.pixel_A))};
                    }});
  }
  const int mic = c.extra("rlnMicrographId");
  if (c.has_coords) {
    const int x = c.extra("rlnCoordinateX"), y = c.extra("rlnCoordinateY");
    cols.push_back({"_coordinate", "Coordinate", [](std::size_t) { return Value{}; }});
    cols.push_back({"_coordinate._x", "Integer", [&c, x](std::size_t i) { return c.extra_value(i, x, "Integer"); }});
    cols.push_back({"_coordinate._y", "Integer", [&c, y](std::size_t i) { return c.extra_value(i, y, "Integer"); }});
    cols.push_back(
        {"_coordinate._micId", "Integer", [&c, mic](std::size_t i) { return c.extra_value(i, mic, "Integer"); }});
    cols.push_back({"_coordinate._micName", "String", [&ps](std::size_t i) { return Value{ps[i].micrograph}; }});
  }
  const int cls = c.extra("rlnClassNumber");
  cols.push_back({"_micId", "Integer", [&c, mic](std::size_t i) { return c.extra_value(i, mic, "Integer"); }});
  cols.push_back({"_classId", "Integer", [&c, cls](std::size_t i) { return c.extra_value(i, cls, "Integer"); }});
  const auto any = [&ps](auto pred) { return std::any_of(ps.begin(), ps.end(), pred); };
  if (any([](const Particle& p) { return p.optics_group != 1; }))
    cols.push_back({"_rlnOpticsGroup", "Integer",
                    [&ps](std::size_t i) { return Value{static_cast<long long>(ps[i].optics_group)}; }});
  if (!c.has_coords && any([](const Particle& p) { return !p.micrograph.empty(); }))
    cols.push_back({"_rlnMicrographName", "String", [&ps](std::size_t i) { return Value{ps[i].micrograph}; }});
  if (any([](const Particle& p) { return p.ctf_bfactor != 0; }))
    cols.push_back({"_rlnCtfBfactor", "Float", [&ps](std::size_t i) { return Value{ps[i].ctf_bfactor}; }});
  if (any([](const Particle& p) { return p.scale != 1; }))
    cols.push_back({"_rlnCtfScalefactor", "Float", [&ps](std::size_t i) { return Value{ps[i].scale}; }});
  if (any([](const Particle& p) { return p.half_set != 0; }))
    cols.push_back({"_rlnRandomSubset", "Integer",
                    [&ps](std::size_t i) { return Value{static_cast<long long>(ps[i].half_set)}; }});
  return cols;
}

/// Class of an extra column from its values: Integer, Float or String.
std::string infer_class(const WriteContext& c, int k) {
  bool integer = true, number = true;
  for (std::size_t i = 0; i < c.set.particles.size(); ++i) {
    const std::string& t = c.extra_text(i, k);
    if (t.empty()) continue;
    integer = integer && parse_integer(t).has_value();
    number = number && parse_double(t).has_value();
  }
  return integer ? "Integer" : number ? "Float" : "String";
}

void add_extra_columns(std::vector<Column>& cols, const WriteContext& c) {
  const auto has = [&cols](const std::string& label) {
    return std::any_of(cols.begin(), cols.end(), [&](const Column& col) { return col.label == label; });
  };
  for (std::size_t k = 0; k < c.set.particle_extra_labels.size(); ++k) {
    const std::string& name = c.set.particle_extra_labels[k];
    const MappedLabel* m = mapped_by_relion(name);
    if (name == "rlnImageId" || (m && has(m->scipion))) continue;  // written as Objects.id or by a block above
    const std::string label = "_" + name;
    if (has(label)) continue;  // a Particle field wins
    const std::string cls = infer_class(c, static_cast<int>(k));
    cols.push_back({label, cls, [&c, k, cls](std::size_t i) { return c.extra_value(i, static_cast<int>(k), cls); }});
  }
}

void write_tables(Database& db, const WriteContext& c, const std::vector<Column>& cols) {
  db.exec("PRAGMA user_version = 1");
  db.exec("BEGIN");
  // The schema exactly as pyworkflow's SqliteFlatDb.createTables declares it.
  db.exec("CREATE TABLE Properties (key TEXT UNIQUE, value TEXT DEFAULT NULL)");
  db.exec(
      "CREATE TABLE Classes (id INTEGER PRIMARY KEY AUTOINCREMENT, label_property TEXT UNIQUE, "
      "column_name TEXT UNIQUE, class_name TEXT DEFAULT NULL)");
  std::string create =
      "CREATE TABLE Objects (id INTEGER PRIMARY KEY, enabled INTEGER DEFAULT 1, "
      "label TEXT DEFAULT NULL, comment TEXT DEFAULT NULL, creation DATE";
  std::string insert = "INSERT INTO Objects (id, enabled, label, comment, creation";
  Statement classes = db.prepare("INSERT INTO Classes (label_property, column_name, class_name) VALUES (?, ?, ?)");
  const auto add_class = [&](const std::string& label, const std::string& column, const std::string& cls) {
    classes.bind(1, label);
    classes.bind(2, column);
    classes.bind(3, cls);
    classes.step();
    classes.reset();
  };
  add_class("self", "c00", "Particle");
  std::map<std::string, std::string> column_of;
  for (std::size_t k = 0; k < cols.size(); ++k) {
    const std::string name =
        fmt::format("c{:02d}", k + 1);  // Objects columns in Classes order, as pyworkflow reads them
    add_class(cols[k].label, name, cols[k].cls);
    column_of[cols[k].label] = name;
    create += fmt::format(", {} {} DEFAULT NULL", name, sql_type(cols[k].cls));
    insert += ", " + name;
  }
  db.exec(create + ")");
  insert += ") VALUES (?, 1, '', '', datetime('now')";
  for (std::size_t k = 0; k < cols.size(); ++k) insert += ", ?";
  Statement objects = db.prepare(insert + ")");
  for (std::size_t i = 0; i < c.set.particles.size(); ++i) {
    objects.bind(1, c.ids[i]);
    for (std::size_t k = 0; k < cols.size(); ++k) objects.bind(static_cast<int>(k) + 2, cols[k].value(i));
    objects.step();
    objects.reset();
  }
  for (const char* label : {"_micId", "_classId"})
    if (column_of.count(label)) db.exec(fmt::format("CREATE INDEX index_{} ON Objects ({})", label, column_of[label]));
}

void write_properties(Database& db, const WriteContext& c, const fs::path& rel) {
  const OpticsGroup& g = c.set.optics.front();
  const std::string first_dim = g.image_size > 0 ? fmt::format("{0},{0},1", g.image_size) : "";
  const std::vector<std::pair<std::string, Value>> props{
      {"self", "SetOfParticles"},
      {"_size", std::to_string(c.set.particles.size())},
      {"_streamState", std::to_string(kStreamClosed)},
      {"_mapperPath", rel.string() + ", "},
      {"_samplingRate", py_float(c.pixel_A)},
      {"_hasCtf", c.has_ctf ? "True" : "False"},
      {"_alignment", c.has_poses ? "Projection" : "None"},
      {"_isPhaseFlipped", "False"},
      {"_isAmplitudeCorrected", "False"},
      {"_acquisition", Value{}},
      {"_acquisition._magnification", py_float(kMagnification)},
      {"_acquisition._voltage", py_float(g.voltage_kV)},
      {"_acquisition._sphericalAberration", py_float(g.cs_mm)},
      {"_acquisition._amplitudeContrast", py_float(g.amplitude_contrast)},
      {"_acquisition._doseInitial", "0.0"},
      {"_acquisition._dosePerFrame", Value{}},
      {"_acquisition.opticsGroupInfo", c.optics_star},
      {"_firstDim", first_dim.empty() ? Value{} : Value{first_dim}},
      {"_isSubParticles", "False"}};
  Statement s = db.prepare("INSERT INTO Properties (key, value) VALUES (?, ?)");
  for (const auto& [key, value] : props) {
    s.bind(1, key);
    s.bind(2, value);
    s.step();
    s.reset();
  }
}

}  // namespace

void write_scipion_particles(const fs::path& sqlite, const ParticleSet& set, const fs::path& project_root) {
  const std::string file = sqlite.string();
  std::error_code ec;
  if (fs::exists(fs::symlink_status(sqlite, ec)))
    throw InputError(file + ": already exists; Scipion set files are never overwritten (write a new file)");
  const fs::path root = absolute_normal(project_root);
  const auto rel = inside(sqlite, root);
  if (!rel) throw InputError(fmt::format("{}: not inside the Scipion project folder {}", file, root.string()));
  if (!fs::is_directory(absolute_normal(sqlite).parent_path(), ec))
    throw InputError(file + ": its folder does not exist");
  const WriteContext c = make_context(sqlite, set, root);
  std::vector<Column> cols = make_columns(c);
  add_extra_columns(cols, c);

  std::random_device entropy;
  const fs::path temp = absolute_normal(sqlite).parent_path() /
                        fmt::format(".{}.tmp-{}-{:08x}", sqlite.filename().string(), ::getpid(), entropy());
  try {
    Database db(temp, Mode::write);
    write_tables(db, c, cols);
    write_properties(db, c, *rel);
    db.exec("COMMIT");
    db.close();
    fs::rename(temp, sqlite);
  } catch (...) {
    fs::remove(temp, ec);
    fs::remove(temp.string() + "-journal", ec);
    throw;
  }
}

}  // namespace tessera
