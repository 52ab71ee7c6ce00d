#include "sqlite_db.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "tessera/error.hpp"

namespace tessera::detail {
namespace {

// SQLite's messages may quote the file's own text (a malformed schema, a column name), line
// breaks included: messages are kept on one line.
[[noreturn]] void fail(SqliteMode mode, std::string message) {
  std::replace_if(
      message.begin(), message.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }, ' ');
  if (mode == SqliteMode::read) throw InputError(message);
  throw std::runtime_error(message);
}

}  // namespace

// ------------------------------------------------------------ SqliteStatement

// finalize repeats the last step()'s result code, which step() already checked
void SqliteStatement::Finalize::operator()(sqlite3_stmt* s) const {
  sqlite3_finalize(s);
}

SqliteStatement::SqliteStatement(sqlite3* db, const std::string& sql, std::string file, SqliteMode mode)
    : db_(db), file_(std::move(file)), mode_(mode) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) error(rc, sql);
}

bool SqliteStatement::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  error(rc, sqlite3_sql(stmt_.get()));
}

void SqliteStatement::reset() {
  const int rc = sqlite3_reset(stmt_.get());
  if (rc != SQLITE_OK) error(rc, "reset");
}

void SqliteStatement::bind(int index, const SqliteValue& v) {
  sqlite3_stmt* s = stmt_.get();
  int rc = SQLITE_OK;
  if (std::holds_alternative<std::monostate>(v)) rc = sqlite3_bind_null(s, index);
  if (const auto* i = std::get_if<long long>(&v)) rc = sqlite3_bind_int64(s, index, *i);
  if (const auto* d = std::get_if<double>(&v)) rc = sqlite3_bind_double(s, index, *d);
  if (const auto* t = std::get_if<std::string>(&v))
    rc = sqlite3_bind_text(s, index, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) error(rc, "bind");
}

SqliteValue SqliteStatement::column(int col) const {
  sqlite3_stmt* s = stmt_.get();
  switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER:
      return static_cast<long long>(sqlite3_column_int64(s, col));
    case SQLITE_FLOAT:
      return sqlite3_column_double(s, col);
    case SQLITE_NULL:
      return std::monostate{};
    default: {  // TEXT (a BLOB is read as its bytes)
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
      if (p == nullptr && sqlite3_errcode(db_) == SQLITE_NOMEM) fail(mode_, file_ + ": out of memory");
      return std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, col)));
    }
  }
}

std::string SqliteStatement::text(int col) const {
  const SqliteValue v = column(col);
  if (const auto* t = std::get_if<std::string>(&v)) return *t;
  if (const auto* i = std::get_if<long long>(&v)) return std::to_string(*i);
  return "";
}

void SqliteStatement::error(int rc, const std::string& what) const {
  if ((rc & 0xff) == SQLITE_NOTADB) fail(mode_, file_ + ": not an SQLite database");
  fail(mode_, fmt::format("{}: SQLite error ({}) in '{}'", file_, sqlite3_errmsg(db_), what));
}

// ------------------------------------------------------------ SqliteDb

// only on error paths; close() checks
void SqliteDb::Close::operator()(sqlite3* db) const {
  sqlite3_close_v2(db);
}

SqliteDb::SqliteDb(const std::filesystem::path& path, SqliteMode mode) : file_(path.string()), mode_(mode) {
  const int flags = mode == SqliteMode::read ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(file_.c_str(), &raw, flags, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK)
    fail(mode, fmt::format("{}: cannot open: {}", file_, raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
}

SqliteStatement SqliteDb::prepare(const std::string& sql) {
  return SqliteStatement(db_.get(), sql, file_, mode_);
}

void SqliteDb::exec(const std::string& sql) {
  SqliteStatement s = prepare(sql);
  while (s.step()) {
  }
}

bool SqliteDb::has_table(const std::string& name) {
  SqliteStatement s = prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?");
  s.bind(1, name);
  return s.step();
}

void SqliteDb::close() {
  const int rc = sqlite3_close(db_.get());
  if (rc != SQLITE_OK) fail(mode_, fmt::format("{}: cannot close: {}", file_, sqlite3_errstr(rc)));
  db_.release();
}

}  // namespace tessera::detail
