// Endpoints served from REPO/deployments/*.yaml by the real server: routing,
// stickiness, flags, shadows, kill switch, validation, and spec changes under
// load.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <sqlite3.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "client/inference_client.h"
#include "core/eventually.h"
#include "core/uuid.h"
#include "server_process.h"
#include "store/store.h"
#include "support/test_postgres.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

const char* kSpec = R"(
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: v2, model: breast_cancer_mlp, version: 2, mode: ab, share: 30}
  - {name: xgb-shadow, model: breast_cancer_xgb, mode: shadow, share: 50}
flags:
  - {name: beta, variant: v2, rules: [{header: x-beta, eq: "yes"}]}
)";

struct Answer {
  unsigned status = 0;
  std::string variant, model, version, prediction_id, id, body;
};

Answer Call(HttpClient& c, const std::string& key, const std::map<std::string, std::string>& headers = {},
            const std::string& target = "/v2/models/cancer/infer", const std::string& id = "") {
  std::string extra = key.empty() ? "" : R"(,"parameters":{"vigil.routing_key":")" + key + "\"}";
  if (!id.empty()) extra += R"(,"id":")" + id + "\"";
  auto r = c.Post(target, FeaturesBody(1, extra), headers);
  Answer a;
  if (!r.ok()) return a;
  a.status = r->status;
  a.body = r->body;
  rapidjson::Document d;
  d.Parse(r->body.c_str());
  if (a.status == 200 && d.IsObject() && d.HasMember("parameters")) {
    const auto& p = d["parameters"];
    a.variant = p["vigil.variant"].GetString();
    a.model = p["vigil.model"].GetString();
    a.version = p["vigil.version"].GetString();
    a.prediction_id = p["vigil.prediction_id"].GetString();
    a.id = d["id"].GetString();
    EXPECT_EQ(a.model, d["model_name"].GetString());
    EXPECT_EQ(a.version, d["model_version"].GetString());
  }
  return a;
}

double MetricValue(HttpClient& c, const std::string& series) {
  auto r = c.Get("/metrics");
  const auto at = r->body.find(series + " ");
  return at == std::string::npos ? 0 : std::stod(r->body.substr(at + series.size() + 1));
}

rapidjson::Document Json(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  EXPECT_FALSE(d.HasParseError()) << body;
  return d;
}

fs::path RepoWithSpec(const std::string& name, const std::string& spec) {
  const fs::path repo = ScratchDir(name);
  CopyExampleRepository(repo, {"breast_cancer_mlp", "breast_cancer_xgb"});
  fs::create_directories(repo / "deployments");
  WriteFile(repo / "deployments" / "cancer.yaml", spec);
  return repo;
}

TEST(Deployments, EndpointRoutesStickilyAndTellsWhoAnswered) {
  const fs::path repo = RepoWithSpec("deploy_route", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--grpc-port", "0"});
  auto c = server->Client();

  Answer a = Call(*c, "user-1");
  ASSERT_EQ(a.status, 200u) << a.body;
  EXPECT_TRUE(a.variant == "production" || a.variant == "v2") << a.variant;
  EXPECT_EQ(a.variant == "production" ? "1" : "2", a.version);
  EXPECT_TRUE(UuidV7Prefix(a.prediction_id).has_value()) << a.prediction_id;
  EXPECT_EQ(a.id, a.prediction_id);
  // The client's id is the prediction id.
  EXPECT_EQ(Call(*c, "user-1", {}, "/v2/models/cancer/infer", "req-42").prediction_id, "req-42");

  // Sticky: the same key always gets the same variant.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Call(*c, "user-1").variant, a.variant);
  // The split over many keys, within 4 standard deviations of 30%.
  const int n = 1500;
  int v2 = 0;
  for (int i = 0; i < n; ++i) v2 += Call(*c, "k" + std::to_string(i)).variant == "v2";
  EXPECT_NEAR(v2, n * 0.3, 4 * std::sqrt(n * 0.3 * 0.7));

  // A flag on a header wins over the split.
  int flagged = 0;
  for (int i = 0; i < 20; ++i) flagged += Call(*c, "k" + std::to_string(i), {{"X-Beta", "yes"}}).variant == "v2";
  EXPECT_EQ(flagged, 20);

  // Shadows answered on the side; the client only ever saw production or v2.
  const std::string ok = R"(vigil_shadow_requests_total{endpoint="cancer",variant="xgb-shadow",result="ok"})";
  EXPECT_TRUE(Eventually([&] { return MetricValue(*c, ok) > 0; }));

  // Metadata and readiness of an endpoint are its production model's, under its own name.
  auto meta = c->Get("/v2/models/cancer");
  ASSERT_EQ(meta->status, 200u) << meta->body;
  EXPECT_NE(meta->body.find("\"name\":\"cancer\""), std::string::npos) << meta->body;
  EXPECT_NE(meta->body.find("\"features\""), std::string::npos) << meta->body;
  EXPECT_EQ(c->Get("/v2/models/cancer/ready")->status, 200u);

  // An endpoint has no versions; its models are still callable directly.
  Answer versioned = Call(*c, "u", {}, "/v2/models/cancer/versions/1/infer");
  EXPECT_EQ(versioned.status, 400u);
  EXPECT_NE(versioned.body.find("is an endpoint"), std::string::npos) << versioned.body;
  auto direct = c->Post("/v2/models/breast_cancer_mlp/versions/2/infer", FeaturesBody(1));
  EXPECT_EQ(direct->status, 200u);
  EXPECT_EQ(direct->body.find("vigil.variant"), std::string::npos);

  // Over gRPC the routing parameter works the same and the reply says who answered.
  ClientOptions o;
  o.protocol = Protocol::kGrpc;
  o.port = server->grpc_port();
  auto grpc = ConnectInferenceClient(o);
  ASSERT_TRUE(grpc.ok());
  InferCall call;
  call.model = "cancer";
  call.parameters["vigil.routing_key"] = std::string("user-1");
  Tensor t;
  t.name = "features";
  t.datatype = DataType::kFp32;
  t.shape = {1, 30};
  t.data.resize(30 * 4);
  call.inputs.push_back(t);
  auto reply = (*grpc)->Infer(call);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(std::get<std::string>(reply->parameters.at("vigil.variant")), a.variant);
  EXPECT_TRUE(UuidV7Prefix(std::get<std::string>(reply->parameters.at("vigil.prediction_id"))).has_value());
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Deployments, InvalidSpecsAreRefusedAndTheOneInForceStays) {
  const fs::path repo = RepoWithSpec("deploy_invalid", std::string(kSpec) + "colour: red\n");
  WriteFile(repo / "deployments" / "breast_cancer_xgb.yaml", "production: {model: breast_cancer_mlp}\n");
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.1"});
  auto c = server->Client();
  EXPECT_EQ(Call(*c, "u").status, 404u);  // refused: no endpoint
  EXPECT_TRUE(server->WaitForLog("field 'colour'"));
  EXPECT_TRUE(server->WaitForLog("already a model's"));
  // The model of that name still answers as a model.
  EXPECT_EQ(c->Post("/v2/models/breast_cancer_xgb/infer", FeaturesBody(1))->status, 200u);

  WriteFile(repo / "deployments" / "cancer.yaml", kSpec);  // fixed: picked up by the poll
  Answer a;
  ASSERT_TRUE(Eventually([&] { return (a = Call(*c, "u")).status == 200; })) << a.body;
  // A broken edit leaves the previous spec serving.
  WriteFile(repo / "deployments" / "cancer.yaml", "production: {model: no_such_model}\n");
  EXPECT_TRUE(server->WaitForLog("no_such_model"));
  EXPECT_EQ(Call(*c, "u").status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// Specs change under load (split moved, kill switch on and off): no request
// fails, and each answer's variant matches the model version that computed it.
TEST(Deployments, ApplyingSpecsUnderLoadLosesNothingAndMixesNothing) {
  const fs::path repo = RepoWithSpec("deploy_swap", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.05"});
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, mixed{0}, total{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto c = server->Client();
      for (int i = 0; !stop.load(); ++i) {
        const Answer a = Call(*c, "t" + std::to_string(t) + "-" + std::to_string(i));
        ++total;
        if (a.status != 200) {
          ++failures;
          continue;
        }
        if ((a.variant == "production" && a.version != "1") || (a.variant == "v2" && a.version != "2")) ++mixed;
      }
    });
  }
  const std::string killed = std::string(kSpec) + "kill_switch: true\n";
  std::string moved = kSpec;
  moved.replace(moved.find("share: 30"), 9, "share: 80");
  auto admin = server->Client();
  auto changes = [&] { return Json(admin->Get("/v1/deployments/cancer/history")->body).Size(); };
  size_t applied = changes();
  for (const std::string& spec : {moved, killed, std::string(kSpec), killed, moved}) {
    WriteFile(repo / "deployments" / "cancer.yaml", spec);
    // In force (one more change in the history), then under traffic for a while.
    EXPECT_TRUE(Eventually([&] { return changes() > applied; }));
    applied = changes();
    const int seen = total.load();
    EXPECT_TRUE(Eventually([&] { return total.load() >= seen + 100; }));
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(total.load(), 200);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mixed.load(), 0);
  // The last spec (80%) is in force.
  auto c = server->Client();
  int v2 = 0;
  for (int i = 0; i < 300; ++i) v2 += Call(*c, "z" + std::to_string(i)).variant == "v2";
  EXPECT_NEAR(v2, 240, 4 * std::sqrt(300 * 0.8 * 0.2));
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// The variant entry called `name` in a status document.
const rapidjson::Value* VariantStatus(const rapidjson::Document& status, const std::string& name) {
  for (const auto& v : status["variants"].GetArray()) {
    if (name == v["name"].GetString()) return &v;
  }
  return nullptr;
}

TEST(DeploymentsAdmin, ApplyChangeAndReadEndpointsThroughTheApi) {
  const fs::path repo = RepoWithSpec("deploy_admin", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto c = server->Client();
  for (int i = 0; i < 60; ++i) ASSERT_EQ(Call(*c, "s" + std::to_string(i)).status, 200u);

  // Status: per-variant traffic since the spec took effect.
  auto status = Json(c->Get("/v1/deployments/cancer/status")->body);
  const auto* prod = VariantStatus(status, "production");
  const auto* v2 = VariantStatus(status, "v2");
  ASSERT_TRUE(prod && v2);
  EXPECT_EQ((*prod)["requests"].GetUint64() + (*v2)["requests"].GetUint64(), 60u);
  EXPECT_DOUBLE_EQ((*prod)["share"].GetDouble(), 70);
  EXPECT_GT((*prod)["latency_ms"]["p99"].GetDouble(), 0);

  // Weight: a bad one is refused and names the problem; a good one resets the figures.
  auto r = c->Post("/v1/deployments/cancer/candidates/v2/weight", R"({"share": 150})");
  EXPECT_EQ(r->status, 400u);
  EXPECT_NE(r->body.find("share must be 0 to 100"), std::string::npos) << r->body;
  r = c->Post("/v1/deployments/cancer/candidates/v2/weight", R"({"share": 100})");
  ASSERT_EQ(r->status, 200u) << r->body;
  status = Json(r->body);
  EXPECT_DOUBLE_EQ((*VariantStatus(status, "production"))["share"].GetDouble(), 0);
  EXPECT_EQ((*VariantStatus(status, "v2"))["requests"].GetUint64(), 0u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Call(*c, "w" + std::to_string(i)).variant, "v2");
  // A malformed request is the client's doing: rejected, not an error of the variant.
  std::string bad = R"({"inputs":[{"name":"features","datatype":"FP32","shape":[1,29],"data":[0)";
  for (int i = 1; i < 29; ++i) bad += ",0";
  EXPECT_EQ(c->Post("/v2/models/cancer/infer", bad + "]}]}")->status, 400u);
  status = Json(c->Get("/v1/deployments/cancer/status")->body);
  EXPECT_EQ((*VariantStatus(status, "v2"))["rejected"].GetUint64(), 1u);
  EXPECT_EQ((*VariantStatus(status, "v2"))["errors"].GetUint64(), 0u);
  EXPECT_EQ((*VariantStatus(status, "v2"))["requests"].GetUint64(), 11u);
  EXPECT_EQ(c->Post("/v1/deployments/cancer/candidates/nope/weight", R"({"share": 1})")->status, 404u);

  // Rollback: the candidate's share drops to 0 at once; it stays in the spec.
  ASSERT_EQ(c->Post("/v1/deployments/cancer/rollback", "")->status, 200u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Call(*c, "w" + std::to_string(i)).variant, "production");
  EXPECT_NE(c->Get("/v1/deployments/cancer")->body.find(R"("name":"v2")"), std::string::npos);
  // The spec is a JSON object (YAML when asked for), and what GET answers can be PUT back as it is.
  auto json_spec = c->Get("/v1/deployments/cancer");
  ASSERT_EQ(Json(json_spec->body)["candidates"][0]["share"].GetDouble(), 0) << json_spec->body;
  auto yaml_spec = c->Request("GET", "/v1/deployments/cancer", "", {{"Accept", "application/yaml"}});
  EXPECT_NE(yaml_spec->body.find("name: v2"), std::string::npos) << yaml_spec->body;
  for (const std::string& body : {json_spec->body, yaml_spec->body}) {
    auto again = c->Put("/v1/deployments/cancer", body);
    ASSERT_EQ(again->status, 200u) << again->body;
    EXPECT_EQ(c->Get("/v1/deployments/cancer")->body, json_spec->body);
  }

  // Pause / resume.
  EXPECT_TRUE(Json(c->Post("/v1/deployments/cancer/pause", "")->body)["paused"].GetBool());
  EXPECT_FALSE(Json(c->Post("/v1/deployments/cancer/resume", "")->body)["paused"].GetBool());

  // Promote: the candidate becomes production.
  ASSERT_EQ(c->Post("/v1/deployments/cancer/promote", R"({"candidate": "v2"})")->status, 200u);
  const Answer promoted = Call(*c, "anyone");
  EXPECT_EQ(promoted.variant, "production");
  EXPECT_EQ(promoted.version, "2");
  EXPECT_EQ(c->Get("/v1/deployments/cancer")->body.find(R"("name":"v2")"), std::string::npos);

  // PUT: JSON works as well as YAML; an invalid spec is refused and the old one stays.
  r = c->Put("/v1/deployments/fraud", R"({"production": {"model": "breast_cancer_xgb"}})");
  ASSERT_EQ(r->status, 200u) << r->body;
  EXPECT_EQ(Call(*c, "x", {}, "/v2/models/fraud/infer").model, "breast_cancer_xgb");
  r = c->Put("/v1/deployments/fraud",
             "production: {model: breast_cancer_xgb}\ncandidates: [{name: a, model: "
             "breast_cancer_mlp, mode: ab, share: 101}]\n");
  EXPECT_EQ(r->status, 400u);
  EXPECT_NE(r->body.find("candidates[0].share"), std::string::npos) << r->body;
  EXPECT_EQ(Call(*c, "x", {}, "/v2/models/fraud/infer").status, 200u);
  auto listed = Json(c->Get("/v1/deployments")->body);
  bool fraud_listed = false;
  for (const auto& e : listed.GetArray()) {
    if (std::string(e["endpoint"].GetString()) != "fraud") continue;
    fraud_listed = true;
    EXPECT_STREQ(e["spec"]["production"]["model"].GetString(), "breast_cancer_xgb");  // an object, not YAML text
  }
  EXPECT_TRUE(fraud_listed);
  EXPECT_EQ(c->Request("DELETE", "/v1/deployments/fraud")->status, 200u);
  EXPECT_EQ(Call(*c, "x", {}, "/v2/models/fraud/infer").status, 404u);
  EXPECT_EQ(c->Get("/v1/deployments/fraud")->status, 404u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(DeploymentsAdmin, ChangesNeedTheAdminTokenWhenOneIsSet) {
  const fs::path repo = RepoWithSpec("deploy_auth", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--admin-token", "s3cret"});
  auto c = server->Client();
  EXPECT_EQ(c->Get("/v1/deployments/cancer/status")->status, 200u);  // reading needs no token
  auto r = c->Post("/v1/deployments/cancer/pause", "");
  EXPECT_EQ(r->status, 401u);
  EXPECT_NE(r->body.find("Authorization: Bearer"), std::string::npos) << r->body;
  EXPECT_EQ(c->Post("/v1/deployments/cancer/pause", "", {{"Authorization", "Bearer wrong"}})->status, 401u);
  EXPECT_EQ(c->Request("DELETE", "/v1/deployments/cancer")->status, 401u);
  EXPECT_EQ(c->Post("/v1/deployments/cancer/pause", "", {{"Authorization", "Bearer s3cret"}})->status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// A client that is not on loopback, from a network namespace of the
// test's own (never this machine's interface address).
TEST(DeploymentsAdmin, WithoutATokenChangesComeOnlyFromLoopback) {
  TestNetns netns;
  if (!netns.ok()) GTEST_SKIP() << netns.error();
  const fs::path repo = RepoWithSpec("deploy_loopback", kSpec);
  auto server =
      ServerProcess::Start({"--model-repository", repo.string(), "--host", "0.0.0.0"}, {.netns = netns.name()});
  HttpClient::Options o;
  o.host = netns.inner_address();
  o.port = server->port();
  auto remote = HttpClient::Connect(o);
  ASSERT_TRUE(remote.ok()) << remote.status().message();
  EXPECT_EQ((*remote)->Get("/v1/deployments/cancer/status")->status, 200u);
  auto r = (*remote)->Post("/v1/deployments/cancer/pause", "");
  EXPECT_EQ(r->status, 403u);
  EXPECT_NE(r->body.find("only from loopback"), std::string::npos) << r->body;
  // Model loads and feedback are held to the same rule.
  EXPECT_EQ((*remote)->Post("/v2/repository/models/breast_cancer_mlp/unload", "")->status, 403u);
  r = (*remote)->Post("/v1/feedback", R"({"prediction_id":"p","label":1})");
  EXPECT_EQ(r->status, 403u);
  EXPECT_NE(r->body.find("--feedback-token"), std::string::npos) << r->body;
  netns.RunInside([&] {
    HttpClient::Options local;
    local.port = server->port();
    auto c = HttpClient::Connect(local);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ((*c)->Post("/v1/deployments/cancer/pause", "")->status, 200u);
  });
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// --admin-allow narrows who may change things: only 127.0.0.1 here, so a
// client on 127.0.0.2 (loopback, but not admitted) is refused.
TEST(DeploymentsAdmin, AdminAllowAdmitsOnlyItsAddresses) {
  const fs::path repo = RepoWithSpec("deploy_allow", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--admin-allow", "127.0.0.1/32"});
  HttpClient::Options o;
  o.port = server->port();
  o.local_address = "127.0.0.2";
  auto other = HttpClient::Connect(o);
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_EQ((*other)->Get("/v1/deployments/cancer/status")->status, 200u);  // reading is open
  auto r = (*other)->Post("/v1/deployments/cancer/pause", "");
  EXPECT_EQ(r->status, 403u);
  EXPECT_NE(r->body.find("--admin-allow admits (127.0.0.2:"), std::string::npos) << r->body;
  EXPECT_EQ((*other)->Post("/v2/repository/models/breast_cancer_mlp/unload", "")->status, 403u);
  EXPECT_EQ((*other)->Post("/v1/feedback", R"({"prediction_id":"p","label":1})")->status, 403u);
  auto admitted = server->Client();  // from 127.0.0.1
  EXPECT_EQ(admitted->Post("/v1/deployments/cancer/pause", "")->status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  // A bad range stops the server at start, naming it.
  CommandResult bad =
      RunVigil({"serve", "--model-repository", repo.string(), "--http-port", "0", "--admin-allow", "127.0.0.1/40"}, 30);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--admin-allow: the prefix of '127.0.0.1/40' must be from 0 to 32"), std::string::npos)
      << bad.err;
  fs::remove_all(repo);
}

// A raw-body request (Inference-Header-Content-Length: 0) to an endpoint's
// name takes its input from the endpoint's production model and is routed
// like any other call.
// The everyday rollout: production v1, candidate v2, and the default
// policy keeping only the latest version loaded.
TEST(Deployments, VersionsASpecNamesAreLoadedWhateverTheVersionPolicy) {
  const fs::path repo = ScratchDir("deploy_keep");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  std::string config = ReadFile(repo / "breast_cancer_mlp" / "config.yaml");
  config.replace(config.find("version_policy:"), std::string("version_policy:\n  latest: 2").size(),
                 "version_policy: {latest: 1}");
  WriteFile(repo / "breast_cancer_mlp" / "config.yaml", config);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--poll-interval", "0.05"});
  auto c = server->Client();
  ASSERT_TRUE(c);
  auto version_1 = [&]() -> std::optional<std::pair<std::string, std::string>> {  // state, reason
    auto index = Json(c->Post("/v2/repository/index", "{}")->body);
    for (const auto& row : index.GetArray()) {
      if (std::string(row["version"].GetString()) == "1")
        return std::pair{std::string(row["state"].GetString()), std::string(row["reason"].GetString())};
    }
    return std::nullopt;
  };
  EXPECT_FALSE(version_1().has_value());  // the policy selects version 2 only

  auto r = c->Put("/v1/deployments/churn",
                  "production: {model: breast_cancer_mlp, version: 1}\n"
                  "candidates: [{name: v2, model: breast_cancer_mlp, version: 2, mode: canary, steps: [10, 50]}]\n");
  ASSERT_EQ(r->status, 200u) << r->body;
  const Answer a = Call(*c, "anyone", {}, "/v2/models/churn/infer");
  EXPECT_EQ(a.status, 200u) << a.body;
  EXPECT_EQ(a.version, "1");
  auto kept = version_1();
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->first, "READY");
  EXPECT_EQ(kept->second, "kept loaded: version_policy does not select it; named by endpoint churn");
  // Polls keep it loaded while the spec names it...
  EXPECT_TRUE(server->WaitForLog("event=model_ready model=breast_cancer_mlp version=1"));
  EXPECT_FALSE(Eventually([&] { return !version_1().has_value(); }, std::chrono::milliseconds(300)));
  // ... and a version on disk that no policy or spec names is still refused, by name.
  r = c->Put("/v1/deployments/churn", "production: {model: breast_cancer_mlp, version: 3}\n");
  EXPECT_EQ(r->status, 400u);
  EXPECT_NE(r->body.find("version 3"), std::string::npos) << r->body;
  // Once no spec names it, the policy decides again: it is unloaded.
  ASSERT_EQ(c->Request("DELETE", "/v1/deployments/churn")->status, 200u);
  EXPECT_TRUE(Eventually([&] { return !version_1().has_value(); }));
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Deployments, RawBodyRequestsReachEndpoints) {
  const fs::path repo = RepoWithSpec("deploy_raw", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto c = server->Client();
  const std::vector<float> row(30, 1.0f);
  const std::string body(reinterpret_cast<const char*>(row.data()), row.size() * sizeof(float));
  auto r = c->Post("/v2/models/cancer/infer", body, {{"Inference-Header-Content-Length", "0"}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->status, 200u) << r->body;
  auto it = r->headers.find("inference-header-content-length");
  ASSERT_NE(it, r->headers.end());
  const std::string header = r->body.substr(0, std::stoul(it->second));
  EXPECT_NE(header.find("\"vigil.variant\""), std::string::npos) << header;
  EXPECT_NE(header.find("\"vigil.prediction_id\""), std::string::npos) << header;
  auto bad = c->Post("/v2/models/cancer/infer", body.substr(0, 7), {{"Inference-Header-Content-Length", "0"}});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400u) << bad->body;
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(DeployCommand, AppliesAndChangesEndpointsOfARunningServer) {
  const fs::path repo = RepoWithSpec("deploy_cli", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--admin-token", "t0k"});
  const std::string url = "127.0.0.1:" + std::to_string(server->port());
  const fs::path spec = repo / "fraud.yaml";
  WriteFile(spec,
            "production: {model: breast_cancer_xgb}\ncandidates: [{name: mlp, model: breast_cancer_mlp, mode: "
            "canary, steps: [10, 50]}]\n");
  CommandResult r = RunVigil({"deploy", "-u", url, "--token", "t0k", "apply", "-f", spec.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("endpoint fraud"), std::string::npos) << r.out;
  r = RunVigil({"deploy", "-u", url, "--token", "t0k", "weight", "fraud", "mlp", "--step", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("step 2/2 (50%)"), std::string::npos) << r.out;  // where the canary stands, not an index
  EXPECT_NE(r.out.find("        -"), std::string::npos) << r.out;       // no traffic yet: no latency, not 0.000
  for (size_t at = 0, end; (end = r.out.find('\n', at)) != std::string::npos; at = end + 1)
    EXPECT_LE(end - at, 80u) << "wider than a terminal: " << r.out.substr(at, end - at);
  r = RunVigil({"deploy", "-u", url, "status", "fraud", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"share\":50"), std::string::npos) << r.out;
  // Failures: one line naming the problem, exit code 1.
  for (const auto& [args, fragment] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"deploy", "-u", url, "pause", "fraud"}, "Authorization: Bearer"},
           {{"deploy", "-u", url, "status", "nope"}, "no endpoint 'nope'"},
           {{"deploy", "-u", url, "--token", "t0k", "weight", "fraud", "mlp", "--step", "5"}, "--step must be -1 to 1"},
           {{"deploy", "-u", url, "--token", "t0k", "weight", "fraud", "mlp", "--share", "5"}, "moves by --step"},
           {{"deploy", "-u", url, "--token", "t0k", "weight", "fraud", "mlp"}, "give --share PERCENT"},
           {{"deploy", "-u", url, "--token", "t0k", "apply", "-f", "/nonexistent.yaml"}, "cannot read"},
           {{"deploy", "-u", "127.0.0.1:1", "status", "x"}, "cannot connect"}}) {
    CommandResult bad = RunVigil(args, 30);
    EXPECT_EQ(bad.exit_code, 1) << fragment;
    EXPECT_NE(bad.err.find(fragment), std::string::npos) << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  }
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// A restart (even after kill -9) restores every deployment exactly as it was:
// specs, shares changed through the API, paused state, endpoints created
// through the API, and the history of changes.
TEST(DeploymentsStore, RestartRestoresEveryDeploymentAndItsHistory) {
  const fs::path repo = RepoWithSpec("deploy_restart", kSpec);
  const fs::path data = ScratchDir("deploy_restart_data");
  const std::vector<std::string> args = {"--model-repository", repo.string(),     "--data-dir",
                                         data.string(),        "--poll-interval", "0.1"};
  {
    auto server = ServerProcess::Start(args);
    auto c = server->Client();
    ASSERT_EQ(c->Post("/v1/deployments/cancer/candidates/v2/weight", R"({"share": 55})")->status, 200u);
    ASSERT_EQ(c->Post("/v1/deployments/cancer/pause", "")->status, 200u);
    ASSERT_EQ(c->Put("/v1/deployments/fraud", "production: {model: breast_cancer_xgb}\n")->status, 200u);
    // No graceful shutdown: what was acknowledged must already be on disk.
    ::kill(server->pid(), SIGKILL);
  }
  auto server = ServerProcess::Start(args);
  auto c = server->Client();
  auto status = Json(c->Get("/v1/deployments/cancer/status")->body);
  EXPECT_TRUE(status["paused"].GetBool());
  EXPECT_DOUBLE_EQ((*VariantStatus(status, "v2"))["share"].GetDouble(), 55);
  EXPECT_EQ(Call(*c, "x", {}, "/v2/models/fraud/infer").status, 200u);
  // The unchanged file does not undo the API's changes, even after polls.
  EXPECT_TRUE(server->WaitForPolls(3));
  status = Json(c->Get("/v1/deployments/cancer/status")->body);
  EXPECT_DOUBLE_EQ((*VariantStatus(status, "v2"))["share"].GetDouble(), 55);

  auto history = Json(c->Get("/v1/deployments/cancer/history")->body);
  ASSERT_TRUE(history.IsArray());
  ASSERT_EQ(history.Size(), 3u);
  EXPECT_STREQ(history[0]["action"].GetString(), "pause");
  EXPECT_STREQ(history[1]["action"].GetString(), "weight");
  EXPECT_STREQ(history[2]["action"].GetString(), "apply");
  EXPECT_NE(std::string(history[2]["actor"].GetString()).find("file:"), std::string::npos);
  EXPECT_NE(std::string(history[1]["actor"].GetString()).find("127.0.0.1"), std::string::npos);
  EXPECT_NE(std::string(history[1]["before"].GetString()).find("share: 30"), std::string::npos);
  EXPECT_NE(std::string(history[1]["after"].GetString()).find("share: 55"), std::string::npos);
  EXPECT_GE(history[0]["id"].GetInt64(), history[1]["id"].GetInt64());

  // Editing the file is a change again.
  WriteFile(repo / "deployments" / "cancer.yaml", std::string(kSpec) + "paused: false\n");
  EXPECT_TRUE(Eventually([&] {
    status = Json(c->Get("/v1/deployments/cancer/status")->body);
    return !status["paused"].GetBool();
  }));
  EXPECT_DOUBLE_EQ((*VariantStatus(status, "v2"))["share"].GetDouble(), 30);
  EXPECT_EQ(Json(c->Get("/v1/deployments/cancer/history")->body).Size(), 4u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
  fs::remove_all(data);
}

// Replicas on one PostgreSQL store: a replica started later serves the
// deployments another changed, feedback through one joins the predictions
// another logged, and a replica killed with kill -9 takes nothing with it.
TEST(DeploymentsStore, ReplicasOnOnePostgresStoreShareSpecsPredictionsAndFeedback) {
  test_support::PostgresDatabase db;
  if (db.url().empty()) {
    if (!test_support::PostgresInstalled()) GTEST_SKIP() << db.why();
    FAIL() << db.why();
  }
  const fs::path repo = RepoWithSpec("pg_replicas", kSpec);
  const std::vector<std::string> args = {"--model-repository", repo.string(), "--store",          db.url(),
                                         "--poll-interval",    "0.1",         "--leader-lease-s", "0.5"};
  auto a = ServerProcess::Start(args);
  auto ca = a->Client();
  ASSERT_EQ(ca->Post("/v1/deployments/cancer/candidates/v2/weight", R"({"share": 55})")->status, 200u);
  ASSERT_EQ(ca->Put("/v1/deployments/fraud", "production: {model: breast_cancer_xgb}\n")->status, 200u);

  // A replica started later serves what A changed.
  auto b = ServerProcess::Start(args);
  auto cb = b->Client();
  auto status = Json(cb->Get("/v1/deployments/cancer/status")->body);
  EXPECT_DOUBLE_EQ((*VariantStatus(status, "v2"))["share"].GetDouble(), 55) << "the change made through A";
  EXPECT_EQ(Call(*cb, "x", {}, "/v2/models/fraud/infer").status, 200u) << "the endpoint created through A";
  // While both run, a change through either is in force on the other within a poll.
  ASSERT_EQ(cb->Post("/v1/deployments/cancer/candidates/v2/weight", R"({"share": 70})")->status, 200u);
  ASSERT_EQ(ca->Request("DELETE", "/v1/deployments/fraud")->status, 200u);
  EXPECT_TRUE(Eventually([&] {
    auto s = Json(ca->Get("/v1/deployments/cancer/status")->body);
    return (*VariantStatus(s, "v2"))["share"].GetDouble() == 70;
  }));
  EXPECT_TRUE(Eventually([&] { return Call(*cb, "x", {}, "/v2/models/fraud/infer").status == 404; }))
      << "removed through A";
  EXPECT_EQ(Json(ca->Get("/v1/deployments/cancer/status")->body)["since_unix_ms"].GetInt64(),
            Json(cb->Get("/v1/deployments/cancer/status")->body)["since_unix_ms"].GetInt64())
      << "one time the spec took effect, whichever replica is asked";

  // One leads (the first), the other follows; readiness and /metrics say which.
  auto ready_a = Json(ca->Get("/v2/health/ready")->body);
  auto ready_b = Json(cb->Get("/v2/health/ready")->body);
  EXPECT_TRUE(ready_a["ready"].GetBool());
  EXPECT_TRUE(ready_a["leader"].GetBool());
  EXPECT_FALSE(ready_b["leader"].GetBool());
  EXPECT_EQ(MetricValue(*ca, "\nvigil_leader") + MetricValue(*cb, "\nvigil_leader"), 1);
  const int64_t epoch = ready_a["leader_epoch"].GetInt64();

  // Predictions logged by A, feedback through B, A killed in between.
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    const Answer answer = Call(*ca, "user-" + std::to_string(i));
    ASSERT_EQ(answer.status, 200u) << answer.body;
    ids.push_back(answer.prediction_id);
  }
  const std::string written = R"(vigil_prediction_log_records_total{result="written"})";
  // Every answer and every shadow copy that ran is in the log before A dies.
  ASSERT_TRUE(Eventually([&] {
    const double shadows =
        MetricSum(*ca, R"(vigil_shadow_requests_total{endpoint="cancer",variant="xgb-shadow",result="ok")");
    return MetricValue(*ca, written) >= 20 + shadows;
  }));
  ::kill(a->pid(), SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  EXPECT_TRUE(Eventually([&] { return Json(cb->Get("/v2/health/ready")->body)["leader"].GetBool(); }))
      << "B takes over from the killed leader";
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::seconds(5)) << "within a few leases of 0.5 s";
  EXPECT_EQ(Json(cb->Get("/v2/health/ready")->body)["leader_epoch"].GetInt64(), epoch + 1);
  EXPECT_EQ(MetricValue(*cb, "\nvigil_leader"), 1);
  std::string items = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    items += (i ? "," : "") + std::string(R"({"prediction_id":")") + ids[i] + R"(","label":1})";
  }
  auto r = cb->Post("/v1/feedback", items + "]");
  ASSERT_EQ(r->status, 200u) << r->body;
  auto d = Json(r->body);
  EXPECT_EQ(d["accepted"].GetInt(), 20);
  EXPECT_EQ(d["joined"].GetInt(), 20) << "B knows the predictions A logged";
  EXPECT_TRUE(Eventually([&] {
    status = Json(cb->Get("/v1/deployments/cancer/status")->body);
    if (!status["quality"].IsObject()) return false;
    size_t joined = 0;
    for (const auto& [variant, q] : status["quality"].GetObject()) joined += q["joined"].GetUint64();
    return joined == 20;
  })) << cb->Get("/v1/deployments/cancer/status")->body;
  auto history = Json(cb->Get("/v1/deployments/cancer/history")->body);
  ASSERT_TRUE(history.IsArray());
  ASSERT_GE(history.Size(), 3u);
  EXPECT_STREQ(history[0]["action"].GetString(), "weight");
  EXPECT_NE(std::string(history[0]["after"].GetString()).find("share: 70"), std::string::npos);
  EXPECT_EQ(b->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// Feedback joins predictions whichever arrives first; malformed items are
// reported by index and the rest kept; quality per variant follows.
TEST(Feedback, JoinsInEitherOrderAndReportsWhatItCouldNotUse) {
  const fs::path repo = RepoWithSpec("feedback", kSpec);
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--log-inputs-sample-rate", "1"});
  auto c = server->Client();
  // Feedback first, for a prediction that does not exist yet.
  auto r = c->Post("/v1/feedback", R"({"prediction_id": "early-1", "label": 1})");
  ASSERT_EQ(r->status, 200u) << r->body;
  auto d = Json(r->body);
  EXPECT_EQ(d["accepted"].GetInt(), 1);
  EXPECT_EQ(d["joined"].GetInt(), 0);
  EXPECT_STREQ(d["unknown_ids"][0].GetString(), "early-1");
  ASSERT_EQ(Call(*c, "k", {}, "/v2/models/cancer/infer", "early-1").status, 200u);

  // Then predictions first: 20 served, feedback right away (still in the log's queue).
  std::vector<Answer> answers;
  for (int i = 0; i < 20; ++i) answers.push_back(Call(*c, "user-" + std::to_string(i)));
  std::string items = "[";
  for (size_t i = 0; i < answers.size(); ++i) {
    items += (i ? "," : "") + std::string(R"({"prediction_id":")") + answers[i].prediction_id + R"(","label":1})";
  }
  items += R"(,{"prediction_id":"nobody","label":0},{"label":1},{"prediction_id":"x","reward":7},"junk",)";
  items += R"({"prediction_id":")" + answers[0].prediction_id + R"(","reward":0.5}])";
  r = c->Post("/v1/feedback", items);
  ASSERT_EQ(r->status, 200u) << r->body;
  d = Json(r->body);
  EXPECT_EQ(d["accepted"].GetInt(), 22);
  EXPECT_EQ(d["joined"].GetInt(), 21);
  ASSERT_EQ(d["unknown_ids"].Size(), 1u);
  EXPECT_STREQ(d["unknown_ids"][0].GetString(), "nobody");
  EXPECT_EQ(d["unknown"].GetInt(), 1);
  ASSERT_EQ(d["errors"].Size(), 3u);
  EXPECT_EQ(d["errors"][0]["index"].GetInt(), 21);
  EXPECT_NE(std::string(d["errors"][0]["error"].GetString()).find("prediction_id"), std::string::npos);
  EXPECT_EQ(d["errors"][1]["index"].GetInt(), 22);
  EXPECT_NE(std::string(d["errors"][1]["error"].GetString()).find("from 0 to 1"), std::string::npos);
  EXPECT_EQ(d["errors"][2]["index"].GetInt(), 23);

  // Quality per variant from the joined feedback: the example model calls
  // these feature rows benign (class 1), so accuracy is known exactly.
  auto status = Json(c->Get("/v1/deployments/cancer/status")->body);
  ASSERT_TRUE(status["quality"].IsObject()) << c->Get("/v1/deployments/cancer/status")->body;
  size_t joined = 0;
  for (const auto& [variant, q] : status["quality"].GetObject()) {
    joined += q["joined"].GetUint64();
    ASSERT_TRUE(q.HasMember("accuracy")) << variant.GetString();
    EXPECT_DOUBLE_EQ(q["accuracy"].GetDouble(), 1.0) << variant.GetString();  // every label is 1, every answer 1
    EXPECT_TRUE(q.HasMember("log_loss"));
  }
  EXPECT_EQ(joined, 21u);  // early-1 and the 20 (one of them also rewarded)
  // The monitor loop refreshes the quality gauges on its next round.
  EXPECT_TRUE(Eventually(
      [&] { return c->Get("/metrics")->body.find("vigil_quality{endpoint=\"cancer\"") != std::string::npos; }));
  EXPECT_EQ(c->Post("/v1/feedback", "not json")->status, 400u);
  // 5,000 ids nobody logged: all counted, the first 100 named.
  std::string many = "[";
  for (int i = 0; i < 5000; ++i) {
    many += std::string(i ? "," : "") + R"({"prediction_id":"ghost-)" + std::to_string(i) + R"(","label":1})";
  }
  r = c->Post("/v1/feedback", many + "]");
  ASSERT_EQ(r->status, 200u) << r->body.substr(0, 300);
  d = Json(r->body);
  EXPECT_EQ(d["unknown"].GetInt(), 5000);
  ASSERT_EQ(d["unknown_ids"].Size(), 100u);
  EXPECT_STREQ(d["unknown_ids"][99].GetString(), "ghost-99");
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// kill -9 under load: acknowledged feedback is all there, and the prediction
// log lost at most what its queue held (65,536 records, the documented bound).
TEST(DeploymentsStore, KillNineLosesAtMostTheQueuedPredictionsAndNoFeedback) {
  const fs::path repo = RepoWithSpec("deploy_kill", kSpec);
  const fs::path data = ScratchDir("deploy_kill_data");
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--data-dir", data.string()});
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> answered, acknowledged;
  std::vector<std::chrono::steady_clock::time_point> answered_at;  // beside `answered`
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto c = server->Client();
      for (int i = 0; !stop.load(); ++i) {
        const Answer a = Call(*c, "k" + std::to_string(t) + "-" + std::to_string(i));
        if (a.status != 200) continue;
        std::lock_guard lock(mu);
        answered.push_back(a.prediction_id);
        answered_at.push_back(std::chrono::steady_clock::now());
        if (t == 0 && i % 10 == 0) {
          auto r = c->Post("/v1/feedback", R"({"prediction_id":")" + a.prediction_id + R"(","label":1})");
          if (r.ok() && r->status == 200) acknowledged.push_back(a.prediction_id);
        }
      }
    });
  }
  // Heavy traffic besides the tracked clients: `vigil bench` with 32 in flight.
  const std::string url = "127.0.0.1:" + std::to_string(server->port());
  std::thread load([&] {
    RunVigil({"bench", "-u", url, "-m", "cancer", "--concurrency", "32", "--duration", "4", "--window", "1",
              "--timeout", "5"},
             60);
  });
  // Killed in the middle of heavy traffic: once the log has written that
  // many rows (and at least 2.5 s in), not after a fixed time alone — on a
  // busy machine the load starts late.
  const auto started = std::chrono::steady_clock::now();
  auto watcher = server->Client();
  const std::string written = R"(vigil_prediction_log_records_total{result="written"})";
  EXPECT_TRUE(Eventually(
      [&] {
        return std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(2500) &&
               MetricValue(*watcher, written) > (kSanitized ? 1'000 : 10'000);
      },
      std::chrono::seconds(30)));
  const auto killed_at = std::chrono::steady_clock::now();
  ::kill(server->pid(), SIGKILL);  // in the middle of the traffic
  stop = true;
  for (auto& t : clients) t.join();
  load.join();
  ASSERT_GT(answered.size(), 100u);
  ASSERT_GT(acknowledged.size(), 5u);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((data / "vigil.db").c_str(), &db), SQLITE_OK);
  auto count = [&](const std::string& sql, const std::vector<std::string>& ids) {
    sqlite3_stmt* q = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    size_t found = 0;
    for (const auto& id : ids) {
      sqlite3_bind_text(q, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(q, 2, PredictionIdKey(id));
      found += sqlite3_step(q) == SQLITE_ROW;
      sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    return found;
  };
  const size_t feedback = count("SELECT 1 FROM feedback WHERE prediction_id = ?", acknowledged);
  const size_t logged = count("SELECT 1 FROM predictions WHERE id = ?1 AND id_key = ?2 AND shadow = 0", answered);
  // What the log loses is what was queued at the kill (50 ms of traffic plus
  // one write): a tracked prediction answered well before it must be there.
  std::vector<std::string> older;
  for (size_t i = 0; i < answered.size(); ++i) {
    if (answered_at[i] < killed_at - std::chrono::seconds(1)) older.push_back(answered[i]);
  }
  ASSERT_GT(older.size(), 10u);
  EXPECT_EQ(count("SELECT 1 FROM predictions WHERE id = ?1 AND id_key = ?2 AND shadow = 0", older), older.size())
      << "predictions answered long before the kill were lost";
  sqlite3_stmt* total = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM predictions", -1, &total, nullptr);
  sqlite3_step(total);
  const int64_t rows = sqlite3_column_int64(total, 0);
  sqlite3_finalize(total);
  sqlite3_close(db);
  EXPECT_EQ(feedback, acknowledged.size()) << "acknowledged feedback was lost";
  EXPECT_LE(answered.size() - logged, 65536u);
  EXPECT_GT(logged, 0u);
  EXPECT_GT(rows, kSanitized ? 1'000 : 10'000) << "the traffic was not heavy";
  std::printf(
      "kill -9: %lld predictions in the log; of the tracked: %zu answered, %zu logged, %zu lost; %zu feedback "
      "acknowledged, %zu kept\n",
      static_cast<long long>(rows), answered.size(), logged, answered.size() - logged, acknowledged.size(), feedback);
  fs::remove_all(repo);
  fs::remove_all(data);
}

}  // namespace
}  // namespace vigil::testing
