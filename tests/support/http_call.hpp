// A blocking HTTP/1.1 request to 127.0.0.1 for tests and benchmarks that
// talk to a server they started (the listener, chromedriver): one connection
// per call unless a Connection is reused. Beast is compiled once, in
// http_call.cpp (library saga_test_http), not in every program that calls.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace saga::test {

struct HttpReply {
  int status = 0;                              // 0: no answer (the error is in `body`).
  std::map<std::string, std::string> headers;  // Names in lower case.
  std::string body;
};

// One connection to 127.0.0.1:port, kept open across calls (keep-alive).
class HttpConnection {
 public:
  explicit HttpConnection(int port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // POST (and any call with a body) defaults to Content-Type
  // application/json unless `headers` has one.
  HttpReply call(const std::string& method, const std::string& target, const std::string& body = {},
                 const std::map<std::string, std::string>& headers = {});

  bool open() const;

 private:
  struct Socket;
  int port_;
  std::unique_ptr<Socket> socket_;
};

HttpReply http_call(int port, const std::string& method, const std::string& target,
                    const std::string& body = {},
                    const std::map<std::string, std::string>& headers = {});

}  // namespace saga::test
