// Signals end to end in one process (saga/signals.hpp): `await signal` with
// a real store and a ManualClock. A signal during the await, before it (kept
// in the inbox), after the end (refused), two of one name (in post order),
// the timeout (compensation, or the else block), a signal racing the
// timeout, cancel of a waiting instance, a signal posted by another process,
// and one kept across a restart. And `await event` (Engine::publish): the
// event goes to the instance whose `where` it fits, one that fits none (or
// comes before the await, or after its timeout) is recorded unmatched, and
// one published by another engine reaches the instance. Nothing sleeps: tests wait for committed
// events or for the instance's end, and time moves only when a test says so.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "saga/signals.hpp"
#include "tests/support/pg_server.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using saga::InstanceStatus;
using namespace std::chrono_literals;

const char* kSignals = R"(
service shop { }
saga expense(amount: number) {
  step reserve { do shop.reserve(amount: amount) -> r  undo shop.release(ref: r) }
  await signal approve timeout 1h -> decision
  step pay { do shop.pay(amount: amount, by: decision.by) -> p }
  output { paid: p, by: decision.by }
}
saga twice() {
  await signal go timeout 1h -> first
  await signal go timeout 1h -> second
  output [first, second]
}
saga handled() {
  await signal approve timeout 1h -> d else {
    step note { do shop.note(why: "no answer") -> n }
  }
  output d
}
saga pay(order: string) {
  step reserve { do shop.reserve(amount: 1) -> r  undo shop.release(ref: r) }
  await event payment.completed, payment.failed where event.data.order == order timeout 1h -> paid
  output { type: paid.type, data: paid.data }
}
)";

// A CloudEvent of `type` for order `order`.
json payment_event(const std::string& id, const std::string& type, const std::string& order) {
  return {{"specversion", "1.0"},
          {"id", id},
          {"source", "/payments"},
          {"type", type},
          {"data", {{"order", order}}}};
}

class SignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-signal-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    database_ = (dir_ / "sagas.db").string();
    if (const char* store = std::getenv("SAGA_TEST_STORE");
        store && std::string(store).rfind("postgresql", 0) == 0) {
      saga::test::PgServer& pg = saga::test::PgServer::get();
      ASSERT_TRUE(pg.ok()) << pg.error();
      database_ = pg.fresh_database("signal");
    }
    clock_ = std::make_shared<saga::ManualClock>();
  }
  void TearDown() override {
    engine_.reset();
    fs::remove_all(dir_);
  }

  saga::Engine& open(std::chrono::milliseconds inbox_watch = 50ms) {
    engine_.reset();
    saga::EngineOptions options;
    options.database = database_;
    options.durability = saga::Durability::kNormal;
    options.clock = clock_;
    options.inbox_watch = inbox_watch;
    options.on_event = [this](const std::string& id, const saga::HistoryEvent& e) {
      std::lock_guard lock(mu_);
      events_.emplace_back(id, e);
      cv_.notify_all();
    };
    auto engine = saga::Engine::open(options);
    EXPECT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine).value();
    auto hash = engine_->load_program(compile());
    EXPECT_TRUE(hash.ok()) << hash.status().message();
    hash_ = hash.ok() ? hash.value() : "";
    for (const char* name : {"shop.reserve", "shop.release", "shop.pay", "shop.note"}) {
      if (hold_reserve_ && std::string(name) == "shop.reserve") continue;
      engine_->register_action(name, [this, name](const saga::ActionCall& c) -> json {
        std::string action = std::string(name).substr(5);
        {
          std::lock_guard lock(mu_);
          calls_.push_back(action);
        }
        return action + "-" + c.args.dump();
      });
    }
    if (hold_reserve_) {
      // Held by the test (asynchronous: a synchronous action runs with its
      // instance locked, and nothing could reach the instance meanwhile).
      engine_->register_async_action("shop.reserve",
                                     [this](const saga::ActionCall&, saga::Completion done) {
                                       std::lock_guard lock(mu_);
                                       calls_.push_back("reserve");
                                       held_ = std::move(done);
                                       entered_.set_value();
                                     });
    }
    return *engine_;
  }

  static std::vector<uint8_t> compile() {
    auto image = saga::compiler::compile_to_image("signals.saga", kSignals);
    EXPECT_TRUE(image.ok()) << image.status().message();
    return image.ok() ? std::move(image).value() : std::vector<uint8_t>{};
  }

  // Waits (10 s of real time at most: a failure guard, not a timing
  // assumption) until `id` has committed `count` events of `kind`.
  bool wait_for(const std::string& id, const std::string& kind, const std::string& step = {},
                size_t count = 1) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return this->count(id, kind, step) >= count; });
  }
  size_t count(const std::string& id, const std::string& kind, const std::string& step = {}) {
    size_t n = 0;
    for (const auto& [i, e] : events_)
      n += i == id && e.kind == kind && (step.empty() || e.step == step);
    return n;
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // The kinds of the instance's stored history named `kind`.
  size_t stored(const std::string& id, const std::string& kind) {
    auto h = engine_->store().history(id);
    EXPECT_TRUE(h.ok());
    size_t n = 0;
    for (const saga::HistoryEvent& e : h.value()) n += e.kind == kind;
    return n;
  }
  size_t unconsumed(const std::string& id) {
    auto inbox = engine_->store().inbox(id);
    EXPECT_TRUE(inbox.ok());
    return inbox.ok() ? inbox->size() : 0;
  }

  std::string start(const std::string& saga, const json& input = json::object()) {
    auto id = engine_->start(hash_, saga, input);
    EXPECT_TRUE(id.ok()) << id.status().message();
    return id.ok() ? id.value() : "";
  }

  fs::path dir_;
  std::string database_;
  std::shared_ptr<saga::ManualClock> clock_;
  std::unique_ptr<saga::Engine> engine_;
  std::string hash_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, saga::HistoryEvent>> events_;
  std::vector<std::string> calls_;
  // When set (before open()), shop.reserve answers only when the test
  // completes held_; entered_ says it was called.
  bool hold_reserve_ = false;
  std::promise<void> entered_;
  std::optional<saga::Completion> held_;
};

TEST_F(SignalTest, ASignalDuringTheAwaitMovesTheInstanceOn) {
  auto& e = open();
  const std::string id = start("expense", {{"amount", 5}});
  ASSERT_TRUE(wait_for(id, "step_started", "await approve"));
  auto posted = e.signal(id, "approve", R"({"by": "ann"})");
  ASSERT_TRUE(posted.ok()) << posted.status().message();
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["by"], "ann");
  EXPECT_EQ(stored(id, "signal_consumed"), 1u);
  EXPECT_EQ(unconsumed(id), 0u) << "consumed with the transition that used it";
  EXPECT_EQ(calls(), (std::vector<std::string>{"reserve", "pay"}));
}

TEST_F(SignalTest, ASignalBeforeTheAwaitIsKeptUntilTheAwaitTakesIt) {
  hold_reserve_ = true;
  auto& e = open();
  const std::string id = start("expense", {{"amount", 5}});
  ASSERT_EQ(entered_.get_future().wait_for(10s), std::future_status::ready);
  ASSERT_TRUE(e.signal(id, "approve", R"({"by": "bob"})").ok());
  EXPECT_EQ(unconsumed(id), 1u) << "kept: nothing awaits it yet";
  EXPECT_EQ(count(id, "signal_consumed"), 0u);
  std::optional<saga::Completion> done;
  {
    std::lock_guard lock(mu_);
    done = std::move(held_);
  }
  done->succeed("reserved");
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["by"], "bob");
  EXPECT_EQ(stored(id, "signal_consumed"), 1u);
  EXPECT_EQ(unconsumed(id), 0u);
}

TEST_F(SignalTest, TwoSignalsOfOneNameAreTakenInPostOrder) {
  auto& e = open();
  const std::string id = start("twice");
  ASSERT_TRUE(wait_for(id, "step_started", "await go"));
  ASSERT_TRUE(e.signal(id, "go", "1").ok());
  ASSERT_TRUE(e.signal(id, "go", "2").ok());
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, json::parse("[1, 2]"));
}

TEST_F(SignalTest, ASignalToAFinishedUnknownOrWithBadDataIsRefused) {
  auto& e = open();
  const std::string id = start("twice");
  ASSERT_TRUE(wait_for(id, "step_started", "await go"));
  EXPECT_EQ(e.signal(id, "go", "{not json").status().code(), saga::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.signal(id, "no spaces", "1").status().code(), saga::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.signal("no-such-instance", "go", "1").status().code(), saga::StatusCode::kNotFound);
  EXPECT_EQ(unconsumed(id), 0u) << "nothing posted by a refused signal";
  ASSERT_TRUE(e.signal(id, "go", "").ok());  // No data: null.
  ASSERT_TRUE(e.signal(id, "go", "").ok());
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->output, json::parse("[null, null]"));
  auto late = e.signal(id, "go", "3");
  EXPECT_EQ(late.status().code(), saga::StatusCode::kFailedPrecondition);
  EXPECT_NE(late.status().message().find("is completed"), std::string::npos)
      << late.status().message();
}

TEST_F(SignalTest, TheTimeoutFailsTheStepAndCompensates) {
  auto& e = open();
  const std::string id = start("expense", {{"amount", 5}});
  ASSERT_TRUE(wait_for(id, "step_started", "await approve"));
  clock_->advance(59min);
  EXPECT_EQ(count(id, "signal_timed_out"), 0u);
  clock_->advance(1min);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
  EXPECT_EQ(info->error_class, "timeout");
  EXPECT_EQ(calls(), (std::vector<std::string>{"reserve", "release"}));
  EXPECT_EQ(stored(id, "signal_timed_out"), 1u);
  EXPECT_EQ(stored(id, "signal_consumed"), 0u);
}

TEST_F(SignalTest, TheTimeoutRunsTheElseBlockWithTheVariableNull) {
  auto& e = open();
  const std::string id = start("handled");
  ASSERT_TRUE(wait_for(id, "step_started", "await approve"));
  clock_->advance(1h);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, nullptr);
  EXPECT_EQ(calls(), (std::vector<std::string>{"note"}));
  // And with a signal first, the else block does not run.
  const std::string other = start("handled");
  ASSERT_TRUE(wait_for(other, "step_started", "await approve"));
  ASSERT_TRUE(e.signal(other, "approve", R"("yes")").ok());
  info = e.wait(other);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->output, "yes");
  EXPECT_EQ(calls(), (std::vector<std::string>{"note"}));
}

// A signal and the timeout at the same moment: exactly one wins. Either the
// signal is consumed and the instance completes (no timeout recorded), or
// the timeout fires and compensates, and the late signal is refused (the
// instance has finished) or left unconsumed or dropped: never both, never
// neither.
TEST_F(SignalTest, ASignalRacingTheTimeoutWinsOrLosesWhole) {
  auto& e = open();
  int signal_won = 0, timeout_won = 0;
  for (int round = 0; round < 20; ++round) {
    const std::string id = start("expense", {{"amount", round}});
    ASSERT_TRUE(wait_for(id, "step_started", "await approve"));
    std::promise<void> go;
    std::shared_future<void> gate = go.get_future().share();
    auto sender = std::async(std::launch::async, [&, gate] {
      gate.wait();
      return e.signal(id, "approve", R"({"by": "racer"})");
    });
    auto ticker = std::async(std::launch::async, [&, gate] {
      gate.wait();
      clock_->advance(1h);
    });
    go.set_value();
    auto posted = sender.get();
    ticker.get();
    auto info = e.wait(id);
    ASSERT_TRUE(info.ok());
    const size_t consumed = stored(id, "signal_consumed");
    const size_t timed_out = stored(id, "signal_timed_out");
    ASSERT_EQ(consumed + timed_out, 1u) << "round " << round;
    if (consumed == 1) {
      ++signal_won;
      ASSERT_TRUE(posted.ok());
      EXPECT_EQ(info->status, InstanceStatus::kCompleted);
      EXPECT_EQ(unconsumed(id), 0u);
    } else {
      ++timeout_won;
      EXPECT_EQ(info->status, InstanceStatus::kCompensated);
      if (posted.ok()) {
        EXPECT_EQ(unconsumed(id) + stored(id, "signal_dropped"), 1u)
            << "a late signal is left or reported, not taken";
      } else {
        EXPECT_EQ(posted.status().code(), saga::StatusCode::kFailedPrecondition);
      }
    }
  }
  // Which side wins is up to the threads; the figures are for the log.
  std::printf("signal won %d rounds, the timeout %d\n", signal_won, timeout_won);
}

TEST_F(SignalTest, CancelOfAWaitingInstanceCompensates) {
  auto& e = open();
  const std::string id = start("expense", {{"amount", 5}});
  ASSERT_TRUE(wait_for(id, "step_started", "await approve"));
  ASSERT_TRUE(e.cancel(id).ok());
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  EXPECT_EQ(calls(), (std::vector<std::string>{"reserve", "release"}));
  EXPECT_EQ(e.signal(id, "approve", "{}").status().code(), saga::StatusCode::kFailedPrecondition);
}

// Another process posts the signal straight to the store (as `sagactl
// signal` does): the inbox watch hands it over.
TEST_F(SignalTest, ASignalFromAnotherProcessIsNoticed) {
  auto& e = open();
  const std::string id = start("expense", {{"amount", 5}});
  ASSERT_TRUE(wait_for(id, "step_started", "await approve"));
  {
    auto other = saga::open_store(database_);
    ASSERT_TRUE(other.ok()) << other.status().message();
    auto posted =
        saga::post_signal(*other.value(), id, "approve", R"({"by": "eve"})", "sig-" + id, 1);
    ASSERT_TRUE(posted.ok()) << posted.status().message();
  }
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["by"], "eve");
}

// The engine goes away while the instance waits; the signal is posted
// meanwhile; the next engine takes the instance up and the await takes the
// signal it finds in the inbox, once.
TEST_F(SignalTest, ASignalPostedWhileNoEngineRunsIsTakenOnResume) {
  std::string id;
  {
    open();
    id = start("twice");
    ASSERT_TRUE(wait_for(id, "step_started", "await go"));
    engine_.reset();
  }
  {
    auto store = saga::open_store(database_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(saga::post_signal(*store.value(), id, "go", R"("a")", "sig-a", 1).ok());
    ASSERT_TRUE(saga::post_signal(*store.value(), id, "go", R"("b")", "sig-b", 2).ok());
  }
  auto& e = open();
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output, json::parse(R"(["a", "b"])"));
  EXPECT_EQ(stored(id, "signal_consumed"), 2u);
  EXPECT_EQ(unconsumed(id), 0u);
}

// Two instances await their own order's payment: each event goes to the
// instance whose `where` it fits, as that await's result, and a redelivery
// hands nothing over twice.
TEST_F(SignalTest, AnEventGoesToTheInstanceWhoseAwaitItFits) {
  auto& e = open();
  const std::string one = start("pay", {{"order", "o-1"}});
  const std::string two = start("pay", {{"order", "o-2"}});
  const std::string await_step = "await event payment.completed,payment.failed";
  ASSERT_TRUE(wait_for(one, "step_started", await_step));
  ASSERT_TRUE(wait_for(two, "step_started", await_step));
  auto first = e.publish(payment_event("e-1", "payment.completed", "o-2"));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->matched);
  EXPECT_EQ(first->woke, std::vector<std::string>{two});
  EXPECT_TRUE(first->started.empty());
  auto info = e.wait(two);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["type"], "payment.completed");
  EXPECT_EQ(info->output["data"]["order"], "o-2");
  EXPECT_EQ(stored(two, "signal_consumed"), 1u);
  EXPECT_EQ(unconsumed(two), 0u);

  auto again = e.publish(payment_event("e-1", "payment.completed", "o-2"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->woke, std::vector<std::string>{two}) << "the first delivery's outcome";
  EXPECT_EQ(unconsumed(one), 0u) << "nothing handed to the other instance";

  auto failed = e.publish(payment_event("e-2", "payment.failed", "o-1"));
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->woke, std::vector<std::string>{one});
  info = e.wait(one);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["type"], "payment.failed");
  EXPECT_EQ(stored(one, "signal_consumed"), 1u);
}

// An event that fits no await is recorded unmatched and visible: another
// order's, another type, one sent before the instance reached its await,
// and one after the await timed out (the instance compensated).
TEST_F(SignalTest, AnEventNoAwaitFitsIsRecordedUnmatched) {
  hold_reserve_ = true;
  auto& e = open();
  const std::string id = start("pay", {{"order", "o-1"}});
  ASSERT_EQ(entered_.get_future().wait_for(10s), std::future_status::ready);
  auto early = e.publish(payment_event("e-early", "payment.completed", "o-1"));
  ASSERT_TRUE(early.ok()) << early.status().message();
  EXPECT_FALSE(early->matched) << "the await has not begun";
  EXPECT_TRUE(early->woke.empty());
  std::optional<saga::Completion> done;
  {
    std::lock_guard lock(mu_);
    done = std::move(held_);
  }
  done->succeed("reserved");
  ASSERT_TRUE(wait_for(id, "step_started", "await event payment.completed,payment.failed"));
  for (const json& other : {payment_event("e-other", "payment.completed", "o-9"),
                            payment_event("e-type", "payment.refunded", "o-1")}) {
    auto r = e.publish(other);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_FALSE(r->matched) << other.dump();
    EXPECT_TRUE(r->woke.empty()) << other.dump();
  }
  EXPECT_EQ(unconsumed(id), 0u);
  clock_->advance(1h);
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompensated);
  EXPECT_EQ(info->error_class, "timeout");
  auto late = e.publish(payment_event("e-late", "payment.completed", "o-1"));
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->matched) << "the instance waits for nothing now";
  auto unmatched = e.store().list_events(100, /*unmatched_only=*/true);
  ASSERT_TRUE(unmatched.ok());
  std::vector<std::string> ids;
  for (const saga::EventRecord& r : unmatched.value()) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"e-late", "e-type", "e-other", "e-early"}));
}

// Another engine on the same database (another worker's `POST /events`)
// records the event and hands it over; the engine that runs the instance
// notices it with its inbox watch.
TEST_F(SignalTest, AnEventPublishedByAnotherEngineReachesTheInstance) {
  auto& e = open();
  const std::string id = start("pay", {{"order", "o-1"}});
  ASSERT_TRUE(wait_for(id, "step_started", "await event payment.completed,payment.failed"));
  saga::EngineOptions options;
  options.database = database_;
  options.durability = saga::Durability::kNormal;
  auto other = saga::Engine::open(options);
  ASSERT_TRUE(other.ok()) << other.status().message();
  auto r = other.value()->publish(payment_event("e-1", "payment.completed", "o-1"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->woke, std::vector<std::string>{id});
  auto info = e.wait(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  EXPECT_EQ(info->output["data"]["order"], "o-1");
}

}  // namespace
