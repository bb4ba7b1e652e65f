// reference.csv: read with a row width from the first byte, its header, and
// a reference profile built from what was read (quantile bins, moments).
#include <cstdint>
#include <string>

#include "monitoring/drift_monitor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t width = 1 + data[0] % 40;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)vigil::ReferenceCsvHeader(text);
  auto rows = vigil::ReadReferenceCsv(text, width);
  if (!rows.ok() || rows->rows == 0) return 0;
  vigil::MonitoringConfig config;
  for (int64_t i = 0; i < width; ++i) config.features.push_back({"f" + std::to_string(i), i});
  vigil::DriftMonitor monitor(config, width, 0, "y");
  monitor.SetReference(*rows, "reference.csv");
  return 0;
}
