// CloudEvents 1.0 in: validation of the structured form and the binary-mode
// conversion (saga/cloudevents.hpp). Pure functions over JSON and header
// maps; the HTTP route (runtime/web/events.cpp) and Engine::publish use them.
#include "saga/cloudevents.hpp"

#include <fmt/format.h>

namespace saga {
namespace {

Status invalid(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}

// The attributes every event has (CloudEvents 1.0, "Required Attributes").
constexpr std::string_view kRequired[] = {"id", "source", "specversion", "type"};

bool is_json_type(std::string_view content_type) {
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  return media == "application/json" || media == "text/json" ||
         (media.size() > 5 && media.substr(media.size() - 5) == "+json");
}

}  // namespace

Status validate_cloudevent(const nlohmann::json& event) {
  if (!event.is_object()) return invalid("a CloudEvent is a JSON object");
  for (std::string_view name : kRequired) {
    auto it = event.find(name);
    if (it == event.end()) {
      return invalid(fmt::format("the event has no '{}' (required by CloudEvents 1.0)", name));
    }
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return invalid(fmt::format("the event's '{}' must be a non-empty string", name));
    }
  }
  const std::string& version = event["specversion"].get_ref<const std::string&>();
  if (version != "1.0") {
    return invalid(
        fmt::format("the event's specversion is '{}'; this receiver takes '1.0'", version));
  }
  // The optional attributes this receiver reads, when present, are strings.
  for (std::string_view name : {"time", "subject", "datacontenttype", "dataschema"}) {
    auto it = event.find(name);
    if (it != event.end() && !it->is_string()) {
      return invalid(fmt::format("the event's '{}' must be a string", name));
    }
  }
  return Status::Ok();
}

Result<nlohmann::json> cloudevent_from_structured(std::string_view body) {
  nlohmann::json event = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded()) return invalid("the body is not JSON");
  if (Status s = validate_cloudevent(event); !s.ok()) return s;
  return event;
}

Result<nlohmann::json> cloudevent_from_binary(const std::map<std::string, std::string>& headers,
                                              std::string_view body) {
  nlohmann::json event = nlohmann::json::object();
  for (const auto& [name, value] : headers) {
    if (name.size() > 3 && name.compare(0, 3, "ce-") == 0) event[name.substr(3)] = value;
  }
  if (!event.contains("specversion")) {
    return invalid(
        "no ce-specversion header: send a binary-mode event with ce-specversion, ce-id, "
        "ce-source and ce-type headers, or a structured one with Content-Type: "
        "application/cloudevents+json");
  }
  auto type = headers.find("content-type");
  const std::string content_type = type == headers.end() ? "" : type->second;
  if (!content_type.empty()) event["datacontenttype"] = content_type;
  if (!body.empty()) {
    if (content_type.empty() || is_json_type(content_type)) {
      nlohmann::json data = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (data.is_discarded()) {
        return invalid(fmt::format("the body is not JSON (Content-Type: {})",
                                   content_type.empty() ? "none" : content_type));
      }
      event["data"] = std::move(data);
    } else {
      event["data"] = std::string(body);
    }
  }
  if (Status s = validate_cloudevent(event); !s.ok()) return s;
  return event;
}

}  // namespace saga
