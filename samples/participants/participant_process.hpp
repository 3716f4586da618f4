// Starting the sample `participant` server (participant.cpp) as a child
// process and talking to it, for the programs that need real servers on
// 127.0.0.1: the HTTP tests (tests/http), the sagactl end-to-end tests
// (tests/e2e) and the HTTP benchmark (bench/http_bench). ChildProcess is the
// generic part (spawn, first line of stdout, stop, wait); ParticipantProcess
// adds the participant's command line and its GET /stats and POST /control.
// The library (saga_participant_process) knows where the participant binary
// was built. Beast stays in participant_process.cpp, out of this header.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace saga::samples {

// A child process started with posix_spawn. argv[0] is the program's path
// (PATH is not searched). With an empty `log`, the child's stdout is a pipe
// that first_line() reads and its stderr is ours; otherwise its stdout and
// stderr both go to the file `log`, which output() reads. The destructor
// stops the child if it still runs.
class ChildProcess {
 public:
  // Throws std::runtime_error when the program cannot be started.
  explicit ChildProcess(const std::vector<std::string>& argv,
                        const std::filesystem::path& log = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Reads stdout up to its first newline (without it), blocking until the
  // child writes it or closes its stdout, then closes our end of the pipe.
  // Empty when stdout goes to a log file or was read already.
  std::string first_line();

  // What the child wrote to its log file so far.
  std::string output() const;

  // Sends SIGTERM, waits up to `grace` for the child to exit, then sends
  // SIGKILL. Does nothing once the child is stopped.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // Sends SIGKILL at once and reaps the child: a crash, as far as the child
  // can tell.
  void kill();

  // Waits up to `limit` for the child to exit and returns its exit code
  // (128 + the signal when a signal ended it), or -1 when it was still
  // running and had to be killed.
  int wait(std::chrono::milliseconds limit);

  // Runs `argv` to its end (stdout and stderr to `log`, at most `limit`)
  // and returns its exit code as wait() does; its output in *out.
  static int run(const std::vector<std::string>& argv, const std::filesystem::path& log,
                 std::string* out = nullptr,
                 std::chrono::milliseconds limit = std::chrono::seconds(60));

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;  // Our end of the stdout pipe, or -1.
  std::filesystem::path log_;
};

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick,
// released at once; 0 when none could be had): for a server started later
// whose address another process must be given first.
int free_loopback_port();

// A `participant` server in a child process:
//
//   participant --role ROLE --port PORT --db DIR/ROLE.db EXTRA...
//
// The constructor returns once the server printed "listening on
// 127.0.0.1:PORT" (so port 0 gives an ephemeral port, which port() then
// returns) and throws std::runtime_error when it printed something else. The
// destructor stops it as ChildProcess::stop() does.
class ParticipantProcess {
 public:
  ParticipantProcess(const std::string& role, const std::filesystem::path& dir,
                     const std::vector<std::string>& extra = {}, int port = 0);

  // Stops the server (SIGTERM, then SIGKILL after 5 s); its port is free
  // afterwards, so another server may listen on it.
  void stop() { process_.stop(); }

  // Sends SIGTERM and returns at once: the server stops listening, finishes
  // the requests it serves and exits (stop() waits for that).
  void terminate();

  // Sends SIGKILL and reaps the server: a crash in the middle of whatever it
  // was doing (its database survives it, as SQLite's WAL does).
  void kill() { process_.kill(); }

  // The server's process id (for SIGSTOP and SIGCONT), or -1 once stopped.
  pid_t pid() const { return process_.pid(); }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string authority() const { return "127.0.0.1:" + std::to_string(port_); }

  // A blocking request on a connection of its own, outside any client under
  // test. `method` is "GET", "POST", ...; a null `body` sends none. Returns
  // the parsed response body, or a discarded value when it is not JSON.
  nlohmann::json request(std::string_view method, const std::string& target,
                         const nlohmann::json& body = nullptr);

  // GET /stats: calls, effects, calls_by_key, in_flight, handled_us, ...
  nlohmann::json stats() { return request("GET", "/stats"); }
  // POST /control: changes the injected failures and latency at run time.
  void control(const nlohmann::json& change) { request("POST", "/control", change); }
  // The number of calls the server received (GET /stats "calls").
  int64_t calls() { return stats()["calls"].get<int64_t>(); }

 private:
  ChildProcess process_;
  int port_ = 0;
};

}  // namespace saga::samples
