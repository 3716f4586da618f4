// The timer queue (runtime/engine/timers.hpp): due callbacks are posted in
// due order, a cancelled one never is, and an entry due before the sleeping
// thread would wake by itself wakes it.
#include "runtime/engine/timers.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using saga::runtime::TimerQueue;

// Runs posted callbacks at once, on the timer thread, recording their order.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> fired;
  TimerQueue::Post post() {
    return [](std::function<void()> fn) { fn(); };
  }
  std::function<void()> note(std::string what) {
    return [this, what] {
      std::lock_guard lock(mu);
      fired.push_back(what);
    };
  }
};

TEST(TimerQueue, AManualClockPostsWhatIsDueBeforeAdvanceReturnsInDueOrder) {
  saga::ManualClock clock(1000);
  Recorder r;
  TimerQueue timers(clock, r.post());
  timers.schedule(1300, r.note("c"));
  timers.schedule(1100, r.note("a"));
  auto dropped = timers.schedule(1150, r.note("cancelled"));
  timers.schedule(1200, r.note("b"));
  timers.schedule(5000, r.note("later"));
  timers.cancel(dropped);
  clock.advance(std::chrono::milliseconds(300));
  {
    std::lock_guard lock(r.mu);
    EXPECT_EQ(r.fired, (std::vector<std::string>{"a", "b", "c"}));
  }
  EXPECT_EQ(timers.size(), 1u);  // "later" is still waiting.
  timers.stop();
}

// The thread sleeps up to a second when the first entry is far away (a
// saga's deadline); a timer due sooner, scheduled meanwhile, must wake it
// rather than wait for that second to pass.
TEST(TimerQueue, ASoonerTimerWakesTheSleepingThread) {
  saga::runtime::SystemClock clock;
  std::promise<void> fired;
  TimerQueue timers(clock, [](std::function<void()> fn) { fn(); });
  timers.schedule(clock.now_ms() + 3'600'000, [] {});
  while (!timers.asleep()) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  timers.schedule(clock.now_ms() + 10, [&] { fired.set_value(); });
  ASSERT_EQ(fired.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  // Well under the second the thread would otherwise sleep.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(700));
  timers.stop();
}

}  // namespace
