#include "monitoring/health.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace vigil {

std::pair<std::string, std::string> CheckHealthLimits(const HealthLimits& l) {
  if (!std::isnan(l.latency_p99_ms) && !(l.latency_p99_ms >= 0 && l.latency_p99_ms <= 3.6e6)) {
    return {"latency_p99_ms", "a number of milliseconds from 0 (off) to 3600000"};
  }
  if (!(l.error_rate > 0 && l.error_rate <= 1)) return {"error_rate", "a share in (0, 1]"};
  if (!(l.queue_saturation > 0 && l.queue_saturation <= 1)) {
    return {"queue_saturation", "a share of max_queue_size in (0, 1]"};
  }
  if (l.min_requests < 1 || l.min_requests > 1'000'000'000) {
    return {"min_requests", "an integer from 1 to 1000000000, got " + std::to_string(l.min_requests)};
  }
  return {};
}

std::optional<double> HistogramQuantile(const std::vector<double>& bounds, const std::vector<uint64_t>& cumulative,
                                        double q) {
  if (cumulative.empty() || cumulative.back() == 0 || bounds.empty()) return std::nullopt;
  const double total = static_cast<double>(cumulative.back());
  const double rank = q * total;
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (static_cast<double>(cumulative[i]) >= rank) {
      const double lower = i == 0 ? 0 : bounds[i - 1];
      const double below = i == 0 ? 0 : static_cast<double>(cumulative[i - 1]);
      const double in_bucket = static_cast<double>(cumulative[i]) - below;
      if (in_bucket <= 0) return lower;
      return lower + (bounds[i] - lower) * (rank - below) / in_bucket;
    }
  }
  return bounds.back();
}

HealthReading ReadHealth(const HealthCounters& before, const HealthCounters& after, const std::vector<double>& bounds,
                         int64_t peak_queue, int64_t max_queue_size, uint64_t queue_full) {
  HealthReading r;
  const uint64_t ok = after.ok >= before.ok ? after.ok - before.ok : 0;
  r.errors = after.errors >= before.errors ? after.errors - before.errors : 0;
  r.requests = ok + r.errors;
  r.error_rate = r.requests > 0 ? static_cast<double>(r.errors) / static_cast<double>(r.requests) : 0;
  if (after.latency.size() == bounds.size() + 1) {
    std::vector<uint64_t> window(after.latency.size());
    for (size_t i = 0; i < window.size(); ++i) {
      const uint64_t b = i < before.latency.size() ? before.latency[i] : 0;
      window[i] = after.latency[i] >= b ? after.latency[i] - b : 0;
    }
    if (auto p99 = HistogramQuantile(bounds, window, 0.99)) r.latency_p99_ms = *p99 * 1000;
  }
  r.peak_queue = peak_queue;
  r.queue_saturation = max_queue_size > 0 ? static_cast<double>(peak_queue) / static_cast<double>(max_queue_size) : 0;
  if (queue_full > 0) r.queue_saturation = 1;
  return r;
}

namespace {

// The first number in a file, if it holds one ("max" in cgroup v2 means none).
std::optional<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::nullopt;
  try {
    size_t used = 0;
    const uint64_t v = std::stoull(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

uint64_t DefaultMemoryLimitBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  uint64_t limit = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (auto cgroup = ReadNumber(path); cgroup && *cgroup > 0 && (limit == 0 || *cgroup < limit)) limit = *cgroup;
  }
  return limit / 10 * 9;
}

}  // namespace vigil
