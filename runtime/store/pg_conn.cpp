// The libpq connection wrapper of the PostgreSQL store (pg_conn.hpp).
#include "runtime/store/pg_conn.hpp"

#include <endian.h>
#include <fmt/format.h>

#include <cstring>

namespace saga::store::pg {

void Params::clear() {
  values_.clear();
  lengths_.clear();
  formats_.clear();
  used_ = 0;
}

void Params::add_raw(const char* data, size_t n) {
  // libpq reads a NULL pointer as SQL NULL: an empty value needs an address.
  values_.push_back(data != nullptr ? data : "");
  lengths_.push_back(static_cast<int>(n));
  formats_.push_back(1);
}

void Params::add_int(int64_t v) {
  if (used_ == owned_.size()) owned_.push_back(std::make_unique<std::string>());
  std::string& s = *owned_[used_++];
  uint64_t be = htobe64(static_cast<uint64_t>(v));
  s.assign(reinterpret_cast<const char*>(&be), sizeof be);
  add_raw(s.data(), s.size());
}

// PostgreSQL's binary array: ndim, has-null flag, element type, then per
// dimension its length and lower bound, then each element as length + bytes.
void Params::add_text_array(const std::vector<std::string>& values) {
  if (used_ == owned_.size()) owned_.push_back(std::make_unique<std::string>());
  std::string& s = *owned_[used_++];
  s.clear();
  auto put32 = [&](uint32_t v) {
    uint32_t be = htobe32(v);
    s.append(reinterpret_cast<const char*>(&be), sizeof be);
  };
  put32(1);
  put32(0);
  put32(static_cast<uint32_t>(PgType::kText));
  put32(static_cast<uint32_t>(values.size()));
  put32(1);
  for (const std::string& v : values) {
    put32(static_cast<uint32_t>(v.size()));
    s += v;
  }
  add_raw(s.data(), s.size());
}

int64_t int_at(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8) return 0;
  uint64_t be;
  std::memcpy(&be, PQgetvalue(r, row, col), sizeof be);
  return static_cast<int64_t>(be64toh(be));
}

std::string_view sqlstate(const PGresult* r) {
  const char* s = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  return s != nullptr ? s : "";
}

Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

namespace {

// libpq's messages end with a newline and may hold several lines.
std::string clean(const char* message) {
  std::string m = message != nullptr ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  for (char& c : m) {
    if (c == '\n') c = ' ';
  }
  return m;
}

bool contains(const std::string& s, const char* what) {
  return s.find(what) != std::string::npos;
}

}  // namespace

Status Connection::connect(const std::string& url, int connect_timeout_s) {
  url_ = url;
  connect_timeout_s_ = connect_timeout_s;
  lost_ = false;
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  // Keywords before dbname are defaults that the URL may override.
  const std::string timeout = std::to_string(connect_timeout_s);
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "saga", url.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr) return {StatusCode::kInternal, "libpq could not allocate a connection"};
  const char* host = PQhost(conn_);
  const char* port = PQport(conn_);
  const char* user = PQuser(conn_);
  const char* db = PQdb(conn_);
  name_ = fmt::format("postgresql://{}@{}:{}/{}", user ? user : "", host ? host : "",
                      port ? port : "", db ? db : "");
  if (PQstatus(conn_) == CONNECTION_OK) return Status::Ok();
  std::string m = clean(PQerrorMessage(conn_));
  if (contains(m, "password authentication failed") || contains(m, "no password supplied") ||
      contains(m, "authentication failed") || contains(m, "pg_hba.conf")) {
    return {StatusCode::kInvalidArgument,
            fmt::format("PostgreSQL refused the login to {}: {} (check the user and the password "
                        "in the URL or in $PGPASSFILE)",
                        name_, m)};
  }
  if (contains(m, "database \"") && contains(m, "does not exist")) {
    return {StatusCode::kNotFound,
            fmt::format("no such PostgreSQL database: {}: {} (create it with createdb)", name_, m)};
  }
  if (contains(m, "invalid") || contains(m, "missing") || contains(m, "unexpected")) {
    if (!contains(m, "connection to server")) {
      return {StatusCode::kInvalidArgument,
              fmt::format("not a PostgreSQL URL libpq accepts: {}", m)};
    }
  }
  return {StatusCode::kIoError, fmt::format("cannot reach PostgreSQL at {}: {}", name_, m)};
}

Status Connection::prepare_all(const std::vector<StatementDef>& defs) {
  for (const StatementDef& d : defs) {
    std::vector<Oid> types;
    for (PgType t : d.types) types.push_back(static_cast<Oid>(t));
    ResultPtr r(PQprepare(conn_, d.name, d.sql, static_cast<int>(types.size()), types.data()));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      return error(r.get(), "preparing statements");
    }
    defs_.push_back(d);
  }
  return Status::Ok();
}

Status Connection::reconnect() {
  std::vector<StatementDef> defs = std::move(defs_);
  defs_.clear();
  Status s = connect(url_, connect_timeout_s_);
  if (s.ok()) s = prepare_all(defs);
  if (!s.ok()) {
    defs_ = std::move(defs);  // Prepared again at the next try.
    if (conn_ != nullptr) {
      PQfinish(conn_);  // Half-prepared: broken() until a reconnect succeeds.
      conn_ = nullptr;
    }
  }
  return s;
}

Status Connection::exec(const char* name, const Params& params, ResultPtr* out, const char* what) {
  ResultPtr r(PQexecPrepared(conn_, name, params.size(), params.values(), params.lengths(),
                             params.formats(), /*resultFormat=*/1));
  ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return error(r.get(), what);
  if (out != nullptr) *out = std::move(r);
  return Status::Ok();
}

Status Connection::exec_sql(const char* sql, const char* what, ResultPtr* out) {
  ResultPtr r(PQexecParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 1));
  ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return error(r.get(), what);
  if (out != nullptr) *out = std::move(r);
  return Status::Ok();
}

Status Connection::exec_script(const char* sql, const char* what) {
  ResultPtr r(PQexec(conn_, sql));
  ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return error(r.get(), what);
  return Status::Ok();
}

Status Connection::enter_pipeline() {
  if (PQenterPipelineMode(conn_) != 1) return connection_error("entering pipeline mode");
  return Status::Ok();
}

Status Connection::exit_pipeline() {
  if (PQpipelineStatus(conn_) == PQ_PIPELINE_OFF) return Status::Ok();
  if (PQexitPipelineMode(conn_) != 1) return connection_error("leaving pipeline mode");
  return Status::Ok();
}

Status Connection::send(const char* name, const Params& params, const char* what) {
  if (PQsendQueryPrepared(conn_, name, params.size(), params.values(), params.lengths(),
                          params.formats(), /*resultFormat=*/1) != 1) {
    return connection_error(what);
  }
  return Status::Ok();
}

Status Connection::send_sql(const char* sql, const char* what) {
  if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 1) != 1) {
    return connection_error(what);
  }
  return Status::Ok();
}

Status Connection::sync(const char* what) {
  if (PQpipelineSync(conn_) != 1) return connection_error(what);
  return Status::Ok();
}

ResultPtr Connection::next_result() {
  ResultPtr r(PQgetResult(conn_));
  if (r != nullptr && PQresultStatus(r.get()) != PGRES_PIPELINE_SYNC) {
    // Each statement's results end with a NULL.
    while (PGresult* more = PQgetResult(conn_)) PQclear(more);
  }
  return r;
}

Status Connection::error(const PGresult* r, const char* what) const {
  if (r == nullptr || broken()) return connection_error(what);
  std::string m = clean(PQresultErrorMessage(r));
  if (m.empty()) m = clean(PQerrorMessage(conn_));
  std::string_view state = sqlstate(r);
  // Class 08: connection exceptions; 57P01..03: the server shut down. No
  // SQLSTATE at all: libpq's own failure (a connection cut while a pipeline
  // was read), after which the protocol state is not to be trusted.
  if (state.empty() || state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0) {
    if (m.empty()) m = "no answer";
    lost_ = true;
    return {StatusCode::kIoError,
            fmt::format("lost the connection to PostgreSQL at {} while {}: {}", name_, what, m)};
  }
  if (state == "40001" || state == "40P01" || state == "55P03") {
    return {StatusCode::kBusy, fmt::format("PostgreSQL at {} while {}: {}", name_, what, m)};
  }
  return {StatusCode::kIoError, fmt::format("PostgreSQL at {} failed {}: {}", name_, what, m)};
}

Status Connection::connection_error(const char* what) const {
  std::string m = conn_ != nullptr ? clean(PQerrorMessage(conn_)) : "no connection";
  return {StatusCode::kIoError,
          fmt::format("lost the connection to PostgreSQL at {} while {}: {}", name_, what, m)};
}

}  // namespace saga::store::pg
