// The explorer (explore.hpp): a depth-first walk over what the world may do,
// driving the saga machine, and a judge of every path's history.
#include "runtime/explore/explore.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/engine/machine.hpp"
#include "runtime/sim/sim.hpp"

namespace saga::explore {
namespace {

using runtime::Decision;
using runtime::Fiber;
using runtime::InstanceState;
using runtime::LinkedProgram;
using runtime::Outcome;
using runtime::Phase;
using runtime::Wait;

// What the world does next.
enum class Choice : uint8_t {
  kOk,               // The attempt (a do or an undo) succeeds.
  kRejected,         // The service declines: certainly no effect.
  kTimeout,          // No answer: the request may have had its effect (in doubt).
  kUnsent,           // No connection: certainly never sent.
  kUndoFailed,       // The undo's attempt fails (it will be retried, or the instance is stuck).
  kCancel,           // An operator cancels the instance.
  kDeadline,         // The saga's deadline fires early (its attempts take long).
  kCrash,            // The process dies after the last commit, and restarts.
  kDeadlineReached,  // Virtual time reaches the deadline: it fires, no fault.
};

bool is_fault(Choice c) {
  return c != Choice::kOk && c != Choice::kDeadlineReached;
}

// A step that may have had an effect on this path, as the judge knows it
// from the outcomes it chose.
struct Effect {
  uint64_t order = 0;             // When it (first) may have had its effect.
  std::vector<uint32_t> lineage;  // Its fiber and that fiber's ancestors.
  uint32_t step = bytecode::kNone;
  bool certain = false;  // Completed, rather than in doubt.
  std::string how;       // "completed", "timed out", "was out at the cancel", ...
};

// The instance (state, ready fibers, time: runtime/sim) and what the judge
// knows of its path.
struct Path : sim::Run {
  uint32_t faults = 0, crashes = 0, transitions = 0;
  uint64_t order = 0;
  std::map<std::string, Effect> effects;  // By step key (history name).
  std::map<std::string, uint32_t> undone;
  std::vector<std::string> undo_order;
  std::vector<std::string> trace;
  std::string pivot;  // The pivot step that completed (or may have had its effect), if any.
};

constexpr int64_t kDefaultTimeoutMs = 30'000;  // A step without a timeout, when it has none.

class Walker {
 public:
  Walker(const LinkedProgram& lp, uint32_t saga, const Value& input, const Options& o)
      : lp_(lp), p_(lp.program), saga_(saga), input_(input), o_(o), mock_(mock_result()) {
    sim_.compensation.attempts = o_.undo_attempts;
  }

  Report run() {
    const auto t0 = std::chrono::steady_clock::now();
    for (budget_ = 0; budget_ <= o_.max_faults && !report_.violation && !report_.truncated;
         ++budget_) {
      Path p;
      Decision d = sim::begin(lp_, p, saga_, input_, sim_);
      if (absorb(p, d, fmt::format("start {}", p_.sagas[saga_].name))) {
        leaf(p, d);
      } else {
        walk(std::move(p));
      }
    }
    report_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(report_);
  }

 private:
  // Every name the program spells as a string constant, as a field of each
  // action's result, so that `r.id` or `h.booking` read something.
  Value mock_result() const {
    Value v = Value::object();
    for (const bytecode::Constant& c : p_.constants) {
      if (c.kind != bytecode::Constant::Kind::String || c.string.empty() || c.string.size() > 64) {
        continue;
      }
      const bool name = std::all_of(c.string.begin(), c.string.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
      });
      if (name) v.set_field(c.string, Value(c.string + "-1"));
    }
    return v;
  }

  // What an await is answered with: for an `await event`, a CloudEvent of
  // its first type whose data is the mock result with the await's `where`
  // values at their paths (so that the happy path reads what it waits for);
  // for a signal, the mock result.
  Value mock_answer(const Fiber& f) const {
    const Value* name = f.args.find("name");
    std::string_view n = name && name->is_string() ? name->as_string() : std::string_view();
    if (!n.starts_with(bytecode::kEventSignalPrefix)) return mock_;
    n.remove_prefix(bytecode::kEventSignalPrefix.size());
    nlohmann::json event = {{"specversion", "1.0"},
                            {"id", "explored-1"},
                            {"source", "explored"},
                            {"type", std::string(n.substr(0, n.find(',')))},
                            {"data", mock_.to_json()}};
    const Value* where = f.args.find("where");
    const nlohmann::json values = where != nullptr ? where->to_json() : nlohmann::json::object();
    if (values.is_object()) {
      for (const auto& [path, value] : values.items()) {
        nlohmann::json* at = &event;
        for (size_t begin = 0; begin <= path.size();) {
          const size_t end = std::min(path.find('.', begin), path.size());
          if (!at->is_object()) *at = nlohmann::json::object();
          at = &(*at)[path.substr(begin, end - begin)];
          begin = end + 1;
        }
        *at = value;
      }
    }
    auto answer = Value::from_json(event);
    return answer.ok() ? std::move(answer).value() : mock_;
  }

  bool done() const { return report_.violation.has_value() || report_.truncated; }

  // Walks every continuation of `p`: the first choice in place, the others
  // on copies, so that recursion is as deep as the faults on a path.
  void walk(Path p) {
    while (!done()) {
      if (p.transitions >= o_.max_transitions) {
        return violate(
            p, bytecode::kNone,
            fmt::format("the instance does not end within {} transitions", o_.max_transitions), "");
      }
      while (!p.ready.empty()) {
        const Fiber* f = p.state.fiber(p.ready.front());
        if (f != nullptr && (f->wait == Wait::kAction || f->wait == Wait::kUndo)) break;
        p.ready.pop_front();
      }
      if (p.ready.empty()) {
        return violate(p, bytecode::kNone,
                       "the instance waits for nothing and never ends (no fiber has an attempt "
                       "to make)",
                       "");
      }
      const std::vector<Choice> choices = choices_at(p);
      for (size_t i = 1; i < choices.size() && !done(); ++i) {
        Path next = p;
        Decision d;
        if (apply(next, choices[i], d)) {
          leaf(next, d);
        } else {
          walk(std::move(next));
        }
      }
      if (done()) return;
      Decision d;
      if (apply(p, choices[0], d)) return leaf(p, d);
    }
  }

  std::vector<Choice> choices_at(const Path& p) const {
    const Fiber& f = *p.state.fiber(p.ready.front());
    const InstanceState& s = p.state;
    const bool forward = s.phase == Phase::kForward;
    // Time reaches the deadline before this attempt: it fires, no choice.
    if (forward && s.deadline_ms != 0 && std::max(p.now, f.wake_at_ms) >= s.deadline_ms) {
      return {Choice::kDeadlineReached};
    }
    std::vector<Choice> out = {Choice::kOk};
    if (p.faults >= budget_) return out;
    if (f.wait == Wait::kAction) {
      if (bytecode::is_await_step(p_, p_.steps[f.step])) {
        out.push_back(Choice::kTimeout);  // No signal or event before the await's timeout.
      } else if (!runtime::engine_performed(p_.actions[p_.steps[f.step].action])) {
        out.insert(out.end(), {Choice::kRejected, Choice::kTimeout, Choice::kUnsent});
      }
    } else if (!s.stuck) {
      out.push_back(Choice::kUndoFailed);
    }
    if (forward) {
      out.push_back(Choice::kCancel);
      if (s.deadline_ms != 0) out.push_back(Choice::kDeadline);
    }
    if (p.crashes < o_.max_crashes) out.push_back(Choice::kCrash);
    return out;
  }

  // Records that the step fiber `f` waits for may have had an effect.
  void may_have_effect(Path& p, const Fiber& f, bool certain, std::string how) {
    const std::string key = runtime::step_name(lp_, f);
    auto [it, fresh] = p.effects.try_emplace(key);
    if (fresh) {
      it->second.order = ++p.order;
      it->second.step = f.step;
      for (const Fiber* a = &f;; a = p.state.fiber(a->parent)) {
        it->second.lineage.push_back(a->id);
        if (a->id == 0) break;
      }
      it->second.how = std::move(how);
    }
    if (certain && !it->second.certain) {
      it->second.certain = true;
      it->second.how = "completed";
    }
    // From here on nothing may be compensated: the pivot completed, or may
    // have had its effect.
    if (p_.steps[f.step].kind == bytecode::StepKind::Pivot && p.pivot.empty()) p.pivot = key;
  }

  // Every queued attempt that has been handed to its service is out: a
  // cancel, the deadline or a crash now leaves its step in doubt.
  void attempts_out(Path& p, const char* at) {
    for (uint32_t id : p.ready) {
      Fiber* f = p.state.fiber(id);
      if (f == nullptr || f->wait != Wait::kAction || f->wake_at_ms > p.now) continue;
      if (runtime::engine_performed(p_.actions[p_.steps[f->step].action])) continue;
      f->attempt_out = true;
      may_have_effect(p, *f, false, fmt::format("was out at the {}", at));
    }
  }

  // Applies `c` to `p`; true when the instance reached an end (status in d).
  bool apply(Path& p, Choice c, Decision& d) {
    if (is_fault(c)) ++p.faults;
    ++p.transitions;
    const uint32_t id = p.ready.front();
    Fiber& f = *p.state.fiber(id);
    std::string line;
    if (c == Choice::kCancel || c == Choice::kDeadline || c == Choice::kDeadlineReached) {
      const bool cancel = c == Choice::kCancel;
      if (!cancel) p.now = std::max(p.now, p.state.deadline_ms);
      attempts_out(p, cancel ? "cancel" : "deadline");
      d = cancel ? sim::cancel(lp_, p, sim_)
                 : sim::deadline(lp_, p, "the saga's deadline passed", sim_);
      line = cancel ? "an operator cancels" : "the deadline fires";
    } else if (c == Choice::kCrash) {
      ++p.crashes;
      attempts_out(p, "crash");
      auto resumed = sim::crash(lp_, p, sim_);
      if (!resumed.ok()) {
        violate(p, bytecode::kNone, "after a crash, " + resumed.status().message(), "");
        return true;
      }
      d = std::move(resumed).value();
      line = "the process dies and restarts";
    } else {
      p.now = std::max(p.now, f.wake_at_ms);
      const std::string key = runtime::step_name(lp_, f);
      const bool undo = f.wait == Wait::kUndo;
      const bytecode::Step& step = p_.steps[f.step];
      Outcome out;
      switch (c) {
        case Choice::kOk:
          out.ok = true;
          if (!undo) {
            out.result = bytecode::is_await_step(p_, step) ? mock_answer(f) : mock_;
            may_have_effect(p, f, true, "completed");
          }
          p.now += 1;
          break;
        case Choice::kRejected:
          out.error_class = "rejected";
          out.message = "declined (explored)";
          p.now += 1;
          break;
        case Choice::kTimeout:
          out.error_class = "timeout";
          out.message = "no answer (explored)";
          // An await that times out sent nothing anywhere.
          if (!bytecode::is_await_step(p_, step)) may_have_effect(p, f, false, "timed out");
          p.now += step.timeout_ms != 0 ? static_cast<int64_t>(step.timeout_ms) : kDefaultTimeoutMs;
          break;
        case Choice::kUnsent:
          out.error_class = "unavailable";
          out.message = "connection refused (explored)";
          out.not_sent = true;
          p.now += 1;
          break;
        default:  // kUndoFailed
          out.error_class = "unavailable";
          out.message = "the undo failed (explored)";
          p.now += 1;
          break;
      }
      static constexpr const char* kSaid[] = {"succeeds", "is declined", "times out", "is not sent",
                                              "fails"};
      line = fmt::format("{}{} attempt {} {}", undo ? "undo of " : "", key, f.attempt,
                         kSaid[static_cast<int>(c)]);
      d = sim::attempt_ended(lp_, p, id, out, sim_);
    }
    if (done()) return true;
    return absorb(p, d, line);
  }

  // Judges a decision's events as they happen, and adds the transition to the
  // trace. True when the instance reached an end.
  bool absorb(Path& p, const Decision& d, const std::string& what) {
    std::string events;
    for (const Decision::Event& e : d.events) {
      const HistoryEvent& ev = e.event;
      if (!events.empty()) events += ", ";
      events += ev.step.empty() ? ev.kind : ev.kind + " " + ev.step;
      if (ev.kind == "undo_started" && !p.pivot.empty()) {
        p.trace.push_back(fmt::format("{} -> {}", what, events));
        violate(p, step_of(ev.step),
                fmt::format("'{}' is compensated after the pivot step '{}' had its effect: past "
                            "the point of no return nothing may be undone",
                            ev.step, p.pivot),
                "move the step before the pivot, or make it a retriable step without undo");
        return true;
      }
      if (ev.kind == "undo_started" && !p.effects.contains(ev.step)) {
        p.trace.push_back(fmt::format("{} -> {}", what, events));
        violate(
            p, step_of(ev.step),
            fmt::format("the undo of '{}' runs, but its do had no effect on this path", ev.step),
            "");
        return true;
      }
      if (ev.kind == "undo_completed") {
        if (++p.undone[ev.step] > 1) {
          p.trace.push_back(fmt::format("{} -> {}", what, events));
          violate(p, step_of(ev.step), fmt::format("'{}' is undone twice", ev.step), "");
          return true;
        }
        p.undo_order.push_back(ev.step);
      }
      if (ev.kind == "undo_skipped") {
        auto it = p.effects.find(ev.step);
        if (it != p.effects.end() && !it->second.certain) {
          p.trace.push_back(fmt::format("{} -> {}", what, events));
          violate(p, it->second.step,
                  fmt::format("step '{}' may have had its effect (its attempt {}) but has no "
                              "undo: nothing compensates it when the saga fails",
                              ev.step, it->second.how),
                  "give the step an undo that accepts \"nothing to undo\", or make it certain "
                  "(a participant that answers a repeated key, retried until it does)");
          return true;
        }
      }
    }
    p.trace.push_back(events.empty() ? what : fmt::format("{} -> {}", what, events));
    if (d.dead_letter &&
        d.dead_letter->message.rfind("cannot compute the undo's arguments", 0) == 0) {
      violate(p, p.state.root().step,
              fmt::format("the undo of '{}' reads a value that is not bound on this path: {}",
                          d.dead_letter->step, d.dead_letter->message),
              "compute the undo's arguments from values bound before or by its step");
      return true;
    }
    return d.final();
  }

  // The step a history name is about: its own name, or the longest step
  // name in it ("flight/book" and "reserve[3]" name `book` and `reserve`).
  uint32_t step_of(const std::string& key) const {
    uint32_t best = bytecode::kNone;
    for (uint32_t i = 0; i < p_.steps.size(); ++i) {
      const std::string& name = p_.steps[i].name;
      if (p_.steps[i].saga != saga_ || key.find(name) == std::string::npos) continue;
      if (name == key) return i;
      if (best == bytecode::kNone || name.size() > p_.steps[best].name.size()) best = i;
    }
    return best;
  }

  // The end of a path: the promises about the whole history.
  void leaf(Path& p, const Decision& d) {
    if (done()) return;
    const std::string status = to_string(d.status);
    if (status == "completed") {
      if (!p.undone.empty()) {
        return violate(p, step_of(p.undo_order.front()),
                       fmt::format("the saga completed, yet '{}' was undone", p.undo_order.front()),
                       "");
      }
    } else if (status != "stuck" && status != "paused" && p.pivot.empty()) {
      // (A stuck or paused instance waits for an operator: nothing is owed yet.)
      // (Past a pivot the steps keep their effects: absorb() saw no undo.)
      for (const auto& [key, e] : p.effects) {
        const bool has_undo = p_.steps[e.step].undo_pc != bytecode::kNone;
        if (has_undo && p.undone[key] != 1) {
          return violate(
              p, e.step,
              fmt::format("the saga ended {}, but '{}' ({}) was never undone", status, key, e.how),
              "");
        }
      }
      // Newest first along each line of fibers: of two steps where one's
      // fiber descends from (or is) the other's, the later is undone first.
      auto position = [&p](const std::string& key) {
        return std::find(p.undo_order.begin(), p.undo_order.end(), key) - p.undo_order.begin();
      };
      for (const auto& [a, ea] : p.effects) {
        for (const auto& [b, eb] : p.effects) {
          if (ea.order >= eb.order || !p.undone.contains(a) || !p.undone.contains(b)) continue;
          const bool related = std::find(ea.lineage.begin(), ea.lineage.end(),
                                         eb.lineage.front()) != ea.lineage.end() ||
                               std::find(eb.lineage.begin(), eb.lineage.end(),
                                         ea.lineage.front()) != eb.lineage.end();
          if (related && position(b) > position(a)) {
            return violate(p, ea.step,
                           fmt::format("'{}' is undone before '{}', which had its effect after "
                                       "it: compensation must run newest first",
                                       a, b),
                           "");
          }
        }
      }
    }
    if (p.faults != budget_) return;  // Counted in an earlier round.
    ++report_.paths;
    ++report_.statuses[status];
    if (p.trace.size() > report_.longest.size()) report_.longest = p.trace;
    if (report_.paths >= o_.max_paths) report_.truncated = true;
  }

  void violate(const Path& p, uint32_t step, std::string message, std::string help) {
    if (report_.violation) return;
    Violation v;
    v.message = std::move(message);
    v.step = step;
    v.help = std::move(help);
    v.trace = p.trace;
    v.faults = p.faults;
    report_.violation = std::move(v);
  }

  const LinkedProgram& lp_;
  const bytecode::Program& p_;
  const uint32_t saga_;
  const Value& input_;
  const Options& o_;
  const Value mock_;
  sim::Options sim_;  // No jitter: the machine's fixed choice.
  uint32_t budget_ = 0;
  Report report_;
};

}  // namespace

Value default_input(const bytecode::Saga& saga) {
  Value in = Value::object();
  for (const bytecode::Param& p : saga.params) {
    Value v;
    switch (p.type) {
      case bytecode::Type::String:
        v = Value("x-1");
        break;
      case bytecode::Type::Number:
        v = Value(2.0);
        break;
      case bytecode::Type::Bool:
        v = Value(true);
        break;
      case bytecode::Type::List:
        v = Value::list(
            {Value::object({{"sku", "a"}, {"qty", 1}}), Value::object({{"sku", "b"}, {"qty", 2}})});
        break;
      case bytecode::Type::Object:
        v = Value::object({{"id", "x-1"}, {"name", "N"}});
        break;
      default:
        v = Value("x-1");
        break;
    }
    in.set_field(p.name, std::move(v));
  }
  return in;
}

Report explore(const LinkedProgram& program, uint32_t saga, const Value& input,
               const Options& options) {
  return Walker(program, saga, input, options).run();
}

}  // namespace saga::explore
