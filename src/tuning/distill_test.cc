#include "tuning/distill.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>

#include "store/store.h"
#include "tuning/model_files.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";

fs::path CopyExamples(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vigil_distill_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::copy(kExamples, dir, fs::copy_options::recursive);
  return dir;
}

DistillOptions Quick(const fs::path& repo, StudentKind kind) {
  DistillOptions o;
  o.repository = repo;
  o.teacher = "breast_cancer_mlp";
  o.student = kind;
  o.seconds = 0.05;
  return o;
}

// The stated agreement: a student of the example MLP agrees with it on at
// least 90% of rows it never saw, whichever kind; the smallest student
// within half a point of the best is written as a model that loads.
TEST(Distill, AStudentOfTheExampleMlpAgreesWithItOnHeldOutRowsAndIsWritten) {
  const fs::path repo = CopyExamples("students");
  for (StudentKind kind : {StudentKind::kXgboost, StudentKind::kMlp}) {
    DistillOptions o = Quick(repo, kind);
    auto report = RunDistill(o, nullptr);
    ASSERT_TRUE(report.ok()) << report.status().message();
    EXPECT_EQ(report->target, "class probabilities");
    EXPECT_EQ(report->reference_rows, 200);
    EXPECT_EQ(report->held_out_rows, 40);
    EXPECT_EQ(report->train_rows, 160);
    ASSERT_TRUE(report->chosen.has_value());
    EXPECT_EQ(report->students.size(), kind == StudentKind::kXgboost ? 4u : 3u);
    double best = 0;
    for (const auto& s : report->students) {
      ASSERT_TRUE(s.error.empty()) << s.name << ": " << s.error;
      EXPECT_GT(s.bytes, 0);
      EXPECT_GT(s.speed.rows_per_s, 0);
      best = std::max(best, s.held_out.agreement);
    }
    const StudentResult& chosen = report->students[*report->chosen];
    EXPECT_GE(chosen.held_out.agreement, 0.9) << chosen.name;
    EXPECT_GE(chosen.held_out.agreement, best - 0.005);
    ASSERT_TRUE(chosen.held_out.accuracy.has_value());
    EXPECT_GE(*chosen.held_out.accuracy, 0.9);

    const std::string name =
        kind == StudentKind::kXgboost ? "breast_cancer_mlp_distilled_xgb" : "breast_cancer_mlp_distilled_mlp";
    EXPECT_EQ(report->written, name);
    EXPECT_TRUE(fs::exists(repo / name / "reference.csv"));
    auto files = FindModelFiles(repo, name, 1);
    ASSERT_TRUE(files.ok()) << files.status().message();
    EXPECT_EQ(files->config.outputs[0].name, "probabilities");
    EXPECT_EQ(files->config.inputs[0].name, "features");
    auto backend = CreateBackend(BackendKindName(files->config.backend), files->Spec());
    ASSERT_TRUE(backend.ok()) << backend.status().message();
    // Again under the same name: refused, nothing touched.
    EXPECT_NE(RunDistill(o, nullptr).status().message().find("already exists"), std::string::npos);
    rapidjson::Document d;
    d.Parse(DistillJson(*report).c_str());
    EXPECT_FALSE(d.HasParseError());
    EXPECT_NE(FormatDistillTable(*report).find("chosen: "), std::string::npos);
  }
  for (const auto& e : fs::directory_iterator(repo)) {
    EXPECT_EQ(e.path().filename().string().find(".vigil-distill"), std::string::npos) << "scratch left behind";
  }
  fs::remove_all(repo);
}

// The prediction log's sampled inputs are rows too: an endpoint's logged
// traffic joins the reference rows (whole rows only, of every request).
TEST(Distill, TheLoggedInputsOfAnEndpointAreLearnedFromAndBadInputIsNamed) {
  const fs::path repo = CopyExamples("logged");
  const fs::path data = repo.string() + "_data";
  fs::remove_all(data);
  fs::create_directories(data);
  {
    auto store = OpenSqliteStore(data.string());
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::ifstream csv(kExamples / "breast_cancer_mlp" / "reference.csv");
    std::string line;
    std::getline(csv, line);  // header
    std::vector<PredictionRecord> records;
    for (int i = 0; std::getline(csv, line) && i < 100; ++i) {
      PredictionRecord r;
      r.id = "p" + std::to_string(i);
      r.time_ms = 1'700'000'000'000 + i;
      r.endpoint = i % 10 == 0 ? "other" : "cancer";
      r.variant = "production";
      r.model = "breast_cancer_mlp";
      r.version = 2;
      r.outputs = "[0.5,0.5]";
      r.inputs = "[" + line.substr(0, line.rfind(',')) + "]";  // the 30 features, not the label
      records.push_back(r);
    }
    ASSERT_TRUE((*store)->WritePredictions(records).ok());
  }
  DistillOptions o = Quick(repo, StudentKind::kXgboost);
  o.trees = {10};
  o.depths = {2};
  o.write = false;
  o.data_dir = data.string();
  o.endpoint = "cancer";
  auto report = RunDistill(o, nullptr);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->log_rows, 90);
  EXPECT_EQ(report->train_rows + report->held_out_rows, 290);
  EXPECT_EQ(report->written, "");
  EXPECT_FALSE(fs::exists(repo / "breast_cancer_mlp_distilled_xgb"));

  o.endpoint = "";
  EXPECT_NE(RunDistill(o, nullptr).status().message().find("needs --endpoint"), std::string::npos);
  o = Quick(repo, StudentKind::kXgboost);
  o.teacher = "nope";
  EXPECT_NE(RunDistill(o, nullptr).status().message().find("no model 'nope'"), std::string::npos);
  o = Quick(repo, StudentKind::kXgboost);
  o.output = "../escape";
  EXPECT_NE(RunDistill(o, nullptr).status().message().find("is not a model name"), std::string::npos);
  o = Quick(repo, StudentKind::kXgboost);
  o.max_rows = 10;  // 10 rows: 8 to train on
  EXPECT_NE(RunDistill(o, nullptr).status().message().find("rows to train on"), std::string::npos);
  fs::remove_all(repo);
  fs::remove_all(data);
}

}  // namespace
}  // namespace vigil
