// The store conformance suite: every case runs against each store behind
// saga/store.hpp (the SQLite store on a file, the PostgreSQL store on a
// fresh database of the test cluster, tests/support/pg_server.hpp). What
// one store alone promises (SQLite's seq numbers and syncs, PostgreSQL's
// fencing and reconnects) is in store_test.cpp and pg_store_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/store/sqlite_store.hpp"
#include "tests/store/store_test_util.hpp"
#include "tests/support/pg_server.hpp"

namespace saga::store {
namespace {

using test::contains;
using test::create_transition;
using test::expect_same;
using test::get;
using test::make_event;
using test::make_record;
using test::RawDb;
using test::submit_and_wait;
using test::TempDir;

// The parameter names the store: "sqlite" or "postgresql".
class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      saga::test::PgServer& pg = saga::test::PgServer::get();
      ASSERT_TRUE(pg.ok()) << pg.error();
      url_ = pg.fresh_database("conf");
      ASSERT_FALSE(url_.empty());
    } else {
      url_ = dir_.file("x.db");
    }
  }

  // Opens the test's database (the same one each time: "another process").
  std::unique_ptr<Store> open(const StoreOptions& options = {}) {
    Result<std::unique_ptr<Store>> r = open_store(url_, options);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // The first column of the first row of `sql`, read behind the store's
  // back on a new connection.
  std::string raw_query(const std::string& sql) {
    if (GetParam() == "postgresql") return saga::test::PgServer::query(url_, sql);
    RawDb raw(url_);
    return raw.query(sql);
  }

  TempDir dir_;
  std::string url_;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(StoreConformance, CreateUpdateReadRoundTripsEveryField) {
  auto store = open();
  ASSERT_TRUE(store);

  InstanceRecord r = make_record("i-1");
  r.wake_at_ms = 1700000005000;
  r.cancel_requested = false;
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
  u.cancel_requested = true;
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
  store = open();
  ASSERT_TRUE(store);
  expect_same(get(*store, "i-1"), u);

  Result<std::optional<InstanceRecord>> missing = store->get_instance("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreConformance, CreatedMsNeverChangesOnUpdate) {
  auto store = open();
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  Transition t;
  t.instance = r;
  t.instance.created_ms = 42;
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  EXPECT_EQ(get(*store, "i-1").created_ms, r.created_ms);
}

TEST_P(StoreConformance, ListingsFilterAndOrder) {
  auto store = open();
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

TEST_P(StoreConformance, GroupCommitBatchesTransitionsFromManyThreads) {
  auto store = open();
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

  if (std::optional<SqliteStoreStats> stats = sqlite_store_stats(*store)) {
    EXPECT_EQ(stats->transitions_committed, uint64_t{kThreads * kPerThread});
    EXPECT_LT(stats->commits, uint64_t{kThreads * kPerThread});
    EXPECT_GT(stats->largest_batch, 1u);
    EXPECT_EQ(stats->failed_commits, 0u);
  }
  EXPECT_EQ(raw_query("SELECT count(*) FROM instances"), "10000");
  EXPECT_EQ(raw_query("SELECT count(*) FROM history"), "20000");
  // Each instance's two events, in order.
  Result<std::vector<HistoryEvent>> h = store->history("t3-2499");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[0].kind, "started");
  EXPECT_EQ((*h)[1].kind, "step_started");
}

TEST_P(StoreConformance, DoneRunsInSubmissionOrderAfterDataIsVisibleToANewConnection) {
  auto store = open();
  ASSERT_TRUE(store);
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::string> missing;
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    std::string id = fmt::format("i{}", i);
    store->submit(create_transition(make_record(id)), [&, i, id](Status s) {
      EXPECT_TRUE(s.ok()) << s.message();
      // A brand-new connection, as another process would open.
      std::string found = raw_query("SELECT count(*) FROM instances WHERE id = '" + id + "'");
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

TEST_P(StoreConformance, DestructorCommitsWhatWasQueued) {
  std::atomic<int> ok{0};
  {
    auto store = open();
    ASSERT_TRUE(store);
    for (int i = 0; i < 300; ++i) {
      store->submit(create_transition(make_record(fmt::format("i{}", i))),
                    [&](Status s) { ok.fetch_add(s.ok() ? 1 : 0); });
    }
  }
  EXPECT_EQ(ok.load(), 300);
  EXPECT_EQ(raw_query("SELECT count(*) FROM instances"), "300");
}

TEST_P(StoreConformance, FlushWithNothingQueuedReturns) {
  auto store = open();
  ASSERT_TRUE(store);
  store->flush();
  store->flush();
}

TEST_P(StoreConformance, CancelRequestSurvivesALaterEngineUpdate) {
  auto store = open();
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());

  // `sagactl cancel` in another process.
  {
    auto other = open();
    ASSERT_TRUE(other);
    ASSERT_TRUE(other->request_cancel("i-1").ok());
    Status missing = other->request_cancel("nope");
    EXPECT_EQ(missing.code(), StatusCode::kNotFound);
    EXPECT_TRUE(contains(missing.message(), "nope")) << missing.message();
  }
  // The engine had read the row before the cancel, and writes it back.
  Transition t;
  t.instance = r;
  t.instance.cancel_requested = false;
  t.instance.checkpoint = "step 2";
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  InstanceRecord after = get(*store, "i-1");
  EXPECT_TRUE(after.cancel_requested);
  EXPECT_EQ(after.checkpoint, "step 2");
}

TEST_P(StoreConformance, TransitionsThatCannotApplyFailAlone) {
  auto store = open();
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
TEST_P(StoreConformance, FibersAreWrittenOneByOneAndGoWithTheInstance) {
  auto store = open();
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

TEST_P(StoreConformance, DeadLettersRoundTrip) {
  auto store = open();
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

TEST_P(StoreConformance, ProgramsAreStoredOncePerHash) {
  auto store = open();
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

// Claims and leases (Store::claim, renew): two engines never run the same
// instance; an expired lease or a dead owner frees it; renew extends only
// the owner's own.
TEST_P(StoreConformance, ClaimsTakeFreeInstancesAndLeasesKeepThem) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* id : {"a", "b", "c"}) {
    InstanceRecord r = make_record(id);
    r.status = InstanceStatus::kPending;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  }
  InstanceRecord done = make_record("done");
  done.status = InstanceStatus::kCompleted;
  ASSERT_TRUE(submit_and_wait(*store, create_transition(done)).ok());

  auto first = store->claim("w1", 1000, 5000, nullptr, "");
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_EQ(first->size(), 3u);  // Not the finished one.
  for (const InstanceRecord& r : *first) {
    EXPECT_EQ(r.owner, "w1");
    EXPECT_EQ(r.lease_until_ms, 5000);
  }
  // Another engine, while the leases run: nothing for it.
  auto other = open();
  ASSERT_TRUE(other);
  auto second = other->claim("w2", 2000, 6000, nullptr, "");
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->empty());
  // w1 renews: still nothing for w2 after the first lease would have ended.
  ASSERT_TRUE(store->renew("w1", 9000).ok());
  second = other->claim("w2", 6000, 10000, nullptr, "");
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->empty());
  EXPECT_EQ(get(*store, "a").lease_until_ms, 9000);
  // A dead owner's instances are taken at once, leases or not.
  second = other->claim(
      "w2", 6000, 10000, [](const std::string& o) { return o == "w1"; }, "b");
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].id, "b");
  EXPECT_EQ(get(*store, "b").owner, "w2");
  // Past the lease everything else is free.
  second = other->claim("w2", 9001, 20000, nullptr, "");
  ASSERT_TRUE(second.ok());
  std::vector<std::string> ids;
  for (const InstanceRecord& r : *second) ids.push_back(r.id);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "a"), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), "c"), ids.end());
  EXPECT_EQ(get(*store, "c").owner, "w2");
  // w1's renew no longer touches them.
  ASSERT_TRUE(store->renew("w1", 99999).ok());
  EXPECT_EQ(get(*store, "c").lease_until_ms, 20000);
}

// sagactl migrate's move: applied whole when the instance is as read, else
// refused with nothing written.
TEST_P(StoreConformance, MoveInstanceAppliesOnlyToTheInstanceAsRead) {
  auto store = open();
  ASSERT_TRUE(store);
  Transition t = create_transition(make_record("m"));
  t.fibers = {{1, "old fiber"}};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  InstanceMove move;
  move.id = "m";
  move.from_program = make_record("m").program_hash;
  move.to_program = "fedcba9876543210fedcba9876543210";
  move.expected_checkpoint = make_record("m").checkpoint;
  move.expected_fibers = {{1, "old fiber"}};
  move.checkpoint = "translated";
  move.fibers = {{2, "new fiber"}};
  move.event = make_event("migrated", "", 0);
  auto always = [](const std::string&, int64_t) { return true; };

  InstanceMove stale = move;
  stale.expected_checkpoint = "something else";
  Status s = store->move_instance(stale, always);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_EQ(get(*store, "m").program_hash, move.from_program);

  // Claimed by an engine that still runs: refused.
  ASSERT_EQ(store->claim("w1", 0, 1, nullptr, "m")->size(), 1u);
  s = store->move_instance(move, [](const std::string&, int64_t) { return false; });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_TRUE(contains(s.message(), "w1")) << s.message();

  s = store->move_instance(move, always);
  ASSERT_TRUE(s.ok()) << s.message();
  InstanceRecord moved = get(*store, "m");
  EXPECT_EQ(moved.program_hash, move.to_program);
  EXPECT_EQ(moved.checkpoint, "translated");
  EXPECT_EQ(moved.fibers, (std::vector<FiberRow>{{2, "new fiber"}}));
  auto h = store->history("m");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[1].kind, "migrated");
  InstanceMove ghost = move;
  ghost.id = "nobody";
  EXPECT_EQ(store->move_instance(ghost, always).code(), StatusCode::kNotFound);
}

// A reader (sagactl ls, show) writes nothing.
TEST_P(StoreConformance, ReadOnlyStoreReadsAndRefusesWrites) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("a"))).ok());
  }
  StoreOptions options;
  options.read_only = true;
  auto reader = open(options);
  ASSERT_TRUE(reader);
  EXPECT_EQ(get(*reader, "a").id, "a");
  Status s = submit_and_wait(*reader, create_transition(make_record("b")));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_TRUE(contains(s.message(), "read-only")) << s.message();
  EXPECT_EQ(reader->request_cancel("a").code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(reader->claim("w", 0, 1, nullptr, "").ok());
  EXPECT_EQ(raw_query("SELECT count(*) FROM instances"), "1");
}

}  // namespace
}  // namespace saga::store
