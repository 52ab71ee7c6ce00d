#pragma once
// A small checked RAII wrapper over an SQLite connection and its prepared
// statements; internal to the engine (not installed).
//
// Every SQLite call is checked. What a failure throws depends on why the
// database was opened: SqliteMode::read means the file comes from outside, so
// a failure says the file is bad (tessera::InputError); SqliteMode::write means
// we are creating it, so a failure is ours or the system's
// (std::runtime_error). Messages are one line and name the file.
#include <filesystem>
#include <memory>
#include <string>
#include <variant>

struct sqlite3;
struct sqlite3_stmt;

namespace tessera::detail {

enum class SqliteMode { read, write };

/// One SQLite value: NULL, INTEGER, REAL or TEXT.
using SqliteValue = std::variant<std::monostate, long long, double, std::string>;

/// A prepared statement of an open SqliteDb (which must outlive it).
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const std::string& sql, std::string file, SqliteMode mode);
  /// Next row: true when there is one, false when done.
  bool step();
  void reset();
  /// Binds a value to the 1-based parameter `index`.
  void bind(int index, const SqliteValue& v);
  /// The 0-based column `col` of the current row; a BLOB is read as its bytes.
  SqliteValue column(int col) const;
  /// The column as text: TEXT as is, INTEGER in decimal, anything else "".
  std::string text(int col) const;

 private:
  struct Finalize {
    void operator()(sqlite3_stmt* s) const;
  };
  [[noreturn]] void error(int rc, const std::string& what) const;
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
  std::string file_;
  SqliteMode mode_;
};

/// An SQLite connection: read-only for SqliteMode::read, read-write (created
/// if absent) for SqliteMode::write.
class SqliteDb {
 public:
  SqliteDb(const std::filesystem::path& path, SqliteMode mode);
  SqliteStatement prepare(const std::string& sql);
  /// Runs a statement to completion, ignoring its rows.
  void exec(const std::string& sql);
  bool has_table(const std::string& name);
  /// Closes the connection, checked (the destructor closes unchecked, for error paths).
  void close();
  const std::string& file() const { return file_; }

 private:
  struct Close {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Close> db_;
  std::string file_;
  SqliteMode mode_;
};

}  // namespace tessera::detail
