// sagactl run, start, resume, worker, ls, show and cancel: the runtime's
// commands, thin wrappers over saga::Engine.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "grammar/suggest.hpp"
#include "runtime/bytecode/format.hpp"
#include "runtime/value/utf8.hpp"
#include "saga/engine.hpp"
#include "saga/events.hpp"
#include "saga/http.hpp"
#include "saga/records_json.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/listen.hpp"
#include "sagactl/outbox_command.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {
namespace {

std::optional<Durability> durability_of(const std::string& name) {
  if (name == "full") return Durability::kFull;
  if (name == "normal") return Durability::kNormal;
  return std::nullopt;
}

}  // namespace

Runtime::~Runtime() {
  if (http) http->shutdown();
  engine.reset();
}

std::optional<std::pair<std::string, std::string>> url_binding(const std::string& binding,
                                                               const char* flag,
                                                               const char* shape) {
  const size_t eq = binding.find('=');
  if (eq == std::string::npos || eq == 0 || binding.compare(eq + 1, 7, "http://") != 0) {
    print_error(fmt::format("{} wants {}, not '{}'", flag, shape, binding));
    return std::nullopt;
  }
  return std::pair{binding.substr(0, eq), binding.substr(eq + 1)};
}

std::unique_ptr<Runtime> open_engine(
    const std::string& db, const std::string& durability, const Access& access,
    std::function<void(const std::string&, const HistoryEvent&)> on_event, bool with_metrics,
    size_t max_claim) {
  auto rt = std::make_unique<Runtime>();
  HttpOptions http;
  http.allow_hosts = access.allow_hosts;
  // Breaker transitions and other client events go to the process log.
  http.log = [](std::string line) { std::cerr << "sagactl: " << line << "\n"; };
  rt->http = HttpClient::create(std::move(http));
  EngineOptions options;
  options.database = database_path(db);
  options.durability = durability_of(durability).value_or(Durability::kFull);
  options.store.max_claim = max_claim;
  options.on_event = std::move(on_event);
  options.service_transport = rt->http->transport();
  options.max_active = access.max_active;
  options.overload.adaptive = access.adaptive;
  if (with_metrics) {
    rt->metrics = std::make_shared<Metrics>();
    rt->metrics->watch_breakers([client = rt->http] { return client->breaker_states(); });
    options.observer = rt->metrics;
  }
  options.serve_inbox = access.serve_inbox;
  options.notify_operators = access.notify_operators;
  options.compensation.attempts = access.undo_attempts;
  options.lease = access.lease;
  options.store.notify = access.wake_on_notify;
  options.notified_inbox_watch = access.notified_watch;
  for (const std::string& binding : access.service_urls) {
    auto bound = url_binding(binding, "--service", "NAME=http://host:port");
    if (!bound) return nullptr;
    options.service_urls[bound->first] = bound->second;
  }
  auto engine = Engine::open(std::move(options));
  if (!engine.ok()) {
    print_error(engine.status().message());
    return nullptr;
  }
  rt->engine = std::move(engine).value();
  rt->http->register_stdlib_actions(*rt->engine);
  register_exec_action(*rt->engine, access.allow_exec);
  return rt;
}

namespace {

// For a stuck instance: which undo gave up, and which compensations are
// still to run; empty for any other instance. What an operator needs to know
// when `cancel` or `resume` leaves it as it is.
std::string stuck_explanation(Store& store, const std::string& id) {
  auto view = inspect_instance(store, id);
  if (!view.ok() || view.value()["status"] != "stuck") return {};
  const nlohmann::json& v = view.value();
  std::string out;
  if (!v["dead_letters"].empty()) {
    const nlohmann::json& d = v["dead_letters"].back();
    out += fmt::format(": the undo of step '{}' gave up ({}: {})", d["step"].get<std::string>(),
                       d["error_class"].get<std::string>(), d["message"].get<std::string>());
  }
  std::string rest;
  if (v.contains("compensation_stack")) {
    for (const auto& c : v["compensation_stack"]) {
      rest += (rest.empty() ? "" : ", ") + c.value("step", std::string("a parallel block"));
    }
  }
  out += rest.empty() ? "; no other compensation is left"
                      : "; the compensations after it have not run: " + rest;
  out += fmt::format(
      ". A stuck instance waits for an operator: neither cancel nor resume changes it (see "
      "sagactl show {})",
      id);
  return scrub_utf8(out);
}

// What resume leaves alone: every stuck instance, named (the first ten).
void report_stuck(Store& store) {
  constexpr size_t kNamed = 10;
  auto stuck = store.list_instances(InstanceStatus::kStuck, kNamed + 1);
  if (!stuck.ok() || stuck->empty()) return;
  std::string ids;
  for (size_t i = 0; i < stuck->size() && i < kNamed; ++i) {
    ids += (ids.empty() ? "" : ", ") + (*stuck)[i].id;
  }
  if (stuck->size() > kNamed) ids += ", ...";
  std::cerr << fmt::format(
      "not resumed: {}{} stuck instance{} (a compensation gave up; each waits for an operator, "
      "see sagactl show ID): {}\n",
      stuck->size() > kNamed ? "more than " : "", std::min(stuck->size(), kNamed),
      stuck->size() == 1 ? "" : "s", ids);
}

}  // namespace

std::unique_ptr<Store> open_reader(const std::string& db) {
  StoreOptions options;
  options.read_only = true;
  auto store = open_store(database_path(db), options);
  if (!store.ok()) {
    print_error(store.status().message());
    return nullptr;
  }
  return std::move(store).value();
}

namespace {

// Checks --service bindings against the services the program declares.
std::string check_service_bindings(const bytecode::Program& program, const Access& access) {
  std::vector<std::string> declared;
  for (const bytecode::Service& svc : program.services) declared.push_back(svc.name);
  for (const std::string& binding : access.service_urls) {
    std::string name = binding.substr(0, binding.find('='));
    if (std::find(declared.begin(), declared.end(), name) != declared.end()) continue;
    std::string help = did_you_mean(name, declared);
    std::string list;
    for (const std::string& d : declared) list += (list.empty() ? "" : ", ") + d;
    return fmt::format("--service {}: {} declares no service '{}'{}{}", binding,
                       program.source_name, name, help.empty() ? "" : " (" + help + ")",
                       list.empty() ? " (it declares none)" : " (it declares: " + list + ")");
  }
  return {};
}

}  // namespace

// Reads the program, chooses the saga and reads the input, in that order.
Prepared prepare_run(const RunArgs& args) {
  Prepared out;
  auto program = load_program(args.program);
  if (!program) {
    out.exit = kExitError;
    return out;
  }
  out.program = std::move(*program);
  out.saga = args.saga;
  if (out.saga.empty()) {
    if (out.program.sagas.size() != 1) {
      std::string names;
      for (const auto& s : out.program.sagas) names += (names.empty() ? "" : ", ") + s.name;
      print_error(fmt::format("{} has {} sagas ({}): choose one with --saga", args.program,
                              out.program.sagas.size(), names));
      out.exit = kExitUsage;
      return out;
    }
    out.saga = out.program.sagas[0].name;
  }
  if (std::string bad = check_service_bindings(out.program, args.access); !bad.empty()) {
    print_error(bad);
    out.exit = kExitUsage;
    return out;
  }
  std::string text = args.input;
  if (!args.input_file.empty()) {
    auto file = read_text_file(args.input_file);
    if (!file) {
      out.exit = kExitError;
      return out;
    }
    text = *file;
  }
  if (text.empty()) text = "{}";
  out.input = nlohmann::json::parse(text, nullptr, false);
  if (out.input.is_discarded()) {
    print_error(scrub_utf8(fmt::format("the input is not valid JSON: {}",
                                       text.size() > 60 ? text.substr(0, 60) + "..." : text)));
    out.exit = kExitUsage;
  }
  return out;
}

namespace {

// Stores the prepared program in the engine's database; its hash, or
// nullopt (printed).
std::optional<std::string> load_into(Engine& engine, Prepared& prepared) {
  auto hash = engine.load_program(bytecode::serialize(prepared.program));
  if (!hash.ok()) {
    print_error(hash.status().message());
    return std::nullopt;
  }
  return hash.value();
}

// One line per committed history event, for people watching a run.
void print_event(const HistoryEvent& e, int64_t t0, bool color) {
  const char* dim = color ? "\033[2m" : "";
  const char* red = color ? "\033[31m" : "";
  const char* green = color ? "\033[32m" : "";
  const char* yellow = color ? "\033[33m" : "";
  const char* reset = color ? "\033[0m" : "";
  // The tone of each kind is in runtime/include/saga/events.def.
  const char* tint = "";
  if (const EventInfo* info = find_event(e.kind)) {
    switch (info->tone) {
      case EventTone::kGood:
        tint = green;
        break;
      case EventTone::kBad:
        tint = red;
        break;
      case EventTone::kUndo:
        tint = yellow;
        break;
      case EventTone::kInfo:
        break;
    }
  }
  std::string what = e.step.empty() ? e.kind : fmt::format("{} {}", e.step, e.kind);
  if (e.attempt > 1) what += fmt::format(" (attempt {})", e.attempt);
  std::string detail;
  if (!e.error_class.empty()) detail = e.error_class + ": ";
  if (e.kind == "log" && !e.data_json.empty()) {
    // log(level:) other than info: {"level":"warn"}.
    auto data = nlohmann::json::parse(e.data_json, nullptr, false);
    if (data.is_object() && data.contains("level")) detail += "[" + data.value("level", "") + "] ";
  }
  detail += e.message;
  if (detail.empty() && !e.data_json.empty() && e.data_json.size() < 120) detail = e.data_json;
  std::cerr << fmt::format("{}{:>+9.3f}s{}  {}{:<28}{}  {}\n", dim, (e.time_ms - t0) / 1000.0,
                           reset, tint, what, reset, detail);
}

}  // namespace

int run(const RunArgs& args) {
  Prepared prepared = prepare_run(args);
  if (prepared.exit != kExitOk) return prepared.exit;
  std::mutex print_mu;
  std::string watched;
  int64_t t0 = 0;
  bool color = stderr_is_terminal();
  auto rt = open_engine(args.db, args.durability, args.access,
                        [&](const std::string& id, const HistoryEvent& e) {
                          if (args.quiet) return;
                          std::lock_guard lock(print_mu);
                          if (t0 == 0) {
                            t0 = e.time_ms;
                            std::cerr << fmt::format("instance {}\n", id);
                          }
                          if (watched.empty() || id == watched) print_event(e, t0, color);
                        });
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto hash = load_into(engine, prepared);
  if (!hash) return kExitError;
  auto id = engine.start(*hash, prepared.saga, prepared.input);
  if (!id.ok()) {
    print_error(id.status().message());
    return id.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitError;
  }
  {
    std::lock_guard lock(print_mu);
    watched = id.value();
  }
  auto info = engine.wait(id.value());
  if (!info.ok()) {
    print_error(info.status().message());
    return kExitError;
  }
  std::lock_guard lock(print_mu);
  if (info->status == InstanceStatus::kCompleted) {
    std::cout << json_text(info->output) << "\n";
  } else {
    std::cerr << fmt::format("{}: {}{}\n", to_string(info->status), info->error_class,
                             info->error_message.empty() ? "" : ": " + info->error_message);
  }
  return exit_code_for(info->status);
}

int start(const RunArgs& args) {
  // What a run may reach is the business of the process that runs it: a
  // binding given here would not be seen by the worker (README, "Running
  // sagas").
  const Access& a = args.access;
  if (!a.service_urls.empty() || !a.allow_hosts.empty() || a.allow_exec) {
    print_error(
        fmt::format("{} is not recorded with the instance: give it to the process that runs it "
                    "(sagactl worker or resume), which decides what instances may reach",
                    !a.service_urls.empty()  ? "--service"
                    : !a.allow_hosts.empty() ? "--allow-host"
                                             : "--allow-exec"));
    return kExitUsage;
  }
  Prepared prepared = prepare_run(args);
  if (prepared.exit != kExitOk) return prepared.exit;
  auto rt = open_engine(args.db, args.durability, args.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto hash = load_into(engine, prepared);
  if (!hash) return kExitError;
  auto id = engine.enqueue(*hash, prepared.saga, prepared.input);
  if (!id.ok()) {
    print_error(id.status().message());
    return id.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitError;
  }
  std::cout << id.value() << "\n";
  return kExitOk;
}

int resume(const DbArgs& args) {
  Access access = args.access;
  access.serve_inbox = true;  // Operators' commands posted meanwhile are carried out.
  auto rt = open_engine(args.db, args.durability, access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto taken = engine.resume();
  if (!taken.ok()) {
    print_error(taken.status().message());
    return kExitError;
  }
  engine.wait_idle();
  std::cerr << fmt::format("resumed {} instance{}\n", taken.value(), taken.value() == 1 ? "" : "s");
  report_stuck(engine.store());
  return kExitOk;
}

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}
}  // namespace

// Instances a worker takes per poll: with several workers on one database
// (PostgreSQL) each takes a share of the pending ones, not all of them.
constexpr size_t kWorkerClaim = 256;

namespace {
// A database URL as a log line may show it: postgresql://USER@HOST/DB,
// without the password.
std::string shown_url(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t at = url.find('@', scheme + 3);
  const size_t colon = url.find(':', scheme + 3);
  if (at == std::string::npos || colon == std::string::npos || colon > at ||
      url.find('/', scheme + 3) < at) {
    return url;
  }
  return url.substr(0, colon) + url.substr(at);
}
}  // namespace

int worker(const DbArgs& args, const WorkerArgs& w, const ListenArgs& listen,
           const OutboxArgs& outbox) {
  Access access = args.access;
  access.serve_inbox = true;  // Operators' commands are carried out here.
  std::optional<int64_t> lease = parse_duration_ms(w.lease);
  if (!lease) {
    print_error(fmt::format("--lease {}: expected a duration such as 2s, 30s or 5m", w.lease));
    return kExitUsage;
  }
  if (*lease < kMinLease.count()) {
    print_error(
        fmt::format("--lease {}: a lease must be at least {} ms (it is renewed every "
                    "third of it)",
                    w.lease, kMinLease.count()));
    return kExitUsage;
  }
  access.lease = std::chrono::milliseconds(*lease);
  access.wake_on_notify = w.wake_on_notify;
  // With notifications the inbox is looked at on each one, and anyway at
  // the poll interval.
  access.notified_watch = std::chrono::milliseconds(w.poll_ms);
  access.notify_operators = !outbox.notify.empty();
  std::optional<std::map<std::string, std::string>> sinks = sink_map(outbox);
  if (!sinks) return kExitUsage;
  auto rt = open_engine(args.db, args.durability, access, {}, !listen.listen.empty(), kWorkerClaim);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  if (!serve_programs(engine, listen.programs)) return kExitError;
  // The relay of the outbox (docs/events.md); stopped before the engine.
  std::unique_ptr<Relay> relay;
  if (wants_relay(outbox)) {
    relay = start_relay(std::move(*sinks), engine.store(), *rt->http, access.lease);
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Stopped before the engine: no request is served by a stopping engine.
  std::unique_ptr<serve::Server> server;
  if (!listen.listen.empty()) {
    int exit = kExitOk;
    server = start_listener(
        listen, engine, rt->metrics,
        [] { return g_stop ? std::string("the worker is shutting down") : std::string(); }, exit);
    if (!server) return exit;
  }
  Store& store = engine.store();
  const bool notified = store.notifies();
  std::cerr << fmt::format("worker on {} ({}polling every {} ms, lease {} ms; Ctrl-C stops)\n",
                           shown_url(database_path(args.db)),
                           notified ? "woken by notifications, " : "", w.poll_ms, *lease);
  while (!g_stop) {
    // Read before the claim: a notification that arrives during it ends the
    // wait below at once.
    const uint64_t seen = notified ? store.work_count() : 0;
    auto taken = engine.resume();
    if (!taken.ok()) print_error(taken.status().message());
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(w.poll_ms);
    // In slices, so that Ctrl-C is seen within 100 ms.
    for (auto left = until - std::chrono::steady_clock::now();
         left > std::chrono::milliseconds(0) && !g_stop;
         left = until - std::chrono::steady_clock::now()) {
      auto slice = std::min<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(left) +
              std::chrono::milliseconds(1),
          std::chrono::milliseconds(notified ? 100 : 10));
      if (!notified) {
        std::this_thread::sleep_for(slice);
      } else if (store.wait_for_work(seen, slice) != seen) {
        break;
      }
    }
  }
  if (relay) relay->stop();
  if (server) server->stop();
  std::cerr << "worker stopping: waiting instances stay in the database\n";
  return kExitOk;
}

std::optional<int64_t> parse_duration_ms(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  const int64_t n = std::stoll(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  const int64_t scale = unit == "ms"  ? 1
                        : unit == "s" ? 1000
                        : unit == "m" ? 60'000
                        : unit == "h" ? 3'600'000
                        : unit == "d" ? 86'400'000
                                      : 0;
  if (scale == 0) return std::nullopt;
  return n * scale;
}

int ls(const DbArgs& args, const LsArgs& ls_args) {
  InstanceQuery query;
  if (!ls_args.status.empty()) {
    query.status = parse_status(ls_args.status);
    if (!query.status) {
      print_error(fmt::format("unknown status '{}'", ls_args.status));
      return kExitUsage;
    }
  }
  std::optional<int64_t> stalled;
  if (!ls_args.stalled.empty()) {
    stalled = parse_duration_ms(ls_args.stalled);
    if (!stalled) {
      print_error(fmt::format("--stalled {}: expected a duration such as 30s, 10m, 2h or 1d",
                              ls_args.stalled));
      return kExitUsage;
    }
    if (query.status && (is_terminal(*query.status) || *query.status == InstanceStatus::kStuck)) {
      print_error(fmt::format("--stalled lists unfinished instances: --status {} finds none",
                              ls_args.status));
      return kExitUsage;
    }
  }
  query.saga = ls_args.saga;
  query.limit = ls_args.limit;
  auto store = open_reader(args.db);
  if (!store) return kExitError;
  Result<std::vector<InstanceRecord>> list = std::vector<InstanceRecord>{};
  const int64_t now = now_ms();
  if (stalled) {
    // Unfinished (pending, running, compensating) with no transition
    // committed for that long: waiting on an attempt, a backoff or a worker.
    // The longest stalled first.
    list = store->list_unfinished();
    if (list.ok()) {
      std::vector<InstanceRecord> kept;
      for (InstanceRecord& r : list.value()) {
        if (now - r.updated_ms < *stalled) continue;
        if (query.status && r.status != *query.status) continue;
        if (!query.saga.empty() && r.saga != query.saga) continue;
        r.checkpoint.clear();
        r.fibers.clear();
        kept.push_back(std::move(r));
      }
      std::stable_sort(kept.begin(), kept.end(),
                       [](const auto& a, const auto& b) { return a.updated_ms < b.updated_ms; });
      if (kept.size() > query.limit) kept.resize(query.limit);
      list = std::move(kept);
    }
  } else {
    list = store->query_instances(query);
  }
  if (!list.ok()) {
    print_error(list.status().message());
    return kExitError;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const InstanceRecord& r : list.value()) out.push_back(records::instance_summary(r));
    std::cout << records::text(out);
    return kExitOk;
  }
  if (stalled) {
    std::cout << fmt::format("{:<36}  {:<12}  {:<24}  {}\n", "ID", "STATUS", "SAGA",
                             "NO PROGRESS FOR");
    for (const InstanceRecord& r : list.value()) {
      std::cout << scrub_utf8(fmt::format("{:<36}  {:<12}  {:<24}  {}\n", r.id, to_string(r.status),
                                          r.saga, age_text(now - r.updated_ms)));
    }
    return kExitOk;
  }
  std::cout << fmt::format("{:<36}  {:<12}  {:<24}  {}\n", "ID", "STATUS", "SAGA", "ERROR");
  for (const InstanceRecord& r : list.value()) {
    std::cout << scrub_utf8(
        fmt::format("{:<36}  {:<12}  {:<24}  {}\n", r.id, to_string(r.status), r.saga,
                    r.error_class.empty() ? "" : r.error_class + ": " + r.error_message));
  }
  return kExitOk;
}

// A compensation log as inspect shows it (newest first; a parallel group as
// its branches' logs), indented by depth.
void print_log(const nlohmann::json& log, int depth) {
  const std::string indent(static_cast<size_t>(depth) * 2, ' ');
  for (const auto& c : log) {
    if (c.contains("parallel")) {
      std::cout << indent << "parallel:\n";
      for (const auto& branch : c["parallel"]) {
        std::cout << indent << "  -\n";
        print_log(branch, depth + 2);
      }
      continue;
    }
    std::cout << fmt::format("{}{}{}\n", indent, scrub_utf8(c.value("step", "")),
                             c.value("in_doubt", false) ? "  (in doubt)" : "");
  }
}

int show(const DbArgs& args, const std::string& id) {
  auto store = open_reader(args.db);
  if (!store) return kExitError;
  auto view = inspect_instance(*store, id);
  if (!view.ok()) {
    print_error(view.status().message());
    return view.status().code() == StatusCode::kNotFound ? kExitNotFound : kExitError;
  }
  const nlohmann::json& v = view.value();
  if (args.json) {
    std::cout << records::text(v);
    return kExitOk;
  }
  std::cout << fmt::format("instance  {}\nsaga      {}  (program {})\nstatus    {}\n",
                           v["id"].get<std::string>(), v["saga"].get<std::string>(),
                           v["program"].get<std::string>().substr(0, 12),
                           v["status"].get<std::string>());
  if (!v["error_class"].get<std::string>().empty()) {
    std::cout << fmt::format("error     {}: {}\n", v["error_class"].get<std::string>(),
                             v["error_message"].get<std::string>());
  }
  std::cout << "input     " << json_text(v["input"], -1) << "\n";
  if (!v["output"].is_null()) std::cout << "output    " << json_text(v["output"], -1) << "\n";
  if (v.contains("waiting")) {
    for (const auto& w : v["waiting"]) {
      std::string what =
          w.value("kind", "") == "join" ? "its fibers"
          : w.value("kind", "") == "signal"
              ? fmt::format("signal '{}' until {}", w.value("signal", ""), w.value("wake_at", ""))
          : w.value("kind", "") == "event"
              ? fmt::format("event {} where {} until {}", w.value("event", ""),
                            json_text(w.value("where", nlohmann::json::object()), -1),
                            w.value("wake_at", ""))
              : fmt::format("{} {} (attempt {}){}", w.value("kind", ""), w.value("action", ""),
                            w.value("attempt", 0),
                            w.value("wake_at", "").empty() ? "" : " at " + w.value("wake_at", ""));
      std::cout << fmt::format("waiting   {}{}\n",
                               w.value("step", "").empty() ? "" : w.value("step", "") + ": ", what);
    }
  }
  if (v.contains("inbox")) {
    for (const auto& m : v["inbox"]) {
      const nlohmann::json& payload = m["payload"];
      const std::string what =
          m.value("kind", "") == "signal" && payload.is_object()
              ? fmt::format("signal '{}' {}", payload.value("name", ""),
                            json_text(payload.value("data", nlohmann::json()), -1))
              : m.value("kind", "");
      std::cout << fmt::format("inbox     {} (posted {}, not consumed yet)\n", what,
                               m.value("posted", ""));
    }
  }
  if (v.contains("variables")) {
    std::cout << "\nvariables\n";
    for (const auto& [name, value] : v["variables"].items()) {
      std::string text = json_text(value, -1);
      if (text.size() > 100) text = text.substr(0, 97) + "...";
      std::cout << fmt::format("  {:<20} {}\n", name, text);
    }
  }
  if (v.contains("compensation_stack")) {
    std::cout << "\ncompensation stack (undone top first)\n";
    print_log(v["compensation_stack"], 1);
  }
  for (const auto& d : v["dead_letters"]) {
    const std::string resolved = d.value("resolved", nlohmann::json()).is_string()
                                     ? " (resolved " + d["resolved"].get<std::string>() + ")"
                                     : "";
    std::cout << fmt::format("\ndead letter{}: step {}: {}: {}\n", resolved,
                             d["step"].get<std::string>(), d["error_class"].get<std::string>(),
                             d["message"].get<std::string>());
  }
  std::cout << "\nhistory\n";
  std::cout << fmt::format("  {:<24}  {:<18}  {:<14}  {:>3}  {}\n", "TIME (UTC)", "EVENT", "STEP",
                           "TRY", "DETAIL");
  for (const auto& e : v["history"]) {
    std::string detail = e["error_class"].get<std::string>();
    if (!detail.empty()) detail += ": ";
    detail += e["message"].get<std::string>();
    std::cout << fmt::format("  {:<24}  {:<18}  {:<14}  {:>3}  {}\n", e["time"].get<std::string>(),
                             e["kind"].get<std::string>(), e["step"].get<std::string>(),
                             e["attempt"].get<int>() ? std::to_string(e["attempt"].get<int>()) : "",
                             detail);
  }
  return kExitOk;
}

int cancel(const DbArgs& args, const std::string& id) {
  auto rt = open_engine(args.db, "full", args.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  Status s = engine.cancel(id);
  if (s.code() == StatusCode::kNotFound) {
    print_error(s.message());
    return kExitNotFound;
  }
  if (s.code() == StatusCode::kFailedPrecondition) {
    print_error(s.message() + stuck_explanation(engine.store(), id));
    return kExitWrongState;
  }
  if (!s.ok()) {
    print_error(s.message());
    return kExitError;
  }
  // If no other process runs the instance, compensate it here.
  auto taken = engine.resume(id);
  if (!taken.ok()) {
    print_error(taken.status().message());
    return kExitError;
  }
  auto info = engine.wait(id, std::chrono::seconds(taken.value() > 0 ? 3600 : 5));
  if (!info.ok()) {
    print_error(info.status().message());
    return kExitError;
  }
  if (args.json) {
    std::cout << json_text(nlohmann::json{
                     {"id", id}, {"command", "cancel"}, {"status", to_string(info->status)}})
              << "\n";
  } else {
    std::cout << fmt::format("{}: {}\n", id, to_string(info->status));
  }
  if (!is_terminal(info->status) && info->status != InstanceStatus::kStuck) {
    std::cerr << "cancel requested: the worker that runs the instance compensates it (it "
                 "notices within about 50 ms)\n";
  } else if (info->status == InstanceStatus::kStuck) {
    std::cerr << "cancelled, but a compensation gave up" << stuck_explanation(engine.store(), id)
              << "\n";
    return kExitStuck;
  }
  return kExitOk;
}

}  // namespace saga::cli
