// History event kinds (events.def) as a constant table: the names the engine
// writes into HistoryEvent::kind, and what each means. Header-only.
#pragma once

#include <cstdint>
#include <string_view>

namespace saga {

enum class EventKind : uint8_t {
#define EVENT(name, stored, tone, doc) name,
#include "saga/events.def"
#undef EVENT
};

enum class EventStorage : uint8_t { kStored, kLive };
enum class EventTone : uint8_t { kGood, kBad, kUndo, kInfo };

struct EventInfo {
  std::string_view name;
  EventStorage storage;
  EventTone tone;
  std::string_view doc;
};

inline constexpr EventInfo kEvents[] = {
#define EVENT(name, stored, tone, doc) {#name, EventStorage::stored, EventTone::tone, doc},
#include "saga/events.def"
#undef EVENT
};

constexpr const EventInfo& event_info(EventKind kind) {
  return kEvents[static_cast<uint8_t>(kind)];
}

constexpr std::string_view event_name(EventKind kind) {
  return event_info(kind).name;
}

// The row of a kind by name; null for a name that is not one.
constexpr const EventInfo* find_event(std::string_view name) {
  for (const EventInfo& e : kEvents) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace saga
