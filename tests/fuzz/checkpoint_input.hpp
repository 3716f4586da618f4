// The input format of the checkpoint target, shared with make_seeds.cpp,
// which writes real checkpoints in it:
//
//   byte 0        which sample program (fuzz::samples(), modulo their number)
//   byte 1        the checkpoint's version byte
//   then          the instance checkpoint's body (what follows the version
//                 byte and the 8-byte checksum), then for each child fiber
//                 kFiberSeparator and that fiber's body (version 3)
//
// The target seals every part itself (version byte, XXH3 checksum), so that
// mutations reach the decoder's structural checks, not only the checksum.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace saga::fuzz {

inline constexpr std::string_view kFiberSeparator =
    "\xff"
    "FIBER"
    "\xff";

struct CheckpointInput {
  uint8_t program = 0;
  std::string instance;             // Sealed.
  std::vector<std::string> fibers;  // Sealed.
};

// A sealed checkpoint of `version` with `body`.
std::string seal(uint8_t version, std::string_view body);

// Splits and seals an input; false when it is too short to hold one.
bool parse_checkpoint_input(std::string_view data, CheckpointInput& out);

// The input that parse_checkpoint_input() turns into these sealed parts.
std::string make_checkpoint_input(uint8_t program, std::string_view instance,
                                  const std::vector<std::string>& fibers);

}  // namespace saga::fuzz
