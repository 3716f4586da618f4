// The PostgreSQL implementation of saga::Store (saga/store.hpp): many
// `sagactl worker`s on many machines share one database. docs/scale-out.md
// describes it for users.
//
// Invariant: an instance is advanced by one engine at a time, and a commit
// that would break that writes nothing. Every claim that hands an instance to
// another owner increments its epoch; the store remembers the epoch at which
// it claimed each instance, and every write of that instance in a batch is
// guarded by it (WHERE epoch = the claimed one, with the row locked). A
// worker paused past its lease and taken over finds the epoch moved: its
// transition is rejected with kFailedPrecondition (the engine drops the
// instance) and the rest of its batch commits without it.
//
// Threads and connections:
// * The shared group-commit pipeline (pipeline.hpp) runs commit_batch() on
//   its writer thread, on the writer connection: a batch is one transaction,
//   sent in libpq's pipeline mode (BEGIN, every statement of every
//   transition, then one sync), so a batch costs two round trips (the
//   statements, then COMMIT) whatever its size. A COMMIT is durable when it
//   returns (synchronous_commit = on for Durability::kFull), so there is no
//   syncer. A guard that fails rolls the batch back and commits the rest
//   again; a lost connection is reconnected and the batch retried for up to
//   busy_timeout_ms; a COMMIT whose answer was lost is resolved with the
//   writer's commit mark (one row per writer, written in every batch).
// * A second connection, guarded by a mutex, serves reads and the direct
//   writes (put_program, post, claim, renew, move_instance).
// * A third, started when an engine first waits for work (notifies()),
//   LISTENs for the NOTIFY that a batch creating a free instance and a post
//   send in their transaction (pg_notify.hpp).
//
// Every statement is prepared when a connection opens.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "runtime/store/pg_conn.hpp"
#include "runtime/store/pg_notify.hpp"
#include "runtime/store/pg_schema.hpp"
#include "runtime/store/pipeline.hpp"
#include "runtime/store/started_ids.hpp"
#include "runtime/store/status_names.hpp"
#include "saga/store.hpp"

namespace saga::store {
namespace {

using pg::Connection;
using pg::Params;
using pg::PgType;
using pg::ResultPtr;
constexpr PgType T = PgType::kText, B = PgType::kBytea, I = PgType::kInt8, A = PgType::kTextArray;

// Transitions in one batch at most: pipeline mode sends every statement
// before it reads a result, and the server's answers (about 20 bytes per
// statement) must fit in the socket buffers meanwhile.
constexpr size_t kMaxPgBatch = 512;
// The epoch of an instance whose claim was lost: no guard matches it.
constexpr int64_t kLost = -1;
// An arbitrary constant (pg_schema.cpp's migration lock is another): the
// advisory lock that serialises posts to the inbox.
constexpr const char* kPostLockSql = "SELECT pg_advisory_xact_lock(5341474102)";

// Columns of an instance row, in the order read_instance() expects.
#define SAGA_PG_COLUMNS                                                                            \
  "i.id, i.program, i.saga, i.status::int8, i.input, i.output, i.error_class, "                    \
  "i.error_message, i.checkpoint, i.wake_at, i.created_ms, i.updated_ms, i.owner, i.lease_until, " \
  "i.epoch, i.num"
// Columns of an events_in row, in the order read_event() expects.
#define SAGA_PG_EVENT_COLUMNS \
  "source, id, type, event, received_ms, matched::int8, started, note, seq, woke"
// Columns of an inbox row, in the order read_message() expects.
#define SAGA_PG_INBOX_COLUMNS "id, instance, kind, payload, posted_ms, seq"
// Columns of an outbox row, in the order read_outbox() expects.
#define SAGA_PG_OUTBOX_COLUMNS                                                             \
  "o.id, o.instance, o.seq, o.type, o.source, o.time_ms, o.data, o.attempts, o.next_due, " \
  "o.delivered_ms, o.dead, o.last_error"
// An instance an engine must run: pending, running, compensating, or stuck
// (6) and paused (8) with a message waiting in its inbox (an operator's
// command for an engine to carry out).
#define SAGA_PG_RUNNABLE                                                             \
  "(i.status IN (0, 1, 2) OR (i.status IN (6, 8) AND EXISTS (SELECT 1 FROM inbox x " \
  "WHERE x.instance = i.id AND x.consumed_ms = 0)))"

const std::vector<pg::StatementDef>& writer_statements() {
  static const std::vector<pg::StatementDef> defs = {
      {"ins",
       "INSERT INTO instances (id, program, saga, status, input, output, error_class, "
       "error_message, checkpoint, wake_at, created_ms, updated_ms, owner, "
       "lease_until, session) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
       "$12, $13, $14, $15) ON CONFLICT (id) DO NOTHING",
       {T, T, B, I, B, B, B, B, B, I, I, I, T, I, T}},
      // $2 = 0: the store never claimed the instance (a tool's store): unguarded.
      // A move to stuck (6) or paused (8) releases the lease: no engine runs
      // the instance any more, and the next to claim it (for an operator's
      // message) may be any engine.
      {"upd",
       "UPDATE instances SET status = $3, output = $4, error_class = $5, error_message = $6, "
       "checkpoint = $7, wake_at = $8, updated_ms = $9, "
       "lease_until = CASE WHEN $3 IN (6, 8) THEN 0 ELSE lease_until END "
       "WHERE id = $1 AND ($2 = 0 OR epoch = $2)",
       {T, I, I, B, B, B, B, I, I}},
      {"touch",
       "SELECT 1 FROM instances WHERE id = $1 AND ($2 = 0 OR epoch = $2) FOR SHARE",
       {T, I}},
      {"hist",
       "INSERT INTO history (instance, time_ms, kind, step, attempt, error_class, message, data) "
       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
       {T, I, B, B, I, B, B, B}},
      {"fib_up",
       "INSERT INTO fibers (instance, fiber, state) VALUES ($1, $2, $3) "
       "ON CONFLICT (instance, fiber) DO UPDATE SET state = excluded.state",
       {T, I, B}},
      {"fib_del", "DELETE FROM fibers WHERE instance = $1 AND fiber = $2", {T, I}},
      {"dead",
       "INSERT INTO dead_letters (instance, step, time_ms, error_class, message) "
       "VALUES ($1, $2, $3, $4, $5)",
       {T, B, I, B, B}},
      // Transition::consumed and resolve_dead_letters_ms, in the batch's
      // transaction after the transition's guarded write (so fenced by it).
      {"consume", "UPDATE inbox SET consumed_ms = $2 WHERE id = $1 AND consumed_ms = 0", {T, I}},
      // Transition::event_waits: replaced as a whole.
      {"ew_del", "DELETE FROM event_waits WHERE instance = $1", {T}},
      {"ew_ins",
       "INSERT INTO event_waits (instance, fiber, type, match) VALUES ($1, $2, $3, $4)",
       {T, I, B, B}},
      {"resolve",
       "UPDATE dead_letters SET resolved_ms = $2 WHERE instance = $1 AND resolved_ms = 0",
       {T, I}},
      // Transition::outbox: seq is the instance's next (one engine writes an
      // instance at a time: fencing); a replayed id is ignored.
      {"outbox_ins",
       "INSERT INTO outbox (id, instance, seq, type, source, time_ms, data) VALUES ($1, $2, "
       "(SELECT coalesce(max(seq), 0) + 1 FROM outbox WHERE instance = $2), $3, $4, $5, $6) "
       "ON CONFLICT (id) DO NOTHING",
       {T, T, T, T, I, B}},
      {"mark",
       "INSERT INTO commit_marks (writer, batch) VALUES ($1, $2) "
       "ON CONFLICT (writer) DO UPDATE SET batch = excluded.batch",
       {T, I}},
      {"mark_read", "SELECT batch FROM commit_marks WHERE writer = $1", {T}},
      {"epoch_of", "SELECT epoch FROM instances WHERE id = $1", {T}},
      {"notify", pg::kNotifyWorkSql, {}},
  };
  return defs;
}

const std::vector<pg::StatementDef>& reader_statements() {
  static const std::vector<pg::StatementDef> defs = {
      {"get", "SELECT " SAGA_PG_COLUMNS " FROM instances i WHERE i.id = $1", {T}},
      // Store::query_instances: newest first from the cursor's (created_ms,
      // num) down; $1 < 0: any status; saga as bytes ($2 empty: any).
      {"query",
       "SELECT " SAGA_PG_COLUMNS " FROM instances i WHERE ($1 < 0 OR i.status = $1) "
       "AND (length($2) = 0 OR i.saga = $2) AND (i.created_ms, i.num) < ($3, $4) "
       "ORDER BY i.created_ms DESC, i.num DESC LIMIT $5",
       {I, B, I, I, I}},
      {"cursor", "SELECT created_ms, num FROM instances WHERE id = $1", {T}},
      {"unfinished",
       "SELECT " SAGA_PG_COLUMNS " FROM instances i WHERE " SAGA_PG_RUNNABLE
       " ORDER BY i.created_ms, i.num",
       {}},
      {"count_by_status",
       "SELECT status::int8, count(*)::int8 FROM instances GROUP BY status ORDER BY status",
       {}},
      // The open dead letters only (one an operator retried or skipped is
      // resolved), newest first; the attempts of the undo that gave up are
      // those of its `stuck` event.
      {"list_dead",
       "SELECT i.id, i.saga, i.status::int8, d.step, d.time_ms, d.error_class, d.message, "
       "coalesce((SELECT h.attempt FROM history h WHERE h.instance = d.instance AND "
       "h.kind = 'stuck'::bytea AND h.step = d.step ORDER BY h.seq DESC LIMIT 1), 0)::int8 "
       "FROM dead_letters d JOIN instances i ON i.id = d.instance WHERE d.resolved_ms = 0 "
       "ORDER BY d.id DESC LIMIT $1",
       {I}},
      {"list_programs",
       "SELECT hash, name, created_ms FROM programs ORDER BY created_ms DESC, hash",
       {}},
      {"ready",
       "SELECT coalesce((SELECT value FROM saga_meta WHERE key = 'schema_version'), ''), "
       "(pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on')::int::int8",
       {}},
      {"inbox_of",
       "SELECT " SAGA_PG_INBOX_COLUMNS " FROM inbox WHERE instance = ANY($1) "
       "AND consumed_ms = 0 ORDER BY seq",
       {A}},
      {"inbox_since",
       "SELECT " SAGA_PG_INBOX_COLUMNS " FROM inbox WHERE seq > $1 AND consumed_ms = 0 "
       "ORDER BY seq LIMIT $2",
       {I, I}},
      {"last_inbox_seq", "SELECT coalesce(max(seq), 0)::int8 FROM inbox", {}},
      // A post: only to an instance that is not terminal (3, 4, 5, 7); a
      // duplicate id inserts nothing either (post() tells which it was).
      {"post",
       "INSERT INTO inbox (id, instance, kind, payload, posted_ms) "
       "SELECT $1, id, $3, $4, $5 FROM instances WHERE id = $2 AND status NOT IN (3, 4, 5, 7) "
       "ON CONFLICT (id) DO NOTHING RETURNING seq",
       {T, T, B, B, I}},
      {"fibers_of",
       "SELECT instance, fiber, state FROM fibers WHERE instance = ANY($1) "
       "ORDER BY instance, fiber",
       {A}},
      {"history",
       "SELECT time_ms, kind, step, attempt, error_class, message, data FROM history "
       "WHERE instance = $1 ORDER BY seq",
       {T}},
      {"dead_of",
       "SELECT step, time_ms, error_class, message, resolved_ms FROM dead_letters "
       "WHERE instance = $1 "
       "ORDER BY id",
       {T}},
      {"prog_get", "SELECT image FROM programs WHERE hash = $1", {T}},
      {"notify", pg::kNotifyWorkSql, {}},
      {"prog_put",
       "INSERT INTO programs (hash, name, image, created_ms) VALUES ($1, $2, $3, $4) "
       "ON CONFLICT (hash) DO NOTHING",
       {T, B, B, I}},
      {"status_of", "SELECT status::int8 FROM instances WHERE id = $1", {T}},
      // Incoming events (record_event): the event, then the instances it
      // starts with their history, in one transaction on this connection.
      {"ev_put",
       "INSERT INTO events_in (source, id, type, event, received_ms, matched, started, note, "
       "woke) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (source, id) DO NOTHING "
       "RETURNING seq",
       {B, B, B, B, I, I, T, B, T}},
      // The instances that await an event of a type (record_event), and the
      // message that hands it to one.
      {"ev_waits",
       "SELECT instance, match FROM event_waits WHERE type = $1 ORDER BY instance, fiber",
       {B}},
      {"ev_post",
       "INSERT INTO inbox (id, instance, kind, payload, posted_ms) VALUES ($1, $2, $3, $4, $5) "
       "RETURNING seq",
       {T, T, B, B, I}},
      {"ev_get",
       "SELECT " SAGA_PG_EVENT_COLUMNS " FROM events_in WHERE source = $1 AND id = $2",
       {B, B}},
      {"ev_list",
       "SELECT " SAGA_PG_EVENT_COLUMNS " FROM events_in WHERE ($2 = 0 OR matched = 0) "
       "ORDER BY seq DESC LIMIT $1",
       {I, I}},
      {"ev_start",
       "INSERT INTO instances (id, program, saga, status, input, output, error_class, "
       "error_message, checkpoint, wake_at, created_ms, updated_ms, owner, lease_until) "
       "VALUES ($1, $2, $3, $4, $5, '', '', '', $6, $7, $8, $9, $10, $11)",
       {T, T, B, I, B, B, I, I, I, T, I}},
      {"ev_hist",
       "INSERT INTO history (instance, time_ms, kind, step, attempt, error_class, message, data) "
       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
       {T, I, B, B, I, B, B, B}},
      {"live_owners",
       "SELECT DISTINCT owner FROM instances WHERE status IN (0, 1, 2) AND owner <> '' "
       "AND owner <> $1 AND lease_until >= $2",
       {T, I}},
      // The free unfinished instances, oldest first, locked without waiting
      // for rows another worker is claiming; an instance goes to a new owner
      // with a new epoch. Own instances come back when another store (an
      // earlier engine of this process) claimed them, when asked for ($5),
      // when a message waits in their inbox, or when their claim was lost
      // ($6). Stuck and paused instances only with a message (SAGA_PG_RUNNABLE).
      {"claim",
       "WITH c AS (SELECT i.num FROM instances i WHERE " SAGA_PG_RUNNABLE
       " AND ($5 = '' OR i.id = $5) AND (i.owner = '' OR i.lease_until < $2 "
       "OR i.owner = ANY($4) OR (i.owner = $1 AND (i.session <> $8 OR $5 <> '' "
       "OR i.id = ANY($6) OR EXISTS (SELECT 1 FROM inbox y WHERE y.instance = i.id "
       "AND y.consumed_ms = 0)))) "
       "ORDER BY i.created_ms, i.num LIMIT $7 FOR UPDATE OF i SKIP LOCKED) "
       "UPDATE instances i SET owner = $1, lease_until = $3, session = $8, "
       "epoch = i.epoch + CASE WHEN i.owner = $1 AND i.session = $8 THEN 0 ELSE 1 END "
       "FROM c WHERE i.num = c.num "
       "RETURNING " SAGA_PG_COLUMNS,
       {T, I, I, A, T, A, I, T}},
      // Store::claim_outbox: the first open row of each instance, due and not
      // held by a live claim; SKIP LOCKED so that relays claiming at once
      // take different rows (a row being claimed is skipped, and its
      // successor is not the first open row of its instance).
      {"outbox_claim",
       "WITH c AS (SELECT o.id FROM outbox o WHERE o.delivered_ms = 0 AND o.dead = 0 "
       "AND o.next_due <= $2 AND o.claimed_until < $2 AND o.seq = (SELECT min(p.seq) FROM "
       "outbox p WHERE p.instance = o.instance AND p.delivered_ms = 0 AND p.dead = 0) "
       "ORDER BY o.time_ms, o.instance LIMIT $4 FOR UPDATE OF o SKIP LOCKED) "
       "UPDATE outbox o SET claimed_by = $1, claimed_until = $3 FROM c WHERE o.id = c.id "
       "RETURNING " SAGA_PG_OUTBOX_COLUMNS,
       {T, I, I, I}},
      {"outbox_settle",
       "UPDATE outbox SET delivered_ms = $2, dead = $3, attempts = attempts + 1, next_due = $4, "
       "last_error = $5, claimed_by = '', claimed_until = 0 WHERE id = $1",
       {T, I, I, I, B}},
      {"outbox_list",
       "SELECT " SAGA_PG_OUTBOX_COLUMNS
       " FROM outbox o WHERE ($1 = 0 OR ($1 = 1 AND delivered_ms = 0 AND dead = 0) OR "
       "($1 = 2 AND dead <> 0) OR ($1 = 3 AND delivered_ms <> 0)) AND ($2 = '' OR instance = $2) "
       "ORDER BY time_ms, instance, seq LIMIT $3",
       {I, T, I}},
      {"outbox_prune", "DELETE FROM outbox WHERE delivered_ms <> 0 AND delivered_ms < $1", {I}},
      {"renew",
       "UPDATE instances SET lease_until = $2 WHERE owner = $1 AND status IN (0, 1, 2)",
       {T, I}},
      {"move_read",
       "SELECT program, status::int8, checkpoint, owner, lease_until FROM instances "
       "WHERE id = $1 FOR UPDATE",
       {T}},
      {"move_upd",
       "UPDATE instances SET program = $2, checkpoint = $3, updated_ms = $4 "
       "WHERE id = $1",
       {T, T, B, I}},
      {"move_del", "DELETE FROM fibers WHERE instance = $1", {T}},
      {"move_fib", "INSERT INTO fibers (instance, fiber, state) VALUES ($1, $2, $3)", {T, I, B}},
      {"move_hist",
       "INSERT INTO history (instance, time_ms, kind, step, attempt, error_class, message, data) "
       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
       {T, I, B, B, I, B, B, B}},
  };
  return defs;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<InstanceRecord> read_instance(const PGresult* r, int row, const std::string& name,
                                     int64_t* epoch = nullptr) {
  InstanceRecord rec;
  rec.id = pg::text_at(r, row, 0);
  rec.program_hash = pg::text_at(r, row, 1);
  rec.saga = pg::text_at(r, row, 2);
  const int64_t status = pg::int_at(r, row, 3);
  const std::optional<InstanceStatus> known = status_of_code(status);
  if (!known) {
    return Status(StatusCode::kCorrupt,
                  fmt::format("instance {} has an unknown status {}: {}", rec.id, status, name));
  }
  rec.status = *known;
  rec.input_json = pg::text_at(r, row, 4);
  rec.output_json = pg::text_at(r, row, 5);
  rec.error_class = pg::text_at(r, row, 6);
  rec.error_message = pg::text_at(r, row, 7);
  rec.checkpoint = pg::text_at(r, row, 8);
  rec.wake_at_ms = pg::int_at(r, row, 9);
  rec.created_ms = pg::int_at(r, row, 10);
  rec.updated_ms = pg::int_at(r, row, 11);
  rec.owner = pg::text_at(r, row, 12);
  rec.lease_until_ms = pg::int_at(r, row, 13);
  if (epoch != nullptr) *epoch = pg::int_at(r, row, 14);
  return rec;
}

InboxMessage read_message(const PGresult* r, int row) {
  InboxMessage m;
  m.id = pg::text_at(r, row, 0);
  m.instance_id = pg::text_at(r, row, 1);
  m.kind = pg::text_at(r, row, 2);
  m.payload_json = pg::text_at(r, row, 3);
  m.posted_ms = pg::int_at(r, row, 4);
  m.seq = pg::int_at(r, row, 5);
  return m;
}

void add_history(Params& p, const std::string& id, const HistoryEvent& e) {
  p.add_text(id);
  p.add_int(e.time_ms);
  p.add_bytes(e.kind);
  p.add_bytes(e.step);
  p.add_int(e.attempt);
  p.add_bytes(e.error_class);
  p.add_bytes(e.message);
  p.add_bytes(e.data_json);
}

class PgStore final : public Store, private CommitBackend {
 public:
  PgStore(std::string url, const StoreOptions& options) : url_(std::move(url)), options_(options) {
    std::random_device rd;
    writer_id_ = fmt::format("{}.{:x}{:x}", ::getpid(), rd(), rd());
  }
  ~PgStore() override { pipeline_.stop(); }

  Status open();

  Status put_program(const std::string& hash, const std::string& name,
                     const std::vector<uint8_t>& image) override;
  Result<std::vector<uint8_t>> get_program(const std::string& hash) override;
  using Store::submit;
  void submit(Transition transition, CommitDone done) override {
    if (options_.read_only) {
      done(refuse_write("commit a transition"), transition);
      return;
    }
    pipeline_.submit(std::move(transition), std::move(done));
  }
  void flush() override { pipeline_.flush(); }
  Result<std::optional<InstanceRecord>> get_instance(const std::string& id) override;
  Result<std::vector<InstanceRecord>> list_unfinished() override;
  Result<std::vector<InstanceRecord>> query_instances(const InstanceQuery& query) override;
  Result<std::vector<HistoryEvent>> history(const std::string& id) override;
  Result<std::vector<DeadLetter>> dead_letters(const std::string& id) override;
  Result<std::vector<StatusCount>> count_by_status() override;
  Result<std::vector<DeadLetterEntry>> list_dead_letters(size_t limit) override;
  Result<std::vector<ProgramInfo>> list_programs() override;
  Status check_ready() override;
  Status post(InboxMessage& message) override;
  Result<std::vector<InboxMessage>> inbox(const std::string& id) override;
  Result<std::vector<InboxMessage>> inbox_since(int64_t after_seq, size_t limit) override;
  Result<int64_t> last_inbox_seq() override;
  Result<std::vector<OutboxEvent>> claim_outbox(const std::string& owner, int64_t now_ms,
                                                int64_t lease_until_ms, size_t limit) override;
  Status settle_outbox(const std::string& id, const OutboxSettle& settle) override;
  Result<std::vector<OutboxEvent>> list_outbox(const OutboxQuery& query) override;
  Result<uint64_t> prune_outbox(int64_t delivered_before_ms) override;
  Result<std::vector<InstanceRecord>> claim(
      const std::string& owner, int64_t now_ms, int64_t lease_until_ms,
      const std::function<bool(const std::string& other)>& owner_dead,
      const std::string& only) override;
  Status renew(const std::string& owner, int64_t lease_until_ms) override;
  bool notifies() override { return options_.notify && !options_.read_only; }
  uint64_t work_count() override {
    pg::WorkListener* l = listener();
    return l ? l->count() : 0;
  }
  uint64_t wait_for_work(uint64_t seen, std::chrono::milliseconds timeout) override {
    pg::WorkListener* l = listener();
    return l ? l->wait(seen, timeout) : Store::wait_for_work(seen, timeout);
  }
  Status move_instance(const InstanceMove& move,
                       const std::function<bool(const std::string& owner, int64_t lease_until_ms)>&
                           claim_gone) override;
  Result<RecordedEvent> record_event(const EventRecord& event, std::vector<Transition> starts,
                                     const EventDelivery& delivery) override;
  Result<std::vector<EventRecord>> list_events(size_t limit, bool unmatched_only) override;

 private:
  using Item = PendingCommit;
  enum class Attempt { kCommitted, kRejected, kFailed, kUnknown };

  Status refuse_write(const char* what) const {
    return {StatusCode::kInvalidArgument,
            fmt::format("the store was opened read-only and cannot {}: {}", what, rconn_.name())};
  }
  Status configure(Connection& conn);
  // The reader connection, reconnected if it broke. Called with rmu_ held.
  Status reader();
  // Runs `body` (returning a Status) in a transaction of the reader
  // connection: committed when it succeeds, rolled back when it or the
  // commit fails; `doing` names it in errors. rmu_ held, reader() ok.
  template <class Body>
  Status in_reader_transaction(const char* doing, Body&& body) {
    if (Status s = rconn_.exec_sql("BEGIN", doing); !s.ok()) return s;
    Status s = body();
    if (s.ok()) s = rconn_.exec_sql("COMMIT", doing);
    if (!s.ok()) rconn_.exec_sql("ROLLBACK", doing);
    return s;
  }
  // Runs a read on the reader connection; a read that found the connection
  // lost (a server restart) reconnects and runs once more. Called with rmu_.
  Status read(const char* name, const Params& params, ResultPtr* out, const char* what);
  // The same for a statement whose one parameter is a key (an id, a hash),
  // reconnecting first if the connection is known to be lost.
  Status read_key(const char* name, const std::string& key, ResultPtr* out, const char* what) {
    Status s = reader();
    if (!s.ok()) return s;
    Params p;
    p.add_text(key);
    return read(name, p, out, what);
  }
  // Reads the rows of `r` (with their fibers and unconsumed messages when
  // `with_fibers`). Called with rmu_.
  Result<std::vector<InstanceRecord>> read_rows(const PGresult* r, bool with_fibers,
                                                std::vector<int64_t>* epochs = nullptr);

  // CommitBackend.
  Status commit_batch(std::vector<Item>& batch, std::vector<Status>& outcome,
                      bool durable) override;
  Status make_durable() override { return Status::Ok(); }
  // One try at committing the transitions `live` of `batch`.
  Attempt try_batch(std::vector<Item>& batch, const std::vector<size_t>& live,
                    std::vector<Status>& outcome, std::vector<size_t>* rejected, Status* error);
  // Reconnects the writer, trying until `deadline`.
  Status reconnect_writer(std::chrono::steady_clock::time_point deadline);
  // The epoch a write of `id` is guarded with (0: unguarded).
  int64_t epoch_of(const std::string& id);
  // The listener of work notifications, started on first use (null when
  // the store does not notify).
  pg::WorkListener* listener() {
    if (!notifies()) return nullptr;
    std::call_once(listener_once_, [this] {
      listener_ =
          std::make_unique<pg::WorkListener>(url_, std::max(1, options_.busy_timeout_ms / 1000));
    });
    return listener_.get();
  }

  const std::string url_;
  StoreOptions options_;
  // This store's row in commit_marks, and its session in the rows it
  // claims or creates.
  std::string writer_id_;
  int64_t batch_no_ = 0;  // The last batch number written to it.

  Connection wconn_;  // The writer thread's.
  Params wparams_;

  std::mutex rmu_;
  Connection rconn_;

  // The epoch at which this store claimed (or created) each instance it
  // writes; kLost after a guard failed. Used by the writer and claim().
  std::mutex epochs_mu_;
  std::unordered_map<std::string, int64_t> epochs_;

  std::once_flag listener_once_;
  std::unique_ptr<pg::WorkListener> listener_;

  CommitPipeline pipeline_{*this,
                           PipelineOptions{.max_batch = std::min(options_.max_batch, kMaxPgBatch),
                                           .syncer = false,
                                           .writer_name = "saga-pg-writer",
                                           .on_commit = options_.on_commit}};
};

Status PgStore::configure(Connection& conn) {
  // Durability::kNormal: a commit returns before its WAL reaches the disk;
  // it survives the worker's crash (the server has it) but not the server's.
  const char* sync = options_.durability == Durability::kFull ? "SET synchronous_commit = on"
                                                              : "SET synchronous_commit = off";
  Status s = conn.exec_sql(sync, "configuring the connection");
  if (!s.ok()) return s;
  return conn.exec_sql("SET lock_timeout = 0", "configuring the connection");
}

Status PgStore::open() {
  const int timeout_s = std::max(1, options_.busy_timeout_ms / 1000);
  Status s = rconn_.connect(url_, timeout_s);
  if (!s.ok()) return s;
  s = configure(rconn_);
  if (!s.ok()) return s;
  s = pg::check_and_migrate(rconn_, options_.read_only);
  if (!s.ok()) return s;
  s = rconn_.prepare_all(reader_statements());
  if (!s.ok()) return s;
  if (options_.read_only) return Status::Ok();
  s = wconn_.connect(url_, timeout_s);
  if (!s.ok()) return s;
  s = configure(wconn_);
  if (!s.ok()) return s;
  s = wconn_.prepare_all(writer_statements());
  if (!s.ok()) return s;
  pipeline_.start();
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Group commit, on the pipeline's writer thread.

int64_t PgStore::epoch_of(const std::string& id) {
  std::lock_guard lock(epochs_mu_);
  auto it = epochs_.find(id);
  return it == epochs_.end() ? 0 : it->second;
}

Status PgStore::reconnect_writer(std::chrono::steady_clock::time_point deadline) {
  auto pause = std::chrono::milliseconds(50);
  for (;;) {
    Status s = wconn_.reconnect();
    if (s.ok()) s = configure(wconn_);
    if (s.ok()) return s;
    if (std::chrono::steady_clock::now() + pause >= deadline) return s;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

Status PgStore::commit_batch(std::vector<Item>& batch, std::vector<Status>& outcome, bool durable) {
  (void)durable;  // Every COMMIT is durable at the connection's synchronous_commit.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.busy_timeout_ms);
  std::vector<size_t> live(batch.size());
  for (size_t i = 0; i < live.size(); ++i) live[i] = i;
  Status last;
  for (;;) {
    if (wconn_.broken()) {
      Status s = reconnect_writer(deadline);
      if (!s.ok()) return s;
    }
    std::vector<size_t> rejected;
    Status error;
    Attempt a = try_batch(batch, live, outcome, &rejected, &error);
    if (a == Attempt::kCommitted) break;
    if (a == Attempt::kRejected) {
      // Those wrote nothing; the others go again without them.
      std::vector<size_t> rest;
      std::set_difference(live.begin(), live.end(), rejected.begin(), rejected.end(),
                          std::back_inserter(rest));
      live = std::move(rest);
      if (live.empty()) break;
      continue;
    }
    if (a == Attempt::kUnknown) {
      // The COMMIT was sent and its answer lost: the commit mark says
      // whether it happened.
      Status s = reconnect_writer(deadline);
      if (!s.ok()) return s;
      Params p;
      p.add_text(writer_id_);
      ResultPtr r;
      s = wconn_.exec("mark_read", p, &r, "checking a commit");
      if (!s.ok()) return s;
      if (PQntuples(r.get()) == 1 && pg::int_at(r.get(), 0, 0) == batch_no_) break;
      continue;  // Not committed: try again.
    }
    // Failed before COMMIT: nothing was written. A lost connection is
    // retried (a server restart), anything else fails the batch.
    if (!wconn_.broken() || std::chrono::steady_clock::now() >= deadline) return error;
  }
  // Committed: remember the epochs of what was created, forget what ended.
  std::lock_guard lock(epochs_mu_);
  for (size_t i : live) {
    const Transition& t = batch[i].transition;
    if (!outcome[i].ok() || !t.write_instance) continue;
    if (is_terminal(t.instance.status)) {
      epochs_.erase(t.instance.id);
    } else if (t.create && !t.instance.owner.empty()) {
      epochs_[t.instance.id] = 1;
    }
  }
  return Status::Ok();
}

PgStore::Attempt PgStore::try_batch(std::vector<Item>& batch, const std::vector<size_t>& live,
                                    std::vector<Status>& outcome, std::vector<size_t>* rejected,
                                    Status* error) {
  // What each sent statement was, to read its result.
  enum Kind : uint8_t { kPlain, kCreate, kGuard };
  struct Sent {
    size_t index;
    Kind kind;
  };
  std::vector<Sent> sent;
  Connection& c = wconn_;
  Params& p = wparams_;
  auto fail = [&](Status s) {
    *error = std::move(s);
    c.exit_pipeline();
    return Attempt::kFailed;
  };
  Status s = c.enter_pipeline();
  if (!s.ok()) return fail(s);
  s = c.send_sql("BEGIN", "beginning a batch");
  sent.push_back({SIZE_MAX, kPlain});
  p.clear();
  p.add_text(writer_id_);
  p.add_int(++batch_no_);
  if (s.ok()) s = c.send("mark", p, "marking a batch");
  sent.push_back({SIZE_MAX, kPlain});
  for (size_t i : live) {
    if (!s.ok()) break;
    const Transition& t = batch[i].transition;
    const InstanceRecord& r = t.instance;
    const int64_t epoch = t.create ? 0 : epoch_of(r.id);
    p.clear();
    if (t.create) {
      p.add_text(r.id);
      p.add_text(r.program_hash);
      p.add_bytes(r.saga);
      p.add_int(static_cast<int64_t>(r.status));
      p.add_bytes(r.input_json);
      p.add_bytes(r.output_json);
      p.add_bytes(r.error_class);
      p.add_bytes(r.error_message);
      p.add_bytes(r.checkpoint);
      p.add_int(r.wake_at_ms);
      p.add_int(r.created_ms);
      p.add_int(r.updated_ms);
      p.add_text(r.owner);
      p.add_int(r.lease_until_ms);
      p.add_text(writer_id_);
      s = c.send("ins", p, "creating an instance");
      sent.push_back({i, kCreate});
    } else if (t.write_instance) {
      p.add_text(r.id);
      p.add_int(epoch);
      p.add_int(static_cast<int64_t>(r.status));
      p.add_bytes(r.output_json);
      p.add_bytes(r.error_class);
      p.add_bytes(r.error_message);
      p.add_bytes(r.checkpoint);
      p.add_int(r.wake_at_ms);
      p.add_int(r.updated_ms);
      s = c.send("upd", p, "updating an instance");
      sent.push_back({i, kGuard});
    } else {
      p.add_text(r.id);
      p.add_int(epoch);
      s = c.send("touch", p, "locking an instance");
      sent.push_back({i, kGuard});
    }
    for (const FiberRow& f : t.fibers) {
      if (!s.ok()) break;
      p.clear();
      p.add_text(r.id);
      p.add_int(f.fiber);
      if (f.state.empty()) {
        s = c.send("fib_del", p, "deleting a fiber");
      } else {
        p.add_bytes(f.state);
        s = c.send("fib_up", p, "writing a fiber");
      }
      sent.push_back({i, kPlain});
    }
    for (const HistoryEvent& e : t.events) {
      if (!s.ok()) break;
      p.clear();
      add_history(p, r.id, e);
      s = c.send("hist", p, "appending to the history");
      sent.push_back({i, kPlain});
    }
    if (t.dead_letter && s.ok()) {
      const DeadLetter& d = *t.dead_letter;
      p.clear();
      p.add_text(r.id);  // The letter belongs to the transition's instance.
      p.add_bytes(d.step);
      p.add_int(d.time_ms);
      p.add_bytes(d.error_class);
      p.add_bytes(d.message);
      s = c.send("dead", p, "writing a dead letter");
      sent.push_back({i, kPlain});
    }
    for (const std::string& id : t.consumed) {
      if (!s.ok()) break;
      p.clear();
      p.add_text(id);
      p.add_int(std::max<int64_t>(r.updated_ms, 1));
      s = c.send("consume", p, "consuming an inbox message");
      sent.push_back({i, kPlain});
    }
    for (const OutboxEvent& e : t.outbox) {
      if (!s.ok()) break;
      p.clear();
      p.add_text(e.id);
      p.add_text(r.id);  // The event belongs to the transition's instance.
      p.add_text(e.type);
      p.add_text(e.source);
      p.add_int(e.time_ms);
      p.add_bytes(e.data_json);
      s = c.send("outbox_ins", p, "writing an outbox event");
      sent.push_back({i, kPlain});
    }
    if (t.event_waits && s.ok()) {
      p.clear();
      p.add_text(r.id);
      s = c.send("ew_del", p, "writing the event waits");
      sent.push_back({i, kPlain});
      for (size_t w = 0; w < t.event_waits->size() && s.ok(); ++w) {
        const EventWait& ew = (*t.event_waits)[w];
        p.clear();
        p.add_text(r.id);
        p.add_int(ew.fiber);
        p.add_bytes(ew.type);
        p.add_bytes(ew.match_json);
        s = c.send("ew_ins", p, "writing the event waits");
        sent.push_back({i, kPlain});
      }
    }
    if (t.resolve_dead_letters_ms != 0 && s.ok()) {
      p.clear();
      p.add_text(r.id);
      p.add_int(t.resolve_dead_letters_ms);
      s = c.send("resolve", p, "resolving dead letters");
      sent.push_back({i, kPlain});
    }
  }
  // An instance any engine may claim (enqueued: created without owner)
  // wakes the listening workers when, and only if, the batch commits.
  const bool free_work = std::any_of(live.begin(), live.end(), [&](size_t i) {
    const Transition& t = batch[i].transition;
    return t.create && t.instance.owner.empty();
  });
  if (s.ok() && free_work) {
    p.clear();
    s = c.send("notify", p, "notifying workers");
    sent.push_back({SIZE_MAX, kPlain});
  }
  if (s.ok()) s = c.sync("sending a batch");
  if (!s.ok()) return fail(s);

  Status first_error;
  std::vector<char> bad(batch.size(), 0);
  for (const Sent& st : sent) {
    ResultPtr r = c.next_result();
    if (r == nullptr) {
      if (first_error.ok()) first_error = c.connection_error("committing a batch");
      break;
    }
    ExecStatusType rs = PQresultStatus(r.get());
    if (rs == PGRES_PIPELINE_ABORTED) continue;
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
      if (first_error.ok()) first_error = c.error(r.get(), "committing a batch");
      continue;
    }
    if (st.kind == kPlain) continue;
    const bool none = rs == PGRES_TUPLES_OK ? PQntuples(r.get()) == 0
                                            : std::string_view(PQcmdTuples(r.get())) == "0";
    if (none && !bad[st.index]) {
      bad[st.index] = st.kind == kCreate ? 1 : 2;
      rejected->push_back(st.index);
    }
  }
  if (first_error.ok()) {
    ResultPtr sync = c.next_result();
    if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
      first_error = c.connection_error("committing a batch");
    }
  }
  const bool commit = first_error.ok() && rejected->empty();
  if (c.broken())
    return fail(first_error.ok() ? c.connection_error("committing a batch") : first_error);
  // End the transaction: COMMIT, or ROLLBACK after an error (the server has
  // aborted it) or a guard that failed.
  if (!first_error.ok()) {
    // After an error the rest of the pipeline up to the sync was aborted and
    // its results are read; read up to the sync now.
    for (;;) {
      ResultPtr r = c.next_result();
      if (r == nullptr || PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC) break;
    }
  }
  s = c.send_sql(commit ? "COMMIT" : "ROLLBACK", "ending a batch");
  if (s.ok()) s = c.sync("ending a batch");
  if (!s.ok()) return commit ? (c.exit_pipeline(), Attempt::kUnknown) : fail(s);
  ResultPtr end = c.next_result();
  ResultPtr sync = c.next_result();
  const bool ended = end != nullptr && PQresultStatus(end.get()) == PGRES_COMMAND_OK &&
                     sync != nullptr && PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC;
  if (!ended) {
    Status why = end != nullptr ? c.error(end.get(), "committing a batch")
                                : c.connection_error("committing a batch");
    if (commit && c.broken()) {
      c.exit_pipeline();
      return Attempt::kUnknown;
    }
    return fail(first_error.ok() ? why : first_error);
  }
  c.exit_pipeline();
  if (!first_error.ok()) {
    *error = first_error;
    return Attempt::kFailed;
  }
  if (commit) return Attempt::kCommitted;

  // Name why each rejected transition could not apply.
  std::sort(rejected->begin(), rejected->end());
  for (size_t i : *rejected) {
    const std::string& id = batch[i].transition.instance.id;
    if (bad[i] == 1) {
      outcome[i] = Status(StatusCode::kInvalidArgument,
                          fmt::format("instance {} already exists: {}", id, c.name()));
      continue;
    }
    p.clear();
    p.add_text(id);
    ResultPtr r;
    Status q = c.exec("epoch_of", p, &r, "checking an instance");
    if (q.ok() && PQntuples(r.get()) == 0) {
      outcome[i] = Status(StatusCode::kNotFound,
                          fmt::format("no instance {} to update (a transition must create it "
                                      "first): {}",
                                      id, c.name()));
      continue;
    }
    {
      std::lock_guard lock(epochs_mu_);
      epochs_[id] = kLost;
    }
    outcome[i] = Status(StatusCode::kFailedPrecondition,
                        fmt::format("instance {} was taken over by another worker (its lease "
                                    "ran out): this worker no longer runs it: {}",
                                    id, c.name()));
  }
  return Attempt::kRejected;
}

// ---------------------------------------------------------------------------
// Reads and direct writes, on the reader connection.

Status PgStore::reader() {
  if (!rconn_.broken()) return Status::Ok();
  Status s = rconn_.reconnect();
  if (s.ok()) s = configure(rconn_);
  return s;
}

Status PgStore::read(const char* name, const Params& params, ResultPtr* out, const char* what) {
  Status s = rconn_.exec(name, params, out, what);
  if (s.ok() || !rconn_.broken()) return s;
  s = reader();
  if (!s.ok()) return s;
  return rconn_.exec(name, params, out, what);
}

Result<std::vector<InstanceRecord>> PgStore::read_rows(const PGresult* r, bool with_fibers,
                                                       std::vector<int64_t>* epochs) {
  std::vector<InstanceRecord> out;
  const int n = PQntuples(r);
  out.reserve(n);
  std::vector<std::pair<int64_t, int64_t>> order;  // (created_ms, num) per row.
  for (int row = 0; row < n; ++row) {
    int64_t epoch = 0;
    Result<InstanceRecord> rec = read_instance(r, row, rconn_.name(), &epoch);
    if (!rec.ok()) return rec.status();
    if (epochs != nullptr) epochs->push_back(epoch);
    out.push_back(std::move(rec).value());
  }
  if (!with_fibers || out.empty()) return out;
  std::vector<std::string> ids;
  std::unordered_map<std::string, size_t> at;
  for (size_t i = 0; i < out.size(); ++i) {
    ids.push_back(out[i].id);
    at[out[i].id] = i;
  }
  Params p;
  p.add_text_array(ids);
  ResultPtr f;
  Status s = read("fibers_of", p, &f, "reading fibers");
  if (!s.ok()) return s;
  for (int row = 0; row < PQntuples(f.get()); ++row) {
    auto it = at.find(std::string(pg::text_at(f.get(), row, 0)));
    if (it == at.end()) continue;
    out[it->second].fibers.push_back(FiberRow{static_cast<uint32_t>(pg::int_at(f.get(), row, 1)),
                                              std::string(pg::text_at(f.get(), row, 2))});
  }
  s = read("inbox_of", p, &f, "reading an inbox");
  if (!s.ok()) return s;
  for (int row = 0; row < PQntuples(f.get()); ++row) {
    InboxMessage m = read_message(f.get(), row);
    auto it = at.find(m.instance_id);
    if (it != at.end()) out[it->second].inbox.push_back(std::move(m));
  }
  return out;
}

Status PgStore::put_program(const std::string& hash, const std::string& name,
                            const std::vector<uint8_t>& image) {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_text(hash);
  p.add_bytes(name);
  p.add_bytes(std::string_view(reinterpret_cast<const char*>(image.data()), image.size()));
  p.add_int(now_ms());
  if (options_.read_only) {
    // A reader may look a program up but not add one.
    ResultPtr r;
    Params q;
    q.add_text(hash);
    s = rconn_.exec("prog_get", q, &r, "looking up a program");
    if (!s.ok()) return s;
    if (PQntuples(r.get()) == 1) return Status::Ok();
    return refuse_write("store a program");
  }
  return rconn_.exec("prog_put", p, nullptr, "storing a program");
}

Result<std::vector<uint8_t>> PgStore::get_program(const std::string& hash) {
  std::lock_guard lock(rmu_);
  ResultPtr r;
  Status s = read_key("prog_get", hash, &r, "reading a program");
  if (!s.ok()) return s;
  if (PQntuples(r.get()) == 0) {
    return Status(StatusCode::kNotFound, fmt::format("no program {} in {}", hash, rconn_.name()));
  }
  std::string_view image = pg::text_at(r.get(), 0, 0);
  return std::vector<uint8_t>(image.begin(), image.end());
}

Result<std::optional<InstanceRecord>> PgStore::get_instance(const std::string& id) {
  std::lock_guard lock(rmu_);
  ResultPtr r;
  Status s = read_key("get", id, &r, "reading an instance");
  if (!s.ok()) return s;
  auto rows = read_rows(r.get(), true);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<InstanceRecord>();
  return std::optional<InstanceRecord>(std::move(rows->front()));
}

Result<std::vector<InstanceRecord>> PgStore::query_instances(const InstanceQuery& query) {
  std::lock_guard lock(rmu_);
  int64_t created = std::numeric_limits<int64_t>::max();
  int64_t num = std::numeric_limits<int64_t>::max();
  if (!query.before.empty()) {
    ResultPtr c;
    Status s = read_key("cursor", query.before, &c, "reading the cursor's instance");
    if (!s.ok()) return s;
    if (PQntuples(c.get()) == 0) {
      return Status(StatusCode::kNotFound,
                    fmt::format("no instance {} to page from (before=)", query.before));
    }
    created = pg::int_at(c.get(), 0, 0);
    num = pg::int_at(c.get(), 0, 1);
  }
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_int(query.status ? static_cast<int64_t>(*query.status) : -1);
  p.add_bytes(query.saga);
  p.add_int(created);
  p.add_int(num);
  p.add_int(static_cast<int64_t>(
      std::min<size_t>(query.limit, static_cast<size_t>(std::numeric_limits<int64_t>::max()))));
  ResultPtr r;
  s = read("query", p, &r, "listing instances");
  if (!s.ok()) return s;
  return read_rows(r.get(), false);
}

Result<std::vector<InstanceRecord>> PgStore::list_unfinished() {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  ResultPtr r;
  s = read("unfinished", Params(), &r, "listing instances");
  if (!s.ok()) return s;
  return read_rows(r.get(), true);
}

Result<std::vector<HistoryEvent>> PgStore::history(const std::string& id) {
  std::lock_guard lock(rmu_);
  ResultPtr r;
  Status s = read_key("history", id, &r, "reading the history");
  if (!s.ok()) return s;
  std::vector<HistoryEvent> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    HistoryEvent& e = out.emplace_back();
    e.time_ms = pg::int_at(r.get(), row, 0);
    e.kind = pg::text_at(r.get(), row, 1);
    e.step = pg::text_at(r.get(), row, 2);
    e.attempt = static_cast<uint32_t>(pg::int_at(r.get(), row, 3));
    e.error_class = pg::text_at(r.get(), row, 4);
    e.message = pg::text_at(r.get(), row, 5);
    e.data_json = pg::text_at(r.get(), row, 6);
  }
  return out;
}

Result<std::vector<DeadLetter>> PgStore::dead_letters(const std::string& id) {
  std::lock_guard lock(rmu_);
  ResultPtr r;
  Status s = read_key("dead_of", id, &r, "reading dead letters");
  if (!s.ok()) return s;
  std::vector<DeadLetter> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    DeadLetter& d = out.emplace_back();
    d.instance_id = id;
    d.step = pg::text_at(r.get(), row, 0);
    d.time_ms = pg::int_at(r.get(), row, 1);
    d.error_class = pg::text_at(r.get(), row, 2);
    d.message = pg::text_at(r.get(), row, 3);
    d.resolved_ms = pg::int_at(r.get(), row, 4);
  }
  return out;
}

Result<std::vector<StatusCount>> PgStore::count_by_status() {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  ResultPtr r;
  s = read("count_by_status", Params(), &r, "counting instances by status");
  if (!s.ok()) return s;
  std::vector<StatusCount> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    out.push_back({static_cast<InstanceStatus>(pg::int_at(r.get(), row, 0)),
                   static_cast<uint64_t>(pg::int_at(r.get(), row, 1))});
  }
  return out;
}

Result<std::vector<DeadLetterEntry>> PgStore::list_dead_letters(size_t limit) {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_int(static_cast<int64_t>(
      std::min<size_t>(limit, static_cast<size_t>(std::numeric_limits<int64_t>::max()))));
  ResultPtr r;
  s = read("list_dead", p, &r, "reading dead letters");
  if (!s.ok()) return s;
  std::vector<DeadLetterEntry> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    DeadLetterEntry& d = out.emplace_back();
    d.letter.instance_id = pg::text_at(r.get(), row, 0);
    d.saga = pg::text_at(r.get(), row, 1);
    d.status = static_cast<InstanceStatus>(pg::int_at(r.get(), row, 2));
    d.letter.step = pg::text_at(r.get(), row, 3);
    d.letter.time_ms = pg::int_at(r.get(), row, 4);
    d.letter.error_class = pg::text_at(r.get(), row, 5);
    d.letter.message = pg::text_at(r.get(), row, 6);
    d.attempts = static_cast<uint32_t>(pg::int_at(r.get(), row, 7));
  }
  return out;
}

Result<std::vector<ProgramInfo>> PgStore::list_programs() {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  ResultPtr r;
  s = read("list_programs", Params(), &r, "reading programs");
  if (!s.ok()) return s;
  std::vector<ProgramInfo> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    ProgramInfo& p = out.emplace_back();
    p.hash = pg::text_at(r.get(), row, 0);
    p.name = pg::text_at(r.get(), row, 1);
    p.created_ms = pg::int_at(r.get(), row, 2);
  }
  return out;
}

// Writes nothing: the checks a commit would fail first (the server reachable,
// not a read-only standby, the schema this build writes).
Status PgStore::check_ready() {
  if (options_.read_only) return refuse_write("take commits");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  ResultPtr r;
  s = read("ready", Params(), &r, "checking the database");
  if (!s.ok()) return s;
  if (pg::int_at(r.get(), 0, 1) != 0) {
    return {StatusCode::kIoError, fmt::format("database is read-only: {}", rconn_.name())};
  }
  const std::string version(pg::text_at(r.get(), 0, 0));
  if (version != std::to_string(pg::latest_schema_version())) {
    return {StatusCode::kUnsupported,
            fmt::format("database has schema {}, this build writes {}: {}", version,
                        pg::latest_schema_version(), rconn_.name())};
  }
  return Status::Ok();
}

// A direct write like put_program, committed before it returns. Posts take
// an advisory lock for their transaction, so they commit in seq order: an
// engine watching with inbox_since() never sees seq N+1 before N is visible.
Status PgStore::post(InboxMessage& m) {
  if (options_.read_only) return refuse_write("post a message");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  return in_reader_transaction("posting a message", [&]() -> Status {
    s = rconn_.exec_sql(kPostLockSql, "posting a message");
    if (!s.ok()) return s;
    Params p;
    p.add_text(m.id);
    p.add_text(m.instance_id);
    p.add_bytes(m.kind);
    p.add_bytes(m.payload_json);
    p.add_int(m.posted_ms);
    ResultPtr r;
    s = rconn_.exec("post", p, &r, "posting a message");
    if (!s.ok()) return s;
    if (PQntuples(r.get()) == 1) {
      const int64_t seq = pg::int_at(r.get(), 0, 0);
      // The engine that runs the instance (or any worker, for one nobody
      // runs) hears of it on commit.
      s = rconn_.exec("notify", Params(), nullptr, "posting a message");
      if (!s.ok()) return s;
      m.seq = seq;
      return Status::Ok();
    }
    // Nothing inserted: no such instance, a finished one, or a duplicate id.
    p.clear();
    p.add_text(m.instance_id);
    s = rconn_.exec("status_of", p, &r, "posting a message");
    if (!s.ok()) return s;
    if (PQntuples(r.get()) == 0) {
      return Status{StatusCode::kNotFound, fmt::format("no instance {} in {}", m.instance_id, rconn_.name())};
    }
    const int64_t status = pg::int_at(r.get(), 0, 0);
    if (const std::optional<InstanceStatus> known = status_of_code(status);
        known && !is_terminal(*known)) {
      return Status{StatusCode::kInvalidArgument,
                   fmt::format("a message with id {} was posted already: {}", m.id, rconn_.name())};
    }
    return not_postable(m.instance_id, status);
  });
}

Result<std::vector<InboxMessage>> PgStore::inbox(const std::string& id) {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_text_array({id});
  ResultPtr r;
  s = read("inbox_of", p, &r, "reading an inbox");
  if (!s.ok()) return s;
  std::vector<InboxMessage> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) out.push_back(read_message(r.get(), row));
  return out;
}

Result<std::vector<InboxMessage>> PgStore::inbox_since(int64_t after_seq, size_t limit) {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_int(after_seq);
  p.add_int(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  ResultPtr r;
  s = read("inbox_since", p, &r, "reading the inbox");
  if (!s.ok()) return s;
  std::vector<InboxMessage> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) out.push_back(read_message(r.get(), row));
  return out;
}

namespace {

std::vector<OutboxEvent> read_outbox(const PGresult* r) {
  std::vector<OutboxEvent> out;
  for (int row = 0; row < PQntuples(r); ++row) {
    OutboxEvent& e = out.emplace_back();
    e.id = pg::text_at(r, row, 0);
    e.instance_id = pg::text_at(r, row, 1);
    e.seq = pg::int_at(r, row, 2);
    e.type = pg::text_at(r, row, 3);
    e.source = pg::text_at(r, row, 4);
    e.time_ms = pg::int_at(r, row, 5);
    e.data_json = pg::text_at(r, row, 6);
    e.attempts = static_cast<uint32_t>(pg::int_at(r, row, 7));
    e.next_due_ms = pg::int_at(r, row, 8);
    e.delivered_ms = pg::int_at(r, row, 9);
    e.dead = pg::int_at(r, row, 10) != 0;
    e.last_error = pg::text_at(r, row, 11);
  }
  return out;
}

}  // namespace

Result<std::vector<OutboxEvent>> PgStore::claim_outbox(const std::string& owner, int64_t now_ms,
                                                       int64_t lease_until_ms, size_t limit) {
  if (options_.read_only) return refuse_write("claim outbox rows");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_text(owner);
  p.add_int(now_ms);
  p.add_int(lease_until_ms);
  p.add_int(static_cast<int64_t>(std::min<size_t>(limit == 0 ? 1u << 30 : limit, 1u << 30)));
  ResultPtr r;
  s = read("outbox_claim", p, &r, "claiming outbox rows");
  if (!s.ok()) return s;
  std::vector<OutboxEvent> out = read_outbox(r.get());
  std::sort(out.begin(), out.end(), [](const OutboxEvent& a, const OutboxEvent& b) {
    return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.instance_id < b.instance_id;
  });
  return out;
}

Status PgStore::settle_outbox(const std::string& id, const OutboxSettle& settle) {
  if (options_.read_only) return refuse_write("settle an outbox row");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_text(id);
  p.add_int(settle.outcome == OutboxSettle::Outcome::kDelivered
                ? std::max<int64_t>(settle.time_ms, 1)
                : 0);
  p.add_int(settle.outcome == OutboxSettle::Outcome::kDead ? 1 : 0);
  p.add_int(settle.next_due_ms);
  p.add_bytes(settle.error);
  ResultPtr r;
  s = read("outbox_settle", p, &r, "settling an outbox row");
  if (!s.ok()) return s;
  if (std::string_view(PQcmdTuples(r.get())) == "0") {
    return {StatusCode::kNotFound, fmt::format("no outbox row {} in {}", id, rconn_.name())};
  }
  return Status::Ok();
}

Result<std::vector<OutboxEvent>> PgStore::list_outbox(const OutboxQuery& query) {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_int(static_cast<int64_t>(query.which));
  p.add_text(query.instance_id);
  p.add_int(
      static_cast<int64_t>(std::min<size_t>(query.limit == 0 ? 1u << 30 : query.limit, 1u << 30)));
  ResultPtr r;
  s = read("outbox_list", p, &r, "reading the outbox");
  if (!s.ok()) return s;
  return read_outbox(r.get());
}

Result<uint64_t> PgStore::prune_outbox(int64_t delivered_before_ms) {
  if (options_.read_only) return refuse_write("prune the outbox");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_int(delivered_before_ms);
  ResultPtr r;
  s = read("outbox_prune", p, &r, "pruning the outbox");
  if (!s.ok()) return s;
  return static_cast<uint64_t>(std::strtoull(PQcmdTuples(r.get()), nullptr, 10));
}

Result<int64_t> PgStore::last_inbox_seq() {
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  ResultPtr r;
  s = read("last_inbox_seq", Params(), &r, "reading the inbox");
  if (!s.ok()) return s;
  return pg::int_at(r.get(), 0, 0);
}

// One transaction of the reader connection: the owners whose leases still
// run are asked about (owner_dead: a crashed process on this machine), then
// the free rows are locked (SKIP LOCKED: two workers claiming at once take
// different rows) and taken.
Result<std::vector<InstanceRecord>> PgStore::claim(
    const std::string& owner, int64_t now_ms, int64_t lease_until_ms,
    const std::function<bool(const std::string& other)>& owner_dead, const std::string& only) {
  if (options_.read_only) return refuse_write("claim instances");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  ResultPtr r;
  s = in_reader_transaction("claiming instances", [&]() -> Status {
    Params p;
    p.add_text(owner);
    p.add_int(now_ms);
    s = rconn_.exec("live_owners", p, &r, "claiming instances");
    if (!s.ok()) return s;
    std::vector<std::string> dead;
    for (int row = 0; row < PQntuples(r.get()); ++row) {
      std::string other(pg::text_at(r.get(), row, 0));
      if (owner_dead && owner_dead(other)) dead.push_back(std::move(other));
    }
    std::vector<std::string> lost;
    {
      std::lock_guard elock(epochs_mu_);
      for (const auto& [id, epoch] : epochs_) {
        if (epoch == kLost) lost.push_back(id);
      }
    }
    p.clear();
    p.add_text(owner);
    p.add_int(now_ms);
    p.add_int(lease_until_ms);
    p.add_text_array(dead);
    p.add_text(only);
    p.add_text_array(lost);
    p.add_int(options_.max_claim == 0 ? std::numeric_limits<int64_t>::max()
                                      : static_cast<int64_t>(options_.max_claim));
    p.add_text(writer_id_);
    return rconn_.exec("claim", p, &r, "claiming instances");
  });
  if (!s.ok()) return s;
  std::vector<int64_t> epochs;
  auto rows = read_rows(r.get(), true, &epochs);
  if (!rows.ok()) return rows.status();
  // Oldest first, as the SQLite store lists them.
  std::vector<size_t> order(rows->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const InstanceRecord& x = (*rows)[a];
    const InstanceRecord& y = (*rows)[b];
    if (x.created_ms != y.created_ms) return x.created_ms < y.created_ms;
    return pg::int_at(r.get(), static_cast<int>(a), 15) <
           pg::int_at(r.get(), static_cast<int>(b), 15);
  });
  std::vector<InstanceRecord> out;
  std::lock_guard elock(epochs_mu_);
  for (size_t i : order) {
    InstanceRecord& rec = (*rows)[i];
    auto it = epochs_.find(rec.id);
    // An entry at another epoch belongs to a run this engine may still have
    // from before it lost the claim: that run stays fenced (its next commit
    // is rejected, which marks the entry lost, and a later claim takes the
    // instance afresh).
    if (it == epochs_.end() || it->second == kLost || it->second == epochs[i]) {
      epochs_[rec.id] = epochs[i];
      out.push_back(std::move(rec));
    }
  }
  return out;
}

Status PgStore::renew(const std::string& owner, int64_t lease_until_ms) {
  if (options_.read_only) return refuse_write("renew leases");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  Params p;
  p.add_text(owner);
  p.add_int(lease_until_ms);
  return rconn_.exec("renew", p, nullptr, "renewing leases");
}

// One transaction of the reader connection with the row locked (FOR
// UPDATE): the checks and the writes see the same row.
Status PgStore::move_instance(
    const InstanceMove& move,
    const std::function<bool(const std::string& owner, int64_t lease_until_ms)>& claim_gone) {
  if (options_.read_only) return refuse_write("move an instance");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  return in_reader_transaction("moving an instance", [&]() -> Status {
    Params p;
    p.add_text(move.id);
    ResultPtr r;
    s = rconn_.exec("move_read", p, &r, "moving an instance");
    if (!s.ok()) return s;
    if (PQntuples(r.get()) == 0) {
      return Status{StatusCode::kNotFound, fmt::format("no instance {} in {}", move.id, rconn_.name())};
    }
    const std::string program(pg::text_at(r.get(), 0, 0));
    const int64_t status = pg::int_at(r.get(), 0, 1);
    const bool same_checkpoint = pg::text_at(r.get(), 0, 2) == move.expected_checkpoint;
    const std::string owner(pg::text_at(r.get(), 0, 3));
    const int64_t lease_until = pg::int_at(r.get(), 0, 4);
    std::vector<FiberRow> fibers;
    {
      Params f;
      f.add_text_array({move.id});
      ResultPtr fr;
      s = rconn_.exec("fibers_of", f, &fr, "moving an instance");
      if (!s.ok()) return s;
      for (int row = 0; row < PQntuples(fr.get()); ++row) {
        fibers.push_back(FiberRow{static_cast<uint32_t>(pg::int_at(fr.get(), row, 1)),
                                  std::string(pg::text_at(fr.get(), row, 2))});
      }
    }
    s = check_move(move, status, program, same_checkpoint, fibers, owner, lease_until, claim_gone);
    if (!s.ok()) return s;
    p.clear();
    p.add_text(move.id);
    p.add_text(move.to_program);
    p.add_bytes(move.checkpoint);
    p.add_int(move.event.time_ms);
    s = rconn_.exec("move_upd", p, nullptr, "moving an instance");
    p.clear();
    p.add_text(move.id);
    if (s.ok()) s = rconn_.exec("move_del", p, nullptr, "moving an instance");
    for (const FiberRow& f : move.fibers) {
      if (!s.ok()) break;
      p.clear();
      p.add_text(move.id);
      p.add_int(f.fiber);
      p.add_bytes(f.state);
      s = rconn_.exec("move_fib", p, nullptr, "moving an instance");
    }
    if (s.ok()) {
      p.clear();
      add_history(p, move.id, move.event);
      s = rconn_.exec("move_hist", p, nullptr, "moving an instance");
    }
    return s;
  });
}

// ---------------------------------------------------------------------------
// Incoming events (saga/store.hpp, EventRecord): one transaction on the
// reader connection, like post(): the event row (a duplicate (source, id)
// inserts nothing and the stored row is returned), then each start's
// instance and history. Committed at the connection's synchronous_commit,
// so durable when this returns.

EventRecord read_event_row(const PGresult* r, int row) {
  EventRecord e;
  e.source = pg::text_at(r, row, 0);
  e.id = pg::text_at(r, row, 1);
  e.type = pg::text_at(r, row, 2);
  e.event_json = pg::text_at(r, row, 3);
  e.received_ms = pg::int_at(r, row, 4);
  e.matched = pg::int_at(r, row, 5) != 0;
  e.started = split_started(pg::text_at(r, row, 6));
  e.note = pg::text_at(r, row, 7);
  e.seq = pg::int_at(r, row, 8);
  e.woke = split_started(pg::text_at(r, row, 9));
  return e;
}

Result<RecordedEvent> PgStore::record_event(const EventRecord& event,
                                            std::vector<Transition> starts,
                                            const EventDelivery& delivery) {
  if (options_.read_only) return refuse_write("record an event");
  std::lock_guard lock(rmu_);
  Status s = reader();
  if (!s.ok()) return s;
  RecordedEvent out;
  s = in_reader_transaction("recording an event", [&]() -> Status {
    const std::string started = join_started(event.started);
    Params p;
    ResultPtr r;
    std::vector<std::string> woke;
    if (delivery.fits) {
      // Posts commit in seq order (see post()): the lock before the waits
      // are read, so that none is handed over twice by two workers.
      s = rconn_.exec_sql(kPostLockSql, "recording an event");
      if (!s.ok()) return s;
      p.add_bytes(event.type);
      s = rconn_.exec("ev_waits", p, &r, "finding the instances that await an event");
      if (!s.ok()) return s;
      for (int row = 0; row < PQntuples(r.get()); ++row) {
        std::string id(pg::text_at(r.get(), row, 0));
        if (!woke.empty() && woke.back() == id) continue;  // One message per instance.
        if (delivery.fits(pg::text_at(r.get(), row, 1))) woke.push_back(std::move(id));
      }
      p.clear();
    }
    const std::string woke_text = join_started(woke);
    p.add_bytes(event.source);
    p.add_bytes(event.id);
    p.add_bytes(event.type);
    p.add_bytes(event.event_json);
    p.add_int(event.received_ms);
    p.add_int(event.matched || !woke.empty() ? 1 : 0);
    p.add_text(started);
    p.add_bytes(event.note);
    p.add_text(woke_text);
    s = rconn_.exec("ev_put", p, &r, "recording an event");
    if (!s.ok()) return s;
    if (PQntuples(r.get()) == 0) {
      p.clear();
      p.add_bytes(event.source);
      p.add_bytes(event.id);
      s = rconn_.exec("ev_get", p, &r, "reading an event");
      if (!s.ok()) return s;
      if (PQntuples(r.get()) != 1) {
        return Status{StatusCode::kInternal, fmt::format("event {} of {} neither recorded nor found: {}", event.id, event.source, rconn_.name())};
      }
      out.event = read_event_row(r.get(), 0);
      out.duplicate = true;
      return Status::Ok();  // Nothing was written.
    }
    out.event = event;
    out.event.seq = pg::int_at(r.get(), 0, 0);
    out.event.matched = event.matched || !woke.empty();
    out.event.woke = woke;
    for (const std::string& id : woke) {
      InboxMessage m = delivery.message(out.event.seq, id, event.received_ms);
      p.clear();
      p.add_text(m.id);
      p.add_text(id);
      p.add_bytes(m.kind);
      p.add_bytes(m.payload_json);
      p.add_int(m.posted_ms);
      s = rconn_.exec("ev_post", p, &r, "handing an event to an instance");
      if (!s.ok()) return s;
      m.seq = pg::int_at(r.get(), 0, 0);
      out.handed.push_back(std::move(m));
    }
    if (!woke.empty()) {
      // The engines that run them hear of it on commit.
      s = rconn_.exec("notify", Params(), nullptr, "handing an event to an instance");
      if (!s.ok()) return s;
    }
    for (const Transition& t : starts) {
      const InstanceRecord& i = t.instance;
      p.clear();
      p.add_text(i.id);
      p.add_text(i.program_hash);
      p.add_bytes(i.saga);
      p.add_int(static_cast<int64_t>(i.status));
      p.add_bytes(i.input_json);
      p.add_bytes(i.checkpoint);
      p.add_int(i.wake_at_ms);
      p.add_int(i.created_ms);
      p.add_int(i.updated_ms);
      p.add_text(i.owner);
      p.add_int(i.lease_until_ms);
      s = rconn_.exec("ev_start", p, nullptr, "starting an instance for an event");
      if (!s.ok()) return s;
      for (const HistoryEvent& e : t.events) {
        p.clear();
        add_history(p, i.id, e);
        s = rconn_.exec("ev_hist", p, nullptr, "starting an instance for an event");
        if (!s.ok()) return s;
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::vector<EventRecord>> PgStore::list_events(size_t limit, bool unmatched_only) {
  std::lock_guard lock(rmu_);
  if (Status s = reader(); !s.ok()) return s;
  Params p;
  p.add_int(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  p.add_int(unmatched_only ? 1 : 0);
  ResultPtr r;
  Status s = read("ev_list", p, &r, "listing events");
  if (!s.ok()) return s;
  std::vector<EventRecord> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) out.push_back(read_event_row(r.get(), row));
  return out;
}

}  // namespace
}  // namespace saga::store

namespace saga {

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url,
                                                   const StoreOptions& options) {
  if (options.busy_timeout_ms < 0) {
    return Status(
        StatusCode::kInvalidArgument,
        fmt::format("busy_timeout_ms must not be negative, got {}", options.busy_timeout_ms));
  }
  auto store = std::make_unique<store::PgStore>(url, options);
  Status s = store->open();
  if (!s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace saga
