#pragma once
// What the Scipion set reader and writer (scipion_set_read.cpp,
// scipion_set_write.cpp) share: the item attribute labels, declared once, and
// how values are written as text; internal to the engine (not installed).
#include <array>
#include <optional>
#include <string>

#include "tessera/geometry.hpp"

namespace tessera::detail {

/// A Scipion attribute that scipion-em-relion maps to a RELION label; kept as an extra column.
struct MappedLabel {
  const char* scipion;  ///< Classes.label_property, e.g. "_ctfModel._resolution"
  const char* relion;   ///< extra label, e.g. "rlnCtfMaxResolution"
  const char* cls;      ///< Classes.class_name: Integer, Float or String
};

inline constexpr std::array<MappedLabel, 7> kMappedLabels{{
    {"_micId", "rlnMicrographId", "Integer"},
    {"_classId", "rlnClassNumber", "Integer"},
    {"_ctfModel._resolution", "rlnCtfMaxResolution", "Float"},
    {"_ctfModel._fitQuality", "rlnCtfFigureOfMerit", "Float"},
    {"_ctfModel._psdFile", "rlnCtfImage", "String"},
    {"_coordinate._x", "rlnCoordinateX", "Integer"},
    {"_coordinate._y", "rlnCoordinateY", "Integer"},
}};

/// The entry of kMappedLabels for a RELION label, or nullptr.
const MappedLabel* mapped_by_relion(const std::string& relion);
/// The entry of kMappedLabels for a Scipion label, or nullptr.
const MappedLabel* mapped_by_scipion(const std::string& scipion);

/// Attributes read into Particle fields (not extras).
inline constexpr std::array<const char*, 14> kFieldLabels{
    "_index",
    "_filename",
    "_ctfModel._defocusU",
    "_ctfModel._defocusV",
    "_ctfModel._defocusAngle",
    "_ctfModel._phaseShift",
    "_transform._matrix",
    "_rlnRandomSubset",
    "_rlnCtfBfactor",
    "_rlnCtfScalefactor",
    "_rlnOpticsGroup",
    "_rlnPhaseShift",
    "_coordinate._micName",
    "_rlnMicrographName",
};

/// Integers up to 2^53 are exact in a double (Scipion may store them as REAL).
inline constexpr double kMaxExactInteger = 9007199254740992.0;

/// Python's repr of a float (what json.dumps and str() write): shortest
/// round-trip digits, with ".0" on integral values.
std::string py_float(double v);

/// s without leading and trailing blanks (space, tab, CR, LF).
std::string trim(const std::string& s);

/// The whole text (blanks around it allowed, a leading '+' too) as a finite
/// double, or nullopt.
std::optional<double> parse_double(const std::string& text);

/// The whole text (blanks around it allowed, a leading '+' too) as an integer, or nullopt.
std::optional<long long> parse_integer(const std::string& text);

/// A 4x4 matrix (_transform._matrix) as pwem writes it: JSON text of a list
/// of rows, numbers in Python's repr.
std::string matrix_json(const Mat4& m);

/// Parses matrix_json text and checks that it is a pose: 4x4 finite numbers,
/// last row [0, 0, 0, 1] and a rotation in the upper-left 3x3 (each to 1e-4).
/// Throws std::invalid_argument whose what() says what is wrong, worded to
/// follow the label: "is not JSON", "is not a 4x4 list of rows", ...
Mat4 parse_matrix_json(const std::string& text);

}  // namespace tessera::detail
