// Drives an instance through the saga machine the way an engine would, with
// the outcome of each attempt chosen by the caller from a fixed table (a
// success, a success without result, a rejection, a timeout, an unsent
// failure, a failure with Retry-After), and now and then a cancel or the
// deadline. Used by the checkpoint target, on every state it decodes, and by
// make_seeds.cpp, to write the checkpoints of real runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "runtime/vm/vm.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace saga::fuzz {

// The environment runs are driven in: `ctx`'s fixed time and randomness, and
// a short compensation policy (2 attempts, 100 ms apart) so that an undo
// gives up within a few decisions.
runtime::Env driving_env(FixedContext& ctx);

// A state's checkpoint as the store keeps it (runtime/vm/checkpoint.hpp).
using Encoded = runtime::EncodedState;
inline Encoded encode(const runtime::InstanceState& state) {
  return runtime::encode_state(state);
}

// Calls `visit` with the state after `first` and after each later decision,
// taking `pick()` (any byte) to choose each outcome; stops at a final
// decision, when no fiber is ready, or after `max_decisions`.
void drive(const runtime::LinkedProgram& program, runtime::InstanceState& state,
           runtime::Decision first, runtime::Env& env, const std::function<uint8_t()>& pick,
           const std::function<void(const runtime::InstanceState&)>& visit, int max_decisions);

}  // namespace saga::fuzz
