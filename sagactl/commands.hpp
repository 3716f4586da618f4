// The commands of sagactl, one function each, and the small helpers they
// share. main.cpp only declares the command line and calls these.
//
// Exit codes (README.md, "Exit codes"):
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "runtime/bytecode/program.hpp"
#include "saga/engine.hpp"
#include "saga/http.hpp"
#include "saga/store.hpp"

namespace saga {
class Metrics;
}

namespace saga::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // Bad input, unreadable file, store error.
inline constexpr int kExitUsage = 2;  // Unknown command/option, missing argument.
inline constexpr int kExitCompensated =
    3;                                // The saga did not complete (compensated, failed, cancelled).
inline constexpr int kExitStuck = 4;  // A compensation gave up: the instance needs an operator.
inline constexpr int kExitNotFound = 5;  // No such instance (show, cancel).
// The instance is in a state the command cannot act on (cancel of a finished
// or stuck instance); nothing was changed.
inline constexpr int kExitWrongState = 6;
// `sagactl test`: a test file, or the saga it tests, has errors (printed):
// its tests did not run.
inline constexpr int kExitTestFile = 7;
// A program the command runs is not installed: `graph --format svg` (and
// `show --graph --format svg`) without Graphviz's dot. Nothing was written.
inline constexpr int kExitMissingProgram = 8;

// JSON text for printing: indented by `indent` (-1: one line), with any
// string that is not UTF-8 written with U+FFFD instead of aborting (what
// nlohmann::json does by default).
inline std::string json_text(const nlohmann::json& j, int indent = 2) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Prints "sagactl: error: MESSAGE" to stderr (in colour on a terminal).
void print_error(const std::string& message);
bool stderr_is_terminal();

// The database from --db, else $SAGA_DB, else ./sagas.db.
std::string database_path(const std::string& flag);

struct CompileArgs {
  std::string input, output, format = "text";
  bool no_source = false;
};
int compile(const CompileArgs& args);
int check(const std::string& input, const std::string& format);
// check --obligations [--json]: the diagnostics on stderr, then the calls
// participants must accept more than once with one key (exit 1 on errors).
int check_obligations(const std::string& input, bool json);
int disasm(const std::string& input);
int doc(const std::string& topic);

// What a run may reach beyond its declared services: HTTP hosts (empty =
// any) and the exec action.
struct Access {
  std::vector<std::string> allow_hosts;
  bool allow_exec = false;
  std::vector<std::string> service_urls;  // "name=http://host:port" (--service).
  // How an engine of this process takes load (README, "Under overload").
  size_t max_active = EngineOptions{}.max_active;  // --max-active; 0: no limit.
  bool adaptive = true;                            // --no-adaptive: bulkheads only.
  // Take up stuck and paused instances when an operator's command arrives
  // for them (EngineOptions::serve_inbox): worker and resume.
  bool serve_inbox = false;
  // --undo-attempts: attempts of an undo before the instance is stuck.
  uint32_t undo_attempts = CompensationPolicy{}.attempts;
  // worker --lease (EngineOptions::lease).
  std::chrono::milliseconds lease = EngineOptions{}.lease;
  // worker: woken by PostgreSQL notifications (StoreOptions::notify; off
  // with --poll-only), and how often the inbox is looked at anyway then.
  bool wake_on_notify = true;
  std::chrono::milliseconds notified_watch = EngineOptions{}.notified_inbox_watch;
  // Write an outbox event when an instance becomes paused or stuck
  // (EngineOptions::notify_operators): worker --notify URL.
  bool notify_operators = false;
};

struct RunArgs {
  std::string program;  // .saga or .sagac
  std::string saga;     // Empty: the program's only saga.
  std::string input;    // JSON text.
  std::string input_file;
  std::string db;
  std::string durability = "full";
  bool quiet = false;
  Access access;
};
// What `run`, `start` and `explore` need before anything runs: the program,
// the saga to run and the input, each checked. `exit` is kExitOk, or the
// exit code of what was wrong (already printed).
struct Prepared {
  int exit = kExitOk;
  bytecode::Program program;
  std::string saga;
  nlohmann::json input;
};
// Reads the program, chooses the saga (the only one, or --saga) and reads
// --input or --input-file ({} when neither is given).
Prepared prepare_run(const RunArgs& args);

int run(const RunArgs& args);
int start(const RunArgs& args);

// The store of the database, opened for reading only: a reading command
// never creates, migrates or locks the database (docs/store.md). Null (the
// error printed) when it cannot be opened.
std::unique_ptr<Store> open_reader(const std::string& db);

struct DbArgs {
  std::string db;
  std::string durability = "full";
  bool json = false;
  Access access;
};
int resume(const DbArgs& args);
struct ListenArgs;
// `sagactl worker`'s own options.
struct WorkerArgs {
  int poll_ms = 500;           // --poll-ms
  std::string lease = "30s";   // --lease DURATION
  bool wake_on_notify = true;  // !--poll-only
};
struct OutboxArgs;
int worker(const DbArgs& args, const WorkerArgs& worker_args, const ListenArgs& listen,
           const OutboxArgs& outbox);
struct LsArgs {
  std::string status;   // Empty: any.
  std::string saga;     // Empty: any.
  std::string stalled;  // A duration ("10m"): unfinished instances with no progress for that long.
  size_t limit = 100;
};
int ls(const DbArgs& args, const LsArgs& ls_args);
// `sagactl events ls`: the incoming events recorded, newest first
// (events_commands.cpp).
int events_ls(const DbArgs& args, size_t limit, bool unmatched);
// Loads each .saga or .sagac file of `sagactl worker --program` and serves
// its triggers; false (the error printed) when one cannot be, or has none.
bool serve_programs(Engine& engine, const std::vector<std::string>& files);
// `sagactl dlq ls`: the dead letters of every instance, newest first.
int dlq_ls(const DbArgs& args, size_t limit);
// "1h 5m", "3m 20s", "12s": a duration in milliseconds as an age, for people.
std::string age_text(int64_t ms);
// Now, in milliseconds since the Unix epoch.
int64_t now_ms();
// "500ms", "30s", "10m", "2h", "1d" -> milliseconds; nullopt otherwise.
std::optional<int64_t> parse_duration_ms(std::string_view text);
int show(const DbArgs& args, const std::string& id);
int cancel(const DbArgs& args, const std::string& id);

// `sagactl graph FILE [--saga NAME] [--format dot|mermaid|svg] [-o FILE]`
// and `sagactl show ID --graph` (graph_command.cpp, docs/graph.md).
struct GraphArgs {
  std::string file;  // .saga or .sagac (graph only).
  std::string saga;  // Empty: every saga of the program.
  std::string format = "dot";
  std::string output;  // Empty: stdout.
};
int graph(const GraphArgs& args);
int show_graph(const DbArgs& db, const std::string& id, const GraphArgs& args);

// An engine with the HTTP client that performs its service calls and its
// http.* actions. The client is shut down before the engine is destroyed
// (saga/http.hpp says why).
struct Runtime {
  std::shared_ptr<HttpClient> http;
  std::shared_ptr<Metrics> metrics;  // Set for a worker that listens (its /metrics).
  std::unique_ptr<Engine> engine;
  ~Runtime();
};
// Null (the error printed) when the engine cannot be opened. `with_metrics`:
// the engine reports to a new Runtime::metrics; `max_claim`: StoreOptions::max_claim.
std::unique_ptr<Runtime> open_engine(
    const std::string& db, const std::string& durability, const Access& access,
    std::function<void(const std::string&, const HistoryEvent&)> on_event = {},
    bool with_metrics = false, size_t max_claim = 0);

// sagactl pause, unpause, retry, skip, compensate (operator_commands.cpp).
struct OperatorArgs {
  DbArgs db;
  std::string id;
  std::string note;
  std::string result;  // skip: JSON text.
  bool result_given = false;
};
int operator_command(Command command, const OperatorArgs& args);
// Whether message `message_id` is consumed (or the instance is gone) within
// `within`, looking every few milliseconds (operator_commands.cpp).
bool consumed_within(Store& store, const std::string& id, const std::string& message_id,
                     std::chrono::milliseconds within);
// A NAME=http://... option value (--service, --sink) split at its '=';
// nullopt, with the error printed ("`flag` wants `shape`, not '...'"), when
// the name is empty or the URL is not http:// (run_commands.cpp).
std::optional<std::pair<std::string, std::string>> url_binding(const std::string& binding,
                                                               const char* flag,
                                                               const char* shape);
// The exit code of a refused post to an inbox: 5 kNotFound, 6
// kFailedPrecondition, 2 kInvalidArgument, else 1 (operator_commands.cpp).
int exit_for(const Status& s);

// sagactl signal ID NAME [--data JSON] [--json] (signal_command.cpp).
struct SignalArgs {
  DbArgs db;
  std::string id;
  std::string name;
  std::string data;  // JSON text; empty: null.
  bool data_given = false;
};
int signal(const SignalArgs& args);

struct ExploreArgs {
  RunArgs run;  // program, --saga, --input/--input-file (default: a value per parameter).
  uint32_t max_faults = 2;
  uint32_t max_crashes = 1;
  uint32_t undo_attempts = 2;
  uint64_t max_paths = 1'000'000;
  bool json = false;
};
int explore(const ExploreArgs& args);

struct TestArgs {
  std::vector<std::string> files;  // .saga.test files.
  std::string filter;              // Only the tests whose name matches (test_command.cpp).
  std::string junit;               // Also write a JUnit XML report here.
};
int test(const TestArgs& args);

// `sagactl diff OLD NEW` and `sagactl migrate --from OLD --to NEW`: each of
// OLD and NEW a .saga/.sagac file or the hash of a program in the database.
struct MigrateArgs {
  std::string from, to;
  std::string db;
  bool json = false;     // diff
  bool dry_run = false;  // migrate
};
int diff(const MigrateArgs& args);
int migrate(const MigrateArgs& args);

}  // namespace saga::cli
