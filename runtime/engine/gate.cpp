// The service gate: the adaptive limit, the retry budgets and the queues of
// calls waiting for them (see gate.hpp for the rules).
#include "runtime/engine/gate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace saga::runtime {

// ---- AdaptiveLimit ----------------------------------------------------------------

AdaptiveLimit::AdaptiveLimit(LimitSettings settings)
    : s_(settings), limit_(0), cap_(std::max<uint32_t>(1, settings.max)) {
  s_.min = std::clamp<uint32_t>(s_.min, 1, cap_);
  limit_ = s_.adaptive ? std::clamp(s_.initial, s_.min, cap_) : cap_;
}

void AdaptiveLimit::set_max(uint32_t max) {
  cap_ = std::clamp<uint32_t>(max, 1, std::max<uint32_t>(1, s_.max));
  s_.min = std::min(s_.min, cap_);
  limit_ = s_.adaptive ? std::clamp(limit_, s_.min, cap_) : cap_;
}

double AdaptiveLimit::baseline_ms() const {
  return baseline_;
}

void AdaptiveLimit::shrink(int64_t now_ms, double factor) {
  const auto lower = static_cast<uint32_t>(std::floor(limit_ * factor));
  limit_ = std::clamp(std::min(lower, limit_ - 1), s_.min, cap_);
  slow_start_ = false;
  ++shrinks_;
  shrunk_at_ms_ = now_ms;
  count_ = 0;
  sum_ms_ = 0;
  saturated_ = false;
}

void AdaptiveLimit::sample(int64_t now_ms, int64_t latency_ms, bool overload) {
  if (!s_.adaptive) return;
  latency_ms = std::max<int64_t>(0, latency_ms);
  if (now_ms - latency_ms <= shrunk_at_ms_) return;  // Sent before the last shrink.
  if (overload) return shrink(now_ms, s_.decrease);
  ++count_;
  sum_ms_ += static_cast<double>(latency_ms);
  if (count_ >= std::max<uint32_t>(kWindow, limit_ / 2)) end_window(now_ms);
}

void AdaptiveLimit::end_window(int64_t now_ms) {
  const double mean = sum_ms_ / count_;
  windows_ring_[windows_ % windows_ring_.size()] = Window{now_ms, mean};
  ++windows_;
  const uint32_t kept = std::min<uint32_t>(windows_, static_cast<uint32_t>(windows_ring_.size()));
  baseline_ = mean;
  for (uint32_t i = 1; i <= kept; ++i) {
    const Window& w = windows_ring_[(windows_ - i) % windows_ring_.size()];
    if (i > 4 && w.end_ms < now_ms - kBaselineMs) break;
    baseline_ = std::min(baseline_, w.mean_ms);
  }
  // A millisecond of slack: a service answering in microseconds is not
  // overloaded because one window took 1 ms.
  if (mean > s_.tolerance * baseline_ + 1.0) {
    return shrink(now_ms, std::min(s_.decrease, 0.9 * baseline_ / mean));
  }
  if (saturated_) {
    const uint32_t step =
        slow_start_ ? limit_ : static_cast<uint32_t>(std::ceil(std::sqrt(limit_)));
    limit_ = std::min(cap_, limit_ + std::max<uint32_t>(1, step));
  }
  count_ = 0;
  sum_ms_ = 0;
  saturated_ = false;
}

// ---- RetryBudget -------------------------------------------------------------------

RetryBudget::RetryBudget(BudgetSettings settings, int64_t now_ms)
    : s_(settings), tokens_(settings.max_tokens), refilled_ms_(now_ms) {}

void RetryBudget::refill(int64_t now_ms) {
  if (now_ms > refilled_ms_) {
    tokens_ =
        std::min(s_.max_tokens, tokens_ + s_.floor_per_second *
                                              static_cast<double>(now_ms - refilled_ms_) / 1000.0);
    refilled_ms_ = now_ms;
  }
}

void RetryBudget::deposit() {
  tokens_ = std::min(s_.max_tokens, tokens_ + s_.ratio);
}

bool RetryBudget::try_take(int64_t now_ms) {
  if (!s_.enabled) return true;
  refill(now_ms);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

double RetryBudget::tokens(int64_t now_ms) {
  if (!s_.enabled) return s_.max_tokens;
  refill(now_ms);
  return tokens_;
}

// ---- ServiceGate -------------------------------------------------------------------

ServiceGate::ServiceGate(GateSettings settings, uint32_t bulkhead, int64_t now_ms)
    : s_(settings),
      limit_(settings.limit),
      do_budget_(settings.retries, now_ms),
      undo_budget_(settings.undo_retries, now_ms) {
  if (bulkhead > 0) limit_.set_max(bulkhead);
}

void ServiceGate::set_bulkhead(uint32_t bulkhead) {
  std::lock_guard lock(mu_);
  limit_.set_max(bulkhead > 0 ? bulkhead : s_.limit.max);
}

ServiceGate::Queue ServiceGate::queue_of(Kind kind, bool retry) {
  if (kind == Kind::kUndo) return retry ? kUndoRetry : kUndoFirst;
  return retry ? kDoRetry : kDoFirst;
}

void ServiceGate::admit(int64_t now_ms, std::vector<std::pair<uint64_t, Callback>>& out) {
  while (in_flight_ < limit_.limit()) {
    // Undos first; within a kind, the oldest eligible waiter (a retry is
    // eligible while its budget has a token).
    int pick = -1;
    for (Queue first : {kUndoFirst, kDoFirst}) {
      const auto retry = static_cast<Queue>(first + 1);
      const bool first_ok = !queues_[first].empty();
      const bool retry_ok = !queues_[retry].empty() && budget_of(retry).tokens(now_ms) >= 1.0;
      if (first_ok && retry_ok) {
        pick = queues_[first].front().ticket < queues_[retry].front().ticket ? first : retry;
      } else if (first_ok || retry_ok) {
        pick = first_ok ? first : retry;
      }
      if (pick >= 0) break;
    }
    if (pick < 0) {
      // A slot is free and only retries without a token wait: each counts
      // once as held back by its budget.
      for (Queue q : {kUndoRetry, kDoRetry}) {
        if (!queues_[q].empty() && !std::exchange(queues_[q].front().budget_held, true)) {
          ++budget_waits_;
        }
      }
      return;
    }
    const auto q = static_cast<Queue>(pick);
    if (q == kUndoRetry || q == kDoRetry) budget_of(q).try_take(now_ms);
    Waiter w = std::move(queues_[q].front());
    queues_[q].pop_front();
    ++in_flight_;
    max_wait_seen_ = std::max(max_wait_seen_, now_ms - w.since_ms);
    out.emplace_back(w.ticket, std::move(w.callback));
  }
}

bool ServiceGate::try_acquire(Kind kind, bool retry, int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (in_flight_ >= limit_.limit()) return false;
  for (const auto& q : queues_) {
    if (!q.empty()) return false;
  }
  if (retry && !budget_of(queue_of(kind, retry)).try_take(now_ms)) return false;
  ++in_flight_;
  return true;
}

bool ServiceGate::acquire(Kind kind, bool retry, int64_t now_ms, Callback callback,
                          uint64_t& ticket) {
  std::vector<std::pair<uint64_t, Callback>> granted;
  bool now_granted = false;
  {
    std::lock_guard lock(mu_);
    ticket = next_ticket_++;
    const Queue q = queue_of(kind, retry);
    if (in_flight_ >= limit_.limit()) limit_.saturated();
    queues_[q].push_back(Waiter{ticket, now_ms, std::move(callback)});
    admit(now_ms, granted);
    for (auto it = granted.begin(); it != granted.end(); ++it) {
      if (it->first == ticket) {
        now_granted = true;
        granted.erase(it);
        break;
      }
    }
    if (!now_granted) ++delayed_;
  }
  for (auto& [t, cb] : granted) cb(true);
  return now_granted;
}

void ServiceGate::release(int64_t now_ms, const End* end) {
  std::vector<std::pair<uint64_t, Callback>> granted;
  {
    std::lock_guard lock(mu_);
    if (in_flight_ > 0) --in_flight_;
    if (end) {
      limit_.sample(now_ms, end->latency_ms, end->overload);
      if (end->ok) (end->kind == Kind::kUndo ? undo_budget_ : do_budget_).deposit();
    }
    admit(now_ms, granted);
  }
  for (auto& [t, cb] : granted) cb(true);
}

void ServiceGate::tick(int64_t now_ms) {
  std::vector<Callback> expired;
  std::vector<std::pair<uint64_t, Callback>> granted;
  {
    std::lock_guard lock(mu_);
    for (int i = 0; i < kQueues; ++i) {
      const auto q = static_cast<Queue>(i);
      auto& queue = queues_[q];
      while (!queue.empty() && now_ms - queue.front().since_ms >= s_.max_wait_ms) {
        Waiter& w = queue.front();
        const bool retry = q == kUndoRetry || q == kDoRetry;
        if (retry && !w.budget_held && budget_of(q).tokens(now_ms) < 1.0) ++budget_waits_;
        expired.push_back(std::move(w.callback));
        queue.pop_front();
        ++shed_;
      }
    }
    admit(now_ms, granted);
  }
  for (auto& cb : expired) cb(false);
  for (auto& [t, cb] : granted) cb(true);
}

uint32_t ServiceGate::limit() {
  std::lock_guard lock(mu_);
  return limit_.limit();
}

size_t ServiceGate::in_flight() {
  std::lock_guard lock(mu_);
  return in_flight_;
}

size_t ServiceGate::waiting() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& q : queues_) n += q.size();
  return n;
}

nlohmann::json ServiceGate::snapshot(int64_t now_ms) {
  std::lock_guard lock(mu_);
  size_t waiting = 0;
  for (const auto& q : queues_) waiting += q.size();
  return {{"limit", limit_.limit()},
          {"in_flight", in_flight_},
          {"waiting", waiting},
          {"baseline_ms", limit_.baseline_ms()},
          {"shrinks", limit_.shrinks()},
          {"delayed", delayed_},
          {"max_wait_ms", max_wait_seen_},
          {"shed", shed_},
          {"budget_waits", budget_waits_},
          {"retry_tokens", do_budget_.tokens(now_ms)},
          {"undo_retry_tokens", undo_budget_.tokens(now_ms)}};
}

}  // namespace saga::runtime
