// A blocking HTTP/1.1 request to 127.0.0.1 for tests that talk to a server
// they started (the listener, chromedriver): one connection per call unless
// a Connection is reused. Beast stays in the test programs that include this.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "runtime/http/beast.hpp"

namespace saga::test {

struct HttpReply {
  int status = 0;                              // 0: no answer (the error is in `body`).
  std::map<std::string, std::string> headers;  // Names in lower case.
  std::string body;
};

// One connection to 127.0.0.1:port, kept open across calls (keep-alive).
class HttpConnection {
 public:
  explicit HttpConnection(int port) : port_(port) {}

  HttpReply call(const std::string& method, const std::string& target, const std::string& body = {},
                 const std::map<std::string, std::string>& headers = {}) {
    namespace bhttp = boost::beast::http;
    HttpReply reply;
    boost::beast::error_code ec;
    if (!socket_.is_open()) {
      socket_.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)},
                      ec);
      if (ec) {
        reply.body = ec.message();
        return reply;
      }
    }
    bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), target, 11);
    req.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port_));
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST") {
      if (!headers.contains("Content-Type"))
        req.set(bhttp::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    bhttp::write(socket_, req, ec);
    boost::beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64u << 20);
    if (method == "HEAD") parser.skip(true);
    if (!ec) bhttp::read(socket_, buffer, parser, ec);
    if (ec) {
      reply.body = ec.message();
      socket_.close(ec);
      return reply;
    }
    auto res = parser.release();
    reply.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(f.value());
    }
    reply.body = std::move(res.body());
    if (!res.keep_alive()) socket_.close(ec);
    return reply;
  }

  bool open() const { return socket_.is_open(); }

 private:
  int port_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_{io_};
};

inline HttpReply http_call(int port, const std::string& method, const std::string& target,
                           const std::string& body = {},
                           const std::map<std::string, std::string>& headers = {}) {
  HttpConnection c(port);
  return c.call(method, target, body, headers);
}

}  // namespace saga::test
