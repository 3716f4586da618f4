// The relay of the transactional outbox (saga/outbox.hpp has the invariant).
//
// One thread runs rounds: claim the due rows (Store::claim_outbox gives at
// most one per instance, the first open one), hand each to the sender at
// once (they go out concurrently, one per instance), wait until every one
// has ended, and settle each in the store: delivered, retry later (capped
// exponential backoff, or the sink's Retry-After when longer), or dead once
// its attempts are spent or its type has no sink. A round that found rows
// is followed by the next at once; an empty one waits `poll` or a wake().
// Pruning of old delivered rows runs between rounds.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "saga/outbox.hpp"

namespace saga {

struct Relay::Impl {
  Impl(Store& s, RelayOptions o) : store(s), options(std::move(o)) {
    if (!options.now_ms) {
      options.now_ms = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
      };
    }
    if (options.attempts == 0) options.attempts = 1;
    if (options.batch == 0) options.batch = 1;
  }

  Store& store;
  RelayOptions options;
  std::thread thread;

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;   // Guarded by mu.
  bool woken = false;  // Guarded by mu.

  std::atomic<uint64_t> delivered{0}, failed{0}, dead{0}, pruned{0};

  static constexpr std::chrono::milliseconds kStopGrace{2000};

  bool stopping() {
    std::lock_guard lock(mu);
    return stop;
  }

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }

  void run() {
    int64_t next_prune = 0;
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (stop) return;
      }
      size_t found = round();
      const int64_t now = options.now_ms();
      if (now >= next_prune) {
        prune(now);
        next_prune = now + options.prune_every.count();
      }
      std::unique_lock lock(mu);
      if (stop) return;
      if (found > 0 && !woken) continue;
      cv.wait_for(lock, options.poll, [&] { return stop || woken; });
      woken = false;
    }
  }

  // One round; returns how many rows it claimed.
  size_t round() {
    const int64_t now = options.now_ms();
    Result<std::vector<OutboxEvent>> rows =
        store.claim_outbox(options.owner, now, now + options.lease.count(), options.batch);
    if (!rows.ok()) {
      log(fmt::format("relay: cannot claim outbox rows: {}", rows.status().message()));
      return 0;
    }
    if (rows->empty()) return 0;
    // Shared with the senders' callbacks: a relay stopped while a delivery
    // is out leaves without it (its claim runs out, and it is sent again).
    struct Pending {
      std::mutex mu;
      std::condition_variable cv;
      size_t left = 0;
      std::vector<ServiceOutcome> outcomes;
      std::vector<char> state;  // 0: not sent (no sink), 1: out, 2: answered.
    };
    auto pending = std::make_shared<Pending>();
    pending->outcomes.resize(rows->size());
    pending->state.assign(rows->size(), 0);
    for (size_t i = 0; i < rows->size(); ++i) {
      const OutboxEvent& e = (*rows)[i];
      auto sink = options.sinks.find(e.type);
      if (sink == options.sinks.end() || !options.sender) continue;
      {
        std::lock_guard lock(pending->mu);
        pending->state[i] = 1;
        ++pending->left;
      }
      options.sender(sink->second, cloud_event_json(e), [pending, i](ServiceOutcome out) {
        std::lock_guard lock(pending->mu);
        pending->outcomes[i] = std::move(out);
        pending->state[i] = 2;
        if (--pending->left == 0) pending->cv.notify_all();
      });
    }
    std::vector<char> state;
    std::vector<ServiceOutcome> outcomes;
    {
      // The sender's own timeout ends every delivery; stop() waits up to
      // kStopGrace more for those out.
      std::unique_lock lock(pending->mu);
      while (pending->left > 0) {
        pending->cv.wait_for(lock, std::chrono::milliseconds(100));
        if (stopping() && pending->left > 0) {
          pending->cv.wait_for(lock, kStopGrace, [&] { return pending->left == 0; });
          break;
        }
      }
      state = pending->state;
      for (size_t i = 0; i < state.size(); ++i) {
        if (state[i] == 2)
          outcomes.push_back(std::move(pending->outcomes[i]));
        else
          outcomes.emplace_back();
      }
    }
    for (size_t i = 0; i < rows->size(); ++i) {
      if (state[i] == 1) continue;  // Still out: left to its claim's lease.
      settle((*rows)[i], state[i] == 2, outcomes[i]);
    }
    return rows->size();
  }

  void settle(const OutboxEvent& e, bool sent, const ServiceOutcome& out) {
    OutboxSettle s;
    s.time_ms = options.now_ms();
    if (!sent) {
      s.outcome = OutboxSettle::Outcome::kDead;
      s.error = fmt::format("no sink for event type {}", e.type);
    } else if (out.ok) {
      s.outcome = OutboxSettle::Outcome::kDelivered;
    } else {
      s.error = out.error_class.empty() ? out.message
                                        : fmt::format("{}: {}", out.error_class, out.message);
      const uint32_t attempts = e.attempts + 1;
      if (attempts >= options.attempts) {
        s.outcome = OutboxSettle::Outcome::kDead;
      } else {
        s.outcome = OutboxSettle::Outcome::kRetry;
        s.next_due_ms = s.time_ms + std::max(backoff_ms(options, attempts), out.retry_after_ms);
      }
    }
    Status st = store.settle_outbox(e.id, s);
    if (!st.ok()) {
      // The claim runs out and the row is sent again: at least once.
      log(fmt::format("relay: cannot record the delivery of event {}: {}", e.id, st.message()));
      return;
    }
    switch (s.outcome) {
      case OutboxSettle::Outcome::kDelivered:
        delivered.fetch_add(1, std::memory_order_relaxed);
        break;
      case OutboxSettle::Outcome::kRetry:
        failed.fetch_add(1, std::memory_order_relaxed);
        break;
      case OutboxSettle::Outcome::kDead:
        if (sent) failed.fetch_add(1, std::memory_order_relaxed);
        dead.fetch_add(1, std::memory_order_relaxed);
        log(fmt::format("relay: event {} ({} of instance {}) is a dead letter: {}", e.id, e.type,
                        e.instance_id, s.error));
        break;
    }
  }

  void prune(int64_t now) {
    Result<uint64_t> n = store.prune_outbox(now - options.keep_delivered.count() + 1);
    if (n.ok()) {
      pruned.fetch_add(*n, std::memory_order_relaxed);
    } else if (n.status().code() != StatusCode::kUnsupported) {
      log(fmt::format("relay: cannot prune the outbox: {}", n.status().message()));
    }
  }
};

Relay::Relay(Store& store, RelayOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {
  impl_->thread = std::thread([this] { impl_->run(); });
}

Relay::~Relay() {
  stop();
}

void Relay::wake() {
  std::lock_guard lock(impl_->mu);
  impl_->woken = true;
  impl_->cv.notify_all();
}

void Relay::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
    impl_->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

RelayStats Relay::stats() const {
  RelayStats s;
  s.delivered = impl_->delivered.load(std::memory_order_relaxed);
  s.failed_attempts = impl_->failed.load(std::memory_order_relaxed);
  s.dead = impl_->dead.load(std::memory_order_relaxed);
  s.pruned = impl_->pruned.load(std::memory_order_relaxed);
  return s;
}

int64_t Relay::backoff_ms(const RelayOptions& options, uint32_t attempts) {
  double delay = static_cast<double>(options.initial_backoff_ms);
  for (uint32_t i = 1; i < attempts && delay < static_cast<double>(options.max_backoff_ms); ++i) {
    delay *= options.factor;
  }
  return std::min<int64_t>(static_cast<int64_t>(delay), options.max_backoff_ms);
}

}  // namespace saga
