#include "monitoring/health.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

TEST(HistogramQuantile, InterpolatesInsideTheBucketLikePrometheus) {
  const std::vector<double> bounds{0.1, 0.2, 0.4};
  // 50 in (0, 0.1], 40 in (0.1, 0.2], 10 in (0.2, 0.4], none above.
  const std::vector<uint64_t> cumulative{50, 90, 100, 100};
  EXPECT_NEAR(*HistogramQuantile(bounds, cumulative, 0.5), 0.1, 1e-12);
  EXPECT_NEAR(*HistogramQuantile(bounds, cumulative, 0.7), 0.15, 1e-12);
  EXPECT_NEAR(*HistogramQuantile(bounds, cumulative, 0.99), 0.2 + 0.2 * 9 / 10, 1e-12);
  EXPECT_NEAR(*HistogramQuantile(bounds, cumulative, 0.25), 0.05, 1e-12);
}

TEST(HistogramQuantile, EmptyIsNoneAndOverflowIsTheHighestBound) {
  EXPECT_FALSE(HistogramQuantile({0.1, 0.2}, {0, 0, 0}, 0.99));
  EXPECT_DOUBLE_EQ(*HistogramQuantile({0.1, 0.2}, {0, 1, 100}, 0.99), 0.2);
}

TEST(ReadHealth, IsTheDifferenceBetweenTwoSamples) {
  const std::vector<double> bounds{0.001, 0.01, 0.1};
  HealthCounters before{100, 2, {50, 90, 100, 100}};
  HealthCounters after{300, 12, {50, 90, 100 + 200, 300}};  // the 200 new ones all in (0.01, 0.1]
  const HealthReading r = ReadHealth(before, after, bounds, 7, 10, 0);
  EXPECT_EQ(r.requests, 210u);
  EXPECT_EQ(r.errors, 10u);
  EXPECT_NEAR(r.error_rate, 10.0 / 210, 1e-12);
  ASSERT_TRUE(r.latency_p99_ms);
  EXPECT_NEAR(*r.latency_p99_ms, (0.01 + 0.09 * 0.99) * 1000, 1e-9);
  EXPECT_EQ(r.peak_queue, 7);
  EXPECT_DOUBLE_EQ(r.queue_saturation, 0.7);
}

TEST(ReadHealth, ARefusedRequestSaturatesAndAnIdleWindowIsQuiet) {
  const std::vector<double> bounds{0.001};
  HealthCounters same{5, 0, {5, 5}};
  HealthReading idle = ReadHealth(same, same, bounds, 0, 10, 0);
  EXPECT_EQ(idle.requests, 0u);
  EXPECT_EQ(idle.error_rate, 0);
  EXPECT_FALSE(idle.latency_p99_ms);
  EXPECT_EQ(ReadHealth(same, same, bounds, 2, 10, 1).queue_saturation, 1);
}

TEST(DefaultMemoryLimitBytes, IsSomeOfTheMachinesMemory) {
  const uint64_t limit = DefaultMemoryLimitBytes();
  EXPECT_GT(limit, 64ull << 20);
  EXPECT_LT(limit, 1ull << 50);
}

}  // namespace
}  // namespace vigil
