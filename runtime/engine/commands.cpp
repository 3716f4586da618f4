// Commands to instances (saga/commands.hpp): the early check and the post.
// What a command does when it is consumed is the saga machine's
// (machine.cpp, message_arrived).
#include "saga/commands.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace saga {

std::string accepted_statuses(Command c) {
  std::string out;
  const uint32_t mask = command_info(c).accepts;
  int n = 0, total = __builtin_popcount(mask);
  for (InstanceStatus s : all_statuses()) {
    if (!command_accepts(c, s)) continue;
    ++n;
    if (n > 1) out += n == total ? " or " : ", ";
    out += to_string(s);
  }
  return fmt::format("a {} instance", out);
}

std::string refusal(Command c, const std::string& id, InstanceStatus s) {
  if (command_accepts(c, s)) return {};
  return fmt::format("instance {} is {}: only {} can be {}", id, to_string(s), accepted_statuses(c),
                     command_info(c).done);
}

Result<InboxMessage> command_message(const std::string& id, const CommandRequest& request,
                                     std::string message_id, int64_t now_ms) {
  nlohmann::json payload = nlohmann::json::object();
  if (!request.note.empty()) payload["note"] = request.note;
  if (!request.result_json.empty()) {
    nlohmann::json result = nlohmann::json::parse(request.result_json, nullptr, false);
    if (result.is_discarded()) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("the result is not JSON: {}", request.result_json));
    }
    payload["result"] = std::move(result);
  }
  InboxMessage m;
  m.id = std::move(message_id);
  m.instance_id = id;
  m.kind = std::string(command_info(request.command).name);
  m.payload_json = payload.empty() ? std::string() : payload.dump();
  m.posted_ms = now_ms;
  return m;
}

Result<InboxMessage> post_command(Store& store, const std::string& id,
                                  const CommandRequest& request, std::string message_id,
                                  int64_t now_ms) {
  auto m = command_message(id, request, std::move(message_id), now_ms);
  if (!m.ok()) return m;
  auto row = store.get_instance(id);
  if (!row.ok()) return row.status();
  if (!*row) return Status(StatusCode::kNotFound, fmt::format("no instance {}", id));
  if (std::string why = refusal(request.command, id, (*row)->status); !why.empty()) {
    return Status(StatusCode::kFailedPrecondition, why);
  }
  Status s = store.post(m.value());
  if (!s.ok()) return s;
  return m;
}

}  // namespace saga
