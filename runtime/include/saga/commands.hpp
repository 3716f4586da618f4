// Commands to instances (commands.def): cancel and the operator commands,
// each a message in the instance's durable inbox (saga/store.hpp). Posting
// records the request durably; the engine that runs the database consumes
// it in the transition that carries it out (the saga machine decides what it
// does, runtime/engine/machine.hpp). sagactl, the HTTP API and host code post
// through post_command() (no engine needed) or Engine::command() (which also
// carries it out at once when that engine runs the instance).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "saga/status.hpp"
#include "saga/store.hpp"

namespace saga {

enum class Command : uint8_t {
#define COMMAND(name, accepts, done, doc) name,
#include "saga/commands.def"
#undef COMMAND
};

// One bit per InstanceStatus, for CommandInfo::accepts.
enum StatusBit : uint32_t {
  kPendingBit = 1u << static_cast<int>(InstanceStatus::kPending),
  kRunningBit = 1u << static_cast<int>(InstanceStatus::kRunning),
  kCompensatingBit = 1u << static_cast<int>(InstanceStatus::kCompensating),
  kStuckBit = 1u << static_cast<int>(InstanceStatus::kStuck),
  kPausedBit = 1u << static_cast<int>(InstanceStatus::kPaused),
};

struct CommandInfo {
  Command command;
  std::string_view name;
  uint32_t accepts;  // StatusBit mask.
  std::string_view done;
  std::string_view doc;
};

inline constexpr CommandInfo kCommands[] = {
#define COMMAND(name, accepts, done, doc) {Command::name, #name, accepts, done, doc},
#include "saga/commands.def"
#undef COMMAND
};

constexpr const CommandInfo& command_info(Command c) {
  return kCommands[static_cast<uint8_t>(c)];
}

constexpr std::optional<Command> find_command(std::string_view name) {
  for (const CommandInfo& c : kCommands) {
    if (c.name == name) return c.command;
  }
  return std::nullopt;
}

constexpr bool command_accepts(Command c, InstanceStatus s) {
  return (command_info(c).accepts & (1u << static_cast<int>(s))) != 0;
}

// "a paused or stuck instance": the statuses a command applies in, for
// messages.
std::string accepted_statuses(Command c);

// Why `c` does not apply to an instance in status `s` ("instance ID is
// completed: only a stuck or paused instance can be retried"); empty when
// it applies.
std::string refusal(Command c, const std::string& id, InstanceStatus s);

struct CommandRequest {
  Command command = Command::cancel;
  std::string note;         // Why (recorded in the history event).
  std::string result_json;  // skip of a forward step: its result (JSON text; empty = null).
};

// The inbox message that carries `request` to instance `id` (payload:
// {"note": ..., "result": ...}); kInvalidArgument when result_json is not
// JSON. `message_id` must be unique (Engine::command uses a UUIDv7).
Result<InboxMessage> command_message(const std::string& id, const CommandRequest& request,
                                     std::string message_id, int64_t now_ms);

// Checks that the command applies to the instance now and posts it. Errors,
// each with nothing posted: kNotFound (no such instance), kFailedPrecondition
// (its status does not take this command: refusal() says why),
// kInvalidArgument (a result that is not JSON), or the store's error. The
// engine running the instance carries it out when it notices (at once in
// the same process through Engine::command; within about 50 ms from another
// process); a stuck or paused instance is taken up by any engine that
// serves the inbox (EngineOptions::serve_inbox: sagactl worker, resume).
Result<InboxMessage> post_command(Store& store, const std::string& id,
                                  const CommandRequest& request, std::string message_id,
                                  int64_t now_ms);

}  // namespace saga
