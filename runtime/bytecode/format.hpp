// Reading and writing .sagac files.
//
// Layout (all integers little-endian; docs/sagac-format.md has the details):
//   header   magic "SAGAC\x1a\r\n" (8 bytes: the \x1a and \r\n catch text-mode
//            transfers, as Lua's header does), u16 format version, u16 flags
//            (0), u32 opcode count of the writer, u32 section count,
//            16-byte program hash
//   sections u32 kind, u32 byte length, payload; kinds in SectionKind
//   trailer  u64 XXH3-64 checksum of every preceding byte
//
// load() checks the magic, version, checksum, every length and index, then runs
// the verifier, so a Program it returns is safe to execute. It never crashes or
// throws on any input, however corrupted or truncated.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/bytecode/program.hpp"
#include "saga/status.hpp"

namespace saga::bytecode {

enum class SectionKind : uint32_t {
  kConstants = 1,
  kFunctions = 2,
  kActions = 3,
  kPolicies = 4,
  kServices = 5,
  kSteps = 6,
  kSagas = 7,
  kCode = 8,
  kLines = 9,    // Debug: pc -> line:column.
  kSource = 10,  // Debug: source file name and text.
};

// Computes the program hash (over the non-debug sections), stores it in
// program.hash and returns the complete file image.
std::vector<uint8_t> serialize(Program& program);

// Parses and fully verifies a file image. Errors have code kCorrupt (bad magic,
// checksum, lengths, verifier findings) or kUnsupported (newer format version,
// more opcodes than this runtime knows) and a message that names the problem,
// e.g. "not a .sagac file (bad magic)" or "file is truncated (expected 120
// bytes of section 'code', 17 left)".
Result<Program> load(std::span<const uint8_t> image);

// Reads a file and load()s it; I/O errors have code kIoError and name the path.
Result<Program> load_file(const std::string& path);

// Writes serialize(program) to `path` atomically (temporary file + rename).
Status save_file(Program& program, const std::string& path);

}  // namespace saga::bytecode
