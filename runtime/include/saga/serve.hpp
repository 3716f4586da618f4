// The one listener of a process (`sagactl worker --listen`): an HTTP/1.1
// server and the router behind it. Invariant: every request is answered by
// exactly one route, found by method and path pattern, after the access rule
// (below) let it through; a request that matches no route gets 404, one whose
// path matches with another method 405, both with a JSON error body. Routes
// are registered before the server starts and never change while it runs, so
// handlers need no lock for the table.
//
// Handlers run on the server's thread, one request at a time per connection;
// they must not block for long (a store read is fine). No Asio or Beast type
// appears in this header (the server is in runtime/serve/server.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/status.hpp"

namespace saga::serve {

struct Request {
  std::string method;  // "GET", "POST", ... (HEAD is routed as GET; the body is dropped).
  std::string path;    // Percent-decoded path, without the query.
  std::map<std::string, std::string> query;    // Decoded query parameters (last one wins).
  std::map<std::string, std::string> params;   // The pattern's {name} parts, decoded.
  std::map<std::string, std::string> headers;  // Names in lower case.
  std::string body;
  bool peer_loopback = false;  // The client connected from 127.0.0.0/8 or ::1.
  // The value of a header (lower-case name), or empty.
  std::string header(const std::string& name) const;
  // A query parameter, or `fallback` when absent.
  std::string arg(const std::string& name, const std::string& fallback = {}) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>>
      headers;  // Extra headers (Location, Set-Cookie).
};

// A JSON error body, {"error": {"status": 404, "message": "..."}}, with that status.
Response error_response(int status, std::string_view message);
// A 303 redirect to `location` (a form post sends the browser back to a page).
Response redirect(const std::string& location);

using Handler = std::function<Response(const Request&)>;

// Routes of (method, pattern): a pattern is a path whose segments are literal
// or `{name}` (one segment, any text but '/'), as in
// "/api/instances/{id}/cancel". The first route added that matches wins.
class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler);
  // The response of the route that matches (filling `request.params`), or
  // 404 / 405 (with an Allow header) when none does. HEAD runs the GET route.
  Response dispatch(Request& request) const;
  // Every (method, pattern), in order of registration (for the docs test).
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Splits a path into segments ("/a/b/" -> "a", "b"), without decoding.
std::vector<std::string> path_segments(std::string_view path);
// Percent-decoding; '+' becomes a space when `plus_is_space` (forms, queries).
// nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);
// "a=1&b=x%20y" -> {a: 1, b: "x y"} (application/x-www-form-urlencoded).
std::optional<std::map<std::string, std::string>> parse_form(std::string_view text);

// Who may do what (README, "The listener"):
// * With a token configured, a state-changing request (any method but GET and
//   HEAD) needs it, as `Authorization: Bearer TOKEN` or the `saga_token`
//   cookie the login form sets: 401 without one, 403 with a wrong one.
//   Reads are open to loopback peers; from other peers they need the token
//   too, unless `public_reads`.
// * Without a token, a state-changing request is accepted only from a
//   loopback peer (403 otherwise).
// * A state-changing request whose Origin header names another host than its
//   Host header is refused (403): a page of another site cannot post to the
//   listener through the browser of someone on the same machine.
struct AccessRule {
  std::string token;  // Empty: no token configured.
  bool public_reads = false;
};
// nullopt when the request may proceed, else the refusal to send.
std::optional<Response> check_access(const AccessRule& rule, const Request& request);
// Compares two strings in time that depends only on their lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

struct ServerOptions {
  std::string host = "127.0.0.1";  // An IP address (v4 or v6) to bind.
  uint16_t port = 0;               // 0: an ephemeral port (see Server::port()).
  AccessRule access;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  // A request must arrive complete within this time after the connection
  // opened or the previous response was written (so an idle keep-alive
  // connection is closed then too), and a response must be written within it.
  int timeout_ms = 10'000;
  size_t max_connections = 256;  // Further connections are closed at once.
};

// "9464", ":9464", "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464" -> host and
// port (host 127.0.0.1 when none is given). kInvalidArgument naming the
// problem otherwise.
Result<std::pair<std::string, uint16_t>> parse_listen_address(std::string_view text);
// Whether an IP address literal is a loopback address.
bool is_loopback_host(std::string_view host);

// The server: one thread, started by start() and stopped by stop() or the
// destructor (open connections are closed; a request being handled finishes
// first).
class Server {
 public:
  static Result<std::unique_ptr<Server>> start(ServerOptions options, Router router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  uint16_t port() const;
  void stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace saga::serve
