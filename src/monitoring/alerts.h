// Alerts: rules observed once per window (drift, numerical health, quality,
// latency) move each alert through pending -> firing -> resolved with
// hysteresis (K violating windows to fire, K calm ones to resolve).
//
// AlertTracker is the state machine. Every transition is stored with its
// evidence (statistic, value, threshold, window) before anything else
// happens; firing and resolved alerts are then handed to an AlertNotifier.
//
// AlertNotifier delivers them through an injected Poster (the server's posts
// to --alert-webhook in Alertmanager's webhook format) on its own thread,
// retrying with backoff. A dead receiver never blocks the tracker's caller
// and never loses the alert from the store.
//
// Both are thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/periodic_thread.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "monitoring/metrics.h"
#include "store/store.h"

namespace vigil {

using AlertLabels = std::map<std::string, std::string>;

// What a rule saw in one window.
struct AlertEvidence {
  std::string statistic;  // e.g. "psi", "nonfinite_values"
  double value = 0;
  double threshold = 0;
  int64_t window_start_ms = 0, window_end_ms = 0;
  std::string summary;  // one line for people
};

// One alert starting to fire, or resolving: what a notifier delivers.
struct AlertNotification {
  std::string alertname;
  AlertLabels labels;  // without alertname
  std::string fingerprint;
  bool resolved = false;
  int64_t starts_ms = 0;  // when it started firing
  int64_t ends_ms = 0;    // when it resolved; 0 while firing
  AlertEvidence evidence;
};

class AlertNotifier {
 public:
  struct Options {
    int max_attempts = 8;
    std::chrono::milliseconds first_backoff{500};  // doubles per attempt, at most 60 s
    size_t queue_limit = 1000;                     // pending notifications; the oldest is dropped (and counted)
    MetricsRegistry* registry = nullptr;           // vigil_alert_notifications_total; may be null
    std::string receiver = "webhook";              // its label there: webhook, alertmanager
  };
  // Delivers one notification; an error is retried.
  using Poster = std::function<Status(const AlertNotification&)>;

  AlertNotifier(Poster poster, Options options);
  ~AlertNotifier();  // stops; what it has not delivered stays in the store

  // Queues `n` for delivery and returns at once.
  void Enqueue(AlertNotification n);

 private:
  void Loop();
  void Count(const char* result);

  Poster poster_;
  Options options_;
  CounterFamily* results_ = nullptr;
  Mutex mu_;
  CondVar wake_;
  std::deque<AlertNotification> outbox_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class AlertTracker {
 public:
  struct Options {
    std::vector<AlertNotifier*> notifiers;  // each is told of every notification; none: no notifications
    // Replicas sharing a store: every replica tracks every alert it
    // observes (so a new leader goes on where the last one stopped), but
    // only the leader stores and notifies transitions, except of alerts
    // labelled `replica` = this replica's name (its own serving health),
    // which it stores and notifies itself. Null: this one does everything.
    const Leadership* leadership = nullptr;
    std::string replica{};
    MetricsRegistry* registry = nullptr;  // vigil_alerts_firing; may be null
  };
  // `store` keeps every transition (MemoryAlertStore without --data-dir);
  // alerts firing or pending in it are restored.
  AlertTracker(AlertStore& store, Options options);

  // One window's outcome of rule `alertname` for `labels`.
  void Observe(const std::string& alertname, const AlertLabels& labels, bool violated, const AlertEvidence& evidence,
               int64_t fire_after, int64_t resolve_after, int64_t now_ms) EXCLUDES(mu_);

  struct Active {
    std::string alertname;
    AlertLabels labels;
    std::string fingerprint;
    int64_t since_ms = 0;
    int64_t windows_in_a_row = 0;
    AlertEvidence evidence;
  };
  struct Snapshot {
    std::vector<Active> firing, pending;
    std::vector<AlertEvent> recent;  // transitions, newest first
  };
  // What GET /v1/alerts shows.
  Snapshot Get(int recent_limit) const EXCLUDES(mu_);
  size_t firing() const EXCLUDES(mu_);
  // Notifies again, to every notifier, every firing alert this replica owns
  // and every one that resolved in the last `resolved_within_ms` (each with
  // the Idempotency-Key of its first notification): what a new leader does,
  // so a transition the last leader decided but died before sending is not
  // lost. Returns how many.
  size_t Renotify(int64_t now_ms, int64_t resolved_within_ms) const EXCLUDES(mu_);
  // The notifications of the alerts this replica owns that are firing, and of
  // those that resolved at or after `resolved_since_ms` (what resends send).
  std::vector<AlertNotification> Notifications(int64_t resolved_since_ms) const EXCLUDES(mu_);

  // Whether this replica stores and notifies the transitions of an alert
  // with these labels (it leads, there is no leadership, or the alert is
  // about this replica).
  bool Owns(const AlertLabels& labels) const {
    if (!options_.leadership || options_.leadership->IsLeader()) return true;
    auto it = labels.find("replica");
    return !options_.replica.empty() && it != labels.end() && it->second == options_.replica;
  }

 private:
  enum class State { kInactive, kPending, kFiring };
  struct Tracked {
    std::string alertname;
    AlertLabels labels;
    State state = State::kInactive;
    int64_t bad_streak = 0, good_streak = 0;
    int64_t since_ms = 0;  // when the current state began
    AlertEvidence last;
    int64_t resolved_from_ms = 0;  // after a resolution: when it had started firing (the notification's start)
  };
  void Transition(const std::string& fingerprint, Tracked& t, State to, const char* event, int64_t now_ms)
      REQUIRES(mu_);
  void UpdateGauge() REQUIRES(mu_);
  // `t`'s notification in the state it is in: firing, or resolved (inactive after firing).
  static AlertNotification Notification(const std::string& fingerprint, const Tracked& t);

  AlertStore& store_;
  Options options_;
  GaugeFamily* firing_gauge_ = nullptr;

  mutable Mutex mu_;
  std::map<std::string, Tracked> alerts_ GUARDED_BY(mu_);      // by fingerprint
  std::map<std::string, int> firing_by_name_ GUARDED_BY(mu_);  // for the gauge
};

// Sends every firing alert to `notifier` again every `interval`, as
// Prometheus resends to Alertmanager: an alert there ends by itself when its
// endsAt passes without a resend (the sender died), so a live one is renewed.
class AlertResender {
 public:
  AlertResender(const AlertTracker& tracker, AlertNotifier& notifier, std::chrono::milliseconds interval);

  // What one resend sends (the firing alerts now); the thread calls it every interval.
  void ResendNow();

 private:
  const AlertTracker& tracker_;
  AlertNotifier& notifier_;
  PeriodicThread thread_;  // last: stopped first
};

// A stable fingerprint of an alert's name and labels (16 hex digits).
std::string AlertFingerprint(const std::string& alertname, const AlertLabels& labels);
// Labels as a JSON object (how the store keeps them), and back.
std::string AlertLabelsJson(const AlertLabels& labels);
AlertLabels ParseAlertLabels(const std::string& json);

}  // namespace vigil
