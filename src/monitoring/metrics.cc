#include "monitoring/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace vigil {

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size()]) {
  for (size_t i = 0; i < bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  if (it != bounds_.end()) buckets_[it - bounds_.begin()].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  // Read the total first: concurrent observations may land between reads, and
  // Prometheus requires +Inf >= every bucket, so clamp.
  std::vector<uint64_t> out(bounds_.size() + 1);
  const uint64_t total = count_.load(std::memory_order_relaxed);
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = std::min(running, total);
  }
  out.back() = total;
  return out;
}

template <typename Child>
Child& Family<Child>::WithLabels(const std::vector<std::string>& values) {
  assert(values.size() == label_names_.size());
  MutexLock lock(mu_);
  auto& slot = children_[values];
  if (!slot) {
    if constexpr (std::is_same_v<Child, Histogram>) {
      slot = std::make_unique<Histogram>(bounds_);
    } else {
      slot = std::make_unique<Child>();
    }
  }
  return *slot;
}

template <typename Child>
void Family<Child>::ForEach(const std::function<void(const std::vector<std::string>&, const Child&)>& fn) const {
  MutexLock lock(mu_);
  for (const auto& [labels, child] : children_) fn(labels, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> b = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
  return b;
}

const std::vector<double>& BatchSizeBuckets() {
  static const std::vector<double> b = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return b;
}

CounterFamily& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                           std::vector<std::string> labels) {
  MutexLock lock(mu_);
  // A family registered twice (two components counting into one) is one family.
  for (auto& existing : families_) {
    if (existing.counter && existing.counter->name() == name) return *existing.counter;
  }
  Entry e{MetricType::kCounter, std::make_unique<CounterFamily>(name, help, std::move(labels)), nullptr, nullptr};
  families_.push_back(std::move(e));
  return *families_.back().counter;
}

GaugeFamily& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels) {
  MutexLock lock(mu_);
  Entry e{MetricType::kGauge, nullptr, std::make_unique<GaugeFamily>(name, help, std::move(labels)), nullptr};
  families_.push_back(std::move(e));
  return *families_.back().gauge;
}

HistogramFamily& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                               std::vector<std::string> labels, std::vector<double> bounds) {
  MutexLock lock(mu_);
  Entry e{MetricType::kHistogram, nullptr, nullptr,
          std::make_unique<HistogramFamily>(name, help, std::move(labels), std::move(bounds))};
  families_.push_back(std::move(e));
  return *families_.back().histogram;
}

void MetricsRegistry::AddCollectHook(std::function<void()> hook) {
  MutexLock lock(mu_);
  hooks_.push_back(std::move(hook));
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);  // shortest form that round-trips
}

std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra_name = "", const std::string& extra_value = "") {
  if (names.empty() && extra_name.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) s += ",";
    s += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    if (!names.empty()) s += ",";
    s += extra_name + "=\"" + extra_value + "\"";
  }
  s += "}";
  return s;
}

template <typename F>
void Header(std::string& out, const F& family, const char* type) {
  out += "# HELP " + family.name() + " " + family.help() + "\n";
  out += "# TYPE " + family.name() + " " + type + "\n";
}

}  // namespace

std::string MetricsRegistry::Expose() const {
  std::vector<std::function<void()>> hooks;
  {
    MutexLock lock(mu_);
    hooks = hooks_;
  }
  for (const auto& h : hooks) h();
  MutexLock lock(mu_);
  std::string out;
  out.reserve(16384);
  for (const auto& e : families_) {
    switch (e.type) {
      case MetricType::kCounter:
        Header(out, *e.counter, "counter");
        e.counter->ForEach([&](const auto& labels, const Counter& c) {
          out += e.counter->name() + LabelSet(e.counter->label_names(), labels) + " " + FormatValue(c.Value()) + "\n";
        });
        break;
      case MetricType::kGauge:
        Header(out, *e.gauge, "gauge");
        e.gauge->ForEach([&](const auto& labels, const Gauge& g) {
          out += e.gauge->name() + LabelSet(e.gauge->label_names(), labels) + " " + FormatValue(g.Value()) + "\n";
        });
        break;
      case MetricType::kHistogram:
        Header(out, *e.histogram, "histogram");
        e.histogram->ForEach([&](const auto& labels, const Histogram& h) {
          const auto& names = e.histogram->label_names();
          const auto counts = h.CumulativeCounts();
          for (size_t i = 0; i < h.bounds().size(); ++i) {
            out += e.histogram->name() + "_bucket" + LabelSet(names, labels, "le", FormatValue(h.bounds()[i])) + " " +
                   std::to_string(counts[i]) + "\n";
          }
          out += e.histogram->name() + "_bucket" + LabelSet(names, labels, "le", "+Inf") + " " +
                 std::to_string(counts.back()) + "\n";
          out += e.histogram->name() + "_sum" + LabelSet(names, labels) + " " + FormatValue(h.Sum()) + "\n";
          out += e.histogram->name() + "_count" + LabelSet(names, labels) + " " + std::to_string(counts.back()) + "\n";
        });
        break;
    }
  }
  return out;
}

}  // namespace vigil
