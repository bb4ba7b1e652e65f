// Drift windows as replicas read them back from the shared store: a partial
// window's counts (added up and tested by the leader) and a merged window's
// per-column results (published by every replica). Counts that parse are
// tested on a fixed reference as the leader tests them, under its key.
#include <cstdint>
#include <string>

#include "monitoring/drift_monitor.h"

namespace {

vigil::DriftMonitor& Monitor() {
  static vigil::DriftMonitor* monitor = [] {
    vigil::MonitoringConfig config;
    config.features = {{"x", 0}, {"kind", 1, vigil::FeatureType::kCategorical}};
    config.min_window_rows = 1;
    auto* m = new vigil::DriftMonitor(config, 2, 2, "p");
    vigil::ReferenceRows rows;
    for (int r = 0; r < 50; ++r) {
      rows.inputs.insert(rows.inputs.end(), {0.1 * r, static_cast<double>(r % 3)});
      rows.outputs.insert(rows.outputs.end(), {0.02 * r, 1 - 0.02 * r});
    }
    rows.rows = 50;
    m->SetReference(rows, "reference.csv");
    return m;
  }();
  return *monitor;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)vigil::ParseDriftColumns(text);
  auto counts = vigil::ParseWindowCounts(text);
  if (!counts.ok()) return 0;
  const auto reference = Monitor().reference();
  counts->reference = reference->key;
  vigil::WindowCounts sum = *counts;
  (void)sum.Add(*counts);
  (void)Monitor().TestCounts(sum);
  // And the same values in the reference's shape, so they reach the tests.
  size_t counters = 0;
  for (const auto& c : reference->columns) counters += c.bins() + 1;
  sum.counts.resize(counters, 0);
  sum.sums.resize(2 * reference->columns.size(), 0);
  (void)Monitor().TestCounts(sum);
  return 0;
}
