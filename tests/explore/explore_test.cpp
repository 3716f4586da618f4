// Tests of the explorer (runtime/explore/explore.hpp): every sample explored
// with no violation and every kind of end reached; planted bugs in sagas
// found with the fewest faults and a trace; the bound on faults; the same
// report on every run.
#include "runtime/explore/explore.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "compiler/compile.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/vm/vm.hpp"

namespace saga::explore {
namespace {

runtime::LinkedProgram link_image(Result<std::vector<uint8_t>> image) {
  EXPECT_TRUE(image.ok()) << image.status().message();
  auto program = bytecode::load(image.value());
  EXPECT_TRUE(program.ok());
  auto linked = runtime::verify_and_link(std::move(program).value());
  EXPECT_TRUE(linked.ok());
  return std::move(linked).value();
}

runtime::LinkedProgram link(const std::string& name, std::string_view text) {
  return link_image(compiler::compile_to_image(name, text));
}

runtime::LinkedProgram link_file(const std::string& relative) {
  return link_image(compiler::compile_file_to_image(std::string(SAGA_SOURCE_DIR) + "/" + relative));
}

Report run(const runtime::LinkedProgram& lp, Options o = {}) {
  return explore(lp, 0, default_input(lp.program.sagas[0]), o);
}

std::string trace_of(const Violation& v) {
  std::string out;
  for (const std::string& line : v.trace) out += line + "\n";
  return out;
}

TEST(Explore, SamplesHaveNoViolationAndReachEveryEnd) {
  for (const char* sample : {"samples/order.saga", "samples/travel.saga",
                             "samples/fulfil_items.saga", "samples/hello.saga"}) {
    SCOPED_TRACE(sample);
    auto lp = link_file(sample);
    Options o;
    o.max_faults = 3;
    Report r = run(lp, o);
    ASSERT_FALSE(r.violation) << r.violation->message << "\n" << trace_of(*r.violation);
    EXPECT_GT(r.paths, 0u);
    EXPECT_GT(r.statuses["completed"], 0u);
    EXPECT_GT(r.statuses["cancelled"], 0u);
    if (std::string(sample) != "samples/hello.saga") {  // hello has nothing that can fail.
      EXPECT_GT(r.statuses["compensated"], 0u);
      EXPECT_GT(r.statuses["failed"], 0u);
      EXPECT_GT(r.statuses["stuck"], 0u);  // Two failed undos, with undo_attempts 2.
    }
    uint64_t total = 0;
    for (const auto& [status, n] : r.statuses) total += n;
    EXPECT_EQ(total, r.paths);
    EXPECT_FALSE(r.truncated);
  }
}

// Each path is counted once: in the round of its number of faults.
TEST(Explore, MoreFaultsMorePathsAndTheSameReportEveryRun) {
  auto lp = link_file("samples/order.saga");
  uint64_t before = 0;
  for (uint32_t k = 0; k <= 4; ++k) {
    Options o;
    o.max_faults = k;
    Report a = run(lp, o), b = run(lp, o);
    EXPECT_EQ(a.paths, b.paths);
    EXPECT_EQ(a.statuses, b.statuses);
    EXPECT_EQ(a.longest, b.longest);
    EXPECT_GT(a.paths, before) << k;
    before = a.paths;
  }
  Options none;
  none.max_faults = 0;
  Report happy = run(lp, none);
  EXPECT_EQ(happy.paths, 1u);  // Nothing fails: one path, completed.
  EXPECT_EQ(happy.statuses["completed"], 1u);
}

TEST(Explore, AnInDoubtStepWithoutUndoIsFoundWithOneFault) {
  auto lp = link_file("tests/explore/cases/in_doubt_without_undo.saga");
  Report r = run(lp);
  ASSERT_TRUE(r.violation);
  const Violation& v = *r.violation;
  EXPECT_EQ(v.faults, 1u);
  EXPECT_EQ(lp.program.steps[v.step].name, "b");
  EXPECT_EQ(v.message,
            "step 'b' may have had its effect (its attempt timed out) but has no undo: nothing "
            "compensates it when the saga fails");
  ASSERT_EQ(v.trace.size(), 3u) << trace_of(v);
  EXPECT_EQ(v.trace[1], "a attempt 1 succeeds -> step_completed a, step_started b");
  EXPECT_EQ(v.trace[2], "b attempt 1 times out -> step_failed b, compensating, undo_skipped b");
}

// A step without undo is flagged only where it may have had an effect that
// nothing undoes: a call to a service that timed out or was out at a
// cancel. A sleep or a log has no effect outside the instance.
TEST(Explore, AStepWithoutUndoIsFlaggedOnlyWhenItMayHaveAnEffect) {
  auto quiet = link("quiet.saga", R"(
service s { }
saga p() {
  step a { do s.a() -> x  undo s.ua(id: x.id) }
  step nap { do sleep(for: 1s) }
  step say { do log(message: "half way") }
  step c { do s.c() -> z  undo s.uc(id: z.id) }
}
)");
  Options o;
  o.max_faults = 3;
  Report r = run(quiet, o);
  EXPECT_FALSE(r.violation) << r.violation->message << "\n" << trace_of(*r.violation);
  EXPECT_GT(r.statuses["compensated"], 0u);

  auto notify = link("notify.saga", R"(
service s { }
saga p() {
  step a { do s.a() -> x  undo s.ua(id: x.id) }
  step notify { do s.notify() retry { attempts: 3, on: [timeout] } }
  step c { do s.c() -> z  undo s.uc(id: z.id) }
}
)");
  r = run(notify, o);
  ASSERT_TRUE(r.violation);
  EXPECT_EQ(r.violation->faults, 1u);
  EXPECT_EQ(notify.program.steps[r.violation->step].name, "notify");
  EXPECT_NE(r.violation->message.find("its attempt was out at the cancel"), std::string::npos)
      << r.violation->message;
}

// A crash at any point resumes into an instance that keeps every promise:
// the explorer checks the checkpoint round trip at each crash, and the
// paths after it are judged like the others.
TEST(Explore, CrashesAreExploredAtEveryTransition) {
  auto lp = link_file("samples/travel.saga");
  Options with, without;
  with.max_faults = without.max_faults = 2;
  without.max_crashes = 0;
  with.max_crashes = 2;
  Report a = run(lp, with), b = run(lp, without);
  EXPECT_FALSE(a.violation) << a.violation->message << "\n" << trace_of(*a.violation);
  EXPECT_FALSE(b.violation);
  EXPECT_GT(a.paths, b.paths);
  EXPECT_EQ(a.statuses.size(), b.statuses.size());
}

// A deadline that time reaches fires without being a fault: a sleep longer
// than the deadline always ends compensated, on the path with no fault.
TEST(Explore, TheDeadlineFiresWhenTimeReachesIt) {
  auto lp = link("deadline.saga", R"(
service s { }
saga p() {
  deadline 1m
  step a { do s.a() -> x  undo s.ua(id: x.id) }
  step nap { do sleep(for: 1h) }
  step c { do s.c() }
}
)");
  Options o;
  o.max_faults = 0;
  Report r = run(lp, o);
  ASSERT_FALSE(r.violation) << r.violation->message;
  EXPECT_EQ(r.paths, 1u);
  EXPECT_EQ(r.statuses["compensated"], 1u);
}

// A program compiled from `text`, changed by `edit` before it is verified and
// linked: a saga the compiler would refuse, as a hand-written or damaged
// .sagac could hold it.
template <typename Edit>
runtime::LinkedProgram link_edited(std::string_view text, Edit edit) {
  auto image = compiler::compile_to_image("edited.saga", text);
  EXPECT_TRUE(image.ok()) << image.status().message();
  auto program = bytecode::load(image.value());
  EXPECT_TRUE(program.ok());
  bytecode::Program p = std::move(program).value();
  edit(p);
  auto linked = runtime::verify_and_link(std::move(p));
  EXPECT_TRUE(linked.ok()) << linked.status().message();
  return std::move(linked).value();
}

uint32_t step_index(const bytecode::Program& p, const std::string& name) {
  for (uint32_t i = 0; i < p.steps.size(); ++i) {
    if (p.steps[i].name == name) return i;
  }
  ADD_FAILURE() << "no step " << name;
  return 0;
}

// Past the pivot nothing is compensated: a cancel or a runtime error there
// ends the saga with every step kept, the deadline stops applying, and the
// retriable steps after it are retried until they succeed.
TEST(Explore, PastThePivotNothingIsCompensated) {
  auto lp = link("pivot.saga", R"(
service s { timeout 1s }
retry forever { attempts: unlimited, backoff: fixed(1s), on: any }
saga p() {
  deadline 1m
  step a { do s.a() -> x  undo s.ua(id: x.id) }
  pivot step commit { do s.commit() retry { attempts: unlimited, on: [timeout, unavailable] } }
  retriable step tell { do s.tell() retry forever }
  step nap { do sleep(for: 1h) }
  retriable step tell_again { do s.tell_again() retry forever }
}
)");
  Options o;
  o.max_faults = 1;
  Report r = run(lp, o);
  ASSERT_FALSE(r.violation) << r.violation->message << "\n" << trace_of(*r.violation);
  // The 1-hour sleep after the pivot outlives the 1-minute deadline: the
  // path with no fault completes.
  EXPECT_GT(r.statuses["completed"], 0u);
  EXPECT_GT(r.statuses["cancelled"], 0u);    // Also cancels after the pivot, nothing undone.
  EXPECT_GT(r.statuses["compensated"], 0u);  // A failure before it.
  // Failed, nothing undone: a declined or unsent, and the deadline while
  // commit is out (in doubt). A retriable step that gave up would add one.
  EXPECT_EQ(r.statuses["failed"], 3u);
  Options none;
  none.max_faults = 0;
  EXPECT_EQ(run(lp, none).statuses["completed"], 1u);
}

// The steps before a pivot are compensated only when the pivot certainly
// had no effect: declined, or never sent. A pivot that timed out, or was out
// at a cancel, leaves them in place (the saga ends failed or cancelled).
TEST(Explore, APivotInDoubtCompensatesNothingBeforeIt) {
  auto lp = link("pivot_doubt.saga", R"(
service s { timeout 1s }
saga p() {
  step a { do s.a() -> x  undo s.ua(id: x.id) }
  pivot step commit { do s.commit() }
}
)");
  Options o;
  o.max_faults = 2;
  Report r = run(lp, o);
  ASSERT_FALSE(r.violation) << r.violation->message << "\n" << trace_of(*r.violation);
  EXPECT_GT(r.statuses["compensated"], 0u);  // commit declined: a is undone.
  EXPECT_GT(r.statuses["failed"], 0u);       // commit timed out: nothing is.
  EXPECT_GT(r.statuses["cancelled"], 0u);
}

// The compiler refuses a pivot in a parallel branch; in a program that has
// one anyway, the branch passes the point of no return while its sibling's
// step is compensated later, and the judge says so with the trace.
TEST(Explore, ACompensationAfterAPivotIsFoundWithItsTrace) {
  auto lp = link_edited(R"(
service s { timeout 1s }
saga p() {
  parallel {
    branch a { step commit { do s.commit() retry { attempts: unlimited, on: [timeout, unavailable] } } }
    branch b { step hold { do s.hold() -> h  undo s.release(id: h.id) } }
  }
  step c { do s.c() -> z  undo s.uc(id: z.id) }
}
)",
                        [](bytecode::Program& p) {
                          p.steps[step_index(p, "commit")].kind = bytecode::StepKind::Pivot;
                        });
  Report r = run(lp);
  ASSERT_TRUE(r.violation);
  const Violation& v = *r.violation;
  EXPECT_EQ(v.faults, 1u);
  EXPECT_EQ(lp.program.steps[v.step].name, "hold");
  EXPECT_EQ(v.message,
            "'b/hold' is compensated after the pivot step 'a/commit' had its effect: past the "
            "point of no return nothing may be undone");
  ASSERT_FALSE(v.trace.empty());
  EXPECT_NE(v.trace.back().find("undo_started b/hold"), std::string::npos) << trace_of(v);
}

// An undo that reads a value its step does not bind: the compiler refuses it
// (tests/compiler/cases/undo_uses_later); in a program whose undo reads the
// later step's slot anyway, the explorer finds the path where that slot is
// unbound when the undo's arguments are computed. (An unbound slot reads as
// null, and a field of null is null, so the explorer sees the read when the
// undo computes with it, here `* 2`; an undo that only passes it on sends
// null, which no run can tell from a null result: the compiler's
// definite-binding check is what rules that out.)
TEST(Explore, AnUndoReadingALaterValueIsFound) {
  auto lp = link_edited(R"(
service s { timeout 1s }
saga p() {
  step reserve { do s.reserve() -> r  undo s.release(n: r.n * 2) }
  step charge { do s.charge() -> receipt  undo s.refund(n: receipt.n * 2) }
}
)",
                        [](bytecode::Program& p) {
                          // reserve's undo block: LOAD r ... becomes LOAD receipt.
                          const bytecode::Saga& saga = p.sagas[0];
                          const auto slot_of = [&](const std::string& name) {
                            return static_cast<uint32_t>(
                                std::find(saga.slot_names.begin(), saga.slot_names.end(), name) -
                                saga.slot_names.begin());
                          };
                          const uint32_t from = slot_of("r"), to = slot_of("receipt");
                          uint32_t pc = p.steps[step_index(p, "reserve")].undo_pc;
                          bytecode::Instruction in;
                          while (bytecode::decode(p.code, pc, in) && in.op != bytecode::Op::UNDO) {
                            if (in.op == bytecode::Op::LOAD && in.a == from) {
                              p.code[pc + 1] = static_cast<uint8_t>(to & 0xFF);
                              p.code[pc + 2] = static_cast<uint8_t>(to >> 8);
                            }
                            pc += in.size;
                          }
                        });
  Report r = run(lp);
  ASSERT_TRUE(r.violation);
  const Violation& v = *r.violation;
  EXPECT_EQ(v.faults, 1u);
  EXPECT_NE(v.message.find("the undo of 'reserve' reads a value that is not bound on this path"),
            std::string::npos)
      << v.message;
  // The fewest faults: reserve times out (in doubt), so its undo runs
  // before charge ever bound `receipt`.
  ASSERT_EQ(v.trace.size(), 2u) << trace_of(v);
  EXPECT_EQ(v.trace[1],
            "reserve attempt 1 times out -> step_failed reserve, compensating, stuck reserve");
}

// `emit` is no effect the explorer models (the outbox is the engine's): a
// saga with emits explores like the same saga without them.
TEST(Explore, EmitIsANoOpForTheExplorer) {
  const char* with = R"(
service s { }
saga t(n: number) {
  emit t.begun { n: n }
  step a { do s.a() -> ra undo s.undo_a(ref: ra) }
  emit t.charged { ra: ra }
  step b { do s.b() -> rb undo s.undo_b(ref: rb) }
  emit t.done { rb: rb }
}
)";
  std::string without = with;
  for (size_t at; (at = without.find("emit ")) != std::string::npos;) without.replace(at, 5, "// ");
  Options o;
  o.max_faults = 2;
  Report a = run(link("with.saga", with), o);
  Report b = run(link("without.saga", without), o);
  ASSERT_FALSE(a.violation) << a.violation->message;
  EXPECT_EQ(a.paths, b.paths);
  EXPECT_EQ(a.statuses, b.statuses);
  EXPECT_GT(a.statuses["completed"], 0u);
}

// An await is answered at once (the signal's or event's data is the mock
// value) or, as a fault, not before its timeout: without `else` the saga
// then compensates what it did, with `else` it goes on. The await itself is
// no effect to compensate.
TEST(Explore, AnAwaitsTimeoutIsExplored) {
  auto lp = link("await.saga", R"(
service s { }
saga t(order: string) {
  step a { do s.a() -> ra undo s.undo_a(ref: ra) }
  await event pay.ok where event.data.order == order timeout 10m -> paid
  await signal confirm timeout 1h -> c else { step note { do s.note() undo s.unnote() } }
}
)");
  Options o;
  o.max_faults = 1;
  Report r = run(lp, o);
  ASSERT_FALSE(r.violation) << r.violation->message << "\n" << trace_of(*r.violation);
  EXPECT_GT(r.statuses["completed"], 0u);
  EXPECT_GT(r.statuses["compensated"], 0u);
  // One fault at most: a's own three, a cancel or a crash at each point, and
  // now each await's timeout. The first await's timeout compensates a; the
  // second's runs its else block and completes.
  Options none;
  none.max_faults = 0;
  EXPECT_EQ(run(lp, none).statuses["completed"], 1u);
  auto timeouts = [&](const char* source) {
    Options one;
    one.max_faults = 1;
    one.max_crashes = 0;
    return run(link("x.saga", source), one).paths;
  };
  const uint64_t with_awaits = timeouts(R"(
saga t() {
  await signal go timeout 1h -> g
}
)");
  const uint64_t without = timeouts(R"(
saga t() {
  let g = 1
}
)");
  EXPECT_EQ(with_awaits, without + 2) << "the await's timeout and a cancel while it waits";
}

// An `await event` is answered with an event of its first type that has the
// values its `where` waits for, so a saga that reads them completes:
// samples/choreography's order reads the answer's type and data.
TEST(Explore, AnAwaitedEventHasTheTypeAndValuesTheAwaitWaitsFor) {
  auto lp = link_file("samples/choreography/order.saga");
  Options none;
  none.max_faults = 0;
  Report happy = run(lp, none);
  ASSERT_FALSE(happy.violation) << happy.violation->message;
  EXPECT_EQ(happy.statuses["completed"], 1u);
  Options o;
  o.max_faults = 2;
  Report r = run(lp, o);
  ASSERT_FALSE(r.violation) << r.violation->message << "\n" << trace_of(*r.violation);
  EXPECT_GT(r.statuses["completed"], 0u);
  EXPECT_GT(r.statuses["compensated"], 0u);  // The reservation released: its await timed out.
}

}  // namespace
}  // namespace saga::explore
