#include "rollout/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "rollout/experiment_stats.h"

namespace vigil {
StatusOr<Plan> PlanRollout(const PlanOptions& o) {
  if (o.shares.empty()) return InvalidArgument("--shares: at least one step");
  for (double s : o.shares) {
    if (!(s > 0 && s < 100)) return InvalidArgument(fmt::format("--shares: each from 0 to 100 (exclusive), got {}", s));
  }
  if (!(o.units_per_day > 0)) return InvalidArgument("--traffic: units per day must be positive");
  if (!(o.effect > o.threshold)) return InvalidArgument("--min-effect: must be above the threshold");
  if (!(o.alpha > 0 && o.alpha < 0.5)) return InvalidArgument("--alpha: between 0 and 0.5");
  if (!(o.power > 0.5 && o.power < 1)) return InvalidArgument("--power: between 0.5 and 1");
  if (o.sd <= 0 && !(o.baseline > 0 && o.baseline + o.effect < 1)) {
    return InvalidArgument("--baseline: a rate in (0, 1) with room for the effect (or give --sd for a mean)");
  }
  if (o.min_units < 2) return InvalidArgument("--min-units: at least 2");
  const double var_a = o.sd > 0 ? o.sd * o.sd : o.baseline * (1 - o.baseline);
  const double p_b = o.baseline + o.effect;
  const double var_b = o.sd > 0 ? o.sd * o.sd : p_b * (1 - p_b);
  const double min_days = static_cast<double>(o.min_duration_s) / 86400;
  const double z = NormalQuantile(o.power);

  Plan plan;
  for (size_t i = 0; i < o.shares.size(); ++i) {
    const double wb = o.shares[i] / 100, wa = 1 - wb;
    const double ratio = wa / wb;  // production units per candidate unit
    // The smaller arm needs min_units before anything is decided.
    const double exposed_b = static_cast<double>(o.min_units) * std::max(1.0, 1 / ratio);
    PlanStep step{.share = o.shares[i], .decides = i + 1 == o.shares.size()};
    double kb = exposed_b;
    if (step.decides) {
      auto variance = [&](double units_b) { return var_b / units_b + var_a / (units_b * ratio); };
      const double tau2 = TunedMixtureVariance(variance(exposed_b), o.alpha);
      auto enough = [&](double units_b) {
        const double v = variance(units_b);
        return o.effect - z * std::sqrt(v) - MixtureHalfWidth(v, tau2, o.alpha) > o.threshold;
      };
      double hi = exposed_b;
      while (!enough(hi)) {
        hi *= 2;
        if (hi > 1e13) return InvalidArgument("--min-effect: too small to detect with any traffic this plan can hold");
      }
      double lo = hi / 2;
      if (enough(lo)) lo = exposed_b;
      while (hi - lo > 1) {
        const double mid = (lo + hi) / 2;
        (enough(mid) ? hi : lo) = mid;
      }
      kb = std::max(exposed_b, hi);
    }
    step.candidate_units = static_cast<int64_t>(std::ceil(kb));
    step.production_units = static_cast<int64_t>(std::ceil(kb * ratio));
    step.days = std::max(min_days, kb / (o.units_per_day * wb));
    plan.days += step.days;
    plan.units += step.candidate_units + step.production_units;
    plan.steps.push_back(step);
  }
  return plan;
}

}  // namespace vigil
