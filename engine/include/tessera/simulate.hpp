#pragma once
/// Simulation of particle images with known poses, CTFs, contrast and noise.
///
/// Image model (RELION's, checked against relion_project in the tests):
///   X = shift(-origin) [ scale * CTF * sum_j shift(A b_j) P(V_j, A R_j) ] + noise
/// where P(V, A) is the projection of volume V at rotation A (projector.hpp),
/// origin is the particle's rlnOrigin (the particle's centre lies at box
/// centre minus origin), and for each module j the rigid motion is a rotation
/// R_j about the module's centre of mass c_j followed by a shift t_j:
///   V_j'(x) = V_j(R_j^T (x - c_j - t_j) + c_j),  b_j = c_j + t_j - R_j c_j.
/// A module's own pose is therefore rotation A R_j with origin
/// origin - (A b_j)_xy (in Angstrom); the simulator reports it per particle.
///
/// Every particle is a pure function of (seed, index), so images can be made
/// in any order and on any number of threads with identical results.
#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/ctf.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"

namespace tessera {

struct SimulationOptions {
  long count = 1000;
  double pixel_A = 1.0;
  std::uint64_t seed = 1;
  // Optics, shared by all particles (one optics group).
  double voltage_kV = 300, cs_mm = 2.7, amplitude_contrast = 0.1;
  // CTF: one defocus per micrograph, uniform in [min, max]; astigmatism
  // (dU - dV) uniform in [0, max], angle uniform in [0, 180).
  bool apply_ctf = true;
  double defocus_min_A = 10000, defocus_max_A = 25000, astigmatism_max_A = 0;
  long particles_per_micrograph = 100;
  // Per-particle contrast scale: 1 + sigma * N(0, 1), floored at 0.05.
  double scale_sigma = 0;
  // Origins: each of x, y ~ N(0, sigma) in Angstrom.
  double origin_sigma_A = 0;
  // Module motion: rotation by N(0, sigma) degrees about a uniformly random
  // axis through the module's centre of mass; 3D shift ~ N(0, sigma) px per axis.
  double module_rotation_sigma_deg = 0, module_shift_sigma_px = 0;
  // Noise: signal variance / noise variance. Signal variance is the mean
  // variance over the box of up to 128 noise-free images spread evenly over the run.
  std::optional<double> snr;
  // Orientations: given per particle (cycled), or uniform over SO(3).
  std::vector<ProjectionPose> given_poses;
};

struct SimulatedParticle {
  Particle particle;                      ///< true pose, CTF, scale, half set
  std::vector<ProjectionPose> module_poses;  ///< per module, see header comment
};

class Simulator {
 public:
  /// modules: one or more cubic volumes of the same box (their sum is the map).
  Simulator(const std::vector<RealGrid>& modules, SimulationOptions options);

  int box() const { return box_; }
  const SimulationOptions& options() const { return opt_; }
  double noise_sigma() const { return noise_sigma_; }
  const std::vector<Vec3>& module_centres_px() const { return centres_; }  ///< from the box centre
  OpticsGroup optics() const;

  /// Particle `index` (0-based): its parameters, and its image written to
  /// `image` (box x box). noise_free, when given, receives the image without noise.
  SimulatedParticle make(long index, RealGrid& image, RealGrid* noise_free = nullptr) const;

 private:
  SimulatedParticle draw(long index) const;
  RealGrid render(const SimulatedParticle& sp) const;  // noise-free
  void add_noise(RealGrid& image, long index) const;
  int box_;
  SimulationOptions opt_;
  std::vector<Projector> projectors_;
  std::vector<Vec3> centres_;
  double noise_sigma_ = 0;
};

/// Centre of mass of the positive density of a volume, in pixels from the box centre.
Vec3 centre_of_mass_px(const RealGrid& volume);

}  // namespace tessera

namespace tessera {

/// A synthetic, asymmetric "protein" for demos and tests that must not need
/// outside data: a self-avoiding-ish random chain of `residues` Gaussian beads
/// (3.8 A apart, sigma 1.6 A, inside a sphere of radius box/4 pixels), sampled
/// on a box^3 grid of pixel_A. Deterministic for a seed.
RealGrid phantom_volume(int box, double pixel_A, std::uint64_t seed, int residues = 300);

}  // namespace tessera
