// Many `sagactl worker`s on one PostgreSQL, under kill -9, SIGSTOP and a
// server restart: the delivery contract of README.md holds across workers.
//
// Every process is real: a private PostgreSQL 15 cluster (pg_server.hpp; its
// own, because the test restarts it), three `participant` servers (inventory,
// payment, shipping: effects in SQLite files keyed by Idempotency-Key, some
// calls failing before or after their effect) and three `sagactl worker`s with
// a 2 s lease. The test enqueues kOrders orders of a four-step saga, one every
// kEnqueueEveryMs; every fourth one fails after its last step and compensates
// all four. Meanwhile, on a schedule drawn from a seed (printed;
// SAGA_PG_CRASH_SEED=N replays it):
//   * a random worker is killed with SIGKILL and started again, many times;
//   * one worker that holds unfinished instances is SIGSTOPped until another
//     worker took one of them over (its lease ran out), then SIGCONTinued: it
//     must find its commits refused (fencing) and commit nothing for them;
//   * PostgreSQL itself is restarted (fast shutdown) once: workers reconnect.
// Then, with every instance terminal, it checks from the database and the
// participants' files:
//   * no order lost or duplicated, each with the outcome its number dictates;
//   * each step completed once, each undo completed once and in reverse order
//     of the steps (the engine's history and the participants' times);
//   * each effect once per key: one `do` row per step at its participant,
//     the one whose result the engine recorded; repeated deliveries answered
//     from the participant (deduplicated; their number is printed);
//   * no undo without its do: every undo row undoes its step's do row; no
//     tombstone (an undo that found nothing);
//   * every transition was committed by the worker that owned the instance at
//     that moment: a trigger records, for each history row, the committing
//     connection's application name (one per worker process) and the row's
//     owner (fence_audit below).
// The test waits on conditions with deadlines, never on guessed sleeps; the
// pauses between chaos events are the schedule itself.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "samples/participants/participant_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/pg_server.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::samples::ChildProcess;
using saga::samples::ParticipantProcess;
using saga::test::eventually;
using saga::test::PgServer;
using Clock = std::chrono::steady_clock;

constexpr int kOrders = 300;
constexpr int kWorkers = 3;
constexpr int kEnqueueEveryMs = 60;
constexpr const char* kLease = "2s";
constexpr std::chrono::milliseconds kLeaseTime = 2s;
// The steps in order; an order that compensates undoes them in reverse.
const std::vector<std::string> kSteps = {"reserve", "charge", "wrap", "ship"};

// Order n fails after its last step (a business refusal) and compensates.
bool refused(int n) {
  return n % 4 == 3;
}

// Every row of a query, as text (bytea cast by the query).
std::vector<std::vector<std::string>> rows(const std::string& url, const std::string& sql) {
  std::vector<std::vector<std::string>> out;
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(r); ++i) {
        auto& row = out.emplace_back();
        for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
      }
    } else {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  PQfinish(c);
  return out;
}

// A participant's `effects` (and `calls`) rows.
struct Effect {
  std::string key, op, kind, id;
  bool undone = false;
  int64_t at_ms = 0;
};
std::vector<Effect> read_effects(const fs::path& db, int64_t* dedup) {
  std::vector<Effect> out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db;
    sqlite3_close(h);
    return out;
  }
  sqlite3_busy_timeout(h, 2000);
  sqlite3_stmt* st = nullptr;
  auto text = [&](int col) {
    const unsigned char* t = sqlite3_column_text(st, col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  if (sqlite3_prepare_v2(h, "SELECT key, op, kind, id, undone, at_ms FROM effects ORDER BY rowid",
                         -1, &st, nullptr) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.push_back({text(0), text(1), text(2), text(3), sqlite3_column_int(st, 4) != 0,
                     sqlite3_column_int64(st, 5)});
    }
  }
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(h, "SELECT count(*) FROM calls WHERE outcome = 'dedup'", -1, &st,
                         nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    *dedup += sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Records, for every history row, who committed it (the connection's
// application_name: one per worker process) and who owned the instance then.
constexpr const char* kFenceAudit = R"(
CREATE TABLE fence_audit (instance text, app text, owner text, kind text);
CREATE FUNCTION fence_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO fence_audit SELECT NEW.instance, current_setting('application_name'), i.owner,
    convert_from(NEW.kind, 'UTF8') FROM instances i WHERE i.id = NEW.instance;
  RETURN NEW;
END $$;
CREATE TRIGGER fence_audit AFTER INSERT ON history FOR EACH ROW EXECUTE FUNCTION fence_audit();
)";

class PgCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("saga-pg-crash-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (auto& w : workers_) {
      if (w && w->pid() > 0) ::kill(w->pid(), SIGCONT);  // A failed assertion mid-pause.
    }
    for (auto& w : workers_) w.reset();
    participants_.clear();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts (again) the worker in `slot`, under a name of its own.
  void start_worker(int slot) {
    const std::string app = fmt::format("w{}g{}", slot, ++generation_);
    workers_[slot] = std::make_unique<ChildProcess>(
        std::vector<std::string>{SAGACTL, "worker", "--db", url_ + "?application_name=" + app,
                                 "--poll-ms", "200", "--lease", kLease},
        dir_ / (app + ".log"));
    app_pid_[app] = workers_[slot]->pid();
    app_of_[slot] = app;
  }

  // The owner id of a worker's engine starts with its process id.
  std::string owner_prefix(int slot) const { return std::to_string(workers_[slot]->pid()) + "."; }

  int count(const std::string& where) {
    auto r = rows(url_, "SELECT count(*) FROM instances WHERE " + where);
    return r.empty() ? -1 : std::atoi(r[0][0].c_str());
  }

  fs::path dir_;
  std::string url_;
  std::vector<std::unique_ptr<ParticipantProcess>> participants_;
  std::unique_ptr<ChildProcess> workers_[kWorkers];
  std::string app_of_[kWorkers];
  std::map<std::string, pid_t> app_pid_;
  int generation_ = 0;
};

TEST_F(PgCrash, ThreeWorkersUnderKillStopAndServerRestartKeepTheContract) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("SAGA_PG_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("pg crash test: seed %llu (replay with SAGA_PG_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);

  std::unique_ptr<PgServer> pg = PgServer::start_private();
  ASSERT_TRUE(pg->ok()) << pg->error();
  url_ = pg->fresh_database("crash");
  ASSERT_FALSE(url_.empty());

  // Participants: slow enough that calls are in flight when workers die;
  // inventory fails 5% of calls before their effect (retried), payment loses
  // 10% of its replies after the effect (retried, answered from its ledger).
  auto seed_arg = [&] { return std::to_string(rng() % 1'000'000); };
  const std::vector<std::string> slow = {"--latency", "20", "--latency-jitter", "60",
                                         "--record-calls"};
  auto serve = [&](const std::string& role, std::vector<std::string> extra) {
    extra.insert(extra.end(), slow.begin(), slow.end());
    extra.insert(extra.end(), {"--seed", seed_arg()});
    participants_.push_back(std::make_unique<ParticipantProcess>(role, dir_, extra));
    return participants_.back()->url();
  };
  const std::string inventory = serve("inventory", {"--fail-rate", "0.05"});
  const std::string payment = serve("payment", {"--lost-reply-rate", "0.1"});
  const std::string shipping = serve("shipping", {});

  const fs::path saga_file = dir_ / "order4.saga";
  std::ofstream(saga_file) << fmt::format(R"(
service inventory {{ url "{}" timeout 2s }}
service payment {{ url "{}" timeout 2s }}
service shipping {{ url "{}" timeout 2s }}
retry quick {{ attempts: 8, backoff: exponential(20ms, 2.0, 200ms), on: [timeout, unavailable] }}
saga order4(order_id: string, amount: number) {{
  step reserve {{ do inventory.reserve(order: order_id, items: ["book"]) -> r  undo inventory.release(reservation: r.id)  retry quick }}
  step charge  {{ do payment.charge(customer: order_id, amount: amount, currency: "EUR") -> p  undo payment.refund(payment: p.id)  retry quick }}
  step wrap    {{ do inventory.reserve(order: order_id, items: ["gift-wrap"]) -> w  undo inventory.release(reservation: w.id)  retry quick }}
  step ship    {{ do shipping.standard(order: order_id) -> s  undo shipping.cancel(id: s.id)  retry quick }}
  if amount > 500 {{ fail rejected "order ${{order_id}} refused after shipping" }}
  output {{ order: order_id, tracking: s.tracking }}
}}
)",
                                          inventory, payment, shipping);

  // The enqueuing process's engine (this one): it records instances and runs
  // none. Opening it creates the schema; then the audit trigger goes in.
  saga::EngineOptions options;
  options.database = url_;
  options.threads = 1;
  options.inbox_watch = 0ms;
  options.store.busy_timeout_ms = 20000;  // Rides out the server restart.
  auto opened = saga::Engine::open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  std::unique_ptr<saga::Engine> engine = std::move(opened).value();
  auto image = saga::compiler::compile_file_to_image(saga_file.string());
  ASSERT_TRUE(image.ok()) << image.status().message();
  auto hash = engine->load_program(image.value());
  ASSERT_TRUE(hash.ok()) << hash.status().message();
  ASSERT_EQ(PgServer::exec(url_, kFenceAudit), "");

  for (int slot = 0; slot < kWorkers; ++slot) start_worker(slot);

  // Orders go in at a steady pace from a thread of their own.
  std::atomic<int> enqueued{0};
  std::atomic<bool> enqueue_failed{false};
  std::thread enqueuer([&] {
    auto next = Clock::now();
    for (int n = 1; n <= kOrders; ++n) {
      std::this_thread::sleep_until(next);  // The pace of arrivals, not a wait for an effect.
      next += std::chrono::milliseconds(kEnqueueEveryMs);
      json input = {{"order_id", fmt::format("o-{:04}", n)}, {"amount", refused(n) ? 900 : 40}};
      auto id = engine->enqueue(hash.value(), "order4", input);
      if (!id.ok()) {
        std::printf("enqueue of order %d failed: %s\n", n, id.status().message().c_str());
        enqueue_failed = true;
        return;
      }
      ++enqueued;
    }
  });

  // The chaos, in the order drawn: kills until the last order is in, with
  // the pause and the restart at drawn points among them.
  std::uniform_int_distribution<int> gap(500, 1500), pick(0, kWorkers - 1);
  const int stop_after_kill = 1 + static_cast<int>(rng() % 3);
  const int restart_after_kill = stop_after_kill + 2 + static_cast<int>(rng() % 3);
  int kills = 0, fenced_slot = -1;
  std::string fenced_app;
  bool paused_done = false, restarted = false;
  while (enqueued < kOrders && !enqueue_failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));  // The schedule.
    int slot = pick(rng);
    // The paused worker lives on to the end: its log must show its refused
    // commits, and it must stop cleanly.
    if (slot == fenced_slot) slot = (slot + 1) % kWorkers;
    workers_[slot]->kill();
    start_worker(slot);
    ++kills;
    if (kills == stop_after_kill && !paused_done) {
      // Pause a worker that holds unfinished instances until another took
      // one of them over, then let it go on.
      int victim = -1;
      std::set<std::string> held;
      ASSERT_TRUE(eventually(
          [&] {
            for (int s = 0; s < kWorkers && victim < 0; ++s) {
              auto r = rows(url_, fmt::format("SELECT id FROM instances WHERE status IN (1, 2) "
                                              "AND owner LIKE '{}%'",
                                              owner_prefix(s)));
              if (r.empty()) continue;
              victim = s;
              for (auto& row : r) held.insert(row[0]);
            }
            return victim >= 0;
          },
          20s))
          << "no worker holds a running instance";
      fenced_slot = victim;
      fenced_app = app_of_[victim];
      const std::string prefix = owner_prefix(victim);
      ASSERT_EQ(::kill(workers_[victim]->pid(), SIGSTOP), 0);
      std::printf("paused %s holding %zu running instances\n", fenced_app.c_str(), held.size());
      const auto paused_at = Clock::now();
      ASSERT_TRUE(eventually(
          [&] {
            for (const std::string& id : held) {
              auto r = rows(url_, "SELECT owner FROM instances WHERE id = '" + id + "'");
              if (!r.empty() && r[0][0].rfind(prefix, 0) != 0) return true;
            }
            return false;
          },
          30s))
          << "no instance of the paused worker was taken over";
      // The lease it renewed last (at most a third of it before the pause)
      // had to run out first.
      EXPECT_GE(Clock::now() - paused_at, kLeaseTime * 2 / 3) << "taken over within its lease";
      ASSERT_EQ(::kill(workers_[victim]->pid(), SIGCONT), 0);
      paused_done = true;
    }
    if (kills == restart_after_kill && !restarted) {
      std::printf("restarting PostgreSQL with %d orders in\n", enqueued.load());
      ASSERT_TRUE(pg->restart()) << pg->error();
      restarted = true;
    }
  }
  enqueuer.join();
  ASSERT_FALSE(enqueue_failed);
  ASSERT_TRUE(paused_done && restarted) << "the schedule ended early (" << kills << " kills)";

  // Everything ends (the workers left running finish what is left).
  const bool all_ended =
      eventually([&] { return count("status IN (3, 4, 5, 7)") == kOrders; }, 60s);
  std::string unfinished;
  if (!all_ended) {
    for (auto& r : rows(url_,
                        "SELECT id, status, owner FROM instances WHERE status NOT IN (3, 4, "
                        "5, 7) LIMIT 10")) {
      unfinished += r[0] + " status " + r[1] + " owner " + r[2] + "\n";
    }
  }
  ASSERT_TRUE(all_ended) << "unfinished instances:\n" << unfinished;
  engine.reset();

  // The workers still running stop cleanly on SIGTERM.
  for (int slot = 0; slot < kWorkers; ++slot) {
    // Once it is up (its first line): a SIGTERM before would end it by default.
    const fs::path log = dir_ / (app_of_[slot] + ".log");
    EXPECT_TRUE(
        eventually([&] { return read_text(log).find("worker on") != std::string::npos; }, 20s))
        << read_text(log);
    ::kill(workers_[slot]->pid(), SIGTERM);
    EXPECT_EQ(workers_[slot]->wait(20s), 0) << read_text(dir_ / (app_of_[slot] + ".log"));
  }
  // The paused worker found its commits refused once it went on.
  const std::string fenced_log = read_text(dir_ / (fenced_app + ".log"));
  size_t refusals = 0;
  for (size_t at = 0;
       (at = fenced_log.find("was taken over by another worker", at)) != std::string::npos; ++at) {
    ++refusals;
  }
  EXPECT_GT(refusals, 0u) << fenced_app << " committed after its lease ran out?\n" << fenced_log;
  for (auto& p : participants_) p->stop();

  // Instances: one per order, each ending as its number dictates.
  std::map<std::string, int> order_of;  // instance id -> order number
  std::map<int, int> instances_of;      // order number -> instances
  for (auto& r : rows(url_,
                      "SELECT id, status, convert_from(input, 'UTF8')::json->>'order_id' FROM "
                      "instances")) {
    const int n = std::atoi(r[2].c_str() + 2);
    order_of[r[0]] = n;
    ++instances_of[n];
    EXPECT_EQ(r[1], refused(n) ? "4" : "3")
        << r[0] << " (" << r[2] << ") ended with status " << r[1];
  }
  ASSERT_EQ(instances_of.size(), static_cast<size_t>(kOrders));
  for (auto& [n, c] : instances_of) EXPECT_EQ(c, 1) << "order " << n;

  // History: each step completed once, each undo once, in reverse order.
  std::map<std::string, std::vector<std::string>> done, undone;
  std::map<std::string, std::map<std::string, std::string>> result_id;  // instance -> step -> id
  for (auto& r : rows(url_,
                      "SELECT instance, convert_from(kind, 'UTF8'), convert_from(step, 'UTF8'), "
                      "CASE WHEN kind = 'step_completed'::bytea THEN coalesce(nullif(convert_from("
                      "data, 'UTF8'), '')::json->>'id', '') ELSE '' END FROM history WHERE "
                      "kind IN ('step_completed'::bytea, 'undo_completed'::bytea) ORDER BY seq")) {
    if (r[1] == "step_completed") {
      done[r[0]].push_back(r[2]);
      result_id[r[0]][r[2]] = r[3];
    } else {
      undone[r[0]].push_back(r[2]);
    }
  }
  const std::vector<std::string> reversed(kSteps.rbegin(), kSteps.rend());
  for (auto& [id, n] : order_of) {
    EXPECT_EQ(done[id], kSteps) << id << ": each step completes once, in order";
    EXPECT_EQ(undone[id], refused(n) ? reversed : std::vector<std::string>{})
        << id << ": the undos of a compensated order, in reverse, once each";
  }

  // The participants: one effect per key, the one the engine recorded; every
  // undo undoes its do; undos arrive in reverse order.
  int64_t dedup = 0;
  std::map<std::string, Effect> by_key;
  for (const char* role : {"inventory", "payment", "shipping"}) {
    for (Effect& e : read_effects(dir_ / (std::string(role) + ".db"), &dedup)) {
      EXPECT_NE(e.kind, "tombstone") << role << ": an undo without its do: " << e.key;
      by_key[e.key] = e;
    }
  }
  size_t dos = 0, undos = 0;
  for (auto& [key, e] : by_key) {
    const std::string id = key.substr(0, key.find('/'));
    EXPECT_TRUE(order_of.count(id)) << "an effect of no instance: " << key;
    (e.kind == "do" ? dos : undos)++;
  }
  EXPECT_EQ(dos, kSteps.size() * kOrders) << "one do effect per step and order";
  for (auto& [id, n] : order_of) {
    int64_t last_undo_ms = 0;
    for (const std::string& step : reversed) {
      auto it = by_key.find(id + "/" + step);
      ASSERT_TRUE(it != by_key.end()) << "no effect of " << id << "/" << step;
      EXPECT_EQ(it->second.id, result_id[id][step])
          << id << "/" << step << ": the engine recorded another effect's result";
      EXPECT_EQ(it->second.undone, refused(n)) << id << "/" << step;
      auto undo = by_key.find(id + "/" + step + "/undo");
      EXPECT_EQ(undo != by_key.end(), refused(n)) << id << "/" << step << "/undo";
      if (undo == by_key.end()) continue;
      EXPECT_GE(undo->second.at_ms, last_undo_ms) << id << ": undo of " << step << " out of order";
      EXPECT_GE(undo->second.at_ms, it->second.at_ms) << id << ": undo of " << step << " first";
      last_undo_ms = undo->second.at_ms;
    }
  }

  // Fencing: each history row was written by the process that owned the
  // instance when it committed (the enqueuer, which owns nothing, wrote only
  // `recorded`).
  size_t audited = 0, foreign = 0;
  for (auto& r : rows(url_, "SELECT instance, app, owner, kind FROM fence_audit")) {
    ++audited;
    auto it = app_pid_.find(r[1]);
    if (it == app_pid_.end()) {
      EXPECT_EQ(r[3], "recorded") << r[0] << ": written by " << r[1];
      continue;
    }
    if (r[2].rfind(std::to_string(it->second) + ".", 0) != 0) {
      ++foreign;
      ADD_FAILURE() << r[0] << ": " << r[3] << " committed by " << r[1] << " (pid " << it->second
                    << ") while " << r[2] << " owned it";
    }
  }
  EXPECT_EQ(foreign, 0u);
  std::printf(
      "pg crash test: %d orders, %d kills, 1 pause, 1 server restart; %zu do and %zu undo "
      "effects, %lld deliveries deduplicated; %zu commits refused to the paused worker; %zu "
      "history rows audited\n",
      kOrders, kills, dos, undos, static_cast<long long>(dedup), refusals, audited);
}

// LISTEN/NOTIFY: a worker that polls only every 30 s takes up a new
// instance and acts on a `sagactl cancel` from another process within a few
// seconds, because the commits notify it. (Its poll interval is also the
// fallback of its inbox watch, so without the notifications both would wait
// for the next poll, up to 30 s.)
TEST(PgWorkers, NotificationsWakeAnIdleWorkerForANewInstanceAndACancel) {
  PgServer& pg = PgServer::get();
  ASSERT_TRUE(pg.ok()) << pg.error();
  const std::string url = pg.fresh_database("notify");
  const fs::path dir = fs::temp_directory_path() / ("saga-pg-notify-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "nap.saga") << "saga nap(n: number) {\n  step nap { do sleep(for: 1h) }\n}\n";
  auto sagactl = [&](const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {SAGACTL};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess p(argv, dir / "sagactl.log");
    int code = p.wait(30s);
    *out = p.output();
    return code;
  };
  std::string out;
  ChildProcess worker({SAGACTL, "worker", "--db", url, "--poll-ms", "30000"}, dir / "worker.log");
  ASSERT_TRUE(eventually(
      [&] { return worker.output().find("woken by notifications") != std::string::npos; }, 10s))
      << worker.output();

  ASSERT_EQ(
      sagactl({"start", (dir / "nap.saga").string(), "--db", url, "--input", R"({"n": 1})"}, &out),
      0)
      << out;
  auto status = [&] {
    return PgServer::query(url, "SELECT status::text || ':' || (owner <> '')::text FROM instances");
  };
  const auto started = Clock::now();
  EXPECT_TRUE(eventually([&] { return status() == "1:true"; }, 5s))
      << "not taken up by the worker: " << status() << "\n"
      << worker.output();
  const std::string id = PgServer::query(url, "SELECT id FROM instances");
  ASSERT_EQ(sagactl({"cancel", id, "--db", url}, &out), 0) << out;
  EXPECT_TRUE(eventually([&] { return status().rfind("7:", 0) == 0; }, 5s))
      << "the cancel was not acted on: " << status() << "\n"
      << worker.output();
  EXPECT_LT(Clock::now() - started, 20s) << "as slow as polling";
  ::kill(worker.pid(), SIGTERM);
  EXPECT_EQ(worker.wait(20s), 0) << worker.output();
  fs::remove_all(dir);
}

}  // namespace
