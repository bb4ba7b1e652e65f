#include "routing/endpoint_calls.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>

#include "core/hash.h"
#include "core/thread_name.h"
#include "core/uuid.h"

namespace vigil {
namespace {

bool Sampled(double rate) {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0, 1)(rng) < rate;
}

// A call parameter as routing rules read it.
std::optional<std::string> ParameterText(const Params& params, std::string_view name) {
  auto it = params.find(std::string(name));
  if (it == params.end()) return std::nullopt;
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
}

// Counts one answer of a variant: requests, and errors or rejections.
void CountAnswer(VariantStats& stats, const Status& s) {
  stats.requests.fetch_add(1, std::memory_order_relaxed);
  if (!s.ok()) {
    (s.code() == StatusCode::kInvalidArgument ? stats.rejected : stats.errors).fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

std::string NewPredictionId() { return NewUuidV7(UnixMillis()); }

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

StatusOr<std::unique_ptr<EndpointCalls>> EndpointCalls::Create(Options options) {
  if (!options.deployments || !options.models || !options.metrics) {
    return InvalidArgument("endpoint calls need the deployments, a model runner and the serving metrics");
  }
  if (!(options.inputs_sample_rate >= 0 && options.inputs_sample_rate <= 1)) {
    return InvalidArgument("the inputs sample rate must be from 0 to 1");
  }
  return std::unique_ptr<EndpointCalls>(new EndpointCalls(options));
}

EndpointCalls::EndpointCalls(Options options)
    : options_(options), clock_(options_.clock ? *options_.clock : *SystemClock::Get()), shadow_thread_([this] {
        SetThreadName("vigil-shadow");
        // Normal priority on purpose. At nice 19 or SCHED_IDLE this thread
        // can wait tens of ms for a core while holding a lock that serving
        // threads share (the log queue, the allocator's): production p99
        // went from 2-3 ms to 75 ms in bench/endpoint.sh.
        ShadowLoop();
      }) {}

EndpointCalls::~EndpointCalls() { Stop(); }

void EndpointCalls::Stop() {
  {
    MutexLock lock(shadow_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  shadow_cv_.NotifyAll();
  if (shadow_thread_.joinable()) shadow_thread_.join();
}

void EndpointCalls::LogPrediction(const DeploymentSpec& spec, const std::string& variant,
                                  const std::string& prediction_id, const InferReply& reply, int64_t latency_us,
                                  bool shadow, std::string inputs, const std::string& key_hash) {
  PredictionRecord r;
  r.id = prediction_id;
  r.time_ms = UnixMillis();
  r.endpoint = spec.endpoint;
  r.variant = variant;
  r.model = reply.model;
  r.version = reply.version;
  r.latency_us = latency_us;
  r.shadow = shadow;
  if (!reply.outputs.empty()) r.outputs = CompactValues(reply.outputs[0], 64);
  r.inputs = std::move(inputs);
  r.key_hash = key_hash;
  options_.prediction_log->Add(std::move(r));
}

void EndpointCalls::CountShadow(const ShadowCall& shadow, const char* result) {
  const DeploymentSpec& spec = shadow.router->spec();
  options_.metrics->shadow_requests()
      .WithLabels({spec.endpoint, spec.candidates[static_cast<size_t>(shadow.variant)].name, result})
      .Inc();
}

void EndpointCalls::ShadowLoop() {
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
    // Both are judged once per round, before this round's copies join.
    std::map<const Router*, bool> production_busy;
    std::map<std::pair<std::string, int64_t>, bool> shadow_busy;
    std::vector<ShadowCall> run;
    for (ShadowCall& shadow : drained) {
      const Router* router = shadow.router.get();
      auto p = production_busy.find(router);
      if (p == production_busy.end()) {
        const Variant& production = router->spec().production;
        p = production_busy.emplace(router, options_.models->Busy(production.model, production.version).value_or(false))
                .first;
      }
      const std::pair<std::string, int64_t> target{shadow.call.model, shadow.call.version};
      auto s = shadow_busy.find(target);
      if (s == shadow_busy.end()) {
        // Not loaded counts as busy: the copy is dropped, not failed.
        s = shadow_busy.emplace(target, options_.models->Busy(target.first, target.second).value_or(true)).first;
      }
      if (p->second || s->second) {
        CountShadow(shadow, "dropped");
        continue;
      }
      run.push_back(std::move(shadow));
    }
    // Each shadow variant's copies run together and are charged to its CPU
    // budget by the time they took; a variant out of credit drops them.
    std::stable_sort(run.begin(), run.end(), [](const ShadowCall& a, const ShadowCall& b) {
      auto key = [](const ShadowCall& c) { return std::pair(reinterpret_cast<uintptr_t>(c.router.get()), c.variant); };
      return key(a) < key(b);
    });
    for (size_t begin = 0; begin < run.size();) {
      size_t end = begin + 1;
      while (end < run.size() && run[end].router == run[begin].router && run[end].variant == run[begin].variant) ++end;
      const Router& router = *run[begin].router;
      const Variant& v = router.spec().candidates[static_cast<size_t>(run[begin].variant)];
      VariantStats& stats = router.Stats(run[begin].variant);
      const double max_cpu = v.max_cpu.value_or(kDefaultShadowMaxCpu);
      const double cap = max_cpu * std::chrono::duration<double>(kShadowBudgetWindow).count();
      const SteadyTime now = clock_.Now();
      if (!stats.shadow_credit_s) {
        stats.shadow_credit_s = cap;
      } else {
        *stats.shadow_credit_s = std::min(
            cap, *stats.shadow_credit_s + max_cpu * std::chrono::duration<double>(now - stats.shadow_refilled).count());
      }
      stats.shadow_refilled = now;
      if (*stats.shadow_credit_s <= 0) {
        for (size_t i = begin; i < end; ++i) CountShadow(run[i], "over_budget");
      } else {
        options_.models->RunTogether([&] {
          for (size_t i = begin; i < end; ++i) RunShadow(std::move(run[i]));
        });
        *stats.shadow_credit_s -= std::chrono::duration<double>(clock_.Now() - now).count();
      }
      begin = end;
    }
    busy = !drained.empty();
    drained.clear();
  }
}

void EndpointCalls::RunShadow(ShadowCall&& shadow) {
  auto call = std::move(shadow.call);
  const auto start = clock_.Now();
  const std::string prediction_id = call.id;
  options_.models->Run(std::move(call), [this, shadow = std::move(shadow), start, prediction_id](const Status& s,
                                                                                                 InferReply&& reply) {
    CountShadow(shadow, s.ok() ? "ok" : "error");
    VariantStats& stats = shadow.router->Stats(shadow.variant);
    CountAnswer(stats, s);
    if (!s.ok()) return;
    const auto elapsed = clock_.Now() - start;
    stats.latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
    if (options_.prediction_log) {
      const DeploymentSpec& spec = shadow.router->spec();
      LogPrediction(spec, spec.candidates[static_cast<size_t>(shadow.variant)].name, prediction_id, reply,
                    std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count(), true, "", shadow.key_hash);
    }
  });
}

void EndpointCalls::Infer(std::shared_ptr<const Router> router, InferCall&& call, Done done) {
  const DeploymentSpec& spec = router->spec();
  if (call.version != 0) {
    return done(InvalidArgument("'" + spec.endpoint + "' is an endpoint, which has no versions; call " + "/v2/models/" +
                                spec.endpoint + "/infer (or a model version directly)"),
                InferReply{});
  }
  RouteInput in;
  in.parameter = [&call](std::string_view name) { return ParameterText(call.parameters, name); };
  in.header = call.header;
  const RouteDecision d = router->Route(in);
  const Variant& v = d.variant < 0 ? spec.production : spec.candidates[static_cast<size_t>(d.variant)];
  const std::string prediction_id = call.id.empty() ? NewPredictionId() : call.id;
  const std::string key_hash = d.keyed ? fmt::format("{:08x}", Murmur3_32(d.key, 0x9747b28c)) : "";
  std::string inputs;
  if (options_.prediction_log && !call.inputs.empty() && Sampled(options_.inputs_sample_rate))
    inputs = CompactValues(call.inputs[0], 256);

  for (int index : d.shadows) {
    const Variant& shadow = spec.candidates[static_cast<size_t>(index)];
    ShadowCall copy{router, index, InferCall{}, key_hash};
    copy.call.model = shadow.model;
    copy.call.version = shadow.version;
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
  call.version = v.version;
  call.id = prediction_id;
  call.header = nullptr;
  Counter* ok = &options_.metrics->endpoint_requests().WithLabels({spec.endpoint, v.name, "ok"});
  Counter* failed = &options_.metrics->endpoint_requests().WithLabels({spec.endpoint, v.name, "error"});
  const auto start = clock_.Now();
  options_.models->Run(std::move(call), [this, done = std::move(done), router, index = d.variant, variant = v.name,
                                         prediction_id, ok, failed, start, key_hash,
                                         inputs = std::move(inputs)](const Status& s, InferReply&& reply) mutable {
    VariantStats& stats = router->Stats(index);
    CountAnswer(stats, s);
    if (!s.ok()) {
      failed->Inc();
      return done(s, std::move(reply));
    }
    const auto elapsed = clock_.Now() - start;
    stats.latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
    ok->Inc();
    if (options_.prediction_log) {
      LogPrediction(router->spec(), variant, prediction_id, reply,
                    std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count(), false, std::move(inputs),
                    key_hash);
    }
    reply.parameters["vigil.variant"] = variant;
    reply.parameters["vigil.model"] = reply.model;
    reply.parameters["vigil.version"] = std::to_string(reply.version);
    reply.parameters["vigil.prediction_id"] = prediction_id;
    done(s, std::move(reply));
  });
}

}  // namespace vigil
