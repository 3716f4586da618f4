// Migration of running instances from one program to another (`sagactl diff`
// and `sagactl migrate`).
//
// Invariant: an instance moves only when what it has already done is exactly
// what the new program would have done to reach the same place. For every
// fiber, the code from the start of its region (the saga's main code, a
// branch, a loop body, an undo block) up to the place it waits must be the
// same instruction for instruction, compared by meaning (constants by value,
// slots, steps, functions and blocks by name), not by position; every step
// that may be on its compensation log must exist in the new program with the
// same undo. Then the values bound so far are the ones the new code expects
// under the same names, and what is left to run is the new program's own
// code. Everything else is pinned, with the reason. Only positions change:
// pcs, slot indexes, step and block indexes; values, attempts, wake times and
// the compensation log's arguments are carried over as they are.
//
// Both halves are pure: diff() looks at two programs, translate() at one
// instance's state and a diff. move_instances() applies them to a store.
// Only sagactl and the tests link this library; the engine never needs it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/vm/vm.hpp"
#include "saga/status.hpp"
#include "saga/store.hpp"

namespace saga::migrate {

// What an instance waits for at a place of the old program.
enum class WaitKind : uint8_t {
  kStart,    // Recorded, not yet started (`sagactl start`): it starts from the top.
  kAttempt,  // A step's attempt, the backoff before its next one, or a sleep.
  kJoin,     // The fibers of a `parallel` block or `foreach`.
  kEnded,    // A branch or iteration that ended and waits for its siblings.
  kUndo,     // Compensating: a step's undo.
};
const char* to_string(WaitKind kind);

// One place an instance of the old program can wait, and whether an
// instance waiting there can continue on the new one.
struct WaitPoint {
  WaitKind kind = WaitKind::kStart;
  std::string saga;                  // The saga's name (the same in both programs).
  std::string where;                 // "step charge", "join of parallel (flight, hotel)", ...
  uint32_t line = 0;                 // In the old program's source.
  uint32_t step = bytecode::kNone;   // Attempt, undo: the step (old index).
  uint32_t block = bytecode::kNone;  // Join, ended: the block (old index).
  uint32_t branch = 0;               // Ended: the branch.
  bool safe = false;
  std::vector<std::string> reasons;  // Why not, when not safe; one sentence each.
};

// The mapping of one saga of the old program onto the new one.
struct SagaMap {
  uint32_t old_saga = bytecode::kNone, new_saga = bytecode::kNone;
  std::vector<uint32_t> slots;  // Old slot -> new slot of the same name, or kNone.
};

struct Diff {
  std::string old_hash, new_hash;
  std::vector<WaitPoint> points;  // Per saga of the old program, in code order.
  std::vector<SagaMap> sagas;     // Per saga of the old program.
  std::vector<uint32_t> steps;    // Old step -> new step of the same saga and name, or kNone.
  std::vector<uint32_t> blocks;   // Old block -> its counterpart in the new program, or kNone.
};

// Every wait point of `old_program` with its verdict against `new_program`.
Diff diff(const runtime::LinkedProgram& old_program, const runtime::LinkedProgram& new_program);

// The wait point of `d` that fiber `f` of `state` stands at (null when it
// stands at none: an instance that is done).
const WaitPoint* wait_point_of(const Diff& d, const runtime::LinkedProgram& old_program,
                               const runtime::InstanceState& state, const runtime::Fiber& f);

// The state of an instance of the old program, rewritten for the new one:
// saga, pcs, slots, steps and blocks by their new positions. Fails
// (kFailedPrecondition) naming the first wait point of the instance that is
// not safe; the result is checked by encoding it and decoding it against the
// new program, as a resume would.
Result<runtime::InstanceState> translate(const Diff& d, const runtime::LinkedProgram& old_program,
                                         const runtime::LinkedProgram& new_program,
                                         const runtime::InstanceState& state);

// What happened, or would happen, to one instance.
struct Outcome {
  std::string id;
  std::string where;  // Its wait points: "step nap", "join of ..." (comma-separated).
  bool moved = false;
  std::string why;  // When pinned.
};

struct MoveOptions {
  bool dry_run = false;  // Decide and report; write nothing.
  int64_t now_ms = 0;
  // Whether a claim on an instance (its owner and lease) may be ignored: its
  // owner is gone. An instance whose claim holds is pinned, never moved under
  // the engine that runs it.
  std::function<bool(const std::string& owner, int64_t lease_until_ms)> claim_gone;
};

// Moves every unfinished instance of the old program whose wait points are
// all safe to the new program, each in its own transaction (Store::move_instance,
// with a `migrated` history event), and reports every instance of the old
// program, moved or pinned. The new program must be in the store (put_program)
// unless dry_run.
Result<std::vector<Outcome>> move_instances(Store& store, const Diff& d,
                                            const runtime::LinkedProgram& old_program,
                                            const runtime::LinkedProgram& new_program,
                                            const MoveOptions& options);

}  // namespace saga::migrate
