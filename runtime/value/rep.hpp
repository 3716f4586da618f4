// The heap representations behind saga::Value's strings, lists and objects.
// Private to runtime/value/: value.cpp, json.cpp, encoding.cpp and ops.cpp
// build reps directly to avoid intermediate copies; nothing else includes it.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

#include "saga/value.hpp"

namespace saga::detail {

// An immutable string: the header, then `size` bytes in the same allocation
// (no terminating NUL). Created by make() and freed by destroy_rep().
struct StringRep : Rep {
  size_t size;

  explicit StringRep(size_t n) : size(n) {}
  static StringRep* make(size_t size);
  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
};

// A list's elements; depth is 1 + the deepest element's depth.
struct ListRep : Rep {
  Value::List items;
};

// An object's fields, sorted by name with unique names; depth as for lists.
struct ObjectRep : Rep {
  Value::Object members;
};

// Exact depths of a list or object with these elements (1 + the deepest).
uint32_t list_depth(const Value::List& items);
uint32_t object_depth(const Value::Object& members);

// First member whose name is not less than `name` (binary search).
Value::Object::const_iterator lower_bound(const Value::Object& members, std::string_view name);

}  // namespace saga::detail

namespace saga {

// Grants the files of runtime/value/ access to a Value's private parts.
struct ValueAccess {
  // An object from members that are already sorted by name with unique names
  // (the caller guarantees it; not checked), without sorting again.
  static Value sorted_object(Value::Object members);
};

}  // namespace saga
