// The store's read methods for the operator's views (Store::query_instances,
// list_dead_letters, list_programs, check_ready): filters, the order, and
// paging by cursor that returns every instance exactly once, also when many
// were created in the same millisecond.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/store/store_test_util.hpp"

namespace saga::store {
namespace {

using test::create_transition;
using test::make_event;
using test::make_record;
using test::open_or_die;
using test::submit_and_wait;
using test::TempDir;

std::vector<std::string> ids_of(const std::vector<InstanceRecord>& rows) {
  std::vector<std::string> out;
  for (const InstanceRecord& r : rows) out.push_back(r.id);
  return out;
}

TEST(StoreViews, PagesEveryInstanceOnceNewestFirst) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
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

TEST(StoreViews, ListsDeadLettersAcrossInstancesWithTheirAttempts) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  for (const char* id : {"a", "b"}) {
    InstanceRecord r = make_record(id);
    r.saga = std::string("saga-") + id;
    ASSERT_TRUE(submit_and_wait(*store, create_transition(r)).ok());
  }
  Transition t;
  t.instance = make_record("a");
  t.instance.saga = "saga-a";
  t.instance.status = InstanceStatus::kStuck;
  t.events.push_back(make_event("stuck", "refund", 7));
  t.dead_letter = DeadLetter{"a", "refund", 1700000000500, "unavailable", "payment is down"};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());
  t = Transition{};
  t.instance = make_record("b");
  t.instance.saga = "saga-b";
  t.instance.status = InstanceStatus::kStuck;
  t.dead_letter = DeadLetter{"b", "release", 1700000000600, "timeout", "no answer"};
  ASSERT_TRUE(submit_and_wait(*store, t).ok());

  auto letters = store->list_dead_letters(10);
  ASSERT_TRUE(letters.ok()) << letters.status().message();
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].letter.instance_id, "b");  // Newest first.
  EXPECT_EQ((*letters)[0].attempts, 0u);             // No `stuck` event: unknown.
  EXPECT_EQ((*letters)[1].letter.instance_id, "a");
  EXPECT_EQ((*letters)[1].saga, "saga-a");
  EXPECT_EQ((*letters)[1].status, InstanceStatus::kStuck);
  EXPECT_EQ((*letters)[1].letter.step, "refund");
  EXPECT_EQ((*letters)[1].letter.error_class, "unavailable");
  EXPECT_EQ((*letters)[1].attempts, 7u);
  EXPECT_EQ(store->list_dead_letters(1).value().size(), 1u);
}

TEST(StoreViews, ListsProgramsAndSaysWhetherItIsReady) {
  TempDir dir;
  auto store = open_or_die(dir.file("x.db"));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_program("00112233445566778899aabbccddeeff", "order.saga", {1, 2, 3}).ok());
  auto programs = store->list_programs();
  ASSERT_TRUE(programs.ok());
  ASSERT_EQ(programs->size(), 1u);
  EXPECT_EQ((*programs)[0].hash, "00112233445566778899aabbccddeeff");
  EXPECT_EQ((*programs)[0].name, "order.saga");
  EXPECT_GT((*programs)[0].created_ms, 0);
  EXPECT_TRUE(store->check_ready().ok()) << store->check_ready().message();
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = open_sqlite_store(dir.file("x.db"), read_only);
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(reader.value()->check_ready().ok());
  EXPECT_EQ(reader.value()->list_programs().value().size(), 1u);
}

}  // namespace
}  // namespace saga::store
