#include "routing/inference_service.h"

#include <algorithm>

#include "repository/bind_inputs.h"
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

}  // namespace

InferenceService::BatchScope::BatchScope(bool drain_here) : previous_(t_batch_scope), drain_here_(drain_here) {
  t_batch_scope = this;
}

InferenceService::BatchScope::~BatchScope() {
  t_batch_scope = previous_;
  for (auto& mv : touched_) {
    if (drain_here_) {
      mv->scheduler().DrainHere();
    } else {
      mv->scheduler().RunIfIdle();
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
      deployments_(*options.deployments) {}

InferenceService::~InferenceService() { Stop(); }

void InferenceService::Stop() { endpoints_->Stop(); }

void InferenceService::Run(InferCall&& call, Done done) { InferModel(std::move(call), std::move(done)); }

std::optional<bool> InferenceService::Busy(const std::string& model, int64_t version) const {
  auto pinned = repository_.Acquire(model, version);
  if (!pinned.ok()) return std::nullopt;
  return (*pinned)->scheduler().QueueDepth() > 0;
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

  req->done = [mv, reply = std::move(reply), done](InferenceResult&& result) mutable {
    if (!result.status.ok()) return done(result.status, InferReply{});
    reply.outputs = std::move(result.outputs);
    done(result.status, std::move(reply));
  };
  BatchScope* scope = t_batch_scope;
  Status enq =
      mv->scheduler().Enqueue(req, scope ? Scheduler::EnqueueMode::kQueueOnly : Scheduler::EnqueueMode::kRunIfIdle);
  if (!enq.ok()) {
    count_failure(enq.code() == StatusCode::kResourceExhausted ? "shed" : "queue_full");
    req->done = nullptr;
    return fail(enq);
  }
  if (scope) scope->Add(mv);
  // A client that gives up frees its queue slot at once: the scheduler is
  // woken to drop the request (never run), whatever name the call used.
  call.cancel.OnCancel([weak = std::weak_ptr<ModelVersion>(mv)] {
    if (auto version = weak.lock()) version->scheduler().Wake();
  });
}

}  // namespace vigil
