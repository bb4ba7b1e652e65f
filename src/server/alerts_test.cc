#include "server/alerts.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "server/http_server.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Records what would be posted; fails the first `failures` attempts.
struct FakeWebhook {
  std::mutex mu;
  std::vector<std::string> bodies;
  std::atomic<int> attempts{0};
  int failures = 0;
  AlertManager::Sender sender() {
    return [this](const std::string&, const std::string& body) -> Status {
      if (attempts.fetch_add(1) < failures) return Unavailable("connection refused");
      std::lock_guard lock(mu);
      bodies.push_back(body);
      return Status::Ok();
    };
  }
  size_t WaitFor(size_t n) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lock(mu);
        if (bodies.size() >= n) return bodies.size();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard lock(mu);
    return bodies.size();
  }
};

AlertEvidence Evidence(double value, int64_t end) { return {"psi", value, 0.25, end - 100, end, "feature x drifted"}; }

fs::path FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("vigil_alerts_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

TEST(AlertManager, FiresAfterKWindowsResolvesAfterKCalmOnesAndStoresEveryStep) {
  const fs::path dir = FreshDir("states");
  auto store = OpenSqliteStore(dir.string());
  ASSERT_TRUE(store.ok());
  FakeWebhook hook;
  AlertManager::Options o;
  o.webhook_url = "http://127.0.0.1:9/hook";
  o.external_url = "http://vigil:8000";
  AlertManager alerts(store->get(), nullptr, o, hook.sender());
  const AlertLabels labels{{"model", "m"}, {"version", "1"}, {"feature", "x"}};

  alerts.Observe("FeatureDrift", labels, false, Evidence(0.01, 100), 3, 2, 100);  // calm: nothing tracked
  alerts.Observe("FeatureDrift", labels, true, Evidence(0.4, 200), 3, 2, 200);    // pending
  alerts.Observe("FeatureDrift", labels, true, Evidence(0.5, 300), 3, 2, 300);
  EXPECT_EQ(alerts.firing(), 0u);
  alerts.Observe("FeatureDrift", labels, true, Evidence(0.6, 400), 3, 2, 400);  // third in a row: firing
  EXPECT_EQ(alerts.firing(), 1u);
  alerts.Observe("FeatureDrift", labels, false, Evidence(0.02, 500), 3, 2, 500);
  EXPECT_EQ(alerts.firing(), 1u);  // one calm window is not enough
  alerts.Observe("FeatureDrift", labels, false, Evidence(0.01, 600), 3, 2, 600);
  EXPECT_EQ(alerts.firing(), 0u);  // resolved

  auto events = (*store)->AlertEvents(10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[2].state, "pending");
  EXPECT_EQ((*events)[1].state, "firing");
  EXPECT_EQ((*events)[1].value, 0.6);  // the evidence of the window that made it fire
  EXPECT_EQ((*events)[1].window_end_ms, 400);
  EXPECT_EQ((*events)[1].statistic, "psi");
  EXPECT_EQ((*events)[0].state, "resolved");

  // Alertmanager's webhook shape, firing then resolved.
  ASSERT_EQ(hook.WaitFor(2), 2u);
  rapidjson::Document firing, resolved;
  firing.Parse(hook.bodies[0].c_str());
  resolved.Parse(hook.bodies[1].c_str());
  ASSERT_FALSE(firing.HasParseError()) << hook.bodies[0];
  EXPECT_STREQ(firing["version"].GetString(), "4");
  EXPECT_STREQ(firing["status"].GetString(), "firing");
  EXPECT_STREQ(firing["receiver"].GetString(), "vigil");
  EXPECT_STREQ(firing["groupLabels"]["alertname"].GetString(), "FeatureDrift");
  EXPECT_STREQ(firing["externalURL"].GetString(), "http://vigil:8000");
  const auto& a = firing["alerts"][0];
  EXPECT_STREQ(a["labels"]["feature"].GetString(), "x");
  EXPECT_STREQ(a["labels"]["alertname"].GetString(), "FeatureDrift");
  EXPECT_STREQ(a["annotations"]["summary"].GetString(), "feature x drifted");
  EXPECT_STREQ(a["endsAt"].GetString(), "0001-01-01T00:00:00Z");
  EXPECT_STREQ(a["fingerprint"].GetString(), AlertFingerprint("FeatureDrift", labels).c_str());
  EXPECT_TRUE(a.HasMember("startsAt") && a.HasMember("generatorURL"));
  EXPECT_STREQ(resolved["status"].GetString(), "resolved");
  EXPECT_STRNE(resolved["alerts"][0]["endsAt"].GetString(), "0001-01-01T00:00:00Z");
  EXPECT_STREQ(resolved["alerts"][0]["startsAt"].GetString(), a["startsAt"].GetString());

  rapidjson::Document api;
  api.Parse(alerts.Json(10).c_str());
  ASSERT_FALSE(api.HasParseError());
  EXPECT_EQ(api["firing"].Size(), 0u);
  EXPECT_EQ(api["recent"].Size(), 3u);
  EXPECT_STREQ(api["recent"][0]["state"].GetString(), "resolved");
  fs::remove_all(dir);
}

TEST(AlertManager, APendingAlertThatCalmsDownNeverFires) {
  FakeWebhook hook;
  AlertManager::Options o;
  o.webhook_url = "http://127.0.0.1:9/hook";
  AlertManager alerts(nullptr, nullptr, o, hook.sender());
  const AlertLabels labels{{"model", "m"}};
  alerts.Observe("DatasetDrift", labels, true, Evidence(0.6, 100), 2, 2, 100);
  alerts.Observe("DatasetDrift", labels, false, Evidence(0.1, 200), 2, 2, 200);
  alerts.Observe("DatasetDrift", labels, true, Evidence(0.6, 300), 2, 2, 300);
  EXPECT_EQ(alerts.firing(), 0u);  // the streak restarted
  rapidjson::Document api;
  api.Parse(alerts.Json(10).c_str());
  EXPECT_EQ(api["pending"].Size(), 1u);
  EXPECT_STREQ(api["recent"][1]["state"].GetString(), "inactive");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(hook.attempts.load(), 0);  // nothing fired, nothing sent
}

TEST(AlertManager, ADeadWebhookIsRetriedWithBackoffAndNeverBlocksOrLosesTheAlert) {
  const fs::path dir = FreshDir("retry");
  auto store = OpenSqliteStore(dir.string());
  ASSERT_TRUE(store.ok());
  FakeWebhook hook;
  hook.failures = 3;
  AlertManager::Options o;
  o.webhook_url = "http://127.0.0.1:9/hook";
  o.first_backoff = std::chrono::milliseconds(10);
  AlertManager alerts(store->get(), nullptr, o, hook.sender());
  const auto start = std::chrono::steady_clock::now();
  alerts.Observe("NonFiniteValues", {{"model", "m"}}, true, {"nonfinite_values", 4, 0, 0, 100, "4 NaN"}, 1, 3, 100);
  // The caller never waits for the webhook (its retries alone take 70 ms).
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  EXPECT_EQ((*store)->AlertEvents(10)->front().state, "firing");  // stored before any attempt
  ASSERT_EQ(hook.WaitFor(1), 1u);
  EXPECT_EQ(hook.attempts.load(), 4);  // three failures, then delivered
  fs::remove_all(dir);
}

TEST(AlertManager, PostsToARealWebhookOverHttp) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> received;  // target, body
  HttpServer::Options ho;
  ho.host = "127.0.0.1";
  ho.port = 0;
  ho.threads = 1;
  auto receiver = HttpServer::Create(ho, [&](HttpRequest&& req, const RequestInfo&, HttpServer::Responder respond) {
    {
      std::lock_guard lock(mu);
      received.emplace_back(std::string(req.target()), req.body());
    }
    respond(MakeResponse(200, "{}"));
  });
  ASSERT_TRUE(receiver.ok()) << receiver.status().message();
  (*receiver)->Start();
  AlertManager::Options o;
  o.webhook_url = "http://127.0.0.1:" + std::to_string((*receiver)->port()) + "/api/alerts";
  AlertManager alerts(nullptr, nullptr, o);  // the default sender: HTTP POST
  alerts.Observe("FeatureDrift", {{"feature", "x"}}, true, Evidence(0.9, 100), 1, 1, 100);
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mu);
      if (!received.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].first, "/api/alerts");
  EXPECT_NE(received[0].second.find(R"("status":"firing")"), std::string::npos) << received[0].second;
  (*receiver)->Stop();
}

TEST(AlertManager, FiringAlertsSurviveARestartAndBadWebhookUrlsAreNamed) {
  const fs::path dir = FreshDir("restart");
  {
    auto store = OpenSqliteStore(dir.string());
    AlertManager alerts(store->get(), nullptr, {});
    alerts.Observe("FeatureDrift", {{"feature", "x"}}, true, Evidence(0.9, 100), 1, 2, 100);
    EXPECT_EQ(alerts.firing(), 1u);
  }
  auto store = OpenSqliteStore(dir.string());
  AlertManager alerts(store->get(), nullptr, {});
  EXPECT_EQ(alerts.firing(), 1u);
  alerts.Observe("FeatureDrift", {{"feature", "x"}}, false, Evidence(0.01, 200), 1, 1, 200);
  EXPECT_EQ(alerts.firing(), 0u);
  EXPECT_TRUE(AlertManager::ValidateWebhookUrl("http://hooks.local:9093/api/alerts").ok());
  EXPECT_TRUE(AlertManager::ValidateWebhookUrl("http://hooks.local").ok());
  EXPECT_TRUE(AlertManager::ValidateWebhookUrl("https://hooks.local/x").ok());
  auto ftp = AlertManager::ValidateWebhookUrl("ftp://hooks.local/x");
  EXPECT_NE(ftp.message().find("expected http(s)://"), std::string::npos) << ftp.message();
  EXPECT_NE(AlertManager::ValidateWebhookUrl("http://h:99999/").message().find("port"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vigil
