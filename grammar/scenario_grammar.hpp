// The PEGTL grammar of scenario test files (grammar/scenario.hpp), with the
// message of every point where it commits. Included only by
// grammar/scenario_parse.cpp, which holds the actions, and its tests.
//
//   file       = sep [program] { (test | start | answer) sep } EOF
//   program    = 'program' STRING
//   test       = 'test' STRING '{' { clause } '}'
//   clause     = start | answer | cancel | expect | signal
//   start      = 'start' IDENT OBJECT
//   answer     = 'answer' target reply { 'then' reply }
//   target     = IDENT { '.' IDENT } | STRING          (an action, or a call's key)
//   reply      = [ 'after' DURATION ] ( 'ok' [ JSON ] | 'fail' IDENT [ STRING ] [ 'unsent' ] |
//   'never' ) cancel     = 'cancel' ( 'after' DURATION | 'during' target ) expect     = 'expect' (
//   'status' IDENT | 'output' JSON | 'error' IDENT [ STRING ]
//                         | ('calls' | 'undos') '[' [ call { ',' call } ] ']'
//                         | 'history' '[' [ event { ',' event } ] ']' | 'elapsed' DURATION )
//   call       = target [ OBJECT ]
//   event      = IDENT [ IDENT | STRING ]
//   signal     = ('signal' | 'send') ...              (reserved: an error until the language has
//   signals) DURATION   = DIGITS [ '.' DIGITS ] ( 'ms' | 's' | 'm' | 'h' | 'd' )
//
// JSON is RFC 8259 JSON, and may span lines with `//` comments; STRING is a
// JSON string. Whitespace and `//` comments separate tokens.
#pragma once

#include <cstddef>

#include <tao/pegtl.hpp>

namespace saga::scenario::peg {

using namespace tao::pegtl;

// clang-format off

// ---- Lexical ------------------------------------------------------------------
struct line_comment : seq<two<'/'>, until<eolf>> {};
struct ws : sor<space, line_comment> {};
struct sep : star<ws> {};
struct ident_first : ranges<'a', 'z', 'A', 'Z', '_'> {};
struct ident_other : ranges<'a', 'z', 'A', 'Z', '0', '9', '_'> {};
struct ident : seq<ident_first, star<ident_other>> {};
template <typename Key> struct key : seq<Key, not_at<ident_other>> {};

struct kw_program : key<TAO_PEGTL_STRING("program")> {};
struct kw_test : key<TAO_PEGTL_STRING("test")> {};
struct kw_start : key<TAO_PEGTL_STRING("start")> {};
struct kw_answer : key<TAO_PEGTL_STRING("answer")> {};
struct kw_then : key<TAO_PEGTL_STRING("then")> {};
struct kw_after : key<TAO_PEGTL_STRING("after")> {};
struct kw_ok : key<TAO_PEGTL_STRING("ok")> {};
struct kw_fail : key<TAO_PEGTL_STRING("fail")> {};
struct kw_never : key<TAO_PEGTL_STRING("never")> {};
struct kw_unsent : key<TAO_PEGTL_STRING("unsent")> {};
struct kw_cancel : key<TAO_PEGTL_STRING("cancel")> {};
struct kw_during : key<TAO_PEGTL_STRING("during")> {};
struct kw_expect : key<TAO_PEGTL_STRING("expect")> {};
struct kw_status : key<TAO_PEGTL_STRING("status")> {};
struct kw_output : key<TAO_PEGTL_STRING("output")> {};
struct kw_error : key<TAO_PEGTL_STRING("error")> {};
struct kw_calls : key<TAO_PEGTL_STRING("calls")> {};
struct kw_undos : key<TAO_PEGTL_STRING("undos")> {};
struct kw_history : key<TAO_PEGTL_STRING("history")> {};
struct kw_elapsed : key<TAO_PEGTL_STRING("elapsed")> {};
struct kw_signal : sor<key<TAO_PEGTL_STRING("signal")>, key<TAO_PEGTL_STRING("send")>> {};

// ---- JSON ------------------------------------------------------------------------
// Lists and objects nest at most this deep (the control in scenario_parse.cpp
// counts them): the grammar recurses per level, and 256 levels need well
// under a megabyte of stack. A value deeper than the runtime's own limit
// (saga::kMaxDepth, also 256) is refused when the test file is checked.
inline constexpr std::size_t kMaxJsonNesting = 256;
struct too_deep {};
struct json_value;
struct escape : sor<one<'"', '\\', '/', 'b', 'f', 'n', 'r', 't'>, seq<one<'u'>, rep<4, xdigit>>> {};
struct string_char : sor<seq<one<'\\'>, must<escape>>, seq<not_at<one<'"', '\\'>>, not_at<eol>, any>> {};
struct string_close : one<'"'> {};
struct string_lit : seq<one<'"'>, star<string_char>, must<string_close>> {};
struct number_int : sor<one<'0'>, seq<range<'1', '9'>, star<digit>>> {};
struct number_frac : seq<one<'.'>, plus<digit>> {};
struct number_exp : seq<one<'e', 'E'>, opt<one<'+', '-'>>, plus<digit>> {};
struct number : seq<opt<one<'-'>>, number_int, opt<number_frac>, opt<number_exp>, not_at<ident_other>> {};
struct json_literal : sor<key<TAO_PEGTL_STRING("true")>, key<TAO_PEGTL_STRING("false")>, key<TAO_PEGTL_STRING("null")>> {};
struct member_key : string_lit {};
struct member_colon : one<':'> {};
struct member_value : seq<json_value> {};
struct member : seq<must<member_key>, sep, must<member_colon>, sep, must<member_value>> {};
struct object_close : one<'}'> {};
struct object_rest : seq<member, star<sep, one<','>, sep, member>, sep, must<object_close>> {};
struct object_body : sor<object_close, object_rest> {};
struct json_object : seq<one<'{'>, sep, must<object_body>> {};
struct element : seq<json_value> {};
struct array_close : one<']'> {};
struct array_rest : seq<must<element>, star<sep, one<','>, sep, must<element>>, sep, must<array_close>> {};
struct array_body : sor<array_close, array_rest> {};
struct json_array : seq<one<'['>, sep, array_body> {};
struct json_value : sor<json_object, json_array, string_lit, number, json_literal> {};

// ---- Values of clauses -------------------------------------------------------------
struct unit : sor<TAO_PEGTL_STRING("ms"), one<'s', 'm', 'h', 'd'>> {};
struct duration : seq<plus<digit>, opt<one<'.'>, plus<digit>>, unit, not_at<ident_other>> {};
struct dotted_name : seq<ident, star<one<'.'>, ident>> {};
struct key_name : string_lit {};
struct target : sor<dotted_name, key_name> {};

// ---- Clauses -------------------------------------------------------------------------
struct program_path : string_lit {};
struct program_clause : seq<kw_program, sep, must<program_path>> {};

struct saga_name : ident {};
struct input : json_object {};
struct start_clause : seq<kw_start, sep, must<saga_name>, sep, must<input>> {};

struct answer_target : target {};
struct after_duration : duration {};
struct ok_result : json_value {};
struct ok_reply : seq<kw_ok, opt<sep, ok_result>> {};
struct fail_class : ident {};
struct fail_message : string_lit {};
struct unsent : kw_unsent {};
struct fail_reply : seq<kw_fail, sep, must<fail_class>, opt<sep, fail_message>, opt<sep, unsent>> {};
struct never_reply : kw_never {};
struct reply_kind : sor<ok_reply, fail_reply, never_reply> {};
struct reply : seq<opt<kw_after, sep, must<after_duration>, sep>, must<reply_kind>> {};
struct answer_clause : seq<kw_answer, sep, must<answer_target>, sep, must<reply>, star<sep, kw_then, sep, must<reply>>> {};

struct cancel_duration : duration {};
struct cancel_target : target {};
struct cancel_when : sor<seq<kw_after, sep, must<cancel_duration>>, seq<kw_during, sep, must<cancel_target>>> {};
struct cancel_clause : seq<kw_cancel, sep, must<cancel_when>> {};

struct status_name : ident {};
struct expect_status : seq<kw_status, sep, must<status_name>> {};
struct output_value : json_value {};
struct expect_output : seq<kw_output, sep, must<output_value>> {};
struct error_class : ident {};
struct error_message : string_lit {};
struct expect_error : seq<kw_error, sep, must<error_class>, opt<sep, error_message>> {};
struct call_args : json_object {};
struct call_target : target {};
struct call_pattern : seq<call_target, opt<sep, call_args>> {};
struct call_item : seq<call_pattern> {};
struct call_close : one<']'> {};
struct call_rest : seq<must<call_item>, star<sep, one<','>, sep, must<call_item>>, sep, must<call_close>> {};
struct call_list : seq<one<'['>, sep, sor<call_close, call_rest>> {};
struct calls_list : call_list {};
struct undos_list : call_list {};
struct expect_calls : seq<kw_calls, sep, must<calls_list>> {};
struct expect_undos : seq<kw_undos, sep, must<undos_list>> {};
struct event_kind : ident {};
struct event_step : sor<string_lit, ident> {};
struct event_pattern : seq<event_kind, opt<sep, event_step>> {};
struct event_item : seq<event_pattern> {};
struct event_close : one<']'> {};
struct event_rest : seq<must<event_item>, star<sep, one<','>, sep, must<event_item>>, sep, must<event_close>> {};
struct event_list : seq<one<'['>, sep, sor<event_close, event_rest>> {};
struct expect_history : seq<kw_history, sep, must<event_list>> {};
struct elapsed_duration : duration {};
struct expect_elapsed : seq<kw_elapsed, sep, must<elapsed_duration>> {};
struct expectation : sor<expect_status, expect_output, expect_error, expect_calls, expect_undos, expect_history, expect_elapsed> {};
struct expect_clause : seq<kw_expect, sep, must<expectation>> {};

// Signals and events do not exist in the language yet: the words are
// reserved here, and a test that sends one is told so. When they exist, a
// `signal NAME {data}` clause goes here and the runner delivers it as an
// inbox message (runtime/scenario/runner.cpp, "Inbox").
struct no_signals : failure {};
struct signal_clause : seq<kw_signal, must<no_signals>> {};

struct test_name : string_lit {};
struct test_open : one<'{'> {};
struct test_close : one<'}'> {};
struct clause : sor<start_clause, answer_clause, cancel_clause, expect_clause, signal_clause> {};
struct test_decl : seq<kw_test, sep, must<test_name>, sep, must<test_open>, sep, star<clause, sep>, must<test_close>> {};

struct top_item : sor<test_decl, start_clause, answer_clause, signal_clause> {};
struct file_end : eof {};
struct file : seq<sep, opt<program_clause, sep>, star<top_item, sep>, must<file_end>> {};

// ---- Messages ----------------------------------------------------------------------------
// One row per point where the grammar commits (a must<>); a must<> without a
// row does not compile (scenario_parse.cpp's control).
struct ErrorText {
  const char* message = nullptr;
  const char* help = nullptr;
};
template <typename Rule> inline constexpr ErrorText error_text{};
#define SAGA_SCENARIO_ERROR(RULE, MESSAGE, HELP) \
  template <> inline constexpr ErrorText error_text<RULE> = {MESSAGE, HELP}

SAGA_SCENARIO_ERROR(too_deep, "lists and objects nest deeper than 256 levels here", nullptr);
SAGA_SCENARIO_ERROR(escape, "unknown escape sequence", "the escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX");
SAGA_SCENARIO_ERROR(string_close, "unterminated string", "a string ends with '\"' on the same line");
SAGA_SCENARIO_ERROR(member_key, "expected a quoted field name", "JSON field names are strings: {\"order\": \"o-1\"}");
SAGA_SCENARIO_ERROR(member_colon, "expected ':' after the field name", nullptr);
SAGA_SCENARIO_ERROR(member_value, "expected a JSON value", "a string, a number, true, false, null, a list [...] or an object {...}");
SAGA_SCENARIO_ERROR(object_close, "expected ',' or '}' in the object", nullptr);
SAGA_SCENARIO_ERROR(object_body, "expected a quoted field name or '}'", "JSON field names are strings: {\"order\": \"o-1\"}");
SAGA_SCENARIO_ERROR(element, "expected a JSON value", "a string, a number, true, false, null, a list [...] or an object {...}");
SAGA_SCENARIO_ERROR(array_close, "expected ',' or ']' in the list", nullptr);
SAGA_SCENARIO_ERROR(program_path, "expected the path of the saga file, a string", "program \"order.saga\" (relative to this file)");
SAGA_SCENARIO_ERROR(saga_name, "expected the name of the saga to start", "start order_fulfillment {\"order_id\": \"o-1\"}");
SAGA_SCENARIO_ERROR(input, "expected the saga's input, a JSON object", "start hello {\"name\": \"ada\", \"times\": 3}");
SAGA_SCENARIO_ERROR(answer_target, "expected what to answer: an action or a call's key", "answer inventory.reserve ok {\"id\": \"R-1\"}, or answer \"reserve[1]\" fail rejected");
SAGA_SCENARIO_ERROR(after_duration, "expected a duration", "a number and a unit: 200ms, 5s, 10m, 48h, 2d");
SAGA_SCENARIO_ERROR(reply_kind, "expected an answer: 'ok', 'fail' or 'never'", "ok {\"id\": \"R-1\"}, fail timeout \"no answer\", never; 'after 3s' delays one");
SAGA_SCENARIO_ERROR(reply, "expected an answer: 'ok', 'fail' or 'never'", "ok {\"id\": \"R-1\"}, fail timeout \"no answer\", never; 'after 3s' delays one");
SAGA_SCENARIO_ERROR(fail_class, "expected the failure's error class", "fail rejected \"card declined\", fail timeout, fail unavailable \"down\" unsent");
SAGA_SCENARIO_ERROR(cancel_duration, "expected a duration", "a number and a unit: 200ms, 5s, 10m, 48h, 2d");
SAGA_SCENARIO_ERROR(cancel_target, "expected the call to cancel during: an action or a call's key", "cancel during payment.charge");
SAGA_SCENARIO_ERROR(cancel_when, "expected 'after DURATION' or 'during CALL'", "cancel after 30s, or cancel during payment.charge");
SAGA_SCENARIO_ERROR(status_name, "expected a status", "completed, compensated, failed, cancelled, stuck, running or compensating");
SAGA_SCENARIO_ERROR(output_value, "expected the output, a JSON value", "expect output {\"order\": \"o-1\"}");
SAGA_SCENARIO_ERROR(error_class, "expected an error class", "expect error rejected \"card declined\"");
SAGA_SCENARIO_ERROR(call_item, "expected a call: an action or a call's key, with optional JSON arguments", "[inventory.reserve {\"order\": \"o-1\"}, payment.charge]");
SAGA_SCENARIO_ERROR(call_close, "expected ',' or ']' in the list of calls", nullptr);
SAGA_SCENARIO_ERROR(calls_list, "expected a list of calls in '[' ']'", "expect calls [inventory.reserve, payment.charge {\"amount\": 250}]");
SAGA_SCENARIO_ERROR(undos_list, "expected a list of undo calls in '[' ']'", "expect undos [inventory.release {\"reservation\": \"R-1\"}]");
SAGA_SCENARIO_ERROR(event_item, "expected an event kind, optionally with its step", "[started, step_completed reserve, \"undo_completed\" \"flight/flight\"]");
SAGA_SCENARIO_ERROR(event_close, "expected ',' or ']' in the history", nullptr);
SAGA_SCENARIO_ERROR(event_list, "expected a list of events in '[' ']'", "expect history [started, step_completed say, completed]");
SAGA_SCENARIO_ERROR(elapsed_duration, "expected a duration", "a number and a unit: 200ms, 5s, 10m, 48h, 2d");
SAGA_SCENARIO_ERROR(expectation, "expected what to expect: status, output, error, calls, undos, history or elapsed", "expect status completed");
SAGA_SCENARIO_ERROR(no_signals, "signals and events do not exist in the language yet: a test cannot send one", nullptr);
SAGA_SCENARIO_ERROR(test_name, "expected the test's name, a string", "test \"payment declined\" { ... }");
SAGA_SCENARIO_ERROR(test_open, "expected '{' to open the test", nullptr);
SAGA_SCENARIO_ERROR(test_close, "expected a clause (start, answer, cancel, expect) or '}' to close the test", nullptr);
SAGA_SCENARIO_ERROR(file_end, "expected a test, or a 'start' or 'answer' for every test", "test \"happy path\" { start ... expect status completed }");

#undef SAGA_SCENARIO_ERROR

// clang-format on

}  // namespace saga::scenario::peg
