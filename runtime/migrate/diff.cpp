// The wait points of a program and their verdicts against another (see
// migrate.hpp for the rule). Code is compared as canonical text, one line per
// instruction with its operands resolved to what they mean: two programs
// compiled from sources that differ only after a wait point give the same
// lines up to it, whatever their constant pools, slot numbers and step
// indexes.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "runtime/migrate/migrate.hpp"
#include "runtime/migrate/regions.hpp"

namespace saga::migrate {

const char* to_string(WaitKind kind) {
  switch (kind) {
    case WaitKind::kStart:
      return "start";
    case WaitKind::kAttempt:
      return "attempt";
    case WaitKind::kJoin:
      return "join";
    case WaitKind::kEnded:
      return "ended";
    case WaitKind::kUndo:
      return "undo";
  }
  return "?";
}

namespace {

using bytecode::kNone;

// The steps that may be on the compensation log of a fiber at `pc` of `c`,
// its own and those of the fibers it descends from: every step run before
// pc in its region, then, for a branch, every step of its block (its
// siblings' entries join the same group) and what came before the block's
// FORK, up to the saga's main code.
std::vector<uint32_t> log_steps_before(const Code& c, uint32_t pc) {
  std::vector<uint32_t> steps;
  // One region per level of blocks; the bound only guards against a program
  // whose blocks would nest in a circle.
  for (size_t level = 0; level <= c.regions().size(); ++level) {
    const Region* r = c.region_at(pc);
    if (r == nullptr) return steps;
    Prefix p = c.prefix(*r, pc, kNone);
    // The step at pc itself is not on the log yet.
    if (!p.steps.empty() && c.invoke_pc_of(p.steps.back()) == pc) p.steps.pop_back();
    steps.insert(steps.end(), p.steps.begin(), p.steps.end());
    if (r->kind != Region::kBranch) return steps;
    for (const Region& sibling : c.regions()) {
      if (sibling.kind == Region::kBranch && sibling.block == r->block) {
        Prefix whole = c.prefix(sibling, sibling.end - 1, kNone);
        steps.insert(steps.end(), whole.steps.begin(), whole.steps.end());
      }
    }
    pc = c.fork_pc(r->block);
  }
  return steps;
}

class Differ {
 public:
  Differ(const runtime::LinkedProgram& o, const runtime::LinkedProgram& n)
      : old_(o), new_(n), oc_(o), nc_(n) {}

  Diff run() {
    Diff d;
    d.old_hash = old_.hash;
    d.new_hash = new_.hash;
    const bytecode::Program& op = old_.program;
    const bytecode::Program& np = new_.program;
    d.steps.assign(op.steps.size(), kNone);
    for (uint32_t i = 0; i < op.steps.size(); ++i) {
      const uint32_t saga = np.find_saga(op.sagas[op.steps[i].saga].name);
      for (uint32_t j = 0; saga != kNone && j < np.steps.size(); ++j) {
        if (np.steps[j].saga == saga && np.steps[j].name == op.steps[i].name) {
          d.steps[i] = j;
          break;
        }
      }
    }
    d.blocks.assign(op.blocks.size(), kNone);
    for (uint32_t i = 0; i < op.blocks.size(); ++i) {
      for (uint32_t j = 0; j < np.blocks.size(); ++j) {
        if (oc_.block_path(i) == nc_.block_path(j)) {
          d.blocks[i] = j;
          break;
        }
      }
    }
    steps_ = &d.steps;
    blocks_ = &d.blocks;
    for (uint32_t s = 0; s < op.sagas.size(); ++s) {
      SagaMap& m = d.sagas.emplace_back();
      m.old_saga = s;
      m.new_saga = np.find_saga(op.sagas[s].name);
      m.slots.assign(op.sagas[s].slot_names.size(), kNone);
      if (m.new_saga != kNone) {
        const auto& names = np.sagas[m.new_saga].slot_names;
        for (uint32_t i = 0; i < m.slots.size(); ++i) {
          auto it = std::find(names.begin(), names.end(), op.sagas[s].slot_names[i]);
          if (it != names.end()) m.slots[i] = static_cast<uint32_t>(it - names.begin());
        }
      }
      saga_points(s, m.new_saga, d.points);
    }
    return d;
  }

 private:
  const runtime::LinkedProgram& old_;
  const runtime::LinkedProgram& new_;
  Code oc_, nc_;
  const std::vector<uint32_t>* steps_ = nullptr;
  const std::vector<uint32_t>* blocks_ = nullptr;

  const bytecode::Program& op() const { return old_.program; }
  const bytecode::Program& np() const { return new_.program; }

  void saga_points(uint32_t s, uint32_t ns, std::vector<WaitPoint>& out) {
    const size_t first = out.size();
    all_points(s, ns, out);
    // As a reader meets them: the start, then the places of the forward
    // code by line, then the undos by line.
    auto rank = [](const WaitPoint& w) {
      return std::pair(w.kind == WaitKind::kStart ? 0 : w.kind == WaitKind::kUndo ? 2 : 1, w.line);
    };
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                     [&](const WaitPoint& a, const WaitPoint& b) { return rank(a) < rank(b); });
  }

  void all_points(uint32_t s, uint32_t ns, std::vector<WaitPoint>& out) {
    const bytecode::Saga& saga = op().sagas[s];
    auto point = [&](WaitKind kind, std::string where, uint32_t line) -> WaitPoint& {
      WaitPoint& w = out.emplace_back();
      w.kind = kind;
      w.saga = saga.name;
      w.where = std::move(where);
      w.line = line;
      if (ns == kNone) {
        w.reasons.push_back(fmt::format("NEW has no saga '{}'", saga.name));
      } else if (params_text(saga) != params_text(np().sagas[ns])) {
        // Parameters are bound before any code runs: every point depends on them.
        w.reasons.push_back(fmt::format("the parameters differ: OLD ({}), NEW ({})",
                                        params_text(saga), params_text(np().sagas[ns])));
      }
      return w;
    };
    finish(point(WaitKind::kStart, "start", saga.line));
    for (uint32_t k = 0; k < op().steps.size(); ++k) {
      const bytecode::Step& step = op().steps[k];
      if (step.saga != s) continue;
      const bool sleeps = op().actions[step.action].name == "sleep";
      WaitPoint& w =
          point(WaitKind::kAttempt, fmt::format("step {}{}", step.name, sleeps ? " (sleep)" : ""),
                step.line);
      w.step = k;
      if (w.reasons.empty()) attempt_verdict(k, w);
      finish(w);
    }
    for (uint32_t b = 0; b < op().blocks.size(); ++b) {
      const bytecode::Block& block = op().blocks[b];
      if (block.saga != s) continue;
      WaitPoint& w = point(WaitKind::kJoin, "join of " + block_name(block), block.line);
      w.block = b;
      if (w.reasons.empty()) join_verdict(b, w);
      finish(w);
      for (uint32_t i = 0; i < block.branches.size(); ++i) {
        WaitPoint& e =
            point(WaitKind::kEnded,
                  fmt::format(
                      "end of {} {}",
                      block.kind == bytecode::Block::Kind::Parallel ? "branch" : "an iteration of",
                      block.branches[i].name),
                  block.line);
        e.block = b;
        e.branch = i;
        if (e.reasons.empty()) ended_verdict(b, i, e);
        finish(e);
      }
    }
    for (uint32_t k = 0; k < op().steps.size(); ++k) {
      const bytecode::Step& step = op().steps[k];
      if (step.saga != s || step.undo_pc == kNone) continue;
      WaitPoint& w = point(WaitKind::kUndo, "undo of " + step.name, step.line);
      w.step = k;
      if (w.reasons.empty()) undo_verdict(k, w);
      finish(w);
    }
  }

  static void finish(WaitPoint& w) { w.safe = w.reasons.empty(); }

  static std::string block_name(const bytecode::Block& b) {
    std::string names;
    for (const bytecode::Branch& br : b.branches) names += (names.empty() ? "" : ", ") + br.name;
    return b.kind == bytecode::Block::Kind::Parallel ? "parallel (" + names + ")"
                                                     : "foreach " + names;
  }

  static std::string params_text(const bytecode::Saga& s) {
    std::string t;
    for (const bytecode::Param& p : s.params) {
      t += fmt::format("{}{}: {}", t.empty() ? "" : ", ", p.name, bytecode::to_string(p.type));
    }
    return t;
  }

  // An attempt of step k (or its backoff, or a sleep): the same step, in the
  // same place, reached by the same code, with the same undos behind it.
  void attempt_verdict(uint32_t k, WaitPoint& w) {
    const bytecode::Step& step = op().steps[k];
    const uint32_t nk = (*steps_)[k];
    if (nk == kNone) {
      w.reasons.push_back(fmt::format("NEW has no step '{}' in saga '{}'", step.name, w.saga));
      return;
    }
    same_prefix(oc_.invoke_pc_of(k), nc_.invoke_pc_of(nk), kNone, kNone, w);
    if (w.reasons.empty()) same_undos(log_steps_before(oc_, oc_.invoke_pc_of(k)), w);
  }

  void join_verdict(uint32_t b, WaitPoint& w) {
    const uint32_t nb = (*blocks_)[b];
    if (nb == kNone) {
      w.reasons.push_back(fmt::format("NEW has no {} at this place", block_name(op().blocks[b])));
      return;
    }
    // The block's own branches are running: each fiber is judged where it waits.
    same_prefix(oc_.join_pc(b), nc_.join_pc(nb), b, nb, w);
    if (w.reasons.empty()) same_undos(log_steps_before(oc_, oc_.join_pc(b)), w);
  }

  // An ended branch or iteration: it ran its whole code, which NEW must
  // have too, since its bindings and log reach the join as they are.
  void ended_verdict(uint32_t b, uint32_t i, WaitPoint& w) {
    const uint32_t nb = (*blocks_)[b];
    if (nb == kNone) {
      w.reasons.push_back(fmt::format("NEW has no {} at this place", block_name(op().blocks[b])));
      return;
    }
    const Region* o = oc_.branch_region(b, i);
    const Region* n = nc_.branch_region(nb, i);
    if (o == nullptr || n == nullptr || o->end == o->begin || n->end == n->begin) {
      w.reasons.push_back("its code cannot be located");
      return;
    }
    same_prefix(o->end - 1, n->end - 1, kNone, kNone, w);
    if (w.reasons.empty()) same_undos(log_steps_before(oc_, o->end - 1), w);
  }

  // Compensating at step k: the undo running, and the undos still to run.
  void undo_verdict(uint32_t k, WaitPoint& w) {
    if ((*steps_)[k] == kNone) {
      w.reasons.push_back(
          fmt::format("NEW has no step '{}' in saga '{}'", op().steps[k].name, w.saga));
      return;
    }
    std::vector<uint32_t> steps = log_steps_before(oc_, oc_.invoke_pc_of(k));
    steps.insert(steps.begin(), k);
    same_undos(steps, w);
  }

  // The code of the region up to and including old pc `o` and new pc `n`.
  void same_prefix(uint32_t o, uint32_t n, uint32_t skip_old, uint32_t skip_new, WaitPoint& w) {
    const Region* orr = oc_.region_at(o);
    const Region* nr = nc_.region_at(n);
    if (orr == nullptr || nr == nullptr) {
      w.reasons.push_back("its code cannot be located");
      return;
    }
    if (oc_.region_path(*orr) != nc_.region_path(*nr)) {
      w.reasons.push_back(fmt::format("it is in {} in OLD but in {} in NEW", oc_.region_path(*orr),
                                      nc_.region_path(*nr)));
      return;
    }
    Prefix po = oc_.prefix(*orr, o, skip_old);
    Prefix pn = nc_.prefix(*nr, n, skip_new);
    if (po.lines == pn.lines) return;
    std::set<std::string> old_steps, new_steps;
    for (uint32_t s : po.steps) old_steps.insert(op().steps[s].name);
    for (uint32_t s : pn.steps) {
      const std::string& name = np().steps[s].name;
      new_steps.insert(name);
      if (!old_steps.count(name)) {
        w.reasons.push_back(fmt::format(
            "NEW runs step '{}' (line {}) before this point: an instance waiting here never ran it",
            name, np().steps[s].line));
      }
    }
    for (uint32_t s : po.steps) {
      const std::string& name = op().steps[s].name;
      if (!new_steps.count(name)) {
        w.reasons.push_back(
            fmt::format("step '{}' (line {}) ran before this point, and NEW does not run it there",
                        name, op().steps[s].line));
      }
    }
    if (!w.reasons.empty()) return;
    size_t i = 0;
    while (i < po.lines.size() && i < pn.lines.size() && po.lines[i] == pn.lines[i]) ++i;
    const uint32_t ol = i < po.pcs.size() ? op().line_at(po.pcs[i]).line : 0;
    const uint32_t nl = i < pn.pcs.size() ? np().line_at(pn.pcs[i]).line : 0;
    w.reasons.push_back(fmt::format(
        "the code before this point differs (OLD line {}, NEW line {}): an instance waiting here "
        "ran OLD's",
        ol, nl));
  }

  // Each step that may be on the log exists in NEW with the same undo.
  void same_undos(const std::vector<uint32_t>& steps, WaitPoint& w) {
    std::set<uint32_t> seen;
    for (uint32_t k : steps) {
      if (!seen.insert(k).second) continue;
      const bytecode::Step& step = op().steps[k];
      const uint32_t nk = (*steps_)[k];
      if (nk == kNone) {
        w.reasons.push_back(fmt::format(
            "step '{}' may be on the compensation log, and NEW has no such step", step.name));
      } else if (oc_.undo_text(k) != nc_.undo_text(nk)) {
        w.reasons.push_back(fmt::format(
            "the undo of step '{}' (line {}) differs in NEW: the step may have to be undone as "
            "OLD undoes it",
            step.name, step.line));
      }
    }
  }
};

}  // namespace

Diff diff(const runtime::LinkedProgram& old_program, const runtime::LinkedProgram& new_program) {
  return Differ(old_program, new_program).run();
}

}  // namespace saga::migrate
