// The saga machine, table by table: (state, what happened) -> decision, with
// no threads, no clock, no store and no actions. Every rule of the delivery
// contract (README, "Delivery contract") has rows here; the engine tests and
// the crash test then check that the engine applies the decisions.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "compiler/compile.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "saga/commands.hpp"
#include "saga/signals.hpp"

namespace {

using saga::InstanceStatus;
using saga::Value;
using saga::runtime::Decision;
using saga::runtime::Outcome;
using saga::runtime::Wait;

class FixedContext : public saga::stdlib::FunctionContext {
 public:
  int64_t now_ms() override { return 1'700'000'000'000; }
  void random_bytes(std::span<uint8_t> out) override {
    for (auto& b : out) b = 7;
  }
};

saga::runtime::LinkedProgram link(const std::string& text) {
  saga::SourceFile source("m.saga", text);
  saga::Diagnostics diags(source);
  auto program = saga::compiler::compile(source, diags);
  EXPECT_TRUE(program) << diags.render_text();
  auto linked = saga::runtime::verify_and_link(std::move(*program));
  EXPECT_TRUE(linked.ok()) << (linked.ok() ? "" : linked.status().message());
  return std::move(linked).value();
}

// A decision's list of fiber ids, comparable with a vector.
std::vector<uint32_t> ids(const Decision::Fibers& f) {
  return std::vector<uint32_t>(f.begin(), f.end());
}

Outcome ok(Value result = Value()) {
  Outcome o;
  o.ok = true;
  o.result = std::move(result);
  return o;
}

Outcome failure(std::string cls, bool not_sent = false, int64_t retry_after = 0) {
  Outcome o;
  o.error_class = std::move(cls);
  o.message = "it said no";
  o.not_sent = not_sent;
  o.retry_after_ms = retry_after;
  return o;
}

// One instance of a program, driven by hand: the time only moves when a
// test says so, and jitter is off (Env::random null).
class Machine {
 public:
  explicit Machine(const std::string& source, Value input = Value::object()) : lp_(link(source)) {
    env_.now_ms = 1'000'000;
    env_.functions = &ctx_;
    env_.compensation.attempts = 3;
    env_.compensation.initial_ms = 100;
    state_ = saga::runtime::start_state(lp_, 0, input);
  }

  Decision begin() { return keep(saga::runtime::begin(lp_, state_, env_)); }
  Decision end(uint32_t fiber, const Outcome& o) {
    return keep(saga::runtime::attempt_ended(lp_, state_, fiber, o, env_));
  }
  Decision interrupt(const std::string& cls, bool cancel) {
    return keep(saga::runtime::interrupt(lp_, state_, cls, "stop", cancel, env_));
  }
  Decision resumed() { return keep(saga::runtime::resumed(lp_, state_, env_)); }
  Decision reloaded() { return keep(saga::runtime::reloaded(lp_, state_, env_)); }
  // A message from the inbox: `kind` with payload `payload`.
  Decision message(const std::string& kind, const std::string& payload = {}) {
    saga::InboxMessage m{"m-" + std::to_string(++messages_), "i-1", kind, payload, env_.now_ms, 0};
    return keep(saga::runtime::message_arrived(lp_, state_, m, env_));
  }
  void advance(int64_t ms) { env_.now_ms += ms; }

  // The event kinds of a decision, "kind:step" where there is a step.
  static std::vector<std::string> kinds(const Decision& d) {
    std::vector<std::string> out;
    for (const auto& e : d.events) {
      out.push_back(e.event.kind + (e.event.step.empty() ? "" : ":" + e.event.step));
    }
    return out;
  }

  // What the root waits for: "action a", "undo a", "join", "none".
  std::string waiting(uint32_t fiber = 0) const {
    const saga::runtime::Fiber* f = state_.fiber(fiber);
    if (!f) return "gone";
    switch (f->wait) {
      case Wait::kNone:
        return "none";
      case Wait::kJoin:
        return "join";
      case Wait::kAction:
        return "action " + saga::runtime::step_name(lp_, *f);
      case Wait::kUndo:
        return "undo " + saga::runtime::step_name(lp_, *f);
    }
    return "?";
  }

  saga::runtime::InstanceState& state() { return state_; }
  const saga::runtime::LinkedProgram& program() const { return lp_; }
  int64_t now() const { return env_.now_ms; }

  // The state survives its checkpoints: every decision's state encodes and
  // decodes to itself.
  void check_round_trip() {
    const saga::runtime::EncodedState saved = saga::runtime::encode_state(state_);
    auto back = saga::runtime::decode_checkpoint(lp_, saved.instance, saved.fibers);
    ASSERT_TRUE(back.ok()) << back.status().message();
    back.value().paused = state_.paused;  // From the instance row, not the checkpoint.
    EXPECT_TRUE(back.value() == state_);
  }

 private:
  Decision keep(Decision d) {
    check_round_trip();
    return d;
  }
  FixedContext ctx_;
  saga::runtime::LinkedProgram lp_;
  saga::runtime::Env env_;
  saga::runtime::InstanceState state_;
  int messages_ = 0;
};

const char* kTwoSteps = R"(
service s { }
retry r { attempts: 3, backoff: fixed(1s), on: [timeout, unavailable] }
saga t() {
  step a { do s.a() -> ra  undo s.undo_a(ref: ra) }
  step b { do s.b() -> rb  undo s.undo_b(ref: rb)  retry r }
}
)";

TEST(Machine, AStepThatSucceedsIsRecordedWithItsUndoArgumentsAndTheNextStarts) {
  Machine m(kTwoSteps);
  Decision d = m.begin();
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"started", "step_started:a"}));
  EXPECT_EQ(d.status, InstanceStatus::kRunning);
  EXPECT_EQ(ids(d.ready), std::vector<uint32_t>{0});
  EXPECT_EQ(m.waiting(), "action a");
  d = m.end(0, ok(Value("A-1")));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_completed:a", "step_started:b"}));
  EXPECT_EQ(d.events[0].event.data_json, R"("A-1")");
  EXPECT_TRUE(d.events[1].live_only);
  ASSERT_EQ(m.state().root().completed.size(), 1u);
  const auto& entry = m.state().root().completed[0];
  EXPECT_FALSE(entry.in_doubt);
  // A root step's undo arguments come from the root's slots when it runs.
  EXPECT_FALSE(entry.detail->args_ready);
  d = m.end(0, ok(Value("B-1")));
  EXPECT_EQ(d.status, InstanceStatus::kCompleted);
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_completed:b", "completed"}));
  EXPECT_TRUE(d.ready.empty());
}

// Which attempts leave a step in doubt, and so compensated when the saga
// fails: any that may have reached the service, and once in doubt, always.
TEST(Machine, TheInDoubtRule) {
  struct Row {
    const char* what;
    std::vector<Outcome> attempts;  // Of step b (3 attempts, retried on timeout/unavailable).
    bool compensated;               // Whether b's undo runs.
  };
  const Row rows[] = {
      {"rejected", {failure("rejected")}, false},
      {"unsupported", {failure("unsupported")}, false},
      {"timeout, thrice", {failure("timeout"), failure("timeout"), failure("timeout")}, true},
      {"an error", {failure("error")}, true},
      {"a custom class", {failure("out_of_stock")}, true},
      {"never sent, thrice",
       {failure("unavailable", true), failure("unavailable", true), failure("unavailable", true)},
       false},
      {"sent, then rejected", {failure("unavailable"), failure("rejected")}, true},
      {"timed out, then rejected", {failure("timeout"), failure("rejected")}, true},
      {"never sent, then rejected", {failure("unavailable", true), failure("rejected")}, false},
      {"never sent, then timed out",
       {failure("unavailable", true), failure("timeout"), failure("unavailable", true)},
       true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    Machine m(kTwoSteps);
    m.begin();
    m.end(0, ok(Value("A-1")));
    Decision d;
    for (const Outcome& o : row.attempts) {
      m.advance(1000);
      d = m.end(0, o);
    }
    // b failed for good: the saga compensates, newest first.
    EXPECT_EQ(d.status, InstanceStatus::kCompensating);
    EXPECT_EQ(m.waiting(), row.compensated ? "undo b" : "undo a");
    const std::vector<std::string> kinds = Machine::kinds(d);
    EXPECT_EQ(kinds[0], "step_failed:b");
    EXPECT_EQ(kinds[1], "compensating");
  }
}

TEST(Machine, RetriesWaitTheirBackoffAndRetryAfterRaisesIt) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok());
  Decision d = m.end(0, failure("unavailable"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"attempt_failed:b"}));
  EXPECT_EQ(ids(d.ready), std::vector<uint32_t>{0});
  EXPECT_EQ(m.state().root().attempt, 2u);
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 1000);
  EXPECT_TRUE(m.state().root().earlier_attempt_in_doubt);
  d = m.end(0, failure("unavailable", false, 7000));
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 7000);
  EXPECT_NE(d.events[0].event.message.find("retrying in 7s"), std::string::npos);
  // A class outside the policy is not retried.
  Machine other(kTwoSteps);
  other.begin();
  other.end(0, ok());
  d = other.end(0, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d)[0], "step_failed:b");
}

// A retry whose next attempt would come after the deadline is not made:
// the step fails now.
TEST(Machine, NoRetryPastTheDeadline) {
  Machine m(R"(
service s { }
saga t() {
  deadline 1500ms
  step b { do s.b() retry { attempts: 5, backoff: fixed(1s), on: [timeout] } }
}
)");
  m.begin();
  Decision d = m.end(0, failure("timeout"));
  EXPECT_EQ(Machine::kinds(d)[0], "attempt_failed:b");  // At 1 s: before the deadline.
  m.advance(1000);
  d = m.end(0, failure("timeout"));  // The next would be at 2 s, past 1.5 s.
  // In doubt, without an undo: skipped, and the saga is compensated.
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_failed:b", "compensating",
                                                         "undo_skipped:b", "compensated"}));
  EXPECT_EQ(d.status, InstanceStatus::kCompensated);
}

TEST(Machine, CompensationRunsNewestFirstAndEndsCompensated) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, ok(Value("B-1")));
  // Completed: no compensation. Now the same with a failing third step.
  Machine n(R"(
service s { }
saga t() {
  step a { do s.a() -> ra  undo s.undo_a(ref: ra) }
  step nothing { do s.n() }
  step b { do s.b() -> rb  undo s.undo_b(ref: rb) }
  step c { do s.c() }
}
)");
  n.begin();
  n.end(0, ok(Value("A")));
  n.end(0, ok());
  n.end(0, ok(Value("B")));
  Decision d = n.end(0, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_failed:c", "compensating", "undo_started:b"}));
  EXPECT_EQ(n.state().root().args, Value::object({{"ref", "B"}}));
  d = n.end(0, ok());
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"undo_completed:b", "undo_skipped:nothing",
                                                         "undo_started:a"}));
  d = n.end(0, ok());
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"undo_completed:a", "compensated"}));
  EXPECT_EQ(d.status, InstanceStatus::kCompensated);
}

TEST(Machine, FailingBeforeAnyEffectEndsFailed) {
  Machine m(kTwoSteps);
  m.begin();
  Decision d = m.end(0, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_failed:a", "failed"}));
  EXPECT_EQ(d.status, InstanceStatus::kFailed);
}

// An undo is retried with the compensation policy; when that is spent the
// instance is stuck at that undo, with a dead letter, and nothing is dropped.
TEST(Machine, AnUndoThatKeepsFailingLeavesTheInstanceStuckAtIt) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, failure("rejected"));  // b: compensate a.
  ASSERT_EQ(m.waiting(), "undo a");
  Decision d = m.end(0, failure("unavailable"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"undo_failed:a"}));
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 100);
  d = m.end(0, failure("unavailable"));
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 200);  // Exponential.
  d = m.end(0, failure("unavailable"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"stuck:a"}));
  EXPECT_EQ(d.status, InstanceStatus::kStuck);
  ASSERT_TRUE(d.dead_letter);
  EXPECT_EQ(d.dead_letter->step, "a");
  EXPECT_TRUE(d.ready.empty());
  // Stuck, the instance still waits at that undo, compensating.
  EXPECT_EQ(m.state().phase, saga::runtime::Phase::kCompensating);
  EXPECT_EQ(m.waiting(), "undo a");
}

TEST(Machine, UndoArgumentsThatCannotBeComputedLeaveItStuck) {
  Machine m(R"(
service s { }
saga t(n: number) {
  step a { do s.a() undo s.undo(x: n / 0) }
  fail rejected "no"
}
)",
            Value::object({{"n", 1}}));
  m.begin();
  Decision d = m.end(0, ok());
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_completed:a", "compensating", "stuck:a"}));
  EXPECT_EQ(d.status, InstanceStatus::kStuck);
  ASSERT_TRUE(d.dead_letter);
  EXPECT_NE(d.dead_letter->message.find("cannot compute the undo's arguments"), std::string::npos);
  EXPECT_EQ(d.dead_letter->error_class, "arithmetic");
}

// A deadline or a cancel abandons the attempt waited for: in doubt when it
// was out (or an earlier one was), not when it had not left.
TEST(Machine, AnInterruptedStepIsInDoubtOnlyIfItsAttemptWasOut) {
  struct Row {
    const char* what;
    bool out, earlier, cancel;
    bool compensated;
    InstanceStatus final;
  };
  const Row rows[] = {
      {"out, deadline", true, false, false, true, InstanceStatus::kCompensating},
      {"not out, deadline", false, false, false, false, InstanceStatus::kCompensating},
      {"an earlier one in doubt", false, true, false, true, InstanceStatus::kCompensating},
      {"out, cancel", true, false, true, true, InstanceStatus::kCompensating},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    Machine m(kTwoSteps);
    m.begin();
    m.end(0, ok(Value("A-1")));
    m.state().root().attempt_out = row.out;
    m.state().root().earlier_attempt_in_doubt = row.earlier;
    Decision d = m.interrupt(row.cancel ? "cancelled" : "timeout", row.cancel);
    EXPECT_EQ(Machine::kinds(d)[0], "step_abandoned:b");
    EXPECT_EQ(m.waiting(), row.compensated ? "undo b" : "undo a");
    EXPECT_EQ(d.status, row.final);
    EXPECT_EQ(ids(d.stopped), std::vector<uint32_t>{0});
    m.end(0, ok());
    if (row.compensated) m.end(0, ok());
    EXPECT_EQ(saga::runtime::status_of(m.state()),
              row.cancel ? InstanceStatus::kCancelled : InstanceStatus::kCompensated);
  }
}

// After a restart an awaited attempt whose wake time had come may have been
// sent; one whose wake time is still ahead (a backoff) was not.
TEST(Machine, AfterARestartOnlyAnAttemptThatWasDueCountsAsSent) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok());
  m.end(0, failure("unavailable", true));  // Never sent: a backoff of 1 s.
  ASSERT_FALSE(m.state().root().earlier_attempt_in_doubt);
  Decision d = m.resumed();  // At once: the retry was not due.
  EXPECT_FALSE(d.commit);
  EXPECT_EQ(ids(d.ready), std::vector<uint32_t>{0});
  EXPECT_EQ(Machine::kinds(d), std::vector<std::string>{"resumed"});
  EXPECT_FALSE(m.state().root().earlier_attempt_in_doubt);
  m.advance(1000);
  m.resumed();  // Now it was due: it may have gone out before the crash.
  EXPECT_TRUE(m.state().root().earlier_attempt_in_doubt);
  // A sleep never leaves anything in doubt.
  Machine s(R"(saga t() { step nap { do sleep(for: 1s) } })");
  s.begin();
  s.advance(5000);
  s.resumed();
  EXPECT_FALSE(s.state().root().earlier_attempt_in_doubt);
}

// An instance the engine evicted while it waited is loaded again with the
// same waits as after a restart, but nothing happened in between: no event,
// and a backoff's attempt due now was certainly not sent.
TEST(Machine, ReloadedAfterEvictionIsNotAResume) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok());
  m.end(0, failure("unavailable", true));  // Never sent: a backoff of 1 s.
  m.advance(1000);
  Decision d = m.reloaded();
  EXPECT_FALSE(d.commit);
  EXPECT_TRUE(d.events.empty());
  EXPECT_EQ(ids(d.ready), std::vector<uint32_t>{0});
  EXPECT_FALSE(m.state().root().earlier_attempt_in_doubt);
  // The next attempts are refused unsent too: the step had no effect, so
  // only the first step is undone (after a resume, b would be undone too).
  m.end(0, failure("unavailable", true));
  m.advance(1000);
  m.end(0, failure("unavailable", true));
  EXPECT_EQ(m.waiting(), "undo a");
  // Fibers at a join are not made ready; their sleeping children are.
  Machine f(R"(saga t(xs: list) { parallel foreach x in xs { step nap { do sleep(for: 1h) } } })",
            Value::from_json(nlohmann::json{{"xs", {1, 2}}}).value());
  f.begin();
  Decision r = f.reloaded();
  EXPECT_EQ(ids(r.ready), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(f.waiting(0), "join");
}

TEST(Machine, BuiltInActionsAreCheckedAndPerformedByTheMachine) {
  Machine m(R"(
saga t(d: any) {
  step note { do log(message: "hello", level: "warn") }
  step nap { do sleep(for: d) }
}
)",
            Value::object({{"d", 2500}}));
  m.begin();
  Decision d = m.end(0, ok());
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"log:note", "step_completed:note", "step_started:nap"}));
  EXPECT_EQ(d.events[0].event.message, "hello");
  EXPECT_EQ(d.events[0].event.data_json, R"({"level":"warn"})");
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 2500);
  Machine bad(R"(saga t(d: any) { step nap { do sleep(for: d) } })",
              Value::object({{"d", "soon"}}));
  d = bad.begin();
  EXPECT_EQ(d.status, InstanceStatus::kFailed);
  EXPECT_EQ(bad.state().error_class, "type");
  EXPECT_NE(bad.state().error_message.find("m.saga:1: step 'nap': sleep(for:)"), std::string::npos)
      << bad.state().error_message;
  EXPECT_TRUE(bad.state().root().completed.empty());
}

// The undo of a step may be a built-in action too: a log line is written
// when it runs, and a sleep waits its time.
TEST(Machine, BuiltInUndosArePerformedByTheMachine) {
  Machine m(R"(
service s { }
saga t() {
  step rest { do s.a() undo sleep(for: 3s) }
  step note { do s.b() undo log(message: "undoing note") }
  step last { do s.c() }
}
)");
  m.begin();
  m.end(0, ok());
  m.end(0, ok());
  Decision d = m.end(0, failure("rejected"));
  EXPECT_EQ(m.waiting(), "undo note");
  d = m.end(0, ok());
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"log:note", "undo_completed:note", "undo_started:rest"}));
  EXPECT_EQ(d.events[0].event.message, "undoing note");
  EXPECT_EQ(m.waiting(), "undo rest");
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 3000);
}

TEST(Machine, ARuntimeErrorFailsTheSagaWithItsPosition) {
  Machine m("saga t(n: any) {\n  output n + 1\n}\n", Value::object({{"n", "x"}}));
  Decision d = m.begin();
  EXPECT_EQ(d.status, InstanceStatus::kFailed);
  EXPECT_EQ(m.state().error_class, "type");
  EXPECT_NE(m.state().error_message.find("m.saga:2"), std::string::npos);
}

// ---- Fibers ------------------------------------------------------------------

const char* kTrip = R"(
service s { }
saga trip() {
  step first { do s.first() -> f  undo s.undo(id: f) }
  parallel {
    branch left { step l1 { do s.l1() -> x  undo s.undo(id: x) }  step l2 { do s.l2() -> x2  undo s.undo(id: x2) } }
    branch right { step r { do s.r() -> y  undo s.undo(id: y) } }
  }
  output [x, x2, y]
}
)";

// The ids of the fibers waiting for an action, in id order.
std::vector<uint32_t> waiting_fibers(Machine& m) {
  std::vector<uint32_t> out;
  for (const auto& f : m.state().fibers) {
    if (f.wait == Wait::kAction) out.push_back(f.id);
  }
  return out;
}

TEST(Machine, AParallelBlockStartsEveryBranchAndJoinsWhenAllEnd) {
  Machine m(kTrip);
  m.begin();
  Decision d = m.end(0, ok(Value("F")));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_completed:first", "forked", "step_started:left/l1",
                                      "step_started:right/r"}));
  EXPECT_EQ(d.events[1].event.message, "parallel: left, right");
  EXPECT_EQ(m.waiting(0), "join");
  EXPECT_EQ(waiting_fibers(m), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(ids(d.ready), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(ids(d.changed), (std::vector<uint32_t>{1, 2}));
  // The right branch ends first; only its fiber changes.
  d = m.end(2, ok(Value("Y")));
  EXPECT_EQ(Machine::kinds(d), std::vector<std::string>{"step_completed:right/r"});
  EXPECT_FALSE(d.instance_changed) << "a branch's step does not rewrite the instance";
  EXPECT_EQ(ids(d.changed), std::vector<uint32_t>{2});
  d = m.end(1, ok(Value("X")));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_completed:left/l1", "step_started:left/l2"}));
  d = m.end(1, ok(Value("X2")));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_completed:left/l2", "joined", "completed"}));
  EXPECT_EQ(ids(d.removed), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(d.status, InstanceStatus::kCompleted);
  EXPECT_EQ(m.state().output.to_json_text(), R"(["X","X2","Y"])");
  EXPECT_EQ(m.state().fibers.size(), 1u);
}

// Fiber ids are never reused; a block that would start fibers past the
// limit fails the saga before it starts any (found by fuzz_checkpoint: the
// id wrapped to 0, and the state no longer encoded to a checkpoint).
TEST(Machine, ABlockThatWouldStartFibersPastTheLimitFailsTheSaga) {
  Machine m(kTrip);
  m.begin();
  m.state().next_fiber = saga::runtime::kMaxFiberId - 1;  // Room for one fiber: two are needed.
  Decision d = m.end(0, ok(Value("F")));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_completed:first", "compensating",
                                                         "undo_started:first"}));
  EXPECT_EQ(m.state().error_class, "error");
  EXPECT_NE(m.state().error_message.find("would start 2 fibers"), std::string::npos)
      << m.state().error_message;
  EXPECT_EQ(m.state().fibers.size(), 1u);
  EXPECT_EQ(m.waiting(0), "undo first");
  // With room for both, the block runs and takes the last ids.
  Machine fits(kTrip);
  fits.begin();
  fits.state().next_fiber = saga::runtime::kMaxFiberId - 2;
  d = fits.end(0, ok(Value("F")));
  EXPECT_EQ(fits.waiting(0), "join");
  EXPECT_EQ(fits.state().next_fiber, saga::runtime::kMaxFiberId);
}

// When one branch fails the others stop (in doubt when their attempt was
// out), then compensation undoes each branch newest first and the whole
// block before the step before it.
TEST(Machine, WhenABranchFailsTheOthersStopAndTheBlockIsUndoneFirst) {
  Machine m(kTrip);
  m.begin();
  m.end(0, ok(Value("F")));
  m.end(1, ok(Value("X")));  // left/l1 done; left/l2 out.
  m.state().fiber(1)->attempt_out = true;
  Decision d = m.end(2, failure("rejected"));  // right/r declined.
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_failed:right/r", "step_abandoned:left/l2",
                                      "compensating", "undo_started:left/l2"}));
  EXPECT_EQ(ids(d.stopped), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(ids(d.removed), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(m.state().fibers.size(), 1u);
  // left/l2 was out: in doubt, undone first, with its key's name.
  EXPECT_EQ(m.waiting(), "undo left/l2");
  d = m.end(0, ok());
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"undo_completed:left/l2", "undo_started:left/l1"}));
  EXPECT_EQ(m.state().root().args, Value::object({{"id", "X"}}));
  d = m.end(0, ok());
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"undo_completed:left/l1", "undo_started:first"}));
  d = m.end(0, ok());
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"undo_completed:first", "compensated"}));
}

const char* kItems = R"(
service s { }
saga items(list: list) {
  parallel foreach item in list max 2 {
    step reserve { do s.reserve(sku: item) -> r  undo s.release(id: r) }
  }
  output r
}
)";

TEST(Machine, AParallelForeachRunsAtMostMaxAndCollectsInItemOrder) {
  Machine m(kItems, Value::object({{"list", Value::list({"a", "b", "c", "d"})}}));
  Decision d = m.begin();
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"started", "forked", "step_started:reserve[0]",
                                      "step_started:reserve[1]"}));
  EXPECT_EQ(d.events[1].event.message, "foreach item: 4 items, 2 at a time");
  EXPECT_EQ(waiting_fibers(m), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(m.state().fiber(1)->args, Value::object({{"sku", "a"}}));
  // Item 1 ends first: item 2 takes its place.
  d = m.end(2, ok(Value("R-b")));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_completed:reserve[1]", "step_started:reserve[2]"}));
  EXPECT_EQ(waiting_fibers(m), (std::vector<uint32_t>{1, 3}));
  m.end(3, ok(Value("R-c")));
  m.end(1, ok(Value("R-a")));
  d = m.end(4, ok(Value("R-d")));
  EXPECT_EQ(Machine::kinds(d).back(), "completed");
  EXPECT_EQ(m.state().output.to_json_text(), R"(["R-a","R-b","R-c","R-d"])");
}

TEST(Machine, AnEmptyForeachJoinsAtOnceAndANonListIsATypeError) {
  Machine empty(kItems, Value::object({{"list", Value::list()}}));
  Decision d = empty.begin();
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"started", "forked", "joined", "completed"}));
  EXPECT_EQ(empty.state().output.to_json_text(), "[]");
  Machine any(R"(
saga items(list: any) {
  foreach item in list { step nap { do sleep(for: 1s) } }
}
)",
              Value::object({{"list", "abc"}}));
  d = any.begin();
  EXPECT_EQ(d.status, InstanceStatus::kFailed);
  EXPECT_EQ(any.state().error_class, "type");
  EXPECT_NE(any.state().error_message.find("foreach needs a list, got string"), std::string::npos)
      << any.state().error_message;
}

// A plain foreach runs one item after the other; after a failure in item 1,
// item 0 is undone and item 2 never started.
TEST(Machine, AForeachRunsItemsOneAtATimeAndUndoesTheDoneOnes) {
  Machine m(R"(
service s { }
saga items(list: list) {
  foreach item in list { step reserve { do s.reserve(sku: item) -> r  undo s.release(id: r) } }
}
)",
            Value::object({{"list", Value::list({"a", "b", "c"})}}));
  m.begin();
  EXPECT_EQ(waiting_fibers(m), std::vector<uint32_t>{1});
  Decision d = m.end(1, ok(Value("R-a")));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_completed:reserve[0]", "step_started:reserve[1]"}));
  d = m.end(2, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_failed:reserve[1]", "compensating",
                                                         "undo_started:reserve[0]"}));
  EXPECT_EQ(m.state().root().args, Value::object({{"id", "R-a"}}));
  d = m.end(0, ok());
  EXPECT_EQ(d.status, InstanceStatus::kCompensated);
}

// Blocks nest: a branch's foreach; the keys name both.
TEST(Machine, NestedBlocksNameTheirStepsByBranchAndItem) {
  Machine m(R"(
service s { }
saga n(list: list) {
  parallel {
    branch a { foreach item in list { step each { do s.each(x: item) } } }
    branch b { step other { do s.other() } }
  }
}
)",
            Value::object({{"list", Value::list({1, 2})}}));
  Decision d = m.begin();
  // Fibers 1 (branch a) and 2 (branch b); a forks 3 (its first item).
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"started", "forked", "forked:a/", "step_started:b/other",
                                      "step_started:a/each[0]"}));
  EXPECT_EQ(waiting_fibers(m), (std::vector<uint32_t>{2, 3}));
  d = m.end(3, ok());
  EXPECT_EQ(Machine::kinds(d).back(), "step_started:a/each[1]");
  m.end(2, ok());
  d = m.end(4, ok());
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_completed:a/each[1]", "joined:a/",
                                                         "joined", "completed"}));
}

}  // namespace

// Step kinds (README.md, "Step kinds and obligations").
const char* kPivot = R"(
service s { }
retry forever { attempts: unlimited, backoff: fixed(1s), on: any }
saga t() {
  deadline 1m
  step a { do s.a() -> ra  undo s.undo_a(ref: ra) }
  pivot step p { do s.p() retry { attempts: 2, backoff: fixed(1s), on: [timeout] } }
  retriable step r { do s.r() retry forever }
}
)";

// A retriable step never gives up: every class is retried, past any count,
// and the pivot's completion dropped the deadline its retries would pass.
TEST(Machine, ARetriableStepIsRetriedOnEveryClassWithoutLimit) {
  Machine m(kPivot);
  m.begin();
  m.end(0, ok(Value("A")));
  EXPECT_EQ(m.state().deadline_ms, m.now() + 60'000);
  m.end(0, ok());  // The pivot.
  EXPECT_EQ(m.state().deadline_ms, 0);
  const char* classes[] = {"rejected", "timeout", "unavailable", "error", "custom_class"};
  for (int i = 0; i < 100; ++i) {
    m.advance(10'000);
    Decision d = m.end(0, failure(classes[i % 5]));
    ASSERT_EQ(Machine::kinds(d), (std::vector<std::string>{"attempt_failed:r"})) << i;
  }
  EXPECT_EQ(m.state().root().attempt, 101u);
  Decision d = m.end(0, ok());
  EXPECT_EQ(d.status, InstanceStatus::kCompleted);
}

// Past the pivot a cancel compensates nothing, and says so.
TEST(Machine, PastThePivotACancelCompensatesNothing) {
  Machine m(kPivot);
  m.begin();
  m.end(0, ok(Value("A")));
  m.end(0, ok());
  Decision d = m.interrupt("cancelled", true);
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_abandoned:r", "cancelled"}));
  EXPECT_EQ(d.status, InstanceStatus::kCancelled);
  EXPECT_NE(m.state().error_message.find("after the pivot step 'p': nothing is compensated"),
            std::string::npos)
      << m.state().error_message;
}

// The steps before a pivot are undone only when it certainly had no effect.
TEST(Machine, APivotInDoubtCompensatesNothingADeclinedOneDoes) {
  Machine doubt(kPivot);
  doubt.begin();
  doubt.end(0, ok(Value("A")));
  doubt.end(0, failure("timeout"));
  doubt.advance(1000);
  Decision d = doubt.end(0, failure("timeout"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"step_failed:p", "failed"}));
  EXPECT_NE(doubt.state().error_message.find("may have had its effect"), std::string::npos);

  Machine declined(kPivot);
  declined.begin();
  declined.end(0, ok(Value("A")));
  d = declined.end(0, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_failed:p", "compensating", "undo_started:a"}));
}

// ---- Messages: cancel and the operator commands -----------------------------------

// Which status takes which command: the table, written out here on its own
// so that a changed row in commands.def shows.
TEST(MachineCommands, EachCommandAppliesInItsStatusesOnly) {
  const std::map<std::string, std::string> accepts = {
      {"cancel", "pending running"}, {"pause", "running"},     {"unpause", "paused"},
      {"retry", "stuck paused"},     {"skip", "stuck paused"}, {"compensate", "paused"},
  };
  for (const saga::CommandInfo& c : saga::kCommands) {
    std::string got;
    for (int st = 0; st <= static_cast<int>(InstanceStatus::kPaused); ++st) {
      const auto status = static_cast<InstanceStatus>(st);
      const std::string why = saga::refusal(c.command, "i-1", status);
      EXPECT_EQ(why.empty(), saga::command_accepts(c.command, status));
      if (why.empty()) {
        got += std::string(got.empty() ? "" : " ") + saga::to_string(status);
      } else {
        EXPECT_NE(why.find(std::string("is ") + saga::to_string(status)), std::string::npos) << why;
      }
    }
    EXPECT_EQ(got, accepts.at(std::string(c.name))) << c.name;
  }
}

Machine stuck_at_a() {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, failure("rejected"));
  for (int i = 0; i < 3; ++i) m.end(0, failure("unavailable"));
  EXPECT_TRUE(m.state().stuck);
  return m;
}

TEST(MachineCommands, RetryOfAStuckUndoStartsItAgainWithAFreshBudget) {
  Machine m = stuck_at_a();
  Decision d = m.message("retry", R"({"note":"back up"})");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"retried:a"}));
  EXPECT_EQ(d.events[0].event.message, "back up");
  EXPECT_EQ(d.status, InstanceStatus::kCompensating);
  EXPECT_TRUE(d.resolve_dead_letters);
  EXPECT_EQ(ids(d.ready), (std::vector<uint32_t>{0}));
  EXPECT_EQ(m.waiting(), "undo a");
  EXPECT_EQ(m.state().root().attempt, 1u);
  // Its budget is whole again: two failures are retried, the third sticks.
  EXPECT_EQ(Machine::kinds(m.end(0, failure("unavailable"))),
            (std::vector<std::string>{"undo_failed:a"}));
  m.end(0, failure("unavailable"));
  EXPECT_EQ(m.end(0, failure("unavailable")).status, InstanceStatus::kStuck);
}

TEST(MachineCommands, SkipOfAStuckUndoCountsItAsCompensated) {
  Machine m = stuck_at_a();
  Decision d = m.message("skip", R"({"note":"refunded by hand"})");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"skipped:a", "compensated"}));
  EXPECT_EQ(d.status, InstanceStatus::kCompensated);
  EXPECT_TRUE(d.resolve_dead_letters);
  EXPECT_TRUE(d.ready.empty());
}

TEST(MachineCommands, PauseLetsTheWaitGoAndUnpauseMakesTheAttemptAgainInDoubt) {
  Machine m(kTwoSteps);
  m.begin();
  ASSERT_EQ(m.waiting(), "action a");
  Decision d = m.message("pause", R"({"note":"maintenance"})");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"paused"}));
  EXPECT_EQ(d.status, InstanceStatus::kPaused);
  EXPECT_TRUE(d.final());
  EXPECT_EQ(ids(d.stopped), (std::vector<uint32_t>{0}));
  EXPECT_TRUE(d.ready.empty());
  // Refused while paused: dropped, nothing changes.
  d = m.message("pause");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"command_dropped"}));
  EXPECT_EQ(d.status, InstanceStatus::kPaused);
  d = m.message("unpause");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"unpaused", "resumed"}));
  EXPECT_EQ(d.status, InstanceStatus::kRunning);
  EXPECT_EQ(ids(d.ready), (std::vector<uint32_t>{0}));
  EXPECT_TRUE(m.state().root().earlier_attempt_in_doubt) << "it may have been out";
}

TEST(MachineCommands, CompensateGivesUpOnAPausedInstance) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.message("pause");
  Decision d = m.message("compensate", R"({"note":"not wanted"})");
  EXPECT_EQ(d.status, InstanceStatus::kCompensating);
  EXPECT_EQ(m.waiting(), "undo a");
  EXPECT_NE(m.state().error_message.find("not wanted"), std::string::npos);
}

TEST(MachineCommands, SkipOfAPausedStepCompletesItWithTheGivenResult) {
  Machine m(kTwoSteps);
  m.begin();
  m.message("pause");
  Decision d = m.message("skip", R"({"note":"by hand","result":"A-9"})");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"skipped:a", "resumed", "step_completed:a",
                                                         "step_started:b"}));
  EXPECT_EQ(m.waiting(), "action b");
  EXPECT_EQ(d.events[2].event.data_json, R"("A-9")");
  EXPECT_NE(d.events[2].event.message.find("done by hand: by hand"), std::string::npos);
}

TEST(MachineCommands, ACommandThatNoLongerAppliesIsDroppedAndCancelCompensates) {
  Machine m(kTwoSteps);
  m.begin();
  m.end(0, ok(Value("A-1")));
  Decision d = m.message("retry");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"command_dropped"}));
  EXPECT_EQ(d.status, InstanceStatus::kRunning);
  EXPECT_TRUE(d.ready.empty());
  d = m.message("no-such-kind");
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"command_dropped"}));
  d = m.message("cancel");
  EXPECT_EQ(d.status, InstanceStatus::kCompensating);
  EXPECT_EQ(m.waiting(), "undo a");
  EXPECT_TRUE(m.state().cancelled);
}

// ---- then: pause and undo_retry (issue #11) --------------------------------------

const char* kPausing = R"(
service s { }
retry parked { attempts: 2, backoff: fixed(1s), on: [unavailable], then: pause }
saga t() {
  step a { do s.a() -> ra  undo s.undo_a(ref: ra) }
  step b { do s.b() -> rb  undo s.undo_b(ref: rb)  retry parked }
}
)";

// A class the policy retries, with the attempts used up: the instance is
// paused at the step (the fiber still waits there, nothing is compensated),
// and the history says why.
TEST(MachinePause, AnExhaustedPolicyThatEndsInAPausePausesAtTheStep) {
  Machine m(kPausing);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, failure("unavailable"));
  Decision d = m.end(0, failure("unavailable"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"attempt_failed:b", "paused:b"}));
  EXPECT_EQ(d.status, InstanceStatus::kPaused);
  EXPECT_TRUE(d.final());
  EXPECT_TRUE(d.ready.empty());
  EXPECT_EQ(ids(d.stopped), (std::vector<uint32_t>{0}));
  EXPECT_FALSE(d.dead_letter);
  EXPECT_NE(d.events[1].event.message.find("its retry policy ends in a pause"), std::string::npos);
  EXPECT_NE(d.events[1].event.data_json.find("then: pause"), std::string::npos);
  EXPECT_EQ(m.waiting(), "action b");
  EXPECT_EQ(m.state().phase, saga::runtime::Phase::kForward);
}

// A class the policy does not retry fails the step as before: no pause.
TEST(MachinePause, AClassThePolicyDoesNotRetryFailsTheStep) {
  Machine m(kPausing);
  m.begin();
  m.end(0, ok(Value("A-1")));
  Decision d = m.end(0, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d)[0], "step_failed:b");
  EXPECT_EQ(d.status, InstanceStatus::kCompensating);
}

// `sagactl retry` of the paused step: a fresh budget, the same step.
TEST(MachinePause, RetryOfAPausedStepGivesAFreshBudget) {
  Machine m(kPausing);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, failure("unavailable"));
  m.end(0, failure("unavailable"));
  Decision d = m.message("retry");
  EXPECT_EQ(d.status, InstanceStatus::kRunning);
  EXPECT_EQ(ids(d.ready), (std::vector<uint32_t>{0}));
  EXPECT_EQ(m.state().root().attempt, 1u);
  EXPECT_EQ(m.waiting(), "action b");
  EXPECT_EQ(Machine::kinds(m.end(0, failure("unavailable"))),
            (std::vector<std::string>{"attempt_failed:b"}));
  EXPECT_EQ(m.end(0, failure("unavailable")).status, InstanceStatus::kPaused);
  m.message("retry");
  d = m.end(0, ok(Value("B-1")));
  EXPECT_EQ(d.status, InstanceStatus::kCompleted);
}

// `sagactl compensate` gives up on it: the earlier steps and the paused
// one (its attempts were in doubt) are undone.
TEST(MachinePause, CompensateOfAPausedStepUndoesItAndTheEarlierOnes) {
  Machine m(kPausing);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, failure("unavailable"));
  m.end(0, failure("unavailable"));
  Decision d = m.message("compensate", R"({"note":"give up"})");
  EXPECT_EQ(d.status, InstanceStatus::kCompensating);
  EXPECT_EQ(m.waiting(), "undo b");
}

const char* kUndoPolicies = R"(
service s { }
retry once { attempts: 1 }
saga t() {
  undo_retry { attempts: 2, backoff: fixed(5s), on: any }
  step a { do s.a() -> ra  undo s.undo_a(ref: ra) }
  step b { do s.b() -> rb  undo s.undo_b(ref: rb)  undo_retry once }
  fail "boom"
}
)";

// An undo's own policy replaces the built-in one (3 attempts in these
// tests): `once` is stuck at the first failure; the saga's default (2
// attempts, fixed 5 s) applies to the undo without one.
TEST(MachineUndoRetry, AnUndosOwnPolicyAndTheSagasDefaultReplaceTheBuiltInOne) {
  Machine m(kUndoPolicies);
  m.begin();
  m.end(0, ok(Value("A-1")));
  m.end(0, ok(Value("B-1")));
  ASSERT_EQ(m.waiting(), "undo b");
  Decision d = m.end(0, failure("unavailable"));
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"stuck:b"}));
  ASSERT_TRUE(d.dead_letter);
  EXPECT_NE(d.events[0].event.message.find("undo failed 1 times"), std::string::npos);
  d = m.message("skip", R"({"note":"by hand"})");
  ASSERT_EQ(m.waiting(), "undo a");
  d = m.end(0, failure("rejected"));  // `on: any`: retried.
  EXPECT_EQ(Machine::kinds(d), (std::vector<std::string>{"undo_failed:a"}));
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 5000);
  d = m.end(0, failure("rejected"));
  EXPECT_EQ(d.status, InstanceStatus::kStuck);
}

// The policy's classes count for an undo too: a class it does not retry
// leaves the instance stuck at once.
TEST(MachineUndoRetry, AClassTheUndosPolicyDoesNotRetryIsStuckAtOnce) {
  Machine m(R"(
service s { }
saga t() {
  step a { do s.a() -> ra  undo s.undo_a(ref: ra)  undo_retry { attempts: 5, on: [timeout] } }
  fail "boom"
}
)");
  m.begin();
  m.end(0, ok(Value("A-1")));
  ASSERT_EQ(m.waiting(), "undo a");
  EXPECT_EQ(Machine::kinds(m.end(0, failure("timeout"))),
            (std::vector<std::string>{"undo_failed:a"}));
  EXPECT_EQ(m.end(0, failure("unavailable")).status, InstanceStatus::kStuck);
}

// ---- Signals: `await signal` -------------------------------------------------

const char* kAwaits = R"(
service s { }
saga t() {
  step a { do s.a() -> ra  undo s.undo_a(ref: ra) }
  await signal approve timeout 1h -> d
  step b { do s.b(by: d) }
}
saga handled() {
  await signal approve timeout 2h -> d else { step note { do s.note() } }
  output d
}
)";

// The machine's inputs for a signal, beside the Machine driver above.
struct SignalEnv {
  FixedContext ctx;
  saga::runtime::Env env;
  explicit SignalEnv(int64_t now) {
    env.now_ms = now;
    env.functions = &ctx;
  }
};

saga::InboxMessage make_signal(const std::string& name, const std::string& data) {
  auto m = saga::signal_message("i-1", name, data, "sig-1", 5);
  EXPECT_TRUE(m.ok());
  return m.value();
}

TEST(MachineSignals, AnAwaitWaitsForItsTimeoutAndNamesItsSignal) {
  Machine m(kAwaits);
  m.begin();
  Decision d = m.end(0, ok(Value::string("r")));
  EXPECT_EQ(m.waiting(), "action await approve");
  EXPECT_EQ(ids(d.ready), (std::vector<uint32_t>{0}));
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 3'600'000) << "the timer is the timeout";
  EXPECT_TRUE(saga::runtime::waits_for_signal(m.program(), m.state().root()));
  EXPECT_EQ(saga::runtime::awaiting_fiber(m.program(), m.state(), "approve"), 0u);
  EXPECT_FALSE(saga::runtime::awaiting_fiber(m.program(), m.state(), "other").has_value());
  m.state().paused = true;
  EXPECT_FALSE(saga::runtime::awaiting_fiber(m.program(), m.state(), "approve").has_value())
      << "a paused instance takes no signal until it runs again";
}

TEST(MachineSignals, ASignalIsTheAwaitsResultAndIsNotCompensated) {
  Machine m(kAwaits);
  m.begin();
  m.end(0, ok(Value::string("r")));
  SignalEnv e(m.now());
  Decision d = saga::runtime::signal_arrived(m.program(), m.state(), 0,
                                             make_signal("approve", R"({"by":"ann"})"),
                                             R"({"by":"ann"})", e.env);
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"signal_consumed:await approve",
                                      "step_completed:await approve", "step_started:b"}));
  EXPECT_EQ(m.waiting(), "action b");
  EXPECT_EQ(m.state().root().args.to_json(), (nlohmann::json{{"by", {{"by", "ann"}}}}));
  // Only step a is in the compensation log: the await had no effect.
  ASSERT_EQ(m.state().root().completed.size(), 1u);
  d = m.end(0, failure("rejected"));
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"step_failed:b", "compensating", "undo_started:a"}));
}

TEST(MachineSignals, WithoutElseTheTimeoutFailsTheStepAndCompensates) {
  Machine m(kAwaits);
  m.begin();
  m.end(0, ok(Value::string("r")));
  SignalEnv e(m.now() + 3'600'000);
  Decision d = saga::runtime::signal_timed_out(m.program(), m.state(), 0, e.env);
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"signal_timed_out:await approve", "step_failed:await approve",
                                      "compensating", "undo_started:a"}));
  EXPECT_EQ(d.events[1].event.error_class, "timeout");
  EXPECT_EQ(m.state().error_class, "timeout");
  EXPECT_EQ(m.waiting(), "undo a");
}

TEST(MachineSignals, WithElseTheTimeoutRunsTheBlockWithTheVariableNull) {
  Machine m(kAwaits);
  m.state() = saga::runtime::start_state(m.program(), 1, Value::object());
  m.begin();
  EXPECT_EQ(m.state().root().wake_at_ms, m.now() + 7'200'000);
  SignalEnv e(m.now() + 7'200'000);
  Decision d = saga::runtime::signal_timed_out(m.program(), m.state(), 0, e.env);
  EXPECT_EQ(Machine::kinds(d),
            (std::vector<std::string>{"signal_timed_out:await approve", "step_started:note"}));
  EXPECT_EQ(d.status, InstanceStatus::kRunning) << "handled: the saga goes on";
  EXPECT_EQ(m.waiting(), "action note");
  d = m.end(0, ok());
  EXPECT_EQ(d.status, InstanceStatus::kCompleted);
  EXPECT_TRUE(m.state().output.is_null());
}

// ---- Events: `await event` ---------------------------------------------------

// An await of two event types whose `where` the instance computed when it
// began to wait: its waits (one per type, for the store), and the events
// that fit it.
TEST(MachineEvents, AnAwaitOfEventsWaitsForEachTypeWithItsValues) {
  Machine m(R"(
saga ev(order: string) {
  await event pay.ok, pay.failed where event.data.order == order and event.source == "/pay" timeout 1h -> p
  output p
}
)",
            Value::from_json(nlohmann::json{{"order", "o-1"}}).value());
  EXPECT_TRUE(m.program().awaits_events) << "the engine keeps its waits in the store";
  EXPECT_FALSE(Machine(kAwaits).program().awaits_events) << "signals only";
  m.begin();
  EXPECT_EQ(m.waiting(), "action await event pay.ok,pay.failed");
  const std::string match = R"({"data.order":"o-1","source":"/pay"})";
  EXPECT_EQ(saga::runtime::event_waits(m.program(), m.state()),
            (std::vector<saga::EventWait>{{0, "pay.ok", match}, {0, "pay.failed", match}}));
  const std::string fits = R"({"source":"/pay","data":{"order":"o-1","amount":5}})";
  EXPECT_EQ(saga::runtime::awaiting_fiber(m.program(), m.state(), "event:pay.ok", fits), 0u);
  EXPECT_EQ(saga::runtime::awaiting_fiber(m.program(), m.state(), "event:pay.failed", fits), 0u);
  EXPECT_FALSE(
      saga::runtime::awaiting_fiber(m.program(), m.state(), "event:pay.other", fits).has_value());
  EXPECT_FALSE(saga::runtime::awaiting_fiber(m.program(), m.state(), "event:pay.ok",
                                             R"({"source":"/pay","data":{"order":"o-2"}})")
                   .has_value());
  EXPECT_FALSE(saga::runtime::awaiting_fiber(m.program(), m.state(), "pay.ok", fits).has_value())
      << "a signal named like the type is no event";
  EXPECT_FALSE(saga::runtime::awaiting_fiber(m.program(), m.state(), "event:pay", fits).has_value())
      << "a type matches whole, not by prefix";
  m.state().paused = true;
  EXPECT_FALSE(
      saga::runtime::awaiting_fiber(m.program(), m.state(), "event:pay.ok", fits).has_value());
}

TEST(MachineEvents, AnEventFitsWhenItHasEveryValueAtItsPath) {
  using nlohmann::json;
  using saga::runtime::event_fits;
  const json event = json::parse(R"({"id":"e","data":{"n":5,"o":{"k":"v"},"l":[1]}})");
  EXPECT_TRUE(event_fits(json::object(), event));
  EXPECT_TRUE(event_fits(json{{"data.n", 5.0}}, event)) << "numbers compare by value";
  EXPECT_TRUE(event_fits(json{{"data.o.k", "v"}, {"id", "e"}}, event));
  EXPECT_TRUE(event_fits(json{{"data.l", json::array({1})}}, event));
  EXPECT_FALSE(event_fits(json{{"data.n", "5"}}, event)) << "no conversion between types";
  EXPECT_FALSE(event_fits(json{{"data.m", nullptr}}, event)) << "a missing field is no null";
  EXPECT_FALSE(event_fits(json{{"data.n.x", 1}}, event));
  EXPECT_FALSE(event_fits(json{{"data.n", 5}, {"id", "f"}}, event)) << "every value must fit";
  EXPECT_FALSE(event_fits(json::array(), event));
  EXPECT_FALSE(event_fits(json{{"data.n", 5}}, json("not an event")));
}

TEST(MachineSignals, ASignalThatNoAwaitCanTakeIsDropped) {
  Machine m(kAwaits);
  m.begin();
  m.interrupt("cancelled", true);
  Decision d = m.message(std::string(saga::kSignalKind), R"({"name":"approve","data":1})");
  ASSERT_FALSE(d.events.empty());
  EXPECT_EQ(d.events[0].event.kind, "signal_dropped");
}

// EMIT is no yield point: the events a run passes come with the decision
// that ends it, in order, with positions that name the fiber (a loop's items
// apart) and that running the same code again from the same checkpoint
// gives again (so the same event ids after a crash).
TEST(Machine, EmittedEventsComeWithTheDecisionOfTheirRunAndTheirPositionsAreStable) {
  const char* source = R"(
service s { }
saga t(items: list) {
  emit t.begun { n: 1 }
  step a { do s.a() -> ra }
  foreach item in items { emit t.item { item: item, ra: ra } }
  emit t.done { ra: ra }
}
)";
  Machine m(source, Value::object({{"items", Value::list({"p", "q"})}}));
  Decision d = m.begin();
  ASSERT_EQ(d.emitted.size(), 1u);
  EXPECT_EQ(d.emitted[0].type, "t.begun");
  EXPECT_EQ(d.emitted[0].data.to_json_text(), R"({"n":1})");
  EXPECT_EQ(m.waiting(), "action a");
  const saga::runtime::InstanceState checkpoint = m.state();

  // The rest runs in one decision: the items' fibers and the end.
  d = m.end(0, ok(Value("A")));
  EXPECT_EQ(d.status, InstanceStatus::kCompleted);
  std::vector<std::string> types, positions;
  for (const saga::runtime::Emitted& e : d.emitted) {
    types.push_back(e.type);
    positions.push_back(e.position);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"t.item", "t.item", "t.done"}));
  ASSERT_EQ(positions.size(), 3u);
  EXPECT_NE(positions[0], positions[1]) << "each item's emit has its own position";
  EXPECT_EQ(d.emitted[0].data.to_json_text(), R"({"item":"p","ra":"A"})");

  // The same code run again from the same checkpoint (a replay after a
  // crash) emits the same events at the same positions.
  m.state() = checkpoint;
  Decision again = m.end(0, ok(Value("A")));
  ASSERT_EQ(again.emitted.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(again.emitted[i].position, positions[i]);
}
