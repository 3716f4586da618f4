// Unit tests of the circuit breaker and the bulkhead (runtime/http/
// resilience.hpp) with a clock that moves only when a test says so: every
// state transition, the refusal messages' retry-after, probe accounting,
// FIFO order, cancellation and expiry of waiting callers.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/http/resilience.hpp"

namespace {

using saga::http::BreakerSettings;
using saga::http::Bulkhead;
using saga::http::CircuitBreaker;
using State = CircuitBreaker::State;

struct FakeClock {
  int64_t now = 1000;
  saga::http::NowFn fn() {
    return [this] { return now; };
  }
};

TEST(Breaker, OpensAfterConsecutiveFailuresOnly) {
  FakeClock clock;
  CircuitBreaker b({3, 500, 1}, clock.fn());
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(b.acquire().allowed);
    b.on_failure(false);
    ASSERT_TRUE(b.acquire().allowed);
    b.on_failure(false);
    ASSERT_TRUE(b.acquire().allowed);
    b.on_success(false);  // Resets the count: never three in a row.
  }
  EXPECT_EQ(b.state(), State::kClosed);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(b.acquire().allowed);
    b.on_failure(false);
  }
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.snapshot()["failures"], 3);
  EXPECT_EQ(b.snapshot()["opened_at_ms"], 1000);
}

TEST(Breaker, OpenRefusesWithRemainingTime) {
  FakeClock clock;
  CircuitBreaker b({1, 500, 1}, clock.fn());
  b.acquire();
  b.on_failure(false);
  clock.now += 200;
  auto p = b.acquire();
  EXPECT_FALSE(p.allowed);
  EXPECT_EQ(p.retry_after_ms, 300);
  clock.now += 299;
  p = b.acquire();
  EXPECT_FALSE(p.allowed);
  EXPECT_EQ(p.retry_after_ms, 1);
  EXPECT_EQ(b.snapshot()["rejected"], 2);
}

TEST(Breaker, HalfOpenLetsProbesThroughAndClosesAfterEnoughSuccesses) {
  FakeClock clock;
  std::vector<std::string> log;
  CircuitBreaker b({2, 100, 2}, clock.fn(), [&](State from, State to, const std::string&) {
    log.push_back(std::string(CircuitBreaker::name(from)) + "->" + CircuitBreaker::name(to));
  });
  b.on_failure(false);
  b.on_failure(false);
  clock.now += 100;
  auto p1 = b.acquire();
  auto p2 = b.acquire();
  auto p3 = b.acquire();
  EXPECT_TRUE(p1.allowed && p1.probe);
  EXPECT_TRUE(p2.allowed && p2.probe);
  EXPECT_FALSE(p3.allowed);  // Only `probes` calls go through.
  EXPECT_EQ(p3.retry_after_ms, 0);
  EXPECT_EQ(b.state(), State::kHalfOpen);
  b.on_success(true);
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.acquire().allowed);  // Two probes were let through already.
  b.on_success(true);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.acquire().allowed);
  EXPECT_EQ(log,
            (std::vector<std::string>{"closed->open", "open->half-open", "half-open->closed"}));
}

TEST(Breaker, FailingProbeReopensForAnotherReset) {
  FakeClock clock;
  CircuitBreaker b({1, 100, 1}, clock.fn());
  b.on_failure(false);
  clock.now += 150;
  auto probe = b.acquire();
  ASSERT_TRUE(probe.probe);
  clock.now += 30;
  b.on_failure(true);
  EXPECT_EQ(b.state(), State::kOpen);
  auto p = b.acquire();
  EXPECT_FALSE(p.allowed);
  EXPECT_EQ(p.retry_after_ms, 100);  // Counted from the probe's failure.
  clock.now += 100;
  EXPECT_TRUE(b.acquire().probe);
}

TEST(Breaker, ReleasedProbeFreesItsSlot) {
  FakeClock clock;
  CircuitBreaker b({1, 100, 1}, clock.fn());
  b.on_failure(false);
  clock.now += 100;
  auto probe = b.acquire();
  ASSERT_TRUE(probe.probe);
  EXPECT_FALSE(b.acquire().allowed);
  b.release(true);  // Never reached the service (e.g. a bulkhead queue timeout).
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_TRUE(b.acquire().probe);
}

TEST(Breaker, LateResultsOfCallsAdmittedWhileClosedAreIgnored) {
  FakeClock clock;
  CircuitBreaker b({2, 100, 1}, clock.fn());
  b.acquire();
  b.acquire();
  b.acquire();
  b.on_failure(false);
  b.on_failure(false);
  ASSERT_EQ(b.state(), State::kOpen);
  b.on_success(false);  // Admitted before the circuit opened.
  EXPECT_EQ(b.state(), State::kOpen);
  clock.now += 100;
  auto probe = b.acquire();
  ASSERT_TRUE(probe.probe);
  b.on_failure(false);  // Not a probe: says nothing about the half-open period.
  EXPECT_EQ(b.state(), State::kHalfOpen);
  b.on_success(true);
  EXPECT_EQ(b.state(), State::kClosed);
}

TEST(Breaker, ConfigureKeepsState) {
  FakeClock clock;
  CircuitBreaker b({2, 100, 1}, clock.fn());
  b.on_failure(false);
  b.configure({1, 1000, 3});
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_failure(false);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.acquire().retry_after_ms, 1000);
  EXPECT_EQ(b.snapshot()["settings"]["probes"], 3);
}

TEST(Bulkhead, GrantsUpToTheLimitThenQueuesInOrder) {
  FakeClock clock;
  Bulkhead bh(2, clock.fn());
  std::vector<int> granted;
  for (int i = 0; i < 5; ++i) {
    bh.acquire(0, [&, i](bool ok) {
      ASSERT_TRUE(ok);
      granted.push_back(i);
    });
  }
  EXPECT_EQ(granted, (std::vector<int>{0, 1}));
  EXPECT_EQ(bh.in_use(), 2u);
  EXPECT_EQ(bh.waiting(), 3u);
  clock.now += 40;
  bh.release();
  EXPECT_EQ(granted, (std::vector<int>{0, 1, 2}));
  bh.release();
  bh.release();
  EXPECT_EQ(granted, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(bh.in_use(), 2u);
  EXPECT_EQ(bh.snapshot()["max_in_use"], 2);
  EXPECT_EQ(bh.snapshot()["max_wait_ms"], 40);
  bh.release();
  bh.release();
  EXPECT_EQ(bh.in_use(), 0u);
}

TEST(Bulkhead, NewcomersDoNotOvertakeWaiters) {
  FakeClock clock;
  Bulkhead bh(1, clock.fn());
  std::vector<int> granted;
  bh.acquire(0, [&](bool) { granted.push_back(0); });
  bh.acquire(0, [&](bool) { granted.push_back(1); });
  bh.release();                                        // 1 gets the slot ...
  bh.acquire(0, [&](bool) { granted.push_back(2); });  // ... and 2 waits behind it.
  EXPECT_EQ(granted, (std::vector<int>{0, 1}));
  bh.release();
  EXPECT_EQ(granted, (std::vector<int>{0, 1, 2}));
}

TEST(Bulkhead, WaitersExpireAtTheirDeadline) {
  FakeClock clock;
  Bulkhead bh(1, clock.fn());
  std::vector<std::pair<int, bool>> calls;
  bh.acquire(0, [&](bool ok) { calls.push_back({0, ok}); });
  bh.acquire(clock.now + 100, [&](bool ok) { calls.push_back({1, ok}); });
  bh.acquire(clock.now + 300, [&](bool ok) { calls.push_back({2, ok}); });
  clock.now += 99;
  EXPECT_EQ(bh.expire(), 0u);
  clock.now += 1;
  EXPECT_EQ(bh.expire(), 1u);
  EXPECT_EQ(calls, (std::vector<std::pair<int, bool>>{{0, true}, {1, false}}));
  bh.release();
  EXPECT_EQ(calls.back(), (std::pair<int, bool>{2, true}));
  clock.now += 1000;
  EXPECT_EQ(bh.expire(), 0u);  // Granted callers never expire.
}

TEST(Bulkhead, CancelRemovesOnlyWaitingCallers) {
  FakeClock clock;
  Bulkhead bh(1, clock.fn());
  int calls = 0;
  uint64_t first = bh.acquire(0, [&](bool) { ++calls; });
  uint64_t second = bh.acquire(0, [&](bool) { ++calls; });
  EXPECT_FALSE(bh.cancel(first));  // Already holds the slot.
  EXPECT_TRUE(bh.cancel(second));
  EXPECT_FALSE(bh.cancel(second));
  bh.release();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(bh.in_use(), 0u);
}

TEST(Bulkhead, RaisingTheLimitAdmitsWaiters) {
  FakeClock clock;
  Bulkhead bh(1, clock.fn());
  int granted = 0;
  for (int i = 0; i < 4; ++i) bh.acquire(0, [&](bool) { ++granted; });
  EXPECT_EQ(granted, 1);
  bh.set_limit(3);
  EXPECT_EQ(granted, 3);
  EXPECT_EQ(bh.waiting(), 1u);
}

TEST(Bulkhead, CallbacksMayReenter) {
  FakeClock clock;
  Bulkhead bh(1, clock.fn());
  int done = 0;
  // Each granted caller releases at once from inside its callback.
  for (int i = 0; i < 3; ++i) {
    bh.acquire(0, [&](bool) {
      ++done;
      bh.release();
    });
  }
  EXPECT_EQ(done, 3);
  EXPECT_EQ(bh.in_use(), 0u);
}

}  // namespace
