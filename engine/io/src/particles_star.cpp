#include "tessera/particles_star.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "tessera/error.hpp"
#include "tessera/mrc.hpp"
#include "tessera/optics_aberrations.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

/// One table of a STAR file being turned into values: looks columns up,
/// remembers which ones were interpreted (the rest become extra columns) and
/// converts text to numbers with messages naming the file and line.
class TableReader {
 public:
  TableReader(const std::string& file, const StarTable& table)
      : file_(file), table_(table), consumed_(table.labels.size(), false) {}

  const StarTable& table() const { return table_; }
  std::size_t size() const { return table_.rows.size(); }

  /// Index of a column that Tessera interprets (marked consumed), or -1.
  int take(const std::string& label) {
    const int c = table_.column(label);
    if (c >= 0) consumed_[static_cast<std::size_t>(c)] = true;
    return c;
  }
  int take_required(const std::string& label) {
    const int c = take(label);
    if (c < 0) throw InputError(fmt::format("{}: data_{} has no {} column", file_, table_.name, label));
    return c;
  }

  const std::string& text(std::size_t row, int col) const {
    return table_.rows[row][static_cast<std::size_t>(col)];
  }

  [[noreturn]] void fail(std::size_t row, const std::string& problem) const {
    throw InputError(fmt::format("{}:{}: {}", file_, table_.line_of(row), problem));
  }

  /// The column's value as a finite double; `fallback` when the column is absent.
  double number(std::size_t row, int col, double fallback) const {
    if (col < 0) return fallback;
    const std::string& s = text(row, col);
    const char* begin = s.data();
    const char* end = s.data() + s.size();
    if (begin != end && *begin == '+') ++begin;
    double v = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec != std::errc() || ptr != end || !std::isfinite(v))
      fail(row, fmt::format("{} value '{}' is not a finite number", table_.labels[static_cast<std::size_t>(col)], s));
    return v;
  }

  /// The column's value as an int (written as "3" or "3.000000").
  int integer(std::size_t row, int col, int fallback) const {
    if (col < 0) return fallback;
    const double v = number(row, col, 0);
    if (v != std::floor(v) || std::abs(v) > std::numeric_limits<int>::max())
      fail(row, fmt::format("{} value '{}' is not an integer", table_.labels[static_cast<std::size_t>(col)],
                            text(row, col)));
    return static_cast<int>(v);
  }

  std::vector<std::string> extra_labels() const {
    std::vector<std::string> out;
    for (std::size_t c = 0; c < consumed_.size(); ++c)
      if (!consumed_[c]) out.push_back(table_.labels[c]);
    return out;
  }
  std::vector<std::string> extra_values(std::size_t row) const {
    std::vector<std::string> out;
    for (std::size_t c = 0; c < consumed_.size(); ++c)
      if (!consumed_[c]) out.push_back(table_.rows[row][c]);
    return out;
  }

 private:
  const std::string& file_;
  const StarTable& table_;
  std::vector<bool> consumed_;
};

const StarTable& require_loop(const std::string& file, const StarTable* table) {
  if (!table->is_loop) throw InputError(fmt::format("{}: data_{} is not a loop_ table", file, table->name));
  return *table;
}

void read_optics(const std::string& file, const StarTable& table, ParticleSet& set) {
  TableReader t(file, require_loop(file, &table));
  const int number = t.take("rlnOpticsGroup"), name = t.take("rlnOpticsGroupName");
  const int pixel = t.take_required("rlnImagePixelSize"), size = t.take("rlnImageSize");
  const int kv = t.take("rlnVoltage"), cs = t.take("rlnSphericalAberration"), q0 = t.take("rlnAmplitudeContrast");
  set.optics_extra_labels = t.extra_labels();
  for (std::size_t r = 0; r < t.size(); ++r) {
    OpticsGroup g;
    g.number = t.integer(r, number, static_cast<int>(r) + 1);
    if (g.number < 1) t.fail(r, fmt::format("optics group number {} is not positive", g.number));
    for (const auto& other : set.optics)
      if (other.number == g.number) t.fail(r, fmt::format("optics group {} is defined twice", g.number));
    if (name >= 0) g.name = t.text(r, name);
    g.pixel_A = t.number(r, pixel, 0);
    if (g.pixel_A <= 0) t.fail(r, fmt::format("pixel size {} A is not positive", g.pixel_A));
    g.image_size = t.integer(r, size, 0);
    if (g.image_size < 0) t.fail(r, fmt::format("image size {} is negative", g.image_size));
    g.voltage_kV = t.number(r, kv, g.voltage_kV);
    g.cs_mm = t.number(r, cs, g.cs_mm);
    g.amplitude_contrast = t.number(r, q0, g.amplitude_contrast);
    g.extra = t.extra_values(r);
    set.optics.push_back(std::move(g));
  }
}

/// Columns of the particle table that map to Particle fields.
struct ParticleColumns {
  int image = -1, micrograph = -1, du = -1, dv = -1, dangle = -1, phase = -1, bfactor = -1, scale = -1,
      subset = -1;
  int rot = -1, tilt = -1, psi = -1, ox = -1, oy = -1, oz = -1;  ///< angles only when all three exist
  bool has_pose() const { return rot >= 0; }
};

/// Takes the columns common to 3.1 and legacy files; origins are taken by the caller.
ParticleColumns take_particle_columns(TableReader& t) {
  ParticleColumns c;
  c.image = t.take_required("rlnImageName");
  c.micrograph = t.take("rlnMicrographName");
  c.du = t.take("rlnDefocusU");
  c.dv = t.take("rlnDefocusV");
  c.dangle = t.take("rlnDefocusAngle");
  c.phase = t.take("rlnPhaseShift");
  c.bfactor = t.take("rlnCtfBfactor");
  c.scale = t.take("rlnCtfScalefactor");
  c.subset = t.take("rlnRandomSubset");
  const StarTable& table = t.table();
  if (table.has("rlnAngleRot") && table.has("rlnAngleTilt") && table.has("rlnAnglePsi")) {
    c.rot = t.take("rlnAngleRot");
    c.tilt = t.take("rlnAngleTilt");
    c.psi = t.take("rlnAnglePsi");
  }
  return c;
}

/// Fills every field except optics_group and the pose origins (set by the caller).
Particle read_particle_fields(const TableReader& t, std::size_t r, const ParticleColumns& c) {
  Particle p;
  try {
    p.image = ImageRef::parse(t.text(r, c.image));
  } catch (const std::invalid_argument& e) {
    t.fail(r, e.what());
  }
  if (c.micrograph >= 0) p.micrograph = t.text(r, c.micrograph);
  p.defocus_u_A = t.number(r, c.du, 0);
  p.defocus_v_A = t.number(r, c.dv, 0);
  p.defocus_angle_deg = t.number(r, c.dangle, 0);
  p.phase_shift_deg = t.number(r, c.phase, 0);
  p.ctf_bfactor = t.number(r, c.bfactor, 0);
  p.scale = t.number(r, c.scale, 1);
  p.half_set = t.integer(r, c.subset, 0);
  if (p.half_set < 0 || p.half_set > 2) t.fail(r, fmt::format("rlnRandomSubset {} is not 0, 1 or 2", p.half_set));
  if (c.has_pose()) {
    ProjectionPose pose;
    pose.angles = Euler{t.number(r, c.rot, 0), t.number(r, c.tilt, 0), t.number(r, c.psi, 0)};
    p.pose = pose;
  }
  return p;
}

void read_particles_31(const std::string& file, const StarTable& table, ParticleSet& set) {
  TableReader t(file, require_loop(file, &table));
  ParticleColumns c = take_particle_columns(t);
  const int group = t.take("rlnOpticsGroup");
  set.has_scales = c.scale >= 0;
  if (c.has_pose()) {
    c.ox = t.take("rlnOriginXAngst");
    c.oy = t.take("rlnOriginYAngst");
    c.oz = t.take("rlnOriginZAngst");
  }
  set.particle_extra_labels = t.extra_labels();
  set.particles.reserve(t.size());
  for (std::size_t r = 0; r < t.size(); ++r) {
    Particle p = read_particle_fields(t, r, c);
    p.optics_group = t.integer(r, group, 1);
    const bool defined = std::any_of(set.optics.begin(), set.optics.end(),
                                     [&](const OpticsGroup& g) { return g.number == p.optics_group; });
    if (!defined)
      t.fail(r, fmt::format("particle {} refers to optics group {}, which data_optics does not define",
                            p.image.to_string(), p.optics_group));
    if (p.pose) {
      p.pose->origin_x_A = t.number(r, c.ox, 0);
      p.pose->origin_y_A = t.number(r, c.oy, 0);
      p.pose->origin_z_A = t.number(r, c.oz, 0);
    }
    p.extra = t.extra_values(r);
    set.particles.push_back(std::move(p));
  }
}

/// Legacy (RELION <= 3.0) optics columns, per particle.
struct LegacyOptics {
  int kv = -1, cs = -1, q0 = -1, pixel = -1, detector_um = -1, magnification = -1;
};

double legacy_pixel(const TableReader& t, std::size_t r, const LegacyOptics& o) {
  if (o.pixel >= 0) {
    const double px = t.number(r, o.pixel, 0);
    if (px <= 0) t.fail(r, fmt::format("pixel size {} A is not positive", px));
    return px;
  }
  const double det = t.number(r, o.detector_um, 0), mag = t.number(r, o.magnification, 0);
  if (det <= 0 || mag <= 0)
    t.fail(r, fmt::format("rlnDetectorPixelSize {} um and rlnMagnification {} do not give a pixel size", det, mag));
  return det * 1e4 / mag;
}

/// Index of the optics group with these values, adding one when new.
int legacy_group(ParticleSet& set, const OpticsGroup& wanted) {
  for (const auto& g : set.optics)
    if (g.voltage_kV == wanted.voltage_kV && g.cs_mm == wanted.cs_mm &&
        g.amplitude_contrast == wanted.amplitude_contrast && g.pixel_A == wanted.pixel_A)
      return g.number;
  OpticsGroup g = wanted;
  g.number = static_cast<int>(set.optics.size()) + 1;
  g.name = fmt::format("opticsGroup{}", g.number);
  g.extra = {"2"};  // rlnImageDimensionality: particles are 2D images
  set.optics.push_back(std::move(g));
  return set.optics.back().number;
}

void read_particles_legacy(const std::string& file, const StarTable& table, ParticleSet& set) {
  TableReader t(file, require_loop(file, &table));
  const ParticleColumns c = take_particle_columns(t);
  set.has_scales = c.scale >= 0;
  LegacyOptics o;
  o.kv = t.take("rlnVoltage");
  o.cs = t.take("rlnSphericalAberration");
  o.q0 = t.take("rlnAmplitudeContrast");
  o.pixel = t.take("rlnImagePixelSize");
  if (o.pixel < 0) {
    if (!table.has("rlnDetectorPixelSize") || !table.has("rlnMagnification"))
      throw InputError(fmt::format("{}: data_{} has no pixel size: it needs rlnImagePixelSize, or "
                                   "rlnDetectorPixelSize and rlnMagnification",
                                   file, table.name));
    o.detector_um = t.take("rlnDetectorPixelSize");
    o.magnification = t.take("rlnMagnification");
  }
  const int ox = t.take("rlnOriginX"), oy = t.take("rlnOriginY"), oz = t.take("rlnOriginZ");
  for (const char* axis : {"X", "Y", "Z"})
    if (table.has(fmt::format("rlnOrigin{}", axis)) && table.has(fmt::format("rlnOrigin{}Angst", axis)))
      throw InputError(
          fmt::format("{}: data_{} has both rlnOrigin{} (pixels) and rlnOrigin{}Angst: which one is "
                      "the origin is ambiguous",
                      file, table.name, axis, axis));
  t.take("rlnOpticsGroup");  // groups are rebuilt from the per-particle optics values
  set.optics_extra_labels = {"rlnImageDimensionality"};
  set.particle_extra_labels = t.extra_labels();
  // Origins of particles without a pose stay columns, converted to Angstrom.
  std::vector<std::pair<int, std::string>> origin_extras;
  if (!c.has_pose())
    for (const auto& [col, label] : {std::pair{ox, "rlnOriginXAngst"}, {oy, "rlnOriginYAngst"}, {oz, "rlnOriginZAngst"}})
      if (col >= 0) {
        origin_extras.emplace_back(col, label);
        set.particle_extra_labels.push_back(label);
      }
  set.particles.reserve(t.size());
  for (std::size_t r = 0; r < t.size(); ++r) {
    Particle p = read_particle_fields(t, r, c);
    OpticsGroup wanted;
    wanted.voltage_kV = t.number(r, o.kv, wanted.voltage_kV);
    wanted.cs_mm = t.number(r, o.cs, wanted.cs_mm);
    wanted.amplitude_contrast = t.number(r, o.q0, wanted.amplitude_contrast);
    wanted.pixel_A = legacy_pixel(t, r, o);
    p.optics_group = legacy_group(set, wanted);
    if (p.pose) {
      p.pose->origin_x_A = t.number(r, ox, 0) * wanted.pixel_A;
      p.pose->origin_y_A = t.number(r, oy, 0) * wanted.pixel_A;
      p.pose->origin_z_A = t.number(r, oz, 0) * wanted.pixel_A;
    }
    p.extra = t.extra_values(r);
    for (const auto& [col, label] : origin_extras)
      p.extra.push_back(fmt::format("{}", t.number(r, col, 0) * wanted.pixel_A));
    set.particles.push_back(std::move(p));
  }
}

/// Image size of each legacy optics group from its first particle's stack.
void legacy_image_sizes(ParticleSet& set) {
  for (auto& g : set.optics) {
    const auto first = std::find_if(set.particles.begin(), set.particles.end(),
                                    [&](const Particle& p) { return p.optics_group == g.number; });
    if (first == set.particles.end()) continue;
    try {
      g.image_size = read_mrc_info(set.stack_path(*first)).nx;
    } catch (const std::exception&) {
      g.image_size = 0;  // unreadable stack: size unknown, as documented
    }
  }
}

fs::path resolve_base_dir(const fs::path& star, const std::optional<fs::path>& given, const ParticleSet& set) {
  if (given) return fs::absolute(*given).lexically_normal();
  return find_image_base_dir(star, set);
}

}  // namespace

ParticleSet read_particles_star(const fs::path& star, std::optional<fs::path> base_dir) {
  const StarFile file = read_star(star);
  const std::string name = star.string();
  ParticleSet set;
  const bool legacy = file.find("optics") == nullptr;
  if (!legacy) {
    const StarTable* particles = file.find("particles");
    if (particles == nullptr) throw InputError(fmt::format("{}: has data_optics but no data_particles", name));
    read_optics(name, *file.find("optics"), set);
    take_aberration_columns(set, name);
    read_particles_31(name, *particles, set);
  } else {
    const StarTable* table = nullptr;
    for (const char* block : {"particles", "images", ""})
      if (table == nullptr) table = file.find(block);
    if (table == nullptr)
      throw InputError(fmt::format("{}: no particle table (data_optics + data_particles, data_images or data_)", name));
    read_particles_legacy(name, *table, set);
  }
  set.base_dir = resolve_base_dir(star, base_dir, set);
  if (legacy) legacy_image_sizes(set);
  return set;
}

namespace {

std::string num(double v) { return fmt::format("{}", v); }

/// Indices of the extra labels that do not repeat a column written from a field
/// (the field wins: e.g. an extra rlnOriginXAngst kept from a file without poses).
std::vector<std::size_t> kept_extras(const std::vector<std::string>& extra_labels,
                                     const std::vector<std::string>& written) {
  std::vector<std::size_t> kept;
  for (std::size_t e = 0; e < extra_labels.size(); ++e)
    if (std::find(written.begin(), written.end(), extra_labels[e]) == written.end()) kept.push_back(e);
  return kept;
}

StarTable optics_table(const ParticleSet& set) {
  StarTable t;
  t.name = "optics";
  t.labels = {"rlnOpticsGroup",    "rlnOpticsGroupName", "rlnAmplitudeContrast", "rlnSphericalAberration",
              "rlnVoltage",        "rlnImagePixelSize"};
  const bool sizes = !set.optics.empty() &&
                     std::all_of(set.optics.begin(), set.optics.end(), [](const OpticsGroup& g) { return g.image_size > 0; });
  if (sizes) t.labels.push_back("rlnImageSize");
  const std::vector<OpticsTextColumn> aberrations = aberration_columns(set);
  for (const auto& c : aberrations) t.labels.push_back(c.label);
  std::vector<std::size_t> extras = kept_extras(set.optics_extra_labels, t.labels);
  std::erase_if(extras, [&](std::size_t e) { return is_aberration_label(set.optics_extra_labels[e]); });
  for (const std::size_t e : extras) t.labels.push_back(set.optics_extra_labels[e]);
  for (const auto& g : set.optics) {
    if (g.extra.size() != set.optics_extra_labels.size())
      throw std::invalid_argument(fmt::format("optics group {} has {} extra values for {} extra labels", g.number,
                                              g.extra.size(), set.optics_extra_labels.size()));
    std::vector<std::string> row = {fmt::format("{}", g.number),
                                    g.name.empty() ? fmt::format("opticsGroup{}", g.number) : g.name,
                                    num(g.amplitude_contrast), num(g.cs_mm), num(g.voltage_kV), num(g.pixel_A)};
    if (sizes) row.push_back(fmt::format("{}", g.image_size));
    const auto group = static_cast<std::size_t>(&g - set.optics.data());
    for (const auto& c : aberrations) row.push_back(c.values[group]);
    for (const std::size_t e : extras) row.push_back(g.extra[e]);
    t.rows.push_back(std::move(row));
  }
  return t;
}

struct Column {
  std::string label;
  std::function<std::string(const Particle&)> value;
};

std::vector<Column> particle_columns(const ParticleSet& set, const fs::path& root) {
  const auto any = [&](auto pred) { return std::any_of(set.particles.begin(), set.particles.end(), pred); };
  const bool ctf = any([](const Particle& p) { return p.defocus_u_A != 0 || p.defocus_v_A != 0; });
  const auto pose = [](const Particle& p) { return p.pose.value_or(ProjectionPose{}); };
  std::vector<Column> cols;
  // Particles of one stack usually follow each other: remember the last path.
  cols.push_back({"rlnImageName", [&set, root, last_in = std::string(), last_out = std::string()](
                                      const Particle& p) mutable {
                    if (p.image.path != last_in || last_out.empty()) {
                      last_in = p.image.path;
                      last_out = image_path_for(set, p, root);
                    }
                    return ImageRef{p.image.index, last_out}.to_string();
                  }});
  cols.push_back({"rlnOpticsGroup", [](const Particle& p) { return fmt::format("{}", p.optics_group); }});
  if (any([](const Particle& p) { return !p.micrograph.empty(); }))
    cols.push_back({"rlnMicrographName", [](const Particle& p) { return p.micrograph; }});
  const auto add_number = [&](const char* label, bool always, double Particle::*field) {
    if (always || any([&](const Particle& p) { return p.*field != 0; }))
      cols.push_back({label, [field](const Particle& p) { return num(p.*field); }});
  };
  add_number("rlnDefocusU", ctf, &Particle::defocus_u_A);
  add_number("rlnDefocusV", ctf, &Particle::defocus_v_A);
  add_number("rlnDefocusAngle", ctf, &Particle::defocus_angle_deg);
  add_number("rlnPhaseShift", ctf, &Particle::phase_shift_deg);
  add_number("rlnCtfBfactor", ctf, &Particle::ctf_bfactor);
  if (ctf || any([](const Particle& p) { return p.scale != 1; }))
    cols.push_back({"rlnCtfScalefactor", [](const Particle& p) { return num(p.scale); }});
  if (any([](const Particle& p) { return p.pose.has_value(); })) {
    cols.push_back({"rlnAngleRot", [pose](const Particle& p) { return num(pose(p).angles.rot); }});
    cols.push_back({"rlnAngleTilt", [pose](const Particle& p) { return num(pose(p).angles.tilt); }});
    cols.push_back({"rlnAnglePsi", [pose](const Particle& p) { return num(pose(p).angles.psi); }});
    cols.push_back({"rlnOriginXAngst", [pose](const Particle& p) { return num(pose(p).origin_x_A); }});
    cols.push_back({"rlnOriginYAngst", [pose](const Particle& p) { return num(pose(p).origin_y_A); }});
    if (any([](const Particle& p) { return p.pose && p.pose->origin_z_A != 0; }))
      cols.push_back({"rlnOriginZAngst", [pose](const Particle& p) { return num(pose(p).origin_z_A); }});
  }
  if (any([](const Particle& p) { return p.half_set != 0; }))
    cols.push_back({"rlnRandomSubset", [](const Particle& p) { return fmt::format("{}", p.half_set); }});
  return cols;
}

StarTable particles_table(const ParticleSet& set, const fs::path& paths_relative_to) {
  const std::vector<Column> cols = particle_columns(set, paths_relative_to);
  StarTable t;
  t.name = "particles";
  for (const auto& c : cols) t.labels.push_back(c.label);
  const std::vector<std::size_t> extras = kept_extras(set.particle_extra_labels, t.labels);
  for (const std::size_t e : extras) t.labels.push_back(set.particle_extra_labels[e]);
  t.rows.reserve(set.particles.size());
  for (const auto& p : set.particles) {
    if (p.extra.size() != set.particle_extra_labels.size())
      throw std::invalid_argument(fmt::format("particle {} has {} extra values for {} extra labels",
                                              p.image.to_string(), p.extra.size(), set.particle_extra_labels.size()));
    std::vector<std::string> row;
    row.reserve(t.labels.size());
    for (const auto& c : cols) row.push_back(c.value(p));
    for (const std::size_t e : extras) row.push_back(p.extra[e]);
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace

StarFile particles_to_star(const ParticleSet& set, const fs::path& paths_relative_to) {
  StarFile file;
  file.version = 30001;
  file.blocks.push_back(optics_table(set));
  file.blocks.push_back(particles_table(set, paths_relative_to));
  return file;
}

void write_particles_star(const fs::path& star, const ParticleSet& set, const fs::path& paths_relative_to) {
  write_star(star, particles_to_star(set, paths_relative_to));
}

}  // namespace tessera
