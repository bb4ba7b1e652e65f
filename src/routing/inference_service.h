// InferenceService: the one path from a decoded call to a scheduled
// request, shared by every frontend. A call to an endpoint goes to the
// endpoint half (routing/endpoint_calls: route, shadows, prediction log),
// which runs models back through this service. The model half, here: pin
// the model version, check the call against its config (BindInputs), apply
// `priority`, the `timeout` parameter and the call's deadline, enqueue with
// the call's cancel token, and turn the result into an InferReply.
// Frontends only translate wire formats and statuses. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "core/deadline_timer.h"
#include "core/infer_call.h"
#include "repository/model_repository.h"
#include "routing/deployments.h"
#include "routing/endpoint_calls.h"

namespace vigil {

class PredictionLog;

class InferenceService final : public ModelRunner {
 public:
  // Called exactly once per Infer, on a scheduler thread or the caller's.
  using Done = ModelRunner::Done;

  struct Options {
    ServingMetrics* metrics = nullptr;         // required
    const Deployments* deployments = nullptr;  // required: names that are endpoints
    PredictionLog* prediction_log = nullptr;   // endpoint answers; null: none
    double inputs_sample_rate = 0;             // share of them logged with their inputs
    const Clock* clock = SystemClock::Get();
  };
  static StatusOr<std::unique_ptr<InferenceService>> Create(ModelRepository& repository, Options options);
  ~InferenceService() override;

  void Infer(InferCall&& call, Done done);

  // The one place a name and a version from the wire are resolved, for
  // both frontends: the version parsed ("" = the server's choice), and an
  // endpoint's name (without a version) standing for its production model
  // version; anything else stands for itself.
  struct Target {
    std::string model;
    int64_t version = 0;
  };
  StatusOr<Target> Resolve(const std::string& name, std::string_view version_text) const;
  // Resolve, then the model's config and ready versions: metadata, and what
  // a call will run checked before its body is decoded (an unknown name is
  // NotFound whatever the body holds; raw-body requests take their input
  // from the config).
  StatusOr<ModelInfo> Find(const std::string& name, std::string_view version_text) const;

  // Stops the endpoints' shadow thread (queued copies are dropped and counted).
  void Stop();

  // ModelRunner, for the endpoint half: a model version by name; whether
  // one has requests waiting; batches run together on the caller's thread.
  void Run(InferCall&& call, Done done) override;
  std::optional<bool> Busy(const std::string& model, int64_t version) const override;
  std::optional<PredictedWait> Predict(const std::string& model, int64_t version, uint32_t priority,
                                       int64_t rows) const override;
  void RunTogether(const std::function<void()>& submit) override;

  // While a BatchScope is alive on a thread, Infer on that thread only
  // queues; when the scope ends, each model touched runs what waits as one
  // batch (on this thread when an instance is idle, else on a worker). A
  // frontend opens one around the requests that became readable together,
  // so they share a batch without a hand-off between threads.
  class BatchScope {
   public:
    // `drain_here`: run every batch on this thread (Scheduler::DrainHere).
    explicit BatchScope(bool drain_here = false);
    ~BatchScope();
    BatchScope(const BatchScope&) = delete;
    BatchScope& operator=(const BatchScope&) = delete;
    void Add(std::shared_ptr<ModelVersion> version);

   private:
    BatchScope* previous_;
    bool drain_here_;
    std::vector<std::shared_ptr<ModelVersion>> touched_;  // pinned until the run
  };

 private:
  InferenceService(ModelRepository& repository, Options options);
  void InferModel(InferCall&& call, Done done);
  // InferModel on a version already pinned (call.model/version are ignored).
  void InferPinned(std::shared_ptr<ModelVersion> mv, InferCall&& call, Done done);

  ModelRepository& repository_;
  ServingMetrics& metrics_;
  const Clock* const clock_;
  const Deployments& deployments_;
  std::unique_ptr<EndpointCalls> endpoints_;  // set by Create
  // Ensembles answer at their deadline with the members that have returned.
  DeadlineTimer ensemble_timer_;
};

}  // namespace vigil
