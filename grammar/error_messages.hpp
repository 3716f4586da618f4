// Every syntax error message of the .saga parser, in one table. A row
// `SAGA_SYNTAX_ERROR(rule, {...})` gives the message (and optional help line) the
// user sees when the grammar commits with `must<rule>` and `rule` does not
// match. The control in grammar/parse.cpp follows PEGTL 3.x's must_if<>
// contract: `errors::message<Rule>` is the message, and a `must<>` point without
// a row fails to compile, so users never see a demangled rule name. (parse.cpp
// throws its own small exception instead of must_if's parse_error, because
// parse_error computes a line and column by rescanning the file and forgets
// which rule failed; we need the rule's row for the role and anchor fields.)
// Messages are one sentence, lower case, without a trailing period, naming
// tokens in 'quotes', as grammar/diagnostic.hpp asks.
// Included only by grammar/parse.cpp and the grammar tests.
#pragma once

#include <cstdint>

#include "grammar/saga_grammar.hpp"

namespace saga::grammar {

// Where the error's span starts. Most errors point at the token where the
// parser stopped; a few point back at the construct that is left open.
enum class ErrorAnchor : uint8_t {
  Token,        // The offending token (after whitespace and comments).
  StringOpen,   // The opening '"' of the unterminated string, to the end of its line.
  CommentOpen,  // The '/*' of the unterminated comment.
  Escape,       // The '\' of the bad escape sequence.
  Number,       // The whole malformed number.
};

// Extra, token-dependent help that parse.cpp may add.
enum class ErrorHint : uint8_t {
  None,
  Statement,  // At a statement position: explain step clauses and missing 'let'.
  // Where an expression was expected. A reserved word that starts a statement
  // or item there (`output` followed by `step ...`), or `and`/`or`, means the
  // expression is missing, so the reserved-word message is not used for those.
  Expression,
};

struct ErrorText {
  const char* message = nullptr;  // nullptr: the rule is not a commit point.
  const char* help = nullptr;     // Optional "help:" line.
  // When set and the offending token is a reserved word, the message becomes
  // "'timeout' is a reserved word and cannot name <reserved_role>".
  const char* reserved_role = nullptr;
  ErrorAnchor anchor = ErrorAnchor::Token;
  ErrorHint hint = ErrorHint::None;
};

// The table: error_text<Rule> is empty unless a row below specialises it.
template <typename Rule>
inline constexpr ErrorText error_text{};

// The must_if<> view of the table.
template <typename Rule>
inline constexpr const char* error_message = error_text<Rule>.message;

struct errors {
  template <typename Rule>
  static constexpr const char* message = error_message<Rule>;
};

#define SAGA_SYNTAX_ERROR(RULE, ...) \
  template <>                        \
  inline constexpr ErrorText error_text<peg::RULE> = ErrorText __VA_ARGS__

// clang-format off

// Lexical errors.
SAGA_SYNTAX_ERROR(block_comment_rest, {.message = "unterminated comment",
    .help = "a block comment ends with '*/'", .anchor = ErrorAnchor::CommentOpen});
SAGA_SYNTAX_ERROR(string_close, {.message = "unterminated string",
    .help = "a string must end with '\"' on the same line; write \\n for a line break",
    .anchor = ErrorAnchor::StringOpen});
SAGA_SYNTAX_ERROR(escape_char, {.message = "unknown escape sequence",
    .help = "the escapes are \\\" \\\\ \\/ \\n \\t \\r \\$ and \\uXXXX", .anchor = ErrorAnchor::Escape});
SAGA_SYNTAX_ERROR(number_end, {.message = "invalid number",
    .help = "a duration is a number directly followed by ms, s, m, h or d, as in 200ms",
    .anchor = ErrorAnchor::Number});
SAGA_SYNTAX_ERROR(interp_close, {.message = "expected '}' to close the interpolation"});

// Expressions.
SAGA_SYNTAX_ERROR(expression, {.message = "expected an expression", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(list_close, {.message = "expected ',' or ']' to close the list"});
SAGA_SYNTAX_ERROR(object_colon, {.message = "expected ':' after the object key"});
SAGA_SYNTAX_ERROR(object_close, {.message = "expected ',' or '}' to close the object",
    .help = "object members are written 'key: value' and separated by ','"});
SAGA_SYNTAX_ERROR(paren_close, {.message = "expected ')' to close the parenthesis"});
SAGA_SYNTAX_ERROR(call_close, {.message = "expected ',' or ')' to close the argument list"});
SAGA_SYNTAX_ERROR(field_name, {.message = "expected a field name after '.'"});
SAGA_SYNTAX_ERROR(index_close, {.message = "expected ']' to close the index"});
SAGA_SYNTAX_ERROR(neg_operand, {.message = "expected an expression after '-'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(mul_operand, {.message = "expected an expression after the operator", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(add_operand, {.message = "expected an expression after the operator", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(cmp_operand, {.message = "expected an expression after the comparison", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(cmp_unchained, {.message = "comparisons cannot be chained",
    .help = "combine them with 'and', as in: a < b and b < c"});
SAGA_SYNTAX_ERROR(not_operand, {.message = "expected an expression after 'not'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(and_operand, {.message = "expected an expression after 'and'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(or_operand, {.message = "expected an expression after 'or'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});

// Configuration bodies and values.
SAGA_SYNTAX_ERROR(config_number, {.message = "expected a number after '-'"});
SAGA_SYNTAX_ERROR(config_colon, {.message = "expected ':' after the setting name"});
SAGA_SYNTAX_ERROR(config_field_value, {.message = "expected a value after ':'",
    .help = "a value is a number, duration, string, name, list [a, b] or call f(x)"});
SAGA_SYNTAX_ERROR(config_close, {.message = "expected ',' or '}' to close the settings",
    .help = "settings are written 'name: value' and separated by ','"});

// Services and retry policies.
SAGA_SYNTAX_ERROR(service_name, {.message = "expected a service name after 'service'",
    .reserved_role = "a service"});
SAGA_SYNTAX_ERROR(service_open, {.message = "expected '{' after the service name"});
SAGA_SYNTAX_ERROR(service_close, {.message = "expected a service clause (url, timeout, breaker, bulkhead, op) or '}'"});
SAGA_SYNTAX_ERROR(url_value, {.message = "expected a string after 'url'",
    .help = "for example: url \"http://127.0.0.1:8081\""});
SAGA_SYNTAX_ERROR(timeout_value, {.message = "expected a duration after 'timeout'",
    .help = "for example: timeout 2s"});
SAGA_SYNTAX_ERROR(breaker_body, {.message = "expected '{' to start the breaker settings",
    .help = "for example: breaker { failures: 5, reset: 30s }"});
SAGA_SYNTAX_ERROR(bulkhead_value, {.message = "expected a number after 'bulkhead'"});
SAGA_SYNTAX_ERROR(op_name, {.message = "expected an operation name after 'op'",
    .help = "for example: op release = DELETE \"/reservations/${id}\""});
SAGA_SYNTAX_ERROR(op_equals, {.message = "expected '=' after the operation name"});
SAGA_SYNTAX_ERROR(op_method, {.message = "expected an HTTP method such as GET or POST after '='"});
SAGA_SYNTAX_ERROR(op_path, {.message = "expected a path string after the HTTP method"});
SAGA_SYNTAX_ERROR(retry_name, {.message = "expected a policy name after 'retry'",
    .reserved_role = "a retry policy"});
SAGA_SYNTAX_ERROR(retry_body, {.message = "expected '{' to start the retry policy",
    .help = "for example: retry standard { attempts: 3, backoff: fixed(1s) }"});

// Steps.
SAGA_SYNTAX_ERROR(step_name, {.message = "expected a step name after 'step'", .reserved_role = "a step"});
SAGA_SYNTAX_ERROR(step_open, {.message = "expected '{' after the step name"});
SAGA_SYNTAX_ERROR(step_close, {.message = "expected a step clause (do, undo, timeout, retry, undo_retry) or '}'"});
SAGA_SYNTAX_ERROR(do_action, {.message = "expected an action after 'do'",
    .help = "for example: do inventory.reserve(order: order_id) -> reservation"});
SAGA_SYNTAX_ERROR(undo_action, {.message = "expected an action after 'undo'",
    .help = "for example: undo inventory.release(reservation: reservation.id)"});
SAGA_SYNTAX_ERROR(action_dot_segment, {.message = "expected a name after '.'"});
SAGA_SYNTAX_ERROR(args_open, {.message = "expected '(' after the action name",
    .help = "an action call looks like service.operation(name: value)"});
SAGA_SYNTAX_ERROR(arg_colon, {.message = "expected ':' after the argument name",
    .help = "action arguments are named, as in: order: order_id"});
SAGA_SYNTAX_ERROR(arg_value, {.message = "expected an expression after ':'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(args_close, {.message = "expected ')' to close the argument list",
    .help = "action arguments are written 'name: value' and separated by ','"});
SAGA_SYNTAX_ERROR(bind_name, {.message = "expected a variable name after '->'", .reserved_role = "a variable"});
SAGA_SYNTAX_ERROR(retry_ref, {.message = "expected a policy name or '{' after 'retry'",
    .reserved_role = "a retry policy"});
SAGA_SYNTAX_ERROR(undo_retry_ref, {.message = "expected a policy name or '{' after 'undo_retry'",
    .reserved_role = "a retry policy"});

// Statements.
SAGA_SYNTAX_ERROR(block_close, {.message = "expected a statement (step, let, if, parallel, foreach, fail, output, deadline) or '}'",
    .hint = ErrorHint::Statement});
SAGA_SYNTAX_ERROR(let_name, {.message = "expected a variable name after 'let'", .reserved_role = "a variable"});
SAGA_SYNTAX_ERROR(let_equals, {.message = "expected '=' after the variable name"});
SAGA_SYNTAX_ERROR(let_value, {.message = "expected an expression after '='", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(if_cond, {.message = "expected a condition after 'if'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(if_then, {.message = "expected '{' to start the 'if' block"});
SAGA_SYNTAX_ERROR(else_body, {.message = "expected 'if' or '{' after 'else'"});
SAGA_SYNTAX_ERROR(fail_message, {.message = "expected an error message after 'fail'",
    .help = "for example: fail rejected \"card declined\"", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(output_value, {.message = "expected an expression after 'output'", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(deadline_value, {.message = "expected a duration after 'deadline'",
    .help = "for example: deadline 10m"});
SAGA_SYNTAX_ERROR(foreach_var, {.message = "expected a loop variable after 'foreach'",
    .reserved_role = "a loop variable"});
SAGA_SYNTAX_ERROR(foreach_in, {.message = "expected 'in' after the loop variable",
    .help = "for example: foreach item in items { ... }"});
SAGA_SYNTAX_ERROR(foreach_list, {.message = "expected a list after 'in'",
    .help = "for example: foreach item in items { ... }", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(max_value, {.message = "expected a number after 'max'",
    .help = "for example: parallel foreach item in items max 8 { ... }", .reserved_role = "a variable",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(foreach_body, {.message = "expected '{' to start the loop body",
    .help = "a loop is written: foreach item in items { ... }, or parallel foreach item in items max 8 { ... }"});
SAGA_SYNTAX_ERROR(emit_type, {.message = "expected an event type after 'emit'",
    .help = "for example: emit order.placed { order: order_id }"});
SAGA_SYNTAX_ERROR(event_type_segment, {.message = "expected a name after '.' in the event type",
    .help = "an event type is dotted names without spaces, as in: order.placed"});
SAGA_SYNTAX_ERROR(emit_data, {.message = "expected '{' with the event's fields after the event type",
    .help = "for example: emit order.placed { order: order_id }"});
SAGA_SYNTAX_ERROR(branch_name, {.message = "expected a branch name after 'branch'",
    .reserved_role = "a branch"});
SAGA_SYNTAX_ERROR(branch_body, {.message = "expected '{' after the branch name",
    .help = "a branch is written: branch name { ... }"});
SAGA_SYNTAX_ERROR(await_signal_name, {.message = "expected a signal name after 'await signal'",
    .help = "for example: await signal approve timeout 48h -> decision", .reserved_role = "a signal"});
SAGA_SYNTAX_ERROR(await_event_type, {.message = "expected an event type after 'await event'",
    .help = "for example: await event payment.completed where event.data.order == order_id timeout 10m -> paid"});
SAGA_SYNTAX_ERROR(await_event_more, {.message = "expected an event type after ','",
    .help = "an await of one of several events: await event payment.completed, payment.failed where event.data.order == order_id timeout 10m -> result"});
SAGA_SYNTAX_ERROR(await_where_cond, {.message = "expected a condition after 'where'",
    .help = "the event's fields the await waits for, as in: where event.data.order == order_id",
    .hint = ErrorHint::Expression});
SAGA_SYNTAX_ERROR(await_timeout_value, {.message = "expected a duration after 'timeout'",
    .help = "for example: await signal approve timeout 48h -> decision"});
SAGA_SYNTAX_ERROR(await_bind_name, {.message = "expected a variable name after '->'", .reserved_role = "a variable"});
SAGA_SYNTAX_ERROR(await_else_body, {.message = "expected '{' after 'else'",
    .help = "the timeout's handler is a block: await signal approve timeout 48h -> d else { ... }"});

// Sagas and the file.
SAGA_SYNTAX_ERROR(saga_name, {.message = "expected a saga name after 'saga'", .reserved_role = "a saga"});
SAGA_SYNTAX_ERROR(params_open, {.message = "expected '(' after the saga name",
    .help = "a saga without inputs is written: saga name() { ... }"});
SAGA_SYNTAX_ERROR(param_type, {.message = "expected a type name after ':'",
    .help = "the types are string, number, bool, list, object and any"});
SAGA_SYNTAX_ERROR(params_close, {.message = "expected ',' or ')' to close the parameter list",
    .reserved_role = "a parameter"});
SAGA_SYNTAX_ERROR(saga_body, {.message = "expected '{' to start the saga body"});
SAGA_SYNTAX_ERROR(trigger_type, {.message = "expected an event type after 'on'",
    .help = "a trigger is written: on order.placed start payment(order: event.data.order)"});
SAGA_SYNTAX_ERROR(trigger_start, {.message = "expected 'start' after the event type",
    .help = "a trigger is written: on order.placed start payment(order: event.data.order)"});
SAGA_SYNTAX_ERROR(trigger_saga, {.message = "expected the name of the saga to start after 'start'",
    .reserved_role = "a saga"});
SAGA_SYNTAX_ERROR(trigger_open, {.message = "expected '(' after the saga name",
    .help = "a trigger of a saga without inputs is written: on order.placed start audit()"});
SAGA_SYNTAX_ERROR(trigger_close, {.message = "expected ',' or ')' to close the trigger's arguments"});
SAGA_SYNTAX_ERROR(file_end, {.message = "expected 'service', 'retry', 'saga' or 'on'"});

// Limits (the number is peg::kMaxNesting).
SAGA_SYNTAX_ERROR(too_deep_expression, {.message = "expression nested too deeply",
    .help = "the limit is 256 levels; split it up with 'let'"});
SAGA_SYNTAX_ERROR(too_deep_block, {.message = "blocks nested too deeply",
    .help = "the limit is 256 levels"});

// clang-format on

#undef SAGA_SYNTAX_ERROR

// Messages that do not belong to one rule. The reserved-word message is
// assembled as kReservedPrefix + word + kReservedMiddle + role.
namespace messages {
inline constexpr const char* kReservedPrefix = "'";
inline constexpr const char* kReservedMiddle = "' is a reserved word and cannot name ";
inline constexpr const char* kReservedHelp =
    "choose another name; the reserved words are service, retry, saga, step, do, undo, timeout, "
    "let, if, else, fail, output, deadline, true, false, null, and, or, not";
// Help at a statement position when the token is a step clause keyword; the
// keyword goes between the two parts.
inline constexpr const char* kStepClauseHelpPrefix = "'";
inline constexpr const char* kStepClauseHelpSuffix =
    "' is a step clause; it belongs inside 'step name { ... }'";
inline constexpr const char* kMissingLetHelp = "variables are declared with 'let name = value'";
// Statements other languages have and .saga v1 lacks, named when one starts a
// statement, with what to write today. They are not reserved words: `let emit = 1`
// and a variable named `try` stay valid, and `try = 1` gets the missing 'let' help
// instead.
struct UnsupportedStatement {
  const char* word;
  const char* message;
  const char* help;
};
inline constexpr const char* kLoopHelp =
    "to run steps once per item, write: foreach item in items { ... } (or parallel foreach)";
inline constexpr UnsupportedStatement kUnsupportedStatements[] = {
    {"for", "'for' loops are not supported yet", kLoopHelp},
    {"while", "'while' loops are not supported yet", kLoopHelp},
    {"await", "'await' is not supported yet",
     "to wait for something, poll it with a step that fails until it is ready and give the "
     "step a retry policy, or wait with sleep(for: ...)"},
    {"try", "'try' blocks are not supported yet",
     "give the step a retry policy for the failures it should survive, and an undo that "
     "compensates it when the saga fails"},
};
// Help at a statement position for the context words that start a statement only in
// one form (saga_grammar.hpp, statement_word), when they stand there in another:
// `parallel step a { ... }`, `foreach (x in xs)`, `branch { ... }`.
struct StatementForm {
  const char* word;
  const char* help;
};
inline constexpr StatementForm kStatementForms[] = {
    {"parallel",
     "a parallel block is written: parallel { branch a { ... } branch b { ... } }, and a "
     "parallel loop: parallel foreach item in items max 8 { ... }"},
    {"foreach", "a loop is written: foreach item in items { ... }"},
    {"emit", "an event is written: emit order.placed { order: order_id }"},
    {"branch",
     "a branch is written directly inside a parallel block: parallel { branch a { ... } }"},
};
// Help when the input ends while a bracket is open: "the '{' at line 3, column 12 is never
// closed" (assembled in parse.cpp).
inline constexpr const char* kUnclosedHelpPrefix = "the '";
inline constexpr const char* kUnclosedHelpLine = "' at line ";
inline constexpr const char* kUnclosedHelpColumn = ", column ";
inline constexpr const char* kUnclosedHelpSuffix = " is never closed";
inline constexpr const char* kTooManyErrors =
    "too many syntax errors; giving up on the rest of the file";
inline constexpr const char* kUrlInterpolation = "service url cannot interpolate";
inline constexpr const char* kUrlInterpolationHelp =
    "the url is fixed; pass the parts that vary as action arguments";
inline constexpr const char* kKeyInterpolation = "object keys cannot interpolate";
inline constexpr const char* kNumberOutOfRange = "number is out of range";
// A byte that is not UTF-8, anywhere in the file (code, strings, comments), reported at
// the first such byte of each line: kInvalidUtf8Prefix + "FF" + kInvalidUtf8Suffix.
inline constexpr const char* kInvalidUtf8Prefix = "invalid UTF-8 byte 0x";
inline constexpr const char* kInvalidUtf8Suffix = ": the source must be UTF-8";
inline constexpr const char* kInvalidUtf8Help =
    "save the file as UTF-8 (it may be in another encoding, such as Latin-1); in a string, "
    "\\uXXXX writes any character";
// A character beyond ASCII where the parser expected a token. In or next to a name (or
// where a name may stand): "'é' (U+00E9)" + kNonAsciiNameSuffix.
inline constexpr const char* kNonAsciiNameSuffix =
    " cannot be part of a name: identifiers are ASCII (letters, digits and '_')";
inline constexpr const char* kNonAsciiNameHelp =
    "use only A-Z, a-z, 0-9 and '_' in names; other characters are fine in strings and "
    "comments";
// Elsewhere: kNonAsciiPrefix + "'→' (U+2192)" + kNonAsciiSuffix.
inline constexpr const char* kNonAsciiPrefix = "unexpected character ";
inline constexpr const char* kNonAsciiSuffix =
    ": outside strings and comments, .saga source is ASCII";
inline constexpr const char* kNonAsciiHelp =
    "identifiers are ASCII letters, digits and '_'; other characters are fine in strings and "
    "comments";
// Help for typographic quotes (“ ” „ ‘ ’ « »), usually pasted from a word processor.
inline constexpr const char* kCurlyQuoteHelp =
    "strings are written in straight double quotes: \"...\"";
inline constexpr const char* kFileTooLarge = "file is too large to parse (the limit is 4 GiB)";
inline constexpr const char* kInternalError = "internal parser error";
inline constexpr const char* kSyntaxError = "syntax error";
}  // namespace messages

}  // namespace saga::grammar
