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
//    transitions per second and the ratio. (`emit` in the language is not
//    implemented yet; this is the store's share of what it will cost.)
//
//   outbox_bench [--events N] [--instances M] [--commits K] [--runs R]
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "bench/allocator.hpp"
#include "bench/stats.hpp"
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

}  // namespace

int main(int argc, char** argv) {
  int events = 5000, instances = 100, commits = 5000, runs = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::puts(
          "usage: outbox_bench [--events N] [--instances M] [--commits K] [--runs R]\n"
          "  Relay throughput: N outbox rows over M instances delivered as CloudEvents to a\n"
          "  participant's POST /events on 127.0.0.1 (events/s). Commit cost: K transitions\n"
          "  with and without one outbox row each, alternately, SQLite at durability full\n"
          "  (transitions/s and the ratio). Medians of R runs.");
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

  std::vector<double> rates, with, without;
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
  fs::remove_all(dir);
  return 0;
}
