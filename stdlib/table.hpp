// The standard library's tables, as data: pure functions (functions.def) and
// actions (actions.def), with the checker of built-in action arguments that the
// compiler (for constants) and the runtime (for computed values) share. The
// tables are header-only and the library depends on nothing of the compiler or
// the runtime, so both check calls against exactly the same facts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

namespace saga::stdlib {

// The longest duration Saga accepts anywhere: timeouts, deadlines, retry delays, breaker
// resets and sleep(for:). 10 000 days, about 27 years. Durations are milliseconds (u64 in
// the bytecode, numbers in the value model); the engine adds them to its clock (int64
// milliseconds since 1970) and caps every retry delay at 10^12 ms, about 31.7 years
// (engine.cpp, backoff()), so no duration up to this limit overflows or is silently
// shortened. The compiler checks constant durations against it, and sleep(for:) has it
// as its maximum in actions.def, so check_action_arg() applies it at run time too.
inline constexpr uint64_t kMaxDurationMs = 10'000ull * 86'400'000;

inline constexpr int kVariadic = -1;
inline constexpr uint8_t kNondeterministic = 1;

struct FunctionInfo {
  std::string_view name;
  int min_args;
  int max_args;  // kVariadic: no upper bound.
  uint8_t flags;
  std::string_view signature;
  std::string_view doc;
  std::string_view example;
};

inline constexpr FunctionInfo kFunctions[] = {
#define FN(name, min, max, flags, signature, doc, example) \
  {#name, min, max, flags, signature, doc, example},
#include "stdlib/functions.def"
#undef FN
};

// Who performs a built-in action, and so what it does with a step's `timeout`
// and `retry` (actions.def). The engine performs kSleep and kLog itself, by
// what this column says, not by the action's name: they neither fail nor time
// out, and have no effect outside the instance.
enum class Performer : uint8_t {
  kSleep,    // The engine: the attempt ends at `for` after it begins (a durable timer).
  kLog,      // The engine: the attempt writes `message` (at `level`) to the history.
  kSignal,   // The engine: `await signal` (AWAIT); ends with a signal, or at `timeout`.
  kHandler,  // A registered handler (HTTP client, exec): it can fail and time out.
};

// Whether the engine performs actions of this kind itself.
constexpr bool by_engine(Performer p) {
  return p != Performer::kHandler;
}

// Whether an argument must be given; an optional one may also be null (absent).
enum class ArgPresence : uint8_t { kRequired, kOptional };

// What an argument's value must be. Durations are numbers of milliseconds in the value
// model (30s is 30000), so kDuration differs from kNumber only in how limits are shown.
enum class ArgKind : uint8_t { kAny, kString, kNumber, kDuration, kBool, kList, kObject, kOneOf };

struct ArgLimits {
  double min = -std::numeric_limits<double>::infinity();  // kNumber, kDuration; inclusive.
  double max = std::numeric_limits<double>::infinity();
  std::string_view choices;  // kOneOf: the accepted strings, comma-separated.
};

struct ArgSpec {
  std::string_view name;  // Empty in the unused slots of ActionInfo::arg_specs.
  ArgPresence presence = ArgPresence::kOptional;
  ArgKind kind = ArgKind::kAny;
  ArgLimits limits;
};

// The most named arguments a built-in action has (a row with more does not compile).
inline constexpr std::size_t kMaxActionArgs = 4;

struct ActionInfo {
  std::string_view name;
  bool idempotent;
  Performer performer;
  std::string_view doc;
  std::string_view example;
  std::array<ArgSpec, kMaxActionArgs> arg_specs;  // In table order; then empty slots.

  // The named arguments, in table order.
  constexpr std::span<const ArgSpec> args() const {
    std::size_t n = 0;
    while (n < arg_specs.size() && !arg_specs[n].name.empty()) ++n;
    return {arg_specs.data(), n};
  }
  // The argument called [arg], or null.
  constexpr const ArgSpec* find_arg(std::string_view arg) const {
    for (const ArgSpec& a : args()) {
      if (a.name == arg) return &a;
    }
    return nullptr;
  }
};

inline constexpr ActionInfo kActions[] = {
#define ARG(name, presence, kind, ...)                                \
  ArgSpec {                                                           \
    name, ArgPresence::presence, ArgKind::kind, ArgLimits __VA_ARGS__ \
  }
#define ACTION(name, idempotent, performer, doc, example, ...) \
  ActionInfo{name, idempotent, Performer::performer, doc, example, {{__VA_ARGS__}}},
#include "stdlib/actions.def"
#undef ACTION
#undef ARG
};

// A view of an argument value, as both the compiler (constants) and the runtime
// (Values) can give it.
struct ArgView {
  enum class Kind { kNull, kBool, kNumber, kString, kList, kObject } kind;
  double number = 0;      // kNumber
  std::string_view text;  // kString
};

// Empty when [value] is acceptable for argument [arg] of the built-in action [action]
// (or when the table says nothing about that argument); else a sentence naming the
// action, the argument, what it must be and what it got, e.g.
// "sleep(for:) must be a duration from 0ms to 10000d, got -1000" or
// "log(level:) must be one of debug, info, warn, error, got 'fatal'". Null is
// acceptable for an optional argument (it means absent). The compiler calls it for
// constant arguments, the runtime for computed ones.
std::string check_action_arg(std::string_view action, std::string_view arg, const ArgView& value);

// What an argument must be, as check_action_arg() and docs/stdlib.md say it: "a duration
// from 0ms to 10000d", "one of debug, info, warn, error", "a string", "any value".
std::string describe(const ArgSpec& spec);

// Lookups by name; null when there is no such entry.
const FunctionInfo* find_function(std::string_view name);
const ActionInfo* find_action(std::string_view name);

// Whether `name` is the namespace of standard actions ("http").
bool is_reserved_namespace(std::string_view name);

// Whether `arg` appears in a comma-separated list such as ArgLimits::choices.
bool list_contains(std::string_view list, std::string_view arg);

// The reference (docs/stdlib.md): both tables as Markdown.
std::string reference_markdown();

}  // namespace saga::stdlib
