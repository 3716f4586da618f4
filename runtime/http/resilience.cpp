// The circuit breaker and bulkhead state machines (see resilience.hpp for the
// states and contracts). Observers and callbacks always run after the lock is
// released, so they may call back into the same object.
#include "runtime/http/resilience.hpp"

#include <algorithm>

namespace saga::http {

// ---- CircuitBreaker -------------------------------------------------------------

CircuitBreaker::CircuitBreaker(BreakerSettings settings, NowFn now, Observer observer)
    : settings_(settings), now_(std::move(now)), observer_(std::move(observer)) {
  if (settings_.probes == 0) settings_.probes = 1;
}

const char* CircuitBreaker::name(State state) {
  switch (state) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half-open";
  }
  return "?";
}

void CircuitBreaker::configure(const BreakerSettings& settings) {
  std::lock_guard lock(mu_);
  settings_ = settings;
  if (settings_.probes == 0) settings_.probes = 1;
}

void CircuitBreaker::move(State to, const std::string& why) {
  if (to == state_) return;
  pending_.emplace_back(state_, to, why);
  state_ = to;
  probes_in_flight_ = 0;
  probes_started_ = 0;
  probe_successes_ = 0;
  if (to == State::kOpen) opened_at_ = now_();
  if (to == State::kClosed) failures_ = 0;
}

void CircuitBreaker::tick(int64_t now) {
  if (state_ == State::kOpen && now - opened_at_ >= settings_.reset_ms) {
    move(State::kHalfOpen, "the reset time passed: probing");
  }
}

// Runs the observer for the transitions recorded under the lock. Called at
// the end of each public method, with the lock released.
void CircuitBreaker::notify() {
  std::vector<std::tuple<State, State, std::string>> changes;
  {
    std::lock_guard lock(mu_);
    changes.swap(pending_);
  }
  if (observer_) {
    for (auto& [from, to, why] : changes) observer_(from, to, why);
  }
}

CircuitBreaker::Permit CircuitBreaker::acquire() {
  Permit permit;
  {
    std::lock_guard lock(mu_);
    int64_t now = now_();
    tick(now);
    switch (state_) {
      case State::kClosed:
        permit.allowed = true;
        break;
      case State::kOpen:
        ++rejected_;
        permit.retry_after_ms = std::max<int64_t>(1, opened_at_ + settings_.reset_ms - now);
        break;
      case State::kHalfOpen:
        if (probes_started_ < settings_.probes) {
          ++probes_started_;
          ++probes_in_flight_;
          permit.allowed = true;
          permit.probe = true;
        } else {
          ++rejected_;
        }
        break;
    }
  }
  notify();
  return permit;
}

void CircuitBreaker::on_success(bool probe) {
  {
    std::lock_guard lock(mu_);
    if (probe) {
      // A probe's result counts only in the half-open period it belongs to.
      if (state_ == State::kHalfOpen && probes_in_flight_ > 0) {
        --probes_in_flight_;
        if (++probe_successes_ >= settings_.probes) {
          move(State::kClosed, std::to_string(probe_successes_) + " probe(s) succeeded");
        }
      }
    } else if (state_ == State::kClosed) {
      failures_ = 0;
    }
  }
  notify();
}

void CircuitBreaker::on_failure(bool probe) {
  {
    std::lock_guard lock(mu_);
    if (probe) {
      if (state_ == State::kHalfOpen && probes_in_flight_ > 0) {
        failures_ = 1;
        move(State::kOpen, "a probe failed");
      }
    } else if (state_ == State::kClosed) {
      ++failures_;
      if (settings_.failures > 0 && failures_ >= settings_.failures) {
        move(State::kOpen, std::to_string(failures_) + " consecutive failures");
      }
    }
  }
  notify();
}

void CircuitBreaker::release(bool probe) {
  std::lock_guard lock(mu_);
  if (probe && state_ == State::kHalfOpen && probes_in_flight_ > 0) {
    --probes_in_flight_;
    --probes_started_;
  }
}

CircuitBreaker::State CircuitBreaker::state() {
  std::lock_guard lock(mu_);
  tick(now_());
  // A transition made here is reported at the next acquire or result.
  return state_;
}

nlohmann::json CircuitBreaker::snapshot() {
  std::lock_guard lock(mu_);
  int64_t now = now_();
  tick(now);
  return {
      {"state", name(state_)},
      {"failures", failures_},
      {"opened_at_ms", opened_at_},
      {"retry_after_ms",
       state_ == State::kOpen ? std::max<int64_t>(0, opened_at_ + settings_.reset_ms - now) : 0},
      {"probes_in_flight", probes_in_flight_},
      {"probe_successes", probe_successes_},
      {"rejected", rejected_},
      {"settings",
       {{"failures", settings_.failures},
        {"reset_ms", settings_.reset_ms},
        {"probes", settings_.probes}}}};
}

// ---- Bulkhead -------------------------------------------------------------------

Bulkhead::Bulkhead(uint32_t limit, NowFn now) : limit_(std::max(1u, limit)), now_(std::move(now)) {}

std::vector<Bulkhead::Callback> Bulkhead::admit() {
  std::vector<Callback> granted;
  int64_t now = now_();
  while (in_use_ < limit_ && !queue_.empty()) {
    Waiter w = std::move(queue_.front());
    queue_.pop_front();
    ++in_use_;
    max_in_use_ = std::max(max_in_use_, in_use_);
    max_wait_ms_ = std::max(max_wait_ms_, now - w.since_ms);
    granted.push_back(std::move(w.callback));
  }
  return granted;
}

void Bulkhead::set_limit(uint32_t limit) {
  std::vector<Callback> granted;
  {
    std::lock_guard lock(mu_);
    limit_ = std::max(1u, limit);
    granted = admit();
  }
  for (auto& cb : granted) cb(true);
}

uint64_t Bulkhead::acquire(int64_t deadline_ms, Callback callback) {
  uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    ticket = next_ticket_++;
    if (in_use_ >= limit_ || !queue_.empty()) {
      queue_.push_back({ticket, deadline_ms, now_(), std::move(callback)});
      return ticket;
    }
    ++in_use_;
    max_in_use_ = std::max(max_in_use_, in_use_);
  }
  callback(true);
  return ticket;
}

void Bulkhead::release() {
  std::vector<Callback> granted;
  {
    std::lock_guard lock(mu_);
    if (in_use_ > 0) --in_use_;
    granted = admit();
  }
  for (auto& cb : granted) cb(true);
}

bool Bulkhead::cancel(uint64_t ticket) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const Waiter& w) { return w.ticket == ticket; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

size_t Bulkhead::expire() {
  std::vector<Callback> expired;
  {
    std::lock_guard lock(mu_);
    int64_t now = now_();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->deadline_ms > 0 && it->deadline_ms <= now) {
        expired.push_back(std::move(it->callback));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& cb : expired) cb(false);
  return expired.size();
}

size_t Bulkhead::in_use() {
  std::lock_guard lock(mu_);
  return in_use_;
}

size_t Bulkhead::waiting() {
  std::lock_guard lock(mu_);
  return queue_.size();
}

nlohmann::json Bulkhead::snapshot() {
  std::lock_guard lock(mu_);
  return {{"limit", limit_},
          {"in_use", in_use_},
          {"waiting", queue_.size()},
          {"max_in_use", max_in_use_},
          {"max_wait_ms", max_wait_ms_}};
}

}  // namespace saga::http
