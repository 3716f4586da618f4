// Thin RAII wrappers over the SQLite C API used by the SQLite store
// (runtime/store/sqlite_store.cpp and schema.cpp): a Connection that owns a
// sqlite3 handle and knows the path it names in error messages, and a
// Statement prepared once (SQLITE_PREPARE_PERSISTENT) and reused for the
// store's lifetime. Also the one place that turns SQLite result codes into
// Saga Status values, so every error of the store reads the same way:
// "<condition>: <path>", for example "database is full (disk or quota): /x.db".
//
// Neither class is thread-safe; the store gives each connection one owner at a
// time (the writer thread, or whoever holds the reader mutex).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "saga/status.hpp"

namespace saga::store {

// Turns a SQLite result code into a Status that names the condition and the
// database path. `doing` says what the store was doing ("committing a batch")
// and is only used where the condition alone would be unclear (I/O errors,
// unexpected codes). `db` may be null; when given, its error message adds
// detail for unexpected codes.
Status sqlite_error(int rc, sqlite3* db, std::string_view path, std::string_view doing);

// The same, with the operating system's errno of the failed call given
// (sqlite3_system_errno), as a pure function for tests: a full disk can
// surface as an I/O error (creating the -shm file, SQLite code 4874), which
// is reported as a full disk.
Status describe_sqlite_error(int rc, int system_errno, std::string_view detail,
                             std::string_view path, std::string_view doing);

// One prepared statement. Text and blob parameters are bound without copying
// (SQLITE_STATIC): the bound bytes must stay alive and unchanged until the
// statement is reset, which Reset below does at the end of each use.
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement& operator=(Statement&& other) noexcept {
    if (this != &other) {
      sqlite3_finalize(stmt_);
      stmt_ = std::exchange(other.stmt_, nullptr);
    }
    return *this;
  }

  // Compiles `sql` on `db` for repeated use. Returns the SQLite result code.
  int prepare(sqlite3* db, std::string_view sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }

  // Parameters are 1-based, as in SQLite.
  void bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void bind_text(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  // An empty blob is stored as a zero-length blob, never as NULL.
  void bind_blob(int index, const void* data, size_t size) {
    static const char kEmpty = 0;
    sqlite3_bind_blob(stmt_, index, size == 0 ? &kEmpty : data, static_cast<int>(size),
                      SQLITE_STATIC);
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  void reset() { sqlite3_reset(stmt_); }

  // Column accessors are 0-based. NULL reads as 0 or as an empty string.
  int64_t column_int(int index) const { return sqlite3_column_int64(stmt_, index); }
  std::string_view column_text(int index) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
    return p == nullptr ? std::string_view()
                        : std::string_view(p, sqlite3_column_bytes(stmt_, index));
  }
  std::string_view column_blob(int index) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, index));
    return p == nullptr ? std::string_view()
                        : std::string_view(p, sqlite3_column_bytes(stmt_, index));
  }

  // Resets the statement when a use ends, on every path. A statement left
  // un-reset would keep its read snapshot open and stall WAL checkpoints.
  class Reset {
   public:
    explicit Reset(Statement& s) : s_(s) {}
    ~Reset() { s_.reset(); }
    Reset(const Reset&) = delete;
    Reset& operator=(const Reset&) = delete;

   private:
    Statement& s_;
  };

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// One database connection. Statements prepared on it must be destroyed
// before it; the store declares them after the connection for that reason.
class Connection {
 public:
  Connection() = default;
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Opens `path` (creating it when `create` is set; read-only when
  // `read_only` is) with extended result codes, in SQLite's multi-thread
  // mode (the store serialises each connection itself), and installs the
  // busy timeout.
  Status open(const std::string& path, bool create, int busy_timeout_ms, bool read_only = false);
  void close() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  // Runs SQL without results (several statements allowed). Errors are mapped
  // with sqlite_error(..., doing).
  Status exec(const char* sql, std::string_view doing);
  // Runs a statement returning one integer (a PRAGMA read). Errors are mapped
  // with sqlite_error(..., doing).
  Result<int64_t> query_int(const char* sql, std::string_view doing);
  // Runs a statement returning one text value (PRAGMA journal_mode=WAL).
  Result<std::string> query_text(const char* sql, std::string_view doing);
  // Prepares `stmt`; errors say which statement failed to compile.
  Status prepare(Statement& stmt, std::string_view sql);

  Status error(int rc, std::string_view doing) const { return sqlite_error(rc, db_, path_, doing); }

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace saga::store
