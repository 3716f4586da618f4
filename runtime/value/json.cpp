// JSON text parsing and nlohmann::json conversions for saga::Value
// (saga/value.hpp). Parsing uses nlohmann's SAX parser, without exceptions,
// and builds Values directly: no intermediate nlohmann::json tree, errors with
// nlohmann's line and column, and the depth limit enforced as soon as it is
// crossed, so hostile input ("[[[[...") costs no more than its own length.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/value/rep.hpp"
#include "saga/value.hpp"

namespace saga {
namespace {

using json = nlohmann::json;

// Builds a Value from nlohmann's SAX events. Containers under construction
// wait on a stack of frames; objects gather their fields unsorted and are
// sorted once when they close (O(n log n) rather than a sorted insert each).
class Builder {
 public:
  Value take_root() { return std::move(root_); }
  const std::string& error() const { return error_; }

  bool null() { return add(Value()); }
  bool boolean(bool b) { return add(Value(b)); }
  bool number_integer(json::number_integer_t n) { return add(Value(static_cast<double>(n))); }
  bool number_unsigned(json::number_unsigned_t n) { return add(Value(static_cast<double>(n))); }
  bool number_float(json::number_float_t n, const std::string& text) {
    if (!std::isfinite(n)) return fail("invalid JSON: number " + text + " is out of range");
    return add(Value(n));
  }
  bool string(std::string& s) { return add(Value(std::string_view(s))); }
  bool binary(json::binary_t& /*unused*/) { return fail("invalid JSON: binary value"); }

  bool start_object(std::size_t /*unknown*/) { return open(true); }
  bool key(std::string& name) {
    frames_.back().key = std::move(name);
    return true;
  }
  bool end_object() {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    return add(Value::object(std::move(frame.members)));
  }
  bool start_array(std::size_t /*unknown*/) { return open(false); }
  bool end_array() {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    return add(Value::list(std::move(frame.items)));
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    // ex.what() reads "[json.exception.parse_error.101] parse error at line 1,
    // column 4: syntax error ..."; keep the part from "at line" on.
    std::string_view what = ex.what();
    if (auto bracket = what.find("] "); bracket != std::string_view::npos) {
      what.remove_prefix(bracket + 2);
    }
    constexpr std::string_view kPrefix = "parse error ";
    if (what.starts_with(kPrefix)) what.remove_prefix(kPrefix.size());
    if (what.starts_with("at ")) return fail("invalid JSON " + std::string(what));
    if (what.starts_with(": ")) what.remove_prefix(2);
    return fail("invalid JSON: " + std::string(what));
  }

 private:
  struct Frame {
    bool is_object = false;
    Value::List items;
    Value::Object members;
    std::string key;
  };

  bool open(bool is_object) {
    if (frames_.size() >= kMaxDepth) {
      return fail("invalid JSON: nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    frames_.emplace_back().is_object = is_object;
    return true;
  }

  bool add(Value v) {
    if (frames_.empty()) {
      root_ = std::move(v);
    } else if (Frame& top = frames_.back(); top.is_object) {
      top.members.emplace_back(std::move(top.key), std::move(v));
    } else {
      top.items.push_back(std::move(v));
    }
    return true;
  }

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  std::vector<Frame> frames_;
  Value root_;
  std::string error_;
};

Result<Value> from_json_at(const json& j, uint32_t depth) {
  switch (j.type()) {
    case json::value_t::null:
      return Value();
    case json::value_t::boolean:
      return Value(j.get<bool>());
    case json::value_t::number_integer:
      return Value(static_cast<double>(j.get<int64_t>()));
    case json::value_t::number_unsigned:
      return Value(static_cast<double>(j.get<uint64_t>()));
    case json::value_t::number_float: {
      double d = j.get<double>();
      if (!std::isfinite(d)) {
        return Status(StatusCode::kInvalidArgument, "JSON value holds a non-finite number");
      }
      return Value(d);
    }
    case json::value_t::string:
      return Value(std::string_view(j.get_ref<const std::string&>()));
    case json::value_t::array:
    case json::value_t::object: {
      if (depth >= kMaxDepth) {
        return Status(StatusCode::kInvalidArgument,
                      "JSON value is nested deeper than " + std::to_string(kMaxDepth) + " levels");
      }
      if (j.is_array()) {
        Value::List items;
        items.reserve(j.size());
        for (const json& e : j) {
          Result<Value> v = from_json_at(e, depth + 1);
          if (!v.ok()) return v;
          items.push_back(std::move(v).value());
        }
        return Value::list(std::move(items));
      }
      // nlohmann::json objects are std::map: already sorted by name, unique.
      Value::Object members;
      members.reserve(j.size());
      for (const auto& [name, e] : j.items()) {
        Result<Value> v = from_json_at(e, depth + 1);
        if (!v.ok()) return v;
        members.emplace_back(name, std::move(v).value());
      }
      return ValueAccess::sorted_object(std::move(members));
    }
    case json::value_t::binary:
      return Status(StatusCode::kInvalidArgument, "JSON value holds binary data");
    case json::value_t::discarded:
      return Status(StatusCode::kInvalidArgument, "JSON value is discarded (a failed parse)");
  }
  return Status(StatusCode::kInvalidArgument, "JSON value of unknown type");
}

}  // namespace

Result<Value> Value::from_json_text(std::string_view text) {
  Builder builder;
  bool ok = json::sax_parse(text, &builder, json::input_format_t::json, /*strict=*/true,
                            /*ignore_comments=*/false);
  if (!ok) {
    std::string message = builder.error().empty() ? "invalid JSON" : builder.error();
    return Status(StatusCode::kInvalidArgument, std::move(message));
  }
  return builder.take_root();
}

Result<Value> Value::from_json(const nlohmann::json& j) {
  return from_json_at(j, 0);
}

nlohmann::json Value::to_json() const {
  switch (kind_) {
    case Kind::Null:
      return nullptr;
    case Kind::Bool:
      return u_.boolean;
    case Kind::Number: {
      double d = u_.number;
      if (!std::isfinite(d)) return nullptr;  // As in to_json_text().
      // Whole numbers become JSON integers, so that hosts dump them as "42".
      if (std::fabs(d) < 9007199254740992.0 && d == std::trunc(d)) return static_cast<int64_t>(d);
      return d;
    }
    case Kind::String:
      return std::string(as_string());
    case Kind::List: {
      json out = json::array();
      for (const Value& v : list_items()) out.push_back(v.to_json());
      return out;
    }
    case Kind::Object: {
      json out = json::object();
      for (const auto& [name, v] : object_members()) out[name] = v.to_json();
      return out;
    }
  }
  return nullptr;
}

}  // namespace saga
