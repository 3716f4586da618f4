// Events out from sagactl (docs/events.md): the worker's relay (--sink,
// --notify) and `sagactl outbox ls`, the rows of the outbox with their
// delivery state (dead letters among them).
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>
#include <random>

#include "runtime/value/utf8.hpp"
#include "saga/outbox.hpp"
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
    auto eq = binding.find('=');
    if (eq == std::string::npos || eq == 0 || binding.compare(eq + 1, 7, "http://") != 0) {
      print_error(fmt::format("--sink wants TYPE=http://host:port/path, not '{}'", binding));
      return std::nullopt;
    }
    sinks[binding.substr(0, eq)] = binding.substr(eq + 1);  // A later one wins.
  }
  return sinks;
}

std::unique_ptr<Relay> start_relay(std::map<std::string, std::string> sinks, Store& store,
                                   HttpClient& http) {
  RelayOptions options;
  options.sinks = std::move(sinks);
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
  auto state = [](const OutboxEvent& e) {
    return e.dead ? "dead" : e.delivered_ms != 0 ? "delivered" : "pending";
  };
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const OutboxEvent& e : rows.value()) {
      nlohmann::json data = nlohmann::json::parse(e.data_json, nullptr, false);
      out.push_back({{"id", e.id},
                     {"instance", e.instance_id},
                     {"seq", e.seq},
                     {"type", e.type},
                     {"source", e.source},
                     {"time_ms", e.time_ms},
                     {"data", data.is_discarded() ? nlohmann::json(e.data_json) : data},
                     {"state", state(e)},
                     {"attempts", e.attempts},
                     {"next_due_ms", e.next_due_ms},
                     {"delivered_ms", e.delivered_ms},
                     {"last_error", e.last_error}});
    }
    std::cout << json_text(out) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<32}  {:<36}  {:>4}  {:<24}  {:<9}  {:>8}  {}\n", "ID", "INSTANCE",
                           "SEQ", "TYPE", "STATE", "ATTEMPTS", "LAST ERROR");
  for (const OutboxEvent& e : rows.value()) {
    std::cout << scrub_utf8(fmt::format("{:<32}  {:<36}  {:>4}  {:<24}  {:<9}  {:>8}  {}\n", e.id,
                                        e.instance_id, e.seq, e.type, state(e), e.attempts,
                                        e.last_error));
  }
  return kExitOk;
}

}  // namespace saga::cli
