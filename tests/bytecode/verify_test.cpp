// Tests of the bytecode verifier (runtime/bytecode/verify.cpp). Each test
// builds a Program directly (no file, so no checksum to get past), breaks one
// rule, and checks that verify() refuses it with a message naming the rule and
// the place. Encodings the Assembler refuses to produce (bad jump offsets,
// unknown opcodes, cut-off operands) are appended as raw bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <string_view>

#include "runtime/bytecode/assembler.hpp"
#include "runtime/bytecode/verify.hpp"
#include "tests/bytecode/test_programs.hpp"

namespace saga::bytecode {
namespace {

// Passes when `s` is a kCorrupt status whose message contains `needle`.
::testing::AssertionResult Fails(const Status& s, std::string_view needle) {
  if (s.ok()) {
    return ::testing::AssertionFailure()
           << "verify() accepted the program; expected an error mentioning '" << needle << "'";
  }
  if (s.code() != StatusCode::kCorrupt) {
    return ::testing::AssertionFailure() << "code is not kCorrupt: " << s.message();
  }
  if (s.message().find(needle) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message '" << s.message() << "' does not mention '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

// A small program to break: saga 'main' with slots x and y; actions svc.do and
// svc.undo; step 'first' of saga 'main' invoking svc.do, without an undo
// block until a test starts one.
struct Builder {
  Program p;
  Assembler a{p};

  Builder() {
    a.action("svc.do", kNoService);
    a.action("svc.undo", kNoService);
    Saga main;
    main.name = "main";
    main.slot_names = {"x", "y"};
    p.sagas.push_back(main);
    p.steps.push_back({"first", 0, 0, kNone, kNone, kNone, 0, kNone, 1, 1});
  }

  // Adds a second saga 'other' (one slot) starting at the current pc, and a
  // step 'second' that belongs to it.
  void other_saga() {
    Saga other;
    other.name = "other";
    other.slot_names = {"z"};
    other.entry_pc = a.pc();
    p.sagas.push_back(other);
    p.steps.push_back({"second", 1, 0, kNone, kNone, kNone, 0, kNone, 2, 1});
  }

  // The undo block of `step` starts at the current pc.
  void undo_block(uint32_t step) {
    p.steps[step].undo_pc = a.pc();
    p.steps[step].undo_action = 1;
  }

  // A jump with an arbitrary offset, which emit_jump() cannot express.
  void raw_jump(Op op, int32_t offset) {
    p.code.push_back(static_cast<uint8_t>(op));
    auto bits = static_cast<uint32_t>(offset);
    for (int i = 0; i < 4; ++i) p.code.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }

  // Emits `OBJECT; INVOKE step; POP` (a complete step call).
  void invoke(uint32_t step) {
    a.emit(Op::OBJECT);
    a.emit(Op::INVOKE, step);
    a.emit(Op::POP);
  }

  void complete() {
    a.emit(Op::PUSH_NULL);
    a.emit(Op::COMPLETE);
  }

  Status verify() {
    a.finish();
    return bytecode::verify(p);
  }
};

TEST(Verify, AcceptsTheOrderProgram) {
  Program p = test::order_program();
  Status s = verify(p);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Verify, AcceptsAStepWithAnUndoBlock) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 0);
  b.a.emit(Op::RETURN);
  Status s = b.verify();
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Verify, AcceptsLoopsWithAStableDepth) {
  // while x { x = false }: a backward jump to a pc already seen at depth 0.
  Builder b;
  Assembler::Label top = b.a.make_label(), done = b.a.make_label();
  b.a.bind(top);
  b.a.emit(Op::LOAD, 0);
  b.a.emit_jump(Op::JUMP_IF_FALSE, done);
  b.a.emit(Op::PUSH_FALSE);
  b.a.emit(Op::STORE, 0);
  b.a.emit_jump(Op::JUMP, top);
  b.a.bind(done);
  b.complete();
  Status s = b.verify();
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Verify, MessageNamesSagaPcOpcodeAndRule) {
  Builder b;
  b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::POP);
  b.a.emit(Op::POP);
  b.complete();
  Status s = b.verify();
  EXPECT_EQ(s.message(),
            "saga 'main': pc 2 (POP): stack underflow (needs 1 value, the stack holds 0 values)");
}

// --- Code: decoding and control flow -------------------------------------

TEST(Verify, JumpIntoTheMiddleOfAnInstruction) {
  Builder b;
  b.a.emit(Op::LOAD, 0);              // pc 0..2
  b.raw_jump(Op::JUMP_IF_FALSE, -7);  // pc 3; next is 8, target 1.
  b.complete();
  EXPECT_TRUE(
      Fails(b.verify(), "saga 'main': pc 3 (JUMP_IF_FALSE): jump target 1 is not an instruction"));
}

TEST(Verify, JumpPastTheEnd) {
  Builder b;
  b.raw_jump(Op::JUMP, 100);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "jump target 105 is outside the code"));
}

TEST(Verify, JumpBeforeTheStart) {
  Builder b;
  b.raw_jump(Op::JUMP, -6);
  EXPECT_TRUE(Fails(b.verify(), "jump target -1 is outside the code"));
}

TEST(Verify, JumpToTheEndOfTheCode) {
  // One past the last instruction is not an instruction either.
  Builder b;
  b.a.emit(Op::PUSH_TRUE);
  b.raw_jump(Op::JUMP_IF_FALSE, 2);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "jump target 8 is outside the code"));
}

TEST(Verify, StackUnderflow) {
  Builder b;
  b.a.emit(Op::POP);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "pc 0 (POP): stack underflow"));
}

TEST(Verify, VariadicPopsUseTheOperandValue) {
  Builder list;
  list.a.emit(Op::PUSH_NULL);
  list.a.emit(Op::LIST, 2);  // pops = operand a.
  list.a.emit(Op::COMPLETE);
  EXPECT_TRUE(
      Fails(list.verify(), "(LIST): stack underflow (needs 2 values, the stack holds 1 value)"));

  Builder call;
  uint32_t len = call.a.function("len");
  call.a.emit(Op::PUSH_NULL);
  call.a.emit(Op::CALL, len, 2);  // pops = operand b.
  call.a.emit(Op::COMPLETE);
  EXPECT_TRUE(Fails(call.verify(), "(CALL): stack underflow (needs 2 values"));

  Builder ok;
  uint32_t concat_fn = ok.a.function("len");
  ok.a.emit(Op::PUSH_NULL);
  ok.a.emit(Op::PUSH_NULL);
  ok.a.emit(Op::CALL, concat_fn, 2);
  ok.a.emit(Op::LIST, 1);
  ok.a.emit(Op::COMPLETE);
  Status s = ok.verify();
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Verify, InconsistentDepthAtAJoin) {
  Builder b;
  Assembler::Label join = b.a.make_label();
  b.a.emit(Op::PUSH_TRUE);
  b.a.emit_jump(Op::JUMP_IF_FALSE, join);  // Depth 0 on the jump.
  b.a.emit(Op::PUSH_NULL);                 // Depth 1 falling through.
  b.a.bind(join);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "stack depth disagrees at pc 7"));
}

TEST(Verify, FallingOffTheEnd) {
  Builder b;
  b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::POP);
  EXPECT_TRUE(
      Fails(b.verify(), "saga 'main': pc 1 (POP): execution falls off the end of the code"));
}

TEST(Verify, FallingOffTheEndOnOneBranch) {
  Builder b;
  Assembler::Label skip = b.a.make_label();
  b.a.emit(Op::PUSH_TRUE);
  b.a.emit_jump(Op::JUMP_IF_FALSE, skip);
  b.complete();
  b.a.bind(skip);
  b.a.emit(Op::NOP);
  EXPECT_TRUE(Fails(b.verify(), "(NOP): execution falls off the end"));
}

TEST(Verify, StackDepthLimit) {
  Builder b;
  for (uint32_t i = 0; i <= kMaxStackDepth; ++i) b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::COMPLETE);
  EXPECT_TRUE(Fails(b.verify(), "pc 1024 (PUSH_NULL): stack depth 1025 exceeds the limit of 1024"));
}

TEST(Verify, UnknownOpcodeByte) {
  Builder b;
  b.complete();
  b.p.code.push_back(0xEE);
  EXPECT_TRUE(Fails(b.verify(), "code: pc 2: unknown opcode 0xee"));
}

TEST(Verify, TruncatedOperand) {
  Builder b;
  b.complete();
  b.p.code.push_back(static_cast<uint8_t>(Op::CONST));
  b.p.code.push_back(0);
  EXPECT_TRUE(
      Fails(b.verify(), "code: pc 2 (CONST): instruction is truncated (needs 5 bytes, 2 left"));
}

// --- Operands ----------------------------------------------------------------

TEST(Verify, ConstOutOfRange) {
  Builder b;
  b.a.emit(Op::CONST, 3);
  b.a.emit(Op::COMPLETE);
  EXPECT_TRUE(Fails(b.verify(), "(CONST): constant 3 is out of range (0 constants)"));
}

TEST(Verify, StrOperandMustBeAString) {
  Builder b;
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::FIELD, b.a.number(42));
  b.a.emit(Op::COMPLETE);
  EXPECT_TRUE(Fails(b.verify(), "pc 1 (FIELD): constant 0 is not a string (it is a number)"));
}

TEST(Verify, FailClassMustBeAString) {
  Builder b;
  b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::FAIL, b.a.number(1));
  EXPECT_TRUE(Fails(b.verify(), "(FAIL): constant 0 is not a string"));
}

TEST(Verify, SlotOutOfRange) {
  Builder b;
  b.a.emit(Op::LOAD, 2);
  b.a.emit(Op::COMPLETE);
  EXPECT_TRUE(Fails(b.verify(), "(LOAD): slot 2 is out of range (saga 'main' has 2 slots)"));
}

TEST(Verify, SlotsAreCheckedAgainstTheSagaBeingVerified) {
  // Slot 1 is fine in 'main' (2 slots) but not in 'other' (1 slot).
  Builder b;
  b.complete();
  b.other_saga();
  b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::STORE, 1);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "saga 'other': pc 3 (STORE): slot 1 is out of range"));
}

TEST(Verify, FunctionOutOfRange) {
  Builder b;
  b.a.emit(Op::CALL, 5, 0);
  b.a.emit(Op::COMPLETE);
  EXPECT_TRUE(Fails(b.verify(), "(CALL): function 5 is out of range (0 functions)"));
}

TEST(Verify, StepOutOfRange) {
  Builder b;
  b.invoke(9);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "(INVOKE): step 9 is out of range (1 steps)"));
}

TEST(Verify, InvokeOfAnotherSagasStep) {
  Builder b;
  b.invoke(1);  // 'second' belongs to 'other'.
  b.complete();
  b.other_saga();
  b.complete();
  EXPECT_TRUE(
      Fails(b.verify(), "saga 'main': pc 1 (INVOKE): step 'second' belongs to saga 'other'"));
}

// --- Placement: saga code versus undo blocks ----------------------------------

TEST(Verify, UndoInSagaCode) {
  Builder b;
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 0);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "saga 'main': pc 1 (UNDO): only allowed in an undo block"));
}

TEST(Verify, ReturnInSagaCode) {
  Builder b;
  b.a.emit(Op::RETURN);
  EXPECT_TRUE(Fails(b.verify(), "pc 0 (RETURN): only allowed in an undo block"));
}

TEST(Verify, CompleteInUndoCode) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::COMPLETE);
  EXPECT_TRUE(
      Fails(b.verify(), "undo of step 'first': pc 10 (COMPLETE): not allowed in an undo block"));
}

TEST(Verify, InvokeInUndoCode) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::INVOKE, 0);
  b.a.emit(Op::RETURN);
  EXPECT_TRUE(Fails(b.verify(), "(INVOKE): not allowed in an undo block"));
}

// An undo compensates; it tells the world nothing (EMIT is kSagaOnly).
TEST(Verify, EmitInUndoCode) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::EMIT, b.a.string("order.refunded"));
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 0);
  b.a.emit(Op::RETURN);
  EXPECT_TRUE(Fails(b.verify(), "(EMIT): not allowed in an undo block"));
}

// EMIT's type is an event type by the rule triggers follow (valid_event_type),
// and a program that emits is written as format 6, like one that awaits.
TEST(Verify, EmitOfSomethingThatIsNoEventType) {
  for (const std::string type : {"order placed", "", "order..placed", ".order"}) {
    Builder b;
    b.a.emit(Op::OBJECT);
    b.a.emit(Op::EMIT, b.a.string(type));
    b.invoke(0);
    b.complete();
    EXPECT_TRUE(Fails(b.verify(), "(EMIT): emits '" + type + "', which is not an event type"))
        << type;
  }
  Builder ok;
  ok.a.emit(Op::OBJECT);
  ok.a.emit(Op::EMIT, ok.a.string("order.placed"));
  ok.invoke(0);
  ok.complete();
  Status s = ok.verify();
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(format_version(ok.p), 6) << "a program that emits is format 6";
}

TEST(Verify, UndoOfAnotherStep) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.other_saga();
  b.invoke(1);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 1);
  b.a.emit(Op::RETURN);
  EXPECT_TRUE(Fails(b.verify(),
                    "undo of step 'first': pc 19 (UNDO): step 'second' is not the step this undo "
                    "block belongs to ('first')"));
}

TEST(Verify, UndoBlockMustEndWithAnEmptyStack) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 0);
  b.a.emit(Op::PUSH_NULL);
  b.a.emit(Op::RETURN);
  EXPECT_TRUE(Fails(
      b.verify(),
      "(RETURN): undo block ends with 1 value on the stack (it must end with an empty stack)"));
}

TEST(Verify, UndoBlockFallingOffTheEnd) {
  Builder b;
  b.invoke(0);
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 0);
  EXPECT_TRUE(Fails(b.verify(), "undo of step 'first': pc 10 (UNDO): execution falls off the end"));
}

// --- Tables ------------------------------------------------------------------

TEST(Verify, StepSagaOutOfRange) {
  Builder b;
  b.complete();
  b.p.steps[0].saga = 4;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': saga 4 is out of range (1 sagas)"));
}

TEST(Verify, StepActionOutOfRange) {
  Builder b;
  b.complete();
  b.p.steps[0].action = 2;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': do action 2 is out of range (2 actions)"));
}

TEST(Verify, StepUndoActionOutOfRange) {
  Builder b;
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::RETURN);
  b.p.steps[0].undo_action = 7;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': undo action 7 is out of range"));
}

TEST(Verify, UndoActionWithoutUndoBlock) {
  Builder b;
  b.complete();
  b.p.steps[0].undo_action = 1;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': has an undo action but no undo block"));
}

TEST(Verify, UndoBlockWithoutUndoAction) {
  Builder b;
  b.complete();
  b.undo_block(0);
  b.a.emit(Op::RETURN);
  b.p.steps[0].undo_action = kNone;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': has an undo block but no undo action"));
}

TEST(Verify, UndoPcMustBeAnInstruction) {
  Builder b;
  b.a.emit(Op::LOAD, 0);
  b.a.emit(Op::COMPLETE);
  b.p.steps[0].undo_pc = 1;
  b.p.steps[0].undo_action = 1;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': undo pc 1 is not an instruction"));
}

TEST(Verify, ResultSlotOutOfRange) {
  Builder b;
  b.complete();
  b.p.steps[0].result_slot = 2;
  EXPECT_TRUE(
      Fails(b.verify(), "step 'first': result slot 2 is out of range (saga 'main' has 2 slots)"));
}

TEST(Verify, RetryPolicyOutOfRange) {
  Builder b;
  b.complete();
  b.p.steps[0].retry = 0;
  EXPECT_TRUE(Fails(b.verify(), "step 'first': retry policy 0 is out of range (0 policies)"));
}

TEST(Verify, ActionServiceOutOfRange) {
  Builder b;
  b.complete();
  b.p.actions[0].service = 3;
  EXPECT_TRUE(Fails(b.verify(), "action 'svc.do': service 3 is out of range (0 services)"));
}

TEST(Verify, PolicyNeedsAtLeastOneAttempt) {
  Builder b;
  b.complete();
  RetryPolicy none;
  none.name = "never";
  none.attempts = 0;
  b.p.policies.push_back(none);
  EXPECT_TRUE(Fails(b.verify(), "policy 'never': attempts must be at least 1"));
}

TEST(Verify, PolicyFactorMustBeFinite) {
  Builder b;
  b.complete();
  RetryPolicy weird;
  weird.factor = std::nan("");
  b.p.policies.push_back(weird);
  EXPECT_TRUE(Fails(b.verify(), "policy #0: backoff factor"));
}

TEST(Verify, MoreParametersThanSlots) {
  Builder b;
  b.complete();
  b.p.sagas[0].params = {{"a", Type::Any}, {"b", Type::Any}, {"c", Type::Any}};
  EXPECT_TRUE(Fails(b.verify(), "saga 'main': 3 parameters but only 2 slots"));
}

TEST(Verify, TooManySlots) {
  Builder b;
  b.complete();
  b.p.sagas[0].slot_names.resize(kMaxSlots + 1, "s");
  EXPECT_TRUE(Fails(b.verify(), "saga 'main': 65536 slots exceed the limit of 65535"));
}

TEST(Verify, EntryPcMustBeAnInstruction) {
  Builder b;
  b.a.emit(Op::LOAD, 0);
  b.a.emit(Op::COMPLETE);
  b.p.sagas[0].entry_pc = 2;
  EXPECT_TRUE(Fails(b.verify(), "saga 'main': entry pc 2 is not an instruction"));

  Builder empty;
  EXPECT_TRUE(Fails(empty.verify(), "saga 'main': entry pc 0 is not an instruction"));
}

TEST(Verify, DuplicateSagaNames) {
  Builder b;
  b.complete();
  b.p.sagas.push_back(b.p.sagas[0]);
  EXPECT_TRUE(Fails(b.verify(), "saga 'main' is defined twice"));
}

TEST(Verify, LineTableMustBeSorted) {
  Builder b;
  b.a.at(1, 1);
  b.a.emit(Op::PUSH_NULL);
  b.a.at(2, 1);
  b.a.emit(Op::COMPLETE);
  std::swap(b.p.lines[0], b.p.lines[1]);
  EXPECT_TRUE(Fails(b.verify(), "line table: entry 1 (pc 0) comes after entry 0 (pc 1)"));
}

TEST(Verify, NumbersMustBeFinite) {
  Builder b;
  b.complete();
  b.a.number(INFINITY);
  EXPECT_TRUE(Fails(b.verify(), "constant 0: inf is not a finite number"));
}

TEST(Verify, UnreachableCodeIsOnlyDecoded) {
  // Dead code after COMPLETE may hold anything that decodes; it never runs.
  Builder b;
  b.complete();
  b.a.emit(Op::LOAD, 999);
  b.a.emit(Op::POP);
  Status s = b.verify();
  EXPECT_TRUE(s.ok()) << s.message();
}

// --- AWAIT: only for an await step, and an await step only by AWAIT ------------

// A Builder whose step 1, 'await go', calls the built-in `signal`.
struct AwaitBuilder : Builder {
  AwaitBuilder() {
    const uint32_t signal = a.action(bytecode::kSignalAction, kNoService);
    p.steps.push_back({"await go", 0, signal, kNone, kNone, kNone, 0, kNone, 2, 1});
  }
  // OBJECT; AWAIT (jump 0), step; POP.
  void await(uint32_t step) {
    a.emit(Op::OBJECT);
    auto next = a.make_label();
    a.emit_jump(Op::AWAIT, next, step);
    a.bind(next);
    a.emit(Op::POP);
  }
};

TEST(Verify, AcceptsAnAwaitOfAnAwaitStep) {
  AwaitBuilder b;
  b.await(1);
  b.complete();
  Status s = b.verify();
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(format_version(b.p), 6) << "a program that waits for signals is format 6";
}

TEST(Verify, AwaitOfAPlainStepIsRefused) {
  AwaitBuilder b;
  b.await(0);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "(AWAIT): step 'first' is not an await step"));
}

TEST(Verify, InvokeOfAnAwaitStepIsRefused) {
  AwaitBuilder b;
  b.invoke(1);
  b.complete();
  EXPECT_TRUE(Fails(b.verify(), "(INVOKE): step 'await go' is an await step: only AWAIT runs it"));
}

TEST(Verify, AnAwaitStepWithAnUndoIsRefused) {
  AwaitBuilder b;
  b.await(1);
  b.complete();
  b.undo_block(1);
  b.a.emit(Op::OBJECT);
  b.a.emit(Op::UNDO, 1);
  b.a.emit(Op::RETURN);
  EXPECT_TRUE(Fails(b.verify(), "(AWAIT): await step 'await go' has an undo"));
}

}  // namespace
}  // namespace saga::bytecode
