// The listener of `sagactl worker --listen HOST:PORT` (README, "The listener").
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "saga/engine.hpp"
#include "saga/metrics.hpp"
#include "saga/serve.hpp"
#include "sagactl/commands.hpp"

namespace saga::cli {

struct ListenArgs {
  std::string listen;         // Empty: no listener.
  std::string token_file;     // --admin-token-file.
  bool public_reads = false;  // --public-read: reads need no token from other hosts.
  // --program FILE (repeatable): the programs whose triggers the worker
  // serves (events_commands.cpp, serve_programs).
  std::vector<std::string> programs;
};

// Starts the listener serving `engine`'s database; prints the address it
// bound ("sagactl: listening on http://127.0.0.1:PORT/", PORT the real one
// when 0 was asked for). Null on failure, with the error printed and `exit`
// set (kExitUsage for a bad address or a non-loopback host without a token,
// kExitError for an unreadable token file or a port that cannot be bound).
// `metrics`, when set, is served at GET /metrics.
std::unique_ptr<serve::Server> start_listener(const ListenArgs& args, Engine& engine,
                                              std::shared_ptr<Metrics> metrics,
                                              std::function<std::string()> not_ready, int& exit);

}  // namespace saga::cli
