// The value semantics of Saga's opcodes (runtime/bytecode/opcodes.def), so
// that the VM's dispatch loop only moves values between the operand stack and
// these functions. Each function documents the opcode it implements; the
// rules (null-safe FIELD and INDEX, strict booleans, ADD on strings, lists and
// objects, error classes) are the ones opcodes.def states.
//
// Conventions: operands are passed in stack order (a is the one pushed
// first). Functions that cannot fail return Value or bool; the others return
// OpResult (saga/errors.hpp), whose error is a RuntimeError of class `type`
// or `arithmetic` with a message naming the operator and the operand kinds.
// Operands that the result may reuse are taken by value: move them in from
// the stack and a uniquely owned list or object is extended in place.
#pragma once

#include <compare>
#include <span>
#include <string_view>

#include "saga/errors.hpp"
#include "saga/value.hpp"

namespace saga::runtime::ops {

// ADD: numbers add, strings, lists and objects join (for objects the right
// operand's fields win); any other combination is a `type` error.
OpResult add(Value a, const Value& b);

// SUB, MUL: numbers only, else `type`. Overflow gives an infinity (printed
// as null), as IEEE-754 arithmetic does.
OpResult sub(const Value& a, const Value& b);
OpResult mul(const Value& a, const Value& b);

// DIV: numbers only; a zero divisor is an `arithmetic` error.
OpResult div(const Value& a, const Value& b);

// MOD: numbers only; the remainder has the sign of the dividend (std::fmod);
// a zero divisor is an `arithmetic` error.
OpResult mod(const Value& a, const Value& b);

// NEG: negates a number, else `type`.
OpResult neg(const Value& a);

// NOT: negates a boolean; any other value is a `type` error, because
// conditions are never truthy by accident. ("not" is a C++ keyword.)
OpResult logical_not(const Value& a);

// The check of JUMP_IF_FALSE: the boolean itself, or a `type` error naming
// the kind that was found where a condition was expected.
OpResult condition(const Value& a);

// EQ, NE: deep equality (same kind and value); never an error.
inline bool eq(const Value& a, const Value& b) {
  return a == b;
}
inline bool ne(const Value& a, const Value& b) {
  return !(a == b);
}

// The ordering LT/LE/GT/GE use: numbers by value, strings by bytes (unsigned).
// Unordered when the kinds differ or are not number/string, and for NaN.
std::partial_ordering compare(const Value& a, const Value& b);

// LT, LE, GT, GE: a boolean, or a `type` error unless both operands are
// numbers or both are strings. Comparisons with NaN are false.
OpResult lt(const Value& a, const Value& b);
OpResult le(const Value& a, const Value& b);
OpResult gt(const Value& a, const Value& b);
OpResult ge(const Value& a, const Value& b);

// FIELD: the field `name` of an object; a missing field and any field of
// null are null; a field of a bool, number, string or list is a `type` error.
OpResult field(const Value& a, std::string_view name);

// INDEX: a list takes a whole number (negative counts from the end), an
// object takes a string key, and null gives null for any index. Out-of-range
// indexes and missing keys give null; anything else is a `type` error
// (including a list index that is not a whole number).
OpResult index(const Value& container, const Value& i);

// LIST: a list of the given elements. A `type` error if the result would be
// nested deeper than kMaxDepth (so every value stays encodable).
OpResult make_list(Value::List items);

// SET_FIELD: `object` with field `name` set to v (replacing any previous
// value). Pass the object by move so that it is updated in place. A `type`
// error if `object` is not an object or the result would be nested deeper
// than kMaxDepth.
OpResult set_field(Value object, std::string_view name, Value v);

// CONCAT: the parts converted to text (strings as they are, other values as
// compact JSON) and joined, in order.
Value concat_text(std::span<const Value> parts);

}  // namespace saga::runtime::ops
