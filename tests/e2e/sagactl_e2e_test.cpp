// End-to-end tests of `sagactl` against real participant services: every
// process here is real (three `participant` servers on 127.0.0.1 with
// ephemeral ports, and sagactl itself), started and stopped by the test.
// The participants record their effects in SQLite files keyed by
// Idempotency-Key, which the test reads to check exactly-once effects,
// including after a `kill -9` of `sagactl worker` in the middle of HTTP calls.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "samples/participants/participant_process.hpp"
#include "tests/support/eventually.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// sagactl runs as a ChildProcess with its stdout and stderr in a log file;
// the participants are started as tests/http starts them.
using saga::samples::ChildProcess;
using saga::samples::ParticipantProcess;
using saga::test::eventually;

// Effects a participant recorded: rows of its `effects` table.
struct Effects {
  std::map<std::string, int> by_op;  // op -> effects
  int total = 0;
  int undone = 0;
};

Effects read_effects(const fs::path& db) {
  Effects out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return out;
  }
  sqlite3_busy_timeout(h, 2000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, "SELECT op, undone FROM effects WHERE kind = 'do'", -1, &st, nullptr) ==
      SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.by_op[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))]++;
      out.total++;
      out.undone += sqlite3_column_int(st, 1);
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

// {"sku": "sku-3"}: an item of samples/fulfil_items.saga's input.
std::string fmt_item(int i) {
  return R"({"sku": "sku-)" + std::to_string(i) + R"("})";
}

class SagactlE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-e2e-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    servers_.clear();
    fs::remove_all(dir_);
  }

  // Starts a participant and returns its port.
  int serve(const std::string& role, std::vector<std::string> extra = {}) {
    servers_.push_back(std::make_unique<ParticipantProcess>(role, dir_, extra));
    return servers_.back()->port();
  }

  // Writes the order saga with the participants' ports.
  fs::path order_saga(int inventory, int payment, int shipping) {
    fs::path path = dir_ / "order.saga";
    std::ofstream(path) << "service inventory { url \"http://127.0.0.1:" << inventory
                        << "\" timeout 2s }\n"
                        << "service payment { url \"http://127.0.0.1:" << payment
                        << "\" timeout 3s }\n"
                        << "service shipping { url \"http://127.0.0.1:" << shipping
                        << "\" timeout 2s }\n"
                        << R"(
retry quick { attempts: 5, backoff: fixed(50ms), on: [timeout, unavailable] }
saga order(order_id: string) {
  step reserve { do inventory.reserve(order: order_id, items: ["book"]) -> r  undo inventory.release(reservation: r.id)  retry quick }
  step charge  { do payment.charge(customer: "c-1", amount: 42, currency: "EUR") -> p  undo payment.refund(payment: p.id)  retry quick }
  step ship    { do shipping.standard(order: order_id) -> s  undo shipping.cancel(id: s.id)  retry quick }
  output { order: order_id, tracking: s.tracking }
}
)";
    return path;
  }

  // Runs sagactl to the end and returns its exit code; output in *out.
  int sagactl(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::vector<std::string> argv = {SAGACTL};
    argv.insert(argv.end(), args.begin(), args.end());
    return ChildProcess::run(argv, dir_ / "sagactl.log", out);
  }

  fs::path dir_;
  std::vector<std::unique_ptr<ParticipantProcess>> servers_;
};

TEST_F(SagactlE2E, RunCompletesOverHttp) {
  fs::path saga = order_saga(serve("inventory"), serve("payment"), serve("shipping"));
  std::string out;
  int code = sagactl(
      {"run", saga.string(), "--db", (dir_ / "s.db").string(), "--input", R"({"order_id": "o-1"})"},
      &out);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"tracking\""), std::string::npos) << out;
  EXPECT_EQ(read_effects(dir_ / "inventory.db").total, 1);
  EXPECT_EQ(read_effects(dir_ / "payment.db").total, 1);
  EXPECT_EQ(read_effects(dir_ / "shipping.db").total, 1);
}

// The README's walk-through: samples/order.saga as it is, its services bound
// to the participants' ephemeral ports with --service.
TEST_F(SagactlE2E, SampleOrderRunsWithServicesBoundOnTheCommandLine) {
  int inventory = serve("inventory"), payment = serve("payment"), shipping = serve("shipping");
  auto url = [](int port) { return "http://127.0.0.1:" + std::to_string(port); };
  std::string out;
  int code =
      sagactl({"run", std::string(SAGA_SOURCE_DIR) + "/samples/order.saga", "--db",
               (dir_ / "s.db").string(), "--service", "inventory=" + url(inventory), "--service",
               "payment=" + url(payment), "--service", "shipping=" + url(shipping), "--input",
               R"({"order_id": "o-9", "customer": "c-1", "amount": 250, "items": ["a"]})"},
              &out);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(read_effects(dir_ / "shipping.db").by_op["express"], 1) << "amount > 100: express";
  EXPECT_EQ(sagactl({"run", std::string(SAGA_SOURCE_DIR) + "/samples/order.saga", "--service",
                     "shipping", "--input", "{}"}),
            2)
      << "a malformed --service is a usage error";
}

// samples/travel.saga books flight, hotel and car in parallel; when the
// hotel declines, every booking made is cancelled, as the participants' own
// databases show.
TEST_F(SagactlE2E, TravelBooksInParallelAndCancelsWhatWasBookedWhenOneFails) {
  auto url = [](int port) { return "http://127.0.0.1:" + std::to_string(port); };
  auto run_trip = [&](const std::string& trip, const std::vector<int>& ports, std::string* out) {
    return sagactl({"run", std::string(SAGA_SOURCE_DIR) + "/samples/travel.saga", "--db",
                    (dir_ / "s.db").string(), "--service", "airline=" + url(ports[0]),
                    "--service", "hotels=" + url(ports[1]), "--service", "cars=" + url(ports[2]),
                    "--input",
                    R"({"trip_id": ")" + trip +
                        R"(", "traveller": {"name": "ada"}, "from": "ZRH", "to": "LIS", "nights": 3, "car": true})"},
                   out);
  };
  std::vector<int> ports = {serve("airline", {"--latency", "100"}),
                            serve("hotels", {"--latency", "100"}),
                            serve("cars", {"--latency", "100"})};
  std::string out;
  EXPECT_EQ(run_trip("t-1", ports, &out), 0) << out;
  EXPECT_NE(out.find("\"ticket\": \"T-1\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"room\": \"H-1\""), std::string::npos) << out;
  // All three were out at once: the run took about one latency, not three.
  EXPECT_NE(out.find("flight/flight step_completed"), std::string::npos) << out;
  EXPECT_NE(out.find("car/rental step_completed"), std::string::npos) << out;
  for (const char* db : {"airline.db", "hotels.db", "cars.db"}) {
    EXPECT_EQ(read_effects(dir_ / db).total, 1) << db;
    EXPECT_EQ(read_effects(dir_ / db).undone, 0) << db;
  }
  // Fresh participants, in a directory of their own.
  servers_.clear();
  const fs::path second = dir_ / "second";
  fs::create_directories(second);
  auto serve_second = [&](const std::string& role, std::vector<std::string> extra) {
    servers_.push_back(std::make_unique<ParticipantProcess>(role, second, extra));
    return servers_.back()->port();
  };
  std::vector<int> failing = {serve_second("airline", {"--latency", "200"}),
                              serve_second("hotels", {"--fail-rate", "1", "--fail-status", "409"}),
                              serve_second("cars", {"--latency", "200"})};
  EXPECT_EQ(run_trip("t-2", failing, &out), 3) << out;
  EXPECT_NE(out.find("compensated: rejected"), std::string::npos) << out;
  // The flight and the car were out when the hotel declined: in doubt, so
  // cancelled, whether or not they had been booked.
  for (const char* db : {"airline.db", "cars.db"}) {
    Effects e = read_effects(second / db);
    EXPECT_EQ(e.undone, e.total) << db << ": every booking made is cancelled";
  }
  EXPECT_EQ(read_effects(second / "hotels.db").total, 0);
}

// samples/fulfil_items.saga reserves every item, at most four at a time,
// then charges; when the charge is declined, every reservation is released.
TEST_F(SagactlE2E, FulfilItemsReservesEveryItemFourAtATimeAndReleasesThemAll) {
  auto url = [](int port) { return "http://127.0.0.1:" + std::to_string(port); };
  std::string items;
  for (int i = 0; i < 10; ++i) items += (i ? "," : "") + fmt_item(i);
  auto run_order = [&](const std::string& order, int inventory, int payment, std::string* out) {
    return sagactl({"run", std::string(SAGA_SOURCE_DIR) + "/samples/fulfil_items.saga", "--db",
                    (dir_ / "s.db").string(), "--service", "inventory=" + url(inventory),
                    "--service", "payment=" + url(payment), "--input",
                    R"({"order_id": ")" + order + R"(", "customer": "c-1", "items": [)" + items +
                        "]}"},
                   out);
  };
  servers_.push_back(
      std::make_unique<ParticipantProcess>("inventory", dir_, std::vector<std::string>{"--latency", "50"}));
  ParticipantProcess& inventory = *servers_.back();
  int payment = serve("payment");
  std::string out;
  EXPECT_EQ(run_order("o-1", inventory.port(), payment, &out), 0) << out;
  EXPECT_NE(out.find("\"reservations\": 10"), std::string::npos) << out;
  EXPECT_EQ(read_effects(dir_ / "inventory.db").total, 10);
  EXPECT_EQ(inventory.stats()["in_flight_max"].get<int>(), 4) << "max 4";
  servers_.pop_back();  // payment
  int declining = serve("payment", {"--fail-rate", "1", "--fail-status", "402"});
  EXPECT_EQ(run_order("o-2", inventory.port(), declining, &out), 3) << out;
  Effects e = read_effects(dir_ / "inventory.db");
  EXPECT_EQ(e.total, 20);
  EXPECT_EQ(e.undone, 10) << "the second order's ten reservations are released";
}

TEST_F(SagactlE2E, RunCompensatesWhenPaymentRejects) {
  int inventory = serve("inventory");
  int payment = serve("payment", {"--fail-rate", "1", "--fail-status", "402"});
  fs::path saga = order_saga(inventory, payment, serve("shipping"));
  std::string out;
  int code = sagactl(
      {"run", saga.string(), "--db", (dir_ / "s.db").string(), "--input", R"({"order_id": "o-2"})"},
      &out);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("compensated: rejected"), std::string::npos) << out;
  Effects inv = read_effects(dir_ / "inventory.db");
  EXPECT_EQ(inv.total, 1);
  EXPECT_EQ(inv.undone, 1) << "the reservation was released";
  EXPECT_EQ(read_effects(dir_ / "payment.db").total, 0);
}

TEST_F(SagactlE2E, AllowHostRejectsOtherHosts) {
  fs::path saga = order_saga(serve("inventory"), serve("payment"), serve("shipping"));
  std::string out;
  int code = sagactl({"run", saga.string(), "--db", (dir_ / "s.db").string(), "--allow-host",
                      "127.0.0.1:1", "--input", R"({"order_id": "o-3"})"},
                     &out);
  EXPECT_EQ(code, 3) << out;
  EXPECT_NE(out.find("is not allowed (--allow-host)"), std::string::npos) << out;
  EXPECT_EQ(read_effects(dir_ / "inventory.db").total, 0);
}

// The worker is killed with SIGKILL while HTTP calls are in flight; `sagactl
// resume` finishes every instance. Each order has exactly one effect per
// service (participants deduplicate repeated keys), none is undone.
TEST_F(SagactlE2E, KillWorkerMidFlightThenResumeHasNoDuplicateEffects) {
  const int kOrders = 24;
  std::vector<std::string> slow = {"--latency", "40"};
  fs::path saga =
      order_saga(serve("inventory", slow), serve("payment", slow), serve("shipping", slow));
  std::string db = (dir_ / "w.db").string();
  for (int i = 0; i < kOrders; ++i) {
    ASSERT_EQ(sagactl({"start", saga.string(), "--db", db, "--input",
                       "{\"order_id\": \"w-" + std::to_string(i) + "\"}"}),
              0);
  }
  {
    ChildProcess worker({SAGACTL, "worker", "--db", db, "--poll-ms", "50"}, dir_ / "worker.log");
    // The orders move through the services together (40 ms a call): kill
    // the worker as soon as the first charge lands, while the other charges
    // are in flight and no shipment has been made.
    ASSERT_TRUE(eventually([&] { return read_effects(dir_ / "payment.db").total >= 1; }, 10s))
        << worker.output();
    worker.kill();
    EXPECT_LT(read_effects(dir_ / "shipping.db").total, kOrders) << "the kill landed mid-flight";
  }
  std::string out;
  ASSERT_EQ(sagactl({"resume", "--db", db}, &out), 0) << out;
  ASSERT_EQ(sagactl({"ls", "--db", db, "--json", "--limit", "1000"}, &out), 0);
  auto list = nlohmann::json::parse(out.substr(out.find('[')), nullptr, false);
  ASSERT_TRUE(list.is_array()) << out;
  ASSERT_EQ(list.size(), static_cast<size_t>(kOrders));
  for (const auto& item : list) EXPECT_EQ(item["status"], "completed") << item.dump();
  for (const char* role : {"inventory", "payment", "shipping"}) {
    Effects e = read_effects(dir_ / (std::string(role) + ".db"));
    EXPECT_EQ(e.total, kOrders) << role << ": one effect per order, none duplicated";
    EXPECT_EQ(e.undone, 0) << role;
  }
}

}  // namespace
