// ControlWorkers: a few threads for the routes that may block — store
// reads and writes (feedback, deployment changes, monitoring reads), model
// loads — so that the HTTP I/O threads only decode, route and answer
// inference, and no control request can stall serving.
//
// The queue is bounded: when it is full, Post refuses the task and the
// caller answers 503 with Retry-After. Thread-safe. Stop() (or the
// destructor) runs what is queued, then joins the threads.
#pragma once

#include "core/thread_annotations.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vigil {

class ControlWorkers {
 public:
  struct Options {
    int threads = 2;           // 0: none; Post runs the task on the caller (tests, fuzzing)
    size_t queue_limit = 256;  // tasks waiting for a thread
  };

  explicit ControlWorkers(Options options);
  ~ControlWorkers();
  ControlWorkers(const ControlWorkers&) = delete;
  ControlWorkers& operator=(const ControlWorkers&) = delete;

  // Queues `task`; false (the task is dropped, not run) when the queue is
  // full or the workers are stopping.
  bool Post(std::function<void()> task);
  void Stop();

 private:
  void Loop();

  Options options_;
  Mutex mu_;
  CondVar wake_;
  std::deque<std::function<void()>> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace vigil
