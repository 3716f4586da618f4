// The schema of the PostgreSQL store and its migrations (docs/scale-out.md,
// "Tables"). The store checks what a database is before it changes anything:
// a database with tables of its own and no saga_meta is not Saga's and is
// never touched. Migrations run in one transaction under an advisory lock, so
// several workers starting at once on a new database create it once.
//
// A database is identified by saga_meta: ('application', 'saga') and
// ('schema_version', N), N the last migration applied.
#pragma once

#include "runtime/store/pg_conn.hpp"
#include "saga/status.hpp"

namespace saga::store::pg {

// The schema version of this build.
int latest_schema_version();

// Checks the identity and, unless `read_only`, creates or migrates the
// schema. kCorrupt for a database that is not a Saga database, kUnsupported
// for a newer schema (and, read-only, for a database without Saga's tables
// or with an older schema).
Status check_and_migrate(Connection& conn, bool read_only);

}  // namespace saga::store::pg
