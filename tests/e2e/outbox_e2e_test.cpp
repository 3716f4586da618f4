// Events out end to end (docs/events.md): `sagactl worker --notify URL`
// writes an outbox event when an instance becomes paused or stuck, and its
// relay delivers it as a CloudEvent to a real receiver (a `participant`
// server's POST /events on 127.0.0.1, which deduplicates by source and id
// and counts deliveries), at least once and in order per instance, through
// a receiver that is down for a while and a kill -9 of the worker. Also the
// kill -9 of the worker during the retry of a paused step (#11).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "samples/participants/participant_process.hpp"
#include "tests/support/eventually.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using saga::samples::ChildProcess;
using saga::samples::ParticipantProcess;
using saga::test::eventually;

class OutboxE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-outbox-e2e-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "w.db").string();
  }
  void TearDown() override {
    workers_.clear();
    sink_.reset();
    payment_.reset();
    fs::remove_all(dir_);
  }

  // A payment service that fails every call (503) until told otherwise,
  // and the sagas: `flaky` pauses when its charge keeps failing; `stuck`
  // is stuck at once (an undo whose arguments cannot be computed).
  fs::path sagas() {
    payment_ = std::make_unique<ParticipantProcess>("payment", dir_,
                                                    std::vector<std::string>{"--fail-rate", "1"});
    fs::path path = dir_ / "notify.saga";
    std::ofstream(path) << "service payment { url \"" << payment_->url() << "\" timeout 5s }\n"
                        << R"(
saga flaky(order_id: string) {
  step charge {
    do payment.charge(customer: order_id, amount: 42, currency: "EUR") -> p
    retry { attempts: 2, backoff: fixed(10ms), on: any, then: pause }
  }
  output p.id
}
saga stuck(n: number) {
  step first { do log(message: "first") undo log(message: "undo first") }
  step second { do log(message: "second") undo log(message: "${n / 0}") }
  fail rejected "give up"
}
)";
    return path;
  }

  void start_sink(int port = 0) {
    fs::create_directories(dir_ / "sink");
    sink_ = std::make_unique<ParticipantProcess>("payment", dir_ / "sink",
                                                 std::vector<std::string>{}, port);
  }
  static std::string events_url(int port) {
    return "http://127.0.0.1:" + std::to_string(port) + "/events";
  }

  ChildProcess& worker(int sink_port) {
    workers_.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{SAGACTL, "worker", "--db", db_, "--poll-ms", "50", "--notify",
                                 events_url(sink_port)},
        dir_ / ("worker" + std::to_string(workers_.size()) + ".log")));
    return *workers_.back();
  }

  int sagactl(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::vector<std::string> argv = {SAGACTL};
    argv.insert(argv.end(), args.begin(), args.end());
    return ChildProcess::run(argv, dir_ / "sagactl.log", out);
  }
  std::string start(const fs::path& file, const std::string& saga, const std::string& input) {
    std::string out;
    EXPECT_EQ(
        sagactl({"start", file.string(), "--saga", saga, "--db", db_, "--input", input}, &out), 0)
        << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out.substr(out.rfind('\n') + 1);
  }
  json json_of(const std::vector<std::string>& args) {
    std::string out;
    if (sagactl(args, &out) != 0) return json();
    auto at = out.find('[');
    return at == std::string::npos ? json() : json::parse(out.substr(at), nullptr, false);
  }
  // `sagactl outbox ls --json` (state: all, pending, delivered, dead).
  json outbox(const std::string& state = "all") {
    return json_of({"outbox", "ls", "--db", db_, "--json", "--limit", "1000", "--state", state});
  }
  std::string status_of(const std::string& id) {
    json list = json_of({"ls", "--db", db_, "--json", "--limit", "1000"});
    if (!list.is_array()) return "";
    for (const json& i : list) {
      if (i["id"] == id) return i["status"];
    }
    return "";
  }
  // What the receiver got: [{event, deliveries}] in order of first arrival.
  json received() {
    json got = sink_->request("GET", "/events");
    return got.is_array() ? got : json::array();
  }

  fs::path dir_;
  std::string db_;
  std::unique_ptr<ParticipantProcess> payment_, sink_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
};

TEST_F(OutboxE2E, NotifyWebhookFiresOnceForPausedAndOnceForStuck) {
  fs::path file = sagas();
  start_sink();
  ChildProcess& w = worker(sink_->port());
  std::string paused = start(file, "flaky", R"({"order_id": "o-1"})");
  std::string stuck = start(file, "stuck", R"({"n": 1})");
  // Once the relay has recorded both deliveries, nothing more is sent.
  ASSERT_TRUE(eventually([&] { return outbox("delivered").size() == 2; }, 20s)) << w.output();
  json got = received();
  ASSERT_EQ(got.size(), 2u) << got.dump();
  std::map<std::string, json> by_type;
  for (const json& g : got) {
    EXPECT_EQ(g["deliveries"], 1) << g.dump();
    by_type[g["event"]["type"]] = g["event"];
  }
  const json& p = by_type["saga.instance.paused"];
  EXPECT_EQ(p["specversion"], "1.0");
  EXPECT_EQ(p["source"], "/sagas/flaky/instances/" + paused);
  EXPECT_EQ(p["datacontenttype"], "application/json");
  EXPECT_EQ(p["data"]["instance"], paused);
  EXPECT_EQ(p["data"]["saga"], "flaky");
  EXPECT_EQ(p["data"]["step"], "charge");
  EXPECT_EQ(p["data"]["error_class"], "unavailable");
  const json& s = by_type["saga.instance.stuck"];
  EXPECT_EQ(s["data"]["instance"], stuck);
  EXPECT_EQ(s["data"]["status"], "stuck");
  EXPECT_EQ(s["data"]["step"], "second");
  EXPECT_EQ(status_of(paused), "paused");
  EXPECT_EQ(status_of(stuck), "stuck");
  EXPECT_TRUE(outbox("pending").empty());
  EXPECT_TRUE(outbox("dead").empty());
  // outbox ls --json: the record of docs/json.md, its times in ISO 8601.
  for (const json& row : outbox("delivered")) {
    EXPECT_EQ(row["state"], "delivered");
    EXPECT_EQ(row["attempts"], 1) << row.dump();
    EXPECT_TRUE(row["delivered"].is_string() && row["time"].is_string()) << row.dump();
    EXPECT_EQ(row["delivered"].get<std::string>().back(), 'Z') << row.dump();
    EXPECT_EQ(row["source"], by_type[row["type"].get<std::string>()]["source"]) << row.dump();
    EXPECT_EQ(row["data"], by_type[row["type"].get<std::string>()]["data"]) << row.dump();
  }
}

// The receiver is down while instances pause, and pause again after an
// operator's retry: the rows wait (retried with backoff), and once it is up
// every event arrives, each instance's in order.
TEST_F(OutboxE2E, ReceiverDownForAWhileThenEveryEventArrivesInOrderPerInstance) {
  fs::path file = sagas();
  const int port = saga::samples::free_loopback_port();
  ChildProcess& w = worker(port);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(start(file, "flaky", R"({"order_id": "o)" + std::to_string(i) + "\"}"));
  auto all_tried = [&](size_t rows) {
    json pending = outbox("pending");
    if (pending.size() != rows) return false;
    size_t tried = 0;
    for (const json& r : pending) tried += r["attempts"].get<int>() >= 1;
    return tried >= ids.size();  // Every instance's first event failed at least once.
  };
  ASSERT_TRUE(eventually([&] { return all_tried(4); }, 20s)) << w.output();
  // An operator retries each: it fails again and pauses again, a second
  // event behind the first.
  // (sagactl carries the retry out itself, the instance being free:
  // --notify makes it write the notice, which the worker's relay delivers.)
  for (const std::string& id : ids) ASSERT_EQ(sagactl({"retry", id, "--db", db_, "--notify"}), 0);
  ASSERT_TRUE(eventually([&] { return outbox("pending").size() == 8; }, 20s)) << w.output();
  start_sink(port);
  ASSERT_TRUE(eventually([&] { return outbox("delivered").size() == 8; }, 60s)) << w.output();
  json got = received();
  ASSERT_EQ(got.size(), 8u) << got.dump();
  std::map<std::string, std::vector<int64_t>> seqs;
  for (const json& g : got) seqs[g["event"]["source"]].push_back(g["event"]["sagaseq"]);
  ASSERT_EQ(seqs.size(), 4u);
  for (const auto& [source, order] : seqs) {
    EXPECT_EQ(order, (std::vector<int64_t>{1, 2})) << source << ": in order per instance";
  }
  EXPECT_TRUE(outbox("dead").empty());
}

// kill -9 of the worker with undelivered rows: the next worker delivers
// them all; none is lost, and the receiver sees each id once (or drops the
// repeats: the same id every time).
TEST_F(OutboxE2E, KillWorkerWithUndeliveredEventsThenRestartDeliversAll) {
  fs::path file = sagas();
  const int port = saga::samples::free_loopback_port();
  ChildProcess& first = worker(port);
  std::set<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.insert(start(file, "stuck", R"({"n": 1})"));
  ASSERT_TRUE(eventually([&] { return outbox("pending").size() == 6; }, 20s)) << first.output();
  first.kill();
  start_sink(port);
  ChildProcess& second = worker(port);
  // A row the killed relay had claimed waits for its claim to run out
  // (60 s): hence the long limit, never needed in practice.
  ASSERT_TRUE(eventually([&] { return outbox("delivered").size() == 6; }, 90s)) << second.output();
  json got = received();
  std::set<std::string> instances;
  for (const json& g : got) instances.insert(g["event"]["data"]["instance"].get<std::string>());
  EXPECT_EQ(got.size(), 6u) << got.dump();
  EXPECT_EQ(instances, ids);
}

// #11: kill -9 of the engine that runs the retry of a paused step (sagactl
// retry carries it out itself when no worker holds the instance, else the
// worker does: both are killed), then resume: the step runs again with the
// same idempotency key, the instance completes, and the participant made the
// charge once.
TEST_F(OutboxE2E, KillWorkerDuringTheRetryOfAPausedStepThenResumeHasOneEffect) {
  fs::path file = sagas();
  start_sink();
  ChildProcess& w = worker(sink_->port());
  std::string id = start(file, "flaky", R"({"order_id": "o-9"})");
  ASSERT_TRUE(eventually([&] { return status_of(id) == "paused"; }, 20s)) << w.output();
  // Fixed, but slow: the retried call is in flight when the engine dies.
  payment_->control({{"fail_rate", 0}, {"latency_ms", 1500}});
  ChildProcess retry({SAGACTL, "retry", id, "--db", db_}, dir_ / "retry.log");
  ASSERT_TRUE(eventually([&] { return payment_->stats()["in_flight"].get<int64_t>() >= 1; }, 20s))
      << w.output() << retry.output();
  w.kill();
  retry.kill();
  // The participant finishes the charge the dead engine never heard of.
  ASSERT_TRUE(eventually([&] { return payment_->stats()["effects"].get<int64_t>() == 1; }, 20s));
  payment_->control({{"latency_ms", 0}});
  EXPECT_EQ(status_of(id), "running") << "killed mid-retry";
  std::string out;
  ASSERT_EQ(sagactl({"resume", "--db", db_}, &out), 0) << out;
  EXPECT_EQ(status_of(id), "completed");
  json stats = payment_->stats();
  EXPECT_EQ(stats["effects"], 1) << "the charge happened once";
  ASSERT_EQ(stats["calls_by_key"].size(), 1u) << "every attempt had the same key: " << stats.dump();
  EXPECT_GE(stats["calls_by_key"].begin().value().get<int>(), 4)
      << "2 failed attempts, the killed retry and the resumed one";
}

}  // namespace

namespace {

// `emit` end to end: the events a real saga emits are delivered by a
// worker's relay, per `--sink TYPE=URL`, to the receiver, each once and in
// the order each instance emitted them.
TEST_F(OutboxE2E, EmittedEventsOfASagaReachTheirSinksInOrder) {
  fs::path file = dir_ / "emit.saga";
  std::ofstream(file) << R"(
saga shop(order_id: string, items: list) {
  emit order.placed { order: order_id, items: items }
  step charge { do log(message: "charge ${order_id}") }
  foreach item in items {
    emit order.item { order: order_id, item: item }
  }
  emit order.done { order: order_id }
  output order_id
}
)";
  start_sink();
  const std::string url = events_url(sink_->port());
  workers_.push_back(std::make_unique<ChildProcess>(
      std::vector<std::string>{SAGACTL, "worker", "--db", db_, "--poll-ms", "50", "--sink",
                               "order.placed=" + url, "--sink", "order.item=" + url, "--sink",
                               "order.done=" + url},
      dir_ / "worker.log"));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(start(file, "shop",
                        R"({"order_id": "o-)" + std::to_string(i) + R"(", "items": ["a", "b"]})"));
  }
  ASSERT_TRUE(eventually([&] { return outbox("delivered").size() == 12; }, 30s))
      << workers_.back()->output() << outbox().dump();
  json got = received();
  ASSERT_EQ(got.size(), 12u) << got.dump();
  std::map<std::string, std::vector<std::string>> types;  // source -> types in arrival order.
  for (const json& g : got) {
    EXPECT_EQ(g["deliveries"], 1) << g.dump();
    const json& ev = g["event"];
    types[ev["source"]].push_back(ev["type"]);
    EXPECT_TRUE(ev["data"].contains("order")) << ev.dump();
  }
  for (const std::string& id : ids) {
    EXPECT_EQ(types["/sagas/shop/instances/" + id],
              (std::vector<std::string>{"order.placed", "order.item", "order.item", "order.done"}))
        << id;
  }
  EXPECT_TRUE(outbox("dead").empty());
}

}  // namespace
