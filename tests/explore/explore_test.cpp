// Tests of the explorer (runtime/explore/explore.hpp): every sample explored
// with no violation and every kind of end reached; planted bugs in sagas
// found with the fewest faults and a trace; the bound on faults; the same
// report on every run.
#include "runtime/explore/explore.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace saga::explore
