// `vigil rollout plan`: how many units and days a rollout needs before it
// decides, at the configured α and power — computed with the controller's
// own rule (analysis.h): at each step before the last, min_units per arm
// and min_duration_s; at the last step, until the always-valid interval of
// the difference clears the threshold with the given power when the
// candidate is better by `effect`.
//
// The power condition is taken at one look (the estimate θ̂ ~ N(effect, V)
// clears the interval's half-width w(V) with probability `power`), so the
// real power of the sequential test, which may also stop earlier, is at
// least that.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace vigil {

struct PlanOptions {
  // Bernoulli metrics: the production rate (e.g. 0.10 click-through);
  // means: set `sd`, and baseline is only the mean shown.
  double baseline = 0.10;
  double sd = 0;         // a unit's standard deviation for a mean metric; 0 = Bernoulli
  double effect = 0.01;  // the improvement to detect, absolute
  double threshold = 0;  // the spec's metric.min_effect
  double units_per_day = 20000;
  std::vector<double> shares{5, 25, 50};  // the candidate's steps, percent
  double alpha = 0.05, power = 0.8;
  int64_t min_units = 1000;
  int64_t min_duration_s = 600;
};

struct PlanStep {
  double share = 0;             // percent
  int64_t candidate_units = 0;  // at the step, to a decision
  int64_t production_units = 0;
  double days = 0;
  bool decides = false;  // the promotion step (the last)
};
struct Plan {
  std::vector<PlanStep> steps;
  double days = 0;
  int64_t units = 0;  // both arms, all steps
};

StatusOr<Plan> PlanRollout(const PlanOptions& options);

}  // namespace vigil
