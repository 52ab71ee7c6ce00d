#include "tessera/particles.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fmt/format.h>
#include <stdexcept>
#include <system_error>

namespace tessera {

std::string ImageRef::to_string() const { return fmt::format("{:06d}@{}", index, path); }

ImageRef ImageRef::parse(const std::string& text) {
  ImageRef r;
  const auto at = text.find('@');
  if (at == std::string::npos) {
    r.index = 1;
    r.path = text;
  } else {
    const std::string num = text.substr(0, at);
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(num.c_str(), &end, 10);
    if (num.empty() || *end != '\0' || errno != 0 || v < 1)
      throw std::invalid_argument(fmt::format("bad image name '{}': index must be a positive integer", text));
    r.index = v;
    r.path = text.substr(at + 1);
  }
  if (r.path.empty()) throw std::invalid_argument(fmt::format("bad image name '{}': no file", text));
  return r;
}

const OpticsGroup& ParticleSet::optics_of(const Particle& p) const {
  for (const auto& g : optics)
    if (g.number == p.optics_group) return g;
  throw std::runtime_error(fmt::format("particle {} refers to optics group {}, which is not defined",
                                       p.image.to_string(), p.optics_group));
}

std::filesystem::path ParticleSet::stack_path(const Particle& p) const {
  const std::filesystem::path path(p.image.path);
  return path.is_absolute() ? path : base_dir / path;
}

bool ParticleSet::has_poses() const {
  return !particles.empty() &&
         std::all_of(particles.begin(), particles.end(), [](const Particle& p) { return p.pose.has_value(); });
}

int ParticleSet::particle_extra_index(const std::string& label) const {
  const auto it = std::find(particle_extra_labels.begin(), particle_extra_labels.end(), label);
  return it == particle_extra_labels.end() ? -1 : static_cast<int>(it - particle_extra_labels.begin());
}

namespace {

std::filesystem::path absolute_normal(const std::filesystem::path& p) {
  std::filesystem::path out = std::filesystem::absolute(p).lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();  // drop a trailing '/'
  return out;
}

}  // namespace

std::filesystem::path find_image_base_dir(const std::filesystem::path& file, const ParticleSet& set) {
  namespace fs = std::filesystem;
  const fs::path file_dir = absolute_normal(file).parent_path();
  if (set.particles.empty()) return file_dir;
  const fs::path image(set.particles.front().image.path);
  if (image.is_absolute()) return file_dir;
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  if (!ec) candidates.push_back(cwd);
  for (fs::path p = file_dir;; p = p.parent_path()) {
    candidates.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (const auto& c : candidates)
    if (fs::exists(c / image, ec)) return c;
  return file_dir;
}

std::string image_path_for(const ParticleSet& set, const Particle& p, const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path base = set.base_dir.empty() ? fs::current_path(ec) : set.base_dir;
  const fs::path image(p.image.path);
  const fs::path abs = absolute_normal(image.is_absolute() ? image : base / image);
  const fs::path rel = abs.lexically_relative(absolute_normal(root));
  if (!rel.empty() && *rel.begin() != "..") return rel.string();
  return abs.string();
}

bool has_ctf(const Particle& p) { return p.defocus_u_A != 0 || p.defocus_v_A != 0 || p.phase_shift_deg != 0; }

std::vector<int> deal_half_sets(const ParticleSet& set) {
  std::vector<int> half(set.particles.size());
  int next = 1;
  for (std::size_t i = 0; i < half.size(); ++i) {
    half[i] = set.particles[i].half_set;
    if (half[i] != 1 && half[i] != 2) half[i] = next, next = 3 - next;
  }
  return half;
}

std::array<long, 2> half_set_sizes(const ParticleSet& set) {
  const std::vector<int> half = deal_half_sets(set);
  const long a = std::count(half.begin(), half.end(), 1);
  return {a, static_cast<long>(half.size()) - a};
}

}  // namespace tessera
