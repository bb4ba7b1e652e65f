// `vigil optimize` end to end: every candidate of every example model is
// written as a version of its own, loaded by the real server, and answers
// what the original answers (within the tolerance each claims); bad input
// gets one line and writes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "core/eventually.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

std::vector<double> FirstOutput(const std::string& body) {
  const auto d = ParseBody(body);
  std::vector<double> out;
  if (!d.IsObject() || !d.HasMember("outputs")) return out;
  for (const auto& v : d["outputs"][0]["data"].GetArray()) out.push_back(v.GetDouble());
  return out;
}

TEST(OptimizeCommand, EveryCandidateWrittenLoadsAndAnswersAsTheOriginalDoes) {
  const fs::path repo = ScratchDir("optimize_all");
  CopyExampleRepository(repo);
  struct Written {
    std::string model, name;
    int64_t version;
    bool exact;
  };
  std::vector<Written> written;
  std::map<std::string, int64_t> original;
  for (const std::string model : {"breast_cancer_mlp", "breast_cancer_mlp_onnx", "breast_cancer_xgb"}) {
    // Serve every version, so the candidates can be called side by side.
    std::string config = ReadFile(repo / model / "config.yaml");
    config = std::regex_replace(config, std::regex("version_policy:[^\\n]*\\n(  latest: \\d+\\n)?"), "");
    WriteFile(repo / model / "config.yaml", config + "version_policy: all\n");
    CommandResult r = RunVigil(
        {"optimize", model, "--model-repository", repo.string(), "--seconds", "0.05", "--json", "--write", "all"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto report = ParseBody(r.out);
    ASSERT_TRUE(report.IsObject()) << r.out;
    original[model] = report["version"].GetInt64();
    // stderr says which version each candidate became, in order.
    std::smatch m;
    std::string err = r.err;
    const std::regex line("wrote '([^']+)' as [a-z_]+ version (\\d+)");
    while (std::regex_search(err, m, line)) {
      bool exact = false;
      for (const auto& c : report["candidates"].GetArray()) {
        if (c["name"].GetString() == m[1].str()) exact = c["exact"].GetBool();
      }
      written.push_back({model, m[1], std::stoll(m[2]), exact});
      err = m.suffix();
    }
  }
  ASSERT_GE(written.size(), 6u);

  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto c = server->Client();
  const std::string body = FeaturesBody(8);
  for (const auto& w : written) {
    const std::string base = "/v2/models/" + w.model + "/versions/";
    ASSERT_TRUE(Eventually([&] {
      auto ready = c->Get(base + std::to_string(w.version) + "/ready");
      return ready.ok() && ready->status == 200;
    })) << w.model
        << " " << w.name << " version " << w.version << " never became ready";
    auto want = c->Post(base + std::to_string(original[w.model]) + "/infer", body);
    auto got = c->Post(base + std::to_string(w.version) + "/infer", body);
    ASSERT_TRUE(want.ok() && got.ok());
    ASSERT_EQ(got->status, 200u) << w.name << ": " << got->body;
    const auto a = FirstOutput(want->body), b = FirstOutput(got->body);
    ASSERT_EQ(a.size(), b.size()) << w.name;
    if (!w.exact) continue;  // a lossy cut answers, differently by design
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4) << w.model << " " << w.name << " " << i;
  }
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(OptimizeCommand, BadInputGetsOneLineAndWritesNothing) {
  const fs::path repo = ScratchDir("optimize_bad");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"optimize", "nope", "--model-repository", repo.string()}, "no model 'nope' in "},
      {{"optimize", "breast_cancer_mlp", "--model-repository", repo.string(), "--version", "7"}, "has no version 7"},
      {{"optimize", "breast_cancer_mlp", "--model-repository", repo.string(), "--seconds", "0.05", "--write",
        "fastest"},
       "--write 'fastest': no such candidate (candidates: 'original', 'freeze'"},
      {{"optimize", "breast_cancer_mlp", "--model-repository", (repo / "missing").string()}, "--model-repository"},
  };
  for (const auto& k : cases) {
    CommandResult r = RunVigil(k.args, 60);
    EXPECT_NE(r.exit_code, 0) << k.args[1];
    EXPECT_NE(r.err.find(k.want), std::string::npos) << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_FALSE(fs::exists(repo / "breast_cancer_mlp" / "3"));
  fs::remove_all(repo);
}

// `vigil distill --for-endpoint`: the student is a model the real server
// loads and serves, and the endpoint's spec names it as its fallback.
TEST(DistillCommand, AStudentServesThroughTheServerAsAnEndpointsFallback) {
  const fs::path repo = ScratchDir("distill");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  fs::create_directories(repo / "deployments");
  WriteFile(repo / "deployments" / "cancer.yaml", "production: {model: breast_cancer_mlp}\n");
  CommandResult r = RunVigil({"distill", "breast_cancer_mlp", "--model-repository", repo.string(), "--student", "mlp",
                              "--hidden", "16", "--seconds", "0.05", "--for-endpoint", "cancer"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote model 'breast_cancer_mlp_distilled_mlp'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("overload.fallback is now 'breast_cancer_mlp_distilled_mlp'"), std::string::npos) << r.out;

  // An endpoint without a spec file: the student is still written, and the message says what to do.
  CommandResult missing =
      RunVigil({"distill", "breast_cancer_mlp", "--model-repository", repo.string(), "-o", "student2", "--trees", "5",
                "--depth", "2", "--seconds", "0.05", "--for-endpoint", "elsewhere"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("the student 'student2' was written, but: endpoint 'elsewhere' has no spec file"),
            std::string::npos)
      << missing.err;
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto c = server->Client();
  ASSERT_TRUE(Eventually([&] {
    auto ready = c->Get("/v2/models/breast_cancer_mlp_distilled_mlp/ready");
    return ready.ok() && ready->status == 200;
  }));
  const std::string body = FeaturesBody(8);
  auto teacher = c->Post("/v2/models/breast_cancer_mlp/infer", body);
  auto student = c->Post("/v2/models/breast_cancer_mlp_distilled_mlp/infer", body);
  ASSERT_TRUE(teacher.ok() && student.ok());
  ASSERT_EQ(student->status, 200u) << student->body;
  const auto t = FirstOutput(teacher->body), s = FirstOutput(student->body);
  ASSERT_EQ(s.size(), 16u);
  int same = 0;
  for (size_t row = 0; row < 8; ++row) {
    EXPECT_NEAR(s[2 * row] + s[2 * row + 1], 1, 1e-5) << "probabilities";
    same += (s[2 * row + 1] > s[2 * row]) == (t[2 * row + 1] > t[2 * row]);
  }
  EXPECT_GE(same, 7) << "the student answers the teacher's class";
  auto spec = c->Get("/v1/deployments/cancer");
  ASSERT_TRUE(spec.ok());
  EXPECT_NE(spec->body.find("breast_cancer_mlp_distilled_mlp"), std::string::npos) << spec->body;
  // Through the endpoint, calm: the full model answers.
  auto calm = c->Post("/v2/models/cancer/infer", body);
  ASSERT_TRUE(calm.ok());
  EXPECT_EQ(calm->status, 200u) << calm->body;
  EXPECT_NE(calm->body.find("\"vigil.model\":\"breast_cancer_mlp\""), std::string::npos) << calm->body;
  // The XGBoost student serves too, answering two probabilities per row.
  auto trees = c->Post("/v2/models/student2/infer", body);
  ASSERT_TRUE(trees.ok());
  ASSERT_EQ(trees->status, 200u) << trees->body;
  EXPECT_EQ(FirstOutput(trees->body).size(), 16u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

}  // namespace
}  // namespace vigil::testing
