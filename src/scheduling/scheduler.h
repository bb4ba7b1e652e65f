// Scheduler: one model version's dynamic batcher and instance pool.
//
// Each instance is a Backend; there are as many worker threads as instances.
// A worker claims an idle instance, takes the next batch from the shared
// BatchQueue, runs it, splits the outputs back and answers each request
// through its `done` callback. A failed batch fails only its own requests.
//
// Caller runs: with `inline_execution`, a request that finds an idle
// instance runs its batch on the enqueuing thread (no hand-off to a worker),
// as long as the model is cheap (average batch compute under
// `inline_compute_limit_us`), so a slow model never holds a frontend thread.
//
// Thread-safe; Stop() may be called from any thread except a worker's (i.e.
// never from a `done` callback).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "core/thread_annotations.h"
#include "monitoring/serving_metrics.h"
#include "scheduling/batch_queue.h"

namespace vigil {

// Cumulative counters in the shape of Triton's model statistics.
struct SchedulerStats {
  uint64_t success_count = 0, success_ns = 0;
  uint64_t fail_count = 0, fail_ns = 0;
  uint64_t queue_count = 0, queue_ns = 0;
  uint64_t compute_count = 0, compute_ns = 0;
  uint64_t inference_count = 0;    // rows
  uint64_t execution_count = 0;    // batches
  uint64_t last_inference_ms = 0;  // wall clock, ms since epoch
  // Per executed batch size (rows): executions and their compute time.
  struct BatchSizeStats {
    uint64_t count = 0, compute_ns = 0;
  };
  std::map<int64_t, BatchSizeStats> batch_stats;
};

class Scheduler {
 public:
  struct Options {
    std::string model_name;
    int64_t version = 0;
    int64_t max_batch_size = 0;
    BatchQueue::Options queue;
    std::vector<TensorSpec> outputs;
    const Clock* clock = SystemClock::Get();
    VersionMetrics metrics;  // may be left empty in tests
    // Run on the enqueuing thread when an instance is idle (needs a zero
    // batching delay to be useful: the batch must be ready at once).
    bool inline_execution = false;
    int64_t inline_compute_limit_us = 200;
    // Called on the executing thread after each successful batch with the
    // first input and first output of the whole batch (monitoring).
    std::function<void(const Tensor& input, const Tensor& output, int64_t rows)> observer;
  };

  // Starts one worker per backend instance; fails when `instances` is empty.
  static StatusOr<std::unique_ptr<Scheduler>> Create(Options options, std::vector<std::unique_ptr<Backend>> instances);
  ~Scheduler();

  // kRunIfIdle may run the batch on the calling thread (see inline
  // execution); kQueueOnly neither runs it nor wakes a worker (a worker that
  // is already awake may still take it), leaving it for a later RunIfIdle()
  // call, so a frontend can enqueue several requests and run them as one batch.
  enum class EnqueueMode { kRunIfIdle, kQueueOnly };

  // Takes the request when it returns OK; on error the caller still owns the
  // request and answers it (queue full, stopped). With inline execution the
  // request may be answered (its `done` called) before Enqueue returns.
  Status Enqueue(std::unique_ptr<InferenceRequest>& request, EnqueueMode mode = EnqueueMode::kRunIfIdle);

  // Runs waiting batches on this thread if an instance is idle and inline
  // execution applies; otherwise hands the queue to a worker.
  void RunIfIdle();
  // Runs everything waiting on this thread if an instance is idle, whatever
  // the batches cost (for best-effort work on a low-priority thread, such
  // as shadow copies); when none is idle, whoever releases one takes it.
  void DrainHere();

  // Wakes a worker to look at the queue now (e.g. to drop a request whose
  // client cancelled, freeing its slot). Takes the lock first: a worker
  // between looking at the queue and waiting holds it, so the wake-up
  // cannot fall in that gap and be lost (the worker would sleep out its
  // batching window with a cancelled request queued).
  void Wake() EXCLUDES(mu_) {
    { MutexLock lock(mu_); }
    cv_.NotifyAll();
  }

  // Runs one batch synchronously on instance 0 (warm-up and load checks).
  // Only before traffic: must not race with the workers.
  StatusOr<std::vector<Tensor>> RunDirect(std::vector<Tensor> inputs, int64_t rows);

  // Stops accepting and joins the workers. kDrain lets them finish every
  // queued request first; kCancel answers queued requests with UNAVAILABLE
  // (batches already running still finish).
  enum class StopMode { kDrain, kCancel };
  void Stop(StopMode mode = StopMode::kDrain);

  size_t QueueDepth() const;
  // How long a request of priority `level` and `rows` rows enqueued now
  // would take to be answered: the batches ahead of it and its own — the
  // waiting requests it would not overtake, plus itself, over the requests a
  // recent batch held, and at least the batches their rows fill — each at
  // the recent compute time per batch (scaled up by rows over a recent
  // batch's rows), shared among the instances; plus, when every instance is
  // busy, what the first to finish has left of its running batch. Zero
  // before any batch ran, and for an idle version that has run no batch for
  // a second (so an estimate too high for every deadline is measured again).
  Micros PredictedWait(uint32_t level = std::numeric_limits<uint32_t>::max(), int64_t rows = 1) const EXCLUDES(mu_);
  // Requests queued or executing.
  int64_t InFlight() const { return in_flight_.load(); }
  SchedulerStats Stats() const;

 private:
  Scheduler(Options options, std::vector<std::unique_ptr<Backend>> instances);
  void WorkerLoop();
  // Index of an instance no thread is running, or -1.
  int IdleInstance() const REQUIRES(mu_);
  // Answers the expired requests and runs the batch on `instance`.
  void Execute(size_t instance, BatchQueue::Decision& d);
  void RunBatch(Backend& backend, std::vector<std::unique_ptr<InferenceRequest>>& batch);
  static void Average(std::atomic<int64_t>& ewma, int64_t sample);
  void RecordComputeTime(int64_t us);
  Micros PredictedWaitLocked(uint32_t level, int64_t rows) const REQUIRES(mu_);
  void Finish(InferenceRequest& request, InferenceResult&& result);

  Options options_;
  std::vector<std::unique_ptr<Backend>> instances_;
  std::vector<std::thread> workers_;

  mutable Mutex mu_;
  CondVar cv_;
  BatchQueue queue_ GUARDED_BY(mu_);
  std::vector<bool> busy_ GUARDED_BY(mu_);                 // per instance
  std::vector<SteadyTime> batch_started_ GUARDED_BY(mu_);  // per instance: its running (or last) batch's start
  bool stopping_ GUARDED_BY(mu_) = false;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> ewma_compute_us_{0};
  std::atomic<int64_t> ewma_compute_dev_us_{0};       // mean absolute deviation of a batch's compute time
  std::atomic<int64_t> ewma_batch_requests_x16_{16};  // requests per executed batch, ×16
  std::atomic<int64_t> ewma_batch_rows_x16_{16};      // rows per executed batch, ×16
  mutable Mutex batch_stats_mu_;
  std::map<int64_t, SchedulerStats::BatchSizeStats> batch_stats_ GUARDED_BY(batch_stats_mu_);

  struct AtomicStats {
    std::atomic<uint64_t> success_count{0}, success_ns{0}, fail_count{0}, fail_ns{0}, queue_count{0}, queue_ns{0},
        compute_count{0}, compute_ns{0}, inference_count{0}, execution_count{0}, last_inference_ms{0};
  } stats_;
};

}  // namespace vigil
