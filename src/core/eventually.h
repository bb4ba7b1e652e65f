// For tests: wait for a condition with a deadline instead of sleeping for a
// fixed time. Polls `condition` every millisecond or so until it holds or
// `timeout` passes; returns whether it held.
#pragma once

#include <chrono>
#include <thread>

namespace vigil {

template <class Condition>
bool Eventually(Condition&& condition, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace vigil
