#include "repository/model_repository.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

#include "core/eventually.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Answers every row with the row's first value in each output column; fails
// to load when the model file holds "broken".
class FakeBackend final : public Backend {
 public:
  explicit FakeBackend(BackendSpec spec) : spec_(std::move(spec)) {}
  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    const int64_t rows = spec_.max_batch_size > 0 ? inputs[0].shape[0] : 1;
    const int64_t width = inputs[0].element_count() / rows;
    outputs.clear();
    for (const TensorSpec& o : spec_.outputs) {
      Tensor t;
      t.name = o.name;
      t.datatype = DataType::kFp32;
      t.shape = {rows};
      t.shape.insert(t.shape.end(), o.dims.begin(), o.dims.end());
      t.data.assign(t.expected_byte_size(), 0);
      const int64_t per_row = t.element_count() / rows;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < per_row; ++k) t.mutable_as<float>()[r * per_row + k] = inputs[0].as<float>()[r * width];
      }
      outputs.push_back(std::move(t));
    }
    return Status::Ok();
  }

 private:
  BackendSpec spec_;
};

struct Repo {
  fs::path root = fs::temp_directory_path() / ("vigil_repo_test_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::atomic<int> created{0};
  std::unique_ptr<ModelRepository> repository;

  Repo() { fs::remove_all(root); }
  ~Repo() {
    repository.reset();
    fs::remove_all(root);
  }
  void Model(const std::string& name, const std::string& policy, const std::vector<int>& versions,
             const std::string& broken_version = "") {
    fs::create_directories(root / name);
    std::ofstream(root / name / "config.yaml") << "backend: onnx\nmax_batch_size: 8\n"
                                                  "inputs: [{name: x, datatype: FP32, shape: [3]}]\n"
                                                  "outputs: [{name: y, datatype: FP32, shape: [2]}]\n"
                                                  "monitoring: {enabled: false}\n"
                                               << "version_policy: " << policy << "\n";
    for (int v : versions) {
      fs::create_directories(root / name / std::to_string(v));
      std::ofstream(root / name / std::to_string(v) / "model.onnx")
          << (std::to_string(v) == broken_version ? "broken" : "fake");
    }
  }
  void Open() {
    ModelRepository::Options o;
    o.root = root;
    o.backends = [this](std::string_view kind, const BackendSpec& spec) -> StatusOr<std::unique_ptr<Backend>> {
      EXPECT_EQ(kind, "onnx");
      std::ifstream in(spec.model_path);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (text == "broken") return InvalidArgument("cannot load " + spec.model_path.filename().string());
      ++created;
      return std::unique_ptr<Backend>(new FakeBackend(spec));
    };
    auto made = ModelRepository::Create(o);
    ASSERT_TRUE(made.ok()) << made.status().message();
    repository = std::move(made).value();
    repository->Poll();
  }
  std::map<std::string, std::pair<VersionState, std::string>> Index() const {
    std::map<std::string, std::pair<VersionState, std::string>> out;
    for (const auto& row : repository->Index()) out[row.model + ":" + row.version] = {row.state, row.reason};
    return out;
  }
};

TEST(ModelRepository, LoadsWhatThePolicySelectsAndServesThroughTheBackend) {
  Repo r;
  r.Model("m", "{latest: 1}", {1, 2});
  r.Model("all", "all", {1, 2, 3}, /*broken_version=*/"3");
  r.Open();
  auto index = r.Index();
  EXPECT_EQ(index.count("m:1"), 0u);  // not selected
  EXPECT_EQ(index["m:2"].first, VersionState::kReady);
  EXPECT_EQ(index["all:1"].first, VersionState::kReady);
  EXPECT_EQ(index["all:3"].first, VersionState::kUnavailable);
  EXPECT_NE(index["all:3"].second.find("cannot load model.onnx"), std::string::npos) << index["all:3"].second;

  auto latest = r.repository->Acquire("m", 0);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ((*latest)->version(), 2);
  EXPECT_EQ(r.repository->Acquire("m", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.repository->Acquire("nope", 0).status().code(), StatusCode::kNotFound);
  // The version runs its rows through the (fake) backend.
  Tensor x;
  x.name = "x";
  x.datatype = DataType::kFp32;
  x.shape = {2, 3};
  x.data.assign(x.expected_byte_size(), 0);
  x.mutable_as<float>()[0] = 5;
  x.mutable_as<float>()[3] = 7;
  auto out = (*latest)->scheduler()->RunDirect({x}, 2);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ((*out)[0].as<float>()[0], 5);
  EXPECT_EQ((*out)[0].as<float>()[2], 7);
}

TEST(ModelRepository, VersionsADeploymentNamesStayLoadedWhateverThePolicy) {
  Repo r;
  r.Model("m", "{latest: 1}", {1, 2});
  r.Open();
  r.repository->KeepLoaded("m", 1);
  ASSERT_TRUE(r.repository->Find("m", 1).ok());
  r.repository->KeepOnly({{{"m", 1}, "endpoint churn"}});
  r.repository->Poll();  // a poll keeps it
  auto index = r.Index();
  EXPECT_EQ(index["m:1"].first, VersionState::kReady);
  EXPECT_EQ(index["m:1"].second, "kept loaded: version_policy does not select it; named by endpoint churn");
  EXPECT_EQ(index["m:2"].second, "");
  const int loads = r.created.load();
  r.repository->KeepOnly({{{"m", 1}, "endpoint churn"}});  // the same set again: nothing reloads
  EXPECT_EQ(r.created.load(), loads);
  r.repository->KeepOnly({});  // no longer named: the policy decides again
  EXPECT_FALSE(r.repository->Find("m", 1).ok());
  EXPECT_TRUE(Eventually([&] { return r.Index().count("m:1") == 0; }));
  // A version that is not on disk cannot be kept.
  r.repository->KeepLoaded("m", 9);
  EXPECT_EQ(r.repository->Find("m", 9).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace vigil
