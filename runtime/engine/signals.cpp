// Signals to instances (saga/signals.hpp): the message, its checks and the
// post. What an await does with a signal is the saga machine's (machine.cpp,
// signal_arrived and signal_timed_out); how a run keeps the signals nothing
// awaits yet is the engine's (engine.cpp, take_signal).
#include "saga/signals.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace saga {

namespace {
constexpr size_t kMaxSignalName = 200;
}  // namespace

std::string check_signal_name(std::string_view name) {
  if (name.empty()) return "a signal needs a name";
  if (name.size() > kMaxSignalName) {
    return fmt::format("a signal name has at most {} bytes (this one has {})", kMaxSignalName,
                       name.size());
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return fmt::format(
          "'{}' is not a signal name: use letters, digits, '_', '-' and '.' (as the saga's "
          "`await signal NAME` writes it)",
          name);
    }
  }
  return {};
}

Result<InboxMessage> signal_message(const std::string& id, std::string_view name,
                                    const std::string& data_json, std::string message_id,
                                    int64_t now_ms) {
  if (std::string why = check_signal_name(name); !why.empty()) {
    return Status(StatusCode::kInvalidArgument, why);
  }
  nlohmann::json data = nullptr;
  if (!data_json.empty()) {
    data = nlohmann::json::parse(data_json, nullptr, false);
    if (data.is_discarded()) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("the signal's data is not JSON: {}", data_json));
    }
  }
  InboxMessage m;
  m.id = std::move(message_id);
  m.instance_id = id;
  m.kind = std::string(kSignalKind);
  m.payload_json = nlohmann::json{{"name", name}, {"data", std::move(data)}}.dump();
  m.posted_ms = now_ms;
  return m;
}

bool read_signal(const InboxMessage& m, std::string& name, std::string& data_json) {
  if (m.kind != kSignalKind) return false;
  const nlohmann::json payload = nlohmann::json::parse(m.payload_json, nullptr, false);
  if (!payload.is_object() || !payload.contains("name") || !payload["name"].is_string()) {
    return false;
  }
  name = payload["name"].get<std::string>();
  data_json = payload.contains("data") ? payload["data"].dump() : "null";
  return true;
}

Result<InboxMessage> post_signal(Store& store, const std::string& id, std::string_view name,
                                 const std::string& data_json, std::string message_id,
                                 int64_t now_ms) {
  auto m = signal_message(id, name, data_json, std::move(message_id), now_ms);
  if (!m.ok()) return m;
  auto row = store.get_instance(id);
  if (!row.ok()) return row.status();
  if (!*row) return Status(StatusCode::kNotFound, fmt::format("no instance {}", id));
  if (is_terminal((*row)->status)) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("instance {} is {}: a finished instance takes no signal", id,
                              to_string((*row)->status)));
  }
  Status s = store.post(m.value());
  if (!s.ok()) return s;
  return m;
}

}  // namespace saga
