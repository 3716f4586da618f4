// The code generator: lowers a checked AST to bytecode through the Assembler.
//
// Each saga's main code is laid out first, then the code of each branch and
// loop body of its blocks (in the order the blocks start, nested ones after
// the code that forks them), then one undo block per step of that saga. A
// branch's code is a region of its own, entered only by its fiber and never
// jumped into or out of, as the verifier requires. Statements lower as follows:
//   step s { do a(args) -> x }   OBJECT; (arg; SET_FIELD name)*; INVOKE s; STORE x | POP
//   undo block of s              OBJECT; (arg; SET_FIELD name)*; UNDO s; RETURN
//   let x = e                    e; STORE x
//   if c {A} else {B}            c; JUMP_IF_FALSE else; A; JUMP end; else: B; end:
//   fail cls msg                 msg; FAIL "cls"
//   output e / end of body       e | PUSH_NULL; COMPLETE
//   parallel { branch n {A} .. } PUSH_NULL; FORK b; JOIN b    region of n: A; END b
//   foreach x in e {A}           e; FORK b; JOIN b            region of the body: A; END b
// (END only where the branch's end is reachable: a branch that always fails
// has none.) Block b in Program::blocks names the branches and their entry
// pcs, and for a loop the item slot, max and collected slots (BlockInfo).
// `a and b` lowers to branches that push exactly one boolean on every path
// (a; JUMP_IF_FALSE no; b; JUMP_IF_FALSE no; PUSH_TRUE; JUMP end; no: PUSH_FALSE),
// which keeps the verifier's stack-depth rule simple and makes both operands
// strictly boolean. Every statement records its source position.
#include <optional>

#include "compiler/analysis.hpp"
#include "runtime/bytecode/assembler.hpp"

namespace saga::compiler {
namespace {

using bytecode::Op;

// The instruction that computes a binary operator (grammar/operators.def);
// `and` and `or` have none: Generator::binary() lowers them to jumps.
std::optional<Op> opcode_of(ast::BinaryOp op) {
  using enum Op;
  constexpr std::nullopt_t NONE = std::nullopt;
  switch (op) {
#define OPERATOR(name, spelling, opcode) \
  case ast::BinaryOp::name:              \
    return opcode;
#include "grammar/operators.def"
#undef OPERATOR
  }
  return std::nullopt;
}

class Generator {
 public:
  Generator(const Analysis& analysis, const SourceFile& source, bytecode::Program& program)
      : analysis_(analysis), source_(source), program_(program), asm_(program) {}

  void saga(const ast::Saga& saga, uint32_t index) {
    const SagaInfo& info = analysis_.sagas[index];
    saga_ = &info;
    saga_index_ = index;
    bytecode::Saga out;
    out.name = saga.name;
    out.params = info.params;
    out.slot_names = info.slot_names;
    out.deadline_ms = info.deadline_ms;
    LineCol at = source_.locate(saga.span.offset);
    out.line = at.line;
    out.column = at.column;
    out.entry_pc = asm_.pc();
    program_.sagas.push_back(std::move(out));

    steps_.clear();
    regions_.clear();
    at_(saga.span);
    reachable_ = true;
    block(saga.body);
    if (reachable_) {
      emit(Op::PUSH_NULL);
      emit(Op::COMPLETE);
    }
    // Branches and loop bodies; a region may add the regions of blocks it forks.
    for (size_t i = 0; i < regions_.size(); ++i) {
      const Region r = regions_[i];
      at_(r.at);
      program_.blocks[r.block].branches[r.branch].entry_pc = asm_.pc();
      reachable_ = true;
      block(*r.body);
      if (reachable_) emit(Op::END, r.block);
    }
    // Undo blocks of this saga's steps.
    for (const auto& [st, step_index] : steps_) {
      if (!st->undo) continue;
      at_(st->undo->span);
      program_.steps[step_index].undo_pc = asm_.pc();
      call_args(*st->undo);
      emit(Op::UNDO, step_index);
      emit(Op::RETURN);
    }
  }

  void finish() { asm_.finish(); }

 private:
  const Analysis& analysis_;
  const SourceFile& source_;
  bytecode::Program& program_;
  bytecode::Assembler asm_;
  const SagaInfo* saga_ = nullptr;
  uint32_t saga_index_ = 0;
  bool reachable_ = true;
  std::vector<std::pair<const ast::Step*, uint32_t>> steps_;  // In order of appearance.
  // The code of one branch or loop body, emitted after the saga's main code.
  struct Region {
    const ast::Block* body;
    uint32_t block;   // Index into Program::blocks.
    uint32_t branch;  // Index into its branches.
    Span at;          // The branch or loop statement.
  };
  std::vector<Region> regions_;  // In the order their blocks fork.

  void emit(Op op, uint32_t a = 0, uint32_t b = 0) { asm_.emit(op, a, b); }

  void at_(Span span) {
    LineCol at = source_.locate(span.offset);
    asm_.at(at.line, at.column);
  }

  void block(const ast::Block& body) {
    for (const ast::Stmt& s : body) {
      if (!reachable_) return;  // The checker warned; nothing after fail/output runs.
      statement(s);
    }
  }

  void statement(const ast::Stmt& s) {
    at_(s.span);
    switch (s.kind) {
      case ast::StmtKind::Let:
        expr(*s.expr);
        emit(Op::STORE, analysis_.lets.at(&s));
        break;
      case ast::StmtKind::Step:
        step(*s.step);
        break;
      case ast::StmtKind::If: {
        auto otherwise = asm_.make_label();
        auto end = asm_.make_label();
        expr(*s.expr);
        asm_.emit_jump(Op::JUMP_IF_FALSE, otherwise);
        block(*s.then_block);
        bool then_reaches = reachable_;
        if (then_reaches) asm_.emit_jump(Op::JUMP, end);
        asm_.bind(otherwise);
        reachable_ = true;
        if (s.else_block) block(*s.else_block);
        bool else_reaches = reachable_;
        asm_.bind(end);
        reachable_ = then_reaches || else_reaches;
        break;
      }
      case ast::StmtKind::Fail:
        expr(*s.expr);
        emit(Op::FAIL, asm_.string(s.name.empty() ? kDefaultFailClass : s.name));
        reachable_ = false;
        break;
      case ast::StmtKind::Output:
        expr(*s.expr);
        emit(Op::COMPLETE);
        reachable_ = false;
        break;
      case ast::StmtKind::Emit:
        expr(*s.expr);
        emit(Op::EMIT, asm_.string(s.name));
        break;
      case ast::StmtKind::Deadline:
      case ast::StmtKind::UndoRetry:
        break;  // A property of the saga, not code.
      case ast::StmtKind::Parallel: {
        const uint32_t b = new_block(bytecode::Block::Kind::Parallel, s);
        for (const ast::Stmt& branch : *s.body) {
          auto index = static_cast<uint32_t>(program_.blocks[b].branches.size());
          program_.blocks[b].branches.push_back({branch.name, 0});
          regions_.push_back({branch.body.get(), b, index, branch.span});
        }
        emit(Op::PUSH_NULL);
        emit(Op::FORK, b);
        emit(Op::JOIN, b);
        // What follows is emitted even when a branch always fails (the checker
        // warned it is never reached): JOIN falls through, and must not fall
        // into a branch's code.
        break;
      }
      case ast::StmtKind::Foreach: {
        const BlockInfo& info = analysis_.blocks.at(&s);
        const uint32_t b = new_block(bytecode::Block::Kind::Foreach, s);
        bytecode::Block& block = program_.blocks[b];
        block.branches.push_back({s.name, 0});
        block.item_slot = info.item_slot;
        block.max = info.max;
        block.collect = info.collect;
        regions_.push_back({s.body.get(), b, 0, s.span});
        expr(*s.expr);
        emit(Op::FORK, b);
        emit(Op::JOIN, b);
        break;  // A loop over no items goes on at once, whatever its body does.
      }
      case ast::StmtKind::Branch:
        break;  // Only inside a parallel block (the checker says so), lowered there.
      case ast::StmtKind::Await:
        await_signal(s);
        break;
    }
  }

  // await signal NAME timeout D [-> v] [else { ... }]: an await step (its
  // action the built-in `signal`, named "await NAME" in history), then
  //   OBJECT; name; timeout; AWAIT otherwise, step; STORE v (or POP)
  //   [JUMP end; otherwise: STORE v (null) (or POP); else block; end:]
  // Without an else block AWAIT's jump is 0: a timeout fails the step.
  // `await event TYPE, ... where C` is the await of the signal "event:TYPE,..." whose
  // argument object also has `where`, {path: value} evaluated now: the
  // store hands the instance an event of TYPE with those values
  // (saga/store.hpp, EventWait).
  void await_signal(const ast::Stmt& s) {
    const AwaitInfo& info = analysis_.awaits.at(&s);
    bytecode::Step out;
    std::string types;
    for (const auto& [type, span] : s.types) types += (types.empty() ? "" : ",") + type;
    out.name = s.event ? "await event " + types : "await " + s.signal;
    out.saga = saga_index_;
    out.action = asm_.action(bytecode::kSignalAction, bytecode::kNoService);
    out.result_slot = info.slot;
    out.timeout_ms = info.timeout_ms;  // Shown by the disassembler and the graph.
    LineCol at = source_.locate(s.span.offset);
    out.line = at.line;
    out.column = at.column;
    auto index = static_cast<uint32_t>(program_.steps.size());
    program_.steps.push_back(std::move(out));
    emit(Op::OBJECT);
    emit(Op::CONST,
         asm_.string(s.event ? std::string(bytecode::kEventSignalPrefix) + types : s.signal));
    emit(Op::SET_FIELD, asm_.string("name"));
    if (s.event) {
      emit(Op::OBJECT);
      for (const auto& [path, value] : info.where) {
        expr(*value);
        emit(Op::SET_FIELD, asm_.string(path));
      }
      emit(Op::SET_FIELD, asm_.string("where"));
    }
    emit(Op::CONST, asm_.number(static_cast<double>(info.timeout_ms)));
    emit(Op::SET_FIELD, asm_.string("timeout"));
    auto otherwise = asm_.make_label();
    asm_.emit_jump(Op::AWAIT, otherwise, index);
    auto bind_result = [&] {
      if (info.slot == bytecode::kNone)
        emit(Op::POP);
      else
        emit(Op::STORE, info.slot);
    };
    if (!s.else_block) {
      asm_.bind(otherwise);
      bind_result();
      return;
    }
    auto end = asm_.make_label();
    bind_result();
    asm_.emit_jump(Op::JUMP, end);
    asm_.bind(otherwise);
    bind_result();
    block(*s.else_block);
    asm_.bind(end);
    reachable_ = true;  // The signal's path goes on after the statement.
  }

  // Appends an empty block of this saga for statement [s]; returns its index.
  uint32_t new_block(bytecode::Block::Kind kind, const ast::Stmt& s) {
    bytecode::Block block;
    block.kind = kind;
    block.saga = saga_index_;
    LineCol at = source_.locate(s.span.offset);
    block.line = at.line;
    block.column = at.column;
    program_.blocks.push_back(std::move(block));
    return static_cast<uint32_t>(program_.blocks.size() - 1);
  }

  void step(const ast::Step& st) {
    const StepInfo& info = analysis_.steps.at(&st);
    bytecode::Step out;
    out.name = st.name;
    switch (st.kind) {
      case ast::StepKind::Plain:
        out.kind = bytecode::StepKind::Plain;
        break;
      case ast::StepKind::Pivot:
        out.kind = bytecode::StepKind::Pivot;
        break;
      case ast::StepKind::Retriable:
        out.kind = bytecode::StepKind::Retriable;
        break;
    }
    out.saga = saga_index_;
    out.action = asm_.action(info.action, info.service);
    if (st.undo) out.undo_action = asm_.action(info.undo_action, info.undo_service);
    out.result_slot = info.result_slot;
    out.timeout_ms = info.timeout_ms;
    out.retry = info.policy;
    out.undo_retry = info.undo_policy;
    LineCol at = source_.locate(st.span.offset);
    out.line = at.line;
    out.column = at.column;
    auto index = static_cast<uint32_t>(program_.steps.size());
    program_.steps.push_back(std::move(out));
    steps_.emplace_back(&st, index);

    call_args(*st.action);
    emit(Op::INVOKE, index);
    if (info.result_slot == bytecode::kNone)
      emit(Op::POP);
    else
      emit(Op::STORE, info.result_slot);
  }

  // The named arguments of an action call become one object.
  void call_args(const ast::ActionCall& call) {
    emit(Op::OBJECT);
    for (const ast::NamedArg& arg : call.args) {
      expr(*arg.value);
      emit(Op::SET_FIELD, asm_.string(arg.name));
    }
  }

  void expr(const ast::Expr& e) {
    using ast::ExprKind;
    switch (e.kind) {
      case ExprKind::Null:
        emit(Op::PUSH_NULL);
        break;
      case ExprKind::Bool:
        emit(e.boolean ? Op::PUSH_TRUE : Op::PUSH_FALSE);
        break;
      case ExprKind::Number:
      case ExprKind::Duration:
        emit(Op::CONST, asm_.number(e.number));
        break;
      case ExprKind::String:
        emit(Op::CONST, asm_.string(e.text));
        break;
      case ExprKind::Interp:
        for (const ast::ExprPtr& item : e.items) expr(*item);
        emit(Op::CONCAT, static_cast<uint32_t>(e.items.size()));
        break;
      case ExprKind::List:
        for (const ast::ExprPtr& item : e.items) expr(*item);
        emit(Op::LIST, static_cast<uint32_t>(e.items.size()));
        break;
      case ExprKind::Object:
        emit(Op::OBJECT);
        for (size_t i = 0; i < e.items.size(); ++i) {
          expr(*e.items[i]);
          emit(Op::SET_FIELD, asm_.string(e.keys[i]));
        }
        break;
      case ExprKind::Var:
        emit(Op::LOAD, analysis_.reads.at(&e));
        break;
      case ExprKind::Field:
        expr(*e.items[0]);
        emit(Op::FIELD, asm_.string(e.text));
        break;
      case ExprKind::Index:
        expr(*e.items[0]);
        expr(*e.items[1]);
        emit(Op::INDEX);
        break;
      case ExprKind::Unary:
        expr(*e.items[0]);
        emit(e.unary_op == ast::UnaryOp::Neg ? Op::NEG : Op::NOT);
        break;
      case ExprKind::Binary:
        binary(e);
        break;
      case ExprKind::Call:
        for (const ast::ExprPtr& item : e.items) expr(*item);
        emit(Op::CALL, asm_.function(e.text), static_cast<uint32_t>(e.items.size()));
        break;
    }
  }

  void binary(const ast::Expr& e) {
    using ast::BinaryOp;
    if (e.binary_op == BinaryOp::And || e.binary_op == BinaryOp::Or) {
      // and: both true -> true.  or: lowered as not(not a and not b) would cost
      // more; instead branch on each operand.
      auto short_circuit = asm_.make_label();
      auto end = asm_.make_label();
      bool is_and = e.binary_op == BinaryOp::And;
      expr(*e.items[0]);
      if (!is_and) emit(Op::NOT);
      asm_.emit_jump(Op::JUMP_IF_FALSE, short_circuit);
      expr(*e.items[1]);
      if (!is_and) emit(Op::NOT);
      asm_.emit_jump(Op::JUMP_IF_FALSE, short_circuit);
      emit(is_and ? Op::PUSH_TRUE : Op::PUSH_FALSE);
      asm_.emit_jump(Op::JUMP, end);
      asm_.bind(short_circuit);
      emit(is_and ? Op::PUSH_FALSE : Op::PUSH_TRUE);
      asm_.bind(end);
      return;
    }
    expr(*e.items[0]);
    expr(*e.items[1]);
    emit(opcode_of(e.binary_op).value());
  }
};

}  // namespace

void generate(const ast::File& file, const Analysis& analysis, const SourceFile& source,
              bytecode::Program& program) {
  program.services = analysis.services;
  program.policies = analysis.policies;
  program.triggers = analysis.triggers;
  Generator gen(analysis, source, program);
  for (uint32_t i = 0; i < file.sagas.size(); ++i) gen.saga(file.sagas[i], i);
  gen.finish();
}

}  // namespace saga::compiler
