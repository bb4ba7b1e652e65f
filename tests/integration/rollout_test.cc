// The rollout controller end to end through the real server: traffic with
// routing keys, reward feedback the test draws itself per variant, the
// controller's decisions read back from /v1/deployments/{e}/rollout, the
// spec and its history, and alerts.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>

#include "core/eventually.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

// A canary of the example MLP's version 2 against version 1, analysed
// every second on mean reward; small exposure limits so a test decides in
// seconds.
std::string Spec(const std::string& steps = "[20, 50]", const std::string& extra = "") {
  return R"(
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: v2, model: breast_cancer_mlp, version: 2, mode: canary, steps: )" +
         steps + R"(}
rollout:
  candidate: v2
  interval_s: 1
  min_units: 150
  min_duration_s: 0
  max_duration_s: 600
  metric: {name: mean_reward}
  guardrails: {error_rate: {margin: 0.05}}
)" + extra;
}

struct Traffic {
  double reward_production = 0.3, reward_candidate = 0.3;
  double withhold_candidate = 0;  // the share of the candidate's feedback never sent
  std::mt19937_64 rng{7};
  int64_t next_unit = 0;

  // `n` requests, each from a new routing key, then their rewards in one
  // post. Returns false when a request fails.
  bool Round(HttpClient& c, int n) {
    std::string feedback = "[";
    bool first = true;
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < n; ++i) {
      const std::string key = "unit-" + std::to_string(next_unit++);
      auto r =
          c.Post("/v2/models/churn/infer", FeaturesBody(1, R"(,"parameters":{"vigil.routing_key":")" + key + "\"}"));
      if (!r.ok() || r->status != 200) return false;
      rapidjson::Document d = ParseBody(r->body);
      if (!d.IsObject() || !d.HasMember("parameters")) return false;
      const std::string variant = d["parameters"]["vigil.variant"].GetString();
      const std::string id = d["parameters"]["vigil.prediction_id"].GetString();
      const bool candidate = variant == "v2";
      if (candidate && u(rng) < withhold_candidate) continue;
      const double reward = u(rng) < (candidate ? reward_candidate : reward_production) ? 1 : 0;
      feedback += std::string(first ? "" : ",") + R"({"prediction_id":")" + id + R"(","reward":)" +
                  std::to_string(reward) + "}";
      first = false;
    }
    auto posted = c.Post("/v1/feedback", feedback + "]");
    return posted.ok() && posted->status == 200;
  }
};

rapidjson::Document Rollout(HttpClient& c) { return ParseBody(c.Get("/v1/deployments/churn/rollout")->body); }

std::string Phase(HttpClient& c) {
  auto d = Rollout(c);
  return d.IsObject() && d.HasMember("phase") ? d["phase"].GetString() : "";
}

// Rounds of traffic until `done` holds or the bounds run out (rounds, time).
bool DriveUntil(HttpClient& c, Traffic& t, const std::function<bool()>& done, int max_rounds = 200,
                std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (int i = 0; i < max_rounds && std::chrono::steady_clock::now() < until; ++i) {
    if (done()) return true;
    if (!t.Round(c, 100)) return false;
  }
  return done();
}

struct Fixture {
  explicit Fixture(const std::string& name, const std::string& spec) {
    repo = ScratchDir("rollout_" + name);
    data = ScratchDir("rollout_" + name + "_data");
    CopyExampleRepository(repo, {"breast_cancer_mlp"});
    fs::create_directories(repo / "deployments");
    WriteFile(repo / "deployments" / "churn.yaml", spec);
    Start();
  }
  void Start() {
    server = ServerProcess::Start({"--model-repository", repo.string(), "--data-dir", data.string()});
    client = server->Client();
  }
  ~Fixture() {
    client.reset();
    server.reset();
    fs::remove_all(repo);
    fs::remove_all(data);
  }
  fs::path repo, data;
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<HttpClient> client;
};

TEST(Rollout, AClearlyBetterCandidateIsPromotedThroughItsSteps) {
  Fixture f("better", Spec());
  HttpClient& c = *f.client;
  Traffic t{.reward_production = 0.3, .reward_candidate = 0.7};
  ASSERT_TRUE(DriveUntil(c, t, [&] { return Phase(c) == "Successful"; }))
      << c.Get("/v1/deployments/churn/rollout")->body;
  // Production is version 2 now; the candidate and its rollout block are gone from the spec.
  auto spec = ParseBody(c.Get("/v1/deployments/churn")->body);
  EXPECT_EQ(spec["production"]["version"].GetInt64(), 2);
  EXPECT_FALSE(spec.HasMember("rollout"));
  // The history shows each step and the promotion, by the controller, with the evidence.
  const std::string history = c.Get("/v1/deployments/churn/history")->body;
  EXPECT_NE(history.find("\"actor\":\"rollout-controller\",\"action\":\"rollout promote\""), std::string::npos)
      << history.substr(0, 2000);
  EXPECT_NE(history.find("rollout weight"), std::string::npos);
  EXPECT_NE(history.find("always-valid"), std::string::npos);
  // Each analysis carries its evidence; the last is the Successful one.
  auto r = Rollout(c);
  ASSERT_TRUE(r["analyses"].IsArray() && r["analyses"].Size() > 0);
  const auto& last = r["analyses"][0];
  EXPECT_STREQ(last["verdict"].GetString(), "Successful");
  EXPECT_EQ(last["step"].GetInt(), 2);
  const auto& e = last["evidence"];
  EXPECT_GT(e["primary"]["ci"][0].GetDouble(), 0) << "the interval clears zero";
  EXPECT_GE(e["arms"][1]["units"].GetInt64(), 150);
  EXPECT_TRUE(Eventually([&] { return c.Get("/v1/alerts")->body.find("RolloutPromoted") != std::string::npos; }));
  EXPECT_NE(c.Get("/metrics")->body.find("vigil_rollout_phase{endpoint=\"churn\",phase=\"Successful\"} 1"),
            std::string::npos);
}

TEST(Rollout, AClearlyWorseCandidateIsRolledBack) {
  Fixture f("worse", Spec());
  HttpClient& c = *f.client;
  Traffic t{.reward_production = 0.6, .reward_candidate = 0.1};
  ASSERT_TRUE(DriveUntil(c, t, [&] { return Phase(c) == "Failed"; })) << c.Get("/v1/deployments/churn/rollout")->body;
  auto spec = ParseBody(c.Get("/v1/deployments/churn")->body);
  EXPECT_EQ(spec["production"]["version"].GetInt64(), 1);
  EXPECT_EQ(spec["candidates"][0]["step"].GetInt(), -1) << "share 0, still in the spec";
  EXPECT_NE(Rollout(c)["reason"].GetString(), std::string()) << "says why";
  EXPECT_TRUE(Eventually([&] { return c.Get("/v1/alerts")->body.find("RolloutFailed") != std::string::npos; }));
  // No request goes to the candidate any more.
  for (int i = 0; i < 50; ++i) {
    auto r = c.Post("/v2/models/churn/infer",
                    FeaturesBody(1, R"(,"parameters":{"vigil.routing_key":"late-)" + std::to_string(i) + "\"}"));
    ASSERT_EQ(r->status, 200u);
    EXPECT_EQ(ParseBody(r->body)["parameters"]["vigil.variant"].GetString(), std::string("production"));
  }
}

TEST(Rollout, AnEqualCandidateIsNeverPromoted) {
  Fixture f("equal", Spec());
  HttpClient& c = *f.client;
  Traffic t{.reward_production = 0.4, .reward_candidate = 0.4};
  ASSERT_TRUE(Eventually([&] { return Phase(c) == "Progressing"; }));
  // Traffic until the last step has been analysed many times over.
  EXPECT_TRUE(DriveUntil(c, t, [&] {
    auto r = Rollout(c);
    return Phase(c) != "Progressing" || (r["step"].GetInt() == 2 && r["analyses_at_step"].GetInt64() >= 6);
  })) << "the traffic's bounds ran out";
  const std::string body = c.Get("/v1/deployments/churn/rollout")->body;
  auto r = ParseBody(body);
  const std::string phase = r["phase"].GetString();
  EXPECT_NE(phase, "Successful") << body;
  EXPECT_EQ(ParseBody(c.Get("/v1/deployments/churn")->body)["production"]["version"].GetInt64(), 1);
  if (phase == "Progressing") {
    EXPECT_EQ(r["step"].GetInt(), 2) << "the ramp is passed when safe; the last step waits for evidence: " << body;
    EXPECT_GE(r["analyses_at_step"].GetInt64(), 6) << body;
  } else {
    // A false alarm the design allows (at most alpha): an equal candidate
    // judged worse, or a sample-ratio mismatch. Either way it says why.
    EXPECT_TRUE(phase == "Failed" || phase == "Inconclusive") << body;
    EXPECT_NE(std::string(r["reason"].GetString()), "") << body;
  }
}

TEST(Rollout, ASampleRatioMismatchBlocksPromotionAndAlerts) {
  Fixture f("srm", Spec("[30]"));
  HttpClient& c = *f.client;
  // The candidate is better, but two thirds of its feedback never arrives:
  // its scored units no longer match its share.
  Traffic t{.reward_production = 0.3, .reward_candidate = 0.8, .withhold_candidate = 0.67};
  ASSERT_TRUE(DriveUntil(c, t, [&] { return Phase(c) == "Inconclusive"; }))
      << c.Get("/v1/deployments/churn/rollout")->body;
  auto r = Rollout(c);
  EXPECT_EQ(std::string(r["reason"].GetString()).rfind("sample ratio mismatch", 0), 0u) << r["reason"].GetString();
  EXPECT_EQ(ParseBody(c.Get("/v1/deployments/churn")->body)["production"]["version"].GetInt64(), 1);
  EXPECT_TRUE(Eventually([&] {
    const std::string alerts = c.Get("/v1/alerts")->body;
    return alerts.find("RolloutInconclusive") != std::string::npos &&
           alerts.find("sample ratio mismatch") != std::string::npos;
  }));
}

TEST(Rollout, KillNineInTheMiddleOfAStepResumesThere) {
  // Three steps; the ramp's analyses need min_units, so a step lasts a few rounds.
  Fixture f("kill", Spec("[10, 30, 60]"));
  HttpClient& c = *f.client;
  Traffic t{.reward_production = 0.3, .reward_candidate = 0.7};
  ASSERT_TRUE(DriveUntil(c, t, [&] { return Rollout(c)["step"].GetInt() == 2; }))
      << c.Get("/v1/deployments/churn/rollout")->body;
  auto before = Rollout(c);
  ASSERT_EQ(f.server->Signal(SIGKILL), 128 + SIGKILL);
  f.Start();
  HttpClient& again = *f.client;
  auto after = Rollout(again);
  ASSERT_TRUE(after.IsObject() && after.HasMember("step")) << again.Get("/v1/deployments/churn/rollout")->body;
  EXPECT_GE(after["step"].GetInt(), 2) << "not back to the first step";
  if (after["step"].GetInt() == before["step"].GetInt()) {
    EXPECT_EQ(after["step_started_ms"].GetInt64(), before["step_started_ms"].GetInt64()) << "the same step, resumed";
  }
  EXPECT_EQ(ParseBody(again.Get("/v1/deployments/churn")->body)["candidates"][0]["step"].GetInt() + 1,
            after["step"].GetInt())
      << "the spec and the rollout agree after the restart";
  ASSERT_TRUE(DriveUntil(again, t, [&] { return Phase(again) == "Successful"; }))
      << again.Get("/v1/deployments/churn/rollout")->body;
}

TEST(Rollout, TheShadowStageRunsBeforeAnyUserSeesTheCandidate) {
  Fixture f("shadow_first", Spec("[20, 50]", "  shadow_first: {min_units: 100, max_disagreement: 0.05}\n"));
  HttpClient& c = *f.client;
  ASSERT_TRUE(Eventually([&] { return Phase(c) == "Progressing"; }));
  auto spec = ParseBody(c.Get("/v1/deployments/churn")->body);
  EXPECT_EQ(spec["candidates"][0]["mirror"].GetDouble(), 100);
  EXPECT_EQ(spec["candidates"][0]["step"].GetInt(), -1);
  Traffic t{.reward_production = 0.3, .reward_candidate = 0.7};
  // In the stage every answer is production's.
  for (int i = 0; i < 30; ++i) {
    auto r = c.Post("/v2/models/churn/infer",
                    FeaturesBody(1, R"(,"parameters":{"vigil.routing_key":"early-)" + std::to_string(i) + "\"}"));
    ASSERT_EQ(r->status, 200u);
    EXPECT_EQ(ParseBody(r->body)["parameters"]["vigil.variant"].GetString(), std::string("production"));
  }
  // Both versions agree on these rows: the stage passes and the steps start.
  ASSERT_TRUE(DriveUntil(c, t, [&] { return Rollout(c)["step"].GetInt() >= 1; }))
      << c.Get("/v1/deployments/churn/rollout")->body;
  EXPECT_TRUE(Eventually([&] {
    return !ParseBody(c.Get("/v1/deployments/churn")->body)["candidates"][0].HasMember("mirror");
  })) << "the copies stop once users see it";
  const std::string history = c.Get("/v1/deployments/churn/history")->body;
  EXPECT_NE(history.find("rollout mirror"), std::string::npos);
  EXPECT_NE(history.find("shadow stage passed"), std::string::npos) << history.substr(0, 1500);
  ASSERT_TRUE(DriveUntil(c, t, [&] { return Phase(c) == "Successful"; }))
      << c.Get("/v1/deployments/churn/rollout")->body;
}

TEST(Rollout, APersonsPromoteThroughTheSpecEndsTheRollout) {
  Fixture f("person", Spec());
  HttpClient& c = *f.client;
  ASSERT_TRUE(Eventually([&] { return Phase(c) == "Progressing"; }));
  ASSERT_EQ(c.Post("/v1/deployments/churn/promote", R"({"candidate": "v2"})")->status, 200u);
  ASSERT_TRUE(Eventually([&] { return Phase(c) == "Successful"; })) << c.Get("/v1/deployments/churn/rollout")->body;
  EXPECT_EQ(std::string(Rollout(c)["reason"].GetString()), "promoted to production");
}

TEST(RolloutCommand, StatusCommandsAndPlanThroughTheCli) {
  Fixture f("cli", Spec("[20, 50]"));
  HttpClient& c = *f.client;
  const std::string url = "127.0.0.1:" + std::to_string(f.server->port());
  ASSERT_TRUE(Eventually([&] { return Phase(c) == "Progressing"; }));
  CommandResult status = RunVigil({"rollout", "status", "churn", "-u", url});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("Progressing"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("1. 20%"), std::string::npos) << status.out;
  EXPECT_EQ(status.out.find("\x1b["), std::string::npos) << "no colour when piped";
  CommandResult paused = RunVigil({"rollout", "pause", "churn", "-u", url});
  EXPECT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_TRUE(Eventually([&] { return Phase(c) == "Paused"; }));
  CommandResult refused = RunVigil({"rollout", "promote", "churn", "-u", url});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("paused"), std::string::npos) << refused.err;
  EXPECT_EQ(RunVigil({"rollout", "resume", "churn", "-u", url}).exit_code, 0);
  CommandResult full = RunVigil({"rollout", "promote", "--full", "churn", "-u", url});
  EXPECT_EQ(full.exit_code, 0) << full.err;
  EXPECT_EQ(Phase(c), "Successful");
  EXPECT_EQ(ParseBody(c.Get("/v1/deployments/churn")->body)["production"]["version"].GetInt64(), 2);
  CommandResult json = RunVigil({"rollout", "status", "churn", "-u", url, "--json"});
  EXPECT_TRUE(ParseBody(json.out).IsObject()) << json.out;
  // Bad input is named.
  CommandResult none = RunVigil({"rollout", "status", "nope", "-u", url});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no endpoint 'nope'"), std::string::npos) << none.err;
  auto bad = c.Post("/v1/deployments/churn/rollout/explode", "");
  EXPECT_EQ(bad->status, 404u);
  EXPECT_NE(bad->body.find("pause, resume, promote"), std::string::npos);
  // plan needs no server.
  CommandResult plan = RunVigil({"rollout", "plan", "--baseline", "0.10", "--min-effect", "0.01", "--traffic",
                                 "20000/day", "--shares", "5,25,50", "--json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  auto p = ParseBody(plan.out);
  ASSERT_TRUE(p.IsObject()) << plan.out;
  EXPECT_EQ(p["steps"].Size(), 3u);
  EXPECT_GT(p["days"].GetDouble(), 1);
  EXPECT_EQ(RunVigil({"rollout", "plan", "--traffic", "lots"}).exit_code, 1);
}

}  // namespace
}  // namespace vigil::testing

namespace vigil::testing {
namespace {

TEST(Shadow, ComparedWithProductionOnTheSameRequests) {
  Fixture f("shadow", R"(
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: mirror, model: breast_cancer_mlp, version: 2, mode: shadow, share: 100}
)");
  HttpClient& c = *f.client;
  std::string feedback = "[";
  for (int i = 0; i < 60; ++i) {
    auto r = c.Post("/v2/models/churn/infer", FeaturesBody(1));
    ASSERT_EQ(r->status, 200u) << r->body;
    const std::string id = ParseBody(r->body)["parameters"]["vigil.prediction_id"].GetString();
    feedback += std::string(i ? "," : "") + R"({"prediction_id":")" + id + R"(","label":1})";
  }
  ASSERT_EQ(c.Post("/v1/feedback", feedback + "]")->status, 200u);
  // Shadow answers are logged after production's (and a copy is dropped
  // when the model is busy): wait until every answered copy is paired.
  rapidjson::Document d;
  ASSERT_TRUE(Eventually([&] {
    d = ParseBody(c.Get("/v1/deployments/churn/shadow?window_s=600")->body);
    if (!d.IsObject() || d["shadows"].Size() != 1) return false;
    const auto& s = d["shadows"][0];
    return s["copies"].GetUint64() >= 10 && s["labeled"].GetUint64() == s["copies"].GetUint64();
  })) << c.Get("/v1/deployments/churn/shadow")->body;
  const auto& s = d["shadows"][0];
  EXPECT_STREQ(s["name"].GetString(), "mirror");
  EXPECT_EQ(s["pairs"].GetUint64(), s["copies"].GetUint64());
  EXPECT_EQ(s["compared"].GetInt64(), s["pairs"].GetInt64());
  // Both versions call these rows benign: they agree, and both are right.
  EXPECT_EQ(s["disagreements"].GetInt64(), 0);
  // Wilson's 95% upper bound for none in n: z² / (n + z²).
  const double n = s["compared"].GetDouble(), z2 = 1.959964 * 1.959964;
  EXPECT_NEAR(s["disagreement_upper"].GetDouble(), z2 / (n + z2), 1e-6);
  EXPECT_DOUBLE_EQ(s["accuracy"]["production"].GetDouble(), 1.0);
  EXPECT_DOUBLE_EQ(s["accuracy"]["shadow"].GetDouble(), 1.0);
  EXPECT_GT(s["latency_ms"]["shadow"]["p50"].GetDouble(), 0);
  EXPECT_EQ(c.Get("/v1/deployments/churn/shadow?window_s=0")->status, 400u);
  EXPECT_EQ(c.Get("/v1/deployments/nope/shadow")->status, 404u);
}

}  // namespace
}  // namespace vigil::testing
