// The inspect view of an instance (sagactl show, Engine::inspect): its row,
// its decoded checkpoint (variables, compensation stack, what it waits for),
// its history and its dead letters, as one JSON object. It only reads the
// store, so a reader process builds it without an engine (sagactl show opens
// the database read-only). The shape is documented at Engine::inspect.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/vm/vm.hpp"
#include "saga/store.hpp"

namespace saga::runtime {

// Finds the linked program of a hash (an engine's cache, or a fresh load
// from the store).
using ProgramLookup =
    std::function<Result<std::shared_ptr<const LinkedProgram>>(const std::string& hash)>;

// kNotFound for an unknown id; store errors as they are. A checkpoint that
// cannot be decoded (or whose program cannot be loaded) is reported in the
// view as "checkpoint_error", not as a failure: the rest is still shown.
Result<nlohmann::json> inspect(Store& store, const std::string& id, const ProgramLookup& program);

// A ProgramLookup that reads, verifies and links the program from `store`.
ProgramLookup programs_of(Store& store);

// A stored JSON text as JSON: null when empty, and the text itself (as a
// string, scrubbed) when it does not parse, so that a damaged row is shown
// rather than breaking the reader.
nlohmann::json json_or_text(const std::string& text);

}  // namespace saga::runtime
