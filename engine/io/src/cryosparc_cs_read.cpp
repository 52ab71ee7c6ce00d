// Reading cryoSPARC .cs particle files (cryosparc_cs.hpp documents the mapping).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <tuple>

#include "cryosparc_cs_schema.hpp"
#include "npy.hpp"
#include "tessera/cryosparc_cs.hpp"
#include "tessera/error.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

using detail::npy::Field;
using detail::npy::Kind;
using detail::npy::Table;
namespace field = detail::cs::field;

/// The table being turned into particles: looks fields up, checks their types,
/// remembers which ones were interpreted (the rest become extras) and reads
/// values with messages naming the file and row.
class CsReader {
 public:
  CsReader(std::string file, const Table& table)
      : file_(std::move(file)), table_(table), consumed_(table.fields().size(), false) {}

  const Table& table() const { return table_; }
  const std::string& file() const { return file_; }

  enum class Want { number, integer, text };

  /// A field Tessera interprets (marked consumed), checked to have `count`
  /// elements of the wanted kind; nullptr when absent.
  const Field* take(std::string_view name, Want want, long count = 1) {
    const Field* f = table_.find(name);
    if (f == nullptr) return nullptr;
    consumed_[static_cast<std::size_t>(f - table_.fields().data())] = true;
    const bool kind_ok = want == Want::number    ? f->numeric()
                         : want == Want::integer ? f->integral()
                                                 : f->kind == Kind::bytes || f->kind == Kind::unicode;
    if (!kind_ok || f->count() != count) {
      const char* what = want == Want::number ? "number" : want == Want::integer ? "integer" : "string";
      throw InputError(fmt::format("{}: field {} has type {}{}, expected {} {}{}", file_, name, f->typestr(),
                                   f->shape.empty() ? "" : fmt::format(" x {}", f->count()),
                                   count == 1 ? "one" : fmt::format("{}", count), what, count == 1 ? "" : "s"));
    }
    return f;
  }
  const Field& take_required(std::string_view name, Want want, const char* why) {
    const Field* f = take(name, want);
    if (f == nullptr)
      throw InputError(fmt::format("{}: has no {} field ({}): not a cryoSPARC particle file (a passthrough file?)",
                                   file_, name, why));
    return *f;
  }

  [[noreturn]] void fail(std::size_t row, const std::string& problem) const {
    throw InputError(fmt::format("{}: row {}: {}", file_, row, problem));
  }

  /// Element i of a numeric field, finite; `fallback` when the field is absent.
  double number(std::size_t row, const Field* f, double fallback, long i = 0) const {
    if (f == nullptr) return fallback;
    const double v = table_.number(row, *f, i);
    if (!std::isfinite(v)) fail(row, fmt::format("{} value {} is not finite", f->name, v));
    return v;
  }
  std::uint64_t integer(std::size_t row, const Field& f, long i = 0) const {
    try {
      return table_.unsigned_number(row, f, i);
    } catch (const std::out_of_range&) {
      fail(row, fmt::format("{} value {} is negative", f.name, table_.number(row, f, i)));
    }
  }

  /// The fields not taken, as (field, extra label); fields that cannot be kept are left out.
  std::vector<std::pair<const Field*, std::string>> extras() const {
    std::vector<std::pair<const Field*, std::string>> out;
    for (std::size_t i = 0; i < consumed_.size(); ++i) {
      const Field& f = table_.fields()[i];
      if (consumed_[i] || (!f.numeric() && f.count() != 1)) continue;
      if (auto label = cryosparc_extra_label(f.name)) out.emplace_back(&f, std::move(*label));
    }
    return out;
  }

 private:
  std::string file_;
  const Table& table_;
  std::vector<bool> consumed_;
};

struct Fields {
  const Field *path = nullptr, *idx = nullptr, *psize = nullptr, *shape = nullptr;
  const Field *kv = nullptr, *cs = nullptr, *q0 = nullptr, *exp = nullptr;
  const Field *df1 = nullptr, *df2 = nullptr, *angle = nullptr, *phase = nullptr, *scale = nullptr, *bfactor = nullptr;
  const Field *pose = nullptr, *shift = nullptr, *align_psize = nullptr, *split = nullptr, *klass = nullptr;
  const Field *micrograph = nullptr, *uid = nullptr;
};

Fields take_fields(CsReader& r) {
  using Want = CsReader::Want;
  Fields f;
  f.path = &r.take_required(field::blob_path, Want::text, "the particle stacks");
  f.idx = &r.take_required(field::blob_idx, Want::integer, "the positions in the stacks");
  f.psize = &r.take_required(field::blob_psize, Want::number, "the pixel size");
  f.shape = r.take(field::blob_shape, Want::integer, 2);
  f.kv = r.take(field::kv, Want::number);
  f.cs = r.take(field::cs_mm, Want::number);
  f.q0 = r.take(field::amp_contrast, Want::number);
  f.exp = r.take(field::exp_group, Want::integer);
  f.df1 = r.take(field::df1, Want::number);
  f.df2 = r.take(field::df2, Want::number);
  f.angle = r.take(field::df_angle, Want::number);
  f.phase = r.take(field::phase_shift, Want::number);
  f.scale = r.take(field::scale, Want::number);
  f.bfactor = r.take(field::bfactor, Want::number);
  f.pose = r.take(field::pose, Want::number, 3);
  if (f.pose != nullptr) {
    f.shift = r.take(field::shift, Want::number, 2);
    f.align_psize = r.take(field::align_psize, Want::number);
  }
  f.split = r.take(field::split, Want::integer);
  f.klass = r.take(field::klass, Want::integer);
  f.micrograph = r.take(field::micrograph, Want::text);
  f.uid = r.take(field::uid, Want::integer);
  return f;
}

/// What makes an optics group: exposure group, voltage, Cs, amplitude contrast, pixel size, image size.
using OpticsKey = std::tuple<std::optional<std::uint64_t>, double, double, double, double, int>;

OpticsKey optics_key(const CsReader& r, const Fields& f, std::size_t row) {
  const OpticsGroup defaults;
  const double px = r.number(row, f.psize, 0);
  if (px <= 0) r.fail(row, fmt::format("{} {} is not positive", f.psize->name, px));
  int size = 0;
  if (f.shape != nullptr) {
    const std::uint64_t ny = r.integer(row, *f.shape, 0), nx = r.integer(row, *f.shape, 1);
    if (ny != nx) r.fail(row, fmt::format("{} ({}, {}) is not square", f.shape->name, ny, nx));
    if (nx > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
      r.fail(row, fmt::format("{} {} is too large", f.shape->name, nx));
    size = static_cast<int>(nx);
  }
  return {f.exp != nullptr ? std::optional(r.integer(row, *f.exp)) : std::nullopt,
          r.number(row, f.kv, defaults.voltage_kV),
          r.number(row, f.cs, defaults.cs_mm),
          r.number(row, f.q0, defaults.amplitude_contrast),
          px,
          size};
}

/// The optics groups of the distinct keys, in order of first appearance.
std::vector<OpticsGroup> make_optics(const std::vector<OpticsKey>& keys) {
  // Numbered exp_group_id + 1 when every exposure group gives exactly one key.
  std::map<std::uint64_t, int> keys_per_group;
  for (const auto& k : keys)
    if (std::get<0>(k)) ++keys_per_group[*std::get<0>(k)];
  const bool by_exposure_group =
      !keys.empty() && std::get<0>(keys.front()).has_value() &&
      std::all_of(keys_per_group.begin(), keys_per_group.end(), [](const auto& kv) {
        return kv.second == 1 && kv.first < static_cast<std::uint64_t>(std::numeric_limits<int>::max());
      });
  std::vector<OpticsGroup> groups;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    OpticsGroup g;
    const auto& [exp, kv, cs, q0, px, size] = keys[i];
    g.number = by_exposure_group ? static_cast<int>(*exp) + 1 : static_cast<int>(i) + 1;
    g.name = fmt::format("opticsGroup{}", g.number);
    g.voltage_kV = kv, g.cs_mm = cs, g.amplitude_contrast = q0, g.pixel_A = px, g.image_size = size;
    groups.push_back(std::move(g));
  }
  return groups;
}

constexpr double kDeg = 3.14159265358979323846 / 180;

}  // namespace

ParticleSet read_cryosparc_particles(const fs::path& cs, std::optional<fs::path> base_dir) {
  const Table table = detail::npy::read(cs);
  CsReader r(cs.string(), table);
  const Fields f = take_fields(r);
  ParticleSet set;
  set.has_scales = f.scale != nullptr;
  if (f.uid != nullptr) set.particle_extra_labels.emplace_back(detail::cs::kUidLabel);
  if (f.klass != nullptr) set.particle_extra_labels.emplace_back(detail::cs::kClassLabel);
  const auto extras = r.extras();
  for (const auto& e : extras) set.particle_extra_labels.push_back(e.second);

  std::vector<OpticsKey> keys;
  std::vector<std::size_t> key_of_row(table.rows());
  std::vector<std::uint64_t> splits;
  set.particles.reserve(table.rows());
  for (std::size_t row = 0; row < table.rows(); ++row) {
    Particle p;
    p.image.path = table.text(row, *f.path);
    if (!p.image.path.empty() && p.image.path.front() == '>') p.image.path.erase(0, 1);
    if (p.image.path.empty()) r.fail(row, fmt::format("{} is empty", f.path->name));
    if (p.image.path.find('\0') != std::string::npos) r.fail(row, fmt::format("{} holds a NUL byte", f.path->name));
    const std::uint64_t idx = r.integer(row, *f.idx);
    if (idx >= static_cast<std::uint64_t>(std::numeric_limits<long>::max()))
      r.fail(row, fmt::format("{} {} is too large", f.idx->name, idx));
    p.image.index = static_cast<long>(idx) + 1;
    const OpticsKey key = optics_key(r, f, row);
    const auto found = std::find(keys.begin(), keys.end(), key);
    key_of_row[row] = static_cast<std::size_t>(found - keys.begin());
    if (found == keys.end()) keys.push_back(key);
    p.defocus_u_A = r.number(row, f.df1, 0);
    p.defocus_v_A = r.number(row, f.df2, 0);
    p.defocus_angle_deg = r.number(row, f.angle, 0) / kDeg;
    p.phase_shift_deg = r.number(row, f.phase, 0) / kDeg;
    p.scale = r.number(row, f.scale, 1);
    p.ctf_bfactor = r.number(row, f.bfactor, 0);
    if (f.pose != nullptr) {
      ProjectionPose pose;
      pose.angles = cryosparc_pose_to_euler(
          {r.number(row, f.pose, 0, 0), r.number(row, f.pose, 0, 1), r.number(row, f.pose, 0, 2)});
      if (!std::isfinite(pose.angles.rot + pose.angles.tilt + pose.angles.psi))
        r.fail(row, fmt::format("{} is not a rotation vector (its length overflows)", f.pose->name));
      const double align_px = r.number(row, f.align_psize, 0);
      const double px = align_px > 0 ? align_px : std::get<4>(key);
      pose.origin_x_A = r.number(row, f.shift, 0, 0) * px;
      pose.origin_y_A = r.number(row, f.shift, 0, 1) * px;
      if (!std::isfinite(pose.origin_x_A) || !std::isfinite(pose.origin_y_A))
        r.fail(row, fmt::format("{} times the pixel size overflows", field::shift));
      p.pose = pose;
    }
    if (f.split != nullptr) {
      splits.push_back(r.integer(row, *f.split));
      if (splits.back() > 1) r.fail(row, fmt::format("{} {} is not 0 or 1", f.split->name, splits.back()));
    }
    if (f.micrograph != nullptr) p.micrograph = table.text(row, *f.micrograph);
    if (f.uid != nullptr) p.extra.push_back(fmt::format("{}", r.integer(row, *f.uid)));
    if (f.klass != nullptr) p.extra.push_back(fmt::format("{}", r.integer(row, *f.klass) + 1));
    for (const auto& e : extras) p.extra.push_back(table.format(row, *e.first));
    set.particles.push_back(std::move(p));
  }
  set.optics = make_optics(keys);
  for (std::size_t row = 0; row < set.particles.size(); ++row)
    set.particles[row].optics_group = set.optics[key_of_row[row]].number;
  // One split value for everyone means no split was made.
  const bool split_made = std::any_of(splits.begin(), splits.end(), [&](auto s) { return s != splits.front(); });
  if (split_made)
    for (std::size_t row = 0; row < set.particles.size(); ++row)
      set.particles[row].half_set = static_cast<int>(splits[row]) + 1;
  set.base_dir = base_dir ? fs::absolute(*base_dir).lexically_normal() : find_image_base_dir(cs, set);
  return set;
}

}  // namespace tessera
