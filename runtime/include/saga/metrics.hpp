// Prometheus metrics of a Saga process: what its engine did (instances
// started and ended, attempts by outcome, compensations, dead letters,
// latencies) and what it holds now (instances by status in the store, armed
// timers, attempts in flight, the gates and breakers of its services), as
// the Prometheus text format for a `/metrics` endpoint.
//
//   auto metrics = std::make_shared<saga::Metrics>();
//   options.observer = metrics;                      // saga::EngineOptions
//   auto engine = saga::Engine::open(options).value();
//   std::string body = metrics->scrape();            // Content-Type: Metrics::kContentType
//
// One Metrics per process, handed to its engine (the engine reports to it
// as an EngineObserver; the gauges are read from the engine and its store
// at each scrape). README.md, "Metrics", lists every series. Counters are
// kept as long as the Metrics lives, across engines. No prometheus-cpp type
// appears in this header.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "saga/engine.hpp"

namespace saga {

class Metrics : public EngineObserver {
 public:
  // The Content-Type of scrape()'s text (the Prometheus text format 0.0.4).
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  Metrics();
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Every series, in the Prometheus text format. Reads the gauges from the
  // engine that is open (if any) and its store (one GROUP BY query), so it
  // takes a few milliseconds with many instances; safe from any thread.
  std::string scrape();

  // Adds the circuit breakers and bulkheads of an HTTP transport to each
  // scrape: `states` returns them in the shape of
  // saga::HttpClient::breaker_states() ({"svc": {"breaker": {"state",
  // "failures", "rejected", ...}, "bulkhead": {"limit", "in_use",
  // "waiting", ...}}}). It is called during scrape(); null removes it.
  void watch_breakers(std::function<nlohmann::json()> states);

  // EngineObserver (saga/engine.hpp): called by the engine.
  void engine_opened(Engine& engine) override;
  void engine_closing(Engine& engine) override;
  std::shared_ptr<ObservedProgram> program_linked(const ProgramShape& shape) override;
  void call_sent(ObservedProgram& program, uint32_t step, bool undo) override;
  void call_ended(ObservedProgram& program, uint32_t step, bool undo,
                  std::chrono::nanoseconds took) override;
  void attempt_ended(ObservedProgram& program, uint32_t step, bool undo,
                     std::string_view error_class) override;
  void committed(ObservedProgram& program, uint32_t saga,
                 std::span<const EventKind> events) override;
  void instance_ended(ObservedProgram& program, uint32_t saga, InstanceStatus status,
                      std::chrono::milliseconds took) override;
  void store_committed(size_t transitions, std::chrono::nanoseconds took) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace saga
