// TLS for HTTP and gRPC against the real server, with certificates the test
// makes (tests/tls/make_certs.sh): curl and Vigil's own clients connect,
// plain-text clients are refused, mutual TLS needs a certificate from the
// client CA, vigil bench measures over https:// and grpcs://, and alerts
// reach an https:// webhook. (Python's grpcio over TLS: tests/grpc.)
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/wait.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "client/inference_client.h"
#include "core/eventually.h"
#include "net/http_server.h"
#include "protocol/json.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new fs::path(ScratchDir("tls_certs"));
    const std::string cmd = std::string(VIGIL_SOURCE_DIR) + "/tests/tls/make_certs.sh " + certs_->string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make the test certificates";
  }
  static void TearDownTestSuite() {
    fs::remove_all(*certs_);
    delete certs_;
  }
  static std::string Cert(const std::string& name) { return (*certs_ / name).string(); }

  void SetUp() override {
    repo_ = ScratchDir("tls_repo");
    CopyExampleRepository(repo_, {"breast_cancer_mlp"});
  }
  void TearDown() override { fs::remove_all(repo_); }

  std::unique_ptr<ServerProcess> StartServer(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--model-repository", repo_.string(),     "--grpc-port", "0",
                                     "--tls-cert",         Cert("server.pem"), "--tls-key",   Cert("server.key")};
    args.insert(args.end(), extra.begin(), extra.end());
    return ServerProcess::Start(args);
  }

  // A client of `server` over TLS, trusting the test CA.
  static ClientOptions TlsOptions(Protocol protocol, const ServerProcess& server) {
    ClientOptions o;
    o.protocol = protocol;
    o.port = protocol == Protocol::kGrpc ? server.grpc_port() : server.port();
    o.host = "localhost";
    o.tls = true;
    o.tls_ca = Cert("ca.pem");
    return o;
  }

  // curl's exit code and output for a GET.
  static CommandResult Curl(const std::string& url, const std::vector<std::string>& extra = {}) {
    std::string cmd = "curl -sS --max-time 10 -o - -w ' HTTP=%{http_code}' " + url;
    for (const auto& e : extra) cmd += " " + e;
    cmd += " 2>&1";
    CommandResult r;
    FILE* pipe = ::popen(cmd.c_str(), "r");
    char buf[4096];
    while (pipe && fgets(buf, sizeof buf, pipe)) r.out += buf;
    r.exit_code = pipe ? WEXITSTATUS(::pclose(pipe)) : -1;
    return r;
  }

  static fs::path* certs_;
  fs::path repo_;
};

fs::path* Tls::certs_ = nullptr;

TEST_F(Tls, HttpsAndGrpcOverTlsServeAndPlainTextIsRefused) {
  auto server = StartServer({});
  EXPECT_NE(server->Log().find("port=" + std::to_string(server->port()) + " tls=on"), std::string::npos);
  const std::string https = "https://127.0.0.1:" + std::to_string(server->port());
  CommandResult live = Curl(https + "/v2/health/live", {"--cacert", Cert("ca.pem")});
  EXPECT_EQ(live.exit_code, 0) << live.out;
  EXPECT_NE(live.out.find("{\"live\":true} HTTP=200"), std::string::npos) << live.out;
  // The certificate names localhost too.
  EXPECT_EQ(
      Curl("https://localhost:" + std::to_string(server->port()) + "/v2/health/ready", {"--cacert", Cert("ca.pem")})
          .exit_code,
      0);
  // Plain HTTP to the TLS port gets no answer; an untrusted CA fails verification.
  CommandResult plain = Curl("http://127.0.0.1:" + std::to_string(server->port()) + "/v2/health/live");
  EXPECT_NE(plain.exit_code, 0) << plain.out;
  EXPECT_EQ(plain.out.find("HTTP=200"), std::string::npos) << plain.out;
  EXPECT_NE(Curl(https + "/v2/health/live", {"--cacert", Cert("other-ca.pem")}).exit_code, 0);

  // Vigil's own clients: HTTPS and gRPC over TLS infer; plain ones cannot.
  for (Protocol protocol : {Protocol::kHttp, Protocol::kGrpc}) {
    ClientOptions o = TlsOptions(protocol, *server);
    auto client = ConnectInferenceClient(o);
    ASSERT_TRUE(client.ok()) << client.status().message();
    const InferCall call = FeaturesCall({1, 30}, 30 * 4);
    auto reply = (*client)->Infer(call);
    ASSERT_TRUE(reply.ok()) << reply.status().message();
    EXPECT_EQ(reply->outputs[0].shape, (Shape{1, 2}));
    o.tls = false;
    o.timeout = std::chrono::milliseconds(2000);
    auto plain_client = ConnectInferenceClient(o);
    const bool refused = !plain_client.ok() || !(*plain_client)->Infer(call).ok();
    EXPECT_TRUE(refused) << (protocol == Protocol::kGrpc ? "gRPC" : "HTTP") << " without TLS was answered";
  }
  auto metrics = Curl(https + "/metrics", {"--cacert", Cert("ca.pem")});
  EXPECT_NE(metrics.out.find("vigil_http_tls_handshake_failures_total"), std::string::npos);

  // vigil bench over https:// and grpcs://, with the server's split read over https.
  for (const std::string& url : {https, "grpcs://localhost:" + std::to_string(server->grpc_port())}) {
    CommandResult bench = RunVigil({"bench",
                                    "-u",
                                    url,
                                    "--tls-ca",
                                    Cert("ca.pem"),
                                    "--metrics-url",
                                    https + "/metrics",
                                    "-m",
                                    "breast_cancer_mlp",
                                    "--concurrency",
                                    "2",
                                    "--duration",
                                    "6",
                                    "--window",
                                    "1",
                                    "--stable-windows",
                                    "2",
                                    "--stability",
                                    "50",
                                    "--json"});
    ASSERT_EQ(bench.exit_code, 0) << bench.err;
    rapidjson::Document d;
    ASSERT_TRUE(ParseJson(bench.out, d).ok()) << bench.out;
    EXPECT_GT(d["levels"][0]["throughput"].GetDouble(), 20) << bench.out;
    EXPECT_TRUE(d["levels"][0].HasMember("server")) << url << ": the server split was not read over https";
  }
  EXPECT_EQ(server->Signal(SIGTERM), 0);
}

TEST_F(Tls, MutualTlsNeedsACertificateFromTheClientCa) {
  auto server = StartServer({"--tls-client-ca", Cert("ca.pem")});
  EXPECT_NE(server->Log().find("tls=mutual"), std::string::npos);
  const std::string url = "https://127.0.0.1:" + std::to_string(server->port()) + "/v2/health/live";
  EXPECT_NE(Curl(url, {"--cacert", Cert("ca.pem")}).exit_code, 0) << "no client certificate";
  EXPECT_NE(Curl(url, {"--cacert", Cert("ca.pem"), "--cert", Cert("rogue.pem"), "--key", Cert("rogue.key")}).exit_code,
            0)
      << "a client certificate from another CA";
  CommandResult ok = Curl(url, {"--cacert", Cert("ca.pem"), "--cert", Cert("client.pem"), "--key", Cert("client.key")});
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("HTTP=200"), std::string::npos) << ok.out;
  for (Protocol protocol : {Protocol::kHttp, Protocol::kGrpc}) {
    ClientOptions o = TlsOptions(protocol, *server);
    o.timeout = std::chrono::milliseconds(3000);
    auto anonymous = ConnectInferenceClient(o);
    EXPECT_TRUE(!anonymous.ok() || !(*anonymous)->ServerReady().ok()) << "answered without a client certificate";
    o.tls_cert = Cert("client.pem");
    o.tls_key = Cert("client.key");
    auto client = ConnectInferenceClient(o);
    ASSERT_TRUE(client.ok()) << client.status().message();
    EXPECT_TRUE((*client)->ServerReady().ok());
  }
  EXPECT_EQ(server->Signal(SIGTERM), 0);
}

TEST_F(Tls, BadCertificateFilesAreNamedAtStart) {
  CommandResult r = RunVigil({"serve", "--model-repository", repo_.string(), "--http-port", "0", "--data-dir", "",
                              "--tls-cert", Cert("server.pem"), "--tls-key", Cert("client.key")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not the key of the certificate"), std::string::npos) << r.err;
  r = RunVigil({"serve", "--model-repository", repo_.string(), "--http-port", "0", "--data-dir", "", "--tls-cert",
                "/nonexistent.pem", "--tls-key", Cert("server.key")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--tls-cert '/nonexistent.pem'"), std::string::npos) << r.err;
}

// Alerts go to an https:// webhook whose certificate the given CA signed.
TEST_F(Tls, AlertsReachAnHttpsWebhook) {
  std::mutex mu;
  std::vector<std::string> received;
  HttpServer::Options ho;
  ho.host = "127.0.0.1";
  ho.port = 0;
  ho.threads = 1;
  ho.tls_cert = Cert("server.pem");
  ho.tls_key = Cert("server.key");
  auto hook = HttpServer::Create(ho, [&](HttpRequest&& req, const RequestInfo&, HttpServer::Responder respond) {
    {
      std::lock_guard lock(mu);
      received.push_back(req.body());
    }
    respond(MakeResponse(200, "{}"));
  });
  ASSERT_TRUE(hook.ok()) << hook.status().message();
  (*hook)->Start();
  // A memory limit of 1 MiB fires MemoryHigh after two short health windows.
  auto server =
      ServerProcess::Start({"--model-repository", repo_.string(), "--alert-webhook",
                            "https://localhost:" + std::to_string((*hook)->port()) + "/alerts", "--alert-webhook-ca",
                            Cert("ca.pem"), "--alert-memory-mb", "1", "--health-window-s", "0.1"});
  EXPECT_TRUE(Eventually(
      [&] {
        std::lock_guard lock(mu);
        for (const auto& body : received) {
          if (body.find("MemoryHigh") != std::string::npos) return true;
        }
        return false;
      },
      std::chrono::seconds(15)))
      << server->Log();
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  (*hook)->Stop();
}

}  // namespace
}  // namespace vigil::testing
