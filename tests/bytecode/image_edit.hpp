// Helpers that edit .sagac images while keeping them self-consistent, so
// that tests (and the fuzz target of tests/fuzz) reach the loader's checks
// that sit behind the checksum and the hash. No GoogleTest here: the fuzz
// build links this file without it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace saga::bytecode::test {

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
