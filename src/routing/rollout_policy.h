// An endpoint's `rollout:` block: how the rollout controller decides
// whether a candidate replaces production (src/rollout/controller.h does
// the deciding; this is the schema). Key names follow Argo Rollouts'
// analysis where it has one.
//
//   rollout:
//     candidate: v2                 # an ab or canary candidate (required)
//     interval_s: 60                # one analysis per interval
//     min_units: 1000               # per arm at a step before any verdict
//     min_duration_s: 600           # at a step before it may advance
//     max_duration_s: 86400         # at a step; then Inconclusive
//     metric: {name: mean_reward, direction: higher, min_effect: 0.0, no_feedback: skip}   # required
//     alpha: 0.05
//     guardrails:                   # candidate not worse than production by more than a margin
//       error_rate: {margin: 0.005}
//       latency_p99_ms: {margin: 5}
//     srm_p: 0.001
//     on_success: promote           # or hold (at the last step)
//     on_inconclusive: hold         # or rollback
//     max_errors: 10                # analyses in a row without data, then Inconclusive
//     shadow_first: {min_units: 5000, max_disagreement: 0.05, share: 100}
//                                   # optional stage 0: copies only, compared with production
//
// The primary metric is a ratio of sums over the scored predictions, so it
// aggregates per unit (routing key) by the delta method: the means accuracy
// (0/1 correct), log_loss, brier, mae, mse, mean_reward; rmse, the square
// root of mse through the delta method; and the binary rates precision,
// recall and f1 (TP over predicted, actual, or both positives). AUC is a
// rank statistic, not a ratio of sums, and is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace YAML {
class Node;
}

namespace vigil {

class SpecWriter;

// The metrics the controller can test, each with the direction that is
// better; nullptr when `name` is not one.
struct RolloutMetricInfo {
  const char* name;
  bool higher_is_better;
  bool needs_label;  // false: a reward
};
const RolloutMetricInfo* FindRolloutMetric(const std::string& name);
// "accuracy, log_loss, ..." for messages.
std::string RolloutMetricNames();

struct RolloutPolicy {
  std::string candidate;
  int64_t interval_s = 60;
  int64_t min_units = 1000;
  int64_t min_duration_s = 600;
  int64_t max_duration_s = 86400;
  struct Metric {
    std::string name;
    bool higher_is_better = true;
    double min_effect = 0;  // absolute, in the metric's units, toward better
    // A prediction that gets no feedback by the label cut-off: left out
    // (skip), or a reward of zero (a click that never came).
    bool no_feedback_is_zero = false;
  } metric;
  double alpha = 0.05;
  // Non-inferiority margins; unset = no such guardrail. Without a
  // `guardrails` block: error_rate with margin 0.005.
  std::optional<double> error_rate_margin = 0.005;
  std::optional<double> latency_p99_margin_ms;
  double srm_p = 0.001;
  bool promote_on_success = true;         // on_success: promote | hold
  bool rollback_on_inconclusive = false;  // on_inconclusive: hold | rollback
  int64_t max_errors = 10;
  // Before its first step the candidate gets copies of `share`% of the
  // requests (a mirror) and is compared with production on them; the steps
  // start once `min_units` requests were compared, the disagreement rate is
  // shown below `max_disagreement`, the guardrails hold and the labels do
  // not show it worse.
  struct ShadowStage {
    int64_t min_units = 5000;
    double max_disagreement = 0.05;
    double share = 100;
  };
  std::optional<ShadowStage> shadow_first;

  // The longest a spec may ask for (a year) and the most units per arm.
  static constexpr int64_t kMaxDurationS = 365LL * 24 * 3600;
  static constexpr int64_t kMaxUnits = 1'000'000'000;
};

// Reads the block (throws ConfigError naming the field, as every schema
// reader does); `field` is "rollout".
RolloutPolicy ReadRolloutPolicy(const YAML::Node& node, const std::string& field);
// Writes it back in the form ReadRolloutPolicy reads.
void WriteRolloutPolicy(const RolloutPolicy& policy, SpecWriter& out);

}  // namespace vigil
