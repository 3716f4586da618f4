// The store conformance suite: every case runs against each store behind
// saga/store.hpp (the SQLite store on a file, the PostgreSQL store on a
// fresh database of the test cluster, tests/support/pg_server.hpp). What
// one store alone promises (SQLite's seq numbers and syncs, PostgreSQL's
// fencing and reconnects) is in store_test.cpp and pg_store_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
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

InboxMessage message(const std::string& id, const std::string& instance,
                     const std::string& kind = "cancel") {
  return InboxMessage{id, instance, kind, R"({"note":"n"})", 1700000000100, 0};
}

std::vector<std::string> ids_of(const std::vector<InboxMessage>& inbox) {
  std::vector<std::string> out;
  for (const InboxMessage& m : inbox) out.push_back(m.id);
  return out;
}

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

// The inbox (Store::post, Transition::consumed). A message posted by another
// process (sagactl cancel) after the engine read the row survives the
// engine's next update, is read with the row until a transition consumes
// it, and is consumed by that transition only.
TEST_P(StoreConformance, InboxMessagesAreReadWithTheRowUntilATransitionConsumesThem) {
  auto store = open();
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  auto empty = store->last_inbox_seq();
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_EQ(*empty, 0);
  {
    auto other = open();
    ASSERT_TRUE(other);
    InboxMessage a = message("m-a", "i-1"), b = message("m-b", "i-1", "pause");
    ASSERT_TRUE(other->post(a).ok());
    ASSERT_TRUE(other->post(b).ok());
    EXPECT_GT(a.seq, 0);
    EXPECT_GT(b.seq, a.seq);
    InboxMessage again = message("m-a", "i-1");
    Status dup = other->post(again);
    EXPECT_EQ(dup.code(), StatusCode::kInvalidArgument) << dup.message();
    EXPECT_TRUE(contains(dup.message(), "m-a")) << dup.message();
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
  EXPECT_EQ(after.inbox[0].instance_id, "i-1");
  EXPECT_EQ(after.inbox[1].kind, "pause");
  EXPECT_EQ(after.inbox[1].payload_json, R"({"note":"n"})");
  EXPECT_EQ(after.inbox[1].posted_ms, 1700000000100);
  // Listed with the rows a worker reads too.
  auto unfinished = store->list_unfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(ids_of((*unfinished)[0].inbox), (std::vector<std::string>{"m-a", "m-b"}));
  auto since = store->inbox_since(after.inbox[0].seq, 10);
  ASSERT_TRUE(since.ok());
  EXPECT_EQ(ids_of(*since), (std::vector<std::string>{"m-b"}));
  EXPECT_EQ((*since)[0].instance_id, "i-1");
  EXPECT_EQ(ids_of(store->inbox_since(0, 1).value()), (std::vector<std::string>{"m-a"}));

  // Consumed with the transition that acts on it, and only that one; an
  // unknown id is ignored.
  t.consumed = {"m-a", "no-such-message"};
  t.instance.checkpoint = "step 3";
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  after = get(*store, "i-1");
  EXPECT_EQ(after.checkpoint, "step 3");
  EXPECT_EQ(ids_of(after.inbox), (std::vector<std::string>{"m-b"}));
  auto inbox = store->inbox("i-1");
  ASSERT_TRUE(inbox.ok());
  EXPECT_EQ(ids_of(*inbox), (std::vector<std::string>{"m-b"}));
  EXPECT_EQ(ids_of(store->inbox_since(0, 10).value()), (std::vector<std::string>{"m-b"}));
  auto last = store->last_inbox_seq();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, after.inbox[0].seq);
  // Consumed messages are kept, marked.
  EXPECT_EQ(raw_query("SELECT count(*) FROM inbox"), "2");
  EXPECT_EQ(raw_query("SELECT count(*) FROM inbox WHERE consumed_ms <> 0"), "1");
  // And stay consumed after a reopen.
  store.reset();
  store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(ids_of(get(*store, "i-1").inbox), (std::vector<std::string>{"m-b"}));
}

// A transition that fails consumes nothing: the message is still there for
// the next try. Here the instance of the transition does not exist, and in
// the same batch another transition fails alone.
TEST_P(StoreConformance, InboxAFailedTransitionConsumesNothing) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("i-1"))).ok());
  InboxMessage m = message("m-1", "i-1");
  ASSERT_TRUE(store->post(m).ok());
  Transition bad;
  bad.instance = make_record("i-2");  // Never created.
  bad.consumed = {"m-1"};
  Status s = submit_and_wait(*store, bad);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.message();
  EXPECT_EQ(ids_of(get(*store, "i-1").inbox), (std::vector<std::string>{"m-1"}));
  EXPECT_EQ(raw_query("SELECT count(*) FROM inbox WHERE consumed_ms <> 0"), "0");
}

TEST_P(StoreConformance, InboxAFinishedInstanceTakesNoMessages) {
  auto store = open();
  ASSERT_TRUE(store);
  InstanceRecord r = make_record("i-1");
  r.status = InstanceStatus::kCompleted;
  ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  InboxMessage m = message("m-1", "i-1");
  Status s = store->post(m);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_TRUE(contains(s.message(),
                       "instance i-1 is completed: a finished instance takes no "
                       "messages"))
      << s.message();
  EXPECT_TRUE(get(*store, "i-1").inbox.empty());
  EXPECT_EQ(raw_query("SELECT count(*) FROM inbox"), "0");
  // A stuck or paused instance is not finished: it takes them.
  InstanceRecord p = make_record("i-2");
  p.status = InstanceStatus::kPaused;
  ASSERT_TRUE(submit_and_wait(*store, create_transition(p)).ok());
  InboxMessage u = message("m-2", "i-2", "unpause");
  EXPECT_TRUE(store->post(u).ok());
}

// Stuck and paused instances are left alone by workers, unless a message
// waits in their inbox: then list_unfinished() lists them and claim() takes
// them like any unfinished one. A move to stuck or paused releases the lease.
TEST_P(StoreConformance, InboxStuckAndPausedInstancesAreClaimedOnlyWithAMessage) {
  auto store = open();
  ASSERT_TRUE(store);
  for (auto [id, status] :
       {std::pair{"s", InstanceStatus::kStuck}, std::pair{"p", InstanceStatus::kPaused}}) {
    InstanceRecord r = make_record(id);
    r.status = InstanceStatus::kRunning;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
    auto claimed = store->claim("me", 1, 100, nullptr, id);
    ASSERT_TRUE(claimed.ok()) << claimed.status().message();
    ASSERT_EQ(claimed->size(), 1u);
    EXPECT_EQ(get(*store, id).lease_until_ms, 100);
    Transition t;
    t.instance = r;
    t.instance.status = status;
    t.instance.owner = "me";
    t.instance.lease_until_ms = 100;
    ASSERT_TRUE(submit_and_wait(*store, t).ok());
    EXPECT_EQ(get(*store, id).lease_until_ms, 0) << id;
    EXPECT_EQ(get(*store, id).owner, "me") << id;
  }
  auto none = [](const std::string&) { return false; };
  auto claimed = store->claim("me", 1, 100, none);
  ASSERT_TRUE(claimed.ok());
  EXPECT_TRUE(claimed->empty());
  EXPECT_TRUE(store->list_unfinished().value().empty());
  InboxMessage m = message("m-1", "p", "unpause");
  ASSERT_TRUE(store->post(m).ok());
  auto unfinished = store->list_unfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].id, "p");
  // Any engine may take it up: its lease was released.
  auto other = open();
  ASSERT_TRUE(other);
  claimed = other->claim("you", 1, 100, none);
  ASSERT_TRUE(claimed.ok()) << claimed.status().message();
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, "p");
  EXPECT_EQ((*claimed)[0].owner, "you");
  EXPECT_EQ((*claimed)[0].status, InstanceStatus::kPaused);
  EXPECT_EQ(ids_of((*claimed)[0].inbox), (std::vector<std::string>{"m-1"}));
  // The new owner consumes it and unpauses: the stuck one stays alone.
  Transition t;
  t.instance = get(*other, "p");
  t.instance.status = InstanceStatus::kRunning;
  t.consumed = {"m-1"};
  ASSERT_TRUE(submit_and_wait(*other, t).ok());
  EXPECT_TRUE(get(*other, "p").inbox.empty());
  EXPECT_EQ(get(*other, "p").status, InstanceStatus::kRunning);
  auto left = store->list_unfinished();
  ASSERT_TRUE(left.ok());
  std::vector<std::string> ids;
  for (const InstanceRecord& r : *left) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"p"}));
}

// A transition resolves the instance's dead letters (an operator retried or
// skipped the undo): they stay, with the time; list_dead_letters leaves
// them out.
TEST_P(StoreConformance, InboxResolvedDeadLettersAreKeptAndNotListed) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* id : {"i-1", "i-2"}) {
    Transition t = create_transition(make_record(id));
    t.instance.status = InstanceStatus::kStuck;
    t.dead_letter = DeadLetter{id, "refund", 5, "unavailable", "down", 0};
    ASSERT_TRUE(submit_and_wait(*store, t).ok());
  }
  Transition fix;
  fix.instance = make_record("i-1");
  fix.instance.status = InstanceStatus::kCompensating;
  fix.resolve_dead_letters_ms = 77;
  ASSERT_TRUE(submit_and_wait(*store, fix).ok());
  auto letters = store->dead_letters("i-1");
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].resolved_ms, 77);
  EXPECT_EQ(store->dead_letters("i-2").value().at(0).resolved_ms, 0);
  auto open_letters = store->list_dead_letters(10);
  ASSERT_TRUE(open_letters.ok()) << open_letters.status().message();
  ASSERT_EQ(open_letters->size(), 1u);
  EXPECT_EQ((*open_letters)[0].letter.instance_id, "i-2");
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
  InboxMessage m = message("m-1", "a");
  Status posted = reader->post(m);
  EXPECT_EQ(posted.code(), StatusCode::kInvalidArgument) << posted.message();
  EXPECT_TRUE(contains(posted.message(), "read-only")) << posted.message();
  EXPECT_EQ(reader->check_ready().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(reader->claim("w", 0, 1, nullptr, "").ok());
  EXPECT_EQ(raw_query("SELECT count(*) FROM instances"), "1");
  EXPECT_EQ(raw_query("SELECT count(*) FROM inbox"), "0");
  // The views read.
  EXPECT_TRUE(reader->list_programs().ok());
  EXPECT_TRUE(reader->list_dead_letters(10).ok());
  EXPECT_TRUE(reader->count_by_status().ok());
  EXPECT_TRUE(reader->inbox("a").ok());
}

// The operator's views (Store::count_by_status, list_dead_letters,
// list_programs, check_ready).
std::vector<std::string> ids_of(const std::vector<InstanceRecord>& rows) {
  std::vector<std::string> out;
  for (const InstanceRecord& r : rows) out.push_back(r.id);
  return out;
}

// Paging by cursor returns every instance once, newest first, also when
// several were created in the same millisecond; filters by saga and status.
TEST_P(StoreConformance, QueryPagesEveryInstanceOnceNewestFirst) {
  auto store = open();
  ASSERT_TRUE(store);
  // Seven instances; four share a millisecond, so only insertion order tells them apart.
  const int64_t created[] = {1000, 2000, 2000, 2000, 2000, 3000, 4000};
  for (int i = 0; i < 7; ++i) {
    InstanceRecord r = make_record(fmt::format("i{}", i));
    r.created_ms = created[i];
    r.saga = i % 2 == 0 ? "even" : "odd";
    r.status = i == 3 ? InstanceStatus::kStuck : InstanceStatus::kCompleted;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  }
  std::vector<std::string> seen;
  InstanceQuery q;
  q.limit = 2;
  for (int page = 0; page < 10; ++page) {
    auto rows = store->query_instances(q);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    if (rows->empty()) break;
    for (const auto& id : ids_of(*rows)) seen.push_back(id);
    q.before = rows->back().id;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"i6", "i5", "i4", "i3", "i2", "i1", "i0"}));

  InstanceQuery odd;
  odd.saga = "odd";
  EXPECT_EQ(ids_of(store->query_instances(odd).value()),
            (std::vector<std::string>{"i5", "i3", "i1"}));
  odd.before = "i3";
  EXPECT_EQ(ids_of(store->query_instances(odd).value()), (std::vector<std::string>{"i1"}));
  InstanceQuery stuck;
  stuck.status = InstanceStatus::kStuck;
  EXPECT_EQ(ids_of(store->query_instances(stuck).value()), (std::vector<std::string>{"i3"}));
  stuck.saga = "even";
  EXPECT_TRUE(store->query_instances(stuck).value().empty());
  InstanceQuery stale;
  stale.before = "gone";
  auto refused = store->query_instances(stale);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kNotFound);
}

TEST_P(StoreConformance, CountsInstancesByStatusInStatusOrder) {
  auto store = open();
  ASSERT_TRUE(store);
  auto none = store->count_by_status();
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_TRUE(none->empty());
  const std::pair<const char*, InstanceStatus> rows[] = {
      {"a", InstanceStatus::kPaused},  {"b", InstanceStatus::kRunning},
      {"c", InstanceStatus::kRunning}, {"d", InstanceStatus::kCompleted},
      {"e", InstanceStatus::kRunning}, {"f", InstanceStatus::kPaused}};
  for (auto [id, status] : rows) {
    InstanceRecord r = make_record(id);
    r.status = status;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  }
  auto counts = store->count_by_status();
  ASSERT_TRUE(counts.ok()) << counts.status().message();
  EXPECT_EQ(*counts, (std::vector<StatusCount>{{InstanceStatus::kRunning, 3},
                                               {InstanceStatus::kCompleted, 1},
                                               {InstanceStatus::kPaused, 2}}));
}

TEST_P(StoreConformance, ListsOpenDeadLettersAcrossInstancesWithTheirAttempts) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* id : {"a", "b", "c"}) {
    InstanceRecord r = make_record(id);
    r.saga = std::string("saga-") + id;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  }
  auto stuck = [&](const char* id, const char* step, int64_t time, uint32_t attempts) {
    Transition t;
    t.instance = make_record(id);
    t.instance.status = InstanceStatus::kStuck;
    if (attempts > 0) t.events.push_back(make_event("stuck", step, attempts));
    t.dead_letter = DeadLetter{id, step, time, "unavailable", std::string("down: ") + id};
    return submit_and_wait(*store, t);
  };
  ASSERT_TRUE(stuck("a", "refund", 1700000000500, 7).ok());
  ASSERT_TRUE(stuck("b", "release", 1700000000600, 0).ok());
  ASSERT_TRUE(stuck("c", "refund", 1700000000700, 2).ok());
  Transition fix;
  fix.instance = make_record("c");
  fix.instance.status = InstanceStatus::kCompensating;
  fix.resolve_dead_letters_ms = 1700000000800;
  ASSERT_TRUE(submit_and_wait(*store, fix).ok());

  auto letters = store->list_dead_letters(10);
  ASSERT_TRUE(letters.ok()) << letters.status().message();
  ASSERT_EQ(letters->size(), 2u);                    // c's was resolved.
  EXPECT_EQ((*letters)[0].letter.instance_id, "b");  // Newest first.
  EXPECT_EQ((*letters)[0].attempts, 0u);             // No `stuck` event: unknown.
  EXPECT_EQ((*letters)[1].letter.instance_id, "a");
  EXPECT_EQ((*letters)[1].saga, "saga-a");
  EXPECT_EQ((*letters)[1].status, InstanceStatus::kStuck);
  EXPECT_EQ((*letters)[1].letter.step, "refund");
  EXPECT_EQ((*letters)[1].letter.time_ms, 1700000000500);
  EXPECT_EQ((*letters)[1].letter.error_class, "unavailable");
  EXPECT_EQ((*letters)[1].letter.message, "down: a");
  EXPECT_EQ((*letters)[1].attempts, 7u);
  EXPECT_EQ(store->list_dead_letters(1).value().size(), 1u);
  // dead_letters(id) keeps the resolved one.
  EXPECT_EQ(store->dead_letters("c").value().at(0).resolved_ms, 1700000000800);
}

TEST_P(StoreConformance, ListsProgramsAndSaysWhetherItIsReady) {
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->list_programs().value().empty());
  ASSERT_TRUE(store->put_program("00112233445566778899aabbccddeeff", "order.saga", {1, 2, 3}).ok());
  auto programs = store->list_programs();
  ASSERT_TRUE(programs.ok()) << programs.status().message();
  ASSERT_EQ(programs->size(), 1u);
  EXPECT_EQ((*programs)[0].hash, "00112233445566778899aabbccddeeff");
  EXPECT_EQ((*programs)[0].name, "order.saga");
  EXPECT_GT((*programs)[0].created_ms, 0);
  Status ready = store->check_ready();
  EXPECT_TRUE(ready.ok()) << ready.message();
}

// ---- The transactional outbox (saga/store.hpp, OutboxEvent) ----------------

namespace outbox_cases {

OutboxEvent event(const std::string& id, const std::string& type, int64_t time_ms) {
  OutboxEvent e;
  e.id = id;
  e.type = type;
  e.source = "/sagas/Order/instances/x";
  e.time_ms = time_ms;
  e.data_json = R"({"order":"o-1","note":"\u00e9t\u00e9"})";
  return e;
}

std::vector<std::string> ids_of(const std::vector<OutboxEvent>& rows) {
  std::vector<std::string> out;
  for (const OutboxEvent& e : rows) out.push_back(e.id);
  return out;
}

constexpr int64_t kNow = 1700000100000;

}  // namespace outbox_cases

// Rows are written by their transition, numbered per instance in commit
// order, read back with every field, and a replayed id is ignored.
TEST_P(StoreConformance, OutboxRowsAreWrittenWithTheirTransitionAndNumberedPerInstance) {
  using namespace outbox_cases;
  auto store = open();
  ASSERT_TRUE(store);
  Transition a = create_transition(make_record("i-1"));
  a.outbox = {event("e1", "order.placed", 1700000000001), event("e2", "order.paid", 1700000000002)};
  ASSERT_TRUE(submit_and_wait(*store, a).ok());
  Transition b = create_transition(make_record("i-2"));
  b.outbox = {event("f1", "order.placed", 1700000000003)};
  ASSERT_TRUE(submit_and_wait(*store, b).ok());
  Transition c;
  c.instance = make_record("i-1");
  c.outbox = {event("e3", "order.shipped", 1700000000004)};
  ASSERT_TRUE(submit_and_wait(*store, c).ok());
  ASSERT_TRUE(submit_and_wait(*store, c).ok());  // A replay: e3 is there already.

  Result<std::vector<OutboxEvent>> rows = store->list_outbox({});
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 4u);
  std::map<std::string, OutboxEvent> by_id;
  for (const OutboxEvent& e : *rows) by_id[e.id] = e;
  EXPECT_EQ(by_id["e1"].seq, 1);
  EXPECT_EQ(by_id["e2"].seq, 2);
  EXPECT_EQ(by_id["e3"].seq, 3);
  EXPECT_EQ(by_id["f1"].seq, 1);
  OutboxEvent want = event("e2", "order.paid", 1700000000002);
  want.instance_id = "i-1";
  want.seq = 2;
  EXPECT_EQ(by_id["e2"], want);
  OutboxQuery of_i2;
  of_i2.instance_id = "i-2";
  EXPECT_EQ(ids_of(store->list_outbox(of_i2).value()), std::vector<std::string>{"f1"});
}

// No event for a transition that did not commit.
TEST_P(StoreConformance, OutboxAFailedTransitionWritesNoRow) {
  using namespace outbox_cases;
  auto store = open();
  ASSERT_TRUE(store);
  Transition ghost;
  ghost.instance = make_record("never-created");
  ghost.outbox = {event("g1", "order.placed", 1700000000001)};
  Status s = submit_and_wait(*store, ghost);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.message();
  Transition dup = create_transition(make_record("i-1"));
  ASSERT_TRUE(submit_and_wait(*store, dup).ok());
  dup.outbox = {event("d1", "order.placed", 1700000000001)};
  EXPECT_EQ(submit_and_wait(*store, dup).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->list_outbox({}).value().empty());
  EXPECT_EQ(raw_query("SELECT count(*) FROM outbox"), "0");
}

// A claim gives the first open row of each instance, held by one relay
// until it is settled or its lease runs out; a retry waits for its due
// time; a dead row lets its successor go.
TEST_P(StoreConformance, OutboxClaimsGoInOrderPerInstanceOneRelayAtATime) {
  using namespace outbox_cases;
  auto store = open();
  ASSERT_TRUE(store);
  Transition a = create_transition(make_record("i-1"));
  a.outbox = {event("e1", "t", 1700000000001), event("e2", "t", 1700000000002),
              event("e3", "t", 1700000000003)};
  ASSERT_TRUE(submit_and_wait(*store, a).ok());
  Transition b = create_transition(make_record("i-2"));
  b.outbox = {event("f1", "t", 1700000000004)};
  ASSERT_TRUE(submit_and_wait(*store, b).ok());

  auto claim = [&](const std::string& owner, int64_t now) {
    Result<std::vector<OutboxEvent>> r = store->claim_outbox(owner, now, now + 1000, 0);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? ids_of(*r) : std::vector<std::string>{};
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(claim("A", kNow), (V{"e1", "f1"}));
  EXPECT_EQ(claim("B", kNow), V{});  // A holds both heads.
  ASSERT_TRUE(
      store->settle_outbox("e1", {OutboxSettle::Outcome::kDelivered, kNow + 10, 0, ""}).ok());
  EXPECT_EQ(claim("B", kNow + 20), (V{"e2"}));
  ASSERT_TRUE(store
                  ->settle_outbox("e2", {OutboxSettle::Outcome::kRetry, kNow + 30, kNow + 500,
                                         "unavailable: 503"})
                  .ok());
  EXPECT_EQ(claim("B", kNow + 40), V{});  // e2 waits for its due time; e3 waits for e2.
  EXPECT_EQ(claim("B", kNow + 500), (V{"e2"}));
  OutboxQuery pending;
  pending.which = OutboxQuery::Which::kPending;
  pending.instance_id = "i-1";
  std::vector<OutboxEvent> rows = store->list_outbox(pending).value();
  ASSERT_EQ(ids_of(rows), (V{"e2", "e3"}));
  EXPECT_EQ(rows[0].attempts, 1u);
  EXPECT_EQ(rows[0].last_error, "unavailable: 503");
  ASSERT_TRUE(
      store->settle_outbox("e2", {OutboxSettle::Outcome::kDead, kNow + 600, 0, "no sink"}).ok());
  // f1's claim by A ran out at kNow + 1000: anyone takes it again.
  EXPECT_EQ(claim("C", kNow + 1001), (V{"e3", "f1"}));

  OutboxQuery dead;
  dead.which = OutboxQuery::Which::kDead;
  EXPECT_EQ(ids_of(store->list_outbox(dead).value()), V{"e2"});
  OutboxQuery delivered;
  delivered.which = OutboxQuery::Which::kDelivered;
  EXPECT_EQ(ids_of(store->list_outbox(delivered).value()), V{"e1"});
  EXPECT_EQ(store->settle_outbox("nope", {}).code(), StatusCode::kNotFound);

  // Pruning deletes delivered rows older than the bound, nothing else.
  EXPECT_EQ(store->prune_outbox(kNow + 10).value(), 0u);
  EXPECT_EQ(store->prune_outbox(kNow + 11).value(), 1u);
  EXPECT_EQ(ids_of(store->list_outbox({}).value()).size(), 3u);
  EXPECT_TRUE(store->list_outbox(delivered).value().empty());
}

// Relays claiming at once never hold the same row.
TEST_P(StoreConformance, OutboxConcurrentClaimsNeverShareARow) {
  using namespace outbox_cases;
  auto store = open();
  ASSERT_TRUE(store);
  constexpr int kInstances = 60;
  for (int i = 0; i < kInstances; ++i) {
    Transition t = create_transition(make_record(fmt::format("i-{}", i)));
    t.outbox = {event(fmt::format("e-{}", i), "t", 1700000000000 + i)};
    store->submit(t, [](Status s) { EXPECT_TRUE(s.ok()) << s.message(); });
  }
  store->flush();
  auto other = open();  // A second store: another process's relay.
  ASSERT_TRUE(other);
  std::vector<std::string> got[2];
  std::thread t1([&] {
    for (int k = 0; k < 20; ++k) {
      Result<std::vector<OutboxEvent>> r = store->claim_outbox("A", kNow, kNow + 60000, 3);
      if (!r.ok()) {
        ADD_FAILURE() << r.status().message();
        return;
      }
      for (const OutboxEvent& e : *r) got[0].push_back(e.id);
    }
  });
  std::thread t2([&] {
    for (int k = 0; k < 20; ++k) {
      Result<std::vector<OutboxEvent>> r = other->claim_outbox("B", kNow, kNow + 60000, 3);
      if (!r.ok()) {
        ADD_FAILURE() << r.status().message();
        return;
      }
      for (const OutboxEvent& e : *r) got[1].push_back(e.id);
    }
  });
  t1.join();
  t2.join();
  std::set<std::string> all(got[0].begin(), got[0].end());
  all.insert(got[1].begin(), got[1].end());
  EXPECT_EQ(all.size(), got[0].size() + got[1].size()) << "a row was claimed twice";
  EXPECT_EQ(all.size(), static_cast<size_t>(kInstances));
}

// Incoming events (Store::record_event, list_events): recorded once per
// (source, id) together with the instances they start; a redelivery
// writes nothing and gets the first delivery's record back.
EventRecord event_record(const std::string& source, const std::string& id,
                         std::vector<std::string> started) {
  EventRecord e;
  e.source = source;
  e.id = id;
  e.type = "order.placed";
  e.event_json = fmt::format(R"({{"id":"{}","source":"{}"}})", id, source);
  e.received_ms = 1700000000200;
  e.matched = !started.empty();
  e.started = std::move(started);
  return e;
}

Transition pending_start(const std::string& id) {
  InstanceRecord r = make_record(id);
  r.status = InstanceStatus::kPending;
  r.owner.clear();
  r.lease_until_ms = 0;
  r.checkpoint.clear();
  return create_transition(r);
}

TEST_P(StoreConformance, EventsAreRecordedOncePerSourceAndIdWithTheInstancesTheyStart) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<Transition> starts;
  starts.push_back(pending_start("e-1"));
  auto first = store->record_event(event_record("shop", "ev-1", {"e-1"}), std::move(starts));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_FALSE(first->duplicate);
  EXPECT_GT(first->event.seq, 0);
  EXPECT_EQ(get(*store, "e-1").status, InstanceStatus::kPending);
  auto history = store->history("e-1");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);

  // The same (source, id) again, from another connection, with another
  // instance to start: nothing is written, the first record comes back.
  {
    auto other = open();
    ASSERT_TRUE(other);
    std::vector<Transition> again;
    again.push_back(pending_start("e-2"));
    auto second = other->record_event(event_record("shop", "ev-1", {"e-2"}), std::move(again));
    ASSERT_TRUE(second.ok()) << second.status().message();
    EXPECT_TRUE(second->duplicate);
    EXPECT_EQ(second->event.started, std::vector<std::string>{"e-1"});
    EXPECT_EQ(second->event.seq, first->event.seq);
    EXPECT_EQ(second->event.event_json, first->event.event_json);
  }
  EXPECT_EQ(raw_query("SELECT count(*) FROM instances"), "1");
  EXPECT_EQ(raw_query("SELECT count(*) FROM events_in"), "1");

  // The same id from another source is another event; one that matched
  // nothing is recorded too, and listed as unmatched.
  auto third = store->record_event(event_record("billing", "ev-1", {}), {});
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_FALSE(third->duplicate);
  EXPECT_GT(third->event.seq, first->event.seq);
  auto all = store->list_events(10);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].source, "billing");  // Newest first.
  EXPECT_FALSE((*all)[0].matched);
  EXPECT_EQ((*all)[1].source, "shop");
  EXPECT_TRUE((*all)[1].matched);
  EXPECT_EQ((*all)[1].started, std::vector<std::string>{"e-1"});
  EXPECT_EQ((*all)[1].type, "order.placed");
  EXPECT_EQ((*all)[1].received_ms, 1700000000200);
  auto unmatched = store->list_events(10, /*unmatched_only=*/true);
  ASSERT_TRUE(unmatched.ok());
  ASSERT_EQ(unmatched->size(), 1u);
  EXPECT_EQ((*unmatched)[0].source, "billing");
  auto one = store->list_events(1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
}

// The event and its instances commit together or not at all: a start that
// cannot apply (its id exists) leaves no record of the event, so the
// sender's redelivery is not mistaken for a duplicate.
TEST_P(StoreConformance, EventsAreRecordedOnlyWithEveryInstanceTheyStart) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record("taken"))).ok());
  std::vector<Transition> starts;
  starts.push_back(pending_start("fresh"));
  starts.push_back(pending_start("taken"));
  auto r = store->record_event(event_record("shop", "ev-9", {"fresh", "taken"}), std::move(starts));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(raw_query("SELECT count(*) FROM events_in"), "0");
  EXPECT_EQ(raw_query("SELECT count(*) FROM instances"), "1");
  auto again = store->record_event(event_record("shop", "ev-9", {}), {});
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_FALSE(again->duplicate);

  StoreOptions options;
  options.read_only = true;
  auto reader = open(options);
  ASSERT_TRUE(reader);
  auto refused = reader->record_event(event_record("shop", "ev-10", {}), {});
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  auto listed = reader->list_events(10);
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  EXPECT_EQ(listed->size(), 1u);
}

// Event waits (Transition::event_waits, record_event's delivery): a
// transition replaces an instance's waits; an event of a waited type goes,
// in the event's one transaction, to each instance whose match fits, one
// message per instance however many of its fibers wait (id event-SEQ-ID);
// a redelivery hands nothing over again; an empty list drops the waits.
TEST_P(StoreConformance, EventsGoToTheInstancesWhoseWaitsFitThem) {
  auto store = open();
  ASSERT_TRUE(store);
  auto waits = [&](const std::string& id, std::vector<EventWait> list) {
    Transition t;
    t.instance.id = id;
    t.write_instance = false;
    t.event_waits = std::move(list);
    return submit_and_wait(*store, std::move(t));
  };
  for (const char* id : {"w-1", "w-2", "w-3"}) {
    ASSERT_TRUE(submit_and_wait(*store, create_transition(make_record(id))).ok());
  }
  ASSERT_TRUE(waits("w-1", {{0, "pay.ok", "a"}, {2, "pay.ok", "a"}, {2, "pay.failed", "a"}}).ok());
  ASSERT_TRUE(waits("w-2", {{0, "pay.ok", "b"}}).ok());
  ASSERT_TRUE(waits("w-3", {{0, "pay.failed", "a"}}).ok());
  EXPECT_EQ(raw_query("SELECT count(*) FROM event_waits"), "5");

  EventDelivery delivery;
  delivery.kind = "signal";
  delivery.payload_json = R"({"name":"event:pay.ok","data":{}})";
  std::vector<std::string> asked;
  delivery.fits = [&](std::string_view match) {
    asked.emplace_back(match);
    return match == "a";
  };
  EventRecord ok = event_record("pay", "ev-1", {});
  ok.type = "pay.ok";
  auto first = store->record_event(ok, {}, delivery);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->event.matched) << "an event an await takes is matched";
  EXPECT_EQ(first->event.woke, std::vector<std::string>{"w-1"});
  ASSERT_EQ(first->handed.size(), 1u);
  EXPECT_EQ(first->handed[0].id, fmt::format("event-{}-w-1", first->event.seq));
  EXPECT_GT(first->handed[0].seq, 0);
  auto inbox = store->inbox("w-1");
  ASSERT_TRUE(inbox.ok());
  ASSERT_EQ(inbox->size(), 1u);
  EXPECT_EQ((*inbox)[0].id, first->handed[0].id);
  EXPECT_EQ((*inbox)[0].kind, "signal");
  EXPECT_EQ((*inbox)[0].payload_json, delivery.payload_json);
  EXPECT_EQ((*inbox)[0].seq, first->handed[0].seq);
  EXPECT_TRUE(store->inbox("w-2")->empty());
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "b"), 1) << "only waits of its type are asked";

  auto again = store->record_event(ok, {}, delivery);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->event.woke, std::vector<std::string>{"w-1"});
  EXPECT_TRUE(again->handed.empty());
  EXPECT_EQ(store->inbox("w-1")->size(), 1u);

  // Without a delivery, or when nothing fits, nothing is handed over.
  EventRecord failed = event_record("pay", "ev-2", {});
  failed.type = "pay.failed";
  auto plain = store->record_event(failed, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->event.matched);
  EXPECT_TRUE(plain->event.woke.empty());

  // w-1 waits no more: its waits go; w-3's stay and take the next pay.failed.
  ASSERT_TRUE(waits("w-1", {}).ok());
  EXPECT_EQ(raw_query("SELECT count(*) FROM event_waits"), "2");
  failed.id = "ev-3";
  auto third = store->record_event(failed, {}, delivery);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->event.woke, std::vector<std::string>{"w-3"});
  ASSERT_TRUE(waits("w-3", {}).ok());
  failed.id = "ev-4";
  auto fourth = store->record_event(failed, {}, delivery);
  ASSERT_TRUE(fourth.ok());
  EXPECT_TRUE(fourth->event.woke.empty());
  auto listed = store->list_events(1);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, "ev-4");
  auto first_listed = store->list_events(10);
  ASSERT_TRUE(first_listed.ok());
  EXPECT_EQ(first_listed->back().woke, std::vector<std::string>{"w-1"}) << "read back";
}

}  // namespace
}  // namespace saga::store
