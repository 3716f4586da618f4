// The core of saga::Value (saga/value.hpp): heap reps and their reference
// counts, copy-on-write mutation, equality, and printing as JSON text and as
// CONCAT text. Parsing lives in json.cpp and the checkpoint encoding in
// encoding.cpp; the opcode semantics in ops.cpp build on this file.
#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstring>
#include <new>

#include "runtime/value/json_quote.hpp"
#include "runtime/value/rep.hpp"
#include "saga/value.hpp"

namespace saga {

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::Null:
      return "null";
    case Kind::Bool:
      return "bool";
    case Kind::Number:
      return "number";
    case Kind::String:
      return "string";
    case Kind::List:
      return "list";
    case Kind::Object:
      return "object";
  }
  return "unknown";
}

namespace detail {

StringRep* StringRep::make(size_t size) {
  void* memory = ::operator new(sizeof(StringRep) + size);
  return new (memory) StringRep(size);
}

void destroy_rep(Kind kind, Rep* rep) noexcept {
  switch (kind) {
    case Kind::String: {
      auto* s = static_cast<StringRep*>(rep);
      s->~StringRep();
      ::operator delete(s);
      return;
    }
    case Kind::List:
      delete static_cast<ListRep*>(rep);
      return;
    case Kind::Object:
      delete static_cast<ObjectRep*>(rep);
      return;
    default:
      assert(false && "destroy_rep on a scalar");
      return;
  }
}

uint32_t list_depth(const Value::List& items) {
  uint32_t deepest = 0;
  for (const Value& v : items) deepest = std::max(deepest, v.depth());
  return deepest + 1;
}

uint32_t object_depth(const Value::Object& members) {
  uint32_t deepest = 0;
  for (const auto& m : members) deepest = std::max(deepest, m.second.depth());
  return deepest + 1;
}

Value::Object::const_iterator lower_bound(const Value::Object& members, std::string_view name) {
  return std::lower_bound(members.begin(), members.end(), name,
                          [](const Value::Member& m, std::string_view n) { return m.first < n; });
}

}  // namespace detail

using detail::ListRep;
using detail::ObjectRep;
using detail::StringRep;

// ---------------------------------------------------------------------------
// Construction.

Value::Value(std::string_view s) : kind_(Kind::String) {
  u_.rep = nullptr;
  char* data = init_string(s.size());
  if (!s.empty()) std::memcpy(data, s.data(), s.size());
}

char* Value::init_string(size_t size) {
  release();
  kind_ = Kind::String;
  u_.rep = nullptr;
  if (size == 0) return nullptr;
  StringRep* rep = StringRep::make(size);
  u_.rep = rep;
  return rep->data();
}

Value Value::list(List items) {
  Value v(Kind::List);
  if (items.empty()) return v;
  auto* rep = new ListRep;
  rep->depth = detail::list_depth(items);
  rep->items = std::move(items);
  v.u_.rep = rep;
  return v;
}

Value Value::object(Object members) {
  Value v(Kind::Object);
  if (members.empty()) return v;
  // Sort by name, keeping the last of equal names: stable sort, then keep the
  // last element of each run of equal names.
  std::stable_sort(members.begin(), members.end(),
                   [](const Member& a, const Member& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    if (i + 1 < members.size() && members[i + 1].first == members[i].first) continue;
    if (out != i) members[out] = std::move(members[i]);
    ++out;
  }
  members.resize(out);
  auto* rep = new ObjectRep;
  rep->depth = detail::object_depth(members);
  rep->members = std::move(members);
  v.u_.rep = rep;
  return v;
}

Value ValueAccess::sorted_object(Value::Object members) {
  Value v(Kind::Object);
  if (members.empty()) return v;
  auto* rep = new ObjectRep;
  rep->depth = detail::object_depth(members);
  rep->members = std::move(members);
  v.u_.rep = rep;
  return v;
}

Value Value::object(std::initializer_list<std::pair<std::string_view, Value>> members) {
  Object list;
  list.reserve(members.size());
  for (const auto& m : members) list.emplace_back(std::string(m.first), m.second);
  return object(std::move(list));
}

// ---------------------------------------------------------------------------
// Accessors.

bool Value::as_bool() const {
  assert(kind_ == Kind::Bool);
  return u_.boolean;
}

double Value::as_number() const {
  assert(kind_ == Kind::Number);
  return u_.number;
}

std::string_view Value::as_string() const {
  assert(kind_ == Kind::String);
  if (u_.rep == nullptr) return {};
  auto* rep = static_cast<const StringRep*>(u_.rep);
  return {rep->data(), rep->size};
}

namespace {
const Value::List kEmptyList;
const Value::Object kEmptyObject;
}  // namespace

const Value::List& Value::list_items() const {
  assert(kind_ == Kind::List);
  if (u_.rep == nullptr) return kEmptyList;
  return static_cast<const ListRep*>(u_.rep)->items;
}

const Value::Object& Value::object_members() const {
  assert(kind_ == Kind::Object);
  if (u_.rep == nullptr) return kEmptyObject;
  return static_cast<const ObjectRep*>(u_.rep)->members;
}

size_t Value::size() const {
  if (!has_rep()) return 0;
  switch (kind_) {
    case Kind::String:
      return static_cast<const StringRep*>(u_.rep)->size;
    case Kind::List:
      return static_cast<const ListRep*>(u_.rep)->items.size();
    case Kind::Object:
      return static_cast<const ObjectRep*>(u_.rep)->members.size();
    default:
      return 0;
  }
}

const Value* Value::find(std::string_view name) const {
  if (kind_ != Kind::Object || u_.rep == nullptr) return nullptr;
  const Object& members = static_cast<const ObjectRep*>(u_.rep)->members;
  auto it = detail::lower_bound(members, name);
  if (it == members.end() || it->first != name) return nullptr;
  return &it->second;
}

uint32_t Value::depth() const {
  if (kind_ == Kind::List || kind_ == Kind::Object) return u_.rep ? u_.rep->depth : 1;
  return 0;
}

bool Value::is_unique() const {
  return !has_rep() || u_.rep->refs.load(std::memory_order_acquire) == 1;
}

// ---------------------------------------------------------------------------
// Copy-on-write mutation.

namespace {

// Makes `rep` (the heap block of a list or object Value) safe to change in
// place: allocates an empty one, or clones it when other Values share it.
// Returns the block to use; the caller stores it back when it differs.
template <class Rep, class Copy>
Rep* unique_rep(Rep* rep, Copy&& copy_contents, bool& replaced) {
  replaced = true;
  if (rep == nullptr) return new Rep;
  if (rep->refs.load(std::memory_order_acquire) == 1) {
    replaced = false;
    return rep;
  }
  auto* copy = new Rep;
  copy->depth = rep->depth;
  copy_contents(*copy, *rep);
  return copy;
}

}  // namespace

ListRep* Value::unique_list() {
  assert(kind_ == Kind::List);
  bool replaced;
  auto* rep = unique_rep(
      static_cast<ListRep*>(u_.rep),
      [](ListRep& to, const ListRep& from) { to.items = from.items; }, replaced);
  if (replaced) {
    release();
    u_.rep = rep;
  }
  return rep;
}

ObjectRep* Value::unique_object() {
  assert(kind_ == Kind::Object);
  bool replaced;
  auto* rep = unique_rep(
      static_cast<ObjectRep*>(u_.rep),
      [](ObjectRep& to, const ObjectRep& from) { to.members = from.members; }, replaced);
  if (replaced) {
    release();
    u_.rep = rep;
  }
  return rep;
}

void Value::push_back(Value v) {
  ListRep* rep = unique_list();
  rep->depth = std::max(rep->depth, v.depth() + 1);
  rep->items.push_back(std::move(v));
}

void Value::set_field(std::string_view name, Value v) {
  ObjectRep* rep = unique_object();
  uint32_t new_depth = v.depth() + 1;
  auto& members = rep->members;
  auto it = std::lower_bound(members.begin(), members.end(), name,
                             [](const Member& m, std::string_view n) { return m.first < n; });
  if (it != members.end() && it->first == name) {
    // Replacing the deepest field may make the object shallower: recompute
    // then, so that depth() stays exact rather than an upper bound.
    bool was_deepest = it->second.depth() + 1 == rep->depth;
    it->second = std::move(v);
    rep->depth = was_deepest && new_depth < rep->depth ? detail::object_depth(members)
                                                       : std::max(rep->depth, new_depth);
    return;
  }
  members.emplace(it, std::string(name), std::move(v));
  rep->depth = std::max(rep->depth, new_depth);
}

// ---------------------------------------------------------------------------
// Equality.

bool operator==(const Value& a, const Value& b) {
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Kind::Null:
      return true;
    case Kind::Bool:
      return a.u_.boolean == b.u_.boolean;
    case Kind::Number:
      return a.u_.number == b.u_.number;
    case Kind::String:
      return a.u_.rep == b.u_.rep || a.as_string() == b.as_string();
    case Kind::List:
      return a.list_items() == b.list_items();
    case Kind::Object:
      return a.object_members() == b.object_members();
  }
  return false;
}

// ---------------------------------------------------------------------------
// Printing.

namespace {

// Largest magnitude below which every whole double is printed as an integer:
// 2^53, where doubles stop representing every integer.
constexpr double kIntegerPrintLimit = 9007199254740992.0;

void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  if (std::fabs(d) < kIntegerPrintLimit && d == std::trunc(d)) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(d));
    out.append(buf, end);
    return;
  }
  fmt::format_to(std::back_inserter(out), "{}", d);
}

}  // namespace

void Value::append_json_text(std::string& out) const {
  switch (kind_) {
    case Kind::Null:
      out += "null";
      return;
    case Kind::Bool:
      out += u_.boolean ? "true" : "false";
      return;
    case Kind::Number:
      append_number(out, u_.number);
      return;
    case Kind::String:
      append_json_quoted(out, as_string());
      return;
    case Kind::List: {
      out.push_back('[');
      bool first = true;
      for (const Value& v : list_items()) {
        if (!first) out.push_back(',');
        first = false;
        v.append_json_text(out);
      }
      out.push_back(']');
      return;
    }
    case Kind::Object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [name, v] : object_members()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_quoted(out, name);
        out.push_back(':');
        v.append_json_text(out);
      }
      out.push_back('}');
      return;
    }
  }
}

std::string Value::to_json_text() const {
  std::string out;
  append_json_text(out);
  return out;
}

void Value::append_text(std::string& out) const {
  if (kind_ == Kind::String) {
    out += as_string();
  } else {
    append_json_text(out);
  }
}

std::string Value::to_text() const {
  if (kind_ == Kind::String) return std::string(as_string());
  return to_json_text();
}

}  // namespace saga
