// The in-memory form of a compiled .saga file (a "program") and the facts about
// the instruction set that every consumer shares. The compiler fills a Program
// through the Assembler (assembler.hpp); format.cpp writes and reads it as a
// .sagac file; verify.cpp proves it safe to run; disasm.cpp lists it; the VM
// runs it. Everything here is plain data: no I/O, no Asio.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace saga::bytecode {

// Version of the .sagac layout and of the instruction semantics. A loader
// refuses files with a newer version; bump it when a section's layout or an
// existing opcode's meaning changes (appending opcodes does not need a bump).
// Version 2 added the blocks of `parallel` and `foreach` (Program::blocks,
// written after the sagas in their section); a program without blocks is
// still written as version 1, so older runtimes keep reading it. Version 3
// added the step kinds (Step::kind, one byte per step after the steps) and
// two policy values, unlimited attempts and the class "*"; a program that
// uses none of them is written as before. Version 4 added undo policies
// (Step::undo_retry) and `then: pause`. Version 5 added the event triggers
// (Program::triggers, written after the blocks in the sagas section); a
// program without triggers is written as before. Version 6 added AWAIT
// (`await signal`) and EMIT (`emit`): the layout is version 5's, but an older
// runtime must refuse a program that uses them (as a newer format, not as a
// damaged file), so only such a program is written as version 6.
inline constexpr uint16_t kFormatVersion = 6;

// The built-in action of an await step (stdlib/actions.def): the step AWAIT
// names, and that no INVOKE may run.
inline constexpr std::string_view kSignalAction = "signal";
// `await event TYPE where ...` waits for the signal named this prefix and
// TYPE, which record_event hands to the instance when the event fits the
// await's `where` (docs/events.md, "Awaiting an event"); no signal a user
// sends has that name (':' is not in a signal name).
inline constexpr std::string_view kEventSignalPrefix = "event:";

// Limits, with the reason for each. Operand widths come from opcodes.def.
inline constexpr uint32_t kMaxSlots = 65535;         // Slot operands are u16.
inline constexpr uint32_t kMaxCount = 65535;         // Count operands are u16.
inline constexpr uint32_t kMaxStackDepth = 1024;     // Bounds an instance's checkpoint size.
inline constexpr uint32_t kMaxCodeBytes = 1u << 26;  // 64 MiB: far above any real program.
// Fibers one `parallel foreach` may run at once (its `max`), and branches of
// one `parallel` block: each is a fiber of the instance, checkpointed.
inline constexpr uint32_t kMaxBranches = 10000;

// What an operand refers to; decides its width and how the verifier checks it.
enum class Operand : uint8_t { None, Const, Str, Slot, Count, Jump, Func, Step, Block };

// Stack-effect placeholders used in the pops column of opcodes.def.
inline constexpr int kPopA = -1;  // Pops as many values as operand a says.
inline constexpr int kPopB = -2;  // Pops as many values as operand b says.

// Flags column of opcodes.def.
inline constexpr uint8_t kJumps = 1;        // Operand a is a relative jump target.
inline constexpr uint8_t kBranches = 2;     // Conditional: also falls through.
inline constexpr uint8_t kEnds = 4;         // Never falls through to the next instruction.
inline constexpr uint8_t kYields = 8;       // A yield point (checkpoint + effect).
inline constexpr uint8_t kUndoOnly = 16;    // Only valid in an undo block.
inline constexpr uint8_t kSagaOnly = 32;    // Only valid in a saga's main code (or a branch of it).
inline constexpr uint8_t kBranchOnly = 64;  // Only valid in a branch or loop body (a fiber).

enum class Op : uint8_t {
#define OP(name, a, b, pops, pushes, flags, synopsis, doc) name,
#include "runtime/bytecode/opcodes.def"
#undef OP
};

struct OpInfo {
  std::string_view name;
  Operand a, b;
  int pops, pushes;
  uint8_t flags;
  std::string_view synopsis;
  std::string_view doc;
};

// One row per opcode, generated from opcodes.def.
inline constexpr OpInfo kOpInfo[] = {
#define OP(name, a, b, pops, pushes, flags, synopsis, doc) \
  {#name, Operand::a, Operand::b, pops, pushes, flags, synopsis, doc},
#include "runtime/bytecode/opcodes.def"
#undef OP
};

inline constexpr uint32_t kOpCount = sizeof(kOpInfo) / sizeof(kOpInfo[0]);

inline const OpInfo& op_info(Op op) {
  return kOpInfo[static_cast<uint8_t>(op)];
}

// Encoded width of an operand in bytes.
constexpr uint32_t operand_width(Operand k) {
  switch (k) {
    case Operand::None:
      return 0;
    case Operand::Slot:
    case Operand::Count:
      return 2;
    default:
      return 4;
  }
}

// Encoded size of a whole instruction: one opcode byte plus its operands.
constexpr uint32_t instruction_size(Op op) {
  const OpInfo& i = kOpInfo[static_cast<uint8_t>(op)];
  return 1 + operand_width(i.a) + operand_width(i.b);
}

// Where operand b of `op` starts, counted from the opcode byte (operand a
// always starts at 1). Derived from the table, so the interpreter never
// hard-codes an operand layout.
constexpr uint32_t operand_b_offset(Op op) {
  return 1 + operand_width(kOpInfo[static_cast<uint8_t>(op)].a);
}

// A constant-pool entry. Constants are scalars; lists and objects are built by
// LIST/OBJECT at run time.
struct Constant {
  enum class Kind : uint8_t { Null, Bool, Number, String };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;

  bool operator==(const Constant&) const = default;
};

enum class Backoff : uint8_t { Fixed, Linear, Exponential };
enum class Jitter : uint8_t { None, Full, Equal };

// A retry policy, named (`retry standard { ... }`) or inline in a step.
// delay(n) for the n-th retry (n = 1, 2, ...):
//   Fixed:        initial
//   Linear:       initial + (n - 1) * step_ms
//   Exponential:  initial * factor^(n - 1)
// then capped at max_ms (0 = no cap) and jittered.
// `attempts: unlimited`: the step is retried until it succeeds (a retriable
// step's policy). The attempt counter stops at this value and never wraps.
inline constexpr uint32_t kUnlimitedAttempts = 0xFFFFFFFF;
// `on: any` in retry_on: every error class, built-in or custom.
inline constexpr std::string_view kAnyClass = "*";

// `then:` of a retry policy: the end of a forward step's exhausted budget.
enum class Then : uint8_t { Fail = 0, Pause = 1 };

struct RetryPolicy {
  std::string name;       // Empty for inline policies.
  uint32_t attempts = 1;  // Total attempts including the first; >= 1, or kUnlimitedAttempts.
  Backoff backoff = Backoff::Fixed;
  uint64_t initial_ms = 0;
  double factor = 2.0;   // Exponential only.
  uint64_t step_ms = 0;  // Linear only.
  uint64_t max_ms = 0;
  Jitter jitter = Jitter::None;
  std::vector<std::string> retry_on;  // Error classes that are retried.
  // What a forward step does when this policy gives up (`then:`, format
  // version 4): fail (compensate) or pause for an operator.
  Then then = Then::Fail;
};

// `op NAME = METHOD "path"` inside a service.
struct Route {
  std::string op;
  std::string method;  // Upper case: GET, POST, PUT, PATCH, DELETE.
  std::string path;    // Template; ${arg} is replaced by the argument's value.
};

struct Service {
  std::string name;
  std::string url;                // Empty: the host application provides the actions.
  uint64_t timeout_ms = 0;        // Default per-call timeout; 0 = none.
  uint32_t breaker_failures = 0;  // 0 = no circuit breaker.
  uint64_t breaker_reset_ms = 0;
  uint32_t breaker_probes = 0;
  uint32_t bulkhead = 0;  // Max concurrent calls; 0 = unlimited.
  std::vector<Route> routes;
};

// An action a step invokes: "inventory.reserve" (service 0, op "reserve") or a
// standard-library action such as "log" or "http.get" (service = kNoService).
inline constexpr uint32_t kNoService = 0xFFFFFFFF;
struct Action {
  std::string name;
  uint32_t service = kNoService;
};

inline constexpr uint32_t kNone = 0xFFFFFFFF;

// A step's kind (format version 3). Plain: compensable, the default.
// Pivot: the point of no return, no undo; once it completed, the saga is
// never compensated, and its deadline no longer applies (the machine).
// Retriable:
// after the pivot, no undo, its policy retries every class without limit.
enum class StepKind : uint8_t { Plain, Pivot, Retriable };
const char* to_string(StepKind k);

struct Step {
  std::string name;
  uint32_t saga = 0;              // Index of the saga the step belongs to.
  uint32_t action = 0;            // `do` action (index into actions).
  uint32_t undo_action = kNone;   // `undo` action, or kNone.
  uint32_t undo_pc = kNone;       // Start of the undo block, or kNone.
  uint32_t result_slot = kNone;   // Slot bound by `-> name`, or kNone.
  uint64_t timeout_ms = 0;        // Per-attempt timeout; 0 = the service's, else none.
  uint32_t retry = kNone;         // Policy index, or kNone for a single attempt.
  uint32_t line = 0, column = 0;  // Where `step` is written.
  // The undo's policy (`undo_retry`, or the saga's default; format version
  // 4), or kNone for the engine's built-in compensation policy.
  uint32_t undo_retry = kNone;
  StepKind kind = StepKind::Plain;
};

// A duration as the language spells it, in the largest unit that divides it:
// 600000 -> "10m", 1500 -> "1500ms", 0 -> "0ms". Used by the disassembler,
// the compiler's messages and the runtime's history, so they agree.
std::string format_duration(uint64_t ms);

// The delay before retry `retry` (1-based: the wait after attempt `retry`)
// under `policy`, before any jitter: fixed, linear or exponential from
// initial_ms, at most max_ms (when set) and 10^12 ms. The engine draws its
// jitter below this; the compiler's time budgets use it as the longest wait.
uint64_t backoff_ms(const RetryPolicy& policy, uint32_t retry);

// Whether `policy` retries an attempt that failed with class `cls` (its
// `on` list names it, or is `any`).
bool retries_class(const RetryPolicy& policy, std::string_view cls);
// Whether `policy` retries every class, custom ones included (`on: any`).
bool retries_every_class(const RetryPolicy& policy);

enum class Type : uint8_t { Any, String, Number, Bool, List, Object };
const char* to_string(Type t);

struct Param {
  std::string name;
  Type type = Type::Any;
};

// A `parallel` block or a `foreach` loop: the fibers FORK starts and JOIN
// waits for. Each branch (or the loop body) is code of its own, entered with
// an empty stack and ended by END; a fiber sees the slots of the fiber that
// forked it and keeps the ones it binds to itself until the join.
struct Branch {
  std::string name;  // `branch NAME`, or the loop variable of a foreach.
  uint32_t entry_pc = 0;
};

struct Block {
  enum class Kind : uint8_t { Parallel, Foreach };
  Kind kind = Kind::Parallel;
  uint32_t saga = 0;
  // Parallel: one or more branches, all started at once; at the join every
  // slot a branch bound is the parent's. Foreach: exactly one, the body, run
  // once per item of the list FORK pops.
  std::vector<Branch> branches;
  uint32_t item_slot = kNone;  // Foreach: the loop variable's slot.
  uint32_t max = 1;            // Foreach: iterations in flight at most; 0 = no limit.
  // Foreach: after the loop, slot `list` holds the list of the values slot
  // `body` had at the end of each iteration, in the order of the items.
  struct Collect {
    uint32_t body = 0;
    uint32_t list = 0;
    bool operator==(const Collect&) const = default;
  };
  std::vector<Collect> collect;
  uint32_t line = 0, column = 0;
};

// One argument of a trigger: the saga parameter it gives a value, and the
// value: a constant (its compact JSON text) or a path into the incoming
// CloudEvent (`data.order.id`, `id`, `source`, `type`, `time`, `subject`;
// only `data` has fields below it).
struct TriggerArg {
  std::string param;
  bool is_path = false;
  std::string value;  // JSON text (a constant) or the dotted path.
  bool operator==(const TriggerArg&) const = default;
};

// `on order.placed start payment(order: event.data.order)`: every incoming
// event of `type` starts one instance of saga `saga`, its input the
// arguments evaluated against the event (runtime/engine/triggers.cpp).
// Every parameter of the saga has exactly one argument.
struct Trigger {
  std::string type;  // CloudEvents `type`, matched exactly.
  uint32_t saga = 0;
  std::vector<TriggerArg> args;
  uint32_t line = 0, column = 0;
  bool operator==(const Trigger&) const = default;
};

// The first segments a trigger argument's path may start with (the
// CloudEvents attributes a trigger can read, and `data`).
inline constexpr std::string_view kEventFields[] = {"id",   "source",  "type",
                                                    "time", "subject", "data"};

// Whether `type` is an event type a trigger can name: segments of letters,
// digits, '_' and '-', separated by single dots ("order.placed",
// "com.example.order-placed").
bool valid_event_type(std::string_view type);
// Whether `path` is a TriggerArg path: one of kEventFields, and below
// `data` any number of dotted identifier segments.
bool valid_event_path(std::string_view path);

struct Saga {
  std::string name;
  std::vector<Param> params;            // Occupy slots 0..params.size()-1.
  std::vector<std::string> slot_names;  // One per slot, parameters first.
  uint32_t entry_pc = 0;
  uint64_t deadline_ms = 0;  // 0 = no deadline.
  uint32_t line = 0, column = 0;
};

// Maps the instruction at `pc` (and those after it, up to the next entry) to
// a source position. Entries are sorted by pc.
struct LineEntry {
  uint32_t pc = 0;
  uint32_t line = 0, column = 0;
};

struct Program {
  std::string source_name;  // File name as given to the compiler.
  std::string source_text;  // The source itself (debug section; may be empty).
  std::vector<Constant> constants;
  std::vector<std::string> functions;  // Pure functions CALL refers to, by name.
  std::vector<Action> actions;
  std::vector<RetryPolicy> policies;
  std::vector<Service> services;
  std::vector<Step> steps;
  std::vector<Saga> sagas;
  std::vector<Block> blocks;  // Of every saga; FORK, JOIN and END refer to them by index.
  std::vector<Trigger> triggers;  // `on TYPE start SAGA(...)`, in source order.
  std::vector<uint8_t> code;
  std::vector<LineEntry> lines;
  // Identity of the program: XXH3-128 of everything that affects execution
  // (not the debug sections). Filled by serialize() and by load().
  std::array<uint8_t, 16> hash{};

  // The hash as 32 lower-case hex digits.
  std::string hash_hex() const;
  // Index of the saga with this name, or kNone.
  uint32_t find_saga(std::string_view name) const;
  // Source position of the instruction at pc (0:0 when unknown).
  LineEntry line_at(uint32_t pc) const;
};

// The format version a program is written with: the lowest that holds it (1
// without blocks, 2 with blocks, 3 with step kinds, unlimited attempts or
// `on: any`, 4 with undo policies or pauses, 5 with triggers, 6 with await
// steps or EMIT), so that older runtimes keep reading what they can run.
uint16_t format_version(const Program& p);

// Whether the program's code has an EMIT (`emit TYPE { ... }`).
bool emits(const Program& p);

// Whether step `s` is an await step (its `do` is the built-in kSignalAction):
// the one kind of step AWAIT runs and INVOKE may not.
bool is_await_step(const Program& p, const Step& s);

// A decoded instruction.
struct Instruction {
  Op op = Op::NOP;
  uint32_t a = 0;  // Jump offsets are stored as their two's-complement bits.
  uint32_t b = 0;
  uint32_t size = 1;
  int32_t jump() const { return static_cast<int32_t>(a); }
};

// Decodes the instruction at `pc`. Returns false when the opcode is unknown
// or the operands run past the end of `code`.
bool decode(const std::vector<uint8_t>& code, uint32_t pc, Instruction& out);

}  // namespace saga::bytecode
