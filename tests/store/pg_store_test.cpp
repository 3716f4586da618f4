// What the PostgreSQL store promises beyond the conformance suite: the URL
// seam (open_store), fencing of a worker whose claim was taken over, the
// errors at open (unreachable server, refused login, a database that is not
// Saga's or is newer), and commits that survive a lost connection and a
// server restart with nothing lost and nothing written twice.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "runtime/store/pg_schema.hpp"
#include "tests/store/store_test_util.hpp"
#include "tests/support/pg_server.hpp"

namespace saga::store {
namespace {

using saga::test::PgServer;
using test::contains;
using test::create_transition;
using test::get;
using test::make_event;
using test::make_record;
using test::submit_and_wait;

std::string fresh() {
  PgServer& pg = PgServer::get();
  EXPECT_TRUE(pg.ok()) << pg.error();
  return pg.ok() ? pg.fresh_database("pg") : std::string();
}

std::unique_ptr<Store> open_pg(const std::string& url, const StoreOptions& options = {}) {
  Result<std::unique_ptr<Store>> r = open_store(url, options);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::string kind_of(const std::string& url, std::string* path = nullptr) {
  Result<std::string> kind = store_kind(url, path);
  return kind.ok() ? *kind : "error: " + kind.status().message();
}

TEST(OpenStore, UrlsNameTheirStore) {
  std::string path;
  EXPECT_EQ(kind_of("orders.db", &path), "sqlite");
  EXPECT_EQ(path, "orders.db");
  EXPECT_EQ(kind_of("sqlite:orders.db", &path), "sqlite");
  EXPECT_EQ(path, "orders.db");
  EXPECT_EQ(kind_of("sqlite:///var/lib/saga/o.db", &path), "sqlite");
  EXPECT_EQ(path, "/var/lib/saga/o.db");
  EXPECT_EQ(kind_of("./a:b.db", &path), "sqlite");
  EXPECT_EQ(kind_of("postgresql://u@h/db"), "postgresql");
  EXPECT_EQ(kind_of("postgres://u@h/db"), "postgresql");
  Result<std::unique_ptr<Store>> r = open_store("mysql://root:secret@127.0.0.1/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "unknown database URL scheme 'mysql'"))
      << r.status().message();
  EXPECT_FALSE(contains(r.status().message(), "secret")) << r.status().message();
}

// A worker paused past its lease (SIGSTOP) and taken over cannot commit:
// its transition is rejected alone, with nothing written, and the rest of
// its batch commits.
TEST(PgStore, FencingRejectsACommitAfterATakeover) {
  std::string url = fresh();
  auto a = open_pg(url);
  auto b = open_pg(url);
  ASSERT_TRUE(a && b);
  for (const char* id : {"x", "y"}) {
    InstanceRecord r = make_record(id);
    r.status = InstanceStatus::kPending;
    ASSERT_TRUE(submit_and_wait(*a, create_transition(r)).ok());
  }
  ASSERT_EQ(a->claim("w1", 1000, 2000, nullptr, "")->size(), 2u);
  InboxMessage m{"m-x", "x", "cancel", "", 1500, 0};
  ASSERT_TRUE(a->post(m).ok());
  // w1 stalls; its lease runs out and w2 takes x over.
  auto taken = b->claim("w2", 3000, 60000, nullptr, "x");
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  ASSERT_EQ(taken->size(), 1u);
  // w1 wakes up and commits both instances in one batch.
  Status sx, sy;
  Transition tx;
  tx.instance = get(*a, "x");
  tx.instance.checkpoint = "stale";
  tx.events.push_back(make_event("step_started", "stale", 1));
  tx.consumed = {"m-x"};  // Fenced with the rest: the message stays for w2.
  Transition ty;
  ty.instance = get(*a, "y");
  ty.instance.checkpoint = "fresh";
  ty.events.push_back(make_event("step_started", "fresh", 1));
  a->submit(tx, [&](Status s) { sx = s; });
  a->submit(ty, [&](Status s) { sy = s; });
  a->flush();
  EXPECT_EQ(sx.code(), StatusCode::kFailedPrecondition) << sx.message();
  EXPECT_TRUE(contains(sx.message(), "taken over")) << sx.message();
  EXPECT_TRUE(sy.ok()) << sy.message();
  EXPECT_EQ(get(*b, "x").checkpoint, make_record("x").checkpoint);
  EXPECT_EQ(b->history("x")->size(), 1u);  // Only "started".
  ASSERT_EQ(get(*b, "x").inbox.size(), 1u);
  EXPECT_EQ(get(*b, "x").inbox[0].id, "m-x");
  EXPECT_EQ(get(*b, "y").checkpoint, "fresh");
  // w2, the owner now, commits.
  Transition t2;
  t2.instance = get(*b, "x");
  t2.instance.checkpoint = "w2's";
  EXPECT_TRUE(submit_and_wait(*b, t2).ok());
  // And w1 stays fenced, even for a transition of fibers and history only.
  Transition branch;
  branch.instance.id = "x";
  branch.write_instance = false;
  branch.fibers = {{1, "stale fiber"}};
  branch.consumed = {"m-x"};
  EXPECT_EQ(submit_and_wait(*a, branch).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(get(*b, "x").fibers.empty());
  EXPECT_EQ(get(*b, "x").inbox.size(), 1u);
}

// LISTEN/NOTIFY (Store::notifies): another store's commit of an instance
// nobody owns, and its post to an inbox, each wake a store waiting for work.
// The waits are failure guards, far longer than a notification takes.
TEST(PgStore, AFreeInstanceAndAPostFromAnotherStoreWakeAWaitingOne) {
  std::string url = fresh();
  auto listening = open_pg(url);
  auto other = open_pg(url);
  ASSERT_TRUE(listening && other);
  ASSERT_TRUE(listening->notifies());
  uint64_t seen = listening->work_count();
  // The listener counts its own start (what was sent before it listened is
  // lost, so its callers look anyway).
  seen = listening->wait_for_work(seen, std::chrono::seconds(10));
  ASSERT_NE(seen, 0u) << "the listener did not connect";

  InstanceRecord free = make_record("free");
  free.owner.clear();
  ASSERT_TRUE(submit_and_wait(*other, create_transition(free)).ok());
  uint64_t after = listening->wait_for_work(seen, std::chrono::seconds(10));
  EXPECT_NE(after, seen) << "an enqueued instance did not notify";

  InboxMessage m{"m-1", "free", "cancel", "", 1, 0};
  ASSERT_TRUE(other->post(m).ok());
  EXPECT_NE(listening->wait_for_work(after, std::chrono::seconds(10)), after)
      << "a post did not notify";

  StoreOptions quiet;
  quiet.notify = false;
  auto polling = open_pg(url, quiet);
  ASSERT_TRUE(polling);
  EXPECT_FALSE(polling->notifies());
}

// Posts from many processes at once commit in seq order (post() serialises
// them), so an engine that reads inbox_since() from the last seq it saw
// misses none: a post with a lower seq never becomes visible after a higher
// one was read.
TEST(PgStore, ConcurrentPostsAreSeenInSeqOrderByAWatcher) {
  std::string url = fresh();
  auto a = open_pg(url);
  ASSERT_TRUE(a);
  ASSERT_TRUE(submit_and_wait(*a, create_transition(make_record("x"))).ok());
  constexpr int kPosters = 4, kEach = 40;
  std::atomic<bool> done{false};
  std::set<std::string> seen_ids;
  Status watch_error;
  std::thread watcher([&] {
    auto w = open_pg(url);
    if (!w) return;
    int64_t seen = 0;
    auto poll = [&] {
      auto fresh_msgs = w->inbox_since(seen, 1000);
      if (!fresh_msgs.ok()) {
        watch_error = fresh_msgs.status();
        return;
      }
      for (const InboxMessage& m : *fresh_msgs) {
        seen = std::max(seen, m.seq);
        seen_ids.insert(m.id);
      }
    };
    while (!done) poll();
    poll();  // What the posters committed last.
  });
  std::vector<std::thread> posters;
  std::atomic<int> failed{0};
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      auto store = open_pg(url);
      if (!store) {
        ++failed;
        return;
      }
      for (int i = 0; i < kEach; ++i) {
        InboxMessage m{fmt::format("m-{}-{}", p, i), "x", "cancel", "", 1, 0};
        if (!store->post(m).ok()) ++failed;
      }
    });
  }
  for (std::thread& t : posters) t.join();
  done = true;
  watcher.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_TRUE(watch_error.ok()) << watch_error.message();
  EXPECT_EQ(seen_ids.size(), static_cast<size_t>(kPosters * kEach));
}

TEST(PgStore, UnreachableServerIsAnIoErrorNamingIt) {
  PgServer& pg = PgServer::get();
  ASSERT_TRUE(pg.ok()) << pg.error();
  // Port 1 on loopback: nothing listens there.
  Result<std::unique_ptr<Store>> r =
      open_store("postgresql://saga:hunter2@127.0.0.1:1/saga?connect_timeout=2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(r.status().message(), "cannot reach PostgreSQL at")) << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "127.0.0.1:1")) << r.status().message();
  EXPECT_FALSE(contains(r.status().message(), "hunter2")) << r.status().message();
}

TEST(PgStore, WrongPasswordIsRefusedWithoutShowingIt) {
  PgServer& pg = PgServer::get();
  ASSERT_TRUE(pg.ok()) << pg.error();
  Result<std::unique_ptr<Store>> r = open_store(pg.url_for("postgres", "not-the-password"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "refused the login")) << r.status().message();
  EXPECT_FALSE(contains(r.status().message(), "not-the-password")) << r.status().message();
  Result<std::unique_ptr<Store>> missing = open_store(pg.url_for("no_such_database"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().message();
}

TEST(PgStore, ADatabaseOfAnotherApplicationIsNotTouched) {
  std::string url = fresh();
  ASSERT_EQ(PgServer::exec(url, "CREATE TABLE customers (id int)"), "");
  Result<std::unique_ptr<Store>> r = open_store(url);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(contains(r.status().message(), "not a Saga database")) << r.status().message();
  EXPECT_EQ(PgServer::query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
            "1");
}

TEST(PgStore, SchemaIsCreatedVersionedAndANewerOneRefused) {
  std::string url = fresh();
  // A reader does not create the schema.
  StoreOptions ro;
  ro.read_only = true;
  Result<std::unique_ptr<Store>> r = open_store(url, ro);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().message();
  EXPECT_EQ(PgServer::query(url, "SELECT to_regclass('saga_meta') IS NULL"), "t");
  // A writer does, once, even when two open at once.
  std::unique_ptr<Store> s1, s2;
  std::thread t([&] { s1 = open_pg(url); });
  s2 = open_pg(url);
  t.join();
  ASSERT_TRUE(s1 && s2);
  EXPECT_EQ(PgServer::query(url, "SELECT value FROM saga_meta WHERE key = 'schema_version'"),
            std::to_string(pg::latest_schema_version()));
  EXPECT_EQ(pg::latest_schema_version(), 4)
      << "version 2: the outbox; 3: events_in; 4: event_waits";
  EXPECT_EQ(PgServer::query(url, "SELECT to_regclass('outbox') IS NOT NULL"), "t");
  EXPECT_EQ(PgServer::query(url, "SELECT to_regclass('events_in') IS NOT NULL"), "t");
  EXPECT_EQ(PgServer::query(url, "SELECT to_regclass('event_waits') IS NOT NULL"), "t");
  s1.reset();
  s2.reset();
  ASSERT_EQ(PgServer::exec(url, "UPDATE saga_meta SET value = '99' WHERE key = 'schema_version'"),
            "");
  r = open_store(url);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(contains(r.status().message(), "newer Saga (schema 99")) << r.status().message();
}

// The writer's connection is killed between batches and during them: every
// transition still commits exactly once.
TEST(PgStore, ALostConnectionIsReconnectedAndNothingIsWrittenTwice) {
  std::string url = fresh();
  StoreOptions options;
  options.busy_timeout_ms = 20000;
  auto store = open_pg(url, options);
  ASSERT_TRUE(store);
  std::atomic<int> ok{0}, failed{0};
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    while (!stop) {
      PgServer::exec(url,
                     "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                     "application_name = 'saga' AND datname = current_database() AND "
                     "pid <> pg_backend_pid()");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  constexpr int kCount = 2000;
  for (int i = 0; i < kCount; ++i) {
    Transition t = create_transition(make_record(fmt::format("i{}", i)));
    store->submit(std::move(t), [&](Status s) {
      (s.ok() ? ok : failed).fetch_add(1);
      EXPECT_TRUE(s.ok()) << s.message();
    });
  }
  store->flush();
  stop = true;
  killer.join();
  EXPECT_EQ(ok.load(), kCount);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(PgServer::query(url, "SELECT count(*) FROM instances"), std::to_string(kCount));
  EXPECT_EQ(PgServer::query(url, "SELECT count(*) FROM history"), std::to_string(kCount));
}

// Connections are cut while batches are on the wire: each transition (an
// instance, four history rows, two fibers: seven statements) is applied
// whole or not at all, and a batch cut before its COMMIT is sent again, so
// every instance ends with exactly its rows. At least one cut must land
// while transitions are still going in, or the test proves nothing.
TEST(PgStore, ACutMidBatchAppliesEachTransitionWholeOnce) {
  std::string url = fresh();
  StoreOptions options;
  options.busy_timeout_ms = 20000;
  auto store = open_pg(url, options);
  ASSERT_TRUE(store);
  constexpr int kCount = 3000;
  std::atomic<int> ok{0}, failed{0}, cuts_mid_run{0};
  std::atomic<bool> stop{false};
  // A cut each time a commit went through since the last one: batches are
  // cut over and over, and the store always gets to finish one in between
  // (a fixed interval shorter than a batch on a busy machine would cut every
  // retry until the busy timeout).
  std::thread killer([&] {
    int after = 0;
    while (!stop) {
      if (ok.load() <= after) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      std::string cut = PgServer::query(
          url,
          "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
          "application_name = 'saga' AND datname = current_database() AND pid <> "
          "pg_backend_pid()) t");
      after = ok.load();
      if (std::atoi(cut.c_str()) > 0 && after < kCount) ++cuts_mid_run;
    }
  });
  for (int i = 0; i < kCount; ++i) {
    Transition t = create_transition(make_record(fmt::format("i{}", i)));
    for (int e = 1; e <= 3; ++e) t.events.push_back(make_event("attempt_failed", "s", e));
    t.fibers = {FiberRow{1, "fiber one"}, FiberRow{2, "fiber two"}};
    store->submit(std::move(t), [&](Status s) {
      (s.ok() ? ok : failed).fetch_add(1);
      EXPECT_TRUE(s.ok()) << s.message();
    });
  }
  store->flush();
  stop = true;
  killer.join();
  EXPECT_EQ(ok.load(), kCount);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(cuts_mid_run.load(), 0) << "no connection was cut while transitions went in";
  EXPECT_EQ(PgServer::query(url, "SELECT count(*) FROM instances"), std::to_string(kCount));
  // Per instance: four history rows and two fibers, never a part or twice.
  EXPECT_EQ(PgServer::query(url,
                            "SELECT count(*) FROM instances i WHERE (SELECT count(*) FROM history "
                            "h WHERE h.instance = i.id) <> 4 OR (SELECT count(*) FROM fibers f "
                            "WHERE f.instance = i.id) <> 2"),
            "0");
  EXPECT_EQ(PgServer::query(url, "SELECT count(*) FROM history"), std::to_string(4 * kCount));
}

// The server restarts while transitions are submitted: the store waits for
// it (up to busy_timeout_ms) and commits everything once.
TEST(PgStore, AServerRestartUnderLoadLosesNothing) {
  std::unique_ptr<PgServer> pg = PgServer::start_private();
  ASSERT_TRUE(pg->ok()) << pg->error();
  std::string url = pg->fresh_database("restart");
  StoreOptions options;
  options.busy_timeout_ms = 30000;
  auto store = open_pg(url, options);
  ASSERT_TRUE(store);
  std::atomic<int> ok{0}, failed{0};
  constexpr int kCount = 3000;
  std::thread submitter([&] {
    for (int i = 0; i < kCount; ++i) {
      Transition t = create_transition(make_record(fmt::format("i{}", i)));
      store->submit(std::move(t), [&](Status s) {
        (s.ok() ? ok : failed).fetch_add(1);
        EXPECT_TRUE(s.ok()) << s.message();
      });
      if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  ASSERT_TRUE(pg->restart());
  submitter.join();
  store->flush();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(ok.load(), kCount);
  EXPECT_EQ(PgServer::query(url, "SELECT count(*) FROM instances"), std::to_string(kCount));
  // Reads reconnect too.
  EXPECT_EQ(get(*store, "i0").id, "i0");
}

}  // namespace
}  // namespace saga::store
