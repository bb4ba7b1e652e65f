// Benchmarks of an endpoint's competing models on the traffic it served:
// when drift or a quality regression fires for the model behind an
// endpoint (or a person asks), every candidate of the spec and every other
// loaded version of the production model is run on the requests the
// prediction log sampled with their inputs (--log-inputs-sample-rate), off
// the serving path, and scored three ways:
//
//   - against the labels joined so far: the metric per contender with its
//     interval, and its paired difference from production on the same
//     labelled requests (units = routing keys, by the delta method), judged
//     at α / k for k contenders (Bonferroni), so "better" holds for the
//     whole ranking at once;
//   - without labels: disagreement with production (argmax; for one
//     output, a difference above 1e-6 relative) with Wilson's interval, and
//     the estimated accuracy of a calibrated classifier (CBPE,
//     monitoring/quality.h's ExpectedCorrect) — beside, never instead of,
//     realised accuracy: it cannot see concept drift;
//   - production is replayed too, and its replay checked against the
//     answers it logged: a difference means the inputs were not replayed
//     faithfully, and the result says so.
//
// The ranking is by the labels when production has min_labels labelled
// units, else by estimated accuracy (classifiers), else by nothing (only
// disagreement is reported). The winner is the best contender shown better
// than production on labels; there is none otherwise — an estimate alone
// never names a winner.
//
// Replays run through the model's own scheduler at the lowest priority,
// wait while the model has requests queued, stay within a CPU budget (the
// share of one core their wall time may take) and are not seen by drift
// monitoring (InferCall::replay). Only a request's first input is logged
// (at most 256 values), so a contender with several inputs, a BYTES input,
// a variable shape, or requests of several rows cannot be replayed; the
// result says which and why.
//
// Benchmarker runs them one at a time on its own thread ("vigil-benchmark"):
// queued by a person, or started when a DatasetDrift, FeatureDrift,
// PredictionDrift (of the production model version) or QualityRegression
// (of production) alert fires — once per firing, at most one automatic run
// per endpoint per min_interval_s. Each result is stored, and a
// BetterModelAvailable alert fires while the newest benchmark of an endpoint
// has a winner (its summary carries the ranking). Thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "monitoring/alerts.h"
#include "routing/deployment_spec.h"
#include "store/store.h"

namespace vigil {

// What a benchmark runs models through. The server's is
// ServingBenchmarkWorld (rollout/serving_benchmark_world.h); tests bring
// their own.
class BenchmarkWorld {
 public:
  virtual ~BenchmarkWorld() = default;
  virtual std::vector<std::string> Endpoints() = 0;
  // The endpoint's spec in force; null when there is no such endpoint.
  virtual std::shared_ptr<const DeploymentSpec> Spec(const std::string& endpoint) = 0;
  // The model's ready versions, ascending (empty when it has none).
  virtual std::vector<int64_t> ReadyVersions(const std::string& model) = 0;
  // How a version takes one logged row: the values per row and the rows one
  // call may carry. An error says why it cannot be replayed.
  struct Replay {
    int64_t row_values = 0;
    int64_t max_rows_per_call = 1;
  };
  virtual StatusOr<Replay> Replayable(const std::string& model, int64_t version) = 0;
  // Whether the version has requests waiting (a replay gives way).
  virtual bool Busy(const std::string& model, int64_t version) = 0;
  // Runs `rows` (each row_values values) as one call: per row, the values
  // of the first output (at most 64, as the log keeps them).
  virtual StatusOr<std::vector<std::vector<double>>> Run(const std::string& model, int64_t version,
                                                         const std::vector<const std::vector<double>*>& rows) = 0;
};

struct BenchmarkOptions {
  int64_t max_rows = 5000;       // sampled requests one run reads, at most kMaxBenchmarkRows
  double max_cpu = 0.25;         // share of one core the replays' run time may take, (0, 1]
  int64_t max_seconds = 600;     // one run stops here and scores what it has
  int64_t min_labels = 30;       // labelled units before labels rank
  double alpha = 0.05;           // for the whole ranking
  int64_t min_interval_s = 900;  // between automatic runs of one endpoint
};
constexpr int64_t kMaxBenchmarkRows = 20'000;
constexpr size_t kMaxContenders = 8;  // besides production

struct BenchmarkRequest {
  std::string endpoint{};
  int64_t from_ms = 0, to_ms = 0;  // the logged traffic to replay
  std::string metric{};            // empty: the rollout block's if it needs labels, else accuracy (classifiers) or mae
  int64_t max_rows = 0;            // 0: the options'
  std::string trigger{};           // who or what asked, for the record
};

// What is wrong with `metric` as a benchmark metric (empty when fine).
std::string CheckBenchmarkMetric(const std::string& metric);

struct ContenderResult {
  std::string name;  // "production", a candidate's name, or "v3" for another loaded version
  std::string role;  // production | candidate | version
  std::string mode;  // the candidate's mode (ab, canary, shadow, flag); empty otherwise
  std::string model;
  int64_t version = 0;
  std::string skipped;  // why it was not run; empty when it was
  int64_t rows = 0;     // replayed and answered
  int64_t errors = 0;   // rows whose call failed
  std::string first_error;
  double run_ms = 0;  // wall time of its calls
  // On the labelled rows: the metric, and (not production) the paired
  // difference toward better, positive = better than production (for rmse,
  // the difference of the mean squared errors).
  int64_t labeled_rows = 0, labeled_units = 0;
  std::optional<double> value;
  double ci_low = 0, ci_high = 0;  // 95%
  std::optional<double> difference;
  double difference_low = 0, difference_high = 0, p = 1;  // at 1 − α/k
  std::string verdict;  // better | worse | no_difference | not_enough_labels | not_run | production
  // Against production's replayed answers on every row both answered.
  int64_t compared = 0, disagreements = 0;
  double disagreement_rate = 0, disagreement_low = 0, disagreement_high = 0;
  double mean_abs_diff = 0;
  // CBPE over the rows without a label (classifiers).
  std::optional<double> estimated_accuracy;
  int64_t estimated_rows = 0;
  int rank = 0;  // 1 = best; 0 = not ranked
};

struct BenchmarkResult {
  std::string endpoint, trigger, metric;
  bool higher_is_better = true;
  int64_t from_ms = 0, to_ms = 0, started_ms = 0, finished_ms = 0;
  int64_t sampled = 0;     // logged requests with inputs in the window (read)
  int64_t replayable = 0;  // of them, of one row that production can take
  bool truncated = false;  // the row bound or the time bound cut the run short
  double alpha = 0.05;
  std::string basis;  // labels | estimated_accuracy | none
  int64_t replay_checked = 0;
  double replay_max_abs_diff = 0;           // production's replay against its logged answers
  std::vector<ContenderResult> contenders;  // production first, then by rank
  std::string winner;                       // empty: none shown better than production
  std::string summary;                      // one line for people (and the alert)
  std::string warning;                      // e.g. an unfaithful replay
  std::string error;                        // the run could not be made at all
};
std::string BenchmarkResultJson(const BenchmarkResult& result);

// Runs one benchmark. `wait(d)` pauses the replays for `d` (the CPU budget,
// a busy model) and returns false when the run must stop; null = sleep.
BenchmarkResult RunBenchmark(BenchmarkWorld& world, FeedbackStore& store, const BenchmarkRequest& request,
                             const BenchmarkOptions& options, const WallClock& clock,
                             const std::function<bool(std::chrono::microseconds)>& wait = nullptr);

class Benchmarker {
 public:
  struct Options {
    BenchmarkWorld* world = nullptr;    // required
    FeedbackStore* feedback = nullptr;  // null: no prediction log, every run is an error that says so
    RolloutStore* store = nullptr;      // required: results
    AlertTracker* alerts = nullptr;     // triggers, and BetterModelAvailable; may be null
    const WallClock* clock = nullptr;   // null = the system's
    BenchmarkOptions benchmark;
    bool background = true;  // false: no thread; tests call Poll and RunQueued
  };
  static StatusOr<std::unique_ptr<Benchmarker>> Create(Options options);
  ~Benchmarker();  // Stop()
  // Stops the thread; a run under way stops at its next call. Idempotent.
  void Stop() EXCLUDES(mu_);

  // Queues a run; FailedPrecondition when one for the endpoint is already
  // queued or running, or when too many are queued.
  Status Enqueue(BenchmarkRequest request) EXCLUDES(mu_);
  // What runs or waits now (endpoints).
  struct Queue {
    std::string running;
    std::vector<std::string> queued;
  };
  Queue Pending() const EXCLUDES(mu_);
  // The endpoint's stored results, newest first.
  StatusOr<std::vector<StoredBenchmark>> Results(const std::string& endpoint, int limit) {
    return options_.store->Benchmarks(endpoint, limit);
  }

  // Queues the runs the firing alerts call for (the thread calls it every
  // few seconds). Returns how many it queued.
  int Poll(int64_t now_ms) EXCLUDES(mu_);
  // Runs what is queued, one after another, on this thread (tests).
  void RunQueued() EXCLUDES(mu_);

  static constexpr size_t kMaxQueued = 16;

 private:
  explicit Benchmarker(Options options);
  void Loop();
  void RunOne(const BenchmarkRequest& request) EXCLUDES(mu_);
  bool Wait(std::chrono::microseconds d) EXCLUDES(mu_);

  Options options_;
  const WallClock& clock_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<BenchmarkRequest> queue_ GUARDED_BY(mu_);
  std::string running_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace vigil
