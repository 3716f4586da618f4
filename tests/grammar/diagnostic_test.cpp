// Tests of the diagnostic format (grammar/diagnostic.cpp) on awkward source lines:
// a window of a long line with the caret under the right character, columns
// counted in characters under UTF-8 text, bytes that are not UTF-8 and control
// characters printed as U+FFFD in text, and JSON that never throws on them. And
// decode_utf8() (grammar/source.cpp), which decides what is UTF-8.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "grammar/diagnostic.hpp"
#include "grammar/source.hpp"

namespace saga {
namespace {

// The lines of a rendered diagnostic.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// Whether every byte of [s] belongs to a well-formed UTF-8 character.
bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const uint32_t n = decode_utf8(s.substr(i)).length;
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Renders one error at [offset] (of [length] bytes) in [text].
std::string render(const std::string& text, uint32_t offset, uint32_t length = 1) {
  SourceFile file("t.saga", text);
  return render_diagnostic(file, Diagnostic{Severity::Error, {offset, length}, "boom", ""});
}

TEST(DiagnosticWindow, LinesOfUpTo120CharactersAreShownWhole) {
  const std::string line(120, 'a');
  const auto out = lines_of(render(line, 119));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1], " 1 | " + line);
  EXPECT_EQ(out[2], "   | " + std::string(119, ' ') + "^");
  // One more, and a window of 100 is shown.
  EXPECT_EQ(lines_of(render(line + "a", 0))[1], " 1 | " + std::string(100, 'a') + "...");
}

TEST(DiagnosticWindow, AMegabyteLineShowsAWindowAroundTheCaret) {
  // A 1 MB line with an X in the middle, and the error at the X.
  std::string line(1 << 20, 'a');
  const uint32_t at = 500'000;
  line[at] = 'X';
  const std::string out = render("saga s() {\n" + line + "\n}\n", 11 + at);
  EXPECT_LT(out.size(), 400u) << "the whole line was printed";
  const auto rows = lines_of(out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], "t.saga:2:500001: error: boom");
  // " 2 | ...aaaX...aaa...": cut on both sides, about 100 characters shown.
  const std::string source = rows[1];
  EXPECT_EQ(source.substr(0, 8), " 2 | ...");
  EXPECT_EQ(source.substr(source.size() - 3), "...");
  EXPECT_LE(source.size(), 5u + 3 + 100 + 3);
  // The caret is under the X.
  EXPECT_EQ(rows[2].find('^'), source.find('X')) << source << "\n" << rows[2];
  EXPECT_EQ(rows[2].find('^'), 5u + 3 + 40);
}

TEST(DiagnosticWindow, CutOnlyWhereTheLineContinues) {
  std::string line(1000, 'a');
  line[2] = 'X';
  line[997] = 'Y';
  // Near the start: no "..." before.
  auto rows = lines_of(render(line, 2));
  EXPECT_EQ(rows[1].substr(0, 8), " 1 | aaX");
  EXPECT_EQ(rows[1].substr(rows[1].size() - 3), "...");
  EXPECT_EQ(rows[2].find('^'), rows[1].find('X'));
  // Near the end: no "..." after, and the window is still 100 characters wide.
  rows = lines_of(render(line, 997));
  EXPECT_EQ(rows[1], " 1 | ..." + line.substr(900));
  EXPECT_EQ(rows[2].find('^'), rows[1].find('Y'));
  // At the end of the line (a missing token): the caret just after the last character.
  rows = lines_of(render(line + "\n", 1000, 0));
  EXPECT_EQ(rows[1], " 1 | ..." + line.substr(900));
  EXPECT_EQ(rows[2].find('^'), rows[1].size());
}

TEST(DiagnosticWindow, TheUnderlineEndsAtTheWindow) {
  // An unterminated string from column 1 to the end of a long line.
  const std::string line = "\"" + std::string(5000, 's');
  const auto rows = lines_of(render(line, 0, static_cast<uint32_t>(line.size())));
  EXPECT_EQ(rows[2], "   | ^" + std::string(99, '~'));
}

TEST(DiagnosticWindow, ColumnsCountCharactersNotBytes) {
  // "é" is two bytes and "→" three, but each is one column on the screen.
  const std::string text = "let café = \"→\" x";
  const auto rows = lines_of(render(text, static_cast<uint32_t>(text.find('x'))));
  EXPECT_EQ(rows[0], "t.saga:1:19: error: boom");  // The column in the header counts bytes.
  EXPECT_EQ(rows[2], "   | " + std::string(15, ' ') + "^");
  // A span over one multi-byte character is one column wide.
  EXPECT_EQ(lines_of(render(text, 7, 2))[2], "   |        ^");
}

TEST(DiagnosticWindow, LongLinesOfMultiByteCharactersAreCutBetweenCharacters) {
  std::string line;
  for (int i = 0; i < 300; ++i) line += "é";
  line += "X";
  const std::string out = render(line, static_cast<uint32_t>(line.size() - 1));
  EXPECT_TRUE(is_utf8(out));
  const auto rows = lines_of(out);
  EXPECT_EQ(rows[1], " 1 | ..." + line.substr(line.size() - 1 - 2 * 99));
}

TEST(DiagnosticText, InvalidBytesAndControlCharactersArePrintedAsReplacementCharacters) {
  const std::string text = "let x = \"\xff\xfe\" \x1b[31m y\r z";
  SourceFile file("bad\xe9.saga", text);
  Diagnostic d{Severity::Error,
               {static_cast<uint32_t>(text.find('y')), 1},
               "service url '\xff' is bad",
               "not \xc3"};
  const std::string out = render_diagnostic(file, d);
  EXPECT_TRUE(is_utf8(out)) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.find('\r'), std::string::npos);
  const auto rows = lines_of(out);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], "bad\xEF\xBF\xBD.saga:1:20: error: service url '\xEF\xBF\xBD' is bad");
  EXPECT_EQ(rows[1], " 1 | let x = \"\xEF\xBF\xBD\xEF\xBF\xBD\" \xEF\xBF\xBD[31m y\xEF\xBF\xBD z");
  // One column per replaced byte: the caret is still under the y.
  EXPECT_EQ(rows[2], "   | " + std::string(19, ' ') + "^");
  EXPECT_EQ(rows[3], "help: not \xEF\xBF\xBD");
}

TEST(DiagnosticText, PrintableReplacesAndCuts) {
  EXPECT_EQ(printable("caf\xc3\xa9 \xff\x1b\x7f\t."),
            "caf\xc3\xa9 \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\t.");
  EXPECT_EQ(printable("\xc2\x85"), "\xEF\xBF\xBD");  // A C1 control (NEL).
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("\xc3\xa9\xc3\xa9\xc3\xa9", 2), "\xc3\xa9\xc3\xa9...");
  EXPECT_EQ(printable("abc", 3), "abc");
}

TEST(DiagnosticText, TabsAreKeptInTheCaretLine) {
  const auto rows = lines_of(render("\tlet\tx", 5));
  EXPECT_EQ(rows[2], "   | \t   \t^");
}

TEST(DiagnosticText, LongMessagesAreCut) {
  SourceFile file("t.saga", "x");
  const std::string name(100'000, 'n');
  const std::string out = render_diagnostic(
      file, Diagnostic{Severity::Error, {0, 1}, "unknown variable '" + name + "'", name});
  EXPECT_LT(out.size(), 1000u);
  EXPECT_NE(out.find("unknown variable 'nnn"), std::string::npos);
  EXPECT_NE(out.find("nnn...\n"), std::string::npos);
}

TEST(DiagnosticJson, InvalidBytesDoNotThrow) {
  SourceFile file("bad\xff.saga", "service s { url \"\xff\" }");
  Diagnostics diags(file);
  diags.error({17, 1}, "service url '\xff' must start with http://", "help \xfe");
  std::string json;
  ASSERT_NO_THROW(json = diags.render_json());
  EXPECT_TRUE(is_utf8(json));
  EXPECT_NE(json.find("\"message\": \"service url '\xEF\xBF\xBD' must start with http://\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"file\": \"bad\xEF\xBF\xBD.saga\""), std::string::npos) << json;
}

struct Utf8Case {
  const char* bytes;
  uint32_t code_point, length;  // length 0: not UTF-8.
};

class Utf8Test : public ::testing::TestWithParam<Utf8Case> {};

TEST_P(Utf8Test, Decodes) {
  const Utf8Case& c = GetParam();
  const Utf8Char got = decode_utf8(c.bytes);
  EXPECT_EQ(got.length, c.length) << c.bytes;
  if (c.length != 0) {
    EXPECT_EQ(got.code_point, c.code_point) << c.bytes;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Utf8Test,
                         ::testing::Values(Utf8Case{"a", 'a', 1}, Utf8Case{"\xc3\xa9", 0xE9, 2},
                                           Utf8Case{"\xe2\x86\x92", 0x2192, 3},
                                           Utf8Case{"\xf0\x9f\x98\x80", 0x1F600, 4},
                                           Utf8Case{"\xf4\x8f\xbf\xbf", 0x10FFFF, 4},
                                           Utf8Case{"\xff", 0, 0},   // Never a UTF-8 byte.
                                           Utf8Case{"\x80", 0, 0},   // A continuation byte alone.
                                           Utf8Case{"\xc3", 0, 0},   // Cut short by the end.
                                           Utf8Case{"\xc3(", 0, 0},  // Cut short by ASCII.
                                           Utf8Case{"\xc0\x80", 0, 0},          // Overlong NUL.
                                           Utf8Case{"\xe0\x80\xaf", 0, 0},      // Overlong '/'.
                                           Utf8Case{"\xed\xa0\x80", 0, 0},      // A surrogate half.
                                           Utf8Case{"\xf4\x90\x80\x80", 0, 0},  // Above U+10FFFF.
                                           Utf8Case{"\xf8\x88\x80\x80\x80", 0, 0}));

}  // namespace
}  // namespace saga
