#include "monitoring/drift_stats.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <sstream>

namespace vigil::stats {
namespace {

// Reference values from SciPy: tests/fixtures/make_drift_fixtures.py.
class DriftFixtures : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/tests/fixtures/drift_stats.json");
    std::stringstream text;
    text << in.rdbuf();
    doc_.Parse(text.str().c_str());
    ASSERT_FALSE(doc_.HasParseError());
  }
  static std::vector<double> Values(const rapidjson::Value& list) {
    std::vector<double> out;
    for (const auto& v : list.GetArray()) out.push_back(v.GetDouble());
    return out;
  }
  static rapidjson::Document doc_;
};
rapidjson::Document DriftFixtures::doc_;

constexpr double kTolerance = 1e-6;

TEST_F(DriftFixtures, SampleStatisticsMatchScipy) {
  ASSERT_GE(doc_["samples"].Size(), 4u);
  for (const auto& c : doc_["samples"].GetArray()) {
    SCOPED_TRACE(c["name"].GetString());
    const auto ref = Values(c["reference"]), cur = Values(c["current"]);
    const TestResult ks = KolmogorovSmirnov(ref, cur);
    EXPECT_NEAR(ks.statistic, c["ks"].GetDouble(), kTolerance);
    EXPECT_NEAR(ks.p_value, c["ks_p"].GetDouble(), kTolerance);
    EXPECT_NEAR(Wasserstein(ref, cur), c["wasserstein"].GetDouble(), kTolerance);
  }
}

TEST_F(DriftFixtures, BinnedStatisticsMatchScipy) {
  ASSERT_GE(doc_["binned"].Size(), 5u);
  for (const auto& c : doc_["binned"].GetArray()) {
    SCOPED_TRACE(c["name"].GetString());
    const auto ref = Values(c["reference"]), cur = Values(c["current"]), points = Values(c["points"]);
    int empty = -1;
    EXPECT_NEAR(Psi(ref, cur, 1e-4, &empty), c["psi"].GetDouble(), kTolerance);
    EXPECT_EQ(empty, c["psi_empty_bins"].GetInt());
    EXPECT_NEAR(JensenShannonDistance(ref, cur), c["js_distance"].GetDouble(), kTolerance);
    const TestResult chi = ChiSquare(ref, cur);
    EXPECT_NEAR(chi.statistic, c["chi2"].GetDouble(), kTolerance * std::max(1.0, c["chi2"].GetDouble()));
    EXPECT_NEAR(chi.p_value, c["chi2_p"].GetDouble(), kTolerance);
    const TestResult ks = KolmogorovSmirnovBinned(ref, cur);
    EXPECT_NEAR(ks.statistic, c["ks_binned"].GetDouble(), kTolerance);
    EXPECT_NEAR(ks.p_value, c["ks_binned_p"].GetDouble(), kTolerance);
    EXPECT_NEAR(WassersteinWeighted(points, ref, cur), c["wasserstein_weighted"].GetDouble(), kTolerance);
  }
}

TEST_F(DriftFixtures, DistributionTailsMatchScipy) {
  for (const auto& row : doc_["functions"]["kolmogorov_survival"].GetArray()) {
    EXPECT_NEAR(KolmogorovSurvival(row[0].GetDouble()), row[1].GetDouble(), kTolerance) << row[0].GetDouble();
  }
  for (const auto& row : doc_["functions"]["chi2_survival"].GetArray()) {
    EXPECT_NEAR(ChiSquareSurvival(row[0].GetDouble(), row[1].GetDouble()), row[2].GetDouble(), kTolerance)
        << row[0].GetDouble() << " df " << row[1].GetDouble();
  }
}

TEST(DriftStats, IdenticalDistributionsShowNoDriftAndEmptyInputsAreNeutral) {
  const std::vector<double> a{5, 10, 20, 10, 5};
  EXPECT_NEAR(Psi(a, a), 0, 1e-12);
  EXPECT_NEAR(JensenShannonDistance(a, a), 0, 1e-7);
  EXPECT_NEAR(KolmogorovSmirnovBinned(a, a).statistic, 0, 1e-12);
  EXPECT_NEAR(KolmogorovSmirnovBinned(a, a).p_value, 1, 1e-12);
  const std::vector<double> none{0, 0, 0, 0, 0};
  EXPECT_EQ(KolmogorovSmirnovBinned(a, none).p_value, 1);
  EXPECT_EQ(JensenShannonDistance(a, none), 0);
  EXPECT_EQ(ChiSquare(a, none).p_value, 1);
  EXPECT_EQ(KolmogorovSmirnov({}, {1.0}).p_value, 1);
  // Disjoint supports: the JS distance is at its maximum, 1 (base 2).
  EXPECT_NEAR(JensenShannonDistance(std::vector<double>{1, 0}, std::vector<double>{0, 1}), 1, 1e-12);
}

}  // namespace
}  // namespace vigil::stats
