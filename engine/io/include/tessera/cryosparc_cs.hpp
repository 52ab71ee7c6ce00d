#pragma once
/// cryoSPARC particle files (`.cs`) <-> ParticleSet (particles.hpp).
///
/// A .cs file is a NumPy .npy file holding one structured array, a row per
/// particle (format versions 1.0, 2.0, 3.0, little-endian; fields u1..u8,
/// i1..i8, f4, f8, S, U, scalar or with a subarray shape). cryosparc-tools
/// writes it with Dataset.save (numpy.save of the records, strings as |S).
///
/// Conventions, and the evidence for each:
/// - Pose. alignments3D/pose (3,)f4 is an axis-angle vector v (cryoSPARC calls
///   it a Rodrigues vector): the rotation by |v| radians counter-clockwise about
///   v/|v| (cryoSPARC staff, discuss.cryosparc.com "It's time I admit I don't
///   know what Rodrigues vectors are"). With R(v) = I + sin t [n]x + (1 - cos t)
///   [n]x^2 (t = |v|, n = v/t, the usual right-handed rotation), RELION's matrix
///   is its transpose: A(rot, tilt, psi) = R(v)^T. Evidence: (1) pyem's
///   csparc2star computes rot2euler(expmap(v)), and its expmap, contributed by
///   cryoSPARC's author (asarnow/pyem pull request 5, "the expmap function is
///   from cryoSPARC"; reconstructions from the converted STAR verified there),
///   builds I + sin t K + (1 - cos t) K^2 with K = -[n]x, i.e. R(v)^T, and
///   rot2euler decomposes RELION's A (its euler2rot is RELION's
///   Euler_angles2matrix); (2) cryoDRGN's parse_pose_csparc takes the standard
///   expmap (lie_tools: K = [n]x) and transposes it, and its parse_pose_star
///   takes R_from_relion(rot, tilt, psi), which works out to RELION's A: the two
///   agree. Checked physically by tests/interop/cryosparc: numpy projections of
///   the simulated map computed from the .cs alone with these conventions
///   reproduce Tessera's noise-free images (RELION's image model, checked
///   against relion_project): mean correlation 0.999, against 0.58 for R(pose)
///   instead of its transpose, 0.32 for the opposite shift sign, 0.20 for a
///   1-based blob/idx. That ties the file to the images under the conventions
///   above; cryoSPARC itself (not available here) could not be run on it.
/// - Shift. alignments3D/shift (2,)f4 is in pixels of alignments3D/psize_A and
///   has rlnOrigin's sign (no flip): pyem maps it to rlnOriginX/Y (pixels)
///   unchanged, cryoDRGN treats the .cs shift and rlnOriginX/Y alike. So
///   rlnOriginX/YAngst = shift * alignments3D/psize_A (blob/psize_A when that
///   field is absent or not positive); the image content sits at -origin.
/// - Defocus: df1_A, df2_A are RELION's DefocusU, DefocusV (Angstrom);
///   df_angle_rad and phase_shift_rad are radians (pyem converts both with
///   rad2deg), stored here in degrees.
/// - Image index: blob/idx is 0-based (pyem: index + 1 becomes the "%06d@" of
///   rlnImageName), ImageRef::index 1-based. Paths in blob/path are relative to
///   the cryoSPARC project folder; a leading '>' (jobs exported from cryoSPARC)
///   is removed, as pyem does.
/// - Half sets and classes: alignments3D/split 0/1 -> rlnRandomSubset 1/2,
///   alignments3D/class 0-based -> rlnClassNumber class + 1 (pyem's +1 for both).
/// - Optics groups: ctf/exp_group_id is 0-based where RELION's groups start at
///   1 (pyem: rlnOpticsGroup = exp_group_id + 1).
///
/// Reading, field by field (the required ones: blob/path, blob/idx,
/// blob/psize_A; every other one may be absent):
///   uid <u8                -> extra "csUid" (decimal text)
///   blob/path |S           -> image.path (leading '>' removed)
///   blob/idx <u4           -> image.index = idx + 1
///   blob/psize_A <f4       -> OpticsGroup::pixel_A
///   blob/shape (2,)<u4     -> OpticsGroup::image_size (must be square; absent: 0)
///   ctf/accel_kv, ctf/cs_mm, ctf/amp_contrast -> OpticsGroup voltage_kV, cs_mm,
///                             amplitude_contrast (absent: OpticsGroup's defaults)
///   ctf/exp_group_id <u4   -> optics groups, see below
///   ctf/df1_A, ctf/df2_A   -> defocus_u_A, defocus_v_A
///   ctf/df_angle_rad       -> defocus_angle_deg;  ctf/phase_shift_rad -> phase_shift_deg
///   ctf/scale              -> scale (absent: ParticleSet::has_scales false);
///   ctf/bfactor            -> ctf_bfactor
///   alignments3D/pose, /shift, /psize_A -> pose (as above; shift absent: 0;
///                             origin_z_A 0), only when alignments3D/pose exists
///   alignments3D/split     -> half_set 1 or 2; when every particle has the same
///                             split, no split was made and half_set stays 0 (pyem
///                             drops such a column too)
///   alignments3D/class     -> extra "rlnClassNumber" = class + 1
///   location/micrograph_path -> micrograph
///   every other field      -> extra "cs_<field>" with each '/' written "__"
///                             (location/center_x_frac -> cs_location__center_x_frac:
///                             a name RELION, Scipion and Python accept), its value
///                             as text: integers in decimal, floats shortest with a
///                             '.' or an exponent ("-1.0", as Python prints them),
///                             subarray elements joined by ',' ("0.0,0.0").
///   Dropped: fields whose name holds "__" or a character other than letters,
///   digits, '_' and '/', and subarrays of strings.
/// Optics groups: one per distinct (ctf/exp_group_id when present, voltage,
/// Cs, amplitude contrast, pixel size, image size), in order of first
/// appearance, named "opticsGroup<n>". They are numbered exp_group_id + 1 when
/// each exp_group_id value gives exactly one group, 1, 2, ... otherwise.
/// Float32 values become the double of their shortest decimal form (0.6575f ->
/// 0.6575), so a STAR written from the set shows the values cryoSPARC shows.
/// ParticleSet::base_dir: base_dir when given, else find_image_base_dir(cs)
/// (the current directory, the .cs's folder or an ancestor of it in which the
/// first particle's stack exists: the cryoSPARC project folder for a .cs in a
/// job folder). The whole file is read into memory.
///
/// Errors (InputError, one line naming the file; a row is named by its 0-based
/// number): a missing file, not a .npy file (cryosparc-tools' compressed CSDAT
/// format included), a big-endian or object ('O') field, a plain array, no
/// blob/path or blob/idx or blob/psize_A (e.g. a passthrough file), a mapped
/// field of the wrong type or shape (a pose that is not 3 numbers), a
/// non-finite value or a pixel size that is not positive in a mapped field
/// (or a pose or origin that overflows), an empty blob/path or one holding a
/// NUL byte, a non-square blob/shape, alignments3D/split other than 0 or 1.
///
/// Writing produces the fields of cryoSPARC's own particle files
/// (cryosparc-tools' T20S particle fixture, an Extract job's output), in this
/// order, with these types:
///   uid <u8                 extra csUid (a decimal uint64) where a particle has
///                           one not used by an earlier particle, else a new random
///                           64-bit uid from a fixed-seed generator (the same set
///                           gets the same uids)
///   blob/path |S<n>         image_path_for(set, p, paths_relative_to)
///   blob/idx <u4            image.index - 1
///   blob/shape (2,)<u4      (image_size, image_size); an unknown size (0) is read
///                           from the MRC header of the group's first stack
///   blob/psize_A <f4, blob/sign <f4, blob/import_sig <u8
///   ctf/type |S<n>, ctf/exp_group_id <u4 (= optics group - 1), ctf/accel_kv,
///   ctf/cs_mm, ctf/amp_contrast, ctf/df1_A, ctf/df2_A, ctf/df_angle_rad,
///   ctf/phase_shift_rad, ctf/scale, ctf/scale_const <f4, ctf/shift_A (2,)<f4,
///   ctf/tilt_A (2,)<f4, ctf/trefoil_A (2,)<f4, ctf/tetra_A (4,)<f4,
///   ctf/anisomag (4,)<f4, ctf/bfactor <f4
///   alignments3D/split <u4  when any half_set is set (unassigned particles get
///                           deal_half_sets' 1, 2, 1, 2, ...), half_set - 1
///   alignments3D/shift (2,)<f4, alignments3D/pose (3,)<f4, alignments3D/psize_A <f4
///                           when any particle has a pose (one without gets
///                           zeros, as in a STAR); origin_z_A is not written
///   alignments3D/class <u4  when extra rlnClassNumber exists (positive integers)
///   location/micrograph_path |S<n>  when any micrograph name is set
///   then every other extra "cs_<field>" as <field>, in the set's order.
/// blob/sign, blob/import_sig, ctf/type, ctf/scale_const and the higher-order
/// ctf fields come from their cs_ extras when present (a set read from a .cs),
/// else: sign 1.0, import_sig 0, type "imported" (Tessera's choice), the rest
/// zeros (no aberrations; RELION beam tilt and anisotropic magnification in
/// optics extras are not converted). blob/sign: as far as known (not checked
/// against cryoSPARC itself), cryoSPARC multiplies a stack's images by it, -1
/// for the protein-dark stacks its Extract job writes; Tessera's and RELION's
/// stacks have protein white, hence 1. Reading does not apply it (it stays the
/// extra cs_blob__sign): a stack with sign -1 must have its contrast inverted
/// before Tessera's programs use it. An extra cs_ field's type is that of
/// cryoSPARC's field when known (the ctf and blob fields above; fields ending
/// in "uid": <u8), else inferred from its values: all integers <u4 (<i8 with
/// a negative one, <u8 beyond 2^32 - 1), all numbers <f4 (<f8 when one is
/// beyond float32's range; a float field keeps its type: its values are
/// written with a '.'), anything else |S; a comma-separated value gives a
/// subarray (n,). Other extra columns (RELION labels such as rlnCoordinateX,
/// rlnImageId) and optics extras are not written.
/// The file is written atomically (write_file_atomically), replacing an
/// existing one, as write_particles_star does. Throws InputError naming the
/// file for a particle in an undefined optics group, an image index that does
/// not fit, an image size that is unknown and unreadable, a value beyond
/// float32's range (or non-zero but rounding to 0) for a float32 field,
/// malformed csUid, rlnClassNumber or cs_ extra values; std::invalid_argument
/// when extra values do not match the extra labels in number;
/// std::runtime_error when writing fails.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "tessera/geometry.hpp"
#include "tessera/particles.hpp"

namespace tessera {

ParticleSet read_cryosparc_particles(const std::filesystem::path& cs,
                                     std::optional<std::filesystem::path> base_dir = {});

void write_cryosparc_particles(const std::filesystem::path& cs, const ParticleSet& set,
                               const std::filesystem::path& paths_relative_to);

/// The rotation by |v| radians counter-clockwise (right-handed) about v/|v|:
/// I + sin t [n]x + (1 - cos t) [n]x^2; the identity for v = 0.
Mat3 rotation_vector_to_matrix(const Vec3& v);
/// Inverse of rotation_vector_to_matrix for a rotation matrix: |v| in [0, pi].
/// For a rotation by pi, where v and -v are the same rotation, the vector whose
/// first non-zero component (beyond 1e-12) is positive. Accurate near 0 and pi
/// (through the quaternion).
Vec3 matrix_to_rotation_vector(const Mat3& r);

/// cryoSPARC's alignments3D/pose as RELION angles: matrix_to_euler(R(pose)^T).
Euler cryosparc_pose_to_euler(const Vec3& pose);
/// RELION angles as cryoSPARC's alignments3D/pose: the rotation vector of A^T.
Vec3 euler_to_cryosparc_pose(const Euler& e);

/// Extra label for a .cs field kept unmapped: "cs_" + field with '/' -> "__";
/// nullopt for a field name that cannot be kept (see above).
std::optional<std::string> cryosparc_extra_label(std::string_view field);
/// The .cs field of an extra label made by cryosparc_extra_label, or nullopt.
std::optional<std::string> cryosparc_field_of_extra(std::string_view label);

}  // namespace tessera
