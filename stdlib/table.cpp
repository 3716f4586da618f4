// Lookups over the standard-library tables and the generator of docs/stdlib.md.
#include "stdlib/table.hpp"

#include <fmt/format.h>

#include "saga/error_classes.hpp"

namespace saga::stdlib {

const FunctionInfo* find_function(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const ActionInfo* find_action(std::string_view name) {
  for (const ActionInfo& a : kActions) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

bool is_reserved_namespace(std::string_view name) {
  for (const ActionInfo& a : kActions) {
    auto dot = a.name.find('.');
    if (dot != std::string_view::npos && a.name.substr(0, dot) == name) return true;
  }
  return false;
}

bool list_contains(std::string_view list, std::string_view arg) {
  while (!list.empty()) {
    auto comma = list.find(',');
    if (list.substr(0, comma) == arg) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

static std::string arg_list(std::string_view required, std::string_view optional) {
  std::string out;
  auto add = [&](std::string_view list, bool opt) {
    while (!list.empty()) {
      auto comma = list.find(',');
      if (!out.empty()) out += ", ";
      out += fmt::format("`{}:`{}", list.substr(0, comma), opt ? " (optional)" : "");
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  };
  add(required, false);
  add(optional, true);
  return out;
}

std::string reference_markdown() {
  std::string out =
      "# Standard library reference\n\n"
      "Generated from `stdlib/functions.def` and `stdlib/actions.def` by "
      "`sagactl doc stdlib`; a test fails when this file is out of date.\n\n"
      "## Pure functions\n\n"
      "Called inside expressions with positional arguments. They have no effects; "
      "the compiler checks their names and arities.\n\n"
      "| function | description | example |\n|---|---|---|\n";
  for (const FunctionInfo& f : kFunctions) {
    out += fmt::format("| `{}` | {} | `{}` |\n", f.signature, f.doc, f.example);
  }
  out +=
      "\n## Actions\n\n"
      "Called by a step's `do` or `undo` with named arguments. The compiler checks "
      "the names of the arguments.\n\n"
      "| action | arguments | idempotent | description | example |\n|---|---|---|---|---|\n";
  for (const ActionInfo& a : kActions) {
    out += fmt::format("| `{}` | {} | {} | {} | `{}` |\n", a.name, arg_list(a.required, a.optional),
                       a.idempotent ? "yes" : "no", a.doc, a.example);
  }
  out +=
      "\n## Error classes\n\n"
      "How an attempt, a step or a saga failed (`error_class` in `sagactl show`), as the "
      "runtime raises them; retry policies choose which to retry (`on: [...]`). Generated "
      "from `runtime/include/saga/error_classes.def`. Any other name is a custom class "
      "(`fail NAME \"...\"`, or a host action's saga::ActionError) and leaves a step in "
      "doubt.\n\n"
      "| class | had no effect | retried by default | meaning |\n|---|---|---|---|\n";
  for (const ErrorClassInfo& c : kErrorClasses) {
    out += fmt::format("| `{}` | {} | {} | {} |\n", c.name, c.no_effect ? "yes" : "no",
                       c.retried_by_default ? "yes" : "no", c.doc);
  }
  return out;
}

}  // namespace saga::stdlib
