// A PostgreSQL connection for the PostgreSQL store (pg_store.cpp), over
// libpq: connecting with errors that name the server and never the
// password, prepared statements with binary parameters and results, and
// pipeline mode for a batch. Only runtime/store includes this header (it
// pulls in libpq-fe.h).
//
// Every value crosses the wire in binary: text and bytea as their bytes,
// integers as 8-byte int8. So statements declare their parameter types
// (PgType) and select integers as ::int8.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "saga/status.hpp"

namespace saga::store::pg {

// Owns a PGresult.
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

enum class PgType : uint32_t { kText = 25, kBytea = 17, kInt8 = 20, kTextArray = 1009 };

// The parameters of one statement execution. Views passed to add_* must
// stay valid until the statement is sent.
class Params {
 public:
  void clear();
  void add_text(std::string_view v) { add_raw(v.data(), v.size()); }
  void add_bytes(std::string_view v) { add_raw(v.data(), v.size()); }
  void add_int(int64_t v);
  // A text[] in binary array format.
  void add_text_array(const std::vector<std::string>& values);
  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  void add_raw(const char* data, size_t n);
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  // Integers and arrays need storage of their own; a deque-like list keeps
  // pointers into it stable as it grows.
  std::vector<std::unique_ptr<std::string>> owned_;
  size_t used_ = 0;
};

// Reads binary result columns.
inline std::string_view text_at(const PGresult* r, int row, int col) {
  return {PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col))};
}
int64_t int_at(const PGresult* r, int row, int col);  // An int8 column; NULL reads as 0.

// A statement prepared on every (re)connection.
struct StatementDef {
  const char* name;
  const char* sql;
  std::vector<PgType> types;
};

class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects to `url` (a libpq URI or key=value string). Errors: kIoError for
  // a server that cannot be reached, kInvalidArgument for a refused login or
  // a malformed URL, kNotFound for a database that does not exist.
  Status connect(const std::string& url, int connect_timeout_s);
  // Prepares `defs` now and after every reconnect().
  Status prepare_all(const std::vector<StatementDef>& defs);
  // Drops the connection and connects again (after the server restarted or
  // the connection broke), preparing the statements again.
  Status reconnect();
  // The connection is gone: libpq says so, or the server said it is closing
  // it (SQLSTATE class 08, 57P01-57P03) before libpq noticed.
  bool broken() const { return conn_ == nullptr || lost_ || PQstatus(conn_) == CONNECTION_BAD; }

  // Runs a prepared statement (binary results). On failure returns the error
  // and leaves *out empty.
  Status exec(const char* name, const Params& params, ResultPtr* out, const char* what);
  // Runs one SQL statement without parameters (binary results).
  Status exec_sql(const char* sql, const char* what, ResultPtr* out = nullptr);
  // Runs several statements (a migration); no results.
  Status exec_script(const char* sql, const char* what);

  // Pipeline mode: send() queues statements, sync() ends the group, and
  // next_result() reads each statement's result in order (then the sync's).
  Status enter_pipeline();
  Status exit_pipeline();
  Status send(const char* name, const Params& params, const char* what);
  Status send_sql(const char* sql, const char* what);
  Status sync(const char* what);
  // The next statement's result (its terminating NULL read too), or the
  // PGRES_PIPELINE_SYNC result after a sync.
  ResultPtr next_result();

  // The error of a failed result or the connection, as a Status naming the server.
  Status error(const PGresult* r, const char* what) const;
  Status connection_error(const char* what) const;
  // postgresql://user@host:port/db: the server named in messages (no password).
  const std::string& name() const { return name_; }
  PGconn* get() const { return conn_; }

 private:
  PGconn* conn_ = nullptr;
  std::string url_;
  int connect_timeout_s_ = 5;
  std::string name_;
  std::vector<StatementDef> defs_;
  mutable bool lost_ = false;  // Set by error() for a closing server.
};

// The SQLSTATE of a failed result ("" when there is none).
std::string_view sqlstate(const PGresult* r);

}  // namespace saga::store::pg
