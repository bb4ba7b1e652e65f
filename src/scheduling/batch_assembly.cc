#include "scheduling/batch_assembly.h"

#include <cstring>

namespace vigil {

std::vector<Tensor> ConcatenateInputs(const std::vector<std::unique_ptr<InferenceRequest>>& batch) {
  std::vector<Tensor> out;
  if (batch.empty()) return out;
  const auto& first = batch.front()->inputs;
  out.resize(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    Tensor& t = out[i];
    t.name = first[i].name;
    t.datatype = first[i].datatype;
    t.shape = first[i].shape;
    size_t bytes = 0;
    int64_t rows = 0;
    for (const auto& r : batch) {
      bytes += r->inputs[i].data.size();
      rows += r->inputs[i].shape.empty() ? 1 : r->inputs[i].shape[0];
    }
    if (!t.shape.empty()) t.shape[0] = rows;
    t.data.resize(bytes);
    size_t offset = 0;
    for (const auto& r : batch) {
      const auto& src = r->inputs[i].data;
      if (!src.empty()) std::memcpy(t.data.data() + offset, src.data(), src.size());
      offset += src.size();
    }
  }
  return out;
}

StatusOr<std::vector<std::vector<Tensor>>> SplitOutputs(std::vector<Tensor>&& outputs,
                                                        const std::vector<int64_t>& rows) {
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  std::vector<std::vector<Tensor>> out(rows.size());
  if (rows.size() == 1) {
    out[0] = std::move(outputs);
    return out;
  }
  for (auto& per_request : out) per_request.resize(outputs.size());
  for (size_t o = 0; o < outputs.size(); ++o) {
    const Tensor& t = outputs[o];
    if (t.shape.empty() || t.shape[0] != total) {
      return Internal("output '" + t.name + "' has shape " + ShapeToString(t.shape) + ", expected " +
                      std::to_string(total) + " rows");
    }
    const size_t row_bytes = t.data.size() / static_cast<size_t>(total);
    size_t offset = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      Tensor& slice = out[r][o];
      slice.name = t.name;
      slice.datatype = t.datatype;
      slice.shape = t.shape;
      slice.shape[0] = rows[r];
      const size_t n = row_bytes * static_cast<size_t>(rows[r]);
      slice.data.assign(t.data.begin() + offset, t.data.begin() + offset + n);
      offset += n;
    }
  }
  return out;
}

Status CheckOutputs(const std::vector<Tensor>& outputs, const std::vector<TensorSpec>& specs, bool batching,
                    int64_t rows) {
  if (outputs.size() != specs.size()) {
    return Internal("the model produced " + std::to_string(outputs.size()) + " outputs, config declares " +
                    std::to_string(specs.size()));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& t = outputs[i];
    const TensorSpec& s = specs[i];
    if (t.datatype != s.datatype) {
      return Internal("output '" + s.name + "' is " + std::string(DataTypeName(t.datatype)) + ", config declares " +
                      std::string(DataTypeName(s.datatype)));
    }
    Shape per_row = t.shape;
    if (batching) {
      if (per_row.empty() || per_row[0] != rows) {
        return Internal("output '" + s.name + "' has shape " + ShapeToString(t.shape) + ", expected " +
                        std::to_string(rows) + " rows");
      }
      per_row.erase(per_row.begin());
    }
    if (!ShapeMatches(s.dims, per_row)) {
      return Internal("output '" + s.name + "' has shape " + ShapeToString(t.shape) + ", config declares " +
                      (batching ? "[-1, ...] + " : "") + ShapeToString(s.dims));
    }
    if (t.data.size() != t.expected_byte_size()) {
      return Internal("output '" + s.name + "' holds " + std::to_string(t.data.size()) + " bytes for shape " +
                      ShapeToString(t.shape));
    }
  }
  return Status::Ok();
}

}  // namespace vigil
