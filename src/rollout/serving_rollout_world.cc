#include "rollout/serving_rollout_world.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "core/logging.h"
#include "monitoring/quality.h"

namespace vigil {

std::vector<RolloutWorld::Endpoint> ServingRolloutWorld::Endpoints() {
  std::vector<Endpoint> out;
  std::map<std::string, std::map<std::string, Deployments::Counts>> shared;
  if (!replica_.empty()) {
    auto read = deployments_.SharedCounts(replica_);
    if (read.ok()) {
      shared = std::move(read).value();
    } else {
      spdlog::warn("event=frontend_counts_not_read error={}", LogValue(read.status().message()));
    }
  }
  for (const auto& router : deployments_.All()) {
    // Every endpoint, also those without a rollout block: the controller
    // sees a block go (a person promoted the candidate) and ends the rollout.
    const DeploymentSpec& spec = router->spec();
    Endpoint e;
    e.spec = router->shared_spec();
    // Each spec change makes a new Router with counters from zero.
    e.generation = std::chrono::duration_cast<std::chrono::nanoseconds>(router->since().time_since_epoch()).count();
    for (int i = -1; i < static_cast<int>(spec.candidates.size()); ++i) {
      const Variant& v = i < 0 ? spec.production : spec.candidates[static_cast<size_t>(i)];
      const VariantStats& stats = router->Stats(i);
      Counts& counts = e.counts[v.name];
      counts = {.requests = stats.Served(), .errors = stats.errors.load(std::memory_order_relaxed)};
      // Among replicas, every replica's (they only grow while the spec stays).
      if (auto it = shared.find(spec.endpoint); it != shared.end()) {
        if (auto c = it->second.find(v.name); c != it->second.end()) counts = {c->second.requests, c->second.errors};
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

StepData ServingRolloutWorld::Read(const DeploymentSpec& spec, const RolloutPolicy& policy, int64_t since_ms,
                                   int64_t now_ms, std::optional<double> min_cutoff_s) {
  if (!store_) {
    StepData d;
    d.missing = "the server keeps no prediction log (start vigil serve with --data-dir and prediction logging on)";
    return d;
  }
  return ReadStep(*store_, spec, policy, since_ms, now_ms, min_cutoff_s, kMaxScanned);
}

Status ServingRolloutWorld::Apply(const std::string& endpoint, const RolloutAction& action, const std::string& actor,
                                  const std::string& detail) {
  return deployments_.Mutate(endpoint, [&](DeploymentSpec& spec) { return ApplyRolloutAction(spec, action); },
                             {actor, "rollout " + std::string(RolloutActionName(action.kind)), detail});
}

StatusOr<ShadowComparison> ServingRolloutWorld::CompareShadow(const DeploymentSpec& spec, const std::string& candidate,
                                                              int64_t since_ms, int64_t now_ms) {
  if (!store_) {
    return FailedPrecondition(
        "the server keeps no prediction log (start vigil serve with --data-dir and prediction logging on)");
  }
  return vigil::CompareShadow(*store_, spec.endpoint, candidate, since_ms, now_ms, kMaxScanned);
}

StepData ReadStep(FeedbackStore& store, const DeploymentSpec& spec, const RolloutPolicy& policy, int64_t since_ms,
                  int64_t now_ms, std::optional<double> min_cutoff_s, int64_t limit) {
  StepData d;
  // One compact row per prediction, classified once the cut-off is known.
  struct Row {
    int64_t time_ms;
    uint32_t unit;
    bool candidate;
    bool has_feedback;
    std::optional<MetricPoint> value;
  };
  std::vector<Row> rows;
  std::vector<double> delays_s;
  std::vector<double> latencies_ms[2];
  std::unordered_map<std::string, uint32_t> units;  // routing key → index
  uint32_t anonymous = 0;                           // predictions without a key: their own units
  std::vector<double> outputs;
  auto visited = store.ScanServed(spec.endpoint, since_ms, now_ms, limit, [&](const ServedPrediction& p) {
    const bool candidate = p.variant == policy.candidate;
    if (!candidate && p.variant != "production") return;
    Row r{.time_ms = p.time_ms,
          .unit = 0,
          .candidate = candidate,
          .has_feedback = p.feedback_time_ms > 0,
          .value = std::nullopt};
    if (p.key_hash.empty()) {
      r.unit = 0x80000000u | anonymous++;
    } else {
      r.unit = units.emplace(p.key_hash, static_cast<uint32_t>(units.size())).first->second;
    }
    if (r.has_feedback) {
      outputs = ParseCompactValues(p.outputs);
      r.value = MetricValue(policy.metric, outputs, p.label, p.reward);
      delays_s.push_back(static_cast<double>(std::max<int64_t>(0, p.feedback_time_ms - p.time_ms)) / 1000);
    }
    latencies_ms[candidate].push_back(static_cast<double>(p.latency_us) / 1000);
    rows.push_back(r);
  });
  if (!visited.ok()) {
    d.missing = "the prediction log could not be read: " + visited.status().message();
    return d;
  }
  d.truncated = *visited >= limit;
  if (!delays_s.empty()) {
    auto at = delays_s.begin() + static_cast<std::ptrdiff_t>(0.9 * static_cast<double>(delays_s.size() - 1));
    std::nth_element(delays_s.begin(), at, delays_s.end());
    d.label_cutoff_s = *at;
  }
  if (min_cutoff_s && (!d.label_cutoff_s || *d.label_cutoff_s < *min_cutoff_s)) d.label_cutoff_s = min_cutoff_s;
  // Per arm, per unit: Σ value, count, Σ value².
  struct Acc {
    double y = 0, n = 0, yy = 0;
  };
  std::unordered_map<uint32_t, Acc> per_unit[2];
  for (const Row& r : rows) {
    ArmData& arm = r.candidate ? d.candidate : d.production;
    ++arm.predictions;
    if (!d.label_cutoff_s || static_cast<double>(now_ms - r.time_ms) < *d.label_cutoff_s * 1000) {
      ++arm.awaiting_feedback;
      continue;
    }
    std::optional<MetricPoint> v = r.value;
    if (!v && !r.has_feedback && policy.metric.no_feedback_is_zero) v = MetricPoint{0, 1};
    if (!v) {
      ++arm.without_feedback;
      continue;
    }
    Acc& a = per_unit[r.candidate][r.unit];
    a.y += v->y;
    a.n += v->n;
    a.yy += v->y * v->y;
  }
  for (int arm = 0; arm < 2; ++arm) {
    ArmData& a = arm ? d.candidate : d.production;
    for (const auto& [_, acc] : per_unit[arm]) a.metric.Add(acc.y, acc.n, acc.yy);
    a.latency_p99_ms = EstimateQuantile(std::move(latencies_ms[arm]), 0.99);
  }
  return d;
}

}  // namespace vigil
