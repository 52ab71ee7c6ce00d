// Per-particle defocus refinement (ctf_refine.hpp): a grid and golden-section
// search of one defocus offset per particle (or micrograph), scored by the
// alignment's likelihood under the forward model.
#include "tessera/ctf_refine.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

#include "tessera/error.hpp"
#include "tessera/parallel.hpp"
#include "tessera/particle_images.hpp"

namespace tessera {

DefocusScorer::DefocusScorer(const ComplexGrid& image, const Particle& particle, const OpticsGroup& optics,
                             const Projector& reference, const ModelPose& pose, const FourierDisk& disk,
                             const std::vector<double>& inv_sigma2, std::optional<double> scale)
    : particle_(particle), optics_(&optics), disk_(&disk) {
  particle_.extra.clear();  // only the CTF's fields are used
  on_disk_ = put_on_disk(image, model_ctf(particle_, optics, disk.box), inv_sigma2, disk, pose.origin_x_px,
                         pose.origin_y_px, scale);
  expected_points(reference, ModelPose{pose.rotation, 0, 0, pose.mag_matrix}, disk, nullptr, 1.0, projection_);
}

double DefocusScorer::score(double offset_A) {
  Particle shifted = particle_;
  shifted.defocus_u_A += offset_A;
  shifted.defocus_v_A += offset_A;
  model_ctf_points(shifted, *optics_, *disk_, on_disk_.ctf);
  return score_at(on_disk_, projection_.data(), *disk_, 0, 0);
}

void DefocusScorer::add_residual_power(std::vector<double>& power, std::vector<double>& count) const {
  const std::vector<float>& ctf = on_disk_.ctf;
  double c = 0, pp = 0;
  for (std::size_t j = 0; j < disk_->size(); ++j) {
    const cfloat m = ctf[j] * projection_[j];
    c += on_disk_.weight[j] * (std::real(on_disk_.x[j]) * std::real(m) + std::imag(on_disk_.x[j]) * std::imag(m));
    pp += on_disk_.weight[j] * std::norm(m);
  }
  const double a = pp > 0 && c > 0 ? c / pp : 0.0;
  for (std::size_t j = 0; j < disk_->size(); ++j) {
    const auto s = static_cast<std::size_t>(disk_->shell[j]);
    if (s >= power.size()) power.resize(s + 1, 0.0), count.resize(s + 1, 0.0);
    const std::complex<double> r = std::complex<double>(on_disk_.x[j]) - a * std::complex<double>(ctf[j] * projection_[j]);
    power[s] += disk_->multiplicity[j] * std::norm(r);
    count[s] += disk_->multiplicity[j];
  }
}

DefocusFit search_defocus_offset(const std::function<double(double)>& score, const DefocusSearchOptions& o) {
  if (!(o.step_A > 0) || !(o.range_A >= 0) || !(o.tolerance_A > 0))
    throw std::invalid_argument("search_defocus_offset: step and tolerance must be positive, range not negative");
  const long n = static_cast<long>(std::floor(o.range_A / o.step_A + 1e-9));
  DefocusFit best{0, score(0), 0};
  const double at_zero = best.score;
  for (long i = -n; i <= n; ++i) {
    if (i == 0) continue;
    const double d = static_cast<double>(i) * o.step_A, s = score(d);
    if (s > best.score) best = {d, s, 0};
  }
  // Golden section between the best grid offset's neighbours (within the range).
  double a = std::max(-o.range_A, best.offset_A - o.step_A), b = std::min(o.range_A, best.offset_A + o.step_A);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double c = b - g * (b - a), d = a + g * (b - a), fc = score(c), fd = score(d);
  auto keep = [&](double x, double f) {
    if (f > best.score) best = {x, f, 0};
  };
  keep(c, fc);
  keep(d, fd);
  while (b - a > o.tolerance_A) {
    if (fc > fd) {
      b = d, d = c, fd = fc;
      c = b - g * (b - a), fc = score(c);
      keep(c, fc);
    } else {
      a = c, c = d, fc = fd;
      d = a + g * (b - a), fd = score(d);
      keep(d, fd);
    }
  }
  best.gain = best.score - at_zero;
  return best;
}

DefocusFit fit_defocus_offset(std::span<DefocusScorer> group, const DefocusSearchOptions& options) {
  return search_defocus_offset(
      [&](double d) {
        double sum = 0;
        for (DefocusScorer& s : group) sum += s.score(d);
        return sum;
      },
      options);
}

namespace {

// The particles' groups, each a list of indices in set order: one per micrograph name (in order of
// first appearance; a particle without a name alone), or one per particle.
std::vector<std::vector<long>> defocus_groups(const ParticleSet& set, bool per_micrograph) {
  std::vector<std::vector<long>> groups;
  std::map<std::string, std::size_t> of_name;
  for (std::size_t i = 0; i < set.particles.size(); ++i) {
    const std::string& name = set.particles[i].micrograph;
    if (!per_micrograph || name.empty()) {
      groups.push_back({static_cast<long>(i)});
      continue;
    }
    auto [it, added] = of_name.emplace(name, groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(static_cast<long>(i));
  }
  return groups;
}

void check_refinable(const ParticleSet& set, std::size_t maps) {
  for (const Particle& p : set.particles) {
    if (!p.pose) throw InputError(fmt::format("particle {} has no pose: defocus refinement needs poses", p.image.to_string()));
    if (!has_ctf(p)) throw InputError(fmt::format("particle {} has no CTF (no rlnDefocusU/V)", p.image.to_string()));
    if (maps == 2 && p.half_set != 1 && p.half_set != 2)
      throw InputError(fmt::format("particle {} has no half set (rlnRandomSubset 1 or 2), needed with two half maps",
                                   p.image.to_string()));
  }
}

// The scorer of particle i (its half's reference).
DefocusScorer make_scorer(ParticleImageReader& reader, const ParticleSet& set, long i,
                          const std::vector<Projector>& projectors, const FourierDisk& disk,
                          const std::vector<double>& inv_sigma2) {
  const Particle& p = set.particles[static_cast<std::size_t>(i)];
  const Projector& ref = projectors[projectors.size() == 2 ? static_cast<std::size_t>(p.half_set - 1) : 0];
  const OpticsGroup& g = set.optics_of(p);
  return DefocusScorer(reader.transform(set, p), p, g, ref, model_pose(*p.pose, g), disk, inv_sigma2, std::nullopt);
}

// 1 / sigma^2 per shell from the residuals |X - a CTF P|^2 of up to `sample` particles spread
// through the set, at their current defoci (the scale fitted with the images' power as the
// weights); shells without pixels get 0. Summed in particle order: the same for any thread count.
std::vector<double> residual_inv_sigma2(const ParticleSet& set, const std::vector<Projector>& projectors,
                                        const FourierDisk& disk, std::vector<ParticleImageReader>& readers,
                                        int threads, long sample) {
  const int box = disk.box;
  std::vector<double> inv_power;
  for (double v : mean_image_power(set, box, threads)) inv_power.push_back(v > 0 ? 1.0 / v : 0.0);
  const long n = static_cast<long>(set.particles.size()), m = std::min(n, sample);
  std::vector<std::vector<double>> power(static_cast<std::size_t>(m)), count(static_cast<std::size_t>(m));
  for_each_particle(m, threads, [&](int t, long k) {
    const long i = k * n / m;
    make_scorer(readers[static_cast<std::size_t>(t)], set, i, projectors, disk, inv_power)
        .add_residual_power(power[static_cast<std::size_t>(k)], count[static_cast<std::size_t>(k)]);
  });
  std::vector<double> sum(static_cast<std::size_t>(box / 2 + 1), 0.0), pixels(sum.size(), 0.0);
  for (long k = 0; k < m; ++k)
    for (std::size_t s = 0; s < power[static_cast<std::size_t>(k)].size() && s < sum.size(); ++s) {
      sum[s] += power[static_cast<std::size_t>(k)][s];
      pixels[s] += count[static_cast<std::size_t>(k)][s];
    }
  std::vector<double> inv(sum.size(), 0.0);
  for (std::size_t s = 0; s < sum.size(); ++s)
    if (sum[s] > 0) inv[s] = pixels[s] / sum[s];
  return inv;
}

}  // namespace

FourierDisk ctf_fit_disk(int box, double pixel_A, double min_res_A, std::optional<double> max_res_A) {
  const double kmax = max_res_A ? std::min(box / 2.0 - 1, box * pixel_A / *max_res_A) : box / 2.0 - 1;
  return FourierDisk::make(box, kmax, std::max(1.0, box * pixel_A / min_res_A));
}

DefocusRefinement refine_defocus(const ParticleSet& set, std::span<const RealGrid* const> maps,
                                 const DefocusRefineOptions& o) {
  if (maps.empty() || maps.size() > 2) throw std::invalid_argument("refine_defocus: one map or two half maps");
  check_refinable(set, maps.size());
  const int box = particle_box(set);
  const double pixel_A = set.optics_of(set.particles.front()).pixel_A;
  std::vector<Projector> projectors;
  for (const RealGrid* m : maps) projectors.emplace_back(*m);
  const FourierDisk disk = ctf_fit_disk(box, pixel_A, o.min_res_A, o.max_res_A);
  const std::vector<std::vector<long>> groups = defocus_groups(set, o.per_micrograph);
  const int threads = std::max(1, o.threads);
  std::vector<ParticleImageReader> readers;
  for (int t = 0; t < threads; ++t) {
    readers.emplace_back(box);
    if (o.window) readers.back().set_window(o.window->inner_frac * box / 2.0, o.window->outer_frac * box / 2.0);
  }
  const std::vector<double> inv_sigma2 = residual_inv_sigma2(set, projectors, disk, readers, threads, 1000);
  DefocusRefinement r;
  r.offset_A.assign(set.particles.size(), 0.0);
  r.gain.assign(set.particles.size(), 0.0);
  for_each_particle(static_cast<long>(groups.size()), threads, [&](int t, long g) {
    std::vector<DefocusScorer> scorers;
    for (long i : groups[static_cast<std::size_t>(g)])
      scorers.push_back(make_scorer(readers[static_cast<std::size_t>(t)], set, i, projectors, disk, inv_sigma2));
    const DefocusFit fit = fit_defocus_offset(scorers, o.search);
    for (long i : groups[static_cast<std::size_t>(g)]) {
      r.offset_A[static_cast<std::size_t>(i)] = fit.offset_A;
      r.gain[static_cast<std::size_t>(i)] = fit.gain;
    }
  });
  return r;
}

void apply_defocus_offsets(ParticleSet& set, std::span<const double> offset_A) {
  if (offset_A.size() != set.particles.size())
    throw std::invalid_argument("apply_defocus_offsets: one offset per particle");
  for (std::size_t i = 0; i < offset_A.size(); ++i) {
    set.particles[i].defocus_u_A += offset_A[i];
    set.particles[i].defocus_v_A += offset_A[i];
  }
}

std::vector<MicrographDefocusChange> defocus_change_per_micrograph(const ParticleSet& set,
                                                                   std::span<const double> offset_A) {
  if (offset_A.size() != set.particles.size())
    throw std::invalid_argument("defocus_change_per_micrograph: one offset per particle");
  std::vector<MicrographDefocusChange> out;
  std::vector<double> sum, sum2;
  std::map<std::string, std::size_t> of_name;
  for (std::size_t i = 0; i < offset_A.size(); ++i) {
    auto [it, added] = of_name.emplace(set.particles[i].micrograph, out.size());
    if (added) {
      out.push_back({set.particles[i].micrograph, 0, 0, 0});
      sum.push_back(0);
      sum2.push_back(0);
    }
    const std::size_t k = it->second;
    ++out[k].particles;
    sum[k] += offset_A[i];
    sum2[k] += offset_A[i] * offset_A[i];
  }
  for (std::size_t k = 0; k < out.size(); ++k) {
    const double n = static_cast<double>(out[k].particles);
    out[k].mean_A = sum[k] / n;
    out[k].sigma_A = std::sqrt(std::max(0.0, sum2[k] / n - out[k].mean_A * out[k].mean_A));
  }
  return out;
}

}  // namespace tessera
