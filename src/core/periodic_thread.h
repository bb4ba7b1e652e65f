// A thread of its own that calls `fn` every `interval` until it is
// destroyed (the first call one interval after the start). Destruction waits
// for a call under way, so `fn` may use what its owner holds when the
// PeriodicThread is the owner's last member.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "core/thread_annotations.h"
#include "core/thread_name.h"

namespace vigil {

class PeriodicThread {
 public:
  PeriodicThread(std::string name, std::chrono::milliseconds interval, std::function<void()> fn)
      : thread_([this, name = std::move(name), interval, fn = std::move(fn)] {
          SetThreadName(name);
          MutexLock lock(mu_);
          while (!stopping_) {
            wake_.WaitFor(lock, interval);
            if (stopping_) break;
            lock.Unlock();
            fn();
            lock.Lock();
          }
        }) {}
  ~PeriodicThread() {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    wake_.NotifyAll();
    thread_.join();
  }
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

 private:
  Mutex mu_;
  CondVar wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started once the rest exists
};

}  // namespace vigil
