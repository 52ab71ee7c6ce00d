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
/// Optionally a disordered component D_i (a detergent micelle, a nanodisc
/// belt, a flexible region) is added to particle i's density before the
/// image is formed: a new realisation per particle, in the particle's frame,
/// projected at its pose and through the same CTF, scale and origin:
///   X = shift(-origin) [ scale * CTF * (sum_j ... + P(D_i, A)) ] + noise.
/// D_i and the way it is projected are described at Disorder below.
///
/// With SimulationOptions::ewald_sphere, the protein's images are formed on the Ewald sphere
/// (forward_model.hpp: two sidebands, curvature from the voltage, box and pixel size); the
/// disordered component stays a flat projection.
///
/// Every particle is a pure function of (seed, index), so images can be made
/// in any order and on any number of threads with identical results.
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/ctf.hpp"
#include "tessera/forward_model.hpp"
#include "tessera/particles.hpp"
#include "tessera/projector.hpp"
#include "tessera/random.hpp"

namespace tessera {

/// A disordered component: random density inside an envelope, new for every
/// particle. Distances in pixels (voxels) unless named _A.
///
/// The density of realisation i is a continuous function, a sum of Gaussians
/// centred on the voxels x_v of the envelope (those with m_v > 0):
///   D_i(x) = sum_v m_v (mu + a xi_iv) g(x - x_v),   xi_iv ~ N(0, 1) independent,
/// with g the 3D Gaussian of unit integral and standard deviation
/// sigma = sqrt(ln 2 / 2) / pi * resolution (0.187 x resolution): the random
/// field's amplitude spectrum falls to 1/2 at 1 / resolution. Over
/// realisations D_i is a Gaussian random field whose mean is mu (m * g), the
/// envelope blurred by g, and whose random part averages out; mu and a are
/// set so that, weighted by the envelope's values m, the mean density is
/// `mean` and the RMS of the random part is `rms` (its expectation over
/// realisations, computed exactly).
///
/// A projection is the line integral of D_i at rotation A, sampled at the
/// pixel centres: the line integral of g is the 2D Gaussian of the same sigma
/// at (A x_v)_xy, so P(D_i, A) = sum_v m_v (mu + a xi_iv) g2((A x_v)_xy - p),
/// exact but for g cut at 4 sigma (a relative 3e-4). Every projection is thus
/// one of a single 3D density per particle. Its transform then goes through
/// the forward model (apply_image_formation): no radius limit is applied, so
/// with the CTF off and a whole-pixel origin, D_i changes the image only
/// within the envelope's projection widened by 4 sigma. Density that a
/// rotation carries out of the image is lost (the envelope should lie inside
/// the sphere of radius box/2).
///
/// Cost per particle: one normal draw and a (2 ceil(4 sigma) + 2)^2 pixel
/// splat per envelope voxel, then one 2D FFT. sigma must be at least 0.75 px
/// (resolution at least 4 px): finer, the projections alias.
struct DisorderOptions {
  RealGrid envelope;       ///< box^3, values in [0, 1], centred at box/2
  double resolution_A = 8;  ///< the random field's low-pass, as above
  double rms = 0;           ///< RMS of the random part inside the envelope, in the map's units
  double mean = 0;          ///< mean density inside the envelope, in the map's units
};

class Disorder {
 public:
  /// Throws std::invalid_argument for an envelope that is not cubic, has values
  /// outside [0, 1] or no voxel above 0, or a resolution finer than 4 px.
  Disorder(const DisorderOptions& options, double pixel_A);

  int box() const { return box_; }
  double sigma_px() const { return sigma_; }
  const RealGrid& envelope() const { return envelope_; }
  std::size_t voxels() const { return positions_.size(); }  ///< envelope voxels with m > 0

  /// The weights m_v (mu + a xi_v) of one realisation, drawing xi from rng.
  std::vector<float> draw(Rng& rng) const;
  /// D on the voxel grid (box^3, centred at box/2) for the weights of draw().
  RealGrid volume(const std::vector<float>& weights) const;
  /// The mean over realisations, mu (m * g), on the voxel grid.
  RealGrid mean_volume() const;
  /// The projection of D at rotation a: a centred box x box image, the line
  /// integral in voxel units (as Projector's projections).
  RealGrid projection(const std::vector<float>& weights, const Mat3& a) const;

 private:
  int box_;
  double sigma_, mu_ = 0, a_ = 0;
  int reach_;  // the Gaussian is cut at reach_ = ceil(4 sigma) px
  RealGrid envelope_;
  std::vector<Vec3> positions_;  // x_v from the box centre, px
  std::vector<float> values_;    // m_v
};

/// The built-in envelope for membrane proteins: a belt about the map's z axis
/// (through the box centre), between radii inner and outer and over height
/// (centred on z = box/2), in Angstrom. Cylinder: the cylindrical shell
/// inner <= r <= outer, |z| <= height / 2 (a nanodisc's belt). Torus: the
/// ring whose cross-section is the ellipse with those extents (a micelle).
/// Edges are anti-aliased over one voxel.
enum class BeltShape { Cylinder, Torus };
struct Belt {
  double inner_radius_A = 0, outer_radius_A = 0, height_A = 0;
  BeltShape shape = BeltShape::Cylinder;
};
RealGrid belt_envelope(int box, double pixel_A, const Belt& belt);

/// sqrt(sum m v^2 / sum m): the RMS of a volume inside a (soft) mask.
double masked_rms(const RealGrid& volume, const RealGrid& mask);

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
  // Per-particle defocus error: each particle's image is made with its
  // micrograph's defocus U and V plus e ~ N(0, sigma) (the same e on both),
  // drawn from a stream of its own for (seed, index); 0: none.
  double defocus_error_sigma_A = 0;
  // Per-particle contrast scale: 1 + sigma * N(0, 1), floored at 0.05.
  double scale_sigma = 0;
  // Origins: each of x, y ~ N(0, sigma) in Angstrom.
  double origin_sigma_A = 0;
  // Module motion: rotation by N(0, sigma) degrees about a uniformly random
  // axis through the module's centre of mass; 3D shift ~ N(0, sigma) px per axis.
  double module_rotation_sigma_deg = 0, module_shift_sigma_px = 0;
  // Ewald sphere curvature of the protein's images (forward_model.hpp); needs apply_ctf.
  EwaldSphere ewald_sphere = EwaldSphere::Off;
  // Aberrations of the optics group (aberrations.hpp, RELION 3.1's optics columns), carried by
  // optics(): beam tilt (mrad) and odd Zernike coefficients give every image (protein, disorder)
  // the factor exp(+i phi(k)); even ones enter the CTF's phase (with apply_ctf).
  double beam_tilt_x_mrad = 0, beam_tilt_y_mrad = 0;
  std::vector<double> odd_zernike, even_zernike;
  // Anisotropic magnification of the optics group (forward_model.hpp: the protein's projection and
  // the CTF at M k), carried by optics(); the disordered component is not magnified, so the
  // constructor refuses both together.
  std::array<double, 4> mag_matrix{1, 0, 0, 1};
  // Noise: signal variance / noise variance. Signal variance is the mean
  // variance over the box of up to 128 noise-free images spread evenly over the run.
  std::optional<double> snr;
  // Orientations: given per particle (cycled), or uniform over SO(3).
  std::vector<ProjectionPose> given_poses;
  // With given poses, each one's CTF (defocus U/V/angle, phase shift; same
  // index), used instead of the drawn one when the entry has a value and the
  // CTF is applied. Voltage, Cs and amplitude contrast stay the options'.
  struct GivenCtf {
    double defocus_u_A = 0, defocus_v_A = 0, defocus_angle_deg = 0, phase_shift_deg = 0;
  };
  std::vector<std::optional<GivenCtf>> given_ctfs;
  // A disordered component per particle (Disorder), or none. It does not
  // count as signal for the SNR: the noise is that of the protein alone.
  std::optional<DisorderOptions> disorder;
};

struct SimulatedParticle {
  Particle particle;                      ///< true pose, CTF, scale, half set
  std::vector<ProjectionPose> module_poses;  ///< per module, see header comment
  /// The defocus error e (SimulationOptions::defocus_error_sigma_A): particle
  /// holds the true defocus; its micrograph's, what a per-micrograph CTF
  /// estimate would say, is defocus U - e, V - e.
  double defocus_error_A = 0;
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

  /// The disordered component, or nullptr without one.
  const Disorder* disorder() const { return disorder_ ? &*disorder_ : nullptr; }
  /// Particle `index`'s realisation: the weights of Disorder::draw, from a
  /// stream of its own for (seed, index). Throws std::logic_error without a
  /// disordered component.
  std::vector<float> disorder_weights(long index) const;
  /// Particle `index`'s disordered density on the voxel grid (the one its
  /// image holds): disorder()->volume(disorder_weights(index)).
  RealGrid disorder_volume(long index) const;

 private:
  SimulatedParticle draw(long index) const;
  ComplexGrid protein_transform(const SimulatedParticle& sp, const RealGrid* ctf) const;
  RealGrid render(const SimulatedParticle& sp) const;  // noise-free, protein only
  void add_noise(RealGrid& image, long index) const;
  int box_;
  SimulationOptions opt_;
  std::vector<Projector> projectors_;
  std::vector<Vec3> centres_;
  std::optional<Disorder> disorder_;
  ComplexGrid odd_phase_;  // exp(+i phi) of optics()'s odd aberrations; empty without them
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

/// The phantom as a large complex with a small protein bound to it, the case local refinement
/// and subtraction are for: {body, small}, two modules whose sum is the particle. The body is
/// phantom_volume(box, pixel_A, seed), centred; the small protein is a 60-bead chain (about a
/// fifth of the body's 300) touching the body's surface on the +x side, within box/4 + box/6
/// of the centre. Deterministic for a seed.
std::array<RealGrid, 2> phantom_complex(int box, double pixel_A, std::uint64_t seed);

}  // namespace tessera
