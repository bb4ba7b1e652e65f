#include "rollout/controller.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>

#include "rollout/serving_rollout_world.h"
#include "rollout/simulator.h"
#include "support/fake_leadership.h"

namespace vigil {
namespace {

using testing::FakeLeadership;

ModelCatalog AnyModel() {
  ModelCatalog c;
  c.check = [](const std::string&, int64_t) { return Status::Ok(); };
  c.is_model = [](const std::string&) { return false; };
  return c;
}

// A real spec moved by the real ApplyRolloutAction; the step's data comes
// from `data`, given the candidate's current share.
class FakeWorld final : public RolloutWorld {
 public:
  explicit FakeWorld(const std::string& yaml) {
    auto spec = LoadDeploymentSpec("ep", yaml, AnyModel());
    EXPECT_TRUE(spec.ok()) << spec.status().message();
    spec_ = std::make_shared<const DeploymentSpec>(*spec);
  }
  std::vector<Endpoint> Endpoints() override {
    Endpoint e{.spec = spec_, .counts = counts, .generation = generation};
    return {e};
  }
  StepData Read(const DeploymentSpec& spec, const RolloutPolicy&, int64_t since_ms, int64_t now_ms,
                std::optional<double>) override {
    ++reads;
    last_since_ms = since_ms;
    return data ? data(spec, now_ms) : StepData{};
  }
  Status Apply(const std::string& endpoint, const RolloutAction& action, const std::string& actor,
               const std::string&) override {
    EXPECT_EQ(endpoint, "ep");
    actions.push_back(std::string(RolloutActionName(action.kind)) + (action.step ? std::to_string(*action.step) : "") +
                      " by " + actor);
    if (!refuse.ok()) return refuse;
    DeploymentSpec next = *spec_;
    VIGIL_RETURN_IF_ERROR(ApplyRolloutAction(next, action));
    VIGIL_RETURN_IF_ERROR(ValidateDeploymentSpec(next, AnyModel()));
    spec_ = std::make_shared<const DeploymentSpec>(std::move(next));
    ++generation;
    counts.clear();
    return Status::Ok();
  }
  StatusOr<ShadowComparison> CompareShadow(const DeploymentSpec&, const std::string& name, int64_t since_ms,
                                           int64_t) override {
    EXPECT_EQ(name, "v2");
    last_since_ms = since_ms;
    if (!shadow) return FailedPrecondition("no shadow data in this test");
    return shadow();
  }
  const DeploymentSpec& spec() const { return *spec_; }
  const Variant* candidate() const { return spec_->Candidate("v2"); }

  std::function<ShadowComparison()> shadow;

  std::function<StepData(const DeploymentSpec&, int64_t)> data;
  std::map<std::string, Counts> counts;
  int64_t generation = 1;
  std::vector<std::string> actions;
  Status refuse = Status::Ok();
  int reads = 0;
  int64_t last_since_ms = 0;

 private:
  std::shared_ptr<const DeploymentSpec> spec_;
};

constexpr const char* kCanary = R"(
production: {model: m, version: 1}
candidates: [{name: v2, model: m, version: 2, mode: canary, steps: [10, 50]}]
rollout:
  candidate: v2
  interval_s: 60
  min_units: 100
  min_duration_s: 120
  max_duration_s: 3600
  metric: {name: accuracy}
  guardrails: {}
  max_errors: 3
)";

// Arms whose units each score one 0/1 value: `rate_a`, `rate_b` of them
// correct, `units` per arm, split per the shares.
StepData Arms(double rate_a, double rate_b, int64_t units_a, int64_t units_b) {
  StepData d;
  d.label_cutoff_s = 0;
  auto fill = [](ArmData& arm, double rate, int64_t units) {
    const auto correct = static_cast<int64_t>(rate * static_cast<double>(units));
    for (int64_t i = 0; i < units; ++i) {
      const double y = i < correct ? 1 : 0;
      arm.metric.Add(y, 1, y);
    }
    arm.predictions = units;
  };
  fill(d.production, rate_a, units_a);
  fill(d.candidate, rate_b, units_b);
  return d;
}

// Units by share: `total` units split between production and the candidate.
std::function<StepData(const DeploymentSpec&, int64_t)> ByShare(double rate_a, double rate_b, int64_t total) {
  return [=](const DeploymentSpec& spec, int64_t) {
    const double share = spec.Candidate("v2")->CurrentShare() / 100;
    const auto b = static_cast<int64_t>(static_cast<double>(total) * share);
    return Arms(rate_a, rate_b, total - b, b);
  };
}

struct Harness {
  explicit Harness(const std::string& yaml = kCanary) : world(yaml) { Start(); }
  void Start() {
    auto made = RolloutController::Create({.world = &world,
                                           .store = store.get(),
                                           .clock = &clock,
                                           .alerts = &alerts,
                                           .registry = &registry,
                                           .background = false});
    ASSERT_TRUE(made.ok()) << made.status().message();
    controller = std::move(*made);
  }
  // One interval later, one tick.
  void Step(int64_t ms = 60'000) {
    clock.Advance(ms);
    controller->Tick(clock.NowMillis());
  }
  RolloutState State() {
    auto v = controller->Get("ep", 100);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? v->state : RolloutState{};
  }
  bool Firing(const std::string& name) {
    for (const auto& a : alerts.Get(10).firing) {
      if (a.alertname == name) return true;
    }
    return false;
  }
  FakeWallClock clock{1'000'000};
  FakeWorld world;
  std::unique_ptr<RolloutStore> store = MemoryRolloutStore();
  std::unique_ptr<AlertStore> alert_store = MemoryAlertStore();
  AlertTracker alerts{*alert_store, {}};
  MetricsRegistry registry;
  std::unique_ptr<RolloutController> controller;
};

TEST(RolloutController, StartsTheCanaryAdvancesAfterMinDurationAndPromotesOnEvidence) {
  Harness h;
  h.world.data = ByShare(0.70, 0.95, 4000);
  h.controller->Tick(h.clock.NowMillis());
  EXPECT_EQ(h.world.candidate()->step, 0) << "the controller starts a waiting canary";
  EXPECT_EQ(h.State().phase, RolloutPhase::kProgressing);
  h.Step();  // 60 s: safe, but min_duration_s is 120
  EXPECT_EQ(h.world.candidate()->step, 0);
  EXPECT_NE(h.State().reason.find("waiting for min_duration_s"), std::string::npos) << h.State().reason;
  h.Step();  // 120 s: advances
  EXPECT_EQ(h.world.candidate()->step, 1);
  EXPECT_EQ(h.State().step, 1);
  EXPECT_EQ(h.State().analyses, 0) << "a new step starts a new analysis";
  h.Step();
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kSuccessful) << h.State().reason;
  EXPECT_EQ(h.world.spec().production.version, 2) << "promoted";
  EXPECT_FALSE(h.world.spec().rollout) << "the promoted candidate's rollout block goes with it";
  EXPECT_TRUE(h.Firing("RolloutPromoted"));
  const std::vector<std::string> expected{"weight0 by rollout-controller", "weight1 by rollout-controller",
                                          "promote by rollout-controller"};
  EXPECT_EQ(h.world.actions, expected);
  // Every analysis is stored with its evidence.
  auto analyses = h.store->RolloutAnalyses("ep", 100);
  ASSERT_EQ(analyses->size(), 4u);
  EXPECT_EQ((*analyses)[0].verdict, "Successful");
  EXPECT_NE((*analyses)[0].evidence.find("\"primary\""), std::string::npos);
  EXPECT_NE((*analyses)[0].evidence.find("\"srm\""), std::string::npos);
  h.Step();  // it stays done
  EXPECT_EQ(h.State().phase, RolloutPhase::kSuccessful);
}

TEST(RolloutController, AWorseCandidateIsRolledBackAtOnce) {
  Harness h;
  h.world.data = ByShare(0.90, 0.60, 4000);
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kFailed);
  EXPECT_EQ(h.world.candidate()->step, -1) << "share 0, kept in the spec (and loaded)";
  EXPECT_NE(h.State().reason.find("shown worse"), std::string::npos) << h.State().reason;
  EXPECT_TRUE(h.Firing("RolloutFailed"));
  h.Step();
  EXPECT_EQ(h.world.actions.size(), 2u) << "no action after it ended";
}

TEST(RolloutController, AnErrorRateRegressionFailsTheGuardrail) {
  std::string yaml = kCanary;
  yaml.replace(yaml.find("guardrails: {}"), 14, "guardrails: {error_rate: {margin: 0.01}}");
  Harness h(yaml);
  h.world.data = ByShare(0.80, 0.80, 4000);
  h.controller->Tick(h.clock.NowMillis());
  h.world.counts["production"] = {.requests = 5000, .errors = 5};
  h.world.counts["v2"] = {.requests = 600, .errors = 60};  // 10% against 0.1%
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kFailed);
  EXPECT_NE(h.State().reason.find("guardrail error_rate"), std::string::npos) << h.State().reason;
}

TEST(RolloutController, FrontendCountsAreSummedAcrossCounterRestarts) {
  std::string yaml = kCanary;
  yaml.replace(yaml.find("guardrails: {}"), 14, "guardrails: {error_rate: {margin: 0.01}}");
  Harness h(yaml);
  h.world.data = ByShare(0.80, 0.80, 400);
  h.controller->Tick(h.clock.NowMillis());
  h.world.counts["production"] = {.requests = 300, .errors = 1};
  h.world.counts["v2"] = {.requests = 40, .errors = 0};
  h.Step();
  // The counters restart (a spec change elsewhere, or a restart): 100 + 30 more.
  h.world.counts["production"] = {.requests = 100, .errors = 0};
  h.world.counts["v2"] = {.requests = 30, .errors = 2};
  ++h.world.generation;
  h.Step();
  const RolloutState s = h.State();
  EXPECT_EQ(s.counts.at("production").requests, 400u);
  EXPECT_EQ(s.counts.at("candidate").requests, 70u);
  EXPECT_EQ(s.counts.at("candidate").errors, 2u);
}

TEST(RolloutController, SampleRatioMismatchHoldsAndAlerts) {
  Harness h;
  // 10% share, but the candidate's scored units are a third of what it should have.
  h.world.data = [](const DeploymentSpec&, int64_t) { return Arms(0.5, 0.9, 9000, 330); };
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kInconclusive);
  EXPECT_EQ(h.State().reason.rfind("sample ratio mismatch", 0), 0u) << h.State().reason;
  EXPECT_TRUE(h.Firing("RolloutInconclusive"));
  EXPECT_EQ(h.world.spec().production.version, 1) << "never promoted from an untrusted experiment";
  EXPECT_EQ(h.world.candidate()->step, 0) << "held at its step for a person";
}

TEST(RolloutController, MissingDataIsAnErrorRetriedThenInconclusive) {
  Harness h;
  h.world.data = [](const DeploymentSpec&, int64_t) {
    StepData d;
    d.missing = "no prediction log";
    return d;
  };
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kError);
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kError);
  EXPECT_FALSE(h.Firing("RolloutFailed")) << "missing data is not a model failure";
  h.Step();  // the third in a row (max_errors: 3)
  EXPECT_EQ(h.State().phase, RolloutPhase::kInconclusive);
  EXPECT_NE(h.State().reason.find("3 analyses in a row without data"), std::string::npos) << h.State().reason;
}

TEST(RolloutController, WaitingForLabelsIsNotAnError) {
  Harness h;
  h.world.data = [](const DeploymentSpec&, int64_t) {
    StepData d;
    d.production.awaiting_feedback = 500;
    d.label_cutoff_s = 3600;
    return d;
  };
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kProgressing);
  EXPECT_EQ(h.State().reason.rfind("waiting for labels", 0), 0u) << h.State().reason;
}

TEST(RolloutController, MaxDurationWithoutEvidenceIsInconclusiveAndMayRollBack) {
  std::string yaml = kCanary;
  yaml += "  on_inconclusive: rollback\n";
  Harness h(yaml);
  h.world.data = ByShare(0.80, 0.80, 4000);
  h.controller->Tick(h.clock.NowMillis());
  h.Step(120'000);  // step 1 is safe after min_duration
  ASSERT_EQ(h.State().step, 1);
  for (int i = 0; i < 70 && h.State().phase == RolloutPhase::kProgressing; ++i) h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kInconclusive);
  EXPECT_NE(h.State().reason.find("max_duration_s"), std::string::npos) << h.State().reason;
  EXPECT_EQ(h.world.candidate()->step, -1) << "on_inconclusive: rollback";
  EXPECT_EQ(h.world.spec().production.version, 1);
}

TEST(RolloutController, PauseStopsItAndPeopleWin) {
  Harness h;
  h.world.data = ByShare(0.70, 0.95, 20);  // too few units to decide: people decide here
  h.controller->Tick(h.clock.NowMillis());
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kPause, "alice").ok());
  h.Step(300'000);
  EXPECT_EQ(h.State().phase, RolloutPhase::kPaused);
  EXPECT_EQ(h.world.candidate()->step, 0) << "paused: no weight change";
  // promote while paused: refused by the spec's own precondition.
  EXPECT_EQ(h.controller->Command("ep", RolloutCommand::kPromote, "alice").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kResume, "alice").ok());
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kProgressing);
  // A person moves it on by one step; the analysis starts again there.
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kPromote, "alice").ok());
  EXPECT_EQ(h.world.candidate()->step, 1);
  EXPECT_EQ(h.State().step, 1);
  // Abort: rolled back, Failed.
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kAbort, "bob").ok());
  EXPECT_EQ(h.State().phase, RolloutPhase::kFailed);
  EXPECT_EQ(h.world.candidate()->step, -1);
  EXPECT_NE(h.State().reason.find("aborted by bob"), std::string::npos);
  EXPECT_EQ(h.controller->Command("ep", RolloutCommand::kPromote, "bob").code(), StatusCode::kFailedPrecondition);
  // Retry after Failed: from the first step.
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kRetry, "bob").ok());
  EXPECT_EQ(h.State().phase, RolloutPhase::kProgressing);
  EXPECT_EQ(h.world.candidate()->step, 0);
  // promote --full: straight to production.
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kPromoteFull, "carol").ok());
  EXPECT_EQ(h.world.spec().production.version, 2);
  EXPECT_EQ(h.State().phase, RolloutPhase::kSuccessful);
  const Status late = h.controller->Command("ep", RolloutCommand::kAbort, "carol");
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(late.message().find("has ended"), std::string::npos) << late.message();
  EXPECT_EQ(h.controller->Command("nope", RolloutCommand::kAbort, "x").code(), StatusCode::kNotFound);
}

TEST(RolloutController, AWeightChangedByAPersonRestartsTheAnalysisAtThatStep) {
  Harness h;
  h.world.data = ByShare(0.80, 0.80, 4000);
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  ASSERT_EQ(h.State().analyses, 1);
  ASSERT_TRUE(
      h.world.Apply("ep", {.kind = RolloutAction::Kind::kSetWeight, .candidate = "v2", .step = 1}, "alice", "").ok());
  h.Step();
  EXPECT_EQ(h.State().step, 1);
  EXPECT_EQ(h.State().analyses, 0);
  EXPECT_NE(h.State().reason.find("outside the controller"), std::string::npos);
  h.Step();
  EXPECT_EQ(h.world.last_since_ms, h.State().step_started_ms) << "the step's data starts at the step";
}

TEST(RolloutController, APersonsPromoteOrRollbackOutsideTheControllerEndsTheRollout) {
  Harness promoted;
  promoted.controller->Tick(promoted.clock.NowMillis());
  ASSERT_TRUE(promoted.world.Apply("ep", {.kind = RolloutAction::Kind::kPromote, .candidate = "v2"}, "alice", "").ok());
  ASSERT_FALSE(promoted.world.spec().rollout);
  promoted.Step();
  EXPECT_EQ(promoted.State().phase, RolloutPhase::kSuccessful);
  EXPECT_EQ(promoted.State().reason, "promoted to production");
  Harness rolled_back;
  rolled_back.controller->Tick(rolled_back.clock.NowMillis());
  ASSERT_TRUE(
      rolled_back.world.Apply("ep", {.kind = RolloutAction::Kind::kRollback, .candidate = "v2"}, "bob", "").ok());
  rolled_back.Step();
  EXPECT_EQ(rolled_back.State().phase, RolloutPhase::kFailed);
  EXPECT_EQ(rolled_back.State().reason, "rolled back outside the controller");
}

TEST(RolloutController, ARestartResumesAtTheSameStepAndFinishesAPersistedAction) {
  Harness h;
  h.world.data = ByShare(0.80, 0.80, 4000);
  h.controller->Tick(h.clock.NowMillis());
  h.Step(120'000);
  ASSERT_EQ(h.State().step, 1);
  h.Step();
  const RolloutState before = h.State();
  ASSERT_GT(before.memory.count("primary"), 0u);
  h.controller.reset();  // the process ends
  h.Start();
  const RolloutState after = h.State();
  EXPECT_EQ(after.step, before.step);
  EXPECT_EQ(after.step_started_ms, before.step_started_ms);
  EXPECT_EQ(after.analyses, before.analyses);
  EXPECT_DOUBLE_EQ(after.memory.at("primary").tau2, before.memory.at("primary").tau2);
  EXPECT_DOUBLE_EQ(after.memory.at("primary").p, before.memory.at("primary").p);
  // kill -9 between persisting a decision and applying it: the next start applies it.
  RolloutState crashed = after;
  crashed.pending = RolloutAction{.kind = RolloutAction::Kind::kRollback, .candidate = "v2"};
  crashed.phase = RolloutPhase::kFailed;
  ASSERT_TRUE(h.store->SaveRollout({"ep", RolloutStateJson(crashed), 0}).ok());
  h.controller.reset();
  h.Start();
  h.controller->Tick(h.clock.NowMillis());
  EXPECT_EQ(h.world.candidate()->step, -1);
  EXPECT_FALSE(h.State().pending);
  EXPECT_EQ(h.State().phase, RolloutPhase::kFailed);
}

TEST(RolloutController, AmongReplicasAPersonsCommandOnAFollowerWinsOverTheLeadersDecisionInFlight) {
  // Two replicas' controllers on one store and one (shared) spec.
  FakeWallClock clock{1'000'000};
  FakeWorld world(kCanary);
  std::unique_ptr<RolloutStore> store = MemoryRolloutStore();
  FakeLeadership leads(1), follows(0);
  auto make = [&](const Leadership* l) {
    auto made = RolloutController::Create({.world = &world,
                                           .store = store.get(),
                                           .clock = &clock,
                                           .alerts = nullptr,
                                           .registry = nullptr,
                                           .background = false,
                                           .leadership = l});
    EXPECT_TRUE(made.ok()) << made.status().message();
    return std::move(made).value();
  };
  auto leader = make(&leads), follower = make(&follows);
  world.data = ByShare(0.70, 0.95, 4000);
  leader->Tick(clock.NowMillis());  // starts the canary
  ASSERT_EQ(world.candidate()->step, 0);
  clock.Advance(120'000);
  // While the leader analyses (after it read the stored state), a person
  // aborts through the follower: the leader's "advance" must not win.
  bool aborted = false;
  world.data = [&](const DeploymentSpec& spec, int64_t now_ms) {
    if (!aborted) {
      aborted = true;
      EXPECT_TRUE(follower->Command("ep", RolloutCommand::kAbort, "bob").ok());
    }
    return ByShare(0.70, 0.95, 4000)(spec, now_ms);
  };
  leader->Tick(clock.NowMillis());
  ASSERT_TRUE(aborted);
  const std::vector<std::string> expected{"weight0 by rollout-controller", "rollback by bob"};
  EXPECT_EQ(world.actions, expected) << "the leader's advance was refused, not applied";
  EXPECT_EQ(world.candidate()->step, -1);
  auto seen = leader->Get("ep", 10);
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->state.phase, RolloutPhase::kFailed) << "the leader adopted the person's state";
  EXPECT_NE(seen->state.reason.find("aborted by bob"), std::string::npos) << seen->state.reason;
  clock.Advance(60'000);
  leader->Tick(clock.NowMillis());
  EXPECT_EQ(world.actions, expected) << "and made no decision after it";
  auto stored = store->LoadRollouts();
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_NE((*stored)[0].state.find("aborted by bob"), std::string::npos);
  // The stores' own check: a write based on a state replaced since is refused.
  EXPECT_EQ(store->SaveRolloutIf({"ep", "{}", 1, 0}, "not what is stored").code(), StatusCode::kAborted);
}

TEST(RolloutController, AmongReplicasAStepIsAnalysedOnlyOnceEveryReplicaRoutesByIt) {
  FakeWallClock clock{1'000'000};
  FakeWorld world(kCanary);
  std::unique_ptr<RolloutStore> store = MemoryRolloutStore();
  FakeLeadership leads(1);
  auto made = RolloutController::Create({.world = &world,
                                         .store = store.get(),
                                         .clock = &clock,
                                         .alerts = nullptr,
                                         .registry = nullptr,
                                         .background = false,
                                         .leadership = &leads,
                                         .settle = std::chrono::milliseconds(2000)});
  ASSERT_TRUE(made.ok());
  world.data = ByShare(0.70, 0.95, 4000);
  (*made)->Tick(clock.NowMillis());  // starts the canary: its step starts now
  const int64_t step_started = (*made)->Get("ep", 1)->state.step_started_ms;
  clock.Advance(60'000);
  (*made)->Tick(clock.NowMillis());
  EXPECT_EQ(world.last_since_ms, step_started + 2000) << "predictions of the first 2 s are left out";
}

TEST(RolloutController, StateRoundTripsThroughJson) {
  RolloutState s;
  s.endpoint = "ep";
  s.candidate = "v2";
  s.model = "m";
  s.version = 2;
  s.phase = RolloutPhase::kError;
  s.step = 2;
  s.steps = 4;
  s.share = 25;
  s.step_started_ms = 123;
  s.memory["primary"] = {.tau2 = 1e-4, .p = 0.3};
  s.counts["candidate"] = {.seen_requests = 5, .seen_errors = 1, .requests = 50, .errors = 2};
  s.counts_generation = 77;
  s.reason = "why \"quoted\"";
  s.pending = RolloutAction{.kind = RolloutAction::Kind::kSetWeight, .candidate = "v2", .step = 3};
  auto back = ParseRolloutState(RolloutStateJson(s));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(RolloutStateJson(*back), RolloutStateJson(s));
  EXPECT_FALSE(ParseRolloutState("{\"phase\": \"Nope\"}").ok());
  EXPECT_FALSE(ParseRolloutState("[1").ok());
}

TEST(RolloutController, MetricsShowThePhaseAndStep) {
  Harness h;
  h.world.data = ByShare(0.80, 0.80, 4000);
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  const std::string text = h.registry.Expose();
  EXPECT_NE(text.find("vigil_rollout_phase{endpoint=\"ep\",phase=\"Progressing\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("vigil_rollout_step{endpoint=\"ep\"} 1"), std::string::npos);
  EXPECT_NE(text.find("vigil_rollout_analyses_total{endpoint=\"ep\",verdict=\"Running\"} 1"), std::string::npos);
}

TEST(RolloutController, TheShadowStageComparesCopiesBeforeTheFirstStep) {
  std::string yaml = kCanary;
  yaml += "  shadow_first: {min_units: 500, max_disagreement: 0.05, share: 100}\n";
  Harness h(yaml);
  int compared = 100, disagreements = 0;
  h.world.shadow = [&] {
    ShadowComparison c;
    c.compared = c.pairs = compared;
    c.disagreements = disagreements;
    c.disagreement_rate = static_cast<double>(disagreements) / compared;
    std::tie(c.disagreement_lower, c.disagreement_upper) = WilsonInterval(disagreements, compared);
    return c;
  };
  h.world.data = ByShare(0.80, 0.80, 4000);
  h.controller->Tick(h.clock.NowMillis());
  EXPECT_TRUE(h.State().shadow_stage);
  EXPECT_EQ(h.world.candidate()->step, -1) << "no user sees it yet";
  EXPECT_EQ(h.world.candidate()->mirror, 100) << "it gets copies";
  h.Step();
  EXPECT_NE(h.State().reason.find("100 of 500 requests compared"), std::string::npos) << h.State().reason;
  compared = 2000;
  h.Step(120'000);  // past min_duration_s
  EXPECT_FALSE(h.State().shadow_stage) << h.State().reason;
  EXPECT_EQ(h.world.candidate()->step, 0) << "the stage passed: the first step";
  h.controller->Tick(h.clock.NowMillis());
  EXPECT_EQ(h.world.candidate()->mirror, 0) << "and the copies stop";
  auto analyses = h.store->RolloutAnalyses("ep", 10);
  ASSERT_FALSE(analyses->empty());
  EXPECT_NE(analyses->back().evidence.find("\"stage\":\"shadow\""), std::string::npos);
}

TEST(RolloutController, AShadowThatDisagreesTooOftenNeverReachesUsers) {
  std::string yaml = kCanary;
  yaml += "  shadow_first: {min_units: 500, max_disagreement: 0.05}\n";
  Harness h(yaml);
  h.world.shadow = [] {
    ShadowComparison c;
    c.compared = c.pairs = 1000;
    c.disagreements = 200;
    c.disagreement_rate = 0.2;
    std::tie(c.disagreement_lower, c.disagreement_upper) = WilsonInterval(200, 1000);
    return c;
  };
  h.controller->Tick(h.clock.NowMillis());
  h.Step();
  EXPECT_EQ(h.State().phase, RolloutPhase::kFailed);
  EXPECT_NE(h.State().reason.find("disagrees with production too often"), std::string::npos) << h.State().reason;
  EXPECT_EQ(h.world.candidate()->mirror, 0) << "the rollback stops the copies";
  EXPECT_EQ(h.world.candidate()->step, -1);
  // retry starts the shadow stage again.
  ASSERT_TRUE(h.controller->Command("ep", RolloutCommand::kRetry, "alice").ok());
  EXPECT_TRUE(h.State().shadow_stage);
  EXPECT_EQ(h.world.candidate()->mirror, 100);
}

// The simulator runs this controller on synthetic arms; a few quick runs
// here, the figures (200+ experiments) in bench/RESULTS.md.
TEST(RolloutSimulator, PromotesAClearlyBetterCandidateAndNotAnEqualOne) {
  SimulationOptions o;
  o.baseline = 0.5;
  o.units_per_day = 24 * 2000;
  o.shares = {20, 50};
  o.policy.interval_s = 3600;
  o.policy.min_units = 200;
  o.policy.min_duration_s = 0;
  o.policy.max_duration_s = 3 * 86400;
  o.experiments = 20;
  o.effect = 0.1;
  auto better = Simulate(o);
  ASSERT_TRUE(better.ok()) << better.status().message();
  EXPECT_GE(better->promoted, 19);
  o.effect = 0;
  auto equal = Simulate(o);
  ASSERT_TRUE(equal.ok());
  EXPECT_LE(equal->promoted, 2);
  EXPECT_EQ(equal->promoted + equal->rolled_back + equal->inconclusive + equal->undecided, 20);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// ReadStep against the real SQLite store: per-unit sums, the label cut-off,
// what waits and what has no feedback.
TEST(ReadStep, SumsPerRoutingKeyAfterTheLabelCutOff) {
  const std::string dir = ::testing::TempDir() + "/vigil_readstep_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto opened = OpenSqliteStore(dir);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  Store& store = **opened;
  FakeWorld world(kCanary);
  const DeploymentSpec& spec = world.spec();
  const int64_t now = 1'000'000;
  std::vector<PredictionRecord> predictions;
  std::vector<FeedbackRecord> feedback;
  auto add = [&](const std::string& id, const std::string& variant, int64_t t, const std::string& key,
                 const std::string& outputs, std::optional<double> label, int64_t delay_ms, bool shadow = false) {
    predictions.push_back({id, t, "ep", variant, "m", 1, 2000, shadow, outputs, "", key});
    if (label) feedback.push_back({id, t + delay_ms, label, {}});
  };
  // Unit "a" (production): 3 predictions, 2 correct; unit "b": 1, wrong.
  add("p1", "production", 1000, "a", "[0.2,0.8]", 1, 100);
  add("p2", "production", 2000, "a", "[0.9,0.1]", 0, 100);
  add("p3", "production", 3000, "a", "[0.9,0.1]", 1, 100);
  add("p4", "production", 4000, "b", "[0.1,0.9]", 0, 100);
  // The candidate: two keyless predictions (two units), one without feedback.
  add("c1", "v2", 5000, "", "[0.3,0.7]", 1, 100);
  add("c2", "v2", 6000, "", "[0.3,0.7]", std::nullopt, 0);
  // Too young for its label (the cut-off is the 90th percentile delay, 100 ms).
  add("c3", "v2", now - 50, "", "[0.3,0.7]", std::nullopt, 0);
  // A shadow and another variant: left out.
  add("s1", "v2", 7000, "", "[0.3,0.7]", 1, 100, true);
  add("o1", "other", 7000, "", "[0.3,0.7]", 1, 100);
  ASSERT_TRUE(store.WritePredictions(predictions).ok());
  ASSERT_TRUE(store.WriteFeedback(feedback).ok());
  const RolloutPolicy& policy = *spec.rollout;
  StepData d = ReadStep(store, spec, policy, 0, now, std::nullopt, 1000);
  ASSERT_TRUE(d.missing.empty()) << d.missing;
  ASSERT_TRUE(d.label_cutoff_s);
  EXPECT_DOUBLE_EQ(*d.label_cutoff_s, 0.1);
  EXPECT_EQ(d.production.predictions, 4);
  EXPECT_EQ(d.production.metric.units, 2);
  EXPECT_DOUBLE_EQ(d.production.metric.y, 2);
  EXPECT_DOUBLE_EQ(d.production.metric.n, 4);
  EXPECT_DOUBLE_EQ(d.production.metric.nn, 9 + 1);  // n_a = 3, n_b = 1
  EXPECT_EQ(d.candidate.predictions, 3);
  EXPECT_EQ(d.candidate.metric.units, 1);
  EXPECT_EQ(d.candidate.without_feedback, 1);
  EXPECT_EQ(d.candidate.awaiting_feedback, 1);
  EXPECT_EQ(d.production.latency_p99_ms.count, 4);
  EXPECT_DOUBLE_EQ(d.production.latency_p99_ms.value, 2.0);
  // A longer cut-off remembered from earlier analyses holds everything back.
  StepData held = ReadStep(store, spec, policy, 0, now, 3600.0, 1000);
  EXPECT_DOUBLE_EQ(*held.label_cutoff_s, 3600);
  EXPECT_EQ(held.production.metric.units, 0);
  EXPECT_EQ(held.production.awaiting_feedback, 4);
  // The scan's bound is reported.
  EXPECT_TRUE(ReadStep(store, spec, policy, 0, now, std::nullopt, 3).truncated);
  // A rate sums its counts per unit: precision's TP over predicted positives
  // (unit a: p1 a TP, p2 and p3 predicted negative; unit b: p4 a FP).
  RolloutPolicy precision = policy;
  precision.metric.name = "precision";
  StepData rate = ReadStep(store, spec, precision, 0, now, std::nullopt, 1000);
  EXPECT_EQ(rate.production.metric.units, 2);
  EXPECT_DOUBLE_EQ(rate.production.metric.y, 1);
  EXPECT_DOUBLE_EQ(rate.production.metric.n, 2);
  EXPECT_DOUBLE_EQ(rate.production.metric.Ratio(), 0.5);
  std::filesystem::remove_all(dir);
}

// CompareShadow against the real store: both bounds of the disagreement,
// so the shadow stage can fail on them (the lower one) as well as pass.
TEST(CompareShadow, ReadsBothBoundsOfTheDisagreement) {
  const std::string dir = ::testing::TempDir() + "/vigil_compareshadow_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto opened = OpenSqliteStore(dir);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  Store& store = **opened;
  std::vector<PredictionRecord> predictions;
  for (int i = 0; i < 400; ++i) {  // the copy disagrees on every other request
    const std::string id = "r" + std::to_string(i);
    predictions.push_back({id, 10 * i, "ep", "production", "m", 1, 100, false, "[0.9,0.1]", "", ""});
    predictions.push_back({id, 10 * i + 1, "ep", "v2", "m", 2, 100, true, i % 2 ? "[0.2,0.8]" : "[0.8,0.2]", "", ""});
  }
  ASSERT_TRUE(store.WritePredictions(predictions).ok());
  auto c = CompareShadow(store, "ep", "v2", 0, 100'000, 10'000);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->compared, 400);
  EXPECT_EQ(c->disagreements, 200);
  const auto [low, high] = WilsonInterval(200, 400);
  EXPECT_DOUBLE_EQ(c->disagreement_lower, low);
  EXPECT_DOUBLE_EQ(c->disagreement_upper, high);
  EXPECT_GT(c->disagreement_lower, 0.45);
  // Shown above a 5% limit: the stage fails.
  FakeWorld world(kCanary);
  RolloutPolicy policy = *world.spec().rollout;
  policy.shadow_first = RolloutPolicy::ShadowStage{.min_units = 100, .max_disagreement = 0.05, .share = 100};
  ShadowStageData data{.comparison = *c,
                       .production_requests = 400,
                       .production_errors = 0,
                       .copies = 400,
                       .copy_errors = 0,
                       .elapsed_s = 10,
                       .missing = ""};
  std::map<std::string, TestMemory> memory;
  EXPECT_EQ(AnalyzeShadowStage(policy, data, memory).verdict, Verdict::kFailed);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil
