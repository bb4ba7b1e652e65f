#include "server/alert_webhook.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "core/eventually.h"
#include "net/http_server.h"

namespace vigil {
namespace {

AlertNotification Notification(bool resolved) {
  AlertNotification n;
  n.alertname = "FeatureDrift";
  n.labels = {{"model", "m"}, {"version", "1"}, {"feature", "x"}};
  n.fingerprint = AlertFingerprint(n.alertname, n.labels);
  n.resolved = resolved;
  n.starts_ms = 400;
  n.ends_ms = resolved ? 600 : 0;
  n.evidence = {"psi", 0.6, 0.25, 300, 400, "feature x drifted"};
  return n;
}

TEST(AlertWebhook, BodiesHaveAlertmanagersWebhookShapeFiringThenResolved) {
  rapidjson::Document firing, resolved;
  const std::string f = AlertmanagerWebhookBody(Notification(false), "http://vigil:8000");
  const std::string r = AlertmanagerWebhookBody(Notification(true), "http://vigil:8000");
  firing.Parse(f.c_str());
  resolved.Parse(r.c_str());
  ASSERT_FALSE(firing.HasParseError()) << f;
  ASSERT_FALSE(resolved.HasParseError()) << r;
  EXPECT_STREQ(firing["version"].GetString(), "4");
  EXPECT_STREQ(firing["status"].GetString(), "firing");
  EXPECT_STREQ(firing["receiver"].GetString(), "vigil");
  EXPECT_STREQ(firing["groupLabels"]["alertname"].GetString(), "FeatureDrift");
  EXPECT_STREQ(firing["externalURL"].GetString(), "http://vigil:8000");
  const auto& a = firing["alerts"][0];
  EXPECT_STREQ(a["labels"]["feature"].GetString(), "x");
  EXPECT_STREQ(a["labels"]["alertname"].GetString(), "FeatureDrift");
  EXPECT_STREQ(a["annotations"]["summary"].GetString(), "feature x drifted");
  EXPECT_STREQ(a["annotations"]["value"].GetString(), "0.6");
  EXPECT_STREQ(a["endsAt"].GetString(), "0001-01-01T00:00:00Z");
  EXPECT_STREQ(a["fingerprint"].GetString(), AlertFingerprint("FeatureDrift", Notification(false).labels).c_str());
  EXPECT_STREQ(a["generatorURL"].GetString(), "http://vigil:8000/v1/alerts");
  EXPECT_TRUE(a.HasMember("startsAt"));
  EXPECT_STREQ(resolved["status"].GetString(), "resolved");
  EXPECT_STRNE(resolved["alerts"][0]["endsAt"].GetString(), "0001-01-01T00:00:00Z");
  EXPECT_STREQ(resolved["alerts"][0]["startsAt"].GetString(), a["startsAt"].GetString());
}

TEST(AlertWebhook, ADatasetAlertAndItsFeatureAlertsShareOneGroup) {
  AlertNotification feature = Notification(false);
  feature.labels["group"] = "DatasetDrift";
  AlertNotification dataset = Notification(false);
  dataset.alertname = "DatasetDrift";
  dataset.labels = {{"model", "m"}, {"version", "1"}, {"group", "DatasetDrift"}};
  AlertNotification other_version = feature;
  other_version.labels["version"] = "2";
  rapidjson::Document f, d, o;
  f.Parse(AlertmanagerWebhookBody(feature, "").c_str());
  d.Parse(AlertmanagerWebhookBody(dataset, "").c_str());
  o.Parse(AlertmanagerWebhookBody(other_version, "").c_str());
  EXPECT_STREQ(f["groupKey"].GetString(), R"({}:{group="DatasetDrift",model="m",version="1"})");
  EXPECT_STREQ(f["groupKey"].GetString(), d["groupKey"].GetString());
  EXPECT_STRNE(f["groupKey"].GetString(), o["groupKey"].GetString());
  EXPECT_STREQ(f["groupLabels"]["group"].GetString(), "DatasetDrift");
  EXPECT_FALSE(f["groupLabels"].HasMember("feature"));
  EXPECT_STREQ(f["alerts"][0]["labels"]["alertname"].GetString(), "FeatureDrift");
}

TEST(AlertWebhook, TextThatIsNotUtf8StaysValidJson) {
  AlertNotification n = Notification(false);
  n.labels["feature"] = "bad\xff\xfe name";
  n.evidence.summary = "quote \" and \\ and \x01";
  rapidjson::Document d;
  const std::string body = AlertmanagerWebhookBody(n, "");
  d.Parse(body.c_str());
  ASSERT_FALSE(d.HasParseError()) << body;
  EXPECT_STREQ(d["alerts"][0]["labels"]["feature"].GetString(), "bad\xEF\xBF\xBD\xEF\xBF\xBD name");
  EXPECT_STREQ(d["alerts"][0]["annotations"]["summary"].GetString(), "quote \" and \\ and \x01");
}

TEST(AlertWebhook, AlertsJsonListsFiringPendingAndRecent) {
  auto memory = MemoryAlertStore();
  AlertTracker tracker(*memory, {});
  tracker.Observe("FeatureDrift", {{"feature", "x"}}, true, {"psi", 0.9, 0.25, 0, 100, "x drifted"}, 1, 1, 100);
  tracker.Observe("LatencyHigh", {{"model", "m"}}, true, {"p99_ms", 90, 50, 0, 100, "slow"}, 3, 1, 100);
  rapidjson::Document api;
  const std::string json = AlertsJson(tracker.Get(10));
  api.Parse(json.c_str());
  ASSERT_FALSE(api.HasParseError()) << json;
  ASSERT_EQ(api["firing"].Size(), 1u);
  EXPECT_STREQ(api["firing"][0]["labels"]["feature"].GetString(), "x");
  EXPECT_EQ(api["firing"][0]["value"].GetDouble(), 0.9);
  ASSERT_EQ(api["pending"].Size(), 1u);
  EXPECT_EQ(api["pending"][0]["windows_in_a_row"].GetInt(), 1);
  ASSERT_EQ(api["recent"].Size(), 3u);  // pending, firing (FeatureDrift), pending (LatencyHigh)
  EXPECT_STREQ(api["recent"][0]["state"].GetString(), "pending");
  EXPECT_STREQ(api["recent"][0]["labels"]["model"].GetString(), "m");
}

TEST(AlertWebhook, PostsToARealReceiverOverHttp) {
  Mutex mu;
  std::vector<std::pair<std::string, std::string>> received;  // target, body
  std::vector<std::string> keys;                              // Idempotency-Key
  HttpServer::Options ho;
  ho.host = "127.0.0.1";
  ho.port = 0;
  ho.threads = 1;
  auto receiver = HttpServer::Create(ho, [&](HttpRequest&& req, const RequestInfo&, HttpServer::Responder respond) {
    {
      MutexLock lock(mu);
      received.emplace_back(std::string(req.target()), req.body());
      const auto key = req["Idempotency-Key"];
      keys.emplace_back(key.data(), key.size());
    }
    respond(MakeResponse(200, "{}"));
  });
  ASSERT_TRUE(receiver.ok()) << receiver.status().message();
  (*receiver)->Start();
  auto poster = HttpWebhookPoster("http://127.0.0.1:" + std::to_string((*receiver)->port()) + "/api/alerts", "",
                                  [] { return std::string("http://vigil:8000"); });
  ASSERT_TRUE(poster.ok()) << poster.status().message();
  AlertNotifier notifier(std::move(poster).value(), {});
  auto memory = MemoryAlertStore();
  AlertTracker alerts(*memory, {.notifiers = {&notifier}});
  alerts.Observe("FeatureDrift", {{"feature", "x"}}, true, {"psi", 0.9, 0.25, 0, 100, "x"}, 1, 1, 100);
  ASSERT_TRUE(Eventually([&] {
    MutexLock lock(mu);
    return !received.empty();
  }));
  MutexLock lock(mu);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].first, "/api/alerts");
  EXPECT_NE(received[0].second.find(R"("status":"firing")"), std::string::npos) << received[0].second;
  EXPECT_NE(received[0].second.find(R"("externalURL":"http://vigil:8000")"), std::string::npos);
  EXPECT_EQ(keys[0], AlertFingerprint("FeatureDrift", {{"feature", "x"}}) + "-100-firing");
  (*receiver)->Stop();
}

TEST(AlertWebhook, BadWebhookUrlsAreNamed) {
  EXPECT_TRUE(ValidateWebhookUrl("http://hooks.local:9093/api/alerts").ok());
  EXPECT_TRUE(ValidateWebhookUrl("http://hooks.local").ok());
  EXPECT_TRUE(ValidateWebhookUrl("https://hooks.local/x").ok());
  auto ftp = ValidateWebhookUrl("ftp://hooks.local/x");
  EXPECT_NE(ftp.message().find("expected http(s)://"), std::string::npos) << ftp.message();
  EXPECT_NE(ValidateWebhookUrl("http://h:99999/").message().find("port"), std::string::npos);
}

TEST(AlertWebhook, AlertmanagersApiGetsAListWhoseFiringAlertsEndUnlessResent) {
  const std::string body = AlertmanagerApiBody({Notification(false), Notification(true)}, "http://vigil:8000",
                                               /*now_ms=*/10'000, /*valid_for_ms=*/240'000);
  rapidjson::Document d;
  d.Parse(body.c_str());
  ASSERT_TRUE(d.IsArray()) << body;
  ASSERT_EQ(d.Size(), 2u);
  const auto& firing = d[0];
  EXPECT_STREQ(firing["labels"]["alertname"].GetString(), "FeatureDrift");
  EXPECT_STREQ(firing["labels"]["feature"].GetString(), "x");
  EXPECT_STREQ(firing["annotations"]["summary"].GetString(), "feature x drifted");
  EXPECT_STREQ(firing["startsAt"].GetString(), "1970-01-01T00:00:00.400Z");
  EXPECT_STREQ(firing["endsAt"].GetString(), "1970-01-01T00:04:10.000Z") << "now + valid_for";
  EXPECT_STREQ(firing["generatorURL"].GetString(), "http://vigil:8000/v1/alerts");
  EXPECT_FALSE(firing.HasMember("status")) << "Alertmanager's API takes no status: endsAt says it";
  EXPECT_STREQ(d[1]["endsAt"].GetString(), "1970-01-01T00:00:00.600Z") << "resolved: when it ended";
  auto bad = AlertmanagerApiPoster("am.local:9093", "", nullptr, 1000);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--alertmanager-url"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace vigil
