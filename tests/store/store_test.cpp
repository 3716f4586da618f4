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

void expect_same(const InstanceRecord& a, const InstanceRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.program_hash, b.program_hash);
  EXPECT_EQ(a.saga, b.saga);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.input_json, b.input_json);
  EXPECT_EQ(a.output_json, b.output_json);
  EXPECT_EQ(a.error_class, b.error_class);
  EXPECT_EQ(a.error_message, b.error_message);
  EXPECT_EQ(a.checkpoint, b.checkpoint);
  EXPECT_EQ(a.wake_at_ms, b.wake_at_ms);
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.updated_ms, b.updated_ms);
}

void expect_same(const HistoryEvent& a, const HistoryEvent& b) {
  EXPECT_EQ(a.time_ms, b.time_ms);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.attempt, b.attempt);
  EXPECT_EQ(a.error_class, b.error_class);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.data_json, b.data_json);
}

InstanceRecord get(Store& store, const std::string& id) {
  Result<std::optional<InstanceRecord>> r = store.get_instance(id);
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r.ok() && r->has_value()) << "no instance " << id;
  return r.ok() && r->has_value() ? **r : InstanceRecord{};
}

TEST(SqliteStore, CreateUpdateReadRoundTripsEveryField) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);

  InstanceRecord r = make_record("i-1");
  r.wake_at_ms = 1700000005000;
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  expect_same(get(*store, "i-1"), r);

  // Every mutable field changes, including to and from empty values. What
  // an instance is (program, saga, input) is fixed at creation: an update
  // that says otherwise does not change it.
  InstanceRecord u = r;
  u.status = InstanceStatus::kCompensated;
  u.output_json = R"({"result":[1,2,3]})";
  u.error_class = "rejected";
  u.error_message = "card declined: \xc3\xa9t\xc3\xa9";
  u.checkpoint = std::string("\0\0\0", 3);
  u.wake_at_ms = 0;
  u.updated_ms = 1700000009999;
  Transition t;
  t.instance = u;
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  expect_same(get(*store, "i-1"), u);
  Transition other = t;
  other.instance.program_hash = "fedcba9876543210fedcba9876543210";
  other.instance.saga = "Refund";
  other.instance.input_json = "";
  ASSERT_TRUE(submit_and_wait(*store, other).ok());
  expect_same(get(*store, "i-1"), u);

  // An empty checkpoint is stored as an empty blob and read back empty.
  u.checkpoint.clear();
  t.instance = u;
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  EXPECT_EQ(get(*store, "i-1").checkpoint, "");

  // Still the same after reopening.
  store.reset();
  store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  expect_same(get(*store, "i-1"), u);

  Result<std::optional<InstanceRecord>> missing = store->get_instance("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(SqliteStore, CreatedMsNeverChangesOnUpdate) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  Transition t;
  t.instance = r;
  t.instance.created_ms = 42;
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  EXPECT_EQ(get(*store, "i-1").created_ms, r.created_ms);
}

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

TEST(SqliteStore, ListingsFilterAndOrder) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  const InstanceStatus all[] = {InstanceStatus::kPending,      InstanceStatus::kRunning,
                                InstanceStatus::kCompensating, InstanceStatus::kCompleted,
                                InstanceStatus::kCompensated,  InstanceStatus::kFailed,
                                InstanceStatus::kStuck,        InstanceStatus::kCancelled};
  int n = 0;
  for (InstanceStatus s : all) {
    for (int k = 0; k < 2; ++k) {
      InstanceRecord r = make_record(fmt::format("{}-{}", to_string(s), k));
      r.status = s;
      r.created_ms = 1000 + n++;
      store->submit(create_transition(r), [](Status st) { EXPECT_TRUE(st.ok()) << st.message(); });
    }
  }
  store->flush();

  Result<std::vector<InstanceRecord>> unfinished = store->list_unfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status().message();
  std::vector<std::string> ids;
  for (const auto& r : *unfinished) ids.push_back(r.id);
  // Oldest first; no terminal and no stuck instance.
  EXPECT_EQ(ids, (std::vector<std::string>{"pending-0", "pending-1", "running-0", "running-1",
                                           "compensating-0", "compensating-1"}));

  Result<std::vector<InstanceRecord>> stuck = store->list_instances(InstanceStatus::kStuck, 10);
  ASSERT_TRUE(stuck.ok());
  ASSERT_EQ(stuck->size(), 2u);
  EXPECT_EQ((*stuck)[0].id, "stuck-1");  // Newest first.
  EXPECT_EQ((*stuck)[1].id, "stuck-0");

  Result<std::vector<InstanceRecord>> newest = store->list_instances(std::nullopt, 3);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].id, "cancelled-1");
  EXPECT_EQ((*newest)[1].id, "cancelled-0");
  EXPECT_EQ((*newest)[2].id, "stuck-1");

  Result<std::vector<InstanceRecord>> every = store->list_instances(std::nullopt, 1000);
  ASSERT_TRUE(every.ok());
  EXPECT_EQ(every->size(), 16u);
  Result<std::vector<InstanceRecord>> none = store->list_instances(std::nullopt, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  // Moving an instance to a terminal status removes it from list_unfinished.
  Transition t;
  t.instance = get(*store, "running-0");
  t.instance.status = InstanceStatus::kCompleted;
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  unfinished = store->list_unfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_EQ(unfinished->size(), 5u);
}

TEST(SqliteStore, GroupCommitBatchesTransitionsFromManyThreads) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Transition tr = create_transition(make_record(fmt::format("t{}-{}", t, i)));
        tr.events.push_back(make_event("step_started", "reserve", 1));
        store->submit(std::move(tr), [&](Status s) { (s.ok() ? ok : failed).fetch_add(1); });
      }
    });
  }
  for (auto& th : threads) th.join();
  store->flush();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);

  std::optional<SqliteStoreStats> stats = sqlite_store_stats(*store);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->transitions_committed, uint64_t{kThreads * kPerThread});
  EXPECT_LT(stats->commits, uint64_t{kThreads * kPerThread});
  EXPECT_GT(stats->largest_batch, 1u);
  EXPECT_EQ(stats->failed_commits, 0u);

  RawDb raw(dir.file("x.db"));
  EXPECT_EQ(raw.query("SELECT count(*) FROM instances"), "10000");
  EXPECT_EQ(raw.query("SELECT count(*) FROM history"), "20000");
  EXPECT_EQ(raw.query("SELECT count(*) FROM history WHERE seq > 2"), "0");
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

TEST(SqliteStore, DoneRunsInSubmissionOrderAfterDataIsVisibleToANewConnection) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  auto store = open_or_die(path);
  ASSERT_TRUE(store);
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::string> missing;
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    std::string id = fmt::format("i{}", i);
    store->submit(create_transition(make_record(id)), [&, i, id, path](Status s) {
      EXPECT_TRUE(s.ok()) << s.message();
      // A brand-new connection, as another process would open.
      RawDb raw(path);
      std::string found = raw.query("SELECT count(*) FROM instances WHERE id = '" + id + "'");
      std::lock_guard lock(mu);
      order.push_back(i);
      if (found != "1") missing.push_back(id);
    });
  }
  store->flush();
  EXPECT_TRUE(missing.empty()) << missing.size() << " done callbacks ran before their data was "
                               << "visible, first " << missing.front();
  ASSERT_EQ(order.size(), size_t{kCount});
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(order[i], i);
}

TEST(SqliteStore, DestructorCommitsWhatWasQueued) {
  TempDir dir;
  std::atomic<int> ok{0};
  {
    auto store = open_or_die(dir.file("x.db"));
    ASSERT_TRUE(store);
    for (int i = 0; i < 300; ++i) {
      store->submit(create_transition(make_record(fmt::format("i{}", i))),
                    [&](Status s) { ok.fetch_add(s.ok() ? 1 : 0); });
    }
  }
  EXPECT_EQ(ok.load(), 300);
  RawDb raw(dir.file("x.db"));
  EXPECT_EQ(raw.query("SELECT count(*) FROM instances"), "300");
}

TEST(SqliteStore, FlushWithNothingQueuedReturns) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  store->flush();
  store->flush();
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

InboxMessage message(const std::string& id, const std::string& instance,
                     const std::string& kind = "cancel") {
  return InboxMessage{id, instance, kind, R"({"note":"n"})", 1700000000100, 0};
}

std::vector<std::string> ids_of(const std::vector<InboxMessage>& inbox) {
  std::vector<std::string> out;
  for (const InboxMessage& m : inbox) out.push_back(m.id);
  return out;
}

// A message posted by another process (sagactl cancel) after the engine read
// the row survives the engine's next update, is read with the row until a
// transition consumes it, and is consumed by that transition only.
TEST(SqliteStoreInbox, PostedMessagesAreReadWithTheRowUntilATransitionConsumesThem) {
  TempDir dir;
  const std::string path = dir.file("x.db");
  auto store = open_or_die(path);
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  {
    auto other = open_or_die(path);
    ASSERT_TRUE(other);
    InboxMessage a = message("m-a", "i-1"), b = message("m-b", "i-1", "pause");
    ASSERT_TRUE(other->post(a).ok());
    ASSERT_TRUE(other->post(b).ok());
    EXPECT_GT(b.seq, a.seq);
    InboxMessage again = message("m-a", "i-1");
    Status dup = other->post(again);
    EXPECT_EQ(dup.code(), StatusCode::kInvalidArgument) << dup.message();
    InboxMessage nowhere = message("m-c", "nope");
    Status missing = other->post(nowhere);
    EXPECT_EQ(missing.code(), StatusCode::kNotFound);
    EXPECT_TRUE(contains(missing.message(), "nope")) << missing.message();
  }
  // The engine had read the row before the posts, and writes it back.
  Transition t;
  t.instance = r;
  t.instance.checkpoint = "step 2";
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  InstanceRecord after = get(*store, "i-1");
  EXPECT_EQ(after.checkpoint, "step 2");
  ASSERT_EQ(ids_of(after.inbox), (std::vector<std::string>{"m-a", "m-b"}));
  EXPECT_EQ(after.inbox[1].kind, "pause");
  EXPECT_EQ(after.inbox[1].payload_json, R"({"note":"n"})");
  EXPECT_EQ(after.inbox[1].posted_ms, 1700000000100);
  auto since = store->inbox_since(after.inbox[0].seq, 10);
  ASSERT_TRUE(since.ok());
  EXPECT_EQ(ids_of(*since), (std::vector<std::string>{"m-b"}));
  EXPECT_EQ((*since)[0].instance_id, "i-1");

  // Consumed with the transition that acts on it, and only that one.
  t.consumed = {"m-a"};
  t.instance.checkpoint = "step 3";
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  after = get(*store, "i-1");
  EXPECT_EQ(ids_of(after.inbox), (std::vector<std::string>{"m-b"}));
  auto inbox = store->inbox("i-1");
  ASSERT_TRUE(inbox.ok());
  EXPECT_EQ(ids_of(*inbox), (std::vector<std::string>{"m-b"}));
  auto last = store->last_inbox_seq();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, after.inbox[0].seq);
}

// A transition that fails (here: its instance does not exist) consumes
// nothing: the message is still there for the next try.
TEST(SqliteStoreInbox, AFailedTransitionConsumesNothing) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("i-1"))).ok());
  InboxMessage m = message("m-1", "i-1");
  ASSERT_TRUE(store->post(m).ok());
  Transition bad;
  bad.instance = make_record("i-2");  // Never created.
  bad.consumed = {"m-1"};
  EXPECT_FALSE(submit_and_wait(*store, bad).ok());
  EXPECT_EQ(ids_of(get(*store, "i-1").inbox), (std::vector<std::string>{"m-1"}));
}

TEST(SqliteStoreInbox, AFinishedInstanceTakesNoMessages) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  r.status = InstanceStatus::kCompleted;
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  InboxMessage m = message("m-1", "i-1");
  Status s = store->post(m);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_TRUE(contains(s.message(), "is completed")) << s.message();
  EXPECT_TRUE(get(*store, "i-1").inbox.empty());
}

// Stuck and paused instances are left alone by workers, unless a message
// waits in their inbox: then claim() takes them like any unfinished one.
TEST(SqliteStoreInbox, StuckAndPausedInstancesAreClaimedOnlyWithAMessage) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  for (auto [id, status] :
       {std::pair{"s", InstanceStatus::kStuck}, std::pair{"p", InstanceStatus::kPaused}}) {
    InstanceRecord r = make_record(id);
    r.status = status;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  }
  auto none = [](const std::string&) { return false; };
  auto claimed = store->claim("me", 1, 100, none);
  ASSERT_TRUE(claimed.ok());
  EXPECT_TRUE(claimed->empty());
  InboxMessage m = message("m-1", "p", "unpause");
  ASSERT_TRUE(store->post(m).ok());
  claimed = store->claim("me", 1, 100, none);
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, "p");
  EXPECT_EQ(ids_of((*claimed)[0].inbox), (std::vector<std::string>{"m-1"}));
}

// A transition resolves the instance's dead letters (an operator retried or
// skipped the undo): they stay, with the time.
TEST(SqliteStoreInbox, ResolvedDeadLettersAreKept) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  Transition t = create_transition(make_record("i-1"));
  t.dead_letter = DeadLetter{"i-1", "refund", 5, "unavailable", "down", 0};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  Transition fix;
  fix.instance = make_record("i-1");
  fix.resolve_dead_letters_ms = 77;
  ASSERT_TRUE(submit_and_wait(*store, fix).ok());
  auto letters = store->dead_letters("i-1");
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].resolved_ms, 77);
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

TEST(SqliteStore, TransitionsThatCannotApplyFailAlone) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("a"))).ok());

  std::vector<Status> results(4);
  Transition dup = create_transition(make_record("a"));  // Already exists.
  Transition ghost;                                      // Update of a missing instance.
  ghost.instance = make_record("ghost");
  ghost.events.push_back(make_event("step_started", "x", 1));
  Transition good = create_transition(make_record("b"));
  Transition good2;
  good2.instance = make_record("a");
  good2.events.push_back(make_event("step_started", "x", 1));
  store->submit(dup, [&](Status s) { results[0] = s; });
  store->submit(ghost, [&](Status s) { results[1] = s; });
  store->submit(good, [&](Status s) { results[2] = s; });
  store->submit(good2, [&](Status s) { results[3] = s; });
  store->flush();

  EXPECT_EQ(results[0].code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(results[0].message(), "instance a already exists")) << results[0].message();
  EXPECT_EQ(results[1].code(), StatusCode::kNotFound);
  EXPECT_TRUE(contains(results[1].message(), "no instance ghost")) << results[1].message();
  EXPECT_TRUE(results[2].ok()) << results[2].message();
  EXPECT_TRUE(results[3].ok()) << results[3].message();

  // Nothing of the failed transitions was written.
  Result<std::vector<HistoryEvent>> ha = store->history("a");
  ASSERT_TRUE(ha.ok());
  EXPECT_EQ(ha->size(), 2u);  // "started" + good2's event, not dup's.
  Result<std::vector<HistoryEvent>> hg = store->history("ghost");
  ASSERT_TRUE(hg.ok());
  EXPECT_TRUE(hg->empty());
  EXPECT_TRUE(store->get_instance("b").ok() && store->get_instance("b")->has_value());
}

// Child fibers have rows of their own: a transition writes the ones that
// changed (and may leave the instance's row alone) and deletes the ones that
// ended.
TEST(SqliteStore, FibersAreWrittenOneByOneAndGoWithTheInstance) {
  TempDir dir;
  auto store = open_or_die(dir.file("f.db"));
  ASSERT_TRUE(store);
  Transition create = create_transition(make_record("p"));
  create.fibers = {{2, "second"}, {1, std::string("fi\0rst", 6)}};
  ASSERT_TRUE(submit_and_wait(*store, create).ok());
  auto read = store->get_instance("p");
  ASSERT_TRUE(read.ok() && read.value());
  EXPECT_EQ(read.value()->fibers,
            (std::vector<FiberRow>{{1, std::string("fi\0rst", 6)}, {2, "second"}}));

  // Only fibers and history: the row stays as it was.
  Transition branch;
  branch.instance.id = "p";
  branch.write_instance = false;
  branch.fibers = {{1, "first, later"}, {2, ""}, {3, "third"}};
  branch.events.push_back(make_event("step_completed", "left/l", 1));
  ASSERT_TRUE(submit_and_wait(*store, branch).ok());
  read = store->get_instance("p");
  ASSERT_TRUE(read.ok() && read.value());
  EXPECT_EQ(read.value()->fibers, (std::vector<FiberRow>{{1, "first, later"}, {3, "third"}}));
  EXPECT_EQ(read.value()->checkpoint, make_record("p").checkpoint);
  EXPECT_EQ(read.value()->updated_ms, make_record("p").updated_ms);
  auto history = store->history("p");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ(history.value()[1].step, "left/l");

  // The fibers come with what a worker claims.
  auto claimed = store->claim("me", 0, 1, nullptr, "p");
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed.value()[0].fibers.size(), 2u);

  // The transition that ends an instance deletes what is left.
  Transition done;
  done.instance = make_record("p");
  done.instance.status = InstanceStatus::kCompleted;
  done.fibers = {{1, ""}, {3, ""}};
  ASSERT_TRUE(submit_and_wait(*store, done).ok());
  read = store->get_instance("p");
  ASSERT_TRUE(read.ok() && read.value());
  EXPECT_TRUE(read.value()->fibers.empty());

  // Fibers of an instance that does not exist are refused, alone.
  Transition stray;
  stray.instance.id = "nobody";
  stray.write_instance = false;
  stray.fibers = {{1, "x"}};
  Status s = submit_and_wait(*store, stray);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.message();
}

TEST(SqliteStore, DeadLettersRoundTrip) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("a"))).ok());
  Transition t;
  t.instance = make_record("a");
  t.instance.status = InstanceStatus::kStuck;
  t.events.push_back(make_event("stuck", "refund", 5));
  t.dead_letter = DeadLetter{"a", "refund", 1700000000500, "unavailable", "payment is down"};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  t.dead_letter = DeadLetter{"a", "release", 1700000000600, "timeout", "no answer"};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());

  Result<std::vector<DeadLetter>> letters = store->dead_letters("a");
  ASSERT_TRUE(letters.ok()) << letters.status().message();
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].instance_id, "a");
  EXPECT_EQ((*letters)[0].step, "refund");
  EXPECT_EQ((*letters)[0].time_ms, 1700000000500);
  EXPECT_EQ((*letters)[0].error_class, "unavailable");
  EXPECT_EQ((*letters)[0].message, "payment is down");
  EXPECT_EQ((*letters)[1].step, "release");
  Result<std::vector<DeadLetter>> none = store->dead_letters("b");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(SqliteStore, ProgramsAreStoredOncePerHash) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  std::vector<uint8_t> image = {'S', 'A', 'G', 'A', 0, 1, 2, 255};
  ASSERT_TRUE(store->put_program("h1", "order.saga", image).ok());
  // Putting the same hash again keeps the first image.
  ASSERT_TRUE(store->put_program("h1", "other", {9, 9}).ok());
  Result<std::vector<uint8_t>> got = store->get_program("h1");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, image);
  Result<std::vector<uint8_t>> missing = store->get_program("h2");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(contains(missing.status().message(), "no program h2")) << missing.status().message();
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

  // Room again: the same writer commits new transitions.
  ASSERT_TRUE(sqlite_store_set_max_page_count(*store, 1 << 30).ok());
  InstanceRecord r = make_record("after");
  r.checkpoint.assign(16384, 'a');
  EXPECT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  EXPECT_EQ(get(*store, "after").checkpoint, r.checkpoint);
  EXPECT_TRUE(submit_and_wait(*store, update).ok());
  EXPECT_EQ(get(*store, "old0").checkpoint, update.instance.checkpoint);
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
