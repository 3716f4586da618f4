// Diagnostics: the one format every error and warning of the front end uses.
//
//   order.saga:12:7: error: unknown service 'inventry'
//      12 |     do inventry.reserve(order: order_id)
//         |        ^~~~~~~~
//   help: did you mean 'inventory'?
//
// Passes report into a Diagnostics collector and keep going; the driver sorts
// them by position and renders them all, as text for people or as JSON for
// editors (--format json).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/source.hpp"

namespace saga {

enum class Severity : uint8_t { Error, Warning };

struct Diagnostic {
  Severity severity = Severity::Error;
  Span span;
  std::string message;  // One sentence, no trailing period, names in 'quotes'.
  std::string help;     // Optional suggestion shown on a "help:" line.
};

class Diagnostics {
 public:
  explicit Diagnostics(const SourceFile& file) : file_(&file) {}

  void error(Span span, std::string message, std::string help = {});
  void warning(Span span, std::string message, std::string help = {});

  const SourceFile& file() const { return *file_; }
  const std::vector<Diagnostic>& all() const { return items_; }
  size_t error_count() const { return errors_; }
  size_t warning_count() const { return items_.size() - errors_; }
  bool has_errors() const { return errors_ > 0; }

  // Orders diagnostics by position (stable, so two at one place keep their
  // order) and drops exact duplicates.
  void sort();

  // Renders every diagnostic in the text format shown above; `color` adds ANSI
  // colours for terminals. Columns are bytes, as in the JSON. A long source line is
  // shown as a window of about 100 characters around the caret, with "..." where it
  // is cut; bytes that are not UTF-8 and control characters other than tab are
  // printed as U+FFFD, so the output is always valid UTF-8.
  std::string render_text(bool color = false) const;

  // Renders a JSON array of {file, line, column, end_line, end_column,
  // severity, message, help} objects. Bytes that are not UTF-8 become U+FFFD.
  std::string render_json() const;

 private:
  const SourceFile* file_;
  std::vector<Diagnostic> items_;
  size_t errors_ = 0;
};

// Renders one diagnostic (used by render_text and by tools that print a single
// error, such as the .sagac loader's callers).
std::string render_diagnostic(const SourceFile& file, const Diagnostic& d, bool color = false);

// [s] as it can be printed on a terminal: bytes that are not UTF-8 and control characters
// other than tab (which could move the cursor or recolour the terminal) become U+FFFD; at
// most [max_chars] characters, with "..." where cut. Used for every text the diagnostics
// print, and by sagactl for its own error lines (which may quote file names and input).
std::string printable(std::string_view s, std::size_t max_chars = std::string_view::npos);

}  // namespace saga
