// Every REST route and every bad input, against the real server binary on
// the example repository.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

rapidjson::Document Parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseNanAndInfFlag>(body.c_str());
  EXPECT_FALSE(d.HasParseError()) << body;
  return d;
}

// "1,1,...,1" with n elements.
std::string Ones(int n) {
  std::string s = "1";
  for (int i = 1; i < n; ++i) s += ",1";
  return s;
}

class HttpApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ =
        ServerProcess::Start({"--model-repository", (fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository").string(),
                              "--max-body-bytes", "200000"})
            .release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { client_ = server_->Client(); }

  HttpReply Get(const std::string& target) {
    auto r = client_->Get(target);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : HttpReply{};
  }
  HttpReply Post(const std::string& target, const std::string& body, const std::map<std::string, std::string>& h = {}) {
    auto r = client_->Post(target, body, h);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : HttpReply{};
  }
  // Expects `status` and an {"error"} body containing `fragment`.
  void ExpectError(const HttpReply& r, unsigned status, const std::string& fragment) {
    EXPECT_EQ(r.status, status) << r.body;
    auto d = Parse(r.body);
    ASSERT_TRUE(d.IsObject() && d.HasMember("error")) << r.body;
    EXPECT_NE(std::string(d["error"].GetString()).find(fragment), std::string::npos) << r.body;
  }

  static ServerProcess* server_;
  std::unique_ptr<HttpClient> client_;
};

ServerProcess* HttpApi::server_ = nullptr;

TEST_F(HttpApi, HealthAndServerMetadata) {
  EXPECT_EQ(Get("/v2/health/live").status, 200u);
  EXPECT_EQ(Get("/v2/health/ready").status, 200u);
  auto meta = Parse(Get("/v2").body);
  EXPECT_STREQ(meta["name"].GetString(), "vigil");
  bool binary = false;
  for (const auto& e : meta["extensions"].GetArray()) binary |= std::string(e.GetString()) == "binary_tensor_data";
  EXPECT_TRUE(binary);
}

TEST_F(HttpApi, ModelMetadataReadinessAndConfig) {
  auto meta = Parse(Get("/v2/models/breast_cancer_mlp").body);
  EXPECT_STREQ(meta["platform"].GetString(), "pytorch_torchscript");
  ASSERT_EQ(meta["versions"].Size(), 2u);
  EXPECT_STREQ(meta["versions"][1].GetString(), "2");
  EXPECT_EQ(meta["inputs"][0]["shape"][0].GetInt(), -1);
  EXPECT_EQ(meta["inputs"][0]["shape"][1].GetInt(), 30);
  EXPECT_EQ(meta["outputs"].Size(), 2u);
  auto v1 = Parse(Get("/v2/models/breast_cancer_mlp/versions/1").body);
  ASSERT_EQ(v1["versions"].Size(), 1u);
  EXPECT_STREQ(v1["versions"][0].GetString(), "1");
  EXPECT_STREQ(Parse(Get("/v2/models/breast_cancer_xgb").body)["platform"].GetString(), "xgboost");
  EXPECT_STREQ(Parse(Get("/v2/models/breast_cancer_mlp_onnx").body)["platform"].GetString(), "onnx_onnxv1");

  EXPECT_EQ(Get("/v2/models/breast_cancer_mlp/ready").status, 200u);
  EXPECT_EQ(Get("/v2/models/breast_cancer_mlp/versions/2/ready").status, 200u);
  ExpectError(Get("/v2/models/nope/ready"), 404, "unknown model 'nope'");
  ExpectError(Get("/v2/models/breast_cancer_mlp/versions/9/ready"), 404, "no ready version 9");

  auto config = Parse(Get("/v2/models/breast_cancer_mlp/config").body);
  EXPECT_EQ(config["max_batch_size"].GetInt(), 64);
  EXPECT_STREQ(config["backend"].GetString(), "torchscript");
  EXPECT_EQ(config["dynamic_batching"]["preferred_batch_sizes"][1].GetInt(), 64);
  EXPECT_EQ(Get("/v2/models/breast_cancer_mlp/versions/1/config").status, 200u);
}

TEST_F(HttpApi, RepositoryIndexListsEveryVersion) {
  auto index = Parse(Post("/v2/repository/index", "{}").body);
  ASSERT_TRUE(index.IsArray());
  EXPECT_EQ(index.Size(), 5u);
  for (const auto& row : index.GetArray()) EXPECT_STREQ(row["state"].GetString(), "READY");
  EXPECT_EQ(Parse(Post("/v2/repository/index", R"({"ready": true})").body).Size(), 5u);
  ExpectError(Post("/v2/repository/index", R"({"ready": 3})"), 400, "ready");
}

// Every model reproduces, over HTTP, the outputs Python computed (1e-5).
TEST_F(HttpApi, InferMatchesExpectedOutputsForEveryModel) {
  const fs::path repo = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";
  for (const auto& [model, version] : std::vector<std::pair<std::string, std::string>>{{"breast_cancer_mlp", "1"},
                                                                                       {"breast_cancer_mlp", "2"},
                                                                                       {"breast_cancer_mlp_onnx", "1"},
                                                                                       {"breast_cancer_xgb", "1"},
                                                                                       {"breast_cancer_xgb", "2"}}) {
    auto expected = Parse(ReadFile(repo / model / version / "expected.json"));
    const auto& rows = expected["inputs"]["features"];
    std::string data;
    for (const auto& row : rows.GetArray()) {
      for (const auto& x : row.GetArray()) data += (data.empty() ? "" : ",") + std::to_string(x.GetDouble());
    }
    // Nested data would also do; flat data checks the row-major path.
    const std::string body = R"({"id":"req-)" + model +
                             R"(","inputs":[{"name":"features","datatype":"FP32","shape":[)" +
                             std::to_string(rows.Size()) + R"(,30],"data":[)" + data + "]}]}";
    auto reply = Post("/v2/models/" + model + "/versions/" + version + "/infer", body);
    ASSERT_EQ(reply.status, 200u) << reply.body;
    auto got = Parse(reply.body);
    EXPECT_EQ(std::string(got["id"].GetString()), "req-" + model);
    EXPECT_STREQ(got["model_name"].GetString(), model.c_str());
    EXPECT_STREQ(got["model_version"].GetString(), version.c_str());
    for (const auto& out : got["outputs"].GetArray()) {
      const auto& want = expected["outputs"][out["name"].GetString()];
      ASSERT_EQ(out["data"].Size(), want.Size() * 2);
      for (rapidjson::SizeType i = 0; i < out["data"].Size(); ++i) {
        EXPECT_NEAR(out["data"][i].GetDouble(), want[i / 2][i % 2].GetDouble(), 1e-5) << model << " v" << version;
      }
    }
  }
}

TEST_F(HttpApi, RequestedOutputsAreFiltered) {
  auto reply = Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(2, R"(,"outputs":[{"name":"logits"}])"));
  ASSERT_EQ(reply.status, 200u) << reply.body;
  auto d = Parse(reply.body);
  ASSERT_EQ(d["outputs"].Size(), 1u);
  EXPECT_STREQ(d["outputs"][0]["name"].GetString(), "logits");
  EXPECT_EQ(d["outputs"][0]["shape"][0].GetInt(), 2);
  auto all = Parse(Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1)).body);
  EXPECT_EQ(all["outputs"].Size(), 2u);
  ExpectError(Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1, R"(,"outputs":[{"name":"scores"}])")), 400,
              "no output 'scores'");
}

TEST_F(HttpApi, BinaryTensorsBothWays) {
  std::vector<float> values(2 * 30);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 1.0f + 0.1f * static_cast<float>(i % 30);
  const std::string header =
      R"({"inputs":[{"name":"features","datatype":"FP32","shape":[2,30],"parameters":{"binary_data_size":240}}],)"
      R"("outputs":[{"name":"probabilities","parameters":{"binary_data":true}}]})";
  std::string body = header + std::string(reinterpret_cast<const char*>(values.data()), 240);
  auto reply = Post("/v2/models/breast_cancer_mlp_onnx/infer", body,
                    {{"Inference-Header-Content-Length", std::to_string(header.size())},
                     {"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(reply.status, 200u) << reply.body;
  EXPECT_EQ(reply.header("content-type"), "application/octet-stream");
  const size_t json_len = std::stoul(reply.header("inference-header-content-length"));
  auto d = Parse(reply.body.substr(0, json_len));
  EXPECT_EQ(d["outputs"][0]["parameters"]["binary_data_size"].GetInt(), 16);
  ASSERT_EQ(reply.body.size(), json_len + 16);
  float probs[4];
  std::memcpy(probs, reply.body.data() + json_len, 16);
  EXPECT_NEAR(probs[0] + probs[1], 1.0f, 1e-5);

  // The same rows as JSON give the same answer.
  auto json_reply = Parse(Post(
                              "/v2/models/breast_cancer_mlp_onnx/infer",
                              R"({"inputs":[{"name":"features","datatype":"FP32","shape":[2,30],"data":[)" +
                                  [&] {
                                    std::string s;
                                    for (float v : values) s += (s.empty() ? "" : ",") + std::to_string(v);
                                    return s;
                                  }() +
                                  R"(]}],"outputs":[{"name":"probabilities"}]})")
                              .body);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(json_reply["outputs"][0]["data"][i].GetDouble(), probs[i], 1e-6);

  // binary_data_output: true makes every output binary.
  auto all_binary =
      Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1, R"(,"parameters":{"binary_data_output":true})"));
  ASSERT_EQ(all_binary.status, 200u);
  EXPECT_EQ(all_binary.body.size(), std::stoul(all_binary.header("inference-header-content-length")) + 16);

  // Header length 0: the body is the raw bytes of the single input, batch 1.
  auto raw = Post("/v2/models/breast_cancer_xgb/infer", std::string(reinterpret_cast<const char*>(values.data()), 120),
                  {{"Inference-Header-Content-Length", "0"}});
  ASSERT_EQ(raw.status, 200u) << raw.body;
  EXPECT_EQ(raw.body.size(), std::stoul(raw.header("inference-header-content-length")) + 8);
}

TEST_F(HttpApi, BadInputsGetAClearError) {
  const std::string infer = "/v2/models/breast_cancer_mlp/infer";
  ExpectError(Post(infer, "{\"inputs\": [}"), 400, "malformed JSON");
  ExpectError(Post("/v2/models/nope/infer", FeaturesBody(1)), 404, "unknown model 'nope'");
  // The target is resolved before the body is read: unknown is 404 whatever the body.
  ExpectError(Post("/v2/models/nope/infer", "{\"inputs\": [}"), 404, "unknown model 'nope'");
  ExpectError(Post("/v2/models/nope/infer", "{}"), 404, "unknown model 'nope'");
  ExpectError(Post("/v2/models/nope/infer", "raw", {{"Inference-Header-Content-Length", "0"}}), 404,
              "unknown model 'nope'");
  ExpectError(Post("/v2/models/breast_cancer_mlp/versions/7/infer", FeaturesBody(1)), 404, "no ready version 7");
  ExpectError(Post("/v2/models/breast_cancer_mlp/versions/x1/infer", FeaturesBody(1)), 400, "positive integer");
  ExpectError(
      Post(infer, R"({"inputs":[{"name":"feats","datatype":"FP32","shape":[1,30],"data":[)" + Ones(30) + "]}]}"), 400,
      "no input 'feats'");
  ExpectError(
      Post(infer, R"({"inputs":[{"name":"features","datatype":"FP64","shape":[1,30],"data":[)" + Ones(30) + "]}]}"),
      400, "must be FP32, got FP64");
  ExpectError(Post(infer, R"({"inputs":[{"name":"features","datatype":"FP32","shape":[1,30],"data":[1,2,3]}]})"), 400,
              "needs 30 elements, data has 3");
  ExpectError(
      Post(infer, R"({"inputs":[{"name":"features","datatype":"FP32","shape":[1,29],"data":[)" + Ones(29) + "]}]}"),
      400, "expects [N] + [30]");
  ExpectError(Post(infer, FeaturesBody(65)), 400, "accepts 1 to 64 (max_batch_size)");
  ExpectError(Post(infer, FeaturesBody(1, R"(,"parameters":{"priority":"high"})")), 400, "'priority'");
  ExpectError(Get(infer), 405, "not allowed");
  ExpectError(Get("/v2/nothing/here"), 404, "no route");
  // Over --max-body-bytes: 413, and the server keeps serving.
  auto big = client_->Post(infer, std::string(300000, ' '));
  if (big.ok()) {
    ExpectError(*big, 413, "exceeds the limit");
  }
  client_ = server_->Client();
  EXPECT_EQ(Post(infer, FeaturesBody(1)).status, 200u);
}

// curl sends large bodies only after "100 Continue" and otherwise waits a
// second; the server answers the expectation at once.
TEST_F(HttpApi, ExpectContinueIsAnsweredAtOnce) {
  const fs::path body = fs::temp_directory_path() / ("vigil_expect_" + std::to_string(::getpid()) + ".json");
  WriteFile(body, FeaturesBody(2));
  const std::string cmd =
      "curl -s -o /dev/null -w '%{http_code} %{time_total}' --expect100-timeout 3 "
      "-H 'Expect: 100-continue' -X POST --data-binary @" +
      body.string() + " http://127.0.0.1:" + std::to_string(server_->port()) + "/v2/models/breast_cancer_mlp/infer";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buf[128] = {0};
  const size_t n = fread(buf, 1, sizeof buf - 1, pipe);
  ::pclose(pipe);
  fs::remove(body);
  unsigned code = 0;
  double seconds = 99;
  ASSERT_EQ(std::sscanf(std::string(buf, n).c_str(), "%u %lf", &code, &seconds), 2) << buf;
  EXPECT_EQ(code, 200u);
  EXPECT_LT(seconds, 2.0);  // without 100 Continue curl waits the full 3 s
}

// Mutated bodies (flipped bytes, truncation, bogus binary lengths) get an
// answer and never take the server down.
TEST_F(HttpApi, MutatedBodiesAreAnsweredAndTheServerSurvives) {
  std::mt19937 rng(20261128);
  const std::string valid = FeaturesBody(2, R"(,"outputs":[{"name":"logits"}],"parameters":{"priority":1})");
  int answered = 0;
  for (int i = 0; i < 400; ++i) {
    std::string body = valid;
    switch (i % 4) {
      case 0:  // flip a few bytes
        for (int k = 0; k < 3; ++k) body[rng() % body.size()] = static_cast<char>(rng() % 256);
        break;
      case 1:  // truncate
        body.resize(rng() % body.size());
        break;
      case 2:  // splice a random chunk elsewhere
        body.insert(rng() % body.size(), body.substr(rng() % body.size(), 1 + rng() % 20));
        break;
      case 3:  // random bytes
        body.assign(1 + rng() % 200, '\0');
        for (auto& c : body) c = static_cast<char>(rng() % 256);
        break;
    }
    std::map<std::string, std::string> headers;
    if (i % 5 == 0) headers["Inference-Header-Content-Length"] = std::to_string(rng() % (body.size() + 10));
    auto r = client_->Post("/v2/models/breast_cancer_mlp/infer", body, headers);
    if (!r.ok()) {
      client_ = server_->Client();  // the server may close a connection after a malformed request
      continue;
    }
    ++answered;
    EXPECT_TRUE(r->status == 200 || (r->status >= 400 && r->status < 500)) << r->status << " " << r->body;
    if (r->status != 200) {
      EXPECT_NE(r->body.find("\"error\""), std::string::npos) << r->body;
    }
  }
  EXPECT_GT(answered, 350);
  client_ = server_->Client();
  EXPECT_EQ(Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1)).status, 200u);
}

TEST_F(HttpApi, StatisticsCountInferences) {
  ASSERT_EQ(Post("/v2/models/breast_cancer_xgb/versions/2/infer", FeaturesBody(3)).status, 200u);
  auto stats = Parse(Get("/v2/models/breast_cancer_xgb/versions/2/stats").body);
  ASSERT_EQ(stats["model_stats"].Size(), 1u);
  const auto& s = stats["model_stats"][0];
  EXPECT_GE(s["inference_count"].GetUint64(), 3u);
  EXPECT_GE(s["execution_count"].GetUint64(), 1u);
  EXPECT_GE(s["inference_stats"]["success"]["count"].GetUint64(), 1u);
  EXPECT_GT(s["inference_stats"]["compute_infer"]["ns"].GetUint64(), 0u);
  bool saw_three = false;
  for (const auto& b : s["batch_stats"].GetArray()) {
    saw_three |= b["batch_size"].GetUint64() == 3 && b["compute_infer"]["count"].GetUint64() >= 1;
  }
  EXPECT_TRUE(saw_three) << "batch_stats lists the 3-row batch";
  EXPECT_EQ(Parse(Get("/v2/models/stats").body)["model_stats"].Size(), 5u);
  EXPECT_EQ(Parse(Get("/v2/models/breast_cancer_mlp/stats").body)["model_stats"].Size(), 2u);
}

TEST_F(HttpApi, MetricsPassPromtool) {
  ASSERT_EQ(Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1)).status, 200u);
  Post("/v2/models/breast_cancer_mlp/infer", "garbage");
  auto reply = Get("/metrics");
  ASSERT_EQ(reply.status, 200u);
  EXPECT_NE(reply.header("content-type").find("text/plain; version=0.0.4"), std::string::npos);
  for (const char* family :
       {"vigil_inference_requests_total{model=\"breast_cancer_mlp\",version=\"2\"}", "vigil_inference_failures_total",
        "vigil_inference_request_duration_seconds_bucket", "vigil_inference_queue_duration_seconds_bucket",
        "vigil_inference_compute_duration_seconds_bucket", "vigil_inference_batch_size_bucket",
        "vigil_inference_queue_depth", "vigil_model_state{model=\"breast_cancer_mlp\",version=\"1\",state=\"READY\"} 1",
        "vigil_process_resident_memory_bytes", "vigil_http_requests_total{code=\"400\"}"}) {
    EXPECT_NE(reply.body.find(family), std::string::npos) << family;
  }
  EXPECT_EQ(PromtoolCheck(reply.body), "");
}

}  // namespace
}  // namespace vigil::testing
