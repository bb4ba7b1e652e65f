#include "scheduling/batch_assembly.h"

#include <gtest/gtest.h>

#include "scheduling/test_util.h"

namespace vigil {
namespace {

using testing::MakeRequest;

TEST(BatchAssembly, ConcatenatesAndSplitsRowsBackExactly) {
  std::vector<std::unique_ptr<InferenceRequest>> batch;
  batch.push_back(MakeRequest("a", 2, {}, 3, 0));
  batch.push_back(MakeRequest("b", 1, {}, 3, 100));
  batch.push_back(MakeRequest("c", 3, {}, 3, 200));
  auto inputs = ConcatenateInputs(batch);
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].shape, (Shape{6, 3}));
  const float* f = inputs[0].as<float>();
  EXPECT_EQ(f[0], 0);
  EXPECT_EQ(f[3], 1);
  EXPECT_EQ(f[6], 100);
  EXPECT_EQ(f[9], 200);
  EXPECT_EQ(f[17], 202);

  // An "identity" model: outputs are the inputs; each request gets its own rows.
  auto split = SplitOutputs(std::move(inputs), {2, 1, 3});
  ASSERT_TRUE(split.ok()) << split.status().message();
  ASSERT_EQ(split->size(), 3u);
  for (size_t r = 0; r < 3; ++r) {
    const Tensor& got = (*split)[r][0];
    const Tensor& sent = batch[r]->inputs[0];
    EXPECT_EQ(got.shape, sent.shape) << r;
    EXPECT_EQ(got.data, sent.data) << r;
  }
}

TEST(BatchAssembly, SplitFailsWhenTheModelDropsRows) {
  Tensor t;
  t.name = "y";
  t.datatype = DataType::kFp32;
  t.shape = {2, 1};
  t.data.resize(8);
  std::vector<Tensor> outs = {t};
  auto split = SplitOutputs(std::move(outs), {2, 1});
  EXPECT_EQ(split.status().code(), StatusCode::kInternal);
  EXPECT_NE(split.status().message().find("expected 3 rows"), std::string::npos);
}

TEST(BatchAssembly, CheckOutputsComparesWithTheSpec) {
  Tensor t;
  t.name = "y";
  t.datatype = DataType::kFp32;
  t.shape = {4, 2};
  t.data.resize(32);
  std::vector<TensorSpec> spec = {{"y", DataType::kFp32, {2}}};
  EXPECT_TRUE(CheckOutputs({t}, spec, true, 4).ok());
  EXPECT_FALSE(CheckOutputs({t}, spec, true, 5).ok());
  spec[0].dims = {3};
  EXPECT_NE(CheckOutputs({t}, spec, true, 4).message().find("config declares"), std::string::npos);
  spec[0] = {"y", DataType::kFp64, {2}};
  EXPECT_FALSE(CheckOutputs({t}, spec, true, 4).ok());
  EXPECT_FALSE(CheckOutputs({}, spec, true, 4).ok());
}

}  // namespace
}  // namespace vigil
