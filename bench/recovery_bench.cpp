// Recovery benchmark: how fast a worker killed with a large backlog in
// flight comes back. A first child process (this program again, `--role
// setup`) starts --n instances of a 3-step saga on a fresh database and
// holds every one in its first step: that step's action is asynchronous and
// never answers, like a participant slow to reply when the worker dies, so
// each instance has an attempt out (in doubt, README "Delivery contract").
// Once every attempt has been made, and so its step_started transition is
// durable, the parent kills the child with SIGKILL. A second child (`--role
// restart`) opens an engine on the same file and calls resume(); it measures
// the time from Engine::open to every instance moving again (its first
// step's action called again) and to every instance completed, and its RSS.
// Each run uses a fresh database in a temporary directory; the figures are
// the median of --runs runs. `--help` lists the flags.
//
// Why an action that never answers rather than a `sleep`: a sleeping
// instance resumes into a timer, so "moving again" would wait for the sleep;
// an attempt out at the crash is the case the in-doubt rule is about, and
// what a worker with a slow participant has in flight.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench/allocator.hpp"
#include "bench/process_stats.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int n = 100000;
  int runs = 3;
  std::string durability = "normal";  // Of both engines; normal survives SIGKILL.
  unsigned threads = 2;               // Engine threads of both engines.
  std::string role;                   // Hidden: "setup" or "restart", for the children.
  std::string db;                     // Hidden: the children's database.
};

// The saga every instance runs. `hold` is the step in flight at the crash;
// the two after it run once the restarted worker gets its answer, so "all
// finished" includes two more commits per instance.
constexpr const char* kSaga = R"(
service orders { }
service payment { }
saga recover(order: string) {
  step hold    { do orders.hold(order: order) -> h     undo orders.release(id: h.id) }
  step charge  { do payment.charge(order: order) -> p  undo payment.refund(id: p.id) }
  step confirm { do orders.confirm(id: h.id)           undo orders.unconfirm(id: h.id) }
  output { hold: h.id, payment: p.id }
}
)";

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

saga::EngineOptions engine_options(const Options& o) {
  saga::EngineOptions options;
  options.database = o.db;
  options.durability = o.durability == "full" ? saga::Durability::kFull : saga::Durability::kNormal;
  options.threads = o.threads;
  return options;
}

[[noreturn]] void die(const std::string& what) {
  fmt::print(stderr, "recovery_bench: {}\n", what);
  std::exit(1);
}

// Waits until `count` reaches `target`, polling (the children have nothing
// else to do meanwhile). Gives up after ten minutes, naming what it waited
// for, so that a run that stops moving fails instead of hanging.
void wait_for(const std::atomic<int>& count, int target, const char* what) {
  const auto give_up = Clock::now() + std::chrono::minutes(10);
  while (count.load(std::memory_order_acquire) < target) {
    if (Clock::now() > give_up) {
      die(fmt::format("gave up after 10 minutes: {} of {} {}", count.load(), target, what));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// The first child: starts o.n instances and leaves each with its first
// attempt out, then prints "ready SECONDS" and waits to be killed.
int setup(const Options& o) {
  // Killed with the parent, should the parent die before it kills this one.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::atomic<int> held{0};
  auto engine = saga::Engine::open(engine_options(o));
  if (!engine.ok()) die(engine.status().message());
  auto image = saga::compiler::compile_to_image("recover.saga", kSaga);
  if (!image.ok()) die(image.status().message());
  auto hash = engine.value()->load_program(image.value());
  if (!hash.ok()) die(hash.status().message());
  // Called once the transition that starts the attempt is durable; the
  // completion is dropped, so the attempt stays out until the process dies.
  engine.value()->register_async_action(
      "orders.hold", [&held](const saga::ActionCall&, saga::Completion) { ++held; });
  auto t0 = Clock::now();
  for (int i = 0; i < o.n; ++i) {
    auto id = engine.value()->start_async(hash.value(), "recover",
                                          json{{"order", fmt::format("o-{}", i)}}, nullptr);
    if (!id.ok()) die(id.status().message());
    // At most about 5,000 starts queued ahead of the store, as a host
    // taking requests would have.
    if (i % 1000 == 999) wait_for(held, i - 5000, "attempts made");
  }
  wait_for(held, o.n, "attempts made");
  fmt::print("ready {:.3f}\n", seconds_since(t0));
  std::fflush(stdout);
  for (;;) pause();
}

// The second child: resumes everything and prints "restart" and its figures.
int restart(const Options& o) {
  std::atomic<int> moving{0}, finished{0}, resumed_events{0};
  std::atomic<int> not_first{0};  // Calls of `hold` that are not attempt 1: none expected.
  saga::EngineOptions options = engine_options(o);
  options.on_event = [&](const std::string&, const saga::HistoryEvent& e) {
    if (e.kind == "completed") finished.fetch_add(1, std::memory_order_release);
    if (e.kind == "resumed") ++resumed_events;
  };
  auto t0 = Clock::now();
  auto engine = saga::Engine::open(std::move(options));
  if (!engine.ok()) die(engine.status().message());
  const double open_s = seconds_since(t0);
  // The participant answers now, at once.
  engine.value()->register_async_action("orders.hold",
                                        [&](const saga::ActionCall& call, saga::Completion done) {
                                          if (call.attempt != 1) ++not_first;
                                          moving.fetch_add(1, std::memory_order_release);
                                          done.succeed(json{{"id", call.idempotency_key}});
                                        });
  for (const char* name : {"payment.charge", "orders.confirm"}) {
    engine.value()->register_action(name, [](const saga::ActionCall& call) {
      return json{{"id", call.idempotency_key}};
    });
  }
  auto resumed = engine.value()->resume();
  if (!resumed.ok()) die(resumed.status().message());
  const double resume_s = seconds_since(t0);
  wait_for(moving, o.n, "instances moving again");
  const double moving_s = seconds_since(t0);
  const double moving_cpu = saga::bench::cpu_seconds();
  const double moving_rss = saga::bench::current_rss_mb();
  wait_for(finished, o.n, "instances completed");
  const double finished_s = seconds_since(t0);
  const double finished_cpu = saga::bench::cpu_seconds();
  // Every instance must have come back through resume (its `resumed` event
  // rides with its next transition), and none may be left unfinished.
  auto left = engine.value()->store().list_unfinished();
  if (!left.ok()) die(left.status().message());
  if (resumed_events.load() != o.n || !left.value().empty()) {
    die(fmt::format("{} resumed events, {} instances left unfinished", resumed_events.load(),
                    left.value().size()));
  }
  fmt::print("restart {} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f} {:.3f} {:.1f} {:.1f} {}\n",
             resumed.value(), open_s, resume_s, moving_s, finished_s, moving_cpu, finished_cpu,
             moving_rss, saga::bench::peak_rss_mb(), not_first.load());
  std::fflush(stdout);
  return 0;
}

// Runs this program again with `role` on `db`, its stdout a pipe whose read
// end is returned in *out. No shell: the arguments go as they are.
pid_t spawn_child(const Options& o, const char* role, const std::string& db, int* out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) die(fmt::format("pipe: {}", std::strerror(errno)));
  std::vector<std::string> args = {"recovery_bench",
                                   "--role",
                                   role,
                                   "--db",
                                   db,
                                   "--n",
                                   std::to_string(o.n),
                                   "--durability",
                                   o.durability,
                                   "--threads",
                                   std::to_string(o.threads)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::fflush(stdout);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) die(fmt::format("cannot start the {} process: {}", role, std::strerror(rc)));
  *out = fds[0];
  return pid;
}

// One line from a child's stdout (without the newline); empty at EOF.
std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

struct Sample {
  double setup_s = 0, open_s = 0, resume_s = 0, moving_s = 0, finished_s = 0;
  double moving_cpu_s = 0, finished_cpu_s = 0;  // CPU of the restarted process, all threads.
  double moving_rss_mb = 0, peak_rss_mb = 0;
};

Sample run_once(const Options& o, int run) {
  fs::path dir = fs::temp_directory_path() / fmt::format("saga-recovery-{}-{}", getpid(), run);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = (dir / "recovery.db").string();
  Sample s;

  int fd = -1;
  pid_t pid = spawn_child(o, "setup", db, &fd);
  std::istringstream ready(read_line(fd));
  std::string word;
  if (!(ready >> word >> s.setup_s) || word != "ready") die("the setup process failed");
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(fd);

  pid = spawn_child(o, "restart", db, &fd);
  std::istringstream figures(read_line(fd));
  long taken = 0, not_first = 0;
  if (!(figures >> word >> taken >> s.open_s >> s.resume_s >> s.moving_s >> s.finished_s >>
        s.moving_cpu_s >> s.finished_cpu_s >> s.moving_rss_mb >> s.peak_rss_mb >> not_first) ||
      word != "restart") {
    die("the restarted process failed");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(fd);
  if (taken != o.n) die(fmt::format("resume() took up {} instances, not {}", taken, o.n));
  if (not_first != 0) die(fmt::format("{} resumed attempts were not attempt 1", not_first));
  fs::remove_all(dir);
  return s;
}

using saga::bench::median;

// "1.23 s (1.10-1.40)": the median and the spread of one figure.
std::string spread(const std::vector<Sample>& samples, double Sample::*field, int decimals) {
  std::vector<double> v;
  for (const Sample& s : samples) v.push_back(s.*field);
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return fmt::format("{:.{}f} ({:.{}f}-{:.{}f})", median(v), decimals, *lo, decimals, *hi,
                     decimals);
}

// --role and --db are not listed: they are how this program starts its two
// children, not something to run by hand.
void usage(std::FILE* to) {
  fmt::print(
      to,
      "usage: recovery_bench [flags]\n"
      "  --n N               instances in flight when the worker is killed (100000)\n"
      "  --runs N            runs, each on a fresh database; medians are printed (3)\n"
      "  --durability D      full or normal, of the killed and the restarted engine (normal)\n"
      "  --threads N         engine threads (2)\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage(stdout);
      return 0;
    }
  }
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k != "--n" && k != "--runs" && k != "--durability" && k != "--threads" && k != "--role" &&
        k != "--db") {
      fmt::print(stderr, "recovery_bench: unknown option {}\n", k);
      usage(stderr);
      return 2;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "recovery_bench: {} needs a value\n", k);
      return 2;
    }
    std::string v = argv[i + 1];
    try {
      if (k == "--n") o.n = std::stoi(v);
      if (k == "--runs") o.runs = std::stoi(v);
      if (k == "--threads") o.threads = static_cast<unsigned>(std::stoi(v));
    } catch (const std::exception&) {
      fmt::print(stderr, "recovery_bench: {} needs a number, got '{}'\n", k, v);
      return 2;
    }
    if (k == "--durability") o.durability = v;
    if (k == "--role") o.role = v;
    if (k == "--db") o.db = v;
  }
  if (o.durability != "full" && o.durability != "normal") {
    fmt::print(stderr, "recovery_bench: --durability is full or normal, not '{}'\n", o.durability);
    return 2;
  }
  if (o.n < 1 || o.runs < 1 || o.threads < 1) {
    fmt::print(stderr, "recovery_bench: --n, --runs and --threads must be at least 1\n");
    return 2;
  }
  if (o.role == "setup") return setup(o);
  if (o.role == "restart") return restart(o);
  if (!o.role.empty()) {
    fmt::print(stderr, "recovery_bench: unknown role {}\n", o.role);
    return 2;
  }

  fmt::print(
      "recovery_bench: {} instances of a 3-step saga, each with its first attempt out when the "
      "worker is killed (SIGKILL); durability {}, {} engine threads, median of {} runs "
      "(min-max); {}\n",
      o.n, o.durability, o.threads, o.runs, saga::bench::allocator_name());
  std::vector<Sample> samples;
  for (int r = 0; r < o.runs; ++r) {
    Sample s = run_once(o, r);
    fmt::print(
        "  run {}: set up in {:.2f} s; restart: open {:.3f} s, resume() returned {:.3f} s, "
        "moving {:.3f} s (CPU {:.2f} s), finished {:.3f} s (CPU {:.2f} s), RSS {:.0f} MB (peak "
        "{:.0f} MB)\n",
        r + 1, s.setup_s, s.open_s, s.resume_s, s.moving_s, s.moving_cpu_s, s.finished_s,
        s.finished_cpu_s, s.moving_rss_mb, s.peak_rss_mb);
    std::fflush(stdout);
    samples.push_back(s);
  }
  fmt::print(
      "recovery: {} instances in flight: moving again in {} s, all finished in {} s (target: "
      "moving < 5 s; DBOS took 4.97 s for 1,000)\n",
      o.n, spread(samples, &Sample::moving_s, 3), spread(samples, &Sample::finished_s, 3));
  fmt::print(
      "restarted process: open {} s, resume() returned {} s; RSS when all moving {} MB, peak {} "
      "MB\n",
      spread(samples, &Sample::open_s, 3), spread(samples, &Sample::resume_s, 2),
      spread(samples, &Sample::moving_rss_mb, 0), spread(samples, &Sample::peak_rss_mb, 0));
  return 0;
}
