// A JSON string literal from bytes: the one escaper of the project, used by
// the value model's JSON text (value.cpp) and by the disassembler's listing
// of constants (runtime/bytecode/disasm.cpp). Header-only, so that the
// bytecode library needs no link dependency on the value library.
#pragma once

#include <string>
#include <string_view>

#include "runtime/value/utf8.hpp"

namespace saga {

// Appends `s` quoted: `"` and `\` escaped, control characters as \b \f \n
// \r \t or \u00XX; well-formed UTF-8 is copied as it is, a run at a time,
// and a byte that is not part of well-formed UTF-8 is written \ufffd (the
// replacement character), so the text is always valid JSON. With
// `escape_del`, DEL (0x7f) is written \u007f too, for text read on a
// terminal, where it would vanish (JSON allows it raw).
inline void append_json_quoted(std::string& out, std::string_view s, bool escape_del = false) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // Start of the current run of bytes copied as they are.
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = utf8_sequence_length(s, i);
      if (len > 0) {
        i += len - 1;
        continue;
      }
      out.append(s.data() + run, i - run);
      run = i + 1;
      out += "\\ufffd";
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\' && (c != 0x7f || !escape_del)) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

}  // namespace saga
