// Tests of the disassembler (runtime/bytecode/disasm.cpp): the listing of a
// realistic program shows what a reader needs (tables, signatures, source
// lines, operands with what they refer to, jump targets, undo blocks), lists
// every instruction, and survives programs the verifier would refuse.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>
#include <string>

#include "runtime/bytecode/disasm.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/bytecode/verify.hpp"
#include "tests/bytecode/test_programs.hpp"

namespace saga::bytecode {
namespace {

// Passes when `text` has a line that contains `needle`; prints the listing
// otherwise.
::testing::AssertionResult HasLine(const std::string& text, const std::string& needle) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (text.compare(start, end - start, needle) == 0 ||
        text.substr(start, end - start).find(needle) != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
    start = end + 1;
  }
  return ::testing::AssertionFailure() << "no line contains '" << needle << "' in:\n" << text;
}

// The pc of the first instruction with opcode `op` at or after `from`.
uint32_t find_op(const Program& p, Op op, uint32_t from = 0) {
  Instruction in;
  for (uint32_t pc = 0; pc < p.code.size() && decode(p.code, pc, in); pc += in.size) {
    if (pc >= from && in.op == op) return pc;
  }
  return kNone;
}

class Disasm : public ::testing::Test {
 protected:
  void SetUp() override {
    program_ = test::order_program();
    serialize(program_);  // Fills in the hash.
    listing_ = disassemble(program_);
  }
  Program program_;
  std::string listing_;
};

TEST_F(Disasm, HeaderAndTables) {
  EXPECT_TRUE(
      HasLine(listing_, "; program order.saga  hash " + program_.hash_hex() + "  format 1"));
  EXPECT_TRUE(HasLine(listing_, "; functions: len"));
  // Services, with durations written as in the language, and routes.
  EXPECT_TRUE(HasLine(listing_, "; inventory  http://127.0.0.1:8081  2s"));
  EXPECT_TRUE(HasLine(listing_, "http://127.0.0.1:8082  3s       5/30s/2  16"));
  EXPECT_TRUE(HasLine(listing_, "; shipping   (host)"));
  EXPECT_TRUE(HasLine(listing_, ";   inventory.release = DELETE \"/reservations/${id}\""));
  // Policies.
  EXPECT_TRUE(HasLine(
      listing_,
      "; standard  4         exponential(200ms, x2, max 5s)  full    [timeout, unavailable]"));
  EXPECT_TRUE(HasLine(listing_, "; #1        3         fixed(1s)"));
  EXPECT_TRUE(HasLine(listing_, "linear(1s, +500ms, max 3s)"));
  // Steps.
  EXPECT_TRUE(HasLine(listing_,
                      "; reserve  0  order_fulfillment  inventory.reserve  inventory.release  "
                      "reservation  2s       standard  9:3"));
  EXPECT_TRUE(HasLine(listing_,
                      "; say      2  ping               log                -                  -    "
                      "        -        #2        26:3"));
}

TEST_F(Disasm, SagaSignatureAndSlots) {
  EXPECT_TRUE(HasLine(listing_,
                      "saga order_fulfillment(order_id: string, customer: string, amount: number, "
                      "items: list)  deadline=10m  slots=7  entry=0000"));
  EXPECT_TRUE(HasLine(
      listing_,
      "  ; slots: 0 order_id, 1 customer, 2 amount, 3 items, 4 reservation, 5 receipt, 6 express"));
  EXPECT_TRUE(HasLine(listing_, "saga ping(target)  slots=1"));
}

TEST_F(Disasm, SourceLinesAndOperands) {
  EXPECT_TRUE(HasLine(listing_,
                      "  ; order.saga:10 |     do      inventory.reserve(order: order_id, items: "
                      "items) -> reservation"));
  EXPECT_TRUE(HasLine(listing_, "  0000  OBJECT"));
  EXPECT_TRUE(HasLine(listing_, "  0001  LOAD          0                 ; order_id"));
  EXPECT_TRUE(HasLine(listing_, "SET_FIELD     "));
  EXPECT_TRUE(HasLine(listing_, "; \"order\""));
  uint32_t invoke = find_op(program_, Op::INVOKE);
  EXPECT_TRUE(HasLine(
      listing_,
      fmt::format("  {:04}  INVOKE        0                 ; step reserve: inventory.reserve",
                  invoke)));
  uint32_t call = find_op(program_, Op::CALL);
  EXPECT_TRUE(
      HasLine(listing_, fmt::format("  {:04}  CALL          0, 1              ; len()", call)));
  EXPECT_TRUE(HasLine(listing_, "; \"rejected\""));
  EXPECT_TRUE(HasLine(listing_, "; 100"));
}

TEST_F(Disasm, JumpsShowTheirTarget) {
  uint32_t jif = find_op(program_, Op::JUMP_IF_FALSE);
  Instruction in;
  ASSERT_TRUE(decode(program_.code, jif, in));
  uint32_t target = jif + in.size + static_cast<uint32_t>(in.jump());
  EXPECT_EQ(program_.code[target], static_cast<uint8_t>(Op::PUSH_FALSE));
  EXPECT_TRUE(HasLine(listing_, fmt::format("  {:04}  JUMP_IF_FALSE -> {:04}", jif, target)));
  EXPECT_TRUE(HasLine(listing_, fmt::format("  {:04}  PUSH_FALSE", target)));
}

TEST_F(Disasm, UndoBlocksFollowTheirSaga) {
  EXPECT_TRUE(HasLine(listing_, "undo of step reserve (inventory.release)"));
  EXPECT_TRUE(HasLine(listing_, "undo of step charge (payment.refund)"));
  EXPECT_TRUE(HasLine(
      listing_, "  ; order.saga:11 |     undo    inventory.release(reservation: reservation.id)"));
  EXPECT_TRUE(
      HasLine(listing_, "UNDO          0                 ; step reserve: inventory.release"));
  EXPECT_TRUE(HasLine(listing_, "; \" cancelled\""));
  size_t saga = listing_.find("saga order_fulfillment(");
  size_t undo = listing_.find("undo of step reserve");
  size_t ping = listing_.find("saga ping(");
  EXPECT_LT(saga, undo);
  EXPECT_LT(undo, ping);
}

TEST_F(Disasm, EveryInstructionIsListedOnce) {
  Instruction in;
  for (uint32_t pc = 0; pc < program_.code.size(); pc += in.size) {
    ASSERT_TRUE(decode(program_.code, pc, in));
    std::string prefix = fmt::format("\n  {:04}  {}", pc, op_info(in.op).name);
    size_t first = listing_.find(prefix);
    EXPECT_NE(first, std::string::npos) << "pc " << pc;
    EXPECT_EQ(listing_.find(prefix, first + 1), std::string::npos) << "pc " << pc;
  }
  EXPECT_EQ(listing_.find("unreachable"), std::string::npos);
}

TEST(DisasmNoSource, LinesWithoutSourceText) {
  Program p = test::order_program();
  p.source_text.clear();
  std::string listing = disassemble(p);
  EXPECT_NE(listing.find("\n  ; order.saga:10\n"), std::string::npos) << listing;
  EXPECT_EQ(listing.find(" | "), std::string::npos);
}

TEST(DisasmNoSource, ConstantsAreJsonLiterals) {
  Program p;
  p.source_name = "k.saga";
  Constant s;
  s.kind = Constant::Kind::String;
  s.string = "tab\there \"q\" \\ \x01";
  p.constants = {s};
  Saga saga;
  saga.name = "k";
  p.sagas = {saga};
  p.code = {static_cast<uint8_t>(Op::CONST), 0, 0, 0, 0, static_cast<uint8_t>(Op::COMPLETE)};
  std::string listing = disassemble(p);
  EXPECT_TRUE(HasLine(listing, "; \"tab\\there \\\"q\\\" \\\\ \\u0001\"")) << listing;
}

TEST(DisasmRobustness, BrokenProgramsDoNotCrash) {
  // Out-of-range indexes everywhere, a jump outside the code and bytes that
  // do not decode: the listing says so instead of crashing.
  Program p;
  p.source_name = "bad.saga";
  p.source_text = "only one line";
  Saga saga;
  saga.name = "bad";
  saga.entry_pc = 0;
  Saga lost;
  lost.name = "lost";
  lost.entry_pc = 999;
  p.sagas = {saga, lost};
  p.steps.push_back({"s", 7, 9, 9, 40, 12, 0, 5, 0, 0});
  p.lines = {{0, 50, 1}};
  p.code = {static_cast<uint8_t>(Op::LOAD),
            9,
            0,
            static_cast<uint8_t>(Op::CONST),
            9,
            0,
            0,
            0,
            static_cast<uint8_t>(Op::INVOKE),
            9,
            0,
            0,
            0,
            static_cast<uint8_t>(Op::CALL),
            9,
            0,
            0,
            0,
            1,
            0,
            static_cast<uint8_t>(Op::JUMP),
            0,
            0,
            0,
            0x80,
            0xEE,
            0xEF};
  std::string listing = disassemble(p);
  EXPECT_TRUE(HasLine(listing, "; <slot 9?>"));
  EXPECT_TRUE(HasLine(listing, "; <constant 9?>"));
  EXPECT_TRUE(HasLine(listing, "; <step 9?>"));
  EXPECT_TRUE(HasLine(listing, "; <function 9?>"));
  EXPECT_TRUE(HasLine(listing, "  ; entry pc 999 is not an instruction"));
  EXPECT_TRUE(HasLine(listing, "; undecodable bytes from pc 25: ee ef"));
  EXPECT_TRUE(HasLine(listing, "undo of step s (<action 9?>)"));
  EXPECT_NE(listing.find("  ; bad.saga:50\n"), std::string::npos) << listing;

  Program empty;
  EXPECT_FALSE(disassemble(empty).empty());
}

TEST(DisasmRobustness, RandomCodeDoesNotCrashTheVerifierOrTheDisassembler) {
  // The order program's tables with random code (fixed seed): verify() must
  // answer and disassemble() must list whatever is there. Most of these are
  // refused; the point is that nothing reads out of bounds (run under ASan).
  const Program base = test::order_program();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), small(0, 40), length(1, 96);
  for (int round = 0; round < 2000; ++round) {
    Program p = base;
    p.code.resize(static_cast<size_t>(length(rng)));
    for (uint8_t& b : p.code) {
      // Mostly valid opcodes and small operands, so that paths get long.
      b = static_cast<uint8_t>(round % 2 ? byte(rng) : small(rng));
    }
    p.sagas[0].entry_pc = 0;
    p.sagas[1].entry_pc = static_cast<uint32_t>(small(rng));
    p.steps[0].undo_pc = static_cast<uint32_t>(small(rng));
    Status s = verify(p);
    if (!s.ok()) {
      EXPECT_FALSE(s.message().empty());
    }
    EXPECT_FALSE(disassemble(p).empty());
  }
}

}  // namespace
}  // namespace saga::bytecode
