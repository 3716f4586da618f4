// Regions and canonical code (regions.hpp).
#include "runtime/migrate/regions.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace saga::migrate {

using bytecode::Instruction;
using bytecode::kNone;
using bytecode::Op;
using bytecode::Operand;

Code::Code(const runtime::LinkedProgram& lp) : lp_(lp) {
  const bytecode::Program& p = lp.program;
  invoke_pc_.assign(p.steps.size(), kNone);
  fork_pc_.assign(p.blocks.size(), kNone);
  join_pc_.assign(p.blocks.size(), kNone);
  Instruction in;
  for (uint32_t pc = 0; pc < p.code.size() && bytecode::decode(p.code, pc, in); pc += in.size) {
    starts_.push_back(pc);
    if (in.op == Op::INVOKE && in.a < p.steps.size()) invoke_pc_[in.a] = pc;
    if (in.op == Op::FORK && in.a < p.blocks.size()) fork_pc_[in.a] = pc;
    if (in.op == Op::JOIN && in.a < p.blocks.size()) join_pc_[in.a] = pc;
  }
  for (uint32_t s = 0; s < p.sagas.size(); ++s) {
    regions_.push_back({Region::kMain, s, kNone, 0, kNone, p.sagas[s].entry_pc, 0});
  }
  for (uint32_t b = 0; b < p.blocks.size(); ++b) {
    for (uint32_t i = 0; i < p.blocks[b].branches.size(); ++i) {
      regions_.push_back(
          {Region::kBranch, p.blocks[b].saga, b, i, kNone, p.blocks[b].branches[i].entry_pc, 0});
    }
  }
  for (uint32_t k = 0; k < p.steps.size(); ++k) {
    if (p.steps[k].undo_pc != kNone) {
      regions_.push_back({Region::kUndo, p.steps[k].saga, kNone, 0, k, p.steps[k].undo_pc, 0});
    }
  }
  std::sort(regions_.begin(), regions_.end(),
            [](const Region& a, const Region& b) { return a.begin < b.begin; });
  for (size_t i = 0; i < regions_.size(); ++i) {
    regions_[i].end =
        i + 1 < regions_.size() ? regions_[i + 1].begin : static_cast<uint32_t>(p.code.size());
  }
  // Blocks in index order: a nested block is made after the block it is in,
  // so its region's path is known by then.
  std::map<std::string, int> rank;
  for (uint32_t b = 0; b < p.blocks.size(); ++b) {
    const Region* at = region_at(fork_pc_[b]);
    std::string path = (at ? region_path(*at) : "?") + " > " + block_signature(b);
    block_paths_.push_back(fmt::format("{} #{}", path, rank[path]++));
  }
}

const Region* Code::region_at(uint32_t pc) const {
  if (pc == kNone) return nullptr;
  auto it = std::upper_bound(regions_.begin(), regions_.end(), pc,
                             [](uint32_t v, const Region& r) { return v < r.begin; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return pc < it->end ? &*it : nullptr;
}

const Region* Code::branch_region(uint32_t block, uint32_t branch) const {
  for (const Region& r : regions_) {
    if (r.kind == Region::kBranch && r.block == block && r.branch == branch) return &r;
  }
  return nullptr;
}

std::string Code::region_path(const Region& r) const {
  const bytecode::Program& p = lp_.program;
  switch (r.kind) {
    case Region::kMain:
      return "saga " + p.sagas[r.saga].name;
    case Region::kBranch:
      return block_paths_.size() > r.block
                 ? block_paths_[r.block] + " > " + p.blocks[r.block].branches[r.branch].name
                 : "?";
    case Region::kUndo:
      return "saga " + p.sagas[r.saga].name + " > undo of " + p.steps[r.step].name;
  }
  return "?";
}

std::string Code::block_signature(uint32_t b) const {
  const bytecode::Program& p = lp_.program;
  const bytecode::Block& block = p.blocks[b];
  const auto& names = p.sagas[block.saga].slot_names;
  auto slot = [&](uint32_t s) { return s < names.size() ? names[s] : std::string("?"); };
  std::string out = block.kind == bytecode::Block::Kind::Parallel ? "parallel (" : "foreach (";
  for (size_t i = 0; i < block.branches.size(); ++i) {
    out += (i ? ", " : "") + block.branches[i].name;
  }
  out += ")";
  if (block.kind == bytecode::Block::Kind::Foreach) {
    out += fmt::format(" item {} max {} collect", slot(block.item_slot), block.max);
    for (const bytecode::Block::Collect& c : block.collect) {
      out += fmt::format(" {}->{}", slot(c.body), slot(c.list));
    }
  }
  return out;
}

// One instruction as text: its name, then each operand as what it means.
std::string Code::render(const Instruction& in, uint32_t pc, uint32_t saga, uint32_t upto) const {
  const bytecode::Program& p = lp_.program;
  const bytecode::OpInfo& info = bytecode::op_info(in.op);
  std::string out(info.name);
  auto operand = [&](Operand kind, uint32_t v) {
    switch (kind) {
      case Operand::None:
        return;
      case Operand::Count:
        out += fmt::format(" {}", v);
        return;
      case Operand::Const:
      case Operand::Str: {
        if (v >= p.constants.size()) {
          out += " ?";
          return;
        }
        const bytecode::Constant& c = p.constants[v];
        switch (c.kind) {
          case bytecode::Constant::Kind::Null:
            out += " null";
            break;
          case bytecode::Constant::Kind::Bool:
            out += c.boolean ? " true" : " false";
            break;
          case bytecode::Constant::Kind::Number:
            out += fmt::format(" {}", c.number);
            break;
          case bytecode::Constant::Kind::String:
            out += fmt::format(" \"{}\"", c.string);
            break;
        }
        return;
      }
      case Operand::Slot: {
        const auto& names = p.sagas[saga].slot_names;
        out += " $" + (v < names.size() ? names[v] : std::string("?"));
        return;
      }
      case Operand::Jump: {
        const int64_t target = int64_t(pc) + in.size + in.jump();
        if (target > int64_t(upto))
          out += " past";
        else
          out += fmt::format(" {:+}", in.jump());
        return;
      }
      case Operand::Func:
        out += " " + (v < p.functions.size() ? p.functions[v] : std::string("?"));
        return;
      case Operand::Step: {
        if (v >= p.steps.size()) {
          out += " ?";
          return;
        }
        const bytecode::Step& s = p.steps[v];
        const auto& names = p.sagas[s.saga].slot_names;
        out += fmt::format(" {} do {} -> {}", s.name, p.actions[s.action].name,
                           s.result_slot < names.size() ? names[s.result_slot] : "_");
        return;
      }
      case Operand::Block:
        out += " " + (v < p.blocks.size() ? block_signature(v) : std::string("?"));
        return;
    }
  };
  operand(info.a, in.a);
  operand(info.b, in.b);
  return out;
}

// The deepest blocks nest in code a verifier accepts is far below this; a
// block forked inside itself would recurse for ever.
constexpr int kMaxBlockDepth = 64;

Prefix Code::prefix(const Region& r, uint32_t upto, uint32_t open_block) const {
  Prefix out;
  add_prefix(r, upto, open_block, 0, out);
  return out;
}

void Code::add_prefix(const Region& r, uint32_t upto, uint32_t open_block, int depth,
                      Prefix& out) const {
  const bytecode::Program& p = lp_.program;
  if (depth > kMaxBlockDepth) {
    out.lines.push_back("blocks nested too deep");
    out.pcs.push_back(r.begin);
    return;
  }
  auto first = std::lower_bound(starts_.begin(), starts_.end(), r.begin);
  for (auto it = first; it != starts_.end() && *it <= upto && *it < r.end; ++it) {
    Instruction in;
    if (!bytecode::decode(p.code, *it, in)) break;
    out.lines.push_back(render(in, *it, r.saga, upto));
    out.pcs.push_back(*it);
    if (in.op == Op::INVOKE) out.steps.push_back(in.a);
    if (in.op != Op::FORK || in.a == open_block || in.a >= p.blocks.size()) continue;
    for (uint32_t i = 0; i < p.blocks[in.a].branches.size(); ++i) {
      const Region* body = branch_region(in.a, i);
      if (body == nullptr || body->end == body->begin) continue;
      out.lines.push_back("branch " + p.blocks[in.a].branches[i].name);
      out.pcs.push_back(body->begin);
      add_prefix(*body, body->end - 1, kNone, depth + 1, out);
    }
  }
}

std::string Code::undo_text(uint32_t step) const {
  const bytecode::Program& p = lp_.program;
  const bytecode::Step& s = p.steps[step];
  if (s.undo_pc == kNone || s.undo_action == kNone) return "none";
  const Region* r = region_at(s.undo_pc);
  if (r == nullptr || r->end == r->begin) return "?";
  std::string out = p.actions[s.undo_action].name;
  for (const std::string& line : prefix(*r, r->end - 1, kNone).lines) out += "\n" + line;
  return out;
}

}  // namespace saga::migrate
