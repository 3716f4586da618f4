// What the engine tells its EngineObserver (saga/engine.hpp), prepared here
// so that engine.cpp only has the call lines: a program's shape, and the
// store's commit observer. The engine calls nothing of this without an
// observer.
#pragma once

#include <boost/container/small_vector.hpp>
#include <memory>
#include <string_view>

#include "runtime/bytecode/program.hpp"
#include "saga/engine.hpp"

namespace saga::runtime {

// The kinds of a transition's events (a 3-step saga's have at most 3).
using EventKinds = boost::container::small_vector<EventKind, 6>;

// Adds the kind named `kind` (events.def); a name that is none is left out.
void add_kind(EventKinds& kinds, std::string_view kind);

// The names of a program's sagas and steps, by index, for program_linked().
ProgramShape shape_of(const std::string& hash, const bytecode::Program& program);

// Sets options.on_commit to report each group commit to `observer`, unless
// the host set one itself or there is no observer.
void observe_commits(StoreOptions& options, const std::shared_ptr<EngineObserver>& observer);

}  // namespace saga::runtime
