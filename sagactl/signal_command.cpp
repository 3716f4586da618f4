// sagactl signal ID NAME [--data JSON] [--json]: posts a signal to the
// instance's inbox (saga/signals.hpp), durably, and reports whether the
// engine that runs the instance took it. This command never runs the
// instance itself: the worker (or `sagactl run`) that holds it notices the
// post within about 50 ms, and a stopped one finds it with the row when it
// starts. A signal that no await has reached yet is kept, unconsumed.
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "saga/signals.hpp"
#include "sagactl/commands.hpp"

namespace saga::cli {
namespace {

// How long to wait for a running engine to take the signal before saying it
// is kept: the inbox watch's period (50 ms) with room for a loaded machine.
constexpr auto kTakenWithin = std::chrono::milliseconds(1000);

}  // namespace

int signal(const SignalArgs& args) {
  if (args.data_given && args.data.empty()) {
    print_error("signal: --data wants a JSON value, got nothing");
    return kExitUsage;
  }
  auto rt = open_engine(args.db.db, "full", args.db.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto posted = engine.signal(args.id, args.name, args.data);
  if (!posted.ok()) {
    print_error(fmt::format("signal: {}", posted.status().message()));
    return exit_for(posted.status());
  }
  const bool taken = consumed_within(engine.store(), args.id, posted->id, kTakenWithin);
  auto info = engine.get(args.id);
  const std::string status = info.ok() ? std::string(to_string(info->status)) : "unknown";
  if (args.db.json) {
    std::cout << json_text(nlohmann::json{{"id", args.id},
                                          {"signal", args.name},
                                          {"message_id", posted->id},
                                          {"consumed", taken},
                                          {"status", status}})
              << "\n";
  } else {
    std::cout << fmt::format("{}: signal '{}' {} ({})\n", args.id, args.name,
                             taken ? "consumed" : "kept", status);
  }
  if (!taken) {
    std::cerr << fmt::format(
        "signal '{}' posted and kept in the inbox: the instance takes it when it reaches `await "
        "signal {}` (or when a worker runs it: none has taken it yet)\n",
        args.name, args.name);
  }
  return kExitOk;
}

}  // namespace saga::cli
