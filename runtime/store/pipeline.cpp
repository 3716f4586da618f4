// The group-commit pipeline (pipeline.hpp), moved out of the SQLite store so
// that every store shares it. The figures quoted here were measured with the
// SQLite store (docs/store.md, "Group commit").
//
// * submit() appends to a queue (a mutex and a condition variable: profiles
//   show the lock at about 1% of the writer's time, against about 8 us of
//   SQLite work per transition, so a lock-free queue would not pay) and the
//   writer commits everything queued, up to max_batch transitions, in one
//   backend transaction. While one batch commits, the next accumulates: that
//   is the group commit.
// * With a syncer, the writer commits without waiting for durability and
//   hands the batch over; the syncer makes it durable (one sync covers every
//   batch committed before it began) and only then calls the batch's dones.
//   When nothing else is queued (one instance running alone) the writer
//   commits durably and calls the dones itself, as a hand-off would only add
//   latency.
#include "runtime/store/pipeline.hpp"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <utility>

namespace saga::store {

CommitPipeline::CommitPipeline(CommitBackend& backend, PipelineOptions options)
    : backend_(backend), options_(options) {
  if (options_.max_batch == 0) options_.max_batch = 1;
}

CommitPipeline::~CommitPipeline() {
  stop();
}

void CommitPipeline::start() {
  if (options_.syncer) {
    syncer_ = std::thread([this] { syncer_loop(); });
    pthread_setname_np(syncer_.native_handle(), options_.syncer_name);
  }
  writer_ = std::thread([this] { writer_loop(); });
  pthread_setname_np(writer_.native_handle(), options_.writer_name);
}

void CommitPipeline::stop() {
  if (writer_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_one();
    writer_.join();  // The writer drains the queue before it returns.
  }
  if (syncer_.joinable()) {
    {
      std::lock_guard lock(sync_mu_);
      sync_stopping_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();  // The syncer finishes every handed-over batch first.
  }
}

void CommitPipeline::submit(Transition transition, Store::CommitDone done) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(PendingCommit{std::move(transition), std::move(done)});
    ++submitted_;
    submitted_seen_.store(submitted_, std::memory_order_release);
    wake = writer_waiting_;
    writer_waiting_ = false;
  }
  if (wake) work_cv_.notify_one();
}

void CommitPipeline::flush() {
  std::unique_lock lock(mu_);
  const uint64_t target = submitted_;
  flushed_cv_.wait(lock, [&] { return finished_ >= target; });
}

PipelineStats CommitPipeline::stats() const {
  PipelineStats s;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.failed_commits = failed_commits_.load(std::memory_order_relaxed);
  s.transitions_committed = transitions_committed_.load(std::memory_order_relaxed);
  s.transitions_failed = transitions_failed_.load(std::memory_order_relaxed);
  s.largest_batch = largest_batch_.load(std::memory_order_relaxed);
  return s;
}

// The writer thread: take a batch, commit it, have its dones called, repeat.
// It never exits on an error (the next batch is attempted as usual); it exits
// only when the pipeline stops and the queue is empty.
void CommitPipeline::writer_loop() {
  std::vector<PendingCommit> batch;
  std::vector<Status> outcome;
  std::vector<Group> own;  // A group the writer finishes itself.
  const bool has_syncer = syncer_.joinable();
  for (;;) {
    bool more = false;  // Work was left in the queue.
    {
      std::unique_lock lock(mu_);
      // At low load the next transition of a running instance usually
      // arrives within tens of microseconds of the last commit's callbacks;
      // polling briefly saves a sleep and a wake-up (a futex round trip) per
      // transition. Under load the queue is rarely empty, so this rarely runs.
      // The poll reads an atomic, not the queue under the lock, so a submit
      // never waits for a polling writer.
      if (queue_.empty() && !stopping_) {
        const uint64_t seen = submitted_;
        lock.unlock();
        auto spin_until =
            std::chrono::steady_clock::now() + std::chrono::microseconds(options_.spin_micros);
        while (submitted_seen_.load(std::memory_order_acquire) == seen &&
               std::chrono::steady_clock::now() < spin_until) {
          std::this_thread::yield();
        }
        lock.lock();
      }
      while (queue_.empty() && !stopping_) {
        writer_waiting_ = true;
        work_cv_.wait(lock);
      }
      writer_waiting_ = false;
      if (queue_.empty()) {
        // Stopping, and nothing left to commit, unless a done still to be
        // called by the syncer submits more (dones may submit).
        lock.unlock();
        wait_for_syncer();
        lock.lock();
        if (queue_.empty()) return;
      }
      if (!spare_.empty()) {
        batch = std::move(spare_.back());  // Empty, with the capacity of an earlier batch.
        spare_.pop_back();
      }
      if (queue_.size() <= options_.max_batch) {
        batch.swap(queue_);  // The queue gets the spare storage.
      } else {
        auto end = queue_.begin() + static_cast<std::ptrdiff_t>(options_.max_batch);
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
        queue_.erase(queue_.begin(), end);
        more = true;
      }
    }

    // At low load (a small batch, nothing else queued, the syncer idle) the
    // batch commits durably and the writer calls the dones itself: no
    // hand-off (with SQLite on ext4, an fsync right after the frames' writes
    // measured about 80 us faster than one after the commit). Otherwise it
    // goes to the syncer. (A large batch means load: the queue is only empty
    // for a moment, and the sync is better overlapped.)
    bool self = false;
    if (has_syncer && batch.size() <= options_.self_sync_max_batch) {
      bool queued;
      {
        std::lock_guard lock(mu_);
        queued = more || !queue_.empty();
      }
      std::lock_guard lock(sync_mu_);
      if (!queued && !sync_busy_ && sync_queue_.empty()) {
        sync_busy_ = true;
        self = true;
      }
    }

    const size_t n = batch.size();
    outcome.assign(n, Status::Ok());
    const auto began = std::chrono::steady_clock::now();
    Status batch_status = backend_.commit_batch(batch, outcome, /*durable=*/self || !has_syncer);
    if (batch_status.ok() && options_.on_commit) {
      options_.on_commit(n, std::chrono::steady_clock::now() - began);
    }
    if (batch_status.ok()) {
      commits_.fetch_add(1, std::memory_order_relaxed);
      if (n > largest_batch_.load(std::memory_order_relaxed)) {
        largest_batch_.store(n, std::memory_order_relaxed);
      }
    } else {
      failed_commits_.fetch_add(1, std::memory_order_relaxed);
    }
    Group group{std::move(batch), std::move(outcome), std::move(batch_status)};
    batch = {};
    outcome = {};

    if (has_syncer && !self) {
      {
        std::lock_guard lock(sync_mu_);
        sync_queue_.push_back(std::move(group));
      }
      sync_cv_.notify_all();
      continue;
    }
    // No syncer, or committed durably: finish here.
    own.push_back(std::move(group));
    finish(own, /*needs_sync=*/false);
    own.clear();
    if (self) {
      // Only the writer hands groups over, so none arrived meanwhile: the
      // syncer has nothing to be woken for.
      std::lock_guard lock(sync_mu_);
      sync_busy_ = false;
    }
  }
}

// Takes every group handed over so far, syncs once for all of them, calls
// their dones. Exits when the pipeline stops and nothing is left.
void CommitPipeline::syncer_loop() {
  std::vector<Group> groups;
  for (;;) {
    {
      std::unique_lock lock(sync_mu_);
      sync_cv_.wait(lock, [&] {
        return (!sync_queue_.empty() && !sync_busy_) || (sync_stopping_ && sync_queue_.empty());
      });
      if (sync_queue_.empty()) return;
      groups.swap(sync_queue_);
      sync_busy_ = true;
    }
    finish(groups, /*needs_sync=*/true);
    groups.clear();
    {
      std::lock_guard lock(sync_mu_);
      sync_busy_ = false;
    }
    sync_cv_.notify_all();  // The writer may wait for the syncer to be idle.
  }
}

void CommitPipeline::wait_for_syncer() {
  if (!syncer_.joinable()) return;
  std::unique_lock lock(sync_mu_);
  sync_cv_.wait(lock, [&] { return sync_queue_.empty() && !sync_busy_; });
}

void CommitPipeline::finish(std::vector<Group>& groups, bool needs_sync) {
  Status synced;
  if (needs_sync) {
    bool any_committed =
        std::any_of(groups.begin(), groups.end(), [](const Group& g) { return g.status.ok(); });
    if (any_committed) synced = backend_.make_durable();
  }
  uint64_t finished = 0;
  std::vector<std::vector<PendingCommit>> emptied;
  for (Group& g : groups) {
    const size_t n = g.items.size();
    uint64_t ok_count = 0;
    if (g.status.ok() && synced.ok()) {
      for (size_t i = 0; i < n; ++i) {
        if (g.outcome[i].ok()) ++ok_count;
        g.items[i].done(std::move(g.outcome[i]), g.items[i].transition);
      }
    } else {
      const Status& why = g.status.ok() ? synced : g.status;
      for (PendingCommit& item : g.items) item.done(why, item.transition);
    }
    transitions_committed_.fetch_add(ok_count, std::memory_order_relaxed);
    transitions_failed_.fetch_add(n - ok_count, std::memory_order_relaxed);
    finished += n;
    g.items.clear();  // Frees the transitions here: off the writer, on the syncer.
    emptied.push_back(std::move(g.items));
  }
  groups.clear();
  {
    std::lock_guard lock(mu_);
    finished_ += finished;
    for (auto& v : emptied) {
      if (spare_.size() < kMaxSpare) spare_.push_back(std::move(v));
    }
  }
  flushed_cv_.notify_all();
}

}  // namespace saga::store
