// The operator actions (saga/web.hpp): one per row of saga/commands.def,
// served as POST /api/instances/{id}/NAME and shown as a button on the
// instance's page for the statuses the command applies in. Each goes through
// Engine::command: posted to the instance's inbox, carried out at once when
// this engine runs it, else by the engine that does.
#include <cctype>

#include "saga/commands.hpp"
#include "saga/web.hpp"

namespace saga::web {

namespace {

// The arguments of an action: {"note": TEXT, "result": JSON} (skip's result;
// absent means null).
Status run_command(Engine& engine, Command command, const std::string& id,
                   const nlohmann::json& args) {
  CommandRequest request;
  request.command = command;
  if (auto note = args.find("note"); note != args.end()) {
    if (!note->is_string()) return {StatusCode::kInvalidArgument, "note must be a string"};
    request.note = note->get<std::string>();
  }
  if (auto result = args.find("result"); result != args.end()) request.result_json = result->dump();
  auto posted = engine.command(id, request);
  return posted.ok() ? Status::Ok() : posted.status();
}

std::vector<OperatorAction> make_actions() {
  std::vector<OperatorAction> actions;
  for (const CommandInfo& info : kCommands) {
    OperatorAction& a = actions.emplace_back();
    a.name = info.name;
    a.label = std::string(info.name);
    a.label[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(a.label[0])));
    a.doc = info.doc;
    for (InstanceStatus s : all_statuses()) {
      if (command_accepts(info.command, s)) a.applies_to.push_back(s);
    }
    a.run = [command = info.command](Engine& engine, const std::string& id,
                                     const nlohmann::json& args) {
      return run_command(engine, command, id, args);
    };
  }
  return actions;
}

}  // namespace

std::span<const OperatorAction> operator_actions() {
  static const std::vector<OperatorAction> actions = make_actions();
  return actions;
}

}  // namespace saga::web
