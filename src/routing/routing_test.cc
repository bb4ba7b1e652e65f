#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "routing/deployment_spec.h"
#include "routing/deployments.h"
#include "routing/router.h"

namespace vigil {
namespace {

// Models a, b, c exist with versions 1 and 2.
ModelCatalog Catalog() {
  ModelCatalog c;
  c.check = [](const std::string& model, int64_t version) -> Status {
    if (model != "a" && model != "b" && model != "c") return NotFound("unknown model '" + model + "'");
    if (version > 2) return NotFound("version " + std::to_string(version) + " is not loaded");
    return Status::Ok();
  };
  c.is_model = [](const std::string& name) { return name == "a" || name == "b" || name == "c"; };
  return c;
}

std::shared_ptr<const DeploymentSpec> Spec(const std::string& yaml, const std::string& endpoint = "ep") {
  auto s = LoadDeploymentSpec(endpoint, yaml, Catalog());
  EXPECT_TRUE(s.ok()) << s.status().message();
  return std::make_shared<const DeploymentSpec>(s.ok() ? *s : DeploymentSpec{});
}

std::string Error(const std::string& yaml, const std::string& endpoint = "ep") {
  auto s = LoadDeploymentSpec(endpoint, yaml, Catalog());
  return s.ok() ? "" : s.status().message();
}

RouteInput Keyed(const std::string& key, std::map<std::string, std::string> params = {},
                 std::map<std::string, std::string> headers = {}) {
  params["vigil.routing_key"] = key;
  RouteInput in;
  in.parameter = [params](std::string_view n) -> std::optional<std::string> {
    auto it = params.find(std::string(n));
    return it == params.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  in.header = [headers](std::string_view n) -> std::optional<std::string> {
    auto it = headers.find(std::string(n));
    return it == headers.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  return in;
}

std::string VariantOf(const Router& r, const RouteDecision& d) {
  return d.variant < 0 ? "production" : r.spec().candidates[static_cast<size_t>(d.variant)].name;
}

TEST(DeploymentSpec, ParsesEveryFieldAndRoundTripsThroughYaml) {
  const std::string yaml = R"(
endpoint: ep
production: {model: a, version: 1}
routing_key: {parameter: user, header: X-User}
candidates:
  - {name: v2, model: a, version: 2, mode: ab, share: 12.5}
  - {name: next, model: b, mode: canary, steps: [1, 5, 25, 50], step: 1}
  - {name: mirror, model: c, mode: shadow, share: 20}
flags:
  - name: beta
    variant: v2
    rules:
      - {parameter: country, in: [FR, DE]}
      - {header: X-App-Version, semver: ">=2.3.0"}
      - {parameter: age, op: ">=", value: 18}
      - {parameter: email, regex: ".*@example\\.com"}
      - {percent: 20}
  - {name: staff, variant: production, rules: [{parameter: plan, not_in: [free]}, {parameter: tier, eq: gold}]}
kill_switch: false
paused: true
monitoring:
  quality: {metric: auc, drop: 0.03, window_s: 600, min_labels: 50}
  health: {latency_p99_ms: 25, error_rate: 0.01}
  alert_after: 4
)";
  auto spec = Spec(yaml);
  EXPECT_EQ(spec->production.model, "a");
  EXPECT_EQ(spec->key_parameter, "user");
  EXPECT_EQ(spec->key_header, "x-user");
  ASSERT_EQ(spec->candidates.size(), 3u);
  EXPECT_DOUBLE_EQ(spec->candidates[0].CurrentShare(), 12.5);
  EXPECT_DOUBLE_EQ(spec->candidates[1].CurrentShare(), 5);
  EXPECT_DOUBLE_EQ(spec->candidates[1].MaxShare(), 50);
  EXPECT_DOUBLE_EQ(spec->ProductionShare(), 100 - 12.5 - 5);  // the shadow takes none
  EXPECT_EQ(spec->candidates[2].mode, VariantMode::kShadow);
  ASSERT_EQ(spec->flags.size(), 2u);
  EXPECT_EQ(spec->flags[0].rules.size(), 5u);
  EXPECT_EQ(spec->flags[0].rules[1].header, "x-app-version");
  EXPECT_TRUE(spec->paused);
  ASSERT_TRUE(spec->quality);
  EXPECT_EQ(spec->quality->metric, "auc");
  EXPECT_DOUBLE_EQ(spec->quality->drop, 0.03);
  EXPECT_EQ(spec->quality->window_s, 600);
  ASSERT_TRUE(spec->health);
  EXPECT_DOUBLE_EQ(spec->health->latency_p99_ms, 25);
  EXPECT_DOUBLE_EQ(spec->health->error_rate, 0.01);
  EXPECT_EQ(spec->health->min_requests, 20);
  EXPECT_EQ(spec->alert_after, 4);
  EXPECT_EQ(spec->resolve_after, 0);  // the model's

  const std::string again = DeploymentSpecToYaml(*spec);
  auto reparsed = LoadDeploymentSpec("ep", again, Catalog());
  ASSERT_TRUE(reparsed.ok()) << reparsed.status().message() << "\n" << again;
  EXPECT_EQ(DeploymentSpecToYaml(*reparsed), again);
}

TEST(DeploymentSpec, ErrorsNameTheField) {
  const std::string prod = "production: {model: a}\n";
  struct Case {
    std::string yaml, fragment;
  };
  const std::vector<Case> cases = {
      {"production: {model: zz}\n", "field 'production': model 'zz': unknown model"},
      {"production: {model: a, version: 7}\n", "version 7 is not loaded"},
      {prod + "candidates: [{name: x, model: b, mode: ab, share: 60}, {name: y, model: c, mode: ab, share: 50}]\n",
       "shares sum to 110%"},
      {prod + "candidates: [{name: x, model: b, mode: ab, share: 20}, {name: y, model: c, mode: canary, steps: [10, "
              "90]}]\n",
       "a canary counts its last step"},
      {prod + "candidates: [{name: x, model: b, mode: shadow, share: 5}, {name: y, model: b, mode: shadow, share: "
              "5}]\n",
       "both shadow model 'b'"},
      {prod + "candidates: [{name: x, model: b, mode: ab, share: 101}]\n", "candidates[0].share"},
      {prod + "candidates: [{name: x, model: b, mode: blue, share: 1}]\n", "ab, canary or shadow, got 'blue'"},
      {prod + "candidates: [{name: x, model: b, mode: canary, steps: [5, 1]}]\n", "ascending"},
      {prod + "candidates: [{name: x, model: b, mode: canary, steps: [5], step: 3}]\n", "candidates[0].step"},
      {prod + "candidates: [{name: x, model: b, mode: canary, share: 5, steps: [5]}]\n", "no share for a canary"},
      {prod + "candidates: [{name: x, model: b, mode: ab, share: 1}, {name: x, model: c, mode: ab, share: 1}]\n",
       "'x' repeats"},
      {prod + "candidates: [{name: production, model: b, mode: ab, share: 1}]\n", "other than 'production'"},
      {prod + "flags: [{name: f, variant: nope, rules: [{percent: 5}]}]\n", "no candidate named 'nope'"},
      {prod + "candidates: [{name: s, model: b, mode: shadow, share: 1}]\nflags: [{name: f, variant: s, rules: "
              "[{percent: 5}]}]\n",
       "is a shadow"},
      {prod + "flags: [{name: f, variant: production, rules: [{parameter: x, regex: '('}]}]\n",
       "flags[0].rules[0].regex"},
      {prod + "flags: [{name: f, variant: production, rules: [{parameter: x, op: '~', value: 1}]}]\n",
       "flags[0].rules[0].op"},
      {prod + "flags: [{name: f, variant: production, rules: [{parameter: x, semver: '>=two'}]}]\n",
       "flags[0].rules[0].semver"},
      {prod + "flags: [{name: f, variant: production, rules: [{parameter: x, in: [a], eq: b}]}]\n", "exactly one test"},
      {prod + "flags: [{name: f, variant: production, rules: [{eq: b}]}]\n", "a parameter or header"},
      {prod + "flags: [{name: f, variant: production, rules: []}]\n", "non-empty list of rules"},
      {prod + "colour: red\n", "field 'colour': expected no such key"},
      {prod + "monitoring: {quality: {metric: auc}}\n", "field 'monitoring.quality': expected below"},
      {prod + "monitoring: {quality: {metric: latency, below: 1}}\n", "field 'monitoring.quality.metric'"},
      {prod + "monitoring: {alert_after: 0}\n", "field 'monitoring.alert_after'"},
      {prod + "monitoring: {health: {error_rate: 5}}\n", "field 'monitoring.health.error_rate'"},
      {prod + "monitoring: {health: {queue_saturation: 0.5}}\n", "field 'monitoring.health.queue_saturation'"},
      {prod + "monitoring: {paging: true}\n", "field 'monitoring.paging'"},
      {"endpoint: other\n" + prod, "field 'endpoint'"},
      {"production: [1, 2\n", "not valid YAML"},
  };
  for (const auto& c : cases) {
    const std::string e = Error(c.yaml);
    EXPECT_NE(e.find(c.fragment), std::string::npos) << "yaml:\n" << c.yaml << "\nerror: " << e;
    EXPECT_EQ(e.rfind("deployment 'ep'", 0), 0u) << e;
  }
  EXPECT_NE(Error(prod, "a").find("already a model's"), std::string::npos);
}

TEST(DeploymentSpec, RolloutMetricsAreTheRatiosOfSumsAndNotAuc) {
  for (const char* name :
       {"accuracy", "log_loss", "brier", "mae", "mse", "rmse", "precision", "recall", "f1", "mean_reward"}) {
    const auto spec = LoadDeploymentSpec("ep",
                                         std::string("production: {model: a, version: 1}\n"
                                                     "candidates: [{name: v2, model: a, version: 2, mode: ab, "
                                                     "share: 10}]\n"
                                                     "rollout: {candidate: v2, metric: {name: ") +
                                             name + "}}\n",
                                         Catalog());
    EXPECT_TRUE(spec.ok()) << name << ": " << spec.status().message();
  }
  const auto auc = LoadDeploymentSpec("ep",
                                      "production: {model: a, version: 1}\n"
                                      "candidates: [{name: v2, model: a, version: 2, mode: ab, share: 10}]\n"
                                      "rollout: {candidate: v2, metric: {name: auc}}\n",
                                      Catalog());
  ASSERT_FALSE(auc.ok());
  EXPECT_NE(auc.status().message().find("auc is not one"), std::string::npos) << auc.status().message();
}

TEST(DeploymentSpec, RolloutBlockHasDefaultsForAllButCandidateAndMetric) {
  const auto spec = Spec(R"(
production: {model: a, version: 1}
candidates: [{name: v2, model: a, version: 2, mode: canary, steps: [5, 25, 50]}]
rollout: {candidate: v2, metric: {name: log_loss}}
)");
  ASSERT_TRUE(spec->rollout);
  const RolloutPolicy& p = *spec->rollout;
  EXPECT_EQ(p.candidate, "v2");
  EXPECT_EQ(p.interval_s, 60);
  EXPECT_EQ(p.min_units, 1000);
  EXPECT_EQ(p.min_duration_s, 600);
  EXPECT_EQ(p.max_duration_s, 86400);
  EXPECT_FALSE(p.metric.higher_is_better);  // log loss: lower is better
  EXPECT_EQ(p.metric.min_effect, 0);
  EXPECT_EQ(p.alpha, 0.05);
  EXPECT_EQ(p.error_rate_margin, 0.005);  // the guardrail every rollout gets unless it says otherwise
  EXPECT_FALSE(p.latency_p99_margin_ms);
  EXPECT_EQ(p.srm_p, 0.001);
  EXPECT_TRUE(p.promote_on_success);
  EXPECT_FALSE(p.rollback_on_inconclusive);
  EXPECT_EQ(p.max_errors, 10);
}

TEST(DeploymentSpec, RolloutBlockRoundTripsThroughYaml) {
  const auto spec = Spec(R"(
production: {model: a, version: 1}
candidates: [{name: v2, model: b, mode: ab, share: 10}]
rollout:
  candidate: v2
  interval_s: 30
  min_units: 500
  min_duration_s: 0
  max_duration_s: 7200
  metric: {name: mean_reward, direction: higher, min_effect: 0.01, no_feedback: zero}
  alpha: 0.01
  guardrails: {latency_p99_ms: {margin: 5}}
  srm_p: 0.0001
  on_success: hold
  on_inconclusive: rollback
  max_errors: 3
)");
  ASSERT_TRUE(spec->rollout);
  const std::string yaml = DeploymentSpecToYaml(*spec);
  const auto again = Spec(yaml);
  ASSERT_TRUE(again->rollout) << yaml;
  const RolloutPolicy& p = *again->rollout;
  EXPECT_EQ(p.interval_s, 30);
  EXPECT_EQ(p.min_units, 500);
  EXPECT_EQ(p.max_duration_s, 7200);
  EXPECT_TRUE(p.metric.no_feedback_is_zero);
  EXPECT_EQ(p.metric.min_effect, 0.01);
  EXPECT_EQ(p.alpha, 0.01);
  EXPECT_FALSE(p.error_rate_margin) << "an explicit guardrails block without error_rate has none";
  EXPECT_EQ(p.latency_p99_margin_ms, 5);
  EXPECT_FALSE(p.promote_on_success);
  EXPECT_TRUE(p.rollback_on_inconclusive);
  EXPECT_EQ(p.max_errors, 3);
  EXPECT_EQ(DeploymentSpecToYaml(*again), yaml);
}

TEST(DeploymentSpec, RolloutErrorsNameTheField) {
  const std::string head =
      "production: {model: a}\ncandidates: [{name: v2, model: b, mode: canary, steps: [5, 50]}, {name: s, model: c, "
      "mode: shadow, share: 5}]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"rollout: {metric: {name: accuracy}}", "field 'rollout.candidate'"},
      {"rollout: {candidate: v2}", "field 'rollout.metric'"},
      {"rollout: {candidate: nope, metric: {name: accuracy}}", "field 'rollout.candidate': no candidate named 'nope'"},
      {"rollout: {candidate: s, metric: {name: accuracy}}", "field 'rollout.candidate': 's' is a shadow"},
      {"rollout: {candidate: v2, metric: {name: auc}}", "field 'rollout.metric.name': expected one of accuracy"},
      {"rollout: {candidate: v2, metric: {name: accuracy, direction: up}}", "field 'rollout.metric.direction'"},
      {"rollout: {candidate: v2, metric: {name: accuracy, no_feedback: zero}}", "field 'rollout.metric.no_feedback'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, interval_s: 0}", "field 'rollout.interval_s'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, min_units: 1}", "field 'rollout.min_units'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, min_duration_s: 100, max_duration_s: 50}",
       "field 'rollout.max_duration_s': expected at least min_duration_s (100)"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, max_duration_s: 99999999999}",
       "field 'rollout.max_duration_s'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, alpha: 0.9}", "field 'rollout.alpha'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, srm_p: 0}", "field 'rollout.srm_p'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, guardrails: {error_rate: {margin: -1}}}",
       "field 'rollout.guardrails.error_rate.margin'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, guardrails: {error_rate: {}}}",
       "field 'rollout.guardrails.error_rate.margin'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, guardrails: {cpu: {margin: 1}}}",
       "field 'rollout.guardrails.cpu'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, on_success: ship}", "field 'rollout.on_success'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, on_inconclusive: promote}",
       "field 'rollout.on_inconclusive'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, max_errors: 0}", "field 'rollout.max_errors'"},
      {"rollout: {candidate: v2, metric: {name: accuracy}, steps: [1]}", "field 'rollout.steps'"},
  };
  for (const auto& [yaml, fragment] : cases) {
    const std::string e = Error(head + yaml + "\n");
    EXPECT_NE(e.find(fragment), std::string::npos) << yaml << "\nerror: " << e;
  }
}

TEST(DeploymentSpec, AShadowsCpuBudgetIsReadCheckedAndWrittenBack) {
  const auto spec = Spec(
      "production: {model: a, version: 1}\n"
      "candidates: [{name: s, model: b, mode: shadow, share: 20, max_cpu: 0.05}]\n");
  ASSERT_TRUE(spec->candidates[0].max_cpu);
  EXPECT_EQ(*spec->candidates[0].max_cpu, 0.05);
  EXPECT_NE(DeploymentSpecToYaml(*spec).find("max_cpu: 0.05"), std::string::npos);
  EXPECT_FALSE(Spec("production: {model: a, version: 1}\n"
                    "candidates: [{name: s, model: b, mode: shadow, share: 20}]\n")
                   ->candidates[0]
                   .max_cpu)
      << "unset: the default applies";
  for (const char* bad : {"0", "-1", "65", "lots"}) {
    EXPECT_NE(Error(std::string("production: {model: a}\ncandidates: [{name: s, model: b, mode: shadow, share: 5, "
                                "max_cpu: ") +
                    bad + "}]\n")
                  .find("candidates[0].max_cpu"),
              std::string::npos)
        << bad;
  }
}

TEST(DeploymentSpec, TheOverloadBlockIsReadCheckedAndWrittenBack) {
  const auto spec = Spec(
      "production: {model: a, version: 1}\n"
      "overload: {slo_ms: 50, fallback: {model: b}, shed_retry_after_s: 2, recover_after_s: 0.5}\n");
  ASSERT_TRUE(spec->overload);
  EXPECT_EQ(spec->overload->slo_ms, 50);
  ASSERT_TRUE(spec->overload->fallback);
  EXPECT_EQ(spec->overload->fallback->model, "b");
  EXPECT_EQ(spec->overload->shed_retry_after_s, 2);
  EXPECT_EQ(spec->overload->recover_after_s, 0.5);
  const std::string yaml = DeploymentSpecToYaml(*spec);
  auto again = ParseDeploymentSpec("ep", yaml);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(DeploymentSpecToYaml(*again), yaml);
  // Defaults for every key.
  const auto plain = Spec("production: {model: a}\noverload: {}\n");
  ASSERT_TRUE(plain->overload);
  EXPECT_EQ(plain->overload->slo_ms, 100);
  EXPECT_FALSE(plain->overload->fallback);
  EXPECT_EQ(plain->overload->shed_retry_after_s, 1);
  EXPECT_EQ(plain->overload->recover_after_s, 10);
  EXPECT_FALSE(Spec("production: {model: a}\n")->overload);

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"overload: {slo_ms: 0}", "field 'overload.slo_ms'"},
      {"overload: {slo_ms: 9999999}", "field 'overload.slo_ms'"},
      {"overload: {slo_ms: fast}", "field 'overload.slo_ms'"},
      {"overload: {shed_retry_after_s: 0}",
       "field 'overload.shed_retry_after_s': expected whole seconds from 1 to 3600"},
      {"overload: {shed_retry_after_s: 1.5}", "field 'overload.shed_retry_after_s'"},
      {"overload: {recover_after_s: 0}", "field 'overload.recover_after_s'"},
      {"overload: {fallback: {version: 2}}", "field 'overload.fallback.model'"},
      {"overload: {fallback: {model: b, share: 5}}", "field 'overload.fallback.share'"},
      {"overload: {fallback: {model: missing}}", "field 'overload.fallback': model 'missing'"},
      {"overload: {budget: 3}", "field 'overload.budget': expected no such key"},
      {"overload: [1]", "field 'overload'"},
  };
  for (const auto& [yaml, fragment] : cases) {
    const std::string e = Error("production: {model: a}\n" + yaml + "\n");
    EXPECT_NE(e.find(fragment), std::string::npos) << yaml << "\nerror: " << e;
  }
}

TEST(Router, AMirroredCandidateGetsCopiesOfTheRequestsItDoesNotAnswer) {
  const auto spec = Spec(R"(
production: {model: a, version: 1}
candidates: [{name: v2, model: a, version: 2, mode: canary, steps: [10, 50], mirror: 100}]
)");
  EXPECT_EQ(spec->candidates[0].mirror, 100);
  EXPECT_NE(DeploymentSpecToYaml(*spec).find("mirror: 100"), std::string::npos);
  Router router(spec);
  for (int i = 0; i < 100; ++i) {
    const RouteDecision d = router.Route(Keyed("user-" + std::to_string(i)));
    EXPECT_EQ(d.variant, -1);
    ASSERT_EQ(d.shadows.size(), 1u);
    EXPECT_EQ(d.shadows[0], 0);
  }
  // At a step, the users it answers get no copy of their own request.
  auto stepped = std::make_shared<DeploymentSpec>(*spec);
  stepped->candidates[0].step = 1;
  Router half(stepped);
  int answered = 0;
  for (int i = 0; i < 400; ++i) {
    const RouteDecision d = half.Route(Keyed("user-" + std::to_string(i)));
    if (d.variant == 0) {
      ++answered;
      EXPECT_TRUE(d.shadows.empty());
    } else {
      EXPECT_EQ(d.shadows.size(), 1u);
    }
  }
  EXPECT_GT(answered, 100);
  EXPECT_NE(Error("production: {model: a}\ncandidates: [{name: s, model: b, mode: shadow, share: 5, mirror: 5}]\n")
                .find("candidates[0].mirror"),
            std::string::npos);
  EXPECT_NE(Error("production: {model: a}\ncandidates: [{name: s, model: b, mode: shadow, share: 5}, {name: c, "
                  "model: b, mode: canary, steps: [5], mirror: 50}]\n")
                .find("a mirror counts as a shadow"),
            std::string::npos);
  EXPECT_NE(Error("production: {model: a}\ncandidates: [{name: c, model: b, mode: ab, share: 5}]\nrollout: "
                  "{candidate: c, metric: {name: accuracy}, shadow_first: {}}\n")
                .find("rollout.shadow_first"),
            std::string::npos);
}

// 100,000 simulated keys: each variant's share within 4 standard deviations.
TEST(Router, SharesMatchTheSpecWithinStatisticalTolerance) {
  Router r(Spec(R"(
production: {model: a}
candidates:
  - {name: ab, model: b, mode: ab, share: 10}
  - {name: canary, model: c, mode: canary, steps: [1, 5, 25], step: 1}
  - {name: mirror, model: c, version: 2, mode: shadow, share: 20}
)"));
  const int n = 100000;
  std::map<std::string, int> counts;
  int shadowed = 0, shadowed_in_ab = 0;
  for (int i = 0; i < n; ++i) {
    const auto d = r.Route(Keyed("user-" + std::to_string(i)));
    ++counts[VariantOf(r, d)];
    EXPECT_TRUE(d.keyed);
    if (!d.shadows.empty()) {
      ++shadowed;
      shadowed_in_ab += d.variant == 0;
    }
  }
  auto expect_share = [&](int count, double p, const std::string& what) {
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(count, n * p, 4 * sd) << what;
  };
  expect_share(counts["ab"], 0.10, "ab");
  expect_share(counts["canary"], 0.05, "canary");
  expect_share(counts["production"], 0.85, "production");
  expect_share(shadowed, 0.20, "shadow");
  // Independent layers: the shadow takes 20% of the ab variant's units too.
  expect_share(shadowed_in_ab, 0.10 * 0.20, "shadow within ab");
}

TEST(Router, AssignmentIsStickyAndRandomWithoutAKey) {
  auto spec = Spec("production: {model: a}\ncandidates: [{name: v2, model: b, mode: ab, share: 50}]\n");
  Router r1(spec), r2(spec);
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "k" + std::to_string(i);
    const int first = r1.Route(Keyed(key)).variant;
    for (int t = 0; t < 3; ++t) EXPECT_EQ(r2.Route(Keyed(key)).variant, first);
  }
  // The header carries the key too, and gives the same answer as the parameter.
  RouteInput by_header = Keyed("");
  by_header.header = [](std::string_view n) -> std::optional<std::string> {
    return n == "x-vigil-routing-key" ? std::optional<std::string>("k7") : std::nullopt;
  };
  EXPECT_EQ(r1.Route(by_header).variant, r1.Route(Keyed("k7")).variant);
  // No key: both variants come up for the "same" caller.
  std::set<int> seen;
  int candidate = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto d = r1.Route(RouteInput{});
    EXPECT_FALSE(d.keyed);
    seen.insert(d.variant);
    candidate += d.variant == 0;
  }
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_NEAR(candidate, 1000, 4 * std::sqrt(2000 * 0.25));
}

// Raising a canary through its steps only ever moves units from production
// into it; the other candidate keeps exactly its units.
TEST(Router, RampsAreMonotone) {
  const std::vector<double> steps = {1, 5, 25, 50};
  std::vector<std::set<int>> in_canary(steps.size());
  std::set<int> in_ab_first;
  for (size_t s = 0; s < steps.size(); ++s) {
    Router r(
        Spec("production: {model: a}\ncandidates:\n"
             "  - {name: canary, model: b, mode: canary, steps: [1, 5, 25, 50], step: " +
             std::to_string(s) + "}\n  - {name: ab, model: c, mode: ab, share: 30}\n"));
    std::set<int> in_ab;
    for (int i = 0; i < 50000; ++i) {
      const auto d = r.Route(Keyed("u" + std::to_string(i)));
      if (d.variant == 0) in_canary[s].insert(i);
      if (d.variant == 1) in_ab.insert(i);
    }
    if (s == 0) in_ab_first = in_ab;
    EXPECT_EQ(in_ab, in_ab_first) << "step " << s << ": the ab candidate's units moved";
    EXPECT_NEAR(in_canary[s].size(), 50000 * steps[s] / 100, 4 * std::sqrt(50000 * steps[s] / 100) + 5);
    if (s > 0) {
      for (int u : in_canary[s - 1]) ASSERT_TRUE(in_canary[s].count(u)) << "unit " << u << " left the canary";
    }
  }
}

TEST(Router, FlagRulesFirstMatchWinsAndTheKillSwitchOverrides) {
  const std::string base = R"(
production: {model: a}
candidates: [{name: v2, model: b, mode: ab, share: 0}, {name: v3, model: c, mode: ab, share: 0}]
flags:
  - name: eu
    variant: v2
    rules: [{parameter: country, in: [FR, DE]}, {header: x-app-version, semver: ">=2.3.0"}]
  - name: adults
    variant: v3
    rules: [{parameter: age, op: ">=", value: 18}, {parameter: email, regex: ".*@example\\.com"}]
  - name: not-free
    variant: v3
    rules: [{parameter: plan, not_in: [free]}, {parameter: tier, eq: gold}]
)";
  Router r(Spec(base));
  auto route = [&](std::map<std::string, std::string> p, std::map<std::string, std::string> h = {}) {
    const auto d = r.Route(Keyed("k", std::move(p), std::move(h)));
    return VariantOf(r, d) + "/" + d.reason;
  };
  EXPECT_EQ(route({{"country", "FR"}}, {{"x-app-version", "2.3.0"}}), "v2/flag:eu");
  EXPECT_EQ(route({{"country", "FR"}}, {{"x-app-version", "2.10.1"}}), "v2/flag:eu");
  EXPECT_EQ(route({{"country", "FR"}}, {{"x-app-version", "2.3.0-beta"}}), "production/production");
  EXPECT_EQ(route({{"country", "US"}}, {{"x-app-version", "9.0.0"}}), "production/production");
  EXPECT_EQ(route({{"country", "FR"}}), "production/production");  // a missing header matches no rule
  EXPECT_EQ(route({{"age", "18"}, {"email", "ann@example.com"}}), "v3/flag:adults");
  EXPECT_EQ(route({{"age", "17.9"}, {"email", "ann@example.com"}}), "production/production");
  EXPECT_EQ(route({{"age", "x"}, {"email", "ann@example.com"}}), "production/production");
  EXPECT_EQ(route({{"age", "40"}, {"email", "ann@example.org"}}), "production/production");
  EXPECT_EQ(route({{"plan", "pro"}, {"tier", "gold"}}), "v3/flag:not-free");
  EXPECT_EQ(route({{"plan", "free"}, {"tier", "gold"}}), "production/production");
  // Both flags match: the first wins.
  EXPECT_EQ(route({{"country", "DE"}, {"age", "30"}, {"email", "b@example.com"}}, {{"x-app-version", "3"}}),
            "v2/flag:eu");
  Router killed(Spec(base + "kill_switch: true\n"));
  const auto d = killed.Route(Keyed("k", {{"country", "FR"}}, {{"x-app-version", "3.0.0"}}));
  EXPECT_EQ(d.variant, -1);
  EXPECT_EQ(d.reason, "kill_switch");
}

TEST(Router, PercentageRolloutIsStickyPerFlag) {
  Router r(Spec(R"(
production: {model: a}
candidates: [{name: v2, model: b, mode: ab, share: 0}]
flags: [{name: rollout, variant: v2, rules: [{parameter: country, eq: FR}, {percent: 30}]}]
)"));
  int in = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string key = "u" + std::to_string(i);
    const int v = r.Route(Keyed(key, {{"country", "FR"}})).variant;
    EXPECT_EQ(r.Route(Keyed(key, {{"country", "FR"}})).variant, v);
    in += v == 0;
  }
  EXPECT_NEAR(in, 6000, 4 * std::sqrt(20000 * 0.3 * 0.7));
}

TEST(Semver, ParsesAndOrders) {
  auto v = [](const char* s) { return *ParseSemver(s); };
  EXPECT_LT(CompareSemver(v("1.2.3"), v("1.10.0")), 0);
  EXPECT_LT(CompareSemver(v("2.0.0-rc.1"), v("2.0.0")), 0);
  EXPECT_EQ(CompareSemver(v("v2.3"), v("2.3.0")), 0);
  EXPECT_EQ(CompareSemver(v("2.3.0+build.5"), v("2.3.0")), 0);
  EXPECT_FALSE(ParseSemver("1.2.3.4"));
  EXPECT_FALSE(ParseSemver("1..2"));
  EXPECT_FALSE(ParseSemver("one"));
  EXPECT_FALSE(ParseSemver("1.2.3-"));
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Crash 4 (issue 11): libstdc++'s std::regex recursed once per character
// and overflowed the stack on a 30 KB parameter with the README's own
// pattern. RE2 matches in linear time; values past kMaxRuleInputBytes match
// no rule at all.
TEST(Router, RegexOnAHugeParameterNeitherCrashesNorMatches) {
  auto spec = Spec(R"(
production: {model: a}
candidates: [{name: v2, model: b, mode: ab, share: 0}]
flags:
  - {name: staff, variant: v2, rules: [{parameter: email, regex: ".*@example\\.com"}]}
)");
  Router router(spec);
  EXPECT_EQ(VariantOf(router, router.Route(Keyed("k", {{"email", "ann@example.com"}}))), "v2");
  EXPECT_EQ(VariantOf(router, router.Route(Keyed("k", {{"email", "ann@example.org"}}))), "production");
  const std::string near_cap(kMaxRuleInputBytes - 12, 'a');
  EXPECT_EQ(VariantOf(router, router.Route(Keyed("k", {{"email", near_cap + "@example.com"}}))), "v2");
  for (size_t size : {size_t{30'000}, size_t{1'000'000}}) {
    const std::string huge(size, 'a');
    EXPECT_EQ(VariantOf(router, router.Route(Keyed("k", {{"email", huge + "@example.com"}}))), "production");
  }
}

TEST(DeploymentSpec, RangesAndCountsAreBounded) {
  const std::string prod = "production: {model: a}\n";
  struct Case {
    std::string yaml, fragment;
  };
  const std::vector<Case> cases = {
      // Crash 1 (issue 11): a window of 2^61 s made window_s * 1000 wrap to 0
      // and the monitor thread divide by zero.
      {prod + "monitoring: {quality: {metric: accuracy, below: 0.8, window_s: 2305843009213693952, min_labels: 1}}\n",
       "field 'monitoring.quality.window_s'"},
      {prod + "monitoring: {quality: {metric: accuracy, below: 0.8, min_labels: 9999999999999}}\n",
       "field 'monitoring.quality.min_labels'"},
      {prod + "monitoring: {health: {min_requests: 99999999999}}\n", "field 'monitoring.health.min_requests'"},
      {prod + "monitoring: {health: {latency_p99_ms: 1e300}}\n", "field 'monitoring.health.latency_p99_ms'"},
      {prod + "monitoring: {alert_after: 100000}\n", "field 'monitoring.alert_after'"},
      {"production: {model: a, version: 9223372036854775807}\n", "field 'production.version'"},
      {prod + "candidates: [{name: x, model: b, mode: canary, steps: [" +
           [] {
             std::string steps;
             for (int i = 1; i <= 101; ++i) steps += (i > 1 ? "," : "") + std::to_string(i * 0.5);
             return steps;
           }() +
           "]}]\n",
       "at most 100 entries"},
      {prod + "flags: [{name: f, variant: production, rules: [{parameter: x, regex: '" + std::string(2000, 'a') +
           "'}]}]\n",
       "flags[0].rules[0].regex"},
      {prod + "flags: [{name: f, variant: production, rules: [{parameter: '" + std::string(200, 'p') + "', eq: b}]}]\n",
       "flags[0].rules[0].parameter"},
  };
  for (const auto& c : cases) {
    const std::string e = Error(c.yaml);
    EXPECT_NE(e.find(c.fragment), std::string::npos) << "yaml:\n" << c.yaml.substr(0, 300) << "\nerror: " << e;
  }
  std::string many = prod + "candidates:\n";
  for (size_t i = 0; i <= kMaxCandidates; ++i)
    many += "  - {name: c" + std::to_string(i) + ", model: b, mode: shadow, share: 0}\n";
  EXPECT_NE(Error(many).find("candidates': expected at most"), std::string::npos) << Error(many);
}

// The endpoint name `..` was accepted (it names a path segment in routes).
TEST(DeploymentSpec, EndpointNamesStartWithALetterOrDigit) {
  for (const char* bad : {"..", ".", ".hidden", "-x", "_x"}) {
    EXPECT_NE(Error("production: {model: a}\n", bad).find("field 'endpoint'"), std::string::npos) << bad;
  }
  EXPECT_EQ(Error("production: {model: a}\n", "cancer.v2-b_c"), "");
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Found by fuzz_deployment_spec: a regex holding NUL bytes was accepted, and
// the stored YAML of the spec stopped at the first NUL, so the spec read
// back after a restart was not the one in force.
TEST(DeploymentSpec, TextWithControlCharactersOrInvalidUtf8IsRefused) {
  const std::string prod = "production: {model: a}\n";
  for (const std::string& bad :
       {std::string("\".*@exa\\0mple\""), std::string("\"x\\ty\""), std::string("\"caf\xc3\"")}) {
    const std::string e =
        Error(prod + "flags: [{name: f, variant: production, rules: [{parameter: email, regex: " + bad + "}]}]\n");
    EXPECT_NE(e.find("flags[0].rules[0].regex"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_NE(Error(prod + "flags: [{name: f, variant: production, rules: [{parameter: \"a\\0b\", eq: x}]}]\n")
                .find("control characters"),
            std::string::npos);
  // UTF-8 text is fine, and reads back the same from the stored YAML.
  auto spec = Spec(prod +
                   "flags: [{name: f, variant: production, rules: [{parameter: pays, in: [\"Côte d'Ivoire\", "
                   "\"日本\"]}]}]\n");
  const std::string yaml = DeploymentSpecToYaml(*spec);
  EXPECT_EQ(DeploymentSpecToYaml(*Spec(yaml)), yaml);
  EXPECT_NE(yaml.find("日本"), std::string::npos) << yaml;
}

// Deployments as a shared store keeps them (what two replicas share).
class SharedDeploymentStore final : public DeploymentStore {
 public:
  Status SaveDeployment(const StoredDeployment& d) override {
    specs[d.endpoint] = d;
    return Status::Ok();
  }
  StatusOr<bool> SaveDeploymentIf(const StoredDeployment& d, const std::string& expected_yaml) override {
    auto it = specs.find(d.endpoint);
    if (it == specs.end() || it->second.spec_yaml != expected_yaml) return false;
    it->second = d;
    return true;
  }
  Status DeleteDeployment(const std::string& endpoint) override {
    specs.erase(endpoint);
    return Status::Ok();
  }
  StatusOr<std::vector<StoredDeployment>> LoadDeployments() override {
    std::vector<StoredDeployment> out;
    for (const auto& [_, d] : specs) out.push_back(d);
    return out;
  }
  Status SaveFrontendCounts(const std::vector<FrontendCount>& rows) override {
    for (const auto& c : rows) counts[{c.replica, c.endpoint, c.variant}] = c;
    return Status::Ok();
  }
  StatusOr<std::vector<FrontendCount>> LoadFrontendCounts() override {
    std::vector<FrontendCount> out;
    for (const auto& [_, c] : counts) out.push_back(c);
    return out;
  }
  Status AppendAudit(const AuditEvent& e) override {
    audit.push_back(e);
    return Status::Ok();
  }
  StatusOr<std::vector<AuditEvent>> History(const std::string&, int) override { return audit; }
  std::map<std::string, StoredDeployment> specs;
  std::vector<AuditEvent> audit;
  std::map<std::tuple<std::string, std::string, std::string>, FrontendCount> counts;
};

TEST(Deployments, AmongReplicasAChangeMadeOnAStaleSpecIsMadeAgainOnTheStoredOne) {
  SharedDeploymentStore store;
  Deployments a({.catalog = Catalog(), .directory = {}, .store = &store, .clock = nullptr});
  Deployments b({.catalog = Catalog(), .directory = {}, .store = &store, .clock = nullptr});
  ASSERT_TRUE(a.Apply("ep",
                      "production: {model: a, version: 1}\ncandidates: [{name: v2, model: a, version: 2, "
                      "mode: ab, share: 10}]\n",
                      {"alice", "apply", ""})
                  .ok());
  b.SyncFromStore();
  ASSERT_TRUE(b.Find("ep"));
  // b pauses the endpoint; a, which has not read that yet, changes the share.
  ASSERT_TRUE(b.Mutate("ep",
                       [](DeploymentSpec& s) {
                         s.paused = true;
                         return Status::Ok();
                       },
                       {"bob", "pause", ""})
                  .ok());
  ASSERT_TRUE(a.Mutate("ep",
                       [](DeploymentSpec& s) {
                         s.candidates[0].share = 30;
                         return Status::Ok();
                       },
                       {"carol", "weight", ""})
                  .ok());
  // Both changes hold, in the store and on a.
  auto stored = LoadDeploymentSpec("ep", store.specs.at("ep").spec_yaml, Catalog());
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_TRUE(stored->paused) << "the pause made through b was not lost";
  EXPECT_EQ(stored->candidates[0].share, 30);
  EXPECT_TRUE(a.Find("ep")->spec().paused);
  b.SyncFromStore();
  EXPECT_EQ(b.Find("ep")->spec().candidates[0].share, 30);
  EXPECT_EQ(store.audit.size(), 3u);  // apply, pause, weight: each once
}

TEST(Deployments, ReplicasShareTheirFrontendCountsAndARestartedReplicaGoesOnFromItsOwn) {
  SharedDeploymentStore store;
  const std::string spec =
      "production: {model: a, version: 1}\ncandidates: [{name: v2, model: a, version: 2, mode: ab, share: 10}]\n";
  Deployments a({.catalog = Catalog(), .directory = {}, .store = &store, .clock = nullptr});
  Deployments b({.catalog = Catalog(), .directory = {}, .store = &store, .clock = nullptr});
  ASSERT_TRUE(a.Apply("ep", spec, {"alice", "apply", ""}).ok());
  b.SyncFromStore();
  auto serve = [](Deployments& d, int variant, uint64_t requests, uint64_t errors) {
    VariantStats& s = d.Find("ep")->Stats(variant);
    s.requests += requests;
    s.errors += errors;
  };
  serve(a, -1, 5, 1);
  serve(a, 0, 2, 0);
  serve(b, -1, 7, 2);
  ASSERT_TRUE(a.ShareCounts("a").ok());
  ASSERT_TRUE(b.ShareCounts("b").ok());
  auto shared = [](Deployments& d, const std::string& replica = "") {
    auto read = d.SharedCounts(replica);
    EXPECT_TRUE(read.ok()) << read.status().message();
    return read.ok() ? std::move(read).value() : std::map<std::string, std::map<std::string, Deployments::Counts>>{};
  };
  auto sum = shared(a);
  EXPECT_EQ(sum["ep"]["production"].requests, 12u);
  EXPECT_EQ(sum["ep"]["production"].errors, 3u);
  EXPECT_EQ(sum["ep"]["v2"].requests, 2u);

  // b's own counts are live, the others' as stored at their last poll.
  serve(b, -1, 4, 1);
  EXPECT_EQ(shared(b, "b")["ep"]["production"].requests, 16u);
  EXPECT_EQ(shared(b, "b")["ep"]["production"].errors, 4u);
  EXPECT_EQ(shared(a, "a")["ep"]["production"].requests, 12u) << "b has not written its 4 yet";
  ASSERT_TRUE(b.ShareCounts("b").ok());

  // a restarts (its counters from zero, the same spec): its row goes on from 5.
  Deployments a2({.catalog = Catalog(), .directory = {}, .store = &store, .clock = nullptr});
  a2.Restore();
  serve(a2, -1, 1, 0);
  EXPECT_EQ(shared(a2, "a")["ep"]["production"].requests, 17u) << "6 from a, 11 from b: nothing lost or repeated";
  ASSERT_TRUE(a2.ShareCounts("a").ok());
  EXPECT_EQ(shared(b)["ep"]["production"].requests, 17u);

  // A new spec: counts of the old one are left out until replicas count under it.
  ASSERT_TRUE(b.Apply("ep", spec + "paused: true\n", {"bob", "apply", ""}).ok());
  EXPECT_TRUE(shared(b)["ep"].empty());
  serve(b, -1, 3, 0);
  ASSERT_TRUE(b.ShareCounts("b").ok());
  EXPECT_EQ(shared(b)["ep"]["production"].requests, 3u);
  EXPECT_EQ(shared(b, "b")["ep"]["production"].requests, 3u);
}

}  // namespace
}  // namespace vigil
