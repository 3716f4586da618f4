// Choreography benchmark: events per second between two `sagactl worker`
// processes on loopback, each with its own SQLite database (the shape of
// samples/choreography, without the participants' HTTP calls). Worker A
// runs N `ping` sagas; each emits ping.sent and awaits the pong.sent of its
// number:
//
//   saga ping(n: number) {
//     emit ping.sent { n: n }
//     await event pong.sent where event.data.n == n timeout 10m -> pong
//     output pong.data.n
//   }
//
// Worker B serves `on ping.sent start pong(n: event.data.n)`, a saga that
// emits pong.sent { n: n }. One round trip is two events, each through the
// whole path: emit (an outbox row in the transition's commit) -> relay ->
// POST /events of the other worker (recorded, deduplicated) -> trigger (B:
// a pong instance started) or await (A: the event handed to the waiting
// ping). Per round the N pings are enqueued in A's fresh database before A
// starts; the round's time runs from A's start until every ping completed.
// Prints each round and the medians: events/s (2 per ping) and pings/s.
//
//   build/bench/choreography_bench [--pings 1000] [--rounds 3] [--dir DIR]
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "samples/participants/participant_process.hpp"
#include "saga/engine.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using saga::samples::ChildProcess;

constexpr const char* kPing = R"(
saga ping(n: number) {
  emit ping.sent { n: n }
  await event pong.sent where event.data.n == n timeout 10m -> pong
  output pong.data.n
}
)";

constexpr const char* kPong = R"(
on ping.sent start pong(n: event.data.n)
saga pong(n: number) {
  emit pong.sent { n: n }
  output n
}
)";

std::string events_url(int port) { return fmt::format("http://127.0.0.1:{}/events", port); }

// Waits (a minute at most) until the worker logged that it listens.
bool listening(const ChildProcess& worker) {
  const auto limit = Clock::now() + std::chrono::minutes(1);
  while (Clock::now() < limit) {
    if (worker.output().find("listening on") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// The number of completed instances in the database at `path`.
size_t completed(const std::string& path, size_t limit) {
  saga::StoreOptions options;
  options.read_only = true;
  auto store = saga::open_store(path, options);
  if (!store.ok()) return 0;
  auto done = store.value()->list_instances(saga::InstanceStatus::kCompleted, limit);
  return done.ok() ? done->size() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  int pings = 1000, rounds = 3;
  std::string dir = fs::temp_directory_path().string();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print(
          "usage: choreography_bench [--pings N] [--rounds R] [--dir DIR]\n"
          "  Events per second between two sagactl workers on loopback, each with its own\n"
          "  SQLite database: N (1000) ping sagas in worker A each emit ping.sent and await\n"
          "  the pong.sent of their number; worker B's trigger starts a pong saga per\n"
          "  ping.sent, which emits pong.sent. Two events per ping, each through emit ->\n"
          "  outbox -> relay -> POST /events -> trigger or await. R rounds (3), fresh\n"
          "  databases in DIR each; prints each round and the medians of events/s and\n"
          "  pings/s, from A's start until every ping completed.\n");
      return 0;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "{} needs a value (--help)\n", a);
      return 2;
    }
    if (a == "--pings") {
      pings = std::stoi(argv[++i]);
    } else if (a == "--rounds") {
      rounds = std::stoi(argv[++i]);
    } else if (a == "--dir") {
      dir = argv[++i];
    } else {
      fmt::print(stderr, "unknown option {} (--help)\n", a);
      return 2;
    }
  }
  if (pings < 1 || rounds < 1) {
    fmt::print(stderr, "--pings and --rounds at least 1\n");
    return 2;
  }
  auto image = saga::compiler::compile_to_image("ping.saga", kPing);
  if (!image.ok()) {
    fmt::print(stderr, "{}\n", image.status().message());
    return 1;
  }
  fmt::print("{} pings per round, two sagactl workers, durability full\n", pings);
  fmt::print("{:<6} {:>10} {:>10} {:>9}\n", "round", "events/s", "pings/s", "seconds");
  std::vector<double> events_per_s, pings_per_s;
  for (int round = 1; round <= rounds; ++round) {
    const fs::path work = fs::path(dir) / fmt::format("choreography_bench-{}-{}", getpid(), round);
    fs::remove_all(work);
    fs::create_directories(work);
    const std::string a_db = (work / "a.db").string(), b_db = (work / "b.db").string();
    std::ofstream(work / "pong.saga") << kPong;
    {
      // The pings, pending in A's database before A runs.
      saga::EngineOptions options;
      options.database = a_db;
      auto engine = saga::Engine::open(options);
      if (!engine.ok()) {
        fmt::print(stderr, "{}\n", engine.status().message());
        return 1;
      }
      auto hash = engine.value()->load_program(image.value());
      if (!hash.ok()) {
        fmt::print(stderr, "{}\n", hash.status().message());
        return 1;
      }
      for (int n = 0; n < pings; ++n) {
        auto id = engine.value()->enqueue(hash.value(), "ping", nlohmann::json{{"n", n}});
        if (!id.ok()) {
          fmt::print(stderr, "{}\n", id.status().message());
          return 1;
        }
      }
    }
    const int a_port = saga::samples::free_loopback_port(),
              b_port = saga::samples::free_loopback_port();
    auto b = std::make_unique<ChildProcess>(
        std::vector<std::string>{SAGACTL, "worker", "--db", b_db, "--listen",
                                 fmt::format("127.0.0.1:{}", b_port), "--program",
                                 (work / "pong.saga").string(), "--sink",
                                 "pong.sent=" + events_url(a_port)},
        work / "b.log");
    if (!listening(*b)) {
      fmt::print(stderr, "worker B did not start: {}\n", b->output());
      return 1;
    }
    const auto t0 = Clock::now();
    auto a = std::make_unique<ChildProcess>(
        std::vector<std::string>{SAGACTL, "worker", "--db", a_db, "--listen",
                                 fmt::format("127.0.0.1:{}", a_port), "--sink",
                                 "ping.sent=" + events_url(b_port)},
        work / "a.log");
    const auto limit = t0 + std::chrono::minutes(10);
    size_t done = 0;
    while ((done = completed(a_db, static_cast<size_t>(pings))) < static_cast<size_t>(pings) &&
           Clock::now() < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    a->stop();
    b->stop();
    if (done < static_cast<size_t>(pings)) {
      fmt::print(stderr, "only {} of {} pings completed in 10 minutes; logs in {}\n", done, pings,
                 work.string());
      return 1;
    }
    events_per_s.push_back(2.0 * pings / seconds);
    pings_per_s.push_back(pings / seconds);
    fmt::print("{:<6} {:>10.0f} {:>10.0f} {:>9.2f}\n", round, events_per_s.back(),
               pings_per_s.back(), seconds);
    fs::remove_all(work);
  }
  fmt::print("{:<6} {:>10.0f} {:>10.0f}\n", "median", saga::bench::median(events_per_s),
             saga::bench::median(pings_per_s));
  return 0;
}
