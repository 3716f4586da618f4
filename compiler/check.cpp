// The checker: resolves every name in a parsed file and reports what would go
// wrong at run time before anything runs. It validates services (url, timeout,
// breaker, bulkhead, routes), retry policies, saga headers, and walks each saga
// body with a definite-binding analysis: a variable may be read only where every
// path to the read has bound it, and an undo may only use values known when
// its step completed. It fills the Analysis that codegen.cpp lowers.
//
// Parallel blocks and loops follow the runtime's rule for fibers: a fiber reads
// the slots of the fibers that forked it as they were at the fork, and keeps
// the slots it binds to itself until the join. So a branch cannot see what its
// sibling branches bind, and everything a branch binds is the saga's after the
// block (two branches binding one name is an error). A foreach body binds into
// slots of its own (one scope per loop, see slot()), and after the loop each
// name it bound means the list of the values of every iteration, in item order
// (Block::collect pairs each body slot with its list slot).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "compiler/analysis.hpp"
#include "grammar/suggest.hpp"
#include "saga/error_classes.hpp"
#include "stdlib/table.hpp"

namespace saga::compiler {
namespace {

using ast::Expr;
using ast::ExprKind;

// The error classes the runtime produces itself (saga/error_classes.def);
// `on: [...]` may also name custom classes raised by `fail`.
std::vector<std::string> builtin_classes() {
  std::vector<std::string> names;
  for (const ErrorClassInfo& c : kErrorClasses) names.emplace_back(c.name);
  return names;
}
const std::vector<std::string> kBuiltinClasses = builtin_classes();
const std::vector<std::string> kTypes = {"string", "number", "bool", "list", "object", "any"};
const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "PATCH", "DELETE"};

// Defaults of a retry policy, documented in docs/language.md.
constexpr uint64_t kDefaultInitialMs = 100;
constexpr double kDefaultFactor = 2.0;
constexpr uint64_t kDefaultMaxMs = 10'000;

using bytecode::format_duration;

// Upper limits of the settings, each far above any useful value (so that only a typo
// reaches it) and far inside what the bytecode and the runtime represent (so that no
// accepted value overflows or is changed later). Durations: stdlib::kMaxDurationMs.
//
// Attempts of one step (u32 in the bytecode). Every attempt leaves events in the
// instance's history, which is kept as long as the instance; 10 000 attempts (more than a
// day of them even 10 s apart) bound it.
constexpr uint32_t kMaxAttempts = 10'000;
// Consecutive failures that open a circuit breaker (u32): a breaker that needs more would
// in practice never open.
constexpr uint32_t kMaxBreakerFailures = 10'000;
// Calls to one service at once: a bulkhead's cap, and a breaker's probes (let through
// half-open, all of them possibly in flight). Each is an open connection to the service's
// host and port, and a process has at most 65 535 local ports to one destination, so a
// larger number would limit nothing.
constexpr uint32_t kMaxConcurrentCalls = 65'535;
// The factor of exponential backoff. Below 1 the delays would shrink. At 100 the third
// attempt already waits 10 000 times the first delay, and delays are capped (at the
// policy's max and at 10^12 ms), so a larger factor only means "the maximum from the
// second retry on": a typo, or fixed(max) meant.
constexpr double kMinBackoffFactor = 1.0;
constexpr double kMaxBackoffFactor = 100.0;

// What to do instead of calling the saga [name] from a step or an expression.
std::string saga_call_help(std::string_view name) {
  return fmt::format(
      "run it as its own instance (sagactl start FILE --saga {}), or write its steps in this "
      "saga",
      name);
}

// Where a variable gets bound in a saga, for "bound later" and "only on some
// paths" explanations.
struct Binding {
  uint32_t offset;  // Position of the binding name.
};

// What is known at a point of a saga body: the variables bound on every path
// to it, the variables bound on at least one path (each with the slot that
// holds it there), and whether it can be reached at all (not after `fail` or
// `output`).
struct Flow {
  bool reachable = true;
  // The pivot step passed on some path to here (the first one checked), and
  // whether one is passed on every path.
  const ast::Step* pivot = nullptr;
  bool pivot_definite = false;
  std::set<std::string> definite;
  std::map<std::string, uint32_t> maybe;
  // The names that hold, on every path, the list a foreach collected, with
  // the loop's keyword: `r.id` on one is always a runtime type error.
  std::map<std::string, Span> lists;
};

// Calls f(name, span) for every binding site (let, -> name) in [body] and in
// the blocks nested in it, in source order.
template <typename F>
void for_each_binding(const ast::Block& body, const F& f) {
  for (const ast::Stmt& s : body) {
    if (s.kind == ast::StmtKind::Let) f(s.name, s.name_span);
    if (s.kind == ast::StmtKind::Await && !s.name.empty()) f(s.name, s.name_span);
    if (s.kind == ast::StmtKind::Step && s.step && !s.step->bind.empty()) {
      f(s.step->bind, s.step->bind_span);
    }
    for (const ast::Block* inner : {s.then_block.get(), s.else_block.get(), s.body.get()}) {
      if (inner) for_each_binding(*inner, f);
    }
  }
}

class Checker {
 public:
  Checker(const ast::File& file, Diagnostics& diags) : file_(file), diags_(diags) {}

  Analysis run() {
    declare_services();
    declare_policies();
    std::unordered_map<std::string, Span> saga_names;
    for (const ast::Saga& saga : file_.sagas) {
      auto [it, added] = saga_names.emplace(saga.name, saga.name_span);
      if (!added) {
        diags_.error(saga.name_span, fmt::format("saga '{}' is already defined at {}", saga.name,
                                                 where(it->second)));
      }
      check_saga(saga);
    }
    check_idempotent_ops();
    return std::move(out_);
  }

 private:
  const ast::File& file_;
  Diagnostics& diags_;
  Analysis out_;

  // State of the saga being checked.
  SagaInfo* saga_ = nullptr;
  std::unordered_map<std::string, std::vector<Binding>> bindings_;  // All binding sites.
  std::unordered_map<std::string, Span> step_names_;
  std::unordered_map<std::string, bytecode::Type> param_types_;
  // Slots, one per scope and name. Scope 0 is the saga's main code (and its
  // branches); each foreach body is a scope of its own, whose slots hold one
  // iteration's values; scope_suffixes_ tells them apart in slot names.
  std::map<std::pair<uint32_t, std::string>, uint32_t> slots_;
  std::vector<std::string> scope_suffixes_;
  uint32_t scope_ = 0;
  // A `parallel` block or `foreach` loop around the code being checked.
  struct Enclosing {
    const ast::Stmt* stmt = nullptr;  // The Parallel or Foreach statement.
    // Parallel: its branches, the one being checked, and for each name a
    // branch binds anywhere inside it the first branch that does (and where).
    std::vector<const ast::Stmt*> branches;
    size_t branch = 0;
    std::unordered_map<std::string, std::pair<size_t, Span>> binder;
  };
  std::vector<Enclosing> enclosing_;  // Innermost last.
  // Every loop variable of the saga with its position, for "visible only in
  // its body".
  std::unordered_map<std::string, Span> loop_vars_;
  const ast::Step* current_step_ = nullptr;
  // The saga's `undo_retry` default (kNone: the engine's built-in policy),
  // and whether one was seen (it may have failed to resolve).
  uint32_t saga_undo_policy_ = bytecode::kNone;
  bool saga_undo_seen_ = false;
  // Where an inline body wrote `then: pause`, for the undo_retry error.
  std::unordered_map<const ast::Config*, Span> then_spans_;
  bool in_undo_ = false;
  std::set<std::string> called_;  // Every action a do or undo calls, by name.

  // `idempotent [op]` naming an operation no step calls has no effect: a typo.
  void check_idempotent_ops() {
    for (const ast::Service& s : file_.services) {
      for (const auto& [op, span] : s.idempotent_ops) {
        if (called_.count(s.name + "." + op)) continue;
        diags_.warning(span,
                       fmt::format("service '{}' declares '{}' idempotent, but no step calls "
                                   "{}.{}",
                                   s.name, op, s.name, op),
                       "name the operations the sagas call, or remove it");
      }
    }
  }

  // Whether the file declares a saga called [name] (also one that failed to parse).
  bool is_saga(std::string_view name) const {
    return broken("saga", name) ||
           std::any_of(file_.sagas.begin(), file_.sagas.end(),
                       [&](const ast::Saga& saga) { return saga.name == name; });
  }

  // Whether a syntax error made the parser skip an item of this kind and name.
  bool broken(std::string_view kind, std::string_view name) const {
    return std::any_of(file_.broken.begin(), file_.broken.end(),
                       [&](const ast::BrokenItem& b) { return b.kind == kind && b.name == name; });
  }

  std::string where(Span span) const {
    LineCol at = diags_.file().locate(span.offset);
    return fmt::format("{}:{}", at.line, at.column);
  }

  // ---- Constant configuration values -------------------------------------

  // A positive duration such as `2s`, of at most stdlib::kMaxDurationMs; reports and
  // returns nullopt otherwise.
  std::optional<uint64_t> duration(const Expr& e, std::string_view what) {
    if (e.kind == ExprKind::Duration) {
      if (!std::isfinite(e.number)) return std::nullopt;  // The parser said "out of range".
      if (e.number <= 0) {
        diags_.error(e.span, fmt::format("{} must be a positive duration", what));
        return std::nullopt;
      }
      if (e.number > static_cast<double>(stdlib::kMaxDurationMs)) {
        constexpr uint64_t kYearMs = 31'557'600'000;  // 365.25 days.
        diags_.error(e.span, fmt::format("{} is too large: the limit is {} (about {} years)", what,
                                         format_duration(stdlib::kMaxDurationMs),
                                         stdlib::kMaxDurationMs / kYearMs));
        return std::nullopt;
      }
      // Checked above, so the conversion is exact and defined.
      const auto ms = static_cast<uint64_t>(std::llround(e.number));
      if (ms == 0) {
        diags_.error(e.span, fmt::format("{} must be at least 1ms", what),
                     "durations are whole milliseconds");
        return std::nullopt;
      }
      return ms;
    }
    if (e.kind == ExprKind::Number ||
        (e.kind == ExprKind::Unary && !e.items.empty() && e.items[0]->kind == ExprKind::Number)) {
      diags_.error(e.span, fmt::format("{} needs a unit", what),
                   "write a duration such as 500ms, 2s, 5m, 1h or 1d");
      return std::nullopt;
    }
    if (e.kind == ExprKind::Unary) {
      diags_.error(e.span, fmt::format("{} must be a positive duration", what));
      return std::nullopt;
    }
    diags_.error(e.span, fmt::format("{} must be a duration such as 2s", what));
    return std::nullopt;
  }

  // Why a bulkhead or probe count is limited (kMaxConcurrentCalls).
  static std::string concurrent_help() {
    return fmt::format(
        "each call at once is a connection, and a process has at most {} local ports for one "
        "host and port",
        kMaxConcurrentCalls);
  }

  // A whole number from [min] to [max] such as `4`; [why] explains the maximum.
  std::optional<uint32_t> count(const Expr& e, std::string_view what, uint32_t min, uint32_t max,
                                std::string_view why) {
    bool negative =
        e.kind == ExprKind::Unary && !e.items.empty() && e.items[0]->kind == ExprKind::Number;
    if (e.kind != ExprKind::Number && !negative) {
      diags_.error(e.span, fmt::format("{} must be a whole number", what));
      return std::nullopt;
    }
    double v = negative ? -e.items[0]->number : e.number;
    if (!std::isfinite(v)) return std::nullopt;  // The parser said "out of range".
    if (v != std::floor(v) || v < min) {
      diags_.error(e.span, fmt::format("{} must be a whole number of at least {}", what, min));
      return std::nullopt;
    }
    if (v > max) {
      diags_.error(e.span, fmt::format("{} is too large: the limit is {}", what, max),
                   std::string(why));
      return std::nullopt;
    }
    return static_cast<uint32_t>(v);  // In [min, max]: exact.
  }

  // Reports duplicate and unknown keys of a config body; returns the fields by
  // key (first occurrence).
  std::unordered_map<std::string, const Expr*> fields(const ast::Config& config,
                                                      const std::vector<std::string>& known,
                                                      std::string_view what) {
    std::unordered_map<std::string, const Expr*> out;
    for (const ast::ConfigField& f : config.fields) {
      if (std::find(known.begin(), known.end(), f.key) == known.end()) {
        std::string help = did_you_mean(f.key, known);
        if (help.empty()) help = fmt::format("{} accepts: {}", what, fmt::join(known, ", "));
        diags_.error(f.key_span, fmt::format("unknown field '{}' in {}", f.key, what), help);
        continue;
      }
      if (!out.emplace(f.key, f.value.get()).second) {
        diags_.error(f.key_span, fmt::format("field '{}' appears twice in {}", f.key, what));
      }
    }
    return out;
  }

  // ---- Services -----------------------------------------------------------

  void declare_services() {
    for (const ast::Service& s : file_.services) {
      if (stdlib::is_reserved_namespace(s.name)) {
        diags_.error(
            s.name_span,
            fmt::format("'{}' is reserved for the standard library's {}.* actions", s.name, s.name),
            "choose another service name");
        continue;
      }
      auto [it, added] = out_.service_index.emplace(s.name, out_.services.size());
      if (!added) {
        diags_.error(s.name_span, fmt::format("service '{}' is already defined at {}", s.name,
                                              where(file_.services[it->second].name_span)));
        continue;
      }
      out_.services.push_back(check_service(s));
    }
  }

  bytecode::Service check_service(const ast::Service& s) {
    bytecode::Service svc;
    svc.name = s.name;
    std::unordered_map<std::string, Span> seen;
    for (const auto& [clause, span] : s.clauses) {
      if (clause == "op") continue;
      if (!seen.emplace(clause, span).second) {
        diags_.error(span, fmt::format("service '{}' has a second '{}' clause", s.name, clause));
      }
    }
    if (s.has_url) {
      svc.url = s.url;
      if (s.url.rfind("https://", 0) == 0) {
        diags_.error(s.url_span, "https is not supported yet",
                     "use http:// (TLS termination belongs in a proxy for now)");
      } else if (s.url.rfind("http://", 0) != 0 || s.url.size() <= 7) {
        diags_.error(s.url_span, fmt::format("service url '{}' must start with http://", s.url));
      }
      while (!svc.url.empty() && svc.url.back() == '/') svc.url.pop_back();
    }
    if (s.timeout) {
      if (auto ms = duration(*s.timeout, "the service timeout")) svc.timeout_ms = *ms;
    }
    if (s.breaker) {
      auto f = fields(*s.breaker, {"failures", "reset", "probes"}, "a breaker");
      if (!f.count("failures") || !f.count("reset")) {
        diags_.error(s.breaker->span, "a breaker needs 'failures' and 'reset'",
                     "for example: breaker { failures: 5, reset: 30s, probes: 1 }");
      }
      if (f.count("failures")) {
        if (auto n = count(*f["failures"], "breaker failures", 1, kMaxBreakerFailures,
                           "a breaker that needs more consecutive failures would never open")) {
          svc.breaker_failures = *n;
        }
      }
      if (f.count("reset")) {
        if (auto ms = duration(*f["reset"], "breaker reset")) svc.breaker_reset_ms = *ms;
      }
      svc.breaker_probes = 1;
      if (f.count("probes")) {
        if (auto n =
                count(*f["probes"], "breaker probes", 1, kMaxConcurrentCalls, concurrent_help())) {
          svc.breaker_probes = *n;
        }
      }
    }
    if (s.bulkhead) {
      if (auto n = count(*s.bulkhead, "bulkhead", 1, kMaxConcurrentCalls, concurrent_help())) {
        svc.bulkhead = *n;
      }
    }
    std::unordered_map<std::string, Span> ops;
    for (const ast::Route& r : s.routes) {
      if (!s.has_url) {
        diags_.error(r.span, fmt::format("op routes need a url, and service '{}' has none", s.name),
                     "add url \"http://host:port\" or remove the route");
      }
      if (!ops.emplace(r.op, r.op_span).second) {
        diags_.error(r.op_span, fmt::format("operation '{}' is routed twice", r.op));
      }
      if (std::find(kMethods.begin(), kMethods.end(), r.method) == kMethods.end()) {
        std::string help = did_you_mean(r.method, kMethods);
        diags_.error(r.method_span, fmt::format("'{}' is not an HTTP method", r.method),
                     help.empty() ? "use GET, POST, PUT, PATCH or DELETE" : help);
      }
      if (r.path.empty() || r.path[0] != '/') {
        diags_.error(r.path_span, "a route path must start with '/'");
      }
      check_path_template(r);
      svc.routes.push_back({r.op, r.method, r.path});
    }
    const auto index = static_cast<uint32_t>(out_.services.size());  // The one being declared.
    if (s.idempotent_all) out_.idempotent_services.insert(index);
    for (const auto& [op, span] : s.idempotent_ops) {
      out_.idempotent_actions.insert(s.name + "." + op);
    }
    return svc;
  }

  // Placeholders in a route path must be `${name}` with an identifier name.
  void check_path_template(const ast::Route& r) {
    for (size_t i = r.path.find("${"); i != std::string::npos; i = r.path.find("${", i + 2)) {
      size_t end = r.path.find('}', i);
      std::string_view name = end == std::string::npos
                                  ? std::string_view()
                                  : std::string_view(r.path).substr(i + 2, end - i - 2);
      bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                std::all_of(name.begin(), name.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                });
      if (!ok) {
        diags_.error(r.path_span, "a route placeholder must be ${argument_name}");
        return;
      }
    }
  }

  // ---- Retry policies -----------------------------------------------------

  void declare_policies() {
    for (const ast::RetryPolicy& p : file_.policies) {
      auto [it, added] = out_.policy_index.emplace(p.name, out_.policies.size());
      if (!added) {
        diags_.error(p.name_span, fmt::format("retry policy '{}' is already defined", p.name));
        continue;
      }
      bytecode::RetryPolicy policy = check_policy(p.body, fmt::format("retry policy '{}'", p.name));
      policy.name = p.name;
      out_.policies.push_back(std::move(policy));
    }
  }

  bytecode::RetryPolicy check_policy(const ast::Config& body, const std::string& what) {
    bytecode::RetryPolicy policy;
    policy.backoff = bytecode::Backoff::Exponential;
    policy.initial_ms = kDefaultInitialMs;
    policy.factor = kDefaultFactor;
    policy.max_ms = kDefaultMaxMs;
    for (const ErrorClassInfo& c : kErrorClasses) {
      if (c.retried_by_default) policy.retry_on.emplace_back(c.name);
    }
    auto f = fields(body, {"attempts", "backoff", "max", "jitter", "on", "then"}, what);
    if (f.count("attempts") && f["attempts"]->kind == ExprKind::Var &&
        f["attempts"]->text == "unlimited") {
      policy.attempts = bytecode::kUnlimitedAttempts;
    } else if (f.count("attempts")) {
      if (auto n = count(*f["attempts"], "attempts", 1, kMaxAttempts,
                         "every attempt is recorded in the instance's history")) {
        policy.attempts = *n;
      }
    } else {
      diags_.error(body.span, fmt::format("{} needs 'attempts'", what),
                   "for example: { attempts: 3, backoff: exponential(200ms, 2.0, 5s) }");
    }
    if (f.count("backoff")) check_backoff(*f["backoff"], policy);
    if (f.count("max")) {
      if (auto ms = duration(*f["max"], "max")) policy.max_ms = *ms;
    }
    if (policy.max_ms != 0 && policy.max_ms < policy.initial_ms) {
      const Expr* at = f.count("max") ? f["max"] : f["backoff"];
      diags_.error(at ? at->span : body.span,
                   fmt::format("the maximum delay ({}) is less than the initial delay ({})",
                               format_duration(policy.max_ms), format_duration(policy.initial_ms)));
    }
    if (f.count("jitter")) {
      const Expr& j = *f["jitter"];
      const std::vector<std::string> kinds = {"none", "full", "equal"};
      if (j.kind == ExprKind::Var && j.text == "none")
        policy.jitter = bytecode::Jitter::None;
      else if (j.kind == ExprKind::Var && j.text == "full")
        policy.jitter = bytecode::Jitter::Full;
      else if (j.kind == ExprKind::Var && j.text == "equal")
        policy.jitter = bytecode::Jitter::Equal;
      else {
        std::string help = j.kind == ExprKind::Var ? did_you_mean(j.text, kinds) : "";
        diags_.error(j.span, "jitter must be none, full or equal", help);
      }
    }
    if (f.count("on")) {
      const Expr& on = *f["on"];
      policy.retry_on.clear();
      if (on.kind == ExprKind::Var && on.text == "any") {
        policy.retry_on.emplace_back(bytecode::kAnyClass);
      } else if (on.kind != ExprKind::List) {
        diags_.error(on.span, "'on' must be a list of error classes, or any",
                     "for example: on: [timeout, unavailable]");
      } else {
        for (const ast::ExprPtr& item : on.items) {
          if (item->kind != ExprKind::Var) {
            diags_.error(item->span, "an error class is a name such as timeout or unavailable");
            continue;
          }
          error_class(item->text, item->span);
          policy.retry_on.push_back(item->text);
        }
      }
    }
    if (f.count("then")) {
      const Expr& t = *f["then"];
      if (t.kind == ExprKind::Var && t.text == "pause") {
        policy.then = bytecode::Then::Pause;
        then_spans_[&body] = t.span;
      } else if (!(t.kind == ExprKind::Var && t.text == "fail")) {
        std::string help = t.kind == ExprKind::Var ? did_you_mean(t.text, {"fail", "pause"}) : "";
        if (help.empty()) {
          help = "then: fail (the default) compensates the saga; then: pause waits for an operator";
        }
        diags_.error(t.span, "then must be fail or pause", help);
      }
    }
    return policy;
  }

  // Resolves a `retry` or `undo_retry` reference: an inline body becomes a
  // policy of its own, a name is looked up among the file's policies. kNone
  // when it cannot be resolved (reported). `what` names it in messages ("the
  // retry of step 'charge'"); `keyword` is the clause ("retry", "undo_retry").
  uint32_t resolve_policy(const ast::RetryRef& ref, const std::string& what) {
    if (ref.inline_policy) {
      const auto index = static_cast<uint32_t>(out_.policies.size());
      out_.policies.push_back(check_policy(*ref.inline_policy, what));
      return index;
    }
    auto p = out_.policy_index.find(ref.name);
    if (p != out_.policy_index.end()) return p->second;
    if (broken("retry", ref.name)) return bytecode::kNone;  // Already reported as a syntax error.
    std::vector<std::string> names;
    for (const auto& [name, index] : out_.policy_index) names.push_back(name);
    std::sort(names.begin(), names.end());
    std::string help = did_you_mean(ref.name, names);
    if (help.empty()) {
      help = fmt::format("declare it: retry {} {{ attempts: 3, backoff: fixed(1s) }}", ref.name);
    }
    diags_.error(ref.span, fmt::format("unknown retry policy '{}'", ref.name), help);
    return bytecode::kNone;
  }

  // An undo's policy cannot end in a pause: an exhausted undo already waits
  // for an operator, as `stuck`. Reports it at the `then:` of an inline body
  // or at the name of the policy.
  void check_undo_policy(const ast::RetryRef& ref, uint32_t index) {
    if (index == bytecode::kNone || out_.policies[index].then != bytecode::Then::Pause) return;
    Span at = ref.span;
    if (ref.inline_policy) {
      if (auto it = then_spans_.find(ref.inline_policy.get()); it != then_spans_.end()) {
        at = it->second;
      }
    }
    diags_.error(at, "an undo's retry policy cannot end in a pause",
                 ref.inline_policy
                     ? "remove `then: pause`: an undo that exhausts its policy already waits for "
                       "an operator (the instance is stuck, with a dead letter)"
                     : fmt::format("policy '{}' has `then: pause`; an undo that exhausts its "
                                   "policy already waits for an operator (stuck): use a policy "
                                   "without it",
                                   ref.name));
  }

  // The saga's default policy for its undos: `undo_retry POLICY`, once, at
  // the top level of the saga body.
  void check_undo_defaults(const ast::Block& body, bool top) {
    for (const ast::Stmt& s : body) {
      if (s.kind == ast::StmtKind::UndoRetry) {
        if (!top) {
          diags_.error(s.span,
                       "'undo_retry' as a statement is the saga's default for all its undos and "
                       "must be at its top level",
                       "move it to the start of the saga body, or write it inside a step for "
                       "that step's undo");
        } else if (saga_undo_seen_) {
          diags_.error(s.span, "the saga already has a default 'undo_retry'",
                       "a saga has one default for its undos; a step's own policy is written "
                       "inside the step");
        } else if (s.retry) {
          saga_undo_seen_ = true;
          saga_undo_policy_ = resolve_policy(*s.retry, "the saga's undo_retry");
          check_undo_policy(*s.retry, saga_undo_policy_);
        }
      } else {
        for (const ast::Block* inner : {s.then_block.get(), s.else_block.get(), s.body.get()}) {
          if (inner) check_undo_defaults(*inner, false);
        }
      }
    }
  }

  // Warns when [name], used as an error class (in `on: [...]` or `fail NAME "..."`), is
  // not one of the runtime's classes but close to one: a misspelling. Other custom
  // classes are fine.
  void error_class(const std::string& name, Span span) {
    if (std::find(kBuiltinClasses.begin(), kBuiltinClasses.end(), name) != kBuiltinClasses.end()) {
      return;
    }
    std::string near = closest(name, kBuiltinClasses);
    if (near.empty()) return;
    diags_.warning(
        span, fmt::format("'{}' is not a built-in error class", name),
        fmt::format("did you mean '{}'? (custom classes raised by `fail` are allowed)", near));
  }

  // backoff: fixed(d) | linear(initial, step[, max]) | exponential(initial, factor[, max])
  void check_backoff(const Expr& e, bytecode::RetryPolicy& p) {
    const std::vector<std::string> kinds = {"fixed", "linear", "exponential"};
    if (e.kind != ExprKind::Call || std::find(kinds.begin(), kinds.end(), e.text) == kinds.end()) {
      std::string help =
          (e.kind == ExprKind::Call || e.kind == ExprKind::Var) ? did_you_mean(e.text, kinds) : "";
      if (help.empty()) help = "use fixed(1s), linear(1s, 500ms) or exponential(200ms, 2.0, 5s)";
      diags_.error(e.span, "backoff must be fixed(...), linear(...) or exponential(...)", help);
      return;
    }
    size_t n = e.items.size();
    auto arity = [&](size_t min, size_t max, const char* form) {
      if (n < min || n > max) {
        diags_.error(e.span, fmt::format("{} takes {}", e.text, form));
        return false;
      }
      return true;
    };
    if (e.text == "fixed") {
      p.backoff = bytecode::Backoff::Fixed;
      p.max_ms = 0;
      if (!arity(1, 1, "one duration: fixed(1s)")) return;
      if (auto ms = duration(*e.items[0], "the delay")) p.initial_ms = *ms;
    } else if (e.text == "linear") {
      p.backoff = bytecode::Backoff::Linear;
      p.max_ms = 0;
      if (!arity(2, 3,
                 "an initial delay, an increment and an optional maximum: linear(1s, 500ms, 5s)"))
        return;
      if (auto ms = duration(*e.items[0], "the initial delay")) p.initial_ms = *ms;
      if (auto ms = duration(*e.items[1], "the increment")) p.step_ms = *ms;
      if (n == 3) {
        if (auto ms = duration(*e.items[2], "the maximum delay")) p.max_ms = *ms;
      }
    } else {
      p.backoff = bytecode::Backoff::Exponential;
      p.max_ms = 0;
      if (!arity(2, 3,
                 "an initial delay, a factor and an optional maximum: exponential(200ms, 2.0, 5s)"))
        return;
      if (auto ms = duration(*e.items[0], "the initial delay")) p.initial_ms = *ms;
      const Expr& factor = *e.items[1];
      if (factor.kind != ExprKind::Number) {
        diags_.error(factor.span, "the factor must be a number such as 2.0");
      } else if (!std::isfinite(factor.number)) {
        // The parser said "out of range".
      } else if (factor.number < kMinBackoffFactor) {
        diags_.error(factor.span,
                     fmt::format("the factor must be between {:.1f} and {:.1f}", kMinBackoffFactor,
                                 kMaxBackoffFactor),
                     "a factor below 1 would shrink the delays");
      } else if (factor.number > kMaxBackoffFactor) {
        diags_.error(factor.span,
                     fmt::format("the factor is too large: the limit is {:.1f}", kMaxBackoffFactor),
                     "a larger factor reaches the maximum delay at the second retry; for one "
                     "delay every time, write fixed(...)");
      } else {
        p.factor = factor.number;
      }
      if (n == 3) {
        if (auto ms = duration(*e.items[2], "the maximum delay")) p.max_ms = *ms;
      }
    }
  }

  // ---- Sagas ----------------------------------------------------------------

  void check_saga(const ast::Saga& saga) {
    out_.sagas.emplace_back();
    saga_ = &out_.sagas.back();
    bindings_.clear();
    step_names_.clear();
    param_types_.clear();
    slots_.clear();
    scope_suffixes_ = {""};
    scope_ = 0;
    enclosing_.clear();
    loop_vars_.clear();

    Flow flow;
    std::set<std::string>& bound = flow.definite;
    for (const ast::Param& p : saga.params) {
      bytecode::Type type = bytecode::Type::Any;
      if (!p.type.empty()) {
        auto it = std::find(kTypes.begin(), kTypes.end(), p.type);
        if (it == kTypes.end()) {
          std::string help = did_you_mean(p.type, kTypes);
          diags_.error(
              p.type_span, fmt::format("unknown type '{}'", p.type),
              help.empty() ? "types are string, number, bool, list, object and any" : help);
        } else {
          static const bytecode::Type kMap[] = {bytecode::Type::String, bytecode::Type::Number,
                                                bytecode::Type::Bool,   bytecode::Type::List,
                                                bytecode::Type::Object, bytecode::Type::Any};
          type = kMap[it - kTypes.begin()];
        }
      }
      if (!bound.insert(p.name).second) {
        diags_.error(p.name_span, fmt::format("parameter '{}' is declared twice", p.name));
        continue;
      }
      flow.maybe.emplace(p.name, slot(p.name));
      saga_->params.push_back({p.name, type});
      param_types_[p.name] = type;
      bindings_[p.name].push_back({p.name_span.offset});
    }
    collect_bindings(saga.body);
    check_deadlines(saga.body, true);
    saga_undo_seen_ = false;
    saga_undo_policy_ = bytecode::kNone;
    check_undo_defaults(saga.body, true);
    block(saga.body, flow);
  }

  // The slot of [name] in the current scope. Every binding of one name in a
  // scope shares it (the two sides of an `if` may bind the same name). Slot
  // names are the variable's name in the main code and, in a foreach body,
  // the name with the loop variables it varies with: `r (each item)`, or
  // `r (each order, item)` in nested loops. [shown] overrides that (the loop
  // variable's own slot is just `item`).
  uint32_t slot(const std::string& name, const std::string* shown = nullptr) {
    auto [it, added] =
        slots_.emplace(std::pair(scope_, name), static_cast<uint32_t>(saga_->slot_names.size()));
    if (added) saga_->slot_names.push_back(shown ? *shown : name + scope_suffixes_[scope_]);
    return it->second;
  }

  // Records every binding site (let, -> name) of a body, for explanations.
  void collect_bindings(const ast::Block& body) {
    for_each_binding(body, [&](const std::string& name, Span span) {
      bindings_[name].push_back({span.offset});
    });
  }

  // The span of the word (a keyword) at [offset].
  Span word_span(uint32_t offset) const {
    const std::string& text = diags_.file().text();
    uint32_t end = offset;
    while (end < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) {
      ++end;
    }
    return {offset, end - offset};
  }

  // A deadline belongs to the saga as a whole: once, at the top level.
  void check_deadlines(const ast::Block& body, bool top) {
    for (const ast::Stmt& s : body) {
      if (s.kind == ast::StmtKind::Deadline) {
        if (!top) {
          diags_.error(s.span, "a deadline applies to the whole saga and must be at its top level",
                       "move it to the start of the saga body");
        } else if (saga_->deadline_ms != 0) {
          diags_.error(s.span, "the saga already has a deadline");
        } else if (s.expr) {
          if (auto ms = duration(*s.expr, "the deadline")) saga_->deadline_ms = *ms;
        }
      } else {
        for (const ast::Block* inner : {s.then_block.get(), s.else_block.get(), s.body.get()}) {
          if (inner) check_deadlines(*inner, false);
        }
      }
    }
  }

  void block(const ast::Block& body, Flow& state) {
    // A block that starts unreachable is inside a statement already warned about.
    bool warned = !state.reachable;
    for (const ast::Stmt& s : body) {
      if (!state.reachable && !warned && s.kind != ast::StmtKind::Deadline &&
          s.kind != ast::StmtKind::UndoRetry) {
        diags_.warning(s.span, "this statement is never reached",
                       "'fail' and 'output' end the saga");
        warned = true;
      }
      statement(s, state);
    }
  }

  // Binds [name] at [span]; returns its slot, or kNone after reporting that
  // it is bound already.
  uint32_t bind(const std::string& name, Span span, Flow& state) {
    if (state.maybe.count(name)) {
      if (const ast::Stmt* loop = enclosing_loop_of(name)) {
        diags_.error(span,
                     fmt::format("'{}' is the loop variable of the foreach at {} and cannot be "
                                 "bound in its body",
                                 name, where(loop->name_span)),
                     "choose another name");
        return bytecode::kNone;
      }
      const auto& sites = bindings_[name];
      Span first{sites.empty() ? span.offset : sites.front().offset, 1};
      diags_.error(span, fmt::format("'{}' is already bound at {}", name, where(first)),
                   "a name is bound once per saga; choose another name");
      return bytecode::kNone;
    }
    // A sibling branch checked before this one binds it too.
    for (const Enclosing& e : enclosing_) {
      auto other = e.binder.find(name);
      if (other == e.binder.end() || other->second.first >= e.branch) continue;
      diags_.error(span,
                   fmt::format("'{}' is bound in branch '{}' (at {}) and in branch '{}' of the "
                               "same parallel block",
                               name, e.branches[other->second.first]->name,
                               where(other->second.second), e.branches[e.branch]->name),
                   "after the block a branch's values are the saga's, so a name can come "
                   "from one branch only; choose another name in one of them");
      return bytecode::kNone;
    }
    const uint32_t at = slot(name);
    state.maybe.emplace(name, at);
    state.definite.insert(name);
    return at;
  }

  void statement(const ast::Stmt& s, Flow& st) {
    switch (s.kind) {
      case ast::StmtKind::Let:
        if (s.expr) expr(*s.expr, st);
        out_.lets[&s] = bind(s.name, s.name_span, st);
        break;
      case ast::StmtKind::Step:
        if (s.step) step(*s.step, st);
        break;
      case ast::StmtKind::If: {
        if (s.expr) expr(*s.expr, st);
        Flow then_flow = st;
        Flow else_flow = st;
        if (s.then_block) block(*s.then_block, then_flow);
        if (s.else_block) block(*s.else_block, else_flow);
        // A branch that ends the saga does not constrain what follows.
        if (!then_flow.reachable && else_flow.reachable)
          st = else_flow;
        else if (!else_flow.reachable && then_flow.reachable)
          st = then_flow;
        else {
          std::set<std::string> both;
          std::set_intersection(then_flow.definite.begin(), then_flow.definite.end(),
                                else_flow.definite.begin(), else_flow.definite.end(),
                                std::inserter(both, both.begin()));
          st.reachable = then_flow.reachable || else_flow.reachable;
          st.definite = std::move(both);
          st.pivot = then_flow.pivot ? then_flow.pivot : else_flow.pivot;
          st.pivot_definite = then_flow.pivot_definite && else_flow.pivot_definite;
          st.maybe = then_flow.maybe;
          st.maybe.insert(else_flow.maybe.begin(), else_flow.maybe.end());
          st.lists.clear();
          for (const auto& [name, loop] : then_flow.lists) {
            if (else_flow.lists.count(name)) st.lists.emplace(name, loop);
          }
        }
        break;
      }
      case ast::StmtKind::Fail:
        if (st.pivot && st.reachable) {
          diags_.error(word_span(s.span.offset),
                       fmt::format("'fail' after the pivot step '{}' (at {}): past its point of "
                                   "no return the saga cannot be compensated",
                                   st.pivot->name, where(st.pivot->name_span)),
                       "decide before the pivot: test the condition and fail there");
        }
        if (!s.name.empty()) error_class(s.name, s.name_span);
        if (s.expr) expr(*s.expr, st);
        st.reachable = false;
        break;
      case ast::StmtKind::Output:
        if (!enclosing_.empty()) output_in_fiber(s);
        if (s.expr) expr(*s.expr, st);
        st.reachable = false;
        break;
      case ast::StmtKind::Emit:
        // The grammar gives a dotted name (at most 256 bytes are an event
        // type) and an object literal, whose duplicate keys and unknown
        // variables expr() reports.
        check_event_type(s.name, s.name_span, diags_);
        if (s.expr) expr(*s.expr, st);
        break;
      case ast::StmtKind::Deadline:
        break;  // Checked by check_deadlines().
      case ast::StmtKind::UndoRetry:
        break;  // Checked by check_undo_defaults().
      case ast::StmtKind::Parallel:
        parallel(s, st);
        break;
      case ast::StmtKind::Foreach:
        foreach_loop(s, st);
        break;
      case ast::StmtKind::Await:
        await_signal(s, st);
        break;
      case ast::StmtKind::Branch:
        diags_.error(word_span(s.span.offset),
                     "'branch' belongs directly inside 'parallel { ... }'",
                     "write: parallel { branch a { ... } branch b { ... } }");
        if (s.body) block(*s.body, st);  // Checked as if written without 'branch'.
        break;
    }
  }

  // ---- Signals -----------------------------------------------------------------

  // await signal NAME timeout D [-> v] [else { ... }]: the timeout is
  // required (a person may never answer) and positive; `v` is bound on both
  // paths (null when the timeout fired), before the else block runs; an
  // empty else block would change nothing but hide the timeout, so it is an
  // error; past the pivot a timeout that fails the saga cannot be
  // compensated, so there the else block is required.
  //
  // await event TYPE where C ...: the same, for an incoming event of TYPE
  // that fits C (event_condition).
  void await_signal(const ast::Stmt& s, Flow& st) {
    AwaitInfo info;
    std::string what = fmt::format("await {} {}", s.event ? "event" : "signal", s.signal);
    for (size_t i = 1; i < s.types.size(); ++i) what += ", " + s.types[i].first;
    const std::string example =
        fmt::format("{}{} timeout {}{}", what, s.where ? " where ..." : "", s.event ? "10m" : "48h",
                    s.name.empty() ? "" : " -> " + s.name);
    if (s.event) {
      for (size_t i = 0; i < s.types.size(); ++i) {
        const auto& [type, span] = s.types[i];
        check_event_type(type, span, diags_);
        for (size_t j = 0; j < i; ++j) {
          if (s.types[j].first == type) {
            diags_.error(span, fmt::format("event type '{}' is awaited twice here", type),
                         "name each type once");
          }
        }
      }
      if (s.where) event_condition(*s.where, info, st);
    }
    if (!s.expr) {
      diags_.error(s.signal_span,
                   fmt::format("'{}' needs a timeout: {} may never come", what,
                               s.event ? "the event" : "a signal"),
                   fmt::format("write: {}", example));
    } else if (auto ms = duration(*s.expr, s.event ? "the timeout of 'await event'"
                                                   : "the timeout of 'await signal'")) {
      info.timeout_ms = *ms;
    }
    if (st.pivot && st.reachable && !s.else_block) {
      diags_.error(s.signal_span,
                   fmt::format("'{}' after the pivot step '{}' (at {}) needs an "
                               "'else' block: its timeout would fail the saga past its point of "
                               "no return",
                               what, st.pivot->name, where(st.pivot->name_span)),
                   fmt::format("write: {} else {{ ... }}", example));
    }
    if (!s.name.empty()) info.slot = bind(s.name, s.name_span, st);
    if (s.else_block) {
      if (s.else_block->empty()) {
        diags_.error(s.else_span, "an empty 'else' block has no effect",
                     "remove it (the timeout then fails the step with class `timeout` and the "
                     "saga compensates), or say what happens instead, as in: else { fail "
                     "rejected \"no answer\" }");
      }
      Flow other = st;
      block(*s.else_block, other);
      if (other.reachable) {
        std::set<std::string> both;
        std::set_intersection(st.definite.begin(), st.definite.end(), other.definite.begin(),
                              other.definite.end(), std::inserter(both, both.begin()));
        st.definite = std::move(both);
        st.maybe.insert(other.maybe.begin(), other.maybe.end());
        if (!st.pivot) st.pivot = other.pivot;
        st.pivot_definite = st.pivot_definite && other.pivot_definite;
        for (auto it = st.lists.begin(); it != st.lists.end();) {
          it = other.lists.count(it->first) ? std::next(it) : st.lists.erase(it);
        }
      }
    }
    out_.awaits[&s] = info;
  }

  // The `where` of an `await event`: comparisons `event.PATH == VALUE` (either
  // way round) joined by `and`, each path once; VALUE is read in the saga
  // when the await begins (it may not read the event), and the event fits
  // when it has each value at its path. Anything else is an error: the
  // store finds the waiting instances by these values, not by running code.
  void event_condition(const Expr& c, AwaitInfo& info, Flow& st) {
    if (c.kind == ExprKind::Binary && c.binary_op == ast::BinaryOp::And && c.items.size() == 2) {
      event_condition(*c.items[0], info, st);
      event_condition(*c.items[1], info, st);
      return;
    }
    if (c.kind == ExprKind::Binary && c.binary_op == ast::BinaryOp::Eq && c.items.size() == 2) {
      const bool left = is_event_path(*c.items[0]);
      const Expr& path = left ? *c.items[0] : *c.items[1];
      const Expr& value = left ? *c.items[1] : *c.items[0];
      if (is_event_path(path) && !reads_event(value)) {
        std::optional<std::string> p = event_path(path, diags_);
        if (!p) return;
        for (const auto& [seen, expr_of] : info.where) {
          if (seen == *p) {
            diags_.error(path.span, fmt::format("'event.{}' is compared twice in this 'where'", *p),
                         "compare each field of the event once");
            return;
          }
        }
        expr(value, st);
        info.where.emplace_back(*p, &value);
        return;
      }
      if (is_event_path(path)) {
        diags_.error(value.span,
                     "the value an event's field is compared with may not read the event",
                     "compare with what the saga knows when it begins to wait, as in: where "
                     "event.data.order == order_id");
        return;
      }
    }
    diags_.error(c.span,
                 "an await's 'where' compares fields of the event with values: event.PATH == "
                 "VALUE, joined by 'and'",
                 "for example: where event.data.order == order_id and event.data.ok == true");
  }

  // Whether `e` reads the name `event` anywhere.
  static bool reads_event(const Expr& e) {
    if (e.kind == ExprKind::Var && e.text == "event") return true;
    return std::any_of(e.items.begin(), e.items.end(),
                       [](const ast::ExprPtr& i) { return i && reads_event(*i); });
  }

  // ---- Parallel blocks and loops ---------------------------------------------

  // parallel { branch a { ... } branch b { ... } }: each branch starts from the
  // flow before the block; after it, what any branch binds is bound (on the
  // paths where the branch binds it), and the code after it runs only if every
  // branch can reach its end.
  void parallel(const ast::Stmt& s, Flow& st) {
    const Span keyword = word_span(s.span.offset);
    Enclosing e;
    e.stmt = &s;
    std::unordered_map<std::string, Span> names;
    for (const ast::Stmt& inner : *s.body) {
      if (inner.kind != ast::StmtKind::Branch) {
        diags_.error(word_span(inner.span.offset),
                     "only branches can be directly inside 'parallel { ... }'",
                     "put this statement inside a branch (branch name { ... }), or before or "
                     "after the parallel block");
        Flow scratch = st;  // Its own mistakes are reported; its bindings go nowhere.
        statement(inner, scratch);
        continue;
      }
      auto [it, added] = names.emplace(inner.name, inner.name_span);
      if (!added) {
        diags_.error(
            inner.name_span,
            fmt::format("branch '{}' is already defined at {}", inner.name, where(it->second)),
            "branch names identify a branch in the history and in idempotency keys "
            "(<instance>/<branch>/<step>); make them unique within the block");
      }
      const size_t index = e.branches.size();
      e.branches.push_back(&inner);
      for_each_binding(*inner.body, [&](const std::string& name, Span span) {
        e.binder.emplace(name, std::pair(index, span));
      });
    }
    if (e.branches.empty()) {
      diags_.error(keyword, "a 'parallel' block needs at least one branch",
                   "for example: parallel { branch a { ... } branch b { ... } }");
    } else if (e.branches.size() == 1) {
      diags_.warning(keyword, "a 'parallel' block with one branch runs nothing in parallel",
                     "add branches, or write the branch's statements without 'parallel'");
    } else if (e.branches.size() > bytecode::kMaxBranches) {
      diags_.error(keyword,
                   fmt::format("a 'parallel' block has {} branches: the limit is {}",
                               e.branches.size(), bytecode::kMaxBranches),
                   "each branch runs as a fiber of the instance, checkpointed with it");
    }

    const std::vector<const ast::Stmt*> branches = e.branches;
    enclosing_.push_back(std::move(e));
    Flow after = st;
    bool joins = true;
    for (size_t i = 0; i < branches.size(); ++i) {
      enclosing_.back().branch = i;
      Flow branch = st;
      block(*branches[i]->body, branch);
      joins = joins && branch.reachable;
      after.definite.insert(branch.definite.begin(), branch.definite.end());
      after.maybe.insert(branch.maybe.begin(), branch.maybe.end());
      after.lists.insert(branch.lists.begin(), branch.lists.end());
    }
    enclosing_.pop_back();
    after.reachable = st.reachable && joins;
    st = std::move(after);
  }

  // foreach item in list [max n] { ... }: the body runs once per item, with
  // the loop variable bound to it, in a slot scope of its own. After the loop
  // each name the body bound holds the list of its per-iteration values (null
  // for an iteration that did not bind it), so it is bound on every path, even
  // when the body binds it only on some, and it is a list.
  void foreach_loop(const ast::Stmt& s, Flow& st) {
    const Span keyword = word_span(s.span.offset);
    BlockInfo info;
    if (s.expr) {
      expr(*s.expr, st);
      check_loop_list(*s.expr);
    }
    info.max = s.parallel ? 0 : 1;  // parallel foreach without max: no limit.
    if (s.max && !s.parallel) {
      diags_.error(s.max_span, "max applies to parallel foreach; a foreach runs one item at a time",
                   "write parallel foreach ... max N to run up to N items at once, or remove max");
    } else if (s.max) {
      if (auto n = count(*s.max, "max", 1, bytecode::kMaxBranches,
                         "each item in flight runs as a fiber of the instance, checkpointed with "
                         "it")) {
        info.max = *n;
        if (*n == 1) {
          diags_.warning(s.max->span, "'parallel foreach' with max 1 runs one item at a time",
                         "write foreach ... without 'parallel' and 'max'");
        }
      }
    }
    if (st.maybe.count(s.name)) {
      const ast::Stmt* outer = enclosing_loop_of(s.name);
      const auto& sites = bindings_[s.name];
      Span first = outer ? outer->name_span : Span{sites.empty() ? 0 : sites.front().offset, 1};
      diags_.error(s.name_span,
                   fmt::format("the loop variable '{}' would hide the {} '{}' bound at {}", s.name,
                               outer ? "loop variable" : "variable", s.name, where(first)),
                   "choose another name for the loop variable");
    }
    loop_vars_.emplace(s.name, s.name_span);

    // The body, in a scope of its own named after the loop variables around it.
    const uint32_t outer_scope = scope_;
    std::vector<std::string> vars;
    for (const Enclosing& e : enclosing_) {
      if (e.stmt->kind == ast::StmtKind::Foreach) vars.push_back(e.stmt->name);
    }
    vars.push_back(s.name);
    scope_ = static_cast<uint32_t>(scope_suffixes_.size());
    scope_suffixes_.push_back(fmt::format(" (each {})", fmt::join(vars, ", ")));
    Flow body = st;
    info.item_slot = slot(s.name, &s.name);
    body.maybe[s.name] = info.item_slot;
    body.definite.insert(s.name);
    body.lists.erase(s.name);
    Enclosing e;
    e.stmt = &s;
    enclosing_.push_back(std::move(e));
    if (s.body) block(*s.body, body);
    enclosing_.pop_back();
    scope_ = outer_scope;

    // What the body bound is collected, in the order of the body's slots.
    std::vector<std::pair<uint32_t, std::string>> bound;
    for (const auto& [name, at] : body.maybe) {
      if (name != s.name && !st.maybe.count(name)) bound.emplace_back(at, name);
    }
    std::sort(bound.begin(), bound.end());
    for (const auto& [at, name] : bound) {
      const uint32_t list = slot(name);
      info.collect.push_back({at, list});
      st.maybe[name] = list;
      st.definite.insert(name);
      st.lists[name] = keyword;
    }
    out_.blocks[&s] = std::move(info);
  }

  // The foreach around the code being checked whose loop variable is [name].
  const ast::Stmt* enclosing_loop_of(const std::string& name) const {
    for (const Enclosing& e : enclosing_) {
      if (e.stmt->kind == ast::StmtKind::Foreach && e.stmt->name == name) return e.stmt;
    }
    return nullptr;
  }

  // A foreach over a value that can never be a list: a constant of another
  // kind, or a parameter declared with another type.
  void check_loop_list(const Expr& e) {
    using ast::BinaryOp;
    std::string what;
    switch (e.kind) {
      case ExprKind::Null:
        what = "null";
        break;
      case ExprKind::Bool:
        what = "a boolean";
        break;
      case ExprKind::Number:
      case ExprKind::Duration:
        what = "a number";
        break;
      case ExprKind::String:
      case ExprKind::Interp:
        what = "a string";
        break;
      case ExprKind::Object:
        what = "an object";
        break;
      case ExprKind::Unary:
        what = e.unary_op == ast::UnaryOp::Neg ? "a number" : "a boolean";
        break;
      case ExprKind::Binary:
        switch (e.binary_op) {
          case BinaryOp::Add:  // Lists can be added.
            break;
          case BinaryOp::Sub:
          case BinaryOp::Mul:
          case BinaryOp::Div:
          case BinaryOp::Mod:
            what = "a number";
            break;
          case BinaryOp::Eq:
          case BinaryOp::Ne:
          case BinaryOp::Lt:
          case BinaryOp::Le:
          case BinaryOp::Gt:
          case BinaryOp::Ge:
          case BinaryOp::And:
          case BinaryOp::Or:
            what = "a boolean";
            break;
        }
        break;
      case ExprKind::Var: {
        auto it = param_types_.find(e.text);
        if (it == param_types_.end() || it->second == bytecode::Type::List ||
            it->second == bytecode::Type::Any) {
          break;
        }
        diags_.error(e.span,
                     fmt::format("foreach needs a list, and '{}' is a {} parameter", e.text,
                                 bytecode::to_string(it->second)),
                     "declare the parameter as list, or loop over a list");
        return;
      }
      default:
        break;
    }
    if (what.empty()) return;
    diags_.error(e.span, fmt::format("foreach needs a list, and this is {}", what),
                 "loop over a list: a list parameter, a step result or [a, b, c]");
  }

  // `output` in a branch or loop body would complete the saga while other
  // fibers run or wait (the verifier refuses COMPLETE there).
  void output_in_fiber(const ast::Stmt& s) {
    if (enclosing_.back().stmt->kind == ast::StmtKind::Foreach) {
      diags_.error(word_span(s.span.offset), "'output' cannot be inside a foreach loop",
                   "an iteration cannot complete the saga while the others run or wait; put the "
                   "output after the loop (there, the values bound in the body are lists)");
    } else {
      diags_.error(word_span(s.span.offset), "'output' cannot be inside a branch of 'parallel'",
                   "a branch cannot complete the saga while the other branches run; put the "
                   "output after the parallel block");
    }
  }

  void step(const ast::Step& st, Flow& state) {
    auto [it, added] = step_names_.emplace(st.name, st.name_span);
    if (!added) {
      diags_.error(st.name_span,
                   fmt::format("step '{}' is already defined at {}", st.name, where(it->second)),
                   "step names identify steps in the history and in idempotency keys; make "
                   "them unique within the saga");
    }
    std::unordered_map<std::string, Span> seen;
    for (const auto& [clause, span] : st.clauses) {
      if (!seen.emplace(clause, span).second) {
        diags_.error(span, fmt::format("step '{}' has a second '{}' clause", st.name, clause));
      }
    }
    StepInfo info;
    current_step_ = &st;
    if (!st.action) {
      diags_.error(st.name_span, fmt::format("step '{}' has no 'do' action", st.name),
                   "add `do service.operation(...)`");
    } else {
      resolve_action(*st.action, info.action, info.service);
      called_.insert(info.action);
      args(*st.action, state);
    }
    if (!st.bind.empty()) info.result_slot = bind(st.bind, st.bind_span, state);
    if (st.undo) {
      resolve_action(*st.undo, info.undo_action, info.undo_service);
      called_.insert(info.undo_action);
      in_undo_ = true;
      args(*st.undo, state);
      in_undo_ = false;
    } else if (st.action && info.service != bytecode::kNoService &&
               st.kind == ast::StepKind::Plain && !state.pivot) {
      // (A pivot or retriable step, and any step after a pivot, is never
      // compensated by design: step_kind() has the rules for those.)
      const std::string& svc = out_.services[info.service].name;
      diags_.warning(
          st.name_span,
          fmt::format("step '{}' calls service '{}' but has no 'undo': it cannot be "
                      "compensated",
                      st.name, svc),
          fmt::format("add `undo {}.<operation>(...)` if its effect must be undone", svc));
    }
    check_engine_clauses(st);
    if (st.timeout) {
      if (auto ms = duration(*st.timeout, "the step timeout")) info.timeout_ms = *ms;
    }
    if (st.retry) {
      info.policy = resolve_policy(*st.retry, fmt::format("the retry of step '{}'", st.name));
    }
    if (st.undo_retry) {
      info.undo_policy =
          resolve_policy(*st.undo_retry, fmt::format("the undo_retry of step '{}'", st.name));
      if (!st.undo) {
        // A clause with no effect promises what the run will not do.
        diags_.error(
            st.undo_retry->span,
            fmt::format("'undo_retry' has no effect on step '{}': it has no 'undo'", st.name),
            "add `undo service.operation(...)`, or remove the undo_retry");
      } else {
        check_undo_policy(*st.undo_retry, info.undo_policy);
      }
    } else if (st.undo) {
      info.undo_policy = saga_undo_policy_;
    }
    if (!st.undo) info.undo_policy = bytecode::kNone;
    step_kind(st, info, state);
    current_step_ = nullptr;
    out_.steps[&st] = std::move(info);
  }

  // ---- Step kinds ----------------------------------------------------------------
  //
  // The saga literature's structure, checked on every path: compensable
  // steps, then at most one pivot (the point of no return), then retriable
  // steps, which are retried until they succeed. Past a pivot nothing is
  // compensated, so after it a step may neither have an undo nor be able to
  // give up (only retriable steps and the engine's own log and sleep), and
  // `fail` is an error. The pivot is one step of the saga's main line: in a
  // branch it would pass the point of no return while its siblings can still
  // fail, and in a loop it would be passed once per item. A retriable step
  // belongs after the pivot on every path: before it, a later failure would
  // compensate the steps around it and leave its own effect in place.

  // The span of [st]'s `undo` clause keyword (its name when there is none).
  static Span clause_span(const ast::Step& st, std::string_view clause) {
    for (const auto& [name, span] : st.clauses) {
      if (name == clause) return span;
    }
    return st.name_span;
  }

  void step_kind(const ast::Step& st, const StepInfo& info, Flow& state) {
    const std::string kind = st.kind == ast::StepKind::Pivot ? "pivot" : "retriable";
    const bool engine = engine_performed(st.action.get()) != nullptr;
    const std::string pivot_at = state.pivot
                                     ? fmt::format("the pivot step '{}' (at {})", state.pivot->name,
                                                   where(state.pivot->name_span))
                                     : std::string();
    if (st.kind == ast::StepKind::Plain) {
      if (!state.pivot || !state.reachable) return;
      if (st.undo) {
        diags_.error(st.name_span,
                     fmt::format("step '{}' has an undo, but it runs after {}: past the point "
                                 "of no return nothing is compensated",
                                 st.name, pivot_at),
                     "move it before the pivot, or make it `retriable step` without undo");
      } else if (st.action && !engine) {
        diags_.error(st.name_span,
                     fmt::format("step '{}' runs after {} and can fail: past the point of no "
                                 "return a failure cannot be compensated",
                                 st.name, pivot_at),
                     fmt::format("make it `retriable step {}` with retry {{ attempts: unlimited, "
                                 "on: any }}, so that it is retried until it succeeds",
                                 st.name));
      }
      return;
    }
    if (st.undo) {
      diags_.error(clause_span(st, "undo"),
                   fmt::format("a {} step has no undo: {}", kind,
                               st.kind == ast::StepKind::Pivot
                                   ? "it is the point of no return, never compensated"
                                   : "it runs after the pivot, where nothing is compensated"),
                   "remove the undo; a step whose effect can be undone is a plain step "
                   "before the pivot");
    }
    if (st.kind == ast::StepKind::Pivot) {
      if (!enclosing_.empty()) {
        const bool loop = enclosing_.back().stmt->kind == ast::StmtKind::Foreach;
        diags_.error(st.kind_span,
                     fmt::format("a pivot step cannot be inside {}",
                                 loop ? "a foreach loop" : "a branch of 'parallel'"),
                     loop ? "it would be passed once per item; put the pivot before or after "
                            "the loop"
                          : "it would pass the point of no return while the other branches "
                            "can still fail; put the pivot before or after the block");
      }
      if (state.pivot && state.reachable) {
        diags_.error(st.kind_span,
                     fmt::format("a second pivot on a path where {} is the point of no return "
                                 "already",
                                 pivot_at),
                     "a path has one pivot; make this one `retriable step`");
      }
      if (!state.pivot) state.pivot = &st;
      state.pivot_definite = true;
      return;
    }
    // Retriable.
    if (engine) {
      diags_.error(st.kind_span,
                   fmt::format("'retriable' has no effect on step '{}': {}() is performed by the "
                               "engine and cannot fail",
                               st.name, st.action->target),
                   "write it as a plain step");
    } else if (!st.retry) {
      diags_.error(st.kind_span,
                   fmt::format("retriable step '{}' has no retry: it must be retried until it "
                               "succeeds",
                               st.name),
                   "add retry { attempts: unlimited, backoff: exponential(1s, 2.0, 1m), on: any }");
    } else if (info.policy != bytecode::kNone) {
      const bytecode::RetryPolicy& p = out_.policies[info.policy];
      if (p.attempts != bytecode::kUnlimitedAttempts) {
        diags_.error(st.retry->span,
                     fmt::format("retriable step '{}' gives up after {} attempt{}: it must be "
                                 "retried until it succeeds",
                                 st.name, p.attempts, p.attempts == 1 ? "" : "s"),
                     "write attempts: unlimited in its retry policy");
      }
      if (!bytecode::retries_every_class(p)) {
        std::vector<std::string> missing;
        for (const std::string& c : kBuiltinClasses) {
          if (!bytecode::retries_class(p, c)) missing.push_back(c);
        }
        diags_.error(st.retry->span,
                     fmt::format("retriable step '{}' is not retried on {}: an attempt that "
                                 "fails so would end the step",
                                 st.name,
                                 missing.empty() ? std::string("custom classes")
                                                 : fmt::format("{} and custom classes",
                                                               fmt::join(missing, ", "))),
                     "write on: any in its retry policy (every class, custom ones too)");
      }
    }
    if (state.reachable && !state.pivot_definite) {
      diags_.error(
          st.kind_span,
          state.pivot
              ? fmt::format("retriable step '{}' follows {} on some paths only", st.name, pivot_at)
              : fmt::format("retriable step '{}' is not after a pivot step", st.name),
          "a retriable step has no undo, so a failure after it would compensate the steps "
          "around it and leave its effect; mark the point of no return before it with "
          "`pivot step`, or give it an undo as a plain step");
    }
  }

  // Resolves `svc.op` or a standard action; reports unknown names.
  void resolve_action(const ast::ActionCall& call, std::string& name, uint32_t& service) {
    name = call.target;
    service = bytecode::kNoService;
    auto dot = call.target.find('.');
    if (dot == std::string::npos) {
      if (const stdlib::ActionInfo* a = stdlib::find_action(call.target);
          a && a->performer == stdlib::Performer::kSignal) {
        diags_.error(call.target_span,
                     fmt::format("'{}' is what `await signal` compiles to; a step cannot call it",
                                 call.target),
                     "wait for a signal with a statement: await signal approve timeout 48h -> "
                     "decision");
        return;
      }
      if (const stdlib::ActionInfo* a = stdlib::find_action(call.target)) {
        check_stdlib_args(call, *a);
        return;
      }
      if (is_saga(call.target)) {
        diags_.error(
            call.target_span,
            fmt::format("'{}' is a saga; sagas cannot be called as actions yet", call.target),
            saga_call_help(call.target));
        return;
      }
      std::vector<std::string> names;
      for (const stdlib::ActionInfo& a : stdlib::kActions) names.emplace_back(a.name);
      std::string help = did_you_mean(call.target, names);
      if (help.empty()) {
        help =
            "an action is service.operation(...) of a declared service, or one of the "
            "standard actions (log, sleep, http.get, exec, ...)";
      }
      diags_.error(call.target_span, fmt::format("unknown action '{}'", call.target), help);
      return;
    }
    std::string prefix = call.target.substr(0, dot);
    if (stdlib::is_reserved_namespace(prefix)) {
      if (const stdlib::ActionInfo* a = stdlib::find_action(call.target)) {
        check_stdlib_args(call, *a);
        return;
      }
      std::vector<std::string> names;
      for (const stdlib::ActionInfo& a : stdlib::kActions) names.emplace_back(a.name);
      diags_.error(call.target_span, fmt::format("unknown action '{}'", call.target),
                   did_you_mean(call.target, names));
      return;
    }
    auto it = out_.service_index.find(prefix);
    Span prefix_span{call.target_span.offset, static_cast<uint32_t>(prefix.size())};
    if (it == out_.service_index.end() && broken("service", prefix)) return;
    if (it == out_.service_index.end()) {
      std::vector<std::string> names;
      for (const ast::Service& s : file_.services) names.push_back(s.name);
      std::string help = did_you_mean(prefix, names);
      if (help.empty()) {
        help = fmt::format(
            "declare it: service {} {{ url \"http://...\" }} (without a url, the host "
            "application provides its actions)",
            prefix);
      }
      diags_.error(prefix_span, fmt::format("unknown service '{}'", prefix), help);
      return;
    }
    if (call.target.find('.', dot + 1) != std::string::npos) {
      diags_.error(call.target_span,
                   fmt::format("'{}' has more than one operation name", call.target),
                   fmt::format("call it as {}.operation(...)", prefix));
      return;
    }
    service = it->second;
  }

  // Checks a call of a built-in action against its row of stdlib/actions.def: unknown and
  // missing arguments, and constant arguments of the wrong kind or out of range (the
  // runtime checks computed ones with the same stdlib::check_action_arg()).
  void check_stdlib_args(const ast::ActionCall& call, const stdlib::ActionInfo& a) {
    std::vector<std::string> allowed;
    for (const stdlib::ArgSpec& spec : a.args()) allowed.emplace_back(spec.name);
    for (const ast::NamedArg& arg : call.args) {
      if (a.find_arg(arg.name) == nullptr) {
        std::string help = did_you_mean(arg.name, allowed);
        if (help.empty()) help = fmt::format("{}() takes: {}", a.name, fmt::join(allowed, ", "));
        diags_.error(arg.name_span, fmt::format("{}() has no argument '{}'", a.name, arg.name),
                     help);
        continue;
      }
      if (!arg.value) continue;
      if (auto value = constant_view(*arg.value)) {
        std::string wrong = stdlib::check_action_arg(a.name, arg.name, *value);
        if (!wrong.empty()) {
          diags_.error(arg.value->span, std::move(wrong),
                       fmt::format("for example: {}", a.example));
        }
      }
    }
    for (const stdlib::ArgSpec& spec : a.args()) {
      if (spec.presence != stdlib::ArgPresence::kRequired) continue;
      bool given = std::any_of(call.args.begin(), call.args.end(),
                               [&](const ast::NamedArg& arg) { return arg.name == spec.name; });
      if (!given) {
        diags_.error(call.span, fmt::format("{}() needs the argument '{}'", a.name, spec.name),
                     fmt::format("for example: {}", a.example));
      }
    }
  }

  // The value of [e] as stdlib::check_action_arg() sees it, when [e] is a constant: a
  // literal, a negated number or duration, or a list or object literal (whose kind is
  // all that is checked). Nullopt for anything computed, and for a number out of range
  // (the parser reported it).
  static std::optional<stdlib::ArgView> constant_view(const Expr& e) {
    using Kind = stdlib::ArgView::Kind;
    switch (e.kind) {
      case ExprKind::Null:
        return stdlib::ArgView{Kind::kNull};
      case ExprKind::Bool:
        return stdlib::ArgView{Kind::kBool};
      case ExprKind::Number:
      case ExprKind::Duration:
        if (!std::isfinite(e.number)) return std::nullopt;
        return stdlib::ArgView{Kind::kNumber, e.number};
      case ExprKind::String:
        return stdlib::ArgView{Kind::kString, 0, e.text};
      case ExprKind::List:
        return stdlib::ArgView{Kind::kList};
      case ExprKind::Object:
        return stdlib::ArgView{Kind::kObject};
      case ExprKind::Unary:
        if (e.unary_op == ast::UnaryOp::Neg && !e.items.empty() && e.items[0]) {
          auto v = constant_view(*e.items[0]);
          if (v && v->kind == Kind::kNumber) {
            v->number = -v->number;
            return v;
          }
        }
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  // The row of [call]'s action when the engine performs it itself (sleep, log), else null.
  static const stdlib::ActionInfo* engine_performed(const ast::ActionCall* call) {
    if (call == nullptr) return nullptr;
    const stdlib::ActionInfo* a = stdlib::find_action(call->target);
    return a != nullptr && stdlib::by_engine(a->performer) ? a : nullptr;
  }

  // A step whose `do` the engine performs itself can neither fail nor time out, so its
  // `retry` would never run and its `timeout` would only apply to an undo that can time
  // out. Such a clause is an error rather than a warning: it promises what the run will
  // not do (a 100ms timeout on sleep(for: 2s) still waits 2s).
  void check_engine_clauses(const ast::Step& st) {
    const stdlib::ActionInfo* action = engine_performed(st.action.get());
    if (action == nullptr) return;
    const bool undo_can_time_out = st.undo && engine_performed(st.undo.get()) == nullptr;
    for (const auto& [clause, span] : st.clauses) {
      if (clause == "retry") {
        diags_.error(span,
                     fmt::format("'retry' has no effect on step '{}': {}() is performed by the "
                                 "engine and cannot fail",
                                 st.name, action->name),
                     "remove it; retries are for actions that can fail, such as service calls "
                     "and http.*");
      } else if (clause == "timeout" && !undo_can_time_out) {
        diags_.error(span,
                     fmt::format("'timeout' has no effect on step '{}': {}() is performed by the "
                                 "engine and cannot time out",
                                 st.name, action->name),
                     "remove it; timeouts are for actions that can hang, such as service calls "
                     "and http.*");
      }
    }
  }

  void args(const ast::ActionCall& call, Flow& state) {
    std::unordered_map<std::string, Span> seen;
    for (const ast::NamedArg& arg : call.args) {
      if (!seen.emplace(arg.name, arg.name_span).second) {
        diags_.error(arg.name_span, fmt::format("argument '{}' is given twice", arg.name));
      }
      if (arg.value) expr(*arg.value, state);
    }
  }

  // ---- Expressions ----------------------------------------------------------

  void expr(const Expr& e, Flow& state) {
    switch (e.kind) {
      case ExprKind::Var:
        variable(e, state);
        break;
      case ExprKind::Field:
        if (!e.items.empty()) {
          expr(*e.items[0], state);
          field_of_param(*e.items[0], e);
          field_of_list(*e.items[0], e, state);
        }
        break;
      case ExprKind::Call:
        call(e, state);
        break;
      case ExprKind::Object: {
        std::unordered_map<std::string, Span> seen;
        for (size_t i = 0; i < e.keys.size(); ++i) {
          if (!seen.emplace(e.keys[i], e.key_spans[i]).second) {
            diags_.error(e.key_spans[i], fmt::format("key '{}' appears twice", e.keys[i]));
          }
        }
        for (const ast::ExprPtr& item : e.items) expr(*item, state);
        break;
      }
      default:
        for (const ast::ExprPtr& item : e.items) {
          if (item) expr(*item, state);
        }
        break;
    }
  }

  // `.field` of a parameter declared as a scalar can never work.
  void field_of_param(const Expr& base, const Expr& field) {
    if (base.kind != ExprKind::Var) return;
    auto it = param_types_.find(base.text);
    if (it == param_types_.end()) return;
    bytecode::Type t = it->second;
    if (t == bytecode::Type::String || t == bytecode::Type::Number || t == bytecode::Type::Bool ||
        t == bytecode::Type::List) {
      diags_.error(field.name_span,
                   fmt::format("'{}' is a {} and has no field '{}'", base.text,
                               bytecode::to_string(t), field.text),
                   t == bytecode::Type::List ? "index a list with [n]" : "");
    }
  }

  // `.field` of a name a foreach collected is a field of a list.
  void field_of_list(const Expr& base, const Expr& field, const Flow& state) {
    if (base.kind != ExprKind::Var) return;
    auto it = state.lists.find(base.text);
    if (it == state.lists.end()) return;
    diags_.error(field.name_span,
                 fmt::format("'{}' is a list here (one value per item of the foreach at {}) and "
                             "has no field '{}'",
                             base.text, where(it->second), field.text),
                 fmt::format("index it, as in {}[0].{}, or use {}.{} inside the loop", base.text,
                             field.text, base.text, field.text));
  }

  void call(const Expr& e, Flow& state) {
    for (const ast::ExprPtr& item : e.items) expr(*item, state);
    const stdlib::FunctionInfo* f = stdlib::find_function(e.text);
    if (!f) {
      std::vector<std::string> names;
      for (const stdlib::FunctionInfo& fn : stdlib::kFunctions) names.emplace_back(fn.name);
      std::string help = did_you_mean(e.text, names);
      if (help.empty() && stdlib::find_action(e.text)) {
        help = fmt::format("'{}' is an action: call it from a step's do or undo", e.text);
      }
      if (is_saga(e.text)) {
        help = fmt::format("'{}' is a saga, and sagas cannot be called yet: {}", e.text,
                           saga_call_help(e.text));
      }
      if (help.empty()) help = "docs/stdlib.md lists the functions";
      diags_.error(e.name_span, fmt::format("unknown function '{}'", e.text), help);
      return;
    }
    int n = static_cast<int>(e.items.size());
    if (n < f->min_args || (f->max_args != stdlib::kVariadic && n > f->max_args)) {
      std::string expected;
      if (f->max_args == stdlib::kVariadic)
        expected = fmt::format("at least {}", f->min_args);
      else if (f->min_args == f->max_args)
        expected = fmt::format("{}", f->min_args);
      else
        expected = fmt::format("{} to {}", f->min_args, f->max_args);
      bool one = f->min_args == 1 && (f->max_args == 1 || f->max_args == stdlib::kVariadic);
      diags_.error(
          e.span,
          fmt::format("{}() takes {} argument{}, {} given", f->name, expected, one ? "" : "s", n),
          fmt::format("usage: {}", f->signature));
    }
  }

  // Reports a read of a name that only a sibling branch binds; returns
  // whether it did.
  bool sibling_read(const Expr& e) {
    for (const Enclosing& en : enclosing_) {
      auto other = en.binder.find(e.text);
      if (other == en.binder.end() || other->second.first == en.branch) continue;
      diags_.error(
          e.span,
          fmt::format("'{}' is bound in branch '{}', which runs at the same time as "
                      "this branch ('{}')",
                      e.text, en.branches[other->second.first]->name, en.branches[en.branch]->name),
          fmt::format("a branch sees the values bound before the parallel block, not "
                      "those of the other branches; use '{}' after the block",
                      e.text));
      return true;
    }
    return false;
  }

  void variable(const Expr& e, Flow& state) {
    auto bound = state.maybe.find(e.text);
    // Unreachable code is checked leniently: anything bound on some path counts.
    if (bound != state.maybe.end() && (state.definite.count(e.text) || !state.reachable)) {
      out_.reads[&e] = bound->second;
      return;
    }
    if (bound == state.maybe.end() && sibling_read(e)) return;
    auto sites = bindings_.find(e.text);
    auto loop = loop_vars_.find(e.text);
    if (bound == state.maybe.end() && loop != loop_vars_.end() &&
        (sites == bindings_.end() || sites->second.empty())) {
      diags_.error(e.span,
                   fmt::format("'{}' is the loop variable of the foreach at {}; it is visible "
                               "only in the loop body",
                               e.text, where(loop->second)),
                   "to use values of the items after the loop, bind them in the body (after "
                   "the loop each name the body binds is the list of its values)");
      return;
    }
    if ((sites == bindings_.end() || sites->second.empty()) && e.text == "event") {
      diags_.error(e.span, "'event' is defined only in the arguments of a trigger",
                   "pass what the saga needs as a parameter: on order.placed start "
                   "payment(order: event.data.order)");
      return;
    }
    if (sites == bindings_.end() || sites->second.empty()) {
      std::vector<std::string> names;
      for (const auto& [name, slot] : state.maybe) names.push_back(name);
      diags_.error(e.span, fmt::format("unknown variable '{}'", e.text),
                   did_you_mean(e.text, names));
      return;
    }
    Span first{sites->second.front().offset, 1};
    if (state.maybe.count(e.text)) {
      diags_.error(e.span,
                   fmt::format("'{}' may not be bound here: it is bound only on some paths "
                               "(at {})",
                               e.text, where(first)),
                   "bind it on every branch of the 'if', or use it inside the branch");
    } else if (in_undo_ && current_step_) {
      diags_.error(e.span,
                   fmt::format("the undo of step '{}' uses '{}', which is bound later (at {})",
                               current_step_->name, e.text, where(first)),
                   "an undo runs with the values known when its step completed");
    } else {
      diags_.error(e.span,
                   fmt::format("'{}' is used before it is bound (at {})", e.text, where(first)),
                   "move the use after the statement that binds it");
    }
  }
};

}  // namespace

Analysis check(const ast::File& file, Diagnostics& diags) {
  return Checker(file, diags).run();
}

}  // namespace saga::compiler
