// Label text for the graph renderers (runtime/graph/): shortening, and the
// escaping each output format needs. Internal to runtime/graph.
#pragma once

#include <string>
#include <string_view>

namespace saga::graph {

// `s` cut to at most `max` bytes at a character boundary, with "..." when
// it was cut; bytes that are not UTF-8 become U+FFFD first.
std::string shorten(std::string_view s, size_t max);

// The text of a label inside a dot double-quoted string: `"` and `\`
// escaped, `&` as &amp; (dot reads entities such as &lt; in labels), each
// '\n' written as the line break \n, other control characters as spaces. No other escape sequence
// of dot (\N, \G, \l) can appear, because every backslash of the text is escaped.
std::string dot_escape(std::string_view s);

// The text of a label inside a Mermaid double-quoted string: `"`, `#`, `<`,
// `>`, `&`, `|` and the backtick as entity codes (#quot; ...), each '\n' as
// <br/>, other control characters as spaces; so the label can hold neither
// markup nor the end of its own quotes.
std::string mermaid_escape(std::string_view s);

}  // namespace saga::graph
