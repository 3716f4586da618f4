// saga::Metrics (saga/metrics.hpp): the engine's reports as Prometheus series
// (prometheus-cpp's core library: Registry, Family, Counter, Gauge,
// Histogram, TextSerializer).
//
// Invariant: the engine's hot path never looks a series up. Every labelled
// child a report can touch is created once, when the engine links a program
// (program_linked: per saga, per step and outcome, per event kind), and kept
// as a pointer in the program's MetricsProgram; a report is an index into
// those vectors and an atomic add (a histogram takes its own uncontended
// mutex). Label values come from the tables: outcomes from
// error_classes.def (plus `ok`, and `custom` for every other class, so that
// a participant cannot make series without end), event kinds from
// events.def, statuses from the status table (all_statuses()). Series that
// describe the present (instances by status, timers, gates, breakers) are
// read at scrape time from the engine and its store, never cached.
#include "saga/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <sstream>
#include <vector>

#include "saga/error_classes.hpp"
#include "saga/events.hpp"

namespace saga {

namespace {

using prometheus::ClientMetric;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr size_t kEventKinds = std::size(kEvents);
constexpr size_t kErrorClassCount = std::size(kErrorClasses);
// Outcomes of an attempt: `ok`, each error class in table order, `custom`.
constexpr size_t kOutcomes = kErrorClassCount + 2;
constexpr size_t kCustomOutcome = kOutcomes - 1;

std::string outcome_name(size_t i) {
  if (i == 0) return "ok";
  if (i == kCustomOutcome) return "custom";
  return std::string(kErrorClasses[i - 1].name);
}

// The outcome index of an attempt's error class ("" = ok).
size_t outcome_of(std::string_view error_class) {
  if (error_class.empty()) return 0;
  for (size_t i = 0; i < kErrorClassCount; ++i) {
    if (kErrorClasses[i].name == error_class) return i + 1;
  }
  return kCustomOutcome;
}

// The statuses an instance can end with in an engine (terminal, or stuck).
bool is_end(InstanceStatus s) {
  return is_terminal(s) || s == InstanceStatus::kStuck;
}

size_t status_index(InstanceStatus s) {
  const std::vector<InstanceStatus>& all = all_statuses();
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == s) return i;
  }
  return 0;
}

// Bucket bounds, in seconds (and transitions): from the fastest value worth
// telling apart to the longest one expected.
const Histogram::BucketBoundaries& saga_buckets() {
  static const Histogram::BucketBoundaries b{0.01, 0.05, 0.1, 0.5, 1,    5,     10,
                                             30,   60,   300, 900, 3600, 21600, 86400};
  return b;
}
const Histogram::BucketBoundaries& call_buckets() {
  static const Histogram::BucketBoundaries b{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,   0.1,   0.25,   0.5,   1,
                                             2.5,    5,      10,    30,     60};
  return b;
}
const Histogram::BucketBoundaries& commit_buckets() {
  static const Histogram::BucketBoundaries b{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1};
  return b;
}
const Histogram::BucketBoundaries& batch_buckets() {
  static const Histogram::BucketBoundaries b{1,   2,   4,   8,    16,   32,  64,
                                             128, 256, 512, 1024, 2048, 4096};
  return b;
}

double seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

// The series of one saga of a program.
struct SagaSeries {
  Counter* started = nullptr;
  Counter* compensations = nullptr;
  Counter* dead_letters = nullptr;
  std::vector<Counter*>
      finished;                  // By status_index(); null for statuses an instance cannot end in.
  std::vector<Counter*> events;  // By EventKind.
  Histogram* duration = nullptr;
};

// The series of one step: attempts of its do and undo by outcome, and the
// latency of its calls.
struct StepSeries {
  std::vector<Counter*> attempts;       // By outcome.
  std::vector<Counter*> undo_attempts;  // By outcome; empty when the step has no undo.
  Histogram* latency = nullptr;
};

struct MetricsProgram final : ObservedProgram {
  std::vector<SagaSeries> sagas;
  std::vector<StepSeries> steps;
};

// A gauge or counter family built at scrape time.
struct Snapshot {
  MetricFamily family;
  Snapshot(std::string name, std::string help, MetricType type) {
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = type;
  }
  void add(std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (family.type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    family.metric.push_back(std::move(m));
  }
};

double number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();

  Family<Counter>& started;
  Family<Counter>& finished;
  Family<Counter>& attempts;
  Family<Counter>& undo_attempts;
  Family<Counter>& compensations;
  Family<Counter>& dead_letters;
  Family<Counter>& events;
  Family<Histogram>& duration;
  Family<Histogram>& call_latency;
  prometheus::Gauge& in_flight;
  Histogram& commit_latency;
  Histogram& batch_size;

  std::mutex engine_mu;  // Guards engine and breakers; held while a scrape reads them.
  Engine* engine = nullptr;
  std::function<nlohmann::json()> breakers;

  Impl()
      : started(prometheus::BuildCounter()
                    .Name("saga_instances_started_total")
                    .Help("Instances that began to run (their `started` event), by saga.")
                    .Register(*registry)),
        finished(prometheus::BuildCounter()
                     .Name("saga_instances_finished_total")
                     .Help("Instances that ended in this process, by saga and final status "
                           "(stuck included).")
                     .Register(*registry)),
        attempts(prometheus::BuildCounter()
                     .Name("saga_step_attempts_total")
                     .Help("Attempts of steps' actions, by saga, step and outcome (ok, an error "
                           "class, or custom).")
                     .Register(*registry)),
        undo_attempts(prometheus::BuildCounter()
                          .Name("saga_undo_attempts_total")
                          .Help("Attempts of steps' undos (compensations), by saga, step and "
                                "outcome.")
                          .Register(*registry)),
        compensations(prometheus::BuildCounter()
                          .Name("saga_compensations_total")
                          .Help("Instances that began to compensate, by saga.")
                          .Register(*registry)),
        dead_letters(prometheus::BuildCounter()
                         .Name("saga_dead_letters_total")
                         .Help("Compensations that gave up (the instance is stuck with a dead "
                               "letter), by saga.")
                         .Register(*registry)),
        events(prometheus::BuildCounter()
                   .Name("saga_history_events_total")
                   .Help("Committed history events, by saga and kind (docs/stdlib.md, "
                         "\"History events\").")
                   .Register(*registry)),
        duration(prometheus::BuildHistogram()
                     .Name("saga_instance_duration_seconds")
                     .Help("From an instance's creation to its end, by saga.")
                     .Register(*registry)),
        call_latency(prometheus::BuildHistogram()
                         .Name("saga_attempt_duration_seconds")
                         .Help("From an attempt's call going out to its answer or timeout, by "
                               "saga and step (do and undo).")
                         .Register(*registry)),
        in_flight(prometheus::BuildGauge()
                      .Name("saga_attempts_in_flight")
                      .Help("Calls of actions and services out now, waiting for their answer.")
                      .Register(*registry)
                      .Add({})),
        commit_latency(prometheus::BuildHistogram()
                           .Name("saga_store_commit_duration_seconds")
                           .Help("Duration of the store's group commits.")
                           .Register(*registry)
                           .Add({}, commit_buckets())),
        batch_size(prometheus::BuildHistogram()
                       .Name("saga_store_commit_transitions")
                       .Help("Transitions per group commit of the store.")
                       .Register(*registry)
                       .Add({}, batch_buckets())) {}

  std::shared_ptr<MetricsProgram> resolve(const ProgramShape& shape) {
    auto p = std::make_shared<MetricsProgram>();
    const std::vector<InstanceStatus>& statuses = all_statuses();
    for (const std::string& saga : shape.sagas) {
      SagaSeries& s = p->sagas.emplace_back();
      s.started = &started.Add({{"saga", saga}});
      s.compensations = &compensations.Add({{"saga", saga}});
      s.dead_letters = &dead_letters.Add({{"saga", saga}});
      s.duration = &duration.Add({{"saga", saga}}, saga_buckets());
      for (InstanceStatus st : statuses) {
        s.finished.push_back(is_end(st) ? &finished.Add({{"saga", saga}, {"status", to_string(st)}})
                                        : nullptr);
      }
      for (const EventInfo& e : kEvents) {
        s.events.push_back(&events.Add({{"saga", saga}, {"kind", std::string(e.name)}}));
      }
    }
    for (const ProgramShape::Step& step : shape.steps) {
      StepSeries& s = p->steps.emplace_back();
      const std::string& saga = shape.sagas.at(step.saga);
      for (size_t o = 0; o < kOutcomes; ++o) {
        s.attempts.push_back(
            &attempts.Add({{"saga", saga}, {"step", step.name}, {"outcome", outcome_name(o)}}));
        if (step.has_undo) {
          s.undo_attempts.push_back(&undo_attempts.Add(
              {{"saga", saga}, {"step", step.name}, {"outcome", outcome_name(o)}}));
        }
      }
      s.latency = &call_latency.Add({{"saga", saga}, {"step", step.name}}, call_buckets());
    }
    return p;
  }

  // The series read at scrape time. Called with engine_mu held.
  void present(std::vector<MetricFamily>& out) {
    if (engine) {
      auto counts = engine->store().count_by_status();
      if (counts.ok()) {
        Snapshot by_status("saga_instances",
                           "Instances in the store by status, at the time of the scrape.",
                           MetricType::Gauge);
        for (InstanceStatus st : all_statuses()) {
          uint64_t n = 0;
          for (const StatusCount& c : counts.value()) {
            if (c.status == st) n = c.count;
          }
          by_status.add({{"status", to_string(st)}}, static_cast<double>(n));
        }
        out.push_back(std::move(by_status.family));
      }
      Snapshot timers("saga_timers_armed",
                      "Timers armed in the engine (backoffs, sleeps, attempt timeouts, "
                      "deadlines, the lease renewal).",
                      MetricType::Gauge);
      timers.add({}, static_cast<double>(engine->armed_timers()));
      out.push_back(std::move(timers.family));
      Snapshot active("saga_instances_active",
                      "Instances the engine runs now (waiting and evicted ones included).",
                      MetricType::Gauge);
      active.add({}, static_cast<double>(engine->active()));
      out.push_back(std::move(active.family));
      Snapshot evicted("saga_instances_evicted",
                       "Instances waiting in a long timer with only their id in memory.",
                       MetricType::Gauge);
      evicted.add({}, static_cast<double>(engine->evicted()));
      out.push_back(std::move(evicted.family));
      Snapshot admission("saga_admission_queue",
                         "Started instances waiting for admission (EngineOptions::max_active).",
                         MetricType::Gauge);
      admission.add({}, static_cast<double>(engine->admission_queue()));
      out.push_back(std::move(admission.family));
      gates(engine->services(), out);
    }
    if (breakers) breaker_series(breakers(), out);
  }

  // Engine::services(): the gate of every service called so far.
  static void gates(const nlohmann::json& services, std::vector<MetricFamily>& out) {
    Snapshot limit("saga_service_limit", "Calls the engine lets out to a service at once now.",
                   MetricType::Gauge);
    Snapshot in_use("saga_service_in_flight",
                    "Calls of a service out now (slots of its gate in use).", MetricType::Gauge);
    Snapshot waiting("saga_service_waiting", "Calls waiting for a slot of a service's gate.",
                     MetricType::Gauge);
    Snapshot delayed("saga_service_delayed_total",
                     "Calls that waited for a slot or a retry token of a service.",
                     MetricType::Counter);
    Snapshot shed("saga_service_shed_total",
                  "Calls that waited too long at a service's gate and failed, not sent.",
                  MetricType::Counter);
    for (const auto& [name, g] : services.items()) {
      limit.add({{"service", name}}, number(g, "limit"));
      in_use.add({{"service", name}}, number(g, "in_flight"));
      waiting.add({{"service", name}}, number(g, "waiting"));
      delayed.add({{"service", name}}, number(g, "delayed"));
      shed.add({{"service", name}}, number(g, "shed"));
    }
    for (Snapshot* s : {&limit, &in_use, &waiting, &delayed, &shed}) {
      if (!s->family.metric.empty()) out.push_back(std::move(s->family));
    }
  }

  // HttpClient::breaker_states(): breakers and bulkheads of url services.
  static void breaker_series(const nlohmann::json& states, std::vector<MetricFamily>& out) {
    Snapshot state("saga_breaker_state",
                   "The state of a service's circuit breaker: 1 for the state it is in.",
                   MetricType::Gauge);
    Snapshot failures("saga_breaker_failures",
                      "Consecutive failures a service's circuit breaker counts now.",
                      MetricType::Gauge);
    Snapshot rejected("saga_breaker_rejected_total",
                      "Calls a service's open circuit breaker refused (not sent).",
                      MetricType::Counter);
    Snapshot bh_limit("saga_bulkhead_limit", "Calls a service's bulkhead lets out at once.",
                      MetricType::Gauge);
    Snapshot bh_used("saga_bulkhead_in_use", "Calls holding a slot of a service's bulkhead.",
                     MetricType::Gauge);
    Snapshot bh_waiting("saga_bulkhead_waiting", "Calls waiting for a slot of a bulkhead.",
                        MetricType::Gauge);
    if (!states.is_object()) return;
    for (const auto& [name, s] : states.items()) {
      if (auto b = s.find("breaker"); b != s.end() && b->is_object()) {
        std::string st = b->value("state", std::string("unknown"));
        state.add({{"service", name}, {"state", st}}, 1);
        failures.add({{"service", name}}, number(*b, "failures"));
        rejected.add({{"service", name}}, number(*b, "rejected"));
      }
      if (auto b = s.find("bulkhead"); b != s.end() && b->is_object()) {
        bh_limit.add({{"service", name}}, number(*b, "limit"));
        bh_used.add({{"service", name}}, number(*b, "in_use"));
        bh_waiting.add({{"service", name}}, number(*b, "waiting"));
      }
    }
    for (Snapshot* s : {&state, &failures, &rejected, &bh_limit, &bh_used, &bh_waiting}) {
      if (!s->family.metric.empty()) out.push_back(std::move(s->family));
    }
  }
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}

Metrics::~Metrics() = default;

std::string Metrics::scrape() {
  std::vector<MetricFamily> families = impl_->registry->Collect();
  {
    std::lock_guard lock(impl_->engine_mu);
    impl_->present(families);
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return std::move(out).str();
}

void Metrics::watch_breakers(std::function<nlohmann::json()> states) {
  std::lock_guard lock(impl_->engine_mu);
  impl_->breakers = std::move(states);
}

void Metrics::engine_opened(Engine& engine) {
  std::lock_guard lock(impl_->engine_mu);
  impl_->engine = &engine;
}

void Metrics::engine_closing(Engine& engine) {
  std::lock_guard lock(impl_->engine_mu);
  if (impl_->engine == &engine) impl_->engine = nullptr;
}

std::shared_ptr<ObservedProgram> Metrics::program_linked(const ProgramShape& shape) {
  return impl_->resolve(shape);
}

void Metrics::call_sent(ObservedProgram& program, uint32_t step, bool undo) {
  (void)program;
  (void)step;
  (void)undo;
  impl_->in_flight.Increment();
}

void Metrics::call_ended(ObservedProgram& program, uint32_t step, bool undo,
                         std::chrono::nanoseconds took) {
  (void)undo;
  impl_->in_flight.Decrement();
  auto& p = static_cast<MetricsProgram&>(program);
  if (step < p.steps.size()) p.steps[step].latency->Observe(seconds(took));
}

void Metrics::attempt_ended(ObservedProgram& program, uint32_t step, bool undo,
                            std::string_view error_class) {
  auto& p = static_cast<MetricsProgram&>(program);
  if (step >= p.steps.size()) return;
  std::vector<Counter*>& by_outcome = undo ? p.steps[step].undo_attempts : p.steps[step].attempts;
  if (by_outcome.empty()) return;
  by_outcome[outcome_of(error_class)]->Increment();
}

void Metrics::committed(ObservedProgram& program, uint32_t saga,
                        std::span<const EventKind> events) {
  auto& p = static_cast<MetricsProgram&>(program);
  if (saga >= p.sagas.size()) return;
  SagaSeries& s = p.sagas[saga];
  for (EventKind kind : events) {
    s.events[static_cast<size_t>(kind)]->Increment();
    switch (kind) {
      case EventKind::started:
        s.started->Increment();
        break;
      case EventKind::compensating:
        s.compensations->Increment();
        break;
      case EventKind::stuck:
        s.dead_letters->Increment();
        break;
      default:
        break;
    }
  }
}

void Metrics::instance_ended(ObservedProgram& program, uint32_t saga, InstanceStatus status,
                             std::chrono::milliseconds took) {
  auto& p = static_cast<MetricsProgram&>(program);
  if (saga >= p.sagas.size()) return;
  SagaSeries& s = p.sagas[saga];
  if (Counter* c = s.finished[status_index(status)]) c->Increment();
  s.duration->Observe(std::chrono::duration<double>(took).count());
}

void Metrics::store_committed(size_t transitions, std::chrono::nanoseconds took) {
  impl_->commit_latency.Observe(seconds(took));
  impl_->batch_size.Observe(static_cast<double>(transitions));
}

}  // namespace saga
