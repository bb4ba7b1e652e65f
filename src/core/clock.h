// Injectable monotonic time, so batching windows and deadlines are tested
// without sleeping. SystemClock is the real one; FakeClock moves only when a
// test advances it. Both are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace vigil {

using SteadyTime = std::chrono::steady_clock::time_point;
using Micros = std::chrono::microseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime Now() const = 0;
  // Blocks on `cv` until notified or `deadline` (in this clock's time) passes.
  // Spurious returns are allowed; callers re-check their condition.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         SteadyTime deadline) const = 0;
};

class SystemClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SteadyTime deadline) const override {
    cv.wait_until(lock, deadline);
  }
  // The process-wide real clock.
  static SystemClock* Get();
};

// Time stands still until Advance(). WaitUntil sleeps briefly in real time so
// a waiting thread re-checks after each Advance.
class FakeClock final : public Clock {
 public:
  SteadyTime Now() const override { return SteadyTime(Micros(now_us_.load())); }
  void Advance(Micros d) { now_us_.fetch_add(d.count()); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SteadyTime deadline) const override {
    if (Now() >= deadline) return;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }

 private:
  std::atomic<int64_t> now_us_{1'000'000};
};

// `now + timeout`, saturating at SteadyTime::max() instead of overflowing:
// a client may ask for any timeout, and a huge one means "no deadline".
inline SteadyTime DeadlineAfter(SteadyTime now, Micros timeout) {
  if (timeout.count() <= 0) return now;
  using D = SteadyTime::duration;
  const auto room = std::chrono::duration_cast<Micros>(SteadyTime::max() - now);
  if (timeout >= room) return SteadyTime::max();
  return now + std::chrono::duration_cast<D>(timeout);
}

// Wall-clock time in unix milliseconds, for records that outlive the process
// (statistics, the store). Not for measuring durations.
int64_t UnixMillis();

// Injectable wall-clock time, beside the monotonic Clock: what windows,
// retention and alert timestamps are measured by. Thread-safe.
class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual int64_t NowMillis() const = 0;  // unix milliseconds
  // The system's (UnixMillis).
  static WallClock* System();
};

class FakeWallClock final : public WallClock {
 public:
  explicit FakeWallClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMillis() const override { return now_ms_.load(); }
  void Advance(int64_t ms) { now_ms_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace vigil
