// Checkpoints: the compact binary snapshot of an InstanceState that the store
// keeps for every instance and that resume starts from.
//
// Layout: a version byte, an XXH3-64 checksum (8 bytes, little-endian) of the
// rest, then in order: saga, phase, pc, the operand stack (count, Values),
// the slots (count, Values), the compensation stack (count, then step and
// in-doubt byte each), wait, step + 1 (0 = none), args, attempt, wake_at,
// started, deadline (zig-zag varints), cancelled and had_effects bytes, error
// class and message (length-prefixed), output. Integers are LEB128 varints;
// Values use the binary Value encoding (saga/value.hpp). A checkpoint refers to its program by
// position (saga index, pc, step indexes), which is safe because an instance is pinned to the
// program hash it started with. decode() checks the checksum and every index against the program,
// and that pc and stack depth match a yield point of the verified code, so a damaged checkpoint is
// refused (kCorrupt) instead of steering the interpreter somewhere unverified.
#pragma once

#include <string>
#include <string_view>

#include "runtime/vm/vm.hpp"
#include "saga/status.hpp"

namespace saga::runtime {

// Version 2 added InstanceState::earlier_attempt_in_doubt. Version 1 is still
// read (the field is then assumed true while an action is awaited).
inline constexpr uint8_t kCheckpointVersion = 2;

// Appends the checkpoint of `state` to `out`.
void encode_checkpoint(const InstanceState& state, std::string& out);

// Decodes and validates a checkpoint against the program it was taken with.
Result<InstanceState> decode_checkpoint(const LinkedProgram& program, std::string_view bytes);

}  // namespace saga::runtime
