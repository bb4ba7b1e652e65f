#include "net/control_workers.h"

#include "core/thread_name.h"

namespace vigil {

ControlWorkers::ControlWorkers(Options options) : options_(options) {
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] {
      SetThreadName("vigil-control");
      Loop();
    });
  }
}

ControlWorkers::~ControlWorkers() { Stop(); }

bool ControlWorkers::Post(std::function<void()> task) {
  if (threads_.empty()) {
    task();
    return true;
  }
  {
    MutexLock lock(mu_);
    if (stopping_ || queue_.size() >= options_.queue_limit) return false;
    queue_.push_back(std::move(task));
  }
  wake_.NotifyOne();
  return true;
}

void ControlWorkers::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.NotifyAll();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void ControlWorkers::Loop() {
  while (true) {
    std::function<void()> task;
    {
      MutexLock lock(mu_);
      while (!stopping_ && queue_.empty()) wake_.Wait(lock);
      if (queue_.empty()) return;  // stopping, and everything queued has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace vigil
