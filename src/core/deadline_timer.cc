#include "core/deadline_timer.h"

#include "core/thread_name.h"

namespace vigil {

DeadlineTimer::DeadlineTimer(const Clock& clock, std::string thread_name)
    : clock_(clock), thread_name_(std::move(thread_name)) {}

DeadlineTimer::~DeadlineTimer() {
  std::thread thread;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    thread.swap(thread_);
  }
  cv_.NotifyAll();
  if (thread.joinable()) thread.join();
}

DeadlineTimer::Id DeadlineTimer::At(SteadyTime at, std::function<void()> action) {
  bool first = false;
  Id id = 0;
  {
    MutexLock lock(mu_);
    id = next_id_++;
    const bool earliest = due_.empty() || at < due_.begin()->first;
    by_id_.emplace(id, due_.emplace(at, std::pair(id, std::move(action))));
    if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { Loop(); });
    first = earliest;
  }
  // Only a new earliest time changes how long the thread sleeps.
  if (first) cv_.NotifyAll();
  return id;
}

bool DeadlineTimer::Cancel(Id id) {
  MutexLock lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  due_.erase(it->second);
  by_id_.erase(it);
  return true;
}

size_t DeadlineTimer::Pending() const {
  MutexLock lock(mu_);
  return due_.size();
}

void DeadlineTimer::Loop() {
  SetThreadName(thread_name_);
  MutexLock lock(mu_);
  while (!stopping_) {
    if (due_.empty()) {
      cv_.Wait(lock);
      continue;
    }
    const SteadyTime next = due_.begin()->first;
    if (clock_.Now() < next) {
      clock_.WaitUntil(cv_.native(), lock.native(), next);
      continue;
    }
    {
      auto action = std::move(due_.begin()->second.second);
      by_id_.erase(due_.begin()->second.first);
      due_.erase(due_.begin());
      lock.Unlock();
      action();
    }  // what it holds is let go of without the lock, too
    lock.Lock();
  }
}

}  // namespace vigil
