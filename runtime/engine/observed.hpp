// What the engine tells its EngineObserver (saga/engine.hpp), prepared here
// so that engine.cpp only has the call lines: a program's shape, and the
// store's commit observer. The engine calls nothing of this without an
// observer.
#pragma once

#include <memory>

#include "runtime/bytecode/program.hpp"
#include "saga/engine.hpp"

namespace saga::runtime {

// The names of a program's sagas and steps, by index, for program_linked().
ProgramShape shape_of(const std::string& hash, const bytecode::Program& program);

// Sets options.on_commit to report each group commit to `observer`, unless
// the host set one itself or there is no observer.
void observe_commits(StoreOptions& options, const std::shared_ptr<EngineObserver>& observer);

}  // namespace saga::runtime
