// saga::Value: the JSON value that Saga programs compute with (null, bool,
// number, string, list, object). The VM keeps variables and operand stacks of
// Values, the pure functions (stdlib/functions.hpp) and the opcode semantics
// (runtime/value/ops.hpp) take and return them, actions exchange them with
// hosts (as JSON text or nlohmann::json), and checkpoints store them in the
// compact binary encoding declared at the end of this file.
//
// Design: a Value is 16 bytes, a kind tag plus a payload. Null, booleans and
// numbers (doubles) live inline. Strings, lists and objects live in immutable,
// reference-counted heap blocks ("reps") shared by every copy, so copying a
// Value costs one atomic increment and moving it costs a 16-byte copy. We chose
// shared immutable reps over small-vector value semantics because the VM copies
// values far more often than it builds them (LOAD, STORE, FIELD, CALL
// arguments, checkpoints of many instances sharing one program's constants),
// and a deep copy of a list per LOAD would dominate. Mutation (push_back,
// set_field: the VM's LIST, OBJECT and SET_FIELD) is copy-on-write: when the
// rep has a single owner, it is changed in place, which is the common case
// while a literal is being built on the operand stack; otherwise it is cloned
// first. Reference counts are atomic because a program's constants are shared
// by instances that may run on different threads; a single Value object must
// still not be mutated by two threads at once, exactly like std::string.
//
// Strings are one allocation (header and bytes together) and are not required
// to be valid UTF-8 (values parsed from JSON text always are). An empty string,
// list or object needs no allocation at all.
//
// Objects keep their fields sorted by name (byte order), with unique names.
// That makes keys() and JSON output canonical (the same object always prints
// the same text and encodes to the same bytes, which checkpoints and tests
// rely on), equality a linear scan and lookup a binary search. Objects in Saga
// are small records, so the O(n) insertion cost of a sorted vector is cheaper
// in practice than a hash map's allocations.
//
// Nesting is limited to kMaxDepth levels of lists and objects for everything
// that comes from outside (JSON text, nlohmann::json, checkpoints), so that
// recursion over a value (printing, equality, destruction) stays shallow; each
// list and object rep records its depth, so checking the limit costs O(1).
#pragma once

#include <atomic>
#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/status.hpp"

namespace saga {

// The deepest nesting of lists and objects accepted from JSON text,
// nlohmann::json and checkpoints, and built by the VM (runtime/value/ops.hpp).
// A scalar has depth 0 and a list or object one more than its deepest element
// (so "[]" has depth 1). 256 is far beyond any business document while keeping
// every recursive walk over a value well inside a thread's stack.
inline constexpr uint32_t kMaxDepth = 256;

// The kinds of value. The heap kinds (String, List, Object) must stay last:
// Value tests `kind >= Kind::String` to know that it holds a rep. The binary
// encoding has its own tags, so this order is not stored anywhere.
enum class Kind : uint8_t { Null, Bool, Number, String, List, Object };

// "null", "bool", "number", "string", "list" or "object": the names type()
// returns and that error messages use.
std::string_view kind_name(Kind kind);

namespace detail {
// The header every heap rep starts with. refs counts the Values sharing the
// rep; depth is the nesting depth of a list or object (unused for strings).
struct Rep {
  std::atomic<uint32_t> refs{1};
  uint32_t depth = 1;
};
struct StringRep;
struct ListRep;
struct ObjectRep;
// Frees a rep whose last reference has gone; out of line.
void destroy_rep(Kind kind, Rep* rep) noexcept;
// Integer types a Value converts from (as a number). bool is a boolean, and
// char is excluded so that 'a' is not silently the number 97.
template <class T>
concept Integer = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char>;
}  // namespace detail

class Value {
 public:
  using List = std::vector<Value>;
  // An object's field: name and value. Objects hold them sorted by name.
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;

  // Null.
  Value() noexcept : kind_(Kind::Null) { u_.rep = nullptr; }
  Value(std::nullptr_t) noexcept : Value() {}  // NOLINT(google-explicit-constructor)
  // A boolean. Constrained so that pointers and numbers never become bools.
  template <std::same_as<bool> B>
  Value(B b) noexcept : kind_(Kind::Bool) {  // NOLINT(google-explicit-constructor)
    u_.rep = nullptr;
    u_.boolean = b;
  }
  // A number. Integers are converted to double (exact up to 2^53).
  Value(double d) noexcept : kind_(Kind::Number) { u_.number = d; }  // NOLINT
  template <detail::Integer I>
  Value(I i) noexcept : Value(static_cast<double>(i)) {}  // NOLINT(google-explicit-constructor)
  // A string (the bytes are copied).
  Value(std::string_view s);  // NOLINT(google-explicit-constructor)
  Value(const std::string& s) : Value(std::string_view(s)) {}  // NOLINT
  Value(const char* s) : Value(std::string_view(s)) {}  // NOLINT(google-explicit-constructor)

  Value(const Value& other) noexcept : kind_(other.kind_), u_(other.u_) { retain(); }
  Value(Value&& other) noexcept : kind_(other.kind_), u_(other.u_) {
    other.kind_ = Kind::Null;
    other.u_.rep = nullptr;
  }
  Value& operator=(const Value& other) noexcept {
    Value copy(other);
    swap(copy);
    return *this;
  }
  Value& operator=(Value&& other) noexcept {
    Value moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~Value() { release(); }

  void swap(Value& other) noexcept {
    std::swap(kind_, other.kind_);
    std::swap(u_, other.u_);
  }

  // Factories, for readability where the constructors would be ambiguous.
  static Value null() { return Value(); }
  static Value boolean(bool b) { return Value(b); }
  static Value number(double d) { return Value(d); }
  static Value string(std::string_view s) { return Value(s); }
  // A string of `size` bytes written by fill(char* data) in place: one
  // allocation, no intermediate std::string. fill must write all bytes.
  template <class Fill>
  static Value string_with(size_t size, Fill&& fill) {
    Value v;
    char* data = v.init_string(size);
    if (size > 0) std::forward<Fill>(fill)(data);
    return v;
  }
  // An empty list, or a list of the given elements.
  static Value list() { return Value(Kind::List); }
  static Value list(List items);
  static Value list(std::initializer_list<Value> items) { return list(List(items)); }
  // An empty object, or an object of the given fields. Fields are sorted by
  // name; when a name repeats, the last occurrence wins (as in SET_FIELD).
  static Value object() { return Value(Kind::Object); }
  static Value object(Object members);
  static Value object(std::initializer_list<std::pair<std::string_view, Value>> members);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_object() const { return kind_ == Kind::Object; }

  // Accessors. Each requires the matching kind (checked by assert in debug
  // builds); callers check kind() first.
  bool as_bool() const;
  double as_number() const;
  std::string_view as_string() const;
  const List& list_items() const;
  const Object& object_members() const;

  // Number of elements (list), fields (object) or bytes (string); 0 otherwise.
  size_t size() const;

  // The value of field `name`, or null when this is not an object or has no
  // such field. The pointer is valid until this Value is changed or destroyed.
  const Value* find(std::string_view name) const;
  // Whether this is an object with a field `name` (even if its value is null).
  bool has(std::string_view name) const { return find(name) != nullptr; }

  // Copy-on-write mutation. set_field requires an object and replaces any
  // field of the same name; push_back requires a list. Neither checks
  // kMaxDepth: the VM uses ops::set_field / ops::make_list, which do.
  void set_field(std::string_view name, Value v);
  void push_back(Value v);

  // Nesting depth: 0 for scalars, 1 + the deepest element for lists and
  // objects. O(1).
  uint32_t depth() const;

  // Whether this Value is the only owner of its heap rep (or has none): then
  // mutation happens in place. Exposed for tests and the VM's statistics.
  bool is_unique() const;

  // Deep equality: same kind and same value. Numbers compare as doubles (so
  // 0 == -0 and NaN differs from itself), strings by bytes, lists element by
  // element and objects field by field.
  friend bool operator==(const Value& a, const Value& b);

  // Compact JSON text: no spaces, fields in sorted order. Whole numbers with
  // magnitude below 2^53 print as integers ("42"), other numbers in the
  // shortest form that reads back to the same double ("0.1", "1e+300"), and
  // NaN and infinities, which JSON cannot express, as null. Control
  // characters, quotes and backslashes in strings are escaped; other bytes
  // are copied as they are.
  std::string to_json_text() const;
  void append_json_text(std::string& out) const;
  // Text for CONCAT, str() and FAIL: a string as it is, anything else as
  // compact JSON.
  std::string to_text() const;
  void append_text(std::string& out) const;

  // Parses JSON text (RFC 8259; no comments, no trailing commas, exactly one
  // value with optional surrounding white space). Errors are kInvalidArgument
  // and name the line and column: "invalid JSON at line 1, column 4: ...".
  // Numbers outside the range of a double and nesting beyond kMaxDepth are
  // errors too. Duplicate field names: the last one wins.
  static Result<Value> from_json_text(std::string_view text);

  // Conversions for host APIs. from_json fails (kInvalidArgument) on binary
  // values, discarded values, non-finite numbers and nesting beyond kMaxDepth.
  nlohmann::json to_json() const;
  static Result<Value> from_json(const nlohmann::json& json);

 private:
  friend struct ValueAccess;
  explicit Value(Kind container) noexcept : kind_(container) { u_.rep = nullptr; }
  char* init_string(size_t size);
  bool has_rep() const { return kind_ >= Kind::String && u_.rep != nullptr; }
  void retain() const noexcept {
    if (has_rep()) u_.rep->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept {
    if (has_rep() && u_.rep->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      detail::destroy_rep(kind_, u_.rep);
    }
  }
  detail::ListRep* unique_list();
  detail::ObjectRep* unique_object();

  Kind kind_;
  union Payload {
    bool boolean;
    double number;
    detail::Rep* rep;  // Heap kinds: a StringRep, ListRep or ObjectRep; null means empty.
  } u_;
};

static_assert(sizeof(Value) == 16, "a Value is a tag plus 8 bytes of payload");

// Binary encoding of a value, for checkpoints. One tag byte per value, then:
//   0 null, 1 false, 2 true: nothing;
//   3 number: 8 bytes, the IEEE-754 double in little-endian order, finite
//             (no value the runtime makes is NaN or infinite: JSON has
//             neither and arithmetic that overflows is an error);
//   4 string: varint byte length, then the bytes;
//   5 list:   varint element count, then the elements;
//   6 object: varint field count, then per field a varint name length, the
//             name bytes and the value; names strictly increasing by bytes.
// Varints are unsigned LEB128 (7 bits per byte, low first, at most 10 bytes).
// The format is stable: checkpoints outlive builds, so only append tags.
//
// encode appends the encoding of `value` to `out`.
void encode(const Value& value, std::string& out);

// Decodes one value from the front of `in` and advances `in` past it (on
// error, `in` is left unchanged). Whatever the bytes, decode never crashes and
// never allocates unboundedly: every length is checked against the remaining
// bytes before anything is read or allocated, so memory stays proportional to
// in.size() (plus a small, bounded reserve per nesting level). Errors are
// kCorrupt, with a message that says what was wrong and at which byte offset:
// unknown tag, truncated data, a number that is not finite, an overlong
// varint, nesting beyond kMaxDepth, or object names out of order.
Result<Value> decode(std::string_view& in);

}  // namespace saga
