// Grammar tests that parse() never throws, crashes or reports out-of-range
// spans, whatever the input: every truncation of samples/order.saga, deep
// nesting of each recursive construct (100000 levels), random bytes, random
// token soup and random edits of the sample. Covers the nesting limits and the
// error recovery loop of grammar/parse.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "grammar/saga_grammar.hpp"
#include "tests/grammar/ast_dump.hpp"

namespace saga::grammar::test {
namespace {

std::string sample() {
  std::ifstream in(std::string(SAGA_SOURCE_DIR) + "/samples/order.saga", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Parses [text] and checks the invariants that hold for any input: the result
// agrees with the diagnostics, and every span lies inside the text.
void check_invariants(const std::string& text) {
  Parsed p(text);
  EXPECT_EQ(p.ok, p.diags.error_count() == 0) << text;
  for (const Diagnostic& d : p.diags.all()) {
    EXPECT_LE(uint64_t{d.span.offset} + d.span.length, text.size()) << text << "\n" << d.message;
    EXPECT_FALSE(d.message.empty());
  }
  // Rendering must not trip over any span either.
  EXPECT_FALSE(p.ok && !p.diags.render_text().empty());
  if (!p.ok) {
    EXPECT_FALSE(p.diags.render_text().empty());
  }
}

TEST(Robustness, EveryTruncationOfTheSample) {
  const std::string text = sample();
  ASSERT_FALSE(text.empty());
  size_t ok_count = 0;
  for (size_t n = 0; n <= text.size(); ++n) {
    const std::string prefix = text.substr(0, n);
    Parsed p(prefix);
    ok_count += p.ok;
    ASSERT_EQ(p.ok, p.diags.error_count() == 0) << n;
    for (const Diagnostic& d : p.diags.all()) {
      ASSERT_LE(uint64_t{d.span.offset} + d.span.length, n) << n;
    }
  }
  Parsed full(text);
  EXPECT_TRUE(full.ok);
  EXPECT_GT(ok_count, 0u);  // Some prefixes end between items.
}

TEST(Robustness, EveryTruncationOfAParallelSaga) {
  // The statements that start fibers, cut at every byte (nested, with max and
  // context words used as names).
  const std::string text =
      "saga trip(id, items: list) {\n"
      "  let in = 1\n"
      "  parallel {\n"
      "    branch flight { step book_flight { do airline.book(trip: id) -> f } }\n"
      "    branch hotel { foreach n in items { step h { do hotels.book(n: n) -> h } } }\n"
      "  }\n"
      "  parallel foreach item in items max 8 { step reserve { do inv.reserve(sku: item.sku) } }\n"
      "  fail msg foreach max in h max in { }\n"
      "}\n";
  Parsed full(text);
  ASSERT_TRUE(full.ok) << full.diags.render_text();
  for (size_t n = 0; n < text.size(); ++n) {
    const std::string prefix = text.substr(0, n);
    Parsed p(prefix);
    ASSERT_EQ(p.ok, p.diags.error_count() == 0) << n;
    if (n > 0 && n < text.size() - 1) {
      EXPECT_FALSE(p.ok) << prefix;
    }
    for (const Diagnostic& d : p.diags.all()) {
      ASSERT_LE(uint64_t{d.span.offset} + d.span.length, n) << n;
    }
  }
}

struct DeepCase {
  const char* name;
  std::string text;
  const char* message;  // Expected error, or "" when the input is fine.
};

std::vector<DeepCase> deep_cases() {
  const size_t n = 100000;    // Deep cases.
  const size_t flat = 20000;  // Flat cases (kept smaller for sanitizer builds).
  return {
      {"parens", "saga a() { let x = " + std::string(n, '(') + " }",
       "expression nested too deeply"},
      {"lists", "saga a() { let x = " + std::string(n, '[') + " }", "expression nested too deeply"},
      {"objects", "saga a() { let x = " + repeat("{a:", n) + " }", "expression nested too deeply"},
      {"calls", "saga a() { let x = " + repeat("f(", n) + " }", "expression nested too deeply"},
      {"indexes", "saga a() { let x = " + repeat("a[", n) + " }", "expression nested too deeply"},
      {"minus", "saga a() { let x = " + std::string(n, '-') + "1 }",
       "expression nested too deeply"},
      {"not", "saga a() { let x = " + repeat("not ", n) + "1 }", "expression nested too deeply"},
      {"interpolation", "saga a() { let x = " + repeat("\"${", n) + " }",
       "expression nested too deeply"},
      {"config lists", "retry r { a: " + std::string(n, '[') + " }",
       "expression nested too deeply"},
      {"config calls", "retry r { a: " + repeat("f(", n) + " }", "expression nested too deeply"},
      {"blocks", "saga a() { " + repeat("if x { ", n) + " }", "blocks nested too deeply"},
      {"else if", "saga a() { if x {} " + repeat("else if x {} ", n) + "}",
       "blocks nested too deeply"},
      {"parallel blocks", "saga a() { " + repeat("parallel { branch b { ", n) + " }",
       "blocks nested too deeply"},
      {"loops", "saga a() { " + repeat("foreach x in y { ", n) + " }", "blocks nested too deeply"},
      {"parallel loops", "saga a() { " + repeat("parallel foreach x in y max 2 { ", n) + " }",
       "blocks nested too deeply"},
      {"only opens", std::string(n, '{'), "expected 'service', 'retry', 'saga' or 'on'"},
      {"only quotes", std::string(n, '"'), "expected 'service', 'retry', 'saga' or 'on'"},
      // Flat source that builds a deep tree (operators and postfixes nest to
      // the left) is limited too, since later passes walk trees recursively.
      {"long sum", "saga a() { let x = 1" + repeat(" + 1", n) + " }",
       "expression nested too deeply"},
      {"long field chain", "saga a() { let x = a" + repeat(".b", n) + " }",
       "expression nested too deeply"},
      {"long index chain", "saga a() { let x = a" + repeat("[0]", n) + " }",
       "expression nested too deeply"},
      {"long and chain", "saga a() { let x = a" + repeat(" and a", n) + " }",
       "expression nested too deeply"},
      // Long but flat trees are fine.
      {"200 terms", "saga a() { let x = 1" + repeat(" + 1", 200) + " }", ""},
      {"long list", "saga a() { let x = [1" + repeat(", 1", flat) + "] }", ""},
      {"long call", "saga a() { let x = f(1" + repeat(", 1", flat) + ") }", ""},
      {"long object", "saga a() { let x = {a: 1" + repeat(", a: 1", flat) + "} }", ""},
      {"long string", "saga a() { let x = \"" + repeat("a${b}", flat) + "\" }", ""},
      {"long config list", "retry r { on: [a" + repeat(", a", flat) + "] }", ""},
      {"many arguments", "saga a() { step s { do a.b(x: 1" + repeat(", x: 1", flat) + ") } }", ""},
      {"many settings", "retry r { a: 1" + repeat(", a: 1", flat) + " }", ""},
      {"long else-if chain", "saga a() { if x {} " + repeat("else if x {} ", 200) + "}", ""},
      {"200 parens",
       "saga a() { let x = " + std::string(200, '(') + "1" + std::string(200, ')') + " }", ""},
      {"200 blocks", "saga a() { " + repeat("if x { ", 200) + std::string(200, '}') + " }", ""},
      {"100 parallel blocks",
       "saga a() { " + repeat("parallel { branch b { ", 100) + std::string(200, '}') + " }", ""},
      {"200 loops", "saga a() { " + repeat("foreach x in y { ", 200) + std::string(200, '}') + " }",
       ""},
      {"many statements", "saga a() { " + repeat("let x = 1\n", flat) + "}", ""},
  };
}

TEST(Robustness, DeepNesting) {
  for (const DeepCase& c : deep_cases()) {
    SCOPED_TRACE(c.name);
    Parsed p(c.text);
    if (c.message[0] == '\0') {
      EXPECT_TRUE(p.ok) << p.diags.render_text().substr(0, 400);
    } else {
      EXPECT_FALSE(p.ok);
      ASSERT_FALSE(p.diags.all().empty());
      EXPECT_EQ(p.diags.all()[0].message, c.message);
    }
  }
}

TEST(Robustness, NestingLimitIsExact) {
  // The let value is one level; 255 more parentheses reach the limit.
  const size_t levels = peg::kMaxNesting - 1;
  Parsed ok("saga a() { let x = " + std::string(levels, '(') + "1" + std::string(levels, ')') +
            " }");
  EXPECT_TRUE(ok.ok) << ok.first_error();
  Parsed deep("saga a() { let x = " + std::string(levels + 1, '(') + "1" +
              std::string(levels + 1, ')') + " }");
  EXPECT_EQ(deep.first_error(), "expression nested too deeply");
}

TEST(Robustness, RandomBytes) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 3000; ++i) {
    std::string text(rng() % 200, '\0');
    for (char& c : text) c = static_cast<char>(rng() & 0xFF);
    check_invariants(text);
  }
}

TEST(Robustness, RandomTokenSoup) {
  // Sequences of real tokens reach much deeper into the grammar than bytes do.
  static const char* const kTokens[] = {
      "saga",   "service", "retry", "step",   "do",         "undo",    "timeout",  "let",
      "if",     "else",    "fail",  "output", "deadline",   "true",    "false",    "null",
      "and",    "or",      "not",   "url",    "op",         "breaker", "bulkhead", "x",
      "a.b",    "f",       "(",     ")",      "{",          "}",       "[",        "]",
      ",",      ":",       "=",     "==",     "<",          ">=",      "+",        "-",
      "*",      "/",       "%",     ".",      "->",         "1",       "2.5",      "1e3",
      "200ms",  "5s",      "\"s\"", "\"${",   "\"a${b}c\"", "\"",      "\\",       "/*",
      "*/",     "//",      "\n",    " ",      "$",          "5x",      "parallel", "foreach",
      "branch", "in",      "max"};
  std::mt19937 rng(777);
  const size_t count = sizeof kTokens / sizeof kTokens[0];
  for (int i = 0; i < 4000; ++i) {
    std::string text;
    const size_t n = rng() % 60;
    for (size_t k = 0; k < n; ++k) {
      text += kTokens[rng() % count];
      if (rng() % 3 != 0) text += ' ';
    }
    check_invariants(text);
  }
}

TEST(Robustness, RandomEditsOfTheSample) {
  const std::string base = sample();
  std::mt19937 rng(4242);
  static const char kBytes[] = "{}()[]\"$\\/*,:.-=<>!ab1 \n";
  for (int i = 0; i < 3000; ++i) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text.erase(at, 1 + rng() % 3);
          break;
        case 1:
          text.insert(at, 1, kBytes[rng() % (sizeof kBytes - 1)]);
          break;
        default:
          text[at] = kBytes[rng() % (sizeof kBytes - 1)];
          break;
      }
    }
    check_invariants(text);
  }
}

TEST(Robustness, EmbeddedNulAndHighBytes) {
  check_invariants(std::string("saga a() { let x = \"a\0b\" }", 26));
  check_invariants(std::string("saga a() {\0}", 12));
  check_invariants("saga a() { let x = \"\xC3\xA9\xF0\x9F\x98\x80\" }");
  check_invariants("saga \xC3\xA9() {}");
  Parsed p(std::string("saga a() { let x = \"a\0b\" }", 26));
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.file.sagas[0].body[0].expr->text, std::string("a\0b", 3));
}

}  // namespace
}  // namespace saga::grammar::test
