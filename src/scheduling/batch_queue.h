// BatchQueue: the dynamic batcher's decisions, with time passed in.
//
// Holds waiting requests by priority level (FIFO within a level) and decides,
// for a given `now`, which requests form the next batch, which have expired,
// and when to look again. It never sleeps and never reads a clock, so every
// rule is tested with made-up times. Not thread-safe: the Scheduler guards it.
//
// Rules, in order:
// - a request whose deadline has passed, or that its client cancelled, is
//   removed (reported in `expired`) and never executed;
// - models without batching (max_batch_size 0) run one request at a time;
// - a batch is the longest prefix, in priority then arrival order, whose
//   rows fit max_batch_size and whose per-row shapes match the first's;
// - it is dispatched at once when it is full (the next request does not fit
//   or the rows reach max_batch_size) or reaches the largest preferred batch
//   size (trimmed to the longest prefix within that size);
// - otherwise it waits until the oldest request has waited
//   max_queue_delay_us, then dispatches what it has.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "scheduling/inference_request.h"

namespace vigil {

class BatchQueue {
 public:
  struct Options {
    int64_t max_batch_size = 0;
    Micros max_queue_delay{0};
    std::vector<int64_t> preferred_batch_sizes;  // ascending
    size_t max_queue_size = 1024;
  };

  struct Decision {
    std::vector<std::unique_ptr<InferenceRequest>> batch;
    std::vector<std::unique_ptr<InferenceRequest>> expired;
    // When to poll again if nothing was dispatched; nullopt = wait for work.
    std::optional<SteadyTime> wake_at;
  };

  explicit BatchQueue(Options options) : options_(std::move(options)) {}

  // Takes the request when it returns OK (then `request` is null); on error
  // the caller still owns it and answers it.
  Status Enqueue(std::unique_ptr<InferenceRequest>& request);
  // `flush` dispatches without waiting for the delay (used while draining).
  Decision Poll(SteadyTime now, bool flush = false);
  // Removes every waiting request (for shutdown without draining).
  std::vector<std::unique_ptr<InferenceRequest>> TakeAll();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Waiting requests a request of `level` would not overtake (its level and
  // higher), and their rows.
  size_t AheadOf(uint32_t level) const {
    size_t n = 0;
    for (const auto& [l, q] : levels_) {
      if (l > level) break;
      n += q.size();
    }
    return n;
  }
  int64_t RowsAheadOf(uint32_t level) const {
    int64_t n = 0;
    for (const auto& [l, rows] : rows_) {
      if (l > level) break;
      n += rows;
    }
    return n;
  }

 private:
  // Takes `r` off the count of its level's rows.
  void Uncount(const InferenceRequest& r);

  Options options_;
  std::map<uint32_t, std::deque<std::unique_ptr<InferenceRequest>>> levels_;
  std::map<uint32_t, int64_t> rows_;  // per level with requests waiting
  size_t size_ = 0;
};

// True when two requests can share a batch: same per-row input shapes.
bool SameRowShapes(const InferenceRequest& a, const InferenceRequest& b);

}  // namespace vigil
