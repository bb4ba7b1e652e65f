// Checking a call against its model's config, before it is queued: pure
// functions of the config and the call.
#pragma once

#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "repository/model_config.h"
#include "scheduling/inference_request.h"

namespace vigil {

// Moves `given` into `req.inputs` in the config's input order, checking each
// against its spec (name, datatype, per-row shape, the batch within
// max_batch_size and the same for every input), and sets `req.rows`. The
// error names the input and what was expected.
Status BindInputs(const ModelConfig& c, std::vector<Tensor>&& given, InferenceRequest& req);

// "a, b, c": the names of `specs`, for messages.
std::string TensorNames(const std::vector<TensorSpec>& specs);

}  // namespace vigil
