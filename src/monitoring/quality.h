// Online quality from ground truth: the metrics of one variant's joined
// predictions. Classifiers (a label that is a class index and outputs that
// are class probabilities): accuracy, log loss; for two classes also ROC
// AUC (the probability of class 1 as the score), precision, recall and F1
// of class 1, and the Brier score. Regressors (one output value): MAE and
// RMSE. Proxy feedback: mean reward. The label delay's median and 90th
// percentile. Pure; thread-compatible.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vigil {

struct Outcome {
  std::vector<double> outputs;  // class probabilities, or one predicted value
  std::optional<double> label;
  std::optional<double> reward;
  std::optional<int64_t> delay_ms;  // feedback time minus prediction time
};

struct Quality {
  size_t joined = 0;   // predictions with any feedback
  size_t labeled = 0;  // with a label
  size_t rewarded = 0;
  std::optional<double> accuracy, log_loss, auc;  // classifiers
  // Binary classifiers, class 1 positive, predicted by the larger probability.
  std::optional<double> precision, recall, f1, brier;
  std::optional<double> mae, rmse;  // regressors
  std::optional<double> mean_reward;
  std::optional<double> label_delay_p50_s, label_delay_p90_s;  // how long feedback took
};

Quality ComputeQuality(const std::vector<Outcome>& outcomes);

// Confidence-based performance estimation (shared/STATISTICS.md): for a
// calibrated classifier whose outputs are class probabilities, the chance
// that a prediction is right is the probability of the class it predicts
// (binary: p when it predicts positive, 1 - p otherwise). Averaged over
// predictions that have no labels yet, that is the expected accuracy. It
// cannot see concept drift, so it is reported beside realised accuracy,
// never instead of it.
//
// The expected correctness of one prediction; none when `outputs` are not
// a probability vector (two or more values in [0, 1] summing to 1 ± 0.01).
std::optional<double> ExpectedCorrect(const std::vector<double>& outputs);

// A quality regression rule (`quality:` in a model's monitoring block or an
// endpoint's spec): alert when `metric` over a complete window of
// `window_s` seconds is below `below`, or more than `drop` below its value
// on the labelled rows of reference.csv; no verdict on fewer than
// `min_labels` labels (rewards, for mean_reward). NaN turns a part off.
// The longest quality window (a year) and the largest count a rule may name.
constexpr int64_t kMaxQualityWindowS = 365LL * 24 * 3600;
constexpr int64_t kMaxRuleCount = 1'000'000'000;

struct QualityRule {
  std::string metric = "accuracy";
  double below = std::numeric_limits<double>::quiet_NaN();
  double drop = std::numeric_limits<double>::quiet_NaN();
  int64_t window_s = 3600;
  int64_t min_labels = 30;

  bool active() const { return !std::isnan(below) || !std::isnan(drop); }
  // The limit a window's value is held to, given the reference's value (if any):
  // the higher of `below` and reference − `drop`; NaN when neither applies.
  double Limit(std::optional<double> reference) const;
};

// What is wrong with a rule: {field under the rule ("metric", "drop", ...;
// empty for the rule as a whole), what was expected}; both empty when it is
// valid.
std::pair<std::string, std::string> CheckQualityRule(const QualityRule& rule);

// The metrics of `q` by name ("accuracy", "auc", "f1", ...), unset ones included.
std::vector<std::pair<const char*, std::optional<double>>> QualityMetrics(const Quality& q);
// One of them by name; none when it is unset or unknown.
std::optional<double> QualityMetric(const Quality& q, const std::string& name);

// ROC AUC of scores against 0/1 labels (ties count half); nullopt when one
// class is missing.
std::optional<double> RocAuc(const std::vector<double>& scores, const std::vector<int>& labels);

// Parses the prediction log's compact outputs ("[0.1,0.9]").
std::vector<double> ParseCompactValues(const std::string& text);

}  // namespace vigil
