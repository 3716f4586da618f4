// outbox_bench: events out (docs/events.md). Two figures, medians of --runs:
//
//  * relay throughput: --events outbox rows spread over --instances
//    instances are delivered by a Relay through the HTTP client to a
//    `participant` server's POST /events on 127.0.0.1 (which records each
//    event in its own SQLite file), from the first claim to the last
//    delivery: events per second;
//  * the cost of an event at commit: --commits transitions (an update of an
//    instance with a 300-byte checkpoint and one history event, the shape
//    of a step's transition) committed with and without one outbox row
//    each, alternately in one run, on the SQLite store at durability full:
//    transitions per second and the ratio (the store's share of an event);
//  * the cost of `emit` in a saga: --sagas instances of a 3-step saga (three
//    in-process actions), 64 in flight, on an Engine with the SQLite store
//    at durability full, without and with an `emit` after each step
//    (alternately in one run): sagas per second and the ratio.
//
//   outbox_bench [--events N] [--instances M] [--commits K] [--sagas S] [--runs R]
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <condition_variable>
#include <mutex>

#include "bench/allocator.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "saga/http.hpp"
#include "saga/outbox.hpp"
#include "saga/store.hpp"
#include "samples/participants/participant_process.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

saga::Transition transition(const std::string& id, bool create, int i, bool with_event) {
  saga::Transition t;
  t.create = create;
  t.instance.id = id;
  t.instance.saga = "order";
  t.instance.status = saga::InstanceStatus::kRunning;
  t.instance.checkpoint.assign(300, 'c');
  t.events.push_back({1700000000000 + i, "step_completed", "charge", 1, "", "", R"({"id":"p-1"})"});
  if (with_event) {
    saga::OutboxEvent e;
    e.id = saga::outbox_event_id(id, std::to_string(i));
    e.type = "order.placed";
    e.source = saga::event_source("order", id);
    e.time_ms = 1700000000000 + i;
    e.data_json = fmt::format(R"({{"order":"{}","amount":42,"n":{}}})", id, i);
    t.outbox.push_back(std::move(e));
  }
  return t;
}

std::unique_ptr<saga::Store> open(const fs::path& path, saga::Durability d) {
  saga::StoreOptions o;
  o.durability = d;
  auto store = saga::open_sqlite_store(path.string(), o);
  if (!store.ok()) {
    std::fprintf(stderr, "outbox_bench: %s\n", store.status().message().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

// Submits every transition at once (group commit) and waits for the last.
double commit_all(saga::Store& store, std::vector<saga::Transition> ts) {
  auto start = Clock::now();
  std::promise<void> last;
  for (size_t i = 0; i < ts.size(); ++i) {
    const bool is_last = i + 1 == ts.size();
    store.submit(std::move(ts[i]), [&last, is_last](saga::Status s) {
      if (!s.ok()) std::fprintf(stderr, "outbox_bench: %s\n", s.message().c_str());
      if (is_last) last.set_value();
    });
  }
  last.get_future().get();
  return seconds(Clock::now() - start);
}

// The 3-step saga, with an emit after each step or none.
std::string three_steps(bool emit) {
  const char* e = emit ? "emit" : "//";
  return fmt::format(R"(
service shop {{ }}
saga order(id: string) {{
  step a {{ do shop.a(id: id) -> x }}
  {0} order.reserved {{ order: id, x: x }}
  step b {{ do shop.b(id: id) -> y }}
  {0} order.charged {{ order: id, y: y }}
  step c {{ do shop.c(id: id) -> z }}
  {0} order.shipped {{ order: id, z: z }}
  output z
}}
)",
                     e);
}

// Sagas per second of `n` instances of three_steps(emit), 64 in flight.
double saga_rate(const fs::path& dir, bool emit, int n) {
  saga::EngineOptions options;
  options.database = (dir / fmt::format("engine-{}.db", emit)).string();
  options.durability = saga::Durability::kFull;
  options.threads = 2;
  auto opened = saga::Engine::open(options);
  if (!opened.ok()) {
    fmt::print(stderr, "outbox_bench: {}\n", opened.status().message());
    std::exit(1);
  }
  std::unique_ptr<saga::Engine> engine = std::move(opened).value();
  auto image = saga::compiler::compile_to_image("bench.saga", three_steps(emit));
  if (!image.ok()) {
    fmt::print(stderr, "outbox_bench: {}\n", image.status().message());
    std::exit(1);
  }
  std::string hash = engine->load_program(std::move(image).value()).value();
  for (const char* name : {"shop.a", "shop.b", "shop.c"}) {
    engine->register_action(name, [](const saga::ActionCall&) { return nlohmann::json(1); });
  }
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, done = 0;
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < 64; });
      ++in_flight;
    }
    auto id = engine->start_async(hash, "order", {{"id", fmt::format("o-{}", i)}},
                                  [&](const saga::InstanceInfo&) {
                                    std::lock_guard lock(mu);
                                    --in_flight;
                                    ++done;
                                    cv.notify_all();
                                  });
    if (!id.ok()) {
      fmt::print(stderr, "outbox_bench: {}\n", id.status().message());
      std::exit(1);
    }
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == n; });
  }
  const double rate = n / seconds(Clock::now() - start);
  if (emit) {
    saga::OutboxQuery all;
    all.limit = static_cast<size_t>(3 * n) + 1;
    auto rows = engine->store().list_outbox(all);
    if (!rows.ok() || rows->size() != static_cast<size_t>(3 * n)) {
      fmt::print(stderr, "outbox_bench: expected {} outbox rows\n", 3 * n);
      std::exit(1);
    }
  }
  engine.reset();
  fs::remove(options.database);
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  int events = 5000, instances = 100, commits = 5000, sagas = 2000, runs = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::puts(
          "usage: outbox_bench [--events N] [--instances M] [--commits K] [--sagas S] [--runs "
          "R]\n"
          "  Relay throughput: N outbox rows over M instances delivered as CloudEvents to a\n"
          "  participant's POST /events on 127.0.0.1 (events/s). Commit cost: K transitions\n"
          "  with and without one outbox row each, alternately, SQLite at durability full\n"
          "  (transitions/s and the ratio). Emit cost: S instances of a 3-step saga without\n"
          "  and with an emit after each step, alternately, on an Engine at durability full\n"
          "  (sagas/s and the ratio). Medians of R runs.");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "outbox_bench: %s wants a value (--help)\n", a.c_str());
      return 2;
    }
    int v = std::max(1, std::atoi(argv[++i]));
    if (a == "--events") {
      events = v;
    } else if (a == "--instances") {
      instances = v;
    } else if (a == "--commits") {
      commits = v;
    } else if (a == "--sagas") {
      sagas = v;
    } else if (a == "--runs") {
      runs = v;
    } else {
      std::fprintf(stderr, "outbox_bench: unknown option %s (--help)\n", a.c_str());
      return 2;
    }
  }
  const fs::path dir =
      fs::temp_directory_path() / ("saga-outbox-bench-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  saga::samples::ParticipantProcess sink("payment", dir, {});
  auto http = saga::HttpClient::create({});

  std::vector<double> rates, with, without, emitting, plain;
  for (int run = 0; run < runs; ++run) {
    // Relay throughput.
    {
      const fs::path db = dir / fmt::format("relay{}.db", run);
      auto store = open(db, saga::Durability::kNormal);
      std::vector<saga::Transition> ts;
      const int per = std::max(1, events / instances);
      for (int k = 0; k < instances; ++k) {
        for (int i = 0; i < per; ++i) {
          ts.push_back(transition(fmt::format("r{}-i{}", run, k), i == 0, i, true));
        }
      }
      commit_all(*store, std::move(ts));
      const uint64_t total = static_cast<uint64_t>(per) * instances;
      saga::RelayOptions o;
      o.sinks = {{"order.placed", sink.url() + "/events"}};
      o.sender = http->event_sender();
      o.batch = 1024;
      auto start = Clock::now();
      saga::Relay relay(*store, o);
      while (relay.stats().delivered < total) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      rates.push_back(static_cast<double>(total) / seconds(Clock::now() - start));
      relay.stop();
    }
    // The cost of an event at commit, alternating which goes first.
    for (int pass = 0; pass < 2; ++pass) {
      const bool event = (pass + run) % 2 == 0;
      const fs::path db = dir / fmt::format("commit{}-{}.db", run, pass);
      auto store = open(db, saga::Durability::kFull);
      std::vector<saga::Transition> creates;
      for (int k = 0; k < 100; ++k)
        creates.push_back(transition(fmt::format("c{}", k), true, 0, false));
      commit_all(*store, std::move(creates));
      std::vector<saga::Transition> ts;
      for (int i = 0; i < commits; ++i) {
        ts.push_back(transition(fmt::format("c{}", i % 100), false, i + 1, event));
      }
      const double s = commit_all(*store, std::move(ts));
      (event ? with : without).push_back(commits / s);
    }
    // The 3-step saga with and without emits, alternating which goes first.
    for (int pass = 0; pass < 2; ++pass) {
      const bool emit = (pass + run) % 2 == 0;
      (emit ? emitting : plain).push_back(saga_rate(dir, emit, sagas));
    }
  }
  const double w = saga::bench::median(with), wo = saga::bench::median(without);
  fmt::print(
      "relay -> loopback sink      median {:9.0f} events/s   ({} events over {} instances, {} "
      "runs)\n",
      saga::bench::median(rates), events / instances * instances, instances, runs);
  fmt::print("commit with one event       median {:9.0f} transitions/s\n", w);
  fmt::print("commit without events       median {:9.0f} transitions/s\n", wo);
  fmt::print("cost of the event at commit {:9.3f}x the time of a transition without (same run)\n",
             wo / w);
  const double em = saga::bench::median(emitting), pl = saga::bench::median(plain);
  fmt::print("3-step saga, 3 emits        median {:9.0f} sagas/s   ({} sagas, durability full)\n",
             em, sagas);
  fmt::print("3-step saga, no emit        median {:9.0f} sagas/s\n", pl);
  fmt::print("sagas/s with emits / without {:8.3f} (same run)\n", em / pl);
  fs::remove_all(dir);
  return 0;
}
