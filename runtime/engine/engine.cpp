// The engine: drives instances from yield point to yield point.
//
// An instance (a Run) is always in one of these situations:
//   committing  a transition was handed to the store; nothing else happens
//               until the store says it is durable (the delivery contract);
//   waiting     for an action attempt, a backoff or sleep timer, or the store;
//   running     the interpreter, briefly, on an engine thread.
// Every event that can move an instance (an action's completion, an attempt
// timeout, a timer, the deadline, a cancel) is stamped with the run's
// generation when it is armed; the handler locks the run and ignores the event
// if the generation has moved on. That settles every race (a late result
// after a timeout, a deadline during a backoff) in one place.
//
// After each commit, advance() looks only at the committed InstanceState to
// decide what to do next, which is exactly what resume() does after a crash:
// the same code path runs in both cases, so crash-resume is not a special mode.
#include "saga/engine.hpp"

#include <fmt/format.h>

#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "runtime/asio.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/bytecode/verify.hpp"
#include "runtime/engine/inspect.hpp"
#include "runtime/engine/owner.hpp"
#include "runtime/engine/timers.hpp"
#include "runtime/value/utf8.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "runtime/vm/vm.hpp"
#include "saga/error_classes.hpp"
#include "saga/errors.hpp"
#include "stdlib/functions.hpp"
#include "stdlib/table.hpp"

namespace saga {

using runtime::EngineFunctionContext;
using runtime::InstanceState;
using runtime::LinkedProgram;
using runtime::Phase;
using runtime::Stop;
using runtime::SystemClock;
using runtime::TimerId;
using runtime::TimerQueue;
using runtime::Wait;

namespace {

// The built-in actions the engine performs itself, without a call
// (stdlib/actions.def, performer kEngine: sleep, log): they have no effect
// outside the instance.
const stdlib::ActionInfo* engine_performed(const bytecode::Action& action) {
  if (action.service != bytecode::kNoService) return nullptr;
  const stdlib::ActionInfo* info = stdlib::find_action(action.name);
  return info && info->performer == stdlib::Performer::kEngine ? info : nullptr;
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
std::string check_engine_args(const stdlib::ActionInfo& info, const Value& args) {
  for (const stdlib::ArgSpec& spec : info.args()) {
    const Value* v = args.find(spec.name);
    std::string why = stdlib::check_action_arg(
        info.name, spec.name, v ? arg_view(*v) : stdlib::ArgView{stdlib::ArgView::Kind::kNull});
    if (!why.empty()) return why;
  }
  return {};
}

// When a sleep with these (checked) arguments wakes up.
int64_t sleep_until(int64_t now, const Value& args) {
  const Value* d = args.find("for");
  return now + static_cast<int64_t>(d && d->is_number() ? d->as_number() : 0);
}

std::string format_ms(int64_t ms) {
  return bytecode::format_duration(static_cast<uint64_t>(std::max<int64_t>(ms, 0)));
}

}  // namespace

int exit_code_for(InstanceStatus status) {
  switch (status) {
    case InstanceStatus::kCompleted:
      return 0;
    case InstanceStatus::kStuck:
      return 4;
    case InstanceStatus::kCompensated:
    case InstanceStatus::kFailed:
    case InstanceStatus::kCancelled:
      return 3;
    default:
      return 1;
  }
}

// ---- The engine ---------------------------------------------------------------

struct Completion::State {
  std::function<void(ServiceOutcome)> deliver;
  std::atomic<bool> done{false};
};

void Completion::finish(ServiceOutcome outcome) const {
  if (state_ && !state_->done.exchange(true)) state_->deliver(std::move(outcome));
}

void Completion::succeed(nlohmann::json result) const {
  ServiceOutcome out;
  out.ok = true;
  out.result = std::move(result);
  finish(std::move(out));
}

void Completion::fail(std::string error_class, std::string message) const {
  fail(std::move(error_class), std::move(message), std::chrono::milliseconds(0));
}

void Completion::fail(std::string error_class, std::string message,
                      std::chrono::milliseconds retry_after) const {
  ServiceOutcome out;
  out.error_class = std::move(error_class);
  out.message = std::move(message);
  out.retry_after_ms = std::max<int64_t>(retry_after.count(), 0);
  finish(std::move(out));
}

InstanceInfo info_of(const InstanceRecord& r);

namespace {
struct Run;
InstanceInfo info_of(const Run& run);

struct Run {
  std::mutex mu;
  std::shared_ptr<const LinkedProgram> program;
  // Kept small: 100,000 waiting instances must fit in well under 200 MB.
  std::string id;
  InstanceStatus status = InstanceStatus::kPending;  // As last committed (or being committed).
  int64_t created_ms = 0;
  std::unique_ptr<InstanceRecord> row;  // The full row until the first commit creates it.
  InstanceState state;
  uint64_t generation = 0;           // Bumped whenever what the instance waits for changes.
  uint64_t commit_seq = 0;           // The latest transition handed to the store.
  std::vector<HistoryEvent> events;  // For the next transition.
  std::vector<bool> live_only;       // Parallel to events (Impl::live_event).
  std::unique_ptr<DeadLetter> dead_letter;
  uint32_t checkpoint_bytes = 256;  // Room to reserve for the next checkpoint.
  // Timers armed for this instance (TimerQueue::cancel): the wait (backoff,
  // sleep) or attempt timeout of the current generation, and the deadline
  // (its id stays set once armed, so it is armed once).
  TimerId wait_timer;
  TimerId deadline_timer;
  bool finished = false;
  bool started = false;  // The first commit succeeded (the row exists).
  // The current attempt was handed to its action or transport: it may reach
  // the service. Cleared when the attempt ends.
  bool attempt_out = false;
  // start() waits on it for the first commit's outcome.
  std::shared_ptr<std::promise<Status>> started_promise;
  Engine::DoneCallback on_done;  // start_async()'s callback.
};

using RunPtr = std::shared_ptr<Run>;

// What a failed attempt's callee said besides its class and message.
struct FailureNotes {
  int64_t retry_after_ms = 0;  // The least delay before a retry (Retry-After).
  bool not_sent = false;       // The request never reached the service.
};

// What start_async()'s callback gets: the final state, without the input
// (call Engine::get() for the whole record).
InstanceInfo info_of(const Run& run) {
  InstanceInfo info;
  info.id = run.id;
  info.saga = run.program->program.sagas[run.state.saga].name;
  info.program_hash = run.program->hash;
  info.status = run.status;
  if (run.status == InstanceStatus::kCompleted) info.output = run.state.output.to_json();
  info.error_class = run.state.error_class;
  info.error_message = run.state.error_message;
  info.created_ms = run.created_ms;
  info.updated_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  return info;
}

struct Action {
  SyncAction sync;
  AsyncAction async;
};

}  // namespace

// Owned by a shared_ptr: callbacks that may arrive after the engine is gone
// (an asynchronous action completing late, a service call answering after
// shutdown) hold it weakly and do nothing once it has expired.
struct Engine::Impl : std::enable_shared_from_this<Engine::Impl> {
  EngineOptions options;
  std::shared_ptr<Clock> clock;
  std::unique_ptr<Store> store;
  std::unique_ptr<EngineFunctionContext> fctx;
  boost::asio::io_context io;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::unique_ptr<TimerQueue> timers;

  std::mutex mu;                    // Guards programs, actions, runs.
  std::condition_variable changed;  // A run finished or started.
  std::unordered_map<std::string, std::shared_ptr<const LinkedProgram>> programs;
  // Shared, so that a dispatch takes one without copying its callables.
  std::unordered_map<std::string, std::shared_ptr<const Action>> actions;
  std::unordered_map<std::string, RunPtr> runs;

  std::mutex rng_mu;
  std::mt19937_64 rng;

  std::atomic<int64_t> in_flight_commits{0};  // Transitions handed to the store, not yet done.

  // Committed transitions waiting for an engine thread (see commit()).
  // The outcome of one transition, as the engine threads get it.
  struct Committed {
    RunPtr run;
    uint64_t seq;
    bool final;
    Status status;
    std::vector<HistoryEvent> echoed;  // For on_event.
    // When the commit failed: what the transition would have stored besides
    // the checkpoint, to be submitted again with the next try.
    struct Unsaved {
      std::vector<HistoryEvent> events;
      std::optional<DeadLetter> dead_letter;
    };
    std::unique_ptr<Unsaved> unsaved;  // Null after a successful commit.
  };
  std::mutex committed_mu;
  std::vector<Committed> committed_queue;  // Guarded by committed_mu.
  bool drain_posted = false;               // Guarded by committed_mu.
  std::atomic<bool> stopping{false};

  // Ownership (Store::claim): instances this engine runs carry its owner id
  // and a lease it renews every kLeaseMs / 3.
  static constexpr int64_t kLeaseMs = 30'000;
  std::string owner = runtime::this_owner();

  void renew_leases() {
    if (store) store->renew(owner, now() + kLeaseMs);
    timers->schedule(now() + kLeaseMs / 3, [this] { renew_leases(); });
  }

  ~Impl() { shutdown(); }

  void shutdown() {
    stopping.store(true, std::memory_order_release);
    if (timers) timers->stop();
    work.reset();
    io.stop();
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
    threads.clear();
    if (store) store->flush();
  }

  int64_t now() { return clock->now_ms(); }

  // ---- Programs --------------------------------------------------------------

  Result<std::shared_ptr<const LinkedProgram>> program(const std::string& hash) {
    {
      std::lock_guard lock(mu);
      auto it = programs.find(hash);
      if (it != programs.end()) return it->second;
    }
    auto image = store->get_program(hash);
    if (!image.ok()) return image.status();
    auto loaded = bytecode::load(image.value());
    if (!loaded.ok()) return loaded.status();
    return add_program(std::move(loaded).value());
  }

  Result<std::shared_ptr<const LinkedProgram>> add_program(bytecode::Program p) {
    auto linked = runtime::verify_and_link(std::move(p));
    if (!linked.ok()) return linked.status();
    auto shared = std::make_shared<const LinkedProgram>(std::move(linked).value());
    std::lock_guard lock(mu);
    auto [it, added] = programs.emplace(shared->hash, shared);
    return it->second;
  }

  // ---- Transitions -------------------------------------------------------------

  void event(Run& run, std::string kind, std::string step = {}, uint32_t attempt = 0,
             std::string error_class = {}, std::string message = {}, std::string data = {}) {
    run.events.push_back(HistoryEvent{now(), std::move(kind), std::move(step), attempt,
                                      std::move(error_class), std::move(message), std::move(data)});
    run.live_only.push_back(false);
  }

  // An event that is reported to on_event but stored in the history only when
  // it is the sole event of its transition. "step b started" always rides
  // with "step a completed" (or "started"), so storing it would double the
  // history rows, the biggest part of the store's work, for no information:
  // `sagactl show` shows the step an instance waits for.
  void live_event(Run& run, std::string kind, std::string step, uint32_t attempt,
                  std::string message = {}) {
    event(run, std::move(kind), std::move(step), attempt, {}, std::move(message));
    run.live_only.back() = true;
  }

  static InstanceStatus status_of(const InstanceState& s, bool stuck) {
    if (stuck) return InstanceStatus::kStuck;
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

  // Text that reaches the store comes from outside too (an action's error
  // message, a participant's body, a log line built from a result): bytes
  // that are not UTF-8 become U+FFFD here, once for every store, so that
  // every reader (sagactl --json, PostgreSQL's text columns) gets valid
  // text. Values are valid already (json_quote.hpp); this only scans.
  // (commit() applies it to the instance's error and dead letter too.)
  static void scrub_text(HistoryEvent& e) {
    scrub_utf8_in_place(e.error_class);
    scrub_utf8_in_place(e.message);
    scrub_utf8_in_place(e.data_json);
  }

  // Hands the run's current state to the store. When it is durable, the
  // run advances (unless a newer transition superseded this one).
  void commit(const RunPtr& run, InstanceStatus status) {
    Run& r = *run;
    Transition t;
    // The first transition creates the row with everything that never
    // changes (program, saga, input, owner); later ones update the rest.
    if (r.row) {
      t.create = true;
      t.instance = std::move(*r.row);
      r.row.reset();
    }
    r.status = status;
    t.instance.id = r.id;
    t.instance.status = status;
    t.instance.created_ms = r.created_ms;
    t.instance.updated_ms = now();
    t.instance.wake_at_ms = r.state.wait != Wait::kNone ? r.state.wake_at_ms : 0;
    t.instance.error_class = r.state.error_class;
    t.instance.error_message = r.state.error_message;
    if (status == InstanceStatus::kCompleted)
      t.instance.output_json = r.state.output.to_json_text();
    // The checkpoint lives only in the transition: a waiting instance keeps
    // its state once, as InstanceState, not twice.
    // Reserved at the last checkpoint's size: encoding grows it only rarely.
    t.instance.checkpoint.reserve(r.checkpoint_bytes);
    runtime::encode_checkpoint(r.state, t.instance.checkpoint);
    r.checkpoint_bytes = static_cast<uint32_t>(t.instance.checkpoint.size()) + 64;
    // Moved out, not cleared: a waiting instance keeps no spare capacity.
    std::vector<HistoryEvent> events = std::move(r.events);
    std::vector<bool> live_only = std::move(r.live_only);
    r.events = {};
    r.live_only = {};
    for (HistoryEvent& e : events) scrub_text(e);
    std::vector<HistoryEvent> echoed;
    if (options.on_event) echoed = events;
    bool all_live = std::all_of(live_only.begin(), live_only.end(), [](bool b) { return b; });
    t.events.reserve(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      if (!live_only[i] || all_live) t.events.push_back(std::move(events[i]));
    }
    if (r.dead_letter) t.dead_letter = std::move(*r.dead_letter);
    r.dead_letter.reset();
    scrub_utf8_in_place(t.instance.error_class);
    scrub_utf8_in_place(t.instance.error_message);
    if (t.dead_letter) {
      scrub_utf8_in_place(t.dead_letter->error_class);
      scrub_utf8_in_place(t.dead_letter->message);
    }
    uint64_t seq = ++r.commit_seq;
    bool final = is_terminal(status) || status == InstanceStatus::kStuck;
    in_flight_commits.fetch_add(1, std::memory_order_relaxed);
    store->submit(std::move(t), [this, run, seq, final, echoed = std::move(echoed)](
                                    Status s, Transition& done) mutable {
      Committed c{std::move(run), seq, final, std::move(s), std::move(echoed), nullptr};
      if (!c.status.ok()) {
        c.unsaved = std::make_unique<Committed::Unsaved>(
            Committed::Unsaved{std::move(done.events), std::move(done.dead_letter)});
      }
      on_commit_done(std::move(c));
    });
  }

  // Runs on the store's writer thread for each transition it committed or
  // failed.
  void on_commit_done(Committed c) {
    // When this was the only transition in flight (an instance running
    // alone), continue right here on the store's writer thread: the next
    // transition is then submitted from the thread that commits it, with no
    // hand-off in either direction, which at low load is most of a step's
    // latency besides the fsync. Under load, and during shutdown, the
    // continuation goes to the engine's threads as usual, so the writer
    // keeps committing.
    bool alone = in_flight_commits.fetch_sub(1, std::memory_order_acq_rel) == 1;
    if (alone && !stopping.load(std::memory_order_acquire)) {
      committed(c);
      return;
    }
    // Under load a group commit ends with a hundred or more of these in a
    // row. Each is queued, and one job drains the queue: a post (and perhaps
    // a thread wake-up) per group instead of per transition keeps the
    // writer, the engine's serial part, writing.
    bool post = false;
    {
      std::lock_guard lock(committed_mu);
      committed_queue.push_back(std::move(c));
      post = !std::exchange(drain_posted, true);
    }
    if (post) boost::asio::post(io, [this] { drain_committed(); });
  }

  // Runs on an engine thread. Takes everything queued so far; what arrives
  // meanwhile posts another drain, which the other engine threads pick up,
  // so a group's continuations spread over all threads.
  void drain_committed() {
    std::vector<Committed> ready;
    {
      std::lock_guard lock(committed_mu);
      ready.swap(committed_queue);
      drain_posted = false;
    }
    for (Committed& c : ready) committed(c);
  }

  void committed(Committed& c) {
    const RunPtr& run = c.run;
    const uint64_t seq = c.seq;
    const bool final = c.final;
    const Status& s = c.status;
    bool finished = false;
    {
      std::unique_lock lock(run->mu);
      if (!s.ok()) {
        if (!run->started) {
          // The instance was never recorded: start() reports the error.
          run->finished = true;
          if (run->started_promise) run->started_promise->set_value(s);
          run->started_promise.reset();
          lock.unlock();
          forget(run);
          if (run->on_done) {
            InstanceInfo info = info_of(*run);
            info.status = InstanceStatus::kPending;
            info.error_message = s.message();
            run->on_done(info);
          }
          return;
        }
        // The store refused (disk full, locked): keep the state in memory and
        // try the same transition again; nothing was acknowledged. Its events
        // and dead letter go with the next transition of the instance: this
        // retry, or a newer one already on its way.
        fmt::print(stderr, "saga: instance {}: cannot commit: {} (retrying in 1s)\n", run->id,
                   s.message());
        std::vector<HistoryEvent>& unsaved = c.unsaved->events;
        run->events.insert(run->events.begin(), std::make_move_iterator(unsaved.begin()),
                           std::make_move_iterator(unsaved.end()));
        run->live_only.insert(run->live_only.begin(), unsaved.size(), false);
        if (c.unsaved->dead_letter && !run->dead_letter) {
          run->dead_letter = std::make_unique<DeadLetter>(std::move(*c.unsaved->dead_letter));
        }
        if (seq != run->commit_seq) return;
        uint64_t g = run->generation;
        timers->schedule(now() + 1000, [this, run, g] {
          std::lock_guard l(run->mu);
          if (run->generation != g || run->finished) return;
          commit(run, run->status);
        });
        return;
      }
      if (!run->started) {
        run->started = true;
        if (run->started_promise) run->started_promise->set_value(Status::Ok());
        run->started_promise.reset();
      }
      if (seq == run->commit_seq) {  // Else a newer transition is on its way.
        if (final && (!run->events.empty() || run->dead_letter)) {
          // Events of an earlier transition that failed while this one was
          // on its way: store them too before the instance is let go.
          commit(run, run->status);
        } else if (final) {
          run->finished = true;
          finished = true;
          timers->cancel(std::exchange(run->deadline_timer, {}));
          timers->cancel(std::exchange(run->wait_timer, {}));
        } else {
          advance(run);
        }
      }
    }
    // Events are reported after the timers they imply are armed, so a test
    // that moves a ManualClock on seeing an event never races the engine.
    if (options.on_event) {
      for (const HistoryEvent& e : c.echoed) options.on_event(run->id, e);
    }
    if (finished) {
      forget(run);
      if (run->on_done) run->on_done(info_of(*run));
    }
  }

  void forget(const RunPtr& run) {
    {
      std::lock_guard lock(mu);
      auto it = runs.find(run->id);
      if (it != runs.end() && it->second == run) runs.erase(it);
    }
    changed.notify_all();
  }

  // ---- Moving an instance ------------------------------------------------------

  // Moves the instance to a new generation: events of the old one are
  // ignored from now on, and its timer is dropped. Called with run->mu held.
  uint64_t next_generation(Run& run) {
    timers->cancel(std::exchange(run.wait_timer, {}));
    return ++run.generation;
  }

  // Looks at the committed state and starts whatever it waits for. Called
  // with run->mu held.
  void advance(const RunPtr& run) {
    InstanceState& s = run->state;
    arm_deadline(run);
    if (s.wait == Wait::kNone) return;
    uint64_t g = next_generation(*run);
    int64_t due = s.wake_at_ms;
    if (due > now()) {
      run->wait_timer = timers->schedule(due, [this, run, g] {
        std::lock_guard lock(run->mu);
        if (run->generation == g) dispatch(run);
      });
      return;
    }
    dispatch(run);
  }

  void arm_deadline(const RunPtr& run) {
    InstanceState& s = run->state;
    if (run->deadline_timer || s.deadline_ms == 0 || s.phase != Phase::kForward) return;
    std::weak_ptr<Run> weak = run;
    run->deadline_timer = timers->schedule(s.deadline_ms, [this, weak] {
      RunPtr run = weak.lock();
      if (!run) return;
      std::lock_guard lock(run->mu);
      if (run->state.phase != Phase::kForward || run->finished) return;
      const bytecode::Saga& saga = run->program->program.sagas[run->state.saga];
      interrupt(run, "timeout", fmt::format("deadline of {} exceeded", format_ms(saga.deadline_ms)),
                false);
    });
  }

  // Abandons the forward path (deadline or cancel) and compensates.
  void interrupt(const RunPtr& run, std::string error_class, std::string message, bool cancel) {
    InstanceState& s = run->state;
    next_generation(*run);  // Late results of the abandoned attempt are ignored.
    if (s.wait == Wait::kAction) {
      const bytecode::Step& step = run->program->program.steps[s.step];
      // In doubt when the abandoned attempt was out, or an earlier one may
      // have had an effect; a step still waiting for its first attempt, or
      // in the backoff after attempts that never left, had none.
      const bool in_doubt = run->attempt_out || s.earlier_attempt_in_doubt;
      event(*run, "step_abandoned", step.name, s.attempt, error_class,
            in_doubt ? message : message + " (nothing was sent: the step is not compensated)");
      if (in_doubt) s.completed.push_back({s.step, true});
      s.wait = Wait::kNone;
      s.wake_at_ms = 0;
    }
    run->attempt_out = false;
    s.cancelled = cancel;
    begin_compensation(run, std::move(error_class), std::move(message));
  }

  const bytecode::Action& action_of(const Run& run) {
    const bytecode::Program& p = run.program->program;
    const bytecode::Step& step = p.steps[run.state.step];
    return p.actions[run.state.wait == Wait::kUndo ? step.undo_action : step.action];
  }

  // Starts the attempt the state waits for. Called with run->mu held.
  void dispatch(const RunPtr& run) {
    InstanceState& s = run->state;
    const bytecode::Program& p = run->program->program;
    const bytecode::Step& step = p.steps[s.step];
    const bytecode::Action& action = action_of(*run);
    uint64_t g = next_generation(*run);
    bool undo = s.wait == Wait::kUndo;

    // Built-in actions the engine performs itself.
    if (engine_performed(action)) {
      if (action.name == "sleep") {
        // The timer already ran: advance() waited until wake_at_ms.
        return finish_attempt(run, g, true, Value(), {}, {});
      }
      if (action.name == "log") {
        const Value* m = s.args.find("message");
        const Value* level = s.args.find("level");
        std::string text = m ? m->to_text() : std::string();
        // The level (checked against actions.def) rides in the event's data;
        // info, the default, is left out.
        std::string data;
        if (level && level->is_string() && level->as_string() != "info") {
          data = fmt::format(R"({{"level":"{}"}})", level->as_string());
        }
        event(*run, "log", step.name, s.attempt, {}, text, std::move(data));
        return finish_attempt(run, g, true, Value(), {}, {});
      }
    }
    std::shared_ptr<const Action> registered;
    {
      std::lock_guard lock(mu);
      auto it = actions.find(action.name);
      if (it != actions.end()) registered = it->second;
    }
    static const Action kNone;
    const Action& impl = registered ? *registered : kNone;
    if (!impl.sync && !impl.async && action.service != bytecode::kNoService &&
        options.service_transport) {
      std::string url = url_of(p.services[action.service]);
      if (!url.empty()) return call_service(run, g, step, action, undo, url);
    }
    if (!impl.sync && !impl.async) {
      std::string why =
          action.service != bytecode::kNoService
              ? fmt::format(
                    "no action '{}' is registered and service '{}' has no url: the host "
                    "application must provide it (Engine::register_action), or give the service "
                    "a url (sagactl --service {}=http://host:port)",
                    action.name, p.services[action.service].name, p.services[action.service].name)
              : fmt::format("the standard action '{}' is not available in this process",
                            action.name);
      return finish_attempt(run, g, false, Value(), "unsupported", why);
    }

    // Per-attempt timeout: the step's, else its service's; for the undo as
    // for the do (an undo that never answers must not hold its instance in
    // `compensating` forever: it times out, is retried, and ends stuck).
    int64_t timeout = static_cast<int64_t>(step.timeout_ms);
    if (timeout == 0 && action.service != bytecode::kNoService) {
      timeout = static_cast<int64_t>(p.services[action.service].timeout_ms);
    }
    if (timeout > 0 && impl.async) {
      // Held weakly: a finished instance must not stay in memory until its
      // abandoned timeouts come due.
      std::weak_ptr<Run> weak = run;
      run->wait_timer = timers->schedule(now() + timeout, [this, weak, g, timeout] {
        RunPtr run = weak.lock();
        if (!run) return;
        std::lock_guard lock(run->mu);
        if (run->generation != g) return;
        finish_attempt(run, g, false, Value(), "timeout",
                       fmt::format("no answer within {}", format_ms(timeout)));
      });
    }

    if (impl.sync) {
      // A synchronous action runs here, on this engine thread, under the
      // run's lock (no other event of this instance can interleave). It cannot
      // be interrupted: when it returns after its timeout, its result is
      // discarded and the attempt counts as timed out (it may have had an
      // effect, so the step is in doubt).
      ActionCall call;
      call.action = action.name;
      describe_call(call, *run, step, undo);
      call.timeout_ms = timeout;
      run->attempt_out = true;
      int64_t started = now();
      bool ok = false;
      Value result;
      std::string cls, msg;
      try {
        auto converted = Value::from_json(impl.sync(call));
        if (converted.ok()) {
          ok = true;
          result = std::move(converted).value();
        } else {
          cls = "error";
          msg = "the action returned a result that is not a JSON value: " +
                converted.status().message();
        }
      } catch (const ActionError& e) {
        cls = e.error_class();
        msg = e.what();
      } catch (const std::exception& e) {
        cls = "error";
        msg = e.what();
      }
      if (timeout > 0 && now() - started > timeout) {
        ok = false;
        cls = "timeout";
        msg = fmt::format("no answer within {}", format_ms(timeout));
      }
      return finish_attempt(run, g, ok, std::move(result), std::move(cls), std::move(msg));
    }

    auto call = std::make_shared<ActionCall>();
    call->action = action.name;
    describe_call(*call, *run, step, undo);
    call->timeout_ms = timeout;

    auto state = std::make_shared<Completion::State>();
    state->deliver = outcome_handler(run, g, "action");
    Completion completion(state);
    run->attempt_out = true;
    boost::asio::post(io, [registered = std::move(registered), call, completion] {
      try {
        registered->async(*call, completion);
      } catch (const std::exception& e) {
        completion.fail("error", e.what());
      }
    });
  }

  // Fills what every action and service call carries. The idempotency key is
  // "<instance>/<step>" for a do and "<instance>/<step>/undo" for its undo:
  // the same for every attempt and after a crash (step names are unique in a
  // saga; loops will add an index).
  template <class Call>
  static void describe_call(Call& call, const Run& run, const bytecode::Step& step, bool undo) {
    call.args = run.state.args.to_json();
    call.instance_id = run.id;
    call.step = step.name;
    call.idempotency_key = run.id + "/" + step.name + (undo ? "/undo" : "");
    call.attempt = run.state.attempt;
    call.compensation = undo;
  }

  // The url of a service: the deployment's binding (EngineOptions::
  // service_urls), else the program's.
  std::string url_of(const bytecode::Service& svc) const {
    auto it = options.service_urls.find(svc.name);
    std::string url = it != options.service_urls.end() ? it->second : svc.url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }

  // Hands a url service's call to the transport. Called with run->mu held.
  void call_service(const RunPtr& run, uint64_t g, const bytecode::Step& step,
                    const bytecode::Action& action, bool undo, const std::string& url) {
    const bytecode::Service& svc = run->program->program.services[action.service];
    ServiceCall call;
    call.service = svc.name;
    call.url = url;
    call.op = action.name.substr(svc.name.size() + 1);
    for (const bytecode::Route& r : svc.routes) {
      if (r.op == call.op) {
        call.method = r.method;
        call.path = r.path;
      }
    }
    describe_call(call, *run, step, undo);
    call.timeout_ms = step.timeout_ms ? static_cast<int64_t>(step.timeout_ms)
                                      : static_cast<int64_t>(svc.timeout_ms);
    call.breaker_failures = svc.breaker_failures;
    call.breaker_reset_ms = static_cast<int64_t>(svc.breaker_reset_ms);
    call.breaker_probes = svc.breaker_probes;
    call.bulkhead = svc.bulkhead;
    run->attempt_out = true;
    boost::asio::post(io,
                      [this, call = std::move(call), done = outcome_handler(run, g, "service")] {
                        options.service_transport(call, done);
                      });
  }

  // What receives the outcome of an attempt (a Completion's, or a service
  // transport's), from any thread: it converts the result and ends the
  // attempt on an engine thread, unless the attempt was abandoned meanwhile
  // (another generation), the instance is gone, or the engine is. `what`
  // names the callee in an error ("the service returned ...").
  std::function<void(ServiceOutcome)> outcome_handler(const RunPtr& run, uint64_t g,
                                                      const char* what) {
    std::weak_ptr<Impl> self = weak_from_this();
    std::weak_ptr<Run> weak = run;
    return [self, weak, g, what](ServiceOutcome out) {
      std::shared_ptr<Impl> impl = self.lock();
      if (!impl) return;  // The engine is gone; the instance resumes next time.
      auto converted = out.ok ? Value::from_json(out.result) : Result<Value>(Value());
      boost::asio::post(impl->io, [impl = impl.get(), weak, g, what, out = std::move(out),
                                   converted = std::move(converted)]() mutable {
        RunPtr run = weak.lock();
        if (!run) return;
        std::lock_guard lock(run->mu);
        if (run->generation != g) return;
        if (out.ok && !converted.ok()) {
          return impl->finish_attempt(run, g, false, Value(), "error",
                                      fmt::format("the {} returned a result that is not a JSON "
                                                  "value: {}",
                                                  what, converted.status().message()));
        }
        impl->finish_attempt(run, g, out.ok, out.ok ? std::move(converted).value() : Value(),
                             std::move(out.error_class), std::move(out.message),
                             {out.retry_after_ms, out.not_sent});
      });
    };
  }

  int64_t backoff(const bytecode::RetryPolicy& p, uint32_t retry) {
    double d = static_cast<double>(p.initial_ms);
    switch (p.backoff) {
      case bytecode::Backoff::Fixed:
        break;
      case bytecode::Backoff::Linear:
        d += static_cast<double>(retry - 1) * static_cast<double>(p.step_ms);
        break;
      case bytecode::Backoff::Exponential:
        d *= std::pow(p.factor, retry - 1);
        break;
    }
    if (p.max_ms > 0) d = std::min(d, static_cast<double>(p.max_ms));
    d = std::min(d, 1e12);
    auto ms = static_cast<int64_t>(d);
    if (p.jitter == bytecode::Jitter::None || ms == 0) return ms;
    std::lock_guard lock(rng_mu);
    if (p.jitter == bytecode::Jitter::Full) {
      return std::uniform_int_distribution<int64_t>(0, ms)(rng);
    }
    return ms / 2 + std::uniform_int_distribution<int64_t>(0, ms - ms / 2)(rng);
  }

  // An attempt ended. Called with run->mu held and generation == g.
  void finish_attempt(const RunPtr& run, uint64_t g, bool ok, Value result, std::string cls,
                      std::string msg, FailureNotes notes = {}) {
    if (run->generation != g) return;
    next_generation(*run);
    run->attempt_out = false;
    InstanceState& s = run->state;
    const bytecode::Program& p = run->program->program;
    const bytecode::Step& step = p.steps[s.step];
    if (s.wait == Wait::kAction) {
      if (ok) {
        event(*run, "step_completed", step.name, s.attempt, {}, {}, result.to_json_text());
        s.completed.push_back({s.step, false});
        s.stack.push_back(std::move(result));
        s.wait = Wait::kNone;
        s.wake_at_ms = 0;
        return forward(run);
      }
      const bytecode::RetryPolicy* policy =
          step.retry == bytecode::kNone ? nullptr : &p.policies[step.retry];
      bool retryable = policy && s.attempt < policy->attempts &&
                       std::find(policy->retry_on.begin(), policy->retry_on.end(), cls) !=
                           policy->retry_on.end();
      // An attempt refused before its request was sent (open circuit, no
      // connection) certainly had no effect; one that ended otherwise, short
      // of a definite `rejected`, may have.
      const bool not_sent = notes.not_sent;
      if (retryable) {
        // A Retry-After from the service is the least delay.
        int64_t delay = std::max(backoff(*policy, s.attempt), notes.retry_after_ms);
        int64_t at = now() + delay;
        if (s.deadline_ms == 0 || at < s.deadline_ms) {
          event(*run, "attempt_failed", step.name, s.attempt, cls,
                fmt::format("{} (retrying in {})", msg, format_ms(delay)));
          if (!not_sent && !had_no_effect(cls)) s.earlier_attempt_in_doubt = true;
          s.attempt += 1;
          s.wake_at_ms = at;
          return commit(run, InstanceStatus::kRunning);
        }
      }
      // Once any attempt may have reached the service, the step stays in
      // doubt: a later answer, even a definite `rejected` (a participant
      // that lost the first request's outcome, or answers a repeated key
      // with an error), cannot prove that the earlier one had no effect.
      // Otherwise the last attempt decides: in doubt unless it had no effect
      // by its class or was never sent.
      const bool this_in_doubt = !had_no_effect(cls) && !not_sent;
      const bool in_doubt = s.earlier_attempt_in_doubt || this_in_doubt;
      std::string note;
      if (in_doubt && !this_in_doubt) {
        note = " (an earlier attempt may have had an effect: the step is compensated)";
      } else if (!in_doubt && !had_no_effect(cls)) {
        note = " (never sent: the step had no effect and is not compensated)";
      }
      event(*run, "step_failed", step.name, s.attempt, cls, msg + note);
      if (in_doubt) s.completed.push_back({s.step, true});
      s.wait = Wait::kNone;
      return begin_compensation(run, cls, fmt::format("step '{}': {}", step.name, msg));
    }
    // An undo.
    if (ok) {
      event(*run, "undo_completed", step.name, s.attempt);
      s.wait = Wait::kNone;
      s.wake_at_ms = 0;
      return next_undo(run);
    }
    const CompensationPolicy& cp = options.compensation;
    if (s.attempt < cp.attempts) {
      bytecode::RetryPolicy policy;
      policy.backoff = bytecode::Backoff::Exponential;
      policy.initial_ms = static_cast<uint64_t>(cp.initial_ms);
      policy.factor = cp.factor;
      policy.max_ms = static_cast<uint64_t>(cp.max_ms);
      // A Retry-After (or an open circuit's remaining time) is the least delay.
      int64_t delay = std::max(backoff(policy, s.attempt), notes.retry_after_ms);
      event(*run, "undo_failed", step.name, s.attempt, cls,
            fmt::format("{} (retrying in {})", msg, format_ms(delay)));
      s.attempt += 1;
      s.wake_at_ms = now() + delay;
      return commit(run, InstanceStatus::kCompensating);
    }
    // The compensation is exhausted: never dropped, the instance is stuck.
    event(*run, "stuck", step.name, s.attempt, cls,
          fmt::format("undo failed {} times: {}", s.attempt, msg));
    run->dead_letter =
        std::make_unique<DeadLetter>(DeadLetter{run->id, step.name, now(), cls, msg});
    s.phase = Phase::kDone;
    commit(run, InstanceStatus::kStuck);
  }

  // Runs main code to the next yield point and commits. Called with run->mu held.
  void forward(const RunPtr& run) {
    InstanceState& s = run->state;
    const bytecode::Program& p = run->program->program;
    Stop stop = runtime::run(*run->program, s, *fctx);
    switch (stop) {
      case Stop::kInvoke: {
        const bytecode::Step& step = p.steps[s.step];
        s.wake_at_ms = 0;
        if (const stdlib::ActionInfo* builtin = engine_performed(p.actions[step.action])) {
          // A computed argument out of kind or range is an error of the
          // saga's code, found before anything runs: the step never started.
          if (std::string why = check_engine_args(*builtin, s.args); !why.empty()) {
            s.wait = Wait::kNone;
            bytecode::LineEntry at = p.line_at(s.pc);
            return begin_compensation(run, std::string(kTypeError),
                                      at.line ? fmt::format("{}:{}: step '{}': {}", p.source_name,
                                                            at.line, step.name, why)
                                              : fmt::format("step '{}': {}", step.name, why));
          }
          if (builtin->name == "sleep") s.wake_at_ms = sleep_until(now(), s.args);
        }
        live_event(*run, "step_started", step.name, 1);
        return commit(run, InstanceStatus::kRunning);
      }
      case Stop::kComplete:
        s.phase = Phase::kDone;
        // The output is in the instance row; the history does not repeat it.
        event(*run, "completed");
        return commit(run, InstanceStatus::kCompleted);
      case Stop::kFail:
        return begin_compensation(run, s.error_class, s.error_message);
      case Stop::kUndo:
      case Stop::kReturned:
        break;  // The verifier keeps these out of main code.
    }
    begin_compensation(run, "error", "internal error: unexpected stop in main code");
  }

  void begin_compensation(const RunPtr& run, std::string cls, std::string msg) {
    InstanceState& s = run->state;
    s.error_class = std::move(cls);
    s.error_message = std::move(msg);
    s.phase = Phase::kCompensating;
    // Decides between `compensated` and `failed` at the end.
    s.had_effects = !s.completed.empty();
    // Without effects there is nothing to compensate: next_undo() records
    // the final `failed` or `cancelled` at once.
    if (s.had_effects) event(*run, "compensating", {}, 0, s.error_class, s.error_message);
    next_undo(run);
  }

  // Pops the compensation stack until an undo must run, or finishes.
  void next_undo(const RunPtr& run) {
    InstanceState& s = run->state;
    const bytecode::Program& p = run->program->program;
    while (!s.completed.empty()) {
      runtime::Completed c = s.completed.back();
      s.completed.pop_back();
      const bytecode::Step& step = p.steps[c.step];
      if (step.undo_pc == bytecode::kNone) {
        event(*run, "undo_skipped", step.name, 0, {}, "the step has no undo");
        continue;
      }
      s.pc = step.undo_pc;
      s.stack.clear();
      Stop stop = runtime::run(*run->program, s, *fctx);
      if (stop != Stop::kUndo) {
        // The undo's arguments could not be computed: an operator must look.
        event(*run, "stuck", step.name, 0, s.error_class, s.error_message);
        run->dead_letter = std::make_unique<DeadLetter>(
            DeadLetter{run->id, step.name, now(), s.error_class,
                       "cannot compute the undo's arguments: " + s.error_message});
        s.phase = Phase::kDone;
        s.wait = Wait::kNone;
        return commit(run, InstanceStatus::kStuck);
      }
      s.wake_at_ms = 0;
      if (const stdlib::ActionInfo* builtin = engine_performed(p.actions[step.undo_action])) {
        if (std::string why = check_engine_args(*builtin, s.args); !why.empty()) {
          // As for arguments that cannot be computed: an operator must look.
          event(*run, "stuck", step.name, 0, std::string(kTypeError), why);
          run->dead_letter = std::make_unique<DeadLetter>(
              DeadLetter{run->id, step.name, now(), std::string(kTypeError),
                         "the undo's arguments are invalid: " + why});
          s.phase = Phase::kDone;
          s.wait = Wait::kNone;
          return commit(run, InstanceStatus::kStuck);
        }
        // An undo that sleeps waits like a step that does.
        if (builtin->name == "sleep") s.wake_at_ms = sleep_until(now(), s.args);
      }
      live_event(*run, "undo_started", step.name, 1, c.in_doubt ? "step was in doubt" : "");
      return commit(run, InstanceStatus::kCompensating);
    }
    s.phase = Phase::kDone;
    s.wait = Wait::kNone;
    InstanceStatus final = status_of(s, false);
    event(*run, std::string(to_string(final)), {}, 0, s.error_class, s.error_message);
    commit(run, final);
  }

  // ---- Starting and resuming ---------------------------------------------------

  // Time-ordered (UUID version 7), see stdlib::format_uuid_v7.
  std::string new_id() {
    std::array<uint8_t, 16> bytes;
    fctx->random_bytes(bytes);
    return stdlib::format_uuid_v7(now(), bytes);
  }

  Result<RunPtr> prepare(const std::string& hash, const std::string& saga_name,
                         const nlohmann::json& input_json) {
    auto prog = program(hash);
    if (!prog.ok()) return prog.status();
    const bytecode::Program& p = prog.value()->program;
    uint32_t saga = p.find_saga(saga_name);
    if (saga == bytecode::kNone) {
      std::string names;
      for (const auto& s : p.sagas) names += (names.empty() ? "" : ", ") + s.name;
      return Status(
          StatusCode::kInvalidArgument,
          fmt::format("program {} has no saga '{}' (it has: {})", p.source_name, saga_name, names));
    }
    auto input = Value::from_json(input_json);
    if (!input.ok()) return input.status();
    Status valid = runtime::validate_input(p.sagas[saga], input.value());
    if (!valid.ok()) return valid;
    auto run = std::make_shared<Run>();
    run->program = prog.value();
    run->id = new_id();
    run->created_ms = now();
    run->row = std::make_unique<InstanceRecord>();
    run->row->program_hash = hash;
    run->row->saga = saga_name;
    run->row->input_json = input->to_json_text();
    run->row->owner = owner;
    run->row->lease_until_ms = run->created_ms + kLeaseMs;
    run->state = runtime::start_state(*run->program, saga, input.value());
    return run;
  }

  // Begins a run whose state is fresh (started or picked up pending).
  void begin(const RunPtr& run) {
    InstanceState& s = run->state;
    const bytecode::Saga& saga = run->program->program.sagas[s.saga];
    s.started_ms = now();
    if (saga.deadline_ms) s.deadline_ms = s.started_ms + static_cast<int64_t>(saga.deadline_ms);
    // The input is in the instance row; the history does not repeat it.
    event(*run, "started");
    forward(run);
  }

  // An instance this runtime cannot read (a damaged checkpoint, a program it
  // cannot load) becomes `stuck` with a dead letter naming the problem,
  // instead of staying claimed, and skipped, forever. Its checkpoint is kept
  // as it is, for an operator (or a newer runtime) to look at.
  void set_unreadable(const InstanceRecord& rec, const Status& why, const char* what) {
    const std::string cls = why.code() == StatusCode::kUnsupported ? "unsupported" : "corrupt";
    const std::string message = scrub_utf8(fmt::format("{}: {}", what, why.message()));
    fmt::print(stderr, "saga: instance {}: {}; it is stuck\n", rec.id, message);
    Transition t;
    t.instance = rec;
    t.instance.status = InstanceStatus::kStuck;
    t.instance.error_class = cls;
    t.instance.error_message = message;
    t.instance.updated_ms = now();
    t.events.push_back(HistoryEvent{now(), "stuck", {}, 0, cls, message, {}});
    t.dead_letter = DeadLetter{rec.id, {}, now(), cls, message};
    std::promise<Status> done;
    auto future = done.get_future();
    store->submit(std::move(t), [&done](Status s) { done.set_value(std::move(s)); });
    Status s = future.get();
    if (!s.ok()) {
      fmt::print(stderr, "saga: instance {}: cannot record that it is stuck: {}\n", rec.id,
                 s.message());
    }
  }

  void track(const RunPtr& run) {
    std::lock_guard lock(mu);
    runs[run->id] = run;
  }
};

Engine::Engine(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  impl_->shutdown();
}

Result<std::unique_ptr<Engine>> Engine::open(EngineOptions options) {
  auto impl = std::make_shared<Impl>();
  impl->clock = options.clock ? options.clock : std::make_shared<SystemClock>();
  StoreOptions store_options = options.store;
  store_options.durability = options.durability;
  auto store = open_sqlite_store(options.database, store_options);
  if (!store.ok()) return store.status();
  impl->store = std::move(store).value();
  impl->fctx = std::make_unique<EngineFunctionContext>(*impl->clock);
  impl->rng.seed(options.seed ? options.seed : std::random_device{}());
  impl->options = std::move(options);
  impl->work.emplace(impl->io.get_executor());
  impl->timers = std::make_unique<TimerQueue>(
      *impl->clock,
      [io = &impl->io](std::function<void()> fn) { boost::asio::post(*io, std::move(fn)); });
  unsigned n = std::max(1u, impl->options.threads);
  for (unsigned i = 0; i < n; ++i) impl->threads.emplace_back([io = &impl->io] { io->run(); });
  impl->renew_leases();
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Result<std::string> Engine::load_program(std::span<const uint8_t> image) {
  auto loaded = bytecode::load(image);
  if (!loaded.ok()) return loaded.status();
  std::string name = loaded->sagas.empty() ? loaded->source_name : loaded->sagas[0].name;
  auto linked = impl_->add_program(std::move(loaded).value());
  if (!linked.ok()) return linked.status();
  const std::string& hash = linked.value()->hash;
  Status put = impl_->store->put_program(hash, linked.value()->program.source_name,
                                         std::vector<uint8_t>(image.begin(), image.end()));
  if (!put.ok()) return put;
  return hash;
}

Result<std::string> Engine::load_program_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(StatusCode::kIoError,
                  fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  }
  std::vector<uint8_t> image((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  auto hash = load_program(image);
  if (!hash.ok()) return Status(hash.status().code(), path + ": " + hash.status().message());
  return hash;
}

void Engine::register_action(const std::string& name, SyncAction action) {
  std::lock_guard lock(impl_->mu);
  impl_->actions[name] = std::make_shared<const Action>(Action{std::move(action), nullptr});
}

void Engine::register_async_action(const std::string& name, AsyncAction action) {
  std::lock_guard lock(impl_->mu);
  impl_->actions[name] = std::make_shared<const Action>(Action{nullptr, std::move(action)});
}

Result<std::string> Engine::start(const std::string& hash, const std::string& saga,
                                  const nlohmann::json& input) {
  auto prepared = impl_->prepare(hash, saga, input);
  if (!prepared.ok()) return prepared.status();
  RunPtr run = prepared.value();
  std::string id = run->id;
  auto started = std::make_shared<std::promise<Status>>();
  auto outcome = started->get_future();
  run->started_promise = started;
  impl_->track(run);
  {
    std::lock_guard lock(run->mu);
    impl_->begin(run);
  }
  // Return once the start is durable (or refused).
  Status s = outcome.get();
  if (!s.ok()) return s;
  return id;
}

Result<std::string> Engine::start_async(const std::string& hash, const std::string& saga,
                                        const nlohmann::json& input, DoneCallback done) {
  auto prepared = impl_->prepare(hash, saga, input);
  if (!prepared.ok()) return prepared.status();
  RunPtr run = prepared.value();
  run->on_done = std::move(done);
  std::string id = run->id;
  impl_->track(run);
  std::lock_guard lock(run->mu);
  impl_->begin(run);
  return id;
}

Result<std::string> Engine::enqueue(const std::string& hash, const std::string& saga,
                                    const nlohmann::json& input) {
  auto prepared = impl_->prepare(hash, saga, input);
  if (!prepared.ok()) return prepared.status();
  RunPtr run = prepared.value();
  Transition t;
  t.create = true;
  t.instance = std::move(*run->row);
  t.instance.id = run->id;
  t.instance.status = InstanceStatus::kPending;
  t.instance.owner.clear();  // Pending: any engine may claim it.
  t.instance.created_ms = t.instance.updated_ms = run->created_ms;
  t.events.push_back(HistoryEvent{impl_->now(), "recorded", {}, 0, {}, {}, {}});
  std::promise<Status> done;
  auto future = done.get_future();
  impl_->store->submit(std::move(t), [&done](Status s) { done.set_value(std::move(s)); });
  Status s = future.get();
  if (!s.ok()) return s;
  return run->id;
}

Result<size_t> Engine::resume(const std::string& only) {
  // Claiming (not just listing) keeps two engines on one database from
  // running the same instance.
  int64_t now = impl_->now();
  auto unfinished =
      impl_->store->claim(impl_->owner, now, now + Impl::kLeaseMs, runtime::owner_dead, only);
  if (!unfinished.ok()) return unfinished.status();
  size_t taken = 0;
  for (InstanceRecord& rec : unfinished.value()) {
    RunPtr existing;
    {
      std::lock_guard lock(impl_->mu);
      auto it = impl_->runs.find(rec.id);
      if (it != impl_->runs.end()) existing = it->second;
    }
    if (existing) {
      // Already ours: only a cancel requested by another process matters.
      if (rec.cancel_requested) {
        std::lock_guard lock(existing->mu);
        if (existing->state.phase == Phase::kForward && !existing->finished) {
          impl_->interrupt(existing, "cancelled", "cancelled by request", true);
        }
      }
      continue;
    }
    auto prog = impl_->program(rec.program_hash);
    if (!prog.ok()) {
      impl_->set_unreadable(rec, prog.status(), "its program cannot be loaded");
      continue;
    }
    auto run = std::make_shared<Run>();
    run->program = prog.value();
    run->started = true;
    bool pending = rec.status == InstanceStatus::kPending || rec.checkpoint.empty();
    if (pending) {
      uint32_t saga = run->program->program.find_saga(rec.saga);
      auto input = Value::from_json_text(rec.input_json);
      if (saga == bytecode::kNone || !input.ok()) {
        impl_->set_unreadable(
            rec,
            Status(StatusCode::kCorrupt, saga == bytecode::kNone
                                             ? fmt::format("its program has no saga '{}'", rec.saga)
                                             : "its input: " + input.status().message()),
            "it cannot be started");
        continue;
      }
      run->state = runtime::start_state(*run->program, saga, input.value());
    } else {
      auto state = runtime::decode_checkpoint(*run->program, rec.checkpoint);
      if (!state.ok()) {
        impl_->set_unreadable(rec, state.status(), "its checkpoint cannot be decoded");
        continue;
      }
      run->state = std::move(state).value();
      // The process may have died with an attempt in flight: it may have had
      // an effect, whatever the checkpoint says of the attempts before it.
      // An attempt is dispatched no earlier than its wake time, so one whose
      // wake time is still ahead (a backoff, judged by this machine's wall
      // clock) was not out yet; neither is a call of sleep or log.
      InstanceState& s = run->state;
      if (s.wait == Wait::kAction && now >= s.wake_at_ms &&
          !engine_performed(
              run->program->program.actions[run->program->program.steps[s.step].action])) {
        s.earlier_attempt_in_doubt = true;
      }
    }
    bool cancel = rec.cancel_requested;
    run->id = rec.id;
    run->status = rec.status;
    run->created_ms = rec.created_ms;
    impl_->track(run);
    ++taken;
    std::lock_guard lock(run->mu);
    if (pending) {
      impl_->begin(run);
      if (cancel) impl_->interrupt(run, "cancelled", "cancelled by request", true);
      continue;
    }
    impl_->event(*run, "resumed", {}, 0, {}, {});
    if (cancel && run->state.phase == Phase::kForward) {
      impl_->interrupt(run, "cancelled", "cancelled by request", true);
    } else {
      impl_->advance(run);
    }
  }
  return taken;
}

InstanceInfo info_of(const InstanceRecord& r) {
  InstanceInfo info;
  info.id = r.id;
  info.saga = r.saga;
  info.program_hash = r.program_hash;
  info.status = r.status;
  info.input = runtime::json_or_text(r.input_json);
  info.output = runtime::json_or_text(r.output_json);
  info.error_class = scrub_utf8(r.error_class);
  info.error_message = scrub_utf8(r.error_message);
  info.created_ms = r.created_ms;
  info.updated_ms = r.updated_ms;
  return info;
}

Result<InstanceInfo> Engine::get(const std::string& id) {
  auto rec = impl_->store->get_instance(id);
  if (!rec.ok()) return rec.status();
  if (!rec.value()) return Status(StatusCode::kNotFound, fmt::format("no instance '{}'", id));
  return info_of(*rec.value());
}

Result<nlohmann::json> Engine::inspect(const std::string& id) {
  return runtime::inspect(*impl_->store, id, [impl = impl_.get()](const std::string& hash) {
    return impl->program(hash);
  });
}

Result<nlohmann::json> inspect_instance(Store& store, const std::string& id) {
  return runtime::inspect(store, id, runtime::programs_of(store));
}

Result<InstanceInfo> Engine::wait(const std::string& id, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    {
      // While this engine runs the instance, its end is signalled.
      std::unique_lock lock(impl_->mu);
      impl_->changed.wait_until(lock, deadline, [&] { return impl_->runs.count(id) == 0; });
    }
    auto info = get(id);
    if (!info.ok()) return info;
    auto now = std::chrono::steady_clock::now();
    if (is_terminal(info->status) || info->status == InstanceStatus::kStuck || now >= deadline) {
      return info;
    }
    // Another process runs it: poll the database.
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(50), deadline - now));
  }
}

void Engine::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->changed.wait_for(lock, timeout, [&] { return impl_->runs.empty(); });
}

Status Engine::cancel(const std::string& id) {
  Status s = impl_->store->request_cancel(id);
  if (!s.ok()) return s;
  RunPtr run;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->runs.find(id);
    if (it != impl_->runs.end()) run = it->second;
  }
  if (run) {
    std::lock_guard lock(run->mu);
    if (run->state.phase == Phase::kForward && !run->finished) {
      impl_->interrupt(run, "cancelled", "cancelled by request", true);
    }
  }
  return Status::Ok();
}

size_t Engine::active() const {
  std::lock_guard lock(impl_->mu);
  return impl_->runs.size();
}

size_t Engine::armed_timers() const {
  return impl_->timers->size();
}

Store& Engine::store() {
  return *impl_->store;
}

}  // namespace saga
