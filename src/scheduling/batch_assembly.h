// Concatenating the rows of several requests along the batch dimension and
// splitting a batch's outputs back, exactly, to the requests they belong to.
// Pure functions; thread-compatible.
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "scheduling/inference_request.h"

namespace vigil {

// Inputs for one batch: input i of every request concatenated along dim 0.
// Requests must share per-row shapes (BatchQueue guarantees it). Fixed-size
// datatypes only.
std::vector<Tensor> ConcatenateInputs(const std::vector<std::unique_ptr<InferenceRequest>>& batch);

// Splits each output along dim 0 into slices of `rows[i]` rows, in order.
// Fails when an output's row count is not the sum of `rows`.
StatusOr<std::vector<std::vector<Tensor>>> SplitOutputs(std::vector<Tensor>&& outputs,
                                                        const std::vector<int64_t>& rows);

// Checks a backend's outputs against the declared specs: count, datatype and
// per-row dims (`batching` means dim 0 is the batch of `rows`).
Status CheckOutputs(const std::vector<Tensor>& outputs, const std::vector<TensorSpec>& specs, bool batching,
                    int64_t rows);

}  // namespace vigil
