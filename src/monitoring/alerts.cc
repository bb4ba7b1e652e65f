#include "monitoring/alerts.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <limits>

#include "core/hash.h"
#include "core/logging.h"
#include "core/thread_name.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"

namespace vigil {

std::string AlertFingerprint(const std::string& alertname, const AlertLabels& labels) {
  std::string key = alertname;
  for (const auto& [k, v] : labels) key += '\0' + k + '=' + v;
  return fmt::format("{:08x}{:08x}", Murmur3_32(key, 0x5bd1e995u), Murmur3_32(key, 0x9747b28cu));
}

std::string AlertLabelsJson(const AlertLabels& labels) {
  JsonWriter w;
  w.StartObject();
  for (const auto& [k, v] : labels) w.Field(k, v);
  w.EndObject();
  return w.Take();
}

AlertLabels ParseAlertLabels(const std::string& json) {
  AlertLabels labels;
  rapidjson::Document d;
  if (!ParseJson(json, d).ok() || !d.IsObject()) return labels;
  for (const auto& m : d.GetObject()) {
    if (m.value.IsString()) labels[m.name.GetString()] = m.value.GetString();
  }
  return labels;
}

// --- AlertNotifier ---

AlertNotifier::AlertNotifier(Poster poster, Options options) : poster_(std::move(poster)), options_(options) {
  if (options_.registry) {
    results_ = &options_.registry->AddCounter(
        "vigil_alert_notifications_total",
        "Alert notifications, by receiver (webhook, alertmanager) and result (sent, failed after retries, dropped).",
        {"receiver", "result"});
  }
  thread_ = std::thread([this] {
    SetThreadName("vigil-alerts");
    Loop();
  });
}

AlertResender::AlertResender(const AlertTracker& tracker, AlertNotifier& notifier, std::chrono::milliseconds interval)
    : tracker_(tracker), notifier_(notifier), thread_("vigil-resend", interval, [this] { ResendNow(); }) {}

void AlertResender::ResendNow() {
  for (AlertNotification& n : tracker_.Notifications(std::numeric_limits<int64_t>::max())) {
    notifier_.Enqueue(std::move(n));
  }
}

AlertNotification AlertTracker::Notification(const std::string& fingerprint, const Tracked& t) {
  const bool resolved = t.state == State::kInactive;
  AlertNotification n;
  n.alertname = t.alertname;
  n.labels = t.labels;
  n.fingerprint = fingerprint;
  n.resolved = resolved;
  n.starts_ms = resolved ? t.resolved_from_ms : t.since_ms;  // startsAt stays the firing time
  n.ends_ms = resolved ? t.since_ms : 0;
  n.evidence = t.last;
  return n;
}

std::vector<AlertNotification> AlertTracker::Notifications(int64_t resolved_since_ms) const {
  std::vector<AlertNotification> out;
  MutexLock lock(mu_);
  for (const auto& [fp, t] : alerts_) {
    const bool resolved = t.state == State::kInactive && t.resolved_from_ms > 0 && t.since_ms >= resolved_since_ms;
    if ((t.state == State::kFiring || resolved) && Owns(t.labels)) out.push_back(Notification(fp, t));
  }
  return out;
}

size_t AlertTracker::Renotify(int64_t now_ms, int64_t resolved_within_ms) const {
  const std::vector<AlertNotification> out = Notifications(now_ms - resolved_within_ms);
  for (const AlertNotification& n : out) {
    for (AlertNotifier* notifier : options_.notifiers) notifier->Enqueue(n);
  }
  return out.size();
}

AlertNotifier::~AlertNotifier() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.NotifyAll();
  thread_.join();
}

void AlertNotifier::Count(const char* result) {
  if (results_) results_->WithLabels({options_.receiver, result}).Inc();
}

void AlertNotifier::Enqueue(AlertNotification n) {
  {
    MutexLock lock(mu_);
    if (outbox_.size() >= options_.queue_limit) {
      outbox_.pop_front();
      Count("dropped");
      spdlog::error("event=alert_notification_dropped reason=queue_full queue_limit={}", options_.queue_limit);
    }
    outbox_.push_back(std::move(n));
  }
  wake_.NotifyAll();
}

void AlertNotifier::Loop() {
  MutexLock lock(mu_);
  while (true) {
    while (!stopping_ && outbox_.empty()) wake_.Wait(lock);
    if (stopping_) return;
    const AlertNotification n = outbox_.front();
    auto backoff = options_.first_backoff;
    Status s;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      lock.Unlock();
      s = poster_(n);
      lock.Lock();
      if (s.ok() || stopping_) break;
      spdlog::warn("event=alert_webhook_failed attempt={} of={} error={} retry_in_ms={}", attempt,
                   options_.max_attempts, LogValue(s.message()), backoff.count());
      if (attempt == options_.max_attempts) break;
      const auto until = std::chrono::steady_clock::now() + backoff;
      while (!stopping_ && wake_.WaitUntil(lock, until)) {
      }
      if (stopping_) return;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(60));
    }
    // Dropped from the front while it was being posted: someone else's turn now.
    if (!outbox_.empty() && outbox_.front().fingerprint == n.fingerprint && outbox_.front().resolved == n.resolved &&
        outbox_.front().starts_ms == n.starts_ms)
      outbox_.pop_front();
    Count(s.ok() ? "sent" : "failed");
    if (!s.ok()) {
      spdlog::error("event=alert_notification_failed attempts={} error={} note=the_alert_is_in_the_store",
                    options_.max_attempts, LogValue(s.message()));
    }
  }
}

// --- AlertTracker ---

AlertTracker::AlertTracker(AlertStore& store, Options options) : store_(store), options_(options) {
  if (options_.registry) {
    firing_gauge_ =
        &options_.registry->AddGauge("vigil_alerts_firing", "Alerts firing now, by alert name.", {"alertname"});
  }
  MutexLock lock(mu_);
  // Alerts that were firing (or pending) when the server stopped go on.
  auto events = store_.AlertEvents(10000);
  if (events.ok()) {
    for (auto it = events->rbegin(); it != events->rend(); ++it) {
      Tracked& t = alerts_[it->fingerprint];
      t.alertname = it->alertname;
      t.labels = ParseAlertLabels(it->labels);
      t.state = it->state == "firing" ? State::kFiring : it->state == "pending" ? State::kPending : State::kInactive;
      t.bad_streak = t.state == State::kInactive ? 0 : 1;
      t.since_ms = it->time_ms;
      t.last = {it->statistic, it->value, it->threshold, it->window_start_ms, it->window_end_ms, it->summary};
    }
  }
  UpdateGauge();
}

void AlertTracker::Observe(const std::string& alertname, const AlertLabels& labels, bool violated,
                           const AlertEvidence& evidence, int64_t fire_after, int64_t resolve_after, int64_t now_ms) {
  const std::string fingerprint = AlertFingerprint(alertname, labels);
  MutexLock lock(mu_);
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
    if (t.state == State::kInactive) Transition(fingerprint, t, State::kPending, "pending", now_ms);
    if (t.state == State::kPending && t.bad_streak >= fire_after)
      Transition(fingerprint, t, State::kFiring, "firing", now_ms);
  } else {
    ++t.good_streak;
    t.bad_streak = 0;
    if (t.state == State::kPending) Transition(fingerprint, t, State::kInactive, "inactive", now_ms);
    if (t.state == State::kFiring && t.good_streak >= resolve_after)
      Transition(fingerprint, t, State::kInactive, "resolved", now_ms);
  }
}

void AlertTracker::Transition(const std::string& fingerprint, Tracked& t, State to, const char* event, int64_t now_ms) {
  const bool resolved = t.state == State::kFiring && to == State::kInactive;
  t.resolved_from_ms = resolved ? t.since_ms : 0;
  t.state = to;
  t.since_ms = now_ms;
  const std::string labels_json = AlertLabelsJson(t.labels);
  AlertEvent e{0,
               now_ms,
               t.alertname,
               fingerprint,
               labels_json,
               event,
               t.last.statistic,
               t.last.value,
               t.last.threshold,
               t.last.window_start_ms,
               t.last.window_end_ms,
               t.last.summary};
  const bool owned = Owns(t.labels);  // else the leader stores and notifies it
  // Stored first: a notification can fail, the record cannot be skipped.
  if (Status s = owned ? store_.AppendAlertEvent(e) : Status::Ok(); !s.ok()) {
    spdlog::error("event=alert_not_stored alertname={} error={}", t.alertname, LogValue(s.message()));
  }
  spdlog::warn("event=alert_{} alertname={} labels={} statistic={} value={} threshold={} summary={}", event,
               t.alertname, LogValue(labels_json), t.last.statistic, t.last.value, t.last.threshold,
               LogValue(t.last.summary));
  UpdateGauge();
  if (options_.notifiers.empty() || (to != State::kFiring && !resolved) || !owned) return;
  const AlertNotification n = Notification(fingerprint, t);
  for (AlertNotifier* notifier : options_.notifiers) notifier->Enqueue(n);
}

void AlertTracker::UpdateGauge() {
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

size_t AlertTracker::firing() const {
  MutexLock lock(mu_);
  size_t n = 0;
  for (const auto& [fp, t] : alerts_) n += t.state == State::kFiring;
  return n;
}

AlertTracker::Snapshot AlertTracker::Get(int recent_limit) const {
  Snapshot out;
  // The events and the states under one lock (transitions store their event
  // under it too): otherwise a reader sees an alert that is neither firing
  // nor among the resolved.
  MutexLock lock(mu_);
  auto events = store_.AlertEvents(recent_limit);
  if (events.ok()) out.recent = std::move(events).value();
  for (const auto& [fp, t] : alerts_) {
    if (t.state == State::kInactive) continue;
    (t.state == State::kFiring ? out.firing : out.pending)
        .push_back({t.alertname, t.labels, fp, t.since_ms, t.bad_streak, t.last});
  }
  return out;
}

}  // namespace vigil
