// Engine benchmark: durable sagas per second for the 3-step order saga
// (samples/order.saga) with no-op in-process actions, at several
// concurrencies and both durability levels, with latency percentiles, CPU per
// saga and peak RSS; then a fan-out saga (1 step, a parallel foreach of
// --fanout items, 1 step) under full durability, with its CPU per step beside
// the 3-step saga's with as many steps in flight; then the memory of many
// instances waiting in a durable timer, and of many waiting fibers, each in
// a fresh process of its own (a process that ran the other figures keeps
// their freed memory, and would count it as the new figure's). It reads the peers' last results
// (../shared/peers/results, measured on the same kind of machine) and prints
// the ratios. Every figure is the median of --runs runs, each on a fresh
// database in a temporary directory. `--help` lists the flags.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench/allocator.hpp"
#include "bench/process_stats.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "saga/engine.hpp"
#include "saga/metrics.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using saga::bench::cpu_seconds;
using saga::bench::current_rss_mb;
using saga::bench::peak_rss_mb;

namespace {

struct Options {
  int n = 5000;
  std::vector<int> conc = {1, 256};
  std::vector<std::string> durability = {"full", "normal"};
  int runs = 3;
  int fail_pct = 0;
  int waiting = 100000;
  int fanout = 100;             // Items of the fan-out saga; 0: skip it.
  int fanout_n = 500;           // Fan-out sagas per run.
  int waiting_fibers = 100000;  // Fibers asleep for the memory figure; 0: skip it.
  std::string memory;           // "waiting" or "fibers": that figure only, in this process.
  std::string metrics = "off";  // "on": an engine observer (saga::Metrics); "both": interleaved.
  std::string peers = std::string(SAGA_SOURCE_DIR) + "/../shared/peers/results";
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

// The image of a compiled program; exits with the diagnostics if it does not
// compile.
std::vector<uint8_t> or_exit(saga::Result<std::vector<uint8_t>> image) {
  if (!image.ok()) {
    fmt::print(stderr, "{}\n", image.status().message());
    std::exit(1);
  }
  return std::move(image).value();
}

struct Sample {
  double sagas_per_s = 0, p50_ms = 0, p99_ms = 0, cpu_ms_per_saga = 0;
  int compensated = 0;
  double transitions_per_commit = 0, transitions_per_saga = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

// The fan-out saga: one step, `items` steps in parallel, one step.
constexpr const char* kFanOut = R"(
service fan { }
saga fan_out(items: list) {
  step first { do fan.first() -> f  undo fan.undo(id: f) }
  parallel foreach item in items {
    step each { do fan.each(item: item) -> r  undo fan.undo(id: r) }
  }
  step last { do fan.last() -> l  undo fan.undo(id: l) }
  output len(r)
}
)";

// What one benchmark run starts: the order saga, or the fan-out saga.
struct Workload {
  bool fan_out = false;
  int n = 0;      // Sagas per run.
  int steps = 3;  // Steps per saga, for CPU per step.
};

// Runs n sagas keeping `conc` in flight; for the order saga, every
// fail_pct-th saga fails in step 3 (shipping) and compensates.
// With `metrics`, the engine reports to a saga::Metrics, scraped once at the
// end (outside the timed part).
Sample run_once(const Options& o, const Workload& w, int conc, saga::Durability durability,
                bool metrics = false) {
  uint64_t s_commits = 0, s_transitions = 0;
  fs::path dir = fs::temp_directory_path() / fmt::format("saga-bench-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  saga::EngineOptions options;
  options.database = (dir / "bench.db").string();
  options.durability = durability;
  options.threads = 2;
  if (metrics) options.observer = std::make_shared<saga::Metrics>();
  auto engine = std::move(saga::Engine::open(options)).value();
  std::string hash = engine
                         ->load_program(or_exit(
                             w.fan_out ? saga::compiler::compile_to_image("fan_out.saga", kFanOut)
                                       : saga::compiler::compile_file_to_image(
                                             std::string(SAGA_SOURCE_DIR) + "/samples/order.saga")))
                         .value();
  for (const char* name : {"fan.first", "fan.each", "fan.last"}) {
    engine->register_action(name,
                            [](const saga::ActionCall& c) { return json(c.idempotency_key); });
  }
  engine->register_action("fan.undo", [](const saga::ActionCall&) { return json(nullptr); });
  json items = json::array();
  for (int i = 0; i < o.fanout; ++i) items.push_back(i);
  engine->register_action("inventory.reserve", [](const saga::ActionCall&) {
    return json{{"id", "R-1"}};
  });
  engine->register_action("inventory.release",
                          [](const saga::ActionCall&) { return json(nullptr); });
  engine->register_action("payment.charge", [](const saga::ActionCall&) {
    return json{{"id", "P-1"}};
  });
  engine->register_action("payment.refund", [](const saga::ActionCall&) { return json(nullptr); });
  auto ship = [&o](const saga::ActionCall& c) {
    if (o.fail_pct > 0 && c.args["order"].get<std::string>().back() == 'F') {
      throw saga::ActionError("rejected", "carrier said no");
    }
    return json{{"id", "S-1"}, {"status", "ok"}, {"tracking", "T-1"}};
  };
  engine->register_action("shipping.standard", ship);
  engine->register_action("shipping.express", ship);
  engine->register_action("shipping.cancel", [](const saga::ActionCall&) { return json(nullptr); });

  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, done = 0, compensated = 0;
  std::vector<double> latencies;
  latencies.reserve(w.n);
  auto input = [&](int i) {
    if (w.fan_out) return json{{"items", items}};
    bool fail = o.fail_pct > 0 && i % (100 / o.fail_pct) == 0;
    return json{{"order_id", fmt::format("o-{}{}", i, fail ? "F" : "")},
                {"customer", "c-1"},
                {"amount", 42},
                {"items", json::array({"book", "pen"})}};
  };
  auto launch = [&](int i) {
    auto t0 = Clock::now();
    auto id = engine->start_async(
        hash, w.fan_out ? "fan_out" : "order_fulfillment", input(i),
        [&, t0](const saga::InstanceInfo& info) {
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          std::lock_guard lock(mu);
          latencies.push_back(ms);
          compensated += info.status == saga::InstanceStatus::kCompensated;
          --in_flight;
          ++done;
          cv.notify_all();
        });
    if (!id.ok()) {
      fmt::print(stderr, "start failed: {}\n", id.status().message());
      std::exit(1);
    }
  };
  double cpu0 = cpu_seconds();
  auto start = Clock::now();
  for (int i = 0; i < w.n; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < conc; });
      ++in_flight;
    }
    launch(i);
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == w.n; });
  }
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  double cpu = cpu_seconds() - cpu0;
  if (metrics && static_cast<saga::Metrics&>(*options.observer).scrape().empty()) std::exit(1);
  if (auto stats = saga::store::sqlite_store_stats(engine->store())) {
    s_commits = stats->commits;
    s_transitions = stats->transitions_committed;
  }
  engine.reset();
  fs::remove_all(dir);
  Sample s;
  s.sagas_per_s = w.n / wall;
  s.p50_ms = percentile(latencies, 0.50);
  s.p99_ms = percentile(latencies, 0.99);
  s.cpu_ms_per_saga = cpu * 1000 / w.n;
  s.compensated = compensated;
  s.transitions_per_commit = s_commits ? double(s_transitions) / s_commits : 0;
  s.transitions_per_saga = double(s_transitions) / w.n;
  return s;
}

using saga::bench::median;

// The order saga with and without metrics, runs interleaved (off, on, on,
// off, ...) so that the machine's drift affects both alike: the medians and
// their ratio.
void metrics_ratio(const Options& o, const Workload& w, int conc, const std::string& d,
                   saga::Durability durability) {
  std::vector<double> rate[2], cpu[2], p50[2];
  for (int r = 0; r < o.runs; ++r) {
    for (int k = 0; k < 2; ++k) {
      const bool on = (k == 1) != (r % 2 == 1);
      Sample s = run_once(o, w, conc, durability, on);
      rate[on].push_back(s.sagas_per_s);
      cpu[on].push_back(s.cpu_ms_per_saga);
      p50[on].push_back(s.p50_ms);
    }
  }
  for (int on = 0; on < 2; ++on) {
    fmt::print(
        "{:<6} conc {:>4} metrics {:<3}: {:>8.0f} sagas/s (min {:.0f}, max {:.0f})  p50 {:.3f} "
        "ms  cpu {:.4f} ms/saga\n",
        d, conc, on ? "on" : "off", median(rate[on]),
        *std::min_element(rate[on].begin(), rate[on].end()),
        *std::max_element(rate[on].begin(), rate[on].end()), median(p50[on]), median(cpu[on]));
  }
  fmt::print("{:<6} conc {:>4} metrics on/off: {:.3f}x the throughput, {:.3f}x the CPU per saga\n",
             d, conc, median(rate[1]) / median(rate[0]), median(cpu[1]) / median(cpu[0]));
}

// The peers' medians for (conc, fail 0): sagas/s and p50.
struct Peer {
  std::string name;
  int conc;
  double sagas_per_s, p50_ms;
};

std::vector<Peer> read_peers(const std::string& dir) {
  std::vector<Peer> out;
  for (auto [file, name] :
       {std::pair{"dbos-throughput.json", "DBOS"}, {"restate-throughput.json", "Restate"}}) {
    std::ifstream in(fs::path(dir) / file);
    if (!in) continue;
    auto doc = json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.contains("results")) continue;
    for (const auto& r : doc["results"]) {
      const auto& s = r["summary"];
      if (s.value("failPct", -1) != 0) continue;
      out.push_back({name, s["conc"].get<int>(), s["median_sagas_per_s"].get<double>(),
                     s["median_p50_ms"].get<double>()});
    }
  }
  return out;
}

// Many instances waiting in a durable one-hour sleep: RSS once all wait
// (evicted from memory: EngineOptions::evict_after). `--waiting 1000000`
// gives the figure of the README.
void waiting_memory(const Options& o) {
  fs::path dir = fs::temp_directory_path() / fmt::format("saga-bench-wait-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  double before = current_rss_mb();
  {
    saga::EngineOptions options;
    options.database = (dir / "wait.db").string();
    options.durability = saga::Durability::kNormal;
    std::atomic<int> waiting{0};
    options.on_event = [&](const std::string&, const saga::HistoryEvent& e) {
      if (e.kind == "step_started" && e.step == "nap") ++waiting;
    };
    auto engine = std::move(saga::Engine::open(options)).value();
    constexpr const char* kWaits = R"(
service orders { }
saga waits(order: string) {
  step reserve { do orders.reserve(order: order) -> r  undo orders.release(id: r.id) }
  step nap { do sleep(for: 1h) }
  output r
}
)";
    std::string hash =
        engine->load_program(or_exit(saga::compiler::compile_to_image("bench.saga", kWaits)))
            .value();
    engine->register_action("orders.reserve", [](const saga::ActionCall& c) {
      return json{{"id", c.idempotency_key}};
    });
    auto t0 = Clock::now();
    for (int i = 0; i < o.waiting; ++i) {
      auto id =
          engine->start_async(hash, "waits", json{{"order", fmt::format("o-{}", i)}}, nullptr);
      if (!id.ok()) std::exit(1);
      if (i % 1000 == 999) {
        while (waiting.load() < i - 5000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    while (waiting.load() < o.waiting) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    double rss = current_rss_mb();
    fmt::print(
        "waiting: {} instances asleep in a durable 1h timer: RSS {:.0f} MB ({:.0f} MB above the "
        "empty process, {:.0f} bytes each; {} evicted; goal: 1,000,000 in < 1 GiB); set up in "
        "{:.1f} s\n",
        o.waiting, rss, rss - before, (rss - before) * 1024 * 1024 / o.waiting, engine->evicted(),
        secs);
  }
  fs::remove_all(dir);
}

// Many fibers waiting in a durable one-hour sleep (fan-out sagas whose
// every iteration sleeps): RSS once all wait, per fiber.
void waiting_fibers_memory(const Options& o) {
  constexpr int kPerSaga = 100;
  const int sagas = std::max(1, o.waiting_fibers / kPerSaga);
  fs::path dir = fs::temp_directory_path() / fmt::format("saga-bench-fibers-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  double before = current_rss_mb();
  {
    saga::EngineOptions options;
    options.database = (dir / "fibers.db").string();
    options.durability = saga::Durability::kNormal;
    std::atomic<int> waiting{0};
    options.on_event = [&](const std::string&, const saga::HistoryEvent& e) {
      if (e.kind == "step_started" && e.step.rfind("nap[", 0) == 0) ++waiting;
    };
    auto engine = std::move(saga::Engine::open(options)).value();
    constexpr const char* kSleepers = R"(
saga sleepers(items: list) {
  parallel foreach item in items { step nap { do sleep(for: 1h) } }
}
)";
    std::string hash =
        engine->load_program(or_exit(saga::compiler::compile_to_image("fibers.saga", kSleepers)))
            .value();
    json items = json::array();
    for (int i = 0; i < kPerSaga; ++i) items.push_back(i);
    auto t0 = Clock::now();
    for (int i = 0; i < sagas; ++i) {
      if (!engine->start_async(hash, "sleepers", json{{"items", items}}, nullptr).ok())
        std::exit(1);
      if (i % 10 == 9) {
        while (waiting.load() < (i - 50) * kPerSaga) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    }
    while (waiting.load() < sagas * kPerSaga) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    double rss = current_rss_mb();
    fmt::print(
        "waiting fibers: {} fibers ({} sagas x {}) asleep in a durable 1h timer: RSS {:.0f} MB "
        "({:.0f} MB above the empty process, {:.2f} KB per fiber); set up in {:.1f} s\n",
        sagas * kPerSaga, sagas, kPerSaga, rss, rss - before,
        (rss - before) * 1024 / (sagas * kPerSaga), secs);
  }
  fs::remove_all(dir);
}

void usage() {
  fmt::print(
      "usage: engine_bench [flags]\n"
      "  --n N               order sagas per run (5000)\n"
      "  --conc A,B          concurrencies of the order saga (1,256)\n"
      "  --durability D,E    full, normal (full,normal)\n"
      "  --runs N            runs per figure; the median is printed (3)\n"
      "  --fail-pct P        percent of order sagas that fail and compensate (0)\n"
      "  --fanout N          items of the fan-out saga, run under full durability; 0 skips (100)\n"
      "  --fanout-n N        fan-out sagas per run (500)\n"
      "  --waiting N         instances waiting in a timer for the memory figure; 0 skips (100000)\n"
      "  --waiting-fibers N  fibers waiting in a timer for the memory figure; 0 skips (100000)\n"
      "  --peers DIR         the peers' results to compare with (../shared/peers/results)\n"
      "  --metrics M         off, on (the engine reports to saga::Metrics) or both: runs with\n"
      "                      and without metrics interleaved, and their ratio (off)\n"
      "  --memory KIND       only the memory figure KIND (waiting, fibers), in this process;\n"
      "                      without it each runs in a fresh process of its own\n");
}

// Runs this program again for one memory figure (--memory KIND) and waits
// for it: a fresh process, whose RSS holds nothing of the figures before.
bool memory_in_child(const char* kind, const Options& o) {
  std::vector<std::string> args = {"engine_bench",
                                   "--memory",
                                   kind,
                                   "--waiting",
                                   std::to_string(o.waiting),
                                   "--waiting-fibers",
                                   std::to_string(o.waiting_fibers)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
    fmt::print(stderr, "engine_bench: cannot start the memory figure: {}\n", std::strerror(errno));
    return false;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage();
      return 0;
    }
  }
  if (argc % 2 == 0) {
    usage();
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--n")
      o.n = std::stoi(v);
    else if (k == "--runs")
      o.runs = std::stoi(v);
    else if (k == "--fail-pct")
      o.fail_pct = std::stoi(v);
    else if (k == "--waiting")
      o.waiting = std::stoi(v);
    else if (k == "--fanout")
      o.fanout = std::stoi(v);
    else if (k == "--fanout-n")
      o.fanout_n = std::stoi(v);
    else if (k == "--waiting-fibers")
      o.waiting_fibers = std::stoi(v);
    else if (k == "--peers")
      o.peers = v;
    else if (k == "--memory" && (v == "waiting" || v == "fibers"))
      o.memory = v;
    else if (k == "--durability")
      o.durability = split(v);
    else if (k == "--metrics" && (v == "off" || v == "on" || v == "both"))
      o.metrics = v;
    else if (k == "--conc") {
      o.conc.clear();
      for (auto& c : split(v)) o.conc.push_back(std::stoi(c));
    } else {
      fmt::print(stderr, "unknown option {}\n", k);
      usage();
      return 2;
    }
  }
  if (!o.memory.empty()) {
    if (o.memory == "waiting") waiting_memory(o);
    if (o.memory == "fibers") waiting_fibers_memory(o);
    return 0;
  }
  auto peers = read_peers(o.peers);
  fmt::print(
      "engine_bench: order saga (3 steps, no-op in-process actions), n={} per run, median of {} "
      "runs, {} % fail; {}\n",
      o.n, o.runs, o.fail_pct, saga::bench::allocator_name());
  double best_peer = 0, dbos_p50 = 0;
  for (const Peer& p : peers) {
    best_peer = std::max(best_peer, p.sagas_per_s);
    if (p.name == "DBOS" && p.conc == 1) dbos_p50 = p.p50_ms;
  }
  const Workload order{false, o.n, 3};
  for (const std::string& d : o.durability) {
    auto durability = d == "full" ? saga::Durability::kFull : saga::Durability::kNormal;
    for (int conc : o.conc) {
      if (o.metrics == "both") {
        metrics_ratio(o, order, conc, d, durability);
        continue;
      }
      std::vector<double> rate, p50, p99, cpu, batch, per_saga;
      for (int r = 0; r < o.runs; ++r) {
        Sample s = run_once(o, order, conc, durability, o.metrics == "on");
        rate.push_back(s.sagas_per_s);
        p50.push_back(s.p50_ms);
        p99.push_back(s.p99_ms);
        cpu.push_back(s.cpu_ms_per_saga);
        batch.push_back(s.transitions_per_commit);
        per_saga.push_back(s.transitions_per_saga);
      }
      std::string ratio;
      if (best_peer > 0)
        ratio += fmt::format("  {:.0f}x best peer ({:.0f}/s)", median(rate) / best_peer, best_peer);
      if (dbos_p50 > 0 && conc == 1)
        ratio += fmt::format("  p50 = 1/{:.1f} of DBOS's {} ms", dbos_p50 / median(p50), dbos_p50);
      fmt::print(
          "{:<6} conc {:>4}: {:>8.0f} sagas/s (min {:.0f}, max {:.0f})  p50 {:.3f} ms  p99 {:.3f} "
          "ms  cpu {:.3f} ms/saga  {:.1f} commits/saga, {:.0f} per commit{}\n",
          d, conc, median(rate), *std::min_element(rate.begin(), rate.end()),
          *std::max_element(rate.begin(), rate.end()), median(p50), median(p99), median(cpu),
          median(per_saga), median(batch), ratio);
    }
  }
  if (o.fanout > 0) {
    const Workload fan{true, o.fanout_n, o.fanout + 2};
    for (int conc : {1, 16}) {
      std::vector<double> rate, p50, cpu, per_saga;
      for (int r = 0; r < o.runs; ++r) {
        Sample s = run_once(o, fan, conc, saga::Durability::kFull);
        rate.push_back(s.sagas_per_s);
        p50.push_back(s.p50_ms);
        cpu.push_back(s.cpu_ms_per_saga);
        per_saga.push_back(s.transitions_per_saga);
      }
      const double per_step = median(cpu) / fan.steps;
      // A branch must not cost more than a step: the 3-step saga's CPU per
      // step with as many steps in flight (conc x items), measured now.
      const int in_flight = conc * o.fanout;
      std::vector<double> order_cpu;
      for (int r = 0; r < o.runs; ++r) {
        order_cpu.push_back(run_once(o, order, in_flight, saga::Durability::kFull).cpu_ms_per_saga);
      }
      const double order_per_step = median(order_cpu) / order.steps;
      fmt::print(
          "fan-out ({} items) full conc {:>3}: {:>7.0f} sagas/s = {:.0f} steps/s  p50 {:.3f} ms  "
          "cpu {:.4f} ms/step ({:.2f}x the 3-step saga's {:.4f} with the same {} steps in "
          "flight)  {:.1f} commits/saga\n",
          o.fanout, conc, median(rate), median(rate) * fan.steps, median(p50), per_step,
          per_step / order_per_step, order_per_step, in_flight, median(per_saga));
    }
  }
  fmt::print("peak RSS so far: {:.0f} MB\n", peak_rss_mb());
  bool ok = true;
  if (o.waiting > 0) ok = memory_in_child("waiting", o) && ok;
  if (o.waiting_fibers > 0) ok = memory_in_child("fibers", o) && ok;
  return ok ? 0 : 1;
}
