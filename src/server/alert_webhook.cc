#include "server/alert_webhook.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>

#include "client/http_client.h"
#include "protocol/json_writer.h"

namespace vigil {
namespace {

// RFC 3339 in UTC with milliseconds, as Alertmanager writes times.
std::string Rfc3339(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

struct WebhookUrl {
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
  bool tls = false;
};

StatusOr<WebhookUrl> ParseWebhookUrl(const std::string& url, const std::string& flag = "--alert-webhook") {
  WebhookUrl out;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    out.tls = true;
    out.port = 443;
  } else {
    return InvalidArgument(flag + " '" + url + "': expected http(s)://host[:port][/path]");
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    out.path = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    unsigned port = 0;
    const std::string p = rest.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535) {
      return InvalidArgument(flag + " '" + url + "': the port must be a number from 1 to 65535");
    }
    out.port = static_cast<uint16_t>(port);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return InvalidArgument(flag + " '" + url + "' has no host");
  out.host = rest;
  return out;
}

void WriteLabels(JsonWriter& w, const AlertLabels& labels) {
  w.StartObject();
  for (const auto& [k, v] : labels) w.Field(k, v);
  w.EndObject();
}

std::string NumberText(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

void WriteAnnotations(JsonWriter& w, const AlertEvidence& e) {
  w.StartObject();
  w.Field("summary", e.summary);
  w.Field("statistic", e.statistic);
  // Alertmanager's annotations are strings.
  w.Field("value", NumberText(e.value));
  w.Field("threshold", NumberText(e.threshold));
  w.Field("window", Rfc3339(e.window_start_ms) + "/" + Rfc3339(e.window_end_ms));
  w.EndObject();
}

void WriteEvidence(JsonWriter& w, const AlertEvidence& e) {
  w.Field("statistic", e.statistic);
  w.Field("value", e.value);
  w.Field("threshold", e.threshold);
  w.Field("window_start_ms", e.window_start_ms);
  w.Field("window_end_ms", e.window_end_ms);
  w.Field("summary", e.summary);
}

}  // namespace

Status ValidateWebhookUrl(const std::string& url) { return ParseWebhookUrl(url).status(); }

std::string AlertmanagerWebhookBody(const AlertNotification& n, const std::string& external_url) {
  const char* status = n.resolved ? "resolved" : "firing";
  AlertLabels with_name = n.labels;  // Alertmanager's labels include the alert's name
  with_name["alertname"] = n.alertname;
  // Alerts with a `group` label (a dataset alert and its feature alerts)
  // form one group per model version; any other alert is grouped by name.
  AlertLabels group{{"alertname", n.alertname}};
  if (auto g = n.labels.find("group"); g != n.labels.end()) {
    group = {{"group", g->second}};
    for (const char* key : {"model", "version", "endpoint"}) {
      if (auto it = n.labels.find(key); it != n.labels.end()) group[key] = it->second;
    }
  }
  std::string group_key = "{}:{";
  for (const auto& [k, v] : group) group_key += (group_key.size() > 4 ? "," : "") + k + "=\"" + v + "\"";
  group_key += "}";
  JsonWriter w;
  w.StartObject();
  w.Field("version", "4");
  w.Field("groupKey", group_key);
  w.Field("truncatedAlerts", 0);
  w.Field("status", status);
  w.Field("receiver", "vigil");
  w.Key("groupLabels");
  WriteLabels(w, group);
  w.Key("commonLabels");
  WriteLabels(w, with_name);
  w.Key("commonAnnotations");
  WriteAnnotations(w, n.evidence);
  w.Field("externalURL", external_url);
  w.Key("alerts");
  w.StartArray();
  w.StartObject();
  w.Field("status", status);
  w.Key("labels");
  WriteLabels(w, with_name);
  w.Key("annotations");
  WriteAnnotations(w, n.evidence);
  w.Field("startsAt", Rfc3339(n.starts_ms));
  w.Field("endsAt", n.resolved ? Rfc3339(n.ends_ms) : std::string("0001-01-01T00:00:00Z"));
  w.Field("generatorURL", external_url + "/v1/alerts");
  w.Field("fingerprint", n.fingerprint);
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return w.Take();
}

std::string NotificationKey(const AlertNotification& n) {
  return n.fingerprint + "-" + std::to_string(n.starts_ms) + (n.resolved ? "-resolved" : "-firing");
}

namespace {

// A poster of `body(n)` to `u` (within 5 s; a reply that is not 2xx is an error).
AlertNotifier::Poster JsonPoster(const WebhookUrl& u, std::string ca,
                                 std::function<std::string(const AlertNotification&)> body, const char* what) {
  HttpClient::Options o;
  o.host = u.host;
  o.port = u.port;
  o.timeout = std::chrono::seconds(5);
  o.tls = u.tls;
  o.tls_ca = std::move(ca);
  return [o = std::move(o), path = u.path, body = std::move(body), what](const AlertNotification& n) -> Status {
    VIGIL_ASSIGN_OR_RETURN(auto client, HttpClient::Connect(o));
    VIGIL_ASSIGN_OR_RETURN(
        HttpReply reply,
        client->Post(path, body(n), {{"Content-Type", "application/json"}, {"Idempotency-Key", NotificationKey(n)}}));
    if (reply.status < 200 || reply.status >= 300) {
      return Unavailable(std::string(what) + " answered HTTP " + std::to_string(reply.status) + ": " +
                         reply.body.substr(0, 200));
    }
    return Status::Ok();
  };
}

}  // namespace

StatusOr<AlertNotifier::Poster> HttpWebhookPoster(const std::string& url, std::string ca,
                                                  std::function<std::string()> external_url) {
  VIGIL_ASSIGN_OR_RETURN(WebhookUrl u, ParseWebhookUrl(url));
  return JsonPoster(
      u, std::move(ca),
      [external_url = std::move(external_url)](const AlertNotification& n) {
        return AlertmanagerWebhookBody(n, external_url ? external_url() : std::string());
      },
      "webhook");
}

std::string AlertmanagerApiBody(const std::vector<AlertNotification>& alerts, const std::string& external_url,
                                int64_t now_ms, int64_t valid_for_ms) {
  JsonWriter w;
  w.StartArray();
  for (const AlertNotification& n : alerts) {
    AlertLabels with_name = n.labels;
    with_name["alertname"] = n.alertname;
    w.StartObject();
    w.Key("labels");
    WriteLabels(w, with_name);
    w.Key("annotations");
    WriteAnnotations(w, n.evidence);
    w.Field("startsAt", Rfc3339(n.starts_ms));
    // Firing: valid for a while, renewed by each resend; Alertmanager
    // resolves it by itself if the resends stop (this replica died).
    w.Field("endsAt", Rfc3339(n.resolved ? n.ends_ms : now_ms + valid_for_ms));
    w.Field("generatorURL", external_url + "/v1/alerts");
    w.EndObject();
  }
  w.EndArray();
  return w.Take();
}

StatusOr<AlertNotifier::Poster> AlertmanagerApiPoster(const std::string& base_url, std::string ca,
                                                      std::function<std::string()> external_url, int64_t valid_for_ms) {
  VIGIL_ASSIGN_OR_RETURN(WebhookUrl u, ParseWebhookUrl(base_url, "--alertmanager-url"));
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  u.path += "/api/v2/alerts";
  return JsonPoster(
      u, std::move(ca),
      [external_url = std::move(external_url), valid_for_ms](const AlertNotification& n) {
        const int64_t now_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        return AlertmanagerApiBody({n}, external_url ? external_url() : std::string(), now_ms, valid_for_ms);
      },
      "Alertmanager");
}

std::string AlertsJson(const AlertTracker::Snapshot& snapshot) {
  JsonWriter w;
  auto active = [&](const std::vector<AlertTracker::Active>& list) {
    w.StartArray();
    for (const auto& a : list) {
      w.StartObject();
      w.Field("alertname", a.alertname);
      w.Key("labels");
      WriteLabels(w, a.labels);
      w.Field("fingerprint", a.fingerprint);
      w.Field("since_ms", a.since_ms);
      w.Field("windows_in_a_row", a.windows_in_a_row);
      WriteEvidence(w, a.evidence);
      w.EndObject();
    }
    w.EndArray();
  };
  w.StartObject();
  w.Key("firing");
  active(snapshot.firing);
  w.Key("pending");
  active(snapshot.pending);
  w.Key("recent");
  w.StartArray();
  for (const AlertEvent& e : snapshot.recent) {
    w.StartObject();
    w.Field("time_ms", e.time_ms);
    w.Field("alertname", e.alertname);
    w.Key("labels");
    WriteLabels(w, ParseAlertLabels(e.labels));
    w.Field("state", e.state);
    WriteEvidence(w, {e.statistic, e.value, e.threshold, e.window_start_ms, e.window_end_ms, e.summary});
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.Take();
}

}  // namespace vigil
