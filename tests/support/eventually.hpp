// Waiting in tests for what another thread or process does, without sleeping
// for a guessed time: poll a condition until it holds, with a deadline that
// is only a failure guard.
#pragma once

#include <chrono>
#include <thread>

namespace saga::test {

// Polls `condition` every 10 ms until it holds or `limit` passes; returns
// whether it held.
template <class F>
bool eventually(F condition, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace saga::test
