// Events-in benchmark: events per second through POST /events -> trigger ->
// saga started and completed, on loopback (runtime/web/events.cpp,
// Engine::publish, Store::record_event). One process runs an engine on a
// fresh SQLite database serving the trigger
//   on order.placed start pay(order: event.data.order, amount: event.data.amount)
// (one step, a registered action that returns at once) behind the
// listener's event route on an ephemeral 127.0.0.1 port; --clients threads
// each post their share of --events structured CloudEvents over one
// keep-alive connection, each waiting for its 202. Per round it measures
// the accepted rate (events / time until the last 202), the completed rate
// (events / time until every started instance completed) and the latency
// of one POST; it prints each round and the medians over --rounds.
//
//   build/bench/events_in_bench [--events 2000] [--clients 4] [--rounds 3]
//                               [--durability full|normal] [--dir DIR]
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "saga/serve.hpp"
#include "saga/web.hpp"
#include "tests/support/http_call.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kProgram = R"(
service bench {}
saga pay(order: string, amount: number) {
  step charge { do bench.charge(order: order, amount: amount) }
}
on order.placed start pay(order: event.data.order, amount: event.data.amount)
)";

struct Round {
  double accepted_per_s = 0, completed_per_s = 0, post_p50_us = 0, post_p99_us = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int events = 2000, clients = 4, rounds = 3;
  std::string durability = "full";
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print(
          "usage: events_in_bench [--events N] [--clients C] [--rounds R] "
          "[--durability full|normal] [--dir DIR]\n"
          "  Events per second through POST /events -> trigger -> saga started and completed\n"
          "  on loopback: N events (2000) per round from C keep-alive clients (4), R rounds\n"
          "  (3), a fresh SQLite database per round at the given durability (full). Prints\n"
          "  each round and the medians: accepted/s (last 202), completed/s (every instance\n"
          "  done) and the latency of one POST (p50, p99).\n");
      return 0;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "{} needs a value (--help)\n", a);
      return 2;
    }
    if (a == "--events") {
      events = std::stoi(argv[++i]);
    } else if (a == "--clients") {
      clients = std::stoi(argv[++i]);
    } else if (a == "--rounds") {
      rounds = std::stoi(argv[++i]);
    } else if (a == "--durability") {
      durability = argv[++i];
    } else if (a == "--dir") {
      dir = argv[++i];
    } else {
      fmt::print(stderr, "unknown option {} (--help)\n", a);
      return 2;
    }
  }
  if (events < 1 || clients < 1 || rounds < 1 || (durability != "full" && durability != "normal")) {
    fmt::print(stderr, "--events, --clients, --rounds at least 1; --durability full or normal\n");
    return 2;
  }
  auto image = saga::compiler::compile_to_image("bench.saga", kProgram);
  if (!image.ok()) {
    fmt::print(stderr, "{}\n", image.status().message());
    return 1;
  }
  fmt::print("{} events per round, {} clients, durability {}\n", events, clients, durability);
  fmt::print("{:<6} {:>12} {:>13} {:>12} {:>12}\n", "round", "accepted/s", "completed/s",
             "POST p50 us", "POST p99 us");
  std::vector<Round> results;
  for (int round = 1; round <= rounds; ++round) {
    const std::string path = fmt::format("{}/events_in_bench-{}-{}.db", dir, getpid(), round);
    saga::EngineOptions options;
    options.database = path;
    options.durability = durability == "full" ? saga::Durability::kFull : saga::Durability::kNormal;
    options.threads = 2;
    std::atomic<int> done{0};
    options.on_event = [&done](const std::string&, const saga::HistoryEvent& e) {
      if (e.kind == "completed") done.fetch_add(1);
    };
    auto opened = saga::Engine::open(options);
    if (!opened.ok()) {
      fmt::print(stderr, "{}\n", opened.status().message());
      return 1;
    }
    std::unique_ptr<saga::Engine> engine = std::move(opened).value();
    engine->register_action("bench.charge",
                            [](const saga::ActionCall& c) { return c.args["order"]; });
    auto hash = engine->load_program(image.value());
    if (!hash.ok() || !engine->serve_triggers(hash.value()).ok()) {
      fmt::print(stderr, "cannot load the program\n");
      return 1;
    }
    saga::web::Context context;
    context.store = &engine->store();
    context.engine = engine.get();
    saga::serve::Router router;
    saga::web::add_event_routes(router, context);
    auto server = saga::serve::Server::start({}, std::move(router));
    if (!server.ok()) {
      fmt::print(stderr, "{}\n", server.status().message());
      return 1;
    }
    const int port = server.value()->port();
    std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
    std::atomic<bool> failed{false};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        saga::test::HttpConnection conn(port);
        for (int i = c; i < events; i += clients) {
          const std::string body = fmt::format(
              R"({{"specversion":"1.0","id":"ev-{}","source":"bench","type":"order.placed",)"
              R"("data":{{"order":"A-{}","amount":{}}}}})",
              i, i, i % 100);
          const auto s = Clock::now();
          auto reply = conn.call("POST", "/events", body,
                                 {{"Content-Type", "application/cloudevents+json"}});
          latencies[static_cast<size_t>(c)].push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - s).count());
          if (reply.status != 202 && !failed.exchange(true)) {
            fmt::print(stderr, "POST /events: {} {}\n", reply.status, reply.body.substr(0, 200));
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double accepted_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (failed) return 1;
    // Every event started one instance; wait (bounded) until all completed.
    const auto limit = Clock::now() + std::chrono::minutes(5);
    while (done.load() < events && Clock::now() < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const double completed_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (done.load() < events) {
      fmt::print(stderr, "only {} of {} instances completed\n", done.load(), events);
      return 1;
    }
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    Round r{events / accepted_s, events / completed_s, saga::bench::quantile_of_sorted(all, 500),
            saga::bench::quantile_of_sorted(all, 990)};
    results.push_back(r);
    fmt::print("{:<6} {:>12.0f} {:>13.0f} {:>12.0f} {:>12.0f}\n", round, r.accepted_per_s,
               r.completed_per_s, r.post_p50_us, r.post_p99_us);
    server.value()->stop();
    engine.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  auto med = [&](double Round::*field) {
    std::vector<double> v;
    for (const Round& r : results) v.push_back(r.*field);
    return saga::bench::median(v);
  };
  fmt::print("{:<6} {:>12.0f} {:>13.0f} {:>12.0f} {:>12.0f}\n", "median",
             med(&Round::accepted_per_s), med(&Round::completed_per_s), med(&Round::post_p50_us),
             med(&Round::post_p99_us));
  return 0;
}
