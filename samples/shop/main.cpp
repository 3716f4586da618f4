// shop: a host application that embeds the Saga runtime. It runs many
// samples/order.saga sagas against in-process inventory, payment and shipping
// services (participants.hpp), with injected failures and slowness, prints
// each order's outcome and which compensations ran, and can kill itself with
// SIGKILL in the middle of the work to show that a second run with --resume
// finishes everything the first one left. See README.md for the commands.
//
// The parts a host application needs, in order: open an Engine on a
// database, load a program (compiled in memory from .saga, or a .sagac),
// register the actions, resume() what an earlier process left, then start
// instances (start_async, with a bound on how many run at once).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "samples/shop/participants.hpp"

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Args {
  std::string program = SAGA_SOURCE_DIR "/samples/order.saga";
  int orders = 20;
  int concurrency = 8;
  double fail_rate = 0;
  std::string fail_class = "unavailable";
  int slow_ms = 0;
  std::string db;
  std::string ledger;
  std::string durability = "full";
  uint64_t seed = 1;
  int crash_after = 0;  // 0: never.
  size_t max_active = saga::EngineOptions{}.max_active;
  bool adaptive = true;
  bool resume = false;
};

// Loads FILE.saga (compiled in memory; the compiler is only needed for this)
// or FILE.sagac into the engine and its database; returns the program hash.
saga::Result<std::string> load_program(saga::Engine& engine, const std::string& path) {
  if (path.size() < 5 || path.substr(path.size() - 5) != ".saga") {
    return engine.load_program_file(path);
  }
  auto image = saga::compiler::compile_file_to_image(path);
  if (!image.ok()) return image.status();
  return engine.load_program(image.value());
}

// The input of order number n (1-based). Amounts and item counts vary, so
// both the express and the standard shipping branches run.
json make_order(int n) {
  json items = json::array();
  for (int i = 0; i <= n % 5; ++i) items.push_back(fmt::format("sku-{}", (n * 7 + i) % 50));
  return {{"order_id", fmt::format("order-{:04}", n)},
          {"customer", fmt::format("customer-{}", n % 7)},
          {"amount", 25 + (n * 37) % 200},
          {"items", items}};
}

// Random failures for --fail-rate: one draw per order, step and attempt, so
// a retry gets a fresh chance and one --seed gives the same failures in every
// run (the instance ids, and so the idempotency keys, differ from run to
// run). `rejected` means "known to have had no effect"; `unavailable` leaves
// the caller in doubt, and half of those calls did take effect (only the
// reply was lost). Undos never fail in this sample.
shop::Planner random_failures(double rate, const std::string& error_class, uint64_t seed) {
  return [=](const saga::ActionCall& call, const std::string& order_id) {
    shop::Plan plan;
    if (call.compensation || rate <= 0) return plan;
    const std::string what = order_id.empty() ? call.idempotency_key : order_id + "/" + call.step;
    std::seed_seq seq{seed, shop::stable_hash(what, seed), uint64_t{call.attempt}};
    std::mt19937_64 rng(seq);
    std::uniform_real_distribution<double> draw(0, 1);
    if (draw(rng) < rate) {
      plan.error_class = error_class;
      bool lost_reply = error_class != "rejected" && draw(rng) < 0.5;
      plan.outcome = lost_reply ? shop::Plan::Outcome::kFailAfterEffect
                                : shop::Plan::Outcome::kFailBeforeEffect;
    }
    return plan;
  };
}

// Tallies and prints finished orders.
class Report {
 public:
  explicit Report(saga::Engine& engine) : engine_(engine) {}

  // `order` is the order id (InstanceInfo::input is null in start_async's
  // callback, so the caller says which order the instance runs).
  void print(const std::string& order, const saga::InstanceInfo& info) {
    std::string status = saga::to_string(info.status);
    ++counts_[status];
    if (info.status == saga::InstanceStatus::kCompleted) {
      fmt::print("{}  {:<11}  {}\n", order, status, info.output.dump());
      return;
    }
    fmt::print("{}  {:<11}  {}: {}\n", order, status, info.error_class, info.error_message);
    // Which compensations ran, from the instance's committed history.
    auto history = engine_.store().history(info.id);
    if (!history.ok()) return;
    std::vector<std::string> undone;
    for (const saga::HistoryEvent& e : history.value()) {
      if (e.kind == "undo_completed") undone.push_back(e.step);
    }
    if (!undone.empty()) fmt::print("{:13}undo ran for: {}\n", "", fmt::join(undone, ", "));
  }

  int count(const std::string& status) const {
    auto it = counts_.find(status);
    return it == counts_.end() ? 0 : it->second;
  }
  int total() const {
    int n = 0;
    for (const auto& [status, c] : counts_) n += c;
    return n;
  }

 private:
  saga::Engine& engine_;
  std::map<std::string, int> counts_;
};

int run(const Args& args) {
  // The database: a fresh file unless --db names one (--resume needs it).
  std::string db = args.db;
  if (db.empty()) {
    std::string dir = (fs::temp_directory_path() / "shop-XXXXXX").string();
    if (!::mkdtemp(dir.data())) {
      fmt::print(stderr, "shop: cannot create a temporary directory\n");
      return 1;
    }
    db = dir + "/orders.db";
  }
  std::string ledger = args.ledger;
  if (ledger.empty()) ledger = fs::path(db).replace_extension(".ledger").string();

  saga::EngineOptions options;
  options.database = db;
  options.durability =
      args.durability == "normal" ? saga::Durability::kNormal : saga::Durability::kFull;
  options.seed = args.seed;
  options.max_active = args.max_active;
  options.overload.adaptive = args.adaptive;
  auto opened = saga::Engine::open(options);
  if (!opened.ok()) {
    fmt::print(stderr, "shop: {}\n", opened.status().message());
    return 1;
  }
  std::unique_ptr<saga::Engine> engine = std::move(opened).value();
  auto hash = load_program(*engine, args.program);
  if (!hash.ok()) {
    fmt::print(stderr, "shop: {}\n", hash.status().message());
    return 1;
  }

  // The services, in this process; their ledger is their own database.
  shop::Participants participants(
      {.ledger_path = ledger,
       .slow_ms = args.slow_ms,
       .seed = args.seed,
       .planner = random_failures(args.fail_rate, args.fail_class, args.seed)});
  participants.register_actions(*engine);

  fmt::print("shop: {} orders, concurrency {}, fail-rate {} ({}), slow {} ms, durability {}\n",
             args.orders, args.concurrency, args.fail_rate, args.fail_class, args.slow_ms,
             args.durability);
  fmt::print("      db {}\n      ledger {}\n", db, ledger);
  auto started_at = std::chrono::steady_clock::now();
  Report report(*engine);

  // 1. Finish what an earlier process left. resume(id) takes up an
  // unfinished instance from its last committed checkpoint and returns 1, or
  // returns 0 when another process that still runs owns it (then this one
  // leaves it alone). resume() without an id would take up all of them at once.
  std::set<std::string> known_orders;
  if (args.resume) {
    auto unfinished = engine->store().list_unfinished();
    if (!unfinished.ok()) {
      fmt::print(stderr, "shop: cannot resume: {}\n", unfinished.status().message());
      return 1;
    }
    std::vector<std::string> taken;
    for (const saga::InstanceRecord& r : unfinished.value()) {
      auto resumed = engine->resume(r.id);
      if (!resumed.ok()) {
        fmt::print(stderr, "shop: cannot resume {}: {}\n", r.id, resumed.status().message());
      } else if (resumed.value() == 1) {
        taken.push_back(r.id);
      }
    }
    fmt::print("resumed {} unfinished instance(s) left by an earlier run\n", taken.size());
    if (taken.size() < unfinished->size()) {
      fmt::print("{} other unfinished instance(s) belong to a process that is still alive\n",
                 unfinished->size() - taken.size());
    }
    for (const std::string& id : taken) {
      auto info = engine->wait(id);
      if (info.ok()) report.print(info->input.value("order_id", id), info.value());
    }
    auto all = engine->store().list_instances(std::nullopt, 1'000'000);
    if (all.ok()) {
      for (const saga::InstanceRecord& r : all.value()) {
        known_orders.insert(json::parse(r.input_json).value("order_id", ""));
      }
    }
  }

  // 2. Start the orders not in the database yet, at most --concurrency at
  // once. The done callback runs on an engine thread and must not block: it
  // only queues the result; this thread prints.
  std::vector<json> todo;
  for (int n = 1; n <= args.orders; ++n) {
    json order = make_order(n);
    if (!known_orders.count(order["order_id"].get<std::string>())) todo.push_back(order);
  }
  if (args.resume && todo.size() != static_cast<size_t>(args.orders)) {
    fmt::print("{} of the {} orders were already in the database; starting the other {}\n",
               args.orders - static_cast<int>(todo.size()), args.orders, todo.size());
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::string, saga::InstanceInfo>> finished;  // (order id, outcome)
  size_t next = 0;
  int in_flight = 0, finished_here = 0;
  std::unique_lock lock(mu);
  while (next < todo.size() || in_flight > 0) {
    cv.wait(lock, [&] {
      return !finished.empty() || (next < todo.size() && in_flight < args.concurrency);
    });
    while (!finished.empty()) {
      auto [order, info] = std::move(finished.front());
      finished.pop_front();
      --in_flight;
      ++finished_here;
      lock.unlock();
      report.print(order, info);
      if (args.crash_after > 0 && finished_here == args.crash_after) {
        // 3. The crash: no destructor, no flush of the engine, orders in flight.
        fmt::print("crash: SIGKILL after {} finished orders, {} in flight, {} not started\n",
                   finished_here, in_flight, todo.size() - next);
        std::fflush(stdout);
        std::raise(SIGKILL);
      }
      lock.lock();
    }
    while (next < todo.size() && in_flight < args.concurrency) {
      const json& order = todo[next++];
      std::string order_id = order["order_id"].get<std::string>();
      auto id = engine->start_async(hash.value(), "order_fulfillment", order,
                                    [&, order_id](const saga::InstanceInfo& info) {
                                      std::lock_guard l(mu);
                                      finished.emplace_back(order_id, info);
                                      cv.notify_one();
                                    });
      if (id.ok()) {
        ++in_flight;
      } else {
        fmt::print(stderr, "shop: cannot start {}: {}\n", order_id, id.status().message());
      }
    }
  }
  lock.unlock();

  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  participants.stop();  // Before the engine goes away.
  shop::LedgerStats ledger_stats = participants.ledger().stats();
  fmt::print(
      "\nsummary: {} orders finished in {:.2f} s ({:.1f} sagas/s): {} completed, {} compensated, "
      "{} failed, {} stuck\n",
      report.total(), seconds, report.total() / std::max(seconds, 1e-9), report.count("completed"),
      report.count("compensated"), report.count("failed") + report.count("cancelled"),
      report.count("stuck"));
  fmt::print(
      "ledger:  {} effects applied ({} undone), {} undos ({} with nothing to undo), "
      "{} deliveries, {} answered from the ledger (deduplicated)\n",
      ledger_stats.effects, ledger_stats.undone, ledger_stats.undos, ledger_stats.orphan_undos,
      ledger_stats.deliveries, ledger_stats.deduplicated);
  // What overload protection did (README, "Under overload"): each service's
  // concurrency limit at the end, and the calls that had to wait for it.
  const nlohmann::json services = engine->services();
  for (const auto& [name, g] : services.items()) {
    fmt::print(
        "service: {:<9} limit {} (baseline {:.1f} ms, {} shrinks), {} calls waited (longest "
        "{} ms), {} shed, {} retries waited for the budget\n",
        name, g["limit"].get<int>(), g["baseline_ms"].get<double>(), g["shrinks"].get<int>(),
        g["delayed"].get<int64_t>(), g["max_wait_ms"].get<int64_t>(), g["shed"].get<int64_t>(),
        g["budget_waits"].get<int64_t>());
  }
  return report.count("stuck") > 0 ? 4 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  CLI::App app{"shop: run many order sagas against in-process services (a Saga host sample)"};
  app.add_option("--program", args.program, "FILE.saga (compiled in memory) or FILE.sagac")
      ->capture_default_str();
  app.add_option("--orders", args.orders, "How many orders to run")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--concurrency", args.concurrency, "Orders running at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--fail-rate", args.fail_rate, "Probability that an action fails (0..1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fail-class", args.fail_class, "How actions fail")
      ->capture_default_str()
      ->check(CLI::IsMember({"unavailable", "rejected"}));
  app.add_option("--slow", args.slow_ms, "Each action answers after up to MS milliseconds")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--db", args.db, "The engine's database (default: a fresh temporary file)");
  app.add_option("--ledger", args.ledger, "The services' ledger (default: next to the db)");
  app.add_option("--durability", args.durability, "full: fsync every commit; normal: not")
      ->capture_default_str()
      ->check(CLI::IsMember({"full", "normal"}));
  app.add_option("--max-active", args.max_active,
                 "Orders the engine runs at once; the rest wait `pending` (0: no limit)");
  app.add_flag("!--no-adaptive", args.adaptive,
               "Fixed concurrency per service (its bulkhead) instead of one that follows latency");
  app.add_option("--seed", args.seed, "Seeds failures, delays and retry jitter")
      ->capture_default_str();
  app.add_option("--crash-after", args.crash_after,
                 "Kill this process (SIGKILL) after N orders finished")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--resume", args.resume,
               "First finish the unfinished instances in --db, then start the orders not in it");
  CLI11_PARSE(app, argc, argv);
  if (args.resume && args.db.empty()) {
    fmt::print(stderr, "shop: --resume needs the --db of the earlier run\n");
    return 2;
  }
  return run(args);
}
