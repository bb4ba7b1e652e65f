// `vigil bench --rate-schedule`: open loop through phases of different
// rates (e.g. 1x:10s,5x:20s,1x:10s, relative to a capacity given or
// measured first), for what a spike does to a server. Per phase, by the
// time each request was scheduled: goodput (answers within --deadline-ms
// per second), the share of requests answered in time, latency of the
// admitted requests, what was shed or timed out, the share answered at each
// overload rung (the reply's vigil.rung) and, with labels, the accuracy of
// the answers that came in time; the server's resident memory, and for an
// endpoint its rung over time (from its status) and how long it took to get
// back to rung 0 after the last change of rate. HTTP only.
#pragma once

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/bench.h"

namespace vigil {

struct RatePhase {
  double multiple = 0;  // of the capacity (a "5x" phase), or
  double rate = 0;      // requests per second, when `multiple` is 0
  double seconds = 0;
};

// "1x:10s,5x:20s,300:5s": multiples of the capacity, or absolute rates.
StatusOr<std::vector<RatePhase>> ParseRateSchedule(std::string_view text);

struct ScheduleOptions {
  std::vector<RatePhase> phases;
  double capacity = 0;           // requests per second at 1x; 0: measured first (closed loop)
  int capacity_concurrency = 8;  // the closed loop that measures it
  double deadline_ms = 100;      // an answer later than this is not in time
  // Sent as each request's `timeout` parameter (microseconds); 0: none.
  double request_timeout_ms = 0;
  std::string labels_column;  // with a CSV --input-data: each row's class label
};

struct PhaseResult {
  RatePhase phase;
  double rate = 0;  // requests per second offered
  uint64_t sent = 0, ok = 0, in_time = 0, shed = 0, timed_out = 0, other_errors = 0;
  double goodput = 0;                       // answers in time per second
  double in_time_share = 0;                 // of the requests sent
  double p50_ms = 0, p99_ms = 0;            // of the answers (admitted requests)
  std::map<int, uint64_t> in_time_by_rung;  // -1: the reply named no rung
  std::map<int, uint64_t> late_by_rung;     // answered, but after the deadline
  std::optional<double> accuracy;           // of the answers in time, with labels
  std::map<int, double> accuracy_by_rung;
  double max_rss_mib = 0;
  int max_rung = -1;  // the endpoint's, from its status; -1: not an endpoint with a ladder
  std::string example_error;
};

struct ScheduleReport {
  std::string model;
  int batch = 1;
  double capacity = 0;
  bool capacity_measured = false;
  double deadline_ms = 0;
  std::string input_note;
  std::vector<PhaseResult> phases;
  // Seconds from the start of the last phase until the endpoint's status
  // read rung 0 (nullopt: never, or no ladder).
  std::optional<double> back_to_rung0_s;
  std::vector<std::pair<double, int>> rung_timeline;  // (seconds since start, rung) at each change
};

StatusOr<ScheduleReport> RunRateSchedule(const BenchOptions& bench, const ScheduleOptions& schedule,
                                         std::FILE* progress);
std::string FormatScheduleTable(const ScheduleReport& report);
std::string ScheduleJson(const ScheduleReport& report);

}  // namespace vigil
