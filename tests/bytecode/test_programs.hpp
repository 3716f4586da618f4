// Shared fixtures for the bytecode tests (format, verifier, disassembler): a
// realistic program built with the Assembler the way the compiler would build
// it, a field-by-field comparison of two Programs, and helpers that edit .sagac
// images while keeping them self-consistent, so that tests can reach the
// loader's checks that sit behind the checksum and the hash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/bytecode/program.hpp"

namespace saga::bytecode::test {

// The source text the order program claims to be compiled from; its line
// numbers match the program's line table.
extern const char* const kOrderSource;

// Two sagas over three services, exercising every table and field:
//   order_fulfillment(order_id: string, customer: string, amount: number,
//   items: list): steps reserve and charge (both with undo blocks, one with a
//   named and one with an inline retry policy), a conditional with a join,
//   a CALL, a FAIL branch and a COMPLETE;
//   ping(target): one step invoking the standard-library action "log".
// The constant pool holds constants of every kind. The program verifies.
Program order_program();

// EXPECTs every field of `actual` to equal the same field of `expected`
// (doubles compared by their bits), naming the field on failure.
void expect_same_program(const Program& expected, const Program& actual);

// Offsets inside a .sagac image (see docs/sagac-format.md).
inline constexpr size_t kVersionOffset = 8;
inline constexpr size_t kOpCountOffset = 12;
inline constexpr size_t kSectionCountOffset = 16;
inline constexpr size_t kHashOffset = 20;
inline constexpr size_t kHeaderSize = 36;
inline constexpr size_t kTrailerSize = 8;

void put_u16(std::vector<uint8_t>& image, size_t at, uint16_t value);
void put_u32(std::vector<uint8_t>& image, size_t at, uint32_t value);
uint32_t get_u32(const std::vector<uint8_t>& image, size_t at);

// One section record found by walking the image: where its header starts and
// its kind and payload length.
struct SectionRecord {
  size_t offset = 0;  // Of the u32 kind.
  uint32_t kind = 0;
  uint32_t length = 0;
};
// Walks the section records of a well-formed image.
std::vector<SectionRecord> sections(const std::vector<uint8_t>& image);

// Recomputes the trailer checksum of an edited image (the image must be at
// least a trailer long). With `rehash`, first recomputes the program hash in
// the header from the section records, as the writer would have.
void reseal(std::vector<uint8_t>& image, bool rehash = true);

}  // namespace saga::bytecode::test
