// Helpers for monitoring tests.
#pragma once

#include <algorithm>
#include <vector>

#include "core/tensor.h"

namespace vigil::testing {

// An FP32 tensor of `values`, `width` per row: shape [values / width, width].
inline Tensor Fp32(const std::vector<float>& values, int64_t width) {
  Tensor t;
  t.datatype = DataType::kFp32;
  t.shape = {static_cast<int64_t>(values.size()) / width, width};
  t.data.resize(values.size() * sizeof(float));
  std::copy(values.begin(), values.end(), t.mutable_as<float>());
  return t;
}

}  // namespace vigil::testing
