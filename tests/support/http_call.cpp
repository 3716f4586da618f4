// tests/support/http_call.hpp over Beast: one synchronous request at a time
// on a socket kept open while the server keeps the connection alive.
#include "tests/support/http_call.hpp"

#include <cctype>

#include "runtime/http/beast.hpp"

namespace saga::test {

struct HttpConnection::Socket {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket{io};
};

HttpConnection::HttpConnection(int port) : port_(port), socket_(std::make_unique<Socket>()) {}

HttpConnection::~HttpConnection() = default;

bool HttpConnection::open() const { return socket_->socket.is_open(); }

HttpReply HttpConnection::call(const std::string& method, const std::string& target,
                               const std::string& body,
                               const std::map<std::string, std::string>& headers) {
  namespace bhttp = boost::beast::http;
  auto& socket = socket_->socket;
  HttpReply reply;
  boost::beast::error_code ec;
  if (!socket.is_open()) {
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)}, ec);
    if (ec) {
      reply.body = ec.message();
      return reply;
    }
  }
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), target, 11);
  req.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port_));
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || method == "POST") {
    if (!headers.contains("Content-Type")) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  bhttp::write(socket, req, ec);
  boost::beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64u << 20);
  if (method == "HEAD") parser.skip(true);
  if (!ec) bhttp::read(socket, buffer, parser, ec);
  if (ec) {
    reply.body = ec.message();
    socket.close(ec);
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
  if (!res.keep_alive()) socket.close(ec);
  return reply;
}

HttpReply http_call(int port, const std::string& method, const std::string& target,
                    const std::string& body, const std::map<std::string, std::string>& headers) {
  HttpConnection c(port);
  return c.call(method, target, body, headers);
}

}  // namespace saga::test
