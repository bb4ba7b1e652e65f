#include "monitoring/drift_stats.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include <boost/math/special_functions/gamma.hpp>

namespace vigil::stats {
namespace {

double Sum(std::span<const double> v) { return std::accumulate(v.begin(), v.end(), 0.0); }

// Cumulative shares of a count vector.
std::vector<double> Cdf(std::span<const double> counts) {
  std::vector<double> cdf(counts.size());
  const double total = Sum(counts);
  double run = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    run += counts[i];
    cdf[i] = total > 0 ? run / total : 0;
  }
  return cdf;
}

}  // namespace

double Psi(std::span<const double> reference, std::span<const double> current, double epsilon, int* empty_bins) {
  const double r_total = Sum(reference), c_total = Sum(current);
  int empty = 0;
  double psi = 0;
  for (size_t i = 0; i < reference.size() && i < current.size(); ++i) {
    double r = r_total > 0 ? reference[i] / r_total : 0;
    double c = c_total > 0 ? current[i] / c_total : 0;
    if (r == 0 || c == 0) ++empty;
    if (r == 0) r = epsilon;
    if (c == 0) c = epsilon;
    psi += (c - r) * std::log(c / r);
  }
  if (empty_bins) *empty_bins = empty;
  return psi;
}

double JensenShannonDistance(std::span<const double> reference, std::span<const double> current) {
  const double r_total = Sum(reference), c_total = Sum(current);
  if (r_total <= 0 || c_total <= 0) return 0;
  double divergence = 0;  // ½ KL(r‖m) + ½ KL(c‖m), in nats
  for (size_t i = 0; i < reference.size() && i < current.size(); ++i) {
    const double r = reference[i] / r_total, c = current[i] / c_total, m = (r + c) / 2;
    if (r > 0) divergence += 0.5 * r * std::log(r / m);
    if (c > 0) divergence += 0.5 * c * std::log(c / m);
  }
  return std::sqrt(std::max(0.0, divergence) / std::numbers::ln2);
}

TestResult ChiSquare(std::span<const double> reference, std::span<const double> current) {
  const size_t k = std::min(reference.size(), current.size());
  if (k < 2) return {};
  const double r_total = Sum(reference) + 0.5 * static_cast<double>(k), c_total = Sum(current);
  if (c_total <= 0) return {};
  double x = 0;
  for (size_t i = 0; i < k; ++i) {
    const double expected = c_total * (reference[i] + 0.5) / r_total;
    x += (current[i] - expected) * (current[i] - expected) / expected;
  }
  return {x, ChiSquareSurvival(x, static_cast<double>(k - 1))};
}

TestResult KolmogorovSmirnov(std::vector<double> reference, std::vector<double> current) {
  if (reference.empty() || current.empty()) return {};
  std::sort(reference.begin(), reference.end());
  std::sort(current.begin(), current.end());
  const double n = static_cast<double>(reference.size()), m = static_cast<double>(current.size());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < reference.size() && j < current.size()) {
    const double v = std::min(reference[i], current[j]);
    while (i < reference.size() && reference[i] <= v) ++i;
    while (j < current.size() && current[j] <= v) ++j;
    d = std::max(d, std::fabs(static_cast<double>(i) / n - static_cast<double>(j) / m));
  }
  return {d, KolmogorovSurvival(std::sqrt(n * m / (n + m)) * d)};
}

TestResult KolmogorovSmirnovBinned(std::span<const double> reference, std::span<const double> current) {
  const double n = Sum(reference), m = Sum(current);
  if (n <= 0 || m <= 0) return {};
  const std::vector<double> fr = Cdf(reference), fc = Cdf(current);
  double d = 0;
  for (size_t i = 0; i < fr.size() && i < fc.size(); ++i) d = std::max(d, std::fabs(fr[i] - fc[i]));
  return {d, KolmogorovSurvival(std::sqrt(n * m / (n + m)) * d)};
}

double Wasserstein(std::vector<double> reference, std::vector<double> current) {
  if (reference.empty() || current.empty()) return 0;
  std::sort(reference.begin(), reference.end());
  std::sort(current.begin(), current.end());
  std::vector<double> all(reference);
  all.insert(all.end(), current.begin(), current.end());
  std::sort(all.begin(), all.end());
  const double n = static_cast<double>(reference.size()), m = static_cast<double>(current.size());
  double w = 0;
  for (size_t k = 0; k + 1 < all.size(); ++k) {
    const double fr =
        static_cast<double>(std::upper_bound(reference.begin(), reference.end(), all[k]) - reference.begin()) / n;
    const double fc =
        static_cast<double>(std::upper_bound(current.begin(), current.end(), all[k]) - current.begin()) / m;
    w += std::fabs(fr - fc) * (all[k + 1] - all[k]);
  }
  return w;
}

double WassersteinWeighted(std::span<const double> points, std::span<const double> reference,
                           std::span<const double> current) {
  if (Sum(reference) <= 0 || Sum(current) <= 0) return 0;
  const std::vector<double> fr = Cdf(reference), fc = Cdf(current);
  double w = 0;
  for (size_t k = 0; k + 1 < points.size() && k < fr.size() && k < fc.size(); ++k) {
    w += std::fabs(fr[k] - fc[k]) * (points[k + 1] - points[k]);
  }
  return w;
}

// Boost 1.74 (Debian 12) has no Kolmogorov distribution (it came in 1.75),
// so its two classical series are summed here.
double KolmogorovSurvival(double x) {
  if (x <= 0) return 1;
  if (x < 1.18) {
    // P(K <= x) = √(2π)/x · Σ exp(−(2k−1)²π²/(8x²)), fast for small x.
    const double f = -std::numbers::pi * std::numbers::pi / (8 * x * x);
    double cdf = 0;
    for (int k = 1; k < 100; ++k) {
      const double term = std::exp(f * (2 * k - 1) * (2 * k - 1));
      cdf += term;
      if (term < 1e-17) break;
    }
    return std::clamp(1 - std::sqrt(2 * std::numbers::pi) / x * cdf, 0.0, 1.0);
  }
  // P(K > x) = 2 Σ (−1)^(k−1) exp(−2k²x²), fast for large x.
  double sf = 0;
  for (int k = 1; k < 100; ++k) {
    const double term = std::exp(-2.0 * k * k * x * x);
    sf += (k % 2 ? 2 : -2) * term;
    if (term < 1e-17) break;
  }
  return std::clamp(sf, 0.0, 1.0);
}

double ChiSquareSurvival(double x, double df) {
  if (!(x > 0) || !(df > 0) || !std::isfinite(df)) return 1;
  if (!std::isfinite(x)) return 0;
  // Q(df/2, x/2), the regularised upper incomplete gamma function (Boost.Math).
  return std::clamp(boost::math::gamma_q(df / 2, x / 2), 0.0, 1.0);
}

}  // namespace vigil::stats
