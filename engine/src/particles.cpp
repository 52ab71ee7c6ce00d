#include "tessera/particles.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fmt/format.h>
#include <stdexcept>

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
