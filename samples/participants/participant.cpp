// A sample participant service for sagas: one small HTTP/1.1 server that
// plays inventory, payment or shipping for samples/order.saga, and the
// server that tests/http and bench/http_bench start on 127.0.0.1. It follows
// the participant contract of docs/http.md:
//
//   * effects are stored in its own SQLite file, keyed by Idempotency-Key; a
//     repeated key returns the first response and has no new effect;
//   * undo operations (release, refund, cancel) of unknown ids succeed with
//     {"undone": false, "note": "nothing to undo"}; an undo whose key is
//     "<forward key>/undo" (the engine's form) also finds the effect of an
//     in-doubt step whose result the saga never saw, and when that forward
//     request has not arrived yet it leaves a tombstone, so the late request
//     is refused (409) instead of taking effect after its compensation.
//
// Failures, latency and Retry-After can be injected from the command line,
// per request (X-Test-Fail, X-Test-Latency) and at run time (POST /control);
// README.md in this folder lists them. Besides failures before any effect,
// it can lose the reply of a request it applied (--lost-reply-rate) and
// answer a repeated key with an error instead of its first response
// (--repeat-error-rate), and it can record every call in its database
// (--record-calls), for the chaos run (bench/chaos) to read after restarts. The server is
// synchronous, one thread per connection: simple, and enough for the benchmark's 256 connections.
#include <fmt/format.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http/beast.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using json = nlohmann::json;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- Configuration ------------------------------------------------------------------

// What the participant does; the command line sets it, POST /control changes it.
struct Behaviour {
  double fail_rate = 0;                        // Probability that an operation fails.
  int fail_status = 503;                       // The status of an injected failure.
  int64_t latency_ms = 0;                      // Added to every operation, failures included.
  std::map<std::string, int64_t> latency_ops;  // Per operation, instead of latency_ms.
  int64_t retry_after_s = -1;                  // >= 0: Retry-After on injected failures.
  // The n-th call with one Idempotency-Key answers fail_sequence[n-1] (200
  // or any 2xx: handle normally); beyond its end, calls are handled normally.
  std::vector<int> fail_sequence;
  // The chaos run's failures, each drawn from the seeded generator, and only
  // when its rate is above 0 (so the draws of fail_rate are the same as
  // without them). Latency: up to latency_jitter_ms more, uniformly, or
  // slow_ms instead with probability slow_rate.
  int64_t latency_jitter_ms = 0;
  double slow_rate = 0;
  int64_t slow_ms = 0;
  // A business refusal before any effect (a 4xx: the engine's `rejected`).
  double reject_rate = 0;
  int reject_status = 422;
  // The request is applied, then answered fail_status as if the reply had
  // been lost: the caller cannot know that it took effect.
  double lost_reply_rate = 0;
  // A repeated key is answered repeat_error_status instead of its first
  // response: a participant that does not honour the contract of
  // docs/http.md, and the case that a step in doubt must stay in doubt.
  double repeat_error_rate = 0;
  int repeat_error_status = 409;
  // Payment: a charge of a larger amount is declined, as a card is: answered
  // 200 with status "declined" and a reason, recorded like any answer (a
  // business outcome, not an error). Negative: no limit.
  double decline_above = -1;
};

struct Role {
  std::string name;
  std::string prefix;                       // Of the ids it hands out.
  std::vector<std::string> forward;         // Operations with an effect.
  std::map<std::string, std::string> undo;  // Undo op -> the argument naming the effect's id.
  // Its effects as a REST resource: GET PATH/ID looks one up and DELETE
  // PATH/ID runs the undo `delete_op` ("" when the role has none).
  std::string resource;
  std::string delete_op;
  // A field of the forward result that repeats the id under the name a saga
  // uses ("number" of a ticket, "booking" of a room), or "".
  std::string id_field;
};

// The roles of samples/order.saga (inventory, payment, shipping) and of
// samples/travel.saga (airline, hotels, cars).
const std::map<std::string, Role>& roles() {
  static const std::map<std::string, Role> table = {
      {"inventory",
       {"inventory", "R", {"reserve"}, {{"release", "reservation"}}, "/reservations/", "release"}},
      {"payment", {"payment", "P", {"charge"}, {{"refund", "payment"}}}},
      {"shipping", {"shipping", "S", {"express", "standard"}, {{"cancel", "id"}}}},
      {"airline", {"airline", "T", {"book"}, {{"cancel", "ticket"}}, "", "", "number"}},
      {"hotels",
       {"hotels", "H", {"reserve"}, {{"cancel", "booking"}}, "/bookings/", "cancel", "booking"}},
      {"cars", {"cars", "C", {"rent"}, {{"return", "rental"}}}},
  };
  return table;
}

// ---- The store --------------------------------------------------------------------

// One table: a row per effect (kind "do"), per undo ("undo") and per
// tombstone ("tombstone": an undo that came before its forward request).
class Effects {
 public:
  bool open(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) return false;
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA busy_timeout=5000");
    exec(
        "CREATE TABLE IF NOT EXISTS effects ("
        " key TEXT PRIMARY KEY, op TEXT NOT NULL, kind TEXT NOT NULL, id TEXT,"
        " request TEXT, status INTEGER, response TEXT, undone INTEGER NOT NULL DEFAULT 0,"
        " at_ms INTEGER NOT NULL)");
    exec("CREATE INDEX IF NOT EXISTS effects_id ON effects(id)");
    open_events();
    exec(
        "CREATE TABLE IF NOT EXISTS calls ("
        " seq INTEGER PRIMARY KEY, key TEXT NOT NULL, op TEXT NOT NULL, status INTEGER NOT NULL,"
        " outcome TEXT NOT NULL, at_ms INTEGER NOT NULL)");
    sqlite3_stmt* s = prepare("SELECT coalesce(max(rowid), 0) FROM effects");
    if (sqlite3_step(s) == SQLITE_ROW) next_id_ = sqlite3_column_int64(s, 0) + 1;
    sqlite3_finalize(s);
    return true;
  }
  void close() {
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
  }
  bool is_open() const { return db_ != nullptr; }

  struct Row {
    std::string key, op, kind, id, response;
    int status = 0;
    bool undone = false;
  };

  std::optional<Row> by_key(const std::string& key) {
    return one("SELECT key, op, kind, id, response, status, undone FROM effects WHERE key = ?",
               key);
  }
  std::optional<Row> forward_by_id(const std::string& id) {
    return one(
        "SELECT key, op, kind, id, response, status, undone FROM effects "
        "WHERE id = ? AND kind = 'do'",
        id);
  }
  void insert(const std::string& key, const std::string& op, const std::string& kind,
              const std::string& id, const std::string& request, int status,
              const std::string& response) {
    sqlite3_stmt* s = prepare(
        "INSERT OR REPLACE INTO effects (key, op, kind, id, request, status, response, at_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    sqlite3_bind_text(s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, op.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, kind.c_str(), -1, SQLITE_TRANSIENT);
    if (id.empty()) {
      sqlite3_bind_null(s, 4);
    } else {
      sqlite3_bind_text(s, 4, id.c_str(), -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_text(s, 5, request.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 6, status);
    sqlite3_bind_text(s, 7, response.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 8, now_ms());
    sqlite3_step(s);
    sqlite3_finalize(s);
  }
  // A row of the calls table (--record-calls): the request with `key` was
  // answered `status`; `outcome` says how (README.md, "Options").
  void record_call(const std::string& key, const std::string& op, int status,
                   const std::string& outcome) {
    sqlite3_stmt* s =
        prepare("INSERT INTO calls (key, op, status, outcome, at_ms) VALUES (?, ?, ?, ?, ?)");
    sqlite3_bind_text(s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, op.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 3, status);
    sqlite3_bind_text(s, 4, outcome.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 5, now_ms());
    sqlite3_step(s);
    sqlite3_finalize(s);
  }
  void mark_undone(const std::string& key) {
    sqlite3_stmt* s = prepare("UPDATE effects SET undone = 1 WHERE key = ?");
    sqlite3_bind_text(s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(s);
    sqlite3_finalize(s);
  }
  int64_t count(const std::string& where) {
    sqlite3_stmt* s = prepare("SELECT count(*) FROM effects WHERE " + where);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return n;
  }
  json list() {
    json out = json::array();
    sqlite3_stmt* s =
        prepare("SELECT key, op, kind, id, status, undone, response FROM effects ORDER BY rowid");
    while (sqlite3_step(s) == SQLITE_ROW) {
      auto text = [&](int i) {
        auto p = sqlite3_column_text(s, i);
        return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
      };
      out.push_back({{"key", text(0)},
                     {"op", text(1)},
                     {"kind", text(2)},
                     {"id", text(3)},
                     {"status", sqlite3_column_int(s, 4)},
                     {"undone", sqlite3_column_int(s, 5) != 0},
                     {"response", json::parse(text(6), nullptr, false)}});
    }
    sqlite3_finalize(s);
    return out;
  }
  int64_t next_id() { return next_id_++; }

  // The events table (POST /events): one row per CloudEvent, keyed by
  // (source, id) as a receiver deduplicates; `deliveries` counts how often
  // it came, `arrival` orders first arrivals.
  void open_events() {
    exec(
        "CREATE TABLE IF NOT EXISTS events ("
        " arrival INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,"
        " seq INTEGER NOT NULL DEFAULT 0, event TEXT NOT NULL, deliveries INTEGER NOT NULL,"
        " at_ms INTEGER NOT NULL, UNIQUE (source, id))");
  }
  // Records one delivery; returns whether the event was new.
  bool record_event(const json& ce, const std::string& text) {
    sqlite3_stmt* s = prepare(
        "INSERT INTO events (source, id, type, seq, event, deliveries, at_ms) "
        "VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (source, id) DO UPDATE SET "
        "deliveries = deliveries + 1 RETURNING deliveries");
    const std::string source = ce.value("source", ""), id = ce.value("id", "");
    const std::string type = ce.value("type", "");
    sqlite3_bind_text(s, 1, source.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, type.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 4, ce.value("sagaseq", int64_t{0}));
    sqlite3_bind_text(s, 5, text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, now_ms());
    bool fresh = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) == 1;
    sqlite3_finalize(s);
    return fresh;
  }
  json list_events() {
    json out = json::array();
    sqlite3_stmt* s = prepare("SELECT event, deliveries FROM events ORDER BY arrival");
    while (sqlite3_step(s) == SQLITE_ROW) {
      json ce =
          json::parse(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), nullptr, false);
      out.push_back({{"event", ce}, {"deliveries", sqlite3_column_int64(s, 1)}});
    }
    sqlite3_finalize(s);
    return out;
  }

 private:
  void exec(const std::string& sql) { sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr); }
  sqlite3_stmt* prepare(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr);
    return s;
  }
  std::optional<Row> one(const char* sql, const std::string& arg) {
    sqlite3_stmt* s = prepare(sql);
    sqlite3_bind_text(s, 1, arg.c_str(), -1, SQLITE_TRANSIENT);
    std::optional<Row> row;
    if (sqlite3_step(s) == SQLITE_ROW) {
      auto text = [&](int i) {
        auto p = sqlite3_column_text(s, i);
        return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
      };
      row = Row{text(0),
                text(1),
                text(2),
                text(3),
                text(4),
                sqlite3_column_int(s, 5),
                sqlite3_column_int(s, 6) != 0};
    }
    sqlite3_finalize(s);
    return row;
  }

  sqlite3* db_ = nullptr;
  int64_t next_id_ = 1;
};

// ---- The server -------------------------------------------------------------------

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

class Participant {
 public:
  Participant(Role role, Behaviour behaviour, uint64_t seed, bool record_calls)
      : role_(std::move(role)),
        behaviour_(std::move(behaviour)),
        rng_(seed),
        record_calls_(record_calls) {}

  Effects& effects() { return effects_; }
  std::mutex& db_mutex() { return db_mu_; }

  Response handle(const Request& req) {
    int64_t started = now_us();
    Response res = route(req);
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(bhttp::field::server, "saga-participant");
    if (res.find(bhttp::field::content_type) == res.end()) {
      res.set(bhttp::field::content_type, "application/json");
    }
    int64_t handled = now_us() - started;
    res.set("X-Handled-Us", std::to_string(handled));
    if (req.target() != "/stats") handled_us_ += handled;
    res.prepare_payload();
    return res;
  }

  int64_t in_flight() const { return in_flight_; }

 private:
  static Response reply(int status, const json& body) {
    Response res;
    res.result(static_cast<unsigned>(status));
    res.body() = body.dump();
    return res;
  }

  Response route(const Request& req) {
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    if (req.method() == bhttp::verb::get && path == "/stats") return reply(200, stats());
    if (req.method() == bhttp::verb::get && path == "/health") return reply(200, {{"ok", true}});
    if (req.method() == bhttp::verb::get && path == "/effects") {
      std::lock_guard lock(db_mu_);
      return reply(200, effects_.list());
    }
    if (req.method() == bhttp::verb::post && path == "/control") return control(req);
    if (req.method() == bhttp::verb::post && path == "/events") return event(req);
    if (req.method() == bhttp::verb::get && path == "/events") {
      std::lock_guard lock(db_mu_);
      return reply(200, effects_.list_events());
    }
    if (req.method() == bhttp::verb::get && path == "/text") {
      Response res;
      res.result(bhttp::status::ok);
      res.set(bhttp::field::content_type, "text/plain");
      res.body() = "plain text, not JSON";
      return res;
    }
    if (path == "/echo" || path.rfind("/echo/", 0) == 0) return echo(req);

    // Operations: POST /op, and for a role with a resource DELETE PATH/ID
    // (inventory's release, hotels' cancel) and GET PATH/ID (look one up).
    std::string op;
    json args = json::object();
    if (!req.body().empty()) {
      args = json::parse(req.body(), nullptr, false);
      if (args.is_discarded() || !args.is_object()) {
        return reply(400, {{"error", "the body must be a JSON object"}});
      }
    }
    if (!role_.resource.empty() && path.rfind(role_.resource, 0) == 0) {
      std::string id = path.substr(role_.resource.size());
      if (req.method() == bhttp::verb::get) {
        std::lock_guard lock(db_mu_);
        auto row = effects_.forward_by_id(id);
        if (!row) return reply(404, {{"error", "no such effect " + id}});
        return reply(200, {{"id", id}, {"undone", row->undone}});
      }
      if (req.method() != bhttp::verb::delete_) return reply(405, {{"error", "method"}});
      op = role_.delete_op;
      args[role_.undo.at(op)] = id;
    } else if (req.method() == bhttp::verb::post && path.size() > 1) {
      op = path.substr(1);
    } else {
      return reply(
          404, {{"error", fmt::format("no route {} {}", std::string(req.method_string()), path)}});
    }
    bool forward = std::find(role_.forward.begin(), role_.forward.end(), op) != role_.forward.end();
    if (!forward && !role_.undo.count(op)) {
      return reply(
          404, {{"error", fmt::format("the {} service has no operation '{}'", role_.name, op)}});
    }
    return operation(req, op, forward, args);
  }

  // POST /events: a CloudEvent 1.0 in structured mode (docs/events.md), as
  // a relay sends it. Injected failures (--fail-rate, POST /control) apply
  // before it is recorded; a valid one is recorded once per (source, id)
  // and answered 202, a repeat too (202, {"duplicate": true}).
  Response event(const Request& req) {
    Behaviour b;
    {
      std::lock_guard lock(mu_);
      b = behaviour_;
      ++calls_;
    }
    if (b.latency_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(b.latency_ms));
    if (b.fail_rate > 0) {
      std::lock_guard lock(mu_);
      if (std::uniform_real_distribution<double>(0, 1)(rng_) < b.fail_rate) {
        return reply(b.fail_status, {{"error", fmt::format("injected failure {}", b.fail_status)}});
      }
    }
    auto type = req.find(bhttp::field::content_type);
    if (type == req.end() || type->value().find("application/cloudevents+json") != 0) {
      return reply(415, {{"error", "want Content-Type: application/cloudevents+json"}});
    }
    json ce = json::parse(req.body(), nullptr, false);
    if (!ce.is_object() || ce.value("specversion", "") != "1.0" || !ce["id"].is_string() ||
        !ce["source"].is_string() || !ce["type"].is_string()) {
      return reply(400, {{"error", "not a CloudEvent 1.0 (specversion, id, source, type)"}});
    }
    std::lock_guard lock(db_mu_);
    bool fresh = effects_.record_event(ce, req.body());
    return reply(202, {{"duplicate", !fresh}});
  }

  Response operation(const Request& req, const std::string& op, bool forward, const json& args) {
    std::string key;
    if (auto it = req.find("Idempotency-Key"); it != req.end()) key = std::string(it->value());
    int64_t current = ++in_flight_;
    for (int64_t seen = in_flight_max_; current > seen;) {
      if (in_flight_max_.compare_exchange_weak(seen, current)) break;
    }
    struct Leave {
      std::atomic<int64_t>& n;
      ~Leave() { --n; }
    } leave{in_flight_};

    Behaviour b;
    int64_t nth;
    Draws draws;
    {
      std::lock_guard lock(mu_);
      b = behaviour_;
      ++calls_;
      nth = key.empty() ? 1 : ++calls_by_key_[key];
      if (!key.empty()) times_by_key_[key].push_back(now_ms());
      draws = draw(b);
    }
    int64_t latency = b.latency_ops.count(op) ? b.latency_ops.at(op) : b.latency_ms;
    latency = draws.slow ? b.slow_ms : latency + draws.jitter_ms;
    if (auto it = req.find("X-Test-Latency"); it != req.end()) {
      latency = std::atoll(std::string(it->value()).c_str());
    }
    if (latency > 0) std::this_thread::sleep_for(std::chrono::milliseconds(latency));

    // A repeated key gets the first response (docs/http.md), whatever is
    // injected: failures are injected only into requests that would apply
    // (unless --repeat-error-rate asks for a participant that breaks this).
    if (!key.empty()) {
      std::lock_guard lock(db_mu_);
      if (auto res = stored_response(key)) return repeated(std::move(*res), key, op, draws, b);
    }

    // Injected failures: the header, else the sequence, else the rate.
    int fail = 0;
    if (auto it = req.find("X-Test-Fail"); it != req.end()) {
      fail = std::atoi(std::string(it->value()).c_str());
    } else if (!b.fail_sequence.empty() && nth <= static_cast<int64_t>(b.fail_sequence.size())) {
      fail = b.fail_sequence[static_cast<size_t>(nth - 1)];
    } else if (b.fail_rate > 0) {
      std::lock_guard lock(mu_);
      if (std::uniform_real_distribution<double>(0, 1)(rng_) < b.fail_rate) fail = b.fail_status;
    }
    if (fail < 300 && draws.reject) fail = b.reject_status;
    if (fail >= 300) {
      Response res = reply(fail, {{"error", fmt::format("injected failure {}", fail)}, {"op", op}});
      if (b.retry_after_s >= 0) res.set(bhttp::field::retry_after, std::to_string(b.retry_after_s));
      std::lock_guard lock(db_mu_);
      record(key, op, fail, "injected");
      return res;
    }

    std::lock_guard lock(db_mu_);
    if (!effects_.is_open()) return reply(503, {{"error", "shutting down"}});
    if (key.empty()) key = fmt::format("anonymous-{}", effects_.next_id());
    // Again under this lock: a request with the same key may have applied
    // since the look-up above.
    if (auto res = stored_response(key)) return repeated(std::move(*res), key, op, draws, b);
    Response res = apply(key, op, forward, args, b);
    if (!draws.lost_reply) {
      record(key, op, static_cast<int>(res.result_int()), "applied");
      return res;
    }
    record(key, op, b.fail_status, "lost_reply");
    return reply(b.fail_status,
                 {{"error", "injected failure after the effect (reply lost)"}, {"op", op}});
  }

  // What one request draws from the generator (with mu_ held): nothing for a
  // rate of 0, so that adding a rate never changes the other draws.
  struct Draws {
    int64_t jitter_ms = 0;
    bool slow = false, reject = false, lost_reply = false, repeat_error = false;
  };
  Draws draw(const Behaviour& b) {
    auto chance = [&](double rate) {
      return rate > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < rate;
    };
    Draws d;
    if (b.latency_jitter_ms > 0) {
      d.jitter_ms = std::uniform_int_distribution<int64_t>(0, b.latency_jitter_ms)(rng_);
    }
    d.slow = chance(b.slow_rate);
    d.reject = chance(b.reject_rate);
    d.lost_reply = chance(b.lost_reply_rate);
    d.repeat_error = chance(b.repeat_error_rate);
    return d;
  }

  // The answer to a request whose key has a stored row (db_mu_ held): its
  // first response, the refusal of a request compensated before it arrived,
  // or the error --repeat-error-rate injects instead of the first response.
  Response repeated(Response first, const std::string& key, const std::string& op,
                    const Draws& draws, const Behaviour& b) {
    const bool refused = first.find("X-Dedup") == first.end();
    if (refused) {
      record(key, op, static_cast<int>(first.result_int()), "refused");
      return first;
    }
    if (!draws.repeat_error) {
      record(key, op, static_cast<int>(first.result_int()), "dedup");
      return first;
    }
    record(key, op, b.repeat_error_status, "repeat_error");
    return reply(b.repeat_error_status,
                 {{"error", "injected error for a repeated Idempotency-Key"}, {"op", op}});
  }

  // Records a call with --record-calls (db_mu_ held).
  void record(const std::string& key, const std::string& op, int status, const char* outcome) {
    if (record_calls_ && effects_.is_open()) effects_.record_call(key, op, status, outcome);
  }

  // Applies a forward operation or an undo whose key is new (db_mu_ held).
  Response apply(const std::string& key, const std::string& op, bool forward, const json& args,
                 const Behaviour& b) {
    if (forward) {
      std::string id = fmt::format("{}-{}", role_.prefix, effects_.next_id());
      json result = {{"id", id}};
      if (role_.name == "inventory") {
        result["order"] = args.value("order", json());
        result["items"] = args.value("items", json::array());
      } else if (role_.name == "payment") {
        result["amount"] = args.value("amount", json());
        result["currency"] = args.value("currency", json("EUR"));
        result["status"] = "charged";
        const json amount = args.value("amount", json());
        if (b.decline_above >= 0 && amount.is_number() && amount.get<double>() > b.decline_above) {
          result["status"] = "declined";
          result["reason"] =
              fmt::format("the amount is above the card's limit of {}", b.decline_above);
        }
      } else if (role_.name == "shipping") {
        result["status"] = "ok";
        result["tracking"] = fmt::format("TRK-{}", id.substr(2));
        result["method"] = op;
      } else {
        result["status"] = "booked";
        result["trip"] = args.value("trip", json());
      }
      if (!role_.id_field.empty()) result[role_.id_field] = id;
      effects_.insert(key, op, "do", id, args.dump(), 200, result.dump());
      return reply(200, result);
    }
    // An undo: by the id in its argument, else by the forward key.
    json id_arg = args.value(role_.undo.at(op), json());
    std::optional<Effects::Row> target;
    if (id_arg.is_string()) target = effects_.forward_by_id(id_arg.get<std::string>());
    std::string forward_key;
    if (key.size() > 5 && key.compare(key.size() - 5, 5, "/undo") == 0) {
      forward_key = key.substr(0, key.size() - 5);
    }
    if (!target && !forward_key.empty()) {
      target = effects_.by_key(forward_key);
      if (target && target->kind != "do") target.reset();
    }
    json result;
    if (target && !target->undone) {
      effects_.mark_undone(target->key);
      result = {{"undone", true}, {"id", target->id}};
    } else if (target) {
      result = {{"undone", false}, {"id", target->id}, {"note", "already undone"}};
    } else {
      if (!forward_key.empty() && !effects_.by_key(forward_key)) {
        effects_.insert(forward_key, op, "tombstone", "", args.dump(), 409, "{}");
      }
      result = {{"undone", false}, {"note", "nothing to undo"}};
    }
    effects_.insert(key, op, "undo", "", args.dump(), 200, result.dump());
    return reply(200, result);
  }

  // The response stored for `key` (its first one), or the refusal of a
  // request whose compensation arrived first. Called with db_mu_ held.
  std::optional<Response> stored_response(const std::string& key) {
    if (!effects_.is_open()) return std::nullopt;
    auto row = effects_.by_key(key);
    if (!row) return std::nullopt;
    if (row->kind == "tombstone") {
      return reply(409, {{"error", "this request was compensated before it arrived"}});
    }
    Response res = reply(row->status, json::parse(row->response, nullptr, false));
    res.set("X-Dedup", "true");
    return res;
  }

  Response control(const Request& req) {
    json c = json::parse(req.body(), nullptr, false);
    if (!c.is_object()) return reply(400, {{"error", "the body must be a JSON object"}});
    std::lock_guard lock(mu_);
    if (c.contains("fail_rate")) behaviour_.fail_rate = c["fail_rate"].get<double>();
    if (c.contains("fail_status")) behaviour_.fail_status = c["fail_status"].get<int>();
    if (c.contains("latency_ms")) behaviour_.latency_ms = c["latency_ms"].get<int64_t>();
    if (c.contains("latency_ops")) {
      behaviour_.latency_ops = c["latency_ops"].get<std::map<std::string, int64_t>>();
    }
    if (c.contains("retry_after")) behaviour_.retry_after_s = c["retry_after"].get<int64_t>();
    if (c.contains("fail_sequence")) {
      behaviour_.fail_sequence = c["fail_sequence"].get<std::vector<int>>();
    }
    if (c.contains("latency_jitter_ms")) {
      behaviour_.latency_jitter_ms = c["latency_jitter_ms"].get<int64_t>();
    }
    if (c.contains("slow_rate")) behaviour_.slow_rate = c["slow_rate"].get<double>();
    if (c.contains("slow_ms")) behaviour_.slow_ms = c["slow_ms"].get<int64_t>();
    if (c.contains("reject_rate")) behaviour_.reject_rate = c["reject_rate"].get<double>();
    if (c.contains("lost_reply_rate")) {
      behaviour_.lost_reply_rate = c["lost_reply_rate"].get<double>();
    }
    if (c.contains("repeat_error_rate")) {
      behaviour_.repeat_error_rate = c["repeat_error_rate"].get<double>();
    }
    if (c.value("reset_stats", false)) {
      calls_ = 0;
      calls_by_key_.clear();
      times_by_key_.clear();
      in_flight_max_ = 0;
    }
    return reply(200, {{"ok", true}});
  }

  Response echo(const Request& req) {
    json headers = json::object();
    for (const auto& field : req) {
      headers[std::string(field.name_string())] = std::string(field.value());
    }
    json body = req.body().empty() ? json() : json::parse(req.body(), nullptr, false);
    if (body.is_discarded()) body = req.body();
    {
      std::lock_guard lock(mu_);
      ++calls_;
    }
    return reply(200, {{"method", std::string(req.method_string())},
                       {"target", std::string(req.target())},
                       {"headers", headers},
                       {"body", body}});
  }

  json stats() {
    json out;
    {
      std::lock_guard lock(mu_);
      out["calls"] = calls_;
      out["calls_by_key"] = calls_by_key_;
      out["times_by_key"] = times_by_key_;
    }
    out["in_flight_max"] = in_flight_max_.load();
    out["handled_us"] = handled_us_.load();
    out["in_flight"] = in_flight_.load();
    std::lock_guard lock(db_mu_);
    if (effects_.is_open()) {
      out["effects"] = effects_.count("kind = 'do'");
      out["undone"] = effects_.count("kind = 'do' AND undone = 1");
      out["undos"] = effects_.count("kind = 'undo'");
      out["tombstones"] = effects_.count("kind = 'tombstone'");
    }
    return out;
  }

  Role role_;
  std::mutex mu_;  // Guards behaviour_, rng_ and the counters below.
  Behaviour behaviour_;
  std::mt19937_64 rng_;
  const bool record_calls_;  // --record-calls: a row in `calls` per operation request.
  int64_t calls_ = 0;
  std::map<std::string, int64_t> calls_by_key_;
  std::map<std::string, std::vector<int64_t>> times_by_key_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> in_flight_max_{0};
  std::atomic<int64_t> handled_us_{0};  // Time spent handling requests, /stats excluded.
  std::mutex db_mu_;                    // Guards effects_: one writer keeps the dedup check atomic.
  Effects effects_;
};

// Serves one connection: requests in order, until the client closes it or
// asks to.
void serve(tcp::socket socket, Participant& participant) {
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(1u << 20);
    bhttp::read(socket, buffer, parser, ec);
    if (ec) break;
    Response res = participant.handle(parser.get());
    bhttp::write(socket, res, ec);
    if (ec || !res.keep_alive()) break;
  }
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A sample saga participant: inventory, payment or shipping over HTTP"};
  std::string role_name, host = "127.0.0.1", db, sequence;
  int port = 0;
  Behaviour b;
  uint64_t seed = 0;
  std::vector<std::string> role_names;
  for (const auto& [name, role] : roles()) role_names.push_back(name);
  app.add_option("--role", role_name, "What it plays: one of the roles below")
      ->required()
      ->check(CLI::IsMember(role_names));
  app.add_option("--port", port, "TCP port (0: any free port)")->check(CLI::Range(0, 65535));
  app.add_option("--host", host, "Address to listen on");
  app.add_option("--db", db, "SQLite file of effects (default: participant-ROLE.db)");
  app.add_option("--fail-rate", b.fail_rate, "Probability that an operation fails")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fail-status", b.fail_status, "HTTP status of injected failures");
  app.add_option("--latency", b.latency_ms, "Milliseconds added to every operation");
  std::vector<std::string> latency_ops;
  app.add_option("--latency-op", latency_ops, "OP=MS: latency of one operation (repeatable)");
  app.add_option("--retry-after", b.retry_after_s, "Retry-After seconds on injected failures");
  app.add_option("--fail-sequence", sequence,
                 "Statuses of the 1st, 2nd, ... call with one Idempotency-Key, e.g. 503,503,200");
  app.add_option("--seed", seed, "Seed of the generator of every rate (0: random)");
  app.add_option("--latency-jitter", b.latency_jitter_ms,
                 "Up to this many milliseconds more per operation, uniformly");
  app.add_option("--slow-rate", b.slow_rate, "Probability that an operation takes --slow-ms")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--slow-ms", b.slow_ms, "The latency of a slow operation");
  app.add_option("--reject-rate", b.reject_rate,
                 "Probability that an operation is refused (--reject-status) without effect")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--reject-status", b.reject_status, "HTTP status of refusals (default 422)");
  app.add_option("--lost-reply-rate", b.lost_reply_rate,
                 "Probability that an operation takes effect but is answered --fail-status")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--repeat-error-rate", b.repeat_error_rate,
                 "Probability that a repeated key is answered --repeat-error-status instead of "
                 "its first response")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--repeat-error-status", b.repeat_error_status,
                 "HTTP status of those answers (default 409)");
  app.add_option("--decline-above", b.decline_above,
                 "payment: decline (200, status \"declined\") a charge above this amount");
  bool record_calls = false;
  app.add_flag("--record-calls", record_calls,
               "Record every operation request in the table `calls` of --db");
  CLI11_PARSE(app, argc, argv);
  for (size_t i = 0; i < sequence.size();) {
    size_t comma = sequence.find(',', i);
    b.fail_sequence.push_back(std::atoi(sequence.substr(i, comma - i).c_str()));
    i = comma == std::string::npos ? sequence.size() : comma + 1;
  }
  for (const std::string& spec : latency_ops) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "participant: --latency-op wants OP=MS, not %s\n", spec.c_str());
      return 2;
    }
    b.latency_ops[spec.substr(0, eq)] = std::atoll(spec.c_str() + eq + 1);
  }
  if (db.empty()) db = "participant-" + role_name + ".db";

  // SIGTERM and SIGINT are taken by a thread of their own (sigwait), so
  // every thread created after this line has them blocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Participant participant(roles().at(role_name), b, seed ? seed : std::random_device{}(),
                          record_calls);
  if (!participant.effects().open(db)) {
    std::fprintf(stderr, "participant: cannot open %s\n", db.c_str());
    return 1;
  }
  net::io_context io;
  tcp::acceptor acceptor(io);
  beast::error_code ec;
  tcp::endpoint endpoint(net::ip::make_address(host, ec), static_cast<uint16_t>(port));
  if (ec) {
    std::fprintf(stderr, "participant: bad --host %s\n", host.c_str());
    return 2;
  }
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(1024, ec);
  if (ec) {
    std::fprintf(stderr, "participant: cannot listen on %s:%d: %s\n", host.c_str(), port,
                 ec.message().c_str());
    return 1;
  }
  std::printf("listening on %s:%u\n", host.c_str(), acceptor.local_endpoint().port());
  std::fflush(stdout);

  std::atomic<bool> stopping{false};
  int listen_fd = acceptor.native_handle();
  std::thread([&stopping, stop_signals, listen_fd] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stopping = true;
    ::shutdown(listen_fd, SHUT_RDWR);  // Wakes accept().
  }).detach();

  while (!stopping) {
    tcp::socket socket(io);
    acceptor.accept(socket, ec);
    if (ec) {
      if (stopping) break;
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::thread([s = std::move(socket), &participant]() mutable {
      serve(std::move(s), participant);
    }).detach();
  }
  // Graceful stop: let operations in progress finish (up to 5 s), close the
  // database, and leave without running destructors under the threads that
  // may still wait on idle connections.
  for (int i = 0; i < 500 && participant.in_flight() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard lock(participant.db_mutex());
    participant.effects().close();
  }
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(0);
}
