// Editing .sagac images (image_edit.hpp).
#include "tests/bytecode/image_edit.hpp"

#include <xxhash.h>

#include <cstring>

namespace saga::bytecode::test {

void put_u16(std::vector<uint8_t>& image, size_t at, uint16_t value) {
  image.at(at) = static_cast<uint8_t>(value);
  image.at(at + 1) = static_cast<uint8_t>(value >> 8);
}

void put_u32(std::vector<uint8_t>& image, size_t at, uint32_t value) {
  for (size_t i = 0; i < 4; ++i) image.at(at + i) = static_cast<uint8_t>(value >> (8 * i));
}

uint32_t get_u32(const std::vector<uint8_t>& image, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v |= static_cast<uint32_t>(image.at(at + i)) << (8 * i);
  return v;
}

std::vector<SectionRecord> sections(const std::vector<uint8_t>& image) {
  std::vector<SectionRecord> out;
  if (image.size() < kHeaderSize + kTrailerSize) return out;
  const size_t end = image.size() - kTrailerSize;
  size_t pos = kHeaderSize;
  while (end - pos >= 8) {
    SectionRecord r{pos, get_u32(image, pos), get_u32(image, pos + 4)};
    if (r.length > end - pos - 8) break;
    out.push_back(r);
    pos += 8 + r.length;
  }
  return out;
}

void reseal(std::vector<uint8_t>& image, bool rehash) {
  if (image.size() < kTrailerSize) return;
  if (rehash && image.size() >= kHeaderSize + kTrailerSize) {
    // The hashed range runs from the end of the header to the end of the
    // last non-debug section (kinds 1..8).
    size_t hashed_end = kHeaderSize;
    for (const SectionRecord& r : sections(image)) {
      if (r.kind <= 8) hashed_end = r.offset + 8 + r.length;
    }
    uint16_t version =
        static_cast<uint16_t>(image[kVersionOffset] | (image[kVersionOffset + 1] << 8));
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_withSeed(image.data() + kHeaderSize,
                                                               hashed_end - kHeaderSize, version));
    std::memcpy(image.data() + kHashOffset, canonical.digest, 16);
  }
  const size_t body = image.size() - kTrailerSize;
  uint64_t sum = XXH3_64bits(image.data(), body);
  for (size_t i = 0; i < 8; ++i) image[body + i] = static_cast<uint8_t>(sum >> (8 * i));
}

}  // namespace saga::bytecode::test
