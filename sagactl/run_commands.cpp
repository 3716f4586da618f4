// sagactl run, start, resume, worker, ls, show and cancel: the runtime's
// commands, thin wrappers over saga::Engine.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "runtime/bytecode/format.hpp"
#include "saga/engine.hpp"
#include "saga/http.hpp"
#include "sagactl/commands.hpp"
#include "sagactl/program_file.hpp"

namespace saga::cli {
namespace {

std::optional<Durability> durability_of(const std::string& name) {
  if (name == "full") return Durability::kFull;
  if (name == "normal") return Durability::kNormal;
  return std::nullopt;
}

// An engine with the HTTP client that performs its service calls and its
// http.* actions. The client is shut down before the engine is destroyed
// (saga/http.hpp says why).
struct Runtime {
  std::shared_ptr<HttpClient> http;
  std::unique_ptr<Engine> engine;
  ~Runtime() {
    if (http) http->shutdown();
    engine.reset();
  }
};

std::unique_ptr<Runtime> open_engine(
    const std::string& db, const std::string& durability, const Access& access,
    std::function<void(const std::string&, const HistoryEvent&)> on_event = {}) {
  auto rt = std::make_unique<Runtime>();
  HttpOptions http;
  http.allow_hosts = access.allow_hosts;
  // Breaker transitions and other client events go to the process log.
  http.log = [](std::string line) { std::cerr << "sagactl: " << line << "\n"; };
  rt->http = HttpClient::create(std::move(http));
  EngineOptions options;
  options.database = database_path(db);
  options.durability = durability_of(durability).value_or(Durability::kFull);
  options.on_event = std::move(on_event);
  options.service_transport = rt->http->transport();
  for (const std::string& binding : access.service_urls) {
    auto eq = binding.find('=');
    if (eq == std::string::npos || eq == 0 || binding.compare(eq + 1, 7, "http://") != 0) {
      print_error(fmt::format("--service wants NAME=http://host:port, not '{}'", binding));
      return nullptr;
    }
    options.service_urls[binding.substr(0, eq)] = binding.substr(eq + 1);
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

// Loads the program file into the engine (and its database); returns the
// hash and the saga to run.
std::optional<std::pair<std::string, std::string>> load_into(Engine& engine, const RunArgs& args) {
  auto program = load_program(args.program);
  if (!program) return std::nullopt;
  std::string saga = args.saga;
  if (saga.empty()) {
    if (program->sagas.size() != 1) {
      std::string names;
      for (const auto& s : program->sagas) names += (names.empty() ? "" : ", ") + s.name;
      print_error(fmt::format("{} has {} sagas ({}): choose one with --saga", args.program,
                              program->sagas.size(), names));
      return std::nullopt;
    }
    saga = program->sagas[0].name;
  }
  auto image = bytecode::serialize(*program);
  auto hash = engine.load_program(image);
  if (!hash.ok()) {
    print_error(hash.status().message());
    return std::nullopt;
  }
  return std::make_pair(hash.value(), saga);
}

std::optional<nlohmann::json> read_input(const RunArgs& args) {
  std::string text = args.input;
  if (!args.input_file.empty()) {
    auto file = read_text_file(args.input_file);
    if (!file) return std::nullopt;
    text = *file;
  }
  if (text.empty()) text = "{}";
  auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) {
    print_error(fmt::format("the input is not valid JSON: {}",
                            text.size() > 60 ? text.substr(0, 60) + "..." : text));
    return std::nullopt;
  }
  return json;
}

// One line per committed history event, for people watching a run.
void print_event(const HistoryEvent& e, int64_t t0, bool color) {
  const char* dim = color ? "\033[2m" : "";
  const char* red = color ? "\033[31m" : "";
  const char* green = color ? "\033[32m" : "";
  const char* yellow = color ? "\033[33m" : "";
  const char* reset = color ? "\033[0m" : "";
  const char* tint = "";
  if (e.kind == "step_completed" || e.kind == "completed" || e.kind == "undo_completed")
    tint = green;
  if (e.kind.find("failed") != std::string::npos || e.kind == "stuck" || e.kind == "step_abandoned")
    tint = red;
  if (e.kind.rfind("undo", 0) == 0 || e.kind == "compensated" || e.kind == "cancelled")
    tint = tint[0] ? tint : yellow;
  std::string what = e.step.empty() ? e.kind : fmt::format("{} {}", e.step, e.kind);
  if (e.attempt > 1) what += fmt::format(" (attempt {})", e.attempt);
  std::string detail;
  if (!e.error_class.empty()) detail = e.error_class + ": ";
  detail += e.message;
  if (detail.empty() && !e.data_json.empty() && e.data_json.size() < 120) detail = e.data_json;
  std::cerr << fmt::format("{}{:>+9.3f}s{}  {}{:<28}{}  {}\n", dim, (e.time_ms - t0) / 1000.0,
                           reset, tint, what, reset, detail);
}

}  // namespace

int run(const RunArgs& args) {
  auto input = read_input(args);
  if (!input) return kExitUsage;
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
  auto loaded = load_into(engine, args);
  if (!loaded) return kExitError;
  auto id = engine.start(loaded->first, loaded->second, *input);
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
    std::cout << info->output.dump(2) << "\n";
  } else {
    std::cerr << fmt::format("{}: {}{}\n", to_string(info->status), info->error_class,
                             info->error_message.empty() ? "" : ": " + info->error_message);
  }
  return exit_code_for(info->status);
}

int start(const RunArgs& args) {
  auto input = read_input(args);
  if (!input) return kExitUsage;
  auto rt = open_engine(args.db, args.durability, args.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto loaded = load_into(engine, args);
  if (!loaded) return kExitError;
  auto id = engine.enqueue(loaded->first, loaded->second, *input);
  if (!id.ok()) {
    print_error(id.status().message());
    return id.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitError;
  }
  std::cout << id.value() << "\n";
  return kExitOk;
}

int resume(const DbArgs& args) {
  auto rt = open_engine(args.db, args.durability, args.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto taken = engine.resume();
  if (!taken.ok()) {
    print_error(taken.status().message());
    return kExitError;
  }
  engine.wait_idle();
  std::cerr << fmt::format("resumed {} instance{}\n", taken.value(), taken.value() == 1 ? "" : "s");
  return kExitOk;
}

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}
}  // namespace

int worker(const DbArgs& args, int poll_ms) {
  auto rt = open_engine(args.db, args.durability, args.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::cerr << fmt::format("worker on {} (polling every {} ms; Ctrl-C stops)\n",
                           database_path(args.db), poll_ms);
  while (!g_stop) {
    auto taken = engine.resume();
    if (!taken.ok()) print_error(taken.status().message());
    for (int waited = 0; waited < poll_ms && !g_stop; waited += 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::cerr << "worker stopping: waiting instances stay in the database\n";
  return kExitOk;
}

int ls(const DbArgs& args, const std::string& status, size_t limit) {
  std::optional<InstanceStatus> filter;
  if (!status.empty()) {
    filter = parse_status(status);
    if (!filter) {
      print_error(fmt::format("unknown status '{}'", status));
      return kExitUsage;
    }
  }
  StoreOptions options;
  auto store = open_sqlite_store(database_path(args.db), options);
  if (!store.ok()) {
    print_error(store.status().message());
    return kExitError;
  }
  auto list = store.value()->list_instances(filter, limit);
  if (!list.ok()) {
    print_error(list.status().message());
    return kExitError;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const InstanceRecord& r : list.value()) {
      out.push_back({{"id", r.id},
                     {"saga", r.saga},
                     {"status", to_string(r.status)},
                     {"program", r.program_hash},
                     {"created_ms", r.created_ms},
                     {"updated_ms", r.updated_ms},
                     {"error_class", r.error_class},
                     {"error_message", r.error_message}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<36}  {:<12}  {:<24}  {}\n", "ID", "STATUS", "SAGA", "ERROR");
  for (const InstanceRecord& r : list.value()) {
    std::cout << fmt::format("{:<36}  {:<12}  {:<24}  {}\n", r.id, to_string(r.status), r.saga,
                             r.error_class.empty() ? "" : r.error_class + ": " + r.error_message);
  }
  return kExitOk;
}

int show(const DbArgs& args, const std::string& id) {
  auto rt = open_engine(args.db, "normal", args.access);
  if (!rt) return kExitError;
  Engine& engine = *rt->engine;
  auto view = engine.inspect(id);
  if (!view.ok()) {
    print_error(view.status().message());
    return kExitError;
  }
  const nlohmann::json& v = view.value();
  if (args.json) {
    std::cout << v.dump(2) << "\n";
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
  std::cout << "input     " << v["input"].dump() << "\n";
  if (!v["output"].is_null()) std::cout << "output    " << v["output"].dump() << "\n";
  if (v.contains("waiting")) std::cout << "waiting   " << v["waiting"].dump() << "\n";
  if (v.contains("variables")) {
    std::cout << "\nvariables\n";
    for (const auto& [name, value] : v["variables"].items()) {
      std::string text = value.dump();
      if (text.size() > 100) text = text.substr(0, 97) + "...";
      std::cout << fmt::format("  {:<20} {}\n", name, text);
    }
  }
  if (v.contains("compensation_stack")) {
    std::cout << "\ncompensation stack (undone last to first)\n";
    for (const auto& c : v["compensation_stack"]) {
      std::cout << fmt::format("  {}{}\n", c["step"].get<std::string>(),
                               c["in_doubt"].get<bool>() ? "  (in doubt)" : "");
    }
  }
  for (const auto& d : v["dead_letters"]) {
    std::cout << fmt::format("\ndead letter: step {}: {}: {}\n", d["step"].get<std::string>(),
                             d["error_class"].get<std::string>(), d["message"].get<std::string>());
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
  std::cout << fmt::format("{}: {}\n", id, to_string(info->status));
  return kExitOk;
}

}  // namespace saga::cli
