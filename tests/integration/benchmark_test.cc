// Benchmarks of the competing models end to end through the real server:
// drifted traffic (half the features of the breast-cancer sample shifted
// by one standard deviation, the true labels sent as feedback) makes the
// drift alert fire; the server replays the logged inputs through the
// production MLP, its other version and the XGBoost candidate on their real
// runtimes, ranks them on the labels, names the XGBoost model — which holds
// up better under this shift — and announces it; `vigil rollout benchmark
// --start` turns the winner into a canary with a rollout block.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/eventually.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

std::string RowBody(const std::vector<double>& row) {
  std::string data;
  for (double v : row) data += (data.empty() ? "" : ",") + std::to_string(v);
  return R"({"inputs":[{"name":"features","datatype":"FP32","shape":[1,30],"data":[)" + data + "]}]}";
}

const rapidjson::Value* Contender(const rapidjson::Value& result, const std::string& name) {
  for (const auto& c : result["contenders"].GetArray()) {
    if (name == c["name"].GetString()) return &c;
  }
  return nullptr;
}

class Benchmark : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& extra = {}) {
    repo_ = ScratchDir("benchmark_repo");
    data_ = ScratchDir("benchmark_data");
    CopyExampleRepository(repo_, {"breast_cancer_mlp", "breast_cancer_xgb"});
    // Windows of 400 rows; an alert on the first drifted one.
    std::string config = ReadFile(repo_ / "breast_cancer_mlp" / "config.yaml");
    config += "monitoring:\n  window_rows: 400\n  min_window_rows: 300\n  window_seconds: 600\n  alert_after: 1\n";
    WriteFile(repo_ / "breast_cancer_mlp" / "config.yaml", config);
    fs::create_directories(repo_ / "deployments");
    WriteFile(repo_ / "deployments" / "cancer.yaml",
              "production: {model: breast_cancer_mlp, version: 1}\n"
              "candidates:\n"
              "  - {name: xgb, model: breast_cancer_xgb, version: 1, mode: canary, steps: [10, 50]}\n");
    std::vector<std::string> args{"--model-repository",
                                  repo_.string(),
                                  "--data-dir",
                                  data_.string(),
                                  "--log-inputs-sample-rate",
                                  "1",
                                  "--benchmark-min-interval-s",
                                  "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = ServerProcess::Start(args);
    client_ = server_->Client();
    url_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    fs::remove_all(repo_);
    fs::remove_all(data_);
  }

  // `n` one-row requests to the endpoint drawn from the reference sample
  // with every other feature shifted by `shift` standard deviations, and
  // each one's true label as feedback (posted every 50 requests).
  void SendDrifted(int n, double shift) {
    std::vector<int> labels;
    const auto rows = ReferenceRows(&labels);
    ASSERT_EQ(rows.size(), labels.size());
    std::vector<double> sd(30);
    for (size_t c = 0; c < 30; ++c) {
      double mean = 0, sq = 0;
      for (const auto& r : rows) mean += r[c] / static_cast<double>(rows.size());
      for (const auto& r : rows) sq += (r[c] - mean) * (r[c] - mean);
      sd[c] = std::sqrt(sq / static_cast<double>(rows.size()));
    }
    std::uniform_int_distribution<size_t> pick(0, rows.size() - 1);
    std::string feedback;
    for (int i = 0; i < n; ++i) {
      const size_t k = pick(rng_);
      std::vector<double> row = rows[k];
      for (size_t c = 0; c < 30; c += 2) row[c] += shift * sd[c];
      auto r = client_->Post("/v2/models/cancer/infer", RowBody(row));
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(r->status, 200u) << r->body;
      const std::string id = ParseBody(r->body)["parameters"]["vigil.prediction_id"].GetString();
      feedback += std::string(feedback.empty() ? "[" : ",") + R"({"prediction_id":")" + id + R"(","label":)" +
                  std::to_string(labels[k]) + "}";
      if ((i + 1) % 50 == 0 || i + 1 == n) {
        auto posted = client_->Post("/v1/feedback", feedback + "]");
        ASSERT_TRUE(posted.ok());
        ASSERT_EQ(posted->status, 200u) << posted->body;
        feedback.clear();
      }
    }
  }

  // The newest benchmark's result once one whose trigger contains `trigger` is stored.
  rapidjson::Document WaitForBenchmark(const std::string& trigger) {
    rapidjson::Document d;
    const bool found = Eventually(
        [&] {
          d = ParseBody(client_->Get("/v1/deployments/cancer/benchmark")->body);
          return d.IsObject() && d["benchmarks"].Size() > 0 &&
                 std::string(d["benchmarks"][0]["result"]["trigger"].GetString()).find(trigger) != std::string::npos;
        },
        std::chrono::seconds(120));
    EXPECT_TRUE(found) << client_->Get("/v1/deployments/cancer/benchmark")->body;
    rapidjson::Document result;
    if (found) result.CopyFrom(d["benchmarks"][0]["result"], result.GetAllocator());
    return result;
  }

  fs::path repo_, data_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
  std::string url_;
  std::mt19937 rng_{11};
};

TEST_F(Benchmark, DriftStartsABenchmarkThatNamesTheModelHoldingUpBetter) {
  Start();
  SendDrifted(420, 1.0);
  // The drift alert fires for the production model version and the
  // benchmark follows on the drifted window.
  const rapidjson::Document r = WaitForBenchmark("Drift");
  ASSERT_TRUE(r.IsObject());
  ASSERT_FALSE(r.HasMember("error")) << r["error"].GetString();
  EXPECT_STREQ(r["metric"].GetString(), "accuracy");
  EXPECT_STREQ(r["basis"].GetString(), "labels");
  EXPECT_GE(r["replayable"].GetInt64(), 300);
  // Production's replay through the real runtime reproduces what it logged.
  EXPECT_GE(r["replay_check"]["rows"].GetInt64(), 300);
  EXPECT_LT(r["replay_check"]["max_abs_diff"].GetDouble(), 1e-5);
  ASSERT_EQ(r["contenders"].Size(), 3u) << "production, the xgb candidate, MLP version 2";
  EXPECT_STREQ(r["contenders"][0]["name"].GetString(), "production");
  const rapidjson::Value* xgb = Contender(r, "xgb");
  const rapidjson::Value* v2 = Contender(r, "v2");
  ASSERT_TRUE(xgb && v2);
  EXPECT_STREQ((*v2)["role"].GetString(), "version");
  EXPECT_STREQ(r["winner"].GetString(), "xgb") << r["summary"].GetString();
  EXPECT_EQ((*xgb)["rank"].GetInt(), 1);
  EXPECT_STREQ((*xgb)["verdict"].GetString(), "better");
  EXPECT_GT((*xgb)["difference_ci"][0].GetDouble(), 0);
  EXPECT_GT((*xgb)["disagreement_rate"].GetDouble(), 0.05);
  EXPECT_GT((*xgb)["value"].GetDouble(), r["contenders"][0]["value"].GetDouble());
  EXPECT_STRNE((*v2)["verdict"].GetString(), "better");
  std::printf("benchmark: %s\n", r["summary"].GetString());
  // Announced through the alerts, with the ranking.
  EXPECT_TRUE(Eventually([&] {
    const std::string alerts = client_->Get("/v1/alerts")->body;
    return alerts.find("BetterModelAvailable") != std::string::npos && alerts.find("1. xgb") != std::string::npos;
  }));
  // The same result, readable in a terminal.
  CommandResult shown = RunVigil({"rollout", "benchmark", "cancer", "--show", "-u", url_});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("Winner:     xgb"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("ranked by labels"), std::string::npos) << shown.out;

  // By hand, and the winner rolled out in the same command.
  CommandResult started =
      RunVigil({"rollout", "benchmark", "cancer", "--since", "1h", "--start", "--steps", "20,60", "-u", url_});
  EXPECT_EQ(started.exit_code, 0) << started.out << started.err;
  EXPECT_NE(started.out.find("Started a rollout of 'xgb'"), std::string::npos) << started.out;
  auto spec = ParseBody(client_->Get("/v1/deployments/cancer")->body);
  ASSERT_TRUE(spec.HasMember("rollout")) << client_->Get("/v1/deployments/cancer")->body;
  EXPECT_STREQ(spec["rollout"]["candidate"].GetString(), "xgb");
  EXPECT_STREQ(spec["rollout"]["metric"]["name"].GetString(), "accuracy");
  EXPECT_STREQ(spec["candidates"][0]["mode"].GetString(), "canary");
  EXPECT_EQ(spec["candidates"][0]["steps"][1].GetDouble(), 60);
  EXPECT_TRUE(Eventually([&] {
    auto rollout = ParseBody(client_->Get("/v1/deployments/cancer/rollout")->body);
    return rollout.IsObject() && rollout.HasMember("phase") &&
           std::string(rollout["phase"].GetString()) == "Progressing";
  })) << client_->Get("/v1/deployments/cancer/rollout")->body;
  const std::string history = client_->Get("/v1/deployments/cancer/history")->body;
  EXPECT_NE(history.find("\"action\":\"benchmark start\""), std::string::npos) << history.substr(0, 1000);
  // A second start is refused while that rollout is on.
  auto again = client_->Post("/v1/deployments/cancer/benchmark/start", "");
  EXPECT_EQ(again->status, 409u) << again->body;
  EXPECT_NE(again->body.find("already has a rollout"), std::string::npos) << again->body;
}

TEST_F(Benchmark, BadRequestsAreNamedAndChangesNeedTheAdminToken) {
  Start({"--admin-token", "secret"});
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer secret"}};
  auto unauthorised = client_->Post("/v1/deployments/cancer/benchmark", "{}");
  EXPECT_EQ(unauthorised->status, 401u) << unauthorised->body;
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"since_s": 0})", "'since_s' must be an integer from 1 to"},
           {R"({"since_s": "1h"})", "'since_s' must be an integer"},
           {R"({"max_rows": 1000000})", "'max_rows' must be an integer from 1 to 20000"},
           {R"({"metric": "mean_reward"})", "cannot score a replay"},
           {R"({"metric": 3})", "'metric' must be a string"},
           {R"({"window": 3})", "unknown field 'window'"},
           {R"([1])", "the body must be a JSON object"},
           {R"({"since_s":)", "benchmark: "}}) {
    auto r = client_->Post("/v1/deployments/cancer/benchmark", body, auth);
    EXPECT_EQ(r->status, 400u) << body << ": " << r->body;
    EXPECT_NE(r->body.find(message), std::string::npos) << body << ": " << r->body;
  }
  EXPECT_EQ(client_->Post("/v1/deployments/nope/benchmark", "{}", auth)->status, 404u);
  EXPECT_EQ(client_->Get("/v1/deployments/cancer/benchmark?limit=0")->status, 400u);
  // Nothing benchmarked yet: start says so.
  auto start = client_->Post("/v1/deployments/cancer/benchmark/start", "{}", auth);
  EXPECT_EQ(start->status, 409u) << start->body;
  EXPECT_NE(start->body.find("has no benchmark yet"), std::string::npos) << start->body;
  // No traffic logged: the run is stored with what is missing.
  auto queued = client_->Post("/v1/deployments/cancer/benchmark", R"({"since_s": 60})", auth);
  EXPECT_EQ(queued->status, 202u) << queued->body;
  const rapidjson::Document r = WaitForBenchmark("manual");
  ASSERT_TRUE(r.IsObject());
  EXPECT_NE(std::string(r["error"].GetString()).find("no request in the window was logged with its inputs"),
            std::string::npos);
  auto refused = client_->Post("/v1/deployments/cancer/benchmark/start", R"({"contender": "xgb"})", auth);
  EXPECT_EQ(refused->status, 409u) << refused->body;
  EXPECT_NE(refused->body.find("was not made"), std::string::npos) << refused->body;
  auto typo = client_->Post("/v1/deployments/cancer/benchmark/start", R"({"steps": "5"})", auth);
  EXPECT_EQ(typo->status, 400u) << typo->body;
}

}  // namespace
}  // namespace vigil::testing
