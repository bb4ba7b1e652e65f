#include "rollout/benchmark.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include <fmt/format.h>

#include "protocol/json.h"
#include "routing/deployment_spec.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

ModelCatalog AnyModel() {
  ModelCatalog c;
  c.check = [](const std::string&, int64_t) { return Status::Ok(); };
  c.is_model = [](const std::string&) { return false; };
  return c;
}

// A two-class model of one row [x, noise]: P(class 1) = σ(slope·x + bias).
struct FakeModel {
  double slope = 1, bias = 0;
  int64_t row_values = 2;
  std::string refuse{};  // Replayable's error, when set
  bool fail = false;     // every call fails
  std::vector<double> Answer(const std::vector<double>& row) const {
    const double p1 = 1 / (1 + std::exp(-(slope * row[0] + bias)));
    return {1 - p1, p1};
  }
};

class FakeWorld final : public BenchmarkWorld {
 public:
  explicit FakeWorld(const std::string& yaml) {
    auto spec = LoadDeploymentSpec("ep", yaml, AnyModel());
    EXPECT_TRUE(spec.ok()) << spec.status().message();
    spec_ = std::make_shared<const DeploymentSpec>(*spec);
  }
  std::map<std::pair<std::string, int64_t>, FakeModel> models;
  int busy_checks = 0;  // report busy this many more times
  int calls = 0;
  size_t largest_call = 0;

  std::vector<std::string> Endpoints() override { return {"ep"}; }
  std::shared_ptr<const DeploymentSpec> Spec(const std::string& endpoint) override {
    return endpoint == "ep" ? spec_ : nullptr;
  }
  std::vector<int64_t> ReadyVersions(const std::string& model) override {
    std::vector<int64_t> out;
    for (const auto& [key, _] : models) {
      if (key.first == model) out.push_back(key.second);
    }
    return out;
  }
  StatusOr<Replay> Replayable(const std::string& model, int64_t version) override {
    auto it = models.find({model, version});
    if (it == models.end()) return NotFound("no such model");
    if (!it->second.refuse.empty()) return FailedPrecondition(it->second.refuse);
    return Replay{.row_values = it->second.row_values, .max_rows_per_call = 16};
  }
  bool Busy(const std::string&, int64_t) override { return busy_checks-- > 0; }
  StatusOr<std::vector<std::vector<double>>> Run(const std::string& model, int64_t version,
                                                 const std::vector<const std::vector<double>*>& rows) override {
    ++calls;
    largest_call = std::max(largest_call, rows.size());
    const FakeModel& m = models.at({model, version});
    if (m.fail) return Internal("the model broke");
    std::vector<std::vector<double>> out;
    for (const auto* row : rows) out.push_back(m.Answer(*row));
    return out;
  }

 private:
  std::shared_ptr<const DeploymentSpec> spec_;
};

constexpr const char* kSpec =
    "production: {model: m, version: 1}\n"
    "candidates:\n"
    "  - {name: better, model: m2, version: 1, mode: shadow, share: 100}\n"
    "  - {name: same, model: m3, version: 1, mode: shadow, share: 100}\n";

// The world: y = 1 when x + noise > 0. Production ignores half the signal
// (slope 0.3 with a bias: often wrong), `better` follows x, `same` is a
// copy of production; m v2 is production's older, worse version.
FakeWorld MakeWorld() {
  FakeWorld w(kSpec);
  w.models[{"m", 1}] = {.slope = 0.3, .bias = 0.8};
  w.models[{"m", 2}] = {.slope = -0.5, .bias = 0};
  w.models[{"m2", 1}] = {.slope = 4, .bias = 0};
  w.models[{"m3", 1}] = {.slope = 0.3, .bias = 0.8};
  return w;
}

class BenchmarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vigil_benchmark_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto opened = OpenSqliteStore(dir_.string());
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  // `n` served requests at t = 1000 + i ms, logged with inputs [x, noise]
  // and production's answer; a label for the first `labelled`; keys
  // shared by `per_key` requests each.
  void Log(const FakeWorld& world, int n, int labelled, int per_key = 1, uint32_t seed = 7) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<PredictionRecord> records;
    std::vector<FeedbackRecord> feedback;
    const FakeModel& production = world.models.at({"m", 1});
    for (int i = 0; i < n; ++i) {
      const double x = normal(rng), noise = 0.3 * normal(rng);
      const std::vector<double> out = production.Answer({x, noise});
      const std::string id = "p" + std::to_string(i);
      records.push_back({id, 1000 + i, "ep", "production", "m", 1, 100, false, fmt::format("[{},{}]", out[0], out[1]),
                         fmt::format("[{},{}]", x, noise), fmt::format("{:08x}", i / per_key)});
      if (i < labelled) feedback.push_back({id, 5000 + i, x + noise > 0 ? 1.0 : 0.0, {}});
    }
    ASSERT_TRUE(store_->WritePredictions(records).ok());
    if (!feedback.empty()) {
      ASSERT_TRUE(store_->WriteFeedback(feedback).ok());
    }
  }
  BenchmarkResult Run(FakeWorld& world, BenchmarkOptions options = {}) {
    options.max_cpu = 1;
    BenchmarkRequest r{
        .endpoint = "ep", .from_ms = 0, .to_ms = 1'000'000, .metric = "", .max_rows = 0, .trigger = "test"};
    return RunBenchmark(world, *store_, r, options, clock_);
  }
  static const ContenderResult& Named(const BenchmarkResult& r, const std::string& name) {
    for (const auto& c : r.contenders) {
      if (c.name == name) return c;
    }
    ADD_FAILURE() << "no contender " << name;
    return r.contenders[0];
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  FakeWallClock clock_;
};

TEST_F(BenchmarkTest, RanksOnLabelsAndNamesTheContenderShownBetter) {
  FakeWorld world = MakeWorld();
  Log(world, 2000, 2000);
  const BenchmarkResult r = Run(world);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.metric, "accuracy");
  EXPECT_EQ(r.basis, "labels");
  EXPECT_EQ(r.replayable, 2000);
  EXPECT_EQ(r.replay_checked, 2000);
  EXPECT_LT(r.replay_max_abs_diff, 1e-6) << "the replay reproduces the log";
  ASSERT_EQ(r.contenders.size(), 4u) << "production, two candidates, m v2";
  EXPECT_EQ(r.contenders[0].name, "production");
  EXPECT_EQ(r.winner, "better");
  const ContenderResult& better = Named(r, "better");
  EXPECT_EQ(better.rank, 1);
  EXPECT_EQ(better.verdict, "better");
  EXPECT_GT(*better.value, 0.85);
  EXPECT_GT(better.difference_low, 0);
  EXPECT_LT(better.p, 1e-6);
  EXPECT_GT(better.disagreement_rate, 0.05);
  const ContenderResult& same = Named(r, "same");
  EXPECT_EQ(same.verdict, "no_difference");
  EXPECT_EQ(same.disagreements, 0);
  EXPECT_DOUBLE_EQ(*same.value, *r.contenders[0].value);
  const ContenderResult& old = Named(r, "v2");
  EXPECT_EQ(old.role, "version");
  EXPECT_EQ(old.verdict, "worse");
  EXPECT_LT(old.difference_high, 0);
  EXPECT_EQ(old.rank, 4);
  // The interval of each value holds it; production's accuracy is what its labels say.
  for (const auto& c : r.contenders) {
    EXPECT_LE(c.ci_low, *c.value);
    EXPECT_GE(c.ci_high, *c.value);
    EXPECT_EQ(c.rows, 2000);
  }
  EXPECT_NE(r.summary.find("'better' is shown better than production"), std::string::npos) << r.summary;
  // The stored form parses and carries the ranking.
  rapidjson::Document d;
  ASSERT_TRUE(ParseJson(BenchmarkResultJson(r), d).ok());
  EXPECT_STREQ(d["winner"].GetString(), "better");
  EXPECT_STREQ(d["contenders"][1]["name"].GetString(), "better");
  EXPECT_EQ(d["contenders"][1]["rank"].GetInt(), 1);
}

TEST_F(BenchmarkTest, WithoutLabelsItRanksByEstimatedAccuracyAndNamesNoWinner) {
  FakeWorld world = MakeWorld();
  Log(world, 500, 0);
  const BenchmarkResult r = Run(world);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.basis, "estimated_accuracy");
  EXPECT_EQ(r.winner, "") << "an estimate alone never names a winner";
  const ContenderResult& better = Named(r, "better");
  EXPECT_EQ(better.verdict, "not_enough_labels");
  ASSERT_TRUE(better.estimated_accuracy);
  EXPECT_EQ(better.estimated_rows, 500);
  EXPECT_EQ(better.rank, 1) << "the most confident model ranks first";
  EXPECT_GT(better.disagreement_rate, 0);
  EXPECT_NE(r.summary.find("estimated accuracy"), std::string::npos);
}

TEST_F(BenchmarkTest, UnitsAreRoutingKeysSoCorrelatedRequestsWidenTheInterval) {
  FakeWorld world = MakeWorld();
  Log(world, 2000, 2000, /*per_key=*/1);
  const BenchmarkResult one = Run(world);
  // The same requests logged again under keys of 50 requests each: the
  // interval is computed over 40 units, not 2000 requests.
  TearDown();
  SetUp();
  Log(world, 2000, 2000, /*per_key=*/50);
  const BenchmarkResult keyed = Run(world);
  EXPECT_EQ(Named(one, "better").labeled_units, 2000);
  EXPECT_EQ(Named(keyed, "better").labeled_units, 40);
  EXPECT_DOUBLE_EQ(*Named(one, "better").value, *Named(keyed, "better").value);
  EXPECT_GT(Named(keyed, "better").ci_high - Named(keyed, "better").ci_low,
            Named(one, "better").ci_high - Named(one, "better").ci_low);
}

TEST_F(BenchmarkTest, SaysWhyAContenderWasNotRunAndScoresTheRest) {
  FakeWorld world = MakeWorld();
  world.models[{"m3", 1}].refuse = "it takes 2 inputs and the prediction log keeps only the first";
  world.models[{"m", 2}].row_values = 3;
  Log(world, 300, 300);
  const BenchmarkResult r = Run(world);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(Named(r, "same").skipped, "it takes 2 inputs and the prediction log keeps only the first");
  EXPECT_EQ(Named(r, "same").verdict, "not_run");
  EXPECT_EQ(Named(r, "v2").skipped, "its input takes 3 values per row, production's 2");
  EXPECT_EQ(Named(r, "same").rank, 0);
  EXPECT_EQ(r.winner, "better");
}

TEST_F(BenchmarkTest, AFailingContenderCountsErrorsAndIsNotRanked) {
  FakeWorld world = MakeWorld();
  world.models[{"m2", 1}].fail = true;
  Log(world, 100, 100);
  const BenchmarkResult r = Run(world);
  const ContenderResult& better = Named(r, "better");
  EXPECT_EQ(better.errors, 100);
  EXPECT_EQ(better.rows, 0);
  EXPECT_EQ(better.first_error, "the model broke");
  EXPECT_EQ(better.rank, 0);
  EXPECT_EQ(r.winner, "");
}

TEST_F(BenchmarkTest, ErrorsNameWhatIsMissing) {
  FakeWorld world = MakeWorld();
  EXPECT_EQ(Run(world).error,
            "no request in the window was logged with its inputs (serve with --log-inputs-sample-rate above 0)");
  world.models[{"m", 1}].row_values = 5;
  Log(world, 10, 0);
  EXPECT_EQ(Run(world).error,
            "none of the 10 requests logged with inputs has the 5 values of one row of "
            "production's input");
  world.models[{"m", 1}].refuse = "its input 'x' has a variable shape";
  EXPECT_EQ(Run(world).error, "production (m v1) cannot be replayed: its input 'x' has a variable shape");
  BenchmarkRequest bad{.endpoint = "nope", .from_ms = 0, .to_ms = 1, .metric = "", .max_rows = 0, .trigger = ""};
  EXPECT_EQ(RunBenchmark(world, *store_, bad, {}, clock_).error, "no endpoint 'nope'");
  bad.endpoint = "ep";
  bad.metric = "mean_reward";
  EXPECT_NE(RunBenchmark(world, *store_, bad, {}, clock_).error.find("cannot score a replay"), std::string::npos);
}

TEST_F(BenchmarkTest, GivesWayToABusyModelAndKeepsTheCpuBudget) {
  FakeWorld world = MakeWorld();
  Log(world, 200, 0);
  world.busy_checks = 3;
  std::vector<std::chrono::microseconds> waits;
  BenchmarkOptions options;
  options.max_cpu = 0.25;
  BenchmarkRequest r{.endpoint = "ep", .from_ms = 0, .to_ms = 1'000'000, .metric = "", .max_rows = 0, .trigger = ""};
  const BenchmarkResult result = RunBenchmark(world, *store_, r, options, clock_, [&](std::chrono::microseconds d) {
    waits.push_back(d);
    return true;
  });
  ASSERT_TRUE(result.error.empty()) << result.error;
  ASSERT_GE(waits.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(waits[i], std::chrono::milliseconds(5)) << "busy: wait and look again";
  EXPECT_EQ(world.largest_call, 8u) << "rows go in small calls: serving waits for one at most";
  // After each call a pause of 3× its run time (run ≤ a quarter of the wall time).
  double run_ms = 0, paused_ms = 0;
  for (const auto& c : result.contenders) run_ms += c.run_ms;
  for (size_t i = 3; i < waits.size(); ++i) paused_ms += static_cast<double>(waits[i].count()) / 1000;
  EXPECT_NEAR(paused_ms, 3 * run_ms, 0.05 * run_ms + 0.01 * static_cast<double>(world.calls));
  // A run told to stop stops, and says it was cut short.
  const BenchmarkResult stopped =
      RunBenchmark(world, *store_, r, options, clock_, [](std::chrono::microseconds) { return false; });
  EXPECT_TRUE(stopped.truncated);
}

TEST_F(BenchmarkTest, TheMetricFollowsTheRequestOrTheRolloutBlock) {
  EXPECT_EQ(CheckBenchmarkMetric("log_loss"), "");
  EXPECT_NE(CheckBenchmarkMetric("auc"), "");
  FakeWorld world = MakeWorld();
  Log(world, 300, 300);
  BenchmarkRequest r{
      .endpoint = "ep", .from_ms = 0, .to_ms = 1'000'000, .metric = "log_loss", .max_rows = 0, .trigger = ""};
  const BenchmarkResult asked = RunBenchmark(world, *store_, r, {.max_cpu = 1}, clock_);
  EXPECT_EQ(asked.metric, "log_loss");
  EXPECT_FALSE(asked.higher_is_better);
  EXPECT_EQ(asked.winner, "better");
  EXPECT_LT(*Named(asked, "better").value, *asked.contenders[0].value);
  EXPECT_EQ(asked.contenders[1].name, "better") << "ranked lowest loss first";
  FakeWorld with_rollout(
      "production: {model: m, version: 1}\n"
      "candidates: [{name: better, model: m2, version: 1, mode: canary, steps: [5, 50]}]\n"
      "rollout: {candidate: better, metric: {name: brier, direction: lower}}\n");
  with_rollout.models = world.models;
  r.metric = "";
  EXPECT_EQ(RunBenchmark(with_rollout, *store_, r, {.max_cpu = 1}, clock_).metric, "brier");
}

TEST_F(BenchmarkTest, RatioMetricsArePairedOnTheSameRequests) {
  FakeWorld world = MakeWorld();
  Log(world, 1000, 1000, /*per_key=*/4);
  for (const char* metric : {"accuracy", "precision", "recall", "f1", "brier"}) {
    BenchmarkRequest r{
        .endpoint = "ep", .from_ms = 0, .to_ms = 1'000'000, .metric = metric, .max_rows = 0, .trigger = ""};
    const BenchmarkResult result = RunBenchmark(world, *store_, r, {.max_cpu = 1}, clock_);
    ASSERT_TRUE(result.error.empty()) << metric << ": " << result.error;
    const ContenderResult& production = result.contenders[0];
    const ContenderResult& better = Named(result, "better");
    ASSERT_TRUE(better.difference && better.value && production.value) << metric;
    // The paired difference is the difference of the two ratios, toward better.
    const double sign = result.higher_is_better ? 1 : -1;
    EXPECT_NEAR(*better.difference, sign * (*better.value - *production.value), 1e-12) << metric;
    EXPECT_GT(better.difference_high, better.difference_low) << metric;
    EXPECT_EQ(better.labeled_units, 250) << metric;
    // A copy of production differs by exactly nothing.
    EXPECT_EQ(*Named(result, "same").difference, 0) << metric;
  }
}

TEST_F(BenchmarkTest, ADriftAlertStartsOneRunAndAWinnerFiresBetterModelAvailable) {
  FakeWorld world = MakeWorld();
  Log(world, 500, 500);
  auto alert_store = MemoryAlertStore();
  AlertTracker alerts(*alert_store, {});
  auto benchmarks = MemoryRolloutStore();
  FakeWallClock clock(10'000);
  auto b = Benchmarker::Create({.world = &world,
                                .feedback = store_.get(),
                                .store = benchmarks.get(),
                                .alerts = &alerts,
                                .clock = &clock,
                                .benchmark = {.max_cpu = 1},
                                .background = false});
  ASSERT_TRUE(b.ok()) << b.status().message();
  Benchmarker& bench = **b;
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 0) << "nothing fires";
  // Drift of another model version: not production's.
  alerts.Observe("DatasetDrift", {{"model", "m"}, {"version", "2"}}, true, {"drifted_share", 1, 0.5, 0, 9000, ""}, 1, 1,
                 9000);
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 0);
  alerts.Observe("DatasetDrift", {{"model", "m"}, {"version", "1"}}, true, {"drifted_share", 1, 0.5, 500, 9000, ""}, 1,
                 1, 9000);
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 1);
  EXPECT_EQ(bench.Pending().queued, std::vector<std::string>{"ep"});
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 0) << "queued once";
  EXPECT_FALSE(
      bench.Enqueue({.endpoint = "ep", .from_ms = 0, .to_ms = 1, .metric = "", .max_rows = 0, .trigger = ""}).ok());
  bench.RunQueued();
  auto stored = benchmarks->Benchmarks("ep", 10);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_NE(stored->front().trigger.find("DatasetDrift"), std::string::npos);
  rapidjson::Document d;
  ASSERT_TRUE(ParseJson(stored->front().result, d).ok());
  EXPECT_STREQ(d["winner"].GetString(), "better");
  EXPECT_EQ(d["from_ms"].GetInt64(), 500) << "the drifted window";
  const AlertTracker::Snapshot s = alerts.Get(10);
  bool announced = false;
  for (const auto& a : s.firing) {
    if (a.alertname != "BetterModelAvailable") continue;
    announced = true;
    EXPECT_EQ(a.labels.at("endpoint"), "ep");
    EXPECT_NE(a.evidence.summary.find("1. better"), std::string::npos) << a.evidence.summary;
  }
  EXPECT_TRUE(announced);
  // Still firing, already benchmarked since: no second run, also after the spacing.
  clock.Advance(3600'000);
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 0);
  // A quality regression of production, firing later, starts another...
  alerts.Observe("QualityRegression", {{"endpoint", "ep"}, {"variant", "production"}, {"metric", "accuracy"}}, true,
                 {"accuracy", 0.6, 0.8, 0, clock.NowMillis(), ""}, 1, 1, clock.NowMillis());
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 1);
  bench.RunQueued();
  // ...but one more alert soon after waits for min_interval_s.
  clock.Advance(60'000);
  alerts.Observe("PredictionDrift", {{"model", "m"}, {"version", "1"}, {"feature", "probabilities"}}, true,
                 {"psi", 1, 0.2, 0, clock.NowMillis(), ""}, 1, 1, clock.NowMillis());
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 0);
  clock.Advance(900'000);
  EXPECT_EQ(bench.Poll(clock.NowMillis()), 1);
}

}  // namespace
}  // namespace vigil
