// The PostgreSQL schema (pg_schema.hpp). Never edit a migration that has
// shipped: append one. Free text (input, output, messages, step names) is
// bytea: PostgreSQL's text refuses NUL bytes and invalid UTF-8, and the store
// must keep whatever a participant answered.
#include "runtime/store/pg_schema.hpp"

#include <fmt/format.h>

#include <span>
#include <string>

namespace saga::store::pg {
namespace {

struct Migration {
  int version;
  const char* sql;
};

// instances.epoch counts the claims that changed the owner: every commit
// names the epoch its engine claimed at (fencing). instances.session is the
// store (one open of it) that claimed or created the row: an engine opened
// again in the same process, with the same owner, claims its rows afresh. history.seq is global, so
// an instance's events are ordered by it.
//
// The inbox (saga/store.hpp, InboxMessage) is the SQLite schema's (version
// 3): consumed rows are kept, marked with consumed_ms; the partial indexes
// hold only the unconsumed ones, so finding new messages stays one probe
// however many were consumed. seq orders every post of the database; posts
// are serialised (pg_store.cpp, post()), so seq order is commit order and an
// engine that remembers the last seq it saw misses nothing. Dead letters
// carry resolved_ms (an operator retried or skipped the undo).
//
// Version 1 was changed in place when the inbox replaced cancel_requested:
// the PostgreSQL store had not been released, so no database with the old
// version 1 exists. From now on, append a migration.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE saga_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE programs (hash text PRIMARY KEY, name bytea NOT NULL, image bytea NOT NULL,
                       created_ms bigint NOT NULL);
CREATE TABLE instances (
  num bigserial UNIQUE, id text PRIMARY KEY, program text NOT NULL, saga bytea NOT NULL,
  status smallint NOT NULL, input bytea NOT NULL, output bytea NOT NULL,
  error_class bytea NOT NULL, error_message bytea NOT NULL, checkpoint bytea NOT NULL,
  wake_at bigint NOT NULL, created_ms bigint NOT NULL,
  updated_ms bigint NOT NULL, owner text NOT NULL, lease_until bigint NOT NULL,
  epoch bigint NOT NULL DEFAULT 1, session text NOT NULL DEFAULT '');
CREATE INDEX instances_unfinished ON instances (created_ms, num) WHERE status IN (0, 1, 2);
CREATE INDEX instances_by_status ON instances (status, created_ms DESC, num DESC);
CREATE INDEX instances_by_owner ON instances (owner) WHERE status IN (0, 1, 2);
CREATE TABLE fibers (instance text NOT NULL, fiber bigint NOT NULL, state bytea NOT NULL,
                     PRIMARY KEY (instance, fiber));
CREATE TABLE history (seq bigserial PRIMARY KEY, instance text NOT NULL, time_ms bigint NOT NULL,
  kind bytea NOT NULL, step bytea NOT NULL, attempt bigint NOT NULL, error_class bytea NOT NULL,
  message bytea NOT NULL, data bytea NOT NULL);
CREATE INDEX history_by_instance ON history (instance, seq);
CREATE TABLE dead_letters (id bigserial PRIMARY KEY, instance text NOT NULL, step bytea NOT NULL,
  time_ms bigint NOT NULL, error_class bytea NOT NULL, message bytea NOT NULL,
  resolved_ms bigint NOT NULL DEFAULT 0);
CREATE INDEX dead_letters_by_instance ON dead_letters (instance, id);
CREATE INDEX dead_letters_open ON dead_letters (id) WHERE resolved_ms = 0;
CREATE TABLE inbox (id text PRIMARY KEY, seq bigserial UNIQUE, instance text NOT NULL,
  kind bytea NOT NULL, payload bytea NOT NULL DEFAULT '', posted_ms bigint NOT NULL,
  consumed_ms bigint NOT NULL DEFAULT 0);
CREATE INDEX inbox_unconsumed ON inbox (instance, seq) WHERE consumed_ms = 0;
CREATE INDEX inbox_unconsumed_by_seq ON inbox (seq) WHERE consumed_ms = 0;
CREATE TABLE commit_marks (writer text PRIMARY KEY, batch bigint NOT NULL);
INSERT INTO saga_meta VALUES ('application', 'saga'), ('schema_version', '0');
)sql"},
    // Version 2: the transactional outbox (saga/store.hpp, OutboxEvent), the
    // SQLite schema's version 4: rows inserted by the transition that emits
    // them, keyed by their stable event id; seq orders an instance's rows;
    // claimed_by/claimed_until are a relay's lease on a row it delivers
    // (claimed with SKIP LOCKED: two workers never hold one row). The partial
    // index holds only the open rows.
    {2, R"sql(
CREATE TABLE outbox (id text PRIMARY KEY, instance text NOT NULL, seq bigint NOT NULL,
  type text NOT NULL, source text NOT NULL, time_ms bigint NOT NULL, data bytea NOT NULL,
  attempts bigint NOT NULL DEFAULT 0, next_due bigint NOT NULL DEFAULT 0,
  delivered_ms bigint NOT NULL DEFAULT 0, dead bigint NOT NULL DEFAULT 0,
  last_error bytea NOT NULL DEFAULT '', claimed_by text NOT NULL DEFAULT '',
  claimed_until bigint NOT NULL DEFAULT 0);
CREATE INDEX outbox_open ON outbox (instance, seq) WHERE delivered_ms = 0 AND dead = 0;
CREATE INDEX outbox_by_instance ON outbox (instance, seq);
)sql"},
    // Incoming events (saga/store.hpp, EventRecord), as in the SQLite
    // schema's version 5: deduplicated by (source, id); `started` holds the
    // started instances' ids separated by spaces.
    {3, R"sql(
CREATE TABLE events_in (seq bigserial PRIMARY KEY, source bytea NOT NULL, id bytea NOT NULL,
  type bytea NOT NULL, event bytea NOT NULL, received_ms bigint NOT NULL,
  matched smallint NOT NULL, started text NOT NULL DEFAULT '', note bytea NOT NULL DEFAULT '',
  UNIQUE (source, id));
CREATE INDEX events_in_unmatched ON events_in (seq) WHERE matched = 0;
)sql"},
    // The event waits of instances (saga/store.hpp, EventWait) and the
    // instances each incoming event woke, as in the SQLite schema's version 6.
    {4, R"sql(
CREATE TABLE event_waits (instance text NOT NULL, fiber bigint NOT NULL, type bytea NOT NULL,
  match bytea NOT NULL, PRIMARY KEY (instance, fiber, type));
CREATE INDEX event_waits_by_type ON event_waits (type, instance);
ALTER TABLE events_in ADD COLUMN woke text NOT NULL DEFAULT '';
)sql"},
};

// An arbitrary constant: the advisory lock that serialises migrations.
constexpr const char* kLockSql = "SELECT pg_advisory_xact_lock(5341474101)";

Result<int> schema_version(Connection& conn) {
  ResultPtr r;
  Status s = conn.exec_sql(
      "SELECT (to_regclass('saga_meta') IS NOT NULL)::int::int8, "
      "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())::int8",
      "reading the schema", &r);
  if (!s.ok()) return s;
  if (int_at(r.get(), 0, 0) == 0) {
    if (int_at(r.get(), 0, 1) > 0) {
      return Status(StatusCode::kCorrupt,
                    fmt::format("not a Saga database: it has tables of another application and "
                                "no saga_meta: {}",
                                conn.name()));
    }
    return 0;
  }
  s = conn.exec_sql(
      "SELECT coalesce((SELECT value FROM saga_meta WHERE key = 'application'), ''), "
      "coalesce((SELECT value FROM saga_meta WHERE key = 'schema_version'), '')",
      "reading the schema", &r);
  if (!s.ok()) return s;
  if (text_at(r.get(), 0, 0) != "saga") {
    return Status(
        StatusCode::kCorrupt,
        fmt::format("not a Saga database: saga_meta does not name Saga: {}", conn.name()));
  }
  std::string version(text_at(r.get(), 0, 1));
  try {
    return std::stoi(version);
  } catch (const std::exception&) {
    return Status(StatusCode::kCorrupt, fmt::format("not a Saga database: schema version '{}': {}",
                                                    version, conn.name()));
  }
}

}  // namespace

int latest_schema_version() {
  return std::span(kMigrations).back().version;
}

Status check_and_migrate(Connection& conn, bool read_only) {
  Result<int> version = schema_version(conn);
  if (!version.ok()) return version.status();
  const int latest = latest_schema_version();
  if (*version > latest) {
    return {StatusCode::kUnsupported,
            fmt::format("database was created by a newer Saga (schema {}; this build knows up to "
                        "{}): {}",
                        *version, latest, conn.name())};
  }
  if (*version == latest) return Status::Ok();
  if (read_only) {
    return {StatusCode::kUnsupported,
            fmt::format("database has schema {}, this build reads {}: a command that writes "
                        "(sagactl worker, run, start) creates or migrates it first: {}",
                        *version, latest, conn.name())};
  }
  Status s = conn.exec_sql("BEGIN", "migrating the schema");
  if (!s.ok()) return s;
  auto fail = [&](Status why) {
    conn.exec_sql("ROLLBACK", "migrating the schema");
    return why;
  };
  s = conn.exec_sql(kLockSql, "migrating the schema");
  if (!s.ok()) return fail(s);
  // Another worker may have migrated while this one waited for the lock.
  version = schema_version(conn);
  if (!version.ok()) return fail(version.status());
  for (const Migration& m : kMigrations) {
    if (m.version <= *version) continue;
    s = conn.exec_script(m.sql, "migrating the schema");
    if (!s.ok()) return fail(s);
    std::string stamp =
        fmt::format("UPDATE saga_meta SET value = '{}' WHERE key = 'schema_version'", m.version);
    s = conn.exec_sql(stamp.c_str(), "migrating the schema");
    if (!s.ok()) return fail(s);
  }
  s = conn.exec_sql("COMMIT", "migrating the schema");
  if (!s.ok()) return fail(s);
  return Status::Ok();
}

}  // namespace saga::store::pg
