#include "tessera/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <optional>
#include <stdexcept>

#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

// Independent streams for the per-micrograph and per-particle draws.
constexpr std::uint64_t kMicrographStream = 0x6d6963726f677261ULL;

Mat3 random_small_rotation(Rng& rng, double sigma_deg) {
  if (sigma_deg <= 0) return identity3();
  const Euler dir = random_euler(rng);  // a uniformly random axis: third row of A
  const Mat3 a = euler_to_matrix(dir);
  return axis_angle_matrix({a[2][0], a[2][1], a[2][2]}, sigma_deg * normal01(rng));
}

double variance(const RealGrid& g) {
  double s = 0, s2 = 0;
  for (float v : g.values()) s += v, s2 += double(v) * v;
  const double n = static_cast<double>(g.size());
  return s2 / n - (s / n) * (s / n);
}

}  // namespace

Vec3 centre_of_mass_px(const RealGrid& v) {
  double m = 0, cx = 0, cy = 0, cz = 0;
  const int c = v.nx() / 2;
  for (int z = 0; z < v.nz(); ++z)
    for (int y = 0; y < v.ny(); ++y)
      for (int x = 0; x < v.nx(); ++x) {
        const double d = std::max(0.0f, v(x, y, z));
        m += d, cx += d * (x - c), cy += d * (y - c), cz += d * (z - c);
      }
  if (m <= 0) return {0, 0, 0};
  return {cx / m, cy / m, cz / m};
}

Simulator::Simulator(const std::vector<RealGrid>& modules, SimulationOptions options)
    : opt_(std::move(options)) {
  if (modules.empty()) throw std::invalid_argument("Simulator: no volume");
  box_ = modules.front().nx();
  for (const auto& m : modules) {
    if (m.nx() != box_ || m.ny() != box_ || m.nz() != box_)
      throw std::invalid_argument("Simulator: module volumes must be cubic and of one box size");
    projectors_.emplace_back(m);
    centres_.push_back(centre_of_mass_px(m));
  }
  if (opt_.snr) {
    if (*opt_.snr <= 0) throw std::invalid_argument("Simulator: SNR must be positive");
    // Spread the sample over the whole run so every defocus range is represented.
    const long n = std::max<long>(1, std::min<long>(128, opt_.count));
    double signal = 0;
    for (long k = 0; k < n; ++k) {
      const long i = k * std::max<long>(opt_.count, 1) / n;
      signal += variance(render(draw(i)));
    }
    noise_sigma_ = std::sqrt(signal / n / *opt_.snr);
  }
}

OpticsGroup Simulator::optics() const {
  OpticsGroup g;
  g.number = 1;
  g.name = "opticsGroup1";
  g.pixel_A = opt_.pixel_A;
  g.image_size = box_;
  g.voltage_kV = opt_.voltage_kV;
  g.cs_mm = opt_.cs_mm;
  g.amplitude_contrast = opt_.amplitude_contrast;
  return g;
}

SimulatedParticle Simulator::draw(long index) const {
  SimulatedParticle sp;
  Particle& p = sp.particle;
  const long mic = index / std::max(1L, opt_.particles_per_micrograph);
  p.micrograph = fmt::format("mic{:04d}.mrc", mic + 1);
  if (opt_.apply_ctf) {
    Rng mrng = item_rng(opt_.seed ^ kMicrographStream, static_cast<std::uint64_t>(mic));
    const double dz = opt_.defocus_min_A + (opt_.defocus_max_A - opt_.defocus_min_A) * uniform01(mrng);
    const double astig = opt_.astigmatism_max_A * uniform01(mrng);
    p.defocus_u_A = dz + astig / 2;
    p.defocus_v_A = dz - astig / 2;
    p.defocus_angle_deg = 180.0 * uniform01(mrng);
  }
  Rng rng = item_rng(opt_.seed, static_cast<std::uint64_t>(index));
  ProjectionPose pose;
  if (!opt_.given_poses.empty()) {
    pose = opt_.given_poses[static_cast<std::size_t>(index) % opt_.given_poses.size()];
  } else {
    pose.angles = random_euler(rng);
    pose.origin_x_A = opt_.origin_sigma_A * normal01(rng);
    pose.origin_y_A = opt_.origin_sigma_A * normal01(rng);
  }
  p.pose = pose;
  p.scale = std::max(0.05, 1.0 + opt_.scale_sigma * normal01(rng));
  p.half_set = 1 + static_cast<int>(index % 2);
  const Mat3 a = euler_to_matrix(pose.angles);
  for (const Vec3& c : centres_) {
    const Mat3 r = random_small_rotation(rng, opt_.module_rotation_sigma_deg);
    Vec3 t{};
    for (double& ti : t) ti = opt_.module_shift_sigma_px * normal01(rng);
    const Vec3 rc = multiply(r, c);
    const Vec3 b{c[0] + t[0] - rc[0], c[1] + t[1] - rc[1], c[2] + t[2] - rc[2]};
    const Vec3 ab = multiply(a, b);
    ProjectionPose mp;
    mp.angles = matrix_to_euler(multiply(a, r));
    mp.origin_x_A = pose.origin_x_A - ab[0] * opt_.pixel_A;
    mp.origin_y_A = pose.origin_y_A - ab[1] * opt_.pixel_A;
    sp.module_poses.push_back(mp);
  }
  return sp;
}

RealGrid Simulator::render(const SimulatedParticle& sp) const {
  const Particle& p = sp.particle;
  std::optional<RealGrid> ctf;
  if (opt_.apply_ctf) ctf = model_ctf(p, optics(), box_);
  ComplexGrid sum(box_ / 2 + 1, box_), module;
  for (std::size_t j = 0; j < projectors_.size(); ++j) {
    // The module's own origin already includes the particle's origin.
    expected_transform(projectors_[j], model_pose(sp.module_poses[j], opt_.pixel_A), ctf ? &*ctf : nullptr, p.scale,
                       module);
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += module[i];
  }
  RealGrid img = ifft_2d(sum, box_);
  corner_to_centre(img, false);
  return img;
}

void Simulator::add_noise(RealGrid& image, long index) const {
  if (noise_sigma_ <= 0) return;
  Rng rng = item_rng(~opt_.seed, static_cast<std::uint64_t>(index));
  for (float& v : image.values()) v += static_cast<float>(noise_sigma_ * normal01(rng));
}

SimulatedParticle Simulator::make(long index, RealGrid& image, RealGrid* noise_free) const {
  SimulatedParticle sp = draw(index);
  image = render(sp);
  if (noise_free) *noise_free = image;
  add_noise(image, index);
  return sp;
}

}  // namespace tessera

namespace tessera {

RealGrid phantom_volume(int box, double pixel_A, std::uint64_t seed, int residues) {
  Rng rng = item_rng(seed, 0x70686e74);
  const double step = 3.8 / pixel_A, sigma = std::max(1.6 / pixel_A, 0.8), limit = box / 4.0;
  std::vector<Vec3> beads{{0, 0, 0}};
  while (static_cast<int>(beads.size()) < residues) {
    const Vec3& last = beads.back();
    Vec3 next{};
    for (int attempt = 0; attempt < 100; ++attempt) {
      const Mat3 a = euler_to_matrix(random_euler(rng));
      next = {last[0] + step * a[2][0], last[1] + step * a[2][1], last[2] + step * a[2][2]};
      if (std::sqrt(next[0] * next[0] + next[1] * next[1] + next[2] * next[2]) > limit) continue;
      bool clash = false;
      for (std::size_t k = 0; k + 2 < beads.size() && !clash; ++k) {
        const double dx = beads[k][0] - next[0], dy = beads[k][1] - next[1], dz = beads[k][2] - next[2];
        clash = dx * dx + dy * dy + dz * dz < 0.8 * step * step;
      }
      if (!clash) break;
    }
    beads.push_back(next);
  }
  RealGrid v(box, box, box);
  const int c = box / 2, reach = static_cast<int>(std::ceil(4 * sigma));
  for (const Vec3& b : beads) {
    const int bx = static_cast<int>(std::lround(b[0])) + c, by = static_cast<int>(std::lround(b[1])) + c,
              bz = static_cast<int>(std::lround(b[2])) + c;
    for (int z = std::max(0, bz - reach); z <= std::min(box - 1, bz + reach); ++z)
      for (int y = std::max(0, by - reach); y <= std::min(box - 1, by + reach); ++y)
        for (int x = std::max(0, bx - reach); x <= std::min(box - 1, bx + reach); ++x) {
          const double dx = x - c - b[0], dy = y - c - b[1], dz = z - c - b[2];
          v(x, y, z) += static_cast<float>(std::exp(-(dx * dx + dy * dy + dz * dz) / (2 * sigma * sigma)));
        }
  }
  return v;
}

}  // namespace tessera
