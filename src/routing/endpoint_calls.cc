#include "routing/endpoint_calls.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>

#include "core/hash.h"
#include "core/logging.h"
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

// A non-negative integer call parameter (`timeout`, `priority`), else 0;
// anything else is the model half's to reject.
int64_t IntParameter(const Params& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || !std::holds_alternative<int64_t>(it->second)) return 0;
  return std::max<int64_t>(std::get<int64_t>(it->second), 0);
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
                                  bool shadow, std::string inputs, const std::string& key_hash, int rung) {
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
  r.rung = rung;
  options_.prediction_log->Add(std::move(r));
}

void EndpointCalls::NoteRung(const Router& router, int rung, SteadyTime now) {
  OverloadLadder& ladder = *router.ladder();
  const std::string& endpoint = router.spec().endpoint;
  options_.metrics->endpoint_rung_requests().WithLabels({endpoint, std::string(RungName(rung))}).Inc();
  if (auto change = ladder.Record(rung, now)) NoteChange(endpoint, *change);
}

void EndpointCalls::NoteChange(const std::string& endpoint, const OverloadLadder::Change& change) {
  options_.metrics->endpoint_rung().WithLabels({endpoint}).Set(change.to);
  spdlog::warn("event=endpoint_rung_changed endpoint={} from={} to={} rung={}", LogValue(endpoint), change.from,
               change.to, RungName(change.to));
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
      // Held here: the copies below take theirs along, and their answers may
      // let go of the last other reference (a spec change) before the charge.
      const std::shared_ptr<const Router> router = run[begin].router;
      const Variant& v = router->spec().candidates[static_cast<size_t>(run[begin].variant)];
      VariantStats& stats = router->Stats(run[begin].variant);
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
      // In credit: as many copies as fit a slice at the recent cost per copy (one at least).
      size_t take = 0;
      if (*stats.shadow_credit_s > 0) {
        // Slices grow with the budget, so a large max_cpu is not capped by them.
        const double slice_s =
            std::chrono::duration<double>(kShadowSlice).count() * std::max(1.0, max_cpu / kDefaultShadowMaxCpu);
        take = stats.shadow_copy_s > 0 ? std::max<size_t>(1, static_cast<size_t>(slice_s / stats.shadow_copy_s))
                                       : size_t{1};  // the first copy measures the cost
        take = std::min(take, end - begin);
      }
      for (size_t i = begin + take; i < end; ++i) CountShadow(run[i], "over_budget");
      if (take > 0) {
        options_.models->RunTogether([&] {
          for (size_t i = begin; i < begin + take; ++i) RunShadow(std::move(run[i]));
        });
        const double spent = std::chrono::duration<double>(clock_.Now() - now).count();
        *stats.shadow_credit_s -= spent;
        const double per_copy = spent / static_cast<double>(take);
        stats.shadow_copy_s =
            stats.shadow_copy_s > 0 ? stats.shadow_copy_s + (per_copy - stats.shadow_copy_s) / 8 : per_copy;
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

  // The ladder: the request's deadline (its own, else slo_ms) against the
  // predicted wait of each rung; shadows are the first thing dropped.
  OverloadLadder* ladder = router->ladder();
  int rung = kRungFull;
  const Variant* answering = &v;
  if (ladder) {
    const OverloadPolicy& o = ladder->policy();
    const SteadyTime now = clock_.Now();
    if (auto change = ladder->Settle(now)) NoteChange(spec.endpoint, *change);
    SteadyTime deadline = call.deadline.value_or(SteadyTime::max());
    if (const int64_t timeout_us = IntParameter(call.parameters, "timeout"); timeout_us > 0)
      deadline = std::min(deadline, DeadlineAfter(now, Micros(timeout_us)));
    if (deadline == SteadyTime::max()) {
      deadline =
          now + std::chrono::duration_cast<SteadyTime::duration>(std::chrono::duration<double, std::milli>(o.slo_ms));
      call.deadline = deadline;
    }
    const auto priority =
        static_cast<uint32_t>(std::min<int64_t>(IntParameter(call.parameters, "priority"), UINT32_MAX));
    // Rows as a batching model counts them (its scheduler bounds the figure).
    const int64_t rows = call.inputs.empty() || call.inputs[0].shape.empty() ? 1 : call.inputs[0].shape[0];
    const Micros budget = std::chrono::duration_cast<Micros>(deadline - now);
    rung = ChooseRung(
        budget, options_.models->Predict(v.model, v.version, priority, rows),
        o.fallback ? options_.models->Predict(o.fallback->model, o.fallback->version, priority, rows) : std::nullopt);
    if (rung == kRungShed) {
      NoteRung(*router, kRungShed, now);
      InferReply shed;
      shed.parameters["vigil.rung"] = int64_t{kRungShed};
      shed.parameters["vigil.retry_after_s"] = o.shed_retry_after_s;
      return done(ResourceExhausted(fmt::format(
                      "endpoint '{}': no rung can answer within the request's {:.1f} ms (variant '{}'{}): shed; "
                      "retry after {} s",
                      spec.endpoint, static_cast<double>(budget.count()) / 1000, v.name,
                      o.fallback ? ", fallback '" + o.fallback->model + "'" : std::string(", no fallback"),
                      o.shed_retry_after_s)),
                  std::move(shed));
    }
    if (rung == kRungFallback) answering = &*o.fallback;
  }
  const bool drop_shadows = ladder && (rung != kRungFull || ladder->rung() != kRungFull);

  for (int index : d.shadows) {
    if (drop_shadows) {
      CountShadow(ShadowCall{router, index, InferCall{}, ""}, "dropped");
      continue;
    }
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

  call.model = answering->model;
  call.version = answering->version;
  call.id = prediction_id;
  call.header = nullptr;
  Counter* ok = &options_.metrics->endpoint_requests().WithLabels({spec.endpoint, v.name, "ok"});
  Counter* failed = &options_.metrics->endpoint_requests().WithLabels({spec.endpoint, v.name, "error"});
  const auto start = clock_.Now();
  options_.models->Run(std::move(call), [this, done = std::move(done), router, index = d.variant, variant = v.name,
                                         prediction_id, ok, failed, start, key_hash, rung,
                                         inputs = std::move(inputs)](const Status& s, InferReply&& reply) mutable {
    // An ensemble that left members out answered a rung down.
    const int answered_at =
        rung == kRungFull && reply.parameters.count("vigil.members_left_out") ? int{kRungMembersDropped} : rung;
    if (router->ladder()) NoteRung(*router, s.ok() ? answered_at : rung, clock_.Now());
    // Degraded answers stay out of the variant's figures (health, the
    // rollout's guardrails): a spike must not bias an experiment.
    VariantStats& stats = router->Stats(index);
    if (answered_at == kRungFull) CountAnswer(stats, s);
    if (!s.ok()) {
      failed->Inc();
      return done(s, std::move(reply));
    }
    const auto elapsed = clock_.Now() - start;
    if (answered_at == kRungFull)
      stats.latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
    ok->Inc();
    if (options_.prediction_log) {
      LogPrediction(router->spec(), variant, prediction_id, reply,
                    std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count(), false, std::move(inputs),
                    key_hash, answered_at);
    }
    if (router->ladder()) reply.parameters["vigil.rung"] = int64_t{answered_at};
    reply.parameters["vigil.variant"] = variant;
    reply.parameters["vigil.model"] = reply.model;
    reply.parameters["vigil.version"] = std::to_string(reply.version);
    reply.parameters["vigil.prediction_id"] = prediction_id;
    done(s, std::move(reply));
  });
}

}  // namespace vigil
