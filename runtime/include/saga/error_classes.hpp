// The error classes (error_classes.def) as a constant table, with the
// lookups the engine and the compiler share. Header-only and dependency-free:
// the compiler checks class names against exactly what the runtime means.
#pragma once

#include <string_view>

namespace saga {

struct ErrorClassInfo {
  std::string_view name;
  bool no_effect;           // An attempt ending with it certainly had no effect.
  bool retried_by_default;  // In a policy's default `on:` list.
  std::string_view doc;
};

inline constexpr ErrorClassInfo kErrorClasses[] = {
#define ERROR_CLASS(name, no_effect, retried, doc) {#name, no_effect, retried, doc},
#include "saga/error_classes.def"
#undef ERROR_CLASS
};

// The row of a built-in class; null for a custom one.
constexpr const ErrorClassInfo* find_error_class(std::string_view name) {
  for (const ErrorClassInfo& c : kErrorClasses) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// Whether `name` is a built-in class (a bool, not a pointer: GCC 12 cannot
// fold the address of an inline table in a static_assert under UBSan's null
// checks, PR 100313).
constexpr bool is_error_class(std::string_view name) {
  for (const ErrorClassInfo& c : kErrorClasses) {
    if (c.name == name) return true;
  }
  return false;
}

// Whether an attempt that failed with `name` is known to have had no effect
// (false for custom classes: they may have had one).
constexpr bool had_no_effect(std::string_view name) {
  const ErrorClassInfo* c = find_error_class(name);
  return c != nullptr && c->no_effect;
}

}  // namespace saga
