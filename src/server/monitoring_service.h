// MonitoringService: closes the drift windows of every served model
// version on a background thread, stores them (the same store as
// deployments), exports them as metrics, and answers
// GET /v1/monitoring/{model or endpoint}/drift?from=&to=&limit=.
//
// Metrics (label sets bounded by models, versions and configured features):
//   vigil_drift_statistic{model, version, feature}  the deciding statistic of the last window
//   vigil_drift_detected{model, version, feature}   1 when that window drifted
//   vigil_drift_windows_total{model, version, result}  closed windows: drift (dataset drift) or calm
//   vigil_nonfinite_values_total{model, version, tensor}  NaN/Inf seen in inputs and outputs
//   vigil_out_of_range_values_total{model, version, feature}  values outside the reference's range
//
// Thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "core/latency_histogram.h"
#include "core/thread_annotations.h"
#include "monitoring/alerts.h"
#include "monitoring/drift_monitor.h"
#include "monitoring/health.h"
#include "monitoring/serving_metrics.h"
#include "repository/model_repository.h"
#include "server/http_server.h"
#include "store/store.h"

namespace vigil {

class AlertTracker;
class Deployments;
class Router;

class MonitoringService {
 public:
  struct Options {
    std::chrono::milliseconds tick{250};             // how often windows are checked
    int64_t retention_ms = 30LL * 24 * 3600 * 1000;  // stored windows are kept this long
    std::chrono::milliseconds health_window{30000};  // serving health is judged per window this long
    uint64_t memory_limit_bytes = 0;                 // MemoryHigh above this resident size; 0 = no rule
  };
  // `store`, `metrics`, `deployments` and `alerts` may be null. Each closed
  // drift window is observed by the alert rules: FeatureDrift and
  // PredictionDrift per column, DatasetDrift, NonFiniteValues (a spike of
  // NaN/Inf against the reference's share; fires at once) and
  // OutOfRangeValues. Each health window (with `metrics`): LatencyHigh,
  // ErrorRateHigh and QueueSaturated per model version, and MemoryHigh.
  MonitoringService(ModelRepository& repository, Store* store, ServingMetrics* metrics, const Deployments* deployments,
                    Options options, AlertTracker* alerts = nullptr);
  ~MonitoringService();  // stops the thread

  // GET /v1/monitoring/{name}/drift, GET /v1/monitoring/{endpoint}/quality
  // and GET /v1/alerts; `path` is the target split on '/'.
  void Handle(const HttpRequest& request, const std::vector<std::string>& path,
              const HttpServer::Responder& respond) const;

 private:
  struct Seen {  // per model version: what the metrics last counted
    int64_t nonfinite_inputs = 0, nonfinite_outputs = 0;
  };
  struct HealthTrack {  // per model version: the open health window
    int64_t start_ms = 0;
    HealthCounters base;
    uint64_t queue_full_base = 0;
    int64_t peak_queue = 0;
  };
  struct VariantTrack {                    // per endpoint variant with guardrails: the open health window
    std::shared_ptr<const Router> router;  // a new spec starts the window again
    int64_t start_ms = 0;
    uint64_t requests = 0, errors = 0;  // requests leave out those rejected as malformed
    LatencyHistogram::Snapshot latency;
  };
  using Versions = std::vector<std::shared_ptr<ModelVersion>>;
  void Loop();
  // Closes every window of `versions` that is due at `now_ms`.
  void Tick(int64_t now_ms, const Versions& versions);
  void Record(const ModelVersion& mv, const DriftWindow& w);
  // LatencyHigh and ErrorRateHigh for one health window of a model version
  // or an endpoint variant (`who` names it in the summaries).
  void ObserveRequests(const AlertLabels& labels, const std::string& who, const HealthReading& r,
                       const HealthLimits& limits, int64_t fire, int64_t resolve, int64_t start_ms, int64_t now_ms);
  // The guardrails of endpoint specs with a `monitoring.health` block, on
  // each variant's own traffic through the endpoint.
  void EvaluateEndpointHealth(int64_t now_ms);
  // Samples every version's queue each tick and, once a health window has
  // passed, judges it against the model's monitoring.health limits.
  void EvaluateHealth(int64_t now_ms, const Versions& versions);
  // The cumulative health counters of a version; `queue_full` receives its refusals.
  HealthCounters SampleHealth(const std::string& model, const std::string& version, uint64_t* queue_full) const;
  // Judges each endpoint variant whose model has a quality rule on its
  // latest complete window (one that ended a window-length ago, so late
  // labels count), once per window.
  void EvaluateQuality(int64_t now_ms);
  HttpResponse Drift(const std::string& name, const std::string& query) const;
  // Per window of prediction time and per variant, quality from joined
  // feedback; a window is incomplete while its labels may still arrive
  // (younger than the 90th percentile label delay, or with no label yet).
  HttpResponse QualityWindows(const std::string& endpoint, const std::string& query) const;

  ModelRepository& repository_;
  Store* store_;
  ServingMetrics* metrics_;
  const Deployments* deployments_;
  Options options_;
  AlertTracker* alerts_;
  GaugeFamily* statistic_ = nullptr;
  GaugeFamily* detected_ = nullptr;
  CounterFamily* windows_ = nullptr;
  CounterFamily* nonfinite_ = nullptr;
  CounterFamily* out_of_range_ = nullptr;

  mutable Mutex mu_;
  std::map<std::pair<std::string, int64_t>, Seen> seen_ GUARDED_BY(mu_);
  // Without a store, the last windows per model are kept here.
  std::map<std::string, std::deque<StoredDriftWindow>> recent_ GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, int64_t> judged_;  // endpoint, variant -> window start; thread only
  std::map<std::pair<std::string, int64_t>, HealthTrack> health_;  // thread only
  std::map<std::pair<std::string, std::string>, VariantTrack> variant_health_;  // endpoint, variant; thread only
  std::map<std::pair<std::string, int64_t>, HealthReading> last_health_ GUARDED_BY(mu_);
  int64_t memory_window_start_ms_ = 0;  // thread only
  uint64_t peak_memory_ = 0;            // thread only
  bool stopping_ GUARDED_BY(mu_) = false;
  const std::shared_ptr<WindowWaker> waker_ = std::make_shared<WindowWaker>();  // a drift window is full
  std::thread thread_;
};

// Per-column results of a window as the JSON array stored with it.
std::string DriftColumnsJson(const DriftWindow& w);

}  // namespace vigil
