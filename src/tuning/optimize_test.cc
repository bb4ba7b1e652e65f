#include "tuning/optimize.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tuning/model_files.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";

// A scratch copy of the example repository (tests write versions into it).
fs::path CopyExamples(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vigil_optimize_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::copy(kExamples, dir, fs::copy_options::recursive);
  return dir;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

OptimizeOptions Quick(const std::string& model, const fs::path& repository = kExamples) {
  OptimizeOptions o;
  o.repository = repository;
  o.model = model;
  o.seconds = 0.1;  // what is checked here is correctness, not speed
  return o;
}

TEST(OptimizeCandidates, EachRuntimeOffersItsOwnSettingsOnceEach) {
  const BackendOptions base;
  auto names = [](const std::vector<OptimizeCandidate>& cs) {
    std::vector<std::string> out;
    for (const auto& c : cs) out.push_back(c.name);
    return out;
  };
  EXPECT_EQ(names(CandidatesFor("torchscript", base, 2, 0, {})),
            (std::vector<std::string>{"original", "freeze", "optimize_for_inference", "threads=2",
                                      "optimize_for_inference, threads=2"}));
  // The original's own settings are not tried twice.
  EXPECT_EQ(
      names(CandidatesFor("onnx", base, 1, 0, {{"opencv", "cpu"}, {"opencv", "opencl"}})),
      (std::vector<std::string>{"original", "opencv/cpu, no fusion", "opencv/opencl", "opencv/opencl, no fusion"}));
  const auto xgb = CandidatesFor("xgboost", base, 4, 80, {});
  EXPECT_EQ(names(xgb), (std::vector<std::string>{"original", "threads=2", "threads=4", "through a DMatrix",
                                                  "trees=40 of 80", "trees=20 of 80"}));
  EXPECT_TRUE(xgb[4].lossy);
  EXPECT_EQ(xgb[4].options.iteration_end, 40);
  EXPECT_FALSE(xgb[1].lossy);
  EXPECT_EQ(CandidatesFor("xgboost", base, 1, 1, {}).size(), 2u) << "one tree: no cut, one thread: no threads";
}

// Every candidate of every example model: exact ones match the original
// within the stated tolerance (checked here against the outputs, not only
// the report's word), lossy ones say what they cost.
TEST(Optimize, EveryExactCandidateOfTheExampleModelsMatchesTheOriginal) {
  for (const std::string model : {"breast_cancer_mlp", "breast_cancer_mlp_onnx", "breast_cancer_xgb"}) {
    auto report = RunOptimize(Quick(model), nullptr);
    ASSERT_TRUE(report.ok()) << model << ": " << report.status().message();
    EXPECT_EQ(report->rows, 200) << model;
    EXPECT_EQ(report->labelled, 200) << model;
    ASSERT_GE(report->candidates.size(), 2u) << model;
    const OptimizeCandidate& original = report->candidates[0];
    EXPECT_EQ(original.max_abs_diff, 0) << model;
    EXPECT_EQ(original.agreement, 1) << model;
    ASSERT_TRUE(original.accuracy.has_value()) << model;
    EXPECT_GT(*original.accuracy, 0.9) << model;
    for (const auto& c : report->candidates) {
      ASSERT_TRUE(c.error.empty()) << model << " " << c.name << ": " << c.error;
      EXPECT_GT(c.rows_per_s, 0) << model << " " << c.name;
      EXPECT_GT(c.p50_ms, 0) << model << " " << c.name;
      EXPECT_GE(c.p99_ms, c.p50_ms) << model << " " << c.name;
      EXPECT_EQ(c.exact, c.max_abs_diff <= 1e-4) << model << " " << c.name;
      if (!c.lossy) {
        EXPECT_TRUE(c.exact) << model << " " << c.name << " differs by " << c.max_abs_diff;
      }
    }
    if (report->recommended) {
      EXPECT_TRUE(report->candidates[*report->recommended].exact);
    }
    rapidjson::Document d;
    d.Parse(OptimizeJson(*report).c_str());
    ASSERT_FALSE(d.HasParseError()) << model;
    EXPECT_EQ(d["candidates"].Size(), report->candidates.size());
    EXPECT_NE(FormatOptimizeTable(*report).find("original"), std::string::npos);
  }
  // The XGBoost model's tree cuts are lossy and say so: outputs differ, fewer rows agree or as many.
  auto xgb = RunOptimize(Quick("breast_cancer_xgb"), nullptr);
  ASSERT_TRUE(xgb.ok());
  bool cut = false;
  for (const auto& c : xgb->candidates) {
    if (!c.lossy) continue;
    cut = true;
    EXPECT_FALSE(c.exact) << c.name;
    EXPECT_GT(c.max_abs_diff, 1e-4) << c.name;
    EXPECT_LE(c.agreement, 1.0) << c.name;
  }
  EXPECT_TRUE(cut);
}

TEST(Optimize, BadInputGetsOneClearErrorAndTouchesNothing) {
  EXPECT_EQ(RunOptimize(Quick("no_such_model"), nullptr).status().message(),
            "no model 'no_such_model' in " + kExamples.string());
  EXPECT_EQ(RunOptimize(Quick("../etc"), nullptr).status().code(), StatusCode::kInvalidArgument);
  OptimizeOptions o = Quick("breast_cancer_mlp");
  o.version = 9;
  EXPECT_NE(RunOptimize(o, nullptr).status().message().find("has no version 9 (versions: 1, 2)"), std::string::npos);
  o.version = 0;
  o.max_abs_diff = -1;
  EXPECT_EQ(RunOptimize(o, nullptr).status().code(), StatusCode::kInvalidArgument);

  const fs::path repo = CopyExamples("bad");
  fs::remove(repo / "breast_cancer_xgb" / "reference.csv");
  EXPECT_NE(RunOptimize(Quick("breast_cancer_xgb", repo), nullptr).status().message().find("has no reference.csv"),
            std::string::npos);
  fs::create_directories(repo / "ens" / "1");
  std::ofstream(repo / "ens" / "config.yaml")
      << "backend: ensemble\nmax_batch_size: 8\ninputs: [{name: features, datatype: FP32, shape: [30]}]\n"
         "outputs: [{name: probabilities, datatype: FP32, shape: [2]}]\n"
         "ensemble: {members: [{model: breast_cancer_mlp}]}\n";
  EXPECT_NE(RunOptimize(Quick("ens", repo), nullptr).status().message().find("is an ensemble"), std::string::npos);
  // A candidate that does not load is reported on its line; the others still run.
  OptimizeOptions broken = Quick("breast_cancer_mlp", repo);
  broken.backends = [](std::string_view kind, const BackendSpec& spec) -> StatusOr<std::unique_ptr<Backend>> {
    if (spec.options.optimize == BackendOptions::TorchOptimize::kFreeze) return Internal("cannot freeze here");
    return CreateBackend(kind, spec);
  };
  auto report = RunOptimize(broken, nullptr);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->candidates[1].name, "freeze");
  EXPECT_EQ(report->candidates[1].error, "cannot freeze here");
  EXPECT_NE(FormatOptimizeTable(*report).find("freeze                               failed: cannot freeze here"),
            std::string::npos)
      << FormatOptimizeTable(*report);
  EXPECT_FALSE(WriteCandidate(repo, *report, report->candidates[1]).ok());
  fs::remove_all(repo);
}

// A candidate is written as the next version, a copy with its options; the
// original and every other file are untouched, and the copy loads with
// exactly the candidate's options whatever config.yaml says.
TEST(Optimize, ACandidateIsWrittenAsTheNextVersionBesideTheOriginal) {
  const fs::path repo = CopyExamples("write");
  const fs::path model = repo / "breast_cancer_mlp";
  // The model's own options differ from the candidate's: the version file must say every key.
  std::ofstream(model / "config.yaml", std::ios::app) << "backend_options: {intra_op_threads: 2}\n";
  const std::string original_file = Read(model / "2" / "model.pt");
  auto report = RunOptimize(Quick("breast_cancer_mlp", repo), nullptr);
  ASSERT_TRUE(report.ok()) << report.status().message();
  const OptimizeCandidate* freeze = nullptr;
  for (const auto& c : report->candidates) {
    if (c.name == "freeze") freeze = &c;
  }
  ASSERT_NE(freeze, nullptr);
  EXPECT_EQ(freeze->options.intra_op_threads, 2) << "candidates start from the version's own options";
  BackendOptions want = freeze->options;
  auto v = WriteCandidate(repo, *report, *freeze);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(*v, 3);
  EXPECT_EQ(Read(model / "3" / "model.pt"), original_file);
  EXPECT_EQ(Read(model / "2" / "model.pt"), original_file);
  EXPECT_FALSE(fs::exists(model / "2" / kVersionOptionsFile));
  auto written = FindModelFiles(repo, "breast_cancer_mlp", 3);
  ASSERT_TRUE(written.ok()) << written.status().message();
  EXPECT_EQ(written->options, want) << Read(model / "3" / kVersionOptionsFile);
  // Again: the next number, never over an existing one.
  auto again = WriteCandidate(repo, *report, report->candidates[0]);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 4);
  for (const auto& e : fs::directory_iterator(model)) {
    EXPECT_EQ(e.path().filename().string().find(".vigil-writing"), std::string::npos) << "no staging left behind";
  }
  fs::remove_all(repo);
}

}  // namespace
}  // namespace vigil
