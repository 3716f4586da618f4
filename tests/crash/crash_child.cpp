// The child process of the order crash test (order_crash_test.cpp): a host
// application like samples/shop that the test kills with SIGKILL at random
// instants and starts again, many times, on the same files.
//
//   crash_child DB LEDGER ORDERS CONCURRENCY SLOW_MS [SOURCE SAGA]
//
// Each run: opens the engine on DB, compiles samples/order.saga (or SOURCE,
// whose saga SAGA takes the same input and calls the same actions), registers
// the shop participants (ledger LEDGER, failures from scenario.hpp, each call
// answered after up to SLOW_MS ms), then
//   1. enqueues (Engine::enqueue, durable) every order "order-0001" ...
//      "order-ORDERS" that the database does not hold yet, so the database
//      alone says which orders were started;
//   2. runs every unfinished instance, CONCURRENCY at a time: Engine::resume(id)
//      takes up a pending one from its start and an interrupted one from its
//      last checkpoint; Engine::wait(id) waits for its end.
// Exit status: 0 when every instance ended terminal (completed, compensated,
// failed), 1 when one is stuck or did not end within 60 s, 2 on setup errors.
// Progress lines go to stdout (the test keeps them in a log per run).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "compiler/compile.hpp"
#include "saga/engine.hpp"
#include "samples/shop/participants.hpp"
#include "tests/crash/scenario.hpp"

namespace {

using json = nlohmann::json;

saga::Result<std::string> load_order_saga(saga::Engine& engine, const std::string& source) {
  auto image = saga::compiler::compile_file_to_image(source);
  if (!image.ok()) return image.status();
  return engine.load_program(image.value());
}

int run(const std::string& db, const std::string& ledger, int orders, int concurrency, int slow_ms,
        const std::string& source, const std::string& saga_name) {
  saga::EngineOptions options;
  options.database = db;
  options.durability = saga::Durability::kFull;
  options.threads = 2;
  // Undos never fail in this scenario; short backoffs keep a mistake quick.
  options.compensation.initial_ms = 20;
  options.compensation.max_ms = 500;
  auto opened = saga::Engine::open(options);
  if (!opened.ok()) {
    std::printf("child: cannot open %s: %s\n", db.c_str(), opened.status().message().c_str());
    return 2;
  }
  std::unique_ptr<saga::Engine> engine = std::move(opened).value();
  auto hash = load_order_saga(*engine, source);
  if (!hash.ok()) {
    std::printf("child: %s\n", hash.status().message().c_str());
    return 2;
  }
  auto participants = std::make_unique<shop::Participants>(shop::ParticipantOptions{
      .ledger_path = ledger, .slow_ms = slow_ms, .seed = 7, .planner = crash::planner()});
  participants->register_actions(*engine);

  // 1. Enqueue the orders the database does not hold yet.
  auto existing = engine->store().list_instances(std::nullopt, 1'000'000);
  if (!existing.ok()) {
    std::printf("child: %s\n", existing.status().message().c_str());
    return 2;
  }
  std::set<int> known;
  for (const saga::InstanceRecord& r : existing.value()) {
    known.insert(crash::order_number(json::parse(r.input_json).value("order_id", "")));
  }
  int enqueued = 0;
  for (int n = 1; n <= orders; ++n) {
    if (known.count(n)) continue;
    auto id = engine->enqueue(hash.value(), saga_name, crash::order_input(n));
    if (!id.ok()) {
      std::printf("child: cannot enqueue order %d: %s\n", n, id.status().message().c_str());
      return 2;
    }
    ++enqueued;
  }

  // 2. Run every unfinished instance, `concurrency` at a time.
  auto unfinished = engine->store().list_unfinished();
  if (!unfinished.ok()) {
    std::printf("child: %s\n", unfinished.status().message().c_str());
    return 2;
  }
  std::vector<saga::InstanceRecord> todo = std::move(unfinished).value();
  size_t pending = std::count_if(todo.begin(), todo.end(), [](const saga::InstanceRecord& r) {
    return r.status == saga::InstanceStatus::kPending;
  });
  std::printf("child: enqueued %d; unfinished %zu: %zu pending, %zu interrupted mid-saga\n",
              enqueued, todo.size(), pending, todo.size() - pending);
  std::fflush(stdout);

  std::atomic<size_t> next{0}, taken{0}, ended{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&] {
      for (size_t i; (i = next++) < todo.size();) {
        const std::string& id = todo[i].id;
        auto resumed = engine->resume(id);
        if (!resumed.ok()) {
          std::printf("child: cannot resume %s: %s\n", id.c_str(),
                      resumed.status().message().c_str());
          ok = false;
          continue;
        }
        taken += resumed.value();
        auto info = engine->wait(id, std::chrono::seconds(60));
        if (!info.ok() || !saga::is_terminal(info->status)) {
          std::printf("child: instance %s did not end: %s\n", id.c_str(),
                      info.ok() ? saga::to_string(info->status) : info.status().message().c_str());
          ok = false;
        }
        ++ended;
      }
    });
  }
  for (auto& t : workers) t.join();
  participants->stop();  // Before the engine goes away.
  auto stats = participants->ledger().stats();
  std::printf("child: done: took up %zu, %zu ended; ledger: %lld deliveries, %lld deduplicated\n",
              taken.load(), ended.load(), static_cast<long long>(stats.deliveries),
              static_cast<long long>(stats.deduplicated));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6 && argc != 8) {
    std::fprintf(stderr, "usage: crash_child DB LEDGER ORDERS CONCURRENCY SLOW_MS [SOURCE SAGA]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string source = argc == 8 ? argv[6] : SAGA_SOURCE_DIR "/samples/order.saga";
  std::string saga_name = argc == 8 ? argv[7] : "order_fulfillment";
  return run(argv[1], argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]), source,
             saga_name);
}
