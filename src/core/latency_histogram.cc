#include "core/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace vigil {

size_t LatencyHistogram::BucketOf(int64_t ns) {
  if (ns < 128) return static_cast<size_t>(std::max<int64_t>(ns, 0));
  const auto v = static_cast<uint64_t>(ns);
  const int exponent = 63 - std::countl_zero(v);  // >= 7
  if (exponent >= kMaxExponent) return kBuckets - 1;
  const uint64_t sub = (v >> (exponent - 6)) & (kSubBuckets - 1);
  return 128 + static_cast<size_t>(exponent - 7) * kSubBuckets + static_cast<size_t>(sub);
}

double LatencyHistogram::BucketMidpoint(size_t bucket) {
  if (bucket < 128) return static_cast<double>(bucket);
  const size_t i = bucket - 128;
  const int exponent = static_cast<int>(i / kSubBuckets) + 7;
  const double width = std::ldexp(1.0, exponent - 6);
  const double low = std::ldexp(1.0, exponent) + static_cast<double>(i % kSubBuckets) * width;
  return low + width / 2;
}

void LatencyHistogram::Record(int64_t ns) {
  counts_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(ns, 0)), std::memory_order_relaxed);
  total_.fetch_add(1, std::memory_order_relaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::Take() const {
  Snapshot s;
  for (size_t i = 0; i < kBuckets; ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.total += s.counts[i];
  }
  s.sum_ns = static_cast<double>(sum_ns_.load(std::memory_order_relaxed));
  return s;
}

double LatencyHistogram::Snapshot::Quantile(double q) const {
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return BucketMidpoint(i);
  }
  return BucketMidpoint(counts.size() - 1);
}

LatencyHistogram::Snapshot& LatencyHistogram::Snapshot::operator+=(const Snapshot& other) {
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  total += other.total;
  sum_ns += other.sum_ns;
  return *this;
}

LatencyHistogram::Snapshot LatencyHistogram::Snapshot::operator-(const Snapshot& before) const {
  Snapshot d;
  for (size_t i = 0; i < counts.size(); ++i) {
    d.counts[i] = counts[i] - before.counts[i];
    d.total += d.counts[i];
  }
  d.sum_ns = sum_ns - before.sum_ns;
  return d;
}

}  // namespace vigil
