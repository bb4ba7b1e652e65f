// The rollout simulator: the controller's own code (RolloutController,
// Analyze, ApplyRolloutAction on a real spec) driven by synthetic arms, to
// measure what its statistics promise — the share of A/A experiments
// promoted (at most α), the power at an effect, the units and days to a
// decision — and what per-request variance would cost when predictions of
// one unit are correlated. `vigil rollout simulate` prints its figures.
//
// Each interval, new units arrive (Poisson, `units_per_day`), each is
// routed to the candidate with its current share, and brings 1 + Poisson(m
// − 1) predictions. A unit has its own effect: Bernoulli metrics draw the
// unit's rate on the logit scale, logit(p) + N(0, unit_sd²); normal metrics
// its mean, μ + N(0, unit_sd²), and each prediction adds N(0, sd²).
// Labels arrive at once (the label cut-off is the store's business, tested
// end to end).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "routing/rollout_policy.h"

namespace vigil {

struct SimulationOptions {
  bool bernoulli = true;
  double baseline = 0.10;  // production's rate, or mean
  double effect = 0;       // candidate − production, true
  double sd = 1;           // normal: of one prediction
  double unit_sd = 0;      // the per-unit effect's spread (logit scale for Bernoulli)
  double predictions_per_unit = 1;
  double units_per_day = 20000;
  std::vector<double> shares{5, 25, 50};  // the canary's steps
  RolloutPolicy policy;                   // metric name and direction are set from `bernoulli`
  // Each prediction its own unit, as if the routing key were ignored:
  // what the delta method prevents.
  bool per_request = false;
  int experiments = 200;
  uint64_t seed = 1;
  double max_days = 120;  // an experiment still running then counts as undecided
};

struct SimulationResult {
  int experiments = 0;
  int promoted = 0, rolled_back = 0, inconclusive = 0, undecided = 0;
  int sample_ratio_flags = 0;          // experiments held by an SRM (the sequential test, which decides)
  int chi2_flags = 0;                  // experiments where χ² at srm_p would have flagged at some look
  std::vector<double> decision_units;  // both arms, over every step, per decided experiment
  std::vector<double> decision_days;
  double median_units = 0, median_days = 0;
};

// `progress(done)` after each experiment; may be empty.
StatusOr<SimulationResult> Simulate(const SimulationOptions& options, const std::function<void(int)>& progress = {});

}  // namespace vigil
