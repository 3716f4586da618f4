// Listener benchmark: how long the JSON API and the web view take to answer
// over a database of many instances (runtime/serve, runtime/web, the store's
// query_instances). It fills a fresh SQLite database with --instances
// instances (one saga in ten stuck, with a dead letter), serves it on an
// ephemeral loopback port with the worker's routes, and measures, over one
// keep-alive connection, the latency of each request --requests times:
// the first page of GET /api/instances, a deep page (the cursor of the
// instance 90% of the way down), a status filter, one instance's detail,
// the dead letters, and the web view's first page. It prints the median and
// p99 of each in microseconds, and the ratio deep / first page (a page is an
// index seek from its cursor, so this stays near 1 however deep the page).
//
//   build/bench/listener_bench [--instances 100000] [--requests 200] [--dir DIR]
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/stats.hpp"
#include "saga/serve.hpp"
#include "saga/store.hpp"
#include "saga/web.hpp"
#include "tests/support/http_call.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double p50 = 0, p99 = 0;
};

Figures measure(saga::test::HttpConnection& c, const std::string& target, int n) {
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    auto reply = c.call("GET", target);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (reply.status != 200) {
      fmt::print(stderr, "GET {}: {} {}\n", target, reply.status, reply.body.substr(0, 200));
      std::exit(1);
    }
  }
  std::sort(us.begin(), us.end());
  return {saga::bench::quantile_of_sorted(us, 500), saga::bench::quantile_of_sorted(us, 990)};
}

}  // namespace

int main(int argc, char** argv) {
  size_t instances = 100000;
  int requests = 200;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print(
          "listener_bench [--instances N] [--requests N] [--dir DIR]\n"
          "  Latency (median, p99) of the JSON API and the web view over a database of N\n"
          "  instances (100000), each request N times (200) on one keep-alive connection.\n");
      return 0;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "{} needs a value (--help)\n", a);
      return 2;
    }
    if (a == "--instances") {
      instances = std::stoul(argv[++i]);
    } else if (a == "--requests") {
      requests = std::stoi(argv[++i]);
    } else if (a == "--dir") {
      dir = argv[++i];
    } else {
      fmt::print(stderr, "unknown option {} (--help)\n", a);
      return 2;
    }
  }
  if (instances < 10 || requests < 1) {
    fmt::print(stderr, "--instances must be at least 10, --requests at least 1\n");
    return 2;
  }
  const std::string path = fmt::format("{}/listener_bench-{}.db", dir, getpid());
  saga::StoreOptions so;
  so.durability = saga::Durability::kNormal;
  auto opened = saga::open_store(path, so);
  if (!opened.ok()) {
    fmt::print(stderr, "{}\n", opened.status().message());
    return 1;
  }
  std::unique_ptr<saga::Store> store = std::move(opened).value();
  auto t0 = Clock::now();
  std::string deep;
  for (size_t i = 0; i < instances; ++i) {
    saga::Transition t;
    t.create = true;
    saga::InstanceRecord& r = t.instance;
    r.id = fmt::format("{:016x}-bench-{:08d}", 1700000000000 + i, i);
    r.program_hash = "00112233445566778899aabbccddeeff";
    r.saga = i % 3 == 0 ? "order" : "refund";
    r.status = i % 10 == 0 ? saga::InstanceStatus::kStuck : saga::InstanceStatus::kCompleted;
    r.input_json = R"({"order": "o-1", "amount": 42})";
    r.output_json = R"({"ok": true})";
    r.created_ms = r.updated_ms = 1700000000000 + static_cast<int64_t>(i);
    t.events.push_back({r.created_ms, "started", "", 0, "", "", ""});
    t.events.push_back({r.created_ms, "step_completed", "reserve", 1, "", "", "{\"id\": 1}"});
    if (r.status == saga::InstanceStatus::kStuck) {
      t.events.push_back({r.created_ms, "stuck", "reserve", 20, "unavailable", "down", ""});
      t.dead_letter = saga::DeadLetter{r.id, "reserve", r.created_ms, "unavailable", "down"};
    }
    if (i == instances / 10) deep = r.id;  // 90% of the way down, newest first.
    store->submit(std::move(t), [](saga::Status s) {
      if (!s.ok()) fmt::print(stderr, "commit: {}\n", s.message());
    });
  }
  store->flush();
  const double fill_s = std::chrono::duration<double>(Clock::now() - t0).count();

  saga::web::Context context;
  context.store = store.get();
  saga::serve::Router router;
  saga::web::add_health_routes(router, context);
  saga::web::add_api_routes(router, context);
  saga::web::add_web_routes(router, context);
  auto server = saga::serve::Server::start({}, std::move(router));
  if (!server.ok()) {
    fmt::print(stderr, "{}\n", server.status().message());
    return 1;
  }
  saga::test::HttpConnection c(server.value()->port());
  fmt::print("{} instances ({} stuck) stored in {:.1f} s; {} requests each, one connection\n",
             instances, instances / 10, fill_s, requests);
  fmt::print("{:<30} {:>10} {:>10}\n", "request", "p50 us", "p99 us");
  const std::pair<const char*, std::string> cases[] = {
      {"first page", "/api/instances?limit=50"},
      {"deep page (90% down)", "/api/instances?limit=50&before=" + deep},
      {"status=stuck, first page", "/api/instances?status=stuck&limit=50"},
      {"saga=order, deep page", "/api/instances?saga=order&limit=50&before=" + deep},
      {"one instance's detail", "/api/instances/" + deep},
      {"dead letters (50)", "/api/dead-letters?limit=50"},
      {"web view: instances page", "/?limit=50"},
      {"health/ready", "/health/ready"},
  };
  std::vector<Figures> figures;
  for (const auto& [name, target] : cases) {
    figures.push_back(measure(c, target, requests));
    fmt::print("{:<30} {:>10.0f} {:>10.0f}\n", name, figures.back().p50, figures.back().p99);
  }
  fmt::print("deep page / first page (p50): {:.2f}\n", figures[1].p50 / figures[0].p50);
  server.value()->stop();
  store.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return 0;
}
