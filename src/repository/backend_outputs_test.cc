// Every backend reproduces the outputs the Python runtimes produced for the
// example models (examples/train.py writes them to expected.json), and a
// broken model file is an error, never a crash.
#include "backends/backend.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "repository/model_config.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
const fs::path kRepo = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";
// The overload fixture (tests/fixtures/overload_models.py, generated at build time).
const fs::path kFixtures = fs::path(VIGIL_FIXTURES_DIR);

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

BackendSpec SpecFor(const std::string& model, int64_t version, ModelConfig* config_out = nullptr,
                    const fs::path& repo = kRepo) {
  auto config = LoadModelConfig(model, Slurp(repo / model / "config.yaml"));
  EXPECT_TRUE(config.ok()) << config.status().message();
  BackendSpec spec;
  spec.model_name = model;
  spec.version = version;
  for (const auto& name : BackendModelFileNames(config->backend)) {
    if (fs::exists(repo / model / std::to_string(version) / name))
      spec.model_path = repo / model / std::to_string(version) / name;
  }
  spec.max_batch_size = config->max_batch_size;
  spec.inputs = config->inputs;
  spec.outputs = config->outputs;
  if (config_out) *config_out = *config;
  return spec;
}

struct Case {
  std::string model;
  int64_t version;
  fs::path repo = kRepo;
};

class ExpectedOutputs : public ::testing::TestWithParam<Case> {};

TEST_P(ExpectedOutputs, MatchWithin1e5) {
  ModelConfig config;
  const BackendSpec spec = SpecFor(GetParam().model, GetParam().version, &config, GetParam().repo);
  auto backend = CreateBackend(BackendKindName(config.backend), spec);
  ASSERT_TRUE(backend.ok()) << backend.status().message();

  rapidjson::Document doc;
  doc.Parse(Slurp(GetParam().repo / GetParam().model / std::to_string(GetParam().version) / "expected.json").c_str());
  ASSERT_FALSE(doc.HasParseError());
  const auto& rows = doc["inputs"]["features"];
  Tensor in;
  in.name = "features";
  in.datatype = DataType::kFp32;
  in.shape = {static_cast<int64_t>(rows.Size()), 30};
  for (const auto& row : rows.GetArray()) {
    for (const auto& x : row.GetArray()) {
      const float f = x.GetFloat();
      const auto* b = reinterpret_cast<const uint8_t*>(&f);
      in.data.insert(in.data.end(), b, b + 4);
    }
  }
  std::vector<Tensor> outputs;
  const Status s = (*backend)->Execute({in}, outputs);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(outputs.size(), config.outputs.size());
  for (size_t o = 0; o < outputs.size(); ++o) {
    const auto& want = doc["outputs"][config.outputs[o].name.c_str()];
    ASSERT_EQ(outputs[o].shape, (Shape{static_cast<int64_t>(rows.Size()), 2}));
    const float* got = outputs[o].as<float>();
    for (rapidjson::SizeType r = 0; r < want.Size(); ++r) {
      for (rapidjson::SizeType c = 0; c < 2; ++c) {
        EXPECT_NEAR(got[r * 2 + c], want[r][c].GetDouble(), 1e-5)
            << config.outputs[o].name << " row " << r << " col " << c;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, ExpectedOutputs,
                         ::testing::Values(Case{"breast_cancer_mlp", 1}, Case{"breast_cancer_mlp", 2},
                                           Case{"breast_cancer_mlp_onnx", 1}, Case{"breast_cancer_xgb", 1},
                                           Case{"breast_cancer_xgb", 2}, Case{"overload_wide", 1, kFixtures},
                                           Case{"overload_small", 1, kFixtures}),
                         [](const auto& info) { return info.param.model + "_v" + std::to_string(info.param.version); });

class CorruptFile : public ::testing::TestWithParam<std::string> {};

TEST_P(CorruptFile, IsAnErrorThatNamesTheModel) {
  const fs::path dir = fs::temp_directory_path() / ("vigil_corrupt_" + GetParam());
  fs::create_directories(dir);
  const fs::path file = dir / "model.bin";
  std::ofstream(file) << "this is not a model";
  BackendSpec spec;
  spec.model_name = "broken";
  spec.version = 3;
  spec.model_path = file;
  spec.max_batch_size = 8;
  spec.inputs = {{"features", DataType::kFp32, {30}}};
  spec.outputs = {{"probabilities", DataType::kFp32, {2}}};
  auto backend = CreateBackend(GetParam(), spec);
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("model 'broken' version 3"), std::string::npos)
      << backend.status().message();
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, CorruptFile, ::testing::Values("onnx", "torchscript", "xgboost"));

TEST(XgboostBackend, FeatureCountMismatchWithTheConfigIsAnError) {
  BackendSpec spec = SpecFor("breast_cancer_xgb", 1);
  spec.inputs[0].dims = {31};
  auto backend = CreateBackend("xgboost", spec);
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("expects 30 features"), std::string::npos) << backend.status().message();
}

TEST(OnnxBackend, UnknownOutputNameIsAnError) {
  BackendSpec spec = SpecFor("breast_cancer_mlp_onnx", 1);
  spec.outputs[0].name = "scores";
  auto backend = CreateBackend("onnx", spec);
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("'scores'"), std::string::npos) << backend.status().message();
}

TEST(Backends, UnknownKindIsUnimplemented) {
  BackendSpec spec;
  spec.model_name = "m";
  EXPECT_EQ(CreateBackend("tensorflow", spec).status().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace vigil
