// Online quality from ground truth: the metrics of one variant's joined
// predictions. Classifiers (a label that is a class index and outputs that
// are class probabilities): accuracy, log loss; for two classes also ROC
// AUC (the probability of class 1 as the score), precision, recall and F1
// of class 1, and the Brier score. Regressors (one output value): MAE and
// RMSE. Proxy feedback: mean reward. The label delay's median and 90th
// percentile. Pure; thread-compatible.
#pragma once

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

// The metrics of `q` by name ("accuracy", "auc", "f1", ...), unset ones included.
std::vector<std::pair<const char*, std::optional<double>>> QualityMetrics(const Quality& q);

// ROC AUC of scores against 0/1 labels (ties count half); nullopt when one
// class is missing.
std::optional<double> RocAuc(const std::vector<double>& scores, const std::vector<int>& labels);

// Parses the prediction log's compact outputs ("[0.1,0.9]").
std::vector<double> ParseCompactValues(const std::string& text);

}  // namespace vigil
