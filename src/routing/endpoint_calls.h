// EndpointCalls: the endpoint half of serving. A call whose name is an
// endpoint is routed (Router: kill switch, flags, sticky split) to a
// variant; its reply carries vigil.variant, vigil.model, vigil.version and
// vigil.prediction_id (also the reply id when the client gave none); the
// answer and the shadows' answers go to the prediction log; shadow copies go
// to a bounded queue of their own and run on one thread, dropped first
// whenever their production model or their own model has work waiting, and
// whenever the shadow has used its CPU budget (`max_cpu` of one core,
// charged with the time its copies' executions take).
//
// It runs models through an injected ModelRunner (the server's model half:
// bind the inputs, enqueue on the version's scheduler), so it needs no
// repository and is tested with a fake one.
//
// Threads: one ("vigil-shadow"), stopped by Stop or the destructor.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/infer_call.h"
#include "core/thread_annotations.h"
#include "monitoring/serving_metrics.h"
#include "routing/deployments.h"
#include "routing/overload.h"
#include "routing/router.h"
#include "store/prediction_log.h"

namespace vigil {

// How the endpoint half runs a model version.
class ModelRunner {
 public:
  using Done = std::function<void(const Status&, InferReply&&)>;
  virtual ~ModelRunner() = default;
  // Runs `call` on model `call.model` at `call.version` (0: the latest);
  // `done` is called exactly once.
  virtual void Run(InferCall&& call, Done done) = 0;
  // Whether that model version has requests waiting (a shadow gives way);
  // nullopt when it is not loaded.
  virtual std::optional<bool> Busy(const std::string& model, int64_t version) const = 0;
  // How long that model version would take to answer a request of
  // `priority` (0: the lowest) and `rows` rows enqueued now; nullopt when
  // it is not loaded.
  virtual std::optional<PredictedWait> Predict(const std::string& model, int64_t version, uint32_t priority,
                                               int64_t rows) const = 0;
  // Runs `submit`, whose Run calls are then executed together on this
  // thread (the shadow thread: never on a serving one).
  virtual void RunTogether(const std::function<void()>& submit) = 0;
};

class EndpointCalls {
 public:
  using Done = ModelRunner::Done;
  struct Options {
    const Deployments* deployments = nullptr;  // required
    ModelRunner* models = nullptr;             // required
    ServingMetrics* metrics = nullptr;         // required
    // Every endpoint answer (and shadow answer) goes to the prediction log;
    // a share `inputs_sample_rate` (0..1) of them with their inputs. Null: none.
    PredictionLog* prediction_log = nullptr;
    double inputs_sample_rate = 0;
    const Clock* clock = nullptr;  // null: the system clock
  };
  static StatusOr<std::unique_ptr<EndpointCalls>> Create(Options options);
  ~EndpointCalls();  // stops the shadow thread

  // The endpoint `call.model` names, if it is one.
  std::shared_ptr<const Router> Find(const std::string& name) const { return options_.deployments->Find(name); }
  // Routes `call` through `router` and answers through `done`, exactly once.
  void Infer(std::shared_ptr<const Router> router, InferCall&& call, Done done);
  // Stops the shadow thread (queued copies are dropped and counted).
  void Stop();

  static constexpr size_t kShadowQueueLimit = 256;

 private:
  explicit EndpointCalls(Options options);
  struct ShadowCall {
    std::shared_ptr<const Router> router;
    int variant;
    InferCall call;
    std::string key_hash;
  };
  void ShadowLoop();
  void RunShadow(ShadowCall&& shadow);
  void CountShadow(const ShadowCall& shadow, const char* result);
  void LogPrediction(const DeploymentSpec& spec, const std::string& variant, const std::string& prediction_id,
                     const InferReply& reply, int64_t latency_us, bool shadow, std::string inputs,
                     const std::string& key_hash, int rung = 0);
  // A request answered or shed at `rung` through an endpoint with a ladder.
  void NoteRung(const Router& router, int rung, SteadyTime now);
  void NoteChange(const std::string& endpoint, const OverloadLadder::Change& change);

  // While shadows keep coming, the thread collects them this long per round.
  static constexpr std::chrono::milliseconds kShadowCollect{1};

 public:
  // A shadow's CPU credit holds at most this long's worth of its budget (the
  // burst it may take after a quiet spell).
  static constexpr std::chrono::milliseconds kShadowBudgetWindow{200};
  // A variant's copies of one round run for about this long at most, times
  // max_cpu / kDefaultShadowMaxCpu when that is more (the others are over
  // budget): the budget is spent in slices, so a slow shadow never holds a
  // core for long while production requests wait for one.
  static constexpr std::chrono::microseconds kShadowSlice{1000};

 private:
  const Options options_;
  const Clock& clock_;

  Mutex shadow_mu_;
  CondVar shadow_cv_;
  std::deque<ShadowCall> shadow_queue_ GUARDED_BY(shadow_mu_);
  bool shadow_idle_ GUARDED_BY(shadow_mu_) = false;  // the shadow thread waits for a copy
  bool stopping_ GUARDED_BY(shadow_mu_) = false;
  std::thread shadow_thread_;
};

// A fresh prediction id: a UUIDv7 (time-ordered, so the log's id index stays cheap).
std::string NewPredictionId();

// "[v0,v1,...]" of a tensor's first `limit` numeric values (empty for BYTES):
// how the prediction log keeps inputs and outputs.
std::string CompactValues(const Tensor& t, int64_t limit);

}  // namespace vigil
