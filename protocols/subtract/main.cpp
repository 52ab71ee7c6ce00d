// tessera_subtract: removes the signal of one region of a map from every
// particle, at each particle's own contrast (engine/refinement/include/tessera/subtract.hpp),
// optionally re-centring the particles on the kept region in a new box.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "common/cli.hpp"
#include "common/io.hpp"
#include "common/run_context.hpp"
#include "subtract/schema.hpp"
#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mrc.hpp"
#include "tessera/star.hpp"
#include "tessera/subtract.hpp"

namespace tp = tessera::protocol;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Inputs {
  ParticleSet set;
  std::vector<MapRegions> regions;  // one, or two half maps
  std::vector<double> half_map_fsc;  // the halves' removed regions' FSC when they were weighted by it
  std::string envelope = "none";     // the removed region restricted to: none, auto, file
  double voxel_A = 0;
  int box = 0, new_box = 0;
  std::optional<std::array<int, 3>> centre;  // re-centre on this voxel (from the map centre)
  std::unique_ptr<Subtractor> subtractor;
};

void check_particles(const ParticleSet& set, const fs::path& file, int box, double voxel_A, bool halves,
                     const std::string& map_name) {
  if (set.particles.empty()) throw InputError(fmt::format("{}: no particles", file.string()));
  for (const Particle& p : set.particles) {
    if (!p.pose)
      throw InputError(fmt::format("{}: particle {} has no pose (angles); subtraction needs refined poses",
                                   file.string(), p.image.to_string()));
    if (halves && p.half_set != 1 && p.half_set != 2)
      throw InputError(fmt::format("{}: particle {} is in no half set (rlnRandomSubset); half maps need 1 or 2",
                                   file.string(), p.image.to_string()));
  }
  for (const OpticsGroup& g : set.optics) {
    if (std::abs(g.pixel_A - voxel_A) > 1e-3 * voxel_A)
      throw InputError(fmt::format("{}: optics group {} has {:.4g} A/px, the map ({}) {:.4g} A/px", file.string(),
                                   g.number, g.pixel_A, map_name, voxel_A));
    if (g.image_size != 0 && g.image_size != box)
      throw InputError(fmt::format("{}: optics group {} has images of {} px, the map ({}) a box of {}", file.string(),
                                   g.number, g.image_size, map_name, box));
  }
  tp::check_particle_stacks(set, box);
}

// What the options need of the particles: a CTF when it is applied, their own
// scales (rlnCtfScalefactor) with --scale refinement.
void check_particle_options(const tp::Values& v, const ParticleSet& set, const fs::path& file) {
  if (v.get<bool>("ctf")) tp::check_ctf(set, file, "give --ctf false to subtract without CTF");
  if (v.get<std::string>("scale") == "refinement" && !set.has_scales)
    throw InputError(fmt::format("{}: --scale refinement needs per-particle scales, and the file has no "
                                 "rlnCtfScalefactor column; use --scale fit",
                                 file.string()));
}

std::vector<tp::LoadedVolume> load_maps(const tp::Values& v) {
  const auto map = v.input_optional("map"), ha = v.input_optional("half_map_A"), hb = v.input_optional("half_map_B");
  if (map && (ha || hb)) throw InputError("--map: give the map or the two half maps, not both");
  if (!map && !(ha && hb)) throw InputError("--map: give the map, or both --half-map-A and --half-map-B");
  if (map) {
    tp::LoadedVolume m = tp::load_volume(*map);
    tp::check_has_signal(m, *map);
    return {std::move(m)};
  }
  auto halves = tp::load_half_maps(*ha, *hb);
  return {std::move(halves[0]), std::move(halves[1])};
}

SubtractOptions subtract_options(const tp::Values& v, int box, double voxel_A) {
  SubtractOptions o;
  const std::string scale = v.get<std::string>("scale");
  o.scale_mode = scale == "fit" ? ScaleMode::Fit : scale == "refinement" ? ScaleMode::Refinement : ScaleMode::Fixed;
  if (o.scale_mode == ScaleMode::Fixed) o.fixed_scale = v.get<double>("fixed_scale");
  if (o.scale_mode == ScaleMode::Fit) {
    o.fit_model = v.get<std::string>("fit_model") == "separate" ? FitModel::Separate : FitModel::Whole;
    o.fit_offset = v.get<bool>("fit_offset");
    const std::string gain = v.get<std::string>("gain_model");
    o.gain_model = gain == "linear" ? GainModel::Linear : gain == "best" ? GainModel::Best : GainModel::Constant;
    if (o.gain_model != GainModel::Constant) o.max_gain_ratio = v.get<double>("max_gain_ratio");
  }
  if (v.get<bool>("refine_removed_pose")) {
    PoseRefinement r;
    r.shift_range_A = v.get<double>("pose_shift_range_A");
    r.shift_step_A = v.get<double>("pose_shift_step_A");
    r.angle_step_deg = v.get<double>("pose_angle_step_deg");
    r.angle_steps = v.get<int>("pose_angle_steps");
    if (r.shift_step_A > r.shift_range_A && r.shift_range_A > 0)
      throw InputError(fmt::format("--pose-shift-step-A ({} A) is larger than --pose-shift-range-A ({} A)",
                                   r.shift_step_A, r.shift_range_A));
    if (r.angle_step_deg * r.angle_steps > 10)
      throw InputError(fmt::format("--pose-angle-step-deg x --pose-angle-steps is {} deg; a local refinement "
                                   "searches at most 10 deg (the refinement's poses should be that close)",
                                   r.angle_step_deg * r.angle_steps));
    o.refine_pose = r;
  }
  o.fit_low_res_A = v.get_optional<double>("fit_low_res_A");
  o.fit_high_res_A = v.get_optional<double>("fit_high_res_A");
  if (o.fit_low_res_A && o.fit_high_res_A && *o.fit_high_res_A > *o.fit_low_res_A)
    throw InputError(fmt::format("--fit-high-res-A ({} A) is coarser than --fit-low-res-A ({} A)", *o.fit_high_res_A,
                                 *o.fit_low_res_A));
  tp::check_resolution_in_box(o.fit_high_res_A, "--fit-high-res-A", box, voxel_A);
  if (auto r = v.get_optional<double>("fit_radius_A")) {
    o.fit_radius_px = *r / voxel_A;
    if (*o.fit_radius_px < 2)
      throw InputError(fmt::format("--fit-radius-A: {} A is {:.3g} px; the fit needs a radius of at least 2 px ({} A)",
                                   *r, *o.fit_radius_px, 2 * voxel_A));
  }
  o.lowpass_A = v.get_optional<double>("lowpass_A");
  tp::check_resolution_in_box(o.lowpass_A, "--lowpass-A", box, voxel_A);
  o.apply_ctf = v.get<bool>("ctf");
  o.padding = v.get<int>("padding");
  return o;
}

std::shared_ptr<Inputs> load_inputs(const tp::Values& v) {
  auto in = std::make_shared<Inputs>();
  const std::vector<tp::LoadedVolume> maps = load_maps(v);
  in->voxel_A = maps[0].voxel_A;
  in->box = maps[0].data.nx();
  const tp::LoadedVolume mask = tp::load_mask(v.input("mask"), maps[0], "the map");
  const bool keep = v.get<std::string>("mask_role") == "keep";
  for (const auto& m : maps)
    in->regions.push_back(keep ? split_keep(m.data, mask.data) : split_remove(m.data, mask.data));
  if (const auto file = v.input_optional("envelope_mask")) {
    in->envelope = "file";
    const RealGrid envelope = tp::load_mask(*file, maps[0], "the map").data;
    for (auto& r : in->regions) restrict_removed(r, envelope);
  } else if (v.get<std::string>("envelope") == "auto") {
    in->envelope = "auto";
    const RealGrid envelope =
        molecule_envelope(maps.size() == 2 ? average_maps(maps[0].data, maps[1].data) : maps[0].data, in->voxel_A);
    for (auto& r : in->regions) restrict_removed(r, envelope);
  }
  // The Wiener gains' FSC: that of what is projected, the two halves' removed regions.
  if (maps.size() == 2 && v.get<std::string>("half_map_weighting") == "fsc")
    in->half_map_fsc = fsc(in->regions[0].remove, in->regions[1].remove);

  const fs::path particles = v.input("particles");
  in->set = tp::load_particles(particles);
  const fs::path map_file = v.input_optional("map") ? v.input("map") : v.input("half_map_A");
  check_particles(in->set, particles, in->box, in->voxel_A, maps.size() == 2, map_file.string());
  check_particle_options(v, in->set, particles);

  in->new_box = v.get_optional<int>("new_box_px").value_or(in->box);
  if (in->new_box > in->box || in->new_box % 2 != 0)
    throw InputError(fmt::format("--new-box-px: {} must be even and at most the box ({})", in->new_box, in->box));
  if (v.get<bool>("recentre")) in->centre = rounded_centre_of_mass(keep ? mask.data : in->regions[0].keep);
  SubtractOptions options = subtract_options(v, in->box, in->voxel_A);
  // The Wiener gains of the half maps (fsc.hpp wiener_gains), applied to what is subtracted; the
  // scale is fitted on the unfiltered projections, which keeps it unbiased.
  if (!in->half_map_fsc.empty()) options.subtract_gains = wiener_gains(in->half_map_fsc);
  in->subtractor = std::make_unique<Subtractor>(in->regions, in->voxel_A, options);
  return in;
}

/// One thread's stack readers, opened on first use.
class Readers {
 public:
  RealGrid read(const ParticleSet& set, const Particle& p) {
    const fs::path stack = set.stack_path(p);
    auto it = readers_.find(stack);
    if (it == readers_.end()) it = readers_.emplace(stack, MrcStackReader(stack)).first;
    return it->second.read(p.image.index);
  }

 private:
  std::map<fs::path, MrcStackReader> readers_;
};

struct Done {
  std::vector<SubtractResult> results;
  std::vector<Particle> particles;  // with the new image names and poses
};

// Particles begin + t, begin + t + threads, ... (< begin + n) into images[k].
void subtract_chunk(const Inputs& in, Done& done, std::vector<RealGrid>& images, Readers& readers, long begin, long n,
                    int t, int threads) {
  for (long k = t; k < n; k += threads) {
    const std::size_t i = static_cast<std::size_t>(begin + k);
    Particle& p = done.particles[i];
    RealGrid img = readers.read(in.set, p);
    done.results[i] = in.subtractor->subtract(img, p, in.set.optics_of(p));
    std::array<int, 3> shift{0, 0, 0};
    if (in.centre) {
      const Recentring r = recentre(*p.pose, *in.centre, in.voxel_A, in.set.optics_of(p).mag_matrix);
      shift = {r.shift_x_px, r.shift_y_px, 0};
      p.pose = r.pose;
    }
    images[static_cast<std::size_t>(k)] =
        in.centre || in.new_box != in.box ? shift_and_window(img, shift, in.new_box) : std::move(img);
  }
}

// Subtracts, re-centres and windows every particle on all threads, appending
// the images to `stack` in order.
Done process(const Inputs& in, MrcStackWriter& stack, int threads, tp::RunContext& ctx) {
  const long count = static_cast<long>(in.set.particles.size());
  const long chunk = std::max(1, threads) * 32L;
  std::vector<Readers> readers(static_cast<std::size_t>(threads));
  Done done;
  done.results.resize(static_cast<std::size_t>(count));
  done.particles = in.set.particles;
  std::vector<RealGrid> images(static_cast<std::size_t>(chunk));
  for (long begin = 0; begin < count; begin += chunk) {
    const long n = std::min(chunk, count - begin);
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
    auto task = [&](int t) noexcept {
      try {
        subtract_chunk(in, done, images, readers[static_cast<std::size_t>(t)], begin, n, t, threads);
      } catch (...) {
        errors[static_cast<std::size_t>(t)] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(task, t);
    task(0);
    for (auto& th : pool) th.join();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);  // an InputError (a NaN image) still exits with 2
    for (long k = 0; k < n; ++k) stack.append(images[static_cast<std::size_t>(k)]);
    ctx.progress("subtract", begin + n, count);
  }
  return done;
}

ParticleSet output_set(const Inputs& in, Done& done, const fs::path& out_dir, const std::string& stack_name) {
  ParticleSet set = in.set;
  int original = set.particle_extra_index("rlnImageOriginalName");
  if (original < 0) {
    set.particle_extra_labels.push_back("rlnImageOriginalName");
    for (Particle& p : done.particles) p.extra.emplace_back();
    original = static_cast<int>(set.particle_extra_labels.size()) - 1;
  }
  for (std::size_t i = 0; i < done.particles.size(); ++i) {
    Particle& p = done.particles[i];
    const ImageRef source{p.image.index, fs::absolute(in.set.stack_path(p)).lexically_normal().string()};
    p.extra[static_cast<std::size_t>(original)] = source.to_string();
    p.image = ImageRef{static_cast<long>(i) + 1, stack_name};
  }
  set.particles = std::move(done.particles);
  for (OpticsGroup& g : set.optics) g.image_size = in.new_box;
  set.base_dir = fs::absolute(out_dir);
  return set;
}

void write_table(tp::RunContext& ctx, const ParticleSet& set, const std::vector<SubtractResult>& results) {
  StarTable t;
  t.name = "subtraction";
  t.labels = {"rlnImageName",          "rlnImageOriginalName",  "tesseraSubtractScale",
              "tesseraSubtractOffset", "tesseraFitResidualRms", "tesseraScaleVariance",
              "tesseraJointScale",     "tesseraRemovedLeft",    "tesseraRemovedPower",
              "tesseraGainIntercept",  "tesseraGainSlope",      "tesseraLinearGain",
              "tesseraPoseShiftAngst", "tesseraPoseAngleDeg"};
  const auto original = static_cast<std::size_t>(set.particle_extra_index("rlnImageOriginalName"));
  for (std::size_t i = 0; i < results.size(); ++i) {
    const SubtractResult& r = results[i];
    const Particle& p = set.particles[i];
    t.rows.push_back({p.image.to_string(), p.extra[original], fmt::format("{:.6g}", r.scale),
                      fmt::format("{:.6g}", r.offset), fmt::format("{:.6g}", r.residual_rms),
                      fmt::format("{:.6g}", r.scale_variance), fmt::format("{:.6g}", r.joint_scale),
                      fmt::format("{:.6g}", r.left), fmt::format("{:.6g}", r.removed_power),
                      fmt::format("{:.6g}", r.gain_intercept), fmt::format("{:.6g}", r.gain_slope),
                      r.linear_gain ? "1" : "0", fmt::format("{:.4g}", r.pose_shift_A),
                      fmt::format("{:.4g}", r.pose_angle_deg)});
  }
  StarFile f;
  f.blocks.push_back(std::move(t));
  write_star(ctx.path("subtraction.star"), f);
  ctx.add_output("table", "subtraction.star", {{"rows", results.size()}});
}

// The bands of the estimates: up to 20, 12, 8, 6, 4 A and Nyquist, those the box holds.
std::vector<double> bands(double voxel_A) {
  std::vector<double> up_to;
  for (double d : {20.0, 12.0, 8.0, 6.0, 4.0})
    if (d >= 2 * voxel_A) up_to.push_back(d);
  if (up_to.empty() || up_to.back() > 2 * voxel_A) up_to.push_back(2 * voxel_A);
  return up_to;
}

// The share of the removed region's signal the Wiener-filtered half maps leave, up to a few
// resolutions (subtract.hpp wiener_left_share; null without FSC-weighted half maps).
tp::Json left_by_band_from_maps(const Inputs& in) {
  if (in.half_map_fsc.empty()) return nullptr;
  const std::vector<double> up_to = bands(in.voxel_A);
  tp::Json out = tp::Json::array();
  const std::vector<double> shares = wiener_left_share(in.half_map_fsc, in.regions[0].remove, in.voxel_A, up_to);
  for (std::size_t i = 0; i < up_to.size(); ++i) out.push_back({{"up_to_A", up_to[i]}, {"share", shares[i]}});
  return out;
}

// The estimate from the particles (subtract.hpp estimate_left): each particle's half set
// cross-validates the systematic term (particles without one alternate).
LeftEstimate left_estimate(const Inputs& in, const std::vector<SubtractResult>& results) {
  std::vector<int> halves(results.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    const int h = in.set.particles[i].half_set;
    halves[i] = h == 1 || h == 2 ? h : 1 + static_cast<int>(i % 2);
  }
  return estimate_left(results, halves, in.half_map_fsc, in.box, in.voxel_A, bands(in.voxel_A));
}

tp::Json left_by_band_json(const LeftEstimate& e) {
  tp::Json out = tp::Json::array();
  for (std::size_t i = 0; i < e.up_to_A.size(); ++i)
    out.push_back({{"up_to_A", e.up_to_A[i]},
                   {"share", e.total[i]},
                   {"map_noise", e.map_noise_counted ? tp::Json(e.map_noise[i]) : tp::Json(nullptr)},
                   {"contrast", e.contrast[i]},
                   {"pose", e.pose[i]},
                   {"systematic", e.systematic[i]}});
  return out;
}

// left_by_shell.json: the estimate per shell in fsc.json's shape (box, voxel_A, shells, curves),
// so that tessera_view_fsc draws it (--thresholds none --crossings none).
void write_left_by_shell(tp::RunContext& ctx, const Inputs& in, const LeftEstimate& e) {
  auto curve = [](const std::vector<double>& v) {
    std::vector<double> c{0.0};  // shell 0 is not estimated
    c.insert(c.end(), v.begin(), v.end());
    return c;
  };
  tp::Json curves = {{"left_total", curve(e.shell_total)},
                     {"left_contrast", curve(e.shell_contrast)},
                     {"left_pose", curve(e.shell_pose)},
                     {"left_systematic", curve(e.shell_systematic)}};
  if (e.map_noise_counted) curves["left_map_noise"] = curve(e.shell_map_noise);
  const tp::Json doc = {{"box", in.box},
                        {"voxel_A", in.voxel_A},
                        {"shells", tp::fsc_shells_json(in.box, in.voxel_A)},
                        {"curves", curves},
                        {"resolution_A", tp::Json::object()}};
  tp::atomic_write_text(ctx.path("left_by_shell.json"), doc.dump(2) + "\n");
  ctx.add_output("left_by_shell", "left_by_shell.json");
}

void write_summary(tp::RunContext& ctx, const tp::Values& v, const Inputs& in, const SubtractSummary& s,
                   const LeftEstimate& e, long linear_gains) {
  tp::Json centre = in.centre ? tp::Json{(*in.centre)[0], (*in.centre)[1], (*in.centre)[2]} : tp::Json(nullptr);
  const tp::Json from_maps = left_by_band_from_maps(in);
  std::string text;
  for (std::size_t i = 0; i < e.up_to_A.size(); ++i)
    text += fmt::format("{}{:.1f}% up to {:.3g} A (pose {:.1f}%, contrast {:.1f}%, map noise {}, systematic {:.1f}%)",
                        text.empty() ? "" : "; ", 100 * e.total[i], e.up_to_A[i], 100 * e.pose[i],
                        100 * e.contrast[i],
                        e.map_noise_counted ? fmt::format("{:.1f}%", 100 * e.map_noise[i]) : "not counted",
                        100 * e.systematic[i]);
  ctx.info("estimated signal of the removed region left in the particles: " + text +
           (e.map_noise_counted ? "" : " (one map: its noise is not counted, a lower bound)"));
  const tp::Json doc = {
      {"particles", s.count},
      {"scale_mode", v.get<std::string>("scale")},
      {"gain_model", v.get<std::string>("scale") == "fit" ? v.get<std::string>("gain_model") : "constant"},
      {"linear_gains", linear_gains},
      {"pose_refined", v.get<bool>("refine_removed_pose")},
      {"mask_role", v.get<std::string>("mask_role")},
      {"half_maps", in.regions.size() == 2},
      {"half_map_weighting", in.regions.size() == 2 ? v.get<std::string>("half_map_weighting") : "none"},
      {"half_map_fsc", in.half_map_fsc},
      {"envelope", in.envelope},
      {"removed_signal_left_by_band", left_by_band_json(e)},
      {"removed_signal_left_by_band_note",
       "estimated from the particles, per band up to up_to_A: map noise (1 - FSC of the half maps' removed "
       "regions; null with one map, not counted), contrast (noise in the fitted gains), pose (the pose noise the "
       "images allow, Cramer-Rao) and systematic (what the gains miss on average, cross-validated between half "
       "sets); left_by_shell.json has it per shell. A lower bound: pose errors of the refinement beyond what the "
       "images allow blur the map by the same errors, which the particles cannot reveal (in the issue 17 "
       "benchmark the estimate is 0.45-0.65 of the true share)"},
      {"removed_signal_left_by_band_from_maps", from_maps},
      {"scale", {{"mean", s.scale_mean}, {"sd", s.scale_sd}, {"min", s.scale_min}, {"max", s.scale_max}}},
      {"residual_rms_mean", s.residual_rms_mean},
      {"removed_signal_left_fraction", s.left_fraction},
      {"removed_signal_left_fraction_from_scale_noise", s.left_fraction_from_noise},
      {"note",
       "estimated from the particles: the removed region's contrast left in them (scale errors and noise); "
       "density that the mask assigns to the kept region is kept by design and not counted"},
      {"recentred_on_voxel", centre},
      {"box_px", in.new_box}};
  tp::atomic_write_text(ctx.path("subtraction.json"), doc.dump(2) + "\n");
  ctx.add_output("summary", "subtraction.json", {{"removed_signal_left_fraction", s.left_fraction}});
  ctx.event("summary", doc,
            fmt::format("scale {:.3f} +- {:.3f} (min {:.3f}, max {:.3f}); estimated signal of the removed region "
                        "left: {:.2f}% (of which {:.2f}% from noise in the fitted scales)",
                        s.scale_mean, s.scale_sd, s.scale_min, s.scale_max, 100 * s.left_fraction,
                        100 * s.left_fraction_from_noise));
}

void run(const tp::Values& v, tp::RunContext& ctx, Inputs& in) {
  const int threads = std::max(1, ctx.options().threads);
  ctx.info(fmt::format("{} particles, box {} at {} A/px, {} map(s), mask {}s the region; output box {}",
                       in.set.particles.size(), in.box, in.voxel_A, in.regions.size(), v.get<std::string>("mask_role"),
                       in.new_box));
  if (in.centre)
    ctx.info(fmt::format("re-centring on voxel ({}, {}, {}) from the map centre", (*in.centre)[0], (*in.centre)[1],
                         (*in.centre)[2]));
  const std::string stack_name = "particles_subtracted.mrcs";
  MrcStackWriter stack(ctx.path(stack_name), in.new_box, in.new_box, in.voxel_A);
  Done done = process(in, stack, threads, ctx);
  stack.finish();
  const SubtractSummary summary = summarize(done.results);
  const std::vector<SubtractResult> results = std::move(done.results);
  const ParticleSet set = output_set(in, done, ctx.out_dir(), stack_name);
  tp::save_particles(ctx, set, "particles_subtracted", "particles_star", "particles_sqlite");
  write_table(ctx, set, results);
  const LeftEstimate estimate = left_estimate(in, results);
  write_left_by_shell(ctx, in, estimate);
  const long linear = std::count_if(results.begin(), results.end(), [](const auto& r) { return r.linear_gain; });
  write_summary(ctx, v, in, summary, estimate, linear);

  RealGrid kept = in.regions.size() == 2 ? average_maps(in.regions[0].keep, in.regions[1].keep) : in.regions[0].keep;
  if (in.centre)
    kept = shift_and_window(kept, {-(*in.centre)[0], -(*in.centre)[1], -(*in.centre)[2]}, in.new_box);
  else if (in.new_box != in.box)
    kept = shift_and_window(kept, {0, 0, 0}, in.new_box);
  tp::save_volume(ctx, "kept_map", "kept_map.mrc", kept, in.voxel_A);
}

// Inputs are read and checked first: an InputError there (exit 2) leaves
// nothing behind, as the output folder is made only by ctx.start().
void work(const tp::Values& v, tp::RunContext& ctx) {
  const std::shared_ptr<Inputs> in = load_inputs(v);
  ctx.start();
  run(v, ctx, *in);
}

}  // namespace

int main(int argc, char** argv) {
  return tp::run_program(tp::subtract_schema(), argc, argv, work);
}
