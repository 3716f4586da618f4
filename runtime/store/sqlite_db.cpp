// The SQLite connection wrapper and the mapping from SQLite result codes to
// Saga Status values (see sqlite_db.hpp). Every error the SQLite store returns
// goes through sqlite_error(), so the wording of conditions users see (busy,
// read-only, full, corrupt) is defined here and documented in docs/store.md.
#include "runtime/store/sqlite_db.hpp"

#include <fmt/format.h>

#include <cerrno>

namespace saga::store {

// Conditions a user can act on (locked, read-only, full, not a database) get
// a fixed sentence and no SQLite detail, so that tools and tests can match
// them; the rest carry SQLite's own message and code for a bug report.
Status sqlite_error(int rc, sqlite3* db, std::string_view path, std::string_view doing) {
  // The connection's message is only about `rc` when it is the latest error.
  bool latest = db != nullptr && sqlite3_extended_errcode(db) == rc;
  std::string detail = latest ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return describe_sqlite_error(rc, latest ? sqlite3_system_errno(db) : 0, detail, path, doing);
}

Status describe_sqlite_error(int rc, int system_errno, std::string_view detail,
                             std::string_view path, std::string_view doing) {
  const int primary = rc & 0xff;
  if ((primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN) &&
      (system_errno == ENOSPC || system_errno == EDQUOT)) {
    return {StatusCode::kIoError, fmt::format("database is full (disk or quota): {}", path)};
  }
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return {StatusCode::kBusy, fmt::format("database is locked by another process: {}", path)};
    case SQLITE_READONLY:
      if (rc == SQLITE_READONLY_DIRECTORY || rc == SQLITE_READONLY_CANTINIT ||
          rc == SQLITE_READONLY_CANTLOCK) {
        return {
            StatusCode::kIoError,
            fmt::format("database is read-only (its directory or -shm file is not writable): {}",
                        path)};
      }
      return {StatusCode::kIoError, fmt::format("database is read-only: {}", path)};
    case SQLITE_FULL:
      return {StatusCode::kIoError, fmt::format("database is full (disk or quota): {}", path)};
    case SQLITE_IOERR:
      return {StatusCode::kIoError,
              fmt::format("I/O error while {} ({}, SQLite code {}): {}", doing, detail, rc, path)};
    case SQLITE_CANTOPEN:
      return {StatusCode::kIoError, fmt::format("cannot open database ({}): {}", detail, path)};
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return {StatusCode::kIoError, fmt::format("permission denied on database: {}", path)};
    case SQLITE_NOTADB:
      return {StatusCode::kCorrupt,
              fmt::format("not a Saga database: file is not a database: {}", path)};
    case SQLITE_CORRUPT:
      return {StatusCode::kCorrupt, fmt::format("database is corrupt ({}): {}", detail, path)};
    case SQLITE_NOMEM:
      return {StatusCode::kInternal, fmt::format("out of memory while {}: {}", doing, path)};
    case SQLITE_CONSTRAINT:
      return {StatusCode::kInvalidArgument,
              fmt::format("constraint failed while {} ({}): {}", doing, detail, path)};
    default:
      return {StatusCode::kInternal,
              fmt::format("SQLite error while {} ({}, code {}): {}", doing, detail, rc, path)};
  }
}

// SQLite opens files lazily: a file that is not a database, or one that is
// locked, is only reported by the first statement, not here.
Status Connection::open(const std::string& path, bool create, int busy_timeout_ms, bool read_only) {
  close();
  path_ = path;
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX |
              SQLITE_OPEN_EXRESCODE;
  if (create && !read_only) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = sqlite_error(rc, db_, path_, "opening the database");
    close();
    return s;
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  return Status::Ok();
}

Status Connection::exec(const char* sql, std::string_view doing) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : error(rc, doing);
}

Status Connection::prepare(Statement& stmt, std::string_view sql) {
  int rc = stmt.prepare(db_, sql);
  if (rc == SQLITE_OK) return Status::Ok();
  // A statement that does not compile against our own schema is a bug, unless
  // the cause is the file itself (locked, corrupt, unreadable).
  return error(rc, fmt::format("preparing \"{}\"", sql));
}

// Used for one-off statements at open time and by test hooks; they are
// prepared on each call, unlike the store's persistent statements.
Result<int64_t> Connection::query_int(const char* sql, std::string_view doing) {
  Statement stmt;
  int rc = stmt.prepare(db_, sql);
  if (rc != SQLITE_OK) return error(rc, doing);
  rc = stmt.step();
  if (rc == SQLITE_ROW) return stmt.column_int(0);
  if (rc == SQLITE_DONE) return int64_t{0};
  return error(rc, doing);
}

Result<std::string> Connection::query_text(const char* sql, std::string_view doing) {
  Statement stmt;
  int rc = stmt.prepare(db_, sql);
  if (rc != SQLITE_OK) return error(rc, doing);
  rc = stmt.step();
  if (rc == SQLITE_ROW) return std::string(stmt.column_text(0));
  if (rc == SQLITE_DONE) return std::string();
  return error(rc, doing);
}

}  // namespace saga::store
