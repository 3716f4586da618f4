// Extensions of the SQLite store beyond the Store interface: counters for
// metrics and benchmarks, and hooks that tests use to read a connection's
// settings and to simulate a full disk. They are free functions taking a
// Store& so that the public interface (saga/store.hpp) stays narrow; they
// apply only to stores made by open_sqlite_store() and report kInvalidArgument
// (or nullopt) for any other Store.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "saga/status.hpp"
#include "saga/store.hpp"

namespace saga::store {

// Monotonic counters since the store was opened. A "commit" is one group
// commit (one SQLite transaction) of the writer thread.
struct SqliteStoreStats {
  uint64_t commits = 0;                // Successful group commits.
  uint64_t failed_commits = 0;         // Batches rolled back (full disk, I/O error, busy).
  uint64_t transitions_committed = 0;  // Transitions whose done got Ok.
  uint64_t transitions_failed = 0;     // Transitions whose done got an error.
  uint64_t largest_batch = 0;          // Most transitions in one commit so far.
  uint64_t wal_syncs = 0;              // fdatasyncs of the WAL by the store (kFull only).
};

// The counters of a SQLite store; nullopt for another kind of store.
std::optional<SqliteStoreStats> sqlite_store_stats(const Store& store);

// Reads an integer PRAGMA such as "synchronous" or "page_count" on the writer
// connection, the one that commits transitions (text pragmas such as
// "journal_mode" read as 0). For tests and diagnostics.
Result<int64_t> sqlite_store_writer_pragma(Store& store, std::string_view name);

// Test hook: sets PRAGMA max_page_count on the writer connection, so that the
// next batches that need more pages fail with SQLITE_FULL as on a full disk.
// SQLite never sets the limit below the current size. Returns the limit in
// force. The environment variable SAGA_TEST_MAX_PAGES, read by
// open_sqlite_store(), sets the same limit from the start (for end-to-end
// tests of sagactl); it is not meant for production.
Result<int64_t> sqlite_store_set_max_page_count(Store& store, int64_t pages);

// Test hook: the store's next fdatasync of the WAL (kFull, pipelined sync)
// fails with errno `error`, as a failing disk would. Returns false for
// another kind of store.
bool sqlite_store_fail_next_sync(Store& store, int error);

}  // namespace saga::store
