// The implementations of the standard library's pure functions, one per FN
// row of stdlib/functions.def. The VM resolves each name in a program's
// function table to a FunctionImpl when it loads the program, then CALL runs
// impl.fn on the top arguments of the operand stack.
//
// Binding: functions.cpp defines one function fn_NAME per row and builds the
// table below by including functions.def with the same X-macro, so a row
// without an implementation does not compile and an implementation without a
// row is an unused-function warning. Names, arities and flags come from the
// row; nothing is listed twice.
//
// Behaviour beyond functions.def's one-line docs, decided here:
//   * Text functions work on bytes, except len and substr, which count
//     Unicode code points (a code point starts at every byte that is not a
//     UTF-8 continuation byte). upper, lower and trim only touch ASCII
//     (trim removes space, \t, \n, \v, \f and \r).
//   * concat with one argument returns it (when it is a string or a list);
//     mixing strings and lists is a `type` error.
//   * split of "" gives [""]; split, and replace's `from`, reject an empty
//     separator with a `type` error.
//   * substr's start and length must be whole numbers >= 0 (else `type`);
//     a start past the end gives "", a length past the end stops there.
//   * num accepts exactly the JSON number syntax (no spaces, no "+", no
//     hex, no "Infinity"); a value too large for a double is a `type` error
//     and one too small to represent becomes 0.
//   * min and max take numbers only; a single list argument is searched
//     instead; an empty list is a `type` error; among equal values the first
//     wins.
//   * has and keys/values require an object (null is a `type` error too);
//     contains takes a string, a list or an object as haystack.
//   * now() is "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC); uuid() is lower-case
//     8-4-4-4-12 hex with the version (4) and variant (10xx) bits set.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>

#include "saga/errors.hpp"
#include "saga/value.hpp"

namespace saga::stdlib {

// Where the nondeterministic functions (now, now_ms, uuid) get time and
// randomness, so that tests and replays control them.
class FunctionContext {
 public:
  virtual ~FunctionContext() = default;
  // The current time, in milliseconds since the Unix epoch (UTC).
  virtual int64_t now_ms() = 0;
  // Fills `out` with random bytes (uuid() takes 16).
  virtual void random_bytes(std::span<uint8_t> out) = 0;
};

// The real context: the system clock, and a std::mt19937_64 seeded from
// std::random_device. Safe to share between threads (the generator is
// guarded by a mutex; uuid() is far from the hot path).
class SystemFunctionContext final : public FunctionContext {
 public:
  SystemFunctionContext();
  int64_t now_ms() override;
  void random_bytes(std::span<uint8_t> out) override;

 private:
  std::mutex mutex_;
  std::mt19937_64 random_;
};

// An implementation. It may assume min_args <= args.size() <= max_args (the
// compiler and the loader check calls against functions.def; call_function
// checks again for other callers). It returns the result, or a RuntimeError
// of class `type` naming the function and the kinds it got.
using FunctionFn = OpResult (*)(std::span<const Value> args, FunctionContext& ctx);

struct FunctionImpl {
  std::string_view name;
  int min_args;
  int max_args;   // kVariadic (table.hpp): no upper bound.
  uint8_t flags;  // kNondeterministic (table.hpp) for now, now_ms, uuid.
  FunctionFn fn;
};

// Every function, in functions.def order.
std::span<const FunctionImpl> function_impls();

// The implementation named `name`, or null.
const FunctionImpl* find_function_impl(std::string_view name);

// Calls f after checking the number of arguments (a `type` error when it is
// outside f's arity).
OpResult call_function(const FunctionImpl& f, std::span<const Value> args, FunctionContext& ctx);

// now()'s format: "1970-01-01T00:00:00.000Z" for 0. Years outside 0..9999
// are printed with as many digits as they need.
std::string format_iso8601_ms(int64_t ms_since_epoch);

// uuid()'s format: the 16 bytes with the version and variant bits set, as
// "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx".
std::string format_uuid_v4(std::array<uint8_t, 16> bytes);

// A time-ordered UUID (RFC 9562 version 7): the first 48 bits are unix_ms
// (clamped at 0), the rest come from bytes, less the version and variant
// bits. Instance ids use it: ids made close in time sort close together, so
// the index on ids and everything clustered by creation stays compact where
// the running instances are. Ids made in the same millisecond are in no
// particular order.
std::string format_uuid_v7(int64_t unix_ms, std::array<uint8_t, 16> bytes);

}  // namespace saga::stdlib
