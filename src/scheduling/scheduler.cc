#include "scheduling/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/thread_name.h"
#include "scheduling/batch_assembly.h"

namespace vigil {
namespace {

// Batches a caller may run back to back before handing the queue to a worker.
constexpr int kInlineRounds = 4;
// How long an idle version may predict itself out of every deadline before
// one batch is let through to measure it again.
constexpr auto kRetrialAfter = std::chrono::seconds(1);

int64_t MicrosBetween(SteadyTime a, SteadyTime b) { return std::chrono::duration_cast<Micros>(b - a).count(); }

}  // namespace

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(Options options,
                                                       std::vector<std::unique_ptr<Backend>> instances) {
  if (instances.empty())
    return InvalidArgument("model '" + options.model_name + "': a scheduler needs at least one instance");
  std::unique_ptr<Scheduler> s(new Scheduler(std::move(options), std::move(instances)));
  for (size_t i = 0; i < s->instances_.size(); ++i) {
    s->workers_.emplace_back([raw = s.get()] {
      SetThreadName("vigil-batch");
      raw->WorkerLoop();
    });
  }
  return s;
}

Scheduler::Scheduler(Options options, std::vector<std::unique_ptr<Backend>> instances)
    : options_(std::move(options)),
      instances_(std::move(instances)),
      queue_(options_.queue),
      busy_(instances_.size(), false),
      batch_started_(instances_.size()) {}

Scheduler::~Scheduler() { Stop(); }

Status Scheduler::Enqueue(std::unique_ptr<InferenceRequest>& request, EnqueueMode mode) {
  request->enqueue_time = options_.clock->Now();
  {
    MutexLock lock(mu_);
    if (stopping_)
      return Unavailable("model '" + options_.model_name + "' version " + std::to_string(options_.version) +
                         " is unloading");
    // Never admitted where it cannot be answered in time: shed now, with a
    // reason, rather than time out in the queue.
    if (request->deadline != SteadyTime::max()) {
      const Micros wait = PredictedWaitLocked(request->level(), request->rows);
      if (request->enqueue_time + wait > request->deadline) {
        return ResourceExhausted(fmt::format(
            "model '{}' version {} would answer in about {:.1f} ms ({} requests waiting), after the request's "
            "deadline in {:.1f} ms: shed; retry later",
            options_.model_name, options_.version, static_cast<double>(wait.count()) / 1000, queue_.size(),
            static_cast<double>(std::chrono::duration_cast<Micros>(request->deadline - request->enqueue_time).count()) /
                1000));
      }
    }
    VIGIL_RETURN_IF_ERROR(queue_.Enqueue(request));
    in_flight_.fetch_add(1);
    if (options_.metrics.queue_depth) options_.metrics.queue_depth->Set(static_cast<double>(queue_.size()));
  }
  if (mode == EnqueueMode::kRunIfIdle) RunIfIdle();
  return Status::Ok();
}

void Scheduler::RunIfIdle() {
  MutexLock lock(mu_);
  if (queue_.empty()) return;
  const int idle = IdleInstance();
  if (idle < 0) return;  // whoever releases an instance looks at the queue
  if (stopping_ || !options_.inline_execution ||
      ewma_compute_us_.load(std::memory_order_relaxed) > options_.inline_compute_limit_us) {
    lock.Unlock();
    cv_.NotifyOne();
    return;
  }
  // Caller runs: the idle instance takes the next batch (everything that
  // waits, up to max_batch_size) on this thread, saving two thread
  // hand-offs. A few more batches may follow while requests keep arriving,
  // but no more, so the caller's own connections are not starved.
  busy_[idle] = true;
  for (int round = 0; round < kInlineRounds && !queue_.empty(); ++round) {
    BatchQueue::Decision d = queue_.Poll(options_.clock->Now(), true);
    batch_started_[static_cast<size_t>(idle)] = options_.clock->Now();
    lock.Unlock();
    Execute(static_cast<size_t>(idle), d);
    lock.Lock();
  }
  busy_[idle] = false;
  const bool more = !queue_.empty();
  lock.Unlock();
  if (more) cv_.NotifyOne();
}

void Scheduler::DrainHere() {
  MutexLock lock(mu_);
  if (queue_.empty() || stopping_) return;
  const int idle = IdleInstance();
  if (idle < 0) return;
  busy_[idle] = true;
  while (!queue_.empty()) {
    BatchQueue::Decision d = queue_.Poll(options_.clock->Now(), true);
    if (d.batch.empty() && d.expired.empty()) break;
    batch_started_[static_cast<size_t>(idle)] = options_.clock->Now();
    lock.Unlock();
    Execute(static_cast<size_t>(idle), d);
    lock.Lock();
  }
  busy_[idle] = false;
}

Micros Scheduler::PredictedWait(uint32_t level, int64_t rows) const {
  MutexLock lock(mu_);
  return PredictedWaitLocked(level, rows);
}

Micros Scheduler::PredictedWaitLocked(uint32_t level, int64_t rows) const {
  // A deadline is a tail: each batch at its recent compute time plus twice
  // its recent spread, so a request admitted on the mean is not late for
  // every batch a little slower than it.
  // An idle version (nothing ahead, an instance free) predicts its own batch
  // at the mean alone. An estimate is corrected only by batches, so one too
  // high for every deadline (a slow load, a burst long past) would shed all
  // the version's traffic for good: an idle version that has started no
  // batch for kRetrialAfter is tried again whatever it predicts, as a
  // circuit breaker half-opens.
  const int64_t mean_us = ewma_compute_us_.load(std::memory_order_relaxed);
  if (mean_us <= 0) return Micros(0);
  const auto ahead = static_cast<int64_t>(queue_.AheadOf(level));
  const bool idle = ahead == 0 && IdleInstance() >= 0;
  if (idle) {
    const SteadyTime last = *std::max_element(batch_started_.begin(), batch_started_.end());
    if (options_.clock->Now() - last >= kRetrialAfter) return Micros(0);
  }
  const int64_t per_batch_us = mean_us + (idle ? 0 : 2 * ewma_compute_dev_us_.load(std::memory_order_relaxed));
  const int64_t per_batch_x16 = std::max<int64_t>(16, ewma_batch_requests_x16_.load(std::memory_order_relaxed));
  int64_t batches = ((ahead + 1) * 16 + per_batch_x16 - 1) / per_batch_x16;  // its own included
  // Rows: the requests ahead and its own fill at least this many batches,
  // and a batch of more rows than recent ones costs proportionally more (a
  // warm-up of 4 rows says little of a 64-row batch). Never less: fixed
  // costs dominate small batches.
  const int64_t max_rows = std::max<int64_t>(options_.max_batch_size, 1);
  const int64_t total_rows = queue_.RowsAheadOf(level) + std::clamp<int64_t>(rows, 1, max_rows);
  batches = std::max(batches, (total_rows + max_rows - 1) / max_rows);
  const double rows_per_batch = static_cast<double>(total_rows) / static_cast<double>(batches);
  const double recent_rows =
      std::max<double>(1, static_cast<double>(ewma_batch_rows_x16_.load(std::memory_order_relaxed)) / 16);
  const auto per_batch_scaled =
      static_cast<int64_t>(static_cast<double>(per_batch_us) * std::max(1.0, rows_per_batch / recent_rows));
  const auto instances = static_cast<int64_t>(instances_.size());
  // When every instance is busy: until the first is free, by what its
  // running batch has left at the recent compute time (the mean remainder,
  // half a batch, would be short for half the requests: a deadline is a tail).
  int64_t until_free_us = 0;
  if (IdleInstance() < 0) {
    const SteadyTime now = options_.clock->Now();
    until_free_us = per_batch_us;
    for (const SteadyTime started : batch_started_) {
      const int64_t elapsed = std::chrono::duration_cast<Micros>(now - started).count();
      until_free_us = std::min(until_free_us, std::max<int64_t>(per_batch_us - elapsed, 0));
    }
  }
  return Micros((batches * per_batch_scaled + instances - 1) / instances + until_free_us);
}

// Exponentially weighted, 1/8 per batch (the first sample when it is 0);
// races between workers only blur it.
void Scheduler::Average(std::atomic<int64_t>& ewma, int64_t sample) {
  const int64_t old = ewma.load(std::memory_order_relaxed);
  ewma.store(old == 0 ? sample : old + (sample - old) / 8, std::memory_order_relaxed);
}

void Scheduler::RecordComputeTime(int64_t us) {
  // The spread first, against the mean before this batch (as TCP's RTO does).
  const int64_t mean = ewma_compute_us_.load(std::memory_order_relaxed);
  if (mean > 0) Average(ewma_compute_dev_us_, std::abs(us - mean));
  Average(ewma_compute_us_, us);
}

StatusOr<std::vector<Tensor>> Scheduler::RunDirect(std::vector<Tensor> inputs, int64_t rows) {
  std::vector<Tensor> outputs;
  const SteadyTime start = options_.clock->Now();
  VIGIL_RETURN_IF_ERROR(instances_[0]->Execute(inputs, outputs));
  // Warm-up and load checks set the mean, not the spread, and the last one
  // stands alone: a runtime's first calls are atypically slow (TorchScript's
  // profiling runs, allocations), which is what warm-up is for.
  ewma_compute_us_.store(MicrosBetween(start, options_.clock->Now()), std::memory_order_relaxed);
  ewma_batch_rows_x16_.store(std::max<int64_t>(rows, 1) * 16, std::memory_order_relaxed);
  VIGIL_RETURN_IF_ERROR(CheckOutputs(outputs, options_.outputs, options_.max_batch_size > 0, rows));
  return outputs;
}

void Scheduler::Stop(StopMode mode) {
  std::vector<std::unique_ptr<InferenceRequest>> cancelled;
  {
    MutexLock lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    if (mode == StopMode::kCancel) cancelled = queue_.TakeAll();
  }
  cv_.NotifyAll();
  for (auto& r : cancelled) {
    InferenceResult result;
    result.status = Unavailable("model '" + options_.model_name + "' version " + std::to_string(options_.version) +
                                " stopped before request '" + r->id + "' ran (shutdown timeout)");
    if (options_.metrics.owner) options_.metrics.Fail("cancelled");
    Finish(*r, std::move(result));
  }
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  workers_.clear();
}

size_t Scheduler::QueueDepth() const {
  MutexLock lock(mu_);
  return queue_.size();
}

SchedulerStats Scheduler::Stats() const {
  SchedulerStats s;
  s.success_count = stats_.success_count.load();
  s.success_ns = stats_.success_ns.load();
  s.fail_count = stats_.fail_count.load();
  s.fail_ns = stats_.fail_ns.load();
  s.queue_count = stats_.queue_count.load();
  s.queue_ns = stats_.queue_ns.load();
  s.compute_count = stats_.compute_count.load();
  s.compute_ns = stats_.compute_ns.load();
  s.inference_count = stats_.inference_count.load();
  s.execution_count = stats_.execution_count.load();
  s.last_inference_ms = stats_.last_inference_ms.load();
  MutexLock lock(batch_stats_mu_);
  s.batch_stats = batch_stats_;
  return s;
}

int Scheduler::IdleInstance() const {
  for (size_t i = 0; i < busy_.size(); ++i) {
    if (!busy_[i]) return static_cast<int>(i);
  }
  return -1;
}

void Scheduler::WorkerLoop() {
  MutexLock lock(mu_);
  while (true) {
    if (stopping_ && queue_.empty()) break;
    const int idle = IdleInstance();
    if (idle < 0 || queue_.empty()) {
      cv_.Wait(lock);  // notified on enqueue, on release of an instance, on stop
      continue;
    }
    BatchQueue::Decision d = queue_.Poll(options_.clock->Now(), stopping_);
    if (options_.metrics.queue_depth) options_.metrics.queue_depth->Set(static_cast<double>(queue_.size()));
    if (d.batch.empty() && d.expired.empty()) {
      if (d.wake_at) options_.clock->WaitUntil(cv_.native(), lock.native(), *d.wake_at);
      continue;
    }
    busy_[idle] = true;
    batch_started_[static_cast<size_t>(idle)] = options_.clock->Now();
    const bool more = !queue_.empty();
    lock.Unlock();
    // Another worker may be able to take the rest of the queue.
    if (more) cv_.NotifyOne();
    Execute(static_cast<size_t>(idle), d);
    lock.Lock();
    busy_[idle] = false;
  }
  cv_.NotifyAll();  // let the other workers see the drained queue
}

void Scheduler::Execute(size_t instance, BatchQueue::Decision& d) {
  for (auto& r : d.expired) {
    InferenceResult result;
    if (r->is_cancelled()) {
      if (options_.metrics.owner) options_.metrics.Fail("cancelled");
      result.status = Unavailable("request '" + r->id + "' was cancelled by its client before it ran");
      Finish(*r, std::move(result));
      continue;
    }
    if (options_.metrics.owner) options_.metrics.Fail("timeout");
    result.status = DeadlineExceeded("request '" + r->id + "' timed out after waiting " +
                                     std::to_string(MicrosBetween(r->enqueue_time, options_.clock->Now())) +
                                     " us in the queue of model '" + options_.model_name + "'; it was not executed");
    result.queue_us = MicrosBetween(r->enqueue_time, options_.clock->Now());
    Finish(*r, std::move(result));
  }
  if (!d.batch.empty()) RunBatch(*instances_[instance], d.batch);
}

void Scheduler::RunBatch(Backend& backend, std::vector<std::unique_ptr<InferenceRequest>>& batch) {
  const SteadyTime start = options_.clock->Now();
  std::vector<int64_t> rows;
  rows.reserve(batch.size());
  int64_t total_rows = 0;
  for (const auto& r : batch) {
    rows.push_back(r->rows);
    total_rows += r->rows;
  }
  std::vector<Tensor> outputs, concatenated;
  const std::vector<Tensor>* inputs = &batch[0]->inputs;
  if (batch.size() > 1) {
    concatenated = ConcatenateInputs(batch);
    inputs = &concatenated;
  }
  Status status = backend.Execute(*inputs, outputs);
  const SteadyTime end = options_.clock->Now();
  const int64_t compute_us = MicrosBetween(start, end);
  RecordComputeTime(compute_us);
  Average(ewma_batch_requests_x16_, static_cast<int64_t>(batch.size()) * 16);
  Average(ewma_batch_rows_x16_, total_rows * 16);
  if (status.ok()) status = CheckOutputs(outputs, options_.outputs, options_.max_batch_size > 0, total_rows);

  stats_.execution_count.fetch_add(1);
  stats_.compute_count.fetch_add(1);
  stats_.compute_ns.fetch_add(static_cast<uint64_t>(compute_us) * 1000);
  {
    MutexLock lock(batch_stats_mu_);  // once per batch, not per request
    auto& b = batch_stats_[total_rows];
    b.count++;
    b.compute_ns += static_cast<uint64_t>(compute_us) * 1000;
  }
  if (options_.metrics.owner) {
    options_.metrics.compute_seconds->Observe(compute_us * 1e-6);
    options_.metrics.batch_size->Observe(static_cast<double>(total_rows));
  }

  const bool all_monitored = std::all_of(batch.begin(), batch.end(), [](const auto& r) { return r->monitored; });
  if (status.ok() && all_monitored && options_.observer && !inputs->empty() && !outputs.empty()) {
    options_.observer((*inputs)[0], outputs[0], total_rows);
  }
  std::vector<std::vector<Tensor>> per_request;
  if (status.ok()) {
    auto split = SplitOutputs(std::move(outputs), rows);
    if (split.ok()) {
      per_request = std::move(split).value();
    } else {
      status = split.status();
    }
  }
  if (status.ok() && !all_monitored && options_.observer) {
    // A replay shares the batch: the observer sees the other requests' rows only.
    for (size_t i = 0; i < batch.size(); ++i) {
      const InferenceRequest& r = *batch[i];
      if (r.monitored && !r.inputs.empty() && !per_request[i].empty()) {
        options_.observer(r.inputs[0], per_request[i][0], r.rows);
      }
    }
  }
  if (!status.ok()) {
    status = status.WithContext("model '" + options_.model_name + "' version " + std::to_string(options_.version));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    InferenceRequest& r = *batch[i];
    InferenceResult result;
    result.status = status;
    result.queue_us = MicrosBetween(r.enqueue_time, start);
    result.compute_us = compute_us;
    result.batch_rows = total_rows;
    if (status.ok()) {
      auto& outs = per_request[i];
      if (r.requested_outputs.empty()) {
        result.outputs = std::move(outs);
      } else {
        for (int idx : r.requested_outputs) result.outputs.push_back(std::move(outs[idx]));
      }
    }
    Finish(r, std::move(result));
  }
}

void Scheduler::Finish(InferenceRequest& request, InferenceResult&& result) {
  const int64_t total_us = MicrosBetween(request.enqueue_time, options_.clock->Now());
  const bool ok = result.status.ok();
  if (ok) {
    stats_.success_count.fetch_add(1);
    stats_.success_ns.fetch_add(static_cast<uint64_t>(total_us) * 1000);
    stats_.queue_count.fetch_add(1);
    stats_.queue_ns.fetch_add(static_cast<uint64_t>(result.queue_us) * 1000);
    stats_.inference_count.fetch_add(static_cast<uint64_t>(request.rows));
    stats_.last_inference_ms.store(static_cast<uint64_t>(UnixMillis()));
    if (options_.metrics.owner) {
      options_.metrics.requests->Inc();
      options_.metrics.rows->Inc(static_cast<double>(request.rows));
      options_.metrics.request_seconds->Observe(total_us * 1e-6);
      options_.metrics.queue_seconds->Observe(result.queue_us * 1e-6);
    }
  } else {
    stats_.fail_count.fetch_add(1);
    stats_.fail_ns.fetch_add(static_cast<uint64_t>(total_us) * 1000);
    if (options_.metrics.owner && result.status.code() != StatusCode::kDeadlineExceeded) {
      options_.metrics.Fail("backend");
    }
  }
  auto done = std::move(request.done);
  in_flight_.fetch_sub(1);
  if (done) done(std::move(result));
}

}  // namespace vigil
