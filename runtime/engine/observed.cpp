// The engine's side of EngineObserver: see observed.hpp.
#include "runtime/engine/observed.hpp"

namespace saga::runtime {

void add_kind(EventKinds& kinds, std::string_view kind) {
  if (const EventInfo* info = find_event(kind))
    kinds.push_back(static_cast<EventKind>(info - kEvents));
}

ProgramShape shape_of(const std::string& hash, const bytecode::Program& program) {
  ProgramShape shape;
  shape.hash = hash;
  shape.sagas.reserve(program.sagas.size());
  for (const bytecode::Saga& s : program.sagas) shape.sagas.push_back(s.name);
  shape.steps.reserve(program.steps.size());
  for (const bytecode::Step& s : program.steps) {
    shape.steps.push_back(
        {s.name, s.saga, s.undo_action != bytecode::kNone || s.undo_pc != bytecode::kNone});
  }
  return shape;
}

void observe_commits(StoreOptions& options, const std::shared_ptr<EngineObserver>& observer) {
  if (!observer || options.on_commit) return;
  options.on_commit = [observer](size_t transitions, std::chrono::nanoseconds took) {
    observer->store_committed(transitions, took);
  };
}

}  // namespace saga::runtime
