// Runs actions at times of an injectable Clock, on one thread of its own
// (started by the first action, named as the owner says). For work that
// must happen at a request's deadline whether or not anything else does,
// such as an ensemble answering with the members that have returned.
//
//   DeadlineTimer timer(*clock, "vigil-deadline");
//   auto id = timer.At(deadline, [run] { run->Expire(); });
//   ...
//   timer.Cancel(id);  // when the work finished first
//
// Actions run one at a time, never with the timer's lock held, so one may
// call At or Cancel. The destructor drops the actions still waiting (they
// never run) and joins the thread. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/thread_annotations.h"

namespace vigil {

class DeadlineTimer {
 public:
  using Id = uint64_t;

  explicit DeadlineTimer(const Clock& clock, std::string thread_name = "vigil-timer");
  ~DeadlineTimer();
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  // Runs `action` once `at` has passed (at once, on the timer's thread, when
  // it already has). Ids are never 0.
  Id At(SteadyTime at, std::function<void()> action) EXCLUDES(mu_);
  // True when the action had not started; it will not run.
  bool Cancel(Id id) EXCLUDES(mu_);
  // Actions waiting.
  size_t Pending() const EXCLUDES(mu_);

 private:
  void Loop() EXCLUDES(mu_);

  const Clock& clock_;
  const std::string thread_name_;
  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  Id next_id_ GUARDED_BY(mu_) = 1;
  std::multimap<SteadyTime, std::pair<Id, std::function<void()>>> due_ GUARDED_BY(mu_);
  std::unordered_map<Id, decltype(due_)::iterator> by_id_ GUARDED_BY(mu_);
  std::thread thread_ GUARDED_BY(mu_);
};

}  // namespace vigil
