#include "backends/backend.h"

namespace vigil {

std::string BackendErrorContext(const BackendSpec& spec) {
  return "model '" + spec.model_name + "' version " + std::to_string(spec.version);
}

int64_t BatchRows(const BackendSpec& spec, const std::vector<Tensor>& inputs) {
  if (spec.max_batch_size == 0 || inputs.empty() || inputs[0].shape.empty()) return 1;
  return inputs[0].shape[0];
}

}  // namespace vigil
