// Model lifecycle against the real server binary: broken models beside
// working ones, hot reload under load, explicit load/unload, queue limits and
// deadlines, graceful shutdown.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <set>
#include <thread>

#include "core/eventually.h"
#include "protocol/oip_json.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

rapidjson::Document Parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  return d;
}

// The index row for model/version ("" version for model-level rows).
std::pair<std::string, std::string> IndexRow(HttpClient& c, const std::string& model, const std::string& version) {
  auto r = c.Post("/v2/repository/index", "{}");
  if (!r.ok()) return {"", ""};
  auto d = Parse(r->body);
  for (const auto& row : d.GetArray()) {
    const std::string v = row.HasMember("version") ? row["version"].GetString() : "";
    if (model == row["name"].GetString() && v == version) return {row["state"].GetString(), row["reason"].GetString()};
  }
  return {"", ""};
}

// Rewrites one line of a config (first occurrence of `from`).
void EditConfig(const fs::path& config, const std::string& from, const std::string& to) {
  std::string text = ReadFile(config);
  const auto pos = text.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  text.replace(pos, from.size(), to);
  WriteFile(config, text);
}

TEST(Lifecycle, BrokenModelsBecomeUnavailableWithTheirReasonWhileOthersServe) {
  const fs::path repo = ScratchDir("broken");
  CopyExampleRepository(repo, {"breast_cancer_mlp", "breast_cancer_xgb", "breast_cancer_mlp_onnx"});
  // A corrupt model file.
  fs::copy(repo / "breast_cancer_mlp_onnx", repo / "corrupt_onnx", fs::copy_options::recursive);
  WriteFile(repo / "corrupt_onnx" / "1" / "model.onnx", "definitely not protobuf");
  // A config with an unknown key.
  fs::copy(repo / "breast_cancer_xgb", repo / "bad_config", fs::copy_options::recursive);
  EditConfig(repo / "bad_config" / "config.yaml", "max_batch_size: 256", "max_batch_size: 256\nmax_batchsize: 3");
  // A version folder without its model file.
  fs::create_directories(repo / "missing_file" / "1");
  fs::copy(repo / "breast_cancer_xgb" / "config.yaml", repo / "missing_file" / "config.yaml");
  // A model whose file disagrees with the config's input shape.
  fs::copy(repo / "breast_cancer_mlp", repo / "shape_mismatch", fs::copy_options::recursive);
  EditConfig(repo / "shape_mismatch" / "config.yaml", "shape: [30]", "shape: [29]");
  // No config at all.
  fs::create_directories(repo / "no_config" / "1");

  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.05"});
  auto c = server->Client();
  struct Expect {
    std::string model, version, reason;
  } expects[] = {
      {"corrupt_onnx", "1", "cannot load ONNX file"}, {"bad_config", "", "'max_batchsize'"},
      {"missing_file", "1", "missing model file"},    {"shape_mismatch", "", ""},
      {"no_config", "", "missing config.yaml"},
  };
  for (const auto& e : expects) {
    if (e.model == "shape_mismatch") continue;
    auto [state, reason] = IndexRow(*c, e.model, e.version);
    EXPECT_EQ(state, "UNAVAILABLE") << e.model;
    EXPECT_NE(reason.find(e.reason), std::string::npos) << e.model << ": " << reason;
    EXPECT_NE(server->Log().find("model=" + e.model), std::string::npos) << "the log names " << e.model;
  }
  for (const std::string v : {"1", "2"}) {
    auto [state, reason] = IndexRow(*c, "shape_mismatch", v);
    EXPECT_EQ(state, "UNAVAILABLE");
    EXPECT_NE(reason.find("does not match its config"), std::string::npos) << reason;
  }
  auto r = c->Post("/v2/models/corrupt_onnx/infer", FeaturesBody(1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503u);
  EXPECT_NE(r->body.find("cannot load ONNX file"), std::string::npos) << r->body;
  EXPECT_EQ(c->Get("/v2/models/bad_config/ready")->status, 400u);
  // The working models serve.
  for (const char* m : {"breast_cancer_mlp", "breast_cancer_xgb", "breast_cancer_mlp_onnx"}) {
    auto ok = c->Post(std::string("/v2/models/") + m + "/infer", FeaturesBody(2));
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->status, 200u) << m << ": " << ok->body;
  }
  // Polling does not retry unchanged broken files, nor log them again...
  EXPECT_TRUE(server->WaitForPolls(3));
  auto count = [&](const std::string& needle) {
    const std::string log = server->Log();
    int n = 0;
    for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("event=model_load_failed model=corrupt_onnx"), 1);
  EXPECT_EQ(count("event=model_unavailable model=bad_config"), 1);
  // ...but a repaired file is picked up.
  fs::copy_file(repo / "breast_cancer_mlp_onnx" / "1" / "model.onnx", repo / "corrupt_onnx" / "1" / "model.onnx",
                fs::copy_options::overwrite_existing);
  ASSERT_TRUE(server->WaitForLog("event=model_ready model=corrupt_onnx version=1", 10));
  EXPECT_EQ(c->Post("/v2/models/corrupt_onnx/infer", FeaturesBody(1))->status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Lifecycle, HotReloadUnderLoadLosesNoRequest) {
  const fs::path repo = ScratchDir("reload");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.1"});

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::mutex mu;
  std::set<std::string> versions_seen;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      auto c = server->Client();
      while (!stop.load()) {
        auto r = c->Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1 + ok.load() % 3));
        if (r.ok() && r->status == 200) {
          ok++;
          auto d = Parse(r->body);
          std::lock_guard lock(mu);
          versions_seen.insert(d["model_version"].GetString());
        } else {
          failed++;
          std::lock_guard lock(mu);
          if (first_failure.empty()) first_failure = r.ok() ? r->body : r.status().message();
        }
      }
    });
  }
  auto c = server->Client();
  auto wait_for_versions = [&](const std::string& want) {
    return Eventually([&] {
      auto d = Parse(c->Get("/v2/models/breast_cancer_mlp")->body);
      std::string have;
      for (const auto& v : d["versions"].GetArray()) have += std::string(have.empty() ? "" : ",") + v.GetString();
      return have == want;
    });
  };
  // Each change happens under traffic: the clients answer this many more first.
  auto under_load = [&] {
    const int before = ok.load();
    return Eventually([&] { return ok.load() >= before + 50; });
  };
  EXPECT_TRUE(under_load());
  // A new version: with `latest: 2` it replaces version 1, loaded before 1 goes.
  fs::copy(repo / "breast_cancer_mlp" / "1", repo / "breast_cancer_mlp" / "3", fs::copy_options::recursive);
  EXPECT_TRUE(wait_for_versions("2,3"));
  EXPECT_TRUE(under_load());
  // A changed model file in a served version is reloaded in place.
  fs::copy_file(repo / "breast_cancer_mlp" / "2" / "model.pt", repo / "breast_cancer_mlp" / "3" / "model.pt",
                fs::copy_options::overwrite_existing);
  EXPECT_TRUE(server->WaitForLog("event=model_ready model=breast_cancer_mlp version=3", 10));
  // A changed config reloads every version; a removed folder is unloaded once idle.
  EditConfig(repo / "breast_cancer_mlp" / "config.yaml", "max_queue_delay_us: 200", "max_queue_delay_us: 100");
  EXPECT_TRUE(server->WaitForPolls(2));  // a scan reloads what changed before it returns
  EXPECT_TRUE(under_load());
  fs::remove_all(repo / "breast_cancer_mlp" / "3");
  EXPECT_TRUE(wait_for_versions("1,2"));
  EXPECT_TRUE(under_load());
  stop = true;
  for (auto& t : clients) t.join();

  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GT(ok.load(), 100);
  EXPECT_TRUE(versions_seen.count("2") && versions_seen.count("3")) << versions_seen.size();
  EXPECT_TRUE(server->WaitForLog("event=model_unloaded model=breast_cancer_mlp version=3"));
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Lifecycle, ABrokenConfigOnDiskLeavesTheLoadedModelServing) {
  const fs::path repo = ScratchDir("broken_reload");
  CopyExampleRepository(repo, {"breast_cancer_xgb"});
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.1"});
  auto c = server->Client();
  const fs::path config = repo / "breast_cancer_xgb" / "config.yaml";
  const std::string good = ReadFile(config);
  WriteFile(config, good + "batch_everything: true\n");
  ASSERT_TRUE(server->WaitForLog("'batch_everything'", 10));
  EXPECT_EQ(c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1))->status, 200u);
  auto [state, reason] = IndexRow(*c, "breast_cancer_xgb", "2");
  EXPECT_EQ(state, "READY");
  EXPECT_NE(reason.find("'batch_everything'"), std::string::npos) << reason;
  WriteFile(config, good);
  EXPECT_TRUE(Eventually([&] { return IndexRow(*c, "breast_cancer_xgb", "2").second.empty(); }));
  EXPECT_EQ(IndexRow(*c, "breast_cancer_xgb", "2").second, "");
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Lifecycle, ExplicitUnloadAndLoad) {
  const fs::path repo = ScratchDir("explicit");
  CopyExampleRepository(repo, {"breast_cancer_xgb"});
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.1"});
  auto c = server->Client();
  EXPECT_EQ(c->Post("/v2/repository/models/breast_cancer_xgb/unload", "")->status, 200u);
  EXPECT_EQ(c->Get("/v2/models/breast_cancer_xgb/ready")->status, 400u);
  auto r = c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1));
  EXPECT_EQ(r->status, 503u);
  EXPECT_NE(r->body.find("unloaded by request"), std::string::npos) << r->body;
  EXPECT_TRUE(server->WaitForPolls(3));  // polling does not bring it back
  EXPECT_EQ(c->Get("/v2/models/breast_cancer_xgb/ready")->status, 400u);
  EXPECT_EQ(IndexRow(*c, "breast_cancer_xgb", "").first, "UNAVAILABLE");
  EXPECT_EQ(c->Post("/v2/repository/models/breast_cancer_xgb/load", "")->status, 200u);
  EXPECT_EQ(c->Get("/v2/models/breast_cancer_xgb/ready")->status, 200u);
  EXPECT_EQ(c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1))->status, 200u);
  EXPECT_EQ(c->Post("/v2/repository/models/nope/load", "")->status, 404u);
  EXPECT_EQ(c->Post("/v2/repository/models/nope/unload", "")->status, 404u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// Triton's "config" load parameter: the override replaces config.yaml until
// the next plain load; an invalid one is refused and changes nothing.
TEST(Lifecycle, LoadWithAConfigOverride) {
  const fs::path repo = ScratchDir("override");
  CopyExampleRepository(repo, {"breast_cancer_xgb"});
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.1"});
  auto c = server->Client();
  std::string config = ReadFile(repo / "breast_cancer_xgb" / "config.yaml");
  const std::string from = "max_batch_size: 256", to = "max_batch_size: 7";
  ASSERT_NE(config.find(from), std::string::npos) << config;
  config.replace(config.find(from), from.size(), to);
  const std::string body = LoadRequestJson(config);
  auto r = c->Post("/v2/repository/models/breast_cancer_xgb/load", body);
  ASSERT_EQ(r->status, 200u) << r->body;
  EXPECT_NE(c->Get("/v2/models/breast_cancer_xgb/config")->body.find("\"max_batch_size\":7"), std::string::npos);
  EXPECT_TRUE(server->WaitForPolls(3));  // polling keeps the override
  EXPECT_NE(c->Get("/v2/models/breast_cancer_xgb/config")->body.find("\"max_batch_size\":7"), std::string::npos);
  EXPECT_EQ(c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(8))->status, 400u);  // over 7 rows

  r = c->Post("/v2/repository/models/breast_cancer_xgb/load", R"({"parameters":{"config":"backend: nope"}})");
  EXPECT_EQ(r->status, 400u);
  EXPECT_NE(r->body.find("config override"), std::string::npos) << r->body;
  EXPECT_EQ(c->Post("/v2/repository/models/breast_cancer_xgb/load", R"({"parameters":{"other":"x"}})")->status, 400u);
  EXPECT_EQ(c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1))->status, 200u);

  ASSERT_EQ(c->Post("/v2/repository/models/breast_cancer_xgb/load", "")->status, 200u);  // back to config.yaml
  EXPECT_NE(c->Get("/v2/models/breast_cancer_xgb/config")->body.find("\"max_batch_size\":256"), std::string::npos);
  EXPECT_EQ(c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(8))->status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// A model that holds requests in its queue for a long time.
fs::path SlowRepository(const std::string& name, const std::string& delay_us, const std::string& queue_size) {
  const fs::path repo = ScratchDir(name);
  CopyExampleRepository(repo, {"breast_cancer_xgb"});
  const fs::path config = repo / "breast_cancer_xgb" / "config.yaml";
  EditConfig(config, "max_queue_delay_us: 100", "max_queue_delay_us: " + delay_us);
  EditConfig(config, "max_queue_size: 4096", "max_queue_size: " + queue_size);
  return repo;
}

TEST(Lifecycle, FullQueueAnswers503AndExpiredRequests504) {
  const fs::path repo = SlowRepository("limits", "400000", "2");
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  std::vector<unsigned> codes(4);
  std::vector<std::string> bodies(4), retry_after(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto c = server->Client();
      auto r = c->Post("/v2/models/breast_cancer_xgb/versions/1/infer", FeaturesBody(1));
      codes[i] = r.ok() ? r->status : 0;
      bodies[i] = r.ok() ? r->body : "";
      retry_after[i] = r.ok() ? r->header("retry-after") : "";
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0, full = 0;
  for (int i = 0; i < 4; ++i) {
    if (codes[i] == 200) ok++;
    if (codes[i] == 503) {
      full++;
      EXPECT_NE(bodies[i].find("queue full"), std::string::npos) << bodies[i];
      EXPECT_EQ(retry_after[i], "1") << "a 503 says when to retry";
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(full, 2);

  // A 100 ms timeout is admitted (a batch computes in far less, even under
  // sanitizers) but cannot survive a 400 ms batching window: 504, never run.
  auto c = server->Client();
  const auto before = Parse(c->Get("/v2/models/breast_cancer_xgb/versions/1/stats")->body);
  auto r =
      c->Post("/v2/models/breast_cancer_xgb/versions/1/infer", FeaturesBody(1, R"(,"parameters":{"timeout":100000})"));
  EXPECT_EQ(r->status, 504u) << r->body;
  EXPECT_NE(r->body.find("not executed"), std::string::npos) << r->body;
  const auto after = Parse(c->Get("/v2/models/breast_cancer_xgb/versions/1/stats")->body);
  EXPECT_EQ(after["model_stats"][0]["execution_count"].GetUint64(),
            before["model_stats"][0]["execution_count"].GetUint64());
  EXPECT_NE(
      c->Get("/metrics")
          ->body.find("vigil_inference_failures_total{model=\"breast_cancer_xgb\",version=\"1\",reason=\"timeout\"} 1"),
      std::string::npos);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Lifecycle, GracefulShutdownDrainsInFlightRequests) {
  const fs::path repo = SlowRepository("shutdown", "700000", "100");
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto observer = server->Client();  // an open keep-alive connection
  ASSERT_EQ(observer->Get("/v2/health/ready")->status, 200u);
  std::vector<unsigned> codes(6);
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto c = server->Client();
      auto r = c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1));
      codes[i] = r.ok() ? r->status : 0;
    });
  }
  const std::string queued = R"(vigil_inference_queue_depth{model="breast_cancer_xgb")";
  EXPECT_TRUE(Eventually([&] { return MetricSum(*observer, queued) == 6; }));  // all six wait in the batcher
  std::thread killer([&] { EXPECT_EQ(server->Signal(SIGTERM, 30), 0); });
  ASSERT_TRUE(server->WaitForLog("event=shutdown_started", 5));
  auto ready = observer->Get("/v2/health/ready");
  if (ready.ok()) {
    EXPECT_EQ(ready->status, 400u);  // readiness is false at once
  }
  for (auto& t : threads) t.join();
  killer.join();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(codes[i], 200u) << "request " << i;
  EXPECT_NE(server->Log().find("event=shutdown_complete"), std::string::npos);
  fs::remove_all(repo);
}

TEST(Lifecycle, ShutdownTimeoutBoundsTheDrain) {
  const fs::path repo = SlowRepository("shutdown_timeout", "20000000", "100");  // a 20 s batching window
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--shutdown-timeout", "0.3"});
  std::vector<unsigned> codes(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto c = server->Client();
      auto r = c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1));
      codes[i] = r.ok() ? r->status : 0;
    });
  }
  auto observer = server->Client();
  EXPECT_TRUE(Eventually(
      [&] { return MetricSum(*observer, R"(vigil_inference_queue_depth{model="breast_cancer_xgb")") == 3; }));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server->Signal(SIGTERM, 10), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  for (auto& t : threads) t.join();
  for (unsigned c : codes) EXPECT_EQ(c, 503u);  // answered, not dropped
  EXPECT_NE(server->Log().find("event=shutdown_timeout abandoned_requests=3"), std::string::npos) << server->Log();
  fs::remove_all(repo);
}

}  // namespace
}  // namespace vigil::testing
