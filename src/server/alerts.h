// Alerts: rules observed once per window (drift, numerical health, ...)
// move each alert through pending -> firing -> resolved with hysteresis
// (K violating windows to fire, K calm ones to resolve). Every transition
// is stored with its evidence (statistic, value, threshold, window) before
// anything else happens; firing and resolved alerts are then sent to
// --alert-webhook in the Alertmanager webhook format by a background
// thread that retries with backoff. A dead webhook never blocks the caller
// and never loses the alert from the store.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "monitoring/serving_metrics.h"
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

class AlertManager {
 public:
  struct Options {
    std::string webhook_url;   // http(s)://host:port/path; empty = no notifications
    std::string webhook_ca;    // CA bundle for an https:// webhook; empty = the system's
    std::string external_url;  // this server, for generatorURL / externalURL
    int max_attempts = 8;
    std::chrono::milliseconds first_backoff{500};  // doubles per attempt, at most 60 s
    size_t queue_limit = 1000;                     // pending notifications; the oldest is dropped (and counted)
  };
  // Sends `body` to the webhook; the default posts over HTTP.
  using Sender = std::function<Status(const std::string& url, const std::string& body)>;

  // `store` and `metrics` may be null. Firing alerts stored earlier are restored.
  AlertManager(Store* store, ServingMetrics* metrics, Options options, Sender sender = nullptr);
  ~AlertManager();  // stops the sender; what it has not sent stays in the store

  // This server's address, for the links in notifications.
  void SetExternalUrl(const std::string& url);
  // Checks that a webhook URL can be used: http://host[:port][/path].
  static Status ValidateWebhookUrl(const std::string& url);

  // One window's outcome of rule `alertname` for `labels`.
  void Observe(const std::string& alertname, const AlertLabels& labels, bool violated, const AlertEvidence& evidence,
               int64_t fire_after, int64_t resolve_after, int64_t now_ms);

  // GET /v1/alerts: {"firing": [...], "pending": [...], "recent": [transitions, newest first]}.
  std::string Json(int recent_limit) const;
  size_t firing() const;

 private:
  enum class State { kInactive, kPending, kFiring };
  struct Tracked {
    std::string alertname;
    AlertLabels labels;
    State state = State::kInactive;
    int64_t bad_streak = 0, good_streak = 0;
    int64_t since_ms = 0;  // when the current state began
    AlertEvidence last;
  };
  void Transition(Tracked& t, State to, const char* event, int64_t now_ms);  // requires mu_
  void Notify(const Tracked& t, bool resolved, int64_t now_ms);              // requires mu_
  void SendLoop();
  void UpdateGauge();  // requires mu_

  Store* store_;
  Options options_;
  Sender sender_;
  GaugeFamily* firing_gauge_ = nullptr;
  CounterFamily* notifications_ = nullptr;

  mutable std::mutex mu_;
  std::map<std::string, Tracked> alerts_;      // by fingerprint; guarded by mu_
  std::deque<AlertEvent> recent_;              // without a store; guarded by mu_
  std::deque<std::string> outbox_;             // webhook bodies; guarded by mu_
  std::map<std::string, int> firing_by_name_;  // guarded by mu_
  bool stopping_ = false;                      // guarded by mu_
  std::condition_variable wake_;
  std::thread sender_thread_;
};

// A stable fingerprint of an alert's name and labels (16 hex digits).
std::string AlertFingerprint(const std::string& alertname, const AlertLabels& labels);

}  // namespace vigil
