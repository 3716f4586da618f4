// The bytecode verifier: the proof, done once when a program is loaded, that
// lets the VM run it without bounds checks on tables, jumps or the operand
// stack. load() calls verify() on every file; the compiler's tests call it on
// everything the code generator emits. The checks are driven by the kOpInfo
// table from opcodes.def (operand kinds, stack effects, flags), so a new
// opcode is verified as soon as its row exists.
//
// The verifier works in three passes:
//   1. tables: every index stored in the constant, action, policy, service,
//      step, saga and line tables points inside its target table;
//   2. decoding: the code splits into whole instructions from pc 0 to its end,
//      which gives the set of instruction boundaries;
//   3. abstract interpretation: from each saga's entry pc, from each branch
//      (or loop body) of each block and from each undo block's first pc,
//      follow every path, computing the operand stack depth before each
//      instruction and checking operands and placement rules (FORK is
//      followed by its JOIN, a branch ends with END of its own block and never
//      completes the saga, fibers fork, join and end with an empty stack, and
//      no code is shared between a branch and other code).
// Code that no saga or undo block can reach is only decoded: it never runs.
#include "runtime/bytecode/verify.hpp"

#include <fmt/format.h>

#include <cmath>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace saga::bytecode {
namespace {

Status corrupt(std::string message) {
  return {StatusCode::kCorrupt, std::move(message)};
}

const char* kind_name(Constant::Kind kind) {
  switch (kind) {
    case Constant::Kind::Null:
      return "null";
    case Constant::Kind::Bool:
      return "a boolean";
    case Constant::Kind::Number:
      return "a number";
    case Constant::Kind::String:
      return "a string";
  }
  return "of an unknown kind";
}

// "1 value", "3 values".
std::string values(int64_t n) {
  return fmt::format("{} value{}", n, n == 1 ? "" : "s");
}

// How a retry policy is named in messages: its name, or its index when it
// was written inline in a step.
std::string policy_label(const RetryPolicy& policy, size_t index) {
  if (policy.name.empty()) return fmt::format("policy #{}", index);
  return fmt::format("policy '{}'", policy.name);
}

// What a piece of code is verified as: a saga's main code, one branch (or
// loop body) of a block, or one step's undo block. `where` starts every
// message about it.
struct Context {
  std::string where;       // "saga 'order'", "branch 'hotel' of block 2", "undo of step 'reserve'".
  uint32_t saga = 0;       // Whose slots the code may use.
  bool undo = false;       // An undo block (else main code or a branch).
  uint32_t step = kNone;   // For undo blocks: the step they belong to.
  uint32_t start = 0;      // Entry pc.
  uint32_t block = kNone;  // For branches: the block whose fiber runs this code.
};

// One verification of one program. The passes share the boundary table
// (pass 2) and the depth table (pass 3), which is reset between the blocks
// it interprets by clearing only the entries the previous block touched.
class Verifier {
 public:
  Verifier(const Program& p, std::vector<int32_t>* depths) : p_(p), depths_(depths) {}

  // Runs the three passes; the first broken rule ends verification.
  Status run() {
    if (p_.code.size() > kMaxCodeBytes) {
      return corrupt(
          fmt::format("code is {} bytes, over the limit of {}", p_.code.size(), kMaxCodeBytes));
    }
    // Decoding first: the tables refer to instruction boundaries.
    if (Status s = decode_all(); !s.ok()) return s;
    if (Status s = check_tables(); !s.ok()) return s;
    depth_.assign(p_.code.size(), -1);
    owner_.assign(p_.code.size(), 0);
    branch_owned_.assign(p_.code.size(), 0);
    if (depths_) depths_->assign(p_.code.size(), -1);
    for (uint32_t i = 0; i < p_.sagas.size(); ++i) {
      const Saga& saga = p_.sagas[i];
      Context c{fmt::format("saga '{}'", saga.name), i, false, kNone, saga.entry_pc};
      if (Status s = interpret(c); !s.ok()) return s;
    }
    for (uint32_t i = 0; i < p_.blocks.size(); ++i) {
      const Block& block = p_.blocks[i];
      for (const Branch& br : block.branches) {
        Context c{
            fmt::format("{} '{}' of block {}",
                        block.kind == Block::Kind::Parallel ? "branch" : "loop body", br.name, i),
            block.saga,
            false,
            kNone,
            br.entry_pc,
            i};
        if (Status s = interpret(c); !s.ok()) return s;
      }
    }
    for (uint32_t i = 0; i < p_.steps.size(); ++i) {
      const Step& step = p_.steps[i];
      if (step.undo_pc == kNone) continue;
      Context c{fmt::format("undo of step '{}'", step.name), step.saga, true, i, step.undo_pc};
      if (Status s = interpret(c); !s.ok()) return s;
    }
    return Status::Ok();
  }

 private:
  bool is_boundary(uint64_t pc) const { return pc < boundary_.size() && boundary_[pc]; }

  // Pass 2: splits the code into instructions and records where each starts.
  Status decode_all() {
    boundary_.assign(p_.code.size(), 0);
    uint32_t pc = 0;
    while (pc < p_.code.size()) {
      Instruction in;
      if (!decode(p_.code, pc, in)) {
        if (p_.code[pc] >= kOpCount) {
          return corrupt(fmt::format("code: pc {}: unknown opcode 0x{:02x} (this runtime knows {})",
                                     pc, p_.code[pc], kOpCount));
        }
        const OpInfo& info = kOpInfo[p_.code[pc]];
        uint32_t size = 1 + operand_width(info.a) + operand_width(info.b);
        return corrupt(fmt::format(
            "code: pc {} ({}): instruction is truncated (needs {} bytes, {} left in the code)", pc,
            info.name, size, p_.code.size() - pc));
      }
      boundary_[pc] = 1;
      pc += in.size;
    }
    return Status::Ok();
  }

  // Pass 1: every index in the tables points inside its table.
  Status check_tables() {
    const size_t n_actions = p_.actions.size();

    for (size_t i = 0; i < p_.constants.size(); ++i) {
      const Constant& c = p_.constants[i];
      if (c.kind > Constant::Kind::String) {
        return corrupt(fmt::format("constant {}: unknown kind {}", i, static_cast<int>(c.kind)));
      }
      // Values are JSON values, which have no NaN or infinity.
      if (c.kind == Constant::Kind::Number && !std::isfinite(c.number)) {
        return corrupt(fmt::format("constant {}: {} is not a finite number", i, c.number));
      }
    }

    for (size_t i = 0; i < p_.actions.size(); ++i) {
      const Action& a = p_.actions[i];
      if (a.service != kNoService && a.service >= p_.services.size()) {
        return corrupt(fmt::format("action '{}': service {} is out of range ({} services)", a.name,
                                   a.service, p_.services.size()));
      }
    }

    for (size_t i = 0; i < p_.policies.size(); ++i) {
      const RetryPolicy& r = p_.policies[i];
      std::string label = policy_label(r, i);
      if (r.attempts < 1) return corrupt(label + ": attempts must be at least 1");
      if (r.backoff > Backoff::Exponential) {
        return corrupt(fmt::format("{}: unknown backoff {}", label, static_cast<int>(r.backoff)));
      }
      if (r.jitter > Jitter::Equal) {
        return corrupt(fmt::format("{}: unknown jitter {}", label, static_cast<int>(r.jitter)));
      }
      // Delays are computed in floating point; a NaN or negative factor
      // would make them meaningless.
      if (!std::isfinite(r.factor) || r.factor < 0) {
        return corrupt(
            fmt::format("{}: backoff factor {} is not a finite number >= 0", label, r.factor));
      }
    }

    for (size_t i = 0; i < p_.sagas.size(); ++i) {
      const Saga& s = p_.sagas[i];
      for (size_t j = 0; j < i; ++j) {
        if (p_.sagas[j].name == s.name) {
          return corrupt(fmt::format("saga '{}' is defined twice (sagas {} and {})", s.name, j, i));
        }
      }
      if (s.slot_names.size() < s.params.size()) {
        return corrupt(fmt::format("saga '{}': {} parameters but only {} slots", s.name,
                                   s.params.size(), s.slot_names.size()));
      }
      if (s.slot_names.size() > kMaxSlots) {
        return corrupt(fmt::format("saga '{}': {} slots exceed the limit of {}", s.name,
                                   s.slot_names.size(), kMaxSlots));
      }
      for (const Param& param : s.params) {
        if (param.type > Type::Object) {
          return corrupt(fmt::format("saga '{}': parameter '{}' has unknown type {}", s.name,
                                     param.name, static_cast<int>(param.type)));
        }
      }
      if (!is_boundary(s.entry_pc)) {
        return corrupt(
            fmt::format("saga '{}': entry pc {} is not an instruction", s.name, s.entry_pc));
      }
    }

    for (size_t i = 0; i < p_.steps.size(); ++i) {
      const Step& s = p_.steps[i];
      auto fail = [&](const std::string& rule) {
        return corrupt(fmt::format("step '{}': {}", s.name, rule));
      };
      if (s.saga >= p_.sagas.size()) {
        return fail(fmt::format("saga {} is out of range ({} sagas)", s.saga, p_.sagas.size()));
      }
      if (s.action >= n_actions) {
        return fail(fmt::format("do action {} is out of range ({} actions)", s.action, n_actions));
      }
      if (s.undo_action != kNone && s.undo_action >= n_actions) {
        return fail(
            fmt::format("undo action {} is out of range ({} actions)", s.undo_action, n_actions));
      }
      // A step has an undo action exactly when it has an undo block: the
      // block is the code that computes the undo action's argument.
      if (s.undo_pc == kNone && s.undo_action != kNone) {
        return fail("has an undo action but no undo block");
      }
      if (s.undo_pc != kNone && s.undo_action == kNone) {
        return fail("has an undo block but no undo action");
      }
      if (s.undo_pc != kNone && !is_boundary(s.undo_pc)) {
        return fail(fmt::format("undo pc {} is not an instruction", s.undo_pc));
      }
      // Neither a pivot nor a retriable step is ever compensated.
      if (s.kind != StepKind::Plain && s.undo_pc != kNone) {
        return fail(fmt::format("a {} step has an undo", to_string(s.kind)));
      }
      const size_t slots = p_.sagas[s.saga].slot_names.size();
      if (s.result_slot != kNone && s.result_slot >= slots) {
        return fail(fmt::format("result slot {} is out of range (saga '{}' has {} slots)",
                                s.result_slot, p_.sagas[s.saga].name, slots));
      }
      if (s.retry != kNone && s.retry >= p_.policies.size()) {
        return fail(fmt::format("retry policy {} is out of range ({} policies)", s.retry,
                                p_.policies.size()));
      }
      // An undo's policy needs an undo, and ends in `stuck`, never a pause.
      if (s.undo_retry != kNone) {
        if (s.undo_retry >= p_.policies.size()) {
          return fail(fmt::format("undo retry policy {} is out of range ({} policies)",
                                  s.undo_retry, p_.policies.size()));
        }
        if (s.undo_pc == kNone) return fail("has an undo retry policy but no undo");
        if (p_.policies[s.undo_retry].then != Then::Fail) {
          return fail("its undo retry policy ends in a pause");
        }
      }
    }

    for (size_t i = 0; i < p_.blocks.size(); ++i) {
      const Block& b = p_.blocks[i];
      auto fail = [&](const std::string& rule) {
        return corrupt(fmt::format("block {}: {}", i, rule));
      };
      if (b.kind > Block::Kind::Foreach) {
        return fail(fmt::format("unknown kind {}", static_cast<int>(b.kind)));
      }
      if (b.saga >= p_.sagas.size()) {
        return fail(fmt::format("saga {} is out of range ({} sagas)", b.saga, p_.sagas.size()));
      }
      const size_t slots = p_.sagas[b.saga].slot_names.size();
      if (b.branches.empty()) return fail("has no branch");
      if (b.branches.size() > kMaxBranches) {
        return fail(
            fmt::format("{} branches exceed the limit of {}", b.branches.size(), kMaxBranches));
      }
      for (const Branch& br : b.branches) {
        if (!is_boundary(br.entry_pc)) {
          return fail(
              fmt::format("branch '{}': entry pc {} is not an instruction", br.name, br.entry_pc));
        }
      }
      if (b.kind == Block::Kind::Parallel) {
        if (b.item_slot != kNone || !b.collect.empty()) {
          return fail("a parallel block has no loop variable and collects nothing");
        }
        continue;
      }
      if (b.branches.size() != 1) {
        return fail(fmt::format("a foreach has one body, not {}", b.branches.size()));
      }
      if (b.item_slot >= slots) {
        return fail(fmt::format("loop variable slot {} is out of range (saga '{}' has {} slots)",
                                b.item_slot, p_.sagas[b.saga].name, slots));
      }
      if (b.max > kMaxBranches) {
        return fail(fmt::format("max {} exceeds the limit of {}", b.max, kMaxBranches));
      }
      for (const Block::Collect& c : b.collect) {
        if (c.body >= slots || c.list >= slots) {
          return fail(fmt::format("collected slot {} -> {} is out of range ({} slots)", c.body,
                                  c.list, slots));
        }
      }
    }

    for (size_t i = 1; i < p_.lines.size(); ++i) {
      if (p_.lines[i].pc < p_.lines[i - 1].pc) {
        return corrupt(fmt::format(
            "line table: entry {} (pc {}) comes after entry {} (pc {}); it must be sorted by pc", i,
            p_.lines[i].pc, i - 1, p_.lines[i - 1].pc));
      }
    }
    return Status::Ok();
  }

  // Checks one operand of the instruction at the current pc. Returns the
  // broken rule, or an empty string. Jump operands are checked with the
  // control flow.
  std::string check_operand(const Context& c, Operand kind, uint32_t v) const {
    switch (kind) {
      case Operand::None:
      case Operand::Jump:
        return {};
      case Operand::Const:
        if (v >= p_.constants.size()) {
          return fmt::format("constant {} is out of range ({} constants)", v, p_.constants.size());
        }
        return {};
      case Operand::Str:
        if (v >= p_.constants.size()) {
          return fmt::format("constant {} is out of range ({} constants)", v, p_.constants.size());
        }
        if (p_.constants[v].kind != Constant::Kind::String) {
          return fmt::format("constant {} is not a string (it is {})", v,
                             kind_name(p_.constants[v].kind));
        }
        return {};
      case Operand::Slot: {
        const Saga& saga = p_.sagas[c.saga];
        if (v >= saga.slot_names.size()) {
          return fmt::format("slot {} is out of range (saga '{}' has {} slots)", v, saga.name,
                             saga.slot_names.size());
        }
        return {};
      }
      case Operand::Count:
        if (v > kMaxCount) return fmt::format("count {} exceeds the limit of {}", v, kMaxCount);
        return {};
      case Operand::Func:
        if (v >= p_.functions.size()) {
          return fmt::format("function {} is out of range ({} functions)", v, p_.functions.size());
        }
        return {};
      case Operand::Block: {
        if (v >= p_.blocks.size()) {
          return fmt::format("block {} is out of range ({} blocks)", v, p_.blocks.size());
        }
        if (p_.blocks[v].saga != c.saga) {
          return fmt::format("block {} belongs to saga '{}', not to this saga", v,
                             p_.sagas[p_.blocks[v].saga].name);
        }
        return {};
      }
      case Operand::Step: {
        if (v >= p_.steps.size()) {
          return fmt::format("step {} is out of range ({} steps)", v, p_.steps.size());
        }
        const Step& step = p_.steps[v];
        if (c.undo && v != c.step) {
          return fmt::format("step '{}' is not the step this undo block belongs to ('{}')",
                             step.name, p_.steps[c.step].name);
        }
        if (!c.undo && step.saga != c.saga) {
          return fmt::format("step '{}' belongs to saga '{}', not to this saga", step.name,
                             p_.sagas[step.saga].name);
        }
        return {};
      }
    }
    return fmt::format("unknown operand kind {}", static_cast<int>(kind));
  }

  // Pass 3: follows every path from c.start with an empty stack. depth_[pc]
  // is the stack depth before the instruction at pc, or -1 if no path seen
  // so far reaches it; each pc enters the worklist once, so this is linear in
  // the size of the code.
  Status interpret(const Context& c) {
    for (uint32_t pc : touched_) depth_[pc] = -1;
    touched_.clear();
    std::vector<uint32_t> work;
    depth_[c.start] = 0;
    touched_.push_back(c.start);
    work.push_back(c.start);

    while (!work.empty()) {
      const uint32_t pc = work.back();
      work.pop_back();
      Instruction in;
      decode(p_.code, pc, in);  // Cannot fail: pc is a boundary.
      const OpInfo& info = op_info(in.op);
      auto fail = [&](const std::string& rule) {
        return corrupt(fmt::format("{}: pc {} ({}): {}", c.where, pc, info.name, rule));
      };

      // Placement: the flags say where an instruction may appear.
      if (c.undo && (info.flags & kSagaOnly)) return fail("not allowed in an undo block");
      if (!c.undo && (info.flags & kUndoOnly)) {
        return fail("only allowed in an undo block, not in a saga's main code");
      }
      if (c.block == kNone && (info.flags & kBranchOnly)) {
        return fail("only allowed in a branch or loop body");
      }
      if (std::string rule = check_operand(c, info.a, in.a); !rule.empty()) return fail(rule);
      if (std::string rule = check_operand(c, info.b, in.b); !rule.empty()) return fail(rule);
      // An await step (its action the built-in `signal`) runs only by AWAIT,
      // which waits for a signal, and has no undo; INVOKE would call
      // `signal` as an action, and a forged undo would compensate a wait.
      if (in.op == Op::INVOKE && is_await_step(p_, p_.steps[in.a])) {
        return fail(
            fmt::format("step '{}' is an await step: only AWAIT runs it", p_.steps[in.a].name));
      }
      if (in.op == Op::AWAIT) {
        const Step& step = p_.steps[in.b];
        if (!is_await_step(p_, step)) {
          return fail(fmt::format("step '{}' is not an await step (its action is not '{}')",
                                  step.name, kSignalAction));
        }
        if (step.undo_action != kNone || step.undo_pc != kNone) {
          return fail(fmt::format("await step '{}' has an undo", step.name));
        }
      }
      // What EMIT tells is an event type, by the rule triggers are held to.
      if (in.op == Op::EMIT && !valid_event_type(p_.constants[in.a].string)) {
        return fail(fmt::format("emits '{}', which is not an event type",
                                p_.constants[in.a].string));
      }
      // A fiber ends its own block's branch; only the root completes the saga
      // (an `output` inside a branch would leave the others half-joined).
      if (in.op == Op::END && in.a != c.block) {
        return fail(
            fmt::format("ends block {}, but this code is a branch of block {}", in.a, c.block));
      }
      if (in.op == Op::COMPLETE && c.block != kNone) {
        return fail("a branch or loop body cannot complete the saga");
      }
      // FORK and JOIN come in pairs: the fiber that forks waits right there.
      if (in.op == Op::FORK) {
        Instruction next;
        if (!decode(p_.code, pc + in.size, next) || next.op != Op::JOIN || next.a != in.a) {
          return fail(fmt::format("is not followed by the JOIN of block {}", in.a));
        }
      }

      // Stack effect, with variadic pops taken from the operand's value.
      // Computed in 64 bits: operand values can be up to 2^32 - 1.
      const int64_t depth = depth_[pc];
      const int64_t pops = info.pops == kPopA   ? int64_t{in.a}
                           : info.pops == kPopB ? int64_t{in.b}
                                                : int64_t{info.pops};
      if (pops > depth) {
        return fail(fmt::format("stack underflow (needs {}, the stack holds {})", values(pops),
                                values(depth)));
      }
      const int64_t after = depth - pops + info.pushes;
      if (after > kMaxStackDepth) {
        return fail(fmt::format("stack depth {} exceeds the limit of {}", after, kMaxStackDepth));
      }
      // An instruction that ends the block without jumping (RETURN) must
      // leave an undo block's stack empty, as it found it.
      if (c.undo && (info.flags & kEnds) && !(info.flags & kJumps) && after != 0) {
        return fail(
            fmt::format("undo block ends with {} on the stack (it must end with an empty stack)",
                        values(after)));
      }
      // Fibers start, wait and end with an empty stack: statements only.
      if ((in.op == Op::FORK || in.op == Op::JOIN || in.op == Op::END) && after != 0) {
        return fail(
            fmt::format("leaves {} on the stack (fibers fork, join and end with an empty "
                        "stack)",
                        values(after)));
      }

      // Records that the stack holds `after` values on entry to `target`:
      // the first path to reach it sets the depth, later paths must agree.
      auto flow = [&](uint32_t target) -> std::string {
        int32_t& seen = depth_[target];
        if (seen < 0) {
          seen = static_cast<int32_t>(after);
          touched_.push_back(target);
          work.push_back(target);
        } else if (seen != after) {
          return fmt::format("stack depth disagrees at pc {} ({} on this path, {} on another)",
                             target, after, seen);
        }
        return {};
      };

      // Successors: the jump target (kJumps) and the next instruction (unless
      // kEnds). JUMP_IF_FALSE has both; JUMP only the target.
      if (info.flags & kJumps) {
        const int64_t target = int64_t{pc} + in.size + in.jump();
        if (target < 0 || target >= static_cast<int64_t>(p_.code.size())) {
          return fail(
              fmt::format("jump target {} is outside the code ({} bytes)", target, p_.code.size()));
        }
        if (!is_boundary(static_cast<uint64_t>(target))) {
          return fail(fmt::format("jump target {} is not an instruction", target));
        }
        if (std::string rule = flow(static_cast<uint32_t>(target)); !rule.empty())
          return fail(rule);
      }
      if (!(info.flags & kEnds)) {
        const uint64_t next = uint64_t{pc} + in.size;
        if (next >= p_.code.size()) {
          return fail("execution falls off the end of the code (no ending instruction)");
        }
        if (std::string rule = flow(static_cast<uint32_t>(next)); !rule.empty()) return fail(rule);
      }
    }
    // A branch's code is its own: a jump between a branch and other code
    // would let a fiber run code whose slots and ending it does not own.
    ++contexts_;
    for (uint32_t pc : touched_) {
      int32_t& owner = owner_[pc];
      if (owner == 0) {
        owner = contexts_;
        branch_owned_[pc] = c.block != kNone;
      } else if (owner != contexts_ && (branch_owned_[pc] || c.block != kNone)) {
        return corrupt(
            fmt::format("{}: pc {} is also the code of another branch or of the "
                        "saga's main code",
                        c.where, pc));
      }
    }
    // Publish this block's depths; an instruction shared by blocks at
    // different depths is marked -2 (no checkpoint may resume there).
    if (depths_) {
      for (uint32_t pc : touched_) {
        int32_t& out = (*depths_)[pc];
        out = out == -1 ? depth_[pc] : (out == depth_[pc] ? out : -2);
      }
    }
    return Status::Ok();
  }

  const Program& p_;
  std::vector<int32_t>* depths_;       // Optional output (see verify.hpp).
  std::vector<uint8_t> boundary_;      // 1 where an instruction starts.
  std::vector<int32_t> depth_;         // Stack depth before each pc; -1 = not reached.
  std::vector<uint32_t> touched_;      // The pcs whose depth_ the last pass set.
  std::vector<int32_t> owner_;         // The context that first reached each pc; 0 = none.
  std::vector<uint8_t> branch_owned_;  // Whether that context was a branch.
  int32_t contexts_ = 0;
};

// The triggers: each names a saga, gives each of its parameters exactly one
// argument, and every argument is a JSON constant or a path the engine can
// read from an event (kEventFields; fields below `data` only).
Status verify_triggers(const Program& p) {
  for (size_t i = 0; i < p.triggers.size(); ++i) {
    const Trigger& t = p.triggers[i];
    if (!valid_event_type(t.type)) {
      return corrupt(fmt::format("trigger {} has a malformed event type '{}'", i, t.type));
    }
    if (t.saga >= p.sagas.size()) {
      return corrupt(fmt::format("trigger {} starts saga {}, out of range", i, t.saga));
    }
    const Saga& saga = p.sagas[t.saga];
    if (t.args.size() != saga.params.size()) {
      return corrupt(fmt::format("trigger {} has {} arguments for the {} parameters of saga '{}'",
                                 i, t.args.size(), saga.params.size(), saga.name));
    }
    for (const TriggerArg& a : t.args) {
      size_t same = 0;
      for (const TriggerArg& b : t.args) same += b.param == a.param ? 1 : 0;
      bool param = false;
      for (const Param& q : saga.params) param = param || q.name == a.param;
      if (!param || same != 1) {
        return corrupt(fmt::format("trigger {} gives parameter '{}' of saga '{}' {} values", i,
                                   a.param, saga.name, param ? same : 0));
      }
      if (a.is_path ? !valid_event_path(a.value) : !nlohmann::json::accept(a.value)) {
        return corrupt(fmt::format("trigger {} has an invalid {} for '{}'", i,
                                   a.is_path ? "path" : "constant", a.param));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status verify(const Program& program, std::vector<int32_t>* depth_before) {
  try {
    if (Status s = verify_triggers(program); !s.ok()) return s;
    return Verifier(program, depth_before).run();
  } catch (const std::bad_alloc&) {
    return {StatusCode::kInternal, "out of memory while verifying the program"};
  }
}

}  // namespace saga::bytecode
