// Resilience per service for the HTTP transport: a circuit breaker and a
// bulkhead. Both are small, thread-safe state machines with no I/O and no
// Asio: time comes from an injected clock (milliseconds, any epoch), so unit
// tests (tests/http/resilience_test.cpp) drive every transition
// deterministically. The HTTP client (runtime/http/client.cpp) keeps one of
// each per service name, shared by all instances in the process.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

namespace saga::http {

// Milliseconds on any monotonic scale.
using NowFn = std::function<int64_t()>;

// The settings of a breaker, from `breaker { failures: N, reset: D, probes: K }`.
struct BreakerSettings {
  uint32_t failures = 0;  // Consecutive failures that open the circuit; 0 = no breaker.
  int64_t reset_ms = 0;   // How long the circuit stays open before probing.
  uint32_t probes = 1;    // Probe calls let through half-open; as many successes close it.
  bool operator==(const BreakerSettings&) const = default;
};

// A circuit breaker. States:
//
//   closed     Every call goes through. A failure (class `timeout` or
//              `unavailable`) adds one to the count of consecutive failures;
//              any answer from the service (success, `rejected`, ...) resets
//              it. At `failures` consecutive failures the circuit opens.
//   open       Calls are refused at once (no network call) for `reset_ms`
//              after opening; a refusal says how long is left.
//   half-open  Entered at the first call after `reset_ms`. Up to `probes`
//              calls are let through as probes (at most `probes` in flight,
//              and no more than `probes` in all); other calls are refused.
//              `probes` successful probes close the circuit; one failing
//              probe opens it again for another `reset_ms`.
//
// Results of calls admitted while closed that arrive after the circuit
// opened are ignored (they say nothing about the service now). A call that
// ended without reaching the service (a bulkhead queue timeout, an allowlist
// refusal) is reported with release(): it only returns its probe slot.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  // What acquire() decided. A refused call should fail with class
  // `unavailable`, waiting retry_after_ms (0 when half-open) before retrying.
  struct Permit {
    bool allowed = false;
    bool probe = false;  // Report its result with the same flag.
    int64_t retry_after_ms = 0;
  };

  // A state change, for logs: the service name is the caller's business.
  using Observer = std::function<void(State from, State to, const std::string& why)>;

  CircuitBreaker(BreakerSettings settings, NowFn now, Observer observer = {});

  // Replaces the settings (a newer program may declare other ones). The
  // state and counts are kept.
  void configure(const BreakerSettings& settings);

  Permit acquire();
  void on_success(bool probe);
  void on_failure(bool probe);
  void release(bool probe);

  State state();
  // {"state": "closed|open|half-open", "failures": consecutive failures,
  //  "opened_at_ms": time it last opened or 0, "retry_after_ms": remaining
  //  open time, "probes_in_flight", "probe_successes", "rejected": calls
  //  refused since the process started}.
  nlohmann::json snapshot();

  static const char* name(State state);

 private:
  // Moves open -> half-open when reset_ms has passed. Called with mu_ held.
  void tick(int64_t now);
  void move(State to, const std::string& why);
  void notify();

  std::mutex mu_;
  BreakerSettings settings_;
  NowFn now_;
  Observer observer_;
  State state_ = State::kClosed;
  uint32_t failures_ = 0;
  int64_t opened_at_ = 0;
  uint32_t probes_in_flight_ = 0;
  uint32_t probes_started_ = 0;
  uint32_t probe_successes_ = 0;
  uint64_t rejected_ = 0;
  // Transitions made under mu_, reported to the observer after unlocking.
  std::vector<std::tuple<State, State, std::string>> pending_;
};

// A bulkhead: at most `limit` calls of a service at once. Callers beyond the
// limit wait in FIFO order; a waiting caller leaves the queue when its
// deadline passes (expire(), or cancel() by the caller's own timer) and then
// fails with class `timeout` like any other attempt that ran out of time.
//
// Callbacks run outside the bulkhead's lock, on the thread that made the
// slot free (release, cancel, expire) or, for an immediate grant, inside
// acquire() itself; they must not block.
class Bulkhead {
 public:
  // granted == true: the caller holds a slot and must release() it once.
  // granted == false: the caller's deadline passed while it waited.
  using Callback = std::function<void(bool granted)>;

  Bulkhead(uint32_t limit, NowFn now);

  // Changes the limit; a larger one admits waiting callers at once.
  void set_limit(uint32_t limit);

  // Asks for a slot. Returns a ticket for cancel(); the callback runs once.
  // deadline_ms <= 0 means the caller waits as long as it takes.
  uint64_t acquire(int64_t deadline_ms, Callback callback);

  // Returns a slot: the longest-waiting caller gets it.
  void release();

  // Removes a waiting caller without calling its callback. Returns false when
  // it is no longer waiting (it was granted a slot or expired already).
  bool cancel(uint64_t ticket);

  // Fails every waiting caller whose deadline has passed; returns how many.
  size_t expire();

  size_t in_use();
  size_t waiting();
  // {"limit", "in_use", "waiting", "max_in_use", "max_wait_ms"}.
  nlohmann::json snapshot();

 private:
  struct Waiter {
    uint64_t ticket;
    int64_t deadline_ms;
    int64_t since_ms;
    Callback callback;
  };
  // Grants slots to waiters while there is room. Called with mu_ held;
  // returns the callbacks to run after unlocking.
  std::vector<Callback> admit();

  std::mutex mu_;
  uint32_t limit_;
  NowFn now_;
  size_t in_use_ = 0;
  size_t max_in_use_ = 0;
  int64_t max_wait_ms_ = 0;
  uint64_t next_ticket_ = 1;
  std::deque<Waiter> queue_;
};

}  // namespace saga::http
