#include "server/inference_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <random>

#include "core/hash.h"
#include "core/logging.h"
#include "core/thread_name.h"
#include "core/uuid.h"
#include "routing/deployments.h"
#include "store/prediction_log.h"

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

StatusOr<int64_t> ParseVersionString(std::string_view version) {
  if (version.empty()) return int64_t{0};
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || ptr != version.data() + version.size() || v < 1) {
    return InvalidArgument("model version must be a positive integer, got '" + std::string(version) + "'");
  }
  return v;
}

namespace {

// "[v0,v1,...]" of a tensor's first `limit` numeric values (empty for BYTES).
std::string CompactValues(const Tensor& t, int64_t limit) {
  std::string out = "[";
  const int64_t n = std::min(t.element_count(), limit);
  auto put = [&](auto* p) {
    for (int64_t i = 0; i < n; ++i) fmt::format_to(std::back_inserter(out), "{}{}", i ? "," : "", +p[i]);
  };
  switch (t.datatype) {
    case DataType::kFp32:
      put(t.as<float>());
      break;
    case DataType::kFp64:
      put(t.as<double>());
      break;
    case DataType::kInt64:
      put(t.as<int64_t>());
      break;
    case DataType::kInt32:
      put(t.as<int32_t>());
      break;
    case DataType::kUint8:
    case DataType::kBool:
      put(t.as<uint8_t>());
      break;
    default:
      break;
  }
  return out + "]";
}

bool Sampled(double rate) {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0, 1)(rng) < rate;
}

}  // namespace

void InferenceService::LogPrediction(const DeploymentSpec& spec, const std::string& variant,
                                     const std::string& prediction_id, const InferReply& reply, int64_t latency_us,
                                     bool shadow, std::string inputs, const std::string& key_hash) {
  PredictionRecord r;
  r.id = prediction_id;
  r.time_ms = UnixMillis();
  r.endpoint = spec.endpoint;
  r.variant = variant;
  r.model = reply.model;
  r.version = std::strtoll(reply.version.c_str(), nullptr, 10);
  r.latency_us = latency_us;
  r.shadow = shadow;
  if (!reply.outputs.empty()) r.outputs = CompactValues(reply.outputs[0], 64);
  r.inputs = std::move(inputs);
  r.key_hash = key_hash;
  prediction_log_->Add(std::move(r));
}

std::string NewPredictionId() { return NewUuidV7(UnixMillis()); }

InferenceService::InferenceService(ModelRepository& repository, Options options)
    : repository_(repository),
      metrics_(options.metrics),
      clock_(options.clock ? options.clock : SystemClock::Get()),
      deployments_(options.deployments),
      prediction_log_(options.prediction_log),
      inputs_sample_rate_(options.inputs_sample_rate),
      shadow_thread_([this] {
        SetThreadName("vigil-shadow");
        // Normal priority on purpose. At nice 19 or SCHED_IDLE this thread
        // can wait tens of ms for a core while holding a lock that serving
        // threads share (the log queue, the allocator's): production p99
        // went from 2-3 ms to 75 ms in bench/endpoint.sh.
        ShadowLoop();
      }) {}

InferenceService::~InferenceService() { Stop(); }

void InferenceService::Stop() {
  {
    MutexLock lock(shadow_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  shadow_cv_.NotifyAll();
  if (shadow_thread_.joinable()) shadow_thread_.join();
}

void InferenceService::CountShadow(const ShadowCall& shadow, const char* result) {
  if (!metrics_) return;
  const DeploymentSpec& spec = shadow.router->spec();
  metrics_->shadow_requests()
      .WithLabels({spec.endpoint, spec.candidates[static_cast<size_t>(shadow.variant)].name, result})
      .Inc();
}

void InferenceService::ShadowLoop() {
  std::deque<ShadowCall> drained;
  bool busy = false;  // the last round had copies to run
  while (true) {
    {
      MutexLock lock(shadow_mu_);
      if (!busy) {
        // Idle: the next copy wakes this thread.
        shadow_idle_ = true;
        while (!stopping_ && shadow_queue_.empty()) shadow_cv_.Wait(lock);
      } else {
        // Busy: copies are collected for a while without waking this thread
        // for each one (no wake-up per request on the serving threads).
        const auto until = std::chrono::steady_clock::now() + kShadowCollect;
        while (!stopping_ && shadow_cv_.WaitUntil(lock, until)) {
        }
      }
      shadow_idle_ = false;
      if (stopping_) {
        for (const auto& s : shadow_queue_) CountShadow(s, "dropped");
        shadow_queue_.clear();
        return;
      }
      drained.swap(shadow_queue_);
    }
    // What waited is submitted together, so the copies for one model share
    // batches as production requests do. Copies are dropped first when the
    // server is busy: when their endpoint's production model has requests
    // waiting, or their own model has work queued (never queued behind it).
    BatchScope scope(/*drain_here=*/true);  // on this thread, never a serving one
    // Judged once per round: is each endpoint's production busy, has each
    // shadow model work queued (before this round's own copies join it)?
    std::map<const Router*, bool> production_busy;
    std::map<const ModelVersion*, bool> shadow_busy;
    for (ShadowCall& shadow : drained) {
      const Router* router = shadow.router.get();
      auto p = production_busy.find(router);
      if (p == production_busy.end()) p = production_busy.emplace(router, ProductionBusy(*router)).first;
      auto version = ParseVersionString(shadow.call.version);
      auto pinned = version.ok() ? repository_.Acquire(shadow.call.model, *version) : version.status();
      const ModelVersion* mv = pinned.ok() ? pinned->get() : nullptr;
      if (mv && !shadow_busy.count(mv)) shadow_busy[mv] = mv->scheduler().QueueDepth() > 0;
      if (p->second || !mv || shadow_busy[mv]) {
        CountShadow(shadow, "dropped");
        continue;
      }
      RunShadow(std::move(shadow), std::move(pinned).value());
    }
    busy = !drained.empty();
    drained.clear();
  }
}

bool InferenceService::ProductionBusy(const Router& router) const {
  const Variant& p = router.spec().production;
  auto pinned = repository_.Acquire(p.model, p.version);
  return pinned.ok() && (*pinned)->scheduler().QueueDepth() > 0;
}

void InferenceService::RunShadow(ShadowCall&& shadow, std::shared_ptr<ModelVersion> mv) {
  auto call = std::move(shadow.call);
  const auto start = clock_->Now();
  const std::string prediction_id = call.id;
  InferPinned(std::move(mv), std::move(call),
              [this, shadow = std::move(shadow), start, prediction_id](const Status& s, InferReply&& reply) {
                CountShadow(shadow, s.ok() ? "ok" : "error");
                VariantStats& stats = shadow.router->Stats(shadow.variant);
                stats.requests.fetch_add(1, std::memory_order_relaxed);
                if (!s.ok()) {
                  (s.code() == StatusCode::kInvalidArgument ? stats.rejected : stats.errors)
                      .fetch_add(1, std::memory_order_relaxed);
                  return;
                }
                const auto elapsed = clock_->Now() - start;
                stats.latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
                if (prediction_log_) {
                  const DeploymentSpec& spec = shadow.router->spec();
                  LogPrediction(spec, spec.candidates[static_cast<size_t>(shadow.variant)].name, prediction_id, reply,
                                std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count(), true, "",
                                shadow.key_hash);
                }
              });
}

InferenceService::Target InferenceService::Resolve(const std::string& name, const std::string& version) const {
  if (deployments_ && version.empty()) {
    if (auto router = deployments_->Find(name)) {
      const Variant& p = router->spec().production;
      return {p.model, p.version ? std::to_string(p.version) : ""};
    }
  }
  return {name, version};
}

StatusOr<std::shared_ptr<const ModelConfig>> InferenceService::ConfigFor(const std::string& name,
                                                                         const std::string& version) const {
  if (deployments_) {
    if (auto router = deployments_->Find(name)) {
      const Variant& p = router->spec().production;
      VIGIL_ASSIGN_OR_RETURN(ModelInfo info, repository_.Find(p.model, p.version));
      return info.config;
    }
  }
  VIGIL_ASSIGN_OR_RETURN(int64_t v, ParseVersionString(version));
  VIGIL_ASSIGN_OR_RETURN(ModelInfo info, repository_.Find(name, v));
  return info.config;
}

void InferenceService::Infer(InferCall&& call, Done done) {
  if (deployments_) {
    if (auto router = deployments_->Find(call.model))
      return InferEndpoint(std::move(router), std::move(call), std::move(done));
  }
  InferModel(std::move(call), std::move(done));
}

void InferenceService::InferEndpoint(std::shared_ptr<const Router> router, InferCall&& call, Done done) {
  const DeploymentSpec& spec = router->spec();
  if (!call.version.empty()) {
    return done(InvalidArgument("'" + spec.endpoint + "' is an endpoint, which has no versions; call " + "/v2/models/" +
                                spec.endpoint + "/infer (or a model version directly)"),
                InferReply{});
  }
  RouteInput in;
  in.parameter = [&call](std::string_view name) -> std::optional<std::string> {
    auto it = call.parameters.find(std::string(name));
    if (it == call.parameters.end()) return std::nullopt;
    return std::visit(
        [](const auto& v) -> std::string {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            return v;
          } else if constexpr (std::is_same_v<T, bool>) {
            return v ? "true" : "false";
          } else {
            return fmt::format("{}", v);
          }
        },
        it->second);
  };
  in.header = call.header;
  const RouteDecision d = router->Route(in);
  const Variant& v = d.variant < 0 ? spec.production : spec.candidates[static_cast<size_t>(d.variant)];
  const std::string prediction_id = call.id.empty() ? NewPredictionId() : call.id;
  const std::string key_hash = d.keyed ? fmt::format("{:08x}", Murmur3_32(d.key, 0x9747b28c)) : "";
  std::string inputs;
  if (prediction_log_ && !call.inputs.empty() && Sampled(inputs_sample_rate_))
    inputs = CompactValues(call.inputs[0], 256);

  for (int index : d.shadows) {
    const Variant& shadow = spec.candidates[static_cast<size_t>(index)];
    ShadowCall copy{router, index, InferCall{}, key_hash};
    copy.call.model = shadow.model;
    copy.call.version = shadow.version ? std::to_string(shadow.version) : "";
    copy.call.id = prediction_id;
    copy.call.inputs = call.inputs;
    bool queued = false, wake = false;
    {
      MutexLock lock(shadow_mu_);
      if (!stopping_ && shadow_queue_.size() < kShadowQueueLimit) {
        shadow_queue_.push_back(std::move(copy));
        queued = true;
        wake = shadow_idle_;
        shadow_idle_ = false;
      }
    }
    if (wake) shadow_cv_.NotifyOne();
    if (!queued) CountShadow(copy, "dropped");
  }

  call.model = v.model;
  call.version = v.version ? std::to_string(v.version) : "";
  call.id = prediction_id;
  call.header = nullptr;
  Counter* ok = nullptr;
  Counter* failed = nullptr;
  if (metrics_) {
    ok = &metrics_->endpoint_requests().WithLabels({spec.endpoint, v.name, "ok"});
    failed = &metrics_->endpoint_requests().WithLabels({spec.endpoint, v.name, "error"});
  }
  const auto start = clock_->Now();
  InferModel(std::move(call),
             [this, done = std::move(done), router, index = d.variant, variant = v.name, prediction_id, ok, failed,
              start, key_hash, inputs = std::move(inputs)](const Status& s, InferReply&& reply) mutable {
               VariantStats& stats = router->Stats(index);
               stats.requests.fetch_add(1, std::memory_order_relaxed);
               if (!s.ok()) {
                 (s.code() == StatusCode::kInvalidArgument ? stats.rejected : stats.errors)
                     .fetch_add(1, std::memory_order_relaxed);
                 if (failed) failed->Inc();
                 return done(s, std::move(reply));
               }
               const auto elapsed = clock_->Now() - start;
               stats.latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
               if (ok) ok->Inc();
               if (prediction_log_) {
                 LogPrediction(router->spec(), variant, prediction_id, reply,
                               std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count(), false,
                               std::move(inputs), key_hash);
               }
               reply.parameters["vigil.variant"] = variant;
               reply.parameters["vigil.model"] = reply.model;
               reply.parameters["vigil.version"] = reply.version;
               reply.parameters["vigil.prediction_id"] = prediction_id;
               done(s, std::move(reply));
             });
}

void InferenceService::InferModel(InferCall&& call, Done done) {
  auto fail = [&](const Status& s) { done(s, InferReply{}); };
  auto version = ParseVersionString(call.version);
  if (!version.ok()) return fail(version.status());
  auto pinned = repository_.Acquire(call.model, *version);
  if (!pinned.ok()) return fail(pinned.status());
  InferPinned(std::move(pinned).value(), std::move(call), std::move(done));
}

void InferenceService::InferPinned(std::shared_ptr<ModelVersion> mv, InferCall&& call, Done done) {
  auto fail = [&](const Status& s) { done(s, InferReply{}); };
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
  if (timeout_us > 0) req->deadline = DeadlineAfter(clock_->Now(), Micros(timeout_us));

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
