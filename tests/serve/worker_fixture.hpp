// A database holding completed, compensated, stuck and running instances,
// made by the real engine (sagactl run/start on the samples and the CLI
// tests' sagas), and a `sagactl worker --listen 127.0.0.1:0` serving it:
// what the listener test (tests/serve) and the browser test (tests/browser)
// look at. The worker's port is read from its log ("listening on ...").
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "samples/participants/participant_process.hpp"
#include "tests/support/eventually.hpp"

namespace saga::test {

namespace fs = std::filesystem;

// The input of the completed instance: text a careless page would run.
inline constexpr const char* kScriptName = "<script>window.sagaPwned=1</script>";

class WorkerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("saga-web-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "sagas.db").string();
  }
  void TearDown() override {
    worker_.reset();
    fs::remove_all(dir_);
  }

  // Runs sagactl to its end: its exit code, and its stdout+stderr in *out.
  int sagactl(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::vector<std::string> argv = {SAGACTL};
    argv.insert(argv.end(), args.begin(), args.end());
    return samples::ChildProcess::run(argv, dir_ / ("sagactl-" + std::to_string(++runs_) + ".log"),
                                      out);
  }
  // Only the stdout of a sagactl run.
  std::string sagactl_stdout(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/bin/sh", "-c", ""};
    std::string cmd = std::string("'") + SAGACTL + "'";
    for (const std::string& a : args) cmd += " '" + a + "'";
    argv[2] = cmd + " 2>/dev/null";
    const fs::path log = dir_ / ("stdout-" + std::to_string(++runs_) + ".log");
    samples::ChildProcess p(argv, log);
    p.wait(std::chrono::seconds(60));
    return p.output();
  }

  // The four instances; their ids in completed_, compensated_, stuck_, running_.
  void make_instances() {
    const std::string src = SAGA_SOURCE_DIR;
    ASSERT_EQ(sagactl({"run", src + "/samples/hello.saga", "--db", db_, "-q", "--input",
                       std::string(R"({"name": ")") + kScriptName + R"(", "times": 1})"}),
              0);
    ASSERT_EQ(sagactl({"run", src + "/tests/cli/fails.saga", "--db", db_, "-q", "--input",
                       R"({"x": "q"})"}),
              3);
    ASSERT_EQ(sagactl({"run", src + "/tests/cli/stuck.saga", "--db", db_, "-q", "--input",
                       R"({"n": 1})"}),
              4);
    std::string out;
    ASSERT_EQ(sagactl({"start", src + "/tests/serve/web.saga", "--db", db_, "--input",
                       R"({"name": "long"})"},
                      &out),
              0);
    running_ = out.substr(0, out.find('\n'));
    auto list = nlohmann::json::parse(sagactl_stdout({"ls", "--db", db_, "--json"}));
    for (const auto& r : list) {
      const std::string status = r["status"];
      if (status == "completed") completed_ = r["id"];
      if (status == "compensated") compensated_ = r["id"];
      if (status == "stuck") stuck_ = r["id"];
    }
    ASSERT_FALSE(completed_.empty() || compensated_.empty() || stuck_.empty() || running_.empty());
  }

  // Starts the worker with `extra` options; returns once it listens.
  void start_worker(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {SAGACTL, "worker", "--db", db_, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    worker_log_ = dir_ / "worker.log";
    worker_ = std::make_unique<samples::ChildProcess>(argv, worker_log_);
    const std::string marker = "listening on http://127.0.0.1:";
    ASSERT_TRUE(eventually([&] { return worker_->output().find(marker) != std::string::npos; }))
        << worker_->output();
    const std::string log = worker_->output();
    port_ = std::stoi(log.substr(log.find(marker) + marker.size()));
  }

  // The status of an instance as the store has it.
  std::string status_of(const std::string& id) {
    auto view =
        nlohmann::json::parse(sagactl_stdout({"show", id, "--db", db_, "--json"}), nullptr, false);
    return view.is_object() ? view.value("status", "") : "";
  }

  fs::path dir_;
  std::string db_;
  int runs_ = 0;
  std::unique_ptr<samples::ChildProcess> worker_;
  fs::path worker_log_;
  int port_ = 0;
  std::string completed_, compensated_, stuck_, running_;
};

}  // namespace saga::test
