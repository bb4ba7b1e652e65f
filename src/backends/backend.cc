#include "backends/backend.h"

#include "backends/adapters.h"

namespace vigil {

std::string BackendErrorContext(const BackendSpec& spec) {
  return "model '" + spec.model_name + "' version " + std::to_string(spec.version);
}

int64_t BatchRows(const BackendSpec& spec, const std::vector<Tensor>& inputs) {
  if (spec.max_batch_size == 0 || inputs.empty() || inputs[0].shape.empty()) return 1;
  return inputs[0].shape[0];
}

StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view kind, const BackendSpec& spec) {
#ifdef VIGIL_WITH_ONNX
  if (kind == "onnx") return CreateOnnxBackend(spec);
#endif
#ifdef VIGIL_WITH_TORCH
  if (kind == "torchscript") return CreateTorchScriptBackend(spec);
#endif
#ifdef VIGIL_WITH_XGBOOST
  if (kind == "xgboost") return CreateXgboostBackend(spec);
#endif
  return Unimplemented(BackendErrorContext(spec) + ": backend '" + std::string(kind) +
                       "' is not compiled into this binary");
}

std::vector<std::string> AvailableBackends() {
  std::vector<std::string> out;
#ifdef VIGIL_WITH_ONNX
  out.push_back("onnx");
#endif
#ifdef VIGIL_WITH_TORCH
  out.push_back("torchscript");
#endif
#ifdef VIGIL_WITH_XGBOOST
  out.push_back("xgboost");
#endif
  return out;
}

}  // namespace vigil
