// Interpreter and checkpoint tests: run a program to its yield points, encode
// the state, decode it against the program, and refuse damaged checkpoints.
#include <gtest/gtest.h>
#include <xxhash.h>

#include "compiler/compile.hpp"
#include "runtime/bytecode/verify.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "runtime/vm/vm.hpp"

namespace {

using saga::Value;
using saga::runtime::Stop;
using saga::runtime::Wait;

class FixedContext : public saga::stdlib::FunctionContext {
 public:
  int64_t now_ms() override { return 1'700'000'000'000; }
  void random_bytes(std::span<uint8_t> out) override {
    for (auto& b : out) b = 7;
  }
};

saga::runtime::LinkedProgram link(const std::string& text) {
  saga::SourceFile source("t.saga", text);
  saga::Diagnostics diags(source);
  auto program = saga::compiler::compile(source, diags);
  EXPECT_TRUE(program) << diags.render_text();
  std::vector<int32_t> depths;
  EXPECT_TRUE(saga::bytecode::verify(*program, &depths).ok());
  auto linked = saga::runtime::link(std::move(*program));
  EXPECT_TRUE(linked.ok());
  linked->depth_at = std::move(depths);
  return std::move(linked).value();
}

const char* kSource = R"(
service s { }
saga p(n: number, tags: list) {
  let id = uuid()
  let label = "n=${n} ${upper(tags[0])}"
  step a { do s.a(n: n * 2, label: label) -> r  undo s.undo(id: r.id, who: id) }
  if r.ok { output { r: r, label: label } } else { fail rejected "not ok: ${r}" }
}
)";

// kSource's instance stopped at step "a", awaiting its action.
saga::runtime::InstanceState at_first_step(const saga::runtime::LinkedProgram& lp,
                                           FixedContext& ctx) {
  auto state =
      saga::runtime::start_state(lp, 0, Value::object({{"n", 21}, {"tags", Value::list({"x"})}}));
  EXPECT_EQ(saga::runtime::run(lp, state, ctx), Stop::kInvoke);
  return state;
}

TEST(Interpreter, RunsToYieldPointsAndFinishes) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state =
      saga::runtime::start_state(lp, 0, Value::object({{"n", 21}, {"tags", Value::list({"x"})}}));
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kInvoke);
  EXPECT_EQ(state.wait, Wait::kAction);
  EXPECT_EQ(lp.program.steps[state.step].name, "a");
  EXPECT_EQ(state.args, Value::object({{"n", 42}, {"label", "n=21 X"}}));
  state.stack.push_back(Value::object({{"ok", true}, {"id", "R1"}}));
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kComplete);
  EXPECT_EQ(state.output.to_json_text(), R"({"label":"n=21 X","r":{"id":"R1","ok":true}})");
}

TEST(Interpreter, FailStopsWithClassAndMessage) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state =
      saga::runtime::start_state(lp, 0, Value::object({{"n", 1}, {"tags", Value::list({"y"})}}));
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kInvoke);
  state.stack.push_back(Value::object({{"ok", false}}));
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kFail);
  EXPECT_EQ(state.error_class, "rejected");
  EXPECT_EQ(state.error_message, R"(not ok: {"ok":false})");
}

TEST(Interpreter, UndoBlockComputesArgumentsFromBoundValues) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state =
      saga::runtime::start_state(lp, 0, Value::object({{"n", 1}, {"tags", Value::list({"y"})}}));
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kInvoke);
  state.stack.push_back(Value::object({{"ok", false}, {"id", "R9"}}));
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kFail);
  state.pc = lp.program.steps[0].undo_pc;
  state.stack.clear();
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kUndo);
  EXPECT_EQ(state.args.find("id")->as_string(), "R9");
  EXPECT_EQ(state.args.find("who")->as_string(), "07070707-0707-4707-8707-070707070707");
  ASSERT_EQ(saga::runtime::run(lp, state, ctx), Stop::kReturned);
}

TEST(InputValidation, NamesTheParameter) {
  auto lp = link(kSource);
  const auto& saga = lp.program.sagas[0];
  EXPECT_TRUE(
      saga::runtime::validate_input(saga, Value::object({{"n", 1}, {"tags", Value::list()}})).ok());
  auto s =
      saga::runtime::validate_input(saga, Value::object({{"n", "1"}, {"tags", Value::list()}}));
  EXPECT_EQ(s.message(), "input field 'n' must be a number, got string");
  s = saga::runtime::validate_input(saga, Value::object({{"n", 1}}));
  EXPECT_EQ(s.message(), "the input of saga 'p' is missing 'tags' (list)");
  s = saga::runtime::validate_input(saga,
                                    Value::object({{"n", 1}, {"tags", Value::list()}, {"x", 1}}));
  EXPECT_EQ(s.message(), "saga 'p' has no parameter 'x' (parameters: n, tags)");
}

TEST(Checkpoint, RoundTripsAtAYieldPoint) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.attempt = 3;
  state.earlier_attempt_in_doubt = true;
  state.wake_at_ms = 1234;
  state.deadline_ms = -5;
  state.completed.push_back({0, true});
  std::string bytes;
  saga::runtime::encode_checkpoint(state, bytes);
  auto back = saga::runtime::decode_checkpoint(lp, bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back.value() == state);
}

// Checkpoints written by the previous format (version 1, before
// earlier_attempt_in_doubt) still load; the missing flag is taken as true
// while an action is awaited, the safe side (the step is compensated).
TEST(Checkpoint, ReadsVersion1) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  state.attempt = 2;
  std::string without, with;
  saga::runtime::encode_checkpoint(state, without);
  auto flagged = state;
  flagged.earlier_attempt_in_doubt = true;
  saga::runtime::encode_checkpoint(flagged, with);
  ASSERT_EQ(without.size(), with.size());
  size_t at = 9;  // After the version byte and the checksum.
  while (at < with.size() && with[at] == without[at]) ++at;
  ASSERT_LT(at, with.size());
  std::string v1 = without;
  v1.erase(at, 1);
  v1[0] = 1;
  uint64_t sum = XXH3_64bits(v1.data() + 9, v1.size() - 9);
  for (int i = 0; i < 8; ++i) v1[1 + i] = static_cast<char>(sum >> (8 * i));
  auto back = saga::runtime::decode_checkpoint(lp, v1);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back.value() == flagged);
  v1[0] = 3;
  auto newer = saga::runtime::decode_checkpoint(lp, v1);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().message(),
            "checkpoint version 3 is not supported by this runtime (it reads 1 to 2)");
}

TEST(Checkpoint, RefusesEveryDamagedByteAndTruncation) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  std::string bytes;
  saga::runtime::encode_checkpoint(state, bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] ^= 0x20;
    auto r = saga::runtime::decode_checkpoint(lp, damaged);
    EXPECT_FALSE(r.ok()) << "byte " << i;
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(saga::runtime::decode_checkpoint(lp, bytes.substr(0, n)).ok()) << n;
  }
}

TEST(Checkpoint, RefusesAResumePointTheVerifierDidNotProve) {
  auto lp = link(kSource);
  FixedContext ctx;
  auto state = at_first_step(lp, ctx);
  auto wrong_pc = state;
  wrong_pc.pc += 1;  // Inside an instruction.
  std::string bytes;
  saga::runtime::encode_checkpoint(wrong_pc, bytes);
  auto r = saga::runtime::decode_checkpoint(lp, bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("resume point"), std::string::npos) << r.status().message();
  auto wrong_depth = state;
  wrong_depth.stack.push_back(Value(1));
  bytes.clear();
  saga::runtime::encode_checkpoint(wrong_depth, bytes);
  r = saga::runtime::decode_checkpoint(lp, bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("stack depth"), std::string::npos) << r.status().message();
}

}  // namespace
