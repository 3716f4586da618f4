// Runtime errors of pure code: what an opcode (runtime/value/ops.hpp) or a
// pure function (stdlib/functions.hpp) reports when its operands are wrong,
// and OpResult, the "value or error" those functions return. The VM turns a
// RuntimeError into the failure of the saga, with the error class and message
// as written here, and compensates.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "saga/error_classes.hpp"
#include "saga/value.hpp"

namespace saga {

// Error classes of pure code, as documented in opcodes.def.
inline constexpr std::string_view kTypeError = "type";              // Wrong kind of operand.
inline constexpr std::string_view kArithmeticError = "arithmetic";  // Division by zero.
static_assert(is_error_class(kTypeError) && is_error_class(kArithmeticError),
              "pure code's classes are rows of saga/error_classes.def");

// A failure of pure code. error_class is one of the classes above; message is
// a sentence for the person reading the saga's error, naming the operation
// and the kinds involved: "len() expects a string, list or object, got number".
struct RuntimeError {
  std::string error_class;
  std::string message;

  bool operator==(const RuntimeError&) const = default;
};

// The result of an operation or pure function: a Value, or a RuntimeError.
//
// Chosen for the VM's hot path: it is 24 bytes (a Value and a null pointer
// when it succeeded), so building and returning one never allocates, and the
// error, which ends the saga anyway, lives on the heap only when there is
// one. Moving the value out (std::move(r).value()) is a 16-byte copy.
class OpResult {
 public:
  OpResult(Value value) noexcept : value_(std::move(value)) {}  // NOLINT
  OpResult(RuntimeError error)                                  // NOLINT
      : error_(std::make_unique<RuntimeError>(std::move(error))) {}

  bool ok() const { return error_ == nullptr; }
  explicit operator bool() const { return ok(); }

  // The value; only meaningful when ok().
  Value& value() & { return value_; }
  const Value& value() const& { return value_; }
  Value&& value() && { return std::move(value_); }
  Value* operator->() { return &value_; }
  const Value* operator->() const { return &value_; }
  Value& operator*() & { return value_; }
  const Value& operator*() const& { return value_; }

  // The error; only valid when !ok().
  const RuntimeError& error() const { return *error_; }
  RuntimeError&& take_error() && { return std::move(*error_); }

 private:
  Value value_;
  std::unique_ptr<RuntimeError> error_;
};

// Builds a `type` error with the given message.
inline RuntimeError type_error(std::string message) {
  return RuntimeError{std::string(kTypeError), std::move(message)};
}

// Builds an `arithmetic` error with the given message.
inline RuntimeError arithmetic_error(std::string message) {
  return RuntimeError{std::string(kArithmeticError), std::move(message)};
}

}  // namespace saga
