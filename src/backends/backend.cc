#include "backends/backend.h"

namespace vigil {

std::string BackendErrorContext(const BackendSpec& spec) {
  return "model '" + spec.model_name + "' version " + std::to_string(spec.version);
}

std::string_view TorchOptimizeName(BackendOptions::TorchOptimize o) {
  switch (o) {
    case BackendOptions::TorchOptimize::kNone:
      return "none";
    case BackendOptions::TorchOptimize::kFreeze:
      return "freeze";
    case BackendOptions::TorchOptimize::kOptimizeForInference:
      return "optimize_for_inference";
  }
  return "none";
}

bool BackendOptions::operator==(const BackendOptions& o) const {
  return intra_op_threads == o.intra_op_threads && optimize == o.optimize && dnn_backend == o.dnn_backend &&
         dnn_target == o.dnn_target && fusion == o.fusion && iteration_end == o.iteration_end && inplace == o.inplace;
}

std::string DescribeBackendOptions(const BackendOptions& o) {
  const BackendOptions d;
  std::string out;
  auto add = [&](const std::string& entry) { out += (out.empty() ? "" : ", ") + entry; };
  if (o.optimize != d.optimize) add("optimize: " + std::string(TorchOptimizeName(o.optimize)));
  if (o.intra_op_threads != d.intra_op_threads) add("intra_op_threads: " + std::to_string(o.intra_op_threads));
  if (o.dnn_backend != d.dnn_backend) add("dnn_backend: " + o.dnn_backend);
  if (o.dnn_target != d.dnn_target) add("dnn_target: " + o.dnn_target);
  if (o.fusion != d.fusion) add(std::string("fusion: ") + (o.fusion ? "true" : "false"));
  if (o.iteration_end != d.iteration_end) add("iteration_end: " + std::to_string(o.iteration_end));
  if (o.inplace != d.inplace) add(std::string("inplace: ") + (o.inplace ? "true" : "false"));
  return out;
}

int64_t BatchRows(const BackendSpec& spec, const std::vector<Tensor>& inputs) {
  if (spec.max_batch_size == 0 || inputs.empty() || inputs[0].shape.empty()) return 1;
  return inputs[0].shape[0];
}

}  // namespace vigil
