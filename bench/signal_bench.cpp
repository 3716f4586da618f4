// signal_bench: how long a signal takes from its post to the instance moving
// on (its `signal_consumed` transition committed), for instances waiting at
// `await signal go`. Posted in the same process (Engine::signal: the engine
// hands it over at once) and by a second process with its own store on the
// same database file (what `sagactl signal` against a worker's database
// does: the engine's inbox watch notices it). Prints the median, p90 and max
// of --samples signals each; posts are spread over the watch period (a
// varying pause before each) so that the figure is not in phase with it.
//
//   signal_bench [--samples N] [--watch-ms MS] [--dir DIR]
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/allocator.hpp"
#include "bench/latency_args.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "saga/signals.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSaga = R"(
saga waits() {
  await signal go timeout 1h -> data
  output data
}
)";

struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> consumed;
  size_t waiting = 0;
};

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void report(const char* what, std::vector<double> v) {
  fmt::print("{}", saga::bench::latency_line(what, std::move(v), "signals"));
}

// The second process: reads instance ids, one a line, from `in` and posts
// signal `go` to each through its own store on `database`; writes one byte
// to `out` per post done.
int poster(const std::string& database, int in, int out) {
  auto store = saga::open_store(database);
  if (!store.ok()) return 1;
  std::string line;
  char c;
  int n = 0;
  while (read(in, &c, 1) == 1) {
    if (c != '\n') {
      line += c;
      continue;
    }
    auto posted = saga::post_signal(*store.value(), line, "go", "{\"from\": \"elsewhere\"}",
                                    fmt::format("bench-{}", ++n), 0);
    const char done = posted.ok() ? '1' : '0';
    if (write(out, &done, 1) != 1) return 1;
    line.clear();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  saga::bench::LatencyArgs args;
  args.dir = (std::filesystem::temp_directory_path() / "saga-signal-bench").string();
  const char* usage =
          "usage: signal_bench [--samples N] [--watch-ms MS] [--dir DIR]\n"
          "  The latency from posting a signal to the waiting instance's `signal_consumed`\n"
          "  commit: posted through the engine (Engine::signal, same process) and by a second\n"
          "  process through its own store on the same database (as `sagactl signal`).\n"
          "  Median, p90, max (durability full, inbox watch every MS, 50 by default).";
  if (int exit = saga::bench::parse_latency_args(argc, argv, "signal_bench", usage, args); exit >= 0) {
    return exit;
  }
  const int samples = args.samples, watch_ms = args.watch_ms;
  const std::string dir = args.dir;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string database = dir + "/signals.db";
  // The second process is forked before the engine starts its threads.
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    close(to_child[1]);
    close(from_child[0]);
    _exit(poster(database, to_child[0], from_child[1]));
  }
  close(to_child[0]);
  close(from_child[1]);

  Seen seen;
  saga::EngineOptions options;
  options.database = database;
  options.inbox_watch = std::chrono::milliseconds(watch_ms);
  options.on_event = [&seen](const std::string& id, const saga::HistoryEvent& e) {
    std::lock_guard lock(seen.mu);
    if (e.kind == "signal_consumed") seen.consumed[id] = Clock::now();
    if (e.kind == "step_started") ++seen.waiting;
    seen.cv.notify_all();
  };
  auto engine = saga::Engine::open(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "signal_bench: %s\n", engine.status().message().c_str());
    return 1;
  }
  auto image = saga::compiler::compile_to_image("waits.saga", kSaga);
  if (!image.ok()) {
    std::fprintf(stderr, "signal_bench: %s\n", image.status().message().c_str());
    return 1;
  }
  auto hash = engine.value()->load_program(image.value());
  if (!hash.ok()) return 1;
  std::vector<std::string> ids;
  for (int i = 0; i < 2 * samples; ++i) {
    auto id = engine.value()->start(hash.value(), "waits", nlohmann::json::object());
    if (!id.ok()) return 1;
    ids.push_back(id.value());
  }
  {
    std::unique_lock lock(seen.mu);
    seen.cv.wait(lock, [&] { return seen.waiting >= ids.size(); });
  }
  std::vector<double> here, elsewhere;
  for (int i = 0; i < 2 * samples; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds((i * 17) % (watch_ms + 1)));
    const std::string& id = ids[i];
    const bool local = i % 2 == 0;
    const Clock::time_point t0 = Clock::now();
    if (local) {
      if (!engine.value()->signal(id, "go", "{\"from\": \"here\"}").ok()) return 1;
    } else {
      const std::string line = id + "\n";
      char done = 0;
      if (write(to_child[1], line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
          read(from_child[0], &done, 1) != 1 || done != '1') {
        std::fprintf(stderr, "signal_bench: the second process could not post\n");
        return 1;
      }
    }
    std::unique_lock lock(seen.mu);
    seen.cv.wait(lock, [&] { return seen.consumed.count(id) != 0; });
    (local ? here : elsewhere).push_back(ms(seen.consumed[id] - t0));
  }
  close(to_child[1]);
  int status = 0;
  waitpid(child, &status, 0);
  fmt::print(
      "signal_bench: signal posted -> `signal_consumed` committed (durability full, watch {} "
      "ms)\n",
      watch_ms);
  report("same process (Engine::signal)", here);
  report("second process (Store::post)", elsewhere);
  engine.value().reset();
  std::filesystem::remove_all(dir);
  return 0;
}
