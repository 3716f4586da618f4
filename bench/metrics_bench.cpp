// Metrics benchmark: the time of saga::Metrics::scrape() (what `/metrics`
// serves) with many instances in the database, and of the one store query
// it makes (Store::count_by_status). It fills a fresh database with
// --instances instances through the store directly (group commits of up to
// 4,096 rows, durability normal: seconds, not the engine's pace), spread over
// the statuses as a long-running deployment has them (mostly finished), then
// opens an engine with metrics on it, runs --sagas orders of
// samples/order.saga so that every per-saga and per-step series has values,
// and times --scrapes scrapes: median, min and max. `--help` lists the flags.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

#include "bench/allocator.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/metrics.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int instances = 100000;
  int scrapes = 21;
  int sagas = 100;
};

void usage() {
  fmt::print(
      "usage: metrics_bench [options]\n"
      "  --instances N  instances in the database (100000)\n"
      "  --scrapes N    scrapes timed; the median is printed (21)\n"
      "  --sagas N      orders run through the engine first, for the series' values (100)\n");
}

using saga::bench::median;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Writes `n` finished (and some unfinished) instances of `hash` straight into
// the store: 90% completed, 5% compensated, 2% failed, 1% stuck, 2% pending.
void fill(saga::Store& store, const std::string& hash, int n) {
  for (int i = 0; i < n; ++i) {
    saga::Transition t;
    t.create = true;
    saga::InstanceRecord& r = t.instance;
    r.id = fmt::format("bench-{:08}", i);
    r.program_hash = hash;
    r.saga = "order_fulfillment";
    const int k = i % 100;
    r.status = k < 90   ? saga::InstanceStatus::kCompleted
               : k < 95 ? saga::InstanceStatus::kCompensated
               : k < 97 ? saga::InstanceStatus::kFailed
               : k < 98 ? saga::InstanceStatus::kStuck
                        : saga::InstanceStatus::kPending;
    r.input_json = R"({"order_id":"o-1","customer":"c-1","amount":42,"items":["book"]})";
    if (r.status == saga::InstanceStatus::kCompleted) r.output_json = R"({"order":"o-1"})";
    r.created_ms = r.updated_ms = 1'700'000'000'000 + i;
    t.events.push_back({r.created_ms, "started", {}, 0, {}, {}, {}});
    store.submit(std::move(t), [](const saga::Status& s) {
      if (!s.ok()) {
        fmt::print(stderr, "fill failed: {}\n", s.message());
        std::exit(1);
      }
    });
  }
  store.flush();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      usage();
      return 0;
    }
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    std::string v = argv[++i];
    if (k == "--instances") {
      o.instances = std::stoi(v);
    } else if (k == "--scrapes") {
      o.scrapes = std::max(1, std::stoi(v));
    } else if (k == "--sagas") {
      o.sagas = std::stoi(v);
    } else {
      fmt::print(stderr, "unknown option {}\n", k);
      usage();
      return 2;
    }
  }
  fs::path dir = fs::temp_directory_path() / fmt::format("saga-metrics-bench-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = (dir / "bench.db").string();
  auto image =
      saga::compiler::compile_file_to_image(std::string(SAGA_SOURCE_DIR) + "/samples/order.saga");
  if (!image.ok()) {
    fmt::print(stderr, "{}\n", image.status().message());
    return 1;
  }

  std::string hash;
  {
    // The program first (through an engine, as a worker stores it), then the rows.
    saga::EngineOptions options;
    options.database = db;
    options.durability = saga::Durability::kNormal;
    auto engine = std::move(saga::Engine::open(options)).value();
    hash = engine->load_program(image.value()).value();
    auto t0 = Clock::now();
    fill(engine->store(), hash, o.instances);
    fmt::print("metrics_bench: {} instances written in {:.0f} ms; {}\n", o.instances, ms_since(t0),
               saga::bench::allocator_name());
  }

  auto metrics = std::make_shared<saga::Metrics>();
  saga::EngineOptions options;
  options.database = db;
  options.durability = saga::Durability::kNormal;
  options.observer = metrics;
  auto engine = std::move(saga::Engine::open(options)).value();
  engine->load_program(image.value()).value();
  for (const char* a :
       {"inventory.reserve", "payment.charge", "shipping.express", "shipping.standard"}) {
    engine->register_action(a, [](const saga::ActionCall&) {
      return json{{"id", "X-1"}, {"status", "ok"}, {"tracking", "T-1"}};
    });
  }
  for (int i = 0; i < o.sagas; ++i) {
    auto id = engine->start(
        hash, "order_fulfillment",
        json{{"order_id", "o-1"}, {"customer", "c-1"}, {"amount", 42}, {"items", {"book"}}});
    if (!id.ok()) {
      fmt::print(stderr, "start failed: {}\n", id.status().message());
      return 1;
    }
  }
  engine->wait_idle();

  std::vector<double> scrape_ms, count_ms;
  size_t bytes = 0;
  for (int i = 0; i < o.scrapes; ++i) {
    auto t0 = Clock::now();
    auto counts = engine->store().count_by_status();
    count_ms.push_back(ms_since(t0));
    if (!counts.ok()) {
      fmt::print(stderr, "count_by_status: {}\n", counts.status().message());
      return 1;
    }
    t0 = Clock::now();
    bytes = metrics->scrape().size();
    scrape_ms.push_back(ms_since(t0));
  }
  fmt::print(
      "scrape with {} instances: median {:.2f} ms (min {:.2f}, max {:.2f}) over {} scrapes, "
      "{} bytes; of which Store::count_by_status: median {:.2f} ms\n",
      o.instances + o.sagas, median(scrape_ms),
      *std::min_element(scrape_ms.begin(), scrape_ms.end()),
      *std::max_element(scrape_ms.begin(), scrape_ms.end()), o.scrapes, bytes, median(count_ms));
  engine.reset();
  fs::remove_all(dir);
  return 0;
}
