// Ensembles (`backend: ensemble`): what is checked when one loads, and how
// its members' outputs become its answer. Pure functions; the inference
// service runs the members (each on its own scheduler) and calls these.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "repository/model_config.h"

namespace vigil {

// Checks member `index` of `ensemble` against that member's own config: it
// takes the ensemble's inputs (the same names, datatypes and shapes, a
// variable dimension only where the ensemble has one), it batches at least
// the ensemble's max_batch_size when the ensemble batches, and its output
// `member.output` is FP32 of the ensemble's output shape. The error names
// the member and the field.
Status CheckEnsembleMember(const ModelConfig& ensemble, size_t index, const ModelConfig& member);

// One member's answer for a request's rows: its output tensor (FP32,
// rows × the output's per-row elements) and its weight.
struct MemberOutput {
  const Tensor* output = nullptr;
  double weight = 1;
};

// The ensemble's output from the members that answered (at least one), by
// `combine`; `spec` names it. Each member's output must have the shape of
// the first; an error names the member position that differs.
StatusOr<Tensor> CombineMemberOutputs(EnsembleCombine combine, const std::vector<MemberOutput>& members,
                                      const TensorSpec& spec);

}  // namespace vigil
