// The gate of a service: how many calls the engine lets out to it at once
// and which retries it lets out at all (README, "Under overload").
//
// Invariant: a call is sent only while the gate holds a slot for it, and a
// retry (an attempt after the first) only with a token of its budget; a call
// that waits for either has not been sent, so its wait neither counts
// against its attempt's timeout nor leaves its step in doubt, and a call
// waits at most GateSettings::max_wait_ms (then it fails, not sent).
//
// Three parts, each with its time given by the caller so that tests drive
// every transition with a controllable clock:
//   AdaptiveLimit  the number of slots, from the latencies and overload
//                  signals of the calls that ended (AIMD on latency);
//   RetryBudget    a token bucket: a fraction of the successful calls, plus
//                  a floor per second, capped;
//   ServiceGate    both, with the FIFO queues of waiting calls, thread-safe.
// Callbacks run outside the gate's lock and must not block.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

namespace saga::runtime {

struct LimitSettings {
  bool adaptive = true;   // False: the limit is `max` (the bulkhead, if any).
  uint32_t initial = 16;  // Slots before anything was measured.
  uint32_t min = 1;
  uint32_t max = 1000;     // Also the service's `bulkhead N` when it has one.
  double tolerance = 2.0;  // A window's mean latency above tolerance x baseline is overload.
  double decrease = 0.5;   // The limit is multiplied by this on overload.
};

// AIMD on latency. Samples are grouped in windows of at least
// max(32, limit / 2) calls (fewer, and the lowest window mean is far below
// the service's true mean for any service whose latency varies). The
// baseline is the lowest window mean of the last 10 s (at least the last 4
// windows): the service's latency without a queue. At the end of a window
// the limit
//   * shrinks when the window's mean latency exceeds tolerance x the
//     baseline, to limit x 0.9 x baseline / mean (at most limit x decrease):
//     about the number of calls the service serves at once, so that its
//     queue drains and the next windows measure the baseline again. (A
//     fixed factor, such as halving, leaves a queue when the limit was more
//     than twice the service's capacity, and the baseline creeps up with
//     it: tests/runtime/gate_test.cpp's simulations show both.)
//   * grows, when the window was saturated (some call found every slot
//     taken) and its latency stayed near the baseline: doubling until the
//     first shrink (slow start), then by ceil(sqrt(limit)).
// A timeout or `unavailable` (overload by the service's own account) shrinks
// the limit by `decrease` at once. After a shrink, calls that were sent
// before it are not counted (they tell of the old limit): without that,
// their latencies would shrink the limit again and again.
class AdaptiveLimit {
 public:
  explicit AdaptiveLimit(LimitSettings settings);
  uint32_t limit() const { return limit_; }
  void set_max(uint32_t max);  // A bulkhead's cap; never above settings.max.
  // A call waited for a slot (the window is saturated).
  void saturated() { saturated_ = true; }
  // A call ended at `now_ms` after `latency_ms`; `overload` for a timeout
  // or unavailable.
  void sample(int64_t now_ms, int64_t latency_ms, bool overload);
  double baseline_ms() const;
  uint64_t shrinks() const { return shrinks_; }
  static constexpr uint32_t kWindow = 32;
  static constexpr int64_t kBaselineMs = 10'000;

 private:
  void shrink(int64_t now_ms, double factor);
  void end_window(int64_t now_ms);
  LimitSettings s_;
  uint32_t limit_;
  uint32_t cap_;
  bool slow_start_ = true;
  bool saturated_ = false;
  uint32_t count_ = 0;
  double sum_ms_ = 0;
  struct Window {
    int64_t end_ms;
    double mean_ms;
  };
  std::array<Window, 256> windows_ring_{};
  uint32_t windows_ = 0;
  double baseline_ = 0;  // As of the last window.
  uint64_t shrinks_ = 0;
  int64_t shrunk_at_ms_ = std::numeric_limits<int64_t>::min();
};

struct BudgetSettings {
  bool enabled = true;           // False: every retry gets a token.
  double ratio = 0.2;            // Tokens per successful call.
  double floor_per_second = 10;  // Tokens added per second whatever happens.
  double max_tokens = 100;       // What can be saved up.
};

// A token bucket for retries: a retry takes one token; a successful call
// adds `ratio`; time adds `floor_per_second`. Starts full.
class RetryBudget {
 public:
  RetryBudget(BudgetSettings settings, int64_t now_ms);
  void deposit();  // A successful call.
  bool try_take(int64_t now_ms);
  double tokens(int64_t now_ms);

 private:
  void refill(int64_t now_ms);
  BudgetSettings s_;
  double tokens_;
  int64_t refilled_ms_;
};

struct GateSettings {
  LimitSettings limit;
  BudgetSettings retries;       // Retries of forward steps.
  BudgetSettings undo_retries;  // Retries of undos: their own, so undos always make progress.
  int64_t max_wait_ms = 60'000;
};

// One per service per engine.
class ServiceGate {
 public:
  enum class Kind { kDo, kUndo };
  // granted == false: the wait exceeded max_wait_ms (the call is not sent).
  using Callback = std::function<void(bool granted)>;
  // What a call that got its slot reports when it ends.
  struct End {
    Kind kind = Kind::kDo;
    int64_t latency_ms = 0;
    bool ok = false;        // Success: a token for the budget.
    bool overload = false;  // Timeout or unavailable.
  };

  ServiceGate(GateSettings settings, uint32_t bulkhead, int64_t now_ms);

  // A call asks to be sent. True: it holds a slot now (the callback is not
  // called). False: it waits; the callback runs once, from whichever thread
  // frees its slot or token, or from expire(). `ticket` is set either way.
  bool acquire(Kind kind, bool retry, int64_t now_ms, Callback callback, uint64_t& ticket);
  // The same without a callback, for the common case: true when the call
  // holds a slot now (nobody waits, a slot and, for a retry, a token are
  // free); false, changing nothing, when it would have to wait.
  bool try_acquire(Kind kind, bool retry, int64_t now_ms);
  // A call that held a slot ended (or was dropped: `end` null).
  void release(int64_t now_ms, const End* end);
  // Fails the waiters whose wait exceeded max_wait_ms, and lets out the
  // retries whose budget refilled. Called periodically.
  void tick(int64_t now_ms);
  void set_bulkhead(uint32_t bulkhead);

  uint32_t limit();
  size_t in_flight();
  size_t waiting();
  // {"limit", "in_flight", "waiting", "baseline_ms", "shrinks", "delayed",
  //  "max_wait_ms", "shed", "retry_tokens", "undo_retry_tokens",
  //  "budget_waits"}.
  nlohmann::json snapshot(int64_t now_ms);

 private:
  struct Waiter {
    uint64_t ticket;
    int64_t since_ms;
    Callback callback;
    bool budget_held = false;  // Counted in budget_waits_.
  };
  // Queues in order of precedence: undos before forward calls (an undo ends
  // a saga, a forward call extends one), first attempts before retries only
  // by their age (retries also need a token).
  enum Queue { kUndoFirst, kUndoRetry, kDoFirst, kDoRetry, kQueues };
  static Queue queue_of(Kind kind, bool retry);
  // Grants slots while there is room; returns the callbacks to run unlocked.
  void admit(int64_t now_ms, std::vector<std::pair<uint64_t, Callback>>& out);
  RetryBudget& budget_of(Queue q) { return q == kUndoRetry ? undo_budget_ : do_budget_; }

  std::mutex mu_;
  GateSettings s_;
  AdaptiveLimit limit_;
  RetryBudget do_budget_;
  RetryBudget undo_budget_;
  std::array<std::deque<Waiter>, kQueues> queues_;
  size_t in_flight_ = 0;
  uint64_t next_ticket_ = 1;
  uint64_t delayed_ = 0;       // Calls that waited for a slot or a token.
  uint64_t shed_ = 0;          // Calls that waited max_wait_ms and failed.
  uint64_t budget_waits_ = 0;  // Retries held back for want of a token (once each).
  int64_t max_wait_seen_ = 0;
};

}  // namespace saga::runtime
