// HTTP benchmark: durable sagas per second for the order saga
// (samples/order.saga, every service bound to a url) against three local
// `participant` processes (samples/participants, latency 0) over loopback,
// at concurrency 1 and 256 and both durability levels; and the runtime's own
// overhead per HTTP step:
//
//   overhead/step = (mean saga latency - mean server handling time per saga)
//                   / HTTP steps per saga
//
// where server handling time is what the participants report in
// GET /stats "handled_us" (from a parsed request to its response, SQLite
// included). The rest is the engine (interpreter, checkpoints, commits),
// the HTTP client, loopback and both sides' HTTP parsing. At concurrency 1
// this is the cost of one step; at 256 it also holds queueing. Every figure
// is the median of --runs runs, each on a fresh engine database.
//
//   build/bench/http_bench [--n 2000] [--n1 200] [--conc 1,256]
//                          [--durability normal,full] [--runs 3]
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/allocator.hpp"
#include "bench/stats.hpp"
#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "saga/http.hpp"
#include "samples/participants/participant_process.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Participant = saga::samples::ParticipantProcess;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int n = 2000;  // Sagas per run at concurrency > 1.
  int n1 = 200;  // Sagas per run at concurrency 1.
  std::vector<int> conc = {1, 256};
  std::vector<std::string> durability = {"normal", "full"};
  int runs = 3;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

// The saga is samples/order.saga as it is; its three services are bound to
// the participants with EngineOptions::service_urls (shipping, declared
// without a url, too), so each saga makes three HTTP steps: reserve, charge,
// ship.
constexpr int kSteps = 3;

struct Figures {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double overhead_us = 0;
  double server_us = 0;  // Server handling time per HTTP step.
  int failed = 0;
};

int64_t handled_us(std::vector<std::unique_ptr<Participant>>& servers) {
  int64_t sum = 0;
  for (auto& s : servers) sum += s->stats()["handled_us"].get<int64_t>();
  return sum;
}

Figures run_once(std::vector<std::unique_ptr<Participant>>& servers, const fs::path& dir,
                 saga::Durability durability, int conc, int n) {
  fs::remove_all(dir / "sagas.db");
  fs::remove_all(dir / "sagas.db-wal");
  fs::remove_all(dir / "sagas.db-shm");
  auto http = saga::HttpClient::create({});
  saga::EngineOptions options;
  options.database = (dir / "sagas.db").string();
  options.durability = durability;
  options.service_transport = http->transport();
  options.service_urls = {{"inventory", servers[0]->url()},
                          {"payment", servers[1]->url()},
                          {"shipping", servers[2]->url()}};
  auto engine = std::move(saga::Engine::open(options)).value();
  auto image =
      saga::compiler::compile_file_to_image(std::string(SAGA_SOURCE_DIR) + "/samples/order.saga");
  if (!image.ok()) throw std::runtime_error(image.status().message());
  std::string hash = engine->load_program(image.value()).value();

  std::mutex mu;
  std::condition_variable cv;
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(n));
  int started = 0, finished = 0, failed = 0;
  std::function<void()> start_one;
  start_one = [&] {
    int i;
    {
      std::lock_guard lock(mu);
      if (started >= n) return;
      i = started++;
    }
    json input = {{"order_id", fmt::format("o-{}", i)},
                  {"customer", "c-1"},
                  {"amount", 150},
                  {"items", {"a", "b"}}};
    auto t0 = Clock::now();
    auto id = engine->start_async(
        hash, "order_fulfillment", input, [&, t0](const saga::InstanceInfo& info) {
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          // The next saga starts first: once this
          // one is counted, run_once may return.
          start_one();
          std::lock_guard lock(mu);
          latencies.push_back(ms);
          ++finished;
          failed += info.status != saga::InstanceStatus::kCompleted;
          cv.notify_all();
        });
    if (!id.ok()) throw std::runtime_error(id.status().message());
  };
  int64_t server_before = handled_us(servers);
  auto begin = Clock::now();
  for (int k = 0; k < conc; ++k) start_one();
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == n; });
  }
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  int64_t server_us = handled_us(servers) - server_before;
  http->shutdown();
  engine.reset();

  Figures f;
  f.failed = failed;
  f.per_second = n / seconds;
  std::sort(latencies.begin(), latencies.end());
  f.p50_ms = latencies[latencies.size() / 2];
  f.p99_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  double mean_ms = 0;
  for (double l : latencies) mean_ms += l;
  mean_ms /= static_cast<double>(latencies.size());
  double server_per_saga_us = static_cast<double>(server_us) / n;
  f.server_us = server_per_saga_us / kSteps;
  f.overhead_us = (mean_ms * 1000 - server_per_saga_us) / kSteps;
  return f;
}

using saga::bench::median;

}  // namespace

int main(int argc, char** argv) {
  Options o;
  auto usage = [] {
    std::printf(
        "usage: http_bench [flags]: the order saga over HTTP against 3 participants on 127.0.0.1\n"
        "  --n N            sagas per run at concurrency > 1\n"
        "  --n1 N           sagas per run one at a time\n"
        "  --conc A,B       concurrencies\n"
        "  --durability D   full, normal\n"
        "  --runs N         runs per figure; the median is printed\n");
  };
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage();
      return 0;
    }
  }
  if (argc % 2 == 0) {
    usage();
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--n") {
      o.n = std::stoi(value);
    } else if (flag == "--n1") {
      o.n1 = std::stoi(value);
    } else if (flag == "--conc") {
      o.conc.clear();
      for (auto& c : split(value)) o.conc.push_back(std::stoi(c));
    } else if (flag == "--durability") {
      o.durability = split(value);
    } else if (flag == "--runs") {
      o.runs = std::stoi(value);
    } else {
      std::fprintf(stderr, "unknown option %s\n", flag.c_str());
      usage();
      return 2;
    }
  }
  fs::path dir = fs::temp_directory_path() / fmt::format("saga-http-bench-{}", ::getpid());
  fs::create_directories(dir);
  std::vector<std::unique_ptr<Participant>> servers;
  for (const char* role : {"inventory", "payment", "shipping"}) {
    servers.push_back(std::make_unique<Participant>(role, dir));
  }
  fmt::print(
      "http_bench: order saga over HTTP, 3 participants on 127.0.0.1 (latency 0), {} HTTP steps "
      "per saga, median of {} runs; {}\n",
      kSteps, o.runs, saga::bench::allocator_name());
  fmt::print("{:<11} {:>5} {:>6} {:>9} {:>8} {:>8} {:>16} {:>15}\n", "durability", "conc", "sagas",
             "sagas/s", "p50 ms", "p99 ms", "overhead/step us", "server/step us");
  for (const std::string& d : o.durability) {
    saga::Durability durability = d == "full" ? saga::Durability::kFull : saga::Durability::kNormal;
    for (int conc : o.conc) {
      int n = conc == 1 ? o.n1 : o.n;
      std::vector<double> rate, p50, p99, overhead, server;
      int failed = 0;
      for (int r = 0; r < o.runs; ++r) {
        Figures f = run_once(servers, dir, durability, conc, n);
        rate.push_back(f.per_second);
        p50.push_back(f.p50_ms);
        p99.push_back(f.p99_ms);
        overhead.push_back(f.overhead_us);
        server.push_back(f.server_us);
        failed += f.failed;
      }
      fmt::print("{:<11} {:>5} {:>6} {:>9.0f} {:>8.2f} {:>8.2f} {:>16.0f} {:>15.0f}{}\n", d, conc,
                 n, median(rate), median(p50), median(p99), median(overhead), median(server),
                 failed ? fmt::format("  ({} sagas did not complete)", failed) : "");
      std::fflush(stdout);
    }
  }
  servers.clear();
  fs::remove_all(dir);
  return 0;
}
