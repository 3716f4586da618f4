// The disassembler (`sagactl disasm`) and the generator of docs/opcodes.md.
// Both take opcode names, operand kinds, stack effects and docs from the
// kOpInfo table built from opcodes.def; nothing here names an opcode, so a new
// row shows up in listings and in the reference without touching this file.
//
// disassemble() is also a debugging tool for files the verifier rejected, so
// it must not trust the program: every table index is range-checked before
// use, undecodable bytes are shown as bytes, and no input makes it crash.
#include "runtime/bytecode/disasm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <vector>

#include "runtime/value/json_quote.hpp"

namespace saga::bytecode {
namespace {

// ---------------------------------------------------------------------------
// Value formatting

// A JSON string literal (runtime/value/json_quote.hpp).
std::string quoted(std::string_view s) {
  std::string out;
  append_json_quoted(out, s, /*escape_del=*/true);
  return out;
}

// A constant as a JSON literal. Numbers use the shortest text that reads back
// as the same double (100, 0.1, 1e+21).
std::string literal(const Constant& c) {
  switch (c.kind) {
    case Constant::Kind::Null:
      return "null";
    case Constant::Kind::Bool:
      return c.boolean ? "true" : "false";
    case Constant::Kind::Number:
      return fmt::format("{}", c.number);
    case Constant::Kind::String:
      return quoted(c.string);
  }
  return "<constant of unknown kind>";
}

const char* backoff_name(Backoff b) {
  switch (b) {
    case Backoff::Fixed:
      return "fixed";
    case Backoff::Linear:
      return "linear";
    case Backoff::Exponential:
      return "exponential";
  }
  return "?";
}

const char* jitter_name(Jitter j) {
  switch (j) {
    case Jitter::None:
      return "none";
    case Jitter::Full:
      return "full";
    case Jitter::Equal:
      return "equal";
  }
  return "?";
}

// "exponential(200ms, x2, max 5s)", "linear(1s, +500ms)", "fixed(1s)".
std::string backoff_text(const RetryPolicy& r) {
  std::string args = format_duration(r.initial_ms);
  if (r.backoff == Backoff::Exponential) args += fmt::format(", x{}", r.factor);
  if (r.backoff == Backoff::Linear) args += fmt::format(", +{}", format_duration(r.step_ms));
  if (r.max_ms != 0) args += fmt::format(", max {}", format_duration(r.max_ms));
  return fmt::format("{}({})", backoff_name(r.backoff), args);
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

void rtrim(std::string& s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
}

// Columns aligned to their widest cell, each row prefixed (";   ").
std::string render_table(const std::vector<std::vector<std::string>>& rows,
                         std::string_view prefix) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line(prefix);
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    rtrim(line);
    out += line + "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------
// The listing

// Builds the listing of one program. The code is decoded once, linearly,
// into instructions; each saga's main code and each undo block is then the
// set of instructions reachable from its first pc, printed in pc order. This
// does not assume any layout: a compiler may place undo blocks after the
// saga, at the end of the code, or between the saga's own instructions
// behind a jump. Whatever no block reaches is printed last, so the listing
// always shows every byte of the code.
class Listing {
 public:
  explicit Listing(const Program& p) : p_(p) {
    split_source();
    decode_code();
  }

  std::string run() {
    header();
    tables();
    listed_.assign(instructions_.size(), 0);
    for (uint32_t i = 0; i < p_.sagas.size(); ++i) {
      saga_code(i);
      for (uint32_t b = 0; b < p_.blocks.size(); ++b) {
        if (p_.blocks[b].saga == i) branch_code(b);
      }
      for (uint32_t s = 0; s < p_.steps.size(); ++s) {
        if (p_.steps[s].saga == i && p_.steps[s].undo_pc != kNone) undo_code(s);
      }
    }
    // Undo blocks of steps whose saga index is broken (unverified programs).
    for (uint32_t s = 0; s < p_.steps.size(); ++s) {
      if (p_.steps[s].saga >= p_.sagas.size() && p_.steps[s].undo_pc != kNone) undo_code(s);
    }
    leftovers();
    return out_;
  }

 private:
  // Index of the instruction that starts at pc, or -1.
  int64_t index_at(int64_t pc) const {
    if (pc < 0 || pc >= static_cast<int64_t>(index_.size())) return -1;
    return index_[static_cast<size_t>(pc)];
  }

  // Splits the source section into lines for the "; file:line | text"
  // comments; line N is source_lines_[N - 1].
  void split_source() {
    std::string_view text = p_.source_text;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      source_lines_.push_back(text.substr(0, nl));
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
  }

  // Decodes from pc 0 until the end or the first undecodable byte.
  void decode_code() {
    index_.assign(p_.code.size(), -1);
    uint32_t pc = 0;
    Instruction in;
    while (pc < p_.code.size() && decode(p_.code, pc, in)) {
      index_[pc] = static_cast<int32_t>(instructions_.size());
      instructions_.push_back({pc, in});
      pc += in.size;
    }
    decoded_end_ = pc;
  }

  // Names for table entries. Out-of-range indexes (unverified programs)
  // print as "<action 9?>" rather than crash.
  std::string action_name(uint32_t a) const {
    if (a == kNone) return "-";
    if (a >= p_.actions.size()) return fmt::format("<action {}?>", a);
    return p_.actions[a].name;
  }

  std::string saga_name(uint32_t s) const {
    if (s >= p_.sagas.size()) return fmt::format("<saga {}?>", s);
    return p_.sagas[s].name;
  }

  std::string slot_name(uint32_t saga, uint32_t slot) const {
    if (saga >= p_.sagas.size() || slot >= p_.sagas[saga].slot_names.size()) {
      return fmt::format("<slot {}?>", slot);
    }
    return p_.sagas[saga].slot_names[slot];
  }

  std::string policy_name(uint32_t r) const {
    if (r == kNone) return "-";
    if (r >= p_.policies.size()) return fmt::format("<policy {}?>", r);
    if (p_.policies[r].name.empty()) return fmt::format("#{}", r);
    return p_.policies[r].name;
  }

  // "; program order.saga  hash 3f2a...  format 1" and a one-line summary.
  void header() {
    out_ += fmt::format("; program {}  hash {}  format {}\n",
                        p_.source_name.empty() ? "<unnamed>" : p_.source_name, p_.hash_hex(),
                        format_version(p_));
    out_ += fmt::format("; {} sagas, {} steps, {} constants, {} bytes of code\n", p_.sagas.size(),
                        p_.steps.size(), p_.constants.size(), p_.code.size());
    if (!p_.functions.empty()) out_ += fmt::format("; functions: {}\n", join(p_.functions, ", "));
    // "; on order.placed start payment(order: event.data.order, note: "x")"
    for (const Trigger& t : p_.triggers) {
      std::vector<std::string> args;
      for (const TriggerArg& a : t.args) {
        args.push_back(fmt::format("{}: {}{}", a.param, a.is_path ? "event." : "", a.value));
      }
      out_ += fmt::format("; on {} start {}({})\n", t.type, saga_name(t.saga), join(args, ", "));
    }
  }

  // Services (with their routes), retry policies and steps as aligned
  // tables. Durations are written as in the language (2s, 200ms, 10m) and
  // 0 / none as "-".
  void tables() {
    if (!p_.services.empty()) {
      std::vector<std::vector<std::string>> rows = {
          {"service", "url", "timeout", "breaker", "bulkhead"}};
      for (const Service& s : p_.services) {
        std::string breaker = "-";
        if (s.breaker_failures != 0) {
          breaker = fmt::format("{}/{}/{}", s.breaker_failures, format_duration(s.breaker_reset_ms),
                                s.breaker_probes);
        }
        rows.push_back({s.name, s.url.empty() ? "(host)" : s.url,
                        s.timeout_ms ? format_duration(s.timeout_ms) : "-", breaker,
                        s.bulkhead ? std::to_string(s.bulkhead) : "-"});
      }
      out_ += "\n" + render_table(rows, "; ");
      // Routes are listed under the table, one per line.
      for (const Service& s : p_.services) {
        for (const Route& r : s.routes) {
          out_ += fmt::format(";   {}.{} = {} {}\n", s.name, r.op, r.method, quoted(r.path));
        }
      }
    }
    if (!p_.policies.empty()) {
      std::vector<std::vector<std::string>> rows = {
          {"retry", "attempts", "backoff", "jitter", "on"}};
      // The `then` column only when a policy pauses (format version 4), so
      // older listings stay as they were.
      const bool pauses = std::any_of(p_.policies.begin(), p_.policies.end(),
                                      [](const RetryPolicy& r) { return r.then != Then::Fail; });
      if (pauses) rows[0].push_back("then");
      for (uint32_t i = 0; i < p_.policies.size(); ++i) {
        const RetryPolicy& r = p_.policies[i];
        std::vector<std::string> on = r.retry_on;
        std::replace(on.begin(), on.end(), std::string(kAnyClass), std::string("any"));
        rows.push_back({policy_name(i),
                        r.attempts == kUnlimitedAttempts ? "unlimited" : std::to_string(r.attempts),
                        backoff_text(r), jitter_name(r.jitter), "[" + join(on, ", ") + "]"});
        if (pauses) rows.back().push_back(r.then == Then::Pause ? "pause" : "fail");
      }
      out_ += "\n" + render_table(rows, "; ");
    }
    if (!p_.steps.empty()) {
      std::vector<std::vector<std::string>> rows = {
          {"step", "#", "saga", "do", "undo", "result", "timeout", "retry", "at"}};
      // The `undo retry` column only when a step has one (format version 4).
      const bool undo_policies = std::any_of(p_.steps.begin(), p_.steps.end(),
                                             [](const Step& s) { return s.undo_retry != kNone; });
      if (undo_policies) rows[0].insert(rows[0].end() - 1, "undo retry");
      for (uint32_t i = 0; i < p_.steps.size(); ++i) {
        const Step& s = p_.steps[i];
        // A pivot or retriable step is shown with its kind: "charge (pivot)".
        std::string name =
            s.kind == StepKind::Plain ? s.name : fmt::format("{} ({})", s.name, to_string(s.kind));
        rows.push_back({name, std::to_string(i), saga_name(s.saga), action_name(s.action),
                        action_name(s.undo_action),
                        s.result_slot == kNone ? "-" : slot_name(s.saga, s.result_slot),
                        s.timeout_ms ? format_duration(s.timeout_ms) : "-", policy_name(s.retry),
                        fmt::format("{}:{}", s.line, s.column)});
        if (undo_policies) rows.back().insert(rows.back().end() - 1, policy_name(s.undo_retry));
      }
      out_ += "\n" + render_table(rows, "; ");
    }
  }

  // "block 0  parallel  branches flight@0031, hotel@0042" or "block 1
  // foreach item  max 4  body@0050  collect r -> r", per block.
  std::string block_text(uint32_t b) const {
    if (b >= p_.blocks.size()) return fmt::format("<block {}?>", b);
    const Block& block = p_.blocks[b];
    std::vector<std::string> entries;
    for (const Branch& br : block.branches) {
      entries.push_back(fmt::format("{}@{:04}", br.name, br.entry_pc));
    }
    if (block.kind == Block::Kind::Parallel) {
      return fmt::format("parallel: branches {}", join(entries, ", "));
    }
    std::vector<std::string> collect;
    for (const Block::Collect& c : block.collect) {
      collect.push_back(slot_name(block.saga, c.body) + " -> " + slot_name(block.saga, c.list));
    }
    return fmt::format("foreach {}  max {}  body@{:04}{}", slot_name(block.saga, block.item_slot),
                       block.max == 0 ? std::string("-") : std::to_string(block.max),
                       block.branches.empty() ? 0 : block.branches[0].entry_pc,
                       collect.empty() ? "" : "  collect " + join(collect, ", "));
  }

  // The code of each branch (or loop body) of a block, after its saga.
  void branch_code(uint32_t b) {
    const Block& block = p_.blocks[b];
    for (const Branch& br : block.branches) {
      out_ += fmt::format("\n{} {} of block {}\n",
                          block.kind == Block::Kind::Parallel ? "branch" : "loop body", br.name, b);
      if (index_at(br.entry_pc) < 0) {
        out_ += fmt::format("  ; entry pc {} is not an instruction\n", br.entry_pc);
        continue;
      }
      code(reachable(br.entry_pc), block.saga);
    }
  }

  // Marks the instructions reachable from `start` by following jumps and
  // fall-throughs (the same paths the verifier follows).
  std::vector<uint8_t> reachable(uint32_t start) const {
    std::vector<uint8_t> seen(instructions_.size(), 0);
    std::vector<int64_t> work;
    if (index_at(start) >= 0) work.push_back(index_at(start));
    while (!work.empty()) {
      int64_t i = work.back();
      work.pop_back();
      if (seen[static_cast<size_t>(i)]) continue;
      seen[static_cast<size_t>(i)] = 1;
      const auto& [pc, in] = instructions_[static_cast<size_t>(i)];
      const OpInfo& info = op_info(in.op);
      if (info.flags & kJumps) {
        int64_t target = index_at(int64_t{pc} + in.size + in.jump());
        if (target >= 0) work.push_back(target);
      }
      if (!(info.flags & kEnds) && index_at(int64_t{pc} + in.size) >= 0) {
        work.push_back(index_at(int64_t{pc} + in.size));
      }
    }
    return seen;
  }

  // "saga name(param: type, ...)  deadline=10m  slots=7  entry=0000", the
  // slot names, then the saga's main code.
  void saga_code(uint32_t i) {
    const Saga& s = p_.sagas[i];
    std::vector<std::string> params;
    for (const Param& param : s.params) {
      if (param.type == Type::Any) {
        params.push_back(param.name);
      } else {
        params.push_back(fmt::format("{}: {}", param.name, to_string(param.type)));
      }
    }
    out_ += fmt::format("\nsaga {}({})", s.name, join(params, ", "));
    if (s.deadline_ms) out_ += fmt::format("  deadline={}", format_duration(s.deadline_ms));
    out_ += fmt::format("  slots={}  entry={:04}\n", s.slot_names.size(), s.entry_pc);
    if (!s.slot_names.empty()) {
      std::vector<std::string> slots;
      for (size_t j = 0; j < s.slot_names.size(); ++j) {
        slots.push_back(fmt::format("{} {}", j, s.slot_names[j]));
      }
      out_ += fmt::format("  ; slots: {}\n", join(slots, ", "));
    }
    if (index_at(s.entry_pc) < 0) {
      out_ += fmt::format("  ; entry pc {} is not an instruction\n", s.entry_pc);
      return;
    }
    code(reachable(s.entry_pc), i);
  }

  // "undo of step reserve (inventory.release)", then the undo block. Slot
  // names come from the step's saga.
  void undo_code(uint32_t step_index) {
    const Step& step = p_.steps[step_index];
    out_ += fmt::format("\nundo of step {} ({})\n", step.name, action_name(step.undo_action));
    if (index_at(step.undo_pc) < 0) {
      out_ += fmt::format("  ; undo pc {} is not an instruction\n", step.undo_pc);
      return;
    }
    code(reachable(step.undo_pc), step.saga);
  }

  // Instructions no saga or undo block reaches, then bytes that do not decode.
  void leftovers() {
    std::vector<uint8_t> rest(instructions_.size(), 0);
    bool any = false;
    for (size_t i = 0; i < instructions_.size(); ++i) {
      if (!listed_[i]) rest[i] = any = true;
    }
    if (any) {
      out_ += "\n; unreachable code\n";
      code(rest, kNone);
    }
    if (decoded_end_ < p_.code.size()) {
      out_ += fmt::format("\n; undecodable bytes from pc {}:", decoded_end_);
      size_t end = std::min<size_t>(p_.code.size(), decoded_end_ + 32);
      for (size_t pc = decoded_end_; pc < end; ++pc) out_ += fmt::format(" {:02x}", p_.code[pc]);
      if (end < p_.code.size())
        out_ += fmt::format(" ... ({} bytes)", p_.code.size() - decoded_end_);
      out_ += "\n";
    }
  }

  // Lists the selected instructions in pc order, with a source line comment
  // whenever the line changes.
  void code(const std::vector<uint8_t>& selected, uint32_t saga) {
    uint32_t last_line = 0;
    for (size_t i = 0; i < instructions_.size(); ++i) {
      if (!selected[i]) continue;
      listed_[i] = 1;
      const auto& [pc, in] = instructions_[i];
      LineEntry where = p_.line_at(pc);
      if (where.line != 0 && where.line != last_line) {
        last_line = where.line;
        out_ += fmt::format("  ; {}:{}", p_.source_name, where.line);
        if (where.line <= source_lines_.size()) {
          std::string text(source_lines_[where.line - 1]);
          rtrim(text);
          if (!text.empty()) out_ += " | " + text;
        }
        out_ += "\n";
      }
      out_ += instruction(pc, in, saga) + "\n";
    }
  }

  // "  0042  INVOKE        0                 ; step reserve: inventory.reserve"
  std::string instruction(uint32_t pc, const Instruction& in, uint32_t saga) const {
    const OpInfo& info = op_info(in.op);
    std::string line = fmt::format("  {:04}  {}", pc, info.name);
    std::vector<std::string> operands, comments;
    const std::pair<Operand, uint32_t> ops[] = {{info.a, in.a}, {info.b, in.b}};
    for (const auto& [kind, value] : ops) {
      if (kind == Operand::None) continue;
      if (kind == Operand::Jump) {
        operands.push_back(fmt::format("-> {:04}", int64_t{pc} + in.size + in.jump()));
      } else {
        operands.push_back(std::to_string(value));
      }
      std::string comment = operand_comment(kind, value, info, saga);
      if (!comment.empty()) comments.push_back(std::move(comment));
    }
    if (!operands.empty()) {
      line.resize(std::max<size_t>(line.size() + 1, 22), ' ');
      line += join(operands, ", ");
    }
    if (!comments.empty()) {
      line.resize(std::max<size_t>(line.size() + 1, 40), ' ');
      line += "; " + join(comments, ", ");
    }
    return line;
  }

  // What an operand refers to, for the comment column. Empty for counts and
  // jumps, whose values speak for themselves.
  std::string operand_comment(Operand kind, uint32_t v, const OpInfo& info, uint32_t saga) const {
    switch (kind) {
      case Operand::None:
      case Operand::Count:
      case Operand::Jump:
        return {};
      case Operand::Const:
      case Operand::Str:
        if (v >= p_.constants.size()) return fmt::format("<constant {}?>", v);
        return literal(p_.constants[v]);
      case Operand::Slot:
        return slot_name(saga, v);
      case Operand::Func:
        if (v >= p_.functions.size()) return fmt::format("<function {}?>", v);
        return p_.functions[v] + "()";
      case Operand::Block:
        return fmt::format("block {}: {}", v, block_text(v));
      case Operand::Step: {
        if (v >= p_.steps.size()) return fmt::format("<step {}?>", v);
        const Step& step = p_.steps[v];
        // Instructions that only run in undo blocks use the undo action.
        uint32_t action = (info.flags & kUndoOnly) ? step.undo_action : step.action;
        return fmt::format("step {}: {}", step.name, action_name(action));
      }
    }
    return {};
  }

  const Program& p_;
  std::string out_;
  std::vector<std::string_view> source_lines_;
  std::vector<std::pair<uint32_t, Instruction>> instructions_;  // In pc order.
  std::vector<int32_t> index_;   // pc -> index into instructions_, or -1.
  std::vector<uint8_t> listed_;  // Instructions already shown in some block.
  uint32_t decoded_end_ = 0;
};

// ---------------------------------------------------------------------------
// The opcode reference

struct OperandDoc {
  const char* name;
  const char* meaning;
};

OperandDoc operand_doc(Operand kind) {
  switch (kind) {
    case Operand::None:
      return {"None", "no operand"};
    case Operand::Const:
      return {"Const", "index of a constant in the constant pool: K[a]"};
    case Operand::Str:
      return {"Str", "index of a constant that must be a string"};
    case Operand::Slot:
      return {"Slot", "variable slot of the current saga: V[a]"};
    case Operand::Count:
      return {"Count", "a number of values"};
    case Operand::Jump:
      return {"Jump", "signed offset from the end of this instruction to the jump target"};
    case Operand::Func:
      return {"Func", "index into the program's function table: F[a]"};
    case Operand::Step:
      return {"Step", "index into the step table, a step of the current saga: S[a]"};
    case Operand::Block:
      return {"Block",
              "index into the block table, a `parallel` block or `foreach` loop of the current "
              "saga: B[a]"};
  }
  return {"?", "?"};
}

std::string width_text(Operand kind) {
  if (kind == Operand::Jump) return "i32";
  return fmt::format("u{}", operand_width(kind) * 8);
}

// "Const", "Func, Count" or "" (no operands).
std::string operands_text(const OpInfo& info) {
  std::vector<std::string> parts;
  for (Operand kind : {info.a, info.b}) {
    if (kind != Operand::None) parts.emplace_back(operand_doc(kind).name);
  }
  return join(parts, ", ");
}

std::string pops_text(int pops) {
  if (pops == kPopA) return "a";
  if (pops == kPopB) return "b";
  return std::to_string(pops);
}

std::string stack_text(const OpInfo& info) {
  return fmt::format("{} → {}", pops_text(info.pops), info.pushes);
}

constexpr struct {
  uint8_t bit;
  const char* name;
  const char* meaning;
} kFlagDocs[] = {
    {kJumps, "jumps", "operand a is a jump target"},
    {kBranches, "branches",
     "a conditional jump, which may also fall through to the next instruction"},
    {kEnds, "ends", "never falls through to the next instruction"},
    {kYields, "yields",
     "a yield point, where the instance is checkpointed and hands an effect to the scheduler"},
    {kUndoOnly, "undo-only", "only valid inside an undo block"},
    {kSagaOnly, "saga-only",
     "only valid in a saga's main code or in its branches, not in an undo block"},
    {kBranchOnly, "branch-only", "only valid in a branch or loop body, which runs as a fiber"},
};

std::string flags_text(uint8_t flags) {
  std::vector<std::string> names;
  for (const auto& f : kFlagDocs) {
    if (flags & f.bit) names.emplace_back(f.name);
  }
  return join(names, ", ");
}

// Text safe inside a Markdown table cell.
std::string cell(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

std::string anchor(std::string_view name) {
  std::string out;
  for (char ch : name) out += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  return out;
}

}  // namespace

std::string constant_literal(const Constant& c) {
  return literal(c);
}

std::string disassemble(const Program& program) {
  return Listing(program).run();
}

std::string opcode_reference_markdown() {
  std::string out;
  out += "# Saga opcode reference\n\n";
  out +=
      "<!-- Generated from runtime/bytecode/opcodes.def by opcode_reference_markdown() in "
      "runtime/bytecode/disasm.cpp. Do not edit. -->\n\n";
  out +=
      "This page is generated from `runtime/bytecode/opcodes.def`, the single source of truth "
      "for the instruction set; do not edit it by hand. "
      "`tests/bytecode/opcode_doc_test.cpp` regenerates it and fails when this copy is stale; run "
      "the bytecode tests with `SAGA_UPDATE_GOLDEN=1` to rewrite it after changing the table. The "
      "file layout around the code is described in "
      "[sagac-format.md](sagac-format.md).\n\n";

  out += "## How to read it\n\n";
  out +=
      "An instruction is one opcode byte followed by its operands, little-endian. The opcode "
      "byte is the row number in `opcodes.def`; rows are only ever appended, so numbers never "
      "change. The first operand is called `a`, the second `b`.\n\n";
  out += "| operand | encoding | meaning |\n|---|---|---|\n";
  for (Operand kind : {Operand::Const, Operand::Str, Operand::Slot, Operand::Count, Operand::Jump,
                       Operand::Func, Operand::Step, Operand::Block}) {
    OperandDoc d = operand_doc(kind);
    out += fmt::format("| {} | {} | {} |\n", d.name, width_text(kind), d.meaning);
  }
  out +=
      "\nThe **stack** column reads `pops → pushes`: how many values the instruction takes off "
      "the operand stack and how many it puts back. `a` or `b` there means \"as many as the "
      "value of that operand\". The verifier proves that the stack never underflows, never "
      "exceeds " +
      std::to_string(kMaxStackDepth) +
      " values, and has the same depth on every path into an instruction.\n\n";
  out += "The **flags**:\n\n";
  for (const auto& f : kFlagDocs) out += fmt::format("- `{}`: {}.\n", f.name, f.meaning);
  out +=
      "\nIn synopses and docs, `V[a]` is variable slot a, `K[a]` constant a, `S[a]` step a and "
      "`F[a]` function a. Values are JSON values: null, booleans, numbers, strings, lists and "
      "objects.\n\n";

  out += fmt::format("## Summary ({} opcodes)\n\n", kOpCount);
  out += "| # | opcode | operands | stack | flags | synopsis |\n";
  out += "|--:|---|---|---|---|---|\n";
  for (uint32_t i = 0; i < kOpCount; ++i) {
    const OpInfo& info = kOpInfo[i];
    std::string synopsis = info.synopsis.empty() ? "" : fmt::format("`{}`", cell(info.synopsis));
    out += fmt::format("| {} | [{}](#{}) | {} | {} | {} | {} |\n", i, info.name, anchor(info.name),
                       operands_text(info), stack_text(info), flags_text(info.flags), synopsis);
  }

  out += "\n## Opcodes\n";
  for (uint32_t i = 0; i < kOpCount; ++i) {
    const OpInfo& info = kOpInfo[i];
    out += fmt::format("\n### {}\n\n", info.name);
    std::vector<std::string> facts = {fmt::format("opcode {} (0x{:02x})", i, i)};
    std::vector<std::string> operands;
    const std::pair<char, Operand> ops[] = {{'a', info.a}, {'b', info.b}};
    for (const auto& [letter, kind] : ops) {
      if (kind != Operand::None) {
        operands.push_back(
            fmt::format("{}: {} ({})", letter, operand_doc(kind).name, width_text(kind)));
      }
    }
    facts.push_back("operands: " + (operands.empty() ? std::string("none") : join(operands, ", ")));
    const uint32_t size = 1 + operand_width(info.a) + operand_width(info.b);
    facts.push_back(fmt::format("size: {} {}", size, size == 1 ? "byte" : "bytes"));
    facts.push_back("stack: " + stack_text(info));
    if (info.flags) facts.push_back("flags: " + flags_text(info.flags));
    out += join(facts, " · ") + "\n\n";
    if (!info.synopsis.empty()) out += fmt::format("Synopsis: `{}`\n\n", info.synopsis);
    out += std::string(info.doc) + "\n";
  }
  return out;
}

}  // namespace saga::bytecode
