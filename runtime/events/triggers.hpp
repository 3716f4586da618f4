// The input a trigger gives the saga it starts (bytecode::Trigger): each
// argument a constant, or a path read from the incoming event. Pure: used by
// Engine::publish (runtime/engine/engine.cpp), tested on its own.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/bytecode/program.hpp"
#include "saga/status.hpp"

namespace saga::runtime {

// The saga input of `trigger` for `event` (a validated CloudEvent in
// structured form). kInvalidArgument naming the path when the event lacks
// what an argument reads ("event.data.order is missing").
Result<nlohmann::json> trigger_input(const bytecode::Trigger& trigger, const nlohmann::json& event);

}  // namespace saga::runtime
