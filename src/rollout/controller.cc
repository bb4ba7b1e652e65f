#include "rollout/controller.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/logging.h"
#include "core/thread_name.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"

namespace vigil {

std::string_view RolloutPhaseName(RolloutPhase phase) {
  switch (phase) {
    case RolloutPhase::kProgressing:
      return "Progressing";
    case RolloutPhase::kPaused:
      return "Paused";
    case RolloutPhase::kSuccessful:
      return "Successful";
    case RolloutPhase::kFailed:
      return "Failed";
    case RolloutPhase::kInconclusive:
      return "Inconclusive";
    case RolloutPhase::kError:
      return "Error";
  }
  return "?";
}

std::optional<RolloutCommand> ParseRolloutCommand(std::string_view name) {
  if (name == "pause") return RolloutCommand::kPause;
  if (name == "resume") return RolloutCommand::kResume;
  if (name == "promote") return RolloutCommand::kPromote;
  if (name == "promote-full") return RolloutCommand::kPromoteFull;
  if (name == "abort") return RolloutCommand::kAbort;
  if (name == "retry") return RolloutCommand::kRetry;
  return std::nullopt;
}

namespace {

constexpr const char* kActor = "rollout-controller";

bool Ended(RolloutPhase p) {
  return p == RolloutPhase::kSuccessful || p == RolloutPhase::kFailed || p == RolloutPhase::kInconclusive;
}

// Where the spec has it now: an index into StepShares(), -1 when it takes no traffic.
int SpecStep(const Variant& c) {
  if (c.mode == VariantMode::kCanary) return c.step;
  return c.share > 0 ? 0 : -1;
}

// A canary to one of its steps.
RolloutAction MoveTo(const RolloutState& s, int step) {
  return {.kind = RolloutAction::Kind::kSetWeight, .candidate = s.candidate, .step = step};
}

std::optional<RolloutPhase> PhaseByName(std::string_view name) {
  for (RolloutPhase p : kRolloutPhases) {
    if (RolloutPhaseName(p) == name) return p;
  }
  return std::nullopt;
}

void WriteAction(JsonWriter& w, const RolloutAction& a) {
  w.StartObject();
  w.Field("kind", RolloutActionName(a.kind));
  w.Field("candidate", a.candidate);
  if (a.step) w.Field("step", *a.step);
  if (a.share) w.Field("share", *a.share);
  w.EndObject();
}

void WriteLook(JsonWriter& w, const SequentialLook& l) {
  w.StartObject();
  w.Field("estimate", l.estimate);
  w.Field("variance", l.variance);
  w.Field("tau2", l.tau2);
  w.Field("theta0", l.theta0);
  w.Field("lambda", l.lambda);
  w.Field("p", l.p);
  w.IntervalField("ci", l.ci_low, l.ci_high);
  w.EndObject();
}

void WriteArm(JsonWriter& w, const ArmData& a, double value, double variance) {
  w.StartObject();
  w.Field("variant", a.variant);
  w.Field("share", a.share);
  w.Field("units", a.metric.units);
  w.Field("scored", a.metric.n);
  w.Field("mean", value);
  w.Field("variance", variance);
  w.Field("naive_variance", a.metric.NaiveVariance());
  w.Field("predictions", a.predictions);
  w.Field("awaiting_feedback", a.awaiting_feedback);
  w.Field("without_feedback", a.without_feedback);
  w.Field("requests", a.requests);
  w.Field("errors", a.errors);
  w.Field("latency_p99_ms", a.latency_p99_ms.value);
  w.Field("latencies", a.latency_p99_ms.count);
  w.EndObject();
}

void WriteGuardrail(JsonWriter& w, const GuardrailResult& g) {
  w.StartObject();
  w.Field("name", g.name);
  w.Field("margin", g.margin);
  w.Field("production", g.production);
  w.Field("candidate", g.candidate);
  w.Field("state", GuardrailStateName(g.state));
  if (g.look) {
    w.Key("test");
    WriteLook(w, *g.look);
  }
  w.EndObject();
}

std::string EvidenceJson(const RolloutState& s, const StepData& d, const Analysis& a) {
  JsonWriter w;
  w.StartObject();
  w.Field("verdict", VerdictName(a.verdict));
  w.Field("reason", a.reason);
  w.Field("step", s.step);
  w.Field("steps", s.steps);
  w.Field("share", s.share);
  w.Field("elapsed_s", d.elapsed_s);
  if (d.label_cutoff_s) w.Field("label_cutoff_s", *d.label_cutoff_s);
  if (d.truncated) w.Field("truncated", true);
  w.Key("arms");
  w.StartArray();
  WriteArm(w, d.production, a.production_value, a.production_variance);
  WriteArm(w, d.candidate, a.candidate_value, a.candidate_variance);
  w.EndArray();
  if (a.srm) {
    w.Key("srm");
    w.StartObject();
    w.Field("chi2", a.srm->chi2);
    w.Field("chi2_p", a.srm->p);
    w.Field("p", a.srm_sequential_p);
    w.EndObject();
  }
  w.Key("guardrails");
  w.StartArray();
  for (const auto& g : a.guardrails) WriteGuardrail(w, g);
  w.EndArray();
  if (a.primary) {
    w.Key("primary");
    WriteLook(w, *a.primary);
  }
  w.EndObject();
  return w.Take();
}

std::string ShadowEvidenceJson(const RolloutState& s, const ShadowStageData& d, const Analysis& a) {
  const ShadowComparison& c = d.comparison;
  JsonWriter w;
  w.StartObject();
  w.Field("verdict", VerdictName(a.verdict));
  w.Field("reason", a.reason);
  w.Field("stage", "shadow");
  w.Field("step", s.step);
  w.Field("elapsed_s", d.elapsed_s);
  w.Key("shadow");
  w.StartObject();
  w.Field("pairs", c.pairs);
  w.Field("compared", c.compared);
  w.Field("disagreements", c.disagreements);
  w.Field("disagreement_rate", c.disagreement_rate);
  w.IntervalField("disagreement_ci95", c.disagreement_lower, c.disagreement_upper);
  w.Field("mean_abs_diff", c.mean_abs_diff);
  w.Field("production_p99_ms", c.production_p99_ms.value);
  w.Field("shadow_p99_ms", c.shadow_p99_ms.value);
  w.Field("labeled", c.labeled);
  w.Field("production_accuracy", c.production_accuracy);
  w.Field("shadow_accuracy", c.shadow_accuracy);
  w.Field("copies", d.copies);
  w.Field("copy_errors", d.copy_errors);
  w.Field("production_requests", d.production_requests);
  w.Field("production_errors", d.production_errors);
  w.EndObject();
  w.Key("guardrails");
  w.StartArray();
  for (const auto& g : a.guardrails) WriteGuardrail(w, g);
  w.EndArray();
  w.EndObject();
  return w.Take();
}

}  // namespace

std::string RolloutStateJson(const RolloutState& s) {
  JsonWriter w;
  w.StartObject();
  w.Field("endpoint", s.endpoint);
  w.Field("candidate", s.candidate);
  w.Field("model", s.model);
  w.Field("version", s.version);
  w.Field("phase", RolloutPhaseName(s.phase));
  w.Field("step", s.step);
  w.Field("steps", s.steps);
  w.Field("share", s.share);
  w.Field("shadow_stage", s.shadow_stage);
  w.Field("started_ms", s.started_ms);
  w.Field("step_started_ms", s.step_started_ms);
  w.Field("updated_ms", s.updated_ms);
  w.Field("last_analysis_ms", s.last_analysis_ms);
  w.Field("analyses", s.analyses);
  w.Field("errors_in_a_row", s.errors_in_a_row);
  w.Field("counts_generation", s.counts_generation);
  if (s.label_cutoff_s) w.Field("label_cutoff_s", *s.label_cutoff_s);
  w.Key("tests");
  w.StartObject();
  for (const auto& [name, m] : s.memory) {
    w.Key(name);
    w.StartObject();
    w.Field("tau2", m.tau2);
    w.Field("p", m.p);
    w.EndObject();
  }
  w.EndObject();
  w.Key("counts");
  w.StartObject();
  for (const auto& [arm, c] : s.counts) {
    w.Key(arm);
    w.StartObject();
    w.Field("seen_requests", c.seen_requests);
    w.Field("seen_errors", c.seen_errors);
    w.Field("requests", c.requests);
    w.Field("errors", c.errors);
    w.EndObject();
  }
  w.EndObject();
  w.Field("reason", s.reason);
  w.Field("last_verdict", s.last_verdict);
  if (s.pending) {
    w.Key("pending");
    WriteAction(w, *s.pending);
    w.Field("pending_detail", s.pending_detail);
  }
  w.EndObject();
  return w.Take();
}

StatusOr<RolloutState> ParseRolloutState(const std::string& json) {
  rapidjson::Document d;
  VIGIL_RETURN_IF_ERROR(ParseJson(json, d));
  if (!d.IsObject()) return InvalidArgument("rollout state: not a JSON object");
  RolloutState s;
  auto str = [&](const char* k) -> std::string {
    auto it = d.FindMember(k);
    return it != d.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
  };
  auto num = [](const rapidjson::Value& o, const char* k) -> double {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : 0;
  };
  auto integer = [](const rapidjson::Value& o, const char* k) -> int64_t {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
  };
  auto count = [](const rapidjson::Value& o, const char* k) -> uint64_t {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsUint64() ? it->value.GetUint64() : 0;
  };
  s.endpoint = str("endpoint");
  s.candidate = str("candidate");
  s.model = str("model");
  s.version = integer(d, "version");
  const auto phase = PhaseByName(str("phase"));
  if (!phase) return InvalidArgument("rollout state: unknown phase '" + str("phase") + "'");
  s.phase = *phase;
  s.step = static_cast<int>(integer(d, "step"));
  s.steps = static_cast<int>(integer(d, "steps"));
  s.share = num(d, "share");
  if (auto st = d.FindMember("shadow_stage"); st != d.MemberEnd() && st->value.IsBool()) {
    s.shadow_stage = st->value.GetBool();
  }
  s.started_ms = integer(d, "started_ms");
  s.step_started_ms = integer(d, "step_started_ms");
  s.updated_ms = integer(d, "updated_ms");
  s.last_analysis_ms = integer(d, "last_analysis_ms");
  s.analyses = integer(d, "analyses");
  s.errors_in_a_row = integer(d, "errors_in_a_row");
  s.counts_generation = integer(d, "counts_generation");
  if (auto c = d.FindMember("label_cutoff_s"); c != d.MemberEnd() && c->value.IsNumber()) {
    s.label_cutoff_s = c->value.GetDouble();
  }
  if (auto t = d.FindMember("tests"); t != d.MemberEnd() && t->value.IsObject()) {
    for (const auto& m : t->value.GetObject()) {
      if (!m.value.IsObject()) continue;
      s.memory[m.name.GetString()] = {.tau2 = num(m.value, "tau2"), .p = num(m.value, "p")};
    }
  }
  if (auto c = d.FindMember("counts"); c != d.MemberEnd() && c->value.IsObject()) {
    for (const auto& m : c->value.GetObject()) {
      if (!m.value.IsObject()) continue;
      s.counts[m.name.GetString()] = {.seen_requests = count(m.value, "seen_requests"),
                                      .seen_errors = count(m.value, "seen_errors"),
                                      .requests = count(m.value, "requests"),
                                      .errors = count(m.value, "errors")};
    }
  }
  s.reason = str("reason");
  s.last_verdict = str("last_verdict");
  if (auto p = d.FindMember("pending"); p != d.MemberEnd() && p->value.IsObject()) {
    const rapidjson::Value& a = p->value;
    RolloutAction action;
    const auto kind = a.FindMember("kind");
    if (kind == a.MemberEnd() || !kind->value.IsString()) return InvalidArgument("rollout state: pending without kind");
    const std::string k = kind->value.GetString();
    bool known = false;
    for (auto kk : {RolloutAction::Kind::kSetWeight, RolloutAction::Kind::kPromote, RolloutAction::Kind::kRollback,
                    RolloutAction::Kind::kPause, RolloutAction::Kind::kResume, RolloutAction::Kind::kMirror}) {
      if (RolloutActionName(kk) == k) {
        action.kind = kk;
        known = true;
      }
    }
    if (!known) return InvalidArgument("rollout state: unknown pending action '" + k + "'");
    if (auto c = a.FindMember("candidate"); c != a.MemberEnd() && c->value.IsString()) {
      action.candidate = c->value.GetString();
    }
    if (auto st = a.FindMember("step"); st != a.MemberEnd() && st->value.IsInt()) action.step = st->value.GetInt();
    if (auto sh = a.FindMember("share"); sh != a.MemberEnd() && sh->value.IsNumber()) {
      action.share = sh->value.GetDouble();
    }
    s.pending = action;
    s.pending_detail = str("pending_detail");
  }
  return s;
}

StatusOr<std::unique_ptr<RolloutController>> RolloutController::Create(Options options) {
  if (!options.world) return InvalidArgument("rollout controller: no world");
  if (!options.store) return InvalidArgument("rollout controller: no store");
  std::unique_ptr<RolloutController> c(new RolloutController(options));
  auto stored = options.store->LoadRollouts();
  if (!stored.ok()) return stored.status();
  {
    MutexLock lock(c->mu_);
    for (const auto& r : *stored) {
      auto state = ParseRolloutState(r.state);
      if (!state.ok()) {
        spdlog::error("event=rollout_state_unreadable endpoint={} error={}", r.endpoint, state.status().message());
        continue;
      }
      c->states_[r.endpoint] = std::move(*state);
      c->written_state_[r.endpoint] = r.state;
      c->Publish(c->states_[r.endpoint], c->clock_.NowMillis());
    }
  }
  if (options.background) c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  return c;
}

RolloutController::RolloutController(Options o)
    : world_(*o.world),
      store_(*o.store),
      clock_(o.clock ? *o.clock : *WallClock::System()),
      alerts_(o.alerts),
      leadership_(o.leadership),
      settle_ms_(o.settle.count()) {
  if (o.registry) {
    phase_gauge_ = &o.registry->AddGauge("vigil_rollout_phase", "1 for the phase each endpoint's rollout is in",
                                         {"endpoint", "phase"});
    step_gauge_ = &o.registry->AddGauge(
        "vigil_rollout_step", "The step each endpoint's rollout is at, from 1; 0 when rolled back", {"endpoint"});
    analyses_total_ =
        &o.registry->AddCounter("vigil_rollout_analyses_total", "Rollout analyses by verdict", {"endpoint", "verdict"});
  }
}

RolloutController::~RolloutController() { Stop(); }

void RolloutController::Stop() {
  {
    MutexLock lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void RolloutController::Loop() {
  SetThreadName("vigil-rollout");
  MutexLock lock(stop_mu_);
  while (!stopping_) {
    lock.Unlock();
    Tick(clock_.NowMillis());
    lock.Lock();
    if (stopping_) break;
    stop_cv_.WaitFor(lock, std::chrono::seconds(1));
  }
}

void RolloutController::Reload(bool all, int64_t now_ms) {
  auto stored = store_.LoadRollouts();
  if (!stored.ok()) {
    spdlog::warn("event=rollout_reload_failed error={}", LogValue(stored.status().message()));
    return;
  }
  for (const auto& r : *stored) {
    if (!all && r.updated_ms <= written_ms_[r.endpoint]) continue;
    auto state = ParseRolloutState(r.state);
    if (!state.ok()) continue;
    states_[r.endpoint] = std::move(*state);
    written_ms_[r.endpoint] = r.updated_ms;
    written_state_[r.endpoint] = r.state;
    Publish(states_[r.endpoint], now_ms);
  }
}

void RolloutController::Tick(int64_t now_ms) {
  std::vector<RolloutWorld::Endpoint> endpoints = world_.Endpoints();
  MutexLock lock(mu_);
  if (leadership_) {
    if (!leadership_->IsLeader()) {
      led_ = false;
      Reload(/*all=*/true, now_ms);  // a follower shows what the leader decided
      return;
    }
    Reload(/*all=*/!led_, now_ms);  // newly elected: carry on from the store
    led_ = true;
    deciding_epoch_ = leadership_->Epoch();
  }
  for (const auto& e : endpoints) {
    const DeploymentSpec& spec = *e.spec;
    auto it = states_.find(spec.endpoint);
    if (!spec.rollout) {
      if (it != states_.end() && !Ended(it->second.phase)) {
        RolloutState& s = it->second;
        const bool promoted = spec.production.model == s.model && spec.production.version == s.version;
        s.phase = promoted ? RolloutPhase::kSuccessful : RolloutPhase::kInconclusive;
        s.reason = promoted ? "promoted to production" : "the spec no longer has a rollout block";
        (void)Persist(s);
        Publish(s, now_ms);
      }
      continue;
    }
    if (it == states_.end()) it = states_.emplace(spec.endpoint, RolloutState{}).first;
    RolloutState& state = it->second;
    if (Reconcile(e, state, now_ms)) Analyse(e, state, now_ms);
    Publish(state, now_ms);
  }
}

void RolloutController::StartStep(RolloutState& s, int step, double share, int64_t now_ms) {
  s.step = step;
  s.share = share;
  s.step_started_ms = now_ms;
  s.last_analysis_ms = now_ms;
  s.analyses = 0;
  s.errors_in_a_row = 0;
  s.memory.clear();
  for (auto& [_, c] : s.counts) c.requests = c.errors = 0;
}

bool RolloutController::Reconcile(const RolloutWorld::Endpoint& e, RolloutState& s, int64_t now_ms) {
  const DeploymentSpec& spec = *e.spec;
  const RolloutPolicy& policy = *spec.rollout;
  const Variant* c = spec.Candidate(policy.candidate);
  if (!c) return false;  // validation keeps this from happening
  if (s.endpoint.empty() || s.candidate != c->name || s.model != c->model || s.version != c->version) {
    // A new rollout (or another candidate): starts from where the spec has it.
    s = RolloutState{};
    s.endpoint = spec.endpoint;
    s.candidate = c->name;
    s.model = c->model;
    s.version = c->version;
    s.started_ms = now_ms;
    const std::vector<double> steps = c->StepShares();
    s.steps = static_cast<int>(steps.size());
    const int at = SpecStep(*c);
    spdlog::info("event=rollout_started endpoint={} candidate={} steps={}", s.endpoint, s.candidate, s.steps);
    if (at >= 0) {
      StartStep(s, at, steps[static_cast<size_t>(at)], now_ms);
      s.reason = "started at step " + std::to_string(at + 1);
      (void)Persist(s);
    } else if (c->mode == VariantMode::kCanary && policy.shadow_first) {
      StartShadowStage(s, policy.shadow_first->share, "started", now_ms);
    } else if (c->mode == VariantMode::kCanary) {
      StartStep(s, 0, steps[0], now_ms);
      s.reason = "started: to the first step";
      if (spec.paused) {
        s.phase = RolloutPhase::kPaused;
        s.reason = "paused before its first step";
        (void)Persist(s);
        return false;
      }
      (void)Act(s, MoveTo(s, 0), kActor, "rollout started");
    } else {
      s.phase = RolloutPhase::kPaused;
      s.reason = "the ab candidate has share 0: give it a share to start the rollout";
      (void)Persist(s);
      return false;
    }
    return false;
  }
  if (s.pending) {
    // A decision persisted before a restart (or a failed apply): finish it.
    const RolloutAction a = *s.pending;
    const Status applied = world_.Apply(spec.endpoint, a, kActor, s.pending_detail);
    if (!applied.ok() && applied.code() != StatusCode::kNotFound) {
      spdlog::warn("event=rollout_pending_not_applied endpoint={} action={} error={}", s.endpoint,
                   RolloutActionName(a.kind), applied.message());
    }
    s.pending.reset();
    (void)Persist(s);
    return false;  // the spec changes with it; the next tick sees the new one
  }
  if (!s.shadow_stage && c->mirror > 0) {
    // The shadow stage is over (or was cut short): no more copies.
    (void)Act(s, {.kind = RolloutAction::Kind::kMirror, .candidate = s.candidate, .share = 0.0}, kActor,
              "the shadow stage is over");
    return false;
  }
  if (Ended(s.phase)) return false;
  if (spec.paused || spec.kill_switch) {
    if (s.phase != RolloutPhase::kPaused) {
      s.phase = RolloutPhase::kPaused;
      s.reason = spec.paused ? "the endpoint is paused" : "the kill switch is on: production answers everything";
      (void)Persist(s);
    }
    return false;
  }
  if (s.phase == RolloutPhase::kPaused) {
    s.phase = RolloutPhase::kProgressing;
    s.reason = "resumed";
    (void)Persist(s);
  }
  const int at = SpecStep(*c);
  if (at != s.step) {
    if (at < 0) {
      s.phase = RolloutPhase::kFailed;
      s.reason = "rolled back outside the controller";
      (void)Persist(s);
      return false;
    }
    const std::vector<double> steps = c->StepShares();
    s.shadow_stage = false;
    StartStep(s, at, steps[static_cast<size_t>(at)], now_ms);
    s.reason = "moved to step " + std::to_string(at + 1) + " outside the controller: the analysis starts again";
    (void)Persist(s);
    return false;
  }
  return now_ms - s.last_analysis_ms >= policy.interval_s * 1000;
}

void RolloutController::Analyse(const RolloutWorld::Endpoint& e, RolloutState& s, int64_t now_ms) {
  const DeploymentSpec& spec = *e.spec;
  const RolloutPolicy& policy = *spec.rollout;
  const Variant& c = *spec.Candidate(policy.candidate);
  if (s.shadow_stage) return AnalyseShadowStage(e, s, now_ms);
  StepData d = world_.Read(spec, policy, s.step_started_ms + settle_ms_, now_ms, s.label_cutoff_s);
  if (d.label_cutoff_s && (!s.label_cutoff_s || *s.label_cutoff_s < *d.label_cutoff_s)) {
    s.label_cutoff_s = d.label_cutoff_s;
  }
  d.production.variant = "production";
  d.candidate.variant = c.name;
  d.production.share = spec.ProductionShare();
  d.candidate.share = c.CurrentShare();
  d.elapsed_s = (now_ms - s.step_started_ms) / 1000;
  d.last_step = s.step + 1 >= s.steps;
  const auto [production, candidate] = CountArms(e, s, c.name);
  d.production.requests = production.requests;
  d.production.errors = production.errors;
  d.candidate.requests = candidate.requests;
  d.candidate.errors = candidate.errors;
  const Analysis a = Analyze(policy, d, s.memory);
  Record(s, a, EvidenceJson(s, d, a), now_ms);

  const std::string detail = fmt::format("{} at step {}/{}: {}", s.last_verdict, s.step + 1, s.steps, a.reason);
  const RolloutAction rollback{.kind = RolloutAction::Kind::kRollback, .candidate = s.candidate};
  switch (a.verdict) {
    case Verdict::kRunning:
      s.errors_in_a_row = 0;
      s.phase = RolloutPhase::kProgressing;
      (void)Persist(s);
      return;
    case Verdict::kError:
      if (++s.errors_in_a_row < policy.max_errors) {
        s.phase = RolloutPhase::kError;
        (void)Persist(s);
        return;
      }
      s.phase = RolloutPhase::kInconclusive;
      s.reason = fmt::format("{} analyses in a row without data ({})", s.errors_in_a_row, a.reason);
      if (policy.rollback_on_inconclusive) return (void)Act(s, rollback, kActor, detail);
      (void)Persist(s);
      return;
    case Verdict::kFailed:
      s.phase = RolloutPhase::kFailed;
      return (void)Act(s, rollback, kActor, detail);
    case Verdict::kInconclusive:
      s.phase = RolloutPhase::kInconclusive;
      if (policy.rollback_on_inconclusive) return (void)Act(s, rollback, kActor, detail);
      (void)Persist(s);
      return;
    case Verdict::kSuccessful:
      break;
  }
  if (s.step + 1 < s.steps) {
    const int next = s.step + 1;
    const double share = c.StepShares()[static_cast<size_t>(next)];
    const RolloutAction move = MoveTo(s, next);
    StartStep(s, next, share, now_ms);
    s.phase = RolloutPhase::kProgressing;
    (void)Act(s, move, kActor, detail);
    return;
  }
  s.phase = RolloutPhase::kSuccessful;
  if (!policy.promote_on_success) {
    s.reason = "held at the last step (on_success: hold): " + a.reason;
    (void)Persist(s);
    return;
  }
  (void)Act(s, {.kind = RolloutAction::Kind::kPromote, .candidate = s.candidate}, kActor, detail);
}

std::pair<RolloutWorld::Counts, RolloutWorld::Counts> RolloutController::CountArms(const RolloutWorld::Endpoint& e,
                                                                                   RolloutState& s,
                                                                                   const std::string& candidate) {
  // The frontend's counters restart with every spec change and with the
  // process; what the step has seen is summed across those restarts.
  const bool restarted = e.generation != s.counts_generation;
  s.counts_generation = e.generation;
  RolloutWorld::Counts out[2];
  int i = 0;
  for (auto [role, variant] : {std::pair{"production", std::string("production")}, {"candidate", candidate}}) {
    RolloutState::Count& k = s.counts[role];
    auto it = e.counts.find(variant);
    const RolloutWorld::Counts now = it == e.counts.end() ? RolloutWorld::Counts{} : it->second;
    if (restarted || now.requests < k.seen_requests || now.errors < k.seen_errors) {
      k.seen_requests = k.seen_errors = 0;
    }
    k.requests += now.requests - k.seen_requests;
    k.errors += now.errors - k.seen_errors;
    k.seen_requests = now.requests;
    k.seen_errors = now.errors;
    out[i++] = {.requests = k.requests, .errors = k.errors};
  }
  return {out[0], out[1]};
}

void RolloutController::Record(RolloutState& s, const Analysis& a, const std::string& evidence, int64_t now_ms) {
  s.last_analysis_ms = now_ms;
  ++s.analyses;
  s.last_verdict = std::string(VerdictName(a.verdict));
  s.reason = a.reason;
  const Status stored = store_.AppendRolloutAnalysis({.time_ms = now_ms,
                                                      .endpoint = s.endpoint,
                                                      .candidate = s.candidate,
                                                      .step = s.step,
                                                      .verdict = s.last_verdict,
                                                      .evidence = evidence,
                                                      .epoch = deciding_epoch_});
  if (!stored.ok())
    spdlog::error("event=rollout_analysis_not_stored endpoint={} error={}", s.endpoint, stored.message());
  if (analyses_total_) analyses_total_->WithLabels({s.endpoint, s.last_verdict}).Inc();
  spdlog::info("event=rollout_analysis endpoint={} candidate={} step={}/{} verdict={} reason=\"{}\"", s.endpoint,
               s.candidate, s.step + 1, s.steps, s.last_verdict, a.reason);
}

void RolloutController::StartShadowStage(RolloutState& s, double share, const std::string& why, int64_t now_ms) {
  s.shadow_stage = true;
  StartStep(s, -1, 0, now_ms);
  s.phase = RolloutPhase::kProgressing;
  s.reason = fmt::format("{}: the shadow stage, copies of {}% of the requests", why, share);
  (void)Act(s, {.kind = RolloutAction::Kind::kMirror, .candidate = s.candidate, .share = share}, kActor, s.reason);
}

void RolloutController::AnalyseShadowStage(const RolloutWorld::Endpoint& e, RolloutState& s, int64_t now_ms) {
  const DeploymentSpec& spec = *e.spec;
  const RolloutPolicy& policy = *spec.rollout;
  const Variant& c = *spec.Candidate(policy.candidate);
  ShadowStageData d;
  auto comparison = world_.CompareShadow(spec, c.name, s.step_started_ms + settle_ms_, now_ms);
  if (comparison.ok()) {
    d.comparison = std::move(*comparison);
  } else {
    d.missing = comparison.status().message();
  }
  const auto [production, copies] = CountArms(e, s, c.name);
  d.production_requests = production.requests;
  d.production_errors = production.errors;
  d.copies = copies.requests;
  d.copy_errors = copies.errors;
  d.elapsed_s = (now_ms - s.step_started_ms) / 1000;
  const Analysis a = AnalyzeShadowStage(policy, d, s.memory);
  Record(s, a, ShadowEvidenceJson(s, d, a), now_ms);
  const std::string detail = fmt::format("{} in the shadow stage: {}", s.last_verdict, a.reason);
  switch (a.verdict) {
    case Verdict::kRunning:
      s.errors_in_a_row = 0;
      s.phase = RolloutPhase::kProgressing;
      (void)Persist(s);
      return;
    case Verdict::kError:
      s.phase = ++s.errors_in_a_row < policy.max_errors ? RolloutPhase::kError : RolloutPhase::kInconclusive;
      (void)Persist(s);
      return;
    case Verdict::kInconclusive:
      s.phase = RolloutPhase::kInconclusive;
      (void)Persist(s);
      return;
    case Verdict::kFailed:
      s.phase = RolloutPhase::kFailed;
      s.shadow_stage = false;
      (void)Act(s, {.kind = RolloutAction::Kind::kRollback, .candidate = s.candidate}, kActor, detail);
      return;
    case Verdict::kSuccessful:
      break;
  }
  s.shadow_stage = false;
  StartStep(s, 0, c.StepShares()[0], now_ms);
  s.phase = RolloutPhase::kProgressing;
  (void)Act(s, MoveTo(s, 0), kActor, detail);  // the mirror is switched off at the next tick
}

Status RolloutController::Persist(RolloutState& s) {
  s.updated_ms = clock_.NowMillis();
  const StoredRollout stored{s.endpoint, RolloutStateJson(s), s.updated_ms, deciding_epoch_};
  const Status saved =
      leadership_ ? store_.SaveRolloutIf(stored, written_state_[s.endpoint]) : store_.SaveRollout(stored);
  if (saved.ok()) {
    written_ms_[s.endpoint] = s.updated_ms;
    written_state_[s.endpoint] = stored.state;
  } else if (saved.code() == StatusCode::kAborted) {
    // Another replica (a person's command there, or the leader) wrote first:
    // its state wins, and this decision is made again from it.
    spdlog::warn("event=rollout_changed_meanwhile endpoint={} epoch={}", s.endpoint, deciding_epoch_);
    Reload(/*all=*/true, clock_.NowMillis());
  } else {
    spdlog::error("event=rollout_state_not_stored endpoint={} error={}", s.endpoint, saved.message());
  }
  return saved;
}

Status RolloutController::Act(RolloutState& s, const RolloutAction& action, const std::string& actor,
                              const std::string& detail) {
  s.pending = action;
  s.pending_detail = detail;
  // Decided and durable before anything changes: a crash from here on
  // finishes the action at the next start.
  VIGIL_RETURN_IF_ERROR(Persist(s));
  const Status applied = world_.Apply(s.endpoint, action, actor, detail);
  s.pending.reset();
  if (!applied.ok()) {
    spdlog::warn("event=rollout_action_refused endpoint={} action={} error={}", s.endpoint,
                 RolloutActionName(action.kind), applied.message());
    s.reason = fmt::format("{} was refused: {}", RolloutActionName(action.kind), applied.message());
  } else {
    spdlog::info("event=rollout_action endpoint={} action={} actor={} detail=\"{}\"", s.endpoint,
                 RolloutActionName(action.kind), actor, detail);
  }
  (void)Persist(s);
  return applied;
}

void RolloutController::Publish(const RolloutState& s, int64_t now_ms) {
  if (phase_gauge_) {
    for (RolloutPhase p : kRolloutPhases) {
      phase_gauge_->WithLabels({s.endpoint, std::string(RolloutPhaseName(p))}).Set(p == s.phase ? 1 : 0);
    }
  }
  if (step_gauge_) step_gauge_->WithLabels({s.endpoint}).Set(s.phase == RolloutPhase::kFailed ? 0 : s.step + 1);
  if (!alerts_) return;
  const AlertLabels labels{{"endpoint", s.endpoint}, {"candidate", s.candidate}};
  for (auto [name, phase] : {std::pair{"RolloutFailed", RolloutPhase::kFailed},
                             {"RolloutInconclusive", RolloutPhase::kInconclusive},
                             {"RolloutPromoted", RolloutPhase::kSuccessful}}) {
    AlertEvidence evidence{.statistic = "phase",
                           .value = s.phase == phase ? 1.0 : 0.0,
                           .threshold = 1,
                           .window_start_ms = s.step_started_ms,
                           .window_end_ms = now_ms,
                           .summary = fmt::format("rollout of {} on {}: {} at step {}/{}: {}", s.candidate, s.endpoint,
                                                  RolloutPhaseName(s.phase), s.step + 1, s.steps, s.reason)};
    alerts_->Observe(name, labels, s.phase == phase, evidence, 1, 1, now_ms);
  }
}

Status RolloutController::Command(const std::string& endpoint, RolloutCommand command, const std::string& actor) {
  std::vector<RolloutWorld::Endpoint> endpoints = world_.Endpoints();
  MutexLock lock(mu_);
  // A person's command is written unfenced (epoch 0) from any replica; the
  // leader adopts it at its next tick. Start from the newest stored state.
  deciding_epoch_ = 0;
  if (leadership_) Reload(/*all=*/false, clock_.NowMillis());
  auto it = states_.find(endpoint);
  if (it == states_.end()) return NotFound("endpoint '" + endpoint + "' has no rollout");
  RolloutState& s = it->second;
  const int64_t now_ms = clock_.NowMillis();
  std::shared_ptr<const DeploymentSpec> spec;
  for (const auto& e : endpoints) {
    if (e.spec->endpoint == endpoint) spec = e.spec;
  }
  if (!spec) {
    // Promoted (which removes the block), or the block or the endpoint went.
    return FailedPrecondition(
        fmt::format("the rollout of '{}' on '{}' has ended ({}: {}); the endpoint's spec has no "
                    "rollout block now",
                    s.candidate, endpoint, RolloutPhaseName(s.phase), s.reason));
  }
  const Variant* c = spec->Candidate(s.candidate);
  const std::string by = "by " + actor;
  Status result = Status::Ok();
  switch (command) {
    case RolloutCommand::kPause:
      result = world_.Apply(endpoint, {.kind = RolloutAction::Kind::kPause}, actor, "rollout pause");
      break;
    case RolloutCommand::kResume:
      if (s.phase == RolloutPhase::kInconclusive || s.phase == RolloutPhase::kError) {
        s.phase = RolloutPhase::kProgressing;
        s.errors_in_a_row = 0;
        s.reason = "resumed " + by + ": the analysis goes on at this step";
        (void)Persist(s);
      }
      if (spec->paused)
        result = world_.Apply(endpoint, {.kind = RolloutAction::Kind::kResume}, actor, "rollout resume");
      break;
    case RolloutCommand::kPromote:
    case RolloutCommand::kPromoteFull: {
      if (s.phase == RolloutPhase::kSuccessful || s.phase == RolloutPhase::kFailed || !c) {
        return FailedPrecondition(fmt::format("the rollout of '{}' on '{}' has ended ({}); retry starts it again",
                                              s.candidate, endpoint, RolloutPhaseName(s.phase)));
      }
      if (command == RolloutCommand::kPromote && s.step + 1 < s.steps) {
        const int next = s.step + 1;
        const RolloutState before = s;
        const RolloutAction move = MoveTo(s, next);
        s.shadow_stage = false;  // from the shadow stage, the first step
        StartStep(s, next, c->StepShares()[static_cast<size_t>(next)], now_ms);
        s.phase = RolloutPhase::kProgressing;
        s.reason = "promoted to step " + std::to_string(next + 1) + " " + by;
        result = Act(s, move, actor, s.reason);
        if (!result.ok()) s = before;
        break;
      }
      const RolloutState before = s;
      s.phase = RolloutPhase::kSuccessful;
      s.reason = "promoted to production " + by;
      result = Act(s, {.kind = RolloutAction::Kind::kPromote, .candidate = s.candidate}, actor, s.reason);
      if (!result.ok()) s = before;
      break;
    }
    case RolloutCommand::kAbort:
      if (s.phase == RolloutPhase::kSuccessful || !c) {
        return FailedPrecondition(fmt::format("the rollout of '{}' on '{}' has ended ({}); nothing to abort",
                                              s.candidate, endpoint, RolloutPhaseName(s.phase)));
      }
      s.phase = RolloutPhase::kFailed;
      s.reason = "aborted " + by;
      result = Act(s, {.kind = RolloutAction::Kind::kRollback, .candidate = s.candidate}, actor, s.reason);
      break;
    case RolloutCommand::kRetry: {
      if (!c) return FailedPrecondition("the candidate '" + s.candidate + "' is no longer in the spec");
      const std::vector<double> steps = c->StepShares();
      if ((s.phase == RolloutPhase::kFailed || SpecStep(*c) < 0) && spec->rollout && spec->rollout->shadow_first &&
          c->mode == VariantMode::kCanary) {
        StartShadowStage(s, spec->rollout->shadow_first->share, "retried " + by, now_ms);
        break;
      }
      if (s.phase == RolloutPhase::kFailed || SpecStep(*c) < 0) {
        // From the first step: the candidate was rolled back.
        const double share = c->mode == VariantMode::kAb ? s.share : steps[0];
        StartStep(s, 0, share, now_ms);
        s.phase = RolloutPhase::kProgressing;
        s.reason = "retried " + by + " from the first step";
        RolloutAction move{.kind = RolloutAction::Kind::kSetWeight, .candidate = s.candidate};
        if (c->mode == VariantMode::kCanary) {
          move.step = 0;
        } else {
          move.share = share;
        }
        result = Act(s, move, actor, s.reason);
        break;
      }
      StartStep(s, s.step, s.share, now_ms);
      s.phase = RolloutPhase::kProgressing;
      s.reason = "retried " + by + ": the analysis starts again at this step";
      result = Persist(s);
      break;
    }
  }
  Publish(s, now_ms);
  return result;
}

StatusOr<RolloutController::View> RolloutController::Get(const std::string& endpoint, int analyses) {
  View v;
  {
    MutexLock lock(mu_);
    auto it = states_.find(endpoint);
    if (it == states_.end()) return NotFound("endpoint '" + endpoint + "' has no rollout");
    v.state = it->second;
  }
  VIGIL_ASSIGN_OR_RETURN(v.analyses, store_.RolloutAnalyses(endpoint, analyses));
  return v;
}

}  // namespace vigil
