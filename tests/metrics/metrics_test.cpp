// Metrics tests: saga::Metrics checked against a known run, not for
// presence. Eleven orders of samples/order.saga run through the real engine
// (real SQLite file, real threads) against in-process participants that
// succeed, fail once and are retried, refuse for good (compensated), or
// refuse and then cannot be refunded (stuck, with a dead letter). Every
// counter, gauge and histogram count is then compared with what that run
// must have done. A scrape taken while orders are still running goes
// through promtool.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "compiler/compile.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "saga/metrics.hpp"
#include "tests/support/eventually.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

// One sample line of the text format: name, labels, value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> parse(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = line.find_first_of("{ ");
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      size_t end = line.find('}', i);
      std::string body = line.substr(i + 1, end - i - 1);
      size_t p = 0;
      while (p < body.size()) {
        size_t eq = body.find('=', p);
        size_t q = body.find('"', eq + 2);
        s.labels[body.substr(p, eq - p)] = body.substr(eq + 2, q - eq - 2);
        p = q + 2;  // Past `",`.
      }
      i = end + 1;
    }
    s.value = std::stod(line.substr(i + 1));
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the one sample `name` whose labels include `labels`; fails
// the test (and returns -1) when there is none or more than one.
double value(const std::vector<Sample>& samples, const std::string& name,
             const std::map<std::string, std::string>& labels = {}) {
  const Sample* found = nullptr;
  int n = 0;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& kv) {
      auto it = s.labels.find(kv.first);
      return it != s.labels.end() && it->second == kv.second;
    });
    if (match) {
      found = &s;
      ++n;
    }
  }
  std::string where = name;
  for (const auto& [k, v] : labels) where += " " + k + "=" + v;
  EXPECT_EQ(n, 1) << where;
  return n == 1 ? found->value : -1;
}

// What each order's participants do, by order id prefix.
enum class Plan { kOk, kRetry, kRefuse, kStuck };

Plan plan_of(const std::string& order) {
  if (order.rfind("retry", 0) == 0) return Plan::kRetry;
  if (order.rfind("refuse", 0) == 0) return Plan::kRefuse;
  if (order.rfind("stuck", 0) == 0) return Plan::kStuck;
  return Plan::kOk;
}

// The order an action call is about: its `order` or `customer` argument
// (the test names customers like their orders), or the refund's reason
// ("order stuck-1 cancelled").
std::string order_of(const saga::ActionCall& c) {
  if (c.args.contains("order")) return c.args["order"].get<std::string>();
  if (c.args.contains("customer")) return c.args["customer"].get<std::string>();
  std::string reason = c.args.value("reason", std::string());
  return reason.rfind("order ", 0) == 0 ? reason.substr(6) : reason;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-metrics-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    engine_.reset();
    fs::remove_all(dir_);
  }

  // Opens an engine reporting to metrics_, loads samples/order.saga and
  // registers its participants. `hold_ship` makes shipping.express wait
  // until released (so that a scrape sees orders in flight).
  std::string open(bool hold_ship = false) {
    hold_ = hold_ship;
    saga::EngineOptions options;
    options.database = (dir_ / "sagas.db").string();
    options.durability = saga::Durability::kNormal;
    options.observer = metrics_;
    options.compensation.attempts = 2;
    options.compensation.initial_ms = 1;
    options.compensation.max_ms = 1;
    auto engine = saga::Engine::open(options);
    EXPECT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine).value();
    auto image = saga::compiler::compile_to_image(
        std::string(SAGA_SOURCE_DIR) + "/samples/order.saga", read_sample());
    EXPECT_TRUE(image.ok()) << image.status().message();
    auto hash = engine_->load_program(image.value());
    EXPECT_TRUE(hash.ok()) << hash.status().message();

    engine_->register_action("inventory.reserve", [](const saga::ActionCall& c) {
      return json{{"id", "R-" + c.args["order"].get<std::string>()}};
    });
    engine_->register_action("inventory.release", [](const saga::ActionCall&) { return json{}; });
    engine_->register_action("payment.charge", [](const saga::ActionCall& c) {
      if (plan_of(order_of(c)) == Plan::kRetry && c.attempt == 1) {
        throw saga::ActionError("unavailable", "payment is restarting");
      }
      return json{{"id", "P-1"}};
    });
    engine_->register_action("payment.refund", [](const saga::ActionCall& c) {
      if (plan_of(order_of(c)) == Plan::kStuck) {
        throw saga::ActionError("unavailable", "refunds are down");
      }
      return json{};
    });
    // Asynchronous, so that held calls keep no engine thread.
    engine_->register_async_action(
        "shipping.express", [this](const saga::ActionCall& c, saga::Completion done) {
          Plan plan = plan_of(order_of(c));
          if (plan == Plan::kRefuse || plan == Plan::kStuck)
            return done.fail("rejected", "no carrier");
          {
            std::lock_guard lock(hold_mu_);
            if (hold_ && (plan == Plan::kOk || plan == Plan::kRetry)) {
              held_.push_back(done);
              hold_cv_.notify_all();
              return;
            }
          }
          done.succeed(json{{"tracking", "T-1"}, {"status", "ok"}, {"id", "S-1"}});
        });
    engine_->register_action("shipping.cancel", [](const saga::ActionCall&) { return json{}; });
    return hash.value();
  }

  static std::string read_sample() {
    std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/samples/order.saga");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
  std::shared_ptr<saga::Metrics> metrics_ = std::make_shared<saga::Metrics>();
  std::unique_ptr<saga::Engine> engine_;
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool hold_ = false;
  std::vector<saga::Completion> held_;  // Express shipments of orders that go through, held.

  // Starts the mix: 5 orders that go through, 3 whose charge fails once
  // (retried), 2 the carrier refuses (compensated), 1 refused whose refund
  // keeps failing (stuck). Returns the ids by plan.
  std::map<Plan, std::vector<std::string>> start_mix(const std::string& hash) {
    std::map<Plan, std::vector<std::string>> ids;
    const std::pair<Plan, const char*> mix[] = {{Plan::kOk, "ok"},
                                                {Plan::kRetry, "retry"},
                                                {Plan::kRefuse, "refuse"},
                                                {Plan::kStuck, "stuck"}};
    const int counts[] = {5, 3, 2, 1};
    for (int m = 0; m < 4; ++m) {
      for (int i = 0; i < counts[m]; ++i) {
        std::string order = std::string(mix[m].second) + "-" + std::to_string(i);
        auto id = engine_->start(
            hash, "order_fulfillment",
            json{{"order_id", order}, {"customer", order}, {"amount", 150}, {"items", {"book"}}});
        EXPECT_TRUE(id.ok()) << id.status().message();
        if (id.ok()) ids[mix[m].first].push_back(id.value());
      }
    }
    return ids;
  }

  void expect_final(const std::map<Plan, std::vector<std::string>>& ids) {
    const std::map<Plan, saga::InstanceStatus> want = {
        {Plan::kOk, saga::InstanceStatus::kCompleted},
        {Plan::kRetry, saga::InstanceStatus::kCompleted},
        {Plan::kRefuse, saga::InstanceStatus::kCompensated},
        {Plan::kStuck, saga::InstanceStatus::kStuck}};
    for (const auto& [plan, list] : ids) {
      for (const std::string& id : list) {
        auto info = engine_->wait(id, 20s);
        ASSERT_TRUE(info.ok()) << info.status().message();
        EXPECT_EQ(info->status, want.at(plan)) << id << ": " << info->error_message;
      }
    }
  }
};

constexpr const char* kSaga = "order_fulfillment";

TEST_F(MetricsTest, CountsAKnownRunExactly) {
  std::string hash = open();
  auto ids = start_mix(hash);
  expect_final(ids);
  engine_->wait_idle(20s);
  std::vector<Sample> m = parse(metrics_->scrape());

  EXPECT_EQ(value(m, "saga_instances_started_total", {{"saga", kSaga}}), 11);
  EXPECT_EQ(value(m, "saga_instances_finished_total", {{"saga", kSaga}, {"status", "completed"}}),
            8);
  EXPECT_EQ(value(m, "saga_instances_finished_total", {{"saga", kSaga}, {"status", "compensated"}}),
            2);
  EXPECT_EQ(value(m, "saga_instances_finished_total", {{"saga", kSaga}, {"status", "stuck"}}), 1);
  EXPECT_EQ(value(m, "saga_instances_finished_total", {{"saga", kSaga}, {"status", "failed"}}), 0);
  EXPECT_EQ(value(m, "saga_instances_finished_total", {{"saga", kSaga}, {"status", "cancelled"}}),
            0);

  auto attempts = [&](const char* step, const char* outcome) {
    return value(m, "saga_step_attempts_total",
                 {{"saga", kSaga}, {"step", step}, {"outcome", outcome}});
  };
  EXPECT_EQ(attempts("reserve", "ok"), 11);
  EXPECT_EQ(attempts("charge", "ok"), 11);
  EXPECT_EQ(attempts("charge", "unavailable"), 3);  // The retried first attempts.
  EXPECT_EQ(attempts("ship", "ok"), 8);
  EXPECT_EQ(attempts("ship", "rejected"), 3);
  EXPECT_EQ(attempts("ship", "timeout"), 0);
  EXPECT_EQ(attempts("ship_standard", "ok"), 0);
  auto undos = [&](const char* step, const char* outcome) {
    return value(m, "saga_undo_attempts_total",
                 {{"saga", kSaga}, {"step", step}, {"outcome", outcome}});
  };
  EXPECT_EQ(undos("charge", "ok"), 2);           // The refused orders' refunds.
  EXPECT_EQ(undos("charge", "unavailable"), 2);  // The stuck one's, its policy's 2 attempts.
  EXPECT_EQ(undos("reserve", "ok"), 2);          // The stuck one never gets that far.
  EXPECT_EQ(undos("ship", "ok"), 0);             // A rejected step is not compensated.

  EXPECT_EQ(value(m, "saga_compensations_total", {{"saga", kSaga}}), 3);
  EXPECT_EQ(value(m, "saga_dead_letters_total", {{"saga", kSaga}}), 1);
  auto events = [&](const char* kind) {
    return value(m, "saga_history_events_total", {{"saga", kSaga}, {"kind", kind}});
  };
  EXPECT_EQ(events("started"), 11);
  EXPECT_EQ(events("attempt_failed"), 3);
  EXPECT_EQ(events("step_failed"), 3);
  EXPECT_EQ(events("undo_failed"), 1);
  EXPECT_EQ(events("undo_completed"), 4);
  EXPECT_EQ(events("stuck"), 1);
  EXPECT_EQ(events("migrated"), 0);

  EXPECT_EQ(value(m, "saga_instance_duration_seconds_count", {{"saga", kSaga}}), 11);
  // Every call made: 11 + 2 releases, 14 charges + 4 refunds, 11 shipments.
  auto calls = [&](const char* step) {
    return value(m, "saga_attempt_duration_seconds_count", {{"saga", kSaga}, {"step", step}});
  };
  EXPECT_EQ(calls("reserve"), 13);
  EXPECT_EQ(calls("charge"), 18);
  EXPECT_EQ(calls("ship"), 11);
  EXPECT_EQ(value(m, "saga_attempt_duration_seconds_bucket",
                  {{"saga", kSaga}, {"step", "ship"}, {"le", "+Inf"}}),
            11);
  EXPECT_EQ(value(m, "saga_attempts_in_flight"), 0);

  // Read from the store at scrape time.
  EXPECT_EQ(value(m, "saga_instances", {{"status", "completed"}}), 8);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "compensated"}}), 2);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "stuck"}}), 1);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "running"}}), 0);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "pending"}}), 0);
  // Only the lease renewal's timer is left, once the gates' 100 ms tick,
  // armed while a retry waited for its budget, has come due one last time.
  EXPECT_TRUE(saga::test::eventually(
      [&] { return value(parse(metrics_->scrape()), "saga_timers_armed") == 1; }, 5s))
      << value(parse(metrics_->scrape()), "saga_timers_armed");
  EXPECT_EQ(value(m, "saga_instances_active"), 0);
  EXPECT_EQ(value(m, "saga_service_in_flight", {{"service", "payment"}}), 0);
  EXPECT_GE(value(m, "saga_service_limit", {{"service", "payment"}}), 1);

  // The group commits, as the store counted them itself.
  engine_->store().flush();
  auto stats = saga::store::sqlite_store_stats(engine_->store());
  ASSERT_TRUE(stats.has_value());
  m = parse(metrics_->scrape());
  EXPECT_EQ(value(m, "saga_store_commit_transitions_sum"),
            static_cast<double>(stats->transitions_committed));
  EXPECT_EQ(value(m, "saga_store_commit_transitions_count"), static_cast<double>(stats->commits));
  EXPECT_EQ(value(m, "saga_store_commit_duration_seconds_count"),
            static_cast<double>(stats->commits));
}

// The gauges of the present while orders are out, then promtool on that text.
TEST_F(MetricsTest, PromtoolAcceptsAScrapeDuringAMixedRun) {
  std::string hash = open(/*hold_ship=*/true);
  auto ids = start_mix(hash);
  // The refused and stuck orders end; the 8 that go through (after their
  // retry, for 3) wait in `ship`, with no other call out.
  for (Plan plan : {Plan::kRefuse, Plan::kStuck}) {
    for (const std::string& id : ids[plan]) ASSERT_TRUE(engine_->wait(id, 20s).ok());
  }
  {
    std::unique_lock lock(hold_mu_);
    ASSERT_TRUE(hold_cv_.wait_for(lock, 20s, [&] { return held_.size() == 8; }));
  }
  std::string text = metrics_->scrape();
  std::vector<Sample> m = parse(text);
  EXPECT_EQ(value(m, "saga_attempts_in_flight"), 8);
  EXPECT_EQ(value(m, "saga_service_in_flight", {{"service", "shipping"}}), 8);
  EXPECT_EQ(value(m, "saga_service_in_flight", {{"service", "payment"}}), 0);
  EXPECT_EQ(value(m, "saga_instances_active"), 8);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "running"}}), 8);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "completed"}}), 0);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "compensated"}}), 2);
  EXPECT_EQ(value(m, "saga_instances", {{"status", "stuck"}}), 1);
  // Each held order armed its attempt's timeout (shipping: 5s), plus the lease renewal.
  EXPECT_EQ(value(m, "saga_timers_armed"), 8 + 1 + 8);

  const std::string promtool = SAGA_PROMTOOL;
  if (promtool.empty() || promtool.find("NOTFOUND") != std::string::npos || !fs::exists(promtool)) {
    std::fprintf(stderr,
                 "\n*** promtool NOT FOUND: the Prometheus text format is NOT checked. ***\n"
                 "*** Install Debian's `prometheus` package (./dev.sh installs it).    ***\n\n");
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  fs::path file = dir_ / "scrape.txt";
  std::ofstream(file) << text;
  if (std::getenv("SAGA_METRICS_DUMP")) std::ofstream(std::getenv("SAGA_METRICS_DUMP")) << text;
  std::string cmd = promtool + " check metrics < " + file.string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string said;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) said.append(buf, n);
  int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << said << "\n--- the scrape ---\n" << text;

  std::vector<saga::Completion> held;
  {
    std::lock_guard lock(hold_mu_);
    held.swap(held_);
    hold_ = false;
  }
  for (auto& c : held) c.succeed(json{{"tracking", "T-1"}, {"status", "ok"}, {"id", "S-1"}});
  expect_final(ids);
}

// Without an engine: the counters stay, the engine's gauges go.
TEST_F(MetricsTest, ScrapesWithoutAnEngineAndAfterItClosed) {
  std::vector<Sample> before = parse(metrics_->scrape());
  EXPECT_EQ(value(before, "saga_attempts_in_flight"), 0);
  EXPECT_TRUE(std::none_of(before.begin(), before.end(),
                           [](const Sample& s) { return s.name == "saga_instances"; }));
  std::string hash = open();
  auto ids = start_mix(hash);
  expect_final(ids);
  engine_.reset();
  std::vector<Sample> after = parse(metrics_->scrape());
  EXPECT_EQ(value(after, "saga_instances_started_total", {{"saga", kSaga}}), 11);
  EXPECT_TRUE(std::none_of(after.begin(), after.end(),
                           [](const Sample& s) { return s.name == "saga_timers_armed"; }));
}

TEST(MetricsBreakers, ShowsTheStatesOfAnHttpTransport) {
  saga::Metrics metrics;
  metrics.watch_breakers([] {
    return json{{"payment",
                 {{"breaker", {{"state", "open"}, {"failures", 5}, {"rejected", 7}}},
                  {"bulkhead", {{"limit", 16}, {"in_use", 3}, {"waiting", 2}}}}},
                {"inventory", json::object()}};
  });
  std::vector<Sample> m = parse(metrics.scrape());
  EXPECT_EQ(value(m, "saga_breaker_state", {{"service", "payment"}, {"state", "open"}}), 1);
  EXPECT_EQ(value(m, "saga_breaker_failures", {{"service", "payment"}}), 5);
  EXPECT_EQ(value(m, "saga_breaker_rejected_total", {{"service", "payment"}}), 7);
  EXPECT_EQ(value(m, "saga_bulkhead_limit", {{"service", "payment"}}), 16);
  EXPECT_EQ(value(m, "saga_bulkhead_in_use", {{"service", "payment"}}), 3);
  EXPECT_EQ(value(m, "saga_bulkhead_waiting", {{"service", "payment"}}), 2);
  metrics.watch_breakers(nullptr);
  m = parse(metrics.scrape());
  EXPECT_TRUE(std::none_of(m.begin(), m.end(),
                           [](const Sample& s) { return s.name == "saga_breaker_state"; }));
}

}  // namespace
