// The scenario runner (runner.hpp): the checks of a test file against its
// program, the discrete-event loop that runs one test in virtual time, and
// the judging of its expectations.
#include "runtime/scenario/runner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <queue>
#include <set>
#include <sstream>

#include "grammar/suggest.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/sim/sim.hpp"
#include "saga/events.hpp"
#include "saga/store.hpp"
#include "stdlib/table.hpp"

namespace saga::scenario {
namespace {

using runtime::Decision;
using runtime::Fiber;
using runtime::Outcome;
using runtime::Phase;
using runtime::Wait;

// The step a call's key names: "flight/book[2]/undo" -> "book".
std::string step_of_key(std::string key) {
  if (key.size() > 5 && key.ends_with("/undo")) key.resize(key.size() - 5);
  if (size_t slash = key.rfind('/'); slash != std::string::npos) key = key.substr(slash + 1);
  if (size_t bracket = key.find('['); bracket != std::string::npos) key.resize(bracket);
  return key;
}

std::string help_for(std::string_view name, const std::vector<std::string>& names) {
  return did_you_mean(name, names);
}

const char* const kStatuses[] = {
    "completed", "compensated",  "failed", "cancelled", "stuck",
    "running",   "compensating", "paused"};  // A `then: pause` policy gave up: the run ends there.

// ---- Checks ------------------------------------------------------------------------

// Whether `a` is the built-in action of an await step (`await signal`).
bool is_signal(const bytecode::Action& a) {
  return runtime::performer(a) == stdlib::Performer::kSignal;
}

class Checker {
 public:
  Checker(const File& file, const bytecode::Program& p, Diagnostics& diags)
      : file_(file), p_(p), diags_(diags) {
    for (const bytecode::Saga& s : p.sagas) sagas_.push_back(s.name);
    for (const bytecode::Action& a : p.actions) {
      if (!runtime::engine_performed(a) || is_signal(a)) actions_.push_back(a.name);
    }
    for (const bytecode::Step& s : p.steps) steps_.push_back(s.name);
    for (const EventInfo& e : kEvents) events_.emplace_back(e.name);
    for (const char* s : kStatuses) statuses_.emplace_back(s);
  }

  void run() {
    if (file_.tests.empty()) {
      diags_.warning(Span{0, 0}, "this file has no tests",
                     "add one: test \"happy path\" { start SAGA {...} expect status completed }");
    }
    if (file_.start) start(*file_.start);
    for (const AnswerRule& a : file_.answers) target(a.target);
    std::set<std::string> names;
    for (const Test& t : file_.tests) {
      if (!names.insert(t.name).second) {
        diags_.error(t.name_span, fmt::format("a second test named '{}'", t.name),
                     "give every test its own name: --filter and the reports name them");
      }
      if (t.start) {
        start(*t.start);
      } else if (!file_.start) {
        diags_.error(t.name_span, fmt::format("test '{}' starts no saga", t.name),
                     "add `start SAGA {...input...}` to the test, or one outside the tests for all "
                     "of them");
      }
      for (const AnswerRule& a : t.answers) target(a.target);
      if (t.cancel && t.cancel->during) target(t.cancel->target);
      if (t.expects.empty()) {
        diags_.error(t.name_span, fmt::format("test '{}' expects nothing: it cannot fail", t.name),
                     "add what the saga must do, such as `expect status completed`");
      }
      for (const Expect& e : t.expects) expect(e);
    }
  }

 private:
  void start(const Start& s) {
    const uint32_t saga = p_.find_saga(s.saga);
    if (saga == bytecode::kNone) {
      diags_.error(s.saga_span, fmt::format("{} has no saga '{}'", p_.source_name, s.saga),
                   help_for(s.saga, sagas_));
      return;
    }
    auto input = Value::from_json(s.input);
    Status valid =
        input.ok() ? runtime::validate_input(p_.sagas[saga], input.value()) : input.status();
    if (!valid.ok()) diags_.error(s.input_span, valid.message());
  }

  void target(const Target& t) {
    if (t.key) {
      const std::string step = step_of_key(t.name);
      if (std::find(steps_.begin(), steps_.end(), step) == steps_.end()) {
        diags_.error(t.span, fmt::format("{} has no step '{}'", p_.source_name, step),
                     help_for(step, steps_));
      }
      return;
    }
    const auto it = std::find_if(p_.actions.begin(), p_.actions.end(),
                                 [&](const bytecode::Action& a) { return a.name == t.name; });
    if (it == p_.actions.end()) {
      diags_.error(t.span, fmt::format("{} calls no action '{}'", p_.source_name, t.name),
                   help_for(t.name, actions_));
    } else if (runtime::engine_performed(*it) && !is_signal(*it)) {
      diags_.error(t.span,
                   fmt::format("'{}' is performed by the engine itself: there is nothing to answer "
                               "or expect",
                               t.name),
                   "its time passes virtually; `expect history` shows what it did");
    }
  }

  void expect(const Expect& e) {
    switch (e.kind) {
      case Expect::Kind::kStatus:
        if (std::find(statuses_.begin(), statuses_.end(), e.status) == statuses_.end()) {
          std::string help = help_for(e.status, statuses_);
          diags_.error(e.value_span, fmt::format("'{}' is not a status", e.status),
                       help.empty()
                           ? "completed, compensated, failed, cancelled, stuck, paused, running "
                             "or compensating"
                           : help);
        }
        break;
      case Expect::Kind::kCalls:
      case Expect::Kind::kUndos:
        for (const CallPattern& c : e.calls) target(c.target);
        break;
      case Expect::Kind::kHistory:
        for (const EventPattern& h : e.history) {
          if (find_event(h.kind) == nullptr) {
            diags_.error(h.span, fmt::format("'{}' is not a kind of history event", h.kind),
                         help_for(h.kind, events_));
          }
        }
        break;
      default:
        break;
    }
  }

  const File& file_;
  const bytecode::Program& p_;
  Diagnostics& diags_;
  std::vector<std::string> sagas_, actions_, steps_, events_, statuses_;
};

// ---- Running -------------------------------------------------------------------------

// A call the saga made: one attempt of a do or an undo, as a service sees it.
struct Call {
  std::string action, key;
  bool undo = false;
  uint32_t attempt = 0;
  nlohmann::json args;
};

// JSON as the reports print it: one line (or indented), and a string the
// saga built that is not UTF-8 shown with U+FFFD instead of throwing.
std::string text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string describe(const Target& t) {
  return t.key ? text(nlohmann::json(t.name)) : t.name;
}

bool target_matches(const Target& t, const Call& c) {
  return t.key ? t.name == c.key : t.name == c.action;
}

class Runner {
 public:
  Runner(const runtime::LinkedProgram& lp, const File& file, const Test& test)
      : lp_(lp), p_(lp.program), file_(file), test_(test) {
    options_.jitter = true;
  }

  TestResult run() {
    const auto t0 = std::chrono::steady_clock::now();
    const Start& start = test_.start ? *test_.start : *file_.start;
    const uint32_t saga = p_.find_saga(start.saga);
    Value input = Value::from_json(start.input).value();
    handle(sim::begin(lp_, run_, saga, input, options_));
    if (run_.state.deadline_ms != 0 && run_.state.phase == Phase::kForward) {
      schedule(run_.state.deadline_ms, Event::kDeadline);
    }
    if (test_.cancel && !test_.cancel->during) {
      schedule(sim::kStartMs + static_cast<int64_t>(test_.cancel->after_ms), Event::kCancel);
    }
    loop();
    judge();
    result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(result_);
  }

 private:
  // Something that happens at a virtual time; events at one time happen in
  // the order they were scheduled.
  struct Event {
    enum Kind : uint8_t { kDispatch, kAnswer, kDeadline, kCancel };
    int64_t at = 0;
    uint64_t seq = 0;
    Kind kind = kDispatch;
    uint32_t fiber = 0;
    uint64_t token = 0;  // The wait of the fiber it belongs to.
    Outcome outcome;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  void schedule(int64_t at, Event::Kind kind, uint32_t fiber = 0, uint64_t token = 0,
                Outcome outcome = {}) {
    queue_.push(Event{at, ++seq_, kind, fiber, token, std::move(outcome)});
  }

  // What the engine does with a decision once it is committed: its events
  // join the history (a live-only one only when alone, as the store keeps
  // them), given-up waits lose their pending answers, ready fibers start.
  void handle(Decision d) {
    ++result_.transitions;
    elapsed_ = run_.now - sim::kStartMs;
    for (const Decision::Event& e : d.events) {
      if (!e.live_only || d.events.size() == 1) history_.push_back(e.event);
    }
    for (uint32_t id : d.stopped) tokens_.erase(id);
    for (uint32_t id : d.removed) tokens_.erase(id);
    for (uint32_t id : d.ready) {
      const Fiber* f = run_.state.fiber(id);
      if (f == nullptr) continue;
      tokens_[id] = ++next_token_;
      // An await's wake time is its timeout: it is "called" (answered by
      // the test) at once, and its timeout comes from the step's.
      const int64_t at = runtime::waits_for_signal(lp_, *f) ? run_.now : f->wake_at_ms;
      schedule(std::max(run_.now, at), Event::kDispatch, id, next_token_);
    }
    if (d.final()) final_ = true;
  }

  void loop() {
    while (!final_ && !queue_.empty()) {
      if (result_.transitions >= kMaxTransitions) {
        fail(test_.name_span,
             fmt::format("the saga did not end within {} transitions", kMaxTransitions));
        return;
      }
      Event ev = queue_.top();
      queue_.pop();
      if (ev.kind == Event::kDispatch || ev.kind == Event::kAnswer) {
        auto it = tokens_.find(ev.fiber);
        if (it == tokens_.end() || it->second != ev.token) continue;  // Given up meanwhile.
      }
      run_.now = std::max(run_.now, ev.at);
      switch (ev.kind) {
        case Event::kDeadline:
          // A saga past its pivot step has no deadline any more (the machine
          // cleared it): the event is void.
          if (run_.state.phase == Phase::kForward && run_.state.deadline_ms != 0 &&
              run_.now >= run_.state.deadline_ms) {
            const bytecode::Saga& saga = p_.sagas[run_.state.saga];
            handle(sim::deadline(
                lp_, run_,
                fmt::format("deadline of {} exceeded", bytecode::format_duration(saga.deadline_ms)),
                options_));
          }
          break;
        case Event::kCancel:
          cancel();
          break;
        case Event::kDispatch:
          dispatch(ev.fiber);
          break;
        case Event::kAnswer:
          tokens_.erase(ev.fiber);
          handle(sim::attempt_ended(lp_, run_, ev.fiber, ev.outcome, options_));
          break;
      }
      // Inbox: when the language has signals and events, a test's `signal`
      // clause becomes an event here, delivered as an inbox message.
    }
    if (!final_ && result_.failures.empty()) {
      result_.warnings.push_back(Diagnostic{
          Severity::Warning,
          test_.name_span,
          fmt::format("the saga waits for an answer that never comes (no timeout, no deadline): "
                      "it is still {}",
                      to_string(runtime::status_of(run_.state))),
          {}});
    }
  }

  void cancel() {
    cancelled_ = true;
    if (run_.state.phase == Phase::kForward) {
      handle(sim::cancel(lp_, run_, options_));
    } else {
      result_.warnings.push_back(
          Diagnostic{Severity::Warning,
                     test_.cancel->span,
                     fmt::format("the cancel came when the saga was {}: it had no effect",
                                 to_string(runtime::status_of(run_.state))),
                     {}});
    }
  }

  // The rule that answers a call: the test's own before the file's, a
  // call's key before its action.
  const AnswerRule* rule_for(const Call& c) const {
    for (const std::vector<AnswerRule>* rules : {&test_.answers, &file_.answers}) {
      for (bool key : {true, false}) {
        for (const AnswerRule& r : *rules) {
          if (r.target.key == key && target_matches(r.target, c)) return &r;
        }
      }
    }
    return nullptr;
  }

  // Fiber `id` makes its attempt: an action the engine performs ends at
  // once; a call gets the test's answer, which arrives after its delay, or
  // its timeout when the answer comes later or never.
  void dispatch(uint32_t id) {
    Fiber* fiber = run_.state.fiber(id);
    if (fiber == nullptr || (fiber->wait != Wait::kAction && fiber->wait != Wait::kUndo)) return;
    Fiber& f = *fiber;
    const bytecode::Step& step = p_.steps[f.step];
    const bool undo = f.wait == Wait::kUndo;
    const bytecode::Action& action = p_.actions[undo ? step.undo_action : step.action];
    // An await is answered like a call (`answer signal ok DATA`: the signal
    // and its data; `never`: none, so its timeout fires).
    if (runtime::engine_performed(action) && !is_signal(action)) {
      Outcome ok;
      ok.ok = true;
      tokens_.erase(id);
      return handle(sim::attempt_ended(lp_, run_, id, ok, options_));
    }
    Call call{action.name, runtime::step_name(lp_, f) + (undo ? "/undo" : ""), undo, f.attempt,
              f.args.to_json()};
    f.attempt_out = true;
    Outcome out;
    int64_t after = 0;
    bool never = false;
    const AnswerRule* rule = rule_for(call);
    if (rule == nullptr) {
      if (undo) {
        out.ok = true;  // An undo the test does not answer succeeds.
      } else {
        if (unanswered_.insert(call.action).second) {
          fail(
              test_.name_span,
              fmt::format("'{}' was called (step '{}', attempt {}) but the test gives it no answer",
                          call.action, call.key, call.attempt),
              fmt::format("answer it: `answer {} ok {{...}}`, or for this call only `answer "
                          "\"{}\" ...`",
                          call.action, call.key));
        }
        out.error_class = "unsupported";
        out.message = "the test gives no answer";
      }
    } else {
      used_.insert(rule);
      const Answer& a = rule->answers[std::min<size_t>(f.attempt, rule->answers.size()) - 1];
      after = static_cast<int64_t>(a.after_ms);
      switch (a.kind) {
        case Answer::Kind::kOk: {
          out.ok = true;
          auto v = Value::from_json(a.result);
          out.result = v.ok() ? std::move(v).value() : Value();
          break;
        }
        case Answer::Kind::kFail:
          out.error_class = a.error_class;
          out.message = a.message.empty() ? a.error_class + " (answered by the test)" : a.message;
          out.not_sent = a.unsent;
          break;
        case Answer::Kind::kNever:
          never = true;
          break;
      }
    }
    calls_.push_back(std::move(call));
    const int64_t timeout = runtime::attempt_timeout_ms(p_, step, action);
    const uint64_t token = tokens_[id];
    if (never || (timeout > 0 && after >= timeout)) {
      if (timeout > 0) {
        Outcome late;
        late.error_class = "timeout";
        late.message = fmt::format("no answer within {}", bytecode::format_duration(timeout));
        schedule(run_.now + timeout, Event::kAnswer, id, token, std::move(late));
      }
    } else {
      schedule(run_.now + after, Event::kAnswer, id, token, std::move(out));
    }
    if (test_.cancel && test_.cancel->during && !cancelled_ &&
        target_matches(test_.cancel->target, calls_.back())) {
      cancel();
    }
  }

  void fail(Span span, std::string message, std::string help = {},
            std::vector<std::string> diff = {}) {
    result_.failures.push_back(Failure{
        Diagnostic{Severity::Error, span, std::move(message), std::move(help)}, std::move(diff)});
  }

  // ---- Judging -----------------------------------------------------------------------

  std::string error_text() const {
    const runtime::InstanceState& s = run_.state;
    return s.error_class.empty() ? std::string()
                                 : fmt::format("{}: {}", s.error_class, s.error_message);
  }

  void judge() {
    const runtime::InstanceState& s = run_.state;
    result_.status = to_string(runtime::status_of(s));
    result_.elapsed_ms = elapsed_;
    const std::string why = error_text().empty() ? "" : "the saga failed with " + error_text();
    for (const Expect& e : test_.expects) {
      switch (e.kind) {
        case Expect::Kind::kStatus:
          if (e.status != result_.status) {
            fail(e.span, fmt::format("expected status {}, got {}", e.status, result_.status), why);
          }
          break;
        case Expect::Kind::kOutput: {
          const nlohmann::json actual = s.output.to_json();
          if (e.output != actual) {
            fail(e.span,
                 actual.is_null()
                     ? fmt::format("expected an output, but the saga ended {}", result_.status)
                     : "the output differs from the expected one",
                 why, text_diff(text(e.output, 2), text(actual, 2)));
          }
          break;
        }
        case Expect::Kind::kError:
          if (s.error_class != e.error_class ||
              (e.error_message && s.error_message.find(*e.error_message) == std::string::npos)) {
            const std::string want = e.error_message
                                         ? fmt::format("{} \"{}\"", e.error_class, *e.error_message)
                                         : e.error_class;
            fail(e.span, s.error_class.empty()
                             ? fmt::format("expected error {}, but the saga has none (it is {})",
                                           want, result_.status)
                             : fmt::format("expected error {}, got {}", want, error_text()));
          }
          break;
        case Expect::Kind::kCalls:
        case Expect::Kind::kUndos:
          judge_calls(e, e.kind == Expect::Kind::kUndos);
          break;
        case Expect::Kind::kHistory:
          judge_history(e);
          break;
        case Expect::Kind::kElapsed:
          if (static_cast<int64_t>(e.elapsed_ms) != elapsed_) {
            fail(e.span, fmt::format("expected the saga to take {} of virtual time, it took {}",
                                     bytecode::format_duration(e.elapsed_ms),
                                     bytecode::format_duration(static_cast<uint64_t>(elapsed_))));
          }
          break;
      }
    }
    // The file's answers are for every test: only a test's own can be unused.
    for (const AnswerRule& r : test_.answers) {
      if (!used_.contains(&r)) {
        result_.warnings.push_back(
            Diagnostic{Severity::Warning,
                       r.target.span,
                       fmt::format("the answer for {} was never used: the saga made no such call",
                                   describe(r.target)),
                       {}});
      }
    }
    if (test_.cancel && !cancelled_) {
      result_.warnings.push_back(
          Diagnostic{Severity::Warning,
                     test_.cancel->span,
                     fmt::format("the cancel never came: the saga ended {} first", result_.status),
                     {}});
    }
  }

  static std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  static std::vector<std::string> text_diff(const std::string& want, const std::string& got) {
    const auto a = split_lines(want), b = split_lines(got);
    return diff_lines(a, b, [&](size_t i, size_t j) { return a[i] == b[j]; });
  }

  void judge_calls(const Expect& e, bool undos) {
    std::vector<const Call*> actual;
    for (const Call& c : calls_) {
      if (c.undo == undos) actual.push_back(&c);
    }
    auto matches = [&](size_t i, size_t j) {
      const CallPattern& p = e.calls[i];
      return target_matches(p.target, *actual[j]) &&
             (!p.args || json_matches(*p.args, actual[j]->args));
    };
    bool same = actual.size() == e.calls.size();
    for (size_t i = 0; same && i < actual.size(); ++i) same = matches(i, i);
    if (same) return;
    std::vector<std::string> want, got;
    for (const CallPattern& p : e.calls) {
      want.push_back(describe(p.target) + (p.args ? " " + text(*p.args) : ""));
    }
    for (const Call* c : actual) {
      got.push_back(
          fmt::format("{} {}  ({}, attempt {})", c->action, text(c->args), c->key, c->attempt));
    }
    fail(e.span,
         fmt::format("the {} differ from the expected ones: {} expected, {} made",
                     undos ? "undo calls" : "calls", e.calls.size(), actual.size()),
         {}, diff_lines(want, got, matches));
  }

  void judge_history(const Expect& e) {
    auto matches = [&](size_t i, size_t j) {
      const EventPattern& p = e.history[i];
      return p.kind == history_[j].kind && (!p.step || *p.step == history_[j].step);
    };
    bool same = history_.size() == e.history.size();
    for (size_t i = 0; same && i < history_.size(); ++i) same = matches(i, i);
    if (same) return;
    std::vector<std::string> want, got;
    for (const EventPattern& p : e.history)
      want.push_back(p.step ? p.kind + " " + *p.step : p.kind);
    for (const HistoryEvent& h : history_) {
      got.push_back(h.step.empty() ? h.kind : h.kind + " " + h.step);
    }
    fail(e.span,
         fmt::format("the history differs from the expected one: {} events expected, {} happened",
                     e.history.size(), history_.size()),
         {}, diff_lines(want, got, matches));
  }

  const runtime::LinkedProgram& lp_;
  const bytecode::Program& p_;
  const File& file_;
  const Test& test_;
  sim::Options options_;
  sim::Run run_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::map<uint32_t, uint64_t> tokens_;  // The current wait of each waiting fiber.
  uint64_t seq_ = 0, next_token_ = 0;
  bool final_ = false, cancelled_ = false;
  int64_t elapsed_ = 0;
  std::vector<Call> calls_;
  std::vector<HistoryEvent> history_;
  std::set<const AnswerRule*> used_;
  std::set<std::string> unanswered_;
  TestResult result_;
};

}  // namespace

void check(const File& file, const bytecode::Program& program, Diagnostics& diags) {
  Checker(file, program, diags).run();
  diags.sort();
}

TestResult run_test(const runtime::LinkedProgram& program, const File& file, const Test& test) {
  return Runner(program, file, test).run();
}

// The most cells of the alignment table diff_lines() fills (16 MB of
// uint32_t); longer lists are shown whole, one after the other.
constexpr size_t kMaxDiffCells = 4'000'000;

std::vector<std::string> diff_lines(const std::vector<std::string>& expected,
                                    const std::vector<std::string>& actual,
                                    const std::function<bool(size_t, size_t)>& same) {
  const size_t n = expected.size(), m = actual.size();
  std::vector<std::string> out;
  if ((n + 1) * (m + 1) > kMaxDiffCells) {
    // Too long to align (the table would take gigabytes): the two lists.
    for (const std::string& e : expected) out.push_back("- " + e);
    for (const std::string& a : actual) out.push_back("+ " + a);
    return out;
  }
  // lcs[i][j]: the longest common subsequence of expected[i..] and actual[j..].
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = same(i, j) ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && same(i, j) && lcs[i][j] == lcs[i + 1][j + 1] + 1) {
      out.push_back("  " + actual[j]);
      ++i, ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push_back("- " + expected[i++]);
    } else {
      out.push_back("+ " + actual[j++]);
    }
  }
  return out;
}

bool json_matches(const nlohmann::json& pattern, const nlohmann::json& actual) {
  if (!pattern.is_object()) return pattern == actual;
  if (!actual.is_object()) return false;
  for (const auto& [key, value] : pattern.items()) {
    auto it = actual.find(key);
    if (it == actual.end() || !json_matches(value, *it)) return false;
  }
  return true;
}

}  // namespace saga::scenario
