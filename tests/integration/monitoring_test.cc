// Monitoring end to end on the example breast-cancer model: traffic drawn
// from its reference sample raises no drift; the same traffic with two
// features shifted by one standard deviation is reported as drift of
// exactly those two; NaN inputs are counted.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/eventually.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;
const fs::path kRepo = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";

std::string Body(const std::vector<std::vector<double>>& rows) {
  std::string data;
  for (const auto& row : rows) {
    for (double v : row) {
      if (!data.empty()) data += ",";
      data += std::isnan(v) ? "NaN" : std::to_string(v);
    }
  }
  return R"({"inputs":[{"name":"features","datatype":"FP32","shape":[)" + std::to_string(rows.size()) +
         R"(,30],"data":[)" + data + "]}]}";
}

class Monitoring : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = ScratchDir("monitoring_repo");
    CopyExampleRepository(repo_, {"breast_cancer_mlp"});
    // Small windows so the test sees many; version 1 only.
    std::string config = ReadFile(repo_ / "breast_cancer_mlp" / "config.yaml");
    config.replace(config.find("version_policy:"), std::string("version_policy:\n  latest: 2").size(),
                   "version_policy: {specific: [1]}");
    config +=
        "monitoring:\n  window_rows: 400\n  min_window_rows: 300\n  window_seconds: 600\n  alert_after: 2\n"
        "  quality: {metric: accuracy, below: 0.5, window_s: 1, min_labels: 20}\n";
    WriteFile(repo_ / "breast_cancer_mlp" / "config.yaml", config);
    fs::create_directories(repo_ / "deployments");
    WriteFile(repo_ / "deployments" / "cancer.yaml", "production: {model: breast_cancer_mlp, version: 1}\n");
    // The same model behind an endpoint with its own rule: accuracy more
    // than 0.2 under its value on reference.csv's labelled rows.
    WriteFile(repo_ / "deployments" / "guarded.yaml",
              "production: {model: breast_cancer_mlp, version: 1}\n"
              "monitoring: {quality: {metric: accuracy, drop: 0.2, window_s: 1, min_labels: 20}, alert_after: 2}\n");
    server_ = ServerProcess::Start({"--model-repository", repo_.string(), "--health-window-s", "0.5"});
    client_ = server_->Client();
    rows_ = ReferenceRows();
    ASSERT_EQ(rows_.size(), 200u);
    for (size_t c = 0; c < 30; ++c) {  // the reference's standard deviation per feature
      double mean = 0, sq = 0;
      for (const auto& r : rows_) mean += r[c] / static_cast<double>(rows_.size());
      for (const auto& r : rows_) sq += (r[c] - mean) * (r[c] - mean);
      stddev_.push_back(std::sqrt(sq / static_cast<double>(rows_.size())));
    }
  }
  void TearDown() override { fs::remove_all(repo_); }

  // Sends `n` rows drawn from the reference, 40 per request, with `shift`
  // standard deviations added to the features in `shifted`.
  void Send(int n, const std::set<size_t>& shifted = {}, double shift = 0) {
    std::uniform_int_distribution<size_t> pick(0, rows_.size() - 1);
    for (int sent = 0; sent < n; sent += 40) {
      std::vector<std::vector<double>> batch;
      for (int i = 0; i < 40; ++i) {
        auto row = rows_[pick(rng_)];
        for (size_t c : shifted) row[c] += shift * stddev_[c];
        batch.push_back(row);
      }
      auto r = client_->Post("/v2/models/breast_cancer_mlp/infer", Body(batch));
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(r->status, 200u) << r->body;
    }
  }

  // Waits until at least `count` windows are reported; returns the report.
  rapidjson::Document WaitForWindows(size_t count) {
    rapidjson::Document d;
    Eventually([&] {
      auto r = client_->Get("/v1/monitoring/breast_cancer_mlp/drift?limit=1000");
      EXPECT_EQ(r->status, 200u) << r->body;
      d.Parse(r->body.c_str());
      return d["windows"].Size() >= count;
    });
    return d;
  }

  fs::path repo_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
  std::vector<std::vector<double>> rows_;
  std::vector<double> stddev_;
  std::mt19937 rng_{2026};
};

TEST_F(Monitoring, CalmTrafficRaisesNoDriftAndTwoShiftedFeaturesAreNamed) {
  // Calm: 6 windows of traffic from the data set itself.
  for (int w = 0; w < 6; ++w) {
    Send(400);
    WaitForWindows(static_cast<size_t>(w + 1));
  }
  rapidjson::Document calm = WaitForWindows(6);
  ASSERT_GE(calm["windows"].Size(), 6u);
  EXPECT_STREQ(calm["versions"][0]["reference"]["source"].GetString(), "reference.csv");
  int false_alarms = 0;
  for (const auto& w : calm["windows"].GetArray()) {
    EXPECT_GE(w["rows"].GetInt64(), 300);
    EXPECT_LT(w["rows"].GetInt64(), 400 + 40);  // closed by the request that filled it, not a tick later
    for (const auto& c : w["columns"].GetArray()) false_alarms += c["drifted"].GetBool();
  }
  EXPECT_EQ(false_alarms, 0);
  auto quiet = client_->Get("/v1/alerts");
  ASSERT_EQ(quiet->status, 200u);
  // Nor any serving or numerical health alert: the default limits hold for
  // this traffic, judged every half second.
  for (const char* name : {"FeatureDrift", "LatencyHigh", "ErrorRateHigh", "QueueSaturated", "MemoryHigh",
                           "NonFiniteValues", "OutOfRangeValues"}) {
    EXPECT_EQ(quiet->body.find(name), std::string::npos) << name << ": " << quiet->body;
  }
  std::printf("calm: %u windows, %d false alarms over %u columns each\n", calm["windows"].Size(), false_alarms,
              calm["windows"][0]["columns"].Size());

  // Two features (mean_texture, worst_smoothness) shifted by one standard
  // deviation, for two windows (alert_after: 2).
  const size_t before = calm["windows"].Size();
  for (size_t w = 1; w <= 2; ++w) {
    Send(400, {1, 24}, 1.0);
    WaitForWindows(before + w);
  }
  rapidjson::Document shifted = WaitForWindows(before + 2);
  ASSERT_GE(shifted["windows"].Size(), before + 2);
  const auto& w = shifted["windows"][shifted["windows"].Size() - 1];
  std::set<std::string> drifted_inputs;
  for (const auto& c : w["columns"].GetArray()) {
    if (c["drifted"].GetBool() && std::string(c["kind"].GetString()) == "input")
      drifted_inputs.insert(c["name"].GetString());
    EXPECT_TRUE(c.HasMember("psi") && c.HasMember("ks_p") && c.HasMember("wasserstein") && c.HasMember("threshold"));
  }
  EXPECT_EQ(drifted_inputs, (std::set<std::string>{"mean_texture", "worst_smoothness"}));
  EXPECT_FALSE(w["dataset_drift"].GetBool());  // 2 of 30 is below the default share of 0.5

  // The drift alert fires, naming exactly those two features, with its evidence.
  rapidjson::Document alerts;
  alerts.Parse(client_->Get("/v1/alerts")->body.c_str());
  std::set<std::string> firing;
  for (const auto& a : alerts["firing"].GetArray()) {
    if (std::string(a["alertname"].GetString()) != "FeatureDrift") continue;
    firing.insert(a["labels"]["feature"].GetString());
    EXPECT_STREQ(a["statistic"].GetString(), "psi");
    EXPECT_GE(a["value"].GetDouble(), a["threshold"].GetDouble());
  }
  EXPECT_EQ(firing, (std::set<std::string>{"mean_texture", "worst_smoothness"}));

  // The same, readable in a terminal.
  const std::string url = "127.0.0.1:" + std::to_string(server_->port());
  CommandResult table = RunVigil({"monitor", "breast_cancer_mlp", "-u", url});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("2/30 features drifted"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("reference reference.csv (200 rows)"), std::string::npos) << table.out;
  // Listed under their dataset alert (which does not fire: 2 of 30 is below its share).
  EXPECT_NE(table.out.find("DatasetDrift breast_cancer_mlp v1 (not firing): 2 feature alerts\n"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("\n    FeatureDrift feature=mean_texture"), std::string::npos) << table.out;
  // For machines: one JSON object of the three replies (a model has no status).
  CommandResult json = RunVigil({"monitor", "breast_cancer_mlp", "-u", url, "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  rapidjson::Document all;
  all.Parse(json.out.c_str());
  ASSERT_TRUE(all.IsObject()) << json.out;
  EXPECT_TRUE(all["drift"]["versions"].IsArray());
  EXPECT_TRUE(all["alerts"]["firing"].IsArray());
  EXPECT_TRUE(all["status"].IsNull());
  CommandResult unknown = RunVigil({"monitor", "nope", "-u", url});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no model or endpoint 'nope'"), std::string::npos) << unknown.err;
  EXPECT_TRUE(unknown.out.empty());

  auto metrics = client_->Get("/metrics");
  EXPECT_EQ(PromtoolCheck(metrics->body), "");  // with the drift families filled
  EXPECT_NE(metrics->body.find(R"(vigil_alerts_firing{alertname="FeatureDrift"} 2)"), std::string::npos);
  EXPECT_NE(
      metrics->body.find(R"(vigil_drift_detected{model="breast_cancer_mlp",version="1",feature="mean_texture"} 1)"),
      std::string::npos);
  EXPECT_NE(
      metrics->body.find(R"(vigil_drift_detected{model="breast_cancer_mlp",version="1",feature="mean_radius"} 0)"),
      std::string::npos);
}

TEST_F(Monitoring, NonFiniteValuesAreCountedAndAlertedAndBadQueriesAreNamed) {
  auto row = rows_[0];
  row[3] = std::nan("");
  auto r = client_->Post("/v2/models/breast_cancer_mlp/infer", Body({row, rows_[1]}));
  ASSERT_EQ(r->status, 200u) << r->body;
  EXPECT_TRUE(Eventually([&] {
    return client_->Get("/metrics")
               ->body.find(R"(vigil_nonfinite_values_total{model="breast_cancer_mlp",version="1",tensor="input"} 1)") !=
           std::string::npos;
  }));

  // A window with NaN in it fires the numerical alert at once.
  std::vector<std::vector<double>> rows(rows_.begin(), rows_.begin() + 40);
  rows[5][0] = std::nan("");
  for (int i = 0; i < 10; ++i) ASSERT_EQ(client_->Post("/v2/models/breast_cancer_mlp/infer", Body(rows))->status, 200u);
  std::string alerts;
  Eventually([&] {
    alerts = client_->Get("/v1/alerts")->body;
    return alerts.find(R"("alertname":"NonFiniteValues")") != std::string::npos;
  });
  rapidjson::Document a;
  a.Parse(alerts.c_str());
  bool fired = false;
  for (const auto& x : a["firing"].GetArray()) {
    if (std::string(x["alertname"].GetString()) != "NonFiniteValues") continue;
    fired = true;
    // One NaN input per 40 rows (and its NaN outputs), against none in the reference.
    EXPECT_STREQ(x["statistic"].GetString(), "nonfinite_share");
    EXPECT_GT(x["value"].GetDouble(), 0);
    EXPECT_EQ(x["threshold"].GetDouble(), 0);
  }
  EXPECT_TRUE(fired) << alerts;

  auto bad = client_->Get("/v1/monitoring/breast_cancer_mlp/drift?from=yesterday");
  EXPECT_EQ(bad->status, 400u);
  EXPECT_NE(bad->body.find("'from'"), std::string::npos) << bad->body;
  auto unknown = client_->Get("/v1/monitoring/nope/drift");
  EXPECT_EQ(unknown->status, 404u);
  EXPECT_NE(unknown->body.find("'nope'"), std::string::npos) << unknown->body;
}

TEST_F(Monitoring, QualityWindowsFromFeedbackAndFlippedLabels) {
  std::vector<int> labels;
  ReferenceRows(&labels);
  ASSERT_EQ(labels.size(), rows_.size());
  // 80 one-row predictions through the endpoint, feedback with the true
  // labels; then 80 more whose feedback has the labels flipped.
  auto run = [&](bool flip) {
    std::string items;
    for (size_t i = 0; i < 160; ++i) {
      auto r = client_->Post(i < 80 ? "/v2/models/cancer/infer" : "/v2/models/guarded/infer", Body({rows_[i % 80]}));
      ASSERT_EQ(r->status, 200u) << r->body;
      rapidjson::Document d;
      d.Parse(r->body.c_str());
      const int label = flip ? 1 - labels[i % 80] : labels[i % 80];
      items += std::string(items.empty() ? "" : ",") + R"({"prediction_id":")" + d["id"].GetString() + R"(","label":)" +
               std::to_string(label) + "}";
    }
    auto fb = client_->Post("/v1/feedback", "[" + items + "]");
    ASSERT_EQ(fb->status, 200u) << fb->body;
    EXPECT_NE(fb->body.find(R"("joined":160)"), std::string::npos) << fb->body;
  };
  run(false);
  // Time itself is under test here: quality windows are one second of
  // prediction time, so each phase waits for the next one.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  run(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  run(true);  // a second bad window: alert_after is 2
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  // Then 40 predictions whose labels have not come yet.
  for (size_t i = 0; i < 40; ++i) {
    ASSERT_EQ(client_->Post("/v2/models/cancer/infer", Body({rows_[80 + i]}))->status, 200u);
  }
  // The prediction log is written in the background: wait for all 280.
  rapidjson::Document d;
  auto r = client_->Get("/v1/monitoring/cancer/quality?window_s=1");
  Eventually([&] {
    r = client_->Get("/v1/monitoring/cancer/quality?window_s=1");
    d.Parse(r->body.c_str());
    return r->status == 200 && d["predictions_scanned"].GetInt() >= 280;
  });
  ASSERT_EQ(r->status, 200u) << r->body;
  ASSERT_GE(d["windows"].Size(), 2u) << r->body;
  // The 1.1 s pause keeps the two phases in different windows; weigh each
  // window's accuracy by its labels.
  double good = 0, bad = 0, good_estimate = 0, unlabelled_estimate = 0;
  int seen = 0, unlabelled = 0;
  for (const auto& w : d["windows"].GetArray()) {
    const auto& v = w["variants"]["production"];
    const int n = v["labeled"].GetInt();
    // Every window has the confidence-based estimate, labels or not.
    ASSERT_TRUE(v.HasMember("estimated_accuracy")) << r->body;
    const double estimate = v["estimated_accuracy"].GetDouble();
    EXPECT_EQ(v["estimated_rows"].GetInt(), v["predictions"].GetInt());
    if (n == 0) {
      EXPECT_TRUE(w["incomplete"].GetBool()) << r->body;  // its labels may still come
      unlabelled += v["predictions"].GetInt();
      unlabelled_estimate += estimate * v["predictions"].GetInt();
      continue;
    }
    EXPECT_FALSE(w["incomplete"].GetBool()) << r->body;  // all older than the label delay
    EXPECT_EQ(v["predictions"].GetInt(), n);
    if (seen < 80) good_estimate += estimate * n;
    (seen < 80 ? good : bad) += v["accuracy"].GetDouble() * n;
    seen += n;
    for (const char* m : {"auc", "precision", "recall", "f1", "brier", "log_loss", "label_delay_p50_s"}) {
      if (n >= 10) {
        EXPECT_TRUE(v.HasMember(m)) << m;
      }
    }
  }
  EXPECT_EQ(seen, 240);
  EXPECT_GT(good / 80, 0.85) << r->body;
  EXPECT_LT(bad / 160, 0.15) << r->body;
  // The estimate tracks realised accuracy while labels are true, and is
  // blind to flipped labels (concept drift): it stays high beside them.
  EXPECT_NEAR(good_estimate / 80, good / 80, 0.1) << r->body;
  EXPECT_EQ(unlabelled, 40);
  EXPECT_GT(unlabelled_estimate / 40, 0.8) << r->body;
  std::printf("realised accuracy %.3f (true labels), %.3f (flipped); estimated %.3f and %.3f (no labels yet)\n",
              good / 80, bad / 160, good_estimate / 80, unlabelled_estimate / 40);

  // The quality rule (accuracy below 0.5 for 2 windows) fires, with its evidence.
  std::string alerts;
  rapidjson::Document a;
  Eventually([&] {
    alerts = client_->Get("/v1/alerts")->body;
    a.Parse(alerts.c_str());
    int quality_alerts = 0;
    for (const auto& x : a["firing"].GetArray()) {
      quality_alerts += std::string(x["alertname"].GetString()) == "QualityRegression";
    }
    return quality_alerts >= 2;
  });
  // The model's reference accuracy, from reference.csv's label column.
  rapidjson::Document drift;
  drift.Parse(client_->Get("/v1/monitoring/breast_cancer_mlp/drift")->body.c_str());
  const auto& reference = drift["versions"][0]["reference"];
  EXPECT_EQ(reference["labeled"].GetInt(), 200);
  const double reference_accuracy = reference["quality"]["accuracy"].GetDouble();
  EXPECT_GT(reference_accuracy, 0.9);
  // Each endpoint's rule fired: the model's (below 0.5) and the guarded
  // endpoint's own (0.2 under the reference accuracy).
  std::set<std::string> fired;
  for (const auto& x : a["firing"].GetArray()) {
    if (std::string(x["alertname"].GetString()) != "QualityRegression") continue;
    const std::string endpoint = x["labels"]["endpoint"].GetString();
    fired.insert(endpoint);
    EXPECT_STREQ(x["labels"]["variant"].GetString(), "production");
    EXPECT_STREQ(x["labels"]["metric"].GetString(), "accuracy");
    EXPECT_LT(x["value"].GetDouble(), 0.5);
    if (endpoint == "cancer") {
      EXPECT_EQ(x["threshold"].GetDouble(), 0.5);
    } else {
      EXPECT_NEAR(x["threshold"].GetDouble(), reference_accuracy - 0.2, 1e-9);
      EXPECT_NE(std::string(x["summary"].GetString()).find("reference.csv"), std::string::npos);
    }
  }
  EXPECT_EQ(fired, (std::set<std::string>{"cancer", "guarded"})) << alerts;

  // In the terminal: the reference's quality, realised beside estimated accuracy.
  CommandResult table = RunVigil({"monitor", "cancer", "-u", "127.0.0.1:" + std::to_string(server_->port())});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("reference quality on 200 labelled rows: accuracy="), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("predictions=280 labeled=240 accuracy=0.3333 estimated_accuracy=0.9"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("QualityRegression endpoint=cancer"), std::string::npos) << table.out;

  auto model = client_->Get("/v1/monitoring/breast_cancer_mlp/quality");
  EXPECT_EQ(model->status, 404u);  // quality needs an endpoint's prediction log
  EXPECT_NE(model->body.find("no endpoint 'breast_cancer_mlp'"), std::string::npos) << model->body;
}

// Serving health: a one-request queue under concurrent clients, a p99
// limit no request can meet and a 1 MiB memory limit fire LatencyHigh,
// ErrorRateHigh, QueueSaturated and MemoryHigh with their evidence; the
// request-level ones resolve once traffic stops.
TEST(ServingHealth, LimitsOverrunFireAlertsThatResolveWhenCalm) {
  const fs::path repo = ScratchDir("health_repo");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  std::string config = ReadFile(repo / "breast_cancer_mlp" / "config.yaml");
  config.replace(config.find("max_queue_size: 4096"), std::string("max_queue_size: 4096").size(), "max_queue_size: 1");
  config += "monitoring:\n  alert_after: 1\n  resolve_after: 1\n  health: {latency_p99_ms: 0.001, min_requests: 5}\n";
  WriteFile(repo / "breast_cancer_mlp" / "config.yaml", config);
  // An endpoint with its own guardrail on its variants' latency.
  fs::create_directories(repo / "deployments");
  WriteFile(repo / "deployments" / "guarded.yaml",
            "production: {model: breast_cancer_mlp}\n"
            "monitoring: {health: {latency_p99_ms: 0.001, min_requests: 5}, alert_after: 1, resolve_after: 1}\n");
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--health-window-s", "0.5",
                                      "--alert-memory-mb", "1", "--http-threads", "4"});
  const auto reference = ReferenceRows();
  const std::string body = Body({reference.begin(), reference.begin() + 8});
  auto load = [&](std::atomic<int>* refused) {
    auto client = server->Client();
    for (int i = 0; i < 150; ++i) {
      auto r = client->Post(i % 3 ? "/v2/models/breast_cancer_mlp/infer" : "/v2/models/guarded/infer", body);
      ASSERT_TRUE(r.ok());
      if (r->status != 200u) ++*refused;
    }
  };
  // Only health alerts are checked here (eight rows repeated may drift).
  const std::set<std::string> expected{"LatencyHigh", "ErrorRateHigh", "QueueSaturated", "MemoryHigh"};
  std::set<std::string> firing;
  rapidjson::Document a;
  bool endpoint_latency = false;  // LatencyHigh{endpoint="guarded", variant="production"}
  auto health_firing = [&] {
    firing.clear();
    endpoint_latency = false;
    for (const auto& x : a["firing"].GetArray()) {
      if (x["labels"].HasMember("endpoint")) {
        endpoint_latency |= std::string(x["alertname"].GetString()) == "LatencyHigh" &&
                            std::string(x["labels"]["endpoint"].GetString()) == "guarded" &&
                            std::string(x["labels"]["variant"].GetString()) == "production";
        continue;
      }
      if (expected.count(x["alertname"].GetString())) firing.insert(x["alertname"].GetString());
    }
  };
  for (int round = 0; round < 10 && (firing != expected || !endpoint_latency); ++round) {
    std::atomic<int> refused{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 12; ++t) clients.emplace_back(load, &refused);
    for (auto& t : clients) t.join();
    std::printf("round %d: %d of 1800 requests refused\n", round, refused.load());
    // Judged once a health window (0.5 s) has closed on this round's traffic.
    auto client = server->Client();
    Eventually(
        [&] {
          a.Parse(client->Get("/v1/alerts")->body.c_str());
          health_firing();
          return firing == expected && endpoint_latency;
        },
        std::chrono::milliseconds(600));
  }
  EXPECT_EQ(firing, expected);
  EXPECT_TRUE(endpoint_latency);
  for (const auto& x : a["firing"].GetArray()) {
    const std::string name = x["alertname"].GetString();
    if (!expected.count(name) || x["labels"].HasMember("endpoint")) continue;
    EXPECT_GT(x["value"].GetDouble(), x["threshold"].GetDouble()) << name;
    EXPECT_GT(x["window_end_ms"].GetInt64(), x["window_start_ms"].GetInt64()) << name;
    if (name == "MemoryHigh") continue;
    EXPECT_STREQ(x["labels"]["model"].GetString(), "breast_cancer_mlp");
    EXPECT_STREQ(x["labels"]["version"].GetString(), "2");
  }
  // The last health window is reported beside the drift windows.
  auto client = server->Client();
  rapidjson::Document drift;
  drift.Parse(client->Get("/v1/monitoring/breast_cancer_mlp/drift")->body.c_str());
  bool reported = false;
  for (const auto& v : drift["versions"].GetArray()) reported |= v.HasMember("health");
  EXPECT_TRUE(reported);

  // Calm: no traffic. Latency, errors and the queue resolve after one window.
  Eventually([&] {
    a.Parse(client->Get("/v1/alerts")->body.c_str());
    health_firing();
    return firing == std::set<std::string>{"MemoryHigh"} && !endpoint_latency;
  });
  EXPECT_EQ(firing, std::set<std::string>{"MemoryHigh"});
  EXPECT_FALSE(endpoint_latency);
  std::set<std::string> resolved;
  for (const auto& e : a["recent"].GetArray()) {
    if (std::string(e["state"].GetString()) == "resolved") resolved.insert(e["alertname"].GetString());
  }
  EXPECT_EQ(resolved, (std::set<std::string>{"LatencyHigh", "ErrorRateHigh", "QueueSaturated"}));
  // ?limit= bounds the transitions listed, within its range.
  rapidjson::Document two;
  two.Parse(client->Get("/v1/alerts?limit=2")->body.c_str());
  EXPECT_EQ(two["recent"].Size(), 2u);
  auto bad = client->Get("/v1/alerts?limit=0");
  EXPECT_EQ(bad->status, 400u);
  EXPECT_NE(bad->body.find("'limit' must be an integer from 1 to 1000"), std::string::npos) << bad->body;
  EXPECT_EQ(client->Post("/v1/alerts", "{}")->status, 405u);
  server.reset();
  fs::remove_all(repo);
}

// A model with a numerical bug (tests/fixtures/make_nan_model.py): log(x)
// without an epsilon, so rows with a zero concavity feature get NaN
// probabilities. Clean traffic stays quiet; traffic with such rows raises
// NonFiniteValues on the outputs, and the inputs (all finite) stay calm.
TEST(NumericalHealth, AModelThatOutputsNaNRaisesAnAlert) {
  const fs::path fixture = fs::path(VIGIL_SOURCE_DIR) / "tests" / "fixtures" / "models" / "breast_cancer_log";
  const fs::path repo = ScratchDir("nan_repo");
  fs::copy(fixture, repo / "breast_cancer_log", fs::copy_options::recursive);
  WriteFile(repo / "breast_cancer_log" / "config.yaml",
            ReadFile(fixture / "config.yaml") + "monitoring: {window_rows: 200, min_window_rows: 100}\n");
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto client = server->Client();
  const auto rows = ReferenceRows(nullptr, fixture / "reference.csv");
  ASSERT_EQ(rows.size(), 200u);
  auto infer = [&](const std::vector<std::vector<double>>& batch) {
    auto r = client->Post("/v2/models/breast_cancer_log/infer", Body(batch));
    EXPECT_EQ(r->status, 200u) << r->body;
    return r->body;
  };
  auto alerts = [&] {
    rapidjson::Document a;
    a.Parse(client->Get("/v1/alerts")->body.c_str());
    std::set<std::string> firing;
    for (const auto& x : a["firing"].GetArray()) {
      if (std::string(x["alertname"].GetString()) == "NonFiniteValues")
        firing.insert(x["labels"]["tensor"].GetString());
    }
    return firing;
  };
  auto wait_windows = [&](size_t n) {
    EXPECT_TRUE(Eventually([&] {
      rapidjson::Document d;
      d.Parse(client->Get("/v1/monitoring/breast_cancer_log/drift")->body.c_str());
      return d["windows"].Size() >= n;
    })) << "fewer than "
        << n << " windows";
  };
  // Clean rows: finite answers, a calm window.
  EXPECT_EQ(infer({rows[0]}).find("NaN"), std::string::npos);
  for (size_t i = 0; i < 200; i += 40) infer({rows.begin() + i, rows.begin() + i + 40});
  wait_windows(1);
  EXPECT_TRUE(alerts().empty());

  // The same rows with mean_concavity and mean_concave_points zero on every
  // 40th, as 13 of the data set's cases have them.
  auto zeroed = rows;
  for (size_t i = 0; i < zeroed.size(); i += 40) zeroed[i][6] = zeroed[i][7] = 0;
  EXPECT_NE(infer({zeroed[0]}).find("NaN"), std::string::npos);  // the bug, visible to the client
  for (size_t i = 0; i < 200; i += 40) infer({zeroed.begin() + i, zeroed.begin() + i + 40});
  std::set<std::string> firing;
  Eventually([&] { return !(firing = alerts()).empty(); });
  EXPECT_EQ(firing, std::set<std::string>{"output"});
  auto metrics = client->Get("/metrics")->body;
  EXPECT_NE(metrics.find(R"(vigil_nonfinite_values_total{model="breast_cancer_log",version="1",tensor="output"})"),
            std::string::npos);
  server.reset();
  fs::remove_all(repo);
}

}  // namespace
}  // namespace vigil::testing
