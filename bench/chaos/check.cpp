// The chaos run's checks (check.hpp says what they are and why): the
// participants' tables are read with plain SQL, independently of the
// participant's code, and the store through saga::Store, read-only.
#include "bench/chaos/check.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "bench/chaos/workload.hpp"
#include "saga/store.hpp"

namespace chaos {
namespace {

using json = nlohmann::json;

// One row of a participant's `effects` table: kind "do" (an effect),
// "undo" (an undo call, its result in `response`) or "tombstone" (an undo
// that came before its do, which is then refused).
struct EffectRow {
  std::string role, key, op, kind, id;
  json request, response;
  bool undone = false;
  int64_t at_ms = 0;
};

// One row of a participant's `calls` table (--record-calls).
struct CallRow {
  std::string role, key, outcome;
};

struct Ledger {
  std::vector<EffectRow> effects;
  std::vector<CallRow> calls;
};

std::string column_text(sqlite3_stmt* st, int col) {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
  return p ? p : "";
}

// Appends the rows of one participant's database to `ledger`.
void read_participant(const std::string& role, const std::string& path, Ledger& ledger,
                      std::vector<std::string>& problems) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    problems.push_back(fmt::format("cannot open the {} participant's database {}", role, path));
    sqlite3_close(db);
    return;
  }
  sqlite3_busy_timeout(db, 5000);
  auto query = [&](const char* sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
      problems.push_back(fmt::format("{}: {}: {}", path, sql, sqlite3_errmsg(db)));
      return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) row(st);
    sqlite3_finalize(st);
  };
  query(
      "SELECT key, op, kind, coalesce(id, ''), request, response, undone, at_ms FROM effects "
      "ORDER BY rowid",
      [&](sqlite3_stmt* st) {
        EffectRow e;
        e.role = role;
        e.key = column_text(st, 0);
        e.op = column_text(st, 1);
        e.kind = column_text(st, 2);
        e.id = column_text(st, 3);
        e.request = json::parse(column_text(st, 4), nullptr, false);
        e.response = json::parse(column_text(st, 5), nullptr, false);
        e.undone = sqlite3_column_int(st, 6) != 0;
        e.at_ms = sqlite3_column_int64(st, 7);
        ledger.effects.push_back(std::move(e));
      });
  query("SELECT key, outcome FROM calls ORDER BY seq", [&](sqlite3_stmt* st) {
    ledger.calls.push_back({role, column_text(st, 0), column_text(st, 1)});
  });
  sqlite3_close(db);
}

// What an instance's history says about one of its steps.
struct StepHistory {
  bool completed = false;
  json result;                       // step_completed's data.
  std::vector<std::string> classes;  // Of its failed attempts, in order.
  bool failed = false;               // step_failed.
  size_t failed_at = 0;              // Its index in the history.
  bool kept_in_doubt = false;        // step_failed: "an earlier attempt may have had an effect".
  bool abandoned_in_doubt = false;   // step_abandoned while its attempt was out.
  bool abandoned = false;
};

bool had_no_effect(const std::string& error_class) {
  return error_class == "rejected" || error_class == "unsupported";
}

// One instance's view: its saga, its history by step, and its rows.
struct InstanceView {
  Saga saga;
  saga::InstanceRecord record;
  std::vector<saga::HistoryEvent> history;
  std::map<std::string, StepHistory> steps;
  std::vector<std::string> undo_order;                 // Steps of undo_completed, in history order.
  std::vector<size_t> resumed_at;                      // Indexes of `resumed` events.
  std::map<std::string, const EffectRow*> dos, undos;  // By step path.
};

void read_history(InstanceView& v) {
  for (size_t i = 0; i < v.history.size(); ++i) {
    const saga::HistoryEvent& e = v.history[i];
    if (e.kind == "resumed") v.resumed_at.push_back(i);
    if (e.step.empty()) continue;
    StepHistory& s = v.steps[e.step];
    if (e.kind == "step_completed") {
      s.completed = true;
      s.result = json::parse(e.data_json, nullptr, false);
    } else if (e.kind == "attempt_failed") {
      s.classes.push_back(e.error_class);
    } else if (e.kind == "step_failed") {
      s.classes.push_back(e.error_class);
      s.failed = true;
      s.failed_at = i;
      s.kept_in_doubt =
          e.message.find("an earlier attempt may have had an effect") != std::string::npos;
    } else if (e.kind == "step_abandoned") {
      s.abandoned = true;
      s.abandoned_in_doubt = e.message.find("nothing was sent") == std::string::npos;
    } else if (e.kind == "undo_completed") {
      v.undo_order.push_back(e.step);
    }
  }
}

class Checker {
 public:
  Checker(const CheckInputs& in, CheckReport& out) : in_(in), out_(out) {}

  void run() {
    for (const auto& [role, path] : in_.participant_dbs) {
      read_participant(role, path, ledger_, out_.violations);
    }
    saga::StoreOptions options;
    options.read_only = true;
    auto store = saga::open_store(in_.store_path, options);
    if (!store.ok()) {
      violation("cannot open the store: " + store.status().message());
      return;
    }
    auto all = store.value()->list_instances(std::nullopt, 100'000'000);
    if (!all.ok()) {
      violation("cannot list the instances: " + all.status().message());
      return;
    }
    index_ledger();
    std::map<int, InstanceView> by_n;
    for (saga::InstanceRecord& r : all.value()) {
      json input = json::parse(r.input_json, nullptr, false);
      const std::string order = input.is_object() ? input.value("order_id", "") : "";
      const int n = order.rfind("chaos-", 0) == 0 ? std::atoi(order.c_str() + 6) : 0;
      if (n < 1 || n > in_.sagas) {
        violation(fmt::format("instance {} of no saga of the run (input {})", r.id, r.input_json));
        continue;
      }
      InstanceView v;
      v.saga = saga_of(in_.seed, n);
      if (r.saga != kind_name(v.saga.kind) || input != v.saga.input) {
        violation(fmt::format("{}: instance {} runs {} with {}, not what was enqueued", order_id(n),
                              r.id, r.saga, r.input_json));
      }
      auto history = store.value()->history(r.id);
      if (history.ok()) v.history = std::move(history).value();
      if (r.status == saga::InstanceStatus::kStuck) {
        auto letters = store.value()->dead_letters(r.id);
        size_t count = letters.ok() ? letters.value().size() : 0;
        out_.dead_letters += static_cast<int>(count);
        if (count == 0) violation(order_id(n) + ": stuck without a dead letter");
      }
      v.record = std::move(r);
      if (!by_n.emplace(n, std::move(v)).second) {
        violation(fmt::format("{}: two instances (duplicated)", order_id(n)));
      }
    }
    for (int n = 1; n <= in_.sagas; ++n) {
      if (!by_n.count(n)) violation(fmt::format("{}: no instance (lost)", order_id(n)));
    }
    out_.instances = static_cast<int>(by_n.size());
    std::set<std::string> ids;
    for (auto& [n, v] : by_n) {
      ids.insert(v.record.id);
      check_instance(v);
    }
    for (const auto& [instance, rows] : rows_by_instance_) {
      if (!ids.count(instance)) {
        violation(fmt::format("{} rows at the participants for unknown instance '{}' ({})",
                              rows.size(), instance, rows.front()->key));
      }
    }
    check_twice();
    for (const CallRow& c : ledger_.calls) ++out_.calls_by_outcome[c.outcome];
  }

 private:
  void violation(std::string what) { out_.violations.push_back(std::move(what)); }

  void index_ledger() {
    for (const EffectRow& e : ledger_.effects) {
      rows_by_instance_[e.key.substr(0, e.key.find('/'))].push_back(&e);
      if (e.kind == "do") {
        ++out_.effects;
        out_.undone += e.undone;
      } else if (e.kind == "undo") {
        ++out_.undos;
      } else {
        ++out_.tombstones;
      }
    }
    for (const CallRow& c : ledger_.calls) calls_seen_.insert(c.key);
  }

  // No two effects for one request: a key that is not stable across retries
  // and resumes would apply an effect again under another key.
  void check_twice() {
    std::map<std::string, const EffectRow*> seen;
    for (const EffectRow& e : ledger_.effects) {
      if (e.kind != "do") continue;
      auto [it, fresh] = seen.emplace(e.role + " " + e.op + " " + e.request.dump(), &e);
      if (!fresh) {
        violation(fmt::format("effect applied twice at {}: {} {} under keys {} and {}", e.role,
                              e.op, e.request.dump(), it->second->key, e.key));
      }
    }
  }

  void check_instance(InstanceView& v) {
    const Saga& s = v.saga;
    const std::string name =
        fmt::format("{} ({} {})", order_id(s.n), kind_name(s.kind), v.record.id);
    auto problem = [&](const std::string& what) { violation(name + ": " + what); };
    read_history(v);
    const saga::InstanceStatus status = v.record.status;
    ++out_.by_kind[kind_name(s.kind)][saga::to_string(status)];
    ++out_.by_outcome[v.record.error_class.empty()
                          ? std::string(saga::to_string(status))
                          : fmt::format("{} ({})", saga::to_string(status), v.record.error_class)];
    out_.resumed_instances += !v.resumed_at.empty();
    out_.resumed_events += static_cast<int>(v.resumed_at.size());
    int failed_attempts = 0;
    for (const auto& [step, h] : v.steps) {
      failed_attempts += static_cast<int>(h.classes.size());
      out_.kept_in_doubt += h.kept_in_doubt;
    }
    out_.attempts_failed += failed_attempts;

    if (!saga::is_terminal(status) && status != saga::InstanceStatus::kStuck) {
      problem(std::string("ended ") + saga::to_string(status) + ", not terminal");
      return;
    }
    if (status == saga::InstanceStatus::kStuck) ++out_.stuck;

    // The rows of this instance, each under a key of one of its steps.
    const std::vector<StepSpec> specs = steps_of(s);
    std::map<std::string, const StepSpec*> spec_of;
    for (const StepSpec& spec : specs) spec_of[spec.path] = &spec;
    const std::string prefix = v.record.id + "/";
    auto rows = rows_by_instance_.find(v.record.id);
    if (rows != rows_by_instance_.end()) {
      for (const EffectRow* e : rows->second) {
        if (e->kind == "tombstone") continue;
        const bool undo = e->kind == "undo";
        std::string path = e->key.substr(prefix.size());
        if (undo) {
          path = path.size() > 5 && path.compare(path.size() - 5, 5, "/undo") == 0
                     ? path.substr(0, path.size() - 5)
                     : "";
        }
        auto spec = spec_of.find(path);
        if (spec == spec_of.end() || spec->second->role != e->role ||
            (undo ? spec->second->undo_op : spec->second->op) != e->op) {
          problem(fmt::format("{} {}.{} under key '{}', which is no step of its saga",
                              undo ? "undo" : "effect", e->role, e->op, e->key));
          continue;
        }
        if (!undo && e->request.value("order", "") != order_id(s.n)) {
          problem(fmt::format("effect {} made for order {}", e->key, e->request.dump()));
        }
        (undo ? v.undos : v.dos)[path] = e;
      }
    }
    // A step the engine saw complete has its effect, with the result it recorded.
    for (const auto& [step, h] : v.steps) {
      if (!h.completed || !spec_of.count(step)) continue;
      auto d = v.dos.find(step);
      if (d == v.dos.end()) {
        problem("step '" + step + "' completed without an effect at the participant");
      } else if (d->second->response != h.result) {
        problem(fmt::format("step '{}' recorded {}, the participant answered {} first", step,
                            h.result.dump(), d->second->response.dump()));
      }
    }

    if (status == saga::InstanceStatus::kCompleted) {
      check_completed(v, specs, problem);
    } else if (status != saga::InstanceStatus::kStuck) {
      check_undone(v, problem);
    }
    check_undo_calls(v, spec_of, problem);
    if (s.refuse && status == saga::InstanceStatus::kCompleted) {
      problem("completed although it refuses after its last step");
    }
    if (s.long_wait && status == saga::InstanceStatus::kCompleted) {
      problem(fmt::format("completed although it waits {} ms under a deadline of {} ms",
                          s.input["wait"].get<int>(), kTimedDeadlineMs));
    }
  }

  template <typename Problem>
  void check_completed(const InstanceView& v, const std::vector<StepSpec>& specs,
                       Problem& problem) {
    std::map<std::string, json> results;
    for (const StepSpec& spec : specs) {
      auto d = v.dos.find(spec.path);
      if (d == v.dos.end()) {
        problem("completed without the effect of step '" + spec.path + "'");
        continue;
      }
      if (d->second->undone) problem("completed, but the effect of '" + spec.path + "' is undone");
      results[spec.path] = d->second->response;
    }
    if (!v.undos.empty()) {
      problem(fmt::format("completed, but {} undos were called ({}...)", v.undos.size(),
                          v.undos.begin()->first));
    }
    int retried = 0;
    for (const auto& [step, h] : v.steps) retried += !h.classes.empty();
    out_.completed_after_retries += retried > 0;
    json output = json::parse(v.record.output_json, nullptr, false);
    json want = expected_output(v.saga, results);
    if (output != want) problem("output " + output.dump() + ", expected " + want.dump());
  }

  // A saga that did not complete has every effect undone by its own undo.
  template <typename Problem>
  void check_undone(const InstanceView& v, Problem& problem) {
    const bool failed = v.record.status == saga::InstanceStatus::kFailed;
    for (const auto& [step, d] : v.dos) {
      if (!d->undone) {
        problem(fmt::format("{}, but the effect of '{}' ({}) was never undone{}",
                            saga::to_string(v.record.status), step, d->id,
                            v.steps.count(step) && v.steps.at(step).kept_in_doubt
                                ? " (the step was in doubt, then rejected)"
                                : ""));
        continue;
      }
      auto u = v.undos.find(step);
      if (u == v.undos.end()) {
        problem("the effect of '" + step + "' is undone, but not by its own undo");
      } else if (u->second->response.value("undone", false) != true ||
                 u->second->response.value("id", "") != d->id) {
        problem(fmt::format("the undo of '{}' answered {}, not the undoing of {}", step,
                            u->second->response.dump(), d->id));
      }
    }
    if (failed && !v.undos.empty()) {
      problem(
          fmt::format("failed (nothing to compensate), but {} undos were called", v.undos.size()));
    }
  }

  // Every undo call: its argument, whether it may exist at all, its order.
  template <typename Problem>
  void check_undo_calls(const InstanceView& v,
                        const std::map<std::string, const StepSpec*>& spec_of, Problem& problem) {
    for (const auto& [step, u] : v.undos) {
      const StepSpec& spec = *spec_of.at(step);
      auto h = v.steps.find(step);
      const StepHistory none;
      const StepHistory& sh = h == v.steps.end() ? none : h->second;
      // The undo names what its do returned; a step in doubt has no result.
      const json ref = u->request.value(spec.ref_arg, json());
      if (sh.completed) {
        if (ref != sh.result.value("id", json())) {
          problem(fmt::format("the undo of '{}' got {} = {}, not its do's id {}", step,
                              spec.ref_arg, ref.dump(), sh.result.value("id", json()).dump()));
        }
      } else if (!ref.is_null()) {
        problem(fmt::format("the undo of '{}', which never completed, got {} = {}", step,
                            spec.ref_arg, ref.dump()));
      }
      // A step whose every attempt was refused without effect, in a run no
      // kill interrupted, is not compensated.
      const bool resumed_before =
          !v.resumed_at.empty() && (!sh.failed || v.resumed_at.front() < sh.failed_at);
      bool all_refused = sh.failed && !sh.abandoned;
      for (const std::string& c : sh.classes) all_refused = all_refused && had_no_effect(c);
      if (all_refused && !sh.kept_in_doubt && !resumed_before) {
        problem("the undo of '" + step +
                "' was called, but every attempt of the step was refused without effect");
      }
      const std::string note = u->response.value("note", "");
      if (note == "already undone") {
        problem("the undo of '" + step + "' found its effect undone by another undo");
      }
      if (u->response.value("undone", false) || note != "nothing to undo") continue;
      // An orphan: an undo that found nothing. Only for a step that may
      // have been sent.
      ++out_.orphan_undos;
      bool in_doubt = sh.kept_in_doubt || sh.abandoned_in_doubt;
      for (const std::string& c : sh.classes) in_doubt = in_doubt || !had_no_effect(c);
      const bool seen = calls_seen_.count(v.record.id + "/" + step) > 0;
      if (!in_doubt && v.resumed_at.empty() && !seen) {
        problem("the undo of '" + step +
                "' found nothing to undo, and the step was never sent, in doubt or interrupted");
      }
    }
    // Undos in order: in the store's history (strictly) and by the
    // participants' clocks (ms, so equal times pass).
    std::set<std::string> done;
    for (size_t j = 0; j < v.undo_order.size(); ++j) {
      const std::string& later = v.undo_order[j];
      if (!done.insert(later).second) problem("the undo of '" + later + "' completed twice");
      if (!spec_of.count(later)) continue;
      for (size_t i = 0; i < j; ++i) {
        const std::string& earlier = v.undo_order[i];
        if (spec_of.count(earlier) && undo_before(*spec_of.at(later), *spec_of.at(earlier))) {
          problem(fmt::format("undid '{}' before '{}' (history: {})", earlier, later,
                              json(v.undo_order).dump()));
        }
      }
    }
    for (const auto& [a, ua] : v.undos) {
      for (const auto& [b, ub] : v.undos) {
        if (undo_before(*spec_of.at(a), *spec_of.at(b)) && ua->at_ms > ub->at_ms) {
          problem(fmt::format("the participants undid '{}' at {} ms, after '{}' at {} ms", a,
                              ua->at_ms, b, ub->at_ms));
        }
      }
    }
  }

  const CheckInputs& in_;
  CheckReport& out_;
  Ledger ledger_;
  std::map<std::string, std::vector<const EffectRow*>> rows_by_instance_;
  std::set<std::string> calls_seen_;  // Keys of every call a participant recorded.
};

}  // namespace

CheckReport check_run(const CheckInputs& in) {
  CheckReport report;
  Checker(in, report).run();
  return report;
}

}  // namespace chaos
