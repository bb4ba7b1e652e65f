#include "routing/inference_service.h"

#include <algorithm>
#include <limits>

#include "repository/bind_inputs.h"
#include "repository/ensemble_run.h"
#include "routing/deployments.h"

namespace vigil {
namespace {

StatusOr<int64_t> IntParam(const Params& params, const std::string& key) {
  auto it = params.find(key);
  if (it == params.end()) return int64_t{-1};
  if (std::holds_alternative<int64_t>(it->second) && std::get<int64_t>(it->second) >= 0)
    return std::get<int64_t>(it->second);
  return InvalidArgument("parameter '" + key + "' must be a non-negative integer");
}

thread_local InferenceService::BatchScope* t_batch_scope = nullptr;

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

}  // namespace

InferenceService::BatchScope::BatchScope(bool drain_here) : previous_(t_batch_scope), drain_here_(drain_here) {
  t_batch_scope = this;
}

InferenceService::BatchScope::~BatchScope() {
  t_batch_scope = previous_;
  for (auto& mv : touched_) {
    if (drain_here_) {
      mv->scheduler()->DrainHere();
    } else {
      mv->scheduler()->RunIfIdle();
    }
  }
}

void InferenceService::BatchScope::Add(std::shared_ptr<ModelVersion> version) {
  for (const auto& mv : touched_) {
    if (mv == version) return;
  }
  touched_.push_back(std::move(version));
}

StatusOr<std::unique_ptr<InferenceService>> InferenceService::Create(ModelRepository& repository, Options options) {
  if (!options.deployments || !options.metrics) {
    return InvalidArgument("the inference service needs the deployments and the serving metrics");
  }
  std::unique_ptr<InferenceService> service(new InferenceService(repository, options));
  VIGIL_ASSIGN_OR_RETURN(service->endpoints_, EndpointCalls::Create({.deployments = options.deployments,
                                                                     .models = service.get(),
                                                                     .metrics = options.metrics,
                                                                     .prediction_log = options.prediction_log,
                                                                     .inputs_sample_rate = options.inputs_sample_rate,
                                                                     .clock = options.clock}));
  return service;
}

InferenceService::InferenceService(ModelRepository& repository, Options options)
    : repository_(repository),
      metrics_(*options.metrics),
      clock_(options.clock ? options.clock : SystemClock::Get()),
      deployments_(*options.deployments),
      ensemble_timer_(*clock_, "vigil-ensemble") {}

InferenceService::~InferenceService() { Stop(); }

void InferenceService::Stop() { endpoints_->Stop(); }

void InferenceService::Run(InferCall&& call, Done done) { InferModel(std::move(call), std::move(done)); }

std::optional<bool> InferenceService::Busy(const std::string& model, int64_t version) const {
  auto pinned = repository_.Acquire(model, version);
  if (!pinned.ok()) return std::nullopt;
  const ModelVersion& mv = **pinned;
  if (mv.QueueDepth() > 0) return true;
  if (!mv.ensemble()) return false;
  for (const EnsembleMember& m : mv.config().ensemble.members) {  // busy when a member is
    auto member = repository_.Acquire(m.model, m.version);
    if (member.ok() && (*member)->QueueDepth() > 0) return true;
  }
  return false;
}

std::optional<PredictedWait> InferenceService::Predict(const std::string& model, int64_t version, uint32_t priority,
                                                       int64_t rows) const {
  auto pinned = repository_.Acquire(model, version);
  if (!pinned.ok()) return std::nullopt;
  const ModelVersion& mv = **pinned;
  const uint32_t level = priority == 0 ? std::numeric_limits<uint32_t>::max() : priority;
  if (mv.scheduler()) {
    const Micros w = mv.scheduler()->PredictedWait(level, rows);
    return PredictedWait{w, w};
  }
  // An ensemble: every member's wait, a member not loaded never answering.
  std::vector<Micros> waits;
  for (const EnsembleMember& m : mv.config().ensemble.members) {
    auto member = repository_.Acquire(m.model, m.version);
    waits.push_back(member.ok() && (*member)->scheduler() ? (*member)->scheduler()->PredictedWait(level, rows)
                                                          : Micros::max());
  }
  std::sort(waits.begin(), waits.end());
  const auto enough =
      static_cast<size_t>(std::clamp<int64_t>(mv.config().ensemble.min_members, 1, static_cast<int64_t>(waits.size())));
  return PredictedWait{waits.back(), waits[enough - 1]};
}

void InferenceService::RunTogether(const std::function<void()>& submit) {
  BatchScope scope(/*drain_here=*/true);  // the caller's thread runs the batches
  submit();
}

StatusOr<InferenceService::Target> InferenceService::Resolve(const std::string& name,
                                                             std::string_view version_text) const {
  VIGIL_ASSIGN_OR_RETURN(const int64_t version, ParseVersionString(version_text));
  if (version == 0) {
    if (auto router = deployments_.Find(name)) {
      const Variant& p = router->spec().production;
      return Target{p.model, p.version};
    }
  }
  return Target{name, version};
}

StatusOr<ModelInfo> InferenceService::Find(const std::string& name, std::string_view version_text) const {
  VIGIL_ASSIGN_OR_RETURN(const Target target, Resolve(name, version_text));
  return repository_.Find(target.model, target.version);
}

void InferenceService::Infer(InferCall&& call, Done done) {
  if (auto router = deployments_.Find(call.model))
    return endpoints_->Infer(std::move(router), std::move(call), std::move(done));
  InferModel(std::move(call), std::move(done));
}

void InferenceService::InferModel(InferCall&& call, Done done) {
  auto fail = [&](const Status& s) { done(s, InferReply{}); };
  auto pinned = repository_.Acquire(call.model, call.version);
  if (!pinned.ok()) return fail(pinned.status());
  InferPinned(std::move(pinned).value(), std::move(call), std::move(done));
}

void InferenceService::InferPinned(std::shared_ptr<ModelVersion> mv, InferCall&& call, Done done) {
  auto fail = [&](const Status& s) { done(s, InferReply{}); };
  const ModelConfig& c = mv->config();

  auto req = std::make_unique<InferenceRequest>();
  req->id = call.id;
  req->cancel = call.cancel;
  req->monitored = !call.replay;
  Status s = BindInputs(c, std::move(call.inputs), *req);

  InferReply reply;
  reply.model = c.name;
  reply.version = mv->version();
  reply.id = call.id;
  if (s.ok()) {
    for (const auto& ro : call.outputs) {
      const int idx = c.OutputIndex(ro.name);
      if (idx < 0) {
        s = InvalidArgument("model '" + c.name + "' has no output '" + ro.name +
                            "' (outputs: " + TensorNames(c.outputs) + ")");
        break;
      }
      req->requested_outputs.push_back(idx);
      reply.binary.push_back(ro.binary);
    }
    if (call.outputs.empty()) reply.binary.assign(c.outputs.size(), call.binary_output);
  }
  int64_t timeout_us = c.dynamic_batching.default_timeout_us;
  if (s.ok()) {
    auto priority = IntParam(call.parameters, "priority");
    auto timeout = IntParam(call.parameters, "timeout");
    if (!priority.ok())
      s = priority.status();
    else if (!timeout.ok())
      s = timeout.status();
    else {
      if (*priority > 0) req->priority = static_cast<uint32_t>(std::min<int64_t>(*priority, UINT32_MAX));
      // A request may only shorten the model's default timeout.
      if (*timeout > 0 && (timeout_us == 0 || *timeout < timeout_us)) timeout_us = *timeout;
    }
  }
  auto count_failure = [&](const char* reason) {
    metrics_.failures().WithLabels({c.name, std::to_string(mv->version()), reason}).Inc();
  };
  if (!s.ok()) {
    count_failure("invalid_request");
    return fail(s);
  }
  if (timeout_us > 0) req->deadline = DeadlineAfter(clock_->Now(), Micros(timeout_us));
  if (call.deadline && *call.deadline < req->deadline) req->deadline = *call.deadline;  // the client's own

  BatchScope* scope = t_batch_scope;
  if (mv->ensemble()) {
    EnsembleRunOptions run{.mode = scope ? Scheduler::EnqueueMode::kQueueOnly : Scheduler::EnqueueMode::kRunIfIdle,
                           .queued = [scope](std::shared_ptr<ModelVersion> member) { scope->Add(std::move(member)); },
                           .clock = clock_,
                           .timer = &ensemble_timer_};
    auto acquire = [this](const std::string& model, int64_t version) { return repository_.Acquire(model, version); };
    return RunEnsemble(acquire, std::move(mv), std::move(req), run,
                       [reply = std::move(reply), done](EnsembleAnswer&& answer) mutable {
                         if (!answer.status.ok()) return done(answer.status, InferReply{});
                         reply.outputs.push_back(std::move(answer.output));
                         reply.parameters["vigil.members"] = JoinNames(answer.answered);
                         if (!answer.left_out.empty())
                           reply.parameters["vigil.members_left_out"] = JoinNames(answer.left_out);
                         done(Status::Ok(), std::move(reply));
                       });
  }
  req->done = [mv, reply = std::move(reply), done](InferenceResult&& result) mutable {
    if (!result.status.ok()) return done(result.status, InferReply{});
    reply.outputs = std::move(result.outputs);
    done(result.status, std::move(reply));
  };
  Status enq =
      mv->scheduler()->Enqueue(req, scope ? Scheduler::EnqueueMode::kQueueOnly : Scheduler::EnqueueMode::kRunIfIdle);
  if (!enq.ok()) {
    count_failure(enq.code() == StatusCode::kResourceExhausted ? "shed" : "queue_full");
    req->done = nullptr;
    return fail(enq);
  }
  if (scope) scope->Add(mv);
  // A client that gives up frees its queue slot at once: the scheduler is
  // woken to drop the request (never run), whatever name the call used.
  call.cancel.OnCancel([weak = std::weak_ptr<ModelVersion>(mv)] {
    if (auto version = weak.lock()) version->scheduler()->Wake();
  });
}

}  // namespace vigil
