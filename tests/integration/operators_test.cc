// The tools operators already run, for real: Alertmanager (from Debian's
// prometheus-alertmanager) receiving Vigil's alerts through its API and
// notifying its own webhook receiver, and Prometheus scraping a running
// Vigil with the example rules loaded.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/wait.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "core/eventually.h"
#include "net/http_server.h"
#include "server_process.h"

namespace vigil::testing {
namespace {

namespace fs = std::filesystem;

bool Installed(const char* path) { return fs::exists(path); }

std::unique_ptr<HttpClient> LoopbackClient(uint16_t port) {
  HttpClient::Options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.timeout = std::chrono::seconds(5);
  auto c = HttpClient::Connect(o);
  return c.ok() ? std::move(*c) : nullptr;
}

// GET `path` from 127.0.0.1:`port`; empty when it does not answer 200.
std::string GetBody(uint16_t port, const std::string& path) {
  auto c = LoopbackClient(port);
  if (!c) return "";
  auto r = c->Get(path);
  return r.ok() && r->status == 200 ? r->body : "";
}

// A webhook receiver on loopback that keeps every body it is sent.
class Receiver {
 public:
  Receiver() {
    HttpServer::Options ho;
    ho.host = "127.0.0.1";
    ho.port = 0;
    ho.threads = 1;
    auto server = HttpServer::Create(ho, [this](HttpRequest&& req, const RequestInfo&, HttpServer::Responder respond) {
      {
        std::lock_guard lock(mu_);
        bodies_.push_back(req.body());
      }
      respond(MakeResponse(200, "{}"));
    });
    EXPECT_TRUE(server.ok()) << server.status().message();
    if (server.ok()) {
      server_ = std::move(*server);
      server_->Start();
    }
  }
  ~Receiver() {
    if (server_) server_->Stop();
  }
  uint16_t port() const { return server_ ? server_->port() : 0; }
  bool Received(const std::string& needle) {
    std::lock_guard lock(mu_);
    for (const auto& b : bodies_) {
      if (b.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::unique_ptr<HttpServer> server_;
};

// Alertmanager on a free loopback port, routing everything to `receiver_url`
// at once (no group wait), clustering off.
struct Alertmanager {
  explicit Alertmanager(const std::string& receiver_url) {
    dir = ScratchDir("alertmanager");
    WriteFile(dir / "alertmanager.yml", R"(route:
  receiver: test
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: )" + receiver_url + R"(
        send_resolved: true
)");
    for (int attempt = 0; attempt < 5 && port == 0; ++attempt) {
      const uint16_t p = FreeLoopbackPort();
      process = ChildProcess::Start(
          {"/usr/bin/prometheus-alertmanager", "--config.file=" + (dir / "alertmanager.yml").string(),
           "--storage.path=" + (dir / "data").string(), "--web.listen-address=127.0.0.1:" + std::to_string(p),
           "--cluster.listen-address=", "--log.level=warn"});
      if (process &&
          Eventually([&] { return !GetBody(p, "/-/ready").empty() || !process->running(); },
                     std::chrono::seconds(20)) &&
          process->running()) {
        port = p;
      }
    }
  }
  ~Alertmanager() {
    process.reset();
    fs::remove_all(dir);
  }
  fs::path dir;
  std::unique_ptr<ChildProcess> process;
  uint16_t port = 0;
};

// Vigil's alert shows in Alertmanager's API with Vigil's labels, reaches the
// receiver Alertmanager routes it to, and is kept alive by resends.
TEST(Alertmanager, AVigilAlertShowsInAlertmanagerAndReachesItsReceiver) {
  if (!Installed("/usr/bin/prometheus-alertmanager")) {
    GTEST_SKIP() << "Alertmanager is not installed (Debian package prometheus-alertmanager)";
  }
  Receiver receiver;
  ASSERT_NE(receiver.port(), 0);
  Alertmanager am("http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook");
  ASSERT_NE(am.port, 0) << "Alertmanager did not start: " << (am.process ? am.process->Log() : "");

  const fs::path repo = ScratchDir("alertmanager_repo");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  // A memory limit of 1 MiB fires MemoryHigh after two short health windows.
  auto server = ServerProcess::Start({"--model-repository", repo.string(), "--alertmanager-url",
                                      "http://127.0.0.1:" + std::to_string(am.port), "--alertmanager-resend-s", "1",
                                      "--alert-memory-mb", "1", "--health-window-s", "0.1"});
  // In Alertmanager's own API, with the labels Vigil gave it.
  std::string alerts;
  EXPECT_TRUE(Eventually(
      [&] {
        alerts = GetBody(am.port, "/api/v2/alerts");
        return alerts.find("\"alertname\":\"MemoryHigh\"") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << alerts << "\n"
      << server->Log();
  rapidjson::Document d;
  d.Parse(alerts.c_str());
  ASSERT_TRUE(d.IsArray()) << alerts;
  std::string ends_at;
  for (const auto& a : d.GetArray()) {
    if (std::string(a["labels"]["alertname"].GetString()) != "MemoryHigh") continue;
    EXPECT_STREQ(a["status"]["state"].GetString(), "active");
    EXPECT_TRUE(a["annotations"].HasMember("summary"));
    EXPECT_NE(std::string(a["generatorURL"].GetString()).find("/v1/alerts"), std::string::npos);
    ends_at = a["endsAt"].GetString();
  }
  ASSERT_FALSE(ends_at.empty());
  // Through Alertmanager's routing to its receiver.
  EXPECT_TRUE(Eventually([&] { return receiver.Received("MemoryHigh"); }, std::chrono::seconds(30)))
      << am.process->Log();
  // Resent every second, each valid for four: endsAt moves on.
  EXPECT_TRUE(Eventually(
      [&] {
        rapidjson::Document again;
        again.Parse(GetBody(am.port, "/api/v2/alerts").c_str());
        if (!again.IsArray()) return false;
        for (const auto& a : again.GetArray()) {
          if (std::string(a["labels"]["alertname"].GetString()) == "MemoryHigh" &&
              std::string(a["endsAt"].GetString()) > ends_at) {
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(15)));
  auto c = server->Client();
  EXPECT_GT(MetricSum(*c, R"(vigil_alert_notifications_total{receiver="alertmanager",result="sent"})"), 0);
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(repo);
}

// The example rules and scrape config pass promtool; the real Prometheus
// scrapes a running Vigil with the rules loaded, and a metric and a
// recording rule come back from its query API.
TEST(Prometheus, ScrapesVigilWithTheExampleRulesAndAnswersQueries) {
  if (!Installed("/usr/bin/prometheus") || !Installed("/usr/bin/promtool")) {
    GTEST_SKIP() << "Prometheus is not installed (Debian package prometheus)";
  }
  const fs::path deploy = fs::path(VIGIL_SOURCE_DIR) / "deploy" / "prometheus";
  auto rules = ChildProcess::Start({"/usr/bin/promtool", "check", "rules", (deploy / "vigil-rules.yml").string()});
  auto config = ChildProcess::Start({"/usr/bin/promtool", "check", "config", (deploy / "prometheus.yml").string()});
  ASSERT_TRUE(rules && config);
  int rules_status = 0, config_status = 0;
  ::waitpid(rules->pid(), &rules_status, 0);
  ::waitpid(config->pid(), &config_status, 0);
  EXPECT_TRUE(WIFEXITED(rules_status) && WEXITSTATUS(rules_status) == 0) << rules->Log();
  EXPECT_TRUE(WIFEXITED(config_status) && WEXITSTATUS(config_status) == 0) << config->Log();

  const fs::path repo = ScratchDir("prometheus_repo");
  CopyExampleRepository(repo, {"breast_cancer_mlp"});
  auto server = ServerProcess::Start({"--model-repository", repo.string()});
  auto c = server->Client();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(c->Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1))->status, 200u);

  const fs::path dir = ScratchDir("prometheus");
  fs::copy_file(deploy / "vigil-rules.yml", dir / "vigil-rules.yml");
  WriteFile(dir / "prometheus.yml", R"(global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [vigil-rules.yml]
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ["127.0.0.1:)" + std::to_string(server->port()) +
                                        R"("]
)");
  std::unique_ptr<ChildProcess> prometheus;
  uint16_t port = 0;
  for (int attempt = 0; attempt < 5 && port == 0; ++attempt) {
    const uint16_t p = FreeLoopbackPort();
    prometheus = ChildProcess::Start({"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                                      "--storage.tsdb.path=" + (dir / "data").string(),
                                      "--web.listen-address=127.0.0.1:" + std::to_string(p), "--log.level=warn"});
    if (prometheus &&
        Eventually([&] { return !GetBody(p, "/-/ready").empty() || !prometheus->running(); },
                   std::chrono::seconds(30)) &&
        prometheus->running()) {
      port = p;
    }
  }
  ASSERT_NE(port, 0) << "Prometheus did not start: " << (prometheus ? prometheus->Log() : "");
  auto query = [&](const std::string& q) {
    rapidjson::Document d;
    d.Parse(GetBody(port, "/api/v1/query?query=" + q).c_str());
    return d;
  };
  EXPECT_TRUE(Eventually(
      [&] {
        auto d = query("vigil_build_info");
        return d.IsObject() && d["data"]["result"].Size() == 1 && d["data"]["result"][0]["metric"].HasMember("version");
      },
      std::chrono::seconds(30)))
      << prometheus->Log();
  EXPECT_TRUE(Eventually(
      [&] {
        auto d = query("sum%20by%20(model)%20(vigil_inference_requests_total)");
        if (!d.IsObject() || d["data"]["result"].Empty()) return false;
        return std::string(d["data"]["result"][0]["metric"]["model"].GetString()) == "breast_cancer_mlp" &&
               std::string(d["data"]["result"][0]["value"][1].GetString()) == "5";
      },
      std::chrono::seconds(30)));
  // A recording rule of the example rules, evaluated on what was scraped.
  EXPECT_TRUE(Eventually(
      [&] {
        (void)c->Post("/v2/models/breast_cancer_mlp/infer", FeaturesBody(1));
        auto d = query("max(model_version:vigil_inference_error_ratio:rate5m)");
        return d.IsObject() && !d["data"]["result"].Empty() &&
               std::string(d["data"]["result"][0]["value"][1].GetString()) == "0";
      },
      std::chrono::seconds(30)))
      << prometheus->Log();
  EXPECT_TRUE(Eventually([&] {
    auto d = query("process_open_fds");
    return d.IsObject() && !d["data"]["result"].Empty();
  }));
  prometheus.reset();
  EXPECT_EQ(server->Signal(SIGTERM), 0);
  fs::remove_all(dir);
  fs::remove_all(repo);
}

}  // namespace
}  // namespace vigil::testing
