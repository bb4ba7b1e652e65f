// Process-level readings for /metrics.
#pragma once

#include <cstdint>

namespace vigil {

// Resident set size of this process in bytes (from /proc/self/statm); 0 if unknown.
uint64_t ProcessResidentBytes();

// The standard process_* readings Prometheus client libraries export,
// from /proc (0 where unknown).
struct ProcessStats {
  double cpu_seconds = 0;         // user + system
  double start_time_seconds = 0;  // since the Unix epoch
  double open_fds = 0, max_fds = 0;
  double virtual_bytes = 0, resident_bytes = 0;
};
ProcessStats ReadProcessStats();

}  // namespace vigil
