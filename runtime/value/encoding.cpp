// The compact binary encoding of saga::Value used in checkpoints (format in
// saga/value.hpp, next to encode() and decode()). The decoder treats its input
// as hostile: a checkpoint row can be truncated or damaged on disk, and no
// byte sequence may crash the runtime or make it allocate unboundedly.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "runtime/value/rep.hpp"
#include "saga/value.hpp"

namespace saga {
namespace {

// Tag bytes; stable across builds (checkpoints outlive them).
enum Tag : uint8_t {
  kTagNull = 0,
  kTagFalse = 1,
  kTagTrue = 2,
  kTagNumber = 3,
  kTagString = 4,
  kTagList = 5,
  kTagObject = 6,
};

// A varint takes at most 10 bytes for 64 bits.
constexpr int kMaxVarintBytes = 10;

// Most elements a list or object reserves room for before they are decoded.
// A count read from the input is only a claim: reserving all of it at each of
// kMaxDepth levels could cost kMaxDepth times the input size, so vectors grow
// with what is actually decoded beyond this.
constexpr uint64_t kMaxReserve = 64;

void put_varint(std::string& out, uint64_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7F) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

void put_bytes(std::string& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.append(bytes);
}

void put_double(std::string& out, double d) {
  uint64_t bits = std::bit_cast<uint64_t>(d);
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(bits >> (8 * i));
  out.append(buf, 8);
}

// Reads from a byte string, remembering where it started so that errors can
// name the offset. Every read checks the remaining length first.
class Reader {
 public:
  explicit Reader(std::string_view in) : start_(in.data()), in_(in) {}

  std::string_view rest() const { return in_; }
  size_t offset() const { return static_cast<size_t>(in_.data() - start_); }

  Status error(std::string_view what) const {
    return Status(StatusCode::kCorrupt, "corrupt value encoding at byte " +
                                            std::to_string(offset()) + ": " + std::string(what));
  }

  bool byte(uint8_t& b) {
    if (in_.empty()) return false;
    b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }

  // Reads a varint; fails on truncation and on encodings longer than 64 bits.
  Status varint(uint64_t& n) {
    n = 0;
    for (int i = 0; i < kMaxVarintBytes; ++i) {
      uint8_t b;
      if (!byte(b)) return error("truncated length");
      uint64_t part = b & 0x7F;
      if (i == kMaxVarintBytes - 1 && part > 1) return error("length does not fit in 64 bits");
      n |= part << (7 * i);
      if ((b & 0x80) == 0) return Status::Ok();
    }
    return error("length does not fit in 64 bits");
  }

  // Reads a length that must not exceed what is left, divided by the minimum
  // size of each item; this bounds every allocation by the input size.
  Status length(uint64_t& n, size_t min_item_bytes, std::string_view what) {
    if (Status s = varint(n); !s.ok()) return s;
    if (n > in_.size() / min_item_bytes) {
      return error(std::string(what) + " of " + std::to_string(n) + " exceeds the " +
                   std::to_string(in_.size()) + " bytes left");
    }
    return Status::Ok();
  }

  std::string_view take(size_t n) {
    std::string_view s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }

 private:
  const char* start_;
  std::string_view in_;
};

Result<Value> decode_at(Reader& r, uint32_t depth) {
  uint8_t tag;
  if (!r.byte(tag)) return r.error("truncated value");
  switch (tag) {
    case kTagNull:
      return Value();
    case kTagFalse:
      return Value(false);
    case kTagTrue:
      return Value(true);
    case kTagNumber: {
      if (r.rest().size() < 8) return r.error("truncated number");
      std::string_view b = r.rest().substr(0, 8);
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits |= uint64_t{static_cast<uint8_t>(b[i])} << (8 * i);
      const double d = std::bit_cast<double>(bits);
      if (!std::isfinite(d)) return r.error("a number that is not finite");
      r.take(8);
      return Value(d);
    }
    case kTagString: {
      uint64_t n;
      if (Status s = r.length(n, 1, "string length"); !s.ok()) return s;
      return Value(r.take(n));
    }
    case kTagList:
    case kTagObject: {
      if (depth >= kMaxDepth) {
        return r.error("nested deeper than " + std::to_string(kMaxDepth) + " levels");
      }
      if (tag == kTagList) {
        uint64_t n;
        // Each element takes at least its tag byte.
        if (Status s = r.length(n, 1, "list length"); !s.ok()) return s;
        Value::List items;
        items.reserve(std::min(n, kMaxReserve));
        for (uint64_t i = 0; i < n; ++i) {
          Result<Value> v = decode_at(r, depth + 1);
          if (!v.ok()) return v;
          items.push_back(std::move(v).value());
        }
        return Value::list(std::move(items));
      }
      uint64_t n;
      // Each field takes at least a name length byte and a tag byte.
      if (Status s = r.length(n, 2, "object size"); !s.ok()) return s;
      Value::Object members;
      members.reserve(std::min(n, kMaxReserve));
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t name_size;
        if (Status s = r.length(name_size, 1, "field name length"); !s.ok()) return s;
        std::string_view name = r.take(name_size);
        if (!members.empty() && !(members.back().first < name)) {
          return r.error("object field names out of order");
        }
        Result<Value> v = decode_at(r, depth + 1);
        if (!v.ok()) return v;
        members.emplace_back(std::string(name), std::move(v).value());
      }
      return ValueAccess::sorted_object(std::move(members));
    }
    default:
      return r.error("unknown value tag " + std::to_string(tag));
  }
}

}  // namespace

void encode(const Value& value, std::string& out) {
  switch (value.kind()) {
    case Kind::Null:
      out.push_back(static_cast<char>(kTagNull));
      return;
    case Kind::Bool:
      out.push_back(static_cast<char>(value.as_bool() ? kTagTrue : kTagFalse));
      return;
    case Kind::Number:
      out.push_back(static_cast<char>(kTagNumber));
      put_double(out, value.as_number());
      return;
    case Kind::String:
      out.push_back(static_cast<char>(kTagString));
      put_bytes(out, value.as_string());
      return;
    case Kind::List:
      out.push_back(static_cast<char>(kTagList));
      put_varint(out, value.list_items().size());
      for (const Value& v : value.list_items()) encode(v, out);
      return;
    case Kind::Object:
      out.push_back(static_cast<char>(kTagObject));
      put_varint(out, value.object_members().size());
      for (const auto& [name, v] : value.object_members()) {
        put_bytes(out, name);
        encode(v, out);
      }
      return;
  }
}

Result<Value> decode(std::string_view& in) {
  Reader r(in);
  Result<Value> v = decode_at(r, 0);
  if (v.ok()) in = r.rest();
  return v;
}

}  // namespace saga
