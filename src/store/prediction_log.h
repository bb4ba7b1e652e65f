// PredictionLog: writes served (and shadow) predictions to the store on a
// background thread, in batches, through a bounded queue. Inference never
// waits for the disk: when the queue is full a record is dropped and counted
// (Options::on_records, which the server turns into
// vigil_prediction_log_records_total{result="dropped"}, and a log line at
// most every 10 s), never silently.
//
// Crash bound: a kill -9 loses at most the records queued or being written
// (one transaction), together at most `queue_limit` (65,536 by default),
// which at steady state is about `flush_interval` (50 ms) of traffic plus
// the time of one write.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/thread_annotations.h"
#include "store/store.h"

namespace vigil {

class PredictionLog {
 public:
  struct Options {
    size_t queue_limit = 65536;
    std::chrono::milliseconds flush_interval{50};
    size_t batch_limit = 4096;                       // wakes the writer before flush_interval
    int64_t retention_ms = 30LL * 24 * 3600 * 1000;  // 30 days; 0 = no age limit
    int64_t max_rows = 10'000'000;                   // 0 = no size limit
    // Told how many records were written and dropped (queue full or a failed
    // write), from the writer thread or from Add; may be empty.
    std::function<void(size_t written, size_t dropped)> on_records;
    // The wall clock retention is measured by.
    WallClock* clock = nullptr;  // null = the system's
    // Replicas sharing a store: only the leader deletes old predictions. Null: this one does.
    const Leadership* leadership = nullptr;
  };

  PredictionLog(PredictionStore& store, Options options);
  ~PredictionLog();  // writes what is queued, then stops

  // Queues one record; false when the queue was full (the record is dropped).
  bool Add(PredictionRecord&& record);
  // Returns once everything queued before the call is written.
  void Flush();

 private:
  void Loop();

  void Count(size_t written, size_t dropped) {
    if (options_.on_records) options_.on_records(written, dropped);
  }

  PredictionStore& store_;
  Options options_;
  WallClock& clock_;
  Mutex mu_;
  CondVar wake_, flushed_;
  std::vector<PredictionRecord> queue_ GUARDED_BY(mu_);
  size_t writing_ GUARDED_BY(mu_) = 0;  // taken by the writer, not yet committed
  uint64_t enqueued_ GUARDED_BY(mu_) = 0;
  uint64_t done_ GUARDED_BY(mu_) = 0;  // written or failed
  bool stopping_ GUARDED_BY(mu_) = false;
  bool flush_requested_ GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_drop_log_ GUARDED_BY(mu_){};
  std::thread thread_;
};

}  // namespace vigil
