// LatencyHistogram: latencies in nanoseconds, recorded lock-free from any
// thread; snapshots subtract, so windows need no reset.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace vigil {

// Latencies in nanoseconds, in log-linear buckets: exact below 128 ns, then
// 64 buckets per power of two (under 1.6% relative error), up to ~18 min.
class LatencyHistogram {
 public:
  static constexpr int kSubBuckets = 64;
  static constexpr int kMaxExponent = 40;
  static constexpr size_t kBuckets = 128 + (kMaxExponent - 7) * kSubBuckets;

  struct Snapshot {
    std::vector<uint64_t> counts = std::vector<uint64_t>(kBuckets);
    uint64_t total = 0;
    double sum_ns = 0;

    // The value at quantile q in [0, 1], in nanoseconds (bucket midpoint).
    double Quantile(double q) const;
    double Mean() const { return total ? sum_ns / static_cast<double>(total) : 0; }
    Snapshot& operator+=(const Snapshot& other);
    Snapshot operator-(const Snapshot& before) const;
  };

  void Record(int64_t ns);
  Snapshot Take() const;

  static size_t BucketOf(int64_t ns);
  static double BucketMidpoint(size_t bucket);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace vigil
