// Tests of scenario test files (grammar/scenario.hpp) and their runner
// (runtime/scenario/runner.hpp): syntax errors at their line and column with
// a help line, the checks against the saga, answers per attempt, delays and
// timeouts in virtual time, the deadline and cancels, every kind of
// expectation failing with its diff, and the same result on every run.
#include "runtime/scenario/runner.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include <tao/pegtl/contrib/analyze.hpp>

#include "compiler/compile.hpp"
#include "grammar/scenario.hpp"
#include "grammar/scenario_grammar.hpp"
#include "runtime/bytecode/format.hpp"

namespace saga::scenario {
namespace {

// The first diagnostic of parsing `text`, as "line:col: message".
std::string first_error(const std::string& text) {
  SourceFile source("t.saga.test", text);
  Diagnostics diags(source);
  parse_scenarios(source, diags);
  if (diags.all().empty()) return "(none)";
  const Diagnostic& d = diags.all()[0];
  const LineCol at = source.locate(d.span.offset);
  return std::to_string(at.line) + ":" + std::to_string(at.column) + ": " + d.message;
}

TEST(ScenarioParse, AnalyzeFindsNoProblems) {
  // analyze<>() reports rules that could loop without consuming input.
  EXPECT_EQ(tao::pegtl::analyze<peg::file>(), 0u);  // Prints any problem it finds.
}

// Every prefix of every sample's test file, and each with one byte
// changed, parses to a model or to an error, never a crash (the fuzz
// target fuzz_scenario does the same at random).
TEST(ScenarioParse, PrefixesAndDamagedBytesNeverCrash) {
  for (const char* name : {"order", "travel", "fulfil_items", "hello"}) {
    std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/samples/" + name + ".saga.test");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    ASSERT_FALSE(text.empty()) << name;
    size_t errors = 0;
    for (size_t n = 0; n <= text.size(); ++n) {
      SourceFile source("t.saga.test", text.substr(0, n));
      Diagnostics diags(source);
      parse_scenarios(source, diags);
      errors += diags.has_errors();
    }
    for (size_t at = 0; at < text.size(); at += 7) {
      for (char c : {'\0', '"', '{', '\xff'}) {
        std::string damaged = text;
        damaged[at] = c;
        SourceFile source("t.saga.test", damaged);
        Diagnostics diags(source);
        parse_scenarios(source, diags);
      }
    }
    EXPECT_GT(errors, text.size() / 2) << name;  // Most prefixes are cut mid-clause.
  }
}

TEST(ScenarioParse, SyntaxErrorsAtTheirPlace) {
  struct Case {
    int line;
    const char* text;
    const char* error;
  } cases[] = {
      {__LINE__, "test \"a\" { start s {\"x\": 1} expect status completed }", "(none)"},
      {__LINE__, "test a { }", "1:6: expected the test's name, a string"},
      {__LINE__, "test \"a\" {\n  start s {x: 1}\n}", "2:12: expected a quoted field name"},
      {__LINE__, "test \"a\" {\n  start s {\"x\" 1}\n}", "2:16: expected ':' after the field name"},
      {__LINE__, "test \"a\" {\n  start s {\"x\": 1 \"y\": 2}\n}",
       "2:19: expected ',' or '}' in the object"},
      {__LINE__, "test \"a\" {\n  start s {\"x\": 1\n}",
       "3:2: expected a clause (start, answer, cancel, expect) or '}' to close the test"},
      {__LINE__, "test \"a\" { start s {\"x\": \"open\n}", "1:26: unterminated string"},
      {__LINE__, "test \"a\" { answer a.b okay }",
       "1:23: expected an answer: 'ok', 'fail' or 'never'"},
      {__LINE__, "test \"a\" { answer a.b after 5 ok }", "1:29: expected a duration"},
      {__LINE__, "test \"a\" { answer a.b ok then }",
       "1:31: expected an answer: 'ok', 'fail' or 'never'"},
      {__LINE__, "test \"a\" { answer a.b fail }", "1:28: expected the failure's error class"},
      {__LINE__, "test \"a\" { answer a.b after 11575d ok }", "1:29: this duration is too long"},
      {__LINE__, "test \"a\" { answer a.b after 11574d ok expect status completed }", "(none)"},
      {__LINE__, "test \"a\" { expect stat completed }",
       "1:19: expected what to expect: status, output, error, calls, undos, history or elapsed"},
      {__LINE__, "test \"a\" { expect calls [a.b {\"x\": 1} c.d] }",
       "1:39: expected ',' or ']' in the list of calls"},
      {__LINE__, "test \"a\" { signal approved {} }",
       "1:19: signals and events do not exist in the language yet: a test cannot send one"},
      {__LINE__, "test \"a\" { cancel soon }", "1:19: expected 'after DURATION' or 'during CALL'"},
      {__LINE__, "test \"a\" { frobnicate }",
       "1:12: expected a clause (start, answer, cancel, expect) or '}' to close the test"},
      {__LINE__, "expect status completed",
       "1:1: expected a test, or a 'start' or 'answer' for every test"},
      {__LINE__, "test \"a\" { start s {} start s {} expect status completed }",
       "1:23: a second 'start' in this test: a test starts one saga"},
      {__LINE__, "test \"a\" { start s {} expect status completed expect status failed }",
       "1:47: a second 'expect status' in this test: one of them would have no effect"},
      {__LINE__, "test \"a\" { answer a.b ok answer a.b ok expect status completed }",
       "1:33: a second answer for 'a.b': the first would have no effect"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(first_error(c.text), c.error) << "case at line " << c.line << ": " << c.text;
  }
  // Deep JSON is an error, not a stack overflow (a million levels crashed).
  EXPECT_EQ(first_error("test \"a\" { start s {\"a\": " + std::string(1'000'000, '[') + " }"),
            "1:282: lists and objects nest deeper than 256 levels here");
  EXPECT_EQ(first_error("test \"a\" { start s {\"a\": " + std::string(255, '[') +
                        std::string(255, ']') + "} expect status completed }"),
            "(none)");
  // A number of any length (strtod saturates; std::stod threw out_of_range).
  EXPECT_EQ(first_error("test \"a\" { cancel after " + std::string(400, '9') + "ms }"),
            "1:25: this duration is too long");
}

TEST(ScenarioParse, BuildsTheModel) {
  SourceFile source("t.saga.test", R"(program "x.saga"
// Answers for every test.
answer inventory.reserve ok {"id": "R-1"}
test "retries" {
  start order {"n": 1, "items": [1, 2]}
  answer "charge" fail unavailable "down" unsent then after 1.5s ok then never
  cancel during payment.charge
  expect status compensated
  expect error rejected "declined"
  expect calls [inventory.reserve {"order": "o-1"}, "charge"]
  expect history [started, step_completed "flight/flight", completed]
  expect elapsed 48h
}
)");
  Diagnostics diags(source);
  File f = parse_scenarios(source, diags);
  ASSERT_FALSE(diags.has_errors()) << diags.render_text();
  EXPECT_EQ(f.program, "x.saga");
  ASSERT_EQ(f.answers.size(), 1u);
  EXPECT_EQ(f.answers[0].answers[0].result, nlohmann::json({{"id", "R-1"}}));
  ASSERT_EQ(f.tests.size(), 1u);
  const scenario::Test& t = f.tests[0];
  EXPECT_EQ(t.name, "retries");
  EXPECT_EQ(t.start->input, nlohmann::json::parse(R"({"n": 1, "items": [1, 2]})"));
  ASSERT_EQ(t.answers.size(), 1u);
  const AnswerRule& r = t.answers[0];
  EXPECT_TRUE(r.target.key);
  EXPECT_EQ(r.target.name, "charge");
  ASSERT_EQ(r.answers.size(), 3u);
  EXPECT_EQ(r.answers[0].kind, Answer::Kind::kFail);
  EXPECT_EQ(r.answers[0].error_class, "unavailable");
  EXPECT_EQ(r.answers[0].message, "down");
  EXPECT_TRUE(r.answers[0].unsent);
  EXPECT_EQ(r.answers[1].kind, Answer::Kind::kOk);
  EXPECT_EQ(r.answers[1].after_ms, 1500u);
  EXPECT_TRUE(r.answers[1].result.is_null());
  EXPECT_EQ(r.answers[2].kind, Answer::Kind::kNever);
  EXPECT_EQ(r.answers[2].after_ms, 0u);
  ASSERT_TRUE(t.cancel);
  EXPECT_TRUE(t.cancel->during);
  EXPECT_EQ(t.cancel->target.name, "payment.charge");
  ASSERT_EQ(t.expects.size(), 5u);
  EXPECT_EQ(t.expects[0].status, "compensated");
  EXPECT_EQ(t.expects[1].error_class, "rejected");
  EXPECT_EQ(t.expects[1].error_message, "declined");
  ASSERT_EQ(t.expects[2].calls.size(), 2u);
  EXPECT_EQ(*t.expects[2].calls[0].args, nlohmann::json({{"order", "o-1"}}));
  EXPECT_TRUE(t.expects[2].calls[1].target.key);
  EXPECT_FALSE(t.expects[2].calls[1].args);
  ASSERT_EQ(t.expects[3].history.size(), 3u);
  EXPECT_EQ(t.expects[3].history[1].step, "flight/flight");
  EXPECT_FALSE(t.expects[3].history[2].step);
  EXPECT_EQ(t.expects[4].elapsed_ms, 48u * 3600 * 1000);
  EXPECT_EQ(source.locate(t.expects[4].span.offset).line, 12u);
}

// ---- Running ---------------------------------------------------------------------------

struct Ran {
  std::string diagnostics;  // Of parsing and checking.
  std::vector<TestResult> results;
  const TestResult& only() const { return results.at(0); }
};

Ran run(const std::string& saga, const std::string& tests) {
  auto image = compiler::compile_to_image("t.saga", saga);
  EXPECT_TRUE(image.ok()) << image.status().message();
  auto program = bytecode::load(image.value());
  EXPECT_TRUE(program.ok());
  SourceFile source("t.saga.test", tests);
  Diagnostics diags(source);
  Ran ran;
  File file = parse_scenarios(source, diags);
  if (!diags.has_errors()) check(file, program.value(), diags);
  ran.diagnostics = diags.render_text();
  if (diags.has_errors()) return ran;
  auto linked = runtime::verify_and_link(std::move(program).value());
  EXPECT_TRUE(linked.ok());
  for (const scenario::Test& t : file.tests)
    ran.results.push_back(run_test(linked.value(), file, t));
  return ran;
}

std::string failures(const TestResult& r) {
  std::string out;
  for (const Failure& f : r.failures) {
    out += f.diagnostic.message + "\n";
    for (const std::string& d : f.diff) out += "    " + d + "\n";
  }
  return out;
}

const char* const kOrder = R"(
service inventory { timeout 2s }
service payment { timeout 3s }
retry standard { attempts: 3, backoff: fixed(1s), on: [timeout, unavailable] }
saga order(id: string, amount: number) {
  deadline 10m
  step reserve {
    do inventory.reserve(order: id) -> r
    undo inventory.release(reservation: r.id)
    retry standard
  }
  step charge {
    do payment.charge(amount: amount) -> p
    undo payment.refund(payment: p.id)
  }
  output { order: id, payment: p.id }
}
)";

const char* const kAnswers = R"(
start order {"id": "o-1", "amount": 5}
answer inventory.reserve ok {"id": "R-1"}
answer payment.charge ok {"id": "P-1"}
)";

TEST(ScenarioRun, HappyPathPasses) {
  Ran ran = run(kOrder, std::string(kAnswers) + R"(
test "ok" {
  expect status completed
  expect output {"order": "o-1", "payment": "P-1"}
  expect calls [inventory.reserve {"order": "o-1"}, payment.charge {"amount": 5}]
  expect undos []
  expect history [started, step_completed reserve, step_completed charge, completed]
  expect elapsed 0ms
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  EXPECT_TRUE(ran.only().passed()) << failures(ran.only());
  EXPECT_EQ(ran.only().status, "completed");
  EXPECT_TRUE(ran.only().warnings.empty());
}

TEST(ScenarioRun, EveryExpectationFailsWithWhatHappened) {
  Ran ran = run(kOrder, std::string(kAnswers) + R"(
test "wrong" {
  expect status compensated
  expect output {"order": "o-1", "payment": "P-2"}
  expect calls [inventory.reserve {"order": "o-2"}, payment.charge]
  expect undos [inventory.release]
  expect history [started, completed]
  expect elapsed 1s
  expect error rejected
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  const TestResult& r = ran.only();
  EXPECT_FALSE(r.passed());
  const std::string text = failures(r);
  EXPECT_NE(text.find("expected status compensated, got completed"), std::string::npos) << text;
  EXPECT_NE(text.find("the output differs from the expected one\n"
                      "      {\n"
                      "        \"order\": \"o-1\",\n"
                      "    -   \"payment\": \"P-2\"\n"
                      "    +   \"payment\": \"P-1\"\n"
                      "      }\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("    - inventory.reserve {\"order\":\"o-2\"}\n"
                      "    + inventory.reserve {\"order\":\"o-1\"}  (reserve, attempt 1)\n"
                      "      payment.charge {\"amount\":5}  (charge, attempt 1)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("the undo calls differ from the expected ones: 1 expected, 0 made\n"
                      "    - inventory.release\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("      started\n"
                      "    + step_completed reserve\n"
                      "    + step_completed charge\n"
                      "      completed\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("expected the saga to take 1s of virtual time, it took 0ms"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("expected error rejected, but the saga has none (it is completed)"),
            std::string::npos)
      << text;
  EXPECT_EQ(r.failures.size(), 7u);
}

TEST(ScenarioRun, AnAnswerPerAttemptWithBackoffInVirtualTime) {
  // Attempt 1 times out at the service's 2s, attempt 2 is unavailable, both
  // retried after the policy's fixed 1s; attempt 3 succeeds.
  Ran ran = run(kOrder, std::string(kAnswers) + R"(
test "retry" {
  answer inventory.reserve never then fail unavailable "down" then ok {"id": "R-3"}
  expect status completed
  expect output {"order": "o-1", "payment": "P-1"}
  expect calls [inventory.reserve, inventory.reserve, inventory.reserve, payment.charge]
  expect history [started, attempt_failed reserve, attempt_failed reserve, step_completed reserve,
                  step_completed charge, completed]
  expect elapsed 4s
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  EXPECT_TRUE(ran.only().passed()) << failures(ran.only());
}

TEST(ScenarioRun, AnAnswerAtItsTimeoutIsATimeout) {
  // 2s is the service's timeout: an answer after 1999ms arrives, one after
  // 2s is too late (the attempt times out, in doubt, and is retried).
  const std::string base = std::string(kAnswers);
  Ran in_time = run(kOrder, base + R"(
test "in time" {
  answer inventory.reserve after 1999ms ok {"id": "R-1"}
  expect calls [inventory.reserve, payment.charge]
  expect elapsed 1999ms
})");
  Ran late = run(kOrder, base + R"(
test "late" {
  answer inventory.reserve after 2s ok {"id": "R-1"}
  expect calls [inventory.reserve, inventory.reserve, inventory.reserve]
  // Timed out: in doubt, so released, with the result it never bound.
  expect status compensated
  expect error timeout "no answer within 2s"
  expect undos [inventory.release {"reservation": null}]
  expect elapsed 8s
})");
  EXPECT_TRUE(in_time.only().passed()) << failures(in_time.only());
  EXPECT_TRUE(late.only().passed()) << failures(late.only());
}

TEST(ScenarioRun, AFailureCompensatesInReverse) {
  Ran ran = run(kOrder, std::string(kAnswers) + R"(
test "declined" {
  answer payment.charge fail rejected "card declined"
  expect status compensated
  expect error rejected "card declined"
  expect undos [inventory.release {"reservation": "R-1"}]
}
test "payment lost" {
  answer payment.charge never
  answer payment.refund fail unavailable then ok
  expect status compensated
  expect undos [payment.refund {"payment": null}, payment.refund, inventory.release]
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  EXPECT_TRUE(ran.results[0].passed()) << failures(ran.results[0]);
  // The payment timed out: in doubt, so it is refunded (its result, never
  // bound, reads as null), the refund retried once.
  EXPECT_TRUE(ran.results[1].passed()) << failures(ran.results[1]);
}

TEST(ScenarioRun, AnUnsentFailureIsNotCompensated) {
  // The charge failed before its request left: certainly no effect, so no
  // refund; the same failure sent (unavailable: in doubt) is refunded.
  Ran ran = run(kOrder, std::string(kAnswers) + R"(
test "unsent" {
  answer payment.charge fail unavailable "no connection" unsent
  expect status compensated
  expect undos [inventory.release]
}
test "sent" {
  answer payment.charge fail unavailable "502"
  expect status compensated
  expect undos [payment.refund, inventory.release]
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  for (const TestResult& r : ran.results) EXPECT_TRUE(r.passed()) << failures(r);
}

// `sagactl test` runs the code of an emit and keeps no event (there is no
// outbox): the saga runs as it would without it.
TEST(ScenarioRun, EmitIsNoEffectInAScenario) {
  Ran ran = run(R"(
service shop { }
saga order(id: string, items: list) {
  emit order.placed { order: id }
  step a { do shop.a(id: id) -> x undo shop.undo_a(id: id) }
  foreach item in items { emit order.item { item: item } }
  emit order.done { x: x }
  output x
}
)",
                R"(
start order {"id": "o-1", "items": ["p", "q"]}
answer shop.a ok 7
test "emits" {
  expect status completed
  expect output 7
  expect calls [shop.a {"id": "o-1"}]
  expect history [started, step_completed a, forked, joined, completed]
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  EXPECT_TRUE(ran.only().passed()) << failures(ran.only());
}

TEST(ScenarioRun, ASagaThatWaitsForeverIsStillRunning) {
  // No timeout and no deadline: the call that never answers holds the
  // instance, as it would in the engine, until a cancel comes; a cancel due
  // after the saga ended is reported as one that never came.
  const char* saga = R"(
saga w(id: string) {
  step ask { do host.ask(id: id) -> a }
  output { a: a }
}
)";
  Ran ran = run(std::string("service host { }\n") + saga, R"(
start w {"id": "x"}
test "waits" {
  answer host.ask never
  expect status running
}
test "cancelled while it waits" {
  answer host.ask never
  cancel after 30d
  expect status cancelled
  expect elapsed 30d
}
test "ends before the cancel" {
  answer host.ask ok {}
  cancel after 1s
  expect status completed
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  for (const TestResult& r : ran.results) EXPECT_TRUE(r.passed()) << failures(r);
  ASSERT_EQ(ran.results[0].warnings.size(), 1u);
  EXPECT_EQ(ran.results[0].warnings[0].message,
            "the saga waits for an answer that never comes (no timeout, no deadline): it is still "
            "running");
  ASSERT_EQ(ran.results[2].warnings.size(), 1u);
  EXPECT_EQ(ran.results[2].warnings[0].message,
            "the cancel never came: the saga ended completed first");
}

TEST(ScenarioRun, AFortyEightHourTimeoutTakesNoRealTime) {
  const char* saga = R"(
service approvals { timeout 48h }
saga approve(id: string) {
  step ask { do approvals.ask(id: id) -> a  undo approvals.withdraw(id: id) }
  output { ok: a.ok }
}
)";
  const auto t0 = std::chrono::steady_clock::now();
  Ran ran = run(saga, R"(
start approve {"id": "x"}
test "nobody answers" {
  answer approvals.ask never
  expect status compensated
  expect error timeout "no answer within 2d"
  expect undos [approvals.withdraw {"id": "x"}]
  expect elapsed 48h
}
test "answered after a day" {
  answer approvals.ask after 24h ok {"ok": true}
  expect output {"ok": true}
  expect elapsed 1d
}
)");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ran.diagnostics, "");
  EXPECT_TRUE(ran.results[0].passed()) << failures(ran.results[0]);
  EXPECT_TRUE(ran.results[1].passed()) << failures(ran.results[1]);
  EXPECT_LT(seconds, 1.0);
}

TEST(ScenarioRun, TheDeadlineAndCancelsComeAtTheirTime) {
  const char* saga = R"(
service s { timeout 1h }
saga slow(id: string) {
  deadline 10m
  step one { do s.one(id: id) -> r  undo s.undo_one(id: id) }
  step two { do s.two(id: id) }
  output { id: id }
}
)";
  Ran ran = run(saga, R"(
start slow {"id": "x"}
answer s.one ok {}
test "deadline" {
  answer s.two after 20m ok
  expect status compensated
  expect error timeout "deadline of 10m exceeded"
  expect undos [s.undo_one]
  expect elapsed 10m
}
test "cancel after" {
  answer s.two after 20m ok
  cancel after 90s
  expect status cancelled
  expect undos [s.undo_one]
  expect elapsed 90s
}
test "cancel during" {
  answer s.one after 5s ok {}
  answer s.two ok
  cancel during s.one
  expect status cancelled
  expect calls [s.one]
  expect undos [s.undo_one]
  expect elapsed 0ms
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  for (const TestResult& r : ran.results) EXPECT_TRUE(r.passed()) << failures(r);
}

TEST(ScenarioRun, PastThePivotTheDeadlineNoLongerFires) {
  const char* saga = R"(
service s { timeout 1h }
saga p(id: string) {
  deadline 10m
  step hold { do s.hold(id: id)  undo s.release(id: id) }
  pivot step pay { do s.pay(id: id) }
  retriable step ship { do s.ship(id: id)  retry { attempts: unlimited, on: any } }
  output { id: id }
}
)";
  Ran ran = run(saga, R"(
start p {"id": "x"}
answer s.hold ok
answer s.pay ok
test "before the pivot" {
  answer s.hold after 20m ok
  expect status compensated
  expect error timeout "deadline of 10m exceeded"
  expect undos [s.release]
  expect elapsed 10m
}
test "at the pivot" {
  // The pivot was out at the deadline: it may have happened, and past the
  // point of no return nothing is compensated (the machine's rule).
  answer s.pay after 20m ok
  expect status failed
  expect undos []
  expect elapsed 10m
}
test "after the pivot" {
  answer s.ship after 20m ok
  expect status completed
  expect undos []
  expect elapsed 20m
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  for (const TestResult& r : ran.results) EXPECT_TRUE(r.passed()) << failures(r);
}

TEST(ScenarioRun, TheSameResultEveryRunWithJitterAndUuid) {
  const char* saga = R"(
service s { timeout 1s }
retry jittery { attempts: 6, backoff: exponential(1s, 2.0, 1m), jitter: full, on: [unavailable] }
saga j(id: string) {
  step one { do s.one(id: id) -> r  retry jittery }
  output { id: uuid(), at: now() }
}
)";
  const char* tests = R"(
start j {"id": "x"}
test "jitter" {
  answer s.one fail unavailable then fail unavailable then fail unavailable then ok
  expect status completed
}
)";
  Ran first = run(saga, tests), second = run(saga, tests);
  ASSERT_TRUE(first.only().passed()) << failures(first.only());
  EXPECT_EQ(first.only().elapsed_ms, second.only().elapsed_ms);
  // Full jitter draws below 1s + 2s + 4s: a nonzero wait, not the whole of it.
  EXPECT_GT(first.only().elapsed_ms, 0);
  EXPECT_LT(first.only().elapsed_ms, 7000);
  Ran ten = run(saga, std::string(tests) + R"(
test "output" {
  answer s.one fail unavailable then fail unavailable then fail unavailable then ok
  expect output {"id": "", "at": 0}
})");
  ASSERT_EQ(ten.results.size(), 2u);
  const std::string a = failures(ten.results[1]), b = failures(run(saga, std::string(tests) + R"(
test "output" {
  answer s.one fail unavailable then fail unavailable then fail unavailable then ok
  expect output {"id": "", "at": 0}
})")
                                                                   .results[1]);
  EXPECT_EQ(a, b);  // The same uuid() and now(), so the same diff.
  EXPECT_NE(a.find("\"at\": \"2026-01-01T00:00:0"), std::string::npos) << a;  // Plus the waits.
}

TEST(ScenarioRun, UnansweredCallsFailAndUnusedAnswersWarn) {
  Ran ran = run(kOrder, R"(
start order {"id": "o-1", "amount": 5}
test "no answers" {
  answer inventory.reserve ok {"id": "R-1"}
  answer inventory.release ok
  expect status compensated
}
)");
  ASSERT_EQ(ran.diagnostics, "");
  const TestResult& r = ran.only();
  EXPECT_EQ(failures(r),
            "'payment.charge' was called (step 'charge', attempt 1) but the test gives it no "
            "answer\n");
  ASSERT_EQ(r.warnings.size(), 0u);  // inventory.release was used: the charge failed.
  Ran unused = run(kOrder, std::string(kAnswers) + R"(
test "unused" {
  answer payment.refund ok
  expect status completed
})");
  ASSERT_EQ(unused.only().warnings.size(), 1u);
  EXPECT_EQ(unused.only().warnings[0].message,
            "the answer for payment.refund was never used: the saga made no such call");
}

TEST(ScenarioCheck, NamesThatMeanNothingAreErrors) {
  Ran ran = run(kOrder, R"(
start ordr {"id": "o-1", "amount": 5}
test "a" {
  start order {"id": "o-1", "amount": "five"}
  answer inventory.reserv ok
  answer "chrge" ok
  expect status complete
  expect history [started, step_complete]
}
test "b" { start order {"id": "o-1", "amount": 5} }
test "a" { expect status completed }
)");
  const std::string& d = ran.diagnostics;
  for (const char* want :
       {"t.saga.test:2:7: error: t.saga has no saga 'ordr'", "help: did you mean 'order'?",
        "t.saga.test:4:15: error: input field 'amount' must be a number, got string",
        "t.saga.test:5:10: error: t.saga calls no action 'inventory.reserv'",
        "help: did you mean 'inventory.reserve'?",
        "t.saga.test:6:10: error: t.saga has no step 'chrge'",
        "t.saga.test:7:17: error: 'complete' is not a status", "help: did you mean 'completed'?",
        "t.saga.test:8:28: error: 'step_complete' is not a kind of history event",
        "t.saga.test:10:6: error: test 'b' expects nothing: it cannot fail",
        "t.saga.test:11:6: error: a second test named 'a'"}) {
    EXPECT_NE(d.find(want), std::string::npos) << want << "\nin:\n" << d;
  }
}

TEST(ScenarioCheck, ActionsTheEnginePerformsHaveNoAnswer) {
  Ran ran = run("saga h() { step s { do sleep(for: 1s) } }", R"(
test "a" { start h {} answer sleep ok expect status completed })");
  EXPECT_NE(ran.diagnostics.find("'sleep' is performed by the engine itself"), std::string::npos)
      << ran.diagnostics;
}

TEST(ScenarioDiff, LongestCommonSubsequence) {
  const std::vector<std::string> a = {"x", "y", "z"}, b = {"x", "z", "w"};
  EXPECT_EQ(diff_lines(a, b, [&](size_t i, size_t j) { return a[i] == b[j]; }),
            (std::vector<std::string>{"  x", "- y", "  z", "+ w"}));
}

TEST(ScenarioDiff, ListsTooLongToAlignAreShownWhole) {
  const std::vector<std::string> a(3000, "x"), b(3000, "y");
  const auto d = diff_lines(a, b, [](size_t, size_t) { return false; });
  ASSERT_EQ(d.size(), 6000u);
  EXPECT_EQ(d.front(), "- x");
  EXPECT_EQ(d.back(), "+ y");
}

TEST(ScenarioDiff, ArgumentsMatchAsASubset) {
  const auto actual = nlohmann::json::parse(R"({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]})");
  EXPECT_TRUE(json_matches(nlohmann::json::parse(R"({"a": 1.0})"), actual));
  EXPECT_TRUE(json_matches(nlohmann::json::parse(R"({"b": {"d": 3}})"), actual));
  EXPECT_FALSE(json_matches(nlohmann::json::parse(R"({"b": {"d": 4}})"), actual));
  EXPECT_FALSE(json_matches(nlohmann::json::parse(R"({"f": 1})"), actual));
  EXPECT_FALSE(json_matches(nlohmann::json::parse(R"({"e": [1]})"), actual));
  EXPECT_TRUE(json_matches(nlohmann::json::parse(R"({})"), actual));
}

}  // namespace
}  // namespace saga::scenario
