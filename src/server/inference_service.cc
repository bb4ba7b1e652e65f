#include "server/inference_service.h"

#include <charconv>

namespace vigil {
namespace {

std::string Names(const std::vector<TensorSpec>& specs) {
  std::string s;
  for (const auto& t : specs) s += (s.empty() ? "" : ", ") + t.name;
  return s;
}

StatusOr<int64_t> IntParam(const Params& params, const std::string& key) {
  auto it = params.find(key);
  if (it == params.end()) return int64_t{-1};
  if (std::holds_alternative<int64_t>(it->second) && std::get<int64_t>(it->second) >= 0)
    return std::get<int64_t>(it->second);
  return InvalidArgument("parameter '" + key + "' must be a non-negative integer");
}

// Moves the call's inputs into config order and checks each against its spec.
Status BindInputs(const ModelConfig& c, std::vector<Tensor>&& given, InferenceRequest& req) {
  const bool batching = c.max_batch_size > 0;
  const std::string model = "model '" + c.name + "'";
  req.inputs.resize(c.inputs.size());
  std::vector<bool> seen(c.inputs.size(), false);
  int64_t rows = -1;
  for (Tensor& t : given) {
    const int idx = c.InputIndex(t.name);
    if (idx < 0) return InvalidArgument(model + " has no input '" + t.name + "' (inputs: " + Names(c.inputs) + ")");
    if (seen[idx]) return InvalidArgument("input '" + t.name + "' is given twice");
    seen[idx] = true;
    const TensorSpec& spec = c.inputs[idx];
    if (t.datatype != spec.datatype) {
      return InvalidArgument("input '" + t.name + "' of " + model + " must be " +
                             std::string(DataTypeName(spec.datatype)) + ", got " +
                             std::string(DataTypeName(t.datatype)));
    }
    Shape per_row = t.shape;
    if (batching) {
      if (t.shape.empty()) {
        return InvalidArgument("input '" + t.name + "' needs a batch dimension: shape [N, " +
                               ShapeToString(spec.dims).substr(1) + " with N <= " + std::to_string(c.max_batch_size));
      }
      const int64_t n = t.shape[0];
      if (n < 1 || n > c.max_batch_size) {
        return InvalidArgument("input '" + t.name + "' has a batch of " + std::to_string(n) + " rows; " + model +
                               " accepts 1 to " + std::to_string(c.max_batch_size) + " (max_batch_size)");
      }
      if (rows >= 0 && rows != n) {
        return InvalidArgument("inputs disagree on the batch size: " + std::to_string(rows) + " vs " +
                               std::to_string(n) + " rows in input '" + t.name + "'");
      }
      rows = n;
      per_row.erase(per_row.begin());
    }
    if (!ShapeMatches(spec.dims, per_row)) {
      return InvalidArgument("input '" + t.name + "' has shape " + ShapeToString(t.shape) + "; " + model + " expects " +
                             (batching ? "[N] + " : "") + ShapeToString(spec.dims));
    }
    req.inputs[idx] = std::move(t);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) return InvalidArgument("input '" + c.inputs[i].name + "' of " + model + " is missing");
  }
  req.rows = batching ? rows : 1;
  return Status::Ok();
}

thread_local InferenceService::BatchScope* t_batch_scope = nullptr;

}  // namespace

InferenceService::BatchScope::BatchScope() : previous_(t_batch_scope) { t_batch_scope = this; }

InferenceService::BatchScope::~BatchScope() {
  t_batch_scope = previous_;
  for (auto& mv : touched_) mv->scheduler().RunIfIdle();
}

void InferenceService::BatchScope::Add(std::shared_ptr<ModelVersion> version) {
  for (const auto& mv : touched_) {
    if (mv == version) return;
  }
  touched_.push_back(std::move(version));
}

StatusOr<int64_t> ParseVersionString(std::string_view version) {
  if (version.empty()) return int64_t{0};
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || ptr != version.data() + version.size() || v < 1) {
    return InvalidArgument("model version must be a positive integer, got '" + std::string(version) + "'");
  }
  return v;
}

void InferenceService::Infer(InferCall&& call, Done done) {
  auto fail = [&](const Status& s) { done(s, InferReply{}); };
  auto version = ParseVersionString(call.version);
  if (!version.ok()) return fail(version.status());
  auto pinned = repository_.Acquire(call.model, *version);
  if (!pinned.ok()) return fail(pinned.status());
  std::shared_ptr<ModelVersion> mv = std::move(pinned).value();
  const ModelConfig& c = mv->config();

  auto req = std::make_unique<InferenceRequest>();
  req->id = call.id;
  req->cancelled = call.cancelled;
  Status s = BindInputs(c, std::move(call.inputs), *req);

  InferReply reply;
  reply.model = c.name;
  reply.version = std::to_string(mv->version());
  reply.id = call.id;
  if (s.ok()) {
    for (const auto& ro : call.outputs) {
      const int idx = c.OutputIndex(ro.name);
      if (idx < 0) {
        s = InvalidArgument("model '" + c.name + "' has no output '" + ro.name + "' (outputs: " + Names(c.outputs) +
                            ")");
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
    if (metrics_) metrics_->failures().WithLabels({c.name, std::to_string(mv->version()), reason}).Inc();
  };
  if (!s.ok()) {
    count_failure("invalid_request");
    return fail(s);
  }
  if (timeout_us > 0) req->deadline = clock_->Now() + Micros(timeout_us);

  req->done = [mv, reply = std::move(reply), done](InferenceResult&& result) mutable {
    if (!result.status.ok()) return done(result.status, InferReply{});
    reply.outputs = std::move(result.outputs);
    done(result.status, std::move(reply));
  };
  BatchScope* scope = t_batch_scope;
  Status enq =
      mv->scheduler().Enqueue(req, scope ? Scheduler::EnqueueMode::kQueueOnly : Scheduler::EnqueueMode::kRunIfIdle);
  if (enq.ok() && scope) scope->Add(mv);
  if (!enq.ok()) {
    count_failure("queue_full");
    req->done = nullptr;
    return fail(enq);
  }
}

}  // namespace vigil
