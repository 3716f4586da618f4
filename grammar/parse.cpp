// The .saga parser: runs the PEGTL grammar of saga_grammar.hpp over a
// SourceFile and builds the AST of grammar/ast.hpp directly from PEGTL actions
// (no generic parse tree), reporting syntax errors with the messages of
// error_messages.hpp. This is the only library translation unit that includes
// PEGTL. The compiler (compiler/) and sagactl call saga::grammar::parse().
//
// How the AST is built. Actions fire as soon as their rule has matched, and the
// grammar never backtracks over a rule that ran an action (see the conventions
// in saga_grammar.hpp), so a few stacks in Builder are enough:
//  * `exprs` holds finished expressions (and `heights` the height of each
//    tree). Operators pop their operands and push the new node; lists,
//    objects, calls and interpolated strings push their node when they open and
//    remember the stack size in `marks`, then collect everything above the mark
//    when they close.
//  * `blocks` holds the statement lists being filled; `pending_ifs` the `if`
//    statements whose else part is still being parsed; `pending_bodies` the
//    `branch` and `foreach` statements whose body is being parsed (their head
//    is complete).
//  * Steps, action calls, configuration bodies, services, policies and sagas
//    never nest, so each has a single slot.
//
// Errors. The control below follows PEGTL's must_if<> contract with the table
// in error_messages.hpp, but throws a small SyntaxError that keeps the byte
// offset and the table row (so do the nesting limits). parse() catches it,
// reports it, skips to the next top-level item that starts at column 1, and
// parses on from there.
#include "grammar/parse.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tao/pegtl.hpp>

#include "grammar/error_messages.hpp"
#include "grammar/saga_grammar.hpp"

namespace saga::grammar {
namespace {

namespace pegtl = tao::pegtl;
using ast::ExprKind;
using ast::ExprPtr;

// After this many syntax errors in one file the parser stops: later errors are
// usually consequences of earlier ones, and each recovery costs a rescan.
constexpr std::size_t kMaxSyntaxErrors = 100;

// Thrown by control<Rule>::raise when a must<> point fails, and when input
// nests deeper than peg::kMaxNesting.
struct SyntaxError {
  uint32_t offset;        // Where the parser stood.
  const ErrorText* text;  // The row of error_messages.hpp.
};

// One string literal being decoded. Frames are reused between strings (their
// buffers keep their capacity), so decoding does not allocate per character.
struct StringFrame {
  std::string buf;           // Decoded text of the current piece.
  uint32_t mark = 0;         // exprs.size() when the string opened.
  uint32_t piece_start = 0;  // Offset where the current piece starts.
  bool interp = false;       // Saw at least one ${...}.
};

ExprPtr make_expr(ExprKind kind, Span span) {
  auto e = std::make_unique<ast::Expr>();
  e->kind = kind;
  e->span = span;
  return e;
}

// The parse state passed to every action and control hook.
struct Builder {
  Builder(const char* text_begin, ast::File& file) : base(text_begin), out(&file) {}

  const char* base;  // Start of the source text: offsets are relative to it.
  ast::File* out;
  Diagnostics* diags = nullptr;

  std::vector<ExprPtr> exprs;
  std::vector<uint32_t> heights;  // Parallel to exprs: the height of each tree.
  std::vector<uint32_t> marks;
  std::vector<StringFrame> strings;
  std::size_t string_depth = 0;
  std::vector<ast::Block> blocks;
  std::vector<ast::Stmt> pending_ifs;
  std::vector<ast::Stmt> pending_bodies;
  std::vector<uint32_t> openers;  // Offsets of the brackets that are open, innermost last.

  std::unique_ptr<ast::ActionCall> call;
  std::unique_ptr<ast::Step> step;
  // `pivot` or `retriable` before `step`, until step_name creates the step.
  ast::StepKind step_kind = ast::StepKind::Plain;
  Span step_kind_span;
  std::unique_ptr<ast::Config> config;
  ast::Service service;
  ast::RetryPolicy policy;
  std::unique_ptr<ast::RetryRef> ref;  // The policy of the `retry` or `undo_retry` being read.
  ast::Saga saga;
  ast::Trigger trigger;
  ast::Route route;
  std::string name;  // `let` variable or `fail` class.
  Span name_span;
  bool has_fail_class = false;

  // Current nesting of expressions and of blocks, each checked against
  // peg::kMaxNesting. (The exception path leaves them high; reset() clears them.)
  std::size_t depth = 0;
  std::size_t block_depth = 0;
  uint32_t item_start = 0;  // Offset of the top-level item being parsed.
  // Anchors for error spans, recorded by the control's start() hook.
  uint32_t comment_open = 0;
  uint32_t escape_open = 0;
  uint32_t number_start = 0;
  std::vector<uint32_t> string_opens;

  uint32_t offset(const char* p) const { return static_cast<uint32_t>(p - base); }

  template <typename Input>
  Span span(const Input& in) const {
    return {offset(in.begin()), static_cast<uint32_t>(in.size())};
  }

  // Pushes a finished expression tree of the given height. Flat source can
  // still build deep trees (`a + b + c + ...` or `a.b.c...` nest to the left),
  // and the compiler walks trees recursively, so trees higher than
  // peg::kMaxNesting are refused here; [at] is the offset to blame.
  void push(ExprPtr e, uint32_t height = 1, uint32_t at = 0) {
    if (height > peg::kMaxNesting) throw SyntaxError{at, &error_text<peg::too_deep_expression>};
    exprs.push_back(std::move(e));
    heights.push_back(height);
  }

  // The grammar guarantees that an operand is there; the fallback only keeps a
  // grammar bug from turning into a crash.
  ExprPtr pop(uint32_t* height = nullptr) {
    if (exprs.empty()) {
      if (height != nullptr) *height = 1;
      return make_expr(ExprKind::Null, {});
    }
    ExprPtr e = std::move(exprs.back());
    exprs.pop_back();
    if (height != nullptr) *height = heights.back();
    heights.pop_back();
    return e;
  }

  // Moves the trees from index [from] up into [node]'s items and returns the
  // height [node] gets.
  uint32_t adopt(ast::Expr& node, std::size_t from) {
    uint32_t height = 0;
    node.items.reserve(exprs.size() - from);
    for (std::size_t i = from; i < exprs.size(); ++i) {
      node.items.push_back(std::move(exprs[i]));
      height = std::max(height, heights[i]);
    }
    exprs.resize(from);
    heights.resize(from);
    return height + 1;
  }

  ast::Block& current_block() {
    if (blocks.empty()) blocks.emplace_back();
    return blocks.back();
  }

  ast::Block pop_block() {
    if (blocks.empty()) return {};
    ast::Block b = std::move(blocks.back());
    blocks.pop_back();
    return b;
  }

  // The innermost branch or foreach whose head is being parsed.
  ast::Stmt& cur_body_stmt() {
    if (pending_bodies.empty()) pending_bodies.emplace_back();
    return pending_bodies.back();
  }

  // Finishes the innermost pending branch or foreach: its body is the block
  // just parsed.
  template <typename Input>
  void finish_body_stmt(const Input& in) {
    ast::Stmt stmt = std::move(cur_body_stmt());
    pending_bodies.pop_back();
    stmt.span = span(in);
    stmt.body = std::make_unique<ast::Block>(pop_block());
    current_block().push_back(std::move(stmt));
  }

  ast::Step& cur_step() {
    if (!step) step = std::make_unique<ast::Step>();
    return *step;
  }

  ast::ActionCall& cur_call() {
    if (!call) call = std::make_unique<ast::ActionCall>();
    return *call;
  }

  ast::Config& cur_config() {
    if (!config) config = std::make_unique<ast::Config>();
    return *config;
  }

  StringFrame& cur_string() {
    if (string_depth == 0) open_string(0);
    return strings[string_depth - 1];
  }

  void open_string(uint32_t quote) {
    if (string_depth == strings.size()) strings.emplace_back();
    StringFrame& f = strings[string_depth++];
    f.buf.clear();
    f.mark = static_cast<uint32_t>(exprs.size());
    f.piece_start = quote + 1;
    f.interp = false;
  }

  // Pushes the decoded text of the current piece as a String node ending at
  // [end], unless it is empty.
  void flush_piece(StringFrame& f, uint32_t end) {
    if (f.buf.empty()) return;
    auto e = make_expr(ExprKind::String, {f.piece_start, end - f.piece_start});
    e->text = f.buf;
    push(std::move(e));
    f.buf.clear();
  }

  // Pushes a node that collects the expressions that follow it (list, object,
  // call) and remembers where they start.
  void open_variadic(ExprPtr node) {
    push(std::move(node));
    marks.push_back(static_cast<uint32_t>(exprs.size()));
  }

  // Moves the expressions above the innermost mark into the node below it.
  template <typename Input>
  void close_variadic(const Input& in) {
    if (marks.empty()) return;
    const uint32_t mark = marks.back();
    marks.pop_back();
    if (mark == 0 || mark > exprs.size()) return;
    ast::Expr& node = *exprs[mark - 1];
    node.span = span(in);
    const uint32_t height = adopt(node, mark);
    if (height > peg::kMaxNesting) {
      throw SyntaxError{node.span.offset, &error_text<peg::too_deep_expression>};
    }
    heights[mark - 1] = height;
  }

  void open_bracket(const char* p) { openers.push_back(offset(p)); }
  void close_bracket() {
    if (!openers.empty()) openers.pop_back();
  }

  // Forgets everything about the item that failed (items already finished stay
  // in `out`).
  void reset() {
    exprs.clear();
    heights.clear();
    marks.clear();
    string_depth = 0;
    blocks.clear();
    pending_ifs.clear();
    pending_bodies.clear();
    openers.clear();
    call.reset();
    trigger = {};
    step.reset();
    step_kind = ast::StepKind::Plain;
    step_kind_span = {};
    config.reset();
    ref.reset();
    name.clear();
    has_fail_class = false;
    depth = 0;
    block_depth = 0;
    string_opens.clear();
  }
};

// --- Small helpers over action inputs --------------------------------------

// The identifier at the start of an action's input.
template <typename Input>
std::string_view leading_ident(const Input& in) {
  return {in.begin(), peg::identifier_length(in.begin(), in.end())};
}

// The identifier at the end of an action's input (`. name`).
template <typename Input>
std::string_view trailing_ident(const Input& in) {
  const char* b = in.begin();
  const char* e = in.end();
  const char* p = e;
  while (p != b && peg::is_ident_char(p[-1])) --p;
  return {p, static_cast<std::size_t>(e - p)};
}

template <typename Input>
Span leading_span(const Builder& b, const Input& in, std::size_t length) {
  return {b.offset(in.begin()), static_cast<uint32_t>(length)};
}

// Records a clause keyword (its spelling is the first [length] characters).
template <typename Input>
void add_clause(std::vector<std::pair<std::string, Span>>& clauses, const Builder& b,
                const Input& in, std::size_t length) {
  clauses.emplace_back(std::string(in.begin(), length), leading_span(b, in, length));
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // Lone surrogates cannot be encoded.
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t hex_value(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint32_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<uint32_t>(c - 'a' + 10);
  return static_cast<uint32_t>(c - 'A' + 10);
}

// Binary tails start at their operator, which is blamed if the tree gets too
// high.
template <typename Input>
void push_binary(Builder& b, const Input& in, ast::BinaryOp op) {
  uint32_t rhs_height = 0, lhs_height = 0;
  ExprPtr rhs = b.pop(&rhs_height);
  ExprPtr lhs = b.pop(&lhs_height);
  const uint32_t start = lhs->span.offset;
  auto e = make_expr(ExprKind::Binary, {start, b.offset(in.end()) - start});
  e->binary_op = op;
  e->items.push_back(std::move(lhs));
  e->items.push_back(std::move(rhs));
  b.push(std::move(e), std::max(lhs_height, rhs_height) + 1, b.offset(in.begin()));
}

template <typename Input>
void push_unary(Builder& b, const Input& in, ast::UnaryOp op) {
  auto e = make_expr(ExprKind::Unary, b.span(in));
  e->unary_op = op;
  uint32_t height = 0;
  e->items.push_back(b.pop(&height));
  b.push(std::move(e), height + 1, b.offset(in.begin()));
}

// --- Actions ----------------------------------------------------------------

template <typename Rule>
struct action : pegtl::nothing<Rule> {};

// Literals.

template <>
struct action<peg::null_literal> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.push(make_expr(ExprKind::Null, b.span(in)));
  }
};

template <bool Value>
struct bool_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    auto e = make_expr(ExprKind::Bool, b.span(in));
    e->boolean = Value;
    b.push(std::move(e));
  }
};
template <>
struct action<peg::true_literal> : bool_action<true> {};
template <>
struct action<peg::false_literal> : bool_action<false> {};

// Milliseconds per duration unit (the units of peg::duration_unit).
double unit_milliseconds(std::string_view unit) {
  if (unit == "s") return 1e3;
  if (unit == "m") return 60e3;
  if (unit == "h") return 3600e3;
  if (unit == "d") return 86400e3;
  return 1;  // "ms"
}

// number_literal: a Number, or a Duration in milliseconds when a unit follows.
template <>
struct action<peg::number_literal> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const char* first = in.begin();
    const char* last = in.end();
    const Span span = b.span(in);
    double value = 0;
    const auto [unit, ec] = std::from_chars(first, last, value);
    const bool bad = ec != std::errc();
    ExprPtr e;
    if (unit == last) {
      e = make_expr(ExprKind::Number, span);
    } else {
      value *= unit_milliseconds(std::string_view(unit, static_cast<std::size_t>(last - unit)));
      e = make_expr(ExprKind::Duration, span);
      e->text.assign(first, in.size());
    }
    if (bad || !std::isfinite(value)) {
      // Infinite, so that later checks of the value know it is already reported.
      if (b.diags) b.diags->error(span, messages::kNumberOutOfRange);
      value = std::numeric_limits<double>::infinity();
    }
    e->number = value;
    b.push(std::move(e));
  }
};

// Strings.

template <>
struct action<peg::string_open> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.open_string(b.offset(in.begin()));
  }
};

template <>
struct action<peg::string_chars> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_string().buf.append(in.begin(), in.size());
  }
};

template <>
struct action<peg::escape> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    std::string& buf = b.cur_string().buf;
    const char* p = in.begin();
    switch (p[1]) {
      case 'n':
        buf.push_back('\n');
        break;
      case 't':
        buf.push_back('\t');
        break;
      case 'r':
        buf.push_back('\r');
        break;
      case 'u': {
        uint32_t cp = 0;
        for (int i = 2; i < 6; ++i) cp = cp * 16 + hex_value(p[i]);
        append_utf8(buf, cp);
        break;
      }
      default:
        buf.push_back(p[1]);
        break;  // " \ / $
    }
  }
};

template <>
struct action<peg::interp_open> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    StringFrame& f = b.cur_string();
    f.interp = true;
    b.flush_piece(f, b.offset(in.begin()));
    b.open_bracket(in.begin());
  }
};

template <>
struct action<peg::interp_close> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_string().piece_start = b.offset(in.end());
    b.close_bracket();
  }
};

// A string without ${...} becomes a String node; otherwise an Interp node whose
// items are the non-empty text pieces and the expressions, in order.
template <>
struct action<peg::string_literal> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    StringFrame& f = b.cur_string();
    const Span span = b.span(in);
    if (!f.interp) {
      auto e = make_expr(ExprKind::String, span);
      e->text = f.buf;
      b.string_depth--;
      b.push(std::move(e));
      return;
    }
    b.flush_piece(f, span.offset + span.length - 1);  // Up to the closing quote.
    auto node = make_expr(ExprKind::Interp, span);
    const uint32_t mark = std::min<uint32_t>(f.mark, static_cast<uint32_t>(b.exprs.size()));
    b.string_depth--;
    const uint32_t height = b.adopt(*node, mark);
    b.push(std::move(node), height, span.offset);
  }
};

// Lists, objects, calls.

template <>
struct action<peg::list_open> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.open_variadic(make_expr(ExprKind::List, b.span(in)));
    b.open_bracket(in.begin());
  }
};

template <>
struct action<peg::object_open> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.open_variadic(make_expr(ExprKind::Object, b.span(in)));
    b.open_bracket(in.begin());
  }
};

// call_head / config_call_head: "name(" opens a Call node.
struct call_head_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const std::size_t n = in.size() - 1;
    auto e = make_expr(ExprKind::Call, leading_span(b, in, n));
    e->text.assign(in.begin(), n);
    e->name_span = e->span;
    b.open_variadic(std::move(e));
    b.open_bracket(in.end() - 1);
  }
};
template <>
struct action<peg::call_head> : call_head_action {};
template <>
struct action<peg::config_call_head> : call_head_action {};

struct close_variadic_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.close_variadic(in);
  }
};
template <>
struct action<peg::list_literal> : close_variadic_action {};
template <>
struct action<peg::config_list> : close_variadic_action {};
template <>
struct action<peg::object_literal> : close_variadic_action {};
template <>
struct action<peg::call> : close_variadic_action {};
template <>
struct action<peg::config_call> : close_variadic_action {};

template <>
struct action<peg::object_key_ident> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    if (b.marks.empty() || b.marks.back() == 0) return;
    ast::Expr& object = *b.exprs[b.marks.back() - 1];
    object.keys.emplace_back(in.begin(), in.size());
    object.key_spans.push_back(b.span(in));
  }
};

template <>
struct action<peg::object_key_string> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    ExprPtr key = b.pop();
    if (key->kind == ExprKind::Interp && b.diags)
      b.diags->error(key->span, messages::kKeyInterpolation);
    if (b.marks.empty() || b.marks.back() == 0) return;
    ast::Expr& object = *b.exprs[b.marks.back() - 1];
    object.keys.push_back(std::move(key->text));
    object.key_spans.push_back(key->span);
  }
};

// Brackets that build no node of their own but are tracked for the "is never
// closed" help.
struct open_bracket_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.open_bracket(in.begin());
  }
};
struct close_bracket_action {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.close_bracket();
  }
};
template <>
struct action<peg::paren_open> : open_bracket_action {};
template <>
struct action<peg::index_open> : open_bracket_action {};
template <>
struct action<peg::service_open> : open_bracket_action {};
template <>
struct action<peg::step_open> : open_bracket_action {};
template <>
struct action<peg::params_open> : open_bracket_action {};
template <>
struct action<peg::args_open> : open_bracket_action {};
template <>
struct action<peg::list_close> : close_bracket_action {};
template <>
struct action<peg::object_close> : close_bracket_action {};
template <>
struct action<peg::paren_close> : close_bracket_action {};
template <>
struct action<peg::call_close> : close_bracket_action {};
template <>
struct action<peg::index_close> : close_bracket_action {};
template <>
struct action<peg::config_close> : close_bracket_action {};
template <>
struct action<peg::service_close> : close_bracket_action {};
template <>
struct action<peg::step_close> : close_bracket_action {};
template <>
struct action<peg::params_close> : close_bracket_action {};
template <>
struct action<peg::args_close> : close_bracket_action {};
template <>
struct action<peg::block_close> : close_bracket_action {};

// Names and operators.

template <>
struct action<peg::variable> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    auto e = make_expr(ExprKind::Var, b.span(in));
    e->text.assign(in.begin(), in.size());
    e->name_span = e->span;
    b.push(std::move(e));
  }
};
template <>
struct action<peg::config_word> : action<peg::variable> {};

template <>
struct action<peg::field_access> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    uint32_t height = 0;
    ExprPtr object = b.pop(&height);
    const std::string_view field = trailing_ident(in);
    const uint32_t start = object->span.offset;
    auto e = make_expr(ExprKind::Field, {start, b.offset(in.end()) - start});
    e->text = field;
    e->name_span = {b.offset(field.data()), static_cast<uint32_t>(field.size())};
    e->items.push_back(std::move(object));
    b.push(std::move(e), height + 1, b.offset(in.begin()));
  }
};

template <>
struct action<peg::index_access> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    uint32_t index_height = 0, object_height = 0;
    ExprPtr index = b.pop(&index_height);
    ExprPtr object = b.pop(&object_height);
    const uint32_t start = object->span.offset;
    auto e = make_expr(ExprKind::Index, {start, b.offset(in.end()) - start});
    e->items.push_back(std::move(object));
    e->items.push_back(std::move(index));
    b.push(std::move(e), std::max(index_height, object_height) + 1, b.offset(in.begin()));
  }
};

template <>
struct action<peg::neg_expr> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    push_unary(b, in, ast::UnaryOp::Neg);
  }
};
template <>
struct action<peg::config_negative> : action<peg::neg_expr> {};

template <>
struct action<peg::not_prefix> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    push_unary(b, in, ast::UnaryOp::Not);
  }
};

// The tails start at their operator, which the table of operators
// (grammar/operators.def) reads by its spelling. value() throws (an internal
// error, not a wrong operator) if the grammar matched one the table does not
// spell.
struct binary_tail_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    push_binary(b, in, ast::binary_op_at(std::string_view(in.begin(), in.size())).value());
  }
};
template <>
struct action<peg::mul_tail> : binary_tail_action {};
template <>
struct action<peg::add_tail> : binary_tail_action {};
template <>
struct action<peg::cmp_tail> : binary_tail_action {};

template <>
struct action<peg::and_tail> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    push_binary(b, in, ast::BinaryOp::And);
  }
};

template <>
struct action<peg::or_tail> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    push_binary(b, in, ast::BinaryOp::Or);
  }
};

// Configuration bodies.

template <>
struct action<peg::config_open> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.config = std::make_unique<ast::Config>();
    b.config->span.offset = b.offset(in.begin());
    b.open_bracket(in.begin());
  }
};

template <>
struct action<peg::config_field> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const std::string_view key = leading_ident(in);
    ast::ConfigField field;
    field.key = key;
    field.key_span = leading_span(b, in, key.size());
    field.value = b.pop();
    b.cur_config().fields.push_back(std::move(field));
  }
};

// Takes the finished configuration body, with its span set.
template <typename Input>
std::unique_ptr<ast::Config> take_config(const Input& in, Builder& b) {
  b.cur_config().span = b.span(in);
  return std::move(b.config);
}

// Services.

template <>
struct action<peg::service_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.service = ast::Service{};
    b.service.name.assign(in.begin(), in.size());
    b.service.name_span = b.span(in);
  }
};

template <>
struct action<peg::url_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    add_clause(b.service.clauses, b, in, 3);
    ExprPtr url = b.pop();
    b.service.url_span = url->span;
    b.service.has_url = true;
    if (url->kind == ExprKind::Interp) {
      if (b.diags) {
        b.diags->error(url->span, messages::kUrlInterpolation, messages::kUrlInterpolationHelp);
      }
      // Keep the raw text so later passes still see a url.
      b.service.url.assign(b.base + url->span.offset + 1, url->span.length - 2);
    } else {
      b.service.url = std::move(url->text);
    }
  }
};

template <>
struct action<peg::service_timeout> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    add_clause(b.service.clauses, b, in, 7);
    b.service.timeout = b.pop();
  }
};

template <>
struct action<peg::breaker_body> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.service.breaker = take_config(in, b);
  }
};

template <>
struct action<peg::breaker_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    add_clause(b.service.clauses, b, in, 7);
  }
};

template <>
struct action<peg::bulkhead_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    add_clause(b.service.clauses, b, in, 8);
    b.service.bulkhead = b.pop();
  }
};

template <>
struct action<peg::op_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.route = ast::Route{};
    b.route.op.assign(in.begin(), in.size());
    b.route.op_span = b.span(in);
  }
};

template <>
struct action<peg::op_method> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.route.method.assign(in.begin(), in.size());
    b.route.method_span = b.span(in);
  }
};

// The path keeps its raw text (escapes and ${...} as written); path_span
// covers exactly that text, without the quotes.
template <>
struct action<peg::op_path> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const Span s = b.span(in);
    b.route.path.assign(in.begin() + 1, in.size() - 2);
    b.route.path_span = {s.offset + 1, s.length - 2};
  }
};

template <>
struct action<peg::op_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.route.span = b.span(in);
    b.service.routes.push_back(std::move(b.route));
    add_clause(b.service.clauses, b, in, 2);
  }
};

template <>
struct action<peg::idempotent_op> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.service.idempotent_ops.emplace_back(std::string(in.begin(), in.size()), b.span(in));
  }
};

template <>
struct action<peg::idempotent_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    // No list: every operation. (An empty list `[]` names none.)
    if (in.string_view().find('[') == std::string_view::npos) b.service.idempotent_all = true;
    add_clause(b.service.clauses, b, in, 10);
  }
};

template <>
struct action<peg::service_decl> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.service.span = b.span(in);
    b.out->services.push_back(std::move(b.service));
  }
};

// Retry policies.

template <>
struct action<peg::retry_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.policy = ast::RetryPolicy{};
    b.policy.name.assign(in.begin(), in.size());
    b.policy.name_span = b.span(in);
  }
};

template <>
struct action<peg::retry_body> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.policy.body = std::move(*take_config(in, b));
  }
};

template <>
struct action<peg::retry_decl> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.policy.span = b.span(in);
    b.out->policies.push_back(std::move(b.policy));
  }
};

// Steps and action calls.

template <>
struct action<peg::step_kind> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.step_kind = in.string_view() == "pivot" ? ast::StepKind::Pivot : ast::StepKind::Retriable;
    b.step_kind_span = b.span(in);
  }
};

template <>
struct action<peg::step_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.step = std::make_unique<ast::Step>();
    b.step->name.assign(in.begin(), in.size());
    b.step->name_span = b.span(in);
    b.step->kind = std::exchange(b.step_kind, ast::StepKind::Plain);
    b.step->kind_span = std::exchange(b.step_kind_span, Span{});
  }
};

template <>
struct action<peg::action_segment> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.call = std::make_unique<ast::ActionCall>();
    b.call->target.assign(in.begin(), in.size());
  }
};

template <>
struct action<peg::action_dot_segment> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    std::string& target = b.cur_call().target;
    target.push_back('.');
    target.append(in.begin(), in.size());
  }
};

template <>
struct action<peg::action_target> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_call().target_span = b.span(in);
  }
};

template <>
struct action<peg::named_arg> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const std::string_view name = leading_ident(in);
    ast::NamedArg arg;
    arg.name = name;
    arg.name_span = leading_span(b, in, name.size());
    arg.value = b.pop();
    b.cur_call().args.push_back(std::move(arg));
  }
};

struct finish_call_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_call().span = b.span(in);
  }
};
template <>
struct action<peg::do_action> : finish_call_action {};
template <>
struct action<peg::undo_action> : finish_call_action {};

template <>
struct action<peg::bind_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_step().bind.assign(in.begin(), in.size());
    b.cur_step().bind_span = b.span(in);
  }
};

template <>
struct action<peg::do_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Step& step = b.cur_step();
    add_clause(step.clauses, b, in, 2);
    step.action = std::move(b.call);
  }
};

template <>
struct action<peg::undo_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Step& step = b.cur_step();
    add_clause(step.clauses, b, in, 4);
    step.undo = std::move(b.call);
  }
};

template <>
struct action<peg::step_timeout> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Step& step = b.cur_step();
    add_clause(step.clauses, b, in, 7);
    step.timeout = b.pop();
  }
};

// RetryRef::span covers the policy name or the inline body.
template <>
struct action<peg::retry_inline> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.ref = std::make_unique<ast::RetryRef>();
    b.ref->span = b.span(in);
    b.ref->inline_policy = take_config(in, b);
  }
};

template <>
struct action<peg::retry_policy_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.ref = std::make_unique<ast::RetryRef>();
    b.ref->span = b.span(in);
    b.ref->name.assign(in.begin(), in.size());
  }
};

template <>
struct action<peg::retry_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    add_clause(b.cur_step().clauses, b, in, 5);
    b.cur_step().retry = std::move(b.ref);
  }
};

template <>
struct action<peg::undo_retry_clause> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    add_clause(b.cur_step().clauses, b, in, 10);
    b.cur_step().undo_retry = std::move(b.ref);
  }
};

// `undo_retry POLICY` as a statement: the saga's default for its undos (the
// checker accepts it only at the top level of the saga body).
template <>
struct action<peg::undo_retry_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::UndoRetry;
    stmt.span = b.span(in);
    stmt.retry = std::move(b.ref);
    b.current_block().push_back(std::move(stmt));
  }
};

template <>
struct action<peg::step_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::Step;
    stmt.span = b.span(in);
    b.cur_step().span = stmt.span;
    stmt.step = std::move(b.step);
    b.current_block().push_back(std::move(stmt));
  }
};

// Other statements.

template <>
struct action<peg::let_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.name.assign(in.begin(), in.size());
    b.name_span = b.span(in);
  }
};

template <>
struct action<peg::let_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::Let;
    stmt.span = b.span(in);
    stmt.name = std::move(b.name);
    stmt.name_span = b.name_span;
    stmt.expr = b.pop();
    b.current_block().push_back(std::move(stmt));
  }
};

template <>
struct action<peg::fail_class> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    const std::string_view cls = leading_ident(in);
    b.name = cls;
    b.name_span = leading_span(b, in, cls.size());
    b.has_fail_class = true;
  }
};

template <>
struct action<peg::fail_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::Fail;
    stmt.span = b.span(in);
    if (b.has_fail_class) {
      stmt.name = std::move(b.name);
      stmt.name_span = b.name_span;
      b.has_fail_class = false;
    }
    stmt.expr = b.pop();
    b.current_block().push_back(std::move(stmt));
  }
};

template <ast::StmtKind Kind>
struct expr_stmt_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = Kind;
    stmt.span = b.span(in);
    stmt.expr = b.pop();
    b.current_block().push_back(std::move(stmt));
  }
};
template <>
struct action<peg::output_stmt> : expr_stmt_action<ast::StmtKind::Output> {};
template <>
struct action<peg::deadline_stmt> : expr_stmt_action<ast::StmtKind::Deadline> {};

template <>
struct action<peg::emit_type> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.name.assign(in.begin(), in.size());
    b.name_span = b.span(in);
  }
};

template <>
struct action<peg::emit_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::Emit;
    stmt.span = b.span(in);
    stmt.name = std::move(b.name);
    stmt.name_span = b.name_span;
    stmt.expr = b.pop();
    b.current_block().push_back(std::move(stmt));
  }
};

// Blocks and if statements.

template <>
struct action<peg::block_open> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.blocks.emplace_back();
    b.open_bracket(in.begin());
  }
};

// `if cond {then}` is complete: park it until we know whether an else follows.
template <>
struct action<peg::if_then> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::If;
    stmt.then_block = std::make_unique<ast::Block>(b.pop_block());
    stmt.expr = b.pop();
    b.pending_ifs.push_back(std::move(stmt));
  }
};

template <>
struct action<peg::else_block> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    if (b.pending_ifs.empty()) return;
    b.pending_ifs.back().else_block = std::make_unique<ast::Block>(b.pop_block());
  }
};

// The inner if of `else if` was appended to the enclosing block by its own
// action; move it into the else block of the outer if.
template <>
struct action<peg::else_if> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    ast::Block& block = b.current_block();
    if (b.pending_ifs.empty() || block.empty()) return;
    auto else_block = std::make_unique<ast::Block>();
    else_block->push_back(std::move(block.back()));
    block.pop_back();
    b.pending_ifs.back().else_block = std::move(else_block);
  }
};

template <>
struct action<peg::if_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    if (b.pending_ifs.empty()) return;
    ast::Stmt stmt = std::move(b.pending_ifs.back());
    b.pending_ifs.pop_back();
    stmt.span = b.span(in);
    b.current_block().push_back(std::move(stmt));
  }
};

// Parallel blocks, branches and loops. The head of a branch or foreach opens
// a pending statement; the body's block closes it.

template <>
struct action<peg::parallel_block> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt stmt;
    stmt.kind = ast::StmtKind::Parallel;
    stmt.span = b.span(in);  // Extended to `parallel` by parallel_stmt.
    stmt.body = std::make_unique<ast::Block>(b.pop_block());
    b.current_block().push_back(std::move(stmt));
  }
};

// The parallel block or the foreach was appended to the enclosing block by
// its own action: mark it and start its span at `parallel`.
template <>
struct action<peg::parallel_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Block& block = b.current_block();
    if (block.empty()) return;
    ast::Stmt& stmt = block.back();
    stmt.span = b.span(in);
    if (stmt.kind == ast::StmtKind::Foreach) stmt.parallel = true;
  }
};

// The branch name or loop variable opens the pending statement of that kind.
template <ast::StmtKind Kind>
struct open_body_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt& stmt = b.pending_bodies.emplace_back();
    stmt.kind = Kind;
    stmt.name.assign(in.begin(), in.size());
    stmt.name_span = b.span(in);
  }
};
template <>
struct action<peg::branch_name> : open_body_action<ast::StmtKind::Branch> {};
template <>
struct action<peg::foreach_var> : open_body_action<ast::StmtKind::Foreach> {};

template <>
struct action<peg::foreach_list> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.cur_body_stmt().expr = b.pop();
  }
};

template <>
struct action<peg::max_value> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.cur_body_stmt().max = b.pop();
  }
};

template <>
struct action<peg::foreach_max> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_body_stmt().max_span = leading_span(b, in, 3);
  }
};

// `await signal NAME ...`: the name opens a pending statement (as a branch's
// does), the clauses fill it, and the statement's end appends it (after any
// await inside its else block, which has its own pending statement).
template <>
struct action<peg::await_signal_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt& stmt = b.pending_bodies.emplace_back();
    stmt.kind = ast::StmtKind::Await;
    stmt.signal.assign(in.begin(), in.size());
    stmt.signal_span = b.span(in);
  }
};

template <>
struct action<peg::await_event_type> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Stmt& stmt = b.pending_bodies.emplace_back();
    stmt.kind = ast::StmtKind::Await;
    stmt.event = true;
    stmt.signal.assign(in.begin(), in.size());
    stmt.signal_span = b.span(in);
    stmt.types.emplace_back(stmt.signal, stmt.signal_span);
  }
};

template <>
struct action<peg::await_event_more> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_body_stmt().types.emplace_back(std::string(in.begin(), in.size()), b.span(in));
  }
};

template <>
struct action<peg::await_where_cond> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.cur_body_stmt().where = b.pop();
  }
};

template <>
struct action<peg::await_timeout_value> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.cur_body_stmt().expr = b.pop();
  }
};

template <>
struct action<peg::await_bind_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_body_stmt().name.assign(in.begin(), in.size());
    b.cur_body_stmt().name_span = b.span(in);
  }
};

template <>
struct action<peg::await_else_body> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.cur_body_stmt().else_block = std::make_unique<ast::Block>(b.pop_block());
  }
};

template <>
struct action<peg::await_else> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.cur_body_stmt().else_span = leading_span(b, in, 4);
  }
};

template <>
struct action<peg::await_stmt> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    if (b.pending_bodies.empty()) return;
    ast::Stmt stmt = std::move(b.pending_bodies.back());
    b.pending_bodies.pop_back();
    stmt.span = b.span(in);
    b.current_block().push_back(std::move(stmt));
  }
};

struct finish_body_action {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.finish_body_stmt(in);
  }
};
template <>
struct action<peg::branch_stmt> : finish_body_action {};
template <>
struct action<peg::foreach_stmt> : finish_body_action {};

// Sagas and items.

template <>
struct action<peg::saga_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.saga = ast::Saga{};
    b.saga.name.assign(in.begin(), in.size());
    b.saga.name_span = b.span(in);
  }
};

template <>
struct action<peg::param_name> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    ast::Param param;
    param.name.assign(in.begin(), in.size());
    param.name_span = b.span(in);
    b.saga.params.push_back(std::move(param));
  }
};

template <>
struct action<peg::param_type> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    if (b.saga.params.empty()) return;
    b.saga.params.back().type.assign(in.begin(), in.size());
    b.saga.params.back().type_span = b.span(in);
  }
};

template <>
struct action<peg::saga_body> {
  template <typename Input>
  static void apply(const Input&, Builder& b) {
    b.saga.body = b.pop_block();
  }
};

template <>
struct action<peg::saga_decl> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.saga.span = b.span(in);
    b.out->sagas.push_back(std::move(b.saga));
  }
};

template <>
struct action<peg::trigger_type> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.trigger = ast::Trigger{};
    b.trigger.type.assign(in.begin(), in.size());
    b.trigger.type_span = b.span(in);
  }
};

template <>
struct action<peg::trigger_saga> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.trigger.saga.assign(in.begin(), in.size());
    b.trigger.saga_span = b.span(in);
    // The arguments are named_args, collected like an action call's.
    b.call = std::make_unique<ast::ActionCall>();
  }
};

template <>
struct action<peg::trigger_open> : open_bracket_action {};
template <>
struct action<peg::trigger_close> : close_bracket_action {};

template <>
struct action<peg::trigger_decl> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.trigger.span = b.span(in);
    if (b.call) b.trigger.args = std::move(b.call->args);
    b.call.reset();
    b.out->triggers.push_back(std::move(b.trigger));
    b.trigger = {};
  }
};

template <>
struct action<peg::item_begin> {
  template <typename Input>
  static void apply(const Input& in, Builder& b) {
    b.item_start = b.offset(in.begin());
  }
};

// --- Control ----------------------------------------------------------------

// PEGTL's normal control plus: error anchors recorded in start(), the nesting
// limit enforced in match(), and raise() throwing SyntaxError with the rule's
// row of error_messages.hpp.
template <typename Rule>
struct control : pegtl::normal<Rule> {
  template <typename ParseInput>
  static void start(const ParseInput& in, Builder& b) {
    if constexpr (std::is_same_v<Rule, peg::block_comment>) {
      b.comment_open = b.offset(in.current());
    } else if constexpr (std::is_same_v<Rule, peg::escape>) {
      b.escape_open = b.offset(in.current());
    } else if constexpr (std::is_same_v<Rule, peg::number_literal>) {
      b.number_start = b.offset(in.current());
    } else if constexpr (std::is_same_v<Rule, peg::string_literal>) {
      b.string_opens.push_back(b.offset(in.current()));
    }
  }

  template <typename ParseInput>
  static void success(const ParseInput&, Builder& b) {
    if constexpr (std::is_same_v<Rule, peg::string_literal>) b.string_opens.pop_back();
  }

  template <typename ParseInput>
  static void failure(const ParseInput&, Builder& b) {
    if constexpr (std::is_same_v<Rule, peg::string_literal>) b.string_opens.pop_back();
  }

  template <pegtl::apply_mode A, pegtl::rewind_mode M, template <typename...> class Action,
            template <typename...> class Control, typename ParseInput>
  [[nodiscard]] static bool match(ParseInput& in, Builder& b) {
    if constexpr (std::is_base_of_v<peg::block_nesting, Rule>) {
      return nested<peg::too_deep_block, A, M, Action, Control>(in, b, b.block_depth);
    } else if constexpr (std::is_base_of_v<peg::nesting, Rule>) {
      return nested<peg::too_deep_expression, A, M, Action, Control>(in, b, b.depth);
    } else {
      return pegtl::normal<Rule>::template match<A, M, Action, Control>(in, b);
    }
  }

  // Matches Rule one level deeper in [depth], or raises TooDeep at the limit.
  template <typename TooDeep, pegtl::apply_mode A, pegtl::rewind_mode M,
            template <typename...> class Action, template <typename...> class Control,
            typename ParseInput>
  static bool nested(ParseInput& in, Builder& b, std::size_t& depth) {
    if (depth >= peg::kMaxNesting) control<TooDeep>::raise(in, b);
    ++depth;
    const bool ok = pegtl::normal<Rule>::template match<A, M, Action, Control>(in, b);
    --depth;
    return ok;
  }

  template <typename ParseInput>
  [[noreturn]] static void raise(const ParseInput& in, Builder& b) {
    static_assert(errors::message<Rule> != nullptr,
                  "every must<> point needs a row in grammar/error_messages.hpp");
    throw SyntaxError{b.offset(in.current()), &error_text<Rule>};
  }
};

// --- Error reporting and recovery ------------------------------------------

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Skips whitespace and complete comments from [at]; stops at an unterminated
// block comment.
uint32_t skip_trivia(std::string_view text, uint32_t at) {
  while (at < text.size()) {
    if (is_space(text[at])) {
      ++at;
    } else if (text.compare(at, 2, "//") == 0) {
      const std::size_t nl = text.find('\n', at);
      at = nl == std::string_view::npos ? static_cast<uint32_t>(text.size())
                                        : static_cast<uint32_t>(nl);
    } else if (text.compare(at, 2, "/*") == 0) {
      const std::size_t end = text.find("*/", at + 2);
      if (end == std::string_view::npos) break;
      at = static_cast<uint32_t>(end + 2);
    } else {
      break;
    }
  }
  return at;
}

// The span of the token at [at]: an identifier or number, a two-character
// operator, one UTF-8 character, or an empty span at the end of the input.
Span token_span(std::string_view text, uint32_t at) {
  if (at >= text.size()) return {static_cast<uint32_t>(text.size()), 0};
  const char c = text[at];
  uint32_t end = at + 1;
  if (peg::is_ident_char(c)) {
    while (end < text.size() &&
           (peg::is_ident_char(text[end]) || (text[end] == '.' && !peg::is_ident_start(c)))) {
      ++end;
    }
  } else if (end < text.size()) {
    static constexpr std::string_view kPairs[] = {"==", "!=", "<=", ">=", "->", "${", "/*", "*/"};
    const std::string_view two = text.substr(at, 2);
    for (std::string_view p : kPairs) {
      if (p == two) end = at + 2;
    }
    const uint32_t n = decode_utf8(text.substr(at)).length;
    if (n > 1) end = at + n;
  }
  return {at, end - at};
}

std::string_view word_at(std::string_view text, uint32_t at) {
  if (at >= text.size()) return {};
  return text.substr(at, peg::identifier_length(text.data() + at, text.data() + text.size()));
}

// Whether [word], found where an expression should be, more likely means the
// expression is missing than that it was meant as a name: it starts a
// statement, step clause or item, or is a binary operator.
bool means_missing_expression(std::string_view word) {
  for (std::string_view w : {"step", "let", "if", "else", "fail", "output", "deadline", "do",
                             "undo", "retry", "service", "saga", "and", "or"}) {
    if (w == word) return true;
  }
  return false;
}

// The message (and help) for a character beyond ASCII at [at], where the parser
// expected a token; [name_expected] when a name could stand there.
std::pair<std::string, std::string> non_ascii_error(std::string_view text, uint32_t at,
                                                    bool name_expected) {
  const Utf8Char c = decode_utf8(text.substr(at));
  if (c.length == 0) {
    return {fmt::format("{}{:02X}{}", messages::kInvalidUtf8Prefix,
                        static_cast<unsigned char>(text[at]), messages::kInvalidUtf8Suffix),
            messages::kInvalidUtf8Help};
  }
  const std::string shown = fmt::format("'{}' (U+{:04X})", text.substr(at, c.length), c.code_point);
  // Typographic quotes, as a word processor writes them.
  static constexpr uint32_t kCurlyQuotes[] = {0x201C, 0x201D, 0x201E, 0x2018, 0x2019, 0xAB, 0xBB};
  if (std::find(std::begin(kCurlyQuotes), std::end(kCurlyQuotes), c.code_point) !=
      std::end(kCurlyQuotes)) {
    return {messages::kNonAsciiPrefix + shown + messages::kNonAsciiSuffix,
            messages::kCurlyQuoteHelp};
  }
  const uint32_t after = at + c.length;
  const bool in_name = (at > 0 && peg::is_ident_char(text[at - 1])) ||
                       (after < text.size() && peg::is_ident_char(text[after]));
  if (in_name || name_expected) {
    return {shown + messages::kNonAsciiNameSuffix, messages::kNonAsciiNameHelp};
  }
  return {messages::kNonAsciiPrefix + shown + messages::kNonAsciiSuffix, messages::kNonAsciiHelp};
}

// Reports [e] and returns the offset from which recovery searches for the next
// item.
uint32_t report(const SourceFile& src, const Builder& b, const SyntaxError& e, Diagnostics& diags) {
  static constexpr ErrorText kGeneric{.message = messages::kSyntaxError};
  const std::string_view text = src.text();
  const uint32_t size = static_cast<uint32_t>(text.size());
  const ErrorText& t = e.text != nullptr && e.text->message != nullptr ? *e.text : kGeneric;
  const uint32_t raw = std::min(e.offset, size);
  uint32_t at = raw;
  Span span;
  switch (t.anchor) {
    case ErrorAnchor::Token: {
      at = skip_trivia(text, raw);
      // A word that runs into a character beyond ASCII (`dö`, `söme = 1`): that
      // character is the error.
      const uint32_t word_end = at + static_cast<uint32_t>(word_at(text, at).size());
      if (word_end > at && word_end < size && static_cast<unsigned char>(text[word_end]) >= 0x80) {
        at = word_end;
      }
      span = token_span(text, at);
      break;
    }
    case ErrorAnchor::StringOpen: {
      const uint32_t open = b.string_opens.empty() ? raw : std::min(b.string_opens.back(), raw);
      span = {open, std::max<uint32_t>(raw - open, 1)};
      break;
    }
    case ErrorAnchor::CommentOpen:
      span = {std::min(b.comment_open, size), 2};
      break;
    case ErrorAnchor::Escape: {
      // From the backslash through the offending character (if it is on the line).
      const uint32_t open = std::min(b.escape_open, raw);
      const bool on_line = raw < size && text[raw] != '\n' && text[raw] != '\r' && text[raw] != '"';
      span = {open, std::max(raw + (on_line ? 1 : 0), open + 1) - open};
      break;
    }
    case ErrorAnchor::Number: {
      const uint32_t open = std::min(b.number_start, raw);
      uint32_t end = raw;
      while (end < size && peg::is_ident_char(text[end])) ++end;
      span = {open, end - open};
      break;
    }
  }
  span.offset = std::min(span.offset, size);
  span.length = std::min(span.length, size - span.offset);

  std::string message = t.message;
  std::string help = t.help != nullptr ? t.help : "";
  if (t.anchor == ErrorAnchor::Token && at < size && static_cast<unsigned char>(text[at]) >= 0x80) {
    // Not the token the rule wanted, whatever the rule: a character the grammar
    // never accepts outside strings and comments.
    std::tie(message, help) = non_ascii_error(text, at, t.reserved_role != nullptr);
  } else if (t.anchor == ErrorAnchor::Token) {
    const std::string_view word = word_at(text, at);
    if (t.reserved_role != nullptr && !word.empty() && peg::is_reserved_word(word) &&
        !(t.hint == ErrorHint::Expression && means_missing_expression(word))) {
      message = std::string(messages::kReservedPrefix) + std::string(word) +
                messages::kReservedMiddle + t.reserved_role;
      help = messages::kReservedHelp;
    } else if (t.hint == ErrorHint::Statement && !word.empty()) {
      if (word == "do" || word == "undo" || word == "timeout" || word == "retry") {
        help = std::string(messages::kStepClauseHelpPrefix) + std::string(word) +
               messages::kStepClauseHelpSuffix;
      } else {
        const uint32_t next = skip_trivia(text, at + static_cast<uint32_t>(word.size()));
        if (next < size && text[next] == '=' && (next + 1 >= size || text[next + 1] != '=')) {
          help = messages::kMissingLetHelp;
        } else {
          for (const messages::UnsupportedStatement& u : messages::kUnsupportedStatements) {
            if (word == u.word) {
              message = u.message;
              help = u.help;
            }
          }
          for (const messages::StatementForm& f : messages::kStatementForms) {
            if (word == f.word) help = f.help;
          }
        }
      }
    }
    if (at >= size && !b.openers.empty()) {
      // The input ended inside brackets: say which one is still open.
      const uint32_t open = b.openers.back();
      const LineCol pos = src.locate(open);
      const std::string bracket =
          text.compare(open, 2, "${") == 0 ? "${" : std::string(1, text[open]);
      help = std::string(messages::kUnclosedHelpPrefix) + bracket + messages::kUnclosedHelpLine +
             std::to_string(pos.line) + messages::kUnclosedHelpColumn + std::to_string(pos.column) +
             messages::kUnclosedHelpSuffix;
    }
  }
  diags.error(span, std::move(message), std::move(help));
  return t.anchor == ErrorAnchor::Token ? at : raw;
}

bool starts_item(std::string_view text, std::size_t p) {
  for (std::string_view kw : {std::string_view("service"), std::string_view("retry"),
                              std::string_view("saga"), std::string_view("on")}) {
    if (text.compare(p, kw.size(), kw) == 0 &&
        (p + kw.size() == text.size() || !peg::is_ident_char(text[p + kw.size()]))) {
      return true;
    }
  }
  return false;
}

// Where to go on after an error at [from] inside the item that starts at
// [item_start]: the first line at or after the error's line that starts (at
// column 1) with service, retry or saga, is past the item's start, and is not
// before the error. npos when there is none.
std::size_t find_resume(std::string_view text, uint32_t item_start, uint32_t from) {
  std::size_t p = 0;
  if (from > 0) {
    const std::size_t nl = text.rfind('\n', from - 1);
    p = nl == std::string_view::npos ? 0 : nl + 1;
  }
  while (p < text.size()) {
    if (p > item_start && p >= from && starts_item(text, p)) return p;
    const std::size_t nl = text.find('\n', p);
    if (nl == std::string_view::npos) break;
    p = nl + 1;
  }
  return std::string_view::npos;
}

// Remembers the keyword and name of the item that starts at [start], if the
// text there reads `service|retry|saga NAME`.
void record_broken_item(std::string_view text, std::size_t start, ast::File& out) {
  if (start >= text.size() || !starts_item(text, start)) return;
  std::size_t p = start;
  while (p < text.size() && peg::is_ident_char(text[p])) ++p;
  std::string kind(text.substr(start, p - start));
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
  std::size_t name_start = p;
  while (p < text.size() && peg::is_ident_char(text[p])) ++p;
  if (p > name_start)
    out.broken.push_back({std::move(kind), std::string(text.substr(name_start, p - name_start))});
}

// Reports the bytes of [text] that are not UTF-8: the first one of each line, and at
// most kMaxSyntaxErrors in all (a file in another encoding has one on every line).
void report_invalid_utf8(std::string_view text, Diagnostics& diags) {
  std::size_t reported = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const uint32_t n = decode_utf8(text.substr(i)).length;
    if (n > 0) {
      i += n;
      continue;
    }
    auto [message, help] = non_ascii_error(text, static_cast<uint32_t>(i), false);
    diags.error({static_cast<uint32_t>(i), 1}, std::move(message), std::move(help));
    if (++reported == kMaxSyntaxErrors) return;
    i = text.find('\n', i);
  }
}

}  // namespace

bool parse(const SourceFile& src, ast::File& out, Diagnostics& diags) {
  const std::size_t errors_before = diags.error_count();
  try {
    const std::string& text = src.text();
    if (text.size() >= std::numeric_limits<uint32_t>::max()) {
      diags.error({0, 0}, messages::kFileTooLarge);
      return false;
    }
    // Bytes that are not UTF-8 are reported first, wherever they are; the parser
    // then goes on (strings and comments take any byte, and a syntax error at such a
    // byte repeats the same diagnostic, which Diagnostics::sort() drops), so one run
    // still reports the file's other errors.
    report_invalid_utf8(text, diags);
    Builder b(text.data(), out);
    b.diags = &diags;
    pegtl::memory_input<pegtl::tracking_mode::lazy, pegtl::eol::lf_crlf, const char*> in(
        text.data(), text.data() + text.size(), src.name().c_str());
    std::size_t syntax_errors = 0;
    for (;;) {
      try {
        pegtl::parse<peg::file, action, control>(in, b);
        break;
      } catch (const SyntaxError& e) {
        const uint32_t from = report(src, b, e, diags);
        if (++syntax_errors == kMaxSyntaxErrors) {
          diags.error({from, 0}, messages::kTooManyErrors);
          break;
        }
        record_broken_item(text, b.item_start, out);
        const std::size_t resume = find_resume(text, b.item_start, from);
        if (resume == std::string_view::npos) break;
        b.reset();
        in.restart();
        in.bump(resume);
      }
    }
  } catch (const std::exception& e) {
    diags.error({0, 0}, std::string(messages::kInternalError) + ": " + e.what());
  } catch (...) {
    diags.error({0, 0}, messages::kInternalError);
  }
  return diags.error_count() == errors_before;
}

}  // namespace saga::grammar
