#include "monitoring/alerts.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "core/eventually.h"
#include "support/fake_leadership.h"

namespace vigil {
namespace {

using testing::FakeLeadership;

namespace fs = std::filesystem;

// Records what would be posted; fails the first `failures` attempts.
struct FakeReceiver {
  Mutex mu;
  std::vector<AlertNotification> received GUARDED_BY(mu);
  std::atomic<int> attempts{0};
  int failures = 0;
  AlertNotifier::Poster poster() {
    return [this](const AlertNotification& n) -> Status {
      if (attempts.fetch_add(1) < failures) return Unavailable("connection refused");
      MutexLock lock(mu);
      received.push_back(n);
      return Status::Ok();
    };
  }
  std::vector<AlertNotification> Received() {
    MutexLock lock(mu);
    return received;
  }
  bool WaitFor(size_t n) {
    return Eventually([&] { return Received().size() >= n; }, std::chrono::seconds(5));
  }
};

AlertEvidence Evidence(double value, int64_t end) { return {"psi", value, 0.25, end - 100, end, "feature x drifted"}; }

fs::path FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("vigil_alerts_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

TEST(AlertTracker, FiresAfterKWindowsResolvesAfterKCalmOnesAndStoresEveryStep) {
  const fs::path dir = FreshDir("states");
  auto store = OpenSqliteStore(dir.string());
  ASSERT_TRUE(store.ok());
  FakeReceiver hook;
  AlertNotifier notifier(hook.poster(), {});
  AlertTracker alerts(**store, {.notifiers = {&notifier}});
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
  EXPECT_EQ(ParseAlertLabels((*events)[0].labels), labels);

  // Firing, then resolved, with the firing time kept as the start.
  ASSERT_TRUE(hook.WaitFor(2));
  const auto sent = hook.Received();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_FALSE(sent[0].resolved);
  EXPECT_EQ(sent[0].alertname, "FeatureDrift");
  EXPECT_EQ(sent[0].labels, labels);
  EXPECT_EQ(sent[0].fingerprint, AlertFingerprint("FeatureDrift", labels));
  EXPECT_EQ(sent[0].starts_ms, 400);
  EXPECT_EQ(sent[0].ends_ms, 0);
  EXPECT_EQ(sent[0].evidence.summary, "feature x drifted");
  EXPECT_TRUE(sent[1].resolved);
  EXPECT_EQ(sent[1].starts_ms, 400);
  EXPECT_EQ(sent[1].ends_ms, 600);

  const auto api = alerts.Get(10);
  EXPECT_EQ(api.firing.size(), 0u);
  ASSERT_EQ(api.recent.size(), 3u);
  EXPECT_EQ(api.recent[0].state, "resolved");
  fs::remove_all(dir);
}

TEST(AlertTracker, AFollowerTracksButANewLeaderSendsWhatIsFiringWithTheSameKey) {
  FakeReceiver hook;
  AlertNotifier notifier(hook.poster(), {});
  std::unique_ptr<AlertStore> store = MemoryAlertStore();
  FakeLeadership leadership;
  AlertTracker alerts(*store,
                      {.notifiers = {&notifier}, .leadership = &leadership, .replica = "b", .registry = nullptr});
  const AlertLabels drift{{"model", "m"}, {"version", "1"}, {"feature", "x"}};
  alerts.Observe("FeatureDrift", drift, true, Evidence(0.4, 200), 1, 1, 200);  // fires: tracked, not sent
  alerts.Observe("LatencyHigh", {{"model", "m"}, {"replica", "b"}}, true, Evidence(9, 200), 1, 1, 200);  // its own
  ASSERT_EQ(alerts.firing(), 2u);
  ASSERT_TRUE(hook.WaitFor(1));
  EXPECT_EQ(hook.Received().size(), 1u) << "a follower sends only its own alerts";
  EXPECT_EQ(hook.Received()[0].alertname, "LatencyHigh");
  EXPECT_EQ(store->AlertEvents(10)->size(), 2u) << "its own: pending and firing; the drift alert is the leader's";
  const AlertLabels drift_y{{"model", "m"}, {"version", "1"}, {"feature", "y"}};
  alerts.Observe("FeatureDrift", drift_y, true, Evidence(0.4, 200), 1, 1, 200);
  alerts.Observe("FeatureDrift", drift_y, false, Evidence(0.1, 300), 1, 1, 300);  // resolved, unsent
  EXPECT_EQ(alerts.Renotify(400, 60'000), 1u) << "a follower: its own";
  leadership.epoch = 2;  // elected
  EXPECT_EQ(alerts.Renotify(400, 60'000), 3u);
  EXPECT_EQ(alerts.Renotify(400'000, 60'000), 2u) << "an old resolution is not sent again";
  ASSERT_TRUE(hook.WaitFor(7));
  const auto sent = hook.Received();
  ASSERT_EQ(sent.size(), 7u);
  int x = 0, y = 0;
  for (const auto& n : sent) {
    if (n.alertname != "FeatureDrift") continue;
    EXPECT_EQ(n.starts_ms, 200) << "the firing time: the same key as the first notification";
    if (n.labels.at("feature") == "x") {
      ++x;
      EXPECT_FALSE(n.resolved);
    } else {
      ++y;
      EXPECT_TRUE(n.resolved);
      EXPECT_EQ(n.ends_ms, 300);
    }
  }
  EXPECT_EQ(x, 2);
  EXPECT_EQ(y, 1);
}

TEST(AlertTracker, APendingAlertThatCalmsDownNeverFires) {
  FakeReceiver hook;
  AlertNotifier notifier(hook.poster(), {});
  auto memory = MemoryAlertStore();
  AlertTracker alerts(*memory, {.notifiers = {&notifier}});
  const AlertLabels labels{{"model", "m"}};
  alerts.Observe("DatasetDrift", labels, true, Evidence(0.6, 100), 2, 2, 100);
  alerts.Observe("DatasetDrift", labels, false, Evidence(0.1, 200), 2, 2, 200);
  alerts.Observe("DatasetDrift", labels, true, Evidence(0.6, 300), 2, 2, 300);
  EXPECT_EQ(alerts.firing(), 0u);  // the streak restarted
  const auto api = alerts.Get(10);
  EXPECT_EQ(api.pending.size(), 1u);
  ASSERT_EQ(api.recent.size(), 3u);
  EXPECT_EQ(api.recent[1].state, "inactive");
  // Nothing was handed to the notifier: a marker alert sent after these
  // observations is the first thing the receiver gets.
  alerts.Observe("Marker", {}, true, Evidence(1, 400), 1, 1, 400);
  ASSERT_TRUE(hook.WaitFor(1));
  EXPECT_EQ(hook.attempts.load(), 1);
  EXPECT_EQ(hook.Received()[0].alertname, "Marker");
}

TEST(AlertTracker, ADeadReceiverIsRetriedWithBackoffAndNeverBlocksOrLosesTheAlert) {
  const fs::path dir = FreshDir("retry");
  auto store = OpenSqliteStore(dir.string());
  ASSERT_TRUE(store.ok());
  FakeReceiver hook;
  hook.failures = 3;
  AlertNotifier notifier(hook.poster(), {.first_backoff = std::chrono::milliseconds(10)});
  AlertTracker alerts(**store, {.notifiers = {&notifier}});
  const auto start = std::chrono::steady_clock::now();
  alerts.Observe("NonFiniteValues", {{"model", "m"}}, true, {"nonfinite_values", 4, 0, 0, 100, "4 NaN"}, 1, 3, 100);
  // The caller never waits for the receiver (its retries alone take 70 ms).
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  EXPECT_EQ((*store)->AlertEvents(10)->front().state, "firing");  // stored before any attempt
  ASSERT_TRUE(hook.WaitFor(1));
  EXPECT_EQ(hook.attempts.load(), 4);  // three failures, then delivered
  fs::remove_all(dir);
}

TEST(AlertTracker, FiringAlertsSurviveARestart) {
  const fs::path dir = FreshDir("restart");
  {
    auto store = OpenSqliteStore(dir.string());
    AlertTracker alerts(**store, {});
    alerts.Observe("FeatureDrift", {{"feature", "x"}}, true, Evidence(0.9, 100), 1, 2, 100);
    EXPECT_EQ(alerts.firing(), 1u);
  }
  auto store = OpenSqliteStore(dir.string());
  AlertTracker alerts(**store, {});
  EXPECT_EQ(alerts.firing(), 1u);
  alerts.Observe("FeatureDrift", {{"feature", "x"}}, false, Evidence(0.01, 200), 1, 1, 200);
  EXPECT_EQ(alerts.firing(), 0u);
  fs::remove_all(dir);
}

AlertNotification Named(const std::string& alertname) {
  AlertNotification n;
  n.alertname = alertname;
  n.fingerprint = alertname;
  return n;
}

TEST(AlertNotifier, AFullOutboxDropsTheOldestAndCountsIt) {
  MetricsRegistry registry;
  Mutex mu;
  CondVar opened;
  bool open = false;
  std::atomic<int> posted{0};
  std::atomic<bool> entered{false};
  std::vector<std::string> names;
  {
    AlertNotifier notifier(
        [&](const AlertNotification& n) {
          entered = true;
          MutexLock lock(mu);
          while (!open) opened.Wait(lock);
          names.push_back(n.alertname);
          ++posted;
          return Status::Ok();
        },
        {.queue_limit = 2, .registry = &registry});
    notifier.Enqueue(Named("a"));
    ASSERT_TRUE(Eventually([&] { return entered.load(); }));  // "a" is being posted
    notifier.Enqueue(Named("b"));
    notifier.Enqueue(Named("c"));
    notifier.Enqueue(Named("d"));
    {
      MutexLock lock(mu);
      open = true;
    }
    opened.NotifyAll();
    ASSERT_TRUE(Eventually([&] { return posted.load() >= 3; }));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"a", "c", "d"}));  // b went, and a (in flight) was delivered once
  EXPECT_NE(registry.Expose().find("vigil_alert_notifications_total{receiver=\"webhook\",result=\"dropped\"} 2"), std::string::npos)
      << registry.Expose();
}

}  // namespace
}  // namespace vigil
