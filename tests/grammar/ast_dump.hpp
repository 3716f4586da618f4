// Test helpers for the grammar tests: parse a string, and print expressions and
// statements as compact S-expressions ("(+ a (* b c))") so that tables of
// expected trees stay readable.
#pragma once

#include <cstdio>
#include <string>

#include "grammar/ast.hpp"
#include "grammar/diagnostic.hpp"
#include "grammar/parse.hpp"
#include "grammar/source.hpp"

namespace saga::grammar::test {

// A parsed file that keeps its source alive (diagnostics point into it).
struct Parsed {
  explicit Parsed(std::string text, std::string name = "test.saga")
      : src(std::move(name), std::move(text)), diags(src) {
    ok = parse(src, file, diags);
  }
  SourceFile src;
  Diagnostics diags;
  ast::File file;
  bool ok = false;

  // The first error's message, or "" when there is none.
  std::string first_error() const { return diags.all().empty() ? "" : diags.all()[0].message; }
  // "line:col: message" of every diagnostic, joined by newlines.
  std::string errors() const {
    std::string out;
    for (const Diagnostic& d : diags.all()) {
      const LineCol lc = src.locate(d.span.offset);
      out += std::to_string(lc.line) + ":" + std::to_string(lc.column) + ": " + d.message + "\n";
    }
    return out;
  }
  // The source text a span covers.
  std::string text(Span s) const { return src.text().substr(s.offset, s.length); }
};

inline std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

inline std::string dump(const ast::Expr& e);

inline std::string dump_items(const ast::Expr& e, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < e.items.size(); ++i) out += " " + dump(*e.items[i]);
  return out;
}

inline std::string dump(const ast::Expr& e) {
  using ast::ExprKind;
  switch (e.kind) {
    case ExprKind::Null:
      return "null";
    case ExprKind::Bool:
      return e.boolean ? "true" : "false";
    case ExprKind::Number:
      return format_number(e.number);
    case ExprKind::Duration:
      return "(dur " + e.text + " " + format_number(e.number) + ")";
    case ExprKind::String:
      return "\"" + e.text + "\"";
    case ExprKind::Interp:
      return "(interp" + dump_items(e) + ")";
    case ExprKind::List:
      return "[" + (e.items.empty() ? std::string() : dump_items(e).substr(1)) + "]";
    case ExprKind::Object: {
      std::string out = "{";
      for (size_t i = 0; i < e.items.size(); ++i) {
        if (i) out += " ";
        out += (i < e.keys.size() ? e.keys[i] : "?") + ":" + dump(*e.items[i]);
      }
      return out + "}";
    }
    case ExprKind::Var:
      return e.text;
    case ExprKind::Field:
      return "(. " + dump(*e.items[0]) + " " + e.text + ")";
    case ExprKind::Index:
      return "(idx" + dump_items(e) + ")";
    case ExprKind::Unary:
      return std::string("(") + (e.unary_op == ast::UnaryOp::Neg ? "neg" : "not") + dump_items(e) +
             ")";
    case ExprKind::Binary:
      return std::string("(") + ast::to_string(e.binary_op) + dump_items(e) + ")";
    case ExprKind::Call:
      return "(call " + e.text + dump_items(e) + ")";
  }
  return "?";
}

inline std::string dump(const ast::ExprPtr& e) {
  return e ? dump(*e) : "<null>";
}

inline std::string dump(const ast::Block& block);

inline std::string dump_call(const ast::ActionCall& c) {
  std::string out = c.target + "(";
  for (size_t i = 0; i < c.args.size(); ++i) {
    if (i) out += " ";
    out += c.args[i].name + ":" + dump(c.args[i].value);
  }
  return out + ")";
}

inline std::string dump(const ast::Stmt& s) {
  switch (s.kind) {
    case ast::StmtKind::Step: {
      const ast::Step& st = *s.step;
      std::string out = "(step " + st.name;
      if (st.action) out += " do " + dump_call(*st.action);
      if (!st.bind.empty()) out += " -> " + st.bind;
      if (st.undo) out += " undo " + dump_call(*st.undo);
      if (st.timeout) out += " timeout " + dump(st.timeout);
      if (st.retry)
        out += " retry " + (st.retry->name.empty() ? std::string("{...}") : st.retry->name);
      if (st.undo_retry) {
        out += " undo_retry " +
               (st.undo_retry->name.empty() ? std::string("{...}") : st.undo_retry->name);
      }
      return out + ")";
    }
    case ast::StmtKind::Let:
      return "(let " + s.name + " " + dump(s.expr) + ")";
    case ast::StmtKind::Emit:
      return "(emit " + s.name + " " + dump(s.expr) + ")";
    case ast::StmtKind::If: {
      std::string out = "(if " + dump(s.expr) + " " + dump(*s.then_block);
      if (s.else_block) out += " else " + dump(*s.else_block);
      return out + ")";
    }
    case ast::StmtKind::Fail:
      return "(fail" + (s.name.empty() ? std::string() : " " + s.name) + " " + dump(s.expr) + ")";
    case ast::StmtKind::Output:
      return "(output " + dump(s.expr) + ")";
    case ast::StmtKind::Deadline:
      return "(deadline " + dump(s.expr) + ")";
    case ast::StmtKind::UndoRetry:
      return "(undo_retry " +
             (s.retry ? (s.retry->name.empty() ? std::string("{...}") : s.retry->name)
                      : std::string("<null>")) +
             ")";
    case ast::StmtKind::Parallel:
      return "(parallel " + (s.body ? dump(*s.body) : std::string("<null>")) + ")";
    case ast::StmtKind::Branch:
      return "(branch " + s.name + " " + (s.body ? dump(*s.body) : std::string("<null>")) + ")";
    case ast::StmtKind::Foreach:
      return std::string(s.parallel ? "(parallel foreach " : "(foreach ") + s.name + " " +
             dump(s.expr) + (s.max ? " max " + dump(s.max) : std::string()) + " " +
             (s.body ? dump(*s.body) : std::string("<null>")) + ")";
    case ast::StmtKind::Await: {
      std::string out = s.event ? "(await event" : "(await signal " + s.signal;
      for (const auto& [type, span] : s.types) out += " " + type;
      if (s.where) out += " where " + dump(s.where);
      if (s.expr) out += " timeout " + dump(s.expr);
      if (!s.name.empty()) out += " -> " + s.name;
      if (s.else_block) out += " else " + dump(*s.else_block);
      return out + ")";
    }
  }
  return "?";
}

inline std::string dump(const ast::Block& block) {
  std::string out = "{";
  for (size_t i = 0; i < block.size(); ++i) out += (i ? " " : "") + dump(block[i]);
  return out + "}";
}

}  // namespace saga::grammar::test
