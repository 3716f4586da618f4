// Signals to instances: `await signal NAME timeout D -> v` in a saga waits
// for one. A signal is an inbox message (saga/store.hpp) of kind "signal"
// whose payload is {"name": NAME, "data": JSON}: posted durably by anyone
// (sagactl signal, POST /instances/{id}/signals/{name}, Engine::signal, a
// host's post_signal), kept in the inbox until an await of that name takes
// it (a signal posted before the await is reached waits for it; several of
// one name are taken in post order), and consumed in the same transaction
// as the transition that hands its data to the saga: once, never lost.
// What an await does with it is the saga machine's (runtime/engine/
// machine.hpp, signal_arrived / signal_timed_out).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "saga/status.hpp"
#include "saga/store.hpp"

namespace saga {

// InboxMessage::kind of a signal.
inline constexpr std::string_view kSignalKind = "signal";

// Why `name` cannot name a signal (empty, over 200 bytes, or with
// characters other than letters, digits, '_', '-' and '.'); empty when it
// can. The language's names (identifiers) always can.
std::string check_signal_name(std::string_view name);

// The message that carries signal `name` with data `data_json` (JSON text;
// empty for null) to instance `id`; kInvalidArgument for a bad name or data
// that is not JSON.
Result<InboxMessage> signal_message(const std::string& id, std::string_view name,
                                    const std::string& data_json, std::string message_id,
                                    int64_t now_ms);

// The name and data (JSON text, "null" when none) of a signal message; false
// when `m` is not a well-formed signal.
bool read_signal(const InboxMessage& m, std::string& name, std::string& data_json);

// Checks and posts a signal. Errors, each with nothing posted: kInvalidArgument
// (name or data), kNotFound (no such instance), kFailedPrecondition (the
// instance has finished: "instance ID is completed: a finished instance takes
// no signal"), or the store's error. A running instance (or a pending, paused
// or stuck one) takes it, whether or not it waits for it yet.
Result<InboxMessage> post_signal(Store& store, const std::string& id, std::string_view name,
                                 const std::string& data_json, std::string message_id,
                                 int64_t now_ms);

}  // namespace saga
