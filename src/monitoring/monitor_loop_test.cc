#include "monitoring/monitor_loop.h"

#include <gtest/gtest.h>

#include <random>

#include "monitoring/test_util.h"
#include "support/fake_leadership.h"

namespace vigil {
namespace {

using testing::FakeLeadership;

constexpr int64_t kT0 = 1'700'000'040'000;  // a whole minute
constexpr int64_t kWindowMs = 1000;         // health window

// The served world, set by each test.
class FakeWorld final : public MonitoredWorld {
 public:
  std::vector<WatchedVersion> versions;
  std::vector<WatchedEndpoint> endpoints;
  std::vector<WatchedVersion> Versions() const override { return versions; }
  std::vector<WatchedEndpoint> Endpoints() const override { return endpoints; }
};

// Joined predictions of one endpoint, as a store would return them.
class FakeFeedback final : public FeedbackStore {
 public:
  std::vector<JoinedPrediction> joined;
  Status WriteFeedback(const std::vector<FeedbackRecord>&) override { return Status::Ok(); }
  StatusOr<std::vector<std::string>> KnownPredictions(const std::vector<std::string>&) override {
    return std::vector<std::string>{};
  }
  StatusOr<std::vector<JoinedPrediction>> Joined(const std::string&, int64_t since_ms) override {
    std::vector<JoinedPrediction> out;
    for (const auto& j : joined) {
      if (j.time_ms >= since_ms) out.push_back(j);
    }
    return out;
  }
  StatusOr<JoinCursor> JoinCursorNow() override { return JoinCursor{}; }
  StatusOr<std::vector<JoinedChange>> JoinedSince(JoinCursor&) override { return std::vector<JoinedChange>{}; }
  StatusOr<int64_t> ScanPredictions(const std::string&, int64_t, int64_t, int64_t, const PredictionVisitor&) override {
    return 0;
  }
  StatusOr<int64_t> ScanServed(const std::string&, int64_t, int64_t, int64_t, const ServedVisitor&) override {
    return 0;
  }
  StatusOr<int64_t> ScanSampledInputs(const std::string&, int64_t, int64_t, int64_t, const ServedVisitor&) override {
    return 0;
  }
  StatusOr<int64_t> ScanShadowPairs(const std::string&, const std::string&, int64_t, int64_t, int64_t,
                                    const ShadowVisitor&) override {
    return 0;
  }
};

struct Harness {
  FakeWorld world;
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  std::unique_ptr<AlertStore> alert_store = MemoryAlertStore();
  AlertTracker alerts{*alert_store, {}};
  std::unique_ptr<DriftStore> windows = MemoryDriftStore();
  FakeFeedback feedback_store;
  FeedbackJoin feedback{feedback_store};
  std::unique_ptr<MonitorLoop> loop;

  explicit Harness(bool with_feedback = false) {
    auto made = MonitorLoop::Create({.world = &world,
                                     .metrics = &metrics,
                                     .alerts = &alerts,
                                     .drift_store = windows.get(),
                                     .feedback = with_feedback ? &feedback : nullptr,
                                     .health_window = std::chrono::milliseconds(kWindowMs),
                                     .background = false});
    EXPECT_TRUE(made.ok()) << made.status().message();
    loop = std::move(made).value();
  }
  const AlertTracker::Active* Firing(const std::string& alertname, const std::string& label = "",
                                     const std::string& value = "") {
    snapshot = alerts.Get(100);
    for (const auto& a : snapshot.firing) {
      if (a.alertname != alertname) continue;
      if (label.empty() || (a.labels.count(label) && a.labels.at(label) == value)) return &a;
    }
    return nullptr;
  }
  AlertTracker::Snapshot snapshot;
};

MonitoringConfig OneWindowAlerts() {
  MonitoringConfig c;
  c.alert_after = 1;
  c.resolve_after = 1;
  c.features = {{"x", 0}, {"y", 1}};
  c.window_rows = 1000;
  c.min_window_rows = 100;
  return c;
}

using testing::Fp32;

// `rows` rows of two N(0,1) features, the second moved by `shift`; one output.
std::pair<Tensor, Tensor> Rows(std::mt19937& rng, int rows, float shift) {
  std::normal_distribution<float> n(0, 1);
  std::vector<float> in, out;
  for (int r = 0; r < rows; ++r) {
    in.push_back(n(rng));
    in.push_back(n(rng) + shift);
    out.push_back(0.5f);
  }
  return {Fp32(in, 2), Fp32(out, 1)};
}

TEST(MonitorLoop, ADriftedWindowIsStoredCountedAndAlertedUnderItsDatasetAlert) {
  Harness h;
  const MonitoringConfig config = OneWindowAlerts();
  auto monitor = std::make_shared<DriftMonitor>(config, 2, 1, "score");
  std::mt19937 rng(7);
  auto [ref_in, ref_out] = Rows(rng, 2000, 0);
  ReferenceRows reference;
  reference.rows = 2000;
  for (int64_t i = 0; i < ref_in.element_count(); ++i) reference.inputs.push_back(ref_in.as<float>()[i]);
  for (int64_t i = 0; i < ref_out.element_count(); ++i) reference.outputs.push_back(ref_out.as<float>()[i]);
  monitor->SetReference(reference, "reference.csv");
  h.world.versions = {{.hold = monitor,
                       .model = "churn",
                       .version = 2,
                       .monitor = monitor.get(),
                       .monitoring = &config,
                       .max_queue_size = 100}};

  h.loop->Round(kT0);  // nothing observed: no window
  EXPECT_TRUE(h.windows->DriftWindows("churn", 0, kT0 * 2, 10)->empty());

  auto [in, out] = Rows(rng, 1000, 2.0f);  // y moves by two standard deviations; fills the window
  monitor->Observe(in, out, 1000);
  h.loop->Round(kT0 + 10);
  auto stored = h.windows->DriftWindows("churn", 0, kT0 * 2, 10);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].version, 2);
  EXPECT_EQ((*stored)[0].rows, 1000);
  EXPECT_NE((*stored)[0].columns.find("\"name\":\"y\""), std::string::npos) << (*stored)[0].columns;

  const AlertTracker::Active* y = h.Firing("FeatureDrift", "feature", "y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->labels.at("group"), "DatasetDrift");  // listed under the dataset alert
  EXPECT_EQ(y->labels.at("version"), "2");
  EXPECT_NE(y->evidence.summary.find("feature 'y' of churn v2 drifted"), std::string::npos) << y->evidence.summary;
  EXPECT_EQ(h.Firing("FeatureDrift", "feature", "x"), nullptr);
  // One of two features drifted: the dataset alert (drift_share 0.5) fires, naming it.
  const AlertTracker::Active* dataset = h.Firing("DatasetDrift");
  ASSERT_NE(dataset, nullptr);
  EXPECT_EQ(dataset->labels.at("group"), "DatasetDrift");
  EXPECT_NE(dataset->evidence.summary.find("1 of 2 input features of churn v2 drifted (50%): y"), std::string::npos)
      << dataset->evidence.summary;

  const std::string exposed = h.registry.Expose();
  EXPECT_NE(exposed.find(R"(vigil_drift_windows_total{model="churn",version="2",result="drift"} 1)"),
            std::string::npos);
  EXPECT_NE(exposed.find(R"(vigil_drift_detected{model="churn",version="2",feature="y"} 1)"), std::string::npos);
}

TEST(MonitorLoop, HealthIsJudgedPerWindowAndAnUnloadedVersionIsForgotten) {
  Harness h;
  MonitoringConfig config = OneWindowAlerts();
  config.health.error_rate = 0.05;
  config.health.min_requests = 20;
  h.world.versions = {{.model = "churn", .version = 1, .monitoring = &config, .max_queue_size = 10, .queue_depth = 3}};
  const VersionMetrics vm = h.metrics.ForVersion("churn", "1");

  h.loop->Round(kT0);  // the window opens
  for (int i = 0; i < 80; ++i) vm.requests->Inc();
  for (int i = 0; i < 20; ++i) vm.Fail("backend");
  for (int i = 0; i < 50; ++i) vm.Fail("invalid_request");  // the clients' doing: not an error of the model
  h.loop->Round(kT0 + kWindowMs / 2);                       // samples the queue, window still open
  EXPECT_FALSE(h.loop->LastHealth("churn", 1).has_value());
  EXPECT_EQ(h.Firing("ErrorRateHigh"), nullptr);

  h.loop->Round(kT0 + kWindowMs);
  const auto health = h.loop->LastHealth("churn", 1);
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->requests, 100u);
  EXPECT_EQ(health->errors, 20u);
  EXPECT_DOUBLE_EQ(health->error_rate, 0.2);
  EXPECT_EQ(health->peak_queue, 3);
  const AlertTracker::Active* errors = h.Firing("ErrorRateHigh", "model", "churn");
  ASSERT_NE(errors, nullptr);
  EXPECT_NE(errors->evidence.summary.find("20 of 100 requests to churn v1 failed"), std::string::npos)
      << errors->evidence.summary;

  // A calm window resolves it (resolve_after: 1).
  for (int i = 0; i < 100; ++i) vm.requests->Inc();
  h.loop->Round(kT0 + 2 * kWindowMs);
  EXPECT_EQ(h.Firing("ErrorRateHigh"), nullptr);

  h.world.versions.clear();  // unloaded
  h.loop->Round(kT0 + 3 * kWindowMs);
  EXPECT_FALSE(h.loop->LastHealth("churn", 1).has_value());
}

TEST(MonitorLoop, EndpointGuardrailsJudgeEachVariantAndStartAgainWithANewSpec) {
  Harness h;
  WatchedEndpoint e;
  e.endpoint = "churn";
  e.generation = std::make_shared<int>(1);
  e.health = HealthLimits{.error_rate = 0.01, .min_requests = 10};
  e.alert_after = 1;
  e.resolve_after = 1;
  e.arms = {{.name = "prod", .model = "churn", .version = 1}, {.name = "v2", .model = "churn", .version = 2}};
  h.world.endpoints = {e};
  h.loop->Round(kT0);

  // The candidate fails 5 of 100; production none of 100.
  h.world.endpoints[0].arms[0].requests = 100;
  h.world.endpoints[0].arms[1].requests = 100;
  h.world.endpoints[0].arms[1].errors = 5;
  h.loop->Round(kT0 + kWindowMs);
  EXPECT_NE(h.Firing("ErrorRateHigh", "variant", "v2"), nullptr);
  EXPECT_EQ(h.Firing("ErrorRateHigh", "variant", "prod"), nullptr);

  // A new spec: its counters start from zero, and the first round only
  // opens its window (no verdict from the old spec's counts).
  h.world.endpoints[0].generation = std::make_shared<int>(2);
  for (auto& arm : h.world.endpoints[0].arms) arm.requests = arm.errors = 0;
  h.loop->Round(kT0 + 2 * kWindowMs);
  EXPECT_NE(h.Firing("ErrorRateHigh", "variant", "v2"), nullptr);  // unchanged until a window closes
  h.world.endpoints[0].arms[1].requests = 50;
  h.loop->Round(kT0 + 3 * kWindowMs);
  EXPECT_EQ(h.Firing("ErrorRateHigh", "variant", "v2"), nullptr);
}

JoinedPrediction Joined(const std::string& variant, int64_t time_ms, bool correct, int64_t row) {
  JoinedPrediction j;
  j.variant = variant;
  j.outputs = "[0.2,0.8]";  // class 1
  j.label = correct ? 1 : 0;
  j.time_ms = time_ms;
  j.feedback_time_ms = time_ms + 1000;
  j.prediction_row = row;
  return j;
}

TEST(MonitorLoop, QualityGaugesAndRulesComeFromJoinedFeedback) {
  Harness h(/*with_feedback=*/true);
  MonitoringConfig config = OneWindowAlerts();
  h.world.versions = {{.model = "churn", .version = 1, .monitoring = &config},
                      {.model = "churn", .version = 2, .monitoring = &config}};
  WatchedEndpoint e;
  e.endpoint = "churn";
  e.generation = std::make_shared<int>(1);
  e.since_ms = kT0;
  e.quality = QualityRule{.metric = "accuracy", .below = 0.8, .window_s = 60, .min_labels = 10};
  e.alert_after = 1;
  e.resolve_after = 1;
  e.arms = {{.name = "prod", .model = "churn", .version = 1},
            {.name = "v2", .model = "churn", .version = 2},
            {.name = "shadow", .model = "churn", .version = 2, .shadow = true}};
  h.world.endpoints = {e};
  // In the first minute: prod right 18 of 20, v2 right 10 of 20.
  int64_t row = 0;
  for (int i = 0; i < 20; ++i) {
    h.feedback_store.joined.push_back(Joined("prod", kT0 + 1000 + i, i >= 2, ++row));
    h.feedback_store.joined.push_back(Joined("v2", kT0 + 1000 + i, i % 2 == 0, ++row));
  }

  h.loop->Round(kT0 + 1000);  // the minute is still open: no verdict yet
  EXPECT_EQ(h.Firing("QualityRegression"), nullptr);
  const std::string exposed = h.registry.Expose();
  EXPECT_NE(exposed.find(R"(vigil_quality{endpoint="churn",variant="prod",metric="accuracy"} 0.9)"), std::string::npos)
      << exposed;
  EXPECT_NE(exposed.find(R"(vigil_quality{endpoint="churn",variant="v2",metric="accuracy"} 0.5)"), std::string::npos);

  // Two minutes on, that minute is judged (a window-length later, so late labels count).
  h.loop->Round(kT0 + 2 * 60'000);
  const AlertTracker::Active* v2 = h.Firing("QualityRegression", "variant", "v2");
  ASSERT_NE(v2, nullptr);
  EXPECT_NE(v2->evidence.summary.find("accuracy of churn variant v2 is 0.500 over 20 labels"), std::string::npos)
      << v2->evidence.summary;
  EXPECT_EQ(h.Firing("QualityRegression", "variant", "prod"), nullptr);
  EXPECT_EQ(h.Firing("QualityRegression", "variant", "shadow"), nullptr);  // shadows answer no one
}

TEST(MonitorLoop, ADegradedEndpointFiresDegradedAndEachRungChangeIsTold) {
  FakeWorld world;
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  std::unique_ptr<AlertStore> alert_store = MemoryAlertStore();
  AlertTracker alerts{*alert_store, {}};
  std::unique_ptr<DriftStore> windows = MemoryDriftStore();
  std::vector<std::string> told;
  auto made = MonitorLoop::Create(
      {.world = &world,
       .metrics = &metrics,
       .alerts = &alerts,
       .drift_store = windows.get(),
       .background = false,
       .on_rung_change = [&](const std::string& endpoint, const WatchedEndpoint::Overload& from,
                             const WatchedEndpoint::Overload& to) {
         told.push_back(endpoint + " " + std::to_string(from.rung) + "->" + std::to_string(to.rung));
       }});
  ASSERT_TRUE(made.ok()) << made.status().message();
  WatchedEndpoint e;
  e.endpoint = "ep";
  e.overload = WatchedEndpoint::Overload{0, "full", 1000};
  WatchedEndpoint plain;
  plain.endpoint = "no_ladder";
  world.endpoints = {e, plain};
  auto firing = [&] {
    for (const auto& a : alerts.Get(100).firing) {
      if (a.alertname == "Degraded") return a.labels.at("endpoint") + ": " + a.evidence.summary;
    }
    return std::string();
  };
  (*made)->Round(2000);
  EXPECT_EQ(firing(), "");
  world.endpoints[0].overload = WatchedEndpoint::Overload{2, "fallback", 2500};
  (*made)->Round(3000);
  EXPECT_EQ(firing(), "ep: endpoint ep is degraded: rung 2 (fallback) since 500 ms ago");
  EXPECT_NE(registry.Expose().find("vigil_endpoint_rung{endpoint=\"ep\"} 2"), std::string::npos);
  world.endpoints[0].overload = WatchedEndpoint::Overload{0, "full", 3500};
  (*made)->Round(4000);
  EXPECT_EQ(firing(), "");
  EXPECT_EQ(told, (std::vector<std::string>{"ep 0->2", "ep 2->0"}));
  EXPECT_EQ(registry.Expose().find("no_ladder"), std::string::npos);
}

// One replica of a cluster: its own world, metrics, alerts and monitor, the
// drift store shared.
struct Replica {
  FakeWorld world;
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  std::unique_ptr<AlertStore> alert_store = MemoryAlertStore();
  FakeLeadership leadership;
  AlertTracker alerts;
  std::shared_ptr<DriftMonitor> monitor;
  std::unique_ptr<MonitorLoop> loop;

  Replica(const std::string& name, int64_t epoch, DriftStore& windows, const MonitoringConfig& config,
          const ReferenceRows& reference)
      : leadership(epoch),
        alerts(*alert_store, {.notifiers = {}, .leadership = &leadership, .replica = name, .registry = nullptr}),
        monitor(std::make_shared<DriftMonitor>(config, 2, 1, "score")) {
    monitor->SetReference(reference, "reference.csv");
    world.versions = {{.hold = monitor,
                       .model = "churn",
                       .version = 2,
                       .monitor = monitor.get(),
                       .monitoring = &config,
                       .max_queue_size = 100}};
    auto made = MonitorLoop::Create({.world = &world,
                                     .metrics = &metrics,
                                     .alerts = &alerts,
                                     .drift_store = &windows,
                                     .health_window = std::chrono::milliseconds(kWindowMs),
                                     .background = false,
                                     .replica = name,
                                     .leadership = &leadership,
                                     .merge_every = std::chrono::milliseconds(1000),
                                     .merge_grace = std::chrono::milliseconds(2000)});
    EXPECT_TRUE(made.ok()) << made.status().message();
    loop = std::move(made).value();
  }
  bool Firing(const std::string& alertname) {
    for (const auto& a : alerts.Get(0).firing) {
      if (a.alertname == alertname) return true;
    }
    return false;
  }
  size_t Stored(const std::string& alertname) {
    size_t n = 0;
    auto events = alert_store->AlertEvents(1000);
    EXPECT_TRUE(events.ok());
    for (const auto& e : events.value()) n += e.alertname == alertname;
    return n;
  }
};

ReferenceRows ReferenceOf(std::mt19937& rng, int rows) {
  auto [in, out] = Rows(rng, rows, 0);
  ReferenceRows reference;
  reference.rows = rows;
  for (int64_t i = 0; i < in.element_count(); ++i) reference.inputs.push_back(in.as<float>()[i]);
  for (int64_t i = 0; i < out.element_count(); ++i) reference.outputs.push_back(out.as<float>()[i]);
  return reference;
}

TEST(MonitorLoopReplicas, TheLeaderTestsTheSumOfEveryReplicasWindowAndEveryReplicaPublishesIt) {
  MonitoringConfig config = OneWindowAlerts();
  config.window_seconds = 60;
  config.min_window_rows = 500;  // more than either replica sees in a window
  config.window_rows = 1'000'000;
  std::mt19937 rng(11);
  const ReferenceRows reference = ReferenceOf(rng, 2000);
  std::unique_ptr<DriftStore> windows = MemoryDriftStore(1000);
  Replica a("a:8000", 1, *windows, config, reference);  // leads
  Replica b("b:8000", 0, *windows, config, reference);
  // What one machine would have seen: all the rows in one monitor.
  DriftMonitor whole(config, 2, 1, "score");
  whole.SetReference(reference, "reference.csv");
  for (Replica* r : {&a, &b}) r->loop->Round(kT0);
  whole.CloseIfDue(kT0);
  for (Replica* r : {&a, &b}) {
    auto [in, out] = Rows(rng, 300, 0.5f);  // y moves by half a standard deviation
    r->monitor->Observe(in, out, 300);
    whole.Observe(in, out, 300);
  }
  // Each replica's window closes on time with its 300 rows, unpublished.
  for (Replica* r : {&a, &b}) r->loop->Round(kT0 + 61'000);
  auto parts = windows->ReplicaDriftWindows("churn", 2, 0, kT0 + 61'000, 10);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].rows + (*parts)[1].rows, 600);
  EXPECT_TRUE(windows->DriftWindows("churn", 0, kT0 * 2, 10)->empty());  // within the grace: not merged yet
  EXPECT_FALSE(a.Firing("DatasetDrift"));

  // Past the grace, the leader merges them; the follower does not merge.
  b.loop->Round(kT0 + 64'000);
  EXPECT_TRUE(windows->DriftWindows("churn", 0, kT0 * 2, 10)->empty());
  a.loop->Round(kT0 + 64'000);
  auto merged = windows->DriftWindows("churn", 0, kT0 * 2, 10);
  ASSERT_TRUE(merged.ok());
  ASSERT_EQ(merged->size(), 1u);
  const StoredDriftWindow& m = (*merged)[0];
  EXPECT_EQ(m.rows, 600);
  EXPECT_EQ(m.start_ms, kT0);
  EXPECT_EQ(m.end_ms, kT0 + 62'000);
  EXPECT_EQ(m.replica, "");
  EXPECT_EQ(m.epoch, 1);
  EXPECT_TRUE(m.dataset_drift);
  // The same verdict and statistics as one monitor that saw every row.
  auto all = whole.CloseIfDue(kT0 + 61'000);
  ASSERT_TRUE(all.has_value());
  auto columns = ParseDriftColumns(m.columns);
  ASSERT_TRUE(columns.ok());
  ASSERT_EQ(columns->size(), all->columns.size());
  for (size_t c = 0; c < all->columns.size(); ++c) {
    EXPECT_EQ((*columns)[c].rows, all->columns[c].rows);
    EXPECT_NEAR((*columns)[c].psi, all->columns[c].psi, 1e-12) << all->columns[c].name;
    EXPECT_NEAR((*columns)[c].wasserstein, all->columns[c].wasserstein, 1e-12) << all->columns[c].name;
    EXPECT_EQ((*columns)[c].drifted, all->columns[c].drifted) << all->columns[c].name;
  }

  // Every replica publishes the merged window at its next read: metrics and
  // alert state the same everywhere; only the leader stores and notifies.
  for (Replica* r : {&a, &b}) r->loop->Round(kT0 + 65'500);
  for (Replica* r : {&a, &b}) {
    EXPECT_TRUE(r->Firing("DatasetDrift"));
    EXPECT_NE(r->registry.Expose().find("vigil_drift_windows_total{model=\"churn\",version=\"2\",result=\"drift\"} 1"),
              std::string::npos);
  }
  EXPECT_EQ(a.Stored("DatasetDrift"), 2u);  // pending, firing
  EXPECT_EQ(b.Stored("DatasetDrift"), 0u);

  // The leader dies; b takes over (a new epoch) and merges from where the
  // last merged window ended, without merging it again.
  a.leadership.epoch = 0;
  b.leadership.epoch = 2;
  for (Replica* r : {&a, &b}) {
    auto [in, out] = Rows(rng, 400, 0.0f);
    r->monitor->Observe(in, out, 400);
  }
  for (Replica* r : {&a, &b}) r->loop->Round(kT0 + 125'000);
  for (Replica* r : {&a, &b}) r->loop->Round(kT0 + 128'000);
  merged = windows->DriftWindows("churn", 0, kT0 * 2, 10);
  ASSERT_EQ(merged->size(), 2u);
  EXPECT_EQ((*merged)[1].start_ms, kT0 + 62'000);
  EXPECT_EQ((*merged)[1].rows, 800);
  EXPECT_EQ((*merged)[1].epoch, 2);
  EXPECT_FALSE((*merged)[1].dataset_drift);
  for (Replica* r : {&a, &b}) r->loop->Round(kT0 + 129'500);
  EXPECT_FALSE(b.Firing("DatasetDrift"));   // resolve_after 1
  EXPECT_EQ(b.Stored("DatasetDrift"), 1u);  // resolved, stored by the new leader
  EXPECT_EQ(a.Stored("DatasetDrift"), 2u);
}

TEST(MonitorLoopReplicas, WindowsOnAnotherReferenceAreLeftOutAndServingHealthIsEachReplicasOwn) {
  MonitoringConfig config = OneWindowAlerts();
  config.window_seconds = 60;
  config.min_window_rows = 100;
  std::mt19937 rng(5);
  std::unique_ptr<DriftStore> windows = MemoryDriftStore(1000);
  Replica a("a:8000", 1, *windows, config, ReferenceOf(rng, 2000));
  Replica b("b:8000", 0, *windows, config, ReferenceOf(rng, 1500));  // another reference: other bins
  EXPECT_NE(a.monitor->reference()->key, b.monitor->reference()->key);
  for (Replica* r : {&a, &b}) r->loop->Round(kT0);
  for (Replica* r : {&a, &b}) {
    auto [in, out] = Rows(rng, 200, 0.0f);
    r->monitor->Observe(in, out, 200);
  }
  for (Replica* r : {&a, &b}) r->loop->Round(kT0 + 61'000);
  a.loop->Round(kT0 + 64'000);
  auto merged = windows->DriftWindows("churn", 0, kT0 * 2, 10);
  ASSERT_EQ(merged->size(), 1u);
  EXPECT_EQ((*merged)[0].rows, 200);  // a's own; b's counts are on other bins

  // Serving health: a follower's own alert carries its name, and it stores it itself.
  EXPECT_TRUE(b.alerts.Owns({{"model", "churn"}, {"replica", "b:8000"}}));
  EXPECT_FALSE(b.alerts.Owns({{"model", "churn"}, {"replica", "a:8000"}}));
  EXPECT_FALSE(b.alerts.Owns({{"model", "churn"}}));
  EXPECT_TRUE(a.alerts.Owns({{"model", "churn"}}));
  b.alerts.Observe("LatencyHigh", {{"model", "churn"}, {"replica", "b:8000"}}, true, {}, 1, 1, kT0);
  EXPECT_EQ(b.Stored("LatencyHigh"), 2u);
}

TEST(MonitorLoop, CreateNamesWhatIsMissing) {
  FakeWorld world;
  auto made = MonitorLoop::Create({.world = &world});
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("needs a world, metrics"), std::string::npos);
}

}  // namespace
}  // namespace vigil
