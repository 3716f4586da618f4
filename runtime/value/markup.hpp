// Escaping text for markup: the one escaper of HTML and XML text of the
// project (the web view's pages, `sagactl test --junit`'s XML). Header-only,
// like json_quote.hpp.
#pragma once

#include <string>
#include <string_view>

namespace saga {

// `text` with & < > " ' replaced by entities (&apos; is both XML's and
// HTML5's), so it is safe as element content and as a quoted attribute value.
// It does not check UTF-8 (callers scrub first).
inline std::string escape_markup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace saga
