#include "routing/endpoint_calls.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "core/eventually.h"

namespace vigil {
namespace {

// Answers every call at once with one output, as a model version would.
class FakeRunner final : public ModelRunner {
 public:
  struct Seen {
    std::string model;
    int64_t version = 0;
    std::string id;
    std::thread::id thread;
    std::optional<SteadyTime> deadline{};
  };
  void Run(InferCall&& call, Done done) override {
    {
      MutexLock lock(mu_);
      seen_.push_back({call.model, call.version, call.id, std::this_thread::get_id(), call.deadline});
    }
    if (clock && call.model == slow_model) clock->Advance(slow_cost);  // the time it computes
    if (call.model == "broken") return done(Internal("backend failed"), InferReply{});
    if (call.inputs.empty()) return done(InvalidArgument("no inputs"), InferReply{});
    InferReply reply;
    reply.model = call.model;
    reply.version = call.version ? call.version : 7;  // "latest" is version 7 here
    reply.id = call.id;
    reply.outputs.push_back(call.inputs[0]);
    done(Status::Ok(), std::move(reply));
  }
  std::optional<bool> Busy(const std::string& model, int64_t) const override {
    if (on_busy) on_busy();
    MutexLock lock(mu_);
    if (!loaded_.count(model)) return std::nullopt;
    return busy_.count(model) > 0;
  }
  void RunTogether(const std::function<void()>& submit) override { submit(); }
  std::optional<PredictedWait> Predict(const std::string& model, int64_t, uint32_t, int64_t) const override {
    MutexLock lock(mu_);
    if (!loaded_.count(model)) return std::nullopt;
    auto it = waits_.find(model);
    return it == waits_.end() ? PredictedWait{} : it->second;
  }
  void SetWait(const std::string& model, PredictedWait wait) {
    MutexLock lock(mu_);
    waits_[model] = wait;
  }

  FakeClock* clock = nullptr;
  std::function<void()> on_busy;  // the shadow thread asks Busy at the start of each round
  std::string slow_model;
  Micros slow_cost{0};

  std::vector<Seen> seen() const {
    MutexLock lock(mu_);
    return seen_;
  }
  void SetBusy(const std::string& model) {
    MutexLock lock(mu_);
    busy_.insert(model);
  }

 private:
  mutable Mutex mu_;
  std::vector<Seen> seen_ GUARDED_BY(mu_);
  std::set<std::string> busy_ GUARDED_BY(mu_);
  std::map<std::string, PredictedWait> waits_ GUARDED_BY(mu_);
  const std::set<std::string> loaded_{"churn", "churn_xgb", "churn_small", "broken"};
};

struct Harness {
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  Deployments deployments{Deployments::Options{}};
  FakeRunner runner;
  std::unique_ptr<EndpointCalls> calls;

  explicit Harness(const std::string& spec, const Clock* clock = nullptr) {
    const Status applied = deployments.Apply("churn_ep", spec, {"test", "apply", ""});
    EXPECT_TRUE(applied.ok()) << applied.message();
    auto made =
        EndpointCalls::Create({.deployments = &deployments, .models = &runner, .metrics = &metrics, .clock = clock});
    EXPECT_TRUE(made.ok()) << made.status().message();
    calls = std::move(made).value();
  }
  // One call through the endpoint; its status and reply.
  std::pair<Status, InferReply> Call(const std::string& key, int64_t version = 0, const std::string& id = "") {
    InferCall call;
    call.model = "churn_ep";
    call.version = version;
    call.id = id;
    if (!key.empty()) call.parameters["vigil.routing_key"] = key;
    Tensor t;
    t.name = "x";
    t.datatype = DataType::kFp32;
    t.shape = {1, 1};
    t.data.assign(4, 0);
    call.inputs.push_back(std::move(t));
    std::pair<Status, InferReply> out{Status::Ok(), {}};
    calls->Infer(calls->Find("churn_ep"), std::move(call), [&](const Status& s, InferReply&& r) {
      out = {s, std::move(r)};
    });
    return out;
  }
  double Counted(const std::string& series) {
    const std::string text = registry.Expose();
    const size_t at = text.find(series + " ");
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size() + 1));
  }
};

std::string Param(const InferReply& r, const std::string& key) {
  auto it = r.parameters.find(key);
  return it == r.parameters.end() ? "" : std::get<std::string>(it->second);
}

// A shadow that takes 10 ms per copy, copied every request, one request
// every 10 ms: at max_cpu 0.1 it may run about one copy in ten.
double ShadowCopiesRun(const std::string& max_cpu, double* over_budget) {
  FakeClock clock;
  Harness h(
      "production: {model: churn, version: 1}\n"
      "candidates: [{name: slow, model: churn_xgb, mode: shadow, share: 100" +
          max_cpu + "}]\n",
      &clock);
  h.runner.clock = &clock;
  h.runner.slow_model = "churn_xgb";
  h.runner.slow_cost = Micros(10'000);
  const std::string ok = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="slow",result="ok"})";
  const std::string over = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="slow",result="over_budget"})";
  for (int i = 0; i < 200; ++i) {
    clock.Advance(Micros(10'000));
    EXPECT_TRUE(h.Call("").first.ok());
    // One copy at a time, so each is judged on the budget the last one left.
    EXPECT_TRUE(Eventually([&] { return h.Counted(ok) + h.Counted(over) >= i + 1; }));
  }
  *over_budget = h.Counted(over);
  return h.Counted(ok);
}

TEST(EndpointCalls, AShadowKeepsToItsCpuBudget) {
  double over = 0;
  // 2 s between the requests, plus the copies' own 10 ms each (the clock
  // runs while they compute), at 0.1 of a core, plus a 20 ms burst:
  // n = (2 + 0.01 n) · 10 + 2, about 24.4 copies.
  const double ran = ShadowCopiesRun(", max_cpu: 0.1", &over);
  EXPECT_GE(ran, 22);
  EXPECT_LE(ran, 26);
  EXPECT_EQ(ran + over, 200);
  // Without max_cpu: kDefaultShadowMaxCpu, the same.
  EXPECT_EQ(ShadowCopiesRun("", &over), ran);
  // A whole core: every copy runs.
  EXPECT_EQ(ShadowCopiesRun(", max_cpu: 1", &over), 200);
  EXPECT_EQ(over, 0);
}

TEST(EndpointCalls, ARoutedCallRunsItsVariantAndSaysWhoAnswered) {
  Harness h(
      "production: {model: churn, version: 1}\n"
      "candidates: [{name: v2, model: churn, version: 2, mode: ab, share: 50}]\n");
  int v2 = 0;
  for (int i = 0; i < 200; ++i) {
    auto [s, reply] = h.Call("user-" + std::to_string(i));
    ASSERT_TRUE(s.ok()) << s.message();
    const std::string variant = Param(reply, "vigil.variant");
    EXPECT_EQ(Param(reply, "vigil.version"), variant == "v2" ? "2" : "1");
    EXPECT_EQ(Param(reply, "vigil.model"), "churn");
    EXPECT_EQ(reply.id, Param(reply, "vigil.prediction_id"));  // generated when the client gave none
    EXPECT_EQ(Param(h.Call("user-" + std::to_string(i)).second, "vigil.variant"), variant) << "sticky";
    v2 += variant == "v2";
  }
  EXPECT_NEAR(v2, 100, 4 * std::sqrt(200 * 0.25));
  // The client's id is the prediction id; the model half saw the variant's model and version.
  auto [s, reply] = h.Call("k", 0, "req-9");
  EXPECT_EQ(Param(reply, "vigil.prediction_id"), "req-9");
  const auto seen = h.runner.seen();
  EXPECT_EQ(seen.back().id, "req-9");
  EXPECT_EQ(seen.back().model, "churn");
  // An endpoint has no versions.
  auto [refused, none] = h.Call("k", 3);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("'churn_ep' is an endpoint, which has no versions"), std::string::npos);
}

TEST(EndpointCalls, ShadowsRunOnTheirOwnThreadAndGiveWayWhenTheirModelIsBusy) {
  Harness h(
      "production: {model: churn, version: 1}\n"
      "candidates: [{name: xgb, model: churn_xgb, mode: shadow, share: 100}]\n");
  const std::string ok = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="xgb",result="ok"})";
  const std::string dropped = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="xgb",result="dropped"})";
  auto [s, reply] = h.Call("a");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Param(reply, "vigil.variant"), "production");  // the client never sees the shadow's answer
  ASSERT_TRUE(Eventually([&] { return h.Counted(ok) == 1; }));
  std::thread::id shadow_thread;
  for (const auto& seen : h.runner.seen()) {
    if (seen.model == "churn_xgb") shadow_thread = seen.thread;
  }
  EXPECT_NE(shadow_thread, std::this_thread::get_id());  // never on the serving thread
  EXPECT_EQ(h.calls->Find("churn_ep")->Stats(0).requests.load(), 1u);

  h.runner.SetBusy("churn_xgb");
  ASSERT_TRUE(h.Call("b").first.ok());
  EXPECT_TRUE(Eventually([&] { return h.Counted(dropped) == 1; }));
  EXPECT_EQ(h.Counted(ok), 1);
  h.calls->Stop();
  ASSERT_TRUE(h.Call("c").first.ok());  // after Stop, copies are dropped at once
  EXPECT_EQ(h.Counted(dropped), 2);
}

// A spec change while copies wait leaves them the only holders of the old
// router: the copies' answers let go of it, and its budget is still charged
// safely after they ran (a use after free under ASan before the round held
// its own reference).
TEST(EndpointCalls, ShadowCopiesOutliveTheSpecTheyWereMadeUnder) {
  Harness h(
      "production: {model: churn, version: 1}\n"
      "candidates: [{name: xgb, model: churn_xgb, mode: shadow, share: 100}]\n");
  std::promise<void> changed;
  std::shared_future<void> go = changed.get_future().share();
  std::atomic<bool> in_round{false};
  h.runner.on_busy = [&in_round, go] {
    in_round = true;
    go.wait();
  };
  ASSERT_TRUE(h.Call("a").first.ok());
  ASSERT_TRUE(Eventually([&] { return in_round.load(); }));  // the copy is the round's now
  ASSERT_TRUE(h.deployments.Apply("churn_ep", "production: {model: churn, version: 1}\n", {"test", "apply", ""}).ok());
  changed.set_value();
  const std::string ok = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="xgb",result="ok"})";
  EXPECT_TRUE(Eventually([&] { return h.Counted(ok) == 1; }));
  h.calls->Stop();
}

TEST(EndpointCalls, FailuresAreCountedAsTheServersOrTheClients) {
  Harness h("production: {model: broken}\n");
  auto [s, reply] = h.Call("a");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  const VariantStats& stats = h.calls->Find("churn_ep")->Stats(-1);
  EXPECT_EQ(stats.errors.load(), 1u);
  EXPECT_EQ(stats.rejected.load(), 0u);
  EXPECT_EQ(h.Counted(R"(vigil_endpoint_requests_total{endpoint="churn_ep",variant="production",outcome="error"})"), 1);
}

PredictedWait WaitMs(int64_t ms) {
  const auto w = std::chrono::duration_cast<Micros>(std::chrono::milliseconds(ms));
  return {w, w};
}

constexpr const char* kLadderSpec =
    "production: {model: churn, version: 1}\n"
    "candidates: [{name: mirror, model: churn_xgb, mode: shadow, share: 100}]\n"
    "overload: {slo_ms: 50, fallback: {model: churn_small}, shed_retry_after_s: 7, recover_after_s: 10}\n";

TEST(EndpointCallsOverload, TheFallbackAnswersWhatTheVariantCannotInTimeAndTheReplySaysSo) {
  FakeClock clock;
  Harness h(kLadderSpec, &clock);
  const OverloadLadder* ladder = h.calls->Find("churn_ep")->ladder();
  ASSERT_NE(ladder, nullptr);

  auto [s0, r0] = h.Call("a");
  ASSERT_TRUE(s0.ok()) << s0.message();
  EXPECT_EQ(std::get<int64_t>(r0.parameters.at("vigil.rung")), 0);
  EXPECT_EQ(Param(r0, "vigil.model"), "churn");
  // A request that brings no deadline gets slo_ms (the production call's:
  // the shadow's copy, on its own thread, may be seen first).
  std::optional<FakeRunner::Seen> production;
  for (const FakeRunner::Seen& seen : h.runner.seen()) {
    if (seen.model == "churn" && !production) production = seen;
  }
  ASSERT_TRUE(production && production->deadline);
  EXPECT_EQ(*production->deadline, clock.Now() + std::chrono::milliseconds(50));

  h.runner.SetWait("churn", WaitMs(80));  // production would answer after the deadline
  auto [s2, r2] = h.Call("b");
  ASSERT_TRUE(s2.ok()) << s2.message();
  EXPECT_EQ(std::get<int64_t>(r2.parameters.at("vigil.rung")), 2);
  EXPECT_EQ(Param(r2, "vigil.model"), "churn_small");
  EXPECT_EQ(Param(r2, "vigil.variant"), "production");  // the variant it was routed to
  EXPECT_EQ(ladder->rung(), kRungFallback);
  // Degraded answers stay out of the variant's figures.
  EXPECT_EQ(h.calls->Find("churn_ep")->Stats(-1).requests.load(), 1u);

  // A request whose own timeout leaves room is answered in full.
  InferCall patient;
  patient.model = "churn_ep";
  patient.parameters["timeout"] = int64_t{200'000};
  Tensor t;
  t.name = "x";
  t.datatype = DataType::kFp32;
  t.shape = {1, 1};
  t.data.assign(4, 0);
  patient.inputs.push_back(t);
  std::optional<int64_t> rung;
  h.calls->Infer(h.calls->Find("churn_ep"), std::move(patient), [&](const Status& s, InferReply&& r) {
    ASSERT_TRUE(s.ok()) << s.message();
    rung = std::get<int64_t>(r.parameters.at("vigil.rung"));
  });
  EXPECT_EQ(rung, 0);

  EXPECT_EQ(h.Counted(R"(vigil_endpoint_rung_requests_total{endpoint="churn_ep",rung="full"})"), 2);
  EXPECT_EQ(h.Counted(R"(vigil_endpoint_rung_requests_total{endpoint="churn_ep",rung="fallback"})"), 1);
  EXPECT_EQ(h.Counted(R"(vigil_endpoint_rung{endpoint="churn_ep"})"), 2);
}

TEST(EndpointCallsOverload, WhenNoRungCanAnswerInTimeTheRequestIsShedWithRetryAfter) {
  FakeClock clock;
  Harness h(kLadderSpec, &clock);
  h.runner.SetWait("churn", WaitMs(80));
  h.runner.SetWait("churn_small", WaitMs(60));
  auto [s, r] = h.Call("a");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("no rung can answer within the request's 50.0 ms"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("retry after 7 s"), std::string::npos) << s.message();
  EXPECT_EQ(std::get<int64_t>(r.parameters.at("vigil.retry_after_s")), 7);
  EXPECT_EQ(std::get<int64_t>(r.parameters.at("vigil.rung")), 3);
  EXPECT_TRUE(h.runner.seen().empty());  // never queued where it could not finish
  EXPECT_EQ(h.calls->Find("churn_ep")->ladder()->rung(), kRungShed);
  EXPECT_EQ(h.Counted(R"(vigil_endpoint_rung_requests_total{endpoint="churn_ep",rung="shed"})"), 1);
}

TEST(EndpointCallsOverload, ShadowsAreDroppedWhileTheEndpointIsDegraded) {
  FakeClock clock;
  Harness h(kLadderSpec, &clock);
  const std::string dropped = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="mirror",result="dropped"})";
  const std::string ok = R"(vigil_shadow_requests_total{endpoint="churn_ep",variant="mirror",result="ok"})";
  ASSERT_TRUE(h.Call("a").first.ok());
  ASSERT_TRUE(Eventually([&] { return h.Counted(ok) == 1; }));
  h.runner.SetWait("churn", WaitMs(80));
  ASSERT_TRUE(h.Call("b").first.ok());  // the fallback answers; its copy is dropped
  EXPECT_EQ(h.Counted(dropped), 1);
  h.runner.SetWait("churn", WaitMs(0));
  ASSERT_TRUE(h.Call("c").first.ok());  // in full again, but the endpoint is still at rung 2
  EXPECT_EQ(h.Counted(dropped), 2);
  clock.Advance(std::chrono::seconds(10));
  ASSERT_TRUE(h.Call("d").first.ok());  // calm for recover_after_s: back to rung 0, copies again
  EXPECT_EQ(h.calls->Find("churn_ep")->ladder()->rung(), kRungFull);
  EXPECT_TRUE(Eventually([&] { return h.Counted(ok) == 2; }));
  EXPECT_EQ(h.Counted(dropped), 2);
}

TEST(EndpointCallsOverload, ARungChangeOfTheSpecKeepsTheLadderOnlyWhenItsPolicyIsTheSame) {
  Harness h(kLadderSpec);
  h.runner.SetWait("churn", WaitMs(80));
  ASSERT_TRUE(h.Call("a").first.ok());
  const auto before = h.calls->Find("churn_ep");
  ASSERT_EQ(before->ladder()->rung(), kRungFallback);
  // A rollout step (another spec, same overload block) keeps the rung.
  ASSERT_TRUE(h.deployments.Apply("churn_ep", std::string(kLadderSpec) + "paused: true\n", {"test", "apply", ""}).ok());
  EXPECT_EQ(h.calls->Find("churn_ep")->ladder(), before->ladder());
  // Another policy starts a ladder of its own.
  std::string other = kLadderSpec;
  other.replace(other.find("slo_ms: 50"), 10, "slo_ms: 70");
  ASSERT_TRUE(h.deployments.Apply("churn_ep", other, {"test", "apply", ""}).ok());
  EXPECT_NE(h.calls->Find("churn_ep")->ladder(), before->ladder());
  EXPECT_EQ(h.calls->Find("churn_ep")->ladder()->rung(), kRungFull);
}

TEST(EndpointCalls, CreateNamesWhatIsMissing) {
  auto made = EndpointCalls::Create({});
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("need the deployments, a model runner and the serving metrics"),
            std::string::npos);
}

}  // namespace
}  // namespace vigil
