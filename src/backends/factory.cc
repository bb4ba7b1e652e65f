// CreateBackend and AvailableBackends: the one place that knows which
// runtime adapters were compiled in.
#include "backends/adapters.h"
#include "backends/backend.h"
#include "backends/train.h"

namespace vigil {

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

#ifndef VIGIL_WITH_XGBOOST
int64_t XgboostBoostedRounds(const std::filesystem::path&) { return 0; }
Status TrainXgboostStudent(const TrainingSet&, int64_t, int64_t, const std::filesystem::path&) {
  return Unimplemented("XGBoost students need the xgboost backend, which is not compiled into this binary");
}
#endif
#ifndef VIGIL_WITH_TORCH
Status TrainMlpStudent(const TrainingSet&, int64_t, const std::filesystem::path&) {
  return Unimplemented("MLP students need libtorch, which is not compiled into this binary");
}
#endif

#ifndef VIGIL_WITH_ONNX
std::vector<std::pair<std::string, std::string>> AvailableDnnTargets() { return {}; }
#endif

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
