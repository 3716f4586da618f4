// The SQLite implementation of saga::Store (saga/store.hpp), the embedded
// default: one database file in WAL mode, shared by the worker that runs
// instances and by short-lived `sagactl` processes that start, list or
// cancel them. docs/store.md describes the schema, the group commit and the
// error conditions for users and for implementers of other stores.
//
// Threads and connections:
// * The group-commit pipeline (pipeline.hpp) owns the queue, the writer
//   thread and, under Durability::kFull, the syncer. This store supplies
//   commit_batch() (one BEGIN IMMEDIATE transaction on the writer connection)
//   and make_durable(). Under kFull the writer connection commits with
//   synchronous=NORMAL (the WAL frames reach the OS, not the disk) and the
//   syncer's make_durable() fdatasyncs the WAL file, so the next batch's SQL
//   overlaps the previous batch's fsync; a small batch at low load commits
//   with synchronous=FULL instead (durable = true). docs/store.md,
//   "Durability", says why this is as durable as synchronous=FULL.
// * A second connection, guarded by a mutex, serves reads and the two direct
//   writes (put_program, post). WAL lets readers proceed while the
//   writer commits; the direct writes wait for the write lock (busy timeout).
//
// Every statement is prepared once, with SQLITE_PREPARE_PERSISTENT, when the
// store opens, and bound without copying: in steady state, committing a
// transition allocates nothing in the store (SQLite allocates internally).
#include "runtime/store/sqlite_store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/store/pipeline.hpp"
#include "runtime/store/schema.hpp"
#include "runtime/store/sqlite_db.hpp"
#include "runtime/store/started_ids.hpp"
#include "runtime/store/status_names.hpp"

namespace saga::store {
namespace {

// Page cache of the writer connection, in KiB (negative = KiB for SQLite).
// The working set of a busy worker is the recent part of three b-trees; 16 MiB
// keeps it resident (64 MiB measured no faster, and a worker with 100,000
// waiting instances must stay small). Readers need less.
constexpr const char* kWriterCacheSql = "PRAGMA cache_size = -16384";
constexpr const char* kReaderCacheSql = "PRAGMA cache_size = -4096";

// WAL pages after which a commit also copies the WAL back into the database
// file (SQLite's default is 1,000). A larger value means fewer, longer
// checkpoints; 8,000 pages of 4 KiB is a 32 MiB WAL at most in steady state.
constexpr const char* kAutocheckpointSql = "PRAGMA wal_autocheckpoint = 8000";
// After a checkpoint resets the WAL, SQLite truncates the file to this size,
// so a burst does not leave a huge WAL file behind.
constexpr const char* kJournalSizeLimitSql = "PRAGMA journal_size_limit = 67108864";

// Columns of an instance row, in the order read_instance() expects.
#define SAGA_INSTANCE_COLUMNS                                                          \
  "id, program, saga, status, input, output, error_class, error_message, checkpoint, " \
  "wake_at, created_ms, updated_ms, owner, lease_until, num"

// Both instance writes use the same parameter numbers (see bind_instance()).
// An update never changes what an instance is (id, program, saga, input,
// created_ms, owner). Messages other processes post (`sagactl cancel`) go to
// the inbox table, which only Transition::consumed changes.
//
// History and dead letters refer to the instance's num (schema.cpp says why).
// To update an instance the writer needs its num, its current status and its
// last history seq. It remembers them for the instances it wrote (the Known
// cache below) and otherwise reads them with kFindInstanceSql. Both updates
// are guarded (WHERE num AND id AND status as expected): if another process
// changed the status since, nothing is updated and the writer reads the row
// again. (UPDATE ... RETURNING num instead of the lookup measured 9 us slower
// per transition with SQLite 3.40; the cache saves the lookup, about 1.5 us.)
// Most transitions keep the status; kUpdateSameStatusSql leaves the column
// out so that SQLite does not rewrite the instances_by_status entry (1 us).
constexpr const char* kInsertInstanceSql =
    "INSERT INTO instances (id, program, saga, status, input, output, error_class, "
    "error_message, checkpoint, wake_at, created_ms, updated_ms, owner, "
    "lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12, ?13, ?16, ?17)";
// Child fibers (schema version 2): written and deleted one by one with their
// transitions (the engine deletes each at its join, or when compensation
// begins, so an instance that ends has none), read with the instance.
constexpr const char* kUpsertFiberSql =
    "INSERT INTO fibers (instance, fiber, state) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (instance, fiber) DO UPDATE SET state = excluded.state";
constexpr const char* kDeleteFiberSql = "DELETE FROM fibers WHERE instance = ?1 AND fiber = ?2";
constexpr const char* kFibersOfSql =
    "SELECT fiber, state FROM fibers WHERE instance = ?1 ORDER BY fiber";
// The schema version from which the fibers table exists.
constexpr int kFibersSchema = 2;
// A move to stuck (6) or paused (8) releases the lease: no engine runs the
// instance any more, and the next to claim it (for an operator's message)
// may be any engine.
constexpr const char* kUpdateInstanceSql =
    "UPDATE instances SET status = ?4, output = ?6, "
    "error_class = ?7, error_message = ?8, checkpoint = ?9, wake_at = ?10, "
    "updated_ms = ?13, lease_until = CASE WHEN ?4 IN (6, 8) THEN 0 ELSE lease_until END "
    "WHERE num = ?14 AND id = ?1 AND status = ?15";
constexpr const char* kUpdateSameStatusSql =
    "UPDATE instances SET output = ?6, "
    "error_class = ?7, error_message = ?8, checkpoint = ?9, wake_at = ?10, "
    "updated_ms = ?13 WHERE num = ?14 AND id = ?1 AND status = ?15";
constexpr const char* kFindInstanceSql =
    "SELECT num, status, (SELECT seq FROM history WHERE instance = instances.num "
    "ORDER BY seq DESC LIMIT 1) FROM instances WHERE id = ?1";
constexpr const char* kLastSeqSql =
    "SELECT seq FROM history WHERE instance = ?1 ORDER BY seq DESC LIMIT 1";
constexpr const char* kInsertHistorySql =
    "INSERT INTO history (instance, seq, time_ms, kind, step, attempt, error_class, message, "
    "data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
// The inbox (schema version 3; saga/store.hpp, InboxMessage).
constexpr int kInboxSchema = 3;
// Incoming events (schema version 5; saga/store.hpp, EventRecord), and the
// event waits of instances with the instances each event woke (version 6).
constexpr int kEventsSchema = 5;
constexpr int kEventWaitsSchema = 6;
// ON CONFLICT DO NOTHING: a duplicate (source, id) changes nothing, and the
// transaction goes on to read the stored row.
constexpr const char* kInsertEventSql =
    "INSERT INTO events_in (source, id, type, event, received_ms, matched, started, note, woke) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (source, id) DO NOTHING";
#define SAGA_EVENT_COLUMNS(woke) \
  "source, id, type, event, received_ms, matched, started, note, seq, " woke
constexpr const char* kFindEventSql =
    "SELECT " SAGA_EVENT_COLUMNS("woke") " FROM events_in WHERE source = ?1 AND id = ?2";
#define SAGA_LIST_EVENTS_SQL(woke) \
  "SELECT " SAGA_EVENT_COLUMNS(woke) " FROM events_in WHERE (?2 = 0 OR matched = 0) " \
                                     "ORDER BY seq DESC LIMIT ?1"
constexpr const char* kListEventsSql = SAGA_LIST_EVENTS_SQL("woke");
// A reader of a version-5 file: no event woke an instance there.
constexpr const char* kListEventsV5Sql = SAGA_LIST_EVENTS_SQL("''");
constexpr const char* kDeleteEventWaitsSql = "DELETE FROM event_waits WHERE instance = ?1";
constexpr const char* kInsertEventWaitSql =
    "INSERT INTO event_waits (instance, fiber, type, match) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kEventWaitsOfTypeSql =
    "SELECT event_waits.instance, instances.id, event_waits.match FROM event_waits "
    "JOIN instances ON instances.num = event_waits.instance "
    "WHERE event_waits.type = ?1 ORDER BY event_waits.instance, event_waits.fiber";
// The hand-over of an event to an instance that awaits it: an inbox message.
constexpr const char* kPostByNumSql =
    "INSERT INTO inbox (id, instance, kind, payload, posted_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* kConsumeSql =
    "UPDATE inbox SET consumed_ms = ?2 WHERE id = ?1 AND consumed_ms = 0";
constexpr const char* kResolveDeadLettersSql =
    "UPDATE dead_letters SET resolved_ms = ?2 WHERE instance = ?1 AND resolved_ms = 0";
#define SAGA_INBOX_COLUMNS \
  "inbox.id, instances.id, inbox.kind, inbox.payload, inbox.posted_ms, inbox.seq"
constexpr const char* kInboxOfSql =
    "SELECT " SAGA_INBOX_COLUMNS
    " FROM inbox JOIN instances ON instances.num = inbox.instance "
    "WHERE inbox.instance = ?1 AND inbox.consumed_ms = 0 ORDER BY inbox.seq";
constexpr const char* kInboxOfIdSql =
    "SELECT " SAGA_INBOX_COLUMNS
    " FROM inbox JOIN instances ON instances.num = inbox.instance "
    "WHERE instances.id = ?1 AND inbox.consumed_ms = 0 ORDER BY inbox.seq";
// Unconsumed messages after a seq: the partial index inbox_unconsumed is on
// (instance, seq), so this scans only unconsumed rows, which are few.
constexpr const char* kInboxSinceSql =
    "SELECT " SAGA_INBOX_COLUMNS
    " FROM inbox JOIN instances ON instances.num = inbox.instance "
    "WHERE inbox.seq > ?1 AND inbox.consumed_ms = 0 ORDER BY inbox.seq LIMIT ?2";
constexpr const char* kLastInboxSeqSql = "SELECT coalesce(max(seq), 0) FROM inbox";
// A post: only to an instance that is not terminal (3, 4, 5, 7).
constexpr const char* kPostSql =
    "INSERT INTO inbox (id, instance, kind, payload, posted_ms) "
    "SELECT ?1, num, ?3, ?4, ?5 FROM instances WHERE id = ?2 AND status NOT IN (3, 4, 5, 7)";
// The outbox (schema version 4; saga/store.hpp, OutboxEvent). seq is the
// instance's next, read under the writer's lock; a row whose id exists is a
// replay and is ignored.
constexpr int kOutboxSchema = 4;
constexpr const char* kInsertOutboxSql =
    "INSERT INTO outbox (id, instance, seq, type, source, time_ms, data) VALUES (?1, ?2, "
    "(SELECT coalesce(max(seq), 0) + 1 FROM outbox WHERE instance = ?2), ?3, ?4, ?5, ?6) "
    "ON CONFLICT (id) DO NOTHING";
#define SAGA_OUTBOX_COLUMNS                                                         \
  "outbox.id, (SELECT id FROM instances WHERE num = outbox.instance), outbox.seq, " \
  "outbox.type, outbox.source, outbox.time_ms, outbox.data, outbox.attempts, "      \
  "outbox.next_due, outbox.delivered_ms, outbox.dead, outbox.last_error"
// Store::claim_outbox: the first open row of each instance, when due and not
// claimed by a relay whose lease still runs. One statement: atomic.
constexpr const char* kClaimOutboxSql =
    "UPDATE outbox SET claimed_by = ?1, claimed_until = ?3 WHERE rowid IN ("
    "SELECT o.rowid FROM outbox o WHERE o.delivered_ms = 0 AND o.dead = 0 AND o.next_due <= ?2 "
    "AND o.claimed_until < ?2 AND o.seq = (SELECT min(p.seq) FROM outbox p WHERE "
    "p.instance = o.instance AND p.delivered_ms = 0 AND p.dead = 0) "
    "ORDER BY o.time_ms, o.instance LIMIT ?4) RETURNING " SAGA_OUTBOX_COLUMNS;
// Whether a claim would find anything: read first, so that an idle relay
// never takes the write lock.
constexpr const char* kOutboxDueSql =
    "SELECT 1 FROM outbox WHERE delivered_ms = 0 AND dead = 0 AND next_due <= ?1 "
    "AND claimed_until < ?1 LIMIT 1";
constexpr const char* kSettleOutboxSql =
    "UPDATE outbox SET delivered_ms = ?2, dead = ?3, attempts = attempts + ?4, next_due = ?5, "
    "last_error = ?6, claimed_by = '', claimed_until = 0 WHERE id = ?1";
constexpr const char* kListOutboxSql =
    "SELECT " SAGA_OUTBOX_COLUMNS
    " FROM outbox WHERE (?1 = 0 OR (?1 = 1 AND delivered_ms = 0 AND dead = 0) OR "
    "(?1 = 2 AND dead <> 0) OR (?1 = 3 AND delivered_ms <> 0)) AND (?2 = '' OR instance = "
    "(SELECT num FROM instances WHERE id = ?2)) ORDER BY instance, seq LIMIT ?3";
constexpr const char* kPruneOutboxSql =
    "DELETE FROM outbox WHERE delivered_ms <> 0 AND delivered_ms < ?1";
#undef SAGA_OUTBOX_COLUMNS
constexpr const char* kInsertDeadLetterSql =
    "INSERT INTO dead_letters (instance, step, time_ms, error_class, message) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";

constexpr const char* kGetInstanceSql =
    "SELECT " SAGA_INSTANCE_COLUMNS " FROM instances WHERE id = ?1";
// Pending, running, compensating: not terminal and not stuck. Oldest first, so
// a worker that resumes after a crash starts with the instances that waited
// longest.
// Stuck (6) and paused (8) ones too when a message waits in their inbox: an
// operator's command for an engine to carry out.
constexpr const char* kListUnfinishedSql =
    "SELECT " SAGA_INSTANCE_COLUMNS
    " FROM instances WHERE status IN (0, 1, 2) OR (status IN (6, 8) AND num IN "
    "(SELECT instance FROM inbox WHERE consumed_ms = 0)) ORDER BY created_ms, num";
constexpr const char* kListUnfinishedV2Sql =
    "SELECT " SAGA_INSTANCE_COLUMNS
    " FROM instances WHERE status IN (0, 1, 2) ORDER BY created_ms, num";
constexpr const char* kHistorySql =
    "SELECT time_ms, kind, step, attempt, error_class, message, data FROM history "
    "WHERE instance = (SELECT num FROM instances WHERE id = ?1) ORDER BY seq";
constexpr const char* kDeadLettersSql =
    "SELECT step, time_ms, error_class, message, resolved_ms FROM dead_letters "
    "WHERE instance = (SELECT num FROM instances WHERE id = ?1) ORDER BY id";
// Before schema version 3 (a read-only store on an older file).
constexpr const char* kDeadLettersV2Sql =
    "SELECT step, time_ms, error_class, message, 0 FROM dead_letters "
    "WHERE instance = (SELECT num FROM instances WHERE id = ?1) ORDER BY id";
// The operator's views (Store::query_instances, list_dead_letters,
// list_programs). Newest first in the order of the instances_by_status and
// instances_by_created indexes (each ends in the rowid, num), so a page is a
// range scan of one index from the cursor's (created_ms, num) down (the
// largest values when there is no cursor); the saga filter is checked on the
// rows the scan meets.
constexpr const char* kQueryAllSql =
    "SELECT " SAGA_INSTANCE_COLUMNS
    " FROM instances WHERE (?2 = '' OR saga = ?2) AND (created_ms, num) < (?3, ?4) "
    "ORDER BY created_ms DESC, num DESC LIMIT ?5";
constexpr const char* kQueryByStatusSql =
    "SELECT " SAGA_INSTANCE_COLUMNS
    " FROM instances WHERE status = ?1 AND (?2 = '' OR saga = ?2) AND (created_ms, num) < "
    "(?3, ?4) ORDER BY created_ms DESC, num DESC LIMIT ?5";
// Where a page starts: the (created_ms, num) of the cursor's instance.
constexpr const char* kCursorSql = "SELECT created_ms, num FROM instances WHERE id = ?1";
// The attempts of the undo that gave up are those of its `stuck` event.
// The open dead letters only: one an operator retried or skipped is resolved
// (show keeps it, marked).
#define SAGA_DEAD_LETTER_COLUMNS                                                 \
  "SELECT i.id, i.saga, i.status, d.step, d.time_ms, d.error_class, d.message, " \
  "COALESCE((SELECT h.attempt FROM history h WHERE h.instance = d.instance AND " \
  "h.kind = 'stuck' AND h.step = d.step ORDER BY h.seq DESC LIMIT 1), 0) "
constexpr const char* kListDeadLettersSql = SAGA_DEAD_LETTER_COLUMNS
    "FROM dead_letters d JOIN instances i ON i.num = d.instance WHERE d.resolved_ms = 0 "
    "ORDER BY d.id DESC LIMIT ?1";
// Before schema version 3 (a read-only store on an older file): none is resolved.
constexpr const char* kListDeadLettersV2Sql = SAGA_DEAD_LETTER_COLUMNS
    "FROM dead_letters d JOIN instances i ON i.num = d.instance ORDER BY d.id DESC LIMIT ?1";
#undef SAGA_DEAD_LETTER_COLUMNS
constexpr const char* kListProgramsSql =
    "SELECT hash, name, created_ms FROM programs ORDER BY created_ms DESC, hash";
constexpr const char* kGetProgramSql = "SELECT image FROM programs WHERE hash = ?1";
constexpr const char* kHasProgramSql = "SELECT 1 FROM programs WHERE hash = ?1";
constexpr const char* kPutProgramSql =
    "INSERT INTO programs (hash, name, image, created_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (hash) DO NOTHING";
constexpr const char* kStatusOfSql = "SELECT status FROM instances WHERE id = ?1";
// Scans the instances_by_status index only (a covering index: no row is read).
constexpr const char* kCountByStatusSql =
    "SELECT status, COUNT(*) FROM instances GROUP BY status ORDER BY status";
constexpr const char* kClaimSql =
    "UPDATE instances SET owner = ?2, lease_until = ?3 WHERE id = ?1 AND status IN (0, 1, 2, 6, 8)";
constexpr const char* kRenewSql =
    "UPDATE instances SET lease_until = ?2 WHERE owner = ?1 AND status IN (0, 1, 2)";
// move_instance (sagactl migrate). Rare, so prepared when used, on the
// reader connection inside its IMMEDIATE transaction.
constexpr const char* kMoveReadSql =
    "SELECT num, program, status, checkpoint, owner, lease_until FROM instances WHERE id = ?1";
constexpr const char* kMoveUpdateSql =
    "UPDATE instances SET program = ?2, checkpoint = ?3, updated_ms = ?4 WHERE num = ?1";
constexpr const char* kMoveDeleteFibersSql = "DELETE FROM fibers WHERE instance = ?1";

static_assert(static_cast<int>(InstanceStatus::kPending) == 0 &&
                  static_cast<int>(InstanceStatus::kRunning) == 1 &&
                  static_cast<int>(InstanceStatus::kCompensating) == 2,
              "kListUnfinishedSql and the instances_by_status index use these numbers");
static_assert(static_cast<int>(InstanceStatus::kStuck) == 6 &&
                  static_cast<int>(InstanceStatus::kPaused) == 8 &&
                  static_cast<int>(InstanceStatus::kCompleted) == 3 &&
                  static_cast<int>(InstanceStatus::kCompensated) == 4 &&
                  static_cast<int>(InstanceStatus::kFailed) == 5 &&
                  static_cast<int>(InstanceStatus::kCancelled) == 7,
              "kListUnfinishedSql, kClaimSql and kPostSql use these numbers");

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Binds the 13 columns of an instance row in SAGA_INSTANCE_COLUMNS order.
void bind_instance(Statement& st, const InstanceRecord& r) {
  st.bind_text(1, r.id);
  st.bind_text(2, r.program_hash);
  st.bind_text(3, r.saga);
  st.bind(4, static_cast<int64_t>(r.status));
  st.bind_text(5, r.input_json);
  st.bind_text(6, r.output_json);
  st.bind_text(7, r.error_class);
  st.bind_text(8, r.error_message);
  st.bind_blob(9, r.checkpoint.data(), r.checkpoint.size());
  st.bind(10, r.wake_at_ms);
  st.bind(12, r.created_ms);
  st.bind(13, r.updated_ms);
}

// Binds the parameters of kInsertHistorySql.
void bind_history(Statement& st, int64_t num, int64_t seq, const HistoryEvent& e) {
  st.bind(1, num);
  st.bind(2, seq);
  st.bind(3, e.time_ms);
  st.bind_text(4, e.kind);
  st.bind_text(5, e.step);
  st.bind(6, e.attempt);
  st.bind_text(7, e.error_class);
  st.bind_text(8, e.message);
  st.bind_text(9, e.data_json);
}

// Reads a row selected with SAGA_INSTANCE_COLUMNS (its num into *num, when
// given). Fails (kCorrupt) only on a status number this build does not know.
// Text and blob columns are copied out of SQLite's buffers, which are valid
// only until the next step.
Result<InstanceRecord> read_instance(const Statement& st, const std::string& path,
                                     int64_t* num = nullptr) {
  InstanceRecord r;
  r.id = st.column_text(0);
  r.program_hash = st.column_text(1);
  r.saga = st.column_text(2);
  const int64_t status = st.column_int(3);
  const std::optional<InstanceStatus> known = status_of_code(status);
  if (!known) {
    return Status(StatusCode::kCorrupt,
                  fmt::format("instance {} has an unknown status {}: {}", r.id, status, path));
  }
  r.status = *known;
  r.input_json = st.column_text(4);
  r.output_json = st.column_text(5);
  r.error_class = st.column_text(6);
  r.error_message = st.column_text(7);
  r.checkpoint = st.column_blob(8);
  r.wake_at_ms = st.column_int(9);
  r.created_ms = st.column_int(10);
  r.updated_ms = st.column_int(11);
  r.owner = st.column_text(12);
  r.lease_until_ms = st.column_int(13);
  if (num != nullptr) *num = st.column_int(14);
  return r;
}

// Reads a row selected with SAGA_INBOX_COLUMNS.
InboxMessage read_message(const Statement& st) {
  InboxMessage m;
  m.id = st.column_text(0);
  m.instance_id = st.column_text(1);
  m.kind = st.column_text(2);
  m.payload_json = st.column_text(3);
  m.posted_ms = st.column_int(4);
  m.seq = st.column_int(5);
  return m;
}

class SqliteStore final : public Store, private CommitBackend {
 public:
  SqliteStore(std::string path, const StoreOptions& options)
      : path_(std::move(path)), options_(options) {
    if (options_.max_batch == 0) options_.max_batch = 1;
  }

  ~SqliteStore() override {
    pipeline_.stop();  // Commits what is queued, while the connections are open.
    if (wal_fd_ >= 0) ::close(wal_fd_);
  }

  // Opens both connections, checks and migrates the schema, prepares every
  // statement and starts the writer thread.
  Status open();

  Status put_program(const std::string& hash, const std::string& name,
                     const std::vector<uint8_t>& image) override;
  Result<std::vector<uint8_t>> get_program(const std::string& hash) override;
  using Store::submit;
  void submit(Transition transition, CommitDone done) override;
  void flush() override;
  Result<std::optional<InstanceRecord>> get_instance(const std::string& id) override;
  Result<std::vector<InstanceRecord>> list_unfinished() override;
  Result<std::vector<StatusCount>> count_by_status() override;
  Result<std::vector<HistoryEvent>> history(const std::string& id) override;
  Result<std::vector<DeadLetter>> dead_letters(const std::string& id) override;
  Result<std::vector<InstanceRecord>> query_instances(const InstanceQuery& query) override;
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
  Status move_instance(const InstanceMove& move,
                       const std::function<bool(const std::string& owner, int64_t lease_until_ms)>&
                           claim_gone) override;
  Result<RecordedEvent> record_event(const EventRecord& event, std::vector<Transition> starts,
                                     const EventDelivery& delivery) override;
  Result<std::vector<EventRecord>> list_events(size_t limit, bool unmatched_only) override;

  SqliteStoreStats stats() const {
    PipelineStats p = pipeline_.stats();
    SqliteStoreStats s;
    s.commits = p.commits;
    s.failed_commits = p.failed_commits;
    s.transitions_committed = p.transitions_committed;
    s.transitions_failed = p.transitions_failed;
    s.largest_batch = p.largest_batch;
    s.wal_syncs = wal_syncs_.load(std::memory_order_relaxed);
    return s;
  }
  Result<int64_t> writer_pragma(std::string_view name);
  Result<int64_t> set_max_page_count(int64_t pages);

 private:
  using Item = PendingCommit;

  Status configure(Connection& conn, bool writer);
  // The writer's statements too when `with_writer` (not for a reader's store).
  Status prepare_statements(bool with_writer);
  Status open_read_only();
  // Fails a write on a read-only store.
  Status refuse_write(const char* what) const {
    return {StatusCode::kInvalidArgument,
            fmt::format("the store was opened read-only and cannot {}: {}", what, path_)};
  }
  // Reads the rows `st` selects; with `with_fibers`, each with its fibers.
  Result<std::vector<InstanceRecord>> read_instances(Statement& st, bool with_fibers);
  // Appends the fibers of the instance at `num`. Called with rdb_mu_ held.
  Status read_fibers(int64_t num, std::vector<FiberRow>& out);
  // Appends the unconsumed messages of the instance at `num`. Called with
  // rdb_mu_ held.
  Status read_inbox(int64_t num, std::vector<InboxMessage>& out);
  // Appends the rows `st` selects (SAGA_INBOX_COLUMNS). rdb_mu_ held.
  Status read_messages(Statement& st, std::vector<InboxMessage>& out);
  // The consumption and dead-letter resolution of transition `t`.
  Status write_inbox(const Transition& t, int64_t num);
  // Writes and deletes the fibers of transition `t` of the instance at `num`.
  Status write_fibers(const Transition& t, int64_t num);
  // Inserts the outbox rows of transition `t` of the instance at `num`.
  Status write_outbox(const Transition& t, int64_t num);
  // The event waits of transition `t`, when it carries them.
  Status write_event_waits(const Transition& t, int64_t num);
  // The instances (num, id) whose waits for `event`'s type fit it, one
  // each. Called with wdb_mu_ held, in record_event's transaction.
  Result<std::vector<std::pair<int64_t, std::string>>> waiting_for(const EventRecord& event,
                                                                   const EventDelivery& delivery);
  // Reads the rows `st` returns (SAGA_OUTBOX_COLUMNS). rdb_mu_ held.
  Status read_outbox(Statement& st, std::vector<OutboxEvent>& out);
  // settle_outbox inside its transaction. rdb_mu_ held.
  Status settle_in_transaction(const std::string& id, const OutboxSettle& settle);
  // Runs `body` (returning a Status) in a write transaction of the reader
  // connection, committed when it succeeds and rolled back when it or the
  // commit fails; `doing` names it in errors. IMMEDIATE: the write lock first
  // (waiting the busy timeout for it), so that a statement never has to
  // upgrade a read snapshot another writer made stale (SQLITE_BUSY at once).
  // rdb_mu_ held.
  template <class Body>
  Status write_on_reader(const char* doing, Body&& body) {
    if (Status s = rdb_.exec("BEGIN IMMEDIATE", doing); !s.ok()) return s;
    Status s = body();
    if (s.ok()) s = rdb_.exec("COMMIT", doing);
    if (!s.ok()) rdb_.exec("ROLLBACK", doing);
    return s;
  }

  // Under kFull: opens the WAL file that make_durable() syncs.
  Status open_wal();
  Status set_writer_sync(bool full);
  // fdatasyncs the WAL file; the first failure sticks (sync_failure_).
  Status sync_wal();
  // CommitBackend.
  Status commit_batch(std::vector<Item>& batch, std::vector<Status>& outcome,
                      bool durable) override;
  Status make_durable() override { return sync_wal(); }
  // BEGIN, apply each transition, COMMIT (or ROLLBACK). Called with wdb_mu_.
  Status commit_in_transaction(std::vector<Item>& batch, std::vector<Status>& outcome);
  // Writes one transition inside the open transaction. Returns an error that
  // must fail the whole batch, or Ok with *rejected set when only this
  // transition cannot apply (create of an existing id, update of a missing one).
  Status apply(const Transition& t, Status* rejected);
  // Runs the guarded update of `r` for a row at `num` whose status is
  // `status`. Sets *updated to whether the row matched.
  Status update_instance(const InstanceRecord& r, int64_t num, int64_t status, bool* updated);
  // Appends `events` with seq numbers after *seq, and leaves *seq at the last
  // one written. Re-reads the last seq once if another process appended
  // history since *seq was learned.
  Status append_history(int64_t num, const std::vector<HistoryEvent>& events, int64_t* seq);

  // What the writer knows about an instance it wrote, as committed: its num,
  // its status and its last history seq. Only the writer thread uses it. An
  // entry is dropped when the instance reaches a terminal status, and the
  // whole cache when a batch fails (its entries may describe rolled-back
  // writes) or holds kMaxKnown entries. A stale entry is harmless: the guarded
  // update or the history key catches it and the writer reads the row again.
  struct Known {
    int64_t num;
    int64_t status;
    int64_t last_seq;
  };
  static constexpr size_t kMaxKnown = 65536;
  std::unordered_map<std::string, Known> known_;

  const std::string path_;
  StoreOptions options_;

  // The writer connection and its statements (declared after it, destroyed
  // before it). Owned by the writer thread; wdb_mu_ is held while a batch
  // runs so that test hooks can use the connection between batches.
  std::mutex wdb_mu_;
  Connection wdb_;
  struct {
    Statement begin, commit, rollback;
    Statement insert_instance, update_instance, update_same_status, find_instance, last_seq;
    Statement insert_history;
    Statement insert_dead_letter;
    Statement upsert_fiber, delete_fiber;
    Statement consume, resolve_dead_letters;
    Statement insert_outbox;
    Statement insert_event, find_event;
    Statement delete_event_waits, insert_event_wait, event_waits_of_type, post_by_num;
  } w_;
  bool writer_sync_full_ = false;  // Under kFull, the writer's synchronous setting now.

  // The reader connection and its statements, guarded by rdb_mu_.
  std::mutex rdb_mu_;
  Connection rdb_;
  struct {
    Statement get_instance, list_unfinished, history, dead_letters;
    Statement get_program, has_program, put_program, status_of, claim, renew;
    Statement query_all, query_by_status, cursor, list_dead_letters, list_programs;
    Statement count_by_status;
    Statement fibers_of;  // Prepared only when the schema has the fibers table.
    // Prepared only when the schema has the inbox (version 3 and later).
    Statement post, inbox_of, inbox_of_id, inbox_since, last_inbox_seq;
    // Prepared only when the schema has the outbox (version 4 and later).
    Statement claim_outbox, outbox_due, settle_outbox, list_outbox, prune_outbox;
    Statement list_events;  // Prepared only when the schema has events_in (version 5 and later).
  } r_;
  bool has_fibers_ = false;  // The schema has the fibers table (version 2 and later).
  bool has_inbox_ = false;   // The schema has the inbox table (version 3 and later).
  bool has_outbox_ = false;  // The schema has the outbox table (version 4 and later).
  bool has_events_ = false;  // The schema has the events_in table (version 5 and later).
  bool has_event_waits_ = false;  // And event_waits, events_in.woke (version 6 and later).

  std::atomic<uint64_t> wal_syncs_{0};
  std::string wal_path_;
  int wal_fd_ = -1;
  // Set once an fdatasync failed: what was committed since may not be on
  // disk, and the page cache can no longer be trusted to get it there, so
  // every later batch fails with this error until the process restarts (as
  // PostgreSQL does after a failed fsync).
  std::mutex sync_failure_mu_;
  Status sync_failure_;

  // Last: it calls commit_batch() and make_durable() on its threads, and
  // ~SqliteStore stops it before anything else goes.
  CommitPipeline pipeline_{*this,
                           PipelineOptions{.max_batch = options_.max_batch,
                                           .syncer = options_.durability == Durability::kFull,
                                           .on_commit = options_.on_commit}};

 public:
  std::atomic<int> inject_sync_errno_{0};  // Test hook: the next sync fails with it.
};

// Per-connection settings (docs/store.md, "Tuning"). Under kFull the reader
// connection's direct writes sync at their commit (synchronous=FULL); the
// writer connection starts with FULL too and switches to NORMAL once the
// syncer owns the durability of its commits (commit_batch).
Status SqliteStore::configure(Connection& conn, bool writer) {
  const char* sync = options_.durability == Durability::kFull ? "PRAGMA synchronous = FULL"
                                                              : "PRAGMA synchronous = NORMAL";
  for (const char* sql : {sync, writer ? kWriterCacheSql : kReaderCacheSql,
                          "PRAGMA temp_store = MEMORY", kAutocheckpointSql, kJournalSizeLimitSql}) {
    Status s = conn.exec(sql, "configuring the connection");
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// Names what is wrong with the path itself before SQLite does ("unable to
// open database file"): a directory that does not exist, a directory where
// the file should be, and, for a reader, a file that does not exist.
Status check_path(const std::string& path, bool must_exist) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return {StatusCode::kInvalidArgument,
              fmt::format("the database path is a directory, not a file: {}", path)};
    }
    return Status::Ok();
  }
  if (errno != ENOENT) return Status::Ok();  // SQLite names the condition (permissions, ...).
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return {
        StatusCode::kNotFound,
        fmt::format("the directory of the database does not exist: {} (database {})", dir, path)};
  }
  if (must_exist) return {StatusCode::kNotFound, fmt::format("no such database: {}", path)};
  return Status::Ok();
}

// Sets WAL mode and returns the journal mode the file then has. Switching
// a new file to WAL fails with SQLITE_BUSY at once, without SQLite's busy
// handler, while another process that opens the file too holds a lock on
// it (a worker and `sagactl start` started together); it is retried until
// the busy timeout, like every other wait for a lock.
Result<std::string> switch_to_wal(Connection& conn, int busy_timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    Result<std::string> mode = conn.query_text("PRAGMA journal_mode = WAL", "switching to WAL mode");
    if (mode.ok() || mode.status().code() != StatusCode::kBusy ||
        std::chrono::steady_clock::now() + pause > deadline) {
      return mode;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

// A reader's open: one read-only connection, the identity checked, the
// reader's statements prepared, no threads. The schema must be this build's
// exactly: an older one is migrated by the next writer, never by a reader.
Status SqliteStore::open_read_only() {
  Status s = rdb_.open(path_, /*create=*/false, options_.busy_timeout_ms, /*read_only=*/true);
  if (!s.ok()) return s;
  Result<Identity> identity = read_identity(rdb_);
  if (!identity.ok()) return identity.status();
  s = check_identity(*identity, latest_schema_version(), path_);
  if (!s.ok()) return s;
  if (identity->application_id != kApplicationId) {
    return {StatusCode::kCorrupt, fmt::format("not a Saga database: it is empty: {}", path_)};
  }
  // Older schemas are read as they are (a schema before version 2 has no
  // fibers); one without any (a stamped, empty file) has nothing to read.
  if (identity->user_version < 1) {
    return {StatusCode::kUnsupported,
            fmt::format("database has schema {}, this build reads 1 to {}: a command that "
                        "writes (sagactl resume, run, start) migrates it first: {}",
                        identity->user_version, latest_schema_version(), path_)};
  }
  has_fibers_ = identity->user_version >= kFibersSchema;
  has_inbox_ = identity->user_version >= kInboxSchema;
  has_outbox_ = identity->user_version >= kOutboxSchema;
  has_events_ = identity->user_version >= kEventsSchema;
  has_event_waits_ = identity->user_version >= kEventWaitsSchema;
  s = configure(rdb_, /*writer=*/false);
  if (!s.ok()) return s;
  return prepare_statements(/*writer=*/false);
}

Status SqliteStore::open() {
  if (options_.busy_timeout_ms < 0) {
    return {StatusCode::kInvalidArgument,
            fmt::format("busy_timeout_ms must not be negative, got {}", options_.busy_timeout_ms)};
  }
  Status s = check_path(path_, options_.read_only);
  if (!s.ok()) return s;
  if (options_.read_only) return open_read_only();
  s = wdb_.open(path_, /*create=*/true, options_.busy_timeout_ms);
  if (!s.ok()) return s;

  // Look before changing anything: a file of another application must not
  // even be switched to WAL mode.
  Result<Identity> identity = read_identity(wdb_);
  if (!identity.ok()) return identity.status();
  s = check_identity(*identity, latest_schema_version(), path_);
  if (!s.ok()) return s;
  if (sqlite3_db_readonly(wdb_.get(), "main") == 1) {
    return {StatusCode::kIoError, fmt::format("database is read-only: {}", path_)};
  }

  Result<std::string> mode = switch_to_wal(wdb_, options_.busy_timeout_ms);
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return {StatusCode::kIoError,
            fmt::format("cannot switch the database to WAL mode (journal_mode is {}): {}", *mode,
                        path_)};
  }
  s = configure(wdb_, /*writer=*/true);
  if (!s.ok()) return s;
  s = migrate(wdb_, migrations());
  if (!s.ok()) return s;
  has_fibers_ = true;
  has_inbox_ = true;
  has_outbox_ = true;
  has_events_ = true;
  has_event_waits_ = true;

  if (const char* pages = std::getenv("SAGA_TEST_MAX_PAGES"); pages != nullptr && *pages != 0) {
    Result<int64_t> limit = set_max_page_count(std::strtoll(pages, nullptr, 10));
    if (!limit.ok()) return limit.status();
  }

  s = rdb_.open(path_, /*create=*/false, options_.busy_timeout_ms);
  if (!s.ok()) return s;
  s = configure(rdb_, /*writer=*/false);
  if (!s.ok()) return s;
  s = prepare_statements(/*writer=*/true);
  if (!s.ok()) return s;
  if (options_.durability == Durability::kFull) {
    s = open_wal();
    if (!s.ok()) return s;
  }
  pipeline_.start();
  return Status::Ok();
}

Status SqliteStore::prepare_statements(bool with_writer) {
  const std::pair<Statement*, const char*> writer[] = {
      {&w_.begin, "BEGIN IMMEDIATE"},
      {&w_.commit, "COMMIT"},
      {&w_.rollback, "ROLLBACK"},
      {&w_.insert_instance, kInsertInstanceSql},
      {&w_.update_instance, kUpdateInstanceSql},
      {&w_.update_same_status, kUpdateSameStatusSql},
      {&w_.find_instance, kFindInstanceSql},
      {&w_.last_seq, kLastSeqSql},
      {&w_.insert_history, kInsertHistorySql},
      {&w_.insert_dead_letter, kInsertDeadLetterSql},
      {&w_.upsert_fiber, kUpsertFiberSql},
      {&w_.delete_fiber, kDeleteFiberSql},
      {&w_.consume, kConsumeSql},
      {&w_.resolve_dead_letters, kResolveDeadLettersSql},
      {&w_.insert_outbox, kInsertOutboxSql},
      {&w_.insert_event, kInsertEventSql},
      {&w_.find_event, kFindEventSql},
      {&w_.delete_event_waits, kDeleteEventWaitsSql},
      {&w_.insert_event_wait, kInsertEventWaitSql},
      {&w_.event_waits_of_type, kEventWaitsOfTypeSql},
      {&w_.post_by_num, kPostByNumSql},
  };
  for (const auto& [stmt, sql] : writer) {
    if (!with_writer) break;
    Status s = wdb_.prepare(*stmt, sql);
    if (!s.ok()) return s;
  }
  std::vector<std::pair<Statement*, const char*>> reader = {
      {&r_.get_instance, kGetInstanceSql},
      {&r_.list_unfinished, has_inbox_ ? kListUnfinishedSql : kListUnfinishedV2Sql},
      {&r_.history, kHistorySql},
      {&r_.dead_letters, has_inbox_ ? kDeadLettersSql : kDeadLettersV2Sql},
      {&r_.get_program, kGetProgramSql},
      {&r_.has_program, kHasProgramSql},
      {&r_.put_program, kPutProgramSql},
      {&r_.status_of, kStatusOfSql},
      {&r_.count_by_status, kCountByStatusSql},
      {&r_.claim, kClaimSql},
      {&r_.renew, kRenewSql},
      {&r_.query_all, kQueryAllSql},
      {&r_.query_by_status, kQueryByStatusSql},
      {&r_.cursor, kCursorSql},
      {&r_.list_dead_letters, has_inbox_ ? kListDeadLettersSql : kListDeadLettersV2Sql},
      {&r_.list_programs, kListProgramsSql},
  };
  if (has_fibers_) reader.emplace_back(&r_.fibers_of, kFibersOfSql);
  if (has_inbox_) {
    reader.insert(reader.end(), {{&r_.post, kPostSql},
                                 {&r_.inbox_of, kInboxOfSql},
                                 {&r_.inbox_of_id, kInboxOfIdSql},
                                 {&r_.inbox_since, kInboxSinceSql},
                                 {&r_.last_inbox_seq, kLastInboxSeqSql}});
  }
  if (has_outbox_) {
    reader.insert(reader.end(), {{&r_.claim_outbox, kClaimOutboxSql},
                                 {&r_.outbox_due, kOutboxDueSql},
                                 {&r_.settle_outbox, kSettleOutboxSql},
                                 {&r_.list_outbox, kListOutboxSql},
                                 {&r_.prune_outbox, kPruneOutboxSql}});
  }
  if (has_events_) {
    reader.emplace_back(&r_.list_events, has_event_waits_ ? kListEventsSql : kListEventsV5Sql);
  }
  for (const auto& [stmt, sql] : reader) {
    Status s = rdb_.prepare(*stmt, sql);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Group commit.

// The pipeline commits it (pipeline.hpp); a reader's store refuses.
void SqliteStore::submit(Transition transition, CommitDone done) {
  if (options_.read_only) {
    done(refuse_write("commit a transition"), transition);
    return;
  }
  pipeline_.submit(std::move(transition), std::move(done));
}

void SqliteStore::flush() {
  pipeline_.flush();
}

// Switches the writer connection between synchronous=FULL (SQLite syncs in
// COMMIT) and NORMAL (the syncer does), only when it changes. Called with
// wdb_mu_ held. Not a prepared statement: SQLite applies this pragma when it
// compiles it, not when it runs, so a prepared one would act only once.
Status SqliteStore::set_writer_sync(bool full) {
  if (full == writer_sync_full_) return Status::Ok();
  Status s = wdb_.exec(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                       "configuring the writer connection");
  if (s.ok()) writer_sync_full_ = full;
  return s;
}

Status SqliteStore::open_wal() {
  wal_path_ = path_ + "-wal";
  // The WAL exists: migrate() wrote through it. SQLite keeps it (same inode)
  // while the writer connection is open; sync_wal() checks that anyway.
  wal_fd_ = ::open(wal_path_.c_str(), O_RDWR | O_CLOEXEC);
  if (wal_fd_ < 0) {
    return {StatusCode::kIoError,
            fmt::format("cannot open the write-ahead log {}: {}", wal_path_, std::strerror(errno))};
  }
  // The WAL's directory entry must be durable too (SQLite syncs it when it
  // creates the file under synchronous=FULL; this is cheap insurance).
  std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/'));
  if (dir.empty()) dir = "/";
  if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  writer_sync_full_ = true;  // As configure() left it.
  return Status::Ok();
}

Status SqliteStore::sync_wal() {
  {
    std::lock_guard lock(sync_failure_mu_);
    if (!sync_failure_.ok()) return sync_failure_;
  }
  // Should SQLite ever replace the WAL file, sync the new one.
  struct stat open_file;  // Read only when fstat() filled it.
  struct stat on_disk;    // Read only when stat() filled it.
  if (::fstat(wal_fd_, &open_file) != 0 || ::stat(wal_path_.c_str(), &on_disk) != 0 ||
      open_file.st_ino != on_disk.st_ino || open_file.st_dev != on_disk.st_dev) {
    int fd = ::open(wal_path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
      ::close(wal_fd_);
      wal_fd_ = fd;
    }
  }
  int rc;
  if (int injected = inject_sync_errno_.exchange(0); injected != 0) {
    rc = -1;
    errno = injected;
  } else {
    do {
      rc = ::fdatasync(wal_fd_);
    } while (rc != 0 && errno == EINTR);
  }
  wal_syncs_.fetch_add(1, std::memory_order_relaxed);
  if (rc == 0) return Status::Ok();
  Status failed(StatusCode::kIoError,
                fmt::format("cannot make the database durable: fdatasync of {} failed: {}; "
                            "transitions committed since the last good sync may be lost, so "
                            "this store accepts no more (restart the process)",
                            wal_path_, std::strerror(errno)));
  std::lock_guard lock(sync_failure_mu_);
  if (sync_failure_.ok()) sync_failure_ = failed;
  return sync_failure_;
}

// BEGIN IMMEDIATE waits up to the busy timeout for another process's write
// transaction; SQLITE_BUSY after that fails the batch with kBusy.
// After a failed fdatasync every batch fails (sync_failure_). Under kFull the
// writer connection syncs in COMMIT (synchronous=FULL) only when `durable`;
// otherwise make_durable() syncs the WAL. A failed batch empties the Known
// cache: its entries may describe rolled-back writes.
Status SqliteStore::commit_batch(std::vector<Item>& batch, std::vector<Status>& outcome,
                                 bool durable) {
  {
    std::lock_guard failure_lock(sync_failure_mu_);
    if (!sync_failure_.ok()) {
      known_.clear();
      return sync_failure_;
    }
  }
  std::lock_guard db_lock(wdb_mu_);
  Status s = Status::Ok();
  if (options_.durability == Durability::kFull) s = set_writer_sync(durable);
  if (s.ok()) s = commit_in_transaction(batch, outcome);
  if (!s.ok()) known_.clear();
  return s;
}

Status SqliteStore::commit_in_transaction(std::vector<Item>& batch, std::vector<Status>& outcome) {
  int rc;
  {
    Statement::Reset reset(w_.begin);
    rc = w_.begin.step();
  }
  if (rc != SQLITE_DONE) return wdb_.error(rc, "beginning a group commit");

  Status failure;
  for (size_t i = 0; i < batch.size() && failure.ok(); ++i) {
    failure = apply(batch[i].transition, &outcome[i]);
  }
  if (failure.ok()) {
    Statement::Reset reset(w_.commit);
    rc = w_.commit.step();
    if (rc == SQLITE_DONE) return Status::Ok();
    failure = wdb_.error(rc, "committing a group of transitions");
  }
  // SQLite may already have rolled back by itself (after SQLITE_FULL or an
  // I/O error, for example); only roll back a transaction that is still open.
  if (sqlite3_get_autocommit(wdb_.get()) == 0) {
    Statement::Reset reset(w_.rollback);
    w_.rollback.step();
  }
  return failure;
}

Status SqliteStore::apply(const Transition& t, Status* rejected) {
  const InstanceRecord& r = t.instance;
  int64_t num = 0;  // instances.num of the row written.
  int64_t seq = 0;  // The instance's last history seq; the next event gets seq + 1.
  if (t.create) {
    Statement& st = w_.insert_instance;
    Statement::Reset reset(st);
    bind_instance(st, r);
    st.bind_text(16, r.owner);
    st.bind(17, r.lease_until_ms);
    int rc = st.step();
    if (rc != SQLITE_DONE) {
      // Only the failed statement is undone; the transaction stays open.
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        *rejected = Status(StatusCode::kInvalidArgument,
                           fmt::format("instance {} already exists: {}", r.id, path_));
        return Status::Ok();
      }
      return wdb_.error(rc, "creating an instance");
    }
    num = sqlite3_last_insert_rowid(wdb_.get());
    // A new num has no history, unless rows were deleted by hand without
    // their history; append_history() copes with that.
  } else if (!t.write_instance) {
    // Only fibers and history: the row is found, not written.
    if (auto it = known_.find(r.id); it != known_.end()) {
      num = it->second.num;
      seq = it->second.last_seq;
    } else {
      Statement& st = w_.find_instance;
      Statement::Reset reset(st);
      st.bind_text(1, r.id);
      int rc = st.step();
      if (rc == SQLITE_DONE) {
        *rejected = Status(StatusCode::kNotFound,
                           fmt::format("no instance {} to update (a transition must create it "
                                       "first): {}",
                                       r.id, path_));
        return Status::Ok();
      }
      if (rc != SQLITE_ROW) return wdb_.error(rc, "finding an instance");
      num = st.column_int(0);
      seq = st.column_int(2);
      if (known_.size() >= kMaxKnown) known_.clear();
      known_.insert_or_assign(r.id, Known{num, st.column_int(1), seq});
    }
  } else {
    bool updated = false;
    if (auto it = known_.find(r.id); it != known_.end()) {
      Status s = update_instance(r, it->second.num, it->second.status, &updated);
      if (!s.ok()) return s;
      if (updated) {
        num = it->second.num;
        seq = it->second.last_seq;
      } else {
        known_.erase(it);  // Changed by another process: read it again.
      }
    }
    if (!updated) {
      int64_t status = 0;
      {
        Statement& st = w_.find_instance;
        Statement::Reset reset(st);
        st.bind_text(1, r.id);
        int rc = st.step();
        if (rc == SQLITE_DONE) {
          *rejected = Status(StatusCode::kNotFound,
                             fmt::format("no instance {} to update (a transition must create it "
                                         "first): {}",
                                         r.id, path_));
          return Status::Ok();
        }
        if (rc != SQLITE_ROW) return wdb_.error(rc, "finding an instance");
        num = st.column_int(0);
        status = st.column_int(1);
        seq = st.column_int(2);  // NULL (no history yet) reads as 0.
      }
      Status s = update_instance(r, num, status, &updated);
      if (!s.ok()) return s;
      if (!updated) {
        // The row was read under the same write lock; this cannot happen.
        return Status(StatusCode::kInternal,
                      fmt::format("instance {} changed while it was updated: {}", r.id, path_));
      }
    }
  }

  if (Status s = write_fibers(t, num); !s.ok()) return s;
  if (Status s = write_inbox(t, num); !s.ok()) return s;

  if (!t.events.empty()) {
    Status s = append_history(num, t.events, &seq);
    if (!s.ok()) return s;
  }

  if (Status s = write_outbox(t, num); !s.ok()) return s;
  if (Status s = write_event_waits(t, num); !s.ok()) return s;

  if (t.dead_letter) {
    const DeadLetter& d = *t.dead_letter;
    Statement& st = w_.insert_dead_letter;
    Statement::Reset reset(st);
    // The letter belongs to the transition's instance whatever its own field says.
    st.bind(1, num);
    st.bind_text(2, d.step);
    st.bind(3, d.time_ms);
    st.bind_text(4, d.error_class);
    st.bind_text(5, d.message);
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "writing a dead letter");
  }

  if (!t.write_instance) {
    if (auto it = known_.find(r.id); it != known_.end()) it->second.last_seq = seq;
  } else if (is_terminal(r.status)) {
    known_.erase(r.id);
  } else {
    if (known_.size() >= kMaxKnown) known_.clear();
    known_.insert_or_assign(r.id, Known{num, static_cast<int64_t>(r.status), seq});
  }
  return Status::Ok();
}

Status SqliteStore::write_inbox(const Transition& t, int64_t num) {
  for (const std::string& id : t.consumed) {
    Statement& st = w_.consume;
    Statement::Reset reset(st);
    st.bind_text(1, id);
    st.bind(2, std::max<int64_t>(t.instance.updated_ms, 1));
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "consuming an inbox message");
  }
  if (t.resolve_dead_letters_ms != 0) {
    Statement& st = w_.resolve_dead_letters;
    Statement::Reset reset(st);
    st.bind(1, num);
    st.bind(2, t.resolve_dead_letters_ms);
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "resolving dead letters");
  }
  return Status::Ok();
}

Status SqliteStore::write_outbox(const Transition& t, int64_t num) {
  for (const OutboxEvent& e : t.outbox) {
    Statement& st = w_.insert_outbox;
    Statement::Reset reset(st);
    st.bind_text(1, e.id);
    st.bind(2, num);
    st.bind_text(3, e.type);
    st.bind_text(4, e.source);
    st.bind(5, e.time_ms);
    st.bind_text(6, e.data_json);
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "writing an outbox event");
  }
  return Status::Ok();
}

// Replaces the instance's event waits when the transition says so.
Status SqliteStore::write_event_waits(const Transition& t, int64_t num) {
  if (!t.event_waits) return Status::Ok();
  {
    Statement& st = w_.delete_event_waits;
    Statement::Reset reset(st);
    st.bind(1, num);
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "writing the event waits");
  }
  for (const EventWait& w : *t.event_waits) {
    Statement& st = w_.insert_event_wait;
    Statement::Reset reset(st);
    st.bind(1, num);
    st.bind(2, static_cast<int64_t>(w.fiber));
    st.bind_text(3, w.type);
    st.bind_text(4, w.match_json);
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "writing the event waits");
  }
  return Status::Ok();
}

Status SqliteStore::write_fibers(const Transition& t, int64_t num) {
  for (const FiberRow& f : t.fibers) {
    Statement& st = f.state.empty() ? w_.delete_fiber : w_.upsert_fiber;
    Statement::Reset reset(st);
    st.bind(1, num);
    st.bind(2, static_cast<int64_t>(f.fiber));
    if (!f.state.empty()) st.bind_blob(3, f.state.data(), f.state.size());
    int rc = st.step();
    if (rc != SQLITE_DONE) return wdb_.error(rc, "writing a fiber");
  }
  return Status::Ok();
}

Status SqliteStore::update_instance(const InstanceRecord& r, int64_t num, int64_t status,
                                    bool* updated) {
  Statement& st =
      status == static_cast<int64_t>(r.status) ? w_.update_same_status : w_.update_instance;
  Statement::Reset reset(st);
  bind_instance(st, r);
  st.bind(14, num);
  st.bind(15, status);
  int rc = st.step();
  if (rc != SQLITE_DONE) return wdb_.error(rc, "updating an instance");
  *updated = sqlite3_changes(wdb_.get()) == 1;
  return Status::Ok();
}

Status SqliteStore::append_history(int64_t num, const std::vector<HistoryEvent>& events,
                                   int64_t* seq) {
  Statement& st = w_.insert_history;
  bool reread = false;
  for (size_t i = 0; i < events.size();) {
    const HistoryEvent& e = events[i];
    int rc;
    {
      Statement::Reset reset(st);
      bind_history(st, num, *seq + 1, e);
      rc = st.step();
    }
    if (rc == SQLITE_DONE) {
      ++*seq;
      ++i;
      continue;
    }
    if (rc != SQLITE_CONSTRAINT_PRIMARYKEY || reread) {
      return wdb_.error(rc, "appending to the history");
    }
    // Someone else appended to this instance's history: start after the
    // last seq actually stored, and retry this event.
    reread = true;
    Statement::Reset reset(w_.last_seq);
    w_.last_seq.bind(1, num);
    rc = w_.last_seq.step();
    if (rc == SQLITE_ROW) {
      *seq = w_.last_seq.column_int(0);
    } else {
      return wdb_.error(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "reading the history");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Reads and direct writes, on the reader connection.
//
// Each call holds rdb_mu_ for its whole duration, so reads of one store are
// serialised; each statement sees one committed snapshot (WAL), taken when it
// first steps, and never blocks on the writer. The Reset guards end that
// snapshot when the call returns: a snapshot kept open would stop
// checkpoints from recycling the WAL.

// A direct write: it waits (busy timeout) for the writer's or another
// process's transaction to end, and commits at the store's durability level.
Status SqliteStore::put_program(const std::string& hash, const std::string& name,
                                const std::vector<uint8_t>& image) {
  std::lock_guard lock(rdb_mu_);
  {
    // Most puts are of a program that is already there (every worker start):
    // check without taking the write lock.
    Statement::Reset reset(r_.has_program);
    r_.has_program.bind_text(1, hash);
    int rc = r_.has_program.step();
    if (rc == SQLITE_ROW) return Status::Ok();
    if (rc != SQLITE_DONE) return rdb_.error(rc, "looking up a program");
  }
  Statement::Reset reset(r_.put_program);
  r_.put_program.bind_text(1, hash);
  r_.put_program.bind_text(2, name);
  r_.put_program.bind_blob(3, image.data(), image.size());
  r_.put_program.bind(4, now_ms());
  int rc = r_.put_program.step();
  if (rc != SQLITE_DONE) return rdb_.error(rc, "storing a program");
  return Status::Ok();
}

Result<std::vector<uint8_t>> SqliteStore::get_program(const std::string& hash) {
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.get_program);
  r_.get_program.bind_text(1, hash);
  int rc = r_.get_program.step();
  if (rc == SQLITE_DONE) {
    return Status(StatusCode::kNotFound, fmt::format("no program {} in {}", hash, path_));
  }
  if (rc != SQLITE_ROW) return rdb_.error(rc, "reading a program");
  std::string_view image = r_.get_program.column_blob(0);
  return std::vector<uint8_t>(image.begin(), image.end());
}

Result<std::optional<InstanceRecord>> SqliteStore::get_instance(const std::string& id) {
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.get_instance);
  r_.get_instance.bind_text(1, id);
  int rc = r_.get_instance.step();
  if (rc == SQLITE_DONE) return std::optional<InstanceRecord>();
  if (rc != SQLITE_ROW) return rdb_.error(rc, "reading an instance");
  int64_t num = 0;
  Result<InstanceRecord> r = read_instance(r_.get_instance, path_, &num);
  if (!r.ok()) return r.status();
  Status s = read_fibers(num, r->fibers);
  if (!s.ok()) return s;
  s = read_inbox(num, r->inbox);
  if (!s.ok()) return s;
  return std::optional<InstanceRecord>(std::move(r).value());
}

Status SqliteStore::read_inbox(int64_t num, std::vector<InboxMessage>& out) {
  if (!has_inbox_) return Status::Ok();
  Statement::Reset reset(r_.inbox_of);
  r_.inbox_of.bind(1, num);
  return read_messages(r_.inbox_of, out);
}

Status SqliteStore::read_messages(Statement& st, std::vector<InboxMessage>& out) {
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading an inbox");
    out.push_back(read_message(st));
  }
}

Status SqliteStore::read_fibers(int64_t num, std::vector<FiberRow>& out) {
  if (!has_fibers_) return Status::Ok();
  Statement& st = r_.fibers_of;
  Statement::Reset reset(st);
  st.bind(1, num);
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading an instance's fibers");
    out.push_back(
        FiberRow{static_cast<uint32_t>(st.column_int(0)), std::string(st.column_blob(1))});
  }
}

Result<std::vector<InstanceRecord>> SqliteStore::read_instances(Statement& st, bool with_fibers) {
  std::vector<InstanceRecord> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "listing instances");
    int64_t num = 0;
    Result<InstanceRecord> r = read_instance(st, path_, &num);
    if (!r.ok()) return r.status();
    if (with_fibers) {
      Status s = read_fibers(num, r->fibers);
      if (!s.ok()) return s;
      s = read_inbox(num, r->inbox);
      if (!s.ok()) return s;
    }
    out.push_back(std::move(r).value());
  }
}

Result<std::vector<InstanceRecord>> SqliteStore::list_unfinished() {
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.list_unfinished);
  return read_instances(r_.list_unfinished, true);
}

Result<std::vector<StatusCount>> SqliteStore::count_by_status() {
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.count_by_status;
  Statement::Reset reset(st);
  std::vector<StatusCount> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "counting instances by status");
    out.push_back(
        {static_cast<InstanceStatus>(st.column_int(0)), static_cast<uint64_t>(st.column_int(1))});
  }
}

Result<std::vector<HistoryEvent>> SqliteStore::history(const std::string& id) {
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.history;
  Statement::Reset reset(st);
  st.bind_text(1, id);
  std::vector<HistoryEvent> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading the history");
    HistoryEvent& e = out.emplace_back();
    e.time_ms = st.column_int(0);
    e.kind = st.column_text(1);
    e.step = st.column_text(2);
    e.attempt = static_cast<uint32_t>(st.column_int(3));
    e.error_class = st.column_text(4);
    e.message = st.column_text(5);
    e.data_json = st.column_text(6);
  }
}

Result<std::vector<DeadLetter>> SqliteStore::dead_letters(const std::string& id) {
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.dead_letters;
  Statement::Reset reset(st);
  st.bind_text(1, id);
  std::vector<DeadLetter> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading dead letters");
    DeadLetter& d = out.emplace_back();
    d.instance_id = id;
    d.step = st.column_text(0);
    d.time_ms = st.column_int(1);
    d.error_class = st.column_text(2);
    d.message = st.column_text(3);
    d.resolved_ms = st.column_int(4);
  }
}

namespace {
int64_t sql_limit(size_t limit) {
  return static_cast<int64_t>(
      std::min<size_t>(limit, static_cast<size_t>(std::numeric_limits<int64_t>::max())));
}
}  // namespace

Result<std::vector<InstanceRecord>> SqliteStore::query_instances(const InstanceQuery& query) {
  std::lock_guard lock(rdb_mu_);
  int64_t created = std::numeric_limits<int64_t>::max();
  int64_t num = std::numeric_limits<int64_t>::max();
  if (!query.before.empty()) {
    Statement::Reset reset(r_.cursor);
    r_.cursor.bind_text(1, query.before);
    int rc = r_.cursor.step();
    if (rc == SQLITE_DONE) {
      return Status(StatusCode::kNotFound,
                    fmt::format("no instance {} to page from (before=)", query.before));
    }
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading the cursor's instance");
    created = r_.cursor.column_int(0);
    num = r_.cursor.column_int(1);
  }
  Statement& st = query.status ? r_.query_by_status : r_.query_all;
  Statement::Reset reset(st);
  if (query.status) st.bind(1, static_cast<int64_t>(*query.status));
  st.bind_text(2, query.saga);
  st.bind(3, created);
  st.bind(4, num);
  st.bind(5, sql_limit(query.limit));
  return read_instances(st, false);
}

Result<std::vector<DeadLetterEntry>> SqliteStore::list_dead_letters(size_t limit) {
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.list_dead_letters;
  Statement::Reset reset(st);
  st.bind(1, sql_limit(limit));
  std::vector<DeadLetterEntry> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading dead letters");
    DeadLetterEntry& d = out.emplace_back();
    d.letter.instance_id = st.column_text(0);
    d.saga = st.column_text(1);
    d.status = static_cast<InstanceStatus>(st.column_int(2));
    d.letter.step = st.column_text(3);
    d.letter.time_ms = st.column_int(4);
    d.letter.error_class = st.column_text(5);
    d.letter.message = st.column_text(6);
    d.attempts = static_cast<uint32_t>(st.column_int(7));
  }
}

Result<std::vector<ProgramInfo>> SqliteStore::list_programs() {
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.list_programs;
  Statement::Reset reset(st);
  std::vector<ProgramInfo> out;
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading programs");
    ProgramInfo& p = out.emplace_back();
    p.hash = st.column_text(0);
    p.name = st.column_text(1);
    p.created_ms = st.column_int(2);
  }
}

// Writes nothing: the checks a commit would fail first.
Status SqliteStore::check_ready() {
  if (options_.read_only) return refuse_write("take commits");
  std::lock_guard lock(rdb_mu_);
  if (sqlite3_db_readonly(rdb_.get(), "main") == 1 || ::access(path_.c_str(), W_OK) != 0) {
    return {StatusCode::kIoError, fmt::format("database is read-only: {}", path_)};
  }
  Result<int64_t> version = rdb_.query_int("PRAGMA user_version", "reading the schema version");
  if (!version.ok()) return version.status();
  if (*version != latest_schema_version()) {
    return {StatusCode::kUnsupported,
            fmt::format("database has schema {}, this build writes {}: {}", *version,
                        latest_schema_version(), path_)};
  }
  return Status::Ok();
}

// A direct write like put_program: committed (and synced under kFull, as
// the reader connection runs with synchronous=FULL) before it returns.
Status SqliteStore::post(InboxMessage& m) {
  if (options_.read_only) return refuse_write("post a message");
  if (!has_inbox_) return {StatusCode::kUnsupported, "the database has no inbox: " + path_};
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.post);
  r_.post.bind_text(1, m.id);
  r_.post.bind_text(2, m.instance_id);
  r_.post.bind_text(3, m.kind);
  r_.post.bind_text(4, m.payload_json);
  r_.post.bind(5, m.posted_ms);
  int rc = r_.post.step();
  if (rc == SQLITE_CONSTRAINT_UNIQUE) {
    return {StatusCode::kInvalidArgument,
            fmt::format("a message with id {} was posted already: {}", m.id, path_)};
  }
  if (rc != SQLITE_DONE) return rdb_.error(rc, "posting a message");
  if (sqlite3_changes(rdb_.get()) > 0) {
    m.seq = sqlite3_last_insert_rowid(rdb_.get());
    return Status::Ok();
  }
  Statement::Reset reset_status(r_.status_of);
  r_.status_of.bind_text(1, m.instance_id);
  rc = r_.status_of.step();
  if (rc == SQLITE_DONE) {
    return {StatusCode::kNotFound, fmt::format("no instance {} in {}", m.instance_id, path_)};
  }
  if (rc != SQLITE_ROW) return rdb_.error(rc, "posting a message");
  return not_postable(m.instance_id, r_.status_of.column_int(0));
}

Status SqliteStore::read_outbox(Statement& st, std::vector<OutboxEvent>& out) {
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE) return Status::Ok();
    if (rc != SQLITE_ROW) return rdb_.error(rc, "reading the outbox");
    OutboxEvent e;
    e.id = st.column_text(0);
    e.instance_id = st.column_text(1);
    e.seq = st.column_int(2);
    e.type = st.column_text(3);
    e.source = st.column_text(4);
    e.time_ms = st.column_int(5);
    e.data_json = st.column_text(6);
    e.attempts = static_cast<uint32_t>(st.column_int(7));
    e.next_due_ms = st.column_int(8);
    e.delivered_ms = st.column_int(9);
    e.dead = st.column_int(10) != 0;
    e.last_error = st.column_text(11);
    out.push_back(std::move(e));
  }
}

Result<std::vector<OutboxEvent>> SqliteStore::claim_outbox(const std::string& owner, int64_t now_ms,
                                                           int64_t lease_until_ms, size_t limit) {
  if (options_.read_only) return refuse_write("claim outbox rows");
  if (!has_outbox_) return Status{StatusCode::kUnsupported, "the database has no outbox: " + path_};
  std::vector<OutboxEvent> out;
  std::lock_guard lock(rdb_mu_);
  {
    Statement::Reset reset(r_.outbox_due);
    r_.outbox_due.bind(1, now_ms);
    int rc = r_.outbox_due.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return rdb_.error(rc, "claiming outbox rows");
  }
  Status s = write_on_reader("claiming outbox rows", [&] {
    Statement::Reset reset(r_.claim_outbox);
    r_.claim_outbox.bind_text(1, owner);
    r_.claim_outbox.bind(2, now_ms);
    r_.claim_outbox.bind(3, lease_until_ms);
    r_.claim_outbox.bind(4, limit == 0 ? -1 : static_cast<int64_t>(limit));
    return read_outbox(r_.claim_outbox, out);
  });
  if (!s.ok()) return s;
  // RETURNING gives no order; oldest first.
  std::sort(out.begin(), out.end(), [](const OutboxEvent& a, const OutboxEvent& b) {
    return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.instance_id < b.instance_id;
  });
  return out;
}

Status SqliteStore::settle_outbox(const std::string& id, const OutboxSettle& settle) {
  if (options_.read_only) return refuse_write("settle an outbox row");
  if (!has_outbox_) return Status{StatusCode::kUnsupported, "the database has no outbox: " + path_};
  std::lock_guard lock(rdb_mu_);
  return write_on_reader("settling an outbox row", [&] { return settle_in_transaction(id, settle); });
}

Status SqliteStore::settle_in_transaction(const std::string& id, const OutboxSettle& settle) {
  Statement& st = r_.settle_outbox;
  Statement::Reset reset(st);
  const bool delivered = settle.outcome == OutboxSettle::Outcome::kDelivered;
  st.bind_text(1, id);
  st.bind(2, delivered ? std::max<int64_t>(settle.time_ms, 1) : 0);
  st.bind(3, settle.outcome == OutboxSettle::Outcome::kDead ? 1 : 0);
  st.bind(4, 1);
  st.bind(5, settle.next_due_ms);
  st.bind_text(6, settle.error);
  int rc = st.step();
  if (rc != SQLITE_DONE) return rdb_.error(rc, "settling an outbox row");
  if (sqlite3_changes(rdb_.get()) == 0) {
    return {StatusCode::kNotFound, fmt::format("no outbox row {} in {}", id, path_)};
  }
  return Status::Ok();
}

Result<std::vector<OutboxEvent>> SqliteStore::list_outbox(const OutboxQuery& query) {
  std::vector<OutboxEvent> out;
  if (!has_outbox_) return out;
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.list_outbox;
  Statement::Reset reset(st);
  st.bind(1, static_cast<int64_t>(query.which));
  st.bind_text(2, query.instance_id);
  st.bind(3, query.limit == 0 ? -1 : static_cast<int64_t>(query.limit));
  if (Status s = read_outbox(st, out); !s.ok()) return s;
  return out;
}

Result<uint64_t> SqliteStore::prune_outbox(int64_t delivered_before_ms) {
  if (options_.read_only) return refuse_write("prune the outbox");
  if (!has_outbox_) return uint64_t{0};
  std::lock_guard lock(rdb_mu_);
  int64_t pruned = 0;
  Status s = write_on_reader("pruning the outbox", [&] {
    Statement::Reset reset(r_.prune_outbox);
    r_.prune_outbox.bind(1, delivered_before_ms);
    const int rc = r_.prune_outbox.step();
    if (rc != SQLITE_DONE) return rdb_.error(rc, "pruning the outbox");
    pruned = sqlite3_changes(rdb_.get());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return static_cast<uint64_t>(pruned);
}

Result<std::vector<InboxMessage>> SqliteStore::inbox(const std::string& id) {
  std::vector<InboxMessage> out;
  if (!has_inbox_) return out;
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.inbox_of_id);
  r_.inbox_of_id.bind_text(1, id);
  if (Status s = read_messages(r_.inbox_of_id, out); !s.ok()) return s;
  return out;
}

Result<std::vector<InboxMessage>> SqliteStore::inbox_since(int64_t after_seq, size_t limit) {
  std::vector<InboxMessage> out;
  if (!has_inbox_) return out;
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.inbox_since);
  r_.inbox_since.bind(1, after_seq);
  r_.inbox_since.bind(2, static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  if (Status s = read_messages(r_.inbox_since, out); !s.ok()) return s;
  return out;
}

Result<int64_t> SqliteStore::last_inbox_seq() {
  if (!has_inbox_) return int64_t{0};
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.last_inbox_seq;
  Statement::Reset reset(st);
  int rc = st.step();
  if (rc != SQLITE_ROW) return rdb_.error(rc, "reading the inbox");
  return st.column_int(0);
}

// Reads the unfinished instances and claims the free ones in one IMMEDIATE
// transaction of the reader connection, so two engines cannot both claim an
// instance.
Result<std::vector<InstanceRecord>> SqliteStore::claim(
    const std::string& owner, int64_t now_ms, int64_t lease_until_ms,
    const std::function<bool(const std::string& other)>& owner_dead, const std::string& only) {
  if (options_.read_only) return refuse_write("claim instances");
  std::lock_guard lock(rdb_mu_);
  std::vector<InstanceRecord> claimed;
  Status s = write_on_reader("claiming instances", [&]() -> Status {
    Result<std::vector<InstanceRecord>> all = [&]() -> Result<std::vector<InstanceRecord>> {
      Statement::Reset reset(r_.list_unfinished);
      return read_instances(r_.list_unfinished, true);
    }();
    if (!all.ok()) return all.status();
    for (InstanceRecord& r : all.value()) {
      if (!only.empty() && r.id != only) continue;
      if (options_.max_claim > 0 && claimed.size() >= options_.max_claim) break;
      bool free = r.owner.empty() || r.owner == owner || r.lease_until_ms < now_ms ||
                  (owner_dead && owner_dead(r.owner));
      if (!free) continue;
      Statement::Reset reset(r_.claim);
      r_.claim.bind_text(1, r.id);
      r_.claim.bind_text(2, owner);
      r_.claim.bind(3, lease_until_ms);
      int rc = r_.claim.step();
      if (rc != SQLITE_DONE) return rdb_.error(rc, "claiming instances");
      r.owner = owner;
      r.lease_until_ms = lease_until_ms;
      claimed.push_back(std::move(r));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return claimed;
}

// One IMMEDIATE transaction of the reader connection, like claim(): the
// checks and the writes see the same row, and an engine claiming the
// instance at the same moment waits for the lock and then reads the moved row.
Status SqliteStore::move_instance(
    const InstanceMove& move,
    const std::function<bool(const std::string& owner, int64_t lease_until_ms)>& claim_gone) {
  if (options_.read_only) return refuse_write("move an instance");
  std::lock_guard lock(rdb_mu_);
  return write_on_reader("moving an instance", [&]() -> Status {
    auto run = [&](const char* sql, const std::function<void(Statement&)>& bind) -> Status {
      Statement st;
      int rc = st.prepare(rdb_.get(), sql);
      if (rc != SQLITE_OK) return rdb_.error(rc, "moving an instance");
      bind(st);
      rc = st.step();
      if (rc != SQLITE_DONE) return rdb_.error(rc, "moving an instance");
      return Status::Ok();
    };
    Statement read;
    int rc = read.prepare(rdb_.get(), kMoveReadSql);
    if (rc != SQLITE_OK) return rdb_.error(rc, "moving an instance");
    read.bind_text(1, move.id);
    rc = read.step();
    if (rc == SQLITE_DONE) {
      return Status{StatusCode::kNotFound, fmt::format("no instance {} in {}", move.id, path_)};
    }
    if (rc != SQLITE_ROW) return rdb_.error(rc, "moving an instance");
    const int64_t num = read.column_int(0);
    const std::string program(read.column_text(1));
    const int64_t status = read.column_int(2);
    const bool same_checkpoint = read.column_blob(3) == move.expected_checkpoint;
    const std::string owner(read.column_text(4));
    const int64_t lease_until = read.column_int(5);
    read.reset();
    std::vector<FiberRow> fibers;
    Status s = read_fibers(num, fibers);
    if (!s.ok()) return s;
    s = check_move(move, status, program, same_checkpoint, fibers, owner, lease_until, claim_gone);
    if (!s.ok()) return s;
    s = run(kMoveUpdateSql, [&](Statement& st) {
      st.bind(1, num);
      st.bind_text(2, move.to_program);
      st.bind_blob(3, move.checkpoint.data(), move.checkpoint.size());
      st.bind(4, move.event.time_ms);
    });
    if (s.ok() && has_fibers_) {
      s = run(kMoveDeleteFibersSql, [&](Statement& st) { st.bind(1, num); });
      for (const FiberRow& f : move.fibers) {
        if (!s.ok()) break;
        s = run(kUpsertFiberSql, [&](Statement& st) {
          st.bind(1, num);
          st.bind(2, f.fiber);
          st.bind_blob(3, f.state.data(), f.state.size());
        });
      }
    } else if (s.ok() && !move.fibers.empty()) {
      s = Status(StatusCode::kUnsupported, "the schema has no fibers table: " + path_);
    }
    if (s.ok()) {
      // The next seq, read under the lock (a writer that cached the last seq
      // notices one it did not write: see append_history).
      Statement last;
      rc = last.prepare(rdb_.get(), kLastSeqSql);
      if (rc != SQLITE_OK) return rdb_.error(rc, "moving an instance");
      last.bind(1, num);
      rc = last.step();
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rdb_.error(rc, "moving an instance");
      const int64_t seq = rc == SQLITE_ROW ? last.column_int(0) : 0;
      last.reset();
      s = run(kInsertHistorySql, [&](Statement& st) { bind_history(st, num, seq + 1, move.event); });
    }
    if (!s.ok()) return s;
    return s;
  });
}

Status SqliteStore::renew(const std::string& owner, int64_t lease_until_ms) {
  if (options_.read_only) return refuse_write("renew leases");
  std::lock_guard lock(rdb_mu_);
  Statement::Reset reset(r_.renew);
  r_.renew.bind_text(1, owner);
  r_.renew.bind(2, lease_until_ms);
  int rc = r_.renew.step();
  if (rc != SQLITE_DONE) return rdb_.error(rc, "renewing leases");
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Extensions (sqlite_store.hpp).

Result<int64_t> SqliteStore::writer_pragma(std::string_view name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
      })) {
    return Status(StatusCode::kInvalidArgument, fmt::format("not a pragma name: '{}'", name));
  }
  if (options_.read_only) return refuse_write("read the writer's settings");
  std::lock_guard lock(wdb_mu_);
  return wdb_.query_int(fmt::format("PRAGMA {}", name).c_str(), "reading a pragma");
}

Result<int64_t> SqliteStore::set_max_page_count(int64_t pages) {
  if (options_.read_only) return refuse_write("limit its size");
  std::lock_guard lock(wdb_mu_);
  return wdb_.query_int(fmt::format("PRAGMA max_page_count = {}", pages).c_str(),
                        "setting max_page_count");
}

// ---------------------------------------------------------------------------
// Incoming events (saga/store.hpp, EventRecord).
//
// record_event() is one transaction on the writer connection, between the
// writer's batches (wdb_mu_): the event row, then each start as apply()
// writes any transition, then COMMIT with SQLite syncing (synchronous=FULL
// under kFull), so the event and its instances are durable together or not
// at all. A duplicate (source, id) inserts nothing; the stored row is read
// back in the same transaction and it is rolled back.

EventRecord read_event(const Statement& st) {
  EventRecord e;
  e.source = st.column_text(0);
  e.id = st.column_text(1);
  e.type = st.column_text(2);
  e.event_json = st.column_text(3);
  e.received_ms = st.column_int(4);
  e.matched = st.column_int(5) != 0;
  e.started = split_started(st.column_text(6));
  e.note = st.column_text(7);
  e.seq = st.column_int(8);
  e.woke = split_started(st.column_text(9));
  return e;
}

Result<std::vector<std::pair<int64_t, std::string>>> SqliteStore::waiting_for(
    const EventRecord& event, const EventDelivery& delivery) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!delivery.fits) return out;
  Statement& st = w_.event_waits_of_type;
  Statement::Reset reset(st);
  st.bind_text(1, event.type);
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    const int64_t num = st.column_int(0);
    if (!out.empty() && out.back().first == num) continue;  // One message per instance.
    if (delivery.fits(st.column_text(2))) out.emplace_back(num, std::string(st.column_text(1)));
  }
  if (rc != SQLITE_DONE) return wdb_.error(rc, "finding the instances that await an event");
  return out;
}

Result<RecordedEvent> SqliteStore::record_event(const EventRecord& event,
                                                std::vector<Transition> starts,
                                                const EventDelivery& delivery) {
  if (options_.read_only) return refuse_write("record an event");
  {
    std::lock_guard failure_lock(sync_failure_mu_);
    if (!sync_failure_.ok()) return sync_failure_;
  }
  std::lock_guard db_lock(wdb_mu_);
  if (options_.durability == Durability::kFull) {
    if (Status s = set_writer_sync(true); !s.ok()) return s;
  }
  int rc;
  {
    Statement::Reset reset(w_.begin);
    rc = w_.begin.step();
  }
  if (rc != SQLITE_DONE) return wdb_.error(rc, "beginning to record an event");
  RecordedEvent out;
  std::vector<std::pair<int64_t, std::string>> woke;
  auto run = [&]() -> Status {
    auto waiting = waiting_for(event, delivery);
    if (!waiting.ok()) return waiting.status();
    woke = std::move(waiting).value();
    std::vector<std::string> woke_ids;
    for (const auto& w : woke) woke_ids.push_back(w.second);
    {
      Statement& st = w_.insert_event;
      Statement::Reset reset(st);
      st.bind_text(1, event.source);
      st.bind_text(2, event.id);
      st.bind_text(3, event.type);
      st.bind_text(4, event.event_json);
      st.bind(5, event.received_ms);
      st.bind(6, event.matched || !woke.empty() ? 1 : 0);
      const std::string started = join_started(event.started);
      st.bind_text(7, started);
      st.bind_text(8, event.note);
      const std::string woke_text = join_started(woke_ids);
      st.bind_text(9, woke_text);
      rc = st.step();
      if (rc != SQLITE_DONE) return wdb_.error(rc, "recording an event");
      out.duplicate = sqlite3_changes(wdb_.get()) == 0;
    }
    Statement& find = w_.find_event;
    Statement::Reset reset(find);
    find.bind_text(1, event.source);
    find.bind_text(2, event.id);
    rc = find.step();
    if (rc != SQLITE_ROW)
      return wdb_.error(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "reading an event");
    out.event = read_event(find);
    if (out.duplicate) return Status::Ok();
    for (const auto& [num, id] : woke) {
      InboxMessage m = delivery.message(out.event.seq, id, event.received_ms);
      Statement& post = w_.post_by_num;
      Statement::Reset reset_post(post);
      post.bind_text(1, m.id);
      post.bind(2, num);
      post.bind_text(3, m.kind);
      post.bind_text(4, m.payload_json);
      post.bind(5, m.posted_ms);
      rc = post.step();
      if (rc != SQLITE_DONE) return wdb_.error(rc, "handing an event to an instance");
      m.seq = sqlite3_last_insert_rowid(wdb_.get());
      out.handed.push_back(std::move(m));
    }
    return Status::Ok();
  };
  Status s = run();
  if (s.ok() && !out.duplicate) {
    for (const Transition& t : starts) {
      Status rejected;
      s = apply(t, &rejected);
      if (s.ok() && !rejected.ok()) s = rejected;
      if (!s.ok()) break;
    }
  }
  if (s.ok() && !out.duplicate) {
    Statement::Reset reset(w_.commit);
    rc = w_.commit.step();
    if (rc == SQLITE_DONE) return out;
    s = wdb_.error(rc, "committing an event");
  }
  if (sqlite3_get_autocommit(wdb_.get()) == 0) {
    Statement::Reset reset(w_.rollback);
    w_.rollback.step();
  }
  // The Known cache may describe the rolled-back creations.
  known_.clear();
  if (!s.ok()) return s;
  return out;
}

Result<std::vector<EventRecord>> SqliteStore::list_events(size_t limit, bool unmatched_only) {
  std::vector<EventRecord> out;
  if (!has_events_) return out;
  std::lock_guard lock(rdb_mu_);
  Statement& st = r_.list_events;
  Statement::Reset reset(st);
  st.bind(1, static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  st.bind(2, unmatched_only ? 1 : 0);
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_event(st));
  if (rc != SQLITE_DONE) return rdb_.error(rc, "listing events");
  return out;
}

}  // namespace

std::optional<SqliteStoreStats> sqlite_store_stats(const Store& store) {
  const auto* s = dynamic_cast<const SqliteStore*>(&store);
  if (s == nullptr) return std::nullopt;
  return s->stats();
}

Result<int64_t> sqlite_store_writer_pragma(Store& store, std::string_view name) {
  auto* s = dynamic_cast<SqliteStore*>(&store);
  if (s == nullptr) return Status(StatusCode::kInvalidArgument, "not a SQLite store");
  return s->writer_pragma(name);
}

bool sqlite_store_fail_next_sync(Store& store, int error) {
  auto* s = dynamic_cast<SqliteStore*>(&store);
  if (s == nullptr) return false;
  s->inject_sync_errno_.store(error);
  return true;
}

Result<int64_t> sqlite_store_set_max_page_count(Store& store, int64_t pages) {
  auto* s = dynamic_cast<SqliteStore*>(&store);
  if (s == nullptr) return Status(StatusCode::kInvalidArgument, "not a SQLite store");
  return s->set_max_page_count(pages);
}

}  // namespace saga::store

namespace saga {

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                 const StoreOptions& options) {
  if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("the SQLite store needs a file path, got '{}'", path));
  }
  auto store = std::make_unique<store::SqliteStore>(path, options);
  Status s = store->open();
  if (!s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace saga
