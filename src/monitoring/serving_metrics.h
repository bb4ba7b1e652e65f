// Every metric the serving path reports, declared in one place.
//
// ServingMetrics owns the families; VersionMetrics caches one model
// version's children so the hot path never looks labels up.
// Thread-safe.
#pragma once

#include <string>

#include "monitoring/metrics.h"

namespace vigil {

struct VersionMetrics;

// What the HTTP frontend reports about its connections and the request
// bodies it holds.
struct HttpMetrics {
  Gauge* connections = nullptr;               // open now
  Counter* connections_refused = nullptr;     // beyond --max-connections
  Counter* accept_errors = nullptr;           // accept() failed (out of file descriptors, ...)
  Gauge* body_bytes_buffered = nullptr;       // request bodies being received, reserved bytes
  Counter* bodies_refused = nullptr;          // the buffered-bytes budget was spent (503)
  Counter* bodies_timed_out = nullptr;        // a body did not arrive in time (408)
  Counter* tls_handshake_failures = nullptr;  // a client that could not speak TLS (or had no valid certificate)
};

// What the prediction log reports.
struct PredictionLogMetrics {
  Counter* written = nullptr;
  Counter* dropped = nullptr;  // queue full, or a failed write
};

class ServingMetrics {
 public:
  explicit ServingMetrics(MetricsRegistry& registry);

  // Children for one model version (created on first call).
  VersionMetrics ForVersion(const std::string& model, const std::string& version);
  const HttpMetrics& http() const { return http_; }
  const PredictionLogMetrics& prediction_log() const { return prediction_log_; }

  MetricsRegistry& registry() { return registry_; }
  CounterFamily& failures() { return failures_; }
  GaugeFamily& model_state() { return model_state_; }
  CounterFamily& http_requests() { return http_requests_; }
  // Endpoint traffic by variant, and shadow copies by result (ok, error, dropped).
  CounterFamily& endpoint_requests() { return endpoint_requests_; }
  CounterFamily& shadow_requests() { return shadow_requests_; }
  // Ensembles: answers by how many members were combined, and members left
  // out of an answer by reason (shed, timeout, not_ready, incompatible, error).
  // An endpoint's degradation ladder: its rung now, and requests by the rung
  // that answered (or shed) them.
  GaugeFamily& endpoint_rung() { return endpoint_rung_; }
  CounterFamily& endpoint_rung_requests() { return endpoint_rung_requests_; }
  CounterFamily& ensemble_answers() { return ensemble_answers_; }
  CounterFamily& ensemble_left_out() { return ensemble_left_out_; }
  // Scans of the model repository and the deployments folder (--poll-interval).
  Counter& repository_polls() { return repository_polls_; }

 private:
  MetricsRegistry& registry_;
  Counter& repository_polls_;
  CounterFamily& requests_;
  CounterFamily& failures_;
  CounterFamily& rows_;
  HistogramFamily& request_seconds_;
  HistogramFamily& queue_seconds_;
  HistogramFamily& compute_seconds_;
  HistogramFamily& batch_size_;
  GaugeFamily& queue_depth_;
  GaugeFamily& model_state_;
  CounterFamily& http_requests_;
  CounterFamily& endpoint_requests_;
  CounterFamily& shadow_requests_;
  GaugeFamily& endpoint_rung_;
  CounterFamily& endpoint_rung_requests_;
  CounterFamily& ensemble_answers_;
  CounterFamily& ensemble_left_out_;
  HttpMetrics http_;
  PredictionLogMetrics prediction_log_;
};

struct VersionMetrics {
  ServingMetrics* owner = nullptr;
  std::string model;
  std::string version;
  Counter* requests = nullptr;
  Counter* rows = nullptr;
  Histogram* request_seconds = nullptr;
  Histogram* queue_seconds = nullptr;
  Histogram* compute_seconds = nullptr;
  Histogram* batch_size = nullptr;
  Gauge* queue_depth = nullptr;

  // Counts a failed request under `reason` (a short fixed word such as
  // "queue_full", "timeout", "backend"). Not on the success path.
  void Fail(const std::string& reason) const;
};

}  // namespace vigil
