// The set of evicted instances (runtime/engine/evicted.hpp) on its own: ids
// as 16-byte keys, due entries in order, epochs that keep a late reload from
// taking a newer eviction. The engine tests check eviction end to end.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "runtime/engine/evicted.hpp"

namespace {

using saga::runtime::EvictedSet;
using saga::runtime::InstanceKey;

InstanceKey key(int n) {
  return *InstanceKey::parse(std::string("0190a1b2-c3d4-7e5f-8a6b-") + std::string(10, '0') +
                             std::to_string(10 + n));
}

TEST(EvictedSet, KeysAreCanonicalUuidsOnly) {
  const std::string id = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
  auto k = InstanceKey::parse(id);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->text(), id);
  EXPECT_EQ(k->bytes[0], 0x01);
  EXPECT_EQ(k->bytes[15], 0x2b);
  // Anything but the engine's own form (a UUIDv7, canonical) has no key, and
  // its instance stays in memory: upper case, no dashes, short, another
  // version or variant, not hex.
  for (const char* other :
       {"0190a1b2-c3d4-4e5f-8a6b-7c8d9e0f1a2b", "0190a1b2-c3d4-7e5f-ca6b-7c8d9e0f1a2b",
        "0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B", "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b",
        "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2", "order-1", "",
        "0190a1b2-c3d4-7e5f-8a6b_7c8d9e0f1a2b", "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g"}) {
    EXPECT_FALSE(InstanceKey::parse(other)) << other;
  }
}

TEST(EvictedSet, HandsOutDueEntriesEarliestFirstOnce) {
  EvictedSet set;
  set.add(key(1), 300, true, nullptr);
  set.add(key(2), 100, true, nullptr);
  set.add(key(3), 200, false, nullptr);
  EXPECT_EQ(set.next_due(), 100);
  std::vector<EvictedSet::Due> due;
  set.take_due(99, 10, due);
  EXPECT_TRUE(due.empty());
  set.take_due(250, 10, due);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].key, key(2));
  EXPECT_EQ(due[1].key, key(3));
  // Handed out, they stay in the set until taken, but come up no more.
  EXPECT_EQ(set.size(), 3u);
  EXPECT_TRUE(set.contains(key(2)));
  EXPECT_EQ(set.next_due(), 300);
  due.clear();
  set.take_due(250, 10, due);
  EXPECT_TRUE(due.empty());
  // The limit leaves the rest for the next call.
  set.add(key(4), 260, true, nullptr);
  set.take_due(1000, 1, due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, key(4));
}

TEST(EvictedSet, TakeAndPostponeApplyToTheirEvictionOnly) {
  EvictedSet set;
  const uint32_t first = set.add(key(1), 100, true, nullptr);
  auto taken = set.take(key(1), first);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->due, 100);
  EXPECT_TRUE(taken->forward);
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.next_due(), std::numeric_limits<int64_t>::max()) << "its heap slot is skipped";
  // Evicted again: a late reload of the first eviction takes nothing.
  const uint32_t second = set.add(key(1), 500, false, nullptr);
  EXPECT_NE(first, second);
  EXPECT_FALSE(set.take(key(1), first));
  set.postpone(key(1), first, 50);
  EXPECT_EQ(set.find(key(1))->due, 500);
  // A reload that could not read the store tries again later.
  std::vector<EvictedSet::Due> due;
  set.take_due(500, 10, due);
  ASSERT_EQ(due.size(), 1u);
  set.postpone(key(1), second, 1500);
  EXPECT_EQ(set.next_due(), 1500);
  due.clear();
  set.take_due(1500, 10, due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].epoch, second);
}

TEST(EvictedSet, ManyTakenEntriesDoNotGrowTheHeap) {
  EvictedSet set;
  for (int round = 0; round < 1000; ++round) {
    const uint32_t epoch = set.add(key(round % 7), 1000 + round, true, nullptr);
    EXPECT_TRUE(set.take(key(round % 7), epoch));  // Cancelled before it was due.
    ASSERT_LE(set.slots(), 2 * set.size() + 64) << round;
  }
  EXPECT_EQ(set.size(), 0u);
  set.add(key(1), 5, true, nullptr);
  EXPECT_EQ(set.next_due(), 5);
  std::vector<EvictedSet::Due> due;
  set.take_due(10'000, 100, due);
  EXPECT_EQ(due.size(), 1u);
}

}  // namespace
