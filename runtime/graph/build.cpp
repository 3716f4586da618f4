// build(): the graph model of a saga from its bytecode (saga/graph.hpp).
//
// The code is followed from the saga's entry the way the interpreter would
// run it, with a symbolic operand stack: pure instructions (loads, fields,
// operators, calls) build the text of the value they compute, and only the
// instructions that matter to a reader become nodes: INVOKE (a step), a
// JUMP_IF_FALSE that is an `if` (a decision, its condition the text on the
// stack), FORK and JOIN (a block), COMPLETE and FAIL (the ends). A
// JUMP_IF_FALSE that is half of `and` / `or` (codegen's short-circuit shape,
// checked instruction by instruction) is folded back into the expression.
// Nodes are keyed by the pc of their instruction, so the two arms of an `if`
// meet again at one node. The compensation path is derived from the forward
// graph afterwards: each undo leads to the undos of the nearest compensable
// steps before its step, which is the reverse order the machine runs them in.
// Nothing here trusts more than the verifier proved: every index is checked,
// and code that cannot be followed ends in a plain end node.
#include <fmt/format.h>

#include <deque>
#include <map>
#include <optional>
#include <set>

#include "runtime/bytecode/disasm.hpp"
#include "runtime/bytecode/program.hpp"
#include "runtime/graph/text.hpp"
#include "runtime/value/json_quote.hpp"
#include "saga/graph.hpp"

namespace saga::graph {

namespace {

using bytecode::Instruction;
using bytecode::kOpInfo;
using bytecode::Op;
using bytecode::Program;

// Conditions and list expressions longer than this are shortened: a picture
// is for reading, and the full text is in the source.
constexpr size_t kMaxExprChars = 60;

// Binding strength of an expression's outermost operator, as in the
// grammar's precedence table (grammar/README.md, "Expressions"): decides
// where the text needs parentheses.
enum Prec : int { kOr = 1, kAnd, kNot, kCompare, kSum, kProduct, kNeg, kAtom };

// The text of a value computed on the operand stack.
struct Expr {
  std::string text;
  int prec = kAtom;
  std::string inner;  // A NOT: its operand's text, for folding `or`.
  int inner_prec = kAtom;
  bool literal_string = false;  // A string constant: `raw` is its value.
  std::string raw;
};

// The spelling of a binary operator's opcode, from the grammar's table.
std::string_view spelling(Op op) {
  std::string_view name = bytecode::op_info(op).name;
#define OPERATOR(id, text, opcode) \
  if (name == #opcode) return text;
#include "grammar/operators.def"
#undef OPERATOR
  return {};
}

int precedence(Op op) {
  switch (op) {
    case Op::ADD:
    case Op::SUB:
      return kSum;
    case Op::MUL:
    case Op::DIV:
    case Op::MOD:
      return kProduct;
    default:
      return kCompare;
  }
}

std::string paren(const Expr& e, bool wrap) {
  return wrap ? "(" + e.text + ")" : e.text;
}

// "standard (4 attempts)", "until it succeeds", "3 attempts".
std::string retry_text(const bytecode::RetryPolicy& r) {
  std::string attempts = r.attempts == bytecode::kUnlimitedAttempts
                             ? "until it succeeds"
                             : fmt::format("{} attempts", r.attempts);
  return r.name.empty() ? "retry " + attempts : fmt::format("retry {} ({})", r.name, attempts);
}

class Builder {
 public:
  Builder(const Program& p, uint32_t saga) : p_(p), saga_(saga) {}

  SagaGraph run() {
    const bytecode::Saga& s = p_.sagas[saga_];
    g_.name = s.name;
    g_.signature = s.name + "(";
    for (size_t i = 0; i < s.params.size(); ++i) {
      if (i) g_.signature += ", ";
      g_.signature += s.params[i].name;
      if (s.params[i].type != bytecode::Type::Any) {
        g_.signature += std::string(": ") + bytecode::to_string(s.params[i].type);
      }
    }
    g_.signature += ")";
    if (s.deadline_ms) g_.signature += " deadline " + bytecode::format_duration(s.deadline_ms);

    uint32_t start = add({.kind = NodeKind::kStart, .label = "start"});
    connect(start, reach(s.entry_pc, {}, kNoIndex));
    while (!work_.empty()) {
      Pending w = std::move(work_.front());
      work_.pop_front();
      expand(w);
    }
    compensation();
    return std::move(g_);
  }

 private:
  using Stack = std::vector<Expr>;
  struct Pending {
    uint32_t node, pc;
    Stack stack;
    uint32_t cluster;
  };

  uint32_t add(Node n) {
    g_.nodes.push_back(std::move(n));
    return static_cast<uint32_t>(g_.nodes.size() - 1);
  }
  void connect(uint32_t from, uint32_t to, std::string label = {},
               EdgeKind kind = EdgeKind::kFlow) {
    g_.edges.push_back({.from = from, .to = to, .kind = kind, .label = std::move(label)});
  }

  bool decode(uint32_t pc, Instruction& in) const { return bytecode::decode(p_.code, pc, in); }
  uint32_t target(uint32_t pc, const Instruction& in) const {
    return static_cast<uint32_t>(static_cast<int64_t>(pc) + in.size + in.jump());
  }

  // The name of slot `slot` as a reader wrote it: a loop body's slot is
  // named "r (each item)" in the program, and is `r` in the source.
  std::string slot_name(uint32_t slot) const {
    const auto& names = p_.sagas[saga_].slot_names;
    if (slot >= names.size()) return fmt::format("slot{}", slot);
    std::string n = names[slot];
    if (auto cut = n.find(" ("); cut != std::string::npos) n.resize(cut);
    return n;
  }
  std::string string_const(uint32_t k) const {
    if (k >= p_.constants.size()) return "?";
    return p_.constants[k].string;
  }

  static Expr pop(Stack& st) {
    if (st.empty()) return {.text = "?"};
    Expr e = std::move(st.back());
    st.pop_back();
    return e;
  }

  // One pure instruction on the symbolic stack. False for an instruction
  // that is not pure (the caller decides what it is).
  bool pure(const Instruction& in, Stack& st) const {
    switch (in.op) {
      case Op::NOP:
        return true;
      case Op::CONST: {
        if (in.a >= p_.constants.size()) {
          st.push_back({.text = "?"});
          return true;
        }
        const bytecode::Constant& c = p_.constants[in.a];
        Expr e{.text = bytecode::constant_literal(c)};
        if (c.kind == bytecode::Constant::Kind::String) {
          e.literal_string = true;
          e.raw = c.string;
        }
        st.push_back(std::move(e));
        return true;
      }
      case Op::PUSH_NULL:
        st.push_back({.text = "null"});
        return true;
      case Op::PUSH_TRUE:
        st.push_back({.text = "true"});
        return true;
      case Op::PUSH_FALSE:
        st.push_back({.text = "false"});
        return true;
      case Op::LOAD:
        st.push_back({.text = slot_name(in.a)});
        return true;
      case Op::STORE:
      case Op::POP:
        pop(st);
        return true;
      case Op::FIELD: {
        Expr base = pop(st);
        st.push_back({.text = paren(base, base.prec < kAtom) + "." + string_const(in.a)});
        return true;
      }
      case Op::INDEX: {
        Expr index = pop(st), base = pop(st);
        st.push_back({.text = paren(base, base.prec < kAtom) + "[" + index.text + "]"});
        return true;
      }
      case Op::LIST: {
        std::vector<Expr> items(in.a);
        for (uint32_t i = in.a; i-- > 0;) items[i] = pop(st);
        std::string text = "[";
        for (uint32_t i = 0; i < in.a; ++i) text += (i ? ", " : "") + items[i].text;
        st.push_back({.text = text + "]"});
        return true;
      }
      case Op::OBJECT:
        st.push_back({.text = "{}"});
        return true;
      case Op::SET_FIELD: {
        Expr value = pop(st), object = pop(st);
        std::string body =
            object.text.size() > 2 ? object.text.substr(1, object.text.size() - 2) : std::string();
        if (!body.empty()) body += ", ";
        st.push_back({.text = "{" + body + string_const(in.a) + ": " + value.text + "}"});
        return true;
      }
      case Op::NEG: {
        Expr x = pop(st);
        st.push_back({.text = "-" + paren(x, x.prec < kNeg), .prec = kNeg});
        return true;
      }
      case Op::NOT: {
        Expr x = pop(st);
        st.push_back({.text = "not " + paren(x, x.prec < kNot),
                      .prec = kNot,
                      .inner = x.text,
                      .inner_prec = x.prec});
        return true;
      }
      case Op::CONCAT: {
        std::vector<Expr> items(in.a);
        for (uint32_t i = in.a; i-- > 0;) items[i] = pop(st);
        std::string body;
        for (const Expr& e : items) {
          if (e.literal_string) {
            std::string q;
            append_json_quoted(q, e.raw, true);
            body += q.substr(1, q.size() - 2);
          } else {
            body += "${" + e.text + "}";
          }
        }
        st.push_back({.text = "\"" + body + "\""});
        return true;
      }
      case Op::CALL: {
        std::vector<Expr> args(in.b);
        for (uint32_t i = in.b; i-- > 0;) args[i] = pop(st);
        std::string text = in.a < p_.functions.size() ? p_.functions[in.a] : "?";
        text += "(";
        for (uint32_t i = 0; i < in.b; ++i) text += (i ? ", " : "") + args[i].text;
        st.push_back({.text = text + ")"});
        return true;
      }
      default:
        break;
    }
    std::string_view op = spelling(in.op);
    if (op.empty() || bytecode::op_info(in.op).pops != 2) return false;
    int prec = precedence(in.op);
    Expr b = pop(st), a = pop(st);
    // Comparisons do not chain; the arithmetic operators are left-associative.
    bool wrap_a = prec == kCompare ? a.prec <= prec : a.prec < prec;
    st.push_back({.text = paren(a, wrap_a) + " " + std::string(op) + " " + paren(b, b.prec <= prec),
                  .prec = prec});
    return true;
  }

  // Follows pure code (and jumps) from `pc`, and returns the pc of the first
  // instruction that is not pure: a step, an `if`, a block, an end; or
  // kNoIndex when the code cannot be followed. A JUMP_IF_FALSE whose target
  // is `stop` ends the walk too (the second half of an `and` / `or`).
  uint32_t follow(uint32_t pc, Stack& st, uint32_t stop = kNoIndex) const {
    for (size_t budget = p_.code.size() + 1; budget-- > 0;) {
      Instruction in;
      if (!decode(pc, in)) return kNoIndex;
      if (in.op == Op::JUMP) {
        pc = target(pc, in);
        continue;
      }
      if (in.op == Op::JUMP_IF_FALSE) {
        if (target(pc, in) == stop) return pc;
        auto end = fold(pc, in, st);
        if (!end) return pc;
        pc = *end;
        continue;
      }
      if (!pure(in, st)) return pc;
      pc += in.size;
    }
    return kNoIndex;  // A loop of pure code: no program the compiler writes.
  }

  // codegen's `a and b` / `a or b` from the JUMP_IF_FALSE after `a`:
  //   a [NOT] JIF sc; b [NOT] JIF sc; PUSH_TRUE|FALSE; JUMP end; sc: PUSH_FALSE|TRUE; end:
  // On a match, replaces `a` on the stack with the whole expression and
  // returns `end`; otherwise leaves the stack alone.
  std::optional<uint32_t> fold(uint32_t pc, const Instruction& jif, Stack& st) const {
    const uint32_t sc = target(pc, jif);
    Instruction push_sc;
    if (!decode(sc, push_sc) || (push_sc.op != Op::PUSH_FALSE && push_sc.op != Op::PUSH_TRUE)) {
      return std::nullopt;
    }
    const bool is_and = push_sc.op == Op::PUSH_FALSE;
    Stack rest = st;
    Expr a = pop(rest);
    const size_t depth = rest.size();
    const uint32_t second = follow(pc + jif.size, rest, sc);
    Instruction in;
    if (second == kNoIndex || rest.size() != depth + 1 || !decode(second, in) ||
        in.op != Op::JUMP_IF_FALSE || target(second, in) != sc) {
      return std::nullopt;
    }
    Instruction push, jump;
    const uint32_t at = second + in.size;
    if (!decode(at, push) || push.op != (is_and ? Op::PUSH_TRUE : Op::PUSH_FALSE) ||
        !decode(at + push.size, jump) || jump.op != Op::JUMP ||
        target(at + push.size, jump) != sc + push_sc.size) {
      return std::nullopt;
    }
    Expr b = pop(rest);
    auto operand = [&](const Expr& e, int prec) {
      if (is_and) return paren(e, e.prec < prec);
      // `or` negates each operand before its jump: draw the operand itself.
      if (e.prec == kNot && !e.inner.empty())
        return e.inner_prec < prec ? "(" + e.inner + ")" : e.inner;
      return "not " + paren(e, e.prec < kNot);
    };
    const int prec = is_and ? kAnd : kOr;
    rest.push_back({.text = operand(a, prec) + (is_and ? " and " : " or ") + operand(b, prec + 1),
                    .prec = prec});
    st = std::move(rest);
    return sc + push_sc.size;
  }

  // The node for the code from `pc` on: the first instruction there that is
  // not pure, made a node the first time it is reached.
  uint32_t reach(uint32_t pc, Stack st, uint32_t cluster) {
    const uint32_t at = follow(pc, st);
    if (at == kNoIndex) return add({.kind = NodeKind::kEnd, .label = "end", .cluster = cluster});
    if (auto it = node_at_.find(at); it != node_at_.end()) return it->second;
    Instruction in;
    decode(at, in);  // follow() decoded it.
    Node n{.cluster = cluster};
    switch (in.op) {
      case Op::INVOKE:
        if (in.a >= p_.steps.size()) return add({.kind = NodeKind::kEnd, .label = "end"});
        step_node(n, in.a);
        break;
      case Op::AWAIT:  // A step node ("await NAME"); a timeout edge to its else block.
        if (in.b >= p_.steps.size()) return add({.kind = NodeKind::kEnd, .label = "end"});
        step_node(n, in.b);
        break;
      case Op::JUMP_IF_FALSE:
        n.kind = NodeKind::kDecision;
        n.label = "if";
        break;
      case Op::FORK:
        if (in.a >= p_.blocks.size()) return add({.kind = NodeKind::kEnd, .label = "end"});
        n.kind = NodeKind::kFork;
        n.block = in.a;
        n.label = fork_label(p_.blocks[in.a], st.empty() ? "" : st.back().text);
        break;
      case Op::JOIN:
        n.kind = NodeKind::kJoin;
        n.block = in.a;
        n.label = "join";
        break;
      case Op::END:
        if (auto j = join_of_.find(in.a); j != join_of_.end()) return j->second;
        n.kind = NodeKind::kEnd;
        n.label = "end";
        break;
      case Op::COMPLETE:
        n.kind = NodeKind::kCompleted;
        n.label = "completed";
        break;
      case Op::FAIL:
        n.kind = NodeKind::kFail;
        n.error_class = string_const(in.a);
        n.label = "fail " + n.error_class;
        n.note = shorten(st.empty() ? std::string() : st.back().text, kMaxExprChars);
        break;
      case Op::EMIT:
        n.kind = NodeKind::kEmit;
        n.label = "emit " + string_const(in.a);
        n.note = shorten(st.empty() ? std::string() : st.back().text, kMaxExprChars);
        break;
      default:
        n.kind = NodeKind::kEnd;
        n.label = "end";
        break;
    }
    uint32_t id = add(std::move(n));
    node_at_[at] = id;
    if (g_.nodes[id].kind == NodeKind::kStep) {
      const bytecode::Step& s = p_.steps[g_.nodes[id].step];
      if (s.undo_action != bytecode::kNone || s.undo_pc != bytecode::kNone) {
        Node u{
            .kind = NodeKind::kUndo, .label = "undo " + s.name, .step = in.a, .cluster = cluster};
        if (s.undo_action < p_.actions.size()) u.note = p_.actions[s.undo_action].name;
        undo_of_[id] = add(std::move(u));
      }
    }
    work_.push_back({id, at, std::move(st), cluster});
    return id;
  }

  void step_node(Node& n, uint32_t index) const {
    const bytecode::Step& s = p_.steps[index];
    n.kind = NodeKind::kStep;
    n.step = index;
    n.label = s.name;
    std::vector<std::string> lines;
    if (s.kind != bytecode::StepKind::Plain) lines.push_back(bytecode::to_string(s.kind));
    if (s.action < p_.actions.size()) lines.push_back(p_.actions[s.action].name);
    std::string extra;
    if (s.timeout_ms) extra = "timeout " + bytecode::format_duration(s.timeout_ms);
    if (s.retry < p_.policies.size()) {
      extra += (extra.empty() ? "" : ", ") + retry_text(p_.policies[s.retry]);
    }
    if (!extra.empty()) lines.push_back(extra);
    for (const std::string& l : lines) n.note += (n.note.empty() ? "" : "\n") + l;
  }

  std::string fork_label(const bytecode::Block& b, const std::string& list) const {
    if (b.kind == bytecode::Block::Kind::Parallel) return "parallel";
    std::string item = b.branches.empty() ? "item" : b.branches[0].name;
    std::string text = fmt::format("foreach {} in {}", item, shorten(list, kMaxExprChars));
    if (b.max == 1) return text;
    return "parallel " + text + (b.max == 0 ? "" : fmt::format(" max {}", b.max));
  }

  void expand(Pending& w) {
    Instruction in;
    decode(w.pc, in);
    const uint32_t next = w.pc + in.size;
    Node& n = g_.nodes[w.node];
    switch (n.kind) {
      case NodeKind::kStep: {
        Stack st = std::move(w.stack);
        pop(st);
        if (in.op == Op::AWAIT && in.jump() != 0) {
          Stack other = st;
          other.push_back({.text = "null"});
          const uint32_t node = w.node, cluster = w.cluster;
          st.push_back({.text = "signal of " + n.label});
          connect(node, reach(next, std::move(st), cluster), "signal");
          connect(node, reach(target(w.pc, in), std::move(other), cluster), "timeout");
          break;
        }
        st.push_back({.text = "result of " + n.label});
        connect(w.node, reach(next, std::move(st), w.cluster));
        break;
      }
      case NodeKind::kDecision: {
        Stack st = std::move(w.stack);
        Expr cond = pop(st);
        std::string label = shorten(cond.text, kMaxExprChars);
        uint32_t yes = reach(next, st, w.cluster);
        uint32_t no = reach(target(w.pc, in), std::move(st), w.cluster);
        connect(w.node, yes, label);
        connect(w.node, no, "else");
        break;
      }
      case NodeKind::kFork: {
        const uint32_t b = n.block;
        Stack st = std::move(w.stack);
        pop(st);
        // The JOIN first, so that the branches' ENDs lead to it.
        uint32_t join = reach(next, st, w.cluster);
        join_of_[b] = join;
        const bytecode::Block& block = p_.blocks[b];
        for (const bytecode::Branch& br : block.branches) {
          Cluster c{.parent = w.cluster};
          c.label = block.kind == bytecode::Block::Kind::Parallel
                        ? "branch " + br.name
                        : (block.max == 1 ? "each " : "in parallel, each ") + br.name;
          g_.clusters.push_back(std::move(c));
          auto cluster = static_cast<uint32_t>(g_.clusters.size() - 1);
          connect(w.node, reach(br.entry_pc, {}, cluster));
        }
        if (block.kind == bytecode::Block::Kind::Foreach && block.max == 1) {
          connect(join, w.node, "next item", EdgeKind::kLoop);
        }
        break;
      }
      case NodeKind::kJoin:
        connect(w.node, reach(next, std::move(w.stack), w.cluster));
        break;
      case NodeKind::kEmit: {
        Stack st = std::move(w.stack);
        pop(st);
        connect(w.node, reach(next, std::move(st), w.cluster));
        break;
      }
      default:
        break;  // The ends.
    }
  }

  // The compensation path: each undo leads (dashed) to the undos of the
  // nearest compensable steps before its step; the earliest lead to the
  // `compensated` end; a `fail` leads to the undos of the steps before it.
  void compensation() {
    if (undo_of_.empty()) return;
    std::vector<std::vector<uint32_t>> preds(g_.nodes.size());
    for (const Edge& e : g_.edges) {
      if (e.kind == EdgeKind::kFlow) preds[e.to].push_back(e.from);
    }
    auto before = [&](uint32_t node) {
      std::vector<uint32_t> found;
      std::set<uint32_t> seen;
      std::deque<uint32_t> queue(preds[node].begin(), preds[node].end());
      while (!queue.empty()) {
        uint32_t x = queue.front();
        queue.pop_front();
        if (!seen.insert(x).second) continue;
        if (auto u = undo_of_.find(x); u != undo_of_.end()) {
          found.push_back(u->second);
          continue;
        }
        for (uint32_t p : preds[x]) queue.push_back(p);
      }
      return found;
    };
    const uint32_t done = add({.kind = NodeKind::kCompensated, .label = "compensated"});
    const size_t nodes = g_.nodes.size();
    for (uint32_t i = 0; i < nodes; ++i) {
      if (auto u = undo_of_.find(i); u != undo_of_.end()) {
        auto prev = before(i);
        if (prev.empty()) connect(u->second, done, {}, EdgeKind::kUndo);
        for (uint32_t p : prev) connect(u->second, p, {}, EdgeKind::kUndo);
      } else if (g_.nodes[i].kind == NodeKind::kFail) {
        for (uint32_t p : before(i)) connect(i, p, "compensate", EdgeKind::kUndo);
      }
    }
  }

  const Program& p_;
  uint32_t saga_;
  SagaGraph g_;
  std::map<uint32_t, uint32_t> node_at_;  // pc -> node.
  std::map<uint32_t, uint32_t> join_of_;  // block -> its join node.
  std::map<uint32_t, uint32_t> undo_of_;  // step node -> its undo node.
  std::deque<Pending> work_;
};

}  // namespace

const char* to_string(Mark mark) {
  switch (mark) {
    case Mark::kNone:
      return "none";
    case Mark::kTaken:
      return "taken";
    case Mark::kCurrent:
      return "current";
    case Mark::kFailed:
      return "failed";
    case Mark::kCompensated:
      return "compensated";
  }
  return "?";
}

Result<Graph> build(const bytecode::Program& program, std::string_view saga) {
  Graph g;
  if (!saga.empty()) {
    uint32_t index = program.find_saga(saga);
    if (index == bytecode::kNone) {
      std::string names;
      for (const bytecode::Saga& s : program.sagas) names += (names.empty() ? "" : ", ") + s.name;
      return Status(StatusCode::kNotFound,
                    fmt::format("no saga '{}' in the program (its sagas: {})", saga,
                                names.empty() ? "none" : names));
    }
    g.sagas.push_back(Builder(program, index).run());
    return g;
  }
  for (uint32_t i = 0; i < program.sagas.size(); ++i) g.sagas.push_back(Builder(program, i).run());
  return g;
}

}  // namespace saga::graph
