// Helpers for scheduling tests: requests with made-up rows and times.
#pragma once

#include <memory>
#include <string>

#include "scheduling/inference_request.h"

namespace vigil::testing {

// A request of `rows` FP32 rows of width `width`, row r holding value
// first_value + r in every column.
inline std::unique_ptr<InferenceRequest> MakeRequest(const std::string& id, int64_t rows, SteadyTime enqueued,
                                                     int64_t width = 2, float first_value = 0) {
  auto r = std::make_unique<InferenceRequest>();
  r->id = id;
  r->rows = rows;
  r->enqueue_time = enqueued;
  Tensor t;
  t.name = "x";
  t.datatype = DataType::kFp32;
  t.shape = {rows, width};
  t.data.resize(static_cast<size_t>(rows * width) * sizeof(float));
  for (int64_t i = 0; i < rows * width; ++i) t.mutable_as<float>()[i] = first_value + static_cast<float>(i / width);
  r->inputs.push_back(std::move(t));
  return r;
}

}  // namespace vigil::testing
