// One inference request as the scheduler sees it: decoded, validated against
// the model's config, with its inputs in config order.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/infer_call.h"
#include "core/status.h"
#include "core/tensor.h"

namespace vigil {

struct InferenceResult {
  Status status;
  std::vector<Tensor> outputs;  // only the requested outputs, in request order
  int64_t queue_us = 0;
  int64_t compute_us = 0;
  int64_t batch_rows = 0;  // rows in the batch this request ran in
};

struct InferenceRequest {
  std::string id;
  // Inputs in the config's input order; dimension 0 is the batch when the
  // model batches.
  std::vector<Tensor> inputs;
  // Indexes into the config's outputs, in the order the client asked for
  // them; empty means all outputs.
  std::vector<int> requested_outputs;
  int64_t rows = 1;
  // 1 is the highest priority; 0 means the default (lowest) level.
  uint32_t priority = 0;
  SteadyTime deadline = SteadyTime::max();
  // False for a replay of logged traffic: the model's observer (drift
  // monitoring) does not see its rows.
  bool monitored = true;
  SteadyTime enqueue_time{};
  // Called exactly once, from a scheduler thread or from Enqueue's caller
  // when Enqueue fails (the caller answers then, not the scheduler).
  std::function<void(InferenceResult&&)> done;
  // Cancelled by the frontend when the client gives up (e.g. a cancelled
  // gRPC call); a cancelled request is dropped from the queue, never executed.
  CancelToken cancel;

  bool is_cancelled() const { return cancel.cancelled(); }

  // Priority level used for ordering: 0 maps to the lowest level.
  uint32_t level() const { return priority == 0 ? std::numeric_limits<uint32_t>::max() : priority; }
};

}  // namespace vigil
