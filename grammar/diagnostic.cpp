// Collecting, ordering and rendering diagnostics (text and JSON).
#include "grammar/diagnostic.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace saga {

void Diagnostics::error(Span span, std::string message, std::string help) {
  items_.push_back({Severity::Error, span, std::move(message), std::move(help)});
  ++errors_;
}

void Diagnostics::warning(Span span, std::string message, std::string help) {
  items_.push_back({Severity::Warning, span, std::move(message), std::move(help)});
}

void Diagnostics::sort() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return a.span.offset < b.span.offset;
  });
  auto same = [](const Diagnostic& a, const Diagnostic& b) {
    return a.severity == b.severity && a.span.offset == b.span.offset && a.message == b.message;
  };
  items_.erase(std::unique(items_.begin(), items_.end(), same), items_.end());
  errors_ =
      static_cast<size_t>(std::count_if(items_.begin(), items_.end(), [](const Diagnostic& d) {
        return d.severity == Severity::Error;
      }));
}

static const char* severity_name(Severity s) {
  return s == Severity::Error ? "error" : "warning";
}

// How much of a source line a diagnostic shows: a line of up to kMaxWholeLineColumns
// characters is shown whole; of a longer one, a window of kWindowColumns characters that
// starts kColumnsBeforeCaret characters before the caret, with "..." where the line is
// cut. So an error on a 1 MB line prints about 100 columns, not the line and a caret
// line of a megabyte each, while a line a little over 100 characters is not cut for
// the sake of a few characters.
constexpr uint32_t kMaxWholeLineColumns = 120;
constexpr uint32_t kWindowColumns = 100;
constexpr uint32_t kColumnsBeforeCaret = 40;
// Messages and help lines may quote names and strings from the source; beyond this many
// characters they are cut with "...".
constexpr uint32_t kMaxMessageColumns = 300;
constexpr std::string_view kCut = "...";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD, the replacement character.

// The length of the character at [i] of [s]: its UTF-8 length, or 1 for a byte that is
// not UTF-8 (shown as one U+FFFD).
static std::size_t char_length(std::string_view s, std::size_t i) {
  return std::max<std::size_t>(1, decode_utf8(s.substr(i)).length);
}

// Appends printable([s], [max_chars]).
static void append_printable(std::string& out, std::string_view s,
                             std::size_t max_chars = std::string_view::npos) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    if (chars == max_chars) {
      out += kCut;
      return;
    }
    const Utf8Char c = decode_utf8(s.substr(i));
    const bool control =
        c.code_point < 0x20 ? c.code_point != '\t' : (c.code_point >= 0x7F && c.code_point < 0xA0);
    if (c.length == 0 || control) {
      out += kReplacement;
      i += std::max<uint32_t>(c.length, 1);
    } else {
      out.append(s.data() + i, c.length);
      i += c.length;
    }
  }
}

std::string printable(std::string_view s, std::size_t max_chars) {
  std::string out;
  append_printable(out, s, max_chars);
  return out;
}

// The source line of a diagnostic and the caret line under it, for the span that starts
// at byte [caret] of [line] and is [length] bytes long (cut at the end of the line).
// Columns count characters, so the caret lines up under UTF-8 text too.
struct Excerpt {
  std::string source;
  std::string pad;     // Spaces (and the line's tabs) up to the caret.
  uint32_t width = 1;  // Characters under '^~~~'.
};

static Excerpt excerpt(std::string_view line, std::size_t caret, std::size_t length) {
  caret = std::min(caret, line.size());
  // Count the characters before the caret and in the whole line.
  std::size_t before = 0, total = 0;
  for (std::size_t i = 0; i < line.size(); i += char_length(line, i), ++total) {
    if (i < caret) ++before;
  }
  std::size_t first = 0, last = total;  // The window, in characters.
  if (total > kMaxWholeLineColumns) {
    first = before > kColumnsBeforeCaret ? before - kColumnsBeforeCaret : 0;
    last = std::min(total, first + kWindowColumns);
    first = last - kWindowColumns;
  }
  // Byte offsets of the window's ends.
  std::size_t begin = 0, end = line.size();
  for (std::size_t i = 0, n = 0; i < line.size(); i += char_length(line, i), ++n) {
    if (n == first) begin = i;
    if (n == last) end = i;
  }
  Excerpt out;
  if (first > 0) {
    out.source += kCut;
    out.pad.append(kCut.size(), ' ');
  }
  append_printable(out.source, line.substr(begin, end - begin));
  if (last < total) out.source += kCut;
  for (std::size_t i = begin; i < caret; i += char_length(line, i)) {
    out.pad += line[i] == '\t' ? '\t' : ' ';
  }
  // The underline stays on the first line of the span, and in the window.
  const std::size_t stop = std::min(end, caret + length);
  uint32_t width = 0;
  for (std::size_t i = caret; i < stop; i += char_length(line, i)) ++width;
  out.width = std::max<uint32_t>(width, 1);
  return out;
}

std::string render_diagnostic(const SourceFile& file, const Diagnostic& d, bool color) {
  const char* bold = color ? "\033[1m" : "";
  const char* red = color ? (d.severity == Severity::Error ? "\033[1;31m" : "\033[1;35m") : "";
  const char* green = color ? "\033[1;32m" : "";
  const char* blue = color ? "\033[1;34m" : "";
  const char* reset = color ? "\033[0m" : "";

  LineCol at = file.locate(d.span.offset);
  std::string out = fmt::format("{}{}:{}:{}: {}{}:{} {}{}{}\n", bold,
                                printable(file.name(), std::string_view::npos), at.line, at.column,
                                red, severity_name(d.severity), reset, bold,
                                printable(d.message, kMaxMessageColumns), reset);
  std::string number = std::to_string(at.line);
  std::string gutter(number.size(), ' ');
  const Excerpt shown = excerpt(file.line_text(at.line), at.column - 1, d.span.length);
  std::string marks = "^" + std::string(shown.width - 1, '~');
  out += fmt::format(" {}{} |{} {}\n", blue, number, reset, shown.source);
  out += fmt::format(" {}{} |{} {}{}{}{}\n", blue, gutter, reset, shown.pad, red, marks, reset);
  if (!d.help.empty()) {
    out += fmt::format("{}help:{} {}\n", green, reset, printable(d.help, kMaxMessageColumns));
  }
  return out;
}

std::string Diagnostics::render_text(bool color) const {
  std::string out;
  for (const Diagnostic& d : items_) out += render_diagnostic(*file_, d, color);
  return out;
}

std::string Diagnostics::render_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const Diagnostic& d : items_) {
    LineCol begin = file_->locate(d.span.offset);
    LineCol end = file_->locate(d.span.offset + d.span.length);
    nlohmann::json item = {{"file", file_->name()},    {"line", begin.line},
                           {"column", begin.column},   {"end_line", end.line},
                           {"end_column", end.column}, {"severity", severity_name(d.severity)},
                           {"message", d.message}};
    if (!d.help.empty()) item["help"] = d.help;
    list.push_back(std::move(item));
  }
  // Messages may quote bytes of a file that is not UTF-8: replace them (as U+FFFD)
  // rather than let dump() throw.
  return list.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace saga
