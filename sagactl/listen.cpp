// `sagactl worker --listen`: the one listener of a worker process, and the
// one place where its routes are registered (listener_routes below).
#include "sagactl/listen.hpp"

#include <fmt/format.h>

#include <iostream>

#include "saga/web.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {

namespace {

// Every route the worker serves, in one place (#10 adds POST /events and
// POST /instances/{id}/signals/{name} beside the API).
serve::Router listener_routes(const web::Context& context, std::shared_ptr<Metrics> metrics) {
  serve::Router router;
  if (metrics) {
    router.add("GET", "/metrics", [metrics](const serve::Request&) {
      serve::Response response;
      response.content_type = Metrics::kContentType;
      response.body = metrics->scrape();
      return response;
    });
  }
  web::add_health_routes(router, context);
  web::add_api_routes(router, context);
  web::add_event_routes(router, context);
  web::add_signal_routes(router, context);
  web::add_web_routes(router, context);
  return router;
}

// The token in the file: its first line, surrounding whitespace removed.
std::optional<std::string> read_token(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return std::nullopt;
  std::string token = text->substr(0, text->find('\n'));
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) {
    token.erase(token.begin());
  }
  if (token.empty()) {
    print_error(
        fmt::format("--admin-token-file {}: the file is empty (put the token on its "
                    "first line)",
                    path));
    return std::nullopt;
  }
  return token;
}

}  // namespace

std::unique_ptr<serve::Server> start_listener(const ListenArgs& args, Engine& engine,
                                              std::shared_ptr<Metrics> metrics,
                                              std::function<std::string()> not_ready, int& exit) {
  auto address = serve::parse_listen_address(args.listen);
  if (!address.ok()) {
    print_error(address.status().message());
    exit = kExitUsage;
    return nullptr;
  }
  serve::ServerOptions options;
  options.host = address->first;
  options.port = address->second;
  options.access.public_reads = args.public_reads;
  if (args.public_reads && args.token_file.empty()) {
    print_error(
        "--public-read opens reads that only a token closes: without --admin-token-file reads "
        "are open already");
    exit = kExitUsage;
    return nullptr;
  }
  if (!serve::is_loopback_host(options.host) && args.token_file.empty()) {
    print_error(fmt::format(
        "--listen {}: listening beyond this machine needs --admin-token-file (every action "
        "would be open to the network otherwise)",
        args.listen));
    exit = kExitUsage;
    return nullptr;
  }
  if (!args.token_file.empty()) {
    auto token = read_token(args.token_file);
    if (!token) {
      exit = kExitError;
      return nullptr;
    }
    options.access.token = std::move(*token);
  }
  web::Context context;
  context.store = &engine.store();
  context.engine = &engine;
  context.not_ready = std::move(not_ready);
  context.token_configured = !options.access.token.empty();
  auto server = serve::Server::start(options, listener_routes(context, std::move(metrics)));
  if (!server.ok()) {
    print_error(server.status().message());
    exit = kExitError;
    return nullptr;
  }
  const bool v6 = options.host.find(':') != std::string::npos;
  std::cerr << fmt::format("sagactl: listening on http://{}{}{}:{}/\n", v6 ? "[" : "", options.host,
                           v6 ? "]" : "", server.value()->port());
  exit = kExitOk;
  return std::move(server).value();
}

}  // namespace saga::cli
