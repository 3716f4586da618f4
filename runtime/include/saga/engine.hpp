// The embedding API: run durable sagas inside your own C++ program.
//
//   auto engine = saga::Engine::open({.database = "orders.db"}).value();
//   std::string program = engine->load_program_file("order.sagac").value();
//   engine->register_action("shipping.express", [](const saga::ActionCall& call) {
//     return nlohmann::json{{"id", "S-1"}, {"status", "ok"}};  // or throw saga::ActionError
//   });
//   engine->resume();  // finish whatever an earlier process left unfinished
//   std::string id = engine->start(program, "order_fulfillment", input).value();
//   saga::InstanceInfo done = engine->wait(id).value();
//
// Every transition of an instance is committed to the database before the
// instance's next action is invoked (README.md, "Delivery contract"). Actions
// run on the engine's threads; an action that waits on the network should be
// registered with register_async_action and complete later from any thread.
// No Asio type appears in this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "saga/cloudevents.hpp"
#include "saga/commands.hpp"
#include "saga/events.hpp"
#include "saga/status.hpp"
#include "saga/store.hpp"

namespace saga {

// What an action is called with. The references are valid during the call
// (for an asynchronous action: until it completes).
struct ActionCall {
  std::string action;   // "inventory.reserve", or "inventory.release" for an undo.
  nlohmann::json args;  // The named arguments as a JSON object.
  std::string instance_id;
  std::string step;
  // The same for every attempt of this step of this instance, across retries
  // and crashes; an undo has its own ("<instance>/<step>/undo"). Participants
  // that deduplicate by it make effects exactly-once.
  std::string idempotency_key;
  uint32_t attempt = 1;
  bool compensation = false;
  // This attempt's timeout (the step's, else its service's); 0 = none. The
  // engine ends the attempt then whatever the action does; an action that
  // waits on the network should give up on the wire at the same time.
  int64_t timeout_ms = 0;
};

// Thrown by a synchronous action to fail the attempt with an error class:
// `timeout` and `unavailable` are retried by default policies and leave the
// step in doubt (compensated if the saga fails); `rejected` means "known to
// have had no effect" (not compensated); any other name is a custom class.
// Any other exception fails the attempt with class `error` (in doubt).
class ActionError : public std::runtime_error {
 public:
  ActionError(std::string error_class, const std::string& message)
      : std::runtime_error(message), error_class_(std::move(error_class)) {}
  const std::string& error_class() const { return error_class_; }

 private:
  std::string error_class_;
};

struct ServiceOutcome;

// Completes an asynchronous action. Call succeed(), fail() or finish() once,
// from any thread; later calls, and calls after the attempt timed out, are
// ignored.
class Completion {
 public:
  struct State;
  explicit Completion(std::shared_ptr<State> state) : state_(std::move(state)) {}
  void succeed(nlohmann::json result) const;
  void fail(std::string error_class, std::string message) const;
  // The same, with the least delay before a retry of this step (an HTTP
  // Retry-After, say): the retry policy's backoff is raised to it.
  void fail(std::string error_class, std::string message,
            std::chrono::milliseconds retry_after) const;
  // Everything at once, as a service transport reports it: an action that
  // knows its request never left (ServiceOutcome::not_sent) says so here, and
  // its step is then not compensated for this attempt.
  void finish(ServiceOutcome outcome) const;

 private:
  std::shared_ptr<State> state_;
};

// A synchronous action runs on an engine thread (or one of the store's
// threads when its instance runs alone): keep it short, and make anything
// that waits on the network or a disk an AsyncAction.
using SyncAction = std::function<nlohmann::json(const ActionCall&)>;
using AsyncAction = std::function<void(const ActionCall&, Completion)>;

// Time as the engine sees it: wall-clock milliseconds since the Unix epoch
// (timers are stored as due times, so they survive restarts). Tests use
// ManualClock to control retries, timeouts and deadlines.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() = 0;
  // Called by the engine with a function to run whenever time jumps (a manual
  // clock advanced); real clocks ignore it. The engine owns the function and
  // releases it when it shuts down, so the clock holds it weakly.
  virtual void on_advance(std::weak_ptr<const std::function<void()>> wake) { (void)wake; }
};

// A clock that only moves when advance() is called.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000);
  int64_t now_ms() override;
  void on_advance(std::weak_ptr<const std::function<void()>> wake) override;
  // Moves time forward and wakes the engines that use this clock. Do not call
  // it while an engine using the clock is being destroyed.
  void advance(std::chrono::milliseconds by);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  int64_t now_;
};

// A call of a service that declares a url (`service payment { url "..." }`)
// and whose action the host did not register: the engine hands it to the
// EngineOptions::service_transport (HTTP, in runtime/http). Everything the
// transport needs is here, resolved from the program.
struct ServiceCall {
  std::string service;  // "payment"
  std::string url;      // "http://127.0.0.1:8082" (no trailing slash)
  std::string op;       // "charge"
  std::string method;   // From `op charge = POST "/path"`; empty: POST {url}/{op}.
  std::string path;     // Path template with ${arg} placeholders; empty when no route.
  nlohmann::json args;  // The named arguments, a JSON object.
  std::string instance_id;
  std::string step;
  std::string idempotency_key;
  uint32_t attempt = 1;
  bool compensation = false;
  int64_t timeout_ms = 0;  // Per attempt: the step's, else the service's; 0 = none.
  // The service's resilience settings (0 = none), for the transport to enforce.
  uint32_t breaker_failures = 0;
  int64_t breaker_reset_ms = 0;
  uint32_t breaker_probes = 0;
  uint32_t bulkhead = 0;
};

// How a service call ended. error_class follows ActionError; a positive
// retry_after_ms (from a Retry-After header) is the least delay before the
// next attempt.
struct ServiceOutcome {
  bool ok = false;
  nlohmann::json result;
  std::string error_class;
  std::string message;
  int64_t retry_after_ms = 0;
  // The request certainly never reached the service (an open circuit, a
  // bulkhead wait that timed out, no connection): the attempt had no effect,
  // whatever its class. A step whose attempts all ended so is not
  // compensated.
  bool not_sent = false;
};

// Performs a service call asynchronously and calls `done` exactly once, from
// any thread. It must not block the calling thread.
using ServiceTransport =
    std::function<void(const ServiceCall& call, std::function<void(ServiceOutcome)> done)>;

// The policy of compensations: an undo is retried on every error class, with
// capped exponential backoff, `attempts` times in all; then the instance is
// `stuck` and a dead letter is recorded.
struct CompensationPolicy {
  uint32_t attempts = 20;
  int64_t initial_ms = 200;
  double factor = 2.0;
  int64_t max_ms = 60'000;
};

// Overload protection (README, "Under overload"). Per service, the engine
// lets at most `limit` calls out at once: the limit follows the service's
// latency (AIMD: it grows while the latency stays near its lowest and shrinks
// when it rises past `tolerance` times that, or on a timeout or
// `unavailable`), never above the service's `bulkhead N`. Retries (attempts
// after the first) also need a token of the service's retry budget: a token
// per 1/retry_ratio successful calls, plus retry_floor_per_second, at most
// retry_max_tokens saved up; undos have a budget of their own with the same
// numbers. A call waiting for a slot or a token has not been sent: the wait
// does not count against its attempt's timeout, and after `max_wait` the
// attempt fails with class `unavailable`, not sent (its step not in doubt).
struct OverloadOptions {
  bool adaptive = true;  // False: the limit is the bulkhead, else max_limit.
  uint32_t initial_limit = 16;
  uint32_t max_limit = 1000;
  double tolerance = 2.0;
  std::chrono::milliseconds max_wait{60'000};
  bool retry_budget = true;  // False: retries need no token.
  double retry_ratio = 0.2;
  double retry_floor_per_second = 10;
  double retry_max_tokens = 100;
};

class Engine;

// What an EngineObserver prepared for one program (the labelled series of
// its sagas and steps, say), once, when the engine linked the program: the
// engine hands it back with every report about that program, so that an
// observer never looks anything up by name on the engine's hot path.
class ObservedProgram {
 public:
  virtual ~ObservedProgram() = default;
};

// A program as an observer sees it: its hash, its sagas' names and its
// steps' names with the index of each step's saga. Reports name sagas and
// steps by their index in these vectors.
struct ProgramShape {
  struct Step {
    std::string name;  // As declared ("reserve"), without branch or loop index.
    uint32_t saga = 0;
    bool has_undo = false;
  };
  std::string hash;
  std::vector<std::string> sagas;
  std::vector<Step> steps;
};

// Told by the engine what happens, at the few points where it happens, for
// metrics (saga/metrics.hpp implements it). Every callback runs on an engine
// thread or a store thread, often with an instance's lock held: it must be
// quick, thread-safe, must not block and must not call the engine. With no
// observer (EngineOptions::observer null) the engine calls nothing.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;

  // Engine::open succeeded / the engine is about to shut down (the first
  // thing its destructor does). For observers that read the engine when
  // asked (gauges at scrape time); the engine stays valid in between.
  virtual void engine_opened(Engine& engine) { (void)engine; }
  virtual void engine_closing(Engine& engine) { (void)engine; }

  // A program was linked, before any report about it. The result is handed
  // back by reference with every report about the program (null: none are).
  virtual std::shared_ptr<ObservedProgram> program_linked(const ProgramShape& shape) = 0;

  // An attempt's call went out (an action invoked, a service called; after
  // its gate let it through), and ended: answered, or timed out (whichever
  // came first, once per call), `took` after it went out. A call still out
  // when its engine stops never ends.
  virtual void call_sent(ObservedProgram& program, uint32_t step, bool undo) = 0;
  virtual void call_ended(ObservedProgram& program, uint32_t step, bool undo,
                          std::chrono::nanoseconds took) = 0;

  // An attempt of a step's do or undo ended as the saga machine counts it:
  // `error_class` empty when it succeeded. Also for attempts no call was made
  // for (built-in sleep and log; one shed at its service's gate, class
  // `unavailable`; an action nobody provides, class `unsupported`).
  virtual void attempt_ended(ObservedProgram& program, uint32_t step, bool undo,
                             std::string_view error_class) = 0;

  // A transition of an instance of saga `saga` is durable, with history
  // events of these kinds (live-only ones included), in order.
  virtual void committed(ObservedProgram& program, uint32_t saga,
                         std::span<const EventKind> events) = 0;

  // An instance ended in this engine (terminal, or stuck) with `status`,
  // `took` after it was created (by the engine's clock: a resumed instance
  // counts from its first start, in any process).
  virtual void instance_ended(ObservedProgram& program, uint32_t saga, InstanceStatus status,
                              std::chrono::milliseconds took) = 0;

  // A group commit of the engine's store succeeded (StoreOptions::on_commit,
  // which the engine sets to this when an observer is given and it is null).
  virtual void store_committed(size_t transitions, std::chrono::nanoseconds took) {
    (void)transitions;
    (void)took;
  }
};

struct EngineOptions {
  std::string database = "sagas.db";
  Durability durability = Durability::kFull;
  // Threads that run the interpreter and synchronous actions.
  unsigned threads = 2;
  std::shared_ptr<Clock> clock;  // Null: the system clock.
  CompensationPolicy compensation;
  // Called for every history event once it is committed (live progress, logs).
  // Runs on an engine thread, or on one of the store's threads when an
  // instance runs alone; must not block, and in particular must not call
  // Engine::start(), enqueue() or wait().
  std::function<void(const std::string& instance_id, const HistoryEvent& event)> on_event;
  // Seed of the jitter generator; 0 = random.
  uint64_t seed = 0;
  StoreOptions store;  // busy timeout, batch size (durability is taken from above).
  // Performs calls to url services (see ServiceCall). Null: such calls fail
  // with class `unsupported` unless the host registered the action.
  ServiceTransport service_transport;
  // Deployment-time urls by service name: they replace the url a program
  // declares, or give one to a service declared without (sagactl --service
  // shipping=http://127.0.0.1:8083). Registered actions still win.
  std::map<std::string, std::string> service_urls;
  // An instance whose every fiber waits in a timer (a sleep, a retry's or an
  // undo's backoff) due at least this far ahead, with nothing out and
  // everything committed, is evicted: the engine keeps only its id and due
  // time (about 100 bytes instead of about 1.7 KB) and loads it again from
  // the database when it is due, or when it is cancelled. Nothing else
  // changes: its history, wait(), cancel() and inspect() are the same.
  // Zero (or less) keeps every instance in memory.
  std::chrono::milliseconds evict_after = std::chrono::seconds(10);
  // Admission control: at most this many instances run at once (in memory,
  // not evicted). Instances started beyond it are recorded `pending` in the
  // database at once (start() returns when that is durable) and begin in the
  // order they were started as running ones end or are evicted; pending
  // instances found by resume() queue the same way, oldest first. Instances
  // that already began (resumed after a crash, reloaded when due) are never
  // held back, but count. Zero: no limit.
  size_t max_active = 1000;
  OverloadOptions overload;
  // Told what happens (see EngineObserver), e.g. a saga::Metrics. Null:
  // nothing is reported and nothing is paid for it.
  std::shared_ptr<EngineObserver> observer;
  // How often the engine looks for inbox messages other processes posted
  // (sagactl cancel, the operator commands): one indexed query that finds
  // nothing when nothing was posted (docs/operating.md, "Delivery of
  // messages", has the measured notice latency). Messages posted through
  // this engine (cancel(), command()) act at once. Zero: never look (a
  // message from elsewhere then waits for resume()).
  std::chrono::milliseconds inbox_watch{50};
  // With a store that notifies (Store::notifies(): PostgreSQL's
  // LISTEN/NOTIFY), the watch looks each time a post is notified instead,
  // and anyway this often, in case a notification was missed.
  std::chrono::milliseconds notified_inbox_watch{1000};
  // Take up a stuck or paused instance (or any this engine does not run)
  // when a message arrives for it, from this process or another: what a
  // worker does (sagactl worker, resume). Off for a host that runs only its
  // own instances.
  bool serve_inbox = false;
  // How long a claim on an instance lasts (Store::claim): the engine renews
  // the leases of what it runs every third of it. An engine on another
  // machine takes over the instances of one that stopped renewing (killed,
  // partitioned, paused) once their lease ran out; on this machine, a dead
  // process's instances are taken at once. At least kMinLease: Engine::open
  // refuses less (kInvalidArgument). docs/scale-out.md, "Leases".
  std::chrono::milliseconds lease{30'000};
  // Notifications (docs/events.md, "Notify"): when an instance becomes
  // `paused` or `stuck`, the transition that commits it also writes an
  // outbox event of type saga.instance.paused or saga.instance.stuck (data:
  // saga, instance, status, step, attempt, error_class, error), which a
  // Relay delivers like any event (sagactl worker --notify URL).
  bool notify_operators = false;
};
// The shortest EngineOptions::lease (and sagactl worker --lease).
inline constexpr std::chrono::milliseconds kMinLease{1000};

struct InstanceInfo {
  std::string id;
  std::string saga;
  std::string program_hash;
  InstanceStatus status = InstanceStatus::kPending;
  nlohmann::json input;
  nlohmann::json output;  // Null until completed.
  std::string error_class;
  std::string error_message;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// Engine::inspect's view of an instance, from a store alone (for example
// one opened read-only): the program is read from the store.
Result<nlohmann::json> inspect_instance(Store& store, const std::string& id);

// The exit code `sagactl run` uses for a final status: 0 completed, 3
// compensated (or failed/cancelled: the saga did not complete), 4 stuck.
int exit_code_for(InstanceStatus status);

class Engine {
 public:
  // Opens the database (creating it if needed) and starts the threads.
  // Store errors are returned as they are (locked, read-only, not a Saga
  // database, newer schema).
  static Result<std::unique_ptr<Engine>> open(EngineOptions options);

  // Stops accepting work, waits for in-flight commits, joins the threads.
  // Instances that are waiting stay in the database and resume next time.
  ~Engine();

  // Loads a verified program (.sagac image), stores it in the database and
  // returns its hash. Loading the same program twice is harmless.
  Result<std::string> load_program(std::span<const uint8_t> image);
  Result<std::string> load_program_file(const std::string& path);

  // Registers the implementation of an action ("payment.charge"). Register
  // before starting or resuming instances that use it. An action nobody
  // provides fails its step with class `unsupported`, naming the action.
  // Every attempt, of a do or of an undo, has the step's timeout (else its
  // service's): an asynchronous action that has not completed by then fails
  // the attempt with class `timeout`; a synchronous one that returns late
  // has its result discarded the same way.
  void register_action(const std::string& name, SyncAction action);
  void register_async_action(const std::string& name, AsyncAction action);

  // Starts an instance and returns its id once its start is committed. The
  // input is validated against the saga's parameters first; nothing is
  // recorded when it does not match.
  Result<std::string> start(const std::string& program_hash, const std::string& saga,
                            const nlohmann::json& input);

  // Starts an instance without waiting for anything: returns its id at once
  // (the input is validated first) and calls `done` once, on an engine
  // thread (the same rules as EngineOptions::on_event: it must not block),
  // when the instance ends (terminal or stuck; `input` is left null),
  // or with status kPending and the error message if its start could not be
  // recorded. For hosts that serve many requests at once.
  using DoneCallback = std::function<void(const InstanceInfo&)>;
  Result<std::string> start_async(const std::string& program_hash, const std::string& saga,
                                  const nlohmann::json& input, DoneCallback done);

  // Records an instance as `pending` without running it (sagactl start); a
  // worker or resume() runs it.
  Result<std::string> enqueue(const std::string& program_hash, const std::string& saga,
                              const nlohmann::json& input);

  // Serves the triggers (`on TYPE start SAGA(...)`) of a loaded program:
  // from now on publish() starts its sagas for the events they name
  // (sagactl worker --program FILE). kNotFound for a hash never loaded.
  // Serving the same program twice is harmless.
  Status serve_triggers(const std::string& program_hash);

  // Takes an incoming event (a CloudEvent 1.0 in structured form; POST
  // /events calls this). It is validated first (kInvalidArgument naming the
  // problem; nothing is recorded). Then, in one durable transaction, it is
  // recorded keyed by (source, id) together with one pending instance per
  // trigger of a served program that names its type (the trigger's
  // arguments evaluated from the event), and those instances run here.
  // An event that matches no trigger is recorded unmatched (Store::
  // list_events, `sagactl events ls`); one whose trigger cannot start
  // (an argument the event lacks, an input the saga refuses) is recorded
  // with the reason in `note`, and starts nothing (no trigger starts when
  // one cannot). A second delivery of the same (source, id) writes and
  // starts nothing and answers `duplicate`, with the first's outcome, also
  // across restarts. In the same transaction the event is handed to every
  // instance with an `await event` it fits (PublishResult::woke), as the
  // signal that await waits for; an engine that serves no program still
  // records events for those.
  Result<PublishResult> publish(const nlohmann::json& event);

  // Runs every unfinished instance in the database (pending ones included)
  // that this engine is not already running, or only the instance `only` when
  // it is given. Returns how many it took up. Instances this engine already
  // runs are checked for cancellations requested by other processes.
  Result<size_t> resume(const std::string& only = {});

  // Blocks until the instance is terminal or stuck, or the timeout passes
  // (then returns its current state).
  Result<InstanceInfo> wait(const std::string& id,
                            std::chrono::milliseconds timeout = std::chrono::hours(24 * 365));

  // Blocks until no instance is running in this engine (all finished, stuck,
  // or waiting in a timer beyond `timeout`).
  void wait_idle(std::chrono::milliseconds timeout = std::chrono::hours(24 * 365));

  // Reads an instance from the database.
  Result<InstanceInfo> get(const std::string& id);

  // Everything known about an instance, for `sagactl show`: the fields of
  // InstanceInfo plus "variables" (name -> value), "compensation_stack" (top
  // first: {step, in_doubt}), "waiting" ({kind, step, action, attempt,
  // wake_at}), "history" and "dead_letters"; "checkpoint_error" instead of
  // the decoded fields when the checkpoint or its program cannot be read.
  // Text that is not UTF-8 (from a database an older build wrote) is shown
  // with U+FFFD. inspect_instance() below gives the same without an engine.
  Result<nlohmann::json> inspect(const std::string& id);

  // Cancels an instance: its in-flight attempt is abandoned and its completed
  // steps are compensated; the final status is `cancelled`. The same as
  // command(id, {Command::cancel}).
  Status cancel(const std::string& id);

  // Posts a command (saga/commands.def: cancel, pause, unpause, retry,
  // skip, compensate) to the instance's inbox and returns the message. The
  // post is durable when this returns; the command is carried out at once
  // when this engine runs the instance (or, with serve_inbox, can take it
  // up), else by the engine that runs it, which notices within
  // EngineOptions::inbox_watch. Errors as post_command(): kNotFound,
  // kFailedPrecondition (the instance's status does not take it),
  // kInvalidArgument (a result that is not JSON).
  Result<InboxMessage> command(const std::string& id, const CommandRequest& request);

  // Sends signal `name` with JSON data `data_json` ("" for null) to the
  // instance (saga/signals.hpp): posted to its inbox, durably, then handed
  // at once to the run when this engine runs it (an `await signal NAME`
  // waiting for it moves on in the same call's wake-up; one not reached yet
  // finds it kept). Errors as post_signal(): kNotFound, kFailedPrecondition
  // (finished), kInvalidArgument (a name or data that is not valid).
  Result<InboxMessage> signal(const std::string& id, const std::string& name,
                              const std::string& data_json);

  // How many instances this engine is running now (waiting ones included,
  // evicted ones too).
  size_t active() const;

  // How many of them are evicted: waiting in a long timer with only their id
  // and due time in memory (EngineOptions::evict_after). For monitoring.
  size_t evicted() const;

  // How many timers are armed: one per instance waiting in a backoff or
  // sleep, per running attempt with a timeout, per running saga with a
  // deadline, plus the engine's own lease renewal. Finished instances hold
  // none, so with nothing running this is 1. For monitoring.
  size_t armed_timers() const;

  // How many started instances wait for admission (EngineOptions::
  // max_active): recorded `pending`, not begun. They count in active().
  size_t admission_queue() const;

  // The overload state of every service called so far, by name: {"limit",
  // "in_flight", "waiting", "baseline_ms", "shrinks", "delayed" (calls that
  // waited for a slot or a token), "max_wait_ms", "shed" (calls that waited
  // too long and failed, not sent), "budget_waits" (retries that found the
  // budget empty), "retry_tokens", "undo_retry_tokens"}. For monitoring.
  nlohmann::json services() const;

  Store& store();

  struct Impl;

 private:
  explicit Engine(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace saga
