// The SQLite store's schema as an ordered list of migrations, and the checks
// that decide whether a file is a Saga database this build may open (see
// schema.hpp). docs/store.md documents every table and column defined here.
#include "runtime/store/schema.hpp"

#include <fmt/format.h>

#include <iterator>

namespace saga::store {
namespace {

// Version 1: the initial schema.
//
// * Text columns are NOT NULL and default to '' so that readers never see
//   NULL; the store writes '' for "none".
// * instances.num is the rowid: a number given in creation order. history and
//   dead_letters refer to an instance by num, not by its text id, because ids
//   may be random (the engine's are time-ordered, but the store does not rely
//   on it): keyed by a random id, the history of the instances running at
//   any moment would be spread over the whole history b-tree, and each group
//   commit would rewrite one page per instance. Keyed by num, the running
//   (recent) instances share the last pages of every tree, and rows are
//   smaller. The public id stays unique and indexed.
// * instances_by_status serves query_instances(status) newest first and
//   list_unfinished(); instances_by_created serves query_instances(all).
// * history is clustered by (instance, seq): reading one instance's history
//   is one range scan, and the next seq of an instance is one seek to the end
//   of its range.
// * dead_letters keeps insertion order in its rowid.
// * owner and lease_until say which engine runs an unfinished instance (see
//   Store::claim): the engine process that created or claimed it, until
//   lease_until, renewed while it runs.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE programs (
  hash TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  image BLOB NOT NULL,
  created_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE instances (
  num INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  program TEXT NOT NULL DEFAULT '',
  saga TEXT NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 0,
  input TEXT NOT NULL DEFAULT '',
  output TEXT NOT NULL DEFAULT '',
  error_class TEXT NOT NULL DEFAULT '',
  error_message TEXT NOT NULL DEFAULT '',
  checkpoint BLOB NOT NULL DEFAULT x'',
  wake_at INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT '',
  lease_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX instances_by_status ON instances(status, created_ms);
CREATE INDEX instances_by_created ON instances(created_ms);
CREATE TABLE history (
  instance INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  step TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  error_class TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  data TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (instance, seq)
) WITHOUT ROWID;
CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY,
  instance INTEGER NOT NULL,
  step TEXT NOT NULL DEFAULT '',
  time_ms INTEGER NOT NULL,
  error_class TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX dead_letters_by_instance ON dead_letters(instance, id);
)sql";

// Version 2: the child fibers of running instances (the branches of a
// `parallel` block, the iterations of a `foreach`), one row each, so that a
// transition of one fiber rewrites that fiber's checkpoint and not the whole
// instance's. Keyed like history by the instance's num; the rows of an
// instance go when it joins its fibers or ends.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE fibers (
  instance INTEGER NOT NULL,
  fiber INTEGER NOT NULL,
  state BLOB NOT NULL,
  PRIMARY KEY (instance, fiber)
) WITHOUT ROWID;
)sql";

// Version 3: the durable inbox of every instance (saga/store.hpp,
// InboxMessage), keyed like history by the instance's num; seq orders all
// posts of the database (AUTOINCREMENT: never reused, so an engine that
// remembers the last seq it saw misses nothing). Consumed rows are kept,
// marked with consumed_ms; the partial index holds only the unconsumed ones,
// so finding new messages stays one probe however many were consumed. The
// cancel_requested flag of older databases becomes a `cancel` message (the
// column stays, unused), and dead letters get resolved_ms (an operator
// retried or skipped the undo).
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE inbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  instance INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL DEFAULT '',
  posted_ms INTEGER NOT NULL,
  consumed_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX inbox_unconsumed ON inbox(instance, seq) WHERE consumed_ms = 0;
INSERT INTO inbox (id, instance, kind, posted_ms)
  SELECT 'cancel-' || id, num, 'cancel', updated_ms FROM instances
  WHERE cancel_requested <> 0 AND status IN (0, 1) ORDER BY num;
UPDATE instances SET cancel_requested = 0 WHERE cancel_requested <> 0;
ALTER TABLE dead_letters ADD COLUMN resolved_ms INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 4: the transactional outbox (saga/store.hpp, OutboxEvent;
// docs/events.md). A row is inserted by the transition that emits it and
// keyed by its stable event id; instance refers to instances.num like
// history, and seq orders the rows of one instance. The partial index holds
// only the open rows (not delivered, not dead), so a relay's claim scans
// what is still to send, however many were delivered. claimed_by and
// claimed_until are the relay's lease on a row it is delivering.
constexpr const char* kSchemaV4 = R"sql(
CREATE TABLE outbox (
  id TEXT PRIMARY KEY NOT NULL,
  instance INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT '',
  time_ms INTEGER NOT NULL,
  data TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_due INTEGER NOT NULL DEFAULT 0,
  delivered_ms INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  claimed_by TEXT NOT NULL DEFAULT '',
  claimed_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_open ON outbox(instance, seq) WHERE delivered_ms = 0 AND dead = 0;
CREATE INDEX outbox_by_instance ON outbox(instance, seq);
)sql";

// Version 5: incoming events (saga/store.hpp, EventRecord), deduplicated by
// (source, id); `started` holds the ids of the instances the event started,
// separated by spaces (instance ids have none). seq orders them as received
// (AUTOINCREMENT: never reused); the index serves `sagactl events ls
// --unmatched`.
constexpr const char* kSchemaEventsIn = R"sql(
CREATE TABLE events_in (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  event TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  matched INTEGER NOT NULL,
  started TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '',
  UNIQUE (source, id)
);
CREATE INDEX events_in_unmatched ON events_in(seq) WHERE matched = 0;
)sql";
// Version 6: the event waits of instances (saga/store.hpp, EventWait), one
// row per type a fiber waits for at an `await event`, found by type when an event
// comes in; and, per incoming event, the instances it was handed to
// (`woke`, ids separated by spaces, like `started`).
constexpr const char* kSchemaEventWaits = R"sql(
CREATE TABLE event_waits (
  instance INTEGER NOT NULL,
  fiber INTEGER NOT NULL,
  type TEXT NOT NULL,
  match TEXT NOT NULL,
  PRIMARY KEY (instance, fiber, type)
) WITHOUT ROWID;
CREATE INDEX event_waits_by_type ON event_waits(type, instance);
ALTER TABLE events_in ADD COLUMN woke TEXT NOT NULL DEFAULT '';
)sql";
// Append new migrations here (version 7, 8, ...); never edit a shipped one.
constexpr Migration kMigrations[] = {
    {1, "initial schema: programs, instances, history, dead_letters", kSchemaV1},
    {2, "fibers: the checkpoints of running branches and loop iterations", kSchemaV2},
    {3, "inbox: messages to instances (cancel requests become messages); resolved dead letters",
     kSchemaV3},
    {4, "outbox: events of instances, for the relay to deliver", kSchemaV4},
    {5, "events_in: incoming events, deduplicated by (source, id)", kSchemaEventsIn},
    {6, "event_waits: the awaits of instances for incoming events", kSchemaEventWaits},
};

}  // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}

int latest_schema_version() {
  return std::end(kMigrations)[-1].version;
}

namespace {

Result<Identity> read_identity_fields(Connection& conn) {
  Identity id;
  Result<int64_t> app = conn.query_int("PRAGMA application_id", "reading the database header");
  if (!app.ok()) return app.status();
  id.application_id = *app;
  Result<int64_t> version = conn.query_int("PRAGMA user_version", "reading the database header");
  if (!version.ok()) return version.status();
  id.user_version = *version;
  Result<int64_t> objects =
      conn.query_int("SELECT count(*) FROM sqlite_master", "reading the database schema");
  if (!objects.ok()) return objects.status();
  id.schema_objects = *objects;
  return id;
}

}  // namespace

// The three reads share one snapshot (a savepoint: a read transaction of
// its own, or a part of the caller's): read one by one, a process that
// creates the file meanwhile could be seen half-way, with its user_version
// but not yet its application_id, and the file refused as another
// application's.
Result<Identity> read_identity(Connection& conn) {
  Status begun = conn.exec("SAVEPOINT saga_identity", "reading the database header");
  if (!begun.ok()) return begun;
  Result<Identity> id = read_identity_fields(conn);
  Status released = conn.exec("RELEASE saga_identity", "reading the database header");
  if (id.ok() && !released.ok()) return released;
  return id;
}

// A negative user_version cannot come from Saga; it is refused as corrupt.
Status check_identity(const Identity& identity, int latest, const std::string& path) {
  if (identity.application_id == kApplicationId) {
    if (identity.user_version > latest) {
      return {StatusCode::kUnsupported,
              fmt::format("database was created by a newer Saga (schema {}; this build knows up "
                          "to {}): {}",
                          identity.user_version, latest, path)};
    }
    if (identity.user_version < 0) {
      return {StatusCode::kCorrupt,
              fmt::format("not a Saga database: schema version {} is invalid: {}",
                          identity.user_version, path)};
    }
    return Status::Ok();
  }
  if (identity.application_id == 0) {
    if (identity.user_version == 0 && identity.schema_objects == 0) return Status::Ok();  // New.
    return {StatusCode::kCorrupt,
            fmt::format("not a Saga database: it holds {} tables or indexes of another "
                        "application (application_id 0, user_version {}): {}",
                        identity.schema_objects, identity.user_version, path)};
  }
  return {StatusCode::kCorrupt,
          fmt::format("not a Saga database: its application_id is {:#010x}, Saga's is {:#010x}: {}",
                      static_cast<uint32_t>(identity.application_id),
                      static_cast<uint32_t>(kApplicationId), path)};
}

// The identity is read again under the write lock because the check done
// before it (in SqliteStore::open) may be stale: another process may have
// created or migrated the file in between.
Status migrate(Connection& conn, std::span<const Migration> list) {
  const int latest = list.empty() ? 0 : list.back().version;
  Status s = conn.exec("BEGIN IMMEDIATE", "locking the database to check its schema");
  if (!s.ok()) return s;

  auto run = [&]() -> Status {
    Result<Identity> identity = read_identity(conn);
    if (!identity.ok()) return identity.status();
    Status ok = check_identity(*identity, latest, conn.path());
    if (!ok.ok()) return ok;
    if (identity->application_id == 0) {
      ok = conn.exec(fmt::format("PRAGMA application_id = {}", kApplicationId).c_str(),
                     "creating the database");
      if (!ok.ok()) return ok;
    }
    for (const Migration& m : list) {
      if (m.version <= identity->user_version) continue;
      std::string doing =
          fmt::format("migrating the schema to version {} ({})", m.version, m.summary);
      ok = conn.exec(m.sql, doing);
      if (!ok.ok()) return ok;
      ok = conn.exec(fmt::format("PRAGMA user_version = {}", m.version).c_str(), doing);
      if (!ok.ok()) return ok;
    }
    return conn.exec("COMMIT", "committing the schema");
  };

  s = run();
  if (!s.ok() && sqlite3_get_autocommit(conn.get()) == 0) {
    sqlite3_exec(conn.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return s;
}

}  // namespace saga::store
