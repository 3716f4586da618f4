// Tests of the standard library's pure functions (stdlib/functions.hpp):
// the binding to functions.def, every documented example (evaluated
// automatically from the table by a tiny expression reader, and again by
// hand), and each function on normal inputs, edge cases and wrong kinds.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "runtime/value/ops.hpp"
#include "stdlib/functions.hpp"
#include "stdlib/table.hpp"

namespace saga::stdlib {
namespace {

// A context whose clock and random bytes the test sets.
class FakeContext : public FunctionContext {
 public:
  int64_t now = 1714567890123;  // 2024-05-01T12:51:30.123Z
  uint8_t next_byte = 0;
  int64_t now_ms() override { return now; }
  void random_bytes(std::span<uint8_t> out) override {
    for (uint8_t& b : out) b = next_byte++;
  }
};

Value json(std::string_view text) {
  auto r = Value::from_json_text(text);
  EXPECT_TRUE(r.ok()) << text;
  return r.ok() ? r.value() : Value();
}

OpResult call(std::string_view name, std::vector<Value> args, FunctionContext* ctx = nullptr) {
  static FakeContext fake;
  const FunctionImpl* f = find_function_impl(name);
  if (f == nullptr) {
    ADD_FAILURE() << "no function " << name;
    return Value();
  }
  return call_function(*f, args, ctx ? *ctx : fake);
}

Value ok(std::string_view name, std::vector<Value> args) {
  OpResult r = call(name, std::move(args));
  EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : Value();
}

// The `type` error message of a call that must fail.
std::string type_err(std::string_view name, std::vector<Value> args) {
  OpResult r = call(name, std::move(args));
  EXPECT_FALSE(r.ok()) << name << " returned " << r->to_json_text();
  if (r.ok()) return "";
  EXPECT_EQ(r.error().error_class, "type") << r.error().message;
  return r.error().message;
}

// ---------------------------------------------------------------------------
// A reader for the example column of functions.def: calls, JSON-like literals
// (object keys may be bare names), and one comparison.

class ExampleReader {
 public:
  ExampleReader(std::string_view text, FunctionContext& ctx) : s_(text), ctx_(ctx) {}

  // The example's value (normally a boolean), or an error description.
  OpResult run() {
    OpResult v = comparison();
    if (!v.ok()) return v;
    skip();
    if (i_ != s_.size()) return fail("trailing text");
    return v;
  }

 private:
  RuntimeError fail(std::string_view what) {
    return RuntimeError{"example",
                        std::string(what) + " at " + std::to_string(i_) + " in " + std::string(s_)};
  }

  void skip() {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
  }

  bool eat(std::string_view token) {
    skip();
    if (s_.substr(i_).starts_with(token)) {
      i_ += token.size();
      return true;
    }
    return false;
  }

  OpResult comparison() {
    OpResult left = operand();
    if (!left.ok()) return left;
    for (std::string_view op : {"==", "!=", ">=", "<=", ">", "<"}) {
      if (!eat(op)) continue;
      OpResult right = operand();
      if (!right.ok()) return right;
      const Value& a = *left;
      const Value& b = *right;
      if (op == "==") return Value(runtime::ops::eq(a, b));
      if (op == "!=") return Value(runtime::ops::ne(a, b));
      if (op == ">=") return runtime::ops::ge(a, b);
      if (op == "<=") return runtime::ops::le(a, b);
      if (op == ">") return runtime::ops::gt(a, b);
      return runtime::ops::lt(a, b);
    }
    return left;
  }

  std::string_view name() {
    skip();
    size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) {
      ++i_;
    }
    return s_.substr(start, i_ - start);
  }

  OpResult string_literal() {
    size_t start = i_++;
    while (i_ < s_.size() && s_[i_] != '"') i_ += s_[i_] == '\\' ? 2 : 1;
    if (i_ >= s_.size()) return fail("unterminated string");
    ++i_;
    auto v = Value::from_json_text(s_.substr(start, i_ - start));
    if (!v.ok()) return fail(v.status().message());
    return v.value();
  }

  OpResult operand() {
    skip();
    if (i_ >= s_.size()) return fail("missing operand");
    char c = s_[i_];
    if (c == '"') return string_literal();
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t start = i_++;
      while (i_ < s_.size() && std::strchr("0123456789.eE+-", s_[i_])) ++i_;
      auto v = Value::from_json_text(s_.substr(start, i_ - start));
      if (!v.ok()) return fail("bad number");
      return v.value();
    }
    if (c == '[') {
      ++i_;
      Value::List items;
      if (!eat("]")) {
        do {
          OpResult e = comparison();
          if (!e.ok()) return e;
          items.push_back(std::move(e).value());
        } while (eat(","));
        if (!eat("]")) return fail("expected ]");
      }
      return Value::list(std::move(items));
    }
    if (c == '{') {
      ++i_;
      Value object = Value::object();
      if (!eat("}")) {
        do {
          skip();
          std::string key;
          if (i_ < s_.size() && s_[i_] == '"') {
            OpResult k = string_literal();
            if (!k.ok()) return k;
            key = std::string(k->as_string());
          } else {
            key = std::string(name());
          }
          if (!eat(":")) return fail("expected :");
          OpResult e = comparison();
          if (!e.ok()) return e;
          object.set_field(key, std::move(e).value());
        } while (eat(","));
        if (!eat("}")) return fail("expected }");
      }
      return object;
    }
    std::string_view id = name();
    if (id.empty()) return fail("unexpected character");
    if (id == "null") return Value();
    if (id == "true") return Value(true);
    if (id == "false") return Value(false);
    if (!eat("(")) return fail("expected (");
    std::vector<Value> args;
    if (!eat(")")) {
      do {
        OpResult e = comparison();
        if (!e.ok()) return e;
        args.push_back(std::move(e).value());
      } while (eat(","));
      if (!eat(")")) return fail("expected )");
    }
    const FunctionImpl* f = find_function_impl(id);
    if (f == nullptr) return fail("unknown function " + std::string(id));
    return call_function(*f, args, ctx_);
  }

  std::string_view s_;
  size_t i_ = 0;
  FunctionContext& ctx_;
};

// ---------------------------------------------------------------------------
// The binding.

TEST(FunctionTable, EveryRowIsBoundInOrder) {
  auto impls = function_impls();
  ASSERT_EQ(impls.size(), std::size(kFunctions));
  for (size_t i = 0; i < impls.size(); ++i) {
    EXPECT_EQ(impls[i].name, kFunctions[i].name);
    EXPECT_EQ(impls[i].min_args, kFunctions[i].min_args);
    EXPECT_EQ(impls[i].max_args, kFunctions[i].max_args);
    EXPECT_EQ(impls[i].flags, kFunctions[i].flags);
    EXPECT_NE(impls[i].fn, nullptr);
    EXPECT_EQ(find_function_impl(impls[i].name), &impls[i]);
  }
  EXPECT_EQ(find_function_impl("no_such_function"), nullptr);
  EXPECT_EQ(find_function_impl(""), nullptr);
}

TEST(FunctionTable, CallFunctionChecksArity) {
  FakeContext ctx;
  RuntimeError e = call("len", {}).error();
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "len() takes 1 argument, got 0");
  EXPECT_EQ(call("len", {1, 2}).error().message, "len() takes 1 argument, got 2");
  EXPECT_EQ(call("substr", {"a"}).error().message, "substr() takes 2 to 3 arguments, got 1");
  EXPECT_EQ(call("concat", {}).error().message, "concat() takes at least 1 argument, got 0");
  EXPECT_EQ(call("now", {1}).error().message, "now() takes 0 arguments, got 1");
}

TEST(FunctionTable, EveryDocumentedExampleHolds) {
  for (const FunctionInfo& info : kFunctions) {
    FakeContext ctx;
    OpResult r = ExampleReader(info.example, ctx).run();
    ASSERT_TRUE(r.ok()) << info.name << ": " << r.error().message;
    EXPECT_EQ(*r, Value(true)) << info.name << ": " << info.example << " gave "
                               << r->to_json_text();
  }
}

TEST(FunctionTable, EveryFunctionRejectsNullWhereItMatters) {
  // Every function except default/type/json/str/now*/uuid and the list and
  // string searchers that accept any element, gives a `type` error (never a
  // crash) for null in each argument position.
  const std::set<std::string_view> accepts_null = {"default", "type",   "json", "str",
                                                   "now",     "now_ms", "uuid"};
  for (const FunctionImpl& f : function_impls()) {
    if (accepts_null.count(f.name)) continue;
    std::vector<Value> args(static_cast<size_t>(f.min_args), Value());
    OpResult r = call(f.name, args);
    ASSERT_FALSE(r.ok()) << f.name;
    EXPECT_EQ(r.error().error_class, "type") << f.name;
    EXPECT_TRUE(r.error().message.starts_with(std::string(f.name) + "() ")) << r.error().message;
  }
}

// ---------------------------------------------------------------------------
// The documented examples, by hand.

TEST(FunctionExamples, ByHand) {
  EXPECT_EQ(ok("len", {"héllo"}), Value(5));
  EXPECT_EQ(ok("upper", {"eur"}), Value("EUR"));
  EXPECT_EQ(ok("lower", {"EUR"}), Value("eur"));
  EXPECT_EQ(ok("trim", {"  a b "}), Value("a b"));
  EXPECT_EQ(ok("concat", {"a", "b", "c"}), Value("abc"));
  EXPECT_EQ(ok("contains", {json("[1, 2]"), 2}), Value(true));
  EXPECT_EQ(ok("starts_with", {"order-1", "order-"}), Value(true));
  EXPECT_EQ(ok("ends_with", {"a.pdf", ".pdf"}), Value(true));
  EXPECT_EQ(ok("split", {"a,b", ","}), json(R"(["a", "b"])"));
  EXPECT_EQ(ok("join", {json("[1, 2]"), "-"}), Value("1-2"));
  EXPECT_EQ(ok("replace", {"a-b", "-", "+"}), Value("a+b"));
  EXPECT_EQ(ok("substr", {"saga", 1, 2}), Value("ag"));
  EXPECT_EQ(ok("str", {42}), Value("42"));
  EXPECT_EQ(ok("num", {"2.5"}), Value(2.5));
  EXPECT_EQ(ok("abs", {-3}), Value(3));
  EXPECT_EQ(ok("round", {2.5}), Value(3));
  EXPECT_EQ(ok("floor", {2.7}), Value(2));
  EXPECT_EQ(ok("ceil", {2.1}), Value(3));
  EXPECT_EQ(ok("min", {3, 1, 2}), Value(1));
  EXPECT_EQ(ok("max", {json("[3, 1, 2]")}), Value(3));
  EXPECT_EQ(ok("keys", {json(R"({"b": 1, "a": 2})")}), json(R"(["a", "b"])"));
  EXPECT_EQ(ok("values", {json(R"({"b": 1, "a": 2})")}), json("[2, 1]"));
  EXPECT_EQ(ok("has", {json(R"({"a": null})"), "a"}), Value(true));
  EXPECT_EQ(ok("default", {Value(), 5}), Value(5));
  EXPECT_EQ(ok("type", {json("[1]")}), Value("list"));
  EXPECT_EQ(ok("json", {json(R"({"a": [1]})")}), Value(R"({"a":[1]})"));
  EXPECT_TRUE(ok("now", {}).as_string().starts_with("20"));
  EXPECT_GT(ok("now_ms", {}).as_number(), 0);
  EXPECT_EQ(ok("uuid", {}).as_string().size(), 36u);
}

// ---------------------------------------------------------------------------
// Each function.

TEST(Functions, Len) {
  EXPECT_EQ(ok("len", {""}), Value(0));
  EXPECT_EQ(ok("len", {"abc"}), Value(3));
  EXPECT_EQ(ok("len", {"€😀é"}), Value(3));                       // 3 + 4 + 2 bytes.
  EXPECT_EQ(ok("len", {std::string("\xff\xfe", 2)}), Value(2));  // Invalid UTF-8: no crash.
  EXPECT_EQ(ok("len", {json("[]")}), Value(0));
  EXPECT_EQ(ok("len", {json("[1,[2,3]]")}), Value(2));
  EXPECT_EQ(ok("len", {json(R"({"a":1,"b":null})")}), Value(2));
  EXPECT_EQ(type_err("len", {42}), "len() expects a string, list or object, got number");
  EXPECT_EQ(type_err("len", {Value()}), "len() expects a string, list or object, got null");
  EXPECT_EQ(type_err("len", {true}), "len() expects a string, list or object, got bool");
}

TEST(Functions, UpperLower) {
  EXPECT_EQ(ok("upper", {""}), Value(""));
  EXPECT_EQ(ok("upper", {"abc-xyz 09 é"}), Value("ABC-XYZ 09 é"));  // ASCII only.
  EXPECT_EQ(ok("lower", {"ABC-XYZ 09 É"}), Value("abc-xyz 09 É"));
  EXPECT_EQ(ok("upper", {"`{@["}), Value("`{@["));  // Neighbours of the letter ranges.
  EXPECT_EQ(ok("lower", {"`{@["}), Value("`{@["));
  EXPECT_EQ(type_err("upper", {1}), "upper() expects a string, got number");
  EXPECT_EQ(type_err("lower", {json("[]")}), "lower() expects a string, got list");
}

TEST(Functions, Trim) {
  EXPECT_EQ(ok("trim", {""}), Value(""));
  EXPECT_EQ(ok("trim", {"   "}), Value(""));
  EXPECT_EQ(ok("trim", {"\t\n\v\f\r x y \r\n"}), Value("x y"));
  EXPECT_EQ(ok("trim", {"abc"}), Value("abc"));
  EXPECT_EQ(ok("trim", {"\xc2\xa0x"}), Value("\xc2\xa0x"));  // Non-ASCII space stays.
  EXPECT_EQ(type_err("trim", {Value()}), "trim() expects a string, got null");
}

TEST(Functions, Concat) {
  EXPECT_EQ(ok("concat", {"solo"}), Value("solo"));
  EXPECT_EQ(ok("concat", {"", "a", ""}), Value("a"));
  EXPECT_EQ(ok("concat", {json("[1]"), json("[]"), json("[2,[3]]")}), json("[1,2,[3]]"));
  EXPECT_EQ(ok("concat", {json("[]")}), json("[]"));
  EXPECT_EQ(ok("concat", {json("[]"), json("[]")}), json("[]"));
  EXPECT_EQ(type_err("concat", {"a", json("[1]")}),
            "concat() expects all strings or all lists, got string and list");
  EXPECT_EQ(type_err("concat", {"a", 1, "b"}),
            "concat() expects all strings or all lists, got string, number and string");
  EXPECT_EQ(type_err("concat", {1}), "concat() expects all strings or all lists, got number");
  EXPECT_EQ(type_err("concat", {json("{}"), json("{}")}),
            "concat() expects all strings or all lists, got object and object");
}

TEST(Functions, Contains) {
  EXPECT_EQ(ok("contains", {"order-12", "er-1"}), Value(true));
  EXPECT_EQ(ok("contains", {"order", "x"}), Value(false));
  EXPECT_EQ(ok("contains", {"order", ""}), Value(true));
  EXPECT_EQ(ok("contains", {"", ""}), Value(true));
  EXPECT_EQ(ok("contains", {json(R"([1,"a",{"b":[2]}])"), json(R"({"b":[2]})")}), Value(true));
  EXPECT_EQ(ok("contains", {json(R"([1,"a"])"), "1"}), Value(false));
  EXPECT_EQ(ok("contains", {json("[null]"), Value()}), Value(true));
  EXPECT_EQ(ok("contains", {json("[]"), 1}), Value(false));
  EXPECT_EQ(ok("contains", {json(R"({"a":null})"), "a"}), Value(true));
  EXPECT_EQ(ok("contains", {json(R"({"a":1})"), "b"}), Value(false));
  EXPECT_EQ(type_err("contains", {"abc", 1}),
            "contains() expects a string to search for in a string, got string and number");
  EXPECT_EQ(type_err("contains", {json("{}"), 1}),
            "contains() expects a string key for an object, got object and number");
  EXPECT_EQ(type_err("contains", {5, 5}),
            "contains() expects a string, list or object to search, got number and number");
  EXPECT_EQ(type_err("contains", {Value(), "a"}),
            "contains() expects a string, list or object to search, got null and string");
}

TEST(Functions, StartsEndsWith) {
  EXPECT_EQ(ok("starts_with", {"abc", ""}), Value(true));
  EXPECT_EQ(ok("starts_with", {"abc", "abcd"}), Value(false));
  EXPECT_EQ(ok("starts_with", {"abc", "b"}), Value(false));
  EXPECT_EQ(ok("ends_with", {"abc", ""}), Value(true));
  EXPECT_EQ(ok("ends_with", {"abc", "abc"}), Value(true));
  EXPECT_EQ(ok("ends_with", {"abc", "zabc"}), Value(false));
  EXPECT_EQ(type_err("starts_with", {"a", 1}),
            "starts_with() expects two strings, got string and number");
  EXPECT_EQ(type_err("ends_with", {json("[]"), "a"}),
            "ends_with() expects two strings, got list and string");
}

TEST(Functions, Split) {
  EXPECT_EQ(ok("split", {"a,b,,c,", ","}), json(R"(["a","b","","c",""])"));
  EXPECT_EQ(ok("split", {"", ","}), json(R"([""])"));
  EXPECT_EQ(ok("split", {"abc", ","}), json(R"(["abc"])"));
  EXPECT_EQ(ok("split", {"a::b::c", "::"}), json(R"(["a","b","c"])"));
  EXPECT_EQ(ok("split", {"aaa", "aa"}), json(R"(["","a"])"));
  EXPECT_EQ(ok("split", {"x€y", "€"}), json(R"(["x","y"])"));
  EXPECT_EQ(type_err("split", {"abc", ""}), "split() expects a non-empty separator");
  EXPECT_EQ(type_err("split", {"abc", 1}), "split() expects two strings, got string and number");
  EXPECT_EQ(type_err("split", {json("[]"), ","}),
            "split() expects two strings, got list and string");
}

TEST(Functions, Join) {
  EXPECT_EQ(ok("join", {json("[]"), ","}), Value(""));
  EXPECT_EQ(ok("join", {json(R"(["a"])"), ","}), Value("a"));
  EXPECT_EQ(ok("join", {json(R"(["a","b","c"])"), ", "}), Value("a, b, c"));
  EXPECT_EQ(ok("join", {json(R"(["a",1,2.5,null,true,[1],{"k":"v"}])"), ""}),
            Value(R"(a12.5nulltrue[1]{"k":"v"})"));
  EXPECT_EQ(type_err("join", {"abc", ","}),
            "join() expects a list and a string, got string and string");
  EXPECT_EQ(type_err("join", {json("[]"), 1}),
            "join() expects a list and a string, got list and number");
}

TEST(Functions, Replace) {
  EXPECT_EQ(ok("replace", {"a-b-c", "-", ""}), Value("abc"));
  EXPECT_EQ(ok("replace", {"aaa", "a", "aa"}), Value("aaaaaa"));  // No rescanning.
  EXPECT_EQ(ok("replace", {"aaaa", "aa", "b"}), Value("bb"));
  EXPECT_EQ(ok("replace", {"abc", "x", "y"}), Value("abc"));
  EXPECT_EQ(ok("replace", {"", "x", "y"}), Value(""));
  EXPECT_EQ(ok("replace", {"héllo", "é", "e"}), Value("hello"));
  EXPECT_EQ(type_err("replace", {"abc", "", "x"}),
            "replace() expects a non-empty string to replace");
  EXPECT_EQ(type_err("replace", {"abc", "a", 1}),
            "replace() expects three strings, got string, string and number");
}

TEST(Functions, Substr) {
  EXPECT_EQ(ok("substr", {"saga", 0}), Value("saga"));
  EXPECT_EQ(ok("substr", {"saga", 2}), Value("ga"));
  EXPECT_EQ(ok("substr", {"saga", 4}), Value(""));
  EXPECT_EQ(ok("substr", {"saga", 10}), Value(""));
  EXPECT_EQ(ok("substr", {"saga", 1, 0}), Value(""));
  EXPECT_EQ(ok("substr", {"saga", 1, 100}), Value("aga"));
  EXPECT_EQ(ok("substr", {"saga", 1e300, 1e300}), Value(""));
  EXPECT_EQ(ok("substr", {"héllo€😀x", 1, 1}), Value("é"));
  EXPECT_EQ(ok("substr", {"héllo€😀x", 5, 2}), Value("€😀"));
  EXPECT_EQ(ok("substr", {"héllo€😀x", 7}), Value("x"));
  EXPECT_EQ(ok("substr", {"", 0, 3}), Value(""));
  EXPECT_EQ(type_err("substr", {"saga", -1}),
            "substr() expects a whole number >= 0 as start, got -1");
  EXPECT_EQ(type_err("substr", {"saga", 1.5}),
            "substr() expects a whole number >= 0 as start, got 1.5");
  EXPECT_EQ(type_err("substr", {"saga", 0, -2}),
            "substr() expects a whole number >= 0 as length, got -2");
  EXPECT_EQ(type_err("substr", {"saga", std::nan("")}),
            "substr() expects a whole number >= 0 as start, got null");
  EXPECT_EQ(type_err("substr", {"saga", "1"}),
            "substr() expects a string and a number, got string and string");
  EXPECT_EQ(type_err("substr", {1, 1, 1}),
            "substr() expects a string and two numbers, got number, number and number");
}

TEST(Functions, Str) {
  EXPECT_EQ(ok("str", {"as is \"q\""}), Value("as is \"q\""));
  EXPECT_EQ(ok("str", {2.5}), Value("2.5"));
  EXPECT_EQ(ok("str", {-0.0}), Value("0"));
  EXPECT_EQ(ok("str", {1e21}), Value("1e+21"));
  EXPECT_EQ(ok("str", {Value()}), Value("null"));
  EXPECT_EQ(ok("str", {false}), Value("false"));
  EXPECT_EQ(ok("str", {json(R"({"b":[1,"x"],"a":null})")}), Value(R"({"a":null,"b":[1,"x"]})"));
}

TEST(Functions, Num) {
  EXPECT_EQ(ok("num", {7}), Value(7));
  EXPECT_EQ(ok("num", {"0"}), Value(0));
  EXPECT_EQ(ok("num", {"-12"}), Value(-12));
  EXPECT_EQ(ok("num", {"1e3"}), Value(1000));
  EXPECT_EQ(ok("num", {"1.5E-2"}), Value(0.015));
  EXPECT_EQ(ok("num", {"-0"}), Value(0));
  EXPECT_EQ(ok("num", {"12345678901234567890"}), Value(12345678901234567890.0));
  EXPECT_EQ(ok("num", {"1e-400"}), Value(0));  // Too small: zero.
  EXPECT_TRUE(std::signbit(ok("num", {"-1e-400"}).as_number()));
  EXPECT_EQ(ok("num", {"0.0000000000000000000000000000000000000000000000000000000000000000000000"
                       "00000000000000000000000000000000000000000000000000000000000000000000000"
                       "00000000000000000000000000000000000000000000000000000000000000000000000"
                       "00000000000000000000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000000000000000000000000000000000001"}),
            Value(0));
  EXPECT_EQ(type_err("num", {"1e400"}), R"(num() cannot represent "1e400": too large)");
  EXPECT_EQ(type_err("num", {"-1e99999999999999999999"}),
            R"(num() cannot represent "-1e99999999999999999999": too large)");
  for (const char* bad : {"", " 1", "1 ", "+1", "01", "1.", ".5", "1e", "1e+", "0x10", "1,5", "NaN",
                          "Infinity", "-", "--1", "1.2.3", "abc", "١"}) {
    EXPECT_EQ(type_err("num", {bad}),
              "num() cannot read " + Value(bad).to_json_text() + " as a number");
  }
  EXPECT_EQ(type_err("num", {true}), "num() expects a number or a string, got bool");
  EXPECT_EQ(type_err("num", {Value()}), "num() expects a number or a string, got null");
}

TEST(Functions, AbsRoundFloorCeil) {
  EXPECT_EQ(ok("abs", {3}), Value(3));
  EXPECT_EQ(ok("abs", {-2.5}), Value(2.5));
  EXPECT_FALSE(std::signbit(ok("abs", {-0.0}).as_number()));
  // Round half away from zero.
  EXPECT_EQ(ok("round", {0.5}), Value(1));
  EXPECT_EQ(ok("round", {1.5}), Value(2));
  EXPECT_EQ(ok("round", {-0.5}), Value(-1));
  EXPECT_EQ(ok("round", {-2.5}), Value(-3));
  EXPECT_EQ(ok("round", {2.4999}), Value(2));
  EXPECT_EQ(ok("round", {0.49999999999999994}), Value(0));
  EXPECT_EQ(ok("round", {1e300}), Value(1e300));
  EXPECT_EQ(ok("floor", {-2.1}), Value(-3));
  EXPECT_EQ(ok("floor", {3}), Value(3));
  EXPECT_EQ(ok("ceil", {-2.9}), Value(-2));
  EXPECT_EQ(ok("ceil", {3}), Value(3));
  EXPECT_EQ(ok("ceil", {-0.5}).to_json_text(), "0");
  EXPECT_EQ(type_err("abs", {"3"}), "abs() expects a number, got string");
  EXPECT_EQ(type_err("round", {Value()}), "round() expects a number, got null");
  EXPECT_EQ(type_err("floor", {json("[1]")}), "floor() expects a number, got list");
  EXPECT_EQ(type_err("ceil", {true}), "ceil() expects a number, got bool");
}

TEST(Functions, MinMax) {
  EXPECT_EQ(ok("min", {5}), Value(5));
  EXPECT_EQ(ok("max", {5}), Value(5));
  EXPECT_EQ(ok("min", {3, -1, 2}), Value(-1));
  EXPECT_EQ(ok("max", {3, -1, 2}), Value(3));
  EXPECT_EQ(ok("min", {json("[4,2,8]")}), Value(2));
  EXPECT_EQ(ok("max", {json("[4,2,8]")}), Value(8));
  EXPECT_EQ(ok("min", {json("[7]")}), Value(7));
  EXPECT_EQ(ok("max", {-1e300, -1e301}), Value(-1e300));
  EXPECT_EQ(type_err("min", {json("[]")}), "min() of an empty list");
  EXPECT_EQ(type_err("max", {json("[1,\"2\"]")}),
            "max() expects a list of numbers, got a string in the list");
  EXPECT_EQ(type_err("min", {1, "2"}),
            "min() expects numbers or a single list of numbers, got number and string");
  EXPECT_EQ(type_err("max", {json("[1]"), json("[2]")}),
            "max() expects numbers or a single list of numbers, got list and list");
  EXPECT_EQ(type_err("min", {"a"}),
            "min() expects numbers or a single list of numbers, got string");
}

TEST(Functions, KeysValues) {
  Value o = json(R"({"zeta":1,"alpha":[2],"Mid":null,"":"e"})");
  EXPECT_EQ(ok("keys", {o}), json(R"(["","Mid","alpha","zeta"])"));
  EXPECT_EQ(ok("values", {o}), json(R"(["e",null,[2],1])"));
  EXPECT_EQ(ok("keys", {json("{}")}), json("[]"));
  EXPECT_EQ(ok("values", {json("{}")}), json("[]"));
  EXPECT_EQ(type_err("keys", {json("[1]")}), "keys() expects an object, got list");
  EXPECT_EQ(type_err("values", {Value()}), "values() expects an object, got null");
}

TEST(Functions, Has) {
  Value o = json(R"({"a":null,"b":0})");
  EXPECT_EQ(ok("has", {o, "a"}), Value(true));
  EXPECT_EQ(ok("has", {o, "b"}), Value(true));
  EXPECT_EQ(ok("has", {o, "c"}), Value(false));
  EXPECT_EQ(ok("has", {json("{}"), ""}), Value(false));
  EXPECT_EQ(type_err("has", {o, 1}), "has() expects an object and a string, got object and number");
  EXPECT_EQ(type_err("has", {Value(), "a"}),
            "has() expects an object and a string, got null and string");
}

TEST(Functions, Default) {
  EXPECT_EQ(ok("default", {Value(), "x"}), Value("x"));
  EXPECT_EQ(ok("default", {false, "x"}), Value(false));
  EXPECT_EQ(ok("default", {0, "x"}), Value(0));
  EXPECT_EQ(ok("default", {"", "x"}), Value(""));
  EXPECT_EQ(ok("default", {json("[]"), "x"}), json("[]"));
  EXPECT_EQ(ok("default", {Value(), Value()}), Value());
}

TEST(Functions, Type) {
  EXPECT_EQ(ok("type", {Value()}), Value("null"));
  EXPECT_EQ(ok("type", {true}), Value("bool"));
  EXPECT_EQ(ok("type", {1.5}), Value("number"));
  EXPECT_EQ(ok("type", {""}), Value("string"));
  EXPECT_EQ(ok("type", {json("[]")}), Value("list"));
  EXPECT_EQ(ok("type", {json("{}")}), Value("object"));
}

TEST(Functions, Json) {
  EXPECT_EQ(ok("json", {"s\"x"}), Value(R"("s\"x")"));
  EXPECT_EQ(ok("json", {Value()}), Value("null"));
  EXPECT_EQ(ok("json", {42}), Value("42"));
  EXPECT_EQ(ok("json", {json(R"({"b":{"d":1,"c":2},"a":[]})")}),
            Value(R"({"a":[],"b":{"c":2,"d":1}})"));
}

TEST(Functions, NowUsesTheContextClock) {
  FakeContext ctx;
  ctx.now = 0;
  EXPECT_EQ(call("now", {}, &ctx).value(), Value("1970-01-01T00:00:00.000Z"));
  EXPECT_EQ(call("now_ms", {}, &ctx).value(), Value(0));
  ctx.now = 1714567890123;
  EXPECT_EQ(call("now", {}, &ctx).value(), Value("2024-05-01T12:51:30.123Z"));
  EXPECT_EQ(call("now_ms", {}, &ctx).value(), Value(1714567890123));
  ctx.now = 951782400000;  // A leap day.
  EXPECT_EQ(call("now", {}, &ctx).value(), Value("2000-02-29T00:00:00.000Z"));
  ctx.now = -1;  // Before the epoch.
  EXPECT_EQ(call("now", {}, &ctx).value(), Value("1969-12-31T23:59:59.999Z"));
  ctx.now = 253402300799999;
  EXPECT_EQ(call("now", {}, &ctx).value(), Value("9999-12-31T23:59:59.999Z"));
  EXPECT_EQ(format_iso8601_ms(1709251199000), "2024-02-29T23:59:59.000Z");
  EXPECT_EQ(format_iso8601_ms(1709251200000), "2024-03-01T00:00:00.000Z");
  EXPECT_EQ(format_iso8601_ms(4102444800000), "2100-01-01T00:00:00.000Z");
}

TEST(Functions, UuidFormat) {
  FakeContext ctx;
  EXPECT_EQ(call("uuid", {}, &ctx).value(), Value("00010203-0405-4607-8809-0a0b0c0d0e0f"));
  EXPECT_EQ(format_uuid_v4({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff}),
            "ffffffff-ffff-4fff-bfff-ffffffffffff");
  EXPECT_EQ(format_uuid_v4({}), "00000000-0000-4000-8000-000000000000");
}

TEST(Functions, SystemContext) {
  SystemFunctionContext ctx;
  int64_t before = ctx.now_ms();
  EXPECT_GT(before, 1577836800000);  // After 2020.
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    OpResult r = call("uuid", {}, &ctx);
    ASSERT_TRUE(r.ok());
    std::string_view u = r->as_string();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[8], '-');
    EXPECT_EQ(u[13], '-');
    EXPECT_EQ(u[14], '4');
    EXPECT_EQ(u[18], '-');
    EXPECT_NE(std::string_view("89ab").find(u[19]), std::string_view::npos) << u;
    EXPECT_EQ(u[23], '-');
    for (char c : u) EXPECT_TRUE(c == '-' || std::isxdigit(static_cast<unsigned char>(c))) << u;
    EXPECT_TRUE(u == Value(u).to_text());
    seen.insert(std::string(u));
  }
  EXPECT_EQ(seen.size(), 1000u);
  std::string now(call("now", {}, &ctx)->as_string());
  EXPECT_EQ(now.size(), 24u);
  EXPECT_EQ(now.back(), 'Z');
  EXPECT_GE(ctx.now_ms(), before);
}

}  // namespace
}  // namespace saga::stdlib
