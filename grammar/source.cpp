// Line table construction and offset -> line:column lookup for SourceFile, and
// reading files with a size limit.
#include "grammar/source.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace saga {

SourceFile::SourceFile(std::string name, std::string text)
    : name_(std::move(name)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

LineCol SourceFile::locate(uint32_t offset) const {
  offset = std::min<uint32_t>(offset, static_cast<uint32_t>(text_.size()));
  // The line is the last line start at or before the offset.
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  uint32_t line = static_cast<uint32_t>(it - line_starts_.begin());
  return {line, offset - line_starts_[line - 1] + 1};
}

std::string_view SourceFile::line_text(uint32_t line) const {
  if (line == 0 || line > line_starts_.size()) return {};
  uint32_t begin = line_starts_[line - 1];
  uint32_t end =
      line < line_starts_.size() ? line_starts_[line] : static_cast<uint32_t>(text_.size());
  std::string_view view(text_.data() + begin, end - begin);
  while (!view.empty() && (view.back() == '\n' || view.back() == '\r')) view.remove_suffix(1);
  return view;
}

Utf8Char decode_utf8(std::string_view text) {
  if (text.empty()) return {};
  const auto b0 = static_cast<unsigned char>(text[0]);
  if (b0 < 0x80) return {b0, 1};
  // The lead byte gives the length and the smallest code point that needs it (anything
  // below is an overlong form); 0x80-0xC1 and 0xF5-0xFF never start a character.
  uint32_t length = 0, min = 0, cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, min = 0x80, cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, min = 0x800, cp = b0 & 0x0Fu;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, min = 0x10000, cp = b0 & 0x07u;
  } else {
    return {};
  }
  if (text.size() < length) return {};
  for (uint32_t i = 1; i < length; ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if ((b & 0xC0) != 0x80) return {};
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {cp, length};
}

// "16 MiB" for whole mebibytes, else the number of bytes.
static std::string size_text(std::size_t bytes) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  return bytes % kMiB == 0 ? fmt::format("{} MiB", bytes / kMiB) : fmt::format("{} bytes", bytes);
}

std::optional<std::string> read_file(const std::string& path, std::string& error,
                                     std::size_t limit) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) {
    error = fmt::format("cannot read '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  // Read in chunks rather than by the file's size: pipes and devices have none. One byte
  // past the limit tells a file of exactly [limit] bytes from a larger one.
  std::string text;
  char chunk[1 << 16];
  while (text.size() <= limit) {
    const std::size_t want = std::min(sizeof chunk, limit + 1 - text.size());
    const std::size_t got = std::fread(chunk, 1, want, file.get());
    text.append(chunk, got);
    if (got < want) break;
  }
  if (std::ferror(file.get())) {
    error = fmt::format("cannot read '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  if (text.size() > limit) {
    error =
        fmt::format("cannot read '{}': it is larger than {}, the limit for source and input files",
                    path, size_text(limit));
    return std::nullopt;
  }
  return text;
}

}  // namespace saga
