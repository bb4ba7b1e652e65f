// Training small students with the runtimes Vigil already links (vigil
// distill): a gradient-boosted tree model through XGBoost's C API, and an
// MLP through libtorch's C++ API, saved as a TorchScript file the
// torchscript backend loads. Each lives in its runtime's translation unit;
// without that runtime compiled in, training is Unimplemented.
#pragma once

#include <cstdint>
#include <filesystem>

#include "core/status.h"

namespace vigil {

// What the student learns to answer for each row: the teacher's outputs.
enum class StudentTarget {
  kClassProbabilities,  // k >= 2 values per row summing to 1: soft labels
  kProbability,         // one value per row in [0, 1]: the positive class's probability
  kValue,               // one value per row (or k for the MLP): regression
};

struct TrainingSet {
  const float* x = nullptr;  // rows × width, row-major
  int64_t rows = 0, width = 0;
  const float* y = nullptr;  // rows × k, the teacher's answers
  int64_t k = 1;
  StudentTarget target = StudentTarget::kClassProbabilities;
  uint64_t seed = 1;
};

// `trees` boosting rounds of depth `depth`, written as XGBoost JSON to
// `out_file`. Class probabilities with k = 2 train on the second class's
// probability (reg:logistic, soft labels), which the xgboost backend turns
// back into [1 - p, p]; with k > 2 on the teacher's argmax (multi:softprob:
// XGBoost takes no soft labels for several classes).
Status TrainXgboostStudent(const TrainingSet& data, int64_t trees, int64_t depth,
                           const std::filesystem::path& out_file);

// One hidden layer of `hidden` ReLU units over standardised inputs (the
// standardisation inside the saved module), trained with Adam on the soft
// cross-entropy (class probabilities), the logistic loss (a probability) or
// the squared error (values); the module answers softmax, sigmoid or the
// values as the teacher does.
Status TrainMlpStudent(const TrainingSet& data, int64_t hidden, const std::filesystem::path& out_file);

}  // namespace vigil
