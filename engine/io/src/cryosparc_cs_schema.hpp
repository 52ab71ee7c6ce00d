#pragma once
// The cryoSPARC particle fields Tessera reads and writes (cryosparc_cs.hpp
// documents the mapping): their names and types in one place; internal.
#include <string>
#include <string_view>
#include <vector>

#include "npy.hpp"

namespace tessera::detail::cs {

namespace field {
inline constexpr std::string_view uid = "uid";
inline constexpr std::string_view blob_path = "blob/path";
inline constexpr std::string_view blob_idx = "blob/idx";
inline constexpr std::string_view blob_shape = "blob/shape";
inline constexpr std::string_view blob_psize = "blob/psize_A";
inline constexpr std::string_view blob_sign = "blob/sign";
inline constexpr std::string_view blob_import_sig = "blob/import_sig";
inline constexpr std::string_view ctf_type = "ctf/type";
inline constexpr std::string_view exp_group = "ctf/exp_group_id";
inline constexpr std::string_view kv = "ctf/accel_kv";
inline constexpr std::string_view cs_mm = "ctf/cs_mm";
inline constexpr std::string_view amp_contrast = "ctf/amp_contrast";
inline constexpr std::string_view df1 = "ctf/df1_A";
inline constexpr std::string_view df2 = "ctf/df2_A";
inline constexpr std::string_view df_angle = "ctf/df_angle_rad";
inline constexpr std::string_view phase_shift = "ctf/phase_shift_rad";
inline constexpr std::string_view scale = "ctf/scale";
inline constexpr std::string_view scale_const = "ctf/scale_const";
inline constexpr std::string_view bfactor = "ctf/bfactor";
inline constexpr std::string_view split = "alignments3D/split";
inline constexpr std::string_view shift = "alignments3D/shift";
inline constexpr std::string_view pose = "alignments3D/pose";
inline constexpr std::string_view align_psize = "alignments3D/psize_A";
inline constexpr std::string_view klass = "alignments3D/class";
inline constexpr std::string_view micrograph = "location/micrograph_path";
}  // namespace field

/// Extra labels of mapped values (not cs_ extras).
inline constexpr std::string_view kUidLabel = "csUid";
inline constexpr std::string_view kClassLabel = "rlnClassNumber";

/// A field cryoSPARC's particle files have that Tessera does not interpret:
/// written from its cs_ extra when the set has one, else with `value` for
/// every particle.
struct DefaultField {
  std::string_view name;
  npy::Kind kind;
  int size;
  long count;  ///< elements (1: scalar)
  std::string_view value;
};
inline constexpr DefaultField kBlobDefaults[] = {
    {field::blob_sign, npy::Kind::real, 4, 1, "1.0"},
    {field::blob_import_sig, npy::Kind::unsigned_int, 8, 1, "0"},
};
inline constexpr DefaultField kCtfTypeDefault = {field::ctf_type, npy::Kind::bytes, 0, 1, "imported"};
inline constexpr DefaultField kCtfScaleConstDefault = {field::scale_const, npy::Kind::real, 4, 1, "0.0"};
inline constexpr DefaultField kCtfAberrationDefaults[] = {
    {"ctf/shift_A", npy::Kind::real, 4, 2, "0.0,0.0"},
    {"ctf/tilt_A", npy::Kind::real, 4, 2, "0.0,0.0"},
    {"ctf/trefoil_A", npy::Kind::real, 4, 2, "0.0,0.0"},
    {"ctf/tetra_A", npy::Kind::real, 4, 4, "0.0,0.0,0.0,0.0"},
    {"ctf/anisomag", npy::Kind::real, 4, 4, "0.0,0.0,0.0,0.0"},
};

/// The column of a field from text values (one per row, subarray elements
/// separated by ','), typed as cryosparc_cs.hpp describes: `known` when given,
/// else by the field's name, else inferred from the values. Throws InputError
/// naming `file` and the row for a value that does not fit the type.
npy::Column column_from_texts(const std::string& file, std::string_view name, const std::vector<std::string>& texts,
                              const DefaultField* known = nullptr);

}  // namespace tessera::detail::cs
