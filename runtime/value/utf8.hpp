// UTF-8 validation and repair, for text that enters from outside (a
// participant's response body, a program's output, a host action's error
// message) and for every JSON text the runtime writes. nlohmann::json refuses
// to dump a string that is not UTF-8 (it throws), so one invalid byte stored
// in an error message would otherwise break every reader of the database.
// Header-only, like json_quote.hpp, so the bytecode library can use it
// without a link dependency.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace saga {

// The length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 when
// the byte there does not start one: a stray continuation byte, a truncated
// sequence, an overlong form, a surrogate or a code point beyond U+10FFFF.
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t cp = c & (0xFFu >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

// The offset of the first byte that is not part of well-formed UTF-8, or
// npos when `s` is valid throughout.
inline size_t first_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_sequence_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

inline bool is_valid_utf8(std::string_view s) {
  return first_invalid_utf8(s) == std::string_view::npos;
}

// The text with every byte that is not part of well-formed UTF-8 replaced by
// U+FFFD (the replacement character), as browsers and nlohmann::json's
// `replace` handler do. Valid text comes back unchanged.
inline std::string scrub_utf8(std::string_view s) {
  size_t bad = first_invalid_utf8(s);
  if (bad == std::string_view::npos) return std::string(s);
  std::string out(s.substr(0, bad));
  out.reserve(s.size() + 8);
  for (size_t i = bad; i < s.size();) {
    size_t len = utf8_sequence_length(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s, i, len);
      i += len;
    }
  }
  return out;
}

// Replaces `s` by its scrubbed form when it holds invalid bytes (no copy
// when it is valid, the common case).
inline void scrub_utf8_in_place(std::string& s) {
  if (!is_valid_utf8(s)) s = scrub_utf8(s);
}

}  // namespace saga
