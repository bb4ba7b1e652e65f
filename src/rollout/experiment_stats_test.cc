#include "rollout/experiment_stats.h"

#include "rollout/analysis.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace vigil {
namespace {

// The worked checks of shared/STATISTICS.md, to 1e-6 where it gives the
// digits (and to the digits it gives otherwise).

TEST(ExperimentStats, TwoProportionsWorkedCheck) {
  // 0.10 vs 0.11 with 20,000 per arm → z = 3.26, two-sided p = 0.0011.
  const TestStatistic z = TwoProportionZ(2000, 20000, 2200, 20000);
  EXPECT_NEAR(z.statistic, 3.26, 0.005);
  EXPECT_NEAR(z.p_two_sided, 0.0011, 0.00005);
  // Pinned to 1e-6 against an independent computation (Python's math.erfc).
  EXPECT_NEAR(z.statistic, 3.262074, 1e-6);
  EXPECT_NEAR(z.p_two_sided, 0.001106, 1e-6);
}

TEST(ExperimentStats, WelchMatchesTheTwoProportionFormWithSeparateVariances) {
  const TestStatistic t = WelchT(0.10, 0.09, 20000, 0.11, 0.0979, 20000);
  EXPECT_NEAR(t.statistic, 0.01 / std::sqrt(0.09 / 20000 + 0.0979 / 20000), 1e-9);
  EXPECT_EQ(WelchT(0, 0, 0, 0, 0, 10).p_two_sided, 1);  // no data, no evidence
}

TEST(ExperimentStats, MsprtBernoulliWorkedCheck) {
  // 0.10 vs 0.11, 20,000 per arm, τ = 0.01 → Λ ≈ 38.0, p ≈ 0.026.
  const double v = 0.10 * 0.90 / 20000 + 0.11 * 0.89 / 20000;
  const double lambda = MixtureLikelihoodRatio(0.01, v, 0.01 * 0.01);
  EXPECT_NEAR(lambda, 38.0, 0.05);
  EXPECT_NEAR(1 / lambda, 0.026, 0.0005);
  const SequentialLook look = Look(0.01, v, 1e-4, 0, 0.05, 1);
  EXPECT_DOUBLE_EQ(look.lambda, lambda);
  EXPECT_DOUBLE_EQ(look.p, 1 / lambda);
  // Rejected at α = 0.05 (Λ ≥ 20), so 0 lies outside the always-valid interval.
  EXPECT_GT(look.ci_low, 0);
}

TEST(ExperimentStats, MsprtMeansWorkedCheck) {
  // n = 20,000, s = 1, θ̂ = 0.03, τ² = ρ² s², ρ ≈ 0.0398 at α = 0.05, V = s²/n
  // → Λ ≈ 1075.75, CI half-width ≈ 0.0221.
  const double alpha = 0.05;
  const double rho = std::sqrt((-2 * std::log(alpha) + std::log(-2 * std::log(alpha) + 1)) / 5000);
  EXPECT_NEAR(rho, 0.0398, 1e-4);
  const double v = 1.0 / 20000, tau2 = rho * rho;
  EXPECT_NEAR(MixtureLikelihoodRatio(0.03, v, tau2), 1075.75, 0.01);
  EXPECT_NEAR(MixtureHalfWidth(v, tau2, alpha), 0.0221, 1e-4);
  // ρ² s² is TunedMixtureVariance at the planned sample's variance s²/5000.
  EXPECT_NEAR(TunedMixtureVariance(1.0 / 5000, alpha), tau2, 1e-12);
}

TEST(ExperimentStats, TheIntervalIsExactlyWhereLambdaStaysBelowOneOverAlpha) {
  const double v = 4e-5, tau2 = 3e-4, alpha = 0.05, estimate = 0.012;
  const double half = MixtureHalfWidth(v, tau2, alpha);
  EXPECT_NEAR(MixtureLikelihoodRatio(estimate, v, tau2, estimate + half), 1 / alpha, 1e-6);
  EXPECT_NEAR(MixtureLikelihoodRatio(estimate, v, tau2, estimate - half), 1 / alpha, 1e-6);
  EXPECT_LT(MixtureLikelihoodRatio(estimate, v, tau2, estimate + 0.9 * half), 1 / alpha);
}

TEST(ExperimentStats, TheAlwaysValidPNeverRises) {
  double p = 1;
  for (double estimate : {0.02, 0.03, 0.001, 0.0}) {
    const SequentialLook look = Look(estimate, 1e-4, 1e-3, 0, 0.05, p);
    EXPECT_LE(look.p, p);
    p = look.p;
  }
  EXPECT_LT(p, 1);  // 0.03 with V = 1e-4 is evidence, and it is kept
}

TEST(ExperimentStats, NoVarianceIsNoEvidence) {
  EXPECT_EQ(MixtureLikelihoodRatio(1, 0, 1e-3), 1);
  EXPECT_EQ(MixtureLikelihoodRatio(1, 1e-3, 0), 1);
  // Λ is bounded instead of overflowing on an estimate far off θ₀.
  EXPECT_TRUE(std::isfinite(MixtureLikelihoodRatio(1e6, 1e-9, 1e-3)));
}

TEST(ExperimentStats, SampleRatioMismatchWorkedCheck) {
  // Expected 500/500, observed 600/400 → χ² = 40, p ≈ 2.5e−10.
  const std::vector<double> observed{600, 400}, shares{50, 50};
  const SampleRatio srm = SampleRatioMismatch(observed, shares);
  EXPECT_NEAR(srm.chi2, 40, 1e-9);
  EXPECT_NEAR(srm.p, 2.539e-10, 1e-12);
  // The threshold of STATISTICS.md: χ²₁ > 10.83 is p < 0.001.
  const std::vector<double> edge{500 + std::sqrt(10.83 * 250), 500 - std::sqrt(10.83 * 250)};
  EXPECT_NEAR(SampleRatioMismatch(edge, shares).p, 0.001, 2e-6);
  // Shares are normalised: 5 and 95 (a canary at 5%) are the same as 0.05 and 0.95.
  const std::vector<double> canary{52, 948}, five{5, 95}, fraction{0.05, 0.95};
  EXPECT_NEAR(SampleRatioMismatch(canary, five).chi2, SampleRatioMismatch(canary, fraction).chi2, 1e-12);
  // An arm configured for nothing that got traffic.
  const std::vector<double> leaked{10, 990}, none{0, 100};
  EXPECT_EQ(SampleRatioMismatch(leaked, none).p, 0);
}

TEST(ExperimentStats, SequentialSampleRatioSeesTheSameMismatchesAndFewerFalseOnes) {
  const std::vector<double> shares{50, 50};
  const std::vector<double> bad{600, 400}, fine{505, 495};
  EXPECT_LT(SequentialSampleRatioP(bad, shares), 1e-5);
  EXPECT_EQ(SequentialSampleRatioP(fine, shares), 1);
  // It pays for looking again: at χ²'s 0.001 boundary it does not flag yet.
  const std::vector<double> edge{500 + std::sqrt(10.83 * 250), 500 - std::sqrt(10.83 * 250)};
  EXPECT_GT(SequentialSampleRatioP(edge, shares), 0.001);
  // A 10% canary whose units come in at a third of their share.
  const std::vector<double> canary{9000, 330}, ten{90, 10};
  EXPECT_LT(SequentialSampleRatioP(canary, ten), 1e-20);
  const std::vector<double> leaked{10, 990}, none{0, 100};
  EXPECT_EQ(SequentialSampleRatioP(leaked, none), 0);
}

TEST(ExperimentStats, DeltaMethodWorkedCheck) {
  // y = (9, 0, 11, 0, 1, 7), n = (10, 4, 12, 5, 9, 8) → R = 0.583333,
  // Var(R) = 0.033066, against the naive R(1 − R)/N = 0.005064.
  const double y[] = {9, 0, 11, 0, 1, 7}, n[] = {10, 4, 12, 5, 9, 8};
  UnitSums sums;
  for (int i = 0; i < 6; ++i) sums.Add(y[i], n[i], y[i]);  // 0/1 values: Σvalue² = Σvalue
  EXPECT_NEAR(sums.Ratio(), 0.583333, 1e-6);
  EXPECT_NEAR(sums.RatioVariance(), 0.033066, 1e-6);
  EXPECT_NEAR(sums.NaiveVariance(), 0.005064, 1e-6);
}

TEST(ExperimentStats, OnePredictionPerUnitIsTheUsualVariance) {
  UnitSums sums;
  const std::vector<double> values{1.5, 2.0, 0.5, 3.0, 2.5};
  double mean = 0;
  for (double v : values) {
    sums.Add(v, 1, v * v);
    mean += v / 5;
  }
  double s2 = 0;
  for (double v : values) s2 += (v - mean) * (v - mean) / 4;
  EXPECT_NEAR(sums.RatioVariance(), s2 / 5, 1e-12);
}

TEST(ExperimentStats, UnitSumsMergeByAddition) {
  UnitSums a, b, all;
  a.Add(3, 4, 3);
  a.Add(1, 2, 1);
  b.Add(0, 5, 0);
  b.Add(7, 9, 7);
  for (auto [y, n] : {std::pair{3.0, 4.0}, {1.0, 2.0}, {0.0, 5.0}, {7.0, 9.0}}) all.Add(y, n, y);
  a.Merge(b);
  EXPECT_EQ(a.units, all.units);
  EXPECT_DOUBLE_EQ(a.RatioVariance(), all.RatioVariance());
}

TEST(ExperimentStats, NormalQuantileInvertsTheNormalCdf) {
  EXPECT_NEAR(NormalQuantile(0.975), 1.959963985, 1e-8);
  EXPECT_NEAR(NormalQuantile(0.995), 2.575829304, 1e-8);
  EXPECT_NEAR(NormalQuantile(0.5), 0, 1e-12);
  EXPECT_NEAR(NormalQuantile(0.025), -1.959963985, 1e-8);
  for (double p : {1e-10, 0.001, 0.02, 0.3, 0.7, 0.98, 0.999, 1 - 1e-10}) {
    EXPECT_NEAR(0.5 * std::erfc(-NormalQuantile(p) / std::sqrt(2.0)), p, 1e-12 * std::max(1.0, p / (1 - p))) << p;
  }
}

TEST(MetricValue, RatesAreRatiosOfCountsAndMeansCountOne) {
  auto at = [](const char* name, std::vector<double> outputs, double label) {
    RolloutPolicy::Metric m;
    m.name = name;
    return MetricValue(m, outputs, label, std::nullopt);
  };
  // Predicted positive and right: TP.
  EXPECT_EQ(at("precision", {0.2, 0.8}, 1)->y, 1);
  EXPECT_EQ(at("precision", {0.2, 0.8}, 1)->n, 1);
  // Predicted negative: precision's 0/0, recall's FN (0 of 1).
  EXPECT_EQ(at("precision", {0.8, 0.2}, 1)->n, 0);
  EXPECT_EQ(at("recall", {0.8, 0.2}, 1)->y, 0);
  EXPECT_EQ(at("recall", {0.8, 0.2}, 1)->n, 1);
  // F1 = 2TP / (2TP + FP + FN): a false positive adds 1 below, a TP 2 above and below.
  EXPECT_EQ(at("f1", {0.3, 0.7}, 0)->y, 0);
  EXPECT_EQ(at("f1", {0.3, 0.7}, 0)->n, 1);
  EXPECT_EQ(at("f1", {0.3, 0.7}, 1)->y, 2);
  EXPECT_EQ(at("f1", {0.3, 0.7}, 1)->n, 2);
  EXPECT_EQ(at("f1", {0.7, 0.3}, 0)->n, 0) << "a true negative moves nothing";
  EXPECT_EQ(at("accuracy", {0.7, 0.3}, 0)->n, 1);
  EXPECT_FALSE(at("f1", {0.2, 0.3, 0.5}, 1)) << "binary only";
  EXPECT_FALSE(at("precision", {0.2, 0.8}, 2));
}

}  // namespace
}  // namespace vigil
