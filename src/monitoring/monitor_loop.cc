#include "monitoring/monitor_loop.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "core/logging.h"
#include "core/thread_name.h"
#include "monitoring/process.h"
#include "monitoring/quality.h"

namespace vigil {
namespace {

// The drifted input features of a window, the first few by name.
std::string DriftedNames(const DriftWindow& w) {
  constexpr size_t kNamed = 5;
  std::string out;
  size_t drifted = 0;
  for (const auto& c : w.columns) {
    if (c.output || !c.drifted) continue;
    if (drifted++ < kNamed) out += (out.empty() ? "" : ", ") + c.name;
  }
  if (drifted > kNamed) out += fmt::format(" and {} more", drifted - kNamed);
  return drifted ? out : "none";
}

// A window as the store keeps it (columns and counts as JSON), and back.
StoredDriftWindow Stored(const WatchedVersion& v, const DriftWindow& w) {
  StoredDriftWindow s{v.model,          v.version,          w.start_ms,      w.end_ms,        w.rows,
                      w.reference_rows, w.reference_source, w.drifted_share, w.dataset_drift, DriftColumnsJson(w)};
  s.counts = WindowCountsJson(w.counts);
  return s;
}
StatusOr<DriftWindow> Unstored(const StoredDriftWindow& s) {
  DriftWindow w;
  VIGIL_ASSIGN_OR_RETURN(w.columns, ParseDriftColumns(s.columns));
  w.start_ms = s.start_ms;
  w.end_ms = s.end_ms;
  w.rows = s.rows;
  w.reference_rows = s.reference_rows;
  w.reference_source = s.reference_source;
  w.drifted_share = s.drifted_share;
  w.dataset_drift = s.dataset_drift;
  return w;
}

}  // namespace

StatusOr<std::unique_ptr<MonitorLoop>> MonitorLoop::Create(Options options) {
  if (!options.world || !options.metrics || !options.alerts || !options.drift_store) {
    return InvalidArgument("the monitor loop needs a world, metrics, an alert tracker and a drift store");
  }
  if (!options.replica.empty() && !options.leadership) {
    return InvalidArgument("a replica's monitor loop needs its leadership");
  }
  if (options.tick.count() <= 0 || options.health_window.count() <= 0) {
    return InvalidArgument("the monitor loop's tick and health window must be positive");
  }
  return std::unique_ptr<MonitorLoop>(new MonitorLoop(std::move(options)));
}

MonitorLoop::MonitorLoop(Options options)
    : options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : *WallClock::System()),
      statistic_(options_.metrics->registry().AddGauge(
          "vigil_drift_statistic",
          "The statistic that decided each monitored column's verdict in its last drift window.",
          {"model", "version", "feature"})),
      detected_(options_.metrics->registry().AddGauge("vigil_drift_detected",
                                                      "1 when the column drifted in its last window, else 0.",
                                                      {"model", "version", "feature"})),
      windows_(options_.metrics->registry().AddCounter(
          "vigil_drift_windows_total", "Closed drift windows, by result (drift: dataset drift; calm: none).",
          {"model", "version", "result"})),
      nonfinite_(options_.metrics->registry().AddCounter("vigil_nonfinite_values_total",
                                                         "NaN and infinite values seen in model inputs and outputs.",
                                                         {"model", "version", "tensor"})),
      out_of_range_(options_.metrics->registry().AddCounter(
          "vigil_out_of_range_values_total",
          "Values of monitored columns outside the reference's range, counted per closed drift window.",
          {"model", "version", "feature"})),
      quality_(options_.metrics->registry().AddGauge(
          "vigil_quality",
          "Quality of an endpoint variant's predictions from joined feedback, since its spec took effect.",
          {"endpoint", "variant", "metric"})) {
  if (!options_.background) return;
  thread_ = std::thread([this] {
    SetThreadName("vigil-monitor");
    Loop();
  });
}

MonitorLoop::~MonitorLoop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  waker_->Notify();
  if (thread_.joinable()) thread_.join();
}

void MonitorLoop::Loop() {
  const auto now = [] { return std::chrono::steady_clock::now(); };
  auto next_round = now();
  for (;;) {
    // Woken early only when a drift window is full: close it now, and keep
    // the rest on its tick.
    const bool full = waker_->Wait(options_.tick);
    {
      MutexLock lock(mu_);
      if (stopping_) return;
    }
    if (full && now() < next_round) {
      CloseWindows(clock_.NowMillis(), options_.world->Versions());
      continue;
    }
    next_round = now() + options_.tick;
    Round(clock_.NowMillis());
  }
}

void MonitorLoop::Round(int64_t now_ms) {
  // What is served now, read once for the whole round.
  const std::vector<WatchedVersion> versions = options_.world->Versions();
  const std::vector<WatchedEndpoint> endpoints = options_.world->Endpoints();
  CloseWindows(now_ms, versions);
  if (const int64_t epoch = options_.replica.empty() ? 0 : options_.leadership->Epoch(); epoch != epoch_) {
    epoch_ = epoch;
    merged_to_.clear();  // cursors read in another epoch may be stale: a new leader reads them again
    if (epoch > 0) {
      // Newly elected: what the last leader may have decided but not sent goes
      // out again, resolutions of the last 10 minutes too (a receiver drops
      // what it already has by key).
      const size_t sent = options_.alerts->Renotify(now_ms, 10 * 60 * 1000);
      spdlog::info("event=alerts_renotified epoch={} alerts={}", epoch, sent);
    }
  }
  if (!options_.replica.empty() && now_ms >= next_merge_ms_) {
    next_merge_ms_ = now_ms + options_.merge_every.count();
    for (const WatchedVersion& v : versions) {
      if (!v.monitor) continue;
      ReadMergedWindows(v);  // before merging: a window merged now is published next time
      if (options_.leadership->IsLeader()) MergeWindows(now_ms, v);
    }
  }
  EvaluateHealth(now_ms, versions);
  EvaluateEndpointHealth(now_ms, endpoints);
  EvaluateQuality(now_ms, versions, endpoints);
  RefreshQualityGauges(endpoints);
  EvaluateOverload(now_ms, endpoints);
  if (now_ms >= next_prune_ms_) {
    next_prune_ms_ = now_ms + 10 * 60 * 1000;
    auto pruned = options_.drift_store->PruneDriftWindows(now_ms - options_.retention_ms);
    if (pruned.ok() && *pruned > 0) spdlog::info("event=drift_windows_pruned windows={}", *pruned);
  }
}

void MonitorLoop::EvaluateOverload(int64_t now_ms, const std::vector<WatchedEndpoint>& endpoints) {
  std::set<std::string> live;
  for (const WatchedEndpoint& e : endpoints) {
    if (!e.overload) continue;
    const WatchedEndpoint::Overload& o = *e.overload;
    live.insert(e.endpoint);
    options_.metrics->endpoint_rung().WithLabels({e.endpoint}).Set(o.rung);
    auto [it, fresh] = rungs_.try_emplace(e.endpoint, WatchedEndpoint::Overload{});
    if (it->second.rung != o.rung && options_.on_rung_change) options_.on_rung_change(e.endpoint, it->second, o);
    it->second = o;
    // The ladder already waits recover_after_s before stepping down, so the
    // alert fires and resolves with it (one round each way).
    options_.alerts->Observe("Degraded", Own({{"endpoint", e.endpoint}}), o.rung > 0,
                             {"rung", static_cast<double>(o.rung), 0, o.since_ms, now_ms,
                              o.rung > 0 ? fmt::format("endpoint {} is degraded: rung {} ({}) since {} ms ago",
                                                       e.endpoint, o.rung, o.rung_name, now_ms - o.since_ms)
                                         : fmt::format("endpoint {} serves its full models again", e.endpoint)},
                             1, 1, now_ms);
  }
  std::erase_if(rungs_, [&](const auto& r) { return !live.count(r.first); });
}

std::optional<HealthReading> MonitorLoop::LastHealth(const std::string& model, int64_t version) const {
  MutexLock lock(mu_);
  auto it = last_health_.find({model, version});
  if (it == last_health_.end()) return std::nullopt;
  return it->second;
}

void MonitorLoop::CloseWindows(int64_t now_ms, const std::vector<WatchedVersion>& versions) {
  for (const auto& v : versions) {
    DriftMonitor* m = v.monitor;
    if (!m) continue;
    m->SetWaker(waker_);
    const std::string version = std::to_string(v.version);
    Seen& seen = seen_[{v.model, v.version}];
    const int64_t in = m->nonfinite_inputs(), out = m->nonfinite_outputs();
    if (in > seen.nonfinite_inputs) {
      nonfinite_.WithLabels({v.model, version, "input"}).Inc(static_cast<double>(in - seen.nonfinite_inputs));
    }
    if (out > seen.nonfinite_outputs) {
      nonfinite_.WithLabels({v.model, version, "output"}).Inc(static_cast<double>(out - seen.nonfinite_outputs));
    }
    seen.nonfinite_inputs = in;
    seen.nonfinite_outputs = out;
    const bool partial = !options_.replica.empty();  // the leader tests the merge, not each part
    if (auto w = m->CloseIfDue(now_ms, partial ? std::optional<int64_t>(1) : std::nullopt)) Record(v, *w);
  }
}

HealthCounters MonitorLoop::SampleHealth(const std::string& model, const std::string& version,
                                         uint64_t* queue_full) const {
  HealthCounters c;
  const VersionMetrics vm = options_.metrics->ForVersion(model, version);
  c.ok = static_cast<uint64_t>(vm.requests->Value());
  c.latency = vm.request_seconds->CumulativeCounts();
  *queue_full = 0;
  options_.metrics->failures().ForEach([&](const std::vector<std::string>& labels, const Counter& counter) {
    if (labels[0] != model || labels[1] != version) return;
    const std::string& reason = labels[2];
    if (reason == "invalid_request" || reason == "cancelled") return;  // the client's doing, not the model's
    c.errors += static_cast<uint64_t>(counter.Value());
    if (reason == "queue_full") *queue_full += static_cast<uint64_t>(counter.Value());
  });
  return c;
}

void MonitorLoop::EvaluateHealth(int64_t now_ms, const std::vector<WatchedVersion>& versions) {
  const int64_t width = options_.health_window.count();
  std::set<std::pair<std::string, int64_t>> live;
  for (const auto& v : versions) {
    const std::string version = std::to_string(v.version);
    live.insert({v.model, v.version});
    auto [it, fresh] = health_.try_emplace({v.model, v.version});
    HealthTrack& t = it->second;
    if (fresh) {
      t.start_ms = now_ms;
      t.base = SampleHealth(v.model, version, &t.queue_full_base);
      continue;
    }
    t.peak_queue = std::max(t.peak_queue, v.queue_depth);
    if (now_ms - t.start_ms < width) continue;
    uint64_t queue_full = 0;
    HealthCounters now = SampleHealth(v.model, version, &queue_full);
    const HealthReading r =
        ReadHealth(t.base, now, LatencyBuckets(), t.peak_queue, v.max_queue_size, queue_full - t.queue_full_base);
    const int64_t start = t.start_ms;
    t = HealthTrack{now_ms, std::move(now), queue_full, 0};
    {
      MutexLock lock(mu_);
      last_health_[{v.model, v.version}] = r;
    }
    if (!v.monitoring) continue;
    const HealthLimits& limits = v.monitoring->health;
    const int64_t fire = v.monitoring->alert_after, resolve = v.monitoring->resolve_after;
    const AlertLabels labels = Own({{"model", v.model}, {"version", version}});
    ObserveRequests(labels, fmt::format("{} v{}", v.model, version), r, limits, fire, resolve, start, now_ms);
    options_.alerts->Observe(
        "QueueSaturated", labels, r.queue_saturation >= limits.queue_saturation,
        {"queue_saturation", r.queue_saturation, limits.queue_saturation, start, now_ms,
         fmt::format("the queue of {} v{} reached {} of {} requests{}", v.model, version, r.peak_queue,
                     v.max_queue_size, r.queue_saturation >= 1 ? " and refused requests" : "")},
        fire, resolve, now_ms);
  }
  std::erase_if(health_, [&](const auto& e) { return !live.count(e.first); });
  {
    MutexLock lock(mu_);
    std::erase_if(last_health_, [&](const auto& e) { return !live.count(e.first); });
  }

  peak_memory_ = std::max(peak_memory_, ProcessResidentBytes());
  if (memory_window_start_ms_ == 0) memory_window_start_ms_ = now_ms;
  if (now_ms - memory_window_start_ms_ < width) return;
  if (options_.memory_limit_bytes > 0) {
    const double mib = 1024.0 * 1024.0;
    const auto limit = static_cast<double>(options_.memory_limit_bytes);
    options_.alerts->Observe(
        "MemoryHigh", Own({}), peak_memory_ > options_.memory_limit_bytes,
        {"resident_memory_bytes", static_cast<double>(peak_memory_), limit, memory_window_start_ms_, now_ms,
         fmt::format("the server's resident memory reached {:.0f} MiB (limit {:.0f} MiB)",
                     static_cast<double>(peak_memory_) / mib, limit / mib)},
        2, 2, now_ms);
  }
  memory_window_start_ms_ = now_ms;
  peak_memory_ = 0;
}

void MonitorLoop::ObserveRequests(const AlertLabels& labels, const std::string& who, const HealthReading& r,
                                  const HealthLimits& limits, int64_t fire, int64_t resolve, int64_t start_ms,
                                  int64_t now_ms) {
  const bool enough = static_cast<int64_t>(r.requests) >= limits.min_requests;
  if (limits.latency_p99_ms > 0) {  // 0 is off, and so is NaN (an endpoint without a latency limit)
    const double p99 = r.latency_p99_ms.value_or(0);
    options_.alerts->Observe("LatencyHigh", labels, enough && p99 > limits.latency_p99_ms,
                             {"latency_p99_ms", p99, limits.latency_p99_ms, start_ms, now_ms,
                              fmt::format("p99 latency of {} is {:.1f} ms over {} requests (limit {} ms)", who, p99,
                                          r.requests, limits.latency_p99_ms)},
                             fire, resolve, now_ms);
  }
  options_.alerts->Observe("ErrorRateHigh", labels, enough && r.error_rate > limits.error_rate,
                           {"error_rate", r.error_rate, limits.error_rate, start_ms, now_ms,
                            fmt::format("{} of {} requests to {} failed on the server ({:.1f}%, limit {:.1f}%)",
                                        r.errors, r.requests, who, 100 * r.error_rate, 100 * limits.error_rate)},
                           fire, resolve, now_ms);
}

void MonitorLoop::EvaluateEndpointHealth(int64_t now_ms, const std::vector<WatchedEndpoint>& endpoints) {
  const int64_t width = options_.health_window.count();
  std::set<std::pair<std::string, std::string>> live;
  for (const WatchedEndpoint& e : endpoints) {
    if (!e.health) continue;
    for (const WatchedEndpoint::Arm& arm : e.arms) {
      live.insert({e.endpoint, arm.name});
      VariantTrack now{e.generation, now_ms, arm.requests, arm.errors, arm.latency};
      VariantTrack& t = variant_health_[{e.endpoint, arm.name}];
      if (t.generation != e.generation) {  // new, or a new spec: start counting again
        t = std::move(now);
        continue;
      }
      if (now_ms - t.start_ms < width) continue;
      HealthReading r;
      r.requests = now.requests - t.requests;
      r.errors = now.errors - t.errors;
      r.error_rate = r.requests > 0 ? static_cast<double>(r.errors) / static_cast<double>(r.requests) : 0;
      const LatencyHistogram::Snapshot window = now.latency - t.latency;
      if (window.total > 0) r.latency_p99_ms = window.Quantile(0.99) / 1e6;
      const int64_t start = t.start_ms;
      t = std::move(now);
      ObserveRequests(Own({{"endpoint", e.endpoint}, {"variant", arm.name}}),
                      fmt::format("{} variant {}", e.endpoint, arm.name), r, *e.health,
                      e.alert_after ? e.alert_after : 3, e.resolve_after ? e.resolve_after : 3, start, now_ms);
    }
  }
  std::erase_if(variant_health_, [&](const auto& e) { return !live.count(e.first); });
}

void MonitorLoop::EvaluateQuality(int64_t now_ms, const std::vector<WatchedVersion>& versions,
                                  const std::vector<WatchedEndpoint>& endpoints) {
  if (!options_.feedback) return;
  std::map<std::pair<std::string, int64_t>, const WatchedVersion*> by_version;
  for (const auto& v : versions) by_version[{v.model, v.version}] = &v;
  for (const WatchedEndpoint& e : endpoints) {
    // Variants whose rules share a window share one read of the feedback.
    std::map<std::pair<int64_t, int64_t>, StatusOr<QualityWindows>> read;
    for (const WatchedEndpoint::Arm& arm : e.arms) {
      if (arm.shadow) continue;
      auto found = by_version.find({arm.model, arm.version});
      if (found == by_version.end() || !found->second->monitoring) continue;
      const WatchedVersion& v = *found->second;
      const MonitoringConfig& mc = *v.monitoring;
      const std::optional<QualityRule>& rule = e.quality ? e.quality : mc.quality;
      if (!rule) continue;
      std::optional<double> reference;
      if (v.monitor) {
        if (auto profile = v.monitor->reference()) reference = QualityMetric(profile->quality, rule->metric);
      }
      const double limit = rule->Limit(reference);
      if (std::isnan(limit)) continue;  // only a drop rule, and no labelled reference to drop from
      const int64_t width = rule->window_s * 1000;
      const int64_t start = now_ms / width * width - 2 * width;  // ended a window-length ago
      int64_t& judged = judged_.try_emplace({e.endpoint, arm.name}, start - width).first->second;
      if (start <= judged) continue;
      judged = start;
      auto it = read.find({start, width});
      if (it == read.end()) {
        it = read.emplace(std::pair{start, width},
                          options_.feedback->Windows(e.endpoint, start, start + width - 1, width, now_ms,
                                                     /*scan_predictions=*/false))
                 .first;
      }
      if (!it->second.ok()) continue;
      Quality q;
      for (const auto& w : it->second->windows) {
        if (w.start_ms != start) continue;
        if (auto cell = w.variants.find(arm.name); cell != w.variants.end()) q = cell->second.quality;
      }
      const size_t labels = rule->metric == "mean_reward" ? q.rewarded : q.labeled;
      if (static_cast<int64_t>(labels) < rule->min_labels) continue;  // no verdict on too few labels
      const std::optional<double> value = QualityMetric(q, rule->metric);
      if (!value) continue;
      const bool from_reference = reference && !std::isnan(rule->drop) && !(limit <= rule->below);
      const std::string basis =
          from_reference ? fmt::format(": reference.csv {:.3f} less {}", *reference, rule->drop) : "";
      options_.alerts->Observe(
          "QualityRegression", {{"endpoint", e.endpoint}, {"variant", arm.name}, {"metric", rule->metric}},
          *value < limit,
          {rule->metric, *value, limit, start, start + width,
           fmt::format("{} of {} variant {} is {:.3f} over {} labels (alert below {:.3f}{})", rule->metric, e.endpoint,
                       arm.name, *value, labels, limit, basis)},
          e.alert_after ? e.alert_after : mc.alert_after, e.resolve_after ? e.resolve_after : mc.resolve_after, now_ms);
    }
  }
}

void MonitorLoop::RefreshQualityGauges(const std::vector<WatchedEndpoint>& endpoints) {
  if (!options_.feedback) return;
  std::map<std::string, int64_t> served;
  for (const WatchedEndpoint& e : endpoints) served[e.endpoint] = e.since_ms;
  auto quality = options_.feedback->QualityOfAll(served);  // one store read per round
  if (!quality.ok()) return;
  for (const auto& [endpoint, variants] : *quality) {
    for (const auto& [variant, q] : variants) {
      for (const auto& [name, value] : QualityMetrics(q)) {
        if (value) quality_.WithLabels({endpoint, variant, name}).Set(*value);
      }
      quality_.WithLabels({endpoint, variant, "joined"}).Set(static_cast<double>(q.joined));
    }
  }
}

AlertLabels MonitorLoop::Own(AlertLabels labels) const {
  if (!options_.replica.empty()) labels.emplace("replica", options_.replica);
  return labels;
}

void MonitorLoop::Record(const WatchedVersion& v, const DriftWindow& w) {
  if (options_.replica.empty()) Publish(v, w);
  StoredDriftWindow stored = Stored(v, w);
  stored.replica = options_.replica;
  if (Status s = options_.drift_store->WriteDriftWindow(stored); !s.ok()) {
    spdlog::error("event=drift_window_not_stored model={} version={} replica={} error={}", v.model, v.version,
                  LogValue(options_.replica), LogValue(s.message()));
  }
}

void MonitorLoop::Publish(const WatchedVersion& v, const DriftWindow& w) {
  const std::string version = std::to_string(v.version);
  std::string drifted;
  for (const auto& c : w.columns) {
    statistic_.WithLabels({v.model, version, c.name}).Set(c.statistic);
    detected_.WithLabels({v.model, version, c.name}).Set(c.drifted ? 1 : 0);
    if (c.drifted) drifted += (drifted.empty() ? "" : ",") + c.name;
    if (c.out_of_range > 0) {
      out_of_range_.WithLabels({v.model, version, c.name}).Inc(static_cast<double>(c.out_of_range));
    }
  }
  windows_.WithLabels({v.model, version, w.dataset_drift ? "drift" : "calm"}).Inc();
  if (v.monitoring) ObserveDrift(v, w);
  spdlog::info("event=drift_window model={} version={} rows={} drifted_share={:.3f} dataset_drift={} drifted={}",
               v.model, version, w.rows, w.drifted_share, w.dataset_drift, LogValue(drifted));
}

void MonitorLoop::MergeWindows(int64_t now_ms, const WatchedVersion& v) {
  constexpr int kMaxParts = 1000;  // partial windows read per merge
  const std::shared_ptr<const ReferenceProfile> reference = v.monitor->reference();
  if (!reference || !v.monitoring) return;
  const MonitoringConfig& mc = *v.monitoring;
  auto [it, fresh] = merged_to_.try_emplace({v.model, v.version}, 0);
  if (fresh) {
    auto last = options_.drift_store->LastDriftWindowEnd(v.model, v.version);
    if (!last.ok()) {
      merged_to_.erase(it);
      return;
    }
    it->second = *last;
  }
  int64_t& merged_to = it->second;
  const int64_t upto = now_ms - options_.merge_grace.count();
  if (upto <= merged_to) return;
  auto parts = options_.drift_store->ReplicaDriftWindows(v.model, v.version, merged_to, upto, kMaxParts);
  if (!parts.ok() || parts->empty()) return;
  // A full read ends at its last part; the next read goes on from there.
  const bool full_read = std::ssize(*parts) == kMaxParts;
  const int64_t end = full_read ? parts->back().end_ms : upto;
  WindowCounts sum{reference->key, 0, {}, {}};
  std::set<std::string> replicas;
  int64_t first_start = parts->front().start_ms, foreign = 0;
  bool empty = true;
  for (const StoredDriftWindow& part : *parts) {
    auto counts = ParseWindowCounts(part.counts);
    if (!counts.ok() || counts->reference != reference->key) {
      ++foreign;  // counted on another reference (a live one): its bins are not ours
      continue;
    }
    if (empty) {
      sum = std::move(counts).value();
      empty = false;
    } else if (!sum.Add(*counts)) {
      ++foreign;
      continue;
    }
    replicas.insert(part.replica);
    first_start = std::min(first_start, part.start_ms);
  }
  const int64_t start = merged_to > 0 ? merged_to : first_start;
  const bool due = sum.rows >= mc.window_rows ||
                   (end - start >= static_cast<int64_t>(mc.window_seconds * 1000) && sum.rows >= mc.min_window_rows);
  if (!due && !full_read) return;
  if (foreign > 0) {
    spdlog::warn("event=drift_windows_not_merged model={} version={} windows={} reason={}", v.model, v.version, foreign,
                 LogValue("counted on another reference (give every replica the same reference.csv)"));
  }
  if (empty) {  // nothing of ours in a full read: go past it
    merged_to = end;
    return;
  }
  auto tested = v.monitor->TestCounts(sum);
  if (!tested.ok()) return;
  DriftWindow w = std::move(tested).value();
  w.start_ms = start;
  w.end_ms = end;
  StoredDriftWindow stored = Stored(v, w);
  stored.epoch = options_.leadership->Epoch();
  if (Status s = options_.drift_store->WriteDriftWindow(stored); !s.ok()) {
    spdlog::error("event=drift_window_not_merged model={} version={} error={}", v.model, v.version,
                  LogValue(s.message()));
    return;
  }
  spdlog::info("event=drift_windows_merged model={} version={} rows={} replicas={} parts={}", v.model, v.version,
               w.rows, replicas.size(), parts->size());
  merged_to = end;
}

void MonitorLoop::ReadMergedWindows(const WatchedVersion& v) {
  constexpr int kMaxRead = 100;
  auto [it, fresh] = read_to_.try_emplace({v.model, v.version}, 0);
  if (fresh) {  // from now on: windows merged before this replica started are history, not news
    auto last = options_.drift_store->LastDriftWindowEnd(v.model, v.version);
    if (!last.ok()) {
      read_to_.erase(it);
      return;
    }
    it->second = *last;
    return;
  }
  auto windows =
      options_.drift_store->DriftWindows(v.model, it->second + 1, std::numeric_limits<int64_t>::max(), kMaxRead);
  if (!windows.ok()) return;
  for (const StoredDriftWindow& stored : *windows) {
    if (stored.version != v.version) continue;
    it->second = std::max(it->second, stored.end_ms);
    if (auto w = Unstored(stored); w.ok()) Publish(v, *w);
  }
}

void MonitorLoop::ObserveDrift(const WatchedVersion& v, const DriftWindow& w) {
  const MonitoringConfig& mc = *v.monitoring;
  const std::string& model = v.model;
  const std::string version = std::to_string(v.version);
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
  if (v.monitor && v.monitor->reference()) {
    for (const auto& c : v.monitor->reference()->columns) {
      reference[c.output].nonfinite += c.missing;
      reference[c.output].values += c.rows + c.missing;
    }
  }
  AlertTracker& alerts = *options_.alerts;
  for (int t = 0; t < 2; ++t) {
    const double share = window[t].Of(), baseline = t == 0 ? reference[t].Of() : 0;
    const double spike_at = mc.nonfinite_spike * baseline;
    const char* tensor = t == 0 ? "input" : "output";
    alerts.Observe("NonFiniteValues", {{"model", model}, {"version", version}, {"tensor", tensor}},
                   window[t].nonfinite > 0 && share > spike_at,
                   {"nonfinite_share", share, spike_at, w.start_ms, w.end_ms,
                    fmt::format("{} NaN or infinite {} values in {} v{} over {} rows: {:.2f}% of them{}",
                                window[t].nonfinite, tensor, model, version, w.rows, 100 * share,
                                t == 0 ? fmt::format(" (reference {:.2f}%)", 100 * baseline) : "")},
                   1, mc.resolve_after, w.end_ms);
  }
  const double outside_share = inputs > 0 ? static_cast<double>(outside) / static_cast<double>(inputs) : 0;
  alerts.Observe("OutOfRangeValues", {{"model", model}, {"version", version}}, outside_share > mc.out_of_range_rate,
                 {"out_of_range_share", outside_share, mc.out_of_range_rate, w.start_ms, w.end_ms,
                  fmt::format("{:.2f}% of the input values of {} v{} fell outside the reference's range over {} "
                              "rows (reference of {} rows)",
                              100 * outside_share, model, version, w.rows, w.reference_rows)},
                 mc.alert_after, mc.resolve_after, w.end_ms);
  // The dataset alert and its feature alerts carry `group="DatasetDrift"`:
  // the webhook sends them as one group per model version (its groupKey),
  // and `vigil monitor` lists the features under the dataset alert.
  int64_t drifted_inputs = 0, monitored_inputs = 0;
  for (const auto& c : w.columns) {
    if (!c.output) {
      ++monitored_inputs;
      drifted_inputs += c.drifted;
    }
    const std::string summary = fmt::format(
        "{} '{}' of {} v{} {}: {} {:.4g} (threshold {:.4g}) over {} rows", c.output ? "output" : "feature", c.name,
        model, version, c.drifted ? "drifted" : "is calm", c.method, c.statistic, c.threshold, c.rows);
    alerts.Observe(
        c.output ? "PredictionDrift" : "FeatureDrift",
        c.output ? AlertLabels{{"model", model}, {"version", version}, {"feature", c.name}}
                 : AlertLabels{{"model", model}, {"version", version}, {"feature", c.name}, {"group", "DatasetDrift"}},
        c.drifted, {c.method, c.statistic, c.threshold, w.start_ms, w.end_ms, summary}, mc.alert_after,
        mc.resolve_after, w.end_ms);
  }
  alerts.Observe("DatasetDrift", {{"model", model}, {"version", version}, {"group", "DatasetDrift"}}, w.dataset_drift,
                 {"drifted_share", w.drifted_share, mc.drift_share, w.start_ms, w.end_ms,
                  fmt::format("{} of {} input features of {} v{} drifted ({:.0f}%): {}", drifted_inputs,
                              monitored_inputs, model, version, 100 * w.drifted_share, DriftedNames(w))},
                 mc.alert_after, mc.resolve_after, w.end_ms);
}

}  // namespace vigil
