// One saga instance driven through the saga machine with no engine, store or
// clock: what `sagactl explore` and `sagactl test` share.
//
// Invariant: a Run is only ever changed by the machine's own functions
// (runtime/engine/machine.hpp), called as the engine calls them; this file
// adds the bookkeeping the engine does around them (the fibers waiting to
// start an attempt, the time, the randomness) and nothing else, so a driver
// built on it exercises the real rules. A crash is the checkpoint encoded and
// decoded (runtime/vm/checkpoint.hpp) and resumed as a restarted engine does.
// Time is the Run's `now`, which only the driver moves; randomness (uuid(),
// the jitter of backoffs) comes from a generator seeded in the Run, so a
// driver that makes the same choices gets the same history, every run.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>

#include "runtime/engine/machine.hpp"
#include "runtime/vm/vm.hpp"
#include "saga/status.hpp"
#include "stdlib/functions.hpp"

namespace saga::sim {

// The virtual time a run starts at: 2026-01-01T00:00:00Z, as the tests use.
inline constexpr int64_t kStartMs = 1'767'225'600'000;

// A deterministic generator (splitmix64): the same seed gives the same
// numbers on every platform, which std::uniform_int_distribution does not
// promise.
struct Random {
  uint64_t state = 1;
  uint64_t next();
  int64_t below_or_equal(int64_t n);  // Uniform enough in [0, n].
};

struct Options {
  // Attempts of an undo before the instance is stuck; the rest of the
  // compensation policy is the engine's default.
  CompensationPolicy compensation;
  // Whether backoffs draw their jitter from the run's generator (as the
  // engine does); false: no randomness, the machine's fixed choice.
  bool jitter = false;
};

struct Run {
  runtime::InstanceState state;
  std::deque<uint32_t> ready;  // Fibers whose wait has started, first come first served.
  int64_t now = kStartMs;
  Random random;  // uuid() and, with Options::jitter, backoffs.
};

// Pure functions see the run's virtual time and its generator's bytes.
class VirtualContext final : public stdlib::FunctionContext {
 public:
  explicit VirtualContext(Run& run) : run_(run) {}
  int64_t now_ms() override { return run_.now; }
  void random_bytes(std::span<uint8_t> out) override;

 private:
  Run& run_;
};

// Each call below runs one machine function on `run` at run.now and applies
// the decision's fiber lists to run.ready: stopped and removed fibers leave
// it, ready ones join its end. The decision is returned for its events and
// status.

// A fresh instance of saga `saga` with `input` (validated by the caller).
runtime::Decision begin(const runtime::LinkedProgram& program, Run& run, uint32_t saga,
                        const Value& input, const Options& options);

// The attempt fiber `fiber` waits for ended with `outcome`.
runtime::Decision attempt_ended(const runtime::LinkedProgram& program, Run& run, uint32_t fiber,
                                const runtime::Outcome& outcome, const Options& options);

// An operator cancels the instance, as Engine::cancel does.
runtime::Decision cancel(const runtime::LinkedProgram& program, Run& run, const Options& options);

// The saga's deadline passes (`message`: what the history says).
runtime::Decision deadline(const runtime::LinkedProgram& program, Run& run, std::string message,
                           const Options& options);

// The process dies after the last commit and restarts: the state goes
// through its checkpoint encoding and is resumed. Fails (naming the
// problem) when the checkpoint does not decode to the state it was written
// from.
Result<runtime::Decision> crash(const runtime::LinkedProgram& program, Run& run,
                                const Options& options);

}  // namespace saga::sim
