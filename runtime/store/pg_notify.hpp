// Work notifications of the PostgreSQL store (Store::notifies): a commit
// that makes work for engines (a new instance free to claim, an inbox
// message) runs NOTIFY (kNotifyWorkSql) in its own transaction, so the
// notification is sent when, and only if, it commits. A WorkListener hears
// them: one more connection that LISTENs on the channel, and a thread that
// waits on its socket and counts what arrives.
//
// Invariant: a notification sent after wait() began makes it return. The
// count also goes up each time the listener (re)connects, because what was
// sent while it was not listening is lost: its callers then look anyway.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace saga::store::pg {

// The channel is saga_work. What a commit runs to notify, and what the
// listener runs.
inline constexpr const char* kNotifyWorkSql = "SELECT pg_notify('saga_work', '')";
inline constexpr const char* kListenWorkSql = "LISTEN saga_work";

class WorkListener {
 public:
  // Starts listening on `url` in a thread of its own; a server that cannot be
  // reached is tried again every half second.
  WorkListener(std::string url, int connect_timeout_s);
  ~WorkListener();
  WorkListener(const WorkListener&) = delete;
  WorkListener& operator=(const WorkListener&) = delete;

  uint64_t count();
  // Returns once count() differs from `seen` or `timeout` passed, with the count.
  uint64_t wait(uint64_t seen, std::chrono::milliseconds timeout);

 private:
  void run();
  void bump();
  // Waits up to `pause` unless stopped; false once stopped.
  bool pause(std::chrono::milliseconds pause);

  const std::string url_;
  const int connect_timeout_s_;
  int wake_fd_ = -1;  // An eventfd: ends the thread's poll() when stopping.
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t count_ = 0;  // Guarded by mu_.
  bool stop_ = false;   // Guarded by mu_.
  std::thread thread_;
};

}  // namespace saga::store::pg
