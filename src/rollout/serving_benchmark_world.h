// The benchmark's view of a running server: the endpoints served now
// (Deployments) and the models run through the InferenceService's model
// half — the version's own scheduler at the lowest priority, marked as a
// replay so drift monitoring does not count the rows again.
#pragma once

#include "rollout/benchmark.h"
#include "routing/deployments.h"
#include "routing/inference_service.h"

namespace vigil {

class ServingBenchmarkWorld final : public BenchmarkWorld {
 public:
  // The longest one replay call may wait for its answer.
  static constexpr std::chrono::seconds kCallTimeout{30};

  ServingBenchmarkWorld(const Deployments& deployments, InferenceService& service)
      : deployments_(deployments), service_(service) {}

  std::vector<std::string> Endpoints() override;
  std::shared_ptr<const DeploymentSpec> Spec(const std::string& endpoint) override;
  std::vector<int64_t> ReadyVersions(const std::string& model) override;
  StatusOr<Replay> Replayable(const std::string& model, int64_t version) override;
  bool Busy(const std::string& model, int64_t version) override;
  StatusOr<std::vector<std::vector<double>>> Run(const std::string& model, int64_t version,
                                                 const std::vector<const std::vector<double>*>& rows) override;

 private:
  const Deployments& deployments_;
  InferenceService& service_;
};

}  // namespace vigil
