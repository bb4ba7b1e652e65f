// InferenceService: the one path from a decoded call to a scheduled request,
// shared by every frontend. It pins the model version, checks the call
// against the model's config (names, datatypes, shapes, batch limit), applies
// the `priority` and `timeout` parameters, enqueues, and turns the result
// into an InferReply. Frontends only translate wire formats and statuses.
// Thread-safe.
#pragma once

#include <functional>

#include "repository/model_repository.h"
#include "protocol/oip_json.h"

namespace vigil {

class InferenceService {
 public:
  // Called exactly once per Infer, on a scheduler thread or the caller's.
  using Done = std::function<void(const Status&, InferReply&&)>;

  InferenceService(ModelRepository& repository, ServingMetrics* metrics, const Clock* clock = SystemClock::Get())
      : repository_(repository), metrics_(metrics), clock_(clock) {}

  void Infer(InferCall&& call, Done done);

  // While a BatchScope is alive on a thread, Infer on that thread only
  // queues; when the scope ends, each model touched runs what waits as one
  // batch (on this thread when an instance is idle, else on a worker). A
  // frontend opens one around the requests that became readable together,
  // so they share a batch without a hand-off between threads.
  class BatchScope {
   public:
    BatchScope();
    ~BatchScope();
    BatchScope(const BatchScope&) = delete;
    BatchScope& operator=(const BatchScope&) = delete;
    void Add(std::shared_ptr<ModelVersion> version);

   private:
    BatchScope* previous_;
    std::vector<std::shared_ptr<ModelVersion>> touched_;  // pinned until the run
  };

 private:
  ModelRepository& repository_;
  ServingMetrics* metrics_;
  const Clock* clock_;
};

// Parses a version path segment: "" → 0 (latest), "3" → 3.
StatusOr<int64_t> ParseVersionString(std::string_view version);

}  // namespace vigil
