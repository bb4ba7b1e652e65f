// The client library and `vigil bench` against the real server, over HTTP
// (JSON and binary) and gRPC (typed and raw).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>

#include "client/inference_client.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

const fs::path kRepo = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";

class Client : public ::testing::TestWithParam<std::pair<Protocol, bool>> {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::Start({"--model-repository", kRepo.string(), "--grpc-port", "0"}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  std::unique_ptr<InferenceClient> Connect() {
    ClientOptions o;
    o.protocol = GetParam().first;
    o.binary = GetParam().second;
    o.port = o.protocol == Protocol::kGrpc ? server_->grpc_port() : server_->port();
    auto c = ConnectInferenceClient(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  static ServerProcess* server_;
};

ServerProcess* Client::server_ = nullptr;

TEST_P(Client, InfersExactlyWhatPythonComputed) {
  auto client = Connect();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->ServerReady().ok());
  auto meta = client->GetModelMetadata("breast_cancer_mlp");
  ASSERT_TRUE(meta.ok()) << meta.status().message();
  ASSERT_EQ(meta->inputs.size(), 1u);
  EXPECT_EQ(meta->inputs[0].name, "features");
  EXPECT_EQ(meta->inputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(meta->inputs[0].shape, (Shape{-1, 30}));
  EXPECT_EQ(meta->outputs.size(), 2u);

  rapidjson::Document expected;
  expected.Parse(ReadFile(kRepo / "breast_cancer_mlp" / "1" / "expected.json").c_str());
  const auto& rows = expected["inputs"]["features"];
  InferCall call;
  call.model = "breast_cancer_mlp";
  call.version = 1;
  call.id = "c-1";
  Tensor t;
  t.name = "features";
  t.datatype = DataType::kFp32;
  t.shape = {rows.Size(), 30};
  for (const auto& row : rows.GetArray()) {
    for (const auto& x : row.GetArray()) {
      const float f = static_cast<float>(x.GetDouble());
      const auto* b = reinterpret_cast<const uint8_t*>(&f);
      t.data.insert(t.data.end(), b, b + 4);
    }
  }
  call.inputs.push_back(t);
  auto reply = client->Infer(call);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(reply->model, "breast_cancer_mlp");
  EXPECT_EQ(reply->version, 1);
  EXPECT_EQ(reply->id, "c-1");
  ASSERT_EQ(reply->outputs.size(), 2u);
  for (const Tensor& out : reply->outputs) {
    const auto& want = expected["outputs"][out.name.c_str()];
    ASSERT_EQ(out.shape, (Shape{rows.Size(), 2}));
    for (rapidjson::SizeType i = 0; i < want.Size() * 2; ++i)
      EXPECT_NEAR(out.as<float>()[i], want[i / 2][i % 2].GetDouble(), 1e-5) << out.name;
  }

  // Errors come back with the server's message and a matching code.
  InferCall bad = call;
  bad.inputs[0].name = "nope";
  auto r = client->Infer(bad);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nope"), std::string::npos) << r.status().message();
  bad = call;
  bad.model = "missing_model";
  EXPECT_EQ(client->Infer(bad).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client->GetModelMetadata("missing_model").status().code(), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(AllTransports, Client,
                         ::testing::Values(std::make_pair(Protocol::kHttp, false),
                                           std::make_pair(Protocol::kHttp, true),
                                           std::make_pair(Protocol::kGrpc, false),
                                           std::make_pair(Protocol::kGrpc, true)),
                         [](const auto& info) {
                           return std::string(info.param.first == Protocol::kHttp ? "Http" : "Grpc") +
                                  (info.param.second ? "Binary" : "Typed");
                         });

TEST(ClientConnect, UnreachableServerNamesTheAddress) {
  for (Protocol p : {Protocol::kHttp, Protocol::kGrpc}) {
    ClientOptions o;
    o.protocol = p;
    o.port = 1;  // nothing listens on port 1
    o.timeout = std::chrono::milliseconds(500);
    auto c = ConnectInferenceClient(o);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(c.status().message().find("127.0.0.1:1"), std::string::npos) << c.status().message();
  }
}

TEST(ClientConnect, ParsesServerUrls) {
  ClientOptions o;
  ASSERT_TRUE(ParseServerUrl("grpc://example:9001/x", &o).ok());
  EXPECT_EQ(o.protocol, Protocol::kGrpc);
  EXPECT_EQ(o.host, "example");
  EXPECT_EQ(o.port, 9001);
  ASSERT_TRUE(ParseServerUrl("http://h", &o).ok());
  EXPECT_EQ(o.port, 8000);
  EXPECT_FALSE(ParseServerUrl("ftp://h:1", &o).ok());
  EXPECT_FALSE(ParseServerUrl("h:99999", &o).ok());
  EXPECT_FALSE(ParseServerUrl(":80", &o).ok());
}

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

// `vigil bench` end to end: each level is measured, the server's own count
// of requests agrees with the client's, and the split is filled in.
TEST(BenchCommand, MeasuresClosedAndOpenLoopOverHttpAndGrpc) {
  auto server = ServerProcess::Start({"--model-repository", kRepo.string(), "--grpc-port", "0"});
  const std::string http = "127.0.0.1:" + std::to_string(server->port());
  const std::string grpc = "grpc://127.0.0.1:" + std::to_string(server->grpc_port());
  // What is checked is the measurement, not this machine's steadiness: the widest
  // spread the flag allows counts as stable (a loaded machine made 50% fail once).
  const std::vector<std::string> timing = {"--duration", "4", "--window", "0.5", "--stability", "100", "--json"};

  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "bench");
    args.insert(args.end(), timing.begin(), timing.end());
    CommandResult r = RunVigil(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParseJson(r.out);
  };

  auto closed = run({"-u", http, "-m", "breast_cancer_mlp_onnx", "--concurrency", "1,4"});
  ASSERT_TRUE(closed.IsObject());
  ASSERT_EQ(closed["levels"].Size(), 2u);
  for (const auto& level : closed["levels"].GetArray()) {
    EXPECT_GT(level["throughput"].GetDouble(), 50);
    EXPECT_EQ(level["errors"].MemberCount(), 0u);
    EXPECT_GT(level["latency_ms"]["p99"].GetDouble(), 0);
    EXPECT_LE(level["latency_ms"]["p50"].GetDouble(), level["latency_ms"]["p99"].GetDouble());
    ASSERT_TRUE(level.HasMember("server"));
    // The server counted the same requests over the same windows (within
    // what is in flight at a window edge).
    const double client = level["requests"].GetDouble(), seen = level["server"]["requests"].GetDouble();
    EXPECT_NEAR(seen / client, 1.0, 0.05) << "client " << client << " server " << seen;
  }

  auto open = run({"-u", http, "-m", "breast_cancer_xgb", "--rate", "300", "--poisson", "--batch", "4", "--input-data",
                   (kRepo / "breast_cancer_xgb" / "reference.csv").string()});
  ASSERT_EQ(open["levels"].Size(), 1u);
  const auto& level = open["levels"][0];
  EXPECT_NEAR(level["throughput"].GetDouble(), 300, 60);
  EXPECT_NEAR(level["infer_per_sec"].GetDouble(), 1200, 240);
  EXPECT_TRUE(level["poisson"].GetBool());
  EXPECT_NE(std::string(open["input"].GetString()).find("the first 30 of 31 columns"), std::string::npos);

  auto over_grpc = run({"-u", grpc, "--metrics-url", "http://" + http + "/metrics", "-m", "breast_cancer_mlp",
                        "--binary", "--concurrency", "4"});
  EXPECT_STREQ(over_grpc["protocol"].GetString(), "grpc (raw)");
  EXPECT_GT(over_grpc["levels"][0]["throughput"].GetDouble(), 50);
  EXPECT_TRUE(over_grpc["levels"][0].HasMember("server"));

  // The table form is what a person reads.
  CommandResult table = RunVigil({"bench", "-u", http, "-m", "breast_cancer_mlp", "--concurrency", "2", "--duration",
                                  "4", "--window", "0.5", "--stability", "100"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("p99 ms"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("concurrency 2"), std::string::npos) << table.out;
  for (size_t at = 0, end; (end = table.out.find('\n', at)) != std::string::npos; at = end + 1) {
    const std::string line = table.out.substr(at, end - at);
    EXPECT_LE(line.size(), 80u) << "wider than a terminal: " << line;
  }
  // Figures that never settle exit non-zero, as perf_analyzer does: one
  // window of 0.1 s cannot make three agreeing ones.
  CommandResult unsettled = RunVigil({"bench", "-u", http, "-m", "breast_cancer_mlp", "--concurrency", "1",
                                      "--duration", "0.2", "--window", "0.1", "--stable-windows", "5"});
  EXPECT_EQ(unsettled.exit_code, 3) << unsettled.out << unsettled.err;
  EXPECT_NE(unsettled.out.find("NOT STABLE"), std::string::npos) << unsettled.out;
}

// Bad input: one line on stderr that says what to fix, exit code != 0.
TEST(BenchCommand, BadInputGetsOneLineAndAFailingExitCode) {
  auto server = ServerProcess::Start({"--model-repository", kRepo.string()});
  const std::string http = "127.0.0.1:" + std::to_string(server->port());
  const fs::path bad_csv = ScratchDir("bench_bad") / "bad.csv";
  WriteFile(bad_csv, "1,2,3\n");

  struct Case {
    std::vector<std::string> args;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {{"bench", "-m", "x", "--no-such-flag"}, "no-such-flag"},
      {{"bench", "-u", "127.0.0.1:1", "-m", "breast_cancer_mlp"}, "cannot connect to 127.0.0.1:1"},
      {{"bench", "-u", http, "-m", "no_such_model"}, "no_such_model"},
      {{"bench", "-u", http, "-m", "breast_cancer_mlp", "--input-data", bad_csv.string()}, "line 1"},
      {{"bench", "-u", http, "-m", "breast_cancer_mlp", "--input-data", "/nonexistent.csv"}, "cannot read"},
      {{"bench", "-u", "ftp://x", "-m", "m"}, "scheme"},
      {{"bench", "-u", http, "-m", "breast_cancer_mlp", "--concurrency", "0"}, "at least 1"},
  };
  for (const auto& c : cases) {
    CommandResult r = RunVigil(c.args, 30);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_NE(r.exit_code, 0) << joined;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << joined << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << joined << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
  fs::remove_all(bad_csv.parent_path());
}

// `vigil profile` against a running server: bounded by its time budget,
// every trial in the report, a recommendation written as config.yaml, and
// the model's own config restored afterwards.
TEST(ProfileCommand, SweepsWithinTheTimeBudgetAndRestoresTheConfig) {
  auto server = ServerProcess::Start({"--model-repository", kRepo.string()});
  const std::string http = "127.0.0.1:" + std::to_string(server->port());
  const fs::path out = ScratchDir("profile") / "recommended.yaml";
  const auto started = std::chrono::steady_clock::now();
  CommandResult r = RunVigil({"profile",
                              "-u",
                              http,
                              "-m",
                              "breast_cancer_mlp_onnx",
                              "--latency-budget",
                              "50",
                              "--time-budget",
                              "12",
                              "--max-batch-sizes",
                              "8",
                              "--delays-us",
                              "0,500",
                              "--instances",
                              "1",
                              "--max-concurrency",
                              "8",
                              "--window",
                              "0.2",
                              "--json",
                              "-o",
                              out.string()});
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(took, 12 + 8) << "the time budget bounds the run";
  auto report = ParseJson(r.out);
  ASSERT_TRUE(report.IsObject());
  const auto& trials = report["trials"];
  ASSERT_GE(trials.Size(), 3u);  // baseline and the two coarse configs at least
  EXPECT_STREQ(trials[0]["phase"].GetString(), "baseline");
  EXPECT_EQ(trials[0]["max_batch_size"].GetInt(), 1);
  ASSERT_TRUE(report.HasMember("best"));
  const auto& best = trials[report["best"].GetUint()];
  EXPECT_GT(best["throughput"].GetDouble(), 0);
  EXPECT_LE(best["p99_ms"].GetDouble(), 50);
  for (const auto& t : trials.GetArray()) {
    if (t["measured"].GetBool() && t["concurrency"].GetInt() > 0) {
      EXPECT_LE(t["throughput"].GetDouble(), best["throughput"].GetDouble());
    }
  }
  const std::string yaml = ReadFile(out);
  EXPECT_NE(yaml.find("max_batch_size: " + std::to_string(best["max_batch_size"].GetInt())), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("instances: " + std::to_string(best["instances"].GetInt())), std::string::npos) << yaml;
  // The server serves the model as its config.yaml says again.
  auto c = server->Client();
  auto config = c->Get("/v2/models/breast_cancer_mlp_onnx/config");
  EXPECT_NE(config->body.find("\"max_batch_size\":64"), std::string::npos) << config->body;
  EXPECT_NE(config->body.find("\"max_queue_delay_us\":100"), std::string::npos) << config->body;

  CommandResult missing = RunVigil({"profile", "-u", http, "-m", "no_such_model", "--time-budget", "5"}, 30);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no_such_model"), std::string::npos) << missing.err;
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
  fs::remove_all(out.parent_path());
}

// In-process: the server starts inside `vigil profile` itself.
TEST(ProfileCommand, RunsAnInProcessServer) {
  CommandResult r = RunVigil({"profile",
                              "--model-repository",
                              kRepo.string(),
                              "-m",
                              "breast_cancer_xgb",
                              "--latency-budget",
                              "50",
                              "--time-budget",
                              "6",
                              "--max-batch-sizes",
                              "16",
                              "--delays-us",
                              "0",
                              "--instances",
                              "1",
                              "--max-concurrency",
                              "4",
                              "--window",
                              "0.2",
                              "--no-refine"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("baseline"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recommended config.yaml"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max_batch_size: "), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vigil::testing
