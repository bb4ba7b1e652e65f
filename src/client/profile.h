// `vigil profile`: Model Analyzer's job. Tries serving configurations of one
// model on a running server (through the "config" load parameter), finds
// for each the highest throughput whose p99 stays within a latency budget,
// and recommends the best one as a config.yaml snippet.
//
// Search: the unbatched baseline first (max_batch_size 1, no delay, one
// instance), then a coarse grid over max_batch_size × max_queue_delay_us ×
// instances (70% of the time budget), then the neighbours of the best (each
// knob halved and doubled, instances ±1). For each configuration,
// closed-loop concurrency doubles, from half the batch size, until p99
// breaks the budget, errors appear, or throughput stops growing (and steps
// down first when even the start breaks the budget). No level starts when it
// could overrun the time budget; the model's own config is restored at the
// end.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "client/bench.h"
#include "core/status.h"

namespace vigil {

struct ProfileOptions {
  ClientOptions client;         // where load goes (HTTP or gRPC)
  ClientOptions control;        // HTTP: config reads, loads and /metrics
  std::string model;
  double latency_budget_ms = 10;  // p99
  double time_budget_s = 120;
  std::vector<int> max_batch_sizes = {16, 64};
  std::vector<int64_t> delays_us = {0, 1000};
  std::vector<int> instances = {1, 2};
  int max_concurrency = 256;
  bool refine = true;
  int batch = 1;
  std::string input_data;
  double window_s = 0.3;      // per measurement window
  double level_limit_s = 2.4;  // longest measurement of one concurrency level
};

struct ProfileTrial {
  int max_batch_size = 0;
  int64_t delay_us = 0;
  int instances = 1;
  std::string phase;  // "baseline", "coarse", "refine"
  bool measured = false;
  int best_concurrency = 0;  // 0 when no level met the budget
  double throughput = 0;     // requests/s at best_concurrency
  double infer_per_s = 0;
  double p99_ms = 0;
  std::string note;          // why it stopped, or why it was skipped
};

struct ProfileReport {
  std::string model;
  double latency_budget_ms = 0;
  double time_budget_s = 0;
  double elapsed_s = 0;
  bool out_of_time = false;
  std::vector<ProfileTrial> trials;
  std::optional<size_t> best;      // index into trials
  std::optional<size_t> baseline;  // the unbatched trial
  std::string base_config_json;    // the model's config before profiling
};

StatusOr<ProfileReport> RunProfile(const ProfileOptions& options, std::FILE* progress);

std::string FormatProfileTable(const ProfileReport& report);
std::string ProfileJson(const ProfileReport& report);
// The recommended configuration as a config.yaml snippet (comment + keys).
std::string RecommendedConfigYaml(const ProfileReport& report);

// The model's config JSON (from GET /v2/models/M/config) with the three
// knobs replaced, as a config override for the load API.
StatusOr<std::string> ConfigOverride(const std::string& config_json, int max_batch_size, int64_t delay_us,
                                     int instances);

}  // namespace vigil
