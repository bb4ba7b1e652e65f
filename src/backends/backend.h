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
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vigil {

struct BackendSpec {
  std::string model_name;
  int64_t version = 0;
  std::filesystem::path model_path;  // the model file inside the version folder
  int64_t max_batch_size = 0;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
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

// Prefix for errors: "model 'm' version 2".
std::string BackendErrorContext(const BackendSpec& spec);

// Shared helper for adapters: the row count of a batch (dimension 0 of the
// first input), or 1 for models that do not batch.
int64_t BatchRows(const BackendSpec& spec, const std::vector<Tensor>& inputs);

}  // namespace vigil
