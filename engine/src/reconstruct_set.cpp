#include "tessera/reconstruct_set.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/projector.hpp"

namespace tessera {
namespace {

struct Worker {
  Worker(int box, const ReconstructSetOptions& o, double rmax)
      : a(box, o.padding, rmax, o.symmetry), b(box, o.padding, rmax, o.symmetry), fft(RealFft::plan_2d(box, box)) {}
  BackProjector a, b;
  RealFft fft;
  std::map<std::string, std::unique_ptr<MrcStackReader>> readers;

  const MrcStackReader& reader(const std::filesystem::path& path) {
    auto& r = readers[path.string()];
    if (!r) r = std::make_unique<MrcStackReader>(path);
    return *r;
  }
};

void insert_particle(Worker& w, const ParticleSet& set, const Particle& p, int half, const ReconstructSetOptions& o,
                     int box) {
  if (!p.pose) throw InputError(fmt::format("particle {} has no pose (angles and origin)", p.image.to_string()));
  const OpticsGroup& g = set.optics_of(p);
  const MrcStackReader& reader = w.reader(set.stack_path(p));
  if (reader.info().nx != box || reader.info().ny != box)
    throw InputError(fmt::format("{}: images are {}x{}, expected {}x{}", set.stack_path(p).string(),
                                 reader.info().nx, reader.info().ny, box, box));
  RealGrid img = reader.read(p.image.index);
  centre_to_corner(img, false);
  ComplexGrid f;
  w.fft.forward(img, f);
  phase_shift_2d(f, box, p.pose->origin_x_A / g.pixel_A, p.pose->origin_y_A / g.pixel_A);
  RealGrid weight(box / 2 + 1, box, 1, 1.0f);
  if (o.apply_ctf) {
    weight = ctf_image(CtfParams::of(p, g), box, box, g.pixel_A);
    for (std::size_t i = 0; i < f.size(); ++i) {
      f[i] *= weight[i];
      weight[i] *= weight[i];
    }
  } else if (p.scale != 1.0) {
    for (std::size_t i = 0; i < f.size(); ++i) {
      f[i] *= static_cast<float>(p.scale);
      weight[i] = static_cast<float>(p.scale * p.scale);
    }
  }
  (half == 1 ? w.a : w.b).insert(f, weight, euler_to_matrix(p.pose->angles));
}

std::vector<double> tau2_from_fsc(const std::vector<double>& fsc_curve, const std::vector<double>& mean_weight) {
  std::vector<double> tau2(mean_weight.size(), 0.0);
  for (std::size_t s = 0; s < tau2.size() && s < fsc_curve.size(); ++s) {
    const double f = std::clamp(fsc_curve[s], 0.001, 0.999);
    if (mean_weight[s] > 0) tau2[s] = f / (1.0 - f) / mean_weight[s];
  }
  return tau2;
}

}  // namespace

HalfSetReconstruction reconstruct_particles(const ParticleSet& set, const ReconstructSetOptions& o,
                                            const std::function<void(long, long)>& progress) {
  if (set.particles.empty()) throw InputError("the particle set is empty");
  const OpticsGroup& g0 = set.optics_of(set.particles.front());
  const int box = g0.image_size > 0 ? g0.image_size : MrcStackReader(set.stack_path(set.particles.front())).info().nx;
  const double rmax = o.max_res_A ? std::min(box / 2.0, box * g0.pixel_A / *o.max_res_A) : box / 2.0;
  const int nthreads = std::max(1, o.threads);
  const long total = static_cast<long>(set.particles.size());

  std::vector<int> half(set.particles.size());
  for (long i = 0, next = 1; i < total; ++i) {
    half[i] = set.particles[i].half_set;
    if (half[i] != 1 && half[i] != 2) half[i] = static_cast<int>(next), next = 3 - next;
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < nthreads; ++t) workers.push_back(std::make_unique<Worker>(box, o, rmax));
  std::atomic<long> done{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&](int t) {
    try {
      // Contiguous chunks: the same thread count gives bit-identical maps.
      const long begin = total * t / nthreads, end = total * (t + 1) / nthreads;
      for (long i = begin; i < end; ++i) {
        insert_particle(*workers[t], set, set.particles[i], half[i], o, box);
        ++done;
      }
    } catch (...) {
      std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < nthreads; ++t) threads.emplace_back(work, t);
  std::thread reporter;
  std::atomic<bool> finished{false};
  if (progress)
    reporter = std::thread([&] {
      while (!finished) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        if (!finished) progress(done.load(), total);
      }
    });
  work(0);
  for (auto& th : threads) th.join();
  finished = true;
  if (reporter.joinable()) reporter.join();
  if (failure) std::rethrow_exception(failure);

  for (int t = 1; t < nthreads; ++t) {
    workers[0]->a.add(workers[t]->a);
    workers[0]->b.add(workers[t]->b);
  }
  BackProjector& bpa = workers[0]->a;
  BackProjector& bpb = workers[0]->b;
  HalfSetReconstruction r;
  r.count_a = std::count(half.begin(), half.end(), 1);
  r.count_b = total - r.count_a;
  r.half_a = bpa.reconstruct();
  r.half_b = bpb.reconstruct();
  r.fsc = fsc(r.half_a, r.half_b);
  BackProjector both = bpa;
  both.add(bpb);
  if (o.wiener) {
    ReconstructOptions ra, rb, rf;
    ra.tau2 = tau2_from_fsc(r.fsc, bpa.mean_weight_per_shell());
    rb.tau2 = tau2_from_fsc(r.fsc, bpb.mean_weight_per_shell());
    std::vector<double> full_fsc(r.fsc.size());
    for (std::size_t s = 0; s < full_fsc.size(); ++s) full_fsc[s] = 2 * r.fsc[s] / (1 + std::max(r.fsc[s], 0.0));
    rf.tau2 = tau2_from_fsc(full_fsc, both.mean_weight_per_shell());
    r.half_a = bpa.reconstruct(ra);
    r.half_b = bpb.reconstruct(rb);
    r.full = both.reconstruct(rf);
  } else {
    r.full = both.reconstruct();
  }
  if (progress) progress(total, total);
  return r;
}

}  // namespace tessera
