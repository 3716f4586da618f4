// samples/choreography end to end (its README.md): the order service and
// the payment service, each a `sagactl worker` with its own database,
// exchanging CloudEvents over loopback HTTP. order.placed goes from the
// order worker's outbox to the payment worker's POST /events, whose trigger
// starts a charge; payment.completed or payment.failed comes back the same
// way to the order worker, where the order's `await event` takes it: a paid
// order completes, a declined one fails and releases its stock. Then the
// same under kill -9 of each worker mid-flight: every order still ends, as
// its payment says, and every effect at the participants happens once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
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

// Above this amount the payment participant declines the card.
constexpr int kLimit = 1000;

class ChoreographyE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-choreography-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "inventory");
    fs::create_directories(dir_ / "payment");
    order_port_ = saga::samples::free_loopback_port();
    payment_port_ = saga::samples::free_loopback_port();
  }
  // The participants; every charge takes `charge_ms`.
  void start_participants(int charge_ms) {
    inventory_ = std::make_unique<ParticipantProcess>("inventory", dir_ / "inventory");
    payment_ = std::make_unique<ParticipantProcess>(
        "payment", dir_ / "payment",
        std::vector<std::string>{"--decline-above", std::to_string(kLimit), "--latency",
                                 std::to_string(charge_ms)});
  }
  void TearDown() override {
    order_worker_.reset();
    payment_worker_.reset();
    inventory_.reset();
    payment_.reset();
    fs::remove_all(dir_);
  }

  static std::string events_url(int port) {
    return "http://127.0.0.1:" + std::to_string(port) + "/events";
  }
  static std::string sample(const char* name) {
    return std::string(SAGA_SOURCE_DIR) + "/samples/choreography/" + name;
  }
  std::string db(const char* name) const { return (dir_ / name).string(); }

  // The workers of the README, with a short lease so that what a killed one
  // held (instances, outbox claims) is taken up again soon.
  void start_order_worker() {
    order_worker_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SAGACTL, "worker", "--db", db("orders.db"), "--listen",
                                 "127.0.0.1:" + std::to_string(order_port_), "--service",
                                 "inventory=" + inventory_->url(), "--sink",
                                 "order.placed=" + events_url(payment_port_), "--lease", "2s",
                                 "--poll-ms", "50"},
        dir_ / ("order-worker-" + std::to_string(++order_runs_) + ".log"));
  }
  void start_payment_worker() {
    payment_worker_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SAGACTL, "worker", "--db", db("payments.db"), "--listen",
                                 "127.0.0.1:" + std::to_string(payment_port_), "--program",
                                 sample("payment.saga"), "--service", "payment=" + payment_->url(),
                                 "--sink", "payment.completed=" + events_url(order_port_), "--sink",
                                 "payment.failed=" + events_url(order_port_), "--lease", "2s",
                                 "--poll-ms", "50"},
        dir_ / ("payment-worker-" + std::to_string(++payment_runs_) + ".log"));
  }
  std::string logs() const {
    std::string out;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream in(entry.path());
      out += "--- " + entry.path().filename().string() + "\n" +
             std::string(std::istreambuf_iterator<char>(in), {});
    }
    return out;
  }

  int sagactl(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::vector<std::string> argv = {SAGACTL};
    argv.insert(argv.end(), args.begin(), args.end());
    return ChildProcess::run(argv, dir_ / "sagactl.log", out);
  }
  // Places order `order_id` (sagactl start: pending until the worker runs it).
  void place(const std::string& order_id, int amount) {
    std::string out;
    ASSERT_EQ(sagactl({"start", sample("order.saga"), "--saga", "order", "--db", db("orders.db"),
                       "--input", json{{"order_id", order_id}, {"amount", amount}}.dump()},
                      &out),
              0)
        << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    order_of_[out.substr(out.rfind('\n') + 1)] = order_id;
    amounts_[order_id] = amount;
  }
  // The instances of a database: id -> status.
  std::map<std::string, std::string> statuses(const char* name) {
    std::string out;
    std::map<std::string, std::string> by_id;
    if (sagactl({"ls", "--db", db(name), "--json", "--limit", "1000"}, &out) != 0) return by_id;
    auto at = out.find('[');
    json list = at == std::string::npos ? json() : json::parse(out.substr(at), nullptr, false);
    if (!list.is_array()) return by_id;
    for (const json& i : list) by_id[i["id"]] = i["status"];
    return by_id;
  }
  size_t ended(const std::map<std::string, std::string>& s) const {
    size_t n = 0;
    for (const auto& [order, status] : s) n += status == "completed" || status == "compensated";
    return n;
  }
  bool all_ended() {
    auto s = statuses("orders.db");
    return s.size() == amounts_.size() && ended(s) == amounts_.size();
  }

  // What the orders must have come to, and the participants' effects: one
  // reservation per order (released exactly for the declined ones), one
  // charge per order (declined above the limit), no refund, and one charge
  // instance per order at the payment service.
  void expect_every_order_settled_once() {
    auto orders = statuses("orders.db");
    ASSERT_EQ(orders.size(), amounts_.size());
    for (const auto& [id, status] : orders) {
      const std::string& order = order_of_[id];
      EXPECT_EQ(status, amounts_[order] > kLimit ? "compensated" : "completed") << order;
    }
    json reservations = inventory_->request("GET", "/effects");
    std::map<std::string, int> reserved, released;
    for (const json& e : reservations) {
      if (e["kind"] != "do") continue;
      ++reserved[e["response"]["order"]];
      if (e["undone"].get<bool>()) ++released[e["response"]["order"]];
    }
    json charges = payment_->request("GET", "/effects");
    std::map<std::string, int> charged, declined;
    for (const json& e : charges) {
      EXPECT_EQ(e["kind"], "do") << "nothing was refunded: " << e.dump();
      if (e["kind"] != "do") continue;
      ++charged[e["response"]["amount"].dump()];
      declined[e["response"]["amount"].dump()] += e["response"]["status"] == "declined";
    }
    EXPECT_EQ(charges.size(), amounts_.size()) << charges.dump();
    for (const auto& [order, amount] : amounts_) {
      EXPECT_EQ(reserved[order], 1) << order;
      EXPECT_EQ(released[order], amount > kLimit ? 1 : 0) << order;
      EXPECT_EQ(charged[std::to_string(amount)], 1) << order;
      EXPECT_EQ(declined[std::to_string(amount)], amount > kLimit ? 1 : 0) << order;
    }
    auto payments = statuses("payments.db");
    EXPECT_EQ(payments.size(), amounts_.size());
    for (const auto& [id, status] : payments) EXPECT_EQ(status, "completed") << id;
  }

  fs::path dir_;
  std::unique_ptr<ParticipantProcess> inventory_, payment_;
  std::unique_ptr<ChildProcess> order_worker_, payment_worker_;
  int order_port_ = 0, payment_port_ = 0;
  int order_runs_ = 0, payment_runs_ = 0;
  std::map<std::string, int> amounts_;           // order_id -> amount (each amount unique).
  std::map<std::string, std::string> order_of_;  // Order instance id -> order_id.
};

TEST_F(ChoreographyE2E, PaidOrdersCompleteAndDeclinedOnesCompensate) {
  start_participants(50);
  start_payment_worker();
  start_order_worker();
  place("o-1", 40);
  place("o-2", 5000);
  place("o-3", 70);
  ASSERT_TRUE(eventually([&] { return all_ended(); }, 60s)) << logs();
  expect_every_order_settled_once();
  // The order that was paid shows its payment in its output.
  std::string out;
  ASSERT_EQ(sagactl({"events", "ls", "--db", db("orders.db"), "--json"}, &out), 0) << out;
  json events = json::parse(out.substr(out.find('[')), nullptr, false);
  ASSERT_TRUE(events.is_array()) << out;
  EXPECT_EQ(events.size(), 3u) << "one answer per order, each taken by its order's await";
  for (const json& e : events) {
    EXPECT_TRUE(e["matched"].get<bool>()) << e.dump();
    EXPECT_EQ(e["woke"].size(), 1u) << e.dump();
  }
}

// kill -9 of the order worker while its orders wait for their payments (a
// charge takes a second, so none has its answer yet), orders placed while
// it is down, then kill -9 of the payment worker while a charge of those is
// out: nothing is lost, nothing happens twice.
TEST_F(ChoreographyE2E, KilledWorkersLoseNoEventAndRepeatNoEffect) {
  start_participants(1000);
  start_payment_worker();
  start_order_worker();
  int amount = 10;
  for (int i = 1; i <= 6; ++i) place("a-" + std::to_string(i), i % 3 == 0 ? 2000 + i : ++amount);
  ASSERT_TRUE(eventually([&] { return payment_->calls() >= 1; }, 60s)) << logs();
  order_worker_->kill();
  EXPECT_LT(ended(statuses("orders.db")), 6u) << "killed while orders waited";
  for (int i = 1; i <= 6; ++i) place("b-" + std::to_string(i), i % 3 == 0 ? 3000 + i : ++amount);
  start_order_worker();
  ASSERT_TRUE(eventually([&] { return payment_->calls() > 6; }, 60s)) << logs();
  payment_worker_->kill();
  start_payment_worker();
  ASSERT_TRUE(eventually([&] { return all_ended(); }, 120s)) << logs();
  expect_every_order_settled_once();
}

}  // namespace
