// Writing a Scipion SetOfParticles sqlite (API and file layout: tessera/scipion_set.hpp).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
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

using detail::kMaxExactInteger;
using detail::mapped_by_relion;
using detail::mapped_by_scipion;
using detail::MappedLabel;
using detail::matrix_json;
using detail::parse_double;
using detail::parse_integer;
using detail::py_float;
using detail::SqliteDb;
using detail::SqliteMode;
using detail::SqliteStatement;
using Value = detail::SqliteValue;

namespace {

constexpr double kMagnification = 50000.0;  // pwem ProtImportParticles' default; Tessera does not keep it
constexpr int kStreamClosed = 2;            // pyworkflow Set.STREAM_CLOSED

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
  const std::vector<OpticsTextColumn> aberrations = aberration_columns(set);
  for (const auto& c : aberrations) t.labels.push_back(c.label);
  std::vector<std::size_t> extras;
  for (std::size_t e = 0; e < set.optics_extra_labels.size(); ++e)
    if (!is_aberration_label(set.optics_extra_labels[e])) {
      extras.push_back(e);
      t.labels.push_back(set.optics_extra_labels[e]);
    }
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
    const auto group = static_cast<std::size_t>(&g - set.optics.data());
    for (const auto& c : aberrations) row.push_back(c.values[group]);
    for (const std::size_t e : extras) row.push_back(g.extra[e]);
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
      const MappedLabel* m = mapped_by_scipion(label);
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

void write_tables(SqliteDb& db, const WriteContext& c, const std::vector<Column>& cols) {
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
  SqliteStatement classes =
      db.prepare("INSERT INTO Classes (label_property, column_name, class_name) VALUES (?, ?, ?)");
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
  SqliteStatement objects = db.prepare(insert + ")");
  for (std::size_t i = 0; i < c.set.particles.size(); ++i) {
    objects.bind(1, c.ids[i]);
    for (std::size_t k = 0; k < cols.size(); ++k) objects.bind(static_cast<int>(k) + 2, cols[k].value(i));
    objects.step();
    objects.reset();
  }
  for (const char* label : {"_micId", "_classId"})
    if (column_of.count(label)) db.exec(fmt::format("CREATE INDEX index_{} ON Objects ({})", label, column_of[label]));
}

void write_properties(SqliteDb& db, const WriteContext& c, const fs::path& rel) {
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
  SqliteStatement s = db.prepare("INSERT INTO Properties (key, value) VALUES (?, ?)");
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
    SqliteDb db(temp, SqliteMode::write);
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
