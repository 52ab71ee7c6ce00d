#include "tessera/particle_images.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <fmt/format.h>
#include <vector>

#include "tessera/aberrations.hpp"
#include "tessera/error.hpp"

namespace tessera {

ParticleImageReader::ParticleImageReader(int box) : box_(box), fft_(RealFft::plan_2d(box, box)) {}

void ParticleImageReader::set_window(double inner_px, double outer_px) {
  window_ = RealGrid(box_, box_);
  const int c = box_ / 2;
  for (int y = 0; y < box_; ++y)
    for (int x = 0; x < box_; ++x) {
      const double r = std::hypot(x - c, y - c);
      window_(x, y) = r <= inner_px   ? 1.0f
                      : r >= outer_px ? 0.0f
                                      : static_cast<float>(0.5 + 0.5 * std::cos(std::numbers::pi * (r - inner_px) /
                                                                                 (outer_px - inner_px)));
    }
}

const MrcStackReader& ParticleImageReader::stack(const std::filesystem::path& path) {
  auto& r = stacks_[path.string()];
  if (!r) {
    r = std::make_unique<MrcStackReader>(path);
    if (r->info().nx != box_ || r->info().ny != box_)
      throw InputError(fmt::format("{}: images are {}x{}, expected {}x{}", path.string(), r->info().nx,
                                   r->info().ny, box_, box_));
  }
  return *r;
}

const ComplexGrid& ParticleImageReader::transform(const ParticleSet& set, const Particle& p) {
  RealGrid img = stack(set.stack_path(p)).read(p.image.index);
  check_finite_image(img, p);
  if (!window_.empty())
    for (std::size_t i = 0; i < img.size(); ++i) img[i] *= window_[i];
  centre_to_corner(img, false);
  fft_.forward(img, out_);
  if (const ComplexGrid* phase = odd_phase(set.optics_of(p))) multiply_odd_phase(out_, *phase, OddPhase::Remove);
  return out_;
}

const ComplexGrid* ParticleImageReader::odd_phase(const OpticsGroup& g) {
  if (!has_odd_aberrations(g)) return nullptr;
  std::vector<double> c = effective_odd_zernike(g);
  OddPhaseCache& cache = odd_phases_[g.number];
  if (cache.factor.empty() || cache.coefficients != c || cache.mag != g.mag_matrix || cache.pixel_A != g.pixel_A) {
    cache.factor = odd_phase_factor(g, box_);
    cache.coefficients = std::move(c);
    cache.mag = g.mag_matrix;
    cache.pixel_A = g.pixel_A;
  }
  return &cache.factor;
}

void check_finite_image(const RealGrid& image, const Particle& p) {
  for (std::size_t i = 0; i < image.size(); ++i)
    if (!std::isfinite(image[i]))
      throw InputError(fmt::format("particle {}: the image has NaN or infinite values (pixel {}, {} is {})",
                                   p.image.to_string(), i % static_cast<std::size_t>(image.nx()),
                                   i / static_cast<std::size_t>(image.nx()), image[i]));
}

int particle_box(const ParticleSet& set) {
  if (set.particles.empty()) throw InputError("the particle set is empty");
  const OpticsGroup& g = set.optics_of(set.particles.front());
  if (g.image_size > 0) return g.image_size;
  return MrcStackReader(set.stack_path(set.particles.front())).info().nx;
}

std::vector<double> mean_image_power(const ParticleSet& set, int box, int threads, long max_images) {
  // Each particle's spectrum is kept and the spectra summed in particle order: the thread count does not matter.
  const long n = std::min<long>(max_images, static_cast<long>(set.particles.size()));
  const int nthreads = std::max(1, threads), nshell = box / 2 + 1;
  std::vector<std::vector<double>> spectra(static_cast<std::size_t>(n));
  std::vector<double> count(nshell, 0.0);
  for (int y = 0; y < box; ++y)
    for (int x = 0; x < box / 2 + 1; ++x) {
      const int s = static_cast<int>(std::lround(std::hypot(x, fourier_index(y, box))));
      if (s <= box / 2) count[s] += 1;
    }
  std::vector<ParticleImageReader> readers;
  for (int t = 0; t < nthreads; ++t) readers.emplace_back(box);
  for_each_particle(n, nthreads, [&](int t, long i) {
    const ComplexGrid& f = readers[t].transform(set, set.particles[i * set.particles.size() / n]);
    std::vector<double>& sum = spectra[i];
    sum.assign(nshell, 0.0);
    for (int y = 0; y < box; ++y)
      for (int x = 0; x < box / 2 + 1; ++x) {
        const int s = static_cast<int>(std::lround(std::hypot(x, fourier_index(y, box))));
        if (s <= box / 2) sum[s] += std::norm(f(x, y));
      }
  });
  std::vector<double> power(nshell, 0.0);
  for (const auto& sp : spectra)
    for (int s = 0; s < nshell; ++s) power[s] += sp[s];
  for (int s = 0; s < nshell; ++s) power[s] = count[s] > 0 && n > 0 ? power[s] / (count[s] * n) : 1.0;
  return power;
}

}  // namespace tessera
