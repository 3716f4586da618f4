// Incoming CloudEvents 1.0 (https://cloudevents.io): how an event reaches
// the engine (Engine::publish, POST /events) and what it answers. An event
// is handled in its structured form, a JSON object with at least
// `specversion` "1.0", `id`, `source` and `type` (non-empty strings); the
// HTTP binary mode (`ce-*` headers, the body as `data`) is turned into that
// form first. docs/events.md, "Events in", has the whole contract.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "saga/status.hpp"

namespace saga {

// What Engine::publish did with an event.
struct PublishResult {
  // An event with the same (source, id) was recorded before: nothing was
  // started now; the other fields are those of the first delivery.
  bool duplicate = false;
  // Some trigger of a served program names the event's type, or some
  // instance's `await event` fits it.
  bool matched = false;
  std::vector<std::string> started;  // Ids of the instances it started.
  // Ids of the instances it was handed to: an `await event` of theirs fits it.
  std::vector<std::string> woke;
  std::string note;                  // Why a matching trigger started nothing.
  int64_t seq = 0;                   // The event's place in the store's record.
};

// Ok when `event` is a CloudEvent 1.0 in structured form, else
// kInvalidArgument naming the first problem (a missing or empty required
// attribute, another specversion, an attribute of the wrong type).
Status validate_cloudevent(const nlohmann::json& event);

// The structured form of a request body sent with
// `Content-Type: application/cloudevents+json`: the JSON object, validated.
// kInvalidArgument for a body that is not JSON or not a valid event.
Result<nlohmann::json> cloudevent_from_structured(std::string_view body);

// The structured form of a binary-mode request: every `ce-NAME` header
// (names in lower case) becomes attribute NAME, `content-type` becomes
// `datacontenttype`, and the body becomes `data`: parsed when the content
// type is JSON (application/json or +json), else kept as a string.
// kInvalidArgument naming the problem (no ce-specversion, JSON that does not
// parse, a missing required attribute).
Result<nlohmann::json> cloudevent_from_binary(const std::map<std::string, std::string>& headers,
                                              std::string_view body);

}  // namespace saga
