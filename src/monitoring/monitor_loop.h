// MonitorLoop: the monitoring thread. Each round it closes the drift
// windows of every served model version that are due (stores them, exports
// them as metrics), judges serving health per model version and per
// endpoint variant, judges quality from joined feedback, refreshes the
// vigil_quality gauges, and feeds every verdict to the alert rules.
//
// It sees the server through `MonitoredWorld` (the versions loaded now and
// the endpoints served now), so it needs neither the repository nor the
// routing table and runs in tests on a fake world with a fake clock.
//
// Alert rules: each closed drift window is observed by FeatureDrift and
// PredictionDrift per column (labelled with the `dataset` alert they
// belong to), DatasetDrift, NonFiniteValues (a spike of NaN/Inf against
// the reference's share; fires at once) and OutOfRangeValues. Each health
// window: LatencyHigh, ErrorRateHigh and QueueSaturated per model version,
// LatencyHigh and ErrorRateHigh per endpoint variant with a
// `monitoring.health` block, and MemoryHigh. Each quality window:
// QualityRegression per endpoint variant with a quality rule.
//
// Metrics (label sets bounded by models, versions, endpoints and features):
//   vigil_drift_statistic{model, version, feature}  the deciding statistic of the last window
//   vigil_drift_detected{model, version, feature}   1 when that window drifted
//   vigil_drift_windows_total{model, version, result}  closed windows: drift (dataset drift) or calm
//   vigil_nonfinite_values_total{model, version, tensor}  NaN/Inf seen in inputs and outputs
//   vigil_out_of_range_values_total{model, version, feature}  values outside the reference's range
//   vigil_quality{endpoint, variant, metric}  quality from joined feedback since the spec took effect
//
// Threads: one ("vigil-monitor"), woken early when a drift window fills;
// the accessors are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/latency_histogram.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "monitoring/alerts.h"
#include "monitoring/drift_monitor.h"
#include "monitoring/feedback_join.h"
#include "monitoring/health.h"
#include "monitoring/serving_metrics.h"
#include "store/store.h"

namespace vigil {

// A model version loaded now, as monitoring sees it.
struct WatchedVersion {
  std::shared_ptr<const void> hold{};  // keeps the version alive while a round uses it
  std::string model{};
  int64_t version = 0;
  DriftMonitor* monitor = nullptr;  // null when the version is not monitored
  const MonitoringConfig* monitoring = nullptr;
  int64_t max_queue_size = 0;
  int64_t queue_depth = 0;  // requests waiting now
};

// An endpoint served now, as monitoring sees it.
struct WatchedEndpoint {
  std::string endpoint;
  // Changes when a new spec takes effect (its figures start again).
  std::shared_ptr<const void> generation;
  int64_t since_ms = 0;  // when the spec took effect (Unix ms)
  std::optional<HealthLimits> health;
  std::optional<QualityRule> quality;          // the spec's own rule, else each model's
  int64_t alert_after = 0, resolve_after = 0;  // 0: the model's (health: 3)
  struct Arm {
    std::string name{}, model{};
    int64_t version = 0;
    bool shadow = false;
    // Since the spec took effect; requests leave out those refused as malformed.
    uint64_t requests = 0, errors = 0;
    LatencyHistogram::Snapshot latency{};  // successful requests; taken only with `health`
  };
  std::vector<Arm> arms;  // production first
  // The endpoint's degradation ladder (`overload:`); none without one.
  struct Overload {
    int rung = 0;             // 0 full .. 3 shedding
    std::string rung_name{};  // routing/overload.h's RungName
    int64_t since_ms = 0;     // Unix ms: when it reached this rung
  };
  std::optional<Overload> overload{};
};

class MonitoredWorld {
 public:
  virtual ~MonitoredWorld() = default;
  virtual std::vector<WatchedVersion> Versions() const = 0;
  virtual std::vector<WatchedEndpoint> Endpoints() const = 0;
};

class MonitorLoop {
 public:
  struct Options {
    const MonitoredWorld* world = nullptr;           // required
    ServingMetrics* metrics = nullptr;               // required
    AlertTracker* alerts = nullptr;                  // required
    DriftStore* drift_store = nullptr;               // required (MemoryDriftStore without --data-dir)
    FeedbackJoin* feedback = nullptr;                // null without a store: no quality rules, no vigil_quality
    WallClock* clock = nullptr;                      // null: the system clock
    std::chrono::milliseconds tick{250};             // how often windows are checked
    int64_t retention_ms = 30LL * 24 * 3600 * 1000;  // stored windows are kept this long
    std::chrono::milliseconds health_window{30000};  // serving health is judged per window this long
    uint64_t memory_limit_bytes = 0;                 // MemoryHigh above this resident size; 0 = no rule
    bool background = true;                          // false: no thread; the owner calls Round (tests)
    // Replicas sharing a store: this replica's name, and who leads. Each
    // replica writes partial drift windows of its own traffic with their
    // counts; the leader merges the partial windows of a model version by
    // time (counts add) and tests the sum; every replica publishes the merged
    // windows (metrics, drift alerts), so a verdict sees all traffic.
    // Serving-health alerts (latency, errors, queue, memory, rung) carry a
    // `replica` label. Empty: one machine, windows tested where they close.
    std::string replica{};
    const Leadership* leadership = nullptr;       // required with `replica`
    std::chrono::milliseconds merge_every{1000};  // how often the leader merges and replicas read merges
    std::chrono::milliseconds merge_grace{2000};  // a partial window is merged once it ended this long ago
    // Told of each change of an endpoint's rung the loop sees (the endpoint's
    // history records it); may be null.
    std::function<void(const std::string& endpoint, const WatchedEndpoint::Overload& from,
                       const WatchedEndpoint::Overload& to)>
        on_rung_change = nullptr;
  };
  static StatusOr<std::unique_ptr<MonitorLoop>> Create(Options options);
  ~MonitorLoop();  // stops the thread

  // One round at `now_ms` (Unix ms), as the thread runs it every tick:
  // drift windows, then health, quality and the quality gauges.
  void Round(int64_t now_ms);

  // The last health window of a model version, if one has closed.
  std::optional<HealthReading> LastHealth(const std::string& model, int64_t version) const;

 private:
  explicit MonitorLoop(Options options);
  struct Seen {  // per model version: what the metrics last counted
    int64_t nonfinite_inputs = 0, nonfinite_outputs = 0;
  };
  struct HealthTrack {  // per model version: the open health window
    int64_t start_ms = 0;
    HealthCounters base;
    uint64_t queue_full_base = 0;
    int64_t peak_queue = 0;
  };
  struct VariantTrack {  // per endpoint variant with health limits: the open health window
    std::shared_ptr<const void> generation;
    int64_t start_ms = 0;
    uint64_t requests = 0, errors = 0;
    LatencyHistogram::Snapshot latency;
  };
  void Loop();
  // Closes every window that is due at `now_ms`.
  void CloseWindows(int64_t now_ms, const std::vector<WatchedVersion>& versions);
  // Stores a window of all traffic (one machine) and publishes it; a
  // replica stores its partial windows unpublished.
  void Record(const WatchedVersion& v, const DriftWindow& w);
  // The window's metrics, drift alerts and log line.
  void Publish(const WatchedVersion& v, const DriftWindow& w);
  void ObserveDrift(const WatchedVersion& v, const DriftWindow& w);
  // The leader: merges the partial windows of `v` that ended since the last
  // merged window, once they make a window (window_seconds with
  // min_window_rows, or window_rows), and stores the merged window.
  void MergeWindows(int64_t now_ms, const WatchedVersion& v);
  // Every replica: publishes the merged windows of `v` stored since the last it saw.
  void ReadMergedWindows(const WatchedVersion& v);
  // Serving-health labels, with `replica` among replicas.
  AlertLabels Own(AlertLabels labels) const;
  // LatencyHigh and ErrorRateHigh for one health window of a model version
  // or an endpoint variant (`who` names it in the summaries).
  void ObserveRequests(const AlertLabels& labels, const std::string& who, const HealthReading& r,
                       const HealthLimits& limits, int64_t fire, int64_t resolve, int64_t start_ms, int64_t now_ms);
  // Samples every version's queue each round and, once a health window has
  // passed, judges it against the model's monitoring.health limits.
  void EvaluateHealth(int64_t now_ms, const std::vector<WatchedVersion>& versions);
  // The guardrails of endpoints with health limits, on each variant's own
  // traffic through the endpoint.
  void EvaluateEndpointHealth(int64_t now_ms, const std::vector<WatchedEndpoint>& endpoints);
  // The cumulative health counters of a version; `queue_full` receives its refusals.
  HealthCounters SampleHealth(const std::string& model, const std::string& version, uint64_t* queue_full) const;
  // Judges each endpoint variant whose model has a quality rule on its
  // latest complete window (one that ended a window-length ago, so late
  // labels count), once per window.
  void EvaluateQuality(int64_t now_ms, const std::vector<WatchedVersion>& versions,
                       const std::vector<WatchedEndpoint>& endpoints);
  // vigil_quality from each endpoint's joined feedback since its spec.
  void RefreshQualityGauges(const std::vector<WatchedEndpoint>& endpoints);
  // The endpoints' rungs: the gauge, the `Degraded{endpoint}` alert while
  // above 0, and each change to `on_rung_change`.
  void EvaluateOverload(int64_t now_ms, const std::vector<WatchedEndpoint>& endpoints);

  const Options options_;
  WallClock& clock_;
  GaugeFamily& statistic_;
  GaugeFamily& detected_;
  CounterFamily& windows_;
  CounterFamily& nonfinite_;
  CounterFamily& out_of_range_;
  GaugeFamily& quality_;

  // Round's own state: touched only by the thread that runs rounds.
  std::map<std::pair<std::string, int64_t>, Seen> seen_;
  std::map<std::string, WatchedEndpoint::Overload> rungs_;         // endpoint -> the rung last seen
  std::map<std::pair<std::string, std::string>, int64_t> judged_;  // endpoint, variant -> window start
  std::map<std::pair<std::string, int64_t>, HealthTrack> health_;
  std::map<std::pair<std::string, std::string>, VariantTrack> variant_health_;  // endpoint, variant
  int64_t memory_window_start_ms_ = 0;
  uint64_t peak_memory_ = 0;
  int64_t next_prune_ms_ = 0;
  int64_t next_merge_ms_ = 0;
  int64_t epoch_ = 0;  // the leader epoch at the last round (0: following, or one machine)
  std::map<std::pair<std::string, int64_t>, int64_t> merged_to_;  // model, version -> end of the last merged window
  std::map<std::pair<std::string, int64_t>, int64_t> read_to_;    // model, version -> end of the last one published

  mutable Mutex mu_;
  std::map<std::pair<std::string, int64_t>, HealthReading> last_health_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  const std::shared_ptr<WindowWaker> waker_ = std::make_shared<WindowWaker>();  // a drift window is full
  std::thread thread_;
};

}  // namespace vigil
