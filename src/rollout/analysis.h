// One analysis of a rollout step: the promotion gate of
// shared/STATISTICS.md, in order —
//
//   1. minimum exposure: min_units requests per arm before a guardrail
//      may judge, min_units scored units per arm before the primary
//      metric or SRM may; min_duration_s before the step may advance;
//   2. sample ratio mismatch: the scored units per arm against the
//      configured shares — χ² for the record, and the sequential
//      (always-valid) p that decides, since this is looked at every
//      interval; p < srm_p makes the experiment untrusted (never promoted
//      from: Inconclusive, and an alert);
//   3. guardrails as sequential non-inferiority (B − A against the margin,
//      worse-is-higher): a significant regression fails the step at once;
//      one not yet shown safe blocks advancing;
//   4. the primary metric: the mSPRT of d = better-direction(B − A) against
//      min_effect. Failed when the always-valid interval lies below zero
//      (shown worse) at any step. At the last step — the promotion — it is
//      Successful only when the interval lies above min_effect; at the
//      steps before it (exposure ramps), once every guardrail is shown safe
//      and the candidate is not shown worse;
//   5. max_duration_s reached without either: Inconclusive.
//
// So a candidate is promoted only on evidence that it is better, tested
// once per step on that step's data: an equal candidate is promoted with
// probability at most α however often the step is analysed.
//
// Analyze is pure apart from `memory`, the state a sequential test carries
// from look to look (its mixing variance, fixed at its first look, and its
// always-valid p, which only falls); the controller persists it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rollout/experiment_stats.h"
#include "routing/rollout_policy.h"

namespace vigil {

enum class Verdict { kRunning, kSuccessful, kFailed, kInconclusive, kError };
std::string_view VerdictName(Verdict verdict);

// What one scored prediction contributes to the primary metric, a ratio
// of sums Σy / Σn over the predictions (and per unit, by the delta method):
// n = 1 for the means — accuracy 0/1, log_loss −ln p(label), brier
// (p₁ − y)², mae |ŷ − y|, mse and rmse (ŷ − y)², mean_reward the reward —
// and for the binary rates, class 1 positive and predicted by the larger
// probability: precision y = TP over n = predicted positive, recall TP over
// actual positive, f1 2·TP over predicted + actual positive (so F1 =
// 2TP / (2TP + FP + FN)). A prediction may add 0 / 0 (a negative, for
// precision): scored, but it moves nothing. None when the prediction
// cannot be scored (no label or reward, outputs of the wrong shape).
// The index of the largest value (the predicted class); 0 for an empty vector.
size_t ArgMax(const std::vector<double>& v);

struct MetricPoint {
  double y = 0, n = 1;
};
std::optional<MetricPoint> MetricValue(const RolloutPolicy::Metric& metric, const std::vector<double>& outputs,
                                       std::optional<double> label, std::optional<double> reward);

// A quantile of a sample with the variance of its estimate,
// q(1 − q) / (n f²), the density f read off the sample near the quantile.
struct QuantileEstimate {
  int64_t count = 0;
  double value = 0;
  double variance = 0;
};
QuantileEstimate EstimateQuantile(std::vector<double> values, double q);

// What one arm brought to a step, since the step began.
struct ArmData {
  std::string variant;
  double share = 0;                   // configured percent
  UnitSums metric;                    // scored predictions, summed per unit (routing key)
  int64_t predictions = 0;            // served and logged
  int64_t awaiting_feedback = 0;      // younger than the label cut-off: not yet counted
  int64_t without_feedback = 0;       // old enough, none came: left out (or zero, by the metric)
  uint64_t requests = 0, errors = 0;  // at the frontend, failures included
  QuantileEstimate latency_p99_ms;    // of the logged predictions
};

struct StepData {
  ArmData production, candidate;
  int64_t elapsed_s = 0;                 // at the step
  std::optional<double> label_cutoff_s;  // the label delay used as the age cut-off; none = unknown yet
  bool last_step = true;                 // the promotion step (see above)
  // Set when the data could not be read or is missing (no prediction log,
  // a failed store read): the analysis is an Error, not a model failure.
  std::string missing;
  bool truncated = false;  // the scan hit its bound; the figures cover the oldest part
};

struct TestMemory {
  double tau2 = 0;  // 0 until the first look with enough data
  double p = 1;
};

struct GuardrailResult {
  std::string name;  // error_rate, latency_p99_ms
  double margin = 0;
  double production = 0, candidate = 0;
  enum class State { kWaiting, kNotYetSafe, kSafe, kFailed } state = State::kWaiting;
  std::optional<SequentialLook> look{};
};
std::string_view GuardrailStateName(GuardrailResult::State state);

struct Analysis {
  Verdict verdict = Verdict::kRunning;
  std::string reason;              // why this verdict, or what it waits for
  std::optional<SampleRatio> srm;  // χ²
  double srm_sequential_p = 1;     // what decides
  std::vector<GuardrailResult> guardrails;
  // The primary metric per arm and the test of d (positive = candidate better).
  double production_value = 0, candidate_value = 0;
  double production_variance = 0, candidate_variance = 0;
  std::optional<SequentialLook> primary;
};

// A rate's variance, kept off zero when no event has happened yet (an arm
// with no errors is not certain to have none).
double RateVariance(double events, double n);

// One guardrail (lower is better): B − A against `margin` by the sequential
// test in `memory`; Waiting until `exposed`.
GuardrailResult JudgeGuardrail(const char* name, double margin, double a, double b, double variance, bool exposed,
                               double alpha, TestMemory& memory);
// The policy's guardrails for two arms, each judged once both arms have
// min_units requests (error rate) or latencies (p99).
struct GuardrailArm {
  uint64_t requests = 0, errors = 0;
  QuantileEstimate latency_p99_ms;
};
std::vector<GuardrailResult> JudgeGuardrails(const RolloutPolicy& policy, const GuardrailArm& production,
                                             const GuardrailArm& candidate, std::map<std::string, TestMemory>& memory);

// The tests' names in `memory`: "primary", "srm", "error_rate", "latency_p99_ms".
Analysis Analyze(const RolloutPolicy& policy, const StepData& data, std::map<std::string, TestMemory>& memory);

}  // namespace vigil
