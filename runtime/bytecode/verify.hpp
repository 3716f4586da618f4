// The bytecode verifier: proves that a Program cannot make the VM misbehave.
//
// It checks every table index (constants, functions, actions, policies,
// services, steps, sagas), that code decodes into whole instructions, that every
// jump lands on an instruction boundary inside the code, that each saga's main
// code and each undo block can only end in an ending instruction (no falling
// off the end), that operands have the right kind (Str operands name string
// constants, Step operands name steps of the saga being verified, slots are
// below the saga's slot count), that kUndoOnly/kSagaOnly instructions appear
// only where allowed, and that the operand stack depth is the same on every
// path into an instruction, never negative and never above kMaxStackDepth.
// Undo blocks must start and end with an empty stack; yield points other
// than INVOKE's result need no particular depth.
#pragma once

#include <vector>

#include "runtime/bytecode/program.hpp"
#include "saga/status.hpp"

namespace saga::bytecode {

// Returns Ok or a kCorrupt status whose message names the saga, pc and the rule
// broken, e.g. "saga 'order': pc 42: jump target 97 is not an instruction".
// When `depth_before` is given and verification succeeds, it receives one
// entry per code byte: the operand stack depth before the instruction that
// starts there, -1 where no reachable instruction starts, and -2 where two
// blocks share an instruction at different depths. The VM validates
// checkpoints (their pc and stack size) against it.
Status verify(const Program& program, std::vector<int32_t>* depth_before = nullptr);

}  // namespace saga::bytecode
