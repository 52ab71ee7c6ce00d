#include "tessera/micrographs_star.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

#include "tessera/error.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

// Reading numbers from one table, with messages "<file>:<line>: ...".
struct Cells {
  const std::string& file;
  const StarTable& table;

  [[noreturn]] void fail(std::size_t row, const std::string& problem) const {
    throw InputError(fmt::format("{}:{}: {}", file, table.line_of(row), problem));
  }
  std::optional<double> number(std::size_t row, const std::string& label) const {
    const int c = table.column(label);
    if (c < 0) return std::nullopt;
    const std::string& s = table.rows[row][static_cast<std::size_t>(c)];
    const char* begin = s.data() + (!s.empty() && s.front() == '+' ? 1 : 0);
    const char* end = s.data() + s.size();
    double v = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, v);
    if (begin == end || ec != std::errc() || ptr != end || !std::isfinite(v))
      fail(row, fmt::format("{} value '{}' is not a finite number", label, s));
    return v;
  }
  int group(std::size_t row) const {
    const double g = number(row, "rlnOpticsGroup").value_or(1);
    if (g != std::floor(g) || std::abs(g) > 1e9) fail(row, fmt::format("rlnOpticsGroup {} is not an integer", g));
    return static_cast<int>(g);
  }
};

// The optics values a micrograph needs; each may be unknown in one place.
struct Optics {
  std::optional<double> voltage_kV, cs_mm, amplitude_contrast, pixel_A;
};

Optics optics_row(const Cells& cells, std::size_t row) {
  Optics o;
  o.voltage_kV = cells.number(row, "rlnVoltage");
  o.cs_mm = cells.number(row, "rlnSphericalAberration");
  o.amplitude_contrast = cells.number(row, "rlnAmplitudeContrast");
  o.pixel_A = cells.number(row, "rlnMicrographPixelSize");
  if (!o.pixel_A) {
    const auto detector_um = cells.number(row, "rlnDetectorPixelSize");
    const auto magnification = cells.number(row, "rlnMagnification");
    if (detector_um && magnification && *magnification > 0) o.pixel_A = *detector_um * 1e4 / *magnification;
  }
  return o;
}

std::map<int, Optics> read_optics(const std::string& file, const StarTable* optics) {
  std::map<int, Optics> groups;
  if (!optics) return groups;
  const Cells cells{file, *optics};
  for (std::size_t r = 0; r < optics->rows.size(); ++r) {
    const int g = optics->has("rlnOpticsGroup") ? cells.group(r) : static_cast<int>(r) + 1;
    if (!groups.emplace(g, optics_row(cells, r)).second)
      cells.fail(r, fmt::format("optics group {} is defined twice", g));
  }
  return groups;
}

const StarTable* micrograph_table(const StarFile& star) {
  if (const StarTable* t = star.find("micrographs")) return t;
  if (star.find("optics")) return nullptr;  // RELION 3.1 names its table
  for (const StarTable& t : star.blocks)
    if (t.is_loop && t.has("rlnMicrographName")) return &t;
  return nullptr;
}

// `value` from the row, else from its optics group; InputError when neither has it.
double resolved(const Cells& cells, std::size_t row, std::optional<double> own, std::optional<double> group,
                const char* label) {
  if (own) return *own;
  if (group) return *group;
  cells.fail(row, fmt::format("no {} for this micrograph (neither in data_optics nor in the row)", label));
}

MicrographCtf read_row(const Cells& cells, std::size_t r, const std::map<int, Optics>& groups, bool has_optics) {
  const StarTable& t = cells.table;
  MicrographCtf m;
  m.name = t.rows[r][static_cast<std::size_t>(t.column("rlnMicrographName"))];
  if (m.name.empty()) cells.fail(r, "empty rlnMicrographName");
  Optics group;
  if (has_optics) {
    const int g = cells.group(r);
    const auto it = groups.find(g);
    if (it == groups.end()) cells.fail(r, fmt::format("optics group {} is not defined in data_optics", g));
    group = it->second;
  }
  const Optics own = optics_row(cells, r);
  m.ctf.defocus_u_A = *cells.number(r, "rlnDefocusU");
  m.ctf.defocus_v_A = *cells.number(r, "rlnDefocusV");
  m.ctf.defocus_angle_deg = cells.number(r, "rlnDefocusAngle").value_or(0);
  m.ctf.phase_shift_deg = cells.number(r, "rlnPhaseShift").value_or(0);
  m.ctf.voltage_kV = resolved(cells, r, own.voltage_kV, group.voltage_kV, "rlnVoltage");
  m.ctf.cs_mm = resolved(cells, r, own.cs_mm, group.cs_mm, "rlnSphericalAberration");
  m.ctf.amplitude_contrast =
      resolved(cells, r, own.amplitude_contrast, group.amplitude_contrast, "rlnAmplitudeContrast");
  m.pixel_A = resolved(cells, r, own.pixel_A, group.pixel_A, "rlnMicrographPixelSize");
  if (!(m.pixel_A > 0)) cells.fail(r, fmt::format("pixel size {} A is not positive", m.pixel_A));
  if (!(m.ctf.voltage_kV > 0)) cells.fail(r, fmt::format("voltage {} kV is not positive", m.ctf.voltage_kV));
  if (!(m.ctf.amplitude_contrast >= 0 && m.ctf.amplitude_contrast < 1))
    cells.fail(r, fmt::format("amplitude contrast {} is outside [0, 1)", m.ctf.amplitude_contrast));
  return m;
}

}  // namespace

bool is_micrographs_star(const fs::path& star) {
  std::ifstream in(star);
  std::string line, block;
  bool in_labels = false, image = false, micrograph = false;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string word;
    if (!(words >> word) || word.front() == '#') {
      continue;
    } else if (word.rfind("data_", 0) == 0) {
      block = word.substr(5);
      if (block == "micrographs" || block == "particles") return block == "micrographs";
      in_labels = image = micrograph = false;
    } else if (word == "loop_") {
      in_labels = true;
    } else if (word.front() == '_') {
      image = image || word == "_rlnImageName";
      micrograph = micrograph || word == "_rlnMicrographName";
    } else if (in_labels) {  // the first row: the labels have ended
      if (image || micrograph) return micrograph && !image;
      in_labels = false;
    }
  }
  return micrograph && !image;
}

MicrographCtfTable read_micrographs_ctf_star(const fs::path& path) {
  const std::string file = path.string();
  MicrographCtfTable out;
  out.star = read_star(path);
  const StarTable* t = micrograph_table(out.star);
  if (!t) throw InputError(fmt::format("{}: no micrograph table (data_micrographs with rlnMicrographName)", file));
  out.table = static_cast<std::size_t>(t - out.star.blocks.data());
  for (const char* label : {"rlnMicrographName", "rlnDefocusU", "rlnDefocusV"})
    if (!t->has(label)) throw InputError(fmt::format("{}: data_{} has no {} column", file, t->name, label));
  if (t->rows.empty()) throw InputError(fmt::format("{}: data_{} has no micrographs", file, t->name));
  const StarTable* optics = out.star.find("optics");
  const auto groups = read_optics(file, optics);
  const Cells cells{file, *t};
  out.micrographs.reserve(t->rows.size());
  for (std::size_t r = 0; r < t->rows.size(); ++r) out.micrographs.push_back(read_row(cells, r, groups, optics));
  return out;
}

StarFile micrographs_subset(const MicrographCtfTable& table, const std::vector<long>& rows) {
  StarFile out = table.star;
  if (table.table >= out.blocks.size() || out.blocks[table.table].rows.size() != table.micrographs.size())
    throw std::invalid_argument("micrographs_subset: the table does not hold its micrographs");
  StarTable* t = &out.blocks[table.table];
  std::vector<std::vector<std::string>> kept;
  kept.reserve(rows.size());
  for (long r : rows) {
    if (r < 0 || static_cast<std::size_t>(r) >= t->rows.size())
      throw std::out_of_range(fmt::format("micrographs_subset: row {} of {}", r, t->rows.size()));
    kept.push_back(t->rows[static_cast<std::size_t>(r)]);
  }
  t->rows = std::move(kept);
  t->row_lines.clear();
  return out;
}

ParticleMatch match_micrographs(const MicrographCtfTable& a, const fs::path& file_a, const MicrographCtfTable& b,
                                const fs::path& file_b, MatchBy by) {
  if (by == MatchBy::Id || by == MatchBy::Original)
    throw InputError(
        fmt::format("{}: micrograph tables carry no ids or original names to match by; match by "
                    "filename or path",
                    file_a.string()));
  std::vector<std::vector<std::string>> keys(2);
  for (std::size_t s = 0; s < 2; ++s)
    for (const MicrographCtf& m : (s == 0 ? a : b).micrographs)
      keys[s].push_back(by == MatchBy::FileName ? matching_file_name(m.name)
                                                : fs::path(m.name).lexically_normal().string());
  return match_keys(keys, {file_a, file_b}, by, "micrograph");
}

}  // namespace tessera
