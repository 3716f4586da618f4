// pg_notify_bench: how long a `sagactl worker` on PostgreSQL takes to act on
// work that another process committed, woken by LISTEN/NOTIFY and by
// polling only (--poll-only). Two figures per case, the median and p90 of
// --samples each:
//   * new instance: from the enqueue (Engine::enqueue, as `sagactl start`,
//     its commit included) to the worker's `started` event;
//   * cancel: from the post (Engine::cancel, as `sagactl cancel`, its commit
//     included) to the worker's `cancelled` event.
// Both times are the engines' clocks (this process's before the call, the
// worker's in its history event), on one machine. Each case gets a fresh
// database on the server of --url and a worker of its own; before each
// enqueue a pause drawn from [0, --poll-ms) keeps the figures out of phase
// with the poll. Polling only, the worker claims every --poll-ms and looks
// at the inbox every 50 ms (EngineOptions::inbox_watch); with notifications
// both wait on the notification, --poll-ms being the fallback.
//
//   pg_notify_bench --url postgresql://postgres:PW@127.0.0.1:PORT/postgres
//                   [--samples 40] [--poll-ms 500] [--sagactl PATH]
#include <fcntl.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"

namespace {

constexpr const char* kSaga = "saga nap() {\n  step nap { do sleep(for: 1h) }\n}\n";

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first column of the first row of `sql` on `c`, as text ("" if none).
std::string one(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  std::string out;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
  PQclear(r);
  return out;
}

// `url` with its database replaced by `db`.
std::string with_database(const std::string& url, const std::string& db) {
  size_t slash = url.find('/', url.find("://") + 3);
  size_t query = url.find('?', slash);
  return url.substr(0, slash + 1) + db + (query == std::string::npos ? "" : url.substr(query));
}

// The time of instance `id`'s first `kind` event, waiting up to 30 s; -1 if none.
int64_t event_ms(PGconn* c, const std::string& id, const char* kind) {
  const std::string sql = fmt::format(
      "SELECT time_ms FROM history WHERE instance = '{}' AND kind = '{}'::bytea ORDER BY seq "
      "LIMIT 1",
      id, kind);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    std::string t = one(c, sql);
    if (!t.empty()) return std::atoll(t.c_str());
    // How often this benchmark reads, not what it measures (the worker's
    // event time).
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return -1;
}

struct Figures {
  std::vector<double> fresh, cancel;
};

bool run_case(const std::string& url, const std::string& sagactl, bool notify, int samples,
              int poll_ms, Figures& out) {
  const std::string db = fmt::format("notify_bench_{}_{}", ::getpid(), notify ? "listen" : "poll");
  PGconn* admin = PQconnectdb(url.c_str());
  if (PQstatus(admin) != CONNECTION_OK) {
    std::fprintf(stderr, "pg_notify_bench: %s", PQerrorMessage(admin));
    PQfinish(admin);
    return false;
  }
  PQsetNoticeProcessor(
      admin, [](void*, const char*) {}, nullptr);  // "does not exist, skipping"
  PQclear(PQexec(admin, fmt::format("DROP DATABASE IF EXISTS {}", db).c_str()));
  PQclear(PQexec(admin, fmt::format("CREATE DATABASE {}", db).c_str()));
  const std::string db_url = with_database(url, db);

  saga::EngineOptions options;
  options.database = db_url;
  options.inbox_watch = std::chrono::milliseconds(0);  // This engine runs nothing.
  auto engine = saga::Engine::open(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "pg_notify_bench: %s\n", engine.status().message().c_str());
    return false;
  }
  auto image = saga::compiler::compile_to_image("nap.saga", kSaga);
  auto hash = image.ok() ? (*engine)->load_program(image.value())
                         : saga::Result<std::string>(image.status());
  if (!hash.ok()) {
    std::fprintf(stderr, "pg_notify_bench: %s\n", hash.status().message().c_str());
    return false;
  }

  const std::string log = fmt::format("/tmp/{}.log", db);
  std::vector<std::string> args = {sagactl, "worker",    "--db",
                                   db_url,  "--poll-ms", std::to_string(poll_ms)};
  if (!notify) args.push_back("--poll-only");
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {  // Only async-signal-safe calls until exec (this process has threads).
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Ready once it printed its first line.
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(log);
    std::string line;
    if (std::getline(in, line) && line.find("worker on") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  PGconn* c = PQconnectdb(db_url.c_str());
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pause(0, poll_ms - 1);
  bool ok = PQstatus(c) == CONNECTION_OK;
  for (int i = 0; i < samples && ok; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
    int64_t t0 = wall_ms();
    auto id = (*engine)->enqueue(hash.value(), "nap", nlohmann::json::object());
    if (!id.ok()) break;
    int64_t started = event_ms(c, id.value(), "started");
    // The cancel goes when the instance waits in its sleep (its fiber row
    // committed), as an operator's would.
    std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng) / 10));
    int64_t t1 = wall_ms();
    saga::Status cancelled = (*engine)->cancel(id.value());
    int64_t ended = cancelled.ok() ? event_ms(c, id.value(), "cancelled") : -1;
    if (started < 0 || ended < 0) {
      std::fprintf(stderr, "pg_notify_bench: instance %s not acted on (see %s)\n",
                   id.value().c_str(), log.c_str());
      ok = false;
      break;
    }
    out.fresh.push_back(static_cast<double>(started - t0));
    out.cancel.push_back(static_cast<double>(ended - t1));
  }
  PQfinish(c);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  engine->reset();
  PQclear(PQexec(admin, fmt::format("DROP DATABASE IF EXISTS {}", db).c_str()));
  PQfinish(admin);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, sagactl = SAGACTL;
  int samples = 40, poll_ms = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: pg_notify_bench --url POSTGRESQL_URL [--samples N] [--poll-ms MS] "
          "[--sagactl PATH]\n"
          "The time from a commit in this process (an enqueue, a cancel) to a sagactl worker\n"
          "acting on it, woken by LISTEN/NOTIFY and by polling only (--poll-only): median and\n"
          "p90 of N samples each. Creates and drops databases on the server of the URL.\n");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "pg_notify_bench: %s wants a value (--help)\n", a.c_str());
      return 2;
    }
    if (a == "--url") {
      url = argv[++i];
    } else if (a == "--samples") {
      samples = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--poll-ms") {
      poll_ms = std::max(10, std::atoi(argv[++i]));
    } else if (a == "--sagactl") {
      sagactl = argv[++i];
    } else {
      std::fprintf(stderr, "pg_notify_bench: unknown option %s (--help)\n", a.c_str());
      return 2;
    }
  }
  if (url.empty()) {
    std::fprintf(stderr, "pg_notify_bench: --url is required (--help)\n");
    return 2;
  }
  std::printf("pg_notify_bench: %d samples per case, worker --poll-ms %d\n", samples, poll_ms);
  std::printf("%-34s %22s %22s\n", "case", "new instance p50/p90", "cancel p50/p90");
  for (bool notify : {true, false}) {
    Figures f;
    if (!run_case(url, sagactl, notify, samples, poll_ms, f)) return 1;
    std::sort(f.fresh.begin(), f.fresh.end());
    std::sort(f.cancel.begin(), f.cancel.end());
    std::printf("%-34s %14.0f / %4.0f ms %14.0f / %4.0f ms\n",
                notify ? "LISTEN/NOTIFY" : "polling only (--poll-only)",
                saga::bench::quantile_of_sorted(f.fresh, 500),
                saga::bench::quantile_of_sorted(f.fresh, 900),
                saga::bench::quantile_of_sorted(f.cancel, 500),
                saga::bench::quantile_of_sorted(f.cancel, 900));
  }
  return 0;
}
