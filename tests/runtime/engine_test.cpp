// Engine tests: the execution model end to end inside one process, with real
// SQLite files and a ManualClock for retries, timeouts and deadlines. Nothing
// here sleeps and hopes: tests wait for committed events (EventLog) or for
// instances to finish (Engine::wait), and time moves only when a test says so.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "compiler/compile.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "saga/engine.hpp"
#include "stdlib/functions.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/pg_server.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using saga::InstanceStatus;
using saga::test::eventually;
using namespace std::chrono_literals;

std::vector<uint8_t> compile(const std::string& text) {
  auto image = saga::compiler::compile_to_image("test.saga", text);
  EXPECT_TRUE(image.ok()) << image.status().message();
  return image.ok() ? std::move(image).value() : std::vector<uint8_t>{};
}

// Collects committed history events and lets a test wait for one.
class EventLog {
 public:
  void add(const std::string& id, const saga::HistoryEvent& e) {
    std::lock_guard lock(mu_);
    events_.push_back({id, e});
    cv_.notify_all();
  }
  // Waits (up to 10 s of real time, a failure guard, not a timing assumption)
  // until `count` events of `kind` (for `step`, when given) were committed.
  bool wait_for(const std::string& kind, const std::string& step = {}, size_t count = 1) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return this->count(kind, step) >= count; });
  }
  size_t count(const std::string& kind, const std::string& step = {}) const {
    size_t n = 0;
    for (const auto& [id, e] : events_) n += e.kind == kind && (step.empty() || e.step == step);
    return n;
  }
  std::vector<saga::HistoryEvent> of(const std::string& kind) {
    std::lock_guard lock(mu_);
    std::vector<saga::HistoryEvent> out;
    for (const auto& [id, e] : events_) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, saga::HistoryEvent>> events_;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-engine-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    clock_ = std::make_shared<saga::ManualClock>();
    database_ = (dir_ / "sagas.db").string();
    // SAGA_TEST_STORE=postgresql (ctest's pg/ copies of these cases): the
    // same cases on a fresh database of the test PostgreSQL.
    if (const char* store = std::getenv("SAGA_TEST_STORE");
        store && std::string(store).rfind("postgresql", 0) == 0) {
      saga::test::PgServer& pg = saga::test::PgServer::get();
      ASSERT_TRUE(pg.ok()) << pg.error();
      database_ = pg.fresh_database("engine");
      postgres_ = true;
    }
  }
  void TearDown() override {
    parked_.clear();  // As a test's own would be: before its engine goes.
    engine_.reset();
    fs::remove_all(dir_);
  }

  // `threads` 1 makes the engine run handlers in the order they were posted
  // (a timeout due before a completion is handled first).
  saga::Engine& open(saga::Durability durability = saga::Durability::kNormal,
                     saga::ServiceTransport transport = nullptr, unsigned threads = 2) {
    engine_.reset();
    saga::EngineOptions options;
    options.threads = threads;
    options.service_transport = std::move(transport);
    options.database = database_;
    options.durability = durability;
    options.clock = clock_;
    options.seed = 42;
    options.compensation.attempts = 3;
    options.compensation.initial_ms = 100;
    options.evict_after = evict_after_;
    options.inbox_watch = inbox_watch_;
    options.serve_inbox = serve_inbox_;
    options.lease = lease_;
    options.notify_operators = notify_;
    options.on_event = [this](const std::string& id, const saga::HistoryEvent& e) {
      // SAGA_TEST_TRACE=1 prints every committed event, for debugging.
      if (std::getenv("SAGA_TEST_TRACE")) {
        std::fprintf(stderr, "  event %s %s %s %s\n", e.kind.c_str(), e.step.c_str(),
                     e.error_class.c_str(), e.message.c_str());
      }
      log_.add(id, e);
    };
    auto engine = saga::Engine::open(options);
    EXPECT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine).value();
    return *engine_;
  }

  // Starts `n` instances of kNap and waits until each sleeps in its nap.
  std::vector<std::string> start_naps(saga::Engine& e, const std::string& hash, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      auto id = e.start(hash, "nap", {{"n", i}});
      EXPECT_TRUE(id.ok());
      if (id.ok()) ids.push_back(id.value());
    }
    EXPECT_TRUE(log_.wait_for("step_started", "nap", static_cast<size_t>(n)));
    return ids;
  }

  std::string load(const std::string& source) {
    auto hash = engine_->load_program(compile(source));
    EXPECT_TRUE(hash.ok()) << hash.status().message();
    return hash.ok() ? hash.value() : "";
  }

  // Starts an instance of `saga` and waits for its end. When starting or
  // waiting fails, the failure is recorded and an empty info returned.
  saga::InstanceInfo run_to_end(const std::string& hash, const std::string& saga,
                                const json& input) {
    auto id = engine_->start(hash, saga, input);
    EXPECT_TRUE(id.ok()) << id.status().message();
    if (!id.ok()) return {};
    auto info = engine_->wait(id.value());
    EXPECT_TRUE(info.ok()) << info.status().message();
    return info.ok() ? info.value() : saga::InstanceInfo{};
  }

  // Starts `saga` of `hash` (SQLite only), whose action s.a is parked and
  // s.b answers 1; then the disk is full and s.a completes with a 32 KiB
  // result that needs new pages: the transition recording it fails to
  // commit, and its retry timer is armed. Returns the instance's id.
  std::string start_with_a_failed_commit(const std::string& hash, const std::string& saga) {
    saga::Engine& e = *engine_;
    e.register_async_action("s.a", [this](const saga::ActionCall&, saga::Completion c) {
      std::lock_guard lock(parked_mu_);
      parked_.push_back(c);
    });
    e.register_action("s.b", [](const saga::ActionCall&) -> json { return 1; });
    auto id = e.start(hash, saga, json::object());
    EXPECT_TRUE(id.ok()) << id.status().message();
    if (!id.ok()) return "";
    EXPECT_TRUE(eventually([&] {
      std::lock_guard lock(parked_mu_);
      return !parked_.empty();
    }));
    auto pages = saga::store::sqlite_store_writer_pragma(e.store(), "page_count");
    EXPECT_TRUE(pages.ok()) << pages.status().message();
    EXPECT_TRUE(saga::store::sqlite_store_set_max_page_count(e.store(), *pages).ok());
    const size_t timers_before = e.armed_timers();
    std::lock_guard lock(parked_mu_);
    if (parked_.empty()) return id.value();
    parked_[0].succeed(json{{"blob", std::string(32768, 'x')}});
    // The failure arms the retry timer.
    EXPECT_TRUE(eventually([&] { return e.armed_timers() == timers_before + 1; }));
    EXPECT_EQ(saga::store::sqlite_store_stats(e.store())->failed_commits, 1u);
    return id.value();
  }

  fs::path dir_;
  std::string database_;  // A SQLite file in dir_, or a PostgreSQL URL.
  bool postgres_ = false;
  std::shared_ptr<saga::ManualClock> clock_;
  std::unique_ptr<saga::Engine> engine_;
  EventLog log_;
  std::chrono::milliseconds evict_after_ = saga::EngineOptions{}.evict_after;  // For open().
  std::chrono::milliseconds inbox_watch_ = saga::EngineOptions{}.inbox_watch;  // For open().
  bool serve_inbox_ = false;                                                   // For open().
  std::chrono::milliseconds lease_ = saga::EngineOptions{}.lease;              // For open().
  bool notify_ = false;   // EngineOptions::notify_operators, for open().
  std::mutex parked_mu_;  // start_with_a_failed_commit(): the parked calls of s.a.
  std::vector<saga::Completion> parked_;
};

// Three host-provided steps; each records its calls.
const char* kThreeSteps = R"(
service shop { }
saga order(id: string, fail_at: string) {
  step a { do shop.a(id: id) -> ra  undo shop.undo_a(ref: ra.ref) }
  step b { do shop.b(id: id, prev: ra.ref) -> rb  undo shop.undo_b(ref: rb.ref) }
  step c { do shop.c(id: id) -> rc  undo shop.undo_c(ref: rc.ref) }
  output { a: ra.ref, b: rb.ref, c: rc.ref }
}
)";

struct Recorder {
  std::mutex mu;
  std::vector<std::string> calls;  // "a", "undo_b", ...
  std::vector<std::string> keys;
  void add(const saga::ActionCall& c) {
    std::lock_guard lock(mu);
    calls.push_back(c.action.substr(c.action.find('.') + 1));
    keys.push_back(c.idempotency_key);
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mu);
    return calls;
  }
  // Registers `actions`, each recording its calls here and answering 1.
  void answer(saga::Engine& e, std::initializer_list<const char*> actions) {
    for (const char* name : actions) {
      e.register_action(name, [this](const saga::ActionCall& c) -> json {
        add(c);
        return 1;
      });
    }
  }
};

// Registers shop.a/b/c and their undos; step `fail_step` fails with `cls`.
void register_shop(saga::Engine& e, Recorder& rec, std::string fail_step = "",
                   std::string cls = "") {
  for (std::string s : {"a", "b", "c"}) {
    e.register_action("shop." + s, [&rec, s, fail_step, cls](const saga::ActionCall& c) -> json {
      rec.add(c);
      if (s == fail_step) throw saga::ActionError(cls, "step " + s + " refused");
      return {{"ref", s + "-" + c.args["id"].get<std::string>()}};
    });
    e.register_action("shop.undo_" + s, [&rec](const saga::ActionCall& c) -> json {
      rec.add(c);
      return nullptr;
    });
  }
}

TEST_F(EngineTest, CompletesAndReturnsOutput) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec);
  auto info = run_to_end(hash, "order", {{"id", "42"}, {"fail_at", ""}});
  EXPECT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  EXPECT_EQ(info.output, (json{{"a", "a-42"}, {"b", "b-42"}, {"c", "c-42"}}));
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(saga::exit_code_for(info.status), 0);
}

TEST_F(EngineTest, CompensatesCompletedStepsInReverseOrder) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec, "c", "rejected");
  auto info = run_to_end(hash, "order", {{"id", "7"}, {"fail_at", "c"}});
  EXPECT_EQ(info.status, InstanceStatus::kCompensated);
  EXPECT_EQ(info.error_class, "rejected");
  // c was rejected (no effect): not compensated; b then a are.
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "b", "c", "undo_b", "undo_a"}));
  EXPECT_EQ(saga::exit_code_for(info.status), 3);
}

TEST_F(EngineTest, CompensatesAStepThatEndedInDoubt) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec, "c", "unavailable");
  auto info = run_to_end(hash, "order", {{"id", "7"}, {"fail_at", "c"}});
  EXPECT_EQ(info.status, InstanceStatus::kCompensated);
  // c may have had an effect: its undo runs first (its result is unknown, so
  // rc.ref is null in the undo's arguments).
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "b", "c", "undo_c", "undo_b", "undo_a"}));
}

TEST_F(EngineTest, FailsWithoutCompensationWhenNothingHadAnEffect) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec, "a", "rejected");
  auto info = run_to_end(hash, "order", {{"id", "1"}, {"fail_at", "a"}});
  EXPECT_EQ(info.status, InstanceStatus::kFailed);
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a"}));
}

TEST_F(EngineTest, IdempotencyKeysAreInstanceAndStep) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec, "c", "rejected");
  auto id = e.start(hash, "order", {{"id", "9"}, {"fail_at", "c"}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(e.wait(id.value()).ok());
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.keys,
            (std::vector<std::string>{id.value() + "/a", id.value() + "/b", id.value() + "/c",
                                      id.value() + "/b/undo", id.value() + "/a/undo"}));
}

TEST_F(EngineTest, RetriesWithBackoffOnTheClock) {
  auto& e = open();
  std::string hash = load(R"(
service pay { }
saga s() {
  step charge { do pay.charge() -> r undo pay.refund() retry { attempts: 3, backoff: fixed(1s), on: [unavailable] } }
  output r
}
)");
  std::atomic<int> calls{0};
  std::vector<std::string> keys;
  std::mutex mu;
  e.register_action("pay.charge", [&](const saga::ActionCall& c) -> json {
    {
      std::lock_guard lock(mu);
      keys.push_back(c.idempotency_key);
    }
    if (++calls < 3) throw saga::ActionError("unavailable", "try later");
    return {{"ok", true}, {"attempt", c.attempt}};
  });
  auto id = e.start(hash, "s", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("attempt_failed", "charge", 1));
  int64_t first_failure = log_.of("attempt_failed")[0].time_ms;
  EXPECT_EQ(calls.load(), 1);
  clock_->advance(1000ms);
  ASSERT_TRUE(log_.wait_for("attempt_failed", "charge", 2));
  clock_->advance(1000ms);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, (json{{"ok", true}, {"attempt", 3}}));
  EXPECT_EQ(calls.load(), 3);
  // Each retry waited the full backoff on the engine's clock.
  auto done = log_.of("step_completed");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].time_ms - first_failure, 2000);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 1u)
      << "same key on every attempt";
}

TEST_F(EngineTest, DoesNotRetryClassesOutsideThePolicy) {
  auto& e = open();
  std::string hash = load(R"(
service pay { }
saga s() { step charge { do pay.charge() undo pay.refund() retry { attempts: 5, on: [unavailable] } } }
)");
  std::atomic<int> calls{0};
  e.register_action("pay.charge", [&](const saga::ActionCall&) -> json {
    ++calls;
    throw saga::ActionError("rejected", "card declined");
  });
  auto id = e.start(hash, "s", json::object());
  ASSERT_TRUE(id.ok());
  auto info = e.wait(id.value());
  EXPECT_EQ(info->status, InstanceStatus::kFailed);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_NE(info->error_message.find("card declined"), std::string::npos);
}

TEST_F(EngineTest, AttemptTimeoutAbandonsTheAttempt) {
  auto& e = open();
  std::string hash = load(R"(
service slow { }
saga s() {
  step first { do slow.ok() -> x  undo slow.undo() }
  step hang { do slow.hang() timeout 2s undo slow.undo_hang() }
}
)");
  std::vector<std::string> undos;
  std::mutex mu;
  e.register_action("slow.ok", [](const saga::ActionCall&) -> json { return 1; });
  std::vector<saga::Completion> parked;  // Never completed: the attempt hangs.
  e.register_async_action("slow.hang", [&](const saga::ActionCall&, saga::Completion c) {
    std::lock_guard lock(mu);
    parked.push_back(c);
  });
  for (std::string u : {"slow.undo", "slow.undo_hang"}) {
    e.register_action(u, [&, u](const saga::ActionCall&) -> json {
      std::lock_guard lock(mu);
      undos.push_back(u);
      return nullptr;
    });
  }
  auto id = e.start(hash, "s", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "hang"));
  clock_->advance(1999ms);
  clock_->advance(1ms);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
  EXPECT_EQ(info->error_class, "timeout");
  // The timed-out step may have had an effect: it is compensated first.
  std::lock_guard lock(mu);
  EXPECT_EQ(undos, (std::vector<std::string>{"slow.undo_hang", "slow.undo"}));
  // A late answer of the abandoned attempt is ignored.
  parked.at(0).succeed(json{{"late", true}});
}

// The timeout is the step's, not less: an answer at 1999 ms of a 2 s
// timeout counts. (ManualClock::advance posts the timers it made due before
// it returns, and one engine thread handles posts in order, so a timeout due
// by then would be handled before the answer and the answer discarded.)
TEST_F(EngineTest, AnAttemptAnsweredJustBeforeItsTimeoutSucceeds) {
  auto& e = open(saga::Durability::kNormal, nullptr, 1);
  std::string hash = load(R"(
service slow { }
saga s() { step hang { do slow.hang() -> r timeout 2s undo slow.undo() } output r }
)");
  std::mutex mu;
  std::vector<saga::Completion> parked;
  e.register_async_action("slow.hang", [&](const saga::ActionCall&, saga::Completion c) {
    std::lock_guard lock(mu);
    parked.push_back(c);
  });
  e.register_action("slow.undo", [](const saga::ActionCall&) -> json { return nullptr; });
  auto id = e.start(hash, "s", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return !parked.empty();
  }));
  clock_->advance(1999ms);
  {
    std::lock_guard lock(mu);
    parked[0].succeed("in time");
  }
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, "in time");
}

// A synchronous action cannot be interrupted: when it returns after its
// step's timeout, its result is discarded and the attempt timed out (it may
// have had an effect: the step is compensated).
TEST_F(EngineTest, ALateSynchronousResultIsDiscarded) {
  auto& e = open();
  std::string hash = load(R"(
service slow { }
saga s() { step a { do slow.a() -> r timeout 2s undo slow.undo() } output r }
)");
  std::atomic<int> undos{0};
  e.register_action("slow.a", [this](const saga::ActionCall&) -> json {
    clock_->advance(2001ms);  // The call takes longer than its timeout.
    return "late";
  });
  e.register_action("slow.undo", [&](const saga::ActionCall&) -> json {
    ++undos;
    return nullptr;
  });
  saga::InstanceInfo info = run_to_end(hash, "s", json::object());
  EXPECT_EQ(info.status, InstanceStatus::kCompensated);
  EXPECT_EQ(info.error_class, "timeout");
  EXPECT_EQ(undos.load(), 1);
  // Within its timeout, the same action's result counts.
  auto& again = open();
  hash = load(R"(
service slow { }
saga s() { step a { do slow.a() -> r timeout 2s } output r }
)");
  again.register_action("slow.a", [this](const saga::ActionCall&) -> json {
    clock_->advance(2000ms);
    return "in time";
  });
  EXPECT_EQ(run_to_end(hash, "s", json::object()).output, "in time");
}

// A transition the store cannot commit (disk full) is tried again every
// second with the same state, and what it would have written to the history
// is written by the retry: nothing is lost, nothing is written twice.
TEST_F(EngineTest, FailedCommitIsRetriedWithItsHistory) {
  if (postgres_) GTEST_SKIP() << "simulates a full disk with a SQLite-only hook";
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga big() {
  step a { do s.a() -> r }
  step b { do s.b() }
  output len(r.blob)
}
)");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(id = start_with_a_failed_commit(hash, "big"));
  EXPECT_EQ(log_.count("step_completed", "a"), 0u) << "reported only once committed";

  // Room again; the retry comes a second later.
  ASSERT_TRUE(saga::store::sqlite_store_set_max_page_count(e.store(), 1 << 30).ok());
  clock_->advance(1s);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, 32768);

  auto history = e.store().history(id);
  ASSERT_TRUE(history.ok()) << history.status().message();
  std::vector<std::string> kinds;
  for (const saga::HistoryEvent& h : history.value()) kinds.push_back(h.kind + " " + h.step);
  EXPECT_EQ(kinds, (std::vector<std::string>{"started ", "step_completed a", "step_completed b",
                                             "completed "}));
  ASSERT_EQ(history->size(), 4u);
  EXPECT_NE(history->at(1).data_json.find(std::string(100, 'x')), std::string::npos);
  EXPECT_EQ(log_.count("step_completed", "a"), 1u);
  // The live-only event that rode with the failed transition is reported
  // too, once (it was lost, and a host counting started steps waited forever).
  EXPECT_EQ(log_.count("step_started", "b"), 1u);
}

// A saga's deadline (10 minutes here) outlives the saga: a finished instance
// must drop its deadline and attempt-timeout timers, or a busy worker would
// hold every instance it ran in the last 10 minutes.
TEST_F(EngineTest, FinishedInstancesHoldNoTimers) {
  auto& e = open();
  std::string hash = load(R"(
service s { timeout 5s }
saga quick(n: number) {
  deadline 10m
  step a { do s.a(n: n) undo s.undo_a() }
  step b { do s.b(n: n) }
  output n
}
)");
  ASSERT_EQ(e.armed_timers(), 1u) << "only the lease renewal";
  e.register_action("s.a", [](const saga::ActionCall& c) -> json { return c.args["n"]; });
  e.register_action("s.undo_a", [](const saga::ActionCall&) -> json { return nullptr; });
  // Asynchronous, so that each attempt arms a timeout.
  e.register_async_action(
      "s.b", [](const saga::ActionCall& c, saga::Completion done) { done.succeed(c.args["n"]); });
  for (int i = 0; i < 50; ++i) {
    saga::InstanceInfo info = run_to_end(hash, "quick", json{{"n", i}});
    ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  }
  EXPECT_EQ(e.armed_timers(), 1u);
}

// Instance ids are UUID version 7: the creation time in their first 48 bits,
// so ids sort by creation time (across milliseconds).
TEST_F(EngineTest, InstanceIdsAreTimeOrderedUuids) {
  auto& e = open();
  std::string hash = load(R"(
saga nap() {
  step a { do sleep(for: 1h) }
}
)");
  clock_->advance(std::chrono::milliseconds(0x0123456789AB) -
                  std::chrono::milliseconds(clock_->now_ms()));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = e.enqueue(hash, "nap", json::object());
    ASSERT_TRUE(id.ok()) << id.status().message();
    ids.push_back(id.value());
    clock_->advance(1ms);
  }
  EXPECT_EQ(ids[0].substr(0, 13), "01234567-89ab");
  for (const std::string& id : ids) {
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '7') << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
  }
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);
}

TEST_F(EngineTest, DeadlineFailsAndCompensates) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga slow() {
  deadline 1m
  step a { do s.a() undo s.undo_a() }
  step nap { do sleep(for: 1h) }
  output "never"
}
)");
  Recorder rec;
  rec.answer(e, {"s.a", "s.undo_a"});
  auto id = e.start(hash, "slow", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  EXPECT_EQ(e.evicted(), 1u) << "the deadline is a minute away: out of memory until then";
  clock_->advance(60s);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
  EXPECT_EQ(info->error_class, "timeout");
  EXPECT_NE(info->error_message.find("deadline of 1m"), std::string::npos) << info->error_message;
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "undo_a"}));
}

TEST_F(EngineTest, StuckAfterCompensationPolicyWithDeadLetter) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga x() {
  step a { do s.a() undo s.undo_a() }
  fail rejected "stop here"
}
)");
  std::atomic<int> undo_calls{0};
  e.register_action("s.a", [](const saga::ActionCall&) -> json { return 1; });
  e.register_action("s.undo_a", [&](const saga::ActionCall&) -> json {
    ++undo_calls;
    throw saga::ActionError("unavailable", "refund service down");
  });
  auto id = e.start(hash, "x", json::object());
  ASSERT_TRUE(id.ok());
  // attempts = 3 (set in open()): two backoffs of 100 ms and 200 ms.
  ASSERT_TRUE(log_.wait_for("undo_failed", "a", 1));
  clock_->advance(100ms);
  ASSERT_TRUE(log_.wait_for("undo_failed", "a", 2));
  clock_->advance(200ms);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kStuck);
  EXPECT_EQ(undo_calls.load(), 3);
  EXPECT_EQ(saga::exit_code_for(info->status), 4);
  auto letters = e.store().dead_letters(id.value());
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ(letters->at(0).step, "a");
  EXPECT_EQ(letters->at(0).error_class, "unavailable");
}

// An undo that never answers is held to the same per-attempt timeout as its
// do (here the service's 2 s): it times out, is retried by the compensation
// policy, and the instance ends stuck with a dead letter instead of waiting
// in `compensating` forever.
TEST_F(EngineTest, HangingUndoTimesOutAndEndsStuck) {
  auto& e = open();
  std::string hash = load(R"(
service s { timeout 2s }
saga x() {
  step a { do s.a() undo s.undo_a() }
  fail rejected "stop here"
}
)");
  std::mutex mu;
  std::vector<saga::Completion> parked;  // Never completed.
  auto calls = [&] {
    std::lock_guard lock(mu);
    return parked.size();
  };
  e.register_action("s.a", [](const saga::ActionCall&) -> json { return 1; });
  e.register_async_action("s.undo_a", [&](const saga::ActionCall&, saga::Completion c) {
    std::lock_guard lock(mu);
    parked.push_back(c);
  });
  auto id = e.start(hash, "x", json::object());
  ASSERT_TRUE(id.ok());
  // attempts = 3 (set in open()), backoffs of 100 ms and 200 ms between.
  ASSERT_TRUE(eventually([&] { return calls() == 1; }));
  clock_->advance(2s);
  ASSERT_TRUE(log_.wait_for("undo_failed", "a", 1));
  clock_->advance(100ms);
  ASSERT_TRUE(eventually([&] { return calls() == 2; }));
  clock_->advance(2s);
  ASSERT_TRUE(log_.wait_for("undo_failed", "a", 2));
  clock_->advance(200ms);
  ASSERT_TRUE(eventually([&] { return calls() == 3; }));
  clock_->advance(2s);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kStuck);
  auto letters = e.store().dead_letters(id.value());
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ(letters->at(0).error_class, "timeout");
  EXPECT_NE(letters->at(0).message.find("no answer within 2s"), std::string::npos)
      << letters->at(0).message;
  EXPECT_EQ(calls(), 3u);
}

// An action sees its attempt's timeout (ActionCall::timeout_ms), and an
// asynchronous action can ask for a least delay before the retry
// (Completion::fail with retry_after, as an HTTP Retry-After does).
TEST_F(EngineTest, ActionsSeeTheirTimeoutAndCanDelayTheRetry) {
  auto& e = open();
  std::string hash = load(R"(
service s { timeout 3s }
saga x() {
  step a { do s.a() timeout 2s retry { attempts: 2, backoff: fixed(100ms), on: [unavailable] } }
  step b { do s.b() }
}
)");
  std::mutex mu;
  std::vector<int64_t> timeouts;
  std::vector<int64_t> call_times;
  e.register_async_action("s.a", [&](const saga::ActionCall& c, saga::Completion done) {
    {
      std::lock_guard lock(mu);
      timeouts.push_back(c.timeout_ms);
      call_times.push_back(clock_->now_ms());
    }
    if (c.attempt == 1) {
      done.fail("unavailable", "busy", std::chrono::milliseconds(5000));
    } else {
      done.succeed(1);
    }
  });
  e.register_action("s.b", [&](const saga::ActionCall& c) -> json {
    std::lock_guard lock(mu);
    timeouts.push_back(c.timeout_ms);
    return 2;
  });
  auto id = e.start(hash, "x", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("attempt_failed", "a"));
  // The policy's 100 ms backoff is raised to the 5 s asked for.
  EXPECT_NE(log_.of("attempt_failed")[0].message.find("retrying in 5s"), std::string::npos)
      << log_.of("attempt_failed")[0].message;
  clock_->advance(4999ms);
  clock_->advance(1ms);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  std::lock_guard lock(mu);
  ASSERT_EQ(call_times.size(), 2u);
  EXPECT_EQ(call_times[1] - call_times[0], 5000);
  // Step a's own timeout, then the service's for step b.
  EXPECT_EQ(timeouts, (std::vector<int64_t>{2000, 2000, 3000}));
}

// How a step ends when some attempts were refused before being sent
// (ServiceOutcome::not_sent): with a scripted transport (tests/http runs the
// real one), each saga's step "a" fails after two attempts, and only a step
// with an attempt that may have reached the service is compensated.
TEST_F(EngineTest, OnlyStepsThatMayHaveReachedTheServiceAreCompensated) {
  std::mutex mu;
  std::map<std::string, std::vector<saga::ServiceOutcome>> script;  // By input "case".
  std::vector<std::string> undone;
  auto refused = [] {
    saga::ServiceOutcome o;
    o.error_class = "unavailable";
    o.message = "circuit open";
    o.not_sent = true;
    return o;
  };
  auto lost = [] {
    saga::ServiceOutcome o;
    o.error_class = "unavailable";
    o.message = "connection reset";
    return o;
  };
  auto declined = [] {
    saga::ServiceOutcome o;
    o.error_class = "rejected";
    o.message = "HTTP 402: payment declined";
    return o;
  };
  script["sent_then_refused"] = {lost(), refused()};
  script["refused_twice"] = {refused(), refused()};
  script["refused_then_sent"] = {refused(), lost()};
  // A definite answer after an attempt in doubt does not clear the doubt:
  // the first request may have been applied (README, "Delivery contract").
  script["sent_then_rejected"] = {lost(), declined()};
  script["refused_then_rejected"] = {refused(), declined()};
  auto transport = [&](const saga::ServiceCall& call,
                       std::function<void(saga::ServiceOutcome)> done) {
    std::lock_guard lock(mu);
    const std::string which = call.args.value("case", "");
    if (call.compensation) {
      undone.push_back(which);
      saga::ServiceOutcome ok;
      ok.ok = true;
      return done(ok);
    }
    done(script.at(which).at(call.attempt - 1));
  };
  auto& e = open(saga::Durability::kNormal, transport);
  std::string hash = load(R"(
service s { url "http://127.0.0.1:9" }
saga x(c: string) {
  step a {
    do s.a(case: c)
    undo s.undo(case: c)
    retry { attempts: 2, backoff: fixed(100ms), on: [unavailable] }
  }
}
)");
  std::map<std::string, InstanceStatus> expected = {
      {"sent_then_refused", InstanceStatus::kCompensated},
      {"refused_twice", InstanceStatus::kFailed},
      {"refused_then_sent", InstanceStatus::kCompensated},
      {"sent_then_rejected", InstanceStatus::kCompensated},
      {"refused_then_rejected", InstanceStatus::kFailed}};
  for (const auto& [which, status] : expected) {
    SCOPED_TRACE(which);
    const size_t failed_before = log_.count("attempt_failed");
    auto id = e.start(hash, "x", json{{"c", which}});
    ASSERT_TRUE(id.ok()) << id.status().message();
    ASSERT_TRUE(log_.wait_for("attempt_failed", "a", failed_before + 1));
    clock_->advance(100ms);
    auto info = e.wait(id.value());
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->status, status) << info->error_message;
  }
  std::lock_guard lock(mu);
  std::sort(undone.begin(), undone.end());
  EXPECT_EQ(undone, (std::vector<std::string>{"refused_then_sent", "sent_then_refused",
                                              "sent_then_rejected"}));
}

// The torture a new user ran (issue 8): the process dies while a call is out
// (the participant applied it), the resumed attempt repeats the call with the
// same key and is answered 402. The step is in doubt and is compensated.
TEST_F(EngineTest, CallInterruptedByACrashThenRejectedIsCompensated) {
  const char* source = R"(
service pay { }
saga order() {
  step reserve { do pay.reserve() undo pay.release() }
  step charge { do pay.charge() undo pay.refund() }
}
)";
  std::mutex mu;
  std::vector<saga::Completion> parked;
  std::string id, hash;
  {
    auto& e = open();
    hash = load(source);
    e.register_action("pay.reserve", [](const saga::ActionCall&) -> json { return 1; });
    e.register_async_action("pay.charge", [&](const saga::ActionCall&, saga::Completion c) {
      std::lock_guard lock(mu);
      parked.push_back(c);  // Applied at the participant; the answer never comes back.
    });
    auto started = e.start(hash, "order", json::object());
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lock(mu);
      return !parked.empty();
    }));
    engine_.reset();  // The crash.
  }
  auto& e = open();
  Recorder rec;
  std::vector<std::string> charge_keys;
  e.register_action("pay.charge", [&](const saga::ActionCall& c) -> json {
    rec.add(c);
    throw saga::ActionError("rejected", "HTTP 402: card declined");
  });
  rec.answer(e, {"pay.release", "pay.refund"});
  ASSERT_TRUE(e.resume().ok());
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated) << info->error_message;
  EXPECT_EQ(info->error_class, "rejected");
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"charge", "refund", "release"}));
  EXPECT_EQ(rec.keys[0], id + "/charge") << "the repeated call carries the same key";
  auto failed = log_.of("step_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].message.find("an earlier attempt may have had an effect"), std::string::npos)
      << failed[0].message;
}

// An action's error message with bytes that are not UTF-8 (any host or
// participant can produce one) is stored and reported with U+FFFD: the
// history, the instance's error and its JSON views stay readable.
TEST_F(EngineTest, ErrorTextThatIsNotUtf8IsRepairedBeforeItIsStored) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga x() { step a { do s.a() } }
)");
  e.register_action("s.a", [](const saga::ActionCall&) -> json {
    throw saga::ActionError("rejected", "HTTP 402: \xff\xfe declined");
  });
  saga::InstanceInfo info = run_to_end(hash, "x", json::object());
  EXPECT_EQ(info.status, InstanceStatus::kFailed);
  const std::string repaired = "HTTP 402: \xEF\xBF\xBD\xEF\xBF\xBD declined";
  EXPECT_NE(info.error_message.find(repaired), std::string::npos) << info.error_message;
  auto rec = e.store().get_instance(info.id);
  ASSERT_TRUE(rec.ok() && rec.value());
  EXPECT_NE(rec.value()->error_message.find(repaired), std::string::npos);
  auto history = e.store().history(info.id);
  ASSERT_TRUE(history.ok());
  for (const auto& h : history.value()) EXPECT_NO_THROW((void)json(h.message).dump()) << h.kind;
  auto failed = log_.of("step_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].message.find(repaired), std::string::npos) << "as reported live too";
  auto view = e.inspect(info.id);
  ASSERT_TRUE(view.ok());
  EXPECT_NO_THROW((void)view.value().dump());
}

// Arguments of the actions the engine performs (sleep, log) that are
// computed at run time are checked against stdlib/actions.def like the
// compiler checks constant ones: out of kind or range, the saga fails with a
// `type` error before the step starts. (A sleep of "abc" or -1 s used to end
// at once, and a log of level "fatal" to log.)
TEST_F(EngineTest, ComputedArgumentsOfBuiltInActionsAreChecked) {
  open();
  std::string hash = load(R"(
saga s(d: any, level: any) {
  step nap { do sleep(for: d) }
  step note { do log(message: "hi", level: level) }
}
)");
  struct Case {
    json d, level;
    InstanceStatus status;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"abc", "info", InstanceStatus::kFailed, "sleep(for:) must be a duration"},
           {-1000, "info", InstanceStatus::kFailed, "sleep(for:) must be a duration"},
           {0, "fatal", InstanceStatus::kCompensated, "log(level:) must be one of debug, info"},
           {0, "warn", InstanceStatus::kCompleted, ""},
       }) {
    SCOPED_TRACE(c.d.dump() + " " + c.level.dump());
    saga::InstanceInfo info = run_to_end(hash, "s", {{"d", c.d}, {"level", c.level}});
    EXPECT_EQ(info.status, c.status) << info.error_message;
    if (c.message.empty()) continue;
    EXPECT_EQ(info.error_class, "type");
    EXPECT_NE(info.error_message.find(c.message), std::string::npos) << info.error_message;
    EXPECT_NE(info.error_message.find("test.saga:"), std::string::npos) << info.error_message;
  }
  auto logs = log_.of("log");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].data_json, R"({"level":"warn"})");
}

// An undo that sleeps waits for its duration, like a step that sleeps (it
// used to end at once).
TEST_F(EngineTest, AnUndoThatSleepsWaits) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga u() {
  step a { do s.a() undo sleep(for: 5s) }
  fail rejected "no"
}
)");
  Recorder rec;
  rec.answer(e, {"s.a"});
  auto id = e.start(hash, "u", json::object());
  ASSERT_TRUE(id.ok());
  const int64_t started = clock_->now_ms();
  ASSERT_TRUE(log_.wait_for("undo_started", "a"));
  // Time stands still: the undo waits for its timer, due in 5 s.
  EXPECT_EQ(e.get(id.value())->status, InstanceStatus::kCompensating);
  auto view = e.inspect(id.value());
  ASSERT_TRUE(view.ok());
  ASSERT_EQ(view.value()["waiting"].size(), 1u) << view.value().dump();
  EXPECT_EQ(view.value()["waiting"][0]["kind"], "undo");
  EXPECT_EQ(view.value()["waiting"][0]["wake_at"], saga::stdlib::format_iso8601_ms(started + 5000))
      << view.value().dump();
  EXPECT_EQ(log_.count("undo_completed"), 0u);
  clock_->advance(5s);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
}

// An instance whose checkpoint cannot be decoded becomes stuck with a dead
// letter naming the problem (it used to be skipped with a log line and stay
// claimed, its lease renewed forever); its checkpoint is kept.
TEST_F(EngineTest, AnInstanceWhoseCheckpointCannotBeDecodedIsStuck) {
  std::string id;
  {
    auto& e = open();
    std::string hash = load(R"(saga p() { step nap { do sleep(for: 1h) } })");
    auto started = e.start(hash, "p", json::object());
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    engine_.reset();
  }
  {
    if (postgres_) {
      std::string sql = "UPDATE instances SET checkpoint = '\\x02ff00' WHERE id = '" + id + "'";
      EXPECT_EQ(saga::test::PgServer::exec(database_, sql), "");
    } else {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(database_.c_str(), &db), SQLITE_OK);
      std::string sql = "UPDATE instances SET checkpoint = x'02ff00' WHERE id = '" + id + "'";
      EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
      sqlite3_close(db);
    }
  }
  auto& e = open();
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), 0u);
  auto info = e.get(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kStuck);
  EXPECT_EQ(info->error_class, "corrupt");
  EXPECT_NE(info->error_message.find("its checkpoint cannot be decoded: corrupted checkpoint"),
            std::string::npos)
      << info->error_message;
  auto letters = e.store().dead_letters(id);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ(letters.value()[0].error_class, "corrupt");
  auto rec = e.store().get_instance(id);
  ASSERT_TRUE(rec.ok() && rec.value());
  EXPECT_EQ(rec.value()->checkpoint, std::string("\x02\xff\x00", 3)) << "kept as it was";
  auto unfinished = e.store().list_unfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty()) << "no longer claimed by resume";
}

// Cancelling an instance that never ran (recorded by `sagactl start`) sends
// nothing: not its first step, not that step's undo.
TEST_F(EngineTest, CancelOfAPendingInstanceSendsNothing) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec);
  auto id = e.enqueue(hash, "order", {{"id", "7"}, {"fail_at", ""}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(e.cancel(id.value()).ok());
  ASSERT_TRUE(e.resume(id.value()).ok());
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled) << info->error_message;
  EXPECT_TRUE(rec.get().empty()) << rec.get().size() << " calls, first " << rec.get()[0];
}

// A scripted transport whose every call is refused before it is sent (an
// open circuit), for the tests of steps that never reached their service.
saga::ServiceTransport refusing_transport(std::atomic<int>& calls, std::atomic<int>& undos,
                                          std::string last_answer = "unavailable") {
  return [&calls, &undos, last_answer](const saga::ServiceCall& call,
                                       std::function<void(saga::ServiceOutcome)> done) {
    saga::ServiceOutcome o;
    if (call.compensation) {
      ++undos;
      o.ok = true;
      return done(o);
    }
    ++calls;
    o.error_class = call.attempt > 1 ? last_answer : "unavailable";
    o.message = call.attempt > 1 ? "answered" : "circuit open";
    o.not_sent = call.attempt == 1;
    done(o);
  };
}

const char* kOneRetriedStep = R"(
service s { url "http://127.0.0.1:9" }
saga x() {
  step a {
    do s.a()
    undo s.undo()
    retry { attempts: 2, backoff: fixed(10s), on: [unavailable] }
  }
}
)";

// Cancelling during the backoff after an attempt that never left: the step
// had no effect, and its undo is not run.
TEST_F(EngineTest, CancelDuringTheBackoffOfUnsentAttemptsRunsNoUndo) {
  std::atomic<int> calls{0}, undos{0};
  auto& e = open(saga::Durability::kNormal, refusing_transport(calls, undos));
  std::string hash = load(kOneRetriedStep);
  auto id = e.start(hash, "x", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("attempt_failed", "a"));
  ASSERT_TRUE(e.cancel(id.value()).ok());
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(undos.load(), 0);
}

// After a restart during the backoff of an attempt that never left, the next
// attempt had not been sent either (its wake time was still ahead): a
// `rejected` answer then means the step had no effect.
TEST_F(EngineTest, RestartDuringTheBackoffOfUnsentAttemptsKeepsTheStepOutOfDoubt) {
  std::atomic<int> calls{0}, undos{0};
  std::string id;
  {
    auto& e = open(saga::Durability::kNormal, refusing_transport(calls, undos, "rejected"));
    std::string hash = load(kOneRetriedStep);
    auto started = e.start(hash, "x", json::object());
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("attempt_failed", "a"));
    engine_.reset();
  }
  auto& e = open(saga::Durability::kNormal, refusing_transport(calls, undos, "rejected"));
  ASSERT_TRUE(e.resume().ok());
  clock_->advance(10s);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kFailed) << info->error_message;
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(undos.load(), 0);
}

// An asynchronous action that knows its request never left says so with
// Completion::finish (not_sent): its step is not compensated.
TEST_F(EngineTest, AnActionCanReportThatItsRequestNeverLeft) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga x() {
  step a { do s.a() undo s.undo_a() }
}
)");
  std::atomic<int> undos{0};
  e.register_async_action("s.a", [](const saga::ActionCall&, saga::Completion done) {
    saga::ServiceOutcome out;
    out.error_class = "unavailable";
    out.message = "no route to the payment gateway";
    out.not_sent = true;
    done.finish(out);
  });
  e.register_action("s.undo_a", [&](const saga::ActionCall&) -> json {
    ++undos;
    return nullptr;
  });
  saga::InstanceInfo info = run_to_end(hash, "x", json::object());
  EXPECT_EQ(info.status, InstanceStatus::kFailed);
  EXPECT_EQ(info.error_class, "unavailable");
  EXPECT_EQ(undos.load(), 0);
}

TEST_F(EngineTest, InputIsValidatedBeforeAnythingIsRecorded) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  for (const json& bad : {json{{"id", 1}, {"fail_at", ""}}, json{{"id", "1"}},
                          json{{"id", "1"}, {"fail_at", ""}, {"extra", true}}, json::array()}) {
    auto id = e.start(hash, "order", bad);
    ASSERT_FALSE(id.ok()) << bad.dump();
    EXPECT_EQ(id.status().code(), saga::StatusCode::kInvalidArgument);
  }
  auto list = e.store().list_instances(std::nullopt, 10);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  auto missing = e.start(hash, "nope", json::object());
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no saga 'nope'"), std::string::npos);
}

TEST_F(EngineTest, UnprovidedActionFailsNamingIt) {
  auto& e = open();
  std::string hash = load(kThreeSteps);
  auto id = e.start(hash, "order", {{"id", "1"}, {"fail_at", ""}});
  ASSERT_TRUE(id.ok());
  auto info = e.wait(id.value());
  EXPECT_EQ(info->status, InstanceStatus::kFailed);
  EXPECT_EQ(info->error_class, "unsupported");
  EXPECT_NE(info->error_message.find("shop.a"), std::string::npos) << info->error_message;
}

TEST_F(EngineTest, ResumesAfterTheProcessGoesAwayAndKeepsRecordedValues) {
  std::string id, hash, token;
  const char* source = R"(
service s { }
saga r() {
  let token = uuid()
  step a { do s.a(token: token) -> x undo s.undo() }
  step nap { do sleep(for: 10s) }
  step b { do s.b(token: token) -> y undo s.undo() }
  output { token: token, x: x, y: y }
}
)";
  std::atomic<int> a_calls{0}, b_calls{0};
  auto provide = [&](saga::Engine& e) {
    e.register_action("s.a", [&](const saga::ActionCall&) -> json { return ++a_calls; });
    e.register_action("s.b", [&](const saga::ActionCall&) -> json { return ++b_calls; });
    e.register_action("s.undo", [](const saga::ActionCall&) -> json { return nullptr; });
  };
  {
    auto& e = open();
    hash = load(source);
    provide(e);
    auto started = e.start(hash, "r", json::object());
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    auto view = e.inspect(id);
    ASSERT_TRUE(view.ok());
    token = view.value()["variables"]["token"].get<std::string>();
    engine_.reset();  // The process goes away while the instance sleeps.
  }
  auto& e = open();
  provide(e);
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), 1u);
  clock_->advance(10s);  // The durable timer fires at its original time.
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["token"], token) << "uuid() keeps its recorded value";
  EXPECT_EQ(a_calls.load(), 1) << "a completed before the restart and is not run again";
  EXPECT_EQ(b_calls.load(), 1);
}

TEST_F(EngineTest, RunningInstancesStayPinnedToTheirProgram) {
  const char* v1 = R"(
service s { }
saga p() { step nap { do sleep(for: 5s) } output "v1" }
)";
  const char* v2 = R"(
service s { }
saga p() { step nap { do sleep(for: 5s) } output "v2" }
)";
  std::string id;
  {
    auto& e = open();
    std::string h1 = load(v1);
    auto started = e.start(h1, "p", json::object());
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    engine_.reset();
  }
  auto& e = open();
  std::string h2 = load(v2);  // A new version is deployed.
  ASSERT_TRUE(e.resume().ok());
  clock_->advance(5s);
  auto old = e.wait(id);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->output, "v1");
  auto fresh = e.start(h2, "p", json::object());
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap", 2));
  clock_->advance(5s);
  EXPECT_EQ(e.wait(fresh.value())->output, "v2");
}

TEST_F(EngineTest, CancelCompensatesAndEndsCancelled) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga c() {
  step a { do s.a() undo s.undo_a() }
  step nap { do sleep(for: 1h) }
}
)");
  Recorder rec;
  rec.answer(e, {"s.a", "s.undo_a"});
  auto id = e.start(hash, "c", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  ASSERT_TRUE(e.cancel(id.value()).ok());
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "undo_a"}));
  EXPECT_EQ(e.cancel("no-such-id").code(), saga::StatusCode::kNotFound);
}

TEST_F(EngineTest, StartAndResumeAPendingInstance) {
  auto& e = open();
  std::string hash = load(R"(saga p(n: number) { output n * 2 })");
  auto id = e.enqueue(hash, "p", {{"n", 21}});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(e.get(id.value())->status, InstanceStatus::kPending);
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), 1u);
  auto info = e.wait(id.value());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  EXPECT_EQ(info->output, 42);
}

TEST_F(EngineTest, RuntimeErrorFailsTheSagaWithItsPosition) {
  auto& e = open();
  std::string hash = load("saga p(n: any) {\n  output n + 1\n}\n");
  auto id = e.start(hash, "p", {{"n", "text"}});
  ASSERT_TRUE(id.ok());
  auto info = e.wait(id.value());
  EXPECT_EQ(info->status, InstanceStatus::kFailed);
  EXPECT_EQ(info->error_class, "type");
  EXPECT_NE(info->error_message.find("test.saga:2"), std::string::npos) << info->error_message;
}

TEST_F(EngineTest, HistoryRecordsEveryTransition) {
  auto& e = open(saga::Durability::kFull);
  std::string hash = load(kThreeSteps);
  Recorder rec;
  register_shop(e, rec, "b", "rejected");
  auto id = e.start(hash, "order", {{"id", "5"}, {"fail_at", "b"}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(e.wait(id.value()).ok());
  auto history = e.store().history(id.value());
  ASSERT_TRUE(history.ok());
  std::vector<std::string> kinds;
  for (const auto& h : history.value())
    kinds.push_back(h.kind + (h.step.empty() ? "" : ":" + h.step));
  // One stored event per transition at least; "step_started"/"undo_started"
  // ride with the event before them and are only reported live.
  EXPECT_EQ(kinds, (std::vector<std::string>{"started", "step_completed:a", "step_failed:b",
                                             "compensating", "undo_completed:a", "compensated"}));
  EXPECT_EQ(log_.count("step_started"), 2u);
  EXPECT_EQ(log_.count("undo_started"), 1u);
  auto failed = std::find_if(history->begin(), history->end(),
                             [](const auto& h) { return h.kind == "step_failed"; });
  EXPECT_EQ(failed->error_class, "rejected");
  EXPECT_EQ(failed->attempt, 1u);
}

}  // namespace

namespace {

// An asynchronous action may complete after the engine is gone (a host that
// shuts down while calls are out): the completion is ignored, and the
// instance resumes from its last checkpoint next time.
TEST_F(EngineTest, LateCompletionAfterTheEngineIsGoneIsIgnored) {
  std::vector<saga::Completion> parked;
  std::mutex mu;
  std::string id;
  {
    auto& e = open();
    std::string hash = load(R"(
service s { }
saga late() { step wait { do s.slow() -> r undo s.undo() } output r }
)");
    e.register_async_action("s.slow", [&](const saga::ActionCall&, saga::Completion c) {
      std::lock_guard lock(mu);
      parked.push_back(c);
    });
    auto started = e.start(hash, "late", json::object());
    ASSERT_TRUE(started.ok());
    id = started.value();
    // The action has been called (step_started is reported a moment before).
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lock(mu);
      return !parked.empty();
    }));
    engine_.reset();
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(parked.size(), 1u);
  parked[0].succeed(json{{"too", "late"}});  // Must not touch the destroyed engine.
  auto& e = open();
  e.register_action("s.slow", [](const saga::ActionCall&) -> json { return "on time"; });
  ASSERT_TRUE(e.resume().ok());
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->output, "on time");
}

}  // namespace

namespace {

// ---- Eviction: an instance waiting in a long timer is not in memory --------
//
// Evicted, an instance is only its id and due time in the engine; it is read
// back from the database when it is due or cancelled. Engine::evicted() says
// which instances are out of memory, so these tests know that the path they
// check is the evicted one.

const char* kNap = R"(
service s { }
saga nap(n: number) {
  step a { do s.a(n: n) -> x undo s.undo_a() }
  step nap { do sleep(for: 1h) }
  step b { do s.b(n: n) -> y }
  output { x: x, y: y }
}
)";

std::vector<std::string> history_of(saga::Engine& e, const std::string& id) {
  auto history = e.store().history(id);
  EXPECT_TRUE(history.ok()) << history.status().message();
  std::vector<std::string> kinds;
  if (!history.ok()) return kinds;
  for (const auto& h : history.value())
    kinds.push_back(h.kind + (h.step.empty() ? "" : ":" + h.step));
  return kinds;
}

// EngineOptions::lease: an instance's claim lasts that long from its start,
// and the engine renews it every third of it; less than kMinLease is refused.
TEST_F(EngineTest, TheLeaseIsTheOptionsAndIsRenewedEveryThirdOfIt) {
  lease_ = 9s;
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  const int64_t t0 = clock_->now_ms();
  auto id = e.start(hash, "nap", {{"n", 1}});
  ASSERT_TRUE(id.ok()) << id.status().message();
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  auto lease_until = [&] {
    auto rec = e.store().get_instance(id.value());
    return rec.ok() && rec.value() ? rec.value()->lease_until_ms : -1;
  };
  EXPECT_EQ(lease_until(), t0 + 9000);
  clock_->advance(3s - 1ms);
  EXPECT_EQ(lease_until(), t0 + 9000) << "renewed before a third of the lease";
  clock_->advance(1ms);
  EXPECT_TRUE(eventually([&] { return lease_until() == t0 + 3000 + 9000; }))
      << "not renewed after a third of the lease: " << lease_until() - t0;
  engine_.reset();

  saga::EngineOptions options;
  options.database = database_;
  options.lease = saga::kMinLease - 1ms;
  auto refused = saga::Engine::open(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), saga::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("at least 1000 ms"), std::string::npos)
      << refused.status().message();
}

TEST_F(EngineTest, AnInstanceAsleepInALongTimerIsEvictedAndWakesOnTime) {
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  auto id = e.start(hash, "nap", {{"n", 1}});
  ASSERT_TRUE(id.ok()) << id.status().message();
  // The event is reported after the commit's waits began: evicted by now.
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  EXPECT_EQ(e.evicted(), 1u);
  EXPECT_EQ(e.active(), 1u) << "an evicted instance still runs here";
  EXPECT_EQ(e.armed_timers(), 2u) << "the lease renewal, and the sleep";
  EXPECT_EQ(e.wait(id.value(), 0ms)->status, InstanceStatus::kRunning);
  auto view = e.inspect(id.value());
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view.value()["waiting"][0]["step"], "nap") << view.value().dump();

  clock_->advance(1h - 1ms);
  EXPECT_EQ(e.evicted(), 1u) << "not due yet";
  clock_->advance(1ms);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, (json{{"x", 1}, {"y", 1}}));
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "b"})) << "a ran once, before the sleep";
  EXPECT_EQ(e.evicted(), 0u);
  EXPECT_EQ(e.active(), 0u);
  // The lease renewal, which the hour's jump made due: it arms itself again.
  EXPECT_TRUE(eventually([&] { return e.armed_timers() == 1; })) << e.armed_timers();
  // The history is the one of an instance that stayed in memory: being
  // loaded again is not a resume.
  EXPECT_EQ(history_of(e, id.value()),
            (std::vector<std::string>{"started", "step_completed:a", "step_completed:nap",
                                      "step_completed:b", "completed"}));
  auto nap_done = log_.of("step_completed");
  ASSERT_EQ(nap_done.size(), 3u);
  EXPECT_EQ(nap_done[1].time_ms - nap_done[0].time_ms, 3'600'000) << "woke at its due time";
}

TEST_F(EngineTest, ShortSleepsAndADisabledThresholdStayInMemory) {
  const char* source = R"(
saga p(d: number) { step nap { do sleep(for: d) } output d }
)";
  {
    auto& e = open();
    std::string hash = load(source);
    auto id = e.start(hash, "p", {{"d", 5000}});  // Below the default 10 s.
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    EXPECT_EQ(e.evicted(), 0u);
    EXPECT_EQ(e.active(), 1u);
    clock_->advance(5s);
    EXPECT_EQ(e.wait(id.value())->status, InstanceStatus::kCompleted);
  }
  evict_after_ = 0ms;
  auto& e = open();
  std::string hash = load(source);
  auto id = e.start(hash, "p", {{"d", 3'600'000}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap", 2));
  EXPECT_EQ(e.evicted(), 0u) << "evict_after 0 keeps every instance in memory";
  clock_->advance(1h);
  EXPECT_EQ(e.wait(id.value())->status, InstanceStatus::kCompleted);
}

TEST_F(EngineTest, CancelOfAnEvictedInstanceLoadsItAndCompensates) {
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  auto id = e.start(hash, "nap", {{"n", 1}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  ASSERT_EQ(e.evicted(), 1u);
  ASSERT_TRUE(e.cancel(id.value()).ok());
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "undo_a"}));
  EXPECT_EQ(e.evicted(), 0u);
  EXPECT_EQ(e.armed_timers(), 1u) << "its timers went with it";
  EXPECT_EQ(e.cancel(id.value()).code(), saga::StatusCode::kFailedPrecondition);
}

// A cancel posted by another process (`sagactl cancel`) reaches an evicted
// instance at the worker's next resume(), and at the latest when it is
// loaded again (here without the inbox watch, which would notice it first).
TEST_F(EngineTest, ACancelFromAnotherProcessReachesAnEvictedInstance) {
  inbox_watch_ = 0ms;
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  const std::vector<std::string> ids = start_naps(e, hash, 2);
  ASSERT_EQ(e.evicted(), 2u);
  {
    auto other = saga::open_store(database_);
    ASSERT_TRUE(other.ok()) << other.status().message();
    for (const std::string& id : ids) {
      auto posted =
          saga::post_command(*other.value(), id, {saga::Command::cancel, {}, {}}, "m-" + id, 1);
      ASSERT_TRUE(posted.ok()) << posted.status().message();
    }
  }
  auto taken = e.resume(ids[0]);  // The worker's poll, for the first one only.
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  EXPECT_EQ(taken.value(), 0u) << "already ours";
  EXPECT_EQ(e.wait(ids[0])->status, InstanceStatus::kCancelled);
  EXPECT_EQ(e.evicted(), 1u);
  clock_->advance(1h);  // The second is loaded when due, and reads its cancel.
  EXPECT_EQ(e.wait(ids[1])->status, InstanceStatus::kCancelled);
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "a", "undo_a", "undo_a"}));
}

TEST_F(EngineTest, WaitAndStartAsyncCallbacksSeeAnEvictedInstanceEnd) {
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  std::promise<saga::InstanceInfo> ended;
  auto id = e.start_async(hash, "nap", {{"n", 2}},
                          [&ended](const saga::InstanceInfo& info) { ended.set_value(info); });
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  ASSERT_EQ(e.evicted(), 1u);
  auto waiter = std::async(std::launch::async, [&] { return e.wait(id.value()); });
  // Until it is due, wait() keeps waiting: a bounded wait gives up with the
  // instance still running.
  EXPECT_EQ(e.wait(id.value(), 20ms)->status, InstanceStatus::kRunning);
  clock_->advance(1h);
  auto info = waiter.get();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  auto done = ended.get_future().get();
  EXPECT_EQ(done.id, id.value());
  EXPECT_EQ(done.status, InstanceStatus::kCompleted);
  EXPECT_EQ(done.output, (json{{"x", 1}, {"y", 1}}));
  e.wait_idle();
  EXPECT_EQ(e.active(), 0u);
}

// The engine goes away (a crash, as far as the database is concerned: the
// store holds the last commit) while the instance is evicted: the next one
// resumes it, evicts it again, and it wakes on time without repeating a.
TEST_F(EngineTest, AnInstanceEvictedWhenTheEngineWentAwayResumesAndWakesOnTime) {
  std::string id, hash;
  Recorder rec;
  {
    auto& e = open();
    hash = load(kNap);
    rec.answer(e, {"s.a", "s.b", "s.undo_a"});
    auto started = e.start(hash, "nap", {{"n", 1}});
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    ASSERT_EQ(e.evicted(), 1u);
    engine_.reset();
  }
  auto& e = open();
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), 1u);
  // Its "resumed" event is committed, and then it leaves memory again.
  ASSERT_TRUE(log_.wait_for("resumed"));
  EXPECT_TRUE(eventually([&] { return e.evicted() == 1; }));
  clock_->advance(30min);
  auto again = e.resume();  // A worker's next poll: it is ours already.
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), 0u);
  clock_->advance(30min);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, (json{{"x", 1}, {"y", 1}}));
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "b"})) << "a is not run again";
  EXPECT_EQ(history_of(e, id),
            (std::vector<std::string>{"started", "step_completed:a", "resumed",
                                      "step_completed:nap", "step_completed:b", "completed"}));
}

// Every fiber of a parallel foreach asleep, the root at its join: the
// instance is evicted whole, and loaded with all its fibers.
TEST_F(EngineTest, AnInstanceWhoseFibersAllSleepIsEvictedWhole) {
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga fan(items: list) {
  parallel foreach item in items {
    step nap { do sleep(for: 1h) }
    step each { do s.each(item: item) -> r }
  }
  output r
}
)");
  e.register_action(
      "s.each", [](const saga::ActionCall& c) -> json { return c.args["item"].get<int>() * 10; });
  auto id = e.start(hash, "fan", {{"items", {1, 2, 3}}});
  ASSERT_TRUE(id.ok());
  // The three naps start in one transition, whose waits (and eviction) come
  // before its events are reported.
  ASSERT_TRUE(eventually([&] { return log_.of("step_started").size() == 3; }));
  EXPECT_EQ(e.evicted(), 1u);
  clock_->advance(1h);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, (json{10, 20, 30}));
}

// A retry's long backoff evicts too; the attempt after it is made once.
TEST_F(EngineTest, ALongBackoffEvictsAndTheNextAttemptIsMadeOnce) {
  auto& e = open();
  std::string hash = load(R"(
service pay { }
saga s() {
  step charge { do pay.charge() -> r undo pay.refund() retry { attempts: 2, backoff: fixed(1m), on: [unavailable] } }
  output r
}
)");
  std::atomic<int> calls{0};
  e.register_action("pay.charge", [&](const saga::ActionCall& c) -> json {
    ++calls;
    if (c.attempt == 1) throw saga::ActionError("unavailable", "try later");
    return c.attempt;
  });
  e.register_action("pay.refund", [](const saga::ActionCall&) -> json { return nullptr; });
  auto id = e.start(hash, "s", json::object());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("attempt_failed", "charge"));
  EXPECT_EQ(e.evicted(), 1u);
  clock_->advance(1min);
  auto info = e.wait(id.value());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, 2);
  EXPECT_EQ(calls.load(), 2);
}

}  // namespace

// resume() claims the unfinished rows, then takes up each claimed record
// that this engine does not run. An instance of this engine that ends in
// between was claimed as unfinished: taking its stale record up ran it once
// more from an old checkpoint (found by bench/chaos: an undo called twice, and
// completed sagas compensated). Here the instance `late` ends while resume()
// is still busy with the pending instances claimed before it: its action
// is completed by the first of them.
TEST_F(EngineTest, AnInstanceThatEndsWhileResumeTakesUpOthersIsNotTakenUpAgain) {
  auto& e = open();
  std::string hash = load(R"(
service p { }
saga quick(n: number) { step go { do p.go(n: n) } }
saga late() { step wait { do p.wait() -> w  undo p.unwait(id: w.id) } }
)");
  std::mutex mu;
  std::optional<saga::Completion> held;
  std::atomic<int> waits{0}, unwaits{0};
  e.register_async_action("p.wait", [&](const saga::ActionCall&, saga::Completion done) {
    ++waits;
    std::lock_guard lock(mu);
    held.emplace(std::move(done));
  });
  e.register_action("p.unwait", [&](const saga::ActionCall&) {
    ++unwaits;
    return json::object();
  });
  e.register_action("p.go", [&](const saga::ActionCall&) {
    std::lock_guard lock(mu);
    if (held) {
      held->succeed(json{{"id", "w-1"}});
      held.reset();
    }
    return json::object();
  });
  constexpr int kPending = 2000;
  std::vector<std::string> ids;
  for (int i = 0; i < kPending; ++i) {
    auto id = e.enqueue(hash, "quick", json{{"n", i}});
    ASSERT_TRUE(id.ok()) << id.status().message();
    ids.push_back(id.value());
  }
  auto late = e.start(hash, "late", json::object());
  ASSERT_TRUE(late.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "wait"));
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  for (const std::string& id : ids) ASSERT_TRUE(e.wait(id).ok());
  auto info = e.wait(late.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, saga::InstanceStatus::kCompleted);
  e.wait_idle();
  EXPECT_EQ(waits.load(), 1);
  EXPECT_EQ(unwaits.load(), 0);
  auto history = e.store().history(late.value());
  ASSERT_TRUE(history.ok());
  int ends = 0, resumed = 0;
  for (const saga::HistoryEvent& ev : history.value()) {
    ends += ev.kind == "completed" || ev.kind == "compensated" || ev.kind == "failed";
    resumed += ev.kind == "resumed";
  }
  EXPECT_EQ(ends, 1);
  EXPECT_EQ(resumed, 0);
  EXPECT_EQ(taken.value(), static_cast<size_t>(kPending));
}

// ---- The inbox and the operator commands -----------------------------------------

// A message another process posts is noticed by the inbox watch, with no
// resume() and no clock move: the evicted instance is cancelled, and its
// cancel is consumed with the transition that acts on it.
TEST_F(EngineTest, TheInboxWatchNoticesACancelFromAnotherProcess) {
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  const std::vector<std::string> id = start_naps(e, hash, 1);
  ASSERT_EQ(e.evicted(), 1u);
  {
    auto other = saga::open_store(database_);
    ASSERT_TRUE(other.ok()) << other.status().message();
    auto posted =
        saga::post_command(*other.value(), id[0], {saga::Command::cancel, {}, {}}, "m-1", 1);
    ASSERT_TRUE(posted.ok()) << posted.status().message();
  }
  auto info = e.wait(id[0], 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"a", "undo_a"}));
  auto inbox = e.store().inbox(id[0]);
  ASSERT_TRUE(inbox.ok());
  EXPECT_TRUE(inbox->empty()) << "consumed";
}

// The nap saga's undo of `a` fails while `failing` is set.
struct FlakyUndo {
  std::atomic<bool> failing{true};
  Recorder rec;
  void install(saga::Engine& e) {
    rec.answer(e, {"s.a", "s.b"});
    e.register_action("s.undo_a", [this](const saga::ActionCall& c) -> json {
      rec.add(c);
      if (failing) throw saga::ActionError("unavailable", "refunds are down");
      return 1;
    });
  }
};

const char* kFailsAfterA = R"(
service s { }
saga fails(n: number) {
  step a { do s.a(n: n) -> x undo s.undo_a() }
  fail rejected "give up"
}
)";

// Makes the instance stuck: the undo of `a` fails its 3 attempts (the
// fixture's compensation policy), the clock moved past each backoff.
std::string make_stuck(saga::Engine& e, const std::string& hash, EventLog& log,
                       saga::ManualClock& clock) {
  auto id = e.start(hash, "fails", {{"n", 1}});
  EXPECT_TRUE(id.ok());
  for (size_t n = 1; n <= 2; ++n) {
    EXPECT_TRUE(log.wait_for("undo_failed", "a", n));
    clock.advance(1h);
  }
  auto info = e.wait(id.value(), 10s);
  EXPECT_EQ(info->status, InstanceStatus::kStuck);
  return id.value();
}

// retry runs the undo that gave up again, with a fresh budget and the same
// idempotency key, from where it stopped; its dead letter is resolved.
TEST_F(EngineTest, RetryOfAStuckInstanceRunsTheUndoAgainAndResolvesTheDeadLetter) {
  auto& e = open();
  std::string hash = load(kFailsAfterA);
  FlakyUndo undo;
  undo.install(e);
  const std::string id = make_stuck(e, hash, log_, *clock_);
  EXPECT_EQ(undo.rec.get(), (std::vector<std::string>{"a", "undo_a", "undo_a", "undo_a"}));
  undo.failing = false;
  auto posted = e.command(id, {saga::Command::retry, "refunds are back", {}});
  ASSERT_TRUE(posted.ok()) << posted.status().message();
  // It is the engine's own instance no more (stuck): the command carries it
  // out only where an engine serves the inbox. This one does not: resume().
  ASSERT_TRUE(e.resume(id).ok());
  auto info = e.wait(id, 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
  std::vector<std::string> calls = undo.rec.get();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls.back(), "undo_a");
  EXPECT_EQ(undo.rec.keys[4], undo.rec.keys[1]) << "the same idempotency key";
  auto letters = e.store().dead_letters(id);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_NE((*letters)[0].resolved_ms, 0);
  auto history = history_of(e, id);
  EXPECT_NE(std::find(history.begin(), history.end(), "retried:a"), history.end());
  EXPECT_EQ(history.back(), "compensated");
}

// skip treats the undo that gave up as compensated: not called again.
TEST_F(EngineTest, SkipOfAStuckInstanceGoesOnWithoutTheUndo) {
  serve_inbox_ = true;
  auto& e = open();
  std::string hash = load(kFailsAfterA);
  FlakyUndo undo;
  undo.install(e);
  const std::string id = make_stuck(e, hash, log_, *clock_);
  auto posted = e.command(id, {saga::Command::skip, "refunded by hand", {}});
  ASSERT_TRUE(posted.ok()) << posted.status().message();
  auto info = e.wait(id, 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
  EXPECT_EQ(undo.rec.get().size(), 4u) << "the undo is not called again";
  auto skipped = log_.of("skipped");
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0].message, "refunded by hand");
  EXPECT_EQ(skipped[0].step, "a");
}

// pause parks a running instance; it survives a restart untouched (no
// worker runs it), and unpause lets it go on where it stopped.
TEST_F(EngineTest, APausedInstanceSurvivesARestartAndRunsOnWhenUnpaused) {
  serve_inbox_ = true;
  std::string id;
  {
    auto& e = open();
    std::string hash = load(kNap);
    Recorder rec;
    rec.answer(e, {"s.a", "s.b", "s.undo_a"});
    auto started = e.start(hash, "nap", {{"n", 1}});
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    ASSERT_TRUE(e.command(id, {saga::Command::pause, "maintenance", {}}).ok());
    auto info = e.wait(id, 10s);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->status, InstanceStatus::kPaused);
    EXPECT_EQ(e.active(), 0u) << "holds nothing but its row";
    // Refused in this state, nothing posted.
    auto again = e.command(id, {saga::Command::pause, {}, {}});
    EXPECT_EQ(again.status().code(), saga::StatusCode::kFailedPrecondition);
    EXPECT_NE(again.status().message().find("is paused: only a running instance can be paused"),
              std::string::npos)
        << again.status().message();
  }
  engine_.reset();
  auto& e = open();
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), 0u) << "a paused instance is not resumed";
  clock_->advance(2h);
  EXPECT_EQ(e.get(id)->status, InstanceStatus::kPaused);
  ASSERT_TRUE(e.command(id, {saga::Command::unpause, {}, {}}).ok());
  // Its sleep was due while it was paused: it ends at once, and the saga
  // goes on from there.
  auto info = e.wait(id, 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  EXPECT_EQ(rec.get(), (std::vector<std::string>{"b"}));
}

// skip of a paused instance's forward step completes it with the result
// given; compensate gives up on a paused instance and undoes what it did.
TEST_F(EngineTest, SkipAndCompensateOfAPausedInstance) {
  serve_inbox_ = true;
  auto& e = open();
  std::string hash = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b", "s.undo_a"});
  const std::vector<std::string> ids = start_naps(e, hash, 2);
  for (const std::string& id : ids) {
    ASSERT_TRUE(e.command(id, {saga::Command::pause, {}, {}}).ok());
    ASSERT_EQ(e.wait(id, 10s)->status, InstanceStatus::kPaused);
  }
  auto bad = e.command(ids[0], {saga::Command::skip, "n", "{not json"});
  EXPECT_EQ(bad.status().code(), saga::StatusCode::kInvalidArgument);
  ASSERT_TRUE(e.command(ids[0], {saga::Command::skip, "slept enough", R"({"ok":true})"}).ok());
  ASSERT_TRUE(e.command(ids[1], {saga::Command::compensate, "not wanted", {}}).ok());
  EXPECT_EQ(e.wait(ids[0], 10s)->status, InstanceStatus::kCompleted);
  auto gave_up = e.wait(ids[1], 10s);
  EXPECT_EQ(gave_up->status, InstanceStatus::kCompensated);
  EXPECT_NE(gave_up->error_message.find("not wanted"), std::string::npos);
  std::vector<std::string> calls = rec.get();
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls, (std::vector<std::string>{"a", "a", "b", "undo_a"}));
  bool slept = false;
  for (const auto& ev : log_.of("step_completed")) {
    slept = slept || (ev.step == "nap" && ev.data_json == R"({"ok":true})");
  }
  EXPECT_TRUE(slept) << "the skipped step's result is the one given";
  EXPECT_EQ(e.command("no-such-id", {saga::Command::retry, {}, {}}).status().code(),
            saga::StatusCode::kNotFound);
}

// EngineOptions::notify_operators: the transition that makes an instance paused or
// stuck writes one outbox event describing it (docs/events.md, "Notify"),
// and no other transition writes any; without the option, none is written.
TEST_F(EngineTest, NotifyWritesOneOutboxEventWhenAnInstanceBecomesPausedOrStuck) {
  serve_inbox_ = true;
  notify_ = true;
  auto& e = open();
  std::string nap = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b"});
  auto paused = e.start(nap, "nap", {{"n", 1}});
  ASSERT_TRUE(paused.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  ASSERT_TRUE(e.command(paused.value(), {saga::Command::pause, "maintenance", {}}).ok());
  ASSERT_EQ(e.wait(paused.value(), 10s)->status, InstanceStatus::kPaused);

  std::string stuck_program = load(R"(
service t { }
saga x() {
  step a { do t.a() undo t.undo_a() }
  fail rejected "stop here"
}
)");
  e.register_action("t.a", [](const saga::ActionCall&) -> json { return 1; });
  e.register_action("t.undo_a", [](const saga::ActionCall&) -> json {
    throw saga::ActionError("unavailable", "refund service down");
  });
  auto stuck = e.start(stuck_program, "x", json::object());
  ASSERT_TRUE(stuck.ok());
  ASSERT_TRUE(log_.wait_for("undo_failed", "a", 1));
  clock_->advance(100ms);
  ASSERT_TRUE(log_.wait_for("undo_failed", "a", 2));
  clock_->advance(200ms);
  ASSERT_EQ(e.wait(stuck.value(), 10s)->status, InstanceStatus::kStuck);

  auto rows = e.store().list_outbox({});
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  std::map<std::string, saga::OutboxEvent> by_type;
  for (const saga::OutboxEvent& row : *rows) by_type[row.type] = row;
  const saga::OutboxEvent& p = by_type["saga.instance.paused"];
  EXPECT_EQ(p.instance_id, paused.value());
  EXPECT_EQ(p.seq, 1);
  EXPECT_EQ(p.source, "/sagas/nap/instances/" + paused.value());
  EXPECT_EQ(json::parse(p.data_json), (json{{"saga", "nap"},
                                            {"instance", paused.value()},
                                            {"status", "paused"},
                                            {"step", ""},
                                            {"attempt", 0},
                                            {"error_class", ""},
                                            {"error", "maintenance"}}));
  const saga::OutboxEvent& s = by_type["saga.instance.stuck"];
  EXPECT_EQ(s.instance_id, stuck.value());
  json data = json::parse(s.data_json);
  EXPECT_EQ(data["status"], "stuck");
  EXPECT_EQ(data["step"], "a");
  EXPECT_EQ(data["attempt"], 3);
  EXPECT_EQ(data["error_class"], "unavailable");
  EXPECT_EQ(data["error"], "undo failed 3 times: refund service down");
  EXPECT_EQ(s.id.size(), 32u);
  EXPECT_NE(s.id, p.id);

  // Unpaused, the instance runs to its end: no further event.
  ASSERT_TRUE(e.command(paused.value(), {saga::Command::unpause, {}, {}}).ok());
  clock_->advance(2h);
  ASSERT_EQ(e.wait(paused.value(), 10s)->status, InstanceStatus::kCompleted);
  EXPECT_EQ(e.store().list_outbox({}).value().size(), 2u);
}

TEST_F(EngineTest, WithoutNotifyNoOutboxEventIsWritten) {
  serve_inbox_ = true;
  auto& e = open();
  std::string nap = load(kNap);
  Recorder rec;
  rec.answer(e, {"s.a", "s.b"});
  auto id = e.start(nap, "nap", {{"n", 1}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  ASSERT_TRUE(e.command(id.value(), {saga::Command::pause, "maintenance", {}}).ok());
  ASSERT_EQ(e.wait(id.value(), 10s)->status, InstanceStatus::kPaused);
  EXPECT_TRUE(e.store().list_outbox({}).value().empty());
}
namespace {

// ---- Incoming events (Engine::publish) ------------------------------------

const char* kTriggered = R"(
saga payment(order: string, total: number) {
  step charge { do log(message: "charge ${order}") }
  output { order: order, total: total }
}
saga audit(event_id: string, note: string) {
  step note { do log(message: note) }
  output { event_id: event_id, note: note }
}
on order.placed start payment(order: event.data.order, total: event.data.amount)
on order.placed start audit(event_id: event.id, note: "placed")
)";

json placed(const std::string& id, const std::string& source = "shop") {
  return {{"specversion", "1.0"},
          {"id", id},
          {"source", source},
          {"type", "order.placed"},
          {"data", {{"order", "A-1"}, {"amount", 7}}}};
}

TEST_F(EngineTest, PublishStartsEveryMatchingTriggerOnceWithItsArguments) {
  saga::Engine& e = open();
  const std::string hash = load(kTriggered);
  ASSERT_TRUE(e.serve_triggers(hash).ok());
  ASSERT_TRUE(e.serve_triggers(hash).ok());  // Twice is harmless: still one start per trigger.
  auto r = e.publish(placed("ev-1"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->duplicate);
  EXPECT_TRUE(r->matched);
  ASSERT_EQ(r->started.size(), 2u);
  auto payment = e.wait(r->started[0]);
  ASSERT_TRUE(payment.ok());
  EXPECT_EQ(payment->status, InstanceStatus::kCompleted);
  EXPECT_EQ(payment->saga, "payment");
  EXPECT_EQ(payment->output, json({{"order", "A-1"}, {"total", 7}}));
  auto audit = e.wait(r->started[1]);
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->output, json({{"event_id", "ev-1"}, {"note", "placed"}}));

  // Redelivered, to this engine and to one opened again on the database.
  auto again = e.publish(placed("ev-1"));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->started, r->started);
  saga::Engine& reopened = open();
  ASSERT_TRUE(reopened.serve_triggers(load(kTriggered)).ok());
  auto third = reopened.publish(placed("ev-1"));
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_TRUE(third->duplicate);
  auto all = reopened.store().list_instances(std::nullopt, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
}

TEST_F(EngineTest, PublishRecordsWhatMatchesNothingAndRefusesWhatIsNoEvent) {
  saga::Engine& e = open();
  const std::string hash = load(kTriggered);
  // Served by no trigger, an event is still recorded (an await may take it).
  auto unserved = e.publish(placed("ev-0"));
  ASSERT_TRUE(unserved.ok()) << unserved.status().message();
  EXPECT_FALSE(unserved->matched);
  EXPECT_TRUE(unserved->started.empty());
  EXPECT_EQ(e.serve_triggers("00000000000000000000000000000000").code(),
            saga::StatusCode::kNotFound);
  ASSERT_TRUE(e.serve_triggers(hash).ok());
  json no_source = placed("ev-2");
  no_source.erase("source");
  auto bad = e.publish(no_source);
  EXPECT_EQ(bad.status().code(), saga::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'source'"), std::string::npos) << bad.status().message();
  json other = placed("ev-3");
  other["type"] = "order.shipped";
  auto unmatched = e.publish(other);
  ASSERT_TRUE(unmatched.ok()) << unmatched.status().message();
  EXPECT_FALSE(unmatched->matched);
  EXPECT_TRUE(unmatched->started.empty());
  // A trigger that cannot read its argument starts nothing, not even the
  // other trigger of the type, and says why.
  json thin = placed("ev-4");
  thin["data"].erase("amount");
  auto refused = e.publish(thin);
  ASSERT_TRUE(refused.ok()) << refused.status().message();
  EXPECT_TRUE(refused->matched);
  EXPECT_TRUE(refused->started.empty());
  EXPECT_NE(refused->note.find("event.data.amount is missing"), std::string::npos) << refused->note;
  auto events = e.store().list_events(10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);  // The invalid one is not recorded.
  EXPECT_EQ((*events)[2].id, "ev-0");
  EXPECT_FALSE((*events)[2].matched);
  EXPECT_EQ((*events)[1].type, "order.shipped");
  EXPECT_FALSE((*events)[1].matched);
  EXPECT_EQ((*events)[0].note, refused->note);
  auto all = e.store().list_instances(std::nullopt, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

}  // namespace

// `emit TYPE { ... }`: one outbox row per emit passed, written with the
// transition that checkpoints the code after it (docs/events.md, "Emit"):
// in order, with the instance's source and the record as data; one per item
// of a loop, each with its own id.
const char* kEmits = R"(
service s { }
saga shop(n: number, items: list) {
  emit order.placed { order: n, items: items }
  step a { do s.a(n: n) -> x }
  foreach item in items {
    emit order.item { item: item, x: x }
  }
  step nap { do sleep(for: 1h) }
  emit order.done { order: n, total: x + 1 }
  output x
}
)";

TEST_F(EngineTest, EmitWritesOneOutboxRowPerEmitInOrder) {
  auto& e = open();
  std::string hash = load(kEmits);
  Recorder rec;
  rec.answer(e, {"s.a"});
  auto id = e.start(hash, "shop", {{"n", 7}, {"items", {"p", "q"}}});
  ASSERT_TRUE(id.ok()) << id.status().message();
  ASSERT_TRUE(log_.wait_for("step_started", "nap"));
  clock_->advance(1h);
  ASSERT_EQ(e.wait(id.value(), 10s)->status, InstanceStatus::kCompleted);

  auto rows = e.store().list_outbox({});
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 4u);
  std::vector<std::string> types;
  std::set<std::string> ids;
  for (size_t i = 0; i < rows->size(); ++i) {
    const saga::OutboxEvent& row = (*rows)[i];
    types.push_back(row.type);
    ids.insert(row.id);
    EXPECT_EQ(row.seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ(row.instance_id, id.value());
    EXPECT_EQ(row.source, "/sagas/shop/instances/" + id.value());
    EXPECT_EQ(row.id.size(), 32u);
  }
  EXPECT_EQ(types,
            (std::vector<std::string>{"order.placed", "order.item", "order.item", "order.done"}));
  EXPECT_EQ(ids.size(), 4u) << "each emit, and each item's, has its own id";
  EXPECT_EQ(json::parse((*rows)[0].data_json), (json{{"order", 7}, {"items", {"p", "q"}}}));
  std::set<json> items{json::parse((*rows)[1].data_json), json::parse((*rows)[2].data_json)};
  EXPECT_EQ(items, (std::set<json>{{{"item", "p"}, {"x", 1}}, {{"item", "q"}, {"x", 1}}}));
  EXPECT_EQ(json::parse((*rows)[3].data_json), (json{{"order", 7}, {"total", 2}}));
}

// The process goes away between transitions (in the nap): the rows of the
// transitions that committed are there, the later emit's is not; after the
// restart the instance goes on and writes only the later one, and a second
// instance's events have other ids.
TEST_F(EngineTest, EmitAcrossARestartWritesNoDuplicateAndNoEarlyRow) {
  std::string id, hash;
  {
    auto& e = open();
    hash = load(kEmits);
    Recorder rec;
    rec.answer(e, {"s.a"});
    auto started = e.start(hash, "shop", {{"n", 1}, {"items", json::array()}});
    ASSERT_TRUE(started.ok());
    id = started.value();
    ASSERT_TRUE(log_.wait_for("step_started", "nap"));
    auto rows = e.store().list_outbox({});
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 1u) << "order.done is not emitted before its transition";
    EXPECT_EQ((*rows)[0].type, "order.placed");
    engine_.reset();
  }
  auto& e = open();
  Recorder rec;
  rec.answer(e, {"s.a"});
  ASSERT_TRUE(e.resume().ok());
  clock_->advance(1h);
  ASSERT_EQ(e.wait(id, 10s)->status, InstanceStatus::kCompleted);
  auto rows = e.store().list_outbox({});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].type, "order.placed");
  EXPECT_EQ((*rows)[1].type, "order.done");
  EXPECT_EQ((*rows)[1].seq, 2);
  EXPECT_EQ(rec.get(), std::vector<std::string>{}) << "a completed before the restart";

  auto other = e.start(hash, "shop", {{"n", 2}, {"items", json::array()}});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(log_.wait_for("step_started", "nap", 2));
  rows = e.store().list_outbox({});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  std::set<std::string> ids;
  for (const saga::OutboxEvent& row : *rows) ids.insert(row.id);
  EXPECT_EQ(ids.size(), 3u) << "ids are derived from the instance too";
}

// A transition with an emit that the store cannot commit (disk full) leaves
// no outbox row; its retry writes the row, once.
TEST_F(EngineTest, EmitOfAFailedCommitIsWrittenOnlyByItsRetry) {
  if (postgres_) GTEST_SKIP() << "simulates a full disk with a SQLite-only hook";
  auto& e = open();
  std::string hash = load(R"(
service s { }
saga big() {
  step a { do s.a() -> r }
  emit big.loaded { size: len(r.blob) }
  step b { do s.b() }
}
)");
  std::string id;
  ASSERT_NO_FATAL_FAILURE(id = start_with_a_failed_commit(hash, "big"));
  EXPECT_TRUE(e.store().list_outbox({}).value().empty())
      << "no event for a transition that did not commit";

  ASSERT_TRUE(saga::store::sqlite_store_set_max_page_count(e.store(), 1 << 30).ok());
  clock_->advance(1s);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  auto rows = e.store().list_outbox({});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].type, "big.loaded");
  EXPECT_EQ(json::parse((*rows)[0].data_json), (json{{"size", 32768}}));
}
