#pragma once
/// Generic STAR files as RELION reads and writes them.
///
/// A file is a sequence of `data_<name>` blocks. Each block is either a table
/// (`loop_`, then `_label` lines, then one row of values per line) or a list of
/// `_label value` pairs, kept here as a table with one row. Values are kept as
/// text exactly as written (quotes removed); interpreting them is the caller's
/// business (particles_star.hpp does it for particle sets).
///
/// Reading accepts: `#` comments (whole-line or after a token), `# version N`
/// lines (the first one is kept in StarFile::version), `_label #n` column
/// indices or none, values quoted with "..." or '...' (a quote closes only when
/// followed by white space or the end of the line, as in STAR/CIF; a quoted
/// value cannot hold a carriage return, which ends a line in old Mac files, nor
/// both quote kinds before white space or at its end, which format_star could
/// not write back), blank and white-space-only lines anywhere, CRLF line ends,
/// empty loops, any number of blocks. One row per line: a row whose field count
/// differs from the number of labels is an error. Multi-line `;` text fields and
/// `save_` frames (not used by RELION) are not supported.
///
/// Errors: InputError with one line "<file>:<line>: <problem>" (or
/// "<file>: <problem>" for a missing or unreadable file).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

struct StarTable {
  std::string name;  ///< block name without "data_" ("optics" for data_optics; "" for data_)
  bool is_loop = true;  ///< false: a key-value block (labels + exactly one row)
  std::vector<std::string> labels;  ///< without the leading '_', e.g. "rlnImageName"
  std::vector<std::vector<std::string>> rows;  ///< each row has labels.size() values, unquoted
  /// 1-based line in the source file of each row (for error messages); empty
  /// for tables built in memory. For a key-value block: the line of its first pair.
  std::vector<int> row_lines;

  /// Index of a column (label without '_'), or -1 when absent.
  int column(const std::string& label) const;
  bool has(const std::string& label) const { return column(label) >= 0; }
  /// Value of a label in a key-value block (or in the first row of a loop);
  /// nullopt when the label or the row is absent.
  std::optional<std::string> value(const std::string& label) const;
  /// Source line of row i for messages, 0 when unknown.
  int line_of(std::size_t row) const;
};

struct StarFile {
  std::vector<StarTable> blocks;
  /// The number of the first `# version N` line read (30001 for RELION 3.1),
  /// or nullopt. When set, write_star writes "# version N" before every block.
  std::optional<int> version;

  /// The block named `name` ("optics" or "data_optics"), or nullptr.
  const StarTable* find(const std::string& name) const;
  StarTable* find(const std::string& name);
};

/// Reads a STAR file. Throws InputError naming the file and line on any problem.
StarFile read_star(const std::filesystem::path& path);

/// Parses STAR text; `source` is the name used in error messages.
StarFile parse_star(const std::string& text, const std::string& source);

/// STAR text for a file: blocks in order, loops with `#n` column indices and
/// columns right-aligned to their widest value, key-value blocks with labels
/// padded to the longest. Values that need it are quoted (empty, containing
/// white space, or starting with '#', '_', a quote, or a reserved word such as
/// loop_ / data_). Throws std::invalid_argument for a table whose rows do not
/// match its labels, duplicate labels, a key-value block without exactly one
/// row, or a value that cannot be written (a line break, or both quote kinds
/// followed by white space).
std::string format_star(const StarFile& file);

/// Writes format_star(file) atomically: to a temporary file in the same
/// folder, then renamed over path, so readers never see a half-written file.
/// Throws std::runtime_error naming the file when writing fails (the
/// temporary file is removed), std::invalid_argument as format_star.
void write_star(const std::filesystem::path& path, const StarFile& file);

}  // namespace tessera
