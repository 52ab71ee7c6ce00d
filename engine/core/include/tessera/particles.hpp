#pragma once
/// The in-memory particle set that every reader fills and every writer
/// empties: RELION 3.1 semantics (optics groups + particles).
///
/// Columns that Tessera does not interpret are kept as text, per optics group
/// and per particle, under their RELION label (without the leading '_'), so a
/// STAR or Scipion set goes through a Tessera step without losing anything.
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tessera/geometry.hpp"

namespace tessera {

/// One rlnImageName: `000012@Particles/stack.mrcs` is index 12 of that stack.
struct ImageRef {
  long index = 1;    ///< 1-based position in the stack (RELION and Scipion convention)
  std::string path;  ///< as written in the file (relative to ParticleSet::base_dir unless absolute)
  std::string to_string() const;  ///< "000012@path"
  static ImageRef parse(const std::string& text);  ///< throws std::invalid_argument
};

struct OpticsGroup {
  int number = 1;                 ///< rlnOpticsGroup (1-based)
  std::string name;               ///< rlnOpticsGroupName
  double pixel_A = 1;             ///< rlnImagePixelSize, Angstrom per pixel
  int image_size = 0;             ///< rlnImageSize, pixels (0 = unknown)
  double voltage_kV = 300;        ///< rlnVoltage
  double cs_mm = 2.7;             ///< rlnSphericalAberration
  double amplitude_contrast = 0.1;///< rlnAmplitudeContrast
  /// Aberrations beyond defocus and Cs, in RELION 3.1's optics columns (optics_aberrations.hpp
  /// reads and writes them; ctf.hpp and forward_model.hpp say how the model applies them).
  double beam_tilt_x_mrad = 0, beam_tilt_y_mrad = 0;  ///< rlnBeamTiltX/Y
  std::vector<double> odd_zernike;                     ///< rlnOddZernike: odd-aberration coefficients
  std::vector<double> even_zernike;                    ///< rlnEvenZernike: even-aberration coefficients
  std::array<double, 4> mag_matrix{1, 0, 0, 1};        ///< rlnMagMat00, 01, 10, 11: anisotropic magnification
  std::vector<std::string> extra; ///< values of ParticleSet::optics_extra_labels
};

struct Particle {
  ImageRef image;
  int optics_group = 1;            ///< rlnOpticsGroup
  std::string micrograph;          ///< rlnMicrographName ("" if absent)
  double defocus_u_A = 0, defocus_v_A = 0, defocus_angle_deg = 0;  ///< rlnDefocusU/V/Angle
  double phase_shift_deg = 0;      ///< rlnPhaseShift
  double ctf_bfactor = 0;          ///< rlnCtfBfactor, A^2
  double scale = 1;                ///< rlnCtfScalefactor: per-particle contrast scale
  std::optional<ProjectionPose> pose;  ///< rlnAngleRot/Tilt/Psi + rlnOriginX/Y/ZAngst
  int half_set = 0;                ///< rlnRandomSubset: 1, 2, or 0 when unassigned
  std::vector<std::string> extra;  ///< values of ParticleSet::particle_extra_labels
};

struct ParticleSet {
  std::vector<OpticsGroup> optics;
  std::vector<Particle> particles;
  std::vector<std::string> optics_extra_labels;    ///< e.g. "rlnBeamTiltX" (no '_')
  std::vector<std::string> particle_extra_labels;  ///< e.g. "rlnCoordinateX"
  std::filesystem::path base_dir;  ///< relative image paths resolve against this folder
  /// false when the set was read from a file without per-particle scales (no
  /// rlnCtfScalefactor): every Particle::scale is then 1 by default, not measured.
  bool has_scales = true;

  const OpticsGroup& optics_of(const Particle& p) const;  ///< throws if the group is unknown
  std::filesystem::path stack_path(const Particle& p) const;  ///< base_dir / image.path
  bool has_poses() const;  ///< every particle has a pose (and there is at least one)
  /// Index of an extra particle column, or -1.
  int particle_extra_index(const std::string& label) const;
};

/// The folder a set's relative image paths resolve against when read from the
/// metadata file `file` (RELION and cryoSPARC resolve them against the folder
/// they run in, usually the project folder, not the file's): the first of the
/// current directory, file's folder and each ancestor of it in which the first
/// particle's stack exists; file's folder when none does (or the first image
/// path is absolute, or the set is empty). Absolute and lexically normal.
std::filesystem::path find_image_base_dir(const std::filesystem::path& file, const ParticleSet& set);

/// How a metadata file written for `root` names p's stack: base_dir / image.path
/// (the current directory when base_dir is empty) made absolute and lexically
/// normalised (symbolic links are not resolved), then relative to `root` when
/// it lies inside it, absolute otherwise.
std::string image_path_for(const ParticleSet& set, const Particle& p, const std::filesystem::path& root);

/// Whether the particle has CTF parameters: a defocus or a phase shift. A file
/// without rlnDefocusU/V (and rlnPhaseShift) gives particles without one.
bool has_ctf(const Particle& p);

/// The half set (1 or 2) of every particle, in set order: its own half_set
/// when that is 1 or 2; particles without one are dealt 1, 2, 1, 2, ...
std::vector<int> deal_half_sets(const ParticleSet& set);
/// How many particles deal_half_sets puts into half sets 1 and 2.
std::array<long, 2> half_set_sizes(const ParticleSet& set);

}  // namespace tessera
