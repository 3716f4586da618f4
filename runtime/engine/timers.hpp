// The engine's timers and clocks. One thread and one ordered map serve every
// timer of an engine (attempt timeouts, backoffs, sleeps, deadlines, lease
// renewal); the system clock is the wall clock, because timers are stored as
// due times and survive restarts. ManualClock (saga/engine.hpp) is
// implemented here too. Used by runtime/engine/engine.cpp only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <utility>

#include "saga/engine.hpp"
#include "stdlib/functions.hpp"

namespace saga::runtime {

// Wall-clock milliseconds since the Unix epoch.
class SystemClock final : public Clock {
 public:
  int64_t now_ms() override;
};

// Pure functions see the engine's clock (so tests control now()) and real
// randomness.
class EngineFunctionContext final : public stdlib::FunctionContext {
 public:
  explicit EngineFunctionContext(Clock& clock) : clock_(clock) {}
  int64_t now_ms() override { return clock_.now_ms(); }
  void random_bytes(std::span<uint8_t> out) override { system_.random_bytes(out); }

 private:
  Clock& clock_;
  stdlib::SystemFunctionContext system_;
};

// Timers: one thread and one ordered map for all instances, so 100,000
// instances waiting in backoffs cost a map entry each, not a thread or an OS
// timer. Due callbacks are handed to `post` (the engine posts them to its
// threads), so this file needs no Asio.
//
// A timer that is no longer needed is cancelled, not left to fire as a
// no-op: a saga's deadline (often minutes) outlives the saga by far, and at
// tens of thousands of sagas per second the abandoned entries, and the
// instances they hold, would grow without bound.
struct TimerId {
  int64_t due = 0;
  uint64_t seq = 0;  // 0: no timer.
  explicit operator bool() const { return seq != 0; }
};

class TimerQueue {
 public:
  using Post = std::function<void(std::function<void()>)>;
  TimerQueue(Clock& clock, Post post) : clock_(clock), post_(std::move(post)) {
    // When a manual clock moves, the timers it made due are handed to `post`
    // before advance() returns, in due order: a test that then completes an
    // attempt knows that a timeout due by now was posted before it.
    waker_ = std::make_shared<const std::function<void()>>([this] {
      std::lock_guard lock(mu_);
      post_due(clock_.now_ms());
      cv_.notify_all();
    });
    clock_.on_advance(waker_);
    thread_ = std::thread([this] { loop(); });
  }
  ~TimerQueue() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    waker_.reset();
  }

  TimerId schedule(int64_t due_ms, std::function<void()> fn) {
    std::lock_guard lock(mu_);
    // The thread sleeps until the earliest due time, or a second: only an
    // entry due before it wakes needs to wake it (a deadline minutes away
    // does not, nor do most attempt timeouts), which spares a thread
    // wake-up per saga.
    TimerId id{due_ms, ++last_seq_};
    entries_.emplace_hint(entries_.end(), Key{due_ms, id.seq}, std::move(fn));
    if (due_ms < wakes_at_) cv_.notify_all();
    return id;
  }

  // Drops a timer that has not fired yet; harmless for one that has (its
  // callback may already be queued: callers still check their generation).
  void cancel(TimerId id) {
    if (!id) return;
    std::function<void()> dropped;  // Destroyed outside the lock.
    std::lock_guard lock(mu_);
    auto it = entries_.find(Key{id.due, id.seq});
    if (it == entries_.end()) return;
    dropped = std::move(it->second);
    entries_.erase(it);
  }

  size_t size() {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

  // Whether the thread sleeps, until the earliest entry or for a while (for
  // tests of what wakes it).
  bool asleep() {
    std::lock_guard lock(mu_);
    return wakes_at_ != std::numeric_limits<int64_t>::min();
  }

 private:
  using Key = std::pair<int64_t, uint64_t>;  // Due time, then scheduling order.

  // Hands every entry due at `now` to post_, earliest first. Called with
  // mu_ held; returns whether there was one.
  bool post_due(int64_t now) {
    bool any = false;
    while (!entries_.empty() && entries_.begin()->first.first <= now) {
      auto fn = std::move(entries_.begin()->second);
      entries_.erase(entries_.begin());
      post_(std::move(fn));
      any = true;
    }
    return any;
  }

  void loop() {
    std::unique_lock lock(mu_);
    while (!stopped_) {
      int64_t now = clock_.now_ms();
      if (post_due(now)) continue;
      // A manual clock wakes us through on_advance; a real one by the timeout.
      int64_t wait = kMaxSleepMs;
      if (!entries_.empty()) wait = std::min(entries_.begin()->first.first - now, wait);
      wakes_at_ = now + wait;
      cv_.wait_for(lock, std::chrono::milliseconds(wait));
      wakes_at_ = std::numeric_limits<int64_t>::min();  // Awake: schedule() need not notify.
    }
  }

  // The longest the thread sleeps without looking at the clock again.
  static constexpr int64_t kMaxSleepMs = 1000;

  Clock& clock_;
  Post post_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, std::function<void()>> entries_;
  uint64_t last_seq_ = 0;
  // When the sleeping thread wakes by itself (the clock's time); while it is
  // awake, the lowest value, as it looks at the entries before it sleeps.
  int64_t wakes_at_ = std::numeric_limits<int64_t>::min();
  bool stopped_ = false;
  std::thread thread_;
  std::shared_ptr<const std::function<void()>> waker_;  // Held weakly by the clock.
};

}  // namespace saga::runtime
