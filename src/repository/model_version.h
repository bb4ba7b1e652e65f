// ModelVersion: one loaded, READY version as requests pin it (the
// repository publishes them, repository/model_repository.h).
#pragma once

#include <algorithm>
#include <memory>
#include <string>

#include "monitoring/drift_monitor.h"
#include "repository/ensemble.h"
#include "repository/model_config.h"
#include "scheduling/scheduler.h"

namespace vigil {

// One loaded, READY model version. Immutable once published. A model
// version has a scheduler; an ensemble's version has none (its members run
// on theirs, repository/ensemble_run.h) and counts itself instead.
class ModelVersion {
 public:
  ModelVersion(std::shared_ptr<const ModelConfig> config, int64_t version, std::unique_ptr<Scheduler> scheduler,
               std::string fingerprint, std::shared_ptr<DriftMonitor> monitor = nullptr)
      : ModelVersion(std::move(config), version, std::move(scheduler), nullptr, std::move(fingerprint),
                     std::move(monitor)) {}
  ModelVersion(std::shared_ptr<const ModelConfig> config, int64_t version, std::unique_ptr<EnsembleCounters> counters,
               std::string fingerprint, std::shared_ptr<DriftMonitor> monitor = nullptr)
      : ModelVersion(std::move(config), version, nullptr, std::move(counters), std::move(fingerprint),
                     std::move(monitor)) {}

  const ModelConfig& config() const { return *config_; }
  const std::shared_ptr<const ModelConfig>& shared_config() const { return config_; }
  int64_t version() const { return version_; }
  // Null for an ensemble.
  Scheduler* scheduler() const { return scheduler_.get(); }
  // Non-null exactly for an ensemble.
  EnsembleCounters* ensemble() const { return ensemble_.get(); }
  const std::string& fingerprint() const { return fingerprint_; }
  // Drift and numerical health of this version; null when monitoring is off.
  DriftMonitor* monitor() const { return monitor_.get(); }

  // Either kind: the statistics, the requests waiting (an ensemble: in
  // flight), and stopping (an ensemble has nothing to stop).
  SchedulerStats Stats() const { return scheduler_ ? scheduler_->Stats() : ensemble_->Stats(); }
  size_t QueueDepth() const {
    return scheduler_ ? scheduler_->QueueDepth() : static_cast<size_t>(std::max<int64_t>(ensemble_->InFlight(), 0));
  }
  void Stop(Scheduler::StopMode mode = Scheduler::StopMode::kDrain) const {
    if (scheduler_) scheduler_->Stop(mode);
  }

 private:
  ModelVersion(std::shared_ptr<const ModelConfig> config, int64_t version, std::unique_ptr<Scheduler> scheduler,
               std::unique_ptr<EnsembleCounters> counters, std::string fingerprint,
               std::shared_ptr<DriftMonitor> monitor)
      : config_(std::move(config)),
        version_(version),
        monitor_(std::move(monitor)),
        scheduler_(std::move(scheduler)),
        ensemble_(std::move(counters)),
        fingerprint_(std::move(fingerprint)) {}

  std::shared_ptr<const ModelConfig> config_;
  int64_t version_;
  std::shared_ptr<DriftMonitor> monitor_;  // outlives the scheduler that feeds it
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<EnsembleCounters> ensemble_;
  std::string fingerprint_;
};

}  // namespace vigil
