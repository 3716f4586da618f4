// The HTTP/1.1 server of saga/serve.hpp on Boost.Beast: one io_context on one
// thread, one session per connection (keep-alive, one request at a time),
// header and body size limits, a deadline for each request and response.
// A request goes through the access rule, then the router; the response is
// written and the connection kept unless the client or HTTP/1.0 said close.
// stop() closes the acceptor and every open connection, then joins the thread.
#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/http/beast.hpp"
#include "saga/serve.hpp"

namespace saga::serve {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

class Session;

}  // namespace

struct Server::Impl {
  ServerOptions options;
  Router router;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  uint16_t port = 0;
  std::atomic<bool> stopped{false};
  // Open sessions, so that stop() can close them (touched on the io thread only).
  std::set<std::shared_ptr<Session>> sessions;

  void accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    loopback_ = !ec && peer.address().is_loopback();
    if (!ec && peer.address().is_v6() && peer.address().to_v6().is_v4_mapped()) {
      loopback_ = peer.address().to_v6().to_v4().is_loopback();
    }
  }

  void run() { read(); }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    stream_.expires_after(std::chrono::milliseconds(server_.options.timeout_ms));
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || server_.stopped) {
      return finish();
    }
    if (ec == bhttp::error::body_limit) {
      return reply_error(413, fmt::format("the request body is larger than {} bytes",
                                          server_.options.max_body_bytes));
    }
    if (ec == bhttp::error::header_limit) {
      return reply_error(431, "the request headers are too large");
    }
    if (ec) return reply_error(400, fmt::format("bad request: {}", ec.message()));
    bhttp::request<bhttp::string_body> req = parser_->release();
    Response response = handle(req);
    send(std::move(response), req.version(), req.keep_alive(), req.method() == bhttp::verb::head);
  }

  Response handle(const bhttp::request<bhttp::string_body>& req) {
    Request r;
    r.method = std::string(req.method_string());
    const std::string target(req.target());
    size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string_view::npos) {
      auto query = parse_form(std::string_view(target).substr(q + 1));
      if (!query) return error_response(400, "the query has a malformed %-escape");
      r.query = std::move(*query);
    }
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(field.value());
    }
    r.body = req.body();
    r.peer_loopback = loopback_;
    if (auto refused = check_access(server_.options.access, r)) return std::move(*refused);
    try {
      return server_.router.dispatch(r);
    } catch (const std::exception& e) {
      return error_response(500, fmt::format("internal error: {}", e.what()));
    }
  }

  void reply_error(int status, const std::string& message) {
    send(error_response(status, message), 11, false, false);
  }

  void send(Response response, unsigned version, bool keep_alive, bool head) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), version);
    res->set(bhttp::field::server, "sagactl");
    res->set(bhttp::field::content_type, response.content_type);
    res->set(bhttp::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    for (auto& [name, value] : response.headers) res->insert(name, value);
    res->keep_alive(keep_alive && !server_.stopped);
    res->body() = std::move(response.body);
    res->prepare_payload();  // Content-Length of the body, also for HEAD.
    if (head) res->body().clear();
    stream_.expires_after(std::chrono::milliseconds(server_.options.timeout_ms));
    auto self = shared_from_this();
    bhttp::async_write(stream_, *res, [self, res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->finish();
      self->read();
    });
  }

  void finish() {
    close();
    server_.sessions.erase(shared_from_this());
  }

  Server::Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool loopback_ = false;
};

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec || stopped) return;
    if (sessions.size() >= options.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      auto s = std::make_shared<Session>(*this, std::move(socket));
      sessions.insert(s);
      s->run();
    }
    accept();
  });
}

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, Router router) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->router = std::move(router);
  beast::error_code ec;
  auto address = net::ip::make_address(impl->options.host, ec);
  if (ec) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("cannot listen on '{}': not an IP address", impl->options.host));
  }
  tcp::endpoint endpoint(address, impl->options.port);
  auto fail = [&](const char* what) {
    return Status(
        StatusCode::kIoError,
        fmt::format("cannot listen on {}: {} ({})",
                    address.is_v6() ? fmt::format("[{}]:{}", impl->options.host, impl->options.port)
                                    : fmt::format("{}:{}", impl->options.host, impl->options.port),
                    ec.message(), what));
  };
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("socket");
  impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  impl->port = impl->acceptor.local_endpoint().port();
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
}

uint16_t Server::port() const {
  return impl_->port;
}

void Server::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  Impl* impl = impl_.get();
  net::post(impl->io, [impl] {
    beast::error_code ec;
    impl->acceptor.close(ec);
    // Closing a session erases it from the set; close from a copy.
    auto open = impl->sessions;
    for (const auto& s : open) s->close();
    impl->sessions.clear();
  });
  if (impl->thread.joinable()) impl->thread.join();
}

}  // namespace saga::serve
