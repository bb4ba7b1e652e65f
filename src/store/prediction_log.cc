#include "store/prediction_log.h"

#include <limits>

#include "core/logging.h"
#include "core/thread_name.h"

namespace vigil {

PredictionLog::PredictionLog(PredictionStore& store, Options options)
    : store_(store), options_(std::move(options)), clock_(options_.clock ? *options_.clock : *WallClock::System()) {
  thread_ = std::thread([this] {
    SetThreadName("vigil-predlog");
    Loop();
  });
}

PredictionLog::~PredictionLog() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.NotifyAll();
  thread_.join();
}

bool PredictionLog::Add(PredictionRecord&& record) {
  {
    MutexLock lock(mu_);
    if (queue_.size() + writing_ < options_.queue_limit && !stopping_) {
      queue_.push_back(std::move(record));
      ++enqueued_;
      if (queue_.size() >= options_.batch_limit) wake_.NotifyOne();
      return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_drop_log_ > std::chrono::seconds(10)) {
      last_drop_log_ = now;
      spdlog::warn("event=prediction_log_full queue_limit={} action=dropping_records", options_.queue_limit);
    }
  }
  Count(0, 1);
  return false;
}

void PredictionLog::Flush() {
  MutexLock lock(mu_);
  const uint64_t target = enqueued_;
  flush_requested_ = true;
  wake_.NotifyOne();
  while (done_ < target && !stopping_) flushed_.Wait(lock);
}

void PredictionLog::Loop() {
  auto next_prune = std::chrono::steady_clock::now();
  std::vector<PredictionRecord> batch;
  while (true) {
    batch.clear();
    bool stop;
    {
      MutexLock lock(mu_);
      const auto deadline = std::chrono::steady_clock::now() + options_.flush_interval;
      while (!stopping_ && !flush_requested_ && queue_.size() < options_.batch_limit) {
        if (!wake_.WaitUntil(lock, deadline)) break;  // the flush interval passed
      }
      stop = stopping_;
      flush_requested_ = false;
      batch.swap(queue_);  // O(1) under the lock: Add never waits for a copy
      writing_ = batch.size();
    }
    if (!batch.empty()) {
      const Status s = store_.WritePredictions(batch);
      if (!s.ok()) {
        spdlog::error("event=prediction_log_write_failed records={} error={}", batch.size(), LogValue(s.message()));
        Count(0, batch.size());
      } else {
        Count(batch.size(), 0);
      }
    }
    {
      MutexLock lock(mu_);
      done_ += batch.size();
      writing_ = 0;
    }
    flushed_.NotifyAll();
    if (stop) return;
    const bool leads = !options_.leadership || options_.leadership->IsLeader();
    if (leads && std::chrono::steady_clock::now() >= next_prune) {
      next_prune = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      const int64_t before_ms =
          options_.retention_ms > 0 ? clock_.NowMillis() - options_.retention_ms : std::numeric_limits<int64_t>::min();
      auto pruned = store_.PrunePredictions(before_ms, options_.max_rows);
      if (pruned.ok() && *pruned > 0) spdlog::info("event=prediction_log_pruned records={}", *pruned);
    }
  }
}

}  // namespace vigil
