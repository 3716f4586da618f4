// Code-shape tests: small sources compile to the expected opcode sequences
// (in the spirit of Lua's code.lua), and the samples compile cleanly.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "compiler/compile.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/bytecode/program.hpp"

namespace {

using saga::bytecode::Op;

std::optional<saga::bytecode::Program> compile(const std::string& text,
                                               std::string* errors = nullptr) {
  saga::SourceFile source("t.saga", text);
  saga::Diagnostics diags(source);
  auto program = saga::compiler::compile(source, diags);
  if (errors) *errors = diags.render_text();
  return program;
}

// The opcode names from pc `from` up to (not including) pc `to`.
std::vector<std::string> ops(const saga::bytecode::Program& p, uint32_t from, uint32_t to) {
  std::vector<std::string> out;
  saga::bytecode::Instruction ins;
  for (uint32_t pc = from; pc < to && saga::bytecode::decode(p.code, pc, ins); pc += ins.size) {
    out.emplace_back(saga::bytecode::op_info(ins.op).name);
  }
  return out;
}

using Names = std::vector<std::string>;

TEST(Codegen, LetAndOutput) {
  auto p = compile("saga s(a: number) { let b = a * 2 + 1  output b }");
  ASSERT_TRUE(p);
  EXPECT_EQ(ops(*p, 0, p->code.size()),
            (Names{"LOAD", "CONST", "MUL", "CONST", "ADD", "STORE", "LOAD", "COMPLETE"}));
  EXPECT_EQ(p->sagas[0].slot_names, (Names{"a", "b"}));
}

TEST(Codegen, StepWithUndoBlock) {
  std::string errors;
  auto p = compile(
      "service inv { url \"http://127.0.0.1:1\" }\n"
      "saga s(o: string) { step r { do inv.reserve(order: o) -> res undo inv.release(id: res.id) } "
      "}",
      &errors);
  ASSERT_TRUE(p) << errors;
  ASSERT_EQ(p->steps.size(), 1u);
  const auto& step = p->steps[0];
  EXPECT_EQ(p->actions[step.action].name, "inv.reserve");
  EXPECT_EQ(p->actions[step.action].service, 0u);
  EXPECT_EQ(p->actions[step.undo_action].name, "inv.release");
  EXPECT_EQ(step.result_slot, 1u);
  EXPECT_EQ(ops(*p, 0, step.undo_pc),
            (Names{"OBJECT", "LOAD", "SET_FIELD", "INVOKE", "STORE", "PUSH_NULL", "COMPLETE"}));
  EXPECT_EQ(ops(*p, step.undo_pc, p->code.size()),
            (Names{"OBJECT", "LOAD", "FIELD", "SET_FIELD", "UNDO", "RETURN"}));
}

TEST(Codegen, ShortCircuitPushesOneBoolean) {
  auto p = compile("saga s(a: bool, b: bool) { output a and b }");
  ASSERT_TRUE(p);
  EXPECT_EQ(ops(*p, 0, p->code.size()), (Names{"LOAD", "JUMP_IF_FALSE", "LOAD", "JUMP_IF_FALSE",
                                               "PUSH_TRUE", "JUMP", "PUSH_FALSE", "COMPLETE"}));
}

TEST(Codegen, IfElseBindsOnBothPaths) {
  std::string errors;
  auto p = compile("saga s(c: bool) { if c { let x = 1 } else { let x = 2 }  output x }", &errors);
  ASSERT_TRUE(p) << errors;
  EXPECT_EQ(ops(*p, 0, p->code.size()), (Names{"LOAD", "JUMP_IF_FALSE", "CONST", "STORE", "JUMP",
                                               "CONST", "STORE", "LOAD", "COMPLETE"}));
}

TEST(Codegen, FailUsesClassConstant) {
  auto p = compile("saga s() { fail rejected \"no ${1 + 1}\" }");
  ASSERT_TRUE(p);
  EXPECT_EQ(ops(*p, 0, p->code.size()),
            (Names{"CONST", "CONST", "CONST", "ADD", "CONCAT", "FAIL"}));
  saga::bytecode::Instruction ins;
  uint32_t pc = 0;
  while (saga::bytecode::decode(p->code, pc, ins) && ins.op != Op::FAIL) pc += ins.size;
  EXPECT_EQ(p->constants[ins.a].string, "rejected");
}

TEST(Codegen, PoliciesAndServicesAreResolved) {
  std::string errors;
  auto p = compile(
      "service pay { url \"http://127.0.0.1:2/\" timeout 3s breaker { failures: 5, reset: 30s, "
      "probes: 2 } bulkhead 16 op refund = POST \"/refunds/${id}\" }\n"
      "retry std { attempts: 4, backoff: exponential(200ms, 2.0, 5s), jitter: full, on: [timeout] "
      "}\n"
      "saga s() { deadline 10m step c { do pay.charge() undo pay.refund(id: 1) retry std timeout "
      "2s }\n"
      "  step d { do pay.charge() undo pay.refund(id: 2) retry { attempts: 2, backoff: linear(1s, "
      "2s) } } }",
      &errors);
  ASSERT_TRUE(p) << errors;
  ASSERT_EQ(p->services.size(), 1u);
  const auto& svc = p->services[0];
  EXPECT_EQ(svc.url, "http://127.0.0.1:2");
  EXPECT_EQ(svc.timeout_ms, 3000u);
  EXPECT_EQ(svc.breaker_failures, 5u);
  EXPECT_EQ(svc.breaker_reset_ms, 30000u);
  EXPECT_EQ(svc.breaker_probes, 2u);
  EXPECT_EQ(svc.bulkhead, 16u);
  ASSERT_EQ(svc.routes.size(), 1u);
  EXPECT_EQ(svc.routes[0].path, "/refunds/${id}");
  ASSERT_EQ(p->policies.size(), 2u);
  const auto& std_policy = p->policies[p->steps[0].retry];
  EXPECT_EQ(std_policy.name, "std");
  EXPECT_EQ(std_policy.attempts, 4u);
  EXPECT_EQ(std_policy.backoff, saga::bytecode::Backoff::Exponential);
  EXPECT_EQ(std_policy.initial_ms, 200u);
  EXPECT_DOUBLE_EQ(std_policy.factor, 2.0);
  EXPECT_EQ(std_policy.max_ms, 5000u);
  EXPECT_EQ(std_policy.jitter, saga::bytecode::Jitter::Full);
  EXPECT_EQ(std_policy.retry_on, (Names{"timeout"}));
  const auto& inline_policy = p->policies[p->steps[1].retry];
  EXPECT_EQ(inline_policy.backoff, saga::bytecode::Backoff::Linear);
  EXPECT_EQ(inline_policy.step_ms, 2000u);
  EXPECT_EQ(p->steps[0].timeout_ms, 2000u);
  EXPECT_EQ(p->sagas[0].deadline_ms, 600000u);
}

// --- parallel blocks and foreach loops -----------------------------------------

using saga::bytecode::Block;
using saga::bytecode::kNone;

// The program the runtime's checkpoint tests run (tests/runtime/checkpoint_test.cpp).
constexpr const char* kParallel = R"(
service s { }
saga q(items: list) {
  step first { do s.a() -> f  undo s.undo(id: f) }
  parallel {
    branch left { step l { do s.l() -> x  undo s.undo(id: x) } }
    branch right { step r { do s.r() -> y } }
  }
  output [x, y]
}
)";

// The pc of the first instruction `op` at or after `from`.
uint32_t find_op(const saga::bytecode::Program& p, Op op, uint32_t from = 0) {
  saga::bytecode::Instruction ins;
  for (uint32_t pc = from; saga::bytecode::decode(p.code, pc, ins); pc += ins.size) {
    if (ins.op == op) return pc;
  }
  return kNone;
}

// Operand a of the instruction at pc.
uint32_t operand(const saga::bytecode::Program& p, uint32_t pc) {
  saga::bytecode::Instruction ins;
  EXPECT_TRUE(saga::bytecode::decode(p.code, pc, ins));
  return ins.a;
}

// The opcodes of the region that starts at `from` up to and including the
// first instruction that ends it (END, FAIL, COMPLETE, RETURN).
Names region(const saga::bytecode::Program& p, uint32_t from) {
  Names out;
  saga::bytecode::Instruction ins;
  for (uint32_t pc = from; saga::bytecode::decode(p.code, pc, ins); pc += ins.size) {
    out.emplace_back(saga::bytecode::op_info(ins.op).name);
    if (saga::bytecode::op_info(ins.op).flags & saga::bytecode::kEnds) break;
  }
  return out;
}

TEST(Codegen, ParallelForksJoinsAndEndsEachBranch) {
  std::string errors;
  auto p = compile(kParallel, &errors);
  ASSERT_TRUE(p) << errors;
  EXPECT_EQ(region(*p, 0), (Names{"OBJECT", "INVOKE", "STORE", "PUSH_NULL", "FORK", "JOIN", "LOAD",
                                  "LOAD", "LIST", "COMPLETE"}));
  ASSERT_EQ(p->blocks.size(), 1u);
  const Block& b = p->blocks[0];
  EXPECT_EQ(b.kind, Block::Kind::Parallel);
  EXPECT_EQ(b.saga, 0u);
  EXPECT_EQ(b.item_slot, kNone);
  EXPECT_EQ(b.max, 1u);
  EXPECT_TRUE(b.collect.empty());
  EXPECT_EQ(b.line, 5u);
  EXPECT_EQ(b.column, 3u);
  ASSERT_EQ(b.branches.size(), 2u);
  EXPECT_EQ(b.branches[0].name, "left");
  EXPECT_EQ(b.branches[1].name, "right");
  // FORK and JOIN of block 0, and each branch is its own region ending in END 0.
  const uint32_t fork = find_op(*p, Op::FORK);
  EXPECT_EQ(operand(*p, fork), 0u);
  EXPECT_EQ(operand(*p, find_op(*p, Op::JOIN)), 0u);
  EXPECT_EQ(region(*p, b.branches[0].entry_pc), (Names{"OBJECT", "INVOKE", "STORE", "END"}));
  EXPECT_EQ(region(*p, b.branches[1].entry_pc), (Names{"OBJECT", "INVOKE", "STORE", "END"}));
  EXPECT_EQ(operand(*p, find_op(*p, Op::END, b.branches[1].entry_pc)), 0u);
  EXPECT_GT(b.branches[0].entry_pc, fork);  // After the saga's main code.
  // A branch binds the saga's own slots, which the code after the block reads.
  EXPECT_EQ(p->sagas[0].slot_names, (Names{"items", "f", "x", "y"}));
  EXPECT_EQ(p->steps[1].result_slot, 2u);
  EXPECT_EQ(p->steps[2].result_slot, 3u);
  // The undo of a step in a branch is an ordinary undo block.
  EXPECT_EQ(region(*p, p->steps[1].undo_pc),
            (Names{"OBJECT", "LOAD", "SET_FIELD", "UNDO", "RETURN"}));
}

TEST(Codegen, ForeachCollectsEveryNameTheBodyBinds) {
  std::string errors;
  auto p = compile(
      "service s { }\n"
      "saga p(items: list) {\n"
      "  parallel foreach item in items max 4 {\n"
      "    step reserve { do s.reserve(sku: item) -> r undo s.release(id: r) }\n"
      "    if r.ok { let note = item }\n"
      "  }\n"
      "  output { r: r, note: note }\n"
      "}",
      &errors);
  ASSERT_TRUE(p) << errors;
  // The list is popped by FORK; the code after the loop reads the list slots.
  EXPECT_EQ(region(*p, 0), (Names{"LOAD", "FORK", "JOIN", "OBJECT", "LOAD", "SET_FIELD", "LOAD",
                                  "SET_FIELD", "COMPLETE"}));
  const auto& names = p->sagas[0].slot_names;
  EXPECT_EQ(names, (Names{"items", "item", "r (each item)", "note (each item)", "r", "note"}));
  ASSERT_EQ(p->blocks.size(), 1u);
  const Block& b = p->blocks[0];
  EXPECT_EQ(b.kind, Block::Kind::Foreach);
  EXPECT_EQ(b.max, 4u);
  EXPECT_EQ(b.item_slot, 1u);
  ASSERT_EQ(b.branches.size(), 1u);
  EXPECT_EQ(b.branches[0].name, "item");
  EXPECT_EQ(b.collect, (std::vector<Block::Collect>{{2, 4}, {3, 5}}));
  // The body binds its own slots; its step's result and undo use them.
  EXPECT_EQ(p->steps[0].result_slot, 2u);
  EXPECT_EQ(operand(*p, find_op(*p, Op::LOAD, p->steps[0].undo_pc)), 2u);
  EXPECT_EQ(ops(*p, b.branches[0].entry_pc, p->steps[0].undo_pc),
            (Names{"OBJECT", "LOAD", "SET_FIELD", "INVOKE", "STORE", "LOAD", "FIELD",
                   "JUMP_IF_FALSE", "LOAD", "STORE", "JUMP", "END"}));
  EXPECT_EQ(operand(*p, b.branches[0].entry_pc + 1), 1u);  // LOAD item.
}

TEST(Codegen, ForeachMax) {
  auto max_of = [](const std::string& loop) {
    std::string errors;
    auto p = compile("saga m(xs: list) { " + loop + " { let v = x } }", &errors);
    EXPECT_TRUE(p) << errors;
    return p && p->blocks.size() == 1 ? p->blocks[0].max : kNone;
  };
  EXPECT_EQ(max_of("foreach x in xs"), 1u);           // One at a time.
  EXPECT_EQ(max_of("parallel foreach x in xs"), 0u);  // No limit.
  EXPECT_EQ(max_of("parallel foreach x in xs max 8"), 8u);
  EXPECT_EQ(max_of("parallel foreach x in xs max 10000"), 10000u);
}

TEST(Codegen, NestedBlocks) {
  std::string errors;
  auto p = compile(
      "service s { }\n"
      "saga n(orders: list) {\n"
      "  parallel {\n"
      "    branch items {\n"
      "      foreach o in orders {\n"
      "        foreach i in o.items { step pick { do s.pick(i: i) -> got undo s.put(id: got) } }\n"
      "      }\n"
      "    }\n"
      "    branch mail { parallel foreach o in orders { let sent = o } }\n"
      "  }\n"
      "  output [got, sent]\n"
      "}",
      &errors);
  ASSERT_TRUE(p) << errors;
  ASSERT_EQ(p->blocks.size(), 4u);
  // In the order they fork: the parallel, then the blocks each region forks.
  EXPECT_EQ(p->blocks[0].kind, Block::Kind::Parallel);
  EXPECT_EQ(p->blocks[1].branches[0].name, "o");  // Forked by branch items.
  EXPECT_EQ(p->blocks[2].branches[0].name, "o");  // Forked by branch mail.
  EXPECT_EQ(p->blocks[3].branches[0].name, "i");  // Forked by the body of block 1.
  EXPECT_EQ(p->blocks[2].max, 0u);
  // Branch items forks block 1 and ends block 0.
  const uint32_t items = p->blocks[0].branches[0].entry_pc;
  EXPECT_EQ(region(*p, items), (Names{"LOAD", "FORK", "JOIN", "END"}));
  EXPECT_EQ(operand(*p, find_op(*p, Op::FORK, items)), 1u);
  EXPECT_EQ(operand(*p, find_op(*p, Op::END, items)), 0u);
  // The body of block 1 forks block 3 over o.items and ends block 1.
  EXPECT_EQ(region(*p, p->blocks[1].branches[0].entry_pc),
            (Names{"LOAD", "FIELD", "FORK", "JOIN", "END"}));
  // got: per (o, i), then per o (in block 1's body), then the list of lists;
  // the branch binds the outer one, which is the saga's after the block.
  const auto& names = p->sagas[0].slot_names;
  auto slot = [&](const std::string& name) {
    return static_cast<uint32_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  EXPECT_EQ(p->blocks[3].collect,
            (std::vector<Block::Collect>{{slot("got (each o, i)"), slot("got (each o)")}}));
  EXPECT_EQ(p->blocks[1].collect,
            (std::vector<Block::Collect>{{slot("got (each o)"), slot("got")}}));
  EXPECT_EQ(p->blocks[2].collect,
            (std::vector<Block::Collect>{{slot("sent (each o)"), slot("sent")}}));
  EXPECT_EQ(p->steps[0].result_slot, slot("got (each o, i)"));
  // Two loop variables named o: one slot each.
  EXPECT_EQ(std::count(names.begin(), names.end(), "o"), 2);
  EXPECT_NE(p->blocks[1].item_slot, p->blocks[2].item_slot);
}

TEST(Codegen, ABranchThatAlwaysFailsHasNoEnd) {
  std::string errors;
  auto p = compile(
      "saga f() {\n"
      "  parallel { branch no { fail rejected \"never\" } branch yes { let v = 1 } }\n"
      "  output v\n"
      "}",
      &errors);
  ASSERT_TRUE(p) << errors;  // Verified: JOIN falls through into the code after it.
  EXPECT_EQ(region(*p, p->blocks[0].branches[0].entry_pc), (Names{"CONST", "FAIL"}));
  EXPECT_EQ(region(*p, p->blocks[0].branches[1].entry_pc), (Names{"CONST", "STORE", "END"}));
  EXPECT_EQ(region(*p, 0), (Names{"PUSH_NULL", "FORK", "JOIN", "LOAD", "COMPLETE"}));
  EXPECT_NE(errors.find("this statement is never reached"), std::string::npos) << errors;
}

TEST(Codegen, ContextWordsStayNames) {
  std::string errors;
  auto p = compile(
      "service parallel { }\n"
      "saga branch(foreach: list) {\n"
      "  let in = 1\n"
      "  step max { do parallel.branch(in: in) -> branch undo parallel.undo(id: branch) }\n"
      "  foreach parallel in foreach { let max_seen = parallel }\n"
      "  output [branch, max_seen]\n"
      "}",
      &errors);
  ASSERT_TRUE(p) << errors;
  EXPECT_EQ(p->steps[0].name, "max");
  EXPECT_EQ(p->blocks[0].branches[0].name, "parallel");
}

std::string slurp(const std::string& rel) {
  std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/" + rel);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Samples, OrderCompilesWithoutDiagnostics) {
  saga::SourceFile source("samples/order.saga", slurp("samples/order.saga"));
  saga::Diagnostics diags(source);
  auto p = saga::compiler::compile(source, diags);
  ASSERT_TRUE(p) << diags.render_text();
  EXPECT_EQ(diags.all().size(), 0u) << diags.render_text();
  ASSERT_EQ(p->sagas.size(), 1u);
  EXPECT_EQ(p->sagas[0].name, "order_fulfillment");
  EXPECT_EQ(p->steps.size(), 4u);
  EXPECT_EQ(p->sagas[0].deadline_ms, 600000u);
}

TEST(Samples, TravelCompilesWithoutDiagnostics) {
  saga::SourceFile source("samples/travel.saga", slurp("samples/travel.saga"));
  saga::Diagnostics diags(source);
  auto p = saga::compiler::compile(source, diags);
  ASSERT_TRUE(p) << diags.render_text();
  EXPECT_EQ(diags.all().size(), 0u) << diags.render_text();
  Names steps;
  for (const auto& s : p->steps) steps.push_back(s.name);
  EXPECT_EQ(steps, (Names{"flight", "hotel", "rental", "note"}));
}

// Triggers are lowered in the saga's parameter order of their arguments as
// written, stored in format 5 only, survive a write and a load, and are
// checked again by the loader.
TEST(Triggers, AreStoredInFormat5AndCheckedOnLoad) {
  const std::string saga =
      "saga pay(order: string, amount: number) { step s { do log(message: order) } }\n";
  auto plain = compile(saga);
  ASSERT_TRUE(plain);
  EXPECT_LT(saga::bytecode::format_version(*plain), 5);
  std::string errors;
  auto p = compile(saga +
                       "on shop.order-placed start pay(amount: event.data.total.net, "
                       "order: \"fixed\")\n",
                   &errors);
  ASSERT_TRUE(p) << errors;
  ASSERT_EQ(p->triggers.size(), 1u);
  const saga::bytecode::Trigger& t = p->triggers[0];
  EXPECT_EQ(t.type, "shop.order-placed");
  EXPECT_EQ(t.saga, 0u);
  EXPECT_EQ(t.line, 2u);
  ASSERT_EQ(t.args.size(), 2u);
  EXPECT_EQ(t.args[0], (saga::bytecode::TriggerArg{"amount", true, "data.total.net"}));
  EXPECT_EQ(t.args[1], (saga::bytecode::TriggerArg{"order", false, "\"fixed\""}));
  EXPECT_EQ(saga::bytecode::format_version(*p), 5);
  auto image = saga::bytecode::serialize(*p);
  auto loaded = saga::bytecode::load(image);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->triggers, p->triggers);
  EXPECT_NE(loaded->hash, plain->hash);

  // What the loader refuses, each a one-field change of a good trigger.
  auto refused = [&](auto change) {
    saga::bytecode::Program bad = *p;
    change(bad.triggers[0]);
    auto again = saga::bytecode::load(saga::bytecode::serialize(bad));
    EXPECT_FALSE(again.ok());
    return again.ok() ? std::string() : again.status().message();
  };
  EXPECT_NE(refused([](auto& tr) { tr.saga = 7; }).find("out of range"), std::string::npos);
  EXPECT_NE(refused([](auto& tr) { tr.args.pop_back(); }).find("arguments"), std::string::npos);
  EXPECT_NE(refused([](auto& tr) { tr.args[1].param = "amount"; }).find("values"),
            std::string::npos);
  EXPECT_NE(refused([](auto& tr) { tr.args[0].value = "dta.total"; }).find("invalid path"),
            std::string::npos);
  EXPECT_NE(refused([](auto& tr) { tr.args[0].value = "id.x"; }).find("invalid path"),
            std::string::npos);
  EXPECT_NE(refused([](auto& tr) { tr.args[1].value = "{nope"; }).find("invalid constant"),
            std::string::npos);
  EXPECT_NE(refused([](auto& tr) { tr.type = "a..b"; }).find("malformed event type"),
            std::string::npos);
}

}  // namespace

// A saga in the literature's shape (tests/compiler/pivot_ok.saga) compiles
// with no diagnostic, its steps carry their kinds through a .sagac (format
// 3), and its obligations leave out what is declared idempotent.
TEST(Codegen, StepKindsReachTheProgramAndTheFile) {
  std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/tests/compiler/pivot_ok.saga");
  std::stringstream text;
  text << in.rdbuf();
  saga::SourceFile source("pivot_ok.saga", text.str());
  saga::Diagnostics diags(source);
  std::vector<saga::compiler::Obligation> obligations;
  auto p = saga::compiler::compile(source, diags, {true, &obligations});
  ASSERT_TRUE(p) << diags.render_text();
  EXPECT_EQ(diags.render_text(), "");
  using saga::bytecode::StepKind;
  std::map<std::string, StepKind> kinds;
  for (const auto& s : p->steps) kinds[s.name] = s.kind;
  EXPECT_EQ(kinds["reserve"], StepKind::Plain);
  EXPECT_EQ(kinds["charge"], StepKind::Pivot);
  EXPECT_EQ(kinds["mail_customer"], StepKind::Retriable);
  EXPECT_EQ(kinds["ship"], StepKind::Retriable);
  EXPECT_EQ(saga::bytecode::format_version(*p), 3);

  auto image = saga::bytecode::serialize(*p);
  auto back = saga::bytecode::load(image);
  ASSERT_TRUE(back.ok()) << back.status().message();
  for (size_t i = 0; i < p->steps.size(); ++i)
    EXPECT_EQ(back.value().steps[i].kind, p->steps[i].kind);
  const auto ship = std::find_if(p->steps.begin(), p->steps.end(),
                                 [](const auto& s) { return s.name == "ship"; });
  ASSERT_NE(ship, p->steps.end());
  const auto& forever = back.value().policies[ship->retry];
  EXPECT_EQ(forever.attempts, saga::bytecode::kUnlimitedAttempts);
  EXPECT_TRUE(saga::bytecode::retries_every_class(forever));

  // inventory.release and all of mail are idempotent.
  std::vector<std::string> listed;
  for (const auto& o : obligations) listed.push_back(o.service + "." + o.op + " " + o.key);
  EXPECT_EQ(listed,
            (Names{"inventory.reserve <instance>/reserve", "payment.charge <instance>/charge",
                   "payment.settle <instance>/ship[i]"}));
  EXPECT_EQ(obligations[1].why, (Names{"retried: up to 3 attempts on unavailable",
                                       "in doubt: sent again after a crash"}));
}

// Without a step kind, unlimited attempts or `on: any`, a program is written
// in the format it had before, for older runtimes.
TEST(Codegen, AProgramWithoutStepKindsKeepsItsFormat) {
  auto p = compile("service s { } saga a() { step x { do s.x() undo s.y() } }");
  ASSERT_TRUE(p);
  EXPECT_EQ(saga::bytecode::format_version(*p), 1);
}

// emit: one EMIT of the type with its record, the program written as format
// 6 (older runtimes refuse it as newer); a type longer than an event type
// may be (256 bytes) is reported where it stands, as for triggers.
TEST(Codegen, Emit) {
  std::string errors;
  auto p = compile("saga s(n: number) { emit order.placed { n: n }  output n }", &errors);
  ASSERT_TRUE(p) << errors;
  EXPECT_EQ(ops(*p, 0, p->code.size()),
            (Names{"OBJECT", "LOAD", "SET_FIELD", "EMIT", "LOAD", "COMPLETE"}));
  EXPECT_TRUE(saga::bytecode::emits(*p));
  EXPECT_EQ(saga::bytecode::format_version(*p), 6);
  auto plain = compile("saga s(n: number) { output n }");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(saga::bytecode::emits(*plain));
  EXPECT_LT(saga::bytecode::format_version(*plain), 5);

  const std::string long_type = "order." + std::string(251, 'x');  // 257 bytes.
  EXPECT_FALSE(compile("saga s() { emit " + long_type + " { }  output 1 }", &errors));
  EXPECT_NE(errors.find("t.saga:1:17: error: malformed event type '" + long_type + "'"),
            std::string::npos)
      << errors;
}

// `await signal`: an await step (the built-in `signal`, no undo, its timeout
// shown on the step), its arguments, one AWAIT whose jump is 0 without an
// else block and reaches the else block with one; the variable is stored on
// both paths.
TEST(Codegen, AwaitSignal) {
  std::string errors;
  auto p = compile(
      "saga s() { await signal go timeout 2s -> v  output v }\n"
      "saga t() { await signal go timeout 2s -> v else { fail \"none\" }  output v }",
      &errors);
  ASSERT_TRUE(p) << errors;
  ASSERT_EQ(p->steps.size(), 2u);
  const auto& step = p->steps[0];
  EXPECT_EQ(step.name, "await go");
  EXPECT_EQ(p->actions[step.action].name, saga::bytecode::kSignalAction);
  EXPECT_EQ(step.undo_action, saga::bytecode::kNone);
  EXPECT_EQ(step.timeout_ms, 2000u);
  EXPECT_EQ(saga::bytecode::format_version(*p), 6);
  const uint32_t second = p->sagas[1].entry_pc;
  EXPECT_EQ(ops(*p, 0, second), (Names{"OBJECT", "CONST", "SET_FIELD", "CONST", "SET_FIELD",
                                       "AWAIT", "STORE", "LOAD", "COMPLETE"}));
  EXPECT_EQ(ops(*p, second, p->code.size()),
            (Names{"OBJECT", "CONST", "SET_FIELD", "CONST", "SET_FIELD", "AWAIT", "STORE", "JUMP",
                   "STORE", "CONST", "FAIL", "LOAD", "COMPLETE"}));
  saga::bytecode::Instruction in;
  uint32_t pc = 0;
  while (saga::bytecode::decode(p->code, pc, in) && in.op != saga::bytecode::Op::AWAIT) {
    pc += in.size;
  }
  EXPECT_EQ(in.jump(), 0) << "no else block: a timeout fails the step";
  pc = second;
  while (saga::bytecode::decode(p->code, pc, in) && in.op != saga::bytecode::Op::AWAIT) {
    pc += in.size;
  }
  saga::bytecode::Instruction at_else;
  ASSERT_TRUE(saga::bytecode::decode(p->code, pc + in.size + in.jump(), at_else));
  EXPECT_EQ(at_else.op, saga::bytecode::Op::STORE) << "the else path stores null, then its block";
  EXPECT_EQ(in.b, 1u);
}

// `await event T1, T2 where ...`: the await of the signal "event:T1,T2", its
// argument object with `where` built from the values (each read when the
// await begins) under their paths; the step is named after the types.
TEST(Codegen, AwaitEvent) {
  std::string errors;
  auto p = compile(
      "saga s(id: string) { await event pay.ok, pay.failed where event.data.order == id and "
      "\"/pay\" == event.source timeout 10m -> paid  output paid }",
      &errors);
  ASSERT_TRUE(p) << errors;
  ASSERT_EQ(p->steps.size(), 1u);
  EXPECT_EQ(p->steps[0].name, "await event pay.ok,pay.failed");
  EXPECT_EQ(p->actions[p->steps[0].action].name, saga::bytecode::kSignalAction);
  EXPECT_EQ(p->steps[0].timeout_ms, 600'000u);
  EXPECT_EQ(
      ops(*p, 0, p->code.size()),
      (Names{"OBJECT", "CONST", "SET_FIELD", "OBJECT", "LOAD", "SET_FIELD", "CONST", "SET_FIELD",
             "SET_FIELD", "CONST", "SET_FIELD", "AWAIT", "STORE", "LOAD", "COMPLETE"}));
  std::vector<std::string> strings;
  for (const auto& c : p->constants) {
    if (c.kind == saga::bytecode::Constant::Kind::String) strings.push_back(c.string);
  }
  for (const char* want : {"event:pay.ok,pay.failed", "where", "data.order", "source", "/pay"}) {
    EXPECT_NE(std::find(strings.begin(), strings.end(), want), strings.end()) << want;
  }
}
