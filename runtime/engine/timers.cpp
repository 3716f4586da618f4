// ManualClock and SystemClock (timers.hpp, saga/engine.hpp).
#include "runtime/engine/timers.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

namespace saga {

struct ManualClock::Impl {
  std::mutex mu;
  std::vector<std::weak_ptr<const std::function<void()>>> listeners;
};

ManualClock::ManualClock(int64_t start_ms) : impl_(std::make_shared<Impl>()), now_(start_ms) {}

int64_t ManualClock::now_ms() {
  std::lock_guard lock(impl_->mu);
  return now_;
}

void ManualClock::on_advance(std::weak_ptr<const std::function<void()>> wake) {
  std::lock_guard lock(impl_->mu);
  impl_->listeners.push_back(std::move(wake));
}

void ManualClock::advance(std::chrono::milliseconds by) {
  std::vector<std::shared_ptr<const std::function<void()>>> alive;
  {
    std::lock_guard lock(impl_->mu);
    now_ += by.count();
    auto& ls = impl_->listeners;
    ls.erase(std::remove_if(ls.begin(), ls.end(), [](const auto& w) { return w.expired(); }),
             ls.end());
    for (const auto& w : ls) {
      if (auto f = w.lock()) alive.push_back(std::move(f));
    }
  }
  for (const auto& wake : alive) (*wake)();
}

}  // namespace saga

namespace saga::runtime {

int64_t SystemClock::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace saga::runtime
