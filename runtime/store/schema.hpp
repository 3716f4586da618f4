// The schema of the SQLite store and its migrations. The SQLite store calls
// read_identity()/check_identity() before it changes anything in a file (so a
// database of another application is never touched, not even switched to WAL
// mode) and migrate() to bring a Saga database to the schema of this build.
// docs/store.md describes the tables; keep it in step with kMigrations in
// schema.cpp.
//
// A database is identified by two header fields: PRAGMA application_id is
// kApplicationId for every Saga database, and PRAGMA user_version is the
// number of the last migration applied to it.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/store/sqlite_db.hpp"
#include "saga/status.hpp"

namespace saga::store {

// 'SAGA' in ASCII, stored in the database header (offset 68).
inline constexpr int64_t kApplicationId = 0x53414741;

// One step of the schema's history. Migrations are applied in order, each
// exactly once, all inside one write transaction; `version` is the
// user_version a database has after this step. Versions start at 1 and go up
// by one. Never edit a migration that has shipped: append a new one.
struct Migration {
  int version;
  const char* summary;  // One line for docs and error messages.
  const char* sql;      // One or more statements, run with sqlite3_exec.
};

// The migrations of this build; the last one's version is the latest schema.
std::span<const Migration> migrations();
int latest_schema_version();

// The header fields and schema size that tell what a file is.
struct Identity {
  int64_t application_id = 0;
  int64_t user_version = 0;
  int64_t schema_objects = 0;  // Tables, indexes, views, triggers.
};

// Reads the identity without writing. A file that is not SQLite fails here
// with kCorrupt "not a Saga database: file is not a database: PATH".
Result<Identity> read_identity(Connection& conn);

// Accepts a Saga database of schema version <= `latest`, or an empty
// database (application_id 0, user_version 0, no tables). Anything else is
// kCorrupt "not a Saga database: ..." or kUnsupported "database was created by
// a newer Saga (schema N; this build knows up to M): PATH".
Status check_identity(const Identity& identity, int latest, const std::string& path);

// Brings the database to the last version in `list` inside one BEGIN
// IMMEDIATE transaction: checks the identity again under the write lock (two
// processes may create the same file at once), stamps the application_id on
// a new database, runs every migration newer than user_version and sets
// user_version after each. On any error the transaction is rolled back and
// the file is unchanged. Even with nothing to migrate it takes the write lock,
// so an unwritable or locked database is reported here, at open time:
// kBusy "database is locked by another process: PATH" when the lock is not
// granted within the busy timeout, kIoError "database is read-only: PATH".
// `list` is a parameter so tests can add a migration; the store passes
// migrations().
Status migrate(Connection& conn, std::span<const Migration> list);

}  // namespace saga::store
