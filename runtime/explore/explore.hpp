// The explorer (`sagactl explore`): every failure path of a saga, run through
// the real saga machine with mocked actions and virtual time.
//
// Invariant: the explorer only chooses what the world does (how each
// attempt ends, a cancel, the deadline, a crash) and judges the histories
// that result; every rule it exercises is the machine's own
// (runtime/engine/machine.hpp), the code is the program's bytecode run by the
// VM, and a crash is the checkpoint encoded, decoded and resumed as a
// restarted engine would. The judge is independent of the machine: it knows
// which steps may have had an effect from the outcomes it chose, not from
// the machine's compensation log, so a machine that forgot, repeated or
// reordered an undo is caught as a saga that does so.
//
// The search is a depth-first walk over the choices, by increasing number of
// faults (a failed attempt, a cancel, the deadline, a crash): every path with
// no fault, then every one with one, and so on up to Options::max_faults, so
// the first violation found is one with the fewest faults. Fibers that wait
// at once (parallel branches) take their turns in one order, first come
// first served; their interleavings are not enumerated.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/vm/vm.hpp"
#include "saga/value.hpp"

namespace saga::explore {

struct Options {
  uint32_t max_faults = 2;            // Faults on one path.
  uint32_t max_crashes = 1;           // Of those, crashes (a crash is also a fault).
  uint32_t undo_attempts = 2;         // Attempts of an undo before the instance is stuck.
  uint64_t max_paths = 1'000'000;     // Stop (Report::truncated) after this many paths.
  uint32_t max_transitions = 10'000;  // A path longer than this does not end: a violation.
};

// A broken promise, with the path that breaks it.
struct Violation {
  std::string message;              // One sentence: what went wrong, naming the step.
  uint32_t step = bytecode::kNone;  // The step it is about (for file:line:col), if any.
  std::string help;                 // How to fix it, when we can tell.
  std::vector<std::string> trace;   // One line per transition, from the start.
  uint32_t faults = 0;
};

struct Report {
  uint64_t paths = 0;
  std::map<std::string, uint64_t> statuses;  // "completed", "compensated", ...: paths.
  std::vector<std::string> longest;          // The trace of the longest path.
  bool truncated = false;                    // max_paths was reached.
  std::optional<Violation> violation;        // The first one found (fewest faults).
  double seconds = 0;
};

// An input for `saga` when the user gives none: a value of each parameter's
// type ("x-1", 2, true, a list of two items, an object).
Value default_input(const bytecode::Saga& saga);

// Explores saga `saga` of `program` started with `input` (validated by the
// caller). Actions answer with an object holding every name the program
// spells as a string constant, so that results' fields can be read.
Report explore(const runtime::LinkedProgram& program, uint32_t saga, const Value& input,
               const Options& options);

}  // namespace saga::explore
