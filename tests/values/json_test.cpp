// Tests of JSON text parsing (Value::from_json_text) and the nlohmann::json
// conversions: round trips of unicode, escapes, big numbers and nesting; error
// messages with line and column; the depth limit; host conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "saga/value.hpp"

namespace saga {
namespace {

Value parse(std::string_view text) {
  auto r = Value::from_json_text(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.status().message());
  return r.ok() ? r.value() : Value();
}

std::string parse_error(std::string_view text) {
  auto r = Value::from_json_text(text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

// `levels` containers around a null: nested(2, "[", "]") is "[[null]]".
std::string nested(int levels, std::string_view open, std::string_view close) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += open;
  s += "null";
  for (int i = 0; i < levels; ++i) s += close;
  return s;
}

TEST(JsonText, Scalars) {
  EXPECT_EQ(parse("null"), Value());
  EXPECT_EQ(parse("true"), Value(true));
  EXPECT_EQ(parse("false"), Value(false));
  EXPECT_EQ(parse("0"), Value(0));
  EXPECT_EQ(parse("-12"), Value(-12));
  EXPECT_EQ(parse("2.5e3"), Value(2500));
  EXPECT_EQ(parse("\"s\""), Value("s"));
  EXPECT_EQ(parse("  \n\t 7 \r\n"), Value(7));
}

TEST(JsonText, RoundTrips) {
  for (std::string_view text : {
           R"(null)",
           R"([])",
           R"({})",
           R"([1,2.5,-3,"x",true,false,null])",
           R"({"a":{"b":{"c":[1,[2,[3,{"d":null}]]]}},"e":""})",
           R"("tab\tnl\nquote\"back\\ctl\u0001")",
           R"("héllo €😀")",
           R"([1e+300,1e-07,0.30000000000000004,9007199254740991])",
       }) {
    EXPECT_EQ(parse(text).to_json_text(), text);
  }
}

TEST(JsonText, UnicodeEscapes) {
  EXPECT_EQ(parse(R"("\u00e9")").as_string(), "é");
  EXPECT_EQ(parse(R"("\u20AC")").as_string(), "€");
  EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "😀");  // Surrogate pair.
  EXPECT_EQ(parse(R"("\u0000")").as_string(), std::string("\0", 1));
  EXPECT_EQ(parse(R"("\/")").as_string(), "/");
  // Printed back as UTF-8, not as escapes; control characters stay escaped.
  EXPECT_EQ(parse(R"(["\u00e9\u0007"])").to_json_text(), "[\"é\\u0007\"]");
  EXPECT_NE(parse_error(R"("\ud83d")").find("surrogate"), std::string::npos);
  EXPECT_FALSE(Value::from_json_text(R"("\u12")").ok());
}

TEST(JsonText, InvalidUtf8IsRejected) {
  EXPECT_FALSE(Value::from_json_text("\"\xff\"").ok());
  EXPECT_FALSE(Value::from_json_text("\"\xc3\"").ok());
}

// A string holding bytes that are not UTF-8 (from a host action, a program's
// output) is still written as valid JSON: each such byte as \ufffd. Before,
// the bytes went out raw and every reader of the stored text failed.
TEST(JsonText, InvalidUtf8IsWrittenAsReplacementCharacters) {
  struct Case {
    std::string in, out;
  };
  for (const Case& c : std::vector<Case>{
           {"a\xff"
            "b",
            "\"a\\ufffdb\""},
           {"\xc3", "\"\\ufffd\""},                                   // Truncated sequence.
           {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                        // Overlong '/'.
           {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},             // A surrogate.
           {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},  // Beyond U+10FFFF.
           {"ok é € 😀", "\"ok é € 😀\""},
       }) {
    std::string text = Value(c.in).to_json_text();
    EXPECT_EQ(text, c.out);
    EXPECT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded()) << text;
  }
}

TEST(JsonText, BigNumbers) {
  EXPECT_EQ(parse("12345678901234567890").as_number(), 12345678901234567890.0);
  EXPECT_EQ(parse("-9223372036854775808").as_number(), -9223372036854775808.0);
  EXPECT_EQ(parse("123456789012345678901234567890").as_number(), 1.2345678901234568e29);
  EXPECT_EQ(parse("1.7976931348623157e308").as_number(), 1.7976931348623157e308);
  EXPECT_EQ(parse("1e-400").as_number(), 0.0);  // Underflows to zero.
  EXPECT_EQ(parse("9007199254740993").to_json_text(), "9007199254740992");
  std::string error = parse_error("[1e400]");
  EXPECT_NE(error.find("1e400"), std::string::npos) << error;
  EXPECT_FALSE(Value::from_json_text("-1e999").ok());
}

TEST(JsonText, DuplicateNamesLastWins) {
  EXPECT_EQ(parse(R"({"a":1,"b":2,"a":3})").to_json_text(), R"({"a":3,"b":2})");
}

TEST(JsonText, ObjectsPrintSorted) {
  EXPECT_EQ(parse(R"({"b":1,"a":{"z":1,"y":2}})").to_json_text(), R"({"a":{"y":2,"z":1},"b":1})");
}

TEST(JsonText, ErrorsNameLineAndColumn) {
  std::string e = parse_error("{\n  \"a\": [1,\n  x]\n}");
  EXPECT_NE(e.find("invalid JSON at line 3, column 3"), std::string::npos) << e;
  e = parse_error("[1,]");
  EXPECT_NE(e.find("line 1, column 4"), std::string::npos) << e;
  e = parse_error("");
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  e = parse_error("1 2");
  EXPECT_NE(e.find("line 1, column 3"), std::string::npos) << e;
  e = parse_error("{\"a\" 1}");
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
}

TEST(JsonText, RejectsNonJson) {
  for (std::string_view text :
       {"", " ", "nul", "True", "'a'", "[1,2", "{\"a\":1,}", "01", "1.", ".5", "+1", "NaN",
        "Infinity", "[1] x", "/*c*/1", "{a:1}", "\"unterminated", "\"a\nb\""}) {
    auto r = Value::from_json_text(text);
    EXPECT_FALSE(r.ok()) << text;
  }
}

TEST(JsonText, DepthLimit) {
  EXPECT_EQ(parse(nested(256, "[", "]")).depth(), 256u);
  EXPECT_EQ(parse(nested(256, "{\"a\":", "}")).depth(), 256u);
  std::string e = parse_error(nested(257, "[", "]"));
  EXPECT_NE(e.find("deeper than 256"), std::string::npos) << e;
  EXPECT_FALSE(Value::from_json_text(nested(257, "{\"a\":", "}")).ok());
  // Hostile depth fails fast, without recursion.
  EXPECT_FALSE(Value::from_json_text(std::string(1000000, '[')).ok());
}

TEST(JsonText, LargeFlatDocuments) {
  std::string text = "[";
  for (int i = 0; i < 100000; ++i) text += (i ? "," : "") + std::to_string(i);
  text += "]";
  Value v = parse(text);
  EXPECT_EQ(v.size(), 100000u);
  EXPECT_EQ(v.to_json_text(), text);
  std::string obj = "{";
  for (int i = 99999; i >= 0; --i) {
    obj += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + (i ? "," : "");
  }
  obj += "}";
  Value o = parse(obj);
  EXPECT_EQ(o.size(), 100000u);
  EXPECT_EQ(*o.find("k512"), Value(512));
}

TEST(NlohmannJson, ToJson) {
  Value v = parse(R"({"a":[1,2.5,"s",null,true],"b":{}})");
  nlohmann::json j = v.to_json();
  EXPECT_EQ(j.dump(), R"({"a":[1,2.5,"s",null,true],"b":{}})");
  EXPECT_TRUE(j["a"][0].is_number_integer());
  EXPECT_TRUE(j["a"][1].is_number_float());
  EXPECT_TRUE(Value(std::numeric_limits<double>::infinity()).to_json().is_null());
  EXPECT_EQ(Value(1e300).to_json().get<double>(), 1e300);
  EXPECT_TRUE(Value::list().to_json().is_array());
  EXPECT_TRUE(Value::object().to_json().is_object());
}

TEST(NlohmannJson, FromJson) {
  nlohmann::json j = {{"n", 1},
                      {"u", 18446744073709551615ull},
                      {"f", 0.5},
                      {"s", "x"},
                      {"l", {1, "two", nullptr}},
                      {"b", false},
                      {"o", nlohmann::json::object()}};
  auto v = Value::from_json(j);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->to_json_text(), R"({"b":false,"f":0.5,"l":[1,"two",null],"n":1,"o":{},"s":"x",)"
                               R"("u":1.8446744073709552e+19})");
  EXPECT_EQ(*v->find("u"), Value(18446744073709551615.0));
  EXPECT_EQ(*v->find("l"), Value::list({1, "two", nullptr}));
  EXPECT_EQ(Value::from_json(v->to_json()).value(), v.value());
}

TEST(NlohmannJson, FromJsonRejects) {
  EXPECT_FALSE(Value::from_json(nlohmann::json::binary({1, 2})).ok());
  EXPECT_FALSE(Value::from_json(nlohmann::json(nlohmann::json::value_t::discarded)).ok());
  EXPECT_FALSE(Value::from_json(nlohmann::json(std::nan(""))).ok());
  EXPECT_FALSE(Value::from_json(nlohmann::json(std::numeric_limits<double>::infinity())).ok());
  nlohmann::json deep = nlohmann::json::array();
  for (int i = 0; i < 300; ++i) deep = nlohmann::json::array({deep});
  auto r = Value::from_json(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deeper than 256"), std::string::npos);
  nlohmann::json ok = nlohmann::json::array();
  for (int i = 0; i < 255; ++i) ok = nlohmann::json::array({ok});
  EXPECT_TRUE(Value::from_json(ok).ok());
}

}  // namespace
}  // namespace saga
