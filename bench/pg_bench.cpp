// pg_bench: the 3-step order saga (samples/order.saga, actions that answer at
// once, as the DBOS peer's steps do) on the PostgreSQL store, at several
// concurrencies and with 1..W workers sharing one database. A "worker" here
// is one Engine with its own store (its own writer and reader connections),
// all in this process; sagas are started round-robin over them. For each
// case it prints sagas/s, the median latency of a saga (start to end), the
// CPU of all `postgres` processes per saga and the PostgreSQL transactions
// per saga (pg_stat_database.xact_commit), each the median of --runs runs on
// a fresh database. bench/pg_side_by_side.sh runs it beside DBOS on the same
// cluster; bench/README.md explains the figures.
//
//   pg_bench --url postgresql://postgres:bench@127.0.0.1:55432/postgres
//            [--n 2000] [--runs 3] [--conc 1,64,256] [--workers 1,2,3]
#include <dirent.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "bench/allocator.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Options {
  std::string url;
  int n = 2000;
  int runs = 3;
  std::vector<int> conc = {1, 64, 256};
  std::vector<int> workers = {1, 2, 3};
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::atoi(item.c_str()));
  return out;
}

// The first column of the first row of `sql` on `url`, as text.
std::string query(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::string out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
      fmt::print(stderr, "pg_bench: {}: {}", sql, PQresultErrorMessage(r));
      std::exit(1);
    }
    PQclear(r);
  } else {
    fmt::print(stderr, "pg_bench: cannot connect: {}", PQerrorMessage(c));
    std::exit(1);
  }
  PQfinish(c);
  return out;
}

// The URL of database `db` on the server of `url` (a URI ending in /DB).
std::string with_database(const std::string& url, const std::string& db) {
  auto q = url.find('?');
  std::string base = url.substr(0, q);
  auto slash = base.rfind('/');
  return base.substr(0, slash + 1) + db + (q == std::string::npos ? "" : url.substr(q));
}

// CPU seconds (user + system) of every process named `postgres`.
double postgres_cpu_seconds() {
  double total = 0;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  DIR* d = opendir("/proc");
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto open = line.find('(');
    auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    if (line.substr(open + 1, close - open - 1) != "postgres") continue;
    std::stringstream rest(line.substr(close + 2));
    std::string field;
    long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::atoll(field.c_str());
      if (i == 15) stime = std::atoll(field.c_str());
    }
    total += static_cast<double>(utime + stime) / tick;
  }
  closedir(d);
  return total;
}

struct Sample {
  double sagas_per_s = 0, p50_ms = 0, pg_cpu_ms_per_saga = 0, xacts_per_saga = 0;
};

void register_actions(saga::Engine& e) {
  e.register_action("inventory.reserve", [](const saga::ActionCall&) {
    return json{{"id", "R-1"}};
  });
  e.register_action("inventory.release", [](const saga::ActionCall&) { return json(nullptr); });
  e.register_action("payment.charge", [](const saga::ActionCall&) { return json{{"id", "P-1"}}; });
  e.register_action("payment.refund", [](const saga::ActionCall&) { return json(nullptr); });
  auto ship = [](const saga::ActionCall&) {
    return json{{"id", "S-1"}, {"status", "ok"}, {"tracking", "T-1"}};
  };
  e.register_action("shipping.standard", ship);
  e.register_action("shipping.express", ship);
  e.register_action("shipping.cancel", [](const saga::ActionCall&) { return json(nullptr); });
}

Sample run_once(const Options& o, int conc, int workers, int run) {
  const std::string db = fmt::format("pg_bench_{}_{}", getpid(), run);
  query(o.url, "DROP DATABASE IF EXISTS " + db);
  query(o.url, "CREATE DATABASE " + db);
  const std::string url = with_database(o.url, db);
  std::vector<std::unique_ptr<saga::Engine>> engines;
  std::vector<std::string> hashes;
  static const std::vector<uint8_t> image = [] {
    auto r =
        saga::compiler::compile_file_to_image(std::string(SAGA_SOURCE_DIR) + "/samples/order.saga");
    if (!r.ok()) {
      fmt::print(stderr, "pg_bench: {}\n", r.status().message());
      std::exit(1);
    }
    return std::move(r).value();
  }();
  for (int w = 0; w < workers; ++w) {
    saga::EngineOptions options;
    options.database = url;
    options.durability = saga::Durability::kFull;
    options.threads = 2;
    auto engine = saga::Engine::open(options);
    if (!engine.ok()) {
      fmt::print(stderr, "pg_bench: {}\n", engine.status().message());
      std::exit(1);
    }
    engines.push_back(std::move(engine).value());
    hashes.push_back(engines.back()->load_program(image).value());
    register_actions(*engines.back());
  }
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, done = 0, started = 0;
  std::vector<double> latencies;
  latencies.reserve(o.n);
  auto launch = [&](int i) {
    auto t0 = Clock::now();
    json input = {{"order_id", fmt::format("o-{}", i)},
                  {"customer", "c-1"},
                  {"amount", 42},
                  {"items", json::array({"book", "pen"})}};
    const size_t w = static_cast<size_t>(i % workers);
    auto id = engines[w]->start_async(
        hashes[w], "order_fulfillment", input, [&, t0](const saga::InstanceInfo& info) {
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          std::lock_guard lock(mu);
          if (info.status != saga::InstanceStatus::kCompleted) {
            fmt::print(stderr, "pg_bench: a saga ended {}\n", saga::to_string(info.status));
          }
          latencies.push_back(ms);
          --in_flight;
          ++done;
          cv.notify_all();
        });
    if (!id.ok()) {
      fmt::print(stderr, "pg_bench: {}\n", id.status().message());
      std::exit(1);
    }
  };
  const std::string xact_sql =
      "SELECT xact_commit FROM pg_stat_database WHERE datname = '" + db + "'";
  // pg_stat_database lags by up to its flush interval: read it after a pause.
  query(url, "SELECT pg_stat_clear_snapshot()");
  const double xact0 = std::atof(query(url, xact_sql).c_str());
  const double cpu0 = postgres_cpu_seconds();
  const auto t0 = Clock::now();
  {
    std::unique_lock lock(mu);
    while (started < o.n) {
      cv.wait(lock, [&] { return in_flight < conc; });
      ++in_flight;
      int i = started++;
      lock.unlock();
      launch(i);
      lock.lock();
    }
    cv.wait(lock, [&] { return done == o.n; });
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = postgres_cpu_seconds() - cpu0;
  engines.clear();  // Flushes and closes the connections.
  // The statistics collector reports with a delay (stats_fetch_consistency
  // and the 1 s flush): poll until the count settles.
  double xact = 0;
  for (int i = 0; i < 30; ++i) {
    usleep(200 * 1000);
    double now = std::atof(query(url, xact_sql).c_str());
    if (now == xact && now > xact0) break;
    xact = now;
  }
  query(o.url, "DROP DATABASE IF EXISTS " + db);
  std::sort(latencies.begin(), latencies.end());
  Sample s;
  s.sagas_per_s = o.n / secs;
  s.p50_ms = saga::bench::quantile_of_sorted(latencies, 500);
  s.pg_cpu_ms_per_saga = cpu * 1000 / o.n;
  s.xacts_per_saga = (xact - xact0) / o.n;
  return s;
}

using saga::bench::median;

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      fmt::print(
          "usage: pg_bench --url postgresql://USER:PASSWORD@HOST:PORT/DB [--n 2000] [--runs 3]\n"
          "                [--conc 1,64,256] [--workers 1,2,3]\n"
          "The order saga on the PostgreSQL store (synchronous_commit as the server has it):\n"
          "sagas/s, p50 latency, postgres CPU per saga and transactions per saga, medians of\n"
          "--runs runs, each on a fresh database created through --url (a superuser's).\n");
      return 0;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "pg_bench: {} needs a value (see --help)\n", k);
      return 2;
    }
    std::string v = argv[++i];
    if (k == "--url") {
      o.url = v;
    } else if (k == "--n") {
      o.n = std::atoi(v.c_str());
    } else if (k == "--runs") {
      o.runs = std::atoi(v.c_str());
    } else if (k == "--conc") {
      o.conc = parse_list(v);
    } else if (k == "--workers") {
      o.workers = parse_list(v);
    } else {
      fmt::print(stderr, "pg_bench: unknown option {} (see --help)\n", k);
      return 2;
    }
  }
  if (o.url.empty()) {
    fmt::print(stderr, "pg_bench: --url is required (see --help)\n");
    return 2;
  }
  fmt::print("synchronous_commit = {}, fsync = {}\n", query(o.url, "SHOW synchronous_commit"),
             query(o.url, "SHOW fsync"));
  int run = 0;
  for (int workers : o.workers) {
    for (int conc : o.conc) {
      std::vector<double> rate, p50, cpu, xacts;
      for (int r = 0; r < o.runs; ++r) {
        Sample s = run_once(o, conc, workers, run++);
        rate.push_back(s.sagas_per_s);
        p50.push_back(s.p50_ms);
        cpu.push_back(s.pg_cpu_ms_per_saga);
        xacts.push_back(s.xacts_per_saga);
      }
      fmt::print(
          "SUMMARY {{\"workers\": {}, \"conc\": {}, \"n\": {}, \"runs\": {}, "
          "\"median_sagas_per_s\": {:.1f}, \"median_p50_ms\": {:.2f}, "
          "\"median_pg_cpu_ms_per_saga\": {:.3f}, \"median_pg_xacts_per_saga\": {:.3f}}}\n",
          workers, conc, o.n, o.runs, median(rate), median(p50), median(cpu), median(xacts));
      std::fflush(stdout);
    }
  }
  return 0;
}
