#include "core/clock.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

// Crash 6 (issue 11): a `timeout` of 1e16 µs overflowed now + timeout and
// expired the request at once. Deadlines saturate instead.
TEST(Clock, DeadlineArithmeticSaturates) {
  const SteadyTime now = std::chrono::steady_clock::now();
  EXPECT_EQ(DeadlineAfter(now, Micros(10'000'000'000'000'000)), SteadyTime::max());
  EXPECT_EQ(DeadlineAfter(now, Micros::max()), SteadyTime::max());
  EXPECT_EQ(DeadlineAfter(now, Micros(1000)), now + Micros(1000));
  EXPECT_GT(DeadlineAfter(now, Micros(1'000'000'000'000'000)), now);
  EXPECT_EQ(DeadlineAfter(SteadyTime::max() - Micros(5), Micros(10)), SteadyTime::max());
}

}  // namespace
}  // namespace vigil
