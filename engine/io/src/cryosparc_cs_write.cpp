// Writing cryoSPARC .cs particle files (cryosparc_cs.hpp documents the mapping).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <system_error>

#include "cryosparc_cs_schema.hpp"
#include "npy.hpp"
#include "tessera/atomic_file.hpp"
#include "tessera/cryosparc_cs.hpp"
#include "tessera/error.hpp"
#include "tessera/mrc.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

using detail::npy::Column;
using detail::npy::Kind;
namespace cs = detail::cs;
namespace field = detail::cs::field;

constexpr double kDeg = 3.14159265358979323846 / 180;
constexpr std::uint64_t kUidSeed = 0x7e55e7a0c5u;  // fixed: the same set gets the same new uids

/// The columns of the file being built, and which extras they used.
class Columns {
 public:
  Columns(std::string file, const ParticleSet& set) : file_(std::move(file)), set_(set) {}

  const std::string& file() const { return file_; }
  std::size_t rows() const { return set_.particles.size(); }

  void add_real(std::string_view name, long count, const std::function<double(std::size_t, long)>& value) {
    Column c;
    c.field = {std::string(name), Kind::real, 4, count > 1 ? std::vector<long>{count} : std::vector<long>{}};
    for (std::size_t r = 0; r < rows(); ++r)
      for (long i = 0; i < count; ++i) {
        const double v = value(r, i);
        if (!(std::abs(v) <= std::numeric_limits<float>::max()) || (v != 0 && static_cast<float>(v) == 0))
          throw InputError(fmt::format("{}: particle {}: {} value {} does not fit a float32", file_,
                                       set_.particles[r].image.to_string(), name, v));
        c.reals.push_back(v);
      }
    add(std::move(c));
  }
  void add_unsigned(std::string_view name, int size, long count,
                    const std::function<std::uint64_t(std::size_t, long)>& value) {
    Column c;
    c.field = {std::string(name), Kind::unsigned_int, size, count > 1 ? std::vector<long>{count} : std::vector<long>{}};
    for (std::size_t r = 0; r < rows(); ++r)
      for (long i = 0; i < count; ++i) c.unsigned_ints.push_back(value(r, i));
    add(std::move(c));
  }
  void add_text(std::string_view name, const std::function<std::string(std::size_t)>& value) {
    Column c;
    c.field = {std::string(name), Kind::bytes, 0, {}};
    for (std::size_t r = 0; r < rows(); ++r) c.texts.push_back(value(r));
    add(std::move(c));
  }
  /// A field from its cs_ extra when the set has one, else its default value.
  void add_default(const cs::DefaultField& d) {
    const int e = set_.particle_extra_index(*cryosparc_extra_label(d.name));
    std::vector<std::string> texts(rows(), std::string(d.value));
    if (e >= 0) {
      used_extras_.insert(e);
      for (std::size_t r = 0; r < rows(); ++r) texts[r] = set_.particles[r].extra[static_cast<std::size_t>(e)];
    }
    add(cs::column_from_texts(file_, d.name, texts, &d));
  }
  /// Every cs_ extra not used yet whose field is not written already.
  void add_remaining_extras() {
    for (std::size_t e = 0; e < set_.particle_extra_labels.size(); ++e) {
      const auto name = cryosparc_field_of_extra(set_.particle_extra_labels[e]);
      if (!name || used_extras_.count(static_cast<int>(e)) || written_.count(*name)) continue;
      std::vector<std::string> texts;
      for (const auto& p : set_.particles) texts.push_back(p.extra[e]);
      add(cs::column_from_texts(file_, *name, texts));
    }
  }
  void use_extra(int e) { used_extras_.insert(e); }
  const std::vector<Column>& columns() const { return columns_; }

 private:
  void add(Column c) {
    written_.insert(c.field.name);
    columns_.push_back(std::move(c));
  }

  std::string file_;
  const ParticleSet& set_;
  std::vector<Column> columns_;
  std::set<std::string> written_;
  std::set<int> used_extras_;
};

/// Each particle's uid: its csUid unless missing or used by an earlier particle, else a new one.
std::vector<std::uint64_t> particle_uids(const std::string& file, const ParticleSet& set) {
  const int e = set.particle_extra_index(std::string(cs::kUidLabel));
  std::vector<std::optional<std::uint64_t>> given(set.particles.size());
  std::set<std::uint64_t> taken;
  for (std::size_t r = 0; r < given.size() && e >= 0; ++r) {
    const std::string& s = set.particles[r].extra[static_cast<std::size_t>(e)];
    if (s.empty()) continue;
    std::uint64_t v = 0;
    const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
    if (res.ec != std::errc() || res.ptr != s.data() + s.size())
      throw InputError(fmt::format("{}: particle {}: {} '{}' is not an unsigned 64-bit integer", file,
                                   detail::npy::printable(set.particles[r].image.to_string()), cs::kUidLabel,
                                   detail::npy::printable(s)));
    if (taken.insert(v).second) given[r] = v;
  }
  Rng rng(kUidSeed);
  std::vector<std::uint64_t> uids(given.size());
  for (std::size_t r = 0; r < uids.size(); ++r) {
    if (given[r]) {
      uids[r] = *given[r];
      continue;
    }
    do uids[r] = rng();
    while (!taken.insert(uids[r]).second);
  }
  return uids;
}

/// The optics groups, with each unknown image size read from the group's first
/// stack; checks that every particle's group is defined.
std::vector<OpticsGroup> groups_with_sizes(const std::string& file, const ParticleSet& set) {
  std::vector<OpticsGroup> groups = set.optics;
  for (const Particle& p : set.particles) {
    const auto g =
        std::find_if(groups.begin(), groups.end(), [&](const OpticsGroup& o) { return o.number == p.optics_group; });
    if (g == groups.end())
      throw InputError(fmt::format("{}: particle {} refers to optics group {}, which is not defined", file,
                                   p.image.to_string(), p.optics_group));
    if (g->number < 1)
      throw InputError(fmt::format("{}: optics group {} is not positive (exp_group_id = group - 1)", file, g->number));
    if (g->image_size > 0) continue;
    try {
      g->image_size = read_mrc_info(set.stack_path(p)).nx;
    } catch (const std::exception& e) {
      throw InputError(
          fmt::format("{}: the image size of optics group {} is unknown and its first stack cannot be "
                      "read for it: {}",
                      file, g->number, e.what()));
    }
  }
  return groups;
}

std::uint32_t class_number(const std::string& file, const Particle& p, const std::string& text) {
  double v = 0;
  const auto res = std::from_chars(text.data(), text.data() + text.size(), v);
  if (res.ec != std::errc() || res.ptr != text.data() + text.size() || v != std::floor(v) || v < 1 ||
      v > std::numeric_limits<std::uint32_t>::max())
    throw InputError(fmt::format("{}: particle {}: {} '{}' is not a positive integer", file,
                                 detail::npy::printable(p.image.to_string()), cs::kClassLabel,
                                 detail::npy::printable(text)));
  return static_cast<std::uint32_t>(v - 1);
}

void add_blob_and_ctf(Columns& c, const ParticleSet& set, const std::vector<const OpticsGroup*>& group,
                      const fs::path& root) {
  const auto& ps = set.particles;
  std::map<std::string, std::string> paths;  // image path as stored -> as written
  c.add_text(field::blob_path, [&](std::size_t r) {
    auto [it, fresh] = paths.try_emplace(ps[r].image.path);
    if (fresh) it->second = image_path_for(set, ps[r], root);
    return it->second;
  });
  c.add_unsigned(field::blob_idx, 4, 1, [&](std::size_t r, long) {
    const long index = ps[r].image.index;
    if (index < 1 || static_cast<unsigned long>(index - 1) > std::numeric_limits<std::uint32_t>::max())
      throw InputError(fmt::format("{}: particle {}: index {} does not fit blob/idx (uint32)", c.file(),
                                   ps[r].image.to_string(), index));
    return static_cast<std::uint64_t>(index - 1);
  });
  c.add_unsigned(field::blob_shape, 4, 2, [&](std::size_t r, long) { return group[r]->image_size; });
  c.add_real(field::blob_psize, 1, [&](std::size_t r, long) { return group[r]->pixel_A; });
  for (const auto& d : cs::kBlobDefaults) c.add_default(d);
  c.add_default(cs::kCtfTypeDefault);
  c.add_unsigned(field::exp_group, 4, 1, [&](std::size_t r, long) { return group[r]->number - 1; });
  c.add_real(field::kv, 1, [&](std::size_t r, long) { return group[r]->voltage_kV; });
  c.add_real(field::cs_mm, 1, [&](std::size_t r, long) { return group[r]->cs_mm; });
  c.add_real(field::amp_contrast, 1, [&](std::size_t r, long) { return group[r]->amplitude_contrast; });
  c.add_real(field::df1, 1, [&](std::size_t r, long) { return ps[r].defocus_u_A; });
  c.add_real(field::df2, 1, [&](std::size_t r, long) { return ps[r].defocus_v_A; });
  c.add_real(field::df_angle, 1, [&](std::size_t r, long) { return ps[r].defocus_angle_deg * kDeg; });
  c.add_real(field::phase_shift, 1, [&](std::size_t r, long) { return ps[r].phase_shift_deg * kDeg; });
  c.add_real(field::scale, 1, [&](std::size_t r, long) { return ps[r].scale; });
  c.add_default(cs::kCtfScaleConstDefault);
  for (const auto& d : cs::kCtfAberrationDefaults) c.add_default(d);
  c.add_real(field::bfactor, 1, [&](std::size_t r, long) { return ps[r].ctf_bfactor; });
}

void add_alignments(Columns& c, const ParticleSet& set, const std::vector<const OpticsGroup*>& group) {
  const auto& ps = set.particles;
  if (std::any_of(ps.begin(), ps.end(), [](const Particle& p) { return p.half_set != 0; })) {
    const std::vector<int> halves = deal_half_sets(set);
    c.add_unsigned(field::split, 4, 1, [&](std::size_t r, long) { return halves[r] - 1; });
  }
  if (std::any_of(ps.begin(), ps.end(), [](const Particle& p) { return p.pose.has_value(); })) {
    std::vector<Vec3> poses(ps.size(), Vec3{0, 0, 0});
    for (std::size_t r = 0; r < ps.size(); ++r)
      if (ps[r].pose) poses[r] = euler_to_cryosparc_pose(ps[r].pose->angles);
    // Shifts in pixels of alignments3D/psize_A, the group's pixel size.
    c.add_real(field::shift, 2, [&](std::size_t r, long i) {
      if (!ps[r].pose) return 0.0;
      return (i == 0 ? ps[r].pose->origin_x_A : ps[r].pose->origin_y_A) / group[r]->pixel_A;
    });
    c.add_real(field::pose, 3, [&](std::size_t r, long i) { return poses[r][static_cast<std::size_t>(i)]; });
    c.add_real(field::align_psize, 1, [&](std::size_t r, long) { return group[r]->pixel_A; });
  }
  if (const int e = set.particle_extra_index(std::string(cs::kClassLabel)); e >= 0) {
    c.use_extra(e);
    c.add_unsigned(field::klass, 4, 1, [&](std::size_t r, long) {
      return class_number(c.file(), ps[r], ps[r].extra[static_cast<std::size_t>(e)]);
    });
  }
}

}  // namespace

void write_cryosparc_particles(const fs::path& cs_path, const ParticleSet& set, const fs::path& paths_relative_to) {
  const std::string file = cs_path.string();
  for (const auto& p : set.particles)
    if (p.extra.size() != set.particle_extra_labels.size())
      throw std::invalid_argument(fmt::format("particle {} has {} extra values for {} extra labels",
                                              p.image.to_string(), p.extra.size(), set.particle_extra_labels.size()));
  const auto& ps = set.particles;
  const std::vector<OpticsGroup> groups = groups_with_sizes(file, set);
  std::vector<const OpticsGroup*> group;
  for (const auto& p : ps)
    group.push_back(
        &*std::find_if(groups.begin(), groups.end(), [&](const OpticsGroup& g) { return g.number == p.optics_group; }));
  Columns c(file, set);
  const std::vector<std::uint64_t> uids = particle_uids(file, set);
  if (const int e = set.particle_extra_index(std::string(cs::kUidLabel)); e >= 0) c.use_extra(e);
  c.add_unsigned(field::uid, 8, 1, [&](std::size_t r, long) { return uids[r]; });
  add_blob_and_ctf(c, set, group, paths_relative_to);
  add_alignments(c, set, group);
  if (std::any_of(ps.begin(), ps.end(), [](const Particle& p) { return !p.micrograph.empty(); }))
    c.add_text(field::micrograph, [&](std::size_t r) { return ps[r].micrograph; });
  c.add_remaining_extras();
  write_file_atomically(cs_path, detail::npy::encode(c.columns(), ps.size()));
}

}  // namespace tessera
