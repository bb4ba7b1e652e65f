// The statistics of online experiments (shared/STATISTICS.md, "Is the
// candidate better?"): two-proportion z and Welch t for a fixed-horizon
// look, the mixture sequential probability ratio test (mSPRT) that stays
// valid when looked at every interval, its always-valid confidence
// interval, sample ratio mismatch (χ²), and the delta-method variance of a
// ratio metric aggregated per unit. Pure functions and plain values;
// thread-compatible.
#pragma once

#include <cstdint>
#include <span>

namespace vigil {

// Two proportions: z = (p_B − p_A) / √(p̂(1 − p̂)(1/n_A + 1/n_B)), pooled p̂.
struct TestStatistic {
  double statistic = 0;
  double p_two_sided = 1;
};
TestStatistic TwoProportionZ(double successes_a, double n_a, double successes_b, double n_b);
// Welch's t for two means from their sample variances (normal approximation
// of the p-value: the samples a rollout decides on are large).
TestStatistic WelchT(double mean_a, double var_a, double n_a, double mean_b, double var_b, double n_b);

// The two-sided normal survival 2·(1 − Φ(|z|)).
double NormalTwoSidedP(double z);
// The standard normal quantile Φ⁻¹(p) for p in (0, 1) (Acklam's rational
// approximation refined by one Halley step: about 1e-15 relative).
double NormalQuantile(double p);

// One arm's metric as a ratio over units (the routing keys): per unit i the
// sum y_i of the metric over its scored predictions and their count n_i.
// Kept as sums, so arms merge by addition and a store scan rebuilds them.
struct UnitSums {
  int64_t units = 0;  // K
  double n = 0, y = 0;
  double nn = 0, yy = 0, yn = 0;
  double values_squared = 0;  // Σ over predictions of value², for NaiveVariance

  // `unit_values_squared`: the sum of its predictions' squared values.
  void Add(double unit_y, double unit_n, double unit_values_squared);
  void Merge(const UnitSums& other);
  // R = Σy / Σn; 0 without data.
  double Ratio() const;
  // Var(R) ≈ (s_y² − 2R·s_yn + R²·s_n²) / (K · n̄²), the delta method;
  // with n_i = 1 for every unit it is the usual s²/K. 0 with fewer than 2 units.
  double RatioVariance() const;
  // The same, as if every prediction were its own unit (what the delta
  // method prevents: too small when predictions of a unit are correlated).
  double NaiveVariance() const;
};

// The mSPRT with a normal mixture N(θ₀, τ²) over the difference θ = B − A,
// given its estimate θ̂ and the estimate's variance V:
//   Λ = √(V / (V + τ²)) · exp(τ² (θ̂ − θ₀)² / (2 V (V + τ²))).
// Rejecting θ = θ₀ when Λ ≥ 1/α keeps the error at most α however often it
// is checked.
double MixtureLikelihoodRatio(double estimate, double variance, double tau2, double theta0 = 0);
// The always-valid confidence interval's half-width:
//   √(V (V + τ²) / τ² · [2 ln(1/α) + ln((V + τ²) / V)]),
// the θ₀ with Λ(θ₀) < 1/α.
double MixtureHalfWidth(double variance, double tau2, double alpha);
// The mixing variance tuned to decide near a planned sample: the one that
// minimises the expected time to reject when the estimate's variance then
// is `planned_variance` (STATISTICS.md's ρ² = (−2 ln α + ln(1 − 2 ln α)) / N,
// times the variance of one observation).
double TunedMixtureVariance(double planned_variance, double alpha);

// One look of a sequential test of θ = B − A against θ₀.
struct SequentialLook {
  double estimate = 0, variance = 0, tau2 = 0, theta0 = 0;
  double lambda = 1;               // Λ at θ₀
  double p = 1;                    // always valid: min over looks of 1/Λ
  double ci_low = 0, ci_high = 0;  // always valid, at level 1 − α
};
// `previous_p`: the p of the last look of the same test (1 at the first).
SequentialLook Look(double estimate, double variance, double tau2, double theta0, double alpha, double previous_p);

// Sample ratio mismatch: χ² = Σ (O − E)² / E with E = N·w (the shares
// normalised to sum 1), df = arms − 1.
struct SampleRatio {
  double chi2 = 0;
  double p = 1;
};
SampleRatio SampleRatioMismatch(std::span<const double> observed, std::span<const double> shares);

// The same question asked sequentially, so looking every interval does not
// raise false alarms (χ²'s p at 0.001, looked at hourly for ten days, flags
// about 2% of healthy experiments): the Bayes factor of a Dirichlet-
// multinomial mixture (prior Dirichlet(concentration · w)) against the
// configured shares w, as in Lindon & Malek's anytime-valid test for
// multinomial counts. Returns 1/BF, capped at 1; its running minimum is an
// always-valid p.
double SequentialSampleRatioP(std::span<const double> observed, std::span<const double> shares,
                              double concentration = 100);

}  // namespace vigil
