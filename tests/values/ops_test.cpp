// Tests of the opcode semantics (runtime/value/ops.hpp): one group per
// opcode of opcodes.def, with the success cases, the null rules of FIELD and
// INDEX, and the error class and message of every wrong-kind combination.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/value/ops.hpp"

namespace saga::runtime::ops {
namespace {

Value ok(OpResult r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : Value();
}

RuntimeError err(OpResult r) {
  EXPECT_FALSE(r.ok()) << "unexpected value " << r->to_json_text();
  return r.ok() ? RuntimeError{} : r.error();
}

Value json(std::string_view text) {
  return Value::from_json_text(text).value();
}

TEST(OpsAdd, Numbers) {
  EXPECT_EQ(ok(add(1, 2)), Value(3));
  EXPECT_EQ(ok(add(0.1, 0.2)), Value(0.1 + 0.2));
  EXPECT_EQ(err(add(1e308, 1e308)).error_class, "arithmetic");  // Overflow: not infinity.
}

TEST(OpsAdd, Strings) {
  EXPECT_EQ(ok(add("ab", "cd")), Value("abcd"));
  EXPECT_EQ(ok(add("", "x")), Value("x"));
  EXPECT_EQ(ok(add("x", "")), Value("x"));
  EXPECT_EQ(ok(add("", "")), Value(""));
}

TEST(OpsAdd, Lists) {
  EXPECT_EQ(ok(add(json("[1,2]"), json("[3]"))), json("[1,2,3]"));
  EXPECT_EQ(ok(add(json("[]"), json("[3]"))), json("[3]"));
  EXPECT_EQ(ok(add(json("[1]"), json("[]"))), json("[1]"));
  // The left list is not changed when it is shared.
  Value a = json("[1]");
  Value copy = a;
  EXPECT_EQ(ok(add(a, json("[2]"))), json("[1,2]"));
  EXPECT_EQ(a, json("[1]"));
  EXPECT_EQ(copy, json("[1]"));
  // A uniquely owned left list is extended in place.
  Value unique = json("[1]");
  const Value::List* rep = &unique.list_items();
  Value joined = ok(add(std::move(unique), json("[2]")));
  EXPECT_EQ(&joined.list_items(), rep);
}

TEST(OpsAdd, ObjectsRightWins) {
  EXPECT_EQ(ok(add(json(R"({"a":1,"b":2})"), json(R"({"b":3,"c":4})"))),
            json(R"({"a":1,"b":3,"c":4})"));
  EXPECT_EQ(ok(add(json(R"({"z":1})"), json(R"({"a":2})"))), json(R"({"a":2,"z":1})"));
  EXPECT_EQ(ok(add(json("{}"), json(R"({"a":2})"))), json(R"({"a":2})"));
  EXPECT_EQ(ok(add(json(R"({"a":2})"), json("{}"))), json(R"({"a":2})"));
  Value left = json(R"({"a":1})");
  EXPECT_EQ(ok(add(left, json(R"({"a":null})"))), json(R"({"a":null})"));
  EXPECT_EQ(left, json(R"({"a":1})"));
}

TEST(OpsAdd, MixedKindsAreTypeErrors) {
  RuntimeError e = err(add("a", 1));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message,
            "'+' expects two numbers, two strings, two lists or two objects, got "
            "string and number");
  EXPECT_EQ(err(add(1, "a")).error_class, "type");
  EXPECT_EQ(err(add(json("[1]"), json("{}"))).error_class, "type");
  EXPECT_EQ(err(add(Value(), Value())).error_class, "type");
  EXPECT_EQ(err(add(true, true)).error_class, "type");
  EXPECT_EQ(err(add(json("[]"), 1)).error_class, "type");
}

TEST(OpsArithmetic, SubMulDiv) {
  EXPECT_EQ(ok(sub(5, 7)), Value(-2));
  EXPECT_EQ(ok(mul(2.5, 4)), Value(10));
  EXPECT_EQ(ok(div(7, 2)), Value(3.5));
  EXPECT_EQ(ok(div(-1, 4)), Value(-0.25));
  EXPECT_EQ(err(sub("a", 1)).message, "'-' expects two numbers, got string and number");
  EXPECT_EQ(err(mul(Value(), 1)).message, "'*' expects two numbers, got null and number");
  EXPECT_EQ(err(div(1, "2")).message, "'/' expects two numbers, got number and string");
  EXPECT_EQ(err(sub(json("[]"), json("[]"))).error_class, "type");
}

// Numbers are finite (they come from JSON); a result that is not has
// overflowed, and is an error rather than a null in the output.
TEST(OpsArithmetic, OverflowIsAnArithmeticError) {
  RuntimeError e = err(mul(1e308, 10));
  EXPECT_EQ(e.error_class, "arithmetic");
  EXPECT_EQ(e.message,
            "1e+308 * 10 overflows: the result is beyond the largest number (about 1.8e308)");
  EXPECT_EQ(err(add(1.7e308, 1.7e308)).error_class, "arithmetic");
  EXPECT_EQ(err(sub(-1.7e308, 1.7e308)).error_class, "arithmetic");
  EXPECT_EQ(err(div(1e308, 1e-10)).error_class, "arithmetic");
  EXPECT_EQ(ok(mul(1e154, 1e154)).as_number(), 1e308);
}

TEST(OpsArithmetic, DivisionByZero) {
  RuntimeError e = err(div(1, 0));
  EXPECT_EQ(e.error_class, "arithmetic");
  EXPECT_EQ(e.message, "division by zero");
  EXPECT_EQ(err(div(0, -0.0)).error_class, "arithmetic");
  // Kinds are checked before the divisor.
  EXPECT_EQ(err(div("a", 0)).error_class, "type");
}

TEST(OpsArithmetic, ModHasTheSignOfTheDividend) {
  EXPECT_EQ(ok(mod(7, 3)), Value(1));
  EXPECT_EQ(ok(mod(-7, 3)), Value(-1));
  EXPECT_EQ(ok(mod(7, -3)), Value(1));
  EXPECT_EQ(ok(mod(-7, -3)), Value(-1));
  EXPECT_EQ(ok(mod(5.5, 2)), Value(1.5));
  EXPECT_EQ(ok(mod(0, 5)), Value(0));
  RuntimeError e = err(mod(7, 0));
  EXPECT_EQ(e.error_class, "arithmetic");
  EXPECT_EQ(e.message, "remainder of a division by zero");
  EXPECT_EQ(err(mod(7, "3")).message, "'%' expects two numbers, got number and string");
}

TEST(OpsUnary, Neg) {
  EXPECT_EQ(ok(neg(3)), Value(-3));
  EXPECT_EQ(ok(neg(-2.5)), Value(2.5));
  EXPECT_TRUE(std::signbit(ok(neg(0)).as_number()));
  RuntimeError e = err(neg("3"));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "unary '-' expects a number, got string");
}

TEST(OpsUnary, NotIsStrict) {
  EXPECT_EQ(ok(logical_not(true)), Value(false));
  EXPECT_EQ(ok(logical_not(false)), Value(true));
  for (const Value& v : {Value(), Value(0), Value(1), Value(""), Value("true"), json("[]")}) {
    RuntimeError e = err(logical_not(v));
    EXPECT_EQ(e.error_class, "type");
    EXPECT_EQ(e.message, "'not' expects a bool, got " + std::string(kind_name(v.kind())));
  }
}

TEST(OpsUnary, ConditionIsStrict) {
  EXPECT_EQ(ok(condition(true)), Value(true));
  EXPECT_EQ(ok(condition(false)), Value(false));
  RuntimeError e = err(condition(Value()));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "a condition must be a bool, got null");
  EXPECT_EQ(err(condition(1)).message, "a condition must be a bool, got number");
}

TEST(OpsEquality, Deep) {
  EXPECT_TRUE(eq(1, 1.0));
  EXPECT_TRUE(eq(json(R"({"a":[1,{"b":null}]})"), json(R"({"a":[1,{"b":null}]})")));
  EXPECT_FALSE(eq(json(R"({"a":[1,{"b":null}]})"), json(R"({"a":[1,{"b":false}]})")));
  EXPECT_FALSE(eq(1, "1"));
  EXPECT_FALSE(eq(Value(), false));
  EXPECT_TRUE(eq(Value(), Value()));
  EXPECT_TRUE(ne(1, 2));
  EXPECT_FALSE(ne("a", "a"));
  EXPECT_TRUE(ne(json("[]"), json("{}")));
}

TEST(OpsOrdering, NumbersAndStrings) {
  EXPECT_EQ(ok(lt(1, 2)), Value(true));
  EXPECT_EQ(ok(lt(2, 2)), Value(false));
  EXPECT_EQ(ok(le(2, 2)), Value(true));
  EXPECT_EQ(ok(gt(3, 2)), Value(true));
  EXPECT_EQ(ok(ge(2, 3)), Value(false));
  EXPECT_EQ(ok(lt(-1, 0)), Value(true));
  EXPECT_EQ(ok(lt("a", "b")), Value(true));
  EXPECT_EQ(ok(lt("a", "ab")), Value(true));
  EXPECT_EQ(ok(lt("B", "a")), Value(true));  // Bytes: upper case first.
  EXPECT_EQ(ok(lt("z", "é")), Value(true));  // Unsigned bytes: 0xC3 > 'z'.
  EXPECT_EQ(ok(ge("", "")), Value(true));
  double nan = std::nan("");
  EXPECT_EQ(ok(lt(nan, 1)), Value(false));
  EXPECT_EQ(ok(ge(nan, 1)), Value(false));
  EXPECT_EQ(compare(1, 2), std::partial_ordering::less);
  EXPECT_EQ(compare("b", "a"), std::partial_ordering::greater);
  EXPECT_EQ(compare("a", "a"), std::partial_ordering::equivalent);
  EXPECT_EQ(compare(1, "a"), std::partial_ordering::unordered);
  EXPECT_EQ(compare(json("[]"), json("[]")), std::partial_ordering::unordered);
}

TEST(OpsOrdering, OtherKindsAreTypeErrors) {
  RuntimeError e = err(lt(1, "2"));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "'<' expects two numbers or two strings, got number and string");
  EXPECT_EQ(err(le(Value(), Value())).message,
            "'<=' expects two numbers or two strings, got null and null");
  EXPECT_EQ(err(gt(true, false)).error_class, "type");
  EXPECT_EQ(err(ge(json("[1]"), json("[1]"))).error_class, "type");
}

TEST(OpsField, ObjectsAndNull) {
  Value o = json(R"({"a":{"b":2},"n":null})");
  EXPECT_EQ(ok(field(o, "a")), json(R"({"b":2})"));
  EXPECT_EQ(ok(field(ok(field(o, "a")), "b")), Value(2));
  EXPECT_EQ(ok(field(o, "missing")), Value());
  EXPECT_EQ(ok(field(o, "n")), Value());
  EXPECT_EQ(ok(field(Value(), "x")), Value());  // As in jq.
  EXPECT_EQ(ok(field(ok(field(o, "missing")), "deeper")), Value());
}

TEST(OpsField, OtherKindsAreTypeErrors) {
  RuntimeError e = err(field(3, "x"));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "cannot read field 'x' of a number: only objects (and null) have fields");
  EXPECT_EQ(err(field("s", "x")).error_class, "type");
  EXPECT_EQ(err(field(true, "x")).error_class, "type");
  EXPECT_EQ(err(field(json("[1]"), "x")).error_class, "type");
}

TEST(OpsIndex, Lists) {
  Value l = json(R"([10,20,30])");
  EXPECT_EQ(ok(index(l, 0)), Value(10));
  EXPECT_EQ(ok(index(l, 2)), Value(30));
  EXPECT_EQ(ok(index(l, -1)), Value(30));
  EXPECT_EQ(ok(index(l, -3)), Value(10));
  EXPECT_EQ(ok(index(l, 3)), Value());
  EXPECT_EQ(ok(index(l, -4)), Value());
  EXPECT_EQ(ok(index(l, 1e300)), Value());
  EXPECT_EQ(ok(index(l, -1e300)), Value());
  EXPECT_EQ(ok(index(l, -0.0)), Value(10));
  EXPECT_EQ(ok(index(json("[]"), 0)), Value());
  EXPECT_EQ(ok(index(json("[]"), -1)), Value());
}

TEST(OpsIndex, ListIndexMustBeAWholeNumber) {
  Value l = json("[1,2]");
  RuntimeError e = err(index(l, 0.5));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "a list index must be a whole number, got 0.5");
  EXPECT_EQ(err(index(l, std::nan(""))).error_class, "type");
  EXPECT_EQ(err(index(l, std::numeric_limits<double>::infinity())).error_class, "type");
  EXPECT_EQ(err(index(l, "0")).message, "a list index must be a number, got string");
  EXPECT_EQ(err(index(l, Value())).error_class, "type");
}

TEST(OpsIndex, ObjectsAndNull) {
  Value o = json(R"({"a":1,"b":null})");
  EXPECT_EQ(ok(index(o, "a")), Value(1));
  EXPECT_EQ(ok(index(o, "b")), Value());
  EXPECT_EQ(ok(index(o, "zzz")), Value());
  EXPECT_EQ(err(index(o, 0)).message, "an object key must be a string, got number");
  EXPECT_EQ(ok(index(Value(), 0)), Value());
  EXPECT_EQ(ok(index(Value(), "k")), Value());
  EXPECT_EQ(ok(index(Value(), json("[]"))), Value());
}

TEST(OpsIndex, OtherContainersAreTypeErrors) {
  RuntimeError e = err(index("abc", 0));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "cannot index a string: only lists, objects (and null) can be");
  EXPECT_EQ(err(index(5, 0)).error_class, "type");
  EXPECT_EQ(err(index(true, 0)).error_class, "type");
}

TEST(OpsBuild, MakeList) {
  EXPECT_EQ(ok(make_list({})), json("[]"));
  EXPECT_EQ(ok(make_list({1, "a", Value()})), json(R"([1,"a",null])"));
  Value deep;
  for (uint32_t i = 0; i < kMaxDepth - 1; ++i) deep = Value::list({deep});
  Value at_limit = ok(make_list({deep}));
  EXPECT_EQ(at_limit.depth(), kMaxDepth);
  RuntimeError e = err(make_list({at_limit}));
  EXPECT_EQ(e.error_class, "type");
  EXPECT_EQ(e.message, "value is nested deeper than 256 levels");
}

TEST(OpsBuild, SetField) {
  Value o = Value::object();
  o = ok(set_field(std::move(o), "b", 1));
  o = ok(set_field(std::move(o), "a", 2));
  o = ok(set_field(std::move(o), "b", 3));  // Setting a field twice keeps the last value.
  EXPECT_EQ(o.to_json_text(), R"({"a":2,"b":3})");
  Value shared = o;
  Value changed = ok(set_field(shared, "c", 4));
  EXPECT_EQ(o.to_json_text(), R"({"a":2,"b":3})");
  EXPECT_EQ(changed.to_json_text(), R"({"a":2,"b":3,"c":4})");
  EXPECT_EQ(err(set_field(Value(), "a", 1)).message, "cannot set field 'a' of a null");
  Value deep;
  for (uint32_t i = 0; i < kMaxDepth; ++i) deep = Value::list({deep});
  EXPECT_EQ(err(set_field(Value::object(), "a", deep)).error_class, "type");
}

TEST(OpsConcat, TextOfEachKind) {
  EXPECT_EQ(concat_text({}), Value(""));
  EXPECT_EQ(concat_text(std::vector<Value>{"a"}), Value("a"));
  EXPECT_EQ(concat_text(std::vector<Value>{"order ", "o-1", " done"}), Value("order o-1 done"));
  std::vector<Value> parts{"n=",  42,
                           " f=", 2.5,
                           " ",   Value(),
                           " ",   true,
                           " ",   json(R"({"a":[1,"x"]})"),
                           " ",   json(R"(["q\""])")};
  EXPECT_EQ(concat_text(parts), Value(R"(n=42 f=2.5 null true {"a":[1,"x"]} ["q\""])"));
}

}  // namespace
}  // namespace saga::runtime::ops
