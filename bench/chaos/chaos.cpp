// bench/chaos: the chaos run. Thousands of mixed sagas (chaos.saga: orders
// in three steps, fan-outs with a parallel foreach and two branches, timed
// sagas with a durable sleep under a deadline; some refused, some cancelled)
// run in a real `sagactl worker` over HTTP against three real `participant`
// processes on 127.0.0.1 (ephemeral ports) that answer with random latency
// and failures: slow answers past the timeout, 503 before any effect, 4xx
// refusals, effects whose reply is lost, and errors answered to a repeated
// idempotency key. Meanwhile the worker is SIGKILLed at random instants
// and started again, paused with SIGSTOP/SIGCONT, a participant is paused
// or killed and restarted, and the store's disk fills up for a while (a
// small tmpfs; see DiskFull). At the end `sagactl resume` finishes what is
// left, and check.cpp checks, from the participants' own databases and the
// store, that nothing was lost, applied twice or left undone (check.hpp).
//
// Every instant and failure comes from one seed (printed; --seed replays
// the schedule, though not the exact interleaving). The program waits on
// its children's exits and on due times, never on a sleep that hopes for
// something to have happened; it gives up with a failure after
// --time-limit. Not run by CI; a short version is the ctest chaos_smoke.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/chaos/check.hpp"
#include "bench/chaos/workload.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "samples/participants/participant_process.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
using saga::samples::ChildProcess;
using saga::samples::ParticipantProcess;

const char* const kRoles[] = {"inventory", "payment", "shipping"};

struct Options {
  int sagas = 10'000;
  int kills = 1'000;
  uint64_t seed = 0;
  int time_limit_s = 3'600;
  int window = 100;  // At most this many unfinished instances when enqueueing more.
  int kill_min_ms = 20, kill_max_ms = 500;
  int pauses = -1, participant_pauses = -1, participant_restarts = -1, disk_full = -1;
  std::string disk_mode = "tmpfs";
  std::string dir;
  bool keep = false;
};

void usage() {
  std::printf(
      "usage: chaos [flags]: mixed sagas in a real sagactl worker over HTTP against 3\n"
      "participants on 127.0.0.1, with SIGKILLs, pauses, participant restarts and a full\n"
      "disk; then checks the participants' databases and the store (bench/README.md)\n"
      "  --sagas N                 sagas to run (10000)\n"
      "  --kills N                 SIGKILLs of the worker, at random instants (1000)\n"
      "  --seed S                  seed of every random choice (default: random, printed)\n"
      "  --time-limit S            give up with a failure after S seconds (3600)\n"
      "  --window N                unfinished instances at most when enqueueing (100)\n"
      "  --kill-ms MIN,MAX         a worker lives MIN..MAX ms before its SIGKILL (20,500)\n"
      "  --pauses N                SIGSTOP/SIGCONT pauses of the worker (kills/50, at least 1)\n"
      "  --participant-pauses N    SIGSTOP/SIGCONT pauses of a participant (kills/50, >= 1)\n"
      "  --participant-restarts N  SIGKILLs and restarts of a participant (kills/100, >= 1)\n"
      "  --disk-full N             periods of a full disk under the store (kills/200, >= 1)\n"
      "  --disk-full-mode M        tmpfs (a small tmpfs, filled; falls back to rlimit when\n"
      "                            mounting is not permitted), rlimit (RLIMIT_FSIZE of the\n"
      "                            worker) or none\n"
      "  --dir DIR                 where the databases and logs go (default: a new temp dir)\n"
      "  --keep                    keep DIR afterwards (it is kept anyway after a failure)\n"
      "Exit status: 0 when every check holds, 1 on a violation or the time limit, 2 usage.\n");
}

int64_t elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<Ms>(Clock::now() - since).count();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- Children -------------------------------------------------------------------

// A child whose exit we can wait for with a time limit, without reaping it
// (ChildProcess reaps it): a pidfd when the kernel has them, else waitid
// with WNOWAIT, polled.
class Watched {
 public:
  Watched(const std::vector<std::string>& argv, const fs::path& log) : process_(argv, log) {
    // glibc 2.36's pidfd_open() is not declared extern "C"; call the kernel.
    pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, process_.pid(), 0));
  }
  ~Watched() {
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  pid_t pid() const { return process_.pid(); }

  // Whether the child exited within `ms` (it stays a zombie until reaped).
  bool exits_within(int64_t ms) {
    if (process_.pid() <= 0) return true;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      int ready;
      while ((ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(ms, 0)))) < 0 &&
             errno == EINTR) {
      }
      return ready > 0;
    }
    auto until = Clock::now() + Ms(ms);
    for (;;) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(process_.pid()), &info, WEXITED | WNOHANG | WNOWAIT) ==
              0 &&
          info.si_pid == process_.pid()) {
        return true;
      }
      if (Clock::now() >= until) return false;
      std::this_thread::sleep_for(Ms(2));
    }
  }
  // Reaps a child that exited: its exit code (128 + signal).
  int reap() { return process_.wait(Ms(1000)); }
  void kill() { process_.kill(); }
  void signal(int sig) {
    if (process_.pid() > 0) ::kill(process_.pid(), sig);
  }
  void stop(Ms grace) { process_.stop(grace); }

 private:
  ChildProcess process_;
  int pidfd_ = -1;
};

// ---- The full disk ----------------------------------------------------------------

// A disk that fills up for a while under the store. "tmpfs": the store's
// directory is a tmpfs of a bounded size, mounted in a mount namespace of
// this process and its children (so it vanishes with them), and a period
// fills it with a file, then deletes the file; SQLite then gets ENOSPC, the
// real condition. When mounting is not permitted, "rlimit" instead: for a
// period, the worker's RLIMIT_FSIZE is its largest file's size, so writes
// past it fail with EFBIG (SIGXFSZ is ignored), which SQLite reports as an
// I/O error: a file-size limit, not a full disk, and the output says so.
class DiskFull {
 public:
  DiskFull(std::string mode, const fs::path& dir, uint64_t bytes)
      : mode_(std::move(mode)), dir_(dir) {
    if (mode_ == "tmpfs") {
      std::string why;
      if (::unshare(CLONE_NEWNS) != 0) {
        why = fmt::format("unshare(CLONE_NEWNS): {}", std::strerror(errno));
      } else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        why = fmt::format("making / private: {}", std::strerror(errno));
      } else if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                         fmt::format("size={}", bytes).c_str()) != 0) {
        why = fmt::format("mount -t tmpfs: {}", std::strerror(errno));
      }
      if (why.empty()) {
        note_ =
            fmt::format("a {} MiB tmpfs on the store's directory, filled by a file", bytes >> 20);
        return;
      }
      note_ = "tmpfs not available (" + why + "); ";
      mode_ = "rlimit";
    }
    if (mode_ == "rlimit") {
      ::signal(SIGXFSZ, SIG_IGN);  // Inherited by the workers: EFBIG instead of death.
      note_ +=
          "RLIMIT_FSIZE of the worker set to its largest file's size (writes fail with EFBIG: "
          "a file-size limit, not a full disk)";
    } else {
      mode_ = "none";
      note_ += "no full disk (--disk-full-mode none)";
    }
  }
  ~DiskFull() {
    if (mode_ == "tmpfs") ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool available() const { return mode_ != "none"; }
  bool active() const { return active_; }
  const std::string& note() const { return note_; }

  // Fills the disk (or limits `worker`, 0 for none running). Periods may
  // overlap: the disk is freed when the last one ends.
  void fill(pid_t worker) {
    if (depth_++ > 0) return;
    active_ = true;
    if (mode_ == "tmpfs") {
      filler_ = ::open((dir_ / "filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      std::vector<char> zeros(1 << 20, 0);
      for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{512}}) {
        while (filler_ >= 0 &&
               ::write(filler_, zeros.data(), chunk) == static_cast<ssize_t>(chunk)) {
          filled_ += chunk;
        }
      }
    } else {
      limit(worker);
    }
  }
  // A worker started during a period gets the same limit (rlimit only).
  void limit(pid_t worker) {
    if (mode_ != "rlimit" || !active_ || worker <= 0) return;
    uint64_t largest = 0;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir_, ec)) {
      largest = std::max<uint64_t>(largest, f.file_size(ec));
    }
    rlimit l{static_cast<rlim_t>(largest), RLIM_INFINITY};
    ::prlimit(worker, RLIMIT_FSIZE, &l, nullptr);
  }
  void release(pid_t worker) {
    if (depth_ == 0 || --depth_ > 0) return;
    active_ = false;
    if (filler_ >= 0) {
      ::close(filler_);
      ::unlink((dir_ / "filler").c_str());
      filler_ = -1;
    }
    if (mode_ == "rlimit" && worker > 0) {
      rlimit l{RLIM_INFINITY, RLIM_INFINITY};
      ::prlimit(worker, RLIMIT_FSIZE, &l, nullptr);
    }
  }
  uint64_t filled() const { return filled_; }

 private:
  std::string mode_;
  fs::path dir_;
  std::string note_;
  bool active_ = false;
  int depth_ = 0;  // Periods in progress.
  int filler_ = -1;
  uint64_t filled_ = 0;
};

// ---- The run ---------------------------------------------------------------------

// The figures of the faults injected and of what the processes said.
struct Faults {
  int kills = 0, kills_in_flight = 0;
  int64_t in_flight_at_kills = 0;
  int pauses = 0, participant_pauses = 0, participant_restarts = 0;
  int64_t pause_ms = 0;
  int disk_full = 0, disk_full_with_errors = 0;
  int commit_errors = 0;   // Worker log lines: a commit refused (disk full, I/O error).
  int full_lines = 0;      // Worker log lines naming a full database or an I/O error.
  int refused_starts = 0;  // Workers that could not open the store during a period.
  int enqueue_errors = 0;  // Enqueues refused (during a period), retried later.
  int cancels = 0, cancels_refused = 0, cancel_errors = 0;
  std::vector<std::string> surprises;  // Crashes, sanitizer reports, unexpected exits.
};

class Run {
 public:
  Run(const Options& o, const fs::path& dir, DiskFull& disk)
      : o_(o), dir_(dir), disk_(disk), rng_(o.seed), start_(Clock::now()) {}

  // Everything up to the checks; false when the time limit was reached.
  bool execute() {
    start_participants();
    open_enqueuer();
    plan();
    bool in_time = rounds() && drain();
    flush_timeline();
    stop_participants();
    engine_.reset();
    return in_time;
  }

  std::map<std::string, std::string> participant_dbs() const {
    std::map<std::string, std::string> out;
    for (const char* role : kRoles)
      out[role] = (dir_ / "participants" / (std::string(role) + ".db")).string();
    return out;
  }
  std::string store_path() const { return (dir_ / "store" / "chaos.db").string(); }
  const Faults& faults() const { return faults_; }
  int64_t rounds_ms() const { return rounds_ms_; }
  int64_t drain_ms() const { return drain_ms_; }
  std::map<std::string, int> kinds() const { return kinds_; }

 private:
  // ---- Participants ----

  std::vector<std::string> participant_flags(int role) const {
    return {"--record-calls",
            "--seed",
            std::to_string(o_.seed * 16 + static_cast<uint64_t>(role) * 4 +
                           static_cast<uint64_t>(restarts_[role]) * 64 + 1),
            "--latency-jitter",
            "25",
            "--slow-rate",
            "0.02",
            "--slow-ms",
            "400",
            "--fail-rate",
            "0.03",
            "--reject-rate",
            "0.01",
            "--lost-reply-rate",
            "0.02",
            "--repeat-error-rate",
            "0.3"};
  }

  void start_participants() {
    fs::create_directories(dir_ / "participants");
    for (int r = 0; r < 3; ++r) {
      participants_.push_back(std::make_unique<ParticipantProcess>(kRoles[r], dir_ / "participants",
                                                                   participant_flags(r)));
      ports_.push_back(participants_.back()->port());
    }
  }

  // SIGKILL, then a new process on the same port and database.
  void restart_participant(int r) {
    participants_[r]->kill();
    ++restarts_[r];
    participants_[r] = std::make_unique<ParticipantProcess>(kRoles[r], dir_ / "participants",
                                                            participant_flags(r), ports_[r]);
    ++faults_.participant_restarts;
  }

  void pause_participant(int r, int64_t ms) {
    const pid_t pid = participants_[r]->pid();
    if (pid <= 0) return;
    ::kill(pid, SIGSTOP);
    ++faults_.participant_pauses;
    at(Clock::now() + Ms(ms), [this, r, pid] {
      if (pid > 0 && participants_[r]->pid() == pid) ::kill(pid, SIGCONT);
    });
  }

  void stop_participants() {
    for (auto& p : participants_) {
      if (p->pid() > 0) ::kill(p->pid(), SIGCONT);
      p->stop();
    }
  }

  // ---- Enqueueing (through the store, as `sagactl start` does) ----

  void open_enqueuer() {
    auto image = saga::compiler::compile_file_to_image(SAGA_CHAOS_SAGA);
    if (!image.ok()) throw std::runtime_error("chaos.saga: " + image.status().message());
    saga::EngineOptions options;
    options.database = store_path();
    options.durability = saga::Durability::kNormal;
    options.threads = 1;
    auto engine = saga::Engine::open(std::move(options));
    if (!engine.ok())
      throw std::runtime_error("cannot open the store: " + engine.status().message());
    engine_ = std::move(engine).value();
    auto hash = engine_->load_program(image.value());
    if (!hash.ok()) throw std::runtime_error(hash.status().message());
    hash_ = hash.value();
    ids_.resize(static_cast<size_t>(o_.sagas) + 1);
  }

  size_t unfinished() {
    auto all = engine_->store().list_unfinished();
    return all.ok() ? all.value().size() : 0;
  }

  // Enqueues sagas up to `target` while fewer than the window are unfinished.
  void top_up(int target) {
    if (next_ > target) return;
    size_t open = unfinished();
    while (next_ <= target && open < static_cast<size_t>(o_.window)) {
      const chaos::Saga s = chaos::saga_of(o_.seed, next_);
      auto id = engine_->enqueue(hash_, chaos::kind_name(s.kind), s.input);
      if (!id.ok()) {
        ++faults_.enqueue_errors;  // A full disk: again at the next top-up.
        return;
      }
      ids_[static_cast<size_t>(next_)] = id.value();
      ++kinds_[chaos::kind_name(s.kind)];
      if (s.cancel) {
        at(Clock::now() + Ms(between(0, 400)), [this, id = id.value()] { cancel(id); });
      }
      ++next_;
      ++open;
    }
  }

  void cancel(const std::string& id) {
    saga::Status s = engine_->cancel(id);
    ++faults_.cancels;
    if (s.code() == saga::StatusCode::kFailedPrecondition) {
      ++faults_.cancels_refused;  // Already compensating or finished.
    } else if (!s.ok()) {
      ++faults_.cancel_errors;
    }
  }

  // ---- The schedule ----

  int between(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void at(Clock::time_point when, std::function<void()> what) {
    timeline_.emplace(when, std::move(what));
  }

  void run_due() {
    while (!timeline_.empty() && timeline_.begin()->first <= Clock::now()) {
      auto what = std::move(timeline_.begin()->second);
      timeline_.erase(timeline_.begin());
      what();
    }
  }

  void flush_timeline() {
    while (!timeline_.empty()) {
      auto what = std::move(timeline_.begin()->second);
      timeline_.erase(timeline_.begin());
      what();
    }
    while (disk_.active()) disk_.release(0);
  }

  // Which rounds (worker lives) get which fault, chosen up front.
  void plan() {
    // Rounds among the first `share` of them (so that a fault meets work).
    auto rounds_for = [&](int count, double share = 1.0) {
      std::set<int> out;
      const int last = std::max(0, static_cast<int>(o_.kills * share) - 1);
      count = std::min(count, last + 1);
      while (static_cast<int>(out.size()) < count) out.insert(between(0, last));
      return out;
    };
    auto scaled = [&](int flag, int per) { return flag >= 0 ? flag : std::max(1, o_.kills / per); };
    pause_rounds_ = rounds_for(scaled(o_.pauses, 50));
    participant_pause_rounds_ = rounds_for(scaled(o_.participant_pauses, 50));
    participant_restart_rounds_ = rounds_for(scaled(o_.participant_restarts, 100));
    disk_rounds_ = disk_.available() ? rounds_for(scaled(o_.disk_full, 200), 0.8) : std::set<int>{};
  }

  std::vector<std::string> sagactl_args(const std::string& command) const {
    std::vector<std::string> argv = {SAGACTL, command, "--db", store_path()};
    std::string hosts;
    for (int r = 0; r < 3; ++r) {
      const std::string authority = "127.0.0.1:" + std::to_string(ports_[r]);
      argv.push_back("--service");
      argv.push_back(std::string(kRoles[r]) + "=http://" + authority);
      hosts += (hosts.empty() ? "" : ",") + authority;
    }
    argv.push_back("--allow-host");
    argv.push_back(hosts);
    if (command == "worker") {
      argv.push_back("--poll-ms");
      argv.push_back("50");
    }
    return argv;
  }

  std::unique_ptr<Watched> start_worker() {
    auto w = std::make_unique<Watched>(sagactl_args("worker"), dir_ / "logs" / "worker.log");
    disk_.limit(w->pid());
    return w;
  }

  // Reads the log of a worker that ended, for the figures and for what must
  // never be there.
  void read_log(const fs::path& log, const std::string& who) {
    std::istringstream lines(read_text(log));
    for (std::string line; std::getline(lines, line);) {
      faults_.commit_errors += line.find("cannot commit") != std::string::npos;
      faults_.full_lines += line.find("database is full") != std::string::npos ||
                            line.find("disk I/O error") != std::string::npos;
      for (const char* bad : {"AddressSanitizer", "runtime error:", "terminate called", "Assertion",
                              "LeakSanitizer", "Segmentation fault"}) {
        if (line.find(bad) != std::string::npos) faults_.surprises.push_back(who + ": " + line);
      }
    }
  }

  // A full disk that no write has met yet proves nothing (SQLite may reuse
  // the space of its WAL for a while): it stays full until an error is seen,
  // at most kDiskFullMoreMs longer than planned.
  static constexpr int kDiskFullMoreMs = 30'000;
  void end_disk_full(Clock::time_point cap) {
    if (errors_seen() == errors_at_fill_ && Clock::now() < cap) {
      at(Clock::now() + Ms(100), [this, cap] { end_disk_full(cap); });
      return;
    }
    faults_.disk_full_with_errors += errors_seen() > errors_at_fill_;
    disk_.release(worker_pid_);
  }

  // The errors a full disk causes, seen so far: in the logs of the workers
  // that ended, in the running one's, and at the enqueuer.
  int errors_seen() {
    int n = faults_.commit_errors + faults_.full_lines + faults_.enqueue_errors;
    std::istringstream lines(read_text(dir_ / "logs" / "worker.log"));
    for (std::string line; std::getline(lines, line);) n += is_disk_error(line);
    return n;
  }
  static bool is_disk_error(const std::string& line) {
    return line.find("cannot commit") != std::string::npos ||
           line.find("database is full") != std::string::npos ||
           line.find("disk I/O error") != std::string::npos;
  }

  void signal_worker(pid_t pid, int sig) {
    if (pid > 0 && pid == worker_pid_) ::kill(pid, sig);
  }

  bool out_of_time() const { return elapsed_ms(start_) > o_.time_limit_s * 1000LL; }

  // Waits until `until` or the worker's exit, running the timeline's due
  // actions on the way; true when the worker exited.
  bool wait_until(Watched& w, Clock::time_point until) {
    for (;;) {
      run_due();
      auto now = Clock::now();
      if (now >= until) return false;
      auto next = timeline_.empty() ? until : std::min(until, timeline_.begin()->first);
      if (w.exits_within(std::chrono::duration_cast<Ms>(next - now).count() + 1)) return true;
    }
  }

  // A worker that ended by itself: fine when it could not open the store
  // during a disk-full period (then the run waits for the period's end),
  // a finding otherwise.
  void exited_by_itself(Watched& w, const std::string& who) {
    const int code = w.reap();
    const fs::path log = dir_ / "logs" / "worker.log";
    const std::string text = read_text(log);
    read_log(log, who);
    if (code == 1 && disk_.active()) {
      ++faults_.refused_starts;
      while (disk_.active() && !timeline_.empty() && !out_of_time()) {
        std::this_thread::sleep_until(timeline_.begin()->first);
        run_due();
      }
      return;
    }
    faults_.surprises.push_back(
        fmt::format("{} exited by itself with status {}: {}", who, code,
                    text.substr(text.size() > 600 ? text.size() - 600 : 0)));
    fs::copy_file(log, dir_ / "logs" / fmt::format("{}-exit.log", who),
                  fs::copy_options::overwrite_existing);
  }

  // The kill rounds: each starts a worker, lets it live a random time
  // (with the faults planned for the round at random instants in it), and
  // SIGKILLs it.
  bool rounds() {
    fs::create_directories(dir_ / "logs");
    const auto begin = Clock::now();
    for (int round = 0; round < o_.kills; ++round) {
      if (out_of_time()) return false;
      auto w = start_worker();
      const std::string who = fmt::format("worker {}", round + 1);
      // The sagas are released in step with the kills, so that every kill
      // finds some in flight.
      top_up(static_cast<int>((static_cast<int64_t>(o_.sagas) * (round + 1) + o_.kills - 1) /
                              o_.kills));
      const auto born = Clock::now();
      const int life = between(o_.kill_min_ms, o_.kill_max_ms);
      auto inside = [&] { return born + Ms(between(0, life)); };
      Clock::time_point kill_at = born + Ms(life);
      worker_pid_ = w->pid();
      if (pause_rounds_.count(round)) {
        // Signals for this worker only: once it is gone they do nothing.
        const int pause = between(200, 1500);
        const auto stop_at = inside();
        const pid_t pid = w->pid();
        at(stop_at, [this, pid] { signal_worker(pid, SIGSTOP); });
        at(stop_at + Ms(pause), [this, pid] { signal_worker(pid, SIGCONT); });
        kill_at = std::max(kill_at, stop_at + Ms(pause + between(1, 200)));
        ++faults_.pauses;
        faults_.pause_ms += pause;
      }
      if (participant_pause_rounds_.count(round)) {
        const int r = between(0, 2), ms = between(300, 1500);
        at(inside(), [this, r, ms] { pause_participant(r, ms); });
      }
      if (participant_restart_rounds_.count(round)) {
        const int r = between(0, 2);
        at(inside(), [this, r] { restart_participant(r); });
      }
      if (disk_rounds_.count(round)) {
        const auto fill_at = inside();
        const int hold = between(1000, 3000);
        at(fill_at, [this, fill_at, hold] {
          ++faults_.disk_full;
          errors_at_fill_ = errors_seen();
          disk_.fill(worker_pid_);
          const auto cap = fill_at + Ms(hold + kDiskFullMoreMs);
          at(fill_at + Ms(hold), [this, cap] { end_disk_full(cap); });
        });
      }
      if (wait_until(*w, kill_at)) {
        exited_by_itself(*w, who);
      } else {
        w->kill();
        read_log(dir_ / "logs" / "worker.log", who);
        ++faults_.kills;
        const size_t open = unfinished();
        faults_.kills_in_flight += open > 0;
        faults_.in_flight_at_kills += static_cast<int64_t>(open);
      }
      worker_pid_ = 0;
      if ((round + 1) % std::max(1, o_.kills / 10) == 0) {
        std::printf("chaos: %5.1f s: %d of %d kills, %d of %d sagas enqueued, %zu unfinished\n",
                    elapsed_ms(start_) / 1000.0, faults_.kills, o_.kills, next_ - 1, o_.sagas,
                    unfinished());
        std::fflush(stdout);
      }
    }
    rounds_ms_ = elapsed_ms(begin);
    return true;
  }

  // The end: the kills stop, a worker (never killed) runs until every saga
  // is enqueued and the faults still due have happened (a pause ends, a
  // full disk is freed), is stopped with SIGTERM, and `sagactl resume`
  // finishes every unfinished instance and exits.
  bool drain() {
    const auto begin = Clock::now();
    auto w = start_worker();
    worker_pid_ = w->pid();
    while (next_ <= o_.sagas || !timeline_.empty()) {
      if (out_of_time()) {
        w->kill();
        return false;
      }
      top_up(o_.sagas);
      // Wait for the next due fault, for the worker to finish some sagas
      // (50 ms at most) or for it to die.
      if (wait_until(*w, Clock::now() + Ms(50))) {
        exited_by_itself(*w, "the last worker");
        w = start_worker();
        worker_pid_ = w->pid();
      }
    }
    w->stop(Ms(10'000));
    read_log(dir_ / "logs" / "worker.log", "the last worker");
    worker_pid_ = 0;
    Watched resume(sagactl_args("resume"), dir_ / "logs" / "resume.log");
    const int64_t left = o_.time_limit_s * 1000LL - elapsed_ms(start_);
    if (!resume.exits_within(left)) {
      resume.kill();
      read_log(dir_ / "logs" / "resume.log", "sagactl resume");
      return false;
    }
    const int code = resume.reap();
    read_log(dir_ / "logs" / "resume.log", "sagactl resume");
    if (code != 0) {
      faults_.surprises.push_back(fmt::format("sagactl resume exited with status {}: {}", code,
                                              read_text(dir_ / "logs" / "resume.log")));
    }
    drain_ms_ = elapsed_ms(begin);
    return true;
  }

  const Options& o_;
  fs::path dir_;
  DiskFull& disk_;
  std::mt19937_64 rng_;
  Clock::time_point start_;
  std::vector<std::unique_ptr<ParticipantProcess>> participants_;
  std::vector<int> ports_;
  int restarts_[3] = {0, 0, 0};
  std::unique_ptr<saga::Engine> engine_;
  std::string hash_;
  std::vector<std::string> ids_;  // By saga number.
  int next_ = 1;                  // The next saga to enqueue.
  std::map<std::string, int> kinds_;
  std::multimap<Clock::time_point, std::function<void()>> timeline_;
  std::set<int> pause_rounds_, participant_pause_rounds_, participant_restart_rounds_, disk_rounds_;
  pid_t worker_pid_ = 0;
  int errors_at_fill_ = 0;
  Faults faults_;
  int64_t rounds_ms_ = 0, drain_ms_ = 0;
};

bool parse(int argc, char** argv, Options& o) {
  const std::map<std::string, int*> ints = {{"--sagas", &o.sagas},
                                            {"--kills", &o.kills},
                                            {"--time-limit", &o.time_limit_s},
                                            {"--window", &o.window},
                                            {"--pauses", &o.pauses},
                                            {"--participant-pauses", &o.participant_pauses},
                                            {"--participant-restarts", &o.participant_restarts},
                                            {"--disk-full", &o.disk_full}};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    try {
      if (auto it = ints.find(flag); it != ints.end()) {
        *it->second = std::stoi(value);
      } else if (flag == "--seed") {
        o.seed = std::stoull(value);
      } else if (flag == "--kill-ms") {
        o.kill_min_ms = std::stoi(value);
        o.kill_max_ms = std::stoi(value.substr(value.find(',') + 1));
      } else if (flag == "--disk-full-mode") {
        o.disk_mode = value;
        if (value != "tmpfs" && value != "rlimit" && value != "none") return false;
      } else if (flag == "--dir") {
        o.dir = value;
      } else {
        return false;
      }
    } catch (const std::exception&) {
      return false;
    }
  }
  return o.sagas > 0 && o.kills > 0 && o.kill_min_ms >= 0 && o.kill_max_ms >= o.kill_min_ms &&
         o.window > 0;
}

void print_figures(const Options& o, const Run& run, const chaos::CheckReport& c,
                   const DiskFull& disk, int64_t wall_ms) {
  const Faults& f = run.faults();
  std::string kinds;
  for (const auto& [kind, n] : run.kinds())
    kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", kind, n);
  fmt::print("\nchaos: seed {} (replay: --seed {}); {} sagas ({})\n", o.seed, o.seed, o.sagas,
             kinds);
  std::map<std::string, int> status;
  for (const auto& [kind, by] : c.by_kind) {
    for (const auto& [s, n] : by) status[s] += n;
  }
  std::string line;
  for (const auto& [s, n] : status) line += fmt::format("{}{} {}", line.empty() ? "" : ", ", s, n);
  fmt::print("outcomes: {} instances: {}; {} dead letters\n", c.instances, line, c.dead_letters);
  line.clear();
  for (const auto& [s, n] : c.by_outcome)
    line += fmt::format("{}{} {}", line.empty() ? "" : ", ", s, n);
  fmt::print("  by end: {}\n", line);
  for (const auto& [kind, by] : c.by_kind) {
    line.clear();
    for (const auto& [s, n] : by) line += fmt::format("{}{} {}", line.empty() ? "" : ", ", s, n);
    fmt::print("  {}: {}\n", kind, line);
  }
  fmt::print(
      "faults: {} worker SIGKILLs ({} with instances unfinished, {:.1f} unfinished on average), "
      "{} worker pauses ({:.1f} s in all), {} participant pauses, {} participant restarts\n",
      f.kills, f.kills_in_flight,
      f.kills ? static_cast<double>(f.in_flight_at_kills) / f.kills : 0.0, f.pauses,
      f.pause_ms / 1000.0, f.participant_pauses, f.participant_restarts);
  fmt::print(
      "  disk: {}: {} full periods ({} with errors seen; {} MiB written to fill them); errors "
      "seen: {} commits refused, {} log lines of a full disk or I/O error, {} worker starts "
      "refused, {} enqueues refused (retried)\n",
      disk.note(), f.disk_full, f.disk_full_with_errors, disk.filled() >> 20, f.commit_errors,
      f.full_lines, f.refused_starts, f.enqueue_errors);
  fmt::print("  cancels: {} requested ({} refused: already compensating or finished, {} errors)\n",
             f.cancels, f.cancels_refused, f.cancel_errors);
  auto calls = [&](const char* k) {
    auto it = c.calls_by_outcome.find(k);
    return it == c.calls_by_outcome.end() ? int64_t{0} : it->second;
  };
  int64_t total = 0;
  for (const auto& [k, n] : c.calls_by_outcome) total += n;
  fmt::print(
      "participants: {} calls answered: {} applied, {} deduplicated deliveries (first response "
      "again), {} injected failures before any effect, {} lost replies (effect, then 503), {} "
      "errors answered to a repeated key, {} late calls refused (compensated before they came)\n",
      total, calls("applied"), calls("dedup"), calls("injected"), calls("lost_reply"),
      calls("repeat_error"), calls("refused"));
  fmt::print(
      "  {} effects ({} undone), {} undo calls ({} orphan undos: nothing to undo), {} tombstones\n",
      c.effects, c.undone, c.undos, c.orphan_undos, c.tombstones);
  fmt::print(
      "store: {} instances resumed from a checkpoint ({} times), {} failed attempts, {} sagas "
      "completed after retries, {} steps answered rejected after an attempt in doubt (kept in "
      "doubt, compensated)\n",
      c.resumed_instances, c.resumed_events, c.attempts_failed, c.completed_after_retries,
      c.kept_in_doubt);
  for (const std::string& s : f.surprises) fmt::print("surprise: {}\n", s);
  fmt::print("violations: {}\n", c.violations.size());
  for (size_t i = 0; i < c.violations.size() && i < 40; ++i) fmt::print("  {}\n", c.violations[i]);
  fmt::print("wall time: {:.1f} s (kill rounds {:.1f} s, drain {:.1f} s)\n", wall_ms / 1000.0,
             run.rounds_ms() / 1000.0, run.drain_ms() / 1000.0);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage();
      return 0;
    }
  }
  Options o;
  if (!parse(argc, argv, o)) {
    usage();
    return 2;
  }
  if (o.seed == 0) o.seed = std::random_device{}() | 1;
  const auto start = Clock::now();
  fs::path dir = o.dir.empty()
                     ? fs::temp_directory_path() / fmt::format("saga-chaos-{}", ::getpid())
                     : fs::path(o.dir);
  fs::create_directories(dir / "store");
  ::signal(SIGPIPE, SIG_IGN);
  // Before any thread: a mount namespace must be entered by a single thread.
  const uint64_t tmpfs_bytes = (uint64_t{32} << 20) + static_cast<uint64_t>(o.sagas) * (24 << 10);
  DiskFull disk(o.disk_mode, dir / "store", tmpfs_bytes);
  std::printf("chaos: seed %llu, %d sagas, %d kills, files in %s\n",
              static_cast<unsigned long long>(o.seed), o.sagas, o.kills, dir.c_str());
  std::printf("chaos: disk full: %s\n", disk.note().c_str());
  std::fflush(stdout);

  Run run(o, dir, disk);
  bool in_time = false;
  try {
    in_time = run.execute();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chaos: %s\n", e.what());
    return 1;
  }
  chaos::CheckReport report =
      chaos::check_run({run.store_path(), run.participant_dbs(), o.seed, o.sagas});
  print_figures(o, run, report, disk, elapsed_ms(start));
  const bool ok = in_time && report.violations.empty() && run.faults().surprises.empty();
  if (!in_time) std::printf("FAILED: the time limit of %d s was reached\n", o.time_limit_s);
  if (!ok || o.keep) {
    // The store lives on the tmpfs, which goes with this process: copy it.
    std::error_code ec;
    fs::copy_file(run.store_path(), dir / "chaos.db", fs::copy_options::overwrite_existing, ec);
    std::printf("chaos: %s; files kept in %s\n", ok ? "ok" : "FAILED", dir.c_str());
  } else {
    std::printf("chaos: ok\n");
  }
  std::fflush(stdout);
  if (ok && !o.keep) {
    std::error_code ec;
    ::umount2((dir / "store").c_str(), MNT_DETACH);
    fs::remove_all(dir, ec);
  }
  return ok ? 0 : 1;
}
