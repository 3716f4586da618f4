// The router, the access rule and the small text helpers of saga/serve.hpp:
// pure functions of the request, no sockets (server.cpp owns those), so that
// tests/serve checks every rule without a network.
#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "saga/serve.hpp"

namespace saga::serve {

std::string Request::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Request::arg(const std::string& name, const std::string& fallback) const {
  auto it = query.find(name);
  return it == query.end() ? fallback : it->second;
}

Response error_response(int status, std::string_view message) {
  nlohmann::json body = {{"error", {{"status", status}, {"message", message}}}};
  return {status,
          "application/json",
          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
          {}};
}

Response redirect(const std::string& location) {
  return {303, "text/plain", "see " + location + "\n", {{"Location", location}}};
}

std::vector<std::string> path_segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    out.emplace_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_form(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t end = text.find('&', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view pair = text.substr(i, end - i);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      auto key = percent_decode(pair.substr(0, eq), true);
      auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
      if (!key || !value) return std::nullopt;
      out[*key] = *value;
    }
    i = end + 1;
  }
  return out;
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  Route r{std::move(method), std::move(pattern), {}, std::move(handler)};
  r.segments = path_segments(r.pattern);
  routes_.push_back(std::move(r));
}

namespace {

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Whether `segments` (decoded) match the route's pattern; fills `params`.
bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& segments,
             std::map<std::string, std::string>& params) {
  if (pattern.size() != segments.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (is_param(pattern[i])) {
      if (segments[i].empty()) return false;
      found[pattern[i].substr(1, pattern[i].size() - 2)] = segments[i];
    } else if (pattern[i] != segments[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

}  // namespace

Response Router::dispatch(Request& request) const {
  // Segments are decoded one by one, so an encoded '/' (%2F) stays inside its segment.
  std::vector<std::string> segments;
  for (const std::string& raw : path_segments(request.path)) {
    auto decoded = percent_decode(raw, false);
    if (!decoded) return error_response(400, "the path has a malformed %-escape");
    segments.push_back(std::move(*decoded));
  }
  const std::string& method = request.method == "HEAD" ? std::string("GET") : request.method;
  std::vector<std::string> allowed;
  for (const Route& r : routes_) {
    std::map<std::string, std::string> params;
    if (!matches(r.segments, segments, params)) continue;
    if (r.method == method) {
      request.params = std::move(params);
      return r.handler(request);
    }
    if (std::find(allowed.begin(), allowed.end(), r.method) == allowed.end()) {
      allowed.push_back(r.method);
    }
  }
  if (allowed.empty()) return error_response(404, fmt::format("no such page: {}", request.path));
  std::string allow;
  for (const std::string& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
  if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) allow += ", HEAD";
  Response r = error_response(405, fmt::format("{} is not allowed on {} (allowed: {})",
                                               request.method, request.path, allow));
  r.headers.emplace_back("Allow", allow);
  return r;
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Route& r : routes_) out.emplace_back(r.method, r.pattern);
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is looked at, whatever differs first.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

namespace {

// The token a request presents: the bearer token, else the login cookie.
std::optional<std::string> presented_token(const Request& request) {
  const std::string auth = request.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() >= kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0) {
    return auth.substr(kBearer.size());
  }
  // The login form (POST /login) presents the token in its `token` field.
  if (request.method == "POST" && request.path == "/login") {
    auto fields = parse_form(request.body);
    if (fields && fields->contains("token")) return fields->at("token");
  }
  const std::string cookies = request.header("cookie");
  for (const std::string& part : [&] {
         std::vector<std::string> parts;
         size_t i = 0;
         while (i <= cookies.size()) {
           size_t end = cookies.find(';', i);
           if (end == std::string::npos) end = cookies.size();
           std::string p = cookies.substr(i, end - i);
           while (!p.empty() && p.front() == ' ') p.erase(p.begin());
           parts.push_back(std::move(p));
           i = end + 1;
         }
         return parts;
       }()) {
    constexpr std::string_view kCookie = "saga_token=";
    if (part.compare(0, kCookie.size(), kCookie) == 0) {
      return percent_decode(std::string_view(part).substr(kCookie.size()), false);
    }
  }
  return std::nullopt;
}

// The host[:port] of an Origin header ("http://127.0.0.1:9464" -> "127.0.0.1:9464").
std::string origin_host(const std::string& origin) {
  size_t scheme = origin.find("://");
  return scheme == std::string::npos ? origin : origin.substr(scheme + 3);
}

}  // namespace

std::optional<Response> check_access(const AccessRule& rule, const Request& request) {
  const bool reads = request.method == "GET" || request.method == "HEAD";
  if (!reads) {
    const std::string origin = request.header("origin");
    if (!origin.empty() && origin != "null" && origin_host(origin) != request.header("host")) {
      return error_response(403,
                            fmt::format("a request from {} may not change anything here", origin));
    }
  }
  if (rule.token.empty()) {
    if (reads || request.peer_loopback) return std::nullopt;
    return error_response(403,
                          "without --admin-token-file, only clients on this machine may change "
                          "anything");
  }
  if (reads && (request.peer_loopback || rule.public_reads)) return std::nullopt;
  auto token = presented_token(request);
  if (!token) {
    Response r = error_response(401, "this needs the admin token: Authorization: Bearer TOKEN");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  if (!constant_time_equal(*token, rule.token)) return error_response(403, "wrong admin token");
  return std::nullopt;
}

bool is_loopback_host(std::string_view host) {
  std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

Result<std::pair<std::string, uint16_t>> parse_listen_address(std::string_view text) {
  std::string host = "127.0.0.1";
  std::string_view port_text = text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("--listen {}: expected [IPV6]:PORT", text));
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else if (size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (colon > 0) host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) != 1 && inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("--listen {}: '{}' is not an IP address (give 127.0.0.1, ::1 or "
                              "the address of an interface)",
                              text, host));
  }
  unsigned port = 0;
  bool digits = !port_text.empty() && port_text.size() <= 5;
  for (char c : port_text) {
    if (c < '0' || c > '9') digits = false;
  }
  if (digits) port = static_cast<unsigned>(std::stoul(std::string(port_text)));
  if (!digits || port > 65535) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("--listen {}: the port must be a number from 0 to 65535", text));
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

}  // namespace saga::serve
