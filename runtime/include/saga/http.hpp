// Calling services over HTTP, and the standard library's http.* and exec
// actions: the embedding API of runtime/http (library saga_http).
//
//   auto http = saga::HttpClient::create({.allow_hosts = {"127.0.0.1:8081"}});
//   saga::EngineOptions options;
//   options.service_transport = http->transport();
//   auto engine = saga::Engine::open(options).value();
//   http->register_stdlib_actions(*engine);      // http.get/post/put/delete
//   saga::register_exec_action(*engine, false);  // exec, disabled
//   ...
//   http->shutdown();  // no more requests, then stop the engine
//   engine.reset();
//
// A call of `service payment { url "http://..." }` becomes one HTTP/1.1
// request per attempt (docs/http.md has the contract for participant
// authors: request shape, headers, classification, Retry-After). The client
// runs on its own threads with Boost.Beast; no engine thread ever waits on
// the network. TLS is not supported yet: https urls fail with class
// `rejected`. No Asio or Beast type appears in this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "saga/engine.hpp"

namespace saga {

struct HttpOptions {
  // The hosts requests may go to, as "host:port" ("127.0.0.1:8081",
  // "orders.internal:80", "[::1]:8080"); the host is compared as written in
  // the url (names are not resolved for the check). Empty: every host. A
  // request elsewhere fails with class `rejected`:
  // "host 127.0.0.1:9 is not allowed (--allow-host)".
  std::vector<std::string> allow_hosts;
  // Largest response (headers and body) accepted; a larger one fails the
  // attempt with class `error` (the request may have had its effect).
  size_t max_response_bytes = 8u << 20;
  // Largest request body; a larger one fails with class `rejected` before
  // anything is sent.
  size_t max_request_bytes = 8u << 20;
  // Threads running the client's event loop. One is plenty for hundreds of
  // concurrent calls: they only move bytes.
  unsigned threads = 1;
  // Time allowed to open a connection (DNS and TCP), within the attempt's
  // own timeout. 0: only the attempt's timeout applies.
  int connect_timeout_ms = 5'000;
  // Per-attempt timeout of calls that have none (services without `timeout`,
  // and the http.* actions, whose calls carry no timeout). 0: none.
  int64_t default_timeout_ms = 30'000;
  // Connections kept per host:port, open at once (further requests wait for
  // one, their timeout running) and idle (more are closed when returned).
  size_t max_connections_per_host = 256;
  size_t max_idle_per_host = 64;
  // An idle connection older than this is not reused.
  int64_t idle_timeout_ms = 30'000;
  // Lines for the process log (breaker transitions, with the service name).
  // Called from the client's threads; must not block. Null: silent.
  std::function<void(std::string line)> log;
  // Milliseconds on any monotonic scale, for breakers and bulkheads. Null:
  // std::chrono::steady_clock. (Retry-After dates use the system clock.)
  std::function<int64_t()> now_ms;
};

class HttpClient : public std::enable_shared_from_this<HttpClient> {
 public:
  // Starts the client's threads.
  static std::shared_ptr<HttpClient> create(HttpOptions options = {});

  // Calls shutdown().
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // The transport for EngineOptions::service_transport. It holds the client
  // alive. Each call: allowlist, circuit breaker of call.service (when
  // call.breaker_failures > 0), bulkhead (when call.bulkhead > 0), then the
  // request on a pooled keep-alive connection, with call.timeout_ms (else
  // default_timeout_ms) covering queueing, connecting and the exchange.
  ServiceTransport transport();

  // The sender for RelayOptions::sender (saga/outbox.hpp): POSTs a
  // CloudEvent with Content-Type application/cloudevents+json, within
  // default_timeout_ms, classified as for services (a 2xx is accepted).
  // It holds the client alive.
  std::function<void(const std::string& url, const std::string& body,
                     std::function<void(ServiceOutcome)> done)>
  event_sender();

  // Registers http.get, http.post, http.put and http.delete as asynchronous
  // actions of `engine`: arguments url (an http:// url with path and query),
  // body (JSON, post and put), headers (an object of strings); the JSON
  // response body is the result and failures are classified as for services.
  // Requests carry the same correlation headers as service calls.
  void register_stdlib_actions(Engine& engine);

  // The circuit breakers and bulkheads so far, by service name:
  // {"payment": {"breaker": {"state": "open", "failures": 5,
  //   "opened_at_ms": ..., "retry_after_ms": ..., ...},
  //   "bulkhead": {"limit": 16, "in_use": 3, "waiting": 0, ...}}}.
  nlohmann::json breaker_states() const;

  // Counters for tests and benchmarks: {"requests", "connections_opened",
  // "connections_reused", "in_flight"}.
  nlohmann::json stats() const;

  // Stops the threads and closes every connection. Calls still in flight
  // are dropped WITHOUT calling their completion (their instances resume in
  // the next process, like after a crash). Call it when the engines using
  // the client need no more answers, best just before destroying them: then
  // no request goes out while an engine shuts down. Later calls of the
  // transport fail at once with class `unavailable`. Idempotent; the
  // destructor calls it too.
  void shutdown();

  struct Impl;

 private:
  explicit HttpClient(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Registers the `exec` action: exec(cmd: "/usr/bin/tr", args: ["a-z", "A-Z"],
// stdin: "text") runs the program directly (no shell: no globbing, no
// interpolation; cmd without '/' is looked up in PATH), writes stdin, and
// returns {exit, stdout, stderr} (exit is 128 + N for a child killed by
// signal N; a nonzero exit is a result, not a failure). Output beyond 8 MiB
// per stream is cut. A program that cannot be started fails with class
// `rejected`. Each call runs on a thread of its own; engine threads never
// wait for the child. When `allowed` is false every call fails with class
// `rejected`: "exec is disabled: start the run with --allow-exec".
void register_exec_action(Engine& engine, bool allowed);

}  // namespace saga
