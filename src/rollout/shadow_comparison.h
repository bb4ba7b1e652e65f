// A shadow against production on the same requests: how often they
// disagree (argmax of the outputs; for one output, the size of the
// difference), how much their scores differ, their latency, the shadow's
// errors, and — where the served prediction got a label — the accuracy of
// both on those requests (the same request has the same label). What
// GET /v1/deployments/{e}/shadow reports for every shadow, with or without
// a rollout. Reads the prediction log; pure otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "rollout/analysis.h"
#include "store/store.h"

namespace vigil {

struct ShadowComparison {
  std::string shadow;
  int64_t pairs = 0;          // shadow answers whose served answer was production's
  int64_t compared = 0;       // of them, with outputs of the same length
  int64_t disagreements = 0;  // the predicted class differs (two or more outputs)
  double disagreement_rate = 0;
  // The disagreement rate's bounds at 95% (Wilson): what a stage gate compares.
  double disagreement_lower = 0, disagreement_upper = 0;
  double mean_abs_diff = 0, max_abs_diff = 0;  // over every output value
  double production_p50_ms = 0, shadow_p50_ms = 0;
  QuantileEstimate production_p99_ms, shadow_p99_ms;
  int64_t labeled = 0;  // pairs whose served prediction has a class label
  double production_accuracy = 0, shadow_accuracy = 0;
  // shadow − production accuracy on the labelled pairs (paired), with its 95% interval
  double accuracy_difference = 0, accuracy_ci_low = 0, accuracy_ci_high = 0;
  bool truncated = false;
};

// The rollout's shadow stage (`shadow_first`) judged on a comparison:
// Failed when a guardrail is shown worse, the labels show the shadow worse,
// or the disagreement is shown above max_disagreement; Successful (start the
// steps) once min_units requests were compared, the disagreement is shown
// below the limit, every guardrail is safe and min_duration_s has passed;
// Inconclusive at max_duration_s; Running otherwise.
struct ShadowStageData {
  ShadowComparison comparison;
  uint64_t production_requests = 0, production_errors = 0;
  uint64_t copies = 0, copy_errors = 0;  // the candidate's shadow copies
  int64_t elapsed_s = 0;
  std::string missing;  // the data could not be read: an Error
};
Analysis AnalyzeShadowStage(const RolloutPolicy& policy, const ShadowStageData& data,
                            std::map<std::string, TestMemory>& memory);

// Wilson's interval for `successes` of `n` at 95%: {lower, upper}.
std::pair<double, double> WilsonInterval(double successes, double n);

// Compares `shadow` with production over [from_ms, to_ms), reading at most `limit` pairs.
StatusOr<ShadowComparison> CompareShadow(FeedbackStore& store, const std::string& endpoint, const std::string& shadow,
                                         int64_t from_ms, int64_t to_ms, int64_t limit);

}  // namespace vigil
