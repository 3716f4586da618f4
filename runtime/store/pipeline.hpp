// The group-commit pipeline shared by every store (SQLite, PostgreSQL): the
// queue of submitted transitions, the writer thread that commits them in
// batches, the optional syncer thread that makes committed batches durable,
// and the ordered calls of their completions.
//
// Invariant: every submitted transition's `done` runs exactly once, after its
// batch is durable (Ok or its own rejection) or has failed as a whole (the
// batch's error; the store wrote nothing of it); dones never run two at once
// and always in submission order. A store supplies only the two operations of
// CommitBackend; it never sees the queue or the threads.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "saga/store.hpp"

namespace saga::store {

// A queued transition and its completion.
struct PendingCommit {
  Transition transition;
  Store::CommitDone done;
};

// What a store supplies to the pipeline. Both are called on the pipeline's
// threads only, commit_batch on the writer, make_durable on the syncer.
class CommitBackend {
 public:
  virtual ~CommitBackend() = default;
  // Commits `batch` in one transaction. Returns Ok when it committed; then
  // outcome[i] (already sized, all Ok) is Ok or the error of a transition that
  // could not apply on its own and wrote nothing. Returns the error when the
  // batch failed as a whole and nothing of it was written. With `durable`
  // the commit itself must be durable; otherwise make_durable() follows
  // before any done of the batch runs.
  virtual Status commit_batch(std::vector<PendingCommit>& batch, std::vector<Status>& outcome,
                              bool durable) = 0;
  // Makes every batch committed so far (with durable = false) durable.
  virtual Status make_durable() = 0;
};

// Counters since the pipeline started; see SqliteStoreStats.
struct PipelineStats {
  uint64_t commits = 0;
  uint64_t failed_commits = 0;
  uint64_t transitions_committed = 0;
  uint64_t transitions_failed = 0;
  uint64_t largest_batch = 0;
};

struct PipelineOptions {
  size_t max_batch = 4096;  // Transitions in one commit at most (0 means 1).
  // A syncer thread makes batches durable (make_durable), so that the next
  // batch's SQL overlaps the previous batch's sync. Without it every batch
  // is committed with durable = true and the writer calls the dones.
  bool syncer = false;
  // With a syncer: a batch this small, with nothing else queued and the
  // syncer idle, commits durably and the writer calls its dones itself (no
  // hand-off: one instance running alone gets the lowest latency).
  size_t self_sync_max_batch = 4;
  // How long the writer polls for more work before it sleeps.
  int spin_micros = 60;
  // Thread names (at most 15 characters) for top -H, perf and gdb.
  const char* writer_name = "saga-store-wr";
  const char* syncer_name = "saga-store-sy";
  // StoreOptions::on_commit: told the size and duration of each commit that succeeded.
  std::function<void(size_t transitions, std::chrono::nanoseconds took)> on_commit;
};

class CommitPipeline {
 public:
  CommitPipeline(CommitBackend& backend, PipelineOptions options);
  ~CommitPipeline();  // Calls stop().
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Starts the threads. Call once, after the backend can commit.
  void start();
  // Commits everything queued (dones may submit more: those too), then joins
  // the threads. Idempotent. The backend must outlive this call.
  void stop();

  // Thread-safe; never blocks on I/O. The transition is moved into the queue.
  void submit(Transition transition, Store::CommitDone done);
  // Blocks until every transition submitted before the call has its done
  // called. Transitions submitted meanwhile are not waited for.
  void flush();

  PipelineStats stats() const;

 private:
  // A batch the writer has committed (or failed), waiting for its dones.
  struct Group {
    std::vector<PendingCommit> items;
    std::vector<Status> outcome;  // Per item, when status is Ok.
    Status status;                // Of the batch as a whole.
  };

  void writer_loop();
  void syncer_loop();
  // Blocks until the syncer has no batch left (returns at once without one).
  void wait_for_syncer();
  // Makes `groups` durable when needed, then calls their dones in order and
  // counts them as finished.
  void finish(std::vector<Group>& groups, bool needs_sync);

  CommitBackend& backend_;
  PipelineOptions options_;

  // The queue. submitted_ and finished_ count transitions; flush() waits for
  // finished_ to reach the submitted_ it saw.
  std::mutex mu_;
  std::condition_variable work_cv_;     // Writer waits for work.
  std::condition_variable flushed_cv_;  // flush() waits for the writer.
  std::vector<PendingCommit> queue_;
  // submitted_, readable without mu_: the writer polls it while it spins, so
  // that a submit never waits for the lock behind the poll.
  std::atomic<uint64_t> submitted_seen_{0};
  // Emptied batch vectors, kept for their capacity: the queue fills one
  // without reallocating, and no batch allocates in steady state.
  static constexpr size_t kMaxSpare = 4;
  std::vector<std::vector<PendingCommit>> spare_;
  uint64_t submitted_ = 0;
  uint64_t finished_ = 0;
  bool stopping_ = false;
  bool writer_waiting_ = false;  // Only then does submit() need to notify.
  std::thread writer_;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> failed_commits_{0};
  std::atomic<uint64_t> transitions_committed_{0};
  std::atomic<uint64_t> transitions_failed_{0};
  std::atomic<uint64_t> largest_batch_{0};

  // The syncer. sync_busy_ is set while a thread (the syncer, or the writer
  // syncing by itself) calls dones: dones never run concurrently and always
  // in submission order.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::vector<Group> sync_queue_;  // Guarded by sync_mu_.
  bool sync_busy_ = false;         // Guarded by sync_mu_.
  bool sync_stopping_ = false;     // Guarded by sync_mu_.
  std::thread syncer_;
};

}  // namespace saga::store
