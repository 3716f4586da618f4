// sagactl: the command-line front of Saga. This file only declares the
// command line (CLI11) and calls the command functions in commands.hpp;
// every behaviour lives in compiler/ and runtime/.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <string>

#include "sagactl/commands.hpp"
#include "sagactl/listen.hpp"
#include "sagactl/outbox_command.hpp"

int main(int argc, char** argv) {
  using namespace saga::cli;
  CLI::App app{"sagactl: compile, run and inspect durable sagas"};
  app.name("sagactl");
  app.set_version_flag("--version", std::string("sagactl ") + SAGA_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success, 1 error, 2 usage error, 3 saga compensated/failed/cancelled, "
      "4 saga stuck, 5 no such instance, 6 the instance's state does not allow it, "
      "7 a test file (sagactl test) or its saga has errors, "
      "8 a program the command needs is not installed (graph --format svg: Graphviz's dot).\n"
      "Database: --db, else $SAGA_DB, else ./sagas.db.");

  CompileArgs c;
  auto* compile_cmd =
      app.add_subcommand("compile", "Compile a .saga file to verified bytecode (.sagac)");
  compile_cmd->add_option("file", c.input, "The .saga source file")->required();
  compile_cmd->add_option("-o,--output", c.output, "Output path (default: the input with .sagac)");
  compile_cmd->add_option("--format", c.format, "Diagnostics format")
      ->check(CLI::IsMember({"text", "json"}));
  compile_cmd->add_flag("--no-source", c.no_source,
                        "Do not embed the source text (smaller file, no source lines in listings)");

  std::string input, format = "text", topic;
  auto* check_cmd = app.add_subcommand(
      "check", "Report errors and warnings of a .saga file without writing anything");
  check_cmd->add_option("file", input, "The .saga source file")->required();
  auto* check_format = check_cmd->add_option("--format", format, "Diagnostics format")
                           ->check(CLI::IsMember({"text", "json"}));
  bool obligations = false, obligations_json = false;
  auto* obligations_flag = check_cmd->add_flag(
      "--obligations", obligations,
      "List the calls participants must accept more than once with one idempotency key");
  obligations_flag->excludes(check_format);
  check_cmd->add_flag("--json", obligations_json, "With --obligations: print them as JSON")
      ->needs(obligations_flag);

  auto* disasm_cmd = app.add_subcommand(
      "disasm", "List the bytecode of a .sagac file (or of a .saga file, compiled in memory)");
  disasm_cmd->add_option("file", input, "A .sagac or .saga file")->required();

  auto* doc_cmd =
      app.add_subcommand("doc", "Print a generated reference: opcodes or stdlib (Markdown)");
  doc_cmd->add_option("topic", topic, "opcodes | stdlib")
      ->required()
      ->check(CLI::IsMember({"opcodes", "stdlib"}));

  // --allow-host and --allow-exec, for every command that runs sagas.
  auto add_access = [](CLI::App* cmd, Access& access) {
    cmd->add_option("--allow-host", access.allow_hosts,
                    "Only call these HTTP hosts (host:port, comma-separated or repeated; "
                    "default: any)")
        ->delimiter(',');
    cmd->add_flag("--allow-exec", access.allow_exec, "Let sagas run programs with the exec action");
    cmd->add_option("--max-active", access.max_active,
                    "Run at most N instances at once; the rest wait `pending`, in order (0: no "
                    "limit)")
        ->capture_default_str();
    cmd->add_option("--undo-attempts", access.undo_attempts,
                    "Attempts of an undo before the instance is stuck (its backoff doubles from "
                    "200 ms up to 60 s)")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000));
    cmd->add_flag("!--no-adaptive", access.adaptive,
                  "Fixed concurrency per service (its bulkhead) instead of a limit that follows "
                  "the service's latency");
    cmd->add_option("--service", access.service_urls,
                    "Bind a service to a url: NAME=http://host:port (repeatable); replaces the "
                    "program's url, or gives one to a service declared without")
        ->check(CLI::Validator(
            [](std::string& binding) -> std::string {
              auto eq = binding.find('=');
              if (eq == std::string::npos || eq == 0 ||
                  binding.compare(eq + 1, 7, "http://") != 0) {
                return "expected NAME=http://host:port, got '" + binding + "'";
              }
              return {};
            },
            "NAME=URL"));
  };

  RunArgs r;
  auto add_run_options = [&r, &add_access](CLI::App* cmd) {
    cmd->add_option("program", r.program, "A .saga (compiled in memory) or .sagac file")
        ->required();
    cmd->add_option("--saga", r.saga, "Which saga to run (default: the program's only saga)");
    auto* in = cmd->add_option("--input", r.input, "The input as a JSON object");
    auto* file = cmd->add_option("--input-file", r.input_file, "Read the input JSON from a file");
    in->excludes(file);
    cmd->add_option("--db", r.db, "The database (default: $SAGA_DB or ./sagas.db)");
    cmd->add_option("--durability", r.durability,
                    "full: fsync every commit; normal: survives a process crash")
        ->check(CLI::IsMember({"full", "normal"}));
    add_access(cmd, r.access);
  };
  auto* run_cmd = app.add_subcommand(
      "run", "Start one instance and run it to the end, showing each step; prints the output JSON");
  add_run_options(run_cmd);
  run_cmd->add_flag("-q,--quiet", r.quiet, "Do not show the steps, only the output");
  auto* start_cmd = app.add_subcommand(
      "start", "Record an instance without running it (a worker or resume runs it)");
  add_run_options(start_cmd);

  DbArgs d;
  auto add_db = [&d](CLI::App* cmd, bool json) {
    cmd->add_option("--db", d.db, "The database (default: $SAGA_DB or ./sagas.db)");
    if (json) cmd->add_flag("--json", d.json, "Print JSON for scripts");
  };
  auto* resume_cmd =
      app.add_subcommand("resume", "Run every unfinished instance to the end, then exit");
  add_db(resume_cmd, false);
  add_access(resume_cmd, d.access);
  resume_cmd->add_option("--durability", d.durability, "full or normal")
      ->check(CLI::IsMember({"full", "normal"}));
  WorkerArgs w;
  auto* worker_cmd = app.add_subcommand(
      "worker", "Keep running: resume unfinished instances and pick up new ones");
  add_db(worker_cmd, false);
  add_access(worker_cmd, d.access);
  worker_cmd->add_option("--durability", d.durability, "full or normal")
      ->check(CLI::IsMember({"full", "normal"}));
  worker_cmd
      ->add_option("--poll-ms", w.poll_ms,
                   "How often to look for new instances and cancellations (on PostgreSQL a "
                   "notification wakes the worker at once; this is the fallback)")
      ->check(CLI::Range(10, 60000));
  worker_cmd
      ->add_option("--lease", w.lease,
                   "How long a claim on an instance lasts unless renewed (renewed every third "
                   "of it): 30s by default, at least 1s; another worker takes over the "
                   "instances of one that stopped renewing once it runs out")
      ->capture_default_str();
  worker_cmd->add_flag("!--poll-only", w.wake_on_notify,
                       "PostgreSQL: poll only, do not LISTEN for notifications of new instances "
                       "and messages (e.g. behind a pooler in transaction mode)");
  ListenArgs listen;
  auto* listen_opt = worker_cmd->add_option(
      "--listen", listen.listen,
      "Serve health, the JSON API and the web view on HOST:PORT (PORT or :PORT: 127.0.0.1; "
      "port 0: any free one, printed)");
  worker_cmd
      ->add_option("--admin-token-file", listen.token_file,
                   "Actions over HTTP need the token on this file's first line (Authorization: "
                   "Bearer TOKEN); required to listen beyond loopback")
      ->needs(listen_opt);
  worker_cmd
      ->add_flag("--public-read", listen.public_reads,
                 "With a token: reads from other machines need none (actions still do)")
      ->needs(listen_opt);
  OutboxArgs outbox;
  add_outbox_options(worker_cmd, outbox);
  std::string outbox_which = "all";
  size_t outbox_limit = 100;
  auto* outbox_cmd = app.add_subcommand("outbox", "Events out: the transactional outbox");
  outbox_cmd->require_subcommand(1);
  auto* outbox_ls_cmd = outbox_cmd->add_subcommand(
      "ls", "List outbox events (oldest first) with their delivery state");
  add_db(outbox_ls_cmd, true);
  outbox_ls_cmd->add_option("--state", outbox_which, "all, pending, delivered or dead")
      ->check(CLI::IsMember({"all", "pending", "delivered", "dead"}));
  outbox_ls_cmd->add_option("--limit", outbox_limit, "At most this many");
  worker_cmd->add_option("--program", listen.programs,
                         "Serve the triggers ('on TYPE start SAGA(...)') of this .saga or .sagac "
                         "file: POST /events starts their sagas (repeatable)");
  std::string id;
  LsArgs ls_args;
  auto* ls_cmd = app.add_subcommand("ls", "List instances, newest first");
  add_db(ls_cmd, true);
  ls_cmd->add_option("--status", ls_args.status,
                     "Only this status: pending, running, compensating, completed, compensated, "
                     "failed, stuck, cancelled, paused");
  ls_cmd->add_option("--saga", ls_args.saga, "Only instances of this saga");
  ls_cmd->add_option("--stalled", ls_args.stalled,
                     "Only unfinished instances without progress for this long (30s, 10m, 2h), "
                     "the longest stalled first");
  ls_cmd->add_option("--limit", ls_args.limit, "At most this many");
  size_t dlq_limit = 100;
  auto* dlq_cmd = app.add_subcommand("dlq", "Dead letters: compensations that gave up");
  dlq_cmd->require_subcommand(1);
  auto* dlq_ls_cmd = dlq_cmd->add_subcommand(
      "ls",
      "List the dead letters of every instance, newest first (saga, step, error, attempts, age)");
  add_db(dlq_ls_cmd, true);
  dlq_ls_cmd->add_option("--limit", dlq_limit, "At most this many");
  size_t events_limit = 100;
  bool events_unmatched = false;
  auto* events_cmd =
      app.add_subcommand("events", "Incoming events (CloudEvents) and what they did");
  events_cmd->require_subcommand(1);
  auto* events_ls_cmd = events_cmd->add_subcommand(
      "ls", "List the events received, newest first (source, id, type, matched, started)");
  add_db(events_ls_cmd, true);
  events_ls_cmd->add_option("--limit", events_limit, "At most this many");
  events_ls_cmd->add_flag("--unmatched", events_unmatched, "Only the events no trigger matched");
  auto* show_cmd = app.add_subcommand(
      "show", "Show an instance: status, variables, compensation stack, history");
  add_db(show_cmd, true);
  show_cmd->add_option("id", id, "Instance id")->required();
  GraphArgs g;
  bool show_as_graph = false;
  auto add_graph_format = [&g](CLI::App* cmd) {
    cmd->add_option("--format", g.format,
                    "dot (Graphviz, the default), mermaid, or svg (runs Graphviz's dot)")
        ->check(CLI::IsMember({"dot", "mermaid", "svg"}));
    cmd->add_option("-o,--output", g.output, "Write the picture to this file (default: stdout)");
  };
  auto* graph_flag = show_cmd->add_flag(
      "--graph", show_as_graph,
      "Draw the instance's saga with the path it took, where it is and what was compensated");
  graph_flag->excludes("--json");
  add_graph_format(show_cmd);
  auto* graph_cmd = app.add_subcommand(
      "graph",
      "Draw a saga: steps, branches, blocks and its compensation path (dot, mermaid, svg)");
  graph_cmd->add_option("file", g.file, "A .saga (compiled in memory) or .sagac file")->required();
  graph_cmd->add_option("--saga", g.saga, "Only this saga (default: every saga of the program)");
  add_graph_format(graph_cmd);
  auto* cancel_cmd =
      app.add_subcommand("cancel", "Cancel an instance: compensate its completed steps");
  add_db(cancel_cmd, true);
  add_access(cancel_cmd, d.access);
  cancel_cmd->add_option("id", id, "Instance id")->required();

  // The operator commands (saga/commands.def), one subcommand per row but
  // cancel, which has its own above.
  OperatorArgs op;
  std::vector<std::pair<saga::Command, CLI::App*>> operator_cmds;
  for (const saga::CommandInfo& info : saga::kCommands) {
    if (info.command == saga::Command::cancel) continue;
    auto* cmd = app.add_subcommand(std::string(info.name), std::string(info.doc));
    cmd->add_option("--db", op.db.db, "The database (default: $SAGA_DB or ./sagas.db)");
    add_access(cmd, op.db.access);
    cmd->add_option("id", op.id, "Instance id")->required();
    cmd->add_flag("--json", op.db.json, "Print the outcome as JSON");
    cmd->add_flag("--notify", op.db.access.notify_operators,
                  "When the instance runs on here and becomes paused or stuck again, write its "
                  "notification event (delivered by a worker started with --notify)");
    auto* note = cmd->add_option("--note", op.note, "Why (kept in the history event)");
    if (info.command == saga::Command::skip) {
      note->required();
      cmd->add_option("--result", op.result, "A forward step's result, as JSON (default null)")
          ->each([&op](const std::string&) { op.result_given = true; });
    }
    operator_cmds.emplace_back(info.command, cmd);
  }

  SignalArgs sig;
  auto* signal_cmd = app.add_subcommand(
      "signal",
      "Send a signal to an instance (its `await signal NAME` takes it; one not reached yet keeps "
      "it)");
  signal_cmd->add_option("--db", sig.db.db, "The database (default: $SAGA_DB or ./sagas.db)");
  add_access(signal_cmd, sig.db.access);
  signal_cmd->add_option("id", sig.id, "Instance id")->required();
  signal_cmd->add_option("name", sig.name, "The signal's name, as the saga's await writes it")
      ->required();
  signal_cmd->add_option("--data", sig.data, "The signal's data, as JSON (default null)")
      ->each([&sig](const std::string&) { sig.data_given = true; });
  signal_cmd->add_flag("--json", sig.db.json, "Print the outcome as JSON");

  ExploreArgs x;
  auto* explore_cmd = app.add_subcommand(
      "explore",
      "Run every failure path of a saga (each attempt's outcome, cancel, deadline, a crash) "
      "with mocked actions and virtual time, and check its compensation");
  explore_cmd->add_option("program", x.run.program, "A .saga (compiled in memory) or .sagac file")
      ->required();
  explore_cmd->add_option("--saga", x.run.saga, "Which saga (default: the program's only saga)");
  auto* x_in = explore_cmd->add_option(
      "--input", x.run.input, "The input as a JSON object (default: a value per parameter)");
  auto* x_file =
      explore_cmd->add_option("--input-file", x.run.input_file, "Read the input JSON from a file");
  x_in->excludes(x_file);
  explore_cmd->add_option("--faults", x.max_faults, "Faults per path: the bound (2)")
      ->check(CLI::Range(0, 8));
  explore_cmd->add_option("--crashes", x.max_crashes, "Of those, crashes (1)")
      ->check(CLI::Range(0, 8));
  explore_cmd
      ->add_option("--undo-attempts", x.undo_attempts,
                   "Attempts of an undo before the instance is stuck (2)")
      ->check(CLI::Range(1, 20));
  explore_cmd->add_option("--max-paths", x.max_paths, "Stop after this many paths (1000000)")
      ->check(CLI::PositiveNumber);
  explore_cmd->add_flag("--json", x.json, "Print the report as JSON");

  TestArgs t;
  auto* test_cmd = app.add_subcommand(
      "test",
      "Run the scenario tests of .saga.test files: mocked actions, virtual time (docs/testing.md)");
  test_cmd->add_option("file", t.files, "The .saga.test files (FILE.saga.test tests FILE.saga)")
      ->required();
  test_cmd->add_option("--filter", t.filter,
                       "Only the tests whose name contains this, or matches it with * and ?");
  test_cmd->add_option("--junit", t.junit, "Also write a JUnit XML report to this file");

  MigrateArgs m;
  auto* diff_cmd = app.add_subcommand(
      "diff", "For each place an instance of OLD can wait, whether it can continue on NEW");
  diff_cmd->add_option("old", m.from, "A .saga/.sagac file or a program hash in the database")
      ->required();
  diff_cmd->add_option("new", m.to, "A .saga/.sagac file or a program hash in the database")
      ->required();
  diff_cmd->add_option("--db", m.db, "The database, for hashes (default: $SAGA_DB or ./sagas.db)");
  diff_cmd->add_flag("--json", m.json, "Print JSON for scripts");
  auto* migrate_cmd = app.add_subcommand(
      "migrate", "Move the unfinished instances of OLD that can safely continue on NEW");
  migrate_cmd->add_option("--from", m.from, "OLD: a .saga/.sagac file or a program hash")
      ->required();
  migrate_cmd->add_option("--to", m.to, "NEW: a .saga/.sagac file or a program hash")->required();
  migrate_cmd->add_option("--db", m.db, "The database (default: $SAGA_DB or ./sagas.db)");
  migrate_cmd->add_flag("--dry-run", m.dry_run, "Say what would move; write nothing");

  // CLI11 takes an unknown first word for a missing subcommand ("A
  // subcommand is required"); name it instead.
  if (argc > 1 && argv[1][0] != '-' &&
      app.get_subcommands([&](CLI::App* sub) { return sub->check_name(argv[1]); }).empty()) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    print_error(fmt::format("unknown command '{}' (commands: {}; sagactl --help)", argv[1], names));
    return kExitUsage;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are successful exits; anything else is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (*compile_cmd) return saga::cli::compile(c);
  if (*check_cmd && obligations) return check_obligations(input, obligations_json);
  if (*check_cmd) return check(input, format);
  if (*disasm_cmd) return disasm(input);
  if (*doc_cmd) return doc(topic);
  if (*run_cmd) return run(r);
  if (*start_cmd) return start(r);
  if (*resume_cmd) return resume(d);
  if (*worker_cmd) return worker(d, w, listen, outbox);
  if (*outbox_ls_cmd) return outbox_ls(d, outbox_which, outbox_limit);
  if (*ls_cmd) return ls(d, ls_args);
  if (*dlq_ls_cmd) return dlq_ls(d, dlq_limit);
  if (*events_ls_cmd) return events_ls(d, events_limit, events_unmatched);
  if (*show_cmd && show_as_graph) return show_graph(d, id, g);
  if (*show_cmd && (!g.output.empty() || g.format != "dot")) {
    print_error("show: --format and -o go with --graph");
    return kExitUsage;
  }
  if (*show_cmd) return show(d, id);
  if (*graph_cmd) return saga::cli::graph(g);
  if (*cancel_cmd) return cancel(d, id);
  for (auto& [command, cmd] : operator_cmds) {
    if (*cmd) return operator_command(command, op);
  }
  if (*signal_cmd) return saga::cli::signal(sig);
  if (*explore_cmd) return explore(x);
  if (*test_cmd) return test(t);
  if (*diff_cmd) return diff(m);
  if (*migrate_cmd) return migrate(m);
  return kExitUsage;
}
