// Serving health of a model version over fixed time windows: the 99th
// percentile latency, the error rate and the queue's saturation, judged
// against the limits of the model's `monitoring.health` block; and the
// process's memory against the server's limit.
//
// The readings are differences of the cumulative counters /metrics already
// keeps (requests, failures, the latency histogram), so the hot path pays
// nothing for them. Pure; thread-compatible.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vigil {

// Limits a health window is judged against (`health:` in a model's
// monitoring block, or in an endpoint's spec for its variants): LatencyHigh
// when p99 is over `latency_p99_ms` (0 = off; NaN = the model's default,
// 80% of dynamic_batching.default_timeout when set, else 1000 ms),
// ErrorRateHigh when server-side failures are over `error_rate` of
// requests, both on at least `min_requests` requests; QueueSaturated (models
// only) when the queue reached `queue_saturation` of max_queue_size or
// refused a request.
struct HealthLimits {
  double latency_p99_ms = std::numeric_limits<double>::quiet_NaN();
  double error_rate = 0.05;
  double queue_saturation = 0.9;
  int64_t min_requests = 20;
};

// What is wrong with limits: {field under the block, what was expected};
// both empty when they are valid.
std::pair<std::string, std::string> CheckHealthLimits(const HealthLimits& limits);

// Cumulative counters of one model version at one instant.
struct HealthCounters {
  uint64_t ok = 0;                // successful requests
  uint64_t errors = 0;            // failures on the server's side (not the client's: bad input, cancelled)
  std::vector<uint64_t> latency;  // cumulative count per latency bucket bound, then the total (+Inf)
};

// What one window saw.
struct HealthReading {
  uint64_t requests = 0;  // ok + errors
  uint64_t errors = 0;
  double error_rate = 0;                 // errors / requests; 0 without requests
  std::optional<double> latency_p99_ms;  // successful requests; none without any
  int64_t peak_queue = 0;                // the deepest queue sampled in the window
  double queue_saturation = 0;           // peak_queue / max_queue_size, 1 when a request was refused as queue full
};

// The window between two samples. `bounds` are the histogram's bucket
// bounds in seconds; `queue_full` counts refusals in the window.
HealthReading ReadHealth(const HealthCounters& before, const HealthCounters& after, const std::vector<double>& bounds,
                         int64_t peak_queue, int64_t max_queue_size, uint64_t queue_full);

// The q-quantile of a cumulative histogram (count per bound, then the
// total), interpolated linearly inside its bucket as Prometheus's
// histogram_quantile does; the highest bound when it falls in +Inf; none
// when the histogram is empty.
std::optional<double> HistogramQuantile(const std::vector<double>& bounds, const std::vector<uint64_t>& cumulative,
                                        double q);

// The memory the server may use before MemoryHigh fires by default: 90% of
// the smaller of the cgroup's limit and the machine's memory.
uint64_t DefaultMemoryLimitBytes();

}  // namespace vigil
