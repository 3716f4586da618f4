// The standard library's tables, as data: pure functions (functions.def) and
// actions (actions.def). Header-only and dependency-free, so the compiler can
// check calls against exactly what the runtime provides without linking it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace saga::stdlib {

// The longest duration Saga accepts anywhere: timeouts, deadlines, retry delays, breaker
// resets and sleep(for:). 10 000 days, about 27 years. Durations are milliseconds (u64 in
// the bytecode, numbers in the value model); the engine adds them to its clock (int64
// milliseconds since 1970) and caps every retry delay at 10^12 ms, about 31.7 years
// (engine.cpp, backoff()), so no duration up to this limit overflows or is silently
// shortened. The compiler checks constants against it.
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

struct ActionInfo {
  std::string_view name;
  std::string_view required;  // Comma-separated argument names.
  std::string_view optional;
  bool idempotent;
  std::string_view doc;
  std::string_view example;
};

inline constexpr ActionInfo kActions[] = {
#define ACTION(name, required, optional, idempotent, doc, example) \
  {name, required, optional, idempotent, doc, example},
#include "stdlib/actions.def"
#undef ACTION
};

// Lookups by name; null when there is no such entry.
const FunctionInfo* find_function(std::string_view name);
const ActionInfo* find_action(std::string_view name);

// Whether `name` is the namespace of standard actions ("http").
bool is_reserved_namespace(std::string_view name);

// Whether `arg` appears in a comma-separated list such as ActionInfo::required.
bool list_contains(std::string_view list, std::string_view arg);

// The reference (docs/stdlib.md): both tables as Markdown.
std::string reference_markdown();

}  // namespace saga::stdlib
