// The listener's routes for incoming events: POST /events and GET
// /api/events (saga/web.hpp; docs/api.md). The route only tells the two
// CloudEvents HTTP modes apart and maps outcomes to status codes;
// Engine::publish validates, deduplicates and starts. A 202 (or 200 for a
// duplicate) is sent only after the event's record is committed.
#include <fmt/format.h>

#include "runtime/web/html.hpp"
#include "saga/cloudevents.hpp"
#include "saga/engine.hpp"
#include "saga/records_json.hpp"
#include "saga/web.hpp"

namespace saga::web {
namespace {

serve::Response json_body(const nlohmann::json& body, int status) {
  return {status, "application/json", records::text(body), {}};
}

// The event in structured form, from either mode: structured when the
// Content-Type says application/cloudevents+json, binary when a
// ce-specversion header is present.
Result<nlohmann::json> event_of(const serve::Request& req) {
  const std::string type = req.header("content-type");
  const std::string media = type.substr(0, type.find(';'));
  if (media == "application/cloudevents+json") return cloudevent_from_structured(req.body);
  if (media == "application/cloudevents-batch+json") {
    return Status(StatusCode::kInvalidArgument,
                  "batched CloudEvents are not accepted: send one event per request");
  }
  if (!req.header("ce-specversion").empty()) return cloudevent_from_binary(req.headers, req.body);
  return Status(StatusCode::kInvalidArgument,
                fmt::format("not a CloudEvent: send Content-Type: application/cloudevents+json "
                            "(structured mode) or ce-specversion, ce-id, ce-source and ce-type "
                            "headers (binary mode); got Content-Type: {}",
                            type.empty() ? "none" : type));
}

// 202: recorded (started, or unmatched); 200: a duplicate, nothing done;
// 422: recorded, but a matching trigger could not start its saga.
serve::Response post_event(const Context& context, const serve::Request& req) {
  auto event = event_of(req);
  if (!event.ok()) return serve::error_response(400, event.status().message());
  if (context.engine == nullptr) {
    return serve::error_response(503, "this process runs no engine: events are refused");
  }
  auto result = context.engine->publish(event.value());
  if (!result.ok()) {
    const StatusCode code = result.status().code();
    // A locked or unreachable store: the sender should try again later.
    const int status = code == StatusCode::kInvalidArgument ? 400
                       : code == StatusCode::kBusy          ? 503
                                                            : 500;
    return serve::error_response(status, result.status().message());
  }
  const PublishResult& r = result.value();
  nlohmann::json body = {{"source", event.value()["source"]},
                         {"id", event.value()["id"]},
                         {"duplicate", r.duplicate},
                         {"matched", r.matched},
                         {"started", r.started},
                         {"woke", r.woke},
                         {"note", r.note},
                         {"seq", r.seq}};
  const int status = r.duplicate ? 200 : (r.note.empty() ? 202 : 422);
  return json_body(body, status);
}

}  // namespace

void add_event_routes(serve::Router& router, const Context& context) {
  router.add("POST", "/events",
             [context](const serve::Request& req) { return post_event(context, req); });
  Store* store = context.store;
  router.add("GET", "/api/events", [store](const serve::Request& req) {
    auto limit = limit_of(req);
    if (!limit.ok()) return serve::error_response(400, limit.status().message());
    const std::string unmatched = req.arg("unmatched");
    if (!unmatched.empty() && unmatched != "0" && unmatched != "1") {
      return serve::error_response(400, "unmatched must be 0 or 1");
    }
    auto events = store->list_events(limit.value(), unmatched == "1");
    if (!events.ok()) return serve::error_response(500, events.status().message());
    nlohmann::json out = nlohmann::json::array();
    for (const EventRecord& e : events.value()) out.push_back(records::event_record(e));
    return json_body(out, 200);
  });
}

}  // namespace saga::web
