#include "rollout/experiment_stats.h"

#include <algorithm>
#include <cmath>

#include "monitoring/drift_stats.h"

namespace vigil {

double NormalTwoSidedP(double z) { return std::erfc(std::fabs(z) / std::sqrt(2.0)); }

double NormalQuantile(double p) {
  if (!(p > 0 && p < 1)) return p <= 0 ? -HUGE_VAL : HUGE_VAL;
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  double x;
  if (p < kLow || p > 1 - kLow) {
    const double q = std::sqrt(-2 * std::log(p < kLow ? p : 1 - p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    if (p > 1 - kLow) x = -x;
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  // One Halley step on Φ(x) − p.
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

TestStatistic TwoProportionZ(double successes_a, double n_a, double successes_b, double n_b) {
  if (!(n_a > 0 && n_b > 0)) return {};
  const double pooled = (successes_a + successes_b) / (n_a + n_b);
  const double se = std::sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b));
  if (!(se > 0)) return {};
  const double z = (successes_b / n_b - successes_a / n_a) / se;
  return {z, NormalTwoSidedP(z)};
}

TestStatistic WelchT(double mean_a, double var_a, double n_a, double mean_b, double var_b, double n_b) {
  if (!(n_a > 0 && n_b > 0)) return {};
  const double se = std::sqrt(var_a / n_a + var_b / n_b);
  if (!(se > 0)) return {};
  const double t = (mean_b - mean_a) / se;
  return {t, NormalTwoSidedP(t)};
}

void UnitSums::Add(double unit_y, double unit_n, double unit_values_squared) {
  ++units;
  values_squared += unit_values_squared;
  n += unit_n;
  y += unit_y;
  nn += unit_n * unit_n;
  yy += unit_y * unit_y;
  yn += unit_y * unit_n;
}

void UnitSums::Merge(const UnitSums& o) {
  units += o.units;
  n += o.n;
  y += o.y;
  nn += o.nn;
  yy += o.yy;
  yn += o.yn;
  values_squared += o.values_squared;
}

double UnitSums::Ratio() const { return n > 0 ? y / n : 0; }

double UnitSums::RatioVariance() const {
  if (units < 2 || !(n > 0)) return 0;
  const double k = static_cast<double>(units);
  const double mean_n = n / k, mean_y = y / k;
  const double s_nn = (nn - k * mean_n * mean_n) / (k - 1);
  const double s_yy = (yy - k * mean_y * mean_y) / (k - 1);
  const double s_yn = (yn - k * mean_y * mean_n) / (k - 1);
  const double r = Ratio();
  return std::max(0.0, (s_yy - 2 * r * s_yn + r * r * s_nn) / (k * mean_n * mean_n));
}

double UnitSums::NaiveVariance() const {
  if (!(n > 1)) return 0;
  const double r = Ratio();
  return std::max(0.0, (values_squared / n - r * r) / n);
}

double MixtureLikelihoodRatio(double estimate, double variance, double tau2, double theta0) {
  if (!(variance > 0) || !(tau2 > 0)) return 1;
  const double d = estimate - theta0;
  const double exponent = tau2 * d * d / (2 * variance * (variance + tau2));
  // Λ grows without bound; past e^700 a double overflows, and any such Λ
  // rejects at every α a spec allows.
  return std::sqrt(variance / (variance + tau2)) * std::exp(std::min(exponent, 700.0));
}

double MixtureHalfWidth(double variance, double tau2, double alpha) {
  if (!(variance > 0) || !(tau2 > 0)) return variance > 0 ? INFINITY : 0;
  return std::sqrt(variance * (variance + tau2) / tau2 *
                   (2 * std::log(1 / alpha) + std::log((variance + tau2) / variance)));
}

double TunedMixtureVariance(double planned_variance, double alpha) {
  const double two_log = -2 * std::log(alpha);
  return planned_variance * (two_log + std::log(two_log + 1));
}

SequentialLook Look(double estimate, double variance, double tau2, double theta0, double alpha, double previous_p) {
  SequentialLook look{.estimate = estimate, .variance = variance, .tau2 = tau2, .theta0 = theta0};
  look.lambda = MixtureLikelihoodRatio(estimate, variance, tau2, theta0);
  look.p = std::min({previous_p, 1 / look.lambda, 1.0});
  const double half = MixtureHalfWidth(variance, tau2, alpha);
  look.ci_low = estimate - half;
  look.ci_high = estimate + half;
  return look;
}

SampleRatio SampleRatioMismatch(std::span<const double> observed, std::span<const double> shares) {
  if (observed.size() != shares.size() || observed.size() < 2) return {};
  double total = 0, share_total = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    total += observed[i];
    share_total += shares[i];
  }
  if (!(total > 0) || !(share_total > 0)) return {};
  double chi2 = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double expected = total * shares[i] / share_total;
    if (!(expected > 0)) {
      // An arm configured to get nothing that got something is as
      // mismatched as it gets.
      if (observed[i] > 0) return {INFINITY, 0};
      continue;
    }
    chi2 += (observed[i] - expected) * (observed[i] - expected) / expected;
  }
  return {chi2, stats::ChiSquareSurvival(chi2, static_cast<double>(observed.size() - 1))};
}

double SequentialSampleRatioP(std::span<const double> observed, std::span<const double> shares, double concentration) {
  if (observed.size() != shares.size() || observed.size() < 2) return 1;
  double share_total = 0, n = 0;
  for (size_t i = 0; i < shares.size(); ++i) {
    share_total += shares[i];
    n += observed[i];
  }
  if (!(share_total > 0) || !(n > 0)) return 1;
  double log_bf = std::lgamma(concentration) - std::lgamma(concentration + n);
  for (size_t i = 0; i < shares.size(); ++i) {
    const double w = shares[i] / share_total;
    if (!(w > 0)) {
      if (observed[i] > 0) return 0;
      continue;
    }
    const double a = concentration * w;
    log_bf += std::lgamma(a + observed[i]) - std::lgamma(a) - observed[i] * std::log(w);
  }
  return std::min(1.0, std::exp(-log_bf));
}

}  // namespace vigil
