#include "server/alerts.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <charconv>
#include <cmath>
#include <ctime>

#include "client/http_client.h"
#include "core/hash.h"
#include "core/logging.h"
#include "core/thread_name.h"
#include "protocol/oip_json.h"

namespace vigil {
namespace {

constexpr size_t kRecentWithoutStore = 200;

// RFC 3339 in UTC with milliseconds, as Alertmanager writes times.
std::string Rfc3339(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

std::string LabelsJson(const AlertLabels& labels) {
  std::string out = "{";
  for (const auto& [k, v] : labels) {
    if (out.size() > 1) out += ',';
    AppendJsonString(out, k);
    out += ':';
    AppendJsonString(out, v);
  }
  return out + "}";
}

AlertLabels ParseLabels(const std::string& json) {
  AlertLabels labels;
  rapidjson::Document d;
  d.Parse(json.c_str());
  if (d.HasParseError() || !d.IsObject()) return labels;
  for (const auto& m : d.GetObject()) {
    if (m.value.IsString()) labels[m.name.GetString()] = m.value.GetString();
  }
  return labels;
}

struct WebhookUrl {
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
  bool tls = false;
};

StatusOr<WebhookUrl> ParseWebhookUrl(const std::string& url) {
  WebhookUrl out;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    out.tls = true;
    out.port = 443;
  } else {
    return InvalidArgument("--alert-webhook '" + url + "': expected http(s)://host[:port][/path]");
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
      return InvalidArgument("--alert-webhook '" + url + "': the port must be a number from 1 to 65535");
    }
    out.port = static_cast<uint16_t>(port);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return InvalidArgument("--alert-webhook '" + url + "' has no host");
  out.host = rest;
  return out;
}

// Posts over HTTP or HTTPS; an https:// webhook's certificate must chain
// to `ca` (empty: the system's CAs) and name its host.
Status PostOverHttp(const std::string& url, const std::string& body, const std::string& ca) {
  VIGIL_ASSIGN_OR_RETURN(WebhookUrl u, ParseWebhookUrl(url));
  HttpClient::Options o;
  o.host = u.host;
  o.port = u.port;
  o.timeout = std::chrono::seconds(5);
  o.tls = u.tls;
  o.tls_ca = ca;
  VIGIL_ASSIGN_OR_RETURN(auto client, HttpClient::Connect(o));
  VIGIL_ASSIGN_OR_RETURN(HttpReply reply, client->Post(u.path, body, {{"Content-Type", "application/json"}}));
  if (reply.status < 200 || reply.status >= 300) {
    return Unavailable("webhook answered HTTP " + std::to_string(reply.status));
  }
  return Status::Ok();
}

}  // namespace

std::string AlertFingerprint(const std::string& alertname, const AlertLabels& labels) {
  std::string key = alertname;
  for (const auto& [k, v] : labels) key += '\0' + k + '=' + v;
  return fmt::format("{:08x}{:08x}", Murmur3_32(key, 0x5bd1e995u), Murmur3_32(key, 0x9747b28cu));
}

void AlertManager::SetExternalUrl(const std::string& url) {
  std::lock_guard lock(mu_);
  options_.external_url = url;
}

Status AlertManager::ValidateWebhookUrl(const std::string& url) { return ParseWebhookUrl(url).status(); }

AlertManager::AlertManager(Store* store, ServingMetrics* metrics, Options options, Sender sender)
    : store_(store), options_(std::move(options)), sender_(std::move(sender)) {
  if (!sender_) {
    sender_ = [ca = options_.webhook_ca](const std::string& url, const std::string& body) {
      return PostOverHttp(url, body, ca);
    };
  }
  if (metrics) {
    auto& r = metrics->registry();
    firing_gauge_ = &r.AddGauge("vigil_alerts_firing", "Alerts firing now, by alert name.", {"alertname"});
    notifications_ =
        &r.AddCounter("vigil_alert_notifications_total",
                      "Webhook notifications, by result (sent, failed after retries, dropped).", {"result"});
  }
  if (store_) {
    // Alerts that were firing (or pending) when the server stopped go on.
    auto events = store_->AlertEvents(10000);
    if (events.ok()) {
      for (auto it = events->rbegin(); it != events->rend(); ++it) {
        Tracked& t = alerts_[it->fingerprint];
        t.alertname = it->alertname;
        t.labels = ParseLabels(it->labels);
        t.state = it->state == "firing" ? State::kFiring : it->state == "pending" ? State::kPending : State::kInactive;
        t.bad_streak = t.state == State::kInactive ? 0 : 1;
        t.since_ms = it->time_ms;
        t.last = {it->statistic, it->value, it->threshold, it->window_start_ms, it->window_end_ms, it->summary};
      }
    }
    std::lock_guard lock(mu_);
    UpdateGauge();
  }
  sender_thread_ = std::thread([this] {
    SetThreadName("vigil-alerts");
    SendLoop();
  });
}

AlertManager::~AlertManager() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  sender_thread_.join();
}

void AlertManager::Observe(const std::string& alertname, const AlertLabels& labels, bool violated,
                           const AlertEvidence& evidence, int64_t fire_after, int64_t resolve_after, int64_t now_ms) {
  const std::string fingerprint = AlertFingerprint(alertname, labels);
  std::lock_guard lock(mu_);
  auto it = alerts_.find(fingerprint);
  if (it == alerts_.end()) {
    if (!violated) return;  // nothing to track for a calm rule that never fired
    Tracked fresh;
    fresh.alertname = alertname;
    fresh.labels = labels;
    it = alerts_.emplace(fingerprint, std::move(fresh)).first;
  }
  Tracked& t = it->second;
  t.last = evidence;
  if (violated) {
    ++t.bad_streak;
    t.good_streak = 0;
    if (t.state == State::kInactive) Transition(t, State::kPending, "pending", now_ms);
    if (t.state == State::kPending && t.bad_streak >= fire_after) Transition(t, State::kFiring, "firing", now_ms);
  } else {
    ++t.good_streak;
    t.bad_streak = 0;
    if (t.state == State::kPending) Transition(t, State::kInactive, "inactive", now_ms);
    if (t.state == State::kFiring && t.good_streak >= resolve_after)
      Transition(t, State::kInactive, "resolved", now_ms);
  }
}

void AlertManager::Transition(Tracked& t, State to, const char* event, int64_t now_ms) {
  const bool resolved = t.state == State::kFiring && to == State::kInactive;
  const int64_t started = t.since_ms;
  t.state = to;
  t.since_ms = now_ms;
  AlertEvent e{0,
               now_ms,
               t.alertname,
               AlertFingerprint(t.alertname, t.labels),
               LabelsJson(t.labels),
               event,
               t.last.statistic,
               t.last.value,
               t.last.threshold,
               t.last.window_start_ms,
               t.last.window_end_ms,
               t.last.summary};
  // Stored first: a notification can fail, the record cannot be skipped.
  if (store_) {
    if (Status s = store_->AppendAlertEvent(e); !s.ok()) {
      spdlog::error("event=alert_not_stored alertname={} error={}", t.alertname, LogValue(s.message()));
    }
  } else {
    recent_.push_front(e);
    if (recent_.size() > kRecentWithoutStore) recent_.pop_back();
  }
  spdlog::warn("event=alert_{} alertname={} labels={} statistic={} value={} threshold={} summary={}", event,
               t.alertname, LogValue(LabelsJson(t.labels)), t.last.statistic, t.last.value, t.last.threshold,
               LogValue(t.last.summary));
  UpdateGauge();
  if (to == State::kFiring) Notify(t, false, now_ms);
  if (resolved) {
    Tracked copy = t;
    copy.since_ms = started;  // startsAt stays the firing time
    Notify(copy, true, now_ms);
  }
}

void AlertManager::UpdateGauge() {
  std::map<std::string, int> counts;
  for (auto& [name, n] : firing_by_name_) counts[name] = 0;  // names that stopped firing go to 0
  for (const auto& [fp, t] : alerts_) {
    if (t.state == State::kFiring) ++counts[t.alertname];
  }
  firing_by_name_ = counts;
  if (firing_gauge_) {
    for (const auto& [name, n] : counts) firing_gauge_->WithLabels({name}).Set(n);
  }
}

void AlertManager::Notify(const Tracked& t, bool resolved, int64_t now_ms) {
  if (options_.webhook_url.empty()) return;
  const char* status = resolved ? "resolved" : "firing";
  AlertLabels with_name = t.labels;  // Alertmanager's labels include the alert's name
  with_name["alertname"] = t.alertname;
  const std::string labels = LabelsJson(with_name);
  std::string annotations = "{\"summary\":";
  AppendJsonString(annotations, t.last.summary);
  annotations += ",\"statistic\":";
  AppendJsonString(annotations, t.last.statistic);
  fmt::format_to(std::back_inserter(annotations), ",\"value\":\"{}\",\"threshold\":\"{}\",\"window\":\"{}/{}\"}}",
                 JsonNumber(t.last.value), JsonNumber(t.last.threshold), Rfc3339(t.last.window_start_ms),
                 Rfc3339(t.last.window_end_ms));
  std::string body = "{\"version\":\"4\",\"groupKey\":";
  AppendJsonString(body, "{}:{alertname=\"" + t.alertname + "\"}");
  fmt::format_to(std::back_inserter(body), ",\"truncatedAlerts\":0,\"status\":\"{}\",\"receiver\":\"vigil\"", status);
  body += ",\"groupLabels\":{\"alertname\":";
  AppendJsonString(body, t.alertname);
  body += "},\"commonLabels\":" + labels + ",\"commonAnnotations\":" + annotations + ",\"externalURL\":";
  AppendJsonString(body, options_.external_url);
  fmt::format_to(std::back_inserter(body), ",\"alerts\":[{{\"status\":\"{}\",\"labels\":{},\"annotations\":{}", status,
                 labels, annotations);
  fmt::format_to(std::back_inserter(body),
                 ",\"startsAt\":\"{}\",\"endsAt\":\"{}\",\"generatorURL\":", Rfc3339(t.since_ms),
                 resolved ? Rfc3339(now_ms) : "0001-01-01T00:00:00Z");
  AppendJsonString(body, options_.external_url + "/v1/alerts");
  body += ",\"fingerprint\":";
  AppendJsonString(body, AlertFingerprint(t.alertname, t.labels));
  body += "}]}";
  if (outbox_.size() >= options_.queue_limit) {
    outbox_.pop_front();
    if (notifications_) notifications_->WithLabels({"dropped"}).Inc();
    spdlog::error("event=alert_notification_dropped reason=queue_full queue_limit={}", options_.queue_limit);
  }
  outbox_.push_back(std::move(body));
  wake_.notify_all();
}

void AlertManager::SendLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !outbox_.empty(); });
    if (stopping_) return;
    const std::string body = outbox_.front();
    auto backoff = options_.first_backoff;
    Status s;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      lock.unlock();
      s = sender_(options_.webhook_url, body);
      lock.lock();
      if (s.ok() || stopping_) break;
      spdlog::warn("event=alert_webhook_failed attempt={} of={} error={} retry_in_ms={}", attempt,
                   options_.max_attempts, LogValue(s.message()), backoff.count());
      if (attempt == options_.max_attempts) break;
      wake_.wait_for(lock, backoff, [this] { return stopping_; });
      if (stopping_) return;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(60));
    }
    if (!outbox_.empty() && outbox_.front() == body) outbox_.pop_front();
    if (notifications_) notifications_->WithLabels({s.ok() ? "sent" : "failed"}).Inc();
    if (!s.ok()) {
      spdlog::error("event=alert_notification_failed attempts={} error={} note=the_alert_is_in_the_store",
                    options_.max_attempts, LogValue(s.message()));
    }
  }
}

size_t AlertManager::firing() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [fp, t] : alerts_) n += t.state == State::kFiring;
  return n;
}

std::string AlertManager::Json(int recent_limit) const {
  std::vector<AlertEvent> recent;
  if (store_) {
    auto events = store_->AlertEvents(recent_limit);
    if (events.ok()) recent = std::move(events).value();
  }
  std::lock_guard lock(mu_);
  if (!store_) recent.assign(recent_.begin(), recent_.begin() + std::min<size_t>(recent_.size(), recent_limit));
  std::string firing = "[", pending = "[";
  for (const auto& [fp, t] : alerts_) {
    if (t.state == State::kInactive) continue;
    std::string& out = t.state == State::kFiring ? firing : pending;
    if (out.size() > 1) out += ',';
    out += "{\"alertname\":";
    AppendJsonString(out, t.alertname);
    out += ",\"labels\":" + LabelsJson(t.labels) + ",\"fingerprint\":";
    AppendJsonString(out, fp);
    fmt::format_to(std::back_inserter(out), ",\"since_ms\":{},\"windows_in_a_row\":{},\"statistic\":", t.since_ms,
                   t.bad_streak);
    AppendJsonString(out, t.last.statistic);
    fmt::format_to(
        std::back_inserter(out), ",\"value\":{},\"threshold\":{},\"window_start_ms\":{},\"window_end_ms\":{}",
        JsonNumber(t.last.value), JsonNumber(t.last.threshold), t.last.window_start_ms, t.last.window_end_ms);
    out += ",\"summary\":";
    AppendJsonString(out, t.last.summary);
    out += '}';
  }
  std::string out = "{\"firing\":" + firing + "],\"pending\":" + pending + "],\"recent\":[";
  for (size_t i = 0; i < recent.size(); ++i) {
    const AlertEvent& e = recent[i];
    if (i) out += ',';
    fmt::format_to(std::back_inserter(out), "{{\"time_ms\":{},\"alertname\":", e.time_ms);
    AppendJsonString(out, e.alertname);
    out += ",\"labels\":" + (e.labels.empty() ? std::string("{}") : e.labels) + ",\"state\":";
    AppendJsonString(out, e.state);
    out += ",\"statistic\":";
    AppendJsonString(out, e.statistic);
    fmt::format_to(std::back_inserter(out),
                   ",\"value\":{},\"threshold\":{},\"window_start_ms\":{},\"window_end_ms\":{}", JsonNumber(e.value),
                   JsonNumber(e.threshold), e.window_start_ms, e.window_end_ms);
    out += ",\"summary\":";
    AppendJsonString(out, e.summary);
    out += '}';
  }
  return out + "]}";
}

}  // namespace vigil
