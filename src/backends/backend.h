// The Backend interface: one loaded copy of a model on one runtime.
//
// Contract:
// - A Backend is created by CreateBackend(); creation loads the model file and
//   fails with a Status naming the model, version and cause. Third-party
//   exceptions never escape an adapter.
// - Execute() runs one batch. `inputs` follow the spec's input order; when the
//   model batches (max_batch_size > 0) dimension 0 of every input is the batch
//   of N rows and every output must have N rows. Outputs are produced in the
//   spec's output order with the spec's datatypes.
// - One Execute() per Backend at a time: the scheduler gives each instance
//   its own Backend and its own thread. Different Backends may run
//   concurrently.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vigil {

// How a runtime runs a model (`backend_options:` in config.yaml, or a
// version's own backend_options.yaml): each setting applies to some
// backends only; `vigil optimize` measures them. Defaults are what a plain
// config gets.
struct BackendOptions {
  // TorchScript (set on each batch worker thread) and XGBoost (`nthread`):
  // threads one batch may use. Parallelism comes from instances otherwise.
  int64_t intra_op_threads = 1;
  // TorchScript: graph passes at load.
  enum class TorchOptimize { kNone, kFreeze, kOptimizeForInference };
  TorchOptimize optimize = TorchOptimize::kNone;
  // ONNX (OpenCV DNN): the backend and target (OpenCV's names, lower case:
  // opencv/cpu; others where this build of OpenCV has them) and layer fusion.
  std::string dnn_backend = "opencv";
  std::string dnn_target = "cpu";
  bool fusion = true;
  // XGBoost: trees used (iteration_range's end; 0 = all, a lossy cut
  // otherwise), and inplace prediction from the request's buffer rather
  // than through a DMatrix.
  int64_t iteration_end = 0;
  bool inplace = true;

  // Written out: the torchscript adapter is compiled as C++17 under clang.
  bool operator==(const BackendOptions& o) const;
};

std::string_view TorchOptimizeName(BackendOptions::TorchOptimize o);  // "none", "freeze", "optimize_for_inference"

// The settings that differ from the defaults, as YAML flow map entries
// ("optimize: freeze, intra_op_threads: 2"); empty for the defaults.
std::string DescribeBackendOptions(const BackendOptions& o);

struct BackendSpec {
  std::string model_name;
  int64_t version = 0;
  std::filesystem::path model_path;  // the model file inside the version folder
  int64_t max_batch_size = 0;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  BackendOptions options;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) = 0;
};

// Creates a backend of `kind` ("onnx", "torchscript", "xgboost"). Fails with
// kUnimplemented when that backend was not compiled in.
StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view kind, const BackendSpec& spec);

// Names of the backends compiled into this binary.
std::vector<std::string> AvailableBackends();

// An XGBoost model file's boosting rounds; 0 when it cannot be read or
// without the XGBoost backend.
int64_t XgboostBoostedRounds(const std::filesystem::path& model_file);

// The OpenCV DNN backend/target pairs this machine can run ("opencv/cpu",
// ...); empty without the ONNX backend.
std::vector<std::pair<std::string, std::string>> AvailableDnnTargets();

// Prefix for errors: "model 'm' version 2".
std::string BackendErrorContext(const BackendSpec& spec);

// Shared helper for adapters: the row count of a batch (dimension 0 of the
// first input), or 1 for models that do not batch.
int64_t BatchRows(const BackendSpec& spec, const std::vector<Tensor>& inputs);

}  // namespace vigil
