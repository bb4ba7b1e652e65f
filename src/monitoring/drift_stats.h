// Drift statistics (shared/STATISTICS.md, "Drift"): a reference distribution
// against a live window, as counts over shared bins or as raw samples.
// Free functions, no state; each matches an independent SciPy computation
// to 1e-6 (tests/fixtures/drift_stats.json, made by
// tests/fixtures/make_drift_fixtures.py).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vigil::stats {

// A test statistic with its p-value (1 when the test has nothing to say).
struct TestResult {
  double statistic = 0;
  double p_value = 1;
};

// Population stability index over bins: Σ (c − r)·ln(c / r) on shares.
// A bin with a zero share on either side gets `epsilon` there instead
// (Evidently's rule); `empty_bins`, when given, receives how many did.
double Psi(std::span<const double> reference, std::span<const double> current, double epsilon = 1e-4,
           int* empty_bins = nullptr);

// Jensen–Shannon distance with log base 2 (in [0, 1]) between the two
// count vectors, each normalised to shares; scipy.spatial.distance.jensenshannon.
double JensenShannonDistance(std::span<const double> reference, std::span<const double> current);

// Pearson's chi-square of the current counts against the reference shares
// smoothed by +0.5 per bin (so an "unseen" bin has a finite expectation);
// df = bins − 1. scipy.stats.chisquare(current, n_current · shares).
TestResult ChiSquare(std::span<const double> reference, std::span<const double> current);

// Two-sample Kolmogorov–Smirnov: D = sup |F_ref − F_cur|, p from the
// asymptotic Kolmogorov distribution at √(n·m/(n+m))·D.
TestResult KolmogorovSmirnov(std::vector<double> reference, std::vector<double> current);
// The same over counts on shared ordered bins: D is taken at bin boundaries.
TestResult KolmogorovSmirnovBinned(std::span<const double> reference, std::span<const double> current);

// Wasserstein-1 distance between two samples (∫ |F_ref − F_cur| dx).
double Wasserstein(std::vector<double> reference, std::vector<double> current);
// The same between two weightings of shared sorted support points.
double WassersteinWeighted(std::span<const double> points, std::span<const double> reference,
                           std::span<const double> current);

// Survival function of the Kolmogorov distribution, P(K > x).
double KolmogorovSurvival(double x);
// Survival function of the chi-square distribution with `df` degrees of freedom.
double ChiSquareSurvival(double x, double df);

}  // namespace vigil::stats
