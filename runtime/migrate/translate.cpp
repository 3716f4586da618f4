// Rewriting an instance's state for the new program, and moving the
// instances of a store (migrate.hpp). Only positions change: a fiber's pc
// keeps its offset in its region (the regions' code is the same up to it:
// that is what made the wait point safe), slots, steps and blocks go to the
// ones of the same name; values, attempts, wake times and undo arguments
// stay as they are.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/migrate/migrate.hpp"
#include "runtime/migrate/regions.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "saga/events.hpp"

namespace saga::migrate {

using bytecode::kNone;
using runtime::Completed;
using runtime::Fiber;
using runtime::InstanceState;
using runtime::Wait;

const WaitPoint* wait_point_of(const Diff& d, const runtime::LinkedProgram& old_program,
                               const InstanceState& state, const Fiber& f) {
  if (state.phase == runtime::Phase::kDone) return nullptr;
  const std::string& saga = old_program.program.sagas[state.saga].name;
  auto find = [&](WaitKind kind, uint32_t step, uint32_t block, uint32_t branch) {
    for (const WaitPoint& w : d.points) {
      if (w.kind == kind && w.saga == saga && w.step == step && w.block == block &&
          w.branch == branch) {
        return &w;
      }
    }
    return static_cast<const WaitPoint*>(nullptr);
  };
  switch (f.wait) {
    case Wait::kAction:
      return find(WaitKind::kAttempt, f.step, kNone, 0);
    case Wait::kUndo:
      return find(WaitKind::kUndo, f.step, kNone, 0);
    case Wait::kJoin:
      return find(WaitKind::kJoin, kNone, f.join_block, 0);
    case Wait::kNone:
      if (!f.ended || f.block == kNone) return nullptr;
      return find(WaitKind::kEnded, kNone, f.block,
                  old_program.program.blocks[f.block].kind == bytecode::Block::Kind::Parallel
                      ? f.index
                      : 0);
  }
  return nullptr;
}

namespace {

Status pinned(std::string why) {
  return {StatusCode::kFailedPrecondition, std::move(why)};
}

// A compensation log with its steps renumbered; false naming the first step
// NEW lacks.
bool map_log(std::vector<Completed>& log, const std::vector<uint32_t>& steps,
             const bytecode::Program& old_p, std::string& missing) {
  for (Completed& c : log) {
    if (c.step != kNone) {
      const uint32_t to = steps[c.step];
      if (to == kNone) {
        missing = old_p.steps[c.step].name;
        return false;
      }
      c.step = to;
    }
    if (c.detail->group.empty()) continue;
    for (std::vector<Completed>& branch : c.detail.mut().group) {
      if (!map_log(branch, steps, old_p, missing)) return false;
    }
  }
  return true;
}

}  // namespace

Result<InstanceState> translate(const Diff& d, const runtime::LinkedProgram& old_program,
                                const runtime::LinkedProgram& new_program,
                                const InstanceState& state) {
  const bytecode::Program& op = old_program.program;
  const bytecode::Program& np = new_program.program;
  if (state.phase == runtime::Phase::kDone) return pinned("it has finished");
  for (const Fiber& f : state.fibers) {
    const WaitPoint* w = wait_point_of(d, old_program, state, f);
    if (w == nullptr) {
      if (f.wait == Wait::kNone && !f.ended) continue;  // It waits for nothing.
      return pinned("it waits at a place that OLD's wait points do not list");
    }
    if (!w->safe) return pinned(fmt::format("at {}: {}", w->where, w->reasons.front()));
  }
  const SagaMap& saga = d.sagas[state.saga];
  if (saga.new_saga == kNone)
    return pinned(fmt::format("NEW has no saga '{}'", op.sagas[state.saga].name));
  const Code oc(old_program), nc(new_program);
  InstanceState t = state;
  t.saga = saga.new_saga;
  auto slot = [&](uint32_t s) { return s < saga.slots.size() ? saga.slots[s] : kNone; };
  t.slots.assign(np.sagas[saga.new_saga].slot_names.size(), Value());
  for (uint32_t s = 0; s < state.slots.size(); ++s) {
    if (slot(s) != kNone) t.slots[slot(s)] = state.slots[s];
  }
  for (Fiber& f : t.fibers) {
    auto step = [&](uint32_t s) { return s == kNone ? kNone : d.steps[s]; };
    auto block = [&](uint32_t b) { return b == kNone ? kNone : d.blocks[b]; };
    if (f.wait == Wait::kUndo) {
      // The undo awaited runs from its arguments; the pc is not used until
      // the next undo sets it (runtime/engine/machine.cpp, next_undo).
      if (step(f.step) == kNone) return pinned("the undo it runs is not in NEW");
      f.pc = np.steps[step(f.step)].undo_pc;
    } else {
      // The region it runs in: the saga's main code (the root), or its
      // branch or loop body (an iteration runs the body: branch 0).
      const Region* r = nullptr;
      const Region* nr = nullptr;
      if (f.block == kNone) {
        r = oc.region_at(op.sagas[state.saga].entry_pc);
        nr = nc.region_at(np.sagas[saga.new_saga].entry_pc);
      } else {
        const uint32_t branch =
            op.blocks[f.block].kind == bytecode::Block::Kind::Parallel ? f.index : 0;
        r = oc.branch_region(f.block, branch);
        if (block(f.block) != kNone) nr = nc.branch_region(block(f.block), branch);
      }
      if (r == nullptr || nr == nullptr || f.pc < r->begin || f.pc > r->end) {
        return pinned("the code it stands in is not in NEW");
      }
      f.pc = nr->begin + (f.pc - r->begin);
    }
    f.step = step(f.step);
    f.block = block(f.block);
    f.join_block = block(f.join_block);
    std::string missing;
    if (!map_log(f.completed, d.steps, op, missing)) {
      return pinned(
          fmt::format("step '{}' is on its compensation log, and NEW has no such step", missing));
    }
    if (!f.detail->locals.empty()) {
      std::vector<std::pair<uint32_t, Value>> locals;
      for (auto& [s, v] : f.detail.mut().locals) {
        if (slot(s) != kNone) locals.emplace_back(slot(s), std::move(v));
      }
      f.detail.mut().locals = std::move(locals);
    }
  }
  // What a resume will do with it: decode it against NEW, which checks
  // every index, pc and stack depth.
  runtime::EncodedState encoded = runtime::encode_state(t);
  auto decoded = runtime::decode_checkpoint(new_program, encoded.instance, encoded.fibers);
  if (!decoded.ok()) {
    return pinned("its translated checkpoint does not fit NEW: " + decoded.status().message());
  }
  return decoded;
}

Result<std::vector<Outcome>> move_instances(Store& store, const Diff& d,
                                            const runtime::LinkedProgram& old_program,
                                            const runtime::LinkedProgram& new_program,
                                            const MoveOptions& options) {
  auto rows = store.list_unfinished();
  if (!rows.ok()) return rows.status();
  std::vector<Outcome> out;
  for (const InstanceRecord& rec : rows.value()) {
    if (rec.program_hash != d.old_hash) continue;
    Outcome& o = out.emplace_back();
    o.id = rec.id;
    InstanceMove move;
    move.id = rec.id;
    move.from_program = d.old_hash;
    move.to_program = d.new_hash;
    move.expected_checkpoint = rec.checkpoint;
    move.expected_fibers = rec.fibers;
    std::vector<std::string> at;
    if (rec.status == InstanceStatus::kPending || rec.checkpoint.empty()) {
      // Not started: it starts from the top of NEW's saga, with its input.
      at.push_back("start");
      const WaitPoint* w = nullptr;
      for (const WaitPoint& p : d.points) {
        if (p.kind == WaitKind::kStart && p.saga == rec.saga) w = &p;
      }
      const uint32_t saga = new_program.program.find_saga(rec.saga);
      auto input = Value::from_json_text(rec.input_json);
      if (w == nullptr || !w->safe) {
        o.why = w ? "at start: " + w->reasons.front() : "OLD has no saga '" + rec.saga + "'";
      } else if (!input.ok() || saga == kNone) {
        o.why = "its input cannot be read";
      } else if (Status ok =
                     runtime::validate_input(new_program.program.sagas[saga], input.value());
                 !ok.ok()) {
        o.why = "its input does not fit NEW: " + ok.message();
      }
      move.checkpoint = rec.checkpoint;
    } else {
      std::vector<std::string> fibers;
      for (const FiberRow& f : rec.fibers) fibers.push_back(f.state);
      auto state = runtime::decode_checkpoint(old_program, rec.checkpoint, fibers);
      if (!state.ok()) {
        o.why = "its checkpoint cannot be decoded: " + state.status().message();
      } else {
        for (const Fiber& f : state->fibers) {
          if (const WaitPoint* w = wait_point_of(d, old_program, state.value(), f)) {
            if (std::find(at.begin(), at.end(), w->where) == at.end()) at.push_back(w->where);
          }
        }
        auto moved = translate(d, old_program, new_program, state.value());
        if (!moved.ok()) {
          o.why = moved.status().message();
        } else {
          runtime::EncodedState e = runtime::encode_state(moved.value());
          move.checkpoint = std::move(e.instance);
          for (size_t i = 1; i < moved->fibers.size(); ++i) {
            move.fibers.push_back({moved->fibers[i].id, std::move(e.fibers[i - 1])});
          }
        }
      }
    }
    for (const std::string& w : at) o.where += (o.where.empty() ? "" : ", ") + w;
    if (o.why.empty() && !rec.owner.empty() &&
        !(options.claim_gone && options.claim_gone(rec.owner, rec.lease_until_ms))) {
      o.why = fmt::format("it is being run by the engine {}: stop it first", rec.owner);
    }
    if (!o.why.empty()) continue;
    if (options.dry_run) {
      o.moved = true;
      continue;
    }
    nlohmann::json data = {{"from", d.old_hash}, {"to", d.new_hash}, {"at", at}};
    move.event = HistoryEvent{options.now_ms,
                              std::string(event_name(EventKind::migrated)),
                              {},
                              0,
                              {},
                              fmt::format("migrated from {} to {}", d.old_hash, d.new_hash),
                              data.dump()};
    Status s = store.move_instance(move, options.claim_gone);
    if (s.ok()) {
      o.moved = true;
    } else if (s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kNotFound) {
      o.why = s.message();
    } else {
      return s;
    }
  }
  return out;
}

}  // namespace saga::migrate
