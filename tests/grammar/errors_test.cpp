// Grammar tests for input that does not parse: a table of broken snippets with
// the message, position and length of the error each must produce, the help
// lines that depend on the offending token, and error recovery (each broken
// top-level item reported once, the good items kept). Covers the control and
// report() in grammar/parse.cpp and the table in grammar/error_messages.hpp.
#include <gtest/gtest.h>

#include <string>

#include "tests/grammar/ast_dump.hpp"

namespace saga::grammar::test {
namespace {

// The message at a statement position that starts no statement.
constexpr const char* kExpectedStatement =
    "expected a statement (step, let, if, parallel, foreach, fail, output, deadline) or '}'";

struct ErrorCase {
  const char* input;
  uint32_t line, column, length;  // Where the first error points.
  const char* message;
  const char* help = nullptr;  // Substring of the help line; nullptr: not checked.
};

// Names the case by its input in gtest's output.
void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << '"' << c.input << '"';
}

class ErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ErrorTest, ReportsMessageAndPosition) {
  const ErrorCase& c = GetParam();
  Parsed p(c.input);
  EXPECT_FALSE(p.ok) << c.input;
  ASSERT_FALSE(p.diags.all().empty()) << c.input;
  const Diagnostic& d = p.diags.all()[0];
  EXPECT_EQ(d.message, c.message) << c.input;
  const LineCol lc = p.src.locate(d.span.offset);
  EXPECT_EQ(lc.line, c.line) << c.input;
  EXPECT_EQ(lc.column, c.column) << c.input;
  EXPECT_EQ(d.span.length, c.length) << c.input;
  if (c.help != nullptr) {
    EXPECT_NE(d.help.find(c.help), std::string::npos) << c.input << "\n" << d.help;
  }
  EXPECT_EQ(d.severity, Severity::Error);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ErrorTest,
    ::testing::Values(
        // Top level.
        ErrorCase{"foo", 1, 1, 3, "expected 'service', 'retry', 'saga' or 'on'"},
        ErrorCase{"saga a() {}\n  }", 2, 3, 1, "expected 'service', 'retry', 'saga' or 'on'"},
        ErrorCase{"\xff\xfe", 1, 1, 1, "invalid UTF-8 byte 0xFF: the source must be UTF-8",
                  "save the file as UTF-8"},
        ErrorCase{"sagas x() {}", 1, 1, 5, "expected 'service', 'retry', 'saga' or 'on'"},
        // Services.
        ErrorCase{"service { }", 1, 9, 1, "expected a service name after 'service'"},
        ErrorCase{"service s url \"x\" }", 1, 11, 3, "expected '{' after the service name"},
        ErrorCase{"service s { port 80 }", 1, 13, 4,
                  "expected a service clause (url, timeout, breaker, bulkhead, op) or '}'"},
        ErrorCase{"service s { url http }", 1, 17, 4, "expected a string after 'url'"},
        ErrorCase{"service s { timeout }", 1, 21, 1, "expected a duration after 'timeout'"},
        ErrorCase{"service s { breaker 5 }", 1, 21, 1,
                  "expected '{' to start the breaker settings"},
        ErrorCase{"service s { bulkhead }", 1, 22, 1, "expected a number after 'bulkhead'"},
        ErrorCase{"service s { op = GET \"/\" }", 1, 16, 1,
                  "expected an operation name after 'op'"},
        ErrorCase{"service s { op a GET \"/\" }", 1, 18, 3,
                  "expected '=' after the operation name"},
        ErrorCase{"service s { op a = \"/\" }", 1, 20, 1,
                  "expected an HTTP method such as GET or POST after '='"},
        ErrorCase{"service s { op a = GET }", 1, 24, 1,
                  "expected a path string after the HTTP method"},
        ErrorCase{"service timeout { }", 1, 9, 7,
                  "'timeout' is a reserved word and cannot name a service", "reserved words are"},
        // Retry policies and configuration bodies.
        ErrorCase{"retry { }", 1, 7, 1, "expected a policy name after 'retry'"},
        ErrorCase{"retry r attempts: 3", 1, 9, 8, "expected '{' to start the retry policy"},
        ErrorCase{"retry r { attempts 3 }", 1, 20, 1, "expected ':' after the setting name"},
        ErrorCase{"retry r { attempts: }", 1, 21, 1, "expected a value after ':'"},
        ErrorCase{"retry r { a: 1 b: 2 }", 1, 16, 1, "expected ',' or '}' to close the settings"},
        ErrorCase{"retry r { 5 }", 1, 11, 1, "expected ',' or '}' to close the settings"},
        ErrorCase{"retry r { a: [1, 2 }", 1, 20, 1, "expected ',' or ']' to close the list"},
        ErrorCase{"retry r { a: f(1 }", 1, 18, 1, "expected ',' or ')' to close the argument list"},
        ErrorCase{"retry r { a: - x }", 1, 16, 1, "expected a number after '-'"},
        ErrorCase{"retry saga { }", 1, 7, 4,
                  "'saga' is a reserved word and cannot name a retry policy"},
        // Sagas.
        ErrorCase{"saga () {}", 1, 6, 1, "expected a saga name after 'saga'"},
        ErrorCase{"saga a {}", 1, 8, 1, "expected '(' after the saga name", "saga name() {"},
        ErrorCase{"saga a(x y) {}", 1, 10, 1, "expected ',' or ')' to close the parameter list"},
        ErrorCase{"saga a(x:) {}", 1, 10, 1, "expected a type name after ':'", "string, number"},
        ErrorCase{"saga a() let", 1, 10, 3, "expected '{' to start the saga body"},
        ErrorCase{"saga step() {}", 1, 6, 4, "'step' is a reserved word and cannot name a saga"},
        ErrorCase{"saga a(x, if) {}", 1, 11, 2,
                  "'if' is a reserved word and cannot name a parameter"},
        // Statements.
        ErrorCase{"saga a() { x = 1 }", 1, 12, 1, kExpectedStatement, "let name = value"},
        ErrorCase{"saga a() { timeout 2s }", 1, 12, 7, kExpectedStatement,
                  "'timeout' is a step clause"},
        ErrorCase{"saga a() { do x.y() }", 1, 12, 2, kExpectedStatement, "'do' is a step clause"},
        ErrorCase{"saga a() {\n  let x = 1\n", 3, 1, 0, kExpectedStatement,
                  "the '{' at line 1, column 10 is never closed"},
        // Statements of other languages: named, with what to write today.
        ErrorCase{"saga a(items) { for item in items { } }", 1, 17, 3,
                  "'for' loops are not supported yet", "write: foreach item in items { ... }"},
        ErrorCase{"saga a() { while true { } }", 1, 12, 5, "'while' loops are not supported yet",
                  "write: foreach item in items"},
        ErrorCase{"saga a() {\n  await payment.settled(id: 1)\n}", 2, 3, 5,
                  "'await' is not supported yet", "retry policy, or wait with sleep(for: ...)"},
        ErrorCase{"saga a() { try { } }", 1, 12, 3, "'try' blocks are not supported yet",
                  "retry policy"},
        // emit: a dotted type, then the record.
        ErrorCase{"saga a() { emit order_placed(id: 1) }", 1, 29, 1,
                  "expected '{' with the event's fields after the event type",
                  "for example: emit order.placed { order: order_id }"},
        ErrorCase{"saga a() { emit order. { id: 1 } }", 1, 24, 1,
                  "expected a name after '.' in the event type", "dotted names without spaces"},
        ErrorCase{"saga a() { emit order .placed { id: 1 } }", 1, 23, 1,
                  "expected '{' with the event's fields after the event type", "emit order.placed"},
        // parallel, foreach and branch in a form that is not their statement.
        ErrorCase{"saga a() { let x = 1 parallel }", 1, 22, 8, kExpectedStatement,
                  "a parallel block is written: parallel { branch a { ... } branch b { ... } }"},
        ErrorCase{"saga a() { parallel step s { do x.y() } }", 1, 12, 8, kExpectedStatement,
                  "parallel foreach item in items max 8 { ... }"},
        ErrorCase{"saga a(items) { foreach (item in items) { } }", 1, 17, 7, kExpectedStatement,
                  "a loop is written: foreach item in items { ... }"},
        ErrorCase{"saga a() { branch { } }", 1, 12, 6, kExpectedStatement,
                  "directly inside a parallel block: parallel { branch a { ... } }"},
        ErrorCase{"saga a() { parallel = 1 }", 1, 12, 8, kExpectedStatement, "let name = value"},
        // Malformed parallel blocks, branches and loops.
        ErrorCase{"saga a() { branch if { } }", 1, 19, 2,
                  "'if' is a reserved word and cannot name a branch"},
        ErrorCase{"saga a() { parallel { branch a step s {} } }", 1, 32, 4,
                  "expected '{' after the branch name", "branch name { ... }"},
        ErrorCase{"saga a() { parallel { branch a { } }", 1, 37, 0, kExpectedStatement,
                  "the '{' at line 1, column 10 is never closed"},
        ErrorCase{"saga a() { parallel { branch a {", 1, 33, 0, kExpectedStatement,
                  "the '{' at line 1, column 32 is never closed"},
        ErrorCase{"saga a() { foreach step in xs { } }", 1, 20, 4,
                  "'step' is a reserved word and cannot name a loop variable"},
        ErrorCase{"saga a() { foreach x xs { } }", 1, 22, 2,
                  "expected 'in' after the loop variable", "foreach item in items { ... }"},
        ErrorCase{"saga a() { foreach x inn xs { } }", 1, 22, 3,
                  "expected 'in' after the loop variable"},
        ErrorCase{"saga a() { foreach x in { } }", 1, 25, 1, "expected a list after 'in'"},
        ErrorCase{"saga a() { foreach x in }", 1, 25, 1, "expected a list after 'in'"},
        ErrorCase{"saga a() { foreach x in step s { } }", 1, 25, 4, "expected a list after 'in'"},
        ErrorCase{"saga a() { foreach x in timeout { } }", 1, 25, 7,
                  "'timeout' is a reserved word and cannot name a variable"},
        ErrorCase{"saga a() { foreach x in xs max { } }", 1, 32, 1, "expected a number after 'max'",
                  "parallel foreach item in items max 8"},
        ErrorCase{"saga a() { foreach x in xs step s { } }", 1, 28, 4,
                  "expected '{' to start the loop body", "foreach item in items { ... }"},
        ErrorCase{"saga a() { foreach x in xs maximum 3 { } }", 1, 28, 7,
                  "expected '{' to start the loop body"},
        ErrorCase{"saga a() { foreach x in xs max 3 4 { } }", 1, 34, 1,
                  "expected '{' to start the loop body"},
        ErrorCase{"saga a() { parallel foreach x xs { } }", 1, 31, 2,
                  "expected 'in' after the loop variable"},
        ErrorCase{"saga a() { parallel foreach x in xs max }", 1, 41, 1,
                  "expected a number after 'max'"},
        // ... but an assignment to such a name is a missing 'let'.
        ErrorCase{"saga a() { emit = 1 }", 1, 12, 4, kExpectedStatement, "let name = value"},
        ErrorCase{"saga a() { let = 1 }", 1, 16, 1, "expected a variable name after 'let'"},
        ErrorCase{"saga a() { let timeout = 1 }", 1, 16, 7,
                  "'timeout' is a reserved word and cannot name a variable"},
        ErrorCase{"saga a() { let x 1 }", 1, 18, 1, "expected '=' after the variable name"},
        ErrorCase{"saga a() { let x = }", 1, 20, 1, "expected an expression after '='"},
        ErrorCase{"saga a() { let x == 1 }", 1, 19, 1, "expected an expression after '='"},
        ErrorCase{"saga a() { if { } }", 1, 15, 1, "expected a condition after 'if'"},
        ErrorCase{"saga a() { if }", 1, 15, 1, "expected a condition after 'if'"},
        ErrorCase{"saga a() { if x = 1 {} }", 1, 17, 1, "expected '{' to start the 'if' block"},
        ErrorCase{"saga a() { if x {} else let }", 1, 25, 3, "expected 'if' or '{' after 'else'"},
        ErrorCase{"saga a() { fail }", 1, 17, 1, "expected an error message after 'fail'"},
        ErrorCase{"saga a() { output }", 1, 19, 1, "expected an expression after 'output'"},
        ErrorCase{"saga a() { output let }", 1, 19, 3, "expected an expression after 'output'"},
        ErrorCase{"saga a() { output step s {} }", 1, 19, 4,
                  "expected an expression after 'output'"},
        ErrorCase{"saga a() { output timeout }", 1, 19, 7,
                  "'timeout' is a reserved word and cannot name a variable"},
        ErrorCase{"saga a() { let step = 1 }", 1, 16, 4,
                  "'step' is a reserved word and cannot name a variable"},
        ErrorCase{"saga a() { deadline }", 1, 21, 1, "expected a duration after 'deadline'"},
        ErrorCase{"saga a() { deadline step s {} }", 1, 21, 4,
                  "expected a duration after 'deadline'"},
        // Steps.
        ErrorCase{"saga a() { step { } }", 1, 17, 1, "expected a step name after 'step'"},
        ErrorCase{"saga a() { step do { } }", 1, 17, 2,
                  "'do' is a reserved word and cannot name a step"},
        ErrorCase{"saga a() { step s do x.y() }", 1, 19, 2, "expected '{' after the step name"},
        ErrorCase{"saga a() { step s { let x = 1 } }", 1, 21, 3,
                  "expected a step clause (do, undo, timeout, retry, undo_retry) or '}'"},
        ErrorCase{"saga a() { step s { do } }", 1, 24, 1, "expected an action after 'do'"},
        ErrorCase{"saga a() { step s { do x. () } }", 1, 27, 1, "expected a name after '.'"},
        ErrorCase{"saga a() { step s { do x.y } }", 1, 28, 1, "expected '(' after the action name"},
        ErrorCase{"saga a() { step s { do x.y(a) } }", 1, 29, 1,
                  "expected ':' after the argument name"},
        ErrorCase{"saga a() { step s { do x.y(a: ) } }", 1, 31, 1,
                  "expected an expression after ':'"},
        ErrorCase{"saga a() { step s { do x.y(1) } }", 1, 28, 1,
                  "expected ')' to close the argument list", "name: value"},
        ErrorCase{"saga a() { step s { do x.y(a: 1 b: 2) } }", 1, 33, 1,
                  "expected ')' to close the argument list"},
        ErrorCase{"saga a() { step s { do x.y() -> } }", 1, 33, 1,
                  "expected a variable name after '->'"},
        ErrorCase{"saga a() { step s { do x.y() -> null } }", 1, 33, 4,
                  "'null' is a reserved word and cannot name a variable"},
        ErrorCase{"saga a() { step s { undo } }", 1, 26, 1, "expected an action after 'undo'"},
        ErrorCase{"saga a() { step s { retry } }", 1, 27, 1,
                  "expected a policy name or '{' after 'retry'"},
        ErrorCase{"saga a() { step s { retry if } }", 1, 27, 2,
                  "'if' is a reserved word and cannot name a retry policy"},
        ErrorCase{"saga a() { step s { timeout retry x } }", 1, 29, 5,
                  "expected a duration after 'timeout'"},
        // Expressions.
        ErrorCase{"saga a() { let x = (1 + 2 }", 1, 27, 1, "expected ')' to close the parenthesis"},
        ErrorCase{"saga a() { let x = () }", 1, 21, 1, "expected an expression"},
        ErrorCase{"saga a() { let x = 1 + }", 1, 24, 1,
                  "expected an expression after the operator"},
        ErrorCase{"saga a() { let x = 1 * * 2 }", 1, 24, 1,
                  "expected an expression after the operator"},
        ErrorCase{"saga a() { let x = a == }", 1, 25, 1,
                  "expected an expression after the comparison"},
        ErrorCase{"saga a() { let x = a and }", 1, 26, 1, "expected an expression after 'and'"},
        ErrorCase{"saga a() { let x = a or }", 1, 25, 1, "expected an expression after 'or'"},
        ErrorCase{"saga a() { let x = not }", 1, 24, 1, "expected an expression after 'not'"},
        ErrorCase{"saga a() { let x = - }", 1, 22, 1, "expected an expression after '-'"},
        ErrorCase{"saga a() { let x = a < b < c }", 1, 26, 1, "comparisons cannot be chained",
                  "a < b and b < c"},
        ErrorCase{"saga a() { let x = a == b != c }", 1, 27, 2, "comparisons cannot be chained"},
        ErrorCase{"saga a() { let x = a. }", 1, 23, 1, "expected a field name after '.'"},
        ErrorCase{"saga a() { let x = a[1 }", 1, 24, 1, "expected ']' to close the index"},
        ErrorCase{"saga a() { let x = [1 2] }", 1, 23, 1, "expected ',' or ']' to close the list"},
        ErrorCase{"saga a() { let x = [, ] }", 1, 21, 1, "expected ',' or ']' to close the list"},
        ErrorCase{"saga a() { let x = {a 1} }", 1, 23, 1, "expected ':' after the object key"},
        ErrorCase{"saga a() { let x = {a: 1 b: 2} }", 1, 26, 1,
                  "expected ',' or '}' to close the object"},
        ErrorCase{"saga a() { let x = f(1 2) }", 1, 24, 1,
                  "expected ',' or ')' to close the argument list"},
        ErrorCase{"saga a() { let x = timeout }", 1, 20, 7,
                  "'timeout' is a reserved word and cannot name a variable"},
        ErrorCase{"saga a() { let x = a + else }", 1, 24, 4,
                  "expected an expression after the operator"},
        ErrorCase{"saga a() { let x = a and or b }", 1, 26, 2,
                  "expected an expression after 'and'"},
        // Numbers, strings and comments.
        ErrorCase{"saga a() { let x = 5sec }", 1, 20, 4, "invalid number", "ms, s, m, h or d"},
        ErrorCase{"saga a() { let x = 0x10 }", 1, 20, 4, "invalid number"},
        ErrorCase{"saga a() { let x = 1.5e }", 1, 20, 4, "invalid number"},
        ErrorCase{"saga a() { let x = 2min }", 1, 20, 4, "invalid number"},
        ErrorCase{"saga a() { let x = \"abc\n}", 1, 20, 4, "unterminated string"},
        ErrorCase{"saga a() { let x = \"abc", 1, 20, 4, "unterminated string"},
        ErrorCase{"saga a() { let x = \"a ${ \"b }", 1, 26, 4, "unterminated string"},
        ErrorCase{"saga a() { let x = \"a\\qb\" }", 1, 22, 2, "unknown escape sequence", "\\uXXXX"},
        ErrorCase{"saga a() { let x = \"\\u12g4\" }", 1, 21, 5, "unknown escape sequence"},
        ErrorCase{"saga a() { let x = \"a\\", 1, 22, 1, "unknown escape sequence"},
        ErrorCase{"saga a() { let x = \"${}\" }", 1, 23, 1, "expected an expression"},
        ErrorCase{"saga a() { let x = \"${ a b }\" }", 1, 26, 1,
                  "expected '}' to close the interpolation"},
        ErrorCase{"saga a() { let x = {\"${k}\": 1} }", 1, 21, 6, "object keys cannot interpolate"},
        ErrorCase{"saga a() { /* never closed }", 1, 12, 2, "unterminated comment", "'*/'"},
        ErrorCase{"/*/ saga a() {}", 1, 1, 2, "unterminated comment"},
        ErrorCase{"service s { url \"http://${host}/\" }", 1, 17, 17,
                  "service url cannot interpolate"},
        ErrorCase{"saga a() { let x = 1e999 }", 1, 20, 5, "number is out of range"},
        // Bytes that are not UTF-8, wherever they are (here Latin-1 text).
        ErrorCase{"saga a() { let x = \"caf\xe9\" }", 1, 24, 1,
                  "invalid UTF-8 byte 0xE9: the source must be UTF-8", "\\uXXXX"},
        ErrorCase{"// caf\xe9\nsaga a() {}", 1, 7, 1,
                  "invalid UTF-8 byte 0xE9: the source must be UTF-8"},
        ErrorCase{"saga a() { let x = \xc3( }", 1, 20, 1,
                  "invalid UTF-8 byte 0xC3: the source must be UTF-8"},
        ErrorCase{"saga a() { let x = \"\xed\xa0\x80\" }", 1, 21, 1,
                  "invalid UTF-8 byte 0xED: the source must be UTF-8"},
        // Characters beyond ASCII outside strings and comments.
        ErrorCase{"saga a() { let caf\u00e9 = 1 }", 1, 19, 2,
                  "'\u00e9' (U+00E9) cannot be part of a name: identifiers are ASCII (letters, "
                  "digits and '_')",
                  "use only A-Z, a-z, 0-9 and '_' in names"},
        ErrorCase{"saga a() { step r\u00e9server { } }", 1, 18, 2,
                  "'\u00e9' (U+00E9) cannot be part of a name: identifiers are ASCII (letters, "
                  "digits and '_')"},
        ErrorCase{"saga a() { step s { d\u00f6 x.y() } }", 1, 22, 2,
                  "'\u00f6' (U+00F6) cannot be part of a name: identifiers are ASCII (letters, "
                  "digits and '_')"},
        ErrorCase{"saga a() { s\u00f6me = 1 }", 1, 13, 2,
                  "'\u00f6' (U+00F6) cannot be part of a name: identifiers are ASCII (letters, "
                  "digits and '_')"},
        ErrorCase{"saga a() { let \u00f1 = 1 }", 1, 16, 2,
                  "'\u00f1' (U+00F1) cannot be part of a name: identifiers are ASCII (letters, "
                  "digits and '_')"},
        ErrorCase{"saga \u540d\u524d() { }", 1, 6, 3,
                  "'\u540d' (U+540D) cannot be part of a name: identifiers are ASCII (letters, "
                  "digits and '_')"},
        ErrorCase{"saga a() { let x = 1 \u2192 2 }", 1, 22, 3,
                  "unexpected character '\u2192' (U+2192): outside strings and comments, .saga "
                  "source is ASCII",
                  "identifiers are ASCII"},
        ErrorCase{"saga a() { let x = \u201chi\u201d }", 1, 20, 3,
                  "unexpected character '\u201c' (U+201C): outside strings and comments, .saga "
                  "source is ASCII",
                  "straight double quotes"}));

TEST(Errors, NoInternalNamesInMessages) {
  // Whatever the input, messages come from error_messages.hpp, never from
  // demangled PEGTL rule names.
  for (const char* text : {"saga",
                           "saga a",
                           "saga a(",
                           "saga a()",
                           "saga a() {",
                           "saga a() { step",
                           "saga a() { step s {",
                           "saga a() { step s { do",
                           "saga a() { step s { do x",
                           "saga a() { step s { do x.y(",
                           "saga a() { step s { do x.y(a:",
                           "saga a() { let x = [",
                           "saga a() { let x = {",
                           "saga a() { let x = {a",
                           "saga a() { let x = \"${",
                           "service",
                           "service s {",
                           "service s { op",
                           "retry r {",
                           "retry r { a: [",
                           "retry r { a: f(",
                           "saga a() { if x {} else",
                           "saga a() { parallel {",
                           "saga a() { parallel { branch",
                           "saga a() { parallel { branch b",
                           "saga a() { parallel foreach",
                           "saga a() { parallel foreach x in y",
                           "saga a() { foreach x",
                           "saga a() { foreach x in",
                           "saga a() { foreach x in y max",
                           "saga a() { foreach x in y max 2"}) {
    Parsed p(text);
    EXPECT_FALSE(p.ok) << text;
    for (const Diagnostic& d : p.diags.all()) {
      EXPECT_EQ(d.message.find("peg::"), std::string::npos) << text << ": " << d.message;
      EXPECT_EQ(d.message.find("tao::"), std::string::npos) << text << ": " << d.message;
      EXPECT_EQ(d.message.find("parse error"), std::string::npos) << text << ": " << d.message;
    }
  }
}

TEST(Errors, SemanticStringErrorsKeepTheItem) {
  // A url with ${...} is reported, but the service is still in the AST.
  Parsed p("service s { url \"http://${x}\" timeout 1s }\nsaga a() {}");
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.diags.error_count(), 1u);
  ASSERT_EQ(p.file.services.size(), 1u);
  EXPECT_EQ(p.file.services[0].url, "http://${x}");
  EXPECT_NE(p.file.services[0].timeout, nullptr);
  EXPECT_EQ(p.file.sagas.size(), 1u);
}

TEST(Encoding, EachLineWithInvalidBytesIsReportedOnceAndParsingGoesOn) {
  // Latin-1 bytes in a comment, a string and a name; then a syntax error further on.
  Parsed p(
      "// r\xe9sum\xe9\n"
      "saga a() { let x = \"\xff\xfe\" }\n"
      "saga b() { let y\xe9 = 1 }\n"
      "saga c() { let = 1 }\n");
  EXPECT_FALSE(p.ok);
  p.diags.sort();  // As the compiler does: drops the repeat of line 3's byte.
  EXPECT_EQ(p.errors(),
            "1:5: invalid UTF-8 byte 0xE9: the source must be UTF-8\n"
            "2:21: invalid UTF-8 byte 0xFF: the source must be UTF-8\n"
            "3:17: invalid UTF-8 byte 0xE9: the source must be UTF-8\n"
            "4:16: expected a variable name after 'let'\n");
  ASSERT_EQ(p.file.sagas.size(), 1u);  // a parsed (its string holds the bytes); b and c did not.
  EXPECT_EQ(p.file.sagas[0].name, "a");
}

TEST(Encoding, AFileInAnotherEncodingGivesAtMost100Errors) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "// \xe9\xe9\n";
  Parsed p(text);
  EXPECT_EQ(p.diags.error_count(), 100u);
}

TEST(Encoding, ValidUtf8IsFineInStringsAndComments) {
  Parsed p("// caf\u00e9 \u2192 \U0001F600\nsaga a() { output \"\u540d\u524d \u00e9\" }\n");
  EXPECT_TRUE(p.ok) << p.errors();
}

// --- Recovery -------------------------------------------------------------------

TEST(Recovery, TwoBrokenItemsGiveTwoErrors) {
  Parsed p(
      "service a { url \"x\" }\n"
      "saga broken1() {\n"
      "  let x = \n"
      "}\n"
      "saga good() { output 1 }\n"
      "retry broken2 { attempts 3 }\n"
      "saga good2() {}\n");
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.errors(),
            "4:1: expected an expression after '='\n"
            "6:26: expected ':' after the setting name\n");
  ASSERT_EQ(p.file.sagas.size(), 2u);
  EXPECT_EQ(p.file.sagas[0].name, "good");
  EXPECT_EQ(p.file.sagas[1].name, "good2");
  EXPECT_EQ(p.file.services.size(), 1u);
  EXPECT_TRUE(p.file.policies.empty());
}

TEST(Recovery, EachBrokenItemIsReportedOnce) {
  // Several mistakes inside one saga: only the first is reported, and parsing
  // resumes at the next item.
  Parsed p(
      "saga a() {\n"
      "  let = 1\n"
      "  let y = +\n"
      "  step { }\n"
      "}\n"
      "saga b() { output 2 }\n");
  EXPECT_EQ(p.errors(), "2:7: expected a variable name after 'let'\n");
  ASSERT_EQ(p.file.sagas.size(), 1u);
  EXPECT_EQ(p.file.sagas[0].name, "b");
}

TEST(Recovery, MissingCloseBraceResumesAtNextSaga) {
  Parsed p(
      "saga a() {\n"
      "  step s { do x.y() }\n"
      "saga b() { output 1 }\n");
  EXPECT_EQ(
      p.errors(),
      "3:1: expected a statement (step, let, if, parallel, foreach, fail, output, deadline) or "
      "'}'\n");
  ASSERT_EQ(p.file.sagas.size(), 1u);
  EXPECT_EQ(p.file.sagas[0].name, "b");
}

TEST(Recovery, OnlyItemKeywordsAtColumnOneResume) {
  // The indented `retry` inside the broken saga is not a place to resume.
  Parsed p(
      "saga a() {\n"
      "  step s {\n"
      "    do x.y(1)\n"
      "    retry standard\n"
      "  }\n"
      "}\n"
      "retry standard { attempts: 2 }\n");
  EXPECT_EQ(p.errors(), "3:12: expected ')' to close the argument list\n");
  ASSERT_EQ(p.file.policies.size(), 1u);
  EXPECT_EQ(p.file.policies[0].name, "standard");
}

TEST(Recovery, GarbageBetweenItems) {
  Parsed p("saga a() {}\n}}}\nsaga b() {}\n%%%\nservice s {}\n");
  EXPECT_EQ(p.errors(),
            "2:1: expected 'service', 'retry', 'saga' or 'on'\n"
            "4:1: expected 'service', 'retry', 'saga' or 'on'\n");
  EXPECT_EQ(p.file.sagas.size(), 2u);
  EXPECT_EQ(p.file.services.size(), 1u);
}

TEST(Recovery, ErrorOnTheItemLineItself) {
  // The error is on a line that starts with `saga`; recovery must move past it.
  Parsed p("saga a( { }\nsaga b() {}\nsaga c(");
  EXPECT_EQ(p.errors(),
            "1:9: expected ',' or ')' to close the parameter list\n"
            "3:8: expected ',' or ')' to close the parameter list\n");
  ASSERT_EQ(p.file.sagas.size(), 1u);
  EXPECT_EQ(p.file.sagas[0].name, "b");
}

TEST(Recovery, StopsAfterTooManyErrors) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "saga x( {\n";
  Parsed p(text);
  EXPECT_EQ(p.diags.error_count(), 101u);
  EXPECT_EQ(p.diags.all().back().message,
            "too many syntax errors; giving up on the rest of the file");
}

TEST(Recovery, UnterminatedStringResumesOnNextItem) {
  Parsed p("saga a() { let x = \"oops\n}\nsaga b() {}\n");
  EXPECT_EQ(p.errors(), "1:20: unterminated string\n");
  ASSERT_EQ(p.file.sagas.size(), 1u);
  EXPECT_EQ(p.file.sagas[0].name, "b");
}

TEST(Recovery, UnterminatedCommentSwallowsTheRest) {
  Parsed p("saga a() {}\n/* open\nsaga b() {}\n");
  EXPECT_EQ(p.errors(), "2:1: unterminated comment\n");
  EXPECT_EQ(p.file.sagas.size(), 1u);
}

}  // namespace
}  // namespace saga::grammar::test
