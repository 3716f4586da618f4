// Shared fixtures for the bytecode tests; see test_programs.hpp.
#include "tests/bytecode/test_programs.hpp"

#include <gtest/gtest.h>
#include <cstring>

#include "runtime/bytecode/assembler.hpp"

namespace saga::bytecode::test {

// Line 1 is the comment; the saga starts on line 7, step reserve on line 9,
// step charge on line 15, saga ping on line 25.
const char* const kOrderSource = R"saga(// Test program: an order across two services.
service inventory { url "http://127.0.0.1:8081"  timeout 2s
  op reserve = POST "/reservations"  op release = DELETE "/reservations/${id}" }
service payment { url "http://127.0.0.1:8082"  timeout 3s  breaker { failures: 5, reset: 30s, probes: 2 }  bulkhead 16 }
retry standard { attempts: 4, backoff: exponential(200ms, 2.0, 5s), jitter: full, on: [timeout, unavailable] }

saga order_fulfillment(order_id: string, customer: string, amount: number, items: list) {
  deadline 10m
  step reserve {
    do      inventory.reserve(order: order_id, items: items) -> reservation
    undo    inventory.release(reservation: reservation.id)
    timeout 2s
    retry   standard
  }
  step charge {
    do      payment.charge(customer: customer, amount: amount, currency: "EUR") -> receipt
    undo    payment.refund(payment: receipt.id, reason: "order ${order_id} cancelled")
    retry   { attempts: 3, backoff: fixed(1s), on: [unavailable] }
  }
  let express = amount > 100 and len(items) <= 3
  if receipt == null { fail rejected "no receipt for ${order_id}" }
  output { order: order_id, receipt: receipt.id, express: express }
}

saga ping(target) {
  step say { do log(message: target)  retry { attempts: 2, backoff: linear(1s, 500ms, 3s) } }
}
)saga";

Program order_program() {
  Program p;
  p.source_name = "order.saga";
  p.source_text = kOrderSource;
  Assembler a(p);

  // Services, policies and actions, as the compiler's declaration pass would
  // register them.
  Service inventory;
  inventory.name = "inventory";
  inventory.url = "http://127.0.0.1:8081";
  inventory.timeout_ms = 2000;
  inventory.routes = {{"reserve", "POST", "/reservations"},
                      {"release", "DELETE", "/reservations/${id}"}};
  Service payment;
  payment.name = "payment";
  payment.url = "http://127.0.0.1:8082";
  payment.timeout_ms = 3000;
  payment.breaker_failures = 5;
  payment.breaker_reset_ms = 30000;
  payment.breaker_probes = 2;
  payment.bulkhead = 16;
  Service shipping;  // Host-provided: no url.
  shipping.name = "shipping";
  p.services = {inventory, payment, shipping};

  RetryPolicy standard;
  standard.name = "standard";
  standard.attempts = 4;
  standard.backoff = Backoff::Exponential;
  standard.initial_ms = 200;
  standard.factor = 2.0;
  standard.max_ms = 5000;
  standard.jitter = Jitter::Full;
  standard.retry_on = {"timeout", "unavailable"};
  RetryPolicy inline_fixed;
  inline_fixed.attempts = 3;
  inline_fixed.backoff = Backoff::Fixed;
  inline_fixed.initial_ms = 1000;
  inline_fixed.retry_on = {"unavailable"};
  RetryPolicy inline_linear;
  inline_linear.attempts = 2;
  inline_linear.backoff = Backoff::Linear;
  inline_linear.initial_ms = 1000;
  inline_linear.step_ms = 500;
  inline_linear.max_ms = 3000;
  inline_linear.jitter = Jitter::Equal;
  p.policies = {standard, inline_fixed, inline_linear};

  uint32_t reserve = a.action("inventory.reserve", 0);
  uint32_t release = a.action("inventory.release", 0);
  uint32_t charge = a.action("payment.charge", 1);
  uint32_t refund = a.action("payment.refund", 1);
  uint32_t log = a.action("log", kNoService);

  // Constants of every kind, some used only by the pool.
  Constant null_constant;
  a.constant(null_constant);
  Constant true_constant;
  true_constant.kind = Constant::Kind::Bool;
  true_constant.boolean = true;
  a.constant(true_constant);
  Constant false_constant = true_constant;
  false_constant.boolean = false;
  a.constant(false_constant);
  a.number(-0.5);
  a.number(1e300);
  a.string("tab\there, \"quoted\"\nand a newline");

  Saga order;
  order.name = "order_fulfillment";
  order.params = {{"order_id", Type::String},
                  {"customer", Type::String},
                  {"amount", Type::Number},
                  {"items", Type::List}};
  order.slot_names = {"order_id",    "customer", "amount", "items",
                      "reservation", "receipt",  "express"};
  order.deadline_ms = 600000;
  order.line = 7;
  order.column = 1;
  order.entry_pc = a.pc();
  p.sagas.push_back(order);

  Step s_reserve{"reserve", 0, reserve, release, kNone, 4, 2000, 0, 9, 3};
  Step s_charge{"charge", 0, charge, refund, kNone, 5, 0, 1, 15, 3};
  Step s_say{"say", 1, log, kNone, kNone, kNone, 0, 2, 26, 3};
  p.steps = {s_reserve, s_charge, s_say};

  // step reserve
  a.at(10, 5);
  a.emit(Op::OBJECT);
  a.emit(Op::LOAD, 0);
  a.emit(Op::SET_FIELD, a.string("order"));
  a.emit(Op::LOAD, 3);
  a.emit(Op::SET_FIELD, a.string("items"));
  a.emit(Op::INVOKE, 0);
  a.emit(Op::STORE, 4);
  // step charge
  a.at(16, 5);
  a.emit(Op::OBJECT);
  a.emit(Op::LOAD, 1);
  a.emit(Op::SET_FIELD, a.string("customer"));
  a.emit(Op::LOAD, 2);
  a.emit(Op::SET_FIELD, a.string("amount"));
  a.emit(Op::CONST, a.string("EUR"));
  a.emit(Op::SET_FIELD, a.string("currency"));
  a.emit(Op::INVOKE, 1);
  a.emit(Op::STORE, 5);
  // let express = amount > 100 and len(items) <= 3
  a.at(20, 3);
  Assembler::Label is_false = a.make_label(), joined = a.make_label();
  a.emit(Op::LOAD, 2);
  a.emit(Op::CONST, a.number(100));
  a.emit(Op::GT);
  a.emit_jump(Op::JUMP_IF_FALSE, is_false);
  a.emit(Op::LOAD, 3);
  a.emit(Op::CALL, a.function("len"), 1);
  a.emit(Op::CONST, a.number(3));
  a.emit(Op::LE);
  a.emit_jump(Op::JUMP, joined);
  a.bind(is_false);
  a.emit(Op::PUSH_FALSE);
  a.bind(joined);
  a.emit(Op::STORE, 6);
  // if receipt == null { fail rejected "..." }
  a.at(21, 3);
  Assembler::Label ok = a.make_label();
  a.emit(Op::LOAD, 5);
  a.emit(Op::PUSH_NULL);
  a.emit(Op::EQ);
  a.emit_jump(Op::JUMP_IF_FALSE, ok);
  a.emit(Op::CONST, a.string("no receipt for "));
  a.emit(Op::LOAD, 0);
  a.emit(Op::CONCAT, 2);
  a.emit(Op::FAIL, a.string("rejected"));
  a.bind(ok);
  // output { ... }
  a.at(22, 3);
  a.emit(Op::OBJECT);
  a.emit(Op::LOAD, 0);
  a.emit(Op::SET_FIELD, a.string("order"));
  a.emit(Op::LOAD, 5);
  a.emit(Op::FIELD, a.string("id"));
  a.emit(Op::SET_FIELD, a.string("receipt"));
  a.emit(Op::LOAD, 6);
  a.emit(Op::SET_FIELD, a.string("express"));
  a.emit(Op::COMPLETE);

  // Undo blocks after the saga's code.
  a.at(11, 5);
  p.steps[0].undo_pc = a.pc();
  a.emit(Op::OBJECT);
  a.emit(Op::LOAD, 4);
  a.emit(Op::FIELD, a.string("id"));
  a.emit(Op::SET_FIELD, a.string("reservation"));
  a.emit(Op::UNDO, 0);
  a.emit(Op::RETURN);
  a.at(17, 5);
  p.steps[1].undo_pc = a.pc();
  a.emit(Op::OBJECT);
  a.emit(Op::LOAD, 5);
  a.emit(Op::FIELD, a.string("id"));
  a.emit(Op::SET_FIELD, a.string("payment"));
  a.emit(Op::CONST, a.string("order "));
  a.emit(Op::LOAD, 0);
  a.emit(Op::CONST, a.string(" cancelled"));
  a.emit(Op::CONCAT, 3);
  a.emit(Op::SET_FIELD, a.string("reason"));
  a.emit(Op::UNDO, 1);
  a.emit(Op::RETURN);

  // saga ping(target): a parameter without a type.
  Saga ping;
  ping.name = "ping";
  ping.params = {{"target", Type::Any}};
  ping.slot_names = {"target"};
  ping.line = 25;
  ping.column = 1;
  ping.entry_pc = a.pc();
  p.sagas.push_back(ping);
  a.at(26, 10);
  a.emit(Op::OBJECT);
  a.emit(Op::LOAD, 0);
  a.emit(Op::SET_FIELD, a.string("message"));
  a.emit(Op::INVOKE, 2);
  a.emit(Op::POP);
  a.at(27, 1);
  a.emit(Op::PUSH_NULL);
  a.emit(Op::COMPLETE);

  a.finish();
  return p;
}

namespace {

uint64_t bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}

}  // namespace

void expect_same_program(const Program& e, const Program& a) {
  EXPECT_EQ(e.source_name, a.source_name);
  EXPECT_EQ(e.source_text, a.source_text);

  ASSERT_EQ(e.constants.size(), a.constants.size());
  for (size_t i = 0; i < e.constants.size(); ++i) {
    SCOPED_TRACE("constant " + std::to_string(i));
    EXPECT_EQ(e.constants[i].kind, a.constants[i].kind);
    EXPECT_EQ(e.constants[i].boolean, a.constants[i].boolean);
    EXPECT_EQ(bits(e.constants[i].number), bits(a.constants[i].number));
    EXPECT_EQ(e.constants[i].string, a.constants[i].string);
  }

  EXPECT_EQ(e.functions, a.functions);

  ASSERT_EQ(e.actions.size(), a.actions.size());
  for (size_t i = 0; i < e.actions.size(); ++i) {
    SCOPED_TRACE("action " + std::to_string(i));
    EXPECT_EQ(e.actions[i].name, a.actions[i].name);
    EXPECT_EQ(e.actions[i].service, a.actions[i].service);
  }

  ASSERT_EQ(e.policies.size(), a.policies.size());
  for (size_t i = 0; i < e.policies.size(); ++i) {
    SCOPED_TRACE("policy " + std::to_string(i));
    const RetryPolicy &x = e.policies[i], &y = a.policies[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.attempts, y.attempts);
    EXPECT_EQ(x.backoff, y.backoff);
    EXPECT_EQ(x.initial_ms, y.initial_ms);
    EXPECT_EQ(bits(x.factor), bits(y.factor));
    EXPECT_EQ(x.step_ms, y.step_ms);
    EXPECT_EQ(x.max_ms, y.max_ms);
    EXPECT_EQ(x.jitter, y.jitter);
    EXPECT_EQ(x.retry_on, y.retry_on);
  }

  ASSERT_EQ(e.services.size(), a.services.size());
  for (size_t i = 0; i < e.services.size(); ++i) {
    SCOPED_TRACE("service " + std::to_string(i));
    const Service &x = e.services[i], &y = a.services[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.url, y.url);
    EXPECT_EQ(x.timeout_ms, y.timeout_ms);
    EXPECT_EQ(x.breaker_failures, y.breaker_failures);
    EXPECT_EQ(x.breaker_reset_ms, y.breaker_reset_ms);
    EXPECT_EQ(x.breaker_probes, y.breaker_probes);
    EXPECT_EQ(x.bulkhead, y.bulkhead);
    ASSERT_EQ(x.routes.size(), y.routes.size());
    for (size_t j = 0; j < x.routes.size(); ++j) {
      EXPECT_EQ(x.routes[j].op, y.routes[j].op);
      EXPECT_EQ(x.routes[j].method, y.routes[j].method);
      EXPECT_EQ(x.routes[j].path, y.routes[j].path);
    }
  }

  ASSERT_EQ(e.steps.size(), a.steps.size());
  for (size_t i = 0; i < e.steps.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    const Step &x = e.steps[i], &y = a.steps[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.saga, y.saga);
    EXPECT_EQ(x.action, y.action);
    EXPECT_EQ(x.undo_action, y.undo_action);
    EXPECT_EQ(x.undo_pc, y.undo_pc);
    EXPECT_EQ(x.undo_retry, y.undo_retry);
    EXPECT_EQ(x.result_slot, y.result_slot);
    EXPECT_EQ(x.timeout_ms, y.timeout_ms);
    EXPECT_EQ(x.retry, y.retry);
    EXPECT_EQ(x.line, y.line);
    EXPECT_EQ(x.column, y.column);
    EXPECT_EQ(x.kind, y.kind);
  }

  ASSERT_EQ(e.sagas.size(), a.sagas.size());
  for (size_t i = 0; i < e.sagas.size(); ++i) {
    SCOPED_TRACE("saga " + std::to_string(i));
    const Saga &x = e.sagas[i], &y = a.sagas[i];
    EXPECT_EQ(x.name, y.name);
    ASSERT_EQ(x.params.size(), y.params.size());
    for (size_t j = 0; j < x.params.size(); ++j) {
      EXPECT_EQ(x.params[j].name, y.params[j].name);
      EXPECT_EQ(x.params[j].type, y.params[j].type);
    }
    EXPECT_EQ(x.slot_names, y.slot_names);
    EXPECT_EQ(x.entry_pc, y.entry_pc);
    EXPECT_EQ(x.deadline_ms, y.deadline_ms);
    EXPECT_EQ(x.line, y.line);
    EXPECT_EQ(x.column, y.column);
  }

  EXPECT_EQ(e.code, a.code);

  ASSERT_EQ(e.lines.size(), a.lines.size());
  for (size_t i = 0; i < e.lines.size(); ++i) {
    SCOPED_TRACE("line entry " + std::to_string(i));
    EXPECT_EQ(e.lines[i].pc, a.lines[i].pc);
    EXPECT_EQ(e.lines[i].line, a.lines[i].line);
    EXPECT_EQ(e.lines[i].column, a.lines[i].column);
  }
  EXPECT_EQ(e.hash, a.hash);
}

}  // namespace saga::bytecode::test
