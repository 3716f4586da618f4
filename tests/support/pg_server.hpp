// The PostgreSQL server the tests use: one private cluster per test run
// (tests/support/pg_cluster.sh), shared by every test of every binary that
// needs it, with a fresh database per test.
//
// Under ctest the fixture `pg` (tests/CMakeLists.txt) starts the cluster
// before the first test that needs it and stops it after the last, and
// passes its directory in $SAGA_TEST_PG_DIR (or SAGA_TEST_STORE=postgresql:DIR). A test binary run
// on its own starts a cluster of its own in a temporary directory on first use and stops it when it
// exits. Tests link libpq (PkgConfig::LIBPQ).
#pragma once

#include <fmt/format.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace saga::test {

class PgServer {
 public:
  // The shared server; started on first use. ok() is false (and error()
  // says why) when it could not be started.
  static PgServer& get() {
    static PgServer server(false);
    return server;
  }
  // A server of its own, for a test that restarts it (the shared one serves
  // tests running in parallel). Stopped and deleted with the object.
  static std::unique_ptr<PgServer> start_private() {
    return std::unique_ptr<PgServer>(new PgServer(true));
  }
  ~PgServer() {
    if (own_) {
      script("stop");
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(dir_).parent_path(), ec);
    }
  }
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  bool ok() const { return !url_.empty(); }
  const std::string& error() const { return error_; }
  // The superuser's URL, database `postgres`.
  const std::string& admin_url() const { return url_; }
  int port() const { return port_; }

  // Creates an empty database and returns its URL.
  std::string fresh_database(const std::string& prefix = "t") {
    static std::atomic<int> counter{0};
    std::string name = fmt::format("{}_{}_{}", prefix, ::getpid(), counter++);
    std::string sql = fmt::format("CREATE DATABASE \"{}\"", name);
    std::string failed = exec(url_, sql);
    if (!failed.empty()) return {};
    return url_for(name);
  }
  std::string url_for(const std::string& db, const std::string& password = "saga-test") const {
    return fmt::format("postgresql://postgres:{}@127.0.0.1:{}/{}", password, port_, db);
  }

  // Runs SQL (no results); returns the error, or "" on success.
  static std::string exec(const std::string& url, const std::string& sql) {
    PGconn* c = PQconnectdb(url.c_str());
    std::string error;
    if (PQstatus(c) != CONNECTION_OK) {
      error = PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, sql.c_str());
      auto st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
      PQclear(r);
    }
    PQfinish(c);
    return error;
  }
  // The first column of the first row of a query, as text ("" on error).
  static std::string query(const std::string& url, const std::string& sql) {
    PGconn* c = PQconnectdb(url.c_str());
    std::string out;
    if (PQstatus(c) == CONNECTION_OK) {
      PGresult* r = PQexec(c, sql.c_str());
      if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
      PQclear(r);
    }
    PQfinish(c);
    return out;
  }

  // Stops the server (fast shutdown) and starts it again on the same port.
  bool restart() { return script("restart"); }
  bool stop_server() { return script("stop-only"); }

 private:
  explicit PgServer(bool own) {
    std::string shared = own ? "" : shared_dir();
    if (!shared.empty()) {
      dir_ = shared;
      if (!std::filesystem::exists(dir_ + "/url")) {
        // The fixture was not started (a test run outside ctest with the
        // variable set): start it here.
        if (!script("start")) return;
      }
    } else {
      std::string base = std::filesystem::temp_directory_path() / "saga-test-pg-XXXXXX";
      if (mkdtemp(base.data()) == nullptr) {
        error_ = "mkdtemp failed";
        return;
      }
      // The server's user (`postgres`, when the tests run as root) must reach it.
      std::filesystem::permissions(base, std::filesystem::perms::owner_all |
                                             std::filesystem::perms::group_exec |
                                             std::filesystem::perms::others_exec);
      dir_ = base + "/cluster";
      own_ = true;
      if (!script("start")) return;
    }
    std::ifstream in(dir_ + "/url");
    std::getline(in, url_);
    std::ifstream port(dir_ + "/port");
    port >> port_;
    if (url_.empty()) error_ = "no url in " + dir_;
  }
  // $SAGA_TEST_PG_DIR, or the DIR of SAGA_TEST_STORE=postgresql:DIR (one
  // variable, for test copies that run a whole suite on PostgreSQL).
  static std::string shared_dir() {
    if (const char* dir = std::getenv("SAGA_TEST_PG_DIR"); dir && *dir) return dir;
    const char* store = std::getenv("SAGA_TEST_STORE");
    std::string s = store ? store : "";
    return s.rfind("postgresql:", 0) == 0 ? s.substr(11) : "";
  }

  bool script(const char* cmd) {
    std::string sh = std::string(SAGA_SOURCE_DIR) + "/tests/support/pg_cluster.sh";
    std::string line = fmt::format("bash '{}' {} '{}' >'{}.log' 2>&1", sh, cmd, dir_, dir_);
    if (std::system(line.c_str()) != 0) {
      std::ifstream log(dir_ + ".log");
      error_ = fmt::format("cannot {} the test PostgreSQL in {}: {}", cmd, dir_,
                           std::string(std::istreambuf_iterator<char>(log), {}));
      return false;
    }
    return true;
  }

  std::string dir_;
  std::string url_;
  std::string error_;
  int port_ = 0;
  bool own_ = false;
};

}  // namespace saga::test
