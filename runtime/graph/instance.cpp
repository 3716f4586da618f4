#include "runtime/graph/instance.hpp"

#include <fmt/format.h>

#include "runtime/engine/inspect.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/vm/checkpoint.hpp"

namespace saga::graph {

Result<Graph> instance_graph(Store& store, const InstanceRecord& r, std::string* warning) {
  auto linked = runtime::programs_of(store)(r.program_hash);
  if (!linked.ok()) {
    return Status(linked.status().code(), fmt::format("instance {}: its program {}: {}", r.id,
                                                      r.program_hash, linked.status().message()));
  }
  const runtime::LinkedProgram& lp = *linked.value();
  auto g = build(lp.program, r.saga);
  if (!g.ok()) {
    return Status(g.status().code(), fmt::format("instance {}: {}", r.id, g.status().message()));
  }
  Trace trace;
  trace.status = to_string(r.status);
  auto history = store.history(r.id);
  if (!history.ok()) return history.status();
  for (const HistoryEvent& e : history.value()) {
    trace.history.push_back({e.kind, e.step, e.error_class});
  }
  // Where its fibers wait, from the checkpoint (a finished instance has none
  // that waits; one that cannot be decoded is drawn without).
  if (!r.checkpoint.empty() && !is_terminal(r.status)) {
    std::vector<std::string> fibers;
    for (const FiberRow& f : r.fibers) fibers.push_back(f.state);
    auto state = runtime::decode_checkpoint(lp, r.checkpoint, fibers);
    if (state.ok()) {
      for (const runtime::Fiber& f : state.value().fibers) {
        if (f.wait == runtime::Wait::kJoin) {
          trace.waiting.push_back({Waiting::Kind::kJoin, {}, f.join_block});
        } else if (f.wait == runtime::Wait::kAction || f.wait == runtime::Wait::kUndo) {
          trace.waiting.push_back(
              {f.wait == runtime::Wait::kUndo ? Waiting::Kind::kUndo : Waiting::Kind::kAction,
               runtime::step_name(lp, f), kNoIndex});
        }
      }
    } else if (warning) {
      *warning = fmt::format("instance {}: {}: drawn without its position", r.id,
                             state.status().message());
    }
  }
  overlay(g.value().sagas[0], trace);
  return g;
}

}  // namespace saga::graph
