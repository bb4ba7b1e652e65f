// A model's config.yaml: the schema, and the three free functions that turn
// text into a validated ModelConfig (parse → normalise → validate, as
// Triton's model_config_utils does). Field names follow Triton's so users
// recognise them. Every error names the model, the field and what was expected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "core/status.h"
#include "core/tensor.h"
#include "monitoring/drift_monitor.h"

namespace vigil {

// kEnsemble runs no file of its own: its members are other models
// (`ensemble:` below), and its version folders are empty.
enum class BackendKind { kOnnx, kTorchScript, kXgboost, kEnsemble };

std::string_view BackendKindName(BackendKind kind);
// Protocol "platform" string for model metadata ("onnx_onnxv1", ...).
std::string_view BackendPlatform(BackendKind kind);
// File name of the model inside a version folder for this backend.
std::vector<std::string> BackendModelFileNames(BackendKind kind);
// A version folder's own backend options, over the model's `backend_options:`.
inline constexpr const char* kVersionOptionsFile = "backend_options.yaml";

struct DynamicBatchingConfig {
  int64_t max_queue_delay_us = 0;
  std::vector<int64_t> preferred_batch_sizes;  // sorted ascending after normalise
  int64_t max_queue_size = 1024;               // requests; 0 = unbounded is not allowed
  int64_t default_timeout_us = 0;              // 0 = no timeout
};

struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int64_t latest = 1;
  std::vector<int64_t> specific;
};

struct WarmupConfig {
  bool enabled = false;
  int64_t batch_size = 1;
  int64_t iterations = 1;
};

// `ensemble:` of a model with `backend: ensemble`. Each member is another
// model of the repository, run on its own scheduler (batched with its other
// traffic); the ensemble's one output is its members' `output` combined row
// by row.
enum class EnsembleCombine {
  kMean,  // the weighted mean of the members' outputs
  kVote,  // per row, each class's share of the weighted votes (a member votes for its argmax)
  kMax,   // the elementwise maximum
};

struct EnsembleMember {
  std::string model;
  int64_t version = 0;  // 0: the member's highest ready version
  std::string output;   // the member's output to combine; default: the ensemble's output name
  double weight = 1;
};

struct EnsembleConfig {
  std::vector<EnsembleMember> members;
  EnsembleCombine combine = EnsembleCombine::kMean;
  // Answer with at least this many members; those that fail or cannot answer
  // before the request's deadline are left out while this many remain.
  int64_t min_members = 1;
};

struct ModelConfig {
  std::string name;  // the model folder's name
  BackendKind backend = BackendKind::kOnnx;
  int64_t max_batch_size = 0;  // 0 = the model does not batch
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  DynamicBatchingConfig dynamic_batching;
  int64_t instances = 1;
  VersionPolicy version_policy;
  WarmupConfig warmup;
  MonitoringConfig monitoring;     // the `monitoring:` block; defaults without one
  EnsembleConfig ensemble;         // backend: ensemble only
  BackendOptions backend_options;  // `backend_options:`; a version's backend_options.yaml overrides them

  // Index of the input/output with this name, or -1.
  int InputIndex(std::string_view input_name) const;
  int OutputIndex(std::string_view output_name) const;
};

// Parses YAML text into a ModelConfig without defaults or range checks.
// Unknown keys and wrong types are errors.
StatusOr<ModelConfig> ParseModelConfig(std::string_view model_name, std::string_view yaml_text);
// Fills defaults that depend on other fields and sorts lists.
void NormalizeModelConfig(ModelConfig& config);
// Checks ranges and cross-field rules.
Status ValidateModelConfig(const ModelConfig& config);
// All three in order.
StatusOr<ModelConfig> LoadModelConfig(std::string_view model_name, std::string_view yaml_text);

// What CreateBackend needs to load `version` of the model from `model_file`,
// with the model's backend options (a version's own are set by the caller).
BackendSpec BackendSpecOf(const ModelConfig& config, int64_t version, const std::filesystem::path& model_file);

// The backend options `field` holds, in range (errors name the model and field).
Status ValidateBackendOptions(const BackendOptions& o, const std::string& field, const std::string& model);
// A version's backend_options.yaml (a map of the same keys as the model's
// `backend_options:`) over the model's: what that version runs with.
StatusOr<BackendOptions> LoadVersionBackendOptions(const ModelConfig& config, std::string_view yaml_text);

}  // namespace vigil
