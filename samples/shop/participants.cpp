// The in-process participants of the shop sample: the ledger (their own
// SQLite file, plain sqlite3 C API) and the worker thread that answers calls
// after their delay. See participants.hpp for the contracts.
#include "samples/shop/participants.hpp"

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <queue>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace shop {

namespace {

using json = nlohmann::json;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A prepared statement, finalized when it goes out of scope. Errors throw.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // True when a row is available, false when done.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
    return false;
  }
  std::string text(int col) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? p : "";
  }
  int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }

 private:
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("ledger: ") + what + ": " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Rolls a transaction back unless it was committed (an exception escaped).
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string message = err ? err : "unknown error";
      sqlite3_free(err);
      throw std::runtime_error(std::string("ledger: ") + sql + ": " + message);
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS effects(
  key      TEXT PRIMARY KEY,   -- the idempotency key of the call
  action   TEXT NOT NULL,
  order_id TEXT NOT NULL,
  instance TEXT NOT NULL,
  kind     TEXT NOT NULL,      -- 'do' or 'undo'
  args     TEXT NOT NULL,      -- the call's arguments (JSON)
  response TEXT NOT NULL,      -- the first answer (JSON), returned to repeated calls
  undone   INTEGER NOT NULL DEFAULT 0,  -- a 'do' whose undo ran
  time     INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS effects_by_instance ON effects(instance);
CREATE TABLE IF NOT EXISTS orphans(
  key      TEXT PRIMARY KEY,   -- an undo key whose do-effect was never recorded
  action   TEXT NOT NULL,
  instance TEXT NOT NULL,
  time     INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS calls(
  key    TEXT PRIMARY KEY,
  action TEXT NOT NULL,
  count  INTEGER NOT NULL,     -- deliveries of this key
  dedup  INTEGER NOT NULL,     -- of those, answered from the ledger (already applied)
  late   INTEGER NOT NULL);    -- do deliveries refused because the undo already ran
)";

}  // namespace

// ---- Ledger -------------------------------------------------------------------

Ledger::Ledger(const std::string& path) : path_(path) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open ledger '" + path + "': " + message);
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // FULL: the participants are "another system"; what they did must survive
  // whatever happens to this process (and to the machine).
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec(kSchema);
  sqlite3_wal_hook(db_, &Ledger::on_wal, nullptr);
}

int Ledger::on_wal(void*, sqlite3* db, const char*, int pages) {
  if (pages < kWalCheckpointPages) return SQLITE_OK;
  // Without waiting: when a reader still uses the WAL (SQLITE_BUSY), what
  // can be copied is, and the next commit tries again.
  sqlite3_busy_timeout(db, 0);
  sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  return SQLITE_OK;
}

int64_t Ledger::wal_bytes() const {
  std::error_code ec;
  auto size = std::filesystem::file_size(path_ + "-wal", ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

Ledger::~Ledger() {
  sqlite3_close(db_);
}

void Ledger::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("ledger '" + path_ + "': " + message);
  }
}

void Ledger::count_delivery(const saga::ActionCall& call, bool deduplicated) {
  Stmt(db_,
       "INSERT INTO calls(key, action, count, dedup, late) VALUES(?1, ?2, 1, ?3, 0) "
       "ON CONFLICT(key) DO UPDATE SET count = count + 1, dedup = dedup + ?3")
      .bind(1, call.idempotency_key)
      .bind(2, call.action)
      .bind(3, int64_t{deduplicated})
      .step();
}

void Ledger::count_failed_delivery(const saga::ActionCall& call) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  count_delivery(call, false);
  tx.commit();
}

std::string Ledger::order_of(const std::string& instance_id) {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT order_id FROM effects WHERE instance = ?1 AND order_id != '' LIMIT 1");
  q.bind(1, instance_id);
  return q.step() ? q.text(0) : std::string();
}

Ledger::Answer Ledger::apply(const saga::ActionCall& call, const std::string& order_id,
                             const std::function<json()>& make_response,
                             const std::string& fail_after, bool reject_repeats) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  Answer answer;
  Stmt existing(db_, "SELECT response FROM effects WHERE key = ?1");
  existing.bind(1, call.idempotency_key);
  Stmt undone(db_, "SELECT 1 FROM effects WHERE key = ?1 || '/undo'");
  undone.bind(1, call.idempotency_key);
  const bool applied = existing.step();
  if (applied && reject_repeats) {
    // Applied before, and this participant forgets it: a fresh refusal.
    count_delivery(call, false);
    tx.commit();
    return {false, nullptr, "rejected", call.action + ": HTTP 402 (a repeated key, declined)"};
  }
  if (applied) {
    // Applied before: the first answer again, and nothing else.
    count_delivery(call, true);
    answer.response = json::parse(existing.text(0));
  } else if (undone.step()) {
    // The undo of this key already ran (it found nothing to undo): this is a
    // late attempt of an abandoned step and must not take effect now.
    count_delivery(call, false);
    Stmt(db_, "UPDATE calls SET late = late + 1 WHERE key = ?1")
        .bind(1, call.idempotency_key)
        .step();
    tx.commit();
    return {false, nullptr, "rejected", "already compensated: " + call.idempotency_key};
  } else {
    answer.response = make_response();
    Stmt(db_,
         "INSERT INTO effects(key, action, order_id, instance, kind, args, response, undone, time) "
         "VALUES(?1, ?2, ?3, ?4, 'do', ?5, ?6, 0, ?7)")
        .bind(1, call.idempotency_key)
        .bind(2, call.action)
        .bind(3, order_id)
        .bind(4, call.instance_id)
        .bind(5, call.args.dump())
        .bind(6, answer.response.dump())
        .bind(7, now_ms())
        .step();
    count_delivery(call, false);
  }
  tx.commit();
  if (!fail_after.empty()) {
    // The effect is recorded, but the caller never hears about it.
    return {false, nullptr, fail_after, call.action + ": the reply was lost"};
  }
  return answer;
}

Ledger::Answer Ledger::undo(const saga::ActionCall& call) {
  const std::string& key = call.idempotency_key;
  const std::string suffix = "/undo";
  if (key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix))
    return {false, nullptr, "rejected", "not an undo key: " + key};
  const std::string do_key = key.substr(0, key.size() - suffix.size());

  std::lock_guard lock(mu_);
  Transaction tx(db_);
  Stmt existing(db_, "SELECT response FROM effects WHERE key = ?1");
  existing.bind(1, key);
  if (existing.step()) {
    count_delivery(call, true);
    Answer again{true, json::parse(existing.text(0)), {}, {}};
    tx.commit();
    return again;
  }
  Stmt target(db_, "SELECT order_id FROM effects WHERE key = ?1 AND kind = 'do'");
  target.bind(1, do_key);
  bool found = target.step();
  std::string order_id = found ? target.text(0) : std::string();
  json response;
  if (found) {
    Stmt(db_, "UPDATE effects SET undone = 1 WHERE key = ?1").bind(1, do_key).step();
    response = {{"undone", do_key}};
  } else {
    // Nothing to undo (the step was in doubt and never took effect): succeed,
    // and remember it so that a late attempt of the step is refused.
    Stmt(db_, "INSERT INTO orphans(key, action, instance, time) VALUES(?1, ?2, ?3, ?4)")
        .bind(1, key)
        .bind(2, call.action)
        .bind(3, call.instance_id)
        .bind(4, now_ms())
        .step();
    response = {{"nothing_to_undo", do_key}};
  }
  Stmt(db_,
       "INSERT INTO effects(key, action, order_id, instance, kind, args, response, undone, time) "
       "VALUES(?1, ?2, ?3, ?4, 'undo', ?5, ?6, 0, ?7)")
      .bind(1, key)
      .bind(2, call.action)
      .bind(3, order_id)
      .bind(4, call.instance_id)
      .bind(5, call.args.dump())
      .bind(6, response.dump())
      .bind(7, now_ms())
      .step();
  count_delivery(call, false);
  tx.commit();
  return {true, response, {}, {}};
}

LedgerStats Ledger::stats() {
  std::lock_guard lock(mu_);
  LedgerStats s;
  Stmt e(db_,
         "SELECT coalesce(sum(kind = 'do'), 0), coalesce(sum(kind = 'do' AND undone), 0), "
         "coalesce(sum(kind = 'undo'), 0) FROM effects");
  if (e.step()) {
    s.effects = e.integer(0);
    s.undone = e.integer(1);
    s.undos = e.integer(2);
  }
  Stmt o(db_, "SELECT count(*) FROM orphans");
  if (o.step()) s.orphan_undos = o.integer(0);
  Stmt c(db_,
         "SELECT coalesce(sum(count), 0), coalesce(sum(dedup), 0), coalesce(sum(late), 0) "
         "FROM calls");
  if (c.step()) {
    s.deliveries = c.integer(0);
    s.deduplicated = c.integer(1);
    s.late_dos = c.integer(2);
  }
  return s;
}

// ---- Participants ---------------------------------------------------------------

struct Participants::State {
  explicit State(ParticipantOptions o)
      : options(std::move(o)), ledger(options.ledger_path), ids(std::random_device{}()) {}

  // A call waiting for its answer time.
  struct Job {
    std::chrono::steady_clock::time_point due;
    uint64_t seq;
    saga::ActionCall call;
    saga::Completion completion;
    bool operator>(const Job& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };

  ParticipantOptions options;
  Ledger ledger;
  std::mutex mu;  // Guards the queue, ids and stopped.
  std::condition_variable cv;
  std::priority_queue<Job, std::vector<Job>, std::greater<>> queue;
  uint64_t next_seq = 0;
  bool stopped = false;
  std::mt19937_64 ids;  // Ids handed out (reservations, receipts, shipments).
  std::thread worker;

  // Called on an engine thread: only queues the call.
  void receive(const saga::ActionCall& call, saga::Completion completion) {
    // The delay depends on the key and attempt only: the same seed gives the
    // same delays, whatever the order of calls.
    int delay = 0;
    if (options.slow_ms > 0) {
      uint64_t h =
          stable_hash(call.idempotency_key + "#" + std::to_string(call.attempt), options.seed);
      delay = static_cast<int>(h % static_cast<uint64_t>(options.slow_ms + 1));
    }
    std::lock_guard lock(mu);
    if (stopped) return;  // The service is gone: the call is never answered.
    queue.push(Job{std::chrono::steady_clock::now() + std::chrono::milliseconds(delay), next_seq++,
                   call, std::move(completion)});
    cv.notify_one();
  }

  void run() {
    std::unique_lock lock(mu);
    while (!stopped) {
      if (queue.empty()) {
        cv.wait(lock);
        continue;
      }
      if (queue.top().due > std::chrono::steady_clock::now()) {
        // A copy: while the wait lets the lock go, receive() may push and
        // move the queue's storage (ASan found the reference freed).
        const auto due = queue.top().due;
        cv.wait_until(lock, due);
        continue;
      }
      Job job = queue.top();
      queue.pop();
      lock.unlock();
      answer(job);
      lock.lock();
    }
  }

  std::string new_id(const char* prefix) {
    std::lock_guard lock(mu);
    char text[24];
    std::snprintf(text, sizeof text, "%s%012llx", prefix,
                  static_cast<unsigned long long>(ids() & 0xffffffffffffull));
    return text;
  }

  // Performs one call against the ledger and completes it.
  void answer(const Job& job) {
    const saga::ActionCall& call = job.call;
    try {
      std::string order_id;
      if (call.args.contains("order") && call.args["order"].is_string()) {
        order_id = call.args["order"].get<std::string>();
      } else {
        order_id = ledger.order_of(call.instance_id);
      }
      Plan plan = options.planner ? options.planner(call, order_id) : Plan{};
      if (plan.outcome == Plan::Outcome::kFailBeforeEffect) {
        ledger.count_failed_delivery(call);
        job.completion.fail(plan.error_class, call.action + " failed (" + plan.error_class + ")");
        return;
      }
      std::string fail_after =
          plan.outcome == Plan::Outcome::kFailAfterEffect ? plan.error_class : std::string();
      Ledger::Answer a;
      if (call.compensation) {
        a = ledger.undo(call);
        if (a.ok && !fail_after.empty()) {
          a = {false, nullptr, fail_after, call.action + ": the reply was lost"};
        }
      } else {
        a = ledger.apply(
            call, order_id, [&] { return make_response(call, plan); }, fail_after,
            plan.reject_repeats);
      }
      if (a.ok) {
        job.completion.succeed(a.response);
      } else {
        job.completion.fail(a.error_class, a.message);
      }
    } catch (const std::exception& e) {
      // The ledger itself failed: to the caller, the service is unavailable.
      job.completion.fail("unavailable", e.what());
    }
  }

  json make_response(const saga::ActionCall& call, const Plan& plan) {
    if (call.action == "inventory.reserve") return {{"id", new_id("R-")}};
    if (call.action == "payment.charge") return {{"id", new_id("P-")}};
    // shipping.express / shipping.standard
    return {{"id", new_id("S-")},
            {"status", plan.refuse_shipment ? "refused" : "ok"},
            {"tracking", new_id("TRK-")}};
  }
};

Participants::Participants(ParticipantOptions options)
    : state_(std::make_shared<State>(std::move(options))) {
  state_->worker = std::thread([s = state_.get()] { s->run(); });
}

Participants::~Participants() {
  stop();
}

void Participants::register_actions(saga::Engine& engine) {
  // The actions hold the state, not `this`: an engine thread may still call
  // one after the Participants object is gone (the call is then dropped).
  for (const char* name :
       {"inventory.reserve", "inventory.release", "payment.charge", "payment.refund",
        "shipping.express", "shipping.standard", "shipping.cancel"}) {
    engine.register_async_action(
        name, [state = state_](const saga::ActionCall& call, saga::Completion done) {
          state->receive(call, std::move(done));
        });
  }
}

void Participants::stop() {
  {
    std::lock_guard lock(state_->mu);
    state_->stopped = true;
  }
  state_->cv.notify_all();
  if (state_->worker.joinable()) state_->worker.join();
}

Ledger& Participants::ledger() {
  return state_->ledger;
}

}  // namespace shop
