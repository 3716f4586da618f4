// The PEGTL grammar of the .saga language (v1): one named struct per rule, each
// with its EBNF as a comment, in the namespace saga::grammar::peg. The grammar
// only recognises text; grammar/parse.cpp attaches the actions that build the
// AST and the control that turns failed commit points (`must<>`) into the
// messages of grammar/error_messages.hpp. This header is included by parse.cpp
// and by the grammar tests (which run tao::pegtl::analyze on it), never by
// other layers. grammar/README.md is the user-facing reference for the same
// language; keep the two in step.
//
// Conventions:
//  * `sep` (whitespace and comments) only ever appears *between* the parts of a
//    rule, never at its ends, so the input an action sees is exactly the text of
//    its construct and AST spans carry no surrounding whitespace.
//  * Every alternative of a `sor<>` fails on its first token without running an
//    action; after that token the rule commits with `must<>`. So the builder in
//    parse.cpp never has to undo work on backtracking.
//  * Rules that only exist to name a commit point (`let_name`, `step_open`, ...)
//    are where error_messages.hpp attaches its messages.
//  * Rules derived from `nesting` / `block_nesting` count towards the nesting
//    limits (kMaxNesting, enforced by the control in parse.cpp), which keep
//    deep input from overflowing the stack.
#pragma once

#include <cstddef>
#include <string_view>

#include <tao/pegtl.hpp>
#include <tao/pegtl/contrib/analyze_traits.hpp>

namespace saga::grammar::peg {

// clang-format off
using namespace tao::pegtl;

// ---------------------------------------------------------------------------
// Character classes and the reserved words (plain functions, shared with the
// error reporting in parse.cpp).
// ---------------------------------------------------------------------------

inline constexpr bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline constexpr bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }

// Returns the length of the identifier starting at [p], or 0 when there is none.
inline std::size_t identifier_length(const char* p, const char* end) {
  if (p == end || !is_ident_start(*p)) return 0;
  const char* q = p + 1;
  while (q != end && is_ident_char(*q)) ++q;
  return static_cast<std::size_t>(q - p);
}

// The words that cannot name a service, policy, saga, parameter, step or
// variable. Context words (url, breaker, bulkhead, op) are not in this list.
inline constexpr std::string_view kReservedWords[] = {
    "service", "retry", "saga", "step", "do", "undo", "timeout", "let", "if", "else",
    "fail", "output", "deadline", "true", "false", "null", "and", "or", "not"};

inline bool is_reserved_word(std::string_view word) {
  for (std::string_view r : kReservedWords) {
    if (r == word) return true;
  }
  return false;
}

// How deeply expressions (and configuration values) may nest, and, counted
// separately, how deeply blocks may nest (an `else if` counts as a level). The
// recursive-descent matcher needs at most about 0.25 KiB of stack per
// expression level and 0.5 KiB per block level at -O2 (3.5 and 1.7 KiB at -O0,
// measured with GCC 12), so input nested to both limits needs under 1.5 MiB even
// in a debug build: far below a thread's default 8 MiB stack, and still more
// nesting than any real saga needs. error_messages.hpp quotes the number.
inline constexpr std::size_t kMaxNesting = 256;

// Base class of the rules that count towards the expression nesting limit.
struct nesting {};
// Base class of the rules that count towards the block nesting limit.
struct block_nesting {};

// ---------------------------------------------------------------------------
// Lexical structure
// ---------------------------------------------------------------------------

// line_comment = "//" { any character except newline } ;
struct line_comment : seq< two< '/' >, star< not_one< '\n' > > > {};
// block_comment = "/*" { any character } "*/" ;   (no nesting)
struct block_comment_open : string< '/', '*' > {};
struct block_comment_rest : until< string< '*', '/' > > {};
struct block_comment : seq< block_comment_open, must< block_comment_rest > > {};
// sep = { " " | "\t" | "\r" | "\n" | "\v" | "\f" | line_comment | block_comment } ;
struct sep : star< sor< plus< space >, line_comment, block_comment > > {};

// identifier = ( letter | "_" ) { letter | digit | "_" } ;   (any identifier, reserved or not)
struct ident {
  using rule_t = ident;
  using subs_t = empty_list;
  template< typename ParseInput >
  static bool match( ParseInput& in ) {
    const std::size_t n = identifier_length( in.current(), in.end() );
    if( n == 0 ) return false;
    in.bump_in_this_line( n );
    return true;
  }
};

// name = identifier - reserved_word ;   (what names services, sagas, steps, variables)
struct name {
  using rule_t = name;
  using subs_t = empty_list;
  template< typename ParseInput >
  static bool match( ParseInput& in ) {
    const std::size_t n = identifier_length( in.current(), in.end() );
    if( n == 0 || is_reserved_word( std::string_view( in.current(), n ) ) ) return false;
    in.bump_in_this_line( n );
    return true;
  }
};

// reserved_word = "service" | "retry" | ... | "not" ;   (see kReservedWords)
struct reserved_word {
  using rule_t = reserved_word;
  using subs_t = empty_list;
  template< typename ParseInput >
  static bool match( ParseInput& in ) {
    const std::size_t n = identifier_length( in.current(), in.end() );
    if( n == 0 || !is_reserved_word( std::string_view( in.current(), n ) ) ) return false;
    in.bump_in_this_line( n );
    return true;
  }
};

// Keywords: the word, not followed by an identifier character.
struct kw_service : TAO_PEGTL_KEYWORD( "service" ) {};
struct kw_retry : TAO_PEGTL_KEYWORD( "retry" ) {};
struct kw_saga : TAO_PEGTL_KEYWORD( "saga" ) {};
// `on` and `start` are keywords only where a trigger stands (an item), so
// they stay usable as names elsewhere (`on:` in a policy, a step `start`).
struct kw_on : TAO_PEGTL_KEYWORD( "on" ) {};
struct kw_start : TAO_PEGTL_KEYWORD( "start" ) {};
struct kw_step : TAO_PEGTL_KEYWORD( "step" ) {};
struct kw_do : TAO_PEGTL_KEYWORD( "do" ) {};
struct kw_undo : TAO_PEGTL_KEYWORD( "undo" ) {};
struct kw_timeout : TAO_PEGTL_KEYWORD( "timeout" ) {};
struct kw_let : TAO_PEGTL_KEYWORD( "let" ) {};
struct kw_if : TAO_PEGTL_KEYWORD( "if" ) {};
struct kw_else : TAO_PEGTL_KEYWORD( "else" ) {};
struct kw_fail : TAO_PEGTL_KEYWORD( "fail" ) {};
struct kw_output : TAO_PEGTL_KEYWORD( "output" ) {};
struct kw_deadline : TAO_PEGTL_KEYWORD( "deadline" ) {};
struct kw_and : TAO_PEGTL_KEYWORD( "and" ) {};
struct kw_or : TAO_PEGTL_KEYWORD( "or" ) {};
struct kw_not : TAO_PEGTL_KEYWORD( "not" ) {};
// Context words: keywords only at the start of a service clause.
struct kw_url : TAO_PEGTL_KEYWORD( "url" ) {};
struct kw_breaker : TAO_PEGTL_KEYWORD( "breaker" ) {};
struct kw_bulkhead : TAO_PEGTL_KEYWORD( "bulkhead" ) {};
struct kw_op : TAO_PEGTL_KEYWORD( "op" ) {};
struct kw_idempotent : TAO_PEGTL_KEYWORD( "idempotent" ) {};
// Context words of a step's kind: keywords only directly before `step`.
struct kw_pivot : TAO_PEGTL_KEYWORD( "pivot" ) {};
struct kw_retriable : TAO_PEGTL_KEYWORD( "retriable" ) {};
// Context words of the statements that start fibers: keywords only where they
// start one (see statement_word), and `in` and `max` only inside a foreach
// head. Elsewhere they are names (`let parallel = 1`, a step named foreach).
struct kw_parallel : TAO_PEGTL_KEYWORD( "parallel" ) {};
struct kw_foreach : TAO_PEGTL_KEYWORD( "foreach" ) {};
struct kw_branch : TAO_PEGTL_KEYWORD( "branch" ) {};
struct kw_in : TAO_PEGTL_KEYWORD( "in" ) {};
// Context word of the emit statement: a keyword only where a name follows it.
struct kw_emit : TAO_PEGTL_KEYWORD( "emit" ) {};
struct kw_max : TAO_PEGTL_KEYWORD( "max" ) {};

// comma_list(E) = E { "," E } [ "," ] ;   (a trailing comma is allowed)
template< typename Elem >
struct comma_list : seq< Elem, star< sep, one< ',' >, sep, Elem >, opt< sep, one< ',' > > > {};

// ---------------------------------------------------------------------------
// Numbers and durations
// ---------------------------------------------------------------------------

// fraction = "." digit { digit } ;
struct fraction : seq< one< '.' >, plus< digit > > {};
// exponent = ( "e" | "E" ) [ "+" | "-" ] digit { digit } ;
struct exponent : seq< one< 'e', 'E' >, opt< one< '+', '-' > >, plus< digit > > {};
// number_text = digit { digit } [ fraction ] [ exponent ] ;
struct number_text : seq< plus< digit >, opt< fraction >, opt< exponent > > {};
// duration_unit = "ms" | "s" | "m" | "h" | "d" ;
struct duration_unit : sor< string< 'm', 's' >, one< 's', 'm', 'h', 'd' > > {};
// number_end: a number or duration must not run into an identifier ("5sec", "0x10").
struct number_end : not_at< identifier_other > {};
// number_literal = number_text [ duration_unit ] ;   (no sign: "-" is unary minus)
struct number_literal : seq< number_text, opt< duration_unit >, must< number_end > > {};

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

struct expression;

// string_chars = { any byte except '"', "\", newline, and "$" directly before "{" } ;
struct string_chars {
  using rule_t = string_chars;
  using subs_t = empty_list;
  template< typename ParseInput >
  static bool match( ParseInput& in ) {
    const char* const begin = in.current();
    const char* const end = in.end();
    const char* p = begin;
    while( p != end ) {
      const char c = *p;
      if( c == '"' || c == '\\' || c == '\n' || c == '\r' ) break;
      if( c == '$' && p + 1 != end && p[ 1 ] == '{' ) break;
      ++p;
    }
    if( p == begin ) return false;
    in.bump_in_this_line( static_cast< std::size_t >( p - begin ) );
    return true;
  }
};
// escape_char = '"' | "\" | "/" | "n" | "t" | "r" | "$" | "u" hex hex hex hex ;
struct escape_char : sor< one< '"', '\\', '/', 'n', 't', 'r', '$' >, seq< one< 'u' >, rep< 4, xdigit > > > {};
// escape = "\" escape_char ;
struct escape : seq< one< '\\' >, must< escape_char > > {};
// interpolation = "${" expression "}" ;
struct interp_open : string< '$', '{' > {};
struct interp_close : one< '}' > {};
struct interpolation : seq< interp_open, sep, must< expression >, sep, must< interp_close > > {};
// string_literal = '"' { string_chars | escape | interpolation } '"' ;   (one line)
struct string_open : one< '"' > {};
struct string_close : one< '"' > {};
struct string_literal : seq< string_open, star< sor< string_chars, escape, interpolation > >, must< string_close > > {};

// ---------------------------------------------------------------------------
// Expressions (precedence from low to high: or, and, not, comparison, + -,
// * / %, unary -, postfix . and [], primary)
// ---------------------------------------------------------------------------

// null_literal = "null" ;  true_literal = "true" ;  false_literal = "false" ;
struct null_literal : TAO_PEGTL_KEYWORD( "null" ) {};
struct true_literal : TAO_PEGTL_KEYWORD( "true" ) {};
struct false_literal : TAO_PEGTL_KEYWORD( "false" ) {};

// list_literal = "[" [ comma_list(expression) ] "]" ;
struct list_open : one< '[' > {};
struct list_close : one< ']' > {};
struct list_literal : seq< list_open, sep, opt< comma_list< expression > >, sep, must< list_close > > {};

// object_key = identifier | string_literal ;   (any identifier, reserved words included)
struct object_key_ident : ident {};
struct object_key_string : seq< string_literal > {};
struct object_key : sor< object_key_ident, object_key_string > {};
// object_member = object_key ":" expression ;
struct object_colon : one< ':' > {};
struct object_member : seq< object_key, sep, must< object_colon >, sep, must< expression > > {};
// object_literal = "{" [ comma_list(object_member) ] "}" ;
struct object_open : one< '{' > {};
struct object_close : one< '}' > {};
struct object_literal : seq< object_open, sep, opt< comma_list< object_member > >, sep, must< object_close > > {};

// paren_expr = "(" expression ")" ;
struct paren_open : one< '(' > {};
struct paren_close : one< ')' > {};
struct paren_expr : seq< paren_open, sep, must< expression >, sep, must< paren_close > > {};

// call = name "(" [ comma_list(expression) ] ")" ;   (no space before "(")
struct call_head : seq< name, one< '(' > > {};
struct call_close : one< ')' > {};
struct call : seq< call_head, sep, opt< comma_list< expression > >, sep, must< call_close > > {};

// variable = name ;
struct variable : name {};

// primary = string_literal | number_literal | list_literal | object_literal | paren_expr
//         | "null" | "true" | "false" | call | variable ;
struct primary : sor< string_literal, number_literal, list_literal, object_literal, paren_expr,
                      null_literal, true_literal, false_literal, call, variable > {};

// field_access = "." identifier ;   (any identifier: x.timeout is fine)
struct field_name : ident {};
struct field_access : seq< one< '.' >, sep, must< field_name > > {};
// index_access = "[" expression "]" ;
struct index_open : one< '[' > {};
struct index_close : one< ']' > {};
struct index_access : seq< index_open, sep, must< expression >, sep, must< index_close > > {};
// postfix_expr = primary { field_access | index_access } ;
struct postfix_expr : seq< primary, star< sep, sor< field_access, index_access > > > {};

// unary_expr = "-" unary_expr | postfix_expr ;
struct neg_operand;
struct neg_expr : seq< one< '-' >, sep, must< neg_operand > > {};
struct unary_expr : sor< neg_expr, postfix_expr > {};
struct neg_operand : unary_expr, nesting {};

// mul_expr = unary_expr { ( "*" | "/" | "%" ) unary_expr } ;
struct mul_op : one< '*', '/', '%' > {};
struct mul_operand : unary_expr {};
struct mul_tail : seq< mul_op, sep, must< mul_operand > > {};
struct mul_expr : seq< unary_expr, star< sep, mul_tail > > {};

// add_expr = mul_expr { ( "+" | "-" ) mul_expr } ;
// A '-' followed by '>' is the arrow of a binding, not a minus: the
// expression ends before it (`await event T where event.id == x -> v`).
struct add_op : sor< one< '+' >, seq< one< '-' >, not_at< one< '>' > > > > {};
struct add_operand : mul_expr {};
struct add_tail : seq< add_op, sep, must< add_operand > > {};
struct add_expr : seq< mul_expr, star< sep, add_tail > > {};

// cmp_expr = add_expr [ cmp_op add_expr ] ;   (non-associative: a < b < c is an error)
// cmp_op = "==" | "!=" | "<=" | ">=" | "<" | ">" ;
struct cmp_op : sor< string< '=', '=' >, string< '!', '=' >, string< '<', '=' >, string< '>', '=' >, one< '<' >, one< '>' > > {};
struct cmp_operand : add_expr {};
struct cmp_tail : seq< cmp_op, sep, must< cmp_operand > > {};
struct cmp_unchained : not_at< sep, cmp_op > {};
struct cmp_expr : seq< add_expr, opt< sep, cmp_tail, must< cmp_unchained > > > {};

// not_expr = "not" not_expr | cmp_expr ;
struct not_operand;
struct not_prefix : seq< kw_not, sep, must< not_operand > > {};
struct not_expr : sor< not_prefix, cmp_expr > {};
struct not_operand : not_expr, nesting {};

// and_expr = not_expr { "and" not_expr } ;
struct and_operand : not_expr {};
struct and_tail : seq< kw_and, sep, must< and_operand > > {};
struct and_expr : seq< not_expr, star< sep, and_tail > > {};

// or_expr = and_expr { "or" and_expr } ;
struct or_operand : and_expr {};
struct or_tail : seq< kw_or, sep, must< or_operand > > {};
struct or_expr : seq< and_expr, star< sep, or_tail > > {};

// expression = or_expr ;
struct expression : or_expr, nesting {};

// ---------------------------------------------------------------------------
// Configuration values and bodies (policies, breakers, clause values). A small
// grammar of its own so that any word, reserved or not, can be a value:
// `on: [timeout, unavailable]`.
// ---------------------------------------------------------------------------

struct config_value;

// config_list = "[" [ comma_list(config_value) ] "]" ;
struct config_list : seq< list_open, sep, opt< comma_list< config_value > >, sep, must< list_close > > {};
// config_call = identifier "(" [ comma_list(config_value) ] ")" ;   (no space before "(")
struct config_call_head : seq< ident, one< '(' > > {};
struct config_call : seq< config_call_head, sep, opt< comma_list< config_value > >, sep, must< call_close > > {};
// config_negative = "-" number_literal ;   (lets the compiler say "must be positive")
struct config_number : seq< number_literal > {};
struct config_negative : seq< one< '-' >, sep, must< config_number > > {};
// config_word = identifier ;
struct config_word : ident {};
// config_value = string_literal | number_literal | config_negative | config_list | config_call | config_word ;
struct config_value : sor< string_literal, number_literal, config_negative, config_list, config_call, config_word >, nesting {};
// clause_value = config_value - reserved_word ;   (after timeout, bulkhead, deadline: a
// reserved word there is the next statement, not a value)
struct clause_value : seq< not_at< reserved_word >, config_value > {};

// config_field = identifier ":" config_value ;
struct config_key : ident {};
struct config_colon : one< ':' > {};
struct config_field_value : config_value {};
struct config_field : seq< config_key, sep, must< config_colon >, sep, must< config_field_value > > {};
// config = "{" [ comma_list(config_field) ] "}" ;
struct config_open : one< '{' > {};
struct config_close : one< '}' > {};
struct config : seq< config_open, sep, opt< comma_list< config_field > >, sep, must< config_close > > {};

// ---------------------------------------------------------------------------
// Services and retry policies
// ---------------------------------------------------------------------------

// url_clause = "url" string_literal ;
struct url_value : seq< string_literal > {};
struct url_clause : seq< kw_url, sep, must< url_value > > {};
// service_timeout = "timeout" clause_value ;
struct timeout_value : clause_value {};
struct service_timeout : seq< kw_timeout, sep, must< timeout_value > > {};
// breaker_clause = "breaker" config ;
struct breaker_body : config {};
struct breaker_clause : seq< kw_breaker, sep, must< breaker_body > > {};
// bulkhead_clause = "bulkhead" clause_value ;
struct bulkhead_value : clause_value {};
struct bulkhead_clause : seq< kw_bulkhead, sep, must< bulkhead_value > > {};
// op_clause = "op" identifier "=" identifier string_literal ;   (name = METHOD "path")
struct op_name : ident {};
struct op_equals : one< '=' > {};
struct op_method : ident {};
// The path is a template of the operation's argument names, kept raw: the
// compiler checks its ${name} placeholders, nothing here evaluates them.
struct op_path_chars : plus< not_one< '"', '\n', '\r' > > {};
struct op_path : seq< one< '"' >, star< op_path_chars >, must< string_close > > {};
struct op_clause : seq< kw_op, sep, must< op_name >, sep, must< op_equals >, sep, must< op_method >, sep, must< op_path > > {};
// idempotent_clause = "idempotent" [ "[" comma_list(identifier) "]" ] ;   (no list: every operation)
struct idempotent_op : ident {};
struct idempotent_ops : seq< list_open, sep, opt< comma_list< idempotent_op > >, sep, must< list_close > > {};
struct idempotent_clause : seq< kw_idempotent, opt< sep, idempotent_ops > > {};
// service_clause = url_clause | service_timeout | breaker_clause | bulkhead_clause | op_clause
//                | idempotent_clause ;
struct service_clause : sor< url_clause, service_timeout, breaker_clause, bulkhead_clause, op_clause,
                             idempotent_clause > {};
// service_decl = "service" name "{" { service_clause } "}" ;
struct service_name : name {};
struct service_open : one< '{' > {};
struct service_close : one< '}' > {};
struct service_decl : seq< kw_service, sep, must< service_name >, sep, must< service_open >, sep,
                           star< service_clause, sep >, must< service_close > > {};

// retry_decl = "retry" name config ;
struct retry_name : name {};
struct retry_body : config {};
struct retry_decl : seq< kw_retry, sep, must< retry_name >, sep, must< retry_body > > {};

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

// action_target = identifier { "." identifier } ;   (any identifiers)
struct action_segment : ident {};
struct action_dot_segment : ident {};
struct action_target : seq< action_segment, star< sep, one< '.' >, sep, must< action_dot_segment > > > {};
// named_arg = identifier ":" expression ;
struct arg_name : ident {};
struct arg_colon : one< ':' > {};
struct arg_value : expression {};
struct named_arg : seq< arg_name, sep, must< arg_colon >, sep, must< arg_value > > {};
// action_call = action_target "(" [ comma_list(named_arg) ] ")" ;
struct args_open : one< '(' > {};
struct args_close : one< ')' > {};
struct action_call : seq< action_target, sep, must< args_open >, sep, opt< comma_list< named_arg > >, sep, must< args_close > > {};

// do_clause = "do" action_call [ "->" name ] ;
struct do_action : action_call {};
struct bind_name : name {};
struct bind : seq< string< '-', '>' >, sep, must< bind_name > > {};
struct do_clause : seq< kw_do, sep, must< do_action >, opt< sep, bind > > {};
// undo_clause = "undo" action_call ;
struct undo_action : action_call {};
struct undo_clause : seq< kw_undo, sep, must< undo_action > > {};
// step_timeout = "timeout" clause_value ;
struct step_timeout : seq< kw_timeout, sep, must< timeout_value > > {};
// retry_clause = "retry" ( name | config ) ;
struct retry_inline : config {};
struct retry_policy_name : name {};
struct retry_ref : sor< retry_inline, retry_policy_name > {};
struct retry_clause : seq< kw_retry, sep, must< retry_ref > > {};
// undo_retry_clause = "undo_retry" ( name | config ) ;   (the undo's own policy)
struct kw_undo_retry : TAO_PEGTL_KEYWORD( "undo_retry" ) {};
struct undo_retry_ref : sor< retry_inline, retry_policy_name > {};
struct undo_retry_clause : seq< kw_undo_retry, sep, must< undo_retry_ref > > {};
// step_clause = do_clause | undo_clause | step_timeout | retry_clause | undo_retry_clause ;   (any order)
struct step_clause : sor< do_clause, undo_clause, step_timeout, retry_clause, undo_retry_clause > {};
// step_kind = "pivot" | "retriable" ;   (only directly before "step")
struct step_kind : sor< kw_pivot, kw_retriable > {};
struct step_kind_prefix : seq< step_kind, sep, at< kw_step > > {};
// step_stmt = [ step_kind ] "step" name "{" { step_clause } "}" ;
struct step_name : name {};
struct step_open : one< '{' > {};
struct step_close : one< '}' > {};
struct step_stmt : seq< opt< step_kind_prefix, sep >, kw_step, sep, must< step_name >, sep, must< step_open >, sep,
                        star< step_clause, sep >, must< step_close > > {};

// ---------------------------------------------------------------------------
// Statements and blocks
// ---------------------------------------------------------------------------

struct block;
struct if_stmt;

// let_stmt = "let" name "=" expression ;
struct let_name : name {};
struct let_equals : one< '=' > {};
struct let_value : expression {};
struct let_stmt : seq< kw_let, sep, must< let_name >, sep, must< let_equals >, sep, must< let_value > > {};

// if_stmt = "if" expression block [ "else" ( if_stmt | block ) ] ;
// The condition may not start with "{" (an object literal there is always a
// missing condition: `if { ... }`).
struct if_cond : seq< not_at< one< '{' > >, expression > {};
struct else_if : seq< if_stmt >, block_nesting {};
struct else_block : seq< block > {};
struct else_body : sor< else_if, else_block > {};
struct else_clause : seq< kw_else, sep, must< else_body > > {};
struct if_then : seq< block > {};
struct if_stmt : seq< kw_if, sep, must< if_cond >, sep, must< if_then >, opt< sep, else_clause > > {};

// foreach_stmt = "foreach" name "in" expression [ "max" expression ] block ;
// A statement only when `foreach` is followed by a name (`foreach = 1` is an
// assignment without `let`). The list and the max may not start with "{",
// which is always the body.
struct foreach_var : name {};
// (at<> first: a keyword that fails inside must<> would leave the input after
// the matched part, `in` of `inn`, and the error would point there.)
struct foreach_in : seq< at< kw_in >, kw_in > {};
struct foreach_list : seq< not_at< one< '{' > >, expression > {};
struct max_value : seq< not_at< one< '{' > >, expression > {};
struct foreach_max : seq< kw_max, sep, must< max_value > > {};
struct foreach_body : seq< block > {};
struct foreach_stmt : seq< kw_foreach, sep, at< ident >, must< foreach_var >, sep, must< foreach_in >, sep,
                           must< foreach_list >, opt< sep, foreach_max >, sep, must< foreach_body > > {};

// parallel_stmt = "parallel" ( block | foreach_stmt ) ;
// The block holds branches (the compiler reports anything else in it).
// `parallel` followed by anything else is not this statement.
struct parallel_block : seq< block > {};
struct parallel_foreach : seq< foreach_stmt > {};
struct parallel_stmt : seq< kw_parallel, sep, sor< parallel_block, parallel_foreach > > {};

// branch_stmt = "branch" name block ;   (a statement only when a name follows)
// The compiler accepts it only directly inside `parallel { }`.
struct branch_name : name {};
struct branch_body : seq< block > {};
struct branch_stmt : seq< kw_branch, sep, at< ident >, must< branch_name >, sep, must< branch_body > > {};

// statement_word: where `parallel`, `foreach` or `branch` starts one of the
// statements above (the same lookahead each of them commits on).
struct statement_word : sor< seq< kw_parallel, sep, sor< one< '{' >, kw_foreach > >,
                             seq< kw_foreach, sep, ident >, seq< kw_branch, sep, ident >,
                             seq< TAO_PEGTL_KEYWORD( "await" ), sep,
                                  sor< TAO_PEGTL_KEYWORD( "signal" ), TAO_PEGTL_KEYWORD( "event" ) > >,
                             seq< kw_emit, sep, ident > > {};

// fail_stmt = "fail" [ fail_class ] expression ;
// fail_class = name, directly followed by a token that starts an expression but
// cannot continue one (a string, number, "[", "{", true, false, null, not or a
// name that does not start a statement). So `fail rejected "text"` has a class
// while `fail a - b`, `fail f(x)`, `fail msg` and `fail msg  parallel { ... }`
// do not.
struct message_start : sor< one< '"', '[', '{' >, digit, true_literal, false_literal, null_literal, kw_not,
                            seq< not_at< statement_word >, name > > {};
struct fail_class : seq< name, sep, at< message_start > > {};
struct fail_message : expression {};
struct fail_stmt : seq< kw_fail, sep, opt< fail_class >, sep, must< fail_message > > {};

// output_stmt = "output" expression ;
struct output_value : expression {};
struct output_stmt : seq< kw_output, sep, must< output_value > > {};

// deadline_stmt = "deadline" clause_value ;
struct deadline_value : clause_value {};
struct deadline_stmt : seq< kw_deadline, sep, must< deadline_value > > {};
// undo_retry_stmt = "undo_retry" ( name | config ) ;   (the saga's default for its undos)
struct undo_retry_stmt : seq< kw_undo_retry, sep, must< undo_retry_ref > > {};

// await_stmt = "await" ( "signal" name | "event" event_type { "," event_type } [ "where" expression ] )
//              [ "timeout" clause_value ] [ "->" name ] [ "else" block ] ;
// event_type as a trigger writes it (letters, digits, '_', '.', '-'); with
// several, the first event of any of them that fits ends the wait.
// `await`, `signal`, `event` and `where` are context words: a statement only
// as `await signal` or `await event` (elsewhere all are names). The compiler
// requires the timeout; the parser takes it as optional so that its absence
// gets a diagnostic with a help line.
struct kw_await : TAO_PEGTL_KEYWORD( "await" ) {};
struct kw_signal : TAO_PEGTL_KEYWORD( "signal" ) {};
struct kw_event : TAO_PEGTL_KEYWORD( "event" ) {};
struct kw_where : TAO_PEGTL_KEYWORD( "where" ) {};
struct await_signal_name : name {};
struct await_event_type : plus< sor< identifier_other, one< '.', '-' > > > {};
struct await_event_more : plus< sor< identifier_other, one< '.', '-' > > > {};
struct await_event_types : seq< must< await_event_type >, star< sep, one< ',' >, sep, must< await_event_more > > > {};
struct await_where_cond : expression {};
struct await_where : seq< kw_where, sep, must< await_where_cond > > {};
struct await_timeout_value : clause_value {};
struct await_timeout : seq< kw_timeout, sep, must< await_timeout_value > > {};
struct await_bind_name : name {};
struct await_bind : seq< string< '-', '>' >, sep, must< await_bind_name > > {};
struct await_else_body : seq< block > {};
struct await_else : seq< kw_else, sep, must< await_else_body > > {};
struct await_head : seq< kw_await, sep, kw_signal > {};
struct await_event_head : seq< kw_await, sep, kw_event > {};
struct await_what : sor< seq< await_head, sep, must< await_signal_name > >,
                         seq< await_event_head, sep, await_event_types, opt< sep, await_where > > > {};
struct await_stmt : seq< await_what, opt< sep, await_timeout >, opt< sep, await_bind >, opt< sep, await_else > > {};

// emit_stmt = "emit" event_type object ;   (a statement only when a name follows `emit`)
// event_type = identifier { "." identifier } ;   (no spaces: order.placed)
struct event_type_segment : ident {};
struct emit_type : seq< ident, star< one< '.' >, must< event_type_segment > > > {};
struct emit_data : seq< at< one< '{' > >, object_literal > {};
struct emit_stmt : seq< kw_emit, sep, at< ident >, must< emit_type >, sep, must< emit_data > > {};

// statement = step_stmt | let_stmt | if_stmt | parallel_stmt | foreach_stmt | branch_stmt
//           | fail_stmt | output_stmt | deadline_stmt | await_stmt | emit_stmt ;
struct statement : sor< step_stmt, let_stmt, if_stmt, parallel_stmt, foreach_stmt, branch_stmt, fail_stmt,
                        output_stmt, deadline_stmt, undo_retry_stmt, await_stmt, emit_stmt > {};

// block = "{" { statement } "}" ;
struct block_open : one< '{' > {};
struct block_close : one< '}' > {};
struct block : seq< block_open, sep, star< statement, sep >, must< block_close > >, block_nesting {};

// ---------------------------------------------------------------------------
// Sagas and the file
// ---------------------------------------------------------------------------

// param = name [ ":" identifier ] ;
struct param_name : name {};
struct param_type : ident {};
struct param : seq< param_name, opt< sep, one< ':' >, sep, must< param_type > > > {};
// saga_decl = "saga" name "(" [ comma_list(param) ] ")" block ;
struct saga_name : name {};
struct params_open : one< '(' > {};
struct params_close : one< ')' > {};
struct saga_body : seq< block > {};
struct saga_decl : seq< kw_saga, sep, must< saga_name >, sep, must< params_open >, sep, opt< comma_list< param > >,
                        sep, must< params_close >, sep, must< saga_body > > {};

// trigger_decl = "on" event_type "start" name "(" [ comma_list(named_arg) ] ")" ;
// event_type = ( letter | digit | "_" | "-" | "." ) { ... } ;   (the compiler checks its shape)
struct trigger_type : plus< sor< identifier_other, one< '.', '-' > > > {};
struct trigger_start : kw_start {};
struct trigger_saga : name {};
struct trigger_open : one< '(' > {};
struct trigger_close : one< ')' > {};
struct trigger_decl : seq< kw_on, sep, must< trigger_type >, sep, must< trigger_start >, sep, must< trigger_saga >,
                           sep, must< trigger_open >, sep, opt< comma_list< named_arg > >, sep,
                           must< trigger_close > > {};

// item = service_decl | retry_decl | saga_decl | trigger_decl ;
struct item_begin : success {};  // Marks where an item starts, for error recovery.
struct item : seq< item_begin, sor< service_decl, retry_decl, saga_decl, trigger_decl > > {};
// file = { item } end of input ;
struct file_end : eof {};
struct file : seq< sep, star< item, sep >, must< file_end > > {};

// Not rules of the language: raised when the nesting limit is hit, so that the
// messages live in the error table like all others.
struct too_deep_expression : failure {};
struct too_deep_block : failure {};

// clang-format on

}  // namespace saga::grammar::peg

// analyze<>() needs to know that the hand-written token rules consume input
// whenever they succeed.
namespace tao::pegtl {
template <typename Name>
struct analyze_traits<Name, saga::grammar::peg::ident> : analyze_any_traits<> {};
template <typename Name>
struct analyze_traits<Name, saga::grammar::peg::name> : analyze_any_traits<> {};
template <typename Name>
struct analyze_traits<Name, saga::grammar::peg::reserved_word> : analyze_any_traits<> {};
template <typename Name>
struct analyze_traits<Name, saga::grammar::peg::string_chars> : analyze_any_traits<> {};
}  // namespace tao::pegtl
