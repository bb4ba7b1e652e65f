#include "store/store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>

#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "core/eventually.h"
#include "support/test_postgres.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

fs::path FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("vigil_store_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

// Each of these runs against both stores: SQLite in a fresh folder, and
// PostgreSQL in a fresh database on the server the tests share.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
      std::replace(name.begin(), name.end(), '/', '_');
      dir_ = FreshDir(name);
      return;
    }
    db_ = std::make_unique<test_support::PostgresDatabase>();
    if (db_->url().empty()) {
      if (!test_support::PostgresInstalled()) GTEST_SKIP() << db_->why();
      FAIL() << db_->why();
    }
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Opens the store (again: the same file or database).
  StatusOr<std::unique_ptr<Store>> Open() {
    return GetParam() == "sqlite" ? OpenSqliteStore(dir_.string()) : OpenPostgresStore(db_->url());
  }

  // The first column of `sql`'s rows, read from the database itself.
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    if (GetParam() != "sqlite") {
      std::string error;
      out = test_support::PostgresQuery(db_->url(), sql, &error);
      EXPECT_EQ(error, "");
      return out;
    }
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open((dir_ / "vigil.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr);
    while (sqlite3_step(q) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
    sqlite3_finalize(q);
    sqlite3_close(db);
    return out;
  }

  fs::path dir_;
  std::unique_ptr<test_support::PostgresDatabase> db_;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST_P(StoreTest, DeploymentsUpsertDeleteAndSurviveReopening) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().message();
    ASSERT_TRUE((*store)->SaveDeployment({"a", "production: {model: m}\n", "file text", 1}).ok());
    ASSERT_TRUE((*store)->SaveDeployment({"b", "spec b", "", 2}).ok());
    ASSERT_TRUE((*store)->SaveDeployment({"a", "spec a2", "", 3}).ok());  // replaces
    ASSERT_TRUE((*store)->DeleteDeployment("b").ok());
    ASSERT_TRUE((*store)->DeleteDeployment("never-there").ok());
  }
  auto store = Open();
  ASSERT_TRUE(store.ok());
  auto loaded = (*store)->LoadDeployments();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].endpoint, "a");
  EXPECT_EQ((*loaded)[0].spec_yaml, "spec a2");
  EXPECT_EQ((*loaded)[0].source_text, "");
  EXPECT_EQ((*loaded)[0].updated_ms, 3);
  // A read-modify-write is taken only over the spec it read.
  auto stale = (*store)->SaveDeploymentIf({"a", "spec a3", "", 4}, "spec a1");
  ASSERT_TRUE(stale.ok()) << stale.status().message();
  EXPECT_FALSE(*stale);
  auto fresh = (*store)->SaveDeploymentIf({"a", "spec a3", "", 4}, "spec a2");
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(*fresh);
  EXPECT_FALSE(*(*store)->SaveDeploymentIf({"gone", "x", "", 5}, ""));
  EXPECT_EQ((*store)->LoadDeployments()->at(0).spec_yaml, "spec a3");
  EXPECT_EQ((*store)->LoadDeployments()->size(), 1u);
  // Frontend counts: a row per replica, endpoint and variant, replaced in place.
  ASSERT_TRUE(
      (*store)
          ->SaveFrontendCounts(
              {{"r1", "a", "production", 10, 5, 1}, {"r1", "a", "v2", 10, 2, 0}, {"r2", "a", "production", 10, 7, 2}})
          .ok());
  ASSERT_TRUE((*store)->SaveFrontendCounts({{"r1", "a", "production", 10, 9, 1}}).ok());
  ASSERT_TRUE((*store)->SaveFrontendCounts({}).ok());
  auto counts = (*store)->LoadFrontendCounts();
  ASSERT_TRUE(counts.ok()) << counts.status().message();
  ASSERT_EQ(counts->size(), 3u);
  int64_t production = 0;
  for (const auto& c : *counts) production += c.variant == "production" ? c.requests : 0;
  EXPECT_EQ(production, 16);
}

TEST_P(StoreTest, AuditHistoryIsNewestFirstPerEndpoint) {
  auto store = Open();
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 5; ++i) {
    AuditEvent e;
    e.time_ms = 100 + i;
    e.endpoint = i % 2 ? "odd" : "even";
    e.actor = "127.0.0.1:5000";
    e.action = "weight";
    e.detail = "share " + std::to_string(i);
    e.before = "b" + std::to_string(i);
    e.after = "a" + std::to_string(i);
    ASSERT_TRUE((*store)->AppendAudit(e).ok());
  }
  auto even = (*store)->History("even", 10);
  ASSERT_TRUE(even.ok());
  ASSERT_EQ(even->size(), 3u);
  EXPECT_EQ((*even)[0].detail, "share 4");
  EXPECT_EQ((*even)[2].detail, "share 0");
  EXPECT_GT((*even)[0].id, (*even)[1].id);
  EXPECT_EQ((*even)[0].before, "b4");
  EXPECT_EQ((*store)->History("even", 1)->size(), 1u);
  EXPECT_TRUE((*store)->History("nobody", 5)->empty());
}

TEST(SqliteStore, WalModeAndSchemaVersionAreSetAndANewerSchemaIsRefused) {
  const fs::path dir = FreshDir("schema");
  ASSERT_TRUE(OpenSqliteStore(dir.string()).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "vigil.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, nullptr);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)), "wal");
  sqlite3_finalize(q);
  sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q, nullptr);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), CurrentSchemaVersion());
  sqlite3_finalize(q);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto newer = OpenSqliteStore(dir.string());
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("schema version 999"), std::string::npos) << newer.status().message();
  fs::remove_all(dir);
}

TEST(SqliteStore, AnUnusableDataDirNamesThePath) {
  auto store = OpenSqliteStore("/proc/vigil-cannot-be-here");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/proc/vigil-cannot-be-here"), std::string::npos) << store.status().message();
}

TEST_P(StoreTest, PredictionsJoinFeedbackInEitherOrderAndPrune) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  // Feedback before its prediction exists.
  ASSERT_TRUE(store.WriteFeedback({{"p1", 1000, 1.0, std::nullopt}}).ok());
  PredictionRecord p1{"p1", 100, "ep", "production", "m", 1, 250, false, "[0.2,0.8]", "", "abcd"};
  PredictionRecord p1_shadow = p1;
  p1_shadow.variant = "mirror";
  p1_shadow.shadow = true;
  PredictionRecord p2{"p2", 200, "ep", "v2", "m", 2, 300, false, "[0.9,0.1]", "[1,2]", ""};
  PredictionRecord old{"p0", 1, "ep", "production", "m", 1, 1, false, "[1,0]", "", ""};
  ASSERT_TRUE(store.WritePredictions({old, p1, p1_shadow, p2}).ok());  // the log appends in time order
  // Feedback after: a reward merges with nothing, then a label joins it.
  ASSERT_TRUE(store.WriteFeedback({{"p2", 2000, std::nullopt, 0.5}}).ok());
  ASSERT_TRUE(store.WriteFeedback({{"p2", 3000, 0.0, std::nullopt}}).ok());
  auto known = store.KnownPredictions({"p1", "zz", "p2"});
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(*known, (std::vector<std::string>{"p1", "p2"}));
  auto joined = store.Joined("ep", 50);
  ASSERT_TRUE(joined.ok());
  ASSERT_EQ(joined->size(), 2u);  // shadows and older predictions are left out
  std::map<std::string, JoinedPrediction> by;
  for (const auto& j : *joined) by[j.variant] = j;
  EXPECT_EQ(by["production"].outputs, "[0.2,0.8]");
  EXPECT_EQ(*by["production"].label, 1.0);
  EXPECT_EQ(*by["v2"].label, 0.0);
  EXPECT_EQ(*by["v2"].reward, 0.5);  // kept when the label came later
  auto pruned = store.PrunePredictions(50, 0);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 1);  // p0 by age
  pruned = store.PrunePredictions(std::numeric_limits<int64_t>::min(), 2);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 1);  // 3 rows, keep 2: the oldest (p1's production row) goes
  EXPECT_EQ(*store.KnownPredictions({"p1", "p2"}), (std::vector<std::string>{"p1", "p2"}));  // its shadow stays
  pruned = store.PrunePredictions(150, 0);
  EXPECT_EQ(*pruned, 1);  // by age: p1's shadow row
  EXPECT_EQ(*store.KnownPredictions({"p1", "p2"}), (std::vector<std::string>{"p2"}));
  // Feedback that arrived before the cut goes too: p1's (1000), not p2's (3000).
  pruned = store.PrunePredictions(2500, 0);
  EXPECT_EQ(*pruned, 1);
  const std::vector<std::string> feedback = Column("SELECT prediction_id FROM feedback");
  EXPECT_EQ(feedback, (std::vector<std::string>{"p2"}));
}

TEST_P(StoreTest, RetentionCutsTheLogInTimeOrderByAgeAndBySize) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<PredictionRecord> records;
    for (int i = 0; i < 100; ++i) {
      const int t = batch * 100 + i;
      records.push_back({"id" + std::to_string(t), t, "ep", "production", "m", 1, 1, false, "[0]", "", ""});
    }
    ASSERT_TRUE(store.WritePredictions(records).ok());
  }
  EXPECT_EQ(*store.PrunePredictions(0, 0), 0);
  EXPECT_EQ(*store.PrunePredictions(537, 0), 537);  // times 0..536
  EXPECT_EQ(*store.PrunePredictions(537, 0), 0);
  EXPECT_EQ(*store.PrunePredictions(std::numeric_limits<int64_t>::min(), 100), 363);  // the newest 100 stay
  EXPECT_EQ(*store.KnownPredictions({"id899", "id900", "id999"}), (std::vector<std::string>{"id900", "id999"}));
  EXPECT_EQ(*store.PrunePredictions(std::numeric_limits<int64_t>::max(), 0), 100);
  EXPECT_EQ(*store.PrunePredictions(std::numeric_limits<int64_t>::max(), 5), 0);  // empty
}

TEST_P(StoreTest, ScanVisitsOneEndpointsServedPredictionsInATimeRange) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  std::vector<PredictionRecord> records;
  for (int t = 0; t < 50000; ++t) {  // more than one chunk
    const bool shadow = t % 10 == 9;
    records.push_back({"id" + std::to_string(t), t, t % 2 ? "ep" : "other", shadow ? "mirror" : "production", "m", 1, 1,
                       shadow, "[" + std::to_string(t) + "]", "", ""});
  }
  ASSERT_TRUE(store.WritePredictions(records).ok());
  std::vector<int64_t> times;
  auto visit = [&](const std::string& variant, int64_t time_ms, const std::string& outputs) {
    EXPECT_EQ(variant, "production");
    EXPECT_EQ(outputs, "[" + std::to_string(time_ms) + "]");
    times.push_back(time_ms);
  };
  auto n = store.ScanPredictions("ep", 100, 45000, 1'000'000, visit);
  ASSERT_TRUE(n.ok()) << n.status().message();
  // Odd times in [100, 45000) that are not shadows (t % 10 == 9).
  std::vector<int64_t> expected;
  for (int64_t t = 100; t < 45000; ++t) {
    if (t % 2 && t % 10 != 9) expected.push_back(t);
  }
  EXPECT_EQ(times, expected);
  EXPECT_EQ(*n, static_cast<int64_t>(expected.size()));
  times.clear();
  EXPECT_EQ(*store.ScanPredictions("ep", 0, 50000, 10, visit), 10);  // the limit
  EXPECT_EQ(times.front(), 1);
  EXPECT_EQ(*store.ScanPredictions("ep", 60000, 70000, 10, visit), 0);
  EXPECT_EQ(*store.ScanPredictions("nope", 0, 50000, 10, visit), 0);
}

TEST_P(StoreTest, ServedScanCarriesLatencyKeyAndFeedback) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  std::vector<PredictionRecord> records;
  for (int t = 0; t < 30000; ++t) {  // more than one chunk
    records.push_back({"id" + std::to_string(t), t, "ep", t % 3 ? "production" : "v2", "m", 1, 100 + t, t % 7 == 6,
                       "[0.5]", "", t % 2 ? "k" + std::to_string(t % 50) : ""});
  }
  ASSERT_TRUE(store.WritePredictions(records).ok());
  std::vector<FeedbackRecord> feedback;
  for (int t = 0; t < 30000; t += 5) feedback.push_back({"id" + std::to_string(t), t + 1000, t % 2 ? 1.0 : 0.0, {}});
  feedback.push_back({"id1", 5000, {}, 2.5});
  ASSERT_TRUE(store.WriteFeedback(feedback).ok());
  int64_t seen = 0, with_feedback = 0;
  auto n = store.ScanServed("ep", 0, 30000, 1'000'000, [&](const ServedPrediction& p) {
    ++seen;
    const int64_t t = p.time_ms;
    EXPECT_NE(t % 7, 6) << "a shadow's answer";
    EXPECT_EQ(p.variant, t % 3 ? "production" : "v2");
    EXPECT_EQ(p.latency_us, 100 + t);
    EXPECT_EQ(p.key_hash, t % 2 ? "k" + std::to_string(t % 50) : "");
    if (t % 5 == 0) {
      ++with_feedback;
      EXPECT_EQ(p.feedback_time_ms, t + 1000);
      EXPECT_EQ(p.label, t % 2 ? 1.0 : 0.0);
    } else if (t == 1) {
      EXPECT_EQ(p.reward, 2.5);
      EXPECT_FALSE(p.label);
    } else {
      EXPECT_EQ(p.feedback_time_ms, 0);
      EXPECT_FALSE(p.label);
    }
  });
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, seen);
  EXPECT_EQ(seen, 30000 - 30000 / 7);
  EXPECT_GT(with_feedback, 5000);
}

TEST_P(StoreTest, DegradedAnswersAreKeptButLeftOutOfQualityRolloutsAndBenchmarks) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  std::vector<PredictionRecord> records;
  for (int t = 0; t < 10; ++t) {
    PredictionRecord r{
        "id" + std::to_string(t), t, "ep", "production", t < 4 ? "small" : "m", 1, 100, false, "[0.5]", "[1]", ""};
    r.rung = t < 4 ? 2 : 0;  // the first four answered by the fallback
    records.push_back(std::move(r));
  }
  ASSERT_TRUE(store.WritePredictions(records).ok());
  std::vector<FeedbackRecord> feedback;
  for (int t = 0; t < 10; ++t) feedback.push_back({"id" + std::to_string(t), 100 + t, 1.0, {}});
  ASSERT_TRUE(store.WriteFeedback(feedback).ok());

  int64_t served = 0, sampled = 0;
  ASSERT_TRUE(store
                  .ScanServed("ep", 0, 100, 100,
                              [&](const ServedPrediction& p) {
                                ++served;
                                EXPECT_GE(p.time_ms, 4);
                              })
                  .ok());
  ASSERT_TRUE(store.ScanSampledInputs("ep", 0, 100, 100, [&](const ServedPrediction&) { ++sampled; }).ok());
  EXPECT_EQ(served, 6);
  EXPECT_EQ(sampled, 6);
  auto joined = store.Joined("ep", 0);
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(joined->size(), 6u);
  auto cursor = JoinCursor{};
  auto changes = store.JoinedSince(cursor);
  ASSERT_TRUE(changes.ok());
  std::set<int64_t> rows;  // each change may come from both reads
  for (const auto& c : *changes) {
    rows.insert(c.joined.prediction_row);
    EXPECT_GE(c.joined.time_ms, 4);
  }
  EXPECT_EQ(rows.size(), 6u);
  // They are kept, and known: feedback for them is accepted.
  auto known = store.KnownPredictions({"id0", "id9"});
  ASSERT_TRUE(known.ok());
  EXPECT_EQ(known->size(), 2u);
}

TEST_P(StoreTest, SampledInputScanReturnsOnlyServedPredictionsLoggedWithInputs) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  std::vector<PredictionRecord> records;
  for (int t = 0; t < 25000; ++t) {  // more than one chunk
    const bool sampled = t % 10 == 0;
    records.push_back({"id" + std::to_string(t), t, t % 4 == 3 ? "other" : "ep", "production", "m", 1, 100,
                       t % 20 == 10, "[0.5]", sampled ? "[" + std::to_string(t) + ",1]" : "", ""});
  }
  ASSERT_TRUE(store.WritePredictions(records).ok());
  ASSERT_TRUE(store.WriteFeedback({{"id20", 50, 1.0, {}}}).ok());
  int64_t seen = 0;
  auto n = store.ScanSampledInputs("ep", 0, 25000, 1'000'000, [&](const ServedPrediction& p) {
    ++seen;
    EXPECT_EQ(p.time_ms % 20, 0) << "sampled, served, this endpoint only";
    EXPECT_EQ(p.inputs, "[" + std::to_string(p.time_ms) + ",1]");
    EXPECT_EQ(p.outputs, "[0.5]");
    if (p.time_ms == 20) {
      EXPECT_EQ(p.label, 1.0);
    }
  });
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, seen);
  EXPECT_EQ(seen, 25000 / 20);
  EXPECT_EQ(*store.ScanSampledInputs("ep", 0, 25000, 7, [](const ServedPrediction&) {}), 7) << "the limit";
  // The plain scan leaves inputs out.
  ASSERT_TRUE(store.ScanServed("ep", 0, 100, 100, [](const ServedPrediction& p) { EXPECT_EQ(p.inputs, ""); }).ok());
}

TEST_P(StoreTest, ShadowAnswersPairWithTheServedAnswerOfTheirRequest) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  std::vector<PredictionRecord> records = {
      {"a", 10, "ep", "production", "m", 1, 100, false, "[0.1,0.9]", "", ""},
      {"a", 11, "ep", "mirror", "m", 2, 50, true, "[0.8,0.2]", "", ""},
      {"b", 20, "ep", "v2", "m", 3, 100, false, "[0.4,0.6]", "", ""},  // served by a candidate
      {"b", 21, "ep", "mirror", "m", 2, 60, true, "[0.3,0.7]", "", ""},
      {"c", 31, "ep", "mirror", "m", 2, 70, true, "[0.3,0.7]", "", ""},  // its request was not logged
      {"d", 40, "other", "production", "m", 1, 100, false, "[0.5,0.5]", "", ""},
      {"d", 41, "ep", "mirror", "m", 2, 70, true, "[0.3,0.7]", "", ""},  // another endpoint's request
  };
  ASSERT_TRUE(store.WritePredictions(records).ok());
  ASSERT_TRUE(store.WriteFeedback({{"a", 15, 1.0, {}}}).ok());
  std::vector<ShadowPair> pairs;
  auto n = store.ScanShadowPairs("ep", "mirror", 0, 100, 100, [&](const ShadowPair& p) { pairs.push_back(p); });
  ASSERT_TRUE(n.ok()) << n.status().message();
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].served_variant, "production");
  EXPECT_EQ(pairs[0].served_outputs, "[0.1,0.9]");
  EXPECT_EQ(pairs[0].shadow_outputs, "[0.8,0.2]");
  EXPECT_EQ(pairs[0].served_latency_us, 100);
  EXPECT_EQ(pairs[0].shadow_latency_us, 50);
  EXPECT_EQ(pairs[0].label, 1.0);
  EXPECT_EQ(pairs[1].served_variant, "v2");
  EXPECT_FALSE(pairs[1].label);
  EXPECT_EQ(*store.ScanShadowPairs("ep", "nope", 0, 100, 100, [](const ShadowPair&) {}), 0);
}

TEST_P(StoreTest, RolloutAnalysesKeepTheNewestPerEndpoint) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  const int64_t total = RolloutStore::kMaxRolloutAnalyses + 300;
  for (int64_t i = 0; i < total; ++i) {
    ASSERT_TRUE(store.AppendRolloutAnalysis({0, i, "a", "v2", 0, "Running", "{}"}).ok());
  }
  ASSERT_TRUE(store.AppendRolloutAnalysis({0, 0, "b", "v2", 0, "Running", "{}"}).ok());
  auto kept = store.RolloutAnalyses("a", 1'000'000);
  ASSERT_TRUE(kept.ok());
  EXPECT_LE(static_cast<int64_t>(kept->size()), RolloutStore::kMaxRolloutAnalyses + 100);
  EXPECT_GE(static_cast<int64_t>(kept->size()), RolloutStore::kMaxRolloutAnalyses);
  EXPECT_EQ(kept->front().time_ms, total - 1) << "the newest stay";
  EXPECT_EQ(store.RolloutAnalyses("b", 10)->size(), 1u) << "per endpoint";
}

// What every RolloutStore does: states upserted per endpoint, analyses
// newest first per endpoint.
void ExpectRolloutsKept(RolloutStore& store) {
  ASSERT_TRUE(store.SaveRollout({"a", "{\"step\":0}", 1}).ok());
  ASSERT_TRUE(store.SaveRollout({"b", "{}", 2}).ok());
  ASSERT_TRUE(store.SaveRollout({"a", "{\"step\":1}", 3}).ok());
  auto states = store.LoadRollouts();
  ASSERT_TRUE(states.ok()) << states.status().message();
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[0].state, "{\"step\":1}");
  EXPECT_EQ((*states)[0].updated_ms, 3);
  ASSERT_TRUE(store.DeleteRollout("b").ok());
  EXPECT_EQ(store.LoadRollouts()->size(), 1u);
  // A conditional write: taken only over the state the writer saw ("" = none).
  EXPECT_EQ(store.SaveRolloutIf({"a", "{\"step\":2}", 4}, "{\"step\":0}").code(), StatusCode::kAborted);
  EXPECT_EQ(store.SaveRolloutIf({"a", "{\"step\":2}", 4}, "").code(), StatusCode::kAborted);
  ASSERT_TRUE(store.SaveRolloutIf({"a", "{\"step\":2}", 4}, "{\"step\":1}").ok());
  ASSERT_TRUE(store.SaveRolloutIf({"c", "{}", 5}, "").ok());
  EXPECT_EQ(store.SaveRolloutIf({"c", "{\"x\":1}", 6}, "").code(), StatusCode::kAborted);
  states = store.LoadRollouts();
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[0].state, "{\"step\":2}");
  EXPECT_EQ((*states)[1].state, "{}");
  ASSERT_TRUE(store.DeleteRollout("c").ok());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(store.AppendRolloutAnalysis({0, 100 + i, i % 2 ? "a" : "b", "v2", i, "Running", "{}"}).ok());
  }
  auto a = store.RolloutAnalyses("a", 10);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].step, 3);
  EXPECT_EQ((*a)[0].time_ms, 103);
  EXPECT_GT((*a)[0].id, (*a)[1].id);
  EXPECT_EQ((*a)[1].candidate, "v2");
  EXPECT_EQ(store.RolloutAnalyses("b", 1)->size(), 1u);
  EXPECT_TRUE(store.RolloutAnalyses("none", 5)->empty());
  // Benchmarks: newest first per endpoint, the newest kMaxBenchmarks kept.
  const int64_t total = RolloutStore::kMaxBenchmarks + 5;
  for (int64_t i = 0; i < total; ++i) {
    ASSERT_TRUE(
        store.AppendBenchmark({0, 1000 + i, "a", "manual by 127.0.0.1", "{\"i\":" + std::to_string(i) + "}"}).ok());
  }
  ASSERT_TRUE(store.AppendBenchmark({0, 5, "b", "DatasetDrift", "{}"}).ok());
  auto benchmarks = store.Benchmarks("a", 1000);
  ASSERT_TRUE(benchmarks.ok()) << benchmarks.status().message();
  ASSERT_EQ(static_cast<int64_t>(benchmarks->size()), RolloutStore::kMaxBenchmarks);
  EXPECT_EQ(benchmarks->front().time_ms, 1000 + total - 1);
  EXPECT_EQ(benchmarks->front().trigger, "manual by 127.0.0.1");
  EXPECT_EQ(benchmarks->back().time_ms, 1000 + total - RolloutStore::kMaxBenchmarks);
  EXPECT_GT((*benchmarks)[0].id, (*benchmarks)[1].id);
  EXPECT_EQ(store.Benchmarks("b", 10)->size(), 1u);
  EXPECT_EQ((*store.Benchmarks("b", 10))[0].result, "{}");
  EXPECT_TRUE(store.Benchmarks("none", 10)->empty());
}

TEST_P(StoreTest, RolloutStatesAndAnalysesSurviveReopening) {
  {
    auto opened = Open();
    ASSERT_TRUE(opened.ok());
    ExpectRolloutsKept(**opened);
  }
  auto again = Open();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->LoadRollouts()->size(), 1u);
  EXPECT_EQ((*again)->RolloutAnalyses("a", 10)->size(), 2u);
}

TEST(MemoryStores, KeepRolloutsLikeSqlite) { ExpectRolloutsKept(*MemoryRolloutStore()); }

// What every DriftStore does, the databases' and the in-memory one alike.
void ExpectDriftWindowsReadByModelAndTimeAndPruned(DriftStore& store) {
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(store
                    .WriteDriftWindow({"m", 1, i * 100 - 100, i * 100, 1000, 200, "reference.csv", 0.1 * i, i == 4,
                                       "[{\"name\":\"x" + std::to_string(i) + "\"}]"})
                    .ok());
  }
  ASSERT_TRUE(store.WriteDriftWindow({"other", 1, 0, 250, 10, 10, "first 10 live rows", 0, false, "[]"}).ok());
  auto all = store.DriftWindows("m", 0, 1000, 100);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].end_ms, 100);  // oldest first
  EXPECT_TRUE((*all)[3].dataset_drift);
  EXPECT_NEAR((*all)[3].drifted_share, 0.4, 1e-12);
  EXPECT_EQ((*all)[3].columns, "[{\"name\":\"x4\"}]");
  EXPECT_EQ((*all)[3].reference_source, "reference.csv");
  auto range = store.DriftWindows("m", 150, 300, 100);
  ASSERT_EQ(range->size(), 2u);
  EXPECT_EQ((*range)[0].end_ms, 200);
  auto newest = store.DriftWindows("m", 0, 1000, 1);
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].end_ms, 400);
  EXPECT_EQ(*store.PruneDriftWindows(250), 2);  // m's windows ending at 100 and 200; 250 is not before 250
  EXPECT_EQ(store.DriftWindows("other", 0, 1000, 100)->size(), 1u);

  // Replicas' partial windows: kept apart from the windows of all traffic,
  // read per version after a merged window's end, oldest first.
  EXPECT_EQ(*store.LastDriftWindowEnd("m", 1), 400);
  EXPECT_EQ(*store.LastDriftWindowEnd("m", 2), 0);
  for (int i = 1; i <= 3; ++i) {
    for (const char* replica : {"a:8000", "b:8000"}) {
      StoredDriftWindow part{"m", 2, 1000 + i * 10 - 10, 1000 + i * 10, 7, 200, "reference.csv", 0, false, "[]"};
      part.replica = replica;
      part.counts = R"({"reference":"k","rows":7,"counts":[7],"sums":[0,0]})";
      ASSERT_TRUE(store.WriteDriftWindow(part).ok());
    }
  }
  StoredDriftWindow other_version{"m", 3, 1000, 1010, 5, 200, "reference.csv", 0, false, "[]"};
  other_version.replica = "a:8000";
  ASSERT_TRUE(store.WriteDriftWindow(other_version).ok());
  EXPECT_EQ(store.DriftWindows("m", 0, 5000, 100)->size(), 2u) << "partial windows are not windows of all traffic";
  EXPECT_EQ(*store.LastDriftWindowEnd("m", 2), 0);
  auto parts = store.ReplicaDriftWindows("m", 2, 1010, 1030, 100);
  ASSERT_TRUE(parts.ok()) << parts.status().message();
  ASSERT_EQ(parts->size(), 4u);  // ended in (1010, 1030]
  EXPECT_EQ((*parts)[0].end_ms, 1020);
  EXPECT_EQ((*parts)[3].end_ms, 1030);
  EXPECT_EQ((*parts)[0].replica, "a:8000");
  EXPECT_EQ((*parts)[1].replica, "b:8000");
  EXPECT_EQ((*parts)[0].counts, R"({"reference":"k","rows":7,"counts":[7],"sums":[0,0]})");
  EXPECT_EQ(store.ReplicaDriftWindows("m", 2, 0, 5000, 3)->size(), 3u);  // the oldest `limit`
  EXPECT_EQ(store.ReplicaDriftWindows("m", 2, 0, 5000, 3)->back().end_ms, 1020);
  StoredDriftWindow merged{"m", 2, 1000, 1030, 42, 200, "reference.csv", 0, false, "[]"};
  merged.counts = R"({"reference":"k","rows":42,"counts":[42],"sums":[0,0]})";
  ASSERT_TRUE(store.WriteDriftWindow(merged).ok());  // epoch 0: unfenced (a shared store's fencing: PostgresStoreTest)
  EXPECT_EQ(*store.LastDriftWindowEnd("m", 2), 1030);
  auto back = store.DriftWindows("m", 1001, 5000, 100);
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].rows, 42);
  EXPECT_EQ((*back)[0].replica, "");
  EXPECT_EQ((*back)[0].counts, merged.counts);
}

// What every AlertStore does: transitions newest first, with increasing ids.
void ExpectAlertEventsNewestFirst(AlertStore& store) {
  for (int i = 0; i < 5; ++i) {
    AlertEvent e;
    e.time_ms = 1000 + i;
    e.alertname = "A" + std::to_string(i);
    e.fingerprint = "f";
    e.labels = "{}";
    e.state = i % 2 ? "resolved" : "firing";
    ASSERT_TRUE(store.AppendAlertEvent(e).ok());
  }
  auto events = store.AlertEvents(3);
  ASSERT_TRUE(events.ok()) << events.status().message();
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].alertname, "A4");
  EXPECT_EQ((*events)[2].alertname, "A2");
  EXPECT_GT((*events)[0].id, (*events)[1].id);
  EXPECT_EQ((*events)[1].state, "resolved");
  EXPECT_EQ(store.AlertEvents(100)->size(), 5u);
}

TEST_P(StoreTest, DriftWindowsAreReadByModelAndTimeAndPruned) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok());
  ExpectDriftWindowsReadByModelAndTimeAndPruned(**opened);
  ExpectAlertEventsNewestFirst(**opened);
}

TEST(MemoryStores, DoWhatTheSqliteStoreDoesAndKeepOnlyTheNewest) {
  ExpectDriftWindowsReadByModelAndTimeAndPruned(*MemoryDriftStore());
  ExpectAlertEventsNewestFirst(*MemoryAlertStore());
  auto two = MemoryAlertStore(2);
  for (int i = 0; i < 5; ++i) {
    AlertEvent e;
    e.alertname = std::to_string(i);
    ASSERT_TRUE(two->AppendAlertEvent(e).ok());
  }
  auto kept = two->AlertEvents(100);
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ((*kept)[0].alertname, "4");
  EXPECT_EQ((*kept)[1].alertname, "3");
}

TEST(SqliteStore, UuidV7IdsAreKeyedByTheirTimeAndOtherIdsByAHash) {
  const std::string v7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
  EXPECT_EQ(PredictionIdKey(v7), 0x017F22E279B07CC3LL);
  EXPECT_EQ(PredictionIdKey("req-42"), PredictionIdKey("req-42"));
  EXPECT_NE(PredictionIdKey("req-42"), PredictionIdKey("req-43"));
  EXPECT_NE(PredictionIdKey("9c5b94b1-35ad-49bb-b118-8e8fc24abf80"), 0x9c5b94b135ad49bbLL);  // v4: hashed
}

TEST(SqliteStore, MigrationsRekeyPredictionsAndFeedbackWrittenBySchemaTwo) {
  const fs::path dir = FreshDir("migrate3");
  fs::create_directories(dir);
  const std::string v7 = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
  {
    // The predictions table as schema 2 wrote it: every id hashed.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "vigil.db").c_str(), &db), SQLITE_OK);
    const std::string sql =
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2);"
        "CREATE TABLE predictions (id TEXT NOT NULL, variant TEXT NOT NULL, time_ms BIGINT NOT NULL,"
        " endpoint TEXT NOT NULL, model TEXT NOT NULL, version BIGINT NOT NULL, latency_us BIGINT NOT NULL,"
        " shadow INTEGER NOT NULL, outputs TEXT NOT NULL, inputs TEXT NOT NULL, key_hash TEXT NOT NULL,"
        " id_hash BIGINT NOT NULL);"
        "CREATE INDEX predictions_by_id_hash ON predictions (id_hash);"
        "CREATE INDEX predictions_by_time ON predictions (time_ms);"
        "CREATE TABLE feedback (prediction_id TEXT PRIMARY KEY, time_ms BIGINT NOT NULL, label DOUBLE PRECISION,"
        " reward DOUBLE PRECISION);"
        "INSERT INTO feedback VALUES ('" +
        v7 +
        "', 5, 1.0, NULL);"
        "INSERT INTO predictions VALUES ('" +
        v7 +
        "', 'production', 1, 'ep', 'm', 1, 1, 0, '[1]', '', '', 12345),"
        " ('req-42', 'production', 1, 'ep', 'm', 1, 1, 0, '[1]', '', '', " +
        std::to_string(PredictionIdKey("req-42")) + ");";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto opened = OpenSqliteStore(dir.string());
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  auto known = (*opened)->KnownPredictions({v7, "req-42", "req-43"});
  ASSERT_TRUE(known.ok()) << known.status().message();
  EXPECT_EQ(*known, (std::vector<std::string>{v7, "req-42"}));
  auto joined = (*opened)->Joined("ep", 0);
  ASSERT_TRUE(joined.ok()) << joined.status().message();
  ASSERT_EQ(joined->size(), 1u);
  EXPECT_EQ(*(*joined)[0].label, 1.0);
  fs::remove_all(dir);
}

// PostgreSQL alone: what replicas sharing one database rely on.
class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (db_.url().empty()) {
      if (!test_support::PostgresInstalled()) GTEST_SKIP() << db_.why();
      FAIL() << db_.why();
    }
  }
  test_support::PostgresDatabase db_;
};

TEST_F(PostgresStoreTest, ANewerSchemaIsRefusedAndBadUrlsAreNamed) {
  ASSERT_TRUE(OpenPostgresStore(db_.url()).ok());
  EXPECT_EQ(test_support::PostgresQuery(db_.url(), "SELECT version FROM schema_version"),
            (std::vector<std::string>{std::to_string(CurrentSchemaVersion())}));
  test_support::PostgresQuery(db_.url(), "UPDATE schema_version SET version = 999");
  auto newer = OpenPostgresStore(db_.url());
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("schema version 999"), std::string::npos) << newer.status().message();

  auto refused = OpenPostgresStore("postgres://vigil:secret@127.0.0.1:1/none");
  ASSERT_FALSE(refused.ok());
  const std::string message = refused.status().message();
  EXPECT_NE(message.find("cannot connect to the store"), std::string::npos) << message;
  EXPECT_NE(message.find("port 1"), std::string::npos) << message;
  EXPECT_EQ(message.find("secret"), std::string::npos) << "the password is never shown: " << message;
  EXPECT_FALSE(OpenPostgresStore("mysql://somewhere/db").ok());
  EXPECT_EQ(RedactedUrl("postgres://u:pw@h:5/d"), "postgres://u:***@h:5/d");
  EXPECT_EQ(RedactedUrl("postgres://u@h:5/d"), "postgres://u@h:5/d");
}

TEST_F(PostgresStoreTest, ReplicasStartingTogetherMigrateOnce) {
  std::vector<std::thread> replicas;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i) {
    replicas.emplace_back([&] {
      auto store = OpenPostgresStore(db_.url());
      EXPECT_TRUE(store.ok()) << store.status().message();
      if (store.ok()) ++opened;
    });
  }
  for (auto& t : replicas) t.join();
  EXPECT_EQ(opened.load(), 4);
  EXPECT_EQ(test_support::PostgresQuery(db_.url(), "SELECT version FROM schema_version"),
            (std::vector<std::string>{std::to_string(CurrentSchemaVersion())}));
}

TEST_F(PostgresStoreTest, ReplicasShareTheLogAndJoinFeedbackWhereverItArrives) {
  auto a = OpenPostgresStore(db_.url());
  auto b = OpenPostgresStore(db_.url());
  ASSERT_TRUE(a.ok() && b.ok());
  auto cursor = (*b)->JoinCursorNow();
  ASSERT_TRUE(cursor.ok());
  // Two replicas log at once, their rows interleaved in time.
  std::thread writer_a([&] {
    for (int batch = 0; batch < 10; ++batch) {
      std::vector<PredictionRecord> records;
      for (int i = 0; i < 50; ++i) {
        const int t = (batch * 50 + i) * 2;
        records.push_back({"a" + std::to_string(t), t, "ep", "production", "m", 1, 1, false, "[0]", "", ""});
      }
      EXPECT_TRUE((*a)->WritePredictions(records).ok());
    }
  });
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<PredictionRecord> records;
    for (int i = 0; i < 50; ++i) {
      const int t = (batch * 50 + i) * 2 + 1;
      records.push_back({"b" + std::to_string(t), t, "ep", "production", "m", 1, 1, false, "[0]", "", ""});
    }
    ASSERT_TRUE((*b)->WritePredictions(records).ok());
  }
  writer_a.join();
  // Feedback for A's predictions arrives at B, and the other way round.
  std::vector<FeedbackRecord> to_b, to_a;
  for (int t = 0; t < 1000; ++t) {
    (t % 2 ? to_a : to_b).push_back({(t % 2 ? "b" : "a") + std::to_string(t), 5000 + t, 1.0, {}});
  }
  ASSERT_TRUE((*b)->WriteFeedback(to_b).ok());
  ASSERT_TRUE((*a)->WriteFeedback(to_a).ok());
  EXPECT_EQ((*b)->KnownPredictions({"a0", "b1", "a1"})->size(), 2u);
  std::vector<int64_t> times;
  ASSERT_TRUE((*a)->ScanPredictions("ep", 0, 2000, 10'000,
                                    [&](const std::string&, int64_t t, const std::string&) { times.push_back(t); })
                  .ok());
  ASSERT_EQ(times.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end())) << "one log in time order, whoever wrote it";
  auto changes = (*b)->JoinedSince(*cursor);
  ASSERT_TRUE(changes.ok()) << changes.status().message();
  std::set<int64_t> rows;
  for (const auto& c : *changes) rows.insert(c.joined.prediction_row);
  EXPECT_EQ(rows.size(), 1000u);
  EXPECT_EQ((*a)->Joined("ep", 0)->size(), 1000u);
}

TEST_F(PostgresStoreTest, AChangeCommittedLateIsStillSeenByTheIncrementalJoin) {
  auto opened = OpenPostgresStore(db_.url());
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  ASSERT_TRUE(store.WriteFeedback({{"late", 10, 1.0, {}}, {"early", 10, 0.0, {}}}).ok());
  auto cursor = store.JoinCursorNow();
  ASSERT_TRUE(cursor.ok());
  // Another replica's transaction logs "late" first and commits last.
  std::unique_ptr<PGconn, void (*)(PGconn*)> other(PQconnectdb(db_.url().c_str()), PQfinish);
  ASSERT_EQ(PQstatus(other.get()), CONNECTION_OK);
  auto exec = [&](const std::string& sql) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(other.get(), sql.c_str()), PQclear);
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQresultErrorMessage(r.get());
  };
  exec("BEGIN");
  exec(
      "INSERT INTO predictions (id, variant, time_ms, endpoint, model, version, latency_us, shadow, outputs, "
      "inputs, key_hash, id_key, rung) VALUES ('late', 'production', 1, 'ep', 'm', 1, 1, 0, '[1]', '', '', " +
      std::to_string(PredictionIdKey("late")) + ", 0)");
  ASSERT_TRUE(store.WritePredictions({{"early", 2, "ep", "production", "m", 1, 1, false, "[0]", "", ""}}).ok());
  auto first = store.JoinedSince(*cursor);
  ASSERT_TRUE(first.ok()) << first.status().message();
  std::set<std::string> first_outputs;  // a change may come twice (the cursor is cluster-wide)
  for (const auto& c : *first) first_outputs.insert(c.joined.outputs);
  EXPECT_EQ(first_outputs, (std::set<std::string>{"[0]"})) << "the open transaction's row is not visible yet";
  exec("COMMIT");
  auto second = store.JoinedSince(*cursor);
  ASSERT_TRUE(second.ok());
  std::set<std::string> outputs;
  for (const auto& c : *second) outputs.insert(c.joined.outputs);
  EXPECT_EQ(outputs.count("[1]"), 1u) << "the row numbered first but committed last is not lost";
}

TEST_F(PostgresStoreTest, TextPostgresCannotHoldIsKeptFindable) {
  auto opened = OpenPostgresStore(db_.url());
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  const std::string nul("a\0b", 3), bad = "x\xff\xfey";
  ASSERT_TRUE(store
                  .WritePredictions({{nul, 1, "ep", "production", "m", 1, 1, false, "[0]", "", ""},
                                     {bad, 2, "ep", "production", "m", 1, 1, false, "[1]", "in\xc3", ""}})
                  .ok());
  ASSERT_TRUE(store.WriteFeedback({{nul, 5, 1.0, {}}, {bad, 6, 0.0, {}}, {nul, 7, {}, 2.0}}).ok());
  EXPECT_EQ(*store.KnownPredictions({bad, nul, "a"}), (std::vector<std::string>{bad, nul}));
  auto joined = store.Joined("ep", 0);
  ASSERT_TRUE(joined.ok());
  ASSERT_EQ(joined->size(), 2u);
  EXPECT_EQ((*joined)[0].label, 1.0);
  EXPECT_EQ((*joined)[0].reward, 2.0) << "feedback for one id in one call merges";
}

TEST_F(PostgresStoreTest, OneReplicaLeadsAndADeposedLeaderCannotDecide) {
  auto opened = OpenPostgresStore(db_.url());
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  constexpr auto kLease = std::chrono::milliseconds(100);
  std::atomic<int> b_changes{0};
  auto a = PostgresLeadership(db_.url(), kLease, nullptr);
  auto b = PostgresLeadership(db_.url(), kLease, [&](bool, int64_t) { ++b_changes; });
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->IsLeader()) << "the first to try takes the lock";
  EXPECT_FALSE((*b)->IsLeader());
  EXPECT_EQ((*b)->Epoch(), 0);
  const int64_t first = (*a)->Epoch();
  EXPECT_GE(first, 1);
  EXPECT_TRUE(store.SaveRollout({"ep", "{\"step\":1}", 10, first}).ok());
  EXPECT_TRUE(store.AppendRolloutAnalysis({0, 10, "ep", "v2", 0, "Running", "{}", first}).ok());
  EXPECT_TRUE(store.SaveRollout({"ep", "{\"step\":1}", 11, 0}).ok()) << "a person's command is never fenced";
  auto wrong = store.SaveRollout({"ep", "{\"step\":9}", 12, first + 5});
  EXPECT_EQ(wrong.code(), StatusCode::kFailedPrecondition) << wrong.message();

  // The leader goes (its session with it): the other takes over within two
  // lease periods (with room for a slow machine), in a new epoch.
  const auto gone = std::chrono::steady_clock::now();
  a->reset();
  ASSERT_TRUE(Eventually([&] { return (*b)->IsLeader(); }, std::chrono::seconds(10)));
  const auto took = std::chrono::steady_clock::now() - gone;
  EXPECT_LT(took, 20 * kLease) << "took over after " << std::chrono::duration<double>(took).count() << " s";
  EXPECT_EQ((*b)->Epoch(), first + 1);
  EXPECT_EQ(b_changes.load(), 1);
  // The deposed epoch can decide nothing more; the new one can.
  auto stale = store.SaveRollout({"ep", "{\"step\":2}", 13, first});
  EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition) << stale.message();
  EXPECT_NE(stale.message().find("no longer leads"), std::string::npos);
  EXPECT_EQ(store.AppendRolloutAnalysis({0, 13, "ep", "v2", 1, "Successful", "{}", first}).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store.SaveRollout({"ep", "{\"step\":2}", 14, (*b)->Epoch()}).ok());
  auto kept = store.LoadRollouts();
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].state, "{\"step\":2}");
  EXPECT_EQ((*kept)[0].epoch, first + 1);
  EXPECT_EQ(store.RolloutAnalyses("ep", 10)->size(), 1u) << "the deposed leader's analysis was not written";
  // A merged drift window is a decision too; a replica's partial window is not.
  StoredDriftWindow merged{"m", 1, 0, 100, 10, 10, "reference.csv", 0, false, "[]"};
  merged.epoch = first;
  EXPECT_EQ(store.WriteDriftWindow(merged).code(), StatusCode::kFailedPrecondition);
  merged.epoch = (*b)->Epoch();
  EXPECT_TRUE(store.WriteDriftWindow(merged).ok());
  EXPECT_EQ(store.DriftWindows("m", 0, 1000, 10)->at(0).epoch, (*b)->Epoch());
  StoredDriftWindow part = merged;
  part.replica = "a:8000";
  part.epoch = 0;
  EXPECT_TRUE(store.WriteDriftWindow(part).ok());
  EXPECT_EQ(store.DriftWindows("m", 0, 1000, 10)->size(), 1u);
}

}  // namespace
}  // namespace vigil
