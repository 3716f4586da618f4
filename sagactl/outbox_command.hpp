// Events out from sagactl (outbox_command.cpp, docs/events.md).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "saga/http.hpp"
#include "saga/outbox.hpp"
#include "sagactl/commands.hpp"

namespace saga::cli {

// sagactl worker --sink TYPE=URL (repeatable) --notify URL.
struct OutboxArgs {
  std::vector<std::string> sinks;
  std::string notify;
};
void add_outbox_options(CLI::App* worker, OutboxArgs& args);
// Whether the worker runs a relay: some sink or --notify was given.
bool wants_relay(const OutboxArgs& args);
// The sinks by event type (--notify's URL for the two notice types, then
// every --sink, a later one winning); nullopt (the error printed) for a
// malformed one.
std::optional<std::map<std::string, std::string>> sink_map(const OutboxArgs& args);
// A relay on `store` posting through `http`. Its claim on an event lasts
// `lease`, the worker's --lease: after a kill -9 the events it was
// delivering go out again once that passed, like the worker's instances.
std::unique_ptr<Relay> start_relay(std::map<std::string, std::string> sinks, Store& store,
                                   HttpClient& http, std::chrono::milliseconds lease);

// sagactl outbox ls [--dead|--pending|--delivered] [--json] [--limit N].
int outbox_ls(const DbArgs& args, const std::string& which, size_t limit);

}  // namespace saga::cli
