#include "repository/bind_inputs.h"

namespace vigil {

std::string TensorNames(const std::vector<TensorSpec>& specs) {
  std::string s;
  for (const auto& t : specs) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

Status BindInputs(const ModelConfig& c, std::vector<Tensor>&& given, InferenceRequest& req) {
  const bool batching = c.max_batch_size > 0;
  const std::string model = "model '" + c.name + "'";
  req.inputs.resize(c.inputs.size());
  std::vector<bool> seen(c.inputs.size(), false);
  int64_t rows = -1;
  for (Tensor& t : given) {
    const int idx = c.InputIndex(t.name);
    if (idx < 0)
      return InvalidArgument(model + " has no input '" + t.name + "' (inputs: " + TensorNames(c.inputs) + ")");
    if (seen[idx]) return InvalidArgument("input '" + t.name + "' is given twice");
    seen[idx] = true;
    const TensorSpec& spec = c.inputs[idx];
    if (t.datatype != spec.datatype) {
      return InvalidArgument("input '" + t.name + "' of " + model + " must be " +
                             std::string(DataTypeName(spec.datatype)) + ", got " +
                             std::string(DataTypeName(t.datatype)));
    }
    Shape per_row = t.shape;
    if (batching) {
      if (t.shape.empty()) {
        return InvalidArgument("input '" + t.name + "' needs a batch dimension: shape [N, " +
                               ShapeToString(spec.dims).substr(1) + " with N <= " + std::to_string(c.max_batch_size));
      }
      const int64_t n = t.shape[0];
      if (n < 1 || n > c.max_batch_size) {
        return InvalidArgument("input '" + t.name + "' has a batch of " + std::to_string(n) + " rows; " + model +
                               " accepts 1 to " + std::to_string(c.max_batch_size) + " (max_batch_size)");
      }
      if (rows >= 0 && rows != n) {
        return InvalidArgument("inputs disagree on the batch size: " + std::to_string(rows) + " vs " +
                               std::to_string(n) + " rows in input '" + t.name + "'");
      }
      rows = n;
      per_row.erase(per_row.begin());
    }
    if (!ShapeMatches(spec.dims, per_row)) {
      return InvalidArgument("input '" + t.name + "' has shape " + ShapeToString(t.shape) + "; " + model + " expects " +
                             (batching ? "[N] + " : "") + ShapeToString(spec.dims));
    }
    req.inputs[idx] = std::move(t);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) return InvalidArgument("input '" + c.inputs[i].name + "' of " + model + " is missing");
  }
  req.rows = batching ? rows : 1;
  return Status::Ok();
}

}  // namespace vigil
