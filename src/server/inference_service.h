// InferenceService: the one path from a decoded call to a scheduled request,
// shared by every frontend. It pins the model version, checks the call
// against the model's config (names, datatypes, shapes, batch limit), applies
// the `priority` and `timeout` parameters, enqueues, and turns the result
// into an InferReply. Frontends only translate wire formats and statuses.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>

#include "protocol/oip_json.h"
#include "repository/model_repository.h"
#include "routing/router.h"

namespace vigil {

class Deployments;
class PredictionLog;

class InferenceService {
 public:
  // Called exactly once per Infer, on a scheduler thread or the caller's.
  using Done = std::function<void(const Status&, InferReply&&)>;

  InferenceService(ModelRepository& repository, ServingMetrics* metrics, const Clock* clock = SystemClock::Get());
  ~InferenceService();

  // Endpoints: a call whose model is an endpoint's name is routed (see
  // Router) to a variant, its reply carries parameters vigil.variant,
  // vigil.model, vigil.version and vigil.prediction_id (also the reply id
  // when the client gave none), and shadow copies go to a bounded queue of
  // their own, dropped first when it is full or the shadow model is busy.
  void SetDeployments(Deployments* deployments) { deployments_ = deployments; }
  // Every endpoint answer (and shadow answer) goes to the prediction log;
  // a share `inputs_sample_rate` (0..1) of them with their inputs.
  void SetPredictionLog(PredictionLog* log, double inputs_sample_rate) {
    prediction_log_ = log;
    inputs_sample_rate_ = inputs_sample_rate;
  }

  void Infer(InferCall&& call, Done done);

  // For metadata and readiness: an endpoint's name (without a version)
  // stands for its production model version; anything else for itself.
  struct Target {
    std::string model;
    std::string version;
  };
  Target Resolve(const std::string& name, const std::string& version) const;

  // Stops the shadow thread (queued copies are dropped and counted).
  void Stop();

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
  struct ShadowCall {
    std::shared_ptr<const Router> router;
    int variant;
    InferCall call;
    std::string key_hash;
  };
  // Whether the endpoint's production model has requests waiting.
  bool ProductionBusy(const Router& router) const;
  // Runs one shadow copy on its pinned model; the answer is counted and
  // logged, never returned.
  void RunShadow(ShadowCall&& shadow, std::shared_ptr<ModelVersion> mv);
  void LogPrediction(const DeploymentSpec& spec, const std::string& variant, const std::string& prediction_id,
                     const InferReply& reply, int64_t latency_us, bool shadow, std::string inputs,
                     const std::string& key_hash);
  void InferModel(InferCall&& call, Done done);
  // InferModel on a version already pinned (call.model/version are ignored).
  void InferPinned(std::shared_ptr<ModelVersion> mv, InferCall&& call, Done done);
  void InferEndpoint(std::shared_ptr<const Router> router, InferCall&& call, Done done);
  void ShadowLoop();
  void CountShadow(const ShadowCall& shadow, const char* result);

  static constexpr size_t kShadowQueueLimit = 256;
  // While shadows keep coming, the thread collects them this long per round.
  static constexpr std::chrono::milliseconds kShadowCollect{1};

  ModelRepository& repository_;
  ServingMetrics* metrics_;
  const Clock* clock_;
  Deployments* deployments_ = nullptr;
  PredictionLog* prediction_log_ = nullptr;
  double inputs_sample_rate_ = 0;

  std::mutex shadow_mu_;
  std::condition_variable shadow_cv_;
  std::deque<ShadowCall> shadow_queue_;  // guarded by shadow_mu_
  bool shadow_idle_ = false;             // the shadow thread waits for a copy; guarded by shadow_mu_
  bool stopping_ = false;                // guarded by shadow_mu_
  std::thread shadow_thread_;
};

// A fresh prediction id: a UUIDv7 (time-ordered, so the log's id index stays cheap).
std::string NewPredictionId();

// Parses a version path segment: "" → 0 (latest), "3" → 3.
StatusOr<int64_t> ParseVersionString(std::string_view version);

}  // namespace vigil
