// Tests of saga::Value itself (saga/value.hpp): construction, kinds,
// accessors, copy-on-write sharing, object field order and uniqueness, depth
// tracking, deep equality and printing as JSON text and as CONCAT text.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <type_traits>
#include <vector>

#include "saga/value.hpp"

namespace saga {
namespace {

TEST(Value, KindsAndAccessors) {
  EXPECT_EQ(Value().kind(), Kind::Null);
  EXPECT_EQ(Value(nullptr).kind(), Kind::Null);
  EXPECT_EQ(Value(true).kind(), Kind::Bool);
  EXPECT_TRUE(Value(true).as_bool());
  EXPECT_FALSE(Value(false).as_bool());
  EXPECT_EQ(Value(42).kind(), Kind::Number);
  EXPECT_EQ(Value(42).as_number(), 42.0);
  EXPECT_EQ(Value(int64_t{-7}).as_number(), -7.0);
  EXPECT_EQ(Value(2.5).as_number(), 2.5);
  EXPECT_EQ(Value(size_t{3}).as_number(), 3.0);
  EXPECT_EQ(Value("abc").kind(), Kind::String);
  EXPECT_EQ(Value("abc").as_string(), "abc");
  EXPECT_EQ(Value(std::string("x")).as_string(), "x");
  EXPECT_EQ(Value(std::string_view("yz")).as_string(), "yz");
  EXPECT_EQ(Value("").as_string(), "");
  EXPECT_EQ(Value::list().kind(), Kind::List);
  EXPECT_TRUE(Value::list().list_items().empty());
  EXPECT_EQ(Value::object().kind(), Kind::Object);
  EXPECT_TRUE(Value::object().object_members().empty());
  EXPECT_TRUE(Value::null().is_null());
  EXPECT_TRUE(Value::boolean(false).is_bool());
  EXPECT_TRUE(Value::number(1).is_number());
  EXPECT_TRUE(Value::string("s").is_string());
  EXPECT_TRUE(Value::list({1, 2}).is_list());
  EXPECT_TRUE(Value::object({{"a", 1}}).is_object());
}

TEST(Value, StringsKeepEmbeddedNulsAndBytes) {
  std::string bytes("a\0b\xff", 4);
  Value v(bytes);
  EXPECT_EQ(v.as_string(), bytes);
  EXPECT_EQ(v.size(), 4u);
}

TEST(Value, NoImplicitPointerToBool) {
  // A pointer other than const char* must not silently become a bool.
  static_assert(!std::is_constructible_v<Value, int*>);
  static_assert(!std::is_constructible_v<Value, void*>);
  static_assert(std::is_nothrow_move_constructible_v<Value>);
  static_assert(std::is_nothrow_move_assignable_v<Value>);
}

TEST(Value, KindNames) {
  EXPECT_EQ(kind_name(Kind::Null), "null");
  EXPECT_EQ(kind_name(Kind::Bool), "bool");
  EXPECT_EQ(kind_name(Kind::Number), "number");
  EXPECT_EQ(kind_name(Kind::String), "string");
  EXPECT_EQ(kind_name(Kind::List), "list");
  EXPECT_EQ(kind_name(Kind::Object), "object");
}

TEST(Value, SizeOfEachKind) {
  EXPECT_EQ(Value().size(), 0u);
  EXPECT_EQ(Value(3).size(), 0u);
  EXPECT_EQ(Value("héllo").size(), 6u);  // Bytes; len() counts code points.
  EXPECT_EQ(Value::list({1, 2, 3}).size(), 3u);
  EXPECT_EQ(Value::object({{"a", 1}, {"b", 2}}).size(), 2u);
}

TEST(Value, CopiesShareAndMovesSteal) {
  Value a = Value::list({1, 2, 3});
  EXPECT_TRUE(a.is_unique());
  Value b = a;
  EXPECT_FALSE(a.is_unique());
  EXPECT_EQ(&a.list_items(), &b.list_items());  // One rep.
  Value c = std::move(b);
  EXPECT_TRUE(b.is_null());  // NOLINT(bugprone-use-after-move): moved-from is null.
  EXPECT_EQ(&a.list_items(), &c.list_items());
  c = Value();
  EXPECT_TRUE(a.is_unique());
}

TEST(Value, SelfAssignmentIsSafe) {
  Value a = Value::list({"x"});
  Value& ref = a;
  a = ref;
  EXPECT_EQ(a, Value::list({"x"}));
  a = std::move(ref);
  EXPECT_TRUE(a.is_list() || a.is_null());  // Valid either way; must not crash.
}

TEST(Value, PushBackCopiesOnWrite) {
  Value a = Value::list({1});
  Value b = a;
  b.push_back(2);
  EXPECT_EQ(a, Value::list({1}));
  EXPECT_EQ(b, Value::list({1, 2}));
  EXPECT_TRUE(a.is_unique());
  EXPECT_TRUE(b.is_unique());
  const Value::List* before = &b.list_items();
  b.push_back(3);  // Unique now: appended in place.
  EXPECT_EQ(before, &b.list_items());
  EXPECT_EQ(b, Value::list({1, 2, 3}));
}

TEST(Value, EmptyContainersAllocateNothingAndGrow) {
  Value list = Value::list();
  EXPECT_TRUE(list.is_unique());
  list.push_back("a");
  EXPECT_EQ(list, Value::list({"a"}));
  Value object = Value::object();
  object.set_field("k", 1);
  EXPECT_EQ(object, Value::object({{"k", 1}}));
}

TEST(Value, SetFieldKeepsSortedUniqueNames) {
  Value o = Value::object();
  o.set_field("b", 1);
  o.set_field("a", 2);
  o.set_field("c", 3);
  o.set_field("a", 4);  // Setting a field twice keeps the last value.
  const auto& m = o.object_members();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].first, "a");
  EXPECT_EQ(m[0].second, Value(4));
  EXPECT_EQ(m[1].first, "b");
  EXPECT_EQ(m[2].first, "c");
}

TEST(Value, SetFieldCopiesOnWrite) {
  Value a = Value::object({{"x", 1}});
  Value b = a;
  b.set_field("y", 2);
  EXPECT_EQ(a.to_json_text(), R"({"x":1})");
  EXPECT_EQ(b.to_json_text(), R"({"x":1,"y":2})");
}

TEST(Value, ObjectFactorySortsAndLastDuplicateWins) {
  Value o = Value::object({{"b", 1}, {"a", 2}, {"b", 3}, {"a", 5}, {"c", 0}});
  EXPECT_EQ(o.to_json_text(), R"({"a":5,"b":3,"c":0})");
  Value::Object members;
  members.emplace_back("z", 1);
  members.emplace_back("y", 2);
  EXPECT_EQ(Value::object(std::move(members)).to_json_text(), R"({"y":2,"z":1})");
}

TEST(Value, NamesSortByUnsignedBytes) {
  Value o = Value::object({{"é", 1}, {"z", 2}, {"A", 3}, {"", 4}});
  EXPECT_EQ(o.to_json_text(), R"({"":4,"A":3,"z":2,"é":1})");
}

TEST(Value, FindAndHas) {
  Value o = Value::object({{"a", nullptr}, {"b", 2}});
  ASSERT_NE(o.find("b"), nullptr);
  EXPECT_EQ(*o.find("b"), Value(2));
  ASSERT_NE(o.find("a"), nullptr);
  EXPECT_TRUE(o.find("a")->is_null());
  EXPECT_EQ(o.find("c"), nullptr);
  EXPECT_TRUE(o.has("a"));
  EXPECT_FALSE(o.has("c"));
  EXPECT_EQ(Value(1).find("a"), nullptr);
  EXPECT_EQ(Value::object().find("a"), nullptr);
  EXPECT_EQ(Value::list({1}).find("0"), nullptr);
}

TEST(Value, DepthIsTrackedExactly) {
  EXPECT_EQ(Value().depth(), 0u);
  EXPECT_EQ(Value("s").depth(), 0u);
  EXPECT_EQ(Value::list().depth(), 1u);
  EXPECT_EQ(Value::object().depth(), 1u);
  EXPECT_EQ(Value::list({1, Value::list({Value::list()})}).depth(), 3u);
  Value o = Value::object();
  o.set_field("deep", Value::list({Value::list({Value::list()})}));
  EXPECT_EQ(o.depth(), 4u);
  o.set_field("flat", 1);
  EXPECT_EQ(o.depth(), 4u);
  o.set_field("deep", 0);  // Replacing the deepest field makes it shallower.
  EXPECT_EQ(o.depth(), 1u);
  Value l = Value::list();
  l.push_back(Value::list());
  EXPECT_EQ(l.depth(), 2u);
}

TEST(Value, DeepEquality) {
  EXPECT_EQ(Value(), Value());
  EXPECT_NE(Value(), Value(false));
  EXPECT_NE(Value(0), Value(false));
  EXPECT_NE(Value(0), Value("0"));
  EXPECT_EQ(Value(0.0), Value(-0.0));
  double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(Value(nan), Value(nan));
  EXPECT_EQ(Value("a"), Value(std::string("a")));
  EXPECT_NE(Value("a"), Value("b"));
  EXPECT_EQ(Value(""), Value(std::string()));
  EXPECT_EQ(Value::list({1, "x", Value::list({})}), Value::list({1, "x", Value::list({})}));
  EXPECT_NE(Value::list({1, 2}), Value::list({2, 1}));
  EXPECT_NE(Value::list({1}), Value::list({1, 1}));
  EXPECT_EQ(Value::object({{"a", 1}, {"b", 2}}), Value::object({{"b", 2}, {"a", 1}}));
  EXPECT_NE(Value::object({{"a", 1}}), Value::object({{"a", 2}}));
  EXPECT_NE(Value::object({{"a", 1}}), Value::object({{"b", 1}}));
  EXPECT_NE(Value::object({{"a", nullptr}}), Value::object());
  EXPECT_NE(Value::list(), Value::object());
  EXPECT_EQ(Value::list(), Value::list(Value::List{}));
}

TEST(ValueText, Numbers) {
  EXPECT_EQ(Value(42).to_json_text(), "42");
  EXPECT_EQ(Value(-42).to_json_text(), "-42");
  EXPECT_EQ(Value(0).to_json_text(), "0");
  EXPECT_EQ(Value(-0.0).to_json_text(), "0");
  EXPECT_EQ(Value(2.5).to_json_text(), "2.5");
  EXPECT_EQ(Value(0.1).to_json_text(), "0.1");
  EXPECT_EQ(Value(0.1 + 0.2).to_json_text(), "0.30000000000000004");
  EXPECT_EQ(Value(1e15).to_json_text(), "1000000000000000");
  EXPECT_EQ(Value(9007199254740991.0).to_json_text(), "9007199254740991");
  EXPECT_EQ(Value(-9007199254740991.0).to_json_text(), "-9007199254740991");
  // From 2^53 on, the shortest round-trip form.
  EXPECT_EQ(Value(9007199254740992.0).to_json_text(), "9007199254740992");
  EXPECT_EQ(Value(1e16).to_json_text(), "1e+16");
  EXPECT_EQ(Value(1e300).to_json_text(), "1e+300");
  EXPECT_EQ(Value(1e-7).to_json_text(), "1e-07");
  EXPECT_EQ(Value(5e-324).to_json_text(), "5e-324");
  EXPECT_EQ(Value(1.7976931348623157e308).to_json_text(), "1.7976931348623157e+308");
  EXPECT_EQ(Value(123456789.125).to_json_text(), "123456789.125");
  // JSON cannot express these.
  EXPECT_EQ(Value(std::numeric_limits<double>::infinity()).to_json_text(), "null");
  EXPECT_EQ(Value(-std::numeric_limits<double>::infinity()).to_json_text(), "null");
  EXPECT_EQ(Value(std::numeric_limits<double>::quiet_NaN()).to_json_text(), "null");
}

TEST(ValueText, NumbersReadBackExactly) {
  for (double d : {0.1, 1.0 / 3, 2.5e-8, 123456.789, 1e21, 9007199254740993.0, 6.02214076e23,
                   -1e-300, 4.9e-324, 1.7976931348623157e308}) {
    auto back = Value::from_json_text(Value(d).to_json_text());
    ASSERT_TRUE(back.ok()) << d;
    EXPECT_EQ(back->as_number(), d) << Value(d).to_json_text();
  }
}

TEST(ValueText, StringsAreEscaped) {
  EXPECT_EQ(Value("plain").to_json_text(), R"("plain")");
  EXPECT_EQ(Value("q\"b\\s/").to_json_text(), R"("q\"b\\s/")");
  EXPECT_EQ(Value("\n\r\t\b\f").to_json_text(), R"("\n\r\t\b\f")");
  EXPECT_EQ(Value(std::string("\x01\x1f\x7f", 3)).to_json_text(), "\"\\u0001\\u001f\x7f\"");
  EXPECT_EQ(Value(std::string("a\0b", 3)).to_json_text(), R"("a\u0000b")");
  EXPECT_EQ(Value("héllo €😀").to_json_text(), "\"héllo €😀\"");  // UTF-8 as is.
}

TEST(ValueText, Containers) {
  EXPECT_EQ(Value::list().to_json_text(), "[]");
  EXPECT_EQ(Value::object().to_json_text(), "{}");
  EXPECT_EQ(Value::list({1, "a", nullptr, true, false, Value::list({2.5})}).to_json_text(),
            R"([1,"a",null,true,false,[2.5]])");
  EXPECT_EQ(
      Value::object({{"b", Value::object({{"c", Value::list()}})}, {"a\"", 1}}).to_json_text(),
      R"({"a\"":1,"b":{"c":[]}})");
}

TEST(ValueText, ToTextLeavesStringsAlone) {
  EXPECT_EQ(Value("a \"b\"").to_text(), "a \"b\"");
  EXPECT_EQ(Value(42).to_text(), "42");
  EXPECT_EQ(Value(2.5).to_text(), "2.5");
  EXPECT_EQ(Value().to_text(), "null");
  EXPECT_EQ(Value(true).to_text(), "true");
  EXPECT_EQ(Value::list({"a"}).to_text(), R"(["a"])");
  std::string out = "x=";
  Value(1).append_text(out);
  Value("!").append_text(out);
  EXPECT_EQ(out, "x=1!");
}

TEST(Value, StringWithFillsInPlace) {
  Value v = Value::string_with(3, [](char* p) { p[0] = 'a', p[1] = 'b', p[2] = 'c'; });
  EXPECT_EQ(v.as_string(), "abc");
  EXPECT_EQ(Value::string_with(0, [](char*) { FAIL() << "fill called for size 0"; }).as_string(),
            "");
}

TEST(Value, SharedAcrossThreads) {
  // Copies made and dropped concurrently on several threads: the atomic
  // reference count must end where it started (checked by ASan/UBSan/TSan).
  Value shared = Value::list({"a", Value::object({{"k", "v"}})});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared] {
      for (int i = 0; i < 20000; ++i) {
        Value copy = shared;
        Value inner = copy.list_items()[1];
        if (inner.find("k")->as_string() != "v") std::abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(shared.is_unique());
}

}  // namespace
}  // namespace saga
