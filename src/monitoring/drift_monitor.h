// Data and prediction drift of one model version (shared/STATISTICS.md):
// a reference profile (bin edges fixed from reference.csv, or from the
// first live rows), live counts on those edges, and windows that close by
// row count or time and are tested against the reference.
//
// Hot path: Observe() bins each row of a finished batch into one of a fixed
// set of per-thread count slabs with relaxed atomics: no lock, no
// allocation (except while the first live rows are still being collected
// as the reference). The window closer swaps the counts out and merges the
// slabs: merging is addition.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_annotations.h"
#include "monitoring/health.h"
#include "monitoring/quality.h"

namespace vigil {

enum class FeatureType { kNumeric, kCategorical };

struct FeatureSpec {
  std::string name;
  int64_t index = 0;  // column within a row of the first input (or output); -1 = the row's argmax
  FeatureType type = FeatureType::kNumeric;
};

// The `monitoring:` block of a model's config.yaml; every field has a
// default that works without configuration.
struct MonitoringConfig {
  bool enabled = true;
  // Empty: every column of the first input, numeric, named from
  // reference.csv's header (else "f0", "f1", ...).
  std::vector<FeatureSpec> features;
  int64_t reference_rows = 1000;  // live rows that become the reference without reference.csv
  // A window closes after `window_seconds` once it has min_window_rows, or
  // as soon as it has `window_rows` (a cap for heavy traffic: per-minute
  // windows up to ~16k rows/s; more rows per window would only add stored
  // windows, not power, since verdicts use effect sizes).
  int64_t window_rows = 1'000'000;
  double window_seconds = 60;
  int64_t min_window_rows = 500;  // no verdict on fewer rows
  int64_t bins = 10;              // quantile bins per numeric column (plus below / above the reference range)
  // The statistic that decides a numeric column's verdict (psi, js, wasserstein, ks) and its threshold:
  // drifted when the statistic >= threshold (for ks: when p < threshold after Benjamini–Hochberg).
  std::string numeric_method = "psi";
  double numeric_threshold = 0.25;
  std::string categorical_method = "js";  // js or chi2
  double categorical_threshold = 0.1;
  double drift_share = 0.5;   // dataset drift when at least this share of input features drifted
  int64_t alert_after = 3;    // consecutive drifted windows before an alert fires
  int64_t resolve_after = 3;  // consecutive calm windows before it resolves
  // Quality regression of endpoints serving this model (unless the
  // endpoint's spec has its own rule); the same alert_after / resolve_after.
  std::optional<QualityRule> quality;
  // Numerical health: NonFiniteValues when a window's share of NaN/±Inf
  // values exceeds `nonfinite_spike` times the reference's share (any NaN
  // when the reference has none); OutOfRangeValues when more than
  // `out_of_range_rate` of a window's input values fall outside the
  // reference's range (a reference of n rows expects about 2/(n+1)).
  double nonfinite_spike = 2;
  double out_of_range_rate = 0.05;
  // Serving health, judged per window of the server's --health-window-s.
  HealthLimits health;
};

// A column's reference distribution on its bins.
struct ColumnProfile {
  std::string name;
  bool output = false;  // a model output (prediction drift) rather than an input feature
  FeatureType type = FeatureType::kNumeric;
  int64_t column = 0;  // within a row of the first input (or output)
  // Numeric: interior edges e0 < e1 < ...; bins are (-inf, e0), [e0, e1),
  // ..., [e_last, +inf) where the first and last are out of the reference
  // range (below min / above max) and edges include min and max.
  // Categorical: the reference's values; bins are one per value plus "unseen".
  std::vector<double> edges;
  std::vector<double> counts;  // reference count per bin
  std::vector<double> points;  // numeric: a representative value per bin (Wasserstein support)
  double min = 0, max = 0, mean = 0, stddev = 0;
  int64_t rows = 0;     // finite reference values
  int64_t missing = 0;  // NaN or ±Inf in the reference

  size_t bins() const { return edges.size() + 1; }
  // The bin of a finite value (inline: it runs for every column of every row).
  size_t BinOf(double v) const {
    if (type == FeatureType::kCategorical) {
      auto it = std::lower_bound(edges.begin(), edges.end(), v);
      return it != edges.end() && *it == v ? static_cast<size_t>(it - edges.begin()) : edges.size();
    }
    if (v < edges.front()) return 0;
    if (v > edges.back()) return edges.size();
    size_t i = 0;
    if (edges.size() <= 24) {
      for (double e : edges) i += e <= v;  // no branches to mispredict
    } else {
      i = static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin());
    }
    return std::min(i, edges.size() - 1);
  }
};

// ColumnProfile::BinOf for a numeric column, branch-free: `edges` holds its
// `count` edges padded with +inf to an even length, `v` is finite. The hot
// path uses it with the edges inline in each column's plan.
size_t NumericBinOf(const double* edges, size_t count, double v);

struct ReferenceProfile {
  std::string source;  // "reference.csv" or "first N live rows"
  // 16 hex digits from the columns' names, bins and counts: windows counted
  // on profiles with the same key can be merged (replicas that read the same
  // reference.csv have the same key; live references differ).
  std::string key;
  int64_t rows = 0;
  std::vector<ColumnProfile> columns;  // inputs first, then outputs
  // The model's quality on reference.csv's labelled rows (its `label`
  // column against the model's outputs): what quality rules' `drop` is
  // measured from. Empty without labels.
  Quality quality;
};

// Reference rows, row-major: `rows` rows of `input_width` input values and
// of `output_width` output values (NaN = missing).
struct ReferenceRows {
  std::vector<double> inputs, outputs;
  std::vector<double> labels;  // one per row (NaN = none) when the file has a label column, else empty
  int64_t rows = 0;
};

// Reads reference.csv: a header row, then one row per line whose first
// `width` cells are the first input's values (an empty cell is missing);
// a later column headed `label` (or `target`) holds each row's ground
// truth; other columns are ignored. Errors name the line.
StatusOr<ReferenceRows> ReadReferenceCsv(const std::string& text, int64_t width);
// The header's column names (default feature names).
std::vector<std::string> ReferenceCsvHeader(const std::string& text);

// One column's result in a closed window.
struct ColumnDrift {
  std::string name;
  bool output = false;
  std::string method;  // the statistic the verdict used
  double statistic = 0;
  double threshold = 0;
  bool drifted = false;
  double psi = 0, js = 0, ks = 0, ks_p = 1, wasserstein = 0, chi2 = 0, chi2_p = 1;
  int64_t rows = 0;          // finite values in the window
  int64_t missing = 0;       // NaN or ±Inf
  int64_t out_of_range = 0;  // numeric: below the reference min or above its max
};

// What a window counted, on its reference's bins: merging windows of the
// same reference is adding these.
struct WindowCounts {
  std::string reference;  // ReferenceProfile::key
  int64_t rows = 0;
  std::vector<double> counts;  // per column: its bins, then missing
  std::vector<double> sums;    // per column: the sum of values below, then above the reference's range
  // Adds `other` (same reference and sizes; false and unchanged otherwise).
  bool Add(const WindowCounts& other);
};
std::string WindowCountsJson(const WindowCounts& c);
// Errors name what is wrong; sizes are bounded.
StatusOr<WindowCounts> ParseWindowCounts(const std::string& json);

struct DriftWindow {
  int64_t start_ms = 0, end_ms = 0;
  int64_t rows = 0;
  int64_t reference_rows = 0;
  std::string reference_source;
  std::vector<ColumnDrift> columns;
  double drifted_share = 0;  // of input features
  bool dataset_drift = false;
  WindowCounts counts;  // what was tested
};

// The per-column results of a window as JSON (how the store keeps them), and back.
std::string DriftColumnsJson(const DriftWindow& w);
StatusOr<std::vector<ColumnDrift>> ParseDriftColumns(const std::string& json);

// Wakes the thread that closes windows as soon as one is full, so windows
// hold window_rows rows (plus at most what arrives before that thread runs)
// rather than a whole tick of traffic. Thread-safe.
class WindowWaker {
 public:
  void Notify();
  // Waits until notified or `timeout` passes; returns whether it was notified.
  bool Wait(std::chrono::milliseconds timeout);

 private:
  Mutex mu_;
  CondVar cv_;
  bool pending_ GUARDED_BY(mu_) = false;
};

class DriftMonitor {
 public:
  // `input_width`/`output_width`: values per row of the first input and
  // output; `output_name` names the output columns. Without a reference
  // (Start not called), the first config.reference_rows live rows become it.
  DriftMonitor(MonitoringConfig config, int64_t input_width, int64_t output_width, std::string output_name);
  ~DriftMonitor();
  DriftMonitor(const DriftMonitor&) = delete;
  DriftMonitor& operator=(const DriftMonitor&) = delete;

  // Uses `rows` (e.g. reference.csv, with the model's outputs on them) as
  // the reference. Call before the first Observe.
  void SetReference(const ReferenceRows& rows, const std::string& source);

  // Records the rows of a finished batch (first input, first output).
  void Observe(const Tensor& input, const Tensor& output, int64_t rows);

  // Notified by the batch that fills a window (null: nobody is).
  void SetWaker(std::shared_ptr<WindowWaker> waker) { waker_.store(std::move(waker)); }

  // Closes the window when it is due (window_rows reached, or
  // window_seconds passed with at least min_window_rows, or `min_rows` when
  // given: a replica's partial window needs only one) and tests it.
  std::optional<DriftWindow> CloseIfDue(int64_t now_ms, std::optional<int64_t> min_rows = std::nullopt);

  // Tests counts merged from windows on this monitor's reference (its key);
  // FailedPrecondition without a reference or for another reference.
  StatusOr<DriftWindow> TestCounts(const WindowCounts& counts) const;

  // The reference in use (null while it is still being collected live).
  std::shared_ptr<const ReferenceProfile> reference() const;
  const MonitoringConfig& config() const { return config_; }

  // NaN / ±Inf seen so far in inputs and outputs (all columns, not only
  // tracked ones).
  int64_t nonfinite_inputs() const { return nonfinite_inputs_.load(std::memory_order_relaxed); }
  int64_t nonfinite_outputs() const { return nonfinite_outputs_.load(std::memory_order_relaxed); }

 private:
  // The first kSlabs threads that observe (process-wide) each own a slab
  // and are its only writer, so counting is a plain load and store; later
  // threads share one more slab with atomic read-modify-writes. Counts only
  // grow: a window is the difference from the previous snapshot.
  static constexpr size_t kSlabs = 64;
  struct alignas(64) Slab {
    std::unique_ptr<std::atomic<uint64_t>[]> counts;      // per column: its bins, then missing
    std::unique_ptr<std::atomic<double>[]> outside_sums;  // per column: sum below, sum above the range
    std::atomic<uint64_t> rows{0};
  };
  template <bool kShared>
  void Count(Slab& slab, const Tensor& input, const Tensor* output, int64_t rows);  // output: null when unusable
  void Start(std::shared_ptr<const ReferenceProfile> reference) REQUIRES(mu_);      // lays out the slabs
  void Collect(const Tensor& input, const Tensor& output, int64_t rows);            // live reference rows
  DriftWindow Test(WindowCounts counts) const;

  const MonitoringConfig config_;
  const int64_t input_width_, output_width_;
  const std::string output_name_;
  std::vector<FeatureSpec> input_specs_, output_specs_;

  std::atomic<bool> ready_{false};  // reference_ and the slabs are set
  std::shared_ptr<const ReferenceProfile> reference_;
  // Each column's place in a slab and the hot path's view of it, in one
  // contiguous array: a numeric column with at most kInlineEdges edges keeps
  // them inline, padded with +inf, for NumericBinOf.
  static constexpr size_t kInlineEdges = 16;
  struct ColumnPlan {
    double edges[kInlineEdges];  // inline numeric: the edges, then +inf
    uint32_t offset = 0;         // first counter in a slab
    uint32_t edge_count = 0;
    uint32_t index = 0;  // in reference_->columns
    int32_t column = 0;  // in the row; -1 = the row's argmax
    bool output = false;
    bool inline_numeric = false;  // else ColumnProfile::BinOf
  };
  std::vector<ColumnPlan> plan_;
  size_t counters_ = 0;
  std::array<Slab, kSlabs + 1> slabs_;  // the last is shared
  // The snapshot at the last close.
  std::vector<double> taken_counts_ GUARDED_BY(mu_);
  std::vector<double> taken_sums_ GUARDED_BY(mu_);
  uint64_t taken_rows_ GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> nonfinite_inputs_{0}, nonfinite_outputs_{0};
  // Rows counted since the reference was set, and the count at which the
  // open window is full (taken_rows_ + window_rows): the batch that crosses
  // it wakes the closer. One shared add per batch, not per row.
  std::atomic<uint64_t> observed_rows_{0};
  std::atomic<uint64_t> full_at_{0};
  std::atomic<std::shared_ptr<WindowWaker>> waker_;
  std::atomic<int64_t> first_row_ms_{0};  // Unix ms of the first row counted; 0 before it

  mutable Mutex mu_;
  ReferenceRows collected_ GUARDED_BY(mu_);  // live rows while there is no reference
  bool building_ GUARDED_BY(mu_) = false;    // collected_ is becoming the reference
  // Set by the first CloseIfDue: the first row's time, or the close attempt's when no row came before it.
  std::optional<int64_t> window_start_ms_ GUARDED_BY(mu_);
};

}  // namespace vigil
