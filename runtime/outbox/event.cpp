// What an outbox row looks like to the world: its stable id, the source of
// an instance's events, the notices of paused and stuck instances, and the
// CloudEvents 1.0 structured-mode JSON a relay sends (docs/events.md).
#include <fmt/format.h>
#include <xxhash.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "saga/outbox.hpp"

namespace saga {

std::string event_source(const std::string& saga, const std::string& instance_id) {
  return fmt::format("/sagas/{}/instances/{}", saga, instance_id);
}

std::string outbox_event_id(const std::string& instance_id, std::string_view position) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, instance_id.data(), instance_id.size());
  XXH3_128bits_update(state, "\0", 1);
  XXH3_128bits_update(state, position.data(), position.size());
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

OutboxEvent notice_event(const std::string& saga, const std::string& instance_id,
                         InstanceStatus status, const HistoryEvent& cause) {
  OutboxEvent e;
  e.type = status == InstanceStatus::kStuck ? kStuckEventType : kPausedEventType;
  e.instance_id = instance_id;
  e.source = event_source(saga, instance_id);
  e.time_ms = cause.time_ms;
  e.id = outbox_event_id(instance_id, fmt::format("{}@{}", e.type, e.time_ms));
  nlohmann::json data = {
      {"saga", saga},          {"instance", instance_id},  {"status", to_string(status)},
      {"step", cause.step},    {"attempt", cause.attempt}, {"error_class", cause.error_class},
      {"error", cause.message}};
  e.data_json = data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return e;
}

namespace {

// RFC 3339 in UTC with milliseconds: 2026-12-01T22:50:00.123Z.
std::string rfc3339(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int64_t rem = ms - static_cast<int64_t>(secs) * 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
}

}  // namespace

std::string cloud_event_json(const OutboxEvent& event) {
  nlohmann::json data = nullptr;
  if (!event.data_json.empty()) {
    data = nlohmann::json::parse(event.data_json, nullptr, /*allow_exceptions=*/false);
    // Written by the engine as JSON; a damaged row is sent as its text.
    if (data.is_discarded()) data = event.data_json;
  }
  nlohmann::json ce = {{"specversion", "1.0"},           {"id", event.id},
                       {"source", event.source},         {"type", event.type},
                       {"time", rfc3339(event.time_ms)}, {"datacontenttype", "application/json"},
                       {"sagaseq", event.seq},           {"data", std::move(data)}};
  return ce.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace saga
