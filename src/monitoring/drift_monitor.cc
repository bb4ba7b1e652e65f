#include "monitoring/drift_monitor.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/clock.h"
#include "core/csv.h"
#include "core/hash.h"
#include "monitoring/drift_stats.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"

namespace vigil {
namespace {

constexpr int64_t kMaxOutputColumns = 8;
constexpr size_t kMaxCategories = 100;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A process-wide index per observing thread: slab `index` when below
// kSlabs, else the shared slab.
std::atomic<size_t> g_next_thread{0};
size_t ThreadIndex() {
  thread_local const size_t index = g_next_thread.fetch_add(1, std::memory_order_relaxed);
  return index;
}

// Adds to a counter that only this thread writes (kShared false), or that
// several may (true).
template <bool kShared, typename T>
void Add(std::atomic<T>& counter, T v) {
  if constexpr (kShared) {
    counter.fetch_add(v, std::memory_order_relaxed);
  } else {
    counter.store(counter.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
}

// How many of `edges[0, n)` (n even; padding is +inf) are <= v, two at a
// time where SSE2 is there.
size_t CountAtMost(const double* edges, size_t n, double v) {
#if defined(__SSE2__)
  const __m128d x = _mm_set1_pd(v);
  __m128i count = _mm_setzero_si128();
  for (size_t k = 0; k < n; k += 2) {
    count = _mm_sub_epi64(count, _mm_castpd_si128(_mm_cmple_pd(_mm_loadu_pd(edges + k), x)));  // true is -1
  }
  return static_cast<size_t>(_mm_cvtsi128_si64(count) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(count, count)));
#else
  size_t count = 0;
  for (size_t k = 0; k < n; ++k) count += edges[k] <= v;
  return count;
#endif
}

double ValueAt(const Tensor& t, int64_t i) {
  switch (t.datatype) {
    case DataType::kFp32:
      return t.as<float>()[i];
    case DataType::kFp64:
      return t.as<double>()[i];
    case DataType::kInt64:
      return static_cast<double>(t.as<int64_t>()[i]);
    case DataType::kInt32:
      return t.as<int32_t>()[i];
    case DataType::kUint8:
    case DataType::kBool:
      return t.as<uint8_t>()[i];
    default:
      return kNaN;
  }
}

// NaN and infinities among the first `n` values (only floats have them).
int64_t NonFinite(const Tensor& t, int64_t n) {
  int64_t bad = 0;
  if (t.datatype == DataType::kFp32) {
    const float* p = t.as<float>();
    for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  } else if (t.datatype == DataType::kFp64) {
    const double* p = t.as<double>();
    for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  }
  return bad;
}

bool Numeric(const Tensor& t) {
  switch (t.datatype) {
    case DataType::kFp32:
    case DataType::kFp64:
    case DataType::kInt64:
    case DataType::kInt32:
    case DataType::kUint8:
    case DataType::kBool:
      return true;
    default:
      return false;
  }
}

// Column `index` (-1: the argmax) of row `r` in a row-major source of
// `width` values.
template <typename Get>
double Pick(int64_t index, int64_t width, int64_t r, Get get) {
  if (index >= 0) return get(r * width + index);
  int64_t best = 0;  // argmax of the row
  for (int64_t j = 1; j < width; ++j) {
    if (get(r * width + j) > get(r * width + best)) best = j;
  }
  return static_cast<double>(best);
}

// numpy's default (linear) quantile of sorted values.
double Quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

ColumnProfile Profile(const FeatureSpec& spec, bool output, const std::vector<double>& values, int64_t bins) {
  ColumnProfile p;
  p.name = spec.name;
  p.output = output;
  p.type = spec.type;
  p.column = spec.index;
  std::vector<double> finite;
  for (double v : values) {
    if (std::isfinite(v)) {
      finite.push_back(v);
    } else {
      ++p.missing;
    }
  }
  std::sort(finite.begin(), finite.end());
  p.rows = static_cast<int64_t>(finite.size());
  if (!finite.empty()) {
    p.min = finite.front();
    p.max = finite.back();
    double sum = 0, sq = 0;
    for (double v : finite) sum += v;
    p.mean = sum / static_cast<double>(finite.size());
    for (double v : finite) sq += (v - p.mean) * (v - p.mean);
    p.stddev = std::sqrt(sq / static_cast<double>(finite.size()));
  }
  if (p.type == FeatureType::kCategorical) {
    p.edges = finite;
    p.edges.erase(std::unique(p.edges.begin(), p.edges.end()), p.edges.end());
    if (p.edges.size() > kMaxCategories) p.edges.resize(kMaxCategories);
  } else if (!finite.empty()) {
    for (int64_t j = 0; j <= bins; ++j) p.edges.push_back(Quantile(finite, static_cast<double>(j) / bins));
    p.edges.erase(std::unique(p.edges.begin(), p.edges.end()), p.edges.end());
    if (p.edges.size() == 1) p.edges.push_back(p.edges[0]);  // a constant column keeps one in-range bin
  } else {
    p.edges = {0, 0};
  }
  p.counts.assign(p.bins(), 0);
  std::vector<double> sums(p.bins(), 0);
  for (double v : finite) {
    const size_t b = p.BinOf(v);
    p.counts[b] += 1;
    sums[b] += v;
  }
  if (p.type == FeatureType::kNumeric) {
    // Wasserstein support: each bin's reference mean (its midpoint when
    // empty); the outside bins sit at the range ends until live values
    // land there.
    p.points.resize(p.bins());
    p.points.front() = p.edges.front();
    p.points.back() = p.edges.back();
    for (size_t b = 1; b + 1 < p.bins(); ++b) {
      p.points[b] = p.counts[b] > 0 ? sums[b] / p.counts[b] : (p.edges[b - 1] + p.edges[b]) / 2;
    }
  }
  return p;
}

// Benjamini–Hochberg at level `alpha`: which of `p` are discoveries.
std::vector<bool> BenjaminiHochberg(const std::vector<double>& p, double alpha) {
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  size_t cut = 0;  // the largest k with p_(k) <= k/m · alpha
  for (size_t k = 1; k <= order.size(); ++k) {
    if (p[order[k - 1]] <= static_cast<double>(k) / static_cast<double>(p.size()) * alpha) cut = k;
  }
  std::vector<bool> out(p.size(), false);
  for (size_t k = 0; k < cut; ++k) out[order[k]] = true;
  return out;
}

// What makes windows mergeable: the columns, their bins and the reference's
// counts on them, hashed (two 32-bit halves with different seeds).
std::string ReferenceKey(const ReferenceProfile& p) {
  std::string bytes;
  auto add = [&bytes](const void* data, size_t n) { bytes.append(static_cast<const char*>(data), n); };
  for (const ColumnProfile& c : p.columns) {
    bytes += c.name;
    bytes += '\0';
    const char flags[2] = {static_cast<char>(c.output), static_cast<char>(c.type)};
    add(flags, sizeof flags);
    add(&c.column, sizeof c.column);
    for (const auto* values : {&c.edges, &c.counts}) {
      const uint64_t n = values->size();
      add(&n, sizeof n);
      add(values->data(), values->size() * sizeof(double));
    }
  }
  return fmt::format("{:08x}{:08x}", Murmur3_32(bytes, 0x9747b28cu), Murmur3_32(bytes, 0x5bd1e995u));
}

}  // namespace

size_t NumericBinOf(const double* edges, size_t count, double v) {
  const size_t b = CountAtMost(edges, (count + 1) / 2 * 2, v);
  return b == count && !(v > edges[count - 1]) ? count - 1 : b;  // the reference's max is in range
}

StatusOr<ReferenceRows> ReadReferenceCsv(const std::string& text, int64_t width) {
  auto parsed = ParseCsv(text);
  if (!parsed.ok()) return InvalidArgument("reference.csv " + parsed.status().message());
  const std::vector<CsvRow>& rows = *parsed;
  ReferenceRows out;
  int64_t label_column = -1;
  if (!rows.empty()) {
    const std::vector<std::string>& header = rows[0].cells;
    for (size_t i = static_cast<size_t>(width); i < header.size(); ++i) {
      if (header[i] == "label" || header[i] == "target") {
        label_column = static_cast<int64_t>(i);
        break;
      }
    }
  }
  for (size_t r = 1; r < rows.size(); ++r) {  // rows[0] is the header
    const CsvRow& row = rows[r];
    if (static_cast<int64_t>(row.cells.size()) < width) {
      return InvalidArgument("reference.csv line " + std::to_string(row.line) + ": " +
                             std::to_string(row.cells.size()) + " values, the first input has " +
                             std::to_string(width) + " per row");
    }
    for (int64_t col = 0; col < width; ++col) {
      auto v = CsvNumber(row.cells[static_cast<size_t>(col)]);
      if (!v.ok()) {
        return InvalidArgument("reference.csv line " + std::to_string(row.line) + " column " + std::to_string(col + 1) +
                               ": " + v.status().message());
      }
      out.inputs.push_back(*v);
    }
    if (label_column >= 0) {
      double label = kNaN;
      if (static_cast<size_t>(label_column) < row.cells.size()) {
        auto v = CsvNumber(row.cells[static_cast<size_t>(label_column)]);
        if (!v.ok()) {
          return InvalidArgument("reference.csv line " + std::to_string(row.line) + " column " +
                                 std::to_string(label_column + 1) + " (" +
                                 rows[0].cells[static_cast<size_t>(label_column)] + "): " + v.status().message());
        }
        label = *v;
      }
      out.labels.push_back(label);
    }
    ++out.rows;
  }
  if (out.rows == 0) return InvalidArgument("reference.csv has no data rows");
  return out;
}

std::vector<std::string> ReferenceCsvHeader(const std::string& text) {
  // The header is the first row (the rest is not read); a header that does not parse is none.
  auto rows = ParseCsv(text, 1, /*stop_at_max=*/true);
  return rows.ok() && !rows->empty() ? (*rows)[0].cells : std::vector<std::string>{};
}

DriftMonitor::DriftMonitor(MonitoringConfig config, int64_t input_width, int64_t output_width, std::string output_name)
    : config_(std::move(config)),
      input_width_(input_width),
      output_width_(output_width),
      output_name_(std::move(output_name)) {
  input_specs_ = config_.features;
  if (input_specs_.empty()) {
    for (int64_t i = 0; i < input_width_; ++i) input_specs_.push_back({"f" + std::to_string(i), i});
  }
  for (int64_t j = 0; j < std::min(output_width_, kMaxOutputColumns); ++j) {
    output_specs_.push_back({output_name_ + "[" + std::to_string(j) + "]", j});
  }
  if (output_width_ > 1) output_specs_.push_back({output_name_ + ":argmax", -1, FeatureType::kCategorical});
}

DriftMonitor::~DriftMonitor() = default;

void DriftMonitor::SetReference(const ReferenceRows& rows, const std::string& source) {
  auto profile = std::make_shared<ReferenceProfile>();
  profile->source = source;
  profile->rows = rows.rows;
  auto add = [&](const std::vector<FeatureSpec>& specs, const std::vector<double>& data, int64_t width, bool output) {
    if (width <= 0 || static_cast<int64_t>(data.size()) < rows.rows * width) return;
    for (const auto& spec : specs) {
      std::vector<double> values(static_cast<size_t>(rows.rows));
      for (int64_t r = 0; r < rows.rows; ++r) {
        values[static_cast<size_t>(r)] =
            Pick(spec.index, width, r, [&](int64_t i) { return data[static_cast<size_t>(i)]; });
      }
      profile->columns.push_back(Profile(spec, output, values, config_.bins));
    }
  };
  add(input_specs_, rows.inputs, input_width_, false);
  add(output_specs_, rows.outputs, output_width_, true);
  if (static_cast<int64_t>(rows.labels.size()) == rows.rows && output_width_ > 0 &&
      static_cast<int64_t>(rows.outputs.size()) >= rows.rows * output_width_) {
    std::vector<Outcome> outcomes;
    for (int64_t r = 0; r < rows.rows; ++r) {
      const double label = rows.labels[static_cast<size_t>(r)];
      if (std::isnan(label)) continue;
      const auto first = rows.outputs.begin() + r * output_width_;
      outcomes.push_back({{first, first + output_width_}, label, std::nullopt, std::nullopt});
    }
    profile->quality = ComputeQuality(outcomes);
  }
  profile->key = ReferenceKey(*profile);
  MutexLock lock(mu_);
  Start(std::move(profile));
}

void DriftMonitor::Start(std::shared_ptr<const ReferenceProfile> reference) {
  reference_ = std::move(reference);
  counters_ = 0;
  plan_.clear();
  for (const auto& c : reference_->columns) {
    ColumnPlan p{};
    p.offset = static_cast<uint32_t>(counters_);
    p.edge_count = static_cast<uint32_t>(c.edges.size());
    p.index = static_cast<uint32_t>(plan_.size());
    p.column = static_cast<int32_t>(c.column);
    p.output = c.output;
    p.inline_numeric = c.type == FeatureType::kNumeric && !c.edges.empty() && c.edges.size() <= kInlineEdges;
    std::fill(std::begin(p.edges), std::end(p.edges), std::numeric_limits<double>::infinity());
    if (p.inline_numeric) {
      std::copy(c.edges.begin(), c.edges.end(), p.edges);
    }
    plan_.push_back(p);
    counters_ += c.bins() + 1;  // + missing
  }
  for (auto& slab : slabs_) {
    slab.counts = std::make_unique<std::atomic<uint64_t>[]>(counters_);
    slab.outside_sums = std::make_unique<std::atomic<double>[]>(2 * reference_->columns.size());
  }
  collected_ = {};
  full_at_.store(observed_rows_.load(std::memory_order_relaxed) + static_cast<uint64_t>(config_.window_rows),
                 std::memory_order_relaxed);
  ready_.store(true, std::memory_order_release);
}

std::shared_ptr<const ReferenceProfile> DriftMonitor::reference() const {
  MutexLock lock(mu_);
  return reference_;
}

void DriftMonitor::Collect(const Tensor& input, const Tensor& output, int64_t rows) {
  MutexLock lock(mu_);
  if (ready_.load(std::memory_order_relaxed) || building_) return;
  for (int64_t r = 0; r < rows && collected_.rows < config_.reference_rows; ++r) {
    for (int64_t i = 0; i < input_width_; ++i) collected_.inputs.push_back(ValueAt(input, r * input_width_ + i));
    for (int64_t j = 0; j < output_width_; ++j) {
      collected_.outputs.push_back(Numeric(output) ? ValueAt(output, r * output_width_ + j) : kNaN);
    }
    ++collected_.rows;
  }
  if (collected_.rows < config_.reference_rows) return;
  building_ = true;  // rows arriving meanwhile are not counted anywhere
  const ReferenceRows reference = std::move(collected_);
  collected_ = {};
  lock.Unlock();
  SetReference(reference, "first " + std::to_string(reference.rows) + " live rows");
}

void DriftMonitor::Observe(const Tensor& input, const Tensor& output, int64_t rows) {
  if (!Numeric(input) || input.element_count() < rows * input_width_) return;
  const bool outputs = Numeric(output) && output.element_count() >= rows * output_width_;
  // Numerical health, over every value (not only the tracked columns).
  const int64_t bad_in = NonFinite(input, rows * input_width_);
  const int64_t bad_out = outputs ? NonFinite(output, rows * output_width_) : 0;
  if (bad_in) nonfinite_inputs_.fetch_add(bad_in, std::memory_order_relaxed);
  if (bad_out) nonfinite_outputs_.fetch_add(bad_out, std::memory_order_relaxed);

  if (!ready_.load(std::memory_order_acquire)) return Collect(input, output, rows);
  const size_t index = ThreadIndex();
  if (index < kSlabs) {
    Count<false>(slabs_[index], input, outputs ? &output : nullptr, rows);
  } else {
    Count<true>(slabs_[kSlabs], input, outputs ? &output : nullptr, rows);
  }
  // The first window starts at the first row (not at the first close attempt, which may come a tick later).
  if (first_row_ms_.load(std::memory_order_relaxed) == 0) first_row_ms_.store(UnixMillis(), std::memory_order_relaxed);
  const auto n = static_cast<uint64_t>(rows);
  const uint64_t before = observed_rows_.fetch_add(n, std::memory_order_release);
  const uint64_t full_at = full_at_.load(std::memory_order_relaxed);
  if (before < full_at && before + n >= full_at) {
    if (auto waker = waker_.load()) waker->Notify();
  }
}

void WindowWaker::Notify() {
  {
    MutexLock lock(mu_);
    pending_ = true;
  }
  cv_.NotifyOne();
}

bool WindowWaker::Wait(std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pending_ && cv_.WaitUntil(lock, deadline)) {
  }
  const bool notified = pending_;
  pending_ = false;
  return notified;
}

template <bool kShared>
void DriftMonitor::Count(Slab& slab, const Tensor& input, const Tensor* output, int64_t rows) {
  const bool outputs = output != nullptr;
  const auto& columns = reference_->columns;
  // One row at a time, its values read once into doubles.
  constexpr int64_t kRowBuffer = 512;
  double in_row[kRowBuffer], out_row[kMaxOutputColumns * 2];
  const bool buffered = input_width_ <= kRowBuffer && output_width_ <= kMaxOutputColumns * 2;
  auto read_row = [](const Tensor& t, int64_t r, int64_t width, double* row) {
    if (t.datatype == DataType::kFp32) {  // the common case, without a switch per value
      const float* values = t.as<float>() + r * width;
      for (int64_t i = 0; i < width; ++i) row[i] = values[i];
    } else {
      for (int64_t i = 0; i < width; ++i) row[i] = ValueAt(t, r * width + i);
    }
  };
  for (int64_t r = 0; r < rows; ++r) {
    if (buffered) {
      read_row(input, r, input_width_, in_row);
      if (outputs) read_row(*output, r, output_width_, out_row);
    }
    for (const ColumnPlan& p : plan_) {
      if (p.output && !outputs) continue;
      const int64_t width = p.output ? output_width_ : input_width_;
      double v;
      if (buffered) {
        const double* row = p.output ? out_row : in_row;
        v = Pick(p.column, width, 0, [row](int64_t i) { return row[i]; });
      } else {
        const Tensor& t = p.output ? *output : input;
        v = Pick(p.column, width, r, [&t](int64_t i) { return ValueAt(t, i); });
      }
      std::atomic<uint64_t>* counts = &slab.counts[p.offset];
      if (!std::isfinite(v)) {
        Add<kShared>(counts[p.edge_count + 1], uint64_t{1});  // missing, after the bins
        continue;
      }
      if (!p.inline_numeric) {
        Add<kShared>(counts[columns[p.index].BinOf(v)], uint64_t{1});
        continue;
      }
      // ColumnProfile::BinOf for numeric columns, branch-free: the number of
      // edges <= v, except that the reference's max itself is in range.
      const size_t b = NumericBinOf(p.edges, p.edge_count, v);
      Add<kShared>(counts[b], uint64_t{1});
      if (b == 0 || b == p.edge_count) Add<kShared>(slab.outside_sums[2 * p.index + (b == 0 ? 0 : 1)], v);
    }
  }
  Add<kShared>(slab.rows, static_cast<uint64_t>(rows));
}

std::optional<DriftWindow> DriftMonitor::CloseIfDue(int64_t now_ms, std::optional<int64_t> min_rows) {
  if (!ready_.load(std::memory_order_acquire)) return std::nullopt;
  MutexLock lock(mu_);
  if (!window_start_ms_) {
    const int64_t first = first_row_ms_.load(std::memory_order_relaxed);
    window_start_ms_ = first > 0 ? std::min(first, now_ms) : now_ms;
  }
  uint64_t total_rows = 0;
  for (const auto& slab : slabs_) total_rows += slab.rows.load(std::memory_order_relaxed);
  const auto n = static_cast<int64_t>(total_rows - taken_rows_);
  const bool full = n >= config_.window_rows;
  const bool timed = now_ms - *window_start_ms_ >= static_cast<int64_t>(config_.window_seconds * 1000) &&
                     n >= min_rows.value_or(config_.min_window_rows) && n > 0;
  if (!full && !timed) return std::nullopt;

  // Counts only grow; the window is what they gained since the last close.
  std::vector<double> counts(counters_, 0), sums(2 * reference_->columns.size(), 0);
  for (const auto& slab : slabs_) {
    for (size_t i = 0; i < counters_; ++i)
      counts[i] += static_cast<double>(slab.counts[i].load(std::memory_order_relaxed));
    for (size_t i = 0; i < sums.size(); ++i) sums[i] += slab.outside_sums[i].load(std::memory_order_relaxed);
  }
  auto since_last = [](std::vector<double>& now, std::vector<double>& last) {
    last.resize(now.size(), 0);
    for (size_t i = 0; i < now.size(); ++i) {
      const double total = now[i];
      now[i] = total - last[i];
      last[i] = total;
    }
  };
  since_last(counts, taken_counts_);
  since_last(sums, taken_sums_);
  taken_rows_ = total_rows;
  full_at_.store(observed_rows_.load(std::memory_order_acquire) + static_cast<uint64_t>(config_.window_rows),
                 std::memory_order_relaxed);
  DriftWindow w = Test({reference_->key, n, std::move(counts), std::move(sums)});
  w.start_ms = *window_start_ms_;
  w.end_ms = now_ms;
  window_start_ms_ = now_ms;
  return w;
}

StatusOr<DriftWindow> DriftMonitor::TestCounts(const WindowCounts& counts) const {
  if (!ready_.load(std::memory_order_acquire))
    return FailedPrecondition("the drift reference is still being collected");
  if (counts.reference != reference_->key) {
    return FailedPrecondition("the counts are on reference " + counts.reference + ", this monitor's is " +
                              reference_->key);
  }
  if (counts.counts.size() != counters_ || counts.sums.size() != 2 * reference_->columns.size()) {
    return FailedPrecondition("the counts do not fit the reference's bins");
  }
  return Test(counts);
}

DriftWindow DriftMonitor::Test(WindowCounts window) const {
  DriftWindow w;
  w.rows = window.rows;
  const std::vector<double>& counts = window.counts;
  const std::vector<double>& sums = window.sums;
  w.reference_rows = reference_->rows;
  w.reference_source = reference_->source;
  std::vector<size_t> by_p;  // columns whose verdict is a p-value, for Benjamini–Hochberg
  std::vector<double> p_values;
  const auto& columns = reference_->columns;
  for (size_t c = 0; c < columns.size(); ++c) {
    const ColumnProfile& col = columns[c];
    const std::span<const double> live(counts.data() + plan_[c].offset, col.bins());
    ColumnDrift d;
    d.name = col.name;
    d.output = col.output;
    d.missing = static_cast<int64_t>(counts[plan_[c].offset + col.bins()]);
    for (double x : live) d.rows += static_cast<int64_t>(x);
    d.psi = stats::Psi(col.counts, live);
    d.js = stats::JensenShannonDistance(col.counts, live);
    const stats::TestResult chi = stats::ChiSquare(col.counts, live);
    d.chi2 = chi.statistic;
    d.chi2_p = chi.p_value;
    std::string method = config_.categorical_method;
    d.threshold = config_.categorical_threshold;
    if (col.type == FeatureType::kNumeric) {
      method = config_.numeric_method;
      d.threshold = config_.numeric_threshold;
      d.out_of_range = static_cast<int64_t>(live.front() + live.back());
      const stats::TestResult ks = stats::KolmogorovSmirnovBinned(col.counts, live);
      d.ks = ks.statistic;
      d.ks_p = ks.p_value;
      std::vector<double> points = col.points;
      if (live.front() > 0) points.front() = std::min(points.front(), sums[2 * c] / live.front());
      if (live.back() > 0) points.back() = std::max(points.back(), sums[2 * c + 1] / live.back());
      const double w1 = stats::WassersteinWeighted(points, col.counts, live);
      d.wasserstein = col.stddev > 0 ? w1 / col.stddev : w1;
    }
    d.method = method;
    if (method == "psi") {
      d.statistic = d.psi;
    } else if (method == "js") {
      d.statistic = d.js;
    } else if (method == "wasserstein") {
      d.statistic = d.wasserstein;
    } else if (method == "ks") {
      d.statistic = d.ks_p;
    } else {
      d.statistic = d.chi2_p;
    }
    const bool p_value = method == "ks" || method == "chi2";
    if (d.rows < config_.min_window_rows) {
      d.drifted = false;  // too few values for a verdict
    } else if (p_value) {
      by_p.push_back(c);
      p_values.push_back(d.statistic);
    } else {
      d.drifted = d.statistic >= d.threshold;
    }
    w.columns.push_back(std::move(d));
  }
  if (!p_values.empty()) {
    // One alpha for the family: the numeric threshold when any numeric column uses a p-value, else the categorical.
    const std::vector<bool> found = BenjaminiHochberg(
        p_values, config_.numeric_method == "ks" ? config_.numeric_threshold : config_.categorical_threshold);
    for (size_t i = 0; i < by_p.size(); ++i) w.columns[by_p[i]].drifted = found[i];
  }
  int inputs = 0, drifted = 0;
  for (const auto& d : w.columns) {
    if (d.output) continue;
    ++inputs;
    drifted += d.drifted;
  }
  w.drifted_share = inputs ? static_cast<double>(drifted) / inputs : 0;
  w.dataset_drift = inputs > 0 && w.drifted_share >= config_.drift_share;
  w.counts = std::move(window);
  return w;
}

bool WindowCounts::Add(const WindowCounts& other) {
  if (other.reference != reference || other.counts.size() != counts.size() || other.sums.size() != sums.size()) {
    return false;
  }
  rows += other.rows;
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  for (size_t i = 0; i < sums.size(); ++i) sums[i] += other.sums[i];
  return true;
}

std::string WindowCountsJson(const WindowCounts& c) {
  JsonWriter j;
  j.StartObject();
  j.Field("reference", c.reference);
  j.Field("rows", c.rows);
  for (const auto& [name, values] : {std::pair{"counts", &c.counts}, std::pair{"sums", &c.sums}}) {
    j.Key(name);
    j.StartArray();
    for (double v : *values) j.Double(v);
    j.EndArray();
  }
  j.EndObject();
  return j.Take();
}

StatusOr<WindowCounts> ParseWindowCounts(const std::string& json) {
  // A reference of 1,000 columns of 100 categories is about 100,000 counters.
  constexpr rapidjson::SizeType kMaxValues = 1'000'000;
  rapidjson::Document d;
  VIGIL_RETURN_IF_ERROR(ParseJson(json, d));
  if (!d.IsObject()) return InvalidArgument("window counts: not a JSON object");
  WindowCounts c;
  auto reference = d.FindMember("reference");
  auto rows = d.FindMember("rows");
  if (reference == d.MemberEnd() || !reference->value.IsString()) {
    return InvalidArgument("window counts: 'reference' is missing or not a string");
  }
  if (rows == d.MemberEnd() || !rows->value.IsInt64() || rows->value.GetInt64() < 0) {
    return InvalidArgument("window counts: 'rows' is missing or not a count");
  }
  c.reference = reference->value.GetString();
  c.rows = rows->value.GetInt64();
  // A window counts far fewer rows than this; sums of merged windows stay exact in a double.
  constexpr double kMaxCount = 1e12;
  if (c.rows > static_cast<int64_t>(kMaxCount)) return InvalidArgument("window counts: 'rows' is out of range");
  for (const auto& [name, values] : {std::pair{"counts", &c.counts}, std::pair{"sums", &c.sums}}) {
    auto it = d.FindMember(name);
    if (it == d.MemberEnd() || !it->value.IsArray() || it->value.Size() > kMaxValues) {
      return InvalidArgument(fmt::format("window counts: '{}' is missing, not an array or too long", name));
    }
    const bool counts = values == &c.counts;
    values->reserve(it->value.Size());
    for (const auto& v : it->value.GetArray()) {
      const double x = v.IsNumber() ? v.GetDouble() : std::nan("");
      if (!std::isfinite(x) || (counts && (x < 0 || x > kMaxCount || x != std::floor(x)))) {
        return InvalidArgument(fmt::format("window counts: '{}' holds a value that is not {}", name,
                                           counts ? "a count" : "a finite number"));
      }
      values->push_back(x);
    }
  }
  return c;
}

std::string DriftColumnsJson(const DriftWindow& w) {
  JsonWriter j;
  j.StartArray();
  for (const ColumnDrift& c : w.columns) {
    j.StartObject();
    j.Field("name", c.name);
    j.Field("kind", c.output ? "output" : "input");
    j.Field("method", c.method);
    j.Field("statistic", c.statistic);
    j.Field("threshold", c.threshold);
    j.Field("drifted", c.drifted);
    j.Field("psi", c.psi);
    j.Field("js", c.js);
    j.Field("ks", c.ks);
    j.Field("ks_p", c.ks_p);
    j.Field("wasserstein", c.wasserstein);
    j.Field("chi2", c.chi2);
    j.Field("chi2_p", c.chi2_p);
    j.Field("rows", c.rows);
    j.Field("missing", c.missing);
    j.Field("out_of_range", c.out_of_range);
    j.EndObject();
  }
  j.EndArray();
  return j.Take();
}

StatusOr<std::vector<ColumnDrift>> ParseDriftColumns(const std::string& json) {
  rapidjson::Document d;
  VIGIL_RETURN_IF_ERROR(ParseJson(json, d));
  if (!d.IsArray()) return InvalidArgument("drift columns: not a JSON array");
  std::vector<ColumnDrift> out;
  for (const auto& o : d.GetArray()) {
    if (!o.IsObject()) return InvalidArgument("drift columns: an element is not an object");
    ColumnDrift c;
    auto text = [&o](const char* k) {
      auto it = o.FindMember(k);
      return it != o.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString()) : std::string();
    };
    auto number = [&o](const char* k, double fallback) {
      auto it = o.FindMember(k);
      return it != o.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : fallback;
    };
    auto count = [&o](const char* k) {
      auto it = o.FindMember(k);
      return it != o.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : int64_t{0};
    };
    c.name = text("name");
    c.output = text("kind") == "output";
    c.method = text("method");
    c.statistic = number("statistic", 0);
    c.threshold = number("threshold", 0);
    auto drifted = o.FindMember("drifted");
    c.drifted = drifted != o.MemberEnd() && drifted->value.IsBool() && drifted->value.GetBool();
    c.psi = number("psi", 0);
    c.js = number("js", 0);
    c.ks = number("ks", 0);
    c.ks_p = number("ks_p", 1);
    c.wasserstein = number("wasserstein", 0);
    c.chi2 = number("chi2", 0);
    c.chi2_p = number("chi2_p", 1);
    c.rows = count("rows");
    c.missing = count("missing");
    c.out_of_range = count("out_of_range");
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace vigil
