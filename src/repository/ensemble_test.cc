#include "repository/ensemble.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

constexpr const char* kEnsemble = R"(
backend: ensemble
max_batch_size: 64
inputs:  [{name: features, datatype: FP32, shape: [30]}]
outputs: [{name: probabilities, datatype: FP32, shape: [2]}]
ensemble:
  members:
    - {model: churn_mlp, weight: 2}
    - {model: churn_xgb, version: 3, output: probs}
  combine: vote
  min_members: 1
)";

constexpr const char* kMember = R"(
backend: torchscript
max_batch_size: 64
inputs:  [{name: features, datatype: FP32, shape: [30]}]
outputs: [{name: probabilities, datatype: FP32, shape: [2]}, {name: logits, datatype: FP32, shape: [2]}]
)";

std::string ErrorOf(const std::string& yaml) {
  auto c = LoadModelConfig("churn_ensemble", yaml);
  return c.ok() ? "" : c.status().message();
}

std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(EnsembleConfig, ParsesMembersWithDefaults) {
  auto c = LoadModelConfig("churn_ensemble", kEnsemble);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->backend, BackendKind::kEnsemble);
  EXPECT_EQ(BackendKindName(c->backend), "ensemble");
  EXPECT_TRUE(BackendModelFileNames(c->backend).empty()) << "an ensemble's version folders hold no file";
  ASSERT_EQ(c->ensemble.members.size(), 2u);
  EXPECT_EQ(c->ensemble.members[0].model, "churn_mlp");
  EXPECT_EQ(c->ensemble.members[0].version, 0);
  EXPECT_EQ(c->ensemble.members[0].output, "probabilities") << "defaults to the ensemble's output";
  EXPECT_EQ(c->ensemble.members[0].weight, 2);
  EXPECT_EQ(c->ensemble.members[1].output, "probs");
  EXPECT_EQ(c->ensemble.members[1].version, 3);
  EXPECT_EQ(c->ensemble.combine, EnsembleCombine::kVote);
  EXPECT_EQ(c->ensemble.min_members, 1);
}

TEST(EnsembleConfig, EveryMistakeNamesItsField) {
  const std::string e = kEnsemble;
  EXPECT_NE(ErrorOf(Replaced(e, "combine: vote", "combine: median")).find("'ensemble.combine': expected mean, vote"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "min_members: 1", "min_members: 3")).find("'ensemble.min_members'"), std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "min_members: 1", "min_members: 0")).find("'ensemble.min_members'"), std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "weight: 2", "weight: -1")).find("'ensemble.members[0].weight'"), std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "weight: 2", "weight: .nan")).find("'ensemble.members[0].weight'"), std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "model: churn_mlp", "model: churn_ensemble")).find("its own member"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "model: churn_mlp", "model: ../x")).find("'ensemble.members[0].model'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "model: churn_xgb, version: 3", "model: churn_mlp")).find("appears twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "version: 3", "version: -3")).find("'ensemble.members[1].version"), std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "weight: 2}", "weight: 2, extra: 1}")).find("extra"), std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "backend: ensemble", "backend: onnx")).find("'ensemble': expected no ensemble block"),
            std::string::npos);
  EXPECT_NE(ErrorOf("backend: ensemble\ninputs: [{name: x, datatype: FP32, shape: [1]}]\n"
                    "outputs: [{name: y, datatype: FP32, shape: [1]}]\n")
                .find("'ensemble': expected an ensemble block"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "outputs: [{name: probabilities, datatype: FP32, shape: [2]}]",
                             "outputs: [{name: p, datatype: FP32, shape: [2]}, {name: q, datatype: FP32, shape: [2]}]"))
                .find("exactly one output"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Replaced(e, "{name: probabilities, datatype: FP32", "{name: probabilities, datatype: INT64"))
                .find("FP32 for an ensemble's output"),
            std::string::npos);
  std::string many =
      "backend: ensemble\ninputs: [{name: x, datatype: FP32, shape: [1]}]\n"
      "outputs: [{name: y, datatype: FP32, shape: [1]}]\nensemble: {members: [";
  for (int i = 0; i < 17; ++i) many += (i ? ", " : "") + std::string("{model: m") + std::to_string(i) + "}";
  EXPECT_NE(ErrorOf(many + "]}\n").find("ensemble.members"), std::string::npos) << "at most 16 members";
}

TEST(EnsembleConfig, MembersAreCheckedAgainstTheirOwnConfigs) {
  auto e = LoadModelConfig("churn_ensemble", kEnsemble);
  auto m = LoadModelConfig("churn_mlp", kMember);
  ASSERT_TRUE(e.ok() && m.ok());
  EXPECT_TRUE(CheckEnsembleMember(*e, 0, *m).ok()) << CheckEnsembleMember(*e, 0, *m).message();
  // Member 1 asks for an output 'probs' this config does not have.
  Status s = CheckEnsembleMember(*e, 1, *m);
  EXPECT_NE(s.message().find("ensemble.members[1] ('churn_xgb').output: 'probs' is not an output"), std::string::npos)
      << s.message();
  auto wrong_input = LoadModelConfig("churn_mlp", Replaced(kMember, "shape: [30]", "shape: [29]"));
  ASSERT_TRUE(wrong_input.ok());
  s = CheckEnsembleMember(*e, 0, *wrong_input);
  EXPECT_NE(s.message().find("input 'features' is FP32 [29], the ensemble's FP32 [30]"), std::string::npos)
      << s.message();
  auto small_batch = LoadModelConfig("churn_mlp", Replaced(kMember, "max_batch_size: 64", "max_batch_size: 8"));
  ASSERT_TRUE(small_batch.ok());
  EXPECT_NE(CheckEnsembleMember(*e, 0, *small_batch).message().find("max_batch_size 8"), std::string::npos);
  auto wide_output = LoadModelConfig("churn_mlp", Replaced(kMember, "{name: probabilities, datatype: FP32, shape: [2]}",
                                                           "{name: probabilities, datatype: FP32, shape: [3]}"));
  ASSERT_TRUE(wide_output.ok());
  EXPECT_NE(CheckEnsembleMember(*e, 0, *wide_output).message().find("is FP32 [3], the ensemble's output"),
            std::string::npos);
  auto renamed = LoadModelConfig("churn_mlp", Replaced(kMember, "{name: features", "{name: x"));
  ASSERT_TRUE(renamed.ok());
  EXPECT_NE(CheckEnsembleMember(*e, 0, *renamed).message().find("has no input 'features'"), std::string::npos);
}

Tensor Rows(const std::vector<float>& values, int64_t rows) {
  Tensor t;
  t.name = "probabilities";
  t.datatype = DataType::kFp32;
  t.shape = {rows, static_cast<int64_t>(values.size()) / rows};
  t.data.resize(values.size() * sizeof(float));
  std::copy(values.begin(), values.end(), t.mutable_as<float>());
  return t;
}

std::vector<float> Values(const Tensor& t) { return {t.as<float>(), t.as<float>() + t.element_count()}; }

TEST(EnsembleCombine, MeanIsWeightedVoteCountsArgmaxesMaxIsElementwise) {
  const Tensor a = Rows({0.9f, 0.1f, 0.2f, 0.8f}, 2);
  const Tensor b = Rows({0.3f, 0.7f, 0.4f, 0.6f}, 2);
  const TensorSpec spec{.name = "probabilities", .datatype = DataType::kFp32, .dims = {2}};
  auto mean = CombineMemberOutputs(EnsembleCombine::kMean, {{&a, 2}, {&b, 1}}, spec);
  ASSERT_TRUE(mean.ok()) << mean.status().message();
  const std::vector<float> m = Values(*mean);
  const std::vector<float> want = {(2 * 0.9f + 0.3f) / 3, (2 * 0.1f + 0.7f) / 3, (2 * 0.2f + 0.4f) / 3,
                                   (2 * 0.8f + 0.6f) / 3};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(m[i], want[i], 1e-6) << i;
  EXPECT_EQ(mean->shape, (Shape{2, 2}));
  EXPECT_EQ(mean->name, "probabilities");

  // Row 0: a votes class 0 (weight 2), b class 1 (weight 1); row 1: both class 1.
  auto vote = CombineMemberOutputs(EnsembleCombine::kVote, {{&a, 2}, {&b, 1}}, spec);
  ASSERT_TRUE(vote.ok());
  const std::vector<float> v = Values(*vote);
  EXPECT_NEAR(v[0], 2.0 / 3, 1e-6);
  EXPECT_NEAR(v[1], 1.0 / 3, 1e-6);
  EXPECT_NEAR(v[2], 0, 1e-6);
  EXPECT_NEAR(v[3], 1, 1e-6);

  auto max = CombineMemberOutputs(EnsembleCombine::kMax, {{&a, 2}, {&b, 1}}, spec);
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(Values(*max), (std::vector<float>{0.9f, 0.7f, 0.4f, 0.8f}));

  // One member left: its own output, whatever the combine.
  auto alone = CombineMemberOutputs(EnsembleCombine::kMean, {{&b, 5}}, spec);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(Values(*alone), Values(b));
}

TEST(EnsembleCombine, AnAnswerOfAnotherShapeIsAnErrorNotARead) {
  const Tensor a = Rows({0.9f, 0.1f, 0.2f, 0.8f}, 2);
  const Tensor one_row = Rows({0.3f, 0.7f}, 1);
  Tensor short_data = a;
  short_data.data.resize(4);
  const TensorSpec spec{.name = "probabilities", .datatype = DataType::kFp32, .dims = {2}};
  auto r = CombineMemberOutputs(EnsembleCombine::kMean, {{&a, 1}, {&one_row, 1}}, spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("member 1"), std::string::npos) << r.status().message();
  EXPECT_FALSE(CombineMemberOutputs(EnsembleCombine::kVote, {{&short_data, 1}}, spec).ok());
  EXPECT_FALSE(CombineMemberOutputs(EnsembleCombine::kMean, {}, spec).ok());
}

}  // namespace
}  // namespace vigil
