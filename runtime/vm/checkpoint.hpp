// Checkpoints: the compact binary snapshot of an InstanceState that the store
// keeps for every instance and that resume starts from.
//
// Layout (docs/checkpoint.md has the field list): a version byte, an XXH3-64
// checksum of the rest, then varints, bytes and Values in the binary Value
// encoding (saga/value.hpp). A checkpoint refers to its program by position
// (saga index, pc, step indexes), which is safe because an instance is pinned
// to the program hash it started with. decode() checks the checksum and every
// index against the program, and that pc and stack depth match a yield point
// of the verified code, so a damaged checkpoint is refused (kCorrupt) instead of
// steering the interpreter somewhere unverified.
#pragma once

#include <string>
#include <string_view>

#include "runtime/vm/vm.hpp"
#include "saga/status.hpp"

namespace saga::runtime {

inline constexpr uint8_t kCheckpointVersion = 1;

// Appends the checkpoint of `state` to `out`.
void encode_checkpoint(const InstanceState& state, std::string& out);

// Decodes and validates a checkpoint against the program it was taken with.
Result<InstanceState> decode_checkpoint(const LinkedProgram& program, std::string_view bytes);

}  // namespace saga::runtime
