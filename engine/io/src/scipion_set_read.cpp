// Reading a Scipion SetOfParticles sqlite (API and file layout: tessera/scipion_set.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "scipion_labels.hpp"
#include "sqlite_db.hpp"
#include "tessera/error.hpp"
#include "tessera/geometry.hpp"
#include "tessera/optics_aberrations.hpp"
#include "tessera/scipion_set.hpp"
#include "tessera/star.hpp"

namespace tessera {
namespace fs = std::filesystem;

using detail::kFieldLabels;
using detail::kMaxExactInteger;
using detail::mapped_by_scipion;
using detail::MappedLabel;
using detail::parse_double;
using detail::parse_integer;
using detail::py_float;
using detail::SqliteDb;
using detail::SqliteMode;
using detail::SqliteStatement;
using detail::trim;
using Value = detail::SqliteValue;

namespace {
/// A value from the file, shortened and on one line (control characters as spaces), for a message.
std::string shown(const std::string& s) {
  std::string out = s.substr(0, 80);
  std::replace_if(
      out.begin(), out.end(), [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; }, ' ');
  return out.size() < s.size() ? out + "..." : out;
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

using Properties = std::map<std::string, std::optional<std::string>>;

Properties read_properties(SqliteDb& db) {
  Properties props;
  if (!db.has_table("Properties")) return props;
  SqliteStatement s = db.prepare("SELECT key, value FROM Properties");
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

Plan make_plan(SqliteDb& db) {
  const std::string& file = db.file();
  for (const char* table : {"Classes", "Objects"})
    if (!db.has_table(table)) throw InputError(fmt::format("{}: no {} table: not a Scipion set file", file, table));
  std::set<std::string> objects_cols;
  SqliteStatement info = db.prepare("PRAGMA table_info(Objects)");
  while (info.step()) objects_cols.insert(info.text(1));
  Plan plan;
  std::optional<std::string> item_class;
  SqliteStatement s = db.prepare("SELECT label_property, column_name, class_name FROM Classes ORDER BY id");
  while (s.step()) {
    ClassRow r{s.text(0), s.text(1), s.text(2)};
    if (r.label == "self") {
      item_class = r.cls;
      continue;
    }
    if (!objects_cols.count(r.column))
      throw InputError(fmt::format("{}: Classes maps {} to column '{}', which Objects does not have", file,
                                   shown(r.label), shown(r.column)));
    plan.col[r.label] = static_cast<int>(plan.rows.size()) + 1;  // column 0 is Objects.id
    plan.rows.push_back(std::move(r));
  }
  if (item_class != "Particle")
    throw InputError(fmt::format("{}: not a set of particles: its items are {}", file,
                                 item_class ? shown(*item_class) : "undeclared (no 'self' row in Classes)"));
  std::set<std::string> names;
  for (const auto& r : plan.rows) {
    const bool container = std::any_of(plan.rows.begin(), plan.rows.end(),
                                       [&](const ClassRow& o) { return o.label.rfind(r.label + ".", 0) == 0; });
    const bool field = std::find(kFieldLabels.begin(), kFieldLabels.end(), r.label) != kFieldLabels.end();
    // read at set level, or derived: U/V, and _coordinate._micId (pwem prefers _micId)
    const bool set_level = r.label == "_samplingRate" || r.label == "_ctfModel._defocusRatio" ||
                           r.label == "_coordinate._micId" || r.label.rfind("_acquisition.", 0) == 0;
    if (container || field || set_level) continue;
    const MappedLabel* mapped = mapped_by_scipion(r.label);
    std::string name = mapped ? mapped->relion : "";
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
  RowReader(const SqliteStatement& s, const std::string& file) : s_(s), file_(file) {}
  /// Objects.id, an integer in every pwem file (INTEGER PRIMARY KEY); anything else is refused.
  long long id() const {
    const Value v = s_.column(0);
    if (const auto* i = std::get_if<long long>(&v)) return *i;
    throw InputError(fmt::format("{}: an Objects row has id '{}', not an integer", file_, shown(s_.text(0))));
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw InputError(fmt::format("{}: item id {}: {}", file_, id(), problem));
  }
  std::optional<double> number(int col, const std::string& label) const {
    if (col < 0) return std::nullopt;
    const Value v = s_.column(col);
    if (const auto* i = std::get_if<long long>(&v)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&v)) {
      if (!std::isfinite(*d)) fail(fmt::format("{} is not finite: {}", label, *d));  // SQLite stores infinities
      return *d;
    }
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
  const SqliteStatement& s_;
  const std::string& file_;
};

Mat4 parse_matrix(const std::string& text, const RowReader& row) {
  try {
    return detail::parse_matrix_json(text);
  } catch (const std::invalid_argument& e) {
    row.fail(fmt::format("_transform._matrix {}: '{}'", e.what(), shown(text)));
  }
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
                  sqlite.string(), shown(mapper), shown(*stack)));
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
  SqliteDb db(sqlite, SqliteMode::read);
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
  SqliteStatement rows = db.prepare(select + " FROM Objects WHERE enabled = 1 ORDER BY id");
  SqliteStatement count = db.prepare("SELECT COUNT(*) FROM Objects");
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
  take_aberration_columns(set, file + " (_acquisition.opticsGroupInfo)");
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
  set.has_scales = plan.column("_rlnCtfScalefactor") >= 0;
  if (info_out) *info_out = std::move(info);
  return set;
}

}  // namespace tessera
