// ChildProcess and ParticipantProcess (participant_process.hpp): posix_spawn,
// signals and waitpid for the child, and Beast for the blocking requests to
// the participant. SAGA_PARTICIPANT, the path of the built `participant`, is
// defined by samples/participants/CMakeLists.txt.
#include "samples/participants/participant_process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "runtime/http/beast.hpp"

extern char** environ;

namespace saga::samples {

namespace bhttp = boost::beast::http;
using json = nlohmann::json;
using namespace std::chrono_literals;

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log)
    : log_(log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int out[2] = {-1, -1};
  if (log.empty()) {
    if (::pipe2(out, O_CLOEXEC) != 0) {
      posix_spawn_file_actions_destroy(&actions);
      throw std::runtime_error("cannot create a pipe for " + argv.at(0));
    }
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (out[1] >= 0) ::close(out[1]);
  stdout_ = out[0];
  if (rc != 0) {
    pid_ = -1;
    if (stdout_ >= 0) ::close(stdout_);
    stdout_ = -1;
    throw std::runtime_error("cannot start " + argv.at(0));
  }
}

ChildProcess::~ChildProcess() {
  stop();
  if (stdout_ >= 0) ::close(stdout_);
}

std::string ChildProcess::first_line() {
  std::string line;
  if (stdout_ < 0) return line;
  char c;
  while (::read(stdout_, &c, 1) == 1 && c != '\n') line += c;
  ::close(stdout_);
  stdout_ = -1;
  return line;
}

std::string ChildProcess::output() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  auto until = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  kill();
}

void ChildProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int ChildProcess::wait(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return -1;
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(5ms);
  }
  kill();
  return -1;
}

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

int ChildProcess::run(const std::vector<std::string>& argv, const std::filesystem::path& log,
                      std::string* out, std::chrono::milliseconds limit) {
  ChildProcess p(argv, log);
  const int code = p.wait(limit);
  if (out) *out = p.output();
  return code;
}

namespace {

// The participant's command line: role, port, its database in `dir`, then
// `extra`.
std::vector<std::string> participant_argv(const std::string& role, const std::filesystem::path& dir,
                                          const std::vector<std::string>& extra, int port) {
  std::vector<std::string> argv = {SAGA_PARTICIPANT,
                                   "--role",
                                   role,
                                   "--port",
                                   std::to_string(port),
                                   "--db",
                                   (dir / (role + ".db")).string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

}  // namespace

ParticipantProcess::ParticipantProcess(const std::string& role, const std::filesystem::path& dir,
                                       const std::vector<std::string>& extra, int port)
    : process_(participant_argv(role, dir, extra, port)) {
  const std::string prefix = "listening on 127.0.0.1:";
  std::string line = process_.first_line();
  if (line.rfind(prefix, 0) != 0) {
    throw std::runtime_error("participant --role " + role + " did not start: " + line);
  }
  port_ = std::atoi(line.c_str() + prefix.size());
}

void ParticipantProcess::terminate() {
  if (process_.pid() > 0) ::kill(process_.pid(), SIGTERM);
}

json ParticipantProcess::request(std::string_view method, const std::string& target,
                                 const json& body) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)});
  bhttp::verb verb = bhttp::string_to_verb(boost::beast::string_view(method.data(), method.size()));
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, authority());
  if (!body.is_null()) req.body() = body.dump();
  req.prepare_payload();
  bhttp::write(socket, req);
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(socket, buffer, res);
  return json::parse(res.body(), nullptr, false);
}

}  // namespace saga::samples
