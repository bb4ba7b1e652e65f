// `vigil bench`: perf_analyzer's job. Drives a model at one load level after
// another (closed-loop concurrency or open-loop rate), measures in windows
// until consecutive windows agree, and reports throughput, latency
// percentiles, errors by kind and the server's own queue/compute split read
// from /metrics.
#pragma once

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/inference_client.h"
#include "client/load.h"
#include "core/status.h"

namespace vigil {

struct BenchOptions {
  ClientOptions client;
  std::string model;
  std::string version;
  std::vector<int> concurrency;  // closed loop levels
  std::vector<double> rates;     // open loop levels (used when concurrency is empty)
  bool poisson = false;
  int batch = 1;            // rows per request
  std::string input_data;   // CSV or JSON file; empty = random data
  double duration_s = 30;   // longest measurement per level
  double window_s = 2;      // one measurement window
  double stability = 0.10;  // windows agree when within ±10% of their mean
  int stable_windows = 3;   // consecutive windows that must agree
  std::string metrics_url;  // default: the server's HTTP port + /metrics
  int threads = 0;          // client threads; 0 = one per core, at most 4
  int max_connections = 1024;
  double timeout_s = 30;
};

// The server's own view over the measured windows, from /metrics deltas.
struct ServerSplit {
  double requests = 0;
  double queue_ms = 0;    // mean per request
  double compute_ms = 0;  // mean per executed batch, as the server counts it
  double mean_batch = 0;  // rows per executed batch
};

struct LevelResult {
  LoadLevel level;
  bool stable = false;
  int windows = 0;              // windows measured
  double measured_s = 0;        // time the reported figures cover
  uint64_t requests = 0;        // successful requests in that time
  uint64_t total_requests = 0;  // successful requests over the whole level, warm-up included
  double throughput = 0;        // successful requests per second
  double infer_per_s = 0;       // rows per second
  double p50_ms = 0, p90_ms = 0, p95_ms = 0, p99_ms = 0, mean_ms = 0;
  std::map<std::string, LoadRecorder::ErrorCount> errors;
  uint64_t error_total = 0;
  std::optional<ServerSplit> server;
  std::string server_note;  // why the split is missing
};

struct BenchReport {
  std::string model;
  std::string protocol;  // "http (JSON)", "http (binary)", "grpc (typed)", "grpc (raw)"
  int batch = 1;
  std::string input_note;  // where the data came from
  std::vector<LevelResult> levels;
};

// Reads the model's metadata and builds the request samples. `note` says
// where the data came from (file, columns used, or random).
StatusOr<std::vector<InferCall>> BuildSamples(const ModelMetadata& metadata, int batch, const std::string& input_data,
                                              std::string* note);

// Sends samples[0] once (a model that rejects the data fails here, with
// the server's reason) and makes the load target of `options` and `samples`.
StatusOr<LoadTarget> ProbeTarget(InferenceClient& client, const BenchOptions& options, std::vector<InferCall> samples);

// Measures one level with an engine already made for the target. `progress`
// (may be null) gets a one-line status, rewritten with \r, per window.
StatusOr<LevelResult> MeasureLevel(LoadEngine& engine, LoadRecorder& recorder, const LoadLevel& level,
                                   const BenchOptions& options, std::FILE* progress);

StatusOr<BenchReport> RunBench(const BenchOptions& options, std::FILE* progress);

std::string FormatBenchTable(const BenchReport& report);
std::string BenchJson(const BenchReport& report);

// Sums of the vigil_inference_* histograms of one model (all versions when
// `version` is empty) in a Prometheus text exposition.
struct ModelCounters {
  double requests = 0, queue_sum = 0, queue_count = 0, compute_sum = 0, compute_count = 0, batch_sum = 0,
         batch_count = 0;
};
ModelCounters ParseModelCounters(const std::string& exposition, const std::string& model, const std::string& version);

}  // namespace vigil
