// In-process stand-ins for the three services of samples/order.saga
// (inventory, payment, shipping), for the sample host application in
// samples/shop and the crash test in tests/crash.
//
// They behave like careful real participants: every effect is recorded in the
// participants' own SQLite file (the "ledger", another system than the engine's
// database) under the call's idempotency key, so a repeated call returns the
// first answer instead of acting twice, and an undo marks the effect it undoes.
// They answer asynchronously from a worker thread after a configurable delay,
// so slow services never block the engine's threads, and they can be told to
// fail: before the effect (nothing happened) or after it (the effect happened
// but the answer was lost: the caller is in doubt).
//
//   shop::Participants participants({.ledger_path = "orders.ledger", .slow_ms = 20});
//   participants.register_actions(*engine);
//   ...                  // run sagas
//   participants.stop();  // before the engine is destroyed
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "saga/engine.hpp"

namespace shop {

// FNV-1a: a hash that is the same in every run and every build (unlike
// std::hash), for draws that a seed must make repeatable.
inline uint64_t stable_hash(std::string_view text, uint64_t seed) {
  uint64_t h = 14695981039346656037ull ^ seed;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// What a participant does with one call. Decided per call by a Planner, after
// the call's delay, so a planner may look at anything the call carries.
struct Plan {
  enum class Outcome {
    kOk,                // Apply the effect and answer.
    kFailBeforeEffect,  // Answer with `error_class`; nothing happened.
    kFailAfterEffect,   // Apply the effect, then answer with `error_class` (a lost reply).
  };
  Outcome outcome = Outcome::kOk;
  std::string error_class;  // "unavailable", "rejected", ...
  // shipping.express/standard only: answer status "refused" (the carrier
  // declined; the saga then fails with `rejected` and compensates).
  bool refuse_shipment = false;
  // A careless participant (the defect docs/http.md warns against): a call
  // whose key was applied before is answered `rejected` instead of with its
  // first response. For the crash test, which checks that such a step is
  // still compensated.
  bool reject_repeats = false;
};

// Decides the plan of a call. `order_id` is the order the call belongs to:
// the `order` argument when the call has one, else the order recorded by an
// earlier effect of the same instance ("" when none is known).
using Planner = std::function<Plan(const saga::ActionCall& call, const std::string& order_id)>;

// Counts over the whole ledger file (all processes that ever used it).
struct LedgerStats {
  int64_t effects = 0;       // Distinct do-effects applied.
  int64_t undone = 0;        // Of those, how many were undone.
  int64_t undos = 0;         // Distinct undo calls recorded (orphans included).
  int64_t orphan_undos = 0;  // Undos that found no effect to undo ("nothing to undo").
  int64_t deliveries = 0;    // Every call that reached a participant.
  int64_t deduplicated = 0;  // Calls answered from the ledger: their key was already applied.
  int64_t late_dos = 0;      // Do calls refused because their undo already ran.
};

// The participants' own database. One connection guarded by a mutex; WAL with
// synchronous=FULL, so a recorded effect survives kill -9 and power loss, as
// a real remote system's would. Tables:
//   effects(key PRIMARY KEY, action, order_id, instance, kind 'do'|'undo',
//           args, response, undone, time)  -- one row per idempotency key
//   orphans(key PRIMARY KEY, action, instance, time)  -- undos with nothing to undo
//   calls(key PRIMARY KEY, action, count, dedup)  -- deliveries per key
// The row id of `effects` grows with insertion order, so it orders effects.
class Ledger {
 public:
  // Opens or creates the file; throws std::runtime_error naming the path.
  explicit Ledger(const std::string& path);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // The answer a participant gives for a call.
  struct Answer {
    bool ok = true;
    nlohmann::json response;  // When ok.
    std::string error_class;  // When not ok.
    std::string message;
  };

  // Applies a do-effect once per idempotency key, in one transaction. When
  // the key was applied before, returns the first response (and counts a
  // deduplicated delivery). When the key's undo already ran (a late attempt
  // of an abandoned step), applies nothing and answers `rejected`.
  // `make_response` builds the response of a first application; `fail_after`
  // non-empty records the effect but answers with that error class;
  // `reject_repeats` answers a repeated key `rejected` (Plan::reject_repeats).
  Answer apply(const saga::ActionCall& call, const std::string& order_id,
               const std::function<nlohmann::json()>& make_response, const std::string& fail_after,
               bool reject_repeats = false);

  // Records an undo ("<instance>/<step>/undo") once per key: marks the effect
  // "<instance>/<step>" undone, or, when there is no such effect, succeeds
  // anyway ("nothing to undo") and records an orphan row.
  Answer undo(const saga::ActionCall& call);

  // Counts a delivery that failed before any effect (no other change).
  void count_failed_delivery(const saga::ActionCall& call);

  // The order of an instance, from the first effect recorded for it ("" if none).
  std::string order_of(const std::string& instance_id);

  LedgerStats stats();

  // The size of the ledger's WAL file now. It stays below about
  // kWalCheckpointPages pages however long the ledger is written: every
  // commit that leaves more checkpoints the WAL and truncates it to zero
  // (SQLite's automatic checkpoint only rewinds it, to be overwritten, so
  // a checkpoint starved by a reader for a while leaves a WAL file as large
  // as everything written meanwhile, for good).
  int64_t wal_bytes() const;
  static constexpr int kWalCheckpointPages = 1000;

 private:
  static constexpr int kBusyTimeoutMs = 5000;
  static int on_wal(void* self, sqlite3* db, const char* name, int pages);
  void exec(const char* sql);
  void count_delivery(const saga::ActionCall& call, bool deduplicated);
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

struct ParticipantOptions {
  std::string ledger_path;
  // Each call waits a delay drawn in [0, slow_ms] before it is answered.
  int slow_ms = 0;
  // Seeds the delays (a function of the key and attempt). The ids handed out
  // (reservations, receipts, shipments) are random in every process, so an
  // effect applied twice would show as two different ids.
  uint64_t seed = 1;
  // Null: every call succeeds.
  Planner planner;
};

// inventory.reserve/release, payment.charge/refund and
// shipping.express/standard/cancel, as asynchronous actions answered by one
// worker thread. Results are shaped as samples/order.saga expects:
// reservation {id}, receipt {id}, shipment {id, status, tracking}.
class Participants {
 public:
  explicit Participants(ParticipantOptions options);
  ~Participants();  // Calls stop().

  // Registers every action of samples/order.saga with the engine.
  void register_actions(saga::Engine& engine);

  // Stops the worker thread; calls still waiting are never answered (as if
  // the service went away). Call it before the engine is destroyed: an answer
  // must not reach an engine that is gone. Calls that arrive later are dropped.
  void stop();

  Ledger& ledger();

  struct State;

 private:
  std::shared_ptr<State> state_;  // Shared with the registered actions.
};

}  // namespace shop
