// The durable store: the only state of a Saga deployment.
//
// The engine describes every change of an instance as a Transition and hands it
// to Store::submit(). A store commits transitions from many instances together
// (group commit) and calls each transition's completion only after the commit
// is durable at the configured level; the engine never invokes an instance's
// next action before that call. Delete the process, keep the database, and
// everything resumes from the last committed checkpoint.
//
// The interface is deliberately narrow (programs, instances, history, dead
// letters, timers as a due time on the instance row): the SQLite store (one
// file, the embedded default) and the PostgreSQL store (many workers on one
// database, docs/scale-out.md) implement it, and open_store() picks one from
// a URL. Nothing outside runtime/store opens a database directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "saga/status.hpp"

namespace saga {

// Lifecycle of an instance. Terminal: completed, compensated, failed,
// cancelled. `stuck` (a compensation exhausted its policy; see the dead
// letters) and `paused` (an operator paused it) wait for an operator: no
// engine runs them until a message in their inbox asks for it.
enum class InstanceStatus : uint8_t {
  kPending = 0,  // Recorded (sagactl start) but not yet picked up by a worker.
  kRunning = 1,
  kCompensating = 2,
  kCompleted = 3,
  kCompensated = 4,
  kFailed = 5,  // Failed before any step had an effect: nothing to compensate.
  kStuck = 6,
  kCancelled = 7,  // Cancelled before any step had an effect.
  kPaused = 8,     // Waits for an operator (sagactl unpause, retry, skip, compensate).
};

const char* to_string(InstanceStatus s);
// Every status, in numeric order (the status table of status_names.cpp): for
// those who list them all (metrics label values, help texts).
const std::vector<InstanceStatus>& all_statuses();
std::optional<InstanceStatus> parse_status(std::string_view text);
// The status a number stored in a database stands for; nullopt for one
// this build does not know (a damaged row, or a newer build's status).
std::optional<InstanceStatus> status_of_code(int64_t code);
bool is_terminal(InstanceStatus s);
// Stuck or paused: not terminal, but no engine runs it until an operator's
// message arrives.
bool waits_for_operator(InstanceStatus s);

// A message in an instance's durable inbox: everything that reaches an
// instance from outside (a cancel, an operator's command). Posted by anyone
// (Store::post, from any process); read with the instance's row; consumed
// by the engine that runs the instance in the same transaction as the
// transition that acts on it (Transition::consumed), so a message is acted
// on once, never lost, never seen again after a crash. Consumed messages
// are kept (marked) for the record.
struct InboxMessage {
  std::string id;            // Unique in the database (the poster chooses it: a UUIDv7).
  std::string instance_id;   // Whose inbox.
  std::string kind;          // "cancel", or an operator command (saga/commands.def).
  std::string payload_json;  // Compact JSON object, or empty.
  int64_t posted_ms = 0;
  int64_t seq = 0;  // Set by post(): increases with every post to the database.
  bool operator==(const InboxMessage&) const = default;
};

// The checkpoint of one child fiber of an instance (a branch or loop
// iteration that runs now), opaque to the store like the instance's own. In
// a Transition an empty `state` deletes the fiber.
struct FiberRow {
  uint32_t fiber = 0;
  std::string state;
  bool operator==(const FiberRow&) const = default;
};

// A fiber of an instance that waits at an `await event TYPE where ...`
// (docs/events.md, "Awaiting an event"), one per type it awaits: what
// record_event() looks for.
// `match_json` is the await's `where` as the engine evaluated it, opaque to
// the store: the engine's EventDelivery::fits reads it.
struct EventWait {
  uint32_t fiber = 0;
  std::string type;
  std::string match_json;
  bool operator==(const EventWait&) const = default;
};

// How record_event() hands an event to the instances that await it: each
// stored EventWait of the event's type whose match `fits` the event gets it
// as one inbox message (`kind`, `payload_json`), one per instance however
// many of its fibers wait, with the id "event-SEQ-INSTANCE" (the event's
// seq), in the event's one transaction.
struct EventDelivery {
  std::function<bool(std::string_view match_json)> fits;  // Null: nothing awaits it.
  std::string kind;
  std::string payload_json;
  // The message that hands the event recorded at `event_seq` to `instance`.
  InboxMessage message(int64_t event_seq, const std::string& instance, int64_t posted_ms) const {
    return {"event-" + std::to_string(event_seq) + "-" + instance,
            instance,
            kind,
            payload_json,
            posted_ms,
            0};
  }
};

// The row of one instance. `checkpoint` is opaque to the store: the engine's
// compact binary snapshot (pc, stack, variables, compensation stack, retry
// state) of the instance and its root fiber; `fibers` those of its other
// fibers. Times are milliseconds since the Unix epoch.
struct InstanceRecord {
  std::string id;            // Unique, chosen by the engine (a UUIDv7).
  std::string program_hash;  // 32 hex digits; the instance is pinned to it.
  std::string saga;          // Saga name inside the program.
  InstanceStatus status = InstanceStatus::kPending;
  std::string input_json;
  std::string output_json;  // Empty until completed.
  std::string error_class;  // Why it failed, when it did.
  std::string error_message;
  std::string checkpoint;
  int64_t wake_at_ms = 0;  // A durable timer or backoff: resume no earlier than this. 0 = none.
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // The engine that runs the instance, and until when its claim holds
  // (renewed while it runs). Written when the row is created and by claim()
  // and renew(); transitions never change them.
  std::string owner;
  int64_t lease_until_ms = 0;
  // Read with the row (get_instance, list_unfinished, claim); written only
  // through Transition::fibers.
  std::vector<FiberRow> fibers;
  // The messages not consumed yet, in post order. Read with the row
  // (get_instance, list_unfinished, claim); written only by Store::post and
  // Transition::consumed.
  std::vector<InboxMessage> inbox;
};

// One line of an instance's history: what happened, when, at which step.
struct HistoryEvent {
  int64_t time_ms = 0;
  std::string kind;      // "started", "step_started", "attempt_failed", "step_completed",
                         // "compensating", "undo_completed", "completed", "failed", ...
  std::string step;      // Empty for saga-level events.
  uint32_t attempt = 0;  // 1-based; 0 when not about an attempt.
  std::string error_class;
  std::string message;
  std::string data_json;  // Optional detail (result, arguments), compact JSON.
};

// A compensation that exhausted its policy: kept until an operator acts,
// and after (resolved, when the operator retried or skipped it).
struct DeadLetter {
  std::string instance_id;
  std::string step;
  int64_t time_ms = 0;
  std::string error_class;
  std::string message;
  int64_t resolved_ms = 0;  // 0 while unresolved (Transition::resolve_dead_letters).
};

// A dead letter with what a listing across instances shows beside it.
struct DeadLetterEntry {
  DeadLetter letter;
  std::string saga;
  InstanceStatus status = InstanceStatus::kStuck;  // Of the instance, now.
  uint32_t attempts = 0;  // Of the undo that gave up (its `stuck` event); 0 when unknown.
};

// An event an instance tells the world (docs/events.md): a row of the
// transactional outbox, written in the same transaction as the transition
// that produced it (Transition::outbox), so an event exists exactly when its
// transition committed. A relay (saga/outbox.hpp) delivers the rows of an
// instance in `seq` order, at least once; `id` is stable (the same
// instance and position give the same id across a crash and a replay), so a
// receiver deduplicates by it.
struct OutboxEvent {
  std::string id;           // Stable: derived from instance and position (outbox_event_id).
  std::string instance_id;  // Whose event.
  int64_t seq = 0;          // Set by the store: 1, 2, ... per instance, in commit order.
  std::string type;         // "order.placed", "saga.instance.stuck".
  std::string source;       // "/sagas/NAME/instances/ID" (CloudEvents `source`).
  int64_t time_ms = 0;      // When the transition happened.
  std::string data_json;    // The payload, compact JSON ("" for none).
  // Delivery state, written by the relay (Store::settle_outbox); a new row
  // has attempts 0 and next_due_ms 0 (due at once).
  uint32_t attempts = 0;
  int64_t next_due_ms = 0;
  int64_t delivered_ms = 0;  // 0 until a sink accepted it.
  bool dead = false;         // Its retry policy is spent, or no sink takes its type.
  std::string last_error;    // Why the last attempt failed.
  bool operator==(const OutboxEvent&) const = default;
};

// An outbox row's delivery state as `sagactl outbox ls` names it.
inline const char* delivery_state(const OutboxEvent& e) {
  return e.dead ? "dead" : e.delivered_ms != 0 ? "delivered" : "pending";
}

// How a delivery attempt of an outbox row ended (Store::settle_outbox).
struct OutboxSettle {
  enum class Outcome : uint8_t { kDelivered, kRetry, kDead } outcome = Outcome::kDelivered;
  int64_t time_ms = 0;      // Delivered at, or when the attempt ended.
  int64_t next_due_ms = 0;  // kRetry: the next attempt no earlier than this.
  std::string error;        // kRetry, kDead: why.
};

// Which outbox rows list_outbox() returns, oldest first.
struct OutboxQuery {
  enum class Which : uint8_t { kAll, kPending, kDead, kDelivered } which = Which::kAll;
  std::string instance_id;  // Empty: any instance.
  size_t limit = 100;
};

// A stored program: its hash, the name it was stored under (the source file's),
// and when it was first stored.
struct ProgramInfo {
  std::string hash;
  std::string name;
  int64_t created_ms = 0;
};

// An incoming event (a CloudEvent, docs/events.md, "Events in") as the
// store keeps it. Events are deduplicated by (source, id): the first
// delivery is recorded together with the instances its triggers start, in
// one transaction (Store::record_event), and every later delivery of the
// same (source, id) finds it and starts nothing.
struct EventRecord {
  std::string source;
  std::string id;
  std::string type;
  std::string event_json;  // The whole event in structured form, compact JSON.
  int64_t received_ms = 0;
  bool matched = false;              // Some trigger of a served program names its type.
  std::vector<std::string> started;  // The instances it started, in trigger order.
  // The instances it was handed to (their awaits fit it), set by
  // record_event; an event that woke one counts as matched.
  std::vector<std::string> woke;
  // Why a matching trigger started nothing (its arguments could not be
  // read from the event, or the saga refused them); empty otherwise.
  std::string note;
  int64_t seq = 0;  // Set by record_event: increases with every event recorded.
  bool operator==(const EventRecord&) const = default;
};

// What record_event() did: recorded `event` (and created the instances),
// or found an event with the same (source, id) and wrote nothing; `event`
// is then the stored one.
struct RecordedEvent {
  EventRecord event;
  bool duplicate = false;
  // The messages that handed the event to the instances it woke (their
  // seq set), for the engine that runs one to take at once.
  std::vector<InboxMessage> handed;
};

// Which instances query_instances() returns: those matching every field set,
// newest first (created, then insertion order), at most `limit`.
struct InstanceQuery {
  std::optional<InstanceStatus> status;
  std::string saga;    // Empty: any saga.
  std::string before;  // An instance id (the cursor): only instances listed after it.
  size_t limit = 100;
};

// Everything one step of the engine changes, committed atomically.
struct Transition {
  InstanceRecord instance;  // The new row (all fields); created when `create` is set.
  bool create = false;
  // False when only fibers, history and a dead letter change (a branch's
  // step): the instance's row is then left as it is, and only
  // `instance.id` is read.
  bool write_instance = true;
  // Child fibers written (state set) or deleted (state empty). The engine
  // deletes a fiber when its block joins or compensation begins, so an
  // instance that ends has none; the store does not look for more.
  std::vector<FiberRow> fibers;
  std::vector<HistoryEvent> events;  // Appended in order, after the existing ones.
  std::optional<DeadLetter> dead_letter;
  // Inbox messages (their ids) this transition acted on: marked consumed in
  // the same transaction. An id already consumed, or unknown, is ignored.
  std::vector<std::string> consumed;
  // Marks the instance's unresolved dead letters resolved at this time
  // (an operator retried or skipped the undo that gave up). 0: no change.
  int64_t resolve_dead_letters_ms = 0;
  // Events this transition tells the world: outbox rows inserted in the same
  // transaction (their seq set by the store). A row whose id exists is
  // ignored (a replay after a crash derives the same id).
  std::vector<OutboxEvent> outbox;
  // When set: the instance's event waits become these (none: it awaits no
  // event now). The engine sets it whenever they change, so an instance
  // that ends (it waits for nothing then) has none.
  std::optional<std::vector<EventWait>> event_waits;
};

// A move of one instance to another program (`sagactl migrate`). It applies
// only when the instance is still as the move was computed from: unfinished,
// on `from_program`, with `expected_checkpoint` and `expected_fibers`, and
// not claimed by an engine that still runs it.
struct InstanceMove {
  std::string id;
  std::string from_program, to_program;  // Program hashes.
  std::string expected_checkpoint;
  std::vector<FiberRow> expected_fibers;  // In fiber order, as read.
  std::string checkpoint;                 // The translated checkpoint.
  std::vector<FiberRow> fibers;           // Replace every child fiber.
  HistoryEvent event;                     // Appended: `migrated`.
};

enum class Durability : uint8_t {
  kFull,    // fsync at each commit: survives a power cut (default).
  kNormal,  // Survives a crash of the process, not of the machine.
};

struct StoreOptions {
  Durability durability = Durability::kFull;
  // How long to wait for another process's lock before giving up with kBusy.
  int busy_timeout_ms = 5000;
  // Upper bound of transitions in one group commit.
  size_t max_batch = 4096;
  // Open for reading only (sagactl ls, show): the file must exist and be a
  // Saga database of this build's schema; nothing is created, migrated or
  // locked, so a reader never waits for a writer (WAL) and works on a file
  // it may not write. Writes (submit, put_program of a new program, claim,
  // renew, post) fail with kInvalidArgument.
  bool read_only = false;
  // At most this many instances per claim() (0: all that are free). Workers
  // sharing a database set it (sagactl worker: 256) so that one of them does
  // not take every pending instance at its first poll.
  size_t max_claim = 0;
  // Called by the store's writer after each group commit that succeeded,
  // with the number of transitions it carried and how long the commit took
  // (its SQL transaction, with the fsync when the writer makes it durable
  // itself; see docs/store.md, "Durability"). It runs on the writer thread,
  // between batches: it must be quick and must not block or call the store.
  // Metrics (saga/metrics.hpp) records the batch size and latency with it.
  // Null: nothing is called.
  std::function<void(size_t transitions, std::chrono::nanoseconds took)> on_commit;
  // PostgreSQL: LISTEN for the notifications that other processes' commits
  // send (a new instance free to claim, an inbox message), so that
  // wait_for_work() wakes at once. Off: notifies() is false and engines poll
  // (a pooler in transaction mode does not pass LISTEN on). SQLite: unused.
  bool notify = true;
};

// How many instances there are of one status (Store::count_by_status).
struct StatusCount {
  InstanceStatus status = InstanceStatus::kPending;
  uint64_t count = 0;
  bool operator==(const StatusCount&) const = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // Programs are stored once per hash; putting an existing one is a no-op.
  virtual Status put_program(const std::string& hash, const std::string& name,
                             const std::vector<uint8_t>& image) = 0;
  virtual Result<std::vector<uint8_t>> get_program(const std::string& hash) = 0;

  // Queues a transition for the next group commit. `done` runs exactly once,
  // on one of the store's threads (never two dones at once, always in
  // submission order), after the commit is durable (Ok) or failed
  // (the error; nothing of the batch was written). It must not block. It gets
  // the transition back and may take from it: after a failure, the caller
  // submits its events and dead letter again rather than lose them.
  // kFailedPrecondition for one transition means the instance's claim was
  // lost (fencing: another engine took it over after this one's lease ran
  // out); that transition wrote nothing and never will: the caller must stop
  // running the instance.
  using CommitDone = std::function<void(Status status, Transition& transition)>;
  virtual void submit(Transition transition, CommitDone done) = 0;
  // The same, for callers that need only the outcome.
  void submit(Transition transition, std::function<void(Status)> done) {
    submit(std::move(transition),
           [done = std::move(done)](Status status, Transition&) { done(std::move(status)); });
  }

  // Blocks until every transition submitted so far is committed or failed.
  virtual void flush() = 0;

  // Reads see committed data only.
  virtual Result<std::optional<InstanceRecord>> get_instance(const std::string& id) = 0;
  // Instances with the given status (all when nullopt), newest first, at most
  // `limit`: query_instances() without a saga or a cursor.
  Result<std::vector<InstanceRecord>> list_instances(std::optional<InstanceStatus> status,
                                                     size_t limit) {
    InstanceQuery query;
    query.status = status;
    query.limit = limit;
    return query_instances(query);
  }
  // How many instances the store holds of each status, from committed data,
  // in status order; statuses without instances are left out. Metrics reads
  // it at every scrape, so it must stay cheap with many instances: the
  // SQLite store answers it with one GROUP BY over its (status, created_ms)
  // index (about 10 ms for 100,000 instances: bench/README.md, "Metrics");
  // a PostgreSQL store does the same. The default says the store cannot
  // (kUnsupported), and metrics then leaves `saga_instances` out.
  virtual Result<std::vector<StatusCount>> count_by_status() {
    return Status{StatusCode::kUnsupported, "this store cannot count instances by status"};
  }
  // Instances a worker must run: pending, running and compensating ones,
  // and stuck or paused ones with a message in their inbox (an operator's
  // command waits to be carried out).
  virtual Result<std::vector<InstanceRecord>> list_unfinished() = 0;
  virtual Result<std::vector<HistoryEvent>> history(const std::string& id) = 0;
  virtual Result<std::vector<DeadLetter>> dead_letters(const std::string& id) = 0;

  // The read methods of the operator's views (sagactl ls, dlq ls, the JSON
  // API and the web view). Those with a default refuse (kUnsupported), so a
  // store without them still runs sagas.
  //
  // Instances matching `query` (list_instances() above is the simple case), newest first. Paging:
  // pass the id of the last instance of a page as `before` to get the next page; an id that is not
  // in the store gives kNotFound (the cursor is stale or wrong).
  virtual Result<std::vector<InstanceRecord>> query_instances(const InstanceQuery& query) = 0;
  // The dead letters of every instance, newest first, at most `limit`.
  virtual Result<std::vector<DeadLetterEntry>> list_dead_letters(size_t limit) {
    (void)limit;
    return Status(StatusCode::kUnsupported, "this store cannot list dead letters");
  }
  // Every stored program, newest first.
  virtual Result<std::vector<ProgramInfo>> list_programs() {
    return Status(StatusCode::kUnsupported, "this store cannot list programs");
  }
  // Whether the store can take commits now (GET /health/ready): Ok, or why
  // not (the database is read-only, its schema is not this build's, ...).
  // Cheap: it writes nothing.
  virtual Status check_ready() { return Status::Ok(); }

  // Claims unfinished instances for the engine `owner`, atomically, and returns
  // them (all of them, up to StoreOptions::max_claim, when `only` is empty,
  // else at most that one), oldest first. An
  // instance is claimed when it has no owner, already belongs to `owner`, its
  // lease expired before `now_ms`, or `owner_dead(its owner)` says the owning
  // process is gone; the claim sets owner and lease_until. Two engines on one
  // database therefore never run the same instance, and a crashed engine's
  // instances are taken over at once on the same machine (or when the lease
  // runs out elsewhere).
  virtual Result<std::vector<InstanceRecord>> claim(
      const std::string& owner, int64_t now_ms, int64_t lease_until_ms,
      const std::function<bool(const std::string& other)>& owner_dead,
      const std::string& only = {}) = 0;

  // Extends the lease of every unfinished instance `owner` holds.
  virtual Status renew(const std::string& owner, int64_t lease_until_ms) = 0;

  // Work notifications. Whether this store hears of work that other
  // processes commit for engines: a new instance that any engine may claim
  // (Transition::create without owner) and an inbox message (post). Each
  // such commit notifies once it is committed (PostgreSQL: NOTIFY in the
  // same transaction). work_count() goes up with every notification heard,
  // and after the store had to listen again (notifications may have been
  // missed meanwhile); wait_for_work() returns once the count differs from
  // `seen` or `timeout` passed, with the count. A store that does not
  // notify (the default, SQLite) counts nothing and waits the whole
  // `timeout`: its callers poll.
  virtual bool notifies() { return false; }
  virtual uint64_t work_count() { return 0; }
  virtual uint64_t wait_for_work(uint64_t seen, std::chrono::milliseconds timeout);

  // Appends `message` to the inbox of instance message.instance_id, durably
  // (a direct write, committed before it returns), and sets message.seq.
  // kNotFound when there is no such instance; kFailedPrecondition naming its
  // status when it is terminal (nothing is posted); kInvalidArgument when a
  // message with that id exists. Whether the message makes sense for the
  // instance's state is not the store's business: the engine decides when
  // it consumes it (saga/commands.hpp checks early, for a clear refusal).
  virtual Status post(InboxMessage& message) = 0;
  // The messages of one instance not consumed yet, in post order.
  virtual Result<std::vector<InboxMessage>> inbox(const std::string& id) = 0;
  // Messages not consumed yet with a seq above `after_seq`, of any instance,
  // in seq order, at most `limit`: how an engine notices what other
  // processes post. With no message, it costs one index probe.
  virtual Result<std::vector<InboxMessage>> inbox_since(int64_t after_seq, size_t limit) = 0;
  // The highest seq ever posted (0 for none): where inbox_since starts.
  virtual Result<int64_t> last_inbox_seq() = 0;

  // Records an incoming event and creates the instances it starts (each
  // transition in `starts` creates one: create set, the instance pending or
  // running, with its history), all in one transaction that is durable when
  // this returns. When an event with the same (source, id) is recorded
  // already, nothing is written and the stored one is returned with
  // `duplicate` set: a redelivered event starts nothing twice, even across
  // crashes. `event.started` must list the ids of `starts`. In the same
  // transaction the event goes to the instances whose waits fit it
  // (`delivery`), listed in the result's `woke`. The defaults refuse
  // (kUnsupported).
  virtual Result<RecordedEvent> record_event(const EventRecord& event,
                                             std::vector<Transition> starts,
                                             const EventDelivery& delivery = {}) {
    (void)event;
    (void)starts;
    (void)delivery;
    return Status(StatusCode::kUnsupported, "this store cannot record events");
  }
  // The recorded events, newest first, at most `limit`; only the unmatched
  // ones with `unmatched_only` (sagactl events ls --unmatched).
  virtual Result<std::vector<EventRecord>> list_events(size_t limit, bool unmatched_only = false) {
    (void)limit;
    (void)unmatched_only;
    return Status(StatusCode::kUnsupported, "this store cannot list events");
  }

  // Applies `move` in one transaction: the instance's program and checkpoint
  // and all its fibers are replaced and the event appended, or nothing is
  // written. kNotFound when there is no such instance; kFailedPrecondition,
  // naming why, when it is no longer as the move expects (finished or stuck,
  // on another program, its checkpoint or fibers changed since they were
  // read) or when `claim_gone(owner, lease_until_ms)` is false for the
  // claim it has (an instance without owner is free). Its status, input,
  // timers and inbox are kept. The default refuses (kUnsupported):
  // a store that cannot do this atomically must not pretend to.
  // The transactional outbox (docs/events.md). The defaults refuse
  // (kUnsupported): a store without an outbox cannot take a transition
  // that carries events either.
  //
  // Claims, for the relay `owner`, up to `limit` rows due at `now_ms`: not
  // delivered, not dead, next_due_ms <= now, not claimed by a relay whose
  // lease (claimed until) is still running, and each the first undelivered,
  // not dead row of its instance (so an instance's events go one at a time,
  // in seq order). The claim holds until `lease_until_ms`; two relays on one
  // database never hold the same row, and the rows of one instance are held
  // by at most one of them. Oldest first.
  virtual Result<std::vector<OutboxEvent>> claim_outbox(const std::string& owner, int64_t now_ms,
                                                        int64_t lease_until_ms, size_t limit) {
    (void)owner, (void)now_ms, (void)lease_until_ms, (void)limit;
    return Status{StatusCode::kUnsupported, "this store has no outbox"};
  }
  // Records how an attempt to deliver row `id` ended, and releases its claim.
  // kNotFound for an unknown id.
  virtual Status settle_outbox(const std::string& id, const OutboxSettle& settle) {
    (void)id, (void)settle;
    return Status{StatusCode::kUnsupported, "this store has no outbox"};
  }
  // Outbox rows matching `query`, oldest first (by instance creation, then seq).
  virtual Result<std::vector<OutboxEvent>> list_outbox(const OutboxQuery& query) {
    (void)query;
    return Status{StatusCode::kUnsupported, "this store has no outbox"};
  }
  // Deletes delivered rows delivered before `delivered_before_ms`; returns how many.
  virtual Result<uint64_t> prune_outbox(int64_t delivered_before_ms) {
    (void)delivered_before_ms;
    return Status{StatusCode::kUnsupported, "this store has no outbox"};
  }

  virtual Status move_instance(
      const InstanceMove& move,
      const std::function<bool(const std::string& owner, int64_t lease_until_ms)>& claim_gone) {
    (void)move;
    (void)claim_gone;
    return {StatusCode::kUnsupported, "this store cannot move instances between programs"};
  }
};

// Opens (creating if needed) a SQLite database in WAL mode and migrates its
// schema. Errors name the problem and the path: kBusy when another process
// holds the lock past busy_timeout, kIoError for a read-only or unreadable
// file, a full disk or a directory that does not exist, kCorrupt for a file
// that is not a Saga database, kUnsupported for a schema newer than this
// build knows. With StoreOptions::read_only: kNotFound for a file that does
// not exist, kUnsupported for an older schema (a writing command migrates
// it) as for a newer one.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                 const StoreOptions& options = {});

// Opens the store a URL names (sagactl --db, $SAGA_DB, EngineOptions::database):
// * a path, or `sqlite:PATH` (`sqlite:///abs/path` too): open_sqlite_store;
// * `postgresql://...` or `postgres://...` (libpq's URI syntax, e.g.
//   postgresql://saga:secret@127.0.0.1:5432/orders; a password from the URI
//   or from $PGPASSFILE / ~/.pgpass): open_postgres_store.
// Any other `scheme://` is kInvalidArgument naming the schemes it knows.
Result<std::unique_ptr<Store>> open_store(const std::string& url, const StoreOptions& options = {});

// What kind of store a URL names, without opening it: "sqlite", "postgresql",
// or an error for an unknown scheme. For SQLite, *path (when given) gets the
// file's path.
Result<std::string> store_kind(const std::string& url, std::string* path = nullptr);

// Opens a PostgreSQL database (a libpq connection URI or key=value string),
// creating or migrating Saga's tables in it. Errors name the problem and the
// server (never the password): kIoError when the server cannot be reached
// or the connection is lost, kInvalidArgument for a refused login or a
// malformed URL, kCorrupt for a database
// whose tables are not Saga's, kUnsupported for a newer schema.
Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url,
                                                   const StoreOptions& options = {});

}  // namespace saga
