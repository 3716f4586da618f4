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

std::string render_diagnostic(const SourceFile& file, const Diagnostic& d, bool color) {
  const char* bold = color ? "\033[1m" : "";
  const char* red = color ? (d.severity == Severity::Error ? "\033[1;31m" : "\033[1;35m") : "";
  const char* green = color ? "\033[1;32m" : "";
  const char* blue = color ? "\033[1;34m" : "";
  const char* reset = color ? "\033[0m" : "";

  LineCol at = file.locate(d.span.offset);
  std::string out =
      fmt::format("{}{}:{}:{}: {}{}:{} {}{}{}\n", bold, file.name(), at.line, at.column, red,
                  severity_name(d.severity), reset, bold, d.message, reset);
  std::string_view line = file.line_text(at.line);
  std::string number = std::to_string(at.line);
  std::string gutter(number.size(), ' ');
  // Tabs in the source line are kept in the caret line so the caret lines up.
  std::string pad;
  for (uint32_t i = 1; i < at.column && i - 1 < line.size(); ++i)
    pad += line[i - 1] == '\t' ? '\t' : ' ';
  // The underline stays on the first line of the span.
  uint32_t room = static_cast<uint32_t>(line.size()) >= at.column - 1
                      ? static_cast<uint32_t>(line.size()) - (at.column - 1)
                      : 0;
  uint32_t width = std::max<uint32_t>(1, std::min(d.span.length, std::max<uint32_t>(room, 1)));
  std::string marks = "^" + std::string(width - 1, '~');
  out += fmt::format(" {}{} |{} {}\n", blue, number, reset, line);
  out += fmt::format(" {}{} |{} {}{}{}{}\n", blue, gutter, reset, pad, red, marks, reset);
  if (!d.help.empty()) out += fmt::format("{}help:{} {}\n", green, reset, d.help);
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
  return list.dump(2) + "\n";
}

}  // namespace saga
