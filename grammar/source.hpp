// A source file held in memory, with the line table the front end needs to turn
// byte offsets into line:column positions. The parser and every later pass keep
// only byte offsets (see Span); positions are computed when a diagnostic or a
// debug line table needs them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace saga {

// A half-open byte range [offset, offset + length) in one SourceFile.
struct Span {
  uint32_t offset = 0;
  uint32_t length = 0;
};

// A 1-based line and column; the column counts bytes, as compilers usually do.
struct LineCol {
  uint32_t line = 1;
  uint32_t column = 1;
};

class SourceFile {
 public:
  SourceFile(std::string name, std::string text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }

  // Returns the line and column of a byte offset; offsets past the end map to
  // the position just after the last character.
  LineCol locate(uint32_t offset) const;

  // Returns the text of a 1-based line without its line terminator.
  std::string_view line_text(uint32_t line) const;

  uint32_t line_count() const { return static_cast<uint32_t>(line_starts_.size()); }

 private:
  std::string name_;
  std::string text_;
  std::vector<uint32_t> line_starts_;  // Byte offset of the first character of each line.
};

// One character decoded from UTF-8: its code point and how many bytes (1 to 4) it takes;
// length 0 when the bytes are not well-formed UTF-8 (a stray continuation byte, an
// overlong form, a surrogate, a code point above U+10FFFF, or a sequence cut short).
struct Utf8Char {
  uint32_t code_point = 0;
  uint32_t length = 0;
};

// Decodes the character at the start of [text] (length 0 when [text] is empty). The
// parser reports bytes that do not decode (a .saga file must be UTF-8) and diagnostics
// show them as U+FFFD, so nothing the front end prints is invalid UTF-8.
Utf8Char decode_utf8(std::string_view text);

// The largest file the tools read into memory: 16 MiB, for .saga sources and for
// `sagactl run --input-file`. Far above any real saga (2 000 copies of the sample, 58 000
// lines, are 2 MB) and well below the parser's 4 GiB span limit; it exists so that a
// mistaken path (/dev/zero, a log file, a disk image) is refused at once instead of being
// read until memory runs out.
inline constexpr std::size_t kMaxFileBytes = std::size_t{16} << 20;

// Reads the whole file at [path] (a regular file, a pipe or a device) into memory, but
// never more than [limit] bytes. On failure returns nullopt and sets [error] to one
// sentence naming the file: "cannot read 'x.saga': No such file or directory", or
// "cannot read '/dev/zero': it is larger than 16 MiB, the limit for source and input files".
std::optional<std::string> read_file(const std::string& path, std::string& error,
                                     std::size_t limit = kMaxFileBytes);

}  // namespace saga
