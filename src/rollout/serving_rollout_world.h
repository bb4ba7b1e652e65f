// The rollout controller's view of a running server: the endpoints served
// now (Deployments), the frontend's counts per variant (each Router's
// stats), the step's predictions from the prediction log joined with their
// feedback, and actions through Deployments::Mutate — so every decision is
// validated, stored and audited like a person's.
#pragma once

#include "rollout/controller.h"
#include "routing/deployments.h"
#include "store/store.h"

namespace vigil {

class ServingRolloutWorld final : public RolloutWorld {
 public:
  // The most predictions one analysis reads (about a second of reading);
  // past it the analysis covers the step's oldest predictions and says so.
  static constexpr int64_t kMaxScanned = 2'000'000;

  // `store` is null when the server keeps no prediction log: every
  // analysis is then an Error that says so. `replica` (among replicas: this
  // one's name): replicas share their frontend counts in the store
  // (Deployments::ShareCounts), and the guardrails count every replica's
  // requests and errors.
  ServingRolloutWorld(Deployments& deployments, FeedbackStore* store, std::string replica = "")
      : deployments_(deployments), store_(store), replica_(std::move(replica)) {}

  std::vector<Endpoint> Endpoints() override;
  StepData Read(const DeploymentSpec& spec, const RolloutPolicy& policy, int64_t since_ms, int64_t now_ms,
                std::optional<double> min_cutoff_s) override;
  Status Apply(const std::string& endpoint, const RolloutAction& action, const std::string& actor,
               const std::string& detail) override;
  StatusOr<ShadowComparison> CompareShadow(const DeploymentSpec& spec, const std::string& candidate, int64_t since_ms,
                                           int64_t now_ms) override;

 private:
  Deployments& deployments_;
  FeedbackStore* const store_;
  const std::string replica_;
};

// Reads a step from `store` (exposed for tests): the predictions of
// production and `policy.candidate` logged in [since_ms, now_ms), each
// scored once it is older than the label cut-off — the 90th percentile of
// the feedback delays seen, or `min_cutoff_s` if that is longer — and
// summed per routing key (a prediction without one is its own unit).
StepData ReadStep(FeedbackStore& store, const DeploymentSpec& spec, const RolloutPolicy& policy, int64_t since_ms,
                  int64_t now_ms, std::optional<double> min_cutoff_s, int64_t limit);

}  // namespace vigil
