// The saga machine: the rules of the delivery contract as functions.
//
// Invariant: the machine decides, the engine applies. Given the linked
// program, an instance's state, what happened (the instance starts, an
// attempt of a fiber ended, the deadline passed, a cancel arrived) and an
// Env (the time, randomness for jitter, the compensation policy), a machine
// function changes the state and returns a Decision: the history events, a
// dead letter, the status to commit, and which fibers to start waiting once
// that commit is durable. It takes no lock, reads no clock, touches no store
// and calls no action, so every rule is a table test (tests/runtime/
// machine_test.cpp), and `sagactl test` / `explore` can drive it with
// virtual time. The engine (engine.cpp) owns runs, locks, generations,
// timers and the commit pipeline: it commits the Decision, then performs the
// waits of its `ready` fibers (an action, an undo, a timer).
//
// A decision is always committed before anything it implies is done: a
// fiber's next action is dispatched only after the transition that records
// it is durable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/small_vector.hpp>
#include <nlohmann/json_fwd.hpp>

#include "runtime/vm/vm.hpp"
#include "saga/engine.hpp"
#include "saga/events.hpp"
#include "saga/store.hpp"
#include "stdlib/functions.hpp"

namespace saga::stdlib {
enum class Performer : uint8_t;  // stdlib/table.hpp
}

namespace saga::runtime {

// What the machine may ask of the world besides the state.
struct Env {
  int64_t now_ms = 0;
  stdlib::FunctionContext* functions = nullptr;  // For pure code: now(), uuid().
  CompensationPolicy compensation;
  // A uniform random integer in [0, n]: the jitter of backoffs. Null: no
  // randomness (the midpoint for equal jitter, n for full).
  std::function<int64_t(int64_t n)> random;
};

// How an attempt ended, as an action or a transport reports it.
struct Outcome {
  bool ok = false;
  Value result;             // When ok.
  std::string error_class;  // When not ok (error_classes.def, or a custom class).
  std::string message;
  int64_t retry_after_ms = 0;  // The least delay before a retry (Retry-After).
  bool not_sent = false;       // The request certainly never reached the service.
  // What the engine adds to the attempt's history event: how long the call
  // waited at its service's gate, when it waited long ("" otherwise).
  std::string note;
};

struct Decision {
  struct Event {
    HistoryEvent event;
    bool live_only = false;  // EventStorage::kLive.
  };
  std::vector<Event> events;
  std::optional<DeadLetter> dead_letter;  // The engine fills in the instance id.
  InstanceStatus status = InstanceStatus::kRunning;
  // Lists of fiber ids; most decisions name one or two (inline, no heap).
  using Fibers = boost::container::small_vector<uint32_t, 4>;
  // Fibers whose wait (fiber.wait, step, args, attempt, wake_at_ms) is to be
  // started once the commit is durable.
  Fibers ready;
  // Fibers whose wait was given up (an abandoned attempt, a finished
  // branch) or that no longer exist: late results for them are ignored, and
  // their timers can go.
  Fibers stopped;
  // Child fibers whose checkpoint changed, and those that were removed (at a
  // join, or when compensation began). The root is part of the instance.
  Fibers changed;
  Fibers removed;
  // Whether the instance's own checkpoint (instance fields, root fiber)
  // changed; when false, only child fibers and history are written.
  bool instance_changed = true;
  // False when nothing needs committing before the ready fibers start (a
  // resume: the state is the committed one); the events go with the next
  // transition.
  bool commit = true;
  // An operator retried or skipped the undo that gave up: the instance's
  // dead letters are resolved in the same transaction.
  bool resolve_dead_letters = false;
  // Events the code emitted (`emit`), in order: outbox rows of the
  // transition that commits this decision.
  std::vector<Emitted> emitted;

  // Nothing runs after this decision's commit: the instance ended, or
  // waits for an operator (stuck, paused).
  bool final() const { return is_terminal(status) || waits_for_operator(status); }
};

// The status a state stands for.
InstanceStatus status_of(const InstanceState& state);

// A fresh instance starts: "started", then its root runs to its first yield
// point. state.started_ms and deadline_ms are set from env.now_ms.
Decision begin(const LinkedProgram& program, InstanceState& state, const Env& env);

// The attempt that fiber `fiber` waited for ended with `outcome` (an action,
// an undo, or a sleep). The fiber must exist and wait for an action or undo.
Decision attempt_ended(const LinkedProgram& program, InstanceState& state, uint32_t fiber,
                       const Outcome& outcome, const Env& env);

// The forward path is given up: the deadline passed, or a cancel arrived.
// Every waiting fiber is abandoned (in doubt when its attempt was out or an
// earlier one was) and compensation begins. Only for a state in the forward
// phase.
Decision interrupt(const LinkedProgram& program, InstanceState& state, std::string error_class,
                   std::string message, bool cancel, const Env& env);

// A message from the instance's inbox arrived (saga/commands.def: cancel
// and the operator commands). A command that does not apply to the state as
// it is now (it moved on since the command was posted) changes nothing but
// a `command_dropped` event: either way the engine consumes the message in
// the transition that commits this decision. `state.paused` must say
// whether the instance is paused (the engine sets it from the row).
Decision message_arrived(const LinkedProgram& program, InstanceState& state,
                         const InboxMessage& message, const Env& env);

// Signals (saga/signals.hpp). The fiber that waits at an `await signal`
// for signal `name` and can take it now (the instance runs forward, not
// paused): the lowest id when several do; none when no fiber does (the
// engine then keeps the signal in the inbox for a later await).
// An `await event TYPE where ...` is a wait for the signal named
// bytecode::kEventSignalPrefix + TYPE whose `where` (path -> value) the signal's data,
// the event, must fit (event_fits): `data_json` is only read for those.
std::optional<uint32_t> awaiting_fiber(const LinkedProgram& program, const InstanceState& state,
                                       std::string_view name, std::string_view data_json = {});

// Whether `event` (a CloudEvent in structured form) has, at each path of
// `where` (dot-separated names: "data.order"), a value equal to the path's
// (numbers compare by value). An empty `where` fits every event.
bool event_fits(const nlohmann::json& where, const nlohmann::json& event);

// The event waits of the instance (Store's EventWait): one per fiber that
// waits at an `await event`, its match the await's `where` as JSON text.
std::vector<EventWait> event_waits(const LinkedProgram& program, const InstanceState& state);

// Signal `message` (its name and data, JSON text) reached fiber `fiber`,
// which awaits it (awaiting_fiber): a `signal_consumed` event, the data is
// the await's result, and the fiber runs on. The engine consumes the message
// in the transition that commits this decision.
Decision signal_arrived(const LinkedProgram& program, InstanceState& state, uint32_t fiber,
                        const InboxMessage& message, const std::string& data_json, const Env& env);

// The await that fiber `fiber` waits at reached its timeout: a
// `signal_timed_out` event, then its `else` block runs (the bound variable
// null), or, without one, the step fails with class `timeout` and the saga
// compensates.
Decision signal_timed_out(const LinkedProgram& program, InstanceState& state, uint32_t fiber,
                          const Env& env);

// Whether fiber `f` waits at an `await signal` (rather than for an action).
bool waits_for_signal(const LinkedProgram& program, const Fiber& f);

// After a restart: an attempt whose wake time has come may have been sent
// before the process died (it is dispatched no earlier than then), so it
// counts as in doubt from now on; one whose wake time is ahead (a backoff)
// was not out yet, nor is a call of sleep or log. Also lists, in `ready`,
// every fiber to start waiting again.
Decision resumed(const LinkedProgram& program, InstanceState& state, const Env& env);

// An instance the engine evicted from memory while every fiber waited in a
// timer (nothing out, everything committed) is loaded again when it is due:
// the same waits as resumed() lists, but nothing happened in between, so
// there is no event and nothing becomes in doubt (a backoff's attempt due
// now was certainly not sent). Nothing to commit.
Decision reloaded(const LinkedProgram& program, InstanceState& state, const Env& env);

// The idempotency key and history name of the step a fiber waits for:
// "<prefix><step><suffix>" (an undo: the name of its log entry).
std::string step_name(const LinkedProgram& program, const Fiber& fiber);

// Who performs an action: its row's performer in stdlib/actions.def for a
// built-in one, else kHandler (a service's, or one the host registers).
stdlib::Performer performer(const bytecode::Action& action);

// The timeout of one attempt of `action` (a step's do or its undo): the
// step's, else its service's, else none (0); for the undo as for the do (an
// undo that never answers must not hold its instance in `compensating`
// forever: it times out, is retried, and ends stuck).
int64_t attempt_timeout_ms(const bytecode::Program& program, const bytecode::Step& step,
                           const bytecode::Action& action);

// Whether the engine performs an action itself (sleep, log): such a call has
// no effect outside the instance, and never leaves in doubt.
bool engine_performed(const bytecode::Action& action);

}  // namespace saga::runtime
