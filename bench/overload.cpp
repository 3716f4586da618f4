// Overload benchmark: the order saga (samples/order.saga) against three
// services of fixed capacity, at offered loads of 1x to 40x that capacity,
// with the engine's overload protection (admission control, adaptive
// concurrency, retry budgets; README, "Under overload") and, for
// comparison, without it.
//
// Each service (inventory, payment, shipping) serves --workers calls at once,
// each for --service-ms; further calls wait in the service's own FIFO queue,
// as an overloaded server's do, and a call whose caller gave up (a timeout)
// is still served. Its capacity is workers / service-ms calls per second,
// and since an order calls each service once, that many orders per second.
// "1x" is `workers` orders in flight (each at one service at a time), "40x"
// forty times that: a closed loop keeps that many orders started for
// --seconds, then stops starting and waits for every instance to end.
//
// Printed per load: goodput (orders completed per second during the load),
// orders compensated because a step timed out, p50/p99 latency of completed
// orders (start to end, admission wait included), and whether every instance
// ended after the load stopped; the medians of --runs runs. Exit status 1
// when an instance did not end, or (with protection) an order was
// compensated by a timeout: the runtime's own queueing must never cause one.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "bench/allocator.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<int> levels{1, 2, 4, 10, 40};
  int workers = 10;
  int service_ms = 100;
  double seconds = 10;
  int runs = 1;
  bool compare = true;  // Also run without protection.
};

// A service of fixed capacity (see the top of the file), on one thread.
class CappedService {
 public:
  CappedService(std::string name, int workers, int service_ms)
      : name_(std::move(name)), workers_(workers), service_(service_ms) {
    thread_ = std::thread([this] { loop(); });
  }
  ~CappedService() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void call(const saga::ActionCall& c, saga::Completion done) {
    std::lock_guard lock(mu_);
    waiting_.push_back({c.action, c.idempotency_key, std::move(done)});
    start_due();
    cv_.notify_all();
  }

 private:
  struct Job {
    std::string action, key;
    saga::Completion done;
  };
  struct Serving {
    Clock::time_point until;
    uint64_t seq;
    bool operator>(const Serving& o) const { return until > o.until; }
  };
  // Called with mu_ held.
  void start_due() {
    while (static_cast<int>(serving_.size()) < workers_ && !waiting_.empty()) {
      jobs_.emplace(next_, std::move(waiting_.front()));
      waiting_.pop_front();
      serving_.push({Clock::now() + service_, next_++});
    }
  }
  void loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (serving_.empty()) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, serving_.top().until) == std::cv_status::no_timeout) continue;
      while (!serving_.empty() && serving_.top().until <= Clock::now()) {
        auto node = jobs_.extract(serving_.top().seq);
        serving_.pop();
        Job& job = node.mapped();
        json result = {{"id", name_ + "-" + job.key}};
        if (name_ == "shipping") result = {{"id", job.key}, {"status", "ok"}, {"tracking", "T"}};
        job.done.succeed(std::move(result));
      }
      start_due();
    }
  }

  std::string name_;
  int workers_;
  std::chrono::milliseconds service_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<Job> waiting_;
  std::priority_queue<Serving, std::vector<Serving>, std::greater<>> serving_;
  std::map<uint64_t, Job> jobs_;
  uint64_t next_ = 0;
  std::thread thread_;
};

struct Result {
  double goodput = 0;
  int64_t timeout_compensations = 0;
  double p50_ms = 0, p99_ms = 0;
  bool all_ended = false;
  int64_t completed = 0, started = 0;
};

json order(int n) {
  json items = json::array();
  for (int i = 0; i <= n % 5; ++i) items.push_back(fmt::format("sku-{}", (n * 7 + i) % 50));
  return {{"order_id", fmt::format("order-{}", n)},
          {"customer", fmt::format("customer-{}", n % 7)},
          {"amount", 25 + (n * 37) % 200},
          {"items", items}};
}

Result run_level(const Options& o, const std::vector<uint8_t>& image, int level, bool protect) {
  const fs::path dir =
      fs::temp_directory_path() / fmt::format("saga-overload-{}-{}-{}", ::getpid(), level, protect);
  fs::remove_all(dir);
  fs::create_directories(dir);
  saga::EngineOptions options;
  options.database = (dir / "sagas.db").string();
  options.durability = saga::Durability::kNormal;
  if (!protect) {
    options.max_active = 0;
    options.overload.adaptive = false;
    options.overload.retry_budget = false;
  }
  Result r;
  {
    auto engine = saga::Engine::open(options).value();
    const std::string hash = engine->load_program(image).value();
    CappedService inventory("inventory", o.workers, o.service_ms);
    CappedService payment("payment", o.workers, o.service_ms);
    CappedService shipping("shipping", o.workers, o.service_ms);
    auto bind = [&](const char* action, CappedService& svc) {
      engine->register_async_action(
          action, [&svc](const saga::ActionCall& c, saga::Completion d) { svc.call(c, d); });
    };
    bind("inventory.reserve", inventory);
    bind("inventory.release", inventory);
    bind("payment.charge", payment);
    bind("payment.refund", payment);
    bind("shipping.express", shipping);
    bind("shipping.standard", shipping);
    bind("shipping.cancel", shipping);

    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0, next = 0;
    std::vector<double> latencies;
    const auto begin = Clock::now();
    const auto stop_at = begin + std::chrono::duration<double>(o.seconds);
    const int offered = level * o.workers;
    std::function<void()> start_one = [&] {
      const auto t0 = Clock::now();
      ++r.started;
      ++in_flight;
      auto id = engine->start_async(
          hash, "order_fulfillment", order(++next), [&, t0](const saga::InstanceInfo& info) {
            std::lock_guard lock(mu);
            const auto now = Clock::now();
            if (now <= stop_at) {
              if (info.status == saga::InstanceStatus::kCompleted) {
                ++r.completed;
                latencies.push_back(std::chrono::duration<double, std::milli>(now - t0).count());
              }
            }
            if (info.status != saga::InstanceStatus::kCompleted && info.error_class == "timeout") {
              ++r.timeout_compensations;
            }
            --in_flight;
            cv.notify_all();
          });
      if (!id.ok()) {
        --in_flight;
        fmt::print(stderr, "overload: start failed: {}\n", id.status().message());
      }
    };
    std::unique_lock lock(mu);
    while (Clock::now() < stop_at) {
      while (in_flight < offered) start_one();
      cv.wait_until(lock, stop_at);
    }
    // The load stops: every instance must end (bounded by the saga's own
    // timeouts and retries, well under two minutes here).
    r.all_ended = cv.wait_for(lock, std::chrono::minutes(2), [&] { return in_flight == 0; });
    lock.unlock();
    r.goodput = r.completed / o.seconds;
    std::sort(latencies.begin(), latencies.end());
    if (!latencies.empty()) {
      r.p50_ms = latencies[latencies.size() / 2];
      r.p99_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
    }
    engine->wait_idle(std::chrono::seconds(1));
  }
  fs::remove_all(dir);
  return r;
}

using saga::bench::median;

void usage() {
  std::printf(
      "usage: overload [flags]\n"
      "  --levels A,B,..   offered loads, in multiples of the services' capacity (1,2,4,10,40)\n"
      "  --workers N       calls each service serves at once (10)\n"
      "  --service-ms MS   how long each call takes once served (100)\n"
      "  --seconds S       how long each load is offered (10)\n"
      "  --runs N          runs per load; the medians are printed (1)\n"
      "  --no-compare      only with protection (default: also without, for comparison)\n");
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(std::stoi(s.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--help" || a == "-h") {
        usage();
        return 0;
      } else if (a == "--levels") {
        o.levels = parse_list(value());
      } else if (a == "--workers") {
        o.workers = std::stoi(value());
      } else if (a == "--service-ms") {
        o.service_ms = std::stoi(value());
      } else if (a == "--seconds") {
        o.seconds = std::stod(value());
      } else if (a == "--runs") {
        o.runs = std::stoi(value());
      } else if (a == "--no-compare") {
        o.compare = false;
      } else {
        usage();
        return 2;
      }
    } catch (const std::exception&) {
      fmt::print(stderr, "overload: bad value for {}\n", a);
      return 2;
    }
  }
  auto image = saga::compiler::compile_file_to_image(SAGA_SOURCE_DIR "/samples/order.saga");
  if (!image.ok()) {
    fmt::print(stderr, "overload: {}\n", image.status().message());
    return 1;
  }
  const double capacity = 1000.0 * o.workers / o.service_ms;
  fmt::print(
      "overload: samples/order.saga against 3 services of {} workers x {} ms ({:.0f} orders/s "
      "at most), {} s per load, median of {} run(s)\n\n",
      o.workers, o.service_ms, capacity, o.seconds, o.runs);
  bool ok = true;
  for (bool protect : o.compare ? std::vector<bool>{true, false} : std::vector<bool>{true}) {
    fmt::print("{}\n", protect ? "with overload protection (the defaults)"
                               : "without (--max-active 0, --no-adaptive, no retry budget)");
    fmt::print("  {:>5} {:>9} {:>14} {:>10} {:>10} {:>10} {:>9}\n", "load", "in flight",
               "goodput/s", "of peak", "timeouts", "p50 ms", "p99 ms");
    std::vector<double> goodputs;
    std::vector<std::vector<double>> rows;
    for (int level : o.levels) {
      std::vector<double> g, t, p50, p99;
      bool ended = true;
      for (int run = 0; run < o.runs; ++run) {
        Result r = run_level(o, image.value(), level, protect);
        g.push_back(r.goodput);
        t.push_back(static_cast<double>(r.timeout_compensations));
        p50.push_back(r.p50_ms);
        p99.push_back(r.p99_ms);
        ended = ended && r.all_ended;
        if (protect && r.timeout_compensations > 0) ok = false;
      }
      if (!ended) ok = false;
      goodputs.push_back(median(g));
      rows.push_back({static_cast<double>(level), median(g), median(t), median(p50), median(p99),
                      ended ? 1.0 : 0.0});
    }
    const double peak = *std::max_element(goodputs.begin(), goodputs.end());
    for (const auto& row : rows) {
      fmt::print("  {:>4}x {:>9} {:>14.1f} {:>9.0f}% {:>10.0f} {:>10.0f} {:>9.0f}{}\n",
                 static_cast<int>(row[0]), static_cast<int>(row[0]) * o.workers, row[1],
                 peak > 0 ? 100 * row[1] / peak : 0, row[2], row[3], row[4],
                 row[5] > 0 ? "" : "  (instances left unfinished)");
    }
    fmt::print("\n");
  }
  return ok ? 0 : 1;
}
