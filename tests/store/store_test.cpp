// Behaviour of the SQLite store (runtime/store/sqlite_store.cpp) through the
// Store interface: every field round trips, history keeps its order and its
// per-instance seq across reopen, listings, group commit (many transitions per
// commit, done only after the data is visible to a new connection), the
// durability setting and who syncs, a cancel request that an engine update
// must not undo, transitions that cannot apply, a full disk and a failed
// fsync.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "runtime/store/sqlite_store.hpp"
#include "tests/store/store_test_util.hpp"

namespace saga::store {
namespace {

using test::contains;
using test::create_transition;
using test::make_event;
using test::make_record;
using test::open_or_die;
using test::RawDb;
using test::submit_and_wait;
using test::TempDir;

using test::expect_same;
using test::get;

TEST(SqliteStore, HistoryKeepsOrderAndSeqAcrossReopen) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  std::vector<HistoryEvent> expected;
  {
    auto store = open_or_die(path);
    ASSERT_TRUE(store);
    Transition t = create_transition(make_record("a"));
    expected = t.events;
    ASSERT_TRUE(submit_and_wait(*store, t).ok());
    // Interleave another instance's history: seq is per instance.
    ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("b"))).ok());
    Transition u;
    u.instance = make_record("a");
    u.events = {make_event("step_started", "reserve", 1),
                make_event("attempt_failed", "reserve", 1),
                make_event("step_started", "reserve", 2)};
    u.events[1].error_class = "timeout";
    u.events[1].message = "no answer in 2s";
    expected.insert(expected.end(), u.events.begin(), u.events.end());
    ASSERT_TRUE(submit_and_wait(*store, u).ok());
  }
  {
    auto store = open_or_die(path);
    ASSERT_TRUE(store);
    Transition u;
    u.instance = make_record("a");
    u.events = {make_event("step_completed", "reserve", 2), make_event("completed", "", 0)};
    expected.insert(expected.end(), u.events.begin(), u.events.end());
    ASSERT_TRUE(submit_and_wait(*store, u).ok());

    Result<std::vector<HistoryEvent>> h = store->history("a");
    ASSERT_TRUE(h.ok()) << h.status().message();
    ASSERT_EQ(h->size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) expect_same((*h)[i], expected[i]);
    Result<std::vector<HistoryEvent>> hb = store->history("b");
    ASSERT_TRUE(hb.ok());
    EXPECT_EQ(hb->size(), 1u);
    Result<std::vector<HistoryEvent>> none = store->history("nope");
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
  }
  // The stored seq numbers are 1..n for each instance, with no gaps.
  RawDb raw(path);
  auto seqs = [&](const std::string& id) {
    return raw.query(
        "SELECT group_concat(seq) FROM (SELECT seq FROM history WHERE instance = "
        "(SELECT num FROM instances WHERE id = '" +
        id + "') ORDER BY seq)");
  };
  EXPECT_EQ(seqs("a"), "1,2,3,4,5,6");
  EXPECT_EQ(seqs("b"), "1");
}

TEST(SqliteStore, MaxBatchBoundsACommit) {
  TempDir dir;
  StoreOptions options;
  options.max_batch = 8;
  options.durability = Durability::kNormal;
  auto store = open_or_die(dir.file("x.db"), options);
  ASSERT_TRUE(store);
  for (int i = 0; i < 500; ++i) {
    store->submit(create_transition(make_record(fmt::format("i{}", i))),
                  [](Status s) { EXPECT_TRUE(s.ok()) << s.message(); });
  }
  store->flush();
  std::optional<SqliteStoreStats> stats = sqlite_store_stats(*store);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->transitions_committed, 500u);
  EXPECT_LE(stats->largest_batch, 8u);
  EXPECT_GE(stats->commits, 500u / 8);
}

// Who makes a group commit durable (docs/store.md, "Pipelined sync"): under
// kFull, a commit with nothing else queued is synced by SQLite inside COMMIT
// (synchronous=FULL); commits with more work waiting are made with
// synchronous=NORMAL and synced by the store's syncer before their dones
// run. Under kNormal nothing is synced at commit.
TEST(SqliteStore, DurabilityOptionDecidesWhoSyncs) {
  TempDir dir;
  int n = 0;
  for (Durability durability : {Durability::kFull, Durability::kNormal}) {
    const bool full = durability == Durability::kFull;
    StoreOptions options;
    options.durability = durability;
    options.max_batch = 50;
    options.busy_timeout_ms = 60'000;
    auto store = open_or_die(dir.file("x.db"), options);
    ASSERT_TRUE(store);

    // One at a time.
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(
          submit_and_wait(*store, create_transition(make_record(fmt::format("i{}", n++)))).ok());
    }
    Result<int64_t> sync = sqlite_store_writer_pragma(*store, "synchronous");
    ASSERT_TRUE(sync.ok()) << sync.status().message();
    EXPECT_EQ(*sync, full ? 2 : 1) << "FULL : NORMAL";
    EXPECT_EQ(sqlite_store_stats(*store)->wal_syncs, 0u);

    // A backlog: another connection holds the write lock while 500
    // transitions queue up; then batches of 50 commit with more waiting.
    RawDb other(dir.file("x.db"));
    ASSERT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK);
    std::atomic<int> ok{0};
    for (int i = 0; i < 500; ++i) {
      store->submit(create_transition(make_record(fmt::format("i{}", n++))),
                    [&](Status s) { ok.fetch_add(s.ok() ? 1 : 0); });
    }
    ASSERT_EQ(other.exec("COMMIT"), SQLITE_OK);
    store->flush();
    EXPECT_EQ(ok.load(), 500);
    std::optional<SqliteStoreStats> stats = sqlite_store_stats(*store);
    ASSERT_TRUE(stats.has_value());
    EXPECT_GE(stats->commits, 3u + 10u);
    if (full) {
      EXPECT_GE(stats->wal_syncs, 1u);
      EXPECT_LT(stats->wal_syncs, stats->commits) << "one sync covers several commits or none";
    } else {
      EXPECT_EQ(stats->wal_syncs, 0u);
    }
  }
  RawDb raw(dir.file("x.db"));
  EXPECT_EQ(raw.query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.query("PRAGMA application_id"), std::to_string(0x53414741));
  EXPECT_EQ(raw.query("SELECT count(*) FROM instances"), std::to_string(n));
}

// A failed fdatasync of the WAL: the transitions it should have made durable
// fail, and so does everything after (the page cache can no longer be
// trusted), until the store is opened again; the reopened store works and
// holds every transition acknowledged before the failure.
TEST(SqliteStore, FailedSyncFailsItsBatchesAndEveryLaterOne) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  StoreOptions options;
  options.max_batch = 50;
  options.busy_timeout_ms = 60'000;
  {
    auto store = open_or_die(path, options);
    ASSERT_TRUE(store);
    ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("before"))).ok());

    ASSERT_TRUE(sqlite_store_fail_next_sync(*store, EIO));
    RawDb other(path);  // A backlog, so that the syncer (not SQLite) syncs.
    ASSERT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK);
    std::mutex mu;
    std::vector<Status> results;
    for (int i = 0; i < 200; ++i) {
      store->submit(create_transition(make_record(fmt::format("i{}", i))), [&](Status s) {
        std::lock_guard lock(mu);
        results.push_back(std::move(s));
      });
    }
    ASSERT_EQ(other.exec("COMMIT"), SQLITE_OK);
    store->flush();
    size_t failed = 0;
    for (const Status& s : results) {
      if (s.ok()) continue;
      ++failed;
      EXPECT_EQ(s.code(), StatusCode::kIoError);
      EXPECT_TRUE(contains(
          s.message(), "cannot make the database durable: fdatasync of " + path + "-wal failed"))
          << s.message();
      EXPECT_TRUE(contains(s.message(), "restart the process")) << s.message();
    }
    EXPECT_GE(failed, 50u) << "at least the synced batches";

    Status later = submit_and_wait(*store, create_transition(make_record("later")));
    EXPECT_EQ(later.code(), StatusCode::kIoError) << later.message();
  }
  auto store = open_or_die(path, options);
  ASSERT_TRUE(store);
  expect_same(get(*store, "before"), make_record("before"));
  EXPECT_TRUE(submit_and_wait(*store, create_transition(make_record("after"))).ok());
}

// The writer remembers num, status and last seq of the instances it wrote.
// Changes by another process behind its back must not be lost or clash.
TEST(SqliteStore, ChangesByAnotherProcessAreSeenByTheNextUpdate) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  auto store = open_or_die(path);
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("a"))).ok());
  Transition t;
  t.instance = make_record("a");
  t.events.push_back(make_event("step_started", "reserve", 1));
  ASSERT_TRUE(submit_and_wait(*store, t).ok());  // The writer now knows "a".

  // An operator tool moves the instance to stuck and appends an event.
  {
    RawDb raw(path);
    ASSERT_EQ(raw.exec("UPDATE instances SET status = 6 WHERE id = 'a';"
                       "INSERT INTO history (instance, seq, time_ms, kind) SELECT num, 3, 1, "
                       "'operator' FROM instances WHERE id = 'a';"),
              SQLITE_OK);
  }
  // The engine's next transition, status unchanged from its point of view.
  t.instance.checkpoint = "after the operator";
  t.events = {make_event("step_completed", "reserve", 1)};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  InstanceRecord a = get(*store, "a");
  EXPECT_EQ(a.status, InstanceStatus::kRunning);  // The transition's status was written.
  EXPECT_EQ(a.checkpoint, "after the operator");
  Result<std::vector<HistoryEvent>> h = store->history("a");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 4u);
  EXPECT_EQ((*h)[2].kind, "operator");
  EXPECT_EQ((*h)[3].kind, "step_completed");

  // Same again with only history appended behind the writer's back.
  {
    RawDb raw(path);
    ASSERT_EQ(raw.exec("INSERT INTO history (instance, seq, time_ms, kind) SELECT num, 5, 1, "
                       "'operator2' FROM instances WHERE id = 'a';"),
              SQLITE_OK);
  }
  t.events = {make_event("step_started", "charge", 1), make_event("attempt_failed", "charge", 1)};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  h = store->history("a");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 7u);
  EXPECT_EQ((*h)[4].kind, "operator2");
  EXPECT_EQ((*h)[5].kind, "step_started");
  EXPECT_EQ((*h)[6].kind, "attempt_failed");
  RawDb raw(path);
  EXPECT_EQ(raw.query("SELECT group_concat(seq) FROM (SELECT seq FROM history ORDER BY seq)"),
            "1,2,3,4,5,6,7");
}

TEST(SqliteStore, DiskFullFailsTheBatchAndRecovers) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  auto store = open_or_die(path);
  ASSERT_TRUE(store);
  for (int i = 0; i < 10; ++i) {
    store->submit(create_transition(make_record(fmt::format("old{}", i))),
                  [](Status s) { EXPECT_TRUE(s.ok()) << s.message(); });
  }
  store->flush();

  // No room to grow: every transition below needs new (overflow) pages.
  Result<int64_t> pages = sqlite_store_writer_pragma(*store, "page_count");
  ASSERT_TRUE(pages.ok()) << pages.status().message();
  ASSERT_TRUE(sqlite_store_set_max_page_count(*store, *pages).ok());

  constexpr int kCount = 50;
  std::vector<Status> results(kCount);
  for (int i = 0; i < kCount; ++i) {
    InstanceRecord r = make_record(fmt::format("new{}", i));
    r.checkpoint.assign(16384, 'c');
    store->submit(create_transition(r), [&results, i](Status s) { results[i] = std::move(s); });
  }
  Transition update;  // An update of an existing row in the same batches.
  update.instance = make_record("old0");
  update.instance.checkpoint.assign(16384, 'u');
  update.events.push_back(make_event("step_started", "reserve", 1));
  // An event of the failed transition: no row without its commit.
  OutboxEvent event;
  event.id = "ev-1";
  event.type = "order.placed";
  event.time_ms = 1700000000001;
  event.data_json = std::string(16384, ' ') + "{}";
  update.outbox.push_back(event);
  Status update_result;
  store->submit(update, [&](Status s) { update_result = std::move(s); });
  store->flush();

  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(results[i].code(), StatusCode::kIoError) << i;
    EXPECT_EQ(results[i].message(), "database is full (disk or quota): " + path) << i;
  }
  EXPECT_EQ(update_result.code(), StatusCode::kIoError);
  std::optional<SqliteStoreStats> stats = sqlite_store_stats(*store);
  ASSERT_TRUE(stats.has_value());
  EXPECT_GE(stats->failed_commits, 1u);
  EXPECT_EQ(stats->transitions_failed, uint64_t{kCount + 1});

  // What was committed before is intact; nothing of the failed batches is.
  for (int i = 0; i < 10; ++i)
    expect_same(get(*store, fmt::format("old{}", i)), make_record(fmt::format("old{}", i)));
  Result<std::vector<InstanceRecord>> all = store->list_instances(std::nullopt, 1000);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 10u);

  {
    RawDb raw(path);
    EXPECT_EQ(raw.query("SELECT count(*) FROM outbox"), "0") << "an event without its commit";
  }

  // Room again: the same writer commits new transitions.
  ASSERT_TRUE(sqlite_store_set_max_page_count(*store, 1 << 30).ok());
  InstanceRecord r = make_record("after");
  r.checkpoint.assign(16384, 'a');
  EXPECT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  EXPECT_EQ(get(*store, "after").checkpoint, r.checkpoint);
  EXPECT_TRUE(submit_and_wait(*store, update).ok());
  EXPECT_EQ(get(*store, "old0").checkpoint, update.instance.checkpoint);
  {
    RawDb raw(path);
    EXPECT_EQ(raw.query("SELECT count(*) FROM outbox WHERE id = 'ev-1'"), "1");
  }
  // The failed attempt left no gap in the history numbering.
  {
    RawDb raw(path);
    EXPECT_EQ(raw.query("SELECT group_concat(seq) FROM (SELECT seq FROM history WHERE instance "
                        "= (SELECT num FROM instances WHERE id = 'old0') ORDER BY seq)"),
              "1,2");
  }

  store.reset();
  RawDb raw(path);
  EXPECT_EQ(raw.query("PRAGMA integrity_check"), "ok");
}

TEST(SqliteStore, MaxPagesEnvironmentVariableSimulatesAFullDisk) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  setenv("SAGA_TEST_MAX_PAGES", "1", 1);  // Clamped to the size after migration.
  auto store = open_or_die(path);
  unsetenv("SAGA_TEST_MAX_PAGES");
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("big");
  r.checkpoint.assign(65536, 'b');
  Status s = submit_and_wait(*store, create_transition(r));
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "database is full (disk or quota): " + path);
  // A store opened without the variable has no limit.
  store.reset();
  store = open_or_die(path);
  ASSERT_TRUE(store);
  EXPECT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
}

TEST(SqliteStore, LockedDatabaseFailsTheBatchWithBusyAndRecovers) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  StoreOptions options;
  options.busy_timeout_ms = 100;
  auto store = open_or_die(path, options);
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("a"))).ok());

  RawDb other(path);
  ASSERT_EQ(other.exec("BEGIN EXCLUSIVE"), SQLITE_OK);
  Transition t;
  t.instance = make_record("a");
  t.instance.checkpoint = "while locked";
  Status s = submit_and_wait(*store, t);
  EXPECT_EQ(s.code(), StatusCode::kBusy);
  EXPECT_EQ(s.message(), "database is locked by another process: " + path);
  // Readers are not blocked by the lock (WAL).
  EXPECT_EQ(get(*store, "a").checkpoint, make_record("a").checkpoint);
  ASSERT_EQ(other.exec("ROLLBACK"), SQLITE_OK);

  EXPECT_TRUE(submit_and_wait(*store, t).ok());
  EXPECT_EQ(get(*store, "a").checkpoint, "while locked");
  Result<std::vector<HistoryEvent>> h = store->history("a");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 1u);
}

TEST(SqliteStore, RejectsPathsThatAreNotFiles) {
  for (const char* path : {"", ":memory:", "file:x.db?mode=memory"}) {
    Result<std::unique_ptr<Store>> r = open_sqlite_store(path);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(InstanceStatusNames, RoundTripAndTerminal) {
  const std::pair<InstanceStatus, bool> all[] = {
      {InstanceStatus::kPending, false},      {InstanceStatus::kRunning, false},
      {InstanceStatus::kCompensating, false}, {InstanceStatus::kCompleted, true},
      {InstanceStatus::kCompensated, true},   {InstanceStatus::kFailed, true},
      {InstanceStatus::kStuck, false},        {InstanceStatus::kCancelled, true}};
  std::set<std::string> names;
  for (auto [s, terminal] : all) {
    std::string name = to_string(s);
    names.insert(name);
    EXPECT_EQ(parse_status(name), s) << name;
    EXPECT_EQ(is_terminal(s), terminal) << name;
  }
  EXPECT_EQ(names.size(), 8u);
  EXPECT_STREQ(to_string(InstanceStatus::kStuck), "stuck");
  EXPECT_FALSE(parse_status("Running").has_value());
  EXPECT_FALSE(parse_status("").has_value());
}

}  // namespace
}  // namespace saga::store
