// The service gate (runtime/engine/gate.hpp): the retry budget's tokens, the
// adaptive limit's rise and fall, the queues' order and the longest wait, all
// on a clock the test moves. The last tests drive the gate against a
// simulated service of fixed capacity (a queue in front of K workers) to
// show that the limit finds the capacity, follows it down and up again, and
// keeps the service busy without letting its queue grow.
#include "runtime/engine/gate.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <queue>
#include <vector>

namespace saga::runtime {
namespace {

TEST(RetryBudget, StartsFullAndRefillsFromSuccessesAndTheFloor) {
  BudgetSettings s{.ratio = 0.2, .floor_per_second = 10, .max_tokens = 5};
  RetryBudget b(s, 0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.try_take(0)) << i;
  EXPECT_FALSE(b.try_take(0));
  for (int i = 0; i < 5; ++i) b.deposit();  // Five successes: one retry.
  EXPECT_TRUE(b.try_take(0));
  EXPECT_FALSE(b.try_take(0));
  EXPECT_FALSE(b.try_take(99));  // 0.99 tokens from the floor.
  EXPECT_TRUE(b.try_take(100));  // 100 ms at 10 per second: one more.
  EXPECT_FALSE(b.try_take(100));
  EXPECT_DOUBLE_EQ(b.tokens(1'000'000), 5);  // Never more than max_tokens.
}

TEST(RetryBudget, DisabledGivesEveryRetryAToken) {
  RetryBudget b(BudgetSettings{.enabled = false, .max_tokens = 1}, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.try_take(0)) << i;
}

// Calls of a service as the limit sees them end, on a clock of its own.
struct Feeder {
  AdaptiveLimit& limit;
  int64_t now = 1000;
  // `n` calls, each sent when the one before ended and answering after
  // `latency` ms; each found every slot taken.
  void calls(int n, int64_t latency, bool overload = false) {
    for (int i = 0; i < n; ++i) {
      now += 1 + latency;  // Sent 1 ms after the last one ended.
      limit.saturated();
      limit.sample(now, latency, overload);
    }
  }
  // `n` calls ending now that were sent `ago` ms before.
  void sent_before(int n, int64_t ago, bool overload) {
    for (int i = 0; i < n; ++i) limit.sample(now, ago, overload);
  }
};

TEST(AdaptiveLimit, DoublesUntilTheFirstShrinkThenGrowsBySquareRoot) {
  AdaptiveLimit l(LimitSettings{.initial = 4, .max = 1000});
  Feeder f{l};
  EXPECT_EQ(l.limit(), 4u);
  f.calls(32, 10);  // One window at the baseline, saturated.
  EXPECT_EQ(l.limit(), 8u);
  f.calls(32, 10);
  EXPECT_EQ(l.limit(), 16u);
  f.calls(32, 30);  // Three times the baseline: overload, 16 x 0.9 x 10 / 30.
  EXPECT_EQ(l.limit(), 4u);
  EXPECT_EQ(l.shrinks(), 1u);
  f.calls(32, 10);  // Near the baseline again: + ceil(sqrt(4)).
  EXPECT_EQ(l.limit(), 6u);
  f.calls(32, 10);
  EXPECT_EQ(l.limit(), 9u);
  f.calls(32, 25);  // 2.5 times the baseline: 9 x 0.9 x 10 / 25.
  EXPECT_EQ(l.limit(), 3u);
}

TEST(AdaptiveLimit, GrowsOnlyWhenTheLimitWasReached) {
  AdaptiveLimit l(LimitSettings{.initial = 4});
  for (int i = 0; i < 320; ++i) l.sample(1000 + 10 * i, 10, false);  // Never saturated.
  EXPECT_EQ(l.limit(), 4u);
}

TEST(AdaptiveLimit, ATimeoutShrinksOnceForTheCallsThatWereOut) {
  AdaptiveLimit l(LimitSettings{.initial = 40});
  Feeder f{l};
  f.calls(1, 0, true);
  EXPECT_EQ(l.limit(), 20u);
  // The other calls that were out when it shrank time out too: they do not
  // shrink it again, nor do their latencies count...
  f.sent_before(39, 5, true);
  f.sent_before(64, 500, false);
  EXPECT_EQ(l.limit(), 20u);
  EXPECT_EQ(l.shrinks(), 1u);
  // ...but a call sent after the shrink does.
  f.calls(1, 1, true);
  EXPECT_EQ(l.limit(), 10u);
}

TEST(AdaptiveLimit, StaysWithinMinAndTheBulkhead) {
  AdaptiveLimit l(LimitSettings{.initial = 16, .min = 2, .max = 1000});
  Feeder f{l};
  l.set_max(20);
  f.calls(32, 10);
  EXPECT_EQ(l.limit(), 20u);  // Doubling stops at the bulkhead.
  for (int i = 0; i < 40; ++i) f.calls(1, 0, true);
  EXPECT_EQ(l.limit(), 2u);
  AdaptiveLimit fixed(LimitSettings{.adaptive = false, .max = 7});
  Feeder g{fixed};
  g.calls(64, 1000, true);
  EXPECT_EQ(fixed.limit(), 7u);
}

GateSettings fixed_gate(uint32_t slots) {
  GateSettings g;
  g.limit.adaptive = false;
  g.limit.max = slots;
  g.retries = g.undo_retries = BudgetSettings{.ratio = 0.5, .floor_per_second = 0, .max_tokens = 1};
  g.max_wait_ms = 1000;
  return g;
}

TEST(ServiceGate, TheFastPathNeverOvertakesAWaiter) {
  ServiceGate gate(fixed_gate(2), 0, 0);
  uint64_t t = 0;
  std::vector<std::string> order;
  EXPECT_TRUE(gate.try_acquire(ServiceGate::Kind::kDo, false, 0));
  EXPECT_TRUE(gate.try_acquire(ServiceGate::Kind::kDo, true, 0));    // The one token.
  EXPECT_FALSE(gate.try_acquire(ServiceGate::Kind::kDo, false, 0));  // Full.
  EXPECT_FALSE(gate.acquire(
      ServiceGate::Kind::kDo, false, 0, [&](bool) { order.push_back("waiter"); }, t));
  gate.release(1, nullptr);  // The waiter gets the slot...
  gate.release(1, nullptr);
  EXPECT_EQ(order, std::vector<std::string>{"waiter"});
  EXPECT_TRUE(gate.try_acquire(ServiceGate::Kind::kDo, false, 1));  // ...then the fast path.
  EXPECT_FALSE(gate.try_acquire(ServiceGate::Kind::kDo, true, 1));  // No token left.
  EXPECT_EQ(gate.in_flight(), 2u);
}

TEST(ServiceGate, LetsWaitersOutUndosFirstThenOldestFirst) {
  ServiceGate gate(fixed_gate(1), 0, 0);
  std::vector<std::string> order;
  uint64_t t = 0;
  auto note = [&](std::string what) {
    return [&order, what](bool granted) { order.push_back(what + (granted ? "" : " shed")); };
  };
  EXPECT_TRUE(gate.acquire(ServiceGate::Kind::kDo, false, 0, note("held"), t));
  EXPECT_FALSE(gate.acquire(ServiceGate::Kind::kDo, false, 0, note("do-1"), t));
  EXPECT_FALSE(gate.acquire(ServiceGate::Kind::kDo, false, 0, note("do-2"), t));
  EXPECT_FALSE(gate.acquire(ServiceGate::Kind::kUndo, false, 0, note("undo"), t));
  EXPECT_EQ(gate.waiting(), 3u);
  for (int i = 0; i < 3; ++i) gate.release(10, nullptr);
  EXPECT_EQ(order, (std::vector<std::string>{"undo", "do-1", "do-2"}));
}

TEST(ServiceGate, ARetryWithoutATokenWaitsWithoutHoldingUpFirstAttempts) {
  ServiceGate gate(fixed_gate(1), 0, 0);
  std::vector<std::string> order;
  uint64_t t = 0;
  auto note = [&](std::string what) { return [&order, what](bool) { order.push_back(what); }; };
  ASSERT_TRUE(gate.acquire(ServiceGate::Kind::kDo, true, 0, note("retry-1"), t));  // The token.
  EXPECT_FALSE(gate.acquire(ServiceGate::Kind::kDo, true, 0, note("retry-2"), t));
  EXPECT_FALSE(gate.acquire(ServiceGate::Kind::kDo, false, 0, note("first"), t));
  gate.release(10, nullptr);  // The slot is free; retry-2 has no token.
  EXPECT_EQ(order, std::vector<std::string>{"first"});
  ServiceGate::End ok{.kind = ServiceGate::Kind::kDo, .latency_ms = 5, .ok = true};
  gate.release(20, &ok);  // Half a token.
  EXPECT_EQ(order.size(), 1u);
  ASSERT_TRUE(gate.acquire(ServiceGate::Kind::kDo, false, 20, note("first-2"), t));
  gate.release(30, &ok);  // A whole token: retry-2 goes.
  EXPECT_EQ(order, (std::vector<std::string>{"first", "retry-2"}));
  EXPECT_EQ(gate.snapshot(30)["budget_waits"], 1);
}

TEST(ServiceGate, UndosHaveABudgetOfTheirOwn) {
  ServiceGate gate(fixed_gate(4), 0, 0);
  uint64_t t = 0;
  auto none = [](bool) {};
  ASSERT_TRUE(gate.acquire(ServiceGate::Kind::kDo, true, 0, none, t));  // Spends the do budget.
  EXPECT_FALSE(gate.acquire(ServiceGate::Kind::kDo, true, 0, none, t));
  EXPECT_TRUE(gate.acquire(ServiceGate::Kind::kUndo, true, 0, none, t));  // Its own token.
}

TEST(ServiceGate, AWaiterIsShedAfterTheLongestWait) {
  ServiceGate gate(fixed_gate(1), 0, 0);
  uint64_t t = 0;
  std::vector<bool> results;
  ASSERT_TRUE(gate.acquire(
      ServiceGate::Kind::kDo, false, 0, [](bool) {}, t));
  EXPECT_FALSE(gate.acquire(
      ServiceGate::Kind::kDo, false, 0, [&](bool granted) { results.push_back(granted); }, t));
  gate.tick(999);
  EXPECT_TRUE(results.empty());
  gate.tick(1000);
  EXPECT_EQ(results, std::vector<bool>{false});
  EXPECT_EQ(gate.waiting(), 0u);
  EXPECT_EQ(gate.snapshot(1000)["shed"], 1);
}

// A service of fixed capacity: `workers` calls are served at once, each for
// `service_ms`; the rest wait in its own FIFO queue (as an overloaded server's
// accept queue does). `clients` callers each make one call after another
// through the gate, on a virtual clock.
struct Simulation {
  ServiceGate gate;
  uint32_t workers;
  int64_t service_ms;
  int64_t now = 0;
  std::deque<int64_t> server_queue;  // Sent times of calls waiting at the service.
  uint32_t busy = 0;
  std::priority_queue<std::pair<int64_t, int64_t>, std::vector<std::pair<int64_t, int64_t>>,
                      std::greater<>>
      completions;  // (done at, sent at)
  uint64_t done = 0;
  int64_t busy_ms = 0;  // Worker-milliseconds spent serving.
  std::vector<int64_t> latencies;

  Simulation(uint32_t w, int64_t s) : gate(settings(), 0, 0), workers(w), service_ms(s) {}
  static GateSettings settings() {
    GateSettings g;
    g.limit.initial = 4;
    return g;
  }

  void send() {
    server_queue.push_back(now);
    serve();
  }
  void serve() {
    while (busy < workers && !server_queue.empty()) {
      ++busy;
      completions.emplace(now + service_ms, server_queue.front());
      server_queue.pop_front();
      busy_ms += service_ms;
    }
  }
  void call() {
    uint64_t ticket = 0;
    if (gate.acquire(
            ServiceGate::Kind::kDo, false, now, [this](bool) { send(); }, ticket))
      send();
  }
  // Runs until `until` ms; returns the calls completed meanwhile.
  uint64_t run(int64_t until) {
    const uint64_t before = done;
    while (!completions.empty() && completions.top().first <= until) {
      auto [at, sent] = completions.top();
      completions.pop();
      now = at;
      --busy;
      ++done;
      latencies.push_back(at - sent);
      ServiceGate::End e{.kind = ServiceGate::Kind::kDo, .latency_ms = at - sent, .ok = true};
      serve();
      gate.release(now, &e);
      call();  // The same client calls again.
    }
    now = until;
    return done - before;
  }
  void start(uint32_t clients) {
    for (uint32_t i = 0; i < clients; ++i) call();
  }
};

TEST(ServiceGateSimulation, FindsTheCapacityAndKeepsTheServiceBusyUnderFortyTimesTheLoad) {
  // 10 workers x 50 ms: 200 calls/s, at most 10 at once without queueing;
  // 400 callers is 40 times that.
  Simulation sim(10, 50);
  sim.start(400);
  sim.run(5'000);  // Settling.
  sim.latencies.clear();
  const uint64_t served = sim.run(65'000);
  // At least 90% of the capacity is used...
  EXPECT_GE(served, 0.9 * 200 * 60) << "limit " << sim.gate.limit();
  // ...while the service's own queue stays short: a call takes a few
  // service times there, instead of 400 / 200 = 2 s.
  std::sort(sim.latencies.begin(), sim.latencies.end());
  EXPECT_LE(sim.latencies[sim.latencies.size() / 2], 3 * 50);
  EXPECT_LE(sim.latencies[sim.latencies.size() * 99 / 100], 7 * 50);
  EXPECT_GE(sim.gate.limit(), 10u);
  EXPECT_LE(sim.gate.limit(), 40u);
  EXPECT_GT(sim.gate.waiting(), 300u);  // The rest wait at the gate, not at the service.
}

// The mean of the limit, sampled every 100 ms, and the calls served, over
// the next `ms` of the simulation.
struct Phase {
  double mean_limit = 0;
  uint64_t served = 0;
};
Phase run_phase(Simulation& sim, int64_t ms) {
  Phase p;
  const int64_t end = sim.now + ms;
  int samples = 0;
  for (int64_t t = sim.now + 100; t <= end; t += 100, ++samples) {
    p.served += sim.run(t);
    p.mean_limit += sim.gate.limit();
  }
  p.mean_limit /= samples;
  return p;
}

TEST(ServiceGateSimulation, FollowsTheCapacityDownAndUpAgain) {
  // 20 workers x 20 ms (1,000 calls/s), then 5 (250/s), then 20 again;
  // 300 callers throughout.
  Simulation sim(20, 20);
  sim.start(300);
  sim.run(2'000);
  const Phase high = run_phase(sim, 10'000);
  sim.workers = 5;
  sim.run(sim.now + 2'000);
  const Phase low = run_phase(sim, 10'000);
  sim.workers = 20;
  sim.serve();
  sim.run(sim.now + 2'000);
  const Phase again = run_phase(sim, 10'000);
  EXPECT_GE(high.served, 0.9 * 1000 * 10);
  EXPECT_GE(low.served, 0.9 * 250 * 10);
  EXPECT_GE(again.served, 0.9 * 1000 * 10);
  // The limit follows the number of workers, within a few times of it.
  EXPECT_GE(high.mean_limit, 20);
  EXPECT_LE(high.mean_limit, 60);
  EXPECT_LT(low.mean_limit, high.mean_limit / 2);
  EXPECT_GE(low.mean_limit, 4);
  EXPECT_GE(again.mean_limit, 20);
  EXPECT_LE(again.mean_limit, 60);
}

}  // namespace
}  // namespace saga::runtime
