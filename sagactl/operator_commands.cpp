// sagactl pause, unpause, retry, skip and compensate: an operator's command,
// posted durably to the instance's inbox (saga/commands.hpp). When no other
// engine holds the instance, this command's own engine takes it up and
// carries the command out at once (and runs the instance on to its end, or
// until it waits for an operator again, as `sagactl cancel` does); when a
// worker holds it, the worker notices the message within about 50 ms.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "runtime/value/utf8.hpp"
#include "saga/commands.hpp"
#include "sagactl/commands.hpp"

namespace saga::cli {

namespace {

bool consumed(Store& store, const std::string& id, const std::string& message_id) {
  auto inbox = store.inbox(id);
  if (!inbox.ok()) return false;
  for (const InboxMessage& m : inbox.value()) {
    if (m.id == message_id) return false;
  }
  return true;
}

}  // namespace

bool consumed_within(Store& store, const std::string& id, const std::string& message_id,
                     std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (!consumed(store, id, message_id)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int exit_for(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kFailedPrecondition:
      return kExitWrongState;
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitError;
  }
}

int operator_command(Command command, const OperatorArgs& args) {
  CommandRequest request;
  request.command = command;
  request.note = args.note;
  if (args.result_given) {
    request.result_json = args.result;
    if (request.result_json.empty()) {
      print_error("--result wants a JSON value, got nothing");
      return kExitUsage;
    }
  }
  // Not serve_inbox: this process carries out its own command only, never
  // another operator's posted meanwhile for some other instance.
  auto rt = open_engine(args.db.db, args.db.durability, args.db.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  const std::string_view name = command_info(command).name;
  auto posted = engine.command(args.id, request);
  if (!posted.ok()) {
    print_error(fmt::format("{}: {}", name, posted.status().message()));
    return exit_for(posted.status());
  }
  // Carried out here when no other engine holds the instance (the claim
  // fails while a live worker does).
  auto taken = engine.resume(args.id);
  if (!taken.ok()) {
    print_error(taken.status().message());
    return kExitError;
  }
  // Carried out here (the instance was free) or by the worker that runs it:
  // either way the message is consumed once it is acted on. What this
  // engine took up, it runs on until the instance ends or waits again.
  const bool done = consumed_within(engine.store(), args.id, posted->id, std::chrono::seconds(5));
  auto info = engine.wait(args.id, std::chrono::hours(1));
  if (!info.ok()) {
    print_error(info.status().message());
    return kExitError;
  }
  if (args.db.json) {
    nlohmann::json out{{"id", args.id},
                       {"command", name},
                       {"message_id", posted->id},
                       {"carried_out", done},
                       {"status", to_string(info->status)}};
    std::cout << json_text(out) << "\n";
  } else {
    std::cout << fmt::format("{}: {}\n", args.id, to_string(info->status));
    if (!done) {
      std::cerr << fmt::format(
          "{} posted: the engine that holds the instance has not acted on it yet (a worker "
          "notices within about 50 ms; a stopped one when it starts)\n",
          name);
    }
  }
  if (info->status == InstanceStatus::kStuck) return kExitStuck;
  return kExitOk;
}

}  // namespace saga::cli
