#pragma once
// NumPy .npy files holding a one-dimensional structured array (a record per
// row, named fields), as cryoSPARC stores its .cs files; internal to the engine.
//
// Format (numpy/lib/format.py, NEP 1): the magic "\x93NUMPY", a major and a
// minor version byte (1.0: a 2-byte header length; 2.0 and 3.0: 4 bytes; 3.0
// allows UTF-8 in the header), the little-endian header length, then the
// header, a Python dict literal
//   {'descr': [('uid', '<u8'), ('blob/shape', '<u4', (2,)), ...],
//    'fortran_order': False, 'shape': (N,), }
// padded with spaces and a '\n' so that the data starts at a multiple of 64
// bytes (numpy reads any padding), then N rows of packed fields in descr order.
//
// Read: field types u1..u8, i1..i8, f4, f8, b1 (as u1), S<n> (bytes, trailing
// NULs dropped) and U<n> (UTF-32, returned as UTF-8), little-endian ('<', '|',
// or '=' on this little-endian machine), scalar or with a subarray shape;
// unnamed void fields ('', '|V<n>') are padding and skipped. Anything else is
// an InputError naming the file: a file that is not .npy, a truncated one, a
// big-endian field, an object ('O') field (pickled Python objects), a nested
// record, a plain (unstructured) array, an array that is not one-dimensional,
// cryosparc-tools' compressed "\x95CSDAT" format.
// Written: version 1.0 (2.0 when the header needs more than 65535 bytes), the
// fields given, in that order, packed.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::detail::npy {

enum class Kind { unsigned_int, signed_int, real, bytes, unicode };

/// One field of a structured dtype.
struct Field {
  std::string name;
  Kind kind = Kind::real;
  int size = 4;             ///< bytes of one element (bytes: the string length; unicode: 4 x length)
  std::vector<long> shape;  ///< subarray shape, empty for a scalar
  std::size_t offset = 0;   ///< byte offset in a row (set when read)

  long count() const;           ///< elements per row (1 for a scalar)
  std::string typestr() const;  ///< numpy's type string: "<f4", "|S12", "<u8", "<U3"
  bool numeric() const { return kind == Kind::unsigned_int || kind == Kind::signed_int || kind == Kind::real; }
  bool integral() const { return kind == Kind::unsigned_int || kind == Kind::signed_int; }
};

/// A structured array read from a .npy file.
class Table {
 public:
  Table(std::vector<Field> fields, std::size_t row_size, std::size_t rows, std::string data);

  const std::vector<Field>& fields() const { return fields_; }
  std::size_t rows() const { return rows_; }
  /// The field named `name`, or nullptr.
  const Field* find(std::string_view name) const;

  /// Element i of a numeric field. A float32 becomes the double of its shortest
  /// decimal form (0.6575f -> 0.6575, which rounds back to the same float32).
  double number(std::size_t row, const Field& f, long i = 0) const;
  /// Element i of an integer field, exactly (a negative value is an error:
  /// std::out_of_range).
  std::uint64_t unsigned_number(std::size_t row, const Field& f, long i = 0) const;
  /// Element i of a bytes or unicode field as UTF-8 text.
  std::string text(std::size_t row, const Field& f, long i = 0) const;
  /// The whole value as text: integers in decimal, floats in their shortest
  /// round-trip form always with a '.' or an exponent ("-1.0", "0.6575",
  /// "1e-05"), strings as they are; subarray elements joined by ','.
  std::string format(std::size_t row, const Field& f) const;

 private:
  const unsigned char* at(std::size_t row, const Field& f, long i) const;

  std::vector<Field> fields_;
  std::size_t row_size_ = 0, rows_ = 0;
  std::string data_;
};

/// Reads a .npy file holding a one-dimensional structured array.
Table read(const std::filesystem::path& file);

/// A field to write and its values, rows x count() of them, in the vector
/// its kind uses (texts for bytes, reals for real, the integer vectors for
/// integers). For bytes, size 0 means "the longest text's length, at least 1".
struct Column {
  Field field;
  std::vector<double> reals;
  std::vector<std::int64_t> signed_ints;
  std::vector<std::uint64_t> unsigned_ints;
  std::vector<std::string> texts;
};

/// The bytes of a .npy file holding these columns as one structured array of
/// `rows` rows. Throws std::invalid_argument when a column's values do not
/// number rows x count(), a value does not fit its type (an integer out of
/// range, a text longer than the field) or a kind is unicode (not written).
std::string encode(const std::vector<Column>& columns, std::size_t rows);

/// Text from a file quoted in a one-line message: control characters and
/// bytes beyond ASCII escaped (\n, \r, \t, \xNN).
std::string printable(std::string_view text);

/// Shortest decimal text of a float32 that reads back to it, with a '.' or an
/// exponent ("-1.0", "0.6575", "1e-05", "inf", "nan").
std::string format_float(float v);

}  // namespace tessera::detail::npy
