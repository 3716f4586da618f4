// Code-shape tests: small sources compile to the expected opcode sequences
// (in the spirit of Lua's code.lua), and the samples compile cleanly.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "compiler/compile.hpp"
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

}  // namespace
