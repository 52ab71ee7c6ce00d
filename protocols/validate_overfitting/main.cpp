// tessera_validate_overfitting: resolution against the number of particles
// (Heymann 2015; Xmipp's validate overfitting), for the particles at their
// given poses and for Gaussian noise images aligned to a map, with the
// Rosenthal-Henderson B-factor of the particles' curve (tessera/overfitting.hpp).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "tessera/error.hpp"
#include "tessera/overfitting.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/random.hpp"
#include "tessera/star.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

constexpr std::uint64_t kNoiseSeedSalt = 0x6e6f697365;  // "noise": the noise images' own generator

tp::Schema make_schema() {
  tp::Schema s;
  s.name = "tessera_validate_overfitting";
  s.version = "0.1.0";
  s.label = "validate overfitting";
  s.description =
      "Resolution against the number of particles: random subsets of increasing size, several repeats each, split "
      "into two halves (the particles' rlnRandomSubset when every particle has one), each half reconstructed at the "
      "particles' poses (no alignment), resolution where the FSC of the half maps crosses the threshold. The same "
      "curve for Gaussian white noise images (the particles' CTFs and pixel variance) aligned to a map by a global "
      "search: noise reproduces the map's low resolution, but does not improve with N as real particles do "
      "(Heymann 2015). Also the B-factor of the particles' curve (Rosenthal & Henderson 2003).";
  s.scipion_base_class = "ProtAnalysis3D";
  s.citations = {"10.3934/biophy.2015.1.21", "10.1016/j.jmb.2003.07.013"};
  s.add_input("particles", tp::InputKind::Particles, "Particles",
              {.help = "Particles with poses and CTF (RELION STAR or Scipion sqlite).",
               .pointer_condition = "hasAlignmentProj"});
  s.add_input(
      "map", tp::InputKind::Volume, "Reference map",
      {.help = "The map the noise images are aligned to; default: the map of the largest subset.", .required = false});
  s.add_input("mask", tp::InputKind::Mask, "Mask",
              {.help = "FSC of the masked half maps (not corrected by phase randomization); default: unmasked.",
               .required = false});
  s.add_int("min_particles", "Smallest subset",
            {.default_value = 100, .min = 2, .help = "Sizes double from this up to the largest subset."});
  s.add_int("max_particles", "Largest subset", {.min = 2, .help = "Default: the whole set."});
  s.add_string(
      "sizes", "Subset sizes",
      {.help = "Instead of doubling: the sizes, ascending, separated by spaces or commas (e.g. '100 300 1000').",
       .level = tp::Level::Advanced});
  s.add_int("repeats", "Repeats", {.default_value = 3, .min = 1, .max = 100, .help = "Random subsets per size."});
  s.add_float("threshold", "FSC threshold",
              {.default_value = 0.143,
               .min = 0.0,
               .max = 1.0,
               .min_exclusive = true,
               .max_exclusive = true,
               .help = "Resolution where the half-map FSC crosses this (interpolated between shells)."});
  s.add_string("symmetry", "Symmetry",
               {.default_value = "C1", .help = "Point group in RELION's conventions: C<n>, D<n>, T, O, I, I1-I4."});
  s.add_bool("ctf", "Correct CTF", {.default_value = true, .help = "Weight by the CTF (off: images without CTF)."});
  s.add_float("max_res_A", "Maximum resolution",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Highest resolution back-projected (less memory and time); default: Nyquist.",
               .level = tp::Level::Advanced});
  s.add_bool("noise", "Noise curve",
             {.default_value = true, .help = "Also the curve of aligned noise images.", .section = "Noise"});
  s.add_int("noise_max_particles", "Most noise images",
            {.default_value = 2000,
             .min = 2,
             .help = "Noise curve only for the sizes up to this: each noise image is aligned by a global search, "
                     "the costly part (docs/validate_overfitting.md).",
             .section = "Noise",
             .condition = "noise"});
  s.add_float("align_res_A", "Alignment resolution",
              {.min = 0.0,
               .min_exclusive = true,
               .unit = "A",
               .help = "Noise is aligned with frequencies up to 4 shells beyond this; default: the particles' "
                       "resolution at the largest subset (as a refinement at that resolution aligns).",
               .section = "Noise",
               .condition = "noise"});
  s.add_float("noise_final_step_deg", "Noise search step",
              {.default_value = 1.875,
               .min = 0.1,
               .max = 15.0,
               .unit = "deg",
               .help = "Angular step at which the global search of the noise images stops (it starts at 15 deg "
                       "and halves the step per level): a coarser step costs less.",
               .section = "Noise",
               .level = tp::Level::Advanced,
               .condition = "noise"});
  s.add_output("curves", tp::OutputKind::Table, "Resolution against particles (JSON)",
               {.help = "validate_overfitting.json: sizes, resolutions per repeat, means, B-factor."});
  s.add_output("table", tp::OutputKind::Table, "Resolution against particles (STAR)");
  s.add_output("reference", tp::OutputKind::Volume, "Noise reference",
               {.help = "The map of the largest subset, when the noise was aligned to it.", .optional = true});
  return s;
}

struct Inputs {
  ParticleSet set;
  int box = 0;
  double voxel_A = 0;
  std::vector<long> sizes, noise_sizes;
  std::optional<RealGrid> map, mask;
  std::vector<Mat3> symmetry;
};

ParticleSet load_checked_particles(const tp::Values& v, const fs::path& file) {
  ParticleSet set = tp::load_particles(file);
  if (set.particles.empty()) throw InputError(fmt::format("{}: no particles", file.string()));
  for (const Particle& p : set.particles)
    if (!p.pose)
      throw InputError(fmt::format("{}: particle {} has no pose (angles); the curve needs refined poses", file.string(),
                                   p.image.to_string()));
  tp::check_particle_stacks(set, particle_box(set));
  if (v.get<bool>("ctf")) tp::check_ctf(set, file, "give --ctf false to reconstruct without CTF correction");
  return set;
}

std::vector<long> parse_sizes(const std::string& text) {
  std::string t = text;
  std::replace(t.begin(), t.end(), ',', ' ');
  std::istringstream in(t);
  std::vector<long> sizes;
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    long n = 0;
    try {
      n = std::stol(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || n < 2)
      throw InputError(fmt::format("--sizes: '{}' is not a number of particles of 2 or more", word));
    if (!sizes.empty() && n <= sizes.back())
      throw InputError(fmt::format("--sizes: {} after {}: sizes must ascend", n, sizes.back()));
    sizes.push_back(n);
  }
  if (sizes.empty()) throw InputError("--sizes: no size given");
  return sizes;
}

std::vector<long> subset_sizes(const tp::Values& v, long count, const fs::path& file) {
  std::vector<long> sizes;
  if (auto text = v.get_optional<std::string>("sizes")) {
    sizes = parse_sizes(*text);
  } else {
    const long lo = v.get<std::int64_t>("min_particles");
    const long hi = v.get_optional<std::int64_t>("max_particles").value_or(count);
    if (hi > count)
      throw InputError(
          fmt::format("--max-particles: {} is more than the {} particles of {}", hi, count, file.string()));
    if (lo > hi)
      throw InputError(fmt::format("--min-particles: {} is more than the largest subset ({}; {} has {} particles)", lo,
                                   hi, file.string(), count));
    sizes = doubling_sizes(lo, hi);
  }
  if (sizes.back() > count)
    throw InputError(
        fmt::format("--sizes: {} is more than the {} particles of {}", sizes.back(), count, file.string()));
  return sizes;
}

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  auto in = std::make_shared<Inputs>();
  const fs::path file = v.input("particles");
  in->set = load_checked_particles(v, file);
  in->box = particle_box(in->set);
  in->voxel_A = in->set.optics_of(in->set.particles.front()).pixel_A;
  in->sizes = subset_sizes(v, static_cast<long>(in->set.particles.size()), file);
  in->symmetry = tp::load_symmetry(v, "symmetry").matrices();
  tp::check_resolution_in_box(v.get_optional<double>("max_res_A"), "--max-res-A", in->box, in->voxel_A);
  const tp::LoadedVolume grid{RealGrid(in->box, in->box, in->box), in->voxel_A};
  const std::string grid_name = fmt::format("the particles, {}", file.string());
  if (auto map = v.input_optional("map")) {
    tp::LoadedVolume m = tp::load_volume(*map);
    tp::check_same_grid(m, *map, grid, grid_name);
    tp::check_has_signal(m, *map);
    in->map = std::move(m.data);
  }
  if (auto mask = v.input_optional("mask")) in->mask = tp::load_mask(*mask, grid, grid_name).data;
  if (v.get<bool>("noise")) {
    tp::check_resolution_in_box(v.get_optional<double>("align_res_A"), "--align-res-A", in->box, in->voxel_A);
    const long most = v.get<std::int64_t>("noise_max_particles");
    for (long n : in->sizes)
      if (n <= most) in->noise_sizes.push_back(n);
    if (in->noise_sizes.empty())
      throw InputError(
          fmt::format("--noise-max-particles: {} is below the smallest subset ({}); give --noise false "
                      "for no noise curve",
                      most, in->sizes.front()));
  }
  return in;
}

CurveOptions curve_options(const tp::Values& v, tp::RunContext& ctx, const Inputs& in, std::vector<long> sizes) {
  CurveOptions o;
  o.sizes = std::move(sizes);
  o.repeats = v.get<int>("repeats");
  o.seed = static_cast<std::uint64_t>(ctx.options().seed);
  o.threads = std::max(1, ctx.options().threads);
  o.threshold = v.get<double>("threshold");
  o.symmetry = in.symmetry;
  if (auto r = v.get_optional<double>("max_res_A")) o.max_radius_px = in.box * in.voxel_A / *r;
  o.mask = in.mask ? &*in.mask : nullptr;
  return o;
}

struct Curves {
  ResolutionCurve particles, noise;
  std::optional<BfactorFit> fit;
  tp::Json noise_info = tp::Json::object();
};

// The noise curve: noise images with the CTFs of a random subset of the particles, aligned
// to the map (given, or the particles' largest subset's), reconstructed at those poses.
ResolutionCurve noise_curve(const tp::Values& v, tp::RunContext& ctx, const Inputs& in, const RealGrid& reference,
                            double align_res_A, tp::Json& info) {
  const long count = in.noise_sizes.back();
  std::vector<int> all_halves(in.set.particles.size(), 0);
  const SubsetOrder pick = subset_order(all_halves, static_cast<std::uint64_t>(ctx.options().seed) ^ kNoiseSeedSalt, 0);
  const std::vector<long> chosen(pick.index.begin(), pick.index.begin() + count);
  std::vector<int> halves;
  for (long i : chosen) halves.push_back(in.set.particles[static_cast<std::size_t>(i)].half_set);

  NoiseAlignOptions no;
  no.seed = static_cast<std::uint64_t>(ctx.options().seed) ^ kNoiseSeedSalt;
  no.pixel_sd = std::sqrt(mean_pixel_variance(in.set, in.box));
  no.kmax_px = noise_alignment_kmax(align_res_A, in.box, in.voxel_A);
  no.threads = std::max(1, ctx.options().threads);
  no.apply_ctf = v.get<bool>("ctf");
  no.search.final_step_deg = v.get<double>("noise_final_step_deg");
  info = {{"images", count},
          {"pixel_sd", no.pixel_sd},
          {"align_res_A", align_res_A},
          {"align_kmax_px", no.kmax_px},
          {"aligned_to", in.map ? "map" : "largest_subset"}};
  ctx.info(fmt::format("noise: {} images of pixel sd {:.4g}, aligned up to {:.1f} px ({:.2f} A) by a global search",
                       count, no.pixel_sd, no.kmax_px, in.box * in.voxel_A / no.kmax_px));
  const Projector projector(reference);
  const std::vector<ModelPose> poses = align_noise(
      in.set, chosen, projector, no, [&](long done, long total) { ctx.progress("align noise", done, total); });
  CurveOptions o = curve_options(v, ctx, in, in.noise_sizes);
  o.quanta = AccumulationQuanta::for_power(static_cast<double>(in.box) * in.box * no.pixel_sd * no.pixel_sd);
  return resolution_curve(halves, in.box, in.voxel_A, noise_insertions(in.set, chosen, poses, no, in.box), o,
                          [&](long done, long total) { ctx.progress("noise curve", done, total); });
}

Curves compute(const tp::Values& v, tp::RunContext& ctx, const Inputs& in) {
  Curves c;
  const int threads = std::max(1, ctx.options().threads);
  const bool noise = v.get<bool>("noise");
  CurveOptions o = curve_options(v, ctx, in, in.sizes);
  const std::vector<double> power = mean_image_power(in.set, in.box, threads, 100);
  o.quanta = AccumulationQuanta::for_power(*std::max_element(power.begin(), power.end()));
  o.want_full_map = noise && !in.map;
  std::vector<int> halves;
  for (const Particle& p : in.set.particles) halves.push_back(p.half_set);
  c.particles =
      resolution_curve(halves, in.box, in.voxel_A, particle_insertions(in.set, in.box, threads, v.get<bool>("ctf")), o,
                       [&](long done, long total) { ctx.progress("particles curve", done, total); });
  c.fit = rosenthal_henderson_fit(c.particles.sizes, c.particles.resolution_A);
  if (!noise) return c;
  if (!in.map) tp::save_volume(ctx, "reference", "noise_reference.mrc", c.particles.full_map, in.voxel_A);
  const double align_res_A = v.get_optional<double>("align_res_A")
                                 .value_or(spread_of(c.particles.resolution_A.back()).mean.value_or(2 * in.voxel_A));
  c.noise = noise_curve(v, ctx, in, in.map ? *in.map : c.particles.full_map, align_res_A, c.noise_info);
  return c;
}

tp::Json optional_json(std::optional<double> x) {
  return x && std::isfinite(*x) ? tp::Json(*x) : tp::Json(nullptr);
}

// One curve over all sizes: a list of repeats per size ([] for sizes the curve does not reach).
tp::Json curve_json(const ResolutionCurve& c, const std::vector<long>& sizes) {
  tp::Json res = tp::Json::array(), mean = tp::Json::array(), sd = tp::Json::array();
  for (std::size_t s = 0; s < sizes.size(); ++s) {
    tp::Json repeats = tp::Json::array();
    Spread sp;
    if (s < c.sizes.size()) {
      for (const auto& r : c.resolution_A[s]) repeats.push_back(optional_json(r));
      sp = spread_of(c.resolution_A[s]);
    }
    res.push_back(repeats);
    mean.push_back(optional_json(sp.mean));
    sd.push_back(optional_json(sp.sd));
  }
  return {{"resolution_A", res}, {"mean_A", mean}, {"sd_A", sd}};
}

tp::Json fit_json(const std::optional<BfactorFit>& f) {
  if (!f) return nullptr;
  return {{"sign", "Rosenthal & Henderson: 1/d^2 = (2 / B) ln N + c, B > 0 when the resolution improves with N"},
          {"slope_inv_A2_per_ln_n", f->slope},
          {"intercept_inv_A2", f->intercept},
          {"r", f->r},
          {"from_particles", f->from_size},
          {"to_particles", f->to_size},
          {"from_A", f->from_A},
          {"to_A", f->to_A},
          {"points", f->points}};
}

tp::Json result_json(const tp::Values& v, const Inputs& in, const Curves& c) {
  tp::Json doc = {
      {"box", in.box},
      {"voxel_A", in.voxel_A},
      {"threshold", v.get<double>("threshold")},
      {"sizes", in.sizes},
      {"curves", {{"particles", curve_json(c.particles, in.sizes)}, {"noise", curve_json(c.noise, in.sizes)}}},
      {"bfactor_A2", c.fit ? tp::Json(c.fit->bfactor_A2) : tp::Json(nullptr)},
      {"bfactor_fit", fit_json(c.fit)},
      {"repeats", v.get<int>("repeats")},
      {"masked", in.mask.has_value()}};
  if (!c.noise_info.empty()) doc["noise_alignment"] = c.noise_info;
  return doc;
}

std::string crossing(const std::optional<double>& r) {
  return !r ? "above_to_nyquist" : std::isfinite(*r) ? "interpolated" : "below_from_shell_1";
}

void write_table(tp::RunContext& ctx, const Curves& c) {
  StarTable t;
  t.name = "overfitting";
  t.labels = {"tesseraCurve", "tesseraParticles", "tesseraRepeat", "tesseraResolutionAngst", "tesseraFscCrossing"};
  for (const auto& [name, curve] : {std::pair{"particles", &c.particles}, std::pair{"noise", &c.noise}})
    for (std::size_t s = 0; s < curve->sizes.size(); ++s)
      for (std::size_t r = 0; r < curve->resolution_A[s].size(); ++r) {
        const auto& d = curve->resolution_A[s][r];
        t.rows.push_back({name, fmt::format("{}", curve->sizes[s]), fmt::format("{}", r + 1),
                          d && std::isfinite(*d) ? fmt::format("{:.4f}", *d) : "999.0000", crossing(d)});
      }
  StarFile f;
  f.blocks.push_back(std::move(t));
  write_star(ctx.path("validate_overfitting.star"), f);
  ctx.add_output("table", "validate_overfitting.star", {{"rows", f.blocks[0].rows.size()}});
}

std::string format_mean(const std::vector<std::optional<double>>& values) {
  const Spread sp = spread_of(values);
  return sp.mean ? fmt::format("{:.2f} +- {:.2f} A", *sp.mean, *sp.sd) : std::string("none");
}

void report(tp::RunContext& ctx, const Inputs& in, const Curves& c, const tp::Json& doc) {
  for (std::size_t s = 0; s < in.sizes.size(); ++s)
    ctx.info(fmt::format("{:>8} particles: {:>18}   noise: {}", in.sizes[s], format_mean(c.particles.resolution_A[s]),
                         s < c.noise.sizes.size() ? format_mean(c.noise.resolution_A[s]) : std::string("-")));
  const std::string fit = c.fit ? fmt::format("B = {:.0f} A^2 (Rosenthal-Henderson, {} to {} particles, r {:.3f})",
                                              c.fit->bfactor_A2, c.fit->from_size, c.fit->to_size, c.fit->r)
                                : std::string("no B-factor (the resolution does not improve with N)");
  ctx.event(
      "summary",
      {{"sizes", doc["sizes"]},
       {"particles_mean_A", doc["curves"]["particles"]["mean_A"]},
       {"noise_mean_A", doc["curves"]["noise"]["mean_A"]},
       {"bfactor_A2", doc["bfactor_A2"]}},
      fmt::format("largest subset ({}): {}; {}", in.sizes.back(), format_mean(c.particles.resolution_A.back()), fit));
}

void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  ctx.info(fmt::format("{} particles of {} px at {} A/px; sizes {}; {} repeats", in->set.particles.size(), in->box,
                       in->voxel_A, fmt::join(in->sizes, " "), v.get<int>("repeats")));
  const Curves c = compute(v, ctx, *in);
  const tp::Json doc = result_json(v, *in, c);
  tp::atomic_write_text(ctx.path("validate_overfitting.json"), doc.dump(2) + "\n");
  ctx.add_output("curves", "validate_overfitting.json", {{"bfactor_A2", doc["bfactor_A2"]}});
  write_table(ctx, c);
  report(ctx, *in, c, doc);
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(make_schema(), argc, argv, work);
}
