// Events out: the relay of the transactional outbox (docs/events.md).
//
// Invariant: a row of the outbox (saga/store.hpp, OutboxEvent) is delivered
// at least once, and an instance's rows are delivered in seq order: a row
// is sent only after every earlier row of its instance was accepted (a 2xx)
// or became a dead letter. A row leaves the relay's hands only through the
// store (Store::settle_outbox), so a relay killed at any point leaves every
// row claimable again once its claim's lease runs out: nothing is lost, at
// worst a row is sent twice, with the same id, for the receiver to drop.
//
// The relay is transport-agnostic: it hands each CloudEvent to an
// EventSender (HttpClient::event_sender() POSTs it). It runs on a thread of
// its own and touches only the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "saga/engine.hpp"
#include "saga/store.hpp"

namespace saga {

// The event types of notifications (EngineOptions::notify_operators).
inline constexpr const char* kPausedEventType = "saga.instance.paused";
inline constexpr const char* kStuckEventType = "saga.instance.stuck";

// The CloudEvents `source` of an instance's events: "/sagas/NAME/instances/ID".
std::string event_source(const std::string& saga, const std::string& instance_id);

// A stable event id (32 hex digits): the same instance and position give
// the same id, as idempotency keys do.
std::string outbox_event_id(const std::string& instance_id, std::string_view position);

// The notification (EngineOptions::notify_operators) that instance `instance_id` of
// saga `saga` became `status` (paused or stuck), as `cause` (its `paused` or
// `stuck` history event) says: type saga.instance.paused or
// saga.instance.stuck, data {"saga", "instance", "status", "step",
// "attempt", "error_class", "error"}, id derived from instance, type and
// the event's time.
OutboxEvent notice_event(const std::string& saga, const std::string& instance_id,
                         InstanceStatus status, const HistoryEvent& cause);

// The CloudEvents 1.0 structured-mode JSON text of a row: specversion "1.0",
// id, source, type, time (RFC 3339, UTC, milliseconds), datacontenttype
// "application/json", data (the row's JSON, null when it has none), and the
// extension attribute `sagaseq` (the row's seq within its instance).
std::string cloud_event_json(const OutboxEvent& event);

// Sends one event: POSTs `body` (a structured-mode CloudEvent) to `url` and
// calls `done` exactly once, from any thread, with how it went (ok for a
// 2xx; error_class and message otherwise; retry_after_ms from Retry-After).
using EventSender = std::function<void(const std::string& url, const std::string& body,
                                       std::function<void(ServiceOutcome)> done)>;

struct RelayOptions {
  // Where each event type goes: "order.placed" -> "http://127.0.0.1:8085/events".
  // A row of a type with no sink becomes a dead letter at once ("no sink for
  // event type X"), visible in `sagactl outbox ls --dead`.
  std::map<std::string, std::string> sinks;
  EventSender sender;
  // Who claims the rows (Store::claim_outbox); unique per relay process.
  std::string owner = "relay";
  // Rows claimed per round; an instance contributes at most one.
  size_t batch = 256;
  // How long a claim holds: longer than a delivery can take (the sender's
  // timeout). A relay killed mid-delivery leaves its rows to others after it.
  std::chrono::milliseconds lease{60'000};
  // How often the relay looks for due rows when the last round found none.
  std::chrono::milliseconds poll{50};
  // The retry policy of a delivery: `attempts` in all, capped exponential
  // backoff (initial, factor, max; a Retry-After is honoured when longer);
  // then the row is dead.
  uint32_t attempts = 10;
  int64_t initial_backoff_ms = 200;
  double factor = 2.0;
  int64_t max_backoff_ms = 60'000;
  // Delivered rows are deleted once they are this old (checked every
  // prune_every). Zero: at once.
  std::chrono::milliseconds keep_delivered{std::chrono::hours(1)};
  std::chrono::milliseconds prune_every{std::chrono::seconds(10)};
  // Milliseconds since the Unix epoch. Null: the system clock.
  std::function<int64_t()> now_ms;
  // Lines for the process log (dead letters, store errors). Null: silent.
  std::function<void(const std::string& line)> log;
};

struct RelayStats {
  uint64_t delivered = 0;
  uint64_t failed_attempts = 0;
  uint64_t dead = 0;
  uint64_t pruned = 0;
};

class Relay {
 public:
  // Starts the relay's thread on `store`, which must outlive it.
  Relay(Store& store, RelayOptions options);
  // Calls stop().
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Makes the next round start now instead of after `poll`.
  void wake();
  // Waits for the deliveries in flight to end (recording how they went),
  // then ends the thread. Idempotent.
  void stop();
  RelayStats stats() const;

  // The delay before attempt `attempts + 1` of a row that failed `attempts`
  // times (1, 2, ...): initial * factor^(attempts - 1), at most max.
  static int64_t backoff_ms(const RelayOptions& options, uint32_t attempts);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace saga
