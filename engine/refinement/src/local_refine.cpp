// Local refinement of rigid modules (local_refine.hpp): the refinement loop run once per module
// and round, with the other modules' expected images subtracted from every image first.
#include "tessera/local_refine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <optional>

#include "tessera/error.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/fsc.hpp"
#include "tessera/mask.hpp"
#include "tessera/particle_images.hpp"
#include "tessera/projector.hpp"
#include "tessera/subtract.hpp"  // shift_and_window, rounded_centre_of_mass

namespace tessera {
namespace {

RealGrid times(const RealGrid& map, const RealGrid& weight) {
  RealGrid out = map;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] *= weight[i];
  return out;
}

RealGrid sum_of(std::span<const RealGrid> masks) {
  RealGrid sum(masks[0].nx(), masks[0].ny(), masks[0].nz(), 0.f);
  for (const RealGrid& m : masks)
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = std::min(1.f, sum[i] + m[i]);
  return sum;
}

bool any_positive(const RealGrid& g) {
  return std::any_of(g.values().begin(), g.values().end(), [](float v) { return v > 0; });
}

void check_inputs(const ParticleSet& set, const RealGrid& half_a, const RealGrid& half_b,
                  std::span<const RealGrid> masks) {
  if (masks.empty()) throw InputError("local refinement: no module mask");
  if (!half_a.same_shape(half_b)) throw InputError("local refinement: the half maps differ in shape");
  const int box = particle_box(set);
  if (half_a.nx() != box)
    throw InputError(fmt::format("local refinement: the half maps are {} px, the particles {} px", half_a.nx(), box));
  for (std::size_t m = 0; m < masks.size(); ++m) {
    if (!masks[m].same_shape(half_a))
      throw InputError(fmt::format("local refinement: module mask {} is {} px, the maps {} px", m + 1, masks[m].nx(),
                                   half_a.nx()));
    check_mask(masks[m], fmt::format("local refinement: module mask {}", m + 1));
    if (!any_positive(masks[m])) throw InputError(fmt::format("local refinement: module mask {} is empty", m + 1));
  }
  for (const Particle& p : set.particles)
    if (!p.pose)
      throw InputError(fmt::format("local refinement: particle {} has no pose (local refinement starts from a "
                                   "consensus refinement's poses)",
                                   p.image.to_string()));
}

// What the rest of the map is: the map's own envelope (map_mask, as the refinement's dynamic mask)
// less the module masks, within [0, 1]. Outside the envelope the consensus map holds only its
// reconstruction noise, the same in every particle's subtracted image: not subtracted.
RealGrid rest_weight(std::span<const RealGrid> masks, const RealGrid& average, double resolution_A, double pixel_A) {
  RealGrid rest = map_mask(average, resolution_A, pixel_A, 0.2, 6.0, 12.0);
  for (const RealGrid& m : masks)
    for (std::size_t i = 0; i < rest.size(); ++i) rest[i] -= m[i];
  for (float& v : rest.values()) v = std::clamp(v, 0.f, 1.f);
  return rest;
}

// A module's fulcrum: its mask's centre of mass, whole voxels from the box centre (x, y, z).
// Its pose in the fulcrum frame is the pose of its map moved so the fulcrum is at the box centre: the
// same rotation, the origin less the fulcrum's projection (a map displaced by c has origin o - (A c)_xy,
// simulate.hpp), so the loop's local search rotates the module about its fulcrum. sign +1 enters the
// frame, -1 leaves it. With an anisotropic magnification M (forward_model.hpp: image frequency k
// samples the map at A^T M k) the displacement seen in the image is M^T (A c)_xy: the map's phase
// at A^T M k is that of k . M^T (A c).
ProjectionPose in_fulcrum_frame(ProjectionPose pose, const std::array<int, 3>& c, double pixel_A, double sign,
                                const std::array<double, 4>& mag) {
  const Vec3 ac = multiply(euler_to_matrix(pose.angles), Vec3{double(c[0]), double(c[1]), double(c[2])});
  pose.origin_x_A -= sign * (mag[0] * ac[0] + mag[2] * ac[1]) * pixel_A;
  pose.origin_y_A -= sign * (mag[1] * ac[0] + mag[3] * ac[1]) * pixel_A;
  return pose;
}

RealGrid moved(const RealGrid& g, const std::array<int, 3>& c, int sign) {
  return shift_and_window(g, {sign * c[0], sign * c[1], sign * c[2]}, g.nx());
}

double masked_resolution(const RealGrid& a, const RealGrid& b, const RealGrid& mask, double pixel_A,
                         std::vector<double>& fsc) {
  fsc = masked_fsc(a, b, mask);
  const double r = resolution_at(fsc, 0.143, a.nx(), pixel_A).value_or(2 * pixel_A);
  return std::isfinite(r) ? r : a.nx() * pixel_A / 2;
}

// A signal subtracted from the images: a map per half set, at a pose per particle.
struct Subtracted {
  std::array<std::shared_ptr<const Projector>, 2> map;
  const std::vector<ProjectionPose>* poses;
};

// The other modules' and the rest's expected images, taken out of each image at the particle's
// consensus contrast (with its optics group's magnification: `optics`, the set's groups).
SignalRemoval subtract(std::shared_ptr<const std::vector<Subtracted>> others,
                       std::shared_ptr<const std::vector<double>> scale, double pixel_A,
                       std::shared_ptr<const ParticleSet> optics) {
  return [others, scale, pixel_A, optics](const Particle& p, long index, const RealGrid& ctf, ComplexGrid& image) {
    ComplexGrid model;
    const std::size_t i = static_cast<std::size_t>(index);
    const std::array<double, 4>& mag = optics->optics_of(p).mag_matrix;
    for (const Subtracted& s : *others) {
      ModelPose pose = model_pose((*s.poses)[i], pixel_A);
      pose.mag_matrix = mag;
      expected_transform(*s.map[static_cast<std::size_t>(p.half_set - 1)], pose, &ctf, (*scale)[i], model);
      for (std::size_t k = 0; k < image.size(); ++k) image[k] -= model[k];
    }
  };
}

}  // namespace

LocalRefinement run_local_refinement(ParticleSet particles, const RealGrid& half_a, const RealGrid& half_b,
                                     std::span<const RealGrid> masks, double pixel_A,
                                     const LocalRefineOptions& options, const Regularizer* regularizer,
                                     Communicator* communicator, const LocalRefineCallbacks& callbacks) {
  check_inputs(particles, half_a, half_b, masks);
  assign_half_sets(particles, options.refine.seed);
  // The optics groups alone (their magnification matrices), for the signal removal's model.
  auto optics_only = std::make_shared<ParticleSet>();
  optics_only->optics = particles.optics;
  const auto mag_of = [&](std::size_t i) -> const std::array<double, 4>& {
    return particles.optics_of(particles.particles[i]).mag_matrix;
  };
  const std::size_t n = particles.particles.size(), modules = masks.size();
  auto consensus_scale = std::make_shared<std::vector<double>>(n);
  std::vector<ProjectionPose> consensus_poses(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Particle& p = particles.particles[i];
    (*consensus_scale)[i] = p.scale > 0 ? p.scale : 1.0;
    consensus_poses[i] = *p.pose;
  }
  // The maps that are subtracted are FSC-weighted (fsc_weight): a raw half map would add its noise to
  // every image it is subtracted from.
  const std::vector<double> consensus_fsc = fsc(half_a, half_b);
  const RealGrid weighted_a = fsc_weight(half_a, consensus_fsc), weighted_b = fsc_weight(half_b, consensus_fsc);
  // The rest of the map, at the consensus pose: the same in every round, so projected once.
  std::vector<double> union_fsc;
  const RealGrid rest_mask = rest_weight(
      masks, average_maps(half_a, half_b), masked_resolution(half_a, half_b, sum_of(masks), pixel_A, union_fsc), pixel_A);
  std::optional<Subtracted> rest;
  if (options.subtract_other_modules && any_positive(rest_mask))
    rest = Subtracted{{std::make_shared<Projector>(times(weighted_a, rest_mask)),
                       std::make_shared<Projector>(times(weighted_b, rest_mask))},
                      &consensus_poses};
  // The first noise model: the images' power (the loop replaces it by the residual power after one
  // iteration); each module then keeps its own from round to round.
  const std::vector<double> noise_power = mean_image_power(particles, half_a.nx(), options.refine.threads);
  LocalRefinement out;
  out.modules.resize(modules);
  for (std::size_t m = 0; m < modules; ++m) {
    ModuleRefinement& mod = out.modules[m];
    mod.poses = consensus_poses;
    mod.scales = *consensus_scale;
    mod.half_a = times(weighted_a, masks[m]);
    mod.half_b = times(weighted_b, masks[m]);
    mod.raw_a = times(half_a, masks[m]);
    mod.raw_b = times(half_b, masks[m]);
    mod.resolution_A = masked_resolution(half_a, half_b, masks[m], pixel_A, mod.fsc);
    mod.noise_power = noise_power;
  }
  RefineOptions ro = options.refine;
  ro.global_iterations = 0;
  ro.max_iterations = options.iterations_per_module;
  ro.mask_start_res_A = 0;  // the module's mask stays the alignment mask
  ro.minibatch_size = 0;

  for (int round = 1; round <= options.rounds; ++round) {
    for (std::size_t m = 0; m < modules; ++m) {
      // What is subtracted from the images while module m is refined: the other modules at their
      // current poses and the rest of the map at the consensus pose.
      auto others = std::make_shared<std::vector<Subtracted>>();
      if (options.subtract_other_modules) {
        for (std::size_t j = 0; j < modules; ++j) {
          if (j == m) continue;
          const ModuleRefinement& o = out.modules[j];
          others->push_back({{std::make_shared<Projector>(o.half_a), std::make_shared<Projector>(o.half_b)}, &o.poses});
        }
        if (rest) others->push_back(*rest);
      }
      ModuleRefinement& mod = out.modules[m];
      // The loop runs in the module's fulcrum frame: maps, mask and poses moved so that the fulcrum is
      // the box centre, about which the local search rotates.
      const std::array<int, 3> c = rounded_centre_of_mass(masks[m]);
      RefineState st;
      st.particles = particles;
      for (std::size_t i = 0; i < n; ++i) {
        st.particles.particles[i].pose = in_fulcrum_frame(mod.poses[i], c, pixel_A, +1, mag_of(i));
        st.particles.particles[i].scale = mod.scales[i];
      }
      st.half_a = moved(mod.half_a, c, -1);
      st.half_b = moved(mod.half_b, c, -1);
      st.raw_a = moved(mod.raw_a, c, -1);
      st.raw_b = moved(mod.raw_b, c, -1);
      st.mask = moved(masks[m], c, -1);
      st.resolution_A = mod.resolution_A;
      st.fsc = mod.fsc;
      st.noise_power = mod.noise_power;
      StepHooks hooks;
      if (!others->empty()) hooks.remove_signal = subtract(others, consensus_scale, pixel_A, optics_only);
      // The priors are centred on the consensus pose, in the module's fulcrum frame.
      auto centre = std::make_shared<std::vector<ProjectionPose>>(n);
      for (std::size_t i = 0; i < n; ++i) (*centre)[i] = in_fulcrum_frame(consensus_poses[i], c, pixel_A, +1, mag_of(i));
      hooks.prior_centre = [centre](long i) { return std::optional<ProjectionPose>((*centre)[static_cast<std::size_t>(i)]); };
      const std::unique_ptr<ParticleStep> step = make_homogeneous_step(ro, {}, {}, std::move(hooks));
      RefineCallbacks cb;
      if (callbacks.log)
        cb.log = [&, m, round](const std::string& line) {
          callbacks.log(fmt::format("module {} round {}: {}", m + 1, round, line));
        };
      cb.progress = callbacks.progress;
      run_refinement(st, pixel_A, ro, {step.get(), regularizer, communicator}, cb);
      for (std::size_t i = 0; i < n; ++i) {
        mod.poses[i] = in_fulcrum_frame(*st.particles.particles[i].pose, c, pixel_A, -1, mag_of(i));
        mod.scales[i] = st.particles.particles[i].scale;
      }
      // The module's references: what lies inside its mask (the reconstruction of the images less the
      // other modules holds little else), back in the box's frame.
      mod.half_a = times(moved(st.half_a, c, +1), masks[m]);
      mod.half_b = times(moved(st.half_b, c, +1), masks[m]);
      if (!st.raw_a.empty()) {  // the leader's: the outputs
        mod.raw_a = moved(st.raw_a, c, +1);
        mod.raw_b = moved(st.raw_b, c, +1);
      }
      mod.fsc = st.fsc;
      mod.noise_power = st.noise_power;
      mod.resolution_A = st.resolution_A;
      mod.history.insert(mod.history.end(), st.history.begin(), st.history.end());
    }
  }
  return out;
}

}  // namespace tessera
