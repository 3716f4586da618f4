// The standard library's pure functions (see functions.hpp for the contracts
// and stdlib/functions.def for the documented behaviour). Each fn_NAME below
// is bound to its FN row by the table at the end of this file.
#include "stdlib/functions.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>

#include "stdlib/table.hpp"

namespace saga::stdlib {
namespace {

using Args = std::span<const Value>;

// ---------------------------------------------------------------------------
// Helpers.

// "len() expects a string, list or object, got number".
RuntimeError expects(std::string_view fn, std::string_view expected, Args args) {
  std::string got;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0) got += i + 1 == args.size() ? " and " : ", ";
    got += kind_name(args[i].kind());
  }
  if (args.empty()) got = "no arguments";
  return type_error(fmt::format("{}() expects {}, got {}", fn, expected, got));
}

bool all_of_kind(Args args, Kind kind) {
  return std::all_of(args.begin(), args.end(), [kind](const Value& v) { return v.kind() == kind; });
}

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += !is_continuation(c);
  return n;
}

// Byte offset where code point k starts, or s.size() if there are fewer.
size_t code_point_offset(std::string_view s, double k) {
  if (k <= 0) return 0;
  double seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (is_continuation(s[i])) continue;
    if (seen == k) return i;
    ++seen;
  }
  return s.size();
}

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// A string like s with each byte mapped by f.
template <class F>
Value map_bytes(const Value& s, F f) {
  std::string_view in = s.as_string();
  return Value::string_with(in.size(), [&](char* out) {
    for (size_t i = 0; i < in.size(); ++i) out[i] = f(in[i]);
  });
}

// The names type() returns, allocated once and shared.
const Value& kind_value(Kind kind) {
  static const Value kNames[] = {
      Value("null"),   Value("bool"), Value("number"),
      Value("string"), Value("list"), Value("object"),
  };
  return kNames[static_cast<size_t>(kind)];
}

bool is_whole(double d) {
  return std::isfinite(d) && d == std::trunc(d);
}

// Checks JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

// Whether a JSON number that std::from_chars found out of range is too small
// (underflow, which becomes 0) rather than too large: its decimal exponent,
// counted from the first non-zero digit, is negative.
bool underflows(std::string_view s) {
  size_t i = s.starts_with('-') ? 1 : 0;
  int64_t position = 0;  // Decimal exponent of the digit at i, relative to the point.
  size_t int_digits = 0;
  while (i + int_digits < s.size() && s[i + int_digits] >= '0' && s[i + int_digits] <= '9') {
    ++int_digits;
  }
  int64_t magnitude = 0;
  bool found = false;
  for (size_t j = i; j < s.size() && s[j] != 'e' && s[j] != 'E'; ++j) {
    if (s[j] == '.') continue;
    if (s[j] != '0') {
      magnitude = static_cast<int64_t>(int_digits) - 1 - position;
      found = true;
      break;
    }
    ++position;
  }
  if (!found) return true;
  size_t e = s.find_first_of("eE");
  int64_t exponent = 0;
  if (e != std::string_view::npos) {
    size_t k = e + 1;
    bool negative = k < s.size() && s[k] == '-';
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
    for (; k < s.size(); ++k) {
      exponent = std::min<int64_t>(exponent * 10 + (s[k] - '0'), int64_t{1} << 40);
    }
    if (negative) exponent = -exponent;
  }
  return magnitude + exponent < 0;
}

// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
struct Civil {
  int64_t year;
  unsigned month, day;
};

Civil civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

// ---------------------------------------------------------------------------
// The functions, in functions.def order.

OpResult fn_len(Args args, FunctionContext&) {
  const Value& v = args[0];
  switch (v.kind()) {
    case Kind::String:
      return Value(count_code_points(v.as_string()));
    case Kind::List:
    case Kind::Object:
      return Value(v.size());
    default:
      return expects("len", "a string, list or object", args);
  }
}

OpResult fn_upper(Args args, FunctionContext&) {
  if (!args[0].is_string()) return expects("upper", "a string", args);
  return map_bytes(args[0], [](char c) { return c >= 'a' && c <= 'z' ? char(c - 32) : c; });
}

OpResult fn_lower(Args args, FunctionContext&) {
  if (!args[0].is_string()) return expects("lower", "a string", args);
  return map_bytes(args[0], [](char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; });
}

OpResult fn_trim(Args args, FunctionContext&) {
  if (!args[0].is_string()) return expects("trim", "a string", args);
  std::string_view s = args[0].as_string();
  size_t begin = 0, end = s.size();
  while (begin < end && is_ascii_space(s[begin])) ++begin;
  while (end > begin && is_ascii_space(s[end - 1])) --end;
  if (begin == 0 && end == s.size()) return args[0];  // Shares the string.
  return Value(s.substr(begin, end - begin));
}

OpResult fn_concat(Args args, FunctionContext&) {
  if (all_of_kind(args, Kind::String)) {
    if (args.size() == 1) return args[0];
    size_t total = 0;
    for (const Value& a : args) total += a.size();
    return Value::string_with(total, [&](char* out) {
      for (const Value& a : args) {
        std::string_view s = a.as_string();
        if (!s.empty()) std::memcpy(out, s.data(), s.size());
        out += s.size();
      }
    });
  }
  if (all_of_kind(args, Kind::List)) {
    if (args.size() == 1) return args[0];
    size_t total = 0;
    for (const Value& a : args) total += a.size();
    Value::List items;
    items.reserve(total);
    for (const Value& a : args) {
      items.insert(items.end(), a.list_items().begin(), a.list_items().end());
    }
    return Value::list(std::move(items));
  }
  return expects("concat", "all strings or all lists", args);
}

OpResult fn_contains(Args args, FunctionContext&) {
  const Value& haystack = args[0];
  const Value& needle = args[1];
  switch (haystack.kind()) {
    case Kind::String:
      if (!needle.is_string())
        return expects("contains", "a string to search for in a string", args);
      return Value(haystack.as_string().find(needle.as_string()) != std::string_view::npos);
    case Kind::List: {
      const Value::List& items = haystack.list_items();
      return Value(std::find(items.begin(), items.end(), needle) != items.end());
    }
    case Kind::Object:
      if (!needle.is_string()) return expects("contains", "a string key for an object", args);
      return Value(haystack.has(needle.as_string()));
    default:
      return expects("contains", "a string, list or object to search", args);
  }
}

OpResult fn_starts_with(Args args, FunctionContext&) {
  if (!all_of_kind(args, Kind::String)) return expects("starts_with", "two strings", args);
  return Value(args[0].as_string().starts_with(args[1].as_string()));
}

OpResult fn_ends_with(Args args, FunctionContext&) {
  if (!all_of_kind(args, Kind::String)) return expects("ends_with", "two strings", args);
  return Value(args[0].as_string().ends_with(args[1].as_string()));
}

OpResult fn_split(Args args, FunctionContext&) {
  if (!all_of_kind(args, Kind::String)) return expects("split", "two strings", args);
  std::string_view text = args[0].as_string();
  std::string_view sep = args[1].as_string();
  if (sep.empty()) return type_error("split() expects a non-empty separator");
  Value::List parts;
  size_t start = 0;
  for (size_t at; (at = text.find(sep, start)) != std::string_view::npos; start = at + sep.size()) {
    parts.emplace_back(text.substr(start, at - start));
  }
  parts.emplace_back(text.substr(start));
  return Value::list(std::move(parts));
}

OpResult fn_join(Args args, FunctionContext&) {
  if (!args[0].is_list() || !args[1].is_string()) {
    return expects("join", "a list and a string", args);
  }
  std::string_view sep = args[1].as_string();
  std::string out;
  bool first = true;
  for (const Value& v : args[0].list_items()) {
    if (!first) out += sep;
    first = false;
    v.append_text(out);
  }
  return Value(std::string_view(out));
}

OpResult fn_replace(Args args, FunctionContext&) {
  if (!all_of_kind(args, Kind::String)) return expects("replace", "three strings", args);
  std::string_view text = args[0].as_string();
  std::string_view from = args[1].as_string();
  std::string_view to = args[2].as_string();
  if (from.empty()) return type_error("replace() expects a non-empty string to replace");
  size_t at = text.find(from);
  if (at == std::string_view::npos) return args[0];  // Shares the string.
  std::string out;
  size_t start = 0;
  for (; at != std::string_view::npos; at = text.find(from, start)) {
    out.append(text.substr(start, at - start));
    out.append(to);
    start = at + from.size();
  }
  out.append(text.substr(start));
  return Value(std::string_view(out));
}

OpResult fn_substr(Args args, FunctionContext&) {
  if (!args[0].is_string() || !args[1].is_number() || (args.size() > 2 && !args[2].is_number())) {
    return expects("substr", args.size() > 2 ? "a string and two numbers" : "a string and a number",
                   args);
  }
  double start = args[1].as_number();
  if (!is_whole(start) || start < 0) {
    return type_error(fmt::format("substr() expects a whole number >= 0 as start, got {}",
                                  args[1].to_json_text()));
  }
  std::string_view s = args[0].as_string();
  size_t begin = code_point_offset(s, start);
  size_t end = s.size();
  if (args.size() > 2) {
    double length = args[2].as_number();
    if (!is_whole(length) || length < 0) {
      return type_error(fmt::format("substr() expects a whole number >= 0 as length, got {}",
                                    args[2].to_json_text()));
    }
    end = begin + code_point_offset(s.substr(begin), length);
  }
  if (begin == 0 && end == s.size()) return args[0];
  return Value(s.substr(begin, end - begin));
}

OpResult fn_str(Args args, FunctionContext&) {
  if (args[0].is_string()) return args[0];
  return Value(std::string_view(args[0].to_json_text()));
}

OpResult fn_num(Args args, FunctionContext&) {
  const Value& v = args[0];
  if (v.is_number()) return v;
  if (!v.is_string()) return expects("num", "a number or a string", args);
  std::string_view s = v.as_string();
  if (!is_json_number(s)) {
    return type_error(fmt::format("num() cannot read {} as a number", v.to_json_text()));
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec == std::errc::result_out_of_range) {
    if (!underflows(s)) {
      return type_error(fmt::format("num() cannot represent {}: too large", v.to_json_text()));
    }
    d = s.starts_with('-') ? -0.0 : 0.0;
  } else if (ec != std::errc() || ptr != s.data() + s.size()) {
    return type_error(fmt::format("num() cannot read {} as a number", v.to_json_text()));
  }
  return Value(d);
}

template <double (*F)(double)>
OpResult unary_math(std::string_view name, Args args) {
  if (!args[0].is_number()) return expects(name, "a number", args);
  return Value(F(args[0].as_number()));
}

double abs_of(double d) {
  return std::fabs(d);
}
double round_of(double d) {
  return std::round(d);
}  // Half away from zero.
double floor_of(double d) {
  return std::floor(d);
}
double ceil_of(double d) {
  return std::ceil(d);
}

OpResult fn_abs(Args args, FunctionContext&) {
  return unary_math<abs_of>("abs", args);
}
OpResult fn_round(Args args, FunctionContext&) {
  return unary_math<round_of>("round", args);
}
OpResult fn_floor(Args args, FunctionContext&) {
  return unary_math<floor_of>("floor", args);
}
OpResult fn_ceil(Args args, FunctionContext&) {
  return unary_math<ceil_of>("ceil", args);
}

// min and max: over the arguments, or over the elements of a single list.
template <class Better>
OpResult extreme(std::string_view name, Args args, Better better) {
  Args candidates = args;
  if (args.size() == 1 && args[0].is_list()) {
    candidates = args[0].list_items();
    if (candidates.empty()) return type_error(fmt::format("{}() of an empty list", name));
    for (const Value& v : candidates) {
      if (v.is_number()) continue;
      return type_error(fmt::format("{}() expects a list of numbers, got a {} in the list", name,
                                    kind_name(v.kind())));
    }
  } else if (!all_of_kind(args, Kind::Number)) {
    return expects(name, "numbers or a single list of numbers", args);
  }
  const Value* best = &candidates[0];
  for (const Value& v : candidates.subspan(1)) {
    if (better(v.as_number(), best->as_number())) best = &v;
  }
  return *best;
}

OpResult fn_min(Args args, FunctionContext&) {
  return extreme("min", args, [](double a, double b) { return a < b; });
}

OpResult fn_max(Args args, FunctionContext&) {
  return extreme("max", args, [](double a, double b) { return a > b; });
}

OpResult fn_keys(Args args, FunctionContext&) {
  if (!args[0].is_object()) return expects("keys", "an object", args);
  Value::List names;
  names.reserve(args[0].size());
  for (const auto& m : args[0].object_members()) names.emplace_back(std::string_view(m.first));
  return Value::list(std::move(names));
}

OpResult fn_values(Args args, FunctionContext&) {
  if (!args[0].is_object()) return expects("values", "an object", args);
  Value::List values;
  values.reserve(args[0].size());
  for (const auto& m : args[0].object_members()) values.push_back(m.second);
  return Value::list(std::move(values));
}

OpResult fn_has(Args args, FunctionContext&) {
  if (!args[0].is_object() || !args[1].is_string()) {
    return expects("has", "an object and a string", args);
  }
  return Value(args[0].has(args[1].as_string()));
}

OpResult fn_default(Args args, FunctionContext&) {
  return args[0].is_null() ? args[1] : args[0];
}

OpResult fn_type(Args args, FunctionContext&) {
  return kind_value(args[0].kind());
}

OpResult fn_json(Args args, FunctionContext&) {
  return Value(std::string_view(args[0].to_json_text()));
}

OpResult fn_now(Args, FunctionContext& ctx) {
  return Value(std::string_view(format_iso8601_ms(ctx.now_ms())));
}

OpResult fn_now_ms(Args, FunctionContext& ctx) {
  return Value(ctx.now_ms());
}

OpResult fn_uuid(Args, FunctionContext& ctx) {
  std::array<uint8_t, 16> bytes{};
  ctx.random_bytes(bytes);
  return Value(std::string_view(format_uuid_v4(bytes)));
}

// The binding: one entry per FN row, naming fn_NAME. A row without an
// implementation above fails to compile here.
constexpr FunctionImpl kImpls[] = {
#define FN(name, min, max, flags, signature, doc, example) {#name, min, max, flags, &fn_##name},
#include "stdlib/functions.def"
#undef FN
};

}  // namespace

std::span<const FunctionImpl> function_impls() {
  return kImpls;
}

const FunctionImpl* find_function_impl(std::string_view name) {
  for (const FunctionImpl& f : kImpls) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

OpResult call_function(const FunctionImpl& f, std::span<const Value> args, FunctionContext& ctx) {
  auto n = static_cast<int>(std::min<size_t>(args.size(), 1 << 30));
  if (n < f.min_args || (f.max_args != kVariadic && n > f.max_args)) {
    std::string arity = f.max_args == kVariadic ? fmt::format("at least {}", f.min_args)
                        : f.min_args == f.max_args
                            ? fmt::format("{}", f.min_args)
                            : fmt::format("{} to {}", f.min_args, f.max_args);
    bool one = f.max_args == 1 || (f.max_args == kVariadic && f.min_args == 1);
    return type_error(fmt::format("{}() takes {} argument{}, got {}", f.name, arity, one ? "" : "s",
                                  args.size()));
  }
  return f.fn(args, ctx);
}

std::string format_iso8601_ms(int64_t ms) {
  constexpr int64_t kMsPerDay = 86'400'000;
  int64_t days = ms / kMsPerDay;
  int64_t rest = ms % kMsPerDay;
  if (rest < 0) {  // Floor division, for times before 1970.
    rest += kMsPerDay;
    --days;
  }
  Civil c = civil_from_days(days);
  auto msec = static_cast<unsigned>(rest % 1000);
  auto sec = static_cast<unsigned>(rest / 1000 % 60);
  auto min = static_cast<unsigned>(rest / 60'000 % 60);
  auto hour = static_cast<unsigned>(rest / 3'600'000);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.year, c.month, c.day, hour,
                     min, sec, msec);
}

namespace {

// Sets the version and the RFC 9562 variant bits and spells the 16 bytes in
// the canonical 8-4-4-4-12 form.
std::string format_uuid(std::array<uint8_t, 16> b, uint8_t version) {
  b[6] = static_cast<uint8_t>((b[6] & 0x0F) | (version << 4));
  b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80);  // Variant 10xx.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 15]);
  }
  return out;
}

}  // namespace

std::string format_uuid_v4(std::array<uint8_t, 16> bytes) {
  return format_uuid(bytes, 4);
}

std::string format_uuid_v7(int64_t unix_ms, std::array<uint8_t, 16> bytes) {
  const auto ms = static_cast<uint64_t>(std::max<int64_t>(unix_ms, 0));
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  return format_uuid(bytes, 7);
}

SystemFunctionContext::SystemFunctionContext() {
  std::random_device device;
  std::seed_seq seed{device(), device(), device(), device(),
                     device(), device(), device(), device()};
  random_.seed(seed);
}

int64_t SystemFunctionContext::now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void SystemFunctionContext::random_bytes(std::span<uint8_t> out) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < out.size(); i += 8) {
    uint64_t r = random_();
    for (size_t j = 0; j < 8 && i + j < out.size(); ++j)
      out[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
}

}  // namespace saga::stdlib
