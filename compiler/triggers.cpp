// The checks of the triggers of a file (`on TYPE start SAGA(args)`) and
// their lowering to bytecode::Trigger. Called by the driver (compile.cpp)
// after check(); the result goes into Analysis::triggers, which codegen
// copies into the program.
//
// A trigger's arguments are evaluated by the engine against the incoming
// CloudEvent, outside any instance, so they are kept to what needs no VM:
// literals (null, booleans, numbers, durations, strings without ${...},
// lists and objects of those) and paths into the event (`event.data.order`,
// `event.id`, `event.source`, `event.type`, `event.time`,
// `event.subject`). Anything computed belongs in the saga itself.
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "compiler/analysis.hpp"
#include "grammar/suggest.hpp"

namespace saga::compiler {
namespace {

using ast::Expr;
using ast::ExprKind;

constexpr const char* kArgumentHelp =
    "a trigger's argument is a literal or a path into the event, such as event.data.order or "
    "event.id; compute anything else in the saga";

// The JSON value of a literal expression, or nullopt when it is not one.
std::optional<nlohmann::json> literal(const Expr& e) {
  switch (e.kind) {
    case ExprKind::Null:
      return nlohmann::json(nullptr);
    case ExprKind::Bool:
      return nlohmann::json(e.boolean);
    case ExprKind::Number:
    case ExprKind::Duration:
      if (!std::isfinite(e.number)) return std::nullopt;
      return nlohmann::json(e.number);
    case ExprKind::String:
      return nlohmann::json(e.text);
    case ExprKind::Unary:
      if (e.unary_op == ast::UnaryOp::Neg && e.items.size() == 1 &&
          e.items[0]->kind == ExprKind::Number) {
        return nlohmann::json(-e.items[0]->number);
      }
      return std::nullopt;
    case ExprKind::List: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : e.items) {
        auto v = literal(*item);
        if (!v) return std::nullopt;
        out.push_back(std::move(*v));
      }
      return out;
    }
    case ExprKind::Object: {
      nlohmann::json out = nlohmann::json::object();
      for (size_t i = 0; i < e.items.size() && i < e.keys.size(); ++i) {
        auto v = literal(*e.items[i]);
        if (!v) return std::nullopt;
        out[e.keys[i]] = std::move(*v);
      }
      return out;
    }
    default:
      return std::nullopt;
  }
}

// The dotted path of `event.a.b` (["a", "b"]), the innermost expression
// that is not a field access in `root`, or nullopt when `e` is not a chain of
// field accesses.
std::optional<std::vector<const Expr*>> field_chain(const Expr& e, const Expr*& root) {
  std::vector<const Expr*> fields;
  const Expr* at = &e;
  while (at->kind == ExprKind::Field && at->items.size() == 1) {
    fields.insert(fields.begin(), at);
    at = at->items[0].get();
  }
  root = at;
  if (at->kind != ExprKind::Var) return std::nullopt;
  return fields;
}

bool type_matches(const std::string& type, const nlohmann::json& v) {
  if (type.empty() || type == "any") return true;
  if (type == "string") return v.is_string();
  if (type == "number") return v.is_number();
  if (type == "bool") return v.is_boolean();
  if (type == "list") return v.is_array();
  if (type == "object") return v.is_object();
  return true;  // An unknown type name is check.cpp's error.
}

const char* json_kind(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a bool";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

class TriggerChecker {
 public:
  TriggerChecker(const ast::File& file, const SourceFile& source, Diagnostics& diags)
      : file_(file), source_(source), diags_(diags) {}

  std::vector<bytecode::Trigger> run() {
    std::vector<bytecode::Trigger> out;
    // (type, saga) -> the first trigger's span, for the duplicate error.
    std::map<std::pair<std::string, std::string>, Span> seen;
    for (const ast::Trigger& t : file_.triggers) {
      auto lowered = trigger(t);
      if (!lowered) continue;
      auto [it, fresh] = seen.emplace(std::make_pair(t.type, t.saga), t.span);
      if (!fresh) {
        const LineCol first = source_.locate(it->second.offset);
        diags_.error(t.span,
                     fmt::format("a second trigger of '{}' starting saga '{}' (the first is at "
                                 "{}:{})",
                                 t.type, t.saga, first.line, first.column),
                     "each event would start the saga twice; remove one of them");
        continue;
      }
      out.push_back(std::move(*lowered));
    }
    return out;
  }

 private:
  std::optional<bytecode::Trigger> trigger(const ast::Trigger& t) {
    bool ok = true;
    if (!check_event_type(t.type, t.type_span, diags_)) ok = false;
    const ast::Saga* saga = nullptr;
    uint32_t index = 0;
    for (uint32_t i = 0; i < file_.sagas.size() && !saga; ++i) {
      if (file_.sagas[i].name == t.saga) {
        saga = &file_.sagas[i];
        index = i;
      }
    }
    if (!saga) {
      // A saga the parser gave up on is declared: its errors are reported.
      for (const ast::BrokenItem& b : file_.broken) {
        if (b.kind == "saga" && b.name == t.saga) return std::nullopt;
      }
      std::vector<std::string> names;
      for (const ast::Saga& s : file_.sagas) names.push_back(s.name);
      std::string help = did_you_mean(t.saga, names);
      if (help.empty()) help = "a trigger starts a saga declared in the same file";
      diags_.error(t.saga_span, fmt::format("unknown saga '{}'", t.saga), help);
      return std::nullopt;
    }
    bytecode::Trigger out;
    out.type = t.type;
    out.saga = index;
    const LineCol pos = source_.locate(t.span.offset);
    out.line = pos.line;
    out.column = pos.column;
    std::set<std::string> given;
    std::vector<std::string> param_names;
    for (const ast::Param& p : saga->params) param_names.push_back(p.name);
    for (const ast::NamedArg& a : t.args) {
      const ast::Param* param = nullptr;
      for (const ast::Param& p : saga->params) {
        if (p.name == a.name) param = &p;
      }
      if (!param) {
        std::string help = did_you_mean(a.name, param_names);
        if (help.empty()) {
          help = param_names.empty() ? fmt::format("saga '{}' has no parameters", t.saga)
                                     : fmt::format("the parameters of saga '{}' are: {}", t.saga,
                                                   fmt::join(param_names, ", "));
        }
        diags_.error(a.name_span, fmt::format("saga '{}' has no parameter '{}'", t.saga, a.name),
                     help);
        ok = false;
        continue;
      }
      if (!given.insert(a.name).second) {
        diags_.error(a.name_span, fmt::format("a second value for '{}'", a.name),
                     "give each parameter of the saga once");
        ok = false;
        continue;
      }
      auto arg = argument(a, *param);
      if (!arg) {
        ok = false;
        continue;
      }
      out.args.push_back(std::move(*arg));
    }
    std::vector<std::string> missing;
    for (const ast::Param& p : saga->params) {
      if (!given.count(p.name)) missing.push_back(p.name);
    }
    if (!missing.empty()) {
      diags_.error(t.saga_span,
                   fmt::format("the trigger gives no value for {} '{}' of saga '{}'",
                               missing.size() == 1 ? "parameter" : "parameters",
                               fmt::join(missing, "', '"), t.saga),
                   fmt::format("for example: {}: event.data.{}", missing[0], missing[0]));
      ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::optional<bytecode::TriggerArg> argument(const ast::NamedArg& a, const ast::Param& param) {
    const Expr& e = *a.value;
    if (auto v = literal(e)) {
      if (!type_matches(param.type, *v)) {
        diags_.error(
            e.span,
            fmt::format("parameter '{}' is a {}; this is {}", a.name, param.type, json_kind(*v)),
            {});
        return std::nullopt;
      }
      return bytecode::TriggerArg{a.name, false, v->dump()};
    }
    if (!is_event_path(e)) {
      diags_.error(e.span, "a trigger's argument must be a literal or a path into 'event'",
                   kArgumentHelp);
      return std::nullopt;
    }
    std::optional<std::string> path = event_path(e, diags_);
    if (!path) return std::nullopt;
    return bytecode::TriggerArg{a.name, true, *path};
  }

  const ast::File& file_;
  const SourceFile& source_;
  Diagnostics& diags_;
};

}  // namespace

bool is_event_path(const ast::Expr& e) {
  const Expr* root = nullptr;
  return field_chain(e, root) && root->text == "event";
}

std::optional<std::string> event_path(const ast::Expr& e, Diagnostics& diags) {
  const Expr* root = nullptr;
  auto fields = field_chain(e, root);
  if (!fields || root->text != "event") return std::nullopt;
  if (fields->empty()) {
    diags.error(e.span, "'event' is the whole event; pick a field of it",
                "for example: event.data (its payload), event.data.order, event.id");
    return std::nullopt;
  }
  const Expr& head = *fields->front();
  std::vector<std::string> known(std::begin(bytecode::kEventFields),
                                 std::end(bytecode::kEventFields));
  bool is_field = false;
  for (const std::string& f : known) is_field = is_field || f == head.text;
  if (!is_field) {
    std::string help = did_you_mean(head.text, known);
    if (help.empty()) help = "an event has: id, source, type, time, subject and data";
    diags.error(head.name_span, fmt::format("an event has no attribute '{}'", head.text), help);
    return std::nullopt;
  }
  if (head.text != "data" && fields->size() > 1) {
    diags.error((*fields)[1]->name_span,
                fmt::format("'event.{}' is a string; it has no fields", head.text),
                "only event.data has fields");
    return std::nullopt;
  }
  std::string path;
  for (const Expr* f : *fields) path += (path.empty() ? "" : ".") + f->text;
  return path;
}

bool check_event_type(const std::string& type, Span span, Diagnostics& diags) {
  if (bytecode::valid_event_type(type)) return true;
  diags.error(span, fmt::format("malformed event type '{}'", type),
              "an event type is words of letters, digits, '_' and '-' separated by single "
              "dots, such as order.placed or com.example.order-placed");
  return false;
}

void check_triggers(const ast::File& file, const SourceFile& source, Analysis& analysis,
                    Diagnostics& diags) {
  analysis.triggers = TriggerChecker(file, source, diags).run();
}

}  // namespace saga::compiler
