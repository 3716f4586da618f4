// Overload protection in the engine (README, "Under overload"): admission
// control (EngineOptions::max_active) and the service gates (bulkhead and
// adaptive limit, retry budgets) as instances see them, on a manual clock.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "compiler/compile.hpp"
#include "saga/engine.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::InstanceStatus;
namespace fs = std::filesystem;

std::vector<uint8_t> compile(const std::string& source) {
  auto image = saga::compiler::compile_to_image("overload.saga", source);
  EXPECT_TRUE(image.ok()) << image.status().message();
  return image.ok() ? image.value() : std::vector<uint8_t>{};
}

// Polls `pred` for up to 10 s of real time: a failure guard for what
// another thread does next, not a timing assumption.
template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 10'000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

// Calls of an asynchronous action, held until the test answers them.
struct Held {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, saga::Completion>> calls;  // (order, completion)
  void add(const saga::ActionCall& c, saga::Completion done) {
    std::lock_guard lock(mu);
    calls.emplace_back(c.args.value("order", c.action), std::move(done));
    cv.notify_all();
  }
  // Waits (a failure guard, not a timing assumption) for `n` calls in all.
  bool wait_for(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 10s, [&] { return calls.size() >= n; });
  }
  std::vector<std::string> orders() {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (auto& [o, c] : calls) out.push_back(o);
    return out;
  }
  void succeed(size_t i) {
    std::lock_guard lock(mu);
    calls.at(i).second.succeed(json{{"id", calls.at(i).first}});
  }
};

class OverloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-overload-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    clock_ = std::make_shared<saga::ManualClock>();
    options_.database = (dir_ / "sagas.db").string();
    options_.durability = saga::Durability::kNormal;
    options_.clock = clock_;
    options_.seed = 7;
    options_.on_event = [this](const std::string& id, const saga::HistoryEvent& e) {
      std::lock_guard lock(mu_);
      events_.emplace_back(id, e);
    };
  }
  void TearDown() override {
    engine_.reset();
    fs::remove_all(dir_);
  }
  saga::Engine& open() {
    engine_.reset();
    auto engine = saga::Engine::open(options_);
    EXPECT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine).value();
    return *engine_;
  }
  std::string load(const std::string& source) {
    auto hash = engine_->load_program(compile(source));
    EXPECT_TRUE(hash.ok()) << hash.status().message();
    return hash.ok() ? hash.value() : "";
  }
  std::string start(const std::string& hash, const std::string& saga, const json& input) {
    auto id = engine_->start(hash, saga, input);
    EXPECT_TRUE(id.ok()) << id.status().message();
    return id.ok() ? id.value() : "";
  }
  InstanceStatus status(const std::string& id) {
    auto info = engine_->get(id);
    EXPECT_TRUE(info.ok()) << info.status().message();
    return info.ok() ? info->status : InstanceStatus::kPending;
  }
  std::vector<saga::HistoryEvent> events(const std::string& id, const std::string& kind) {
    std::lock_guard lock(mu_);
    std::vector<saga::HistoryEvent> out;
    for (auto& [i, e] : events_) {
      if (i == id && e.kind == kind) out.push_back(e);
    }
    return out;
  }

  fs::path dir_;
  std::shared_ptr<saga::ManualClock> clock_;
  saga::EngineOptions options_;
  std::unique_ptr<saga::Engine> engine_;
  std::mutex mu_;
  std::vector<std::pair<std::string, saga::HistoryEvent>> events_;
};

const char* kOneStep = R"(
service svc { }
saga s(order: string) {
  step hold { do svc.hold(order: order) -> r  undo svc.release(id: r.id) }
  output r
}
)";

TEST_F(OverloadTest, InstancesBeyondMaxActiveWaitPendingAndStartInOrder) {
  options_.max_active = 2;
  auto& e = open();
  Held held;
  e.register_async_action("svc.hold", [&](const saga::ActionCall& c, saga::Completion done) {
    held.add(c, std::move(done));
  });
  std::string hash = load(kOneStep);
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i)
    ids.push_back(start(hash, "s", {{"order", "o" + std::to_string(i)}}));
  ASSERT_TRUE(held.wait_for(2));
  EXPECT_EQ(e.admission_queue(), 3u);
  // start() returned for all five: the three beyond the limit are durable,
  // `pending`, and say why.
  for (int i = 2; i < 5; ++i) EXPECT_EQ(status(ids[i]), InstanceStatus::kPending) << i;
  auto recorded = events(ids[4], "recorded");
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_NE(recorded[0].message.find("waiting for admission"), std::string::npos);
  EXPECT_EQ(held.orders(), (std::vector<std::string>{"o1", "o2"}));
  held.succeed(1);  // o2 ends: o3 begins, not o4 or o5.
  ASSERT_TRUE(held.wait_for(3));
  EXPECT_EQ(held.orders().back(), "o3");
  held.succeed(0);  // Then o4...
  ASSERT_TRUE(held.wait_for(4));
  EXPECT_EQ(held.orders().back(), "o4");
  held.succeed(2);  // ...and o5.
  ASSERT_TRUE(held.wait_for(5));
  held.succeed(3);
  held.succeed(4);
  for (const std::string& id : ids) {
    auto info = e.wait(id, 10s);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  }
  EXPECT_EQ(held.orders(), (std::vector<std::string>{"o1", "o2", "o3", "o4", "o5"}));
  EXPECT_EQ(e.admission_queue(), 0u);
}

TEST_F(OverloadTest, PendingInstancesSurviveARestartAndKeepTheirOrder) {
  options_.max_active = 1;
  std::vector<std::string> ids;
  {
    auto& e = open();
    Held held;
    e.register_async_action("svc.hold", [&](const saga::ActionCall& c, saga::Completion done) {
      held.add(c, std::move(done));
    });
    std::string hash = load(kOneStep);
    for (int i = 1; i <= 4; ++i) {
      ids.push_back(start(hash, "s", {{"order", "o" + std::to_string(i)}}));
    }
    ASSERT_TRUE(held.wait_for(1));
    engine_.reset();  // o1 is out; o2..o4 never began.
  }
  auto& e = open();
  Held held;
  e.register_async_action("svc.hold", [&](const saga::ActionCall& c, saga::Completion done) {
    held.add(c, std::move(done));
  });
  for (int i = 1; i < 4; ++i) EXPECT_EQ(status(ids[i]), InstanceStatus::kPending);
  auto taken = e.resume();
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), 4u);
  // o1 resumed (it began before): never held back. The others wait.
  ASSERT_TRUE(held.wait_for(1));
  EXPECT_EQ(e.admission_queue(), 3u);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(held.wait_for(i + 1));
    held.succeed(i);
  }
  for (const std::string& id : ids) {
    auto info = e.wait(id, 10s);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  }
  EXPECT_EQ(held.orders(), (std::vector<std::string>{"o1", "o2", "o3", "o4"}));
}

TEST_F(OverloadTest, AQueuedStartThatIsCancelledNeverRuns) {
  options_.max_active = 1;
  auto& e = open();
  Held held;
  e.register_async_action("svc.hold", [&](const saga::ActionCall& c, saga::Completion done) {
    held.add(c, std::move(done));
  });
  std::string hash = load(kOneStep);
  std::string first = start(hash, "s", {{"order", "o1"}});
  std::string second = start(hash, "s", {{"order", "o2"}});
  ASSERT_TRUE(held.wait_for(1));
  ASSERT_TRUE(e.cancel(second).ok());
  auto info = e.wait(second, 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  held.succeed(0);
  ASSERT_TRUE(e.wait(first, 10s).ok());
  EXPECT_EQ(held.orders(), std::vector<std::string>{"o1"});
}

const char* kBulkhead = R"(
service svc { bulkhead 1 }
saga s(order: string) {
  step hold { do svc.hold(order: order) -> r  undo svc.release(id: r.id)  timeout 1s }
  output r
}
)";

TEST_F(OverloadTest, TheWaitForASlotDoesNotCountAgainstTheTimeout) {
  auto& e = open();
  Held held;
  e.register_async_action("svc.hold", [&](const saga::ActionCall& c, saga::Completion done) {
    held.add(c, std::move(done));
  });
  std::string hash = load(kBulkhead);
  std::string first = start(hash, "s", {{"order", "o1"}});
  ASSERT_TRUE(held.wait_for(1));
  std::string second = start(hash, "s", {{"order", "o2"}});
  ASSERT_TRUE(eventually([&] { return e.services()["svc"]["waiting"] == 1; }));
  // o1 answers after 900 ms, o2 then after another 900 ms: each within its
  // 1 s, o2 only because its wait for the one slot did not count.
  clock_->advance(900ms);
  held.succeed(0);
  ASSERT_TRUE(held.wait_for(2));
  clock_->advance(900ms);
  held.succeed(1);
  for (const std::string& id : {first, second}) {
    auto info = e.wait(id, 10s);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  }
  EXPECT_TRUE(events(second, "attempt_failed").empty());
  auto done = events(second, "step_completed");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_NE(done[0].message.find("waited 900ms for a slot of service 'svc' (limit 1, 0 waiting)"),
            std::string::npos)
      << done[0].message;
}

TEST_F(OverloadTest, ACallCancelledWhileItWaitsForASlotIsNotCompensated) {
  auto& e = open();
  Held held;
  std::atomic<int> releases{0};
  e.register_async_action("svc.hold", [&](const saga::ActionCall& c, saga::Completion done) {
    held.add(c, std::move(done));
  });
  e.register_action("svc.release", [&](const saga::ActionCall&) -> json {
    ++releases;
    return nullptr;
  });
  std::string hash = load(kBulkhead);
  std::string first = start(hash, "s", {{"order", "o1"}});
  ASSERT_TRUE(held.wait_for(1));
  std::string second = start(hash, "s", {{"order", "o2"}});
  ASSERT_TRUE(eventually([&] { return e.services()["svc"]["waiting"] == 1; }));
  ASSERT_TRUE(e.cancel(second).ok());
  auto info = e.wait(second, 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCancelled);
  auto abandoned = events(second, "step_abandoned");
  ASSERT_EQ(abandoned.size(), 1u);
  EXPECT_NE(abandoned[0].message.find("nothing was sent"), std::string::npos)
      << abandoned[0].message;
  EXPECT_EQ(releases.load(), 0);  // Its never-sent call is not undone.
  held.succeed(0);
  ASSERT_TRUE(e.wait(first, 10s).ok());
  EXPECT_EQ(held.orders(), std::vector<std::string>{"o1"});  // o2's call never went out.
  // o1's slot may first be granted to o2's waiter, which was given up and
  // hands it back from an engine thread: the slot comes back, not at once.
  EXPECT_TRUE(eventually([&] { return e.services()["svc"]["in_flight"] == 0; }))
      << e.services().dump();
}

TEST_F(OverloadTest, TheRetryBudgetHoldsRetriesBackAndShedsThemWhenItStaysEmpty) {
  // Two retries saved up, none earned (no call succeeds), none from time:
  // of five instances' second attempts, two are sent.
  options_.overload.retry_max_tokens = 2;
  options_.overload.retry_ratio = 0;
  options_.overload.retry_floor_per_second = 0;
  options_.overload.max_wait = 1s;
  auto& e = open();
  std::atomic<int> calls{0};
  e.register_action("svc.flaky", [&](const saga::ActionCall&) -> json {
    ++calls;
    throw saga::ActionError("unavailable", "down");
  });
  std::string hash = load(R"(
service svc { }
saga s(order: string) {
  step go { do svc.flaky(order: order) -> r  retry { attempts: 2, backoff: fixed(100ms), on: [unavailable] } }
  output r
}
)");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(start(hash, "s", {{"order", "o" + std::to_string(i)}}));
  // Time passes (the backoffs, then the gate's longest wait) until all end.
  auto all_ended = [&] {
    for (const std::string& id : ids) {
      if (!saga::is_terminal(status(id))) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually([&] {
    clock_->advance(100ms);
    return all_ended();
  }));
  int shed = 0;
  for (const std::string& id : ids) {
    auto info = e.wait(id, 10s);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->error_class, "unavailable");
    shed += info->error_message.find("not sent: waited") != std::string::npos;
  }
  EXPECT_EQ(calls.load(), 5 + 2);
  EXPECT_EQ(shed, 3);
  json svc = e.services()["svc"];
  EXPECT_EQ(svc["budget_waits"], 3);
  EXPECT_EQ(svc["shed"], 3);
}

}  // namespace
