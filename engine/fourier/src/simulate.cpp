#include "tessera/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <fmt/format.h>
#include <optional>
#include <stdexcept>

#include "tessera/aberrations.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/random.hpp"

namespace tessera {
namespace {

// Independent streams for the per-micrograph and per-particle draws.
constexpr std::uint64_t kMicrographStream = 0x6d6963726f677261ULL;
constexpr std::uint64_t kDisorderStream = 0x646973726f646572ULL;
constexpr std::uint64_t kDefocusErrorStream = 0x6466657272ULL;

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

RealGrid to_image(const ComplexGrid& transform, int box) {
  RealGrid img = ifft_2d(transform, box);
  corner_to_centre(img, false);
  return img;
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
  if (opt_.ewald_sphere != EwaldSphere::Off && !opt_.apply_ctf)
    throw std::invalid_argument("Simulator: the Ewald sphere's sidebands need the CTF (apply_ctf)");
  if (opt_.disorder && opt_.mag_matrix != std::array<double, 4>{1, 0, 0, 1})
    throw std::invalid_argument("Simulator: the disordered component is not magnified; no mag_matrix with it");
  if (opt_.disorder) {
    if (!opt_.disorder->envelope.same_shape(modules.front()))
      throw std::invalid_argument(fmt::format("Simulator: the disorder's envelope is {}x{}x{}, the volumes' box {}",
                                              opt_.disorder->envelope.nx(), opt_.disorder->envelope.ny(),
                                              opt_.disorder->envelope.nz(), box_));
    disorder_.emplace(*opt_.disorder, opt_.pixel_A);
  }
  if (has_odd_aberrations(optics())) odd_phase_ = odd_phase_factor(optics(), box_);
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
  g.beam_tilt_x_mrad = opt_.beam_tilt_x_mrad;
  g.beam_tilt_y_mrad = opt_.beam_tilt_y_mrad;
  g.odd_zernike = opt_.odd_zernike;
  g.even_zernike = opt_.even_zernike;
  g.mag_matrix = opt_.mag_matrix;
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
    if (!opt_.given_ctfs.empty()) {
      const auto& given = opt_.given_ctfs[static_cast<std::size_t>(index) % opt_.given_ctfs.size()];
      if (given) {
        p.defocus_u_A = given->defocus_u_A;
        p.defocus_v_A = given->defocus_v_A;
        p.defocus_angle_deg = given->defocus_angle_deg;
        p.phase_shift_deg = given->phase_shift_deg;
      }
    }
    if (opt_.defocus_error_sigma_A > 0) {
      Rng erng = item_rng(opt_.seed ^ kDefocusErrorStream, static_cast<std::uint64_t>(index));
      sp.defocus_error_A = opt_.defocus_error_sigma_A * normal01(erng);
      p.defocus_u_A += sp.defocus_error_A;
      p.defocus_v_A += sp.defocus_error_A;
    }
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

ComplexGrid Simulator::protein_transform(const SimulatedParticle& sp, const RealGrid* ctf) const {
  ComplexGrid sum(box_ / 2 + 1, box_), module;
  std::optional<EwaldCtf> ewald;
  if (ctf && opt_.ewald_sphere != EwaldSphere::Off)
    ewald = model_ewald_ctf(sp.particle, optics(), box_, opt_.ewald_sphere);
  for (std::size_t j = 0; j < projectors_.size(); ++j) {
    // The module's own origin already includes the particle's origin.
    const ModelPose pose = model_pose(sp.module_poses[j], optics());  // its pixel size and magnification
    if (ewald)
      expected_transform_ewald(projectors_[j], pose, *ewald, sp.particle.scale, module);
    else
      expected_transform(projectors_[j], pose, ctf, sp.particle.scale, module);
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += module[i];
  }
  return sum;
}

RealGrid Simulator::render(const SimulatedParticle& sp) const {
  std::optional<RealGrid> ctf;
  if (opt_.apply_ctf) ctf = model_ctf(sp.particle, optics(), box_);
  ComplexGrid f = protein_transform(sp, ctf ? &*ctf : nullptr);
  if (!odd_phase_.empty()) multiply_odd_phase(f, odd_phase_, OddPhase::Apply);
  return to_image(f, box_);
}

std::vector<float> Simulator::disorder_weights(long index) const {
  if (!disorder_) throw std::logic_error("Simulator::disorder_weights: the simulation has no disordered component");
  Rng rng = item_rng(opt_.seed ^ kDisorderStream, static_cast<std::uint64_t>(index));
  return disorder_->draw(rng);
}

RealGrid Simulator::disorder_volume(long index) const {
  return disorder_->volume(disorder_weights(index));
}

void Simulator::add_noise(RealGrid& image, long index) const {
  if (noise_sigma_ <= 0) return;
  Rng rng = item_rng(~opt_.seed, static_cast<std::uint64_t>(index));
  for (float& v : image.values()) v += static_cast<float>(noise_sigma_ * normal01(rng));
}

SimulatedParticle Simulator::make(long index, RealGrid& image, RealGrid* noise_free) const {
  SimulatedParticle sp = draw(index);
  if (!disorder_) {
    image = render(sp);
  } else {
    // The disorder's projection at the particle's pose, through the same
    // CTF, scale and origin as the protein.
    const Particle& p = sp.particle;
    std::optional<RealGrid> ctf;
    if (opt_.apply_ctf) ctf = model_ctf(p, optics(), box_);
    ComplexGrid sum = protein_transform(sp, ctf ? &*ctf : nullptr);
    const ModelPose pose = model_pose(*p.pose, opt_.pixel_A);
    RealGrid d = disorder_->projection(disorder_weights(index), pose.rotation);
    centre_to_corner(d, false);
    ComplexGrid f = fft_2d(d);
    apply_image_formation(pose, ctf ? &*ctf : nullptr, p.scale, f);
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += f[i];
    if (!odd_phase_.empty()) multiply_odd_phase(sum, odd_phase_, OddPhase::Apply);
    image = to_image(sum, box_);
  }
  if (noise_free) *noise_free = image;
  add_noise(image, index);
  return sp;
}

}  // namespace tessera

namespace tessera {

namespace {

// Adds to v a self-avoiding-ish chain of `residues` Gaussian beads (3.8 A apart, sigma 1.6 A)
// that starts at `centre` (pixels from the box centre) and stays within radius_px of it.
void add_bead_chain(RealGrid& v, double pixel_A, Rng& rng, int residues, double radius_px, const Vec3& centre) {
  const int box = v.nx();
  const double step = 3.8 / pixel_A, sigma = std::max(1.6 / pixel_A, 0.8);
  std::vector<Vec3> beads{{0, 0, 0}};
  while (static_cast<int>(beads.size()) < residues) {
    const Vec3& last = beads.back();
    Vec3 next{};
    for (int attempt = 0; attempt < 100; ++attempt) {
      const Mat3 a = euler_to_matrix(random_euler(rng));
      next = {last[0] + step * a[2][0], last[1] + step * a[2][1], last[2] + step * a[2][2]};
      if (std::sqrt(next[0] * next[0] + next[1] * next[1] + next[2] * next[2]) > radius_px) continue;
      bool clash = false;
      for (std::size_t k = 0; k + 2 < beads.size() && !clash; ++k) {
        const double dx = beads[k][0] - next[0], dy = beads[k][1] - next[1], dz = beads[k][2] - next[2];
        clash = dx * dx + dy * dy + dz * dz < 0.8 * step * step;
      }
      if (!clash) break;
    }
    beads.push_back(next);
  }
  const int c = box / 2, reach = static_cast<int>(std::ceil(4 * sigma));
  for (Vec3 b : beads) {
    for (int i = 0; i < 3; ++i) b[i] += centre[i];
    const int bx = static_cast<int>(std::lround(b[0])) + c, by = static_cast<int>(std::lround(b[1])) + c,
              bz = static_cast<int>(std::lround(b[2])) + c;
    for (int z = std::max(0, bz - reach); z <= std::min(box - 1, bz + reach); ++z)
      for (int y = std::max(0, by - reach); y <= std::min(box - 1, by + reach); ++y)
        for (int x = std::max(0, bx - reach); x <= std::min(box - 1, bx + reach); ++x) {
          const double dx = x - c - b[0], dy = y - c - b[1], dz = z - c - b[2];
          v(x, y, z) += static_cast<float>(std::exp(-(dx * dx + dy * dy + dz * dz) / (2 * sigma * sigma)));
        }
  }
}

}  // namespace

RealGrid phantom_volume(int box, double pixel_A, std::uint64_t seed, int residues) {
  Rng rng = item_rng(seed, 0x70686e74);
  RealGrid v(box, box, box);
  add_bead_chain(v, pixel_A, rng, residues, box / 4.0, {0, 0, 0});
  return v;
}

std::array<RealGrid, 2> phantom_complex(int box, double pixel_A, std::uint64_t seed) {
  // The large body is phantom_volume's (beads within box/4 of the centre, 300 of them). The small
  // protein, 60 beads within box/12 of its start, starts at box/4 + box/10 along +x: its beads come
  // to within about box/60 of the body's sphere, so the two touch (their densities' tails meet)
  // without the small one sinking in. The body stays centred, the small protein sits off-centre
  // as a bound partner does.
  std::array<RealGrid, 2> out{phantom_volume(box, pixel_A, seed), RealGrid(box, box, box)};
  Rng rng = item_rng(seed, 0x736d6c6c);
  add_bead_chain(out[1], pixel_A, rng, 60, box / 12.0, {box / 4.0 + box / 10.0, 0, 0});
  return out;
}

}  // namespace tessera

namespace tessera {
namespace {

// sqrt(ln 2 / 2) / pi: a Gaussian of this sigma (per unit of resolution) has
// the amplitude spectrum exp(-2 pi^2 sigma^2 k^2), 1/2 at k = 1 / resolution.
const double kSigmaPerResolution = std::sqrt(std::log(2.0) / 2) / std::numbers::pi;
// Finest resolution, px: sigma ~0.75 px, so the sampled projections hardly alias
// (the Gaussian's transform is 6% of its peak at Nyquist, 0.2% at 1.5 x Nyquist).
constexpr double kMinResolutionPx = 4.0;

// The 1D Gaussian of unit integral at integer offsets -reach .. reach.
std::vector<double> gaussian_taps(double sigma, int reach) {
  std::vector<double> t(static_cast<std::size_t>(2 * reach + 1));
  for (int d = -reach; d <= reach; ++d)
    t[static_cast<std::size_t>(d + reach)] =
        std::exp(-d * d / (2 * sigma * sigma)) / (std::sqrt(2 * std::numbers::pi) * sigma);
  return t;
}

// Separable convolution of a cubic volume with taps (centred, zero outside the box).
RealGrid convolve_separable(const RealGrid& v, const std::vector<double>& taps) {
  const int n = v.nx(), reach = static_cast<int>(taps.size() / 2);
  RealGrid in = v, out(n, n, n);
  const std::size_t stride[3] = {1, static_cast<std::size_t>(n), static_cast<std::size_t>(n) * n};
  for (int axis = 0; axis < 3; ++axis) {
    const std::size_t s = stride[axis];
    for (std::size_t i = 0; i < in.size(); ++i) {
      const int pos = static_cast<int>((i / s) % static_cast<std::size_t>(n));
      const int lo = std::max(-reach, -pos), hi = std::min(reach, n - 1 - pos);
      const float* src = in.data() + (i - static_cast<std::size_t>(-lo) * s);
      double acc = 0;
      for (int d = lo; d <= hi; ++d, src += s) acc += taps[static_cast<std::size_t>(d + reach)] * *src;
      out[i] = static_cast<float>(acc);
    }
    std::swap(in, out);
  }
  return in;
}

// out[k] = scale exp(-(d0 + k)^2 inv2s2), k = 0 .. out.size() - 1, with two
// exponentials: the ratio of neighbours is exp(-(2 (d0 + k) + 1) inv2s2),
// which itself changes by the factor exp(-2 inv2s2) per step.
// step = exp(-2 inv2s2), passed in to save an exponential.
void gaussian_window(double d0, double inv2s2, double step, double scale, std::vector<double>& out) {
  double value = scale * std::exp(-d0 * d0 * inv2s2), ratio = std::exp(-(2 * d0 + 1) * inv2s2);
  for (double& o : out) {
    o = value;
    value *= ratio;
    ratio *= step;
  }
}

// sum m f / sum m.
double envelope_mean(const RealGrid& f, const RealGrid& m) {
  double s = 0, w = 0;
  for (std::size_t i = 0; i < m.size(); ++i) s += double(m[i]) * f[i], w += m[i];
  return s / w;
}

}  // namespace

Disorder::Disorder(const DisorderOptions& o, double pixel_A) : box_(o.envelope.nx()), envelope_(o.envelope) {
  const RealGrid& m = envelope_;
  if (box_ < 1 || m.ny() != box_ || m.nz() != box_)
    throw std::invalid_argument(fmt::format("Disorder: the envelope is {}x{}x{}, not cubic", m.nx(), m.ny(), m.nz()));
  if (!(pixel_A > 0) || !std::isfinite(o.resolution_A) ||
      !(o.resolution_A / pixel_A >= kMinResolutionPx * (1 - 1e-9)))
    throw std::invalid_argument(fmt::format("Disorder: resolution {} A must be finite and at least {} px of {} A",
                                            o.resolution_A, kMinResolutionPx, pixel_A));
  if (!(o.rms >= 0) || !std::isfinite(o.rms) || !std::isfinite(o.mean))
    throw std::invalid_argument(fmt::format("Disorder: rms {} and mean {} must be finite, rms >= 0", o.rms, o.mean));
  sigma_ = kSigmaPerResolution * o.resolution_A / pixel_A;
  reach_ = static_cast<int>(std::ceil(4 * sigma_));
  const int c = box_ / 2;
  for (int z = 0; z < box_; ++z)
    for (int y = 0; y < box_; ++y)
      for (int x = 0; x < box_; ++x) {
        const float v = m(x, y, z);
        if (!(v >= -1e-6f && v <= 1 + 1e-6f))
          throw std::invalid_argument(fmt::format("Disorder: envelope value {} at ({}, {}, {}) is outside [0, 1]", v,
                                                  x, y, z));
        if (v <= 0) continue;
        positions_.push_back({double(x - c), double(y - c), double(z - c)});
        values_.push_back(std::min(v, 1.0f));
      }
  if (positions_.empty()) throw std::invalid_argument("Disorder: the envelope is 0 everywhere");
  // Over realisations, D(x_j) has mean mu (m * g)(x_j) and variance
  // a^2 (m^2 * g^2)(x_j); their envelope-weighted means fix mu and a.
  const std::vector<double> taps = gaussian_taps(sigma_, reach_);
  std::vector<double> taps2(taps.size());
  for (std::size_t k = 0; k < taps.size(); ++k) taps2[k] = taps[k] * taps[k];
  RealGrid m2 = m;
  for (float& v : m2.values()) v *= v;
  const double mean_shape = envelope_mean(convolve_separable(m, taps), m);
  const double variance_shape = envelope_mean(convolve_separable(m2, taps2), m);
  mu_ = o.mean / mean_shape;
  a_ = o.rms / std::sqrt(variance_shape);
}

std::vector<float> Disorder::draw(Rng& rng) const {
  std::vector<float> w(values_.size());
  for (std::size_t v = 0; v < w.size(); ++v) w[v] = static_cast<float>(values_[v] * (mu_ + a_ * normal01(rng)));
  return w;
}

RealGrid Disorder::volume(const std::vector<float>& weights) const {
  if (weights.size() != positions_.size())
    throw std::invalid_argument(fmt::format("Disorder::volume: {} weights for {} voxels", weights.size(),
                                            positions_.size()));
  // The voxel centres are on the grid: D = (weights on the grid) * g, separable.
  RealGrid grid(box_, box_, box_);
  const int c = box_ / 2;
  for (std::size_t v = 0; v < positions_.size(); ++v)
    grid(static_cast<int>(positions_[v][0]) + c, static_cast<int>(positions_[v][1]) + c,
         static_cast<int>(positions_[v][2]) + c) = weights[v];
  return convolve_separable(grid, gaussian_taps(sigma_, reach_));
}

RealGrid Disorder::mean_volume() const {
  std::vector<float> w(values_.size());
  for (std::size_t v = 0; v < w.size(); ++v) w[v] = static_cast<float>(values_[v] * mu_);
  return volume(w);
}

RealGrid Disorder::projection(const std::vector<float>& weights, const Mat3& a) const {
  if (weights.size() != positions_.size())
    throw std::invalid_argument(fmt::format("Disorder::projection: {} weights for {} voxels", weights.size(),
                                            positions_.size()));
  const int n = box_, span = 2 * reach_ + 2;
  const double c = n / 2, inv2s2 = 1 / (2 * sigma_ * sigma_), step = std::exp(-2 * inv2s2),
               norm = 1 / (std::sqrt(2 * std::numbers::pi) * sigma_);
  RealGrid img(n, n);
  std::vector<double> wx(span), wy(span);
  std::vector<float> fx(span);
  for (std::size_t v = 0; v < positions_.size(); ++v) {
    const Vec3& x = positions_[v];
    // The voxel's Gaussian projects to the 2D Gaussian at (A x)_xy.
    const double u = c + a[0][0] * x[0] + a[0][1] * x[1] + a[0][2] * x[2];
    const double w = c + a[1][0] * x[0] + a[1][1] * x[1] + a[1][2] * x[2];
    const int u0 = static_cast<int>(std::floor(u)) - reach_, w0 = static_cast<int>(std::floor(w)) - reach_;
    const int k_lo = std::max(0, -u0), k_hi = std::min(span, n - u0);
    const int j_lo = std::max(0, -w0), j_hi = std::min(span, n - w0);
    if (k_lo >= k_hi || j_lo >= j_hi) continue;  // wholly outside the image
    gaussian_window(u0 - u, inv2s2, step, norm, wx);
    gaussian_window(w0 - w, inv2s2, step, norm * weights[v], wy);
    for (int k = 0; k < span; ++k) fx[k] = static_cast<float>(wx[k]);
    for (int j = j_lo; j < j_hi; ++j) {
      float* row = img.data() + static_cast<std::size_t>(w0 + j) * n;
      const float wj = static_cast<float>(wy[j]);
      for (int k = k_lo; k < k_hi; ++k) row[u0 + k] += wj * fx[k];
    }
  }
  return img;
}

RealGrid belt_envelope(int box, double pixel_A, const Belt& b) {
  if (!(b.inner_radius_A >= 0 && b.outer_radius_A > b.inner_radius_A && b.height_A > 0 && pixel_A > 0))
    throw std::invalid_argument(fmt::format("belt_envelope: radii {} < {} A and height {} A must be positive",
                                            b.inner_radius_A, b.outer_radius_A, b.height_A));
  // Signed distance to the belt's surface (A, < 0 inside), to first order for the torus.
  const double ring = (b.inner_radius_A + b.outer_radius_A) / 2, half_width = (b.outer_radius_A - b.inner_radius_A) / 2,
               half_height = b.height_A / 2;
  auto distance = [&](double r, double z) {
    if (b.shape == BeltShape::Cylinder)
      return std::max({b.inner_radius_A - r, r - b.outer_radius_A, std::abs(z) - half_height});
    const double er = (r - ring) / half_width, ez = z / half_height;
    const double f = er * er + ez * ez - 1;
    const double gr = 2 * er / half_width, gz = 2 * ez / half_height, g = std::sqrt(gr * gr + gz * gz);
    return g > 0 ? f / g : -half_width;
  };
  RealGrid m(box, box, box);
  const int c = box / 2;
  for (int z = 0; z < box; ++z)
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box; ++x) {
        const double r = std::hypot(x - c, y - c) * pixel_A;
        m(x, y, z) = static_cast<float>(std::clamp(0.5 - distance(r, (z - c) * pixel_A) / pixel_A, 0.0, 1.0));
      }
  return m;
}

double masked_rms(const RealGrid& volume, const RealGrid& mask) {
  if (!volume.same_shape(mask)) throw std::invalid_argument("masked_rms: the volume and the mask differ in shape");
  double s = 0, w = 0;
  for (std::size_t i = 0; i < mask.size(); ++i) s += double(mask[i]) * volume[i] * volume[i], w += mask[i];
  if (!(w > 0)) throw std::invalid_argument("masked_rms: the mask is 0 everywhere");
  return std::sqrt(s / w);
}

}  // namespace tessera
