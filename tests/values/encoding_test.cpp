// Tests of the binary checkpoint encoding (saga::encode / saga::decode): the
// exact bytes of each tag, round trips, and robustness: every truncation and
// many random corruptions of an encoded nested value must give an error or a
// value, never a crash or a huge allocation (run under ASan/UBSan too).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "saga/value.hpp"

namespace saga {
namespace {

std::string enc(const Value& v) {
  std::string out;
  encode(v, out);
  return out;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

Value round_trip(const Value& v) {
  std::string data = enc(v);
  std::string_view in = data;
  auto r = decode(in);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.status().message());
  EXPECT_TRUE(in.empty());
  return r.ok() ? r.value() : Value();
}

Status decode_error(std::string_view data) {
  std::string_view in = data;
  auto r = decode(in);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(in, data) << "input must be left unchanged on error";
  return r.ok() ? Status() : r.status();
}

// A nested value that exercises every tag.
Value sample() {
  auto v = Value::from_json_text(R"({
    "order": {"id": "o-1", "lines": [{"sku": "A", "qty": 2, "price": 9.99},
                                      {"sku": "B\u00e9", "qty": 1, "price": 1e21}]},
    "flags": [true, false, null], "empty": {}, "none": [], "s": "",
    "n": -0.5, "big": 12345678901234567890, "text": "héllo €😀"})");
  EXPECT_TRUE(v.ok());
  return v.value();
}

TEST(Encoding, ExactBytes) {
  EXPECT_EQ(enc(Value()), bytes({0}));
  EXPECT_EQ(enc(Value(false)), bytes({1}));
  EXPECT_EQ(enc(Value(true)), bytes({2}));
  EXPECT_EQ(enc(Value(1.0)), bytes({3, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F}));
  EXPECT_EQ(enc(Value("ab")), bytes({4, 2, 'a', 'b'}));
  EXPECT_EQ(enc(Value("")), bytes({4, 0}));
  EXPECT_EQ(enc(Value::list({nullptr, true})), bytes({5, 2, 0, 2}));
  EXPECT_EQ(enc(Value::object({{"b", false}, {"a", nullptr}})),
            bytes({6, 2, 1, 'a', 0, 1, 'b', 1}));
  EXPECT_EQ(enc(Value(std::string(200, 'x'))).substr(0, 3), bytes({4, 0xC8, 0x01}));
}

TEST(Encoding, RoundTrips) {
  EXPECT_EQ(round_trip(Value()), Value());
  EXPECT_EQ(round_trip(Value(true)), Value(true));
  EXPECT_EQ(round_trip(Value(false)), Value(false));
  for (double d : {0.0, 1.0, -2.5, 1e300, 5e-324, -std::numeric_limits<double>::max()}) {
    EXPECT_EQ(round_trip(Value(d)), Value(d));
  }
  EXPECT_TRUE(std::signbit(round_trip(Value(-0.0)).as_number()));
  EXPECT_EQ(round_trip(Value(std::string("a\0\xff", 3))), Value(std::string("a\0\xff", 3)));
  EXPECT_EQ(round_trip(Value(std::string(100000, 'z'))), Value(std::string(100000, 'z')));
  Value s = sample();
  EXPECT_EQ(round_trip(s), s);
  EXPECT_EQ(round_trip(s).to_json_text(), s.to_json_text());
}

TEST(Encoding, DecodesASequenceOfValues) {
  std::string data;
  encode(Value(1), data);
  encode(Value("two"), data);
  encode(sample(), data);
  std::string_view in = data;
  EXPECT_EQ(decode(in).value(), Value(1));
  EXPECT_EQ(decode(in).value(), Value("two"));
  EXPECT_EQ(decode(in).value(), sample());
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(decode(in).status().code(), StatusCode::kCorrupt);  // Nothing left.
}

TEST(Encoding, DeepestValueRoundTrips) {
  Value v;
  for (uint32_t i = 0; i < kMaxDepth; ++i) v = Value::list({v});
  EXPECT_EQ(v.depth(), kMaxDepth);
  EXPECT_EQ(round_trip(v), v);
}

TEST(Encoding, RejectsBadTags) {
  Status s = decode_error(bytes({7}));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.message(), "corrupt value encoding at byte 1: unknown value tag 7");
  EXPECT_EQ(decode_error(bytes({0xFF})).code(), StatusCode::kCorrupt);
  EXPECT_NE(decode_error("").message().find("truncated"), std::string::npos);
}

TEST(Encoding, RejectsLengthsBeyondTheInput) {
  // A string, list or object claiming more than the bytes left must fail
  // before anything is allocated.
  EXPECT_NE(decode_error(bytes({4, 5, 'a'})).message().find("exceeds"), std::string::npos);
  EXPECT_NE(decode_error(bytes({5, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F})).message().find("exceeds"),
            std::string::npos);
  EXPECT_NE(decode_error(bytes({6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}))
                .message()
                .find("exceeds"),
            std::string::npos);
  EXPECT_NE(decode_error(bytes({6, 2, 1, 'a', 0, 0x7F})).message().find("exceeds"),
            std::string::npos);
  EXPECT_NE(decode_error(bytes({3, 0, 0, 0})).message().find("truncated number"),
            std::string::npos);
}

// No value the runtime makes is NaN or infinite, and a NaN would break the
// equality that resume relies on (a decoded checkpoint equals its state):
// such a number can only come from a damaged checkpoint (found by
// fuzz_checkpoint).
TEST(Encoding, RejectsNumbersThatAreNotFinite) {
  for (double d : {std::nan(""), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    Status s = decode_error(enc(Value(d)));
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_EQ(s.message(), "corrupt value encoding at byte 1: a number that is not finite");
  }
  // Inside a list, the offset is the number's.
  Status s = decode_error(bytes({5, 1, 3, 0, 0, 0, 0, 0, 0, 0xF0, 0x7F}));
  EXPECT_EQ(s.message(), "corrupt value encoding at byte 3: a number that is not finite");
}

TEST(Encoding, RejectsOverlongVarints) {
  EXPECT_NE(decode_error(bytes({4, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0}))
                .message()
                .find("64 bits"),
            std::string::npos);
  EXPECT_NE(decode_error(bytes({4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02}))
                .message()
                .find("64 bits"),
            std::string::npos);
  EXPECT_NE(decode_error(bytes({4, 0x80})).message().find("truncated"), std::string::npos);
}

TEST(Encoding, RejectsUnsortedOrDuplicateNames) {
  EXPECT_NE(decode_error(bytes({6, 2, 1, 'b', 0, 1, 'a', 0})).message().find("out of order"),
            std::string::npos);
  EXPECT_NE(decode_error(bytes({6, 2, 1, 'a', 0, 1, 'a', 0})).message().find("out of order"),
            std::string::npos);
}

TEST(Encoding, RejectsExcessiveDepth) {
  std::string deep(kMaxDepth + 1, static_cast<char>(5));
  std::string data;
  for (uint32_t i = 0; i <= kMaxDepth; ++i) data += bytes({5, 1});
  data += bytes({0});
  EXPECT_NE(decode_error(data).message().find("deeper than 256"), std::string::npos);
  // One level less decodes.
  std::string ok = data.substr(2);
  std::string_view in = ok;
  EXPECT_TRUE(decode(in).ok());
  // A long run of list headers fails at the limit, without deep recursion.
  std::string hostile;
  for (int i = 0; i < 100000; ++i) hostile += bytes({5, 1});
  EXPECT_EQ(decode_error(hostile).code(), StatusCode::kCorrupt);
}

TEST(Encoding, EveryTruncationFails) {
  std::string data = enc(sample());
  for (size_t n = 0; n < data.size(); ++n) {
    std::string_view in(data.data(), n);
    auto r = decode(in);
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    }
  }
}

TEST(Encoding, RandomCorruptionNeverCrashes) {
  std::string data = enc(sample());
  std::mt19937_64 rng(12345);
  int decoded = 0, rejected = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::string copy = data;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t at = rng() % copy.size();
      if (rng() % 2) {
        copy[at] = static_cast<char>(copy[at] ^ (1u << (rng() % 8)));
      } else {
        copy[at] = static_cast<char>(rng());
      }
    }
    std::string_view in = copy;
    auto r = decode(in);
    if (r.ok()) {
      ++decoded;
      // Whatever decoded must be a well-formed value: printable, re-encodable.
      std::string again = enc(r.value());
      std::string_view in2 = again;
      auto r2 = decode(in2);
      ASSERT_TRUE(r2.ok());
      EXPECT_EQ(r2->to_json_text(), r->to_json_text());
    } else {
      ++rejected;
      EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(decoded, 0);
}

TEST(Encoding, RandomBytesNeverCrash) {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string junk(rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng() % 8 == 0 ? rng() : rng() % 8);
    std::string_view in = junk;
    auto r = decode(in);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    }
  }
}

}  // namespace
}  // namespace saga
