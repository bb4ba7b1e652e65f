#include "rollout/rollout.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

ModelCatalog AnyModel() {
  ModelCatalog c;
  c.check = [](const std::string&, int64_t) { return Status::Ok(); };
  c.is_model = [](const std::string& name) { return name == "m"; };
  return c;
}

DeploymentSpec Spec() {
  auto spec = LoadDeploymentSpec("ep", R"(
production: {model: m, version: 1}
candidates:
  - {name: canary, model: m, version: 2, mode: canary, steps: [5, 25, 50]}
  - {name: ab, model: m, version: 3, mode: ab, share: 10}
  - {name: shadow, model: m, version: 4, mode: shadow, share: 100}
)",
                                 AnyModel());
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  return *spec;
}

RolloutAction Weight(const std::string& candidate, std::optional<int> step, std::optional<double> share = {}) {
  return {.kind = RolloutAction::Kind::kSetWeight, .candidate = candidate, .step = step, .share = share};
}

TEST(Rollout, CandidateStatesFollowTheirShare) {
  DeploymentSpec spec = Spec();
  EXPECT_EQ(StateOf(*spec.Candidate("canary")), CandidateState::kWaiting);
  EXPECT_EQ(StateOf(*spec.Candidate("ab")), CandidateState::kProgressing);
  EXPECT_EQ(StateOf(*spec.Candidate("shadow")), CandidateState::kShadow);
  ASSERT_TRUE(ApplyRolloutAction(spec, Weight("canary", 0)).ok());
  EXPECT_EQ(StateOf(*spec.Candidate("canary")), CandidateState::kProgressing);
  EXPECT_EQ(DescribeCandidate(*spec.Candidate("canary")), "step 1/3 (5%)");
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kRollback}).ok());
  EXPECT_EQ(StateOf(*spec.Candidate("canary")), CandidateState::kWaiting);
  EXPECT_EQ(StateOf(*spec.Candidate("ab")), CandidateState::kWaiting);
  EXPECT_EQ(DescribeCandidate(*spec.Candidate("canary")), "waiting (step 0/3)");
  EXPECT_EQ(DescribeCandidate(*spec.Candidate("ab")), "share 0%");
}

TEST(Rollout, WeightsAreRangeCheckedAndNameTheirField) {
  DeploymentSpec spec = Spec();
  Status s = ApplyRolloutAction(spec, Weight("canary", 3));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("step must be -1 to 2, got 3"), std::string::npos) << s.message();
  s = ApplyRolloutAction(spec, Weight("canary", std::nullopt, 10));
  EXPECT_NE(s.message().find("moves by step"), std::string::npos) << s.message();
  s = ApplyRolloutAction(spec, Weight("ab", std::nullopt, 150));
  EXPECT_NE(s.message().find("share must be 0 to 100, got 150"), std::string::npos) << s.message();
  s = ApplyRolloutAction(spec, Weight("shadow", std::nullopt, 5));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ApplyRolloutAction(spec, Weight("nope", 0)).code(), StatusCode::kNotFound);
  ASSERT_TRUE(ApplyRolloutAction(spec, Weight("canary", 2)).ok());
  ASSERT_TRUE(ApplyRolloutAction(spec, Weight("ab", std::nullopt, 20)).ok());
  EXPECT_EQ(spec.Candidate("canary")->CurrentShare(), 50);
  EXPECT_EQ(spec.Candidate("ab")->CurrentShare(), 20);
}

TEST(Rollout, PauseStopsWeightChangesAndPromotionButNotRollback) {
  DeploymentSpec spec = Spec();
  ASSERT_TRUE(ApplyRolloutAction(spec, Weight("canary", 1)).ok());
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPause}).ok());
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPause}).ok());  // twice: a no-op
  EXPECT_TRUE(spec.paused);
  const DeploymentSpec before = spec;
  Status s = ApplyRolloutAction(spec, Weight("canary", 2));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("paused"), std::string::npos) << s.message();
  EXPECT_EQ(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPromote, .candidate = "canary"}).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(DeploymentSpecToYaml(spec), DeploymentSpecToYaml(before));  // a refused action changes nothing
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kRollback, .candidate = "canary"}).ok());
  EXPECT_EQ(spec.Candidate("canary")->step, -1);
  EXPECT_EQ(spec.Candidate("ab")->share, 10);  // only the one named
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kResume}).ok());
  EXPECT_FALSE(spec.paused);
  EXPECT_TRUE(ApplyRolloutAction(spec, Weight("canary", 0)).ok());
}

TEST(Rollout, PromoteMakesTheCandidateProductionAndDropsItsFlags) {
  DeploymentSpec spec = Spec();
  Status s = ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPromote});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);  // two ab/canary candidates: which?
  EXPECT_NE(s.message().find("has 2 ab/canary candidates"), std::string::npos) << s.message();
  EXPECT_NE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPromote, .candidate = "shadow"})
                .message()
                .find("is a shadow"),
            std::string::npos);
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPromote, .candidate = "ab"}).ok());
  EXPECT_EQ(spec.production.version, 3);
  EXPECT_EQ(spec.Candidate("ab"), nullptr);
  // One ab/canary candidate left: promote needs no name.
  ASSERT_TRUE(ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kPromote}).ok());
  EXPECT_EQ(spec.production.version, 2);
  EXPECT_TRUE(ValidateDeploymentSpec(spec, AnyModel()).ok());
}

TEST(Rollout, RollbackOfAnUnknownCandidateIsNamed) {
  DeploymentSpec spec = Spec();
  const Status s = ApplyRolloutAction(spec, {.kind = RolloutAction::Kind::kRollback, .candidate = "nope"});
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no candidate 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace vigil
