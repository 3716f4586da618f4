// The saga machine (machine.hpp): forward progress, retries, the in-doubt
// rule, fibers (fork, end, join), abandonment and compensation.
//
// Every function here works on the state it is given and writes what the
// world must see into the Decision; nothing reads a clock (Env::now_ms is
// the time) or touches a store. Fibers are looked up by id after anything
// that may add fibers, because adding one may move the others in memory.
#include "runtime/engine/machine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include <nlohmann/json.hpp>

#include "runtime/bytecode/program.hpp"
#include "saga/commands.hpp"
#include "saga/error_classes.hpp"
#include "saga/errors.hpp"
#include "saga/signals.hpp"
#include "stdlib/table.hpp"

namespace saga::runtime {

stdlib::Performer performer(const bytecode::Action& action) {
  if (action.service != bytecode::kNoService) return stdlib::Performer::kHandler;
  const stdlib::ActionInfo* info = stdlib::find_action(action.name);
  return info != nullptr ? info->performer : stdlib::Performer::kHandler;
}

int64_t attempt_timeout_ms(const bytecode::Program& p, const bytecode::Step& step,
                           const bytecode::Action& action) {
  if (step.timeout_ms != 0) return static_cast<int64_t>(step.timeout_ms);
  if (action.service == bytecode::kNoService) return 0;
  return static_cast<int64_t>(p.services[action.service].timeout_ms);
}

bool engine_performed(const bytecode::Action& action) {
  return stdlib::by_engine(performer(action));
}

std::string step_name(const LinkedProgram& lp, const Fiber& f) {
  if (f.wait == Wait::kUndo && !f.detail->undo_name.empty()) return f.detail->undo_name;
  const std::string& plain = lp.program.steps[f.step].name;
  if (f.detail->prefix.empty() && f.detail->suffix.empty()) return plain;
  return f.detail->prefix + plain + f.detail->suffix;
}

InstanceStatus status_of(const InstanceState& s) {
  if (s.stuck) return InstanceStatus::kStuck;
  if (s.paused) return InstanceStatus::kPaused;
  switch (s.phase) {
    case Phase::kForward:
      return InstanceStatus::kRunning;
    case Phase::kCompensating:
      return InstanceStatus::kCompensating;
    case Phase::kDone:
      if (s.cancelled) return InstanceStatus::kCancelled;
      if (!s.error_class.empty()) {
        return s.had_effects ? InstanceStatus::kCompensated : InstanceStatus::kFailed;
      }
      return InstanceStatus::kCompleted;
  }
  return InstanceStatus::kRunning;
}

namespace {

std::string format_ms(int64_t ms) {
  return bytecode::format_duration(static_cast<uint64_t>(std::max<int64_t>(ms, 0)));
}

// A Value as the stdlib table's argument checker sees it.
stdlib::ArgView arg_view(const Value& v) {
  using K = stdlib::ArgView::Kind;
  switch (v.kind()) {
    case saga::Kind::Null:
      return {K::kNull};
    case saga::Kind::Bool:
      return {K::kBool};
    case saga::Kind::Number:
      return {K::kNumber, v.as_number()};
    case saga::Kind::String:
      return {K::kString, 0, v.as_string()};
    case saga::Kind::List:
      return {K::kList};
    case saga::Kind::Object:
      return {K::kObject};
  }
  return {K::kNull};
}

// Checks the computed arguments of an action the engine performs against its
// row of actions.def (the compiler checked the constant ones): empty when they
// are fine, else what is wrong ("sleep(for:) must be a duration ...").
std::string check_engine_args(const bytecode::Action& action, const Value& args) {
  const stdlib::ActionInfo* info = stdlib::find_action(action.name);
  if (info == nullptr) return {};
  for (const stdlib::ArgSpec& spec : info->args()) {
    const Value* v = args.find(spec.name);
    std::string why = stdlib::check_action_arg(
        info->name, spec.name, v ? arg_view(*v) : stdlib::ArgView{stdlib::ArgView::Kind::kNull});
    if (!why.empty()) return why;
  }
  return {};
}

// When a sleep with these (checked) arguments wakes up.
int64_t sleep_until(int64_t now, const Value& args) {
  const Value* d = args.find("for");
  return now + static_cast<int64_t>(d && d->is_number() ? d->as_number() : 0);
}

void add_unique(Decision::Fibers& ids, uint32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

class Machine {
 public:
  Machine(const LinkedProgram& lp, InstanceState& s, const Env& env)
      : lp_(lp), p_(lp.program), s_(s), env_(env) {
    d_.instance_changed = false;
  }

  // Runs the fibers made runnable so far, then says what was decided.
  Decision finish() {
    drain();
    d_.status = status_of(s_);
    return std::move(d_);
  }

  // ---- Starting and resuming ---------------------------------------------------

  void begin() {
    const bytecode::Saga& saga = p_.sagas[s_.saga];
    s_.started_ms = env_.now_ms;
    if (saga.deadline_ms) s_.deadline_ms = s_.started_ms + static_cast<int64_t>(saga.deadline_ms);
    // The input is in the instance row; the history does not repeat it.
    event(EventKind::started);
    touch(0);
    forward(0);
  }

  void resumed() {
    event(EventKind::resumed);
    for (Fiber& f : s_.fibers) {
      if (f.wait == Wait::kAction && env_.now_ms >= f.wake_at_ms &&
          !engine_performed(p_.actions[p_.steps[f.step].action])) {
        f.earlier_attempt_in_doubt = true;
      }
    }
    rearm();
  }

  // Every fiber that waits for an action or an undo starts its wait again.
  void rearm() {
    for (Fiber& f : s_.fibers) {
      if (f.wait == Wait::kAction || (f.wait == Wait::kUndo && !s_.stuck)) {
        add_unique(d_.ready, f.id);
      }
    }
  }

  // ---- Messages from the inbox ----------------------------------------------------

  void message(const InboxMessage& m) {
    if (m.kind == kSignalKind) {
      // The engine keeps a well-formed signal while the instance can still
      // await it; this one it cannot, or it is not well-formed.
      std::string name, data;
      const bool ok = read_signal(m, name, data);
      return event(EventKind::signal_dropped, {}, 0, {},
                   ok ? fmt::format("signal '{}' arrived while the instance is {}: no await can "
                                    "take it any more",
                                    name, to_string(status_of(s_)))
                      : "a malformed signal message",
                   ok ? nlohmann::json{{"signal", name}, {"id", m.id}}.dump() : std::string());
    }
    const std::optional<Command> c = find_command(m.kind);
    if (!c) {
      return event(EventKind::command_dropped, {}, 0, {},
                   fmt::format("unknown message kind '{}'", m.kind));
    }
    const nlohmann::json payload = m.payload_json.empty()
                                       ? nlohmann::json::object()
                                       : nlohmann::json::parse(m.payload_json, nullptr, false);
    std::string note;
    if (payload.is_object() && payload.contains("note") && payload["note"].is_string()) {
      note = payload["note"].get<std::string>();
    }
    const std::string name(command_info(*c).name);
    if (std::string why = refusal(*c, m.instance_id, status_of(s_)); !why.empty()) {
      return event(EventKind::command_dropped, {}, 0, {},
                   why + " (it changed since the command was posted)",
                   nlohmann::json{{"command", name}}.dump());
    }
    const std::string data = nlohmann::json{{"command", name}, {"note", note}}.dump();
    switch (*c) {
      case Command::cancel:
        s_.cancelled = true;
        return begin_compensation("cancelled", "cancelled by request");
      case Command::pause:
        s_.paused = true;
        event(EventKind::paused, {}, 0, {}, note, data);
        // Every wait is let go: a late result is ignored, and the attempt
        // that was out is in doubt when the instance runs again (resumed()).
        for (const Fiber& f : s_.fibers) add_unique(d_.stopped, f.id);
        return touch(0);
      case Command::unpause:
        s_.paused = false;
        event(EventKind::unpaused, {}, 0, {}, note, data);
        return resumed();
      case Command::retry:
        if (s_.stuck) {
          Fiber& r = fiber(0);
          s_.stuck = false;
          d_.resolve_dead_letters = true;
          const std::string step = step_name(lp_, r);
          event(EventKind::retried, step, 0, {}, note, data);
          r.attempt = 1;
          r.wake_at_ms = 0;
          // An undo whose arguments could not be computed tries again
          // (from the root's slots, as next_undo() does): the same error
          // leaves it stuck again, honestly.
          if (r.args.is_null()) {
            Fiber scratch;
            scratch.pc = p_.steps[r.step].undo_pc;
            std::string cls = std::move(s_.error_class), msg = std::move(s_.error_message);
            const Stop stop = run(lp_, s_, scratch, *env_.functions);
            std::string why_class = std::move(s_.error_class), why = std::move(s_.error_message);
            s_.error_class = std::move(cls);
            s_.error_message = std::move(msg);
            if (stop != Stop::kUndo) {
              return stuck(step, why_class, why, "cannot compute the undo's arguments: " + why);
            }
            r.args = std::move(scratch.args);
          }
          return ready(0);
        }
        s_.paused = false;
        event(EventKind::retried, {}, 0, {}, note, data);
        // A fresh budget for every waiting forward step.
        for (Fiber& f : s_.fibers) {
          if (f.wait == Wait::kAction) f.attempt = 1;
        }
        return resumed();
      case Command::skip:
        return skip(note, payload);
      case Command::compensate:
        s_.paused = false;
        event(EventKind::compensation_requested, {}, 0, {}, note, data);
        return begin_compensation("cancelled", note.empty()
                                                   ? "compensated by an operator"
                                                   : "compensated by an operator: " + note);
    }
  }

  void skip(const std::string& note, const nlohmann::json& payload) {
    if (s_.stuck) {
      // The undo that gave up counts as done; the compensation goes on.
      Fiber& r = fiber(0);
      s_.stuck = false;
      d_.resolve_dead_letters = true;
      event(EventKind::skipped, step_name(lp_, r), r.attempt, {}, note,
            nlohmann::json{{"command", "skip"}, {"note", note}}.dump());
      r.wait = Wait::kNone;
      r.wake_at_ms = 0;
      if (!r.detail->undo_name.empty()) r.detail.mut().undo_name.clear();
      return next_undo();
    }
    std::vector<uint32_t> waiting;
    for (const Fiber& f : s_.fibers) {
      if (f.wait == Wait::kAction) waiting.push_back(f.id);
    }
    if (waiting.size() != 1) {
      return event(EventKind::command_dropped, {}, 0, {},
                   fmt::format("skip needs exactly one waiting step, and {} wait{}", waiting.size(),
                               waiting.size() == 1 ? "s" : ""),
                   nlohmann::json{{"command", "skip"}}.dump());
    }
    Outcome done;
    done.ok = true;
    if (payload.is_object() && payload.contains("result")) {
      auto v = Value::from_json_text(payload["result"].dump());
      if (v.ok()) done.result = std::move(v).value();
    }
    done.note = note.empty() ? "done by hand" : "done by hand: " + note;
    s_.paused = false;
    const uint32_t id = waiting.front();
    event(EventKind::skipped, step_name(lp_, fiber(id)), fiber(id).attempt, {}, note,
          nlohmann::json{{"command", "skip"}, {"note", note}}.dump());
    resumed();
    attempt_ended(id, done);
  }

  // ---- Attempts -----------------------------------------------------------------

  void attempt_ended(uint32_t id, const Outcome& out) {
    Fiber& f = fiber(id);
    f.attempt_out = false;
    const bytecode::Step& step = p_.steps[f.step];
    const std::string name = step_name(lp_, f);
    if (f.wait == Wait::kUndo) return undo_ended(id, out);
    if (out.ok) {
      if (performer(p_.actions[step.action]) == stdlib::Performer::kLog) log_line(f, name);
      event(EventKind::step_completed, name, f.attempt, {}, out.note, out.result.to_json_text());
      // The result is the step's before the undo's arguments are computed
      // from it; the STORE after INVOKE binds the same value again.
      if (step.result_slot != bytecode::kNone) store_slot(s_, f, step.result_slot, out.result);
      // An await had no effect outside the instance: nothing to compensate.
      if (!bytecode::is_await_step(p_, step)) record(f, f.step, false);
      // Past the pivot the saga only goes forward: its deadline no longer
      // applies (the retriable steps after it are retried until they succeed).
      if (step.kind == bytecode::StepKind::Pivot && f.id == 0) s_.deadline_ms = 0;
      f.stack.push_back(out.result);
      f.wait = Wait::kNone;
      f.wake_at_ms = 0;
      touch(id);
      return forward(id);
    }
    const std::string& cls = out.error_class;
    const bytecode::RetryPolicy* policy =
        step.retry == bytecode::kNone ? nullptr : &p_.policies[step.retry];
    const bool retryable =
        policy &&
        (policy->attempts == bytecode::kUnlimitedAttempts || f.attempt < policy->attempts) &&
        bytecode::retries_class(*policy, cls);
    // An attempt refused before its request was sent (open circuit, no
    // connection) certainly had no effect; one that ended otherwise, short
    // of a definite `rejected`, may have.
    const bool this_in_doubt = !had_no_effect(cls) && !out.not_sent;
    if (retryable) {
      // A Retry-After from the service is the least delay.
      const int64_t delay = std::max(backoff(*policy, f.attempt), out.retry_after_ms);
      const int64_t at = env_.now_ms + delay;
      if (s_.deadline_ms == 0 || at < s_.deadline_ms) {
        event(EventKind::attempt_failed, name, f.attempt, cls,
              fmt::format("{} (retrying in {}){}", out.message, format_ms(delay), noted(out)));
        if (this_in_doubt) f.earlier_attempt_in_doubt = true;
        if (f.attempt != bytecode::kUnlimitedAttempts) f.attempt += 1;  // Never wraps.
        f.wake_at_ms = at;
        return ready(id);
      }
    }
    // `then: pause`: a class the policy retries, with the attempts used up,
    // parks the instance for an operator instead of failing the step (a
    // retry past the deadline, or a class the policy does not retry, still
    // fails it). The fiber keeps waiting at its step; every other wait is
    // let go, as `sagactl pause` does; `sagactl retry` gives a fresh budget
    // with the same idempotency key, `skip` completes the step by hand and
    // `compensate` gives up.
    if (policy && policy->then == bytecode::Then::Pause && bytecode::retries_class(*policy, cls) &&
        policy->attempts != bytecode::kUnlimitedAttempts && f.attempt >= policy->attempts) {
      event(EventKind::attempt_failed, name, f.attempt, cls,
            fmt::format("{} (attempts exhausted: pausing){}", out.message, noted(out)));
      if (this_in_doubt) f.earlier_attempt_in_doubt = true;
      f.wake_at_ms = 0;
      s_.paused = true;
      event(EventKind::paused, name, f.attempt, cls,
            fmt::format("step '{}' failed {} time{} ({}: {}); its retry policy ends in a pause: "
                        "waiting for an operator (retry, skip or compensate)",
                        name, f.attempt, f.attempt == 1 ? "" : "s", cls, out.message),
            nlohmann::json{{"reason", "then: pause"}, {"step", name}}.dump());
      for (const Fiber& other : s_.fibers) add_unique(d_.stopped, other.id);
      return touch(id);
    }
    // Once any attempt may have reached the service, the step stays in
    // doubt: a later answer, even a definite `rejected` (a participant that
    // lost the first request's outcome, or answers a repeated key with an
    // error), cannot prove that the earlier one had no effect. Otherwise the
    // last attempt decides: in doubt unless it had no effect by its class or
    // was never sent.
    const bool in_doubt = f.earlier_attempt_in_doubt || this_in_doubt;
    std::string note;
    if (in_doubt && !this_in_doubt) {
      note = " (an earlier attempt may have had an effect: the step is compensated)";
    } else if (!in_doubt && !had_no_effect(cls)) {
      note = " (never sent: the step had no effect and is not compensated)";
    }
    event(EventKind::step_failed, name, f.attempt, cls, out.message + note + noted(out));
    if (in_doubt) record(f, f.step, true);
    f.wait = Wait::kNone;
    touch(id);
    begin_compensation(cls, fmt::format("step '{}': {}", name, out.message));
  }

  // The engine's note on an attempt, for a failure's message ("; waited 2s
  // for a slot of service 'inventory' (limit 12)").
  static std::string noted(const Outcome& out) { return out.note.empty() ? "" : "; " + out.note; }

  void undo_ended(uint32_t id, const Outcome& out) {
    Fiber& f = fiber(id);
    const std::string name = step_name(lp_, f);
    touch(id);
    if (out.ok) {
      const bytecode::Action& undo = p_.actions[p_.steps[f.step].undo_action];
      if (performer(undo) == stdlib::Performer::kLog) log_line(f, name);
      event(EventKind::undo_completed, name, f.attempt, {}, out.note);
      f.wait = Wait::kNone;
      f.wake_at_ms = 0;
      if (!f.detail->undo_name.empty()) f.detail.mut().undo_name.clear();
      return next_undo();
    }
    // The undo's own policy (`undo_retry`, or the saga's default) when it
    // has one: its attempts, backoff and classes (a class it does not retry
    // leaves the instance stuck at once). Else the engine's built-in policy
    // (every class, `--undo-attempts` sets its attempts).
    const bytecode::Step& step = p_.steps[f.step];
    bytecode::RetryPolicy builtin;
    const bytecode::RetryPolicy* policy = nullptr;
    bool retry = false;
    if (step.undo_retry != bytecode::kNone) {
      policy = &p_.policies[step.undo_retry];
      retry = (policy->attempts == bytecode::kUnlimitedAttempts || f.attempt < policy->attempts) &&
              bytecode::retries_class(*policy, out.error_class);
    } else {
      const CompensationPolicy& cp = env_.compensation;
      builtin.backoff = bytecode::Backoff::Exponential;
      builtin.initial_ms = static_cast<uint64_t>(cp.initial_ms);
      builtin.factor = cp.factor;
      builtin.max_ms = static_cast<uint64_t>(cp.max_ms);
      policy = &builtin;
      retry = f.attempt < cp.attempts;
    }
    if (retry) {
      // A Retry-After (or an open circuit's remaining time) is the least delay.
      const int64_t delay = std::max(backoff(*policy, f.attempt), out.retry_after_ms);
      event(EventKind::undo_failed, name, f.attempt, out.error_class,
            fmt::format("{} (retrying in {}){}", out.message, format_ms(delay), noted(out)));
      if (f.attempt != bytecode::kUnlimitedAttempts) f.attempt += 1;  // Never wraps.
      f.wake_at_ms = env_.now_ms + delay;
      return ready(id);
    }
    // The compensation is exhausted: never dropped, the instance is stuck at
    // this undo, for an operator to retry or skip.
    stuck(name, out.error_class, fmt::format("undo failed {} times: {}", f.attempt, out.message),
          out.message);
  }

  // ---- Signals ---------------------------------------------------------------------

  void signal_arrived(uint32_t id, const InboxMessage& m, const std::string& data_json) {
    Fiber& f = fiber(id);
    const Value* n = f.args.find("name");
    const std::string name = n && n->is_string() ? std::string(n->as_string()) : std::string();
    Outcome got;
    got.ok = true;
    auto data = Value::from_json_text(data_json);
    if (data.ok()) got.result = std::move(data).value();
    nlohmann::json info{{"signal", name}, {"id", m.id}, {"posted_ms", m.posted_ms}};
    info["data"] = nlohmann::json::parse(data_json, nullptr, false);
    if (info["data"].is_discarded()) info["data"] = nullptr;
    event(EventKind::signal_consumed, step_name(lp_, f), f.attempt, {},
          fmt::format("signal '{}', posted {}", name, stdlib::format_iso8601_ms(m.posted_ms)),
          info.dump());
    attempt_ended(id, got);
  }

  void signal_timed_out(uint32_t id) {
    Fiber& f = fiber(id);
    f.attempt_out = false;
    const Value* n = f.args.find("name");
    const Value* t = f.args.find("timeout");
    const std::string name = n && n->is_string() ? std::string(n->as_string()) : std::string();
    const int64_t ms = t && t->is_number() ? static_cast<int64_t>(t->as_number()) : 0;
    const std::string step = step_name(lp_, f);
    const std::string why = fmt::format("no signal '{}' within {}", name, format_ms(ms));
    // AWAIT's jump: where its else block starts (0: it has none).
    bytecode::Instruction in;
    const uint32_t at = f.pc - bytecode::instruction_size(bytecode::Op::AWAIT);
    const bool decoded = bytecode::decode(p_.code, at, in) && in.op == bytecode::Op::AWAIT;
    const int32_t jump = decoded ? in.jump() : 0;
    f.wait = Wait::kNone;
    f.wake_at_ms = 0;
    touch(id);
    if (jump != 0) {
      event(EventKind::signal_timed_out, step, f.attempt, "timeout", why + ": the else block runs");
      f.stack.push_back(Value());
      f.pc = static_cast<uint32_t>(static_cast<int64_t>(f.pc) + jump);
      return forward(id);
    }
    event(EventKind::signal_timed_out, step, f.attempt, "timeout", why);
    // Nothing was sent anywhere: the await had no effect to compensate.
    event(EventKind::step_failed, step, f.attempt, "timeout", why);
    begin_compensation("timeout", fmt::format("step '{}': {}", step, why));
  }

  // ---- Forward progress ----------------------------------------------------------

  // Makes fiber `id` runnable: it runs to its next yield point when the
  // queue gets to it. A queue rather than a call, so that a foreach over a
  // million items whose body yields nothing does not recurse a million deep.
  void forward(uint32_t id) { queue_.push_back(id); }

  void drain() {
    for (size_t next = 0; next < queue_.size(); ++next) {
      const uint32_t id = queue_[next];
      // A fiber removed meanwhile, or a saga that failed, runs no further.
      if (s_.phase != Phase::kForward || s_.fiber(id) == nullptr) continue;
      advance(id);
    }
  }

  // Runs fiber `id` to its next yield point and decides what it means.
  void advance(uint32_t id) {
    Fiber& f = fiber(id);
    const Stop stop = run(lp_, s_, f, *env_.functions, &d_.emitted);
    touch(id);
    switch (stop) {
      case Stop::kInvoke:
        return invoked(id);
      // The verifier keeps COMPLETE in a saga's main code and END in a
      // branch's; a forged checkpoint can still put a fiber's pc in the
      // other's code (found by fuzz_checkpoint: the root reached an END and
      // looked up a parent it does not have).
      case Stop::kComplete:
        if (id != 0) {
          return begin_compensation("error", "internal error: a branch reached the saga's end");
        }
        s_.phase = Phase::kDone;
        // The output is in the instance row; the history does not repeat it.
        event(EventKind::completed);
        return;
      case Stop::kFail:
        return begin_compensation(s_.error_class, s_.error_message);
      case Stop::kFork:
        return fork(id);
      case Stop::kEnd:
        if (id == 0) {
          return begin_compensation("error",
                                    "internal error: the saga's main code reached a branch's end");
        }
        return ended(id);
      case Stop::kUndo:
      case Stop::kReturned:
        break;  // The verifier keeps these out of main code.
    }
    begin_compensation("error", "internal error: unexpected stop in main code");
  }

  void invoked(uint32_t id) {
    Fiber& f = fiber(id);
    const bytecode::Step& step = p_.steps[f.step];
    const bytecode::Action& action = p_.actions[step.action];
    f.wake_at_ms = 0;
    if (engine_performed(action)) {
      // A computed argument out of kind or range is an error of the saga's
      // code, found before anything runs: the step never started.
      if (std::string why = check_engine_args(action, f.args); !why.empty()) {
        f.wait = Wait::kNone;
        const uint32_t at =
            f.pc - bytecode::instruction_size(performer(action) == stdlib::Performer::kSignal
                                                  ? bytecode::Op::AWAIT
                                                  : bytecode::Op::INVOKE);
        const bytecode::LineEntry line = p_.line_at(at);
        const std::string name = step_name(lp_, f);
        return begin_compensation(
            std::string(kTypeError),
            line.line ? fmt::format("{}:{}: step '{}': {}", p_.source_name, line.line, name, why)
                      : fmt::format("step '{}': {}", name, why));
      }
      if (performer(action) == stdlib::Performer::kSleep) {
        f.wake_at_ms = sleep_until(env_.now_ms, f.args);
      }
      // An await's timer is its timeout: what fires there is
      // signal_timed_out(), unless a signal came first.
      if (performer(action) == stdlib::Performer::kSignal) {
        const Value* t = f.args.find("timeout");
        f.wake_at_ms = env_.now_ms + static_cast<int64_t>(t && t->is_number() ? t->as_number() : 0);
      }
    }
    event(EventKind::step_started, step_name(lp_, f), 1);
    ready(id);
  }

  // `log` writes its line to the history; its level (checked against
  // actions.def) rides in the event's data, info, the default, left out.
  void log_line(const Fiber& f, const std::string& name) {
    const Value* m = f.args.find("message");
    const Value* level = f.args.find("level");
    std::string data;
    if (level && level->is_string() && level->as_string() != "info") {
      data = fmt::format(R"({{"level":"{}"}})", level->as_string());
    }
    event(EventKind::log, name, f.attempt, {}, m ? m->to_text() : std::string(), std::move(data));
  }

  // ---- Fibers ----------------------------------------------------------------------

  // FORK: the fiber waits at the JOIN; its block's fibers start (all
  // branches, or the first `max` items) and run to their first yield point.
  void fork(uint32_t id) {
    Fiber& f = fiber(id);
    const bytecode::Block& block = p_.blocks[f.join_block];
    f.wait = Wait::kJoin;
    const bool parallel = block.kind == bytecode::Block::Kind::Parallel;
    const size_t n = parallel ? block.branches.size() : f.detail->items.size();
    const size_t first = parallel || block.max == 0 ? n : std::min<size_t>(block.max, n);
    std::string what;
    if (parallel) {
      for (const bytecode::Branch& b : block.branches) what += (what.empty() ? "" : ", ") + b.name;
      what = fmt::format("parallel: {}", what);
    } else {
      what =
          fmt::format("foreach {}: {} item{}{}", block.branches[0].name, n, n == 1 ? "" : "s",
                      block.max == 0 || block.max >= n ? std::string()
                                                       : fmt::format(", {} at a time", block.max));
    }
    // Every fiber of the block gets its id from next_fiber, never reused.
    if (n > kMaxFiberId - s_.next_fiber) {
      f.wait = Wait::kNone;
      f.join_block = bytecode::kNone;
      if (!f.detail->items.is_null()) f.detail.mut().items = Value();
      return begin_compensation(
          "error", fmt::format("{} would start {} fibers; this instance has started {}, and "
                               "the most it may is {}",
                               what, n, s_.next_fiber - 1, kMaxFiberId - 1));
    }
    event(EventKind::forked, f.detail->prefix + f.detail->suffix, 0, {}, what);
    if (n == 0) return join(id);
    // All are created before any runs: a branch that fails at once must find
    // its siblings to abandon.
    for (size_t i = 0; i < first; ++i) forward(spawn(id, static_cast<uint32_t>(i)));
  }

  // Creates the fiber of branch or item `index` of the block fiber `parent`
  // waits for; returns its id.
  uint32_t spawn(uint32_t parent_id, uint32_t index) {
    const Fiber& parent = fiber(parent_id);
    const bytecode::Block& block = p_.blocks[parent.join_block];
    Fiber c;
    c.id = s_.next_fiber++;
    c.parent = parent_id;
    c.block = parent.join_block;
    c.index = index;
    FiberDetail& d = c.detail.mut();
    d.prefix = parent.detail->prefix;
    d.suffix = parent.detail->suffix;
    if (block.kind == bytecode::Block::Kind::Parallel) {
      d.prefix += block.branches[index].name + "/";
      c.pc = block.branches[index].entry_pc;
    } else {
      d.suffix += fmt::format("[{}]", index);
      c.pc = block.branches[0].entry_pc;
      d.locals.emplace_back(block.item_slot, parent.detail->items.list_items()[index]);
    }
    const uint32_t id = c.id;
    s_.fibers.push_back(std::move(c));  // Ids grow: the vector stays in id order.
    touch(id);
    touch(0);  // next_fiber.
    return id;
  }

  // The ids of the fibers `parent` forked, in branch or item order.
  std::vector<uint32_t> children_of(uint32_t parent) const {
    std::vector<uint32_t> ids;
    for (const Fiber& f : s_.fibers) {
      if (f.id != 0 && f.parent == parent) ids.push_back(f.id);
    }
    return ids;
  }

  // END: the fiber is done; the next item starts, or the block joins.
  void ended(uint32_t id) {
    Fiber& f = fiber(id);
    f.ended = true;
    f.wait = Wait::kNone;
    const uint32_t parent_id = f.parent;
    const Fiber& parent = fiber(parent_id);
    const bytecode::Block& block = p_.blocks[parent.join_block];
    const std::vector<uint32_t> children = children_of(parent_id);
    const size_t total = block.kind == bytecode::Block::Kind::Parallel
                             ? block.branches.size()
                             : parent.detail->items.size();
    if (children.size() < total) {
      // A foreach with items left: the next one takes this one's place.
      const uint32_t next = spawn(parent_id, static_cast<uint32_t>(children.size()));
      return forward(next);
    }
    for (uint32_t c : children) {
      if (!fiber(c).ended) return;  // Others still run.
    }
    join(parent_id);
  }

  // Every fiber of the block ended: their bindings become the parent's (a
  // foreach's collected as lists), their logs one parallel group of the
  // parent's log, and the parent goes on after its JOIN.
  void join(uint32_t parent_id) {
    const std::vector<uint32_t> children = children_of(parent_id);
    const bytecode::Block& block = p_.blocks[fiber(parent_id).join_block];
    Completed group;
    std::vector<std::vector<Value>> collected(block.collect.size());
    for (uint32_t c : children) {
      Fiber& child = fiber(c);
      if (block.kind == bytecode::Block::Kind::Parallel) {
        for (auto& [slot, value] : child.detail->locals) {
          store_slot(s_, fiber(parent_id), slot, value);
        }
      } else {
        for (size_t i = 0; i < block.collect.size(); ++i) {
          collected[i].push_back(load_own(child, block.collect[i].body));
        }
      }
      if (!child.completed.empty()) group.detail.mut().group.push_back(std::move(child.completed));
    }
    for (size_t i = 0; i < block.collect.size(); ++i) {
      store_slot(s_, fiber(parent_id), block.collect[i].list, Value::list(std::move(collected[i])));
    }
    remove(children);
    Fiber& parent = fiber(parent_id);
    if (!group.detail->group.empty()) parent.completed.push_back(std::move(group));
    event(EventKind::joined, parent.detail->prefix + parent.detail->suffix, 0, {},
          fmt::format("{} fiber{}", children.size(), children.size() == 1 ? "" : "s"));
    parent.wait = Wait::kNone;
    parent.join_block = bytecode::kNone;
    if (!parent.detail->items.is_null()) parent.detail.mut().items = Value();
    parent.pc += bytecode::instruction_size(bytecode::Op::JOIN);
    touch(parent_id);
    forward(parent_id);
  }

  // The value a fiber bound itself (null when it did not bind the slot).
  static Value load_own(const Fiber& f, uint32_t slot) {
    for (const auto& [s, v] : f.detail->locals) {
      if (s == slot) return v;
    }
    return Value();
  }

  void remove(const std::vector<uint32_t>& ids) {
    for (uint32_t id : ids) {
      add_unique(d_.removed, id);
      add_unique(d_.stopped, id);
      d_.changed.erase(std::remove(d_.changed.begin(), d_.changed.end(), id), d_.changed.end());
      d_.ready.erase(std::remove(d_.ready.begin(), d_.ready.end(), id), d_.ready.end());
    }
    s_.fibers.erase(std::remove_if(s_.fibers.begin() + 1, s_.fibers.end(),
                                   [&](const Fiber& f) {
                                     return std::find(ids.begin(), ids.end(), f.id) != ids.end();
                                   }),
                    s_.fibers.end());
  }

  // ---- The compensation log ----------------------------------------------------------

  // Records a step on `f`'s log (completed, or in doubt). A child fiber's
  // slots are gone once it joins, so its entry carries the undo's arguments,
  // computed now from what the fiber sees (the compiler proves an undo uses
  // only values bound by the time its step ends). The root's slots are bound
  // once and kept to the end, so a root entry leaves them to be computed
  // when the undo runs, as before fibers: nothing more to run or to
  // checkpoint on the path of a saga that completes.
  void record(Fiber& f, uint32_t step_index, bool in_doubt) {
    const bytecode::Step& step = p_.steps[step_index];
    Completed c;
    c.step = step_index;
    c.in_doubt = in_doubt;
    if (f.id == 0) {
      f.completed.push_back(std::move(c));
      return;
    }
    CompletedDetail& d = c.detail.mut();
    d.name = f.detail->prefix + step.name + f.detail->suffix;
    d.args_ready = true;
    if (step.undo_pc != bytecode::kNone) {
      Fiber scratch;
      scratch.id = f.id;
      scratch.parent = f.parent;
      scratch.detail.mut().locals = f.detail->locals;
      scratch.pc = step.undo_pc;
      // run() reports a runtime error in the instance's error fields, which
      // are not this one's to set.
      std::string cls = std::move(s_.error_class), msg = std::move(s_.error_message);
      const Stop stop = run(lp_, s_, scratch, *env_.functions);
      if (stop == Stop::kUndo) {
        d.args = std::move(scratch.args);
      } else {
        d.args_error_class = stop == Stop::kFail ? s_.error_class : "error";
        d.args_error = stop == Stop::kFail ? s_.error_message : "the undo block did not undo";
      }
      s_.error_class = std::move(cls);
      s_.error_message = std::move(msg);
    }
    f.completed.push_back(std::move(c));
  }

  // Gives up every waiting fiber: an attempt that was out, or after an
  // earlier one in doubt, leaves its step in doubt; then each fiber's log
  // joins its parent's as a parallel group (deepest first), and the children
  // are gone.
  void abandon_all(const std::string& cls, const std::string& msg) {
    for (Fiber& f : s_.fibers) {
      if (f.wait == Wait::kAction) {
        const bool in_doubt = f.attempt_out || f.earlier_attempt_in_doubt;
        event(EventKind::step_abandoned, step_name(lp_, f), f.attempt, cls,
              in_doubt ? msg : msg + " (nothing was sent: the step is not compensated)");
        if (in_doubt) record(f, f.step, true);
        add_unique(d_.stopped, f.id);
      }
      f.attempt_out = false;
      f.wait = Wait::kNone;
      f.wake_at_ms = 0;
    }
    // Deepest first: a fiber gathers its children's logs before its own
    // log is gathered by its parent.
    std::vector<std::pair<int, uint32_t>> by_depth;
    for (size_t i = 1; i < s_.fibers.size(); ++i) {
      int depth = 0;
      for (const Fiber* f = &s_.fibers[i]; f->id != 0; f = s_.fiber(f->parent)) ++depth;
      by_depth.emplace_back(depth, s_.fibers[i].id);
    }
    std::sort(by_depth.begin(), by_depth.end(), std::greater<>());
    std::vector<uint32_t> gathered;
    for (const auto& [depth, id] : by_depth) {
      if (std::find(gathered.begin(), gathered.end(), id) != gathered.end()) continue;
      const uint32_t parent = fiber(id).parent;
      Completed group;
      for (uint32_t c : children_of(parent)) {
        Fiber& child = fiber(c);
        if (!child.completed.empty())
          group.detail.mut().group.push_back(std::move(child.completed));
        child.completed.clear();
        gathered.push_back(c);
      }
      if (!group.detail->group.empty()) fiber(parent).completed.push_back(std::move(group));
    }
    remove(gathered);
    Fiber& root = fiber(0);
    root.join_block = bytecode::kNone;
    if (!root.detail->items.is_null()) root.detail.mut().items = Value();
    touch(0);
  }

  // The pivot step the root completed, or that may have had its effect (in
  // doubt), if any: past it nothing is compensated.
  const Completed* passed_pivot() {
    for (const Completed& c : fiber(0).completed) {
      if (c.step != bytecode::kNone && p_.steps[c.step].kind == bytecode::StepKind::Pivot) {
        return &c;
      }
    }
    return nullptr;
  }

  void begin_compensation(std::string cls, std::string msg) {
    abandon_all(cls, msg);
    // Past the point of no return (a runtime error or a cancel after the
    // pivot; the compiler leaves no other way to fail there), and also when
    // the pivot may have had its effect (in doubt: it timed out, or was out
    // at a cancel, the deadline or a crash), the steps keep their effects:
    // the steps before a pivot are compensated only when it certainly had
    // none. The log is dropped and the saga ends at once, `failed` or
    // `cancelled`, saying why.
    if (const Completed* pivot = passed_pivot()) {
      const std::string& name = p_.steps[pivot->step].name;
      msg += pivot->in_doubt
                 ? fmt::format(
                       " (the pivot step '{}' may have had its effect: nothing is "
                       "compensated)",
                       name)
                 : fmt::format(" (after the pivot step '{}': nothing is compensated)", name);
      fiber(0).completed.clear();
    }
    s_.error_class = std::move(cls);
    s_.error_message = std::move(msg);
    s_.phase = Phase::kCompensating;
    // Decides between `compensated` and `failed` at the end.
    s_.had_effects = !fiber(0).completed.empty();
    // Without effects there is nothing to compensate: next_undo() records
    // the final `failed` or `cancelled` at once.
    if (s_.had_effects) event(EventKind::compensating, {}, 0, s_.error_class, s_.error_message);
    next_undo();
  }

  // Pops the root's log until an undo must run, or finishes. A parallel
  // group is undone log by log (the last first), each newest first: a valid
  // order of the parallel composition of the branches' compensations.
  void next_undo() {
    Fiber& r = fiber(0);
    touch(0);
    while (!r.completed.empty()) {
      Completed c = std::move(r.completed.back());
      r.completed.pop_back();
      if (c.step == bytecode::kNone) {
        for (std::vector<Completed>& log : c.detail.mut().group) {
          for (Completed& e : log) r.completed.push_back(std::move(e));
        }
        continue;
      }
      const bytecode::Step& step = p_.steps[c.step];
      const CompletedDetail& cd = *c.detail;
      const std::string name = cd.name.empty() ? step.name : cd.name;
      if (step.undo_pc == bytecode::kNone) {
        event(EventKind::undo_skipped, name, 0, {}, "the step has no undo");
        continue;
      }
      Value args;
      std::string args_error_class = cd.args_error_class, args_error = cd.args_error;
      if (cd.args_ready && cd.args_error.empty()) {
        args = cd.args;
      } else if (!cd.args_ready) {
        // A root entry (or one from a checkpoint before version 3):
        // computed from the root's slots now.
        Fiber scratch;
        scratch.pc = step.undo_pc;
        std::string cls = std::move(s_.error_class), msg = std::move(s_.error_message);
        const Stop stop = run(lp_, s_, scratch, *env_.functions);
        if (stop == Stop::kUndo) {
          args = std::move(scratch.args);
        } else {
          args_error_class = s_.error_class;
          args_error = s_.error_message;
        }
        s_.error_class = std::move(cls);
        s_.error_message = std::move(msg);
      }
      r.step = c.step;
      if (!cd.name.empty() || !r.detail->undo_name.empty()) r.detail.mut().undo_name = cd.name;
      r.args = args;
      r.attempt = 1;
      r.wake_at_ms = 0;
      r.wait = Wait::kUndo;
      if (!args_error.empty()) {
        // The undo's arguments could not be computed: an operator must look.
        return stuck(name, args_error_class, args_error,
                     "cannot compute the undo's arguments: " + args_error);
      }
      const bytecode::Action& undo = p_.actions[step.undo_action];
      if (engine_performed(undo)) {
        if (std::string why = check_engine_args(undo, r.args); !why.empty()) {
          return stuck(name, std::string(kTypeError), why,
                       "the undo's arguments are invalid: " + why);
        }
        // An undo that sleeps waits like a step that does.
        if (performer(undo) == stdlib::Performer::kSleep) {
          r.wake_at_ms = sleep_until(env_.now_ms, r.args);
        }
      }
      event(EventKind::undo_started, name, 1, {}, c.in_doubt ? "step was in doubt" : "");
      return ready(0);
    }
    s_.phase = Phase::kDone;
    r.wait = Wait::kNone;
    const InstanceStatus final = status_of(s_);
    d_.events.push_back(
        {HistoryEvent{env_.now_ms, to_string(final), {}, 0, s_.error_class, s_.error_message, {}},
         false});
  }

  // A compensation gave up: the root keeps waiting at that undo (status
  // `stuck`) with a dead letter, for an operator. Nothing is dropped.
  void stuck(const std::string& name, const std::string& cls, const std::string& event_message,
             const std::string& letter) {
    event(EventKind::stuck, name, fiber(0).attempt, cls, event_message);
    d_.dead_letter = DeadLetter{{}, name, env_.now_ms, cls, letter};
    s_.stuck = true;
    touch(0);
  }

  // ---- Helpers -------------------------------------------------------------------------

  int64_t backoff(const bytecode::RetryPolicy& p, uint32_t retry) const {
    const auto ms = static_cast<int64_t>(bytecode::backoff_ms(p, retry));
    if (p.jitter == bytecode::Jitter::None || ms == 0) return ms;
    if (p.jitter == bytecode::Jitter::Full) return env_.random ? env_.random(ms) : ms;
    return ms / 2 + (env_.random ? env_.random(ms - ms / 2) : (ms - ms / 2) / 2);
  }

  Fiber& fiber(uint32_t id) { return *s_.fiber(id); }

  void touch(uint32_t id) {
    if (id == 0) {
      d_.instance_changed = true;
    } else {
      add_unique(d_.changed, id);
    }
  }

  void ready(uint32_t id) {
    add_unique(d_.ready, id);
    touch(id);
  }

  void event(EventKind kind, std::string step = {}, uint32_t attempt = 0, std::string cls = {},
             std::string message = {}, std::string data = {}) {
    d_.events.push_back({HistoryEvent{env_.now_ms, std::string(event_name(kind)), std::move(step),
                                      attempt, std::move(cls), std::move(message), std::move(data)},
                         event_info(kind).storage == EventStorage::kLive});
  }

  const LinkedProgram& lp_;
  const bytecode::Program& p_;
  InstanceState& s_;
  const Env& env_;
  Decision d_;
  // Fibers to run (forward()), first in first out: drain() walks it while
  // advance() appends. Most decisions run one or two: inline, no heap.
  Decision::Fibers queue_;
};

}  // namespace

Decision begin(const LinkedProgram& program, InstanceState& state, const Env& env) {
  Machine m(program, state, env);
  m.begin();
  return m.finish();
}

Decision attempt_ended(const LinkedProgram& program, InstanceState& state, uint32_t fiber,
                       const Outcome& outcome, const Env& env) {
  Machine m(program, state, env);
  m.attempt_ended(fiber, outcome);
  return m.finish();
}

Decision message_arrived(const LinkedProgram& program, InstanceState& state,
                         const InboxMessage& message, const Env& env) {
  Machine m(program, state, env);
  m.message(message);
  return m.finish();
}

bool waits_for_signal(const LinkedProgram& program, const Fiber& f) {
  return f.wait == Wait::kAction && f.step < program.program.steps.size() &&
         bytecode::is_await_step(program.program, program.program.steps[f.step]);
}

namespace {

// Calls `f` with each event type of an await's signal name ("event:a,b").
template <class F>
void for_each_event_type(std::string_view awaited, F&& f) {
  if (!awaited.starts_with(bytecode::kEventSignalPrefix)) return;
  awaited.remove_prefix(bytecode::kEventSignalPrefix.size());
  while (!awaited.empty()) {
    const size_t comma = std::min(awaited.find(','), awaited.size());
    f(awaited.substr(0, comma));
    awaited.remove_prefix(std::min(comma + 1, awaited.size()));
  }
}

// Whether an await of the signal `awaited` takes the signal `name`: the
// same name, or for `await event` one of its types.
bool awaits_signal(std::string_view awaited, std::string_view name) {
  if (awaited == name) return true;
  if (!name.starts_with(bytecode::kEventSignalPrefix)) return false;
  name.remove_prefix(bytecode::kEventSignalPrefix.size());
  bool found = false;
  for_each_event_type(awaited, [&](std::string_view type) { found = found || type == name; });
  return found;
}

}  // namespace

std::optional<uint32_t> awaiting_fiber(const LinkedProgram& program, const InstanceState& state,
                                       std::string_view name, std::string_view data_json) {
  if (state.phase != Phase::kForward || state.paused || state.stuck) return std::nullopt;
  std::optional<nlohmann::json> data;  // Parsed for the first `where`.
  for (const Fiber& f : state.fibers) {
    if (!waits_for_signal(program, f)) continue;
    const Value* n = f.args.find("name");
    if (!n || !n->is_string() || !awaits_signal(n->as_string(), name)) continue;
    const Value* where = f.args.find("where");
    if (where == nullptr) return f.id;
    if (!data) data = nlohmann::json::parse(data_json, nullptr, false);
    if (event_fits(where->to_json(), *data)) return f.id;
  }
  return std::nullopt;
}

bool event_fits(const nlohmann::json& where, const nlohmann::json& event) {
  if (!where.is_object()) return false;
  for (const auto& [path, want] : where.items()) {
    const nlohmann::json* at = &event;
    for (size_t begin = 0; at != nullptr && begin <= path.size();) {
      size_t end = path.find('.', begin);
      if (end == std::string::npos) end = path.size();
      const std::string name = path.substr(begin, end - begin);
      at = at->is_object() && at->contains(name) ? &at->at(name) : nullptr;
      begin = end + 1;
    }
    if (at == nullptr || *at != want) return false;
  }
  return true;
}

std::vector<EventWait> event_waits(const LinkedProgram& program, const InstanceState& state) {
  std::vector<EventWait> out;
  if (state.phase != Phase::kForward) return out;
  for (const Fiber& f : state.fibers) {
    if (!waits_for_signal(program, f)) continue;
    const Value* n = f.args.find("name");
    if (!n || !n->is_string()) continue;
    const Value* where = f.args.find("where");
    const std::string match = where ? where->to_json_text() : std::string("{}");
    for_each_event_type(n->as_string(), [&](std::string_view type) {
      out.push_back({f.id, std::string(type), match});
    });
  }
  return out;
}

Decision signal_arrived(const LinkedProgram& program, InstanceState& state, uint32_t fiber,
                        const InboxMessage& message, const std::string& data_json, const Env& env) {
  Machine m(program, state, env);
  m.signal_arrived(fiber, message, data_json);
  return m.finish();
}

Decision signal_timed_out(const LinkedProgram& program, InstanceState& state, uint32_t fiber,
                          const Env& env) {
  Machine m(program, state, env);
  m.signal_timed_out(fiber);
  return m.finish();
}

Decision interrupt(const LinkedProgram& program, InstanceState& state, std::string error_class,
                   std::string message, bool cancel, const Env& env) {
  Machine m(program, state, env);
  state.cancelled = cancel;
  m.begin_compensation(std::move(error_class), std::move(message));
  return m.finish();
}

namespace {

// resumed() and reloaded(): the committed state's waits start again, with
// nothing to commit first.
Decision rearmed(const LinkedProgram& program, InstanceState& state, const Env& env, bool restart) {
  Machine m(program, state, env);
  if (restart) {
    m.resumed();
  } else {
    m.rearm();
  }
  Decision d = m.finish();
  d.commit = false;
  return d;
}

}  // namespace

Decision resumed(const LinkedProgram& program, InstanceState& state, const Env& env) {
  return rearmed(program, state, env, true);
}

Decision reloaded(const LinkedProgram& program, InstanceState& state, const Env& env) {
  return rearmed(program, state, env, false);
}

}  // namespace saga::runtime
