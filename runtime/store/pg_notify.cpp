// The listener of work notifications (pg_notify.hpp).
#include "runtime/store/pg_notify.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/store/pg_conn.hpp"

namespace saga::store::pg {

WorkListener::WorkListener(std::string url, int connect_timeout_s)
    : url_(std::move(url)), connect_timeout_s_(connect_timeout_s) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "saga-pg-listen");
}

WorkListener::~WorkListener() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

uint64_t WorkListener::count() {
  std::lock_guard lock(mu_);
  return count_;
}

uint64_t WorkListener::wait(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return count_ != seen || stop_; });
  return count_;
}

void WorkListener::bump() {
  {
    std::lock_guard lock(mu_);
    ++count_;
  }
  cv_.notify_all();
}

bool WorkListener::pause(std::chrono::milliseconds pause) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, pause, [&] { return stop_; });
  return !stop_;
}

void WorkListener::run() {
  Connection conn;
  bool listening = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    if (!listening) {
      Status s = conn.connect(url_, connect_timeout_s_);
      if (s.ok()) s = conn.exec_sql(kListenWorkSql, "listening for work");
      if (!s.ok()) {
        if (!pause(std::chrono::milliseconds(500))) return;
        continue;
      }
      listening = true;
      bump();  // What was sent before is lost: look anyway.
    }
    PGconn* c = conn.get();
    pollfd fds[2] = {{PQsocket(c), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 2, 1000);
    if (ready < 0) continue;            // EINTR.
    if (fds[1].revents != 0) continue;  // Stopping: seen at the top.
    if (fds[0].revents == 0) continue;
    bool heard = false;
    const bool read = PQconsumeInput(c) == 1;
    while (PGnotify* n = PQnotifies(c)) {
      heard = true;
      PQfreemem(n);
    }
    if (heard) bump();
    if (!read || PQstatus(c) == CONNECTION_BAD) {
      listening = false;  // A server restart: connect again.
      if (!pause(std::chrono::milliseconds(100))) return;
    }
  }
}

}  // namespace saga::store::pg
