// Resolution against the number of particles, for particles and for aligned
// noise (overfitting.hpp).
#include "tessera/overfitting.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "refine_internal.hpp"
#include "tessera/ctf.hpp"
#include "tessera/error.hpp"
#include "tessera/fft.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/random.hpp"
#include "tessera/reconstruct_set.hpp"

namespace tessera {
namespace {

void shuffle(std::vector<long>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[static_cast<std::size_t>(uniform01(rng) * static_cast<double>(i))]);
}

// The CTF a particle is back-projected with (its contrast scale included), or none.
RealGrid insertion_ctf(const ParticleSet& set, const Particle& p, int box, bool apply_ctf) {
  const OpticsGroup& g = set.optics_of(p);
  if (apply_ctf) return ctf_image(CtfParams::of(p, g), box, box, g.pixel_A);
  return RealGrid(box / 2 + 1, box, 1, static_cast<float>(p.scale));
}

// Per thread: a 2D FFT plan and an image to fill.
struct NoiseScratch {
  explicit NoiseScratch(int box) : fft(RealFft::plan_2d(box, box)), image(box, box) {}
  RealFft fft;
  RealGrid image;
};

void noise_into(std::uint64_t seed, long index, double sd, NoiseScratch& s, ComplexGrid& out) {
  Rng rng = item_rng(seed, static_cast<std::uint64_t>(index));
  for (float& v : s.image.values()) v = static_cast<float>(sd * normal01(rng));
  centre_to_corner(s.image, false);
  s.fft.forward(s.image, out);
}

}  // namespace

std::vector<long> doubling_sizes(long min_size, long max_size) {
  if (min_size < 2)
    throw InputError(fmt::format("the smallest subset must hold 2 particles or more, not {}", min_size));
  if (min_size > max_size)
    throw InputError(fmt::format("the smallest subset ({}) is larger than the largest ({})", min_size, max_size));
  std::vector<long> sizes;
  for (long n = min_size; n < max_size; n *= 2) sizes.push_back(n);
  sizes.push_back(max_size);
  return sizes;
}

bool every_half_given(const std::vector<int>& half_sets) {
  return !half_sets.empty() && std::all_of(half_sets.begin(), half_sets.end(), [](int h) { return h == 1 || h == 2; });
}

SubsetOrder subset_order(const std::vector<int>& half_sets, std::uint64_t seed, int repeat) {
  Rng rng = item_rng(seed, static_cast<std::uint64_t>(repeat));
  SubsetOrder o;
  if (!every_half_given(half_sets)) {
    o.index.resize(half_sets.size());
    std::iota(o.index.begin(), o.index.end(), 0L);
    shuffle(o.index, rng);
    for (std::size_t k = 0; k < o.index.size(); ++k) o.half.push_back(k % 2 == 0 ? 1 : 2);
    return o;
  }
  std::vector<long> halves[2];
  for (std::size_t i = 0; i < half_sets.size(); ++i) halves[half_sets[i] - 1].push_back(static_cast<long>(i));
  shuffle(halves[0], rng);
  shuffle(halves[1], rng);
  for (std::size_t k = 0; k < std::max(halves[0].size(), halves[1].size()); ++k)
    for (int h = 0; h < 2; ++h)
      if (k < halves[h].size()) {
        o.index.push_back(halves[h][k]);
        o.half.push_back(h + 1);
      }
  return o;
}

void make_insertion(const ComplexGrid& f, const ModelPose& pose, const RealGrid* ctf, int box, Insertion& out) {
  if (f.ny() != box) throw std::invalid_argument("make_insertion: the image is not of the box");
  backprojection_terms(f, pose, ctf, 1.0, 1.0, out.data, out.weight);
  out.rotation = model_matrix(pose);  // the model's 2D->3D matrix (the magnification included)
}

Spread spread_of(const std::vector<std::optional<double>>& values) {
  std::vector<double> v;
  for (const auto& x : values)
    if (x && std::isfinite(*x)) v.push_back(*x);
  if (v.empty()) return {};
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
}

ResolutionCurve resolution_curve(const std::vector<int>& half_sets, int box, double pixel_A,
                                 const InsertionSource& source, const CurveOptions& o,
                                 const std::function<void(long, long)>& progress) {
  const long entries = static_cast<long>(half_sets.size());
  if (o.sizes.empty() || !std::is_sorted(o.sizes.begin(), o.sizes.end()) || o.sizes.front() < 2 ||
      o.sizes.back() > entries || o.repeats < 1)
    throw std::invalid_argument("resolution_curve: sizes must ascend within 2 .. entries, repeats >= 1");
  const int threads = std::max(1, o.threads);
  ResolutionCurve c;
  c.sizes = o.sizes;
  c.resolution_A.assign(o.sizes.size(), std::vector<std::optional<double>>(static_cast<std::size_t>(o.repeats)));
  c.fsc.assign(o.sizes.size(), std::vector<std::vector<double>>(static_cast<std::size_t>(o.repeats)));
  const double rmax = o.max_radius_px ? std::min(box / 2.0, *o.max_radius_px) : box / 2.0;
  const std::optional<double> band = o.max_radius_px ? std::optional<double>(rmax) : std::nullopt;
  std::vector<Insertion> scratch(static_cast<std::size_t>(threads));
  const long total = o.sizes.back() * o.repeats;
  for (int r = 0; r < o.repeats; ++r) {
    const SubsetOrder order = subset_order(half_sets, o.seed, r);
    BackProjector a(box, o.padding, rmax, o.symmetry, o.quanta), b(box, o.padding, rmax, o.symmetry, o.quanta);
    long done = 0;
    for (std::size_t s = 0; s < o.sizes.size(); ++s) {
      if (r > 0 && o.sizes[s] == entries && every_half_given(half_sets)) {
        // Every particle in its own half: the same half maps as the first repeat's (exact sums).
        c.resolution_A[s][static_cast<std::size_t>(r)] = c.resolution_A[s][0];
        c.fsc[s][static_cast<std::size_t>(r)] = c.fsc[s][0];
        break;
      }
      const long from = done;
      for_each_particle(o.sizes[s] - from, threads, [&](int t, long k) {
        const std::size_t i = static_cast<std::size_t>(from + k);
        Insertion& ins = scratch[static_cast<std::size_t>(t)];
        source(t, order.index[i], ins);
        (order.half[i] == 1 ? a : b).insert(ins.data, ins.weight, ins.rotation);
      });
      done = o.sizes[s];
      if (progress) progress(r * o.sizes.back() + done, total);
      const bool full = o.want_full_map && r == 0 && s + 1 == o.sizes.size();
      HalfSetReconstruction h = reconstruct_halves(a, b, full, full, threads, band);
      std::vector<double> curve = o.mask ? masked_fsc(h.raw_a, h.raw_b, *o.mask) : h.fsc;
      if (band)
        for (std::size_t k = 0; k < curve.size(); ++k)
          if (double(k) > *band) curve[k] = 0;
      c.resolution_A[s][static_cast<std::size_t>(r)] = resolution_at_interpolated(curve, o.threshold, box, pixel_A);
      c.fsc[s][static_cast<std::size_t>(r)] = std::move(curve);
      if (full) c.full_map = std::move(h.full);
    }
  }
  if (progress) progress(total, total);
  return c;
}

InsertionSource particle_insertions(const ParticleSet& set, int box, int threads, bool apply_ctf) {
  auto readers = std::make_shared<std::vector<ParticleImageReader>>();
  for (int t = 0; t < std::max(1, threads); ++t) readers->emplace_back(box);
  return [&set, box, apply_ctf, readers](int thread, long index, Insertion& out) {
    const Particle& p = set.particles[static_cast<std::size_t>(index)];
    if (!p.pose) throw InputError(fmt::format("particle {} has no pose (angles and origin)", p.image.to_string()));
    const ComplexGrid& f = (*readers)[static_cast<std::size_t>(thread)].transform(set, p);
    const RealGrid ctf = insertion_ctf(set, p, box, apply_ctf);
    make_insertion(f, model_pose(*p.pose, set.optics_of(p)), &ctf, box, out);
  };
}

double mean_pixel_variance(const ParticleSet& set, int box, long max_images) {
  const long all = static_cast<long>(set.particles.size());
  const long n = std::min(max_images, all);
  if (n < 1) throw InputError("the particle set is empty");
  std::map<std::filesystem::path, std::unique_ptr<MrcStackReader>> stacks;
  double sum = 0;
  for (long k = 0; k < n; ++k) {
    const Particle& p = set.particles[static_cast<std::size_t>(k * all / n)];
    auto& reader = stacks[set.stack_path(p)];
    if (!reader) reader = std::make_unique<MrcStackReader>(set.stack_path(p));
    const RealGrid img = reader->read(p.image.index);
    if (img.nx() != box || img.ny() != box)
      throw InputError(fmt::format("particle {}: the image is {} x {} px, the set's box {}", p.image.to_string(),
                                   img.nx(), img.ny(), box));
    check_finite_image(img, p);
    double m = 0, ss = 0;
    for (float v : img.values()) m += v;
    m /= static_cast<double>(img.size());
    for (float v : img.values()) ss += (v - m) * (v - m);
    sum += ss / static_cast<double>(img.size());
  }
  return sum / static_cast<double>(n);
}

void noise_transform(std::uint64_t seed, long index, int box, double sd, ComplexGrid& out) {
  NoiseScratch s(box);
  noise_into(seed, index, sd, s, out);
}

std::vector<ModelPose> align_noise(const ParticleSet& set, const std::vector<long>& particles,
                                   const Projector& reference, const NoiseAlignOptions& o,
                                   const std::function<void(long, long)>& progress) {
  const int box = reference.box(), threads = std::max(1, o.threads);
  // White noise of pixel variance v: every Fourier component has variance box^2 v (fft.hpp's plain sum).
  const double sigma2 = static_cast<double>(box) * box * o.pixel_sd * o.pixel_sd;
  const std::vector<double> inv_sigma2(static_cast<std::size_t>(box / 2 + 1), sigma2 > 0 ? 1.0 / sigma2 : 1.0);
  GlobalSearchOptions so = o.search;
  so.marginalize = false;
  const std::unique_ptr<PoseSearch> search = make_global_search(so);
  search->prepare(reference, inv_sigma2, o.kmax_px);
  std::vector<std::unique_ptr<NoiseScratch>> scratch;
  for (int t = 0; t < threads; ++t) scratch.push_back(std::make_unique<NoiseScratch>(box));
  std::vector<ComplexGrid> transforms(static_cast<std::size_t>(threads));
  std::vector<ModelPose> poses(particles.size());
  for_each_particle(
      static_cast<long>(particles.size()), threads,
      [&](int t, long j) {
        const Particle& p = set.particles[static_cast<std::size_t>(particles[static_cast<std::size_t>(j)])];
        ComplexGrid& f = transforms[static_cast<std::size_t>(t)];
        noise_into(o.seed, j, o.pixel_sd, *scratch[static_cast<std::size_t>(t)], f);
        const RealGrid ctf = o.apply_ctf ? model_ctf(p, set.optics_of(p), box) : RealGrid(box / 2 + 1, box, 1, 1.0f);
        ParticleInput in{&f, &ctf, std::nullopt, {}};
        in.mag_matrix = set.optics_of(p).mag_matrix;
        const PoseEstimate e = search->search(in);
        poses[static_cast<std::size_t>(j)] = {e.rotation, e.origin_x_px, e.origin_y_px, in.mag_matrix};
      },
      progress);
  return poses;
}

InsertionSource noise_insertions(const ParticleSet& set, const std::vector<long>& particles,
                                 const std::vector<ModelPose>& poses, const NoiseAlignOptions& o, int box) {
  auto scratch = std::make_shared<std::vector<std::unique_ptr<NoiseScratch>>>();
  auto transforms = std::make_shared<std::vector<ComplexGrid>>(static_cast<std::size_t>(std::max(1, o.threads)));
  for (int t = 0; t < std::max(1, o.threads); ++t) scratch->push_back(std::make_unique<NoiseScratch>(box));
  return [&set, &particles, &poses, o, box, scratch, transforms](int thread, long j, Insertion& out) {
    const auto t = static_cast<std::size_t>(thread);
    ComplexGrid& f = (*transforms)[t];
    noise_into(o.seed, j, o.pixel_sd, *(*scratch)[t], f);
    const Particle& p = set.particles[static_cast<std::size_t>(particles[static_cast<std::size_t>(j)])];
    const RealGrid ctf = insertion_ctf(set, p, box, o.apply_ctf);
    make_insertion(f, poses[static_cast<std::size_t>(j)], &ctf, box, out);
  };
}

double noise_alignment_kmax(double resolution_A, int box, double pixel_A) {
  return alignment_kmax(resolution_A, RefineOptions{}, box, pixel_A);
}

std::optional<BfactorFit> rosenthal_henderson_fit(const std::vector<long>& sizes,
                                                  const std::vector<std::vector<std::optional<double>>>& resolution_A) {
  std::vector<double> x, y;
  std::vector<long> n;
  for (std::size_t s = 0; s < sizes.size() && s < resolution_A.size(); ++s) {
    double sum = 0;
    int count = 0;
    for (const auto& d : resolution_A[s])
      if (d && std::isfinite(*d) && *d > 0) sum += 1.0 / (*d * *d), ++count;
    if (count == 0) continue;
    x.push_back(std::log(static_cast<double>(sizes[s])));
    y.push_back(sum / count);
    n.push_back(sizes[s]);
  }
  if (x.size() < 2) return std::nullopt;
  const double k = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / k, my = std::accumulate(y.begin(), y.end(), 0.0) / k;
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (!(sxx > 0) || !(sxy > 0)) return std::nullopt;
  BfactorFit f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  f.bfactor_A2 = 2.0 / f.slope;
  f.r = syy > 0 ? sxy / std::sqrt(sxx * syy) : 1.0;
  f.from_size = n.front();
  f.to_size = n.back();
  f.from_A = 1.0 / std::sqrt(y.front());
  f.to_A = 1.0 / std::sqrt(y.back());
  f.points = static_cast<int>(x.size());
  return f;
}

}  // namespace tessera
