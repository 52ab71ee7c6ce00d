#include "particles/particle_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tessera/error.hpp"
#include "tessera/particles_star.hpp"
#include "tessera/scipion_set.hpp"

namespace tessera::viewer {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double parse(const std::string& s) {
  if (s.empty()) return kNaN;
  std::size_t used = 0;
  try {
    const double v = std::stod(s, &used);
    return used == s.size() ? v : kNaN;
  } catch (const std::exception&) {
    return kNaN;
  }
}

std::string shortest(double v) {
  return fmt::format("{}", v);
}

}  // namespace

const std::array<double, 4>& ParticleTable::StackScan::at(std::size_t row) {
  if (!done) {
    MrcStackReader reader(path);
    stats.resize(static_cast<std::size_t>(reader.size()));
    for (long i = 1; i <= reader.size(); ++i) {
      const RealGrid img = reader.read(i);
      MrcStats s;
      s.add(img.data(), img.size());
      stats[static_cast<std::size_t>(i - 1)] = {s.mean(), s.rms(), s.min(), s.max()};
    }
    done = true;
  }
  return stats.at(row);
}

ParticleTable ParticleTable::open(const fs::path& path) {
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file", path.string()));
  ParticleTable t;
  t.path_ = path;
  const std::string ext = path.extension().string();
  if (ext == ".star" || ext == ".sqlite") {
    t.set_ = std::make_shared<ParticleSet>(ext == ".star" ? read_particles_star(path) : read_scipion_particles(path));
    t.size_ = t.set_->particles.size();
    if (t.size_ == 0) throw InputError(fmt::format("{}: no particles", path.string()));
    t.add_particle_columns();
  } else if (ext == ".mrcs" || ext == ".mrc" || ext == ".st") {
    t.size_ = static_cast<std::size_t>(read_mrc_info(path).nz);
    t.scan_ = std::make_shared<StackScan>();
    t.scan_->path = path;
    t.add_stack_columns();
  } else {
    throw InputError(fmt::format("{}: give a particle .star, a Scipion .sqlite or an .mrcs stack", path.string()));
  }
  return t;
}

void ParticleTable::add(std::string name, std::function<std::string(std::size_t)> text,
                        std::function<double(std::size_t)> number) {
  if (!number) number = [text](std::size_t r) { return parse(text(r)); };
  names_.push_back(name);
  columns_.push_back({std::move(name), std::move(text), std::move(number)});
}

void ParticleTable::add_particle_columns() {
  const std::shared_ptr<const ParticleSet> set = set_;
  const auto field = [&](const char* name, auto get) {
    add(
        name, [set, get](std::size_t r) { return shortest(get(set->particles[r])); },
        [set, get](std::size_t r) { return static_cast<double>(get(set->particles[r])); });
  };
  add(
      "index", [](std::size_t r) { return std::to_string(r + 1); }, [](std::size_t r) { return double(r + 1); });
  add(
      "rlnImageName", [set](std::size_t r) { return set->particles[r].image.to_string(); },
      [](std::size_t) { return kNaN; });
  field("rlnOpticsGroup", [](const Particle& p) { return p.optics_group; });
  if (std::any_of(set->particles.begin(), set->particles.end(),
                  [](const Particle& p) { return !p.micrograph.empty(); }))
    add("rlnMicrographName", [set](std::size_t r) { return set->particles[r].micrograph; });
  field("rlnDefocusU", [](const Particle& p) { return p.defocus_u_A; });
  field("rlnDefocusV", [](const Particle& p) { return p.defocus_v_A; });
  field("rlnDefocusAngle", [](const Particle& p) { return p.defocus_angle_deg; });
  field("rlnPhaseShift", [](const Particle& p) { return p.phase_shift_deg; });
  field("rlnCtfBfactor", [](const Particle& p) { return p.ctf_bfactor; });
  field("rlnCtfScalefactor", [](const Particle& p) { return p.scale; });
  if (std::any_of(set->particles.begin(), set->particles.end(), [](const Particle& p) { return p.pose.has_value(); })) {
    const auto pose = [&](const char* name, auto get) {
      add(
          name,
          [set, get](std::size_t r) {
            const auto& p = set->particles[r];
            return p.pose ? shortest(get(*p.pose)) : "";
          },
          [set, get](std::size_t r) {
            const auto& p = set->particles[r];
            return p.pose ? get(*p.pose) : kNaN;
          });
    };
    pose("rlnAngleRot", [](const ProjectionPose& q) { return q.angles.rot; });
    pose("rlnAngleTilt", [](const ProjectionPose& q) { return q.angles.tilt; });
    pose("rlnAnglePsi", [](const ProjectionPose& q) { return q.angles.psi; });
    pose("rlnOriginXAngst", [](const ProjectionPose& q) { return q.origin_x_A; });
    pose("rlnOriginYAngst", [](const ProjectionPose& q) { return q.origin_y_A; });
  }
  field("rlnRandomSubset", [](const Particle& p) { return p.half_set; });
  for (std::size_t e = 0; e < set->particle_extra_labels.size(); ++e)
    add(set->particle_extra_labels[e], [set, e](std::size_t r) { return set->particles[r].extra[e]; });
}

void ParticleTable::add_stack_columns() {
  add(
      "index", [](std::size_t r) { return std::to_string(r + 1); }, [](std::size_t r) { return double(r + 1); });
  const std::shared_ptr<StackScan> scan = scan_;
  const char* names[] = {"mean", "stddev", "min", "max"};
  for (int k = 0; k < 4; ++k)
    add(
        names[k], [scan, k](std::size_t r) { return shortest(scan->at(r)[k]); },
        [scan, k](std::size_t r) { return scan->at(r)[k]; });
}

long ParticleTable::images_scanned() const {
  return scan_ && scan_->done ? static_cast<long>(size_) : 0;
}

int ParticleTable::column(const std::string& name) const {
  const auto it = std::find(names_.begin(), names_.end(), name);
  return it == names_.end() ? -1 : static_cast<int>(it - names_.begin());
}

std::string ParticleTable::text(std::size_t row, int col) const {
  return columns_.at(col).text(row);
}
double ParticleTable::number(std::size_t row, int col) const {
  return columns_.at(col).number(row);
}

bool ParticleTable::is_numeric(int col) const {
  auto it = numeric_.find(col);
  if (it != numeric_.end()) return it->second;
  bool numeric = true, any = false;
  for (std::size_t r = 0; r < size_ && numeric; ++r) {
    const double v = number(r, col);
    if (!std::isnan(v))
      any = true;
    else if (!text(r, col).empty())
      numeric = false;
  }
  return numeric_[col] = numeric && any;
}

ImageLocation ParticleTable::image(std::size_t row) const {
  if (!set_) return {path_, static_cast<long>(row) + 1};
  const Particle& p = set_->particles.at(row);
  return {set_->stack_path(p), p.image.index};
}

std::vector<std::size_t> ParticleTable::sorted(int col, bool descending) const {
  std::vector<std::size_t> order(size_);
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (is_numeric(col)) {
    std::vector<double> key(size_);
    for (std::size_t r = 0; r < size_; ++r) key[r] = number(r, col);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (std::isnan(key[a]) || std::isnan(key[b])) return !std::isnan(key[a]) && std::isnan(key[b]);
      return descending ? key[a] > key[b] : key[a] < key[b];
    });
  } else {
    std::vector<std::string> key(size_);
    for (std::size_t r = 0; r < size_; ++r) key[r] = text(r, col);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (key[a].empty() || key[b].empty()) return !key[a].empty() && key[b].empty();
      return descending ? key[a] > key[b] : key[a] < key[b];
    });
  }
  return order;
}

RealGrid ImageSource::read(const ImageLocation& where) {
  auto it = readers_.find(where.stack);
  if (it == readers_.end()) {
    if (readers_.size() >= 16) readers_.clear();  // keep a few stacks open, not thousands
    it = readers_.emplace(where.stack, std::make_unique<MrcStackReader>(where.stack)).first;
  }
  ++reads_;
  return it->second->read(where.index);
}

}  // namespace tessera::viewer
