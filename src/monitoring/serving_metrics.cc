#include "monitoring/serving_metrics.h"

#include "monitoring/process.h"

namespace vigil {

ServingMetrics::ServingMetrics(MetricsRegistry& registry)
    : registry_(registry),
      repository_polls_(registry
                            .AddCounter("vigil_repository_polls_total",
                                        "Scans of the model repository and its deployments folder (--poll-interval).",
                                        {})
                            .WithLabels({})),
      requests_(registry.AddCounter("vigil_inference_requests_total", "Inference requests that completed successfully.",
                                    {"model", "version"})),
      failures_(registry.AddCounter("vigil_inference_failures_total", "Inference requests that failed, by reason.",
                                    {"model", "version", "reason"})),
      rows_(registry.AddCounter("vigil_inference_rows_total", "Rows (batch elements) inferred successfully.",
                                {"model", "version"})),
      request_seconds_(registry.AddHistogram("vigil_inference_request_duration_seconds",
                                             "Time from enqueue to response, successful requests.",
                                             {"model", "version"}, LatencyBuckets())),
      queue_seconds_(registry.AddHistogram("vigil_inference_queue_duration_seconds",
                                           "Time a request waited in the queue before its batch ran.",
                                           {"model", "version"}, LatencyBuckets())),
      compute_seconds_(registry.AddHistogram("vigil_inference_compute_duration_seconds",
                                             "Backend execution time per batch.", {"model", "version"},
                                             LatencyBuckets())),
      batch_size_(registry.AddHistogram("vigil_inference_batch_size", "Rows per executed batch.", {"model", "version"},
                                        BatchSizeBuckets())),
      queue_depth_(
          registry.AddGauge("vigil_inference_queue_depth", "Requests waiting in the queue.", {"model", "version"})),
      model_state_(registry.AddGauge(
          "vigil_model_state", "1 for the state each model version is in (LOADING, READY, UNAVAILABLE, UNLOADING).",
          {"model", "version", "state"})),
      http_requests_(
          registry.AddCounter("vigil_http_requests_total", "HTTP requests answered, by status code.", {"code"})),
      endpoint_requests_(registry.AddCounter("vigil_endpoint_requests_total",
                                             "Requests to an endpoint, by the variant that answered and outcome.",
                                             {"endpoint", "variant", "outcome"})),
      shadow_requests_(
          registry.AddCounter("vigil_shadow_requests_total",
                              "Shadow copies of endpoint requests, by result (ok, error, dropped, over_budget).",
                              {"endpoint", "variant", "result"})),
      endpoint_rung_(registry.AddGauge("vigil_endpoint_rung",
                                       "The rung of an endpoint's degradation ladder now (0 full, 1 ensemble members "
                                       "dropped, 2 fallback model, 3 shedding).",
                                       {"endpoint"})),
      endpoint_rung_requests_(registry.AddCounter(
          "vigil_endpoint_rung_requests_total",
          "Requests to an endpoint with an overload ladder, by the rung that answered or shed them.",
          {"endpoint", "rung"})),
      ensemble_answers_(registry.AddCounter("vigil_ensemble_answers_total",
                                            "Ensemble answers, by how many members were combined.",
                                            {"model", "version", "members"})),
      ensemble_left_out_(registry.AddCounter(
          "vigil_ensemble_members_left_out_total",
          "Ensemble members left out of an answer, by reason (shed, timeout, not_ready, incompatible, error).",
          {"model", "version", "member", "reason"})) {
  http_.connections = &registry.AddGauge("vigil_http_connections", "Open HTTP connections.", {}).WithLabels({});
  http_.connections_refused = &registry
                                   .AddCounter("vigil_http_connections_refused_total",
                                               "HTTP connections closed at once: --max-connections were open.", {})
                                   .WithLabels({});
  http_.accept_errors = &registry
                             .AddCounter("vigil_http_accept_errors_total",
                                         "Failed accepts (out of file descriptors, ...); the listener backs off.", {})
                             .WithLabels({});
  http_.body_bytes_buffered =
      &registry
           .AddGauge("vigil_http_body_bytes_buffered", "Bytes reserved for request bodies still being received.", {})
           .WithLabels({});
  CounterFamily& refused = registry.AddCounter(
      "vigil_http_bodies_refused_total",
      "Request bodies refused while being received: budget (--max-buffered-bytes spent, 503) or timeout "
      "(--body-timeout, 408).",
      {"reason"});
  http_.bodies_refused = &refused.WithLabels({"budget"});
  http_.bodies_timed_out = &refused.WithLabels({"timeout"});
  http_.tls_handshake_failures =
      &registry
           .AddCounter("vigil_http_tls_handshake_failures_total",
                       "TLS handshakes that failed: plain-text clients, or no valid client certificate (mutual TLS).",
                       {})
           .WithLabels({});
  CounterFamily& log_records =
      registry.AddCounter("vigil_prediction_log_records_total",
                          "Prediction log records, by result (written, dropped, failed).", {"result"});
  prediction_log_.written = &log_records.WithLabels({"written"});
  prediction_log_.dropped = &log_records.WithLabels({"dropped"});
  Gauge& rss = registry.AddGauge("vigil_process_resident_memory_bytes", "Resident memory of the server process.", {})
                   .WithLabels({});
  // The standard process_* series every Prometheus client exports, so the
  // usual dashboards and alerts work unchanged.
  Counter& cpu =
      registry.AddCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", {})
          .WithLabels({});
  Gauge& start =
      registry.AddGauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", {})
          .WithLabels({});
  Gauge& fds = registry.AddGauge("process_open_fds", "Number of open file descriptors.", {}).WithLabels({});
  Gauge& max_fds = registry.AddGauge("process_max_fds", "Maximum number of open file descriptors.", {}).WithLabels({});
  Gauge& vsize = registry.AddGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", {}).WithLabels({});
  Gauge& resident =
      registry.AddGauge("process_resident_memory_bytes", "Resident memory size in bytes.", {}).WithLabels({});
  registry.AddCollectHook([&rss, &cpu, &start, &fds, &max_fds, &vsize, &resident] {
    const ProcessStats s = ReadProcessStats();
    rss.Set(s.resident_bytes);
    cpu.SetTotal(s.cpu_seconds);
    start.Set(s.start_time_seconds);
    fds.Set(s.open_fds);
    max_fds.Set(s.max_fds);
    vsize.Set(s.virtual_bytes);
    resident.Set(s.resident_bytes);
  });
}

VersionMetrics ServingMetrics::ForVersion(const std::string& model, const std::string& version) {
  VersionMetrics m;
  m.owner = this;
  m.model = model;
  m.version = version;
  m.requests = &requests_.WithLabels({model, version});
  m.rows = &rows_.WithLabels({model, version});
  m.request_seconds = &request_seconds_.WithLabels({model, version});
  m.queue_seconds = &queue_seconds_.WithLabels({model, version});
  m.compute_seconds = &compute_seconds_.WithLabels({model, version});
  m.batch_size = &batch_size_.WithLabels({model, version});
  m.queue_depth = &queue_depth_.WithLabels({model, version});
  return m;
}

void VersionMetrics::Fail(const std::string& reason) const {
  if (owner) owner->failures().WithLabels({model, version, reason}).Inc();
}

}  // namespace vigil
