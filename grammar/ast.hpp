// The abstract syntax tree of a .saga file: what the parser (grammar/parse.cpp)
// builds and the compiler (compiler/) checks and lowers to bytecode. Nodes keep
// byte-offset spans into the SourceFile, never line numbers. The tree owns its
// children through unique_ptr; nothing here depends on PEGTL.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grammar/source.hpp"

namespace saga::ast {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : uint8_t {
  Null,      // null
  Bool,      // true / false                        -> boolean
  Number,    // 42, 2.5, -1e3 (the minus is Unary)  -> number
  Duration,  // 200ms, 2s, 10m, 1h, 1d              -> number (milliseconds), text = "2s"
  String,    // "text" with no ${...}               -> text (escapes resolved)
  Interp,    // "a ${x} b": items alternate String pieces and expressions
  List,      // [a, b]                              -> items
  Object,    // { key: a, "other key": b }           -> keys[i] : items[i]
  Var,       // name                                -> text
  Field,     // items[0].text
  Index,     // items[0][items[1]]
  Unary,     // unary_op items[0]
  Binary,    // items[0] binary_op items[1]
  Call,      // text(items...)  a pure function call with positional arguments
};

enum class UnaryOp : uint8_t { Neg, Not };
enum class BinaryOp : uint8_t {
#define OPERATOR(name, spelling, opcode) name,
#include "grammar/operators.def"
#undef OPERATOR
};

// Source spelling of an operator, for diagnostics and the disassembler.
const char* to_string(BinaryOp op);

// The binary operator whose spelling is the longest prefix of `text` ("<="
// for "<= 3"), if any: how the parser reads an operator.
std::optional<BinaryOp> binary_op_at(std::string_view text);
const char* to_string(UnaryOp op);

struct Expr {
  ExprKind kind = ExprKind::Null;
  Span span;             // The whole expression.
  bool boolean = false;  // Bool.
  double number = 0;     // Number, Duration (milliseconds); infinite when out of range
                         // (the parser reported it).
  std::string text;      // String value, Var/Call/Field name, Duration spelling.
  Span name_span;        // Field: the field name; Call: the function name.
  UnaryOp unary_op = UnaryOp::Neg;
  BinaryOp binary_op = BinaryOp::Add;
  std::vector<ExprPtr> items;     // Operands, elements, arguments (see ExprKind).
  std::vector<std::string> keys;  // Object keys, parallel to items.
  std::vector<Span> key_spans;    // Object key spans, parallel to keys.
};

// `key: value` inside a policy or breaker body: `{ attempts: 4, on: [timeout] }`.
// Values are ordinary expressions (durations, numbers, calls such as
// exponential(200ms, 2.0, 5s), identifiers such as full); the compiler gives
// them meaning and reports misspelled keys.
struct ConfigField {
  std::string key;
  Span key_span;
  ExprPtr value;
};

struct Config {
  Span span;  // From '{' to '}'.
  std::vector<ConfigField> fields;
};

// `name: expr` in an action call.
struct NamedArg {
  std::string name;
  Span name_span;
  ExprPtr value;
};

// `inventory.reserve(order: order_id)` or `log(message: "hi")`.
struct ActionCall {
  Span span;           // From the target's first character to ')'.
  std::string target;  // Dotted name as written: "inventory.reserve", "http.get", "log".
  Span target_span;
  std::vector<NamedArg> args;
};

// The retry clause of a step: either a named policy or an inline body.
struct RetryRef {
  Span span;
  std::string name;  // Empty when inline.
  std::unique_ptr<Config> inline_policy;
};

// What a step is in the saga's structure (the saga literature's kinds): a
// plain step is compensable (its undo runs when the saga fails later), the
// pivot is the point of no return, and a retriable step, after the pivot, is
// retried until it succeeds. compiler/check.cpp states the rules.
enum class StepKind : uint8_t { Plain, Pivot, Retriable };

struct Step {
  Span span;  // From 'step' (or its kind, `pivot step`) to the closing '}'.
  StepKind kind = StepKind::Plain;
  Span kind_span;  // The word `pivot` or `retriable`; empty for a plain step.
  std::string name;
  Span name_span;
  std::unique_ptr<ActionCall> action;  // `do`; null only after a syntax error.
  std::string bind;                    // `-> name`; empty when the result is dropped.
  Span bind_span;
  std::unique_ptr<ActionCall> undo;      // `undo`; null when the step has none.
  ExprPtr timeout;                       // `timeout 2s`; null when absent.
  std::unique_ptr<RetryRef> retry;       // `retry standard` or `retry { ... }`.
  std::unique_ptr<RetryRef> undo_retry;  // `undo_retry POLICY`: the undo's own policy.
  // Clause keywords as they appeared, to report duplicates ("second 'undo'").
  std::vector<std::pair<std::string, Span>> clauses;
};

struct Stmt;
using Block = std::vector<Stmt>;

enum class StmtKind : uint8_t {
  Step,
  Let,
  If,
  Fail,
  Output,
  Deadline,
  Parallel,
  Branch,
  Foreach,
  UndoRetry,  // `undo_retry POLICY` in a saga body: the default policy of its undos.
  Await,  // `await signal NAME ...`, `await event TYPE where C ...`: timeout D -> v else { ... }.
  Emit,   // `emit TYPE { ... }`: name is the event type, expr the Object of its data.
};

struct Stmt {
  StmtKind kind = StmtKind::Let;
  Span span;                   // The whole statement.
  std::unique_ptr<Step> step;  // Step.
  // Let: the variable.  Fail: the error class ("" = default).  Branch: the
  // branch name.  Foreach: the loop variable.  Await: the variable bound.
  // Emit: the event type.
  std::string name;
  Span name_span;
  // Let value, If condition, Fail message, Output value, Deadline, Foreach:
  // the list it runs over. Emit: the event's data (an Object).
  ExprPtr expr;
  std::unique_ptr<Block> then_block;  // If.
  std::unique_ptr<Block> else_block;  // If: null without else; `else if` is a block of one If.
  // Parallel: the statements inside `parallel { }` (the compiler accepts only
  // branches there). Branch, Foreach: the body.
  std::unique_ptr<Block> body;
  ExprPtr max;                      // Foreach: the value after `max`; null without.
  Span max_span;                    // Foreach: the word `max`.
  bool parallel = false;            // Foreach: written `parallel foreach`.
  std::unique_ptr<RetryRef> retry;  // UndoRetry: the policy.
  // Await: the signal's name, or with `event` set the first event type (name/
  // name_span: the variable after `->`, empty without; expr: the timeout,
  // null without; where: the condition after `where`, null without;
  // else_block: the timeout's handler, null without; else_span: the word
  // `else`).
  std::string signal;
  Span signal_span;
  Span else_span;
  bool event = false;
  ExprPtr where;
  // Await event: every type (the first is also `signal`), with its span.
  std::vector<std::pair<std::string, Span>> types;
};

// `name: type` in a saga header; type is one of string, number, bool, list,
// object, any (checked by the compiler, enforced on input by the runtime).
struct Param {
  std::string name;
  Span name_span;
  std::string type;  // Empty when omitted (= any).
  Span type_span;
};

struct Saga {
  Span span;
  std::string name;
  Span name_span;
  std::vector<Param> params;
  Block body;
};

// `op release = DELETE "/reservations/${reservation}"` inside a service: the
// HTTP method and path template for one operation (the path may interpolate
// the operation's argument names).
struct Route {
  Span span;
  std::string op;
  Span op_span;
  std::string method;  // As written; the compiler checks it is an HTTP method.
  Span method_span;
  std::string path;  // Raw template text between the quotes.
  Span path_span;
};

struct Service {
  Span span;
  std::string name;
  Span name_span;
  // Each clause is optional; a null pointer / empty string means absent.
  std::string url;
  Span url_span;
  bool has_url = false;
  ExprPtr timeout;
  std::unique_ptr<Config> breaker;
  ExprPtr bulkhead;
  std::vector<Route> routes;
  // `idempotent` (every operation) or `idempotent [release, refund]`: the
  // participant deduplicates these calls itself, so they are no obligation
  // (sagactl check --obligations).
  bool idempotent_all = false;
  std::vector<std::pair<std::string, Span>> idempotent_ops;
  std::vector<std::pair<std::string, Span>> clauses;  // For duplicate-clause errors.
};

struct RetryPolicy {
  Span span;
  std::string name;
  Span name_span;
  Config body;
};

// A top-level item the parser gave up on after a syntax error: its keyword
// ("service", "retry", "saga") and name when they could be read. The checker
// treats such names as declared, so one syntax error does not cascade into
// "unknown service" errors at every use.
struct BrokenItem {
  std::string kind;
  std::string name;
};

// `on order.placed start payment(order: event.data.order)`: a trigger. The
// arguments are checked by compiler/triggers.cpp (literals, or paths into
// `event`).
struct Trigger {
  Span span;
  std::string type;  // As written; the compiler checks its shape.
  Span type_span;
  std::string saga;
  Span saga_span;
  std::vector<NamedArg> args;
};

struct File {
  std::vector<Service> services;
  std::vector<RetryPolicy> policies;
  std::vector<Saga> sagas;
  std::vector<Trigger> triggers;
  std::vector<BrokenItem> broken;
};

}  // namespace saga::ast
