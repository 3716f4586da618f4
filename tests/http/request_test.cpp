// Unit tests of the pure request rules (runtime/http/request.hpp): url
// parsing, routes with ${arg} placeholders, query strings, trace context,
// Retry-After in both forms, and the classification table of docs/http.md.
#include <gtest/gtest.h>

#include "runtime/http/request.hpp"

namespace {

using namespace saga::http;
using json = nlohmann::json;

saga::ServiceCall call_of(std::string op, json args, std::string method = {},
                          std::string path = {}) {
  saga::ServiceCall c;
  c.service = "inventory";
  c.url = "http://127.0.0.1:8081";
  c.op = std::move(op);
  c.args = std::move(args);
  c.method = std::move(method);
  c.path = std::move(path);
  return c;
}

TEST(Url, Parses) {
  std::string error;
  auto u = parse_url("http://127.0.0.1:8081", &error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8081);
  EXPECT_EQ(u->base_path, "");
  EXPECT_EQ(u->authority(), "127.0.0.1:8081");
  u = parse_url("HTTP://Orders.Example:80/api/v1/?x=1#frag", &error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->host, "orders.example");
  EXPECT_EQ(u->base_path, "/api/v1");
  EXPECT_EQ(u->path, "/api/v1/");
  EXPECT_EQ(u->query, "x=1");
  u = parse_url("http://localhost", &error);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  u = parse_url("http://[::1]:9000/x", &error);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->authority(), "[::1]:9000");
}

TEST(Url, RejectsWhatItCannotUse) {
  std::string error;
  EXPECT_FALSE(parse_url("https://127.0.0.1:8443", &error));
  EXPECT_NE(error.find("https is not supported yet"), std::string::npos) << error;
  EXPECT_FALSE(parse_url("ftp://x", &error));
  EXPECT_FALSE(parse_url("http://:80", &error));
  EXPECT_FALSE(parse_url("http://h:0", &error));
  EXPECT_FALSE(parse_url("http://h:65536", &error));
  EXPECT_FALSE(parse_url("http://h:8x", &error));
  EXPECT_FALSE(parse_url("http://user:pw@h", &error));
}

TEST(Target, DefaultIsPostOpWithArgsAsBody) {
  auto url = *parse_url("http://127.0.0.1:8081/api", nullptr);
  auto t = build_target(call_of("reserve", {{"order", "o-1"}, {"items", {1, 2}}}), url, nullptr);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->method, "POST");
  EXPECT_EQ(t->target, "/api/reserve");
  EXPECT_EQ(t->body, (json{{"order", "o-1"}, {"items", {1, 2}}}));
}

TEST(Target, RouteSubstitutesAndEncodesPlaceholders) {
  auto url = *parse_url("http://127.0.0.1:8081", nullptr);
  std::string error;
  auto t = build_target(call_of("release", {{"reservation", "R 1/2?"}, {"reason", "x"}}, "DELETE",
                                "/reservations/${reservation}"),
                        url, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->method, "DELETE");
  EXPECT_EQ(t->target, "/reservations/R%201%2F2%3F?reason=x");
  EXPECT_TRUE(t->body.is_null());  // DELETE sends no body.

  t = build_target(
      call_of("refund", {{"payment", 42}, {"amount", 5}}, "post", "/payments/${payment}/refunds"),
      url, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->method, "POST");
  EXPECT_EQ(t->target, "/payments/42/refunds");
  EXPECT_EQ(t->body, (json{{"amount", 5}}));  // Path arguments leave the body.

  t = build_target(
      call_of("find", {{"q", "a&b=c"}, {"n", 3}, {"f", {{"k", true}}}}, "GET", "/search"), url,
      &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->target, "/search?f=%7B%22k%22%3Atrue%7D&n=3&q=a%26b%3Dc");

  t = build_target(call_of("twice", {{"a", "x"}}, "PUT", "/${a}/${a}"), url, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->target, "/x/x");
  EXPECT_EQ(t->body, json::object());
}

TEST(Target, MissingPlaceholderArgumentIsAnError) {
  auto url = *parse_url("http://127.0.0.1:8081", nullptr);
  std::string error;
  EXPECT_FALSE(
      build_target(call_of("release", json::object(), "DELETE", "/r/${reservation}"), url, &error));
  EXPECT_NE(error.find("needs the argument 'reservation'"), std::string::npos) << error;
}

TEST(TraceContext, DerivedFromInstanceStepAndAttempt) {
  std::string uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
  std::string tp = traceparent(uuid, "charge", 1, false);
  EXPECT_EQ(tp.substr(0, 36), "00-0f8fad5bd9cb469fa16570867728950e-");
  EXPECT_EQ(tp.size(), 55u);
  EXPECT_EQ(tp.substr(53), "01");
  EXPECT_EQ(tp, traceparent(uuid, "charge", 1, false));  // Stable.
  EXPECT_NE(tp.substr(36, 16), traceparent(uuid, "charge", 2, false).substr(36, 16));
  EXPECT_NE(tp.substr(36, 16), traceparent(uuid, "charge", 1, true).substr(36, 16));
  std::string other = traceparent("not-a-uuid", "s", 1, false);
  EXPECT_EQ(other.size(), 55u);
  EXPECT_EQ(other.find_first_not_of("0123456789abcdef-"), std::string::npos);
  EXPECT_NE(traceparent("00000000-0000-0000-0000-000000000000", "s", 1, false).substr(3, 32),
            std::string(32, '0'));
}

TEST(RetryAfter, SecondsAndDates) {
  // 2015-10-21 07:28:00 UTC.
  int64_t base = 1445412480000;
  EXPECT_EQ(parse_retry_after("2", base), 2000);
  EXPECT_EQ(parse_retry_after(" 0 ", base), 0);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", base), 5000);
  EXPECT_EQ(parse_retry_after("Wednesday, 21-Oct-15 07:28:03 GMT", base), 3000);
  EXPECT_EQ(parse_retry_after("Wed Oct 21 07:28:01 2015", base), 1000);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", base), 0);  // In the past.
  EXPECT_EQ(parse_retry_after("99999999999", base), 86'400'000);           // Capped at a day.
  EXPECT_FALSE(parse_retry_after("", base));
  EXPECT_FALSE(parse_retry_after("-1", base));
  EXPECT_FALSE(parse_retry_after("soon", base));
}

TEST(Classify, TheTable) {
  auto c = [](int status, std::string body = {}, std::string retry_after = {}) {
    return classify_response(status, "", body, retry_after, 0, "POST http://h:1/op");
  };
  EXPECT_TRUE(c(200, R"({"id":"R-1"})").ok);
  EXPECT_EQ(c(200, R"({"id":"R-1"})").result, (json{{"id", "R-1"}}));
  EXPECT_TRUE(c(204).ok);
  EXPECT_TRUE(c(204).result.is_null());
  EXPECT_TRUE(c(200, " \n").result.is_null());
  auto bad = c(200, "<html>");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.error_class, "error");
  EXPECT_NE(bad.message.find("service returned a non-JSON body: <html>"), std::string::npos);
  EXPECT_EQ(c(408).error_class, "timeout");
  for (int s : {429, 500, 502, 503, 504, 599}) EXPECT_EQ(c(s).error_class, "unavailable") << s;
  EXPECT_EQ(c(503, "", "3").retry_after_ms, 3000);
  EXPECT_EQ(c(429, "", "7").retry_after_ms, 7000);
  EXPECT_EQ(c(503, "", "junk").retry_after_ms, 0);
  for (int s : {400, 401, 404, 409, 422}) EXPECT_EQ(c(s).error_class, "rejected") << s;
  auto rejected = c(400, R"({"error":"card declined"})");
  EXPECT_NE(rejected.message.find("HTTP 400"), std::string::npos);
  EXPECT_NE(rejected.message.find("card declined"), std::string::npos);
  auto big = c(400, std::string(5000, 'x'));
  EXPECT_LT(big.message.size(), 1200u);
  EXPECT_NE(big.message.find("(5000 bytes)"), std::string::npos);
  EXPECT_EQ(c(302).error_class, "error");
  EXPECT_EQ(c(101).error_class, "error");
}

// A participant may send bytes that are not UTF-8; its body goes into the
// error message, which is stored and printed as JSON: they become U+FFFD.
// A body cut at the size limit is not cut inside a character either.
TEST(Classify, BodiesThatAreNotUtf8AreRepaired) {
  auto rejected = classify_response(402, "", "declined \xff\xfe!", "", 0, "POST http://h:1/op");
  EXPECT_EQ(rejected.error_class, "rejected");
  EXPECT_NE(rejected.message.find("declined \xEF\xBF\xBD\xEF\xBF\xBD!"), std::string::npos)
      << rejected.message;
  EXPECT_NO_THROW((void)json(rejected.message).dump());
  std::string long_body = std::string(1023, 'x') + "\xc3\xa9" + std::string(100, 'y');
  auto big = classify_response(400, "", long_body, "", 0, "POST http://h:1/op");
  EXPECT_NO_THROW((void)json(big.message).dump()) << big.message;
}

// "localhost" and names under it are the loopback address without a
// resolver (RFC 6761), so the suite and users' sagas work on a system without
// /etc/hosts.
TEST(Localhost, NamesThatAreLoopbackByDefinition) {
  for (const char* name : {"localhost", "LocalHost", "localhost.", "api.localhost"}) {
    EXPECT_TRUE(is_localhost_name(name)) << name;
  }
  for (const char* name : {"localhost.example.com", "mylocalhost", "127.0.0.1", "", "localhostx"}) {
    EXPECT_FALSE(is_localhost_name(name)) << name;
  }
}

}  // namespace
