// The listener's parts without sagas: the router (patterns, parameters, 404,
// 405, HEAD), the text helpers, the access rule as a table, the listen
// address, the HTML escaper, and a real server on an ephemeral port
// (keep-alive, size limits, errors as JSON, stop).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>

#include "runtime/http/beast.hpp"
#include "saga/serve.hpp"
#include "saga/store.hpp"
#include "saga/web.hpp"
#include "tests/support/http_call.hpp"

namespace saga::serve {
namespace {

Request make(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.peer_loopback = true;
  return r;
}

Router sample_router() {
  Router router;
  router.add("GET", "/api/instances", [](const Request&) {
    return Response{200, "text/plain", "list", {}};
  });
  router.add("GET", "/api/instances/{id}", [](const Request& r) {
    return Response{200, "text/plain", "one " + r.params.at("id"), {}};
  });
  router.add("POST", "/api/instances/{id}/{action}", [](const Request& r) {
    return Response{202, "text/plain", r.params.at("action") + " " + r.params.at("id"), {}};
  });
  router.add("POST", "/instances/{id}/signals/{name}", [](const Request& r) {
    return Response{202, "text/plain", "signal " + r.params.at("name"), {}};
  });
  return router;
}

TEST(Router, MatchesLiteralsAndParameters) {
  Router router = sample_router();
  Request r = make("GET", "/api/instances");
  EXPECT_EQ(router.dispatch(r).body, "list");
  r = make("GET", "/api/instances/abc");
  EXPECT_EQ(router.dispatch(r).body, "one abc");
  r = make("POST", "/api/instances/abc/cancel");
  Response res = router.dispatch(r);
  EXPECT_EQ(res.status, 202);
  EXPECT_EQ(res.body, "cancel abc");
  r = make("POST", "/instances/i1/signals/approve");
  EXPECT_EQ(router.dispatch(r).body, "signal approve");
  // A parameter is one decoded segment: %2F stays inside it.
  r = make("GET", "/api/instances/a%2Fb");
  EXPECT_EQ(router.dispatch(r).body, "one a/b");
  // A trailing slash names the same path.
  r = make("GET", "/api/instances/");
  EXPECT_EQ(router.dispatch(r).body, "list");
}

TEST(Router, AnswersUnknownPathsAndMethodsWithJsonErrors) {
  Router router = sample_router();
  Request r = make("GET", "/api/nothing");
  Response res = router.dispatch(r);
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.content_type, "application/json");
  auto body = nlohmann::json::parse(res.body);
  EXPECT_EQ(body["error"]["status"], 404);
  r = make("GET", "/api/instances/abc/cancel");
  res = router.dispatch(r);
  EXPECT_EQ(res.status, 405);
  ASSERT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers[0].first, "Allow");
  EXPECT_EQ(res.headers[0].second, "POST");
  r = make("DELETE", "/api/instances/abc");
  res = router.dispatch(r);
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.headers[0].second, "GET, HEAD");
  r = make("GET", "/api/instances/%zz");
  EXPECT_EQ(router.dispatch(r).status, 400);
}

TEST(Router, RunsTheGetRouteForHead) {
  Router router = sample_router();
  Request r = make("HEAD", "/api/instances/x");
  EXPECT_EQ(router.dispatch(r).body, "one x");  // The server drops the body.
}

TEST(Text, DecodesPercentEscapesAndForms) {
  EXPECT_EQ(percent_decode("a%20b+c", false), "a b+c");
  EXPECT_EQ(percent_decode("a%20b+c", true), "a b c");
  EXPECT_EQ(percent_decode("%", false), std::nullopt);
  EXPECT_EQ(percent_decode("%4", false), std::nullopt);
  EXPECT_EQ(percent_decode("%4g", false), std::nullopt);
  EXPECT_EQ(percent_decode("%41", false), "A");
  auto form = parse_form("status=stuck&saga=order+v2&empty=&flag");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->at("status"), "stuck");
  EXPECT_EQ(form->at("saga"), "order v2");
  EXPECT_EQ(form->at("empty"), "");
  EXPECT_EQ(form->at("flag"), "");
  EXPECT_FALSE(parse_form("a=%zz"));
}

TEST(Access, FollowsTheRuleTable) {
  struct Row {
    const char* what;
    std::string token;
    bool public_reads;
    std::string method;
    bool loopback;
    std::map<std::string, std::string> headers;
    int want;  // 0: allowed.
  };
  const std::map<std::string, std::string> none;
  const std::map<std::string, std::string> right = {{"authorization", "Bearer s3cret"}};
  const std::map<std::string, std::string> wrong = {{"authorization", "Bearer s3cres"}};
  const std::map<std::string, std::string> cookie = {{"cookie", "a=b; saga_token=s3cret"}};
  const std::map<std::string, std::string> bad_cookie = {{"cookie", "saga_token=nope"}};
  const Row rows[] = {
      {"no token: loopback read", "", false, "GET", true, none, 0},
      {"no token: remote read", "", false, "GET", false, none, 0},
      {"no token: loopback post", "", false, "POST", true, none, 0},
      {"no token: remote post", "", false, "POST", false, none, 403},
      {"no token: remote delete", "", false, "DELETE", false, none, 403},
      {"token: loopback read", "s3cret", false, "GET", true, none, 0},
      {"token: remote read", "s3cret", false, "GET", false, none, 401},
      {"token: remote read, public", "s3cret", true, "HEAD", false, none, 0},
      {"token: remote read with token", "s3cret", false, "GET", false, right, 0},
      {"token: post without", "s3cret", false, "POST", true, none, 401},
      {"token: post wrong", "s3cret", false, "POST", true, wrong, 403},
      {"token: post right", "s3cret", false, "POST", true, right, 0},
      {"token: put right, remote", "s3cret", false, "PUT", false, right, 0},
      {"token: post cookie", "s3cret", false, "POST", true, cookie, 0},
      {"token: post bad cookie", "s3cret", false, "POST", true, bad_cookie, 403},
      {"token: public reads do not open posts", "s3cret", true, "POST", false, none, 401},
  };
  for (const Row& row : rows) {
    Request r = make(row.method, "/api/instances/x/cancel");
    r.peer_loopback = row.loopback;
    r.headers = row.headers;
    auto refused = check_access({row.token, row.public_reads}, r);
    EXPECT_EQ(refused ? refused->status : 0, row.want) << row.what;
  }
}

TEST(Access, RefusesPostsFromPagesOfOtherOrigins) {
  Request r = make("POST", "/api/instances/x/cancel");
  r.headers = {{"host", "127.0.0.1:9464"}, {"origin", "http://evil.example"}};
  auto refused = check_access({}, r);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403);
  r.headers["origin"] = "http://127.0.0.1:9464";
  EXPECT_FALSE(check_access({}, r));
  // A read from elsewhere is only a read.
  r.method = "GET";
  r.headers["origin"] = "http://evil.example";
  EXPECT_FALSE(check_access({}, r));
}

TEST(Access, TheLoginFormPresentsItsToken) {
  Request r = make("POST", "/login");
  r.body = "token=s3cret";
  EXPECT_FALSE(check_access({"s3cret", false}, r));
  r.body = "token=other";
  ASSERT_TRUE(check_access({"s3cret", false}, r));
  EXPECT_EQ(check_access({"s3cret", false}, r)->status, 403);
  // Only the login form: a token field elsewhere is ignored.
  r = make("POST", "/api/instances/x/cancel");
  r.body = "token=s3cret";
  EXPECT_EQ(check_access({"s3cret", false}, r)->status, 401);
}

TEST(Access, ComparesTokensWhateverTheirLengths) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(ListenAddress, DefaultsToLoopback) {
  auto a = parse_listen_address("9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 9464);
  a = parse_listen_address(":0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 0);
  a = parse_listen_address("0.0.0.0:80");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "0.0.0.0");
  a = parse_listen_address("[::1]:9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "::1");
  EXPECT_FALSE(parse_listen_address("example.com:80").ok());
  EXPECT_FALSE(parse_listen_address("127.0.0.1:65536").ok());
  EXPECT_FALSE(parse_listen_address("127.0.0.1:").ok());
  EXPECT_FALSE(parse_listen_address("[::1]9464").ok());
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
}

TEST(HtmlEscape, EscapesEveryCharacterThatEndsText) {
  EXPECT_EQ(web::html_escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&apos;x&apos;) &amp; &quot;y&quot;&lt;/script&gt;");
  EXPECT_EQ(web::html_escape("plain"), "plain");
  EXPECT_EQ(web::html_escape("bad \xff byte"), "bad \xef\xbf\xbd byte");
}

// Health and actions from routes alone (no server): /health/ready says why
// it is not ready, and an action without an engine is refused.
TEST(WebRoutes, ReadinessNamesWhatIsWrong) {
  const std::string path = ::testing::TempDir() + "serve-ready-" + std::to_string(getpid()) + ".db";
  {
    auto writer = open_sqlite_store(path);
    ASSERT_TRUE(writer.ok()) << writer.status().message();
    bool stopping = false;
    web::Context context;
    context.store = writer.value().get();
    context.not_ready = [&] { return stopping ? std::string("the worker is stopping") : ""; };
    Router router;
    web::add_health_routes(router, context);
    web::add_api_routes(router, context);
    Request r = make("GET", "/health/ready");
    Response res = router.dispatch(r);
    EXPECT_EQ(res.status, 200) << res.body;
    stopping = true;
    res = router.dispatch(r);
    EXPECT_EQ(res.status, 503);
    EXPECT_EQ(nlohmann::json::parse(res.body)["reason"], "the worker is stopping");
    r = make("POST", "/api/instances/x/cancel");
    EXPECT_EQ(router.dispatch(r).status, 503);
  }
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = open_sqlite_store(path, read_only);
  ASSERT_TRUE(reader.ok());
  web::Context context;
  context.store = reader.value().get();
  Router router;
  web::add_health_routes(router, context);
  Request r = make("GET", "/health/ready");
  Response res = router.dispatch(r);
  EXPECT_EQ(res.status, 503);
  EXPECT_NE(nlohmann::json::parse(res.body)["reason"].get<std::string>().find("read-only"),
            std::string::npos)
      << res.body;
  reader.value().reset();
  std::remove(path.c_str());
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Router router = sample_router();
    router.add("POST", "/echo", [](const Request& r) {
      return Response{200, "text/plain", r.body, {}};
    });
    ServerOptions options;
    options.max_body_bytes = 1024;
    options.max_header_bytes = 2048;
    options.timeout_ms = 300;
    auto server = Server::start(options, std::move(router));
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
  }
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, ServesManyRequestsOnOneConnection) {
  ASSERT_NE(server_->port(), 0);
  test::HttpConnection c(server_->port());
  for (int i = 0; i < 3; ++i) {
    auto reply = c.call("GET", "/api/instances/n" + std::to_string(i));
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body, "one n" + std::to_string(i));
    EXPECT_TRUE(c.open()) << "the connection was not kept";
  }
  auto head = c.call("HEAD", "/api/instances/abc");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.headers["content-length"], "7");
  auto missing = c.call("GET", "/nothing?x=1");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.headers["content-type"], "application/json");
}

TEST_F(ServerTest, RefusesTooLargeRequests) {
  auto ok = test::http_call(server_->port(), "POST", "/echo", std::string(1000, 'x'));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body.size(), 1000u);
  auto big = test::http_call(server_->port(), "POST", "/echo", std::string(2000, 'x'));
  EXPECT_EQ(big.status, 413);
  auto headers = test::http_call(server_->port(), "GET", "/api/instances", {},
                                 {{"X-Big", std::string(4000, 'h')}});
  EXPECT_EQ(headers.status, 431);
}

TEST_F(ServerTest, StopsWithConnectionsOpen) {
  test::HttpConnection c(server_->port());
  EXPECT_EQ(c.call("GET", "/api/instances").status, 200);
  const int port = server_->port();
  server_->stop();
  EXPECT_EQ(c.call("GET", "/api/instances").status, 0);
  EXPECT_EQ(test::http_call(port, "GET", "/api/instances").status, 0);
}

TEST_F(ServerTest, ClosesAConnectionThatSendsNothing) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  // A guard only: the server closes after its 300 ms timeout, long before.
  struct timeval guard {
    5, 0
  };
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  const auto start = std::chrono::steady_clock::now();
  char byte = 0;
  boost::system::error_code ec;
  size_t n = socket.read_some(boost::asio::buffer(&byte, 1), ec);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(ec, boost::asio::error::eof) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

TEST(Server, SaysWhyItCannotListen) {
  auto first = Server::start({}, Router());
  ASSERT_TRUE(first.ok());
  ServerOptions taken;
  taken.port = first.value()->port();
  auto second = Server::start(taken, Router());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kIoError);
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace saga::serve
