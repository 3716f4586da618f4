// SQLite store benchmark: how many transitions per second the group commit of
// runtime/store/sqlite_store.cpp makes durable, and how long one commit takes.
// A transition is what the engine writes at a yield point: one instance row
// update with a ~100-byte checkpoint and two history events. Instances live
// for 10 transitions (a create, 8 updates, a completion), then a new one
// starts, so the database grows as it would under a real workload.
//
// For each durability level (full, normal) it measures:
// * latency: one submitter that waits for each commit before the next
//   (concurrency 1): p50 and p99 of submit-to-done in microseconds;
// * throughput: 256 transitions always in flight (each completion hands its
//   slot back to a submitter thread, which builds and submits the slot's next
//   transition): transitions per second, average batch size.
// Each figure is the median of --runs runs, each on a new database in a
// temporary directory (--dir, default $TMPDIR or /tmp). It also prints the raw
// fdatasync cost of that directory before and after, and the CPU time per
// transition of the whole process and of the store's writer thread, which
// load from other processes changes much less than wall-clock figures.
//
//   build/bench/store_bench [--runs 3] [--latency-count 3000]
//                           [--throughput-count 300000] [--inflight 256]
//                           [--ids random|ordered] [--dir DIR]
#include <fcntl.h>
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/allocator.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "saga/store.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using saga::Durability;
using saga::Status;
using saga::Store;
using saga::StoreOptions;
using saga::Transition;

struct Options {
  int runs = 3;
  int latency_count = 3000;
  int throughput_count = 300000;
  int inflight = 256;
  bool ordered_ids = false;  // Time-ordered ids (like UUIDv7) instead of random UUIDv4s.
  std::string dir;
};

constexpr int kTransitionsPerInstance = 10;

// Makes instance ids: random 36-character UUIDs, or time-ordered ones that
// sort in creation order (better page locality in the history table).
class IdMaker {
 public:
  explicit IdMaker(bool ordered) : ordered_(ordered), rng_(12345) {}
  std::string next() {
    uint64_t hi = ordered_ ? counter_++ : rng_();
    uint64_t lo = rng_();
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff,
                       hi & 0xffff, lo >> 48, lo & 0xffffffffffffULL);
  }

 private:
  bool ordered_;
  uint64_t counter_ = 1ULL << 40;
  std::mt19937_64 rng_;
};

// One instance's progress: the transition number within its life.
struct Slot {
  saga::InstanceRecord record;
  int step = 0;
};

// Builds the next transition of a slot and advances it; a slot whose
// instance finished starts a new instance.
Transition next_transition(Slot& slot, IdMaker& ids) {
  Transition t;
  if (slot.step == 0) {
    slot.record = saga::InstanceRecord{};
    slot.record.id = ids.next();
    slot.record.program_hash = "0123456789abcdef0123456789abcdef";
    slot.record.saga = "Order";
    slot.record.input_json = R"({"order":"A-1042","amount":125.5,"currency":"EUR"})";
    slot.record.created_ms = 1700000000000;
    t.create = true;
  }
  slot.record.status = slot.step == kTransitionsPerInstance - 1 ? saga::InstanceStatus::kCompleted
                                                                : saga::InstanceStatus::kRunning;
  slot.record.checkpoint.assign(100, static_cast<char>('a' + slot.step));
  slot.record.updated_ms = 1700000000000 + slot.step;
  t.instance = slot.record;
  t.events.resize(2);
  t.events[0].kind = "step_completed";
  t.events[0].step = "charge";
  t.events[0].attempt = 1;
  t.events[0].data_json = R"({"id":"ch_1"})";
  t.events[1].kind = "step_started";
  t.events[1].step = "ship";
  t.events[1].attempt = 1;
  slot.step = (slot.step + 1) % kTransitionsPerInstance;
  return t;
}

std::unique_ptr<Store> open_store(const std::string& path, Durability d) {
  StoreOptions options;
  options.durability = d;
  auto r = saga::open_store(path, options);
  if (!r.ok()) {
    fmt::print(stderr, "store_bench: {}\n", r.status().message());
    std::exit(1);
  }
  return std::move(r).value();
}

struct LatencyResult {
  double p50_us = 0;
  double p99_us = 0;
  double per_second = 0;
};

// One submitter, waiting for each commit.
LatencyResult run_latency(const std::string& path, Durability d, const Options& o) {
  auto store = open_store(path, d);
  IdMaker ids(o.ordered_ids);
  Slot slot;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::vector<double> us;
  us.reserve(o.latency_count);
  auto start = Clock::now();
  for (int i = 0; i < o.latency_count; ++i) {
    Transition t = next_transition(slot, ids);
    auto t0 = Clock::now();
    store->submit(std::move(t), [&](Status s) {
      if (!s.ok()) fmt::print(stderr, "store_bench: {}\n", s.message()), std::exit(1);
      std::lock_guard lock(mu);
      done = true;
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    done = false;
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100], o.latency_count / seconds};
}

// CPU time (user + system) of the whole process so far, in microseconds.
double process_cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

// CPU time (user + system) of the store's writer thread, found by its name
// in /proc/self/task, in microseconds; 0 when it cannot be read. Unlike wall
// time, this hardly changes when other processes load the machine.
double writer_cpu_us() {
  const double tick_us = 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "saga-store-wr") continue;
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // Fields after the ")" that closes the name: state is field 3; utime and
    // stime are fields 14 and 15.
    std::istringstream in(line.substr(line.rfind(')') + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    return (utime + stime) * tick_us;
  }
  return 0;
}

struct ThroughputResult {
  double per_second = 0;
  double cpu_us = 0;     // Process CPU per transition (store, bench and SQLite together).
  double writer_us = 0;  // CPU of the store's writer thread per transition.
  double avg_batch = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// `inflight` transitions always queued or committing.
ThroughputResult run_throughput(const std::string& path, Durability d, const Options& o) {
  auto store = open_store(path, d);
  IdMaker ids(o.ordered_ids);
  std::vector<Slot> slots(o.inflight);
  std::vector<Clock::time_point> submitted(o.inflight);
  std::vector<double> us;
  us.reserve(o.throughput_count + o.inflight);

  // Completed slots come back here; the submitter thread resubmits them.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> ready;
  ready.reserve(o.inflight);
  for (int i = 0; i < o.inflight; ++i) ready.push_back(i);

  int started = 0;
  int finished = 0;
  auto start = Clock::now();
  const double cpu_start = process_cpu_us();
  const double writer_start = writer_cpu_us();
  std::vector<int> mine;
  mine.reserve(o.inflight);
  while (finished < o.throughput_count) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return !ready.empty(); });
      mine.swap(ready);
    }
    for (int slot : mine) {
      if (started >= o.throughput_count) continue;
      ++started;
      Transition t = next_transition(slots[slot], ids);
      submitted[slot] = Clock::now();
      store->submit(std::move(t), [&, slot](Status s) {
        if (!s.ok()) fmt::print(stderr, "store_bench: {}\n", s.message()), std::exit(1);
        auto now = Clock::now();
        std::lock_guard lock(mu);
        us.push_back(std::chrono::duration<double, std::micro>(now - submitted[slot]).count());
        ++finished;
        ready.push_back(slot);
        if (ready.size() == 1) cv.notify_one();
      });
    }
    mine.clear();
    std::lock_guard lock(mu);
    if (finished >= o.throughput_count) break;
  }
  store->flush();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = process_cpu_us() - cpu_start;
  const double writer = writer_cpu_us() - writer_start;
  auto stats = saga::store::sqlite_store_stats(*store);
  std::sort(us.begin(), us.end());
  ThroughputResult r;
  r.per_second = o.throughput_count / seconds;
  r.cpu_us = cpu / o.throughput_count;
  r.writer_us = writer / o.throughput_count;
  r.avg_batch = stats && stats->commits ? double(stats->transitions_committed) / stats->commits : 0;
  r.p50_us = us[us.size() / 2];
  r.p99_us = us[us.size() * 99 / 100];
  return r;
}

// The machine's fsync cost where the database lives: p50 of 200 appends of
// 4 KiB, each followed by fdatasync, in microseconds. A commit at concurrency
// 1 under durability=full cannot be faster than this.
double fdatasync_p50_us(const std::string& dir) {
  const std::string file = dir + "/fsync-probe";
  int fd = open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (fd < 0) return 0;
  std::vector<char> page(4096, 'x');
  std::vector<double> us;
  for (int i = 0; i < 200; ++i) {
    auto t0 = Clock::now();
    if (write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size())) break;
    fdatasync(fd);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  close(fd);
  std::filesystem::remove(file);
  if (us.empty()) return 0;
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

template <class T, class F>
double median_of(std::vector<T>& v, F field) {
  std::vector<double> x;
  for (const T& t : v) x.push_back(field(t));
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

void remove_db(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fmt::print(stderr, "store_bench: {} needs a value\n", a), std::exit(2);
      return argv[++i];
    };
    if (a == "--runs")
      o.runs = std::stoi(value());
    else if (a == "--latency-count")
      o.latency_count = std::stoi(value());
    else if (a == "--throughput-count")
      o.throughput_count = std::stoi(value());
    else if (a == "--inflight")
      o.inflight = std::stoi(value());
    else if (a == "--ids")
      o.ordered_ids = value() == "ordered";
    else if (a == "--dir")
      o.dir = value();
    else {
      const bool help = a == "--help" || a == "-h";
      fmt::print(help ? stdout : stderr,
                 "usage: store_bench [--runs N] [--latency-count N] [--throughput-count N] "
                 "[--inflight N] [--ids random|ordered] [--dir DIR]\n");
      return help ? 0 : 2;
    }
  }
  std::string dir = o.dir.empty() ? std::filesystem::temp_directory_path().string() : o.dir;
  std::string tmpl = dir + "/store-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    fmt::print(stderr, "store_bench: cannot create a directory in {}\n", dir);
    return 1;
  }
  const std::string path = tmpl + "/bench.db";

  fmt::print(
      "store_bench: transition = 1 instance update (100-byte checkpoint) + 2 history events; {} "
      "ids; median of {} runs; database in {}; {}\n",
      o.ordered_ids ? "time-ordered" : "random", o.runs, tmpl, saga::bench::allocator_name());
  // The machine's fsync cost varies over time (shared disks): measure it
  // before and after, to tell a slow store from a slow disk.
  fmt::print("fdatasync of 4 KiB in that directory, before: p50 {:.0f} us\n",
             fdatasync_p50_us(tmpl));
  std::fflush(stdout);
  for (Durability d : {Durability::kFull, Durability::kNormal}) {
    const char* name = d == Durability::kFull ? "full" : "normal";
    std::vector<LatencyResult> lat;
    std::vector<ThroughputResult> thr;
    for (int r = 0; r < o.runs; ++r) {
      remove_db(path);
      lat.push_back(run_latency(path, d, o));
      remove_db(path);
      thr.push_back(run_throughput(path, d, o));
    }
    fmt::print(
        "durability={:<6} concurrency 1:   p50 {:7.0f} us  p99 {:7.0f} us  {:9.0f} "
        "transitions/s\n",
        name, median_of(lat, [](auto& x) { return x.p50_us; }),
        median_of(lat, [](auto& x) { return x.p99_us; }),
        median_of(lat, [](auto& x) { return x.per_second; }));
    fmt::print(
        "durability={:<6} concurrency {}: {:9.0f} transitions/s  (CPU {:.1f} us each, writer "
        "thread {:.1f} us; avg batch {:.0f}; submit-to-done p50 {:.0f} us, p99 {:.0f} us)\n",
        name, o.inflight, median_of(thr, [](auto& x) { return x.per_second; }),
        median_of(thr, [](auto& x) { return x.cpu_us; }),
        median_of(thr, [](auto& x) { return x.writer_us; }),
        median_of(thr, [](auto& x) { return x.avg_batch; }),
        median_of(thr, [](auto& x) { return x.p50_us; }),
        median_of(thr, [](auto& x) { return x.p99_us; }));
  }
  fmt::print("fdatasync of 4 KiB in that directory, after: p50 {:.0f} us\n",
             fdatasync_p50_us(tmpl));
  remove_db(path);
  std::filesystem::remove(tmpl);
  return 0;
}
