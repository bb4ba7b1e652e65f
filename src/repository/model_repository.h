// ModelRepository: the models on disk and their load/unload lifecycle.
//
// Layout: ROOT/<model>/config.yaml and ROOT/<model>/<version>/model.<ext>.
// Each version is a small state machine:
//
//   LOADING ──ok──▶ READY ──removed/replaced──▶ UNLOADING ──idle──▶ (gone)
//      └──error──▶ UNAVAILABLE (with its reason)
//
// Requests pin a READY version through a shared_ptr taken from an immutable
// serving table that is swapped whole; a new version is loaded before the
// table stops naming the old one, and a replaced version is stopped only
// once nobody pins it, so in-flight requests finish on the version they
// started on. A broken model never affects the others.
//
// Thread-safety: Acquire/Find/Index may be called from any thread at any
// time. Poll, LoadModel and UnloadModel are serialised internally.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"
#include "monitoring/drift_monitor.h"
#include "monitoring/serving_metrics.h"
#include "repository/model_config.h"
#include "repository/model_version.h"
#include "scheduling/scheduler.h"

namespace vigil {

enum class VersionState { kLoading, kReady, kUnloading, kUnavailable };
std::string_view VersionStateName(VersionState state);

// One row of the repository index.
struct VersionStatus {
  std::string model;
  std::string version;  // empty when the model itself failed (bad config)
  VersionState state = VersionState::kUnavailable;
  std::string reason;
};

// What model metadata needs: the config and the READY versions.
struct ModelInfo {
  std::shared_ptr<const ModelConfig> config;
  std::vector<int64_t> ready_versions;  // ascending
};

class ModelRepository {
 public:
  // Makes one instance of a model version; `kind` is the config's backend.
  using BackendFactory = std::function<StatusOr<std::unique_ptr<Backend>>(std::string_view kind, const BackendSpec&)>;
  struct Options {
    std::filesystem::path root;
    ServingMetrics* metrics = nullptr;  // optional
    const Clock* clock = SystemClock::Get();
    BackendFactory backends;  // null: CreateBackend, the runtimes compiled in (tests pass fakes)
  };

  static StatusOr<std::unique_ptr<ModelRepository>> Create(Options options);
  ~ModelRepository();

  // Brings the loaded set in line with the disk: loads new or changed
  // versions first, then retires removed ones. Models unloaded through
  // UnloadModel stay unloaded until LoadModel.
  void Poll();
  // Loads (or reloads) one model from disk, even if unchanged. With
  // `config_text` (YAML or JSON, the config.yaml schema) that config is used
  // instead of the model's config.yaml until the next LoadModel without one
  // (Triton's "config" load parameter); an invalid one is rejected and
  // changes nothing.
  Status LoadModel(const std::string& name, std::optional<std::string> config_text = std::nullopt);
  // Retires every version of the model; it stays unloaded until LoadModel.
  Status UnloadModel(const std::string& name);

  // Versions a deployment names are loaded and kept whatever version_policy
  // selects. KeepLoaded loads `version` of `model` now when it is on disk
  // (for a spec being validated); KeepOnly sets what is kept to exactly
  // `named` (model, version -> the endpoints naming it), so versions no
  // longer named go back to the policy. The index says why a kept version
  // is loaded.
  using NamedVersions = std::map<std::pair<std::string, int64_t>, std::string>;
  void KeepLoaded(const std::string& model, int64_t version);
  void KeepOnly(const NamedVersions& named);

  // Pins a READY version; version 0 means the highest READY version.
  StatusOr<std::shared_ptr<ModelVersion>> Acquire(std::string_view model, int64_t version) const;
  // The model's config and READY versions; with `version` != 0 only that
  // version, which must be READY.
  StatusOr<ModelInfo> Find(std::string_view model, int64_t version = 0) const;
  // Pins READY versions for statistics: every model when `model` is empty,
  // else that model's versions (all when `version` is 0, else that one).
  StatusOr<std::vector<std::shared_ptr<ModelVersion>>> AcquireAll(std::string_view model, int64_t version) const;
  std::vector<VersionStatus> Index() const;

  // Takes every version out of service and stops its scheduler: kDrain runs
  // what is queued first, kCancel answers it with UNAVAILABLE. For shutdown.
  void StopAll(Scheduler::StopMode mode = Scheduler::StopMode::kDrain);

 private:
  struct ServingTable {
    struct Entry {
      std::shared_ptr<const ModelConfig> config;
      std::map<int64_t, std::shared_ptr<ModelVersion>> versions;
    };
    std::map<std::string, Entry, std::less<>> models;
  };
  struct ModelRecord {
    std::string model_error;  // config-level failure
    std::map<int64_t, VersionStatus> versions;
  };

  explicit ModelRepository(Options options);
  // Loads the model folder `name`; `force` reloads unchanged versions too.
  // `read`: its config text (or why there is none), when the caller read it already.
  void SyncModel(const std::string& name, bool force, std::optional<StatusOr<std::string>> read = std::nullopt)
      REQUIRES(control_mu_);
  void RemoveModel(const std::string& name, const std::string& reason);
  StatusOr<std::shared_ptr<ModelVersion>> LoadVersion(std::shared_ptr<const ModelConfig> config, int64_t version,
                                                      const std::filesystem::path& model_file,
                                                      const std::string& fingerprint);
  StatusOr<std::shared_ptr<ModelVersion>> LoadEnsembleVersion(std::shared_ptr<const ModelConfig> config,
                                                              int64_t version, const std::filesystem::path& version_dir,
                                                              const std::string& fingerprint);
  // The model's config text: its override, else its config.yaml.
  StatusOr<std::string> ConfigText(const std::string& name) const REQUIRES(control_mu_);
  void Publish(const std::string& name, std::shared_ptr<const ModelConfig> config,
               std::map<int64_t, std::shared_ptr<ModelVersion>> versions);
  void Retire(std::shared_ptr<ModelVersion> version);
  void SetState(const std::string& model, int64_t version, VersionState state, const std::string& reason)
      REQUIRES(records_mu_);
  // vigil_model_state: 1 for `state`, 0 for the others (all 0 once gone).
  void PublishStateGauge(const std::string& model, int64_t version, std::optional<VersionState> state);
  void ReaperLoop();
  std::shared_ptr<const ServingTable> table() const { return table_.load(); }

  Options options_;
  Mutex control_mu_;  // serialises Poll/Load/Unload
  std::set<std::string> unloaded_by_request_ GUARDED_BY(control_mu_);
  std::map<std::string, std::string> config_overrides_ GUARDED_BY(control_mu_);
  // Per model, the versions deployments name: version -> the endpoints (empty while a spec is validated).
  std::map<std::string, std::map<int64_t, std::string>> kept_ GUARDED_BY(control_mu_);
  // Per model and version, the fingerprint of files that failed to load.
  std::map<std::string, std::map<int64_t, std::string>> failed_fingerprints_ GUARDED_BY(control_mu_);
  std::atomic<std::shared_ptr<const ServingTable>> table_;

  mutable Mutex records_mu_;
  std::map<std::string, ModelRecord> records_ GUARDED_BY(records_mu_);

  Mutex retire_mu_;
  CondVar retire_cv_;
  std::vector<std::shared_ptr<ModelVersion>> retiring_ GUARDED_BY(retire_mu_);
  bool stop_reaper_ GUARDED_BY(retire_mu_) = false;
  std::thread reaper_;
};

}  // namespace vigil
