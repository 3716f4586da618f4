// Checkpoints: the compact binary snapshots of an InstanceState that the
// store keeps for every instance and that resume starts from.
//
// An instance's checkpoint holds the instance and its root fiber; each child
// fiber (a branch or loop iteration that runs now) has a checkpoint of its
// own, so that a transition rewrites only the fibers that changed (the
// store's fibers table). Both start with a version byte and an XXH3-64
// checksum (8 bytes, little-endian) of the rest; integers are LEB128 varints
// (times zig-zag), strings length-prefixed, Values in the binary Value
// encoding (saga/value.hpp). docs/store.md, "Checkpoints", lists the fields.
// A checkpoint refers to its program by position (saga index, pc, step and
// block indexes), which is safe because an instance is pinned to the program
// hash it started with. decode() checks the checksums, every index against
// the program, the shape of the fiber tree, and that each waiting fiber's pc
// and stack depth match a yield point of the verified code, so a damaged
// checkpoint is refused (kCorrupt) instead of steering the interpreter
// somewhere unverified.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vm/vm.hpp"
#include "saga/status.hpp"

namespace saga::runtime {

// Version 3: fibers, a compensation log with groups and the undo's arguments,
// the stuck flag. Versions 1 and 2 (one fiber, no groups) are still read.
inline constexpr uint8_t kCheckpointVersion = 3;

// Appends the checkpoint of the instance and its root fiber to `out`.
void encode_checkpoint(const InstanceState& state, std::string& out);

// Appends the checkpoint of one child fiber to `out`.
void encode_fiber(const Fiber& fiber, std::string& out);

// A whole state as the store keeps it: the instance's row (encode_checkpoint)
// and one row per child fiber (encode_fiber), in id order.
struct EncodedState {
  std::string instance;
  std::vector<std::string> fibers;
};
EncodedState encode_state(const InstanceState& state);

// Decodes and validates an instance from its checkpoint and the checkpoints
// of its child fibers (any order), against the program it was taken with.
Result<InstanceState> decode_checkpoint(const LinkedProgram& program, std::string_view bytes,
                                        std::span<const std::string> fibers = {});

}  // namespace saga::runtime
