// Opcode semantics on saga::Value (see ops.hpp). Kept free of VM state so
// that every rule is unit-tested directly (tests/values/ops_test.cpp).
#include "runtime/value/ops.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/value/rep.hpp"

namespace saga::runtime::ops {
namespace {

RuntimeError binary_type_error(std::string_view op, std::string_view expected, const Value& a,
                               const Value& b) {
  return type_error(fmt::format("'{}' expects {}, got {} and {}", op, expected, kind_name(a.kind()),
                                kind_name(b.kind())));
}

RuntimeError depth_error() {
  return type_error(fmt::format("value is nested deeper than {} levels", kMaxDepth));
}

// Joins two strings with one allocation.
Value join_strings(std::string_view a, std::string_view b) {
  return Value::string_with(a.size() + b.size(), [&](char* out) {
    if (!a.empty()) std::memcpy(out, a.data(), a.size());
    if (!b.empty()) std::memcpy(out + a.size(), b.data(), b.size());
  });
}

// Merges two objects' sorted fields in one pass; b's fields win.
Value merge_objects(const Value& a, const Value& b) {
  const Value::Object& x = a.object_members();
  const Value::Object& y = b.object_members();
  Value::Object out;
  out.reserve(x.size() + y.size());
  size_t i = 0, j = 0;
  while (i < x.size() && j < y.size()) {
    if (x[i].first < y[j].first) {
      out.push_back(x[i++]);
    } else {
      if (x[i].first == y[j].first) ++i;
      out.push_back(y[j++]);
    }
  }
  out.insert(out.end(), x.begin() + static_cast<ptrdiff_t>(i), x.end());
  out.insert(out.end(), y.begin() + static_cast<ptrdiff_t>(j), y.end());
  return ValueAccess::sorted_object(std::move(out));
}

// Numbers are IEEE doubles read from JSON, so they are always finite; a
// result that is not (1e308 * 10) has overflowed, and would turn into null
// in the JSON of the output: an `arithmetic` error naming the operation.
OpResult finite(std::string_view op, double x, double y, double result) {
  if (std::isfinite(result)) return Value(result);
  return arithmetic_error(
      fmt::format("{} {} {} overflows: the result is beyond the largest "
                  "number (about 1.8e308)",
                  Value(x).to_json_text(), op, Value(y).to_json_text()));
}

// Applies a numeric binary operator, or reports a `type` error naming it.
template <class F>
OpResult numeric(std::string_view op, const Value& a, const Value& b, F f) {
  if (!a.is_number() || !b.is_number()) return binary_type_error(op, "two numbers", a, b);
  return finite(op, a.as_number(), b.as_number(), f(a.as_number(), b.as_number()));
}

template <class Pred>
OpResult ordered(std::string_view op, const Value& a, const Value& b, Pred pred) {
  if (a.is_number() && b.is_number()) return Value(pred(a.as_number(), b.as_number()));
  if (a.is_string() && b.is_string()) return Value(pred(a.as_string(), b.as_string()));
  return binary_type_error(op, "two numbers or two strings", a, b);
}

}  // namespace

OpResult add(Value a, const Value& b) {
  if (a.kind() == b.kind()) {
    switch (a.kind()) {
      case Kind::Number:
        return finite("+", a.as_number(), b.as_number(), a.as_number() + b.as_number());
      case Kind::String:
        if (b.size() == 0) return a;
        if (a.size() == 0) return b;
        return join_strings(a.as_string(), b.as_string());
      case Kind::List: {
        if (b.size() == 0) return a;
        if (a.size() == 0) return b;
        // push_back copies on write once, then appends in place.
        for (const Value& v : b.list_items()) a.push_back(v);
        return a;
      }
      case Kind::Object:
        if (b.size() == 0) return a;
        if (a.size() == 0) return b;
        return merge_objects(a, b);
      default:
        break;
    }
  }
  return binary_type_error("+", "two numbers, two strings, two lists or two objects", a, b);
}

OpResult sub(const Value& a, const Value& b) {
  return numeric("-", a, b, [](double x, double y) { return x - y; });
}

OpResult mul(const Value& a, const Value& b) {
  return numeric("*", a, b, [](double x, double y) { return x * y; });
}

OpResult div(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) return binary_type_error("/", "two numbers", a, b);
  if (b.as_number() == 0) return arithmetic_error("division by zero");
  return finite("/", a.as_number(), b.as_number(), a.as_number() / b.as_number());
}

OpResult mod(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) return binary_type_error("%", "two numbers", a, b);
  if (b.as_number() == 0) return arithmetic_error("remainder of a division by zero");
  return Value(std::fmod(a.as_number(), b.as_number()));
}

OpResult neg(const Value& a) {
  if (!a.is_number()) {
    return type_error(fmt::format("unary '-' expects a number, got {}", kind_name(a.kind())));
  }
  return Value(-a.as_number());
}

OpResult logical_not(const Value& a) {
  if (!a.is_bool()) {
    return type_error(fmt::format("'not' expects a bool, got {}", kind_name(a.kind())));
  }
  return Value(!a.as_bool());
}

OpResult condition(const Value& a) {
  if (!a.is_bool()) {
    return type_error(fmt::format("a condition must be a bool, got {}", kind_name(a.kind())));
  }
  return a;
}

std::partial_ordering compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.as_number() <=> b.as_number();
  if (a.is_string() && b.is_string()) return a.as_string() <=> b.as_string();
  return std::partial_ordering::unordered;
}

OpResult lt(const Value& a, const Value& b) {
  return ordered("<", a, b, [](const auto& x, const auto& y) { return x < y; });
}

OpResult le(const Value& a, const Value& b) {
  return ordered("<=", a, b, [](const auto& x, const auto& y) { return x <= y; });
}

OpResult gt(const Value& a, const Value& b) {
  return ordered(">", a, b, [](const auto& x, const auto& y) { return x > y; });
}

OpResult ge(const Value& a, const Value& b) {
  return ordered(">=", a, b, [](const auto& x, const auto& y) { return x >= y; });
}

OpResult field(const Value& a, std::string_view name) {
  if (a.is_object()) {
    const Value* v = a.find(name);
    return v ? *v : Value();
  }
  if (a.is_null()) return Value();
  return type_error(
      fmt::format("cannot read field '{}' of a {}: only objects (and null) have fields", name,
                  kind_name(a.kind())));
}

OpResult index(const Value& container, const Value& i) {
  switch (container.kind()) {
    case Kind::Null:
      return Value();
    case Kind::List: {
      if (!i.is_number()) {
        return type_error(
            fmt::format("a list index must be a number, got {}", kind_name(i.kind())));
      }
      double d = i.as_number();
      if (!std::isfinite(d) || d != std::trunc(d)) {
        return type_error(
            fmt::format("a list index must be a whole number, got {}", Value(d).to_json_text()));
      }
      const Value::List& items = container.list_items();
      auto size = static_cast<double>(items.size());
      if (d < 0) d += size;
      if (d < 0 || d >= size) return Value();
      return items[static_cast<size_t>(d)];
    }
    case Kind::Object: {
      if (!i.is_string()) {
        return type_error(
            fmt::format("an object key must be a string, got {}", kind_name(i.kind())));
      }
      const Value* v = container.find(i.as_string());
      return v ? *v : Value();
    }
    default:
      return type_error(fmt::format("cannot index a {}: only lists, objects (and null) can be",
                                    kind_name(container.kind())));
  }
}

OpResult make_list(Value::List items) {
  Value v = Value::list(std::move(items));
  if (v.depth() > kMaxDepth) return depth_error();
  return v;
}

OpResult set_field(Value object, std::string_view name, Value v) {
  if (!object.is_object()) {
    return type_error(fmt::format("cannot set field '{}' of a {}", name, kind_name(object.kind())));
  }
  if (v.depth() + 1 > kMaxDepth) return depth_error();
  object.set_field(name, std::move(v));
  return object;
}

Value concat_text(std::span<const Value> parts) {
  // All strings (the usual interpolation of string variables): one exact
  // allocation. Otherwise build the text first, then copy it once.
  size_t total = 0;
  bool all_strings = true;
  for (const Value& p : parts) {
    if (!p.is_string()) {
      all_strings = false;
      break;
    }
    total += p.size();
  }
  if (all_strings) {
    if (parts.size() == 1) return parts[0];
    return Value::string_with(total, [&](char* out) {
      for (const Value& p : parts) {
        std::string_view s = p.as_string();
        if (!s.empty()) std::memcpy(out, s.data(), s.size());
        out += s.size();
      }
    });
  }
  std::string text;
  for (const Value& p : parts) p.append_text(text);
  return Value(std::string_view(text));
}

}  // namespace saga::runtime::ops
