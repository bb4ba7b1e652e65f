#include "core/deadline_timer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "core/eventually.h"

namespace vigil {
namespace {

using std::chrono::milliseconds;

// Each action notes the fake time it ran at, so one run early shows as a
// time before its due time; none is waited for by sleeping.
struct Ran {
  std::mutex mu;
  std::vector<std::pair<int, SteadyTime>> runs;
  void Note(int which, SteadyTime at) {
    std::lock_guard lock(mu);
    runs.emplace_back(which, at);
  }
  size_t Count() {
    std::lock_guard lock(mu);
    return runs.size();
  }
};

TEST(DeadlineTimer, RunsEachActionOnceItsTimeHasPassedInTimeOrder) {
  FakeClock clock;
  Ran ran;
  const SteadyTime t0 = clock.Now();
  {
    DeadlineTimer timer(clock, "vigil-test-timer");
    timer.At(t0 + milliseconds(10), [&] { ran.Note(10, clock.Now()); });
    timer.At(t0 + milliseconds(5), [&] { ran.Note(5, clock.Now()); });
    const auto cancelled = timer.At(t0 + milliseconds(7), [&] { ran.Note(7, clock.Now()); });
    timer.At(t0 + milliseconds(30), [&] { ran.Note(30, clock.Now()); });  // never reached
    EXPECT_EQ(timer.Pending(), 4u);
    EXPECT_TRUE(timer.Cancel(cancelled));
    EXPECT_FALSE(timer.Cancel(cancelled));
    EXPECT_FALSE(timer.Cancel(12345));

    clock.Advance(milliseconds(6));
    ASSERT_TRUE(Eventually([&] { return ran.Count() == 1; }));
    clock.Advance(milliseconds(6));
    ASSERT_TRUE(Eventually([&] { return ran.Count() == 2; }));
    EXPECT_EQ(timer.Pending(), 1u);
    // An action may schedule another; a time already passed runs at once.
    timer.At(t0, [&] { ran.Note(0, clock.Now()); });
    ASSERT_TRUE(Eventually([&] { return ran.Count() == 3; }));
  }  // the 30 ms action is dropped, not run
  ASSERT_EQ(ran.runs.size(), 3u);
  EXPECT_EQ(ran.runs[0].first, 5);
  EXPECT_EQ(ran.runs[1].first, 10);
  EXPECT_EQ(ran.runs[2].first, 0);
  for (const auto& [which, at] : ran.runs) EXPECT_GE(at, t0 + milliseconds(which)) << which;
}

TEST(DeadlineTimer, AnEarlierActionWakesTheThreadWaitingForALaterOne) {
  Ran ran;
  DeadlineTimer timer(*SystemClock::Get());
  const SteadyTime now = SystemClock::Get()->Now();
  timer.At(now + std::chrono::hours(1), [&] { ran.Note(1, SystemClock::Get()->Now()); });
  timer.At(now + milliseconds(1), [&] { ran.Note(2, SystemClock::Get()->Now()); });
  ASSERT_TRUE(Eventually([&] { return ran.Count() == 1; }));
  EXPECT_EQ(ran.runs[0].first, 2);
  EXPECT_EQ(timer.Pending(), 1u);
}

}  // namespace
}  // namespace vigil
