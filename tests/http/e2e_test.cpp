// End-to-end tests of the HTTP transport: real `participant` processes
// (samples/participants) on 127.0.0.1 with ephemeral ports, sagas compiled in
// memory and run through the embedding API with HttpClient::transport() and
// the real clock. Assertions are about what the servers saw (GET /stats:
// calls per Idempotency-Key, effects, request times, peak concurrency) and
// about the instances' final state. Nothing sleeps and hopes: where time
// must pass (a breaker's reset) the test polls with a deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "saga/http.hpp"
#include "samples/participants/participant_process.hpp"
#include "tests/support/eventually.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using saga::InstanceStatus;
using saga::test::eventually;
// A participant server in a child process (samples/participants).
using Server = saga::samples::ParticipantProcess;
using namespace std::chrono_literals;

std::vector<uint8_t> compile(const std::string& text) {
  auto image = saga::compiler::compile_to_image("test.saga", text);
  EXPECT_TRUE(image.ok()) << image.status().message();
  return image.ok() ? std::move(image).value() : std::vector<uint8_t>{};
}

// Replaces every @NAME@ in text.
std::string fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values) {
    std::string key = "@" + name + "@";
    for (size_t i = text.find(key); i != std::string::npos; i = text.find(key, i + value.size())) {
      text.replace(i, key.size(), value);
    }
  }
  return text;
}

class HttpE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-http-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    // The client stops first, so no request goes out while the engine stops.
    if (client_) client_->shutdown();
    engine_.reset();
    client_.reset();
    servers_.clear();
    fs::remove_all(dir_);
  }

  // Starts a participant (samples/participants) with --seed 7 and `extra`.
  Server& server(const std::string& role, std::vector<std::string> extra = {}, int port = 0) {
    extra.insert(extra.begin(), {"--seed", "7"});
    servers_.push_back(std::make_unique<Server>(role, dir_, extra, port));
    return *servers_.back();
  }

  // `clock`: the engine's (null: the system clock); the HTTP client always
  // runs on real time.
  saga::Engine& open(saga::HttpOptions http = {}, std::shared_ptr<saga::Clock> clock = nullptr) {
    http.log = [this](std::string line) {
      std::lock_guard lock(mu_);
      log_.push_back(std::move(line));
    };
    client_ = saga::HttpClient::create(std::move(http));
    saga::EngineOptions options;
    options.database = (dir_ / "sagas.db").string();
    options.durability = saga::Durability::kNormal;
    options.clock = std::move(clock);
    options.seed = 1;
    options.compensation.initial_ms = 20;
    options.compensation.max_ms = 200;
    options.compensation.attempts = 5;
    options.overload.max_wait = max_wait_;
    options.service_transport = client_->transport();
    options.on_event = [this](const std::string&, const saga::HistoryEvent& e) {
      if (std::getenv("SAGA_TEST_TRACE")) {
        std::fprintf(stderr, "  event %s %s %s %s\n", e.kind.c_str(), e.step.c_str(),
                     e.error_class.c_str(), e.message.c_str());
      }
      std::lock_guard lock(mu_);
      events_.push_back(e);
    };
    auto engine = saga::Engine::open(options);
    EXPECT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine).value();
    client_->register_stdlib_actions(*engine_);
    return *engine_;
  }

  std::string load(const std::string& text) {
    auto hash = engine_->load_program(compile(text));
    EXPECT_TRUE(hash.ok()) << hash.status().message();
    return hash.ok() ? hash.value() : "";
  }

  // Starts an instance and waits (up to 20 s) for its end.
  saga::InstanceInfo run(const std::string& hash, const std::string& saga, const json& input) {
    auto id = engine_->start(hash, saga, input);
    EXPECT_TRUE(id.ok()) << id.status().message();
    if (!id.ok()) return {};
    auto info = engine_->wait(id.value(), 20s);
    EXPECT_TRUE(info.ok());
    return info.ok() ? info.value() : saga::InstanceInfo{};
  }

  std::vector<saga::HistoryEvent> events(const std::string& kind) {
    std::lock_guard lock(mu_);
    std::vector<saga::HistoryEvent> out;
    for (const auto& e : events_) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }

  fs::path dir_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::shared_ptr<saga::HttpClient> client_;
  std::unique_ptr<saga::Engine> engine_;
  std::chrono::milliseconds max_wait_{60'000};  // EngineOptions::overload.max_wait.
  std::mutex mu_;
  std::vector<saga::HistoryEvent> events_;
  std::vector<std::string> log_;
};

// samples/order.saga with every service bound to a participant.
const char* kOrder = R"(
service inventory { url "@INV@"  timeout 2s }
service payment   { url "@PAY@"  timeout 3s  breaker { failures: 5, reset: 30s, probes: 2 }  bulkhead 16 }
service shipping  { url "@SHIP@" timeout 2s }

retry standard { attempts: 4, backoff: exponential(20ms, 2.0, 200ms), jitter: full, on: [timeout, unavailable] }

saga order_fulfillment(order_id: string, customer: string, amount: number, items: list) {
  step reserve {
    do      inventory.reserve(order: order_id, items: items) -> reservation
    undo    inventory.release(reservation: reservation.id)
    retry   standard
  }
  step charge {
    do      payment.charge(customer: customer, amount: amount, currency: "EUR") -> receipt
    undo    payment.refund(payment: receipt.id, reason: "order ${order_id} cancelled")
    retry   { attempts: 3, backoff: fixed(20ms), on: [unavailable] }
  }
  let express = amount > 100 and len(items) <= 3
  if express {
    step ship { do shipping.express(order: order_id) -> shipment  undo shipping.cancel(id: shipment.id) }
  } else {
    step ship_standard { do shipping.standard(order: order_id) -> shipment  undo shipping.cancel(id: shipment.id) }
  }
  if shipment.status == "refused" { fail rejected "carrier refused order ${order_id}" }
  output { order: order_id, receipt: receipt.id, tracking: shipment.tracking }
}
)";

// kOrder bound to the three participants.
std::string order_text(const Server& inv, const Server& pay, const Server& ship) {
  return fill(kOrder, {{"INV", inv.url()}, {"PAY", pay.url()}, {"SHIP", ship.url()}});
}

const json kInput = {
    {"order_id", "o-1"}, {"customer", "c-9"}, {"amount", 150}, {"items", {"a", "b"}}};

TEST_F(HttpE2E, SuccessPath) {
  Server& inv = server("inventory");
  Server& pay = server("payment");
  Server& ship = server("shipping");
  open();
  std::string hash = load(order_text(inv, pay, ship));
  auto info = run(hash, "order_fulfillment", kInput);
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  EXPECT_EQ(info.output["order"], "o-1");
  EXPECT_EQ(info.output["receipt"].get<std::string>().substr(0, 2), "P-");
  EXPECT_EQ(info.output["tracking"].get<std::string>().substr(0, 4), "TRK-");
  for (Server* s : {&inv, &pay, &ship}) {
    json st = s->stats();
    EXPECT_EQ(st["effects"], 1) << st.dump();
    EXPECT_EQ(st["undone"], 0);
  }
  EXPECT_EQ(inv.stats()["calls_by_key"][info.id + "/reserve"], 1);
  EXPECT_EQ(ship.stats()["calls_by_key"][info.id + "/ship"], 1);

  // A second order reuses the kept-alive connections.
  auto again = run(hash, "order_fulfillment", kInput);
  ASSERT_EQ(again.status, InstanceStatus::kCompleted) << again.error_message;
  json st = client_->stats();
  EXPECT_EQ(st["requests"], 6);
  EXPECT_EQ(st["connections_opened"], 3) << st.dump();
  EXPECT_EQ(st["connections_reused"], 3) << st.dump();
}

TEST_F(HttpE2E, ConcurrentSagasKeepEffectsExactlyOnce) {
  // Every inventory key (reserve and release) fails twice with 503 first;
  // sagas with amount > 1000 fail after all their steps and compensate.
  Server& inv = server("inventory", {"--fail-sequence", "503,503"});
  Server& pay = server("payment", {"--latency", "5"});
  Server& ship = server("shipping");
  saga::HttpOptions options;
  options.threads = 3;  // Exchanges on several threads: strands, pool and bulkhead locks.
  open(options);
  std::string text = order_text(inv, pay, ship);
  text.insert(text.rfind("  output"), "  if amount > 1000 { fail rejected \"too expensive\" }\n");
  std::string hash = load(text);
  constexpr int kSagas = 64;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<saga::InstanceInfo> done;
  for (int i = 0; i < kSagas; ++i) {
    json input = kInput;
    input["amount"] = i % 2 ? 5000 : 150;
    auto id =
        engine_->start_async(hash, "order_fulfillment", input, [&](const saga::InstanceInfo& info) {
          std::lock_guard lock(mu);
          done.push_back(info);
          cv.notify_all();
        });
    ASSERT_TRUE(id.ok());
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return done.size() == kSagas; }));
  int completed = 0;
  for (const auto& info : done) {
    if (info.status == InstanceStatus::kCompleted) {
      ++completed;
    } else {
      EXPECT_EQ(info.status, InstanceStatus::kCompensated) << info.error_message;
      EXPECT_EQ(info.error_message, "too expensive");
    }
  }
  EXPECT_EQ(completed, kSagas / 2);
  json inv_stats = inv.stats();
  for (const auto& info : done) {
    EXPECT_EQ(inv_stats["calls_by_key"][info.id + "/reserve"], 3);
  }
  for (Server* s : {&inv, &pay, &ship}) {
    json st = s->stats();
    EXPECT_EQ(st["effects"], kSagas);
    EXPECT_EQ(st["undone"], kSagas / 2);
    EXPECT_EQ(st["tombstones"], 0);
  }
  EXPECT_LE(pay.stats()["in_flight_max"].get<int>(), 16);  // The sample's bulkhead.
}

TEST_F(HttpE2E, CompensationWhenPaymentRejects) {
  Server& inv = server("inventory");
  Server& pay = server("payment", {"--fail-rate", "1", "--fail-status", "400"});
  Server& ship = server("shipping");
  open();
  std::string hash = load(order_text(inv, pay, ship));
  auto info = run(hash, "order_fulfillment", kInput);
  ASSERT_EQ(info.status, InstanceStatus::kCompensated);
  EXPECT_EQ(info.error_class, "rejected");
  EXPECT_NE(info.error_message.find("HTTP 400"), std::string::npos) << info.error_message;
  EXPECT_NE(info.error_message.find("injected failure 400"), std::string::npos)
      << info.error_message;  // The response body is in the message.
  json st = inv.stats();
  EXPECT_EQ(st["effects"], 1);
  EXPECT_EQ(st["undone"], 1);  // The reservation was released.
  EXPECT_EQ(st["calls_by_key"][info.id + "/reserve/undo"], 1);
  EXPECT_EQ(pay.stats()["calls"], 1);  // Rejected: not retried, not compensated.
  EXPECT_EQ(pay.stats()["effects"], 0);
  EXPECT_EQ(ship.stats()["calls"], 0);
}

TEST_F(HttpE2E, RetriesOfUnavailableHaveOneEffect) {
  Server& inv = server("inventory", {"--fail-sequence", "503,503,200"});
  Server& pay = server("payment");
  Server& ship = server("shipping");
  open();
  std::string hash = load(order_text(inv, pay, ship));
  auto info = run(hash, "order_fulfillment", kInput);
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  json st = inv.stats();
  EXPECT_EQ(st["calls_by_key"][info.id + "/reserve"], 3) << st.dump();
  EXPECT_EQ(st["effects"], 1);
  auto failed = events("attempt_failed");
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].error_class, "unavailable");
  EXPECT_NE(failed[0].message.find("HTTP 503"), std::string::npos) << failed[0].message;
}

TEST_F(HttpE2E, TimeoutLeavesTheStepInDoubtAndCompensatesIt) {
  // reserve answers after 1.5 s; the step allows 200 ms and no retry. The
  // release arrives while the reservation is still being made: the server
  // keeps a tombstone, and the late reservation is refused.
  Server& inv = server("inventory", {"--latency-op", "reserve=1500"});
  open();
  std::string hash = load(fill(R"(
service inventory { url "@INV@" }
saga s(order: string) {
  step reserve {
    do   inventory.reserve(order: order) -> reservation
    undo inventory.release(reservation: reservation.id)
    timeout 200ms
  }
  output reservation
}
)",
                               {{"INV", inv.url()}}));
  auto t0 = std::chrono::steady_clock::now();
  auto info = run(hash, "s", {{"order", "o-1"}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1400ms);  // Did not wait for the server.
  ASSERT_EQ(info.status, InstanceStatus::kCompensated);
  EXPECT_EQ(info.error_class, "timeout");
  EXPECT_NE(info.error_message.find("no answer within 200ms"), std::string::npos)
      << info.error_message;
  EXPECT_EQ(events("undo_completed").size(), 1u);
  EXPECT_EQ(inv.stats()["calls_by_key"][info.id + "/reserve/undo"], 1);
  // Once the slow request is done, no reservation is left behind.
  ASSERT_TRUE(eventually([&] { return inv.stats()["in_flight"] == 0; }));
  json st = inv.stats();
  EXPECT_EQ(st["effects"], 0) << st.dump();
  EXPECT_EQ(st["tombstones"], 1);
}

const char* kPay = R"(
service payment { url "@PAY@" timeout 5s @EXTRA@ }
saga pay(n: number) {
  step charge { do payment.charge(amount: n) -> r }
  output r
}
)";

TEST_F(HttpE2E, BreakerOpensAndRecovers) {
  Server& pay = server("payment", {"--fail-rate", "1", "--fail-status", "503"});
  open();
  std::string hash = load(fill(
      kPay, {{"PAY", pay.url()}, {"EXTRA", "breaker { failures: 3, reset: 300ms, probes: 1 }"}}));
  for (int i = 0; i < 3; ++i) {
    auto info = run(hash, "pay", {{"n", i}});
    // `unavailable` leaves the step in doubt: "compensated" (it has no undo).
    ASSERT_EQ(info.status, InstanceStatus::kCompensated);
    EXPECT_EQ(info.error_class, "unavailable");
  }
  ASSERT_EQ(pay.calls(), 3);
  EXPECT_EQ(client_->breaker_states()["payment"]["breaker"]["state"], "open");
  // Open: calls fail at once and never reach the server, so the step had no
  // effect and the saga simply failed (nothing to compensate).
  for (int i = 0; i < 5; ++i) {
    auto info = run(hash, "pay", {{"n", 10 + i}});
    ASSERT_EQ(info.status, InstanceStatus::kFailed);
    EXPECT_EQ(info.error_class, "unavailable");
    EXPECT_NE(info.error_message.find("circuit open for service payment (retry after"),
              std::string::npos)
        << info.error_message;
  }
  EXPECT_EQ(pay.calls(), 3);
  // The service recovers; after the reset a probe goes through and closes it.
  pay.control({{"fail_rate", 0}});
  saga::InstanceInfo last;
  ASSERT_TRUE(eventually([&] {
    last = run(hash, "pay", {{"n", 100}});
    return last.status == InstanceStatus::kCompleted;
  }));
  EXPECT_EQ(pay.calls(), 4);  // Exactly one probe.
  EXPECT_EQ(client_->breaker_states()["payment"]["breaker"]["state"], "closed");
  EXPECT_EQ(run(hash, "pay", {{"n", 101}}).status, InstanceStatus::kCompleted);
  EXPECT_EQ(pay.calls(), 5);
  std::lock_guard lock(mu_);
  std::string all;
  for (const auto& l : log_) all += l + "\n";
  EXPECT_NE(all.find("circuit of service payment: closed -> open"), std::string::npos) << all;
  EXPECT_NE(all.find("circuit of service payment: half-open -> closed"), std::string::npos) << all;
}

// A do refused by an open circuit never reached the service: its step is not
// compensated, so no undo is sent to a service that is down (and the saga
// does not end stuck retrying it). A do that reached the service and failed
// with 503 is in doubt and is compensated.
TEST_F(HttpE2E, StepsRefusedBeforeSendingAreNotCompensated) {
  Server& pay = server("payment", {"--fail-rate", "1", "--fail-status", "503"});
  open();
  std::string hash = load(fill(R"(
service payment { url "@PAY@" timeout 5s breaker { failures: 1, reset: 30s, probes: 1 } }
saga pay(n: number) {
  step charge { do payment.charge(amount: n) -> r  undo payment.refund(payment: r.id) }
  output r
}
)",
                               {{"PAY", pay.url()}}));
  // The first call reaches the server (503): in doubt, compensated; its
  // refund is refused by the circuit that call opened, so it waits in the
  // compensation policy's backoff: leave it there.
  auto first = engine_->start(hash, "pay", {{"n", 1}});
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(eventually([&] { return !events("undo_failed").empty(); }));
  EXPECT_EQ(pay.calls(), 1);

  // The second is refused before sending: not compensated, no refund.
  auto second = run(hash, "pay", {{"n", 2}});
  EXPECT_EQ(second.status, InstanceStatus::kFailed);
  EXPECT_EQ(second.error_class, "unavailable");
  EXPECT_NE(second.error_message.find("circuit open for service payment"), std::string::npos)
      << second.error_message;
  auto history = engine_->store().history(second.id);
  ASSERT_TRUE(history.ok());
  std::vector<std::string> kinds;
  for (const saga::HistoryEvent& e : history.value()) kinds.push_back(e.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"started", "step_failed", "failed"}));
  EXPECT_NE(history->at(1).message.find("never sent"), std::string::npos) << history->at(1).message;
  EXPECT_EQ(pay.calls(), 1);
  EXPECT_TRUE(pay.stats()["calls_by_key"][second.id + "/charge/undo"].is_null());
}

TEST_F(HttpE2E, BreakerReopensWhenTheProbeFails) {
  Server& pay = server("payment", {"--fail-rate", "1", "--fail-status", "502"});
  open();
  std::string hash = load(fill(
      kPay, {{"PAY", pay.url()}, {"EXTRA", "breaker { failures: 2, reset: 200ms, probes: 1 }"}}));
  run(hash, "pay", {{"n", 1}});
  run(hash, "pay", {{"n", 2}});
  ASSERT_EQ(pay.calls(), 2);
  // Wait until a probe reached the (still failing) server: it reopens.
  ASSERT_TRUE(eventually([&] {
    run(hash, "pay", {{"n", 3}});
    return pay.calls() == 3;
  }));
  EXPECT_EQ(client_->breaker_states()["payment"]["breaker"]["state"], "open");
  auto info = run(hash, "pay", {{"n", 4}});
  EXPECT_NE(info.error_message.find("circuit open"), std::string::npos);
  EXPECT_EQ(pay.calls(), 3);
}

TEST_F(HttpE2E, BulkheadLimitsConcurrencyAtTheServer) {
  Server& pay = server("payment", {"--latency", "50"});
  saga::HttpOptions options;
  options.threads = 2;
  open(options);
  std::string hash = load(fill(kPay, {{"PAY", pay.url()}, {"EXTRA", "bulkhead 3"}}));
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, completed = 0;
  constexpr int kSagas = 24;
  for (int i = 0; i < kSagas; ++i) {
    auto id = engine_->start_async(hash, "pay", {{"n", i}}, [&](const saga::InstanceInfo& info) {
      std::lock_guard lock(mu);
      ++done;
      completed += info.status == InstanceStatus::kCompleted;
      cv.notify_all();
    });
    ASSERT_TRUE(id.ok());
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return done == kSagas; }));
  EXPECT_EQ(completed, kSagas);
  json st = pay.stats();
  EXPECT_EQ(st["effects"], kSagas);
  EXPECT_LE(st["in_flight_max"].get<int>(), 3) << st.dump();
  EXPECT_GE(st["in_flight_max"].get<int>(), 2) << st.dump();  // The sagas did overlap.
  json bh = client_->breaker_states()["payment"]["bulkhead"];
  EXPECT_EQ(bh["max_in_use"], 3) << bh.dump();
  EXPECT_EQ(bh["in_use"], 0);
}

TEST_F(HttpE2E, BulkheadWaitDoesNotCountAgainstTheTimeout) {
  // The second call waits about 400 ms for the one slot, then takes 400 ms:
  // within its 600 ms timeout only because the wait does not count.
  Server& pay = server("payment", {"--latency", "400"});
  open();
  std::string hash = load(fill(R"(
service payment { url "@PAY@" timeout 1s bulkhead 1 }
saga slow(n: number) { step charge { do payment.charge(amount: n) -> r } output r }
saga quick(n: number) { step charge { do payment.charge(amount: n) -> r  timeout 600ms } output r }
)",
                               {{"PAY", pay.url()}}));
  auto first = engine_->start(hash, "slow", {{"n", 1}});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(eventually([&] { return pay.stats()["in_flight"] == 1; }));
  auto second = run(hash, "quick", {{"n", 2}});
  EXPECT_EQ(second.status, InstanceStatus::kCompleted) << second.error_message;
  auto info = engine_->wait(first.value(), 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  EXPECT_EQ(pay.calls(), 2);
  EXPECT_EQ(pay.stats()["in_flight_max"], 1);  // One at a time reached the server.
  bool noted = false;
  for (const auto& e : events("step_completed")) {
    noted = noted || e.message.find("waited") != std::string::npos;
  }
  EXPECT_TRUE(noted) << "the queued call's step_completed says how long it waited";
}

TEST_F(HttpE2E, QueuedCallersAreShedAfterTheLongestWait) {
  Server& pay = server("payment", {"--latency", "1500"});
  max_wait_ = 200ms;
  open();
  std::string hash = load(fill(R"(
service payment { url "@PAY@" timeout 3s bulkhead 1 }
saga s(n: number) {
  step charge { do payment.charge(amount: n) -> r  undo payment.refund(payment: r.id) }
  output r
}
)",
                               {{"PAY", pay.url()}}));
  auto first = engine_->start(hash, "s", {{"n", 1}});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(eventually([&] { return pay.stats()["in_flight"] == 1; }));
  auto second = run(hash, "s", {{"n", 2}});
  // Never sent: `unavailable`, and nothing to compensate (no refund).
  EXPECT_EQ(second.status, InstanceStatus::kFailed) << second.error_message;
  EXPECT_EQ(second.error_class, "unavailable");
  EXPECT_NE(second.error_message.find("not sent: waited"), std::string::npos)
      << second.error_message;
  auto info = engine_->wait(first.value(), 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted);
  EXPECT_EQ(pay.calls(), 1);  // The shed call never reached the server.
  EXPECT_EQ(engine_->services()["payment"]["shed"], 1);
}

// A 503 with Retry-After: 1 raises the retry policy's 10 ms backoff to 1 s,
// for a service call and for the stdlib http.* actions alike. (The server
// fails the first call of each idempotency key.)
TEST_F(HttpE2E, RetryAfterIsHonoured) {
  Server& inv = server("inventory", {"--fail-sequence", "503", "--retry-after", "1"});
  open();
  std::string via_service = load(fill(R"(
service inventory { url "@INV@" timeout 2s }
saga s(order: string) {
  step reserve {
    do inventory.reserve(order: order) -> r
    retry { attempts: 3, backoff: fixed(10ms), on: [unavailable] }
  }
  output r
}
)",
                                      {{"INV", inv.url()}}));
  std::string via_stdlib = load(fill(R"(
saga s(order: string) {
  step reserve {
    do http.post(url: "@INV@/reserve", body: {order: order}) -> r
    timeout 2s
    retry { attempts: 3, backoff: fixed(10ms), on: [unavailable] }
  }
  output r
}
)",
                                     {{"INV", inv.url()}}));
  size_t n = 0;
  for (const std::string& hash : {via_service, via_stdlib}) {
    SCOPED_TRACE(hash == via_service ? "service call" : "http.post");
    auto info = run(hash, "s", {{"order", "o-" + std::to_string(++n)}});
    ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
    json times = inv.stats()["times_by_key"][info.id + "/reserve"];
    ASSERT_EQ(times.size(), 2u) << times.dump();
    EXPECT_GE(times[1].get<int64_t>() - times[0].get<int64_t>(), 1000) << times.dump();
    auto failed = events("attempt_failed");
    ASSERT_EQ(failed.size(), n);
    EXPECT_NE(failed.back().message.find("retrying in 1s"), std::string::npos)
        << failed.back().message;
  }
}

TEST_F(HttpE2E, HostsOutsideTheAllowlistAreRejected) {
  Server& inv = server("inventory");
  Server& pay = server("payment");
  saga::HttpOptions options;
  options.allow_hosts = {pay.authority()};
  open(options);
  std::string hash = load(fill(kPay, {{"PAY", inv.url()}, {"EXTRA", ""}}));
  auto info = run(hash, "pay", {{"n", 1}});
  EXPECT_EQ(info.status, InstanceStatus::kFailed);
  EXPECT_EQ(info.error_class, "rejected");
  EXPECT_NE(info.error_message.find("host " + inv.authority() + " is not allowed (--allow-host)"),
            std::string::npos)
      << info.error_message;
  EXPECT_EQ(inv.calls(), 0);
}

TEST_F(HttpE2E, ConnectionRefusedIsUnavailable) {
  Server& inv = server("inventory");
  std::string url = inv.url();
  inv.stop();
  open();
  std::string hash = load(fill(kPay, {{"PAY", url}, {"EXTRA", ""}}));
  auto info = run(hash, "pay", {{"n", 1}});
  // Nothing was sent: no effect, so "failed" (not compensated).
  EXPECT_EQ(info.status, InstanceStatus::kFailed);
  EXPECT_EQ(info.error_class, "unavailable");
  EXPECT_NE(info.error_message.find("cannot connect"), std::string::npos) << info.error_message;
}

TEST_F(HttpE2E, StaleKeepAliveConnectionIsReplacedOnce) {
  Server& first = server("payment");
  int port = first.port();
  open();
  std::string hash = load(fill(kPay, {{"PAY", first.url()}, {"EXTRA", ""}}));
  ASSERT_EQ(run(hash, "pay", {{"n", 1}}).status, InstanceStatus::kCompleted);
  // The server restarts on the same port: the pooled connection is dead.
  first.stop();
  Server& second = server("payment", {}, port);
  ASSERT_EQ(second.port(), port);
  auto info = run(hash, "pay", {{"n", 2}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  EXPECT_EQ(events("attempt_failed").size(), 0u);  // Not even a retry of the step.
  EXPECT_EQ(second.stats()["calls_by_key"][info.id + "/charge"], 1);
  EXPECT_EQ(client_->stats()["connections_opened"], 2);
}

// A host name works as well as an address; "localhost" is loopback without
// a resolver (RFC 6761), so this passes on a system without /etc/hosts.
TEST_F(HttpE2E, DnsNamesAreResolved) {
  Server& pay = server("payment");
  saga::HttpOptions options;
  options.allow_hosts = {"localhost:" + std::to_string(pay.port())};
  open(options);
  std::string hash =
      load(fill(kPay, {{"PAY", "http://localhost:" + std::to_string(pay.port())}, {"EXTRA", ""}}));
  auto info = run(hash, "pay", {{"n", 1}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  EXPECT_EQ(pay.stats()["effects"], 1);
}

TEST_F(HttpE2E, SizeLimits) {
  Server& srv = server("inventory");
  saga::HttpOptions options;
  options.max_request_bytes = 600;
  options.max_response_bytes = 900;
  open(options);
  std::string hash = load(R"(
saga s(url: string, body: any) {
  step call { do http.post(url: url, body: body) -> r }
  output r
}
)");
  auto fits = run(hash, "s", {{"url", srv.url() + "/echo"}, {"body", std::string(20, 'x')}});
  EXPECT_EQ(fits.status, InstanceStatus::kCompleted) << fits.error_message;
  auto big = run(hash, "s", {{"url", srv.url() + "/echo"}, {"body", std::string(700, 'x')}});
  EXPECT_EQ(big.error_class, "rejected");
  EXPECT_NE(big.error_message.find("exceeds the limit of 600 bytes"), std::string::npos)
      << big.error_message;
  // The echo of 500 bytes plus the request's headers is more than 900 bytes.
  auto answer = run(hash, "s", {{"url", srv.url() + "/echo"}, {"body", std::string(500, 'x')}});
  EXPECT_EQ(answer.error_class, "error") << answer.output.dump();
  EXPECT_NE(answer.error_message.find("the response exceeds the limit of 900 bytes"),
            std::string::npos)
      << answer.error_message;
}

TEST_F(HttpE2E, EngineStopsWhileACallIsInFlight) {
  Server& pay = server("payment", {"--latency", "300"});
  open();
  std::string hash = load(fill(kPay, {{"PAY", pay.url()}, {"EXTRA", ""}}));
  auto id = engine_->start(hash, "pay", {{"n", 1}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(eventually([&] { return pay.stats()["in_flight"] == 1; }));
  engine_.reset();  // The answer arrives after the engine is gone: ignored.
  ASSERT_TRUE(eventually([&] { return client_->stats()["in_flight"] == 0; }));
  client_->shutdown();
  // A new process resumes the instance and repeats the call with the same
  // key: the participant answers it from its record, with no new effect.
  open();
  ASSERT_TRUE(engine_->resume().ok());
  auto info = engine_->wait(id.value(), 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  json st = pay.stats();
  EXPECT_EQ(st["calls_by_key"][id.value() + "/charge"], 2);
  EXPECT_EQ(st["effects"], 1);
}

// The new user's torture (issue 8): the process dies while the charge is
// out, the participant applies it, and from then on it injects 402 into
// every request. The resumed attempt repeats the key and must get the first
// response, not an injected failure (docs/http.md): the saga completes with
// one charge.
TEST_F(HttpE2E, ARepeatedKeyGetsItsFirstResponseWhateverIsInjected) {
  Server& pay = server("payment", {"--latency", "300"});
  open();
  std::string hash = load(fill(kPay, {{"PAY", pay.url()}, {"EXTRA", ""}}));
  auto id = engine_->start(hash, "pay", {{"n", 1}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(eventually([&] { return pay.stats()["in_flight"] == 1; }));
  engine_.reset();
  ASSERT_TRUE(eventually([&] { return pay.stats()["effects"] == 1; }));
  client_->shutdown();
  pay.control({{"fail_rate", 1}, {"fail_status", 402}, {"latency_ms", 0}});
  open();
  ASSERT_TRUE(engine_->resume().ok());
  auto info = engine_->wait(id.value(), 10s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, InstanceStatus::kCompleted) << info->error_message;
  json st = pay.stats();
  EXPECT_EQ(st["calls_by_key"][id.value() + "/charge"], 2);
  EXPECT_EQ(st["effects"], 1);
}

// Whether something accepts connections on 127.0.0.1:port.
bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// The README restarts payment with `kill %2; wait %2; participant ... &`:
// on SIGTERM a participant stops listening at once, so its port is free for
// the next one, and still finishes the requests it is serving.
TEST_F(HttpE2E, AStoppingParticipantFreesItsPortAtOnceAndFinishesItsRequests) {
  Server& old = server("payment", {"--latency", "800"});
  const int port = old.port();
  json answer;
  std::thread call([&] { answer = old.request("POST", "/charge", {{"amount", 5}}); });
  ASSERT_TRUE(eventually([&] { return old.stats()["in_flight"] == 1; }));
  old.terminate();
  ASSERT_TRUE(eventually([&] { return !accepts(port); }));
  Server& fresh = server("payment", {}, port);  // While the old one still serves its request.
  call.join();
  EXPECT_EQ(answer["status"], "charged") << answer.dump();
  EXPECT_EQ(fresh.port(), port);
  EXPECT_EQ(fresh.calls(), 0);
}

TEST_F(HttpE2E, HeadersAndRoutes) {
  Server& echo = server("inventory");
  open();
  std::string hash = load(fill(R"(
service echo {
  url "@URL@/echo"
  op lookup = GET "/items/${id}"
  op remove = DELETE "/items/${id}"
  op replace = PUT "/items/${id}"
}
saga s(x: number) {
  step post { do echo.things(x: x, name: "a b") -> p }
  step get { do echo.lookup(id: "a/b c", q: 2) -> g }
  step put { do echo.replace(id: 7, v: [1]) -> u }
  step del { do echo.remove(id: 8) -> d }
  output { post: p, get: g, put: u, del: d }
}
)",
                               {{"URL", echo.url()}}));
  auto info = run(hash, "s", {{"x", 1}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  const json& p = info.output["post"];
  EXPECT_EQ(p["method"], "POST");
  EXPECT_EQ(p["target"], "/echo/things");
  EXPECT_EQ(p["body"], (json{{"x", 1}, {"name", "a b"}}));
  const json& h = p["headers"];
  EXPECT_EQ(h["Idempotency-Key"], info.id + "/post");
  EXPECT_EQ(h["X-Saga-Instance"], info.id);
  EXPECT_EQ(h["X-Saga-Step"], "post");
  EXPECT_EQ(h["X-Saga-Attempt"], "1");
  EXPECT_EQ(h["Content-Type"], "application/json");
  EXPECT_EQ(h["User-Agent"], "saga/0.1");
  EXPECT_EQ(h["Host"], echo.authority());
  std::string trace = info.id;
  trace.erase(std::remove(trace.begin(), trace.end(), '-'), trace.end());
  EXPECT_EQ(h["traceparent"].get<std::string>().substr(0, 36), "00-" + trace + "-");
  EXPECT_EQ(info.output["get"]["method"], "GET");
  EXPECT_EQ(info.output["get"]["target"], "/echo/items/a%2Fb%20c?q=2");
  EXPECT_TRUE(info.output["get"]["body"].is_null());
  EXPECT_EQ(info.output["put"]["method"], "PUT");
  EXPECT_EQ(info.output["put"]["target"], "/echo/items/7");
  EXPECT_EQ(info.output["put"]["body"], (json{{"v", {1}}}));
  EXPECT_EQ(info.output["del"]["method"], "DELETE");
  EXPECT_EQ(info.output["del"]["target"], "/echo/items/8");
}

TEST_F(HttpE2E, RoutedUndoReleasesTheReservation) {
  Server& inv = server("inventory");
  open();
  std::string hash = load(fill(R"(
service inventory { url "@INV@"  op release = DELETE "/reservations/${reservation}" }
saga s(order: string) {
  step reserve {
    do   inventory.reserve(order: order) -> reservation
    undo inventory.release(reservation: reservation.id)
  }
  fail rejected "changed my mind"
}
)",
                               {{"INV", inv.url()}}));
  auto info = run(hash, "s", {{"order", "o-1"}});
  ASSERT_EQ(info.status, InstanceStatus::kCompensated) << info.error_message;
  json st = inv.stats();
  EXPECT_EQ(st["effects"], 1);
  EXPECT_EQ(st["undone"], 1) << st.dump();
}

TEST_F(HttpE2E, StdlibHttpActions) {
  Server& srv = server("inventory");
  open();
  std::string hash = load(fill(R"(
saga s(base: string) {
  step post { do http.post(url: "${base}/echo/hook", body: {x: 1}, headers: {"X-Custom": "v"}) -> p }
  step get { do http.get(url: "${base}/echo/q?z=1") -> g }
  step put { do http.put(url: "${base}/echo/doc", body: [1, 2]) -> u }
  step del { do http.delete(url: "${base}/echo/doc") -> d }
  step stats { do http.get(url: "${base}/stats") -> st }
  output { post: p, get: g, put: u, del: d, stats: st }
}
)",
                               {}));
  auto info = run(hash, "s", {{"base", srv.url()}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  const json& p = info.output["post"];
  EXPECT_EQ(p["method"], "POST");
  EXPECT_EQ(p["target"], "/echo/hook");
  EXPECT_EQ(p["body"], (json{{"x", 1}}));
  EXPECT_EQ(p["headers"]["X-Custom"], "v");
  EXPECT_EQ(p["headers"]["Idempotency-Key"], info.id + "/post");
  EXPECT_EQ(info.output["get"]["method"], "GET");
  EXPECT_EQ(info.output["get"]["target"], "/echo/q?z=1");
  EXPECT_EQ(info.output["put"]["body"], (json{1, 2}));
  EXPECT_EQ(info.output["del"]["method"], "DELETE");
  EXPECT_EQ(info.output["stats"]["calls"], 4);
}

// The stdlib http.* actions give up on the wire at the step's timeout. The
// engine's clock is stopped here, so its own timeout cannot fire: the attempt
// ends at 300 ms by the client, not at the client's default (5 s).
TEST_F(HttpE2E, StdlibHttpGivesUpAtTheStepTimeout) {
  Server& inv = server("inventory", {"--latency", "1500"});
  saga::HttpOptions http;
  http.default_timeout_ms = 5000;
  open(http, std::make_shared<saga::ManualClock>());
  std::string hash = load(R"(
saga s(base: string) {
  step reserve { do http.post(url: "${base}/reserve", body: {order: "o-1"}) -> r  timeout 300ms }
  output r
}
)");
  auto info = run(hash, "s", {{"base", inv.url()}});
  EXPECT_EQ(info.error_class, "timeout");
  EXPECT_NE(info.error_message.find("POST http://" + inv.authority() +
                                    "/reserve: no answer "
                                    "within 300ms"),
            std::string::npos)
      << info.error_message;
}

TEST_F(HttpE2E, StdlibHttpFailures) {
  Server& srv = server("inventory");
  saga::HttpOptions options;
  options.allow_hosts = {srv.authority()};
  open(options);
  std::string hash = load(R"(
saga s(url: string) {
  step call { do http.get(url: url) -> r }
  output r
}
)");
  auto text = run(hash, "s", {{"url", srv.url() + "/text"}});
  EXPECT_EQ(text.error_class, "error");
  EXPECT_NE(text.error_message.find("service returned a non-JSON body: plain text"),
            std::string::npos)
      << text.error_message;
  auto missing = run(hash, "s", {{"url", srv.url() + "/nowhere"}});
  EXPECT_EQ(missing.error_class, "rejected");
  EXPECT_NE(missing.error_message.find("HTTP 404"), std::string::npos) << missing.error_message;
  auto tls = run(hash, "s", {{"url", "https://" + srv.authority() + "/stats"}});
  EXPECT_EQ(tls.error_class, "rejected");
  EXPECT_NE(tls.error_message.find("https is not supported yet"), std::string::npos);
  auto elsewhere = run(hash, "s", {{"url", "http://127.0.0.1:9/x"}});
  EXPECT_EQ(elsewhere.error_class, "rejected");
  EXPECT_NE(elsewhere.error_message.find("host 127.0.0.1:9 is not allowed (--allow-host)"),
            std::string::npos)
      << elsewhere.error_message;
}

const char* kExec = R"(
saga s(cmd: string, args: list, input: string) {
  step run { do exec(cmd: cmd, args: args, stdin: input) -> r }
  output r
}
)";

TEST_F(HttpE2E, ExecAllowed) {
  open();
  saga::register_exec_action(*engine_, true);
  std::string hash = load(kExec);
  auto info = run(hash, "s", {{"cmd", "tr"}, {"args", {"a-z", "A-Z"}}, {"input", "hello; $(x)"}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  EXPECT_EQ(info.output, (json{{"exit", 0}, {"stdout", "HELLO; $(X)"}, {"stderr", ""}}));
  // No shell: the argument is passed as it is, and a nonzero exit is a result.
  info = run(hash, "s",
             {{"cmd", "sh"}, {"args", {"-c", "echo \"$0\" >&2; exit 3", "*"}}, {"input", ""}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  EXPECT_EQ(info.output["exit"], 3);
  EXPECT_EQ(info.output["stderr"], "*\n");
  // A child that does not read its stdin does not hang the action.
  info = run(hash, "s",
             {{"cmd", "true"}, {"args", json::array()}, {"input", std::string(1 << 20, 'x')}});
  ASSERT_EQ(info.status, InstanceStatus::kCompleted) << info.error_message;
  info = run(hash, "s", {{"cmd", "/no/such/program"}, {"args", json::array()}, {"input", ""}});
  EXPECT_EQ(info.error_class, "rejected");
  EXPECT_NE(info.error_message.find("cannot run '/no/such/program'"), std::string::npos)
      << info.error_message;
}

TEST_F(HttpE2E, ExecDisabled) {
  open();
  saga::register_exec_action(*engine_, false);
  std::string hash = load(kExec);
  auto info = run(hash, "s", {{"cmd", "true"}, {"args", json::array()}, {"input", ""}});
  EXPECT_EQ(info.status, InstanceStatus::kFailed);
  EXPECT_EQ(info.error_class, "rejected");
  EXPECT_NE(info.error_message.find("exec is disabled: start the run with --allow-exec"),
            std::string::npos)
      << info.error_message;
}

}  // namespace
