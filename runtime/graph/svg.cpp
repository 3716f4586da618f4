// render_svg(): Graphviz's `dot -Tsvg` on a graph's dot text (saga/graph.hpp).
// The only part of runtime/graph that runs a program. `dot` is looked up on
// PATH here, so that its absence is a clear message instead of an exec
// failure, and started with posix_spawn and an argument vector: no shell
// ever sees the text. The dot text goes through a temporary file (dot reads
// it whole before it writes anything, but a file means no pipe to fill in
// both directions), the SVG comes back on a pipe.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "saga/graph.hpp"

extern char** environ;

namespace saga::graph {

namespace {

// The first executable `name` in the directories of $PATH, or empty.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  size_t begin = 0;
  while (begin <= dirs.size()) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(begin, end - begin);
    if (dir.empty()) dir = ".";
    std::string candidate = std::move(dir);
    candidate += '/';
    candidate += name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    begin = end + 1;
  }
  return {};
}

bool write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Result<std::string> render_svg(const std::string& dot_text) {
  const std::string dot = find_on_path("dot");
  if (dot.empty()) {
    return Status(StatusCode::kNotFound,
                  "SVG needs Graphviz's 'dot' program, which is not on PATH (Debian package "
                  "'graphviz': apt-get install graphviz); --format dot or mermaid need nothing");
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string input = std::string(tmp && *tmp ? tmp : "/tmp") + "/saga-graph-XXXXXX";
  int in_fd = ::mkstemp(input.data());
  if (in_fd < 0) {
    return Status(StatusCode::kIoError,
                  "cannot create a temporary file for dot: " + std::string(std::strerror(errno)));
  }
  bool written = write_all(in_fd, dot_text);
  ::close(in_fd);
  if (!written) {
    ::unlink(input.c_str());
    return Status(StatusCode::kIoError, "cannot write the temporary file for dot: " + input);
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    ::unlink(input.c_str());
    return Status(StatusCode::kIoError,
                  "cannot create a pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  std::string arg0 = "dot", arg1 = "-Tsvg";
  char* argv[] = {arg0.data(), arg1.data(), input.data(), nullptr};
  pid_t pid = 0;
  int err = ::posix_spawn(&pid, dot.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (err != 0) {
    ::close(pipe_fds[0]);
    ::unlink(input.c_str());
    return Status(StatusCode::kIoError, "cannot run " + dot + ": " + std::strerror(err));
  }
  std::string svg;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    svg.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::unlink(input.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status(StatusCode::kInternal,
                  WIFEXITED(status)
                      ? "dot failed with exit status " + std::to_string(WEXITSTATUS(status))
                      : "dot was killed by signal " + std::to_string(WTERMSIG(status)));
  }
  return svg;
}

}  // namespace saga::graph
