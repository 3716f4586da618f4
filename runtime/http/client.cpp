// The HTTP client behind saga/http.hpp: service calls and the http.* actions
// as HTTP/1.1 requests with Boost.Beast, on the client's own io_context and
// threads. One attempt is one Exchange, an object whose every step runs on
// its own strand:
//
//   bulkhead slot -> connection (idle from the pool, or resolve + connect)
//     -> write request -> read response -> classify -> done
//
// and a deadline timer on the same strand that ends the exchange with class
// `timeout` at any of those steps (leaving the bulkhead queue, the pool
// queue, cancelling the resolver or closing the socket). Because all of an
// exchange's handlers share one strand, its fields need no lock; the pools,
// breakers and bulkheads are shared between exchanges and guarded by their
// own mutexes. Callbacks (`done`, completions) run with no lock held.
#include <fmt/format.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "runtime/http/beast.hpp"
#include "runtime/http/request.hpp"
#include "runtime/http/resilience.hpp"
#include "saga/http.hpp"

namespace saga {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr const char* kUserAgent = "saga/0.1";

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ServiceOutcome failure(std::string error_class, std::string message) {
  ServiceOutcome out;
  out.error_class = std::move(error_class);
  out.message = std::move(message);
  return out;
}

// A failure before any byte of the request left: the attempt had no effect.
ServiceOutcome not_sent(std::string error_class, std::string message) {
  ServiceOutcome out = failure(std::move(error_class), std::move(message));
  out.not_sent = true;
  return out;
}

// A keep-alive connection. Only the exchange that holds it touches it; the
// pool hands it from one exchange to the next under the pool's lock.
struct Connection {
  explicit Connection(net::io_context& io) : socket(io) {}
  tcp::socket socket;
  beast::flat_buffer buffer;  // Bytes read beyond the last response stay here.
  int64_t idle_since_ms = 0;
  uint64_t uses = 0;
};
using ConnPtr = std::shared_ptr<Connection>;

// What the pool gives an exchange: an idle connection, or the right to open
// a new one (counted against max_connections_per_host).
struct PoolGrant {
  ConnPtr idle;
  bool may_open = false;
};

// The connections to one host:port. `open` counts connections in use, idle
// ones and rights to open handed out; it never exceeds the cap. Callers
// beyond it wait in FIFO order.
struct HostPool {
  std::deque<ConnPtr> idle;
  size_t open = 0;
  struct Waiter {
    uint64_t ticket;
    bool fresh_only;
    std::function<void(PoolGrant)> grant;
  };
  std::deque<Waiter> waiters;
};

// The resilience state of one service, shared by all instances.
struct ServiceState {
  std::unique_ptr<http::CircuitBreaker> breaker;
  std::unique_ptr<http::Bulkhead> bulkhead;
};

// One attempt, ready to send. Built on the caller's thread.
struct Request {
  std::string service;  // Empty for the http.* actions: no breaker, no bulkhead.
  std::string what;     // "POST http://127.0.0.1:8082/charge", for messages.
  http::Url url;
  std::string method;
  std::string target;
  std::optional<std::string> body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type = "application/json";  // Of the body.
  bool any_2xx = false;  // Every 2xx is ok, whatever its body (event deliveries).
  int64_t timeout_ms = 0;
  std::shared_ptr<ServiceState> state;
  bool probe = false;  // Admitted by the breaker as a half-open probe.
  std::function<void(ServiceOutcome)> done;
};

}  // namespace

struct HttpClient::Impl {
  explicit Impl(HttpOptions o) : options(std::move(o)) {
    if (!options.now_ms) options.now_ms = steady_now_ms;
    if (options.threads == 0) options.threads = 1;
    if (options.max_connections_per_host == 0) options.max_connections_per_host = 1;
    // Urls' hosts are compared in lower case (parse_url lowers them).
    for (std::string& host : options.allow_hosts) {
      for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }

  HttpOptions options;
  net::io_context io;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};

  std::atomic<uint64_t> requests{0}, opened{0}, reused{0};
  std::atomic<int64_t> in_flight{0};

  std::mutex services_mu;
  std::unordered_map<std::string, std::shared_ptr<ServiceState>> services;

  // Declared after io: destroyed first, while the io_context still exists.
  std::mutex pool_mu;
  std::unordered_map<std::string, HostPool> pools;
  uint64_t next_pool_ticket = 1;

  void log(const std::string& line) {
    if (options.log) options.log(line);
  }

  bool host_allowed(const http::Url& url) const {
    if (options.allow_hosts.empty()) return true;
    std::string authority = url.authority();
    for (const std::string& allowed : options.allow_hosts) {
      if (allowed == authority) return true;
    }
    return false;
  }

  // ---- Services ----------------------------------------------------------------

  std::shared_ptr<ServiceState> service_state(const ServiceCall& call) {
    if (call.breaker_failures == 0 && call.bulkhead == 0) return nullptr;
    std::lock_guard lock(services_mu);
    auto& state = services[call.service];
    if (!state) state = std::make_shared<ServiceState>();
    if (call.breaker_failures > 0) {
      http::BreakerSettings settings{call.breaker_failures, call.breaker_reset_ms,
                                     std::max(1u, call.breaker_probes)};
      if (!state->breaker) {
        std::string name = call.service;
        state->breaker = std::make_unique<http::CircuitBreaker>(
            settings, options.now_ms,
            [this, name](http::CircuitBreaker::State from, http::CircuitBreaker::State to,
                         const std::string& why) {
              log(fmt::format("circuit of service {}: {} -> {} ({})", name,
                              http::CircuitBreaker::name(from), http::CircuitBreaker::name(to),
                              why));
            });
      } else {
        state->breaker->configure(settings);
      }
    }
    if (call.bulkhead > 0) {
      if (!state->bulkhead) {
        state->bulkhead = std::make_unique<http::Bulkhead>(call.bulkhead, options.now_ms);
      } else {
        state->bulkhead->set_limit(call.bulkhead);
      }
    }
    return state;
  }

  // ---- The connection pool -----------------------------------------------------

  // Takes an idle connection or the right to open one, or queues `grant`
  // (then returns nullopt and sets *ticket). Idle connections past the idle
  // timeout are closed here.
  std::optional<PoolGrant> pool_acquire(const std::string& key, bool fresh_only,
                                        std::function<void(PoolGrant)> grant, uint64_t* ticket) {
    std::lock_guard lock(pool_mu);
    HostPool& pool = pools[key];
    int64_t now = steady_now_ms();
    while (!fresh_only && !pool.idle.empty()) {
      ConnPtr c = std::move(pool.idle.back());
      pool.idle.pop_back();
      if (now - c->idle_since_ms <= options.idle_timeout_ms) return PoolGrant{std::move(c), false};
      --pool.open;  // Too old: its socket closes as it is destroyed.
    }
    if (fresh_only && !pool.idle.empty() && pool.open >= options.max_connections_per_host) {
      // Make room by dropping the oldest idle connection.
      pool.idle.pop_front();
      --pool.open;
    }
    if (pool.open < options.max_connections_per_host) {
      ++pool.open;
      return PoolGrant{nullptr, true};
    }
    *ticket = next_pool_ticket++;
    pool.waiters.push_back({*ticket, fresh_only, std::move(grant)});
    return std::nullopt;
  }

  // Gives a connection back (reusable: kept idle or handed to a waiter) or
  // reports it gone (closed, broken, never opened).
  void pool_release(const std::string& key, ConnPtr conn, bool reusable) {
    std::function<void(PoolGrant)> grant;
    PoolGrant given;
    {
      std::lock_guard lock(pool_mu);
      HostPool& pool = pools[key];
      if (reusable && conn && !stopped) {
        conn->idle_since_ms = steady_now_ms();
        if (!pool.waiters.empty() && !pool.waiters.front().fresh_only) {
          grant = std::move(pool.waiters.front().grant);
          pool.waiters.pop_front();
          given.idle = std::move(conn);
        } else if (!pool.waiters.empty()) {
          // A waiter that wants a fresh connection: close this one, let it open.
          grant = std::move(pool.waiters.front().grant);
          pool.waiters.pop_front();
          given.may_open = true;
        } else if (pool.idle.size() < options.max_idle_per_host) {
          pool.idle.push_back(std::move(conn));
        } else {
          --pool.open;
        }
      } else {
        if (!pool.waiters.empty()) {
          grant = std::move(pool.waiters.front().grant);
          pool.waiters.pop_front();
          given.may_open = true;
        } else {
          --pool.open;
        }
      }
    }
    if (conn && !given.idle) {
      beast::error_code ignored;
      conn->socket.close(ignored);
    }
    if (grant) grant(std::move(given));
  }

  // Removes a waiter; false when it was already granted.
  bool pool_cancel(const std::string& key, uint64_t ticket) {
    std::lock_guard lock(pool_mu);
    auto& waiters = pools[key].waiters;
    for (auto it = waiters.begin(); it != waiters.end(); ++it) {
      if (it->ticket == ticket) {
        waiters.erase(it);
        return true;
      }
    }
    return false;
  }

  void call_service(const ServiceCall& call, std::function<void(ServiceOutcome)> done);
  void call_action(const std::string& method, const ActionCall& call, Completion completion);
  // Gives `r` the JSON text of `body`; the failure to report instead when it
  // exceeds options.max_request_bytes.
  std::optional<ServiceOutcome> set_body(Request& r, const nlohmann::json& body) const;
  void start(Request request);
  void shutdown();
};

namespace {

// One attempt on the wire. See the file comment for the steps.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(HttpClient::Impl& impl, Request request)
      : impl_(impl),
        req_(std::move(request)),
        key_(req_.url.authority()),
        strand_(net::make_strand(impl.io)),
        deadline_(strand_),
        connect_timer_(strand_),
        resolver_(strand_) {}

  void start() {
    net::post(strand_, [self = shared_from_this()] { self->begin(); });
  }

 private:
  enum class Phase { kQueued, kPool, kResolve, kConnect, kExchange };

  template <class F>
  auto on_strand(F&& f) {
    return net::bind_executor(strand_, std::forward<F>(f));
  }

  void begin() {
    if (req_.timeout_ms > 0) {
      deadline_.expires_after(std::chrono::milliseconds(req_.timeout_ms));
      deadline_.async_wait(on_strand([self = shared_from_this()](beast::error_code ec) {
        if (!ec) self->on_deadline();
      }));
    }
    http::Bulkhead* bulkhead = req_.state ? req_.state->bulkhead.get() : nullptr;
    if (!bulkhead) return acquire_connection();
    phase_ = Phase::kQueued;
    // The callback may run inside acquire(): post, so that ticket_ is set first.
    ticket_ = bulkhead->acquire(0, [self = shared_from_this()](bool granted) {
      if (!granted) return;  // Deadlines are ours (on_deadline), not the bulkhead's.
      net::post(self->strand_, [self] { self->on_slot(); });
    });
  }

  void on_slot() {
    holds_slot_ = true;
    if (finished_) return release_slot();
    acquire_connection();
  }

  void release_slot() {
    if (holds_slot_) {
      holds_slot_ = false;
      req_.state->bulkhead->release();
    }
  }

  void acquire_connection() {
    phase_ = Phase::kPool;
    auto grant = impl_.pool_acquire(
        key_, fresh_only_,
        [self = shared_from_this()](PoolGrant g) {
          net::post(self->strand_,
                    [self, g = std::move(g)]() mutable { self->on_grant(std::move(g)); });
        },
        &ticket_);
    if (grant) on_grant(std::move(*grant));
  }

  void on_grant(PoolGrant grant) {
    if (finished_) {
      // Ended while waiting: give back what we were handed.
      bool reusable = grant.idle != nullptr;
      impl_.pool_release(key_, std::move(grant.idle), reusable);
      return;
    }
    if (grant.idle) {
      conn_ = std::move(grant.idle);
      fresh_ = false;
      ++impl_.reused;
      return send();
    }
    open_connection();
  }

  void open_connection() {
    conn_ = std::make_shared<Connection>(impl_.io);
    fresh_ = true;
    ++impl_.opened;
    if (impl_.options.connect_timeout_ms > 0) {
      connect_timer_.expires_after(std::chrono::milliseconds(impl_.options.connect_timeout_ms));
      connect_timer_.async_wait(on_strand([self = shared_from_this()](beast::error_code ec) {
        if (ec || self->finished_) return;
        if (self->phase_ == Phase::kResolve || self->phase_ == Phase::kConnect) {
          self->connect_timed_out_ = true;
          self->resolver_.cancel();
          beast::error_code ignored;
          self->conn_->socket.close(ignored);
        }
      }));
    }
    beast::error_code ec;
    auto address = http::is_localhost_name(req_.url.host)
                       ? net::ip::make_address("127.0.0.1", ec)
                       : net::ip::make_address(req_.url.host, ec);
    if (!ec) {
      phase_ = Phase::kConnect;
      tcp::endpoint endpoint(address, req_.url.port);
      conn_->socket.async_connect(
          endpoint, on_strand([self = shared_from_this(), conn = conn_](beast::error_code ec) {
            self->on_connect(ec);
          }));
      return;
    }
    phase_ = Phase::kResolve;
    resolver_.async_resolve(
        req_.url.host, std::to_string(req_.url.port),
        on_strand(
            [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
              self->on_resolve(ec, std::move(results));
            }));
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (finished_) return;
    if (ec) {
      impl_.pool_release(key_, std::move(conn_), false);
      if (connect_timed_out_) return connect_timeout();
      return finish(not_sent("unavailable", fmt::format("{}: cannot resolve {}: {}", req_.what,
                                                        req_.url.host, ec.message())));
    }
    phase_ = Phase::kConnect;
    net::async_connect(
        conn_->socket, results,
        on_strand([self = shared_from_this(), conn = conn_](
                      beast::error_code ec, const tcp::endpoint&) { self->on_connect(ec); }));
  }

  void on_connect(beast::error_code ec) {
    if (finished_) return;
    connect_timer_.cancel();
    if (ec) {
      impl_.pool_release(key_, std::move(conn_), false);
      if (connect_timed_out_) return connect_timeout();
      return finish(not_sent("unavailable", fmt::format("{}: cannot connect to {}: {}", req_.what,
                                                        key_, ec.message())));
    }
    beast::error_code ignored;
    conn_->socket.set_option(tcp::no_delay(true), ignored);
    send();
  }

  void connect_timeout() {
    finish(not_sent("unavailable", fmt::format("{}: cannot connect to {} within {}ms", req_.what,
                                               key_, impl_.options.connect_timeout_ms)));
  }

  void send() {
    phase_ = Phase::kExchange;
    ++conn_->uses;
    ++impl_.requests;
    message_ = {};
    message_.version(11);
    bhttp::verb verb = bhttp::string_to_verb(req_.method);
    if (verb == bhttp::verb::unknown) {
      message_.method_string(req_.method);
    } else {
      message_.method(verb);
    }
    message_.target(req_.target);
    message_.set(bhttp::field::host, key_);
    message_.set(bhttp::field::user_agent, kUserAgent);
    message_.set(bhttp::field::accept, "application/json");
    for (const auto& [name, value] : req_.headers) message_.set(name, value);
    if (req_.body) {
      message_.set(bhttp::field::content_type, req_.content_type);
      message_.body() = *req_.body;
      message_.prepare_payload();
    } else if (req_.method == "POST" || req_.method == "PUT" || req_.method == "PATCH") {
      message_.content_length(0);
    }
    bhttp::async_write(conn_->socket, message_,
                       on_strand([self = shared_from_this(), conn = conn_](
                                     beast::error_code ec, size_t) { self->on_write(ec); }));
  }

  void on_write(beast::error_code ec) {
    if (finished_) return;
    if (ec) return lost(ec, false);
    parser_.emplace();
    parser_->body_limit(impl_.options.max_response_bytes);
    parser_->header_limit(
        static_cast<uint32_t>(std::min<size_t>(impl_.options.max_response_bytes, 64u << 10)));
    if (req_.method == "HEAD") parser_->skip(true);
    // The header first: Boost 1.74's parser does not always enforce
    // body_limit against a Content-Length, so the client checks it itself.
    bhttp::async_read_header(conn_->socket, conn_->buffer, *parser_,
                             on_strand([self = shared_from_this(), conn = conn_](
                                           beast::error_code ec, size_t) { self->on_header(ec); }));
  }

  void on_header(beast::error_code ec) {
    if (finished_) return;
    if (ec) return lost(ec, true);
    if (auto length = parser_->content_length();
        length && *length > impl_.options.max_response_bytes) {
      return lost(bhttp::error::body_limit, true);
    }
    bhttp::async_read(conn_->socket, conn_->buffer, *parser_,
                      on_strand([self = shared_from_this(), conn = conn_](
                                    beast::error_code ec, size_t) { self->on_read(ec); }));
  }

  // The connection failed while sending or before a whole response came.
  void lost(beast::error_code ec, bool reading) {
    bool got_nothing = !reading || !parser_ || !parser_->got_some();
    impl_.pool_release(key_, std::move(conn_), false);
    if (!fresh_ && got_nothing && !fresh_only_) {
      // A reused connection the server had closed while it sat idle. Every
      // request carries an idempotency key, so sending it again on a new
      // connection is safe; once only.
      fresh_only_ = true;
      return acquire_connection();
    }
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit ||
        ec == bhttp::error::buffer_overflow) {
      return finish(failure("error", fmt::format("{}: the response exceeds the limit of {} bytes",
                                                 req_.what, impl_.options.max_response_bytes)));
    }
    bool transport = ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
                     ec == net::error::eof || ec == net::error::connection_reset ||
                     ec == net::error::broken_pipe || ec == net::error::connection_aborted ||
                     ec.category() == net::error::get_system_category();
    if (!transport) {
      return finish(
          failure("error", fmt::format("{}: malformed response: {}", req_.what, ec.message())));
    }
    finish(failure("unavailable", fmt::format("{}: the connection {} ({})", req_.what,
                                              reading ? (got_nothing ? "closed before a response"
                                                                     : "broke during the response")
                                                      : "failed while sending the request",
                                              ec.message())));
  }

  void on_read(beast::error_code ec) {
    if (finished_) return;
    if (ec) return lost(ec, true);
    if (parser_->get().body().size() > impl_.options.max_response_bytes) {
      return lost(bhttp::error::body_limit, true);
    }
    bool keep_alive = parser_->keep_alive();
    auto response = parser_->release();
    parser_.reset();
    impl_.pool_release(key_, std::move(conn_), keep_alive);
    std::string_view retry_after;
    if (auto it = response.find(bhttp::field::retry_after); it != response.end()) {
      retry_after = std::string_view(it->value().data(), it->value().size());
    }
    auto reason = response.reason();
    answered_ = true;
    if (req_.any_2xx && response.result_int() / 100 == 2) {
      ServiceOutcome accepted;
      accepted.ok = true;
      return finish(std::move(accepted));
    }
    finish(http::classify_response(static_cast<int>(response.result_int()),
                                   std::string_view(reason.data(), reason.size()), response.body(),
                                   retry_after, system_now_ms(), req_.what));
  }

  void on_deadline() {
    if (finished_) return;
    switch (phase_) {
      case Phase::kQueued:
        // When the slot was granted meanwhile, on_slot() sees finished_ and
        // gives it back.
        req_.state->bulkhead->cancel(ticket_);
        break;
      case Phase::kPool:
        impl_.pool_cancel(key_, ticket_);  // Else on_grant() gives it back.
        break;
      case Phase::kResolve:
        resolver_.cancel();
        impl_.pool_release(key_, std::move(conn_), false);
        break;
      case Phase::kConnect:
      case Phase::kExchange:
        // Closing cancels the pending operation; its handler sees finished_.
        impl_.pool_release(key_, std::move(conn_), false);
        break;
    }
    ServiceOutcome out =
        failure("timeout", fmt::format("{}: no answer within {}ms{}", req_.what, req_.timeout_ms,
                                       phase_ == Phase::kQueued ? " (waiting in the bulkhead queue)"
                                       : phase_ == Phase::kPool ? " (waiting for a connection)"
                                                                : ""));
    // Before the exchange began, nothing of the request was written.
    out.not_sent = phase_ != Phase::kExchange;
    finish(std::move(out));
  }

  // Ends the attempt: frees the bulkhead slot, tells the breaker, calls done.
  void finish(ServiceOutcome outcome) {
    if (finished_) return;
    finished_ = true;
    deadline_.cancel();
    connect_timer_.cancel();
    release_slot();
    if (req_.state && req_.state->breaker) {
      http::CircuitBreaker& breaker = *req_.state->breaker;
      bool failed =
          !outcome.ok && (outcome.error_class == "timeout" || outcome.error_class == "unavailable");
      if (answered_ && !failed) {
        breaker.on_success(req_.probe);  // The service answered: it is up.
      } else if (failed && phase_ >= Phase::kResolve) {
        breaker.on_failure(req_.probe);
      } else {
        breaker.release(req_.probe);  // Never reached the service.
      }
    }
    --impl_.in_flight;
    auto done = std::move(req_.done);
    done(std::move(outcome));
  }

  HttpClient::Impl& impl_;
  Request req_;
  std::string key_;
  net::strand<net::io_context::executor_type> strand_;
  net::steady_timer deadline_;
  net::steady_timer connect_timer_;
  tcp::resolver resolver_;
  Phase phase_ = Phase::kQueued;
  uint64_t ticket_ = 0;
  bool holds_slot_ = false;
  bool finished_ = false;
  bool fresh_ = false;
  bool fresh_only_ = false;
  bool connect_timed_out_ = false;
  bool answered_ = false;  // A complete response arrived.
  ConnPtr conn_;
  bhttp::request<bhttp::string_body> message_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
};

}  // namespace

void HttpClient::Impl::start(Request request) {
  if (stopped) {
    return request.done(not_sent("unavailable", "the HTTP client is shut down"));
  }
  ++in_flight;
  std::make_shared<Exchange>(*this, std::move(request))->start();
}

void HttpClient::Impl::shutdown() {
  if (stopped.exchange(true)) return;
  work.reset();
  io.stop();
  for (auto& t : threads) {
    if (!t.joinable()) continue;
    // Never join ourselves (a client released from one of its own callbacks).
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else {
      t.join();
    }
  }
  threads.clear();
  std::lock_guard lock(pool_mu);
  pools.clear();
}

// ---- HttpClient -------------------------------------------------------------------

HttpClient::HttpClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() {
  shutdown();
}

std::shared_ptr<HttpClient> HttpClient::create(HttpOptions options) {
  auto impl = std::make_shared<Impl>(std::move(options));
  impl->work.emplace(impl->io.get_executor());
  for (unsigned i = 0; i < impl->options.threads; ++i) {
    // Each thread holds the state it runs on: when the last HttpClient
    // reference is dropped on one of these threads (an engine destroyed from
    // a completion), shutdown() detaches it and the io_context outlives its
    // run() call.
    impl->threads.emplace_back([impl = std::weak_ptr<Impl>(impl)] {
      if (auto held = impl.lock()) {
        held->io.run();
      }
    });
  }
  return std::shared_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

void HttpClient::shutdown() {
  impl_->shutdown();
}

namespace {

// The correlation headers every request carries.
void add_saga_headers(std::vector<std::pair<std::string, std::string>>& headers,
                      const std::string& key, const std::string& instance, const std::string& step,
                      uint32_t attempt, bool compensation) {
  if (!key.empty()) headers.emplace_back("Idempotency-Key", key);
  if (!instance.empty()) headers.emplace_back("X-Saga-Instance", instance);
  if (!step.empty()) headers.emplace_back("X-Saga-Step", step);
  headers.emplace_back("X-Saga-Attempt", std::to_string(attempt));
  if (compensation) headers.emplace_back("X-Saga-Compensation", "true");
  headers.emplace_back("traceparent", http::traceparent(instance, step, attempt, compensation));
}

std::string format_seconds(int64_t ms) {
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
}

std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::optional<ServiceOutcome> HttpClient::Impl::set_body(Request& r,
                                                         const nlohmann::json& body) const {
  r.body = json_text(body);
  if (r.body->size() <= options.max_request_bytes) return std::nullopt;
  return failure("rejected",
                 fmt::format("{}: the request body of {} bytes exceeds the limit of {} bytes",
                             r.what, r.body->size(), options.max_request_bytes));
}

void HttpClient::Impl::call_service(const ServiceCall& call,
                                    std::function<void(ServiceOutcome)> done) {
  std::string error;
  auto url = http::parse_url(call.url, &error);
  if (!url) return done(failure("rejected", fmt::format("service {}: {}", call.service, error)));
  if (!host_allowed(*url)) {
    return done(failure("rejected",
                        fmt::format("host {} is not allowed (--allow-host)", url->authority())));
  }
  auto target = http::build_target(call, *url, &error);
  if (!target) return done(failure("rejected", error));
  Request r;
  r.service = call.service;
  r.url = *url;
  r.method = target->method;
  r.target = target->target;
  r.what = fmt::format("{} http://{}{}", r.method, url->authority(), r.target);
  if (!target->body.is_null()) {
    if (auto refused = set_body(r, target->body)) return done(std::move(*refused));
  }
  add_saga_headers(r.headers, call.idempotency_key, call.instance_id, call.step, call.attempt,
                   call.compensation);
  r.timeout_ms = call.timeout_ms > 0 ? call.timeout_ms : options.default_timeout_ms;
  r.state = service_state(call);
  if (r.state && r.state->breaker) {
    http::CircuitBreaker::Permit permit = r.state->breaker->acquire();
    if (!permit.allowed) {
      ServiceOutcome out =
          not_sent("unavailable",
                   permit.retry_after_ms > 0
                       ? fmt::format("circuit open for service {} (retry after {})", call.service,
                                     format_seconds(permit.retry_after_ms))
                       : fmt::format("circuit open for service {} (half-open: probes in progress)",
                                     call.service));
      out.retry_after_ms = permit.retry_after_ms;
      return done(std::move(out));
    }
    r.probe = permit.probe;
  }
  r.done = std::move(done);
  start(std::move(r));
}

void HttpClient::Impl::call_action(const std::string& method, const ActionCall& call,
                                   Completion completion) {
  auto done = [completion](ServiceOutcome out) { completion.finish(std::move(out)); };
  const nlohmann::json& args = call.args;
  if (!args.is_object() || !args.contains("url") || !args["url"].is_string()) {
    return done(failure("rejected", fmt::format("{}: 'url' must be a string", call.action)));
  }
  std::string error;
  auto url = http::parse_url(args["url"].get<std::string>(), &error);
  if (!url) return done(failure("rejected", fmt::format("{}: {}", call.action, error)));
  if (!host_allowed(*url)) {
    return done(failure("rejected",
                        fmt::format("host {} is not allowed (--allow-host)", url->authority())));
  }
  Request r;
  r.url = *url;
  r.method = method;
  r.target = url->path.empty() ? "/" : url->path;
  if (!url->query.empty()) r.target += "?" + url->query;
  r.what = fmt::format("{} http://{}{}", method, url->authority(), r.target);
  if ((method == "POST" || method == "PUT") && args.contains("body") && !args["body"].is_null()) {
    if (auto refused = set_body(r, args["body"])) return done(std::move(*refused));
  }
  add_saga_headers(r.headers, call.idempotency_key, call.instance_id, call.step, call.attempt,
                   call.compensation);
  if (args.contains("headers") && !args["headers"].is_null()) {
    if (!args["headers"].is_object()) {
      return done(failure("rejected",
                          fmt::format("{}: 'headers' must be an object of strings", call.action)));
    }
    for (const auto& [name, value] : args["headers"].items()) {
      // Framing headers are the client's: a wrong one would corrupt the stream.
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "host" || lower == "content-length" || lower == "transfer-encoding" ||
          lower == "connection") {
        return done(failure("rejected", fmt::format("{}: the header '{}' is set by the client",
                                                    call.action, name)));
      }
      std::string text = http::arg_text(value);
      if (text.find_first_of("\r\n") != std::string::npos ||
          name.find_first_of("\r\n: ") != std::string::npos || name.empty()) {
        return done(failure("rejected",
                            fmt::format("{}: the header '{}' is not valid", call.action, name)));
      }
      r.headers.emplace_back(name, std::move(text));
    }
  }
  // The attempt's timeout, so that the request gives up when the engine
  // does; without one, the client's default.
  r.timeout_ms = call.timeout_ms > 0 ? call.timeout_ms : options.default_timeout_ms;
  r.done = std::move(done);
  start(std::move(r));
}

std::function<void(const std::string& url, const std::string& body,
                   std::function<void(ServiceOutcome)> done)>
HttpClient::event_sender() {
  std::shared_ptr<HttpClient> self = shared_from_this();
  return [self](const std::string& url_text, const std::string& body,
                std::function<void(ServiceOutcome)> done) {
    Impl& impl = *self->impl_;
    std::string error;
    auto url = http::parse_url(url_text, &error);
    if (!url) return done(failure("rejected", fmt::format("sink {}: {}", url_text, error)));
    if (!impl.host_allowed(*url)) {
      return done(failure("rejected",
                          fmt::format("host {} is not allowed (--allow-host)", url->authority())));
    }
    if (body.size() > impl.options.max_request_bytes) {
      return done(failure("rejected", fmt::format("event of {} bytes exceeds the limit of {} bytes",
                                                  body.size(), impl.options.max_request_bytes)));
    }
    Request r;
    r.url = *url;
    r.method = "POST";
    r.target = url->path.empty() ? "/" : url->path;
    if (!url->query.empty()) r.target += "?" + url->query;
    r.what = fmt::format("POST http://{}{}", url->authority(), r.target);
    r.body = body;
    r.content_type = "application/cloudevents+json";
    r.any_2xx = true;
    r.timeout_ms = impl.options.default_timeout_ms;
    r.done = std::move(done);
    impl.start(std::move(r));
  };
}

ServiceTransport HttpClient::transport() {
  // The transport keeps the client (and so its threads) alive.
  std::shared_ptr<HttpClient> self = shared_from_this();
  return [self](const ServiceCall& call, std::function<void(ServiceOutcome)> done) {
    self->impl_->call_service(call, std::move(done));
  };
}

void HttpClient::register_stdlib_actions(Engine& engine) {
  std::shared_ptr<HttpClient> self = shared_from_this();
  for (const char* method : {"GET", "POST", "PUT", "DELETE"}) {
    std::string name = "http.";
    for (const char* c = method; *c; ++c) {
      name += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    }
    engine.register_async_action(
        name, [self, method = std::string(method)](const ActionCall& call, Completion done) {
          self->impl_->call_action(method, call, std::move(done));
        });
  }
}

nlohmann::json HttpClient::breaker_states() const {
  nlohmann::json out = nlohmann::json::object();
  std::lock_guard lock(impl_->services_mu);
  for (const auto& [name, state] : impl_->services) {
    nlohmann::json entry = nlohmann::json::object();
    if (state->breaker) entry["breaker"] = state->breaker->snapshot();
    if (state->bulkhead) entry["bulkhead"] = state->bulkhead->snapshot();
    out[name] = std::move(entry);
  }
  return out;
}

nlohmann::json HttpClient::stats() const {
  return {{"requests", impl_->requests.load()},
          {"connections_opened", impl_->opened.load()},
          {"connections_reused", impl_->reused.load()},
          {"in_flight", impl_->in_flight.load()}};
}

}  // namespace saga
