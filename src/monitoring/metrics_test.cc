#include "monitoring/metrics.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(Metrics, ExposesCountersGaugesAndHistogramsInTextFormat) {
  MetricsRegistry r;
  auto& c = r.AddCounter("x_requests_total", "Requests.", {"model"});
  c.WithLabels({"a"}).Inc();
  c.WithLabels({"a"}).Inc(2);
  c.WithLabels({"b\"q\\\n"}).Inc();
  r.AddGauge("x_depth", "Depth.", {}).WithLabels({}).Set(7);
  auto& h = r.AddHistogram("x_seconds", "Latency.", {"model"}, {0.1, 1.0}).WithLabels({"a"});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  const std::string out = r.Expose();
  EXPECT_TRUE(Contains(out, "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n"));
  EXPECT_TRUE(Contains(out, "x_requests_total{model=\"a\"} 3\n"));
  EXPECT_TRUE(Contains(out, "x_requests_total{model=\"b\\\"q\\\\\\n\"} 1\n")) << out;
  EXPECT_TRUE(Contains(out, "x_depth 7\n"));
  EXPECT_TRUE(Contains(out, "x_seconds_bucket{model=\"a\",le=\"0.1\"} 1\n")) << out;
  EXPECT_TRUE(Contains(out, "x_seconds_bucket{model=\"a\",le=\"1\"} 2\n")) << out;
  EXPECT_TRUE(Contains(out, "x_seconds_bucket{model=\"a\",le=\"+Inf\"} 3\n"));
  EXPECT_TRUE(Contains(out, "x_seconds_count{model=\"a\"} 3\n"));
  EXPECT_TRUE(Contains(out, "x_seconds_sum{model=\"a\"} 5.5"));
}

TEST(Metrics, CollectHooksRunBeforeExposition) {
  MetricsRegistry r;
  auto& g = r.AddGauge("x_value", "V.", {}).WithLabels({});
  int calls = 0;
  r.AddCollectHook([&] { g.Set(++calls); });
  EXPECT_TRUE(Contains(r.Expose(), "x_value 1\n"));
  EXPECT_TRUE(Contains(r.Expose(), "x_value 2\n"));
}

TEST(Metrics, ChildrenAreStableAcrossLookups) {
  MetricsRegistry r;
  auto& f = r.AddCounter("y_total", "Y.", {"k"});
  Counter* a = &f.WithLabels({"1"});
  for (int i = 0; i < 100; ++i) f.WithLabels({std::to_string(i)});
  EXPECT_EQ(a, &f.WithLabels({"1"}));
}

}  // namespace
}  // namespace vigil
