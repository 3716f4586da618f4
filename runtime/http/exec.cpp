// The standard library's `exec` action (saga/http.hpp, register_exec_action):
// runs a program with posix_spawnp, never through a shell, on a thread of its
// own so that no engine thread waits for the child. The child gets the
// arguments as given, an empty signal mask, default SIGPIPE handling, no file
// descriptors beyond 0, 1 and 2, and the process's environment and working
// directory. stdin is written and stdout/stderr are read together with
// poll(), so a child that writes a lot before reading cannot deadlock us.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "runtime/value/utf8.hpp"
#include "saga/http.hpp"

extern char** environ;

namespace saga {
namespace {

// Output kept per stream; the rest is read and dropped so the child can finish.
constexpr size_t kMaxOutput = 8u << 20;

struct Pipe {
  int fd[2] = {-1, -1};
  bool open() { return ::pipe2(fd, O_CLOEXEC) == 0; }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
  ~Pipe() {
    close_end(0);
    close_end(1);
  }
};

// Runs the program to the end. Throws ActionError for a program that cannot
// be started; returns {exit, stdout, stderr} otherwise.
nlohmann::json run_child(const std::string& cmd, const std::vector<std::string>& args,
                         const std::string& input) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(cmd.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  Pipe in, out, err;
  if (!in.open() || !out.open() || !err.open()) {
    throw ActionError("error", fmt::format("exec: cannot create pipes: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe_only);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cmd.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw ActionError("rejected", fmt::format("exec: cannot run '{}': {}", cmd, std::strerror(rc)));
  }
  in.close_end(0);
  out.close_end(1);
  err.close_end(1);

  // Feed stdin and drain both outputs until all three are closed.
  std::string captured[2];
  size_t written = 0;
  if (input.empty()) in.close_end(1);
  ::fcntl(in.fd[1], F_SETFL, O_NONBLOCK);
  while (in.fd[1] >= 0 || out.fd[0] >= 0 || err.fd[0] >= 0) {
    pollfd fds[3] = {{in.fd[1], POLLOUT, 0}, {out.fd[0], POLLIN, 0}, {err.fd[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in.fd[1] >= 0 && fds[0].revents) {
      ssize_t n = ::write(in.fd[1], input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      // EPIPE: the child closed its stdin; the rest of the input is dropped.
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        in.close_end(1);
      }
    }
    Pipe* outputs[2] = {&out, &err};
    for (int k = 0; k < 2; ++k) {
      int& fd = outputs[k]->fd[0];
      if (fd < 0 || !fds[k + 1].revents) continue;
      char buf[65536];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        size_t room = kMaxOutput - std::min(kMaxOutput, captured[k].size());
        captured[k].append(buf, std::min(room, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        outputs[k]->close_end(0);
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                  : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                        : -1;
  return {{"exit", exit_code},
          {"stdout", scrub_utf8(captured[0])},
          {"stderr", scrub_utf8(captured[1])}};
}

}  // namespace

void register_exec_action(Engine& engine, bool allowed) {
  engine.register_async_action("exec", [allowed](const ActionCall& call, Completion done) {
    if (!allowed) {
      return done.fail("rejected", "exec is disabled: start the run with --allow-exec");
    }
    const nlohmann::json& a = call.args;
    if (!a.is_object() || !a.contains("cmd") || !a["cmd"].is_string() ||
        a["cmd"].get<std::string>().empty()) {
      return done.fail("rejected", "exec: 'cmd' must be a non-empty string");
    }
    std::vector<std::string> args;
    if (a.contains("args") && !a["args"].is_null()) {
      if (!a["args"].is_array()) return done.fail("rejected", "exec: 'args' must be a list");
      for (const auto& v : a["args"])
        args.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    }
    std::string input;
    if (a.contains("stdin") && !a["stdin"].is_null()) {
      input = a["stdin"].is_string() ? a["stdin"].get<std::string>() : a["stdin"].dump();
    }
    for (const std::string& s : args) {
      if (s.find('\0') != std::string::npos) {
        return done.fail("rejected", "exec: arguments cannot contain NUL bytes");
      }
    }
    std::string cmd = a["cmd"].get<std::string>();
    // The child runs on a thread of its own. SIGPIPE is blocked on it, so
    // writing to a child that closed its stdin is an error, not a signal
    // that kills the process (a thread-directed signal, dropped with the
    // thread).
    std::thread([cmd = std::move(cmd), args = std::move(args), input = std::move(input), done] {
      sigset_t pipe_only;
      sigemptyset(&pipe_only);
      sigaddset(&pipe_only, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
      try {
        done.succeed(run_child(cmd, args, input));
      } catch (const ActionError& e) {
        done.fail(e.error_class(), e.what());
      } catch (const std::exception& e) {
        done.fail("error", fmt::format("exec: {}", e.what()));
      }
    }).detach();
  });
}

}  // namespace saga
