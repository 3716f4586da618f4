// inbox_bench: how long a message takes from its post to the instance
// acting on it (the cancel committed), posted in the same process
// (Engine::cancel: the engine acts at once) and from another store on the
// same database file (as `sagactl cancel` from another process: the
// engine's inbox watch notices it). Prints the median, p90 and max of
// --samples posts each; posts are spread over the watch period (a varying
// pause before each) so that the figure is not in phase with the watch.
//
//   inbox_bench [--samples N] [--watch-ms MS] [--dir DIR]
#include <fmt/format.h>

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
#include "saga/commands.hpp"
#include "saga/engine.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSaga = R"(
saga waits() {
  step nap { do sleep(for: 1h) }
}
)";

struct Ended {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> at;
  size_t sleeping = 0;
};

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void report(const char* what, std::vector<double> v) {
  fmt::print("{}", saga::bench::latency_line(what, std::move(v), "posts"));
}

}  // namespace

int main(int argc, char** argv) {
  saga::bench::LatencyArgs args;
  args.dir = (std::filesystem::temp_directory_path() / "saga-inbox-bench").string();
  const char* usage =
          "usage: inbox_bench [--samples N] [--watch-ms MS] [--dir DIR]\n"
          "  The latency from posting a cancel to the instance's `cancelled` commit, posted\n"
          "  through the engine (same process) and through another store on the same\n"
          "  database (what `sagactl cancel` from another process does). Median, p90, max.";
  if (int exit = saga::bench::parse_latency_args(argc, argv, "inbox_bench", usage, args); exit >= 0) {
    return exit;
  }
  const int samples = args.samples, watch_ms = args.watch_ms;
  const std::string dir = args.dir;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Ended ended;
  saga::EngineOptions options;
  options.database = dir + "/inbox.db";
  options.inbox_watch = std::chrono::milliseconds(watch_ms);
  options.on_event = [&ended](const std::string& id, const saga::HistoryEvent& e) {
    std::lock_guard lock(ended.mu);
    if (e.kind == "cancelled") ended.at[id] = Clock::now();
    if (e.kind == "step_started") ++ended.sleeping;
    ended.cv.notify_all();
  };
  auto engine = saga::Engine::open(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "inbox_bench: %s\n", engine.status().message().c_str());
    return 1;
  }
  auto image = saga::compiler::compile_to_image("waits.saga", kSaga);
  auto hash = engine.value()->load_program(image.value());
  std::vector<std::string> ids;
  for (int i = 0; i < 2 * samples; ++i) {
    auto id = engine.value()->start(hash.value(), "waits", nlohmann::json::object());
    if (!id.ok()) return 1;
    ids.push_back(id.value());
  }
  {
    std::unique_lock lock(ended.mu);
    ended.cv.wait(lock, [&] { return ended.sleeping >= ids.size(); });
  }
  auto other = saga::open_sqlite_store(options.database);
  if (!other.ok()) return 1;
  std::vector<double> here, elsewhere;
  for (int i = 0; i < 2 * samples; ++i) {
    // A pause that moves each post to another point of the watch period.
    std::this_thread::sleep_for(std::chrono::milliseconds((i * 17) % (watch_ms + 1)));
    const std::string& id = ids[i];
    const bool local = i % 2 == 0;
    const Clock::time_point t0 = Clock::now();
    if (local) {
      if (!engine.value()->cancel(id).ok()) return 1;
    } else {
      auto posted =
          saga::post_command(*other.value(), id, {saga::Command::cancel, {}, {}}, "bench-" + id, 0);
      if (!posted.ok()) return 1;
    }
    std::unique_lock lock(ended.mu);
    ended.cv.wait(lock, [&] { return ended.at.count(id) != 0; });
    (local ? here : elsewhere).push_back(ms(ended.at[id] - t0));
  }
  fmt::print("inbox_bench: cancel posted -> `cancelled` committed (durability full, watch {} ms)\n",
             watch_ms);
  report("same process (Engine::cancel)", here);
  report("another store (sagactl cancel)", elsewhere);
  other.value().reset();
  engine.value().reset();
  std::filesystem::remove_all(dir);
  return 0;
}
