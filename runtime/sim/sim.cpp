// The shared driver of one instance (sim.hpp): the machine's functions with
// the engine's bookkeeping around them, in virtual time.
#include "runtime/sim/sim.hpp"

#include <algorithm>

#include "runtime/vm/checkpoint.hpp"
#include "saga/signals.hpp"

namespace saga::sim {
namespace {

runtime::Env env_for(Run& run, VirtualContext& ctx, const Options& o) {
  runtime::Env env;
  env.now_ms = run.now;
  env.functions = &ctx;
  env.compensation = o.compensation;
  env.compensation.attempts = std::max<uint32_t>(o.compensation.attempts, 1);
  if (o.jitter) env.random = [&run](int64_t n) { return run.random.below_or_equal(n); };
  return env;
}

void forget(Run& run, uint32_t id) {
  run.ready.erase(std::remove(run.ready.begin(), run.ready.end(), id), run.ready.end());
}

// What the engine does with a decision's fibers once it is committed.
runtime::Decision applied(Run& run, runtime::Decision d) {
  for (uint32_t r : d.stopped) forget(run, r);
  for (uint32_t r : d.removed) forget(run, r);
  for (uint32_t r : d.ready) {
    forget(run, r);
    run.ready.push_back(r);
  }
  return d;
}

}  // namespace

uint64_t Random::next() {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t Random::below_or_equal(int64_t n) {
  if (n <= 0) return 0;
  return static_cast<int64_t>(next() % (static_cast<uint64_t>(n) + 1));
}

void VirtualContext::random_bytes(std::span<uint8_t> out) {
  for (uint8_t& b : out) b = static_cast<uint8_t>(run_.random.next() >> 56);
}

runtime::Decision begin(const runtime::LinkedProgram& program, Run& run, uint32_t saga,
                        const Value& input, const Options& options) {
  run.state = runtime::start_state(program, saga, input);
  run.ready.clear();
  VirtualContext ctx(run);
  return applied(run, runtime::begin(program, run.state, env_for(run, ctx, options)));
}

runtime::Decision attempt_ended(const runtime::LinkedProgram& program, Run& run, uint32_t fiber,
                                const runtime::Outcome& outcome, const Options& options) {
  forget(run, fiber);
  VirtualContext ctx(run);
  const runtime::Fiber* f = run.state.fiber(fiber);
  if (f && runtime::waits_for_signal(program, *f)) {
    // An await: an answer is the signal (its data the result), a timeout
    // its timeout, as the engine decides them.
    if (outcome.ok) {
      InboxMessage m{"signal", "", std::string(kSignalKind), {}, run.now, 0};
      return applied(
          run, runtime::signal_arrived(program, run.state, fiber, m, outcome.result.to_json_text(),
                                       env_for(run, ctx, options)));
    }
    if (outcome.error_class == "timeout") {
      return applied(
          run, runtime::signal_timed_out(program, run.state, fiber, env_for(run, ctx, options)));
    }
  }
  return applied(
      run, runtime::attempt_ended(program, run.state, fiber, outcome, env_for(run, ctx, options)));
}

runtime::Decision cancel(const runtime::LinkedProgram& program, Run& run, const Options& options) {
  VirtualContext ctx(run);
  // The engine's words (Engine::cancel).
  return applied(run, runtime::interrupt(program, run.state, "cancelled", "cancelled by request",
                                         true, env_for(run, ctx, options)));
}

runtime::Decision deadline(const runtime::LinkedProgram& program, Run& run, std::string message,
                           const Options& options) {
  VirtualContext ctx(run);
  return applied(run, runtime::interrupt(program, run.state, "timeout", std::move(message), false,
                                         env_for(run, ctx, options)));
}

Result<runtime::Decision> crash(const runtime::LinkedProgram& program, Run& run,
                                const Options& options) {
  const runtime::EncodedState saved = runtime::encode_state(run.state);
  auto back = runtime::decode_checkpoint(program, saved.instance, saved.fibers);
  if (!back.ok() || !(back.value() == run.state)) {
    return Status(StatusCode::kInternal,
                  "the checkpoint does not decode to the state it was written from" +
                      (back.ok() ? std::string() : ": " + back.status().message()));
  }
  run.state = std::move(back).value();
  run.ready.clear();
  VirtualContext ctx(run);
  return applied(run, runtime::resumed(program, run.state, env_for(run, ctx, options)));
}

}  // namespace saga::sim
