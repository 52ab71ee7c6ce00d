#pragma once
/// Scipion set files (`particles.sqlite`, a pwem SetOfParticles) <-> ParticleSet.
///
/// File layout (pyworkflow SqliteFlatMapper): tables Properties(key, value)
/// with the set's attributes as text, Classes(id, label_property, column_name,
/// class_name) mapping each item attribute path to an Objects column, and
/// Objects(id, enabled, label, comment, creation, c01..cNN), one row per item.
/// Columns are found through Classes.label_property, never by position.
///
/// Reading. Only rows with enabled = 1 become particles, in id order. Set-level
/// Properties give the pixel size (_samplingRate, A/px), _hasCtf, _alignment
/// (None / 2D / 3D / Projection), _isPhaseFlipped, _isAmplitudeCorrected, the
/// image size (_firstDim) and the optics: the RELION data_optics STAR text in
/// _acquisition.opticsGroupInfo when present (columns rlnOpticsGroup,
/// rlnOpticsGroupName, rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast;
/// other columns become optics extras), otherwise one group "opticsGroup1" from
/// _acquisition._voltage / _sphericalAberration / _amplitudeContrast. As pwem's
/// RELION writer does, every group's pixel size is the set's _samplingRate and
/// its image size the x of _firstDim (rlnImageSize when _firstDim is absent).
/// Per particle:
///   _index, _filename            -> image (path as stored: relative to the
///                                   project root, which becomes base_dir)
///   _ctfModel._defocusU/V/Angle  -> defocus_u_A / defocus_v_A / defocus_angle_deg
///   _ctfModel._phaseShift        -> phase_shift_deg (_rlnPhaseShift when that is absent)
///   _transform._matrix           -> pose, only when _alignment is Projection:
///       M = [[A^T, A^T s], [0 0 0 1]], s = origin_A / pixel_A (geometry.hpp).
///       For 2D (in-plane psi + shift, not inverted) and 3D (volume alignment,
///       not inverted; pwem's RELION writer refuses it) the matrix means
///       something else: no pose is set and the matrix is not kept.
///   _rlnRandomSubset -> half_set, _rlnCtfBfactor -> ctf_bfactor,
///   _rlnCtfScalefactor -> scale, _rlnOpticsGroup -> optics_group (default:
///   group 1 if defined, else the first group), _coordinate._micName or
///   _rlnMicrographName -> micrograph.
///   Extra columns (RELION names, as scipion-em-relion maps them):
///   _micId -> rlnMicrographId, _classId -> rlnClassNumber,
///   _ctfModel._resolution -> rlnCtfMaxResolution, _ctfModel._fitQuality ->
///   rlnCtfFigureOfMerit, _ctfModel._psdFile -> rlnCtfImage,
///   _coordinate._x/_y -> rlnCoordinateX/Y; any other top-level scalar label
///   `_name` (Integer, Float, String, Boolean) -> extra "name", so `_rlnXxx`
///   -> "rlnXxx" and `_xmipp_zScore` -> "xmipp_zScore". A column that is NULL in
///   every enabled row gives no extra; a NULL value in one row gives "".
///   Integers are written as integers, floats in Python's shortest repr
///   ("0.0", "1e-05"), so the class survives a round trip. The Objects id goes
///   to extra rlnImageId unless that label already exists.
///   Other labels (_acquisition.*, _samplingRate, _ctfModel._defocusRatio,
///   other nested attributes) are not kept; ScipionSetInfo::dropped_labels lists
///   the ones not used at all.
///
/// Writing produces a file pwem loads as a SetOfParticles with the fixture's
/// tables, column types, Classes rows, indexes (_micId, _classId) and
/// Properties; PRAGMA user_version 1. Columns in order: _index, _filename,
/// _samplingRate; when any particle has a non-zero defocus, _ctfModel with
/// _defocusU/V/Angle (as given, not "standardized"), _defocusRatio (U/V, -1 when
/// V <= 0.1 as pwem does), _phaseShift, _psdFile, _resolution, _fitQuality;
/// _acquisition (from the particle's optics group; _magnification, which
/// Tessera does not keep, is written as 50000, pwem's import default, so that
/// pwem's hasAcquisition() holds) with the optics as STAR text in
/// opticsGroupInfo; _transform._matrix when every particle has a pose (then
/// _alignment is Projection, otherwise None and no pose is written); _coordinate
/// (_x, _y rounded to integers, _micId, _micName) when extras rlnCoordinateX/Y
/// exist; _micId, _classId (NULL without their extras); _rlnOpticsGroup when a
/// particle is in a group other than 1; _rlnMicrographName when there are
/// micrograph names but no coordinates; _rlnCtfBfactor / _rlnCtfScalefactor /
/// _rlnRandomSubset when any value differs from 0 / 1 / 0; then every other
/// extra "x" as `_x`, class Integer, Float or String inferred from its values
/// (an extra whose label is also written from a field is left out: the field
/// wins). Objects.id = extra rlnImageId when present (it must hold distinct
/// positive integers), else 1..N. Matrices are JSON text of a 4x4 list of rows
/// in Python's shortest float repr, exactly as pwem writes them.
#include <filesystem>
#include <string>
#include <vector>

#include "tessera/particles.hpp"

namespace tessera {

/// What a Scipion set says about itself beyond the particles.
struct ScipionSetInfo {
  /// Absolute Scipion project folder (image paths are relative to it): the
  /// sqlite path minus Properties._mapperPath; failing that, the nearest folder
  /// above the sqlite in which the first particle's stack exists; failing that,
  /// the parent of the nearest enclosing "Runs" folder.
  std::filesystem::path project_root;
  std::string alignment = "None";           ///< None, 2D, 3D or Projection
  bool has_ctf = false;                     ///< Properties._hasCtf
  bool phase_flipped = false;               ///< Properties._isPhaseFlipped (images are CTF phase-flipped)
  bool amplitude_corrected = false;         ///< Properties._isAmplitudeCorrected
  double pixel_A = 0;                       ///< set sampling rate, A/px
  long total_items = 0;                     ///< rows in Objects, disabled ones included
  std::vector<std::string> dropped_labels;  ///< Classes labels whose values were not kept
};

/// Reads a SetOfParticles sqlite without modifying it (opened read-only).
/// Throws InputError, one line naming the file and the problem: a missing
/// file, not an SQLite database, no Classes or Objects table, items that are
/// not Particle, a required label missing (_index, _filename; the CTF labels
/// when _hasCtf; _transform._matrix when the alignment is Projection), a NULL
/// or non-numeric value where a number is needed, a malformed or non-rotation
/// matrix, no pixel size, no voltage/Cs/amplitude contrast, bad optics STAR
/// text, a particle in an undefined optics group, no project root.
ParticleSet read_scipion_particles(const std::filesystem::path& sqlite, ScipionSetInfo* info = nullptr);

/// Writes the set as a new SetOfParticles sqlite, atomically (a temporary
/// file in the same folder, then renamed). The file must lie inside
/// project_root (Scipion stores paths relative to it); image paths inside the
/// root are stored relative to it, others absolute. Throws InputError naming
/// the file when it already exists (set files are never overwritten, so a set
/// can never replace the file it was read from), when it is outside
/// project_root, when optics groups differ in pixel size (a Scipion set has
/// one), when a particle refers to an undefined optics group, when a pose is
/// not finite, when rlnImageId values are not distinct positive integers, or
/// when an extra label is not a valid attribute name; std::invalid_argument when
/// extra values do not match the labels in number; std::runtime_error when
/// writing fails (the temporary file is removed).
void write_scipion_particles(const std::filesystem::path& sqlite, const ParticleSet& set,
                             const std::filesystem::path& project_root);

}  // namespace tessera
