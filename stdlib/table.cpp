// Lookups over the standard-library tables, the checker of built-in action
// arguments, and the generator of docs/stdlib.md.
#include "stdlib/table.hpp"

#include <fmt/format.h>

#include <cmath>

#include "saga/error_classes.hpp"
#include "saga/events.hpp"

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

// "0ms", "30s", "10000d": [ms] in the largest unit that divides it, as durations are
// written in .saga (bytecode::format_duration says the same; this library cannot link it).
static std::string duration_text(double ms) {
  constexpr struct {
    double ms;
    const char* unit;
  } kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  for (const auto& u : kUnits) {
    if (ms != 0 && std::fmod(ms, u.ms) == 0) return fmt::format("{}{}", ms / u.ms, u.unit);
  }
  return fmt::format("{}ms", ms);
}

std::string describe(const ArgSpec& spec) {
  const ArgLimits& l = spec.limits;
  auto bound = [&](double v) {
    return spec.kind == ArgKind::kDuration ? duration_text(v) : fmt::format("{}", v);
  };
  std::string range;
  if (std::isfinite(l.min) && std::isfinite(l.max)) {
    range = fmt::format(" from {} to {}", bound(l.min), bound(l.max));
  } else if (std::isfinite(l.min)) {
    range = fmt::format(" of at least {}", bound(l.min));
  } else if (std::isfinite(l.max)) {
    range = fmt::format(" of at most {}", bound(l.max));
  }
  switch (spec.kind) {
    case ArgKind::kAny:
      return "any value";
    case ArgKind::kString:
      return "a string";
    case ArgKind::kNumber:
      return "a number" + range;
    case ArgKind::kDuration:
      return "a duration" + range;
    case ArgKind::kBool:
      return "true or false";
    case ArgKind::kList:
      return "a list";
    case ArgKind::kObject:
      return "an object";
    case ArgKind::kOneOf: {
      std::string out = "one of ";
      for (std::string_view rest = l.choices; !rest.empty();) {
        const auto comma = rest.find(',');
        out += rest.substr(0, comma);
        if (comma == std::string_view::npos) break;
        out += ", ";
        rest.remove_prefix(comma + 1);
      }
      return out;
    }
  }
  return "any value";
}

// What a value is, for "..., got X": the number or the (shortened) string itself,
// else its kind.
static std::string describe(const ArgView& v) {
  // Longer strings are cut (at a UTF-8 character boundary) with "...".
  constexpr std::size_t kMaxShownBytes = 40;
  switch (v.kind) {
    case ArgView::Kind::kNull:
      return "null";
    case ArgView::Kind::kBool:
      return "a boolean";
    case ArgView::Kind::kNumber:
      return fmt::format("{}", v.number);
    case ArgView::Kind::kString: {
      if (v.text.size() <= kMaxShownBytes) return fmt::format("'{}'", v.text);
      std::size_t cut = kMaxShownBytes;
      while (cut > 0 && (static_cast<unsigned char>(v.text[cut]) & 0xC0) == 0x80) --cut;
      return fmt::format("'{}...'", v.text.substr(0, cut));
    }
    case ArgView::Kind::kList:
      return "a list";
    case ArgView::Kind::kObject:
      return "an object";
  }
  return "a value";
}

std::string check_action_arg(std::string_view action, std::string_view arg, const ArgView& value) {
  const ActionInfo* a = find_action(action);
  const ArgSpec* spec = a != nullptr ? a->find_arg(arg) : nullptr;
  if (spec == nullptr) return {};
  using Kind = ArgView::Kind;
  if (value.kind == Kind::kNull && spec->presence == ArgPresence::kOptional) return {};
  bool ok = false;
  switch (spec->kind) {
    case ArgKind::kAny:
      ok = true;
      break;
    case ArgKind::kString:
      ok = value.kind == Kind::kString;
      break;
    case ArgKind::kNumber:
    case ArgKind::kDuration:
      // Written so that NaN fails.
      ok = value.kind == Kind::kNumber && value.number >= spec->limits.min &&
           value.number <= spec->limits.max;
      break;
    case ArgKind::kBool:
      ok = value.kind == Kind::kBool;
      break;
    case ArgKind::kList:
      ok = value.kind == Kind::kList;
      break;
    case ArgKind::kObject:
      ok = value.kind == Kind::kObject;
      break;
    case ArgKind::kOneOf:
      ok = value.kind == Kind::kString && list_contains(spec->limits.choices, value.text);
      break;
  }
  if (ok) return {};
  std::string got = describe(value);
  if (spec->kind == ArgKind::kDuration && value.kind == Kind::kNumber) {
    // Milliseconds, and the duration as written when that is shorter: "-1000 (-1s)".
    const std::string written = duration_text(value.number);
    if (written.size() > 2 && written.substr(written.size() - 2) != "ms") {
      got += fmt::format(" ({})", written);
    }
  }
  return fmt::format("{}({}:) must be {}, got {}", action, arg, describe(*spec), got);
}

// The arguments column of docs/stdlib.md: "`for:` a duration from 0ms to 10000d".
static std::string arg_list(const ActionInfo& a) {
  std::string out;
  for (const ArgSpec& arg : a.args()) {
    if (!out.empty()) out += "; ";
    out += fmt::format("`{}:`{} {}", arg.name,
                       arg.presence == ArgPresence::kOptional ? " (optional)" : "", describe(arg));
  }
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
      "Called by a step's `do` or `undo` with named arguments. The compiler checks the "
      "names of the arguments and, where an argument is a constant, that it is what the "
      "table below says (`sleep(for: -1s)` is an error); the engine checks the computed "
      "arguments of the actions it performs (`sleep`, `log`) with the same table before the "
      "step starts: out of kind or range, the saga fails with class `type` (an undo's, and the "
      "instance is `stuck`). An optional argument may be null, which means absent. Durations are "
      "numbers of milliseconds (`30s` is 30000). Actions the engine "
      "performs itself cannot fail or time out, so a step whose `do` is one of them takes "
      "no `retry`, nor a `timeout` unless its `undo` is an action that can time out.\n\n"
      "| action | arguments | idempotent | retry, timeout | description | example |\n"
      "|---|---|---|---|---|---|\n";
  for (const ActionInfo& a : kActions) {
    out += fmt::format(
        "| `{}` | {} | {} | {} | {} | `{}` |\n", a.name, arg_list(a), a.idempotent ? "yes" : "no",
        by_engine(a.performer) ? "no: the engine performs it" : "yes", a.doc, a.example);
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
  out +=
      "\n## History events\n\n"
      "What an instance's history can say (`kind` in `sagactl show --json`, and the events "
      "`EngineOptions::on_event` reports). Generated from `runtime/include/saga/events.def`. "
      "A live event is reported as it happens but stored only when it is the only event of "
      "its transition.\n\n"
      "| kind | stored | meaning |\n|---|---|---|\n";
  for (const EventInfo& e : kEvents) {
    out += fmt::format("| `{}` | {} | {} |\n", e.name,
                       e.storage == EventStorage::kStored ? "yes" : "live", e.doc);
  }
  return out;
}

}  // namespace saga::stdlib
