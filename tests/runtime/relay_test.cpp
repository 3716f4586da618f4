// The relay of the transactional outbox (saga/outbox.hpp) against a real
// SQLite store and a fake sender: order per instance through failures, dead
// letters after the retry policy and for types without a sink, pruning, and
// the CloudEvents 1.0 JSON it sends. The HTTP path (a real receiver, kill -9
// of the worker) is in tests/e2e/outbox_e2e_test.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "saga/outbox.hpp"
#include "saga/store.hpp"
#include "tests/support/eventually.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using saga::test::eventually;
using namespace std::chrono_literals;

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-relay-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto store = saga::open_sqlite_store((dir_ / "x.db").string());
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  // Creates instance `id` with `n` events of `type` in one transition each.
  void emit(const std::string& id, int n, const std::string& type = "order.placed") {
    for (int i = 0; i < n; ++i) {
      saga::Transition t;
      t.create = i == 0;
      t.instance.id = id;
      t.instance.saga = "order";
      t.instance.status = saga::InstanceStatus::kRunning;
      saga::OutboxEvent e;
      e.id = saga::outbox_event_id(id, std::to_string(i));
      e.type = type;
      e.source = saga::event_source("order", id);
      e.time_ms = 1700000000000 + i;
      e.data_json = json{{"n", i}}.dump();
      t.outbox.push_back(e);
      std::promise<saga::Status> done;
      store_->submit(std::move(t), [&](saga::Status s) { done.set_value(s); });
      ASSERT_TRUE(done.get_future().get().ok());
    }
  }

  saga::RelayOptions fast() {
    saga::RelayOptions o;
    o.poll = 5ms;
    o.initial_backoff_ms = 1;
    o.max_backoff_ms = 4;
    o.keep_delivered = 24h;
    return o;
  }

  size_t count(saga::OutboxQuery::Which which) {
    saga::OutboxQuery q;
    q.which = which;
    q.limit = 0;
    auto rows = store_->list_outbox(q);
    return rows.ok() ? rows->size() : 0;
  }

  fs::path dir_;
  std::unique_ptr<saga::Store> store_;
};

// A sender that fails the first attempt of every other event, accepts the
// rest, and records what it accepted, checking that an instance never has
// two events out at once.
struct FlakySink {
  std::mutex mu;
  std::map<std::string, int> attempts;               // By event id.
  std::map<std::string, std::vector<int64_t>> seqs;  // Accepted, by source, in order.
  std::set<std::string> out;                         // Sources with an event out.
  bool overlap = false;

  saga::EventSender sender() {
    return [this](const std::string& url, const std::string& body,
                  std::function<void(saga::ServiceOutcome)> done) {
      EXPECT_EQ(url, "http://sink/events");
      json ce = json::parse(body);
      const std::string source = ce["source"], id = ce["id"];
      bool fail;
      {
        std::lock_guard lock(mu);
        overlap = overlap || !out.insert(source).second;
        fail = ++attempts[id] == 1 && ce["data"]["n"].get<int>() % 2 == 0;
      }
      // Answered from another thread, as an HTTP client does.
      std::thread([this, done, source, fail, seq = ce["sagaseq"].get<int64_t>()] {
        saga::ServiceOutcome outcome;
        {
          std::lock_guard lock(mu);
          out.erase(source);
          if (fail) {
            outcome.error_class = "unavailable";
            outcome.message = "503 Service Unavailable";
          } else {
            outcome.ok = true;
            seqs[source].push_back(seq);
          }
        }
        done(outcome);
      }).detach();
    };
  }
};

TEST_F(RelayTest, DeliversEachInstancesEventsInOrderThroughFailures) {
  for (int i = 0; i < 4; ++i) emit("i-" + std::to_string(i), 5);
  FlakySink sink;
  saga::RelayOptions o = fast();
  o.sinks = {{"order.placed", "http://sink/events"}};
  o.sender = sink.sender();
  saga::Relay relay(*store_, o);
  ASSERT_TRUE(eventually([&] { return count(saga::OutboxQuery::Which::kDelivered) == 20; }));
  relay.stop();
  std::lock_guard lock(sink.mu);
  EXPECT_FALSE(sink.overlap) << "two events of one instance were out at once";
  ASSERT_EQ(sink.seqs.size(), 4u);
  for (const auto& [source, seqs] : sink.seqs) {
    EXPECT_EQ(seqs, (std::vector<int64_t>{1, 2, 3, 4, 5})) << source;
  }
  EXPECT_EQ(relay.stats().delivered, 20u);
  EXPECT_EQ(relay.stats().failed_attempts, 12u);  // n = 0, 2, 4 of each instance failed once.
  EXPECT_EQ(count(saga::OutboxQuery::Which::kDead), 0u);
}

// After its attempts a row is a dead letter (with the last error), and the
// instance's next row goes; a type without a sink is dead at once.
TEST_F(RelayTest, DeadLettersAfterTheRetryPolicyAndForTypesWithoutASink) {
  emit("i-1", 2);
  emit("i-2", 1, "nobody.listens");
  std::mutex mu;
  std::map<int, int> tries;  // By data.n.
  saga::RelayOptions o = fast();
  o.attempts = 3;
  o.sinks = {{"order.placed", "http://sink/events"}};
  o.sender = [&](const std::string&, const std::string& body,
                 std::function<void(saga::ServiceOutcome)> done) {
    const int n = json::parse(body)["data"]["n"];
    {
      std::lock_guard lock(mu);
      ++tries[n];
    }
    saga::ServiceOutcome out;
    out.ok = n == 1;
    if (!out.ok) {
      out.error_class = "rejected";
      out.message = "400 Bad Request";
    }
    done(out);
  };
  saga::Relay relay(*store_, o);
  ASSERT_TRUE(eventually([&] { return count(saga::OutboxQuery::Which::kPending) == 0; }));
  relay.stop();
  saga::OutboxQuery dead;
  dead.which = saga::OutboxQuery::Which::kDead;
  auto rows = store_->list_outbox(dead).value();
  ASSERT_EQ(rows.size(), 2u);
  std::map<std::string, saga::OutboxEvent> by_instance;
  for (const auto& r : rows) by_instance[r.instance_id] = r;
  EXPECT_EQ(by_instance["i-1"].seq, 1);
  EXPECT_EQ(by_instance["i-1"].attempts, 3u);
  EXPECT_EQ(by_instance["i-1"].last_error, "rejected: 400 Bad Request");
  EXPECT_EQ(by_instance["i-2"].last_error, "no sink for event type nobody.listens");
  EXPECT_EQ(by_instance["i-2"].attempts, 1u);
  EXPECT_EQ(count(saga::OutboxQuery::Which::kDelivered), 1u) << "i-1's second event went";
  std::lock_guard lock(mu);
  EXPECT_EQ(tries[0], 3);
  EXPECT_EQ(tries[1], 1);
  EXPECT_EQ(relay.stats().dead, 2u);
}

TEST_F(RelayTest, PrunesDeliveredRows) {
  emit("i-1", 3);
  saga::RelayOptions o = fast();
  o.keep_delivered = 0ms;
  o.prune_every = 0ms;
  o.sinks = {{"order.placed", "http://sink/events"}};
  o.sender = [](const std::string&, const std::string&,
                std::function<void(saga::ServiceOutcome)> done) {
    saga::ServiceOutcome out;
    out.ok = true;
    done(out);
  };
  saga::Relay relay(*store_, o);
  ASSERT_TRUE(eventually([&] { return relay.stats().pruned == 3; }));
  EXPECT_EQ(count(saga::OutboxQuery::Which::kAll), 0u);
}

TEST(CloudEvent, StructuredModeJsonHasTheSpecAttributes) {
  saga::OutboxEvent e;
  e.id = saga::outbox_event_id("inst-1", "pos");
  e.instance_id = "inst-1";
  e.seq = 7;
  e.type = "order.placed";
  e.source = saga::event_source("order", "inst-1");
  e.time_ms = 1764629400123;  // 2025-12-01T22:50:00.123Z
  e.data_json = R"({"order":"o-1","amount":42})";
  json ce = json::parse(saga::cloud_event_json(e));
  EXPECT_EQ(ce, (json{{"specversion", "1.0"},
                      {"id", e.id},
                      {"source", "/sagas/order/instances/inst-1"},
                      {"type", "order.placed"},
                      {"time", "2025-12-01T22:50:00.123Z"},
                      {"datacontenttype", "application/json"},
                      {"sagaseq", 7},
                      {"data", {{"order", "o-1"}, {"amount", 42}}}}));
  // Stable: the same instance and position give the same id, others not.
  EXPECT_EQ(e.id, saga::outbox_event_id("inst-1", "pos"));
  EXPECT_NE(e.id, saga::outbox_event_id("inst-1", "pos2"));
  EXPECT_NE(e.id, saga::outbox_event_id("inst-2", "pos"));
  EXPECT_EQ(e.id.size(), 32u);
  e.data_json.clear();
  EXPECT_TRUE(json::parse(saga::cloud_event_json(e))["data"].is_null());
}

}  // namespace
