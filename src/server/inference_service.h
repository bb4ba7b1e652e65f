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

#include "core/thread_annotations.h"
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

  struct Options {
    ServingMetrics* metrics = nullptr;  // may be null
    // Endpoints: a call whose model is an endpoint's name is routed (see
    // Router) to a variant, its reply carries parameters vigil.variant,
    // vigil.model, vigil.version and vigil.prediction_id (also the reply id
    // when the client gave none), and shadow copies go to a bounded queue of
    // their own, dropped first when it is full or the shadow model is busy.
    // Null: no endpoints.
    const Deployments* deployments = nullptr;
    // Every endpoint answer (and shadow answer) goes to the prediction log;
    // a share `inputs_sample_rate` (0..1) of them with their inputs. Null: none.
    PredictionLog* prediction_log = nullptr;
    double inputs_sample_rate = 0;
    const Clock* clock = SystemClock::Get();
  };
  InferenceService(ModelRepository& repository, Options options);
  ~InferenceService();

  void Infer(InferCall&& call, Done done);

  // What a call to `name` (at `version`, "" = the server's choice) will run,
  // checked before its body is decoded, so an unknown name is NotFound
  // whatever the body holds: an endpoint's production model's config, or
  // the model's own. Raw-body requests take their input from it.
  StatusOr<std::shared_ptr<const ModelConfig>> ConfigFor(const std::string& name, const std::string& version) const;

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
  ServingMetrics* const metrics_;
  const Clock* const clock_;
  const Deployments* const deployments_;
  PredictionLog* const prediction_log_;
  const double inputs_sample_rate_;

  Mutex shadow_mu_;
  CondVar shadow_cv_;
  std::deque<ShadowCall> shadow_queue_ GUARDED_BY(shadow_mu_);
  bool shadow_idle_ GUARDED_BY(shadow_mu_) = false;  // the shadow thread waits for a copy
  bool stopping_ GUARDED_BY(shadow_mu_) = false;
  std::thread shadow_thread_;
};

// A fresh prediction id: a UUIDv7 (time-ordered, so the log's id index stays cheap).
std::string NewPredictionId();

// Parses a version path segment: "" → 0 (latest), "3" → 3.
StatusOr<int64_t> ParseVersionString(std::string_view version);

}  // namespace vigil
