// Online quality from ground truth: the metrics of one variant's joined
// predictions. Classifiers (a label that is a class index and outputs that
// are class probabilities): accuracy, log loss, and ROC AUC for two classes
// (the probability of class 1 as the score). Regressors (one output value):
// MAE and RMSE. Proxy feedback: mean reward. Pure; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace vigil {

struct Outcome {
  std::vector<double> outputs;  // class probabilities, or one predicted value
  std::optional<double> label;
  std::optional<double> reward;
};

struct Quality {
  size_t joined = 0;   // predictions with any feedback
  size_t labeled = 0;  // with a label
  size_t rewarded = 0;
  std::optional<double> accuracy, log_loss, auc;  // classifiers
  std::optional<double> mae, rmse;                // regressors
  std::optional<double> mean_reward;
};

Quality ComputeQuality(const std::vector<Outcome>& outcomes);

// ROC AUC of scores against 0/1 labels (ties count half); nullopt when one
// class is missing.
std::optional<double> RocAuc(const std::vector<double>& scores, const std::vector<int>& labels);

// Parses the prediction log's compact outputs ("[0.1,0.9]").
std::vector<double> ParseCompactValues(const std::string& text);

}  // namespace vigil
