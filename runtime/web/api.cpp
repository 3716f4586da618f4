// Health and the JSON API (saga/web.hpp; docs/api.md). Every record is one
// of saga/records_json.hpp's; a handler only reads the query, asks the store
// and wraps the records. Errors are serve::error_response bodies.
#include <fmt/format.h>

#include <charconv>

#include "runtime/web/html.hpp"
#include "saga/records_json.hpp"
#include "saga/web.hpp"

namespace saga::web {

namespace {

constexpr size_t kDefaultLimit = 50;
constexpr size_t kMaxLimit = 1000;

int http_status_of(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kBusy:
    case StatusCode::kUnsupported:
      return 503;
    default:
      return 500;
  }
}

serve::Response json_response(const nlohmann::json& body, int status = 200) {
  return {status, "application/json", records::text(body), {}};
}

serve::Response failure(const Status& s) {
  return serve::error_response(http_status_of(s), s.message());
}

}  // namespace

// ?limit=N: kDefaultLimit when absent, 1..kMaxLimit.
Result<size_t> limit_of(const serve::Request& req) {
  const std::string text = req.arg("limit");
  if (text.empty()) return kDefaultLimit;
  size_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n == 0 || n > kMaxLimit) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("limit must be a number from 1 to {}, not '{}'", kMaxLimit, text));
  }
  return n;
}

namespace {

// Runs one operator action: Ok or why not.
Status run_action(const Context& context, const OperatorAction& action, const std::string& id,
                  const nlohmann::json& args) {
  if (context.engine == nullptr) {
    return Status(StatusCode::kUnsupported, "this process runs no engine: actions are refused");
  }
  return action.run(*context.engine, id, args);
}

}  // namespace

Result<nlohmann::json> instance_page(Store& store, const serve::Request& req) {
  InstanceQuery q;
  if (std::string status = req.arg("status"); !status.empty()) {
    q.status = parse_status(status);
    if (!q.status) {
      return Status(StatusCode::kInvalidArgument, fmt::format("unknown status '{}'", status));
    }
  }
  q.saga = req.arg("saga");
  q.before = req.arg("before");
  auto limit = limit_of(req);
  if (!limit.ok()) return limit.status();
  q.limit = limit.value() + 1;  // One more says whether there is a next page.
  auto rows = store.query_instances(q);
  if (!rows.ok()) return rows.status();
  nlohmann::json list = nlohmann::json::array();
  nlohmann::json next = nullptr;
  for (size_t i = 0; i < rows->size() && i < limit.value(); ++i) {
    list.push_back(records::instance_summary((*rows)[i]));
  }
  if (rows->size() > limit.value()) next = (*rows)[limit.value() - 1].id;
  return nlohmann::json{{"instances", list}, {"next", next}};
}

void add_health_routes(serve::Router& router, const Context& context) {
  router.add("GET", "/health/live", [](const serve::Request&) {
    return json_response({{"status", "live"}});
  });
  router.add("GET", "/health/ready", [context](const serve::Request&) {
    std::string reason = context.not_ready ? context.not_ready() : std::string();
    if (reason.empty()) {
      Status s = context.store->check_ready();
      if (!s.ok()) reason = s.message();
    }
    if (!reason.empty()) return json_response({{"status", "not_ready"}, {"reason", reason}}, 503);
    return json_response({{"status", "ready"}});
  });
}

void add_api_routes(serve::Router& router, const Context& context) {
  Store* store = context.store;
  router.add("GET", "/api/instances", [store](const serve::Request& req) {
    auto page = instance_page(*store, req);
    if (!page.ok()) return failure(page.status());
    return json_response(page.value());
  });
  router.add("GET", "/api/instances/{id}", [store](const serve::Request& req) {
    auto detail = records::instance_detail(*store, req.params.at("id"));
    if (!detail.ok()) return failure(detail.status());
    return json_response(detail.value());
  });
  router.add("GET", "/api/instances/{id}/history", [store](const serve::Request& req) {
    const std::string& id = req.params.at("id");
    auto row = store->get_instance(id);
    if (!row.ok()) return failure(row.status());
    if (!row.value()) return serve::error_response(404, fmt::format("no instance '{}'", id));
    auto events = store->history(id);
    if (!events.ok()) return failure(events.status());
    nlohmann::json out = nlohmann::json::array();
    for (const HistoryEvent& e : events.value()) out.push_back(records::history_event(e));
    return json_response(out);
  });
  router.add("GET", "/api/dead-letters", [store](const serve::Request& req) {
    auto limit = limit_of(req);
    if (!limit.ok()) return failure(limit.status());
    auto letters = store->list_dead_letters(limit.value());
    if (!letters.ok()) return failure(letters.status());
    nlohmann::json out = nlohmann::json::array();
    for (const DeadLetterEntry& d : letters.value()) out.push_back(records::dead_letter(d));
    return json_response(out);
  });
  router.add("GET", "/api/programs", [store](const serve::Request&) {
    auto list = records::program_list(*store);
    if (!list.ok()) return failure(list.status());
    return json_response(list.value());
  });
  // One route per operator action. A form post (the web view) is answered
  // with a redirect to the instance's page; an API call with 202 and the
  // instance's summary.
  for (const OperatorAction& action : operator_actions()) {
    router.add("POST", fmt::format("/api/instances/{{id}}/{}", action.name),
               [context, &action](const serve::Request& req) {
                 const std::string& id = req.params.at("id");
                 const bool form =
                     req.header("content-type").starts_with("application/x-www-form-urlencoded");
                 nlohmann::json args = nlohmann::json::object();
                 if (form) {
                   auto fields = serve::parse_form(req.body);
                   if (!fields) return serve::error_response(400, "malformed form body");
                   for (const auto& [k, v] : *fields) {
                     if (k == "result" && v.empty()) continue;  // An empty field: no result.
                     if (k != "result") {
                       args[k] = v;
                       continue;
                     }
                     // A form's result is JSON text, as sagactl skip --result takes it.
                     args[k] = nlohmann::json::parse(v, nullptr, false);
                     if (args[k].is_discarded()) {
                       return serve::error_response(400, "result is not JSON: " + v);
                     }
                   }
                 } else if (!req.body.empty()) {
                   args = nlohmann::json::parse(req.body, nullptr, false);
                   if (!args.is_object()) {
                     return serve::error_response(400, "the body must be a JSON object");
                   }
                 }
                 Status s = run_action(context, action, id, args);
                 const std::string back = "/instances/" + url_encode(id);
                 if (!s.ok() && form) {
                   return page(fmt::format("{} refused", action.label),
                               fmt::format("<p class=\"error\">{}</p><p>{}</p>",
                                           html_escape(s.message()), link(back, "Back")),
                               http_status_of(s));
                 }
                 if (!s.ok()) return failure(s);
                 if (form) return serve::redirect(back);
                 auto row = context.store->get_instance(id);
                 nlohmann::json body = {{"action", action.name}};
                 if (row.ok() && row.value()) body["instance"] = records::instance_summary(**row);
                 return json_response(body, 202);
               });
  }
}

}  // namespace saga::web
