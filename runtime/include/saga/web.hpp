// What the listener serves about sagas (library saga_web): health, the JSON
// API under /api/ and the web view, as routes on a serve::Router. Invariant:
// every record the API returns is built by saga/records_json.hpp, the same
// functions the CLI's --json uses; every text of a page passes through
// html_escape(); every operator action, from the API or a page's form, goes
// through one row of operator_actions(). docs/api.md lists every route.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "saga/engine.hpp"
#include "saga/serve.hpp"
#include "saga/store.hpp"

namespace saga::web {

struct Context {
  Store* store = nullptr;    // Reads (committed data only).
  Engine* engine = nullptr;  // Operator actions; null: they answer 503.
  // Why the process is not ready now (it is stopping), or empty; the store's
  // own check_ready() is asked too.
  std::function<std::string()> not_ready;
  // A token is configured: the pages offer the login form (/login).
  bool token_configured = false;
};

// One operator action: POST /api/instances/{id}/NAME, and a button on the
// instance's page when its status is one of `applies_to`. `run` gets the
// request's arguments (the JSON body's object, or the form's fields as
// strings) and returns Ok, kNotFound, kFailedPrecondition (wrong state) or
// kInvalidArgument (bad arguments). Adding an action is adding a row to the
// table in runtime/web/actions.cpp.
struct OperatorAction {
  std::string_view name;
  std::string label;  // The button's text.
  std::string_view doc;
  std::vector<InstanceStatus> applies_to;
  std::function<Status(Engine& engine, const std::string& id, const nlohmann::json& args)> run;
};
std::span<const OperatorAction> operator_actions();

// GET /health/live and GET /health/ready.
void add_health_routes(serve::Router& router, const Context& context);
// The JSON API: GET /api/instances, /api/instances/{id}, /api/instances/{id}/history,
// /api/dead-letters, /api/programs, and POST /api/instances/{id}/ACTION per operator action.
void add_api_routes(serve::Router& router, const Context& context);
// Incoming events (runtime/web/events.cpp): POST /events (CloudEvents 1.0,
// structured and binary mode, handed to Engine::publish) and GET
// /api/events (the recorded events, newest first; ?limit=N, ?unmatched=1).
void add_event_routes(serve::Router& router, const Context& context);
// POST /instances/{id}/signals/{name}: the body (JSON; empty for null) is
// the signal's data, sent through Engine::signal (saga/signals.hpp). 202
// with {"signal", "message_id", "instance"}; 400 for data that is not JSON
// or a bad name, 404 for an unknown instance, 409 for a finished one, 503
// without an engine. A state-changing route: the access rule's token applies.
void add_signal_routes(serve::Router& router, const Context& context);
// The web view: /, /instances/{id}, /programs, /dead-letters, /static/style.css, and
// /login when a token is configured.
void add_web_routes(serve::Router& router, const Context& context);

// Text made safe for HTML element content and quoted attribute values:
// & < > " ' become entities (&apos; for the quote); invalid UTF-8 becomes U+FFFD.
std::string html_escape(std::string_view text);

}  // namespace saga::web
