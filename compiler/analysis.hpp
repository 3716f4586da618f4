// What the checker (check.cpp) learns about a file and the code generator
// (codegen.cpp) needs: resolved services and policies, the slots of each saga,
// the slot every variable use and binding resolves to, and per step its
// resolved action, timeout and policy. Internal to the compiler.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compiler/compile.hpp"
#include "grammar/ast.hpp"
#include "grammar/diagnostic.hpp"
#include "runtime/bytecode/program.hpp"

namespace saga::compiler {

struct StepInfo {
  std::string action;  // Resolved `do` action name ("inventory.reserve").
  uint32_t service = bytecode::kNoService;
  std::string undo_action;  // Empty when there is no undo.
  uint32_t undo_service = bytecode::kNoService;
  uint32_t policy = bytecode::kNone;
  uint32_t undo_policy = bytecode::kNone;  // `undo_retry` or the saga's default; kNone = built-in.
  uint64_t timeout_ms = 0;
  uint32_t result_slot = bytecode::kNone;  // The slot `-> name` binds, or kNone.
};

// What codegen needs of a `foreach` loop beyond the AST. (A `parallel` block
// needs nothing more: its branch names and bodies are in the AST.)
struct BlockInfo {
  uint32_t item_slot = bytecode::kNone;           // Foreach: the loop variable's slot.
  uint32_t max = 1;                               // Foreach: iterations in flight; 0 = no limit.
  std::vector<bytecode::Block::Collect> collect;  // Foreach: body slot -> list slot.
};

// What codegen needs of an `await signal` or `await event` statement
// beyond the AST.
struct AwaitInfo {
  uint64_t timeout_ms = 0;
  uint32_t slot = bytecode::kNone;  // The slot `-> name` binds, or kNone.
  // Await event: the `where` as (path below `event`, the value it must have).
  std::vector<std::pair<std::string, const ast::Expr*>> where;
};

struct SagaInfo {
  std::vector<std::string> slot_names;  // One per slot, parameters first.
  std::vector<bytecode::Param> params;
  uint64_t deadline_ms = 0;
};

struct Analysis {
  std::vector<bytecode::Service> services;
  std::unordered_map<std::string, uint32_t> service_index;
  std::vector<bytecode::RetryPolicy> policies;             // Named first, then inline ones.
  std::unordered_map<std::string, uint32_t> policy_index;  // Named policies only.
  std::vector<SagaInfo> sagas;                             // Parallel to file.sagas.
  std::unordered_map<const ast::Step*, StepInfo> steps;
  // The slot each variable use (a Var expression) reads and each `let`
  // stores. A name does not always mean the same slot: the checker resolves
  // every use where it stands.
  std::unordered_map<const ast::Expr*, uint32_t> reads;
  std::unordered_map<const ast::Stmt*, uint32_t> lets;
  std::unordered_map<const ast::Stmt*, BlockInfo> blocks;  // Of the Foreach statements.
  std::unordered_map<const ast::Stmt*, AwaitInfo> awaits;  // Of the Await statements.
  // What services declare `idempotent`: a whole service (its index), or
  // single operations ("payment.refund"). Calls to these are no obligation.
  std::set<uint32_t> idempotent_services;
  std::set<std::string> idempotent_actions;
  // The file's triggers, checked and lowered (triggers.cpp).
  std::vector<bytecode::Trigger> triggers;
};

// Reports `type` at `span` unless it is an event type (valid_event_type:
// the one rule for the types of `on` triggers and `emit`); triggers.cpp.
bool check_event_type(const std::string& type, Span span, Diagnostics& diags);
// Whether `e` is a chain of fields on the name `event` (event.data.order).
bool is_event_path(const ast::Expr& e);
// The dotted path below `event` of such a chain ("data.order"), checked as a
// trigger's argument is: the attribute is a CloudEvents one or `data`, and
// only `data` has fields. nullopt (an error reported) for a bad one, and
// (nothing reported) for an expression that is no path into `event`.
std::optional<std::string> event_path(const ast::Expr& e, Diagnostics& diags);

// Checks the triggers of the file (`on TYPE start SAGA(args)`) and fills
// analysis.triggers (triggers.cpp).
void check_triggers(const ast::File& file, const SourceFile& source, Analysis& analysis,
                    Diagnostics& diags);

// Lists the obligations (compile.hpp) of a file without errors, in source
// order (obligations.cpp).
std::vector<Obligation> obligations(const ast::File& file, const Analysis& analysis,
                                    const SourceFile& source);

// Resolves and checks the whole file, reporting problems to `diags`. The
// analysis is complete enough for codegen only when no error was reported.
Analysis check(const ast::File& file, Diagnostics& diags);

// For each saga with a deadline, warns when the worst case of a path (its
// steps' attempts, timeouts and backoffs, constant sleeps) exceeds the
// deadline, and at every step that can wait with no timeout at all
// (budget.cpp). Only for a file without errors.
void check_budgets(const ast::File& file, const Analysis& analysis, Diagnostics& diags);

// The default error class of `fail "message"` without a class.
inline constexpr const char* kDefaultFailClass = "failed";

// Lowers a checked file to bytecode.
void generate(const ast::File& file, const Analysis& analysis, const SourceFile& source,
              bytecode::Program& program);

}  // namespace saga::compiler
