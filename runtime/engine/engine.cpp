// The engine: applies the saga machine's decisions and talks to the store.
//
// The machine (machine.hpp) decides what an instance does next; the engine
// owns everything that is not a rule: the runs in memory and their locks,
// the threads, the timers, the commit pipeline, the calls of actions and
// services. Every machine decision is committed before anything it implies
// happens: a fiber's next action is dispatched only once the transition that
// records it is durable (the delivery contract).
//
// Every event that can move a fiber (an action's completion, an attempt
// timeout, a timer, a commit) is stamped with the fiber's generation when it
// is armed; the handler locks the run and ignores the event if the
// generation has moved on. That settles every race (a late result after a
// timeout, a deadline during a backoff, a branch abandoned while its call is
// out) in one place.
//
// After each commit the engine starts the waits of the fibers the decision
// made ready, reading only the state; resume() after a crash decodes the
// committed state and starts the same waits (machine::resumed), so
// crash-resume is not a special mode.
//
// Eviction is the same idea used on purpose: an instance whose every fiber
// waits in a timer at least EngineOptions::evict_after ahead (a sleep, a
// backoff), with nothing out and everything committed, is exactly its
// committed state, so the engine drops it from memory and keeps only its id
// and due time (evicted.hpp: about 100 bytes instead of 1.7 KB). When it is
// due, or cancelled, it is read back from the store and its waits start
// again (machine::reloaded: as a resume, without the event). Every entry
// point that looks an instance up (cancel, wait, resume, active) knows both
// places, and an instance moves between them under the engine's mutex, so
// it is always in exactly one. The 3-step saga's path never waits in a
// timer and only pays one check per commit.
//
// Messages (saga/commands.hpp: cancel, the operator commands) reach a run
// through its inbox: read with the row when the run is loaded, handed over
// at once when posted through this engine, or found by the inbox watch (a
// thread that asks the store every EngineOptions::inbox_watch for posts of
// other processes). The machine decides what each does; the message id
// rides with the transition that commits the decision (Transition::
// consumed), and a run remembers the ids it acted on, so a message seen on
// two of these paths is acted on once.
//
// Signals are messages too, but one is consumed only by the transition in
// which an `await signal` of its name takes it: until then the run keeps it
// (RunInbox::signals) and the store keeps it unconsumed, so a signal posted
// before the await is reached, or while the instance sleeps evicted or its
// process is down, is found again with the row. Whichever of a signal and
// the await's timeout takes the run's lock first wins, with the fiber's
// generation: the other finds the fiber moved on (a late signal then stays
// in the inbox, unconsumed).
#include "saga/engine.hpp"

#include <fmt/format.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "runtime/asio.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/engine/evicted.hpp"
#include "runtime/engine/gate.hpp"
#include "runtime/engine/inspect.hpp"
#include "runtime/engine/machine.hpp"
#include "runtime/engine/observed.hpp"
#include "runtime/engine/owner.hpp"
#include "runtime/engine/timers.hpp"
#include "runtime/events/triggers.hpp"
#include "runtime/value/utf8.hpp"
#include "runtime/vm/checkpoint.hpp"
#include "runtime/vm/vm.hpp"
#include "saga/commands.hpp"
#include "saga/error_classes.hpp"
#include "saga/outbox.hpp"
#include "saga/signals.hpp"
#include "stdlib/functions.hpp"
#include "stdlib/table.hpp"

namespace saga {

using runtime::Decision;
using runtime::EngineFunctionContext;
using runtime::EvictedSet;
using runtime::Fiber;
using runtime::InstanceKey;
using runtime::InstanceState;
using runtime::LinkedProgram;
using runtime::Outcome;
using runtime::Phase;
using runtime::SystemClock;
using runtime::TimerId;
using runtime::TimerQueue;
using runtime::Wait;

namespace {

std::string format_ms(int64_t ms) {
  return bytecode::format_duration(static_cast<uint64_t>(std::max<int64_t>(ms, 0)));
}

}  // namespace

int exit_code_for(InstanceStatus status) {
  switch (status) {
    case InstanceStatus::kCompleted:
      return 0;
    case InstanceStatus::kStuck:
    case InstanceStatus::kPaused:
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

// What the engine keeps per fiber besides the fiber's state: the generation
// that stamps its events, and the timer armed for its wait (backoff, sleep,
// attempt timeout).
struct FiberRun {
  uint32_t id = 0;
  uint32_t generation = 0;
  TimerId timer;
};

// A fiber made ready by a decision, with the generation it had then: its
// wait starts when the commit is durable, unless it moved on meanwhile.
struct Ready {
  uint32_t fiber;
  uint32_t generation;
};

// What a run holds until its first commit: the row that commit creates, and
// what start() waits on for its outcome.
struct Starting {
  std::optional<InstanceRecord> row;
  std::shared_ptr<std::promise<Status>> promise;
};

// The inbox messages a run acted on (their ids): those not committed yet
// go with its next transition (Transition::consumed); all are remembered
// while the run is in memory, so that a message seen twice (posted here and
// noticed by the inbox watch) is acted on once. Allocated with the first
// message: most runs never get one.
struct RunInbox {
  std::vector<std::string> handled;
  std::vector<std::string> unsaved;
  bool resolve_dead_letters = false;
  // Outbox rows no committed transition carries yet: the events the code
  // emitted since the last commit, and the rows (emits, notices) of a
  // transition whose commit failed; they go with the next one, in order.
  // Here rather than in Run, which must stay small: most runs never have one.
  std::vector<OutboxEvent> unsaved_outbox;
  // Signals no await has taken yet, in post order: each stays in the store's
  // inbox, unconsumed, until an await of its name takes it (take_signals()).
  std::vector<InboxMessage> signals;
  // The event waits the store holds for the instance as far as this run
  // knows (Transition::event_waits); unknown (written with the next
  // transition) at first and after a failed commit.
  std::optional<std::vector<EventWait>> stored_waits;
};

// Kept small, its fields ordered by size: 100,000 waiting instances must fit
// in well under 200 MB, and a Run of at most 624 bytes (with its shared_ptr's
// count, 640: one of jemalloc's size classes) takes 128 bytes less than one
// just above.
struct Run {
  std::mutex mu;
  std::shared_ptr<const LinkedProgram> program;
  std::string id;
  int64_t created_ms = 0;
  uint32_t commit_seq = 0;                           // The latest transition handed to the store.
  uint32_t checkpoint_bytes = 256;                   // Room to reserve for the next checkpoint.
  InstanceStatus status = InstanceStatus::kPending;  // As last committed (or being committed).
  bool instance_dirty = false;  // The instance's own checkpoint changed (see dirty).
  bool finished = false;
  // Evicted (see the top of this file): finished is set too, so that every
  // late event of this Run is ignored; the instance lives on in
  // Engine::Impl::evicted, and is loaded into a new Run when it is due.
  bool evicted = false;
  // Waiting for admission (EngineOptions::max_active), in
  // Engine::Impl::admission; guarded by the engine's mu, not the run's.
  bool queued = false;
  // False from a queued start until its `pending` row is durable: it may
  // not begin before. Read under the engine's mu.
  std::atomic<bool> recorded{true};
  // Until the first commit succeeded (the row exists): what it creates.
  std::unique_ptr<Starting> starting;
  InstanceState state;
  boost::container::small_vector<FiberRun, 1> fibers;  // By fiber id, in id order.
  std::vector<Decision::Event> events;                 // For the next transition.
  std::unique_ptr<DeadLetter> dead_letter;
  // What the next transition writes besides events: child fibers changed
  // and removed (and instance_dirty), and the fibers to start once it is
  // durable (a failed commit puts its own back).
  std::vector<uint32_t> dirty, removed;
  std::vector<Ready> ready;
  // The deadline's timer (its id stays set once armed, so it is armed once).
  TimerId deadline_timer;
  Engine::DoneCallback on_done;     // start_async()'s callback.
  std::unique_ptr<RunInbox> inbox;  // Null until a message arrives.

  FiberRun* fiber_run(uint32_t fid) {
    auto it = std::lower_bound(fibers.begin(), fibers.end(), fid,
                               [](const FiberRun& f, uint32_t i) { return f.id < i; });
    return it != fibers.end() && it->id == fid ? &*it : nullptr;
  }
  const FiberRun* fiber_run(uint32_t fid) const { return const_cast<Run*>(this)->fiber_run(fid); }
  // The engine's record of a fiber, created the first time it is asked for.
  FiberRun& fiber_run_or_add(uint32_t fid) {
    auto it = std::lower_bound(fibers.begin(), fibers.end(), fid,
                               [](const FiberRun& f, uint32_t i) { return f.id < i; });
    if (it != fibers.end() && it->id == fid) return *it;
    return *fibers.insert(it, FiberRun{fid, 0, {}});
  }
};

#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(Run) <= 624, "a Run above 624 bytes costs every waiting instance 128 more");
#endif

using RunPtr = std::shared_ptr<Run>;

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
  // The programs whose triggers publish() serves (serve_triggers), in the
  // order they were added. Guarded by mu.
  std::vector<std::shared_ptr<const LinkedProgram>> served;
  // Shared, so that a dispatch takes one without copying its callables.
  std::unordered_map<std::string, std::shared_ptr<const Action>> actions;
  std::unordered_map<std::string, RunPtr> runs;
  // resume() calls between their claim and taking its records up, and the
  // instances that ended meanwhile: their claimed records were read before
  // the end was committed, so they must not be taken up again (a finished
  // instance would run once more from a stale checkpoint). Guarded by mu.
  int claiming = 0;
  std::unordered_set<std::string> ended_while_claiming;

  std::mutex rng_mu;
  std::mt19937_64 rng;

  std::atomic<int64_t> in_flight_commits{0};  // Transitions handed to the store, not yet done.

  // The outcome of one transition, as the engine threads get it.
  struct Committed {
    RunPtr run;
    uint64_t seq;
    bool final;
    Status status;
    std::vector<HistoryEvent> echoed;  // For on_event.
    std::vector<Ready> ready;          // The waits to start now.
    // When the commit failed: what the transition would have stored besides
    // the checkpoints, to be submitted again with the next try, and which
    // checkpoints it carried.
    struct Unsaved {
      std::vector<Decision::Event> events;
      std::optional<DeadLetter> dead_letter;
      std::vector<uint32_t> fibers, removed;
      bool instance = false;
      std::vector<std::string> consumed;
      bool resolve_dead_letters = false;
      std::vector<OutboxEvent> outbox;
      bool event_waits = false;
    };
    std::unique_ptr<Unsaved> unsaved;  // Null after a successful commit.
    runtime::EventKinds kinds;         // Of its events, for the observer.
  };
  std::mutex committed_mu;
  std::vector<Committed> committed_queue;  // Guarded by committed_mu.
  bool drain_posted = false;               // Guarded by committed_mu.
  std::atomic<bool> stopping{false};

  // Ownership (Store::claim): instances this engine runs carry its owner id
  // and a lease of EngineOptions::lease it renews every third of that.
  std::string owner = runtime::this_owner();
  int64_t lease_ms() const { return options.lease.count(); }
  std::mutex resume_mu;  // Held by Engine::resume() throughout.

  // Instances this engine runs that are evicted, and the one timer that
  // wakes the earliest of them; guarded by mu, like runs. (Last, so that the
  // fields above keep the places the commit path was measured with.)
  EvictedSet evicted;
  TimerId evicted_timer;

  // Admission control (EngineOptions::max_active): the runs started beyond
  // the limit, in start order. Each is in `runs` too, so active instances
  // are runs.size() - admission.size(). Guarded by mu.
  std::deque<RunPtr> admission;

  // The gate of each service called so far (gate.hpp), by name; guarded by
  // gates_mu. A call holds its gate (shared) until it ends.
  std::mutex gates_mu;
  std::unordered_map<std::string, std::shared_ptr<runtime::ServiceGate>> gates;

  void renew_leases() {
    if (store) store->renew(owner, now() + lease_ms());
    timers->schedule(now() + lease_ms() / 3, [this] { renew_leases(); });
  }

  ~Impl() { shutdown(); }

  void shutdown() {
    stopping.store(true, std::memory_order_release);
    stop_watch();
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

  // What the machine is given besides the state.
  runtime::Env env() {
    runtime::Env e;
    e.now_ms = now();
    e.functions = fctx.get();
    e.compensation = options.compensation;
    e.random = [this](int64_t n) {
      std::lock_guard lock(rng_mu);
      return std::uniform_int_distribution<int64_t>(0, n)(rng);
    };
    return e;
  }

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
    if (options.observer) {
      linked.value().observed = options.observer->program_linked(
          runtime::shape_of(linked.value().hash, linked.value().program));
    }
    auto shared = std::make_shared<const LinkedProgram>(std::move(linked).value());
    std::lock_guard lock(mu);
    auto [it, added] = programs.emplace(shared->hash, shared);
    return it->second;
  }

  // ---- Applying decisions ----------------------------------------------------

  // Takes in what the machine decided: events and a dead letter for the next
  // transition, fibers abandoned (their timers and late results dropped),
  // checkpoints to write; then commits, and starts the ready fibers' waits
  // once that is durable. Called with run->mu held.
  void apply(const RunPtr& run, Decision d) {
    Run& r = *run;
    if (r.events.empty()) {
      r.events = std::move(d.events);
    } else {
      r.events.insert(r.events.end(), std::make_move_iterator(d.events.begin()),
                      std::make_move_iterator(d.events.end()));
    }
    if (d.dead_letter) {
      d.dead_letter->instance_id = r.id;
      r.dead_letter = std::make_unique<DeadLetter>(std::move(*d.dead_letter));
    }
    if (!d.emitted.empty()) add_emitted(r, d.emitted);
    for (uint32_t id : d.stopped) stop_fiber(r, id);
    for (uint32_t id : d.removed) {
      r.dirty.erase(std::remove(r.dirty.begin(), r.dirty.end(), id), r.dirty.end());
      if (std::find(r.removed.begin(), r.removed.end(), id) == r.removed.end()) {
        r.removed.push_back(id);
      }
      r.fibers.erase(std::remove_if(r.fibers.begin(), r.fibers.end(),
                                    [id](const FiberRun& f) { return f.id == id; }),
                     r.fibers.end());
    }
    for (uint32_t id : d.changed) {
      if (std::find(r.dirty.begin(), r.dirty.end(), id) == r.dirty.end()) r.dirty.push_back(id);
    }
    r.instance_dirty = r.instance_dirty || d.instance_changed;
    for (uint32_t id : d.ready) {
      FiberRun& f = r.fiber_run_or_add(id);
      cancel_timer(f);
      r.ready.push_back({id, ++f.generation});
    }
    if (d.commit) return commit(run, d.status);
    // Nothing to commit first (a resume): start the waits now.
    std::vector<Ready> ready = std::move(r.ready);
    r.ready = {};
    arm_deadline(run);
    for (const Ready& w : ready) advance(run, w);
  }

  // A fiber's wait is given up: its late results and timers no longer count.
  void stop_fiber(Run& r, uint32_t id) {
    if (FiberRun* f = r.fiber_run(id)) {
      cancel_timer(*f);
      ++f->generation;
    }
  }

  void cancel_timer(FiberRun& f) { timers->cancel(std::exchange(f.timer, {})); }

  // ---- Transitions -------------------------------------------------------------

  // Hands the run's current state to the store. When it is durable, the
  // ready fibers start their waits (unless a newer decision moved them on).
  void commit(const RunPtr& run, InstanceStatus status) {
    Run& r = *run;
    Transition t;
    // The first transition creates the row with everything that never
    // changes (program, saga, input, owner); later ones update the rest.
    if (r.starting && r.starting->row) {
      t.create = true;
      t.instance = std::move(*r.starting->row);
      r.starting->row.reset();
    }
    const bool write_instance = t.create || r.instance_dirty || status != r.status;
    const InstanceStatus before = r.status;
    r.status = status;
    t.instance.id = r.id;
    t.write_instance = write_instance;
    if (write_instance) {
      t.instance.status = status;
      t.instance.created_ms = r.created_ms;
      t.instance.updated_ms = now();
      t.instance.wake_at_ms = earliest_wake(r.state);
      t.instance.error_class = scrub_utf8(r.state.error_class);
      t.instance.error_message = scrub_utf8(r.state.error_message);
      if (status == InstanceStatus::kCompleted) {
        t.instance.output_json = r.state.output.to_json_text();
      }
      // The checkpoint lives only in the transition: a waiting instance keeps
      // its state once, as InstanceState, not twice. Reserved at the last
      // checkpoint's size: encoding grows it only rarely.
      t.instance.checkpoint.reserve(r.checkpoint_bytes);
      runtime::encode_checkpoint(r.state, t.instance.checkpoint);
      r.checkpoint_bytes = static_cast<uint32_t>(t.instance.checkpoint.size()) + 64;
    }
    for (uint32_t id : r.dirty) {
      if (const Fiber* f = r.state.fiber(id)) {
        FiberRow row{id, {}};
        runtime::encode_fiber(*f, row.state);
        t.fibers.push_back(std::move(row));
      }
    }
    for (uint32_t id : r.removed) t.fibers.push_back(FiberRow{id, {}});
    r.dirty.clear();
    r.removed.clear();
    r.instance_dirty = false;
    // Moved out, not cleared: a waiting instance keeps no spare capacity.
    std::vector<Decision::Event> events = std::move(r.events);
    r.events = {};
    std::vector<HistoryEvent> echoed;
    if (options.on_event) echoed.reserve(events.size());
    runtime::EventKinds kinds;
    const bool all_live = std::all_of(events.begin(), events.end(),
                                      [](const Decision::Event& e) { return e.live_only; });
    t.events.reserve(events.size());
    for (Decision::Event& e : events) {
      scrub_text(e.event);
      if (options.on_event) echoed.push_back(e.event);
      if (options.observer) runtime::add_kind(kinds, e.event.kind);
      if (!e.live_only || all_live) t.events.push_back(std::move(e.event));
    }
    if (options.notify_operators && status != before && waits_for_operator(status)) {
      add_notice(r, status, t);
    }
    if (r.program->awaits_events) {
      std::vector<EventWait> waits = runtime::event_waits(*r.program, r.state);
      if (!r.inbox) r.inbox = std::make_unique<RunInbox>();
      if (r.inbox->stored_waits != waits) {
        t.event_waits = waits;
        r.inbox->stored_waits = std::move(waits);
      }
    }
    if (r.inbox && !r.inbox->unsaved_outbox.empty()) {
      // A notice of a transition whose commit failed goes with this one.
      t.outbox.insert(t.outbox.begin(), std::make_move_iterator(r.inbox->unsaved_outbox.begin()),
                      std::make_move_iterator(r.inbox->unsaved_outbox.end()));
      r.inbox->unsaved_outbox = {};
    }
    if (r.dead_letter) {
      t.dead_letter = std::move(*r.dead_letter);
      scrub_utf8_in_place(t.dead_letter->error_class);
      scrub_utf8_in_place(t.dead_letter->message);
    }
    r.dead_letter.reset();
    if (r.inbox) {
      t.consumed = std::move(r.inbox->unsaved);
      r.inbox->unsaved = {};
      if (std::exchange(r.inbox->resolve_dead_letters, false)) {
        t.resolve_dead_letters_ms = std::max<int64_t>(now(), 1);
      }
    }
    std::vector<Ready> ready = std::move(r.ready);
    r.ready = {};
    uint64_t seq = ++r.commit_seq;
    bool final = is_terminal(status) || waits_for_operator(status);
    in_flight_commits.fetch_add(1, std::memory_order_relaxed);
    store->submit(
        std::move(t), [this, run, seq, final, echoed = std::move(echoed), ready = std::move(ready),
                       kinds = std::move(kinds)](Status s, Transition& done) mutable {
          Committed c{std::move(run),   seq,     final,           std::move(s), std::move(echoed),
                      std::move(ready), nullptr, std::move(kinds)};
          if (!c.status.ok()) {
            // What it carried, from the transition given back: the fibers it
            // wrote or deleted, and whether it wrote the instance.
            auto unsaved = std::make_unique<Committed::Unsaved>();
            if (!c.echoed.empty()) {
              // Every event it would have reported, the live-only ones too (the
              // transition kept only those it stores): the retry reports them.
              unsaved->events.reserve(c.echoed.size());
              for (HistoryEvent& e : c.echoed) {
                const EventInfo* info = find_event(e.kind);
                const bool live = info && info->storage == EventStorage::kLive;
                unsaved->events.push_back({std::move(e), live});
              }
              c.echoed.clear();
            } else {
              for (HistoryEvent& e : done.events) unsaved->events.push_back({std::move(e), false});
            }
            unsaved->dead_letter = std::move(done.dead_letter);
            unsaved->instance = done.write_instance;
            unsaved->consumed = std::move(done.consumed);
            unsaved->resolve_dead_letters = done.resolve_dead_letters_ms != 0;
            unsaved->outbox = std::move(done.outbox);
            unsaved->event_waits = done.event_waits.has_value();
            for (const FiberRow& f : done.fibers) {
              (f.state.empty() ? unsaved->removed : unsaved->fibers).push_back(f.fiber);
            }
            c.unsaved = std::move(unsaved);
          }
          on_commit_done(std::move(c));
        });
  }

  // The events the code emitted (`emit`): outbox rows of the next
  // transition, with ids derived from the instance and where they were
  // emitted, so that code run again after a crash emits the same ids.
  void add_emitted(Run& r, std::vector<runtime::Emitted>& emitted) {
    if (!r.inbox) r.inbox = std::make_unique<RunInbox>();
    const std::string source = event_source(r.program->program.sagas[r.state.saga].name, r.id);
    const int64_t at = now();
    for (runtime::Emitted& e : emitted) {
      OutboxEvent row;
      row.id = outbox_event_id(r.id, e.position);
      row.instance_id = r.id;
      row.type = std::move(e.type);
      row.source = source;
      row.time_ms = at;
      row.data_json = e.data.to_json_text();
      r.inbox->unsaved_outbox.push_back(std::move(row));
    }
  }

  // The notification of a run that becomes paused or stuck (EngineOptions::
  // notify): an outbox row in the transition `t` that commits the status,
  // described by the transition's last `paused` or `stuck` event.
  void add_notice(const Run& r, InstanceStatus status, Transition& t) {
    const std::string_view kind =
        event_name(status == InstanceStatus::kStuck ? EventKind::stuck : EventKind::paused);
    const HistoryEvent* cause = nullptr;
    for (const HistoryEvent& e : t.events) {
      if (e.kind == kind) cause = &e;
    }
    HistoryEvent fallback;
    fallback.time_ms = now();
    fallback.error_class = r.state.error_class;
    fallback.message = r.state.error_message;
    t.outbox.push_back(notice_event(r.program->program.sagas[r.state.saga].name, r.id, status,
                                    cause ? *cause : fallback));
  }

  // The instance row's wake_at: the earliest due time of a waiting fiber.
  static int64_t earliest_wake(const InstanceState& s) {
    int64_t at = 0;
    for (const Fiber& f : s.fibers) {
      if ((f.wait == Wait::kAction || f.wait == Wait::kUndo) && f.wake_at_ms > 0) {
        at = at == 0 ? f.wake_at_ms : std::min(at, f.wake_at_ms);
      }
    }
    return at;
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
    bool finished = false;
    {
      std::unique_lock lock(run->mu);
      if (!c.status.ok()) {
        if (run->starting) {
          // The instance was never recorded: start() reports the error.
          run->finished = true;
          if (run->starting->promise) run->starting->promise->set_value(c.status);
          run->starting.reset();
          lock.unlock();
          forget(run);
          if (run->on_done) {
            InstanceInfo info = info_of(*run);
            info.status = InstanceStatus::kPending;
            info.error_message = c.status.message();
            run->on_done(info);
          }
          return;
        }
        if (c.status.code() == StatusCode::kFailedPrecondition) {
          // Fenced (Store::CommitDone): another engine took the instance
          // over after this one's lease ran out. It is theirs now: stop
          // running it here, and store nothing more of it.
          fmt::print(stderr, "saga: instance {}: {}\n", run->id, c.status.message());
          run->finished = true;
          timers->cancel(std::exchange(run->deadline_timer, {}));
          for (FiberRun& f : run->fibers) cancel_timer(f);
          lock.unlock();
          forget(run);
          return;
        }
        restore_unsaved(*run, c);
        // Tried again in a second, unless a newer transition carried it all
        // by then (a newer one already on its way did not: it left before).
        timers->schedule(now() + 1000, [this, run] {
          std::lock_guard l(run->mu);
          if (!run->finished && has_pending(*run)) commit(run, run->status);
        });
        return;
      }
      if (run->starting) {
        if (run->starting->promise) run->starting->promise->set_value(Status::Ok());
        run->starting.reset();
      }
      if (c.final && c.seq == run->commit_seq) {
        if (has_pending(*run)) {
          // Events of an earlier transition that failed while this one was
          // on its way: store them too before the instance is let go.
          commit(run, run->status);
        } else {
          run->finished = true;
          finished = true;
          timers->cancel(std::exchange(run->deadline_timer, {}));
          for (FiberRun& f : run->fibers) cancel_timer(f);
        }
      } else if (!c.final) {
        arm_deadline(run);
        for (const Ready& w : c.ready) advance(run, w);
        evict_if_idle(run, c.seq == run->commit_seq);
      }
    }
    // Events are reported after the timers they imply are armed, so a test
    // that moves a ManualClock on seeing an event never races the engine.
    if (options.on_event) {
      for (const HistoryEvent& e : c.echoed) options.on_event(run->id, e);
    }
    if (options.observer) observe_committed(*run, c, finished);
    if (finished) {
      forget(run);
      if (run->on_done) run->on_done(info_of(*run));
    }
  }

  // Whether the run holds something no transition carries yet (after a
  // failed commit). Called with run->mu held.
  static bool has_pending(const Run& r) {
    return !r.events.empty() || r.dead_letter || !r.dirty.empty() || !r.removed.empty() ||
           r.instance_dirty || !r.ready.empty() ||
           (r.inbox && (!r.inbox->unsaved.empty() || r.inbox->resolve_dead_letters ||
                        !r.inbox->unsaved_outbox.empty()));
  }

  // A failed commit (disk full, locked) acknowledged nothing: what it would
  // have stored goes with the next transition of the instance (the retry, or
  // a newer one already on its way), and its ready fibers wait for that one.
  // Called with run->mu held.
  void restore_unsaved(Run& r, Committed& c) {
    fmt::print(stderr, "saga: instance {}: cannot commit: {} (retrying in 1s)\n", r.id,
               c.status.message());
    Committed::Unsaved& u = *c.unsaved;
    std::vector<Decision::Event> back;
    back.reserve(u.events.size() + r.events.size());
    for (Decision::Event& e : u.events) back.push_back(std::move(e));
    back.insert(back.end(), std::make_move_iterator(r.events.begin()),
                std::make_move_iterator(r.events.end()));
    r.events = std::move(back);
    if (u.dead_letter && !r.dead_letter) {
      r.dead_letter = std::make_unique<DeadLetter>(std::move(*u.dead_letter));
    }
    for (uint32_t id : u.fibers) {
      if (r.state.fiber(id) && std::find(r.dirty.begin(), r.dirty.end(), id) == r.dirty.end()) {
        r.dirty.push_back(id);
      }
    }
    for (uint32_t id : u.removed) {
      if (std::find(r.removed.begin(), r.removed.end(), id) == r.removed.end()) {
        r.removed.push_back(id);
      }
    }
    r.instance_dirty = r.instance_dirty || u.instance;
    r.ready.insert(r.ready.end(), c.ready.begin(), c.ready.end());
    if (!u.outbox.empty()) {
      if (!r.inbox) r.inbox = std::make_unique<RunInbox>();
      r.inbox->unsaved_outbox.insert(r.inbox->unsaved_outbox.begin(),
                                     std::make_move_iterator(u.outbox.begin()),
                                     std::make_move_iterator(u.outbox.end()));
    }
    if (u.event_waits && r.inbox) r.inbox->stored_waits.reset();  // Written again.
    if (!u.consumed.empty() || u.resolve_dead_letters) {
      if (!r.inbox) r.inbox = std::make_unique<RunInbox>();
      r.inbox->unsaved.insert(r.inbox->unsaved.end(), u.consumed.begin(), u.consumed.end());
      r.inbox->resolve_dead_letters = r.inbox->resolve_dead_letters || u.resolve_dead_letters;
    }
  }

  void forget(const RunPtr& run) {
    {
      std::lock_guard lock(mu);
      auto it = runs.find(run->id);
      if (it != runs.end() && it->second == run) runs.erase(it);
      if (claiming > 0) ended_while_claiming.insert(run->id);
    }
    changed.notify_all();
    post_admit();
  }

  // ---- Admission (EngineOptions::max_active) ---------------------------------------

  // Whether one more run may begin. Called with mu held.
  bool has_room() const {
    return options.max_active == 0 || runs.size() - admission.size() < options.max_active;
  }

  // Begins a prepared run now, or records it `pending` and queues it when
  // the engine runs max_active instances already (or others wait before it).
  void start_run(const RunPtr& run) {
    bool queue = false;
    size_t running = 0;
    {
      std::lock_guard lock(mu);
      running = runs.size() - admission.size();
      queue = options.max_active > 0 && (!admission.empty() || running >= options.max_active);
      runs[run->id] = run;
      if (queue) {
        run->queued = true;
        run->recorded.store(false, std::memory_order_relaxed);
        admission.push_back(run);
      }
    }
    std::lock_guard lock(run->mu);
    if (queue) return record_pending(run, running);
    begin(run);
  }

  // Writes a queued run's row as `pending` (the first commit of any run
  // creates its row; this one creates it without beginning). start()
  // returns once it is durable; the run begins when admitted. Called with
  // run->mu held.
  void record_pending(const RunPtr& run, size_t running) {
    Transition t;
    t.create = true;
    t.instance = std::move(*run->starting->row);
    t.instance.id = run->id;
    t.instance.status = InstanceStatus::kPending;
    t.instance.created_ms = t.instance.updated_ms = run->created_ms;
    HistoryEvent recorded{now(),
                          std::string(event_name(EventKind::recorded)),
                          {},
                          0,
                          {},
                          fmt::format("waiting for admission: {} instances running (max_active {})",
                                      running, options.max_active),
                          {}};
    t.events.push_back(recorded);
    std::shared_ptr<std::promise<Status>> promise = std::move(run->starting->promise);
    run->starting.reset();
    run->status = InstanceStatus::kPending;
    store->submit(std::move(t), [this, run, promise, recorded](Status s) {
      if (s.ok() && options.on_event) options.on_event(run->id, recorded);
      if (promise) promise->set_value(s);
      if (!s.ok()) {
        // Never recorded: the start failed (start() or the callback says so).
        bool was_queued = false;
        {
          std::lock_guard lock(mu);
          auto it = std::find(admission.begin(), admission.end(), run);
          was_queued = it != admission.end();
          if (was_queued) admission.erase(it);
          run->queued = false;
        }
        if (!was_queued) return;  // Began meanwhile (a cancel): its commits report.
        {
          std::lock_guard lock(run->mu);
          run->finished = true;
        }
        forget(run);
        if (run->on_done) {
          InstanceInfo info = info_of(*run);
          info.status = InstanceStatus::kPending;
          info.error_message = s.message();
          run->on_done(info);
        }
        return;
      }
      run->recorded.store(true, std::memory_order_release);
      post_admit();
    });
  }

  void post_admit() {
    if (options.max_active == 0) return;
    {
      std::lock_guard lock(mu);
      if (admission.empty() || !has_room()) return;
    }
    boost::asio::post(io, [this] { admit(); });
  }

  // Begins queued runs, oldest first, while there is room; a run whose
  // `pending` row is not durable yet stops the line (its commit posts this
  // again).
  void admit() {
    std::vector<RunPtr> go;
    {
      std::lock_guard lock(mu);
      while (!admission.empty() && has_room() &&
             admission.front()->recorded.load(std::memory_order_acquire)) {
        RunPtr run = std::move(admission.front());
        admission.pop_front();
        run->queued = false;
        go.push_back(std::move(run));
      }
    }
    for (const RunPtr& run : go) {
      std::lock_guard lock(run->mu);
      if (!run->finished) begin(run);
    }
  }

  // Takes a run out of the admission queue (to cancel it); false when it
  // is not queued.
  bool unqueue(const RunPtr& run) {
    std::lock_guard lock(mu);
    if (!run->queued) return false;
    auto it = std::find(admission.begin(), admission.end(), run);
    if (it != admission.end()) admission.erase(it);
    run->queued = false;
    return true;
  }

  // ---- Waits ---------------------------------------------------------------------

  // Starts what fiber w.fiber waits for (now, or at its wake time), unless it
  // moved on since it was made ready. Called with run->mu held.
  void advance(const RunPtr& run, const Ready& w) {
    FiberRun* fr = run->fiber_run(w.fiber);
    const Fiber* f = run->state.fiber(w.fiber);
    if (!fr || !f || fr->generation != w.generation || run->finished) return;
    if (f->wait != Wait::kAction && f->wait != Wait::kUndo) return;
    // An await that a kept signal satisfies takes it now, before its timer.
    if (runtime::waits_for_signal(*run->program, *f) && take_signals(run)) return;
    const int64_t due = f->wake_at_ms;
    if (due > now()) {
      std::weak_ptr<Run> weak = run;
      fr->timer = timers->schedule(due, [this, weak, w] {
        RunPtr run = weak.lock();
        if (!run) return;
        std::lock_guard lock(run->mu);
        FiberRun* fr = run->fiber_run(w.fiber);
        if (fr && fr->generation == w.generation) {
          fr->timer = {};
          dispatch(run, w);
        }
      });
      return;
    }
    dispatch(run, w);
  }

  void arm_deadline(const RunPtr& run) {
    InstanceState& s = run->state;
    if (run->deadline_timer || s.deadline_ms == 0 || s.phase != Phase::kForward) return;
    std::weak_ptr<Run> weak = run;
    run->deadline_timer = timers->schedule(s.deadline_ms, [this, weak] {
      RunPtr run = weak.lock();
      if (!run) return;
      std::lock_guard lock(run->mu);
      // (deadline_ms is 0 once the saga passed its pivot: no deadline then.)
      if (run->state.phase != Phase::kForward || run->finished || run->state.deadline_ms == 0) {
        return;
      }
      const bytecode::Saga& saga = run->program->program.sagas[run->state.saga];
      interrupt(run, "timeout", fmt::format("deadline of {} exceeded", format_ms(saga.deadline_ms)),
                false);
    });
  }

  // Gives up the forward path (deadline or cancel). Called with run->mu held.
  void interrupt(const RunPtr& run, std::string error_class, std::string message, bool cancel) {
    runtime::Env e = env();
    apply(run, runtime::interrupt(*run->program, run->state, std::move(error_class),
                                  std::move(message), cancel, e));
  }

  // An attempt of fiber w.fiber ended. Called with run->mu held; ignored when
  // the fiber moved on since the attempt began.
  void attempt_ended(const RunPtr& run, const Ready& w, Outcome out) {
    FiberRun* fr = run->fiber_run(w.fiber);
    if (!fr || fr->generation != w.generation || run->finished) return;
    cancel_timer(*fr);
    ++fr->generation;
    if (options.observer) observe_attempt(*run, w, out);
    runtime::Env e = env();
    apply(run, runtime::attempt_ended(*run->program, run->state, w.fiber, out, e));
  }

  Outcome failed(std::string error_class, std::string message) {
    Outcome o;
    o.error_class = std::move(error_class);
    o.message = std::move(message);
    return o;
  }

  // Starts the attempt fiber w.fiber waits for: at once, or when its
  // service's gate lets it out (gate.hpp). Called with run->mu held.
  void dispatch(const RunPtr& run, const Ready& w) {
    Fiber& f = *run->state.fiber(w.fiber);
    const bytecode::Program& p = run->program->program;
    const bytecode::Step& step = p.steps[f.step];
    const bool undo = f.wait == Wait::kUndo;
    const bytecode::Action& action = p.actions[undo ? step.undo_action : step.action];

    // An await's timer is its timeout: no signal came first.
    if (runtime::performer(action) == stdlib::Performer::kSignal) {
      FiberRun* fr = run->fiber_run(w.fiber);
      cancel_timer(*fr);
      ++fr->generation;
      runtime::Env e = env();
      return apply(run, runtime::signal_timed_out(*run->program, run->state, w.fiber, e));
    }
    // Built-in actions the engine performs itself: the machine does what
    // they mean (a sleep's timer already ran; a log line is an event).
    if (runtime::engine_performed(action)) {
      Outcome ok;
      ok.ok = true;
      return attempt_ended(run, w, std::move(ok));
    }
    if (action.service == bytecode::kNoService) return send(run, w, {});
    const bytecode::Service& svc = p.services[action.service];
    GateUse use{gate_of(svc),
                undo ? runtime::ServiceGate::Kind::kUndo : runtime::ServiceGate::Kind::kDo, now(),
                0};
    if (use.gate->try_acquire(use.kind, f.attempt > 1, use.asked_ms)) {
      return send(run, w, std::move(use));
    }
    std::weak_ptr<Run> weak = run;
    uint64_t ticket = 0;
    // The waiter holds its gate weakly: the gate holds the waiter, and a
    // strong reference would keep both alive after the engine is gone.
    std::weak_ptr<runtime::ServiceGate> weak_gate = use.gate;
    const runtime::ServiceGate::Kind kind = use.kind;
    const int64_t asked = use.asked_ms;
    const bool sent_now = use.gate->acquire(
        kind, f.attempt > 1, asked,
        [this, weak, w, weak_gate, kind, asked](bool granted) {
          // From whichever thread freed the slot: continue on an engine
          // thread (the run's lock is not to be taken under another's).
          boost::asio::post(io, [this, weak, w, weak_gate, kind, asked, granted] {
            std::shared_ptr<runtime::ServiceGate> gate = weak_gate.lock();
            if (!gate) return;
            RunPtr run = weak.lock();
            if (!run) {
              if (granted) gate->release(now(), nullptr);
              return;
            }
            std::lock_guard lock(run->mu);
            FiberRun* fr = run->fiber_run(w.fiber);
            if (!fr || fr->generation != w.generation || run->finished) {
              if (granted) gate->release(now(), nullptr);  // Given up while it waited.
              return;
            }
            GateUse use{gate, kind, asked, now() - asked};
            if (granted) return send(run, w, std::move(use));
            const bytecode::Program& p = run->program->program;
            Outcome o = failed(
                "unavailable",
                "not sent: " + waited(use, p.services[p.actions[action_of(*run, w)].service].name));
            o.not_sent = true;
            attempt_ended(run, w, std::move(o));
          });
        },
        ticket);
    if (sent_now) return send(run, w, std::move(use));
    arm_gate_tick();
  }

  // The action fiber w.fiber waits for (its step's do, or its undo).
  static uint32_t action_of(const Run& run, const Ready& w) {
    const Fiber& f = *run.state.fiber(w.fiber);
    const bytecode::Step& step = run.program->program.steps[f.step];
    return f.wait == Wait::kUndo ? step.undo_action : step.action;
  }

  // A call's hold on its service's gate: which gate, what kind of call, when
  // it asked and how long it waited. Empty (no gate) for calls of actions
  // without a service.
  struct GateUse {
    std::shared_ptr<runtime::ServiceGate> gate;
    runtime::ServiceGate::Kind kind = runtime::ServiceGate::Kind::kDo;
    int64_t asked_ms = 0;
    int64_t queued_ms = 0;
  };

  // What ends a sent call's hold on its gate, once, whichever comes first:
  // its outcome or its attempt's timeout.
  struct Slot {
    GateUse use;
    int64_t sent_ms = 0;
    std::atomic<bool> released{false};
    // Set by observe_sent() when the engine has an observer.
    EngineObserver* observer = nullptr;
    std::shared_ptr<ObservedProgram> observed;
    uint32_t step = 0;
    bool undo = false;
    std::chrono::steady_clock::time_point sent_at;
    void end(int64_t now_ms, bool ok, const std::string& error_class, bool not_sent) {
      if (released.exchange(true)) return;
      if (observer) {
        observer->call_ended(*observed, step, undo, std::chrono::steady_clock::now() - sent_at);
      }
      if (!use.gate) return;
      runtime::ServiceGate::End e;
      e.kind = use.kind;
      e.latency_ms = now_ms - sent_ms;
      e.ok = ok;
      // The transient classes (those retry policies retry by default:
      // timeout, unavailable) are the service's own sign of overload.
      const ErrorClassInfo* cls = find_error_class(error_class);
      e.overload = !ok && !not_sent && cls && cls->retried_by_default;
      use.gate->release(now_ms, &e);
    }
  };

  // Calls that waited this long say so in their history event.
  static constexpr int64_t kNoteQueuedMs = 100;

  // "waited 1.5s for a slot of service 'inventory' (limit 3, 412 waiting)".
  static std::string waited(const GateUse& use, const std::string& service) {
    return fmt::format("waited {} for a slot of service '{}' (limit {}, {} waiting)",
                       format_ms(use.queued_ms), service, use.gate->limit(), use.gate->waiting());
  }

  static std::string gate_note(const GateUse& use, const std::string& service) {
    if (!use.gate || use.queued_ms < kNoteQueuedMs) return {};
    return waited(use, service);
  }

  std::shared_ptr<runtime::ServiceGate> gate_of(const bytecode::Service& svc) {
    std::lock_guard lock(gates_mu);
    auto& gate = gates[svc.name];
    if (!gate) {
      const OverloadOptions& o = options.overload;
      runtime::GateSettings g;
      g.limit.adaptive = o.adaptive;
      g.limit.initial = o.initial_limit;
      g.limit.max = o.max_limit;
      g.limit.tolerance = o.tolerance;
      runtime::BudgetSettings b;
      b.ratio = o.retry_ratio;
      b.floor_per_second = o.retry_floor_per_second;
      b.max_tokens = o.retry_max_tokens;
      b.enabled = o.retry_budget;
      g.retries = g.undo_retries = b;
      g.max_wait_ms = o.max_wait.count();
      gate = std::make_shared<runtime::ServiceGate>(g, svc.bulkhead, now());
    }
    return gate;
  }

  // While calls wait at a gate, every 100 ms the gates shed those that
  // waited too long and let out retries whose budget refilled.
  std::atomic<bool> gate_tick_armed{false};
  void arm_gate_tick() {
    if (gate_tick_armed.exchange(true)) return;
    timers->schedule(now() + 100, [this] {
      std::vector<std::shared_ptr<runtime::ServiceGate>> all;
      {
        std::lock_guard lock(gates_mu);
        for (auto& [name, g] : gates) all.push_back(g);
      }
      size_t waiting = 0;
      for (auto& g : all) {
        g->tick(now());
        waiting += g->waiting();
      }
      gate_tick_armed.store(false);
      if (waiting > 0) arm_gate_tick();
    });
  }

  // Sends the attempt fiber w.fiber waits for (its gate, if any, holds a
  // slot for it). Called with run->mu held.
  void send(const RunPtr& run, const Ready& w, GateUse use) {
    Fiber& f = *run->state.fiber(w.fiber);
    const bytecode::Program& p = run->program->program;
    const bytecode::Step& step = p.steps[f.step];
    const bool undo = f.wait == Wait::kUndo;
    const bytecode::Action& action = p.actions[undo ? step.undo_action : step.action];
    static const std::string kNoService;
    const std::string& service =
        action.service != bytecode::kNoService ? p.services[action.service].name : kNoService;
    auto slot = std::make_shared<Slot>();
    slot->use = std::move(use);
    slot->sent_ms = now();
    std::string note = gate_note(slot->use, service);

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
      if (!url.empty()) {
        observe_sent(*slot, *run, f, undo);
        return call_service(run, w, f, step, action, undo, url, slot, note);
      }
    }
    if (!impl.sync && !impl.async) {
      slot->end(now(), false, "unsupported", true);
      std::string why =
          action.service != bytecode::kNoService
              ? fmt::format(
                    "no action '{}' is registered and service '{}' has no url: the host "
                    "application must provide it (Engine::register_action), or give the service "
                    "a url (sagactl --service {}=http://host:port)",
                    action.name, service, service)
              : fmt::format("the standard action '{}' is not available in this process",
                            action.name);
      return attempt_ended(run, w, failed("unsupported", why));
    }
    observe_sent(*slot, *run, f, undo);

    // Per-attempt timeout (machine.hpp).
    const int64_t timeout = runtime::attempt_timeout_ms(p, step, action);
    FiberRun& fr = *run->fiber_run(w.fiber);
    if (timeout > 0 && impl.async) arm_attempt_timeout(run, w, fr, timeout, slot, note);

    if (impl.sync) {
      // A synchronous action runs here, on this engine thread, under the
      // run's lock (no other event of this instance can interleave). It cannot
      // be interrupted: when it returns after its timeout, its result is
      // discarded and the attempt counts as timed out (it may have had an
      // effect, so the step is in doubt).
      ActionCall call;
      call.action = action.name;
      describe_call(call, *run, f, undo);
      call.timeout_ms = timeout;
      f.attempt_out = true;
      int64_t started = now();
      Outcome out;
      try {
        auto converted = Value::from_json(impl.sync(call));
        if (converted.ok()) {
          out.ok = true;
          out.result = std::move(converted).value();
        } else {
          out = failed("error", "the action returned a result that is not a JSON value: " +
                                    converted.status().message());
        }
      } catch (const ActionError& e) {
        out = failed(e.error_class(), e.what());
      } catch (const std::exception& e) {
        out = failed("error", e.what());
      }
      if (timeout > 0 && now() - started > timeout) {
        out = failed("timeout", fmt::format("no answer within {}", format_ms(timeout)));
      }
      slot->end(now(), out.ok, out.error_class, false);
      out.note = std::move(note);
      return attempt_ended(run, w, std::move(out));
    }

    auto call = std::make_shared<ActionCall>();
    call->action = action.name;
    describe_call(*call, *run, f, undo);
    call->timeout_ms = timeout;

    auto state = std::make_shared<Completion::State>();
    state->deliver = outcome_handler(run, w, "action", slot, std::move(note));
    Completion completion(state);
    f.attempt_out = true;
    boost::asio::post(io, [registered = std::move(registered), call, completion] {
      try {
        registered->async(*call, completion);
      } catch (const std::exception& e) {
        completion.fail("error", e.what());
      }
    });
  }

  // ---- Reports to the observer (EngineObserver), when there is one ---------------

  // A call goes out: its slot reports its end.
  void observe_sent(Slot& slot, const Run& run, const Fiber& f, bool undo) {
    if (!options.observer || !run.program->observed) return;
    slot.observer = options.observer.get();
    slot.observed = run.program->observed;
    slot.step = f.step;
    slot.undo = undo;
    slot.sent_at = std::chrono::steady_clock::now();
    options.observer->call_sent(*slot.observed, slot.step, undo);
  }

  void observe_attempt(const Run& run, const Ready& w, const Outcome& out) {
    const Fiber* f = run.state.fiber(w.fiber);
    if (!f || !run.program->observed) return;
    options.observer->attempt_ended(*run.program->observed, f->step, f->wait == Wait::kUndo,
                                    out.ok ? std::string_view() : out.error_class);
  }

  void observe_committed(const Run& run, const Committed& c, bool finished) {
    if (!run.program->observed) return;
    ObservedProgram& p = *run.program->observed;
    if (!c.kinds.empty()) {
      options.observer->committed(p, run.state.saga, {c.kinds.data(), c.kinds.size()});
    }
    if (finished) {
      options.observer->instance_ended(p, run.state.saga, run.status,
                                       std::chrono::milliseconds(now() - run.created_ms));
    }
  }

  // Ends the attempt of fiber w.fiber as timed out after `timeout` ms, unless
  // it ended before. Called with run->mu held.
  void arm_attempt_timeout(const RunPtr& run, const Ready& w, FiberRun& fr, int64_t timeout,
                           const std::shared_ptr<Slot>& slot, const std::string& note) {
    // Held weakly: a finished instance must not stay in memory until its
    // abandoned timeouts come due.
    std::weak_ptr<Run> weak = run;
    fr.timer = timers->schedule(now() + timeout, [this, weak, w, timeout, slot, note] {
      slot->end(now(), false, "timeout", false);
      RunPtr run = weak.lock();
      if (!run) return;
      std::lock_guard lock(run->mu);
      Outcome o = failed("timeout", fmt::format("no answer within {}", format_ms(timeout)));
      o.note = note;
      attempt_ended(run, w, std::move(o));
    });
  }

  // Fills what every action and service call carries. The idempotency key is
  // "<instance>/<step>" for a do and "<instance>/<step>/undo" for its undo,
  // the step named with its branch and item ("flight/book", "reserve[3]"):
  // the same for every attempt and after a crash.
  template <class Call>
  static void describe_call(Call& call, const Run& run, const Fiber& f, bool undo) {
    const std::string name = runtime::step_name(*run.program, f);
    call.args = f.args.to_json();
    call.instance_id = run.id;
    call.step = name;
    call.idempotency_key = run.id + "/" + name + (undo ? "/undo" : "");
    call.attempt = f.attempt;
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
  void call_service(const RunPtr& run, const Ready& w, Fiber& f, const bytecode::Step& step,
                    const bytecode::Action& action, bool undo, const std::string& url,
                    const std::shared_ptr<Slot>& slot, std::string note) {
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
    describe_call(call, *run, f, undo);
    call.timeout_ms = runtime::attempt_timeout_ms(run->program->program, step, action);
    call.breaker_failures = svc.breaker_failures;
    call.breaker_reset_ms = static_cast<int64_t>(svc.breaker_reset_ms);
    call.breaker_probes = svc.breaker_probes;
    call.bulkhead = svc.bulkhead;
    f.attempt_out = true;
    boost::asio::post(io, [this, call = std::move(call),
                           done = outcome_handler(run, w, "service", slot, std::move(note))] {
      options.service_transport(call, done);
    });
  }

  // What receives the outcome of an attempt (a Completion's, or a service
  // transport's), from any thread: it converts the result and ends the
  // attempt on an engine thread, unless the attempt was abandoned meanwhile
  // (another generation), the instance is gone, or the engine is. `what`
  // names the callee in an error ("the service returned ...").
  std::function<void(ServiceOutcome)> outcome_handler(const RunPtr& run, const Ready& w,
                                                      const char* what, std::shared_ptr<Slot> slot,
                                                      std::string note) {
    std::weak_ptr<Impl> self = weak_from_this();
    std::weak_ptr<Run> weak = run;
    return
        [self, weak, w, what, slot = std::move(slot), note = std::move(note)](ServiceOutcome out) {
          std::shared_ptr<Impl> impl = self.lock();
          if (!impl) return;  // The engine is gone; the instance resumes next time.
          slot->end(impl->now(), out.ok, out.error_class, out.not_sent);
          auto converted = out.ok ? Value::from_json(out.result) : Result<Value>(Value());
          boost::asio::post(impl->io, [impl = impl.get(), weak, w, what, note, out = std::move(out),
                                       converted = std::move(converted)]() mutable {
            RunPtr run = weak.lock();
            if (!run) return;
            std::lock_guard lock(run->mu);
            Outcome o;
            if (out.ok && !converted.ok()) {
              o = impl->failed("error", fmt::format("the {} returned a result that is not a JSON "
                                                    "value: {}",
                                                    what, converted.status().message()));
            } else {
              o.ok = out.ok;
              if (out.ok) o.result = std::move(converted).value();
              o.error_class = std::move(out.error_class);
              o.message = std::move(out.message);
              o.retry_after_ms = out.retry_after_ms;
              o.not_sent = out.not_sent;
            }
            o.note = std::move(note);
            impl->attempt_ended(run, w, std::move(o));
          });
        };
  }

  // ---- Eviction (see the top of this file) ---------------------------------------

  // How many due evicted instances one job loads: when many come due at
  // once, the rest go to another job, which the other threads pick up.
  static constexpr size_t kReloadBatch = 64;

  // The due time of a run that may be evicted, or nullopt: every fiber
  // waits in its timer (a sleep or a backoff: armed, nothing out), at a
  // join, or has ended, and the earliest of those timers and the deadline is
  // at least options.evict_after ahead. Called with run->mu held.
  std::optional<int64_t> eviction_due(const Run& r) {
    const int64_t after = options.evict_after.count();
    if (after <= 0 || r.finished || r.starting) return std::nullopt;
    int64_t due = std::numeric_limits<int64_t>::max();
    for (const Fiber& f : r.state.fibers) {
      if (f.ended || f.wait == Wait::kJoin) continue;
      if (f.wait != Wait::kAction && f.wait != Wait::kUndo) return std::nullopt;
      const FiberRun* fr = r.fiber_run(f.id);
      if (f.attempt_out || !fr || !fr->timer) return std::nullopt;
      due = std::min(due, f.wake_at_ms);
    }
    if (r.state.phase == Phase::kForward && r.state.deadline_ms > 0) {
      due = std::min(due, r.state.deadline_ms);
    }
    if (due == std::numeric_limits<int64_t>::max() || due - now() < after) return std::nullopt;
    return due;
  }

  // Evicts the run if it may be (eviction_due) and nothing of it is
  // uncommitted: `settled` says no transition of it is on its way. Called
  // with run->mu held.
  void evict_if_idle(const RunPtr& run, bool settled) {
    if (!settled || has_pending(*run)) return;
    std::optional<int64_t> due = eviction_due(*run);
    if (!due) return;
    std::optional<InstanceKey> key = InstanceKey::parse(run->id);
    if (!key) return;  // Not an id this engine made: it stays in memory.
    // Its waits are given up here (timers cancelled, generations moved on,
    // so nothing already posted can act on this Run) and start again from
    // the store when it is loaded.
    for (FiberRun& f : run->fibers) {
      cancel_timer(f);
      ++f.generation;
    }
    timers->cancel(std::exchange(run->deadline_timer, {}));
    run->finished = true;
    run->evicted = true;
    std::unique_ptr<Engine::DoneCallback> done;
    if (run->on_done) done = std::make_unique<Engine::DoneCallback>(std::move(run->on_done));
    run->on_done = nullptr;
    std::lock_guard lock(mu);
    evicted.add(*key, *due, run->state.phase == Phase::kForward, std::move(done));
    auto it = runs.find(run->id);
    if (it != runs.end() && it->second == run) runs.erase(it);
    arm_evicted_timer();
    if (!admission.empty() && has_room()) boost::asio::post(io, [this] { admit(); });
  }

  // Keeps the evicted instances' timer at the earliest due time. Called with
  // mu held.
  void arm_evicted_timer() {
    const int64_t next = evicted.next_due();
    if (evicted_timer && evicted_timer.due <= next) return;
    timers->cancel(std::exchange(evicted_timer, {}));
    if (next == std::numeric_limits<int64_t>::max()) return;
    evicted_timer = timers->schedule(next, [this] { reload_due(); });
  }

  // Runs on an engine thread when the timer fires: loads what is due.
  void reload_due() {
    std::vector<EvictedSet::Due> due;
    {
      std::lock_guard lock(mu);
      evicted_timer = {};
      evicted.take_due(now(), kReloadBatch, due);
      arm_evicted_timer();
    }
    for (const EvictedSet::Due& d : due) {
      if (stopping.load(std::memory_order_acquire)) return;  // It resumes next time.
      reload(d.key, d.epoch);
    }
  }

  enum class Reload { kLoaded, kGone, kLater };

  // Loads the evicted instance `key` (eviction `epoch`) from the store into
  // a new Run and starts its waits, as they were: a sleep that is due now
  // ends, a backoff's attempt is made. A cancel recorded meanwhile (here or
  // by another process) is applied at once. Returns kGone when that
  // eviction is over (another reload took it first, or the instance cannot
  // be read and is now stuck) and kLater when the store could not be read:
  // it is tried again in a second. Called with no lock held.
  Reload reload(const InstanceKey& key, uint32_t epoch) {
    const std::string id = key.text();
    auto rec = store->get_instance(id);
    if (!rec.ok()) {
      fmt::print(stderr, "saga: instance {}: cannot load it again: {} (retrying in 1s)\n", id,
                 rec.status().message());
      std::lock_guard lock(mu);
      evicted.postpone(key, epoch, now() + 1000);
      arm_evicted_timer();
      return Reload::kLater;
    }
    // Not ours to run any more: deleted, or finished by an engine that took
    // it over (this process stalled past its lease).
    if (!rec.value() || rec.value()->owner != owner || is_terminal(rec.value()->status) ||
        waits_for_operator(rec.value()->status)) {
      drop_evicted(key, epoch, rec.value() ? &*rec.value() : nullptr);
      return Reload::kGone;
    }
    InstanceRecord& row = *rec.value();
    bool pending = false;
    RunPtr run = load_run(row, pending);
    if (!run) {  // Unreadable, and now stuck (load_run said why).
      row.status = InstanceStatus::kStuck;
      drop_evicted(key, epoch, &row);
      return Reload::kGone;
    }
    std::lock_guard run_lock(run->mu);
    {
      std::lock_guard lock(mu);
      std::optional<EvictedSet::Entry> e = evicted.take(key, epoch);
      if (!e) return Reload::kGone;
      if (e->on_done) run->on_done = std::move(*e->on_done);
      runs[run->id] = run;
    }
    if (pending) {
      begin(run);
    } else {
      runtime::Env e = env();
      apply(run, runtime::reloaded(*run->program, run->state, e));
    }
    if (!row.inbox.empty()) {
      for (const InboxMessage& m : row.inbox) handle_message(run, m);
    } else {
      evict_if_idle(run, run->commit_seq == 0);
    }
    return Reload::kLoaded;
  }

  // Forgets an evicted instance this engine no longer runs; start_async()'s
  // callback hears of its end, when the row says it ended.
  void drop_evicted(const InstanceKey& key, uint32_t epoch, const InstanceRecord* row) {
    std::optional<EvictedSet::Entry> e;
    {
      std::lock_guard lock(mu);
      e = evicted.take(key, epoch);
      // As forget() does: a resume() claiming now read it before this.
      if (e && claiming > 0) ended_while_claiming.insert(key.text());
    }
    changed.notify_all();
    if (e && e->on_done && row &&
        (is_terminal(row->status) || row->status == InstanceStatus::kStuck)) {
      InstanceInfo info = info_of(*row);
      info.input = nullptr;
      (*e->on_done)(info);
    }
  }

  // Acts on an inbox message (already durable in the store) if this engine
  // runs its instance, in memory or evicted; returns false when it does not.
  bool deliver_here(const InboxMessage& m) {
    const std::optional<InstanceKey> key = InstanceKey::parse(m.instance_id);
    for (;;) {
      RunPtr run;
      std::optional<uint32_t> epoch;
      {
        std::lock_guard lock(mu);
        auto it = runs.find(m.instance_id);
        if (it != runs.end()) {
          run = it->second;
        } else if (const EvictedSet::Entry* e = key ? evicted.find(*key) : nullptr) {
          epoch = e->epoch;
        }
      }
      if (run) {
        // Waiting for admission: it begins now, to take the message.
        const bool was_queued = unqueue(run);
        std::lock_guard lock(run->mu);
        if (run->evicted) continue;  // Evicted meanwhile: it is in the set now.
        if (was_queued && !run->finished) begin(run);
        // A run that finished is forgotten soon: the message waits in the
        // inbox for the engine that takes the instance up next.
        if (run->finished) return false;
        handle_message(run, m);
        return true;
      }
      if (!epoch) return false;
      // Loaded again, it reads the message from its row and acts on it.
      if (reload(*key, *epoch) != Reload::kGone) return true;
    }
  }

  // The machine decides what message `m` does to the run; the message is
  // consumed with the transition that commits the decision. A message the
  // run acted on already is ignored. Called with run->mu held.
  void handle_message(const RunPtr& run, const InboxMessage& m) {
    Run& r = *run;
    if (r.finished) return;
    if (!r.inbox) r.inbox = std::make_unique<RunInbox>();
    if (std::find(r.inbox->handled.begin(), r.inbox->handled.end(), m.id) !=
        r.inbox->handled.end()) {
      return;
    }
    r.inbox->handled.push_back(m.id);
    std::string name, data;
    if (read_signal(m, name, data) && r.state.phase == Phase::kForward) {
      // Kept in post order until an await takes it (now, if one waits).
      auto& kept = r.inbox->signals;
      kept.insert(std::upper_bound(
                      kept.begin(), kept.end(), m,
                      [](const InboxMessage& a, const InboxMessage& b) { return a.seq < b.seq; }),
                  m);
      take_signals(run);
      return;
    }
    r.inbox->unsaved.push_back(m.id);
    runtime::Env e = env();
    Decision d = runtime::message_arrived(*r.program, r.state, m, e);
    if (d.resolve_dead_letters) r.inbox->resolve_dead_letters = true;
    d.commit = true;  // At least the consumption.
    apply(run, std::move(d));
  }

  // Hands the kept signals, oldest first, to the awaits that wait for
  // them; each is consumed by the transition that commits its decision.
  // Returns whether one was taken. Called with run->mu held.
  bool take_signals(const RunPtr& run) {
    Run& r = *run;
    if (!r.inbox || r.finished) return false;
    bool took = false;
    auto& kept = r.inbox->signals;
    for (size_t i = 0; i < kept.size();) {
      std::string name, data;
      (void)read_signal(kept[i], name, data);
      const std::optional<uint32_t> fid = runtime::awaiting_fiber(*r.program, r.state, name, data);
      if (!fid) {
        ++i;
        continue;
      }
      InboxMessage m = std::move(kept[i]);
      kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(i));
      // The await's timer and any late event of its wait no longer count.
      FiberRun& fr = r.fiber_run_or_add(*fid);
      cancel_timer(fr);
      ++fr.generation;
      r.inbox->unsaved.push_back(m.id);
      runtime::Env e = env();
      apply(run, runtime::signal_arrived(*r.program, r.state, *fid, m, data, e));
      took = true;
      i = 0;  // The state moved on: an earlier signal may fit a new await.
    }
    return took;
  }

  // The inbox watch: every options.inbox_watch, one query for messages
  // other processes posted since the last it saw; each goes to the run it
  // is for, or (EngineOptions::serve_inbox) makes this engine take the
  // instance up. With a store that notifies, the query runs when a
  // notification arrives, and anyway every options.notified_inbox_watch.
  // Runs on its own thread, with the real clock (a test's ManualClock moves
  // only timers).
  void watch_inbox(const std::function<void(const std::string&)>& take_up) {
    const bool notified = store->notifies();
    uint64_t work = notified ? store->work_count() : 0;
    auto last = store->last_inbox_seq();
    int64_t seen = last.ok() ? last.value() : 0;
    std::unique_lock lock(watch_mu);
    while (!watch_stop) {
      if (notified) {
        lock.unlock();
        work = wait_notified(work);
        lock.lock();
      } else {
        watch_cv.wait_for(lock, options.inbox_watch, [this] { return watch_stop; });
      }
      if (watch_stop) break;
      lock.unlock();
      auto fresh = store->inbox_since(seen, kWatchBatch);
      if (fresh.ok()) {
        for (const InboxMessage& m : fresh.value()) {
          seen = std::max(seen, m.seq);
          if (!deliver_here(m) && options.serve_inbox && take_up) take_up(m.instance_id);
        }
      }
      lock.lock();
    }
  }
  // Waits for a notification after `work` (Store::work_count), at most
  // options.notified_inbox_watch, in slices so that stop_watch() is seen
  // within one; returns the count to wait after next time.
  uint64_t wait_notified(uint64_t work) {
    const auto until = std::chrono::steady_clock::now() + options.notified_inbox_watch;
    for (;;) {
      {
        std::lock_guard lock(watch_mu);
        if (watch_stop) return work;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return work;
      const uint64_t now_count = store->wait_for_work(work, std::min(left, kWatchSlice));
      if (now_count != work) return now_count;
    }
  }
  static constexpr std::chrono::milliseconds kWatchSlice{100};
  static constexpr size_t kWatchBatch = 256;
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool watch_stop = false;  // Guarded by watch_mu.
  std::thread watcher;

  void stop_watch() {
    {
      std::lock_guard lock(watch_mu);
      watch_stop = true;
    }
    watch_cv.notify_all();
    if (watcher.joinable()) watcher.join();
  }

  // Whether this engine runs the instance (in memory or evicted). Called
  // with mu held.
  bool runs_here(const std::string& id, const std::optional<InstanceKey>& key) const {
    return runs.count(id) != 0 || (key && evicted.contains(*key));
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
    run->starting = std::make_unique<Starting>();
    InstanceRecord& row = run->starting->row.emplace();
    row.program_hash = hash;
    row.saga = saga_name;
    row.input_json = input->to_json_text();
    row.owner = owner;
    row.lease_until_ms = run->created_ms + lease_ms();
    run->state = runtime::start_state(*run->program, saga, input.value());
    return run;
  }

  // Begins a run whose state is fresh (started or picked up pending).
  // Called with run->mu held.
  void begin(const RunPtr& run) {
    runtime::Env e = env();
    apply(run, runtime::begin(*run->program, run->state, e));
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
    t.instance.fibers.clear();
    t.instance.status = InstanceStatus::kStuck;
    t.instance.error_class = cls;
    t.instance.error_message = message;
    t.instance.updated_ms = now();
    t.events.push_back(
        HistoryEvent{now(), std::string(event_name(EventKind::stuck)), {}, 0, cls, message, {}});
    t.dead_letter = DeadLetter{rec.id, {}, now(), cls, message};
    // Its messages cannot be acted on: consumed, so that no engine takes
    // it up for them again and again.
    for (const InboxMessage& m : rec.inbox) t.consumed.push_back(m.id);
    if (options.notify_operators) {
      t.outbox.push_back(notice_event(rec.saga, rec.id, InstanceStatus::kStuck, t.events.back()));
    }
    std::promise<Status> done;
    auto future = done.get_future();
    store->submit(std::move(t), [&done](Status s) { done.set_value(std::move(s)); });
    Status s = future.get();
    if (!s.ok()) {
      fmt::print(stderr, "saga: instance {}: cannot record that it is stuck: {}\n", rec.id,
                 s.message());
    }
  }

  // A run of a stored instance as its row says (resume, reload): decoded from
  // its checkpoint, or fresh when it is pending (`pending` says which). Null
  // when it cannot be read: it is then stuck (set_unreadable).
  RunPtr load_run(InstanceRecord& rec, bool& pending) {
    auto prog = program(rec.program_hash);
    if (!prog.ok()) {
      set_unreadable(rec, prog.status(), "its program cannot be loaded");
      return nullptr;
    }
    auto run = std::make_shared<Run>();
    run->program = prog.value();
    pending = rec.status == InstanceStatus::kPending || rec.checkpoint.empty();
    if (pending) {
      uint32_t saga = run->program->program.find_saga(rec.saga);
      auto input = Value::from_json_text(rec.input_json);
      if (saga == bytecode::kNone || !input.ok()) {
        set_unreadable(
            rec,
            Status(StatusCode::kCorrupt, saga == bytecode::kNone
                                             ? fmt::format("its program has no saga '{}'", rec.saga)
                                             : "its input: " + input.status().message()),
            "it cannot be started");
        return nullptr;
      }
      run->state = runtime::start_state(*run->program, saga, input.value());
    } else {
      std::vector<std::string> fibers;
      fibers.reserve(rec.fibers.size());
      for (FiberRow& f : rec.fibers) fibers.push_back(std::move(f.state));
      auto state = runtime::decode_checkpoint(*run->program, rec.checkpoint, fibers);
      if (!state.ok()) {
        set_unreadable(rec, state.status(), "its checkpoint cannot be decoded");
        return nullptr;
      }
      run->state = std::move(state).value();
    }
    run->id = rec.id;
    run->status = rec.status;
    run->state.paused = rec.status == InstanceStatus::kPaused;
    run->created_ms = rec.created_ms;
    for (const Fiber& f : run->state.fibers) run->fibers.push_back(FiberRun{f.id, 0, {}});
    return run;
  }

  void track(const RunPtr& run) {
    std::lock_guard lock(mu);
    runs[run->id] = run;
  }
};

Engine::Engine(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  if (impl_->options.observer) impl_->options.observer->engine_closing(*this);
  impl_->shutdown();
}

Result<std::unique_ptr<Engine>> Engine::open(EngineOptions options) {
  if (options.lease < kMinLease) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("the lease must be at least {} ms, got {} ms: a shorter one could "
                              "run out between two renewals of a busy engine",
                              kMinLease.count(), options.lease.count()));
  }
  auto impl = std::make_shared<Impl>();
  impl->clock = options.clock ? options.clock : std::make_shared<SystemClock>();
  StoreOptions store_options = options.store;
  store_options.durability = options.durability;
  runtime::observe_commits(store_options, options.observer);
  auto store = open_store(options.database, store_options);
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
  std::unique_ptr<Engine> engine(new Engine(impl));
  if (impl->options.observer) impl->options.observer->engine_opened(*engine);
  if (impl->options.inbox_watch.count() > 0) {
    // The engine outlives the watcher: ~Engine stops it first (shutdown).
    impl->watcher = std::thread([raw = impl.get(), e = engine.get()] {
      raw->watch_inbox([e](const std::string& id) { (void)e->resume(id); });
    });
    pthread_setname_np(impl->watcher.native_handle(), "saga-inbox");
  }
  return engine;
}

Result<std::string> Engine::load_program(std::span<const uint8_t> image) {
  auto loaded = bytecode::load(image);
  if (!loaded.ok()) return loaded.status();
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
  run->starting->promise = started;
  impl_->start_run(run);
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
  impl_->start_run(run);
  return id;
}

Result<std::string> Engine::enqueue(const std::string& hash, const std::string& saga,
                                    const nlohmann::json& input) {
  auto prepared = impl_->prepare(hash, saga, input);
  if (!prepared.ok()) return prepared.status();
  RunPtr run = prepared.value();
  Transition t;
  t.create = true;
  t.instance = std::move(*run->starting->row);
  t.instance.id = run->id;
  t.instance.status = InstanceStatus::kPending;
  t.instance.owner.clear();  // Pending: any engine may claim it.
  t.instance.created_ms = t.instance.updated_ms = run->created_ms;
  t.events.push_back(
      HistoryEvent{impl_->now(), std::string(event_name(EventKind::recorded)), {}, 0, {}, {}, {}});
  std::promise<Status> done;
  auto future = done.get_future();
  impl_->store->submit(std::move(t), [&done](Status s) { done.set_value(std::move(s)); });
  Status s = future.get();
  if (!s.ok()) return s;
  return run->id;
}

Status Engine::serve_triggers(const std::string& hash) {
  std::shared_ptr<const LinkedProgram> linked;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->programs.find(hash);
    if (it == impl_->programs.end()) {
      return Status(StatusCode::kNotFound,
                    fmt::format("no program {} is loaded in this engine", hash));
    }
    linked = it->second;
    for (const auto& p : impl_->served) {
      if (p->hash == hash) return Status::Ok();
    }
    impl_->served.push_back(linked);
  }
  return Status::Ok();
}

// Incoming events (saga/cloudevents.hpp; docs/events.md, "Events in"). The
// invariant: an event is recorded, keyed by (source, id), in the same
// transaction as the instances its triggers start (Store::record_event), so
// there is no moment where it is recorded and they are not, or the other
// way round; a redelivery finds the record and starts nothing. The
// instances are created pending and then taken up like any pending one, so
// a crash right after the commit leaves them to the next resume().
Result<PublishResult> Engine::publish(const nlohmann::json& event) {
  if (Status s = validate_cloudevent(event); !s.ok()) return s;
  std::vector<std::shared_ptr<const LinkedProgram>> served;
  {
    std::lock_guard lock(impl_->mu);
    served = impl_->served;
  }
  EventRecord record;
  record.source = event["source"].get<std::string>();
  record.id = event["id"].get<std::string>();
  record.type = event["type"].get<std::string>();
  record.event_json = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  record.received_ms = impl_->now();
  std::vector<Transition> starts;
  for (const auto& linked : served) {
    const bytecode::Program& p = linked->program;
    for (const bytecode::Trigger& trigger : p.triggers) {
      if (trigger.type != record.type || !record.note.empty()) continue;
      record.matched = true;
      const std::string& saga = p.sagas[trigger.saga].name;
      auto input = runtime::trigger_input(trigger, event);
      Result<RunPtr> run = input.ok() ? impl_->prepare(linked->hash, saga, input.value())
                                      : Result<RunPtr>(input.status());
      if (!run.ok()) {
        record.note = fmt::format("saga '{}' of {} not started: {}", saga, p.source_name,
                                  run.status().message());
        continue;
      }
      Transition t;
      t.create = true;
      t.instance = std::move(*run.value()->starting->row);
      t.instance.id = run.value()->id;
      t.instance.status = InstanceStatus::kPending;
      t.instance.owner.clear();  // Pending: any engine may claim it.
      t.instance.lease_until_ms = 0;
      t.instance.created_ms = t.instance.updated_ms = run.value()->created_ms;
      t.events.push_back(HistoryEvent{
          impl_->now(),
          std::string(event_name(EventKind::recorded)),
          {},
          0,
          {},
          {},
          nlohmann::json{{"event", record.id}, {"source", record.source}, {"type", record.type}}
              .dump()});
      starts.push_back(std::move(t));
    }
  }
  // No trigger starts when one cannot: the event is recorded with why.
  if (!record.note.empty()) starts.clear();
  for (const Transition& t : starts) record.started.push_back(t.instance.id);
  // The instances whose `await event` it fits get it as the signal that
  // await waits for, in the same transaction.
  EventDelivery delivery;
  delivery.kind = std::string(kSignalKind);
  delivery.payload_json = nlohmann::json{
      {"name", std::string(bytecode::kEventSignalPrefix) + record.type},
      {"data", event}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  delivery.fits = [&event](std::string_view match) {
    return runtime::event_fits(nlohmann::json::parse(match, nullptr, false), event);
  };
  auto recorded = impl_->store->record_event(record, std::move(starts), delivery);
  if (!recorded.ok()) return recorded.status();
  const EventRecord& stored = recorded->event;
  PublishResult out;
  out.duplicate = recorded->duplicate;
  out.matched = stored.matched;
  out.started = stored.started;
  out.woke = stored.woke;
  out.note = stored.note;
  out.seq = stored.seq;
  if (!out.duplicate) {
    for (const std::string& id : out.started) (void)resume(id);
    // Taken at once when this engine runs the instance; else by the engine
    // that runs it, which notices within EngineOptions::inbox_watch.
    for (const InboxMessage& m : recorded->handed) (void)impl_->deliver_here(m);
  }
  return out;
}

Result<size_t> Engine::resume(const std::string& only) {
  // Claiming (not just listing) keeps two engines on one database from
  // running the same instance; one resume at a time keeps this engine from
  // loading one twice (the inbox watch taking up an instance for a message
  // while command() takes it up for the same message: both claims return
  // it, and both would find it not running here yet).
  std::lock_guard one_at_a_time(impl_->resume_mu);
  int64_t now = impl_->now();
  {
    std::lock_guard lock(impl_->mu);
    ++impl_->claiming;
  }
  struct Claimed {
    Impl& impl;
    ~Claimed() {
      std::lock_guard lock(impl.mu);
      if (--impl.claiming == 0) impl.ended_while_claiming.clear();
    }
  } claimed{*impl_};
  auto unfinished =
      impl_->store->claim(impl_->owner, now, now + impl_->lease_ms(), runtime::owner_dead, only);
  if (!unfinished.ok()) return unfinished.status();
  size_t taken = 0;
  for (InstanceRecord& rec : unfinished.value()) {
    bool here = false;
    {
      std::lock_guard lock(impl_->mu);
      here = impl_->runs_here(rec.id, InstanceKey::parse(rec.id));
      // It ended after the claim read its row: the record is stale.
      if (!here && impl_->ended_while_claiming.count(rec.id)) continue;
    }
    if (here) {
      // Already ours (in memory or evicted): only messages posted by
      // another process matter.
      for (const InboxMessage& m : rec.inbox) impl_->deliver_here(m);
      continue;
    }
    const bool messaged = !rec.inbox.empty();
    bool pending = false;
    RunPtr run = impl_->load_run(rec, pending);
    if (!run) continue;
    ++taken;
    if (waits_for_operator(rec.status)) {
      // Taken up for an operator's command: it acts on its messages, and
      // nothing else runs unless one of them says so.
      impl_->track(run);
      std::lock_guard lock(run->mu);
      for (const InboxMessage& m : rec.inbox) impl_->handle_message(run, m);
      continue;
    }
    if (pending && !messaged && impl_->options.max_active > 0) {
      // Never begun: it waits for admission like a start, in created order
      // (claim() lists oldest first).
      std::lock_guard lock(impl_->mu);
      impl_->runs[run->id] = run;
      run->queued = true;
      impl_->admission.push_back(run);
      continue;
    }
    impl_->track(run);
    std::lock_guard lock(run->mu);
    if (pending) {
      impl_->begin(run);
      for (const InboxMessage& m : rec.inbox) impl_->handle_message(run, m);
      continue;
    }
    runtime::Env e = impl_->env();
    impl_->apply(run, runtime::resumed(*run->program, run->state, e));
    if (messaged) {
      for (const InboxMessage& m : rec.inbox) impl_->handle_message(run, m);
    } else if (impl_->eviction_due(*run)) {
      // Waiting in a long timer: its "resumed" event is committed now, and
      // then it is evicted (committed()), so that a restart with many
      // instances asleep does not bring them all into memory.
      impl_->commit(run, run->status);
    }
  }
  impl_->post_admit();
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
  const std::optional<InstanceKey> key = InstanceKey::parse(id);
  for (;;) {
    {
      // While this engine runs the instance (in memory or evicted), its end
      // is signalled.
      std::unique_lock lock(impl_->mu);
      impl_->changed.wait_until(lock, deadline, [&] { return !impl_->runs_here(id, key); });
    }
    auto info = get(id);
    if (!info.ok()) return info;
    auto now = std::chrono::steady_clock::now();
    if (is_terminal(info->status) || waits_for_operator(info->status) || now >= deadline) {
      return info;
    }
    // Another process runs it: poll the database.
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(50), deadline - now));
  }
}

void Engine::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->changed.wait_for(lock, timeout,
                          [&] { return impl_->runs.empty() && impl_->evicted.size() == 0; });
}

Status Engine::cancel(const std::string& id) {
  auto posted = command(id, CommandRequest{Command::cancel, {}, {}});
  return posted.ok() ? Status::Ok() : posted.status();
}

Result<InboxMessage> Engine::command(const std::string& id, const CommandRequest& request) {
  auto posted = post_command(*impl_->store, id, request, impl_->new_id(), impl_->now());
  if (!posted.ok()) return posted;
  // Carried out at once when this engine runs the instance; a stuck or
  // paused one is taken up when this engine serves the inbox.
  if (!impl_->deliver_here(posted.value()) && impl_->options.serve_inbox) {
    (void)resume(id);
  }
  return posted;
}

Result<InboxMessage> Engine::signal(const std::string& id, const std::string& name,
                                    const std::string& data_json) {
  auto posted = post_signal(*impl_->store, id, name, data_json, impl_->new_id(), impl_->now());
  if (!posted.ok()) return posted;
  // Taken at once when this engine runs the instance (kept there when
  // nothing awaits it yet); else by the engine that runs it, which notices
  // within EngineOptions::inbox_watch.
  (void)impl_->deliver_here(posted.value());
  return posted;
}

size_t Engine::active() const {
  std::lock_guard lock(impl_->mu);
  return impl_->runs.size() + impl_->evicted.size();
}

size_t Engine::evicted() const {
  std::lock_guard lock(impl_->mu);
  return impl_->evicted.size();
}

size_t Engine::armed_timers() const {
  // An evicted instance counts as the timer it waits in; the one timer that
  // wakes them all is not counted.
  std::lock_guard lock(impl_->mu);
  const size_t queued = impl_->timers->size();
  return queued - std::min<size_t>(queued, impl_->evicted_timer ? 1 : 0) + impl_->evicted.size();
}

size_t Engine::admission_queue() const {
  std::lock_guard lock(impl_->mu);
  return impl_->admission.size();
}

nlohmann::json Engine::services() const {
  std::vector<std::pair<std::string, std::shared_ptr<runtime::ServiceGate>>> all;
  {
    std::lock_guard lock(impl_->gates_mu);
    all.assign(impl_->gates.begin(), impl_->gates.end());
  }
  nlohmann::json out = nlohmann::json::object();
  for (auto& [name, gate] : all) out[name] = gate->snapshot(impl_->now());
  return out;
}

Store& Engine::store() {
  return *impl_->store;
}

}  // namespace saga
