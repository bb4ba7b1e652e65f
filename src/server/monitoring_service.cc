#include "server/monitoring_service.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "core/clock.h"
#include "core/logging.h"
#include "core/thread_name.h"
#include "monitoring/process.h"
#include "monitoring/quality.h"
#include "protocol/oip_json.h"
#include "routing/deployments.h"
#include "server/admin_api.h"
#include "server/alert_webhook.h"
#include "server/http_replies.h"

namespace vigil {
namespace {

constexpr size_t kRecentWindows = 100;
// Quality windows read at most this many predictions (about a second of reading).
constexpr int64_t kMaxScannedPredictions = 2'000'000;

// The value of `key` in a query string ("a=1&b=2"), if present.
std::optional<std::string> QueryValue(const std::string& query, const std::string& key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(pos, end - pos);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    pos = end + 1;
  }
  return std::nullopt;
}

// Unix milliseconds a query may name: from 1970 to the year 2286.
constexpr int64_t kMaxQueryTimeMs = 9'999'999'999'999;

// The integer value of `key`, `fallback` when absent; values outside
// [min, max] are refused, so no arithmetic on them can overflow.
StatusOr<int64_t> IntQuery(const std::string& query, const std::string& key, int64_t fallback, int64_t min,
                           int64_t max) {
  auto text = QueryValue(query, key);
  if (!text) return fallback;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size() || v < min || v > max) {
    std::string shown = text->size() > 32 ? text->substr(0, 32) + "..." : *text;
    return InvalidArgument("query parameter '" + key + "' must be an integer from " + std::to_string(min) + " to " +
                           std::to_string(max) + (key == "from" || key == "to" ? " (Unix milliseconds)" : "") +
                           ", got '" + shown + "'");
  }
  return v;
}

void AppendWindow(std::string& out, const StoredDriftWindow& w) {
  out += "{\"model\":";
  AppendJsonString(out, w.model);
  fmt::format_to(std::back_inserter(out),
                 ",\"version\":{},\"start_ms\":{},\"end_ms\":{},\"rows\":{},\"reference_rows\":{},"
                 "\"reference_source\":",
                 w.version, w.start_ms, w.end_ms, w.rows, w.reference_rows);
  AppendJsonString(out, w.reference_source);
  fmt::format_to(std::back_inserter(out), ",\"drifted_share\":{},\"dataset_drift\":{},\"columns\":{}}}",
                 JsonNumber(w.drifted_share), w.dataset_drift ? "true" : "false", w.columns);
}

}  // namespace

std::string DriftColumnsJson(const DriftWindow& w) {
  std::string out = "[";
  for (const ColumnDrift& c : w.columns) {
    if (out.size() > 1) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, c.name);
    out += c.output ? ",\"kind\":\"output\",\"method\":" : ",\"kind\":\"input\",\"method\":";
    AppendJsonString(out, c.method);
    fmt::format_to(std::back_inserter(out),
                   ",\"statistic\":{},\"threshold\":{},\"drifted\":{},\"psi\":{},\"js\":{},\"ks\":{},\"ks_p\":{},"
                   "\"wasserstein\":{},\"chi2\":{},\"chi2_p\":{},\"rows\":{},\"missing\":{},\"out_of_range\":{}}}",
                   JsonNumber(c.statistic), JsonNumber(c.threshold), c.drifted ? "true" : "false", JsonNumber(c.psi),
                   JsonNumber(c.js), JsonNumber(c.ks), JsonNumber(c.ks_p), JsonNumber(c.wasserstein),
                   JsonNumber(c.chi2), JsonNumber(c.chi2_p), c.rows, c.missing, c.out_of_range);
  }
  return out + "]";
}

MonitoringService::MonitoringService(ModelRepository& repository, Store* store, ServingMetrics* metrics,
                                     const Deployments* deployments, Options options, AlertTracker* alerts)
    : repository_(repository),
      store_(store),
      metrics_(metrics),
      deployments_(deployments),
      options_(options),
      alerts_(alerts) {
  if (metrics_) {
    auto& r = metrics_->registry();
    statistic_ = &r.AddGauge("vigil_drift_statistic",
                             "The statistic that decided each monitored column's verdict in its last drift window.",
                             {"model", "version", "feature"});
    detected_ = &r.AddGauge("vigil_drift_detected", "1 when the column drifted in its last window, else 0.",
                            {"model", "version", "feature"});
    windows_ = &r.AddCounter("vigil_drift_windows_total",
                             "Closed drift windows, by result (drift: dataset drift; calm: none).",
                             {"model", "version", "result"});
    nonfinite_ =
        &r.AddCounter("vigil_nonfinite_values_total", "NaN and infinite values seen in model inputs and outputs.",
                      {"model", "version", "tensor"});
    out_of_range_ = &r.AddCounter("vigil_out_of_range_values_total",
                                  "Values of monitored columns outside the reference's range, counted per closed "
                                  "drift window.",
                                  {"model", "version", "feature"});
  }
  thread_ = std::thread([this] {
    SetThreadName("vigil-monitor");
    Loop();
  });
}

MonitoringService::~MonitoringService() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  waker_->Notify();
  thread_.join();
}

void MonitoringService::Loop() {
  const auto now = [] { return std::chrono::steady_clock::now(); };
  auto next_prune = now(), next_round = now();
  for (;;) {
    // Woken early only when a drift window is full: close it now, and keep
    // the rest on its tick.
    const bool full = waker_->Wait(options_.tick);
    {
      MutexLock lock(mu_);
      if (stopping_) return;
    }
    // The versions loaded now, read once for the whole round.
    auto versions = repository_.AcquireAll("", 0);
    if (!versions.ok()) continue;
    Tick(UnixMillis(), *versions);
    if (full && now() < next_round) continue;
    next_round = now() + options_.tick;
    EvaluateHealth(UnixMillis(), *versions);
    EvaluateQuality(UnixMillis());
    if (store_ && now() >= next_prune) {
      next_prune = now() + std::chrono::minutes(10);
      auto pruned = store_->PruneDriftWindows(UnixMillis() - options_.retention_ms);
      if (pruned.ok() && *pruned > 0) spdlog::info("event=drift_windows_pruned windows={}", *pruned);
    }
  }
}

void MonitoringService::Tick(int64_t now_ms, const Versions& versions) {
  for (const auto& mv : versions) {
    DriftMonitor* m = mv->monitor();
    if (!m) continue;
    m->SetWaker(waker_);
    const std::string& model = mv->config().name;
    const std::string version = std::to_string(mv->version());
    if (nonfinite_) {
      MutexLock lock(mu_);
      Seen& seen = seen_[{model, mv->version()}];
      const int64_t in = m->nonfinite_inputs(), out = m->nonfinite_outputs();
      if (in > seen.nonfinite_inputs) {
        nonfinite_->WithLabels({model, version, "input"}).Inc(static_cast<double>(in - seen.nonfinite_inputs));
      }
      if (out > seen.nonfinite_outputs) {
        nonfinite_->WithLabels({model, version, "output"}).Inc(static_cast<double>(out - seen.nonfinite_outputs));
      }
      seen.nonfinite_inputs = in;
      seen.nonfinite_outputs = out;
    }
    if (auto w = m->CloseIfDue(now_ms)) Record(*mv, *w);
  }
}

HealthCounters MonitoringService::SampleHealth(const std::string& model, const std::string& version,
                                               uint64_t* queue_full) const {
  HealthCounters c;
  const VersionMetrics vm = metrics_->ForVersion(model, version);
  c.ok = static_cast<uint64_t>(vm.requests->Value());
  c.latency = vm.request_seconds->CumulativeCounts();
  *queue_full = 0;
  metrics_->failures().ForEach([&](const std::vector<std::string>& labels, const Counter& counter) {
    if (labels[0] != model || labels[1] != version) return;
    const std::string& reason = labels[2];
    if (reason == "invalid_request" || reason == "cancelled") return;  // the client's doing, not the model's
    c.errors += static_cast<uint64_t>(counter.Value());
    if (reason == "queue_full") *queue_full += static_cast<uint64_t>(counter.Value());
  });
  return c;
}

void MonitoringService::EvaluateHealth(int64_t now_ms, const Versions& versions) {
  if (!metrics_) return;
  const int64_t width = options_.health_window.count();
  std::set<std::pair<std::string, int64_t>> live;
  for (const auto& mv : versions) {
    const ModelConfig& config = mv->config();
    const std::string version = std::to_string(mv->version());
    live.insert({config.name, mv->version()});
    auto [it, fresh] = health_.try_emplace({config.name, mv->version()});
    HealthTrack& t = it->second;
    if (fresh) {
      t.start_ms = now_ms;
      t.base = SampleHealth(config.name, version, &t.queue_full_base);
      continue;
    }
    t.peak_queue = std::max(t.peak_queue, static_cast<int64_t>(mv->scheduler().QueueDepth()));
    if (now_ms - t.start_ms < width) continue;
    uint64_t queue_full = 0;
    HealthCounters now = SampleHealth(config.name, version, &queue_full);
    const HealthReading r = ReadHealth(t.base, now, LatencyBuckets(), t.peak_queue,
                                       config.dynamic_batching.max_queue_size, queue_full - t.queue_full_base);
    const int64_t start = t.start_ms;
    t = HealthTrack{now_ms, std::move(now), queue_full, 0};
    {
      MutexLock lock(mu_);
      last_health_[{config.name, mv->version()}] = r;
    }
    if (!alerts_) continue;
    const HealthLimits& limits = config.monitoring.health;
    const int64_t fire = config.monitoring.alert_after, resolve = config.monitoring.resolve_after;
    const AlertLabels labels{{"model", config.name}, {"version", version}};
    ObserveRequests(labels, fmt::format("{} v{}", config.name, version), r, limits, fire, resolve, start, now_ms);
    alerts_->Observe(
        "QueueSaturated", labels, r.queue_saturation >= limits.queue_saturation,
        {"queue_saturation", r.queue_saturation, limits.queue_saturation, start, now_ms,
         fmt::format("the queue of {} v{} reached {} of {} requests{}", config.name, version, r.peak_queue,
                     config.dynamic_batching.max_queue_size, r.queue_saturation >= 1 ? " and refused requests" : "")},
        fire, resolve, now_ms);
  }
  std::erase_if(health_, [&](const auto& e) { return !live.count(e.first); });
  EvaluateEndpointHealth(now_ms);

  peak_memory_ = std::max(peak_memory_, ProcessResidentBytes());
  if (memory_window_start_ms_ == 0) memory_window_start_ms_ = now_ms;
  if (now_ms - memory_window_start_ms_ < width) return;
  if (alerts_ && options_.memory_limit_bytes > 0) {
    const double mib = 1024.0 * 1024.0;
    alerts_->Observe(
        "MemoryHigh", {}, peak_memory_ > options_.memory_limit_bytes,
        {"resident_memory_bytes", static_cast<double>(peak_memory_), static_cast<double>(options_.memory_limit_bytes),
         memory_window_start_ms_, now_ms,
         fmt::format("the server's resident memory reached {:.0f} MiB (limit {:.0f} MiB)",
                     static_cast<double>(peak_memory_) / mib, static_cast<double>(options_.memory_limit_bytes) / mib)},
        2, 2, now_ms);
  }
  memory_window_start_ms_ = now_ms;
  peak_memory_ = 0;
}

void MonitoringService::ObserveRequests(const AlertLabels& labels, const std::string& who, const HealthReading& r,
                                        const HealthLimits& limits, int64_t fire, int64_t resolve, int64_t start_ms,
                                        int64_t now_ms) {
  if (!alerts_) return;
  const bool enough = static_cast<int64_t>(r.requests) >= limits.min_requests;
  if (limits.latency_p99_ms > 0) {  // 0 is off, and so is NaN (an endpoint without a latency limit)
    const double p99 = r.latency_p99_ms.value_or(0);
    alerts_->Observe("LatencyHigh", labels, enough && p99 > limits.latency_p99_ms,
                     {"latency_p99_ms", p99, limits.latency_p99_ms, start_ms, now_ms,
                      fmt::format("p99 latency of {} is {:.1f} ms over {} requests (limit {} ms)", who, p99, r.requests,
                                  limits.latency_p99_ms)},
                     fire, resolve, now_ms);
  }
  alerts_->Observe("ErrorRateHigh", labels, enough && r.error_rate > limits.error_rate,
                   {"error_rate", r.error_rate, limits.error_rate, start_ms, now_ms,
                    fmt::format("{} of {} requests to {} failed on the server ({:.1f}%, limit {:.1f}%)", r.errors,
                                r.requests, who, 100 * r.error_rate, 100 * limits.error_rate)},
                   fire, resolve, now_ms);
}

void MonitoringService::EvaluateEndpointHealth(int64_t now_ms) {
  if (!deployments_) return;
  const int64_t width = options_.health_window.count();
  std::set<std::pair<std::string, std::string>> live;
  for (const auto& router : deployments_->All()) {
    const DeploymentSpec& spec = router->spec();
    if (!spec.health) continue;
    const HealthLimits& limits = *spec.health;
    for (int i = -1; i < static_cast<int>(spec.candidates.size()); ++i) {
      const std::string& variant = i < 0 ? spec.production.name : spec.candidates[static_cast<size_t>(i)].name;
      live.insert({spec.endpoint, variant});
      const VariantStats& stats = router->Stats(i);
      VariantTrack now{router,
                       now_ms,
                       stats.requests.load(std::memory_order_relaxed) - stats.rejected.load(std::memory_order_relaxed),
                       stats.errors.load(std::memory_order_relaxed),
                       {}};
      VariantTrack& t = variant_health_[{spec.endpoint, variant}];
      if (t.router != router) {  // new, or a new spec: start counting again
        now.latency = stats.latency.Take();
        t = std::move(now);
        continue;
      }
      if (now_ms - t.start_ms < width) continue;
      now.latency = stats.latency.Take();
      HealthReading r;
      r.requests = now.requests - t.requests;
      r.errors = now.errors - t.errors;
      r.error_rate = r.requests > 0 ? static_cast<double>(r.errors) / static_cast<double>(r.requests) : 0;
      const LatencyHistogram::Snapshot window = now.latency - t.latency;
      if (window.total > 0) r.latency_p99_ms = window.Quantile(0.99) / 1e6;
      const int64_t start = t.start_ms;
      t = std::move(now);
      ObserveRequests(
          {{"endpoint", spec.endpoint}, {"variant", variant}}, fmt::format("{} variant {}", spec.endpoint, variant), r,
          limits, spec.alert_after ? spec.alert_after : 3, spec.resolve_after ? spec.resolve_after : 3, start, now_ms);
    }
  }
  std::erase_if(variant_health_, [&](const auto& e) { return !live.count(e.first); });
}

void MonitoringService::EvaluateQuality(int64_t now_ms) {
  if (!alerts_ || !store_ || !deployments_) return;
  for (const auto& router : deployments_->All()) {
    const DeploymentSpec& spec = router->spec();
    std::vector<const Variant*> variants{&spec.production};
    for (const auto& c : spec.candidates) {
      if (c.mode != VariantMode::kShadow) variants.push_back(&c);
    }
    // Variants whose rules share a window share one read of the feedback.
    std::map<int64_t, StatusOr<std::vector<JoinedPrediction>>> joined_from;
    for (const Variant* v : variants) {
      auto mv = repository_.Acquire(v->model, v->version);
      if (!mv.ok()) continue;
      const MonitoringConfig& mc = (*mv)->config().monitoring;
      const std::optional<QualityRule>& rule = spec.quality ? spec.quality : mc.quality;
      if (!rule) continue;
      std::optional<double> reference;
      if (DriftMonitor* m = (*mv)->monitor()) {
        if (auto profile = m->reference()) reference = QualityMetric(profile->quality, rule->metric);
      }
      const double limit = rule->Limit(reference);
      if (std::isnan(limit)) continue;  // only a drop rule, and no labelled reference to drop from
      const int64_t width = rule->window_s * 1000;
      const int64_t start = now_ms / width * width - 2 * width;  // ended a window-length ago
      int64_t& judged = judged_.try_emplace({spec.endpoint, v->name}, start - width).first->second;
      if (start <= judged) continue;
      judged = start;
      auto it = joined_from.find(start);
      if (it == joined_from.end()) it = joined_from.emplace(start, store_->Joined(spec.endpoint, start)).first;
      const auto& joined = it->second;
      if (!joined.ok()) continue;
      std::vector<Outcome> outcomes;
      for (const auto& j : *joined) {
        if (j.variant == v->name && j.time_ms < start + width) {
          outcomes.push_back(OutcomeOf(j));
        }
      }
      const Quality q = ComputeQuality(outcomes);
      const size_t labels = rule->metric == "mean_reward" ? q.rewarded : q.labeled;
      if (static_cast<int64_t>(labels) < rule->min_labels) continue;  // no verdict on too few labels
      const std::optional<double> value = QualityMetric(q, rule->metric);
      if (!value) continue;
      const bool from_reference = reference && !std::isnan(rule->drop) && !(limit <= rule->below);
      const std::string basis =
          from_reference ? fmt::format(": reference.csv {:.3f} less {}", *reference, rule->drop) : "";
      alerts_->Observe("QualityRegression",
                       {{"endpoint", spec.endpoint}, {"variant", v->name}, {"metric", rule->metric}}, *value < limit,
                       {rule->metric, *value, limit, start, start + width,
                        fmt::format("{} of {} variant {} is {:.3f} over {} labels (alert below {:.3f}{})", rule->metric,
                                    spec.endpoint, v->name, *value, labels, limit, basis)},
                       spec.alert_after ? spec.alert_after : mc.alert_after,
                       spec.resolve_after ? spec.resolve_after : mc.resolve_after, now_ms);
    }
  }
}

void MonitoringService::Record(const ModelVersion& mv, const DriftWindow& w) {
  const std::string& model = mv.config().name;
  const std::string version = std::to_string(mv.version());
  std::string drifted;
  for (const auto& c : w.columns) {
    if (statistic_) statistic_->WithLabels({model, version, c.name}).Set(c.statistic);
    if (detected_) detected_->WithLabels({model, version, c.name}).Set(c.drifted ? 1 : 0);
    if (c.drifted) drifted += (drifted.empty() ? "" : ",") + c.name;
  }
  if (windows_) windows_->WithLabels({model, version, w.dataset_drift ? "drift" : "calm"}).Inc();
  if (out_of_range_) {
    for (const auto& c : w.columns) {
      if (c.out_of_range > 0) {
        out_of_range_->WithLabels({model, version, c.name}).Inc(static_cast<double>(c.out_of_range));
      }
    }
  }
  if (alerts_) {
    const MonitoringConfig& mc = mv.config().monitoring;
    // NaN/Inf: the inputs' share against the reference's (data may have
    // missing values); any in the outputs (a model should never emit them).
    struct Share {
      int64_t nonfinite = 0, values = 0;
      double Of() const { return values > 0 ? static_cast<double>(nonfinite) / static_cast<double>(values) : 0; }
    };
    Share window[2], reference[2];  // [0] inputs, [1] outputs
    int64_t outside = 0, inputs = 0;
    for (const auto& c : w.columns) {
      window[c.output].nonfinite += c.missing;
      window[c.output].values += c.rows + c.missing;
      if (!c.output) {
        outside += c.out_of_range;
        inputs += c.rows;
      }
    }
    if (DriftMonitor* m = mv.monitor(); m && m->reference()) {
      for (const auto& c : m->reference()->columns) {
        reference[c.output].nonfinite += c.missing;
        reference[c.output].values += c.rows + c.missing;
      }
    }
    for (int t = 0; t < 2; ++t) {
      const double share = window[t].Of(), baseline = t == 0 ? reference[t].Of() : 0;
      const double spike_at = mc.nonfinite_spike * baseline;
      const char* tensor = t == 0 ? "input" : "output";
      alerts_->Observe("NonFiniteValues", {{"model", model}, {"version", version}, {"tensor", tensor}},
                       window[t].nonfinite > 0 && share > spike_at,
                       {"nonfinite_share", share, spike_at, w.start_ms, w.end_ms,
                        fmt::format("{} NaN or infinite {} values in {} v{} over {} rows: {:.2f}% of them{}",
                                    window[t].nonfinite, tensor, model, version, w.rows, 100 * share,
                                    t == 0 ? fmt::format(" (reference {:.2f}%)", 100 * baseline) : "")},
                       1, mc.resolve_after, w.end_ms);
    }
    const double outside_share = inputs > 0 ? static_cast<double>(outside) / static_cast<double>(inputs) : 0;
    alerts_->Observe("OutOfRangeValues", {{"model", model}, {"version", version}}, outside_share > mc.out_of_range_rate,
                     {"out_of_range_share", outside_share, mc.out_of_range_rate, w.start_ms, w.end_ms,
                      fmt::format("{:.2f}% of the input values of {} v{} fell outside the reference's range over {} "
                                  "rows (reference of {} rows)",
                                  100 * outside_share, model, version, w.rows, w.reference_rows)},
                     mc.alert_after, mc.resolve_after, w.end_ms);
    for (const auto& c : w.columns) {
      const std::string summary =
          fmt::format("{} of {} v{} {}: {} {:.4g} (threshold {:.4g}) over {} rows", c.output ? "output" : "feature",
                      model, version, c.drifted ? "drifted" : "is calm", c.method, c.statistic, c.threshold, c.rows);
      alerts_->Observe(c.output ? "PredictionDrift" : "FeatureDrift",
                       {{"model", model}, {"version", version}, {"feature", c.name}}, c.drifted,
                       {c.method, c.statistic, c.threshold, w.start_ms, w.end_ms, summary}, mc.alert_after,
                       mc.resolve_after, w.end_ms);
    }
    alerts_->Observe(
        "DatasetDrift", {{"model", model}, {"version", version}}, w.dataset_drift,
        {"drifted_share", w.drifted_share, mc.drift_share, w.start_ms, w.end_ms,
         fmt::format("{:.0f}% of the input features of {} v{} drifted", 100 * w.drifted_share, model, version)},
        mc.alert_after, mc.resolve_after, w.end_ms);
  }
  spdlog::info("event=drift_window model={} version={} rows={} drifted_share={:.3f} dataset_drift={} drifted={}", model,
               version, w.rows, w.drifted_share, w.dataset_drift, LogValue(drifted));
  StoredDriftWindow stored{model,           mv.version(),       w.start_ms,         w.end_ms,
                           w.rows,          w.reference_rows,   w.reference_source, w.drifted_share,
                           w.dataset_drift, DriftColumnsJson(w)};
  if (store_) {
    if (Status s = store_->WriteDriftWindow(stored); !s.ok()) {
      spdlog::error("event=drift_window_not_stored model={} version={} error={}", model, version,
                    LogValue(s.message()));
    }
    return;
  }
  MutexLock lock(mu_);
  auto& recent = recent_[model];
  recent.push_back(std::move(stored));
  if (recent.size() > kRecentWindows) recent.pop_front();
}

void MonitoringService::Handle(const HttpRequest& request, const std::vector<std::string>& path,
                               const HttpServer::Responder& respond) const {
  if (path[1] == "alerts") {
    if (path.size() != 2 || request.method() != boost::beast::http::verb::get) {
      return respond(ErrorResponse(InvalidArgument("use GET /v1/alerts")));
    }
    if (!alerts_) return respond(MakeResponse(200, R"({"firing":[],"pending":[],"recent":[]})"));
    return respond(MakeResponse(200, AlertsJson(alerts_->Get(100))));
  }
  // /v1/monitoring/{name}/drift or /quality
  if (path.size() != 4 || (path[3] != "drift" && path[3] != "quality")) {
    return respond(ErrorResponse(NotFound("no monitoring resource " + std::string(request.target()) +
                                          "; try /v1/monitoring/{model or endpoint}/drift or "
                                          "/v1/monitoring/{endpoint}/quality")));
  }
  if (request.method() != boost::beast::http::verb::get) {
    return respond(ErrorResponse(InvalidArgument(std::string(request.method_string()) + " is not allowed on " +
                                                 std::string(request.target()) + "; use GET")));
  }
  const std::string target(request.target());
  const size_t q = target.find('?');
  const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
  respond(path[3] == "drift" ? Drift(path[2], query) : QualityWindows(path[2], query));
}

HttpResponse MonitoringService::QualityWindows(const std::string& endpoint, const std::string& query) const {
  if (!deployments_ || !deployments_->Find(endpoint)) {
    return ErrorResponse(NotFound("no endpoint '" + endpoint + "' (quality needs an endpoint's prediction log)"));
  }
  if (!store_) {
    return ErrorResponse(Unavailable("the server runs without a store (--data-dir), so it keeps no feedback"));
  }
  const int64_t now = UnixMillis();
  auto window_s = IntQuery(query, "window_s", 3600, 1, kMaxQualityWindowS);
  auto from = IntQuery(query, "from", now - 7 * 24 * 3600 * 1000LL, 0, kMaxQueryTimeMs);
  auto to = IntQuery(query, "to", now, 0, kMaxQueryTimeMs);
  for (const auto* s : {&window_s, &from, &to}) {
    if (!s->ok()) return ErrorResponse(s->status());
  }
  const int64_t width = *window_s * 1000;
  struct Cell {
    std::vector<Outcome> outcomes;  // joined with feedback
    int64_t predictions = 0;        // all served ones
    int64_t estimated = 0;          // with a probability vector
    double expected_correct = 0;
  };
  std::map<int64_t, std::map<std::string, Cell>> windows;  // window start -> variant
  auto window_of = [&](int64_t t) { return *from + (t - *from) / width * width; };
  // Every served prediction: counted, and its expected correctness summed
  // (confidence-based estimation) whether or not its label has come.
  auto scanned = store_->ScanPredictions(endpoint, *from, *to + 1, kMaxScannedPredictions,
                                         [&](const std::string& variant, int64_t time_ms, const std::string& outputs) {
                                           Cell& c = windows[window_of(time_ms)][variant];
                                           ++c.predictions;
                                           if (auto e = ExpectedCorrect(ParseCompactValues(outputs))) {
                                             c.expected_correct += *e;
                                             ++c.estimated;
                                           }
                                         });
  if (!scanned.ok()) return ErrorResponse(scanned.status());
  auto joined = store_->Joined(endpoint, *from);
  if (!joined.ok()) return ErrorResponse(joined.status());
  std::vector<Outcome> all;
  for (const auto& j : *joined) {
    if (j.time_ms > *to) continue;
    Outcome o = OutcomeOf(j);
    all.push_back(o);
    windows[window_of(j.time_ms)][j.variant].outcomes.push_back(std::move(o));
  }
  const Quality overall = ComputeQuality(all);
  const double horizon_ms = overall.label_delay_p90_s.value_or(0) * 1000;
  std::string out = "{\"endpoint\":";
  AppendJsonString(out, endpoint);
  fmt::format_to(std::back_inserter(out),
                 ",\"window_s\":{},\"label_delay_p90_s\":{},\"predictions_scanned\":{},\"scan_truncated\":{},"
                 "\"windows\":[",
                 *window_s, JsonNumber(overall.label_delay_p90_s.value_or(std::nan(""))), *scanned,
                 *scanned >= kMaxScannedPredictions ? "true" : "false");
  bool first = true;
  for (const auto& [start, variants] : windows) {
    if (!first) out += ',';
    first = false;
    size_t labeled = 0;
    std::string body;
    for (const auto& [variant, cell] : variants) {
      const Quality q = ComputeQuality(cell.outcomes);
      labeled += q.labeled;
      if (!body.empty()) body += ',';
      AppendJsonString(body, variant);
      fmt::format_to(std::back_inserter(body), ":{{\"predictions\":{},\"joined\":{},\"labeled\":{},\"rewarded\":{}",
                     cell.predictions, q.joined, q.labeled, q.rewarded);
      AppendQualityMembers(body, q);
      if (cell.estimated > 0) {
        fmt::format_to(std::back_inserter(body), ",\"estimated_accuracy\":{},\"estimated_rows\":{}",
                       JsonNumber(cell.expected_correct / static_cast<double>(cell.estimated)), cell.estimated);
      }
      body += '}';
    }
    const bool incomplete = labeled == 0 || static_cast<double>(now - (start + width)) < horizon_ms;
    fmt::format_to(std::back_inserter(out), "{{\"start_ms\":{},\"end_ms\":{},\"incomplete\":{},\"variants\":{{{}}}}}",
                   start, start + width, incomplete ? "true" : "false", body);
  }
  out += "]}";
  return MakeResponse(200, std::move(out));
}

HttpResponse MonitoringService::Drift(const std::string& name, const std::string& query) const {
  auto from = IntQuery(query, "from", 0, 0, kMaxQueryTimeMs);
  auto to = IntQuery(query, "to", kMaxQueryTimeMs, 0, kMaxQueryTimeMs);
  auto limit = IntQuery(query, "limit", 100, 1, 10000);
  for (const auto* s : {&from, &to, &limit}) {
    if (!s->ok()) return ErrorResponse(s->status());
  }

  // An endpoint covers its production model and candidates; otherwise the name is a model.
  std::vector<std::string> models;
  if (auto router = deployments_ ? deployments_->Find(name) : nullptr) {
    std::set<std::string> seen;
    if (seen.insert(router->spec().production.model).second) models.push_back(router->spec().production.model);
    for (const auto& c : router->spec().candidates) {
      if (seen.insert(c.model).second) models.push_back(c.model);
    }
  } else {
    if (!repository_.Find(name).ok()) {
      return ErrorResponse(NotFound("no model or endpoint '" + name + "'"));
    }
    models.push_back(name);
  }

  std::string out = "{\"name\":";
  AppendJsonString(out, name);
  out += ",\"versions\":[";
  bool first = true;
  for (const auto& model : models) {
    auto versions = repository_.AcquireAll(model, 0);
    if (!versions.ok()) continue;
    for (const auto& mv : *versions) {
      if (!first) out += ',';
      first = false;
      out += "{\"model\":";
      AppendJsonString(out, model);
      fmt::format_to(std::back_inserter(out), ",\"version\":{},\"monitored\":{}", mv->version(),
                     mv->monitor() ? "true" : "false");
      if (DriftMonitor* m = mv->monitor()) {
        const auto ref = m->reference();
        out += ",\"reference\":";
        if (ref) {
          out += "{\"source\":";
          AppendJsonString(out, ref->source);
          std::string quality;
          AppendQualityMembers(quality, ref->quality);
          fmt::format_to(std::back_inserter(out), ",\"rows\":{},\"columns\":{},\"labeled\":{},\"quality\":{{{}}}}}",
                         ref->rows, ref->columns.size(), ref->quality.labeled,
                         quality.empty() ? "" : quality.substr(1));
        } else {
          out += "null";
          fmt::format_to(std::back_inserter(out), ",\"collecting_reference_rows\":{}", m->config().reference_rows);
        }
        fmt::format_to(std::back_inserter(out),
                       ",\"window_rows\":{},\"window_seconds\":{},\"min_window_rows\":{},\"nonfinite_inputs\":{},"
                       "\"nonfinite_outputs\":{}",
                       m->config().window_rows, m->config().window_seconds, m->config().min_window_rows,
                       m->nonfinite_inputs(), m->nonfinite_outputs());
      }
      std::optional<HealthReading> health;
      {
        MutexLock lock(mu_);
        auto it = last_health_.find({model, mv->version()});
        if (it != last_health_.end()) health = it->second;
      }
      if (health) {
        fmt::format_to(std::back_inserter(out),
                       ",\"health\":{{\"requests\":{},\"errors\":{},\"error_rate\":{},\"latency_p99_ms\":{},"
                       "\"peak_queue\":{},\"queue_saturation\":{}}}",
                       health->requests, health->errors, JsonNumber(health->error_rate),
                       JsonNumber(health->latency_p99_ms.value_or(std::nan(""))), health->peak_queue,
                       JsonNumber(health->queue_saturation));
      }
      out += '}';
    }
  }
  out += "],\"windows\":[";
  first = true;
  for (const auto& model : models) {
    std::vector<StoredDriftWindow> windows;
    if (store_) {
      auto stored = store_->DriftWindows(model, *from, *to, static_cast<int>(*limit));
      if (!stored.ok()) return ErrorResponse(stored.status());
      windows = std::move(stored).value();
    } else {
      MutexLock lock(mu_);
      auto it = recent_.find(model);
      if (it != recent_.end()) {
        for (const auto& w : it->second) {
          if (w.end_ms >= *from && w.end_ms <= *to) windows.push_back(w);
        }
      }
      if (static_cast<int64_t>(windows.size()) > *limit) windows.erase(windows.begin(), windows.end() - *limit);
    }
    for (const auto& w : windows) {
      if (!first) out += ',';
      first = false;
      AppendWindow(out, w);
    }
  }
  out += "]}";
  return MakeResponse(200, std::move(out));
}

}  // namespace vigil
