#include "server/prediction_log.h"

#include <limits>

#include "core/clock.h"
#include "core/logging.h"
#include "core/thread_name.h"

namespace vigil {

PredictionLog::PredictionLog(Store& store, ServingMetrics* metrics, Options options)
    : store_(store), options_(options) {
  if (metrics) {
    auto& family =
        metrics->registry().AddCounter("vigil_prediction_log_records_total",
                                       "Prediction log records, by result (written, dropped, failed).", {"result"});
    written_ = &family.WithLabels({"written"});
    dropped_ = &family.WithLabels({"dropped"});
  }
  thread_ = std::thread([this] {
    SetThreadName("vigil-predlog");
    Loop();
  });
}

PredictionLog::~PredictionLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool PredictionLog::Add(PredictionRecord&& record) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() + writing_ < options_.queue_limit && !stopping_) {
      queue_.push_back(std::move(record));
      ++enqueued_;
      if (queue_.size() >= options_.batch_limit) wake_.notify_one();
      return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_drop_log_ > std::chrono::seconds(10)) {
      last_drop_log_ = now;
      spdlog::warn("event=prediction_log_full queue_limit={} action=dropping_records", options_.queue_limit);
    }
  }
  if (dropped_) dropped_->Inc();
  return false;
}

void PredictionLog::Flush() {
  std::unique_lock lock(mu_);
  const uint64_t target = enqueued_;
  wake_.notify_one();
  flushed_.wait(lock, [&] { return done_ >= target || stopping_; });
}

void PredictionLog::Loop() {
  auto next_prune = std::chrono::steady_clock::now();
  std::vector<PredictionRecord> batch;
  while (true) {
    batch.clear();
    bool stop;
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, options_.flush_interval, [&] { return stopping_ || queue_.size() >= options_.batch_limit; });
      stop = stopping_;
      batch.swap(queue_);  // O(1) under the lock: Add never waits for a copy
      writing_ = batch.size();
    }
    if (!batch.empty()) {
      const Status s = store_.WritePredictions(batch);
      if (!s.ok()) {
        spdlog::error("event=prediction_log_write_failed records={} error={}", batch.size(), LogValue(s.message()));
        if (dropped_) dropped_->Inc(static_cast<double>(batch.size()));
      } else if (written_) {
        written_->Inc(static_cast<double>(batch.size()));
      }
    }
    {
      std::lock_guard lock(mu_);
      done_ += batch.size();
      writing_ = 0;
    }
    flushed_.notify_all();
    if (stop) return;
    if (std::chrono::steady_clock::now() >= next_prune) {
      next_prune = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      const int64_t before_ms =
          options_.retention_ms > 0 ? UnixMillis() - options_.retention_ms : std::numeric_limits<int64_t>::min();
      auto pruned = store_.PrunePredictions(before_ms, options_.max_rows);
      if (pruned.ok() && *pruned > 0) spdlog::info("event=prediction_log_pruned records={}", *pruned);
    }
  }
}

}  // namespace vigil
