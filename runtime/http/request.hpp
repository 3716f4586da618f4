// The pure parts of the HTTP transport: parsing urls, turning a service call
// into a method, target and body (routes with ${arg} placeholders), the
// correlation headers, parsing Retry-After, and classifying a response into
// the engine's error classes. No I/O and no Asio here, so tests/http checks
// every rule without a network; runtime/http/client.cpp does the I/O.
// docs/http.md is the contract these functions implement.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "saga/engine.hpp"

namespace saga::http {

// An http:// url split into the parts a request needs. `host` is a DNS name
// or an IP address (IPv6 without its brackets); `base_path` is the path
// without a trailing slash ("" or "/api"); `query` is what followed '?'.
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string base_path;
  std::string path;  // The path as written ("" when none), for ad-hoc urls.
  std::string query;
  // "host:port" as the allowlist spells it (IPv6 in brackets: "[::1]:80").
  std::string authority() const;
};

// Parses an absolute http:// url. Returns nullopt and sets *error to a
// sentence for the user when it cannot be used: https ("https is not
// supported yet: ..."), another scheme, no host, a bad port, user info.
std::optional<Url> parse_url(std::string_view url, std::string* error);

// Percent-encodes everything but RFC 3986's unreserved characters.
std::string url_encode(std::string_view text);

// The text of an argument in a path or query: strings as they are, other
// values as their JSON text.
std::string arg_text(const nlohmann::json& value);

// What goes on the wire for a call: method, request target (path and query)
// and the JSON body, or null for no body.
struct Target {
  std::string method;
  std::string target;
  nlohmann::json body;  // null: no body.
};

// Builds the request of a service call: POST {base}/{op} with the arguments
// as the body, or the call's route (method and path with ${arg} placeholders,
// substituted URL-encoded; arguments used in the path leave the body). GET,
// HEAD and DELETE send no body: the remaining arguments become the query
// string, in key order. Returns nullopt with *error when a placeholder names
// an argument the call does not have.
std::optional<Target> build_target(const ServiceCall& call, const Url& url, std::string* error);

// W3C trace context for a call: "00-<trace id>-<span id>-01". The trace id
// (32 hex digits) is the instance id's hex digits when it is a UUID, else a
// hash of it, so every call of an instance shares it; the span id (16 hex
// digits) is a hash of step, attempt and whether it is an undo. Neither is
// ever all zeros.
std::string traceparent(const std::string& instance_id, const std::string& step, uint32_t attempt,
                        bool compensation);

// Parses a Retry-After value: delay-seconds ("120") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", also the obsolete RFC 850 and asctime
// forms), relative to now_unix_ms. Returns the delay in milliseconds (0 for
// a date in the past, at most one day), or nullopt when it is not valid.
std::optional<int64_t> parse_retry_after(std::string_view value, int64_t now_unix_ms);

// Longest part of an error response body quoted in an error message.
inline constexpr size_t kMaxQuotedBody = 1024;

// Classifies a complete response. `what` names the request in messages
// ("POST http://127.0.0.1:8082/charge"). The table (docs/http.md):
//   2xx                -> ok; empty body -> null, JSON body -> the value,
//                         other body -> class `error` "service returned a
//                         non-JSON body: ..."
//   408                -> `timeout`
//   429, 5xx           -> `unavailable`, with retry_after_ms from Retry-After
//   other 4xx          -> `rejected`, the body (at most 1 KB) in the message
//   1xx, 3xx, others   -> `error` (redirects are not followed)
ServiceOutcome classify_response(int status, std::string_view reason, std::string_view body,
                                 std::string_view retry_after, int64_t now_unix_ms,
                                 const std::string& what);

// Shortens text for a message: at most `max` bytes (cut at a UTF-8 boundary)
// followed by "... (N bytes)" when cut.
std::string quote_body(std::string_view body, size_t max = kMaxQuotedBody);

// Whether a host name is "localhost" or a name under ".localhost" (any case):
// RFC 6761 reserves them for the loopback address, so the client connects to
// 127.0.0.1 without asking a resolver, as curl does (a minimal system without
// /etc/hosts cannot resolve them).
bool is_localhost_name(std::string_view host);

}  // namespace saga::http
