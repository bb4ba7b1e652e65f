#include "rollout/analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace vigil {

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kRunning:
      return "Running";
    case Verdict::kSuccessful:
      return "Successful";
    case Verdict::kFailed:
      return "Failed";
    case Verdict::kInconclusive:
      return "Inconclusive";
    case Verdict::kError:
      return "Error";
  }
  return "?";
}

std::string_view GuardrailStateName(GuardrailResult::State state) {
  switch (state) {
    case GuardrailResult::State::kWaiting:
      return "waiting";
    case GuardrailResult::State::kNotYetSafe:
      return "not_yet_safe";
    case GuardrailResult::State::kSafe:
      return "safe";
    case GuardrailResult::State::kFailed:
      return "failed";
  }
  return "?";
}

size_t ArgMax(const std::vector<double>& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::optional<MetricPoint> MetricValue(const RolloutPolicy::Metric& metric, const std::vector<double>& outputs,
                                       std::optional<double> label, std::optional<double> reward) {
  const std::string& name = metric.name;
  auto mean = [](double v) { return MetricPoint{v, 1}; };
  if (name == "mean_reward") {
    if (reward) return mean(*reward);
    return std::nullopt;
  }
  if (!label || outputs.empty() || !std::isfinite(*label)) return std::nullopt;
  const double y = *label;
  if (name == "mae" || name == "mse" || name == "rmse") {
    if (outputs.size() != 1) return std::nullopt;
    const double e = outputs[0] - y;
    return mean(name == "mae" ? std::fabs(e) : e * e);
  }
  // Classifiers: the label is a class index into the outputs.
  if (outputs.size() < 2 || y < 0 || y != std::floor(y) || y >= static_cast<double>(outputs.size())) {
    return std::nullopt;
  }
  const auto cls = static_cast<size_t>(y);
  const size_t best = ArgMax(outputs);
  if (name == "accuracy") return mean(best == cls ? 1.0 : 0.0);
  if (name == "log_loss") return mean(-std::log(std::clamp(outputs[cls], 1e-15, 1.0)));
  if (outputs.size() != 2) return std::nullopt;  // the rest are of binary classifiers
  if (name == "brier") {
    const double e = outputs[1] - (cls == 1 ? 1.0 : 0.0);
    return mean(e * e);
  }
  const double predicted = outputs[1] > outputs[0] ? 1.0 : 0.0, actual = cls == 1 ? 1.0 : 0.0;
  const double tp = predicted * actual;
  if (name == "precision") return MetricPoint{tp, predicted};
  if (name == "recall") return MetricPoint{tp, actual};
  if (name == "f1") return MetricPoint{2 * tp, predicted + actual};
  return std::nullopt;
}

QuantileEstimate EstimateQuantile(std::vector<double> values, double q) {
  QuantileEstimate out;
  out.count = static_cast<int64_t>(values.size());
  if (values.size() < 2) {
    if (!values.empty()) out.value = values[0];
    return out;
  }
  const double n = static_cast<double>(values.size());
  auto at = [&](double f) {
    const auto i = static_cast<size_t>(std::clamp(f, 0.0, 1.0) * (n - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(i), values.end());
    return values[i];
  };
  out.value = at(q);
  // The density at the quantile from the spacing of the sample around it,
  // over at least a few observations either side.
  const double h = std::min({std::max(0.005, 4 / n), q, 1 - q});
  const double spread = std::max(at(q + h) - at(q - h), 1e-3);  // latencies are logged in µs: 1e-3 ms
  const double density = 2 * h / spread;
  out.variance = q * (1 - q) / (n * density * density);
  return out;
}

namespace {

// The one test every look runs: fixes the mixing variance at the first
// look that has data, and carries the always-valid p.
SequentialLook Test(TestMemory& memory, double estimate, double variance, double theta0, double alpha) {
  if (memory.tau2 <= 0 && variance > 0) memory.tau2 = TunedMixtureVariance(variance, alpha);
  const SequentialLook look = Look(estimate, variance, memory.tau2, theta0, alpha, memory.p);
  memory.p = look.p;
  return look;
}

}  // namespace

double RateVariance(double events, double n) {
  const double p = (events + 0.5) / (n + 1);
  return p * (1 - p) / n;
}

namespace {}  // namespace

GuardrailResult JudgeGuardrail(const char* name, double margin, double a, double b, double variance, bool exposed,
                               double alpha, TestMemory& memory) {
  GuardrailResult g{.name = name, .margin = margin, .production = a, .candidate = b};
  if (!exposed) return g;
  // Lower is better for every guardrail: θ = B − A > margin is a regression.
  g.look = Test(memory, b - a, variance, margin, alpha);
  if (g.look->ci_low > margin) {
    g.state = GuardrailResult::State::kFailed;
  } else if (g.look->ci_high < margin) {
    g.state = GuardrailResult::State::kSafe;
  } else {
    g.state = GuardrailResult::State::kNotYetSafe;
  }
  return g;
}

std::vector<GuardrailResult> JudgeGuardrails(const RolloutPolicy& policy, const GuardrailArm& a, const GuardrailArm& b,
                                             std::map<std::string, TestMemory>& memory) {
  std::vector<GuardrailResult> out;
  const auto need = static_cast<uint64_t>(policy.min_units);
  if (policy.error_rate_margin) {
    const double na = static_cast<double>(a.requests), nb = static_cast<double>(b.requests);
    const bool exposed = a.requests >= need && b.requests >= need;
    const double pa = na > 0 ? static_cast<double>(a.errors) / na : 0;
    const double pb = nb > 0 ? static_cast<double>(b.errors) / nb : 0;
    const double v =
        exposed ? RateVariance(static_cast<double>(a.errors), na) + RateVariance(static_cast<double>(b.errors), nb) : 0;
    out.push_back(JudgeGuardrail("error_rate", *policy.error_rate_margin, pa, pb, v, exposed, policy.alpha,
                                 memory["error_rate"]));
  }
  if (policy.latency_p99_margin_ms) {
    const bool exposed = a.latency_p99_ms.count >= policy.min_units && b.latency_p99_ms.count >= policy.min_units;
    out.push_back(JudgeGuardrail("latency_p99_ms", *policy.latency_p99_margin_ms, a.latency_p99_ms.value,
                                 b.latency_p99_ms.value, a.latency_p99_ms.variance + b.latency_p99_ms.variance, exposed,
                                 policy.alpha, memory["latency_p99_ms"]));
  }
  return out;
}

namespace {

// The arm's primary metric and the variance of its estimate; rmse is the
// square root of the mean squared error (delta method: Var/(4·mse)).
std::pair<double, double> MetricOf(const RolloutPolicy& policy, const UnitSums& sums) {
  const double r = sums.Ratio(), v = sums.RatioVariance();
  if (policy.metric.name != "rmse") return {r, v};
  if (!(r > 0)) return {0, 0};
  return {std::sqrt(r), v / (4 * r)};
}

std::string Waiting(const RolloutPolicy& policy, const StepData& d) {
  const int64_t need = policy.min_units;
  const ArmData* arms[] = {&d.production, &d.candidate};
  int64_t awaiting = 0;
  for (const ArmData* a : arms) awaiting += a->awaiting_feedback;
  std::string units = fmt::format("units {} {}/{}, {} {}/{}", d.production.variant, d.production.metric.units, need,
                                  d.candidate.variant, d.candidate.metric.units, need);
  if (!d.label_cutoff_s) {
    return "waiting for labels: no feedback joined yet, so no prediction is known to be old enough (" + units + ")";
  }
  if (awaiting > 0) {
    return fmt::format("waiting for labels: {} predictions younger than the label cut-off of {:.0f} s ({})", awaiting,
                       *d.label_cutoff_s, units);
  }
  return "waiting for units: " + units;
}

}  // namespace

Analysis Analyze(const RolloutPolicy& policy, const StepData& d, std::map<std::string, TestMemory>& memory) {
  Analysis out;
  if (!d.missing.empty()) {
    out.verdict = Verdict::kError;
    out.reason = "data missing: " + d.missing;
    return out;
  }
  const ArmData& a = d.production;
  const ArmData& b = d.candidate;
  const bool at_max = d.elapsed_s >= policy.max_duration_s;

  // Guardrails: judged once both arms have min_units requests (they count
  // failures, which the metric's scored predictions cannot).
  out.guardrails = JudgeGuardrails(policy, {a.requests, a.errors, a.latency_p99_ms},
                                   {b.requests, b.errors, b.latency_p99_ms}, memory);
  for (const auto& g : out.guardrails) {
    if (g.state != GuardrailResult::State::kFailed) continue;
    out.verdict = Verdict::kFailed;
    out.reason = fmt::format(
        "guardrail {}: the candidate is worse by more than the margin {} ({} {:.6g}, {} {:.6g}; "
        "lower bound {:.6g} of the difference)",
        g.name, g.margin, a.variant, g.production, b.variant, g.candidate, g.look->ci_low);
    return out;
  }

  // Minimum exposure for the metric and SRM.
  std::tie(out.production_value, out.production_variance) = MetricOf(policy, a.metric);
  std::tie(out.candidate_value, out.candidate_variance) = MetricOf(policy, b.metric);
  if (a.metric.units < policy.min_units || b.metric.units < policy.min_units) {
    out.reason = Waiting(policy, d);
    if (at_max) {
      out.verdict = Verdict::kInconclusive;
      out.reason = "max_duration_s reached before the minimum exposure; " + out.reason;
    }
    return out;
  }

  const double observed[] = {static_cast<double>(a.metric.units), static_cast<double>(b.metric.units)};
  const double shares[] = {a.share, b.share};
  out.srm = SampleRatioMismatch(observed, shares);
  TestMemory& srm = memory["srm"];
  srm.p = std::min(srm.p, SequentialSampleRatioP(observed, shares));
  out.srm_sequential_p = srm.p;
  if (srm.p < policy.srm_p) {
    out.verdict = Verdict::kInconclusive;
    out.reason = fmt::format(
        "sample ratio mismatch: {} {} and {} {} scored units against shares {}% and {}% (always-valid p {:.3g} < "
        "srm_p {}; chi2 {:.4g}); the split or the feedback is biased, so the experiment cannot be trusted",
        a.variant, a.metric.units, b.variant, b.metric.units, a.share, b.share, srm.p, policy.srm_p, out.srm->chi2);
    return out;
  }

  const double sign = policy.metric.higher_is_better ? 1 : -1;
  const double estimate = sign * (out.candidate_value - out.production_value);
  const double variance = out.production_variance + out.candidate_variance;
  out.primary = Test(memory["primary"], estimate, variance, policy.metric.min_effect, policy.alpha);
  const SequentialLook& p = *out.primary;
  const std::string evidence =
      fmt::format("{} {} {:.6g} vs {:.6g}: improvement {:.6g}, always-valid {}% interval [{:.6g}, {:.6g}], p {:.3g}",
                  policy.metric.name, b.variant, out.candidate_value, out.production_value, estimate,
                  100 * (1 - policy.alpha), p.ci_low, p.ci_high, p.p);
  if (p.ci_high < 0) {
    out.verdict = Verdict::kFailed;
    out.reason = "the candidate is shown worse: " + evidence;
    return out;
  }
  const bool shown = d.last_step ? p.ci_low > policy.metric.min_effect : true;
  if (shown) {
    for (const auto& g : out.guardrails) {
      if (g.state == GuardrailResult::State::kSafe) continue;
      out.reason = fmt::format("{}, but guardrail {} is not yet shown safe (margin {}): {}",
                               d.last_step ? "better" : "not worse", g.name, g.margin, evidence);
      if (at_max) out.verdict = Verdict::kInconclusive;
      return out;
    }
    if (d.elapsed_s < policy.min_duration_s) {
      out.reason = fmt::format("{}, waiting for min_duration_s ({} of {} s): {}", d.last_step ? "better" : "safe",
                               d.elapsed_s, policy.min_duration_s, evidence);
      return out;
    }
    out.verdict = Verdict::kSuccessful;
    out.reason = d.last_step ? "the candidate is better by more than min_effect " +
                                   fmt::format("{}", policy.metric.min_effect) + ": " + evidence
                             : "safe to advance (guardrails shown safe, not shown worse): " + evidence;
    return out;
  }
  if (at_max) {
    out.verdict = Verdict::kInconclusive;
    out.reason = "max_duration_s reached without a decision: " + evidence;
    return out;
  }
  out.reason = "not decided yet: " + evidence;
  return out;
}

}  // namespace vigil
