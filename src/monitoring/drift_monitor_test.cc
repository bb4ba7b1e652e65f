#include "monitoring/drift_monitor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>

#include "monitoring/test_util.h"

namespace vigil {
namespace {

using testing::Fp32;

// Rows of 3 features: N(0,1), N(10,2), a category in {0, 1, 2}; the
// output is [p, 1 − p] with p from the first feature. `shift` moves the
// second feature by that many standard deviations.
struct Batch {
  Tensor input, output;
};
Batch MakeBatch(std::mt19937& rng, int rows, double shift = 0, double category_bias = 0) {
  std::normal_distribution<float> a(0, 1), b(10, 2);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> in, out;
  for (int r = 0; r < rows; ++r) {
    const float x = a(rng);
    in.push_back(x);
    in.push_back(b(rng) + static_cast<float>(2 * shift));
    const double c = u(rng) + category_bias;
    in.push_back(c < 0.5 ? 0.f : c < 0.8 ? 1.f : 2.f);
    const float p = 1 / (1 + std::exp(-x));
    out.push_back(p);
    out.push_back(1 - p);
  }
  return {Fp32(in, 3), Fp32(out, 2)};
}

ReferenceRows ReferenceOf(const Batch& b) {
  ReferenceRows rows;
  rows.rows = b.input.shape[0];
  for (int64_t i = 0; i < b.input.element_count(); ++i) rows.inputs.push_back(b.input.as<float>()[i]);
  for (int64_t i = 0; i < b.output.element_count(); ++i) rows.outputs.push_back(b.output.as<float>()[i]);
  return rows;
}

MonitoringConfig Config() {
  MonitoringConfig c;
  c.features = {{"x", 0}, {"y", 1}, {"kind", 2, FeatureType::kCategorical}};
  c.window_rows = 2000;
  c.min_window_rows = 500;
  return c;
}

const ColumnDrift& Column(const DriftWindow& w, const std::string& name) {
  for (const auto& c : w.columns) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no column " << name;
  return w.columns.front();
}

TEST(ColumnProfile, BinsNumericValuesByReferenceQuantilesWithOutsideBins) {
  ColumnProfile p;
  p.edges = {0, 1, 2, 3};  // min 0, max 3
  EXPECT_EQ(p.bins(), 5u);
  EXPECT_EQ(p.BinOf(-0.1), 0u);  // below the reference range
  EXPECT_EQ(p.BinOf(0), 1u);
  EXPECT_EQ(p.BinOf(0.99), 1u);
  EXPECT_EQ(p.BinOf(1), 2u);
  EXPECT_EQ(p.BinOf(3), 3u);  // the max is in range
  EXPECT_EQ(p.BinOf(3.01), 4u);
  ColumnProfile cat;
  cat.type = FeatureType::kCategorical;
  cat.edges = {0, 1, 5};
  EXPECT_EQ(cat.BinOf(5), 2u);
  EXPECT_EQ(cat.BinOf(2), 3u);  // unseen
}

// The hot path's branch-free binning agrees with ColumnProfile::BinOf on
// every edge, between edges and outside the range, for 1 to 16 edges.
TEST(ColumnProfile, NumericBinOfMatchesBinOf) {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0, 1);
  for (size_t count = 1; count <= 16; ++count) {
    ColumnProfile col;
    for (size_t i = 0; i < count; ++i) col.edges.push_back(static_cast<double>(i) * 0.5 - 2);
    double padded[16];
    std::fill(std::begin(padded), std::end(padded), std::numeric_limits<double>::infinity());
    std::copy(col.edges.begin(), col.edges.end(), padded);
    std::vector<double> values{-100, 100, col.edges.front() - 1e-9, col.edges.back() + 1e-9};
    for (double e : col.edges) values.insert(values.end(), {e, std::nextafter(e, -1e9), std::nextafter(e, 1e9)});
    for (int i = 0; i < 1000; ++i) values.push_back(normal(rng) * 3);
    for (double v : values) {
      ASSERT_EQ(NumericBinOf(padded, count, v), col.BinOf(v)) << count << " edges, v = " << v;
    }
  }
}

TEST(ReferenceCsv, ReadsTheFirstColumnsAndNamesBadCells) {
  const std::string csv = "a,b,label\n1,2,0\n3,,1\n\n5,6.5,1\n";
  auto rows = ReadReferenceCsv(csv, 2);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  EXPECT_EQ(rows->rows, 3);
  ASSERT_EQ(rows->inputs.size(), 6u);
  EXPECT_EQ(rows->inputs[0], 1);
  EXPECT_TRUE(std::isnan(rows->inputs[3]));  // an empty cell is missing
  EXPECT_EQ(rows->inputs[5], 6.5);
  EXPECT_EQ(ReferenceCsvHeader(csv), (std::vector<std::string>{"a", "b", "label"}));
  EXPECT_EQ(rows->labels, (std::vector<double>{0, 1, 1}));
  // The label column may sit anywhere after the inputs; an empty label is none.
  auto later = ReadReferenceCsv("a,b,note,target\n1,2,x,1\n3,4,y,\n", 2);
  ASSERT_TRUE(later.ok()) << later.status().message();
  ASSERT_EQ(later->labels.size(), 2u);
  EXPECT_EQ(later->labels[0], 1);
  EXPECT_TRUE(std::isnan(later->labels[1]));
  EXPECT_TRUE(ReadReferenceCsv("a,b\n1,2\n", 2)->labels.empty());
  auto bad_label = ReadReferenceCsv("a,b,label\n1,2,yes\n", 2);
  ASSERT_FALSE(bad_label.ok());
  EXPECT_NE(bad_label.status().message().find("line 2 column 3 (label): 'yes'"), std::string::npos)
      << bad_label.status().message();
  auto bad = ReadReferenceCsv("a,b\n1,x\n", 2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2 column 2: 'x' is not a number"), std::string::npos)
      << bad.status().message();
  auto short_row = ReadReferenceCsv("a,b,c\n1,2\n", 3);
  ASSERT_FALSE(short_row.ok());
  EXPECT_NE(short_row.status().message().find("line 2"), std::string::npos) << short_row.status().message();
  EXPECT_FALSE(ReadReferenceCsv("a,b\n", 2).ok());
}

TEST(DriftMonitor, LabelledReferenceRowsGiveTheModelsReferenceQuality) {
  DriftMonitor m(Config(), 3, 2, "probabilities");
  ReferenceRows rows;
  rows.rows = 5;
  rows.inputs = std::vector<double>(15, 1.0);
  rows.outputs = {0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7, 0.5, 0.5};
  rows.labels = {0, 1, 1, 1, std::nan("")};  // the last row has no label
  m.SetReference(rows, "reference.csv");
  const auto ref = m.reference();
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(ref->quality.labeled, 4u);
  EXPECT_DOUBLE_EQ(*QualityMetric(ref->quality, "accuracy"), 0.75);  // the third row is predicted 0
  EXPECT_DOUBLE_EQ(*QualityMetric(ref->quality, "recall"), 2.0 / 3);
  EXPECT_FALSE(QualityMetric(ref->quality, "mae"));

  DriftMonitor unlabelled(Config(), 3, 2, "probabilities");
  rows.labels.clear();
  unlabelled.SetReference(rows, "reference.csv");
  EXPECT_EQ(unlabelled.reference()->quality.labeled, 0u);
  EXPECT_FALSE(QualityMetric(unlabelled.reference()->quality, "accuracy"));
}

TEST(DriftMonitor, TheBatchThatFillsAWindowWakesTheCloser) {
  std::mt19937 rng(3);
  MonitoringConfig config = Config();
  config.window_rows = 100;
  config.min_window_rows = 50;
  DriftMonitor m(config, 3, 2, "probabilities");
  m.SetReference(ReferenceOf(MakeBatch(rng, 1000)), "reference.csv");
  auto waker = std::make_shared<WindowWaker>();
  m.SetWaker(waker);
  for (int round = 0; round < 2; ++round) {
    const Batch b = MakeBatch(rng, 99);
    m.Observe(b.input, b.output, 99);
    EXPECT_FALSE(waker->Wait(std::chrono::milliseconds(0)));
    const Batch one = MakeBatch(rng, 1);
    m.Observe(one.input, one.output, 1);
    EXPECT_TRUE(waker->Wait(std::chrono::milliseconds(0)));
    EXPECT_FALSE(waker->Wait(std::chrono::milliseconds(0)));  // once per window
    auto w = m.CloseIfDue(1000 * (round + 1));
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->rows, 100);
  }
}

TEST(DriftMonitor, SameDistributionStaysCalmAndAShiftIsNamed) {
  std::mt19937 rng(7);
  DriftMonitor m(Config(), 3, 2, "probabilities");
  m.SetReference(ReferenceOf(MakeBatch(rng, 2000)), "reference.csv");
  ASSERT_NE(m.reference(), nullptr);
  EXPECT_EQ(m.reference()->columns.size(), 3u + 3u);  // x, y, kind; probabilities[0], [1], :argmax

  // Two threads, as serving threads would, same distribution.
  std::vector<Batch> batches;
  for (int i = 0; i < 40; ++i) batches.push_back(MakeBatch(rng, 50));
  auto feed = [&](int from) {
    for (int i = from; i < 40; i += 2) m.Observe(batches[i].input, batches[i].output, 50);
  };
  std::thread t1(feed, 0), t2(feed, 1);
  t1.join();
  t2.join();
  auto calm = m.CloseIfDue(1000);
  ASSERT_TRUE(calm.has_value());
  EXPECT_EQ(calm->rows, 2000);
  EXPECT_EQ(calm->reference_source, "reference.csv");
  for (const auto& c : calm->columns) {
    EXPECT_FALSE(c.drifted) << c.name << " psi " << c.psi;
    EXPECT_EQ(c.rows, 2000) << c.name;
  }
  EXPECT_FALSE(calm->dataset_drift);
  EXPECT_FALSE(m.CloseIfDue(1001).has_value());  // the counts were taken

  // y shifted by one standard deviation; the category mix moved too.
  for (int i = 0; i < 40; ++i) {
    Batch b = MakeBatch(rng, 50, 1.0, 0.3);
    m.Observe(b.input, b.output, 50);
  }
  auto shifted = m.CloseIfDue(2000);
  ASSERT_TRUE(shifted.has_value());
  EXPECT_FALSE(Column(*shifted, "x").drifted);
  EXPECT_TRUE(Column(*shifted, "y").drifted) << Column(*shifted, "y").psi;
  EXPECT_GT(Column(*shifted, "y").psi, 0.25);
  EXPECT_GT(Column(*shifted, "y").wasserstein, 0.7);  // ≈ 1 standard deviation
  EXPECT_LT(Column(*shifted, "y").ks_p, 1e-6);
  EXPECT_GT(Column(*shifted, "y").out_of_range, 0);
  EXPECT_TRUE(Column(*shifted, "kind").drifted) << Column(*shifted, "kind").js;
  EXPECT_NEAR(shifted->drifted_share, 2.0 / 3, 1e-9);
  EXPECT_TRUE(shifted->dataset_drift);
  EXPECT_EQ(shifted->start_ms, 1000);
  EXPECT_EQ(shifted->end_ms, 2000);
}

TEST(DriftMonitor, WithoutAReferenceTheFirstLiveRowsBecomeIt) {
  std::mt19937 rng(8);
  MonitoringConfig c = Config();
  c.reference_rows = 300;
  DriftMonitor m(c, 3, 2, "probabilities");
  EXPECT_EQ(m.reference(), nullptr);
  for (int i = 0; i < 6; ++i) {
    Batch b = MakeBatch(rng, 50);
    m.Observe(b.input, b.output, 50);
  }
  ASSERT_NE(m.reference(), nullptr);
  EXPECT_EQ(m.reference()->source, "first 300 live rows");
  EXPECT_EQ(m.reference()->rows, 300);
  EXPECT_FALSE(m.CloseIfDue(5).has_value());  // nothing counted yet
}

TEST(DriftMonitor, TimeClosesAWindowOnlyOnceItHasTheMinimumRows) {
  std::mt19937 rng(9);
  DriftMonitor m(Config(), 3, 2, "probabilities");
  m.SetReference(ReferenceOf(MakeBatch(rng, 1000)), "reference.csv");
  EXPECT_FALSE(m.CloseIfDue(0).has_value());  // starts the window
  Batch b = MakeBatch(rng, 400);
  m.Observe(b.input, b.output, 400);
  EXPECT_FALSE(m.CloseIfDue(120'000).has_value());  // 400 < min_window_rows
  m.Observe(b.input, b.output, 200);
  auto w = m.CloseIfDue(121'000);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->rows, 600);
}

TEST(DriftMonitor, WindowsOnOneReferenceMergeByAdditionIntoWhatOneMonitorWouldSee) {
  std::mt19937 rng(12);
  const ReferenceRows reference = ReferenceOf(MakeBatch(rng, 1000));
  DriftMonitor a(Config(), 3, 2, "probabilities"), b(Config(), 3, 2, "probabilities"),
      whole(Config(), 3, 2, "probabilities");
  for (DriftMonitor* m : {&a, &b, &whole}) m->SetReference(reference, "reference.csv");
  EXPECT_EQ(a.reference()->key, b.reference()->key);
  EXPECT_EQ(a.reference()->key.size(), 16u);
  for (DriftMonitor* m : {&a, &b, &whole}) m->CloseIfDue(0);
  Batch first = MakeBatch(rng, 300, 1.5), second = MakeBatch(rng, 300, 1.5);
  first.input.mutable_as<float>()[0] = std::nanf("");  // a missing value and one far outside the range
  second.input.mutable_as<float>()[3] = 1e6f;
  a.Observe(first.input, first.output, 300);
  b.Observe(second.input, second.output, 300);
  whole.Observe(first.input, first.output, 300);
  whole.Observe(second.input, second.output, 300);
  // A partial window needs only one row; the whole needs min_window_rows.
  auto wa = a.CloseIfDue(61'000, 1), wb = b.CloseIfDue(61'000, 1), ww = whole.CloseIfDue(61'000);
  ASSERT_TRUE(wa && wb && ww);
  // Stored as JSON and read back, then added.
  auto ca = ParseWindowCounts(WindowCountsJson(wa->counts));
  auto cb = ParseWindowCounts(WindowCountsJson(wb->counts));
  ASSERT_TRUE(ca.ok() && cb.ok()) << ca.status().message() << cb.status().message();
  EXPECT_EQ(ca->counts, wa->counts.counts);
  EXPECT_EQ(ca->sums, wa->counts.sums);
  WindowCounts sum = *ca;
  ASSERT_TRUE(sum.Add(*cb));
  auto merged = a.TestCounts(sum);
  ASSERT_TRUE(merged.ok()) << merged.status().message();
  EXPECT_EQ(merged->rows, 600);
  ASSERT_EQ(merged->columns.size(), ww->columns.size());
  for (size_t c = 0; c < ww->columns.size(); ++c) {
    const ColumnDrift &m = merged->columns[c], &w = ww->columns[c];
    EXPECT_EQ(m.rows, w.rows) << w.name;
    EXPECT_EQ(m.missing, w.missing) << w.name;
    EXPECT_EQ(m.out_of_range, w.out_of_range) << w.name;
    EXPECT_EQ(m.drifted, w.drifted) << w.name;
    for (auto [x, y] :
         {std::pair{m.psi, w.psi}, {m.js, w.js}, {m.ks_p, w.ks_p}, {m.wasserstein, w.wasserstein}, {m.chi2, w.chi2}}) {
      EXPECT_NEAR(x, y, 1e-12) << w.name;
    }
  }
  EXPECT_TRUE(Column(*merged, "y").drifted);
  EXPECT_EQ(merged->dataset_drift, ww->dataset_drift);
  // The columns as stored read back the same.
  auto columns = ParseDriftColumns(DriftColumnsJson(*merged));
  ASSERT_TRUE(columns.ok());
  ASSERT_EQ(columns->size(), merged->columns.size());
  EXPECT_EQ((*columns)[1].name, "y");
  EXPECT_EQ((*columns)[1].drifted, merged->columns[1].drifted);
  EXPECT_DOUBLE_EQ((*columns)[1].psi, merged->columns[1].psi);

  // Counts on another reference do not add, and a monitor refuses them.
  DriftMonitor other(Config(), 3, 2, "probabilities");
  other.SetReference(ReferenceOf(MakeBatch(rng, 800)), "first 800 live rows");
  EXPECT_NE(other.reference()->key, a.reference()->key);
  EXPECT_FALSE(other.TestCounts(sum).ok());
  WindowCounts foreign = sum;
  foreign.reference = other.reference()->key;
  EXPECT_FALSE(sum.Add(foreign));
  EXPECT_EQ(sum.rows, 600);
  foreign = sum;
  foreign.counts.pop_back();
  EXPECT_FALSE(a.TestCounts(foreign).ok());
}

TEST(WindowCounts, BadStoredCountsAreRefusedWithWhatIsWrong) {
  for (const auto& [json, error] : std::vector<std::pair<std::string, std::string>>{
           {"[]", "not a JSON object"},
           {R"({"rows": 1, "counts": [], "sums": []})", "'reference'"},
           {R"({"reference": "k", "rows": -1, "counts": [], "sums": []})", "'rows'"},
           {R"({"reference": "k", "rows": 1, "sums": []})", "'counts'"},
           {R"({"reference": "k", "rows": 1, "counts": ["1"], "sums": []})", "'counts' holds a value"},
           {R"({"reference": "k", "rows": 1, "counts": [-1], "sums": []})", "not a count"},
           {R"({"reference": "k", "rows": 1, "counts": [0.5], "sums": []})", "not a count"},
           {R"({"reference": "k", "rows": 1, "counts": [1e300], "sums": []})", "not a count"},
           {R"({"reference": "k", "rows": 1e300, "counts": [], "sums": []})", "'rows'"},
           {R"({"reference": "k", "rows": 1, "counts": [1], "sums": {}})", "'sums'"},
           {"{", "malformed JSON"},
       }) {
    auto parsed = ParseWindowCounts(json);
    ASSERT_FALSE(parsed.ok()) << json;
    EXPECT_NE(parsed.status().message().find(error), std::string::npos) << json << ": " << parsed.status().message();
  }
}

TEST(DriftMonitor, CountsNonFiniteValuesAndKeepsThemOutOfTheBins) {
  std::mt19937 rng(10);
  DriftMonitor m(Config(), 3, 2, "probabilities");
  m.SetReference(ReferenceOf(MakeBatch(rng, 1000)), "reference.csv");
  Batch b = MakeBatch(rng, 600);
  b.input.mutable_as<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  b.input.mutable_as<float>()[4] = std::numeric_limits<float>::infinity();
  b.output.mutable_as<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  m.Observe(b.input, b.output, 600);
  EXPECT_EQ(m.nonfinite_inputs(), 2);
  EXPECT_EQ(m.nonfinite_outputs(), 1);
  m.CloseIfDue(0);
  auto w = m.CloseIfDue(61'000);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(Column(*w, "y").missing, 2);
  EXPECT_EQ(Column(*w, "y").rows, 598);
  EXPECT_EQ(Column(*w, "probabilities[0]").missing, 1);
}

TEST(DriftMonitor, KsVerdictsAreCorrectedForManyFeatures) {
  std::mt19937 rng(11);
  MonitoringConfig c = Config();
  c.numeric_method = "ks";
  c.numeric_threshold = 0.05;
  DriftMonitor m(c, 3, 2, "probabilities");
  m.SetReference(ReferenceOf(MakeBatch(rng, 2000)), "reference.csv");
  for (int i = 0; i < 40; ++i) {
    Batch b = MakeBatch(rng, 50, 0.5);
    m.Observe(b.input, b.output, 50);
  }
  auto w = m.CloseIfDue(0);  // 2000 rows: full
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(Column(*w, "y").method, "ks");
  EXPECT_TRUE(Column(*w, "y").drifted);
  EXPECT_FALSE(Column(*w, "x").drifted);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(ReferenceCsv, QuotedCellsAreReadLikeAnyOther) {
  const std::string csv = "\"radius, mean\",\"texture\",label\r\n\"1.5\",2,1\n3,\"4\",\n";
  EXPECT_EQ(ReferenceCsvHeader(csv), (std::vector<std::string>{"radius, mean", "texture", "label"}));
  auto rows = ReadReferenceCsv(csv, 2);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  EXPECT_EQ(rows->inputs, (std::vector<double>{1.5, 2, 3, 4}));
  ASSERT_EQ(rows->labels.size(), 2u);
  EXPECT_EQ(rows->labels[0], 1);
  EXPECT_TRUE(std::isnan(rows->labels[1]));  // no label yet
  auto open = ReadReferenceCsv("a,b\n\"1,2\n", 2);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("line 2: a quoted cell is not closed"), std::string::npos);
}

}  // namespace
}  // namespace vigil
