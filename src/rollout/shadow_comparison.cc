#include "rollout/shadow_comparison.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "monitoring/quality.h"

namespace vigil {
std::pair<double, double> WilsonInterval(double successes, double n) {
  if (!(n > 0)) return {0, 1};
  const double z = 1.959964, p = successes / n;
  const double centre = p + z * z / (2 * n);
  const double spread = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n));
  const double scale = 1 + z * z / n;
  return {std::max(0.0, (centre - spread) / scale), std::min(1.0, (centre + spread) / scale)};
}

StatusOr<ShadowComparison> CompareShadow(FeedbackStore& store, const std::string& endpoint, const std::string& shadow,
                                         int64_t from_ms, int64_t to_ms, int64_t limit) {
  ShadowComparison c;
  c.shadow = shadow;
  std::vector<double> latency_production, latency_shadow;
  double abs_diff_sum = 0;
  int64_t values = 0;
  double diff_sum = 0, diff_sq = 0;  // paired accuracy differences
  int64_t correct_production = 0, correct_shadow = 0;
  auto visited = store.ScanShadowPairs(endpoint, shadow, from_ms, to_ms, limit, [&](const ShadowPair& p) {
    if (p.served_variant != "production") return;
    ++c.pairs;
    latency_production.push_back(static_cast<double>(p.served_latency_us) / 1000);
    latency_shadow.push_back(static_cast<double>(p.shadow_latency_us) / 1000);
    const std::vector<double> a = ParseCompactValues(p.served_outputs);
    const std::vector<double> b = ParseCompactValues(p.shadow_outputs);
    if (a.empty() || a.size() != b.size()) return;
    ++c.compared;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs(a[i] - b[i]);
      abs_diff_sum += d;
      c.max_abs_diff = std::max(c.max_abs_diff, d);
      ++values;
    }
    if (a.size() < 2) return;
    const size_t ca = ArgMax(a), cb = ArgMax(b);
    c.disagreements += ca != cb;
    if (!p.label || *p.label < 0 || *p.label != std::floor(*p.label) || *p.label >= static_cast<double>(a.size())) {
      return;
    }
    const auto label = static_cast<size_t>(*p.label);
    ++c.labeled;
    correct_production += ca == label;
    correct_shadow += cb == label;
    const double d = static_cast<double>(cb == label) - static_cast<double>(ca == label);
    diff_sum += d;
    diff_sq += d * d;
  });
  if (!visited.ok()) return visited.status();
  c.truncated = *visited >= limit;
  if (c.compared > 0) {
    const double n = static_cast<double>(c.compared);
    c.disagreement_rate = static_cast<double>(c.disagreements) / n;
    std::tie(c.disagreement_lower, c.disagreement_upper) = WilsonInterval(static_cast<double>(c.disagreements), n);
  }
  if (values > 0) c.mean_abs_diff = abs_diff_sum / static_cast<double>(values);
  c.production_p50_ms = EstimateQuantile(latency_production, 0.5).value;
  c.shadow_p50_ms = EstimateQuantile(latency_shadow, 0.5).value;
  c.production_p99_ms = EstimateQuantile(std::move(latency_production), 0.99);
  c.shadow_p99_ms = EstimateQuantile(std::move(latency_shadow), 0.99);
  if (c.labeled > 0) {
    const double n = static_cast<double>(c.labeled);
    c.production_accuracy = static_cast<double>(correct_production) / n;
    c.shadow_accuracy = static_cast<double>(correct_shadow) / n;
    c.accuracy_difference = diff_sum / n;
    const double var = n > 1 ? (diff_sq - n * c.accuracy_difference * c.accuracy_difference) / (n - 1) / n : 0;
    const double half = 1.959964 * std::sqrt(std::max(0.0, var));
    c.accuracy_ci_low = c.accuracy_difference - half;
    c.accuracy_ci_high = c.accuracy_difference + half;
  }
  return c;
}

Analysis AnalyzeShadowStage(const RolloutPolicy& policy, const ShadowStageData& d,
                            std::map<std::string, TestMemory>& memory) {
  Analysis out;
  if (!d.missing.empty()) {
    out.verdict = Verdict::kError;
    out.reason = "data missing: " + d.missing;
    return out;
  }
  const RolloutPolicy::ShadowStage stage = policy.shadow_first.value_or(RolloutPolicy::ShadowStage{});
  const ShadowComparison& c = d.comparison;
  const bool at_max = d.elapsed_s >= policy.max_duration_s;
  out.guardrails = JudgeGuardrails(policy, {d.production_requests, d.production_errors, c.production_p99_ms},
                                   {d.copies, d.copy_errors, c.shadow_p99_ms}, memory);
  for (const auto& g : out.guardrails) {
    if (g.state != GuardrailResult::State::kFailed) continue;
    out.verdict = Verdict::kFailed;
    out.reason = fmt::format(
        "shadow stage: guardrail {} is worse by more than the margin {} (production {:.6g}, "
        "shadow {:.6g})",
        g.name, g.margin, g.production, g.candidate);
    return out;
  }
  const std::string evidence = fmt::format(
      "{} of {} compared requests disagree ({:.4g}, 95% [{:.4g}, {:.4g}], max {}); mean score difference {:.4g}",
      c.disagreements, c.compared, c.disagreement_rate, c.disagreement_lower, c.disagreement_upper,
      stage.max_disagreement, c.mean_abs_diff);
  if (c.labeled >= policy.min_units && c.accuracy_ci_high < 0) {
    out.verdict = Verdict::kFailed;
    out.reason = fmt::format(
        "shadow stage: on the labels of the same requests the candidate is worse (accuracy {:.4g} against {:.4g}, "
        "difference in [{:.4g}, {:.4g}])",
        c.shadow_accuracy, c.production_accuracy, c.accuracy_ci_low, c.accuracy_ci_high);
    return out;
  }
  if (c.compared < stage.min_units) {
    out.reason = fmt::format("shadow stage: {} of {} requests compared so far", c.compared, stage.min_units);
    if (at_max) out.verdict = Verdict::kInconclusive;
    return out;
  }
  if (c.disagreement_lower > stage.max_disagreement) {
    out.verdict = Verdict::kFailed;
    out.reason = "shadow stage: disagrees with production too often: " + evidence;
    return out;
  }
  std::string waiting;
  if (c.disagreement_upper > stage.max_disagreement) waiting = "the disagreement is not yet shown below the limit";
  for (const auto& g : out.guardrails) {
    if (waiting.empty() && g.state != GuardrailResult::State::kSafe) waiting = "guardrail " + g.name + " not yet safe";
  }
  if (waiting.empty() && d.elapsed_s < policy.min_duration_s) waiting = "waiting for min_duration_s";
  if (!waiting.empty()) {
    out.reason = "shadow stage: " + waiting + ": " + evidence;
    if (at_max) out.verdict = Verdict::kInconclusive;
    return out;
  }
  out.verdict = Verdict::kSuccessful;
  out.reason = "shadow stage passed: " + evidence;
  return out;
}

}  // namespace vigil
