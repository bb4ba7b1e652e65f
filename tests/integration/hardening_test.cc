// Hostile input against the real server (issue 11): every request that once
// crashed the process is replayed, and the server must answer it with a
// clear error and go on serving. Also: a stored spec that no longer
// validates, and the credentials of every control route.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/inference_client.h"
#include "core/eventually.h"
#include "protocol/json.h"
#include "server_process.h"
#include "store/store.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

const char* kEndpoint = R"(
production: {model: breast_cancer_mlp, version: 1}
candidates: [{name: v2, model: breast_cancer_mlp, version: 2, mode: ab, share: 0}]
flags:
  - {name: staff, variant: v2, rules: [{parameter: email, regex: ".*@example\\.com"}]}
)";

fs::path Repo(const std::string& name) {
  const fs::path repo = ScratchDir(name);
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  WriteFile(repo / "deployments" / "cancer.yaml", kEndpoint);
  return repo;
}

std::string Infer(const std::string& data_json, const std::string& shape = "[1,30]", const std::string& extra = "") {
  return R"({"inputs":[{"name":"features","datatype":"FP32","shape":)" + shape + R"(,"data":)" + data_json + "}]" +
         extra + "}";
}

// The server is alive and still serves inference correctly.
void ExpectServing(HttpClient& c, const std::string& after) {
  auto live = c.Get("/v2/health/live");
  ASSERT_TRUE(live.ok()) << "the server died after " << after << ": " << live.status().message();
  EXPECT_EQ(live->status, 200u) << after;
  auto r = c.Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1));
  ASSERT_TRUE(r.ok()) << after;
  EXPECT_EQ(r->status, 200u) << after << ": " << r->body;
}

// An error answer whose body is valid JSON naming what was wrong.
void ExpectRefused(const StatusOr<HttpReply>& r, unsigned status, const std::string& fragment,
                   const std::string& what) {
  ASSERT_TRUE(r.ok()) << what << ": " << r.status().message();
  EXPECT_EQ(r->status, status) << what << ": " << r->body.substr(0, 300);
  rapidjson::Document d;
  EXPECT_TRUE(ParseJson(r->body, d).ok()) << what << ": the error body is not valid JSON";
  EXPECT_NE(r->body.find(fragment), std::string::npos) << what << ": " << r->body.substr(0, 300);
}

// A raw TCP connection to the server on loopback, for what HttpClient will
// not send (half bodies, idle connections).
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // What the server sent until it closed the connection or `timeout` passed.
  std::string ReadUntilClosed(std::chrono::milliseconds timeout) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

double Metric(HttpClient& c, const std::string& series) {
  auto r = c.Get("/metrics");
  if (!r.ok()) return -1;
  const auto at = r->body.find("\n" + series + " ");
  return at == std::string::npos ? 0 : std::stod(r->body.substr(at + series.size() + 2));
}

// The peak resident size of a process (VmHWM in /proc/PID/status), in kB; -1 if unreadable.
int64_t PeakResidentKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// A gRPC client of `server` sending raw (binary) tensors.
StatusOr<std::unique_ptr<InferenceClient>> GrpcClient(const ServerProcess& server) {
  ClientOptions o;
  o.protocol = Protocol::kGrpc;
  o.port = server.grpc_port();
  o.binary = true;
  return ConnectInferenceClient(o);
}

TEST(CrashReplay, EveryCrashIsAnsweredAndTheServerStaysUp) {
  const fs::path repo = Repo("crash_replay");
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--grpc-port", "0"});
  auto c = server->Client();
  ASSERT_TRUE(c);
  ExpectServing(*c, "start");

  // 1. A window of 2^61 s wrapped to a zero divisor in the monitor thread,
  // through a spec and through the load route's config override.
  const std::string huge_window =
      "monitoring: {quality: {metric: accuracy, below: 0.8, window_s: 2305843009213693952, min_labels: 1}}\n";
  ExpectRefused(c->Put("/v1/deployments/bad", "production: {model: breast_cancer_mlp}\n" + huge_window), 400,
                "monitoring.quality.window_s", "crash 1 (spec)");
  std::string config = ReadFile(repo / "breast_cancer_mlp" / "config.yaml");
  config = config.substr(0, config.find("monitoring:")) + huge_window;
  const std::string load_body = LoadRequestJson(config);
  ExpectRefused(c->Post("/v2/repository/models/breast_cancer_mlp/load", load_body), 400, "monitoring.quality.window_s",
                "crash 1 (load override)");
  ExpectServing(*c, "crash 1");

  // 2. Shape products wrapped (std::length_error), or forced a 4 GB zeroed
  // buffer from an 84-byte body.
  ExpectRefused(c->Post("/v2/models/breast_cancer_mlp/infer", Infer("[]", "[4294967297,4294967295]")), 400,
                "has more than", "crash 2 (overflow)");
  // Refused before allocating: the server's peak resident size (VmHWM, which
  // a 4 GB zeroed buffer would raise by 4 GB) stays where it was, give or
  // take 256 MB. (A wall-clock bound here failed on a loaded machine.)
  const int64_t peak_before = PeakResidentKb(server->pid());
  ExpectRefused(c->Post("/v2/models/breast_cancer_mlp/infer", Infer("[]", "[1,1073741824]")), 400,
                "more than a JSON body", "crash 2 (allocation)");
  ASSERT_GT(peak_before, 0);
  EXPECT_LT(PeakResidentKb(server->pid()) - peak_before, 256 * 1024) << "refused only after allocating";
  ExpectServing(*c, "crash 2");

  // 3. Nesting 100,000 deep overflowed the decoder's stack, 1,000,000 deep rapidjson's.
  for (size_t depth : {size_t{100'000}, size_t{1'000'000}}) {
    ExpectRefused(
        c->Post("/v2/models/breast_cancer_mlp/infer", Infer(std::string(depth, '[') + "1" + std::string(depth, ']'))),
        400, "nested deeper than 64", "crash 3 (" + std::to_string(depth) + " deep)");
    ExpectRefused(c->Post("/v1/feedback", std::string(depth, '[')), 400, "feedback must be JSON", "crash 3 (feedback)");
    ExpectRefused(c->Post("/v1/deployments/cancer/pause", std::string(depth, '[')), 400, "nested deeper",
                  "crash 3 (admin)");
    ExpectRefused(c->Post("/v2/repository/models/breast_cancer_mlp/load", std::string(depth, '[')), 400,
                  "nested deeper", "crash 3 (load)");
  }
  ExpectServing(*c, "crash 3");

  // 4. std::regex recursed once per character of a 30 KB parameter.
  for (size_t size : {size_t{30'000}, size_t{1'000'000}}) {
    auto r = c->Post("/v2/models/cancer/infer",
                     FeaturesBody(1, R"(,"parameters":{"email":")" + std::string(size, 'a') + R"(@example.com"})"));
    ASSERT_TRUE(r.ok()) << "crash 4: " << r.status().message();
    EXPECT_EQ(r->status, 200u) << r->body.substr(0, 300);
    EXPECT_NE(r->body.find("\"vigil.variant\":\"production\""), std::string::npos) << r->body.substr(0, 300);
  }
  ExpectServing(*c, "crash 4");

  // 5. window_s * 1000 wrapped to 0 (SIGFPE).
  ExpectRefused(c->Get("/v1/monitoring/cancer/quality?window_s=2305843009213693952"), 400, "window_s",
                "crash 5 (window_s)");
  ExpectRefused(c->Get("/v1/monitoring/cancer/quality?from=-9223372036854775808&to=9223372036854775807"), 400,
                "'from' must be an integer from 0", "crash 5 (from)");
  ExpectRefused(c->Get("/v1/monitoring/cancer/drift?limit=99999999999999999999"), 400, "'limit'", "crash 5 (limit)");
  ExpectServing(*c, "crash 5");

  // 6. A timeout of 1e16 us overflowed the deadline, which expired at once.
  for (const char* timeout : {"10000000000000000", "9223372036854775807"}) {
    auto r = c->Post("/v2/models/breast_cancer_mlp/infer",
                     FeaturesBody(1, std::string(R"(,"parameters":{"timeout":)") + timeout + "}"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200u) << "crash 6 (" << timeout << "): " << r->body;
  }

  // Smaller ones: an id of 1 MB, 1e308 into FP32, '..' as an endpoint, and
  // bytes that are not UTF-8 echoed into an error.
  ExpectRefused(
      c->Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1, R"(,"id":")" + std::string(1 << 20, 'i') + "\"")),
      400, "'id' has 1048576 bytes", "1 MB id");
  ExpectRefused(c->Post("/v2/models/breast_cancer_mlp/infer", Infer("[1e308" + std::string(29 * 2, ' ') + "]")), 400,
                "outside the range of FP32", "1e308");
  ExpectRefused(c->Put("/v1/deployments/..", "production: {model: breast_cancer_mlp}\n"), 400, "field 'endpoint'",
                "endpoint '..'");
  ExpectRefused(c->Get("/v2/models/%ff%fe/ready"), 404, "unknown model '\xef\xbf\xbd\xef\xbf\xbd'",
                "invalid UTF-8 in a path");
  ExpectRefused(c->Post("/v1/feedback", R"({"prediction_id":")" + std::string(300, 'p') + R"(","label":1})"), 200,
                "1 to 256 bytes", "a 300-byte prediction id");

  // The same over gRPC: the shape overflow, and the id.
  auto grpc = GrpcClient(*server);
  ASSERT_TRUE(grpc.ok()) << grpc.status().message();
  auto reply = (*grpc)->Infer(FeaturesCall({4294967297, 4294967295}, 0));
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(reply.status().message().find("has more than"), std::string::npos) << reply.status().message();
  ExpectServing(*c, "the replay");
  EXPECT_EQ(server->Signal(SIGTERM), 0) << server->Log();
  fs::remove_all(repo);
}

// Crash 1 was stored, so the server crashed again on every restart. A stored
// spec that does not validate is now refused with its reason, never run.
TEST(CrashReplay, AStoredSpecThatNoLongerValidatesIsRefusedNotRun) {
  const fs::path repo = Repo("stored_spec");
  const fs::path data = ScratchDir("stored_spec_data");
  {
    auto store = OpenSqliteStore(data.string());
    ASSERT_TRUE(store.ok()) << store.status().message();
    ASSERT_TRUE((*store)
                    ->SaveDeployment({"old",
                                      "production: {model: breast_cancer_mlp}\nmonitoring: {quality: {metric: "
                                      "accuracy, below: 0.8, window_s: 2305843009213693952, min_labels: 1}}\n",
                                      "", 1})
                    .ok());
  }
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--data-dir", data.string()});
  auto c = server->Client();
  ASSERT_TRUE(c);
  EXPECT_TRUE(server->WaitForLog("event=deployment_refused endpoint=old"));
  auto list = c->Get("/v1/deployments");
  ASSERT_TRUE(list.ok());
  rapidjson::Document d;
  ASSERT_TRUE(ParseJson(list->body, d).ok()) << list->body;
  bool refused = false;
  for (const auto& e : d.GetArray()) {
    if (std::string(e["endpoint"].GetString()) != "old") continue;
    refused = true;
    EXPECT_STREQ(e["state"].GetString(), "refused");
    EXPECT_NE(std::string(e["reason"].GetString()).find("monitoring.quality.window_s"), std::string::npos);
  }
  EXPECT_TRUE(refused) << list->body;
  ExpectRefused(c->Get("/v1/deployments/old"), 409, "is refused", "a refused endpoint");
  // Several monitor rounds (250 ms each) later the server still runs.
  EXPECT_FALSE(server->WaitForLog("event=never", 1.0));
  ExpectServing(*c, "a refused spec");
  // A valid spec replaces it.
  auto put = c->Put("/v1/deployments/old", "production: {model: breast_cancer_mlp}\n");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 200u) << put->body;
  EXPECT_EQ(c->Post("/v2/models/old/infer", FeaturesBody(1))->status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
  fs::remove_all(data);
}

// Model load and unload (HTTP and gRPC) are control routes, held to the
// admin token; feedback takes its own token or the admin one.
TEST(Access, LoadUnloadAndFeedbackNeedTheirTokens) {
  const fs::path repo = Repo("access");
  const fs::path token_file = repo / "admin.token";
  WriteFile(token_file, "adm1n-t0ken\n");
  ::setenv("VIGIL_FEEDBACK_TOKEN", "f33d", 1);
  auto server = ServerProcess::Start(
      {"--model-repository", repo.string(), "--grpc-port", "0", "--admin-token-file", token_file.string()});
  ::unsetenv("VIGIL_FEEDBACK_TOKEN");
  auto c = server->Client();
  ASSERT_TRUE(c);
  const std::map<std::string, std::string> admin = {{"Authorization", "Bearer adm1n-t0ken"}};
  const std::map<std::string, std::string> feed = {{"Authorization", "Bearer f33d"}};
  for (const char* action : {"unload", "load"}) {
    const std::string target = std::string("/v2/repository/models/breast_cancer_mlp/") + action;
    ExpectRefused(c->Post(target, ""), 401, "Authorization: Bearer", std::string(action) + " without a token");
    ExpectRefused(c->Post(target, "", feed), 401, "--admin-token", std::string(action) + " with the feedback token");
    auto ok = c->Post(target, "", admin);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->status, 200u) << action << ": " << ok->body;
  }
  ExpectRefused(c->Post("/v1/feedback", R"({"prediction_id":"p","label":1})"), 401, "--feedback-token",
                "feedback without a token");
  ExpectRefused(c->Post("/v1/feedback", R"({"prediction_id":"p","label":1})", {{"Authorization", "Bearer nope"}}), 401,
                "--feedback-token", "feedback with a wrong token");
  for (const auto& headers : {feed, admin}) {
    auto r = c->Post("/v1/feedback", R"({"prediction_id":"p","label":1})", headers);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200u) << r->body;
  }
  ExpectRefused(c->Put("/v1/deployments/x", "production: {model: breast_cancer_mlp}\n", feed), 401, "--admin-token",
                "a deployment change with the feedback token");

  // gRPC: the same rule, the token in "authorization" metadata.
  ClientOptions o;
  o.protocol = Protocol::kGrpc;
  o.port = server->grpc_port();
  auto anonymous = ConnectInferenceClient(o);
  ASSERT_TRUE(anonymous.ok());
  const Status refused = (*anonymous)->UnloadModel("breast_cancer_mlp");
  EXPECT_EQ(refused.code(), StatusCode::kUnauthenticated) << refused.message();
  EXPECT_EQ((*anonymous)->LoadModel("breast_cancer_mlp").code(), StatusCode::kUnauthenticated);
  o.token = "adm1n-t0ken";
  auto authorised = ConnectInferenceClient(o);
  ASSERT_TRUE(authorised.ok());
  EXPECT_TRUE((*authorised)->UnloadModel("breast_cancer_mlp").ok());
  EXPECT_TRUE((*authorised)->LoadModel("breast_cancer_mlp").ok());
  EXPECT_NE(server->Log().find("event=repository_unload_refused"), std::string::npos);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// A token on the command line shows in ps: the server says so.
TEST(Access, ATokenOnTheCommandLineIsWarnedAbout) {
  const fs::path repo = Repo("access_warn");
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--admin-token", "visible"});
  EXPECT_NE(server->Log().find("event=token_on_command_line"), std::string::npos) << server->Log();
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

TEST(Limits, ConnectionsPastTheLimitAreAnswered503AndCounted) {
  const fs::path repo = Repo("max_connections");
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--max-connections", "6"});
  auto c = server->Client();  // one of the six
  ASSERT_TRUE(c);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(std::make_unique<RawConnection>(server->port()));
    ASSERT_TRUE(held.back()->connected());
  }
  ASSERT_TRUE(Eventually([&] { return Metric(*c, "vigil_http_connections") == 6; }, std::chrono::seconds(5)))
      << Metric(*c, "vigil_http_connections");
  RawConnection extra(server->port());
  ASSERT_TRUE(extra.connected());
  const std::string answer = extra.ReadUntilClosed(std::chrono::seconds(5));
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("--max-connections"), std::string::npos) << answer;
  EXPECT_TRUE(extra.closed());
  EXPECT_EQ(Metric(*c, "vigil_http_connections_refused_total"), 1);
  // Room again once one goes.
  held.pop_back();
  ASSERT_TRUE(Eventually([&] { return Metric(*c, "vigil_http_connections") == 5; }, std::chrono::seconds(5)));
  auto fresh = server->Client();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->Get("/v2/health/live")->status, 200u);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// 40 connections holding a partial 60 MB body took RSS from 189 MB to
// 2.5 GB. Bodies on the wire are now reserved against one shared budget.
TEST(Limits, PartialBodiesAreBoundedAcrossConnectionsAndTimeOut) {
  const fs::path repo = Repo("partial_bodies");
  auto server = ServerProcess::Start(
      {"--model-repository", repo.string(), "--max-buffered-bytes", "5000000", "--body-timeout", "2"});
  auto c = server->Client();
  ASSERT_TRUE(c);
  const std::string head =
      "POST /v2/models/breast_cancer_mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n";
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(std::make_unique<RawConnection>(server->port()));
    ASSERT_TRUE(held.back()->Send(head + std::string(1000, ' ')));
  }
  ASSERT_TRUE(
      Eventually([&] { return Metric(*c, "vigil_http_body_bytes_buffered") == 4'000'000; }, std::chrono::seconds(5)))
      << Metric(*c, "vigil_http_body_bytes_buffered");
  RawConnection third(server->port());
  ASSERT_TRUE(third.Send(head + std::string(1000, ' ')));
  const std::string refused = third.ReadUntilClosed(std::chrono::seconds(5));
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("--max-buffered-bytes"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Retry-After"), std::string::npos) << refused;
  // Small requests still pass: a body that came whole needs no reservation.
  ExpectServing(*c, "a spent body budget");
  // The held bodies never finish: 408 after --body-timeout, and the budget is whole again.
  for (auto& h : held) {
    const std::string timed_out = h->ReadUntilClosed(std::chrono::seconds(10));
    EXPECT_EQ(timed_out.rfind("HTTP/1.1 408", 0), 0u) << timed_out;
    EXPECT_NE(timed_out.find("--body-timeout"), std::string::npos) << timed_out;
  }
  EXPECT_TRUE(Eventually([&] { return Metric(*c, "vigil_http_body_bytes_buffered") == 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(Metric(*c, "vigil_http_bodies_refused_total{reason=\"timeout\"}"), 2);
  EXPECT_EQ(Metric(*c, "vigil_http_bodies_refused_total{reason=\"budget\"}"), 1);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// CPU seconds (user + system) the process has used.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Out of file descriptors, the accept loop spun at 100% CPU and wrote 4.6 M
// log lines in 5 s. It now backs off and logs at most every 10 s.
TEST(Limits, RunningOutOfFileDescriptorsBacksOffInsteadOfSpinning) {
  if (kSanitized) {
    // UBSan's vptr check probes memory through a pipe: with no descriptor
    // left it reports every virtual call as invalid.
    GTEST_SKIP() << "a sanitized server cannot run out of file descriptors";
  }
  const fs::path repo = Repo("emfile");
  Spawn spawn;
  spawn.file_limit = 160;
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--max-connections", "100000"}, spawn);
  auto c = server->Client();
  ASSERT_TRUE(c);
  std::vector<std::unique_ptr<RawConnection>> flood;
  for (int i = 0; i < 200; ++i) flood.push_back(std::make_unique<RawConnection>(server->port()));
  ASSERT_TRUE(Eventually([&] { return Metric(*c, "vigil_http_accept_errors_total") > 0; }, std::chrono::seconds(10)))
      << server->Log();
  const double cpu_before = CpuSeconds(server->pid());
  const auto wall_before = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the state under test is "nothing happens"
  const double cpu = CpuSeconds(server->pid()) - cpu_before;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_before).count();
  EXPECT_LT(cpu / wall, 0.25) << "the server burned " << cpu << " CPU s in " << wall << " s while out of descriptors";
  const std::string log = server->Log();
  size_t lines = 0;
  for (size_t at = log.find("event=accept_failed"); at != std::string::npos;
       at = log.find("event=accept_failed", at + 1))
    ++lines;
  EXPECT_LE(lines, 2u) << "accept failures are logged at most every 10 s";
  EXPECT_LT(Metric(*c, "vigil_http_accept_errors_total"), 200) << "retries back off";
  // With descriptors free again it serves.
  flood.clear();
  EXPECT_TRUE(Eventually(
      [&] {
        HttpClient::Options o;
        o.port = server->port();
        o.timeout = std::chrono::milliseconds(500);
        auto fresh = HttpClient::Connect(o);
        return fresh.ok() && (*fresh)->Get("/v2/health/live").ok();
      },
      std::chrono::seconds(10)))
      << server->Log();
  EXPECT_EQ(server->Signal(SIGTERM), 0) << server->Log();
  fs::remove_all(repo);
}

// gRPC read a 1 GiB message whole: messages are now held to --max-body-bytes.
TEST(Limits, GrpcMessagesOverTheBodyLimitAreRefused) {
  const fs::path repo = Repo("grpc_limit");
  auto server =
      ServerProcess::Start({"--model-repository", repo.string(), "--grpc-port", "0", "--max-body-bytes", "1000000"});
  auto grpc = GrpcClient(*server);
  ASSERT_TRUE(grpc.ok());
  InferCall call = FeaturesCall({10000, 30}, 10000 * 30 * 4);  // 1.2 MB
  auto big = (*grpc)->Infer(call);
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted) << big.status().message();
  call.inputs[0].shape = {8, 30};
  call.inputs[0].data.resize(8 * 30 * 4);
  EXPECT_TRUE((*grpc)->Infer(call).ok());
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

}  // namespace
}  // namespace vigil::testing
