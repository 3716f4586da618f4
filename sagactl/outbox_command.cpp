// Events out from sagactl (docs/events.md): the worker's relay (--sink,
// --notify) and `sagactl outbox ls`, the rows of the outbox with their
// delivery state (dead letters among them).
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>
#include <random>

#include "runtime/value/utf8.hpp"
#include "saga/outbox.hpp"
#include "saga/records_json.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/outbox_command.hpp"

namespace saga::cli {

void add_outbox_options(CLI::App* worker, OutboxArgs& args) {
  worker->add_option("--sink", args.sinks,
                     "Deliver events of TYPE to URL as CloudEvents (TYPE=URL; repeatable)");
  worker->add_option("--notify", args.notify,
                     "POST a CloudEvent to this URL when an instance becomes paused or stuck "
                     "(types saga.instance.paused, saga.instance.stuck)");
}

bool wants_relay(const OutboxArgs& args) {
  return !args.sinks.empty() || !args.notify.empty();
}

std::optional<std::map<std::string, std::string>> sink_map(const OutboxArgs& args) {
  std::map<std::string, std::string> sinks;
  if (!args.notify.empty()) {
    if (args.notify.rfind("http://", 0) != 0) {
      print_error(fmt::format("--notify wants an http:// URL, not '{}'", args.notify));
      return std::nullopt;
    }
    sinks[kPausedEventType] = args.notify;
    sinks[kStuckEventType] = args.notify;
  }
  for (const std::string& binding : args.sinks) {
    auto bound = url_binding(binding, "--sink", "TYPE=http://host:port/path");
    if (!bound) return std::nullopt;
    sinks[bound->first] = bound->second;  // A later one wins.
  }
  return sinks;
}

std::unique_ptr<Relay> start_relay(std::map<std::string, std::string> sinks, Store& store,
                                   HttpClient& http, std::chrono::milliseconds lease) {
  RelayOptions options;
  options.sinks = std::move(sinks);
  options.lease = lease;
  options.sender = http.event_sender();
  std::random_device rd;
  options.owner = fmt::format("relay-{}-{:x}", ::getpid(), rd());
  options.log = [](const std::string& line) { std::cerr << "sagactl: " << line << "\n"; };
  return std::make_unique<Relay>(store, std::move(options));
}

int outbox_ls(const DbArgs& args, const std::string& which, size_t limit) {
  OutboxQuery query;
  query.limit = limit;
  if (which == "dead") {
    query.which = OutboxQuery::Which::kDead;
  } else if (which == "pending") {
    query.which = OutboxQuery::Which::kPending;
  } else if (which == "delivered") {
    query.which = OutboxQuery::Which::kDelivered;
  }
  auto store = open_reader(args.db);
  if (!store) return kExitError;
  auto rows = store->list_outbox(query);
  if (!rows.ok()) {
    print_error(rows.status().message());
    return kExitError;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const OutboxEvent& e : rows.value()) out.push_back(records::outbox_event(e));
    std::cout << records::text(out);
    return kExitOk;
  }
  std::cout << fmt::format("{:<32}  {:<36}  {:>4}  {:<24}  {:<9}  {:>8}  {}\n", "ID", "INSTANCE",
                           "SEQ", "TYPE", "STATE", "ATTEMPTS", "LAST ERROR");
  for (const OutboxEvent& e : rows.value()) {
    std::cout << scrub_utf8(fmt::format("{:<32}  {:<36}  {:>4}  {:<24}  {:<9}  {:>8}  {}\n", e.id,
                                        e.instance_id, e.seq, e.type, delivery_state(e),
                                        e.attempts, e.last_error));
  }
  return kExitOk;
}

}  // namespace saga::cli
