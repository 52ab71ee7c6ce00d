#pragma once
/// RELION particle STAR files <-> ParticleSet (particles.hpp).
///
/// Reading, RELION 3.1+ (a data_optics block): data_optics columns
///   rlnOpticsGroup, rlnOpticsGroupName, rlnImagePixelSize (A/px, required),
///   rlnImageSize (px), rlnVoltage (kV), rlnSphericalAberration (mm),
///   rlnAmplitudeContrast
/// fill OpticsGroup (a column that is absent keeps OpticsGroup's default;
/// without rlnOpticsGroup the rows are numbered 1, 2, ...);
/// every other optics column goes to optics_extra_labels / extra as text.
/// data_particles columns
///   rlnImageName (required), rlnOpticsGroup (default 1), rlnMicrographName,
///   rlnDefocusU/V (A), rlnDefocusAngle (deg), rlnPhaseShift (deg),
///   rlnCtfBfactor (A^2), rlnCtfScalefactor (-> scale; absent: ParticleSet::has_scales
///   false), rlnRandomSubset (-> half_set: 0, 1 or 2),
///   rlnAngleRot/Tilt/Psi (deg) + rlnOriginX/Y/ZAngst (A, default 0) -> pose
/// fill Particle. A pose exists only when all three angles are present;
/// otherwise the angle and origin columns that are there stay extra columns.
/// Every other particle column goes to particle_extra_labels / extra unchanged
/// (same text), so writing the set back keeps it.
///
/// Reading, RELION 3.0 and older (no data_optics; the table is data_particles,
/// data_images or data_): optics groups are built, one per distinct
/// (rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast, pixel size) in
/// order of first appearance, named "opticsGroup<n>", with extra
/// rlnImageDimensionality 2. Pixel size = rlnImagePixelSize, else
/// rlnDetectorPixelSize (um) * 1e4 / rlnMagnification. Image size comes from
/// the MRC header of each group's first stack, 0 when that file cannot be read.
/// Origins rlnOriginX/Y/Z (pixels) are converted to Angstrom: into the pose,
/// or, without one, into extra columns rlnOriginX/Y/ZAngst. These columns (and
/// a stray rlnOpticsGroup) are consumed, not kept as extras.
///
/// Image paths: RELION resolves them against the folder it runs in (usually the
/// project folder), not the STAR's folder. ParticleSet::base_dir is set to
/// base_dir when given; otherwise to the first of: the current directory, the
/// STAR's folder, each ancestor of the STAR's folder, in which the first
/// particle's stack exists; falling back to the STAR's folder. base_dir is
/// stored absolute. Image paths are kept as written.
///
/// Errors (InputError, one line naming the file, and the line where one
/// applies): a missing file, no particle table, a missing rlnImageName or
/// pixel size column, a value that is not a number where one is needed, a bad
/// image name, duplicate optics group numbers, a particle referring to an
/// optics group that data_optics does not define, a rlnRandomSubset other than
/// 0, 1 or 2, a RELION 3.0 table with both rlnOriginX and rlnOriginXAngst (or Y, Z).
#include <filesystem>
#include <optional>

#include "tessera/particles.hpp"
#include "tessera/star.hpp"

namespace tessera {

ParticleSet read_particles_star(const std::filesystem::path& star,
                                std::optional<std::filesystem::path> base_dir = {});

/// The particle set as a RELION 3.1 STAR (data_optics then data_particles,
/// version 30001). Image paths are base_dir / image.path made absolute and
/// lexically normalised (symbolic links are not resolved), then written relative
/// to `paths_relative_to` when they lie inside it, absolute otherwise.
///
/// Columns: optics always rlnOpticsGroup, rlnOpticsGroupName (empty names
/// written as "opticsGroup<n>"), rlnAmplitudeContrast, rlnSphericalAberration,
/// rlnVoltage, rlnImagePixelSize, and rlnImageSize when every group's size is
/// known, then the optics extras. Particles: rlnImageName, rlnOpticsGroup,
/// rlnMicrographName when any is non-empty; rlnDefocusU/V/Angle, rlnPhaseShift,
/// rlnCtfBfactor and rlnCtfScalefactor when any particle has a non-zero defocus
/// (each also when any of its own values differs from the default, 0 or 1);
/// rlnAngleRot/Tilt/Psi + rlnOriginXAngst/YAngst when any particle has a pose
/// (particles without one get zeros), rlnOriginZAngst when any is non-zero;
/// rlnRandomSubset when any half_set is set; then the particle extras. An extra
/// column whose label is also written from a field is left out (the field wins).
/// Numbers are written in the shortest form that reads back to the same double.
/// Throws std::invalid_argument when an optics group's or a particle's extra
/// values do not match the extra labels in number.
StarFile particles_to_star(const ParticleSet& set, const std::filesystem::path& paths_relative_to);

/// Writes particles_to_star(set, paths_relative_to) atomically to `star`
/// (write_star). Typically paths_relative_to is the project folder RELION runs in.
void write_particles_star(const std::filesystem::path& star, const ParticleSet& set,
                          const std::filesystem::path& paths_relative_to);

}  // namespace tessera
