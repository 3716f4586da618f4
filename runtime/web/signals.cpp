// POST /instances/{id}/signals/{name} (saga/web.hpp; docs/api.md): a signal
// to an instance over HTTP, as `sagactl signal` and Engine::signal send it.
// The route only reads the request and maps the engine's answer to a status.
#include <fmt/format.h>

#include "saga/records_json.hpp"
#include "saga/web.hpp"

namespace saga::web {

void add_signal_routes(serve::Router& router, const Context& context) {
  router.add("POST", "/instances/{id}/signals/{name}", [context](const serve::Request& req) {
    if (context.engine == nullptr) {
      return serve::error_response(503, "this process runs no engine: signals are refused");
    }
    const std::string& id = req.params.at("id");
    const std::string& name = req.params.at("name");
    auto posted = context.engine->signal(id, name, req.body);
    if (!posted.ok()) {
      const Status& s = posted.status();
      const int code = s.code() == StatusCode::kNotFound             ? 404
                       : s.code() == StatusCode::kFailedPrecondition ? 409
                       : s.code() == StatusCode::kInvalidArgument    ? 400
                                                                     : 500;
      return serve::error_response(code, s.message());
    }
    nlohmann::json body{{"signal", name}, {"message_id", posted->id}};
    auto row = context.store->get_instance(id);
    if (row.ok() && row.value()) body["instance"] = records::instance_summary(**row);
    return serve::Response{202, "application/json", records::text(body), {}};
  });
}

}  // namespace saga::web
