#include "monitoring/quality.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace vigil {
namespace {

TEST(Quality, ClassifierAccuracyLogLossAndAuc) {
  // Hand-computed: accuracy 2/4; log loss from p[label] = 0.9, 0.4, 0.4, 0.8; AUC 3/4
  // (positives score 0.9, 0.4, negatives 0.6, 0.2: pairs won 0.9>0.6, 0.9>0.2, 0.4>0.2).
  std::vector<Outcome> o = {
      {{0.1, 0.9}, 1, std::nullopt, 1000},                     // true positive
      {{0.6, 0.4}, 1, std::nullopt, 2000},                     // false negative
      {{0.4, 0.6}, 0, std::nullopt, 60000},                    // false positive
      {{0.8, 0.2}, 0, std::nullopt, 3000},                     // true negative
      {{0.5, 0.5}, std::nullopt, std::nullopt, std::nullopt},  // no feedback: not joined
  };
  const Quality q = ComputeQuality(o);
  EXPECT_EQ(q.joined, 4u);
  EXPECT_EQ(q.labeled, 4u);
  EXPECT_DOUBLE_EQ(*q.accuracy, 0.5);  // 0.9→1 right, 0.4→0 wrong, 0.6→1 wrong, 0.2→0 right
  EXPECT_NEAR(*q.log_loss, -(std::log(0.9) + std::log(0.4) + std::log(0.4) + std::log(0.8)) / 4, 1e-12);
  EXPECT_DOUBLE_EQ(*q.auc, 0.75);
  EXPECT_DOUBLE_EQ(*q.precision, 0.5);
  EXPECT_DOUBLE_EQ(*q.recall, 0.5);
  EXPECT_DOUBLE_EQ(*q.f1, 0.5);
  EXPECT_NEAR(*q.brier, (0.01 + 0.36 + 0.36 + 0.04) / 4, 1e-12);
  EXPECT_DOUBLE_EQ(*q.label_delay_p50_s, 2);  // delays 1, 2, 3, 60 s
  EXPECT_DOUBLE_EQ(*q.label_delay_p90_s, 3);
  EXPECT_FALSE(q.mae);
}

TEST(Quality, RegressionAndRewards) {
  std::vector<Outcome> o = {{{2.0}, 1.0, std::nullopt, std::nullopt},
                            {{0.0}, 2.0, std::nullopt, std::nullopt},
                            {{5.0}, std::nullopt, 1.0, std::nullopt},
                            {{5.0}, std::nullopt, 0.0, std::nullopt}};
  const Quality q = ComputeQuality(o);
  EXPECT_DOUBLE_EQ(*q.mae, 1.5);
  EXPECT_DOUBLE_EQ(*q.rmse, std::sqrt((1.0 + 4.0) / 2));
  EXPECT_DOUBLE_EQ(*q.mean_reward, 0.5);
  EXPECT_EQ(q.joined, 4u);
  EXPECT_FALSE(q.accuracy);
}

TEST(Quality, AucHandlesTiesAndSingleClass) {
  EXPECT_DOUBLE_EQ(*RocAuc({0.5, 0.5}, {0, 1}), 0.5);
  EXPECT_DOUBLE_EQ(*RocAuc({0.1, 0.2, 0.3}, {0, 0, 1}), 1.0);
  EXPECT_FALSE(RocAuc({0.1, 0.2}, {1, 1}));
  EXPECT_EQ(ParseCompactValues("[0.25,1e-3,-2]"), (std::vector<double>{0.25, 1e-3, -2}));
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(ExpectedCorrect, IsTheProbabilityOfThePredictedClass) {
  EXPECT_DOUBLE_EQ(*ExpectedCorrect({0.2, 0.8}), 0.8);
  EXPECT_DOUBLE_EQ(*ExpectedCorrect({0.7, 0.3}), 0.7);
  EXPECT_DOUBLE_EQ(*ExpectedCorrect({0.1, 0.6, 0.3}), 0.6);
  EXPECT_FALSE(ExpectedCorrect({0.9}));              // one value: a score or a regression
  EXPECT_FALSE(ExpectedCorrect({2.0, -1.0}));        // logits
  EXPECT_FALSE(ExpectedCorrect({0.5, 0.2}));         // does not sum to 1
  EXPECT_FALSE(ExpectedCorrect({std::nan(""), 1}));  // NaN
}

// On a calibrated classifier (labels drawn with the predicted probability)
// the estimate matches realised accuracy; on an overconfident one it does not.
TEST(ExpectedCorrect, EstimatesRealisedAccuracyOfACalibratedClassifier) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> uniform(0, 1);
  auto run = [&](double overconfidence) {
    double expected = 0;
    size_t correct = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      const double truth = uniform(rng);                                                // P(class 1)
      const double shown = std::clamp(0.5 + (truth - 0.5) * overconfidence, 0.0, 1.0);  // what the model says
      const int label = uniform(rng) < truth ? 1 : 0;
      expected += *ExpectedCorrect({1 - shown, shown});
      correct += (shown >= 0.5 ? 1 : 0) == label;
    }
    return std::pair{expected / n, static_cast<double>(correct) / n};
  };
  auto [estimate, realised] = run(1.0);
  EXPECT_NEAR(estimate, realised, 0.01);  // sd of realised accuracy ≈ 0.003
  auto [over_estimate, over_realised] = run(2.0);
  EXPECT_GT(over_estimate - over_realised, 0.05);
}

}  // namespace
}  // namespace vigil
