// The bytecode interpreter: runs an instance's pure code from its current pc
// to the next yield point (INVOKE, UNDO, RETURN, COMPLETE, FAIL) and reports
// which one it reached. It never blocks and has no effects: the engine
// (runtime/engine) performs the effect a yield point asks for, checkpoints,
// and calls run() again. Because the whole InstanceState is checkpointed at
// every yield point, values computed by nondeterministic functions (now(),
// uuid()) are stable across a crash once a checkpoint that holds them is
// committed; nothing computed after the last checkpoint was observed by anyone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/bytecode/program.hpp"
#include "saga/status.hpp"
#include "saga/value.hpp"
#include "stdlib/functions.hpp"

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
};

// Resolves every function name (kUnsupported naming the function when this
// runtime lacks it) and converts constants. `program` must be verified.
Result<LinkedProgram> link(bytecode::Program program);

// Verifies a loaded program (bytecode::verify, which also gives depth_at)
// and links it: what every runner of instances does with a program it read.
Result<LinkedProgram> verify_and_link(bytecode::Program program);

// An entry of the compensation stack: a step that completed, or whose last
// attempt ended in doubt (it may have had an effect).
struct Completed {
  uint32_t step = 0;
  bool in_doubt = false;
  bool operator==(const Completed&) const = default;
};

enum class Phase : uint8_t {
  kForward = 0,       // Running the saga's main code.
  kCompensating = 1,  // Running undo blocks, newest completed step first.
  kDone = 2,          // Finished: completed, compensated, failed, cancelled or stuck.
};

// What the instance waits for at its current yield point.
enum class Wait : uint8_t {
  kNone = 0,
  kAction = 1,  // The `do` action of `step`, with `args`.
  kUndo = 2,    // The `undo` action of `step`, with `args`.
};

// Everything an instance is; checkpoint.hpp encodes it. The engine owns the
// fields about effects and time; the interpreter owns pc, stack and slots.
struct InstanceState {
  uint32_t saga = 0;
  Phase phase = Phase::kForward;
  uint32_t pc = 0;
  std::vector<Value> stack;
  std::vector<Value> slots;
  std::vector<Completed> completed;  // Compensation stack; back() is the newest.

  Wait wait = Wait::kNone;
  uint32_t step = bytecode::kNone;
  Value args;
  uint32_t attempt = 0;    // Number of the attempt to run or running (1-based).
  int64_t wake_at_ms = 0;  // Run the attempt no earlier than this (backoff, sleep()).
  // An earlier attempt of this step may have had an effect (it ended in
  // doubt after its request was sent). Decides whether the step is
  // compensated when its last attempt was refused without being sent.
  bool earlier_attempt_in_doubt = false;

  int64_t started_ms = 0;
  int64_t deadline_ms = 0;   // Absolute; 0 = none.
  bool cancelled = false;    // Compensating because the instance was cancelled.
  bool had_effects = false;  // Some step had (or may have had) an effect when compensation began.
  std::string error_class;   // Why it failed (set when compensation begins).
  std::string error_message;
  Value output;

  bool operator==(const InstanceState&) const = default;
};

// Where run() stopped.
enum class Stop : uint8_t {
  kInvoke,    // INVOKE: state.wait = kAction, state.step/args set; push the result to continue.
  kUndo,      // UNDO: state.wait = kUndo, state.step/args set; continue when it succeeded.
  kReturned,  // RETURN: an undo block finished.
  kComplete,  // COMPLETE: state.output holds the output.
  kFail,      // FAIL, or a runtime error: state.error_class/error_message say why.
};

// Runs from state.pc until a yield point. A runtime error (a `type` error, a
// division by zero) stops with kFail and the error's class and message,
// prefixed with the source position ("order.saga:12: ...").
Stop run(const LinkedProgram& program, InstanceState& state, stdlib::FunctionContext& ctx);

// Prepares a new instance of saga `saga` with its parameters bound from
// `input` (an object; validate_input() has checked it).
InstanceState start_state(const LinkedProgram& program, uint32_t saga, const Value& input);

// Checks an input object against the saga's parameters: every parameter
// present with its declared type, no unknown fields. The error (kInvalidArgument)
// names the parameter: "input field 'amount' must be a number, got string".
Status validate_input(const bytecode::Saga& saga, const Value& input);

}  // namespace saga::runtime
