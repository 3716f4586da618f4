// The fuzz targets' machine driver (machine_driver.hpp).
#include "tests/fuzz/machine_driver.hpp"

#include <algorithm>
#include <deque>

#include "runtime/vm/checkpoint.hpp"

namespace saga::fuzz {
namespace {

using runtime::Outcome;

// A result with the fields the samples read, so that runs go on past their
// first step.
Value sample_result() {
  return Value::object({{"id", "id-1"},
                        {"number", "N-1"},
                        {"booking", "B-1"},
                        {"status", "ok"},
                        {"tracking", "T-1"},
                        {"receipt", "R-1"},
                        {"total", 42}});
}

Outcome outcome(uint8_t choice) {
  Outcome o;
  switch (choice % 6) {
    case 0:
      o.ok = true;
      o.result = sample_result();
      break;
    case 1:
      o.ok = true;
      break;
    case 2:
      o.error_class = "rejected";
      o.message = "declined";
      break;
    case 3:
      o.error_class = "timeout";
      o.message = "no answer";
      break;
    case 4:
      o.error_class = "unavailable";
      o.message = "connection refused";
      o.not_sent = true;
      break;
    default:
      o.error_class = "unavailable";
      o.message = "busy";
      o.retry_after_ms = 2000;
      break;
  }
  return o;
}

}  // namespace

void drive(const runtime::LinkedProgram& program, runtime::InstanceState& state,
           runtime::Decision first, runtime::Env& env, const std::function<uint8_t()>& pick,
           const std::function<void(const runtime::InstanceState&)>& visit, int max_decisions) {
  std::deque<uint32_t> ready(first.ready.begin(), first.ready.end());
  bool final = first.final();
  visit(state);
  for (int i = 0; i < max_decisions && !final && !ready.empty(); ++i) {
    const uint32_t id = ready.front();
    ready.pop_front();
    const runtime::Fiber* f = state.fiber(id);
    if (f == nullptr || (f->wait != runtime::Wait::kAction && f->wait != runtime::Wait::kUndo)) {
      continue;
    }
    env.now_ms = std::max(env.now_ms, f->wake_at_ms) + 10;
    const uint8_t choice = pick();
    runtime::Decision d;
    if (choice == 250 && state.phase == runtime::Phase::kForward) {
      d = runtime::interrupt(program, state, "cancelled", "cancelled by an operator", true, env);
    } else if (choice == 251 && state.phase == runtime::Phase::kForward) {
      d = runtime::interrupt(program, state, "timeout", "deadline exceeded", false, env);
    } else {
      d = runtime::attempt_ended(program, state, id, outcome(choice), env);
    }
    final = d.final();
    // As the engine's generations do: a fiber stopped, removed or made
    // ready again no longer waits for what it was queued for.
    auto forget = [&ready](uint32_t gone) {
      ready.erase(std::remove(ready.begin(), ready.end(), gone), ready.end());
    };
    for (uint32_t r : d.stopped) forget(r);
    for (uint32_t r : d.removed) forget(r);
    for (uint32_t r : d.ready) {
      forget(r);
      ready.push_back(r);
    }
    visit(state);
  }
}

runtime::Env driving_env(FixedContext& ctx) {
  runtime::Env env;
  env.now_ms = ctx.now_ms();
  env.functions = &ctx;
  env.compensation.attempts = 2;
  env.compensation.initial_ms = 100;
  return env;
}

}  // namespace saga::fuzz
