// Evaluates a trigger's arguments against an event (triggers.hpp).
#include "runtime/events/triggers.hpp"

#include <fmt/format.h>

namespace saga::runtime {

Result<nlohmann::json> trigger_input(const bytecode::Trigger& trigger,
                                     const nlohmann::json& event) {
  nlohmann::json input = nlohmann::json::object();
  for (const bytecode::TriggerArg& a : trigger.args) {
    if (!a.is_path) {
      input[a.param] = nlohmann::json::parse(a.value, nullptr, /*allow_exceptions=*/false);
      continue;
    }
    const nlohmann::json* at = &event;
    std::string_view rest = a.value;
    while (!rest.empty()) {
      const size_t dot = rest.find('.');
      const std::string key(rest.substr(0, dot));
      rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
      auto it = at->is_object() ? at->find(key) : at->end();
      if (!at->is_object() || it == at->end()) {
        return Status(StatusCode::kInvalidArgument,
                      fmt::format("event.{} is missing (argument '{}' of the trigger of '{}' at "
                                  "line {})",
                                  a.value, a.param, trigger.type, trigger.line));
      }
      at = &*it;
    }
    input[a.param] = *at;
  }
  return input;
}

}  // namespace saga::runtime
