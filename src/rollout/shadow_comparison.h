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
  // The disagreement rate's upper bound at 95% (Wilson): what a stage gate compares.
  double disagreement_upper = 0;
  double mean_abs_diff = 0, max_abs_diff = 0;  // over every output value
  double production_p50_ms = 0, shadow_p50_ms = 0;
  QuantileEstimate production_p99_ms, shadow_p99_ms;
  int64_t labeled = 0;  // pairs whose served prediction has a class label
  double production_accuracy = 0, shadow_accuracy = 0;
  // shadow − production accuracy on the labelled pairs (paired), with its 95% interval
  double accuracy_difference = 0, accuracy_ci_low = 0, accuracy_ci_high = 0;
  bool truncated = false;
};

// Compares `shadow` with production over [from_ms, to_ms), reading at most `limit` pairs.
StatusOr<ShadowComparison> CompareShadow(FeedbackStore& store, const std::string& endpoint, const std::string& shadow,
                                         int64_t from_ms, int64_t to_ms, int64_t limit);

}  // namespace vigil
