// The bytecode interpreter: runs one fiber of an instance's pure code from
// its current pc to the next yield point (INVOKE, UNDO, RETURN, COMPLETE,
// FAIL, FORK, END) and reports which one it reached. It never blocks and has
// no effects: the saga machine (runtime/engine/machine.hpp) decides what the
// yield point means, the engine performs the effect, checkpoints, and the
// machine calls run() again. Because the whole InstanceState is checkpointed at
// every yield point, values computed by nondeterministic functions (now(),
// uuid()) are stable across a crash once a checkpoint that holds them is
// committed; nothing computed after the last checkpoint was observed by anyone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "runtime/bytecode/program.hpp"
#include "saga/status.hpp"
#include "saga/value.hpp"
#include "stdlib/functions.hpp"

namespace saga {
class ObservedProgram;  // saga/engine.hpp
}  // namespace saga

namespace saga::runtime {

// A verified program with its function table resolved against this build's
// standard library. Immutable once linked; shared by all its instances.
struct LinkedProgram {
  bytecode::Program program;
  std::string hash;                                    // program.hash_hex().
  std::vector<const stdlib::FunctionImpl*> functions;  // Parallel to program.functions.
  std::vector<Value> constants;                        // program.constants as Values.
  // Operand stack depth before each instruction, from the verifier; -1 where
  // no instruction starts or none is reachable. Checkpoints are validated
  // against it.
  std::vector<int32_t> depth_at;
  // What the engine's observer prepared for this program (saga/engine.hpp,
  // EngineObserver::program_linked); null without one.
  std::shared_ptr<ObservedProgram> observed;
  // Some `await event` may wait in it (a constant names an event signal):
  // the engine keeps its instances' event waits in the store.
  bool awaits_events = false;
};

// Resolves every function name (kUnsupported naming the function when this
// runtime lacks it) and converts constants. `program` must be verified.
Result<LinkedProgram> link(bytecode::Program program);

// Verifies a loaded program (bytecode::verify, which also gives depth_at)
// and links it: what every runner of instances does with a program it read.
Result<LinkedProgram> verify_and_link(bytecode::Program program);

// A value kept on the heap only once it is set: most instances (a root
// fiber, a root step's log entry) never need the parts kept in a Rare, and a
// waiting instance must stay small. Copies are deep and == compares values;
// reads (*, ->) see an empty T when there is none, writes go through mut().
template <class T>
class Rare {
 public:
  Rare() = default;
  Rare(const Rare& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Rare(Rare&&) noexcept = default;
  Rare& operator=(const Rare& o) {
    if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  Rare& operator=(Rare&&) noexcept = default;

  const T& operator*() const { return p_ ? *p_ : empty(); }
  const T* operator->() const { return &**this; }
  T& mut() {
    if (!p_) p_ = std::make_unique<T>();
    return *p_;
  }
  bool operator==(const Rare& o) const { return **this == *o; }

 private:
  static const T& empty() {
    static const T e{};
    return e;
  }
  std::unique_ptr<T> p_;
};

struct CompletedDetail;

// An entry of a compensation log: a step that completed, or whose last
// attempt ended in doubt (it may have had an effect), or a parallel group.
struct Completed {
  uint32_t step = bytecode::kNone;  // kNone for a group.
  bool in_doubt = false;
  Rare<CompletedDetail> detail;  // Unset for a root step's entry.
  bool operator==(const Completed&) const = default;
};

// What an entry holds besides its step.
//
// An entry of a child fiber (a branch, an iteration) carries the undo's
// arguments, computed when the entry is made, in that fiber, from the values
// bound then (the compiler proves an undo uses nothing bound later): its
// slots are gone after the join, and a group's entries carry everything
// their undos need. An entry of the root fiber (and every entry of a
// checkpoint before version 3) has args_ready false: its arguments are
// computed from the root's slots when the undo runs, which still hold every
// value bound (root slots are bound once and kept to the end).
struct CompletedDetail {
  // The step as history, keys and undo name it: "flight/book[2]"; empty for
  // a step of the root fiber, which is its plain name.
  std::string name;
  bool args_ready = false;
  Value args;  // The undo's arguments (when args_ready and the step has an undo).
  // Set when computing them failed (the undo cannot run: the instance is
  // stuck when it comes to it): the error's class and message.
  std::string args_error_class, args_error;
  // A parallel block or loop: the logs of its fibers (each oldest first), in
  // branch or item order. Undone as a parallel composition: each log newest
  // first, the whole group before the entries before it.
  std::vector<std::vector<Completed>> group;
  bool operator==(const CompletedDetail&) const = default;
};

enum class Phase : uint8_t {
  kForward = 0,       // Running the saga's main code (and its fibers).
  kCompensating = 1,  // Running undos, newest completed step first.
  kDone = 2,          // Finished: completed, compensated, failed or cancelled.
};

// What a fiber waits for at its current yield point.
enum class Wait : uint8_t {
  kNone = 0,
  kAction = 1,  // The `do` action of `step`, with `args`.
  kUndo = 2,    // The `undo` action of `step`, with `args`.
  kJoin = 3,    // The fibers of block `join_block` (pc is at the JOIN).
};

// The parts of a fiber that a root fiber at an ordinary step does not have.
struct FiberDetail {
  // How its steps are named in keys and history: prefix + step + suffix
  // ("flight/" "book" "" or "" "reserve" "[3]"), inherited by its children.
  std::string prefix, suffix;
  std::vector<std::pair<uint32_t, Value>> locals;  // Children only: the slots it bound.
  // The undo being run (kUndo): its step's name as CompletedDetail::name says.
  std::string undo_name;
  Value items;  // While waiting at the JOIN of a foreach: its items.
  bool operator==(const FiberDetail&) const = default;
};

// A fiber: one thread of a saga's code. The root fiber (id 0) runs the
// saga's main code and, when compensating, its undos; FORK starts one fiber
// per branch of a `parallel` block, or per item of a `foreach`, and the
// forking fiber waits at the JOIN until they have all ended. A fiber reads
// the slots of the fibers it descends from, which do not change while it
// runs (they wait at a JOIN), and keeps the slots it binds in `locals` until
// the join hands them to its parent.
// (Fields are ordered by size, so that the root, kept inline in every
// instance, takes no padding.)
struct Fiber {
  uint32_t id = 0;                   // Unique in its instance; 0 is the root.
  uint32_t parent = 0;               // The fiber that forked it (the root: 0).
  uint32_t block = bytecode::kNone;  // The block it is a branch or iteration of.
  uint32_t index = 0;                // Its branch, or its item.
  uint32_t pc = 0;
  uint32_t step = bytecode::kNone;
  uint32_t attempt = 0;  // Number of the attempt to run or running (1-based).
  // While waiting at a JOIN (kJoin): the block (how many of a foreach's
  // items were started is the number of its children: an ended child stays
  // until the join).
  uint32_t join_block = bytecode::kNone;
  Wait wait = Wait::kNone;
  // An earlier attempt of this step may have had an effect (it ended in
  // doubt after its request was sent). Decides whether the step is
  // compensated when its last attempt was refused without being sent.
  bool earlier_attempt_in_doubt = false;
  bool ended = false;  // A child that reached END: it waits for its siblings.
  // Not checkpointed. The current attempt was handed to its action or
  // transport: it may reach the service. Set by the engine, cleared when the
  // attempt ends; after a restart, derived from the wake time.
  bool attempt_out = false;
  int64_t wake_at_ms = 0;  // Run the attempt no earlier than this (backoff, sleep()).
  std::vector<Value> stack;
  Value args;
  std::vector<Completed> completed;  // The log of its own steps; the root's is the instance's.
  Rare<FiberDetail> detail;

  bool operator==(const Fiber& o) const {
    return id == o.id && parent == o.parent && block == o.block && index == o.index && pc == o.pc &&
           stack == o.stack && wait == o.wait && step == o.step && args == o.args &&
           attempt == o.attempt && wake_at_ms == o.wake_at_ms &&
           earlier_attempt_in_doubt == o.earlier_attempt_in_doubt && ended == o.ended &&
           join_block == o.join_block && completed == o.completed && detail == o.detail;
  }
};

// Everything an instance is; checkpoint.hpp encodes it.
// (Fields are ordered by size, as Fiber's are.)
// The most fibers one instance starts in its life (ids are never reused):
// a block that would go beyond fails the saga (class `error`) before it
// starts any, and a checkpoint beyond it is corrupt.
inline constexpr uint32_t kMaxFiberId = 0x7FFFFFFF;

struct InstanceState {
  uint32_t saga = 0;
  uint32_t next_fiber = 1;  // The id of the next fiber FORK starts; at most kMaxFiberId.
  Phase phase = Phase::kForward;
  bool cancelled = false;    // Compensating because the instance was cancelled.
  bool had_effects = false;  // Some step had (or may have had) an effect when compensation began.
  // A compensation gave up: the root waits (kUndo) on the undo that failed,
  // for an operator; the status is `stuck`.
  bool stuck = false;
  // An operator paused the instance (status `paused`): no fiber waits
  // until a command moves it on. Not in the checkpoint: the instance row's
  // status says it, and the engine sets it when it loads the row.
  bool paused = false;
  int64_t started_ms = 0;
  int64_t deadline_ms = 0;   // Absolute; 0 = none.
  std::vector<Value> slots;  // The root fiber's slots (parameters first).
  // fibers[0] is the root; children in id order. The root is kept inline:
  // most instances have no other fiber, and each must stay small.
  boost::container::small_vector<Fiber, 1> fibers;
  std::string error_class;  // Why it failed (set when compensation begins).
  std::string error_message;
  Value output;

  Fiber& root() { return fibers[0]; }
  const Fiber& root() const { return fibers[0]; }
  // The fiber with this id, or null.
  Fiber* fiber(uint32_t id);
  const Fiber* fiber(uint32_t id) const;

  bool operator==(const InstanceState&) const = default;
};

// Where run() stopped.
enum class Stop : uint8_t {
  kInvoke,    // INVOKE: fiber.wait = kAction, step/args set; push the result to continue.
  kUndo,      // UNDO: fiber.wait = kUndo, step/args set (an undo block's arguments).
  kReturned,  // RETURN: an undo block finished.
  kComplete,  // COMPLETE: state.output holds the output.
  kFail,      // FAIL, or a runtime error: state.error_class/error_message say why.
  kFork,      // FORK: fiber.join_block (and items) set, pc at the JOIN.
  kEnd,       // END: the fiber's branch or iteration is done.
};

// An event the code emitted (EMIT) on its way to a yield point: the engine
// writes it to the outbox in the transition that checkpoints that yield
// point. `position` names where it was emitted in the instance's life, the
// fiber's name and the pc ("emit@42", "flight/emit@42[3]"): code runs again
// after a crash from the last checkpoint, and the same emit gets the same
// position, so the same event id (outbox_event_id).
struct Emitted {
  std::string type;
  Value data;
  std::string position;
};

// Runs `fiber` from its pc until a yield point. A runtime error (a `type`
// error, a division by zero) stops with kFail and the error's class and
// message, prefixed with the source position ("order.saga:12: ...").
// The events it emits are appended to `emitted` (dropped when null).
Stop run(const LinkedProgram& program, InstanceState& state, Fiber& fiber,
         stdlib::FunctionContext& ctx, std::vector<Emitted>* emitted = nullptr);

// The value of slot `slot` as `fiber` sees it: its own binding, else its
// parent's, up to the root's slots.
const Value& load_slot(const InstanceState& state, const Fiber& fiber, uint32_t slot);

// Binds slot `slot` of `fiber`: the root's slots, or the child's own.
void store_slot(InstanceState& state, Fiber& fiber, uint32_t slot, Value value);

// Prepares a new instance of saga `saga` with its parameters bound from
// `input` (an object; validate_input() has checked it).
InstanceState start_state(const LinkedProgram& program, uint32_t saga, const Value& input);

// Checks an input object against the saga's parameters: every parameter
// present with its declared type, no unknown fields. The error (kInvalidArgument)
// names the parameter: "input field 'amount' must be a number, got string".
Status validate_input(const bytecode::Saga& saga, const Value& input);

}  // namespace saga::runtime
