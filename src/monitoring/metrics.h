// A small Prometheus metric registry and its text exposition (format 0.0.4).
//
// Families are created once at start; children (one label-value tuple each)
// are created on first use and live as long as the registry, so callers cache
// the returned references and update them lock-free on the hot path.
// Everything here is thread-safe.
#pragma once

#include "core/thread_annotations.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vigil {

class Counter {
 public:
  void Inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  // For a counter kept elsewhere and read at scrape time (the kernel's CPU time).
  void SetTotal(double v) { value_.store(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void Observe(double v);
  // Cumulative counts per bound, then the total count last (+Inf).
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bound, non-cumulative
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

template <typename Child>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // The child for these label values (same order as the label names).
  Child& WithLabels(const std::vector<std::string>& values);
  // Visits every child under the family's lock.
  void ForEach(const std::function<void(const std::vector<std::string>&, const Child&)>& fn) const;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  mutable Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children_ GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Latency buckets in seconds, 50 µs to 10 s.
const std::vector<double>& LatencyBuckets();
// Batch size buckets, powers of two to 1024.
const std::vector<double>& BatchSizeBuckets();

class MetricsRegistry {
 public:
  CounterFamily& AddCounter(const std::string& name, const std::string& help, std::vector<std::string> labels);
  GaugeFamily& AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels);
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                std::vector<double> bounds);
  // Runs before each exposition (e.g. to read process memory).
  void AddCollectHook(std::function<void()> hook);

  // The whole registry in Prometheus text format 0.0.4.
  std::string Expose() const;

 private:
  struct Entry {
    MetricType type;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
  };
  mutable Mutex mu_;
  std::vector<Entry> families_ GUARDED_BY(mu_);  // append-only
  std::vector<std::function<void()>> hooks_ GUARDED_BY(mu_);
};

// Escapes a label value: backslash, double quote and newline.
std::string EscapeLabelValue(const std::string& v);

}  // namespace vigil
