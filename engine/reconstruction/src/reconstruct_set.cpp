#include "tessera/reconstruct_set.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <memory>
#include <stdexcept>

#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/particle_images.hpp"

namespace tessera {
namespace {

void insert_particle(BackProjector& a, BackProjector& b, ParticleImageReader& images, const ParticleSet& set, const Particle& p, int half, const ReconstructSetOptions& o,
                     int box) {
  if (!p.pose) throw InputError(fmt::format("particle {} has no pose (angles and origin)", p.image.to_string()));
  if (o.apply_ctf && !has_ctf(p))
    throw InputError(fmt::format("particle {} has no CTF (no defocus); reconstruct it with CTF correction off",
                                 p.image.to_string()));
  const OpticsGroup& g = set.optics_of(p);
  const ComplexGrid& f = images.transform(set, p);
  const ModelPose pose = model_pose(*p.pose, g);
  if (o.ewald_sphere != EwaldSphere::Off) {
    if (!o.apply_ctf) throw std::invalid_argument("reconstruct_particles: the Ewald sphere needs the CTF");
    backproject_ewald(half == 1 ? a : b, f, pose, model_ewald_ctf(p, g, box, o.ewald_sphere), p.scale, 1.0);
    return;
  }
  ComplexGrid data;
  RealGrid weight;
  if (o.apply_ctf) {
    const RealGrid ctf = ctf_image(CtfParams::of(p, g), box, box, g.pixel_A);
    backprojection_terms(f, pose, &ctf, 1.0, 1.0, data, weight);
  } else {
    backprojection_terms(f, pose, nullptr, p.scale, 1.0, data, weight);
  }
  (half == 1 ? a : b).insert(data, weight, model_matrix(pose));
}

}  // namespace

std::vector<double> tau2_from_fsc(const std::vector<double>& fsc_curve, const std::vector<double>& mean_weight) {
  std::vector<double> tau2(mean_weight.size(), 0.0);
  for (std::size_t s = 0; s < tau2.size() && s < fsc_curve.size(); ++s) {
    const double f = std::clamp(fsc_curve[s], 0.001, 0.999);
    if (mean_weight[s] > 0) tau2[s] = f / (1.0 - f) / mean_weight[s];
  }
  return tau2;
}

HalfSetReconstruction reconstruct_halves(const BackProjector& bpa, const BackProjector& bpb, bool wiener,
                                         bool want_full, int threads, std::optional<double> band_limit_px) {
  HalfSetReconstruction r;
  ReconstructOptions raw;
  raw.threads = threads;
  raw.band_limit_px = band_limit_px;
  r.half_a = bpa.reconstruct(raw);
  r.half_b = bpb.reconstruct(raw);
  r.fsc = fsc(r.half_a, r.half_b);
  if (band_limit_px)
    for (std::size_t s = 0; s < r.fsc.size(); ++s)
      if (double(s) > *band_limit_px) r.fsc[s] = 0;
  r.raw_a = r.half_a;
  r.raw_b = r.half_b;
  auto both = [&] {
    BackProjector sum = bpa;
    sum.add(bpb);
    return sum;
  };
  if (!wiener) {
    if (want_full) r.full = both().reconstruct(raw);
    return r;
  }
  ReconstructOptions ra = raw, rb = raw, rf = raw;
  ra.tau2 = tau2_from_fsc(r.fsc, bpa.mean_weight_per_shell());
  rb.tau2 = tau2_from_fsc(r.fsc, bpb.mean_weight_per_shell());
  if (want_full) {
    std::vector<double> full_fsc(r.fsc.size());
    for (std::size_t s = 0; s < full_fsc.size(); ++s) full_fsc[s] = 2 * r.fsc[s] / (1 + std::max(r.fsc[s], 0.0));
    const BackProjector sum = both();
    rf.tau2 = tau2_from_fsc(full_fsc, sum.mean_weight_per_shell());
    r.full = sum.reconstruct(rf);
  }
  r.half_a = bpa.reconstruct(ra);
  r.half_b = bpb.reconstruct(rb);
  return r;
}

HalfSetReconstruction reconstruct_particles(const ParticleSet& set, const ReconstructSetOptions& o,
                                            const std::function<void(long, long)>& progress) {
  const int box = particle_box(set);
  const double pixel_A = set.optics_of(set.particles.front()).pixel_A;
  const double rmax = o.max_res_A ? std::min(box / 2.0, box * pixel_A / *o.max_res_A) : box / 2.0;
  const int nthreads = std::max(1, o.threads);
  const long total = static_cast<long>(set.particles.size());

  const std::vector<int> half = deal_half_sets(set);
  // One pair of back-projectors for all threads (exact integer sums, projector.hpp), scaled to the images.
  const std::vector<double> power = mean_image_power(set, box, nthreads, 100);
  const auto quanta = AccumulationQuanta::for_power(*std::max_element(power.begin(), power.end()));
  BackProjector a(box, o.padding, rmax, o.symmetry, quanta), b(box, o.padding, rmax, o.symmetry, quanta);
  std::vector<ParticleImageReader> readers;
  for (int t = 0; t < nthreads; ++t) readers.emplace_back(box);
  for_each_particle(
      total, nthreads,
      [&](int t, long i) { insert_particle(a, b, readers[t], set, set.particles[i], half[i], o, box); }, progress);
  HalfSetReconstruction r = reconstruct_halves(a, b, o.wiener, true, nthreads);
  r.count_a = std::count(half.begin(), half.end(), 1);
  r.count_b = total - r.count_a;
  return r;
}

}  // namespace tessera
