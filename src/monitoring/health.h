// Serving health of a model version over fixed time windows: the 99th
// percentile latency, the error rate and the queue's saturation, judged
// against the limits of the model's `monitoring.health` block; and the
// process's memory against the server's limit.
//
// The readings are differences of the cumulative counters /metrics already
// keeps (requests, failures, the latency histogram), so the hot path pays
// nothing for them. Pure; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vigil {

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
